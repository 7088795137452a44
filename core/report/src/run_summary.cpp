#include "muki/report/run_summary.h"

#include <stdexcept>

namespace muki::core {

namespace {

const std::string kTeacherPrefix = "test.teacher.", kAccuracySuffix = ".accuracy";
const std::string kClassPrefix = "test.class.", kRecallSuffix = ".recall";
const std::string kOptions = ".options.";

bool has_prefix_suffix(const std::string& key, const std::string& prefix, const std::string& suffix) {
  return key.size() > prefix.size() + suffix.size() && key.rfind(prefix, 0) == 0 &&
         key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string between(const std::string& key, const std::string& prefix, const std::string& suffix) {
  return key.substr(prefix.size(), key.size() - prefix.size() - suffix.size());
}

// A key's value as T; throws naming the key when it is missing or of another type.
template <class T>
T get(const Json& json, const std::string& key) {
  const auto it = json.find(key);
  if (it == json.end()) throw std::runtime_error("no '" + key + "'");
  try {
    return it->get<T>();
  } catch (const Json::type_error&) {
    throw std::runtime_error("'" + key + "' is a " + it->type_name());
  }
}

std::optional<double> get_optional(const Json& json, const std::string& key) {
  if (!json.contains(key) || json.at(key).is_null()) return std::nullopt;
  return get<double>(json, key);
}

}  // namespace

std::string teacher_of_accuracy_key(const std::string& key) {
  return has_prefix_suffix(key, kTeacherPrefix, kAccuracySuffix)
             ? between(key, kTeacherPrefix, kAccuracySuffix)
             : std::string();
}

Json to_json(const RunSummary& s) {
  Json j = Json::object();
  for (const auto& o : s.options) j[o.section + kOptions + o.name] = o.value;
  std::string teachers;
  for (const auto& t : s.test.teachers) teachers += (teachers.empty() ? "" : ",") + t.teacher;
  j["experiment"] = s.experiment;
  j["run_dir"] = s.run_dir;
  j["uncertainty"] = s.uncertainty;
  j["samples"] = s.samples;
  if (!s.calibration.empty()) j["uncertainty.calibration"] = s.calibration;
  j["integration"] = s.integration;
  j["teachers"] = teachers;
  j["union_size"] = s.union_size;
  j["seed"] = s.seed;
  j["device"] = s.device;
  j["threads"] = s.threads;
  j["deterministic"] = s.deterministic;
  j["world_size"] = s.world_size;
  j["backend"] = s.backend;
  j["transfer.examples"] = s.transfer.examples;
  j["transfer.mean_weight"] = s.transfer.mean_weight;
  if (s.transfer.kl_to_reference) j["transfer.kl_to_reference"] = *s.transfer.kl_to_reference;
  j["test.accuracy"] = s.test.accuracy;
  j["test.macro_f1"] = s.test.macro_f1;
  j["test.examples"] = s.test.examples;
  j["test.left_out"] = s.test.left_out;
  for (const auto& t : s.test.teachers) {
    j[kTeacherPrefix + t.teacher + kAccuracySuffix] = t.accuracy;
    j[kTeacherPrefix + t.teacher + ".examples"] = t.examples;
  }
  for (const auto& c : s.test.classes) j[kClassPrefix + c.label + kRecallSuffix] = c.recall;
  if (s.test.selection_accuracy) j["test.selection_accuracy"] = *s.test.selection_accuracy;
  if (s.test.selection_auroc) j["test.selection_auroc"] = *s.test.selection_auroc;
  j["test.target_accuracy"] = s.test.target_accuracy;
  j["dev.best_accuracy"] = s.dev.best_accuracy;
  j["dev.best_macro_f1"] = s.dev.best_macro_f1;
  j["train.steps"] = s.train.steps;
  j["train.planned_steps"] = s.train.planned_steps;
  j["train.best_step"] = s.train.best_step;
  j["train.stopped_early"] = s.train.stopped_early;
  j["train.resumed_from_step"] = s.train.resumed_from_step;
  j["train.seconds"] = s.train.seconds;
  j["student.parameters"] = s.student_parameters;
  j["teacher_pass.seconds"] = s.teacher_pass.seconds;
  j["teacher_pass.chunks_cached"] = s.teacher_pass.chunks_cached;
  j["teacher_pass.chunks_computed"] = s.teacher_pass.chunks_computed;
  j["teacher_pass.samples_drawn"] = s.teacher_pass.samples_drawn;
  j["teacher_pass.samples_asked"] = s.teacher_pass.samples_asked;
  j["total_seconds"] = s.total_seconds;
  return j;
}

RunSummary run_summary_from_json(const Json& j) {
  if (!j.is_object()) throw std::runtime_error("not a JSON object");
  RunSummary s;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    if (const std::string teacher = teacher_of_accuracy_key(key); !teacher.empty()) {
      s.test.teachers.push_back({teacher, get<double>(j, key),
                                 get<int64_t>(j, kTeacherPrefix + teacher + ".examples")});
    } else if (has_prefix_suffix(key, kClassPrefix, kRecallSuffix)) {
      s.test.classes.push_back({between(key, kClassPrefix, kRecallSuffix), get<double>(j, key)});
    } else if (const size_t at = key.find(kOptions); at != std::string::npos) {
      s.options.push_back({key.substr(0, at), key.substr(at + kOptions.size()), get<std::string>(j, key)});
    }
  }
  s.experiment = get<std::string>(j, "experiment");
  s.run_dir = get<std::string>(j, "run_dir");
  s.uncertainty = get<std::string>(j, "uncertainty");
  s.samples = get<int64_t>(j, "samples");
  if (j.contains("uncertainty.calibration")) s.calibration = get<std::string>(j, "uncertainty.calibration");
  s.integration = get<std::string>(j, "integration");
  s.union_size = get<int64_t>(j, "union_size");
  s.seed = get<int64_t>(j, "seed");
  s.device = get<std::string>(j, "device");
  s.threads = get<int64_t>(j, "threads");
  s.deterministic = get<bool>(j, "deterministic");
  if (j.contains("world_size")) s.world_size = get<int64_t>(j, "world_size");
  if (j.contains("backend")) s.backend = get<std::string>(j, "backend");
  s.transfer.examples = get<int64_t>(j, "transfer.examples");
  s.transfer.mean_weight = get<double>(j, "transfer.mean_weight");
  s.transfer.kl_to_reference = get_optional(j, "transfer.kl_to_reference");
  s.test.accuracy = get<double>(j, "test.accuracy");
  s.test.macro_f1 = get<double>(j, "test.macro_f1");
  s.test.examples = get<int64_t>(j, "test.examples");
  s.test.left_out = get<int64_t>(j, "test.left_out");
  s.test.selection_accuracy = get_optional(j, "test.selection_accuracy");
  s.test.selection_auroc = get_optional(j, "test.selection_auroc");
  s.test.target_accuracy = get<double>(j, "test.target_accuracy");
  s.dev.best_accuracy = get<double>(j, "dev.best_accuracy");
  s.dev.best_macro_f1 = get<double>(j, "dev.best_macro_f1");
  s.train.steps = get<int64_t>(j, "train.steps");
  s.train.planned_steps = get<int64_t>(j, "train.planned_steps");
  s.train.best_step = get<int64_t>(j, "train.best_step");
  s.train.stopped_early = get<bool>(j, "train.stopped_early");
  s.train.resumed_from_step = get<int64_t>(j, "train.resumed_from_step");
  s.train.seconds = get<double>(j, "train.seconds");
  s.student_parameters = get<int64_t>(j, "student.parameters");
  s.teacher_pass.seconds = get<double>(j, "teacher_pass.seconds");
  s.teacher_pass.chunks_cached = get<int64_t>(j, "teacher_pass.chunks_cached");
  s.teacher_pass.chunks_computed = get<int64_t>(j, "teacher_pass.chunks_computed");
  if (j.contains("teacher_pass.samples_drawn")) {
    s.teacher_pass.samples_drawn = get<int64_t>(j, "teacher_pass.samples_drawn");
    s.teacher_pass.samples_asked = get<int64_t>(j, "teacher_pass.samples_asked");
  }
  s.total_seconds = get<double>(j, "total_seconds");
  return s;
}

RunSummary read_run_summary(const std::filesystem::path& run_dir) {
  const std::filesystem::path file = run_dir / "summary.json";
  const Json json = read_json_file(file);
  try {
    return run_summary_from_json(json);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(file.string() + ": " + e.what());
  }
}

std::vector<SummaryFigure> accuracy_figures(const RunSummary& s) {
  std::vector<SummaryFigure> out = {{"test.accuracy", "test acc", s.test.accuracy},
                                    {"test.macro_f1", "macro-F1", s.test.macro_f1},
                                    {"test.selection_accuracy", "selection acc", s.test.selection_accuracy},
                                    {"test.target_accuracy", "target acc", s.test.target_accuracy}};
  for (const auto& t : s.test.teachers)
    out.push_back({kTeacherPrefix + t.teacher + kAccuracySuffix, t.teacher + " acc", t.accuracy});
  return out;
}

}  // namespace muki::core
