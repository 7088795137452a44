// Evaluation over the union, KL to a reference, the JSON line writer, and the run directory's
// binding to its config: against values worked out by hand.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include <muki/data/jsonl_row.h>
#include <muki/experiment/run_directory.h>
#include <muki/io/json.h>
#include <muki/metrics/evaluation.h>
#include <muki/report/report.h>

#include "../test_support.h"

using namespace muki::core;
using muki::test::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

TEST(EvaluateUnion, OverallPerTeacherPerClassAndConfusion) {
  const LabelSpace labels({{"a", "b"}, {"c"}});  // union a=0, b=1, c=2
  // gold    a a b c c
  // pred    a b b c a
  const auto ev = evaluate_union({0, 0, 1, 2, 2}, {0, 1, 1, 2, 0}, labels);
  EXPECT_DOUBLE_EQ(ev.overall.accuracy, 3.0 / 5.0);
  // Teacher 0 owns a, b: examples 0-2, right 0 and 2 -> 2/3. Teacher 1 owns c: 1/2.
  EXPECT_THAT(ev.teacher_examples, ElementsAre(3, 2));
  EXPECT_DOUBLE_EQ(ev.teacher_accuracy[0], 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(ev.teacher_accuracy[1], 0.5);
  EXPECT_THAT(ev.class_examples, ElementsAre(2, 1, 2));
  EXPECT_THAT(ev.class_recall, ElementsAre(0.5, 1.0, 0.5));
  EXPECT_THAT(ev.confusion, ElementsAre(1, 1, 0,  // gold a
                                        0, 1, 0,  // gold b
                                        1, 0, 1));  // gold c
  // F1: a: P 1/2 R 1/2 -> 1/2; b: P 1/2 R 1 -> 2/3; c: P 1 R 1/2 -> 2/3. Mean 11/18.
  EXPECT_NEAR(ev.overall.macro_f1, 11.0 / 18.0, 1e-12);
  EXPECT_THROW(evaluate_union({0}, {3}, labels), std::invalid_argument);
}

TEST(EvaluateUnion, ASharedLabelCountsForEveryOwner) {
  const LabelSpace labels({{"x", "a"}, {"x", "b"}});
  const auto ev = evaluate_union({0}, {0}, labels);
  EXPECT_THAT(ev.teacher_examples, ElementsAre(1, 1));
  EXPECT_THAT(ev.teacher_accuracy, ElementsAre(1.0, 1.0));
}

TEST(MeanKlDivergence, ZeroLogZeroAndFloor) {
  // Row 1: target (1/2, 1/2, 0) vs (1/4, 1/4, 1/2): 2 * 1/2 log 2 = log 2 (the 0 adds nothing).
  // Row 2: identical rows: 0. Mean: log 2 / 2.
  EXPECT_NEAR(mean_kl_divergence({0.5f, 0.5f, 0.0f, 0.2f, 0.3f, 0.5f},
                                 {0.25f, 0.25f, 0.5f, 0.2f, 0.3f, 0.5f}, 3),
              std::log(2.0) / 2.0, 1e-7);
  // Mass where the reference has none: floored at 1e-12, finite: log(1 / 1e-12).
  EXPECT_NEAR(mean_kl_divergence({1.0f, 0.0f}, {0.0f, 1.0f}, 2), 12.0 * std::log(10.0), 1e-6);
  EXPECT_THROW(mean_kl_divergence({1.0f}, {0.5f, 0.5f}, 2), std::invalid_argument);
}

TEST(JsonLine, WritesWhatTheParserReads) {
  const Json w = {{"name", "a \"quoted\"\ttab"}, {"x", 0.1}, {"nan", std::nan("")}, {"n", -3}, {"ok", true}};
  EXPECT_EQ(json_line(w), R"({"name": "a \"quoted\"\ttab", "x": 0.1, "nan": null, "n": -3, "ok": true})");
  const auto members = parse_flat_json_object(json_line(w));
  ASSERT_EQ(members.size(), 5u);
  EXPECT_EQ(members[0].second.text, "a \"quoted\"\ttab");
  EXPECT_EQ(members[1].second.text, "0.1");  // the shortest form that reads back exactly
  EXPECT_EQ(members[2].second.type, JsonScalar::Type::Null);
  const Json pi = {{"pi", 3.141592653589793}};
  EXPECT_EQ(std::stod(parse_flat_json_object(json_line(pi))[0].second.text), 3.141592653589793);
}

namespace {
Config config_of(const std::string& text) { return Config::parse(text, "exp.toml", "/tmp"); }
}  // namespace

TEST(ConfigDifferences, NamesEveryChangedKey) {
  const Config a = config_of("[experiment]\nname = \"x\"\nseed = 1\n[[teachers]]\nname = \"t\"\n");
  const Config b = config_of("[experiment]\nname = \"x\"\nseed = 2\nthreads = 1\n[[teachers]]\nname = \"u\"\n");
  EXPECT_THAT(config_differences(a.root(), b.root()),
              ElementsAre("experiment.seed: 1 -> 2", "teachers[0].name: 't' -> 'u'",
                          "experiment.threads: (absent) -> 1"));
}

TEST(RunDirectory, BindsTheFolderToItsConfig) {
  TempDir dir;
  const fs::path run = dir.path() / "run";
  const std::string base = "[experiment]\nname = \"x\"\nseed = 1\n";
  {
    const RunDirectory first(run, config_of(base), false);
    EXPECT_FALSE(first.resumed());
    first.log_event("eval", {{"step", 5}});
  }
  EXPECT_TRUE(fs::exists(run / "config.toml"));
  EXPECT_TRUE(RunDirectory(run, config_of(base), false).resumed());
  // Another config: refused, with what changed and what to do.
  try {
    RunDirectory(run, config_of("[experiment]\nname = \"x\"\nseed = 2\n"), false);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr(run.string() + " holds a run of a different config; changed:\n"
                                    "  experiment.seed: 1 -> 2"));
    EXPECT_THAT(e.what(), HasSubstr("--fresh"));
  }
  // --fresh discards it.
  {
    const RunDirectory fresh(run, config_of("[experiment]\nname = \"x\"\nseed = 2\n"), true);
    EXPECT_FALSE(fresh.resumed());
    EXPECT_FALSE(fs::exists(run / "metrics.jsonl"));
    // While it is open, the folder is locked, in this process too.
    EXPECT_THROW(RunDirectory(run, config_of("[experiment]\nname = \"x\"\nseed = 2\n"), false), std::runtime_error);
  }
  // A folder with other things in it is not taken over, --fresh or not.
  dir.write("other/notes.txt", "mine");
  EXPECT_THROW(RunDirectory(dir.path() / "other", config_of(base), false), ConfigError);
  EXPECT_THROW(RunDirectory(dir.path() / "other", config_of(base), true), ConfigError);
  EXPECT_TRUE(fs::exists(dir.path() / "other" / "notes.txt"));
  // `muki analyze` writes its report into the output folder before any run: still muki's folder.
  dir.write("analyzed/analysis-test.json", "{}");
  EXPECT_FALSE(RunDirectory(dir.path() / "analyzed", config_of(base), false).resumed());
  EXPECT_TRUE(fs::exists(dir.path() / "analyzed" / "analysis-test.json"));
  // A folder of that name is not analyze's report.
  fs::create_directories(dir.path() / "mine" / "analysis-x.json");
  EXPECT_THROW(RunDirectory(dir.path() / "mine", config_of(base), false), ConfigError);
  // Nor emptied when it holds the teacher-pass cache.
  const std::string holds_cache = base + "cache_dir = \"" + (run / "cache").string() + "\"\n";
  try {
    RunDirectory(run, config_of(holds_cache), true);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("holds the teacher-pass cache"));
  }
}

TEST(RunSummary, TeacherOfAccuracyKey) {
  using muki::core::teacher_of_accuracy_key;
  EXPECT_EQ(teacher_of_accuracy_key("test.teacher.media.accuracy"), "media");
  EXPECT_EQ(teacher_of_accuracy_key("test.teacher.a.b.accuracy"), "a.b");  // names may hold dots
  EXPECT_EQ(teacher_of_accuracy_key("test.teacher.media.examples"), "");
  EXPECT_EQ(teacher_of_accuracy_key("test.teacher..accuracy"), "");
  EXPECT_EQ(teacher_of_accuracy_key("test.accuracy"), "");
}

TEST(RunDirectory, EventsAreFlatJsonLines) {
  TempDir dir;
  const RunDirectory run(dir.path() / "r", config_of("[experiment]\nname = \"x\"\n"), false);
  run.log_event("eval", {{"step", 5}, {"dev_accuracy", 0.5}});
  std::ifstream in(dir.path() / "r" / "metrics.jsonl");
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  const auto members = parse_flat_json_object(line);
  ASSERT_EQ(members.size(), 4u);
  EXPECT_EQ(members[0].first, "event");
  EXPECT_EQ(members[0].second.text, "eval");
  EXPECT_EQ(members[1].first, "time");
  EXPECT_EQ(members[2].second.text, "5");
}

TEST(CacheDir, BesideTheOutputFolderUnlessSet) {
  EXPECT_EQ(cache_dir(config_of("[experiment]\nname = \"x\"\n")), fs::path("runs/cache"));
  EXPECT_EQ(cache_dir(config_of("[experiment]\nname = \"x\"\noutput_dir = \"/t/a/${name}/\"\n")),
            fs::path("/t/a/cache"));
  EXPECT_EQ(cache_dir(config_of("[experiment]\nname = \"x\"\ncache_dir = \"c\"\n")), fs::path("c"));
  EXPECT_EQ(output_dir(config_of("[experiment]\nname = \"x\"\n")), fs::path("runs/x"));
}

TEST(ReportHistogram, FractionsPerBinWithTheEndsClamped) {
  // 4 bins over [0, 1]: 0.1 -> 0, 0.3 -> 1, 0.3 -> 1, 1.0 -> 3 (the last bin is closed), -0.2 -> 0.
  EXPECT_THAT(muki::core::histogram({0.1f, 0.3f, 0.3f, 1.0f, -0.2f}, 4), ElementsAre(0.4, 0.4, 0.0, 0.2));
  EXPECT_THAT(muki::core::histogram({}, 3), ElementsAre(0.0, 0.0, 0.0));
}
