// Feature-space certainty: how typical a text's representation is of a teacher's own
// in-distribution data, which over-confident logits cannot fake (a teacher trained on a few
// thousand texts is confidently wrong outside its labels; its features still land far from
// where its own texts lie).
//
// Every strategy here is fitted per teacher on the reference data the host hands it (texts whose
// gold label is one of the teacher's, run through it deterministically), and scores the
// deterministic pass's features. Raw scores live on each teacher's own scale (a distance in its
// feature space), so by default they are calibrated per teacher: certainty = (raw - m) / s,
// where m and s are the mean and standard deviation of the raw scores of the reference texts,
// each scored by a model fitted WITHOUT it (two folds by position: even rows score odd ones and
// vice versa). A reference text scored by a model fitted on itself would look more typical
// than any new text does, the bias the prototype saw on training data. The scorer
// used afterwards is fitted on all reference rows, and a fold's kNN looks at its k/2-th
// neighbour, so that it sees the same share of the reference as the final k-th does. Teacher
// selection on the quickstart's test split (550 texts, `muki analyze`): k = 10 84.2% (84.7% with
// the k-th neighbour in the folds too), k = 20 82.5% (k = 25 without halving: 76.4%); averaging
// the two fold models' z-scores instead of refitting on all rows: 82.5% at k = 10.
#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "strategies.h"

namespace muki::plugins::uncertainty {

using sdk::Error;

namespace {

// In place: the lower triangle of the symmetric m (row-major h x h) becomes L with m = L L'.
// False when m is not (numerically) positive definite.
bool cholesky(std::vector<double>& m, size_t h) {
  for (size_t j = 0; j < h; ++j) {
    double diag = m[j * h + j];
    for (size_t k = 0; k < j; ++k) diag -= m[j * h + k] * m[j * h + k];
    if (!(diag > 0.0)) return false;
    m[j * h + j] = std::sqrt(diag);
    for (size_t i = j + 1; i < h; ++i) {
      double v = m[i * h + j];
      for (size_t k = 0; k < j; ++k) v -= m[i * h + k] * m[j * h + k];
      m[i * h + j] = v / m[j * h + j];
    }
  }
  return true;
}

// Solves L L' x = b in place, L from cholesky().
void cholesky_solve(const std::vector<double>& l, size_t h, std::vector<double>& b) {
  for (size_t a = 0; a < h; ++a) {
    for (size_t k = 0; k < a; ++k) b[a] -= l[a * h + k] * b[k];
    b[a] /= l[a * h + a];
  }
  for (size_t a = h; a-- > 0;) {
    for (size_t k = a + 1; k < h; ++k) b[a] -= l[k * h + a] * b[k];
    b[a] /= l[a * h + a];
  }
}

// Mahalanobis distance to the closest class mean under one covariance shared by the classes
// (Lee, Lee, Lee and Shin, "A Simple Unified Framework for Detecting Out-of-Distribution Samples
// and Adversarial Attacks", NeurIPS 2018): raw = -min_c (x - mu_c)' S^-1 (x - mu_c).
// S = (1 - lambda) Sigma + lambda (tr Sigma / h) I shrinks the tied covariance towards a scaled
// identity, so a few hundred rows in 128 dimensions still give a well-conditioned S.
class MahalanobisScorer : public FeatureScorer {
 public:
  MahalanobisScorer(const Rows& rows, double shrinkage) : h_(rows.h) {
    const auto h = static_cast<size_t>(h_);
    std::map<int64_t, std::pair<std::vector<double>, size_t>> sums;
    for (size_t i = 0; i < rows.x.size(); ++i) {
      auto& [sum, count] = sums[rows.y[i]];
      sum.resize(h, 0.0);
      for (size_t j = 0; j < h; ++j) sum[j] += rows.x[i][j];
      ++count;
    }
    std::map<int64_t, size_t> index;
    for (auto& [label, sum_count] : sums) {
      for (double& v : sum_count.first) v /= static_cast<double>(sum_count.second);
      index[label] = means_.size();
      means_.push_back(sum_count.first);
    }
    std::vector<double> cov(h * h, 0.0), d(h);
    for (size_t i = 0; i < rows.x.size(); ++i) {
      const auto& mu = means_[index[rows.y[i]]];
      for (size_t j = 0; j < h; ++j) d[j] = rows.x[i][j] - mu[j];
      for (size_t a = 0; a < h; ++a)
        for (size_t b = 0; b <= a; ++b) cov[a * h + b] += d[a] * d[b];
    }
    double trace = 0.0;
    for (size_t a = 0; a < h; ++a) trace += cov[a * h + a] / static_cast<double>(rows.x.size());
    // A floor keeps features that never vary (all rows equal) from making S singular.
    const double ridge = shrinkage * std::max(trace / static_cast<double>(h), 1e-12);
    for (size_t a = 0; a < h; ++a)
      for (size_t b = 0; b <= a; ++b)
        cov[a * h + b] = (1.0 - shrinkage) * cov[a * h + b] / static_cast<double>(rows.x.size()) +
                         (a == b ? ridge : 0.0);
    if (!cholesky(cov, h))
      throw Error(MUKI_ERR_INVALID_ARGUMENT,
                  "the features' covariance is not positive definite (raise 'shrinkage')");
    chol_ = std::move(cov);
  }

  double score(const float* x) const override {
    const auto h = static_cast<size_t>(h_);
    std::vector<double> z(h);
    double best = INFINITY;
    for (const auto& mu : means_) {
      // d2 = |L^-1 (x - mu)|^2, by forward substitution.
      double d2 = 0.0;
      for (size_t a = 0; a < h; ++a) {
        double v = x[a] - mu[a];
        for (size_t b = 0; b < a; ++b) v -= chol_[a * h + b] * z[b];
        z[a] = v / chol_[a * h + a];
        d2 += z[a] * z[a];
      }
      best = std::min(best, d2);
    }
    return -best;
  }

 private:
  int64_t h_;
  std::vector<std::vector<double>> means_;
  std::vector<double> chol_;  // lower triangle, row-major h x h
};

// Distance to the k-th nearest reference feature after L2 normalisation (Sun, Ming, Zhu and Li,
// "Out-of-Distribution Detection with Deep Nearest Neighbors", ICML 2022): raw = -|z - z_(k)|.
// Needs no labels and assumes no Gaussian shape.
class NearestNeighborScorer : public FeatureScorer {
 public:
  NearestNeighborScorer(const Rows& rows, int64_t k)
      : h_(rows.h), k_(static_cast<size_t>(std::min<int64_t>(k, static_cast<int64_t>(rows.x.size())))) {
    const auto h = static_cast<size_t>(h_);
    reference_.reserve(rows.x.size() * h);
    for (const float* x : rows.x) {
      const std::vector<double> z = normalized(x);
      reference_.insert(reference_.end(), z.begin(), z.end());
    }
  }

  double score(const float* x) const override {
    const auto h = static_cast<size_t>(h_);
    const std::vector<double> z = normalized(x);
    std::vector<double> d2(reference_.size() / h);
    for (size_t r = 0; r < d2.size(); ++r) {
      double s = 0.0;
      for (size_t j = 0; j < h; ++j) {
        const double diff = z[j] - reference_[r * h + j];
        s += diff * diff;
      }
      d2[r] = s;
    }
    std::nth_element(d2.begin(), d2.begin() + static_cast<long>(k_ - 1), d2.end());
    return -std::sqrt(d2[k_ - 1]);
  }

 private:
  std::vector<double> normalized(const float* x) const {
    const auto h = static_cast<size_t>(h_);
    std::vector<double> z(x, x + h);
    const double norm = std::sqrt(std::inner_product(z.begin(), z.end(), z.begin(), 0.0));
    if (norm > 0.0)
      for (double& v : z) v /= norm;
    return z;
  }

  int64_t h_;
  size_t k_;
  std::vector<double> reference_;  // [n, h], unit rows
};

// One Gaussian per class of the reference against one Gaussian of the background (Ren, Fort, Liu,
// Roy, Padhy and Lakshminarayanan, "A Simple Fix to Mahalanobis Distance for Improving Near-OOD
// Detection", 2021): raw = -min_c [ MD_c(x) - MD_0(x) ], MD_0 the distance to the background's
// mean under its own shrunk covariance. Up to constants that z-scoring removes, this is the log
// ratio of x's likelihood under the teacher's classes to its likelihood under the background: a
// text lying where every text lies (short, generic descriptions; or a region an over-trained
// teacher collapses foreign texts into) is not taken for one of the teacher's own. The paper fits
// MD_0 on the in-distribution training data; here it is the transfer set, the mix of texts the
// teacher is asked about, so the ratio is how much more typical of the teacher's labels a text is
// than of that mix.
class RelativeMahalanobisScorer : public FeatureScorer {
 public:
  RelativeMahalanobisScorer(const Rows& rows, double shrinkage,
                            std::shared_ptr<const FeatureScorer> background)
      : classes_(rows, shrinkage), background_(std::move(background)) {}
  // Both scores are -min_c MD_c (one class in the background's), so MD_0 = -background.score.
  double score(const float* x) const override { return classes_.score(x) - background_->score(x); }

 private:
  MahalanobisScorer classes_;
  std::shared_ptr<const FeatureScorer> background_;
};

// The log-odds of an L2-regularised logistic classifier that tells the teacher's reference texts
// (positives) from the transfer set (the background), in the teacher's feature space. With the two
// sides weighted equally, the Bayes-optimal log-odds is log p_ref(x) / p_transfer(x), so this is
// a discriminative estimate of the density ratio that relative Mahalanobis models with two
// Gaussians (Bickel, Brückner and Scheffer, "Discriminative Learning for Differing Training and
// Test Distributions", ICML 2007; the transfer set plays the unlabeled set of positive-unlabeled
// learning, Elkan and Noto, KDD 2008). A linear boundary needs no Gaussian shape and no
// covariance estimate from a few hundred texts in hundreds of dimensions, where the Gaussians
// failed (a CNN teacher's 300 pooled filters against 171 dev texts).
// Fit: features standardised on reference + background; loss sum_i w_i log(1 + exp(-y_i s_i))
// + l2/2 |beta|^2 (bias not penalised), w_i = 1/(2 n_ref) or 1/(2 n_background), minimised by
// Newton's method with step halving (the loss is strictly convex for l2 > 0).
class LogisticRatioScorer : public FeatureScorer {
 public:
  LogisticRatioScorer(const Rows& own, const Rows& background, double l2) : h_(own.h) {
    const auto h = static_cast<size_t>(h_), d = h + 1;
    const size_t n = own.x.size() + background.x.size();
    std::vector<const float*> x(own.x);
    x.insert(x.end(), background.x.begin(), background.x.end());
    mean_.assign(h, 0.0);
    scale_.assign(h, 0.0);
    for (const float* r : x)
      for (size_t j = 0; j < h; ++j) {
        if (!std::isfinite(r[j]))
          throw Error(MUKI_ERR_INVALID_ARGUMENT, "density_ratio: a feature is not finite");
        mean_[j] += r[j] / static_cast<double>(n);
      }
    for (const float* r : x)
      for (size_t j = 0; j < h; ++j)
        scale_[j] += (r[j] - mean_[j]) * (r[j] - mean_[j]) / static_cast<double>(n);
    // A constant feature (its variance only the mean's rounding) is left unscaled: it stays ~0
    // in training, and a query that differs there must not be multiplied by 1e16.
    for (size_t j = 0; j < h; ++j)
      scale_[j] = scale_[j] > 1e-12 * (1.0 + mean_[j] * mean_[j]) ? std::sqrt(scale_[j]) : 1.0;
    std::vector<double> z(n * d), target(n), weight(n);
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < h; ++j) z[i * d + j] = (x[i][j] - mean_[j]) / scale_[j];
      z[i * d + h] = 1.0;
      const bool positive = i < own.x.size();
      target[i] = positive ? 1.0 : 0.0;
      weight[i] = 0.5 / static_cast<double>(positive ? own.x.size() : background.x.size());
    }
    // The loss at beta; `m` receives the margins z_i . beta, which the next Newton step reuses.
    auto loss = [&](const std::vector<double>& beta, std::vector<double>& m) {
      m.resize(n);
      for (size_t i = 0; i < n; ++i)
        m[i] = std::inner_product(beta.begin(), beta.end(), &z[i * d], 0.0);
      double v = 0.0;
      for (size_t i = 0; i < n; ++i) {
        const double t = target[i] > 0.0 ? -m[i] : m[i];  // log(1 + e^t), stable for either sign
        v += weight[i] * (t > 0.0 ? t + std::log1p(std::exp(-t)) : std::log1p(std::exp(t)));
      }
      for (size_t j = 0; j < h; ++j) v += 0.5 * l2 * beta[j] * beta[j];
      return v;
    };
    beta_.assign(d, 0.0);
    std::vector<double> m, candidate_m;
    double current = loss(beta_, m);
    for (int iteration = 0; iteration < 100; ++iteration) {
      std::vector<double> gradient(d, 0.0), hessian(d * d, 0.0);
      for (size_t i = 0; i < n; ++i) {
        const double p = 1.0 / (1.0 + std::exp(-m[i]));
        const double g = weight[i] * (p - target[i]), c = weight[i] * p * (1.0 - p);
        const double* zi = &z[i * d];
        for (size_t a = 0; a < d; ++a) {
          gradient[a] += g * zi[a];
          const double cz = c * zi[a];
          for (size_t b = 0; b <= a; ++b) hessian[a * d + b] += cz * zi[b];
        }
      }
      for (size_t j = 0; j < h; ++j) {
        gradient[j] += l2 * beta_[j];
        hessian[j * d + j] += l2;
      }
      hessian[h * d + h] += 1e-12;  // the bias's curvature vanishes only if every p saturates
      if (!cholesky(hessian, d))
        throw Error(MUKI_ERR_INTERNAL, "density_ratio: the logistic fit's Hessian is singular");
      cholesky_solve(hessian, d, gradient);  // gradient now holds the Newton step
      double step = 1.0, next = current;
      std::vector<double> candidate(d);
      for (; step > 1e-10; step *= 0.5) {
        for (size_t a = 0; a < d; ++a) candidate[a] = beta_[a] - step * gradient[a];
        next = loss(candidate, candidate_m);
        if (next <= current) break;
      }
      if (step <= 1e-10) break;  // no descent left: converged to rounding
      beta_ = candidate;
      m.swap(candidate_m);
      double moved = 0.0;
      for (double v : gradient) moved = std::max(moved, step * std::abs(v));
      current = next;
      if (moved < 1e-9) break;
    }
  }

  double score(const float* x) const override {
    const auto h = static_cast<size_t>(h_);
    double s = beta_[h];
    for (size_t j = 0; j < h; ++j) s += beta_[j] * (x[j] - mean_[j]) / scale_[j];
    return s;
  }

 private:
  int64_t h_;
  std::vector<double> mean_, scale_;
  std::vector<double> beta_;  // h weights on the standardised features, then the bias
};

}  // namespace

FeatureDistance::FeatureDistance(const sdk::Context& ctx)
    : calibrate_(ctx.options.get_bool("calibrate", true)) {}

void FeatureDistance::fit(const sdk::TeacherReference& reference) {
  if (reference.features == nullptr)
    throw Error(MUKI_ERR_INVALID_ARGUMENT,
                "teacher '" + std::string(reference.teacher_name) + "' has no features");
  const sdk::ConstTensor& f = *reference.features;
  Rows rows{{}, {}, f.dim(1), reference.logits.dim(1)};
  const int64_t n = f.dim(0);
  // Calibration fits two folds of at least two rows each.
  const int64_t needed = calibrate_ ? 4 : 1;
  if (n < needed)
    throw Error(MUKI_ERR_INVALID_ARGUMENT,
                "teacher '" + std::string(reference.teacher_name) + "' has " + std::to_string(n) +
                    " reference texts; at least " + std::to_string(needed) + " are needed");
  for (int64_t i = 0; i < n; ++i) {
    rows.x.push_back(&f(i, 0));
    if (reference.labels != nullptr) {
      rows.y.push_back(reference.labels[i]);
    } else {  // no gold labels: the teacher's own prediction
      const float* z = &reference.logits(i, 0);
      rows.y.push_back(std::max_element(z, z + rows.c) - z);
    }
  }
  Fitted fitted;
  if (calibrate_) {
    std::vector<double> held_out;
    for (size_t parity : {0, 1}) {
      const std::unique_ptr<FeatureScorer> scorer = make_scorer(rows.subset(parity), 0.5);
      for (const float* x : rows.subset(1 - parity).x) held_out.push_back(scorer->score(x));
    }
    const double mean =
        std::accumulate(held_out.begin(), held_out.end(), 0.0) / static_cast<double>(held_out.size());
    double var = 0.0;
    for (double v : held_out) var += (v - mean) * (v - mean);
    fitted.mean = mean;
    fitted.scale = std::max(std::sqrt(var / static_cast<double>(held_out.size())), 1e-12);
  }
  fitted.scorer = make_scorer(rows, 1.0);
  fitted.feature_dim = rows.h;
  fitted_[reference.teacher] = std::move(fitted);
}

void FeatureDistance::score_teacher(const sdk::TeacherPasses& passes, sdk::Tensor scores) {
  const auto it = fitted_.find(passes.teacher);
  if (it == fitted_.end())
    throw Error(MUKI_ERR_INVALID_ARGUMENT,
                "teacher " + std::to_string(passes.teacher) + " was not fitted before scoring");
  const sdk::ConstTensor& f = *passes.features;  // checked by the trampoline: needs_features()
  if (f.dim(2) != it->second.feature_dim)
    throw Error(MUKI_ERR_INVALID_ARGUMENT, "teacher " + std::to_string(passes.teacher) + " gave " +
                                               std::to_string(f.dim(2)) + " features, fitted on " +
                                               std::to_string(it->second.feature_dim));
  for (int64_t b = 0; b < f.dim(1); ++b) {
    const double raw = it->second.scorer->score(&f(0, b, 0));
    scores(b) = static_cast<float>((raw - it->second.mean) / it->second.scale);
  }
}

Mahalanobis::Mahalanobis(const sdk::Context& ctx)
    : FeatureDistance(ctx), shrinkage_(ctx.options.get_float("shrinkage", 0.1)) {}

std::unique_ptr<FeatureScorer> Mahalanobis::make_scorer(const Rows& rows, double) const {
  return std::make_unique<MahalanobisScorer>(rows, shrinkage_);
}

NearestNeighbor::NearestNeighbor(const sdk::Context& ctx)
    : FeatureDistance(ctx), k_(ctx.options.get_int("k", 10)) {}

RelativeMahalanobis::RelativeMahalanobis(const sdk::Context& ctx) : Mahalanobis(ctx) {}

// The transfer set's features of the teacher being fitted, as one-class rows (pointers into the
// host's tensor, valid during fit()).
static Rows background_rows(const sdk::TeacherReference& reference) {
  if (reference.background == nullptr)  // the SDK's trampoline refuses this first
    throw Error(MUKI_ERR_INVALID_ARGUMENT,
                "teacher '" + std::string(reference.teacher_name) + "' came without a background");
  const sdk::ConstTensor& b = *reference.background;
  Rows all{{}, {}, b.dim(1), 1};
  for (int64_t i = 0; i < b.dim(0); ++i) {
    all.x.push_back(&b(i, 0));
    all.y.push_back(0);
  }
  return all;
}

void RelativeMahalanobis::fit(const sdk::TeacherReference& reference) {
  // Fitted once a teacher; the calibration folds and the final scorer share it.
  background_ = std::make_shared<const MahalanobisScorer>(background_rows(reference), shrinkage());
  FeatureDistance::fit(reference);
}

std::unique_ptr<FeatureScorer> RelativeMahalanobis::make_scorer(const Rows& rows, double) const {
  return std::make_unique<RelativeMahalanobisScorer>(rows, shrinkage(), background_);
}

std::unique_ptr<FeatureScorer> NearestNeighbor::make_scorer(const Rows& rows, double share) const {
  const auto k = std::max<int64_t>(1, std::llround(static_cast<double>(k_) * share));
  return std::make_unique<NearestNeighborScorer>(rows, k);
}

DensityRatio::DensityRatio(const sdk::Context& ctx)
    : FeatureDistance(ctx), l2_(ctx.options.get_float("l2", 0.1)) {}

void DensityRatio::fit(const sdk::TeacherReference& reference) {
  // Its pointers are the host's, valid only during fit(): cleared on the way out, thrown or not.
  struct Clear {
    Rows& rows;
    ~Clear() { rows = Rows{}; }
  } clear{background_};
  background_ = background_rows(reference);
  FeatureDistance::fit(reference);
}

std::unique_ptr<FeatureScorer> DensityRatio::make_scorer(const Rows& rows, double) const {
  return std::make_unique<LogisticRatioScorer>(rows, background_, l2_);
}

}  // namespace muki::plugins::uncertainty
