// `muki pretrain CONFIG [--set KEY=VALUE]...`: masked-language-model pre-training of an encoder
// that teachers and students fine-tune from (model.init). The work is core::pretrain
// (pretraining.h); this file only parses the command line.
#include <iostream>

#include "cli_common.h"
#include "muki/pipeline/pretraining.h"

namespace muki::cli {

namespace {
constexpr const char* kPretrainUsage =
    "usage: muki pretrain CONFIG [--set KEY=VALUE]... [--log-level LEVEL]\n"
    "\n"
    "Pre-trains muki's Transformer as a masked language model (BERT's recipe) on the unlabeled\n"
    "texts of [data] and writes an encoder folder to [pretrain] output; name that folder as\n"
    "model.init (a teacher's [model], an experiment's [student.model]) to fine-tune from it.\n"
    "A killed run resumes from its last evaluation when started again. Example:\n"
    "configs/pretrain/ddtp-multilingual.toml.";
}  // namespace

int cmd_pretrain(const std::vector<std::string>& args) {
  ConfigOptions cfg;
  std::string log_level;
  po::options_description desc("options");
  add_config(desc, cfg);
  desc.add_options()("help,h", "show this help")(
      "log-level", po::value(&log_level)->default_value("info"), "trace, debug, info, warn, error");
  po::positional_options_description positional;
  positional.add("config", 1);
  if (!parse(args, desc, positional, kPretrainUsage)) return 0;
  setup_logging(log_level);
  const core::PretrainResult r = core::pretrain(load_config(cfg));
  std::cout << r.output.string() << ": " << r.steps << " steps, held-out loss "
            << (r.history.empty() ? std::string("n/a") : std::to_string(r.history.back().heldout_loss)) << ", "
            << r.seconds << " s\n";
  return 0;
}

}  // namespace muki::cli
