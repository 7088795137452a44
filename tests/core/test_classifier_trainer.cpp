// The classifier trainer and `muki teacher train`'s core (train_teacher) on real data.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <limits>
#include <optional>
#include <random>
#include <set>

#include <torch/torch.h>

#include <muki/experiment/config.h>
#include <muki/model/checkpoint.h>
#include <muki/model/classifier_trainer.h>
#include <muki/model/feature_objectives.h>
#include <muki/pipeline/teacher_training.h>

#include "../test_support.h"
#include "torch_test_support.h"

using namespace muki::core;
using muki::test::small_config;
using muki::test::TempDir;
namespace fs = std::filesystem;

namespace {

// A teacher-training file over the committed data, with {OUT} replaced by `out`.
std::string teacher_toml(const fs::path& out, const std::string& extra_model = "") {
  return "[teacher]\nname = \"two\"\noutput = \"" + out.string() +
         "\"\nlabels = [\"games\", \"science\"]\nseed = 1\ndevice = \"cpu\"\n"
         "[data]\ntrain = { path = \"data/ddtp-en/train.tsv\", label = \"label\" }\n"
         "dev = { path = \"data/ddtp-en/dev.tsv\", label = \"label\" }\n"
         "test = { path = \"data/ddtp-en/test.tsv\", label = \"label\" }\n"
         "[tokenizer]\ntype = \"wordpiece\"\nvocab_size = 4000\n"
         "[model]\ntype = \"bag_of_embeddings\"\nhidden = 64\nmax_length = 96\n" + extra_model +
         "[train]\nepochs = 4\nbatch_size = 32\nlr = 1e-2\neval_every = 40\npatience = 5\n";
}

// Synthetic separable data: label = whether token 5 occurs.
struct Synthetic {
  TrainInputs train;
  EvalSet dev;
};
Synthetic synthetic(int64_t n) {
  torch::manual_seed(0);
  torch::Tensor ids = torch::randint(6, 20, {n, 8}, torch::kLong);
  torch::Tensor labels = torch::randint(0, 2, {n}, torch::kLong);
  ids.select(1, 3).masked_fill_(labels == 1, 5);
  torch::Tensor mask = torch::ones({n, 8}, torch::kLong);
  return {{ids, mask}, {ids, mask, labels}};
}

}  // namespace

TEST(ClassifierTrainer, TeacherLearnsATwoLabelSubsetOfRealData) {
  TempDir dir;
  const fs::path out = dir.path() / "teacher";
  const Config config =
      Config::parse(teacher_toml(out), "two.toml", muki::test::source_dir());
  const auto start = std::chrono::steady_clock::now();
  const TeacherTrainingResult r = train_teacher(config);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.labels, (std::vector<std::string>{"games", "science"}));
  EXPECT_EQ(r.train.kept, 539 + 899);
  EXPECT_EQ(r.train.read, r.train.kept + r.train.left_out);
  ASSERT_TRUE(r.dev_metrics && r.test_metrics);
  EXPECT_GT(r.dev_metrics->accuracy, 0.85);
  EXPECT_GT(r.test_metrics->accuracy, 0.85);
  EXPECT_GT(r.test_metrics->macro_f1, 0.8);
  EXPECT_LT(seconds, 30.0);
  for (const char* f : {"config.toml", "labels.txt", "vocab.txt", "weights.pt", "train_report.json"})
    EXPECT_TRUE(fs::exists(out / f)) << f;
  std::ifstream report(out / "train_report.json");
  const std::string json((std::istreambuf_iterator<char>(report)), std::istreambuf_iterator<char>());
  EXPECT_NE(json.find("\"test\": {\"accuracy\": "), std::string::npos) << json;
  EXPECT_NE(json.find("\"left_out\": "), std::string::npos);
  EXPECT_EQ(load_checkpoint(out).labels.size(), 2u);
}

TEST(ClassifierTrainer, TeacherConfigProblemsComeWithPositions) {
  TempDir dir;
  std::string text = teacher_toml(dir.path() / "t", "heads = 3\n");
  text.replace(text.find("bag_of_embeddings"), 17, "transformer");
  text.replace(text.find("lr = 1e-2"), 9, "lr = \"fast\"");
  text += "precision = \"fp16\"\n";  // line 25
  const Config config = Config::parse(text, "bad.toml", muki::test::source_dir());
  const auto problems = validate_teacher_training(config);
  std::string all;
  for (const auto& p : problems) all += p.format() + "\n";
  EXPECT_NE(all.find("bad.toml:"), std::string::npos) << all;
  EXPECT_NE(all.find("'train.lr' must be a number"), std::string::npos) << all;
  EXPECT_NE(all.find("'model.heads' (3) must divide 'model.hidden' (64)"), std::string::npos) << all;
  EXPECT_NE(all.find("bad.toml:25:13: 'train.precision' is \"fp16\"; expected one of: fp32, bf16"), std::string::npos)
      << all;
  EXPECT_THROW(train_teacher(config), ConfigError);
}

TEST(ClassifierTrainer, EarlyStopsAndKeepsTheBestWeights) {
  const Synthetic data = synthetic(256);
  torch::manual_seed(1);
  ModelConfig c = small_config("bag_of_embeddings", 2);
  Classifier m = make_classifier(c);
  TrainerOptions o;
  o.epochs = 50;
  o.lr = 1e-9;  // nothing improves after the first evaluation
  o.eval_every = 2;
  o.patience = 3;
  const TrainResult r = train_classifier(*m, data.train, cross_entropy_loss(data.dev.labels),
                                         &data.dev, o, torch::kCPU);
  EXPECT_TRUE(r.stopped_early);
  EXPECT_EQ(r.history.size(), 4u);
  EXPECT_EQ(r.best_step, 2);
  EXPECT_LT(r.steps, r.planned_steps);
  EXPECT_FALSE(m->is_training());
}

TEST(ClassifierTrainer, LearnsAndIsReproducibleWithTheSameSeed) {
  const Synthetic data = synthetic(512);
  auto run = [&] {
    torch::manual_seed(1);
    Classifier m = make_classifier(small_config("bag_of_embeddings", 2));
    TrainerOptions o;
    o.epochs = 8;
    o.lr = 5e-2;
    o.eval_every = 0;
    o.seed = 7;
    const TrainResult r = train_classifier(*m, data.train, cross_entropy_loss(data.dev.labels),
                                           &data.dev, o, torch::kCPU);
    return std::make_pair(r, predict_logits(*m, data.dev.input_ids, data.dev.attention_mask, 64, torch::kCPU));
  };
  const auto [a, logits_a] = run();
  const auto [b, logits_b] = run();
  EXPECT_GT(a.best_dev.accuracy, 0.95);
  EXPECT_EQ(a.history.size(), 8u);  // one evaluation per epoch
  EXPECT_TRUE(torch::equal(logits_a, logits_b));
}

TEST(ClassifierTrainer, LengthBucketingPadsLittleAndKeepsBatchesRandom) {
  // 1000 rows (31 full batches of 32 and 8 rows), lengths 1..128 drawn uniformly.
  std::mt19937_64 draw(3);
  std::vector<int64_t> lengths(1000);
  for (int64_t& l : lengths) l = 1 + static_cast<int64_t>(draw() % 128);
  // Padded tokens of an order: each batch is as long as its longest row.
  auto padded = [&](const std::vector<int64_t>& order) {
    int64_t tokens = 0;
    for (size_t b = 0; b < order.size(); b += 32) {
      int64_t longest = 0;
      for (size_t i = b; i < std::min(order.size(), b + 32); ++i) longest = std::max(longest, lengths[order[i]]);
      tokens += longest * static_cast<int64_t>(std::min<size_t>(32, order.size() - b));
    }
    return tokens;
  };
  std::mt19937_64 plain_rng(9), rng(9);
  const std::vector<int64_t> plain = epoch_training_order(plain_rng, lengths, 32, 0);
  const std::vector<int64_t> order = epoch_training_order(rng, lengths, 32, 8);
  // Bucketing starts from the very same shuffle, then reorders: a permutation of the rows.
  std::vector<int64_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[static_cast<size_t>(i)], i);
  // The short last batch is the shuffle's last 8 rows of the last window, sorted: all 8 were in
  // the shuffle's last window (its last 1000 - 768 = 232 rows).
  const std::set<int64_t> last_window(plain.begin() + 768, plain.end());
  for (size_t i = 992; i < 1000; ++i) EXPECT_EQ(last_window.count(order[i]), 1u) << i;
  // Random batches of 32 from 1..128 pad to about 124.3 a row; batches of neighbours in sorted
  // windows of 256 to about 1 + (mean) + 127 / 8 / 2 ~ 73: well under two thirds.
  EXPECT_LT(static_cast<double>(padded(order)), 0.66 * static_cast<double>(padded(plain)));
  // Each full batch holds rows of one window, sorted (a contiguous slice of it).
  for (size_t b = 0; b + 32 <= 992; b += 32)
    EXPECT_TRUE(std::is_sorted(order.begin() + b, order.begin() + b + 32,
                               [&](int64_t x, int64_t y) { return lengths[x] < lengths[y]; }))
        << "batch " << b / 32;
  // The batches come in shuffled order, not sorted within their windows: about half of the 30
  // neighbouring pairs of batches go up in their shortest row (7 to 23 hold in 99% of shuffles;
  // sorted windows would give 26 or more).
  int ascents = 0;
  for (size_t b = 32; b + 32 <= 992; b += 32) ascents += lengths[order[b]] > lengths[order[b - 32]] ? 1 : 0;
  EXPECT_GE(ascents, 7);
  EXPECT_LE(ascents, 23);
  // bucket_batches = 0 is the plain Fisher-Yates shuffle of earlier versions (index draw
  // rng() % (i + 1)), draw for draw.
  std::vector<int64_t> fisher_yates(1000);
  for (int64_t i = 0; i < 1000; ++i) fisher_yates[static_cast<size_t>(i)] = i;
  std::mt19937_64 again(9);
  for (size_t i = 999; i > 0; --i) std::swap(fisher_yates[i], fisher_yates[again() % (i + 1)]);
  EXPECT_EQ(plain, fisher_yates);
}

TEST(ClassifierTrainer, WeightedKlMatchesHandComputation) {
  // One example, target (0.5, 0.5, 0), student logits (0, 0, log 2) -> q = (0.25, 0.25, 0.5):
  // KL = 2 * 0.5 * log(0.5 / 0.25) = log 2; weight 0.5 -> 0.5 log 2. A second example with
  // weight 0 does not count except in the mean's denominator.
  const torch::Tensor targets = torch::tensor({0.5f, 0.5f, 0.0f, 1.0f, 0.0f, 0.0f}).view({2, 3});
  const torch::Tensor weights = torch::tensor({0.5f, 0.0f});
  const LossFn loss = weighted_kl_loss(targets, weights);
  const torch::Tensor logits =
      torch::tensor({0.0f, 0.0f, static_cast<float>(std::log(2.0)), 3.0f, 1.0f, 0.0f}).view({2, 3});
  const double value = loss(logits, torch::tensor({int64_t{0}, int64_t{1}})).item<double>();
  EXPECT_NEAR(value, 0.5 * std::log(2.0) / 2.0, 1e-6);
  const torch::Tensor ce_labels = torch::tensor({int64_t{2}, int64_t{0}});
  EXPECT_NEAR(cross_entropy_loss(ce_labels)(logits.slice(0, 0, 1), torch::tensor({int64_t{0}})).item<double>(),
              -std::log(0.5), 1e-6);
}

TEST(ClassifierTrainer, PerTeacherKlMatchesHandComputation) {
  // Blocks {0, 1} and {2, 3}; target (0.5, 0.5 | 1, 0); student logits (0, log 3 | 0, 0).
  // Block 1: q = (1/4, 3/4): KL = 0.5 log(0.5/0.25) + 0.5 log(0.5/0.75) = 0.5 log(4/3).
  // Block 2: q = (1/2, 1/2): KL = 1 * log(1 / 0.5) = log 2 (the 0 entry adds 0).
  // Weight 2 -> 2 * (0.5 log(4/3) + log 2). The student's mass across blocks does not matter.
  const torch::Tensor targets = torch::tensor({0.5f, 0.5f, 1.0f, 0.0f}).view({1, 4});
  const torch::Tensor weights = torch::tensor({2.0f});
  const LossFn loss = per_teacher_kl_loss(
      targets, weights, {torch::tensor({int64_t{0}, int64_t{1}}), torch::tensor({int64_t{2}, int64_t{3}})});
  const float l3 = static_cast<float>(std::log(3.0));
  const double value =
      loss(torch::tensor({0.0f, l3, 0.0f, 0.0f}).view({1, 4}), torch::tensor({int64_t{0}})).item<double>();
  EXPECT_NEAR(value, 2.0 * (0.5 * std::log(4.0 / 3.0) + std::log(2.0)), 1e-6);
  // Shifting one block's logits by a constant changes nothing: only within-block shape counts.
  const double shifted =
      loss(torch::tensor({5.0f, 5.0f + l3, -2.0f, -2.0f}).view({1, 4}), torch::tensor({int64_t{0}})).item<double>();
  EXPECT_NEAR(shifted, value, 1e-5);
  EXPECT_THROW(per_teacher_kl_loss(targets, weights, {}), std::invalid_argument);
}

namespace {
struct Trained {
  TrainResult result;
  torch::Tensor logits;
};
// Trains the synthetic task with a state file; `fail_at_eval` > 0 throws from the evaluation
// callback at that evaluation (a crash: the state written at the previous evaluation survives).
// With `features`, a CFL objective against fixed random "teacher features" trains alongside.
Trained train_with_state(const Synthetic& data, const fs::path& state, const std::string& key,
                         int fail_at_eval = 0, bool features = false, int64_t bucket_batches = 0,
                         bool bf16 = false) {
  torch::manual_seed(1);
  Classifier m = make_classifier(small_config("transformer", 2));  // has dropout: RNG matters
  std::optional<FeatureLoss> feature_loss;
  if (features) {
    auto objective = make_feature_objective(FeatureObjectiveKind::Cfl, m->feature_dim(), {5});
    const torch::Tensor teacher = torch::randn({data.train.input_ids.size(0), 5});
    feature_loss = FeatureLoss{objective, [objective, teacher](const torch::Tensor& pooled, const torch::Tensor& rows) {
                                 return objective->forward(pooled, {teacher.index_select(0, rows)});
                               }};
  }
  TrainerOptions o;
  o.epochs = 3;
  o.lr = 1e-2;
  o.eval_every = 5;
  o.patience = 0;
  o.seed = 3;
  o.state_file = state;
  o.state_key = key;
  o.bucket_batches = bucket_batches;
  o.bf16 = bf16;
  int evals = 0;
  const TrainResult r = train_classifier(
      *m, data.train, cross_entropy_loss(data.dev.labels), &data.dev, o, torch::kCPU,
      [&](const EvalRecord&) {
        if (++evals == fail_at_eval) throw std::runtime_error("simulated crash");
      },
      feature_loss ? &*feature_loss : nullptr);
  return {r, predict_logits(*m, data.dev.input_ids, data.dev.attention_mask, 64, torch::kCPU)};
}
}  // namespace

TEST(ClassifierTrainer, AnInterruptedRunResumesToTheSameWeights) {
  const Synthetic data = synthetic(160);  // 5 steps an epoch, 15 in all, evaluations every 5
  TempDir dir;
  const Trained straight = train_with_state(data, dir.path() / "a" / "state.pt", "k");
  // Crash at the second evaluation (step 10): the state of step 5 is on disk.
  const fs::path state = dir.path() / "b" / "state.pt";
  EXPECT_THROW(train_with_state(data, state, "k", 2), std::runtime_error);
  ASSERT_TRUE(fs::exists(state));
  const Trained resumed = train_with_state(data, state, "k");
  EXPECT_EQ(resumed.result.resumed_from_step, 5);
  EXPECT_EQ(resumed.result.steps, 15);
  ASSERT_EQ(resumed.result.history.size(), straight.result.history.size());
  for (size_t i = 0; i < straight.result.history.size(); ++i) {
    EXPECT_EQ(resumed.result.history[i].step, straight.result.history[i].step);
    EXPECT_EQ(resumed.result.history[i].dev.accuracy, straight.result.history[i].dev.accuracy);
  }
  EXPECT_EQ(resumed.result.best_step, straight.result.best_step);
  EXPECT_TRUE(torch::equal(resumed.logits, straight.logits));  // bit for bit
  // A finished state returns at once with the same model.
  const Trained again = train_with_state(data, state, "k");
  EXPECT_EQ(again.result.resumed_from_step, 15);
  EXPECT_TRUE(torch::equal(again.logits, straight.logits));
}

// The feature objective's modules and their AdamW moments are part of the state too: otherwise the
// resumed run would continue with fresh modules and drift from the uninterrupted one.
TEST(ClassifierTrainer, AnInterruptedRunWithAFeatureLossResumesToTheSameWeights) {
  const Synthetic data = synthetic(160);
  TempDir dir;
  const Trained without = train_with_state(data, dir.path() / "plain" / "state.pt", "k");
  const Trained straight = train_with_state(data, dir.path() / "a" / "state.pt", "k", 0, true);
  EXPECT_FALSE(torch::equal(straight.logits, without.logits));  // the objective changes training
  const fs::path state = dir.path() / "b" / "state.pt";
  EXPECT_THROW(train_with_state(data, state, "k", 2, true), std::runtime_error);
  const Trained resumed = train_with_state(data, state, "k", 0, true);
  EXPECT_EQ(resumed.result.resumed_from_step, 5);
  EXPECT_TRUE(torch::equal(resumed.logits, straight.logits));
}

// Length bucketing draws its batch order from the seed too, so a bucketed run resumes bit for
// bit; and a state of the plain order is not resumed into a bucketed run (the key differs).
TEST(ClassifierTrainer, ABucketedRunResumesToTheSameWeights) {
  Synthetic data = synthetic(160);
  for (int64_t r = 0; r < 160; ++r) data.train.attention_mask[r].slice(0, 4 + r % 5).zero_();  // lengths 4..8
  TempDir dir;
  const Trained plain = train_with_state(data, dir.path() / "plain" / "state.pt", "k");
  const Trained straight = train_with_state(data, dir.path() / "a" / "state.pt", "k", 0, false, 2);
  EXPECT_FALSE(torch::equal(straight.logits, plain.logits));  // another batch order
  const fs::path state = dir.path() / "b" / "state.pt";
  EXPECT_THROW(train_with_state(data, state, "k", 2, false, 2), std::runtime_error);
  const Trained resumed = train_with_state(data, state, "k", 0, false, 2);
  EXPECT_EQ(resumed.result.resumed_from_step, 5);
  EXPECT_TRUE(torch::equal(resumed.logits, straight.logits));
  const Trained over_plain = train_with_state(data, dir.path() / "plain" / "state.pt", "k", 0, false, 2);
  EXPECT_EQ(over_plain.result.resumed_from_step, 0);
  EXPECT_TRUE(torch::equal(over_plain.logits, straight.logits));
}

// Mixed precision (TrainerOptions::bf16) for the models with matrix products. The first step's
// loss (the initial weights on the first batch) is float32's to bfloat16's precision: 8 bits of
// mantissa, 2^-8 = 0.4% a rounding, a few roundings deep, so 3% is loose but would catch a wrong
// cast or a loss computed on truncated logits. The weights stay float32 and both models still
// learn the synthetic task.
TEST(ClassifierTrainer, Bf16TrainingFollowsFloat32) {
  const Synthetic data = synthetic(512);
  for (const char* type : {"transformer", "cnn"}) {
    SCOPED_TRACE(type);
    auto run = [&](bool bf16, int64_t epochs) {
      torch::manual_seed(1);
      Classifier m = make_classifier(small_config(type, 2));
      TrainerOptions o;
      o.epochs = epochs;
      o.lr = 1e-2;
      o.eval_every = 1;  // the first record's train_loss is the first step's
      o.patience = 0;
      o.seed = 7;
      o.bf16 = bf16;
      const TrainResult r = train_classifier(*m, data.train, cross_entropy_loss(data.dev.labels), &data.dev, o,
                                             torch::kCPU);
      for (const auto& p : m->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat);
      return r;
    };
    const TrainResult fp32 = run(false, 1), bf16 = run(true, 1);
    const double first = fp32.history.front().train_loss;
    EXPECT_NE(bf16.history.front().train_loss, first);  // bf16 did run
    EXPECT_NEAR(bf16.history.front().train_loss, first, 0.03 * first);
    EXPECT_GT(run(true, 3).best_dev.accuracy, 0.95);
  }
}

// A bf16 run resumes bit for bit, and a float32 state is not resumed into it (the key differs).
TEST(ClassifierTrainer, ABf16RunResumesToTheSameWeights) {
  const Synthetic data = synthetic(160);
  TempDir dir;
  const Trained plain = train_with_state(data, dir.path() / "plain" / "state.pt", "k");
  const Trained straight = train_with_state(data, dir.path() / "a" / "state.pt", "k", 0, false, 0, true);
  EXPECT_FALSE(torch::equal(straight.logits, plain.logits));
  const fs::path state = dir.path() / "b" / "state.pt";
  EXPECT_THROW(train_with_state(data, state, "k", 2, false, 0, true), std::runtime_error);
  const Trained resumed = train_with_state(data, state, "k", 0, false, 0, true);
  EXPECT_EQ(resumed.result.resumed_from_step, 5);
  EXPECT_TRUE(torch::equal(resumed.logits, straight.logits));
  const Trained over_plain = train_with_state(data, dir.path() / "plain" / "state.pt", "k", 0, false, 0, true);
  EXPECT_EQ(over_plain.result.resumed_from_step, 0);
  EXPECT_TRUE(torch::equal(over_plain.logits, straight.logits));
}

// Overwritten bytes inside the state (issue 11, finding 6) are caught, not resumed from.
TEST(ClassifierTrainer, ADamagedStateIsRefused) {
  const Synthetic data = synthetic(160);
  TempDir dir;
  const fs::path state = dir.path() / "state.pt";
  train_with_state(data, state, "k");
  {
    std::fstream file(state, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(fs::file_size(state) / 2));
    file.write(std::string(64, '\x11').data(), 64);
  }
  try {
    train_with_state(data, state, "k");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), state.string() + ": checksum mismatch: the training state changed after "
                                     "muki wrote it (damaged); delete it (and state.pt.checksum) to start afresh");
  }
}

TEST(ClassifierTrainer, AStateOfAnotherSetupIsIgnored) {
  const Synthetic data = synthetic(160);
  TempDir dir;
  const fs::path state = dir.path() / "state.pt";
  const Trained first = train_with_state(data, state, "one");
  const Trained other = train_with_state(data, state, "two");
  EXPECT_EQ(other.result.resumed_from_step, 0);  // trained afresh, then replaced the state
  EXPECT_EQ(train_with_state(data, state, "two").result.resumed_from_step, 15);
  EXPECT_TRUE(torch::equal(first.logits, other.logits));  // the same training either way
  // A file that is not a state is an error that names it (without a checksum file: one put there
  // by hand; with one, the checksum says it changed, ADamagedStateIsRefused).
  std::ofstream(state) << "garbage";
  fs::remove(state.string() + ".checksum");
  try {
    train_with_state(data, state, "two");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(state.string() + ": not a readable training state"),
              std::string::npos)
        << e.what();
  }
}

// A loss that turns NaN stops training with the step, and leaves the last written state alone.
TEST(ClassifierTrainer, StopsOnANonFiniteLoss) {
  const Synthetic data = synthetic(160);
  torch::manual_seed(1);
  Classifier m = make_classifier(small_config("bag_of_embeddings", 2));
  TrainerOptions o;
  o.epochs = 2;
  o.eval_every = 2;
  int calls = 0;
  const LossFn ce = cross_entropy_loss(data.dev.labels);
  const LossFn nan_at_3 = [&](const torch::Tensor& logits, const torch::Tensor& rows) {
    const torch::Tensor l = ce(logits, rows);
    return ++calls == 3 ? l * std::numeric_limits<float>::quiet_NaN() : l;
  };
  TempDir dir;
  o.state_file = dir.path() / "state.pt";
  o.state_key = "k";
  try {
    train_classifier(*m, data.train, nan_at_3, &data.dev, o, torch::kCPU);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "train: the training loss is not finite at step 3 (check the targets, the "
                                     "learning rate and the data); the state of step 2 stays in " +
                                         o.state_file.string());
  }
  for (const auto& p : m->parameters()) EXPECT_TRUE(torch::isfinite(p).all().item<bool>());
}
