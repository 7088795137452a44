// muki plugin SDK: header-only C++ helpers over the C contract in <muki/plugin.h>.
//
// A plugin author writes an ordinary C++ class deriving from muki::sdk::Teacher,
// muki::sdk::UncertaintyStrategy or muki::sdk::IntegrationStrategy, with a constructor taking
// `const muki::sdk::Context&`, and lists it once in MUKI_PLUGIN_LIBRARY(...). The trampolines
// here turn every C call into a virtual call and every exception into a muki_status plus a
// message the host copies, so no C++ type or exception crosses the boundary.
//
//   class MyStrategy : public muki::sdk::UncertaintyStrategy {
//    public:
//     explicit MyStrategy(const muki::sdk::Context& ctx) : k_(ctx.options.get_int("samples", 16)) {}
//     uint32_t samples() const override { return k_; }
//     void score(muki::sdk::ConstTensor logits, muki::sdk::Tensor scores) override { ... }
//   };
//   static const muki_param_desc kParams[] = {
//       muki::sdk::param("samples", MUKI_PARAM_INT, "16", "stochastic passes", 1, 4096)};
//   MUKI_PLUGIN_LIBRARY("my-strategies", "1.0.0", "one line",
//                       muki::sdk::uncertainty<MyStrategy>("my_strategy", "1.0.0", "...", kParams))
//
// Added in ABI 1.0 (muki 0.1.0).
#ifndef MUKI_PLUGIN_HPP
#define MUKI_PLUGIN_HPP

#include <muki/plugin.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

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

// The plugin's `options` sub-table. The host has already checked keys, types and bounds against
// the plugin's parameter schema, so the getters only apply defaults.
class Options {
 public:
  Options() = default;
  explicit Options(std::string_view toml_text) {
    try {
      table_ = toml::parse(toml_text, std::string_view("options"));
    } catch (const toml::parse_error& e) {
      throw Error(MUKI_ERR_CONFIG, std::string("options are not valid TOML: ") +
                                       std::string(e.description()));
    }
  }
  bool has(std::string_view key) const { return table_.contains(key); }
  bool get_bool(std::string_view key, bool fallback) const {
    return get<bool>(key, fallback, "a boolean");
  }
  int64_t get_int(std::string_view key, int64_t fallback) const {
    return get<int64_t>(key, fallback, "an integer");
  }
  double get_float(std::string_view key, double fallback) const {
    const toml::node* node = table_.get(key);
    if (node == nullptr) return fallback;
    if (auto v = node->value<double>()) return *v;  // integers convert too
    throw Error(MUKI_ERR_CONFIG, "option '" + std::string(key) + "' must be a number");
  }
  std::string get_string(std::string_view key, std::string fallback) const {
    return get<std::string>(key, std::move(fallback), "a string");
  }
  std::vector<std::string> get_string_array(std::string_view key) const {
    std::vector<std::string> out;
    const toml::node* node = table_.get(key);
    if (node == nullptr) return out;
    const toml::array* arr = node->as_array();
    if (arr == nullptr) throw Error(MUKI_ERR_CONFIG, "option '" + std::string(key) + "' must be an array");
    for (const toml::node& item : *arr) {
      auto s = item.value<std::string>();
      if (!s) throw Error(MUKI_ERR_CONFIG, "option '" + std::string(key) + "' must hold strings");
      out.push_back(*s);
    }
    return out;
  }
  const toml::table& table() const { return table_; }

 private:
  template <class T>
  T get(std::string_view key, T fallback, const char* what) const {
    const toml::node* node = table_.get(key);
    if (node == nullptr) return fallback;
    if (auto v = node->value_exact<T>()) return *v;
    throw Error(MUKI_ERR_CONFIG, "option '" + std::string(key) + "' must be " + what);
  }
  toml::table table_;
};

// Everything a plugin constructor may need. Valid only during construction (copy what you keep;
// `host` itself stays valid while the library is loaded).
struct Context {
  const muki_host_api* host = nullptr;
  std::string instance_name;
  std::string source;  // "<kind>/<plugin name>", used as the log source
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
  // Label names in the order of the logits' last dimension.
  virtual const std::vector<std::string>& labels() const = 0;
  // Whether predict() accepts samples >= 1; if so, say how sampling works in sampling_note().
  virtual bool can_sample() const = 0;
  virtual std::string sampling_note() const { return {}; }
  // samples == 0: out is [B, C], one deterministic pass; samples = K: out is [K, B, C].
  virtual void predict(const std::vector<std::string_view>& texts, uint32_t samples,
                       uint64_t seed, Tensor out) = 0;
};

class UncertaintyStrategy {
 public:
  virtual ~UncertaintyStrategy() = default;
  virtual uint32_t samples() const = 0;  // 0 = one deterministic pass
  // logits [K, B, C] -> scores [B], higher = more certain.
  virtual void score(ConstTensor logits, Tensor scores) = 0;
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

template <class T>
muki_status create(const muki_create_args* args, void** out, muki_error* error,
                   const char* source) {
  const muki_host_api* host = args != nullptr ? args->host : nullptr;
  return guarded(host, error, [&] {
    if (args == nullptr || out == nullptr)
      throw Error(MUKI_ERR_INVALID_ARGUMENT, "create() needs args and an output pointer");
    Context ctx;
    ctx.host = host;
    ctx.instance_name = std::string(to_view(args->instance_name));
    ctx.source = source;
    ctx.config_dir = std::string(to_view(args->config_dir));
    ctx.seed = args->seed;
    ctx.options = Options(to_view(args->options_toml));
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
      info->abi_version = MUKI_ABI_VERSION;
      info->struct_size = sizeof(muki_teacher_info);
      info->num_labels = in.object->labels().size();
      info->flags = in.object->can_sample() ? MUKI_TEACHER_CAN_SAMPLE : 0u;
      in.note = in.object->sampling_note();
      info->sampling_note = to_c(in.note);
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
  static muki_status predict(void* p, const muki_predict_request* req, DLTensor* out,
                             muki_error* error) {
    auto& in = self<T>(p);
    return guarded(in.host, error, [&] {
      if (req == nullptr || (req->num_texts > 0 && req->texts == nullptr))
        throw Error(MUKI_ERR_INVALID_ARGUMENT, "predict request has no texts");
      if (req->samples > 0 && !in.object->can_sample())
        throw Error(MUKI_ERR_UNSUPPORTED, "this teacher cannot sample stochastically");
      const size_t rank = req->samples == 0 ? 2 : 3;
      Tensor view = Tensor::from(out, rank, "out_logits");
      const int64_t b = static_cast<int64_t>(req->num_texts);
      const int64_t c = static_cast<int64_t>(in.object->labels().size());
      const bool ok = rank == 2 ? (view.dim(0) == b && view.dim(1) == c)
                                : (view.dim(0) == req->samples && view.dim(1) == b &&
                                   view.dim(2) == c);
      if (!ok) throw Error(MUKI_ERR_INVALID_ARGUMENT, "out_logits has the wrong shape");
      std::vector<std::string_view> texts;
      texts.reserve(req->num_texts);
      for (uint64_t i = 0; i < req->num_texts; ++i) texts.push_back(to_view(req->texts[i]));
      in.object->predict(texts, req->samples, req->seed, view);
    });
  }
  static const muki_teacher_api* api(const char* source) {
    static const char* src = source;
    static const muki_teacher_api table = {
        MUKI_ABI_VERSION, sizeof(muki_teacher_api),
        [](const muki_create_args* a, void** o, muki_error* e) { return create<T>(a, o, e, src); },
        &destroy<T>, &describe, &label_name, &predict};
    return &table;
  }
};

template <class T>
struct UncertaintyTrampolines {
  static muki_status describe(void* p, muki_uncertainty_info* info, muki_error* error) {
    auto& in = self<T>(p);
    return guarded(in.host, error, [&] {
      if (info == nullptr) throw Error(MUKI_ERR_INVALID_ARGUMENT, "info is NULL");
      info->abi_version = MUKI_ABI_VERSION;
      info->struct_size = sizeof(muki_uncertainty_info);
      info->samples = in.object->samples();
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
  static const muki_uncertainty_api* api(const char* source) {
    static const char* src = source;
    static const muki_uncertainty_api table = {
        MUKI_ABI_VERSION, sizeof(muki_uncertainty_api),
        [](const muki_create_args* a, void** o, muki_error* e) { return create<T>(a, o, e, src); },
        &destroy<T>, &describe, &score};
    return &table;
  }
};

template <class T>
struct IntegrationTrampolines {
  static muki_status describe(void* p, muki_integration_info* info, muki_error* error) {
    auto& in = self<T>(p);
    return guarded(in.host, error, [&] {
      if (info == nullptr) throw Error(MUKI_ERR_INVALID_ARGUMENT, "info is NULL");
      info->abi_version = MUKI_ABI_VERSION;
      info->struct_size = sizeof(muki_integration_info);
      info->loss = in.object->loss();
      info->student_temperature = in.object->student_temperature();
      info->flags = (in.object->needs_gold() ? MUKI_INTEGRATION_NEEDS_GOLD : 0u) |
                    (in.object->ignores_scores() ? MUKI_INTEGRATION_IGNORES_SCORES : 0u);
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
        const muki_teacher_outputs& t = req->teachers[i];
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
  static const muki_integration_api* api(const char* source) {
    static const char* src = source;
    static const muki_integration_api table = {
        MUKI_ABI_VERSION, sizeof(muki_integration_api),
        [](const muki_create_args* a, void** o, muki_error* e) { return create<T>(a, o, e, src); },
        &destroy<T>, &describe, &integrate};
    return &table;
  }
};

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Describing plugins.
// ---------------------------------------------------------------------------------------------

// One schema entry. min > max (the default) means "no bounds".
constexpr muki_param_desc param(const char* name, muki_param_type type, const char* default_value,
                                const char* doc, double min_value = 1.0, double max_value = 0.0,
                                bool required = false) {
  return muki_param_desc{MUKI_ABI_VERSION, sizeof(muki_param_desc), name, type,
                         required ? 1 : 0, default_value, doc, min_value, max_value};
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

// The source string ("teacher/<name>") must outlive the library: the macros pass literals.
template <class T>
muki_plugin_desc teacher(const char* name, const char* version, const char* description,
    ParamList params, const char* source) {
  return detail::describe(MUKI_KIND_TEACHER, name, version, description, params,
                          detail::TeacherTrampolines<T>::api(source));
}
template <class T>
muki_plugin_desc uncertainty(const char* name, const char* version, const char* description,
    ParamList params, const char* source) {
  return detail::describe(MUKI_KIND_UNCERTAINTY, name, version, description, params,
                          detail::UncertaintyTrampolines<T>::api(source));
}
template <class T>
muki_plugin_desc integration(const char* name, const char* version, const char* description,
    ParamList params, const char* source) {
  return detail::describe(MUKI_KIND_INTEGRATION, name, version, description, params,
                          detail::IntegrationTrampolines<T>::api(source));
}

}  // namespace muki::sdk

// Declares one plugin entry inside MUKI_PLUGIN_LIBRARY. `params` is a static array of
// muki_param_desc, or muki::sdk::ParamList{} for none.
#define MUKI_TEACHER(Class, name, version, description, params) \
  ::muki::sdk::teacher<Class>(name, version, description, params, "teacher/" name)
#define MUKI_UNCERTAINTY(Class, name, version, description, params) \
  ::muki::sdk::uncertainty<Class>(name, version, description, params, "uncertainty/" name)
#define MUKI_INTEGRATION(Class, name, version, description, params) \
  ::muki::sdk::integration<Class>(name, version, description, params, "integration/" name)

// Defines the library's root entry point. Use once per shared library.
#define MUKI_PLUGIN_LIBRARY(lib_name, lib_version, lib_description, ...)                       \
  extern "C" MUKI_PLUGIN_EXPORT const muki_library_desc* muki_plugin_library_entry(           \
      uint32_t host_abi_version) {                                                             \
    (void)host_abi_version; /* the host checks the handshake and names both versions */       \
    static const muki_plugin_desc plugins[] = {__VA_ARGS__};                                   \
    static const muki_library_desc library = {MUKI_ABI_VERSION,                                \
                                              sizeof(muki_library_desc),                       \
                                              lib_name,                                        \
                                              lib_version,                                     \
                                              lib_description,                                 \
                                              plugins,                                         \
                                              sizeof(plugins) / sizeof(plugins[0]),            \
                                              nullptr,                                         \
                                              nullptr};                                        \
    return &library;                                                                           \
  }

#endif  // MUKI_PLUGIN_HPP
