// Config loading, --set overrides and validation messages (file:line:col, all problems at once).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include <muki/experiment/config.h>

#include "../test_support.h"

using muki::core::Config;
using muki::core::ConfigError;
using muki::core::ConfigProblem;
using muki::registry::Kind;
using muki::registry::Registry;
using muki::test::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

namespace {

const char* kValid = R"([experiment]
name = "two-teachers"
seed = 3
device = "auto"

[[teachers]]
name = "lengths"
adapter = "fixture_length"

[[teachers]]
name = "lengths2"
adapter = "FIXTURE_LENGTH"

[uncertainty]
strategy = "mc_dropout"
options = { samples = 8 }

[integration]
strategy = "weighted"
options = { tau = 0.2, margin_reweighting = true }
)";

Registry& registry() {
  static Registry* r = [] {
    // Only the strategies and the fixtures, so that messages listing what is available do not
    // change when a new teacher plugin is added to the tree.
    auto* reg = new Registry();
    reg->load_library(muki::test::plugin_dir() / "libmuki_uncertainty_builtin.so");
    reg->load_library(muki::test::plugin_dir() / "libmuki_integration_builtin.so");
    reg->scan({muki::test::fixture_dir("good")});
    return reg;
  }();
  return *r;
}

std::vector<std::string> problems_of_in(const Config& config);
std::vector<std::string> problems_of(const std::string& text) {
  return problems_of_in(Config::parse(text, "exp.toml", "/tmp"));
}

std::vector<std::string> problems_of_in(const Config& config) {
  std::vector<std::string> out;
  for (const auto& p : muki::core::validate(config, registry())) out.push_back(p.format());
  return out;
}

std::string override_error(Config& config, const std::string& assignment) {
  try {
    config.apply_override(assignment);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(Config, SyntaxErrorNamesFileLineAndColumn) {
  TempDir dir;
  const auto path = dir.write("bad.toml", "[experiment]\nname = \"x\"\nseed = = 3\n");
  try {
    Config::load(path);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    ASSERT_EQ(e.problems().size(), 1u);
    EXPECT_EQ(e.problems()[0].source, path.string());
    EXPECT_EQ(e.problems()[0].line, 3u);
    EXPECT_THAT(e.what(), HasSubstr(path.string() + ":3:"));
  }
}

TEST(Config, MissingFileIsReported) {
  try {
    Config::load("/no/such/exp.toml");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "/no/such/exp.toml: cannot open the config file");
  }
}

TEST(Config, BaseDirIsTheConfigsFolder) {
  TempDir dir;
  const auto path = dir.write("sub/exp.toml", "[plugins]\npaths = [\"../plugins\"]\n");
  const Config config = Config::load(path);
  EXPECT_EQ(config.base_dir(), std::filesystem::absolute(dir.path() / "sub"));
  EXPECT_THAT(config.plugin_paths(), ElementsAre(dir.path() / "plugins"));
}

TEST(ConfigOverrides, TypedValuesBareWordsAndNewTables) {
  Config config = Config::parse(kValid, "exp.toml", "/tmp");
  config.apply_override("experiment.seed=7");
  config.apply_override("experiment.device=cpu");  // a bare word is a string
  config.apply_override("uncertainty.options.samples=32");
  config.apply_override("student.train.lr=5e-4");  // tables are created
  config.apply_override("plugins.paths=[\"a\", \"b\"]");
  EXPECT_EQ(config.root().at_path("experiment.seed").value<int64_t>(), 7);
  EXPECT_EQ(config.root().at_path("experiment.device").value<std::string>(), "cpu");
  EXPECT_EQ(config.root().at_path("uncertainty.options.samples").value<int64_t>(), 32);
  EXPECT_DOUBLE_EQ(*config.root().at_path("student.train.lr").value<double>(), 5e-4);
  EXPECT_EQ(config.root().at_path("plugins.paths").as_array()->size(), 2u);
}

TEST(ConfigOverrides, ArrayElementsByIndexInBothSpellings) {
  Config config = Config::parse(kValid, "exp.toml", "/tmp");
  config.apply_override("teachers.1.name=\"renamed\"");
  config.apply_override("teachers[0].options.model=\"m.bin\"");
  EXPECT_EQ(config.root().at_path("teachers[1].name").value<std::string>(), "renamed");
  EXPECT_EQ(config.root().at_path("teachers[0].options.model").value<std::string>(), "m.bin");
}

TEST(ConfigOverrides, LaterOverridesWin) {
  Config config = Config::parse(kValid, "exp.toml", "/tmp");
  config.apply_override("experiment.seed=1");
  config.apply_override("experiment.seed=2");
  EXPECT_EQ(config.root().at_path("experiment.seed").value<int64_t>(), 2);
}

TEST(ConfigOverrides, ErrorsSayWhatIsWrong) {
  Config config = Config::parse(kValid, "exp.toml", "/tmp");
  EXPECT_EQ(override_error(config, "experiment.seed"),
            "--set experiment.seed: expected KEY=VALUE, e.g. experiment.seed=2");
  EXPECT_EQ(override_error(config, "teachers.5.name=x"),
            "--set teachers.5.name=x: 'teachers.5' is out of range (the array has 2 elements)");
  EXPECT_EQ(override_error(config, "experiment.seed.x=1"),
            "--set experiment.seed.x=1: 'experiment.seed' is a value, not a table");
  EXPECT_EQ(override_error(config, "experiment.name=[1,"),
            "--set experiment.name=[1,: '[1,' is not a TOML value");
}

TEST(ConfigOverrides, OverriddenValuesAreValidatedWithTheirOrigin) {
  Config config = Config::parse(kValid, "exp.toml", "/tmp");
  config.apply_override("uncertainty.options.samples=\"many\"");
  const auto problems = muki::core::validate(config, registry());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].format(),
            "--set uncertainty.options.samples=\"many\":1:5: 'uncertainty.options.samples' must "
            "be an integer");
}

TEST(ConfigValidate, AValidExperimentHasNoProblems) {
  EXPECT_THAT(problems_of(kValid), ElementsAre());
}

TEST(ConfigValidate, ReportsEveryProblemWithItsPosition) {
  const std::string text = R"([experiment]
seed = "three"
device = "gpu"
colour = "blue"

[[teachers]]
name = "a"
adapter = "bert"

[[teachers]]
name = "a"
adapter = "fixture_length"
options = { x = 1 }

[uncertainty]
strategy = "mc_dropout"
options = { sampels = 8 }

[integration]
strategy = "weighted"
options = { tau = -1.0, margin_reweighting = "yes" }
)";
  EXPECT_THAT(
      problems_of(text),
      ElementsAre(
          "exp.toml:1:1: missing required key 'experiment.name'",
          "exp.toml:2:8: 'experiment.seed' must be an integer",
          "exp.toml:3:10: 'experiment.device' must be a device string (auto, cpu, cuda or cuda:N)",
          "exp.toml:4:1: unknown key 'experiment.colour' (known keys: name, seed, device, "
          "output_dir, cache_dir, threads, deterministic)",
          "exp.toml:8:11: 'teachers[0].adapter': teacher adapter 'bert' not found; available: "
          "fixture_length",
          "exp.toml:11:8: 'teachers' has two entries named \"a\"",
          "exp.toml:13:13: unknown key 'teachers[1].options.x' (this table takes no keys)",
          "exp.toml:17:13: unknown key 'uncertainty.options.sampels' (did you mean 'samples'?)",
          "exp.toml:21:19: 'integration.options.tau' is -1; it must lie in [0.0001, 10000]",
          "exp.toml:21:46: 'integration.options.margin_reweighting' must be a boolean"));
}

TEST(ConfigValidate, MissingSectionsAndPluginNames) {
  EXPECT_THAT(problems_of("[experiment]\nname = \"x\"\n[uncertainty]\nstrategy = \"nope\"\n"),
              ElementsAre("exp.toml:1:1: missing required key 'teachers'",
                          "exp.toml:1:1: missing required key 'integration'",
                          "exp.toml:4:12: 'uncertainty.strategy': uncertainty strategy 'nope' not "
                          "found; available: bald, density_ratio, energy, entropy, knn, mahalanobis, "
                          "mc_dropout, relative_mahalanobis, throwing"));
}

TEST(ConfigValidate, PathOptionsMustExistRelativeToTheConfig) {
  TempDir dir;
  dir.write("data/train.tsv", "id\tgroup\tlabel\ttext\n");
  const std::string text = std::string(kValid) +
                           "[data]\ntransfer = { path = \"data/train.tsv\" }\n"
                           "test = { path = \"data/test.tsv\", label = \"label\" }\n";
  const Config config = Config::parse(text, "exp.toml", dir.path());
  const auto problems = muki::core::validate(config, registry());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].format(), "exp.toml:23:17: 'data.test.path': " +
                                      (dir.path() / "data/test.tsv").string() + " does not exist");
}

TEST(ConfigValidate, LabeledSplitsNeedALabelField) {
  TempDir dir;
  dir.write("dev.tsv", "");
  const std::string text = std::string(kValid) + "[data]\ndev = { path = \"dev.tsv\" }\n";
  const auto problems = muki::core::validate(Config::parse(text, "exp.toml", dir.path()), registry());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_THAT(problems[0].format(), HasSubstr("missing required key 'data.dev.label'"));
}

TEST(ConfigPluginOptions, PathParametersAreMadeAbsolute) {
  // mc_dropout has no PATH parameter; the options pass through unchanged.
  const Config config = Config::parse(kValid, "exp.toml", "/tmp");
  const std::string toml = muki::core::plugin_options_toml(
      config.root().at_path("uncertainty.options").as_table(), config, registry(),
      Kind::Uncertainty, "mc_dropout");
  EXPECT_EQ(toml, "samples = 8");
  EXPECT_EQ(muki::core::plugin_options_toml(nullptr, config, registry(), Kind::Uncertainty,
                                            "entropy"),
            "");
}

namespace {
// A teacher-training file with two [[teacher]] entries over one shared [data] / [model].
const char* kTeacherFile = R"([[teacher]]
name = "a"
output = "out/a"
labels = ["x", "y"]

[[teacher]]
name = "b"
output = "out/b"
labels = ["z"]
model = { type = "cnn", filters = 8 }
data = { train = { path = "other.tsv", label = "label" } }

[data]
train = { path = "train.tsv", label = "label" }
dev = { path = "dev.tsv", label = "label" }

[model]
type = "transformer"
hidden = 32
heads = 4
)";

std::vector<std::string> teacher_problems(const Config& config) {
  std::vector<std::string> out;
  for (const auto& p : muki::core::validate_teacher_training(config)) out.push_back(p.format());
  return out;
}
}  // namespace

TEST(TeacherFile, EntriesShareTheFileTablesAndOverrideKeyByKey) {
  TempDir dir;
  for (const char* f : {"train.tsv", "dev.tsv", "other.tsv"}) dir.write(f, "");
  const Config file = Config::parse(kTeacherFile, "t.toml", dir.path());
  const auto entries = muki::core::teacher_entries(file);
  ASSERT_EQ(entries.size(), 2u);
  const toml::table& a = entries[0].root();
  EXPECT_EQ(a.at_path("teacher.name").value_or(std::string()), "a");
  EXPECT_EQ(a.at_path("model.type").value_or(std::string()), "transformer");
  EXPECT_EQ(a.at_path("data.train.path").value_or(std::string()), "train.tsv");
  const toml::table& b = entries[1].root();
  EXPECT_EQ(b.at_path("model.type").value_or(std::string()), "cnn");     // overridden
  EXPECT_EQ(b.at_path("model.hidden").value_or(int64_t{0}), 32);         // shared
  EXPECT_EQ(b.at_path("model.filters").value_or(int64_t{0}), 8);         // added
  EXPECT_EQ(b.at_path("data.train.path").value_or(std::string()), "other.tsv");
  EXPECT_EQ(b.at_path("data.dev.path").value_or(std::string()), "dev.tsv");
  EXPECT_FALSE(b.at_path("teacher.model"));  // moved out of the entry
  EXPECT_THAT(teacher_problems(file), ElementsAre());
  // A one-teacher file comes back as it is.
  EXPECT_EQ(muki::core::teacher_entries(entries[0]).size(), 1u);
}

TEST(TeacherFile, ProblemsOfEveryEntryAtTheirPositionsOnce) {
  TempDir dir;
  for (const char* f : {"train.tsv", "dev.tsv", "other.tsv"}) dir.write(f, "");
  std::string text = kTeacherFile;
  text.replace(text.find("name = \"b\""), 10, "name = \"a\"");               // a duplicate name
  text.replace(text.find("labels = [\"z\"]"), 14, "labels = [\"z\", \"z\"]");  // a label twice
  text.replace(text.find("heads = 4"), 9, "heads = 5");                      // shared: once
  EXPECT_THAT(teacher_problems(Config::parse(text, "t.toml", dir.path())),
              ElementsAre("t.toml:7:8: 'teacher' has two entries named \"a\"",
                          "t.toml:9:16: 'teacher.labels' lists \"z\" twice",
                          "t.toml:20:9: 'model.heads' (5) must divide 'model.hidden' (32)"));
  // fastText is a teacher type, with its own key; a student cannot be one.
  text = std::string(kTeacherFile);
  text.replace(text.find("model = { type = \"cnn\", filters = 8 }"), 37,
               "model = { type = \"fasttext\", word_ngrams = 9 }");
  EXPECT_THAT(teacher_problems(Config::parse(text, "t.toml", dir.path())),
              ElementsAre("t.toml:10:44: 'teacher[1].model.word_ngrams' is 9; it must lie in [1, 5]"));
  EXPECT_THAT(problems_of(std::string(kValid) + "[student]\nmodel = { type = \"fasttext\" }\n"),
              ElementsAre(HasSubstr("'student.model.type' is \"fasttext\"; expected one of: "
                                    "transformer, bag_of_embeddings, cnn")));
}

TEST(ConfigValidate, PrepareCoversThePathsItWillCreateAndChecksItsFiles) {
  TempDir dir;
  for (const char* f : {"train.tsv", "dev.tsv", "other.tsv"}) dir.write(f, "");
  // Teacher outputs are relative to the working folder: absolute ones make the test independent
  // of it.
  std::string teachers = kTeacherFile;
  for (const char* out : {"out/a", "out/b"})
    teachers.replace(teachers.find(std::string("\"") + out + "\""), 7, "\"" + (dir.path() / out).string() + "\"");
  dir.write("teachers.toml", teachers);
  // A checkpoint that [prepare] will train is not "missing"; one it will not train is.
  const std::string text = std::string(kValid) +
                           "[prepare]\nteachers = \"teachers.toml\"\n"
                           "[data]\ntransfer = { path = [\"train.tsv\", \"out/a/labels.txt\"] }\n"
                           "test = { path = \"out/c/x.tsv\", label = \"label\" }\n";
  const Config config = Config::parse(text, "exp.toml", dir.path());
  EXPECT_THAT(muki::core::prepared_outputs(config), ElementsAre(dir.path() / "out/a", dir.path() / "out/b"));
  EXPECT_THAT(problems_of_in(config), ElementsAre("exp.toml:25:17: 'data.test.path': " +
                                                  (dir.path() / "out/c/x.tsv").string() + " does not exist"));
  // A broken teacher file is reported at its own file and line (and covers nothing any more).
  dir.write("teachers.toml", "[[teacher]]\nname = 3\noutput = \"x\"\n" + std::string(kTeacherFile).substr(std::string(kTeacherFile).find("[data]")));
  EXPECT_THAT(problems_of_in(config),
              testing::Contains((dir.path() / "teachers.toml").string() + ":2:8: 'teacher[0].name' must be a name string"));
}

// What `muki run` refused only after it started is caught by validate (issue 11, finding 7).
TEST(ConfigValidate, CatchesWhatRunWouldRefuseLater) {
  Config config = Config::parse(kValid, "exp.toml", "/tmp");
  config.apply_override("experiment.output_dir=\"runs/${nmae}\"");
  config.apply_override("integration={strategy=\"gold\"}");
  EXPECT_THAT(problems_of_in(config),
              testing::IsSupersetOf(
                  {"--set experiment.output_dir=\"runs/${nmae}\":1:5: 'experiment.output_dir' is \"runs/${nmae}\"; "
                   "the only variable it may hold is ${name}",
                   "--set integration={strategy=\"gold\"}:1:15: 'integration.strategy' is \"gold\", which trains on "
                   "the transfer set's labels (an upper bound for analysis): set data.transfer.label to the label "
                   "column"}));
  config.apply_override("experiment.output_dir=\"\"");
  EXPECT_THAT(problems_of_in(config),
              testing::Contains("--set experiment.output_dir=\"\":1:5: 'experiment.output_dir' is empty; give the "
                                "run a folder, e.g. \"runs/${name}\""));
}

// Names become file names (runs/${name}, the teacher-pass cache): nothing may climb out of its
// folder or nest (issue 11, finding 4).
TEST(ConfigValidate, NamesThatWouldEscapeTheirFolderAreRefused) {
  Config config = Config::parse(kValid, "exp.toml", "/tmp");
  config.apply_override("teachers.0.name=\"../../../escape\"");
  config.apply_override("experiment.name=\"a/b\"");
  EXPECT_THAT(problems_of_in(config),
              testing::IsSupersetOf(
                  {"--set teachers.0.name=\"../../../escape\":1:5: 'teachers[0].name' is \"../../../escape\"; a "
                   "name may hold only letters, digits, '.', '_' and '-' (at most 100, not starting with '.'): "
                   "it names files",
                   "--set experiment.name=\"a/b\":1:5: 'experiment.name' is \"a/b\"; a name may hold only "
                   "letters, digits, '.', '_' and '-' (at most 100, not starting with '.'): it names files"}));
}

// nan passes every bounds check (each comparison with it is false), so it is refused by name:
// in a plugin's float option, and in the host's own keys. A plugin parameter that declares
// MUKI_PARAM_ALLOW_NON_FINITE (ABI 1.1) takes it.
TEST(ConfigValidate, NonFiniteFloatsAreRefusedUnlessTheSchemaAllowsThem) {
  Config config = Config::parse(kValid, "exp.toml", "/tmp");
  config.apply_override("integration.options.tau=nan");
  config.apply_override("student.train.lr=inf");
  EXPECT_THAT(problems_of_in(config),
              ElementsAre("--set integration.options.tau=nan:1:5: 'integration.options.tau' is "
                          "nan; it must be a finite number",
                          "--set student.train.lr=inf:1:5: 'student.train.lr' is inf; it must be "
                          "a finite number"));
  Registry with_probe;
  with_probe.load_library(muki::test::plugin_dir() / "libmuki_integration_builtin.so");
  with_probe.load_library(muki::test::fixture_dir("good") / "libfixture_c_teacher.so");
  with_probe.load_library(muki::test::fixture_dir("options") / "libfixture_options_probe.so");
  Config probe = Config::parse(kValid, "exp.toml", "/tmp");
  probe.apply_override("uncertainty.strategy=\"options_probe\"");
  probe.apply_override("uncertainty.options={rate = nan}");
  std::vector<std::string> out;
  for (const auto& p : muki::core::validate(probe, with_probe)) out.push_back(p.format());
  EXPECT_THAT(out, ElementsAre());
}

// Found by muki_fuzz_config: overrides that escaped as another exception or were taken as they
// are, now refused with the --set they came from.
TEST(ConfigOverrides, BytesNoTomlStringHoldsAndHugeIndicesAreRefused) {
  Config config = Config::parse(kValid, "exp.toml", "/tmp");
  EXPECT_EQ(override_error(config, "teache\xff.name=x"),
            "--set teache\xff.name=x: the key is not valid UTF-8 (byte 7)");
  // Found by the config fuzzer: toml++ prints a key holding a newline as it is, so print-config
  // gave a file that read back with another key.
  EXPECT_EQ(override_error(config, "experiment.\ninteg=cpu"),
            "--set experiment.\ninteg=cpu: the key holds a control character (byte 12); a key is dotted "
            "names, e.g. experiment.seed");
  EXPECT_THAT(override_error(config, "experiment.name=a\x01z"),
              HasSubstr("--set experiment.name=a\x01z: 'a\x01z' is neither a TOML value nor a plain word ("));
  EXPECT_THAT(override_error(config, "experiment.name=\xff"),
              HasSubstr("'\xff' is neither a TOML value nor a plain word ("));
  EXPECT_EQ(override_error(config, "teachers.99999999999999999999999.name=x"),
            "--set teachers.99999999999999999999999.name=x: 'teachers.99999999999999999999999' is out of "
            "range (the array has 2 elements)");
  EXPECT_EQ(override_error(config, "teachers.99999999999999999999999=x"),
            "--set teachers.99999999999999999999999=x: '99999999999999999999999' is not an index of the array");
}

// A name holding "${name}" once looped for ever (and grew without bound) in output_dir, which
// validate reaches through [prepare] runs files before their names are checked.
TEST(ConfigValidate, ANameHoldingThePlaceholderIsSubstitutedOnce) {
  Config config = Config::parse(kValid, "exp.toml", "/tmp");
  config.apply_override("experiment.name=\"x${name}\"");
  EXPECT_EQ(muki::core::output_dir(config), "runs/x${name}");
  TempDir dir;
  dir.write("stage1.toml", "[experiment]\nname = \"${name}\"\n");
  const Config staged = Config::parse(std::string(kValid) + "[prepare]\nruns = \"stage1.toml\"\n", "exp.toml", dir.path());
  EXPECT_THAT(muki::core::prepared_outputs(staged), ElementsAre(std::filesystem::absolute("runs/${name}")));
  EXPECT_FALSE(muki::core::validate(staged, registry()).empty());
}

TEST(TeacherFile, AModelFineTunedFromAnEncoderTakesItsSizesAndTokenizer) {
  TempDir dir;
  for (const char* f : {"train.tsv", "dev.tsv", "other.tsv"}) dir.write(f, "");
  dir.write("encoder/config.toml", "");
  const std::string text = std::string(kTeacherFile) + "init = \"encoder\"\n[tokenizer]\nvocab_size = 100\n";
  EXPECT_THAT(teacher_problems(Config::parse(text, "t.toml", dir.path())),
              ElementsAre("t.toml:10:18: 'model.type' comes from the pre-trained encoder 'model.init'; leave it out "
                          "(only dropout and pooling may be set)",
                          "t.toml:10:35: 'model.filters' comes from the pre-trained encoder 'model.init'; leave it "
                          "out (only dropout and pooling may be set)",
                          "t.toml:18:8: 'model.type' comes from the pre-trained encoder 'model.init'; leave it out "
                          "(only dropout and pooling may be set)",
                          "t.toml:19:10: 'model.hidden' comes from the pre-trained encoder 'model.init'; leave it "
                          "out (only dropout and pooling may be set)",
                          "t.toml:20:9: 'model.heads' comes from the pre-trained encoder 'model.init'; leave it out "
                          "(only dropout and pooling may be set)",
                          "t.toml:23:14: 'tokenizer.vocab_size': a model fine-tuned from 'model.init' uses the "
                          "encoder's own tokenizer; leave the tokenizer table out"));
  // The student's table the same way; a folder that is not there is named.
  EXPECT_THAT(problems_of(std::string(kValid) + "[student]\nmodel = { init = \"nowhere\", hidden = 8 }\n"),
              ElementsAre(HasSubstr("nowhere does not exist"),
                          HasSubstr("'student.model.hidden' comes from the pre-trained encoder 'student.model.init'")));
}

TEST(PretrainFile, ProblemsComeWithPositions) {
  TempDir dir;
  dir.write("corpus.txt", "a text\n");
  const std::string text = "[pretrain]\noutput = \"out\"\nmask_probability = 0.9\n"
                           "[data]\ntrain = { path = \"corpus.txt\", format = \"text\" }\n"
                           "heldout = { path = \"corpus.txt\" }\nheldout_fraction = 0.1\n"
                           "[model]\ntype = \"cnn\"\n\n\n"
                           "[train]\nbatch_size = 8\n";
  std::vector<std::string> found;
  for (const auto& p : muki::core::validate_pretraining(Config::parse(text, "p.toml", dir.path())))
    found.push_back(p.format());
  EXPECT_THAT(found, ElementsAre("p.toml:3:20: 'pretrain.mask_probability' is 0.9; it must lie in [0.01, 0.5]",
                                 "p.toml:7:20: 'data.heldout_fraction' applies only without a [data.heldout] corpus",
                                 "p.toml:9:8: 'model.type' is \"cnn\"; expected one of: transformer",
                                 "p.toml:12:1: missing required key 'train.steps'"));
}
