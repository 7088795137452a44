// The processes of one distributed job, as the torch-free layers see them: a rank among
// world_size ranks that exchange bytes. muki_model's ProcessGroup (process_group.h) implements it
// on PyTorch's c10d; the teacher pass (muki_experiment) shards its chunks over it without
// depending on LibTorch.
//
// Every rank must make the same calls in the same order (the usual rule of collectives). Each
// call blocks until every rank has made it; when a rank dies or stops answering, the call throws
// std::runtime_error naming the rank (and never hangs past the job's timeout).
#pragma once

#include <string>
#include <vector>

namespace muki::core {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;        // 0 .. world_size() - 1; rank 0 writes the run's files
  virtual int world_size() const = 0;  // >= 1
  // Every rank's `bytes` (any length, 0 included), indexed by rank, on every rank.
  virtual std::vector<std::string> all_gather(const std::string& bytes) = 0;
  // Rank `root`'s `bytes` on every rank (what other ranks pass is ignored).
  virtual std::string broadcast(const std::string& bytes, int root) = 0;
};

// Whether this process writes what a job writes once: rank 0, or a process alone (null).
inline bool is_rank0(const Communicator* group) { return group == nullptr || group->rank() == 0; }

// Every rank's `value`; the first rank whose value differs from rank 0's, or -1 when all agree
// (always alone). For what the ranks must share (a config, the texts, a teacher).
struct Agreement {
  std::vector<std::string> values;  // indexed by rank
  int differing = -1;
};
inline Agreement agreement_on(Communicator* group, const std::string& value) {
  Agreement out;
  out.values = group == nullptr ? std::vector<std::string>{value} : group->all_gather(value);
  for (size_t r = 1; r < out.values.size() && out.differing < 0; ++r)
    if (out.values[r] != out.values[0]) out.differing = static_cast<int>(r);
  return out;
}

// `value` as rank 0 has it, on every rank (`value` itself when `group` is null): for decisions
// that read files only rank 0 is sure to have (is there a finished checkpoint?).
inline bool as_rank0_decides(Communicator* group, bool value) {
  return group == nullptr ? value : group->broadcast(value ? "1" : "0", 0) == "1";
}

}  // namespace muki::core
