// The training loop muki uses for every classifier it trains: teachers (cross-entropy on gold
// labels, `muki teacher train`) and, later, the student (a weighted KL to soft targets). The loss
// is a callback, so both share the optimiser, schedule, evaluation, early stopping and progress.
//
// AdamW (no weight decay on biases, LayerNorm weights: any parameter whose name ends in "bias" or
// contains "norm"), learning rate warmed up linearly over the first `warmup` fraction of the
// planned steps, then decayed linearly to 0 at the last planned step; gradient clipping by global
// L2 norm; evaluation on the dev set every `eval_every` steps and at every epoch end; the best
// weights (dev accuracy) are kept in memory and put back into the model at the end; early stop
// after `patience` evaluations without improvement. Progress (step, loss, lr, examples/s, ETA) and
// evaluations go to spdlog (stderr).
//
// Resumption: with TrainerOptions::state_file set, the complete training state (weights, best
// weights, AdamW moments, step, early-stopping counters, history, and the default generators of
// the CPU and the training device) is written there at every evaluation point and at the end,
// atomically (a temporary file renamed into place). A later call with the same state_key picks it
// up: the shuffled orders of the finished batches are replayed (they come from the seed alone), so
// a killed run continues exactly where its last state was written, and a finished one returns at
// once. A state written under another key is ignored (and overwritten), with a warning.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <torch/types.h>

#include <muki/metrics/metrics.h>
#include <muki/model/models.h>

namespace muki::core {

class ProcessGroup;

struct TrainerOptions {
  int64_t epochs = 3;
  int64_t batch_size = 32;
  double lr = 5e-4;
  double weight_decay = 0.01;
  double warmup = 0.1;        // fraction of the planned steps, in [0, 1]
  int64_t eval_every = 100;   // steps between dev evaluations; 0 = only at epoch ends
  int64_t patience = 10;      // evaluations without improvement before stopping; 0 = never stop
  double grad_clip = 1.0;     // max global gradient L2 norm; 0 = no clipping
  // Seeds the shuffling (a private std::mt19937_64, identical on every platform's standard
  // library since the shuffle is our own Fisher-Yates) and the dropout masks: the model's keyed
  // dropout (keyed_dropout.h) draws example e's masks at step s from mix(mix(seed, s), e).
  // torch's default generator is seeded with it too (for a plain torch dropout elsewhere).
  uint64_t seed = 1;
  int64_t eval_batch_size = 128;
  // Length bucketing of the training batches (added in muki 0.9), a speed option: each epoch's
  // shuffled order is cut into windows of this many batches, each window's rows are sorted by
  // length and cut into batches, and the epoch's full batches are shuffled (a short last batch
  // stays last). Batches are then padded little, and each is still a random draw of rows of about
  // one length. 0 (the default): the plain shuffled order of every earlier version, so the
  // published numbers reproduce. Part of the state key when on.
  int64_t bucket_batches = 0;
  // Mixed precision for the training forward (added in muki 0.10), a speed option: when true,
  // the forward runs under bfloat16 autocast (device.h's Bf16Autocast: matrix products and
  // convolutions in bf16, their weights kept and updated in float32); the logits and pooled
  // features are cast to float32 before the losses, and the backward follows the forward's
  // precision. Dev evaluation stays float32, so model selection compares like with like. Fast
  // only where the hardware computes bf16 natively (CPUs with AVX512_BF16 or AMX, recent GPUs);
  // elsewhere it is slower than float32. false (the default): float32 throughout, as in every
  // earlier version. Part of the state key when on.
  bool bf16 = false;
  double log_interval_s = 2.0;  // a progress line at most this often
  std::string name = "train";   // prefix of the progress lines
  std::filesystem::path state_file;  // empty: no resumable state
  std::string state_key;             // what the state must have been written for
  // A distributed job (process_group.h; null: this process alone), data-parallel: every rank
  // calls with the same inputs and options, computes its slice of each batch, and the gradients
  // are summed over the ranks, so the steps are those of one process with the same batch_size.
  // Rank 0 evaluates on dev (the others receive the metrics) and writes the state file; every
  // rank resumes from rank 0's file. Not part of the state key: a job may resume with another
  // world size. (Added in muki 0.5.)
  ProcessGroup* group = nullptr;
};

// The training split, encoded: [N, L] int64 tensors on the CPU (padded to any length; each batch
// is trimmed to its longest row before it goes to the device).
struct TrainInputs {
  torch::Tensor input_ids;
  torch::Tensor attention_mask;
};

// A labeled split for evaluation: labels [N] int64 class ids on the CPU.
struct EvalSet {
  torch::Tensor input_ids;
  torch::Tensor attention_mask;
  torch::Tensor labels;
};

// The loss of one training batch: `logits` [b, C] on the training device (with grad), `indices`
// [b] int64 on the CPU, the rows of the training split in this batch (so a callback can pick its
// own per-example targets). Returns a scalar tensor to minimise.
using LossFn = std::function<torch::Tensor(const torch::Tensor& logits, const torch::Tensor& indices)>;

// The learning rate at optimiser step `step` (1-based): linear warmup to `lr` over
// `warmup_steps`, then linear decay to 0 at step `total`. Also `muki pretrain`'s schedule.
double scheduled_lr(double lr, int64_t step, int64_t warmup_steps, int64_t total);

// Mean cross-entropy against gold class ids `labels` [N] int64 (CPU), indexed by the batch rows.
LossFn cross_entropy_loss(torch::Tensor labels);

// Per-row KL(target || softmax(logits / T)) summed over classes, with 0 * log 0 = 0: [b].
torch::Tensor kl_to_student(const torch::Tensor& target, const torch::Tensor& logits,
                            double temperature);

// The student's loss (MUKI step 5): mean_b weight[b] * KL(target[b] || softmax(logits[b] / T)),
// KL summed over classes, 0 * log 0 = 0, no T^2 factor. targets [N, C] float (rows sum to 1),
// weights [N] float, both on the CPU, indexed by the batch rows.
LossFn weighted_kl_loss(torch::Tensor targets, torch::Tensor weights, double temperature = 1.0);

// UHC's loss (MUKI_LOSS_KL_PER_TEACHER): the student's distribution is renormalised within every
// teacher's label block and matched to that teacher's block of the target:
// mean_b weight[b] * sum_i KL(target[b, Y_i] || softmax(logits[b, Y_i] / T)). `blocks` holds each
// teacher's union indices (int64, CPU). Throws std::invalid_argument on an empty block list.
LossFn per_teacher_kl_loss(torch::Tensor targets, torch::Tensor weights,
                           std::vector<torch::Tensor> blocks, double temperature = 1.0);

// A second loss on the model's pooled features (DFA's and CFL's feature objectives), with
// trainable modules of its own: they get a third AdamW group (`lr`, `weight_decay`, the same
// warmup and decay), their gradients are clipped apart from the model's, and their weights
// are part of the resumable state (not of the best weights: they are not part of the model).
struct FeatureLoss {
  std::shared_ptr<torch::nn::Module> modules;
  // pooled [b, H] on the training device (with grad), indices [b] int64 on the CPU as for LossFn;
  // returns a scalar added to the main loss.
  std::function<torch::Tensor(const torch::Tensor& pooled, const torch::Tensor& indices)> loss;
  double lr = 1e-3;
  double weight_decay = 1e-4;
};

struct EvalRecord {
  int64_t step = 0;
  double epoch = 0;  // fractional: step / steps per epoch
  double train_loss = 0;  // mean training loss since the previous evaluation
  ClassificationMetrics dev;
};

struct TrainResult {
  bool has_dev = false;
  ClassificationMetrics best_dev;  // of the weights left in the model
  int64_t best_step = 0;
  int64_t steps = 0;          // optimiser steps taken
  int64_t planned_steps = 0;  // epochs * steps per epoch
  bool stopped_early = false;
  double seconds = 0;
  std::vector<EvalRecord> history;
  int64_t resumed_from_step = 0;  // > 0: the state file's step this call started from
};

// Called after every evaluation, with the record just added to the history.
using EvalCallback = std::function<void(const EvalRecord&)>;

// Trains `model` (moved to `device` by the caller beforehand) on `train` with `loss` (plus
// `feature_loss` when given, its modules on `device` too). `dev` may be null: then there is no
// evaluation, no early stopping, and the final weights stay. Throws
// std::invalid_argument on bad options or an empty training split, std::runtime_error naming the
// file when the state file cannot be read or written, and what the loss or the model's forward
// throws. Leaves the model in eval mode.
TrainResult train_classifier(ClassifierImpl& model, const TrainInputs& train, const LossFn& loss,
                             const EvalSet* dev, const TrainerOptions& options,
                             const torch::Device& device, const EvalCallback& on_eval = {},
                             const FeatureLoss* feature_loss = nullptr);

// Deterministic logits (eval mode, inference mode) of every row, in length-sorted batches (each
// row's logits do not depend on its batch), returned on the CPU as [N, C] float in row order.
torch::Tensor predict_logits(ClassifierImpl& model, const torch::Tensor& input_ids,
                             const torch::Tensor& attention_mask, int64_t batch_size,
                             const torch::Device& device);

// One epoch's order of the training rows, as train_classifier takes them (batch b is the rows at
// [b * batch_size, (b + 1) * batch_size)): a shuffle drawn from `rng`, then, when bucket_batches
// > 0, length bucketing by `lengths` (one per row; TrainerOptions::bucket_batches), which draws
// from `rng` again. A permutation of 0..N-1; a short last batch stays last. (muki 0.9)
std::vector<int64_t> epoch_training_order(std::mt19937_64& rng, const std::vector<int64_t>& lengths,
                                          int64_t batch_size, int64_t bucket_batches);

// Accuracy and macro-F1 of the argmax of predict_logits against set.labels.
ClassificationMetrics evaluate(ClassifierImpl& model, const EvalSet& set, int64_t batch_size,
                               const torch::Device& device);

}  // namespace muki::core
