// `muki sweep`: the Cartesian product of --grid overrides, each combination run with several
// seeds. Every run is an ordinary `muki run` (run_experiment) in
// <sweep folder>/<combination>/seed-<s>, so a finished run is reused and a killed one resumes;
// all share the base config's teacher-pass cache, so only what a combination changes is computed.
// The results: <sweep folder>/results.md and results.csv, the mean and standard deviation over
// the seeds of each combination.
//
// In a distributed job (SweepOptions::run.group, muki 0.5) the runs are spread over the ranks (run
// i of the combinations x seeds goes to rank i mod world_size, and runs there alone); rank 0
// prepares the teachers first, gathers every run's figures and writes the results. Without a
// shared filesystem each run's folder stays on the machine of the rank that ran it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <muki/experiment/config.h>
#include <muki/pipeline/run.h>
#include <muki/registry/registry.h>

namespace muki::core {

// One --grid argument: a dotted key and the TOML values it takes.
struct GridAxis {
  std::string key;
  std::vector<std::string> values;
};

// Parses "KEY=V1,V2,...": values are TOML, split at the commas outside quotes, [] and {}, so
// `integration={strategy="max"},{strategy="weighted",options={tau=0.2}}` has two values.
// Throws std::invalid_argument naming the problem (no '=', an empty value, unbalanced brackets).
GridAxis parse_grid(std::string_view spec);

// A short name for a value in folder names and tables: the `strategy` of an inline table that has
// one, else the value with each character outside [A-Za-z0-9._-] replaced by '_' (at most 40).
std::string value_label(std::string_view toml_value);

// One combination of the grid: a value per axis, and its folder name (the values' labels joined
// by '-'; "base" for an empty grid; a label two combinations share gets "-2", "-3" on the later).
struct GridPoint {
  std::vector<std::string> values;
  std::string label;
};
// Every combination, the first axis varying slowest.
std::vector<GridPoint> grid_points(const std::vector<GridAxis>& grid);

struct MeanStd {
  double mean = 0;
  double std = 0;  // sample standard deviation (n - 1); 0 for fewer than 2 values
  int64_t n = 0;
};
MeanStd mean_std(const std::vector<double>& values);

struct SweepOptions {
  std::vector<GridAxis> grid;
  std::vector<int64_t> seeds = {1};
  std::filesystem::path folder;  // empty: <the base's output_dir>-sweep
  RunOptions run;  // its group: the job the sweep spreads its runs over (each run runs alone)
};

struct SweepResult {
  std::filesystem::path folder;
  std::string markdown;  // what results.md holds
  int64_t runs = 0;
  int64_t failed = 0;  // runs that threw: their message is in the table and the log
};

// `base` is validated and its plugins loaded into `registry` (load_and_validate); each run's config
// (base + grid values + seed + folders) is validated again before it runs.
SweepResult run_sweep(const Config& base, registry::Registry& registry, const SweepOptions& options);

}  // namespace muki::core
