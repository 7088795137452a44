#include "muki/model/device.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <torch/version.h>
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

// The GPU of this process when one is not named: in a distributed job, the launcher's LOCAL_RANK
// (modulo the devices visible, as PyTorch's examples do), else 0.
// The environment variable `name` when it is a whole non-negative integer; else nothing (whoever
// owns the variable reports a malformed one).
std::optional<long> whole_number_variable(const char* name) {
  const char* text = std::getenv(name);
  if (text == nullptr) return std::nullopt;
  char* end = nullptr;
  const long value = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || value < 0) return std::nullopt;
  return value;
}

c10::DeviceIndex local_cuda_index() {
  // Only in a job (RANK set too): a process started from inside one keeps cuda:0.
  if (std::getenv("RANK") == nullptr || !torch::cuda::is_available()) return 0;
  const std::optional<long> rank = whole_number_variable("LOCAL_RANK");  // distributed_environment() names a bad one
  if (!rank) return 0;
  return static_cast<c10::DeviceIndex>(*rank % static_cast<long>(torch::cuda::device_count()));
}

}  // namespace

torch::Device resolve_device(const std::string& spec) {
  std::string s = spec;
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (s == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA, local_cuda_index()) : torch::kCPU;
  if (s == "cpu") return torch::kCPU;
  if (s == "cuda" || s.rfind("cuda:", 0) == 0) {
    int index = local_cuda_index();
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
    throw std::invalid_argument("threads must be >= 0 (0 = OMP_NUM_THREADS if set, else all cores), got " +
                                std::to_string(threads));
  int n = static_cast<int>(threads);
  if (const std::optional<long> omp = whole_number_variable("OMP_NUM_THREADS"); n == 0 && omp && *omp <= 4096)
    n = static_cast<int>(*omp);  // 0 stays 0: all cores
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  at::set_num_threads(n);
  return n;
}

void tune_allocator() {
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum (half its 64 MiB heap size)
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

namespace {
// LibTorch 2.4 replaced the per-device autocast calls by ones taking the device type.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool autocast_enabled(bool cuda) { return at::autocast::is_autocast_enabled(cuda ? at::kCUDA : at::kCPU); }
void set_autocast(bool cuda, bool on) { at::autocast::set_autocast_enabled(cuda ? at::kCUDA : at::kCPU, on); }
c10::ScalarType autocast_dtype(bool cuda) { return at::autocast::get_autocast_dtype(cuda ? at::kCUDA : at::kCPU); }
void set_autocast_dtype(bool cuda, c10::ScalarType t) { at::autocast::set_autocast_dtype(cuda ? at::kCUDA : at::kCPU, t); }
#else
bool autocast_enabled(bool cuda) { return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled(); }
void set_autocast(bool cuda, bool on) { cuda ? at::autocast::set_enabled(on) : at::autocast::set_cpu_enabled(on); }
c10::ScalarType autocast_dtype(bool cuda) {
  return cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
}
void set_autocast_dtype(bool cuda, c10::ScalarType t) {
  cuda ? at::autocast::set_autocast_gpu_dtype(t) : at::autocast::set_autocast_cpu_dtype(t);
}
#endif
}  // namespace

Bf16Autocast::Bf16Autocast(const torch::Device& device, bool bf16) : active_(bf16), cuda_(device.is_cuda()) {
  if (!active_) return;
  was_enabled_ = autocast_enabled(cuda_);
  was_dtype_ = autocast_dtype(cuda_);
  set_autocast(cuda_, true);
  set_autocast_dtype(cuda_, c10::ScalarType::BFloat16);
  at::autocast::increment_nesting();
}

Bf16Autocast::~Bf16Autocast() {
  if (!active_) return;
  // Leaving the outermost autocast region drops the casts of the weights it cached.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_autocast(cuda_, was_enabled_);
  set_autocast_dtype(cuda_, was_dtype_);
}

std::string bf16_slowness(const torch::Device& device) {
  static const bool native = [] {
    std::ifstream cpuinfo("/proc/cpuinfo");
    std::string line;
    while (std::getline(cpuinfo, line)) {
      if (line.rfind("flags", 0) != 0) continue;
      std::istringstream flags(line.substr(line.find(':') + 1));
      for (std::string flag; flags >> flag;)
        if (flag == "avx512_bf16" || flag == "amx_bf16") return true;
      return false;  // every core lists the same flags
    }
    return false;
  }();
  if (device.is_cuda() || native) return "";
  return "precision bf16 on a CPU without native bfloat16 (no avx512_bf16 or amx_bf16 flag): slower than fp32 here";
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
