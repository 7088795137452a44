// BALD (Houlsby et al., 2011; Gal et al., 2017): the mutual information between the prediction
// and the model parameters, estimated from K MC-dropout passes,
//   I(y; theta | x) = H(mean_k p_k) - mean_k H(p_k)   (nats, in [0, log C]).
// Unlike MUKI's total entropy it leaves out the aleatoric part mean_k H(p_k): only disagreement
// between the passes counts. A teacher that is consistently unsure (every pass near uniform)
// therefore gets certainty 1, while confident passes that contradict each other get 0.
#include <string>

#include "probability.h"
#include "strategies.h"

namespace muki::plugins::uncertainty {

using muki::sdk::ConstTensor;
using muki::sdk::Error;
using muki::sdk::Tensor;

Bald::Bald(const sdk::Context& ctx)
    : samples_(static_cast<uint32_t>(ctx.options.get_int("samples", 16))) {}

uint32_t Bald::samples() const { return samples_; }

void Bald::score(ConstTensor logits, Tensor scores) {
  const int64_t k = logits.dim(0), b = logits.dim(1), c = logits.dim(2);
  // With one pass the two entropies coincide: MI would be 0 and every teacher "certain", silently.
  if (k < 2)
    throw Error(MUKI_ERR_INVALID_ARGUMENT,
                "bald needs at least 2 stochastic passes (got K = " + std::to_string(k) + ")");
  std::vector<double> probs(static_cast<size_t>(c)), mean(static_cast<size_t>(c));
  const double log_c = std::log(static_cast<double>(c));
  const double inv_k = 1.0 / static_cast<double>(k);
  for (int64_t i = 0; i < b; ++i) {
    std::fill(mean.begin(), mean.end(), 0.0);
    double mean_entropy = 0.0;
    for (int64_t s = 0; s < k; ++s) {
      muki::plugins::softmax(&logits(s, i, 0), c, 1.0, probs.data());
      mean_entropy += muki::plugins::entropy(probs.data(), c) * inv_k;
      for (int64_t j = 0; j < c; ++j) mean[j] += probs[j] * inv_k;
    }
    // MI >= 0 by concavity of H; rounding may leave it a hair below, hence the clamp.
    const double mi = muki::plugins::entropy(mean.data(), c) - mean_entropy;
    const double u = c > 1 ? mi / log_c : 0.0;  // a one-label teacher cannot disagree with itself
    scores(i) = static_cast<float>(std::clamp(1.0 - u, 0.0, 1.0));
  }
}

}  // namespace muki::plugins::uncertainty
