#include "muki/pipeline/run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <memory>
#include <optional>
#include <sstream>

#include <spdlog/spdlog.h>

#include "muki/data/dataset.h"
#include "muki/data/label_space.h"
#include "muki/data/labeled_split.h"
#include "muki/experiment/analysis.h"
#include "muki/experiment/experiment.h"
#include "muki/experiment/run_directory.h"
#include "muki/experiment/teacher_pass.h"
#include "muki/io/fingerprint.h"
#include "muki/metrics/evaluation.h"
#include "muki/model/device.h"
#include "muki/model/process_group.h"
#include "muki/pipeline/student.h"
#include "muki/pipeline/teacher_training.h"
#include "muki/report/report.h"
#include "muki/report/run_summary.h"
#include "training_setup.h"

namespace muki::core {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

ConfigError config_error(const Config& config, const std::string& message) {
  return ConfigError({ConfigProblem{config.path().string(), 0, 0, message}});
}

// What every stage of a run reads: its config and plugins, its folder, and the process settings
// it made.
struct RunContext {
  const Config& config;
  const registry::Registry& registry;
  RunDirectory dir;
  Clock::time_point started;
  int threads = 0;
  bool deterministic = false;
  ProcessGroup* group = nullptr;  // the job, when the run is one rank of one

  bool leader() const { return is_rank0(group); }  // writes the run directory
};

// What run.json, summary.json and the start event record of the job.
int64_t world_size(const ProcessGroup* group) { return group != nullptr ? group->world_size() : 1; }
std::string backend(const ProcessGroup* group) { return group != nullptr ? group->backend() : "none"; }

// The run directory: rank 0 (or a process alone) opens it; in a job the others learn whether
// that failed, and fail with rank 0's message rather than a later "rank 0 is gone".
RunDirectory open_run_directory(const Config& config, const RunOptions& options, const Json& launch) {
  ProcessGroup* group = options.group;
  if (group == nullptr) return RunDirectory(output_dir(config), config, options.fresh, launch);
  std::optional<RunDirectory> dir;
  std::exception_ptr failure;  // rank 0's, rethrown as it was (a ConfigError stays one)
  std::string error;
  if (group->rank() == 0) {
    try {
      dir.emplace(output_dir(config), config, options.fresh, launch);
    } catch (const std::exception& e) {
      failure = std::current_exception();
      error = e.what();
    }
  }
  error = group->broadcast(error, 0);
  if (failure) std::rethrow_exception(failure);
  if (!error.empty())
    throw std::runtime_error("rank 0 could not open the run directory " + output_dir(config).string() + ": " + error);
  return dir ? std::move(*dir) : RunDirectory::written_elsewhere(output_dir(config));
}

// Stage 1: the process settings ([experiment] threads, deterministic) and the run directory.
RunContext open_run(const Config& config, const registry::Registry& registry, const RunOptions& options) {
  const auto started = Clock::now();
  const toml::table& root = config.root();
  const int threads = configure_threads(root.at_path("experiment.threads").value_or(int64_t{0}));
  const bool deterministic = root.at_path("experiment.deterministic").value_or(false);
  configure_determinism(deterministic);
  ProcessGroup* group = options.group;
  // The same command on every rank, or nothing the ranks exchange is meaningful.
  if (const Agreement a = agreement_on(group, Fingerprint().add(config.to_toml()).hex()); a.differing > 0)
    throw config_error(config, "rank " + std::to_string(a.differing) + " runs another config than rank 0 (resolved config " +
                                   a.values[static_cast<size_t>(a.differing)] + " vs " + a.values[0] +
                                   "): every rank must run the same file with the same --set overrides");
  const Json launch = {{"world_size", world_size(group)}, {"backend", backend(group)}};
  RunContext run{config, registry, open_run_directory(config, options, launch), started, threads,
                 deterministic, group};
  if (group != nullptr)
    spdlog::info("run {} as rank {} of {} ({}){}", run.dir.path().string(), group->rank(), group->world_size(),
                 group->backend(), run.leader() ? ": this rank writes the run directory" : "; rank 0 writes the run directory");
  spdlog::info("run {}{} ({} threads{})", run.dir.path().string(), run.dir.resumed() ? " (resuming)" : "",
               threads, deterministic ? ", deterministic" : "");
  Json event = {{"config", config.path().string()}, {"threads", threads}};
  event.update(launch);
  run.dir.log_event(run.dir.resumed() ? "resume" : "start", event);
  return run;
}

// Stage 2: the plugins, with labels.txt and plugins.lock.
ExperimentPlugins create_plugins(const RunContext& run) {
  ExperimentPlugins plugins = create_experiment_plugins(run.config, run.registry);
  std::string label_text;
  for (const auto& name : plugins.labels.names()) label_text += name + "\n";
  run.dir.write_file("labels.txt", label_text);
  std::vector<const registry::PluginInfo*> used{&plugins.uncertainty->plugin(), &plugins.integration->plugin()};
  for (const auto& t : plugins.teachers) used.push_back(&t.instance->plugin());
  if (plugins.reference) used.push_back(&plugins.reference->instance->plugin());
  run.dir.write_file("plugins.lock", plugin_lock(used));
  spdlog::info("{} teachers, union of {} labels; uncertainty '{}' (K = {}), integration '{}'",
               plugins.teachers.size(), plugins.labels.size(), plugins.uncertainty_name,
               plugins.uncertainty->samples(), plugins.integration_name);
  return plugins;
}

// "a.tsv" or "a.tsv + b.tsv": what a split was read from, for messages and events.
std::string describe(const std::vector<DatasetSpec>& specs) {
  std::string out;
  for (const DatasetSpec& s : specs) out += (out.empty() ? "" : " + ") + s.path.string();
  return out;
}

// Reads a split and warns about skipped rows; `event` gets the members of its "data" event.
Dataset read_split(const std::string& split, const std::vector<DatasetSpec>& specs, Json& event) {
  Dataset data = read_all(specs);
  if (data.report.rows_skipped > 0) spdlog::warn("{}", data.report.summary(describe(specs)));
  event = {{"split", split}, {"path", describe(specs)}, {"rows", data.report.rows_read},
           {"skipped", data.report.rows_skipped}};
  return data;
}

// [data].<split> on the union (empty when the config has no such split), logged as an event.
LabeledSplit read_labeled(const RunContext& run, const char* split, const LabelSpace& labels) {
  if (run.config.root().at_path(std::string("data.") + split).as_table() == nullptr) return {};
  Json event;
  const Dataset data = read_split(split, dataset_specs(run.config, split), event);
  LabeledSplit out = map_onto(data, labels);
  for (const auto& [label, count] : out.unknown)
    spdlog::warn("{}: {} examples labelled '{}' (no teacher knows it) are left out", split, count, label);
  event["left_out"] = out.left_out();
  event["kept"] = out.gold.size();
  run.dir.log_event("data", event);
  // An empty dev split used to select on nothing ("best dev accuracy 0.0000").
  if (out.gold.empty() && std::string(split) == "dev")
    throw config_error(run.config, "data.dev (" + event["path"].get<std::string>() + ") holds no "
                                   "example with a label the teachers know (" +
                                   std::to_string(data.report.rows_read) + " rows read): the student "
                                   "would be selected on nothing; give it labeled rows or remove [data.dev]");
  return out;
}

// The texts a run integrates and evaluates on.
struct RunData {
  std::vector<std::string> transfer_texts;
  std::vector<int64_t> transfer_gold;  // union indices; only for strategies that need gold labels
  LabeledSplit dev, test;
};

// Stage 3: the transfer set (its labels read only for a strategy that needs them), dev and test.
RunData read_data(const RunContext& run, const ExperimentPlugins& plugins) {
  const Config& config = run.config;
  std::vector<DatasetSpec> transfer_specs = dataset_specs(config, "transfer");
  const bool needs_gold = plugins.integration->needs_gold();
  if (needs_gold && transfer_specs.front().label_field.empty())
    throw config_error(config, "integration strategy '" + plugins.integration_name +
                                   "' trains on gold labels (an upper bound for analysis): set "
                                   "data.transfer.label to the label column");
  if (!needs_gold)
    for (DatasetSpec& s : transfer_specs) s.label_field.clear();  // unlabeled: never read its labels
  Json event;
  const Dataset transfer = read_split("transfer", transfer_specs, event);
  run.dir.log_event("data", event);
  // Caught here, before the teacher passes: the student used to refuse it much later, without
  // naming the file.
  if (transfer.examples.empty())
    throw config_error(config, "data.transfer (" + describe(transfer_specs) + ") holds no example (" +
                                   std::to_string(transfer.report.rows_skipped) +
                                   " rows skipped): the student would have nothing to train on");
  RunData data;
  for (const Example& e : transfer.examples) data.transfer_texts.push_back(e.text);
  data.dev = read_labeled(run, "dev", plugins.labels);
  data.test = read_labeled(run, "test", plugins.labels);
  if (data.test.gold.empty())
    throw config_error(config, "muki run needs a labeled [data.test] split with labels the teachers know");
  if (needs_gold) {
    LabeledSplit labeled = map_onto(transfer, plugins.labels);
    if (!labeled.unknown.empty()) {
      std::string list;
      for (const auto& [label, count] : labeled.unknown)
        list += (list.empty() ? "" : ", ") + label + " (" + std::to_string(count) + ")";
      throw config_error(config, "integration strategy '" + plugins.integration_name +
                                     "' needs every transfer example's label in the union; no "
                                     "teacher knows: " + list);
    }
    data.transfer_gold = std::move(labeled.gold);
  }
  return data;
}

// One teacher over `texts` (cached, resumable), logged as an event; its chunks are counted in
// `totals`.
TeacherOutputs teacher_pass(const RunContext& run, const TeacherSetup& t, const std::vector<std::string>& texts,
                            const std::string& split, const TeacherPassOptions& pass,
                            RunSummary::TeacherPass& totals) {
  if (pass.samples > 0)
    spdlog::info("teacher '{}' on {}: {} examples, deterministic + {} stochastic passes ({})", t.name,
                 split, texts.size(), pass.samples, t.instance->sampling_note());
  else
    spdlog::info("teacher '{}' on {}: {} examples, deterministic pass", t.name, split, texts.size());
  TeacherPassStats stats;
  TeacherPassOptions named = pass;
  named.split = split;
  TeacherOutputs out = run_teacher_pass(*t.instance, texts, t.cache_key, named, &stats);
  totals.chunks_cached += stats.chunks_cached;
  totals.chunks_computed += stats.chunks_computed;
  totals.samples_drawn += stats.samples_drawn;
  totals.samples_asked += stats.samples_asked;
  run.dir.log_event("teacher_pass", {{"teacher", t.name},
                                     {"split", split},
                                     {"examples", texts.size()},
                                     {"samples", pass.samples},
                                     {"chunks_cached", stats.chunks_cached},
                                     {"chunks_computed", stats.chunks_computed},
                                     {"samples_drawn", stats.samples_drawn},
                                     {"samples_asked", stats.samples_asked},
                                     {"bytes_exchanged", stats.bytes_exchanged},
                                     {"seconds", stats.seconds}});
  return out;
}

// Every teacher's outputs on the transfer set and the test split.
struct TeacherPasses {
  TeacherPassOptions options;
  std::vector<TeacherOutputs> transfer, test;
  RunSummary::TeacherPass stats;  // seconds: the teachers' passes, not the reference's
  std::optional<ScoreCalibration> calibration;  // applied to every certainty score when set
  std::string calibration_note;                 // RunSummary::calibration
};

constexpr const char* kLabelFree = "confident transfer predictions";

// The label-free last resort: the transfer texts teacher `t` itself labels with probability >= 0.9,
// with that label as gold. Weaker than held-out labeled texts (an over-confident teacher is
// confident outside its labels too), so the log and the summary say when it was used.
void confident_predictions(const ExperimentPlugins& plugins, const RunData& data, const TeacherOutputs& out,
                           size_t t, std::vector<std::string>& texts, std::vector<int64_t>& gold) {
  const std::vector<int64_t> map = plugins.labels.label_map(t);
  for (int64_t i = 0; i < out.num_examples; ++i) {
    const float* z = out.deterministic_row(i);
    const int64_t top = std::max_element(z, z + out.num_labels) - z;
    double sum = 0;
    for (int64_t j = 0; j < out.num_labels; ++j) sum += std::exp(static_cast<double>(z[j] - z[top]));
    if (1.0 / sum < 0.9) continue;
    texts.push_back(data.transfer_texts[static_cast<size_t>(i)]);
    gold.push_back(map[static_cast<size_t>(top)]);
  }
}

// Each teacher's held-out texts of its own labels: its [[teachers]] reference when the config
// names one, else the experiment's labeled dev split (held out from the teachers' training,
// labeled for the student's model selection anyway), else its confident transfer predictions.
struct References {
  std::vector<std::vector<std::string>> texts;  // per teacher
  std::vector<std::vector<int64_t>> gold;       // per teacher, union indices
  std::vector<std::string> source;              // "dev", the reference's path(s), or "" for none
  bool complete() const {
    return std::none_of(source.begin(), source.end(), [](const std::string& s) { return s.empty(); });
  }
};

References teacher_references(const RunContext& run, const ExperimentPlugins& plugins, const RunData& data,
                              const TeacherPasses& passes) {
  References out;
  for (size_t ti = 0; ti < plugins.teachers.size(); ++ti) {
    const TeacherSetup& t = plugins.teachers[ti];
    if (t.reference.empty() && !data.dev.gold.empty()) {
      out.texts.push_back(data.dev.texts);
      out.gold.push_back(data.dev.gold);
      out.source.push_back("dev");
      continue;
    }
    if (t.reference.empty()) {
      out.texts.emplace_back();
      out.gold.emplace_back();
      confident_predictions(plugins, data, passes.transfer[ti], ti, out.texts.back(), out.gold.back());
      spdlog::warn("teacher '{}': no labeled dev split and no reference; its {} transfer texts it labels "
                   "with probability >= 0.9 stand in (label-free, weaker)", t.name, out.texts.back().size());
      out.source.push_back(out.texts.back().size() >= 2 ? kLabelFree : "");
      continue;
    }
    Json event;
    const LabeledSplit split = map_onto(read_split("reference of " + t.name, t.reference, event), plugins.labels);
    for (const auto& [label, count] : split.unknown)
      spdlog::warn("teacher '{}': {} reference examples labelled '{}' (no teacher knows it) are left out",
                   t.name, count, label);
    run.dir.log_event("data", event);
    out.texts.push_back(split.texts);
    out.gold.push_back(split.gold);
    out.source.push_back(describe(t.reference));
  }
  // Fitting or calibrating needs a mean and a spread of each teacher's own texts. Said here, with
  // where the texts came from; the teacher passes are cached, so a rerun after the fix is cheap.
  const bool used = plugins.uncertainty->needs_reference() ||
                    run.config.root().at_path("uncertainty.calibrate").value_or(true);
  for (size_t ti = 0; used && ti < plugins.teachers.size(); ++ti) {
    if (out.source[ti] == kLabelFree || out.source[ti].empty()) continue;  // handled by the callers
    const auto own = std::count_if(out.gold[ti].begin(), out.gold[ti].end(), [&](int64_t g) {
      return plugins.labels.local_index(ti, g) >= 0;
    });
    if (own < 2)
      throw config_error(run.config, "teacher '" + plugins.teachers[ti].name + "' has " + std::to_string(own) +
                                         " text(s) of its own labels in " +
                                         (out.source[ti] == "dev" ? "data.dev (" + describe(dataset_specs(run.config, "dev")) + ")"
                                                                  : "its reference (" + out.source[ti] + ")") +
                                         "; uncertainty '" + plugins.uncertainty_name +
                                         "' is fitted or calibrated on at least 2: add labeled texts of its labels, "
                                         "give it a reference, or set uncertainty.calibrate = false");
  }
  return out;
}

// Every teacher over its own reference texts (deterministic, or with `samples` passes).
std::vector<TeacherOutputs> reference_passes(const RunContext& run, const ExperimentPlugins& plugins,
                                             const References& refs, TeacherPasses& passes, uint32_t samples) {
  TeacherPassOptions options = passes.options;
  options.samples = samples;
  std::vector<TeacherOutputs> out;
  for (size_t t = 0; t < plugins.teachers.size(); ++t)
    out.push_back(teacher_pass(run, plugins.teachers[t], refs.texts[t],
                               refs.source[t] == "dev" ? "dev" : "reference", options, passes.stats));
  return out;
}

std::vector<std::string> teacher_names(const ExperimentPlugins& plugins) {
  std::vector<std::string> names;
  for (const TeacherSetup& t : plugins.teachers) names.push_back(t.name);
  return names;
}

// A strategy that needs reference data is fitted on each teacher's reference texts.
void fit_on_references(const RunContext& run, const ExperimentPlugins& plugins, const References& refs,
                       TeacherPasses& passes) {
  if (!refs.complete())
    throw config_error(run.config, "uncertainty strategy '" + plugins.uncertainty_name +
                                       "' is fitted on each teacher's held-out texts of its own "
                                       "labels, and a teacher has none (and fewer than 2 confident "
                                       "transfer predictions): set [data.dev] with a label column, "
                                       "or a reference for every teacher");
  const std::vector<std::string> names = teacher_names(plugins);
  const std::vector<int64_t> counts = fit_uncertainty(*plugins.uncertainty, names,
                                                      reference_passes(run, plugins, refs, passes, 0),
                                                      refs.gold, plugins.labels, &passes.transfer);
  for (size_t t = 0; t < names.size(); ++t) {
    spdlog::info("uncertainty '{}': teacher '{}' fitted on its {} texts of {}", plugins.uncertainty_name,
                 names[t], counts[t], refs.source[t]);
    run.dir.log_event("reference", {{"teacher", names[t]}, {"split", refs.source[t]}, {"texts", counts[t]}});
  }
}

// [uncertainty] calibrate (default true): a strategy that is not fitted per teacher gives scores
// on each teacher's own scale (an over-confident teacher is certain everywhere), so each
// teacher's scores are z-scored against its own reference texts (ScoreCalibration in
// muki/experiment/analysis.h), with the same K passes. A fitted strategy calibrates itself.
// Without a reference for every teacher the run goes on uncalibrated, with a warning and a note
// in the summary.
void calibrate_on_references(const RunContext& run, const ExperimentPlugins& plugins, const References& refs,
                             TeacherPasses& passes) {
  if (plugins.uncertainty->needs_reference()) {
    const bool label_free = std::find(refs.source.begin(), refs.source.end(), kLabelFree) != refs.source.end();
    passes.calibration_note = label_free ? "fitted, label-free" : "fitted";
    return;
  }
  if (!run.config.root().at_path("uncertainty.calibrate").value_or(true)) {
    passes.calibration_note = "off";
    return;
  }
  if (!refs.complete()) {
    spdlog::warn("uncertainty '{}': a teacher has no held-out texts (no labeled [data.dev], no "
                 "reference, fewer than 2 confident transfer predictions) to calibrate its scores "
                 "against; every teacher's scores stay on its own scale (set uncertainty.calibrate = "
                 "false to silence this)", plugins.uncertainty_name);
    passes.calibration_note = "none: a teacher has no held-out texts";
    return;
  }
  const std::vector<std::string> names = teacher_names(plugins);
  passes.calibration = calibrate_scores(*plugins.uncertainty, names,
                                        reference_passes(run, plugins, refs, passes, passes.options.samples),
                                        refs.gold, plugins.labels);
  auto all = [&](const std::string& source) {
    return std::all_of(refs.source.begin(), refs.source.end(), [&](const std::string& s) { return s == source; });
  };
  const bool label_free = std::find(refs.source.begin(), refs.source.end(), kLabelFree) != refs.source.end();
  passes.calibration_note = all("dev") ? "dev" : label_free ? "label-free" : "reference";
  for (size_t t = 0; t < names.size(); ++t) {
    spdlog::info("uncertainty '{}': teacher '{}' calibrated on {} (mean {:.4f}, scale {:.4f})",
                 plugins.uncertainty_name, names[t], refs.source[t], passes.calibration->mean[t],
                 passes.calibration->scale[t]);
    run.dir.log_event("calibration", {{"teacher", names[t]},
                                      {"split", refs.source[t]},
                                      {"mean", passes.calibration->mean[t]},
                                      {"scale", passes.calibration->scale[t]}});
  }
}

// Stage 4: the teacher passes: one deterministic and K stochastic passes per teacher and text
// (with the features a strategy or a feature objective reads), the fit of a strategy that needs
// reference data, and the scores' calibration.
TeacherPasses run_teacher_passes(const RunContext& run, const ExperimentPlugins& plugins, const RunData& data,
                                 int64_t batch_size) {
  TeacherPasses passes;
  const bool features = (plugins.scored && plugins.uncertainty->needs_features()) ||
                        plugins.integration->feature_objective() != MUKI_FEATURE_OBJECTIVE_NONE;
  passes.options = teacher_pass_options(run.config, plugins.scored ? plugins.uncertainty->samples() : 0,
                                        features, batch_size);
  passes.options.communicator = run.group;
  const auto started = Clock::now();
  for (const TeacherSetup& t : plugins.teachers)
    passes.transfer.push_back(teacher_pass(run, t, data.transfer_texts, "transfer", passes.options, passes.stats));
  for (const TeacherSetup& t : plugins.teachers)
    passes.test.push_back(teacher_pass(run, t, data.test.texts, "test", passes.options, passes.stats));
  if (plugins.scored) {
    const References refs = teacher_references(run, plugins, data, passes);
    if (plugins.uncertainty->needs_reference()) fit_on_references(run, plugins, refs, passes);
    calibrate_on_references(run, plugins, refs, passes);
  }
  passes.stats.seconds = seconds_since(started);
  return passes;
}

// The certainty of every teacher on every example, calibrated when the run calibrates; zeros for a
// strategy that promised not to read them.
TeacherScores certainty(const ExperimentPlugins& plugins, const TeacherPasses& passes,
                        const std::vector<TeacherOutputs>& outputs) {
  if (plugins.scored) {
    TeacherScores scores = score_teachers(*plugins.uncertainty, outputs);
    if (passes.calibration) apply_calibration(*passes.calibration, scores);
    return scores;
  }
  TeacherScores zeros;
  for (const auto& o : outputs) zeros.emplace_back(static_cast<size_t>(o.num_examples), 0.0f);
  return zeros;
}

// The reference teacher's distribution over the union for every example, from its
// deterministic pass. Its labels must cover the union (matched by name).
std::vector<float> reference_distribution(const TeacherSetup& reference,
                                          const TeacherOutputs& outputs, const LabelSpace& labels,
                                          const Config& config) {
  const auto& ref_labels = reference.instance->labels();
  std::vector<int64_t> column(labels.size(), -1);
  for (size_t j = 0; j < ref_labels.size(); ++j)
    if (labels.contains(ref_labels[j])) column[labels.index_of(ref_labels[j])] = static_cast<int64_t>(j);
  for (size_t u = 0; u < labels.size(); ++u)
    if (column[u] < 0)
      throw config_error(config, "reference teacher '" + reference.name + "' has no label '" +
                                     labels.name(u) + "' of the union: it must be trained on all labels");
  const int64_t c = outputs.num_labels, y = static_cast<int64_t>(labels.size());
  std::vector<float> out(static_cast<size_t>(outputs.num_examples * y));
  std::vector<double> p(static_cast<size_t>(c));
  for (int64_t i = 0; i < outputs.num_examples; ++i) {
    const float* z = outputs.deterministic_row(i);
    const double top = *std::max_element(z, z + c);
    double sum = 0;
    for (int64_t j = 0; j < c; ++j) sum += p[static_cast<size_t>(j)] = std::exp(z[j] - top);
    // Renormalised over the union's labels: a reference with extra labels is compared on Y.
    double in_union = 0;
    for (size_t u = 0; u < labels.size(); ++u) in_union += p[static_cast<size_t>(column[u])] / sum;
    for (size_t u = 0; u < labels.size(); ++u)
      out[static_cast<size_t>(i * y) + u] =
          static_cast<float>(p[static_cast<size_t>(column[u])] / sum / in_union);
  }
  return out;
}

// What the student learns from.
struct Integration {
  IntegratedTargets targets;
  double mean_weight = 0;
  std::optional<double> kl_to_reference;  // with a [reference] teacher and a union-wide loss
};

// Stage 5: certainty scores and integrated targets over the transfer set; with a reference
// teacher, how far the targets are from its distribution (its pass counts in `passes.stats`).
Integration integrate(const RunContext& run, const ExperimentPlugins& plugins, const RunData& data,
                      TeacherPasses& passes) {
  Integration out;
  out.targets = integrate_teachers(*plugins.integration, passes.transfer, certainty(plugins, passes, passes.transfer),
                                   plugins.labels, data.transfer_gold);
  for (float w : out.targets.weight) out.mean_weight += w;
  out.mean_weight /= std::max<double>(1.0, static_cast<double>(out.targets.weight.size()));
  if (plugins.reference) {
    TeacherPassOptions deterministic = passes.options;
    deterministic.samples = 0;  // the reference's deterministic distribution is the golden one
    const TeacherOutputs ref_out =
        teacher_pass(run, *plugins.reference, data.transfer_texts, "transfer", deterministic, passes.stats);
    // Per-teacher blocks (UHC) are not one distribution over Y: no KL for them.
    if (plugins.integration->loss() == MUKI_LOSS_KL_UNION)
      out.kl_to_reference = mean_kl_divergence(
          out.targets.target, reference_distribution(*plugins.reference, ref_out, plugins.labels, run.config),
          out.targets.union_size);
  }
  return out;
}

std::string fingerprint_floats(const std::vector<float>& v) {
  return Fingerprint()
      .add(std::string_view(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)))
      .hex();
}

// Stage 6: the student, trained on the targets (and, for DFA and CFL, the teachers' features) and
// selected on dev, resumable.
StudentResult train(const RunContext& run, const ExperimentPlugins& plugins, const RunData& data,
                    const TeacherPasses& passes, const Integration& integration) {
  StudentSetup student;
  student.config = &run.config;
  student.labels = plugins.labels.names();
  student.transfer_texts = data.transfer_texts;
  student.targets = integration.targets.target;
  student.weights = integration.targets.weight;
  student.loss = plugins.integration->loss();
  student.temperature = plugins.integration->student_temperature();
  for (size_t t = 0; t < plugins.teachers.size(); ++t) student.blocks.push_back(plugins.labels.label_map(t));
  student.feature_objective = plugins.integration->feature_objective();
  student.feature_weight = plugins.integration->feature_weight();
  Fingerprint features_key;
  if (student.feature_objective != MUKI_FEATURE_OBJECTIVE_NONE)
    for (const TeacherOutputs& o : passes.transfer) {
      student.teacher_features.push_back(o.features);
      student.teacher_feature_dims.push_back(o.feature_dim);
      features_key.add(fingerprint_floats(o.features));
    }
  student.dev_texts = data.dev.texts;
  student.dev_gold = data.dev.gold;
  student.test_texts = data.test.texts;
  student.group = run.group;
  const TrainingFolder folder(run.group, run.dir.file("student"), "student");
  student.folder = folder.path();
  student.state_file = run.dir.file("state") / "student.pt";
  // The state belongs to this config and these targets; anything else starts afresh.
  Fingerprint dev_key;
  for (size_t i = 0; i < data.dev.texts.size(); ++i)
    dev_key.add(data.dev.texts[i]).add(static_cast<uint64_t>(data.dev.gold[i]));
  Fingerprint state_key;
  state_key.add(run.config.to_toml())
      .add(fingerprint_floats(integration.targets.target))
      .add(fingerprint_floats(integration.targets.weight))
      .add(dev_key.hex());  // the file may change under the same config
  if (!student.teacher_features.empty()) state_key.add(features_key.hex());
  student.state_key = state_key.hex();
  student.on_eval = [&run](const StudentEval& e) {
    run.dir.log_event("eval", {{"step", e.step},
                               {"epoch", e.epoch},
                               {"train_loss", e.train_loss},
                               {"dev_accuracy", e.dev_accuracy},
                               {"dev_macro_f1", e.dev_macro_f1}});
  };
  return train_student(student);
}

// The student and the teachers on the test split.
struct TestResults {
  UnionEvaluation student;
  std::optional<SelectionMetrics> selection;  // when the strategies scored the teachers
  TargetMetrics targets;                      // the integrated targets against the gold labels
  TeacherScores scores;                       // the certainty the run integrated with (the report's too)
};

// Stage 7: the test split: the student's predictions (predictions.tsv), teacher selection and the
// integrated targets.
TestResults evaluate_on_test(const RunContext& run, const ExperimentPlugins& plugins, const RunData& data,
                 const TeacherPasses& passes, const StudentResult& student) {
  const LabeledSplit& test = data.test;
  const LabelSpace& labels = plugins.labels;
  TestResults out;
  out.student = evaluate_union(test.gold, student.test_predicted, labels);
  out.scores = certainty(plugins, passes, passes.test);
  if (plugins.scored) out.selection = selection_metrics(out.scores, labels, test.gold);
  out.targets = target_metrics(integrate_teachers(*plugins.integration, passes.test, out.scores, labels, test.gold),
                               test.gold);
  std::ostringstream predictions;
  predictions << "id\tgold\tpredicted\tprobability\n";
  for (size_t i = 0; i < test.gold.size(); ++i)
    predictions << test.ids[i] << "\t" << labels.name(static_cast<size_t>(test.gold[i])) << "\t"
                << labels.name(static_cast<size_t>(student.test_predicted[i])) << "\t"
                << student.test_probability[i] << "\n";
  run.dir.write_file("predictions.tsv", predictions.str());
  return out;
}

// "<section>.options.<key>": every option of the plugin's schema, as given or by its default
// (TOML literals), so a summary says exactly how the strategy ran.
void add_effective_options(RunSummary& summary, const std::string& section,
                           const registry::PluginInfo& plugin, const Config& config) {
  const toml::table* given = config.root().at_path(section + ".options").as_table();
  for (const registry::ParamInfo& p : plugin.params) {
    std::string value;
    if (const toml::node* node = given != nullptr ? given->get(p.name) : nullptr) {
      value = toml_value_text(*node);
    } else if (p.default_value) {
      value = *p.default_value;
    } else {
      continue;
    }
    summary.options.push_back({section, p.name, value});
  }
}

// Stage 8: summary.json.
RunSummary summarize(const RunContext& run, const ExperimentPlugins& plugins, const RunData& data,
                     const TeacherPasses& passes, const Integration& integration,
                     const StudentResult& student, const TestResults& test) {
  const Config& config = run.config;
  RunSummary s;
  if (plugins.scored) add_effective_options(s, "uncertainty", plugins.uncertainty->plugin(), config);
  add_effective_options(s, "integration", plugins.integration->plugin(), config);
  s.experiment = config.root().at_path("experiment.name").value_or<std::string>("");
  s.run_dir = run.dir.path().string();
  s.uncertainty = plugins.scored ? plugins.uncertainty_name : "none";
  s.samples = passes.options.samples;
  s.calibration = passes.calibration_note;
  s.integration = plugins.integration_name;
  s.union_size = static_cast<int64_t>(plugins.labels.size());
  s.seed = static_cast<int64_t>(experiment_seed(config));
  s.device = student.device;
  s.threads = run.threads;
  s.deterministic = run.deterministic;
  s.world_size = world_size(run.group);
  s.backend = backend(run.group);
  s.transfer = {static_cast<int64_t>(data.transfer_texts.size()), integration.mean_weight,
                integration.kl_to_reference};
  const UnionEvaluation& ev = test.student;
  s.test.accuracy = ev.overall.accuracy;
  s.test.macro_f1 = ev.overall.macro_f1;
  s.test.examples = ev.overall.examples;
  s.test.left_out = data.test.left_out();
  for (size_t t = 0; t < plugins.teachers.size(); ++t)
    s.test.teachers.push_back({plugins.teachers[t].name, ev.teacher_accuracy[t], ev.teacher_examples[t]});
  for (size_t u = 0; u < plugins.labels.size(); ++u)
    s.test.classes.push_back({plugins.labels.name(u), ev.class_recall[u]});
  if (test.selection) {
    s.test.selection_accuracy = test.selection->selection_accuracy;
    s.test.selection_auroc = test.selection->auroc;
  }
  s.test.target_accuracy = test.targets.accuracy;
  s.dev = {student.best_dev_accuracy, student.best_dev_macro_f1};
  s.train.steps = student.steps;
  s.train.planned_steps = student.planned_steps;
  s.train.best_step = student.best_step;
  s.train.resumed_from_step = student.resumed_from_step;
  s.train.stopped_early = student.stopped_early;
  s.train.seconds = student.train_seconds;
  s.student_parameters = student.parameters;
  s.teacher_pass = passes.stats;
  s.total_seconds = seconds_since(run.started);
  run.dir.write_file("summary.json", json_line(to_json(s)) + "\n");
  return s;
}

// One panel of the report's uncertainty figure (the paper's Figure 2) under certainty scores `s`
// of the test split (uncertainty_distribution in muki/experiment/analysis.h).
ReportData::Uncertainty uncertainty_panel(const ExperimentPlugins& plugins, const RunData& data,
                                          const TeacherScores& s, const std::string& name, bool by_rank) {
  const std::vector<int64_t>& gold = data.test.gold;
  UncertaintyDistribution d = uncertainty_distribution(s, plugins.labels, gold, by_rank);
  ReportData::Uncertainty u;
  u.name = name;
  u.owner = std::move(d.owner);
  u.other = std::move(d.other);
  const SelectionMetrics m = selection_metrics(s, plugins.labels, gold);
  u.selection_accuracy = m.selection_accuracy;
  u.auroc = m.auroc;
  return u;
}

// The raw scores of muki's own `strategy` over the test passes; none when it is not loaded.
std::optional<TeacherScores> builtin_scores(const RunContext& run, const TeacherPasses& passes,
                                            const std::string& strategy, uint32_t samples) {
  if (run.registry.find(registry::Kind::Uncertainty, strategy) == nullptr) return std::nullopt;
  const auto instance = run.registry.create_uncertainty(
      strategy, {strategy, samples > 0 ? "samples = " + std::to_string(samples) : "", run.config.base_dir(), 0});
  return score_teachers(*instance, passes.test);
}

// Stage 9: report/report.html. The results are written by now: a report that fails is a warning,
// not a failed run.
void write_run_report(const RunContext& run, const ExperimentPlugins& plugins, const RunData& data,
                      const TeacherPasses& passes, const StudentResult& student, const TestResults& test,
                      const RunSummary& summary) {
  try {
    ReportData report;
    report.title = "muki run " + summary.experiment + " (" + run.config.path().string() + ")";
    report.summary = summary;
    report.labels = plugins.labels.names();
    report.evaluation = test.student;
    for (const StudentEval& e : student.history) report.history.push_back({e.step, e.train_loss, e.dev_accuracy});
    // Single-pass entropy, and MC dropout when the run made stochastic passes, with muki's own
    // strategies, raw, whatever the run integrated with; then the run's own certainty as it
    // integrated with it (calibrated, fitted), unless that is one of the two raw panels.
    if (auto s = builtin_scores(run, passes, "entropy", 0))
      report.uncertainties.push_back(uncertainty_panel(plugins, data, *s, "single-pass entropy", false));
    if (const uint32_t k = passes.options.samples; k >= 2)
      if (auto s = builtin_scores(run, passes, "mc_dropout", k))
        report.uncertainties.push_back(
            uncertainty_panel(plugins, data, *s, "MC dropout (K = " + std::to_string(k) + ")", false));
    const bool shown_raw = plugins.uncertainty_name == "entropy" || plugins.uncertainty_name == "mc_dropout";
    if (plugins.scored && (passes.calibration || !shown_raw))
      report.uncertainties.push_back(uncertainty_panel(
          plugins, data, test.scores,
          plugins.uncertainty_name + (passes.calibration ? ", calibrated" : "") + " (rank)", true));
    for (const fs::path& other : config_paths(run.config, "report.compare")) {
      ReportData::Compared c{other.lexically_normal().string(), std::nullopt};
      if (fs::exists(other / "summary.json")) c.summary = read_run_summary(other);
      report.compared.push_back(std::move(c));
    }
    spdlog::info("report: {}", write_report(run.dir.file("report"), report).string());
  } catch (const std::exception& e) {
    spdlog::warn("the report could not be written: {}", e.what());
  }
}

}  // namespace

void prepare_experiment(const Config& config, registry::Registry& registry, const RunOptions& options) {
  for (const fs::path& file : config_paths(config, "prepare.teachers")) {
    spdlog::info("prepare: teachers of {}", file.lexically_normal().string());
    train_teachers(Config::load(file), /*missing_only=*/true, options.group);
  }
  for (const fs::path& file : config_paths(config, "prepare.runs")) {
    const Config dependency = Config::load(file);
    if (as_rank0_decides(options.group, fs::exists(output_dir(dependency) / "summary.json"))) {
      spdlog::info("prepare: {} has run already ({})", file.lexically_normal().string(),
                   output_dir(dependency).string());
      continue;
    }
    spdlog::info("prepare: running {} first", file.lexically_normal().string());
    load_and_validate(dependency, registry, {});
    prepare_experiment(dependency, registry, options);
    RunOptions dependency_options = options;
    dependency_options.fresh = false;  // --fresh is for the experiment asked for
    run_experiment(dependency, registry, dependency_options);
  }
}

RunResult run_experiment(const Config& config, const registry::Registry& registry,
                         const RunOptions& options) {
  const RunContext run = open_run(config, registry, options);
  const ExperimentPlugins plugins = create_plugins(run);
  const RunData data = read_data(run, plugins);
  TeacherPasses passes = run_teacher_passes(run, plugins, data, options.batch_size);
  const Integration integration = integrate(run, plugins, data, passes);
  const StudentResult student = train(run, plugins, data, passes, integration);
  if (!run.leader()) return RunResult{run.dir.path(), run.dir.resumed(), RunSummary{}};  // rank 0 writes the results
  const TestResults results = evaluate_on_test(run, plugins, data, passes, student);
  const RunSummary summary = summarize(run, plugins, data, passes, integration, student, results);
  write_run_report(run, plugins, data, passes, student, results, summary);
  run.dir.log_event("end", {{"test_accuracy", summary.test.accuracy},
                            {"test_macro_f1", summary.test.macro_f1},
                            {"seconds", seconds_since(run.started)}});
  return RunResult{run.dir.path(), run.dir.resumed(), summary};
}

}  // namespace muki::core
