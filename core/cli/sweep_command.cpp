// `muki sweep CONFIG --grid KEY=V1,V2 ... [--seeds 1,2,3]`: the Cartesian product of the grid
// overrides, each with every seed (core/sweep.h); prints the results table.
#include <algorithm>
#include <iostream>
#include <sstream>

#include "cli_common.h"
#include "muki/model/process_group.h"
#include "muki/pipeline/sweep.h"

namespace muki::cli {

int cmd_sweep(const std::vector<std::string>& args) {
  CommonOptions common;
  ConfigOptions cfg;
  std::vector<std::string> grid;
  std::string seeds = "1", output;
  core::SweepOptions options;
  po::options_description desc("options");
  add_config(desc, cfg);
  desc.add_options()("grid,g", po::value(&grid)->composing(),
                     "KEY=V1,V2,...: TOML values to try for KEY (repeatable: the runs are the "
                     "Cartesian product)")(
      "seeds", po::value(&seeds)->default_value("1"), "comma-separated experiment seeds")(
      "output,o", po::value(&output), "the sweep's folder (default: <output_dir>-sweep)");
  if (!parse_config_command(
          args, desc, common, "info",
          "usage: muki sweep CONFIG --grid KEY=V1,V2 [--grid ...] [--seeds 1,2,3] [--set KEY=VALUE]...\n\n"
          "Example: muki sweep configs/quickstart.toml --seeds 1,2,3 \\\n"
          "  --grid 'uncertainty={strategy=\"entropy\"},{strategy=\"mc_dropout\",options={samples=16}}' \\\n"
          "  --grid integration.strategy='\"max\",\"weighted\"'\n\n"
          "Under torchrun the runs are spread over the ranks and rank 0 writes the table."))
    return 0;
  for (const std::string& g : grid) {
    try {
      options.grid.push_back(core::parse_grid(g));
    } catch (const std::invalid_argument& e) {
      throw po::error(e.what());
    }
  }
  options.seeds.clear();
  std::stringstream list(seeds);
  for (std::string s; std::getline(list, s, ',');) {
    size_t used = 0;
    int64_t seed = -1;
    try {
      seed = std::stoll(s, &used);
    } catch (const std::exception&) {
    }
    if (s.empty() || used != s.size() || seed < 0)
      throw po::error("--seeds: '" + s + "' is not a seed (a non-negative integer)");
    if (std::find(options.seeds.begin(), options.seeds.end(), seed) != options.seeds.end())
      throw po::error("--seeds: " + s + " is given twice (it would count twice in the mean)");
    options.seeds.push_back(seed);
  }
  options.folder = output;
  setup_logging(common.log_level);

  const core::Config config = load_config(cfg);
  registry::Registry registry;
  load_plugins_and_validate(config, registry, common);
  const std::unique_ptr<core::ProcessGroup> job = join_job(config.root()["distributed"].as_table());
  options.run.group = job.get();
  const core::SweepResult result = core::run_sweep(config, registry, options);
  if (job != nullptr) job->finish();
  if (job != nullptr && job->rank() != 0) return 0;  // rank 0 prints and writes the table
  std::cout << result.markdown << "\n(" << (result.folder / "results.md").string() << ", results.csv)\n";
  return result.failed == 0 ? 0 : 1;
}

}  // namespace muki::cli
