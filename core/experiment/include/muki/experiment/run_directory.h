// The run directory of an experiment: everything `muki run` writes, and what a second `muki run`
// of the same config resumes from.
//
//   config.toml     the resolved config (file + --set overrides); its fingerprint binds the folder
//   run.json        {"fingerprint", "config", "muki_version", "world_size", "backend"}
//   plugins.lock    one line per plugin used: kind, name, version, ABI, library, file fingerprint
//   labels.txt      the union label space, one label a line, index = line
//   metrics.jsonl   one flat JSON object per event ({"event": "eval", ...}), appended, flushed
//   summary.json    the final result, one flat object (dotted keys: "test.accuracy")
//   predictions.tsv the student's test predictions (id, gold, predicted, probability)
//   student/        the student as a checkpoint folder (the `native` teacher adapter loads it)
//   state/          the resumable training state
//   analysis-<split>.json  `muki analyze`'s report, which may come before any run
// Teacher passes are cached outside it, under the cache folder, so that experiments that differ
// only in their strategies share them.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <muki/experiment/config.h>
#include <muki/io/json.h>
#include <muki/registry/registry.h>

namespace muki::core {

// The keys whose values differ between two configs, as "key: old -> new" lines (dotted keys,
// array elements as teachers[0].name): changed and removed keys in key order, then added ones.
std::vector<std::string> config_differences(const toml::table& before, const toml::table& after);

class RunDirectory {
 public:
  // Creates `dir` or opens it for `config`. A folder that holds a run of another resolved config
  // is refused with a ConfigError that lists the keys that changed, unless `fresh`: then its
  // contents are removed first. `fresh` also discards a run of the same config (start again).
  // The folder is locked (<dir>/.lock) while the object lives: a second run into it is refused
  // at once with std::runtime_error naming the holder's pid.
  // `launch` (an object) adds its members to run.json (the job's world_size and backend).
  RunDirectory(std::filesystem::path dir, const Config& config, bool fresh, const Json& launch = Json::object());
  // The run directory as the other ranks of a distributed job see it (rank 0 writes it): path()
  // and file() name its files, write_file and log_event do nothing, nothing is created or locked.
  // (Added in muki 0.5.)
  static RunDirectory written_elsewhere(std::filesystem::path dir);

  const std::filesystem::path& path() const { return dir_; }
  // True when the folder already held (part of) a run of this config.
  bool resumed() const { return resumed_; }
  std::filesystem::path file(const std::string& name) const { return dir_ / name; }

  // Writes a file of the run atomically (files.h). Throws std::runtime_error naming the file.
  // (Neither this nor log_event writes anything for a directory written_elsewhere.)
  void write_file(const std::string& name, const std::string& text) const;
  // Appends one event line to metrics.jsonl and flushes it: "event", "time", then the members of
  // the object `fields`.
  void log_event(const std::string& event, const Json& fields) const;

 private:
  RunDirectory() = default;
  std::filesystem::path dir_;
  bool resumed_ = false;
  bool writes_ = true;
  std::shared_ptr<int> lock_;  // the open, flock()ed lock file
};

// Where `muki analyze` writes its report on `split` for the experiment whose run folder is
// `run_dir`. The run folder owns it: a folder holding only such reports is still muki's.
std::filesystem::path analysis_report_path(const std::filesystem::path& run_dir,
                                           const std::string& split);

// plugins.lock: the plugins a run used, with a fingerprint of each library file.
std::string plugin_lock(const std::vector<const registry::PluginInfo*>& plugins);

}  // namespace muki::core
