// How good is the integrated supervision, before any student is trained? On a labeled split:
// how often the most certain teacher is one that owns the gold label (teacher selection), how
// well certainty separates the right teacher from the wrong ones (AUROC; the paper's Figure 2 as
// one number), and how often the integrated target's argmax is the gold label.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <muki/data/label_space.h>
#include <muki/experiment/teacher_pass.h>
#include <muki/registry/registry.h>

namespace muki::core {

// Certainty scores of every teacher on every example: scores[t][i].
using TeacherScores = std::vector<std::vector<float>>;

// Runs the strategy over the cached teacher outputs, batch by batch, teacher t as teacher t
// (with its features when the outputs hold them).
TeacherScores score_teachers(const registry::UncertaintyInstance& strategy,
                             const std::vector<TeacherOutputs>& outputs, int64_t batch_size = 256);

// For a strategy that needs_reference(): fits it on each teacher's in-distribution reference, the
// texts of a labeled split (reference[t]: teacher t's deterministic outputs on its split, with
// features when it has them; gold[t]: that split's union labels; teachers may have different
// splits) whose gold label is one of the teacher's, with that label as the teacher's own index.
// A strategy that needs_background() also gets background[t]: teacher t's outputs, with features,
// on the experiment's transfer set; `background` may be nullptr for any other.
// Returns the number of reference texts per teacher. Throws std::runtime_error naming a teacher
// without any.
std::vector<int64_t> fit_uncertainty(const registry::UncertaintyInstance& strategy,
                                     const std::vector<std::string>& teacher_names,
                                     const std::vector<TeacherOutputs>& reference,
                                     const std::vector<std::vector<int64_t>>& gold, const LabelSpace& labels,
                                     const std::vector<TeacherOutputs>* background = nullptr);

// Per-teacher calibration of certainty scores: score' = (score - mean[t]) / scale[t], where mean
// and scale are the mean and standard deviation of teacher t's scores on its own held-out
// in-label texts. Raw scores of different teachers live on different scales (an over-confident
// teacher is "certain" everywhere); after this, each says how typical a text is of the texts the
// teacher does know, in units of their spread.
struct ScoreCalibration {
  std::vector<double> mean, scale;
};

// From labeled splits (reference[t]: teacher t's outputs on its split, with the samples the
// strategy needs; gold[t]: that split's union labels): each teacher scored on the texts whose
// gold label is one of its own. Throws std::runtime_error naming a teacher with fewer than two.
ScoreCalibration calibrate_scores(const registry::UncertaintyInstance& strategy,
                                  const std::vector<std::string>& teacher_names,
                                  const std::vector<TeacherOutputs>& reference,
                                  const std::vector<std::vector<int64_t>>& gold, const LabelSpace& labels);
void apply_calibration(const ScoreCalibration& calibration, TeacherScores& scores);

// The paper's Figure 2: the normalised uncertainty of every (example, teacher) pair, split by
// whether the teacher owns the example's gold label. Certainties in [0, 1] (entropy, MC dropout)
// become 1 - certainty; with `by_rank` (unbounded scores: calibrated, feature distances) the
// pair's rank among all pairs, 0 for the most certain and 1 for the least.
struct UncertaintyDistribution {
  std::vector<float> owner, other;
};
UncertaintyDistribution uncertainty_distribution(const TeacherScores& scores, const LabelSpace& labels,
                                                 const std::vector<int64_t>& gold, bool by_rank);

struct IntegratedTargets {
  int64_t union_size = 0;
  std::vector<float> target;  // [N, |Y|]
  std::vector<float> weight;  // [N]
};

// Runs the integration strategy; `gold` (union indices) is passed only when the strategy needs it.
IntegratedTargets integrate_teachers(const registry::IntegrationInstance& strategy,
                                     const std::vector<TeacherOutputs>& outputs,
                                     const TeacherScores& scores, const LabelSpace& labels,
                                     const std::vector<int64_t>& gold, int64_t batch_size = 256);

struct SelectionMetrics {
  double selection_accuracy = 0;  // argmax_t score is a teacher owning the gold label
  double auroc = 0;               // P(score of an owning teacher > score of another), ties 1/2
  double mean_certainty_owner = 0;
  double mean_certainty_other = 0;
};

SelectionMetrics selection_metrics(const TeacherScores& scores, const LabelSpace& labels,
                                   const std::vector<int64_t>& gold);

struct TargetMetrics {
  double accuracy = 0;           // argmax of the target is the gold label
  double weighted_accuracy = 0;  // the same, each example counted by its weight
  double mean_weight_right = 0;  // mean weight of examples whose target argmax is right
  double mean_weight_wrong = 0;  // ... and wrong: margin re-weighting should make this smaller
};

TargetMetrics target_metrics(const IntegratedTargets& targets, const std::vector<int64_t>& gold);

// Area under the ROC curve of `positive` vs `negative` scores (Mann-Whitney U, ties count 1/2).
double auroc(std::vector<float> positive, std::vector<float> negative);

}  // namespace muki::core
