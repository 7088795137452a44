// The `native` teacher adapter through the registry, on checkpoints made in-process and by
// `muki teacher train` (the binary, as a user runs it).
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <sys/wait.h>

#include <torch/torch.h>

#include <muki/model/checkpoint.h>
#include <muki/model/mc_dropout.h>
#include <muki/model/text_encoding.h>
#include <muki/registry/registry.h>

#include "../core/torch_test_support.h"
#include "../test_support.h"

using namespace muki::core;
using muki::registry::CreateArgs;
using muki::registry::Registry;
using muki::registry::TeacherInstance;
using muki::test::TempDir;
namespace fs = std::filesystem;

namespace {

Registry& registry() {
  static Registry r;
  static bool loaded = [] {
    r.load_library(muki::test::plugin_dir() / "libmuki_teacher_native.so");
    return true;
  }();
  (void)loaded;
  return r;
}

std::unique_ptr<TeacherInstance> make_teacher(const fs::path& checkpoint,
                                              const std::string& extra = "") {
  return registry().create_teacher(
      "native", CreateArgs{"t", "checkpoint = \"" + checkpoint.string() + "\"\ndevice = \"cpu\"\n" + extra,
                           checkpoint.parent_path(), 7});
}

std::vector<float> predict(const TeacherInstance& t, const std::vector<std::string>& texts,
                           uint32_t samples = 0, uint64_t seed = 0) {
  std::vector<float> out(std::max<uint32_t>(1, samples) * texts.size() * t.labels().size());
  t.predict(texts, samples, seed, out.data());
  return out;
}

const std::vector<std::string> kTexts = {"the arcade game", "a font editor for text",
                                         "music player with audio", "image and graphics",
                                         "puzzle game", "video"};

// A freshly initialised Transformer checkpoint with the tiny vocabulary.
fs::path make_checkpoint(const TempDir& dir) {
  std::string vocab;
  for (const auto& t : muki::test::tiny_vocab()) vocab += t + "\n";
  const fs::path vocab_file = dir.write("vocab.txt", vocab);
  torch::manual_seed(2);
  Classifier m = make_classifier(muki::test::small_config("transformer"));
  const fs::path folder = dir.path() / "ckpt";
  save_checkpoint(folder, *m, TokenizerSpec{"wordpiece", "vocab.txt", true}, vocab_file,
                  {"games", "text", "sound"});
  return folder;
}

}  // namespace

TEST(NativeTeacher, LabelsAndSamplingNoteComeThrough) {
  TempDir dir;
  const auto t = make_teacher(make_checkpoint(dir));
  EXPECT_EQ(t->labels(), (std::vector<std::string>{"games", "text", "sound"}));
  EXPECT_TRUE(t->can_sample());
  EXPECT_EQ(t->sampling_note(), "MC dropout p=0.1 on 8 dropout layers (transformer)");
  const auto p = make_teacher(make_checkpoint(dir), "dropout = 0.3\n");
  EXPECT_EQ(p->sampling_note(), "MC dropout p=0.3 on 8 dropout layers (transformer)");
}

TEST(NativeTeacher, DeterministicPassEqualsTheModelsOwnForward) {
  TempDir dir;
  const fs::path folder = make_checkpoint(dir);
  const auto t = make_teacher(folder, "batch_size = 4\n");  // two micro-batches of 4 and 2 texts
  const std::vector<float> got = predict(*t, kTexts);
  LoadedCheckpoint ck = load_checkpoint(folder);
  const EncodedTexts enc = encode_texts(*ck.tokenizer, kTexts, ck.model_config.max_length);
  const torch::Tensor expected = predict_deterministic(*ck.model, enc.input_ids, enc.attention_mask);
  ASSERT_EQ(got.size(), static_cast<size_t>(expected.numel()));
  for (int64_t i = 0; i < expected.numel(); ++i)
    EXPECT_NEAR(got[static_cast<size_t>(i)], expected.view(-1)[i].item<float>(), 1e-5) << i;
  EXPECT_EQ(predict(*t, kTexts), got);
}

TEST(NativeTeacher, SamplesDifferAndAreReproduciblePerSeed) {
  TempDir dir;
  const auto t = make_teacher(make_checkpoint(dir), "batch_size = 4\n");
  const size_t bc = kTexts.size() * 3;
  const std::vector<float> a = predict(*t, kTexts, 4, 42);
  const std::vector<float> again = predict(*t, kTexts, 4, 42);
  const std::vector<float> other = predict(*t, kTexts, 4, 43);
  EXPECT_EQ(a, again);
  EXPECT_NE(a, other);
  EXPECT_NE(std::vector<float>(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(bc)),
            std::vector<float>(a.begin() + static_cast<std::ptrdiff_t>(bc), a.begin() + 2 * static_cast<std::ptrdiff_t>(bc)));
  // Sampling leaves the deterministic pass alone.
  const auto det = predict(*t, kTexts);
  EXPECT_EQ(predict(*t, kTexts), det);
  // dropout = 0: every sample is the deterministic pass.
  const auto zero = make_teacher(make_checkpoint(dir), "dropout = 0.0\n");
  EXPECT_FALSE(zero->can_sample());
}

TEST(NativeTeacher, ATextsOutputsDoNotDependOnHowTheRequestIsBucketed) {
  // batch_size 1, 4 (2 texts per call at K = 2) and 64 (one call): the request is cut into
  // length-sorted calls differently each time, and each text keeps its outputs, deterministic
  // and sampled (keyed by its position in the request), to float rounding. The same with the
  // request tokenized and sorted in pieces of 1 and 3 texts (piece_texts, CUDA's pipelining).
  TempDir dir;
  const fs::path folder = make_checkpoint(dir);
  const auto one = make_teacher(folder, "batch_size = 1\n");
  std::vector<std::unique_ptr<TeacherInstance>> others;
  for (const char* options : {"batch_size = 4\n", "batch_size = 64\n", "batch_size = 4\npiece_texts = 1\n",
                              "batch_size = 4\npiece_texts = 3\n"})
    others.push_back(make_teacher(folder, options));
  for (uint32_t k : {0u, 2u}) {
    const std::vector<float> a = predict(*one, kTexts, k, 5);
    for (const auto& other : others) {
      const std::vector<float> b = predict(*other, kTexts, k, 5);
      ASSERT_EQ(a.size(), b.size());
      for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5) << "K " << k << " value " << i;
    }
  }
}

TEST(NativeTeacher, Bf16PassesStayCloseToFp32) {
  // precision = "bf16" runs the matrix products in bfloat16 (8 significant bits): the
  // distributions move by a few thousandths, not more. Both the deterministic pass and sampled
  // ones (the same keyed masks).
  TempDir dir;
  const fs::path folder = make_checkpoint(dir);
  const auto fp32 = make_teacher(folder);
  const auto bf16 = make_teacher(folder, "precision = \"bf16\"\n");
  for (uint32_t k : {0u, 3u}) {
    const std::vector<float> a = predict(*fp32, kTexts, k, 5), b = predict(*bf16, kTexts, k, 5);
    const auto probs = [](const std::vector<float>& logits) {
      return torch::softmax(torch::tensor(logits).view({-1, 3}), 1);
    };
    const double worst = (probs(a) - probs(b)).abs().max().item<double>();
    EXPECT_LT(worst, 0.02) << "K " << k;
    EXPECT_NE(a, b) << "K " << k;  // bf16 really ran
  }
  try {
    make_teacher(folder, "precision = \"fp16\"\n");
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("option 'precision' must be \"fp32\" or \"bf16\", not \"fp16\""),
              std::string::npos) << e.what();
  }
}

TEST(NativeTeacher, RefusesABrokenCheckpointWithTheFileName) {
  TempDir dir;
  const fs::path folder = make_checkpoint(dir);
  fs::remove(folder / "labels.txt");
  try {
    make_teacher(folder);
    FAIL() << "expected a refusal";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("labels.txt"), std::string::npos) << e.what();
  }
}

TEST(NativeTeacher, LoadsWhatMukiTeacherTrainWrites) {
  TempDir dir;
  const fs::path out = dir.path() / "media";
  const fs::path config = dir.write(
      "media.toml",
      "[teacher]\nname = \"media\"\noutput = \"" + out.string() +
          "\"\nlabels = [\"games\", \"sound\", \"graphics\", \"text\"]\ndevice = \"cpu\"\n"
          "threads = 2\n[data]\ntrain = { path = \"" +
          (muki::test::source_dir() / "data/ddtp-en/dev.tsv").string() +
          "\", label = \"label\" }\ntest = { path = \"" +
          (muki::test::source_dir() / "data/ddtp-en/test.tsv").string() +
          "\", label = \"label\" }\n[tokenizer]\ntype = \"wordpiece\"\nvocab_size = 2000\n"
          "[model]\ntype = \"transformer\"\nlayers = 1\nhidden = 32\nheads = 2\nffn = 64\n"
          "max_length = 48\n[train]\nepochs = 1\nbatch_size = 32\n");
  const std::string command = (muki::test::build_dir() / "bin" / "muki").string() +
                              " teacher train " + config.string() +
                              " --set train.lr=1e-3 2>&1";
  std::string output;
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::array<char, 4096> buffer{};
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), n);
  const int status = pclose(pipe);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << output;
  EXPECT_NE(output.find("train: 211 examples of this teacher's 4 labels kept, 304 with other "
                        "labels left out"),
            std::string::npos)
      << output;
  EXPECT_NE(output.find("test accuracy"), std::string::npos) << output;
  EXPECT_TRUE(fs::exists(out / "train_report.json"));

  const auto t = make_teacher(out);
  EXPECT_EQ(t->labels(), (std::vector<std::string>{"games", "sound", "graphics", "text"}));
  const auto logits = predict(*t, {"a puzzle game for kids", "an audio player"}, 3, 1);
  EXPECT_EQ(logits.size(), 3u * 2u * 4u);

  // A config problem: one line with the file's position, exit code 1.
  const fs::path bad = dir.write("bad.toml", "[teacher]\nname = \"x\"\n");
  FILE* p2 = popen(((muki::test::build_dir() / "bin" / "muki").string() + " teacher train " +
                    bad.string() + " 2>&1").c_str(), "r");
  std::string bad_output;
  while ((n = fread(buffer.data(), 1, buffer.size(), p2)) > 0) bad_output.append(buffer.data(), n);
  const int bad_status = pclose(p2);
  EXPECT_EQ(WEXITSTATUS(bad_status), 1) << bad_output;
  EXPECT_NE(bad_output.find("bad.toml:1:1: missing required key 'teacher.output'"), std::string::npos)
      << bad_output;
}

// SDK 1.1: the pooled representation the classifier reads. Asking for features changes neither
// the logits nor the random stream of the stochastic passes, and the deterministic logits are the
// classification layer applied to the deterministic features.
TEST(NativeTeacher, FeaturesAreThePooledRepresentationOfTheSamePasses) {
  TempDir dir;
  const fs::path folder = make_checkpoint(dir);
  const auto t = make_teacher(folder);
  const int64_t h = muki::test::small_config("transformer").hidden;
  ASSERT_EQ(t->feature_dim(), h);
  const size_t b = kTexts.size(), c = t->labels().size();

  std::vector<float> logits(b * c), features(b * static_cast<size_t>(h));
  t->predict(kTexts, 0, 0, logits.data(), features.data());
  EXPECT_EQ(logits, predict(*t, kTexts));
  LoadedCheckpoint ckpt = load_checkpoint(folder, torch::kCPU);
  ckpt.model->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor f = torch::from_blob(features.data(), {static_cast<int64_t>(b), h});
  const torch::Tensor expected = ckpt.model->classify(f);
  const torch::Tensor got = torch::from_blob(logits.data(), {static_cast<int64_t>(b), static_cast<int64_t>(c)});
  EXPECT_TRUE(torch::allclose(got, expected, 1e-5, 1e-5));

  const uint32_t k = 4;
  std::vector<float> k_logits(k * b * c), k_features(k * b * static_cast<size_t>(h));
  t->predict(kTexts, k, 11, k_logits.data(), k_features.data());
  EXPECT_EQ(k_logits, predict(*t, kTexts, k, 11));
  // Dropout inside the encoder makes the passes' features differ from each other...
  const auto row = [&](uint32_t s) { return k_features[(s * b) * static_cast<size_t>(h)]; };
  EXPECT_NE(row(0), row(1));
  // ... and the same request gives the same features.
  std::vector<float> again(k_features.size()), again_logits(k_logits.size());
  t->predict(kTexts, k, 11, again_logits.data(), again.data());
  EXPECT_EQ(again, k_features);
}
