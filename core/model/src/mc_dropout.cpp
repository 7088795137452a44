#include "muki/model/mc_dropout.h"

#include <stdexcept>

#include <torch/torch.h>

#include "muki/model/device.h"

namespace muki::core {

namespace {

// Applies fn to each dropout-kind module; returns how many there were.
template <class Fn>
int64_t for_each_dropout(torch::nn::Module& module, Fn&& fn) {
  int64_t n = 0;
  auto visit = [&](torch::nn::Module& m) {
    if (auto* d = dynamic_cast<torch::nn::DropoutImpl*>(&m)) {
      fn(m, d->options.p());
    } else if (auto* d2 = dynamic_cast<torch::nn::Dropout2dImpl*>(&m)) {
      fn(m, d2->options.p());
    } else if (auto* d3 = dynamic_cast<torch::nn::Dropout3dImpl*>(&m)) {
      fn(m, d3->options.p());
    } else if (auto* a = dynamic_cast<torch::nn::AlphaDropoutImpl*>(&m)) {
      fn(m, a->options.p());
    } else if (auto* f = dynamic_cast<torch::nn::FeatureAlphaDropoutImpl*>(&m)) {
      fn(m, f->options.p());
    } else {
      return;
    }
    ++n;
  };
  visit(module);
  for (const auto& child : module.modules(/*include_self=*/false)) visit(*child);
  return n;
}

// Restores eval mode (dropout off) when a sampling pass ends, also on an exception.
struct EvalOnExit {
  torch::nn::Module& module;
  ~EvalOnExit() { module.eval(); }
};

}  // namespace

int64_t set_dropout_active(torch::nn::Module& module, bool on) {
  return for_each_dropout(module, [on](torch::nn::Module& m, double) { m.train(on); });
}

int64_t count_dropout_modules(torch::nn::Module& module) {
  return for_each_dropout(module, [](torch::nn::Module&, double) {});
}

void set_dropout_rate(torch::nn::Module& module, double p) {
  if (!(p >= 0.0 && p < 1.0))
    throw std::invalid_argument("dropout rate must lie in [0, 1), got " + std::to_string(p));
  for_each_dropout(module, [p](torch::nn::Module& m, double) {
    if (auto* d = dynamic_cast<torch::nn::DropoutImpl*>(&m)) d->options.p(p);
    else if (auto* d2 = dynamic_cast<torch::nn::Dropout2dImpl*>(&m)) d2->options.p(p);
    else if (auto* d3 = dynamic_cast<torch::nn::Dropout3dImpl*>(&m)) d3->options.p(p);
    else if (auto* a = dynamic_cast<torch::nn::AlphaDropoutImpl*>(&m)) a->options.p(p);
    else if (auto* f = dynamic_cast<torch::nn::FeatureAlphaDropoutImpl*>(&m)) f->options.p(p);
  });
}

torch::Tensor mc_dropout_sample(ClassifierImpl& model, const torch::Tensor& input_ids,
                                const torch::Tensor& attention_mask, int64_t samples,
                                uint64_t seed, torch::Tensor* features,
                                const std::vector<int64_t>& positions) {
  if (samples < 1)
    throw std::invalid_argument("MC dropout needs samples >= 1, got " + std::to_string(samples));
  const int64_t b = input_ids.size(0), l = input_ids.size(1);
  if (!positions.empty() && static_cast<int64_t>(positions.size()) != b)
    throw std::invalid_argument("MC dropout: " + std::to_string(positions.size()) +
                                " positions for " + std::to_string(b) + " examples");
  std::vector<uint64_t> keys(static_cast<size_t>(samples * b));
  for (int64_t i = 0; i < b; ++i) {
    const uint64_t example = mix_seed(
        seed, static_cast<uint64_t>(positions.empty() ? i : positions[static_cast<size_t>(i)]));
    for (int64_t k = 0; k < samples; ++k)
      keys[static_cast<size_t>(k * b + i)] = mix_seed(example, static_cast<uint64_t>(k));
  }
  const DropoutKeyScope keyed(std::move(keys));
  EvalOnExit restore{model};
  model.eval();
  set_dropout_active(model, true);
  c10::InferenceMode inference;
  // [B, L] -> [K, B, L] -> [K*B, L]: row k*B + i is sample k of example i.
  const torch::Tensor ids = input_ids.unsqueeze(0).expand({samples, b, l}).reshape({samples * b, l});
  const torch::Tensor mask =
      attention_mask.unsqueeze(0).expand({samples, b, l}).reshape({samples * b, l});
  SeededGeneratorGuard seeded(input_ids.device(), seed);
  const torch::Tensor pooled = model.pooled_features(ids, mask);
  torch::Tensor logits = model.classify(pooled);
  if (features != nullptr) *features = pooled.view({samples, b, pooled.size(1)});
  return logits.view({samples, b, logits.size(1)});
}

torch::Tensor predict_deterministic(ClassifierImpl& model, const torch::Tensor& input_ids,
                                    const torch::Tensor& attention_mask, torch::Tensor* features) {
  model.eval();
  c10::InferenceMode inference;
  const torch::Tensor pooled = model.pooled_features(input_ids, attention_mask);
  if (features != nullptr) *features = pooled;
  return model.classify(pooled);
}

}  // namespace muki::core
