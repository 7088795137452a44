// The teacher-pass cache (core/experiment/src/teacher_pass.cpp): a chunk file ("MUKITP3") is
// replaced by the input and the pass is run again through run_teacher_pass, as a second run of an
// experiment would. The chunk must be refused (and recomputed) or used; used values must be
// finite or refused by name. The teacher is an in-memory plugin (Registry::register_library)
// whose outputs are the same for every input.
//
// Input: two bytes, then the chunk file.
//   byte 0: bits 0-1 labels C - 1, bits 2-3 stochastic samples K, bit 4 features (H = 2, else 0),
//           bit 5 write the right checksum into the chunk's header (so that mutated payloads get
//           past it)
//   byte 1: bits 0-2 texts N - 1, bits 3-4 chunk_size - 1, bits 5-7 which chunk (modulo the count)
// Every other chunk of the pass stays as the writer wrote it.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include <spdlog/spdlog.h>

#include <muki/experiment/teacher_pass.h>
#include <muki/io/fingerprint.h>
#include <muki/plugin.h>
#include <muki/registry/registry.h>

#include "fuzz_support.h"

namespace {

void require(bool ok) {
  if (!ok) __builtin_trap();
}

constexpr uint64_t kFeatureDim = 2;
uint64_t g_labels = 1;  // what the next teacher instance describes

const char* const kLabelNames[] = {"a", "b", "c", "d"};

muki_status create(const muki_create_args*, void** instance, muki_error*) {
  *instance = new uint64_t(g_labels);
  return MUKI_OK;
}
void destroy(void* instance) { delete static_cast<uint64_t*>(instance); }
muki_status describe(void* instance, muki_teacher_info* info, muki_error*) {
  info->num_labels = *static_cast<uint64_t*>(instance);
  info->flags = MUKI_TEACHER_CAN_SAMPLE | MUKI_TEACHER_HAS_FEATURES;
  info->feature_dim = kFeatureDim;
  return MUKI_OK;
}
muki_status label_name(void*, uint64_t index, muki_string_view* name, muki_error*) {
  *name = {kLabelNames[index], 1};
  return MUKI_OK;
}
void fill(DLTensor* t) {
  int64_t n = 1;
  for (int32_t d = 0; d < t->ndim; ++d) n *= t->shape[d];
  auto* out = static_cast<float*>(t->data);
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(i % 7) * 0.5f;
}
muki_status predict(void*, const muki_predict_request*, DLTensor* logits, muki_error*) {
  fill(logits);
  return MUKI_OK;
}
muki_status predict_features(void*, const muki_predict_request*, DLTensor* logits,
                             DLTensor* features, muki_error*) {
  fill(logits);
  fill(features);
  return MUKI_OK;
}

const muki_teacher_api kApi = {MUKI_ABI_VERSION, sizeof(muki_teacher_api), create, destroy,
                               describe, label_name, predict, predict_features};
const muki_plugin_desc kPlugin = {MUKI_ABI_VERSION, sizeof(muki_plugin_desc), MUKI_KIND_TEACHER,
                                  "fuzz_teacher", "1.0.0", "the same outputs for every input",
                                  nullptr, 0, &kApi};
const muki_library_desc kLibrary = {MUKI_ABI_VERSION, sizeof(muki_library_desc), "fuzz", "1.0.0",
                                    "", &kPlugin, 1, nullptr, nullptr};

muki::registry::Registry& registry() {
  static muki::registry::Registry* r = [] {
    auto* out = new muki::registry::Registry();
    out->register_library(&kLibrary, "fuzz-teacher (in memory)");
    return out;
  }();
  return *r;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void write_file(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// One cache folder per shape, filled by a first pass: the chunks as the writer wrote them.
struct Cache {
  std::filesystem::path folder;  // holds the chunk files
  std::vector<std::string> chunks;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  registry();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::filesystem::path root = muki::fuzz::temp_folder("teacher-pass");
  static std::map<std::tuple<int, int, int, int, int>, Cache> caches;

  muki::fuzz::ByteReader in(data, size);
  const uint8_t shape = in.u8(), layout = in.u8();
  std::string chunk(in.rest());
  const int labels = 1 + (shape & 3), samples = (shape >> 2) & 3;
  const bool features = ((shape >> 4) & 1) != 0, fix_checksum = ((shape >> 5) & 1) != 0;
  const int texts_count = 1 + (layout & 7), chunk_size = 1 + ((layout >> 3) & 3);

  g_labels = static_cast<uint64_t>(labels);
  const auto teacher = registry().create_teacher("fuzz_teacher", {"fuzz", "", "/", 0});
  std::vector<std::string> texts;
  for (int i = 0; i < texts_count; ++i) texts.push_back("text " + std::to_string(i));
  muki::core::TeacherPassOptions options;
  options.samples = static_cast<uint32_t>(samples);
  options.features = features;
  options.batch_size = 2;
  options.chunk_size = chunk_size;
  options.split = "fuzz";
  const std::string key = "fuzz-teacher C=" + std::to_string(labels);

  const auto id = std::make_tuple(labels, samples, features ? 1 : 0, texts_count, chunk_size);
  Cache& cache = caches[id];
  if (cache.folder.empty()) {
    options.cache_dir = root / (std::to_string(caches.size()));
    muki::core::run_teacher_pass(*teacher, texts, key, options);
    cache.folder = std::filesystem::directory_iterator(options.cache_dir)->path();
    for (int begin = 0; begin < texts_count; begin += chunk_size)
      cache.chunks.push_back(read_file(cache.folder / ("chunk-" + std::to_string(begin) + ".bin")));
  }
  options.cache_dir = cache.folder.parent_path();
  const size_t target = static_cast<size_t>(layout >> 5) % cache.chunks.size();
  const std::filesystem::path target_path =
      cache.folder / ("chunk-" + std::to_string(target * static_cast<size_t>(chunk_size)) + ".bin");

  // The header is 8 magic bytes, four int64 and the payload's checksum (teacher_pass.cpp).
  constexpr size_t kHeaderSize = 48, kChecksumAt = 40;
  if (fix_checksum && chunk.size() >= kHeaderSize) {
    const uint64_t sum = muki::core::Fingerprint().add(std::string_view(chunk).substr(kHeaderSize)).value();
    std::memcpy(chunk.data() + kChecksumAt, &sum, sizeof(sum));
  }
  write_file(target_path, chunk);
  try {
    const auto out = muki::core::run_teacher_pass(*teacher, texts, key, options);
    require(out.num_examples == texts_count && out.num_labels == labels && out.samples == samples);
    require(out.deterministic.size() == static_cast<size_t>(texts_count * labels));
    require(out.stochastic.size() == static_cast<size_t>(texts_count * samples * labels));
    require(out.features.size() == (features ? static_cast<size_t>(texts_count) * kFeatureDim : 0));
    for (const auto* part : {&out.deterministic, &out.stochastic, &out.features})
      for (float v : *part) require(std::isfinite(v));
  } catch (const std::runtime_error& e) {
    require(std::strstr(e.what(), "non-finite") != nullptr);
  }
  // The next input must find the cache as the writer left it.
  write_file(target_path, cache.chunks[target]);
  return 0;
}
