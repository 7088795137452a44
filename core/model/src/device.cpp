#include "muki/model/device.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/cuda.h>

namespace muki::core {

namespace {

std::recursive_mutex& own_lock() {
  static std::recursive_mutex m;
  return m;
}
void lock_own() { own_lock().lock(); }
void unlock_own() { own_lock().unlock(); }

void (*g_lock)() = &lock_own;
void (*g_unlock)() = &unlock_own;

}  // namespace

torch::Device resolve_device(const std::string& spec) {
  std::string s = spec;
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (s == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::kCPU;
  if (s == "cpu") return torch::kCPU;
  if (s == "cuda" || s.rfind("cuda:", 0) == 0) {
    int index = 0;
    if (s.size() > 4) {
      const std::string digits = s.size() > 5 ? s.substr(5) : std::string();
      if (digits.empty() || digits.size() > 3 ||
          !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
        throw std::invalid_argument("device \"" + spec + "\" is not cuda:N");
      index = std::stoi(digits);
    }
    if (!torch::cuda::is_available())
      throw std::invalid_argument("device \"" + spec +
                                  "\": this LibTorch sees no CUDA device (use \"cpu\" or \"auto\")");
    const auto count = torch::cuda::device_count();
    if (static_cast<size_t>(index) >= count)
      throw std::invalid_argument("device \"" + spec + "\": only " + std::to_string(count) +
                                  " CUDA device(s) visible");
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  throw std::invalid_argument("device must be \"auto\", \"cpu\", \"cuda\" or \"cuda:N\", not \"" +
                              spec + "\"");
}

int configure_threads(int64_t threads) {
  if (threads < 0)
    throw std::invalid_argument("threads must be >= 0 (0 = all cores), got " +
                                std::to_string(threads));
  int n = static_cast<int>(threads);
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  at::set_num_threads(n);
  return n;
}

void configure_determinism(bool on) {
  if (on) setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", /*overwrite=*/0);
  at::globalContext().setDeterministicAlgorithms(on, /*warn_only=*/false);
}

void share_process_state_lock(void (*lock)(), void (*unlock)()) {
  g_lock = lock;
  g_unlock = unlock;
}

SeededGeneratorGuard::SeededGeneratorGuard(const torch::Device& device, uint64_t seed) {
  g_lock();
  try {
    if (device.is_cuda()) {
      torch::cuda::manual_seed_all(seed);
    } else {
      auto generator = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> g(generator.mutex());
      saved_state_ = generator.get_state();
      generator.set_current_seed(seed);
      restore_ = true;
    }
  } catch (...) {  // no destructor runs for a constructor that throws
    g_unlock();
    throw;
  }
}

SeededGeneratorGuard::~SeededGeneratorGuard() {
  if (restore_) {
    auto generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> g(generator.mutex());
    generator.set_state(saved_state_);
  }
  g_unlock();
}

}  // namespace muki::core
