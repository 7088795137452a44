// The pieces of `muki sweep` that are not running experiments: splitting --grid values, naming
// combinations, mean and spread.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include <muki/pipeline/sweep.h>

using muki::core::mean_std;
using muki::core::parse_grid;
using muki::core::value_label;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(SweepGrid, SplitsAtTopLevelCommasOnly) {
  const auto axis = parse_grid(R"(integration={strategy="max"},{strategy="weighted",options={tau=0.2}})");
  EXPECT_EQ(axis.key, "integration");
  EXPECT_THAT(axis.values, ElementsAre(R"({strategy="max"})", R"({strategy="weighted",options={tau=0.2}})"));
  EXPECT_THAT(parse_grid("student.train.lr=1e-3,5e-4").values, ElementsAre("1e-3", "5e-4"));
  EXPECT_THAT(parse_grid(R"(x="a,b",[1,2],'c')").values, ElementsAre(R"("a,b")", "[1,2]", "'c'"));
}

TEST(SweepGrid, RefusesWhatCannotBeAGrid) {
  auto message = [](const char* spec) {
    try {
      parse_grid(spec);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_THAT(message("integration"), HasSubstr("expected KEY=V1,V2,..."));
  EXPECT_THAT(message("=1,2"), HasSubstr("expected KEY=V1,V2,..."));
  EXPECT_THAT(message("a=1,,2"), HasSubstr("an empty value"));
  EXPECT_THAT(message("a={x=1"), HasSubstr("unbalanced quotes or brackets"));
  EXPECT_THAT(message("a=\"open"), HasSubstr("unbalanced quotes or brackets"));
}

TEST(SweepGrid, LabelsForFolders) {
  EXPECT_EQ(value_label(R"({strategy="mc_dropout",options={samples=16}})"), "mc_dropout");
  EXPECT_EQ(value_label("\"weighted\""), "weighted");
  EXPECT_EQ(value_label("0.2"), "0.2");
  EXPECT_EQ(value_label("[1, 2]"), "1__2");
  EXPECT_EQ(value_label(std::string(60, 'a')).size(), 40u);
}

TEST(SweepGrid, EveryCombinationHasAFolderOfItsOwn) {
  const auto points = muki::core::grid_points(
      {parse_grid(R"(integration={strategy="weighted",options={tau=0.2}},{strategy="weighted",options={tau=0.5}})"),
       parse_grid("experiment.seed=1,2")});
  ASSERT_EQ(points.size(), 4u);
  EXPECT_EQ(points[0].label, "weighted-1");
  EXPECT_EQ(points[1].label, "weighted-2");
  EXPECT_EQ(points[2].label, "weighted-1-2");  // the second weighted: numbered
  EXPECT_EQ(points[3].label, "weighted-2-2");
  EXPECT_THAT(points[3].values, ElementsAre(R"({strategy="weighted",options={tau=0.5}})", "2"));
  EXPECT_EQ(muki::core::grid_points({}).front().label, "base");
  EXPECT_EQ(value_label("'..'"), "value");  // never a folder outside the sweep's
  EXPECT_THAT(parse_grid(R"(x="a\",b",c)").values, ElementsAre(R"("a\",b")", "c"));
}

TEST(SweepStats, SampleStandardDeviation) {
  // 0.6, 0.7, 0.8: mean 0.7; squares 0.01 + 0 + 0.01 over n - 1 = 2 -> sqrt(0.01) = 0.1.
  const auto m = mean_std({0.6, 0.7, 0.8});
  EXPECT_NEAR(m.mean, 0.7, 1e-12);
  EXPECT_NEAR(m.std, 0.1, 1e-12);
  EXPECT_EQ(m.n, 3);
  EXPECT_EQ(mean_std({0.5}).std, 0.0);
  EXPECT_EQ(mean_std({}).n, 0);
}
