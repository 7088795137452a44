// Upper bounds for analysis: they read the gold labels of the transfer set, which knowledge
// integration by definition does not have, so they only say how far a label-free strategy is
// from the best it could do.
//   - `oracle`: MUKI's selection with a perfect selector: the teacher that owns the gold label
//     provides its zero-padded softmax(z / T). It separates "picked the wrong teacher" from "the
//     right teacher's distribution is itself imperfect".
//   - `gold`: the supervised student: a one-hot target on the gold label.
#include <string>

#include "probability.h"
#include "strategies.h"

namespace muki::plugins::integration {

using muki::sdk::Error;
using muki::sdk::IntegrationBatch;
using muki::sdk::Tensor;

namespace {

// The SDK checks the gold tensor's shape and dtype, not its values.
int64_t checked_gold(const IntegrationBatch& batch, int64_t i, const char* strategy) {
  const int64_t g = batch.gold[i];
  if (g < 0 || g >= batch.union_size)
    throw Error(MUKI_ERR_INVALID_ARGUMENT,
                std::string(strategy) + ": the gold label of example " + std::to_string(i) +
                    " is union index " + std::to_string(g) + ", outside the union of " +
                    std::to_string(batch.union_size) + " labels");
  return g;
}

}  // namespace

OracleIntegration::OracleIntegration(const sdk::Context& ctx)
    : temperature_(ctx.options.get_float("temperature", 1.0)) {}

// The student matches the softened target at the same T, as in KD (MUKI uses T = 1).
float OracleIntegration::student_temperature() const { return static_cast<float>(temperature_); }

bool OracleIntegration::needs_gold() const { return true; }

void OracleIntegration::integrate(const IntegrationBatch& batch, Tensor target, Tensor weight) {
  const size_t n = batch.teachers.size();
  std::vector<double> q;
  const int64_t b = batch.batch_size();
  for (int64_t i = 0; i < b; ++i) {
    const int64_t g = checked_gold(batch, i, "oracle");
    // A label merged by name may belong to several teachers; among those, defer to the
    // uncertainty strategy as MUKI-max would (ties: the lowest index).
    size_t best = n;
    for (size_t t = 0; t < n; ++t) {
      const auto& teacher = batch.teachers[t];
      const bool owns = std::find(teacher.label_map, teacher.label_map + teacher.num_labels, g) !=
                        teacher.label_map + teacher.num_labels;
      if (owns && (best == n || teacher.scores(i) > batch.teachers[best].scores(i))) best = t;
    }
    if (best == n)
      throw Error(MUKI_ERR_INVALID_ARGUMENT,
                  "oracle: no teacher owns the gold label of example " + std::to_string(i) +
                      " (union index " + std::to_string(g) +
                      "); every gold label must be in some teacher's label set");
    const auto& teacher = batch.teachers[best];
    float* row = &target(i, 0);
    std::fill(row, row + batch.union_size, 0.0f);
    q.resize(teacher.num_labels);
    muki::plugins::softmax(&teacher.logits(i, 0), static_cast<int64_t>(teacher.num_labels),
                           temperature_, q.data());
    for (size_t j = 0; j < teacher.num_labels; ++j)
      row[teacher.label_map[j]] += static_cast<float>(q[j]);
    weight(i) = 1.0f;
  }
}

GoldIntegration::GoldIntegration(const sdk::Context&) {}

bool GoldIntegration::needs_gold() const { return true; }

void GoldIntegration::integrate(const IntegrationBatch& batch, Tensor target, Tensor weight) {
  const int64_t b = batch.batch_size();
  for (int64_t i = 0; i < b; ++i) {
    const int64_t g = checked_gold(batch, i, "gold");
    float* row = &target(i, 0);
    std::fill(row, row + batch.union_size, 0.0f);
    row[g] = 1.0f;
    weight(i) = 1.0f;
  }
}

}  // namespace muki::plugins::integration
