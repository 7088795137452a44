// Golden values for the built-in strategies, computed by hand (see each comment) and checked
// through the C boundary exactly as the host calls them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <muki/registry/registry.h>

#include "../test_support.h"

using muki::registry::CreateArgs;
using muki::registry::IntegrationInstance;
using muki::registry::Kind;
using muki::registry::ParamInfo;
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

std::unique_ptr<IntegrationInstance> integration(const std::string& strategy,
                                                 const std::string& options = "") {
  return registry().create_integration(strategy, CreateArgs{"i", options, "/", 0});
}

// gold: B union indices, or empty for none.
Integrated integrate(const std::string& strategy, const std::vector<T>& teachers,
                     int64_t union_size, const std::string& options = "",
                     const std::vector<int64_t>& gold = {}) {
  auto s = integration(strategy, options);
  std::vector<TeacherOutputsView> views;
  for (const auto& t : teachers) views.push_back({t.logits.data(), t.scores.data(), &t.map});
  const int64_t b = static_cast<int64_t>(teachers[0].scores.size());
  Integrated out{std::vector<float>(static_cast<size_t>(b * union_size), -1.0f),
                 std::vector<float>(static_cast<size_t>(b), -1.0f)};
  s->integrate(views, b, union_size, gold.empty() ? nullptr : gold.data(), out.target.data(),
               out.weight.data());
  return out;
}

// The message of the PluginError that integrate() throws, or "(no error)".
std::string integrate_error(const std::string& strategy, const std::vector<T>& teachers,
                            int64_t union_size, const std::string& options = "",
                            const std::vector<int64_t>& gold = {}) {
  try {
    integrate(strategy, teachers, union_size, options, gold);
  } catch (const PluginError& e) {
    return e.what();
  }
  return "(no error)";
}

const ParamInfo& param(Kind kind, const std::string& plugin, const std::string& name) {
  const auto* info = registry().find(kind, plugin);
  if (info == nullptr) throw std::runtime_error(plugin + " is not loaded");
  const ParamInfo* p = info->find_param(name);
  if (p == nullptr) throw std::runtime_error(plugin + " has no parameter " + name);
  return *p;
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

// ---------------------------------------------------------------------------------------------
// bald: certainty = 1 - [H(mean_k p_k) - mean_k H(p_k)] / log C
// ---------------------------------------------------------------------------------------------

// Two identical passes [0.75, 0.25]: H(mean) = H(p_k), so MI = 0 and the certainty is 1, although
// each pass alone is unsure (entropy certainty 0.1887219).
TEST(BaldStrategy, IdenticalPassesAreFullyCertain) {
  EXPECT_THAT(certainty("bald", {kLn3, 0, kLn3, 0}, 2, 1, 2), ElementsAre(FloatNear(1.0f, kTol)));
}

// Two uniform passes over 3 labels: MI = ln 3 - ln 3 = 0, certainty 1, where MUKI's total entropy
// gives 1 - ln 3 / ln 3 = 0. BALD only counts disagreement between the passes.
TEST(BaldStrategy, ConsistentlyUnsurePassesAreCertainUnlikeMcDropout) {
  const std::vector<float> uniform(2 * 3, 0.0f);
  EXPECT_THAT(certainty("bald", uniform, 2, 1, 3), ElementsAre(FloatNear(1.0f, kTol)));
  EXPECT_THAT(certainty("mc_dropout", uniform, 2, 1, 3), ElementsAre(FloatNear(0.0f, kTol)));
}

// [0.75, 0.25] and [0.25, 0.75]: mean = [0.5, 0.5], H(mean) = ln 2 = 0.6931472;
// H(p_k) = 0.75 ln(4/3) + 0.25 ln 4 = 0.2157616 + 0.3465736 = 0.5623351 for both;
// MI = 0.6931472 - 0.5623351 = 0.1308121; MI / ln 2 = 0.1887219; s = 0.8112781.
TEST(BaldStrategy, DisagreeingPasses) {
  EXPECT_THAT(certainty("bald", {kLn3, 0, 0, kLn3}, 2, 1, 2),
              ElementsAre(FloatNear(0.8112781f, kTol)));
}

// Confident passes that contradict each other, [1, 0] and [0, 1] (logits (0, -inf), (-inf, 0)):
// H(mean) = ln 2, H(p_k) = 0 (0 log 0 = 0), MI = ln 2, MI / ln 2 = 1: certainty 0.
TEST(BaldStrategy, ContradictingOneHotPassesAreFullyUncertain) {
  const float inf = INFINITY;
  EXPECT_THAT(certainty("bald", {0, -inf, -inf, 0}, 2, 1, 2), ElementsAre(FloatNear(0.0f, kTol)));
}

// p_1 = softmax(ln 3, 0, 0) = (3/5, 1/5, 1/5), p_2 = softmax(0, ln 3, 0) = (1/5, 3/5, 1/5);
// mean = (2/5, 2/5, 1/5): H(mean) = 0.8 ln 2.5 + 0.2 ln 5 = 0.7330326 + 0.3218876 = 1.0549202;
// H(p_k) = 0.6 ln(5/3) + 0.4 ln 5 = 0.3064954 + 0.6437752 = 0.9502705;
// MI = 0.1046497; MI / ln 3 = 0.1046497 / 1.0986123 = 0.0952562; s = 0.9047438.
TEST(BaldStrategy, ThreeLabels) {
  EXPECT_THAT(certainty("bald", {kLn3, 0, 0, 0, kLn3, 0}, 2, 1, 3),
              ElementsAre(FloatNear(0.9047438f, kTol)));
}

// Layout [K, B, C]: example 0 gets [0.75, 0.25] twice (s = 1), example 1 gets [0.75, 0.25] then
// [0.25, 0.75] (s = 0.8112781, as above).
TEST(BaldStrategy, BatchRowsAreIndependent) {
  EXPECT_THAT(certainty("bald", {kLn3, 0, kLn3, 0, /* pass 2 */ kLn3, 0, 0, kLn3}, 2, 2, 2),
              ElementsAre(FloatNear(1.0f, kTol), FloatNear(0.8112781f, kTol)));
}

TEST(BaldStrategy, AOneLabelTeacherIsCertain) {
  EXPECT_THAT(certainty("bald", {3.0f, -2.0f}, 2, 1, 1), ElementsAre(1.0f));
}

TEST(BaldStrategy, OnePassIsRefused) {
  try {
    certainty("bald", {kLn3, 0}, 1, 1, 2);
    FAIL() << "expected PluginError";
  } catch (const PluginError& e) {
    EXPECT_THAT(e.what(), HasSubstr("bald needs at least 2 stochastic passes (got K = 1)"));
  }
}

TEST(BaldStrategy, SamplesAndSchema) {
  EXPECT_EQ(registry().create_uncertainty("bald", {"u", "", "/", 0})->samples(), 16u);
  EXPECT_EQ(registry().create_uncertainty("bald", {"u", "samples = 4", "/", 0})->samples(), 4u);
  const ParamInfo& p = param(Kind::Uncertainty, "bald", "samples");
  EXPECT_EQ(p.type, MUKI_PARAM_INT);
  EXPECT_EQ(*p.default_value, "16");
  EXPECT_EQ(*p.min_value, 2.0);
  EXPECT_EQ(*p.max_value, 4096.0);
  EXPECT_FALSE(p.doc.empty());
  EXPECT_EQ(registry().find(Kind::Uncertainty, "bald")->params.size(), 1u);
}

// ---------------------------------------------------------------------------------------------
// energy: s = mean_k T * logsumexp(z_k / T) [- T log C]
// ---------------------------------------------------------------------------------------------

// z = (0, ln 3): logsumexp = ln(1 + 3) = ln 4 = 1.3862944; normalised: ln 4 - ln 2 = ln 2 = 0.6931472.
TEST(EnergyStrategy, LogSumExpOfOnePass) {
  EXPECT_THAT(certainty("energy", {0, kLn3}, 1, 1, 2), ElementsAre(FloatNear(0.6931472f, kTol)));
  EXPECT_THAT(certainty("energy", {0, kLn3}, 1, 1, 2, "normalize = false"),
              ElementsAre(FloatNear(1.3862944f, kTol)));
}

// All-zero logits: logsumexp = ln C (ln 3 = 1.0986123, ln 4 = 1.3862944) grows with the label
// count alone; normalised, both teachers score 0.
TEST(EnergyStrategy, NormalisingMakesLabelCountsComparable) {
  EXPECT_THAT(certainty("energy", {0, 0, 0}, 1, 1, 3), ElementsAre(FloatNear(0.0f, kTol)));
  EXPECT_THAT(certainty("energy", {0, 0, 0, 0}, 1, 1, 4), ElementsAre(FloatNear(0.0f, kTol)));
  EXPECT_THAT(certainty("energy", {0, 0, 0}, 1, 1, 3, "normalize = false"),
              ElementsAre(FloatNear(1.0986123f, kTol)));
  EXPECT_THAT(certainty("energy", {0, 0, 0, 0}, 1, 1, 4, "normalize = false"),
              ElementsAre(FloatNear(1.3862944f, kTol)));
}

// z = (0, 2 ln 3), T = 2: z / T = (0, ln 3), T * logsumexp = 2 ln 4 = 2.7725887;
// normalised: 2 ln 4 - 2 ln 2 = 2 ln 2 = 1.3862944.
TEST(EnergyStrategy, Temperature) {
  const float z[2] = {0.0f, 2.0f * kLn3};
  EXPECT_THAT(certainty("energy", {z[0], z[1]}, 1, 1, 2, "temperature = 2.0"),
              ElementsAre(FloatNear(1.3862944f, kTol)));
  EXPECT_THAT(certainty("energy", {z[0], z[1]}, 1, 1, 2, "temperature = 2.0\nnormalize = false"),
              ElementsAre(FloatNear(2.7725887f, kTol)));
}

// Two passes: (0, ln 3) -> ln 4 - ln 2 = ln 2; (ln 7, 0) -> ln 8 - ln 2 = ln 4 = 2 ln 2;
// mean = 1.5 ln 2 = 1.0397208.
TEST(EnergyStrategy, AveragesThePasses) {
  EXPECT_THAT(certainty("energy", {0, kLn3, std::log(7.0f), 0}, 2, 1, 2, "samples = 2"),
              ElementsAre(FloatNear(1.0397208f, kTol)));
}

// (1000, 1000): 1000 + ln 2 - ln 2 = 1000; exp(1000) alone would overflow to inf. The tolerance
// is 1e-7 relative (a float ulp at 1000 is 6.1e-5).
TEST(EnergyStrategy, LargeLogitsAreStable) {
  EXPECT_THAT(certainty("energy", {1000.0f, 1000.0f}, 1, 1, 2),
              ElementsAre(FloatNear(1000.0f, 1e-4f)));
}

// (0, -inf): logsumexp = ln(1 + 0) = 0; normalised -ln 2 = -0.6931472: energy is unbounded and
// may be negative. One label (5): logsumexp = 5, log 1 = 0, so 5 either way.
TEST(EnergyStrategy, UnboundedAndOneLabel) {
  EXPECT_THAT(certainty("energy", {0, -INFINITY}, 1, 1, 2),
              ElementsAre(FloatNear(-0.6931472f, kTol)));
  EXPECT_THAT(certainty("energy", {5.0f, -3.0f}, 1, 2, 1),
              ElementsAre(FloatNear(5.0f, kTol), FloatNear(-3.0f, kTol)));
}

TEST(EnergyStrategy, SamplesAndSchema) {
  EXPECT_EQ(registry().create_uncertainty("energy", {"u", "", "/", 0})->samples(), 0u);
  EXPECT_EQ(registry().create_uncertainty("energy", {"u", "samples = 8", "/", 0})->samples(), 8u);
  const ParamInfo& k = param(Kind::Uncertainty, "energy", "samples");
  EXPECT_EQ(k.type, MUKI_PARAM_INT);
  EXPECT_EQ(*k.default_value, "0");
  EXPECT_EQ(*k.min_value, 0.0);
  EXPECT_EQ(*k.max_value, 4096.0);
  const ParamInfo& t = param(Kind::Uncertainty, "energy", "temperature");
  EXPECT_EQ(t.type, MUKI_PARAM_FLOAT);
  EXPECT_EQ(*t.default_value, "1.0");
  EXPECT_EQ(*t.min_value, 1e-3);
  EXPECT_EQ(*t.max_value, 1e3);
  const ParamInfo& n = param(Kind::Uncertainty, "energy", "normalize");
  EXPECT_EQ(n.type, MUKI_PARAM_BOOL);
  EXPECT_EQ(*n.default_value, "true");
  EXPECT_FALSE(n.min_value.has_value());
  EXPECT_THAT(registry().find(Kind::Uncertainty, "energy")->description, HasSubstr("UNBOUNDED"));
}

// ---------------------------------------------------------------------------------------------
// concat (vanilla KD): target = softmax(concat_i z_i / T), weight T^2
// ---------------------------------------------------------------------------------------------

// A (ln 3, 0) and B (0, ln 4) side by side: exp = (3, 1, 1, 4), sum 9 ->
// (1/3, 1/9, 1/9, 4/9) = (0.3333333, 0.1111111, 0.1111111, 0.4444444); weight T^2 = 1.
// Unlike the zero-padded q_i, the teachers' logit scales compete in one softmax.
TEST(ConcatIntegration, OneSoftmaxOverTheConcatenatedLogits) {
  const auto r = integrate("concat", {kA, kB}, 4);
  EXPECT_THAT(r.target, ElementsAre(FloatNear(0.3333333f, kTol), FloatNear(0.1111111f, kTol),
                                    FloatNear(0.1111111f, kTol), FloatNear(0.4444444f, kTol)));
  EXPECT_THAT(r.weight, ElementsAre(FloatNear(1.0f, kTol)));
}

// The certainty scores play no part: swapping 0.9 / 0.2 for 0.1 / 0.8, or making them identical,
// changes nothing.
TEST(ConcatIntegration, IgnoresTheScores) {
  const T a{kA.logits, {0.1f}, kA.map}, b{kB.logits, {0.8f}, kB.map};
  const T a_same{kA.logits, {0.5f}, kA.map}, b_same{kB.logits, {0.5f}, kB.map};
  const auto reference = integrate("concat", {kA, kB}, 4).target;
  EXPECT_EQ(integrate("concat", {a, b}, 4).target, reference);
  EXPECT_EQ(integrate("concat", {a_same, b_same}, 4).target, reference);
}

// T = 2: concat / 2 = (ln 3 / 2, 0, 0, ln 4 / 2), exp = (sqrt 3, 1, 1, 2), sum = 4 + sqrt 3 =
// 5.7320508 -> (0.3021695, 0.1744576, 0.1744576, 0.3489153); weight T^2 = 4.
TEST(ConcatIntegration, TemperatureSoftensAndWeighsTSquared) {
  const auto r = integrate("concat", {kA, kB}, 4, "temperature = 2.0");
  EXPECT_THAT(r.target, ElementsAre(FloatNear(0.3021695f, kTol), FloatNear(0.1744576f, kTol),
                                    FloatNear(0.1744576f, kTol), FloatNear(0.3489153f, kTol)));
  EXPECT_THAT(r.weight, ElementsAre(FloatNear(4.0f, kTol)));
}

// B's first label is A's second (union index 1): (1/3, 1/9 + 1/9, 4/9) = (0.3333333, 0.2222222,
// 0.4444444), still summing to 1.
TEST(ConcatIntegration, OverlappingLabelsAddUp) {
  const T b{kB.logits, {0.2f}, {1, 2}};
  const auto r = integrate("concat", {kA, b}, 3);
  EXPECT_THAT(r.target, ElementsAre(FloatNear(0.3333333f, kTol), FloatNear(0.2222222f, kTol),
                                    FloatNear(0.4444444f, kTol)));
}

// DFA and CFL train on vanilla KD's targets; what they add is a feature objective for the host.
TEST(FeatureKdIntegration, ConcatTargetsPlusAFeatureObjective) {
  const auto concat = integrate("concat", {kA, kB}, 4, "temperature = 2.0");
  for (const auto& [name, objective] : {std::pair{"dfa", MUKI_FEATURE_OBJECTIVE_DFA},
                                        std::pair{"cfl", MUKI_FEATURE_OBJECTIVE_CFL}}) {
    SCOPED_TRACE(name);
    const auto r = integrate(name, {kA, kB}, 4, "temperature = 2.0");
    EXPECT_EQ(r.target, concat.target);
    EXPECT_EQ(r.weight, concat.weight);
    auto instance = integration(name, "feature_weight = 0.5");
    EXPECT_EQ(instance->feature_objective(), objective);
    EXPECT_FLOAT_EQ(instance->feature_weight(), 0.5f);
    EXPECT_TRUE(instance->ignores_scores());
    EXPECT_FLOAT_EQ(integration(name, "")->feature_weight(), 1.0f);
  }
  EXPECT_EQ(integration("concat", "")->feature_objective(), MUKI_FEATURE_OBJECTIVE_NONE);
}

// Union of 5; index 2 belongs to no teacher; B's first logit is -inf. exp = (3, 1 | 0, 4), sum 8
// -> (3/8, 1/8, 0, 0, 4/8) with exact zeros at 2 (no owner) and 3 (exp(-inf) = 0).
TEST(ConcatIntegration, ExactZeros) {
  const T b{{-INFINITY, kLn4}, {0.2f}, {3, 4}};
  const auto r = integrate("concat", {kA, b}, 5);
  EXPECT_THAT(r.target, ElementsAre(FloatNear(0.375f, kTol), FloatNear(0.125f, kTol), 0.0f, 0.0f,
                                    FloatNear(0.5f, kTol)));
}

// One teacher: its own softmax (0.75, 0.25).
TEST(ConcatIntegration, SingleTeacher) {
  const auto r = integrate("concat", {kA}, 2);
  EXPECT_THAT(r.target, ElementsAre(FloatNear(0.75f, kTol), FloatNear(0.25f, kTol)));
  EXPECT_THAT(r.weight, ElementsAre(FloatNear(1.0f, kTol)));
}

TEST(ConcatIntegration, Describe) {
  EXPECT_EQ(integration("concat")->loss(), MUKI_LOSS_KL_UNION);
  EXPECT_EQ(integration("concat")->student_temperature(), 1.0f);
  EXPECT_EQ(integration("concat", "temperature = 2.5")->student_temperature(), 2.5f);
  EXPECT_FALSE(integration("concat")->needs_gold());
  EXPECT_TRUE(integration("concat")->ignores_scores());
  const ParamInfo& t = param(Kind::Integration, "concat", "temperature");
  EXPECT_EQ(t.type, MUKI_PARAM_FLOAT);
  EXPECT_EQ(*t.default_value, "1.0");
  EXPECT_EQ(*t.min_value, 1e-3);
  EXPECT_EQ(*t.max_value, 1e3);
  EXPECT_EQ(registry().find(Kind::Integration, "concat")->params.size(), 1u);
}

// ---------------------------------------------------------------------------------------------
// uhc: target = softmax(z_i / T) in each teacher's own block, weight T^2, KL per teacher
// ---------------------------------------------------------------------------------------------

// A: (0.75, 0.25); B: softmax(0, ln 4) = (1, 4) / 5 = (0.2, 0.8). Each block sums to 1.
TEST(UhcIntegration, EachTeacherInItsOwnBlock) {
  const auto r = integrate("uhc", {kA, kB}, 4);
  EXPECT_THAT(r.target, ElementsAre(FloatNear(0.75f, kTol), FloatNear(0.25f, kTol),
                                    FloatNear(0.2f, kTol), FloatNear(0.8f, kTol)));
  EXPECT_THAT(r.weight, ElementsAre(FloatNear(1.0f, kTol)));
}

// T = 2: A: (sqrt 3, 1) / (sqrt 3 + 1) = (0.6339746, 0.3660254); B: (0, ln 4) / 2 = (0, ln 2) ->
// (1, 2) / 3 = (0.3333333, 0.6666667); weight T^2 = 4.
TEST(UhcIntegration, TemperatureSoftensAndWeighsTSquared) {
  const auto r = integrate("uhc", {kA, kB}, 4, "temperature = 2.0");
  EXPECT_THAT(r.target, ElementsAre(FloatNear(0.6339746f, kTol), FloatNear(0.3660254f, kTol),
                                    FloatNear(0.3333333f, kTol), FloatNear(0.6666667f, kTol)));
  EXPECT_THAT(r.weight, ElementsAre(FloatNear(4.0f, kTol)));
}

// Union index 2 belongs to nobody: exactly 0. Identical scores change nothing (uhc ignores them).
TEST(UhcIntegration, ExactZeroOutsideEveryBlockAndScoresIgnored) {
  const T a{kA.logits, {0.5f}, {0, 1}}, b{kB.logits, {0.5f}, {3, 4}};
  const auto r = integrate("uhc", {a, b}, 5);
  EXPECT_THAT(r.target, ElementsAre(FloatNear(0.75f, kTol), FloatNear(0.25f, kTol), 0.0f,
                                    FloatNear(0.2f, kTol), FloatNear(0.8f, kTol)));
}

TEST(UhcIntegration, SingleTeacher) {
  const auto r = integrate("uhc", {kA}, 2);
  EXPECT_THAT(r.target, ElementsAre(FloatNear(0.75f, kTol), FloatNear(0.25f, kTol)));
  EXPECT_THAT(r.weight, ElementsAre(FloatNear(1.0f, kTol)));
}

TEST(UhcIntegration, OverlappingLabelSetsAreRefused) {
  const T b{kB.logits, {0.2f}, {1, 2}};  // B's first label is A's second
  const std::string message = integrate_error("uhc", {kA, b}, 3);
  EXPECT_THAT(message, HasSubstr("label sets overlap"));
  EXPECT_THAT(message, HasSubstr("teachers 0 and 1 both map a label to union index 1"));
  EXPECT_THAT(message, HasSubstr("use concat, max or weighted"));
  const T twice{kA.logits, {0.2f}, {0, 0}};
  EXPECT_THAT(integrate_error("uhc", {twice}, 1),
              HasSubstr("teacher 0 maps two labels to union index 0"));
}

TEST(UhcIntegration, Describe) {
  EXPECT_EQ(integration("uhc")->loss(), MUKI_LOSS_KL_PER_TEACHER);
  EXPECT_EQ(integration("uhc")->student_temperature(), 1.0f);
  EXPECT_EQ(integration("uhc", "temperature = 3")->student_temperature(), 3.0f);
  EXPECT_FALSE(integration("uhc")->needs_gold());
  EXPECT_TRUE(integration("uhc")->ignores_scores());
  EXPECT_EQ(*param(Kind::Integration, "uhc", "temperature").default_value, "1.0");
  EXPECT_EQ(registry().find(Kind::Integration, "uhc")->params.size(), 1u);
}

// ---------------------------------------------------------------------------------------------
// oracle: the teacher that owns the gold label provides q_i; weight 1
// ---------------------------------------------------------------------------------------------

// Two examples; A is the more certain teacher on both (0.9 > 0.2), but the gold labels are
// union 2 (B's) and union 1 (A's): rows are B's (0, 0, 0.2, 0.8) and A's (0.75, 0.25, 0, 0).
TEST(OracleIntegration, TheGoldLabelsOwnerWinsWhateverTheScores) {
  const T a{{kLn3, 0.0f, kLn3, 0.0f}, {0.9f, 0.9f}, {0, 1}};
  const T b{{0.0f, kLn4, 0.0f, kLn4}, {0.2f, 0.2f}, {2, 3}};
  const auto r = integrate("oracle", {a, b}, 4, "", {2, 1});
  EXPECT_THAT(r.target, ElementsAre(0.0f, 0.0f, FloatNear(0.2f, kTol), FloatNear(0.8f, kTol),
                                    FloatNear(0.75f, kTol), FloatNear(0.25f, kTol), 0.0f, 0.0f));
  EXPECT_THAT(r.weight, ElementsAre(1.0f, 1.0f));
}

// Union index 1 belongs to both A {0, 1} and B {1, 2}. Scores 0.3 / 0.7: B, (0, 0.2, 0.8).
// Identical scores 0.5 / 0.5: the lowest index, A, (0.75, 0.25, 0).
TEST(OracleIntegration, ASharedGoldLabelGoesToTheMostCertainOwnerTiesLowestIndex) {
  const T a{kA.logits, {0.3f}, {0, 1}}, b{kB.logits, {0.7f}, {1, 2}};
  EXPECT_THAT(integrate("oracle", {a, b}, 3, "", {1}).target,
              ElementsAre(0.0f, FloatNear(0.2f, kTol), FloatNear(0.8f, kTol)));
  const T a_tie{kA.logits, {0.5f}, {0, 1}}, b_tie{kB.logits, {0.5f}, {1, 2}};
  EXPECT_THAT(integrate("oracle", {a_tie, b_tie}, 3, "", {1}).target,
              ElementsAre(FloatNear(0.75f, kTol), FloatNear(0.25f, kTol), 0.0f));
}

// T = 2: A's softmax([ln 3, 0] / 2) = (0.6339746, 0.3660254); weight stays 1 (no T^2).
TEST(OracleIntegration, TemperatureAndSingleTeacher) {
  const auto r = integrate("oracle", {kA}, 2, "temperature = 2.0", {0});
  EXPECT_THAT(r.target, ElementsAre(FloatNear(0.6339746f, kTol), FloatNear(0.3660254f, kTol)));
  EXPECT_THAT(r.weight, ElementsAre(1.0f));
}

// Union of 5: A owns {0, 1}, B {2, 3}; the second example's gold label 4 is nobody's.
TEST(OracleIntegration, AGoldLabelNoTeacherOwnsIsRefused) {
  const T a{{kLn3, 0.0f, kLn3, 0.0f}, {0.9f, 0.9f}, {0, 1}};
  const T b{{0.0f, kLn4, 0.0f, kLn4}, {0.2f, 0.2f}, {2, 3}};
  EXPECT_THAT(integrate_error("oracle", {a, b}, 5, "", {0, 4}),
              HasSubstr("oracle: no teacher owns the gold label of example 1 (union index 4)"));
  EXPECT_THAT(integrate_error("oracle", {a, b}, 5, "", {0, 5}),
              HasSubstr("the gold label of example 1 is union index 5, outside the union of 5"));
}

TEST(OracleIntegration, WithoutGoldLabelsIsRefused) {
  EXPECT_THAT(integrate_error("oracle", {kA, kB}, 4), HasSubstr("needs gold labels"));
}

TEST(OracleIntegration, Describe) {
  EXPECT_TRUE(integration("oracle")->needs_gold());
  EXPECT_FALSE(integration("oracle")->ignores_scores());  // a label two teachers share: the more certain
  EXPECT_EQ(integration("oracle")->loss(), MUKI_LOSS_KL_UNION);
  EXPECT_EQ(integration("oracle")->student_temperature(), 1.0f);
  EXPECT_EQ(integration("oracle", "temperature = 2.0")->student_temperature(), 2.0f);
  const ParamInfo& t = param(Kind::Integration, "oracle", "temperature");
  EXPECT_EQ(t.type, MUKI_PARAM_FLOAT);
  EXPECT_EQ(*t.default_value, "1.0");
  EXPECT_EQ(registry().find(Kind::Integration, "oracle")->params.size(), 1u);
}

// ---------------------------------------------------------------------------------------------
// gold: one-hot on the gold label, weight 1
// ---------------------------------------------------------------------------------------------

// Gold (3, 0) over a union of 4: rows (0, 0, 0, 1) and (1, 0, 0, 0) exactly, whatever the
// teachers say.
TEST(GoldIntegration, OneHotGoldLabels) {
  const T a{{kLn3, 0.0f, kLn3, 0.0f}, {0.9f, 0.9f}, {0, 1}};
  const T b{{0.0f, kLn4, 0.0f, kLn4}, {0.2f, 0.2f}, {2, 3}};
  const auto r = integrate("gold", {a, b}, 4, "", {3, 0});
  EXPECT_THAT(r.target, ElementsAre(0.0f, 0.0f, 0.0f, 1.0f, 1.0f, 0.0f, 0.0f, 0.0f));
  EXPECT_THAT(r.weight, ElementsAre(1.0f, 1.0f));
}

TEST(GoldIntegration, RefusesMissingOrOutOfRangeGold) {
  EXPECT_THAT(integrate_error("gold", {kA, kB}, 4), HasSubstr("needs gold labels"));
  EXPECT_THAT(integrate_error("gold", {kA, kB}, 4, "", {-1}),
              HasSubstr("gold: the gold label of example 0 is union index -1, outside the union "
                        "of 4 labels"));
}

TEST(GoldIntegration, Describe) {
  EXPECT_TRUE(integration("gold")->needs_gold());
  EXPECT_TRUE(integration("gold")->ignores_scores());
  EXPECT_EQ(integration("gold")->loss(), MUKI_LOSS_KL_UNION);
  EXPECT_EQ(integration("gold")->student_temperature(), 1.0f);
  const auto* info = registry().find(Kind::Integration, "gold");
  ASSERT_NE(info, nullptr);
  EXPECT_TRUE(info->params.empty());
  EXPECT_EQ(info->description,
            "supervised upper bound: one-hot gold labels (needs labels on the transfer set)");
}

// The MUKI strategies: KL over the union, no gold; the student is softened with the teachers' T
// (MUKI step 5: softmax(z_s / T), T = 1 by default).
TEST(MukiIntegration, Describe) {
  for (const char* name : {"max", "weighted"}) {
    EXPECT_EQ(integration(name)->loss(), MUKI_LOSS_KL_UNION) << name;
    EXPECT_EQ(integration(name)->student_temperature(), 1.0f) << name;
    EXPECT_EQ(integration(name, "temperature = 2.0")->student_temperature(), 2.0f) << name;
    EXPECT_FALSE(integration(name)->needs_gold()) << name;
    EXPECT_FALSE(integration(name)->ignores_scores()) << name;
  }
}

// Every built-in plugin says what it does in one line.
TEST(BuiltinStrategies, EveryPluginIsDescribed) {
  for (const auto* p : registry().list()) {
    if (p->library_name != "muki-uncertainty-builtin" &&
        p->library_name != "muki-integration-builtin")
      continue;
    EXPECT_FALSE(p->description.empty()) << p->name;
    EXPECT_EQ(p->description.find('\n'), std::string::npos) << p->name;
    for (const auto& q : p->params) EXPECT_FALSE(q.doc.empty()) << p->name << "." << q.name;
  }
  EXPECT_EQ(registry().names(Kind::Uncertainty),
            (std::vector<std::string>{"bald", "density_ratio", "energy", "entropy", "knn",
                                      "mahalanobis", "mc_dropout", "relative_mahalanobis"}));
  EXPECT_EQ(registry().names(Kind::Integration),
            (std::vector<std::string>{"cfl", "concat", "dfa", "gold", "max", "oracle", "uhc", "weighted"}));
}

// ---- Feature-space certainty (ABI 1.1): fitted per teacher on reference data ----

namespace {

// Fits `strategy` for teacher 0 on reference features [n, h] (labels, or nullptr = argmax of
// zero logits = label 0 everywhere) and scores features [b, h] of one deterministic pass.
// A strategy that needs_background() gets `background` [m, h] as the transfer set's features.
std::vector<float> feature_certainty(const std::string& strategy, const std::string& options,
                                     const std::vector<float>& reference, int64_t h,
                                     const std::vector<int64_t>& labels,
                                     const std::vector<float>& queries, int64_t c = 2,
                                     const std::vector<float>& background = {}) {
  auto s = registry().create_uncertainty(strategy, CreateArgs{"u", options, "/", 0});
  EXPECT_TRUE(s->needs_features());
  EXPECT_TRUE(s->needs_reference());
  EXPECT_EQ(s->needs_background(), !background.empty());
  const int64_t n = static_cast<int64_t>(reference.size()) / h;
  const std::vector<float> ref_logits(static_cast<size_t>(n * c), 0.0f);
  s->fit({0, "t", ref_logits.data(), n, c, reference.data(), h,
          labels.empty() ? nullptr : labels.data(), background.empty() ? nullptr : background.data(),
          static_cast<int64_t>(background.size()) / h});
  const int64_t b = static_cast<int64_t>(queries.size()) / h;
  const std::vector<float> logits(static_cast<size_t>(b * c), 0.0f);
  std::vector<float> out(static_cast<size_t>(b));
  s->score(0, logits.data(), 1, b, c, queries.data(), h, out.data());
  return out;
}

// Class 0 at (0,0),(2,0), class 1 at (0,2),(2,2): means (1,0) and (1,2); the residuals are
// (+-1, 0), so Sigma = [[1,0],[0,0]]. Shrinkage 0.1: tr/H = 0.5, S = 0.9 Sigma + 0.05 I =
// diag(0.95, 0.05). (1,1) is 1 away from both means along y: d2 = 1 / 0.05 = 20. (1,0) sits on
// mean 0: 0. (3,0) is 2 away along x: 4 / 0.95.
const std::vector<float> kSquare = {0, 0, 2, 0, 0, 2, 2, 2};
const std::vector<int64_t> kSquareLabels = {0, 0, 1, 1};

}  // namespace

TEST(MahalanobisStrategy, TiedShrunkCovarianceByHand) {
  const auto s = feature_certainty("mahalanobis", "calibrate = false", kSquare, 2, kSquareLabels,
                                   {1, 1, 1, 0, 3, 0});
  EXPECT_THAT(s, ElementsAre(FloatNear(-20.0f, 1e-4f), FloatNear(0.0f, 1e-6f),
                             FloatNear(-4.0f / 0.95f, 1e-5f)));
}

TEST(MahalanobisStrategy, WithoutLabelsTheTeachersPredictionsGroupTheRows) {
  // All-zero logits predict label 0 for every row: one mean (1,1), Sigma = I, S = I (shrinkage
  // keeps a scaled identity an identity). (1,1) -> 0; (3,1) -> 4.
  const auto s = feature_certainty("mahalanobis", "calibrate = false", kSquare, 2, {},
                                   {1, 1, 3, 1});
  EXPECT_THAT(s, ElementsAre(FloatNear(0.0f, 1e-6f), FloatNear(-4.0f, 1e-5f)));
}

// The class term as in TiedShrunkCovarianceByHand. The background (-1,1), (3,1), (1,-1), (1,3) has
// mean (1,1) and Sigma = diag(2, 2), so S = 0.9 Sigma + 0.1 (tr/H) I = 2 I: MD_0 = |x - (1,1)|^2 / 2.
// certainty = -min_c MD_c + MD_0: (1,1) -> -20 + 0; (1,0) -> 0 + 0.5; (3,0) -> -4/0.95 + 2.5.
TEST(RelativeMahalanobisStrategy, ClassDistanceMinusBackgroundDistanceByHand) {
  const std::vector<float> background = {-1, 1, 3, 1, 1, -1, 1, 3};
  const auto s = feature_certainty("relative_mahalanobis", "calibrate = false", kSquare, 2, kSquareLabels,
                                   {1, 1, 1, 0, 3, 0}, 2, background);
  EXPECT_THAT(s, ElementsAre(FloatNear(-20.0f, 1e-4f), FloatNear(0.5f, 1e-5f),
                             FloatNear(-4.0f / 0.95f + 2.5f, 1e-5f)));
}

// Two texts at the same class distance (1/0.95: (0,0) and (2,0) are 1 from class 0's mean (1,0)
// along x) are told apart by the background: with its mean at (3,1) (S = 2 I again), (2,0) lies
// where the transfer texts lie (MD_0 = 2/2) and is less typical of the teacher than (0,0)
// (MD_0 = 10/2). Plain Mahalanobis scores them alike.
TEST(RelativeMahalanobisStrategy, EqualClassDistancesAreRankedByTheBackground) {
  const std::vector<float> background = {1, 1, 5, 1, 3, -1, 3, 3};
  const auto s = feature_certainty("relative_mahalanobis", "calibrate = false", kSquare, 2, kSquareLabels,
                                   {0, 0, 2, 0}, 2, background);
  EXPECT_THAT(s, ElementsAre(FloatNear(-1.0f / 0.95f + 5.0f, 1e-5f), FloatNear(-1.0f / 0.95f + 1.0f, 1e-5f)));
  const auto plain = feature_certainty("mahalanobis", "calibrate = false", kSquare, 2, kSquareLabels, {0, 0, 2, 0});
  EXPECT_NEAR(plain[0], plain[1], 1e-5f);
}

// Both strategies fitted against the transfer set refuse a fit without it, naming the teacher.
TEST(BackgroundStrategies, RefuseToFitWithoutABackground) {
  for (const char* strategy : {"relative_mahalanobis", "density_ratio"}) {
    auto s = registry().create_uncertainty(strategy, CreateArgs{"u", "", "/", 0});
    const std::vector<float> logits(8, 0.0f);
    try {
      s->fit({0, "media", logits.data(), 4, 2, kSquare.data(), 2, kSquareLabels.data()});
      ADD_FAILURE() << strategy << ": expected PluginError";
    } catch (const PluginError& e) {
      EXPECT_THAT(e.what(), HasSubstr("needs the transfer set's features of teacher 'media' (a "
                                      "background), and got none"))
          << strategy;
    }
  }
}

// One feature: reference texts at 3, background at 1. Standardised on all four rows (mean 2,
// sd 1) they sit at z = +1 and -1, so by symmetry the bias is 0 and the loss is
// 1/2 log(1 + e^-w) + 1/2 log(1 + e^-w) + l2/2 w^2, whose derivative vanishes where
// sigmoid(-w) = l2 w: w* = 1.6335061701558462 for l2 = 0.1 (bisection). The log-odds of x is
// w* (x - 2): 3 -> w*, 2 -> 0, 1 -> -w*, 4 -> 2 w*.
TEST(DensityRatioStrategy, SymmetricLogisticFitByHand) {
  const double w = 1.6335061701558462;
  EXPECT_NEAR(1.0 / (1.0 + std::exp(w)), 0.1 * w, 1e-12);
  const auto s = feature_certainty("density_ratio", "calibrate = false", {3, 3}, 1, {0, 0},
                                   {3, 2, 1, 4}, 2, {1, 1});
  EXPECT_THAT(s, ElementsAre(FloatNear(static_cast<float>(w), 1e-5f), FloatNear(0.0f, 1e-6f),
                             FloatNear(static_cast<float>(-w), 1e-5f), FloatNear(static_cast<float>(2 * w), 1e-5f)));
}

// An asymmetric case against a reference computed with numpy (the same loss, Newton's method to
// a gradient of 1e-17): reference (2,1), (3,0), (2.5,2), (4,1); background (0,0), (1,1), (3,1),
// (0,2), (1,-1), (2,0); l2 = 0.1. The label of a reference row plays no part.
TEST(DensityRatioStrategy, AsymmetricFitMatchesAReference) {
  const auto s = feature_certainty("density_ratio", "calibrate = false\nl2 = 0.1",
                                   {2, 1, 3, 0, 2.5, 2, 4, 1}, 2, {0, 1, 0, 1}, {3, 1, 0, 0, 1, 2}, 2,
                                   {0, 0, 1, 1, 3, 1, 0, 2, 1, -1, 2, 0});
  EXPECT_THAT(s, ElementsAre(FloatNear(0.92755812f, 1e-5f), FloatNear(-2.09713271f, 1e-5f),
                             FloatNear(-0.33736502f, 1e-5f)));
}

// Separable data: without the ridge the weights would grow without bound; with it the fit stays
// finite and orders the texts by which side they lie on.
TEST(DensityRatioStrategy, SeparableDataStayFinite) {
  const auto s = feature_certainty("density_ratio", "calibrate = false\nl2 = 0.000001", {5, 6, 7}, 1,
                                   {0, 0, 0}, {6, 0}, 2, {-5, -6, -7});
  ASSERT_EQ(s.size(), 2u);
  EXPECT_TRUE(std::isfinite(s[0]) && std::isfinite(s[1]));
  EXPECT_GT(s[0], 5.0f);
  EXPECT_LT(s[1], 1e-3f);
  EXPECT_GT(s[1], -1e-3f);
}

// A feature constant over reference and background carries no information: a query that differs
// there scores as if it did not (the feature is not divided by its rounding-level spread).
TEST(DensityRatioStrategy, AConstantFeatureIsIgnored) {
  // Six rows: the mean of 0.1f, summed in sixths, is off by rounding (variance 2e-34, not 0).
  const std::vector<float> ref = {3, 0.1f, 3, 0.1f}, background = {1, 0.1f, 1, 0.1f, 1, 0.1f, 1, 0.1f};
  const auto s = feature_certainty("density_ratio", "calibrate = false", ref, 2, {0, 0},
                                   {3, 0.1f, 3, 5.0f}, 2, background);
  EXPECT_GT(s[0], 1.0f);
  EXPECT_NEAR(s[1], s[0], 1e-4f);
}

TEST(KnnStrategy, DistanceToTheKthNearestUnitVector) {
  // Reference directions (1,0), (0,1), (-1,0). (2,0) normalises onto (1,0): nearest 0, second
  // sqrt(2). (1,1)/sqrt(2) is sqrt(2 - sqrt(2)) = 0.765367 from (1,0) and (0,1).
  const std::vector<float> ref = {1, 0, 0, 3, -2, 0};
  EXPECT_THAT(feature_certainty("knn", "k = 1\ncalibrate = false", ref, 2, {}, {2, 0, 1, 1}),
              ElementsAre(FloatNear(0.0f, 1e-6f), FloatNear(-0.765367f, 1e-5f)));
  EXPECT_THAT(feature_certainty("knn", "k = 2\ncalibrate = false", ref, 2, {}, {2, 0, 1, 1}),
              ElementsAre(FloatNear(-std::sqrt(2.0f), 1e-5f), FloatNear(-0.765367f, 1e-5f)));
}

// Calibration is a z-score against held-out reference scores: reference rows scored by a model
// fitted on the other fold (even rows score odd ones and back), then the final model on all rows.
// Recomputed here from the uncalibrated strategy fitted on each fold.
TEST(KnnStrategy, CalibrationIsAZScoreAgainstHeldOutReferenceScores) {
  const std::vector<float> ref = {1, 0, 0.8f, 0.6f, 0, 1, -0.6f, 0.8f, -1, 0, 0.6f, -0.8f};
  const std::vector<float> even = {1, 0, 0, 1, -1, 0}, odd = {0.8f, 0.6f, -0.6f, 0.8f, 0.6f, -0.8f};
  std::vector<float> held_out = feature_certainty("knn", "k = 1\ncalibrate = false", even, 2, {}, odd);
  const auto other = feature_certainty("knn", "k = 1\ncalibrate = false", odd, 2, {}, even);
  held_out.insert(held_out.end(), other.begin(), other.end());
  double mean = 0.0, var = 0.0;
  for (float v : held_out) mean += v / 6.0;
  for (float v : held_out) var += (v - mean) * (v - mean) / 6.0;
  const std::vector<float> queries = {0.6f, 0.8f, -0.8f, -0.6f};
  const auto raw = feature_certainty("knn", "k = 1\ncalibrate = false", ref, 2, {}, queries);
  const auto z = feature_certainty("knn", "k = 1", ref, 2, {}, queries);
  for (size_t i = 0; i < z.size(); ++i)
    EXPECT_NEAR(z[i], (raw[i] - mean) / std::sqrt(var), 1e-4) << i;
}

TEST(FeatureStrategies, RefuseToScoreAnUnfittedTeacherOrOneWithoutFeatures) {
  auto s = registry().create_uncertainty("mahalanobis", CreateArgs{"u", "", "/", 0});
  const std::vector<float> logits(2, 0.0f), features(2, 0.0f);
  std::vector<float> out(1);
  try {
    s->score(3, logits.data(), 1, 1, 2, features.data(), 2, out.data());
    FAIL() << "expected PluginError";
  } catch (const PluginError& e) {
    EXPECT_THAT(e.what(), HasSubstr("teacher 3 was not fitted before scoring"));
  }
  EXPECT_THROW(s->score(0, logits.data(), 1, 1, 2, nullptr, 0, out.data()), PluginError);
  try {
    s->fit({0, "media", logits.data(), 1, 2, features.data(), 2, nullptr});
    FAIL() << "expected PluginError";
  } catch (const PluginError& e) {
    EXPECT_THAT(e.what(), HasSubstr("teacher 'media' has 1 reference texts; at least 4"));
  }
}
