#include "muki/experiment/analysis.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace muki::core {

TeacherScores score_teachers(const registry::UncertaintyInstance& strategy,
                             const std::vector<TeacherOutputs>& outputs, int64_t batch_size) {
  TeacherScores scores;
  for (size_t t = 0; t < outputs.size(); ++t) {
    const TeacherOutputs& out = outputs[t];
    if (strategy.samples() > 0 && out.samples < static_cast<int64_t>(strategy.samples()))
      throw std::runtime_error("the teacher pass holds " + std::to_string(out.samples) +
                               " stochastic samples; the strategy wants " +
                               std::to_string(strategy.samples()));
    std::vector<float> s(static_cast<size_t>(out.num_examples));
    for (int64_t b = 0; b < out.num_examples; b += batch_size) {
      const int64_t count = std::min(batch_size, out.num_examples - b);
      if (strategy.samples() == 0) {
        strategy.score(t, out.deterministic_row(b), 1, count, out.num_labels,
                       out.features_row(b), out.feature_dim, &s[static_cast<size_t>(b)]);
      } else if (strategy.needs_features()) {
        throw std::runtime_error("uncertainty strategy '" + strategy.plugin().name +
                                 "' wants features of stochastic passes, which the teacher pass "
                                 "does not keep");
      } else {
        // [K_computed, B, C]; a strategy asking for fewer samples gets the first K of them.
        std::vector<float> batch = out.samples_batch(b, count);
        batch.resize(static_cast<size_t>(strategy.samples() * count * out.num_labels));
        strategy.score(t, batch.data(), strategy.samples(), count, out.num_labels, nullptr, 0,
                       &s[static_cast<size_t>(b)]);
      }
    }
    for (size_t i = 0; i < s.size(); ++i)
      if (!std::isfinite(s[i]))
        throw std::runtime_error("uncertainty strategy '" + strategy.plugin().name + "' gave a non-finite "
                                 "certainty (" + std::to_string(s[i]) + ") to teacher " + std::to_string(t) +
                                 " on example " + std::to_string(i) + "; certainty scores must be finite");
    scores.push_back(std::move(s));
  }
  return scores;
}

std::vector<int64_t> fit_uncertainty(const registry::UncertaintyInstance& strategy,
                                     const std::vector<std::string>& teacher_names,
                                     const std::vector<TeacherOutputs>& reference,
                                     const std::vector<std::vector<int64_t>>& gold, const LabelSpace& labels,
                                     const std::vector<TeacherOutputs>* background) {
  if (strategy.needs_background() && (background == nullptr || background->size() != reference.size()))
    throw std::logic_error("uncertainty strategy '" + strategy.plugin().name +
                           "' needs every teacher's features of the transfer set");
  std::vector<int64_t> counts;
  for (size_t t = 0; t < reference.size(); ++t) {
    const TeacherOutputs& out = reference[t];
    std::vector<float> logits, features;
    std::vector<int64_t> local;
    for (int64_t i = 0; i < out.num_examples; ++i) {
      const int64_t j = labels.local_index(t, gold[t][static_cast<size_t>(i)]);
      if (j < 0) continue;
      local.push_back(j);
      logits.insert(logits.end(), out.deterministic_row(i), out.deterministic_row(i) + out.num_labels);
      if (out.feature_dim > 0)
        features.insert(features.end(), out.features_row(i), out.features_row(i) + out.feature_dim);
    }
    if (local.empty())
      throw std::runtime_error("uncertainty strategy '" + strategy.plugin().name +
                               "' needs reference texts of teacher '" + teacher_names[t] +
                               "', but the reference split has no text with one of its labels");
    registry::ReferenceView view;
    view.teacher = t;
    view.teacher_name = teacher_names[t];
    view.logits = logits.data();
    view.rows = static_cast<int64_t>(local.size());
    view.num_labels = out.num_labels;
    view.features = out.feature_dim > 0 ? features.data() : nullptr;
    view.feature_dim = out.feature_dim;
    view.labels = local.data();
    if (strategy.needs_background()) {
      const TeacherOutputs& b = (*background)[t];
      if (b.feature_dim != out.feature_dim)
        throw std::logic_error("teacher '" + teacher_names[t] + "': the transfer pass kept " +
                               std::to_string(b.feature_dim) + " features a text, the reference pass " +
                               std::to_string(out.feature_dim));
      view.background = b.features.data();
      view.background_rows = b.num_examples;
    }
    strategy.fit(view);
    counts.push_back(view.rows);
  }
  return counts;
}

ScoreCalibration calibrate_scores(const registry::UncertaintyInstance& strategy,
                                  const std::vector<std::string>& teacher_names,
                                  const std::vector<TeacherOutputs>& reference,
                                  const std::vector<std::vector<int64_t>>& gold, const LabelSpace& labels) {
  const TeacherScores scores = score_teachers(strategy, reference);
  ScoreCalibration calibration;
  for (size_t t = 0; t < scores.size(); ++t) {
    double sum = 0.0, sum_sq = 0.0;
    int64_t n = 0;
    for (size_t i = 0; i < gold[t].size(); ++i) {
      if (labels.local_index(t, gold[t][i]) < 0) continue;
      const double v = scores[t][i];
      sum += v;
      sum_sq += v * v;
      ++n;
    }
    if (n < 2)
      throw std::runtime_error("calibrating uncertainty strategy '" + strategy.plugin().name +
                               "' needs at least 2 reference texts of teacher '" +
                               teacher_names[t] + "', the split has " + std::to_string(n));
    const double mean = sum / static_cast<double>(n);
    const double var = std::max(0.0, sum_sq / static_cast<double>(n) - mean * mean);
    calibration.mean.push_back(mean);
    // A teacher equally certain of every text of its own has no spread to measure in.
    calibration.scale.push_back(std::max(std::sqrt(var), 1e-6));
  }
  return calibration;
}

void apply_calibration(const ScoreCalibration& calibration, TeacherScores& scores) {
  for (size_t t = 0; t < scores.size(); ++t)
    for (float& s : scores[t])
      s = static_cast<float>((s - calibration.mean[t]) / calibration.scale[t]);
}

UncertaintyDistribution uncertainty_distribution(const TeacherScores& scores, const LabelSpace& labels,
                                                 const std::vector<int64_t>& gold, bool by_rank) {
  std::vector<float> sorted;
  for (const auto& teacher : scores) sorted.insert(sorted.end(), teacher.begin(), teacher.end());
  std::sort(sorted.begin(), sorted.end());
  const float last = static_cast<float>(std::max<size_t>(1, sorted.size() - 1));
  auto normalised = [&](float score) {
    if (!by_rank) return 1.0f - score;
    return 1.0f - static_cast<float>(std::lower_bound(sorted.begin(), sorted.end(), score) - sorted.begin()) / last;
  };
  UncertaintyDistribution out;
  for (size_t i = 0; i < gold.size(); ++i) {
    const auto& owners = labels.owners(static_cast<size_t>(gold[i]));
    for (size_t t = 0; t < scores.size(); ++t) {
      const bool owns = std::find(owners.begin(), owners.end(), t) != owners.end();
      (owns ? out.owner : out.other).push_back(normalised(scores[t][i]));
    }
  }
  return out;
}

IntegratedTargets integrate_teachers(const registry::IntegrationInstance& strategy,
                                     const std::vector<TeacherOutputs>& outputs,
                                     const TeacherScores& scores, const LabelSpace& labels,
                                     const std::vector<int64_t>& gold, int64_t batch_size) {
  const int64_t n = outputs.empty() ? 0 : outputs.front().num_examples;
  IntegratedTargets out;
  out.union_size = static_cast<int64_t>(labels.size());
  out.target.resize(static_cast<size_t>(n * out.union_size));
  out.weight.resize(static_cast<size_t>(n));
  for (int64_t b = 0; b < n; b += batch_size) {
    const int64_t count = std::min(batch_size, n - b);
    std::vector<registry::TeacherOutputsView> views;
    for (size_t t = 0; t < outputs.size(); ++t)
      views.push_back({outputs[t].deterministic_row(b), &scores[t][static_cast<size_t>(b)],
                       &labels.label_map(t)});
    strategy.integrate(views, count, out.union_size,
                       strategy.needs_gold() ? &gold[static_cast<size_t>(b)] : nullptr,
                       &out.target[static_cast<size_t>(b * out.union_size)],
                       &out.weight[static_cast<size_t>(b)]);
  }
  // The student trains on these: a NaN or a negative mass would train it on garbage silently.
  auto refuse = [&](const char* what, size_t example, float value) {
    throw std::runtime_error("integration strategy '" + strategy.plugin().name + "' gave " + what + " (" +
                             std::to_string(value) + ") on example " + std::to_string(example) +
                             "; targets and weights must be finite and >= 0");
  };
  for (size_t i = 0; i < out.target.size(); ++i)
    if (!(std::isfinite(out.target[i]) && out.target[i] >= 0.0f))
      refuse("a target probability that is not a finite number >= 0", i / static_cast<size_t>(out.union_size),
             out.target[i]);
  for (size_t i = 0; i < out.weight.size(); ++i)
    if (!(std::isfinite(out.weight[i]) && out.weight[i] >= 0.0f))
      refuse("a weight that is not a finite number >= 0", i, out.weight[i]);
  return out;
}

double auroc(std::vector<float> positive, std::vector<float> negative) {
  if (positive.empty() || negative.empty()) return 0.5;
  // Rank all scores together (ties get their average rank), then Mann-Whitney U.
  std::vector<std::pair<float, bool>> all;
  for (float p : positive) all.emplace_back(p, true);
  for (float q : negative) all.emplace_back(q, false);
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  double rank_sum = 0;
  for (size_t i = 0; i < all.size();) {
    size_t j = i;
    while (j < all.size() && all[j].first == all[i].first) ++j;
    const double average_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
    for (size_t m = i; m < j; ++m)
      if (all[m].second) rank_sum += average_rank;
    i = j;
  }
  const double np = static_cast<double>(positive.size()), nn = static_cast<double>(negative.size());
  return (rank_sum - np * (np + 1) / 2.0) / (np * nn);
}

SelectionMetrics selection_metrics(const TeacherScores& scores, const LabelSpace& labels,
                                   const std::vector<int64_t>& gold) {
  SelectionMetrics m;
  std::vector<float> owner, other;
  int64_t correct = 0;
  for (size_t i = 0; i < gold.size(); ++i) {
    const auto& owners = labels.owners(static_cast<size_t>(gold[i]));
    size_t best = 0;
    for (size_t t = 1; t < scores.size(); ++t)
      if (scores[t][i] > scores[best][i]) best = t;
    if (std::find(owners.begin(), owners.end(), best) != owners.end()) ++correct;
    for (size_t t = 0; t < scores.size(); ++t)
      (std::find(owners.begin(), owners.end(), t) != owners.end() ? owner : other)
          .push_back(scores[t][i]);
  }
  auto mean = [](const std::vector<float>& v) {
    return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  };
  m.selection_accuracy = gold.empty() ? 0.0 : static_cast<double>(correct) / static_cast<double>(gold.size());
  m.mean_certainty_owner = mean(owner);
  m.mean_certainty_other = mean(other);
  m.auroc = auroc(std::move(owner), std::move(other));
  return m;
}

TargetMetrics target_metrics(const IntegratedTargets& targets, const std::vector<int64_t>& gold) {
  TargetMetrics m;
  double right = 0, weight_total = 0, weight_right = 0;
  double sum_w_right = 0, sum_w_wrong = 0;
  int64_t n_right = 0, n_wrong = 0;
  for (size_t i = 0; i < gold.size(); ++i) {
    const float* row = &targets.target[i * static_cast<size_t>(targets.union_size)];
    const auto argmax = std::max_element(row, row + targets.union_size) - row;
    const double w = targets.weight[i];
    weight_total += w;
    if (argmax == gold[i]) {
      right += 1;
      weight_right += w;
      sum_w_right += w;
      ++n_right;
    } else {
      sum_w_wrong += w;
      ++n_wrong;
    }
  }
  const double n = static_cast<double>(gold.size());
  m.accuracy = n > 0 ? right / n : 0.0;
  m.weighted_accuracy = weight_total > 0 ? weight_right / weight_total : 0.0;
  m.mean_weight_right = n_right > 0 ? sum_w_right / static_cast<double>(n_right) : 0.0;
  m.mean_weight_wrong = n_wrong > 0 ? sum_w_wrong / static_cast<double>(n_wrong) : 0.0;
  return m;
}

}  // namespace muki::core
