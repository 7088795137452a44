// Teacher-pass throughput: examples/s of muki's teacher pass over real texts, through the
// registry and the `native` adapter (tokenization included; K stochastic passes as one forward
// call over batch-size rows, the texts replicated K times, plus the deterministic pass), for each K and each
// number of teachers. No cache.
//   muki_bench_teacher_pass --checkpoint DIR [--checkpoint DIR]... --data TSV [--examples 512]
//       [--samples 1,4,16] [--batch-size ROWS (0 = the adapter's default)] [--threads 2] [--ids-out FILE]
//       [--texts-per-call 256] [--precision fp32|bf16] [--adaptive T (the host's adaptive K,
//       uncertainty.adaptive_tolerance; 0 = exact K)]
//       [--profile TRACE (LibTorch's operator profiler over the timed passes; bench/profile.sh)]
// Prints one JSON object. --ids-out writes the first checkpoint's token ids for bench/reference.py.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>

#include <muki/experiment/teacher_pass.h>
#include <muki/model/device.h>
#include <muki/registry/registry.h>

#include "bench_common.h"

int main(int argc, char** argv) try {
  using namespace muki;
  core::tune_allocator();  // as muki does
  bench::log_to_stderr();
  const bench::Args args(argc, argv);
  const auto checkpoints = args.all("checkpoint");
  if (checkpoints.empty()) throw std::invalid_argument("--checkpoint is required");
  const int64_t n = args.get_int("examples", 512), batch = args.get_int("batch-size", 0);
  const int threads = core::configure_threads(args.get_int("threads", 2));
  const std::string precision = args.get("precision", "fp32");
  const double adaptive = std::stod(args.get("adaptive", "0"));
  const auto texts = bench::first_texts(args.get("data"), n);

  registry::Registry registry;
  for (const auto& failure : registry.scan(registry::default_plugin_folders()))
    std::cerr << failure.message << "\n";
  std::vector<std::unique_ptr<registry::TeacherInstance>> teachers;
  for (size_t i = 0; i < checkpoints.size(); ++i)
    teachers.push_back(registry.create_teacher(
        "native", {"t" + std::to_string(i),
                   "checkpoint = \"" + checkpoints[i] + "\"\ndevice = \"cpu\"\nthreads = " +
                       std::to_string(threads) + "\nbatch_size = " + std::to_string(batch) +
                       "\nprecision = \"" + precision + "\"\n",
                   ".", 1}));
  if (auto ids = args.all("ids-out"); !ids.empty())
    bench::write_ids(core::load_checkpoint(checkpoints[0]), texts, ids.back());

  // Warm-up: first calls allocate and pick kernels.
  std::vector<float> scratch(4 * 8 * teachers[0]->labels().size());
  teachers[0]->predict(std::vector<std::string>(texts.begin(), texts.begin() + 8), 4, 1, scratch.data());

  const int64_t texts_per_call = args.get_int("texts-per-call", core::TeacherPassOptions{}.batch_size);
  std::ostringstream out;
  out << "{\"bench\": \"teacher_pass\", \"implementation\": \"muki\", \"threads\": " << threads
      << ", \"examples\": " << n << ", \"precision\": \"" << precision << "\", \"adaptive_tolerance\": " << adaptive
      << ", \"texts_per_call\": " << texts_per_call << ", \"rows_per_forward\": " << (batch == 0 ? std::string("\"auto\"") : std::to_string(batch))
      << ", \"note\": \"tokenization included; K passes as one forward over rows_per_forward rows "
         "(texts x K), plus the deterministic pass\", \"results\": [";
  bool first = true;
  const bench::Profile profile(args);
  for (int64_t k : args.get_ints("samples", "1,4,16")) {
    core::TeacherPassOptions options;
    options.samples = static_cast<uint32_t>(k);
    options.batch_size = texts_per_call;  // the adapter buckets and splits them by batch_size
    options.adaptive_tolerance = adaptive;
    for (size_t count = 1; count <= teachers.size(); ++count) {
      int64_t drawn = 0, asked = 0;
      const auto start = std::chrono::steady_clock::now();
      for (size_t t = 0; t < count; ++t) {
        core::TeacherPassStats stats;
        core::run_teacher_pass(*teachers[t], texts, "t" + std::to_string(t), options, &stats);
        drawn += stats.samples_drawn;
        asked += stats.samples_asked;
      }
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      out << (first ? "" : ", ") << "{\"teachers\": " << count << ", \"samples\": " << k
          << ", \"seconds\": " << s << ", \"examples_per_s\": " << static_cast<double>(n) / s;
      if (asked > 0)  // the share of the K passes drawn: below 1 only with adaptive K
        out << ", \"samples_drawn_fraction\": " << static_cast<double>(drawn) / static_cast<double>(asked);
      out << "}";
      first = false;
      std::cerr << "muki teacher pass: " << count << " teacher(s), K = " << k << ": " << s << " s\n";
    }
  }
  out << "]}";
  std::cout << out.str() << std::endl;
  return 0;
} catch (const std::exception& e) {
  std::cerr << "muki_bench_teacher_pass: " << e.what() << "\n";
  return 1;
}
