// AdamW whose step makes one pass over each parameter's memory instead of LibTorch's eight.
//
// torch::optim::AdamW reads and writes every parameter eight times a step (mul, add, mul,
// addcmul, sqrt, div, add, addcdiv), each with a temporary; for the quickstart's models, batches
// of 32 short texts and a 1M-entry embedding table, FusedAdamW's single vectorised loop (over
// torch's threads) makes a training step 3-5% faster (bench/README.md). Per element it computes
// the same formula in float, with the scalars taken as torch takes them; torch's vector kernels
// may fuse a multiply-add where this loop does not, so results agree to the last bits, not
// bit for bit (tested against torch's AdamW).
//
// It IS a torch::optim::AdamW: the same options, parameter groups and per-parameter state
// (AdamWParamState: step, exp_avg, exp_avg_sq), saved and loaded by the same code, so a state file
// written by either resumes in the other. When a parameter, its gradient or its state is not a
// contiguous float32 CPU tensor (a GPU run), or amsgrad is on, the step is torch's own.
#pragma once

#include <torch/optim/adamw.h>

namespace muki::core {

class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace muki::core
