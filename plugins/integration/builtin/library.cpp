// The library table of muki's built-in integration strategies: the one place that lists them,
// with their one-line descriptions and the parameter schemas the host checks options against.
#include "strategies.h"

namespace {

namespace in = muki::plugins::integration;

#define MUKI_TEMPERATURE_PARAM                                                    \
  muki::sdk::param("temperature", MUKI_PARAM_FLOAT, "1.0",                         \
                   "KD temperature T applied to the teachers' logits", 1e-3, 1e3)

#define MUKI_COMMON_PARAMS                                                                    \
  muki::sdk::param("margin_reweighting", MUKI_PARAM_BOOL, "true",                              \
                   "weight each example by the margin between the two most certain teachers"), \
      MUKI_TEMPERATURE_PARAM

const muki_param_desc kMaxParams[] = {MUKI_COMMON_PARAMS};
const muki_param_desc kWeightedParams[] = {
    MUKI_COMMON_PARAMS,
    muki::sdk::param("tau", MUKI_PARAM_FLOAT, "0.2",
                     "temperature of the softmax over the teachers' certainty scores", 1e-4, 1e4)};

// The KD baselines soften the student too and weight by T^2, so T means more there.
const muki_param_desc kKdParams[] = {muki::sdk::param(
    "temperature", MUKI_PARAM_FLOAT, "1.0",
    "KD temperature T on teachers and student; every example is weighted by T^2", 1e-3, 1e3)};

const muki_param_desc kFeatureKdParams[] = {
    kKdParams[0], muki::sdk::param("feature_weight", MUKI_PARAM_FLOAT, "1.0",
                                   "weight of the feature-level loss beside the KD loss", 1e-6, 1e6)};

const muki_param_desc kOracleParams[] = {MUKI_TEMPERATURE_PARAM};

}  // namespace

MUKI_PLUGIN_LIBRARY(
    "muki-integration-builtin", "0.1.0", "MUKI's integration strategies",
    MUKI_INTEGRATION(in::MaxIntegration, "max", "0.1.0",
                     "hard: the most certain teacher's distribution (MUKI-max)", kMaxParams),
    MUKI_INTEGRATION(in::WeightedIntegration, "weighted", "0.1.0",
                     "soft: teachers' distributions weighted by softmax(certainty / tau) (MUKI)",
                     kWeightedParams),
    MUKI_INTEGRATION(in::ConcatIntegration, "concat", "0.1.0",
                     "vanilla KD: one softmax over all teachers' concatenated logits, weight T^2",
                     kKdParams),
    MUKI_INTEGRATION(in::UhcIntegration, "uhc", "0.1.0",
                     "UHC: each teacher's softmax matched by the student renormalised within that "
                     "teacher's label block, weight T^2 (disjoint label sets only)",
                     kKdParams),
    MUKI_INTEGRATION(in::DfaIntegration, "dfa", "0.1.0",
                     "DFA: vanilla KD plus feature amalgamation (an auto-encoder over the "
                     "teachers' concatenated features, matched by the student's); needs features",
                     kFeatureKdParams),
    MUKI_INTEGRATION(in::CflIntegration, "cfl", "0.1.0",
                     "CFL: vanilla KD plus common feature learning (multi-kernel MMD between the "
                     "student's and each teacher's projected features, with reconstruction); "
                     "needs features",
                     kFeatureKdParams),
    MUKI_INTEGRATION(in::OracleIntegration, "oracle", "0.1.0",
                     "analysis: the distribution of the teacher that owns the gold label (needs "
                     "labels on the transfer set)",
                     kOracleParams),
    MUKI_INTEGRATION(
        in::GoldIntegration, "gold", "0.1.0",
        "supervised upper bound: one-hot gold labels (needs labels on the transfer set)",
        muki::sdk::ParamList{}))
