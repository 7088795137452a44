#include "muki/model/process_group.h"

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <stdexcept>

#include <spdlog/spdlog.h>

#if MUKI_WITH_C10D
#ifndef USE_C10D_GLOO  // torch's CMake package defines it where its library has Gloo
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

namespace muki::core {

namespace {

using Clock = std::chrono::steady_clock;

const char* variable(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : nullptr;
}

int64_t integer_variable(const char* name, int64_t low, int64_t high) {
  const char* text = variable(name);
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < low || value > high)
    throw std::invalid_argument(std::string(name) + "=" + text + " in the environment is not an integer in [" +
                                std::to_string(low) + ", " + std::to_string(high) + "]");
  return value;
}

constexpr const char* kLaunchVariables =
    "a distributed launch (torchrun, srun, a Kubernetes job) sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT "
    "together; unset them all for a single process";

}  // namespace

std::optional<DistributedEnvironment> distributed_environment() {
  // WORLD_SIZE=1 alone is what some platforms export for any process: not a job.
  const char* world = variable("WORLD_SIZE");
  if (variable("RANK") == nullptr && (world == nullptr || std::string(world) == "1")) return std::nullopt;
  for (const char* name : {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"})
    if (variable(name) == nullptr)
      throw std::invalid_argument(std::string(name) + " is not set but " +
                                  (variable("RANK") != nullptr ? "RANK" : "WORLD_SIZE") + " is: " + kLaunchVariables);
  DistributedEnvironment env;
  env.world_size = static_cast<int>(integer_variable("WORLD_SIZE", 1, 65536));
  env.rank = static_cast<int>(integer_variable("RANK", 0, env.world_size - 1));
  env.local_rank = variable("LOCAL_RANK") != nullptr ? static_cast<int>(integer_variable("LOCAL_RANK", 0, 65535)) : 0;
  env.master_addr = variable("MASTER_ADDR");
  env.master_port = static_cast<uint16_t>(integer_variable("MASTER_PORT", 1, 65535));
  return env;
}

#if MUKI_WITH_C10D

bool distributed_available() { return true; }

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
  std::thread heartbeat;
  std::mutex mutex;
  std::condition_variable wake;
  bool stop = false;
};

namespace {

std::string heartbeat_key(int rank) { return "muki/heartbeat/" + std::to_string(rank); }

// An exception's message; a c10::Error's without its stack of frames.
std::string message_of(const std::exception& e) {
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) return c10->what_without_backtrace();
  return e.what();
}

// Whether torchrun's agent serves the job's store (rank 0 connects to it like the others).
bool agent_serves_store() {
  const char* agent = variable("TORCHELASTIC_USE_AGENT_STORE");
  return agent != nullptr && std::string(agent) == "True";
}

// The job's store, as PyTorch's launch makes it: every rank's main connection counts as one of
// world_size workers, and rank 0 serves it, unless torchrun's agent serves it already (at
// MASTER_PORT, TORCHELASTIC_USE_AGENT_STORE=True). Keys carry the attempt (torchrun restarts a
// failed job with TORCHELASTIC_RESTART_COUNT + 1), so an attempt never reads a previous one's.
// `extra`: one more connection, not counted as a worker (the heartbeat's).
c10::intrusive_ptr<c10d::Store> connect_store(const DistributedEnvironment& env, bool extra,
                                              std::chrono::milliseconds timeout) {
  const char* attempt = variable("TORCHELASTIC_RESTART_COUNT");
  c10d::TCPStoreOptions options;
  options.port = env.master_port;
  options.isServer = env.rank == 0 && !extra && !agent_serves_store();
  options.waitWorkers = !extra;
  if (!extra) options.numWorkers = static_cast<size_t>(env.world_size);
  options.timeout = timeout;
  return c10::make_intrusive<c10d::PrefixStore>(
      std::string("muki/attempt_") + (attempt != nullptr ? attempt : "0"),
      c10::make_intrusive<c10d::TCPStore>(env.master_addr, options));
}

}  // namespace

ProcessGroup::ProcessGroup(DistributedEnvironment env, ProcessGroupOptions options)
    : env_(std::move(env)), options_(std::move(options)), backend_("gloo"), impl_(std::make_unique<Impl>()) {}

std::unique_ptr<ProcessGroup> ProcessGroup::join(const DistributedEnvironment& env, const ProcessGroupOptions& options) {
  if (options.backend != "auto" && options.backend != "gloo")
    throw std::invalid_argument("distributed.backend = \"" + options.backend +
                                "\": this build of muki has the \"gloo\" backend only (\"auto\" picks it; CUDA "
                                "tensors are exchanged through host memory)");
  std::unique_ptr<ProcessGroup> group(new ProcessGroup(env, options));
  Impl& impl = *group->impl_;
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(options.timeout).count();
  spdlog::info("rank {}/{}: joining the job at {} ({}), timeout {} s", env.rank, env.world_size, where,
               agent_serves_store() ? "torchrun's agent serves the store"
                                    : env.rank == 0 ? "serving its store" : "rank 0 serves the store", seconds);
  try {
    impl.store = connect_store(env, false, options.timeout);
  } catch (const std::exception& e) {
    throw std::runtime_error("rank " + std::to_string(env.rank) + ": the job's store at " + where +
                             " (MASTER_ADDR:MASTER_PORT) could not be " +
                             (env.rank == 0 ? "served or did not see every rank join" : "reached") + " within " +
                             std::to_string(seconds) + " s: " + message_of(e));
  }
  try {
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(options.timeout);
    const char* interface = variable("GLOO_SOCKET_IFNAME");
    gloo_options->devices.push_back(interface != nullptr
                                        ? c10d::ProcessGroupGloo::createDeviceForInterface(interface)
                                        : c10d::ProcessGroupGloo::createDefaultDevice());
    impl.gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(
        c10::make_intrusive<c10d::PrefixStore>("gloo", impl.store), env.rank, env.world_size, gloo_options);
  } catch (const std::exception& e) {
    throw std::runtime_error("rank " + std::to_string(env.rank) + ": Gloo could not connect the " +
                             std::to_string(env.world_size) + " ranks within " + std::to_string(seconds) +
                             " s (set GLOO_SOCKET_IFNAME to the interface the ranks reach each other on): " + message_of(e));
  }
  // The heartbeat has a connection of its own: a long wait on the main one must not silence it.
  // A failed beat is tried again a second later (a reconnection each time): a passing network
  // error must not make a living rank look dead. When the store is gone for good, the main thread
  // learns it at its next collective.
  group->impl_->heartbeat = std::thread([&impl, env, timeout = options.timeout] {
    c10::intrusive_ptr<c10d::Store> store;
    std::unique_lock<std::mutex> lock(impl.mutex);
    while (!impl.stop) {
      lock.unlock();  // the network call without the lock: the destructor must not wait on it
      try {
        if (!store) store = connect_store(env, true, std::min(timeout, std::chrono::milliseconds(5000)));
        store->add(heartbeat_key(env.rank), 1);
      } catch (const std::exception&) {
        store.reset();
      }
      lock.lock();
      impl.wake.wait_for(lock, std::chrono::seconds(1));
    }
  });
  spdlog::info("rank {}/{}: joined ({} backend)", env.rank, env.world_size, group->backend_);
  return group;
}

ProcessGroup::~ProcessGroup() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stop = true;
  }
  impl_->wake.notify_all();
  if (impl_->heartbeat.joinable()) impl_->heartbeat.join();
}

void ProcessGroup::finish() {
  // The rank that serves the store waits for every rank to be done with it: a peer still polling
  // when the store goes would report a failure. The others leave at once.
  arrive("the end of the job", env_.rank == 0 && !agent_serves_store());
}

void ProcessGroup::arrive(const std::string& what, bool wait) {
  const std::string key = "muki/arrive/" + std::to_string(++sequence_);
  std::vector<int64_t> beats(static_cast<size_t>(env_.world_size), -1);
  std::vector<Clock::time_point> changed(beats.size(), Clock::now());
  int silent = -1;  // a peer whose heartbeat stopped
  try {
    impl_->store->add(key, 1);
    auto pause = std::chrono::milliseconds(1);
    auto last_check = Clock::now() - std::chrono::seconds(1);
    while (wait && silent < 0 && impl_->store->add(key, 0) < env_.world_size) {
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds(50));
      if (Clock::now() - last_check < std::chrono::seconds(1)) continue;
      last_check = Clock::now();
      for (int peer = 0; peer < env_.world_size && silent < 0; ++peer) {
        if (peer == env_.rank) continue;
        const auto p = static_cast<size_t>(peer);
        const int64_t beat = impl_->store->add(heartbeat_key(peer), 0);
        if (beat != beats[p]) {
          beats[p] = beat;
          changed[p] = Clock::now();
        } else if (Clock::now() - changed[p] > options_.timeout) {
          silent = peer;
        }
      }
    }
  } catch (const std::exception& e) {
    fail(what, e);
  }
  if (silent >= 0)
    throw std::runtime_error(
        "rank " + std::to_string(env_.rank) + ": rank " + std::to_string(silent) + " stopped answering (no heartbeat for " +
        std::to_string(std::chrono::duration_cast<std::chrono::seconds>(options_.timeout).count()) +
        " s, distributed.timeout_s) while the ranks met for " + what +
        "; it died or lost its connection (see its log). What was finished is kept: run the job again to resume");
}

void ProcessGroup::fail(const std::string& what, const std::exception& e) {
  const std::string self = "rank " + std::to_string(env_.rank) + ": " + what + " failed";
  const std::string resume = "; what was finished is kept: run the job again to resume";
  // Which peer is gone: the one whose heartbeat does not move over 3 s (it beats every second).
  std::vector<int> gone;
  try {
    std::vector<int64_t> before;
    for (int peer = 0; peer < env_.world_size; ++peer) before.push_back(impl_->store->add(heartbeat_key(peer), 0));
    std::this_thread::sleep_for(std::chrono::seconds(3));
    for (int peer = 0; peer < env_.world_size; ++peer)
      if (peer != env_.rank && impl_->store->add(heartbeat_key(peer), 0) == before[static_cast<size_t>(peer)])
        gone.push_back(peer);
  } catch (const std::exception&) {
    throw std::runtime_error(self + ": the job's store at " + env_.master_addr + ":" + std::to_string(env_.master_port) +
                             (agent_serves_store() ? " (served by torchrun's agent)" : ", served by rank 0,") +
                             " is gone: rank 0 or the launcher died or ended (see rank 0's log)" + resume + " [" +
                             message_of(e) + "]");
  }
  std::string names;
  for (int r : gone) names += (names.empty() ? "" : ", ") + std::to_string(r);
  if (gone.empty()) throw std::runtime_error(self + ": " + message_of(e) + resume);
  throw std::runtime_error(self + ": rank" + (gone.size() > 1 ? "s " : " ") + names +
                           (gone.size() > 1 ? " are" : " is") + " gone (no heartbeat); it died or was killed" + resume +
                           " [" + message_of(e) + "]");
}

std::vector<std::string> ProcessGroup::all_gather(const std::string& bytes) {
  arrive("an exchange of results");
  try {
    const int world = env_.world_size;
    auto exchange = [&](at::Tensor input) {
      std::vector<std::vector<at::Tensor>> outputs(1);
      for (int r = 0; r < world; ++r) outputs[0].push_back(torch::empty_like(input));
      std::vector<at::Tensor> inputs{input};
      impl_->gloo->allgather(outputs, inputs)->wait();
      return outputs[0];
    };
    const std::vector<at::Tensor> sizes =
        exchange(torch::tensor({static_cast<int64_t>(bytes.size())}, torch::kLong));
    int64_t longest = 1;  // Gloo is not asked to move empty tensors
    for (const at::Tensor& s : sizes) longest = std::max(longest, s.item<int64_t>());
    at::Tensor padded = torch::zeros({longest}, torch::kUInt8);
    std::memcpy(padded.data_ptr(), bytes.data(), bytes.size());
    const std::vector<at::Tensor> all = exchange(padded);
    std::vector<std::string> out;
    for (int r = 0; r < world; ++r)
      out.emplace_back(static_cast<const char*>(all[static_cast<size_t>(r)].data_ptr()),
                       static_cast<size_t>(sizes[static_cast<size_t>(r)].item<int64_t>()));
    return out;
  } catch (const std::exception& e) {
    fail("an exchange of results", e);
  }
}

std::string ProcessGroup::broadcast(const std::string& bytes, int root) {
  arrive("a broadcast from rank " + std::to_string(root));
  try {
    std::vector<at::Tensor> size{torch::tensor({static_cast<int64_t>(bytes.size())}, torch::kLong)};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    impl_->gloo->broadcast(size, options)->wait();
    const int64_t n = size[0].item<int64_t>();
    if (n == 0) return {};
    std::vector<at::Tensor> data{torch::empty({n}, torch::kUInt8)};
    if (env_.rank == root) std::memcpy(data[0].data_ptr(), bytes.data(), bytes.size());
    impl_->gloo->broadcast(data, options)->wait();
    return std::string(static_cast<const char*>(data[0].data_ptr()), static_cast<size_t>(n));
  } catch (const std::exception& e) {
    fail("a broadcast from rank " + std::to_string(root), e);
  }
}

namespace {

// The tensors as one float32 CPU buffer, and back.
at::Tensor flatten(const std::vector<torch::Tensor>& tensors) {
  std::vector<at::Tensor> flat;
  for (const torch::Tensor& t : tensors) flat.push_back(t.detach().reshape({-1}).to(torch::kCPU, torch::kFloat));
  return torch::cat(flat);
}

void unflatten(const at::Tensor& buffer, const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  int64_t offset = 0;
  for (const torch::Tensor& t : tensors) {
    t.copy_(buffer.narrow(0, offset, t.numel()).view(t.sizes()));
    offset += t.numel();
  }
}

}  // namespace

void ProcessGroup::broadcast(const std::vector<torch::Tensor>& tensors, int root) {
  if (tensors.empty()) return;
  arrive("a broadcast of weights from rank " + std::to_string(root));
  try {
    std::vector<at::Tensor> buffer{flatten(tensors)};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    impl_->gloo->broadcast(buffer, options)->wait();
    unflatten(buffer[0], tensors);
  } catch (const std::exception& e) {
    fail("a broadcast of weights from rank " + std::to_string(root), e);
  }
}

void ProcessGroup::barrier() { arrive("a barrier"); }

struct GradientReducer::Bucket {
  at::Tensor buffer;               // float32, CPU: the bucket's gradients, flattened
  std::vector<size_t> parameters;  // its parameters
  size_t arrived = 0;
  c10::intrusive_ptr<c10d::Work> sum;  // the running sum, once launched
};

GradientReducer::GradientReducer(ProcessGroup& group, std::vector<torch::Tensor> parameters, int64_t bucket_bytes)
    : group_(group), parameters_(std::move(parameters)), bucket_of_(parameters_.size()), offset_of_(parameters_.size()) {
  // Reverse order: the last layers' gradients come first in backward.
  parameters_.erase(std::remove_if(parameters_.begin(), parameters_.end(),
                                   [](const torch::Tensor& p) { return !p.requires_grad(); }),
                    parameters_.end());  // frozen: no gradient to sum, and no hook possible
  bucket_of_.resize(parameters_.size());
  offset_of_.resize(parameters_.size());
  for (size_t i = parameters_.size(); i-- > 0;) {
    const int64_t bytes = parameters_[i].numel() * 4;
    if (buckets_.empty() || (buckets_.back()->buffer.numel() * 4 + bytes > bucket_bytes && !buckets_.back()->parameters.empty()))
      buckets_.push_back(std::make_unique<Bucket>());
    Bucket& b = *buckets_.back();
    bucket_of_[i] = buckets_.size() - 1;
    offset_of_[i] = b.buffer.defined() ? b.buffer.numel() : 0;
    b.parameters.push_back(i);
    b.buffer = torch::zeros({offset_of_[i] + parameters_[i].numel()}, torch::kFloat);
  }
  for (size_t i = 0; i < parameters_.size(); ++i)
    hooks_.push_back(parameters_[i].register_hook([this, i](torch::Tensor grad) { arrived(i, grad); }));
}

GradientReducer::~GradientReducer() {
  for (size_t i = 0; i < parameters_.size(); ++i) parameters_[i].remove_hook(hooks_[i]);
}

void GradientReducer::arrived(size_t parameter, const torch::Tensor& grad) {
  Bucket& b = *buckets_[bucket_of_[parameter]];
  b.buffer.narrow(0, offset_of_[parameter], grad.numel()).copy_(grad.detach().reshape({-1}));
  ++b.arrived;
  launch_complete_buckets(false);
}

// In bucket order only: every rank must start the same sums in the same order.
void GradientReducer::launch_complete_buckets(bool all) {
  try {
    while (launched_ < buckets_.size() && (all || buckets_[launched_]->arrived == buckets_[launched_]->parameters.size())) {
      std::vector<at::Tensor> buffer{buckets_[launched_]->buffer};
      buckets_[launched_]->sum = group_.impl_->gloo->allreduce(buffer);
      ++launched_;
    }
  } catch (const std::exception& e) {
    group_.fail("a gradient exchange", e);
  }
}

double GradientReducer::finish(double value) {
  launch_complete_buckets(true);
  std::vector<at::Tensor> loss{torch::tensor({value}, torch::kDouble)};
  try {
    for (auto& b : buckets_) b->sum->wait();
    group_.impl_->gloo->allreduce(loss)->wait();
  } catch (const std::exception& e) {
    group_.fail("a gradient exchange", e);
  }
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    torch::Tensor& p = parameters_[i];
    const Bucket& b = *buckets_[bucket_of_[i]];
    const at::Tensor sum = b.buffer.narrow(0, offset_of_[i], p.numel()).view(p.sizes());
    if (p.grad().defined()) p.mutable_grad().copy_(sum);
    else p.mutable_grad() = sum.to(p.device(), p.scalar_type()).clone();
  }
  for (auto& b : buckets_) {
    b->buffer.zero_();
    b->arrived = 0;
    b->sum.reset();
  }
  launched_ = 0;
  return loss[0].item<double>();
}

#else  // no c10d Gloo in this LibTorch

bool distributed_available() { return false; }

struct ProcessGroup::Impl {};

ProcessGroup::ProcessGroup(DistributedEnvironment env, ProcessGroupOptions options)
    : env_(std::move(env)), options_(std::move(options)) {}
ProcessGroup::~ProcessGroup() = default;

std::unique_ptr<ProcessGroup> ProcessGroup::join(const DistributedEnvironment&, const ProcessGroupOptions&) {
  throw std::invalid_argument(
      "RANK and WORLD_SIZE are set, but this build of muki has no distributed runtime (LibTorch's c10d "
      "with Gloo and its headers were not found at configure time); unset them to run in one process");
}
void ProcessGroup::arrive(const std::string&, bool) {}
void ProcessGroup::finish() {}
void ProcessGroup::fail(const std::string& what, const std::exception& e) {
  throw std::runtime_error(what + ": " + e.what());
}
std::vector<std::string> ProcessGroup::all_gather(const std::string& bytes) { return {bytes}; }
std::string ProcessGroup::broadcast(const std::string& bytes, int) { return bytes; }
void ProcessGroup::broadcast(const std::vector<torch::Tensor>&, int) {}
void ProcessGroup::barrier() {}

struct GradientReducer::Bucket {};
GradientReducer::GradientReducer(ProcessGroup& group, std::vector<torch::Tensor> parameters, int64_t)
    : group_(group), parameters_(std::move(parameters)) {}
GradientReducer::~GradientReducer() = default;
void GradientReducer::arrived(size_t, const torch::Tensor&) {}
void GradientReducer::launch_complete_buckets(bool) {}
double GradientReducer::finish(double value) { return value; }

#endif

}  // namespace muki::core
