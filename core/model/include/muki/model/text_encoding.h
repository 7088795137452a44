// Texts -> the [B, L] int64 tensors muki's models take, through a muki tokenizer (tokenizer.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <torch/types.h>

#include <muki/text/tokenizer.h>

namespace muki::core {

struct EncodedTexts {
  torch::Tensor input_ids;       // [N, L] int64, CPU
  torch::Tensor attention_mask;  // [N, L] int64, CPU: 1 on tokens (special tokens included)
};

// BERT-style encoding ([CLS] tokens [SEP] where the tokenizer has those, truncated to
// max_length), padded with the tokenizer's pad id to the longest text (`pad_to_max` false) or to
// max_length. Throws std::invalid_argument from encode_batch (max_length too small).
EncodedTexts encode_texts(const Tokenizer& tokenizer, const std::vector<std::string_view>& texts,
                          int64_t max_length, bool pad_to_max = false);
EncodedTexts encode_texts(const Tokenizer& tokenizer, const std::vector<std::string>& texts,
                          int64_t max_length, bool pad_to_max = false);

// Drops the trailing columns that are padding in every row (a batch cut from a split padded to
// max_length costs only as much as its longest text). Keeps at least one column.
EncodedTexts trim_padding(const torch::Tensor& input_ids, const torch::Tensor& attention_mask);

// The token count of every row of `attention_mask` [N, L] (its non-zero entries), on the CPU.
std::vector<int64_t> token_counts(const torch::Tensor& attention_mask);

// Length bucketing: the row indices of `attention_mask` [N, L] sorted by token count (ties keep
// their order; a stable sort, so the result is a function of the lengths alone). Batches cut
// from consecutive runs of it are padded little.
std::vector<int64_t> order_by_length(const torch::Tensor& attention_mask);

// The rows `rows` of an encoding, trimmed of the columns that are padding in all of them.
EncodedTexts select_rows(const EncodedTexts& encoded, const std::vector<int64_t>& rows);

}  // namespace muki::core
