// Analysis metrics, against values worked out by hand.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include <muki/experiment/analysis.h>
#include <muki/registry/registry.h>

#include "../test_support.h"

using muki::core::auroc;
using muki::core::IntegratedTargets;
using muki::core::LabelSpace;
using muki::core::selection_metrics;
using muki::core::target_metrics;
using muki::core::TeacherScores;

TEST(Auroc, MannWhitneyWithTies) {
  // Pairs (pos, neg): (.9,.1)=1 (.9,.8)=1 (.8,.1)=1 (.8,.8)=1/2 -> 3.5 / 4.
  EXPECT_DOUBLE_EQ(auroc({0.9f, 0.8f}, {0.1f, 0.8f}), 0.875);
  EXPECT_DOUBLE_EQ(auroc({0.2f}, {0.9f}), 0.0);
  EXPECT_DOUBLE_EQ(auroc({0.5f, 0.5f}, {0.5f}), 0.5);
  EXPECT_DOUBLE_EQ(auroc({}, {0.5f}), 0.5);
}

TEST(SelectionMetrics, OwnerOfTheGoldLabelAndAuroc) {
  const LabelSpace labels({{"a", "b"}, {"c", "d"}});
  // Example 0 (gold a): teacher 0 more certain -> right. Example 1 (gold c): teacher 0 more
  // certain -> wrong. Example 2 (gold d): teacher 1 -> right.
  const TeacherScores scores = {{0.9f, 0.7f, 0.2f}, {0.1f, 0.6f, 0.8f}};
  const auto m = selection_metrics(scores, labels, {0, 2, 3});
  EXPECT_DOUBLE_EQ(m.selection_accuracy, 2.0 / 3.0);
  // Owners: 0.9, 0.6, 0.8; others: 0.1, 0.7, 0.2. Pairs won: 0.9 beats all 3, 0.6 beats 2,
  // 0.8 beats all 3 -> 8 / 9.
  EXPECT_NEAR(m.auroc, 8.0 / 9.0, 1e-12);
  EXPECT_NEAR(m.mean_certainty_owner, (0.9 + 0.6 + 0.8) / 3, 1e-6);
  EXPECT_NEAR(m.mean_certainty_other, (0.1 + 0.7 + 0.2) / 3, 1e-6);
}

TEST(SelectionMetrics, SharedLabelsHaveSeveralOwners) {
  const LabelSpace labels({{"a", "x"}, {"x", "b"}});  // "x" is owned by both
  const TeacherScores scores = {{0.2f}, {0.9f}};
  EXPECT_DOUBLE_EQ(selection_metrics(scores, labels, {1}).selection_accuracy, 1.0);
}

TEST(TargetMetrics, AccuracyAndWeights) {
  IntegratedTargets t;
  t.union_size = 3;
  t.target = {0.7f, 0.2f, 0.1f,   // argmax 0, gold 0: right
              0.1f, 0.3f, 0.6f,   // argmax 2, gold 1: wrong
              0.0f, 1.0f, 0.0f};  // argmax 1, gold 1: right
  t.weight = {0.5f, 0.1f, 0.3f};
  const auto m = target_metrics(t, {0, 1, 1});
  EXPECT_DOUBLE_EQ(m.accuracy, 2.0 / 3.0);
  EXPECT_NEAR(m.weighted_accuracy, 0.8 / 0.9, 1e-6);
  EXPECT_NEAR(m.mean_weight_right, 0.4, 1e-6);
  EXPECT_NEAR(m.mean_weight_wrong, 0.1, 1e-6);
}

// Calibration against hand-computed energies (T = 1, not normalised: certainty = ln sum_j exp z_j).
// Teacher 0 knows {a, b}, teacher 1 {c, d}; the reference split's gold labels are a, b, c, c, d.
TEST(ScoreCalibration, ZScoresEachTeacherAgainstItsOwnReferenceTexts) {
  muki::registry::Registry registry;
  registry.scan({muki::test::plugin_dir()});
  const auto energy = registry.create_uncertainty("energy", {"u", "normalize = false", "/", 0});
  const LabelSpace labels({{"a", "b"}, {"c", "d"}});
  const float l3 = std::log(3.0f), l7 = std::log(7.0f);
  muki::core::TeacherOutputs t0, t1;
  t0.num_examples = t1.num_examples = 5;
  t0.num_labels = t1.num_labels = 2;
  // Teacher 0's energies: ln 2, ln 4, then anything (texts of teacher 1 do not count).
  t0.deterministic = {0, 0, l3, 0, 9, 9, 9, 9, 9, 9};
  // Teacher 1's: anything on a and b; ln 2, ln 4, ln 8 on its own three.
  t1.deterministic = {-5, -5, -5, -5, 0, 0, l3, 0, l7, 0};
  const auto calibration =
      muki::core::calibrate_scores(*energy, {"t0", "t1"}, {t0, t1}, {{0, 1, 2, 2, 3}, {0, 1, 2, 2, 3}}, labels);
  const double ln2 = std::log(2.0);
  // Teacher 0: ln 2 and 2 ln 2, mean 1.5 ln 2, population sd 0.5 ln 2.
  EXPECT_NEAR(calibration.mean[0], 1.5 * ln2, 1e-6);
  EXPECT_NEAR(calibration.scale[0], 0.5 * ln2, 1e-6);
  // Teacher 1: ln 2, 2 ln 2, 3 ln 2: mean 2 ln 2, sd sqrt(2/3) ln 2.
  EXPECT_NEAR(calibration.mean[1], 2 * ln2, 1e-6);
  EXPECT_NEAR(calibration.scale[1], std::sqrt(2.0 / 3.0) * ln2, 1e-6);
  // Applied: teacher 1's ln 8 becomes (3 - 2) / sqrt(2/3) = 1.2247449 of its spreads.
  TeacherScores scores = {{static_cast<float>(ln2)}, {static_cast<float>(3 * ln2)}};
  muki::core::apply_calibration(calibration, scores);
  EXPECT_NEAR(scores[0][0], -1.0, 1e-5);
  EXPECT_NEAR(scores[1][0], 1.2247449, 1e-5);
  // A teacher with fewer than two reference texts cannot be calibrated: said by name.
  try {
    muki::core::calibrate_scores(*energy, {"t0", "t1"}, {t0, t1}, {{0, 1, 2, 0, 1}, {0, 1, 2, 0, 1}}, labels);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "calibrating uncertainty strategy 'energy' needs at least 2 reference "
                           "texts of teacher 't1', the split has 1");
  }
}

// Figure 2's data. Teacher 0 owns a, teacher 1 owns b; gold a, b.
TEST(UncertaintyDistribution, OneMinusCertaintyOrRank) {
  const LabelSpace labels({{"a"}, {"b"}});
  const TeacherScores scores = {{0.9f, 0.2f}, {0.4f, 0.7f}};
  const auto plain = muki::core::uncertainty_distribution(scores, labels, {0, 1}, false);
  EXPECT_THAT(plain.owner, testing::Pointwise(testing::FloatNear(1e-6f), std::vector<float>{0.1f, 0.3f}));
  EXPECT_THAT(plain.other, testing::Pointwise(testing::FloatNear(1e-6f), std::vector<float>{0.6f, 0.8f}));
  // Ranks among the four scores 0.2 < 0.4 < 0.7 < 0.9: 0.9 is the most certain (0), 0.2 the least (1).
  const auto ranked = muki::core::uncertainty_distribution(scores, labels, {0, 1}, true);
  EXPECT_THAT(ranked.owner, testing::Pointwise(testing::FloatNear(1e-6f), std::vector<float>{0.0f, 1.0f / 3}));
  EXPECT_THAT(ranked.other, testing::Pointwise(testing::FloatNear(1e-6f), std::vector<float>{2.0f / 3, 1.0f}));
}

// A strategy that gives a non-finite score (here energy, from outputs that bypassed the teacher
// pass's own check) is refused with its name and the example, not passed on to the integration.
TEST(ScoreTeachers, RefusesNonFiniteScores) {
  muki::registry::Registry registry;
  registry.scan({muki::test::plugin_dir()});
  const auto energy = registry.create_uncertainty("energy", {"u", "", "/", 0});
  muki::core::TeacherOutputs t;
  t.num_examples = 2;
  t.num_labels = 2;
  t.deterministic = {0, 1, std::nanf(""), 0};
  try {
    muki::core::score_teachers(*energy, {t});
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "uncertainty strategy 'energy' gave a non-finite certainty (nan) to teacher 0 on "
                           "example 1; certainty scores must be finite");
  }
}
