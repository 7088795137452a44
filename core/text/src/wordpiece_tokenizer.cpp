#include <muki/text/wordpiece_tokenizer.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include <muki/text/utf8.h>

#include "unicode.h"

namespace muki::core {
namespace {

// tokenization.py _is_whitespace
bool is_whitespace(char32_t c) {
  return c == U' ' || c == U'\t' || c == U'\n' || c == U'\r' || unicode::is_space_separator(c);
}

// tokenization.py _is_control (Google's version: Cc and Cf only; tab/LF/CR are whitespace)
bool is_control(char32_t c) {
  if (c == U'\t' || c == U'\n' || c == U'\r') return false;
  return unicode::is_control_category(c);
}

// tokenization.py _is_punctuation
bool is_punctuation(char32_t c) {
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
      (c >= 123 && c <= 126))
    return true;
  return unicode::is_punctuation_category(c);
}

// tokenization.py _is_chinese_char: the CJK Unified Ideographs blocks, not all of CJK.
bool is_cjk(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// What Python's str.split() (no argument) splits on, among the characters that survive
// cleaning: the space plus U+2028/U+2029 (Zl/Zp, which are not Zs and not control).
bool splits_words(char32_t c) { return c == U' ' || c == 0x2028 || c == 0x2029; }

std::vector<std::u32string> split_whitespace(const std::u32string& text) {
  std::vector<std::u32string> words;
  std::u32string word;
  for (char32_t c : text) {
    if (splits_words(c)) {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
    } else {
      word.push_back(c);
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  return words;
}

std::string_view trim(std::string_view s) {
  const auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

WordPieceTokenizer::WordPieceTokenizer(std::vector<std::string> vocab, WordPieceOptions options)
    : options_(std::move(options)), vocab_(std::move(vocab)) {
  ids_.reserve(vocab_.size());
  for (std::size_t i = 0; i < vocab_.size(); ++i) ids_[vocab_[i]] = static_cast<int64_t>(i);
  const auto required = [&](const std::string& token, const char* what) {
    const auto id = token_to_id(token);
    if (!id)
      throw TokenizerError("WordPiece vocabulary has no " + std::string(what) + " token '" +
                           token + "'");
    return *id;
  };
  unk_id_ = required(options_.unk_token, "unknown");
  pad_id_ = required(options_.pad_token, "padding");
  cls_id_ = token_to_id(options_.cls_token);
  sep_id_ = token_to_id(options_.sep_token);
}

WordPieceTokenizer WordPieceTokenizer::from_file(const std::filesystem::path& vocab_file,
                                                 WordPieceOptions options) {
  std::ifstream in(vocab_file, std::ios::binary);
  if (!in) throw TokenizerError(vocab_file.string() + ": cannot open WordPiece vocabulary");
  std::vector<std::string> vocab;
  std::string line;
  while (std::getline(in, line)) {
    if (const auto bad = utf8::find_invalid(line))
      throw TokenizerError(vocab_file.string() + ":" + std::to_string(vocab.size() + 1) +
                           ": invalid UTF-8 at byte " + std::to_string(*bad + 1));
    vocab.emplace_back(trim(line));
  }
  if (in.bad()) throw TokenizerError(vocab_file.string() + ": read error");
  try {
    return WordPieceTokenizer(std::move(vocab), std::move(options));
  } catch (const TokenizerError& e) {
    throw TokenizerError(vocab_file.string() + ": " + e.what());
  }
}

std::vector<std::string> WordPieceTokenizer::basic_tokenize(std::string_view text) const {
  // 1. clean, 2. CJK
  std::u32string cleaned;
  cleaned.reserve(text.size());
  for (char32_t c : utf8::decode(text)) {
    if (c == 0 || c == 0xFFFD || is_control(c)) continue;
    if (is_whitespace(c)) {
      cleaned.push_back(U' ');
    } else if (options_.tokenize_cjk && is_cjk(c)) {
      cleaned.push_back(U' ');
      cleaned.push_back(c);
      cleaned.push_back(U' ');
    } else {
      cleaned.push_back(c);
    }
  }
  // 3. words, lowercased and accent-stripped; 4. punctuation split
  std::vector<std::string> tokens;
  for (std::u32string& word : split_whitespace(cleaned)) {
    if (options_.lower_case) {
      std::u32string stripped;
      for (char32_t c : unicode::decompose(unicode::to_lower(word)))
        if (!unicode::is_nonspacing_mark(c)) stripped.push_back(c);
      word = std::move(stripped);
    }
    std::u32string piece;
    for (char32_t c : word) {
      if (is_punctuation(c)) {
        if (!piece.empty()) tokens.push_back(utf8::encode(piece));
        piece.clear();
        tokens.push_back(utf8::encode(std::u32string(1, c)));
      } else {
        piece.push_back(c);
      }
    }
    if (!piece.empty()) tokens.push_back(utf8::encode(piece));
  }
  // BERT re-splits the joined tokens on whitespace; after the steps above that only matters
  // for U+2028/U+2029 produced by lowercasing or decomposition, which never happens.
  return tokens;
}

void WordPieceTokenizer::wordpiece(const std::string& word, std::vector<int64_t>& ids) const {
  // Byte offsets of the code point boundaries: pieces are matched on whole code points.
  std::vector<std::size_t> bounds;
  for (std::size_t i = 0; i < word.size(); ++i)
    if ((static_cast<unsigned char>(word[i]) & 0xC0) != 0x80) bounds.push_back(i);
  const std::size_t chars = bounds.size();
  bounds.push_back(word.size());
  if (chars > options_.max_input_chars_per_word) {
    ids.push_back(unk_id_);
    return;
  }
  std::vector<int64_t> pieces;
  std::string candidate;
  std::size_t start = 0;
  while (start < chars) {
    std::size_t end = chars;
    std::optional<int64_t> found;
    while (start < end) {
      candidate.clear();
      if (start > 0) candidate = options_.continuation_prefix;
      candidate.append(word, bounds[start], bounds[end] - bounds[start]);
      if (const auto it = ids_.find(candidate); it != ids_.end()) {
        found = it->second;
        break;
      }
      --end;
    }
    if (!found) {
      ids.push_back(unk_id_);
      return;
    }
    pieces.push_back(*found);
    start = end;
  }
  ids.insert(ids.end(), pieces.begin(), pieces.end());
}

std::vector<int64_t> WordPieceTokenizer::encode(std::string_view text) const {
  std::vector<int64_t> ids;
  for (const std::string& word : basic_tokenize(text)) wordpiece(word, ids);
  return ids;
}

std::vector<std::string> WordPieceTokenizer::tokenize(std::string_view text) const {
  std::vector<std::string> tokens;
  for (int64_t id : encode(text)) tokens.push_back(vocab_[static_cast<std::size_t>(id)]);
  return tokens;
}

std::string WordPieceTokenizer::id_to_token(int64_t id) const {
  if (id < 0 || id >= vocab_size())
    throw std::out_of_range("WordPiece id " + std::to_string(id) + " outside [0, " +
                            std::to_string(vocab_size()) + ")");
  return vocab_[static_cast<std::size_t>(id)];
}

std::optional<int64_t> WordPieceTokenizer::token_to_id(std::string_view token) const {
  const auto it = ids_.find(std::string(token));
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

}  // namespace muki::core

namespace muki::core {

std::vector<std::string> WordPieceTokenizer::build_vocabulary(const std::vector<std::string>& texts,
                                                              int64_t vocab_size,
                                                              const WordPieceOptions& options) {
  const WordPieceTokenizer basic({options.pad_token, options.unk_token}, options);
  std::map<std::string, int64_t> words, chars;
  for (const std::string& text : texts)
    for (const std::string& w : basic.basic_tokenize(text)) {
      ++words[w];
      // The UTF-8 characters of the word (basic_tokenize returns valid UTF-8).
      for (size_t i = 0; i < w.size();) {
        const auto c = static_cast<unsigned char>(w[i]);
        const size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        ++chars[w.substr(i, len)];
        i += len;
      }
    }
  std::vector<std::string> vocab = {options.pad_token, options.unk_token, options.cls_token,
                                    options.sep_token};
  std::set<std::string> seen(vocab.begin(), vocab.end());
  auto add = [&](const std::string& t) {
    if (static_cast<int64_t>(vocab.size()) < vocab_size && seen.insert(t).second) vocab.push_back(t);
  };
  // Most frequent first, ties alphabetical.
  auto by_frequency = [](const std::map<std::string, int64_t>& counts) {
    std::vector<std::pair<int64_t, std::string>> out;
    for (const auto& [token, n] : counts) out.emplace_back(-n, token);
    std::sort(out.begin(), out.end());
    return out;
  };
  const auto ranked_chars = by_frequency(chars);
  for (const auto& [n, c] : ranked_chars) add(c);
  for (const auto& [n, c] : ranked_chars) add(options.continuation_prefix + c);
  for (const auto& [n, w] : by_frequency(words)) add(w);
  return vocab;
}

void WordPieceTokenizer::write_vocabulary(const std::vector<std::string>& vocab,
                                          const std::filesystem::path& file) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  for (const std::string& t : vocab) out << t << "\n";
  // The last buffered bytes are written by close(): unchecked, a full disk left a short
  // vocabulary that was read back as the model's.
  out.close();
  if (!out) throw TokenizerError(file.string() + ": cannot write the vocabulary: " + std::strerror(errno));
}

}  // namespace muki::core
