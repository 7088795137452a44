// MUKI's uncertainty: the entropy of the teacher's averaged predictive distribution, normalised
// by log C, turned into a certainty score s = 1 - H(mean_k softmax(z_k)) / log C in [0, 1].
//   - `entropy`:    one deterministic pass (K = 1): the single-pass baseline.
//   - `mc_dropout`: K stochastic passes with dropout on (MUKI, K = 16 in the paper).
#include "strategies.h"

#include "probability.h"

namespace muki::plugins::uncertainty {
namespace {

using muki::sdk::ConstTensor;
using muki::sdk::Tensor;

// Scores every example of logits [K, B, C] by 1 - H(mean_k softmax(z_k)) / log C.
void normalized_entropy_certainty(ConstTensor logits, Tensor scores) {
  const int64_t k = logits.dim(0), b = logits.dim(1), c = logits.dim(2);
  std::vector<double> probs(static_cast<size_t>(c)), mean(static_cast<size_t>(c));
  const double log_c = std::log(static_cast<double>(c));
  for (int64_t i = 0; i < b; ++i) {
    std::fill(mean.begin(), mean.end(), 0.0);
    for (int64_t s = 0; s < k; ++s) {
      muki::plugins::softmax(&logits(s, i, 0), c, 1.0, probs.data());
      for (int64_t j = 0; j < c; ++j) mean[j] += probs[j] / static_cast<double>(k);
    }
    // A one-label teacher has nothing to be uncertain about: certainty 1.
    const double u = c > 1 ? muki::plugins::entropy(mean.data(), c) / log_c : 0.0;
    scores(i) = static_cast<float>(std::clamp(1.0 - u, 0.0, 1.0));
  }
}

}  // namespace

SinglePassEntropy::SinglePassEntropy(const sdk::Context&) {}
uint32_t SinglePassEntropy::samples() const { return 0; }
void SinglePassEntropy::score(ConstTensor logits, Tensor scores) {
  normalized_entropy_certainty(logits, scores);
}

McDropoutEntropy::McDropoutEntropy(const sdk::Context& ctx)
    : samples_(static_cast<uint32_t>(ctx.options.get_int("samples", 16))) {}
uint32_t McDropoutEntropy::samples() const { return samples_; }
void McDropoutEntropy::score(ConstTensor logits, Tensor scores) {
  normalized_entropy_certainty(logits, scores);
}

}  // namespace muki::plugins::uncertainty
