#include "muki/io/files.h"

#include <fstream>
#include <stdexcept>
#include <system_error>

namespace muki::core {
namespace fs = std::filesystem;

void write_file_atomically(const fs::path& file, std::string_view text) {
  const fs::path tmp = file.string() + ".tmp";
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
