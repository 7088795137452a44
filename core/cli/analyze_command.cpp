// `muki analyze CONFIG`: runs the teachers over a labeled split (cached teacher pass) and
// measures, for every requested uncertainty x integration strategy, how good the integrated
// supervision is before any student is trained.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include <spdlog/spdlog.h>

#include "cli_common.h"
#include "muki/data/label_space.h"
#include "muki/data/labeled_split.h"
#include "muki/experiment/analysis.h"
#include "muki/experiment/experiment.h"
#include "muki/experiment/run_directory.h"
#include "muki/experiment/teacher_pass.h"
#include "muki/io/files.h"
#include "muki/io/json.h"
#include "muki/model/device.h"
#include "muki/report/report.h"

namespace muki::cli {
namespace fs = std::filesystem;
using core::Config;
using core::ConfigError;
using core::ConfigProblem;
using core::Json;

namespace {

std::vector<std::string> split_list(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string fixed(double v, int digits = 3) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

// A histogram as a row of block characters, lowest bin first, scaled to the tallest bin.
std::string sparkline(const std::vector<double>& fractions) {
  static const char* const kBlocks[] = {" ", "\u2581", "\u2582", "\u2583", "\u2584", "\u2585", "\u2586", "\u2587", "\u2588"};
  const double top = std::max(1e-12, *std::max_element(fractions.begin(), fractions.end()));
  std::string out;
  for (double f : fractions) out += kBlocks[static_cast<int>(std::lround(f / top * 8))];
  return out;
}

}  // namespace

int cmd_analyze(const std::vector<std::string>& args) {
  CommonOptions common;
  ConfigOptions cfg;
  std::string split = "test", uncertainty_list, integration_list, json_path;
  int64_t batch_size = core::TeacherPassOptions{}.batch_size;
  po::options_description desc("options");
  add_config(desc, cfg);
  desc.add_options()("split", po::value(&split)->default_value("test"),
                     "labeled split of [data] to analyze (dev or test)")(
      "uncertainty", po::value(&uncertainty_list),
      "comma-separated uncertainty strategies to compare (default: the config's)")(
      "integration", po::value(&integration_list),
      "comma-separated integration strategies to compare (default: the config's)")(
      "batch-size", po::value(&batch_size)->default_value(batch_size), "texts per teacher call (the run's, to share its cache)")(
      "json", po::value(&json_path), "also write the results as JSON to this file "
                                     "(default: <output_dir>/analysis-<split>.json)");
  if (!parse_config_command(
          args, desc, common, "info",
          "usage: muki analyze CONFIG [--split test] [--uncertainty a,b] [--integration x,y]"))
    return 0;
  setup_logging(common.log_level);

  const Config config = load_config(cfg);
  registry::Registry registry;
  load_plugins_and_validate(config, registry, common);
  core::configure_threads(config.root().at_path("experiment.threads").value_or(int64_t{0}));

  // The labeled split. Labels are read here only to measure; they never reach a strategy
  // (except `oracle`-like strategies that declare they need gold labels).
  const std::vector<core::DatasetSpec> specs = core::dataset_specs(config, split);
  if (specs.front().label_field.empty())
    throw ConfigError({ConfigProblem{config.path().string(), 0, 0,
                                     "[data." + split + "] has no label field; analyze needs labels"}});
  const core::Dataset data = core::read_all(specs);
  if (data.report.rows_skipped > 0 || !data.report.problems.empty())
    spdlog::warn("{}", data.report.summary(specs.front().path));

  auto teachers = core::create_teachers(config, registry);
  std::vector<std::vector<std::string>> teacher_labels;
  for (const auto& t : teachers) teacher_labels.push_back(t.instance->labels());
  const core::LabelSpace labels(teacher_labels);

  // Examples whose gold label no teacher knows cannot be scored: counted and reported.
  const core::LabeledSplit labeled = core::map_onto(data, labels);
  const std::vector<std::string>& texts = labeled.texts;
  const std::vector<int64_t>& gold = labeled.gold;
  for (const auto& [label, count] : labeled.unknown)
    spdlog::warn("{} examples labelled '{}' (no teacher knows it) are left out", count, label);
  if (texts.empty()) throw std::runtime_error("no example of [data." + split + "] has a label a teacher knows");

  const std::string configured_u = config.root().at_path("uncertainty.strategy").value_or<std::string>("");
  const std::string configured_i = config.root().at_path("integration.strategy").value_or<std::string>("");
  const auto u_names = uncertainty_list.empty() ? std::vector<std::string>{configured_u} : split_list(uncertainty_list);
  const auto i_names = integration_list.empty() ? std::vector<std::string>{configured_i} : split_list(integration_list);
  std::vector<std::unique_ptr<registry::UncertaintyInstance>> uncertainties;
  std::vector<std::unique_ptr<registry::IntegrationInstance>> integrations;
  uint32_t samples = 0;
  bool features = false;
  for (const auto& name : u_names) {
    uncertainties.push_back(core::create_uncertainty(config, registry, name));
    core::check_features(config, *uncertainties.back(), teachers);
    samples = std::max(samples, uncertainties.back()->samples());
    features = features || uncertainties.back()->needs_features();
  }
  for (const auto& name : i_names) integrations.push_back(core::create_integration(config, registry, name));

  // The teacher pass, cached where `muki run` caches it.
  const fs::path out_dir = core::output_dir(config);
  const core::TeacherPassOptions pass = core::teacher_pass_options(config, samples, features, batch_size);
  std::vector<core::TeacherOutputs> outputs;
  for (const auto& t : teachers) {
    spdlog::info("teacher '{}' ({} labels; sampling: {}), {} examples, K = {}", t.name,
                 t.instance->labels().size(),
                 t.instance->sampling_note().empty() ? "none" : t.instance->sampling_note(),
                 texts.size(), samples);
    outputs.push_back(core::run_teacher_pass(*t.instance, texts, t.cache_key, pass));
  }

  // Each teacher on its own labels: the ceiling of what selecting it can give.
  std::ostringstream report;
  report << "# muki analyze: " << config.path().string() << " [" << split << ", " << texts.size()
         << " examples, " << labels.size() << " labels, " << teachers.size() << " teachers]\n\n";
  report << "| teacher | labels | accuracy on its own labels | examples |\n|---|---:|---:|---:|\n";
  Json json = {{"config", config.path().string()}, {"split", split}, {"examples", texts.size()},
               {"samples", samples}, {"teachers", Json::array()}, {"results", Json::array()}};
  for (size_t t = 0; t < teachers.size(); ++t) {
    int64_t own = 0, right = 0;
    for (size_t i = 0; i < gold.size(); ++i) {
      const int64_t j = labels.local_index(t, gold[i]);
      if (j < 0) continue;
      ++own;
      const float* row = outputs[t].deterministic_row(static_cast<int64_t>(i));
      if (std::max_element(row, row + outputs[t].num_labels) - row == j) ++right;
    }
    const double acc = own > 0 ? static_cast<double>(right) / static_cast<double>(own) : 0.0;
    report << "| " << teachers[t].name << " | " << labels.label_map(t).size() << " | " << fixed(acc) << " | " << own << " |\n";
    json["teachers"].push_back({{"name", teachers[t].name}, {"own_accuracy", acc}, {"own_examples", own}});
  }

  report << "\n| uncertainty | K | teacher selection | AUROC owner vs other | certainty owner | certainty other |"
         << "\n|---|---:|---:|---:|---:|---:|\n";
  std::ostringstream targets_table;
  targets_table << "\n| uncertainty | integration | target accuracy | weighted accuracy | mean weight right | mean weight wrong |"
                << "\n|---|---|---:|---:|---:|---:|\n";
  // The dev split, when the config has one, as `muki run` uses it: a strategy fitted on reference
  // data sees each teacher's texts of it, and every other strategy is also shown calibrated
  // against them (a z-score per teacher, muki/experiment/analysis.h). A fitted strategy
  // calibrates itself on held-out folds.
  const bool has_dev = config.root().at_path("data.dev").as_table() != nullptr;
  core::LabeledSplit dev;
  if (has_dev) dev = core::map_onto(core::read_all(core::dataset_specs(config, "dev")), labels);
  std::vector<core::TeacherOutputs> dev_outputs;
  std::vector<std::string> names;
  for (const auto& t : teachers) {
    if (has_dev) dev_outputs.push_back(core::run_teacher_pass(*t.instance, dev.texts, t.cache_key, pass));
    names.push_back(t.name);
  }
  const std::vector<std::vector<int64_t>> dev_gold(teachers.size(), dev.gold);
  // A strategy fitted against a background (ABI 1.2) gets the transfer set's features, as in
  // `muki run`: a deterministic pass, cached under the run's key (unless the run's integration
  // reads gold labels, which reads the transfer set with them). Computed once, when first needed.
  std::vector<core::TeacherOutputs> background;
  auto background_outputs = [&]() -> const std::vector<core::TeacherOutputs>& {
    if (!background.empty()) return background;
    std::vector<core::DatasetSpec> transfer_specs = core::dataset_specs(config, "transfer");
    for (core::DatasetSpec& spec : transfer_specs) spec.label_field.clear();
    const core::Dataset transfer = core::read_all(transfer_specs);
    if (transfer.report.rows_skipped > 0 || !transfer.report.problems.empty())
      spdlog::warn("{}", transfer.report.summary(transfer_specs.front().path));
    if (transfer.examples.empty())
      throw std::runtime_error("[data.transfer] holds no example: a strategy fitted against the "
                               "transfer set has nothing to measure against");
    std::vector<std::string> transfer_texts;
    for (const core::Example& e : transfer.examples) transfer_texts.push_back(e.text);
    const core::TeacherPassOptions background_pass = core::teacher_pass_options(config, 0, true, batch_size);
    for (const auto& t : teachers)
      background.push_back(core::run_teacher_pass(*t.instance, transfer_texts, t.cache_key, background_pass));
    return background;
  };
  struct Variant {
    size_t strategy;
    std::string name;
    std::optional<core::ScoreCalibration> calibration;
  };
  std::vector<Variant> variants;
  for (size_t u = 0; u < uncertainties.size(); ++u) {
    variants.push_back({u, u_names[u], std::nullopt});
    if (uncertainties[u]->needs_reference() && !has_dev)
      throw std::runtime_error("uncertainty strategy '" + u_names[u] +
                               "' is fitted on each teacher's texts of the labeled dev split: set "
                               "[data.dev] with a label column");
    if (uncertainties[u]->needs_reference())
      core::fit_uncertainty(*uncertainties[u], names, dev_outputs, dev_gold, labels,
                            uncertainties[u]->needs_background() ? &background_outputs() : nullptr);
    else if (has_dev)
      variants.push_back({u, u_names[u] + " (calibrated on dev)",
                          core::calibrate_scores(*uncertainties[u], names, dev_outputs, dev_gold, labels)});
  }

  // The paper's Figure 2 for every variant, side by side: the distribution of the owner's and the
  // other teachers' normalised uncertainty (ranks when the scores are not certainties in [0, 1]).
  std::ostringstream figure;
  constexpr int kBins = 10;
  figure << "\nnormalised uncertainty, " << kBins << " bins from certain to uncertain:\n"
         << "| uncertainty | teacher that owns the gold label | other teachers |\n|---|---|---|\n";
  for (const Variant& variant : variants) {
    const size_t u = variant.strategy;
    auto scores = core::score_teachers(*uncertainties[u], outputs);
    if (variant.calibration) core::apply_calibration(*variant.calibration, scores);
    const auto sel = core::selection_metrics(scores, labels, gold);
    bool by_rank = variant.calibration.has_value();
    for (const auto& teacher : scores)
      for (float s : teacher) by_rank = by_rank || !(s >= 0.0f && s <= 1.0f);
    const core::UncertaintyDistribution d = core::uncertainty_distribution(scores, labels, gold, by_rank);
    const std::vector<double> owner = core::histogram(d.owner, kBins), other = core::histogram(d.other, kBins);
    figure << "| " << variant.name << (by_rank ? " (rank)" : "") << " | `" << sparkline(owner) << "` | `"
           << sparkline(other) << "` |\n";
    json["distributions"].push_back({{"uncertainty", variant.name}, {"by_rank", by_rank},
                                     {"owner", owner}, {"other", other}});
    report << "| " << variant.name << " | " << uncertainties[u]->samples() << " | "
           << fixed(sel.selection_accuracy) << " | " << fixed(sel.auroc) << " | "
           << fixed(sel.mean_certainty_owner) << " | " << fixed(sel.mean_certainty_other) << " |\n";
    for (size_t g = 0; g < integrations.size(); ++g) {
      const auto integrated = core::integrate_teachers(*integrations[g], outputs, scores, labels, gold);
      const auto tm = core::target_metrics(integrated, gold);
      targets_table << "| " << variant.name << " | " << i_names[g] << " | " << fixed(tm.accuracy) << " | "
                    << fixed(tm.weighted_accuracy) << " | " << fixed(tm.mean_weight_right, 4) << " | "
                    << fixed(tm.mean_weight_wrong, 4) << " |\n";
      json["results"].push_back({{"uncertainty", variant.name},
                                 {"integration", i_names[g]},
                                 {"selection_accuracy", sel.selection_accuracy},
                                 {"auroc", sel.auroc},
                                 {"certainty_owner", sel.mean_certainty_owner},
                                 {"certainty_other", sel.mean_certainty_other},
                                 {"target_accuracy", tm.accuracy},
                                 {"weighted_target_accuracy", tm.weighted_accuracy}});
    }
  }
  report << figure.str() << targets_table.str();
  std::cout << report.str() << std::flush;

  const fs::path json_file =
      json_path.empty() ? core::analysis_report_path(out_dir, split) : fs::path(json_path);
  if (json_file.has_parent_path()) fs::create_directories(json_file.parent_path());
  core::write_file_atomically(json_file, core::json_line(json) + "\n");
  spdlog::info("wrote {}", json_file.string());
  return 0;
}

}  // namespace muki::cli
