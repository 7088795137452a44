#include "muki/core/classifier_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <stdexcept>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "muki/core/text_encoding.h"

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
}

// Linear warmup to `lr` over `warmup_steps`, then linear decay to 0 at `total` (step is 1-based).
double scheduled_lr(double lr, int64_t step, int64_t warmup_steps, int64_t total) {
  if (warmup_steps > 0 && step <= warmup_steps)
    return lr * static_cast<double>(step) / static_cast<double>(warmup_steps);
  const int64_t decay = std::max<int64_t>(1, total - warmup_steps);
  return lr * std::max(0.0, static_cast<double>(total - step) / static_cast<double>(decay));
}

std::vector<std::pair<std::string, torch::Tensor>> state_tensors(torch::nn::Module& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : model.named_parameters(true)) out.emplace_back(p.key(), p.value());
  for (const auto& b : model.named_buffers(true)) out.emplace_back(b.key(), b.value());
  return out;
}

}  // namespace

LossFn cross_entropy_loss(torch::Tensor labels) {
  return [labels = std::move(labels)](const torch::Tensor& logits, const torch::Tensor& indices) {
    return torch::nn::functional::cross_entropy(
        logits, labels.index_select(0, indices).to(logits.device()));
  };
}

LossFn weighted_kl_loss(torch::Tensor targets, torch::Tensor weights, double temperature) {
  if (!(temperature > 0)) throw std::invalid_argument("weighted_kl_loss: temperature must be > 0");
  return [targets = std::move(targets), weights = std::move(weights), temperature](
             const torch::Tensor& logits, const torch::Tensor& indices) {
    const torch::Tensor t = targets.index_select(0, indices).to(logits.device(), logits.scalar_type());
    const torch::Tensor w = weights.index_select(0, indices).to(logits.device(), logits.scalar_type());
    const torch::Tensor log_q = torch::log_softmax(logits / temperature, -1);
    // t * (log t - log q), with 0 * log 0 = 0 (xlogy would do it too, but is newer than 1.13's API
    // surface we rely on).
    const torch::Tensor log_t = torch::where(t > 0, t.log(), torch::zeros_like(t));
    const torch::Tensor kl = (t * (log_t - log_q)).sum(-1);
    return (w * kl).mean();
  };
}

torch::Tensor predict_logits(ClassifierImpl& model, const torch::Tensor& input_ids,
                             const torch::Tensor& attention_mask, int64_t batch_size,
                             const torch::Device& device) {
  model.eval();
  c10::InferenceMode inference;
  std::vector<torch::Tensor> parts;
  const int64_t n = input_ids.size(0);
  for (int64_t start = 0; start < n; start += batch_size) {
    const int64_t len = std::min(batch_size, n - start);
    EncodedTexts b = trim_padding(input_ids.narrow(0, start, len), attention_mask.narrow(0, start, len));
    parts.push_back(model.forward(b.input_ids.to(device), b.attention_mask.to(device))
                        .to(torch::kCPU, torch::kFloat));
  }
  if (parts.empty()) return torch::zeros({0, model.config().num_labels});
  return torch::cat(parts, 0);
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
                             const torch::Device& device) {
  check_options(o);
  const int64_t n = train.input_ids.size(0);
  if (n == 0) throw std::invalid_argument("trainer: the training split is empty");
  const auto start = Clock::now();
  torch::manual_seed(o.seed);  // dropout masks during training

  // AdamW with two groups: weight decay on weight matrices and embeddings only.
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
  torch::optim::AdamW optimizer(std::move(groups));
  std::vector<torch::Tensor> all_params = model.parameters();

  const int64_t steps_per_epoch = (n + o.batch_size - 1) / o.batch_size;
  TrainResult result;
  result.has_dev = dev != nullptr;
  result.planned_steps = steps_per_epoch * o.epochs;
  const int64_t warmup_steps =
      static_cast<int64_t>(std::llround(o.warmup * static_cast<double>(result.planned_steps)));

  // The best weights so far (by dev accuracy), as clones on the training device.
  std::vector<torch::Tensor> best;
  double best_accuracy = -1;
  int64_t evals_without_improvement = 0;
  double loss_sum_since_eval = 0;
  int64_t loss_count_since_eval = 0;

  auto run_eval = [&](int64_t step) {
    EvalRecord record;
    record.step = step;
    record.epoch = static_cast<double>(step) / static_cast<double>(steps_per_epoch);
    record.train_loss = loss_count_since_eval > 0
                            ? loss_sum_since_eval / static_cast<double>(loss_count_since_eval)
                            : 0.0;
    loss_sum_since_eval = 0;
    loss_count_since_eval = 0;
    record.dev = evaluate(model, *dev, o.eval_batch_size, device);
    result.history.push_back(record);
    const bool improved = record.dev.accuracy > best_accuracy;
    if (improved) {
      best_accuracy = record.dev.accuracy;
      result.best_dev = record.dev;
      result.best_step = step;
      evals_without_improvement = 0;
      torch::NoGradGuard no_grad;
      best.clear();
      for (auto& [name, t] : state_tensors(model)) best.push_back(t.detach().clone());
    } else {
      ++evals_without_improvement;
    }
    spdlog::info("{} eval step {} (epoch {:.2f}): dev accuracy {:.4f} macro-F1 {:.4f}{} "
                 "(best {:.4f} at step {})",
                 o.name, step, record.epoch, record.dev.accuracy, record.dev.macro_f1,
                 improved ? " *" : "", best_accuracy, result.best_step);
    return o.patience > 0 && evals_without_improvement >= o.patience;
  };

  std::mt19937_64 rng(o.seed);
  std::vector<int64_t> order(static_cast<size_t>(n));
  int64_t step = 0;
  auto last_log = Clock::now();
  double loss_sum_since_log = 0;
  int64_t loss_count_since_log = 0, examples_seen = 0;
  bool stop = false;
  spdlog::info("{}: {} examples, {} epochs x {} steps (batch {}), warmup {} steps, device {}",
               o.name, n, o.epochs, steps_per_epoch, o.batch_size, warmup_steps, device.str());
  for (int64_t epoch = 0; epoch < o.epochs && !stop; ++epoch) {
    for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
    // Fisher-Yates with our own index draw: the same order on every standard library.
    for (int64_t i = n - 1; i > 0; --i)
      std::swap(order[static_cast<size_t>(i)],
                order[static_cast<size_t>(rng() % static_cast<uint64_t>(i + 1))]);
    const torch::Tensor perm = torch::from_blob(order.data(), {n}, torch::kLong).clone();
    bool evaluated_at_step = false;
    for (int64_t b = 0; b < steps_per_epoch && !stop; ++b) {
      const int64_t begin = b * o.batch_size, len = std::min(o.batch_size, n - begin);
      const torch::Tensor indices = perm.narrow(0, begin, len);
      EncodedTexts batch = trim_padding(train.input_ids.index_select(0, indices),
                                        train.attention_mask.index_select(0, indices));
      model.train();
      const torch::Tensor logits =
          model.forward(batch.input_ids.to(device), batch.attention_mask.to(device));
      torch::Tensor l = loss(logits, indices);
      optimizer.zero_grad();
      l.backward();
      if (o.grad_clip > 0) torch::nn::utils::clip_grad_norm_(all_params, o.grad_clip);
      ++step;
      const double lr = scheduled_lr(o.lr, step, warmup_steps, result.planned_steps);
      for (auto& group : optimizer.param_groups())
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      optimizer.step();

      const double loss_value = l.item<double>();
      loss_sum_since_eval += loss_value;
      ++loss_count_since_eval;
      loss_sum_since_log += loss_value;
      ++loss_count_since_log;
      examples_seen += len;
      if (seconds_since(last_log) >= o.log_interval_s || step == result.planned_steps) {
        const double elapsed = seconds_since(start);
        const double rate = static_cast<double>(examples_seen) / std::max(elapsed, 1e-9);
        const double eta = elapsed / static_cast<double>(step) *
                           static_cast<double>(result.planned_steps - step);
        spdlog::info("{} epoch {}/{} step {}/{} loss {:.4f} lr {:.2e} {:.0f} ex/s ETA {}", o.name,
                     epoch + 1, o.epochs, step, result.planned_steps,
                     loss_sum_since_log / static_cast<double>(loss_count_since_log), lr, rate,
                     format_duration(eta));
        loss_sum_since_log = 0;
        loss_count_since_log = 0;
        last_log = Clock::now();
      }
      evaluated_at_step = false;
      if (dev != nullptr && o.eval_every > 0 && step % o.eval_every == 0) {
        stop = run_eval(step);
        evaluated_at_step = true;
      }
    }
    if (dev != nullptr && !stop && !evaluated_at_step) stop = run_eval(step);
  }
  result.steps = step;
  result.stopped_early = stop;
  if (stop)
    spdlog::info("{}: early stop after {} evaluations without improvement", o.name, o.patience);
  if (!best.empty()) {
    torch::NoGradGuard no_grad;
    auto current = state_tensors(model);
    for (size_t i = 0; i < current.size(); ++i) current[i].second.copy_(best[i]);
  }
  model.eval();
  result.seconds = seconds_since(start);
  return result;
}

}  // namespace muki::core
