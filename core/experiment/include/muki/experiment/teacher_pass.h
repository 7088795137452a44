// The teacher pass: every teacher over a list of texts, one deterministic pass and K stochastic
// passes, in batches. Results are cached on disk in chunks keyed by a fingerprint of everything
// they depend on, so a second run (another strategy, an ablation) costs nothing and an
// interrupted pass resumes from its last finished chunk.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <muki/io/communicator.h>
#include <muki/registry/registry.h>

namespace muki::core {

// One teacher's outputs over N examples.
struct TeacherOutputs {
  int64_t num_examples = 0;  // N
  int64_t num_labels = 0;    // C
  int64_t samples = 0;       // K (0: no stochastic passes)
  int64_t feature_dim = 0;   // H (0: no features kept)
  std::vector<float> deterministic;  // [N, C] logits, dropout off
  std::vector<float> stochastic;     // [N, K, C] logits, example-major
  std::vector<float> features;       // [N, H] pooled features of the deterministic pass

  const float* deterministic_row(int64_t i) const { return &deterministic[static_cast<size_t>(i * num_labels)]; }
  // The K samples of examples [begin, begin + count) as [K, count, C] (what scorers take).
  std::vector<float> samples_batch(int64_t begin, int64_t count) const;
  const float* features_row(int64_t i) const {
    return feature_dim == 0 ? nullptr : &features[static_cast<size_t>(i * feature_dim)];
  }
};

struct TeacherPassOptions {
  uint32_t samples = 0;        // K stochastic passes per example (0: deterministic only)
  bool features = false;       // keep the deterministic pass's features (the teacher must have them)
  uint64_t seed = 0;           // the experiment's seed; each chunk derives its own
  // Texts per predict() call. The `native` adapter buckets a call's texts by length; 256 ran its
  // pass 1.13x faster than 64 and 1.08x faster than 1,024 (bench/README.md).
  int64_t batch_size = 256;
  // Examples per cache file: the unit of resumption, and of the work that concurrent processes and
  // a job's ranks share out. 256 since 0.6 (1024 before): small enough that two processes sharing
  // a 515-text split both have work, and equal to batch_size, so every batch and the seed its
  // position gives it are what they were with 1024.
  int64_t chunk_size = 256;
  // Adaptive K (0 = off, the exact K passes): samples are drawn in rounds of K/4, K/2 and K (K a
  // multiple of 4), and a text stops after a round once the mean of its softmax over the samples
  // so far differs from the mean over their first half by at most this much in every label. Its
  // K slots are then its m drawn samples repeated in order (m divides K), so every statistic of
  // the empirical sample distribution (the mean, MC dropout's entropy of the mean, BALD's mean
  // entropy, variances) is the m samples' own. Part of the cache key when on. Ignored when
  // samples = 0 (a deterministic pass, such as the reference teacher's).
  double adaptive_tolerance = 0;
  std::filesystem::path cache_dir;  // empty: no cache
  // A distributed job (communicator.h; null or world size 1: this process alone). Its ranks
  // divide the chunks (a chunk some rank has cached comes from that rank), run their share and
  // exchange the outputs, so every rank returns all of them, identical to a single process's
  // (the stochastic passes are seeded by the examples' positions). Every rank must call with the
  // same texts and options. Not part of the cache key.
  Communicator* communicator = nullptr;
  std::string split;                // names the texts in messages ("transfer"); not part of the key
};

// In a distributed job, the job's totals (every rank returns the same).
struct TeacherPassStats {
  int64_t chunks_computed = 0;
  int64_t chunks_cached = 0;
  int64_t samples_drawn = 0;  // stochastic passes run per text, summed over the computed texts
  int64_t samples_asked = 0;  // K x the computed texts (drawn < asked only with adaptive K)
  int64_t bytes_exchanged = 0;  // a job's ranks: the outputs every rank received, in bytes (0 alone)
  double seconds = 0;
};

// Runs (or loads) one teacher over `texts`. `teacher_key` identifies the teacher (plugin,
// version, options, model files): with a fingerprint of the texts themselves, K, the seed and the
// chunking it forms the cache key. Progress (rate, ETA) is logged at info level. Throws
// std::invalid_argument when adaptive K is on and K (> 0) is not a multiple of 4. Throws
// std::runtime_error naming the teacher, its adapter, the split and the first example when an
// output is not finite (computed or read from the cache): nothing built on it could be trusted.
TeacherOutputs run_teacher_pass(const registry::TeacherInstance& teacher,
                                const std::vector<std::string>& texts,
                                const std::string& teacher_key, const TeacherPassOptions& options,
                                TeacherPassStats* stats = nullptr);

}  // namespace muki::core
