// Student-training throughput: examples/s of muki's trainer (AdamW with warmup and decay,
// gradient clipping, weighted KL to soft targets: MUKI step 5) on real texts, for a model with
// the architecture of a checkpoint (freshly initialised), batch 32, no evaluation.
//   muki_bench_student --checkpoint DIR --data TSV [--examples 1024] [--epochs 1] [--threads 2]
//       [--bucket-batches 0 (the trainer's length bucketing; 0: random batches, the reference's work)]
//       [--precision fp32 | bf16 (the trainer's mixed precision, TrainerOptions::bf16)]
//       [--ids-out FILE] [--profile TRACE (LibTorch's operator profiler; bench/profile.sh)]
// Prints one JSON object. --ids-out writes the token ids for bench/reference.py.
#include <chrono>
#include <iostream>

#include <muki/model/classifier_trainer.h>
#include <muki/model/device.h>

#include "bench_common.h"

int main(int argc, char** argv) try {
  using namespace muki;
  core::tune_allocator();  // as muki does
  bench::log_to_stderr();
  const bench::Args args(argc, argv);
  const int64_t n = args.get_int("examples", 1024), epochs = args.get_int("epochs", 1);
  const int threads = core::configure_threads(args.get_int("threads", 2));
  const core::LoadedCheckpoint checkpoint = core::load_checkpoint(args.get("checkpoint"));
  const auto texts = bench::first_texts(args.get("data"), n);
  const core::EncodedTexts enc =
      bench::write_ids(checkpoint, texts, args.get("ids-out", "/dev/null"));
  const core::ModelConfig& mc = checkpoint.model_config;

  torch::manual_seed(1);
  core::Classifier model = core::make_classifier(mc);
  const torch::Tensor targets = torch::softmax(torch::randn({n, mc.num_labels}) * 2, 1);
  const torch::Tensor weights = torch::rand({n});
  core::TrainerOptions o;
  o.epochs = epochs;
  o.batch_size = 32;
  o.eval_every = 0;
  o.bucket_batches = args.get_int("bucket-batches", 0);
  const std::string precision = args.get("precision", "fp32");
  if (precision != "fp32" && precision != "bf16") throw std::invalid_argument("--precision must be fp32 or bf16");
  o.bf16 = precision == "bf16";
  o.log_interval_s = 1e9;
  const auto start = std::chrono::steady_clock::now();
  const bench::Profile profile(args);
  const core::TrainResult r =
      core::train_classifier(*model, {enc.input_ids, enc.attention_mask},
                             core::weighted_kl_loss(targets, weights), nullptr, o, torch::kCPU);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "{\"bench\": \"student\", \"implementation\": \"muki\", \"model\": \"" << mc.type
            << "\", \"threads\": " << threads << ", \"examples\": " << n << ", \"epochs\": " << epochs
            << ", \"batch_size\": 32, \"bucket_batches\": " << o.bucket_batches << ", \"precision\": \"" << precision
            << "\", \"steps\": " << r.steps << ", \"seconds\": " << s
            << ", \"examples_per_s\": " << static_cast<double>(n * epochs) / s << "}" << std::endl;
  return 0;
} catch (const std::exception& e) {
  std::cerr << "muki_bench_student: " << e.what() << "\n";
  return 1;
}
