#include "muki/experiment/run_directory.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>

#include "muki/io/files.h"
#include "muki/io/fingerprint.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

namespace muki::core {
namespace fs = std::filesystem;

namespace {

constexpr const char* kMukiVersion = MUKI_VERSION;  // the CMake project's version (it said 0.1.0 until 0.5)

void flatten(const toml::node& node, const std::string& key, std::map<std::string, std::string>& out) {
  if (const toml::table* t = node.as_table()) {
    for (auto&& [k, v] : *t) flatten(v, key.empty() ? std::string(k.str()) : key + "." + std::string(k.str()), out);
  } else if (const toml::array* a = node.as_array(); a != nullptr && a->is_array_of_tables()) {
    for (size_t i = 0; i < a->size(); ++i) flatten(*a->get(i), key + "[" + std::to_string(i) + "]", out);
  } else {
    out[key] = toml_value_text(node);
  }
}

constexpr const char* kLockFile = ".lock";

constexpr const char* kAnalysisPrefix = "analysis-";

// Whether `dir` holds anything muki did not put there before a run: its lock file, the temporary
// of run.json when a run was killed while writing it, and `muki analyze`'s reports are muki's.
bool holds_foreign_files(const fs::path& dir) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const bool analysis = name.rfind(kAnalysisPrefix, 0) == 0 &&
                          entry.path().extension() == ".json" && entry.is_regular_file(ec);
    if (name != kLockFile && name.rfind("run.json.tmp", 0) != 0 && !analysis) return true;
  }
  return false;
}

// One run at a time in a folder: an exclusive flock on <dir>/.lock, held while the returned handle
// lives. The kernel drops it when the process dies, so a killed run never leaves a stale lock.
std::shared_ptr<int> lock_folder(const fs::path& dir) {
  const fs::path file = dir / kLockFile;
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(file.string() + ": cannot be opened: " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char holder[32] = {};
    const ssize_t n = ::pread(fd, holder, sizeof(holder) - 1, 0);
    ::close(fd);
    throw std::runtime_error(dir.string() + " is in use by another muki run (pid " +
                             (n > 0 ? std::string(holder, static_cast<size_t>(n)) : std::string("unknown")) +
                             "); wait for it to finish, or give this run another experiment.name");
  }
  const std::string pid = std::to_string(::getpid());
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    // The pid is only for the message above; the lock holds without it.
  }
  return std::shared_ptr<int>(new int(fd), [](int* p) {
    ::close(*p);
    delete p;
  });
}

}  // namespace

std::vector<std::string> config_differences(const toml::table& before, const toml::table& after) {
  std::map<std::string, std::string> a, b;
  flatten(before, "", a);
  flatten(after, "", b);
  std::vector<std::string> out;
  for (const auto& [key, value] : a) {
    const auto it = b.find(key);
    if (it == b.end()) out.push_back(key + ": " + value + " -> (removed)");
    else if (it->second != value) out.push_back(key + ": " + value + " -> " + it->second);
  }
  for (const auto& [key, value] : b)
    if (!a.count(key)) out.push_back(key + ": (absent) -> " + value);
  return out;
}

RunDirectory::RunDirectory(fs::path dir, const Config& config, bool fresh, const Json& launch) : dir_(std::move(dir)) {
  const std::string config_text = config.to_toml();
  const std::string fingerprint = Fingerprint().add(config_text).hex();
  const fs::path run_json = dir_ / "run.json";
  std::error_code ec;
  // Also with --fresh: what is in a folder muki did not make is not muki's to delete (or lock).
  if (!fs::exists(run_json, ec) && fs::exists(dir_, ec) && holds_foreign_files(dir_))
    throw ConfigError({ConfigProblem{config.path().string(), 0, 0,
                                     dir_.string() + " exists and is not a muki run directory (no "
                                                     "run.json): set experiment.output_dir to "
                                                     "another folder"}});
  fs::create_directories(dir_, ec);
  if (ec) throw std::runtime_error(dir_.string() + ": cannot create the run directory: " + ec.message());
  lock_ = lock_folder(dir_);
  if (fs::exists(run_json, ec)) {
    const std::string stored = read_json_file(run_json).value("fingerprint", std::string());
    if (fresh) {
      const fs::path here = fs::weakly_canonical(dir_), cache = fs::weakly_canonical(cache_dir(config));
      if (here == fs::weakly_canonical(fs::current_path()) || path_is_within(cache, here))
        throw ConfigError({ConfigProblem{config.path().string(), 0, 0,
                                         "--fresh would empty " + dir_.string() +
                                             ", which is the working folder or holds the teacher-pass "
                                             "cache; set experiment.output_dir to a folder of its own"}});
      for (const auto& entry : fs::directory_iterator(dir_))
        if (entry.path().filename() != kLockFile) fs::remove_all(entry.path());
    } else if (stored != fingerprint) {
      std::vector<ConfigProblem> problems;
      std::string changes;
      try {
        const Config before = Config::load(dir_ / "config.toml");
        for (const auto& line : config_differences(before.root(), config.root())) changes += "\n  " + line;
      } catch (const ConfigError&) {
        changes = "\n  (its config.toml is unreadable)";
      }
      problems.push_back(ConfigProblem{
          config.path().string(), 0, 0,
          dir_.string() + " holds a run of a different config; changed:" + changes +
              "\nset another experiment.name / experiment.output_dir, or pass --fresh to discard "
              "that run"});
      throw ConfigError(std::move(problems));
    } else {
      resumed_ = true;
    }
  }
  // run.json first: it is what marks the folder as muki's, so a run killed before it is written
  // leaves a folder the next run takes, and one killed after it finds config.toml missing.
  // Written again on a resume: `launch` (the world size) may differ from the first start's.
  Json run = {{"fingerprint", fingerprint},
              {"config", fs::absolute(config.path()).lexically_normal().string()},
              {"muki_version", kMukiVersion}};
  run.update(launch);
  write_file("run.json", json_line(run) + "\n");
  if (!resumed_ || !fs::exists(dir_ / "config.toml", ec)) write_file("config.toml", config_text);
}

RunDirectory RunDirectory::written_elsewhere(fs::path dir) {
  RunDirectory out;
  out.dir_ = std::move(dir);
  out.writes_ = false;
  return out;
}

void RunDirectory::write_file(const std::string& name, const std::string& text) const {
  if (writes_) write_file_atomically(dir_ / name, text);
}

void RunDirectory::log_event(const std::string& event, const Json& fields) const {
  if (!writes_) return;
  const auto now = std::chrono::system_clock::now();
  Json line = {{"event", event}, {"time", std::chrono::duration<double>(now.time_since_epoch()).count()}};
  line.update(fields);
  const fs::path file = dir_ / "metrics.jsonl";
  const std::string text = json_line(line) + "\n";
  auto fail = [&file](int error) {
    throw std::runtime_error(file.string() + ": cannot be written: " + std::strerror(error));
  };
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) fail(errno);
  // The event goes after the last whole line, and a failed write is cut off again: a line left
  // half-written (by a full disk, or a kill in mid-write) would make the file unreadable as JSON
  // lines.
  const off_t size = ::lseek(fd, 0, SEEK_END);
  if (size < 0) {
    const int error = errno;
    ::close(fd);
    fail(error);
  }
  off_t end = size;
  char last = '\n';
  if (size > 0 && ::pread(fd, &last, 1, size - 1) == 1 && last != '\n') {
    std::string all(static_cast<size_t>(size), '\0');
    const ssize_t got = ::pread(fd, all.data(), all.size(), 0);
    const size_t cut = got == size ? all.rfind('\n') : std::string::npos;
    end = cut == std::string::npos ? 0 : static_cast<off_t>(cut + 1);
  }
  off_t at = end;
  int error = end < size && ::ftruncate(fd, end) != 0 ? errno : 0;
  while (error == 0 && at < end + static_cast<off_t>(text.size())) {
    const ssize_t n = ::pwrite(fd, text.data() + (at - end), text.size() - static_cast<size_t>(at - end), at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) error = n == 0 ? EIO : errno;
    else at += n;
  }
  if (error != 0 && ::ftruncate(fd, end) != 0) {
    // The cut-off line is dropped by the next event instead.
  }
  if (::close(fd) != 0 && error == 0) error = errno;
  if (error != 0) fail(error);
}

fs::path analysis_report_path(const fs::path& run_dir, const std::string& split) {
  return run_dir / (kAnalysisPrefix + split + ".json");
}

std::string plugin_lock(const std::vector<const registry::PluginInfo*>& plugins) {
  std::ostringstream out;
  out << "# kind\tname\tversion\tabi\tlibrary\tlibrary_fingerprint\n";
  for (const registry::PluginInfo* p : plugins)
    out << registry::kind_name(p->kind) << "\t" << p->name << "\t" << p->version << "\t"
        << registry::format_abi(p->abi_version) << "\t" << p->library_path.string() << "\t"
        << Fingerprint().add_path(p->library_path).hex() << "\n";
  return out.str();
}

}  // namespace muki::core
