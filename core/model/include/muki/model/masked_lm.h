// Masked-language-model pre-training of muki's Transformer (`muki pretrain`), BERT's recipe
// (Devlin et al. 2019, section 3.1 and appendix A.1): 15% of the real tokens (never [CLS],
// [SEP] or padding) are chosen for prediction; of those, 80% become [MASK], 10% a random token
// of the vocabulary and 10% stay as they are; the loss is the cross-entropy of the original token
// at the chosen positions only. The output layer is BERT's: a dense layer with GELU and
// LayerNorm, then a projection tied to the token embeddings, plus a bias of its own.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/nn.h>

#include <muki/model/models.h>

namespace muki::core {

// Label of a position that is not predicted (what torch's cross_entropy ignores).
constexpr int64_t kNotPredicted = -100;

struct MaskingOptions {
  double probability = 0.15;     // of a real, non-special token being chosen
  double replace_with_mask = 0.8;    // of a chosen token becoming mask_id
  double replace_with_random = 0.1;  // of a chosen token becoming a random non-special token
  int64_t mask_id = -1;
  int64_t vocab_size = 0;
  std::vector<int64_t> special_ids;  // never chosen, never drawn as the random replacement
};

struct MaskedBatch {
  torch::Tensor input_ids;  // [B, L] int64: the corrupted input
  torch::Tensor labels;     // [B, L] int64: the original id where chosen, kNotPredicted elsewhere
};

// Corrupts `input_ids` [B, L] (CPU int64) where `attention_mask` is nonzero, drawing from
// `generator` alone (a CPU generator): the same generator state gives the same batch. A batch in
// which no position is chosen gets its first eligible position chosen, so every batch has a loss.
// Throws std::invalid_argument on options out of range (probabilities outside [0, 1], a mask id
// outside the vocabulary).
MaskedBatch mask_tokens(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        const MaskingOptions& options, at::Generator generator);

// BERT's prediction head on the encoder's hidden states.
class MaskedLmHeadImpl : public torch::nn::Module {
 public:
  MaskedLmHeadImpl(int64_t hidden, int64_t vocab_size);
  // hidden [N, H] (the chosen positions' states), embedding [V, H] (tied). Returns logits [N, V].
  torch::Tensor forward(const torch::Tensor& hidden, const torch::Tensor& embedding);

 private:
  torch::nn::Linear transform_{nullptr};
  torch::nn::LayerNorm norm_{nullptr};
  torch::Tensor bias_;
};
TORCH_MODULE(MaskedLmHead);

// The mean cross-entropy over the predicted positions of `batch` (on the model's device), and
// how many positions that was.
struct MaskedLmLoss {
  torch::Tensor loss;  // scalar
  int64_t predicted = 0;
};
MaskedLmLoss masked_lm_loss(TransformerClassifierImpl& encoder, MaskedLmHeadImpl& head,
                            const MaskedBatch& batch, const torch::Tensor& attention_mask);

}  // namespace muki::core
