#include "muki/model/models.h"

#include <cmath>
#include <stdexcept>

#include <torch/torch.h>

namespace muki::core {

void ModelConfig::validate() const {
  auto positive = [](int64_t v, const char* name) {
    if (v < 1)
      throw std::invalid_argument(std::string("model.") + name + " must be >= 1, got " +
                                  std::to_string(v));
  };
  if (type != "transformer" && type != "bag_of_embeddings" && type != "cnn")
    throw std::invalid_argument("model.type must be \"transformer\", \"bag_of_embeddings\" or "
                                "\"cnn\", not \"" + type + "\"");
  positive(vocab_size, "vocab_size");
  positive(num_labels, "num_labels");
  positive(hidden, "hidden");
  positive(max_length, "max_length");
  if (!(dropout >= 0.0 && dropout < 1.0))
    throw std::invalid_argument("model.dropout must lie in [0, 1), got " + std::to_string(dropout));
  if (type == "transformer") {
    positive(layers, "layers");
    positive(heads, "heads");
    positive(ffn, "ffn");
    if (hidden % heads != 0)
      throw std::invalid_argument("model.hidden (" + std::to_string(hidden) +
                                  ") must be divisible by model.heads (" + std::to_string(heads) +
                                  ")");
    if (pooling != "cls" && pooling != "mean")
      throw std::invalid_argument("model.pooling must be \"cls\" or \"mean\", not \"" + pooling +
                                  "\"");
  }
  if (type == "cnn") positive(filters, "filters");
}

namespace {

// Shared input checks: a shape error here beats an index error deep inside an embedding.
void check_inputs(const torch::Tensor& ids, const torch::Tensor& mask, int64_t max_length) {
  TORCH_CHECK(ids.dim() == 2, "input_ids must be [B, L], got ", ids.sizes());
  TORCH_CHECK(mask.sizes() == ids.sizes(), "attention_mask ", mask.sizes(),
              " must have the shape of input_ids ", ids.sizes());
  TORCH_CHECK(ids.size(1) <= max_length, "input length ", ids.size(1), " exceeds max_length ",
              max_length);
}

// Mean of x [B, L, H] over the positions where mask [B, L] is nonzero; an all-padding row gives 0.
torch::Tensor masked_mean(const torch::Tensor& x, const torch::Tensor& mask) {
  const torch::Tensor m = (mask != 0).to(x.scalar_type()).unsqueeze(-1);  // [B, L, 1]
  return (x * m).sum(1) / m.sum(1).clamp_min(1.0);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Transformer
// ---------------------------------------------------------------------------------------------

EncoderLayerImpl::EncoderLayerImpl(int64_t hidden, int64_t heads, int64_t ffn, double dropout,
                                   uint64_t first_dropout, int64_t max_length)
    : heads_(heads) {
  // Names follow BERT's modules so a reader can map them; "norm" in a name keeps it out of weight
  // decay (classifier_trainer.cpp).
  query_ = register_module("query", torch::nn::Linear(hidden, hidden));
  key_ = register_module("key", torch::nn::Linear(hidden, hidden));
  value_ = register_module("value", torch::nn::Linear(hidden, hidden));
  attention_dropout_ = register_module("attention_dropout", KeyedDropout(dropout, first_dropout, max_length));
  attention_out_ = register_module("attention_out", torch::nn::Linear(hidden, hidden));
  attention_out_dropout_ = register_module("attention_out_dropout", KeyedDropout(dropout, first_dropout + 1));
  attention_norm_ = register_module(
      "attention_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({hidden}).eps(1e-12)));
  ffn_in_ = register_module("ffn_in", torch::nn::Linear(hidden, ffn));
  ffn_out_ = register_module("ffn_out", torch::nn::Linear(ffn, hidden));
  ffn_dropout_ = register_module("ffn_dropout", KeyedDropout(dropout, first_dropout + 2));
  ffn_norm_ = register_module(
      "ffn_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({hidden}).eps(1e-12)));
}

torch::Tensor EncoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& key_padding) {
  const int64_t b = x.size(0), l = x.size(1), h = x.size(2), dh = h / heads_;
  // [B, L, H] -> [B, heads, L, dh]
  auto split = [&](const torch::Tensor& t) { return t.view({b, l, heads_, dh}).transpose(1, 2); };
  const torch::Tensor q = split(query_(x)), k = split(key_(x)), v = split(value_(x));
  torch::Tensor scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(dh));
  // Padded keys get a large negative score, so they receive ~0 probability. A finite value (not
  // -inf) keeps a row that is all padding from turning into NaN.
  scores = scores.masked_fill(key_padding.view({b, 1, 1, l}), -1e9);
  torch::Tensor probs = attention_dropout_(torch::softmax(scores, -1));
  torch::Tensor context = torch::matmul(probs, v).transpose(1, 2).contiguous().view({b, l, h});
  torch::Tensor hidden = attention_norm_(x + attention_out_dropout_(attention_out_(context)));
  torch::Tensor ffn = ffn_out_(torch::gelu(ffn_in_(hidden)));
  return ffn_norm_(hidden + ffn_dropout_(ffn));
}

TransformerClassifierImpl::TransformerClassifierImpl(const ModelConfig& config)
    : ClassifierImpl(config) {
  config.validate();
  token_embedding_ =
      register_module("token_embedding", torch::nn::Embedding(config.vocab_size, config.hidden));
  position_embedding_ = register_module("position_embedding",
                                        torch::nn::Embedding(config.max_length, config.hidden));
  embedding_norm_ = register_module(
      "embedding_norm",
      torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.hidden}).eps(1e-12)));
  // Dropout layer keys: 0 the embeddings, 1 + 3i .. 3 + 3i encoder layer i, then the classifier.
  embedding_dropout_ = register_module("embedding_dropout", KeyedDropout(config.dropout, 0));
  layers_ = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.layers; ++i) {
    layer_list_.emplace_back(config.hidden, config.heads, config.ffn, config.dropout,
                             1 + 3 * static_cast<uint64_t>(i), config.max_length);
    layers_->push_back(layer_list_.back());
  }
  classifier_dropout_ = register_module(
      "classifier_dropout", KeyedDropout(config.dropout, 1 + 3 * static_cast<uint64_t>(config.layers)));
  classifier_ =
      register_module("classifier", torch::nn::Linear(config.hidden, config.num_labels));
  // BERT's initialisation: N(0, 0.02) for embeddings and projections, zero biases. LibTorch's
  // default N(0, 1) embeddings swamp the position embeddings and slow training down.
  torch::NoGradGuard no_grad;
  for (auto& p : named_parameters()) {
    const std::string& name = p.key();
    if (name.find("norm") != std::string::npos) continue;  // LayerNorm keeps 1 / 0
    if (p.value().dim() >= 2)
      p.value().normal_(0.0, 0.02);
    else
      p.value().zero_();
  }
}

torch::Tensor TransformerClassifierImpl::hidden_states(const torch::Tensor& input_ids,
                                                       const torch::Tensor& attention_mask) {
  check_inputs(input_ids, attention_mask, config().max_length);
  const int64_t l = input_ids.size(1);
  const torch::Tensor positions =
      torch::arange(l, torch::TensorOptions().dtype(torch::kLong).device(input_ids.device()));
  torch::Tensor x = token_embedding_(input_ids) + position_embedding_(positions).unsqueeze(0);
  x = embedding_dropout_(embedding_norm_(x));
  const torch::Tensor key_padding = attention_mask == 0;
  for (auto& layer : layer_list_) x = layer(x, key_padding);
  return x;
}

torch::Tensor TransformerClassifierImpl::pooled_features(const torch::Tensor& input_ids,
                                                         const torch::Tensor& attention_mask) {
  const torch::Tensor x = hidden_states(input_ids, attention_mask);
  return config().pooling == "mean" ? masked_mean(x, attention_mask) : x.select(1, 0);
}

torch::Tensor TransformerClassifierImpl::classify(const torch::Tensor& pooled) {
  return classifier_(classifier_dropout_(pooled));
}

int64_t TransformerClassifierImpl::feature_dim() const { return config().hidden; }

// ---------------------------------------------------------------------------------------------
// Bag of embeddings
// ---------------------------------------------------------------------------------------------

BagOfEmbeddingsClassifierImpl::BagOfEmbeddingsClassifierImpl(const ModelConfig& config)
    : ClassifierImpl(config) {
  config.validate();
  token_embedding_ =
      register_module("token_embedding", torch::nn::Embedding(config.vocab_size, config.hidden));
  dropout_ = register_module("dropout", KeyedDropout(config.dropout, 0));
  classifier_ =
      register_module("classifier", torch::nn::Linear(config.hidden, config.num_labels));
  // Small embeddings: the mean of N(0, 1) vectors is a poor starting point for a linear layer.
  torch::NoGradGuard no_grad;
  token_embedding_->weight.normal_(0.0, 0.1);
}

torch::Tensor BagOfEmbeddingsClassifierImpl::pooled_features(const torch::Tensor& input_ids,
                                                             const torch::Tensor& attention_mask) {
  check_inputs(input_ids, attention_mask, config().max_length);
  return masked_mean(token_embedding_(input_ids), attention_mask);
}

torch::Tensor BagOfEmbeddingsClassifierImpl::classify(const torch::Tensor& pooled) {
  return classifier_(dropout_(pooled));
}

int64_t BagOfEmbeddingsClassifierImpl::feature_dim() const { return config().hidden; }

// ---------------------------------------------------------------------------------------------
// CNN
// ---------------------------------------------------------------------------------------------

CnnClassifierImpl::CnnClassifierImpl(const ModelConfig& config) : ClassifierImpl(config) {
  config.validate();
  token_embedding_ =
      register_module("token_embedding", torch::nn::Embedding(config.vocab_size, config.hidden));
  embedding_dropout_ = register_module("embedding_dropout", KeyedDropout(config.dropout, 0));
  for (int64_t k : kKernelSizes)
    convs_.push_back(register_module(
        "conv" + std::to_string(k),
        torch::nn::Conv1d(torch::nn::Conv1dOptions(config.hidden, config.filters, k))));
  dropout_ = register_module("dropout", KeyedDropout(config.dropout, 1));
  classifier_ = register_module(
      "classifier",
      torch::nn::Linear(config.filters * static_cast<int64_t>(std::size(kKernelSizes)),
                        config.num_labels));
  torch::NoGradGuard no_grad;
  token_embedding_->weight.normal_(0.0, 0.1);
}

torch::Tensor CnnClassifierImpl::pooled_features(const torch::Tensor& input_ids,
                                                 const torch::Tensor& attention_mask) {
  check_inputs(input_ids, attention_mask, config().max_length);
  const torch::Tensor real = attention_mask != 0;  // [B, L]
  // Zero the padded positions, then append (max kernel - 1) zero columns: every window that starts
  // on a real token sees the same zeros however much padding the batch had, and a text shorter
  // than a kernel still has a window.
  torch::Tensor x = embedding_dropout_(token_embedding_(input_ids));
  x = (x * real.unsqueeze(-1).to(x.scalar_type())).transpose(1, 2);  // [B, H, L]
  const int64_t extra = kKernelSizes[std::size(kKernelSizes) - 1] - 1;
  x = torch::constant_pad_nd(x, {0, extra});
  const int64_t l = input_ids.size(1);
  std::vector<torch::Tensor> pooled;
  for (auto& conv : convs_) {
    // Windows starting at positions 0..L-1 (the conv yields more with the appended zeros).
    torch::Tensor h = torch::relu(conv(x)).narrow(2, 0, l);  // [B, F, L]
    // Only windows that start on a real token count; ReLU output >= 0, so 0 is a neutral fill.
    h = h.masked_fill(real.logical_not().unsqueeze(1), 0.0);
    pooled.push_back(std::get<0>(h.max(2)));
  }
  return torch::cat(pooled, 1);
}

torch::Tensor CnnClassifierImpl::classify(const torch::Tensor& pooled) {
  return classifier_(dropout_(pooled));
}

int64_t CnnClassifierImpl::feature_dim() const {
  return config().filters * static_cast<int64_t>(std::size(kKernelSizes));
}

Classifier make_classifier(const ModelConfig& config) {
  config.validate();
  if (config.type == "transformer") return std::make_shared<TransformerClassifierImpl>(config);
  if (config.type == "bag_of_embeddings")
    return std::make_shared<BagOfEmbeddingsClassifierImpl>(config);
  return std::make_shared<CnnClassifierImpl>(config);
}

}  // namespace muki::core
