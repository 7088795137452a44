// FusedAdamW (fused_adamw.h) against LibTorch's own AdamW, the reference it replaces.
#include <gtest/gtest.h>

#include <sstream>

#include <torch/torch.h>

#include <muki/model/fused_adamw.h>

using muki::core::FusedAdamW;

namespace {

using torch::optim::AdamW;
using torch::optim::AdamWOptions;
using torch::optim::OptimizerParamGroup;

// Two groups as the trainer makes them (weight decay on one), over a matrix, a vector and a
// parameter that gets no gradient; `seed` fixes their values.
std::vector<torch::Tensor> parameters(uint64_t seed) {
  torch::manual_seed(seed);
  std::vector<torch::Tensor> out = {torch::randn({300, 17}), torch::randn({17}), torch::randn({5})};
  for (auto& p : out) p.set_requires_grad(true);
  return out;
}

template <class Optimizer>
Optimizer make(const std::vector<torch::Tensor>& p) {
  std::vector<OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{p[0]}, std::make_unique<AdamWOptions>(AdamWOptions(3e-3).weight_decay(0.01)));
  groups.emplace_back(std::vector<torch::Tensor>{p[1], p[2]}, std::make_unique<AdamWOptions>(AdamWOptions(3e-3).weight_decay(0.0)));
  return Optimizer(std::move(groups));
}

// Gradients of a fixed loss, the same for both copies of the parameters at step `step`.
void backward(const std::vector<torch::Tensor>& p, int step) {
  for (auto& t : p)
    if (t.grad().defined()) t.grad().zero_();
  torch::manual_seed(100 + static_cast<uint64_t>(step));
  const torch::Tensor x = torch::randn({8, 300});
  ((x.matmul(p[0]) + p[1]).tanh().pow(2).sum() * (step % 3 == 0 ? 1e-4 : 1.0)).backward();  // small steps too
}

// Steps [from, to) of two optimisers, each over its own copy of the parameters, side by side.
void steps(int from, int to, const std::vector<torch::Tensor>& a, torch::optim::Optimizer& first,
           const std::vector<torch::Tensor>& b, torch::optim::Optimizer& second) {
  for (int step = from; step < to; ++step) {
    backward(a, step);
    backward(b, step);
    first.step();
    second.step();
  }
}

}  // namespace

TEST(FusedAdamW, FollowsTorchsAdamWStepForStep) {
  const auto mine = parameters(7), theirs = parameters(7);
  FusedAdamW fused = make<FusedAdamW>(mine);
  AdamW reference = make<AdamW>(theirs);
  steps(0, 50, mine, fused, theirs, reference);
  for (size_t i = 0; i < mine.size(); ++i) {
    // The same formula in float; torch's vector kernels may fuse a multiply-add this loop does not.
    EXPECT_TRUE(torch::allclose(mine[i], theirs[i], 1e-5, 1e-6)) << "parameter " << i << ": max difference "
                                                                 << (mine[i] - theirs[i]).abs().max().item<float>();
    if (i < 2) {
      EXPECT_FALSE(torch::equal(mine[i], parameters(7)[i]));  // it moved
    }
  }
  EXPECT_TRUE(torch::equal(mine[2], parameters(7)[2]));  // no gradient, no step, no state
}

// One state, one format: a state saved by torch's AdamW resumes in FusedAdamW (which saves it
// with the same code, torch's).
TEST(FusedAdamW, SharesTorchsStateFormat) {
  const auto a = parameters(3);
  AdamW reference = make<AdamW>(a);
  for (int step = 0; step < 5; ++step) {
    backward(a, step);
    reference.step();
  }
  std::stringstream saved;
  {
    torch::serialize::OutputArchive archive;
    reference.save(archive);
    archive.save_to(saved);
  }
  // A fresh FusedAdamW over the reference's parameters, loaded from its state, then both go on.
  const auto c = parameters(3);
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < a.size(); ++i) c[i].copy_(a[i]);
  }
  FusedAdamW resumed = make<FusedAdamW>(c);
  torch::serialize::InputArchive archive;
  archive.load_from(saved);
  resumed.load(archive);
  steps(5, 10, a, reference, c, resumed);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::allclose(c[i], a[i], 1e-5, 1e-6)) << "parameter " << i;
}
