// Monte-Carlo dropout for muki's own models: dropout modules on, everything else in eval mode,
// K stochastic passes as ONE forward call over the batch replicated K times.
//
// Seeding: muki's models drop with KeyedDropout (keyed_dropout.h), keyed per row: sample k of the
// example at position q is keyed mix_seed(mix_seed(seed, q), k). A text's samples therefore
// depend on (seed, its position, k) and its own tokens only: not on K, on the other texts of the
// call or on their padding. A plain torch dropout module, were a model to have one, draws from
// torch's default generator, seeded for the call by a SeededGeneratorGuard (device.h).
#pragma once

#include <cstdint>
#include <vector>

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
// `features` is not null it receives the same passes' pooled features, [K, B, H]. `positions`
// gives each example's position (its key, above); empty means 0..B-1. Throws
// std::invalid_argument when samples < 1 or positions has a size other than B, and what
// forward() throws.
torch::Tensor mc_dropout_sample(ClassifierImpl& model, const torch::Tensor& input_ids,
                                const torch::Tensor& attention_mask, int64_t samples,
                                uint64_t seed, torch::Tensor* features = nullptr,
                                const std::vector<int64_t>& positions = {});

// One deterministic pass: eval mode (dropout off), torch::InferenceMode. Returns [B, C]; when
// `features` is not null it receives the pooled features, [B, H].
torch::Tensor predict_deterministic(ClassifierImpl& model, const torch::Tensor& input_ids,
                                    const torch::Tensor& attention_mask,
                                    torch::Tensor* features = nullptr);

}  // namespace muki::core
