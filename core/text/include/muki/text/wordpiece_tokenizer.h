// BERT's WordPiece tokenizer (google-research/bert tokenization.py, FullTokenizer), reproducing
// its token ids on a BERT vocab.txt:
//   1. clean: drop NUL, U+FFFD and control characters (Cc, Cf; tab/CR/LF count as whitespace),
//      map whitespace (space, tab, CR, LF, Zs) to a space;
//   2. put spaces around CJK ideographs, so each is its own token;
//   3. split on whitespace; with lower_case: lowercase (like Python's str.lower), decompose
//      (NFD) and drop nonspacing marks (Mn), i.e. strip accents;
//   4. split off every punctuation character (ASCII 33-47, 58-64, 91-96, 123-126, Unicode P*);
//   5. WordPiece: greedy longest-match-first against the vocabulary, continuation pieces
//      prefixed with "##"; a word with no segmentation, or longer than
//      max_input_chars_per_word code points, becomes [UNK].
// Unicode properties come from tables generated from the UCD 15.0 (scripts/gen-unicode-tables.py),
// so results can differ from a given Python only on characters whose properties changed between
// Unicode versions. Canonical reordering of NFD is skipped (the marks are dropped anyway).
#pragma once

#include <filesystem>
#include <string>
#include <unordered_map>
#include <vector>

#include <muki/text/tokenizer.h>

namespace muki::core {

struct WordPieceOptions {
  bool lower_case = true;  // uncased models; also strips accents, as BERT does
  bool tokenize_cjk = true;
  std::size_t max_input_chars_per_word = 100;
  std::string continuation_prefix = "##";
  std::string unk_token = "[UNK]";  // required in the vocabulary
  std::string pad_token = "[PAD]";  // required in the vocabulary
  std::string cls_token = "[CLS]";  // optional
  std::string sep_token = "[SEP]";  // optional
};

class WordPieceTokenizer final : public Tokenizer {
 public:
  // `vocab[i]` is the token with id i. A token that occurs twice maps to its last id, as in
  // BERT's load_vocab. Throws TokenizerError when the unk or pad token is missing.
  WordPieceTokenizer(std::vector<std::string> vocab, WordPieceOptions options = {});

  // Loads a BERT vocab.txt: one token per line, id = line index (0-based), surrounding
  // whitespace stripped. Throws TokenizerError when the file cannot be read, is not UTF-8, or
  // lacks the unk/pad token.
  static WordPieceTokenizer from_file(const std::filesystem::path& vocab_file,
                                      WordPieceOptions options = {});

  std::vector<int64_t> encode(std::string_view text) const override;
  std::string id_to_token(int64_t id) const override;
  std::optional<int64_t> token_to_id(std::string_view token) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(vocab_.size()); }
  int64_t pad_id() const override { return pad_id_; }
  std::optional<int64_t> cls_id() const override { return cls_id_; }
  std::optional<int64_t> sep_id() const override { return sep_id_; }
  std::optional<int64_t> unk_id() const override { return unk_id_; }

  // Steps 1-4 only (BERT's BasicTokenizer): the words and punctuation marks, UTF-8.
  std::vector<std::string> basic_tokenize(std::string_view text) const;
  // All steps, as token strings ("un", "##aff", ...).
  std::vector<std::string> tokenize(std::string_view text) const;

  const WordPieceOptions& options() const { return options_; }

  // A vocabulary built from a corpus, for models muki trains from scratch: the pad, unk, cls and
  // sep tokens, every character seen (as a word start and as a continuation piece, so any word of
  // the corpus can be spelled), then the most frequent basic tokens (steps 1-4) until vocab_size
  // entries (ties alphabetical). Not Google's likelihood-based WordPiece training, but a
  // deterministic stand-in that needs no extra library: frequent words are single tokens, rare
  // words fall back to pieces. Returns fewer entries when the corpus has fewer distinct tokens.
  static std::vector<std::string> build_vocabulary(const std::vector<std::string>& texts,
                                                   int64_t vocab_size,
                                                   const WordPieceOptions& options = {});
  // Writes a vocabulary as BERT's vocab.txt (one token a line). Throws TokenizerError.
  static void write_vocabulary(const std::vector<std::string>& vocab,
                               const std::filesystem::path& file);

 private:
  // Appends the ids of one basic token (step 5).
  void wordpiece(const std::string& word, std::vector<int64_t>& ids) const;

  WordPieceOptions options_;
  std::vector<std::string> vocab_;
  std::unordered_map<std::string, int64_t> ids_;
  int64_t unk_id_ = 0;
  int64_t pad_id_ = 0;
  std::optional<int64_t> cls_id_, sep_id_;
};

}  // namespace muki::core
