// The tables that describe a classifier to train, shared by `muki teacher train` ([tokenizer],
// [model], [train]) and the student of `muki run` ([student.tokenizer], [student.model],
// [student.train]). Their schemas are checked by config.cpp before these run; here a missing
// table or key means "the default".
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include <muki/experiment/config.h>
#include <muki/model/checkpoint.h>
#include <muki/model/classifier_trainer.h>
#include <muki/model/models.h>
#include <muki/model/process_group.h>
#include <muki/text/tokenizer.h>

namespace muki::core {

struct TrainingTokenizer {
  TokenizerSpec spec;
  std::filesystem::path file;  // the tokenizer file, which save_checkpoint copies in
  std::unique_ptr<Tokenizer> tokenizer;
};

// The tokenizer a [tokenizer] table asks for (`table` may be null: a WordPiece vocabulary of 8000
// entries built from `texts`). `vocab` / `model` are paths relative to the config file; without
// them the vocabulary is built (WordPiece) or the model trained (SentencePiece) on `texts` and
// written into `folder`. `key` names the table in messages ("tokenizer", "student.tokenizer").
// Throws ConfigError at the key (a SentencePiece tokenizer in a build without it), TokenizerError
// and CheckpointError (files).
TrainingTokenizer make_training_tokenizer(const toml::table* table, const Config& config,
                                          const std::string& key,
                                          const std::vector<std::string>& texts,
                                          const std::filesystem::path& folder);

// ModelConfig from a [model] table (null: every default), with the sizes the data decide.
ModelConfig model_config_from(const toml::table* table, int64_t vocab_size, int64_t num_labels);

// A classifier ready to train, with its tokenizer.
struct TrainingModel {
  TrainingTokenizer tokenizer;
  ModelConfig config;
  Classifier model;             // on the CPU, in training mode
  std::filesystem::path init;   // the pre-trained encoder it starts from; empty: from scratch
};

// The classifier [tokenizer] and [model] describe (either may be null), with `num_labels` outputs.
// From scratch: the tokenizer of make_training_tokenizer (over `texts`, into `folder`) and
// weights drawn from torch's generator seeded with `seed`. With [model] init = PATH (muki 0.3; a
// `muki pretrain` encoder, relative to the config file): the encoder's tokenizer and sizes
// ([model] dropout and pooling may still be set; config validation refuses the other keys and a
// [tokenizer] table) and its weights; only the classification layer is drawn from `seed`.
// `prefix` names the tables in messages ("", "student."). Throws what make_training_tokenizer
// throws and CheckpointError (the encoder folder).
TrainingModel make_training_model(const toml::table* tokenizer, const toml::table* model, const Config& config,
                                  const std::string& prefix, const std::vector<std::string>& texts,
                                  const std::filesystem::path& folder, int64_t num_labels, uint64_t seed);

// The device the config's `key` ("teacher.device", ...) names; "auto" when absent. Throws
// ConfigError naming the key when no such device can be used.
torch::Device device_from(const Config& config, const std::string& key);

// TrainerOptions from a [train] table (null: every default); seed and name are the caller's.
TrainerOptions trainer_options_from(const toml::table* table);

// The folder a model's files (its tokenizer) go to while it trains: `folder` alone or on rank 0
// of a job; on the other ranks, which save nothing, a temporary folder of their own, removed when
// the object goes (`name` tells it apart).
class TrainingFolder {
 public:
  TrainingFolder(const ProcessGroup* group, std::filesystem::path folder, const std::string& name);
  ~TrainingFolder();
  const std::filesystem::path& path() const { return path_; }
  TrainingFolder(const TrainingFolder&) = delete;
  TrainingFolder& operator=(const TrainingFolder&) = delete;

 private:
  std::filesystem::path path_;
  bool temporary_ = false;
};

}  // namespace muki::core
