#include "muki/model/fused_adamw.h"

#include <cmath>
#include <sstream>
#include <string>
#include <type_traits>

#include <ATen/Parallel.h>
#include <torch/torch.h>

namespace muki::core {

namespace {

// The key of a parameter's state: LibTorch 1.13 keys by the printed TensorImpl address, 2.x by the
// address itself.
template <class StateMap>
typename StateMap::key_type state_key(const torch::Tensor& p) {
  if constexpr (std::is_same_v<typename StateMap::key_type, std::string>) {
    std::ostringstream s;
    s << p.unsafeGetTensorImpl();
    return s.str();
  } else {
    return p.unsafeGetTensorImpl();
  }
}

bool plain_cpu_float(const torch::Tensor& t) {
  return t.defined() && !t.is_sparse() && t.device().is_cpu() && t.scalar_type() == torch::kFloat && t.is_contiguous();
}

}  // namespace

torch::Tensor FusedAdamW::step(LossClosure closure) {
  auto& states = state_;
  using StateMap = std::remove_reference_t<decltype(states)>;
  for (const auto& group : param_groups_) {
    if (static_cast<const torch::optim::AdamWOptions&>(group.options()).amsgrad())
      return torch::optim::AdamW::step(closure);
    for (const auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      if (!plain_cpu_float(p) || !plain_cpu_float(p.grad())) return torch::optim::AdamW::step(closure);
      const auto found = states.find(state_key<StateMap>(p));
      if (found == states.end()) continue;
      const auto& state = static_cast<const torch::optim::AdamWParamState&>(*found->second);
      if (!plain_cpu_float(state.exp_avg()) || !plain_cpu_float(state.exp_avg_sq()) ||
          state.exp_avg().numel() != p.numel() || state.exp_avg_sq().numel() != p.numel())
        return torch::optim::AdamW::step(closure);
    }
  }
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups_) {
    const auto& options = static_cast<const torch::optim::AdamWOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const auto key = state_key<StateMap>(p);
      auto found = states.find(key);
      if (found == states.end()) {
        auto state = std::make_unique<torch::optim::AdamWParamState>();
        state->step(0);
        state->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        state->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        found = states.emplace(key, std::move(state)).first;
      }
      auto& state = static_cast<torch::optim::AdamWParamState&>(*found->second);
      state.step(state.step() + 1);
      // The scalars as torch's kernels take them: computed in double, applied in float.
      const double beta1 = std::get<0>(options.betas()), beta2 = std::get<1>(options.betas());
      const double bias_correction1 = 1 - std::pow(beta1, static_cast<double>(state.step()));
      const double bias_correction2 = 1 - std::pow(beta2, static_cast<double>(state.step()));
      // Without weight decay torch skips the multiplication; by exactly 1 it changes no float.
      const float decay = static_cast<float>(1 - options.lr() * options.weight_decay());
      const float b1 = static_cast<float>(beta1), one_minus_b1 = static_cast<float>(1 - beta1);
      const float b2 = static_cast<float>(beta2), one_minus_b2 = static_cast<float>(1 - beta2);
      const float root_bc2 = static_cast<float>(std::sqrt(bias_correction2));
      const float eps = static_cast<float>(options.eps());
      const float minus_step = static_cast<float>(-(options.lr() / bias_correction1));
      float* const param = p.data_ptr<float>();
      const float* const grad = p.grad().data_ptr<float>();
      float* const m = state.exp_avg().data_ptr<float>();
      float* const v = state.exp_avg_sq().data_ptr<float>();
      at::parallel_for(0, p.numel(), 1 << 15, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const float x = param[i] * decay;                             // p.mul_(1 - lr * wd)
          const float g = grad[i];
          const float mi = m[i] * b1 + one_minus_b1 * g;               // exp_avg.mul_(b1).add_(g, 1 - b1)
          const float vi = v[i] * b2 + one_minus_b2 * g * g;           // exp_avg_sq.mul_(b2).addcmul_(g, g, 1 - b2)
          const float denom = std::sqrt(vi) / root_bc2 + eps;          // (sqrt(v) / sqrt(bc2)).add_(eps)
          param[i] = x + minus_step * mi / denom;                      // p.addcdiv_(m, denom, -lr / bc1)
          m[i] = mi;
          v[i] = vi;
        }
      });
    }
  }
  return loss;
}

}  // namespace muki::core
