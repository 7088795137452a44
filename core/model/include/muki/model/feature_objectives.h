// The feature-level objectives of the two feature-based knowledge-integration baselines the MUKI
// paper compares against, on pooled features (one vector per text): the student's [b, H_s] and
// each teacher's [b, H_i] (teachers may differ in H_i; every teacher gets its own projections).
// Both are torch modules trained alongside the student (the trainer's FeatureLoss) and added to
// vanilla KD's loss. The exact terms are documented with muki_feature_objective in
// <muki/plugin.h>, which is what the `dfa` and `cfl` integration strategies ask the host for.
//
//   DFA, Shen et al., "Customizing Student Networks From Heterogeneous Teachers via Adaptive
//   Knowledge Amalgamation" (AAAI 2019): an auto-encoder compresses the teachers' concatenated
//   features into the student's width; the student's features are mapped onto that code.
//   CFL, Luo et al., "Knowledge Amalgamation from Heterogeneous Networks by Common Feature
//   Learning" (IJCAI 2019): the student's and every teacher's features are projected into one
//   small common space where multi-kernel MMD pulls them together; reconstructions keep the
//   projections informative.
//
// The authors' runners for MUKI build these blocks but never put their parameters in an
// optimizer group, so the blocks stay at their random initialisation there; muki trains them.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <torch/nn.h>

namespace muki::core {

enum class FeatureObjectiveKind { Dfa, Cfl };

class FeatureObjectiveImpl : public torch::nn::Module {
 public:
  // student [b, H_s] (the student's pooled features, with grad), teachers[i] [b, H_i] (constants);
  // returns the scalar loss.
  virtual torch::Tensor forward(const torch::Tensor& student,
                                const std::vector<torch::Tensor>& teachers) = 0;
};

class DfaObjectiveImpl : public FeatureObjectiveImpl {
 public:
  DfaObjectiveImpl(int64_t student_dim, std::vector<int64_t> teacher_dims);
  torch::Tensor forward(const torch::Tensor& student,
                        const std::vector<torch::Tensor>& teachers) override;

 private:
  std::vector<int64_t> teacher_dims_;
  torch::nn::Linear teacher_encoder_{nullptr}, teacher_decoder_{nullptr}, student_encoder_{nullptr};
};

class CflObjectiveImpl : public FeatureObjectiveImpl {
 public:
  CflObjectiveImpl(int64_t student_dim, std::vector<int64_t> teacher_dims);
  torch::Tensor forward(const torch::Tensor& student,
                        const std::vector<torch::Tensor>& teachers) override;

 private:
  torch::nn::Linear student_align_{nullptr};
  std::vector<torch::nn::Linear> teacher_align_;
  torch::nn::Sequential extractor_{nullptr};
  std::vector<torch::nn::Sequential> reconstruct_;
};

// Freshly initialised (torch's default generator: seed it first). Throws std::invalid_argument
// on no teachers or a dimension < 1.
std::shared_ptr<FeatureObjectiveImpl> make_feature_objective(FeatureObjectiveKind kind,
                                                             int64_t student_dim,
                                                             std::vector<int64_t> teacher_dims);

// The biased multi-kernel MMD^2 estimate between x [n, d] and y [m, d], as CFL computes it: rows
// L2-normalised; s = the mean squared distance over all (n + m)^2 ordered pairs of the pooled
// batch [x; y] (zero diagonal included), detached; K(a, b) = sum over sigma^2 in {s/4, s/2, s,
// 2s, 4s} of exp(-|a - b|^2 / sigma^2); MMD^2 = max(0, mean K_xx + mean K_yy - 2 mean K_xy).
torch::Tensor multi_kernel_mmd2(const torch::Tensor& x, const torch::Tensor& y);

}  // namespace muki::core
