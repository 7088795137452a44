// `muki run`: one experiment from one validated config, end to end, in named stages (run.cpp),
// each taking and returning a small struct:
//
//   open_run            process settings and the run directory (run_directory.h)
//   create_plugins      strategies and teachers, the union labels; labels.txt, plugins.lock
//   read_data           the transfer set, dev and test, mapped onto the union
//   run_teacher_passes  one deterministic pass and the K stochastic passes the uncertainty
//                       strategy asks for, over transfer and test, cached under the cache folder
//                       and resumable chunk by chunk (teacher_pass.h)
//   integrate           certainty scores and integrated targets + weights over the transfer set;
//                       with a [reference] teacher (one trained on all labels), the mean
//                       KL(target || reference) says how close the integrated supervision is to
//                       golden
//   train               the student (student.h), trained on the targets, selected on dev,
//                       resumable
//   evaluate_on_test    accuracy and macro-F1 over the union, on each teacher's labels, teacher
//                       selection, the integrated targets; predictions.tsv
//   summarize           summary.json (run_summary.h)
//   write_run_report    report/report.html (report.h)
// Events go to metrics.jsonl as they happen.
// Labels of the transfer set are read only when the integration strategy declares it needs them
// (`gold`, `oracle`: upper bounds for analysis).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include <muki/experiment/config.h>
#include <muki/experiment/teacher_pass.h>
#include <muki/report/run_summary.h>
#include <muki/registry/registry.h>

namespace muki::core {

class ProcessGroup;

struct RunOptions {
  bool fresh = false;         // discard what the run directory holds and start again
  // Texts per teacher call (TeacherPassOptions' default). The stochastic passes' seeds follow the
  // calls, so it is fixed for a run directory: the command line does not offer it.
  int64_t batch_size = TeacherPassOptions{}.batch_size;
  // A distributed job (muki/model/process_group.h; null: this process alone). Every rank runs the
  // same config: the teacher passes are sharded over the ranks and exchanged, the student trains
  // data-parallel, and rank 0 alone writes the run directory (the others write nothing there and
  // return after training, with an empty summary). (Added in muki 0.5.)
  ProcessGroup* group = nullptr;
};

struct RunResult {
  std::filesystem::path dir;
  bool resumed = false;  // the run directory held part of this run
  RunSummary summary;    // what summary.json holds
};

// `registry` must hold the plugins the config names (load_and_validate). Throws ConfigError
// (config problems found only now: a missing split, labels the strategy needs), DataError (bad
// rows), PluginError (a plugin refusing a call), and std::runtime_error / std::invalid_argument
// with a message that names what failed.
RunResult run_experiment(const Config& config, const registry::Registry& registry,
                         const RunOptions& options);

// [prepare]: trains the teachers of its `teachers` files that have no finished checkpoint yet
// (teacher_training.h), and runs the experiments of its `runs` files that have no summary.json
// yet (their own [prepare] first), so that one `muki run` makes everything its config needs, in
// order. Loads into `registry` the plugins those experiments name. Throws what validation,
// training and run_experiment throw.
void prepare_experiment(const Config& config, registry::Registry& registry, const RunOptions& options);

}  // namespace muki::core
