// Evaluating a student over the union label space Y (torch-free): accuracy and macro-F1 over Y,
// accuracy on each teacher's own labels, per-class recall, the confusion matrix; and how close
// integrated targets are to a reference distribution.
#pragma once

#include <cstdint>
#include <vector>

#include <muki/data/label_space.h>
#include <muki/metrics/metrics.h>

namespace muki::core {

struct UnionEvaluation {
  ClassificationMetrics overall;
  // teacher_accuracy[t]: accuracy over the examples whose gold label is one of teacher t's
  // (predictions range over the whole union); teacher_examples[t]: how many those are.
  std::vector<double> teacher_accuracy;
  std::vector<int64_t> teacher_examples;
  // Per union label: recall (0 when the label has no example) and the gold count.
  std::vector<double> class_recall;
  std::vector<int64_t> class_examples;
  // confusion[g * |Y| + p]: examples of gold label g predicted as p.
  std::vector<int64_t> confusion;
};

// `gold` and `predicted` hold union indices. Throws std::invalid_argument on a length mismatch or
// an index outside the union.
UnionEvaluation evaluate_union(const std::vector<int64_t>& gold,
                               const std::vector<int64_t>& predicted, const LabelSpace& labels);

// mean_i KL(target_i || reference_i) over N rows of |Y| probabilities each (row-major), with
// 0 * log 0 = 0; a reference probability of 0 where the target has mass is floored at 1e-12 (the
// divergence stays finite and large). Throws std::invalid_argument on mismatched sizes.
double mean_kl_divergence(const std::vector<float>& target, const std::vector<float>& reference,
                          int64_t num_classes);

}  // namespace muki::core
