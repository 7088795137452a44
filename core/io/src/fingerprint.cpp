#include "muki/io/fingerprint.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace muki::core {
namespace fs = std::filesystem;

Fingerprint& Fingerprint::add(std::string_view bytes) {
  for (unsigned char c : bytes) {
    hash_ ^= c;
    hash_ *= 0x100000001b3ull;
  }
  // A separator so that add("ab") + add("c") differs from add("a") + add("bc").
  return add(static_cast<uint64_t>(bytes.size()));
}

Fingerprint& Fingerprint::add(uint64_t value) {
  for (int i = 0; i < 8; ++i) {
    hash_ ^= (value >> (8 * i)) & 0xffu;
    hash_ *= 0x100000001b3ull;
  }
  return *this;
}

namespace {
// Files are hashed in pieces of this size, the last one short (possibly empty): add() marks each
// piece's length, so the piece size is part of every checksum ever written.
constexpr size_t kPiece = 1 << 16;
}  // namespace

Fingerprint& Fingerprint::add_path(const fs::path& path) {
  std::vector<fs::path> files;
  if (fs::is_directory(path)) {
    for (const auto& entry : fs::recursive_directory_iterator(path))
      if (entry.is_regular_file()) files.push_back(entry.path());
    std::sort(files.begin(), files.end());
  } else {
    files.push_back(path);
  }
  for (const auto& file : files) {
    add(fs::relative(file, path.has_parent_path() ? path.parent_path() : path).string());
    add_file_content(file);
  }
  return *this;
}

Fingerprint& Fingerprint::add_file_content(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(file.string() + ": cannot be read for fingerprinting");
  std::vector<char> buffer(kPiece);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    add(std::string_view(buffer.data(), static_cast<size_t>(in.gcount())));
  }
  return *this;
}

Fingerprint& Fingerprint::add_file_bytes(std::string_view content) {
  for (size_t at = 0;; at += kPiece) {
    const std::string_view piece = content.substr(at, kPiece);
    add(piece);
    if (piece.size() < kPiece) return *this;
  }
}

std::string Fingerprint::hex() const {
  char out[17];
  std::snprintf(out, sizeof(out), "%016llx", static_cast<unsigned long long>(hash_));
  return out;
}

}  // namespace muki::core
