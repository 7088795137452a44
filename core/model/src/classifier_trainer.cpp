#include "muki/model/classifier_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <stdexcept>

#include <spdlog/spdlog.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "muki/io/files.h"
#include "muki/io/fingerprint.h"
#include "muki/model/checkpoint.h"
#include "muki/model/device.h"
#include "muki/model/fused_adamw.h"
#include "muki/model/keyed_dropout.h"
#include "muki/model/process_group.h"
#include "muki/model/text_encoding.h"

namespace muki::core {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string format_duration(double s) {
  const int64_t total = static_cast<int64_t>(std::llround(std::max(0.0, s)));
  char buf[32];
  if (total >= 3600)
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm", static_cast<long long>(total / 3600),
                  static_cast<long long>(total % 3600 / 60));
  else
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", static_cast<long long>(total / 60),
                  static_cast<long long>(total % 60));
  return buf;
}

void check_options(const TrainerOptions& o) {
  auto fail = [](const std::string& m) { throw std::invalid_argument("trainer: " + m); };
  if (o.epochs < 1) fail("epochs must be >= 1");
  if (o.batch_size < 1) fail("batch_size must be >= 1");
  if (!(o.lr > 0)) fail("lr must be > 0");
  if (o.weight_decay < 0) fail("weight_decay must be >= 0");
  if (!(o.warmup >= 0 && o.warmup <= 1)) fail("warmup must lie in [0, 1]");
  if (o.eval_every < 0) fail("eval_every must be >= 0");
  if (o.patience < 0) fail("patience must be >= 0");
  if (o.grad_clip < 0) fail("grad_clip must be >= 0");
  if (o.eval_batch_size < 1) fail("eval_batch_size must be >= 1");
  if (o.bucket_batches < 0) fail("bucket_batches must be >= 0");
}


std::vector<std::pair<std::string, torch::Tensor>> state_tensors(torch::nn::Module& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : model.named_parameters(true)) out.emplace_back(p.key(), p.value());
  for (const auto& b : model.named_buffers(true)) out.emplace_back(b.key(), b.value());
  return out;
}

// The resumable part of a training run (see the header). Scalars travel as small tensors so the
// archive needs nothing beyond what LibTorch 1.13 and 2.x both read.
struct TrainingState {
  int64_t step = 0;
  int64_t best_step = 0;
  int64_t evals_without_improvement = 0;
  bool finished = false;
  bool stopped_early = false;
  double best_accuracy = -1;
  ClassificationMetrics best_dev;
  std::vector<EvalRecord> history;
};

constexpr int64_t kHistoryColumns = 6;  // step, epoch, train_loss, accuracy, macro_f1, examples

torch::Tensor history_tensor(const std::vector<EvalRecord>& history) {
  std::vector<double> flat;
  for (const EvalRecord& r : history)
    flat.insert(flat.end(), {static_cast<double>(r.step), r.epoch, r.train_loss, r.dev.accuracy,
                             r.dev.macro_f1, static_cast<double>(r.dev.examples)});
  return torch::tensor(flat, torch::kDouble).reshape({static_cast<int64_t>(history.size()), kHistoryColumns});
}

std::vector<EvalRecord> history_from(const torch::Tensor& t) {
  std::vector<EvalRecord> out;
  const torch::Tensor h = t.to(torch::kCPU, torch::kDouble).contiguous();  // loaded on the device
  for (int64_t i = 0; i < h.size(0); ++i) {
    const double* row = h[i].data_ptr<double>();
    EvalRecord r;
    r.step = static_cast<int64_t>(row[0]);
    r.epoch = row[1];
    r.train_loss = row[2];
    r.dev.accuracy = row[3];
    r.dev.macro_f1 = row[4];
    r.dev.examples = static_cast<int64_t>(row[5]);
    out.push_back(r);
  }
  return out;
}

void set_generator_state(at::Generator generator, const torch::Tensor& state) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state.to(torch::kCPU));
}

torch::Tensor generator_state(at::Generator generator) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void write_tensors(torch::serialize::OutputArchive& archive, const std::string& prefix,
                   const std::vector<torch::Tensor>& tensors) {
  for (size_t i = 0; i < tensors.size(); ++i)
    archive.write(prefix + std::to_string(i), tensors[i].detach().to(torch::kCPU).contiguous());
}

// Everything a resumed run must get back: the model's tensors, then the feature loss's modules'.
std::vector<torch::Tensor> trainable_state(torch::nn::Module& model, const FeatureLoss* feature_loss) {
  std::vector<torch::Tensor> out;
  for (auto& [name, t] : state_tensors(model)) out.push_back(t);
  if (feature_loss != nullptr)
    for (auto& [name, t] : state_tensors(*feature_loss->modules)) out.push_back(t);
  return out;
}

void save_state(const std::filesystem::path& file, const std::string& key, const TrainingState& st,
                const std::vector<torch::Tensor>& current, const std::vector<torch::Tensor>& best,
                torch::optim::Optimizer& optimizer, const torch::Device& device) {
  torch::serialize::OutputArchive archive;
  archive.write("key", c10::IValue(key));
  archive.write("counters", torch::tensor({st.step, st.best_step, st.evals_without_improvement,
                                           int64_t{st.finished}, int64_t{st.stopped_early},
                                           st.best_dev.examples}, torch::kLong));
  archive.write("best_metrics", torch::tensor({st.best_accuracy, st.best_dev.accuracy,
                                               st.best_dev.macro_f1}, torch::kDouble));
  archive.write("history", history_tensor(st.history));
  write_tensors(archive, "model.", current);
  write_tensors(archive, "best.", best);
  archive.write("best_count", torch::tensor(static_cast<int64_t>(best.size())));
  torch::serialize::OutputArchive optimizer_archive;
  optimizer.save(optimizer_archive);
  archive.write("optimizer", optimizer_archive);
  archive.write("rng.cpu", generator_state(at::detail::getDefaultCPUGenerator()));
  if (!device.is_cpu())
    archive.write("rng.device", generator_state(at::globalContext().defaultGenerator(device)));
  write_state_archive(archive, file);
}

// Opens the state file into `archive` (on `device`, so the AdamW moments land next to the
// parameters); false when there is none or it was written under another key. Throws
// std::runtime_error naming the file when it is damaged or unreadable.
bool open_state(const std::filesystem::path& file, const std::string& key, torch::serialize::InputArchive& archive,
                const torch::Device& device) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) return false;
  if (!state_file_intact(file))
    throw std::runtime_error(file.string() + ": checksum mismatch: the training state changed after muki "
                             "wrote it (damaged); delete it (and " + file.filename().string() +
                             ".checksum) to start afresh");
  c10::IValue stored_key;
  try {
    archive.load_from(file.string(), device);
    archive.read("key", stored_key);
  } catch (const c10::Error& e) {
    throw std::runtime_error(file.string() + ": not a readable training state (delete it to start "
                             "afresh): " + e.what_without_backtrace());
  }
  if (!stored_key.isString() || stored_key.toStringRef() != key) {
    spdlog::warn("{}: written for another training setup; starting afresh (it will be replaced)", file.string());
    return false;
  }
  return true;
}

// Loads the state into `model`, `best` and `optimizer`; false (nothing changed) when there is no
// file or it was written under another key. In a job, rank 0 alone opens the file and sends its
// verdict: "0" (nothing to resume), "1" and the file's bytes, or "E" and the error, so that every
// rank resumes from the same state, without a shared filesystem, or fails with rank 0's message.
bool load_state(const std::filesystem::path& file, const std::string& key, TrainingState& st,
                const std::vector<torch::Tensor>& current, std::vector<torch::Tensor>& best,
                torch::optim::Optimizer& optimizer, const torch::Device& device, ProcessGroup* group) {
  const bool leader = is_rank0(group);
  torch::serialize::InputArchive archive;
  std::string verdict = "0";
  if (leader) {
    try {
      if (open_state(file, key, archive, device)) verdict = "1";
      if (group != nullptr && verdict == "1") {
        std::ifstream in(file, std::ios::binary);
        verdict += std::string(std::istreambuf_iterator<char>(in), {});
        if (!in) throw std::runtime_error(file.string() + ": cannot be read");
      }
    } catch (const std::exception& e) {
      if (group == nullptr) throw;
      verdict = "E" + std::string(e.what());
    }
  }
  if (group != nullptr) {
    verdict = group->broadcast(verdict, 0);
    if (verdict[0] == 'E') throw std::runtime_error((leader ? "" : "rank 0: ") + verdict.substr(1));
  }
  if (verdict[0] != '1') return false;
  try {
    if (!leader) archive.load_from(verdict.data() + 1, verdict.size() - 1, device);
    torch::Tensor counters, metrics, history, count;
    archive.read("counters", counters);
    archive.read("best_metrics", metrics);
    archive.read("history", history);
    archive.read("best_count", count);
    st.step = counters[0].item<int64_t>();
    st.best_step = counters[1].item<int64_t>();
    st.evals_without_improvement = counters[2].item<int64_t>();
    st.finished = counters[3].item<int64_t>() != 0;
    st.stopped_early = counters[4].item<int64_t>() != 0;
    st.best_dev.examples = counters[5].item<int64_t>();
    st.best_accuracy = metrics[0].item<double>();
    st.best_dev.accuracy = metrics[1].item<double>();
    st.best_dev.macro_f1 = metrics[2].item<double>();
    st.history = history_from(history);
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < current.size(); ++i) {
      torch::Tensor t;
      archive.read("model." + std::to_string(i), t);
      // A plain copy_ would broadcast a tensor of another shape into place.
      if (!t.sizes().equals(current[i].sizes()))
        throw c10::Error({__func__, __FILE__, static_cast<uint32_t>(__LINE__)},
                         "tensor " + std::to_string(i) + " does not fit the model");
      current[i].copy_(t);
    }
    best.clear();
    for (int64_t i = 0; i < count.item<int64_t>(); ++i) {
      torch::Tensor t;
      archive.read("best." + std::to_string(i), t);
      best.push_back(t.to(device));
    }
    torch::serialize::InputArchive optimizer_archive;
    archive.read("optimizer", optimizer_archive);
    optimizer.load(optimizer_archive);
    torch::Tensor rng;
    archive.read("rng.cpu", rng);
    set_generator_state(at::detail::getDefaultCPUGenerator(), rng);
    if (!device.is_cpu() && archive.try_read("rng.device", rng))
      set_generator_state(at::globalContext().defaultGenerator(device), rng);
  } catch (const c10::Error& e) {
    throw std::runtime_error(file.string() + ": not a readable training state (delete it to start "
                             "afresh): " + e.what_without_backtrace());
  }
  return true;
}

// Dropout masks during training are keyed (train_step); torch's default generators, seeded per
// run, serve any other randomness (a plain torch dropout in a feature objective's modules).
void seed_generators(uint64_t seed, const torch::Device& device) {
  torch::manual_seed(seed);
  if (!device.is_cpu()) {
    at::Generator generator = at::globalContext().defaultGenerator(device);
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_current_seed(seed);
  }
}

// AdamW with two groups: weight decay on weight matrices and embeddings only; a third for the
// feature loss's modules. Returns the optimiser and every group's peak learning rate.
std::pair<FusedAdamW, std::vector<double>> make_optimizer(ClassifierImpl& model,
                                                                   const TrainerOptions& o,
                                                                   const FeatureLoss* feature_loss) {
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& p : model.named_parameters(true)) {
    const std::string& name = p.key();
    const bool is_bias = name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0;
    (is_bias || name.find("norm") != std::string::npos ? no_decay : decay).push_back(p.value());
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                 torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay)));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(
                                    torch::optim::AdamWOptions(o.lr).weight_decay(0.0)));
  std::vector<double> peak = {o.lr, o.lr};
  if (feature_loss != nullptr) {
    groups.emplace_back(feature_loss->modules->parameters(),
                        std::make_unique<torch::optim::AdamWOptions>(
                            torch::optim::AdamWOptions(feature_loss->lr).weight_decay(feature_loss->weight_decay)));
    peak.push_back(feature_loss->lr);
  }
  return {FusedAdamW(std::move(groups)), std::move(peak)};
}

struct Schedule {
  int64_t steps_per_epoch = 0;
  int64_t planned_steps = 0;  // epochs * steps per epoch
  int64_t warmup_steps = 0;
};

Schedule plan_schedule(int64_t examples, const TrainerOptions& o) {
  Schedule s;
  s.steps_per_epoch = (examples + o.batch_size - 1) / o.batch_size;
  s.planned_steps = s.steps_per_epoch * o.epochs;
  s.warmup_steps = static_cast<int64_t>(std::llround(o.warmup * static_cast<double>(s.planned_steps)));
  return s;
}

// One epoch's order of the training rows: Fisher-Yates with our own index draw, so the same order
// on every standard library, and the same order again when a resumed run replays the epochs it
// had finished.
std::vector<int64_t> epoch_order(std::mt19937_64& rng, int64_t n) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(rng() % static_cast<uint64_t>(i + 1))]);
  return order;
}

// One optimiser step on the training rows `indices`, each parameter group at its learning rate
// `lr[g]`; returns the loss, or nothing (and no step) when the loss is not finite. In a job
// (`reducer` set), this rank computes its contiguous slice of the rows, its loss weighted by the
// slice's share, and the gradients (summed while backward runs) and the loss are summed over the
// ranks: the step of one process on all the rows (exact for a loss that is a mean over rows;
// DFA's and CFL's batch statistics are per slice).
std::optional<double> train_step(ClassifierImpl& model, FusedAdamW& optimizer, const std::vector<double>& lr,
                  const TrainInputs& train, const torch::Tensor& indices, const LossFn& loss,
                  const FeatureLoss* feature_loss, double grad_clip,
                  const torch::Device& device, uint64_t dropout_seed, GradientReducer* reducer, bool bf16) {
  torch::Tensor mine = indices;
  double share = 1.0;
  if (reducer != nullptr) {
    const int64_t b = indices.size(0), w = reducer->group().world_size(), r = reducer->group().rank();
    mine = indices.slice(0, b * r / w, b * (r + 1) / w);
    share = static_cast<double>(mine.size(0)) / static_cast<double>(b);
  }
  double value = 0;
  optimizer.zero_grad();
  model.train();
  if (feature_loss != nullptr) feature_loss->modules->train();
  if (mine.size(0) > 0) {
    EncodedTexts batch = trim_padding(train.input_ids.index_select(0, mine),
                                      train.attention_mask.index_select(0, mine));
    // Dropout keyed by (seed, step, the example's row): fast, the same masks on any rank, and a
    // resumed run needs no generator state to draw them again.
    std::vector<uint64_t> keys(static_cast<size_t>(mine.size(0)));
    const torch::Tensor rows = mine.contiguous();
    const int64_t* row = rows.data_ptr<int64_t>();
    for (size_t i = 0; i < keys.size(); ++i) keys[i] = mix_seed(dropout_seed, static_cast<uint64_t>(row[i]));
    const DropoutKeyScope keyed(std::move(keys));
    torch::Tensor logits, pooled;
    {
      const Bf16Autocast autocast(device, bf16);  // the forward only: the losses stay float32
      pooled = model.pooled_features(batch.input_ids.to(device), batch.attention_mask.to(device));
      logits = model.classify(pooled);
    }
    torch::Tensor l = loss(logits.to(torch::kFloat), mine);
    if (feature_loss != nullptr) l = l + feature_loss->loss(pooled.to(torch::kFloat), mine);
    value = l.item<double>() * share;
    if (std::isfinite(value)) (share == 1.0 ? l : l * share).backward();
  }
  if (reducer != nullptr) value = reducer->finish(value);
  if (!std::isfinite(value)) return std::nullopt;
  // Clipped apart: the fresh modules' large early gradients must not shrink the model's step.
  if (grad_clip > 0) {
    torch::nn::utils::clip_grad_norm_(model.parameters(), grad_clip);
    if (feature_loss != nullptr) torch::nn::utils::clip_grad_norm_(feature_loss->modules->parameters(), grad_clip);
  }
  auto& groups = optimizer.param_groups();
  for (size_t g = 0; g < groups.size(); ++g)
    static_cast<torch::optim::AdamWOptions&>(groups[g].options()).lr(lr[g]);
  optimizer.step();
  return value;
}

// The mean of the losses added since it was last taken.
class LossMean {
 public:
  void add(double loss) {
    sum_ += loss;
    ++count_;
  }
  double take() {
    const double mean = count_ > 0 ? sum_ / static_cast<double>(count_) : 0.0;
    sum_ = 0;
    count_ = 0;
    return mean;
  }

 private:
  double sum_ = 0;
  int64_t count_ = 0;
};

// Evaluates on dev, keeps the weights when they are the best so far (as clones on the training
// device) and counts the evaluations without improvement. Returns whether to stop early. In a
// job, rank 0 evaluates and sends the metrics: every rank then selects alike (its weights are the
// same), and only rank 0 logs and reports the evaluation.
bool evaluate_and_select(ClassifierImpl& model, const EvalSet& dev, EvalRecord record, TrainingState& st,
                         std::vector<torch::Tensor>& best, const TrainerOptions& o,
                         const torch::Device& device, const EvalCallback& on_eval) {
  const bool leader = is_rank0(o.group);
  if (leader) record.dev = evaluate(model, dev, o.eval_batch_size, device);
  if (o.group != nullptr) {
    double metrics[3] = {record.dev.accuracy, record.dev.macro_f1, static_cast<double>(record.dev.examples)};
    const std::string sent = o.group->broadcast(std::string(reinterpret_cast<const char*>(metrics), sizeof(metrics)), 0);
    std::memcpy(metrics, sent.data(), sizeof(metrics));
    record.dev.accuracy = metrics[0];
    record.dev.macro_f1 = metrics[1];
    record.dev.examples = static_cast<int64_t>(metrics[2]);
  }
  st.history.push_back(record);
  const bool improved = record.dev.accuracy > st.best_accuracy;
  if (improved) {
    st.best_accuracy = record.dev.accuracy;
    st.best_dev = record.dev;
    st.best_step = record.step;
    st.evals_without_improvement = 0;
    torch::NoGradGuard no_grad;
    best.clear();
    for (auto& [name, t] : state_tensors(model)) best.push_back(t.detach().clone());
  } else {
    ++st.evals_without_improvement;
  }
  if (leader) {
    spdlog::info("{} eval step {} (epoch {:.2f}): dev accuracy {:.4f} macro-F1 {:.4f}{} "
                 "(best {:.4f} at step {})",
                 o.name, record.step, record.epoch, record.dev.accuracy, record.dev.macro_f1,
                 improved ? " *" : "", st.best_accuracy, st.best_step);
    if (on_eval) on_eval(record);
  }
  return o.patience > 0 && st.evals_without_improvement >= o.patience;
}

}  // namespace

double scheduled_lr(double lr, int64_t step, int64_t warmup_steps, int64_t total) {
  if (warmup_steps > 0 && step <= warmup_steps)
    return lr * static_cast<double>(step) / static_cast<double>(warmup_steps);
  const int64_t decay = std::max<int64_t>(1, total - warmup_steps);
  return lr * std::max(0.0, static_cast<double>(total - step) / static_cast<double>(decay));
}

LossFn cross_entropy_loss(torch::Tensor labels) {
  return [labels = std::move(labels)](const torch::Tensor& logits, const torch::Tensor& indices) {
    return torch::nn::functional::cross_entropy(
        logits, labels.index_select(0, indices).to(logits.device()));
  };
}

torch::Tensor kl_to_student(const torch::Tensor& target, const torch::Tensor& logits,
                            double temperature) {
  const torch::Tensor log_q = torch::log_softmax(logits / temperature, -1);
  // t * (log t - log q), with 0 * log 0 = 0 (xlogy would do it too, but is newer than 1.13's API
  // surface we rely on).
  const torch::Tensor log_t = torch::where(target > 0, target.log(), torch::zeros_like(target));
  return (target * (log_t - log_q)).sum(-1);
}

LossFn weighted_kl_loss(torch::Tensor targets, torch::Tensor weights, double temperature) {
  if (!(temperature > 0)) throw std::invalid_argument("weighted_kl_loss: temperature must be > 0");
  return [targets = std::move(targets), weights = std::move(weights), temperature](
             const torch::Tensor& logits, const torch::Tensor& indices) {
    const torch::Tensor t = targets.index_select(0, indices).to(logits.device(), logits.scalar_type());
    const torch::Tensor w = weights.index_select(0, indices).to(logits.device(), logits.scalar_type());
    return (w * kl_to_student(t, logits, temperature)).mean();
  };
}

LossFn per_teacher_kl_loss(torch::Tensor targets, torch::Tensor weights,
                           std::vector<torch::Tensor> blocks, double temperature) {
  if (!(temperature > 0)) throw std::invalid_argument("per_teacher_kl_loss: temperature must be > 0");
  if (blocks.empty()) throw std::invalid_argument("per_teacher_kl_loss: no label blocks");
  return [targets = std::move(targets), weights = std::move(weights), blocks = std::move(blocks),
          temperature](const torch::Tensor& logits, const torch::Tensor& indices) {
    const torch::Tensor t = targets.index_select(0, indices).to(logits.device(), logits.scalar_type());
    const torch::Tensor w = weights.index_select(0, indices).to(logits.device(), logits.scalar_type());
    torch::Tensor kl = torch::zeros({logits.size(0)}, logits.options());
    for (const torch::Tensor& block : blocks) {
      const torch::Tensor idx = block.to(logits.device());
      // log_softmax over the block's columns only: the student renormalised within Y_i.
      kl = kl + kl_to_student(t.index_select(1, idx), logits.index_select(1, idx), temperature);
    }
    return (w * kl).mean();
  };
}

torch::Tensor predict_logits(ClassifierImpl& model, const torch::Tensor& input_ids,
                             const torch::Tensor& attention_mask, int64_t batch_size,
                             const torch::Device& device) {
  model.eval();
  c10::InferenceMode inference;
  const int64_t n = input_ids.size(0);
  torch::Tensor out = torch::zeros({n, model.config().num_labels});
  // Length bucketing: batches of texts of similar length, padded little; a text's logits do not
  // depend on its batch (padding is ignored), so they go back to its row.
  const EncodedTexts all{input_ids, attention_mask};
  const std::vector<int64_t> order = order_by_length(attention_mask);
  for (int64_t start = 0; start < n; start += batch_size) {
    const std::vector<int64_t> rows(order.begin() + start, order.begin() + std::min(n, start + batch_size));
    const EncodedTexts b = select_rows(all, rows);
    out.index_copy_(0, torch::tensor(rows, torch::kLong),
                    model.forward(b.input_ids.to(device), b.attention_mask.to(device))
                        .to(torch::kCPU, torch::kFloat));
  }
  return out;
}

std::vector<int64_t> epoch_training_order(std::mt19937_64& rng, const std::vector<int64_t>& lengths,
                                          int64_t batch_size, int64_t bucket_batches) {
  const auto n = static_cast<int64_t>(lengths.size());
  std::vector<int64_t> order = epoch_order(rng, n);
  if (bucket_batches <= 0) return order;
  const int64_t window = batch_size * bucket_batches;
  for (int64_t begin = 0; begin < n; begin += window)
    std::stable_sort(order.begin() + begin, order.begin() + std::min(n, begin + window),
                     [&](int64_t a, int64_t b) {
                       return lengths[static_cast<size_t>(a)] < lengths[static_cast<size_t>(b)];
                     });
  const int64_t full = n / batch_size;
  std::vector<int64_t> bucketed;
  bucketed.reserve(order.size());
  for (int64_t b : epoch_order(rng, full))
    bucketed.insert(bucketed.end(), order.begin() + b * batch_size, order.begin() + (b + 1) * batch_size);
  bucketed.insert(bucketed.end(), order.begin() + full * batch_size, order.end());
  return bucketed;
}

ClassificationMetrics evaluate(ClassifierImpl& model, const EvalSet& set, int64_t batch_size,
                               const torch::Device& device) {
  const torch::Tensor logits = predict_logits(model, set.input_ids, set.attention_mask, batch_size, device);
  const torch::Tensor pred = logits.argmax(1).contiguous();
  const torch::Tensor gold = set.labels.to(torch::kLong).contiguous();
  std::vector<int64_t> p(pred.data_ptr<int64_t>(), pred.data_ptr<int64_t>() + pred.numel());
  std::vector<int64_t> g(gold.data_ptr<int64_t>(), gold.data_ptr<int64_t>() + gold.numel());
  return classification_metrics(g, p, model.config().num_labels);
}

TrainResult train_classifier(ClassifierImpl& model, const TrainInputs& train, const LossFn& loss,
                             const EvalSet* dev, const TrainerOptions& o,
                             const torch::Device& device, const EvalCallback& on_eval,
                             const FeatureLoss* feature_loss) {
  check_options(o);
  if (feature_loss != nullptr && (!feature_loss->modules || !feature_loss->loss))
    throw std::invalid_argument("trainer: a feature loss needs its modules and its loss");
  const int64_t n = train.input_ids.size(0);
  if (n == 0) throw std::invalid_argument("trainer: the training split is empty");
  const auto start = Clock::now();
  seed_generators(o.seed, device);
  auto [optimizer, peak_lr] = make_optimizer(model, o, feature_loss);
  std::vector<double> group_lr(peak_lr.size());
  const std::vector<torch::Tensor> current = trainable_state(model, feature_loss);
  const Schedule schedule = plan_schedule(n, o);
  const std::vector<int64_t> lengths = token_counts(train.attention_mask);
  // A state written under another batch order must not be resumed into this one.
  // Nor one written in another precision.
  const std::string state_key = o.state_key +
                                (o.bucket_batches > 0 ? "|buckets " + std::to_string(o.bucket_batches) : "") +
                                (o.bf16 ? "|bf16" : "");
  // Every rank starts from rank 0's weights (seeded alike already; this makes sure).
  if (o.group != nullptr) o.group->broadcast(current, 0);
  std::unique_ptr<GradientReducer> reducer;
  if (o.group != nullptr) {
    std::vector<torch::Tensor> parameters = model.parameters();
    if (feature_loss != nullptr)
      for (const torch::Tensor& p : feature_loss->modules->parameters()) parameters.push_back(p);
    reducer = std::make_unique<GradientReducer>(*o.group, std::move(parameters));
  }
  const bool leader = is_rank0(o.group);  // writes the state

  // The best weights so far (by dev accuracy), as clones on the training device.
  std::vector<torch::Tensor> best;
  TrainingState st;
  const bool stateful = !o.state_file.empty();
  if (stateful && load_state(o.state_file, state_key, st, current, best, optimizer, device, o.group))
    spdlog::info("{}: resuming from {} at step {}{}", o.name, o.state_file.string(), st.step,
                 st.finished ? " (training had finished)" : "");
  const int64_t resume_step = st.step;
  auto save = [&] {
    if (stateful && leader) save_state(o.state_file, state_key, st, current, best, optimizer, device);
  };
  LossMean since_eval, since_log;
  // An evaluation point: evaluate (with a dev set), then record the state to resume from.
  auto checkpoint = [&](int64_t step) {
    EvalRecord record;
    record.step = step;
    record.epoch = static_cast<double>(step) / static_cast<double>(schedule.steps_per_epoch);
    record.train_loss = since_eval.take();
    const bool stop = dev != nullptr && evaluate_and_select(model, *dev, record, st, best, o, device, on_eval);
    st.step = step;
    st.stopped_early = stop;
    save();
    // The others wait here while rank 0 writes, not in the next gradient exchange (Gloo's timeout).
    if (o.group != nullptr) o.group->barrier();
    return stop;
  };

  if (const std::string slow = o.bf16 ? bf16_slowness(device) : ""; !slow.empty())
    spdlog::warn("{}: {}", o.name, slow);
  std::mt19937_64 rng(o.seed);
  int64_t step = 0, examples_seen = 0;
  auto last_log = Clock::now();
  // A state written at an early stop but before the end was saved is just as finished.
  bool stop = st.finished || st.stopped_early;
  if (!stop)
    spdlog::info("{}: {} examples, {} epochs x {} steps (batch {}), warmup {} steps, device {}",
                 o.name, n, o.epochs, schedule.steps_per_epoch, o.batch_size, schedule.warmup_steps,
                 device.str());
  for (int64_t epoch = 0; epoch < o.epochs && !stop; ++epoch) {
    std::vector<int64_t> order = epoch_training_order(rng, lengths, o.batch_size, o.bucket_batches);
    if ((epoch + 1) * schedule.steps_per_epoch <= resume_step) {
      step = (epoch + 1) * schedule.steps_per_epoch;
      continue;  // finished before the state was written
    }
    const torch::Tensor perm = torch::from_blob(order.data(), {n}, torch::kLong).clone();
    bool checkpointed_at_step = false;
    for (int64_t b = 0; b < schedule.steps_per_epoch && !stop; ++b) {
      if (step < resume_step) {
        ++step;
        continue;
      }
      const int64_t begin = b * o.batch_size, len = std::min(o.batch_size, n - begin);
      ++step;
      for (size_t g = 0; g < peak_lr.size(); ++g)
        group_lr[g] = scheduled_lr(peak_lr[g], step, schedule.warmup_steps, schedule.planned_steps);
      const double lr = group_lr.front();
      const std::optional<double> step_loss =
          train_step(model, optimizer, group_lr, train, perm.narrow(0, begin, len), loss, feature_loss,
                     o.grad_clip, device, mix_seed(o.seed, static_cast<uint64_t>(step)), reducer.get(), o.bf16);
      // Training on would only spread the NaN into every weight; the last state stays as it was.
      if (!step_loss)
        throw std::runtime_error(o.name + ": the training loss is not finite at step " + std::to_string(step) +
                                 " (check the targets, the learning rate and the data); " +
                                 (stateful ? "the state of step " + std::to_string(st.step) + " stays in " +
                                                 o.state_file.string()
                                           : std::string("nothing was saved")));
      const double loss_value = *step_loss;
      since_eval.add(loss_value);
      since_log.add(loss_value);
      examples_seen += len;
      if (seconds_since(last_log) >= o.log_interval_s || step == schedule.planned_steps) {
        const double elapsed = seconds_since(start);
        const double rate = static_cast<double>(examples_seen) / std::max(elapsed, 1e-9);
        const double eta = elapsed / static_cast<double>(step - resume_step) *
                           static_cast<double>(schedule.planned_steps - step);
        spdlog::info("{} epoch {}/{} step {}/{} loss {:.4f} lr {:.2e} {:.0f} ex/s ETA {}", o.name,
                     epoch + 1, o.epochs, step, schedule.planned_steps, since_log.take(), lr, rate,
                     format_duration(eta));
        last_log = Clock::now();
      }
      checkpointed_at_step = false;
      if (o.eval_every > 0 && step % o.eval_every == 0) {
        stop = checkpoint(step);
        checkpointed_at_step = true;
      }
    }
    if (!stop && !checkpointed_at_step && step > resume_step) stop = checkpoint(step);
  }
  if (st.stopped_early && !st.finished)
    spdlog::info("{}: early stop after {} evaluations without improvement", o.name, o.patience);
  if (!st.finished) {
    if (!best.empty()) {
      torch::NoGradGuard no_grad;
      // The model's tensors come first in `current`; the best weights are the model's alone.
      for (size_t i = 0; i < best.size(); ++i) current[i].copy_(best[i]);
    }
    st.finished = true;
    save();
  }
  model.eval();
  TrainResult result;
  result.has_dev = dev != nullptr;
  result.best_dev = st.best_dev;
  result.best_step = st.best_step;
  result.steps = st.step;
  result.planned_steps = schedule.planned_steps;
  result.stopped_early = st.stopped_early;
  result.history = st.history;
  result.resumed_from_step = resume_step;
  result.seconds = seconds_since(start);
  return result;
}

}  // namespace muki::core
