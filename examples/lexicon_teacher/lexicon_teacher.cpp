// A third-party teacher adapter written with the C++ helpers (<muki/plugin.hpp>), built against an
// installed muki: a multinomial Naive Bayes "lexicon" over words, fitted when the teacher is
// created from a labeled TSV file, restricted to the labels it is an expert on. It shows the three
// things a teacher may offer the host: logits, stochastic passes, and features (ABI 1.1).
//
//   logits      log P(y) + sum over the text's known words w of log P(w | y), with add-alpha
//               smoothing over the expert's vocabulary; words it never saw are skipped.
//   stochastic  word dropout: each word of the text is dropped with probability word_dropout,
//               independently per pass, from a stream seeded by (request seed, text index, pass);
//               at least one word is kept. The same request gives the same output.
//   features    the L2-normalised hashed bag of words (FNV-1a of each word, modulo feature_dim)
//               of the same, possibly word-dropped, text.
//
// Options:
//   data          PATH, required: a TSV file with a header row and `text` and `label` columns
//                 (muki's dataset format), e.g. data/ddtp-en/train.tsv.
//   labels        STRING ARRAY, required: the labels this teacher is an expert on; rows with other
//                 labels are not read.
//   alpha         FLOAT, default 1: additive smoothing of the word counts.
//   word_dropout  FLOAT, default 0.1: the stochastic passes' word dropout, in [0, 1).
//   feature_dim   INT, default 64: length of the hashed feature vector.
#include <muki/plugin.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using muki::sdk::Error;

// Lowercased runs of ASCII letters and digits; everything else separates words.
std::vector<std::string> words_of(std::string_view text) {
  std::vector<std::string> words;
  std::string word;
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c)) {
      word += static_cast<char>(std::tolower(c));
    } else if (!word.empty()) {
      words.push_back(std::move(word));
      word.clear();
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  return words;
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> fields(1);
  for (char c : line) {
    if (c == '\t') fields.emplace_back();
    else if (c != '\r') fields.back() += c;
  }
  return fields;
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

class LexiconTeacher : public muki::sdk::Teacher {
 public:
  explicit LexiconTeacher(const muki::sdk::Context& ctx)
      : labels_(ctx.options.get_string_array("labels")),
        alpha_(ctx.options.get_float("alpha", 1.0)),
        word_dropout_(ctx.options.get_float("word_dropout", 0.1)),
        feature_dim_(static_cast<size_t>(ctx.options.get_int("feature_dim", 64))) {
    if (labels_.empty()) throw Error(MUKI_ERR_CONFIG, "option 'labels' must name at least one label");
    const std::string path = ctx.options.get_string("data", "");
    const size_t rows = fit(path);
    ctx.log(MUKI_LOG_INFO, "fitted on " + std::to_string(rows) + " rows of " + path + ": " +
                               std::to_string(log_likelihood_.size()) + " words, " +
                               std::to_string(labels_.size()) + " labels");
  }

  const std::vector<std::string>& labels() const override { return labels_; }
  bool can_sample() const override { return word_dropout_ > 0.0; }
  std::string sampling_note() const override {
    return "word dropout p=" + std::to_string(word_dropout_) + " on the input words";
  }
  size_t feature_dim() const override { return feature_dim_; }

  void predict_with_features(const std::vector<std::string_view>& texts, uint32_t samples,
                             uint64_t seed, muki::sdk::Tensor out,
                             muki::sdk::Tensor* features) override {
    const uint32_t passes = std::max<uint32_t>(1, samples);
    for (uint32_t k = 0; k < passes; ++k) {
      for (size_t i = 0; i < texts.size(); ++i) {
        std::vector<std::string> words = words_of(texts[i]);
        if (samples > 0) words = drop_words(std::move(words), seed, i, k);
        const auto b = static_cast<int64_t>(i);
        float* logits = samples == 0 ? &out(b, 0) : &out(k, b, 0);
        score(words, logits);
        if (features != nullptr) hash_words(words, samples == 0 ? &(*features)(b, 0) : &(*features)(k, b, 0));
      }
    }
  }

 private:
  // Counts words per label; returns how many rows of the expert's labels were read.
  size_t fit(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw Error(MUKI_ERR_IO, "option 'data': cannot open " + path);
    std::string line;
    if (!std::getline(in, line)) throw Error(MUKI_ERR_CONFIG, path + " is empty");
    const std::vector<std::string> header = split_tabs(line);
    const auto column = [&](const char* name) {
      const auto it = std::find(header.begin(), header.end(), name);
      if (it == header.end())
        throw Error(MUKI_ERR_CONFIG, path + ": the header has no '" + name + "' column");
      return static_cast<size_t>(it - header.begin());
    };
    const size_t text_col = column("text"), label_col = column("label");
    std::unordered_map<std::string, size_t> label_index;
    for (size_t i = 0; i < labels_.size(); ++i) label_index[labels_[i]] = i;

    const size_t c = labels_.size();
    std::unordered_map<std::string, std::vector<double>> counts;
    std::vector<double> totals(c, 0.0), docs(c, 0.0);
    size_t rows = 0, line_number = 1;
    while (std::getline(in, line)) {
      ++line_number;
      const std::vector<std::string> fields = split_tabs(line);
      if (fields.size() != header.size())
        throw Error(MUKI_ERR_CONFIG, path + ":" + std::to_string(line_number) + ": " +
                                         std::to_string(fields.size()) + " fields, the header has " +
                                         std::to_string(header.size()));
      const auto it = label_index.find(fields[label_col]);
      if (it == label_index.end()) continue;
      ++rows;
      docs[it->second] += 1.0;
      for (const std::string& w : words_of(fields[text_col])) {
        auto& row = counts[w];
        if (row.empty()) row.assign(c, 0.0);
        row[it->second] += 1.0;
        totals[it->second] += 1.0;
      }
    }
    for (size_t y = 0; y < c; ++y)
      if (docs[y] == 0.0)
        throw Error(MUKI_ERR_CONFIG, path + " has no row labeled '" + labels_[y] + "'");
    const double vocabulary = static_cast<double>(counts.size());
    for (size_t y = 0; y < c; ++y) log_prior_.push_back(std::log(docs[y] / static_cast<double>(rows)));
    for (const auto& [word, row] : counts) {
      std::vector<float> ll(c);
      for (size_t y = 0; y < c; ++y)
        ll[y] = static_cast<float>(std::log((row[y] + alpha_) / (totals[y] + alpha_ * vocabulary)));
      log_likelihood_.emplace(word, std::move(ll));
    }
    return rows;
  }

  std::vector<std::string> drop_words(std::vector<std::string> words, uint64_t seed, size_t text,
                                      uint32_t pass) const {
    if (words.empty() || word_dropout_ <= 0.0) return words;
    std::seed_seq seq{seed, static_cast<uint64_t>(text), static_cast<uint64_t>(pass)};
    std::mt19937_64 rng(seq);
    std::bernoulli_distribution drop(word_dropout_);
    std::vector<std::string> kept;
    for (auto& w : words)
      if (!drop(rng)) kept.push_back(std::move(w));
    if (kept.empty()) kept.push_back(words[std::uniform_int_distribution<size_t>(0, words.size() - 1)(rng)]);
    return kept;
  }

  void score(const std::vector<std::string>& words, float* logits) const {
    for (size_t y = 0; y < labels_.size(); ++y) logits[y] = static_cast<float>(log_prior_[y]);
    for (const std::string& w : words) {
      const auto it = log_likelihood_.find(w);
      if (it == log_likelihood_.end()) continue;
      for (size_t y = 0; y < labels_.size(); ++y) logits[y] += it->second[y];
    }
  }

  void hash_words(const std::vector<std::string>& words, float* features) const {
    std::fill(features, features + feature_dim_, 0.0f);
    for (const std::string& w : words) features[fnv1a(w) % feature_dim_] += 1.0f;
    double norm = 0.0;
    for (size_t j = 0; j < feature_dim_; ++j) norm += double(features[j]) * features[j];
    if (norm > 0.0)
      for (size_t j = 0; j < feature_dim_; ++j) features[j] = static_cast<float>(features[j] / std::sqrt(norm));
  }

  std::vector<std::string> labels_;
  double alpha_;
  double word_dropout_;
  size_t feature_dim_;
  std::vector<double> log_prior_;
  std::unordered_map<std::string, std::vector<float>> log_likelihood_;
};

const muki_param_desc kParams[] = {
    muki::sdk::required_param("data", MUKI_PARAM_PATH,
                              "labeled TSV (header with `text` and `label`) to fit the lexicon on"),
    muki::sdk::required_param("labels", MUKI_PARAM_STRING_ARRAY,
                              "the labels this teacher is an expert on"),
    muki::sdk::param("alpha", MUKI_PARAM_FLOAT, "1.0", "additive smoothing of word counts", 1e-9,
                     1e9),
    muki::sdk::param("word_dropout", MUKI_PARAM_FLOAT, "0.1",
                     "word dropout of the stochastic passes", 0.0, 0.99),
    muki::sdk::param("feature_dim", MUKI_PARAM_INT, "64", "length of the hashed feature vector", 1,
                     1 << 20),
};

void on_load(const muki_host_api* host) {
  const std::string message = "lexicon teacher library loaded";
  host->log(host->host_context, MUKI_LOG_DEBUG, muki::sdk::to_c("teacher/lexicon"),
            muki::sdk::to_c(message));
}

}  // namespace

MUKI_PLUGIN_LIBRARY_WITH_HOOKS("muki-example-lexicon-teacher", "1.0.0",
                               "a Naive Bayes lexicon teacher (C++ example)", on_load, nullptr,
                               MUKI_TEACHER(LexiconTeacher, "lexicon", "1.0.0",
                                            "multinomial Naive Bayes over words, fitted on a "
                                            "labeled TSV at load time; word dropout; hashed "
                                            "bag-of-words features",
                                            kParams))
