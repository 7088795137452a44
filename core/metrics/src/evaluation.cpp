#include "muki/metrics/evaluation.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace muki::core {

UnionEvaluation evaluate_union(const std::vector<int64_t>& gold,
                               const std::vector<int64_t>& predicted, const LabelSpace& labels) {
  const auto c = static_cast<int64_t>(labels.size());
  UnionEvaluation out;
  out.overall = classification_metrics(gold, predicted, c);  // checks sizes and ranges
  const size_t teachers = labels.num_teachers();
  std::vector<int64_t> teacher_right(teachers, 0);
  out.teacher_examples.assign(teachers, 0);
  out.class_examples.assign(static_cast<size_t>(c), 0);
  out.confusion.assign(static_cast<size_t>(c * c), 0);
  for (size_t i = 0; i < gold.size(); ++i) {
    const auto g = static_cast<size_t>(gold[i]);
    ++out.class_examples[g];
    ++out.confusion[g * static_cast<size_t>(c) + static_cast<size_t>(predicted[i])];
    for (size_t t : labels.owners(g)) {
      ++out.teacher_examples[t];
      if (predicted[i] == gold[i]) ++teacher_right[t];
    }
  }
  for (size_t t = 0; t < teachers; ++t)
    out.teacher_accuracy.push_back(out.teacher_examples[t] > 0
                                       ? static_cast<double>(teacher_right[t]) /
                                             static_cast<double>(out.teacher_examples[t])
                                       : 0.0);
  for (size_t g = 0; g < static_cast<size_t>(c); ++g)
    out.class_recall.push_back(out.class_examples[g] > 0
                                   ? static_cast<double>(out.confusion[g * static_cast<size_t>(c) + g]) /
                                         static_cast<double>(out.class_examples[g])
                                   : 0.0);
  return out;
}

double mean_kl_divergence(const std::vector<float>& target, const std::vector<float>& reference,
                          int64_t num_classes) {
  if (num_classes < 1 || target.size() != reference.size() ||
      target.size() % static_cast<size_t>(num_classes) != 0)
    throw std::invalid_argument("mean_kl_divergence: " + std::to_string(target.size()) +
                                " target and " + std::to_string(reference.size()) +
                                " reference values for rows of " + std::to_string(num_classes));
  const size_t rows = target.size() / static_cast<size_t>(num_classes);
  if (rows == 0) return 0.0;
  double total = 0.0;
  for (size_t i = 0; i < target.size(); ++i) {
    const double p = target[i];
    if (p <= 0.0) continue;
    total += p * (std::log(p) - std::log(std::max(static_cast<double>(reference[i]), 1e-12)));
  }
  return total / static_cast<double>(rows);
}

}  // namespace muki::core
