// muki's self-describing classifier checkpoint: a folder that holds everything needed to run the
// model on raw text, readable by LibTorch 1.13 and 2.x alike.
//
//   config.toml        format + version, [model] (ModelConfig), [tokenizer] (TokenizerSpec)
//   labels.txt         one label per line; line i = logit i
//   vocab.txt | tokenizer.model   the tokenizer file (WordPiece vocabulary / SentencePiece model)
//   weights.pt         every parameter and buffer by its module path ("layers.0.query.weight"),
//                      written as named tensors with torch::serialize::OutputArchive (a TorchScript
//                      archive of plain tensors, not a pickled module: no Python class needed)
//   weights.pt.checksum  a fingerprint of weights.pt, verified on load (muki 0.2; absent in older
//                      checkpoints, which load unchecked)
//   train_report.json  how it was trained and how well it did (written by the trainer; optional
//                      for loading)
#pragma once

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/types.h>

namespace torch::serialize {
class OutputArchive;
}

#include <muki/model/models.h>
#include <muki/text/tokenizer.h>

namespace muki::core {

// Thrown on anything wrong with a checkpoint folder; what() names the file (and the tensor or
// key) that is missing, unreadable or inconsistent.
class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// How to rebuild the tokenizer; the [tokenizer] table of config.toml.
struct TokenizerSpec {
  std::string type;        // "wordpiece" | "sentencepiece"
  std::string file;        // the tokenizer file's name inside the folder
  bool lowercase = true;   // wordpiece: uncased (also strips accents)
};

// Loads the tokenizer `spec` describes from `folder`. Throws CheckpointError naming the file.
std::unique_ptr<Tokenizer> load_tokenizer(const TokenizerSpec& spec,
                                          const std::filesystem::path& folder);

// The serialized bytes of `archive`, for muki to write: LibTorch's own file writer calls
// std::terminate when a write fails (its destructor throws again while the first error unwinds)
// and never checks its final flush, so a full disk left a short archive behind.
std::string archive_bytes(torch::serialize::OutputArchive& archive);

// A resumable training state (the trainer's, `muki pretrain`'s; muki 0.3 shares this): the
// archive's bytes written to a temporary file durably and renamed over `file`, after
// <file>.checksum has recorded their fingerprint ahead of the previous one (two are kept), so a
// run killed between the two steps still finds its older state listed. LibTorch reads an archive
// with overwritten bytes inside a tensor without complaint: the checksum is what catches it.
// Throws std::runtime_error naming the file.
void write_state_archive(torch::serialize::OutputArchive& archive, const std::filesystem::path& file);
// Whether `file` is one of the versions its <file>.checksum lists (true without a checksum file: a
// state from before muki 0.2).
bool state_file_intact(const std::filesystem::path& file);

// Writes weights.pt-style archives: every named parameter and buffer of `model` (but those whose
// name starts with a non-empty `skip_prefix`), copied to the CPU, and the archive's checksum
// beside it (<file>.checksum). Throws CheckpointError when the file cannot be written.
void save_weights(torch::nn::Module& model, const std::filesystem::path& file,
                  const std::string& skip_prefix = {});

// Loads named tensors into `model`'s parameters and buffers (on whatever device they are). Every
// tensor the model has must be in the file with the same shape; extra tensors in the file are an
// error too (a different architecture). When <file>.checksum exists, the file must match it.
// Throws CheckpointError naming the file and the tensor, or the checksum mismatch. Tensors whose
// name starts with a non-empty `skip_prefix` are neither looked for nor changed.
void load_weights(torch::nn::Module& model, const std::filesystem::path& file,
                  const std::string& skip_prefix = {});

// Writes a complete checkpoint folder (created if needed; existing files are replaced).
// `tokenizer_file` is copied in as spec.file unless it already is that file. `train_report_json`
// is written as train_report.json when non-empty. Throws CheckpointError (I/O) and
// std::invalid_argument when labels.size() != the model's num_labels.
void save_checkpoint(const std::filesystem::path& folder, ClassifierImpl& model,
                     const TokenizerSpec& spec, const std::filesystem::path& tokenizer_file,
                     const std::vector<std::string>& labels,
                     const std::string& train_report_json = {});

struct LoadedCheckpoint {
  std::filesystem::path folder;
  ModelConfig model_config;
  TokenizerSpec tokenizer_spec;
  std::vector<std::string> labels;
  Classifier model;                      // in eval mode, on the requested device
  std::unique_ptr<Tokenizer> tokenizer;  // owned here; the model does not reference it
};

// Reads config.toml and labels.txt, rebuilds the model, loads weights.pt, loads the tokenizer.
// Checks that the label count equals the model's num_labels and the tokenizer's vocabulary size
// equals the model's vocab_size. Throws CheckpointError naming the file (and key or tensor).
LoadedCheckpoint load_checkpoint(const std::filesystem::path& folder,
                                 const torch::Device& device = torch::kCPU);

// Reads only config.toml's [model] and [tokenizer] tables (cheap; for listings and checks).
// Throws CheckpointError.
std::pair<ModelConfig, TokenizerSpec> read_checkpoint_config(const std::filesystem::path& folder);

// A pre-trained encoder folder (`muki pretrain`; muki 0.3), what `model.init` names:
//
//   config.toml        format = "muki-encoder", format_version, [model] (a transformer's sizes;
//                      no num_labels), [tokenizer]
//   vocab.txt          the tokenizer file (the shared vocabulary every model fine-tuned from it uses)
//   encoder.pt (+ .checksum)   the Transformer's tensors by module path, without the
//                      classification layer (classifier.*)
//   mlm_head.pt (+ .checksum)  the masked-LM output layer (masked_lm.h), for continued pre-training
//   pretrain_report.json       corpus, sizes, schedule, held-out loss; written last, so its
//                      presence marks a finished encoder
//
// Writes config.toml, the tokenizer file, encoder.pt and mlm_head.pt. Throws CheckpointError.
void save_encoder(const std::filesystem::path& folder, TransformerClassifierImpl& model,
                  torch::nn::Module& head, const TokenizerSpec& spec,
                  const std::filesystem::path& tokenizer_file);
// Reads an encoder's config.toml: its ModelConfig (num_labels 0) and tokenizer. Throws
// CheckpointError naming the file and key (also when the folder is a classifier checkpoint).
std::pair<ModelConfig, TokenizerSpec> read_encoder_config(const std::filesystem::path& folder);
// Copies an encoder's tensors into `model` (built with the encoder's sizes and any num_labels);
// the classification layer keeps its fresh initialisation. Throws CheckpointError naming the
// file and the tensor (missing, wrong shape, checksum mismatch, sizes that differ).
void load_encoder_weights(ClassifierImpl& model, const std::filesystem::path& folder);

// Reads labels.txt of a checkpoint folder. Throws CheckpointError on a missing file, an empty or
// duplicate label.
std::vector<std::string> read_labels_file(const std::filesystem::path& file);

}  // namespace muki::core
