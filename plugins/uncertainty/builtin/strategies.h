// The classes of muki's built-in uncertainty strategies. They live in one library whose table
// (library.cpp) must see every class; each concept keeps its own source file.
// Every strategy returns a certainty: higher = the teacher is more likely the expert for x.
#pragma once

#include <muki/plugin.hpp>

namespace muki::plugins::uncertainty {

// 1 - H(p) / log C of one deterministic pass (the single-pass baseline).
class SinglePassEntropy : public sdk::UncertaintyStrategy {
 public:
  explicit SinglePassEntropy(const sdk::Context& ctx);
  uint32_t samples() const override;
  void score(sdk::ConstTensor logits, sdk::Tensor scores) override;
};

// 1 - H(mean_k p_k) / log C over K MC-dropout passes (MUKI).
class McDropoutEntropy : public sdk::UncertaintyStrategy {
 public:
  explicit McDropoutEntropy(const sdk::Context& ctx);
  uint32_t samples() const override;
  void score(sdk::ConstTensor logits, sdk::Tensor scores) override;

 private:
  uint32_t samples_;
};

// 1 - I(y; theta) / log C over K MC-dropout passes (BALD).
class Bald : public sdk::UncertaintyStrategy {
 public:
  explicit Bald(const sdk::Context& ctx);
  uint32_t samples() const override;
  void score(sdk::ConstTensor logits, sdk::Tensor scores) override;

 private:
  uint32_t samples_;
};

// mean_k T * logsumexp(z_k / T) [- T log C]: the negative free energy, unbounded.
class Energy : public sdk::UncertaintyStrategy {
 public:
  explicit Energy(const sdk::Context& ctx);
  uint32_t samples() const override;
  void score(sdk::ConstTensor logits, sdk::Tensor scores) override;

 private:
  uint32_t samples_;
  double temperature_;
  bool normalize_;
};

}  // namespace muki::plugins::uncertainty
