// Joining a distributed job on PyTorch's own runtime (c10d): the rendezvous store is c10d's
// TCPStore, the collectives are ProcessGroupGloo's. muki builds no cluster layer of its own.
//
// A process is part of a job when the variables every PyTorch launcher sets are in its
// environment: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (LOCAL_RANK optional; it picks the CUDA
// device, see resolve_device). torchrun sets them, and so can srun or a Kubernetes job. Rank 0
// serves the store at MASTER_ADDR:MASTER_PORT; every rank must reach it, and every rank must
// reach every other for Gloo's connections (GLOO_SOCKET_IFNAME picks the interface, as in
// PyTorch).
//
// Failures. Every rank adds to a heartbeat counter in the store once a second, from a thread of
// its own. Before each exchange of results the ranks meet in the store (arrive()), where a wait
// is unbounded while every peer beats (a rank may compute its shard for hours) and ends with an
// error naming the rank whose heartbeat stopped for `timeout` (it died, or lost the network).
// Gloo's own timeout bounds the data exchange that follows and each gradient exchange; a rank
// whose process lives but whose work hangs keeps beating, and is caught only there. The store
// lives in rank 0 (or torchrun's agent): when it dies, the others fail on the store and say so.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <torch/types.h>

#include <muki/io/communicator.h>

namespace muki::core {

// The launcher's variables (see above).
struct DistributedEnvironment {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr;
  uint16_t master_port = 0;
};

// The job this process belongs to; nullopt when RANK is unset and WORLD_SIZE is unset or 1 (a
// single process, as before). Throws std::invalid_argument naming the variable when one is set and
// another is missing or malformed (RANK >= WORLD_SIZE, a port outside 1..65535, ...).
std::optional<DistributedEnvironment> distributed_environment();

struct ProcessGroupOptions {
  // "auto" or "gloo". Gloo runs on CPU tensors; tensors on a CUDA device are staged through host
  // memory (this build has no NCCL path: "nccl" is refused with a message saying so).
  std::string backend = "auto";
  std::chrono::milliseconds timeout{std::chrono::seconds(300)};
};

// Whether this build has c10d's Gloo process group (false: ProcessGroup::join throws).
bool distributed_available();

class ProcessGroup : public Communicator {
 public:
  // Connects to the job: the store, then Gloo's full mesh; returns once every rank has joined, or
  // throws std::runtime_error (a rank that never came within the timeout, an address that cannot
  // be reached) or std::invalid_argument (a backend this build lacks).
  static std::unique_ptr<ProcessGroup> join(const DistributedEnvironment& env, const ProcessGroupOptions& options);
  ~ProcessGroup() override;

  int rank() const override { return env_.rank; }
  int world_size() const override { return env_.world_size; }
  const std::string& backend() const { return backend_; }
  std::vector<std::string> all_gather(const std::string& bytes) override;
  std::string broadcast(const std::string& bytes, int root) override;

  // Rank `root`'s values of `tensors` into every rank's, in place (shapes must match).
  void broadcast(const std::vector<torch::Tensor>& tensors, int root);
  // Every rank waits for the others (and learns of one that died).
  void barrier();
  // The end of a job that went well: every rank calls it last, and the rank that serves the
  // store returns once every other is done with it (the others return at once).
  void finish();

  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

 private:
  friend class GradientReducer;
  struct Impl;
  ProcessGroup(DistributedEnvironment env, ProcessGroupOptions options);
  // Meets every rank in the store before a collective named `what` (waits for them all unless
  // `wait` is false); throws naming a dead rank.
  void arrive(const std::string& what, bool wait = true);
  [[noreturn]] void fail(const std::string& what, const std::exception& e);

  DistributedEnvironment env_;
  ProcessGroupOptions options_;
  std::string backend_;
  std::unique_ptr<Impl> impl_;
  int64_t sequence_ = 0;  // collectives so far: every rank counts the same
};

// Sums the gradients of `parameters` over the ranks while the backward pass runs, the scheme of
// PyTorch's DistributedDataParallel, simplified: the parameters are grouped into buckets of about
// `bucket_bytes` in reverse order (the order backward produces their gradients); once every
// gradient of a bucket has arrived, its sum starts in Gloo's threads, the buckets in the same
// order on every rank, while backward goes on with the layers below. finish() sums the rest,
// waits, and writes the sums into the parameters' .grad. A gradient that never arrives (a rank
// with no rows this step, a branch not taken) counts as zeros. A hook on each parameter does the
// work while the object lives; one backward pass per finish(). (Added in muki 0.5.)
class GradientReducer {
 public:
  GradientReducer(ProcessGroup& group, std::vector<torch::Tensor> parameters, int64_t bucket_bytes = int64_t{1} << 20);
  ~GradientReducer();
  // After backward (or instead of it): the gradients' sums into .grad; returns `value` summed over
  // the ranks (the step's loss). Throws what a failed exchange throws (ProcessGroup).
  double finish(double value);
  const ProcessGroup& group() const { return group_; }

  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

 private:
  struct Bucket;
  void arrived(size_t parameter, const torch::Tensor& grad);
  void launch_complete_buckets(bool all);

  ProcessGroup& group_;
  std::vector<torch::Tensor> parameters_;
  std::vector<unsigned> hooks_;
  std::vector<size_t> bucket_of_;     // per parameter
  std::vector<int64_t> offset_of_;    // per parameter, in its bucket's buffer
  std::vector<std::unique_ptr<Bucket>> buckets_;
  size_t launched_ = 0;               // buckets [0, launched_) are being summed
};

}  // namespace muki::core
