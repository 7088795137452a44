#include "muki/model/masked_lm.h"

#include <stdexcept>
#include <string>

#include <torch/torch.h>

namespace muki::core {

MaskedBatch mask_tokens(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        const MaskingOptions& o, at::Generator generator) {
  auto probability = [](double p, const char* name) {
    if (!(p >= 0.0 && p <= 1.0))
      throw std::invalid_argument(std::string("masking: ") + name + " must lie in [0, 1], got " + std::to_string(p));
  };
  probability(o.probability, "probability");
  probability(o.replace_with_mask, "replace_with_mask");
  probability(o.replace_with_random, "replace_with_random");
  probability(o.replace_with_mask + o.replace_with_random, "replace_with_mask + replace_with_random");
  if (o.mask_id < 0 || o.mask_id >= o.vocab_size)
    throw std::invalid_argument("masking: mask id " + std::to_string(o.mask_id) + " is outside the vocabulary of " +
                                std::to_string(o.vocab_size) + " tokens");
  const torch::Tensor ids = input_ids.to(torch::kLong);
  const auto long_cpu = torch::TensorOptions().dtype(torch::kLong);
  const torch::Tensor specials = torch::tensor(o.special_ids, long_cpu);
  torch::Tensor eligible = (attention_mask != 0).logical_and(torch::isin(ids, specials).logical_not());

  torch::Tensor chosen = eligible.logical_and(torch::rand(ids.sizes(), generator) < o.probability);
  if (!chosen.any().item<bool>() && eligible.any().item<bool>()) {
    // A loss needs at least one target: take the first eligible position.
    chosen = torch::zeros_like(eligible);
    chosen.view(-1).index_put_({eligible.view(-1).to(torch::kInt).argmax()}, true);
  }
  const torch::Tensor action = torch::rand(ids.sizes(), generator);
  const torch::Tensor to_mask = chosen.logical_and(action < o.replace_with_mask);
  const torch::Tensor to_random = chosen.logical_and(action >= o.replace_with_mask)
                                      .logical_and(action < o.replace_with_mask + o.replace_with_random);
  // Random replacements come from the ordinary tokens only: a random [CLS] or [PAD] in the middle
  // of a text teaches nothing.
  const torch::Tensor ordinary =
      torch::arange(o.vocab_size, long_cpu).index({torch::isin(torch::arange(o.vocab_size, long_cpu), specials).logical_not()});
  const torch::Tensor random_ids =
      ordinary.index({torch::randint(0, ordinary.size(0), ids.sizes(), generator, long_cpu)});

  MaskedBatch out;
  out.input_ids = torch::where(to_mask, torch::full_like(ids, o.mask_id), torch::where(to_random, random_ids, ids));
  out.labels = torch::where(chosen, ids, torch::full_like(ids, kNotPredicted));
  return out;
}

MaskedLmHeadImpl::MaskedLmHeadImpl(int64_t hidden, int64_t vocab_size) {
  transform_ = register_module("transform", torch::nn::Linear(hidden, hidden));
  norm_ = register_module("transform_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({hidden}).eps(1e-12)));
  bias_ = register_parameter("bias", torch::zeros({vocab_size}));
  torch::NoGradGuard no_grad;
  transform_->weight.normal_(0.0, 0.02);
  transform_->bias.zero_();
}

torch::Tensor MaskedLmHeadImpl::forward(const torch::Tensor& hidden, const torch::Tensor& embedding) {
  return torch::nn::functional::linear(norm_(torch::gelu(transform_(hidden))), embedding, bias_);
}

MaskedLmLoss masked_lm_loss(TransformerClassifierImpl& encoder, MaskedLmHeadImpl& head, const MaskedBatch& batch,
                            const torch::Tensor& attention_mask) {
  const torch::Tensor states = encoder.hidden_states(batch.input_ids, attention_mask);  // [B, L, H]
  const torch::Tensor predicted = batch.labels != kNotPredicted;
  const torch::Tensor targets = batch.labels.index({predicted});
  const torch::Tensor logits = head.forward(states.index({predicted}), encoder.token_embedding_weight());
  return {torch::nn::functional::cross_entropy(logits, targets), targets.size(0)};
}

}  // namespace muki::core
