// Golden values for the built-in strategies, computed by hand (see each comment) and checked
// through the C boundary exactly as the host calls them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include <muki/registry/registry.h>

#include "../test_support.h"

using muki::registry::CreateArgs;
using muki::registry::PluginError;
using muki::registry::Registry;
using muki::registry::TeacherOutputsView;
using ::testing::ElementsAre;
using ::testing::FloatNear;
using ::testing::HasSubstr;

namespace {

const float kLn3 = std::log(3.0f);
const float kLn4 = std::log(4.0f);
constexpr float kTol = 1e-6f;

Registry& registry() {
  static Registry* r = [] {
    auto* reg = new Registry();  // lives for the whole test run
    reg->scan({muki::test::plugin_dir()});
    return reg;
  }();
  return *r;
}

std::vector<float> certainty(const std::string& strategy, const std::vector<float>& logits,
                             int64_t k, int64_t b, int64_t c, const std::string& options = "") {
  auto s = registry().create_uncertainty(strategy, CreateArgs{"u", options, "/", 0});
  std::vector<float> out(static_cast<size_t>(b));
  s->score(logits.data(), k, b, c, out.data());
  return out;
}

struct Integrated {
  std::vector<float> target, weight;
};

// Teachers given as (logits [B, C_i] row-major, scores [B], label map).
struct T {
  std::vector<float> logits, scores;
  std::vector<int64_t> map;
};

Integrated integrate(const std::string& strategy, const std::vector<T>& teachers,
                     int64_t union_size, const std::string& options = "") {
  auto s = registry().create_integration(strategy, CreateArgs{"i", options, "/", 0});
  std::vector<TeacherOutputsView> views;
  for (const auto& t : teachers) views.push_back({t.logits.data(), t.scores.data(), &t.map});
  const int64_t b = static_cast<int64_t>(teachers[0].scores.size());
  Integrated out{std::vector<float>(static_cast<size_t>(b * union_size), -1.0f),
                 std::vector<float>(static_cast<size_t>(b), -1.0f)};
  s->integrate(views, b, union_size, nullptr, out.target.data(), out.weight.data());
  return out;
}

}  // namespace

// p = softmax([ln 3, 0]) = [0.75, 0.25]; H = 0.5623351 nats; H / ln 2 = 0.8112781; s = 0.1887219.
TEST(EntropyStrategy, NormalisedEntropyOfOnePass) {
  EXPECT_THAT(certainty("entropy", {kLn3, 0.0f}, 1, 1, 2), ElementsAre(FloatNear(0.1887219f, kTol)));
}

TEST(EntropyStrategy, UniformIsZeroAndOneHotIsOneWithZeroLogZero) {
  const float inf = INFINITY;
  const auto s = certainty("entropy", {0, 0, 0, 5, -inf, -inf}, 1, 2, 3);
  EXPECT_THAT(s, ElementsAre(FloatNear(0.0f, kTol), 1.0f));  // exactly 1: 0 * log 0 = 0
}

TEST(EntropyStrategy, AOneLabelTeacherIsCertain) {
  EXPECT_THAT(certainty("entropy", {3.0f, -2.0f}, 1, 2, 1), ElementsAre(1.0f, 1.0f));
}

TEST(EntropyStrategy, AsksForADeterministicPass) {
  EXPECT_EQ(registry().create_uncertainty("entropy", {"u", "", "/", 0})->samples(), 0u);
}

// Two passes that disagree, [0.75, 0.25] and [0.25, 0.75], average to uniform: certainty 0,
// although each pass alone has certainty 0.1887. That is MUKI's point.
TEST(McDropoutStrategy, DisagreeingPassesAverageToUncertainty) {
  EXPECT_THAT(certainty("mc_dropout", {kLn3, 0, 0, kLn3}, 2, 1, 2), ElementsAre(FloatNear(0.0f, kTol)));
  EXPECT_THAT(certainty("mc_dropout", {kLn3, 0, kLn3, 0}, 2, 1, 2),
              ElementsAre(FloatNear(0.1887219f, kTol)));
}

TEST(McDropoutStrategy, SamplesComeFromOptions) {
  EXPECT_EQ(registry().create_uncertainty("mc_dropout", {"u", "", "/", 0})->samples(), 16u);
  EXPECT_EQ(registry().create_uncertainty("mc_dropout", {"u", "samples = 4", "/", 0})->samples(), 4u);
}

// Teacher A: softmax([ln 3, 0]) = [0.75, 0.25] on union {0, 1}; teacher B: softmax([0, ln 4]) =
// [0.2, 0.8] on union {2, 3}. Certainties 0.9 and 0.2.
const T kA{{kLn3, 0.0f}, {0.9f}, {0, 1}};
const T kB{{0.0f, kLn4}, {0.2f}, {2, 3}};

TEST(MaxIntegration, PicksTheMostCertainTeacherWithExactZeros) {
  const auto r = integrate("max", {kA, kB}, 4);
  EXPECT_THAT(r.target, ElementsAre(FloatNear(0.75f, kTol), FloatNear(0.25f, kTol), 0.0f, 0.0f));
  EXPECT_THAT(r.weight, ElementsAre(FloatNear(0.7f + 1e-6f, kTol)));  // |0.9 - 0.2| + 1e-6
}

TEST(MaxIntegration, TiesGoToTheLowestIndexAndWeighAlmostNothing) {
  const T a{kA.logits, {0.5f}, kA.map}, b{kB.logits, {0.5f}, kB.map};
  const auto r = integrate("max", {a, b}, 4);
  EXPECT_THAT(r.target, ElementsAre(FloatNear(0.75f, kTol), FloatNear(0.25f, kTol), 0.0f, 0.0f));
  EXPECT_THAT(r.weight, ElementsAre(FloatNear(1e-6f, 1e-9f)));
  const auto swapped = integrate("max", {b, a}, 4);  // now B is teacher 0
  EXPECT_THAT(swapped.target, ElementsAre(0.0f, 0.0f, FloatNear(0.2f, kTol), FloatNear(0.8f, kTol)));
}

TEST(MaxIntegration, TemperatureSoftensTheTarget) {
  // softmax([ln 3, 0] / 2) = [sqrt 3, 1] / (sqrt 3 + 1) = [0.6339746, 0.3660254]
  const auto r = integrate("max", {kA, kB}, 4, "temperature = 2.0\nmargin_reweighting = false");
  EXPECT_THAT(r.target,
              ElementsAre(FloatNear(0.6339746f, kTol), FloatNear(0.3660254f, kTol), 0.0f, 0.0f));
  EXPECT_THAT(r.weight, ElementsAre(1.0f));
}

// w = softmax([0.9, 0.2] / 0.2) = [1 / (1 + e^-3.5), ...] = [0.9706878, 0.0293122];
// target = [0.75 w_A, 0.25 w_A, 0.2 w_B, 0.8 w_B].
TEST(WeightedIntegration, SoftmaxOverCertaintiesWithTau) {
  const auto r = integrate("weighted", {kA, kB}, 4);
  EXPECT_THAT(r.target, ElementsAre(FloatNear(0.7280158f, kTol), FloatNear(0.2426719f, kTol),
                                    FloatNear(0.0058624f, kTol), FloatNear(0.0234498f, kTol)));
  EXPECT_THAT(r.weight, ElementsAre(FloatNear(0.7f + 1e-6f, kTol)));
}

TEST(WeightedIntegration, IdenticalScoresAverageTheTeachers) {
  const T a{kA.logits, {0.3f}, kA.map}, b{kB.logits, {0.3f}, kB.map};
  const auto r = integrate("weighted", {a, b}, 4, "margin_reweighting = false");
  EXPECT_THAT(r.target, ElementsAre(FloatNear(0.375f, kTol), FloatNear(0.125f, kTol),
                                    FloatNear(0.1f, kTol), FloatNear(0.4f, kTol)));
  EXPECT_THAT(r.weight, ElementsAre(1.0f));
}

TEST(WeightedIntegration, OverlappingLabelsAreMerged) {
  // B's first label is the same union label as A's second.
  const T a{kA.logits, {0.3f}, {0, 1}}, b{kB.logits, {0.3f}, {1, 2}};
  const auto r = integrate("weighted", {a, b}, 3, "margin_reweighting = false");
  EXPECT_THAT(r.target, ElementsAre(FloatNear(0.375f, kTol), FloatNear(0.225f, kTol),
                                    FloatNear(0.4f, kTol)));
}

TEST(MukiIntegration, MarginUsesTheTopTwoOfThreeTeachers) {
  const T a{kA.logits, {0.1f}, {0, 1}}, b{kB.logits, {0.8f}, {2, 3}}, c{{0.0f}, {0.6f}, {4}};
  const auto r = integrate("max", {a, b, c}, 5);
  EXPECT_THAT(r.target, ElementsAre(0.0f, 0.0f, FloatNear(0.2f, kTol), FloatNear(0.8f, kTol), 0.0f));
  EXPECT_THAT(r.weight, ElementsAre(FloatNear(0.2f + 1e-6f, kTol)));  // |0.8 - 0.6| + 1e-6
}

TEST(MukiIntegration, SingleTeacher) {
  const auto r = integrate("weighted", {kA}, 2, "margin_reweighting = false");
  EXPECT_THAT(r.target, ElementsAre(FloatNear(0.75f, kTol), FloatNear(0.25f, kTol)));
  EXPECT_THAT(r.weight, ElementsAre(1.0f));
  try {
    integrate("max", {kA}, 2);
    FAIL() << "expected PluginError";
  } catch (const PluginError& e) {
    EXPECT_THAT(e.what(), HasSubstr("margin re-weighting needs at least two teachers"));
  }
}

TEST(MukiIntegration, BatchRowsAreIndependent) {
  // Two examples: A is more certain on the first, B on the second.
  const T a{{kLn3, 0.0f, 0.0f, kLn3}, {0.9f, 0.1f}, {0, 1}};
  const T b{{0.0f, kLn4, kLn4, 0.0f}, {0.2f, 0.6f}, {2, 3}};
  const auto r = integrate("max", {a, b}, 4);
  EXPECT_THAT(r.target, ElementsAre(FloatNear(0.75f, kTol), FloatNear(0.25f, kTol), 0.0f, 0.0f,
                                    0.0f, 0.0f, FloatNear(0.8f, kTol), FloatNear(0.2f, kTol)));
  EXPECT_THAT(r.weight, ElementsAre(FloatNear(0.7f + 1e-6f, kTol), FloatNear(0.5f + 1e-6f, kTol)));
}

TEST(MukiIntegration, LabelMapOutsideTheUnionIsRefused) {
  const T bad{kA.logits, {0.5f}, {0, 7}};
  try {
    integrate("max", {bad, kB}, 4);
    FAIL() << "expected PluginError";
  } catch (const PluginError& e) {
    EXPECT_THAT(e.what(), HasSubstr("teacher 0's label map points outside the union"));
  }
}
