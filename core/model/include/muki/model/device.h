// Run-time device choice and torch's process-wide state (threads, determinism, the default
// generator) for muki's LibTorch layer (muki_model) and the teacher plugins that run torch.
//
// The same code path runs on CPU and CUDA: callers resolve a device once from the config string
// and move models and batches to it; nothing else in the model layer branches on the device.
#pragma once

#include <cstdint>
#include <string>

#include <torch/types.h>

namespace muki::core {

// Parses "auto" | "cpu" | "cuda" | "cuda:N" (case-insensitive; "cuda:" without N is refused).
// "auto" is CUDA when torch::cuda::is_available(), else the CPU. "auto" and "cuda" take device
// LOCAL_RANK mod the visible devices in a job (a launcher set RANK and LOCAL_RANK: one GPU a
// rank), else 0. Throws std::invalid_argument when the string is
// malformed, when CUDA is asked for and this LibTorch sees no CUDA device, or when N is not a
// visible device; the message names the string and what is available.
torch::Device resolve_device(const std::string& spec);

// Sets torch's intra-op thread count (a process-wide setting): `threads` > 0 as given, 0 = the
// value of OMP_NUM_THREADS when that is a positive integer (what a script running several muki
// processes side by side sets; since 0.6), else the machine's hardware cores. Returns the count set. Throws std::invalid_argument when threads < 0.
// LibTorch defaults to ONE thread in some builds (Debian's among them), so every entry point that
// runs models calls this explicitly.
int configure_threads(int64_t threads);

// Keeps the memory of freed tensors in the process (glibc's allocator; elsewhere a no-op): large
// blocks come from the heap rather than one mmap each (up to glibc's 32 MiB limit), and the heap
// is not handed back to the kernel while it is below 1 GiB. A forward pass frees and allocates
// the same few-MB activations hundreds of times a second; with glibc's defaults each one can be
// an mmap/munmap or a trim and, on first touch, page faults. Measured on the 2-core machine
// (bench/README.md): the quickstart teacher's deterministic pass 362 -> 1,266 texts/s. Call it
// once, first thing in main(), before any thread starts; process-wide.
void tune_allocator();

// Mixed precision for inference passes and (muki 0.10) training forwards, for the lifetime of the
// guard, on this thread: when `bf16`, torch's autocast for `device` runs matrix products (linear,
// matmul, convolutions) in bfloat16 and keeps reductions and normalisations in float32; otherwise
// nothing changes. The previous state comes back when the guard goes. Covers LibTorch 1.13's
// per-device calls and 2.x's.
class Bf16Autocast {
 public:
  Bf16Autocast(const torch::Device& device, bool bf16);
  ~Bf16Autocast();
  Bf16Autocast(const Bf16Autocast&) = delete;
  Bf16Autocast& operator=(const Bf16Autocast&) = delete;

 private:
  bool active_ = false;
  bool cuda_ = false;
  bool was_enabled_ = false;
  c10::ScalarType was_dtype_ = c10::ScalarType::Float;
};

// Why bf16 (Bf16Autocast) would be slow on `device`, for a warning: non-empty on a CPU that does
// not compute bfloat16 natively (no AVX512_BF16 or AMX-BF16 in /proc/cpuinfo's flags, or no
// /proc/cpuinfo), where bf16 matrix products are emulated and slower than float32; empty on CUDA
// and on CPUs with native bf16. (Added in muki 0.10.)
std::string bf16_slowness(const torch::Device& device);

// The deterministic switch ([experiment].deterministic): torch's deterministic algorithms (an op
// without a deterministic implementation then throws instead of varying), and the cuBLAS workspace
// setting they need on CUDA (set before cuBLAS starts, unless the environment already has one).
// Together with a fixed thread count, a run then gives the same numbers every time, resumed or
// not. Process-wide.
void configure_determinism(bool on);

// Seeds the default generator of `device` for the lifetime of the guard, for a stochastic forward
// call: dropout draws from torch's process-wide default generator (an aten op cannot be handed a
// generator). On the CPU the generator's previous state comes back when the guard goes, so other
// torch users in the process see no change; on CUDA every device's default generator is seeded
// with torch::cuda::manual_seed_all (not restored). The guard holds the process-state lock (see
// share_process_state_lock) for its lifetime, so two seeded passes (two teachers on two host
// threads, in one plugin library or in two) never interleave.
class SeededGeneratorGuard {
 public:
  SeededGeneratorGuard(const torch::Device& device, uint64_t seed);
  ~SeededGeneratorGuard();
  SeededGeneratorGuard(const SeededGeneratorGuard&) = delete;
  SeededGeneratorGuard& operator=(const SeededGeneratorGuard&) = delete;

 private:
  torch::Tensor saved_state_;  // CPU only
  bool restore_ = false;
};

// The lock SeededGeneratorGuard takes around torch's process-wide generator. Every shared object
// that links this layer has its own copy of it, so by default each has its own (recursive) lock,
// which does not exclude another library's passes. The host installs the SDK's process-state
// lock (muki_host_api::lock_process_state, ABI 1.1) in its own copy, and a teacher plugin in its
// copy at library init, so that every copy in the process takes ONE lock. Both must be non-null;
// install it before any guard exists.
void share_process_state_lock(void (*lock)(), void (*unlock)());

}  // namespace muki::core
