// Dropout whose masks are a pure function of a key: what muki's models use, so that Monte-Carlo
// dropout samples are fast and reproducible from the example alone.
//
// Semantics are dropout's: each element is kept with probability 1 - p (to 2^-32) and scaled by
// 1 / (1 - p), independently of every other element and sample. Only the source of randomness
// differs from torch's: instead of drawing from a generator in sequence (torch's CPU bernoulli_
// is single-threaded, ~15 ns an element here, and a batch's masks depend on its order), element
// e of row r in dropout layer `layer` is kept iff
//     h = mix32(mix32(counter(e) ^ k1) + k2) >= round(p * 2^32),   (k1, k2) = halves of
//     mix_seed(row_key[r], layer),   mix32 = a 32-bit integer finalizer (Wellons' lowbias32)
// a counter-based generator in the manner of Philox (Salmon et al., SC 2011): cheap, vectorised,
// any element computable alone. counter(e) is the element's position within its example, never
// its offset in the padded batch, so a text's masks do not depend on its batch, its bucket or how
// much padding the batch has:
//   x [R, ..., H] (tokens [R, L, H], pooled [R, H]): the element's flat offset within its row
//     (l * H + h: padding only adds positions past the real ones);
//   attention probabilities x [R, A, I, J] (position_stride S > 0): (a * S + i) * S + j.
//
// Masks come from keys inside a DropoutKeyScope: MC dropout (mc_dropout.h) and muki's trainer
// (classifier_trainer.h) open one; with autograd on, the backward pass applies the same keyed
// mask to the gradient. Outside a scope a KeyedDropout in training mode is torch's dropout.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/nn/modules/dropout.h>
#include <torch/types.h>

namespace muki::core {

// A well-mixed 64-bit hash (splitmix64's finalizer over seed + golden-ratio steps): derives keys
// and seeds from a seed and an index.
uint64_t mix_seed(uint64_t seed, uint64_t index);

// The row keys of this thread's stochastic forward calls, for the lifetime of the scope
// (scopes nest; the innermost wins). Each keyed dropout layer reached inside the scope must see
// exactly row_keys.size() rows.
class DropoutKeyScope {
 public:
  explicit DropoutKeyScope(std::vector<uint64_t> row_keys);
  ~DropoutKeyScope();
  DropoutKeyScope(const DropoutKeyScope&) = delete;
  DropoutKeyScope& operator=(const DropoutKeyScope&) = delete;
  // The innermost scope's keys on this thread; nullptr outside any scope.
  static const std::vector<uint64_t>* current();

 private:
  std::vector<uint64_t> keys_;
  const std::vector<uint64_t>* previous_;
};

// x with dropout applied by the rule above: returns a new tensor of x's shape, dtype and device
// (a floating type; x need not be contiguous). row_keys has one key per row (x.size(0)).
// position_stride = 0: counters are flat offsets within a row; > 0: x must be [R, A, I, J] with
// I, J <= position_stride. Throws std::invalid_argument on a rate outside [0, 1), a key count
// that is not the row count, a bad shape, or counters past 2^32. On the CPU an OpenMP-parallel,
// vectorised loop; on other devices the same function in tensor operations
// (keyed_keep_mask), so the masks are the same on every device.
torch::Tensor keyed_dropout(const torch::Tensor& x, double p, const std::vector<uint64_t>& row_keys,
                            uint64_t layer, int64_t position_stride = 0);

// The keep mask keyed_dropout uses, as a bool tensor of x's shape, computed with tensor
// operations on x's device: the reference the fast CPU loop is tested against.
torch::Tensor keyed_keep_mask(const torch::Tensor& x, double p, const std::vector<uint64_t>& row_keys,
                              uint64_t layer, int64_t position_stride = 0);

// A dropout module (a torch::nn::DropoutImpl, so set_dropout_active / set_dropout_rate find it):
// in eval mode the identity; in training mode keyed_dropout inside a DropoutKeyScope (through an
// autograd function when x requires grad), torch's dropout outside one. `layer` tells a model's dropout modules apart (their masks must differ);
// position_stride as above (max_length for attention probabilities, else 0).
class KeyedDropoutImpl : public torch::nn::DropoutImpl {
 public:
  KeyedDropoutImpl(double p, uint64_t layer, int64_t position_stride = 0);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  uint64_t layer_;
  int64_t position_stride_;
};
TORCH_MODULE(KeyedDropout);

}  // namespace muki::core
