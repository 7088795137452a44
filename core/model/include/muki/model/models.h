// Text classifiers built with LibTorch's C++ API (muki_model): the architectures muki trains as
// teachers and, later, as students. Every model maps
//     forward(input_ids [B, L] int64, attention_mask [B, L] (1 = token, 0 = padding)) -> logits [B, C]
// and puts a KeyedDropout wherever BERT has dropout, so MC dropout (mc_dropout.h) can switch
// exactly those modules on. Only the stable C++ API is used (no batch_first / norm_first options
// of torch::nn::Transformer, which LibTorch 1.13 lacks), so the code builds against 1.13 and 2.x.
//
// Padding never changes a model's output: attention ignores padded keys, pooling ignores padded
// positions, and the CNN sees padded positions as zeros however many there are.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn.h>

#include <muki/model/keyed_dropout.h>

namespace muki::core {

// Architecture and sizes. Saved as the [model] table of a checkpoint's config.toml.
struct ModelConfig {
  std::string type = "transformer";  // "transformer" | "bag_of_embeddings" | "cnn"
  int64_t vocab_size = 0;            // from the tokenizer
  int64_t num_labels = 0;            // C
  int64_t hidden = 128;              // embedding and model width
  int64_t layers = 2;                // transformer: encoder layers
  int64_t heads = 4;                 // transformer: attention heads; must divide hidden
  int64_t ffn = 512;                 // transformer: feed-forward width
  int64_t max_length = 128;          // longest input (tokens, special tokens included)
  double dropout = 0.1;              // every dropout module's p
  std::string pooling = "cls";       // transformer: "cls" (first position) | "mean" (over the mask)
  int64_t filters = 100;             // cnn: filters per kernel size (kernel sizes 3, 4, 5)

  // Throws std::invalid_argument naming the first bad field (unknown type or pooling, a size < 1,
  // hidden not divisible by heads, dropout outside [0, 1)).
  void validate() const;
};

// The common base: a torch::nn::Module with a virtual forward, so trainers, checkpoints and
// adapters handle every architecture alike (held as std::shared_ptr<ClassifierImpl>).
class ClassifierImpl : public torch::nn::Module {
 public:
  explicit ClassifierImpl(ModelConfig config) : config_(std::move(config)) {}
  // input_ids [B, L] int64 with L <= max_length; attention_mask [B, L] of any numeric or bool
  // dtype (nonzero = real token); both on the model's device. Returns float logits [B, C].
  // Throws c10::Error on shapes that do not fit.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
    return classify(pooled_features(input_ids, attention_mask));
  }
  // The pooled representation the classification layer reads, [B, feature_dim()]: what a teacher
  // hands the host as its features (SDK 1.1). Same inputs and errors as forward().
  virtual torch::Tensor pooled_features(const torch::Tensor& input_ids,
                                        const torch::Tensor& attention_mask) = 0;
  // Logits [B, C] from pooled features: the classifier's dropout and linear layer.
  virtual torch::Tensor classify(const torch::Tensor& pooled) = 0;
  // H of pooled_features(): hidden (transformer, bag of embeddings) or 3 x filters (cnn).
  virtual int64_t feature_dim() const = 0;
  const ModelConfig& config() const { return config_; }

 private:
  ModelConfig config_;
};
using Classifier = std::shared_ptr<ClassifierImpl>;

// One post-LN BERT encoder layer: self-attention (Q/K/V projections, scaled dot-product with the
// padding mask, dropout on the attention probabilities, output projection, dropout, residual,
// LayerNorm), then a GELU feed-forward block (dropout, residual, LayerNorm).
class EncoderLayerImpl : public torch::nn::Module {
 public:
  // Its dropout modules are keyed as layers first_dropout, +1 and +2 (keyed_dropout.h);
  // max_length is the attention dropout's position stride.
  EncoderLayerImpl(int64_t hidden, int64_t heads, int64_t ffn, double dropout,
                   uint64_t first_dropout, int64_t max_length);
  // x [B, L, H]; key_padding [B, L] bool, true on padding. Returns [B, L, H].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& key_padding);

 private:
  int64_t heads_;
  torch::nn::Linear query_{nullptr}, key_{nullptr}, value_{nullptr}, attention_out_{nullptr};
  KeyedDropout attention_dropout_{nullptr}, attention_out_dropout_{nullptr};
  torch::nn::LayerNorm attention_norm_{nullptr};
  torch::nn::Linear ffn_in_{nullptr}, ffn_out_{nullptr};
  KeyedDropout ffn_dropout_{nullptr};
  torch::nn::LayerNorm ffn_norm_{nullptr};
};
TORCH_MODULE(EncoderLayer);

// BERT-shaped: token + learned position embeddings, LayerNorm, dropout; N encoder layers;
// [CLS] (position 0) or masked-mean pooling; dropout; linear classifier.
class TransformerClassifierImpl : public ClassifierImpl {
 public:
  explicit TransformerClassifierImpl(const ModelConfig& config);
  // The last encoder layer's output [B, L, H], every position (padded ones too: ignore them).
  // What pooled_features pools and masked-language-model pre-training predicts from.
  torch::Tensor hidden_states(const torch::Tensor& input_ids, const torch::Tensor& attention_mask);
  // The token embedding matrix [vocab_size, H], which a pre-training output layer is tied to.
  const torch::Tensor& token_embedding_weight() const { return token_embedding_->weight; }
  torch::Tensor pooled_features(const torch::Tensor& input_ids,
                                const torch::Tensor& attention_mask) override;
  torch::Tensor classify(const torch::Tensor& pooled) override;
  int64_t feature_dim() const override;

 private:
  torch::nn::Embedding token_embedding_{nullptr}, position_embedding_{nullptr};
  torch::nn::LayerNorm embedding_norm_{nullptr};
  KeyedDropout embedding_dropout_{nullptr};
  torch::nn::ModuleList layers_{nullptr};
  std::vector<EncoderLayer> layer_list_;
  KeyedDropout classifier_dropout_{nullptr};
  torch::nn::Linear classifier_{nullptr};
};

// Bag of embeddings: the mean of the token embeddings over the mask, dropout, linear.
class BagOfEmbeddingsClassifierImpl : public ClassifierImpl {
 public:
  explicit BagOfEmbeddingsClassifierImpl(const ModelConfig& config);
  torch::Tensor pooled_features(const torch::Tensor& input_ids,
                                const torch::Tensor& attention_mask) override;
  torch::Tensor classify(const torch::Tensor& pooled) override;
  int64_t feature_dim() const override;

 private:
  torch::nn::Embedding token_embedding_{nullptr};
  KeyedDropout dropout_{nullptr};
  torch::nn::Linear classifier_{nullptr};
};

// Kim (2014)-style CNN: embeddings, dropout, one Conv1d per kernel size 3/4/5 with ReLU and a
// max-pool over the real positions, concatenated, dropout, linear.
class CnnClassifierImpl : public ClassifierImpl {
 public:
  explicit CnnClassifierImpl(const ModelConfig& config);
  torch::Tensor pooled_features(const torch::Tensor& input_ids,
                                const torch::Tensor& attention_mask) override;
  torch::Tensor classify(const torch::Tensor& pooled) override;
  int64_t feature_dim() const override;
  static constexpr int64_t kKernelSizes[] = {3, 4, 5};

 private:
  torch::nn::Embedding token_embedding_{nullptr};
  KeyedDropout embedding_dropout_{nullptr};
  std::vector<torch::nn::Conv1d> convs_;
  KeyedDropout dropout_{nullptr};
  torch::nn::Linear classifier_{nullptr};
};

// Builds a freshly initialised model of config.type (parameters drawn from torch's default
// generator: call torch::manual_seed first for a reproducible init). The model is on the CPU, in
// training mode. Throws std::invalid_argument from ModelConfig::validate().
Classifier make_classifier(const ModelConfig& config);

}  // namespace muki::core
