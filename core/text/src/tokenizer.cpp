#include <muki/text/tokenizer.h>

#include <algorithm>

namespace muki::core {

Batch encode_batch(const Tokenizer& tokenizer, const std::vector<std::string_view>& texts,
                   std::size_t max_length, bool add_special_tokens, Padding padding) {
  const std::optional<int64_t> cls = add_special_tokens ? tokenizer.cls_id() : std::nullopt;
  const std::optional<int64_t> sep = add_special_tokens ? tokenizer.sep_id() : std::nullopt;
  const std::size_t specials = (cls ? 1 : 0) + (sep ? 1 : 0);
  if (padding == Padding::MaxLength && max_length == 0)
    throw std::invalid_argument("encode_batch: Padding::MaxLength needs max_length > 0");
  if (max_length != 0 && max_length <= specials)
    throw std::invalid_argument("encode_batch: max_length " + std::to_string(max_length) +
                                " leaves no room for a token next to " +
                                std::to_string(specials) + " special token(s)");

  std::vector<std::vector<int64_t>> rows;
  rows.reserve(texts.size());
  std::size_t longest = 0;
  for (std::string_view text : texts) {
    std::vector<int64_t> ids = tokenizer.encode(text);
    if (max_length != 0 && ids.size() > max_length - specials) ids.resize(max_length - specials);
    if (cls) ids.insert(ids.begin(), *cls);
    if (sep) ids.push_back(*sep);
    longest = std::max(longest, ids.size());
    rows.push_back(std::move(ids));
  }

  const std::size_t length = padding == Padding::MaxLength ? max_length : longest;
  Batch batch;
  batch.batch_size = static_cast<int64_t>(rows.size());
  batch.length = static_cast<int64_t>(length);
  batch.input_ids.assign(rows.size() * length, tokenizer.pad_id());
  batch.attention_mask.assign(rows.size() * length, 0);
  for (std::size_t b = 0; b < rows.size(); ++b) {
    std::copy(rows[b].begin(), rows[b].end(), batch.input_ids.begin() + b * length);
    std::fill_n(batch.attention_mask.begin() + b * length, rows[b].size(), 1);
  }
  return batch;
}

Batch encode_batch(const Tokenizer& tokenizer, const std::vector<std::string>& texts,
                   std::size_t max_length, bool add_special_tokens, Padding padding) {
  return encode_batch(tokenizer, std::vector<std::string_view>(texts.begin(), texts.end()),
                      max_length, add_special_tokens, padding);
}

}  // namespace muki::core
