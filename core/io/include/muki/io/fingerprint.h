// Content fingerprints for cache keys: 64-bit FNV-1a over bytes, strings and file contents.
// Not cryptographic; it only has to change when any input of a cached computation changes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace muki::core {

class Fingerprint {
 public:
  Fingerprint& add(std::string_view bytes);
  Fingerprint& add(uint64_t value);
  // Adds the content of a file, or of every regular file under a folder (sorted by relative
  // path, names included). Throws std::runtime_error naming the path if it cannot be read.
  Fingerprint& add_path(const std::filesystem::path& path);
  // The bytes of one file, streamed, without its name (a checksum that survives a rename).
  // Throws std::runtime_error naming the file when it cannot be read.
  Fingerprint& add_file_content(const std::filesystem::path& file);
  // What add_file_content gives for a file holding `content`, without the file (for bytes about
  // to be written, or just written).
  Fingerprint& add_file_bytes(std::string_view content);
  uint64_t value() const { return hash_; }
  std::string hex() const;  // 16 lowercase hex digits

 private:
  uint64_t hash_ = 0xcbf29ce484222325ull;
};

}  // namespace muki::core
