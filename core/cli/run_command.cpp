// `muki run CONFIG [--set KEY=VALUE]... [--fresh]`: one experiment end to end (core/run.h). The
// last stdout line is the run's result; the details are in the run directory.
#include <cstdio>
#include <iostream>

#include "cli_common.h"
#include "muki/model/process_group.h"
#include "muki/pipeline/run.h"

namespace muki::cli {

int cmd_run(const std::vector<std::string>& args) {
  CommonOptions common;
  ConfigOptions cfg;
  core::RunOptions options;
  po::options_description desc("options");
  add_config(desc, cfg);
  desc.add_options()("fresh", po::bool_switch(&options.fresh),
                     "discard what the run directory holds and start again");
  if (!parse_config_command(
          args, desc, common, "info",
          "usage: muki run CONFIG [--set KEY=VALUE]... [--fresh]\n\n"
          "Runs the teachers over the transfer set (cached), integrates their outputs with the\n"
          "configured uncertainty and integration strategies, trains the student and evaluates\n"
          "it on the test split. A killed run resumes when started again with the same config.\n\n"
          "Under torchrun (or any launcher that sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT)\n"
          "each process is one rank of a job: the teacher passes are sharded over the ranks, the\n"
          "student trains data-parallel, and rank 0 writes the run directory ([distributed] in the\n"
          "config: backend, timeout_s, chunk_size)."))
    return 0;
  setup_logging(common.log_level);

  const core::Config config = load_config(cfg);
  registry::Registry registry;
  load_plugins_and_validate(config, registry, common);
  const std::unique_ptr<core::ProcessGroup> job = join_job(config.root()["distributed"].as_table());
  options.group = job.get();
  core::prepare_experiment(config, registry, options);
  const core::RunResult result = core::run_experiment(config, registry, options);
  if (job != nullptr) job->finish();
  if (job != nullptr && job->rank() != 0) {
    std::printf("%s: rank %d of %d done (rank 0 writes the results to %s)\n", config.path().string().c_str(),
                job->rank(), job->world_size(), result.dir.string().c_str());
    return 0;
  }
  std::printf("%s: test accuracy %.4f, macro-F1 %.4f (%s/summary.json)\n",
              config.path().string().c_str(), result.summary.test.accuracy, result.summary.test.macro_f1,
              result.dir.string().c_str());
  return 0;
}

}  // namespace muki::cli
