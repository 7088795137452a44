// Writing the files muki makes so that a killed process never leaves a half-written one.
#pragma once

#include <filesystem>
#include <string_view>

namespace muki::core {

// Writes `text` to `file` through a temporary file renamed into place. Throws std::runtime_error
// naming the file.
void write_file_atomically(const std::filesystem::path& file, std::string_view text);

// Writes `text` to `file` in place, flushed to the disk (fsync) before it returns: every write,
// the fsync and the close are checked, so a full disk is an error, never a short file. On error
// the partial file is removed and std::runtime_error names the file and the reason.
void write_file_durably(const std::filesystem::path& file, std::string_view text);

}  // namespace muki::core
