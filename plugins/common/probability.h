// Numerics shared by the built-in strategies: stable softmax, log-sum-exp and entropy in double
// precision.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace muki::plugins {

// out[c] = softmax(logits / temperature)[c], computed stably.
inline void softmax(const float* logits, int64_t n, double temperature, double* out) {
  double max_logit = -INFINITY;
  for (int64_t c = 0; c < n; ++c) max_logit = std::max(max_logit, static_cast<double>(logits[c]));
  double sum = 0.0;
  for (int64_t c = 0; c < n; ++c) {
    out[c] = std::exp((static_cast<double>(logits[c]) - max_logit) / temperature);
    sum += out[c];
  }
  for (int64_t c = 0; c < n; ++c) out[c] /= sum;
}

// log sum_c exp(logits[c] / temperature), computed stably: factoring out the largest term keeps
// exp() from overflowing on large logits. All -inf (an empty distribution) gives -inf, not NaN.
inline double log_sum_exp(const float* logits, int64_t n, double temperature) {
  double max_scaled = -INFINITY;
  for (int64_t c = 0; c < n; ++c)
    max_scaled = std::max(max_scaled, static_cast<double>(logits[c]) / temperature);
  if (std::isinf(max_scaled)) return max_scaled;
  double sum = 0.0;
  for (int64_t c = 0; c < n; ++c)
    sum += std::exp(static_cast<double>(logits[c]) / temperature - max_scaled);
  return max_scaled + std::log(sum);
}

// Shannon entropy in nats with 0 * log 0 = 0.
inline double entropy(const double* p, int64_t n) {
  double h = 0.0;
  for (int64_t c = 0; c < n; ++c)
    if (p[c] > 0.0) h -= p[c] * std::log(p[c]);
  return h;
}

}  // namespace muki::plugins
