// Shared by the test executables: where the built plugins and fixtures are, and temp folders.
#pragma once

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace muki::test {

inline std::filesystem::path plugin_dir() { return MUKI_TEST_PLUGIN_DIR; }
inline std::filesystem::path fixture_dir(const std::string& folder) {
  return std::filesystem::path(MUKI_TEST_FIXTURE_DIR) / folder;
}
inline std::filesystem::path source_dir() { return MUKI_TEST_SOURCE_DIR; }
inline std::filesystem::path build_dir() { return MUKI_TEST_BUILD_DIR; }

// A fresh folder under the system temp dir, removed when the object goes.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("muki-test-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path write(const std::string& name, const std::string& content) const {
    const auto p = path_ / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }

 private:
  std::filesystem::path path_;
};

}  // namespace muki::test
