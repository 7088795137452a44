// Run-time device choice and torch's process-wide state (threads, determinism, the default
// generator) for muki's LibTorch layer (muki_model) and the teacher plugins that run torch.
//
// The same code path runs on CPU and CUDA: callers resolve a device once from the config string
// and move models and batches to it; nothing else in the model layer branches on the device.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>

#include <torch/types.h>

namespace muki::core {

// Parses "auto" | "cpu" | "cuda" | "cuda:N" (case-insensitive; "cuda:" without N is refused). "auto" is cuda:0 when
// torch::cuda::is_available(), else the CPU. Throws std::invalid_argument when the string is
// malformed, when CUDA is asked for and this LibTorch sees no CUDA device, or when N is not a
// visible device; the message names the string and what is available.
torch::Device resolve_device(const std::string& spec);

// Sets torch's intra-op thread count (a process-wide setting): `threads` > 0 as given, 0 = the
// machine's hardware cores. Returns the count set. Throws std::invalid_argument when threads < 0.
// LibTorch defaults to ONE thread in some builds (Debian's among them), so every entry point that
// runs models calls this explicitly.
int configure_threads(int64_t threads);

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
// with torch::cuda::manual_seed_all (not restored). A mutex keeps two seeded passes (two teachers
// on two host threads) from interleaving; it is per shared object, so two plugin libraries that
// link this layer each have their own.
class SeededGeneratorGuard {
 public:
  SeededGeneratorGuard(const torch::Device& device, uint64_t seed);
  ~SeededGeneratorGuard();
  SeededGeneratorGuard(const SeededGeneratorGuard&) = delete;
  SeededGeneratorGuard& operator=(const SeededGeneratorGuard&) = delete;

 private:
  std::unique_lock<std::mutex> lock_;
  torch::Tensor saved_state_;  // CPU only
  bool restore_ = false;
};

}  // namespace muki::core
