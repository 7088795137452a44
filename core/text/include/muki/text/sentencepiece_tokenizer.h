// A SentencePiece tokenizer (Debian's libsentencepiece): train a unigram or BPE model on a
// corpus, save it as a .model file, load it, encode. The SentencePiece types stay in the .cpp.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <muki/text/tokenizer.h>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace muki::core {

struct SentencePieceTrainOptions {
  std::filesystem::path corpus;       // UTF-8 text, one sentence per line
  int vocab_size = 8000;
  std::string model_type = "unigram";  // unigram | bpe | char | word
  double character_coverage = 0.9995;  // 1.0 for small alphabets; ~0.9995 for CJK
  // Fail when the corpus cannot support vocab_size pieces (false: make a smaller vocabulary).
  bool hard_vocab_limit = true;
  // Sentences sampled from the corpus for training (0 = all of them).
  int64_t input_sentence_size = 0;
  // 1 keeps training reproducible: the same corpus and options give the same model.
  int num_threads = 1;
};

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // Trains a model; the ids of the special pieces are fixed: <pad> 0, <unk> 1, <s> 2 (used as
  // cls_id), </s> 3 (used as sep_id). Throws TokenizerError with SentencePiece's message (bad
  // options, unreadable corpus, vocabulary too large for the corpus, ...).
  static SentencePieceTokenizer train(const SentencePieceTrainOptions& options);

  // Loads a .model file (also ones trained elsewhere). Throws TokenizerError.
  static SentencePieceTokenizer load(const std::filesystem::path& model_file);

  // Writes the model (the serialized ModelProto, SentencePiece's own .model format). Throws
  // TokenizerError when the file cannot be written.
  void save(const std::filesystem::path& model_file) const;

  SentencePieceTokenizer(SentencePieceTokenizer&&) noexcept;
  SentencePieceTokenizer& operator=(SentencePieceTokenizer&&) noexcept;
  ~SentencePieceTokenizer() override;

  std::vector<int64_t> encode(std::string_view text) const override;
  // Pieces of `text` ("▁the", ...), for inspection.
  std::vector<std::string> encode_pieces(std::string_view text) const;
  // Text back from ids (SentencePiece's normalisation applied: NFKC, collapsed spaces).
  // Throws std::out_of_range on an id outside the vocabulary.
  std::string decode(const std::vector<int64_t>& ids) const;

  std::string id_to_token(int64_t id) const override;
  std::optional<int64_t> token_to_id(std::string_view token) const override;
  int64_t vocab_size() const override;
  // The model's pad id; a model trained without one (SentencePiece's default) pads with its
  // unknown id, which the attention mask hides anyway.
  int64_t pad_id() const override;
  std::optional<int64_t> cls_id() const override;  // the model's <s>, when it has one
  std::optional<int64_t> sep_id() const override;  // the model's </s>, when it has one
  std::optional<int64_t> unk_id() const override;

 private:
  explicit SentencePieceTokenizer(std::unique_ptr<sentencepiece::SentencePieceProcessor> sp);
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

}  // namespace muki::core
