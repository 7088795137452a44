// Analysis metrics, against values worked out by hand.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <muki/experiment/analysis.h>

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
