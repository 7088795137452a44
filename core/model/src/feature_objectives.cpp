#include "muki/model/feature_objectives.h"

#include <numeric>
#include <stdexcept>
#include <string>

#include <torch/torch.h>

namespace muki::core {

namespace {

namespace F = torch::nn::functional;

void check_dims(int64_t student_dim, const std::vector<int64_t>& teacher_dims) {
  if (teacher_dims.empty()) throw std::invalid_argument("feature objective: no teachers");
  if (student_dim < 1) throw std::invalid_argument("feature objective: the student has no features");
  for (size_t i = 0; i < teacher_dims.size(); ++i)
    if (teacher_dims[i] < 1)
      throw std::invalid_argument("feature objective: teacher " + std::to_string(i) + " has no features");
}

void check_inputs(const std::vector<torch::Tensor>& teachers, size_t expected) {
  if (teachers.size() != expected)
    throw std::invalid_argument("feature objective: built for " + std::to_string(expected) +
                                " teachers, given " + std::to_string(teachers.size()));
}

}  // namespace

DfaObjectiveImpl::DfaObjectiveImpl(int64_t student_dim, std::vector<int64_t> teacher_dims)
    : teacher_dims_(std::move(teacher_dims)) {
  check_dims(student_dim, teacher_dims_);
  const int64_t total = std::accumulate(teacher_dims_.begin(), teacher_dims_.end(), int64_t{0});
  teacher_encoder_ = register_module("teacher_encoder", torch::nn::Linear(total, student_dim));
  teacher_decoder_ = register_module("teacher_decoder", torch::nn::Linear(student_dim, total));
  student_encoder_ = register_module("student_encoder", torch::nn::Linear(student_dim, student_dim));
}

torch::Tensor DfaObjectiveImpl::forward(const torch::Tensor& student,
                                        const std::vector<torch::Tensor>& teachers) {
  check_inputs(teachers, teacher_dims_.size());
  const torch::Tensor rep = teacher_encoder_(torch::cat(teachers, 1));
  const torch::Tensor decoded = teacher_decoder_(rep);
  torch::Tensor loss = torch::zeros({}, student.options());
  int64_t offset = 0;
  for (size_t i = 0; i < teachers.size(); ++i) {
    loss = loss + F::mse_loss(decoded.narrow(1, offset, teacher_dims_[i]), teachers[i]);
    offset += teacher_dims_[i];
  }
  // The code is the student's target here, not something the student may pull towards itself.
  return loss + F::mse_loss(student_encoder_(student), rep.detach());
}

CflObjectiveImpl::CflObjectiveImpl(int64_t student_dim, std::vector<int64_t> teacher_dims) {
  check_dims(student_dim, teacher_dims);
  const int64_t middle = std::max<int64_t>(1, student_dim / 2);
  const int64_t common = std::max<int64_t>(1, student_dim / 4);
  student_align_ = register_module("student_align", torch::nn::Linear(student_dim, student_dim));
  extractor_ = register_module(
      "extractor", torch::nn::Sequential(torch::nn::Linear(student_dim, middle), torch::nn::ReLU(),
                                         torch::nn::Linear(middle, common)));
  for (size_t i = 0; i < teacher_dims.size(); ++i) {
    const int64_t h = teacher_dims[i];
    teacher_align_.push_back(register_module("teacher_align" + std::to_string(i),
                                             torch::nn::Linear(h, student_dim)));
    reconstruct_.push_back(register_module(
        "reconstruct" + std::to_string(i),
        torch::nn::Sequential(torch::nn::Linear(common, h), torch::nn::ReLU(), torch::nn::Linear(h, h))));
  }
}

torch::Tensor CflObjectiveImpl::forward(const torch::Tensor& student,
                                        const std::vector<torch::Tensor>& teachers) {
  check_inputs(teachers, teacher_align_.size());
  const torch::Tensor h_s = extractor_->forward(torch::relu(student_align_(student)));
  torch::Tensor loss = torch::zeros({}, student.options());
  for (size_t i = 0; i < teachers.size(); ++i) {
    const torch::Tensor h_t = extractor_->forward(torch::relu(teacher_align_[i](teachers[i])));
    loss = loss + multi_kernel_mmd2(h_s, h_t) +
           F::mse_loss(reconstruct_[i]->forward(h_t), teachers[i]);
  }
  return loss;
}

std::shared_ptr<FeatureObjectiveImpl> make_feature_objective(FeatureObjectiveKind kind,
                                                             int64_t student_dim,
                                                             std::vector<int64_t> teacher_dims) {
  if (kind == FeatureObjectiveKind::Dfa)
    return std::make_shared<DfaObjectiveImpl>(student_dim, std::move(teacher_dims));
  return std::make_shared<CflObjectiveImpl>(student_dim, std::move(teacher_dims));
}

torch::Tensor multi_kernel_mmd2(const torch::Tensor& x, const torch::Tensor& y) {
  const int64_t n = x.size(0);
  const torch::Tensor z = F::normalize(torch::cat({x, y}, 0), F::NormalizeFuncOptions().p(2).dim(1));
  // |a|^2 + |b|^2 - 2 a.b would lose the small distances to cancellation; the difference is exact.
  const torch::Tensor distance = (z.unsqueeze(0) - z.unsqueeze(1)).pow(2).sum(-1);
  // All rows identical: every distance is 0 and so is the MMD; the floor keeps 0 / 0 out.
  const torch::Tensor s = distance.detach().mean().clamp_min(1e-12);
  torch::Tensor kernel = torch::zeros_like(distance);
  for (const double scale : {0.25, 0.5, 1.0, 2.0, 4.0}) kernel = kernel + torch::exp(-distance / (s * scale));
  const torch::Tensor xx = kernel.narrow(0, 0, n).narrow(1, 0, n);
  const torch::Tensor yy = kernel.narrow(0, n, y.size(0)).narrow(1, n, y.size(0));
  const torch::Tensor xy = kernel.narrow(0, 0, n).narrow(1, n, y.size(0));
  return torch::relu(xx.mean() + yy.mean() - 2 * xy.mean());
}

}  // namespace muki::core
