// AdamW whose step makes one pass over each parameter's memory instead of LibTorch's eight.
//
// The quickstart's CNN student spends about a third of each training step in torch::optim::AdamW
// (profiled in bench/README.md): a batch of 32 short texts is little work, while the step reads
// and writes the 1M-entry embedding table eight times over (mul, add, mul, addcmul, sqrt, div,
// add, addcdiv) with a temporary for each. FusedAdamW does the same arithmetic per element, in the
// same order and in float, in one loop spread over torch's threads.
//
// It IS a torch::optim::AdamW: the same options, parameter groups and per-parameter state
// (AdamWParamState: step, exp_avg, exp_avg_sq), saved and loaded by the same code, so a state file
// written by either resumes in the other. Parameters the loop does not cover (on a GPU, not
// float32, not contiguous, sparse gradients, amsgrad) take torch's own step.
#pragma once

#include <torch/optim/adamw.h>

namespace muki::core {

class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

}  // namespace muki::core
