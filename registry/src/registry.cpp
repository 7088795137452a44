#include "muki/registry/registry.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include <elf.h>

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <spdlog/spdlog.h>
#include <toml++/toml.h>

// The error slot plugins fill through host->set_error. Lives only for one call.
struct muki_error {
  muki_status status = MUKI_OK;
  std::string message;
  bool set = false;
};

// A plugin's parsed options (ABI 1.1), alive for one create() call. The string arrays handed out
// are built on first request and kept here, so the views stay valid as long as the options.
struct muki_options {
  toml::table table;
  std::map<std::string, std::vector<muki_string_view>, std::less<>> string_arrays;
};

namespace muki::registry {
namespace fs = std::filesystem;

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string str(const char* s) { return s == nullptr ? std::string() : std::string(s); }

void host_log(void*, muki_log_level level, muki_string_view source, muki_string_view message) {
  static const spdlog::level::level_enum levels[] = {spdlog::level::trace, spdlog::level::debug,
                                                     spdlog::level::info, spdlog::level::warn,
                                                     spdlog::level::err};
  const auto lvl = (level >= MUKI_LOG_TRACE && level <= MUKI_LOG_ERROR) ? levels[level]
                                                                        : spdlog::level::info;
  spdlog::log(lvl, "[{}] {}", std::string_view(source.data, source.size),
              std::string_view(message.data, message.size));
}

void host_set_error(muki_error* error, muki_status status, muki_string_view message) {
  if (error == nullptr || error->set) return;
  error->set = true;
  error->status = status;
  error->message.assign(message.data == nullptr ? "" : message.data, message.size);
}

// ---- typed option getters (ABI 1.1) ----

const toml::node* option_node(const muki_options* options, const char* key) {
  return options == nullptr || key == nullptr ? nullptr : options->table.get(key);
}

muki_status wrong_type(muki_error* error, const char* key, const char* what) {
  const std::string message = std::string("option '") + key + "' must be " + what;
  host_set_error(error, MUKI_ERR_CONFIG, {message.data(), message.size()});
  return MUKI_ERR_CONFIG;
}

int32_t option_has(const muki_options* options, const char* key) {
  return option_node(options, key) != nullptr ? 1 : 0;
}

muki_status option_bool(const muki_options* options, const char* key, int32_t* value,
                        muki_error* error) {
  const toml::node* node = option_node(options, key);
  if (node == nullptr) return MUKI_OK;
  const auto v = node->value_exact<bool>();
  if (!v) return wrong_type(error, key, "a boolean");
  *value = *v ? 1 : 0;
  return MUKI_OK;
}

muki_status option_int(const muki_options* options, const char* key, int64_t* value,
                       muki_error* error) {
  const toml::node* node = option_node(options, key);
  if (node == nullptr) return MUKI_OK;
  const auto v = node->value_exact<int64_t>();
  if (!v) return wrong_type(error, key, "an integer");
  *value = *v;
  return MUKI_OK;
}

muki_status option_float(const muki_options* options, const char* key, double* value,
                         muki_error* error) {
  const toml::node* node = option_node(options, key);
  if (node == nullptr) return MUKI_OK;
  if (!node->is_number()) return wrong_type(error, key, "a number");
  *value = *node->value<double>();
  return MUKI_OK;
}

muki_status option_string(const muki_options* options, const char* key, muki_string_view* value,
                          muki_error* error) {
  const toml::node* node = option_node(options, key);
  if (node == nullptr) return MUKI_OK;
  const auto* s = node->as_string();
  if (s == nullptr) return wrong_type(error, key, "a string");
  *value = {s->get().data(), s->get().size()};
  return MUKI_OK;
}

muki_status option_string_array(const muki_options* options, const char* key,
                                const muki_string_view** items, uint64_t* count,
                                muki_error* error) {
  const toml::node* node = option_node(options, key);
  if (node == nullptr) return MUKI_OK;
  const toml::array* array = node->as_array();
  if (array == nullptr) return wrong_type(error, key, "an array of strings");
  std::vector<muki_string_view> views;
  for (const toml::node& item : *array) {
    const auto* s = item.as_string();
    if (s == nullptr) return wrong_type(error, key, "an array of strings");
    views.push_back({s->get().data(), s->get().size()});
  }
  auto& kept = const_cast<muki_options*>(options)->string_arrays[key];
  kept = std::move(views);
  *items = kept.data();
  *count = kept.size();
  return MUKI_OK;
}

// ---- the process-state lock (ABI 1.1) ----

std::recursive_mutex& process_state_mutex() {
  static std::recursive_mutex mutex;
  return mutex;
}
void lock_process_state() { process_state_mutex().lock(); }
void unlock_process_state() { process_state_mutex().unlock(); }

const muki_host_api kHostApi = {MUKI_ABI_VERSION, sizeof(muki_host_api), nullptr, &host_log,
                                &host_set_error, &option_has, &option_bool, &option_int,
                                &option_float, &option_string, &option_string_array,
                                &lock_process_state, &unlock_process_state};

std::string error_text(muki_status status, const muki_error& error) {
  if (error.set && !error.message.empty()) return error.message;
  return "status " + std::to_string(static_cast<int>(status)) + " without a message";
}

// The sizes ABI 1.0 defines (the offset of a grown struct's first 1.1 field): a table smaller
// than this is malformed.
constexpr uint32_t kMinApiSize[] = {offsetof(muki_teacher_api, predict_features),
                                    offsetof(muki_uncertainty_api, fit),
                                    sizeof(muki_integration_api)};
constexpr uint32_t kMinParamSize = offsetof(muki_param_desc, flags);
// Why an array of T strided by `size` cannot be read, or "" when it can. A stride that is not a
// multiple of T's alignment puts elements at addresses no compiler gives a T (reading them is
// undefined behaviour), so it is no struct's sizeof: the table is damaged.
template <class T>
std::string misaligned(const char* what, uint32_t size) {
  if (size % alignof(T) == 0) return {};
  return std::string(what) + " entries of " + std::to_string(size) + " bytes (struct_size), not a multiple of " +
         std::to_string(alignof(T)) + ": no compiler lays out an array like that";
}

// Why entry `i` of an array cannot be read as one of its entries, or "" when it can: the array is
// strided by its first entry's struct_size, and a field that entry `i` claims beyond that size
// would lie in the next entry, or past the array's end.
std::string size_differs(const char* what, uint64_t i, uint32_t size, uint32_t first) {
  if (size == first) return {};
  return std::string(what) + " entry " + std::to_string(i) + " has struct_size " + std::to_string(size) +
         ", the first has " + std::to_string(first) + " (every entry of an array has the same)";
}

// Element i of an array of versioned structs, strided by the writer's struct_size.
template <class T>
const T& at(const T* base, uint64_t i) {
  return *MUKI_ARRAY_AT(T, base, i);
}

// Checks one plugin entry's table; returns an empty string when it is usable.
std::string check_plugin_desc(const muki_plugin_desc& d) {
  if (d.struct_size < sizeof(muki_plugin_desc)) return "plugin entry is smaller than ABI 1.0's";
  if (d.name == nullptr || *d.name == '\0') return "a plugin has no name";
  if (d.kind != MUKI_KIND_TEACHER && d.kind != MUKI_KIND_UNCERTAINTY &&
      d.kind != MUKI_KIND_INTEGRATION)
    return std::string("plugin '") + d.name + "' has an unknown kind " +
           std::to_string(static_cast<int>(d.kind));
  if (d.api == nullptr) return std::string("plugin '") + d.name + "' has no function table";
  const auto* head = static_cast<const uint32_t*>(d.api);  // abi_version, struct_size
  if (head[1] < kMinApiSize[d.kind])
    return std::string("plugin '") + d.name + "' has a function table smaller than ABI 1.0's";
  if (d.num_params > 0 && d.params == nullptr)
    return std::string("plugin '") + d.name + "' declares parameters but has no table";
  if (d.num_params > 0 && d.params->struct_size < kMinParamSize)
    return std::string("plugin '") + d.name + "' has parameter entries smaller than ABI 1.0's";
  if (d.num_params > 0)
    if (std::string problem = misaligned<muki_param_desc>("parameter", d.params->struct_size); !problem.empty())
      return std::string("plugin '") + d.name + "' has " + problem;
  for (uint64_t i = 0; i < d.num_params; ++i) {
    const muki_param_desc& p = at(d.params, i);
    if (std::string problem = size_differs("parameter", i, p.struct_size, d.params->struct_size); !problem.empty())
      return std::string("plugin '") + d.name + "': " + problem;
    if (p.name == nullptr || *p.name == '\0')
      return std::string("plugin '") + d.name + "' has a parameter without a name";
    if (p.type > MUKI_PARAM_STRING_ARRAY)
      return std::string("plugin '") + d.name + "' parameter '" + p.name +
             "' has an unknown type " + std::to_string(p.type);
  }
  bool complete = false;
  switch (d.kind) {
    case MUKI_KIND_TEACHER: {
      const auto* a = static_cast<const muki_teacher_api*>(d.api);
      complete = a->create && a->destroy && a->describe && a->label_name && a->predict;
      break;
    }
    case MUKI_KIND_UNCERTAINTY: {
      const auto* a = static_cast<const muki_uncertainty_api*>(d.api);
      complete = a->create && a->destroy && a->describe && a->score;
      break;
    }
    case MUKI_KIND_INTEGRATION: {
      const auto* a = static_cast<const muki_integration_api*>(d.api);
      complete = a->create && a->destroy && a->describe && a->integrate;
      break;
    }
  }
  if (!complete) return std::string("plugin '") + d.name + "' has a NULL function in its table";
  return {};
}

DLTensor make_tensor(const void* data, DLDataType dtype, int64_t* shape, int32_t ndim) {
  DLTensor t{};
  t.data = const_cast<void*>(data);
  t.device = DLDevice{kDLCPU, 0};
  t.ndim = ndim;
  t.dtype = dtype;
  t.shape = shape;
  t.strides = nullptr;
  t.byte_offset = 0;
  return t;
}
constexpr DLDataType kFloat32{kDLFloat, 32, 1};
constexpr DLDataType kInt64{kDLInt, 64, 1};

muki_create_args make_create_args(const CreateArgs& args, const std::string& config_dir,
                                  const muki_options& options, const std::string& plugin_name) {
  muki_create_args c{};
  c.abi_version = MUKI_ABI_VERSION;
  c.struct_size = sizeof(muki_create_args);
  c.host = &kHostApi;
  c.instance_name = {args.instance_name.data(), args.instance_name.size()};
  c.options_toml = {args.options_toml.data(), args.options_toml.size()};
  c.config_dir = {config_dir.data(), config_dir.size()};
  c.seed = args.seed;
  c.options = &options;
  c.plugin_name = {plugin_name.data(), plugin_name.size()};
  return c;
}

}  // namespace

// A library's table and the shared object it came from (null for a table registered from
// memory). When the last holder goes, the shutdown hook runs, then the object is unloaded.
class LoadedLibrary {
 public:
  LoadedLibrary(std::shared_ptr<void> object, const muki_library_desc* desc)
      : object_(std::move(object)), desc_(desc) {}
  ~LoadedLibrary() {
    if (desc_ != nullptr && desc_->shutdown != nullptr) desc_->shutdown();
  }

 private:
  std::shared_ptr<void> object_;
  const muki_library_desc* desc_;
};

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::Teacher: return "teacher";
    case Kind::Uncertainty: return "uncertainty";
    case Kind::Integration: return "integration";
  }
  return "?";
}

const char* kind_noun(Kind kind) {
  switch (kind) {
    case Kind::Teacher: return "teacher adapter";
    case Kind::Uncertainty: return "uncertainty strategy";
    case Kind::Integration: return "integration strategy";
  }
  return "?";
}

const char* param_type_name(muki_param_type type) {
  switch (type) {
    case MUKI_PARAM_BOOL: return "bool";
    case MUKI_PARAM_INT: return "int";
    case MUKI_PARAM_FLOAT: return "float";
    case MUKI_PARAM_STRING: return "string";
    case MUKI_PARAM_PATH: return "path";
    case MUKI_PARAM_STRING_ARRAY: return "string array";
  }
  return "?";
}

std::string format_abi(uint32_t v) {
  return std::to_string(MUKI_VERSION_MAJOR(v)) + "." + std::to_string(MUKI_VERSION_MINOR(v));
}

const muki_host_api* host_api() { return &kHostApi; }

std::string elf_problem(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  Elf64_Ehdr header{};
  in.read(reinterpret_cast<char*>(&header), sizeof(header));
  if (ec || in.gcount() < 4 || std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0)
    return "not a shared library (no ELF header)";
  if (in.gcount() != sizeof(header)) return "a truncated ELF file (its header is cut off)";
  if (header.e_ident[EI_CLASS] != ELFCLASS64) return "not a 64-bit ELF file";
  if (header.e_type != ET_DYN) return "an ELF file, but not a shared library";
  auto beyond = [size](uint64_t offset, uint64_t length) { return offset > size || length > size - offset; };
  const uint64_t table = uint64_t{header.e_phnum} * header.e_phentsize;
  if (header.e_phentsize != sizeof(Elf64_Phdr) || beyond(header.e_phoff, table))
    return "a truncated or damaged shared library (its program headers lie outside the file)";
  for (uint16_t i = 0; i < header.e_phnum; ++i) {
    Elf64_Phdr segment{};
    in.seekg(static_cast<std::streamoff>(header.e_phoff + uint64_t{i} * sizeof(Elf64_Phdr)));
    in.read(reinterpret_cast<char*>(&segment), sizeof(segment));
    if (!in) return "a truncated or damaged shared library (unreadable program header)";
    if (segment.p_type == PT_LOAD && beyond(segment.p_offset, segment.p_filesz))
      return "a truncated or damaged shared library (segment " + std::to_string(i) + " ends at byte " +
             std::to_string(segment.p_offset + segment.p_filesz) + ", the file has " + std::to_string(size) + ")";
  }
  if (header.e_shoff != 0 && beyond(header.e_shoff, uint64_t{header.e_shnum} * header.e_shentsize))
    return "a truncated or damaged shared library (its section headers lie outside the file)";
  return "";
}

const ParamInfo* PluginInfo::find_param(std::string_view key) const {
  for (const auto& p : params)
    if (p.name == key) return &p;
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Instances
// ---------------------------------------------------------------------------------------------

Instance::Instance(std::shared_ptr<const PluginInfo> plugin, std::string instance_name,
                   void* handle, void (*destroy)(void*))
    : handle_(handle), plugin_(std::move(plugin)), instance_name_(std::move(instance_name)),
      destroy_(destroy) {}

Instance::~Instance() {
  if (handle_ != nullptr) destroy_(handle_);
}

void Instance::check(muki_status status, const muki_error& error, const char* what) const {
  if (status == MUKI_OK) return;
  throw PluginError(std::string(kind_noun(plugin_->kind)) + " '" + plugin_->name + "' (" +
                    instance_name_ + "): " + what + " failed: " + error_text(status, error));
}

void Instance::refuse(const std::string& problem) const {
  throw PluginError(std::string(kind_noun(plugin_->kind)) + " '" + plugin_->name + "' (" +
                    instance_name_ + ") " + problem);
}

TeacherInstance::TeacherInstance(std::shared_ptr<const PluginInfo> plugin,
                                 std::string instance_name, void* handle)
    : Instance(plugin, std::move(instance_name), handle,
               static_cast<const muki_teacher_api*>(plugin->desc->api)->destroy),
      api_(static_cast<const muki_teacher_api*>(plugin->desc->api)) {
  muki_teacher_info info{};
  info.abi_version = MUKI_ABI_VERSION;
  info.struct_size = sizeof(info);
  muki_error error;
  check(api_->describe(handle_, &info, &error), error, "describe");
  if (info.num_labels == 0)
    refuse("describes 0 labels; a teacher needs at least one label name");
  can_sample_ = (info.flags & MUKI_TEACHER_CAN_SAMPLE) != 0;
  sampling_note_.assign(info.sampling_note.data == nullptr ? "" : info.sampling_note.data,
                        info.sampling_note.size);
  if ((info.flags & MUKI_TEACHER_HAS_FEATURES) != 0) {
    // A 1.0 plugin never sets the flag; the host zero-filled feature_dim for it anyway.
    if (info.feature_dim == 0) refuse("describes features of dimension 0");
    if (!MUKI_HAS_FIELD(muki_teacher_api, api_, predict_features) ||
        api_->predict_features == nullptr)
      refuse("describes features but its function table has no predict_features");
    feature_dim_ = static_cast<int64_t>(info.feature_dim);
  }
  std::set<std::string> seen;
  for (uint64_t i = 0; i < info.num_labels; ++i) {
    muki_string_view name{};
    muki_error e;
    check(api_->label_name(handle_, i, &name, &e), e, "label_name");
    std::string label(name.data == nullptr ? "" : name.data, name.size);
    if (label.empty()) refuse("label " + std::to_string(i) + " has an empty name");
    if (!seen.insert(label).second) refuse("label name '" + label + "' appears twice");
    labels_.push_back(std::move(label));
  }
}

void TeacherInstance::predict(const std::vector<std::string>& texts, uint32_t samples,
                              uint64_t seed, float* out, float* features) const {
  if (features != nullptr && feature_dim_ == 0) refuse("has no features");
  std::vector<muki_string_view> views;
  views.reserve(texts.size());
  for (const auto& t : texts) views.push_back({t.data(), t.size()});
  muki_predict_request req{};
  req.abi_version = MUKI_ABI_VERSION;
  req.struct_size = sizeof(req);
  req.texts = views.data();
  req.num_texts = views.size();
  req.samples = samples;
  req.seed = seed;
  int64_t shape3[3] = {samples, static_cast<int64_t>(texts.size()),
                       static_cast<int64_t>(labels_.size())};
  DLTensor t = samples == 0 ? make_tensor(out, kFloat32, shape3 + 1, 2)
                            : make_tensor(out, kFloat32, shape3, 3);
  muki_error error;
  if (features == nullptr) {
    check(api_->predict(handle_, &req, &t, &error), error, "predict");
    return;
  }
  int64_t feature_shape3[3] = {samples, shape3[1], feature_dim_};
  DLTensor f = samples == 0 ? make_tensor(features, kFloat32, feature_shape3 + 1, 2)
                            : make_tensor(features, kFloat32, feature_shape3, 3);
  check(api_->predict_features(handle_, &req, &t, &f, &error), error, "predict_features");
}

UncertaintyInstance::UncertaintyInstance(std::shared_ptr<const PluginInfo> plugin,
                                         std::string instance_name, void* handle)
    : Instance(plugin, std::move(instance_name), handle,
               static_cast<const muki_uncertainty_api*>(plugin->desc->api)->destroy),
      api_(static_cast<const muki_uncertainty_api*>(plugin->desc->api)) {
  muki_uncertainty_info info{};
  info.abi_version = MUKI_ABI_VERSION;
  info.struct_size = sizeof(info);
  muki_error error;
  check(api_->describe(handle_, &info, &error), error, "describe");
  samples_ = info.samples;
  flags_ = info.flags;  // zero-filled for a 1.0 plugin
  // A bit a plugin's own header did not define means nothing: a 1.1 plugin that happened to set
  // 0x4 never asked for a background.
  if (MUKI_VERSION_MINOR(plugin->abi_version) < 2) flags_ &= ~MUKI_UNCERTAINTY_NEEDS_BACKGROUND;
  const bool has_1_1 = MUKI_HAS_FIELD(muki_uncertainty_api, api_, score_teacher);
  if (needs_features() || needs_reference()) {
    if (!has_1_1 || api_->score_teacher == nullptr)
      refuse("needs features or reference data but its function table has no score_teacher");
    if (needs_reference() && api_->fit == nullptr)
      refuse("needs reference data but its function table has no fit");
  }
  // A background is only ever an addition to features and a reference to fit.
  if (needs_background() && !(needs_features() && needs_reference()))
    refuse("asks for a background without asking for features and reference data");
  if (has_1_1) score_teacher_ = api_->score_teacher;
}

void UncertaintyInstance::fit(const ReferenceView& reference) const {
  if (!needs_reference()) refuse("takes no reference data (it did not ask for any)");
  int64_t logit_shape[2] = {reference.rows, reference.num_labels};
  int64_t feature_shape[2] = {reference.rows, reference.feature_dim};
  int64_t label_shape[1] = {reference.rows};
  DLTensor logits = make_tensor(reference.logits, kFloat32, logit_shape, 2);
  DLTensor features = make_tensor(reference.features, kFloat32, feature_shape, 2);
  DLTensor labels = make_tensor(reference.labels, kInt64, label_shape, 1);
  muki_uncertainty_reference r{};
  r.abi_version = MUKI_ABI_VERSION;
  r.struct_size = sizeof(r);
  r.teacher = reference.teacher;
  r.teacher_name = {reference.teacher_name.data(), reference.teacher_name.size()};
  r.logits = &logits;
  r.features = reference.features != nullptr ? &features : nullptr;
  r.labels = reference.labels != nullptr ? &labels : nullptr;
  int64_t background_shape[2] = {reference.background_rows, reference.feature_dim};
  DLTensor background = make_tensor(reference.background, kFloat32, background_shape, 2);
  if (needs_background()) {
    if (reference.background == nullptr || reference.background_rows < 1)
      refuse("needs the transfer set's features of teacher '" + reference.teacher_name +
             "' (a background), and got none");
    r.background_features = &background;
  }
  muki_error error;
  check(api_->fit(handle_, &r, &error), error, "fit");
}

void UncertaintyInstance::score(uint64_t teacher, const float* logits, int64_t k, int64_t b,
                                int64_t c, const float* features, int64_t h, float* out) const {
  if (score_teacher_ == nullptr) {
    score(logits, k, b, c, out);
    return;
  }
  if (features == nullptr && needs_features())
    refuse("needs the features of teacher " + std::to_string(teacher) + ", which has none");
  int64_t logit_shape[3] = {k, b, c};
  int64_t feature_shape[3] = {k, b, h};
  int64_t out_shape[1] = {b};
  DLTensor l = make_tensor(logits, kFloat32, logit_shape, 3);
  DLTensor f = make_tensor(features, kFloat32, feature_shape, 3);
  DLTensor o = make_tensor(out, kFloat32, out_shape, 1);
  muki_score_request req{};
  req.abi_version = MUKI_ABI_VERSION;
  req.struct_size = sizeof(req);
  req.teacher = teacher;
  req.logits = &l;
  req.features = features != nullptr ? &f : nullptr;
  muki_error error;
  check(score_teacher_(handle_, &req, &o, &error), error, "score");
}

void UncertaintyInstance::score(const float* logits, int64_t k, int64_t b, int64_t c,
                                float* out) const {
  int64_t in_shape[3] = {k, b, c};
  int64_t out_shape[1] = {b};
  DLTensor in = make_tensor(logits, kFloat32, in_shape, 3);
  DLTensor o = make_tensor(out, kFloat32, out_shape, 1);
  muki_error error;
  check(api_->score(handle_, &in, &o, &error), error, "score");
}

IntegrationInstance::IntegrationInstance(std::shared_ptr<const PluginInfo> plugin,
                                         std::string instance_name, void* handle)
    : Instance(plugin, std::move(instance_name), handle,
               static_cast<const muki_integration_api*>(plugin->desc->api)->destroy),
      api_(static_cast<const muki_integration_api*>(plugin->desc->api)) {
  info_.abi_version = MUKI_ABI_VERSION;
  info_.struct_size = sizeof(info_);
  muki_error error;
  check(api_->describe(handle_, &info_, &error), error, "describe");
  if (info_.loss > MUKI_LOSS_KL_PER_TEACHER)
    refuse("describes an unknown loss kind " + std::to_string(info_.loss));
  if (!(info_.student_temperature > 0.0f) || !std::isfinite(info_.student_temperature))
    refuse("describes a student temperature that is not a finite number > 0");
  if (info_.feature_objective > MUKI_FEATURE_OBJECTIVE_CFL)
    refuse("describes an unknown feature objective " + std::to_string(info_.feature_objective));
  if (info_.feature_objective != MUKI_FEATURE_OBJECTIVE_NONE &&
      !(info_.feature_weight > 0.0f && std::isfinite(info_.feature_weight)))
    refuse("describes a feature objective whose weight is not a finite number > 0");
}

void IntegrationInstance::integrate(const std::vector<TeacherOutputsView>& teachers,
                                    int64_t batch_size, int64_t union_size, const int64_t* gold,
                                    float* target, float* weight) const {
  const size_t n = teachers.size();
  std::vector<int64_t> shapes(3 * n);
  std::vector<DLTensor> tensors(2 * n);
  std::vector<muki_teacher_outputs> outs(n);
  for (size_t i = 0; i < n; ++i) {
    const auto& t = teachers[i];
    int64_t* s = &shapes[3 * i];
    s[0] = batch_size;
    s[1] = static_cast<int64_t>(t.label_map->size());
    s[2] = batch_size;
    tensors[2 * i] = make_tensor(t.logits, kFloat32, s, 2);
    tensors[2 * i + 1] = make_tensor(t.scores, kFloat32, s + 2, 1);
    outs[i] = muki_teacher_outputs{MUKI_ABI_VERSION, sizeof(muki_teacher_outputs),
                                   &tensors[2 * i], &tensors[2 * i + 1], t.label_map->data(),
                                   t.label_map->size()};
  }
  int64_t gold_shape[1] = {batch_size};
  DLTensor gold_t = make_tensor(gold, kInt64, gold_shape, 1);
  muki_integration_request req{};
  req.abi_version = MUKI_ABI_VERSION;
  req.struct_size = sizeof(req);
  req.teachers = outs.data();
  req.num_teachers = n;
  req.union_size = static_cast<uint64_t>(union_size);
  req.gold = gold != nullptr ? &gold_t : nullptr;
  int64_t target_shape[2] = {batch_size, union_size};
  int64_t weight_shape[1] = {batch_size};
  DLTensor tt = make_tensor(target, kFloat32, target_shape, 2);
  DLTensor wt = make_tensor(weight, kFloat32, weight_shape, 1);
  muki_error error;
  check(api_->integrate(handle_, &req, &tt, &wt, &error), error, "integrate");
}

// ---------------------------------------------------------------------------------------------
// Registry
// ---------------------------------------------------------------------------------------------

Registry::Registry(uint32_t host_abi_version) : host_abi_(host_abi_version) {}
Registry::~Registry() = default;

void Registry::load_library(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw PluginError(path.string() + ": no such file");
  if (!fs::is_regular_file(path, ec)) throw PluginError(path.string() + ": not a regular file");
  const fs::path canonical = fs::canonical(path, ec);
  if (std::find(loaded_paths_.begin(), loaded_paths_.end(), canonical) != loaded_paths_.end())
    return;
  if (const std::string problem = elf_problem(path); !problem.empty())
    throw PluginError(path.string() + ": " + problem);

  boost::dll::shared_library lib;
  boost::dll::fs::error_code dll_ec;
  lib.load(boost::dll::fs::path(canonical.string()),
           boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, dll_ec);
  if (dll_ec) {
    throw PluginError(path.string() + ": cannot be loaded as a shared library: " +
                      dll_ec.message());
  }
  if (!lib.has(MUKI_PLUGIN_ENTRY_SYMBOL))
    throw PluginError(path.string() + ": not a muki plugin (no '" MUKI_PLUGIN_ENTRY_SYMBOL
                                      "' symbol)");
  auto& entry = lib.get<const muki_library_desc*(uint32_t)>(MUKI_PLUGIN_ENTRY_SYMBOL);
  const muki_library_desc* desc = entry(host_abi_);
  register_library(desc, path.string(), canonical,
                   std::make_shared<boost::dll::shared_library>(std::move(lib)));
  loaded_paths_.push_back(canonical);
}

void Registry::register_library(const muki_library_desc* desc, const fs::path& origin) {
  register_library(desc, origin.string(), origin, nullptr);
}

void Registry::register_library(const muki_library_desc* desc, const std::string& where,
                                const fs::path& library_path, std::shared_ptr<void> object) {
  if (desc == nullptr)
    throw PluginError(where + ": the library refused host ABI " + format_abi(host_abi_));
  const uint32_t abi = desc->abi_version;
  if (MUKI_VERSION_MAJOR(abi) != MUKI_VERSION_MAJOR(host_abi_) ||
      MUKI_VERSION_MINOR(abi) > MUKI_VERSION_MINOR(host_abi_)) {
    throw PluginError(where + ": plugin ABI " + format_abi(abi) +
                      " is incompatible with host ABI " + format_abi(host_abi_) +
                      " (the major versions must match and the plugin's minor must not exceed "
                      "the host's)");
  }
  if (desc->struct_size < sizeof(muki_library_desc))
    throw PluginError(where + ": library table is smaller than ABI 1.0's");
  if (desc->num_plugins > 0 && desc->plugins == nullptr)
    throw PluginError(where + ": library declares plugins but has no table");
  if (desc->num_plugins > 0)
    if (std::string problem = misaligned<muki_plugin_desc>("plugin", desc->plugins->struct_size); !problem.empty())
      throw PluginError(where + ": library has " + problem);

  // Check every entry and every name before anything is registered: all or nothing.
  for (uint64_t i = 0; i < desc->num_plugins; ++i) {
    const muki_plugin_desc& d = at(desc->plugins, i);
    if (std::string problem = size_differs("plugin", i, d.struct_size, desc->plugins->struct_size); !problem.empty())
      throw PluginError(where + ": " + problem);
    const std::string problem = check_plugin_desc(d);
    if (!problem.empty()) throw PluginError(where + ": " + problem);
  }
  for (uint64_t i = 0; i < desc->num_plugins; ++i) {
    const auto& d = at(desc->plugins, i);
    const Kind kind = static_cast<Kind>(d.kind);
    if (auto existing = lookup(kind, d.name)) {
      throw PluginError(where + ": " + kind_noun(kind) + " '" + d.name +
                        "' is already provided by " + existing->library_path.string());
    }
    for (uint64_t j = 0; j < i; ++j)
      if (at(desc->plugins, j).kind == d.kind && lower(at(desc->plugins, j).name) == lower(d.name))
        throw PluginError(where + ": " + kind_noun(kind) + " '" + d.name +
                          "' appears twice in the library");
  }

  if (desc->init != nullptr) {
    muki_error error;
    const muki_status status = desc->init(&kHostApi, &error);
    if (status != MUKI_OK)
      throw PluginError(where + ": init failed: " + error_text(status, error));
  }

  auto loaded = std::make_shared<LoadedLibrary>(std::move(object), desc);
  for (uint64_t i = 0; i < desc->num_plugins; ++i) {
    const auto& d = at(desc->plugins, i);
    auto info = std::make_shared<PluginInfo>();
    info->kind = static_cast<Kind>(d.kind);
    info->name = d.name;
    info->version = str(d.version);
    info->description = str(d.description);
    for (uint64_t p = 0; p < d.num_params; ++p) {
      const auto& pd = at(d.params, p);
      ParamInfo param;
      param.name = pd.name;
      param.type = static_cast<muki_param_type>(pd.type);
      param.required = pd.required != 0;
      if (pd.default_value != nullptr) param.default_value = pd.default_value;
      param.doc = str(pd.doc);
      if (pd.min_value <= pd.max_value) {
        param.min_value = pd.min_value;
        param.max_value = pd.max_value;
      }
      param.allow_non_finite =
          MUKI_HAS_FIELD(muki_param_desc, &pd, flags) && (pd.flags & MUKI_PARAM_ALLOW_NON_FINITE);
      info->params.push_back(std::move(param));
    }
    info->library_path = library_path;
    info->library_name = str(desc->name);
    info->library_version = str(desc->version);
    info->abi_version = abi;
    info->library = loaded;
    info->desc = &d;
    plugins_[{info->kind, lower(info->name)}] = std::move(info);
  }
  spdlog::debug("loaded {} ({} plugins, ABI {})", library_path.string(), desc->num_plugins,
                format_abi(abi));
}

std::vector<LoadFailure> Registry::scan(const std::vector<fs::path>& folders) {
  std::vector<LoadFailure> failures;
  for (const auto& folder : folders) {
    std::error_code ec;
    if (!fs::is_directory(folder, ec)) {
      failures.push_back({folder, folder.string() + ": not a folder"});
      continue;
    }
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(folder, ec)) {
      const std::string name = entry.path().filename().string();
      if (entry.is_regular_file() && name.rfind("lib", 0) == 0 && entry.path().extension() == ".so")
        files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      try {
        load_library(file);
      } catch (const PluginError& e) {
        failures.push_back({file, e.what()});
      }
    }
  }
  return failures;
}

std::shared_ptr<const PluginInfo> Registry::lookup(Kind kind, std::string_view name) const {
  auto it = plugins_.find({kind, lower(name)});
  return it == plugins_.end() ? nullptr : it->second;
}

const PluginInfo* Registry::find(Kind kind, std::string_view name) const {
  return lookup(kind, name).get();
}

std::vector<std::string> Registry::names(Kind kind) const {
  std::vector<std::string> out;
  for (const auto& [key, info] : plugins_)
    if (key.first == kind) out.push_back(info->name);
  return out;
}

const PluginInfo& Registry::get(Kind kind, std::string_view name) const {
  if (const PluginInfo* p = find(kind, name)) return *p;
  std::string available;
  for (const auto& n : names(kind)) available += (available.empty() ? "" : ", ") + n;
  throw PluginError(std::string(kind_noun(kind)) + " '" + std::string(name) + "' not found; " +
                    (available.empty() ? "no plugin of that kind is loaded"
                                       : "available: " + available));
}

std::vector<const PluginInfo*> Registry::list() const {
  std::vector<const PluginInfo*> out;
  for (const auto& [key, info] : plugins_) out.push_back(info.get());
  return out;
}

namespace {
template <class Api>
void* create_handle(const std::shared_ptr<const PluginInfo>& info, const CreateArgs& args) {
  const auto* api = static_cast<const Api*>(info->desc->api);
  const std::string dir = args.config_dir.string();
  muki_options options;
  try {
    options.table = toml::parse(args.options_toml, std::string_view("options"));
  } catch (const toml::parse_error& e) {
    throw PluginError(std::string(kind_noun(info->kind)) + " '" + info->name + "' (" +
                      args.instance_name + "): create failed: options are not valid TOML: " +
                      std::string(e.description()));
  }
  const muki_create_args c = make_create_args(args, dir, options, info->name);
  void* handle = nullptr;
  muki_error error;
  const muki_status status = api->create(&c, &handle, &error);
  if (status != MUKI_OK)
    throw PluginError(std::string(kind_noun(info->kind)) + " '" + info->name + "' (" +
                      args.instance_name + "): create failed: " + error_text(status, error));
  if (handle == nullptr)
    throw PluginError(std::string(kind_noun(info->kind)) + " '" + info->name +
                      "': create returned no instance");
  return handle;
}
}  // namespace

std::unique_ptr<TeacherInstance> Registry::create_teacher(std::string_view plugin,
                                                          const CreateArgs& args) const {
  get(Kind::Teacher, plugin);
  auto info = lookup(Kind::Teacher, plugin);
  void* handle = create_handle<muki_teacher_api>(info, args);
  return std::unique_ptr<TeacherInstance>(new TeacherInstance(info, args.instance_name, handle));
}

std::unique_ptr<UncertaintyInstance> Registry::create_uncertainty(std::string_view plugin,
                                                                  const CreateArgs& args) const {
  get(Kind::Uncertainty, plugin);
  auto info = lookup(Kind::Uncertainty, plugin);
  void* handle = create_handle<muki_uncertainty_api>(info, args);
  return std::unique_ptr<UncertaintyInstance>(
      new UncertaintyInstance(info, args.instance_name, handle));
}

std::unique_ptr<IntegrationInstance> Registry::create_integration(std::string_view plugin,
                                                                  const CreateArgs& args) const {
  get(Kind::Integration, plugin);
  auto info = lookup(Kind::Integration, plugin);
  void* handle = create_handle<muki_integration_api>(info, args);
  return std::unique_ptr<IntegrationInstance>(
      new IntegrationInstance(info, args.instance_name, handle));
}

std::vector<fs::path> default_plugin_folders() {
  std::vector<fs::path> out;
  auto add = [&](const fs::path& p) {
    std::error_code ec;
    if (p.empty() || !fs::is_directory(p, ec)) return;
    const fs::path c = fs::canonical(p, ec);
    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  };
  if (const char* env = std::getenv("MUKI_PLUGIN_PATH")) {
    std::stringstream ss(env);
    std::string item;
    while (std::getline(ss, item, ':')) add(item);
  }
  boost::dll::fs::error_code ec;
  const fs::path exe_dir = fs::path(boost::dll::program_location(ec).string()).parent_path();
  if (!ec) {
    add(exe_dir.parent_path() / MUKI_PLUGIN_RELATIVE_DIR);
  }
  return out;
}

}  // namespace muki::registry
