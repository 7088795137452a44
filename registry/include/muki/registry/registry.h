// The host side of the plugin boundary: finds plugin libraries, loads them (Boost.DLL, rtld_now |
// rtld_local), performs the ABI handshake, lists what they hold and makes instances. No torch
// here: tensors cross as raw float buffers wrapped into DLTensors at the boundary.
//
// Lifetime: every plugin description and every instance holds a shared reference to the library
// it came from, so a library stays loaded while anything it made lives, and is unloaded (after its
// shutdown hook) when the last of them goes.
#pragma once

#include <muki/plugin.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace muki::registry {

enum class Kind { Teacher, Uncertainty, Integration };

// "teacher", "uncertainty", "integration"
const char* kind_name(Kind kind);
// A readable noun: "teacher adapter", "uncertainty strategy", "integration strategy".
const char* kind_noun(Kind kind);
const char* param_type_name(muki_param_type type);
std::string format_abi(uint32_t abi_version);  // "1.0"

// Every refusal of the registry: the message says what went wrong and where.
class PluginError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ParamInfo {
  std::string name;
  muki_param_type type = MUKI_PARAM_STRING;
  bool required = false;
  std::optional<std::string> default_value;  // a TOML literal
  std::string doc;
  std::optional<double> min_value, max_value;
  bool allow_non_finite = false;  // MUKI_PARAM_ALLOW_NON_FINITE (ABI 1.1)
};

class LoadedLibrary;

struct PluginInfo {
  Kind kind = Kind::Teacher;
  std::string name;
  std::string version;
  std::string description;
  std::vector<ParamInfo> params;
  std::filesystem::path library_path;
  std::string library_name;
  std::string library_version;
  uint32_t abi_version = 0;  // the library's
  std::shared_ptr<LoadedLibrary> library;  // pins the library
  const muki_plugin_desc* desc = nullptr;

  const ParamInfo* find_param(std::string_view key) const;
};

// Base of the three instance wrappers: owns the plugin's opaque instance and pins its library.
class Instance {
 public:
  Instance(const Instance&) = delete;
  Instance& operator=(const Instance&) = delete;
  virtual ~Instance();
  const PluginInfo& plugin() const { return *plugin_; }
  const std::string& instance_name() const { return instance_name_; }

 protected:
  Instance(std::shared_ptr<const PluginInfo> plugin, std::string instance_name, void* handle,
           void (*destroy)(void*));
  // Throws PluginError "<kind> '<name>' <what> failed: <plugin's message>" unless status is OK.
  void check(muki_status status, const muki_error& error, const char* what) const;
  // Throws PluginError "<kind> '<name>' (<instance>) <problem>": the plugin broke the contract.
  [[noreturn]] void refuse(const std::string& problem) const;
  void* handle_;

 private:
  std::shared_ptr<const PluginInfo> plugin_;
  std::string instance_name_;
  void (*destroy_)(void*);
};

class TeacherInstance : public Instance {
 public:
  // Checked when the instance is made: at least one, none empty, no two alike.
  const std::vector<std::string>& labels() const { return labels_; }
  bool can_sample() const { return can_sample_; }
  const std::string& sampling_note() const { return sampling_note_; }
  // H, the length of a text's pooled feature vector; 0 when the teacher gives none (ABI 1.1).
  int64_t feature_dim() const { return feature_dim_; }
  // samples == 0: out holds B * C floats (deterministic); else samples * B * C floats.
  // features, when not nullptr, receives B * H (or samples * B * H) floats from the same passes;
  // asking a teacher without features for them throws PluginError.
  void predict(const std::vector<std::string>& texts, uint32_t samples, uint64_t seed,
               float* out, float* features = nullptr) const;

 private:
  friend class Registry;
  TeacherInstance(std::shared_ptr<const PluginInfo> plugin, std::string instance_name,
                  void* handle);
  const muki_teacher_api* api_;
  std::vector<std::string> labels_;
  bool can_sample_ = false;
  std::string sampling_note_;
  int64_t feature_dim_ = 0;
};

// One teacher's in-distribution reference data for UncertaintyInstance::fit (ABI 1.1).
struct ReferenceView {
  uint64_t teacher = 0;       // index in the experiment's teacher order
  std::string teacher_name;
  const float* logits = nullptr;    // [rows, num_labels]
  int64_t rows = 0, num_labels = 0;
  const float* features = nullptr;  // [rows, feature_dim], or nullptr
  int64_t feature_dim = 0;
  const int64_t* labels = nullptr;  // [rows] teacher-local label indices, or nullptr
  // ABI 1.2: the transfer set's features [background_rows, feature_dim], for a strategy that
  // needs_background(); nullptr otherwise.
  const float* background = nullptr;
  int64_t background_rows = 0;
};

class UncertaintyInstance : public Instance {
 public:
  uint32_t samples() const { return samples_; }  // 0 = one deterministic pass
  // ABI 1.1 capabilities; always false for a 1.0 plugin.
  bool needs_features() const { return (flags_ & MUKI_UNCERTAINTY_NEEDS_FEATURES) != 0; }
  bool needs_reference() const { return (flags_ & MUKI_UNCERTAINTY_NEEDS_REFERENCE) != 0; }
  // ABI 1.2; always false for an older plugin (the host clears the bit).
  bool needs_background() const { return (flags_ & MUKI_UNCERTAINTY_NEEDS_BACKGROUND) != 0; }
  // logits: K * B * C floats ([K, B, C]); out: B floats. The 1.0 call, without the teacher's
  // identity: only for strategies that need neither features nor a reference.
  void score(const float* logits, int64_t k, int64_t b, int64_t c, float* out) const;
  // The same for teacher `teacher`, with its features ([K, B, h], or nullptr): through the
  // plugin's score_teacher when it has one (ABI 1.1), else score().
  void score(uint64_t teacher, const float* logits, int64_t k, int64_t b, int64_t c,
             const float* features, int64_t h, float* out) const;
  // Hands a teacher's reference data to a strategy that needs_reference(); throws PluginError
  // otherwise, when a strategy that needs_background() gets none, or with the plugin's message
  // when it cannot fit them.
  void fit(const ReferenceView& reference) const;

 private:
  friend class Registry;
  UncertaintyInstance(std::shared_ptr<const PluginInfo> plugin, std::string instance_name,
                      void* handle);
  const muki_uncertainty_api* api_;
  uint32_t samples_ = 0;
  uint32_t flags_ = 0;
  decltype(muki_uncertainty_api::score_teacher) score_teacher_ = nullptr;
};

// One teacher's outputs on a batch, as the integration strategy sees them.
struct TeacherOutputsView {
  const float* logits;              // [B, C_i] deterministic
  const float* scores;              // [B]
  const std::vector<int64_t>* label_map;  // C_i union indices
};

class IntegrationInstance : public Instance {
 public:
  muki_loss_kind loss() const { return static_cast<muki_loss_kind>(info_.loss); }
  float student_temperature() const { return info_.student_temperature; }
  bool needs_gold() const { return (info_.flags & MUKI_INTEGRATION_NEEDS_GOLD) != 0; }
  bool ignores_scores() const { return (info_.flags & MUKI_INTEGRATION_IGNORES_SCORES) != 0; }
  // NONE for a 1.0 plugin (which leaves the field zero).
  muki_feature_objective feature_objective() const {
    return static_cast<muki_feature_objective>(info_.feature_objective);
  }
  float feature_weight() const { return info_.feature_weight; }
  // target: B * union_size floats; weight: B floats; gold: B union indices or nullptr.
  void integrate(const std::vector<TeacherOutputsView>& teachers, int64_t batch_size,
                 int64_t union_size, const int64_t* gold, float* target, float* weight) const;

 private:
  friend class Registry;
  IntegrationInstance(std::shared_ptr<const PluginInfo> plugin, std::string instance_name,
                      void* handle);
  const muki_integration_api* api_;
  muki_integration_info info_{};
};

// What create_*() hands the plugin. The registry passes the options as they are: checking them
// against the plugin's parameter schema is the config layer's job (`muki validate`,
// core/config.h); a direct caller that skips it gets whatever error the plugin's create reports.
struct CreateArgs {
  std::string instance_name;         // for messages ("teacher 'native' (media): ...")
  std::string options_toml;          // the plugin's options sub-table as TOML text; may be empty
  std::filesystem::path config_dir;  // relative paths in the options are resolved against it
  uint64_t seed = 0;
};

// One line per library that could not be used; scanning goes on past it.
struct LoadFailure {
  std::filesystem::path path;
  std::string message;
};

class Registry {
 public:
  // host_abi_version: the ABI this host claims in the handshake. Always MUKI_ABI_VERSION in muki;
  // compatibility tests claim an older one to check that newer plugins are refused.
  explicit Registry(uint32_t host_abi_version = MUKI_ABI_VERSION);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Loads one library. Throws PluginError with a message naming the file on: missing file, not a
  // shared library, no entry symbol, ABI mismatch (both versions named), malformed table, failing
  // init, or a (kind, name) already provided by another library. Loading the same file twice is a
  // no-op.
  void load_library(const std::filesystem::path& path);

  // What load_library does once it holds the library's table: checks it, calls its init and
  // registers its plugins, with the same refusals. For a table already in memory (the registry
  // tests; the descriptor fuzzer in tests/fuzz builds them from its input); `origin` stands for
  // the file in messages and in PluginInfo::library_path. The table and what it points to must
  // outlive every plugin and instance made from it; its shutdown hook runs when the last of them
  // goes.
  void register_library(const muki_library_desc* desc, const std::filesystem::path& origin);

  // Loads every lib*.so in each folder (not recursive). Failures are collected, not thrown; a
  // folder that does not exist is a failure too.
  std::vector<LoadFailure> scan(const std::vector<std::filesystem::path>& folders);

  // Case-insensitive look-up; nullptr when absent.
  const PluginInfo* find(Kind kind, std::string_view name) const;
  // Throws PluginError "<kind noun> '<name>' not found; available: a, b, c".
  const PluginInfo& get(Kind kind, std::string_view name) const;
  // Every plugin, ordered by kind then name.
  std::vector<const PluginInfo*> list() const;
  std::vector<std::string> names(Kind kind) const;

  // A new instance of the named plugin (case-insensitive). Throws PluginError when no such plugin
  // is loaded (as get()) or when the plugin's create fails (its message, with the plugin and
  // instance named). The instance keeps its library loaded for as long as it lives, even past
  // this registry.
  std::unique_ptr<TeacherInstance> create_teacher(std::string_view plugin,
                                                  const CreateArgs& args) const;
  std::unique_ptr<UncertaintyInstance> create_uncertainty(std::string_view plugin,
                                                          const CreateArgs& args) const;
  std::unique_ptr<IntegrationInstance> create_integration(std::string_view plugin,
                                                          const CreateArgs& args) const;

 private:
  uint32_t host_abi_;
  std::map<std::pair<Kind, std::string>, std::shared_ptr<const PluginInfo>> plugins_;
  std::vector<std::filesystem::path> loaded_paths_;  // canonical
  std::shared_ptr<const PluginInfo> lookup(Kind kind, std::string_view name) const;
  // `object` keeps the shared object loaded as long as a plugin of it lives (null: from memory).
  void register_library(const muki_library_desc* desc, const std::string& where,
                        const std::filesystem::path& library_path, std::shared_ptr<void> object);
};

// Why the file at `path` cannot be a complete 64-bit ELF shared object, or "" when its headers say
// it can. load_library asks before dlopen: the loader maps segments that end past the end of a
// truncated file and then faults (SIGBUS) instead of failing.
std::string elf_problem(const std::filesystem::path& path);

// The default plugin folders, in search order: $MUKI_PLUGIN_PATH (colon-separated), then the
// folder where muki's own plugins live, <bin>/../lib/muki/plugins (the build tree mirrors the
// install tree). Folders that do not exist are left out.
std::vector<std::filesystem::path> default_plugin_folders();

// The host API table handed to plugins (logging goes to spdlog under the logger "plugin").
const muki_host_api* host_api();

}  // namespace muki::registry
