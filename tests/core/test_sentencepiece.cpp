#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

#include <unistd.h>

#include <gtest/gtest.h>

#include <muki/data/dataset.h>
#include <muki/text/sentencepiece_tokenizer.h>

namespace fs = std::filesystem;
using namespace muki::core;

namespace {

class SentencePiece : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("muki_spm_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A few hundred lines of real text: data/ddtp-en/train.tsv when it has been built, else
  // sentences made from a fixed word list with a fixed seed.
  fs::path corpus() {
    const fs::path out = dir_ / "corpus.txt";
    std::ofstream f(out);
    const fs::path real = fs::path(MUKI_TEST_SOURCE_DIR) / "data/ddtp-en/train.tsv";
    std::size_t lines = 0;
    if (fs::exists(real)) {
      DatasetSpec spec;
      spec.path = real;
      DatasetReader reader(spec);
      Example e;
      while (lines < 400 && reader.next(e)) f << e.text << '\n', ++lines;
    }
    if (lines < 400) {
      const char* words[] = {"the", "package", "provides", "a", "library", "for", "parsing",
                             "audio", "files", "game", "with", "graphics", "and", "sound",
                             "network", "server", "client", "tool", "to", "manage", "science",
                             "data", "plotting", "math", "functions", "text", "editor", "fast",
                             "simple", "small", "utility", "command", "line", "interface"};
      std::mt19937 rng(7);
      std::uniform_int_distribution<std::size_t> pick(0, std::size(words) - 1), len(5, 14);
      for (; lines < 400; ++lines) {
        const std::size_t n = len(rng);
        for (std::size_t i = 0; i < n; ++i) f << (i ? " " : "") << words[pick(rng)];
        f << ".\n";
      }
    }
    return out;
  }

  static std::string read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  fs::path dir_;
};

}  // namespace

TEST_F(SentencePiece, TrainSaveLoadEncodeDecode) {
  SentencePieceTrainOptions options;
  options.corpus = corpus();
  options.vocab_size = 200;
  options.model_type = "unigram";
  options.character_coverage = 1.0;
  options.hard_vocab_limit = false;
  const SentencePieceTokenizer trained = SentencePieceTokenizer::train(options);
  EXPECT_GT(trained.vocab_size(), 50);
  EXPECT_LE(trained.vocab_size(), 200);
  EXPECT_EQ(trained.pad_id(), 0);
  EXPECT_EQ(trained.unk_id(), 1);
  EXPECT_EQ(trained.cls_id(), 2);
  EXPECT_EQ(trained.sep_id(), 3);
  EXPECT_EQ(trained.id_to_token(0), "<pad>");
  EXPECT_EQ(trained.token_to_id("<unk>"), 1);
  EXPECT_FALSE(trained.token_to_id("surely-not-a-piece").has_value());

  const fs::path model = dir_ / "m.model";
  trained.save(model);
  const SentencePieceTokenizer loaded = SentencePieceTokenizer::load(model);
  EXPECT_EQ(loaded.vocab_size(), trained.vocab_size());

  const std::string text = "the package provides a simple tool for the command line.";
  const std::vector<int64_t> ids = trained.encode(text);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(trained.encode(text), ids);  // deterministic
  EXPECT_EQ(loaded.encode(text), ids);   // the saved model is the trained one
  EXPECT_EQ(loaded.decode(ids), text);
  for (int64_t id : ids) {
    EXPECT_GT(id, 3) << "special id inside an ordinary encoding";
    EXPECT_LT(id, loaded.vocab_size());
  }
  EXPECT_EQ(loaded.encode_pieces(text).size(), ids.size());
  EXPECT_THROW(loaded.decode({loaded.vocab_size()}), std::out_of_range);
  EXPECT_THROW(loaded.id_to_token(-1), std::out_of_range);

  const Batch batch = encode_batch(loaded, std::vector<std::string>{text, "math"}, 0, true);
  EXPECT_EQ(batch.length, static_cast<int64_t>(ids.size() + 2));
  EXPECT_EQ(batch.input_ids.front(), 2);
  EXPECT_EQ(batch.input_ids[ids.size() + 1], 3);
  EXPECT_EQ(batch.input_ids.back(), 0);        // the second row is padded
  EXPECT_EQ(batch.attention_mask.back(), 0);
}

TEST_F(SentencePiece, TrainingIsReproducible) {
  SentencePieceTrainOptions options;
  options.corpus = corpus();
  options.vocab_size = 120;
  options.model_type = "bpe";
  options.hard_vocab_limit = false;
  SentencePieceTokenizer::train(options).save(dir_ / "a.model");
  SentencePieceTokenizer::train(options).save(dir_ / "b.model");
  EXPECT_EQ(read_bytes(dir_ / "a.model"), read_bytes(dir_ / "b.model"));
}

TEST_F(SentencePiece, Errors) {
  try {
    SentencePieceTokenizer::load(dir_ / "none.model");
    FAIL() << "expected TokenizerError";
  } catch (const TokenizerError& e) {
    EXPECT_EQ(std::string(e.what()).rfind((dir_ / "none.model").string() +
                                              ": cannot load SentencePiece model: ",
                                          0),
              0u)
        << e.what();
  }
  SentencePieceTrainOptions options;
  options.corpus = dir_ / "no-corpus.txt";
  try {
    SentencePieceTokenizer::train(options);
    FAIL() << "expected TokenizerError";
  } catch (const TokenizerError& e) {
    EXPECT_EQ(std::string(e.what()),
              options.corpus.string() + ": SentencePiece training corpus not found");
  }
  options.corpus = corpus();
  options.model_type = "trigram";
  EXPECT_THROW(SentencePieceTokenizer::train(options), TokenizerError);
}
