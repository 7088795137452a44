// Masked-language-model pre-training (`muki pretrain`) and fine-tuning from its encoder
// (model.init): BERT's masking proportions, the tied output layer, the encoder folder, a run
// that is deterministic, and teachers that start from the encoder's weights and tokenizer.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <fstream>

#include <muki/experiment/config.h>
#include <muki/io/fingerprint.h>
#include <muki/model/checkpoint.h>
#include <muki/model/masked_lm.h>
#include <muki/pipeline/pretraining.h>
#include <muki/pipeline/teacher_training.h>

#include "../test_support.h"
#include "torch_test_support.h"

using namespace muki::core;
using muki::test::small_config;
using muki::test::TempDir;
namespace fs = std::filesystem;

namespace {

at::Generator seeded(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

MaskingOptions tiny_masking() {
  MaskingOptions o;
  o.vocab_size = 40;
  o.mask_id = 4;
  o.special_ids = {0, 2, 3, 4};  // pad, cls, sep, mask
  return o;
}

// [CLS] w... [SEP] then padding, rows of different lengths; ordinary ids in [5, 40).
std::pair<torch::Tensor, torch::Tensor> batch(int64_t rows, int64_t length) {
  torch::manual_seed(3);
  torch::Tensor ids = torch::randint(5, 40, {rows, length}, torch::kLong);
  torch::Tensor mask = torch::ones({rows, length}, torch::kLong);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t len = length - r % 7;  // the last r % 7 positions are padding
    ids[r][0] = 2;
    ids[r][len - 1] = 3;
    ids[r].narrow(0, len, length - len).fill_(0);
    mask[r].narrow(0, len, length - len).fill_(0);
  }
  return {ids, mask};
}

std::string read(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A small corpus: sentences of the tiny vocabulary's words, deterministic.
fs::path write_corpus(const TempDir& dir, int64_t lines) {
  const std::vector<std::string> words = {"the", "game", "sound", "music", "play", "graphics", "image",
                                          "text", "editor", "font", "audio", "video", "player", "arcade"};
  std::string text;
  for (int64_t i = 0; i < lines; ++i) {
    for (int64_t w = 0; w < 6 + i % 5; ++w) text += words[static_cast<size_t>((i * 7 + w * 3) % 14)] + " ";
    text += "\n";
  }
  return dir.write("corpus.txt", text);
}

std::string pretrain_toml(const fs::path& corpus, const fs::path& out, int64_t steps) {
  return "[pretrain]\noutput = \"" + out.string() + "\"\nseed = 4\ndevice = \"cpu\"\nthreads = 1\n"
         "[data]\ntrain = { path = \"" + corpus.string() + "\", format = \"text\" }\nheldout_fraction = 0.1\n"
         "[tokenizer]\nvocab_size = 40\n"
         "[model]\nlayers = 1\nhidden = 16\nheads = 2\nffn = 32\nmax_length = 16\n"
         "[train]\nsteps = " + std::to_string(steps) + "\nbatch_size = 8\nlr = 5e-3\neval_every = 5\n";
}

}  // namespace

TEST(MaskedLm, MaskingFollowsBertsProportions) {
  const auto [ids, mask] = batch(300, 40);
  const MaskingOptions o = tiny_masking();
  const MaskedBatch m = mask_tokens(ids, mask, o, seeded(11));
  const torch::Tensor chosen = m.labels != kNotPredicted;
  const torch::Tensor eligible = (mask != 0).logical_and(ids != 2).logical_and(ids != 3);
  // Never a special token or padding; the label is the original token.
  EXPECT_FALSE(chosen.logical_and(eligible.logical_not()).any().item<bool>());
  EXPECT_TRUE(m.labels.index({chosen}).equal(ids.index({chosen})));
  // Unchosen positions are untouched.
  EXPECT_TRUE(m.input_ids.index({chosen.logical_not()}).equal(ids.index({chosen.logical_not()})));
  // About 15% of ~10,000 eligible positions (binomial sd 0.0036; 4 sd allowed).
  const double n_eligible = eligible.sum().item<double>(), n_chosen = chosen.sum().item<double>();
  EXPECT_NEAR(n_chosen / n_eligible, 0.15, 0.015);
  // Of the chosen: 80% [MASK], 10% another ordinary token, 10% kept (binomial sd <= 0.011;
  // a random replacement equals the original 1 time in 35, which counts as kept).
  const torch::Tensor after = m.input_ids.index({chosen}), before = ids.index({chosen});
  const double masked = (after == 4).sum().item<double>() / n_chosen;
  const double kept = (after == before).sum().item<double>() / n_chosen;
  EXPECT_NEAR(masked, 0.8, 0.045);
  EXPECT_NEAR(kept, 0.1 + 0.1 / 35, 0.04);
  EXPECT_NEAR(1 - masked - kept, 0.1 - 0.1 / 35, 0.04);
  // Random replacements are ordinary tokens.
  const torch::Tensor replaced = after.index({(after != 4).logical_and(after != before)});
  EXPECT_FALSE(torch::isin(replaced, torch::tensor(o.special_ids, torch::kLong)).any().item<bool>()) << replaced;
  // The generator alone decides: the same seed, the same batch; another seed, another.
  const MaskedBatch again = mask_tokens(ids, mask, o, seeded(11));
  EXPECT_TRUE(again.input_ids.equal(m.input_ids) && again.labels.equal(m.labels));
  EXPECT_FALSE(mask_tokens(ids, mask, o, seeded(12)).labels.equal(m.labels));
}

TEST(MaskedLm, EveryBatchPredictsAtLeastOneToken) {
  MaskingOptions o = tiny_masking();
  o.probability = 0.0;
  const torch::Tensor ids = torch::tensor({{2, 7, 9, 3, 0}}, torch::kLong);
  const torch::Tensor mask = torch::tensor({{1, 1, 1, 1, 0}}, torch::kLong);
  const MaskedBatch m = mask_tokens(ids, mask, o, seeded(1));
  // The first eligible position: index 1 (position 0 is [CLS]).
  const std::vector<int64_t> expected = {kNotPredicted, 7, kNotPredicted, kNotPredicted, kNotPredicted};
  EXPECT_TRUE(m.labels.equal(torch::tensor(expected, torch::kLong).view({1, 5}))) << m.labels;
  o.mask_id = 40;
  EXPECT_THROW(mask_tokens(ids, mask, o, seeded(1)), std::invalid_argument);
}

TEST(MaskedLm, OutputLayerIsTiedToTheTokenEmbeddings) {
  ModelConfig c = small_config("transformer");
  auto model = std::make_shared<TransformerClassifierImpl>(c);
  MaskedLmHead head(c.hidden, c.vocab_size);
  // The head owns no [V, H] matrix: transform, its norm and a bias of V.
  for (const auto& p : head->named_parameters())
    EXPECT_FALSE(p.value().dim() == 2 && p.value().size(0) == c.vocab_size) << p.key();
  const auto [ids, mask] = batch(4, 10);
  MaskedBatch m = mask_tokens(ids.clamp_max(c.vocab_size - 1), mask, tiny_masking(), seeded(2));
  m.input_ids = m.input_ids.clamp_max(c.vocab_size - 1);
  m.labels = torch::where(m.labels == kNotPredicted, m.labels, m.labels.clamp_max(c.vocab_size - 1));
  const MaskedLmLoss loss = masked_lm_loss(*model, *head, m, mask);
  EXPECT_EQ(loss.predicted, (m.labels != kNotPredicted).sum().item<int64_t>());
  // Untrained: about ln(V) (logits near 0).
  EXPECT_NEAR(loss.loss.item<double>(), std::log(static_cast<double>(c.vocab_size)), 0.5);
  loss.loss.backward();
  // The embedding rows of the targets get gradient through the output layer even where the
  // target does not appear in the input.
  EXPECT_GT(model->token_embedding_weight().grad().abs().sum().item<double>(), 0.0);
}

TEST(Encoder, FolderRoundTripAndInitCopyEverythingButTheClassifier) {
  TempDir dir;
  std::string vocab;
  for (const auto& t : muki::test::tiny_vocab()) vocab += t + "\n";
  const fs::path vocab_file = dir.write("src/vocab.txt", vocab), folder = dir.path() / "encoder";
  torch::manual_seed(8);
  auto encoder = std::make_shared<TransformerClassifierImpl>(small_config("transformer", 1));
  MaskedLmHead head(32, small_config("transformer").vocab_size);
  save_encoder(folder, *encoder, *head, TokenizerSpec{"wordpiece", "vocab.txt", true}, vocab_file);
  for (const char* f : {"config.toml", "vocab.txt", "encoder.pt", "encoder.pt.checksum", "mlm_head.pt"})
    EXPECT_TRUE(fs::exists(folder / f)) << f;
  const auto [config, spec] = read_encoder_config(folder);
  EXPECT_EQ(config.num_labels, 0);
  EXPECT_EQ(config.hidden, 32);
  EXPECT_EQ(spec.file, "vocab.txt");

  torch::manual_seed(9);
  Classifier fine = make_classifier(small_config("transformer", 5));
  const torch::Tensor fresh_classifier = fine->named_parameters()["classifier.weight"].clone();
  load_encoder_weights(*fine, folder);
  const auto source = encoder->named_parameters();
  for (const auto& p : fine->named_parameters()) {
    if (p.key().rfind("classifier.", 0) == 0) continue;
    EXPECT_TRUE(p.value().equal(source[p.key()])) << p.key();
  }
  EXPECT_TRUE(fine->named_parameters()["classifier.weight"].equal(fresh_classifier));

  // Each kind of folder refuses to be taken for the other, saying what it is.
  try {
    load_checkpoint(folder);
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("a pre-trained encoder: name it as model.init"), std::string::npos) << e.what();
  }
  save_checkpoint(dir.path() / "classifier", *fine, TokenizerSpec{"wordpiece", "vocab.txt", true}, vocab_file,
                  {"a", "b", "c", "d", "e"});
  try {
    read_encoder_config(dir.path() / "classifier");
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("a classifier checkpoint, not a pre-trained encoder"), std::string::npos)
        << e.what();
  }
  // Sizes that differ are refused before any tensor is touched.
  ModelConfig wider = small_config("transformer", 5);
  wider.hidden = 64;
  Classifier other = make_classifier(wider);
  EXPECT_THROW(load_encoder_weights(*other, folder), CheckpointError);
}

TEST(Pretrain, LearnsIsDeterministicAndTeachersFineTuneFromIt) {
  TempDir dir;
  const fs::path corpus = write_corpus(dir, 200);
  auto run = [&](const fs::path& out, int64_t steps) {
    return pretrain(Config::parse(pretrain_toml(corpus, out, steps), "pretrain.toml", dir.path()));
  };
  const PretrainResult a = run(dir.path() / "a", 40);
  EXPECT_EQ(a.train_texts, 180);  // every 10th of 200 held out
  EXPECT_EQ(a.heldout_texts, 20);
  ASSERT_EQ(a.history.size(), 8u);
  // Well below an untrained model's ln(vocab) on a corpus this repetitive.
  EXPECT_LT(a.history.back().heldout_loss, std::log(static_cast<double>(a.vocab_size)) - 1.0);
  for (const char* f : {"config.toml", "vocab.txt", "encoder.pt", "mlm_head.pt", "pretrain_report.json"})
    EXPECT_TRUE(fs::exists(a.output / f)) << f;
  EXPECT_NE(read(a.output / "vocab.txt").find("[MASK]\n"), std::string::npos);
  EXPECT_EQ(read_encoder_config(a.output).first.vocab_size, a.vocab_size);
  // The same config, the same weights.
  const PretrainResult b = run(dir.path() / "b", 40);
  EXPECT_EQ(read(a.output / "encoder.pt.checksum"), read(b.output / "encoder.pt.checksum"));
  // A rerun of a finished one resumes at its end and writes the same encoder.
  const PretrainResult again = run(dir.path() / "a", 40);
  EXPECT_EQ(again.resumed_from_step, 40);
  EXPECT_EQ(read(a.output / "encoder.pt.checksum"), read(b.output / "encoder.pt.checksum"));

  // A teacher fine-tuned from it: the encoder's vocabulary and sizes, recorded in its report.
  const fs::path teacher = dir.path() / "teacher";
  const std::string teacher_toml =
      "[teacher]\nname = \"t\"\noutput = \"" + teacher.string() + "\"\nseed = 1\ndevice = \"cpu\"\n"
      "[data]\ntrain = { path = \"" + (dir.path() / "labeled.tsv").string() + "\", label = \"label\" }\n"
      "[model]\ninit = \"a\"\ndropout = 0.0\n[train]\nepochs = 2\nbatch_size = 8\n";
  std::string labeled = "id\tlabel\ttext\n";
  for (int i = 0; i < 40; ++i)
    labeled += std::to_string(i) + "\t" + (i % 2 ? "play" : "edit") + "\t" +
               (i % 2 ? "game arcade player play" : "text editor font") + "\n";
  dir.write("labeled.tsv", labeled);
  const Config config = Config::parse(teacher_toml, "teacher.toml", dir.path());
  ASSERT_TRUE(validate_teacher_training(config).empty());
  const TeacherTrainingResult r = train_teacher(config);
  EXPECT_EQ(read(teacher / "vocab.txt"), read(a.output / "vocab.txt"));
  const LoadedCheckpoint loaded = load_checkpoint(teacher);
  EXPECT_EQ(loaded.model_config.hidden, 16);
  EXPECT_EQ(loaded.model_config.dropout, 0.0);
  EXPECT_NE(r.report_json.find("\"init\": \"" + a.output.string() + "\""), std::string::npos) << r.report_json;
}

TEST(RepositoryConfigs, ThePretrainingFilesAreValidButForTheirBuiltCorpus) {
  // Their corpora are built in .cache/ (scripts/pretrain-encoder.sh), not committed: the only
  // problems a fresh clone may have are those two files.
  int files = 0;
  for (const auto& entry : fs::directory_iterator(muki::test::source_dir() / "configs/pretrain")) {
    ++files;
    for (const auto& p : validate_pretraining(Config::load(entry.path())))
      EXPECT_THAT(p.message, testing::AnyOf(testing::HasSubstr("corpus.txt does not exist"),
                                              testing::HasSubstr("heldout.txt does not exist")))
          << p.format();
  }
  EXPECT_EQ(files, 2);  // ddtp-multilingual and ddtp-wordnet-multilingual
}
