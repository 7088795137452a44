#include "muki/experiment/config.h"

#include "muki/experiment/experiment.h"
#include "muki/io/number_text.h"
#include "muki/text/utf8.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <functional>
#include <optional>
#include <regex>
#include <sstream>

namespace muki::core {
namespace fs = std::filesystem;
using registry::Kind;

std::string ConfigProblem::format() const {
  std::string out = source.empty() ? std::string("<config>") : source;
  if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
  return out + ": " + message;
}

namespace {
std::string join_problems(const std::vector<ConfigProblem>& problems) {
  std::string out;
  for (const auto& p : problems) out += (out.empty() ? "" : "\n") + p.format();
  return out;
}

ConfigProblem problem_at(const toml::source_region& where, std::string message,
                         const std::string& fallback_source) {
  ConfigProblem p;
  p.source = where.path ? *where.path : fallback_source;
  p.line = where.begin.line;
  p.column = where.begin.column;
  p.message = std::move(message);
  return p;
}
}  // namespace

ConfigError::ConfigError(std::vector<ConfigProblem> problems)
    : std::runtime_error(join_problems(problems)), problems_(std::move(problems)) {}

// ---------------------------------------------------------------------------------------------
// Loading and overrides
// ---------------------------------------------------------------------------------------------

Config Config::parse(std::string_view text, std::string source_name, fs::path base_dir) {
  Config config;
  try {
    config.root_ = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    // toml++'s words, with what they are about: the file is not TOML at that position.
    std::string message = "not valid TOML here (" + std::string(e.description()) + ")";
    // What toml++ says of a string whose closing quote is missing: it meets the line's end.
    const std::string_view description = e.description();
    if (description.find("parsing string") != std::string_view::npos &&
        description.find("control characters") != std::string_view::npos)
      message += "; is a closing quote missing? A \"string\" ends on the line it starts on (\"\"\" strings may span lines)";
    throw ConfigError({problem_at(e.source(), message, source_name)});
  }
  config.path_ = source_name;
  config.base_dir_ = fs::absolute(base_dir).lexically_normal();
  return config;
}

Config Config::load(const fs::path& path) {
  // A folder opens as an empty stream on Linux: without this it reads as an empty config and
  // validate lists every required key as missing instead of naming the real mistake.
  std::error_code ec;
  if (fs::is_directory(path, ec))
    throw ConfigError({ConfigProblem{path.string(), 0, 0, "is a folder, not a config file"}});
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError({ConfigProblem{path.string(), 0, 0, "cannot open the config file"}});
  std::stringstream buffer;
  buffer << in.rdbuf();
  Config config = parse(buffer.str(), path.string(), fs::absolute(path).parent_path());
  config.path_ = path;
  return config;
}

namespace {

// "teachers[0].name" and "teachers.0.name" -> {"teachers", "0", "name"}
std::vector<std::string> split_key(std::string_view key) {
  std::vector<std::string> parts;
  std::string current;
  for (char c : key) {
    if (c == '.' || c == '[' || c == ']') {
      if (!current.empty()) parts.push_back(current);
      current.clear();
    } else {
      current += c;
    }
  }
  if (!current.empty()) parts.push_back(current);
  return parts;
}

// The array index `s` spells (digits only), or nullopt; SIZE_MAX (out of every array's range) when
// it does not fit a size_t.
std::optional<size_t> index_of(const std::string& s) {
  if (s.empty() || !std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); }))
    return std::nullopt;
  size_t index = 0;
  if (std::from_chars(s.data(), s.data() + s.size(), index).ec != std::errc()) return SIZE_MAX;
  return index;
}

std::string toml_quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

void Config::apply_override(std::string_view assignment) {
  const std::string source = "--set " + std::string(assignment);
  auto fail = [&](const std::string& message) {
    throw ConfigError({ConfigProblem{source, 0, 0, message}});
  };
  const size_t eq = assignment.find('=');
  if (eq == std::string_view::npos || eq == 0) fail("expected KEY=VALUE, e.g. experiment.seed=2");
  const std::string_view key_text = assignment.substr(0, eq);
  const std::vector<std::string> parts = split_key(key_text);
  if (parts.empty()) fail("empty key");
  if (key_text.front() == '.' || key_text.back() == '.' || key_text.find("..") != std::string_view::npos)
    fail("'" + std::string(key_text) + "' has an empty part; a key is dotted names, e.g. experiment.seed "
         "or teachers.0.name");
  // Keys are TOML strings: UTF-8, or the config would print (print-config) with other keys.
  if (const auto bad = utf8::find_invalid(key_text))
    fail("the key is not valid UTF-8 (byte " + std::to_string(*bad + 1) + ")");
  // No config file can hold such a key as it is, and toml++ prints it unquoted (a newline in a
  // key printed as a line break reads back as another key).
  for (size_t i = 0; i < key_text.size(); ++i)
    if (static_cast<unsigned char>(key_text[i]) < 0x20 || key_text[i] == '\x7f')
      fail("the key holds a control character (byte " + std::to_string(i + 1) +
           "); a key is dotted names, e.g. experiment.seed");
  const std::string value_text(assignment.substr(eq + 1));

  // The value is TOML; a bare word that is not valid TOML is taken as a string.
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + value_text, source);
  } catch (const toml::parse_error&) {
    if (value_text.find_first_of("\"'[]{}\n") != std::string::npos)
      fail("'" + value_text + "' is not a TOML value");
    try {
      parsed = toml::parse("v = " + toml_quote(value_text), source);
    } catch (const toml::parse_error& e) {
      // Bytes that no TOML string holds as they are: control characters, invalid UTF-8.
      fail("'" + value_text + "' is neither a TOML value nor a plain word (" + std::string(e.description()) + ")");
    }
  }
  toml::node& value = *parsed.get("v");

  toml::node* current = &root_;
  std::string walked;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    const std::string& part = parts[i];
    walked += (walked.empty() ? "" : ".") + part;
    if (auto* table = current->as_table()) {
      if (!table->contains(part)) table->insert(part, toml::table{});
      current = table->get(part);
    } else if (auto* array = current->as_array()) {
      const auto index = index_of(part);
      if (!index) fail("'" + walked + "' indexes an array with a non-number");
      if (*index >= array->size())
        fail("'" + walked + "' is out of range (the array has " + std::to_string(array->size()) +
             " elements)");
      current = array->get(*index);
    } else {
      fail("'" + walked + "' is a value, not a table");
    }
  }
  const std::string& last = parts.back();
  if (auto* table = current->as_table()) {
    table->insert_or_assign(last, std::move(value));
  } else if (auto* array = current->as_array()) {
    const auto index = index_of(last);
    if (!index || *index >= array->size()) fail("'" + last + "' is not an index of the array");
    array->replace(array->begin() + static_cast<std::ptrdiff_t>(*index), std::move(value));
  } else {
    fail("'" + walked + "' is a value, not a table");
  }
}

std::string Config::to_toml() const {
  std::ostringstream out;
  out << root_;
  return out.str() + "\n";
}

fs::path output_dir(const Config& config) {
  const std::string name = config.root().at_path("experiment.name").value_or<std::string>("experiment");
  std::string dir = config.root().at_path("experiment.output_dir").value_or<std::string>("runs/${name}");
  // Past each substitution: a name that holds "${name}" itself must not be expanded again.
  for (size_t pos = 0; (pos = dir.find("${name}", pos)) != std::string::npos; pos += name.size())
    dir.replace(pos, 7, name);
  return dir;
}

fs::path cache_dir(const Config& config) {
  if (auto dir = config.root().at_path("experiment.cache_dir").value<std::string>()) return *dir;
  fs::path out = output_dir(config).lexically_normal();
  if (!out.has_filename()) out = out.parent_path();  // "runs/x/"
  return (out.has_parent_path() ? out.parent_path() : fs::path(".")) / "cache";
}

bool path_is_within(const fs::path& path, const fs::path& folder) {
  return std::mismatch(folder.begin(), folder.end(), path.begin(), path.end()).first == folder.end();
}

std::string toml_value_text(const toml::node& node) {
  if (const auto d = node.value_exact<double>()) return shortest_number(*d);
  std::ostringstream text;
  node.visit([&](auto&& v) { text << v; });
  return text.str();
}

Config Config::with_root(toml::table root) const {
  Config out = *this;
  out.root_ = std::move(root);
  return out;
}

std::vector<fs::path> Config::plugin_paths() const {
  std::vector<fs::path> out;
  if (const toml::array* paths = root_.at_path("plugins.paths").as_array())
    for (const toml::node& p : *paths)
      if (auto s = p.value<std::string>()) out.push_back((base_dir_ / *s).lexically_normal());
  return out;
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------
namespace {

// Paths: one path string or an array of them (a split read from several files).
// Name: a string that becomes part of a file name (an experiment's, a teacher's).
enum class Type { Bool, Int, Float, String, Name, Path, Paths, StringArray, Table, TableArray, Device, Options };

struct Field {
  std::string name;
  Type type;
  bool required = false;
  std::vector<Field> children;        // Table / TableArray; empty = any key allowed
  std::vector<std::string> choices;   // String
  double min = 1, max = 0;            // Int / Float; min > max = unbounded
  Kind plugin_kind = Kind::Teacher;   // Options
  std::string plugin_key;             // Options: the sibling key naming the plugin
  bool allow_non_finite = false;      // Float: nan and +-inf accepted (MUKI_PARAM_ALLOW_NON_FINITE)
};

Field req(Field f) {
  f.required = true;
  return f;
}
Field table(std::string name, std::vector<Field> children) {
  return Field{std::move(name), Type::Table, false, std::move(children), {}, 1, 0, Kind::Teacher, {}};
}
Field leaf(std::string name, Type type, double min = 1, double max = 0) {
  return Field{std::move(name), type, false, {}, {}, min, max, Kind::Teacher, {}};
}
Field choice(std::string name, std::vector<std::string> choices) {
  return Field{std::move(name), Type::String, false, {}, std::move(choices), 1, 0, Kind::Teacher, {}};
}
Field options(Kind kind, std::string plugin_key) {
  return Field{"options", Type::Options, false, {}, {}, 1, 0, kind, std::move(plugin_key)};
}

std::vector<Field> dataset_fields(bool needs_label) {
  Field label = leaf("label", Type::String);
  label.required = needs_label;
  return {req(leaf("path", Type::Paths)),
          choice("format", {"tsv", "jsonl", "text"}),
          leaf("text", Type::String),
          label,
          leaf("id", Type::String),
          leaf("group", Type::String),
          choice("on_error", {"fail", "skip"})};
}

// [tokenizer], [model] and [train] of a classifier muki trains: a teacher (`muki teacher train`) or
// the student of `muki run` (training_setup.h reads them).
std::vector<Field> tokenizer_fields(bool type_required = false) {
  Field type = choice("type", {"sentencepiece", "wordpiece"});
  type.required = type_required;
  return {type, leaf("vocab", Type::Path), leaf("lowercase", Type::Bool), leaf("model", Type::Path),
          leaf("vocab_size", Type::Int, 16, 1e7), choice("model_type", {"unigram", "bpe"})};
}
// A teacher may also be a fastText classifier (trained by the `fasttext` tool, word_ngrams
// applies to it alone); a student is one of muki's own models.
std::vector<Field> model_fields(bool teacher = false) {
  std::vector<std::string> types = {"transformer", "bag_of_embeddings", "cnn"};
  if (teacher) types.push_back("fasttext");
  std::vector<Field> fields = {choice("type", types),
          leaf("layers", Type::Int, 1, 64), leaf("hidden", Type::Int, 1, 65536),
          leaf("heads", Type::Int, 1, 256), leaf("ffn", Type::Int, 1, 1e6),
          leaf("max_length", Type::Int, 4, 1e6), leaf("dropout", Type::Float, 0, 0.99),
          choice("pooling", {"cls", "mean"}), leaf("filters", Type::Int, 1, 1e5),
          leaf("init", Type::Path)};
  if (teacher) fields.push_back(leaf("word_ngrams", Type::Int, 1, 5));
  return fields;
}
// The student's also has the learning rate and weight decay of DFA's and CFL's modules.
std::vector<Field> train_fields(bool student = false) {
  std::vector<Field> fields = {
      leaf("epochs", Type::Int, 1, 1e6), leaf("batch_size", Type::Int, 1, 1e6),
      leaf("lr", Type::Float, 1e-12, 10), leaf("weight_decay", Type::Float, 0, 10),
      leaf("warmup", Type::Float, 0, 1), leaf("eval_every", Type::Int, 0, 1e9),
      leaf("patience", Type::Int, 0, 1e9), leaf("grad_clip", Type::Float, 0, 1e6),
      leaf("eval_batch_size", Type::Int, 1, 1e6), leaf("bucket_batches", Type::Int, 0, 1e6),
      choice("precision", {"fp32", "bf16"})};
  if (student) {
    fields.push_back(leaf("feature_lr", Type::Float, 1e-12, 10));
    fields.push_back(leaf("feature_weight_decay", Type::Float, 0, 10));
  }
  return fields;
}

// The host's own schema: everything outside the plugins' option tables.
const std::vector<Field>& experiment_schema() {
  static const std::vector<Field> schema = [] {
    Field teachers{"teachers", Type::TableArray, true,
                   {req(leaf("name", Type::Name)), req(leaf("adapter", Type::String)),
                    table("reference", dataset_fields(true)), options(Kind::Teacher, "adapter")},
                   {}, 1, 0, Kind::Teacher, {}};
    return std::vector<Field>{
        req(table("experiment",
                  {req(leaf("name", Type::Name)), leaf("seed", Type::Int, 0, 9.2e18),
                   leaf("device", Type::Device), leaf("output_dir", Type::String),
                   leaf("cache_dir", Type::String), leaf("threads", Type::Int, 0, 4096),
                   leaf("deterministic", Type::Bool)})),
        table("plugins", {leaf("paths", Type::StringArray)}),
        table("prepare", {leaf("teachers", Type::Paths), leaf("runs", Type::Paths)}),
        table("data", {table("transfer", dataset_fields(false)), table("dev", dataset_fields(true)),
                       table("test", dataset_fields(true))}),
        teachers,
        table("reference", {req(leaf("adapter", Type::String)), options(Kind::Teacher, "adapter")}),
        req(table("uncertainty",
                  {req(leaf("strategy", Type::String)), leaf("calibrate", Type::Bool),
                   leaf("adaptive_tolerance", Type::Float, 0, 1), options(Kind::Uncertainty, "strategy")})),
        req(table("integration",
                  {req(leaf("strategy", Type::String)), options(Kind::Integration, "strategy")})),
        table("student", {table("tokenizer", tokenizer_fields()), table("model", model_fields()),
                          table("train", train_fields(/*student=*/true))}),
        table("report", {leaf("compare", Type::Paths)}),
        // Used when the process is one rank of a job (RANK, WORLD_SIZE, ...; process_group.h).
        table("distributed", {choice("backend", {"auto", "gloo"}), leaf("timeout_s", Type::Int, 1, 604800),
                              leaf("chunk_size", Type::Int, 1, 1e9)}),
    };
  }();
  return schema;
}

// `muki teacher train`'s own file: one teacher, trained on the labeled examples of its labels.
// `several`: [[teacher]] entries, each of which may also override keys of the shared tables.
const std::vector<Field>& teacher_training_schema(bool several) {
  auto make = [](bool many) {
    std::vector<Field> teacher = {req(leaf("name", Type::Name)), req(leaf("output", Type::String)),
                                  leaf("labels", Type::StringArray), leaf("seed", Type::Int, 0, 9.2e18),
                                  leaf("device", Type::Device), leaf("threads", Type::Int, 0, 4096)};
    auto data = [](bool train_required) {
      Field train = table("train", dataset_fields(true));
      train.required = train_required;
      return table("data", {train, table("dev", dataset_fields(true)), table("test", dataset_fields(true))});
    };
    if (many)
      teacher.insert(teacher.end(), {data(false), table("tokenizer", tokenizer_fields()),
                                     table("model", model_fields(/*teacher=*/true)), table("train", train_fields())});
    Field teachers = table("teacher", teacher);
    if (many) teachers.type = Type::TableArray;
    Field shared_data = data(true);
    shared_data.required = true;
    return std::vector<Field>{req(teachers), shared_data, table("tokenizer", tokenizer_fields()),
                              req(table("model", model_fields(/*teacher=*/true))), table("train", train_fields())};
  };
  static const std::vector<Field> one = make(false), many = make(true);
  return several ? many : one;
}

// `muki pretrain`'s file (configs/pretrain/): the corpus, the vocabulary, the encoder's sizes and
// the schedule. The encoder is muki's Transformer; pooling is saved with it as the default of the
// models fine-tuned from it.
const std::vector<Field>& pretraining_schema() {
  static const std::vector<Field> schema = {
      req(table("pretrain", {req(leaf("output", Type::String)), leaf("seed", Type::Int, 0, 9.2e18),
                             leaf("device", Type::Device), leaf("threads", Type::Int, 0, 4096),
                             leaf("mask_probability", Type::Float, 0.01, 0.5)})),
      req(table("data", {req(table("train", dataset_fields(false))), table("heldout", dataset_fields(false)),
                         leaf("heldout_fraction", Type::Float, 0, 0.5)})),
      table("tokenizer", {choice("type", {"wordpiece"}), leaf("vocab", Type::Path), leaf("lowercase", Type::Bool),
                          leaf("vocab_size", Type::Int, 16, 1e7)}),
      table("model", {choice("type", {"transformer"}), leaf("layers", Type::Int, 1, 64),
                      leaf("hidden", Type::Int, 1, 65536), leaf("heads", Type::Int, 1, 256),
                      leaf("ffn", Type::Int, 1, 1e6), leaf("max_length", Type::Int, 4, 1e6),
                      leaf("dropout", Type::Float, 0, 0.99), choice("pooling", {"cls", "mean"})}),
      req(table("train", {req(leaf("steps", Type::Int, 1, 1e9)), leaf("batch_size", Type::Int, 1, 1e6),
                          leaf("lr", Type::Float, 1e-12, 10), leaf("weight_decay", Type::Float, 0, 10),
                          leaf("warmup", Type::Float, 0, 1), leaf("eval_every", Type::Int, 1, 1e9),
                          leaf("grad_clip", Type::Float, 0, 1e6), leaf("eval_batch_size", Type::Int, 1, 1e6)}))};
  return schema;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string known_keys_hint(std::string_view key, const std::vector<std::string>& known) {
  std::string best;
  size_t best_distance = 3;
  std::string all;
  for (const auto& k : known) {
    const size_t d = edit_distance(key, k);
    if (d < best_distance) {
      best_distance = d;
      best = k;
    }
    all += (all.empty() ? "" : ", ") + k;
  }
  if (!best.empty()) return " (did you mean '" + best + "'?)";
  return all.empty() ? std::string(" (this table takes no keys)") : " (known keys: " + all + ")";
}

const char* type_noun(Type t) {
  switch (t) {
    case Type::Bool: return "a boolean";
    case Type::Int: return "an integer";
    case Type::Float: return "a number";
    case Type::String: return "a string";
    case Type::Name: return "a name string";
    case Type::Path: return "a path string";
    case Type::Paths: return "a path string or an array of them";
    case Type::StringArray: return "an array of strings";
    case Type::Table: return "a table";
    case Type::TableArray: return "an array of tables ([[...]])";
    case Type::Device: return "a device string (auto, cpu, cuda or cuda:N)";
    case Type::Options: return "a table";
  }
  return "?";
}

Type from_param(muki_param_type t) {
  switch (t) {
    case MUKI_PARAM_BOOL: return Type::Bool;
    case MUKI_PARAM_INT: return Type::Int;
    case MUKI_PARAM_FLOAT: return Type::Float;
    case MUKI_PARAM_STRING: return Type::String;
    case MUKI_PARAM_PATH: return Type::Path;
    case MUKI_PARAM_STRING_ARRAY: return Type::StringArray;
  }
  return Type::String;
}

class Validator {
 public:
  Validator(const Config& config, const registry::Registry& registry)
      : config_(config), registry_(registry) {}

  std::vector<ConfigProblem> run() { return run(experiment_schema()); }
  std::vector<ConfigProblem> run(const std::vector<Field>& schema) {
    check_table(config_.root(), schema, "");
    return std::move(problems_);
  }
  // A problem found by a check outside the schema (cross-field rules).
  void add(const toml::node& where, std::string message) { report(where, std::move(message)); }

 private:
  void report(const toml::node& where, std::string message) {
    problems_.push_back(problem_at(where.source(), std::move(message), config_.path().string()));
  }

  static std::string join(const std::string& prefix, std::string_view key) {
    return prefix.empty() ? std::string(key) : prefix + "." + std::string(key);
  }

  void check_table(const toml::table& table, const std::vector<Field>& fields,
                   const std::string& prefix) {
    std::vector<std::string> known;
    for (const auto& f : fields) known.push_back(f.name);
    for (auto&& [key, node] : table) {
      auto it = std::find_if(fields.begin(), fields.end(),
                             [name = key.str()](const Field& f) { return f.name == name; });
      if (it == fields.end()) {
        // A key that --set added has no position of its own; its value's says which --set.
        problems_.push_back(problem_at(key.source().path ? key.source() : node.source(),
                                       "unknown key '" + join(prefix, key.str()) + "'" +
                                           known_keys_hint(key.str(), known),
                                       config_.path().string()));
        continue;
      }
      check_value(node, *it, join(prefix, key.str()), table);
    }
    for (const auto& f : fields)
      if (f.required && !table.contains(f.name))
        report(table, "missing required key '" + join(prefix, f.name) + "'");
  }

  void check_value(const toml::node& node, const Field& field, const std::string& key,
                   const toml::table& parent) {
    auto wrong_type = [&] { report(node, "'" + key + "' must be " + type_noun(field.type)); };
    switch (field.type) {
      case Type::Bool:
        if (!node.is_boolean()) wrong_type();
        break;
      case Type::Int:
        if (!node.is_integer()) return wrong_type();
        check_bounds(node, field, key, static_cast<double>(*node.value<int64_t>()));
        break;
      case Type::Float: {
        if (!node.is_number()) return wrong_type();
        const double value = *node.value<double>();
        // nan passes every bounds check (each comparison is false): refuse it by name.
        if (!std::isfinite(value) && !field.allow_non_finite)
          return report(node, "'" + key + "' is " + shortest_number(value) +
                                  "; it must be a finite number");
        check_bounds(node, field, key, value);
        break;
      }
      case Type::String: {
        if (!node.is_string()) return wrong_type();
        const std::string value = *node.value<std::string>();
        if (!field.choices.empty() &&
            std::find(field.choices.begin(), field.choices.end(), value) == field.choices.end()) {
          std::string all;
          for (const auto& c : field.choices) all += (all.empty() ? "" : ", ") + c;
          report(node, "'" + key + "' is \"" + value + "\"; expected one of: " + all);
        }
        break;
      }
      case Type::Name: {
        if (!node.is_string()) return wrong_type();
        // It becomes a folder or file name (runs/${name}, the teacher-pass cache): no separators,
        // no "..", nothing a shell or another platform trips over.
        const std::string value = *node.value<std::string>();
        const bool safe = !value.empty() && value.size() <= 100 && value.front() != '.' &&
                          std::all_of(value.begin(), value.end(), [](char c) {
                            return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
                          });
        if (!safe)
          report(node, "'" + key + "' is \"" + value + "\"; a name may hold only letters, digits, '.', '_' "
                       "and '-' (at most 100, not starting with '.'): it names files");
        break;
      }
      case Type::Path:
        if (!node.is_string()) return wrong_type();
        check_exists(node, key);
        break;
      case Type::Paths:
        if (node.is_string()) {
          check_exists(node, key);
        } else if (const toml::array* array = node.as_array(); array != nullptr && !array->empty()) {
          for (const toml::node& item : *array)
            if (!item.is_string()) report(item, "'" + key + "' must hold only path strings");
            else check_exists(item, key);
        } else {
          wrong_type();
        }
        break;
      case Type::StringArray: {
        const toml::array* array = node.as_array();
        if (array == nullptr) return wrong_type();
        for (const toml::node& item : *array)
          if (!item.is_string()) report(item, "'" + key + "' must hold only strings");
        break;
      }
      case Type::Device: {
        static const std::regex device("auto|cpu|cuda(:[0-9]+)?");
        if (!node.is_string() || !std::regex_match(*node.value<std::string>(), device))
          wrong_type();
        break;
      }
      case Type::Table:
        if (!node.is_table()) return wrong_type();
        if (!field.children.empty()) check_table(*node.as_table(), field.children, key);
        break;
      case Type::TableArray: {
        const toml::array* array = node.as_array();
        if (array == nullptr || !array->is_array_of_tables()) return wrong_type();
        if (array->empty()) report(node, "'" + key + "' must not be empty");
        for (size_t i = 0; i < array->size(); ++i)
          check_table(*array->get(i)->as_table(), field.children,
                      key + "[" + std::to_string(i) + "]");
        check_unique_names(*array, key);
        break;
      }
      case Type::Options:
        if (!node.is_table()) return wrong_type();
        check_plugin_options(*node.as_table(), field, key, parent);
        break;
    }
  }

  // A path that does not exist is fine when [prepare] will create it.
  void check_exists(const toml::node& node, const std::string& key) {
    const fs::path p = (config_.base_dir() / *node.value<std::string>()).lexically_normal();
    std::error_code ec;
    if (fs::exists(p, ec)) return;
    for (const fs::path& prepared : prepared_)
      if (path_is_within(p, prepared)) return;
    report(node, "'" + key + "': " + p.string() + " does not exist");
  }

 public:
  void set_prepared(std::vector<fs::path> prepared) { prepared_ = std::move(prepared); }

 private:
  void check_bounds(const toml::node& node, const Field& field, const std::string& key,
                    double value) {
    if (field.min > field.max) return;
    if (value < field.min || value > field.max) {
      std::ostringstream msg;
      msg << "'" << key << "' is " << value << "; it must lie in [" << field.min << ", "
          << field.max << "]";
      report(node, msg.str());
    }
  }

  void check_unique_names(const toml::array& array, const std::string& key) {
    std::vector<std::string> seen;
    for (const toml::node& item : array) {
      const toml::node* name = item.as_table()->get("name");
      if (name == nullptr || !name->is_string()) continue;
      const std::string n = *name->value<std::string>();
      if (std::find(seen.begin(), seen.end(), n) != seen.end())
        report(*name, "'" + key + "' has two entries named \"" + n + "\"");
      seen.push_back(n);
    }
  }

  void check_plugin_options(const toml::table& options, const Field& field,
                            const std::string& key, const toml::table& parent) {
    const toml::node* plugin_node = parent.get(field.plugin_key);
    if (plugin_node == nullptr || !plugin_node->is_string()) return;  // reported elsewhere
    const std::string plugin = *plugin_node->value<std::string>();
    const registry::PluginInfo* info = registry_.find(field.plugin_kind, plugin);
    if (info == nullptr) return;  // reported by check_plugin_names
    std::vector<Field> fields;
    for (const auto& p : info->params) {
      Field f = leaf(p.name, from_param(p.type));
      f.required = p.required;
      if (p.min_value && p.max_value) {
        f.min = *p.min_value;
        f.max = *p.max_value;
      }
      f.allow_non_finite = p.allow_non_finite;
      fields.push_back(std::move(f));
    }
    check_table(options, fields, key);
  }

 public:
  // Plugin names are checked separately so that a missing plugin gets one clear line.
  void check_plugin_names() {
    auto check = [&](const toml::node* node, Kind kind, const std::string& key) {
      if (node == nullptr || !node->is_string()) return;
      const std::string name = *node->value<std::string>();
      if (registry_.find(kind, name) != nullptr) return;
      std::string available;
      for (const auto& n : registry_.names(kind)) available += (available.empty() ? "" : ", ") + n;
      report(*node, "'" + key + "': " + registry::kind_noun(kind) + " '" + name +
                        "' not found; " +
                        (available.empty() ? std::string("no plugin of that kind is loaded")
                                           : "available: " + available));
    };
    const toml::table& root = config_.root();
    if (const toml::array* teachers = root.get_as<toml::array>("teachers"))
      for (size_t i = 0; i < teachers->size(); ++i)
        if (const toml::table* t = teachers->get(i)->as_table())
          check(t->get("adapter"), Kind::Teacher, "teachers[" + std::to_string(i) + "].adapter");
    check(root.at_path("reference.adapter").node(), Kind::Teacher, "reference.adapter");
    check(root.at_path("uncertainty.strategy").node(), Kind::Uncertainty, "uncertainty.strategy");
    check(root.at_path("integration.strategy").node(), Kind::Integration, "integration.strategy");
  }

 private:
  const Config& config_;
  const registry::Registry& registry_;
  std::vector<ConfigProblem> problems_;
  std::vector<fs::path> prepared_;  // absolute, normalised
};

// Looks a key of the "tokenizer" or "model" section up.
using Lookup = std::function<const toml::node*(const char* section, const char* key)>;

// In the given tables, else (a teacher entry's overrides over the shared tables) in `fallback`.
Lookup tables_lookup(const toml::table* tok, const toml::table* model, Lookup fallback = nullptr) {
  return [tok, model, fallback](const char* section, const char* key) -> const toml::node* {
    const toml::table* t = std::string_view(section) == "tokenizer" ? tok : model;
    if (const toml::node* n = t != nullptr ? t->get(key) : nullptr) return n;
    return fallback ? fallback(section, key) : nullptr;
  };
}

// Rules that tie two keys of the tokenizer and model tables together, reported at the key a user
// would edit. `prefix` is "" (teacher training) or "student." (an experiment's student).
// What `muki run` would otherwise refuse only after it started (issue 11, finding 7).
void check_run_rules(Validator& v, const Config& config, const registry::Registry& registry) {
  const toml::table& root = config.root();
  if (const toml::node* dir = root.at_path("experiment.output_dir").node(); dir != nullptr && dir->is_string()) {
    const std::string value = *dir->value<std::string>();
    std::string rest = value;
    for (size_t pos; (pos = rest.find("${name}")) != std::string::npos;) rest.erase(pos, 7);
    if (value.empty())
      v.add(*dir, "'experiment.output_dir' is empty; give the run a folder, e.g. \"runs/${name}\"");
    else if (rest.find("${") != std::string::npos)
      v.add(*dir, "'experiment.output_dir' is \"" + value + "\"; the only variable it may hold is ${name}");
  }
  const toml::node* strategy = root.at_path("integration.strategy").node();
  if (strategy == nullptr || !strategy->is_string() ||
      registry.find(Kind::Integration, *strategy->value<std::string>()) == nullptr)
    return;
  const std::string name = *strategy->value<std::string>();
  std::unique_ptr<registry::IntegrationInstance> instance;
  try {
    instance = create_integration(config, registry, name);
  } catch (const std::exception&) {
    return;  // bad options: the schema says which
  }
  if (instance->needs_gold() && !root.at_path("data.transfer.label").is_string())
    v.add(*strategy, "'integration.strategy' is \"" + name + "\", which trains on the transfer set's labels (an "
                     "upper bound for analysis): set data.transfer.label to the label column");
}

void check_training_rules(Validator& v, const Lookup& get, const std::string& prefix) {
  // A model fine-tuned from a pre-trained encoder has the encoder's tokenizer and sizes.
  if (const toml::node* init = get("model", "init"); init != nullptr) {
    for (const char* key : {"type", "vocab", "lowercase", "model", "vocab_size", "model_type"})
      if (const toml::node* n = get("tokenizer", key))
        v.add(*n, "'" + prefix + "tokenizer." + key + "': a model fine-tuned from '" + prefix +
                      "model.init' uses the encoder's own tokenizer; leave the tokenizer table out");
    for (const char* key : {"type", "layers", "hidden", "heads", "ffn", "max_length", "filters", "word_ngrams"})
      if (const toml::node* n = get("model", key))
        v.add(*n, "'" + prefix + "model." + key + "' comes from the pre-trained encoder '" + prefix +
                      "model.init'; leave it out (only dropout and pooling may be set)");
    return;
  }
  auto text = [&](const char* section, const char* key, const char* fallback) {
    const toml::node* n = get(section, key);
    return n != nullptr ? n->value_or(std::string(fallback)) : std::string(fallback);
  };
  const std::string tok_type = text("tokenizer", "type", "wordpiece");
  if (const toml::node* m = get("tokenizer", "model"); m != nullptr && tok_type == "wordpiece")
    v.add(*m, "'" + prefix + "tokenizer.model' is for \"sentencepiece\"; a WordPiece vocabulary is '" +
                  prefix + "tokenizer.vocab' (or none: one is built from the training texts)");
  if (const toml::node* size = get("tokenizer", "vocab_size"); size != nullptr && get("tokenizer", "vocab") != nullptr)
    v.add(*size, "'" + prefix + "tokenizer.vocab_size' applies only when no vocabulary file is given "
                 "(one is then built from the training texts)");
  if (const toml::node* vocab = get("tokenizer", "vocab"); vocab != nullptr && tok_type == "sentencepiece")
    v.add(*vocab, "'" + prefix + "tokenizer.vocab' is for \"wordpiece\"; a SentencePiece model is '" +
                      prefix + "tokenizer.model' (or none: one is trained on the training texts)");
  const toml::node* hidden = get("model", "hidden");
  const toml::node* heads = get("model", "heads");
  if (hidden == nullptr || heads == nullptr || text("model", "type", "transformer") != "transformer") return;
  const auto h = hidden->value<int64_t>(), n = heads->value<int64_t>();
  if (h && n && *n > 0 && *h % *n != 0)
    v.add(*heads, "'" + prefix + "model.heads' (" + std::to_string(*n) + ") must divide '" + prefix +
                      "model.hidden' (" + std::to_string(*h) + ")");
}

// The labels of one teacher: not empty, no empty name, none twice.
void check_labels(Validator& v, const toml::node* labels_node) {
  const toml::array* labels = labels_node != nullptr ? labels_node->as_array() : nullptr;
  if (labels == nullptr) return;
  if (labels->empty()) v.add(*labels, "'teacher.labels' must not be empty (leave it out for all labels)");
  std::vector<std::string> seen;
  for (const toml::node& item : *labels) {
    const auto name = item.value<std::string>();
    if (!name) continue;  // the schema reports it
    if (name->empty()) v.add(item, "'teacher.labels' holds an empty label name");
    if (std::find(seen.begin(), seen.end(), *name) != seen.end())
      v.add(item, "'teacher.labels' lists \"" + *name + "\" twice");
    seen.push_back(*name);
  }
}

}  // namespace

std::vector<fs::path> config_paths(const Config& config, const std::string& dotted_key) {
  std::vector<fs::path> paths;
  const toml::node* node = config.root().at_path(dotted_key).node();
  if (node == nullptr) return paths;
  if (auto one = node->value<std::string>()) paths.push_back(config.base_dir() / *one);
  if (const toml::array* many = node->as_array())
    for (const toml::node& p : *many)
      if (auto s = p.value<std::string>()) paths.push_back(config.base_dir() / *s);
  return paths;
}

std::vector<ConfigProblem> sorted_unique(std::vector<ConfigProblem> problems) {
  std::stable_sort(problems.begin(), problems.end(),
                   [](const ConfigProblem& a, const ConfigProblem& b) {
                     return std::tie(a.source, a.line, a.column) < std::tie(b.source, b.line, b.column);
                   });
  problems.erase(std::unique(problems.begin(), problems.end(),
                             [](const ConfigProblem& a, const ConfigProblem& b) {
                               return a.format() == b.format();
                             }),
                 problems.end());
  return problems;
}

namespace {
std::vector<ConfigProblem> validate_experiment(const Config& config, const registry::Registry& registry,
                                               int depth) {
  Validator v(config, registry);
  v.set_prepared(prepared_outputs(config));
  v.check_plugin_names();
  check_run_rules(v, config, registry);
  check_training_rules(v, tables_lookup(config.root().at_path("student.tokenizer").as_table(),
                                        config.root().at_path("student.model").as_table()),
                       "student.");
  std::vector<ConfigProblem> problems = v.run();
  // What [prepare] will train or run is checked now too, each problem at its own file.
  auto add = [&](std::vector<ConfigProblem> more) { problems.insert(problems.end(), more.begin(), more.end()); };
  auto load = [&](const fs::path& file) -> std::optional<Config> {
    try {
      return Config::load(file);
    } catch (const ConfigError& e) {
      add(e.problems());
      return std::nullopt;
    }
  };
  for (const fs::path& file : config_paths(config, "prepare.teachers"))
    if (fs::exists(file))
      if (auto c = load(file)) add(validate_teacher_training(*c));
  for (const fs::path& file : config_paths(config, "prepare.runs")) {
    if (!fs::exists(file)) continue;  // reported by the schema
    if (depth >= 8) {
      problems.push_back(ConfigProblem{config.path().string(), 0, 0,
                                       "prepare.runs nests more than 8 experiments deep (a cycle?)"});
      break;
    }
    if (auto c = load(file)) add(validate_experiment(*c, registry, depth + 1));
  }
  return sorted_unique(std::move(problems));
}
}  // namespace

std::vector<ConfigProblem> validate(const Config& config, const registry::Registry& registry) {
  return validate_experiment(config, registry, 0);
}

std::vector<Config> teacher_entries(const Config& file) {
  const toml::array* array = file.root().get_as<toml::array>("teacher");
  if (array == nullptr || !array->is_array_of_tables()) return {file};
  std::vector<Config> out;
  for (const toml::node& node : *array) {
    toml::table root = file.root();
    root.erase("teacher");
    toml::table entry = *node.as_table();
    for (const char* section : {"data", "tokenizer", "model", "train"}) {
      const toml::table* over = entry.get_as<toml::table>(section);
      if (over == nullptr) continue;  // absent, or not a table: the schema reports it
      toml::table merged;
      if (const toml::table* shared = root.get_as<toml::table>(section)) merged = *shared;
      for (auto&& [key, value] : *over) merged.insert_or_assign(key, value);
      root.insert_or_assign(section, std::move(merged));
      entry.erase(section);
    }
    root.insert_or_assign("teacher", std::move(entry));
    out.push_back(file.with_root(std::move(root)));
  }
  return out;
}

std::vector<ConfigProblem> validate_pretraining(const Config& config) {
  const registry::Registry no_plugins;
  Validator v(config, no_plugins);
  const toml::table& root = config.root();
  check_training_rules(v, tables_lookup(root.get_as<toml::table>("tokenizer"), root.get_as<toml::table>("model")), "");
  if (const toml::node* fraction = root.at_path("data.heldout_fraction").node();
      fraction != nullptr && root.at_path("data.heldout").node() != nullptr)
    v.add(*fraction, "'data.heldout_fraction' applies only without a [data.heldout] corpus");
  return sorted_unique(v.run(pretraining_schema()));
}

std::vector<ConfigProblem> validate_teacher_training(const Config& config) {
  const registry::Registry no_plugins;  // a teacher-training file configures no plugin
  Validator v(config, no_plugins);
  const toml::table& root = config.root();
  const toml::array* entries = root.get_as<toml::array>("teacher");
  const bool several = entries != nullptr && entries->is_array_of_tables();
  const Lookup shared = tables_lookup(root.get_as<toml::table>("tokenizer"), root.get_as<toml::table>("model"));
  if (!several) {
    check_training_rules(v, shared, "");
    check_labels(v, root.at_path("teacher.labels").node());
    return sorted_unique(v.run(teacher_training_schema(false)));
  }
  // Each entry is checked where it stands: its own keys and overrides at their positions, the
  // rules on the merged values (copies of toml nodes lose their positions, so nothing is merged).
  std::vector<std::string> outputs;
  for (const toml::node& node : *entries) {
    const toml::table& entry = *node.as_table();
    check_training_rules(v, tables_lookup(entry.get_as<toml::table>("tokenizer"),
                                          entry.get_as<toml::table>("model"), shared),
                         "");
    check_labels(v, entry.get("labels"));
    // Two teachers writing one folder would overwrite each other.
    if (const toml::node* out = entry.get("output"); out != nullptr && out->is_string()) {
      const std::string value = *out->value<std::string>();
      if (std::find(outputs.begin(), outputs.end(), value) != outputs.end())
        v.add(*out, "two [[teacher]] entries have output \"" + value + "\"");
      outputs.push_back(value);
    }
  }
  return sorted_unique(v.run(teacher_training_schema(true)));
}

namespace {
// What [prepare] makes: each output folder, with the file whose presence says it is complete (the
// tests train_teachers and prepare_experiment make before skipping it).
std::vector<std::pair<fs::path, const char*>> prepare_products(const Config& experiment) {
  std::vector<std::pair<fs::path, const char*>> out;
  for (const fs::path& file : config_paths(experiment, "prepare.teachers")) {
    try {
      for (const Config& entry : teacher_entries(Config::load(file)))
        if (auto output = entry.root().at_path("teacher.output").value<std::string>())
          out.emplace_back(fs::absolute(*output).lexically_normal(), "train_report.json");
    } catch (const ConfigError&) {
    }
  }
  for (const fs::path& file : config_paths(experiment, "prepare.runs")) {
    try {
      out.emplace_back(fs::absolute(output_dir(Config::load(file))).lexically_normal(), "summary.json");
    } catch (const ConfigError&) {
    }
  }
  return out;
}
}  // namespace

std::vector<fs::path> prepared_outputs(const Config& experiment) {
  std::vector<fs::path> out;
  for (const auto& [folder, marker] : prepare_products(experiment)) out.push_back(folder);
  return out;
}

bool prepare_pending(const Config& experiment) {
  std::error_code ec;
  for (const auto& [folder, marker] : prepare_products(experiment))
    if (!fs::exists(folder / marker, ec)) return true;
  return false;
}

std::string plugin_options_toml(const toml::table* options, const Config& config,
                                const registry::Registry& registry, Kind kind,
                                std::string_view plugin_name) {
  if (options == nullptr) return {};
  const registry::PluginInfo& info = registry.get(kind, plugin_name);
  toml::table resolved = *options;
  resolved.is_inline(false);  // key = value lines, not "{ ... }"
  for (const auto& p : info.params) {
    if (p.type != MUKI_PARAM_PATH) continue;
    if (auto value = resolved[p.name].value<std::string>())
      resolved.insert_or_assign(p.name, (config.base_dir() / *value).lexically_normal().string());
  }
  std::ostringstream out;
  out << resolved;
  return out.str();
}

}  // namespace muki::core
