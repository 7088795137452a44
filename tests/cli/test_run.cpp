// `muki run` end to end, as a user runs it: two small native teachers trained by
// `muki teacher train` on the two halves of data/ddtp-en's labels, integrated into a student over
// all eight. Checks the run directory, the cache shared by runs that differ only in a strategy,
// reproducibility, and that `kill -9` during the teacher pass or the training loses nothing.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <muki/io/json.h>

#include "../test_support.h"

using muki::test::TempDir;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

extern char** environ;

namespace {

std::string muki_binary() { return (muki::test::build_dir() / "bin" / "muki").string(); }

using Result = muki::test::CommandResult;
using muki::test::run_muki;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::map<std::string, std::string> summary(const fs::path& run) {
  std::map<std::string, std::string> out;
  const muki::core::Json json = muki::core::read_json_file(run / "summary.json");
  for (auto it = json.begin(); it != json.end(); ++it)
    out[it.key()] = it->is_string() ? it->get<std::string>() : muki::core::json_line(*it);
  return out;
}

// The figures that must not depend on how the run got there (timings and resume counters do).
std::map<std::string, std::string> results(const fs::path& run) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : summary(run))
    if (k.rfind("test.", 0) == 0 || k.rfind("dev.", 0) == 0 || k.rfind("transfer.", 0) == 0 ||
        k == "train.steps" || k == "train.best_step")
      out[k] = v;
  return out;
}

const fs::path kData = muki::test::source_dir() / "data" / "ddtp-en";

std::string teacher_toml(const std::string& name, const std::string& labels, const fs::path& out) {
  // The first line names what the fixture must hold, so a build tree's older fixtures (keyed by
  // this text) are not reused: muki 0.2 teachers also write reference.jsonl.
  return "# with reference.jsonl\n[teacher]\nname = \"" + name + "\"\noutput = \"" + out.string() + "\"\nlabels = " + labels +
         "\nseed = 1\ndevice = \"cpu\"\nthreads = 1\n"
         "[data]\ntrain = { path = \"" + (kData / "train.tsv").string() + "\", label = \"label\" }\n"
         "dev = { path = \"" + (kData / "dev.tsv").string() + "\", label = \"label\" }\n"
         "[tokenizer]\ntype = \"wordpiece\"\nvocab_size = 3000\n"
         "[model]\ntype = \"bag_of_embeddings\"\nhidden = 32\nmax_length = 64\ndropout = 0.2\n"
         "[train]\nepochs = 3\nbatch_size = 32\nlr = 1e-2\neval_every = 0\n";
}

// Two teachers, trained once per build: each test is its own process (gtest_discover_tests), so
// they are kept in the build tree, keyed by their training file, and made with an atomic rename
// (two test processes may race to make them).
fs::path teacher(const std::string& name, const std::string& labels) {
  const std::string toml = teacher_toml(name, labels, "OUT");
  const fs::path folder = muki::test::build_dir() / "tests" / "run_fixtures" /
                          (name + "-" + std::to_string(std::hash<std::string>()(toml)));
  if (fs::exists(folder / "weights.pt")) return folder;
  TempDir tmp;
  const fs::path out = folder.string() + ".tmp-" + std::to_string(getpid());
  std::string text = teacher_toml(name, labels, out);
  const Result r = run_muki("teacher train " + tmp.write("t.toml", text).string() + " --log-level warn");
  EXPECT_EQ(r.code, 0) << r.output;
  std::error_code ec;
  fs::rename(out, folder, ec);  // a lost race leaves the other process's copy: just as good
  fs::remove_all(out, ec);
  return folder;
}

class RunTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    media_ = new fs::path(teacher("media", R"(["games", "sound", "graphics", "text"])"));
    science_ = new fs::path(teacher("science", R"(["science", "math", "net", "admin"])"));
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete media_;
    delete science_;
  }

  // An experiment over the teachers; `extra` is appended (TOML).
  fs::path experiment(const std::string& name, const std::string& extra = "") const {
    const std::string text =
        "[experiment]\nname = \"" + name + "\"\nseed = 3\ndevice = \"cpu\"\nthreads = 1\n"
        "deterministic = true\noutput_dir = \"" + (dir_->path() / "runs" / "${name}").string() + "\"\n"
        "[data]\ntransfer = { path = \"" + (kData / "train.tsv").string() + "\" }\n"
        "dev = { path = \"" + (kData / "dev.tsv").string() + "\", label = \"label\" }\n"
        "test = { path = \"" + (kData / "test.tsv").string() + "\", label = \"label\" }\n"
        "[[teachers]]\nname = \"media\"\nadapter = \"native\"\noptions = { checkpoint = \"" +
        media_->string() + "\" }\n"
        "[[teachers]]\nname = \"science\"\nadapter = \"native\"\noptions = { checkpoint = \"" +
        science_->string() + "\" }\n"
        "[uncertainty]\nstrategy = \"mc_dropout\"\noptions = { samples = 4 }\n"
        "[integration]\nstrategy = \"weighted\"\noptions = { tau = 0.2, margin_reweighting = true }\n"
        "[student]\ntokenizer = { vocab_size = 3000 }\n"
        "model = { type = \"bag_of_embeddings\", hidden = 32, max_length = 64 }\n"
        "train = { epochs = 3, batch_size = 32, lr = 1e-2, eval_every = 25, patience = 0 }\n" + extra;
    return dir_->write(name + ".toml", text);
  }
  fs::path run_dir(const std::string& name) const { return dir_->path() / "runs" / name; }

  static TempDir* dir_;
  static fs::path* media_;
  static fs::path* science_;
};
TempDir* RunTest::dir_ = nullptr;
fs::path* RunTest::media_ = nullptr;
fs::path* RunTest::science_ = nullptr;

// Starts `muki ARGS` in the background (output to a file); kill it with kill_when().
pid_t spawn_muki(const std::vector<std::string>& args, const fs::path& log) {
  std::vector<std::string> argv_s = {muki_binary()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  const int failed = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return failed != 0 ? -1 : pid;  // -1 would make waitpid() wait for any child
}

// Polls until `ready()` or the process ends; then SIGKILLs it. True when it was killed while
// still running.
template <class Ready>
bool kill_when(pid_t pid, Ready ready) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid, &status, WNOHANG) == pid) return false;  // finished on its own
    if (ready()) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return false;
}

}  // namespace

TEST_F(RunTest, WritesTheRunDirectory) {
  const Result r = run_muki("run " + experiment("full").string());
  ASSERT_EQ(r.code, 0) << r.output;
  const fs::path run = run_dir("full");
  EXPECT_THAT(r.output, HasSubstr(": test accuracy "));
  for (const char* f : {"config.toml", "run.json", "plugins.lock", "labels.txt", "metrics.jsonl",
                        "summary.json", "predictions.tsv", "student/weights.pt", "student/labels.txt",
                        "state/student.pt"})
    EXPECT_TRUE(fs::exists(run / f)) << f;
  EXPECT_EQ(read_file(run / "labels.txt"), "games\nsound\ngraphics\ntext\nscience\nmath\nnet\nadmin\n");
  EXPECT_EQ(read_file(run / "student" / "labels.txt"), read_file(run / "labels.txt"));
  const std::string lock = read_file(run / "plugins.lock");
  EXPECT_THAT(lock, HasSubstr("uncertainty\tmc_dropout\t"));
  EXPECT_THAT(lock, HasSubstr("integration\tweighted\t"));
  EXPECT_THAT(lock, HasSubstr("teacher\tnative\t"));
  const std::string events = read_file(run / "metrics.jsonl");
  for (const char* e : {"\"event\": \"start\"", "\"event\": \"teacher_pass\"", "\"event\": \"eval\"",
                        "\"event\": \"calibration\"", "\"event\": \"end\""})
    EXPECT_THAT(events, HasSubstr(e));
  auto s = summary(run);
  EXPECT_EQ(s["test.examples"], "550");
  EXPECT_EQ(s["union_size"], "8");
  EXPECT_EQ(s["train.steps"], "399");  // 3 epochs x 133 batches
  // Small teachers on half the labels each, a bag-of-embeddings student: far better than the
  // 1/8 of chance, far from perfect.
  EXPECT_GT(std::stod(s["test.accuracy"]), 0.45);
  EXPECT_GT(std::stod(s["test.teacher.media.accuracy"]), 0.3);
  EXPECT_GT(std::stod(s["test.selection_accuracy"]), 0.5);
  // One line a test example, with a label of the union.
  const std::string predictions = read_file(run / "predictions.tsv");
  EXPECT_EQ(std::count(predictions.begin(), predictions.end(), '\n'), 551);
  // Run again: everything is there, nothing is recomputed.
  const Result again = run_muki("run " + experiment("full").string());
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_THAT(again.output, HasSubstr("(resuming)"));
  EXPECT_THAT(again.output, HasSubstr("training had finished"));
  EXPECT_EQ(results(run), results(run_dir("full")));
}

// Without a labeled dev split over all labels, each teacher's own held-out texts (the
// reference.jsonl `muki teacher train` wrote: its dev examples of its labels) serve to fit a
// feature strategy and to calibrate.
TEST_F(RunTest, TeachersOwnReferencesReplaceTheDevSplit) {
  auto without_dev = [&](const std::string& name, const std::string& reference_extra) {
    std::string text = read_file(experiment(name));
    text.erase(text.find("dev = {"), text.find("test = {") - text.find("dev = {"));
    for (const fs::path* t : {media_, science_}) {
      const std::string entry = "options = { checkpoint = \"" + t->string() + "\" }\n";
      text.replace(text.find(entry), entry.size(),
                   entry + "reference = { path = \"" + (*t / "reference.jsonl").string() + "\"" +
                       reference_extra + " }\n");
    }
    return dir_->write(name + ".toml", text);
  };
  ASSERT_TRUE(fs::exists(*media_ / "reference.jsonl"));
  // media's 4 sections of the 515 dev texts, each with its label.
  const std::string media_reference = read_file(*media_ / "reference.jsonl");
  EXPECT_THAT(media_reference, HasSubstr("\"label\": \"games\""));
  EXPECT_THAT(media_reference, ::testing::Not(HasSubstr("\"label\": \"science\"")));
  EXPECT_EQ(std::count(media_reference.begin(), media_reference.end(), '\n'), 211);
  Result r = run_muki("run " + without_dev("own-refs", ", label = \"label\"").string());
  ASSERT_EQ(r.code, 0) << r.output;
  auto s = summary(run_dir("own-refs"));
  EXPECT_EQ(s["uncertainty.calibration"], "reference");
  EXPECT_THAT(read_file(run_dir("own-refs") / "metrics.jsonl"),
              HasSubstr("\"teacher\": \"media\", \"split\": \"" + (*media_ / "reference.jsonl").string() +
                        "\", \"mean\": "));
  r = run_muki("run " + without_dev("own-refs-knn", ", label = \"label\"").string() +
               " --set uncertainty='{strategy=\"knn\"}'");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(summary(run_dir("own-refs-knn"))["uncertainty.calibration"], "fitted");
  EXPECT_GT(std::stod(summary(run_dir("own-refs-knn"))["test.selection_accuracy"]), 0.5);
  // Neither a dev split nor references: each teacher's confident transfer predictions stand in,
  // and the log and the summary say so.
  std::string bare = read_file(experiment("no-refs"));
  bare.erase(bare.find("dev = {"), bare.find("test = {") - bare.find("dev = {"));
  r = run_muki("run " + dir_->write("no-refs.toml", bare).string() + " --set uncertainty='{strategy=\"knn\"}'");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("transfer texts it labels with probability >= 0.9 stand in (label-free, weaker)"));
  EXPECT_EQ(summary(run_dir("no-refs"))["uncertainty.calibration"], "fitted, label-free");
  // A reference without its label column is refused before anything runs, with its position.
  r = run_muki("run " + without_dev("unlabeled-refs", "").string());
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.output, HasSubstr("unlabeled-refs.toml:15:13: missing required key 'teachers[0].reference.label'"));
}

// relative_mahalanobis and density_ratio (ABI 1.2) are fitted on each teacher's dev texts against
// its features of the transfer set, in a run and in `muki analyze` alike, and pick the teacher
// better than chance. density_ratio is analyzed first: analyze's report in the output folder does
// not keep the run from using it.
TEST_F(RunTest, BackgroundStrategiesAreFittedAgainstTheTransferSet) {
  for (const std::string strategy : {"relative_mahalanobis", "density_ratio"}) {
    SCOPED_TRACE(strategy);
    const fs::path config = experiment(strategy);
    const std::string analyze =
        "analyze " + config.string() + " --uncertainty " + strategy + " --integration max";
    const bool analyze_first = strategy == "density_ratio";
    Result analyzed;
    if (analyze_first) analyzed = run_muki(analyze);
    Result r = run_muki("run " + config.string() + " --set uncertainty='{strategy=\"" + strategy +
                        "\"}'");
    ASSERT_EQ(r.code, 0) << r.output;
    auto s = summary(run_dir(strategy));
    EXPECT_EQ(s["uncertainty"], strategy);
    EXPECT_EQ(s["uncertainty.calibration"], "fitted");
    const double selection = std::stod(s["test.selection_accuracy"]);
    EXPECT_GT(selection, 0.5);
    if (!analyze_first) analyzed = run_muki(analyze);
    ASSERT_EQ(analyzed.code, 0) << analyzed.output;
    // The same teachers, texts and fit: the same selection on the test split.
    char expected[64];
    std::snprintf(expected, sizeof(expected), " | 0 | %.3f |", selection);
    EXPECT_THAT(analyzed.output, HasSubstr("| " + strategy + expected));
  }
}

TEST_F(RunTest, AnotherIntegrationReusesTheTeacherPassAndTheSeedFixesTheTable) {
  const Result first = run_muki("run " + experiment("a").string());
  ASSERT_EQ(first.code, 0) << first.output;
  const Result other = run_muki("run " + experiment("b").string() +
                                " --set integration='{strategy=\"max\"}'");
  ASSERT_EQ(other.code, 0) << other.output;
  EXPECT_THAT(other.output, HasSubstr("chunks reused from the cache"));
  EXPECT_EQ(summary(run_dir("b"))["teacher_pass.chunks_computed"], "0");
  EXPECT_EQ(summary(run_dir("b"))["integration"], "max");
  // The same config under another name: the same numbers, the same predictions.
  const Result same = run_muki("run " + experiment("c").string());
  ASSERT_EQ(same.code, 0) << same.output;
  EXPECT_EQ(results(run_dir("a")), results(run_dir("c")));
  EXPECT_EQ(read_file(run_dir("a") / "predictions.tsv"), read_file(run_dir("c") / "predictions.tsv"));
  // And `muki compare` lines them up.
  const Result table = run_muki("compare " + run_dir("a").string() + " " + run_dir("b").string());
  ASSERT_EQ(table.code, 0) << table.output;
  EXPECT_THAT(table.output, HasSubstr("| run | uncertainty | integration | options | test acc | macro-F1 | media acc | science acc |"));
  // Only the options that differ between the runs: `max` has no tau.
  EXPECT_THAT(table.output, HasSubstr("| a | mc_dropout (K=4), calibrated | weighted | tau=0.2 | "));
  EXPECT_THAT(table.output, HasSubstr("| b | mc_dropout (K=4), calibrated | max |  | "));
  EXPECT_EQ(summary(run_dir("b"))["integration.options.margin_reweighting"], "true");  // the default
  // Calibration off: the same cached passes, the raw scores, and the summary says so.
  const Result raw = run_muki("run " + experiment("d").string() + " --set uncertainty.calibrate=false");
  ASSERT_EQ(raw.code, 0) << raw.output;
  EXPECT_EQ(summary(run_dir("a"))["uncertainty.calibration"], "dev");
  EXPECT_EQ(summary(run_dir("d"))["uncertainty.calibration"], "off");
  EXPECT_EQ(summary(run_dir("d"))["teacher_pass.chunks_computed"], "0");
  const Result both = run_muki("compare " + run_dir("a").string() + " " + run_dir("d").string());
  EXPECT_THAT(both.output, HasSubstr("| d | mc_dropout (K=4) | weighted | "));
}

// Two runs into one folder (issue 11, finding 5): the second is refused at once with the
// holder's pid; the lock dies with its holder, so a killed run never blocks the next.
TEST_F(RunTest, ASecondRunIntoTheSameFolderIsRefused) {
  const fs::path config = experiment("locked");
  fs::create_directories(run_dir(""));  // for the log: this may be the process's first run
  const pid_t pid = spawn_muki({"run", config.string()}, run_dir("locked.log"));
  ASSERT_GT(pid, 0);
  bool refused = false;
  const bool killed = kill_when(pid, [&] {
    if (!fs::exists(run_dir("locked") / "metrics.jsonl")) return false;
    const Result second = run_muki("run " + config.string());
    EXPECT_EQ(second.code, 1) << second.output;
    EXPECT_THAT(second.output, HasSubstr(run_dir("locked").string() + " is in use by another muki run (pid " +
                                         std::to_string(pid) + "); wait for it to finish"));
    refused = true;
    return true;
  });
  ASSERT_TRUE(killed && refused) << read_file(run_dir("locked.log"));
  const Result after = run_muki("run " + config.string());
  EXPECT_EQ(after.code, 0) << after.output;
  EXPECT_THAT(after.output, HasSubstr("(resuming)"));
}

TEST_F(RunTest, KillDuringTheTeacherPassOrTrainingThenResumeGivesTheSameResults) {
  const Result straight = run_muki("run " + experiment("straight", "").string() +
                                   " --set experiment.cache_dir='\"" + (run_dir("cache-straight")).string() + "\"'");
  ASSERT_EQ(straight.code, 0) << straight.output;

  // 1. Killed as soon as the first teacher-pass chunk is on disk (its own, empty cache).
  const fs::path cache = run_dir("cache-killed");
  const std::vector<std::string> args = {"run", experiment("killed").string(), "--set",
                                         "experiment.cache_dir=\"" + cache.string() + "\""};
  pid_t pid = spawn_muki(args, run_dir("killed.log"));
  const bool killed_in_pass = kill_when(pid, [&] {
    std::error_code ec;
    if (!fs::exists(cache / "teacher-pass", ec)) return false;
    for (const auto& d : fs::directory_iterator(cache / "teacher-pass", ec))
      for (const auto& f : fs::directory_iterator(d.path(), ec))
        if (f.path().extension() == ".bin") return true;
    return false;
  });
  EXPECT_TRUE(killed_in_pass) << read_file(run_dir("killed.log"));
  EXPECT_FALSE(fs::exists(run_dir("killed") / "summary.json"));

  // 2. Started again and killed during training, after its first evaluation.
  pid = spawn_muki(args, run_dir("killed.log"));
  const bool killed_in_training = kill_when(pid, [&] {
    return read_file(run_dir("killed") / "metrics.jsonl").find("\"event\": \"eval\"") != std::string::npos &&
           fs::exists(run_dir("killed") / "state" / "student.pt");
  });
  const std::string log = read_file(run_dir("killed.log"));
  EXPECT_TRUE(killed_in_training) << log;
  EXPECT_THAT(log, HasSubstr("chunks reused from the cache"));  // the pass resumed
  EXPECT_FALSE(fs::exists(run_dir("killed") / "summary.json"));

  // 3. Finished: the same numbers as the run that was never interrupted.
  const Result resumed = run_muki("run " + args[1] + " --set " + args[3]);
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  EXPECT_THAT(resumed.output, HasSubstr("student: resuming from"));
  EXPECT_NE(summary(run_dir("killed"))["train.resumed_from_step"], "0");
  EXPECT_EQ(results(run_dir("killed")), results(run_dir("straight")));
  EXPECT_EQ(read_file(run_dir("killed") / "predictions.tsv"), read_file(run_dir("straight") / "predictions.tsv"));
}

TEST_F(RunTest, ClearErrors) {
  // A run directory holding another config's run.
  ASSERT_EQ(run_muki("run " + experiment("bound").string()).code, 0);
  Result r = run_muki("run " + experiment("bound").string() + " --set experiment.seed=4");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.output, HasSubstr("holds a run of a different config; changed:\n  experiment.seed: 3 -> 4"));
  // An upper bound that needs labels the transfer set was not given: caught by validate.
  r = run_muki("run " + experiment("gold").string() + " --set integration='{strategy=\"gold\"}'");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.output, HasSubstr("'integration.strategy' is \"gold\", which trains on the transfer set's labels "
                                  "(an upper bound for analysis): set data.transfer.label to the label column"));
  // A dev split with a header and no rows selected the student on nothing, silently.
  const fs::path empty_dev = dir_->write("empty-dev.tsv", "id\tgroup\tlabel\ttext\n");
  r = run_muki("run " + experiment("empty-dev").string() + " --set 'data.dev={path=\"" + empty_dev.string() +
               "\", label=\"label\"}'");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.output, HasSubstr("data.dev (" + empty_dev.string() + ") holds no example with a label the "
                                  "teachers know (0 rows read): the student would be selected on nothing"));
  // A reference that does not know every label.
  r = run_muki("run " + experiment("ref", "[reference]\nadapter = \"native\"\noptions = { checkpoint = \"" +
                                              media_->string() + "\" }\n").string());
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.output, HasSubstr("reference teacher 'reference' has no label 'science' of the union"));
  // A feature objective with a teacher that has no features (a 1.0 plugin), refused by name before
  // any teacher pass.
  r = run_muki("run " + experiment("nofeatures", "[[teachers]]\nname = \"length\"\nadapter = \"abi10_length\"\n"
                                                 "[plugins]\npaths = [\"" + muki::test::fixture_dir("abi10").string() + "\"]\n").string() +
               " --set integration='{strategy=\"dfa\"}'");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.output, HasSubstr("integration strategy 'dfa' reads the teachers' features, but teacher "
                                  "'length' (adapter 'abi10_length') gives none"));
  EXPECT_FALSE(fs::exists(run_dir("nofeatures") / "summary.json"));
  // A student table with a typo is caught before anything runs, with its position.
  r = run_muki("run " + experiment("typo", "").string() + " --set student.train.epoch=2");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.output, HasSubstr("unknown key 'student.train.epoch' (did you mean 'epochs'?)"));
}

// What the integration strategy would refuse once the teacher pass is over, validate refuses
// before it: validate loads the teachers and integrates one synthetic example with their labels.
TEST_F(RunTest, ValidateRefusesCompositionsTheIntegrationStrategyRefuses) {
  // UHC needs disjoint label sets; the media teacher twice overlaps in every label.
  const fs::path overlapping = experiment("overlap", "[[teachers]]\nname = \"media2\"\nadapter = \"native\"\n"
                                                     "options = { checkpoint = \"" + media_->string() + "\" }\n");
  Result r = run_muki("validate " + overlapping.string() + " --set integration='{strategy=\"uhc\"}'");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("these teachers cannot be integrated: integration strategy 'uhc' (uhc): "
                                  "integrate failed: uhc: the teachers' label sets overlap (teachers 0 and 2 "
                                  "both map a label to union index 0)"));
  // Margin re-weighting takes the margin between the two most certain teachers: one is not enough.
  r = run_muki("validate " + experiment("one").string() + " --set teachers='[{name=\"media\", adapter=\"native\", "
               "options={checkpoint=\"" + media_->string() + "\"}}]'");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("margin re-weighting needs at least two teachers"));
  r = run_muki("validate " + experiment("one").string() + " --set teachers='[{name=\"media\", adapter=\"native\", "
               "options={checkpoint=\"" + media_->string() + "\"}}]' --set integration.options.margin_reweighting=false");
  EXPECT_EQ(r.code, 0) << r.output;
  // The same composition, disjoint: valid.
  r = run_muki("validate " + experiment("disjoint").string() + " --set integration='{strategy=\"uhc\"}'");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr(": valid\n"));
}

namespace {
const fs::path kFrench = muki::test::source_dir() / "data" / "ddtp-fr";

std::string tiny_teacher_tables() {
  return "[data]\ntrain = { path = \"" + (kData / "train.tsv").string() + "\", label = \"label\" }\n"
         "dev = { path = \"" + (kData / "dev.tsv").string() + "\", label = \"label\" }\n"
         "[tokenizer]\nvocab_size = 2000\n"
         "[model]\ntype = \"bag_of_embeddings\"\nhidden = 32\nmax_length = 64\ndropout = 0.2\n"
         "[train]\nepochs = 6\nbatch_size = 32\nlr = 1e-2\neval_every = 0\n";
}

std::string tiny_student(const std::string& name, const fs::path& runs) {
  return "[experiment]\nname = \"" + name + "\"\nseed = 1\ndevice = \"cpu\"\nthreads = 1\n"
         "output_dir = \"" + (runs / "${name}").string() + "\"\n"
         "[uncertainty]\nstrategy = \"mc_dropout\"\noptions = { samples = 4 }\n"
         "[integration]\nstrategy = \"weighted\"\n"
         "[student]\ntokenizer = { vocab_size = 2000 }\n"
         "model = { type = \"bag_of_embeddings\", hidden = 32, max_length = 64 }\n"
         "train = { epochs = 2, batch_size = 32, lr = 1e-2, eval_every = 50 }\n";
}

std::string native(const std::string& name, const fs::path& checkpoint) {
  return "[[teachers]]\nname = \"" + name + "\"\nadapter = \"native\"\noptions = { checkpoint = \"" +
         checkpoint.string() + "\" }\n";
}
}  // namespace

// Heterogeneous teachers (a native model and a fastText one that `muki teacher train` trains with
// the fasttext tool), one trained on French, label sets that overlap in "text", and a transfer set
// of two languages read from two files: the shapes of the paper's settings, small enough for CI.
TEST_F(RunTest, HeterogeneousCrossLingualOverlappingTeachersInOneRun) {
  const fs::path t = dir_->path() / "mixed";
  const std::string teachers =
      "[[teacher]]\nname = \"media\"\noutput = \"" + (t / "media").string() +
      "\"\nlabels = [\"games\", \"sound\", \"graphics\", \"text\"]\n"
      "[[teacher]]\nname = \"text_net\"\noutput = \"" + (t / "text_net").string() +
      "\"\nlabels = [\"text\", \"net\", \"admin\"]\nmodel = { type = \"fasttext\", hidden = 50 }\n"
      "train = { epochs = 25, lr = 1.0 }\n"
      "[[teacher]]\nname = \"french\"\noutput = \"" + (t / "french").string() +
      "\"\nlabels = [\"science\", \"math\"]\ndata = { train = { path = \"" + (kFrench / "train.tsv").string() +
      "\", label = \"label\" }, dev = { path = \"" + (kFrench / "dev.tsv").string() + "\", label = \"label\" } }\n" +
      tiny_teacher_tables();
  const fs::path teacher_file = dir_->write("mixed-teachers.toml", teachers);
  const std::string experiment =
      tiny_student("mixed", dir_->path() / "runs") + "[prepare]\nteachers = \"" + teacher_file.string() + "\"\n" +
      "[data]\ntransfer = { path = [\"" + (kData / "train.tsv").string() + "\", \"" + (kFrench / "train.tsv").string() + "\"] }\n"
      "test = { path = [\"" + (kData / "test.tsv").string() + "\", \"" + (kFrench / "test.tsv").string() + "\"], label = \"label\" }\n" +
      native("media", t / "media") +
      "[[teachers]]\nname = \"text_net\"\nadapter = \"fasttext\"\noptions = { model = \"" +
      (t / "text_net" / "model.bin").string() + "\" }\n" + native("french", t / "french");
  const fs::path config = dir_->write("mixed.toml", experiment);
  // Valid before anything is trained: [prepare] will make the checkpoints.
  Result r = run_muki("validate " + config.string());
  ASSERT_EQ(r.code, 0) << r.output;
  r = run_muki("run " + config.string());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("prepare: teachers of"));
  EXPECT_THAT(r.output, HasSubstr("word dropout"));  // the fastText teacher's stochastic passes
  EXPECT_TRUE(fs::exists(t / "text_net" / "model.bin"));
  // "text" is one union label, owned by two teachers.
  EXPECT_EQ(read_file(run_dir("mixed") / "labels.txt"),
            "games\nsound\ngraphics\ntext\nnet\nadmin\nscience\nmath\n");
  auto s = summary(run_dir("mixed"));
  EXPECT_EQ(s["test.examples"], "928");  // 550 English + 378 French
  EXPECT_EQ(s["transfer.examples"], "7042");
  // Small teachers of three kinds, uncalibrated against each other, and a two-epoch student:
  // better than guessing, not good. Guessing is 1/8 for a label and about 1/3 for the teacher.
  EXPECT_GT(std::stod(s["test.accuracy"]), 1.0 / 8) << read_file(run_dir("mixed") / "summary.json");
  EXPECT_GT(std::stod(s["test.selection_accuracy"]), 1.0 / 3);
  for (const char* teacher : {"media", "text_net", "french"})
    EXPECT_EQ(s.count(std::string("test.teacher.") + teacher + ".accuracy"), 1u) << teacher;
  EXPECT_NE(read_file(t / "text_net" / "train_report.json").find("\"type\": \"fasttext\""), std::string::npos);
  // DFA and CFL over heterogeneous features (32, 50 and 32 wide) into a 32-wide student, with the
  // same teacher passes (deterministic, now with features).
  for (const char* strategy : {"dfa", "cfl"}) {
    const std::string name = std::string("mixed-") + strategy;
    r = run_muki("run " + config.string() + " --set experiment.name='\"" + name +
                 "\"' --set integration='{strategy=\"" + strategy + "\"}'");
    ASSERT_EQ(r.code, 0) << r.output;
    s = summary(run_dir(name));
    EXPECT_EQ(s["integration"], strategy);
    EXPECT_EQ(s["integration.options.feature_weight"], "1.0");
    EXPECT_EQ(s.count("test.selection_accuracy"), 0u);  // no certainty: no selection
    EXPECT_GT(std::stod(s["test.accuracy"]), 1.0 / 8) << read_file(run_dir(name) / "summary.json");
  }
  // UHC's per-teacher blocks cannot overlap: refused, with the plugin's reason.
  r = run_muki("run " + config.string() + " --set experiment.name='\"mixed-uhc\"' --set integration='{strategy=\"uhc\"}'");
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.output, HasSubstr("uhc: the teachers' label sets overlap"));
}

// Two runs of one config started together (scripts/quickstart.sh runs its variants so): each
// missing teacher is trained by one of them and each cached teacher-pass chunk computed by one
// (file_lock.h), and both end as a run alone would.
TEST_F(RunTest, RunsStartedTogetherDivideTheirTeachersAndTeacherPasses) {
  const fs::path t = dir_->path() / "together";
  const fs::path teacher_file = dir_->write(
      "together-teachers.toml",
      "[[teacher]]\nname = \"media\"\noutput = \"" + (t / "media").string() +
          "\"\nlabels = [\"games\", \"sound\", \"graphics\", \"text\"]\n"
          "[[teacher]]\nname = \"science\"\noutput = \"" + (t / "science").string() +
          "\"\nlabels = [\"science\", \"math\", \"net\", \"admin\"]\n" + tiny_teacher_tables());
  const fs::path config = dir_->write(
      "together.toml", tiny_student("together", dir_->path() / "runs") + "[prepare]\nteachers = \"" +
                           teacher_file.string() + "\"\n[data]\ntransfer = { path = \"" + (kData / "train.tsv").string() +
                           "\" }\ntest = { path = \"" + (kData / "test.tsv").string() + "\", label = \"label\" }\n" +
                           native("media", t / "media") + native("science", t / "science"));
  std::vector<pid_t> pids;
  for (const char* name : {"together-a", "together-b"})
    pids.push_back(spawn_muki({"run", config.string(), "--set", "experiment.deterministic=true", "--set",
                               std::string("experiment.name=\"") + name + "\""},
                              dir_->path() / (std::string(name) + ".log")));
  for (pid_t pid : pids) {
    ASSERT_GT(pid, 0);
    int status = -1;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  const std::string logs = read_file(dir_->path() / "together-a.log") + read_file(dir_->path() / "together-b.log");
  for (const char* teacher : {"media", "science"}) {  // trained once, by one of the two
    const std::string done = std::string("teacher '") + teacher + "' done";
    size_t count = 0;
    for (size_t at = logs.find(done); at != std::string::npos; at = logs.find(done, at + 1)) ++count;
    EXPECT_EQ(count, 1u) << teacher << "\n" << logs;
  }
  auto a = summary(run_dir("together-a")), b = summary(run_dir("together-b"));
  const int64_t chunks = std::stoll(a["teacher_pass.chunks_computed"]) + std::stoll(a["teacher_pass.chunks_cached"]);
  EXPECT_EQ(std::stoll(a["teacher_pass.chunks_computed"]) + std::stoll(b["teacher_pass.chunks_computed"]), chunks) << logs;
  // Alone, a third run with the same seed finds every chunk cached and trains the same student.
  const Result alone =
      run_muki("run " + config.string() + " --set experiment.deterministic=true --set experiment.name='\"together-c\"'");
  ASSERT_EQ(alone.code, 0) << alone.output;
  auto c = summary(run_dir("together-c"));
  EXPECT_EQ(c["teacher_pass.chunks_cached"], std::to_string(chunks));
  EXPECT_EQ(c["test.accuracy"], a["test.accuracy"]);
  EXPECT_EQ(c["test.accuracy"], b["test.accuracy"]);
}

// Incremental integration: a student is a teacher like any other. Stage 2 integrates stage 1's
// student with a newer teacher; [prepare] runs stage 1 first.
TEST_F(RunTest, IncrementalIntegrationRunsTheEarlierStageFirst) {
  const fs::path t = dir_->path() / "incremental";
  std::string teachers;
  for (const auto& [name, labels] :
       {std::pair<std::string, std::string>{"a", R"(["games", "sound"])"}, {"b", R"(["graphics", "text"])"},
        {"c", R"(["science", "math", "net", "admin"])"}})
    teachers += "[[teacher]]\nname = \"" + name + "\"\noutput = \"" + (t / name).string() + "\"\nlabels = " + labels + "\n";
  const fs::path teacher_file = dir_->write("inc-teachers.toml", teachers + tiny_teacher_tables());
  const std::string data = "[data]\ntransfer = { path = \"" + (kData / "train.tsv").string() + "\" }\n"
                           "test = { path = \"" + (kData / "test.tsv").string() + "\", label = \"label\" }\n";
  const std::string prepare = "[prepare]\nteachers = \"" + teacher_file.string() + "\"\n";
  const fs::path stage1 = dir_->write("stage1.toml", tiny_student("stage1", dir_->path() / "runs") + prepare +
                                                          data + native("a", t / "a") + native("b", t / "b"));
  const fs::path stage2 = dir_->write(
      "stage2.toml", tiny_student("stage2", dir_->path() / "runs") + prepare + "runs = \"" + stage1.string() + "\"\n" +
                         data + native("stage1", run_dir("stage1") / "student") + native("c", t / "c") +
                         "[report]\ncompare = \"" + run_dir("stage1").string() + "\"\n");
  // A folder to compare with must exist or be made by [prepare].
  std::string typo_text = read_file(stage2);
  typo_text.replace(typo_text.rfind("stage1"), 6, "stage9");
  const fs::path typo = dir_->write("typo.toml", typo_text);
  Result r = run_muki("validate " + typo.string());
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.output, HasSubstr("'report.compare': " + run_dir("stage9").string() + " does not exist"));
  r = run_muki("validate " + stage2.string());
  ASSERT_EQ(r.code, 0) << r.output;
  r = run_muki("run " + stage2.string());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("prepare: running " + stage1.string() + " first"));
  EXPECT_EQ(read_file(run_dir("stage1") / "labels.txt"), "games\nsound\ngraphics\ntext\n");
  EXPECT_EQ(read_file(run_dir("stage2") / "labels.txt"),
            "games\nsound\ngraphics\ntext\nscience\nmath\nnet\nadmin\n");
  // The stage-1 student's sections are still known after stage 2: better than guessing (1/8).
  EXPECT_GT(std::stod(summary(run_dir("stage2"))["test.teacher.stage1.accuracy"]), 1.0 / 8);
  EXPECT_GT(std::stod(summary(run_dir("stage2"))["test.accuracy"]), 1.0 / 8);
  // Its report shows stage 1 beside it: stage 1's accuracy, and a dash for the labels it lacks.
  const std::string html = read_file(run_dir("stage2") / "report" / "report.html");
  EXPECT_THAT(html, HasSubstr("<h2>Compared with other runs</h2>"));
  auto percent = [&](const std::string& run, const std::string& key) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", 100.0 * std::stod(summary(run_dir(run))[key]));
    return std::string(buf);
  };
  EXPECT_THAT(html, HasSubstr("<td class=\"l\">" + run_dir("stage1").string() + "</td><td class=\"l\">a, b</td>"));
  EXPECT_THAT(html, HasSubstr("<td>" + percent("stage1", "test.accuracy") + "</td>"));
  EXPECT_THAT(html, HasSubstr("<tr><td class=\"l\">games</td><td>" + percent("stage2", "test.class.games.recall") +
                              "</td><td>" + percent("stage1", "test.class.games.recall") + "</td></tr>"));
  EXPECT_THAT(html, HasSubstr("<tr><td class=\"l\">science</td><td>" + percent("stage2", "test.class.science.recall") +
                              "</td><td>&ndash;</td></tr>"));
  // Run again: stage 1 has run, so only stage 2 resumes (and finds itself finished).
  r = run_muki("run " + stage2.string());
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("has run already"));
}

TEST_F(RunTest, SweepRunsTheGridWithEverySeedAndAveragesThem) {
  const std::string grid = "--grid 'integration={strategy=\"max\"},{strategy=\"weighted\"}' --seeds 1,2";
  const fs::path out = run_dir("sweep");
  const Result r = run_muki("sweep " + experiment("sw").string() + " " + grid + " --output " + out.string());
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* run : {"max/seed-1", "max/seed-2", "weighted/seed-1", "weighted/seed-2"})
    EXPECT_TRUE(fs::exists(out / run / "summary.json")) << run;
  const std::string md = read_file(out / "results.md");
  EXPECT_THAT(md, HasSubstr("| integration | seeds | test acc | macro-F1 | selection acc | target acc | media acc | science acc |"));
  EXPECT_THAT(md, HasSubstr("| max | 2 | "));
  EXPECT_THAT(md, HasSubstr("| weighted | 2 | "));
  EXPECT_THAT(md, HasSubstr(" ± "));
  EXPECT_THAT(read_file(out / "results.csv"),
              HasSubstr("integration,seeds,test.accuracy.mean,test.accuracy.std,test.macro_f1.mean"));
  // The two integrations of one seed share that seed's teacher pass.
  EXPECT_EQ(summary(out / "weighted" / "seed-1")["teacher_pass.chunks_computed"], "0");
  // Means are over the seeds' own summaries.
  const double a = std::stod(summary(out / "max" / "seed-1")["test.accuracy"]);
  const double b = std::stod(summary(out / "max" / "seed-2")["test.accuracy"]);
  char expected[64];
  std::snprintf(expected, sizeof expected, "| max | 2 | %.1f ± %.1f |", 50.0 * (a + b),
                100.0 * std::abs(a - b) / std::sqrt(2.0));
  EXPECT_THAT(md, HasSubstr(expected));
  // Seeds that would count twice, or are not seeds, are refused.
  EXPECT_THAT(run_muki("sweep " + experiment("sw").string() + " --seeds 1,1").output,
              HasSubstr("--seeds: 1 is given twice"));
  EXPECT_THAT(run_muki("sweep " + experiment("sw").string() + " --seeds 2abc").output,
              HasSubstr("--seeds: '2abc' is not a seed"));
  // A bad grid is refused before anything runs.
  const Result bad = run_muki("sweep " + experiment("sw").string() + " --grid 'integration={strategy=\"max\"'");
  EXPECT_EQ(bad.code, 1);
  EXPECT_THAT(bad.output, HasSubstr("unbalanced quotes or brackets"));
  // So is a grid key no run can take, before any run (it used to fail every run in turn): once
  // per value, not once per seed.
  const Result typo = run_muki("sweep " + experiment("sw").string() + " --grid 'integration.options.tauu=0.1,0.2'" +
                               " --seeds 1,2 --output " + run_dir("sweep-typo").string());
  EXPECT_EQ(typo.code, 1) << typo.output;
  EXPECT_THAT(typo.output, HasSubstr("--set integration.options.tauu=0.1:1:5: unknown key 'integration.options.tauu' "
                                     "(did you mean 'tau'?)\n--set integration.options.tauu=0.2:1:5: unknown key"));
  EXPECT_EQ(muki::test::count_lines_with(typo.output, "unknown key 'integration.options.tauu'"), 2u) << typo.output;
  EXPECT_FALSE(fs::exists(run_dir("sweep-typo")));
}

TEST_F(RunTest, TheReportOpensInChromiumWithTheUncertaintyFigure) {
  ASSERT_EQ(run_muki("run " + experiment("report").string()).code, 0);
  const fs::path report = run_dir("report") / "report" / "report.html";
  ASSERT_TRUE(fs::exists(report));
  const std::string html = read_file(report);
  EXPECT_THAT(html, HasSubstr("<figure id=\"figure-uncertainty\"><svg"));
  EXPECT_THAT(html, HasSubstr("MC dropout (K = 4)"));
  EXPECT_THAT(html, HasSubstr("single-pass entropy"));
  EXPECT_THAT(html, HasSubstr("mc_dropout, calibrated (rank)"));  // the run's own, as it integrated
  for (const char* f : {"uncertainty.png", "training.png", "classes.png"})
    EXPECT_GT(fs::file_size(run_dir("report") / "report" / "figures" / f), 5000u) << f;
  // Debian's chromium, headless, as the project's setup installs it.
  const std::string chromium =
      "chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
      "--disable-background-networking --disable-component-update --disable-sync "
      "--enable-logging=stderr --v=0 --user-data-dir=" + (dir_->path() / "chromium").string() +
      " --window-size=1000,2400 ";
  const fs::path shot = dir_->path() / "report.png";
  const Result dom = muki::test::run_command(chromium + "--dump-dom file://" + report.string());
  ASSERT_EQ(dom.code, 0) << dom.output;
  EXPECT_THAT(dom.output, HasSubstr("id=\"figure-uncertainty\""));
  EXPECT_THAT(dom.output, ::testing::Not(HasSubstr(":CONSOLE")));  // no script error, no message
  const Result screenshot = muki::test::run_command(chromium + "--screenshot=" + shot.string() + " file://" + report.string());
  ASSERT_EQ(screenshot.code, 0) << screenshot.output;
  EXPECT_GT(fs::file_size(shot), 50000u);  // a page with figures, not a blank one
}

TEST(RepositoryConfigs, EveryConfigIsValid) {
  // From the repository root, as the README runs them: teacher outputs (relative to the working
  // folder) and experiments' checkpoints (relative to configs/) then meet.
  // Experiments: configs/*.toml, their pre-trained variants in configs/pretrained/ and the fast
  // quickstart in configs/fast/ (teacher files are checked through the experiments' [prepare];
  // configs/pretrain/ by the next test).
  std::vector<fs::path> experiments;
  for (const char* folder : {"configs", "configs/pretrained", "configs/fast"})
    for (const auto& entry : fs::directory_iterator(muki::test::source_dir() / folder))
      if (entry.path().extension() == ".toml") experiments.push_back(entry.path());
  EXPECT_GE(experiments.size(), 13u);
  for (const fs::path& config : experiments) {
    const Result r = muki::test::run_command("cd " + muki::test::source_dir().string() + " && env -u MUKI_PLUGIN_PATH " +
                                  muki_binary() + " validate " + config.string());
    EXPECT_EQ(r.code, 0) << config << "\n" << r.output;
    EXPECT_THAT(r.output, HasSubstr(": valid")) << config;
  }
}
