// The LibTorch models and MC dropout: shapes, padding invariance, dropout toggling, seeded
// replicated-batch sampling.
#include <gtest/gtest.h>

#include <mutex>

#include <torch/torch.h>

#include <muki/model/device.h>
#include <muki/model/mc_dropout.h>
#include <muki/model/models.h>

#include "torch_test_support.h"

using namespace muki::core;
using muki::test::small_config;

namespace {

// Two texts of 5 and 3 tokens ([CLS] ... [SEP]), padded with 0 to `length`.
std::pair<torch::Tensor, torch::Tensor> batch(int64_t length) {
  torch::Tensor ids = torch::zeros({2, length}, torch::kLong);
  torch::Tensor mask = torch::zeros({2, length}, torch::kLong);
  const std::vector<std::vector<int64_t>> rows = {{2, 5, 6, 7, 3}, {2, 9, 3}};
  for (int64_t r = 0; r < 2; ++r)
    for (size_t t = 0; t < rows[static_cast<size_t>(r)].size(); ++t) {
      ids[r][static_cast<int64_t>(t)] = rows[static_cast<size_t>(r)][t];
      mask[r][static_cast<int64_t>(t)] = 1;
    }
  return {ids, mask};
}

struct Variant {
  std::string type, pooling;
};
// Keeps ctest's test names readable (gtest would print the struct's bytes).
void PrintTo(const Variant& v, std::ostream* os) { *os << v.type << "/" << v.pooling; }

class ModelVariants : public ::testing::TestWithParam<Variant> {
 protected:
  Classifier make() {
    torch::manual_seed(3);
    ModelConfig c = small_config(GetParam().type);
    c.pooling = GetParam().pooling;
    return make_classifier(c);
  }
};

}  // namespace

TEST_P(ModelVariants, ForwardGivesOneRowOfLogitsPerText) {
  Classifier m = make();
  auto [ids, mask] = batch(8);
  const torch::Tensor logits = predict_deterministic(*m, ids, mask);
  EXPECT_EQ(logits.sizes(), torch::IntArrayRef({2, 3}));
  EXPECT_EQ(logits.scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
}

TEST_P(ModelVariants, PaddingDoesNotChangeTheOutput) {
  Classifier m = make();
  auto [ids_short, mask_short] = batch(5);
  auto [ids_long, mask_long] = batch(20);
  const torch::Tensor a = predict_deterministic(*m, ids_short, mask_short);
  const torch::Tensor b = predict_deterministic(*m, ids_long, mask_long);
  EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-5)) << a << "\n" << b;
}

TEST_P(ModelVariants, EvalIsDeterministicAndMcSamplesDiffer) {
  Classifier m = make();
  auto [ids, mask] = batch(8);
  EXPECT_TRUE(torch::equal(predict_deterministic(*m, ids, mask), predict_deterministic(*m, ids, mask)));
  const torch::Tensor s = mc_dropout_sample(*m, ids, mask, 4, 11);
  ASSERT_EQ(s.sizes(), torch::IntArrayRef({4, 2, 3}));
  EXPECT_FALSE(torch::equal(s[0], s[1]));
  EXPECT_FALSE(torch::equal(s[2], s[3]));
  // Back in eval mode afterwards: the deterministic pass is unchanged.
  EXPECT_FALSE(m->is_training());
  EXPECT_EQ(set_dropout_active(*m, false), count_dropout_modules(*m));
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, ModelVariants,
                         ::testing::Values(Variant{"transformer", "cls"},
                                           Variant{"transformer", "mean"},
                                           Variant{"bag_of_embeddings", "cls"},
                                           Variant{"cnn", "cls"}),
                         [](const auto& p) { return p.param.type + "_" + p.param.pooling; });

TEST(Models, DropoutWhereBertHasIt) {
  ModelConfig c = small_config("transformer");
  // embeddings + 3 per layer (attention probabilities, attention output, FFN output) + classifier
  EXPECT_EQ(count_dropout_modules(*make_classifier(c)), 2 + 3 * c.layers);
  EXPECT_EQ(count_dropout_modules(*make_classifier(small_config("bag_of_embeddings"))), 1);
  EXPECT_EQ(count_dropout_modules(*make_classifier(small_config("cnn"))), 2);
}

TEST(Models, DropoutToggleTouchesOnlyDropoutModules) {
  Classifier m = make_classifier(small_config("transformer"));
  m->eval();
  const int64_t n = set_dropout_active(*m, true);
  EXPECT_EQ(n, count_dropout_modules(*m));
  int64_t training = 0, dropout_training = 0;
  for (const auto& sub : m->modules(/*include_self=*/true)) {
    const bool is_dropout = dynamic_cast<torch::nn::DropoutImpl*>(sub.get()) != nullptr;
    if (sub->is_training()) ++training;
    if (is_dropout) {
      EXPECT_TRUE(sub->is_training());
      ++dropout_training;
    }
  }
  EXPECT_EQ(training, dropout_training) << "a non-dropout module was switched to train mode";
  EXPECT_EQ(dropout_training, n);
}

TEST(Models, RejectsBadConfigsWithTheFieldName) {
  ModelConfig c = small_config("transformer");
  c.heads = 5;
  try {
    make_classifier(c);
    FAIL() << "expected invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("model.heads"), std::string::npos) << e.what();
  }
  c = small_config("lstm");
  EXPECT_THROW(make_classifier(c), std::invalid_argument);
}

TEST(McDropout, SameSeedSameSamplesOtherSeedOtherSamples) {
  torch::manual_seed(1);
  Classifier m = make_classifier(small_config("transformer"));
  auto [ids, mask] = batch(8);
  const torch::Tensor a = mc_dropout_sample(*m, ids, mask, 3, 42);
  const torch::Tensor b = mc_dropout_sample(*m, ids, mask, 3, 42);
  const torch::Tensor c = mc_dropout_sample(*m, ids, mask, 3, 43);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, c));
}

TEST(McDropout, ReplicatedBatchMatchesSeparatePassesWhenDropoutIsZero) {
  // With p = 0 every replica is the deterministic pass: the [K*B] rows map back to [K, B] in
  // order (sample-major), not interleaved.
  torch::manual_seed(1);
  Classifier m = make_classifier(small_config("transformer"));
  set_dropout_rate(*m, 0.0);
  auto [ids, mask] = batch(8);
  const torch::Tensor det = predict_deterministic(*m, ids, mask);
  const torch::Tensor s = mc_dropout_sample(*m, ids, mask, 5, 9);
  for (int64_t k = 0; k < 5; ++k) EXPECT_TRUE(torch::allclose(s[k], det, 1e-5, 1e-6)) << k;
}

TEST(McDropout, SeparateSeededPassesHaveTheSameDistributionShape) {
  // K single-sample calls and one K-sample call both give K draws per example; the per-example
  // spread is of the same order (dropout's noise, not an artefact of the replication).
  torch::manual_seed(1);
  Classifier m = make_classifier(small_config("transformer"));
  auto [ids, mask] = batch(8);
  const int64_t k = 64;
  const torch::Tensor joint = torch::softmax(mc_dropout_sample(*m, ids, mask, k, 5), -1);
  std::vector<torch::Tensor> parts;
  for (int64_t i = 0; i < k; ++i)
    parts.push_back(torch::softmax(mc_dropout_sample(*m, ids, mask, 1, 1000 + static_cast<uint64_t>(i)), -1)[0]);
  const torch::Tensor separate = torch::stack(parts);
  ASSERT_EQ(joint.sizes(), separate.sizes());
  const double sd_joint = joint.std(0).mean().item<double>();
  const double sd_separate = separate.std(0).mean().item<double>();
  EXPECT_GT(sd_joint, 0.0);
  EXPECT_NEAR(sd_joint / sd_separate, 1.0, 0.5);
  EXPECT_TRUE(torch::allclose(joint.mean(0), separate.mean(0), 0.0, 0.05));
}

TEST(McDropout, RestoresTheDefaultGeneratorState) {
  Classifier m = make_classifier(small_config("bag_of_embeddings"));
  auto [ids, mask] = batch(8);
  torch::manual_seed(123);
  const torch::Tensor expected = torch::rand({4});
  torch::manual_seed(123);
  mc_dropout_sample(*m, ids, mask, 2, 77);
  EXPECT_TRUE(torch::equal(torch::rand({4}), expected));
}

TEST(Device, ParsesSpecsAndRefusesCudaWithoutIt) {
  EXPECT_EQ(resolve_device("cpu"), torch::Device(torch::kCPU));
  EXPECT_EQ(resolve_device("AUTO").is_cuda(), torch::cuda::is_available());
  EXPECT_THROW(resolve_device("gpu"), std::invalid_argument);
  EXPECT_THROW(resolve_device("cuda:x"), std::invalid_argument);
  EXPECT_THROW(resolve_device("cuda:"), std::invalid_argument);  // not cuda:0
  if (!torch::cuda::is_available()) {
    try {
      resolve_device("cuda:0");
      FAIL();
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("no CUDA device"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(configure_threads(1), 1);
  EXPECT_GE(configure_threads(0), 1);  // back to all cores for the other tests
  EXPECT_THROW(configure_threads(-1), std::invalid_argument);
}

namespace {
int g_locks = 0, g_unlocks = 0;
std::recursive_mutex g_counted;
void counting_lock() {
  g_counted.lock();
  ++g_locks;
}
void counting_unlock() {
  ++g_unlocks;
  g_counted.unlock();
}
}  // namespace

// A seeded pass holds the process-state lock that was installed (the host's, SDK 1.1) for exactly
// its duration: every copy of the model layer in the process then takes the same lock.
TEST(McDropout, SeededPassesHoldTheSharedProcessStateLock) {
  muki::core::share_process_state_lock(&counting_lock, &counting_unlock);
  torch::manual_seed(3);
  Classifier m = make_classifier(muki::test::small_config("transformer"));
  const auto [ids, mask] = batch(6);
  mc_dropout_sample(*m, ids, mask, 2, 5);
  EXPECT_EQ(g_locks, 1);
  EXPECT_EQ(g_unlocks, 1);
  { SeededGeneratorGuard guard(torch::kCPU, 1); EXPECT_EQ(g_locks - g_unlocks, 1); }
  EXPECT_EQ(g_locks, g_unlocks);
}
