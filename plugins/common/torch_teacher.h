// What the torch-based teacher adapters (native, torchscript) share: a LibTorch error as one line
// for a user, the copy of a forward call's rows into the host's output tensor, and the library
// init hook that makes the model layer take the host's process-state lock.
#pragma once

#include <cstring>
#include <string>
#include <vector>
#include <algorithm>

#include <c10/util/Exception.h>
#include <muki/model/device.h>
#include <muki/plugin.hpp>
#include <torch/types.h>

namespace muki::plugins {

// torch's errors carry a C++ backtrace in what(); what a user needs is the message before it.
inline std::string torch_message(const c10::Error& e) {
  std::string msg = e.what_without_backtrace();
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  return msg;
}

// Copies one forward call's outputs into the host's `out`: row i of each pass of `t` goes to
// example rows[i]. `t` holds the passes one after the other, rows.size() rows each ([b, W] for a
// deterministic pass, k = 0; [k, b, W] or [k * b, W] for k stochastic passes), on any device and
// in any float type; `out` is the host's [B, W] or [k, B, W].
inline void copy_passes(const torch::Tensor& t, sdk::Tensor& out, const std::vector<int64_t>& rows,
                        int64_t k) {
  const torch::Tensor values = t.to(torch::kCPU, torch::kFloat).contiguous();
  const float* src = values.data_ptr<float>();
  const int64_t w = values.size(-1), b = static_cast<int64_t>(rows.size());
  const size_t bytes = sizeof(float) * static_cast<size_t>(w);
  for (int64_t s = 0; s < std::max<int64_t>(k, 1); ++s)
    for (int64_t i = 0; i < b; ++i)
      std::memcpy(k == 0 ? &out(rows[static_cast<size_t>(i)], 0) : &out(s, rows[static_cast<size_t>(i)], 0),
                  src + (s * b + i) * w, bytes);
}

// The same for the texts start..start+b, in order.
inline void copy_passes(const torch::Tensor& t, sdk::Tensor& out, int64_t start, int64_t b, int64_t k) {
  std::vector<int64_t> rows(static_cast<size_t>(b));
  for (int64_t i = 0; i < b; ++i) rows[static_cast<size_t>(i)] = start + i;
  copy_passes(t, out, rows, k);
}

// The library init hook (MUKI_PLUGIN_LIBRARY_WITH_HOOKS): every plugin library has its own copy of
// the model layer, so make its seeded passes take the host's process-state lock, the one the host
// and every other library take (SDK 1.1).
inline void share_host_lock(const muki_host_api* host) {
  core::share_process_state_lock(host->lock_process_state, host->unlock_process_state);
}

}  // namespace muki::plugins
