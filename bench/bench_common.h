// Shared by muki's benchmarks: reading the first N texts of a dataset, writing the token ids the
// PyTorch reference (bench/reference.py) reads, and a tiny argument parser. Benchmarks print one
// JSON object on stdout; bench/run.sh puts them side by side with the reference.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <muki/data/dataset.h>
#include <muki/model/checkpoint.h>
#include <muki/model/text_encoding.h>

namespace muki::bench {

// --key value pairs; a key given twice keeps every value (for --checkpoint).
class Args {
 public:
  Args(int argc, char** argv) {
    for (int i = 1; i + 1 < argc; i += 2) {
      const std::string key = argv[i];
      if (key.rfind("--", 0) != 0) throw std::invalid_argument("expected --key value, got " + key);
      pairs_.emplace_back(key.substr(2), argv[i + 1]);
    }
  }
  std::vector<std::string> all(const std::string& key) const {
    std::vector<std::string> out;
    for (const auto& [k, v] : pairs_)
      if (k == key) out.push_back(v);
    return out;
  }
  std::string get(const std::string& key, const std::string& fallback = "") const {
    const auto values = all(key);
    if (values.empty()) {
      if (fallback.empty()) throw std::invalid_argument("--" + key + " is required");
      return fallback;
    }
    return values.back();
  }
  int64_t get_int(const std::string& key, int64_t fallback) const {
    return std::stoll(get(key, std::to_string(fallback)));
  }
  std::vector<int64_t> get_ints(const std::string& key, const std::string& fallback) const {
    std::vector<int64_t> out;
    std::string list = get(key, fallback);
    for (size_t start = 0; start <= list.size();) {
      const size_t comma = std::min(list.find(',', start), list.size());
      out.push_back(std::stoll(list.substr(start, comma - start)));
      start = comma + 1;
    }
    return out;
  }

 private:
  std::vector<std::pair<std::string, std::string>> pairs_;
};

// Progress lines go to stderr: stdout carries the JSON.
inline void log_to_stderr() { spdlog::set_default_logger(spdlog::stderr_color_mt("bench")); }

inline std::vector<std::string> first_texts(const std::filesystem::path& file, int64_t n) {
  core::DatasetSpec spec;
  spec.path = file;
  std::vector<std::string> texts;
  for (auto& e : core::read_all(spec).examples) {
    if (static_cast<int64_t>(texts.size()) == n) break;
    texts.push_back(std::move(e.text));
  }
  if (static_cast<int64_t>(texts.size()) < n)
    throw std::invalid_argument(file.string() + " has only " + std::to_string(texts.size()) + " texts");
  return texts;
}

// The ids and mask [N, L] as the checkpoint's tokenizer makes them, padded to max_length, written
// as raw int64 (ids, then mask) for the reference: both sides then feed the model the same tokens.
inline core::EncodedTexts write_ids(const core::LoadedCheckpoint& checkpoint,
                                    const std::vector<std::string>& texts,
                                    const std::filesystem::path& file) {
  core::EncodedTexts enc =
      core::encode_texts(*checkpoint.tokenizer, texts, checkpoint.model_config.max_length, true);
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  for (const torch::Tensor& t : {enc.input_ids, enc.attention_mask}) {
    const torch::Tensor c = t.contiguous();
    out.write(reinterpret_cast<const char*>(c.data_ptr<int64_t>()),
              static_cast<std::streamsize>(c.numel() * sizeof(int64_t)));
  }
  if (!out) throw std::runtime_error(file.string() + ": cannot be written");
  return enc;
}

// LibTorch's operator profiler over a scope when --profile FILE is given (a Chrome trace that
// bench/profile.py turns into a table of where the time goes); nothing otherwise. The profiler
// adds a few microseconds per operator, so a profiled run's total time is not a benchmark figure.
class Profile {
 public:
  explicit Profile(const Args& args) {
    if (const auto file = args.all("profile"); !file.empty())
      guard_ = std::make_unique<torch::autograd::profiler::RecordProfile>(file.back());
  }

 private:
  std::unique_ptr<torch::autograd::profiler::RecordProfile> guard_;
};

}  // namespace muki::bench
