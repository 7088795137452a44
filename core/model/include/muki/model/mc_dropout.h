// Monte-Carlo dropout for muki's own models: dropout modules on, everything else in eval mode,
// K stochastic passes as ONE forward call over the batch replicated K times.
//
// Seeding: torch::nn::Dropout draws from torch's process-wide default generator (the functional
// dropout op takes no generator), so a seeded pass holds a SeededGeneratorGuard (device.h) for
// its forward call. The same (model, inputs, K, seed, device) gives the same samples.
#pragma once

#include <cstdint>

#include <torch/nn/module.h>
#include <torch/types.h>

#include <muki/model/models.h>

namespace muki::core {

// Puts every torch::nn::Dropout / Dropout2d / Dropout3d / AlphaDropout / FeatureAlphaDropout
// submodule of `module` (itself included) in training mode when `on`, in eval mode otherwise, and
// leaves every other module's mode untouched. Returns how many dropout modules it switched.
// Call module.eval() first to get "eval except dropout".
int64_t set_dropout_active(torch::nn::Module& module, bool on);

// Number of dropout submodules (the same kinds as above).
int64_t count_dropout_modules(torch::nn::Module& module);

// Sets p of every dropout submodule (the rate MC dropout samples with). Throws
// std::invalid_argument unless 0 <= p < 1.
void set_dropout_rate(torch::nn::Module& module, double p);

// K stochastic passes of `model` on one batch: the model goes to eval mode with its dropout
// modules on, the batch [B, L] is replicated to [K*B, L] and run in ONE forward call under
// torch::InferenceMode with the default generator seeded by `seed`, and the result is reshaped to
// [K, B, C] (on the model's device). The model is back in eval mode (dropout off) afterwards, also
// when the forward throws. input_ids / attention_mask must be on the model's device. When
// `features` is not null it receives the same passes' pooled features, [K, B, H]. Throws
// std::invalid_argument when samples < 1, and what forward() throws.
torch::Tensor mc_dropout_sample(ClassifierImpl& model, const torch::Tensor& input_ids,
                                const torch::Tensor& attention_mask, int64_t samples,
                                uint64_t seed, torch::Tensor* features = nullptr);

// One deterministic pass: eval mode (dropout off), torch::InferenceMode. Returns [B, C]; when
// `features` is not null it receives the pooled features, [B, H].
torch::Tensor predict_deterministic(ClassifierImpl& model, const torch::Tensor& input_ids,
                                    const torch::Tensor& attention_mask,
                                    torch::Tensor* features = nullptr);

// A well-mixed 64-bit hash (splitmix64) for deriving per-micro-batch seeds from a request seed.
uint64_t mix_seed(uint64_t seed, uint64_t index);

}  // namespace muki::core
