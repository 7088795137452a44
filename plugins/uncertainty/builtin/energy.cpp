// Energy score (Liu et al., NeurIPS 2020): the negative free energy -E(x) = T * logsumexp(z / T)
// is larger on inputs like the training data, so it serves as a certainty directly. It reads the
// logits' magnitude, which softmax-based scores discard; the price is that it is unbounded and in
// logit units, and that it is not invariant to adding a constant to all of a teacher's logits.
//   - K passes (samples >= 1) are averaged, as MC dropout does for probabilities.
//   - normalize: -E grows by T log C with the label count alone (C logits all equal to a give
//     a + T log C), so subtracting T log C puts teachers of different sizes on one scale.
#include "probability.h"
#include "strategies.h"

namespace muki::plugins::uncertainty {

using muki::sdk::ConstTensor;
using muki::sdk::Tensor;

Energy::Energy(const sdk::Context& ctx)
    : samples_(static_cast<uint32_t>(ctx.options.get_int("samples", 0))),
      temperature_(ctx.options.get_float("temperature", 1.0)),
      normalize_(ctx.options.get_bool("normalize", true)) {}

uint32_t Energy::samples() const { return samples_; }

void Energy::score(ConstTensor logits, Tensor scores) {
  const int64_t k = logits.dim(0), b = logits.dim(1), c = logits.dim(2);
  const double offset = normalize_ ? std::log(static_cast<double>(c)) : 0.0;
  for (int64_t i = 0; i < b; ++i) {
    double sum = 0.0;
    for (int64_t s = 0; s < k; ++s) {
      const double lse = muki::plugins::log_sum_exp(&logits(s, i, 0), c, temperature_);
      sum += temperature_ * (lse - offset);
    }
    scores(i) = static_cast<float>(sum / static_cast<double>(k));
  }
}

}  // namespace muki::plugins::uncertainty
