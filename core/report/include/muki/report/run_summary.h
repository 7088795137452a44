// summary.json: the results of one run, written by `muki run` and read by its report, `muki sweep`
// and `muki compare`. On disk it is one flat JSON object with dotted keys ("test.accuracy",
// "test.teacher.<name>.accuracy", "test.class.<label>.recall"), so any JSON tool reads it; in
// code it is RunSummary, and this file's implementation is the only place that knows the keys.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <muki/io/json.h>

namespace muki::core {

struct RunSummary {
  // Every option of a strategy's schema, as given or by its default, as a TOML literal: the
  // summary says exactly how the strategy ran ("<section>.options.<name>").
  struct StrategyOption {
    std::string section;  // "uncertainty" | "integration"
    std::string name;
    std::string value;
  };
  std::vector<StrategyOption> options;

  std::string experiment;
  std::string run_dir;
  std::string uncertainty;  // "none" when the integration strategy ignores scores
  int64_t samples = 0;      // K stochastic teacher passes
  // How the certainty scores were made comparable across teachers ([uncertainty] calibrate):
  // "dev" (z-scored per teacher against its own texts of the dev split), "reference" (against the
  // [[teachers]] reference texts, the dev split for a teacher without), "label-free" (some teacher
  // had neither: its confident predictions on the transfer set stood in), "fitted" or "fitted,
  // label-free" (a strategy fitted on those texts, which calibrates itself), "off" (calibrate =
  // false), "none: a teacher has no held-out texts" (asked for, impossible); empty when nothing
  // was scored. Summaries written before muki 0.2 have none.
  std::string calibration;
  std::string integration;
  int64_t union_size = 0;
  int64_t seed = 0;
  std::string device;
  int64_t threads = 0;
  bool deterministic = false;
  // The job the run ran in: world_size processes (1: alone) over c10d backend `backend` ("none"
  // alone). Summaries written before muki 0.5 have neither: 1 and "none".
  int64_t world_size = 1;
  std::string backend = "none";

  struct Transfer {
    int64_t examples = 0;
    double mean_weight = 0;
    // Mean KL(target || the [reference] teacher), when there is one and the targets are
    // distributions over the whole union.
    std::optional<double> kl_to_reference;
  } transfer;

  struct TeacherAccuracy {
    std::string teacher;
    double accuracy = 0;   // over the test examples whose gold label is one of the teacher's
    int64_t examples = 0;  // how many those are
  };
  struct ClassRecall {
    std::string label;
    double recall = 0;
  };
  struct Test {
    double accuracy = 0;  // over the union
    double macro_f1 = 0;
    int64_t examples = 0;
    int64_t left_out = 0;  // labelled with a label no teacher knows
    std::vector<TeacherAccuracy> teachers;  // in the config's order
    std::vector<ClassRecall> classes;       // in the union's order
    // When the strategies scored the teachers: how often the most certain teacher owns the gold
    // label, and how well certainty separates owners from the others.
    std::optional<double> selection_accuracy, selection_auroc;
    double target_accuracy = 0;  // argmax of the integrated target is the gold label
  } test;

  struct Dev {
    double best_accuracy = 0, best_macro_f1 = 0;
  } dev;

  struct Train {
    int64_t steps = 0, planned_steps = 0, best_step = 0, resumed_from_step = 0;
    bool stopped_early = false;
    double seconds = 0;
  } train;

  int64_t student_parameters = 0;

  struct TeacherPass {
    double seconds = 0;
    int64_t chunks_cached = 0, chunks_computed = 0;
    // Stochastic passes run / asked for over the computed chunks: fewer only with adaptive K
    // ([uncertainty] adaptive_tolerance). Absent from summaries written before muki 0.4 (0).
    int64_t samples_drawn = 0, samples_asked = 0;
  } teacher_pass;

  double total_seconds = 0;
};

// summary.json's object, keys in a fixed order.
Json to_json(const RunSummary& summary);

// Reads what to_json wrote. Throws std::runtime_error naming a missing or mistyped key.
RunSummary run_summary_from_json(const Json& json);

// Reads `run_dir`/summary.json. Throws std::runtime_error naming the file.
RunSummary read_run_summary(const std::filesystem::path& run_dir);

// The teacher a key "test.teacher.<name>.accuracy" reports on; empty for any other key.
std::string teacher_of_accuracy_key(const std::string& key);

// A figure as tables of runs show it.
struct SummaryFigure {
  std::string key;              // its summary.json key: "test.accuracy"
  std::string column;           // its column name: "test acc"
  std::optional<double> value;  // absent when the run did not measure it
};

// The accuracies tables of runs set side by side: over the union, macro-F1, teacher selection,
// the integrated targets, then each teacher's.
std::vector<SummaryFigure> accuracy_figures(const RunSummary& summary);

}  // namespace muki::core
