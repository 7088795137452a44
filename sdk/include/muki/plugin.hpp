// muki plugin SDK: header-only C++ helpers over the C contract in <muki/plugin.h>.
//
// A plugin author writes an ordinary C++ class deriving from muki::sdk::Teacher,
// muki::sdk::UncertaintyStrategy or muki::sdk::IntegrationStrategy, with a constructor taking
// `const muki::sdk::Context&`, and lists it once in MUKI_PLUGIN_LIBRARY(...). The trampolines
// here turn every C call into a virtual call and every exception into a muki_status plus a
// message the host copies, so no C++ type or exception crosses the boundary. Options are read
// through the host's typed getters: a plugin needs no TOML parser and links nothing but the C++
// standard library. A complete plugin (tests/sdk compiles this example on every build):
//
//   #include <muki/plugin.hpp>
//
//   #include <algorithm>
//   #include <cmath>
//   #include <vector>
//
//   // Certainty = the highest probability of the averaged distribution.
//   class MaxProbability : public muki::sdk::UncertaintyStrategy {
//    public:
//     explicit MaxProbability(const muki::sdk::Context& ctx)
//         : samples_(static_cast<uint32_t>(ctx.options.get_int("samples", 0))) {}
//     uint32_t samples() const override { return samples_; }
//     void score(muki::sdk::ConstTensor logits, muki::sdk::Tensor scores) override {
//       const int64_t k = logits.dim(0), b = logits.dim(1), c = logits.dim(2);
//       for (int64_t i = 0; i < b; ++i) {
//         std::vector<double> mean(static_cast<size_t>(c), 0.0);
//         for (int64_t s = 0; s < k; ++s) {
//           double top = logits(s, i, 0), sum = 0.0;
//           for (int64_t j = 1; j < c; ++j) top = std::max(top, double(logits(s, i, j)));
//           for (int64_t j = 0; j < c; ++j) sum += std::exp(logits(s, i, j) - top);
//           for (int64_t j = 0; j < c; ++j)
//             mean[size_t(j)] += std::exp(logits(s, i, j) - top) / sum / double(k);
//         }
//         scores(i) = static_cast<float>(*std::max_element(mean.begin(), mean.end()));
//       }
//     }
//
//    private:
//     uint32_t samples_;
//   };
//
//   static const muki_param_desc kParams[] = {
//       muki::sdk::param("samples", MUKI_PARAM_INT, "0", "stochastic passes (0 = one eval pass)",
//                        0, 4096)};
//   MUKI_PLUGIN_LIBRARY("my-strategies", "1.0.0", "one line about the library",
//                       MUKI_UNCERTAINTY(MaxProbability, "my_max_probability", "1.0.0",
//                                        "highest averaged probability", kParams))
//
// A library that must set something up once (a licence check, a global thread pool) uses
// MUKI_PLUGIN_LIBRARY_WITH_HOOKS(name, version, description, init, shutdown, plugins...), where
// init is `void(const muki_host_api*)` (it may throw: the library is then refused with the
// message) and shutdown is `void()`; either may be nullptr.
//
// Added in ABI 1.0 (muki 0.1.0). ABI 1.1 (muki 0.2.0): options through the host's getters (no
// toml++), teacher features, feature-reading uncertainty strategies, library hooks, the log
// source names the plugin under the name it was created by. ABI 1.2 (muki 0.7.0): strategies
// fitted against the transfer set's features (needs_background, TeacherReference::background).
#ifndef MUKI_PLUGIN_HPP
#define MUKI_PLUGIN_HPP

#include <muki/plugin.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace muki::sdk {

// Throw this (or any std::exception) from plugin code; the status travels to the host.
class Error : public std::runtime_error {
 public:
  Error(muki_status status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  muki_status status() const { return status_; }

 private:
  muki_status status_;
};

inline std::string_view to_view(muki_string_view s) {
  return s.size == 0 ? std::string_view() : std::string_view(s.data, s.size);
}
inline muki_string_view to_c(std::string_view s) { return {s.data(), s.size()}; }

// The plugin's `options` sub-table, read through the host's typed getters (ABI 1.1). The host has
// already checked keys, types and bounds against the plugin's parameter schema, so the getters
// only apply defaults. Valid only during construction, like the Context that holds it.
class Options {
 public:
  Options() = default;
  Options(const muki_host_api* host, const muki_options* options, muki_error* error)
      : host_(host), options_(options), error_(error) {}

  bool has(const std::string& key) const {
    return options_ != nullptr && host_->option_has(options_, key.c_str()) != 0;
  }
  bool get_bool(const std::string& key, bool fallback) const {
    int32_t value = fallback ? 1 : 0;
    if (options_ != nullptr) check(host_->option_bool(options_, key.c_str(), &value, error_), key, "a boolean");
    return value != 0;
  }
  int64_t get_int(const std::string& key, int64_t fallback) const {
    if (options_ != nullptr) check(host_->option_int(options_, key.c_str(), &fallback, error_), key, "an integer");
    return fallback;
  }
  // Integers convert too.
  double get_float(const std::string& key, double fallback) const {
    if (options_ != nullptr) check(host_->option_float(options_, key.c_str(), &fallback, error_), key, "a number");
    return fallback;
  }
  std::string get_string(const std::string& key, std::string fallback) const {
    if (!has(key)) return fallback;
    muki_string_view value{};
    check(host_->option_string(options_, key.c_str(), &value, error_), key, "a string");
    return std::string(to_view(value));
  }
  // Empty when the key is absent.
  std::vector<std::string> get_string_array(const std::string& key) const {
    const muki_string_view* items = nullptr;
    uint64_t count = 0;
    if (options_ != nullptr)
      check(host_->option_string_array(options_, key.c_str(), &items, &count, error_), key,
            "an array of strings");
    std::vector<std::string> out;
    for (uint64_t i = 0; i < count; ++i) out.emplace_back(to_view(items[i]));
    return out;
  }

 private:
  // The host has already put its own message into the create() error slot; this exception's
  // message is kept only when the host had none.
  static void check(muki_status status, const std::string& key, const char* what) {
    if (status != MUKI_OK) throw Error(status, "option '" + key + "' must be " + what);
  }
  const muki_host_api* host_ = nullptr;
  const muki_options* options_ = nullptr;
  muki_error* error_ = nullptr;
};

// Everything a plugin constructor may need. Valid only during construction (copy what you keep;
// `host` itself stays valid while the library is loaded).
struct Context {
  const muki_host_api* host = nullptr;
  std::string instance_name;  // the teacher's name in the experiment, or the strategy's name
  std::string plugin_name;    // the name the host created this plugin by (1.1)
  std::string source;         // "<kind>/<plugin name>", the log source
  std::string config_dir;
  uint64_t seed = 0;
  Options options;

  void log(muki_log_level level, std::string_view message) const {
    if (host != nullptr && host->log != nullptr)
      host->log(host->host_context, level, to_c(source), to_c(message));
  }
};

// A checked view of a host-allocated, C-contiguous float32 CPU DLTensor.
template <class T>
class TensorView {
 public:
  TensorView(T* data, std::vector<int64_t> shape) : data_(data), shape_(std::move(shape)) {}

  static TensorView from(const DLTensor* t, size_t expected_rank, const char* what) {
    if (t == nullptr) throw Error(MUKI_ERR_INVALID_ARGUMENT, std::string(what) + " is missing");
    if (t->device.device_type != kDLCPU)
      throw Error(MUKI_ERR_UNSUPPORTED, std::string(what) + " must be a CPU tensor");
    if (t->dtype.code != kDLFloat || t->dtype.bits != 32 || t->dtype.lanes != 1)
      throw Error(MUKI_ERR_INVALID_ARGUMENT, std::string(what) + " must be float32");
    if (static_cast<size_t>(t->ndim) != expected_rank)
      throw Error(MUKI_ERR_INVALID_ARGUMENT, std::string(what) + " must have rank " +
                                                 std::to_string(expected_rank) + ", got " +
                                                 std::to_string(t->ndim));
    std::vector<int64_t> shape(t->shape, t->shape + t->ndim);
    if (t->strides != nullptr) {
      int64_t expected = 1;
      for (int i = t->ndim - 1; i >= 0; --i) {
        if (shape[static_cast<size_t>(i)] != 1 && t->strides[i] != expected)
          throw Error(MUKI_ERR_INVALID_ARGUMENT, std::string(what) + " must be C-contiguous");
        expected *= shape[static_cast<size_t>(i)];
      }
    }
    auto* base = reinterpret_cast<T*>(static_cast<char*>(t->data) + t->byte_offset);
    return TensorView(base, std::move(shape));
  }

  T* data() const { return data_; }
  int64_t dim(size_t i) const { return shape_.at(i); }
  size_t rank() const { return shape_.size(); }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape_) n *= d;
    return n;
  }
  T& operator()(int64_t i) const { return data_[i]; }
  T& operator()(int64_t i, int64_t j) const { return data_[i * shape_[1] + j]; }
  T& operator()(int64_t i, int64_t j, int64_t k) const {
    return data_[(i * shape_[1] + j) * shape_[2] + k];
  }

 private:
  T* data_;
  std::vector<int64_t> shape_;
};
using Tensor = TensorView<float>;
using ConstTensor = TensorView<const float>;

// ---------------------------------------------------------------------------------------------
// The three base classes.
// ---------------------------------------------------------------------------------------------

class Teacher {
 public:
  virtual ~Teacher() = default;
  // Label names in the order of the logits' last dimension: non-empty and unique.
  virtual const std::vector<std::string>& labels() const = 0;
  // Whether predict() accepts samples >= 1; if so, say how sampling works in sampling_note().
  virtual bool can_sample() const = 0;
  virtual std::string sampling_note() const { return {}; }
  // samples == 0: out is [B, C], one deterministic pass; samples = K: out is [K, B, C].
  // Override this, or predict_with_features() in a teacher that has features.
  virtual void predict(const std::vector<std::string_view>& texts, uint32_t samples,
                       uint64_t seed, Tensor out) {
    predict_with_features(texts, samples, seed, out, nullptr);
  }
  // H > 0 when the teacher also gives each text a pooled feature vector (ABI 1.1); then
  // predict_with_features() must be overridden.
  virtual size_t feature_dim() const { return 0; }
  // predict(), and when `features` is not nullptr, each text's features from the same passes
  // into it: [B, H] or [K, B, H].
  virtual void predict_with_features(const std::vector<std::string_view>& texts,
                                     uint32_t samples, uint64_t seed, Tensor logits,
                                     Tensor* features) {
    (void)texts, (void)samples, (void)seed, (void)logits, (void)features;
    throw Error(MUKI_ERR_UNSUPPORTED, "this teacher overrides neither predict() nor "
                                      "predict_with_features()");
  }
};

// One teacher's in-distribution reference data (ABI 1.1), see muki_uncertainty_reference.
struct TeacherReference {
  uint64_t teacher = 0;           // index in the experiment's teacher order
  std::string_view teacher_name;
  ConstTensor logits;             // [N, C]
  const ConstTensor* features;    // [N, H], or nullptr when the teacher has none
  const int64_t* labels;          // [N] teacher-local label indices, or nullptr
  // ABI 1.2: [M, H] features of the transfer set, when the strategy needs_background().
  const ConstTensor* background = nullptr;
};

// What score_teacher() scores (ABI 1.1), see muki_score_request.
struct TeacherPasses {
  uint64_t teacher = 0;
  ConstTensor logits;             // [K, B, C]
  const ConstTensor* features;    // [K, B, H], or nullptr when the teacher has none
};

class UncertaintyStrategy {
 public:
  virtual ~UncertaintyStrategy() = default;
  virtual uint32_t samples() const = 0;  // 0 = one deterministic pass
  // logits [K, B, C] -> scores [B], higher = more certain. A strategy that needs the teacher's
  // identity or features overrides score_teacher() instead.
  virtual void score(ConstTensor logits, Tensor scores) {
    (void)logits, (void)scores;
    throw Error(MUKI_ERR_UNSUPPORTED, "this strategy scores a teacher through score_teacher()");
  }
  // ABI 1.1: whether score_teacher() needs features / fit() before it scores a teacher.
  virtual bool needs_features() const { return false; }
  virtual bool needs_reference() const { return false; }
  // ABI 1.2: whether fit() needs the transfer set's features too (TeacherReference::background);
  // only together with the two above.
  virtual bool needs_background() const { return false; }
  virtual void fit(const TeacherReference& reference) {
    (void)reference;
    throw Error(MUKI_ERR_UNSUPPORTED, "this strategy takes no reference data");
  }
  virtual void score_teacher(const TeacherPasses& passes, Tensor scores) {
    score(passes.logits, scores);
  }
};

struct TeacherBatch {
  ConstTensor logits;  // [B, C_i]
  ConstTensor scores;  // [B]
  const int64_t* label_map;
  size_t num_labels;
};

struct IntegrationBatch {
  std::vector<TeacherBatch> teachers;
  int64_t union_size = 0;
  const int64_t* gold = nullptr;  // [B] or nullptr
  int64_t batch_size() const { return teachers.empty() ? 0 : teachers.front().logits.dim(0); }
};

class IntegrationStrategy {
 public:
  virtual ~IntegrationStrategy() = default;
  virtual muki_loss_kind loss() const { return MUKI_LOSS_KL_UNION; }
  virtual float student_temperature() const { return 1.0f; }
  virtual bool needs_gold() const { return false; }
  // True when integrate() never reads the teachers' scores (MUKI_INTEGRATION_IGNORES_SCORES).
  virtual bool ignores_scores() const { return false; }
  // A feature-level loss the host adds to the student's (muki_feature_objective, 1.1), and its
  // weight (> 0). A 1.0 host never asks.
  virtual muki_feature_objective feature_objective() const { return MUKI_FEATURE_OBJECTIVE_NONE; }
  virtual float feature_weight() const { return 1.0f; }
  // target [B, |Y|], weight [B]
  virtual void integrate(const IntegrationBatch& batch, Tensor target, Tensor weight) = 0;
};

// ---------------------------------------------------------------------------------------------
// Trampolines: C calls -> virtual calls, exceptions -> statuses.
// ---------------------------------------------------------------------------------------------
namespace detail {

template <class T>
struct Instance {
  const muki_host_api* host;
  std::unique_ptr<T> object;
  std::string note;  // backs muki_teacher_info::sampling_note
};

inline muki_status report(const muki_host_api* host, muki_error* error, muki_status status,
                          std::string_view message) {
  if (host != nullptr && host->set_error != nullptr && error != nullptr)
    host->set_error(error, status, to_c(message));
  return status;
}

template <class Fn>
muki_status guarded(const muki_host_api* host, muki_error* error, Fn&& fn) {
  try {
    fn();
    return MUKI_OK;
  } catch (const Error& e) {
    return report(host, error, e.status(), e.what());
  } catch (const std::bad_alloc&) {
    return report(host, error, MUKI_ERR_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return report(host, error, MUKI_ERR_INTERNAL, e.what());
  } catch (...) {
    return report(host, error, MUKI_ERR_INTERNAL, "unknown exception");
  }
}

// The host allocated and headed the info struct: write a field only if the host's struct has it.
#define MUKI_SDK_SET_FIELD(type, info, field, value) \
  do {                                               \
    if (MUKI_HAS_FIELD(type, info, field)) (info)->field = (value); \
  } while (0)

template <class T>
muki_status create(const muki_create_args* args, void** out, muki_error* error, const char* kind) {
  const muki_host_api* host = args != nullptr ? args->host : nullptr;
  return guarded(host, error, [&] {
    if (args == nullptr || out == nullptr)
      throw Error(MUKI_ERR_INVALID_ARGUMENT, "create() needs args and an output pointer");
    if (!MUKI_HAS_FIELD(muki_create_args, args, plugin_name))
      throw Error(MUKI_ERR_UNSUPPORTED, "the host's create arguments predate ABI 1.1");
    Context ctx;
    ctx.host = host;
    ctx.instance_name = std::string(to_view(args->instance_name));
    ctx.plugin_name = std::string(to_view(args->plugin_name));
    ctx.source = std::string(kind) + "/" + ctx.plugin_name;
    ctx.config_dir = std::string(to_view(args->config_dir));
    ctx.seed = args->seed;
    ctx.options = Options(host, args->options, error);
    auto instance = std::make_unique<Instance<T>>();
    instance->host = host;
    instance->object = std::make_unique<T>(ctx);
    *out = instance.release();
  });
}

template <class T>
void destroy(void* instance) {
  delete static_cast<Instance<T>*>(instance);
}

template <class T>
Instance<T>& self(void* instance) {
  return *static_cast<Instance<T>*>(instance);
}

template <class T>
struct TeacherTrampolines {
  static muki_status describe(void* p, muki_teacher_info* info, muki_error* error) {
    auto& in = self<T>(p);
    return guarded(in.host, error, [&] {
      if (info == nullptr) throw Error(MUKI_ERR_INVALID_ARGUMENT, "info is NULL");
      const size_t h = in.object->feature_dim();
      info->num_labels = in.object->labels().size();
      info->flags = (in.object->can_sample() ? MUKI_TEACHER_CAN_SAMPLE : 0u) |
                    (h > 0 ? MUKI_TEACHER_HAS_FEATURES : 0u);
      in.note = in.object->sampling_note();
      info->sampling_note = to_c(in.note);
      MUKI_SDK_SET_FIELD(muki_teacher_info, info, feature_dim, h);
    });
  }
  static muki_status label_name(void* p, uint64_t index, muki_string_view* name,
                                muki_error* error) {
    auto& in = self<T>(p);
    return guarded(in.host, error, [&] {
      const auto& labels = in.object->labels();
      if (index >= labels.size())
        throw Error(MUKI_ERR_INVALID_ARGUMENT, "label index " + std::to_string(index) +
                                                   " out of range (" +
                                                   std::to_string(labels.size()) + " labels)");
      *name = to_c(labels[index]);
    });
  }
  // Checks a request and an output tensor of last dimension `width`; returns the view.
  static Tensor checked_output(const muki_predict_request* req, DLTensor* out, int64_t width,
                               const char* what) {
    const size_t rank = req->samples == 0 ? 2 : 3;
    Tensor view = Tensor::from(out, rank, what);
    const int64_t b = static_cast<int64_t>(req->num_texts);
    const bool ok = rank == 2 ? (view.dim(0) == b && view.dim(1) == width)
                              : (view.dim(0) == req->samples && view.dim(1) == b &&
                                 view.dim(2) == width);
    if (!ok) throw Error(MUKI_ERR_INVALID_ARGUMENT, std::string(what) + " has the wrong shape");
    return view;
  }
  static std::vector<std::string_view> checked_texts(const Instance<T>& in,
                                                     const muki_predict_request* req) {
    if (req == nullptr || (req->num_texts > 0 && req->texts == nullptr))
      throw Error(MUKI_ERR_INVALID_ARGUMENT, "predict request has no texts");
    if (req->samples > 0 && !in.object->can_sample())
      throw Error(MUKI_ERR_UNSUPPORTED, "this teacher cannot sample stochastically");
    std::vector<std::string_view> texts;
    texts.reserve(req->num_texts);
    for (uint64_t i = 0; i < req->num_texts; ++i) texts.push_back(to_view(req->texts[i]));
    return texts;
  }
  static muki_status predict(void* p, const muki_predict_request* req, DLTensor* out,
                             muki_error* error) {
    auto& in = self<T>(p);
    return guarded(in.host, error, [&] {
      const auto texts = checked_texts(in, req);
      const auto c = static_cast<int64_t>(in.object->labels().size());
      in.object->predict(texts, req->samples, req->seed, checked_output(req, out, c, "out_logits"));
    });
  }
  static muki_status predict_features(void* p, const muki_predict_request* req, DLTensor* logits,
                                      DLTensor* features, muki_error* error) {
    auto& in = self<T>(p);
    return guarded(in.host, error, [&] {
      const auto texts = checked_texts(in, req);
      const auto c = static_cast<int64_t>(in.object->labels().size());
      const auto h = static_cast<int64_t>(in.object->feature_dim());
      if (h == 0) throw Error(MUKI_ERR_UNSUPPORTED, "this teacher has no features");
      Tensor f = checked_output(req, features, h, "out_features");
      in.object->predict_with_features(texts, req->samples, req->seed,
                                       checked_output(req, logits, c, "out_logits"), &f);
    });
  }
  static const muki_teacher_api* api() {
    static const muki_teacher_api table = {
        MUKI_ABI_VERSION, sizeof(muki_teacher_api),
        [](const muki_create_args* a, void** o, muki_error* e) { return create<T>(a, o, e, "teacher"); },
        &destroy<T>, &describe, &label_name, &predict, &predict_features};
    return &table;
  }
};

// A view of an optional tensor argument (features): empty when the host passed NULL.
inline std::optional<ConstTensor> optional_view(const DLTensor* t, size_t rank, const char* what) {
  if (t == nullptr) return std::nullopt;
  return ConstTensor::from(t, rank, what);
}

template <class T>
struct UncertaintyTrampolines {
  static muki_status describe(void* p, muki_uncertainty_info* info, muki_error* error) {
    auto& in = self<T>(p);
    return guarded(in.host, error, [&] {
      if (info == nullptr) throw Error(MUKI_ERR_INVALID_ARGUMENT, "info is NULL");
      info->samples = in.object->samples();
      MUKI_SDK_SET_FIELD(muki_uncertainty_info, info, flags,
                         (in.object->needs_features() ? MUKI_UNCERTAINTY_NEEDS_FEATURES : 0u) |
                             (in.object->needs_reference() ? MUKI_UNCERTAINTY_NEEDS_REFERENCE : 0u) |
                             (in.object->needs_background() ? MUKI_UNCERTAINTY_NEEDS_BACKGROUND : 0u));
    });
  }
  static muki_status fit(void* p, const muki_uncertainty_reference* ref, muki_error* error) {
    auto& in = self<T>(p);
    return guarded(in.host, error, [&] {
      if (ref == nullptr) throw Error(MUKI_ERR_INVALID_ARGUMENT, "fit() needs a reference");
      const ConstTensor logits = ConstTensor::from(ref->logits, 2, "reference logits");
      const auto features = optional_view(ref->features, 2, "reference features");
      if (features && features->dim(0) != logits.dim(0))
        throw Error(MUKI_ERR_INVALID_ARGUMENT, "reference features and logits disagree on N");
      const int64_t* labels = nullptr;
      if (ref->labels != nullptr) {
        const DLTensor* l = ref->labels;
        if (l->dtype.code != kDLInt || l->dtype.bits != 64 || l->ndim != 1 ||
            l->shape[0] != logits.dim(0))
          throw Error(MUKI_ERR_INVALID_ARGUMENT, "reference labels must be int64 [N]");
        labels = reinterpret_cast<const int64_t*>(static_cast<const char*>(l->data) + l->byte_offset);
        for (int64_t i = 0; i < logits.dim(0); ++i)
          if (labels[i] < 0 || labels[i] >= logits.dim(1))
            throw Error(MUKI_ERR_INVALID_ARGUMENT, "reference label " + std::to_string(labels[i]) +
                                                       " is not one of the teacher's " +
                                                       std::to_string(logits.dim(1)));
      }
      std::optional<ConstTensor> background;
      if (MUKI_HAS_FIELD(muki_uncertainty_reference, ref, background_features))
        background = optional_view(ref->background_features, 2, "background features");
      if (in.object->needs_background()) {
        if (!background || !features)
          throw Error(MUKI_ERR_INVALID_ARGUMENT, "fit() needs the reference's and the transfer set's "
                                                 "features (a host of ABI 1.2 or later gives them)");
        if (background->dim(1) != features->dim(1) || background->dim(0) < 1)
          throw Error(MUKI_ERR_INVALID_ARGUMENT, "background features must be [M >= 1, " +
                                                     std::to_string(features->dim(1)) + "]");
      }
      in.object->fit(TeacherReference{ref->teacher, to_view(ref->teacher_name), logits,
                                      features ? &*features : nullptr, labels,
                                      background ? &*background : nullptr});
    });
  }
  static muki_status score_teacher(void* p, const muki_score_request* req, DLTensor* out,
                                   muki_error* error) {
    auto& in = self<T>(p);
    return guarded(in.host, error, [&] {
      if (req == nullptr) throw Error(MUKI_ERR_INVALID_ARGUMENT, "score_teacher() needs a request");
      const ConstTensor logits = ConstTensor::from(req->logits, 3, "logits");
      const auto features = optional_view(req->features, 3, "features");
      if (features && (features->dim(0) != logits.dim(0) || features->dim(1) != logits.dim(1)))
        throw Error(MUKI_ERR_INVALID_ARGUMENT, "features and logits disagree on K or B");
      if (!features && in.object->needs_features())
        throw Error(MUKI_ERR_INVALID_ARGUMENT, "this strategy needs the teacher's features");
      Tensor s = Tensor::from(out, 1, "out_scores");
      if (s.dim(0) != logits.dim(1))
        throw Error(MUKI_ERR_INVALID_ARGUMENT, "out_scores must have B = " +
                                                   std::to_string(logits.dim(1)) + " entries");
      in.object->score_teacher(TeacherPasses{req->teacher, logits, features ? &*features : nullptr}, s);
    });
  }
  static muki_status score(void* p, const DLTensor* logits, DLTensor* out, muki_error* error) {
    auto& in = self<T>(p);
    return guarded(in.host, error, [&] {
      ConstTensor l = ConstTensor::from(logits, 3, "logits");
      Tensor s = Tensor::from(out, 1, "out_scores");
      if (s.dim(0) != l.dim(1))
        throw Error(MUKI_ERR_INVALID_ARGUMENT, "out_scores must have B = " +
                                                   std::to_string(l.dim(1)) + " entries");
      in.object->score(l, s);
    });
  }
  static const muki_uncertainty_api* api() {
    static const muki_uncertainty_api table = {
        MUKI_ABI_VERSION, sizeof(muki_uncertainty_api),
        [](const muki_create_args* a, void** o, muki_error* e) { return create<T>(a, o, e, "uncertainty"); },
        &destroy<T>, &describe, &score, &fit, &score_teacher};
    return &table;
  }
};

template <class T>
struct IntegrationTrampolines {
  static muki_status describe(void* p, muki_integration_info* info, muki_error* error) {
    auto& in = self<T>(p);
    return guarded(in.host, error, [&] {
      if (info == nullptr) throw Error(MUKI_ERR_INVALID_ARGUMENT, "info is NULL");
      info->loss = in.object->loss();
      info->student_temperature = in.object->student_temperature();
      info->flags = (in.object->needs_gold() ? MUKI_INTEGRATION_NEEDS_GOLD : 0u) |
                    (in.object->ignores_scores() ? MUKI_INTEGRATION_IGNORES_SCORES : 0u);
      if (MUKI_HAS_FIELD(muki_integration_info, info, feature_weight)) {
        info->feature_objective = in.object->feature_objective();
        info->feature_weight = in.object->feature_weight();
      }
    });
  }
  static muki_status integrate(void* p, const muki_integration_request* req, DLTensor* target,
                               DLTensor* weight, muki_error* error) {
    auto& in = self<T>(p);
    return guarded(in.host, error, [&] {
      if (req == nullptr || req->num_teachers == 0 || req->teachers == nullptr)
        throw Error(MUKI_ERR_INVALID_ARGUMENT, "integrate() needs at least one teacher");
      IntegrationBatch batch;
      batch.union_size = static_cast<int64_t>(req->union_size);
      for (uint64_t i = 0; i < req->num_teachers; ++i) {
        const muki_teacher_outputs& t = *MUKI_ARRAY_AT(muki_teacher_outputs, req->teachers, i);
        TeacherBatch tb{ConstTensor::from(t.logits, 2, "teacher logits"),
                        ConstTensor::from(t.scores, 1, "teacher scores"), t.label_map,
                        static_cast<size_t>(t.num_labels)};
        if (tb.logits.dim(1) != static_cast<int64_t>(tb.num_labels) ||
            tb.scores.dim(0) != tb.logits.dim(0) ||
            (i > 0 && tb.logits.dim(0) != batch.teachers.front().logits.dim(0)))
          throw Error(MUKI_ERR_INVALID_ARGUMENT,
                      "teacher " + std::to_string(i) + "'s logits, scores and labels disagree");
        for (size_t c = 0; c < tb.num_labels; ++c)
          if (tb.label_map[c] < 0 || tb.label_map[c] >= batch.union_size)
            throw Error(MUKI_ERR_INVALID_ARGUMENT, "teacher " + std::to_string(i) +
                                                       "'s label map points outside the union");
        batch.teachers.push_back(tb);
      }
      if (req->gold != nullptr) {
        const DLTensor* g = req->gold;
        if (g->dtype.code != kDLInt || g->dtype.bits != 64 || g->ndim != 1 ||
            g->shape[0] != batch.batch_size())
          throw Error(MUKI_ERR_INVALID_ARGUMENT, "gold must be int64 [B]");
        batch.gold = reinterpret_cast<const int64_t*>(static_cast<const char*>(g->data) +
                                                      g->byte_offset);
      } else if (in.object->needs_gold()) {
        throw Error(MUKI_ERR_INVALID_ARGUMENT,
                    "this strategy needs gold labels and is for analysis only");
      }
      Tensor t = Tensor::from(target, 2, "out_target");
      Tensor w = Tensor::from(weight, 1, "out_weight");
      if (t.dim(0) != batch.batch_size() || t.dim(1) != batch.union_size ||
          w.dim(0) != batch.batch_size())
        throw Error(MUKI_ERR_INVALID_ARGUMENT, "out_target must be [B, |Y|] and out_weight [B]");
      in.object->integrate(batch, t, w);
    });
  }
  static const muki_integration_api* api() {
    static const muki_integration_api table = {
        MUKI_ABI_VERSION, sizeof(muki_integration_api),
        [](const muki_create_args* a, void** o, muki_error* e) { return create<T>(a, o, e, "integration"); },
        &destroy<T>, &describe, &integrate};
    return &table;
  }
};

#undef MUKI_SDK_SET_FIELD

inline muki_status run_init(void (*init)(const muki_host_api*), const muki_host_api* host,
                            muki_error* error) {
  return guarded(host, error, [&] {
    if (init != nullptr) init(host);
  });
}

inline void run_shutdown(void (*shutdown)()) noexcept {
  try {
    if (shutdown != nullptr) shutdown();
  } catch (...) {  // nothing may cross the boundary, and the host cannot act on it anyway
  }
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Describing plugins.
// ---------------------------------------------------------------------------------------------

// One schema entry. min > max (the default) means "no bounds". flags: MUKI_PARAM_* (1.1).
constexpr muki_param_desc param(const char* name, muki_param_type type, const char* default_value,
                                const char* doc, double min_value = 1.0, double max_value = 0.0,
                                bool required = false, uint32_t flags = 0) {
  return muki_param_desc{MUKI_ABI_VERSION, sizeof(muki_param_desc), name, type,
                         required ? 1 : 0, default_value, doc, min_value, max_value, flags};
}
constexpr muki_param_desc required_param(const char* name, muki_param_type type, const char* doc) {
  return param(name, type, nullptr, doc, 1.0, 0.0, true);
}

// A plugin's parameter schema: a static array of muki_param_desc, or ParamList{} for none.
struct ParamList {
  const muki_param_desc* data = nullptr;
  size_t size = 0;
  constexpr ParamList() = default;
  template <size_t N>
  constexpr ParamList(const muki_param_desc (&params)[N]) : data(params), size(N) {}  // NOLINT
};

namespace detail {
inline muki_plugin_desc describe(muki_plugin_kind kind, const char* name, const char* version,
                                 const char* description, ParamList params, const void* api) {
  return muki_plugin_desc{MUKI_ABI_VERSION, sizeof(muki_plugin_desc), kind, name, version,
                          description, params.data, params.size, api};
}
}  // namespace detail

template <class T>
muki_plugin_desc teacher(const char* name, const char* version, const char* description,
                         ParamList params) {
  return detail::describe(MUKI_KIND_TEACHER, name, version, description, params,
                          detail::TeacherTrampolines<T>::api());
}
template <class T>
muki_plugin_desc uncertainty(const char* name, const char* version, const char* description,
                             ParamList params) {
  return detail::describe(MUKI_KIND_UNCERTAINTY, name, version, description, params,
                          detail::UncertaintyTrampolines<T>::api());
}
template <class T>
muki_plugin_desc integration(const char* name, const char* version, const char* description,
                             ParamList params) {
  return detail::describe(MUKI_KIND_INTEGRATION, name, version, description, params,
                          detail::IntegrationTrampolines<T>::api());
}

}  // namespace muki::sdk

// Declares one plugin entry inside MUKI_PLUGIN_LIBRARY. `params` is a static array of
// muki_param_desc, or muki::sdk::ParamList{} for none. One class may be listed under several
// names; its instances log under the name they were created by.
#define MUKI_TEACHER(Class, name, version, description, params) \
  ::muki::sdk::teacher<Class>(name, version, description, params)
#define MUKI_UNCERTAINTY(Class, name, version, description, params) \
  ::muki::sdk::uncertainty<Class>(name, version, description, params)
#define MUKI_INTEGRATION(Class, name, version, description, params) \
  ::muki::sdk::integration<Class>(name, version, description, params)

// Defines the library's root entry point, with optional init (void(const muki_host_api*), may
// throw) and shutdown (void()) hooks; nullptr for none. Use once per shared library.
#define MUKI_PLUGIN_LIBRARY_WITH_HOOKS(lib_name, lib_version, lib_description, init_fn,          \
                                       shutdown_fn, ...)                                       \
  extern "C" MUKI_PLUGIN_EXPORT const muki_library_desc* muki_plugin_library_entry(           \
      uint32_t host_abi_version) {                                                             \
    (void)host_abi_version; /* the host checks the handshake and names both versions */       \
    static const muki_plugin_desc plugins[] = {__VA_ARGS__};                                   \
    static const muki_library_desc library = {                                                 \
        MUKI_ABI_VERSION,                                                                      \
        sizeof(muki_library_desc),                                                             \
        lib_name,                                                                              \
        lib_version,                                                                           \
        lib_description,                                                                       \
        plugins,                                                                               \
        sizeof(plugins) / sizeof(plugins[0]),                                                  \
        [](const muki_host_api* host, muki_error* error) {                                     \
          return ::muki::sdk::detail::run_init(init_fn, host, error);                          \
        },                                                                                     \
        [] { ::muki::sdk::detail::run_shutdown(shutdown_fn); }};                               \
    return &library;                                                                           \
  }

// The same without hooks.
#define MUKI_PLUGIN_LIBRARY(lib_name, lib_version, lib_description, ...)                       \
  MUKI_PLUGIN_LIBRARY_WITH_HOOKS(lib_name, lib_version, lib_description, nullptr, nullptr,    \
                                 __VA_ARGS__)

#endif  // MUKI_PLUGIN_HPP
