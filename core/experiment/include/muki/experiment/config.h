// Experiment configuration: one TOML file, `--set a.b=VALUE` overrides (defaults < file < CLI),
// and validation against the host's own schema and the plugins' parameter schemas. Every problem
// is reported as "file:line:col: message"; validation collects all of them, not just the first.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <muki/registry/registry.h>
#include <toml++/toml.h>

namespace muki::core {

struct ConfigProblem {
  std::string source;  // the file, or "--set key" for an override
  uint32_t line = 0;   // 1-based; 0 when unknown
  uint32_t column = 0;
  std::string message;
  std::string format() const;  // "source:line:col: message"
};

// Thrown when a config cannot be read or an override cannot be applied; what() holds every
// problem, one per line.
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(std::vector<ConfigProblem> problems);
  const std::vector<ConfigProblem>& problems() const { return problems_; }

 private:
  std::vector<ConfigProblem> problems_;
};

class Config {
 public:
  // Parses a TOML file. Throws ConfigError (file:line:col) on a syntax error or missing file.
  static Config load(const std::filesystem::path& path);
  // Parses TOML text; `source_name` names it in messages.
  static Config parse(std::string_view text, std::string source_name,
                      std::filesystem::path base_dir);

  // Applies "dotted.key=VALUE" where VALUE is a TOML value (strings need quotes; a bare word that
  // is not a TOML value is taken as a string, so `--set experiment.device=cpu` works). Array
  // elements are addressed as teachers.0.name or teachers[0].name. Missing tables are created.
  void apply_override(std::string_view assignment);

  const toml::table& root() const { return root_; }
  toml::table& root() { return root_; }
  const std::filesystem::path& path() const { return path_; }
  // Folder relative paths in the file are resolved against (absolute).
  const std::filesystem::path& base_dir() const { return base_dir_; }

  // The resolved config as TOML text.
  std::string to_toml() const;

  // A config with another root table and this one's file name and folder (for configs derived
  // from a file, such as one teacher of a teacher-training file). toml++ does not copy source
  // positions: validate the original, not the derived config.
  Config with_root(toml::table root) const;

  // [plugins].paths resolved against base_dir().
  std::vector<std::filesystem::path> plugin_paths() const;

 private:
  toml::table root_;
  std::filesystem::path path_;
  std::filesystem::path base_dir_;
};

// Checks the whole experiment: the host's sections and keys (types, required keys, allowed
// values, unknown keys with a suggestion), then every `options` table against the schema of the
// plugin it configures (looked up in `registry`), including that PATH options exist. Returns
// every problem found; empty means valid.
std::vector<ConfigProblem> validate(const Config& config, const registry::Registry& registry);

// Problems sorted by source and position, each reported once (a problem found by several checks,
// or in several configs made from one file, such as a sweep's runs).
std::vector<ConfigProblem> sorted_unique(std::vector<ConfigProblem> problems);

// The teachers of a `muki teacher train` file, one single-teacher config each. The file holds one
// [teacher] table, or several [[teacher]] entries that share its [data], [tokenizer], [model] and
// [train] tables; an entry may override keys of those tables (`model = { type = "cnn" }`), which
// are then merged in, key by key. A file of the first kind comes back as it is. The derived
// configs have no source positions (see Config::with_root).
std::vector<Config> teacher_entries(const Config& file);

// Checks a `muki teacher train` file against its own schema ([teacher] or [[teacher]], [data],
// [tokenizer], [model], [train]; see configs/teachers/) plus the rules tying keys together (heads
// must divide hidden, labels listed once, teacher names and outputs unique). Returns every problem
// as file:line:col, sorted by position; empty means valid. Does not read the data files.
std::vector<ConfigProblem> validate_teacher_training(const Config& config);

// Checks a `muki pretrain` file (muki 0.3; configs/pretrain/): [pretrain], [data] (train, heldout
// or heldout_fraction), [tokenizer], [model], [train] (steps required). Returns every problem as
// file:line:col, sorted; empty means valid. Does not read the corpus.
std::vector<ConfigProblem> validate_pretraining(const Config& config);

// The paths a key holds ("prepare.teachers", "report.compare": one path string or an array of
// them), resolved against the config's folder; empty when the key is absent.
std::vector<std::filesystem::path> config_paths(const Config& config, const std::string& dotted_key);

// Absolute paths that an experiment's [prepare] section will create before it runs: the output
// folder of every teacher of its `teachers` files and the output folder of every experiment of
// its `runs` files (relative to the working folder, as muki resolves them). Files that cannot be
// read are left out (validate reports them).
std::vector<std::filesystem::path> prepared_outputs(const Config& experiment);
// True while [prepare] still has something to make: a teacher without the train_report.json
// `muki teacher train` writes last, or an experiment without its summary.json.
bool prepare_pending(const Config& experiment);

// [experiment].output_dir with ${name} replaced by [experiment].name; default "runs/${name}".
// Relative to the working folder, like every output path a user types.
std::filesystem::path output_dir(const Config& config);

// [experiment].cache_dir (relative to the working folder); default: "cache" beside the output
// folder (runs/cache for runs/<name>), so sibling runs share their teacher passes.
std::filesystem::path cache_dir(const Config& config);

// Whether `path` is `folder` or lies below it, comparing the paths' elements as given (normalise
// both first).
bool path_is_within(const std::filesystem::path& path, const std::filesystem::path& folder);

// A TOML value as text: floats in the shortest form that reads back exactly ("0.2", not
// "0.20000000000000001"), anything else as toml++ prints it (strings in single quotes).
std::string toml_value_text(const toml::node& node);

// The options sub-table of a plugin as TOML text for create(), with PATH parameters made absolute
// against the config's base folder. `options` may be null (no options given).
std::string plugin_options_toml(const toml::table* options, const Config& config,
                                const registry::Registry& registry, registry::Kind kind,
                                std::string_view plugin_name);

}  // namespace muki::core
