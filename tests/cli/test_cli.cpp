// The `muki` command line as a user runs it: exit codes, and one clear line per problem.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <sys/wait.h>

#include "../test_support.h"

using muki::test::fixture_dir;
using muki::test::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;

namespace {

using Result = muki::test::CommandResult;
using muki::test::run_muki;

using muki::test::count_lines_with;

const char* kExperiment = R"([experiment]
name = "cli"
[plugins]
paths = ["%FIXTURES%"]
[[teachers]]
name = "lengths"
adapter = "fixture_length"
[uncertainty]
strategy = "mc_dropout"
[integration]
strategy = "max"
options = { margin_reweighting = true }
)";

std::string experiment() {
  std::string text = kExperiment;
  text.replace(text.find("%FIXTURES%"), 10, fixture_dir("good").string());
  return text;
}

}  // namespace

TEST(Cli, PluginsListsBuiltinsWithVersionAndAbi) {
  const Result r = run_muki("plugins");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("uncertainty  mc_dropout           v0.1.0    ABI 1.2"));
  EXPECT_THAT(r.output, HasSubstr("integration  weighted"));
  EXPECT_THAT(r.output, HasSubstr("samples               int          default 16  in [2, 4096]"));
}

TEST(Cli, PluginsWithBadLibrariesPrintsOneLineEachAndFails) {
  const Result r = run_muki("plugins --no-default-paths --path " + fixture_dir("bad").string());
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_EQ(count_lines_with(r.output, "error: /"), 3u) << r.output;  // one per library
  EXPECT_THAT(r.output, HasSubstr("error: no plugins found"));
  EXPECT_THAT(r.output, HasSubstr("libfixture_no_entry.so: not a muki plugin"));
  EXPECT_THAT(r.output, HasSubstr("libfixture_wrong_major.so: plugin ABI 2.0 is incompatible with host ABI 1.2"));
  EXPECT_THAT(r.output, HasSubstr("libfixture_failing_init.so: init failed: licence file"));
  EXPECT_THAT(r.output, HasSubstr("3 libraries refused"));
}

TEST(Cli, PluginsPathAddsAFolder) {
  const Result r = run_muki("plugins --path " + fixture_dir("good").string());
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("teacher      fixture_length"));
  EXPECT_THAT(r.output, HasSubstr("uncertainty  entropy"));
}

TEST(Cli, ValidateAcceptsAValidConfig) {
  TempDir dir;
  // Two teachers: margin re-weighting takes two (validate integrates one example to check).
  const auto path = dir.write("exp.toml", experiment() + "[[teachers]]\nname = \"lengths2\"\nadapter = \"fixture_length\"\n");
  const Result r = run_muki("validate " + path.string());
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("exp.toml: valid"));
}

TEST(Cli, ValidateReportsEveryProblemWithFileLineColumn) {
  TempDir dir;
  const auto path = dir.write("exp.toml", experiment());
  const Result r = run_muki("validate " + path.string() +
                        " --set uncertainty.options.samples=1 --set integration.strategy=maxx");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("--set uncertainty.options.samples=1:1:5: "
                                  "'uncertainty.options.samples' is 1; it must lie in [2, 4096]"));
  EXPECT_THAT(r.output, HasSubstr("--set integration.strategy=maxx:1:5: 'integration.strategy': "
                                  "integration strategy 'maxx' not found; available: cfl, concat, dfa, gold, max, oracle, uhc, weighted"));
  EXPECT_THAT(r.output, HasSubstr("2 problems found"));
}

TEST(Cli, ValidateReportsSyntaxErrors) {
  TempDir dir;
  const auto path = dir.write("broken.toml", "[experiment\nname = 1\n");
  const Result r = run_muki("validate " + path.string());
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr(path.string() + ":1:12: not valid TOML here (Error while parsing table header: "
                                  "expected ']', saw '\\n')"));
  // Mistakes in --set are reported against the --set, each saying what to change (issue 11,
  // finding 8).
  const auto valid = dir.write("exp.toml", experiment());
  EXPECT_THAT(run_muki("validate " + valid.string() + " --set student.train.epoch=2").output,
              HasSubstr("--set student.train.epoch=2:1:5: unknown key 'student.train.epoch' (did you mean 'epochs'?)"));
  EXPECT_THAT(run_muki("validate " + valid.string() + " --set experiment.=1").output,
              HasSubstr("--set experiment.=1: 'experiment.' has an empty part; a key is dotted names, e.g. "
                        "experiment.seed or teachers.0.name"));
}

TEST(Cli, PrintConfigAppliesOverridesInOrder) {
  TempDir dir;
  const auto path = dir.write("exp.toml", experiment());
  const Result r = run_muki("print-config " + path.string() +
                        " --set experiment.seed=5 --set experiment.seed=9 --set experiment.device=cpu");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("seed = 9"));
  EXPECT_THAT(r.output, HasSubstr("device = 'cpu'"));
  EXPECT_THAT(r.output, Not(HasSubstr("seed = 5")));
}

TEST(Cli, HelpEverywhereAndExitCodes) {
  EXPECT_EQ(run_muki("--help").code, 0);
  for (const char* command : {"plugins", "validate", "print-config"}) {
    const Result r = run_muki(std::string(command) + " --help");
    EXPECT_EQ(r.code, 0) << command;
    EXPECT_THAT(r.output, HasSubstr("usage: muki " + std::string(command))) << command;
  }
  const Result unknown = run_muki("trian");
  EXPECT_EQ(unknown.code, 2);
  EXPECT_THAT(unknown.output, HasSubstr("unknown command 'trian'"));
  const Result missing = run_muki("validate");
  EXPECT_EQ(missing.code, 1);
  EXPECT_THAT(missing.output, HasSubstr("the option '--config' is required"));
  EXPECT_EQ(run_muki("").code, 2);
}

namespace {
std::string analyze_experiment(const TempDir& dir) {
  dir.write("test.tsv",
            "id\tgroup\tlabel\ttext\n"
            "1\ta\tshort\ttiny\n"
            "2\tb\tlong\tthis text is long enough to be called long\n"
            "3\tc\tmedium\ta text of medium size\n");
  std::string text = experiment();
  text += "[data]\ntest = { path = \"test.tsv\", label = \"label\" }\n";
  text.replace(text.find("[experiment]\nname = \"cli\""), 25,
               "[experiment]\nname = \"cli\"\noutput_dir = \"" + (dir.path() / "run").string() + "\"");
  text.replace(text.find("[uncertainty]"), 13,
               "[[teachers]]\nname = \"lengths2\"\nadapter = \"fixture_length\"\n[uncertainty]");
  return dir.write("exp.toml", text).string();
}
}  // namespace

TEST(Cli, AnalyzePrintsTheTablesAndWritesJson) {
  TempDir dir;
  const std::string config = analyze_experiment(dir);
  const Result r = run_muki("analyze " + config + " --uncertainty entropy,mc_dropout --integration max");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("[test, 2 examples, 2 labels, 2 teachers]"));
  EXPECT_THAT(r.output, HasSubstr("1 examples labelled 'medium' (no teacher knows it) are left out"));
  EXPECT_THAT(r.output, HasSubstr("| lengths | 2 | 1.000 | 2 |"));
  EXPECT_THAT(r.output, HasSubstr("| mc_dropout | 16 |"));
  EXPECT_THAT(r.output, HasSubstr("| entropy | max |"));
  EXPECT_THAT(r.output, HasSubstr("| uncertainty | teacher that owns the gold label | other teachers |"));
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "run" / "analysis-test.json"));
  // A second run reuses the teacher pass.
  const Result again = run_muki("analyze " + config + " --uncertainty mc_dropout --integration max");
  EXPECT_THAT(again.output, HasSubstr("reused from the cache"));
}

TEST(Cli, AnalyzeNeedsALabeledSplit) {
  TempDir dir;
  const std::string config = analyze_experiment(dir);
  const Result r = run_muki("analyze " + config + " --split dev");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.output, HasSubstr("missing [data.dev] (this command needs that split)"));
}
