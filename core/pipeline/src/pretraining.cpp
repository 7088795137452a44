#include "muki/pipeline/pretraining.h"

#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <cmath>
#include <limits>
#include <optional>

#include "muki/data/dataset.h"
#include "muki/experiment/experiment.h"
#include "muki/io/files.h"
#include "muki/io/fingerprint.h"
#include "muki/io/json.h"
#include "muki/model/checkpoint.h"
#include "muki/model/classifier_trainer.h"
#include "muki/model/device.h"
#include "muki/model/masked_lm.h"
#include "muki/model/text_encoding.h"
#include "muki/text/wordpiece_tokenizer.h"
#include "training_setup.h"

namespace muki::core {
namespace fs = std::filesystem;

namespace {

constexpr const char* kMaskToken = "[MASK]";

// A seed for one use of (seed, step): SplitMix64's finaliser, so nearby steps get unrelated streams.
uint64_t mix(uint64_t seed, uint64_t stream, uint64_t index) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (stream * 0x100000001B3ULL + index + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
enum Stream : uint64_t { kOrder = 1, kMasks = 2, kDropout = 3, kHeldoutMasks = 4 };

at::Generator generator(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

struct Corpus {
  std::vector<std::string> train, heldout;
};

Corpus read_corpus(const Config& config) {
  const toml::table& data = *config.root()["data"].as_table();
  Corpus c;
  for (Example& e : read_all(dataset_specs(*data["train"].as_table(), config)).examples)
    c.train.push_back(std::move(e.text));
  if (const toml::table* heldout = data["heldout"].as_table()) {
    for (Example& e : read_all(dataset_specs(*heldout, config)).examples) c.heldout.push_back(std::move(e.text));
    return c;
  }
  const double fraction = data["heldout_fraction"].value_or(0.01);
  if (fraction <= 0) return c;
  const auto every = std::max<size_t>(2, static_cast<size_t>(std::llround(1.0 / fraction)));
  std::vector<std::string> kept;
  for (size_t i = 0; i < c.train.size(); ++i)
    (i % every == every - 1 ? c.heldout : kept).push_back(std::move(c.train[i]));
  c.train = std::move(kept);
  return c;
}

// The WordPiece vocabulary: the given file (which must hold [MASK]) or one built over the
// training texts, one entry short, with [MASK] put right after the other special tokens.
TrainingTokenizer pretraining_tokenizer(const Config& config, const std::vector<std::string>& texts,
                                        const fs::path& folder) {
  const toml::table* table = config.root()["tokenizer"].as_table();
  if (table != nullptr && (*table)["vocab"]) {
    TrainingTokenizer tok = make_training_tokenizer(table, config, "tokenizer", texts, folder);
    if (!tok.tokenizer->token_to_id(kMaskToken))
      throw CheckpointError(tok.file.string() + ": the vocabulary has no " + kMaskToken +
                            " token, which masked-language-model pre-training needs");
    return tok;
  }
  TrainingTokenizer tok;
  tok.spec = {"wordpiece", "vocab.txt", table != nullptr ? (*table)["lowercase"].value_or(true) : true};
  WordPieceOptions options;
  options.lower_case = tok.spec.lowercase;
  const int64_t size = table != nullptr ? (*table)["vocab_size"].value_or(int64_t{8000}) : 8000;
  std::vector<std::string> vocab = WordPieceTokenizer::build_vocabulary(texts, size - 1, options);
  vocab.insert(std::find_if(vocab.begin(), vocab.end(),
                            [](const std::string& t) { return !(t.size() > 2 && t.front() == '[' && t.back() == ']'); }),
               kMaskToken);
  std::error_code ec;
  fs::create_directories(folder, ec);
  tok.file = folder / tok.spec.file;
  WordPieceTokenizer::write_vocabulary(vocab, tok.file);
  tok.tokenizer = std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_file(tok.file, options));
  spdlog::info("tokenizer: WordPiece, {} tokens built from the training texts ([MASK] included)", vocab.size());
  return tok;
}

// Parameters by module path, encoder (without the placeholder classification layer) then head.
std::vector<std::pair<std::string, torch::Tensor>> trained_parameters(TransformerClassifierImpl& model,
                                                                      MaskedLmHeadImpl& head) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : model.named_parameters())
    if (p.key().rfind("classifier.", 0) != 0) out.emplace_back("encoder." + p.key(), p.value());
  for (const auto& p : head.named_parameters()) out.emplace_back("head." + p.key(), p.value());
  return out;
}

struct State {
  int64_t step = 0;
  std::vector<PretrainEval> history;
};

fs::path state_file(const fs::path& output) { return output / "state" / "pretrain_state.pt"; }

void save_state(const fs::path& output, const std::string& key, const State& st,
                const std::vector<std::pair<std::string, torch::Tensor>>& params, torch::optim::Optimizer& optimizer) {
  torch::serialize::OutputArchive archive;
  archive.write("key", c10::IValue(key));
  archive.write("step", torch::tensor(st.step, torch::kLong));
  std::vector<double> flat;
  for (const PretrainEval& e : st.history) flat.insert(flat.end(), {double(e.step), e.train_loss, e.heldout_loss});
  archive.write("history", torch::tensor(flat, torch::kDouble));
  for (const auto& [name, t] : params) archive.write(name, t.detach().to(torch::kCPU).contiguous());
  torch::serialize::OutputArchive optimizer_archive;
  optimizer.save(optimizer_archive);
  archive.write("optimizer", optimizer_archive);
  write_state_archive(archive, state_file(output));
}

// False (nothing changed) without a state, or with one written for another key or damaged.
bool load_state(const fs::path& output, const std::string& key, State& st,
                const std::vector<std::pair<std::string, torch::Tensor>>& params, torch::optim::Optimizer& optimizer,
                const torch::Device& device) {
  const fs::path file = state_file(output);
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return false;
  if (!state_file_intact(file)) {
    spdlog::warn("{}: does not match its checksum (damaged after muki wrote it); "
                 "starting afresh", file.string());
    return false;
  }
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(file.string(), device);
    c10::IValue stored_key;
    archive.read("key", stored_key);
    if (!stored_key.isString() || stored_key.toStringRef() != key) {
      spdlog::warn("{}: written for another config or corpus; starting afresh (it will be replaced)", file.string());
      return false;
    }
    torch::Tensor step, history;
    archive.read("step", step);
    archive.read("history", history);
    st.step = step.item<int64_t>();
    const torch::Tensor h = history.to(torch::kCPU, torch::kDouble).contiguous();
    for (int64_t i = 0; i + 2 < h.numel(); i += 3)
      st.history.push_back({static_cast<int64_t>(h[i].item<double>()), h[i + 1].item<double>(), h[i + 2].item<double>()});
    torch::NoGradGuard no_grad;
    for (const auto& [name, target] : params) {
      torch::Tensor t;
      archive.read(name, t);
      if (!t.sizes().equals(target.sizes())) throw std::runtime_error("tensor " + name + " does not fit the model");
      target.copy_(t);
    }
    torch::serialize::InputArchive optimizer_archive;
    archive.read("optimizer", optimizer_archive);
    optimizer.load(optimizer_archive);
  } catch (const c10::Error& e) {
    throw std::runtime_error(file.string() + ": not a readable pre-training state (delete the folder " +
                             file.parent_path().string() + " to start afresh): " + e.what_without_backtrace());
  }
  return true;
}

// The mean masked-LM loss over the held-out texts, with the same masks at every evaluation.
double heldout_loss(TransformerClassifierImpl& model, MaskedLmHeadImpl& head, const EncodedTexts& heldout,
                    MaskingOptions masking, int64_t batch_size, uint64_t seed, const torch::Device& device) {
  const int64_t n = heldout.input_ids.size(0);
  if (n == 0) return std::numeric_limits<double>::quiet_NaN();
  model.eval();
  head.eval();
  torch::NoGradGuard no_grad;
  double total = 0;
  int64_t predicted = 0;
  for (int64_t begin = 0, b = 0; begin < n; begin += batch_size, ++b) {
    const int64_t len = std::min(batch_size, n - begin);
    const EncodedTexts batch =
        trim_padding(heldout.input_ids.narrow(0, begin, len), heldout.attention_mask.narrow(0, begin, len));
    MaskedBatch masked = mask_tokens(batch.input_ids, batch.attention_mask, masking,
                                     generator(mix(seed, kHeldoutMasks, static_cast<uint64_t>(b))));
    masked.input_ids = masked.input_ids.to(device);
    masked.labels = masked.labels.to(device);
    const MaskedLmLoss loss = masked_lm_loss(model, head, masked, batch.attention_mask.to(device));
    total += loss.loss.item<double>() * static_cast<double>(loss.predicted);
    predicted += loss.predicted;
  }
  model.train();
  head.train();
  return predicted > 0 ? total / static_cast<double>(predicted) : std::numeric_limits<double>::quiet_NaN();
}

Json history_json(const std::vector<PretrainEval>& history) {
  Json out = Json::array();
  for (const PretrainEval& e : history)
    out.push_back({{"step", e.step}, {"train_loss", e.train_loss},
                   {"heldout_loss", std::isnan(e.heldout_loss) ? Json() : Json(e.heldout_loss)}});
  return out;
}

}  // namespace

PretrainResult pretrain(const Config& config) {
  if (auto problems = validate_pretraining(config); !problems.empty()) throw ConfigError(std::move(problems));
  const toml::table& root = config.root();
  PretrainResult result;
  result.output = fs::absolute(*root.at_path("pretrain.output").value<std::string>()).lexically_normal();
  const uint64_t seed = static_cast<uint64_t>(root.at_path("pretrain.seed").value_or(int64_t{1}));
  const int threads = configure_threads(root.at_path("pretrain.threads").value_or(int64_t{0}));
  const torch::Device device = device_from(config, "pretrain.device");
  // A finished encoder is recognised by its report; a rerun writes it again (from the final state).
  std::error_code gone;
  fs::remove(result.output / "pretrain_report.json", gone);

  // --- corpus, vocabulary, encoding ----------------------------------------------------------
  const auto started = std::chrono::steady_clock::now();
  const Corpus corpus = read_corpus(config);
  if (corpus.train.empty()) throw std::invalid_argument("data.train: the corpus has no text to pre-train on");
  result.train_texts = static_cast<int64_t>(corpus.train.size());
  result.heldout_texts = static_cast<int64_t>(corpus.heldout.size());
  spdlog::info("pretrain: {} training texts, {} held out; device {}, {} threads, output {}", result.train_texts,
               result.heldout_texts, device.str(), threads, result.output.string());
  TrainingTokenizer tok = pretraining_tokenizer(config, corpus.train, result.output);
  result.vocab_size = tok.tokenizer->vocab_size();
  ModelConfig mc = model_config_from(root["model"].as_table(), result.vocab_size, 1);
  const EncodedTexts train = encode_texts(*tok.tokenizer, corpus.train, mc.max_length);
  const EncodedTexts heldout = encode_texts(*tok.tokenizer, corpus.heldout, mc.max_length);
  MaskingOptions masking;
  masking.probability = root.at_path("pretrain.mask_probability").value_or(0.15);
  masking.vocab_size = result.vocab_size;
  masking.mask_id = *tok.tokenizer->token_to_id(kMaskToken);
  masking.special_ids = {tok.tokenizer->pad_id(), masking.mask_id};
  for (const auto& id : {tok.tokenizer->cls_id(), tok.tokenizer->sep_id()})
    if (id) masking.special_ids.push_back(*id);
  spdlog::info("pretrain: vocabulary of {} tokens, corpus encoded in {:.1f} s", result.vocab_size,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());

  // --- model, optimiser, state ---------------------------------------------------------------
  const toml::table* train_table = root["train"].as_table();
  const int64_t steps = *(*train_table)["steps"].value<int64_t>();
  const int64_t batch_size = (*train_table)["batch_size"].value_or(int64_t{64});
  const double lr = (*train_table)["lr"].value_or(5e-4);
  const double weight_decay = (*train_table)["weight_decay"].value_or(0.01);
  const int64_t warmup_steps = std::llround((*train_table)["warmup"].value_or(0.06) * static_cast<double>(steps));
  const double grad_clip = (*train_table)["grad_clip"].value_or(1.0);
  const int64_t eval_every = (*train_table)["eval_every"].value_or(int64_t{500});
  const int64_t eval_batch_size = (*train_table)["eval_batch_size"].value_or(int64_t{256});

  torch::manual_seed(seed);  // the initial weights
  auto model = std::make_shared<TransformerClassifierImpl>(mc);
  MaskedLmHead head(mc.hidden, result.vocab_size);
  model->to(device);
  head->to(device);
  const auto params = trained_parameters(*model, *head);
  std::vector<torch::Tensor> decay, no_decay, all;
  for (const auto& [name, p] : params) {
    const bool plain = name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0;
    (plain || name.find("norm") != std::string::npos ? no_decay : decay).push_back(p);
    all.push_back(p);
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(lr).weight_decay(weight_decay)));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(lr).weight_decay(0.0)));
  torch::optim::AdamW optimizer(std::move(groups), torch::optim::AdamWOptions(lr));

  // What the state must have been written for: everything that decides the weights.
  Fingerprint key;
  key.add(toml_value_text(root["data"].ref<toml::table>()))
      .add(root["tokenizer"] ? toml_value_text(*root["tokenizer"].node()) : std::string())
      .add(root["model"] ? toml_value_text(*root["model"].node()) : std::string())
      .add(toml_value_text(*root["train"].node()))
      .add(seed)
      .add(static_cast<uint64_t>(std::llround(masking.probability * 1e9)))
      .add(device.str());
  for (const std::string& t : corpus.train) key.add(t);
  for (const std::string& t : corpus.heldout) key.add(t);
  State st;
  if (load_state(result.output, key.hex(), st, params, optimizer, device)) {
    result.resumed_from_step = st.step;
    spdlog::info("pretrain: resuming at step {} of {} ({})", st.step, steps, state_file(result.output).string());
  }

  // --- training ------------------------------------------------------------------------------
  const int64_t n = train.input_ids.size(0);
  const int64_t per_epoch = std::max<int64_t>(1, n / batch_size);
  int64_t order_epoch = -1;
  torch::Tensor order;
  model->train();
  head->train();
  const auto loop_start = std::chrono::steady_clock::now();
  auto last_log = loop_start;
  double loss_sum = 0;
  int64_t loss_steps = 0;
  while (st.step < steps) {
    const int64_t step = st.step + 1;
    const int64_t epoch = (step - 1) / per_epoch;
    if (epoch != order_epoch) {
      order = torch::randperm(n, generator(mix(seed, kOrder, static_cast<uint64_t>(epoch))), torch::kLong);
      order_epoch = epoch;
    }
    const torch::Tensor rows = order.narrow(0, ((step - 1) % per_epoch) * batch_size, std::min(batch_size, n));
    const EncodedTexts batch = trim_padding(train.input_ids.index_select(0, rows), train.attention_mask.index_select(0, rows));
    MaskedBatch masked = mask_tokens(batch.input_ids, batch.attention_mask, masking,
                                     generator(mix(seed, kMasks, static_cast<uint64_t>(step))));
    masked.input_ids = masked.input_ids.to(device);
    masked.labels = masked.labels.to(device);
    torch::manual_seed(mix(seed, kDropout, static_cast<uint64_t>(step)));  // this step's dropout
    const double step_lr = scheduled_lr(lr, step, warmup_steps, steps);
    for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(step_lr);
    optimizer.zero_grad();
    const MaskedLmLoss loss = masked_lm_loss(*model, *head, masked, batch.attention_mask.to(device));
    loss.loss.backward();
    if (grad_clip > 0) torch::nn::utils::clip_grad_norm_(all, grad_clip);
    optimizer.step();
    const double value = loss.loss.item<double>();
    if (!std::isfinite(value))
      throw std::runtime_error("pretrain: the loss became " + std::to_string(value) + " at step " + std::to_string(step) +
                               " (lower train.lr or set train.grad_clip)");
    loss_sum += value;
    ++loss_steps;
    st.step = step;
    const auto now = std::chrono::steady_clock::now();
    if (std::chrono::duration<double>(now - last_log).count() >= 10.0 || step == steps) {
      const double elapsed = std::chrono::duration<double>(now - loop_start).count();
      const double per_step = elapsed / static_cast<double>(step - result.resumed_from_step);
      spdlog::info("pretrain step {}/{} (epoch {:.2f}) loss {:.4f} lr {:.2e} {:.0f} texts/s ETA {:.0f} s", step, steps,
                   static_cast<double>(step) / static_cast<double>(per_epoch), loss_sum / static_cast<double>(loss_steps),
                   step_lr, static_cast<double>(batch_size) / per_step, per_step * static_cast<double>(steps - step));
      last_log = now;
    }
    if (step % eval_every == 0 || step == steps) {
      const double held = heldout_loss(*model, *head, heldout, masking, eval_batch_size, seed, device);
      st.history.push_back({step, loss_sum / static_cast<double>(loss_steps), held});
      loss_sum = 0;
      loss_steps = 0;
      spdlog::info("pretrain eval step {}: train loss {:.4f}, held-out loss {:.4f} (perplexity {:.1f})", step,
                   st.history.back().train_loss, held, std::exp(held));
      save_state(result.output, key.hex(), st, params, optimizer);
    }
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - loop_start).count();
  result.steps = st.step;
  result.history = st.history;

  // --- encoder folder ------------------------------------------------------------------------
  model->eval();
  save_encoder(result.output, *model, *head, tok.spec, tok.file);
  for (const auto& [name, p] : params)
    if (name.rfind("encoder.", 0) == 0) result.parameters += p.numel();
  const double final_heldout = st.history.empty() ? std::numeric_limits<double>::quiet_NaN() : st.history.back().heldout_loss;
  write_file_atomically(
      result.output / "pretrain_report.json",
      json_lines({{"config", fs::absolute(config.path()).lexically_normal().string()},
                  {"corpus", {{"train_texts", result.train_texts}, {"heldout_texts", result.heldout_texts},
                              {"fingerprint", key.hex()}}},
                  {"tokenizer", {{"type", tok.spec.type}, {"vocab_size", result.vocab_size}, {"lowercase", tok.spec.lowercase}}},
                  {"model", {{"type", mc.type}, {"hidden", mc.hidden}, {"layers", mc.layers}, {"heads", mc.heads},
                             {"ffn", mc.ffn}, {"max_length", mc.max_length}, {"dropout", mc.dropout},
                             {"pooling", mc.pooling}, {"parameters", result.parameters}}},
                  {"train", {{"steps", steps}, {"batch_size", batch_size}, {"lr", lr}, {"weight_decay", weight_decay},
                             {"warmup_steps", warmup_steps}, {"grad_clip", grad_clip},
                             {"mask_probability", masking.probability}, {"seed", seed}}},
                  {"device", device.str()},
                  {"threads", threads},
                  {"seconds", result.seconds},
                  {"resumed_from_step", result.resumed_from_step},
                  {"heldout_loss", std::isnan(final_heldout) ? Json() : Json(final_heldout)},
                  {"history", history_json(st.history)}}));
  spdlog::info("pretrain done: {} steps, held-out loss {:.4f}; encoder {}", st.step, final_heldout,
               result.output.string());
  return result;
}

}  // namespace muki::core
