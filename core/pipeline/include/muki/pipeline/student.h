// The student of `muki run`: a muki classifier over the union label space, trained on the
// integrated targets of the unlabeled transfer set with the loss the integration strategy asks
// for (MUKI step 5: weight x KL(target || student); UHC: the same per teacher block; DFA and CFL:
// vanilla KD plus a loss on the teachers' and the student's features), selected on
// the labeled dev split, resumable, and saved as a checkpoint folder the `native` teacher adapter
// loads (so an integrated student can itself be integrated later).
//
// This header is torch-free: the host's pipeline (run.cpp) hands over plain vectors.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <muki/experiment/config.h>
#include <muki/plugin.h>

namespace muki::core {

class ProcessGroup;

struct StudentEval {
  int64_t step = 0;
  double epoch = 0;
  double train_loss = 0;  // mean since the previous evaluation
  double dev_accuracy = 0;
  double dev_macro_f1 = 0;
};

struct StudentSetup {
  // [student.tokenizer], [student.model], [student.train] and [experiment].device / seed / threads
  // come from here (paths relative to its folder).
  const Config* config = nullptr;
  std::vector<std::string> labels;  // the union, index = class id

  std::vector<std::string> transfer_texts;
  std::vector<float> targets;  // [N, |Y|], rows are distributions (per block for KL_PER_TEACHER)
  std::vector<float> weights;  // [N]
  muki_loss_kind loss = MUKI_LOSS_KL_UNION;
  float temperature = 1.0f;
  std::vector<std::vector<int64_t>> blocks;  // per teacher: its union indices (KL_PER_TEACHER)
  // A feature-level objective (DFA, CFL) added to the KL loss with weight feature_weight, its
  // modules trained at [student.train] feature_lr / feature_weight_decay; it reads every
  // teacher's pooled features of the transfer texts, [N, H_i] each.
  muki_feature_objective feature_objective = MUKI_FEATURE_OBJECTIVE_NONE;
  float feature_weight = 1.0f;
  std::vector<std::vector<float>> teacher_features;
  std::vector<int64_t> teacher_feature_dims;

  std::vector<std::string> dev_texts;  // empty: no model selection, the last weights stay
  std::vector<int64_t> dev_gold;       // union indices
  std::vector<std::string> test_texts;

  std::filesystem::path folder;      // the student checkpoint folder to write
  std::filesystem::path state_file;  // resumable training state
  std::string state_key;             // identifies everything the training depends on
  std::function<void(const StudentEval&)> on_eval;
  // A distributed job (muki/model/process_group.h): the student trains data-parallel
  // (TrainerOptions::group); ranks other than 0 neither predict the test split nor save the
  // checkpoint, and call on_eval never. Null: this process alone. (Added in muki 0.5.)
  ProcessGroup* group = nullptr;
};

struct StudentResult {
  std::vector<int64_t> test_predicted;  // union indices
  std::vector<float> test_probability;  // the student's probability of its prediction
  int64_t steps = 0, planned_steps = 0, best_step = 0, resumed_from_step = 0;
  bool stopped_early = false;
  double best_dev_accuracy = 0, best_dev_macro_f1 = 0;
  double train_seconds = 0;
  std::string device;
  int64_t parameters = 0;
  int64_t vocab_size = 0;
  std::vector<StudentEval> history;  // every evaluation, resumed runs included
};

// Throws ConfigError (bad device), std::invalid_argument (sizes that do not fit), and what the
// trainer and checkpoint writer throw.
StudentResult train_student(const StudentSetup& setup);

}  // namespace muki::core
