// The tokenizer interface the host's models use, and batch encoding (padding, truncation,
// special tokens) shared by every tokenizer. Implementations: WordPieceTokenizer (BERT
// vocab.txt), SentencePieceTokenizer (a trained SentencePiece model).
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace muki::core {

// Thrown when a tokenizer cannot be built, loaded, trained or saved; what() names the file.
class TokenizerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids of `text` (UTF-8), without special tokens. Never throws on odd text: characters the
  // vocabulary cannot represent become unk_id() (or the model's own fallback).
  virtual std::vector<int64_t> encode(std::string_view text) const = 0;
  // The token's string. Throws std::out_of_range when id is outside [0, vocab_size()).
  virtual std::string id_to_token(int64_t id) const = 0;
  // The id of an exact vocabulary entry, or nullopt.
  virtual std::optional<int64_t> token_to_id(std::string_view token) const = 0;
  virtual int64_t vocab_size() const = 0;

  virtual int64_t pad_id() const = 0;
  // Special tokens: encode_batch adds cls_id() before and sep_id() after a sequence where the
  // tokenizer has them.
  virtual std::optional<int64_t> cls_id() const = 0;
  virtual std::optional<int64_t> sep_id() const = 0;
  virtual std::optional<int64_t> unk_id() const = 0;
};

// A padded batch, row-major: input_ids[b * length + t]. attention_mask is 1 on real tokens
// (special tokens included) and 0 on padding.
struct Batch {
  int64_t batch_size = 0;
  int64_t length = 0;
  std::vector<int64_t> input_ids;
  std::vector<int64_t> attention_mask;
};

enum class Padding {
  Longest,    // pad to the longest sequence of the batch (after truncation)
  MaxLength,  // pad every batch to max_length
};

// Encodes `texts` BERT style: [CLS] tokens [SEP] when add_special_tokens (only the special tokens
// the tokenizer has), the tokens truncated so the whole sequence fits max_length (0 = no limit,
// only with Padding::Longest), padded with pad_id(). Throws std::invalid_argument when
// max_length leaves no room for one token next to the special tokens, or is 0 with
// Padding::MaxLength.
Batch encode_batch(const Tokenizer& tokenizer, const std::vector<std::string_view>& texts,
                   std::size_t max_length, bool add_special_tokens,
                   Padding padding = Padding::Longest);
Batch encode_batch(const Tokenizer& tokenizer, const std::vector<std::string>& texts,
                   std::size_t max_length, bool add_special_tokens,
                   Padding padding = Padding::Longest);

}  // namespace muki::core
