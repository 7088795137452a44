// Classification metrics over integer class ids (torch-free).
#pragma once

#include <cstdint>
#include <vector>

namespace muki::core {

struct ClassificationMetrics {
  double accuracy = 0.0;
  // Unweighted mean of the per-class F1 over the classes that occur in gold or predictions
  // (scikit-learn's default label set); a class with no true positives has F1 0.
  double macro_f1 = 0.0;
  int64_t examples = 0;
};

// Throws std::invalid_argument when the vectors differ in length or an id is outside
// [0, num_classes). Empty input gives all zeros.
ClassificationMetrics classification_metrics(const std::vector<int64_t>& gold,
                                             const std::vector<int64_t>& predicted,
                                             int64_t num_classes);

}  // namespace muki::core
