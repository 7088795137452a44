// Checkpoint folders: round trip, and refusals that name the file and the tensor.
#include <gtest/gtest.h>

#include <fstream>

#include <torch/torch.h>

#include <muki/metrics/metrics.h>
#include <muki/model/checkpoint.h>
#include <muki/model/mc_dropout.h>
#include <muki/model/text_encoding.h>

#include "../test_support.h"
#include "torch_test_support.h"

using namespace muki::core;
using muki::test::small_config;
using muki::test::TempDir;
namespace fs = std::filesystem;

namespace {

fs::path write_vocab(const TempDir& dir) {
  std::string text;
  for (const auto& t : muki::test::tiny_vocab()) text += t + "\n";
  return dir.write("src/vocab.txt", text);
}

Classifier saved_model(const TempDir& dir, const std::string& type, fs::path* folder) {
  torch::manual_seed(5);
  Classifier m = make_classifier(small_config(type));
  *folder = dir.path() / "ckpt";
  save_checkpoint(*folder, *m, TokenizerSpec{"wordpiece", "vocab.txt", true}, write_vocab(dir),
                  {"games", "sound", "text"}, "{\"ok\": true}\n");
  return m;
}

// Expects `fn` to throw CheckpointError whose message contains every needle.
template <class Fn>
void expect_refusal(Fn&& fn, const std::vector<std::string>& needles) {
  try {
    fn();
    FAIL() << "expected CheckpointError";
  } catch (const CheckpointError& e) {
    for (const auto& n : needles)
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what() << "\nmissing: " << n;
  }
}

}  // namespace

TEST(Checkpoint, RoundTripGivesIdenticalLogits) {
  for (const std::string type : {"transformer", "bag_of_embeddings", "cnn"}) {
    TempDir dir;
    fs::path folder;
    Classifier original = saved_model(dir, type, &folder);
    for (const char* f : {"config.toml", "labels.txt", "vocab.txt", "weights.pt", "train_report.json"})
      EXPECT_TRUE(fs::exists(folder / f)) << f;
    LoadedCheckpoint loaded = load_checkpoint(folder);
    EXPECT_EQ(loaded.labels, (std::vector<std::string>{"games", "sound", "text"}));
    EXPECT_EQ(loaded.model_config.type, type);
    const EncodedTexts enc = encode_texts(*loaded.tokenizer,
                                          std::vector<std::string>{"the arcade game", "a font editor for text"}, 32);
    const torch::Tensor a = predict_deterministic(*original, enc.input_ids, enc.attention_mask);
    const torch::Tensor b = predict_deterministic(*loaded.model, enc.input_ids, enc.attention_mask);
    EXPECT_TRUE(torch::equal(a, b)) << type;
  }
}

TEST(Checkpoint, MissingTensorIsRefusedByName) {
  TempDir dir;
  fs::path folder;
  Classifier m = saved_model(dir, "transformer", &folder);
  torch::serialize::OutputArchive archive;
  for (const auto& p : m->named_parameters())
    if (p.key() != "layers.1.query.weight") archive.write(p.key(), p.value().detach());
  archive.save_to((folder / "weights.pt").string());
  fs::remove(folder / "weights.pt.checksum");  // an archive made by hand has none
  expect_refusal([&] { load_checkpoint(folder); },
                 {"weights.pt", "'layers.1.query.weight'", "missing"});
}

TEST(Checkpoint, WrongShapeIsRefusedWithBothShapes) {
  TempDir dir;
  fs::path folder;
  Classifier m = saved_model(dir, "bag_of_embeddings", &folder);
  torch::serialize::OutputArchive archive;
  for (const auto& p : m->named_parameters())
    archive.write(p.key(), p.key() == "classifier.weight" ? torch::zeros({2, 32}) : p.value().detach());
  archive.save_to((folder / "weights.pt").string());
  fs::remove(folder / "weights.pt.checksum");  // an archive made by hand has none
  expect_refusal([&] { load_checkpoint(folder); },
                 {"weights.pt", "'classifier.weight'", "[2, 32]", "[3, 32]"});
}

TEST(Checkpoint, ExtraTensorAndCorruptFileAreRefused) {
  TempDir dir;
  fs::path folder;
  Classifier m = saved_model(dir, "bag_of_embeddings", &folder);
  torch::serialize::OutputArchive archive;
  for (const auto& p : m->named_parameters()) archive.write(p.key(), p.value().detach());
  archive.write("pooler.weight", torch::zeros({2}));
  archive.save_to((folder / "weights.pt").string());
  fs::remove(folder / "weights.pt.checksum");  // an archive made by hand has none
  expect_refusal([&] { load_checkpoint(folder); }, {"'pooler.weight'", "not part of this model"});

  std::ofstream(folder / "weights.pt", std::ios::binary | std::ios::trunc) << "not a zip archive";
  expect_refusal([&] { load_checkpoint(folder); }, {"weights.pt", "not a readable weights archive"});
  fs::remove(folder / "weights.pt");
  expect_refusal([&] { load_checkpoint(folder); }, {"weights.pt", "no such file"});
}

// 64 bytes overwritten inside weights.pt loaded without complaint (issue 11, finding 6): the
// checksum written beside it catches that.
TEST(Checkpoint, DamagedWeightsAreRefusedByTheirChecksum) {
  TempDir dir;
  fs::path folder;
  saved_model(dir, "bag_of_embeddings", &folder);
  ASSERT_TRUE(fs::exists(folder / "weights.pt.checksum"));
  EXPECT_NO_THROW(load_checkpoint(folder));
  {
    std::fstream weights(folder / "weights.pt", std::ios::in | std::ios::out | std::ios::binary);
    weights.seekp(static_cast<std::streamoff>(fs::file_size(folder / "weights.pt") / 2));
    weights.write(std::string(64, '\x11').data(), 64);
  }
  expect_refusal([&] { load_checkpoint(folder); },
                 {(folder / "weights.pt").string(), "checksum mismatch: the file changed after muki wrote it"});
}

TEST(Checkpoint, InconsistentFolderIsRefusedNamingTheFile) {
  TempDir dir;
  fs::path folder;
  saved_model(dir, "cnn", &folder);
  std::ofstream(folder / "labels.txt", std::ios::trunc) << "games\nsound\n";
  expect_refusal([&] { load_checkpoint(folder); }, {"labels.txt", "2 labels", "num_labels = 3"});
  std::ofstream(folder / "labels.txt", std::ios::trunc) << "games\ngames\ntext\n";
  expect_refusal([&] { load_checkpoint(folder); }, {"labels.txt:2", "listed twice"});
  fs::remove(folder / "config.toml");
  expect_refusal([&] { load_checkpoint(folder); }, {"config.toml", "no such file"});
  expect_refusal([&] { load_checkpoint(dir.path() / "nowhere"); }, {"nowhere"});
}

TEST(Metrics, AccuracyAndMacroF1ByHand) {
  // gold 0 0 1 1 2, predicted 0 1 1 1 0: accuracy 3/5; F1: class 0 2*1/(2+2)=0.5,
  // class 1 2*2/(2+3)=0.8, class 2 0 -> macro (0.5+0.8+0)/3.
  const ClassificationMetrics m = classification_metrics({0, 0, 1, 1, 2}, {0, 1, 1, 1, 0}, 4);
  EXPECT_DOUBLE_EQ(m.accuracy, 0.6);
  EXPECT_NEAR(m.macro_f1, 1.3 / 3.0, 1e-12);  // class 3 never occurs: not averaged in
  EXPECT_EQ(m.examples, 5);
  EXPECT_THROW(classification_metrics({0}, {5}, 4), std::invalid_argument);
}
