// What the fuzzers share: turning the input bytes into sections, numbers and files.
// README.md (this folder) describes how each fuzzer decodes its input.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace muki::fuzz {

// Text inputs with several parts (a config and its overrides, a vocabulary and texts) separate
// them by this line. It is no valid TOML, JSON or vocabulary entry, so seeds stay readable files.
inline constexpr std::string_view kSectionSeparator = "\n%%\n";

// The input cut at every separator, at most `max_sections` parts (the last keeps the rest).
inline std::vector<std::string_view> split_sections(const uint8_t* data, size_t size,
                                                    size_t max_sections) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> sections;
  while (sections.size() + 1 < max_sections) {
    const size_t at = rest.find(kSectionSeparator);
    if (at == std::string_view::npos) break;
    sections.push_back(rest.substr(0, at));
    rest.remove_prefix(at + kSectionSeparator.size());
  }
  sections.push_back(rest);
  return sections;
}

// Binary inputs, read front to back; past the end every read gives zeros, so any input decodes.
class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
  template <class T>
  T raw() {
    T value{};
    const size_t n = std::min(sizeof(T), size_ - pos_);
    std::memcpy(&value, data_ + pos_, n);
    pos_ += n;
    return value;
  }
  uint32_t u32() { return raw<uint32_t>(); }
  uint64_t u64() { return raw<uint64_t>(); }
  double f64() { return raw<double>(); }
  std::string_view rest() {
    std::string_view r(reinterpret_cast<const char*>(data_ + pos_), size_ - pos_);
    pos_ = size_;
    return r;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// A file in memory (memfd) that the readers open by path like any other: no disk I/O per input.
class MemoryFile {
 public:
  explicit MemoryFile(const char* name) : fd_(memfd_create(name, 0)) {
    if (fd_ < 0) throw std::runtime_error(std::string("memfd_create failed: ") + std::strerror(errno));
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  MemoryFile(const MemoryFile&) = delete;
  MemoryFile& operator=(const MemoryFile&) = delete;
  ~MemoryFile() { close(fd_); }

  void assign(std::string_view bytes) const {
    if (ftruncate(fd_, 0) != 0 ||
        pwrite(fd_, bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size()))
      throw std::runtime_error("cannot write the memory file " + path_);
  }
  const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
};

// A fresh empty folder under $TMPDIR (or /tmp), removed at exit: a base folder for configs, so
// that relative paths in fuzzed input reach nothing real, or a cache folder.
inline std::filesystem::path temp_folder(const char* what) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/muki-fuzz-" +
                        what + "-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr)
    throw std::runtime_error("cannot create a folder like " + pattern);
  static std::vector<std::filesystem::path> folders;
  if (folders.empty())
    std::atexit([] {
      std::error_code ec;
      for (const auto& f : folders) std::filesystem::remove_all(f, ec);
    });
  folders.emplace_back(pattern);
  return folders.back();
}

}  // namespace muki::fuzz
