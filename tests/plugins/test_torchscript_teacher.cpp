// The TorchScript teacher adapter, through the registry as the host uses it, on models exported
// the way a third party would: tests/fixtures/torchscript/make_torchscript_fixtures.py (Debian's
// python3-torch, the same 1.13 as libtorch-dev) writes a small BERT-shaped classifier as
// torch.jit.script, torch.jit.trace (eval mode) and torch.jit.freeze exports, and the eager
// model's own logits on the token ids that muki's WordPiece tokenizer gives for the test texts
// (real BERT-base-uncased vocabulary, .cache/assets/bert-base-uncased/vocab.txt from
// scripts/fetch-assets.sh). The generator runs once (~3 s), into the build tree.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <muki/text/tokenizer.h>
#include <muki/text/wordpiece_tokenizer.h>
#include <muki/registry/registry.h>

#include "../test_support.h"

using muki::registry::CreateArgs;
using muki::registry::PluginError;
using muki::registry::Registry;
using muki::registry::TeacherInstance;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kTexts = {
    "Hello world!",
    "The quick brown fox jumps over the lazy dog.",
    "Great",
    "An unbelievably long-winded review, with punctuation; numbers (42) and CAPITALS.",
    "Le café était très bon.",
};
const std::vector<std::string> kLabels = {"negative", "neutral", "positive"};

fs::path bert_vocab() { return muki::test::source_dir() / ".cache/assets/bert-base-uncased/vocab.txt"; }

// Runs a shell command; returns its exit code and (in `output`) what it printed.
int run(const std::string& command, std::string* output) {
  const fs::path log = fs::temp_directory_path() / ("muki-ts-cmd-" + std::to_string(::getpid()));
  const int rc = std::system((command + " > '" + log.string() + "' 2>&1").c_str());
  std::ifstream in(log);
  std::stringstream s;
  s << in.rdbuf();
  fs::remove(log);
  if (output != nullptr) *output = s.str();
  return rc;
}

std::vector<std::vector<float>> read_matrix(const fs::path& path) {
  std::vector<std::vector<float>> rows;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream s(line);
    std::vector<float> row;
    float v;
    while (s >> v) row.push_back(v);
    if (!row.empty()) rows.push_back(row);
  }
  return rows;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The generated fixtures. ctest runs every test case in its own process, so they are cached in
// the build tree under a hash of the generator and the token ids, generated into a private
// folder and renamed into place (safe under ctest -j).
struct Fixtures {
  fs::path dir;
  std::string error;  // non-empty: why the fixtures could not be made
  fs::path path(const std::string& name) const { return dir / name; }
};

const Fixtures& fixtures() {
  static Fixtures* f = [] {
    auto* fx = new Fixtures();
    if (!fs::exists(bert_vocab())) {
      fx->error = "BERT vocabulary not found at " + bert_vocab().string() +
                  ": run scripts/fetch-assets.sh first";
      return fx;
    }
    // The ids muki's tokenizer gives, exactly as the adapter will compute them (default options:
    // lowercase, max_length 128, [CLS] ... [SEP]).
    const auto tok = muki::core::WordPieceTokenizer::from_file(bert_vocab());
    std::ostringstream ids;
    for (const auto& text : kTexts) {
      const auto batch = muki::core::encode_batch(tok, std::vector<std::string>{text}, 128, true);
      for (size_t i = 0; i < batch.input_ids.size(); ++i)
        ids << (i ? " " : "") << batch.input_ids[i];
      ids << "\n";
    }
    const fs::path script =
        muki::test::source_dir() / "tests/fixtures/torchscript/make_torchscript_fixtures.py";
    std::ostringstream key;
    key << std::hex << std::hash<std::string>{}(read_text(script) + ids.str());
    const fs::path root = muki::test::build_dir() / "tests" / "torchscript_fixtures";
    fx->dir = root / key.str();
    if (fs::exists(fx->dir / "done")) return fx;

    const std::string py = muki::test::python_with_torch();
    if (py.empty()) {
      fx->error = "no python3 with torch found: install Debian's python3-torch "
                  "(scripts/install-deps.sh), or point MUKI_PYTHON at a python that has torch";
      return fx;
    }
    const fs::path work = root / ("tmp-" + std::to_string(::getpid()));
    fs::create_directories(work);
    std::ofstream(work / "ids.txt") << ids.str();
    std::string output;
    if (run("'" + py + "' '" + script.string() + "' '" + work.string() + "' '" +
                (work / "ids.txt").string() + "'",
            &output) != 0) {
      fx->error = "the fixture generator failed:\n" + output;
      return fx;
    }
    std::ofstream(work / "done") << "ok\n";
    std::error_code ec;
    fs::rename(work, fx->dir, ec);  // fails when another process got there first: use theirs
    if (ec) fs::remove_all(work, ec);
    if (!fs::exists(fx->dir / "done")) fx->error = "could not move the fixtures to " + fx->dir.string();
    return fx;
  }();
  return *f;
}

Registry& registry() {
  static Registry* r = [] {
    auto* reg = new Registry();  // lives for the whole test run
    reg->load_library(muki::test::plugin_dir() / "libmuki_teacher_torchscript.so");
    return reg;
  }();
  return *r;
}

std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::unique_ptr<TeacherInstance> make_teacher(const std::string& model,
                                              const std::string& extra_options = "",
                                              const std::string& labels = "labels.txt") {
  const Fixtures& fx = fixtures();
  const std::string options = "model = " + toml_string(fx.path(model).string()) + "\n" +
                              "tokenizer = " + toml_string(bert_vocab().string()) + "\n" +
                              "labels = " + toml_string(fx.path(labels).string()) + "\n" +
                              (extra_options.find("device") == std::string::npos
                                   ? "device = \"cpu\"\n"
                                   : "") +
                              "threads = 2\n" + extra_options;
  return registry().create_teacher("torchscript",
                                   CreateArgs{"ts", options, fx.dir, 7});
}

// The refusal's message, or "" when create() succeeded.
std::string create_error(const std::string& model, const std::string& extra_options = "",
                         const std::string& labels = "labels.txt") {
  try {
    make_teacher(model, extra_options, labels);
  } catch (const PluginError& e) {
    return e.what();
  }
  return "";
}

std::vector<float> predict(const TeacherInstance& t, uint32_t samples, uint64_t seed) {
  const size_t k = samples == 0 ? 1 : samples;
  std::vector<float> out(k * kTexts.size() * kLabels.size(), -1.0f);
  t.predict(kTexts, samples, seed, out.data());
  return out;
}

float max_abs_diff(const float* a, const float* b, size_t n) {
  float m = 0.0f;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// Deterministic logits against the eager PyTorch model's.
void expect_matches_reference(const std::vector<float>& got, const std::string& model) {
  const auto ref = read_matrix(fixtures().path(model + ".logits"));
  ASSERT_EQ(ref.size(), kTexts.size());
  for (size_t i = 0; i < kTexts.size(); ++i) {
    ASSERT_EQ(ref[i].size(), kLabels.size());
    for (size_t j = 0; j < kLabels.size(); ++j)
      EXPECT_NEAR(got[i * kLabels.size() + j], ref[i][j], 1e-4)
          << model << ": text " << i << " (" << kTexts[i] << "), label " << kLabels[j];
  }
}

class TorchScriptTeacherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fixtures().error.empty()) << fixtures().error;
  }
};

TEST_F(TorchScriptTeacherTest, DescribesItselfAndLabelsComeThrough) {
  auto t = make_teacher("scripted.pt");
  EXPECT_EQ(t->labels(), kLabels);
  EXPECT_TRUE(t->can_sample());
  EXPECT_NE(t->sampling_note().find("8 dropout modules"), std::string::npos) << t->sampling_note();
  EXPECT_NE(t->sampling_note().find("p=0.1"), std::string::npos) << t->sampling_note();
  const auto* info = registry().find(muki::registry::Kind::Teacher, "torchscript");
  ASSERT_NE(info, nullptr);
  for (const char* key : {"model", "tokenizer", "tokenizer_type", "lowercase", "labels",
                          "max_length", "device", "threads", "batch_size", "inputs", "dropout"})
    EXPECT_NE(info->find_param(key), nullptr) << key;
}

// Every export gives the eager model's logits, also when texts of different lengths share a
// padded micro-batch (batch_size 2) or all go in one (batch_size 32).
TEST_F(TorchScriptTeacherTest, DeterministicPassMatchesPyTorch) {
  for (const std::string model : {"scripted", "traced_eval", "frozen", "attr_dropout", "no_dropout"})
    for (const std::string batch : {"1", "2", "32"}) {
      SCOPED_TRACE(model + " batch_size " + batch);
      auto t = make_teacher(model + ".pt", "batch_size = " + batch + "\n");
      expect_matches_reference(predict(*t, 0, 0), model);
    }
}

TEST_F(TorchScriptTeacherTest, StochasticSamplesDifferAndAreSeeded) {
  auto t = make_teacher("scripted.pt", "batch_size = 2\n");
  const uint32_t k = 4;
  const size_t per_sample = kTexts.size() * kLabels.size();
  const auto a = predict(*t, k, 11);
  for (uint32_t s = 1; s < k; ++s)
    EXPECT_GT(max_abs_diff(a.data(), a.data() + s * per_sample, per_sample), 1e-4f)
        << "sample " << s << " equals sample 0";
  const auto deterministic = predict(*t, 0, 0);
  EXPECT_GT(max_abs_diff(a.data(), deterministic.data(), per_sample), 1e-4f);
  EXPECT_EQ(predict(*t, k, 11), a) << "the same seed must give the same samples";
  EXPECT_GT(max_abs_diff(predict(*t, k, 12).data(), a.data(), a.size()), 1e-4f)
      << "another seed must give other samples";
  // Back in eval mode afterwards: the deterministic pass is still the model's.
  expect_matches_reference(predict(*t, 0, 0), "scripted");
  // A single sample is fine too (nothing to compare it with).
  EXPECT_NO_THROW(predict(*t, 1, 3));
}

// The head's BatchNorm has running statistics far from any batch's: in train mode it would move
// the logits by ~2 (and update its running statistics). With a tiny dropout p the samples must
// stay next to the deterministic logits, and the deterministic pass must not change afterwards.
TEST_F(TorchScriptTeacherTest, BatchNormStaysInEvalModeWhileSampling) {
  auto t = make_teacher("attr_dropout.pt", "dropout = 0.001\n");
  EXPECT_NE(t->sampling_note().find("p=0.001"), std::string::npos) << t->sampling_note();
  const auto deterministic = predict(*t, 0, 0);
  const uint32_t k = 8;
  const size_t per_sample = kTexts.size() * kLabels.size();
  const auto samples = predict(*t, k, 5);
  double mean_diff = 0;
  for (size_t i = 0; i < samples.size(); ++i)
    mean_diff += std::fabs(samples[i] - deterministic[i % per_sample]);
  mean_diff /= static_cast<double>(samples.size());
  EXPECT_LT(mean_diff, 0.05) << "BatchNorm in train mode moves the logits by ~1";
  for (uint32_t s = 0; s < k; ++s)
    EXPECT_LT(max_abs_diff(samples.data() + s * per_sample, deterministic.data(), per_sample), 1.0f)
        << "sample " << s;
  expect_matches_reference(predict(*t, 0, 0), "attr_dropout");
}

TEST_F(TorchScriptTeacherTest, DropoutOverrideChangesTheSpread) {
  const size_t per_sample = kTexts.size() * kLabels.size();
  auto spread = [&](const std::string& options) {
    auto t = make_teacher("attr_dropout.pt", options);
    const auto det = predict(*t, 0, 0);
    const auto s = predict(*t, 16, 9);
    double sum = 0;
    for (size_t i = 0; i < s.size(); ++i) sum += std::fabs(s[i] - det[i % per_sample]);
    return sum / static_cast<double>(s.size());
  };
  const double base = spread(""), strong = spread("dropout = 0.5\n");
  EXPECT_GT(strong, 2 * base) << "p=0.1: " << base << ", p=0.5: " << strong;
}

TEST_F(TorchScriptTeacherTest, DropoutOverrideRefusedWhenPIsACompiledConstant) {
  const std::string msg = create_error("scripted.pt", "dropout = 0.2\n");
  EXPECT_NE(msg.find("option 'dropout' = 0.2 cannot be applied"), std::string::npos) << msg;
  EXPECT_NE(msg.find("__constants__"), std::string::npos) << msg;
  const std::string none = create_error("no_dropout.pt", "dropout = 0.2\n");
  EXPECT_NE(none.find("no dropout submodule"), std::string::npos) << none;
}

TEST_F(TorchScriptTeacherTest, TracedInEvalModeIsRefusedForSampling) {
  auto t = make_teacher("traced_eval.pt");
  ASSERT_TRUE(t->can_sample());  // the dropout modules are there, their code ignores `training`
  try {
    predict(*t, 4, 1);
    FAIL() << "expected a refusal";
  } catch (const PluginError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("K=4 stochastic passes gave identical outputs"), std::string::npos) << msg;
    EXPECT_NE(msg.find("traced in eval mode"), std::string::npos) << msg;
    EXPECT_NE(msg.find("torch.jit.script"), std::string::npos) << msg;
  }
  expect_matches_reference(predict(*t, 0, 0), "traced_eval");  // still fine deterministically
}

TEST_F(TorchScriptTeacherTest, FrozenModelCannotSampleAndSaysWhy) {
  auto t = make_teacher("frozen.pt");
  EXPECT_FALSE(t->can_sample());
  EXPECT_NE(t->sampling_note().find("torch.jit.freeze"), std::string::npos) << t->sampling_note();
  EXPECT_THROW(predict(*t, 4, 1), PluginError);
  auto plain = make_teacher("no_dropout.pt");
  EXPECT_FALSE(plain->can_sample());
  EXPECT_NE(plain->sampling_note().find("no dropout submodule"), std::string::npos);
}

TEST_F(TorchScriptTeacherTest, LabelCountMismatchIsRefused) {
  const std::string msg = create_error("scripted.pt", "", "labels_wrong_count.txt");
  EXPECT_NE(msg.find("returns 3 logits per text"), std::string::npos) << msg;
  EXPECT_NE(msg.find("lists 4 labels"), std::string::npos) << msg;
}

TEST_F(TorchScriptTeacherTest, MissingOrBrokenFilesAreRefused) {
  const std::string missing = create_error("does_not_exist.pt");
  EXPECT_NE(missing.find("option 'model'"), std::string::npos) << missing;
  EXPECT_NE(missing.find("does_not_exist.pt: no such file"), std::string::npos) << missing;
  const std::string not_ts = create_error("labels.txt");
  EXPECT_NE(not_ts.find("not a loadable TorchScript model"), std::string::npos) << not_ts;
  const std::string no_labels = create_error("scripted.pt", "", "nope.txt");
  EXPECT_NE(no_labels.find("nope.txt: no such file"), std::string::npos) << no_labels;
}

TEST_F(TorchScriptTeacherTest, BadOptionsAreRefused) {
  EXPECT_NE(create_error("scripted.pt", "inputs = \"ids\"\n").find("only calling convention"),
            std::string::npos);
  EXPECT_NE(create_error("scripted.pt", "device = \"tpu\"\n").find("option 'device'"),
            std::string::npos);
  EXPECT_NE(create_error("scripted.pt", "tokenizer_type = \"bpe\"\n").find("tokenizer_type"),
            std::string::npos);
}

}  // namespace

// SDK 1.1: a forward that returns (logits, pooled) gives the teacher features, equal to the eager
// model's pooled representation; the same passes' logits are unchanged; a plain forward, or
// features = "none", gives none.
TEST_F(TorchScriptTeacherTest, TupleOutputGivesFeaturesOfTheSamePass) {
  auto t = make_teacher("with_features.pt");
  const auto ref = read_matrix(fixtures().path("with_features.features"));
  ASSERT_EQ(ref.size(), kTexts.size());
  const size_t h = ref[0].size();
  ASSERT_EQ(t->feature_dim(), static_cast<int64_t>(h));
  std::vector<float> logits(kTexts.size() * kLabels.size()), features(kTexts.size() * h);
  t->predict(kTexts, 0, 0, logits.data(), features.data());
  expect_matches_reference(logits, "with_features");
  for (size_t i = 0; i < kTexts.size(); ++i)
    for (size_t j = 0; j < h; ++j)
      EXPECT_NEAR(features[i * h + j], ref[i][j], 1e-4) << "text " << i << ", feature " << j;

  const uint32_t k = 3;
  std::vector<float> k_logits(k * logits.size()), k_features(k * features.size());
  t->predict(kTexts, k, 9, k_logits.data(), k_features.data());
  EXPECT_EQ(k_logits, predict(*t, k, 9));  // asking for features leaves the sampling alone
  EXPECT_GT(max_abs_diff(k_features.data(), k_features.data() + features.size(), features.size()),
            0.0f);  // dropout in the encoder: the passes' features differ

  EXPECT_EQ(make_teacher("scripted.pt")->feature_dim(), 0);
  EXPECT_EQ(make_teacher("with_features.pt", "features = \"none\"\n")->feature_dim(), 0);
}
