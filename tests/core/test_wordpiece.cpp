// WordPiece against the real BERT-base-uncased vocabulary. The expected ids were looked up in
// vocab.txt (id = line index) for the tokens BERT's rules give (google-research/bert
// tokenization.py): lowercase + accent stripping, punctuation split, CJK split, greedy
// longest-match-first with "##" continuations.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>

#include <gtest/gtest.h>

#include <muki/text/tokenizer.h>
#include <muki/text/wordpiece_tokenizer.h>

namespace fs = std::filesystem;
using muki::core::Batch;
using muki::core::encode_batch;
using muki::core::Padding;
using muki::core::TokenizerError;
using muki::core::WordPieceTokenizer;

namespace {

fs::path bert_vocab_path() {
  if (const char* env = std::getenv("MUKI_BERT_VOCAB"); env && *env) return env;
  return fs::path(MUKI_TEST_SOURCE_DIR) / ".cache/assets/bert-base-uncased/vocab.txt";
}

// Loaded once; null (and the tests fail, not skip) when the asset is missing.
const WordPieceTokenizer* bert() {
  static const std::unique_ptr<WordPieceTokenizer> tokenizer = []() -> std::unique_ptr<WordPieceTokenizer> {
    const fs::path path = bert_vocab_path();
    if (!fs::exists(path)) return nullptr;
    return std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_file(path));
  }();
  return tokenizer.get();
}

#define REQUIRE_BERT()                                                                     \
  const WordPieceTokenizer* tok = bert();                                                  \
  ASSERT_NE(tok, nullptr) << "BERT vocabulary not found at " << bert_vocab_path()          \
                          << ": run scripts/fetch-assets.sh (or set MUKI_BERT_VOCAB)"

using Ids = std::vector<int64_t>;

}  // namespace

TEST(WordPiece, VocabularyAndSpecialTokens) {
  REQUIRE_BERT();
  EXPECT_EQ(tok->vocab_size(), 30522);
  EXPECT_EQ(tok->pad_id(), 0);
  EXPECT_EQ(tok->unk_id(), 100);
  EXPECT_EQ(tok->cls_id(), 101);
  EXPECT_EQ(tok->sep_id(), 102);
  EXPECT_EQ(tok->token_to_id("[MASK]"), 103);
  EXPECT_EQ(tok->id_to_token(7592), "hello");
  EXPECT_EQ(tok->id_to_token(2015), "##s");
  EXPECT_FALSE(tok->token_to_id("not-a-token").has_value());
  EXPECT_THROW(tok->id_to_token(30522), std::out_of_range);
  EXPECT_THROW(tok->id_to_token(-1), std::out_of_range);
}

TEST(WordPiece, AccentsAreStrippedWhenLowercasing) {
  REQUIRE_BERT();
  // hello naive cafe
  EXPECT_EQ(tok->encode("Héllo naïve café"), (Ids{7592, 15743, 7668}));
  // "ÅNGSTRÖM" -> ang ##strom; Greek capitals lowercase with a final sigma: σ ##ο ##φ ##ος;
  // U+0130 lowercases to i + U+0307, the mark is stripped: istanbul.
  EXPECT_EQ(tok->encode("ÅNGSTRÖM Ωmega ΣΟΦΟΣ İstanbul"),
            (Ids{17076, 15687, 1179, 4168, 3654, 1173, 29730, 29736, 15297, 9960}));
  EXPECT_EQ(tok->tokenize("ΣΟΦΟΣ"), (std::vector<std::string>{"σ", "##ο", "##φ", "##ος"}));
  // Cyrillic: п ##р ##и ##в ##е ##т , м ##и ##р !
  EXPECT_EQ(tok->encode("Привет, мир!"),
            (Ids{1194, 16856, 10325, 25529, 15290, 22919, 1010, 1191, 10325, 16856, 999}));
  // Hangul syllables decompose (NFD) into jamo: ᄀ ##ᅡ ##ᄒ ##ᅡ ##ᆫ
  EXPECT_EQ(tok->encode("가한"), (Ids{1455, 30006, 30005, 30006, 30021}));
}

TEST(WordPiece, PunctuationIsSplitOff) {
  REQUIRE_BERT();
  EXPECT_EQ(tok->encode("don't!"), (Ids{2123, 1005, 1056, 999}));  // don ' t !
  // Every ASCII punctuation range, one character each.
  EXPECT_EQ(tok->tokenize("U.S.A. e-mail (test) [x] {y} @home #tag $5 50% a&b *x* ~z^ `q` |p| \\n"),
            (std::vector<std::string>{"u", ".", "s", ".", "a", ".", "e", "-", "mail", "(", "test",
                                      ")", "[", "x", "]", "{", "y", "}", "@", "home", "#", "tag",
                                      "$", "5", "50", "%", "a", "&", "b", "*", "x", "*", "~", "z",
                                      "^", "`", "q", "`", "|", "p", "|", "\\", "n"}));
  // Unicode P*: naive — dash “ quotes ” « gui ##lle ##met ##s » ¿ que ?
  EXPECT_EQ(tok->encode("naïve—dash “quotes” «guillemets» ¿qué?"),
            (Ids{15743, 1517, 11454, 1523, 16614, 1524, 1077, 26458, 6216, 11368, 2015, 1090, 1094,
                 10861, 1029}));
}

TEST(WordPiece, CjkCharactersAreSeparateTokens) {
  REQUIRE_BERT();
  EXPECT_EQ(tok->encode("中文"), (Ids{1746, 1861}));
  // 处 and 理 are not in the vocabulary: one [UNK] each, not one for the run.
  EXPECT_EQ(tok->encode("I love 中文处理"), (Ids{1045, 2293, 1746, 1861, 100, 100}));
}

TEST(WordPiece, LongWordsSplitIntoContinuationPieces) {
  REQUIRE_BERT();
  EXPECT_EQ(tok->tokenize("unaffable"), (std::vector<std::string>{"una", "##ffa", "##ble"}));
  EXPECT_EQ(tok->encode("unaffable"), (Ids{14477, 20961, 3468}));
  // token ##ization of international ##ization
  EXPECT_EQ(tok->encode("Tokenization of internationalization"),
            (Ids{19204, 3989, 1997, 2248, 3989}));
  // de ##bian ' s apt - get install ##s li ##bs ##ente ##nce ##piece - dev
  EXPECT_EQ(tok->encode("Debian's apt-get installs libsentencepiece-dev"),
            (Ids{2139, 15599, 1005, 1055, 26794, 1011, 2131, 16500, 2015, 5622, 5910, 15781, 5897,
                 11198, 1011, 16475}));
  // No whole-word match: single letters with ## continuations, not [UNK].
  EXPECT_EQ(tok->encode("xqzjvw"), (Ids{1060, 4160, 2480, 3501, 2615, 2860}));
}

TEST(WordPiece, Numbers) {
  REQUIRE_BERT();
  // 3 . 141 ##59 and 1 , 000 , 000 dollars
  EXPECT_EQ(tok->encode("3.14159 and 1,000,000 dollars"),
            (Ids{1017, 1012, 15471, 28154, 1998, 1015, 1010, 2199, 1010, 2199, 6363}));
}

TEST(WordPiece, UnknownCharactersGiveUnk) {
  REQUIRE_BERT();
  // ❤ and 🙂 are not in the vocabulary; "emoji" is: em ##oj ##i
  EXPECT_EQ(tok->encode("I ❤ 🙂 emoji"), (Ids{1045, 100, 100, 7861, 29147, 2072}));
  // One unknown character makes the whole word [UNK] (BERT's is_bad).
  EXPECT_EQ(tok->encode("snow☃man"), (Ids{100}));
  // U+FB01 (ﬁ) has only a compatibility decomposition: kept, and in the vocabulary. U+01C4 (Ǆ)
  // lowercases to U+01C6, which is not.
  EXPECT_EQ(tok->encode("ﬁne ½ Ǆ"), (Ids{1984, 2638, 1092, 100}));
}

TEST(WordPiece, WhitespaceAndControlCharacters) {
  REQUIRE_BERT();
  // extra whites ##pace here
  EXPECT_EQ(tok->encode("  extra \t\t whitespace\n\nhere  "), (Ids{4469, 12461, 15327, 2182}));
  // NUL, BEL (Cc), ZERO WIDTH SPACE (Cf) and U+FFFD are dropped, joining the word:
  // "ctrlcharshereok" -> ct ##rl ##cha ##rs ##her ##eo ##k
  const std::string with_controls = std::string("ctrl") + '\0' + "chars\ahere\u200b\ufffdok";
  EXPECT_EQ(tok->encode(with_controls), (Ids{14931, 12190, 7507, 2869, 5886, 8780, 2243}));
  // NO-BREAK SPACE (Zs) and LINE SEPARATOR (Zl, Python's str.split splits on it) separate words.
  EXPECT_EQ(tok->encode("a\u2028b\u00a0c"), (Ids{1037, 1038, 1039}));
  EXPECT_TRUE(tok->encode("").empty());
  EXPECT_TRUE(tok->encode(" \t\n").empty());
}

TEST(WordPiece, WordsOverMaxInputCharsAreUnk) {
  REQUIRE_BERT();
  EXPECT_EQ(tok->encode(std::string(101, 'a')), (Ids{100}));
  // 100 characters still go through: aaa, then 48 x ##aa, then ##a.
  Ids hundred{13360};
  hundred.insert(hundred.end(), 48, 11057);
  hundred.push_back(2050);
  EXPECT_EQ(tok->encode(std::string(100, 'a')), hundred);
  // The limit counts code points, not bytes: 60 x "é" (120 bytes) is not over it.
  std::string accented;
  for (int i = 0; i < 60; ++i) accented += "é";
  EXPECT_NE(tok->encode(accented), (Ids{100}));
}

TEST(WordPiece, EncodeBatchAddsSpecialTokensPadsAndTruncates) {
  REQUIRE_BERT();
  const std::vector<std::string> texts = {"don't!", "hello", ""};
  Batch b = encode_batch(*tok, texts, 128, true);
  EXPECT_EQ(b.batch_size, 3);
  EXPECT_EQ(b.length, 6);  // [CLS] don ' t ! [SEP]
  EXPECT_EQ(b.input_ids, (Ids{101, 2123, 1005, 1056, 999, 102,  //
                              101, 7592, 102, 0, 0, 0,          //
                              101, 102, 0, 0, 0, 0}));
  EXPECT_EQ(b.attention_mask, (Ids{1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0}));

  // Truncated to max_length, [SEP] kept last.
  b = encode_batch(*tok, texts, 4, true);
  EXPECT_EQ(b.length, 4);
  EXPECT_EQ(b.input_ids, (Ids{101, 2123, 1005, 102, 101, 7592, 102, 0, 101, 102, 0, 0}));

  // Padded to max_length on request; no special tokens.
  b = encode_batch(*tok, std::vector<std::string>{"hello"}, 5, false, Padding::MaxLength);
  EXPECT_EQ(b.input_ids, (Ids{7592, 0, 0, 0, 0}));
  EXPECT_EQ(b.attention_mask, (Ids{1, 0, 0, 0, 0}));

  b = encode_batch(*tok, std::vector<std::string>{}, 8, true);
  EXPECT_EQ(b.batch_size, 0);
  EXPECT_TRUE(b.input_ids.empty());

  EXPECT_THROW(encode_batch(*tok, texts, 2, true), std::invalid_argument);
  EXPECT_THROW(encode_batch(*tok, texts, 0, true, Padding::MaxLength), std::invalid_argument);
}

TEST(WordPiece, CasedOptionKeepsCaseAndAccents) {
  muki::core::WordPieceOptions options;
  options.lower_case = false;
  const WordPieceTokenizer cased({"[PAD]", "[UNK]", "Héllo", "hello", "!"}, options);
  EXPECT_EQ(cased.encode("Héllo hello!"), (Ids{2, 3, 4}));
  EXPECT_FALSE(cased.cls_id().has_value());
  EXPECT_EQ(cased.basic_tokenize("Héllo, 中文"),
            (std::vector<std::string>{"Héllo", ",", "中", "文"}));
}

TEST(WordPiece, ConstructionErrors) {
  try {
    WordPieceTokenizer({"[PAD]", "a"});
    FAIL() << "expected TokenizerError";
  } catch (const TokenizerError& e) {
    EXPECT_STREQ(e.what(), "WordPiece vocabulary has no unknown token '[UNK]'");
  }
  try {
    WordPieceTokenizer::from_file("/nonexistent/vocab.txt");
    FAIL() << "expected TokenizerError";
  } catch (const TokenizerError& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/vocab.txt: cannot open WordPiece vocabulary");
  }
  const fs::path bad = fs::temp_directory_path() / "muki_test_bad_vocab.txt";
  {
    std::ofstream out(bad, std::ios::binary);
    out << "[PAD]\n[UNK]\nab\xff\n";
  }
  try {
    WordPieceTokenizer::from_file(bad);
    FAIL() << "expected TokenizerError";
  } catch (const TokenizerError& e) {
    EXPECT_EQ(std::string(e.what()), bad.string() + ":3: invalid UTF-8 at byte 3");
  }
  fs::remove(bad);
}
