// Shared by the test executables: where the built plugins and fixtures are, and temp folders.
#pragma once

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <sys/wait.h>

namespace muki::test {

inline std::filesystem::path plugin_dir() { return MUKI_TEST_PLUGIN_DIR; }
inline std::filesystem::path fixture_dir(const std::string& folder) {
  return std::filesystem::path(MUKI_TEST_FIXTURE_DIR) / folder;
}
inline std::filesystem::path source_dir() { return MUKI_TEST_SOURCE_DIR; }
inline std::filesystem::path build_dir() { return MUKI_TEST_BUILD_DIR; }

struct CommandResult {
  int code;
  std::string output;  // stdout and stderr together
};

// Runs a shell command line; the exit code (-1 when it did not exit normally) and its output.
inline CommandResult run_command(const std::string& command_line) {
  CommandResult r{-1, {}};
  FILE* pipe = popen((command_line + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return r;
  std::array<char, 4096> buffer{};
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) r.output.append(buffer.data(), n);
  const int status = pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// A Python that has torch: $MUKI_PYTHON, else Debian's /usr/bin/python3 (python3-torch installs
// there; a python3 earlier on PATH, e.g. pyenv's, may not see it), else python3 on PATH; empty
// when none has.
inline std::string python_with_torch() {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("MUKI_PYTHON")) candidates.emplace_back(env);
  candidates.emplace_back("/usr/bin/python3");
  candidates.emplace_back("python3");
  for (const auto& py : candidates)
    if (run_command("'" + py + "' -c 'import torch'").code == 0) return py;
  return {};
}

// `muki ARGS` from the build tree, with only its own plugin folders.
// How many times `needle` occurs in `text` (a message printed once per line: its lines).
inline size_t count_lines_with(const std::string& text, const std::string& needle) {
  size_t count = 0, pos = 0;
  while ((pos = text.find(needle, pos)) != std::string::npos) {
    ++count;
    pos += needle.size();
  }
  return count;
}

inline CommandResult run_muki(const std::string& args) {
  return run_command("env -u MUKI_PLUGIN_PATH " + (build_dir() / "bin" / "muki").string() + " " + args);
}

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
