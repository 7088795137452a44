// Writing the files muki makes so that a killed process never leaves a half-written one.
#pragma once

#include <filesystem>
#include <string_view>

namespace muki::core {

// Writes `text` to `file` through a temporary file renamed into place. Throws std::runtime_error
// naming the file.
void write_file_atomically(const std::filesystem::path& file, std::string_view text);

}  // namespace muki::core
