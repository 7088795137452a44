#include "muki/pipeline/run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
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
#include "muki/pipeline/student.h"
#include "muki/pipeline/teacher_training.h"
#include "muki/report/report.h"
#include "muki/report/run_summary.h"

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

// "a.tsv" or "a.tsv + b.tsv": what a split was read from, for messages and events.
std::string describe(const std::vector<DatasetSpec>& specs) {
  std::string out;
  for (const DatasetSpec& s : specs) out += (out.empty() ? "" : " + ") + s.path.string();
  return out;
}

// [data].<split> on the union (empty when the config has no such split), logged as an event.
LabeledSplit read_labeled(const Config& config, const char* split, const LabelSpace& labels,
                          const RunDirectory& run) {
  if (config.root().at_path(std::string("data.") + split).as_table() == nullptr) return {};
  const std::vector<DatasetSpec> specs = dataset_specs(config, split);
  const Dataset data = read_all(specs);
  LabeledSplit out = map_onto(data, labels);
  if (data.report.rows_skipped > 0) spdlog::warn("{}", data.report.summary(describe(specs)));
  for (const auto& [label, count] : out.unknown)
    spdlog::warn("{}: {} examples labelled '{}' (no teacher knows it) are left out", split, count, label);
  run.log_event("data", {{"split", split}, {"path", describe(specs)}, {"rows", data.report.rows_read},
                         {"skipped", data.report.rows_skipped}, {"left_out", out.left_out()},
                         {"kept", out.gold.size()}});
  return out;
}

// One teacher over `texts` (cached, resumable), logged as an event.
TeacherOutputs teacher_pass(const TeacherSetup& t, const std::vector<std::string>& texts,
                            const std::string& split,
                            const TeacherPassOptions& pass, const RunDirectory& run,
                            RunSummary::TeacherPass& totals) {
  if (pass.samples > 0)
    spdlog::info("teacher '{}' on {}: {} examples, deterministic + {} stochastic passes ({})", t.name,
                 split, texts.size(), pass.samples, t.instance->sampling_note());
  else
    spdlog::info("teacher '{}' on {}: {} examples, deterministic pass", t.name, split, texts.size());
  TeacherPassStats stats;
  TeacherOutputs out = run_teacher_pass(*t.instance, texts, t.cache_key, pass, &stats);
  totals.chunks_cached += stats.chunks_cached;
  totals.chunks_computed += stats.chunks_computed;
  run.log_event("teacher_pass", {{"teacher", t.name},
                                 {"split", split},
                                 {"examples", texts.size()},
                                 {"samples", pass.samples},
                                 {"chunks_cached", stats.chunks_cached},
                                 {"chunks_computed", stats.chunks_computed},
                                 {"seconds", stats.seconds}});
  return out;
}

std::vector<TeacherOutputs> teacher_passes(const std::vector<TeacherSetup>& teachers,
                                           const std::vector<std::string>& texts,
                                           const std::string& split,
                                           const TeacherPassOptions& pass, const RunDirectory& run,
                                           RunSummary::TeacherPass& totals) {
  std::vector<TeacherOutputs> out;
  for (const TeacherSetup& t : teachers)
    out.push_back(teacher_pass(t, texts, split, pass, run, totals));
  return out;
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

std::string fingerprint_floats(const std::vector<float>& v) {
  return Fingerprint()
      .add(std::string_view(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)))
      .hex();
}

std::vector<int64_t> transfer_gold(const Dataset& transfer, const LabelSpace& labels,
                                   const Config& config, const std::string& strategy) {
  LabeledSplit split = map_onto(transfer, labels);
  if (!split.unknown.empty()) {
    std::string list;
    for (const auto& [label, count] : split.unknown)
      list += (list.empty() ? "" : ", ") + label + " (" + std::to_string(count) + ")";
    throw config_error(config, "integration strategy '" + strategy +
                                   "' needs every transfer example's label in the union; no "
                                   "teacher knows: " + list);
  }
  return std::move(split.gold);
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

}  // namespace

void prepare_experiment(const Config& config, registry::Registry& registry, const RunOptions& options) {
  for (const fs::path& file : config_paths(config, "prepare.teachers")) {
    spdlog::info("prepare: teachers of {}", file.lexically_normal().string());
    train_teachers(Config::load(file), /*missing_only=*/true);
  }
  for (const fs::path& file : config_paths(config, "prepare.runs")) {
    const Config dependency = Config::load(file);
    if (fs::exists(output_dir(dependency) / "summary.json")) {
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

// A strategy that reads features cannot score a teacher without them: say so before any pass.
void check_feature_needs(const Config& config, const registry::UncertaintyInstance& uncertainty,
                         const std::vector<TeacherSetup>& teachers, bool scored) {
  if (!scored || !uncertainty.needs_features()) return;
  for (const TeacherSetup& t : teachers)
    if (t.instance->feature_dim() == 0)
      throw config_error(config, "uncertainty strategy '" + uncertainty.plugin().name +
                                     "' reads the teachers' features, but teacher '" + t.name +
                                     "' (adapter '" + t.instance->plugin().name +
                                     "') gives none; pick a strategy that reads logits only");
}

// Fits a strategy that needs reference data on each teacher's texts of the labeled dev split
// (held out from the teachers' training, labeled for the student's model selection anyway).
void fit_on_dev(const Config& config, const registry::UncertaintyInstance& uncertainty,
                const std::vector<TeacherSetup>& teachers, const LabeledSplit& dev,
                const LabelSpace& labels, TeacherPassOptions pass, const RunDirectory& run,
                RunSummary::TeacherPass& totals) {
  if (dev.gold.empty())
    throw config_error(config, "uncertainty strategy '" + uncertainty.plugin().name +
                                   "' is fitted on each teacher's texts of the labeled dev split: "
                                   "set [data.dev] with a label column");
  pass.samples = 0;
  const auto dev_out = teacher_passes(teachers, dev.texts, "dev", pass, run, totals);
  std::vector<std::string> names;
  for (const TeacherSetup& t : teachers) names.push_back(t.name);
  const std::vector<int64_t> counts = fit_uncertainty(uncertainty, names, dev_out, dev.gold, labels);
  for (size_t t = 0; t < teachers.size(); ++t) {
    spdlog::info("uncertainty '{}': teacher '{}' fitted on its {} texts of the dev split",
                 uncertainty.plugin().name, names[t], counts[t]);
    run.log_event("reference", {{"teacher", names[t]}, {"split", "dev"}, {"texts", counts[t]}});
  }
}

RunResult run_experiment(const Config& config, const registry::Registry& registry,
                         const RunOptions& options) {
  const auto started = Clock::now();
  const toml::table& root = config.root();
  RunResult result;
  const int threads = configure_threads(root.at_path("experiment.threads").value_or(int64_t{0}));
  const bool deterministic = root.at_path("experiment.deterministic").value_or(false);
  configure_determinism(deterministic);

  const RunDirectory run(output_dir(config), config, options.fresh);
  result.dir = run.path();
  result.resumed = run.resumed();
  spdlog::info("run {}{} ({} threads{})", run.path().string(), run.resumed() ? " (resuming)" : "",
               threads, deterministic ? ", deterministic" : "");
  run.log_event(run.resumed() ? "resume" : "start",
                {{"config", config.path().string()}, {"threads", threads}});

  // --- strategies and teachers -----------------------------------------------------------------
  const std::string uncertainty_name = *root.at_path("uncertainty.strategy").value<std::string>();
  const std::string integration_name = *root.at_path("integration.strategy").value<std::string>();
  const auto uncertainty = create_uncertainty(config, registry, uncertainty_name);
  const auto integration = create_integration(config, registry, integration_name);
  const std::vector<TeacherSetup> teachers = create_teachers(config, registry);
  std::vector<std::vector<std::string>> teacher_labels;
  for (const auto& t : teachers) teacher_labels.push_back(t.instance->labels());
  const LabelSpace labels(teacher_labels);
  std::string label_text;
  for (const auto& name : labels.names()) label_text += name + "\n";
  run.write_file("labels.txt", label_text);
  std::vector<const registry::PluginInfo*> used{&uncertainty->plugin(), &integration->plugin()};
  for (const auto& t : teachers) used.push_back(&t.instance->plugin());
  std::optional<TeacherSetup> reference;
  if (const toml::table* ref = root["reference"].as_table()) {
    reference = create_teacher(config, registry, *ref, "reference");
    used.push_back(&reference->instance->plugin());
  }
  run.write_file("plugins.lock", plugin_lock(used));
  spdlog::info("{} teachers, union of {} labels; uncertainty '{}' (K = {}), integration '{}'",
               teachers.size(), labels.size(), uncertainty_name, uncertainty->samples(), integration_name);
  const bool scored = !integration->ignores_scores();
  check_feature_needs(config, *uncertainty, teachers, scored);

  // --- data ---------------------------------------------------------------------------------
  std::vector<DatasetSpec> transfer_specs = dataset_specs(config, "transfer");
  if (integration->needs_gold()) {
    if (transfer_specs.front().label_field.empty())
      throw config_error(config, "integration strategy '" + integration_name +
                                     "' trains on gold labels (an upper bound for analysis): set "
                                     "data.transfer.label to the label column");
  } else {
    for (DatasetSpec& s : transfer_specs) s.label_field.clear();  // unlabeled: never read its labels
  }
  const Dataset transfer = read_all(transfer_specs);
  if (transfer.report.rows_skipped > 0) spdlog::warn("{}", transfer.report.summary(describe(transfer_specs)));
  run.log_event("data", {{"split", "transfer"},
                         {"path", describe(transfer_specs)},
                         {"rows", transfer.report.rows_read},
                         {"skipped", transfer.report.rows_skipped}});
  std::vector<std::string> transfer_texts;
  for (const Example& e : transfer.examples) transfer_texts.push_back(e.text);
  const LabeledSplit dev = read_labeled(config, "dev", labels, run);
  const LabeledSplit test = read_labeled(config, "test", labels, run);
  if (test.gold.empty())
    throw config_error(config, "muki run needs a labeled [data.test] split with labels the teachers know");

  // --- teacher passes -------------------------------------------------------------------------
  // A strategy that ignores the scores needs no stochastic passes (and no uncertainty figures).
  TeacherPassOptions pass;
  pass.samples = scored ? uncertainty->samples() : 0;
  pass.features = scored && uncertainty->needs_features();
  pass.seed = experiment_seed(config);
  pass.batch_size = options.batch_size;
  pass.cache_dir = cache_dir(config) / "teacher-pass";
  const auto pass_started = Clock::now();
  const auto transfer_out = teacher_passes(teachers, transfer_texts, "transfer", pass, run, result.summary.teacher_pass);
  const auto test_out = teacher_passes(teachers, test.texts, "test", pass, run, result.summary.teacher_pass);
  if (scored && uncertainty->needs_reference())
    fit_on_dev(config, *uncertainty, teachers, dev, labels, pass, run, result.summary.teacher_pass);
  const double pass_seconds = seconds_since(pass_started);

  // --- integration ------------------------------------------------------------------------------
  const std::vector<int64_t> gold =
      integration->needs_gold() ? transfer_gold(transfer, labels, config, integration_name)
                                : std::vector<int64_t>{};
  // Unscored strategies get zeros: they promise not to read them.
  auto score = [&](const std::vector<TeacherOutputs>& outputs) {
    if (scored) return score_teachers(*uncertainty, outputs);
    TeacherScores zeros;
    for (const auto& o : outputs) zeros.emplace_back(static_cast<size_t>(o.num_examples), 0.0f);
    return zeros;
  };
  const TeacherScores scores = score(transfer_out);
  const IntegratedTargets targets = integrate_teachers(*integration, transfer_out, scores, labels, gold);
  double mean_weight = 0;
  for (float w : targets.weight) mean_weight += w;
  mean_weight /= std::max<double>(1.0, static_cast<double>(targets.weight.size()));
  std::optional<double> kl_to_reference;
  if (reference) {
    TeacherPassOptions deterministic_pass = pass;
    deterministic_pass.samples = 0;  // the reference's deterministic distribution is the golden one
    const TeacherOutputs ref_out =
        teacher_pass(*reference, transfer_texts, "transfer", deterministic_pass, run, result.summary.teacher_pass);
    // Per-teacher blocks (UHC) are not one distribution over Y: no KL for them.
    if (integration->loss() == MUKI_LOSS_KL_UNION)
      kl_to_reference = mean_kl_divergence(
          targets.target, reference_distribution(*reference, ref_out, labels, config),
          targets.union_size);
  }

  // --- student --------------------------------------------------------------------------------
  StudentSetup student;
  student.config = &config;
  student.labels = labels.names();
  student.transfer_texts = transfer_texts;
  student.targets = targets.target;
  student.weights = targets.weight;
  student.loss = integration->loss();
  student.temperature = integration->student_temperature();
  for (size_t t = 0; t < teachers.size(); ++t) student.blocks.push_back(labels.label_map(t));
  student.dev_texts = dev.texts;
  student.dev_gold = dev.gold;
  student.test_texts = test.texts;
  student.folder = run.file("student");
  student.state_file = run.file("state") / "student.pt";
  // The state belongs to this config and these targets; anything else starts afresh.
  Fingerprint dev_key;
  for (size_t i = 0; i < dev.texts.size(); ++i) dev_key.add(dev.texts[i]).add(static_cast<uint64_t>(dev.gold[i]));
  student.state_key = Fingerprint()
                          .add(config.to_toml())
                          .add(fingerprint_floats(targets.target))
                          .add(fingerprint_floats(targets.weight))
                          .add(dev_key.hex())  // the file may change under the same config
                          .hex();
  student.on_eval = [&](const StudentEval& e) {
    run.log_event("eval", {{"step", e.step},
                           {"epoch", e.epoch},
                           {"train_loss", e.train_loss},
                           {"dev_accuracy", e.dev_accuracy},
                           {"dev_macro_f1", e.dev_macro_f1}});
  };
  const StudentResult trained = train_student(student);

  // --- evaluation -----------------------------------------------------------------------------
  const UnionEvaluation ev = evaluate_union(test.gold, trained.test_predicted, labels);
  const TeacherScores test_scores = score(test_out);
  const TargetMetrics test_targets = target_metrics(
      integrate_teachers(*integration, test_out, test_scores, labels, test.gold), test.gold);

  std::ostringstream predictions;
  predictions << "id\tgold\tpredicted\tprobability\n";
  for (size_t i = 0; i < test.gold.size(); ++i)
    predictions << test.ids[i] << "\t" << labels.name(static_cast<size_t>(test.gold[i])) << "\t"
                << labels.name(static_cast<size_t>(trained.test_predicted[i])) << "\t"
                << trained.test_probability[i] << "\n";
  run.write_file("predictions.tsv", predictions.str());

  RunSummary& summary = result.summary;
  if (scored) add_effective_options(summary, "uncertainty", uncertainty->plugin(), config);
  add_effective_options(summary, "integration", integration->plugin(), config);
  summary.experiment = root.at_path("experiment.name").value_or<std::string>("");
  summary.run_dir = run.path().string();
  summary.uncertainty = scored ? uncertainty_name : "none";
  summary.samples = pass.samples;
  summary.integration = integration_name;
  summary.union_size = static_cast<int64_t>(labels.size());
  summary.seed = static_cast<int64_t>(experiment_seed(config));
  summary.device = trained.device;
  summary.threads = threads;
  summary.deterministic = deterministic;
  summary.transfer = {static_cast<int64_t>(transfer_texts.size()), mean_weight, kl_to_reference};
  summary.test.accuracy = ev.overall.accuracy;
  summary.test.macro_f1 = ev.overall.macro_f1;
  summary.test.examples = ev.overall.examples;
  summary.test.left_out = test.left_out();
  for (size_t t = 0; t < teachers.size(); ++t)
    summary.test.teachers.push_back({teachers[t].name, ev.teacher_accuracy[t], ev.teacher_examples[t]});
  for (size_t u = 0; u < labels.size(); ++u) summary.test.classes.push_back({labels.name(u), ev.class_recall[u]});
  if (scored) {
    const SelectionMetrics selection = selection_metrics(test_scores, labels, test.gold);
    summary.test.selection_accuracy = selection.selection_accuracy;
    summary.test.selection_auroc = selection.auroc;
  }
  summary.test.target_accuracy = test_targets.accuracy;
  summary.dev = {trained.best_dev_accuracy, trained.best_dev_macro_f1};
  summary.train.steps = trained.steps;
  summary.train.planned_steps = trained.planned_steps;
  summary.train.best_step = trained.best_step;
  summary.train.stopped_early = trained.stopped_early;
  summary.train.resumed_from_step = trained.resumed_from_step;
  summary.train.seconds = trained.train_seconds;
  summary.student_parameters = trained.parameters;
  summary.teacher_pass.seconds = pass_seconds;
  summary.total_seconds = seconds_since(started);
  run.write_file("summary.json", json_line(to_json(summary)) + "\n");

  // --- report: the results are written; a report that fails is a warning, not a failed run ----
  try {
    ReportData report;
    report.title = "muki run " + root.at_path("experiment.name").value_or<std::string>("") + " (" +
                   config.path().string() + ")";
    report.summary = summary;
    report.labels = labels.names();
    report.evaluation = ev;
    for (const StudentEval& e : trained.history) report.history.push_back({e.step, e.train_loss, e.dev_accuracy});
    // The paper's Figure 2 on the test split: single-pass entropy, and MC dropout when the run made
    // stochastic passes, with muki's own strategies (when loaded), whatever the run integrated with.
    auto panel = [&](const std::string& strategy, const std::string& name, uint32_t k) {
      if (registry.find(registry::Kind::Uncertainty, strategy) == nullptr) return;
      const auto instance = registry.create_uncertainty(
          strategy, {strategy, k > 0 ? "samples = " + std::to_string(k) : "", config.base_dir(), 0});
      const TeacherScores s = score_teachers(*instance, test_out);
      ReportData::Uncertainty u;
      u.name = name;
      for (size_t i = 0; i < test.gold.size(); ++i) {
        const auto& owners = labels.owners(static_cast<size_t>(test.gold[i]));
        for (size_t t = 0; t < s.size(); ++t)
          (std::find(owners.begin(), owners.end(), t) != owners.end() ? u.owner : u.other)
              .push_back(1.0f - s[t][i]);
      }
      const SelectionMetrics m = selection_metrics(s, labels, test.gold);
      u.selection_accuracy = m.selection_accuracy;
      u.auroc = m.auroc;
      report.uncertainties.push_back(std::move(u));
    };
    for (const fs::path& other : config_paths(config, "report.compare")) {
      ReportData::Compared c{other.lexically_normal().string(), std::nullopt};
      if (fs::exists(other / "summary.json")) c.summary = read_run_summary(other);
      report.compared.push_back(std::move(c));
    }
    panel("entropy", "single-pass entropy", 0);
    if (pass.samples >= 2) panel("mc_dropout", "MC dropout (K = " + std::to_string(pass.samples) + ")", pass.samples);
    const fs::path page = write_report(run.file("report"), report);
    spdlog::info("report: {}", page.string());
  } catch (const std::exception& e) {
    spdlog::warn("the report could not be written: {}", e.what());
  }
  run.log_event("end", {{"test_accuracy", ev.overall.accuracy},
                        {"test_macro_f1", ev.overall.macro_f1},
                        {"seconds", seconds_since(started)}});
  return result;
}

}  // namespace muki::core
