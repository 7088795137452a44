#include "training_setup.h"

#include <fstream>
#include <tuple>

#include <unistd.h>

#include <torch/torch.h>

#include <spdlog/spdlog.h>

#ifdef MUKI_TORCH_SENTENCEPIECE
#include "muki/text/sentencepiece_tokenizer.h"
#endif
#include "muki/model/device.h"
#include "muki/text/wordpiece_tokenizer.h"

namespace muki::core {
namespace fs = std::filesystem;

namespace {
const toml::table kEmpty;
}  // namespace

TrainingTokenizer make_training_tokenizer(const toml::table* table, const Config& config,
                                          const std::string& key,
                                          const std::vector<std::string>& texts,
                                          const fs::path& folder) {
  const toml::table& tok = table != nullptr ? *table : kEmpty;
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) throw CheckpointError(folder.string() + ": cannot create the folder: " + ec.message());
  TrainingTokenizer out;
  out.spec.type = tok["type"].value_or(std::string("wordpiece"));
  const int64_t vocab_size = tok["vocab_size"].value_or(int64_t{8000});
  if (out.spec.type == "wordpiece") {
    out.spec.file = "vocab.txt";
    out.spec.lowercase = tok["lowercase"].value_or(true);
    WordPieceOptions options;
    options.lower_case = out.spec.lowercase;
    if (auto vocab = tok["vocab"].value<std::string>()) {
      out.file = (config.base_dir() / *vocab).lexically_normal();
    } else {
      // A model knows only its own data: the vocabulary comes from its training texts.
      out.file = folder / out.spec.file;
      WordPieceTokenizer::write_vocabulary(
          WordPieceTokenizer::build_vocabulary(texts, vocab_size, options), out.file);
    }
    out.tokenizer = std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_file(out.file, options));
    spdlog::info("{}: WordPiece, {} tokens ({})", key, out.tokenizer->vocab_size(),
                 tok["vocab"] ? out.file.string() : std::string("built from the training texts"));
    return out;
  }
#ifdef MUKI_TORCH_SENTENCEPIECE
  out.spec.file = "tokenizer.model";
  if (auto model = tok["model"].value<std::string>()) {
    out.file = (config.base_dir() / *model).lexically_normal();
    out.tokenizer = std::make_unique<SentencePieceTokenizer>(SentencePieceTokenizer::load(out.file));
  } else {
    const fs::path corpus = folder / ".tokenizer-corpus.txt";
    {
      std::ofstream corpus_out(corpus, std::ios::binary | std::ios::trunc);
      for (const std::string& t : texts) corpus_out << t << "\n";
      corpus_out.close();  // the last buffered lines are written here
      if (!corpus_out) throw CheckpointError(corpus.string() + ": cannot write");
    }
    SentencePieceTrainOptions options;
    options.corpus = corpus;
    options.vocab_size = static_cast<int>(vocab_size);
    options.model_type = tok["model_type"].value_or(std::string("unigram"));
    options.character_coverage = 1.0;
    // A small corpus cannot always fill vocab_size pieces: take what it supports.
    options.hard_vocab_limit = false;
    SentencePieceTokenizer trained = SentencePieceTokenizer::train(options);
    fs::remove(corpus, ec);
    out.file = folder / out.spec.file;
    trained.save(out.file);
    out.tokenizer = std::make_unique<SentencePieceTokenizer>(std::move(trained));
  }
  spdlog::info("{}: SentencePiece, {} pieces", key, out.tokenizer->vocab_size());
  return out;
#else
  const toml::source_region where = tok["type"].node()->source();
  throw ConfigError({ConfigProblem{
      config.path().string(), where.begin.line, where.begin.column,
      key + ".type \"sentencepiece\" is off in this build: Debian's libsentencepiece bundles a "
            "protobuf that clashes with the system LibTorch's (see core/CMakeLists.txt, "
            "MUKI_TORCH_SENTENCEPIECE); use \"wordpiece\" (a vocabulary is built from the "
            "training texts when no vocab file is given)"}});
#endif
}

ModelConfig model_config_from(const toml::table* table, int64_t vocab_size, int64_t num_labels) {
  const toml::table& m = table != nullptr ? *table : kEmpty;
  ModelConfig mc;
  mc.type = m["type"].value_or(mc.type);
  mc.vocab_size = vocab_size;
  mc.num_labels = num_labels;
  mc.hidden = m["hidden"].value_or(mc.hidden);
  mc.layers = m["layers"].value_or(mc.layers);
  mc.heads = m["heads"].value_or(mc.heads);
  mc.ffn = m["ffn"].value_or(mc.ffn);
  mc.max_length = m["max_length"].value_or(mc.max_length);
  mc.dropout = m["dropout"].value_or(mc.dropout);
  mc.pooling = m["pooling"].value_or(mc.pooling);
  mc.filters = m["filters"].value_or(mc.filters);
  return mc;
}

TrainingModel make_training_model(const toml::table* tokenizer, const toml::table* model, const Config& config,
                                  const std::string& prefix, const std::vector<std::string>& texts,
                                  const fs::path& folder, int64_t num_labels, uint64_t seed) {
  TrainingModel out;
  const auto init = model != nullptr ? (*model)["init"].value<std::string>() : std::nullopt;
  if (!init) {
    out.tokenizer = make_training_tokenizer(tokenizer, config, prefix + "tokenizer", texts, folder);
    out.config = model_config_from(model, out.tokenizer.tokenizer->vocab_size(), num_labels);
    torch::manual_seed(seed);  // the initial weights
    out.model = make_classifier(out.config);
    return out;
  }
  out.init = (config.base_dir() / *init).lexically_normal();
  std::tie(out.config, out.tokenizer.spec) = read_encoder_config(out.init);
  out.tokenizer.file = out.init / out.tokenizer.spec.file;
  out.tokenizer.tokenizer = load_tokenizer(out.tokenizer.spec, out.init);
  out.config.num_labels = num_labels;
  out.config.dropout = (*model)["dropout"].value_or(out.config.dropout);
  out.config.pooling = (*model)["pooling"].value_or(out.config.pooling);
  torch::manual_seed(seed);  // the classification layer
  out.model = make_classifier(out.config);
  load_encoder_weights(*out.model, out.init);
  spdlog::info("{}model: fine-tuned from the pre-trained encoder {} ({} layers, hidden {}, {} tokens)", prefix,
               out.init.string(), out.config.layers, out.config.hidden, out.config.vocab_size);
  return out;
}

torch::Device device_from(const Config& config, const std::string& key) {
  try {
    return resolve_device(config.root().at_path(key).value_or(std::string("auto")));
  } catch (const std::invalid_argument& e) {
    throw ConfigError({ConfigProblem{config.path().string(), 0, 0, key + ": " + e.what()}});
  }
}

TrainerOptions trainer_options_from(const toml::table* table) {
  const toml::table& t = table != nullptr ? *table : kEmpty;
  TrainerOptions o;
  o.epochs = t["epochs"].value_or(o.epochs);
  o.batch_size = t["batch_size"].value_or(o.batch_size);
  o.lr = t["lr"].value_or(o.lr);
  o.weight_decay = t["weight_decay"].value_or(o.weight_decay);
  o.warmup = t["warmup"].value_or(o.warmup);
  o.eval_every = t["eval_every"].value_or(o.eval_every);
  o.patience = t["patience"].value_or(o.patience);
  o.grad_clip = t["grad_clip"].value_or(o.grad_clip);
  o.eval_batch_size = t["eval_batch_size"].value_or(o.eval_batch_size);
  o.bucket_batches = t["bucket_batches"].value_or(o.bucket_batches);
  o.bf16 = t["precision"].value_or(std::string("fp32")) == "bf16";  // the schema allows fp32 | bf16
  return o;
}

TrainingFolder::TrainingFolder(const ProcessGroup* group, fs::path folder, const std::string& name)
    : path_(std::move(folder)), temporary_(!is_rank0(group)) {
  if (temporary_)
    path_ = fs::temp_directory_path() /
            ("muki-rank" + std::to_string(group->rank()) + "-" + std::to_string(::getpid()) + "-" + name);
}

TrainingFolder::~TrainingFolder() {
  std::error_code ignored;
  if (temporary_) fs::remove_all(path_, ignored);
}

}  // namespace muki::core
