// The classes of muki's built-in integration strategies. They live in one library whose table
// (library.cpp) must see every class; each family keeps its own source file:
//   muki_integration.cpp  MUKI's `max` and `weighted`
//   kd_baselines.cpp      the paper's label-free baselines `concat` (vanilla KD), `uhc`, and the
//                         feature-level `dfa` and `cfl`
//   upper_bounds.cpp      the analysis-only `oracle` and `gold`, which read gold labels
#pragma once

#include <muki/plugin.hpp>

namespace muki::plugins::integration {

class MukiIntegration : public sdk::IntegrationStrategy {
 public:
  MukiIntegration(const sdk::Context& ctx, bool soft);
  // MUKI step 5: the student is softened with the same T as the teachers' targets.
  float student_temperature() const override { return static_cast<float>(temperature_); }
  void integrate(const sdk::IntegrationBatch& batch, sdk::Tensor target,
                 sdk::Tensor weight) override;

 private:
  static double margin(const sdk::IntegrationBatch& batch, int64_t i);

  bool soft_;
  bool margin_;
  double temperature_;
  double tau_;
};

struct MaxIntegration : MukiIntegration {
  explicit MaxIntegration(const sdk::Context& ctx) : MukiIntegration(ctx, false) {}
};
struct WeightedIntegration : MukiIntegration {
  explicit WeightedIntegration(const sdk::Context& ctx) : MukiIntegration(ctx, true) {}
};

class ConcatIntegration : public sdk::IntegrationStrategy {
 public:
  explicit ConcatIntegration(const sdk::Context& ctx);
  bool ignores_scores() const override { return true; }
  float student_temperature() const override;
  void integrate(const sdk::IntegrationBatch& batch, sdk::Tensor target,
                 sdk::Tensor weight) override;

 private:
  double temperature_;
};

// DFA and CFL: vanilla KD's targets plus a loss on the teachers' and the student's features,
// which the host computes and trains (muki_feature_objective).
class FeatureKdIntegration : public ConcatIntegration {
 public:
  FeatureKdIntegration(const sdk::Context& ctx, muki_feature_objective objective);
  muki_feature_objective feature_objective() const override { return objective_; }
  float feature_weight() const override { return feature_weight_; }

 private:
  muki_feature_objective objective_;
  float feature_weight_;
};

struct DfaIntegration : FeatureKdIntegration {
  explicit DfaIntegration(const sdk::Context& ctx)
      : FeatureKdIntegration(ctx, MUKI_FEATURE_OBJECTIVE_DFA) {}
};
struct CflIntegration : FeatureKdIntegration {
  explicit CflIntegration(const sdk::Context& ctx)
      : FeatureKdIntegration(ctx, MUKI_FEATURE_OBJECTIVE_CFL) {}
};

class UhcIntegration : public sdk::IntegrationStrategy {
 public:
  explicit UhcIntegration(const sdk::Context& ctx);
  bool ignores_scores() const override { return true; }
  muki_loss_kind loss() const override;
  float student_temperature() const override;
  void integrate(const sdk::IntegrationBatch& batch, sdk::Tensor target,
                 sdk::Tensor weight) override;

 private:
  double temperature_;
};

class OracleIntegration : public sdk::IntegrationStrategy {
 public:
  explicit OracleIntegration(const sdk::Context& ctx);
  float student_temperature() const override;
  bool needs_gold() const override;
  void integrate(const sdk::IntegrationBatch& batch, sdk::Tensor target,
                 sdk::Tensor weight) override;

 private:
  double temperature_;
};

class GoldIntegration : public sdk::IntegrationStrategy {
 public:
  explicit GoldIntegration(const sdk::Context& ctx);
  bool needs_gold() const override;
  bool ignores_scores() const override { return true; }
  void integrate(const sdk::IntegrationBatch& batch, sdk::Tensor target,
                 sdk::Tensor weight) override;
};

}  // namespace muki::plugins::integration
