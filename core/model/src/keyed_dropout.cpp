#include "muki/model/keyed_dropout.h"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

namespace muki::core {

namespace {

thread_local const std::vector<uint64_t>* g_scope_keys = nullptr;

// Chris Wellons' "lowbias32" integer hash (constants from his hash-prospector search): a
// bijection on 32 bits with good avalanche.
inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x21f0aaadu;
  x ^= x >> 15;
  x *= 0x735a2d97u;
  x ^= x >> 15;
  return x;
}

struct LayerKey {
  uint32_t k1, k2;
};

// Each row's key for one layer, computed once per call.
std::vector<LayerKey> layer_keys(const std::vector<uint64_t>& row_keys, uint64_t layer) {
  std::vector<LayerKey> keys(row_keys.size());
  for (size_t r = 0; r < keys.size(); ++r) {
    const uint64_t k = mix_seed(row_keys[r], layer);
    keys[r] = {static_cast<uint32_t>(k), static_cast<uint32_t>(k >> 32)};
  }
  return keys;
}

// Elements with h < threshold are dropped: P(drop) = threshold / 2^32 = p to within 2^-32.
uint32_t drop_threshold(double p) {
  return static_cast<uint32_t>(std::llround(std::ldexp(p, 32)));
}

// One run of n consecutive counters. GCC builds it for AVX-512, AVX2 and plain x86-64 and picks
// one at load time; the loop vectorises (32-bit multiplies) on each.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
void keep_run(const float* src, float* dst, int64_t n, uint32_t counter, LayerKey key,
              uint32_t threshold, float scale) {
  for (int64_t j = 0; j < n; ++j) {
    const uint32_t h = mix32(mix32((counter + static_cast<uint32_t>(j)) ^ key.k1) + key.k2);
    dst[j] = h >= threshold ? src[j] * scale : 0.0f;
  }
}

// Other types (double): the same, scalar.
template <class T>
void keep_run(const T* src, T* dst, int64_t n, uint32_t counter, LayerKey key, uint32_t threshold,
              float scale) {
  for (int64_t j = 0; j < n; ++j) {
    const uint32_t h = mix32(mix32((counter + static_cast<uint32_t>(j)) ^ key.k1) + key.k2);
    dst[j] = h >= threshold ? static_cast<T>(static_cast<float>(src[j]) * scale) : static_cast<T>(0);
  }
}

// x viewed as [R, A, I, J]; counters (a * SI + i) * SJ + j.
struct Layout {
  int64_t rows, a, i, j, stride_i, stride_j;
};

Layout layout_of(const torch::Tensor& x, size_t keys, int64_t position_stride) {
  if (x.dim() < 1) throw std::invalid_argument("keyed dropout needs a tensor with a row dimension");
  if (static_cast<int64_t>(keys) != x.size(0))
    throw std::invalid_argument("keyed dropout: " + std::to_string(keys) + " row keys for " +
                                std::to_string(x.size(0)) + " rows");
  Layout l{x.size(0), 1, 1, x.numel() / std::max<int64_t>(1, x.size(0)), 1, 0};
  if (position_stride > 0) {
    if (x.dim() != 4 || x.size(2) > position_stride || x.size(3) > position_stride)
      throw std::invalid_argument("keyed dropout over positions needs [R, A, I, J] with I, J <= " +
                                  std::to_string(position_stride));
    l = {x.size(0), x.size(1), x.size(2), x.size(3), position_stride, position_stride};
  } else {
    l.stride_j = l.j;
  }
  if (static_cast<double>(l.a) * static_cast<double>(l.stride_i) * static_cast<double>(l.stride_j) >
      4294967296.0)
    throw std::invalid_argument("keyed dropout: more than 2^32 elements in a row");
  return l;
}

void check_rate(double p) {
  if (!(p >= 0.0 && p < 1.0))
    throw std::invalid_argument("dropout rate must lie in [0, 1), got " + std::to_string(p));
}

}  // namespace

uint64_t mix_seed(uint64_t seed, uint64_t index) {
  uint64_t x = seed + 0x9e3779b97f4a7c15ULL * (index + 1);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

DropoutKeyScope::DropoutKeyScope(std::vector<uint64_t> row_keys)
    : keys_(std::move(row_keys)), previous_(g_scope_keys) {
  g_scope_keys = &keys_;
}

DropoutKeyScope::~DropoutKeyScope() { g_scope_keys = previous_; }

const std::vector<uint64_t>* DropoutKeyScope::current() { return g_scope_keys; }

torch::Tensor keyed_keep_mask(const torch::Tensor& x, double p, const std::vector<uint64_t>& row_keys,
                              uint64_t layer, int64_t position_stride) {
  check_rate(p);
  const Layout l = layout_of(x, row_keys.size(), position_stride);
  const auto longs = torch::TensorOptions().dtype(torch::kLong).device(x.device());
  const int64_t low = int64_t{0xffffffff};
  const int64_t c1 = int64_t{0x21f0aaad}, c2 = int64_t{0x735a2d97};
  auto mix = [=](torch::Tensor v) {  // mix32 on int64 tensors holding 32-bit values
    v = v.bitwise_xor(v.bitwise_right_shift(16)).mul(c1).bitwise_and(low);
    v = v.bitwise_xor(v.bitwise_right_shift(15)).mul(c2).bitwise_and(low);
    return v.bitwise_xor(v.bitwise_right_shift(15));
  };
  const torch::Tensor counter = (torch::arange(l.a, longs).view({l.a, 1, 1}) * l.stride_i +
                                 torch::arange(l.i, longs).view({1, l.i, 1})) * l.stride_j +
                                torch::arange(l.j, longs).view({1, 1, l.j});
  std::vector<int64_t> k1, k2;
  for (const LayerKey& key : layer_keys(row_keys, layer)) {
    k1.push_back(key.k1);
    k2.push_back(key.k2);
  }
  const torch::Tensor key1 = torch::tensor(k1, longs).view({l.rows, 1, 1, 1});
  const torch::Tensor key2 = torch::tensor(k2, longs).view({l.rows, 1, 1, 1});
  const torch::Tensor h = mix(mix(counter.unsqueeze(0).bitwise_xor(key1)).add(key2).bitwise_and(low));
  return h.ge(static_cast<int64_t>(drop_threshold(p))).view(x.sizes());
}

torch::Tensor keyed_dropout(const torch::Tensor& x, double p, const std::vector<uint64_t>& row_keys,
                            uint64_t layer, int64_t position_stride) {
  check_rate(p);
  if (!x.device().is_cpu())
    return x * keyed_keep_mask(x, p, row_keys, layer, position_stride).to(x.scalar_type()) / (1.0 - p);
  // Half precision goes through float: the float loop vectorises, and the result is the same
  // (float(x) * scale, rounded once to x's type).
  if (x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kHalf)
    return keyed_dropout(x.to(torch::kFloat), p, row_keys, layer, position_stride).to(x.scalar_type());
  const Layout l = layout_of(x, row_keys.size(), position_stride);
  const std::vector<LayerKey> keys = layer_keys(row_keys, layer);
  const torch::Tensor src = x.contiguous();
  torch::Tensor out = torch::empty_like(src);
  const uint32_t threshold = drop_threshold(p);
  const float scale = static_cast<float>(1.0 / (1.0 - p));
  const int64_t lines = l.rows * l.a * l.i;  // runs of J consecutive counters
  AT_DISPATCH_FLOATING_TYPES(src.scalar_type(), "keyed_dropout", [&] {
    const scalar_t* in = src.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, lines, std::max<int64_t>(1, 32768 / std::max<int64_t>(1, l.j)),
                     [&](int64_t begin, int64_t end) {
      for (int64_t line = begin; line < end; ++line) {
        const int64_t r = line / (l.a * l.i), rest = line % (l.a * l.i);
        const int64_t a = rest / l.i, i = rest % l.i;
        const auto counter = static_cast<uint32_t>((a * l.stride_i + i) * l.stride_j);
        keep_run(in + line * l.j, o + line * l.j, l.j, counter, keys[static_cast<size_t>(r)], threshold, scale);
      }
    });
  });
  return out;
}

namespace {

// Training through keyed dropout: d(out)/dx = mask / (1 - p), and applying the same keyed dropout
// to the incoming gradient is exactly that product. So the backward pass keeps the keys (8 bytes
// a row), not a mask of the activation's size.
class KeyedDropoutFunction : public torch::autograd::Function<KeyedDropoutFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               double p, int64_t layer, int64_t position_stride,
                               const torch::Tensor& keys) {
    ctx->saved_data["p"] = p;
    ctx->saved_data["layer"] = layer;
    ctx->saved_data["stride"] = position_stride;
    ctx->saved_data["keys"] = keys;
    return keyed_dropout(x, p, key_vector(keys), static_cast<uint64_t>(layer), position_stride);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const torch::Tensor grad = keyed_dropout(
        grads[0], ctx->saved_data["p"].toDouble(), key_vector(ctx->saved_data["keys"].toTensor()),
        static_cast<uint64_t>(ctx->saved_data["layer"].toInt()), ctx->saved_data["stride"].toInt());
    return {grad, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }

  // Keys travel as an int64 tensor holding the uint64 bits.
  static torch::Tensor key_tensor(const std::vector<uint64_t>& keys) {
    torch::Tensor t = torch::empty({static_cast<int64_t>(keys.size())}, torch::kLong);
    std::memcpy(t.data_ptr<int64_t>(), keys.data(), keys.size() * sizeof(uint64_t));
    return t;
  }
  static std::vector<uint64_t> key_vector(const torch::Tensor& t) {
    std::vector<uint64_t> keys(static_cast<size_t>(t.numel()));
    std::memcpy(keys.data(), t.data_ptr<int64_t>(), keys.size() * sizeof(uint64_t));
    return keys;
  }
};

}  // namespace

KeyedDropoutImpl::KeyedDropoutImpl(double p, uint64_t layer, int64_t position_stride)
    : torch::nn::DropoutImpl(p), layer_(layer), position_stride_(position_stride) {}

torch::Tensor KeyedDropoutImpl::forward(const torch::Tensor& x) {
  if (!is_training() || options.p() == 0.0) return x;
  if (const std::vector<uint64_t>* keys = DropoutKeyScope::current()) {
    if (torch::GradMode::is_enabled() && x.requires_grad())
      return KeyedDropoutFunction::apply(x, options.p(), static_cast<int64_t>(layer_), position_stride_,
                                         KeyedDropoutFunction::key_tensor(*keys));
    return keyed_dropout(x, options.p(), *keys, layer_, position_stride_);
  }
  return torch::dropout(x, options.p(), /*train=*/true);
}

}  // namespace muki::core
