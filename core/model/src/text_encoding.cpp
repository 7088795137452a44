#include "muki/model/text_encoding.h"

#include <algorithm>

#include <torch/torch.h>

namespace muki::core {

namespace {
EncodedTexts to_tensors(Batch batch) {
  const auto options = torch::TensorOptions().dtype(torch::kLong);
  EncodedTexts out;
  out.input_ids = torch::from_blob(batch.input_ids.data(), {batch.batch_size, batch.length}, options)
                      .clone();
  out.attention_mask =
      torch::from_blob(batch.attention_mask.data(), {batch.batch_size, batch.length}, options)
          .clone();
  return out;
}
}  // namespace

EncodedTexts encode_texts(const Tokenizer& tokenizer, const std::vector<std::string_view>& texts,
                          int64_t max_length, bool pad_to_max) {
  return to_tensors(encode_batch(tokenizer, texts, static_cast<std::size_t>(max_length), true,
                                 pad_to_max ? Padding::MaxLength : Padding::Longest));
}

EncodedTexts encode_texts(const Tokenizer& tokenizer, const std::vector<std::string>& texts,
                          int64_t max_length, bool pad_to_max) {
  return to_tensors(encode_batch(tokenizer, texts, static_cast<std::size_t>(max_length), true,
                                 pad_to_max ? Padding::MaxLength : Padding::Longest));
}

EncodedTexts trim_padding(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  const int64_t longest =
      std::max<int64_t>(1, attention_mask.ne(0).sum(1).max().item<int64_t>());
  if (longest >= input_ids.size(1)) return {input_ids, attention_mask};
  return {input_ids.narrow(1, 0, longest), attention_mask.narrow(1, 0, longest)};
}

std::vector<int64_t> token_counts(const torch::Tensor& attention_mask) {
  const torch::Tensor counts = attention_mask.ne(0).sum(1).to(torch::kLong).contiguous().cpu();
  return {counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + counts.numel()};
}

std::vector<int64_t> order_by_length(const torch::Tensor& attention_mask) {
  const std::vector<int64_t> len = token_counts(attention_mask);
  std::vector<int64_t> order(len.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  std::stable_sort(order.begin(), order.end(), [&len](int64_t a, int64_t b) {
    return len[static_cast<size_t>(a)] < len[static_cast<size_t>(b)];
  });
  return order;
}

EncodedTexts select_rows(const EncodedTexts& encoded, const std::vector<int64_t>& rows) {
  const torch::Tensor index = torch::tensor(rows, torch::kLong).to(encoded.input_ids.device());
  return trim_padding(encoded.input_ids.index_select(0, index),
                      encoded.attention_mask.index_select(0, index));
}

}  // namespace muki::core
