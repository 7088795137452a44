// `muki teacher train`: trains one teacher, a classifier over a subset of a dataset's labels, from
// a teacher-training TOML file (schema: validate_teacher_training in config.h; examples in
// configs/teachers/), and writes a checkpoint folder (checkpoint.h) the `native` adapter loads.
//
// Paths: [data] files, tokenizer.vocab and tokenizer.model are relative to the config file;
// teacher.output is relative to the working directory (like an experiment's output_dir), so the
// repository's configs write under ./runs/ when run from the repository root.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <muki/experiment/config.h>
#include <muki/metrics/metrics.h>

namespace muki::core {

class ProcessGroup;

struct SplitCounts {
  int64_t read = 0;      // good rows in the file
  int64_t kept = 0;      // rows whose label is one of the teacher's
  int64_t left_out = 0;  // rows with another label
};

struct TeacherTrainingResult {
  std::filesystem::path output;     // the checkpoint folder
  std::vector<std::string> labels;  // the teacher's labels, in logit order
  SplitCounts train, dev, test;
  std::optional<ClassificationMetrics> dev_metrics, test_metrics;  // absent without that split
  int64_t steps = 0;
  int64_t best_step = 0;
  bool stopped_early = false;
  double train_seconds = 0;  // the training loop alone
  double total_seconds = 0;  // reading, tokenizer, training, evaluation, saving
  std::string report_json;   // what train_report.json holds
};

// Validates `config` (throws ConfigError with every problem as file:line:col), reads the splits
// (throws DataError), builds or trains the tokenizer (CheckpointError / TokenizerError), trains
// and evaluates the model, and writes the checkpoint folder with train_report.json. Progress and
// the final report go to spdlog (stderr). Throws std::invalid_argument when a listed label has no
// training example, or when no example is left to train on.
// In a distributed job (`group`, muki 0.5), every rank calls with the same config: the model
// trains data-parallel (TrainerOptions::group) and rank 0 alone evaluates and writes the
// checkpoint (the others return a result without metrics); a fastText teacher is rank 0's alone.
TeacherTrainingResult train_teacher(const Config& config, ProcessGroup* group = nullptr);

// Trains every teacher of a training file (teacher_entries in config.h), in order; with
// `missing_only`, a teacher whose output folder holds a finished checkpoint is left as it is.
// Returns the results of the teachers trained now. Throws what train_teacher throws. In a job,
// rank 0's folders decide which teachers are missing.
std::vector<TeacherTrainingResult> train_teachers(const Config& file, bool missing_only, ProcessGroup* group = nullptr);

// Whether `folder` holds a finished teacher (train_report.json is written last).
bool has_teacher_checkpoint(const std::filesystem::path& folder);

}  // namespace muki::core
