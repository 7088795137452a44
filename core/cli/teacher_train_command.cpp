// `muki teacher train CONFIG [--set KEY=VALUE]...`: trains one teacher on the labeled examples of
// its label subset and writes a checkpoint folder for the `native` adapter. The work is
// core::train_teacher (teacher_training.h); this file only parses the command line.
#include <iostream>

#include "cli_common.h"
#include "muki/model/process_group.h"
#include "muki/pipeline/teacher_training.h"

namespace muki::cli {

namespace {
constexpr const char* kTeacherUsage =
    "usage: muki teacher train CONFIG [--set KEY=VALUE]... [--missing-only] [--log-level LEVEL]\n"
    "\n"
    "Trains each teacher of the file ([teacher], or several [[teacher]] entries) on the examples\n"
    "whose label is in its `labels` (all labels when absent: a supervised model) and writes a\n"
    "checkpoint folder to its `output`. Examples: configs/teachers/*.toml.\n"
    "Under torchrun (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set) the ranks train each teacher\n"
    "data-parallel and rank 0 writes the checkpoints.";
}  // namespace

int cmd_teacher_train(const std::vector<std::string>& args) {
  if (args.empty() || args[0] != "train") {
    if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
      std::cout << kTeacherUsage << "\n";
      return 0;
    }
    std::cerr << "muki teacher: expected the sub-command 'train'"
              << (args.empty() ? std::string() : ", not '" + args[0] + "'") << "\n\n"
              << kTeacherUsage << "\n";
    return 2;
  }
  ConfigOptions cfg;
  std::string log_level;
  bool missing_only = false;
  po::options_description desc("options");
  add_config(desc, cfg);
  desc.add_options()("help,h", "show this help")(
      "log-level", po::value(&log_level)->default_value("info"), "trace, debug, info, warn, error")(
      "missing-only", po::bool_switch(&missing_only),
      "leave alone the teachers whose output folder holds a finished checkpoint");
  po::positional_options_description positional;
  positional.add("config", 1);
  if (!parse(std::vector<std::string>(args.begin() + 1, args.end()), desc, positional, kTeacherUsage))
    return 0;
  setup_logging(log_level);
  const core::Config config = load_config(cfg);
  const std::unique_ptr<core::ProcessGroup> job = join_job(nullptr);
  const std::vector<core::TeacherTrainingResult> results = core::train_teachers(config, missing_only, job.get());
  if (job != nullptr) job->finish();
  if (job != nullptr && job->rank() != 0) return 0;  // rank 0 reports and writes the checkpoints
  // One summary line per teacher on stdout; the details are in each train_report.json.
  for (const core::TeacherTrainingResult& result : results)
    std::cout << result.output.string() << ": dev accuracy "
              << (result.dev_metrics ? std::to_string(result.dev_metrics->accuracy) : "n/a")
              << ", test accuracy "
              << (result.test_metrics ? std::to_string(result.test_metrics->accuracy) : "n/a")
              << ", " << result.train_seconds << " s\n";
  return 0;
}

}  // namespace muki::cli
