#include "muki/core/teacher_training.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "muki/core/checkpoint.h"
#include "muki/core/classifier_trainer.h"
#include "muki/core/dataset.h"
#include "muki/core/device.h"
#include "muki/core/models.h"
#ifdef MUKI_TORCH_SENTENCEPIECE
#include "muki/core/sentencepiece_tokenizer.h"
#endif
#include "muki/core/text_encoding.h"
#include "muki/core/wordpiece_tokenizer.h"

namespace muki::core {
namespace fs = std::filesystem;

namespace {

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string json_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

std::string json_metrics(const ClassificationMetrics& m) {
  return "{\"accuracy\": " + json_number(m.accuracy) + ", \"macro_f1\": " +
         json_number(m.macro_f1) + ", \"examples\": " + std::to_string(m.examples) + "}";
}

std::string json_counts(const SplitCounts& c) {
  return "{\"read\": " + std::to_string(c.read) + ", \"kept\": " + std::to_string(c.kept) +
         ", \"left_out\": " + std::to_string(c.left_out) + "}";
}

// A [data] entry as a DatasetSpec, paths relative to the config file.
DatasetSpec dataset_spec(const toml::table& t, const Config& config) {
  DatasetSpec spec;
  spec.path = (config.base_dir() / t["path"].value_or(std::string())).lexically_normal();
  spec.format = t["format"].value_or(std::string());
  spec.text_field = t["text"].value_or(std::string("text"));
  spec.label_field = t["label"].value_or(std::string("label"));
  spec.id_field = t["id"].value_or(std::string());
  spec.group_field = t["group"].value_or(std::string());
  spec.on_error = t["on_error"].value_or(std::string("fail")) == "skip" ? OnError::Skip : OnError::Fail;
  return spec;
}

struct Split {
  std::vector<std::string> texts;
  std::vector<int64_t> labels;  // index into the teacher's labels
  SplitCounts counts;
};

Split filter_split(const Dataset& data, const std::vector<std::string>& labels) {
  Split out;
  out.counts.read = static_cast<int64_t>(data.examples.size());
  for (const Example& e : data.examples) {
    const auto it = std::find(labels.begin(), labels.end(), *e.label);
    if (it == labels.end()) {
      ++out.counts.left_out;
      continue;
    }
    out.texts.push_back(e.text);
    out.labels.push_back(static_cast<int64_t>(it - labels.begin()));
  }
  out.counts.kept = static_cast<int64_t>(out.texts.size());
  return out;
}

EvalSet eval_set(const Tokenizer& tokenizer, const Split& split, int64_t max_length) {
  EncodedTexts enc = encode_texts(tokenizer, split.texts, max_length, /*pad_to_max=*/true);
  std::vector<int64_t> labels = split.labels;
  return EvalSet{enc.input_ids, enc.attention_mask,
                 torch::from_blob(labels.data(), {static_cast<int64_t>(labels.size())}, torch::kLong)
                     .clone()};
}

// A WordPiece vocabulary from a corpus: the special tokens, every character seen (as a word
// start and as a "##" continuation, so any word of the corpus can be spelled), then the most
// frequent words (BERT's basic tokenization: lowercased, accents stripped, punctuation split) until
// vocab_size. Not Google's likelihood-based WordPiece training, but a deterministic stand-in that
// needs no extra library: frequent words are single tokens, rare words fall back to pieces.
std::vector<std::string> build_wordpiece_vocabulary(const std::vector<std::string>& texts,
                                                    int64_t vocab_size,
                                                    const WordPieceOptions& options) {
  const WordPieceTokenizer basic({options.pad_token, options.unk_token}, options);
  std::map<std::string, int64_t> words;
  std::map<std::string, int64_t> chars;
  for (const std::string& text : texts)
    for (const std::string& w : basic.basic_tokenize(text)) {
      ++words[w];
      // UTF-8 characters of the word.
      for (size_t i = 0; i < w.size();) {
        size_t len = 1;
        const auto c = static_cast<unsigned char>(w[i]);
        if (c >= 0xF0) len = 4;
        else if (c >= 0xE0) len = 3;
        else if (c >= 0xC0) len = 2;
        ++chars[w.substr(i, len)];
        i += len;
      }
    }
  std::vector<std::string> vocab = {options.pad_token, options.unk_token, options.cls_token,
                                    options.sep_token};
  std::set<std::string> seen(vocab.begin(), vocab.end());
  auto add = [&](const std::string& t) {
    if (static_cast<int64_t>(vocab.size()) < vocab_size && seen.insert(t).second) vocab.push_back(t);
  };
  std::vector<std::pair<int64_t, std::string>> by_count;
  for (const auto& [c, n] : chars) by_count.emplace_back(-n, c);
  std::sort(by_count.begin(), by_count.end());
  for (const auto& [n, c] : by_count) add(c);
  for (const auto& [n, c] : by_count) add(options.continuation_prefix + c);
  by_count.clear();
  for (const auto& [w, n] : words) by_count.emplace_back(-n, w);
  std::sort(by_count.begin(), by_count.end());  // most frequent first, ties alphabetical
  for (const auto& [n, w] : by_count) add(w);
  return vocab;
}

void write_vocabulary(const std::vector<std::string>& vocab, const fs::path& file) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  for (const std::string& t : vocab) out << t << "\n";
  if (!out) throw CheckpointError(file.string() + ": cannot write the vocabulary");
}

}  // namespace

TeacherTrainingResult train_teacher(const Config& config) {
  if (auto problems = validate_teacher_training(config); !problems.empty())
    throw ConfigError(std::move(problems));
  const auto start = std::chrono::steady_clock::now();
  const toml::table& root = config.root();
  const std::string name = *root.at_path("teacher.name").value<std::string>();
  TeacherTrainingResult result;
  result.output = fs::absolute(*root.at_path("teacher.output").value<std::string>()).lexically_normal();
  const uint64_t seed = static_cast<uint64_t>(root.at_path("teacher.seed").value_or(int64_t{1}));
  const int threads = configure_threads(root.at_path("teacher.threads").value_or(int64_t{0}));
  torch::Device device = torch::kCPU;
  try {
    device = resolve_device(root.at_path("teacher.device").value_or(std::string("auto")));
  } catch (const std::invalid_argument& e) {
    throw ConfigError({ConfigProblem{config.path().string(), 0, 0, std::string("teacher.device: ") + e.what()}});
  }
  spdlog::info("teacher '{}': device {}, {} threads, output {}", name, device.str(), threads,
               result.output.string());

  // --- data --------------------------------------------------------------------------------
  const toml::table& data = *root["data"].as_table();
  const Dataset train_data = read_all(dataset_spec(*data["train"].as_table(), config));
  if (const toml::array* listed = root.at_path("teacher.labels").as_array()) {
    for (const toml::node& l : *listed) result.labels.push_back(*l.value<std::string>());
  } else {
    // No subset: every label of the train split, sorted (the supervised upper bound).
    std::set<std::string> all;
    for (const Example& e : train_data.examples) all.insert(*e.label);
    result.labels.assign(all.begin(), all.end());
  }
  const Split train = filter_split(train_data, result.labels);
  result.train = train.counts;
  for (size_t i = 0; i < result.labels.size(); ++i)
    if (std::find(train.labels.begin(), train.labels.end(), static_cast<int64_t>(i)) == train.labels.end())
      throw std::invalid_argument("teacher.labels: label '" + result.labels[i] +
                                  "' has no example in the train split " +
                                  dataset_spec(*data["train"].as_table(), config).path.string());
  auto read_optional = [&](const char* key, SplitCounts& counts) -> std::optional<Split> {
    const toml::table* t = data[key].as_table();
    if (t == nullptr) return std::nullopt;
    Split s = filter_split(read_all(dataset_spec(*t, config)), result.labels);
    counts = s.counts;
    return s;
  };
  const std::optional<Split> dev = read_optional("dev", result.dev);
  const std::optional<Split> test = read_optional("test", result.test);
  auto log_split = [&](const char* split, const SplitCounts& c) {
    spdlog::info("{}: {} examples of this teacher's {} labels kept, {} with other labels left out",
                 split, c.kept, result.labels.size(), c.left_out);
  };
  log_split("train", result.train);
  if (dev) log_split("dev", result.dev);
  if (test) log_split("test", result.test);

  // --- tokenizer -----------------------------------------------------------------------------
  std::error_code ec;
  fs::create_directories(result.output, ec);
  if (ec) throw CheckpointError(result.output.string() + ": cannot create the folder: " + ec.message());
  const toml::table& tok = *root["tokenizer"].as_table();
  TokenizerSpec spec;
  spec.type = *tok["type"].value<std::string>();
  fs::path tokenizer_file;
  std::unique_ptr<Tokenizer> tokenizer;
  if (spec.type == "wordpiece") {
    spec.file = "vocab.txt";
    spec.lowercase = tok["lowercase"].value_or(true);
    WordPieceOptions options;
    options.lower_case = spec.lowercase;
    if (auto vocab = tok["vocab"].value<std::string>()) {
      tokenizer_file = (config.base_dir() / *vocab).lexically_normal();
    } else {
      // No vocabulary given: one is built from this teacher's own training texts (a teacher knows
      // only its own data).
      tokenizer_file = result.output / spec.file;
      const auto vocab_size = tok["vocab_size"].value_or(int64_t{8000});
      write_vocabulary(build_wordpiece_vocabulary(train.texts, vocab_size, options), tokenizer_file);
    }
    tokenizer = std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_file(tokenizer_file, options));
    spdlog::info("tokenizer: WordPiece, {} tokens ({})", tokenizer->vocab_size(),
                 tok["vocab"] ? tokenizer_file.string() : std::string("built from the train split"));
  } else {
#ifdef MUKI_TORCH_SENTENCEPIECE
    spec.file = "tokenizer.model";
    if (auto model = tok["model"].value<std::string>()) {
      tokenizer_file = (config.base_dir() / *model).lexically_normal();
      tokenizer = std::make_unique<SentencePieceTokenizer>(SentencePieceTokenizer::load(tokenizer_file));
    } else {
      // Trained on this teacher's own training texts.
      const fs::path corpus = result.output / ".tokenizer-corpus.txt";
      {
        std::ofstream out(corpus, std::ios::binary | std::ios::trunc);
        for (const std::string& t : train.texts) out << t << "\n";
        if (!out) throw CheckpointError(corpus.string() + ": cannot write");
      }
      SentencePieceTrainOptions options;
      options.corpus = corpus;
      options.vocab_size = static_cast<int>(tok["vocab_size"].value_or(int64_t{8000}));
      options.model_type = tok["model_type"].value_or(std::string("unigram"));
      options.character_coverage = 1.0;
      // A small corpus cannot always fill vocab_size pieces: take what it supports.
      options.hard_vocab_limit = false;
      SentencePieceTokenizer trained = SentencePieceTokenizer::train(options);
      fs::remove(corpus, ec);
      tokenizer_file = result.output / spec.file;
      trained.save(tokenizer_file);
      tokenizer = std::make_unique<SentencePieceTokenizer>(std::move(trained));
    }
    spdlog::info("tokenizer: SentencePiece, {} pieces", tokenizer->vocab_size());
#else
    throw ConfigError({ConfigProblem{
        config.path().string(), tok["type"].node()->source().begin.line,
        tok["type"].node()->source().begin.column,
        "tokenizer.type \"sentencepiece\" is off in this build: Debian's libsentencepiece bundles "
        "a protobuf that clashes with the system LibTorch's (see core/CMakeLists.txt, "
        "MUKI_TORCH_SENTENCEPIECE); use \"wordpiece\" (a vocabulary is built from the train "
        "split when no vocab file is given)"}});
#endif
  }

  // --- model ---------------------------------------------------------------------------------
  const toml::table& m = *root["model"].as_table();
  ModelConfig mc;
  mc.type = m["type"].value_or(std::string("transformer"));
  mc.vocab_size = tokenizer->vocab_size();
  mc.num_labels = static_cast<int64_t>(result.labels.size());
  mc.hidden = m["hidden"].value_or(mc.hidden);
  mc.layers = m["layers"].value_or(mc.layers);
  mc.heads = m["heads"].value_or(mc.heads);
  mc.ffn = m["ffn"].value_or(mc.ffn);
  mc.max_length = m["max_length"].value_or(mc.max_length);
  mc.dropout = m["dropout"].value_or(mc.dropout);
  mc.pooling = m["pooling"].value_or(mc.pooling);
  mc.filters = m["filters"].value_or(mc.filters);
  torch::manual_seed(seed);  // the initial weights
  Classifier model = make_classifier(mc);
  model->to(device);

  TrainerOptions to;
  const toml::node_view<const toml::node> tr = root["train"];
  to.epochs = tr["epochs"].value_or(to.epochs);
  to.batch_size = tr["batch_size"].value_or(to.batch_size);
  to.lr = tr["lr"].value_or(to.lr);
  to.weight_decay = tr["weight_decay"].value_or(to.weight_decay);
  to.warmup = tr["warmup"].value_or(to.warmup);
  to.eval_every = tr["eval_every"].value_or(to.eval_every);
  to.patience = tr["patience"].value_or(to.patience);
  to.grad_clip = tr["grad_clip"].value_or(to.grad_clip);
  to.eval_batch_size = tr["eval_batch_size"].value_or(to.eval_batch_size);
  to.seed = seed;
  to.name = name;

  // --- training ------------------------------------------------------------------------------
  const EvalSet train_set = eval_set(*tokenizer, train, mc.max_length);
  std::optional<EvalSet> dev_set, test_set;
  if (dev && !dev->texts.empty()) dev_set = eval_set(*tokenizer, *dev, mc.max_length);
  if (test && !test->texts.empty()) test_set = eval_set(*tokenizer, *test, mc.max_length);
  const TrainResult trained =
      train_classifier(*model, TrainInputs{train_set.input_ids, train_set.attention_mask},
                       cross_entropy_loss(train_set.labels), dev_set ? &*dev_set : nullptr, to, device);
  result.steps = trained.steps;
  result.best_step = trained.best_step;
  result.stopped_early = trained.stopped_early;
  result.train_seconds = trained.seconds;
  if (dev_set) result.dev_metrics = evaluate(*model, *dev_set, to.eval_batch_size, device);
  if (test_set) result.test_metrics = evaluate(*model, *test_set, to.eval_batch_size, device);

  // --- report + checkpoint -------------------------------------------------------------------
  result.total_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::ostringstream j;
  j << "{\n  \"name\": " << json_string(name) << ",\n  \"config\": "
    << json_string(fs::absolute(config.path()).lexically_normal().string()) << ",\n  \"labels\": [";
  for (size_t i = 0; i < result.labels.size(); ++i) j << (i ? ", " : "") << json_string(result.labels[i]);
  j << "],\n  \"device\": " << json_string(device.str()) << ",\n  \"threads\": " << threads
    << ",\n  \"seed\": " << seed << ",\n  \"model\": {\"type\": " << json_string(mc.type)
    << ", \"vocab_size\": " << mc.vocab_size << ", \"hidden\": " << mc.hidden
    << ", \"layers\": " << mc.layers << ", \"heads\": " << mc.heads << ", \"ffn\": " << mc.ffn
    << ", \"max_length\": " << mc.max_length << ", \"dropout\": " << json_number(mc.dropout)
    << ", \"pooling\": " << json_string(mc.pooling) << ", \"filters\": " << mc.filters
    << ", \"parameters\": " << [&] {
         int64_t n = 0;
         for (const auto& p : model->parameters()) n += p.numel();
         return n;
       }()
    << "},\n  \"tokenizer\": {\"type\": " << json_string(spec.type)
    << ", \"vocab_size\": " << tokenizer->vocab_size() << "},\n  \"data\": {\"train\": "
    << json_counts(result.train) << ", \"dev\": " << json_counts(result.dev)
    << ", \"test\": " << json_counts(result.test) << "},\n  \"train\": {\"epochs\": " << to.epochs
    << ", \"batch_size\": " << to.batch_size << ", \"lr\": " << json_number(to.lr)
    << ", \"steps\": " << result.steps << ", \"planned_steps\": " << trained.planned_steps
    << ", \"best_step\": " << result.best_step
    << ", \"stopped_early\": " << (result.stopped_early ? "true" : "false")
    << ", \"seconds\": " << json_number(result.train_seconds) << ", \"history\": [";
  for (size_t i = 0; i < trained.history.size(); ++i) {
    const EvalRecord& r = trained.history[i];
    j << (i ? ",\n    " : "\n    ") << "{\"step\": " << r.step << ", \"epoch\": " << json_number(r.epoch)
      << ", \"train_loss\": " << json_number(r.train_loss) << ", \"dev\": " << json_metrics(r.dev) << "}";
  }
  j << "]},\n  \"dev\": " << (result.dev_metrics ? json_metrics(*result.dev_metrics) : "null")
    << ",\n  \"test\": " << (result.test_metrics ? json_metrics(*result.test_metrics) : "null")
    << ",\n  \"total_seconds\": " << json_number(result.total_seconds) << "\n}\n";
  result.report_json = j.str();
  save_checkpoint(result.output, *model, spec, tokenizer_file, result.labels, result.report_json);

  spdlog::info("teacher '{}' done: {} labels, {} train examples, {} steps in {:.1f} s{}", name,
               result.labels.size(), result.train.kept, result.steps, result.train_seconds,
               result.stopped_early ? " (early stop)" : "");
  if (result.dev_metrics)
    spdlog::info("  dev  accuracy {:.4f} macro-F1 {:.4f} ({} examples)", result.dev_metrics->accuracy,
                 result.dev_metrics->macro_f1, result.dev_metrics->examples);
  if (result.test_metrics)
    spdlog::info("  test accuracy {:.4f} macro-F1 {:.4f} ({} examples)", result.test_metrics->accuracy,
                 result.test_metrics->macro_f1, result.test_metrics->examples);
  spdlog::info("  checkpoint {}", result.output.string());
  return result;
}

}  // namespace muki::core
