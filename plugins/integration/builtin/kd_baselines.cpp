// The label-free knowledge-integration baselines the MUKI paper compares against. Both soften
// with a KD temperature T on the teacher AND the student side and weight every example by T^2
// (Hinton et al.: the soft-target gradients scale as 1 / T^2, so T^2 keeps their magnitude
// comparable across temperatures). Neither reads the certainty scores.
//   - `concat` (vanilla KD): one softmax over all teachers' raw logits side by side, so the
//     teachers' logit scales compete directly; target = softmax(concat / T).
//   - `uhc` (Vongkulbhisal et al., CVPR 2019): each teacher only constrains the student within
//     its own label block; the host renormalises the student per block (KL_PER_TEACHER).
//   - `dfa` (Shen et al., AAAI 2019) and `cfl` (Luo et al., IJCAI 2019): vanilla KD's targets,
//     plus a feature-level loss the host computes with modules it trains alongside the student
//     (muki_feature_objective in plugin.h says which terms).
#include <string>

#include "probability.h"
#include "strategies.h"

namespace muki::plugins::integration {

using muki::sdk::Error;
using muki::sdk::IntegrationBatch;
using muki::sdk::Tensor;

ConcatIntegration::ConcatIntegration(const sdk::Context& ctx)
    : temperature_(ctx.options.get_float("temperature", 1.0)) {}

float ConcatIntegration::student_temperature() const { return static_cast<float>(temperature_); }

void ConcatIntegration::integrate(const IntegrationBatch& batch, Tensor target, Tensor weight) {
  size_t total = 0;
  for (const auto& t : batch.teachers) total += t.num_labels;
  std::vector<float> concat(total);
  std::vector<double> p(total), row(static_cast<size_t>(batch.union_size));
  const int64_t b = batch.batch_size();
  for (int64_t i = 0; i < b; ++i) {
    size_t offset = 0;
    for (const auto& t : batch.teachers) {
      for (size_t j = 0; j < t.num_labels; ++j)
        concat[offset + j] = t.logits(i, static_cast<int64_t>(j));
      offset += t.num_labels;
    }
    muki::plugins::softmax(concat.data(), static_cast<int64_t>(total), temperature_, p.data());
    // A label two teachers share (merged by name) gets both entries' mass, so the row still
    // sums to 1; summing in double keeps that exact to float precision.
    std::fill(row.begin(), row.end(), 0.0);
    offset = 0;
    for (const auto& t : batch.teachers) {
      for (size_t j = 0; j < t.num_labels; ++j)
        row[static_cast<size_t>(t.label_map[j])] += p[offset + j];
      offset += t.num_labels;
    }
    for (int64_t y = 0; y < batch.union_size; ++y)
      target(i, y) = static_cast<float>(row[static_cast<size_t>(y)]);
    weight(i) = static_cast<float>(temperature_ * temperature_);
  }
}

FeatureKdIntegration::FeatureKdIntegration(const sdk::Context& ctx, muki_feature_objective objective)
    : ConcatIntegration(ctx),
      objective_(objective),
      feature_weight_(static_cast<float>(ctx.options.get_float("feature_weight", 1.0))) {}

UhcIntegration::UhcIntegration(const sdk::Context& ctx)
    : temperature_(ctx.options.get_float("temperature", 1.0)) {}

muki_loss_kind UhcIntegration::loss() const { return MUKI_LOSS_KL_PER_TEACHER; }

float UhcIntegration::student_temperature() const { return static_cast<float>(temperature_); }

void UhcIntegration::integrate(const IntegrationBatch& batch, Tensor target, Tensor weight) {
  // Every block must sum to 1 on its own; a shared union index would belong to two blocks and
  // the target could no longer say which teacher's mass it holds.
  std::vector<int64_t> owner(static_cast<size_t>(batch.union_size), -1);
  for (size_t t = 0; t < batch.teachers.size(); ++t) {
    const auto& teacher = batch.teachers[t];
    for (size_t j = 0; j < teacher.num_labels; ++j) {
      const int64_t y = teacher.label_map[j];
      int64_t& o = owner[static_cast<size_t>(y)];
      if (o >= 0) {
        const std::string who = o == static_cast<int64_t>(t)
                                    ? "teacher " + std::to_string(t) + " maps two labels"
                                    : "teachers " + std::to_string(o) + " and " +
                                          std::to_string(t) + " both map a label";
        throw Error(MUKI_ERR_INVALID_ARGUMENT,
                    "uhc: the teachers' label sets overlap (" + who + " to union index " +
                        std::to_string(y) +
                        "), so their label blocks would overlap; uhc needs disjoint label sets: "
                        "use concat, max or weighted, which merge shared labels");
      }
      o = static_cast<int64_t>(t);
    }
  }
  std::vector<double> q;
  const int64_t b = batch.batch_size();
  for (int64_t i = 0; i < b; ++i) {
    float* row = &target(i, 0);
    std::fill(row, row + batch.union_size, 0.0f);
    for (const auto& teacher : batch.teachers) {
      q.resize(teacher.num_labels);
      muki::plugins::softmax(&teacher.logits(i, 0), static_cast<int64_t>(teacher.num_labels),
                             temperature_, q.data());
      for (size_t j = 0; j < teacher.num_labels; ++j)
        row[teacher.label_map[j]] = static_cast<float>(q[j]);
    }
    weight(i) = static_cast<float>(temperature_ * temperature_);
  }
}

}  // namespace muki::plugins::integration
