// The WordPiece tokenizer (core/text): its vocab.txt reader, the tokenizer itself, batch encoding,
// and the vocabulary builder with a write/read round trip.
//
// Input: three bytes, then sections separated by a line "%%" (fuzz_support.h).
//   byte 0, bit by bit: 0 lower_case, 1 tokenize_cjk, 2-3 max_input_chars_per_word (100, 1, 3, 8),
//          4 continuation prefix "" (else "##"), 5 build the vocabulary from the texts (else read
//          section 0 as vocab.txt), 6 add special tokens, 7 pad to max_length (else to the longest)
//   byte 1  max_length of the batch encoding, modulo 24
//   byte 2  vocab_size for the builder
//   section 0: vocab.txt; sections 1-7: texts to tokenize
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <muki/text/tokenizer.h>
#include <muki/text/utf8.h>
#include <muki/text/wordpiece_tokenizer.h>

#include "fuzz_support.h"

namespace {

using muki::core::TokenizerError;
using muki::core::WordPieceOptions;
using muki::core::WordPieceTokenizer;

void require(bool ok) {
  if (!ok) __builtin_trap();
}

void check_tokenizer(const WordPieceTokenizer& tokenizer, const std::vector<std::string>& texts,
                     size_t max_length, bool special, muki::core::Padding padding) {
  for (const std::string& text : texts) {
    for (const std::string& word : tokenizer.basic_tokenize(text))
      require(!word.empty() && muki::core::utf8::is_valid(word) && word.find(' ') == std::string::npos);
    const std::vector<int64_t> ids = tokenizer.encode(text);
    const std::vector<std::string> tokens = tokenizer.tokenize(text);
    require(tokens.size() == ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      require(ids[i] >= 0 && ids[i] < tokenizer.vocab_size());
      require(tokenizer.id_to_token(ids[i]) == tokens[i]);
    }
  }
  try {
    const auto batch = muki::core::encode_batch(tokenizer, texts, max_length, special, padding);
    require(batch.batch_size == static_cast<int64_t>(texts.size()));
    require(max_length == 0 || batch.length <= static_cast<int64_t>(max_length));
    require(batch.input_ids.size() == static_cast<size_t>(batch.batch_size * batch.length));
    require(batch.attention_mask.size() == batch.input_ids.size());
    for (size_t i = 0; i < batch.input_ids.size(); ++i) {
      require(batch.input_ids[i] >= 0 && batch.input_ids[i] < tokenizer.vocab_size());
      require(batch.attention_mask[i] == 1 || batch.input_ids[i] == tokenizer.pad_id());
    }
  } catch (const std::invalid_argument&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const muki::fuzz::MemoryFile file("vocab.txt");
  muki::fuzz::ByteReader in(data, size);
  const uint8_t settings = in.u8();
  const size_t max_length = in.u8() % 24;
  const int64_t vocab_size = in.u8();
  const std::string_view rest = in.rest();
  const auto sections = muki::fuzz::split_sections(reinterpret_cast<const uint8_t*>(rest.data()),
                                                   rest.size(), 8);
  WordPieceOptions options;
  options.lower_case = (settings & 1) != 0;
  options.tokenize_cjk = (settings & 2) != 0;
  constexpr size_t kMaxChars[] = {100, 1, 3, 8};
  options.max_input_chars_per_word = kMaxChars[(settings >> 2) & 3];
  if ((settings & 16) != 0) options.continuation_prefix.clear();
  const bool build = (settings & 32) != 0;
  const bool special = (settings & 64) != 0;
  const auto padding = (settings & 128) != 0 ? muki::core::Padding::MaxLength : muki::core::Padding::Longest;
  const std::vector<std::string> texts(sections.begin() + 1, sections.end());

  try {
    if (build) {
      const auto vocab = WordPieceTokenizer::build_vocabulary(texts, vocab_size, options);
      WordPieceTokenizer::write_vocabulary(vocab, file.path());
      const WordPieceTokenizer tokenizer = WordPieceTokenizer::from_file(file.path(), options);
      require(tokenizer.vocab_size() == static_cast<int64_t>(vocab.size()));
      for (size_t i = 0; i < vocab.size(); ++i) require(tokenizer.id_to_token(static_cast<int64_t>(i)) == vocab[i]);
      check_tokenizer(tokenizer, texts, max_length, special, padding);
    } else {
      file.assign(sections[0]);
      check_tokenizer(WordPieceTokenizer::from_file(file.path(), options), texts, max_length,
                      special, padding);
    }
  } catch (const TokenizerError&) {
  }
  return 0;
}
