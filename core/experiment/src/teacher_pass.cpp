#include "muki/experiment/teacher_pass.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "muki/io/communicator.h"
#include "muki/io/file_lock.h"
#include "muki/io/files.h"
#include "muki/io/fingerprint.h"

namespace muki::core {
namespace fs = std::filesystem;

namespace {

// Version 2 added the features, version 3 the checksum; an older chunk does not match and is
// recomputed.
constexpr char kMagic[8] = {'M', 'U', 'K', 'I', 'T', 'P', '3', '\0'};

struct ChunkHeader {
  char magic[8];
  int64_t count, labels, samples, feature_dim;
  uint64_t checksum;  // Fingerprint of the payload that follows
};

// The three arrays of a teacher's outputs, `per_example` floats an example each, in the order a
// chunk file and a job's messages hold them (`Outputs`: TeacherOutputs, const or not).
template <class Outputs>
auto output_parts(Outputs& out) {
  struct Part {
    decltype((out.deterministic)) values;  // const when out is
    int64_t per_example;
    const char* what;  // in messages
  };
  return std::array<Part, 3>{Part{out.deterministic, out.num_labels, "logit"},
                             Part{out.stochastic, out.samples * out.num_labels, "stochastic-pass logit"},
                             Part{out.features, out.feature_dim, "feature"}};
}

// The floats of examples [begin, begin + count) of one part, as bytes.
template <class Part>
size_t part_bytes(const Part& p, int64_t count) {
  return sizeof(float) * static_cast<size_t>(count * p.per_example);
}
template <class Part>
auto* part_data(Part& p, int64_t begin) {
  return p.values.data() + begin * p.per_example;
}

// A chunk file: the header, then the deterministic logits, the stochastic ones and the features
// of examples [begin, begin + count). Written atomically (write_file_atomically), so a killed run
// never leaves a half-written chunk behind under the real name.
void write_chunk(const fs::path& path, const TeacherOutputs& out, int64_t begin, int64_t count) {
  ChunkHeader header{};
  std::memcpy(header.magic, kMagic, sizeof(kMagic));
  header.count = count;
  header.labels = out.num_labels;
  header.samples = out.samples;
  header.feature_dim = out.feature_dim;
  std::string payload;
  for (const auto& p : output_parts(out))
    payload.append(reinterpret_cast<const char*>(part_data(p, begin)), part_bytes(p, count));
  header.checksum = Fingerprint().add(payload).value();
  write_file_atomically(path, std::string(reinterpret_cast<const char*>(&header), sizeof(header)) + payload);
}

fs::path chunk_file(const fs::path& dir, int64_t begin) {
  return dir / ("chunk-" + std::to_string(begin) + ".bin");
}

// What a process computing that chunk holds (file_lock.h).
fs::path chunk_lock_file(const fs::path& dir, int64_t begin) {
  return dir / ("chunk-" + std::to_string(begin) + ".lock");
}

// Reads a chunk into the outputs at `begin`; false when absent, of another shape or damaged (a
// checksum mismatch is logged with the file's name): the caller recomputes it.
bool read_chunk(const fs::path& path, int64_t begin, int64_t count, TeacherOutputs& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  ChunkHeader header{};
  in.read(reinterpret_cast<char*>(&header), sizeof(header));
  if (!in || std::memcmp(header.magic, kMagic, sizeof(kMagic)) != 0 || header.count != count ||
      header.labels != out.num_labels || header.samples != out.samples ||
      header.feature_dim != out.feature_dim)
    return false;
  const auto parts = output_parts(out);
  size_t size = 0;
  for (const auto& p : parts) size += part_bytes(p, count);
  std::string payload(size, '\0');
  in.read(payload.data(), static_cast<std::streamsize>(payload.size()));
  if (!in || in.peek() != std::char_traits<char>::eof() || Fingerprint().add(payload).value() != header.checksum) {
    spdlog::warn("{}: damaged since it was written (size or checksum mismatch); recomputing it", path.string());
    return false;
  }
  const char* at = payload.data();
  for (auto& p : parts) {
    if (p.per_example == 0) continue;  // an empty part has no data() to copy to
    std::memcpy(part_data(p, begin), at, part_bytes(p, count));
    at += part_bytes(p, count);
  }
  return true;
}

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%lld:%02lld", static_cast<long long>(s / 60),
                static_cast<long long>(s % 60));
  return buf;
}

// The first non-finite value of `values` ([rows, per_row] floats), as (row, column); none: (-1, -1).
std::pair<int64_t, int64_t> first_non_finite(const std::vector<float>& values, int64_t per_row) {
  for (size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i]))
      return {static_cast<int64_t>(i) / per_row, static_cast<int64_t>(i) % per_row};
  return {-1, -1};
}

// Outputs must be finite (plugin.h): a NaN would run on into the targets and the student's loss,
// and a number would be printed at the end.
void check_finite(const registry::TeacherInstance& teacher, const TeacherOutputs& out,
                  const std::vector<std::string>& texts, const std::string& split) {
  for (const auto& p : output_parts(out)) {
    if (p.per_example == 0) continue;
    const auto [example, column] = first_non_finite(p.values, p.per_example);
    if (example < 0) continue;
    const float bad = p.values[static_cast<size_t>(example * p.per_example + column)];
    std::string text = texts[static_cast<size_t>(example)].substr(0, 60);
    throw std::runtime_error("teacher '" + teacher.instance_name() + "' (adapter '" + teacher.plugin().name +
                             "') returned a non-finite " + p.what + " (" + std::to_string(bad) +
                             ") on " + (split.empty() ? "its texts" : "the " + split + " split") +
                             ", example " + std::to_string(example) + " (\"" + text +
                             "\"); a teacher's outputs must be finite");
  }
}

// The stochastic passes of one batch, example-major into `dst` ([count, k, C]); returns how many
// passes were run per text, summed. Exact: one call for all k. Adaptive (tolerance > 0): rounds of
// k/4, k/2, k samples, each round only for the texts that have not converged (TeacherPassOptions).
int64_t stochastic_passes(const registry::TeacherInstance& teacher, const std::vector<std::string>& batch,
                          int64_t k, int64_t c, uint64_t seed, double tolerance, float* dst) {
  const int64_t count = static_cast<int64_t>(batch.size());
  std::vector<float> buffer;
  if (tolerance <= 0) {
    buffer.resize(static_cast<size_t>(k * count * c));
    teacher.predict(batch, static_cast<uint32_t>(k), seed, buffer.data());
    for (int64_t s = 0; s < k; ++s)  // [K, B, C] -> example-major [B, K, C]
      for (int64_t i = 0; i < count; ++i)
        std::copy_n(&buffer[static_cast<size_t>((s * count + i) * c)], c, dst + (i * k + s) * c);
    return k * count;
  }
  std::vector<std::vector<float>> drawn(static_cast<size_t>(count));  // each text's logits, [m, C]
  std::vector<int64_t> active(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) active[static_cast<size_t>(i)] = i;
  // The mean softmax of samples [0, m) of one text.
  auto mean_probs = [c](const std::vector<float>& logits, int64_t m) {
    std::vector<double> mean(static_cast<size_t>(c), 0.0), e(static_cast<size_t>(c));
    for (int64_t s = 0; s < m; ++s) {
      const float* z = &logits[static_cast<size_t>(s * c)];
      const float top = *std::max_element(z, z + c);
      double total = 0;
      for (int64_t j = 0; j < c; ++j) total += e[static_cast<size_t>(j)] = std::exp(static_cast<double>(z[j] - top));
      for (int64_t j = 0; j < c; ++j) mean[static_cast<size_t>(j)] += e[static_cast<size_t>(j)] / total / static_cast<double>(m);
    }
    return mean;
  };
  int64_t have = 0;
  for (int64_t want = k / 4, round = 0; !active.empty(); want *= 2, ++round) {
    const int64_t draw = want - have, n = static_cast<int64_t>(active.size());
    std::vector<std::string> texts;
    for (int64_t i : active) texts.push_back(batch[static_cast<size_t>(i)]);
    buffer.resize(static_cast<size_t>(draw * n * c));
    teacher.predict(texts, static_cast<uint32_t>(draw), Fingerprint().add(seed).add(static_cast<uint64_t>(round)).value(),
                    buffer.data());
    std::vector<int64_t> still;
    for (int64_t a = 0; a < n; ++a) {
      std::vector<float>& mine = drawn[static_cast<size_t>(active[static_cast<size_t>(a)])];
      for (int64_t s = 0; s < draw; ++s) {
        const float* sample = &buffer[static_cast<size_t>((s * n + a) * c)];
        mine.insert(mine.end(), sample, sample + c);
      }
      if (want == k) continue;
      const std::vector<double> all = mean_probs(mine, want), half = mean_probs(mine, want / 2);
      double gap = 0;
      for (int64_t j = 0; j < c; ++j) gap = std::max(gap, std::abs(all[static_cast<size_t>(j)] - half[static_cast<size_t>(j)]));
      if (gap > tolerance) still.push_back(active[static_cast<size_t>(a)]);
    }
    have = want;
    active = want == k ? std::vector<int64_t>() : still;
  }
  int64_t total = 0;
  for (int64_t i = 0; i < count; ++i) {
    const std::vector<float>& mine = drawn[static_cast<size_t>(i)];
    const int64_t m = static_cast<int64_t>(mine.size()) / c;
    total += m;
    for (int64_t s = 0; s < k; ++s)  // m divides k: the empirical distribution is the m samples'
      std::copy_n(&mine[static_cast<size_t>((s % m) * c)], c, dst + (i * k + s) * c);
  }
  return total;
}

// A job's ranks send each other the chunks they supplied (owner[i]: chunk i's rank), so every
// rank ends with every output; `stats` become the job's totals. Rank 0 also caches the chunks it
// did not have, so that one machine holds the whole pass (a later single-process run, or a rerun
// with another world size, finds it there).
void exchange_chunks(Communicator& group, const std::vector<int>& owner, int64_t chunk_size, const fs::path& dir,
                     const std::string& cached_here, TeacherOutputs& out, TeacherPassStats& stats) {
  const int64_t n = out.num_examples;
  const auto parts = output_parts(out);
  std::string message;
  const int64_t counts[4] = {stats.chunks_computed, stats.chunks_cached, stats.samples_drawn, stats.samples_asked};
  message.append(reinterpret_cast<const char*>(counts), sizeof(counts));
  for (size_t i = 0; i < owner.size(); ++i) {
    if (owner[i] != group.rank()) continue;
    const int64_t begin = static_cast<int64_t>(i) * chunk_size, count = std::min(chunk_size, n - begin);
    for (const auto& p : parts) message.append(reinterpret_cast<const char*>(part_data(p, begin)), part_bytes(p, count));
  }
  const std::vector<std::string> all = group.all_gather(message);
  TeacherPassStats total;
  for (const std::string& m : all) total.bytes_exchanged += static_cast<int64_t>(m.size());
  for (size_t r = 0; r < all.size(); ++r) {
    const char* at = all[r].data();
    const char* const end = at + all[r].size();
    int64_t theirs[4];
    if (all[r].size() < sizeof(theirs)) throw std::runtime_error("teacher pass: rank " + std::to_string(r) + " sent a truncated message");
    std::memcpy(theirs, at, sizeof(theirs));
    at += sizeof(theirs);
    total.chunks_computed += theirs[0];
    total.chunks_cached += theirs[1];
    total.samples_drawn += theirs[2];
    total.samples_asked += theirs[3];
    for (size_t i = 0; i < owner.size(); ++i) {
      if (owner[i] != static_cast<int>(r)) continue;
      const int64_t begin = static_cast<int64_t>(i) * chunk_size, count = std::min(chunk_size, n - begin);
      for (const auto& p : parts) {
        const size_t bytes = part_bytes(p, count);
        if (static_cast<size_t>(end - at) < bytes)
          throw std::runtime_error("teacher pass: rank " + std::to_string(r) + " sent fewer outputs than its chunks hold");
        if (static_cast<int>(r) != group.rank() && bytes > 0) std::memcpy(part_data(p, begin), at, bytes);
        at += bytes;
      }
      if (group.rank() == 0 && !dir.empty() && cached_here[i] == '0' && static_cast<int>(r) != 0)
        write_chunk(chunk_file(dir, begin), out, begin, count);
    }
  }
  total.seconds = stats.seconds;
  stats = total;
}

}  // namespace

std::vector<float> TeacherOutputs::samples_batch(int64_t begin, int64_t count) const {
  const int64_t k = std::max<int64_t>(samples, 1), c = num_labels;
  std::vector<float> out(static_cast<size_t>(k * count * c));
  for (int64_t s = 0; s < k; ++s)
    for (int64_t i = 0; i < count; ++i) {
      const float* src = samples == 0
                             ? deterministic_row(begin + i)
                             : &stochastic[static_cast<size_t>(((begin + i) * samples + s) * c)];
      std::copy(src, src + c, &out[static_cast<size_t>((s * count + i) * c)]);
    }
  return out;
}

TeacherOutputs run_teacher_pass(const registry::TeacherInstance& teacher,
                                const std::vector<std::string>& texts,
                                const std::string& teacher_key, const TeacherPassOptions& options,
                                TeacherPassStats* stats) {
  if (options.samples > 0 && !teacher.can_sample())
    throw std::runtime_error("teacher '" + teacher.instance_name() +
                             "' cannot sample stochastically, but " +
                             std::to_string(options.samples) + " samples were asked for");
  const bool adaptive = options.adaptive_tolerance > 0 && options.samples > 0;  // a deterministic pass is exact
  if (adaptive && options.samples % 4 != 0)
    throw std::invalid_argument("adaptive K needs the samples to be a multiple of 4 (rounds of K/4, K/2, K), not " +
                                std::to_string(options.samples));
  if (options.features && teacher.feature_dim() == 0)
    throw std::runtime_error("teacher '" + teacher.instance_name() +
                             "' has no features, but they were asked for");
  const auto started = std::chrono::steady_clock::now();
  TeacherOutputs out;
  out.num_examples = static_cast<int64_t>(texts.size());
  out.num_labels = static_cast<int64_t>(teacher.labels().size());
  out.samples = options.samples;
  out.feature_dim = options.features ? teacher.feature_dim() : 0;
  const int64_t n = out.num_examples, c = out.num_labels, k = out.samples, h = out.feature_dim;
  out.deterministic.resize(static_cast<size_t>(n * c));
  out.stochastic.resize(static_cast<size_t>(n * k * c));
  out.features.resize(static_cast<size_t>(n * h));

  // The texts themselves, not the file they came from: callers filter a split by the union's
  // labels, so another set of teachers keeps other rows of the same file.
  Fingerprint text_key;
  for (const std::string& t : texts) text_key.add(t);
  fs::path dir;
  if (!options.cache_dir.empty()) {
    Fingerprint key;
    key.add(text_key.hex()).add(teacher_key).add(static_cast<uint64_t>(k)).add(options.seed)
        .add(static_cast<uint64_t>(options.chunk_size)).add(static_cast<uint64_t>(options.batch_size))
        .add(static_cast<uint64_t>(h));
    if (adaptive) key.add("adaptive").add(std::to_string(options.adaptive_tolerance));
    dir = options.cache_dir / (teacher.instance_name() + "-" + key.hex());
    fs::create_directories(dir);
  }

  // Which rank supplies which chunk. Alone: this process, all of them. In a job: a chunk some rank
  // has cached comes from the first such rank; the others are dealt out in turn. Seeds follow the
  // examples' positions, never the rank, so the outputs are those of a single process.
  const int64_t chunks = (n + options.chunk_size - 1) / options.chunk_size;
  Communicator* const group = options.communicator != nullptr && options.communicator->world_size() > 1
                                  ? options.communicator : nullptr;
  const int rank = group != nullptr ? group->rank() : 0;
  auto chunk_count = [&](int64_t i) { return std::min(options.chunk_size, n - i * options.chunk_size); };
  std::string cached(static_cast<size_t>(chunks), '0');
  for (int64_t i = 0; i < chunks && !dir.empty(); ++i)
    if (read_chunk(chunk_file(dir, i * options.chunk_size), i * options.chunk_size, chunk_count(i), out)) cached[static_cast<size_t>(i)] = '1';
  std::vector<int> owner(static_cast<size_t>(chunks), 0);
  std::vector<bool> from_cache(static_cast<size_t>(chunks));
  // What every rank must agree on for the exchange to mean anything: the texts, the teacher and
  // the shape of the outputs (data files or teachers that differ between machines would mix).
  const Agreement same = agreement_on(group, text_key.hex() + " " + Fingerprint().add(teacher_key).hex() + " " +
                                                 std::to_string(n) + " " + std::to_string(c) + " " +
                                                 std::to_string(k) + " " + std::to_string(h));
  if (same.differing > 0)
    throw std::runtime_error("teacher '" + teacher.instance_name() + "' on " +
                             (options.split.empty() ? "its texts" : "the " + options.split + " split") + ": rank " +
                             std::to_string(same.differing) + " has other texts or another teacher than rank 0 (" +
                             same.values[static_cast<size_t>(same.differing)] + " vs " + same.values[0] +
                             ": the texts' and the teacher's fingerprints (its adapter's library, options and model "
                             "files), texts, labels, samples, features); every rank must read the same data files "
                             "and teachers");
  const std::vector<std::string> cached_by = group != nullptr ? group->all_gather(cached) : std::vector<std::string>{cached};
  for (int64_t i = 0, dealt = 0; i < chunks; ++i) {
    const auto r = std::find_if(cached_by.begin(), cached_by.end(),
                                [i](const std::string& flags) { return flags[static_cast<size_t>(i)] == '1'; });
    from_cache[static_cast<size_t>(i)] = r != cached_by.end();
    owner[static_cast<size_t>(i)] = from_cache[static_cast<size_t>(i)] ? static_cast<int>(r - cached_by.begin())
                                                                       : static_cast<int>(dealt++ % static_cast<int64_t>(cached_by.size()));
  }

  TeacherPassStats local;
  int64_t computed = 0, mine = 0, done = 0;  // examples run through the teacher here; examples this rank supplies; of them, ready
  for (int64_t i = 0; i < chunks; ++i)
    if (owner[static_cast<size_t>(i)] == rank) mine += chunk_count(i);
  auto compute_chunk = [&](int64_t i) {
    const int64_t chunk_begin = i * options.chunk_size, count_in_chunk = chunk_count(i);
    for (int64_t b = chunk_begin; b < chunk_begin + count_in_chunk; b += options.batch_size) {
      const int64_t count = std::min(options.batch_size, chunk_begin + count_in_chunk - b);
      const std::vector<std::string> batch(texts.begin() + b, texts.begin() + b + count);
      teacher.predict(batch, 0, 0, &out.deterministic[static_cast<size_t>(b * c)],
                      h > 0 ? &out.features[static_cast<size_t>(b * h)] : nullptr);
      if (k > 0) {
        // One seed per batch, derived from the experiment seed and the batch's position.
        const uint64_t seed = Fingerprint().add(options.seed).add(static_cast<uint64_t>(b)).value();
        local.samples_drawn += stochastic_passes(teacher, batch, k, c, seed, options.adaptive_tolerance,
                                                 &out.stochastic[static_cast<size_t>(b * k * c)]);
        local.samples_asked += k * count;
      }
    }
    if (!dir.empty()) write_chunk(chunk_file(dir, chunk_begin), out, chunk_begin, count_in_chunk);
    ++local.chunks_computed;
    computed += count_in_chunk;
    done += count_in_chunk;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const double rate = static_cast<double>(computed) / std::max(elapsed, 1e-9);
    spdlog::info("teacher '{}': {}/{} examples{}, {:.0f} ex/s, ETA {}", teacher.instance_name(), done, mine,
                 group == nullptr ? "" : " of rank " + std::to_string(rank) + "'s share", rate,
                 format_duration(static_cast<double>(mine - done) / rate));
  };
  // A chunk some other process finished since this one looked: read, not computed.
  auto finished_elsewhere = [&](int64_t i) {
    if (!read_chunk(chunk_file(dir, i * options.chunk_size), i * options.chunk_size, chunk_count(i), out)) return false;
    ++local.chunks_cached;
    done += chunk_count(i);
    return true;
  };
  // Alone with a cache, this process may share the pass with others on the same machine (runs of
  // one config with other strategies, started together): each computes only the chunks it holds
  // the lock of (file_lock.h), leaves the ones another holds for last, then waits for those and
  // reads them from the cache, or computes them if their process died. In a job, the ranks have
  // divided the chunks already.
  const bool shared = !dir.empty() && group == nullptr;
  std::vector<int64_t> held_elsewhere;
  for (int64_t i = 0; i < chunks; ++i) {
    if (owner[static_cast<size_t>(i)] != rank) continue;
    if (from_cache[static_cast<size_t>(i)]) {
      ++local.chunks_cached;
      done += chunk_count(i);
      continue;
    }
    std::optional<FileLock> claim;
    if (shared) {
      claim = FileLock::try_lock(chunk_lock_file(dir, i * options.chunk_size));
      if (!claim) {
        held_elsewhere.push_back(i);
        continue;
      }
      if (finished_elsewhere(i)) continue;
    }
    compute_chunk(i);
  }
  for (int64_t i : held_elsewhere) {
    const FileLock claim = FileLock::lock(chunk_lock_file(dir, i * options.chunk_size), [&] {
      spdlog::info("teacher '{}': waiting for another process computing examples {} to {} (chunk {} of {})",
                   teacher.instance_name(), i * options.chunk_size, i * options.chunk_size + chunk_count(i) - 1,
                   i + 1, chunks);
    });
    if (!finished_elsewhere(i)) compute_chunk(i);
  }
  if (group != nullptr) exchange_chunks(*group, owner, options.chunk_size, dir, cached, out, local);
  check_finite(teacher, out, texts, options.split);
  local.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (adaptive && local.samples_asked > 0)
    spdlog::info("teacher '{}': adaptive K drew {} of {} stochastic passes ({:.1f}% saved)", teacher.instance_name(),
                 local.samples_drawn, local.samples_asked,
                 100.0 * static_cast<double>(local.samples_asked - local.samples_drawn) / static_cast<double>(local.samples_asked));
  if (local.chunks_cached > 0)
    spdlog::info("teacher '{}': {} of {} chunks reused from the cache {}", teacher.instance_name(),
                 local.chunks_cached, local.chunks_cached + local.chunks_computed, dir.string());
  if (stats != nullptr) *stats = local;
  return out;
}

}  // namespace muki::core
