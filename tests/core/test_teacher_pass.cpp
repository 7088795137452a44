// The cached teacher pass: layout of the outputs, reuse of the cache, and resumption.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <thread>

#include <muki/experiment/teacher_pass.h>
#include <muki/io/file_lock.h>
#include <muki/io/fingerprint.h>

#include "../test_support.h"

using muki::core::Fingerprint;
using muki::core::run_teacher_pass;
using muki::core::TeacherPassOptions;
using muki::core::TeacherPassStats;
using muki::registry::Registry;
using muki::test::TempDir;

namespace {

struct Fixture {
  Registry registry;
  std::unique_ptr<muki::registry::TeacherInstance> teacher;
  Fixture() {
    registry.load_library(muki::test::fixture_dir("good") / "libfixture_c_teacher.so");
    teacher = registry.create_teacher("fixture_length", {"lengths", "", "/", 0});
  }
};

std::vector<std::string> texts(size_t n) {
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) out.push_back(std::string(i % 37, 'x'));
  return out;
}

// K = 2, chunks of 4 texts, cached under `cache`: the cached passes' tests' options.
TeacherPassOptions cached_options(const std::filesystem::path& cache) {
  TeacherPassOptions options;
  options.samples = 2;
  options.chunk_size = 4;
  options.cache_dir = cache;
  return options;
}

// The one cache entry (a teacher's folder of chunks) a test's pass made under `cache`.
std::filesystem::path only_entry(const std::filesystem::path& cache) {
  std::filesystem::path folder;
  for (const auto& e : std::filesystem::directory_iterator(cache)) folder = e.path();
  return folder;
}

}  // namespace

TEST(Fingerprint, ChangesWithEveryInputAndSeparatesFields) {
  EXPECT_EQ(Fingerprint().add("abc").hex(), Fingerprint().add("abc").hex());
  EXPECT_NE(Fingerprint().add("ab").add("c").hex(), Fingerprint().add("a").add("bc").hex());
  EXPECT_NE(Fingerprint().add(uint64_t{1}).hex(), Fingerprint().add(uint64_t{2}).hex());
  TempDir dir;
  const auto file = dir.write("model.bin", "weights-1");
  const std::string before = Fingerprint().add_path(file).hex();
  dir.write("model.bin", "weights-2");
  EXPECT_NE(Fingerprint().add_path(file).hex(), before);
  EXPECT_THROW(Fingerprint().add_path(dir.path() / "missing.bin"), std::runtime_error);
}

TEST(TeacherPass, DeterministicAndStochasticLayouts) {
  Fixture f;
  const auto in = texts(5);
  TeacherPassOptions options;
  options.samples = 3;
  options.batch_size = 2;
  const auto out = run_teacher_pass(*f.teacher, in, "teacher", options);
  ASSERT_EQ(out.num_examples, 5);
  ASSERT_EQ(out.num_labels, 2);
  ASSERT_EQ(out.samples, 3);
  // Deterministic logits: (20 - len) / 10 and (len - 20) / 10.
  EXPECT_FLOAT_EQ(out.deterministic_row(4)[0], 1.6f);
  EXPECT_FLOAT_EQ(out.deterministic_row(4)[1], -1.6f);
  // Stochastic samples are the deterministic logits plus noise in [-0.5, 0.5).
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t s = 0; s < 3; ++s)
      for (int64_t c = 0; c < 2; ++c)
        EXPECT_NEAR(out.stochastic[static_cast<size_t>((i * 3 + s) * 2 + c)],
                    out.deterministic_row(i)[c], 0.5f);
  // samples_batch gives [K, B, C] back.
  const auto batch = out.samples_batch(1, 2);
  ASSERT_EQ(batch.size(), 3u * 2u * 2u);
  for (int64_t s = 0; s < 3; ++s)
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t c = 0; c < 2; ++c)
        EXPECT_EQ(batch[static_cast<size_t>((s * 2 + i) * 2 + c)],
                  out.stochastic[static_cast<size_t>(((1 + i) * 3 + s) * 2 + c)]);
}

TEST(TeacherPass, SecondRunComesFromTheCache) {
  Fixture f;
  TempDir dir;
  TeacherPassOptions options = cached_options(dir.path());
  const auto in = texts(10);
  TeacherPassStats first, second;
  const auto a = run_teacher_pass(*f.teacher, in, "teacher", options, &first);
  const auto b = run_teacher_pass(*f.teacher, in, "teacher", options, &second);
  EXPECT_EQ(first.chunks_computed, 3);
  EXPECT_EQ(second.chunks_computed, 0);
  EXPECT_EQ(second.chunks_cached, 3);
  EXPECT_EQ(a.deterministic, b.deterministic);
  EXPECT_EQ(a.stochastic, b.stochastic);
  // Another seed, K or text is another cache entry.
  options.seed = 9;
  TeacherPassStats third;
  run_teacher_pass(*f.teacher, in, "teacher", options, &third);
  EXPECT_EQ(third.chunks_computed, 3);
}

TEST(TeacherPass, AnInterruptedPassResumesFromItsLastChunk) {
  Fixture f;
  TempDir dir;
  const TeacherPassOptions options = cached_options(dir.path());
  const auto in = texts(10);
  const auto full = run_teacher_pass(*f.teacher, in, "teacher", options);
  // Simulate a kill after the first chunk: drop the later chunks, leave a half-written file.
  const std::filesystem::path folder = only_entry(dir.path());
  std::filesystem::remove(folder / "chunk-4.bin");
  std::filesystem::remove(folder / "chunk-8.bin");
  std::ofstream(folder / "chunk-4.bin.tmp") << "partial";
  TeacherPassStats stats;
  const auto resumed = run_teacher_pass(*f.teacher, in, "teacher", options, &stats);
  EXPECT_EQ(stats.chunks_cached, 1);
  EXPECT_EQ(stats.chunks_computed, 2);
  EXPECT_EQ(resumed.stochastic, full.stochastic);  // same seeds per batch position
}

// 64 bytes overwritten inside a cached chunk (issue 11, finding 6), or a chunk cut short: the
// checksum catches it, the file is named in the log, and the chunk is recomputed, not trusted.
TEST(TeacherPass, ADamagedChunkIsRecomputedNotTrusted) {
  Fixture f;
  TempDir dir;
  const TeacherPassOptions options = cached_options(dir.path());
  const auto in = texts(10);
  const auto full = run_teacher_pass(*f.teacher, in, "teacher", options);
  const std::filesystem::path folder = only_entry(dir.path());
  {
    std::fstream chunk(folder / "chunk-0.bin", std::ios::in | std::ios::out | std::ios::binary);
    chunk.seekp(60);
    chunk.write(std::string(64, '\x7f').data(), 64);
  }
  std::filesystem::resize_file(folder / "chunk-4.bin", std::filesystem::file_size(folder / "chunk-4.bin") - 4);
  TeacherPassStats stats;
  const auto again = run_teacher_pass(*f.teacher, in, "teacher", options, &stats);
  EXPECT_EQ(stats.chunks_cached, 1);
  EXPECT_EQ(stats.chunks_computed, 2);
  EXPECT_EQ(again.deterministic, full.deterministic);
  EXPECT_EQ(again.stochastic, full.stochastic);
}

TEST(TeacherPass, RefusesSamplesFromATeacherThatCannotSample) {
  Fixture f;
  // The fixture can sample; a strategy asking more than the pass computed is refused elsewhere.
  TeacherPassOptions options;
  options.samples = 0;
  const auto out = run_teacher_pass(*f.teacher, texts(3), "t", options);
  EXPECT_TRUE(out.stochastic.empty());
  EXPECT_EQ(out.samples_batch(0, 3).size(), 3u * 2u);  // K = 1: the deterministic logits
}

TEST(TeacherPass, KeepsFeaturesBesideTheLogitsAndCachesThem) {
  Fixture f;
  TempDir dir;
  TeacherPassOptions options;
  options.features = true;
  options.batch_size = 2;
  options.chunk_size = 3;
  options.cache_dir = dir.path();
  const std::vector<std::string> in = {"a b", "one two three", "x", "four four four four"};
  const auto out = run_teacher_pass(*f.teacher, in, "teacher", options);
  ASSERT_EQ(out.feature_dim, 2);
  // The fixture's features: [length / 10, words].
  EXPECT_EQ(std::vector<float>(out.features_row(1), out.features_row(1) + 2),
            (std::vector<float>{1.3f, 3.0f}));
  EXPECT_EQ(std::vector<float>(out.features_row(3), out.features_row(3) + 2),
            (std::vector<float>{1.9f, 4.0f}));
  TeacherPassStats stats;
  const auto again = run_teacher_pass(*f.teacher, in, "teacher", options, &stats);
  EXPECT_EQ(stats.chunks_cached, 2);
  EXPECT_EQ(again.features, out.features);
  // Without features the same texts have their own cache entry and no features.
  options.features = false;
  const auto plain = run_teacher_pass(*f.teacher, in, "teacher", options, &stats);
  EXPECT_EQ(stats.chunks_computed, 2);
  EXPECT_EQ(plain.feature_dim, 0);
  EXPECT_EQ(plain.deterministic, out.deterministic);
}

// A plugin that returns NaN is refused by name, with the split and the example, before anything
// is built on it; a cached chunk holding one is refused just the same.
TEST(TeacherPass, RefusesNonFiniteOutputs) {
  Fixture f;
  TempDir dir;
  TeacherPassOptions options;
  options.cache_dir = dir.path();
  options.split = "transfer";
  const std::vector<std::string> texts = {"fine", "also fine", "emit nan"};
  for (int attempt = 0; attempt < 2; ++attempt) {
    try {
      run_teacher_pass(*f.teacher, texts, "key", options);
      FAIL() << "expected an error";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "teacher 'lengths' (adapter 'fixture_length') returned a non-finite logit (nan) "
                             "on the transfer split, example 2 (\"emit nan\"); a teacher's outputs must be finite");
    }
  }
}

TEST(TeacherPass, AdaptiveKStopsConvergedTextsAndRepeatsTheirSamples) {
  // The fixture's samples are its logits plus noise in [-0.5, 0.5). With a tolerance no mean can
  // exceed (1), every text stops after the first round of K/4 = 2 samples, and its 8 slots are
  // those 2 repeated in order; with a tolerance the noise always exceeds, every text draws all 8.
  Fixture f;
  const auto in = texts(7);
  TeacherPassOptions options;
  options.samples = 8;
  options.batch_size = 3;
  options.adaptive_tolerance = 1.0;
  TeacherPassStats stats;
  const auto out = run_teacher_pass(*f.teacher, in, "teacher", options, &stats);
  EXPECT_EQ(stats.samples_drawn, 7 * 2);
  EXPECT_EQ(stats.samples_asked, 7 * 8);
  for (int64_t i = 0; i < 7; ++i)
    for (int64_t s = 0; s < 8; ++s)
      for (int64_t c = 0; c < 2; ++c)
        EXPECT_EQ(out.stochastic[static_cast<size_t>((i * 8 + s) * 2 + c)],
                  out.stochastic[static_cast<size_t>((i * 8 + s % 2) * 2 + c)]);
  EXPECT_NE(out.stochastic[0], out.stochastic[2]);  // the two drawn samples differ

  options.adaptive_tolerance = 1e-9;
  run_teacher_pass(*f.teacher, in, "teacher", options, &stats);
  EXPECT_EQ(stats.samples_drawn, 7 * 8);

  options.samples = 0;  // a deterministic pass is what it is
  EXPECT_NO_THROW(run_teacher_pass(*f.teacher, in, "teacher", options));
  options.samples = 6;  // rounds of K/4, K/2, K need a multiple of 4
  EXPECT_THAT([&] { run_teacher_pass(*f.teacher, in, "teacher", options); },
              testing::ThrowsMessage<std::invalid_argument>(testing::HasSubstr("multiple of 4")));
}

// Two runs of one config started together (scripts/quickstart.sh) share the pass through the
// cache: each chunk is computed once, by whichever claimed it (file_lock.h), and both end with
// every output, those of a pass alone. Threads stand in for processes: flock(2) locks belong to
// each open file.
TEST(TeacherPass, ConcurrentPassesComputeEachChunkOnce) {
  Fixture a, b;
  TempDir dir;
  TeacherPassOptions options;
  options.samples = 2;
  options.chunk_size = 4;
  options.batch_size = 2;
  const auto in = texts(40);
  const auto alone = run_teacher_pass(*a.teacher, in, "teacher", options);
  options.cache_dir = dir.path();
  TeacherPassStats stats_a, stats_b;
  muki::core::TeacherOutputs out_b;
  std::thread other([&] { out_b = run_teacher_pass(*b.teacher, in, "teacher", options, &stats_b); });
  const auto out_a = run_teacher_pass(*a.teacher, in, "teacher", options, &stats_a);
  other.join();
  EXPECT_EQ(stats_a.chunks_computed + stats_b.chunks_computed, 10);
  EXPECT_EQ(stats_a.chunks_computed + stats_a.chunks_cached, 10);
  EXPECT_EQ(stats_b.chunks_computed + stats_b.chunks_cached, 10);
  for (const muki::core::TeacherOutputs* out : {&out_a, static_cast<const muki::core::TeacherOutputs*>(&out_b)}) {
    EXPECT_EQ(out->deterministic, alone.deterministic);
    EXPECT_EQ(out->stochastic, alone.stochastic);
  }
}

// A chunk another process has claimed is left for last and waited for; if that process lets go
// without writing it (it died), it is computed here.
TEST(TeacherPass, AChunkClaimedElsewhereIsWaitedForThenComputedIfStillMissing) {
  Fixture f;
  TempDir dir;
  const TeacherPassOptions options = cached_options(dir.path());
  const auto in = texts(10);
  const auto full = run_teacher_pass(*f.teacher, in, "teacher", options);
  const std::filesystem::path folder = only_entry(dir.path());
  for (const char* chunk : {"chunk-0.bin", "chunk-4.bin", "chunk-8.bin"}) std::filesystem::remove(folder / chunk);
  std::optional<muki::core::FileLock> held = muki::core::FileLock::try_lock(folder / "chunk-4.lock");
  ASSERT_TRUE(held.has_value());
  TeacherPassStats stats;
  muki::core::TeacherOutputs out;
  std::thread pass([&] { out = run_teacher_pass(*f.teacher, in, "teacher", options, &stats); });
  // The pass computes chunks 0 and 8, then waits for 4 (its other two are on disk before it does).
  for (int i = 0; i < 500 && !std::filesystem::exists(folder / "chunk-8.bin"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(std::filesystem::exists(folder / "chunk-0.bin"));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(std::filesystem::exists(folder / "chunk-4.bin"));  // not computed while claimed
  held.reset();
  pass.join();
  EXPECT_EQ(stats.chunks_computed, 3);
  EXPECT_EQ(out.stochastic, full.stochastic);
}
