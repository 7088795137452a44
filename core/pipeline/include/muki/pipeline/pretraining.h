// `muki pretrain CONFIG` (muki 0.3): masked-language-model pre-training of muki's Transformer on
// unlabeled text (masked_lm.h has the recipe), writing a pre-trained encoder folder
// (checkpoint.h, save_encoder) that `model.init` fine-tunes teachers and students from.
//
// The file (schema: validate_pretraining in config.h; example: configs/pretrain/):
//   [pretrain]  output (folder, relative to the working directory), seed, device, threads,
//               mask_probability (0.15)
//   [data]      train = a dataset table (any format; "text" = one text a line; labels are never
//               read), heldout = another (the held-out loss), or heldout_fraction (default 0.01:
//               every round(1/fraction)-th text of train is held out instead)
//   [tokenizer] WordPiece: vocab (a file holding [MASK]) or vocab_size (built over the training
//               texts, [MASK] added), lowercase
//   [model]     the Transformer's sizes (models.h); pooling is what fine-tuned models inherit
//   [train]     steps (optimiser steps), batch_size, lr, weight_decay, warmup, grad_clip,
//               eval_every (held-out loss and a resumable state), eval_batch_size
//
// Resumption: the state (encoder, output layer, AdamW moments, step, history) is written to
// <output>/state/ at every evaluation, atomically and with a checksum. Every batch's rows, masks
// and dropout draws come from (seed, step) alone, so a run killed with kill -9 and started again
// continues from its last state and ends with the same weights as one that never stopped (same
// device and thread count). A state written for another config or corpus is replaced, with a
// warning.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include <muki/experiment/config.h>

namespace muki::core {

struct PretrainEval {
  int64_t step = 0;
  double train_loss = 0;    // mean over the steps since the previous evaluation
  double heldout_loss = 0;  // NaN without held-out texts
};

struct PretrainResult {
  std::filesystem::path output;
  int64_t train_texts = 0, heldout_texts = 0;
  int64_t vocab_size = 0;
  int64_t parameters = 0;  // the encoder's
  int64_t steps = 0;
  int64_t resumed_from_step = 0;
  double seconds = 0;      // this call's training time
  std::vector<PretrainEval> history;
};

// Runs the whole job. Throws ConfigError (the file), DataError (the corpus), CheckpointError and
// std::runtime_error (output files, the state).
PretrainResult pretrain(const Config& config);

}  // namespace muki::core
