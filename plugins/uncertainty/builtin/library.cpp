// The library table of muki's built-in uncertainty strategies: the one place that lists them,
// with their one-line descriptions and the parameter schemas the host checks options against.
#include "strategies.h"

namespace {

namespace u = muki::plugins::uncertainty;

const muki_param_desc kMcParams[] = {muki::sdk::param(
    "samples", MUKI_PARAM_INT, "16", "stochastic teacher passes K (dropout on)", 2, 4096)};

const muki_param_desc kBaldParams[] = {muki::sdk::param(
    "samples", MUKI_PARAM_INT, "16",
    "stochastic teacher passes K (dropout on); disagreement needs K >= 2", 2, 4096)};

const muki_param_desc kEnergyParams[] = {
    muki::sdk::param("samples", MUKI_PARAM_INT, "0",
                     "teacher passes averaged: 0 = one deterministic pass, K = K passes with "
                     "dropout on",
                     0, 4096),
    muki::sdk::param("temperature", MUKI_PARAM_FLOAT, "1.0",
                     "temperature T of the free energy T * logsumexp(z / T)", 1e-3, 1e3),
    muki::sdk::param("normalize", MUKI_PARAM_BOOL, "true",
                     "subtract T * log C so teachers with different label counts compare (all-zero "
                     "logits score 0)")};

// Every feature-space strategy's calibration switch (FeatureDistance).
const muki_param_desc kCalibrate = muki::sdk::param(
    "calibrate", MUKI_PARAM_BOOL, "true",
    "z-score each teacher's raw scores against its own held-out reference texts");

const muki_param_desc kMahalanobisParams[] = {
    muki::sdk::param("shrinkage", MUKI_PARAM_FLOAT, "0.1",
                     "lambda in (1 - lambda) Sigma + lambda tr(Sigma)/H I, the tied covariance "
                     "shrunk towards a scaled identity",
                     1e-6, 1.0),
    kCalibrate};

const muki_param_desc kDensityRatioParams[] = {
    muki::sdk::param("l2", MUKI_PARAM_FLOAT, "0.1",
                     "ridge strength on the classifier's weights over standardised features (each "
                     "side's loss weighted 1/2)",
                     1e-6, 1e3),
    kCalibrate};

const muki_param_desc kKnnParams[] = {
    muki::sdk::param("k", MUKI_PARAM_INT, "10", "the k of the k-th nearest reference feature", 1,
                     1e6),
    kCalibrate};

}  // namespace

MUKI_PLUGIN_LIBRARY(
    "muki-uncertainty-builtin", "0.1.0", "muki's built-in uncertainty strategies",
    MUKI_UNCERTAINTY(u::SinglePassEntropy, "entropy", "0.1.0",
                     "1 - normalised entropy of one deterministic pass (single-pass baseline)",
                     muki::sdk::ParamList{}),
    MUKI_UNCERTAINTY(u::McDropoutEntropy, "mc_dropout", "0.1.0",
                     "1 - normalised entropy of the mean of K MC-dropout passes (MUKI)", kMcParams),
    MUKI_UNCERTAINTY(u::Bald, "bald", "0.1.0",
                     "1 - normalised mutual information between prediction and parameters over K "
                     "MC-dropout passes (BALD; disagreement only)",
                     kBaldParams),
    MUKI_UNCERTAINTY(u::Energy, "energy", "0.1.0",
                     "negative free energy T*logsumexp(z/T), mean over passes; UNBOUNDED, in logit "
                     "units (so are `weighted`'s tau and the margin weights)",
                     kEnergyParams),
    MUKI_UNCERTAINTY(u::Mahalanobis, "mahalanobis", "0.1.0",
                     "-Mahalanobis distance of the teacher's features to its nearest class mean "
                     "(tied, shrunk covariance), per-teacher z-score; needs features + reference",
                     kMahalanobisParams),
    MUKI_UNCERTAINTY(u::RelativeMahalanobis, "relative_mahalanobis", "0.1.0",
                     "-(Mahalanobis distance to the nearest class mean - distance to one Gaussian "
                     "of the transfer set), per-teacher z-score; needs features + reference + "
                     "background (ABI 1.2)",
                     kMahalanobisParams),
    MUKI_UNCERTAINTY(u::DensityRatio, "density_ratio", "0.1.0",
                     "log-odds of a logistic classifier of the teacher's reference texts against "
                     "the transfer set in its feature space (log density ratio), per-teacher "
                     "z-score; needs features + reference + background (ABI 1.2)",
                     kDensityRatioParams),
    MUKI_UNCERTAINTY(u::NearestNeighbor, "knn", "0.1.0",
                     "-distance to the k-th nearest L2-normalised reference feature, per-teacher "
                     "z-score; needs features + reference",
                     kKnnParams))
