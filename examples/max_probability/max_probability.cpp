// An uncertainty strategy shipped outside muki's tree: the maximum softmax probability
// (Hendrycks & Gimpel, ICLR 2017), the classic out-of-distribution baseline, rescaled so that it
// is comparable with MUKI's normalised entropy:
//   s = (max_c p_c - 1/C) / (1 - 1/C)      in [0, 1]: 0 for uniform, 1 for one-hot,
// where p is the mean of the K stochastic passes (K = 0 for one deterministic pass).
#include <muki/plugin.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

class MaxProbability : public muki::sdk::UncertaintyStrategy {
 public:
  explicit MaxProbability(const muki::sdk::Context& ctx)
      : samples_(static_cast<uint32_t>(ctx.options.get_int("samples", 0))) {}

  uint32_t samples() const override { return samples_; }

  void score(muki::sdk::ConstTensor logits, muki::sdk::Tensor scores) override {
    const int64_t k = logits.dim(0), b = logits.dim(1), c = logits.dim(2);
    std::vector<double> mean(static_cast<size_t>(c));
    for (int64_t i = 0; i < b; ++i) {
      std::fill(mean.begin(), mean.end(), 0.0);
      for (int64_t s = 0; s < k; ++s) {
        const float* z = &logits(s, i, 0);
        const double top = *std::max_element(z, z + c);
        double sum = 0.0;
        for (int64_t j = 0; j < c; ++j) sum += std::exp(z[j] - top);
        for (int64_t j = 0; j < c; ++j) mean[j] += std::exp(z[j] - top) / sum / static_cast<double>(k);
      }
      const double p_max = *std::max_element(mean.begin(), mean.end());
      const double floor = 1.0 / static_cast<double>(c);
      scores(i) = c > 1 ? static_cast<float>((p_max - floor) / (1.0 - floor)) : 1.0f;
    }
  }

 private:
  uint32_t samples_;
};

const muki_param_desc kParams[] = {muki::sdk::param(
    "samples", MUKI_PARAM_INT, "0", "stochastic passes K to average (0: one deterministic pass)",
    0, 4096)};

}  // namespace

MUKI_PLUGIN_LIBRARY("muki-example-max-probability", "1.0.0",
                    "an out-of-tree example plugin library",
                    MUKI_UNCERTAINTY(MaxProbability, "max_probability", "1.0.0",
                                     "rescaled maximum softmax probability (Hendrycks & Gimpel)",
                                     kParams))
