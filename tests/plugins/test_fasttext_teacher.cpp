// The fastText teacher adapter, through the registry as the host uses it, on models trained here
// with the `fasttext` CLI (Debian package `fasttext`) and on the pretrained language-ID model
// lid.176.ftz (fetched by scripts/fetch-assets.sh). The CLI's own `predict-prob` output is the
// reference for the deterministic pass.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <muki/registry/registry.h>

#include "../test_support.h"

using muki::registry::CreateArgs;
using muki::registry::PluginError;
using muki::registry::Registry;
using muki::registry::TeacherInstance;
namespace fs = std::filesystem;

namespace {

Registry& registry() {
  static Registry* r = [] {
    auto* reg = new Registry();  // lives for the whole test run
    reg->load_library(muki::test::plugin_dir() / "libmuki_teacher_fasttext.so");
    return reg;
  }();
  return *r;
}

// TOML basic string with the characters TOML needs escaped.
std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::unique_ptr<TeacherInstance> make_teacher(const fs::path& model,
                                              const std::string& extra_options = "") {
  return registry().create_teacher(
      "fasttext", CreateArgs{"ft", "model = " + toml_string(model.string()) + "\n" + extra_options,
                             model.parent_path(), 7});
}

// Runs a shell command, failing the test (with the command's output) when it fails.
std::string run(const std::string& command) {
  const fs::path log = fs::temp_directory_path() / ("muki-ft-cmd-" + std::to_string(::getpid()));
  const int rc = std::system((command + " > '" + log.string() + "' 2>&1").c_str());
  std::ifstream in(log);
  std::stringstream out;
  out << in.rdbuf();
  fs::remove(log);
  EXPECT_EQ(rc, 0) << command << "\n" << out.str();
  return out.str();
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// What the CLI reads as one line: tabs and newlines inside a text become spaces.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  return s;
}

struct Example {
  std::string label, text;
};

// Fallback corpus when the ddtp-en split is not there: short real sentences, three topics.
std::vector<Example> handwritten_examples() {
  const std::map<std::string, std::vector<std::string>> by_label = {
      {"cooking",
       {"Preheat the oven and bake the bread for forty minutes.",
        "Chop the onions and fry them in butter until golden.",
        "Add a pinch of salt and stir the soup gently.",
        "Whisk the eggs with sugar before folding in the flour.",
        "Simmer the tomato sauce for an hour on low heat.",
        "Season the roast chicken with garlic, lemon and thyme.",
        "Boil the pasta in salted water until it is al dente.",
        "Knead the dough for ten minutes and let it rise.",
        "Grill the vegetables and drizzle them with olive oil.",
        "Melt the chocolate slowly over a pan of hot water.",
        "The recipe needs two cups of rice and a cup of beans.",
        "Marinate the fish in soy sauce and ginger overnight.",
        "Slice the apples thinly for the tart.",
        "Taste the stew and add more pepper if needed.",
        "Serve the pancakes warm with maple syrup.",
        "Roast the potatoes with rosemary until crisp.",
        "Blend the fruit with yogurt for a smoothie.",
        "Cover the pot and cook the lentils until soft.",
        "Spread the butter evenly over the warm toast.",
        "Let the cake cool before you ice it."}},
      {"sports",
       {"The striker scored twice in the second half of the match.",
        "Our team won the championship after a tense final.",
        "The goalkeeper saved a penalty in the last minute.",
        "She ran the marathon in under three hours.",
        "The coach changed tactics at half time.",
        "The tennis player served an ace to win the set.",
        "Fans cheered as the runners crossed the finish line.",
        "The referee showed a red card to the defender.",
        "He trains at the stadium every morning before work.",
        "The cyclists climbed the mountain stage in heavy rain.",
        "The basketball team lost by two points in overtime.",
        "The swimmer broke the national record in the relay.",
        "The league season starts again in August.",
        "The boxer won the title fight on points.",
        "Both teams played a draw in the derby.",
        "The skier crashed on the final slope.",
        "The captain lifted the trophy in front of the fans.",
        "The rugby players scored a late try.",
        "The golfer sank a long putt on the last hole.",
        "The sprinter false started and was disqualified."}},
      {"weather",
       {"Heavy rain is expected across the north tomorrow.",
        "The forecast says sunny skies and a light breeze.",
        "A storm with strong winds will reach the coast tonight.",
        "Temperatures will drop below freezing overnight.",
        "Snow fell on the hills and the roads are icy.",
        "The humidity makes the summer heat hard to bear.",
        "Thick fog delayed flights at the airport this morning.",
        "Thunder and lightning kept us awake all night.",
        "A warm front brings mild air and scattered showers.",
        "The drought has lasted for three dry months.",
        "Clouds will clear by the afternoon with sunshine.",
        "The wind chill makes it feel much colder outside.",
        "Hail damaged the cars parked in the street.",
        "The weather service issued a flood warning.",
        "Expect a frosty start and a bright, cold day.",
        "The hurricane is moving slowly towards the islands.",
        "Drizzle and grey skies will continue all week.",
        "The heatwave pushed temperatures above forty degrees.",
        "Gusty winds knocked down trees in the park.",
        "A rainbow appeared after the afternoon shower."}}};
  std::vector<Example> out;
  for (const auto& [label, texts] : by_label)
    for (const auto& t : texts) out.push_back({label, t});
  return out;
}

// Reads the ddtp-en split (id, group, label, text with a header line), keeping four labels.
std::vector<Example> ddtp_examples(const fs::path& tsv) {
  static const std::vector<std::string> kLabels = {"games", "sound", "math", "graphics"};
  std::vector<Example> out;
  std::ifstream in(tsv);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<std::string> cols;
    std::stringstream s(line);
    std::string col;
    while (std::getline(s, col, '\t')) cols.push_back(col);
    if (cols.size() == 4 && std::find(kLabels.begin(), kLabels.end(), cols[2]) != kLabels.end())
      out.push_back({cols[2], cols[3]});
  }
  return out;
}

// The CLI's probabilities for each text ("fasttext predict-prob model file k"), keyed by label
// without its prefix.
std::vector<std::map<std::string, double>> cli_probabilities(const muki::test::TempDir& dir,
                                                             const fs::path& model_path,
                                                             const std::vector<std::string>& texts,
                                                             size_t k) {
  std::string input;
  for (const auto& t : texts) input += one_line(t) + "\n";
  const fs::path in = dir.write("cli-input.txt", input);
  std::istringstream lines(run("fasttext predict-prob '" + model_path.string() + "' '" +
                               in.string() + "' " + std::to_string(k)));
  std::vector<std::map<std::string, double>> rows;
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::map<std::string, double> row;
    std::string label;
    double p;
    while (fields >> label >> p) row[label.substr(std::string("__label__").size())] = p;
    rows.push_back(row);
  }
  return rows;
}

// `fasttext print-sentence-vectors MODEL < texts`: one vector per text.
std::vector<std::vector<float>> cli_sentence_vectors(const muki::test::TempDir& dir,
                                                     const fs::path& model_path,
                                                     const std::vector<std::string>& texts) {
  std::string input;
  for (const auto& t : texts) input += one_line(t) + "\n";
  const fs::path in = dir.write("cli-vectors-input.txt", input);
  std::istringstream lines(run("fasttext print-sentence-vectors '" + model_path.string() + "' < '" +
                               in.string() + "'"));
  std::vector<std::vector<float>> rows;
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::vector<float> row;
    float v;
    while (fields >> v) row.push_back(v);
    rows.push_back(row);
  }
  return rows;
}

// Trains the models once for the whole suite.
class FastTextTeacherTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new muki::test::TempDir();
    const fs::path ddtp = muki::test::source_dir() / "data/ddtp-en";
    std::vector<Example> train, test;
    if (fs::exists(ddtp / "train.tsv") && fs::exists(ddtp / "test.tsv")) {
      train = ddtp_examples(ddtp / "train.tsv");
      test = ddtp_examples(ddtp / "test.tsv");
    } else {
      train = handwritten_examples();
      for (size_t i = 0; i < train.size(); i += 5) test.push_back(train[i]);
    }
    std::string train_txt;
    for (const auto& e : train) train_txt += "__label__" + e.label + " " + one_line(e.text) + "\n";
    dir_->write("train.txt", train_txt);
    for (size_t i = 0; i < test.size() && test_texts_->size() < 12; i += 7)
      test_texts_->push_back(test[i].text);
    long_text_ = new std::string(test.front().text);
    for (size_t i = 1; long_text_->size() < 600 && i < test.size(); ++i)
      *long_text_ += " " + test[i].text;
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete long_text_;
  }

  // The model trained with fastText's loss `name` ("softmax", "hs" or "one-vs-all"), trained on
  // first use: under ctest every test is a process of its own, and most need only softmax.
  static fs::path model(const std::string& name) {
    const fs::path bin = dir_->path() / (name + ".bin");
    if (!fs::exists(bin)) {
      // -bucket keeps the n-gram table (and the file) small; one thread + a seed: reproducible.
      run("fasttext supervised -input '" + (dir_->path() / "train.txt").string() +
          "' -output '" + (dir_->path() / name).string() + "' -loss " + name +
          " -epoch 25 -lr 1.0 -wordNgrams 2 -dim 20 -bucket 100000 -thread 1 -seed 1 -verbose 0");
    }
    return bin;
  }


  static std::vector<float> predict(const TeacherInstance& t, const std::vector<std::string>& texts,
                                    uint32_t samples = 0, uint64_t seed = 0) {
    std::vector<float> out(std::max<size_t>(samples, 1) * texts.size() * t.labels().size(),
                           std::nanf(""));
    t.predict(texts, samples, seed, out.data());
    return out;
  }

  // Texts whose deterministic output is compared with the CLI, edge cases included.
  static std::vector<std::string> comparison_texts() {
    std::vector<std::string> texts = *test_texts_;
    texts.push_back("a text with\ttabs and\na newline\r\ninside it");
    texts.push_back("");                       // only the end-of-line token
    texts.push_back("zqxj vvkwq plmbrt");      // no known word
    texts.push_back("  leading, trailing   and repeated   spaces  ");
    return texts;
  }

  static muki::test::TempDir* dir_;
  static std::vector<std::string>* test_texts_;
  static std::string* long_text_;
};

muki::test::TempDir* FastTextTeacherTest::dir_ = nullptr;
std::vector<std::string>* FastTextTeacherTest::test_texts_ = new std::vector<std::string>();
std::string* FastTextTeacherTest::long_text_ = nullptr;

TEST_F(FastTextTeacherTest, ExposesLabelsWithoutPrefixInModelOrder) {
  auto t = make_teacher(model("softmax"));
  // `fasttext dump model dict` lists the model's entries, labels last, in label-id order.
  std::vector<std::string> expected;
  std::istringstream dump(run("fasttext dump '" + model("softmax").string() + "' dict"));
  std::string line;
  while (std::getline(dump, line)) {
    std::istringstream f(line);
    std::string word, count, type;
    if (f >> word >> count >> type && type == "label")
      expected.push_back(word.substr(std::string("__label__").size()));
  }
  ASSERT_GE(expected.size(), 3u);
  EXPECT_EQ(t->labels(), expected);
}

TEST_F(FastTextTeacherTest, SamplesByWordDropout) {
  auto t = make_teacher(model("softmax"), "word_dropout = 0.25\n");
  EXPECT_TRUE(t->can_sample());
  EXPECT_NE(t->sampling_note().find("word dropout"), std::string::npos) << t->sampling_note();
  EXPECT_NE(t->sampling_note().find("0.25"), std::string::npos) << t->sampling_note();
}

TEST_F(FastTextTeacherTest, DeterministicPassMatchesTheCli) {
  for (const std::string name : {"softmax", "hs", "one-vs-all"}) {
    SCOPED_TRACE(name);
    auto t = make_teacher(model(name));
    const auto texts = comparison_texts();
    const size_t c = t->labels().size();
    const auto logits = predict(*t, texts);
    const auto cli = cli_probabilities(*dir_, model(name), texts, c);
    ASSERT_EQ(cli.size(), texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
      SCOPED_TRACE("text " + std::to_string(i) + ": " + texts[i]);
      // The CLI leaves out hs leaves below its pruning bound; every other label must be there.
      if (name != "hs") {
        EXPECT_EQ(cli[i].size(), c);
      }
      EXPECT_GE(cli[i].size(), 1u);
      for (size_t j = 0; j < c; ++j) {
        const float z = logits[i * c + j];
        ASSERT_TRUE(std::isfinite(z));
        auto it = cli[i].find(t->labels()[j]);
        if (it != cli[i].end()) {
          EXPECT_NEAR(std::exp(z), it->second, 1e-4) << t->labels()[j];
        } else {
          EXPECT_LT(std::exp(z), 1e-4) << t->labels()[j];
        }
      }
    }
  }
}

TEST_F(FastTextTeacherTest, SoftmaxAndHsGiveDistributionsOvaIndependentProbabilities) {
  const auto texts = comparison_texts();
  for (const std::string name : {"softmax", "hs", "one-vs-all"}) {
    SCOPED_TRACE(name);
    auto t = make_teacher(model(name));
    const size_t c = t->labels().size();
    const auto logits = predict(*t, texts);
    for (size_t i = 0; i < texts.size(); ++i) {
      double sum = 0.0;
      for (size_t j = 0; j < c; ++j) {
        const double p = std::exp(logits[i * c + j]);
        EXPECT_GE(p, 0.0);
        EXPECT_LE(p, 1.0 + 1e-6);
        sum += p;
      }
      if (name == "softmax") {
        EXPECT_NEAR(sum, 1.0, 1e-5) << texts[i];
      } else if (name == "hs") {
        EXPECT_NEAR(sum, 1.0, 1e-3) << texts[i];
      }
    }
  }
}

TEST_F(FastTextTeacherTest, StochasticPassesDropWordsReproducibly) {
  auto t = make_teacher(model("softmax"), "word_dropout = 0.3\n");
  const size_t c = t->labels().size();
  const uint32_t k = 6;
  const std::vector<std::string> texts = {"short text", *long_text_};
  const auto a = predict(*t, texts, k, 42);
  const auto again = predict(*t, texts, k, 42);
  const auto other = predict(*t, texts, k, 43);
  for (float z : a) ASSERT_TRUE(std::isfinite(z));
  EXPECT_EQ(a, again);
  EXPECT_NE(a, other);
  // The long text's K passes differ from each other, and from the deterministic pass.
  const auto det = predict(*t, {*long_text_});
  auto row = [&](const std::vector<float>& v, size_t s, size_t i) {
    return std::vector<float>(v.begin() + static_cast<long>((s * texts.size() + i) * c),
                              v.begin() + static_cast<long>((s * texts.size() + i + 1) * c));
  };
  size_t distinct_from_first = 0, distinct_from_det = 0;
  for (size_t s = 1; s < k; ++s) distinct_from_first += row(a, s, 1) != row(a, 0, 1) ? 1 : 0;
  for (size_t s = 0; s < k; ++s) distinct_from_det += row(a, s, 1) != det ? 1 : 0;
  EXPECT_EQ(distinct_from_first, k - 1);
  EXPECT_EQ(distinct_from_det, k);
  // Each pass is still a distribution.
  for (size_t s = 0; s < k; ++s) {
    double sum = 0.0;
    for (float z : row(a, s, 1)) sum += std::exp(z);
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
}

TEST_F(FastTextTeacherTest, StochasticPassOfATextDoesNotDependOnTheRestOfTheBatch) {
  auto t = make_teacher(model("softmax"));
  const size_t c = t->labels().size();
  const auto a = predict(*t, {"short text", *long_text_}, 3, 5);
  const auto b = predict(*t, {"an entirely different and much longer first text", *long_text_},
                         3, 5);
  for (size_t s = 0; s < 3; ++s)
    for (size_t j = 0; j < c; ++j)
      EXPECT_EQ(a[(s * 2 + 1) * c + j], b[(s * 2 + 1) * c + j]);
}

TEST_F(FastTextTeacherTest, NoDropoutMakesEverySampleTheDeterministicPass) {
  auto t = make_teacher(model("softmax"), "word_dropout = 0.0\n");
  const auto texts = comparison_texts();
  const auto det = predict(*t, texts);
  const uint32_t k = 4;
  const auto samples = predict(*t, texts, k, 99);
  for (uint32_t s = 0; s < k; ++s)
    EXPECT_EQ(std::vector<float>(samples.begin() + static_cast<long>(s * det.size()),
                                 samples.begin() + static_cast<long>((s + 1) * det.size())),
              det);
}

TEST_F(FastTextTeacherTest, EveryWordDroppedStillKeepsOne) {
  // With p close to 1 nearly every pass drops all words; the adapter then keeps one at random,
  // so every pass is the prediction for exactly one of the text's words.
  auto t = make_teacher(model("softmax"), "word_dropout = 0.999\n");
  const size_t c = t->labels().size();
  const std::vector<std::string> words = {"game", "sound", "matrix", "image", "player"};
  std::string text;
  for (const auto& w : words) text += (text.empty() ? "" : " ") + w;
  const auto single = predict(*t, words);  // [5, C]
  const uint32_t k = 16;
  const auto out = predict(*t, {text}, k, 1);
  for (size_t s = 0; s < k; ++s) {
    const std::vector<float> pass(out.begin() + static_cast<long>(s * c),
                                  out.begin() + static_cast<long>((s + 1) * c));
    bool matches_one_word = false;
    for (size_t w = 0; w < words.size(); ++w) {
      const auto word = single.begin() + static_cast<long>(w * c);
      matches_one_word |= pass == std::vector<float>(word, word + static_cast<long>(c));
    }
    EXPECT_TRUE(matches_one_word) << "pass " << s;
  }
}

TEST_F(FastTextTeacherTest, LabelSubsetRestrictsAndReordersTheOutput) {
  auto full = make_teacher(model("softmax"));
  const auto& all = full->labels();
  ASSERT_GE(all.size(), 3u);
  const std::vector<std::string> subset = {all[2], all[0]};
  auto t = make_teacher(model("softmax"),
                        "labels = [" + toml_string(subset[0]) + ", " + toml_string(subset[1]) +
                            "]\n");
  EXPECT_EQ(t->labels(), subset);
  const auto texts = comparison_texts();
  const auto a = predict(*full, texts), b = predict(*t, texts);
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(b[i * 2 + 0], a[i * all.size() + 2]);
    EXPECT_EQ(b[i * 2 + 1], a[i * all.size() + 0]);
  }
}

// Runs create and returns the registry's message ("" if it did not refuse).
std::string refusal(const fs::path& model_path, const std::string& options = "") {
  try {
    make_teacher(model_path, options);
  } catch (const PluginError& e) {
    return e.what();
  }
  return "";
}

TEST_F(FastTextTeacherTest, RefusesAnUnknownLabel) {
  const std::string msg = refusal(model("softmax"), "labels = [\"nosuchlabel\"]\n");
  EXPECT_NE(msg.find("no label 'nosuchlabel'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("create failed"), std::string::npos) << msg;
}

TEST_F(FastTextTeacherTest, RefusesBadOptions) {
  std::string msg = refusal(model("softmax"), "word_dropout = 1.0\n");
  EXPECT_NE(msg.find("word_dropout"), std::string::npos) << msg;
  msg = refusal(model("softmax"), "labels = []\n");
  EXPECT_NE(msg.find("'labels' is empty"), std::string::npos) << msg;
  const std::vector<std::string> all = make_teacher(model("softmax"))->labels();
  msg = refusal(model("softmax"),
                "labels = [" + toml_string(all[0]) + ", " + toml_string(all[0]) + "]\n");
  EXPECT_NE(msg.find("twice"), std::string::npos) << msg;
}

TEST_F(FastTextTeacherTest, RefusesAMissingModelFile) {
  const fs::path missing = dir_->path() / "no-such-model.bin";
  const std::string msg = refusal(missing);
  EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;
  EXPECT_NE(msg.find(missing.string()), std::string::npos) << msg;
}

TEST_F(FastTextTeacherTest, RefusesFilesThatAreNotFastTextModels) {
  const fs::path text = dir_->path() / "train.txt";
  std::string msg = refusal(text);
  EXPECT_NE(msg.find("is not a fastText model"), std::string::npos) << msg;
  EXPECT_NE(msg.find(text.string()), std::string::npos) << msg;
  msg = refusal(dir_->write("empty.bin", ""));
  EXPECT_NE(msg.find("is not a fastText model"), std::string::npos) << msg;
  msg = refusal(dir_->path());
  EXPECT_NE(msg.find("not a regular file"), std::string::npos) << msg;
  // The right magic number with a format version from the future.
  std::string future = read_file(model("softmax")).substr(0, 64);
  future[4] = 99;
  msg = refusal(dir_->write("future.bin", future));
  EXPECT_NE(msg.find("format version 99"), std::string::npos) << msg;
}

TEST_F(FastTextTeacherTest, RefusesATruncatedModel) {
  // fastText's own loader would loop for ever on most of these (it reads a word until a '\0').
  const std::string full = read_file(model("softmax"));
  for (size_t n : {size_t{9}, size_t{40}, size_t{1000}, full.size() / 2, full.size() - 1}) {
    SCOPED_TRACE(n);
    const std::string msg = refusal(dir_->write("truncated.bin", full.substr(0, n)));
    EXPECT_NE(msg.find("ends too early"), std::string::npos) << msg;
  }
}

TEST_F(FastTextTeacherTest, RefusesAnUnsupervisedModel) {
  const fs::path vectors = dir_->path() / "vectors";
  run("fasttext cbow -input '" + (dir_->path() / "train.txt").string() + "' -output '" +
      vectors.string() + "' -dim 8 -epoch 1 -bucket 1000 -minn 0 -maxn 0 -thread 1 -verbose 0");
  const std::string msg = refusal(vectors.string() + ".bin");
  EXPECT_NE(msg.find("unsupervised"), std::string::npos) << msg;
}

// The real pretrained language-identification model (hierarchical softmax, quantized, 176
// labels, char n-grams).
TEST(FastTextLidModel, IdentifiesEnglishAndFrench) {
  const fs::path lid = muki::test::source_dir() / ".cache/assets/lid.176.ftz";
  ASSERT_TRUE(fs::exists(lid)) << lid << " is missing: run scripts/fetch-assets.sh";
  auto t = make_teacher(lid);
  const auto& labels = t->labels();
  ASSERT_EQ(labels.size(), 176u);
  EXPECT_NE(std::find(labels.begin(), labels.end(), "en"), labels.end());
  const std::vector<std::string> texts = {"This is a simple English sentence about computers.",
                                          "Ceci est une phrase en français sur les ordinateurs."};
  std::vector<float> out(texts.size() * labels.size());
  t->predict(texts, 0, 0, out.data());
  const std::vector<std::string> expected = {"en", "fr"};
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto first = out.begin() + static_cast<long>(i * labels.size());
    const auto best = std::max_element(first, first + static_cast<long>(labels.size()));
    EXPECT_EQ(labels[static_cast<size_t>(best - first)], expected[i]) << texts[i];
    EXPECT_GT(std::exp(*best), 0.5f) << texts[i];
    double sum = 0.0;
    for (auto it = first; it != first + static_cast<long>(labels.size()); ++it)
      sum += std::exp(*it);
    EXPECT_NEAR(sum, 1.0, 1e-2) << texts[i];
  }
  // Its probabilities are the CLI's (hs prunes some leaves there: those must be tiny here).
  const muki::test::TempDir dir;
  const auto cli = cli_probabilities(dir, lid, texts, labels.size());
  ASSERT_EQ(cli.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i)
    for (size_t j = 0; j < labels.size(); ++j) {
      auto it = cli[i].find(labels[j]);
      const float p = std::exp(out[i * labels.size() + j]);
      if (it != cli[i].end()) {
        EXPECT_NEAR(p, it->second, 1e-4) << labels[j];
      } else {
        EXPECT_LT(p, 1e-4) << labels[j];
      }
    }
  // Its stochastic passes work too (char n-grams of the kept words only).
  std::vector<float> samples(4 * texts.size() * labels.size());
  t->predict(texts, 4, 3, samples.data());
  for (float z : samples) ASSERT_TRUE(std::isfinite(z));
}

}  // namespace

// SDK 1.1: the features are fastText's sentence vector, what `fasttext print-sentence-vectors`
// prints for the same text; in a stochastic pass, that of the word-dropped text.
TEST_F(FastTextTeacherTest, FeaturesAreTheCliSentenceVectors) {
  auto t = make_teacher(model("softmax"), "word_dropout = 0.5\n");
  const auto texts = comparison_texts();
  const size_t c = t->labels().size(), h = static_cast<size_t>(t->feature_dim());
  ASSERT_GT(h, 0u);
  std::vector<float> logits(texts.size() * c), features(texts.size() * h);
  t->predict(texts, 0, 0, logits.data(), features.data());
  EXPECT_EQ(logits, predict(*t, texts));
  const auto cli = cli_sentence_vectors(*dir_, model("softmax"), texts);
  ASSERT_EQ(cli.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    ASSERT_EQ(cli[i].size(), h) << "text " << i;
    for (size_t j = 0; j < h; ++j) EXPECT_NEAR(features[i * h + j], cli[i][j], 1e-4) << i << ", " << j;
  }
  const uint32_t k = 3;
  std::vector<float> k_logits(k * logits.size()), k_features(k * features.size());
  t->predict(texts, k, 4, k_logits.data(), k_features.data());
  std::vector<float> plain(k * logits.size());
  t->predict(texts, k, 4, plain.data());
  EXPECT_EQ(k_logits, plain);  // the same word dropout with and without features
  EXPECT_NE(std::vector<float>(k_features.begin(), k_features.begin() + static_cast<long>(features.size())),
            features);  // half the words dropped: another sentence vector
}
