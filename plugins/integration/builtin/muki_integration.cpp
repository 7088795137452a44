// MUKI's integration strategies (Li et al., 2022, section 3): each teacher's deterministic
// distribution softmax(z_i / T) is zero-padded into the union label space; certainty scores
// s_i pick or weight the teachers, and the margin between the two most certain teachers
// re-weights the example.
//   - `max`:      target = q_{i*}, i* = argmax_i s_i (ties: the lowest teacher index).
//   - `weighted`: target = sum_i softmax(s / tau)_i q_i.
// Both: weight = |s_(1) - s_(2)| + 1e-6 with margin re-weighting, else 1.
#include "probability.h"
#include "strategies.h"

namespace muki::plugins::integration {

using muki::sdk::Error;
using muki::sdk::IntegrationBatch;
using muki::sdk::Tensor;

namespace {
constexpr double kMarginEpsilon = 1e-6;  // the authors' constant: no example gets weight 0
}  // namespace

MukiIntegration::MukiIntegration(const sdk::Context& ctx, bool soft)
    : soft_(soft),
      margin_(ctx.options.get_bool("margin_reweighting", true)),
      temperature_(ctx.options.get_float("temperature", 1.0)),
      tau_(ctx.options.get_float("tau", 0.2)) {}

void MukiIntegration::integrate(const IntegrationBatch& batch, Tensor target, Tensor weight) {
  const size_t n = batch.teachers.size();
  if (margin_ && n < 2)
    throw Error(MUKI_ERR_INVALID_ARGUMENT,
                "margin re-weighting needs at least two teachers (set margin_reweighting = "
                "false for one)");
  const int64_t b = batch.batch_size();
  std::vector<double> q, w(n);
  for (int64_t i = 0; i < b; ++i) {
    float* row = &target(i, 0);
    std::fill(row, row + batch.union_size, 0.0f);
    // Teacher weights: one-hot on the most certain teacher, or a softmax over certainties.
    size_t best = 0;
    for (size_t t = 1; t < n; ++t)
      if (batch.teachers[t].scores(i) > batch.teachers[best].scores(i)) best = t;
    if (soft_) {
      std::vector<float> s(n);
      for (size_t t = 0; t < n; ++t) s[t] = batch.teachers[t].scores(i);
      muki::plugins::softmax(s.data(), static_cast<int64_t>(n), tau_, w.data());
    } else {
      std::fill(w.begin(), w.end(), 0.0);
      w[best] = 1.0;
    }
    for (size_t t = 0; t < n; ++t) {
      if (w[t] == 0.0) continue;
      const auto& teacher = batch.teachers[t];
      const int64_t c = static_cast<int64_t>(teacher.num_labels);
      q.resize(static_cast<size_t>(c));
      muki::plugins::softmax(&teacher.logits(i, 0), c, temperature_, q.data());
      for (int64_t j = 0; j < c; ++j)
        row[teacher.label_map[j]] += static_cast<float>(w[t] * q[static_cast<size_t>(j)]);
    }
    weight(i) = margin_ ? static_cast<float>(margin(batch, i) + kMarginEpsilon) : 1.0f;
  }
}

// |s_(1) - s_(2)|: the gap between the two highest certainty scores of example i.
double MukiIntegration::margin(const IntegrationBatch& batch, int64_t i) {
  double first = -INFINITY, second = -INFINITY;
  for (const auto& t : batch.teachers) {
    const double s = t.scores(i);
    if (s > first) {
      second = first;
      first = s;
    } else if (s > second) {
      second = s;
    }
  }
  return std::abs(first - second);
}

}  // namespace muki::plugins::integration
