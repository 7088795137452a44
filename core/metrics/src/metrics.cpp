#include "muki/metrics/metrics.h"

#include <stdexcept>
#include <string>

namespace muki::core {

ClassificationMetrics classification_metrics(const std::vector<int64_t>& gold,
                                             const std::vector<int64_t>& predicted,
                                             int64_t num_classes) {
  if (gold.size() != predicted.size())
    throw std::invalid_argument("classification_metrics: " + std::to_string(gold.size()) +
                                " gold labels but " + std::to_string(predicted.size()) +
                                " predictions");
  ClassificationMetrics m;
  m.examples = static_cast<int64_t>(gold.size());
  if (gold.empty()) return m;
  const size_t c = static_cast<size_t>(num_classes);
  std::vector<int64_t> tp(c, 0), gold_count(c, 0), pred_count(c, 0);
  int64_t correct = 0;
  for (size_t i = 0; i < gold.size(); ++i) {
    if (gold[i] < 0 || gold[i] >= num_classes || predicted[i] < 0 || predicted[i] >= num_classes)
      throw std::invalid_argument("classification_metrics: class id outside [0, " +
                                  std::to_string(num_classes) + ")");
    ++gold_count[static_cast<size_t>(gold[i])];
    ++pred_count[static_cast<size_t>(predicted[i])];
    if (gold[i] == predicted[i]) {
      ++correct;
      ++tp[static_cast<size_t>(gold[i])];
    }
  }
  m.accuracy = static_cast<double>(correct) / static_cast<double>(gold.size());
  double f1_sum = 0.0;
  int64_t classes = 0;
  for (size_t k = 0; k < c; ++k) {
    if (gold_count[k] == 0 && pred_count[k] == 0) continue;
    ++classes;
    // F1 = 2 TP / (gold + predicted), the same as 2PR/(P+R) and 0 when TP = 0.
    f1_sum += 2.0 * static_cast<double>(tp[k]) / static_cast<double>(gold_count[k] + pred_count[k]);
  }
  m.macro_f1 = classes > 0 ? f1_sum / static_cast<double>(classes) : 0.0;
  return m;
}

}  // namespace muki::core
