#include "muki/io/files.h"

#include <fstream>
#include <stdexcept>
#include <system_error>

#include <unistd.h>

namespace muki::core {
namespace fs = std::filesystem;

void write_file_atomically(const fs::path& file, std::string_view text) {
  // Per process: two processes writing the same file (a shared cache chunk) must not share a
  // temporary; the last rename wins with a complete file either way.
  const fs::path tmp = file.string() + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) throw std::runtime_error(tmp.string() + ": cannot be written");
  }
  std::error_code ec;
  fs::rename(tmp, file, ec);
  if (ec) throw std::runtime_error(file.string() + ": cannot be written: " + ec.message());
}

}  // namespace muki::core
