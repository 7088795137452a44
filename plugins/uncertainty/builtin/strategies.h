// The classes of muki's built-in uncertainty strategies. They live in one library whose table
// (library.cpp) must see every class; each concept keeps its own source file.
// Every strategy returns a certainty: higher = the teacher is more likely the expert for x.
#pragma once

#include <muki/plugin.hpp>

#include <map>
#include <memory>
#include <vector>

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

// ---- Feature-space certainty (ABI 1.1; feature_distance.cpp) ----

// Rows of one teacher's reference: features [n, h] (pointers into the host's tensor, valid during
// fit()) and labels in 0..c-1.
struct Rows {
  std::vector<const float*> x;
  std::vector<int64_t> y;
  int64_t h = 0, c = 0;
  Rows subset(size_t parity) const {  // every other row, from `parity`: a calibration fold
    Rows r{{}, {}, h, c};
    for (size_t i = parity; i < x.size(); i += 2) {
      r.x.push_back(x[i]);
      r.y.push_back(y[i]);
    }
    return r;
  }
};

// A raw feature-space score fitted on one teacher's reference rows: higher = more typical.
class FeatureScorer {
 public:
  virtual ~FeatureScorer() = default;
  virtual double score(const float* x) const = 0;
};

// Fits a FeatureScorer per teacher on its reference data and scores the deterministic pass's
// features, calibrated per teacher against held-out reference scores unless calibrate = false.
class FeatureDistance : public sdk::UncertaintyStrategy {
 public:
  explicit FeatureDistance(const sdk::Context& ctx);
  uint32_t samples() const override { return 0; }
  bool needs_features() const override { return true; }
  bool needs_reference() const override { return true; }
  void fit(const sdk::TeacherReference& reference) override;
  void score_teacher(const sdk::TeacherPasses& passes, sdk::Tensor scores) override;

 protected:
  // A scorer fitted on `rows`, which hold `share` of the teacher's reference (1, or 0.5 for a
  // calibration fold).
  virtual std::unique_ptr<FeatureScorer> make_scorer(const Rows& rows, double share) const = 0;

 private:
  struct Fitted {
    std::unique_ptr<FeatureScorer> scorer;
    double mean = 0.0, scale = 1.0;  // identity unless calibrated
    int64_t feature_dim = 0;
  };
  bool calibrate_;
  std::map<uint64_t, Fitted> fitted_;  // by teacher index
};

// -min_c Mahalanobis distance to the class means under a shrunk tied covariance.
class Mahalanobis : public FeatureDistance {
 public:
  explicit Mahalanobis(const sdk::Context& ctx);

 protected:
  double shrinkage() const { return shrinkage_; }

 private:
  std::unique_ptr<FeatureScorer> make_scorer(const Rows& rows, double share) const override;
  double shrinkage_;
};

// -min_c [MD_c(x) - MD_0(x)]: Mahalanobis to the class means relative to the distance to one
// Gaussian of the transfer set's features (ABI 1.2 background; relative Mahalanobis).
class RelativeMahalanobis : public Mahalanobis {
 public:
  explicit RelativeMahalanobis(const sdk::Context& ctx);
  bool needs_background() const override { return true; }
  void fit(const sdk::TeacherReference& reference) override;

 private:
  std::unique_ptr<FeatureScorer> make_scorer(const Rows& rows, double share) const override;
  std::shared_ptr<const FeatureScorer> background_;  // a MahalanobisScorer of the teacher being fitted
};

// The log-odds of an L2-regularised logistic classifier of the reference texts against the
// transfer set (ABI 1.2 background): a discriminative estimate of log p_teacher(x) / p_transfer(x).
class DensityRatio : public FeatureDistance {
 public:
  explicit DensityRatio(const sdk::Context& ctx);
  bool needs_background() const override { return true; }
  void fit(const sdk::TeacherReference& reference) override;

 private:
  std::unique_ptr<FeatureScorer> make_scorer(const Rows& rows, double share) const override;
  double l2_;
  Rows background_;  // the teacher being fitted, during fit() only
};

// -distance to the k-th nearest L2-normalised reference feature.
class NearestNeighbor : public FeatureDistance {
 public:
  explicit NearestNeighbor(const sdk::Context& ctx);

 private:
  std::unique_ptr<FeatureScorer> make_scorer(const Rows& rows, double share) const override;
  int64_t k_;
};

}  // namespace muki::plugins::uncertainty
