// Keyed dropout (keyed_dropout.h): dropout's statistics, masks that are a function of the key and
// the element's position only, the fast CPU loop against the tensor-operation reference, and
// MC-dropout samples that do not depend on the batch a text is run in.
#include <gtest/gtest.h>

#include <cmath>

#include <torch/torch.h>

#include <muki/model/keyed_dropout.h>
#include <muki/model/mc_dropout.h>
#include <muki/model/models.h>

#include "torch_test_support.h"

using namespace muki::core;
using muki::test::small_config;

namespace {

std::vector<uint64_t> keys(int64_t rows, uint64_t seed = 7) {
  std::vector<uint64_t> k(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) k[static_cast<size_t>(r)] = mix_seed(seed, static_cast<uint64_t>(r));
  return k;
}

// The keep indicator of every element of ones(shape) through keyed_dropout, as float 0/1.
torch::Tensor kept(c10::IntArrayRef shape, double p, const std::vector<uint64_t>& k, uint64_t layer,
                   int64_t stride = 0) {
  return keyed_dropout(torch::ones(shape), p, k, layer, stride).ne(0).to(torch::kFloat);
}

double correlation(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor x = a.flatten() - a.mean(), y = b.flatten() - b.mean();
  return ((x * y).sum() / (x.norm() * y.norm())).item<double>();
}

}  // namespace

TEST(KeyedDropout, KeepsEachElementWithProbabilityOneMinusPAndScalesIt) {
  for (double p : {0.1, 0.5}) {
    const torch::Tensor out = keyed_dropout(torch::ones({64, 64, 128}), p, keys(64), 3);
    const double n = static_cast<double>(out.numel());
    const double keep = out.ne(0).to(torch::kDouble).mean().item<double>();
    // Binomial: 5 standard deviations is a false alarm once in ~3.5 million runs.
    EXPECT_NEAR(keep, 1.0 - p, 5.0 * std::sqrt(p * (1.0 - p) / n)) << "p " << p;
    const torch::Tensor values = out.masked_select(out.ne(0));
    EXPECT_TRUE(torch::allclose(values, torch::full_like(values, 1.0 / (1.0 - p)))) << "p " << p;
  }
}

TEST(KeyedDropout, MasksAreUncorrelatedAcrossElementsRowsAndLayers) {
  // Neighbouring counters, neighbouring row keys and two layers of the same rows: the keep
  // indicators must look independent (|r| within 5 / sqrt(n) of 0).
  const torch::Tensor a = kept({256, 32, 64}, 0.3, keys(256), 1);
  const double bound = 5.0 / std::sqrt(static_cast<double>(a.numel()) / 2);
  EXPECT_LT(std::abs(correlation(a.narrow(2, 0, 63), a.narrow(2, 1, 63))), bound);
  EXPECT_LT(std::abs(correlation(a.narrow(0, 0, 255), a.narrow(0, 1, 255))), bound);
  EXPECT_LT(std::abs(correlation(a, kept({256, 32, 64}, 0.3, keys(256), 2))), bound);
  EXPECT_LT(std::abs(correlation(a, kept({256, 32, 64}, 0.3, keys(256, 8), 1))), bound);
}

TEST(KeyedDropout, TheFastLoopMatchesTheTensorOperationReference) {
  // The CPU loop (vectorised, threaded) and keyed_keep_mask (what non-CPU devices run) must give
  // the very same masks, for every dtype and both layouts. The inputs lie in [1, 2], so a zero
  // out is a dropped element (randn + 3 rounded to bfloat16 hit exactly 0 in about 1 run in 4).
  torch::manual_seed(11);
  for (auto dtype : {torch::kFloat, torch::kDouble, torch::kBFloat16}) {
    const torch::Tensor x = torch::rand({6, 17, 33}).to(dtype) + 1.0;
    const torch::Tensor fast = keyed_dropout(x, 0.25, keys(6), 4).ne(0);
    EXPECT_TRUE(torch::equal(fast, keyed_keep_mask(x, 0.25, keys(6), 4))) << dtype;
    const torch::Tensor probs = torch::rand({6, 2, 9, 9}).to(dtype) + 1.0;
    EXPECT_TRUE(torch::equal(keyed_dropout(probs, 0.25, keys(6), 5, 16).ne(0),
                             keyed_keep_mask(probs, 0.25, keys(6), 5, 16)))
        << dtype;
  }
}

TEST(KeyedDropout, AnElementsMaskDependsOnItsPositionNotOnThePadding) {
  // Tokens [R, L, H]: the first 10 positions are masked alike whether the batch is 10 or 24 long.
  const torch::Tensor short_batch = kept({4, 10, 16}, 0.5, keys(4), 0);
  const torch::Tensor long_batch = kept({4, 24, 16}, 0.5, keys(4), 0);
  EXPECT_TRUE(torch::equal(short_batch, long_batch.narrow(1, 0, 10)));
  // Attention probabilities [R, A, I, J]: the same with both position dimensions padded.
  const torch::Tensor a = kept({4, 2, 10, 10}, 0.5, keys(4), 1, 32);
  const torch::Tensor b = kept({4, 2, 24, 24}, 0.5, keys(4), 1, 32);
  EXPECT_TRUE(torch::equal(a, b.narrow(2, 0, 10).narrow(3, 0, 10)));
  // A row's mask is its key's: the same key in another row, another batch, gives the same mask.
  const std::vector<uint64_t> k = keys(4);
  const torch::Tensor alone = kept({1, 10, 16}, 0.5, {k[2]}, 0);
  EXPECT_TRUE(torch::equal(alone[0], short_batch[2]));
}

TEST(KeyedDropout, RefusesWhatItCannotMask) {
  const torch::Tensor x = torch::ones({3, 4});
  EXPECT_THROW(keyed_dropout(x, 0.1, keys(2), 0), std::invalid_argument);  // 2 keys, 3 rows
  EXPECT_THROW(keyed_dropout(x, 1.0, keys(3), 0), std::invalid_argument);
  EXPECT_THROW(keyed_dropout(torch::ones({3, 1, 5, 5}), 0.1, keys(3), 0, 4), std::invalid_argument);
  EXPECT_THROW(keyed_dropout(x, 0.1, keys(3), 0, 8), std::invalid_argument);  // not [R, A, I, J]
  EXPECT_TRUE(torch::equal(keyed_dropout(x, 0.0, keys(3), 0), x));
}

TEST(KeyedDropout, TheModuleIsKeyedOnlyInsideAScope) {
  KeyedDropout d(0.5, 3);
  d->train();
  const torch::Tensor x = torch::ones({2, 50});
  torch::Tensor inside;
  {
    const DropoutKeyScope scope(keys(2));
    inside = d(x);
    EXPECT_TRUE(torch::equal(inside, keyed_dropout(x, 0.5, keys(2), 3)));
  }
  EXPECT_EQ(DropoutKeyScope::current(), nullptr);
  d->eval();
  EXPECT_TRUE(torch::equal(d(x), x));
}

TEST(KeyedDropout, TheGradientIsTheSameMaskScaled) {
  // Training through a scope: d(sum of out)/dx is 1/(1-p) where the element was kept, 0 where it
  // was dropped; the backward pass re-derives the mask from the keys.
  KeyedDropout d(0.3, 2);
  d->train();
  const torch::Tensor x = (torch::rand({5, 7, 16}) + 1.0).requires_grad_();
  const DropoutKeyScope scope(keys(5));
  const torch::Tensor out = d(x);
  out.sum().backward();
  const torch::Tensor expected = out.detach().ne(0).to(torch::kFloat) / 0.7;
  EXPECT_TRUE(torch::allclose(x.grad(), expected));
  EXPECT_GT(expected.eq(0).sum().item<int64_t>(), 0);  // something was dropped
}

TEST(McDropout, ATextsSamplesDoNotDependOnItsBatch) {
  // Sampled with three other texts (padded to the longest) or alone at the same position, a
  // text gets the same K samples: its masks are keyed by (seed, position, k) and padding is
  // ignored. Only the matrix products' rounding may differ.
  for (const char* type : {"transformer", "cnn", "bag_of_embeddings"}) {
    torch::manual_seed(1);
    Classifier m = make_classifier(small_config(type));
    const torch::Tensor ids = torch::randint(4, m->config().vocab_size, {4, 12}, torch::kLong);
    torch::Tensor mask = torch::ones({4, 12}, torch::kLong);
    mask[1].narrow(0, 5, 7).zero_();
    const torch::Tensor joint = mc_dropout_sample(*m, ids, mask, 4, 99, nullptr, {10, 11, 12, 13});
    const torch::Tensor alone =
        mc_dropout_sample(*m, ids.narrow(0, 1, 1).narrow(1, 0, 5), mask.narrow(0, 1, 1).narrow(1, 0, 5),
                          4, 99, nullptr, {11});
    EXPECT_TRUE(torch::allclose(joint.select(1, 1), alone.select(1, 0), 1e-4, 1e-5)) << type;
    // K is not part of the key: the first 2 of 4 samples are the 2 samples of K = 2.
    const torch::Tensor two = mc_dropout_sample(*m, ids, mask, 2, 99, nullptr, {10, 11, 12, 13});
    EXPECT_TRUE(torch::allclose(joint.narrow(0, 0, 2), two, 1e-4, 1e-5)) << type;
    // Another position is another draw.
    const torch::Tensor moved = mc_dropout_sample(*m, ids, mask, 4, 99, nullptr, {20, 21, 22, 23});
    EXPECT_FALSE(torch::allclose(joint, moved, 1e-4, 1e-5)) << type;
  }
}
