// The `fasttext` teacher adapter: a supervised fastText classifier (.bin or .ftz, as written by
// `fasttext supervised` / `fasttext quantize`, fastText 0.9.2 library) as a MUKI teacher.
//
// Logits are the model's log-probabilities over its labels, computed by fastText's own predict()
// on the dictionary's tokenisation of the text, i.e. what `fasttext predict-prob` prints:
//   - softmax loss: a distribution; exp(logits) sums to 1.
//   - hs (hierarchical softmax): a distribution too, up to fastText's smoothing (below).
//   - one-vs-all / ns: one independent sigmoid per label; they do NOT sum to 1. We still return
//     log(p_i): the host's softmax turns them into a distribution proportional to p_i.
// A probability of 0 gives kLogFloor rather than -inf, so every logit stays finite.
//
// Text: fastText expects the text it was trained on (often lowercased and tokenised by a script);
// we do not alter it. Like the CLI, the dictionary splits it on ASCII whitespace (tabs and
// newlines inside a text count as spaces here, whereas the CLI would end the line) and the line
// ends with fastText's end-of-sentence token </s>, which every training line also had. A text of
// which the model knows nothing (no word, no n-gram bucket, no </s>) gives a uniform distribution.
//
// fastText has no dropout layer, so the stochastic mode (MC passes for MUKI's uncertainty) drops
// input words instead: each word is dropped independently with probability `word_dropout`, and
// the word and character n-grams are rebuilt from the remaining words, as if the text had been
// written without them; </s> is always kept. If every word of a non-empty text was dropped, one
// of them, picked at random, is kept, so each pass still sees some of the text. Each (text,
// pass) has its own random stream seeded from (request seed, text index in the batch, pass
// index), so the same request gives the same output and a text's passes do not depend on the
// other texts of the batch.
//
// `labels` restricts the output to a subset of the model's labels (the teacher is then an expert
// on those only): the logits are the same log-probabilities, not renormalised over the subset.
//
// Features (SDK 1.1): fastText's sentence vector of the same (possibly word-dropped) line, i.e.
// the mean of the input vectors of its words, n-grams and </s>: the hidden layer its classifier
// reads (FastText::getSentenceVector), of the model's dimension.
#include <muki/plugin.hpp>

#include <fasttext/fasttext.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

namespace fs = std::filesystem;
using muki::sdk::Error;

// fastText's model file header: little-endian int32 magic, then int32 format version. These are
// private to fasttext.cc (FILEFORMAT_MAGIC_INT32, FASTTEXT_VERSION), so we repeat them here.
// FastText::loadModel() checks them too, but we check first to give a message that says what the
// file is, and because we would rather not hand arbitrary bytes to a loader that trusts sizes.
constexpr int32_t kFastTextMagic = 793712314;
constexpr int32_t kFastTextMaxVersion = 12;  // what libfasttext 0.9.2 writes and reads

// Logit for a probability of exactly 0 (log 0 = -inf would poison softmax and entropy).
constexpr float kLogFloor = -100.0f;

// fastText reports log(p + 1e-5) (its std_log), not log(p); we remove that offset again so that
// exp(logits) are the model's probabilities. Exact for softmax / one-vs-all / ns, where the offset
// is applied once per label; hs applies it at every tree node on a label's path, so there removing
// it once is a first-order correction (the leftover is below ~1e-5 per node).
constexpr double kFastTextLogEpsilon = 1e-5;

// The byte set fastText's Dictionary::readWord splits on. '\n' would also end the line (EOS).
bool is_fasttext_space(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f' || c == '\0';
}

std::vector<std::string_view> split_words(std::string_view text) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_fasttext_space(text[i])) ++i;
    const size_t start = i;
    while (i < text.size() && !is_fasttext_space(text[i])) ++i;
    if (i > start) words.push_back(text.substr(start, i - start));
  }
  return words;
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// One independent stream per (request seed, text index, sample index): a text's dropout masks do
// not depend on the other texts of the batch (their lengths would shift a shared stream).
uint64_t pass_seed(uint64_t seed, uint64_t text_index, uint64_t sample_index) {
  return splitmix64(splitmix64(splitmix64(seed) ^ text_index) ^ (sample_index + 1));
}

// Refuses, with a message that says why, anything FastText::loadModel should not be given.
void check_model_file(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw Error(MUKI_ERR_IO, "model file '" + path.string() + "' does not exist");
  if (!fs::is_regular_file(path, ec))
    throw Error(MUKI_ERR_CONFIG, "model '" + path.string() + "' is not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(MUKI_ERR_IO, "cannot open model file '" + path.string() + "'");
  std::array<unsigned char, 8> header{};
  in.read(reinterpret_cast<char*>(header.data()), static_cast<std::streamsize>(header.size()));
  const auto le32 = [&](size_t at) {
    return static_cast<int32_t>(static_cast<uint32_t>(header[at]) |
                                static_cast<uint32_t>(header[at + 1]) << 8 |
                                static_cast<uint32_t>(header[at + 2]) << 16 |
                                static_cast<uint32_t>(header[at + 3]) << 24);
  };
  if (in.gcount() != static_cast<std::streamsize>(header.size()) || le32(0) != kFastTextMagic)
    throw Error(MUKI_ERR_CONFIG, "'" + path.string() +
                                     "' is not a fastText model (no fastText header; expected a "
                                     ".bin or .ftz file written by fastText)");
  const int32_t version = le32(4);
  if (version > kFastTextMaxVersion || version < 0)
    throw Error(MUKI_ERR_CONFIG, "'" + path.string() + "' has fastText format version " +
                                     std::to_string(version) + "; this build reads up to " +
                                     std::to_string(kFastTextMaxVersion));
}

// FastText::loadModel(filename) reads with a plain stream and trusts every size field, so a
// truncated file makes it loop for ever on EOF (reading a word until a '\0' that never comes) or
// read garbage. This loader makes any read past the end throw instead. It derives from FastText
// only to reach checkModel(), which loadModel(filename) calls and which sets the format version
// that loadModel(istream&) relies on.
class CheckedFastText : public fasttext::FastText {
 public:
  void load(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(MUKI_ERR_IO, "cannot open model file '" + path.string() + "'");
    in.exceptions(std::ios::eofbit | std::ios::failbit | std::ios::badbit);
    if (!checkModel(in)) throw std::invalid_argument("wrong file format");
    loadModel(in);
  }
};

class FastTextTeacher : public muki::sdk::Teacher {
 public:
  explicit FastTextTeacher(const muki::sdk::Context& ctx) {
    const muki::sdk::Options& opt = ctx.options;
    fs::path path = opt.get_string("model", "");
    if (path.empty()) throw Error(MUKI_ERR_CONFIG, "option 'model' is required");
    // The host makes PATH options absolute; a direct caller may not have.
    if (path.is_relative() && !ctx.config_dir.empty()) path = fs::path(ctx.config_dir) / path;

    word_dropout_ = opt.get_float("word_dropout", 0.1);
    if (!(word_dropout_ >= 0.0 && word_dropout_ < 1.0))
      throw Error(MUKI_ERR_CONFIG, "option 'word_dropout' must be in [0, 1), got " +
                                       std::to_string(word_dropout_));
    const std::string prefix = opt.get_string("label_prefix", "__label__");

    check_model_file(path);
    try {
      model_.load(path);
    } catch (const std::ios_base::failure&) {
      throw Error(MUKI_ERR_CONFIG, "cannot load fastText model '" + path.string() +
                                       "': the file ends too early (truncated?)");
    } catch (const std::bad_alloc&) {
      throw Error(MUKI_ERR_CONFIG, "cannot load fastText model '" + path.string() +
                                       "': a size field is too large (corrupt file?)");
    } catch (const std::exception& e) {
      throw Error(MUKI_ERR_CONFIG,
                  "cannot load fastText model '" + path.string() + "': " + e.what());
    }
    if (model_.getArgs().model != fasttext::model_name::sup)
      throw Error(MUKI_ERR_CONFIG, "'" + path.string() +
                                       "' is an unsupervised fastText model (word vectors); a "
                                       "teacher needs a supervised classifier");
    dict_ = model_.getDictionary();
    num_model_labels_ = dict_->nlabels();
    if (num_model_labels_ < 1)
      throw Error(MUKI_ERR_CONFIG, "fastText model '" + path.string() + "' has no labels");

    // The model's labels with the prefix stripped, in the model's order (its label ids).
    std::vector<std::string> all;
    std::unordered_map<std::string, int32_t> index;
    for (int32_t i = 0; i < num_model_labels_; ++i) {
      std::string name = dict_->getLabel(i);
      if (!prefix.empty() && name.compare(0, prefix.size(), prefix) == 0)
        name.erase(0, prefix.size());
      if (!index.emplace(name, i).second)
        throw Error(MUKI_ERR_CONFIG, "label '" + name + "' occurs twice in '" + path.string() +
                                         "' after stripping the prefix '" + prefix + "'");
      all.push_back(std::move(name));
    }

    const std::vector<std::string> wanted = opt.get_string_array("labels");
    if (opt.has("labels") && wanted.empty())
      throw Error(MUKI_ERR_CONFIG, "option 'labels' is empty; leave it out to use all labels");
    if (wanted.empty()) {
      labels_ = all;
      for (int32_t i = 0; i < num_model_labels_; ++i) selected_.push_back(i);
    } else {
      for (const std::string& name : wanted) {
        auto it = index.find(name);
        if (it == index.end()) {
          std::string known;
          for (size_t i = 0; i < all.size() && i < 20; ++i)
            known += (i == 0 ? "" : ", ") + all[i];
          if (all.size() > 20) known += ", ... (" + std::to_string(all.size()) + " in all)";
          throw Error(MUKI_ERR_CONFIG, "option 'labels': the model has no label '" + name +
                                           "'; its labels are: " + known);
        }
        if (std::find(selected_.begin(), selected_.end(), it->second) != selected_.end())
          throw Error(MUKI_ERR_CONFIG, "option 'labels' lists '" + name + "' twice");
        selected_.push_back(it->second);
        labels_.push_back(name);
      }
    }

    std::ostringstream note;
    note << "word dropout p=" << word_dropout_
         << " on the input words (fastText has no dropout layers)";
    note_ = note.str();
    const fasttext::Args args = model_.getArgs();
    std::ostringstream info;
    info << "loaded " << path.string() << ": " << num_model_labels_ << " labels, "
         << dict_->nwords() << " words, loss " << args.lossToString(args.loss)
         << (model_.isQuant() ? ", quantized" : "") << "; exposing " << labels_.size()
         << " labels";
    ctx.log(MUKI_LOG_INFO, info.str());
  }

  const std::vector<std::string>& labels() const override { return labels_; }
  bool can_sample() const override { return true; }
  std::string sampling_note() const override { return note_; }

  size_t feature_dim() const override { return static_cast<size_t>(model_.getDimension()); }

  void predict_with_features(const std::vector<std::string_view>& texts, uint32_t samples,
                             uint64_t seed, muki::sdk::Tensor out,
                             muki::sdk::Tensor* features) override {
    std::vector<std::string_view> kept;
    const auto i64 = [](size_t v) { return static_cast<int64_t>(v); };
    if (samples == 0) {
      for (size_t i = 0; i < texts.size(); ++i)
        log_probs(split_words(texts[i]), &out(i64(i), 0),
                  features != nullptr ? &(*features)(i64(i), 0) : nullptr);
      return;
    }
    for (uint32_t k = 0; k < samples; ++k) {
      for (size_t i = 0; i < texts.size(); ++i) {
        const std::vector<std::string_view> words = split_words(texts[i]);
        float* row = &out(static_cast<int64_t>(k), i64(i), 0);
        float* feature_row = features != nullptr ? &(*features)(k, i64(i), 0) : nullptr;
        if (word_dropout_ <= 0.0 || words.empty()) {
          log_probs(words, row, feature_row);
          continue;
        }
        std::mt19937_64 rng(pass_seed(seed, i, k));
        std::bernoulli_distribution drop(word_dropout_);
        kept.clear();
        for (std::string_view w : words)
          if (!drop(rng)) kept.push_back(w);
        // An empty input says nothing about the text; keep one word so every pass still sees
        // some of it.
        if (kept.empty())
          kept.push_back(words[std::uniform_int_distribution<size_t>(0, words.size() - 1)(rng)]);
        log_probs(kept, row, feature_row);
      }
    }
  }

 private:
  // Writes the log-probabilities of the selected labels for one (possibly word-dropped) text,
  // and its sentence vector into `features` unless that is null.
  void log_probs(const std::vector<std::string_view>& words, float* out, float* features) {
    // Rebuild the line as fastText's CLI reads it: words separated by spaces, then '\n', which
    // the dictionary turns into the end-of-sentence token </s> that every training line also had.
    line_.clear();
    for (size_t j = 0; j < words.size(); ++j) {
      if (j > 0) line_ += ' ';
      line_.append(words[j].data(), words[j].size());
    }
    line_ += '\n';
    std::istringstream in(line_);
    dict_->getLine(in, ids_, unused_labels_);
    if (features != nullptr) {
      std::istringstream again(line_);
      fasttext::Vector vector(model_.getDimension());
      model_.getSentenceVector(again, vector);
      std::copy(vector.data(), vector.data() + vector.size(), features);
    }

    probs_.assign(static_cast<size_t>(num_model_labels_), -1.0);  // -1: not returned
    if (ids_.empty()) {
      // Nothing fastText knows (it would predict nothing): the model has no evidence, so every
      // label is equally likely.
      std::fill(probs_.begin(), probs_.end(), 1.0 / num_model_labels_);
    } else {
      // k = all labels, threshold 0: every label comes back, except that hierarchical softmax
      // prunes leaves whose path score is below log(1e-5).
      // predict() appends to its output (it is a heap it keeps filling), so start empty.
      predictions_.clear();
      model_.predict(num_model_labels_, ids_, predictions_, 0.0f);
      double total = 0.0;
      int32_t missing = num_model_labels_;
      for (const auto& [log_p, label] : predictions_) {
        if (label < 0 || label >= num_model_labels_ || probs_[static_cast<size_t>(label)] >= 0.0)
          continue;
        const double p = std::max(0.0, std::exp(static_cast<double>(log_p)) - kFastTextLogEpsilon);
        probs_[static_cast<size_t>(label)] = p;
        total += p;
        --missing;
      }
      // Labels hs pruned share what is left of the mass (they are all below ~1e-5).
      const double share = missing > 0 ? std::max(0.0, 1.0 - total) / missing : 0.0;
      for (double& p : probs_)
        if (p < 0.0) p = share;
    }
    for (size_t j = 0; j < selected_.size(); ++j) {
      const double p = probs_[static_cast<size_t>(selected_[j])];
      out[j] = p > 0.0 ? std::max(kLogFloor, static_cast<float>(std::log(p))) : kLogFloor;
    }
  }

  CheckedFastText model_;
  std::shared_ptr<const fasttext::Dictionary> dict_;
  int32_t num_model_labels_ = 0;
  std::vector<int32_t> selected_;  // model label id of each exposed label
  std::vector<std::string> labels_;
  double word_dropout_ = 0.1;
  std::string note_;
  // Scratch buffers, reused across calls (one instance is called from one thread at a time).
  std::string line_;
  std::vector<int32_t> ids_, unused_labels_;
  fasttext::Predictions predictions_;
  std::vector<double> probs_;
};

const muki_param_desc kParams[] = {
    muki::sdk::required_param("model", MUKI_PARAM_PATH,
                              "supervised fastText model (.bin or .ftz) to load"),
    muki::sdk::param("labels", MUKI_PARAM_STRING_ARRAY, nullptr,
                     "labels to expose, in this order, without the prefix (default: all of the "
                     "model's, in its order); the teacher is then an expert on these only"),
    muki::sdk::param("word_dropout", MUKI_PARAM_FLOAT, "0.1",
                     "probability of dropping each input word in a stochastic pass, in [0, 1)",
                     0.0, 1.0),
    muki::sdk::param("label_prefix", MUKI_PARAM_STRING, "\"__label__\"",
                     "prefix stripped from the model's label names (fastText's -label)")};

}  // namespace

MUKI_PLUGIN_LIBRARY("muki-teacher-fasttext", "0.1.0", "fastText supervised classifiers as teachers",
                    MUKI_TEACHER(FastTextTeacher, "fasttext", "0.1.0",
                                 "a supervised fastText model (.bin/.ftz); stochastic passes drop "
                                 "input words",
                                 kParams))
