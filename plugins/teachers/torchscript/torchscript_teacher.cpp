// The `torchscript` teacher adapter: a classifier exported from PyTorch by a third party
// (torch.jit.script or torch.jit.trace, saved with torch.jit.save), fed exactly as it was trained:
// its own tokenizer, its own label order.
//
// Options (schema in kParams below):
//   model          PATH, required. The TorchScript file (.pt).
//   tokenizer      PATH, required. A BERT vocab.txt (WordPiece) or a SentencePiece .model.
//   tokenizer_type "auto" | "wordpiece" | "sentencepiece"; auto decides by the extension
//                  (.model = SentencePiece, anything else = WordPiece vocabulary).
//   lowercase      BOOL, default true: WordPiece only (uncased models; also strips accents).
//   labels         PATH, required. One label name per line, in the order of the model's logits.
//   max_length     INT, default 128: [CLS] + tokens + [SEP], truncated to this length.
//   device         "auto" (CUDA when LibTorch sees it, else CPU) | "cpu" | "cuda" | "cuda:N".
//   threads        INT, default 0 = leave it: torch's intra-op threads are a process-wide setting,
//                  which the host makes ([experiment].threads); > 0 overrides it for the process.
//   batch_size     INT, default 32: texts per forward call; a stochastic pass with K samples
//                  runs K * batch_size rows in that one forward call.
//   inputs         "ids_mask" (the only calling convention so far):
//                    forward(input_ids: Tensor[B, L] int64, attention_mask: Tensor[B, L] int64)
//                      -> Tensor[B, C] logits (float; a tuple whose first element is that
//                         tensor, as Hugging Face models return, is accepted too)
//                  attention_mask is 1 on real tokens ([CLS]/[SEP] included), 0 on padding;
//                  padding uses the tokenizer's pad id, to the longest text of the batch.
//   features       "auto" (default) | "none". Features (SDK 1.1): with "auto", a forward that
//                  returns a tuple (logits [B, C], pooled [B, H], ...) gives the teacher features
//                  of dimension H (the second element, from the same pass as the logits; decided
//                  on the probe text at load time). "none" ignores a second output.
//   dropout        FLOAT, optional: overrides p of every dropout module for the stochastic
//                  passes. Only possible when every dropout module keeps p as a TorchScript
//                  attribute; torch.nn.Dropout declares p in __constants__, so its p is compiled
//                  into the code and the option is refused for it (the message says so).
//
// Deterministic pass (samples = 0): module.eval() and c10::InferenceMode.
// Stochastic passes (samples = K >= 1): ONLY the dropout submodules are switched to train mode
// (a submodule is dropout when its class name, the last part of the qualified TorchScript type
// name, ends with "Dropout", optionally followed by "1d"/"2d"/"3d": torch.nn.Dropout, Dropout2d,
// AlphaDropout, FeatureAlphaDropout, or a model's own FooDropout); BatchNorm and everything else
// stays in eval mode. The micro-batch is replicated K times and run in ONE forward call
// ([K*b, L] rows), reshaped to [K, b, C], and the module goes back to eval mode afterwards (also
// when the forward throws). Dropout that a model applies functionally inside a non-dropout module
// (e.g. nn.MultiheadAttention's attention dropout, a float, not a module) stays off.
//
// Seeding: TorchScript's dropout draws from torch's process-wide default generator (an aten op
// cannot be handed a generator). Before each micro-batch the adapter seeds it with
// splitmix64(request seed, micro-batch index): on CPU it seeds the default CPU generator and
// restores that generator's previous state afterwards, so other torch users in the process do not
// see a change; on CUDA it calls torch::cuda::manual_seed_all (not restored). The host's
// process-state lock (SDK 1.1) keeps any two seeded passes in the process from interleaving. The
// same (texts, samples, seed, batch_size, device) gives the same output.
//
// Refusals (each a muki_status and a message that says why):
//   - create(): a missing or unreadable model/tokenizer/labels file (MUKI_ERR_IO), a file that is
//     not TorchScript (MUKI_ERR_CONFIG), a forward() that does not take (input_ids,
//     attention_mask) or whose output on a probe text is not [1, C] with C = the number of labels
//     in the labels file (MUKI_ERR_CONFIG, both counts named), an unavailable CUDA device
//     (MUKI_ERR_CONFIG), a `dropout` override the model cannot take (MUKI_ERR_CONFIG).
//   - predict(samples = K >= 2): when the K stochastic passes are all identical, the model's
//     dropout is inactive (traced in eval mode, where the tracer records dropout(train=False) as a
//     constant, or frozen): MUKI_ERR_UNSUPPORTED with a message saying so and how to re-export.
//     K = 1 cannot be checked this way and is not.
//   - SentencePiece tokenizers with Debian's libtorch: see CMakeLists.txt; refused with
//     MUKI_ERR_UNSUPPORTED and a message naming the protobuf clash.
//   - A model without dropout submodules (e.g. frozen with torch.jit.freeze, which inlines every
//     submodule and removes dropout) cannot sample: can_sample() is false and sampling_note()
//     says why; the host refuses predict(samples >= 1) before it reaches the adapter.
//
// Known limitation (Debian 12): a host process that has Debian's libsentencepiece.so.0 in its
// global symbol scope (anything linking muki_text's SentencePiece without --as-needed) crashes
// inside libprotobuf's static initializers when it dlopens this plugin, because libsentencepiece
// exports a protobuf-lite 3.14 that interposes the libprotobuf 3.21 that libtorch_cpu needs.
#include <muki/plugin.hpp>

#include "torch_teacher.h"

#include <muki/model/device.h>
#include <muki/text/sentencepiece_tokenizer.h>
#include <muki/text/tokenizer.h>
#include <muki/text/wordpiece_tokenizer.h>

#include <torch/script.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using muki::sdk::Error;
using muki::plugins::torch_message;

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The last part of a module's qualified TorchScript type name, e.g. "Dropout" for
// "__torch__.torch.nn.modules.dropout.___torch_mangle_7.Dropout"; the full name in `qualified`.
std::string class_name(const torch::jit::Module& m, std::string* qualified = nullptr) {
  const auto name = m.type()->name();
  if (!name) return {};
  if (qualified != nullptr) *qualified = name->qualifiedName();
  return name->name();
}

bool is_dropout_class(std::string name) {
  for (const char* dims : {"1d", "2d", "3d"})
    if (ends_with(name, dims)) {
      name.resize(name.size() - 2);
      break;
    }
  return ends_with(name, "Dropout");
}

// Paths from the options: absolute (the host makes them so), or relative to the config folder.
fs::path resolve(const muki::sdk::Context& ctx, const std::string& path) {
  fs::path p(path);
  if (p.is_relative() && !ctx.config_dir.empty()) p = fs::path(ctx.config_dir) / p;
  return p;
}

fs::path required_path(const muki::sdk::Context& ctx, const char* key, const char* what) {
  const std::string value = ctx.options.get_string(key, "");
  if (value.empty())
    throw Error(MUKI_ERR_CONFIG, std::string("option '") + key + "' is required: " + what);
  const fs::path p = resolve(ctx, value);
  std::error_code ec;
  if (!fs::is_regular_file(p, ec))
    throw Error(MUKI_ERR_IO, std::string("option '") + key + "': " + p.string() +
                                 (fs::exists(p, ec) ? " is not a file" : ": no such file"));
  return p;
}

std::vector<std::string> read_labels(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(MUKI_ERR_IO, path.string() + ": cannot open the labels file");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.pop_back();
    lines.push_back(line);
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();  // trailing blank lines
  std::set<std::string> seen;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty())
      throw Error(MUKI_ERR_CONFIG, path.string() + ":" + std::to_string(i + 1) +
                                       ": empty label name (one label per line, in logit order)");
    if (!seen.insert(lines[i]).second)
      throw Error(MUKI_ERR_CONFIG, path.string() + ":" + std::to_string(i + 1) +
                                       ": label '" + lines[i] + "' is listed twice");
  }
  if (lines.empty()) throw Error(MUKI_ERR_CONFIG, path.string() + ": no label names");
  return lines;
}

std::unique_ptr<muki::core::Tokenizer> load_tokenizer(const muki::sdk::Context& ctx) {
  const fs::path path = required_path(ctx, "tokenizer", "a BERT vocab.txt or a SentencePiece .model");
  std::string type = lower(ctx.options.get_string("tokenizer_type", "auto"));
  if (type == "auto") type = lower(path.extension().string()) == ".model" ? "sentencepiece" : "wordpiece";
  try {
    if (type == "wordpiece") {
      muki::core::WordPieceOptions options;
      options.lower_case = ctx.options.get_bool("lowercase", true);
      return std::make_unique<muki::core::WordPieceTokenizer>(
          muki::core::WordPieceTokenizer::from_file(path, options));
    }
    if (type == "sentencepiece")
      return std::make_unique<muki::core::SentencePieceTokenizer>(
          muki::core::SentencePieceTokenizer::load(path));
  } catch (const muki::core::TokenizerError& e) {
    throw Error(MUKI_ERR_CONFIG, std::string("tokenizer: ") + e.what());
  } catch (const std::exception& e) {
    // On Debian, libsentencepiece's bundled protobuf 3.14 loses to the libprotobuf 3.21 that
    // libtorch needs (see CMakeLists.txt): protobuf's version check throws here.
    throw Error(MUKI_ERR_UNSUPPORTED,
                "tokenizer " + path.string() + ": " + e.what() +
                    (type == "sentencepiece"
                         ? " (SentencePiece cannot run next to this LibTorch: Debian's "
                           "libsentencepiece bundles protobuf 3.14 while libtorch loads the "
                           "system protobuf; use a WordPiece vocab.txt or a LibTorch that keeps "
                           "protobuf internal)"
                         : ""));
  }
  throw Error(MUKI_ERR_CONFIG, "option 'tokenizer_type' must be \"auto\", \"wordpiece\" or "
                               "\"sentencepiece\", not \"" + type + "\"");
}

struct DropoutModule {
  std::string path;        // e.g. "layers.0.attention.attention_dropout"
  std::string type_name;   // qualified TorchScript type name
  torch::jit::Module module;
  std::optional<double> p;
  bool p_is_attribute = false;  // false: a constant compiled into the code (or absent)
};

class TorchScriptTeacher : public muki::sdk::Teacher {
 public:
  explicit TorchScriptTeacher(const muki::sdk::Context& ctx) {
    // Checked first: they are cheap and a typo should not wait for a model load.
    const std::string inputs = ctx.options.get_string("inputs", "ids_mask");
    if (inputs != "ids_mask")
      throw Error(MUKI_ERR_CONFIG, "option 'inputs' = \"" + inputs +
                                       "\" is not supported; the only calling convention is "
                                       "\"ids_mask\": forward(input_ids, attention_mask) -> "
                                       "logits [B, C]");
    max_length_ = ctx.options.get_int("max_length", 128);
    if (max_length_ < 3) throw Error(MUKI_ERR_CONFIG, "option 'max_length' must be >= 3");
    batch_size_ = ctx.options.get_int("batch_size", 32);
    if (batch_size_ < 1) throw Error(MUKI_ERR_CONFIG, "option 'batch_size' must be >= 1");
    const int64_t threads = ctx.options.get_int("threads", 0);
    if (threads < 0) throw Error(MUKI_ERR_CONFIG, "option 'threads' must be >= 0 (0 = the host's setting)");
    try {
      device_ = muki::core::resolve_device(ctx.options.get_string("device", "auto"));
    } catch (const std::invalid_argument& e) {
      throw Error(MUKI_ERR_CONFIG, std::string("option 'device': ") + e.what());
    }
    const std::string features = ctx.options.get_string("features", "auto");
    if (features != "auto" && features != "none")
      throw Error(MUKI_ERR_CONFIG, "option 'features' = \"" + features +
                                       "\" must be \"auto\" or \"none\"");
    use_features_ = features == "auto";

    const fs::path model_path = required_path(ctx, "model", "the TorchScript file (.pt)");
    const fs::path labels_path = required_path(ctx, "labels", "one label name per line");
    labels_ = read_labels(labels_path);
    tokenizer_ = load_tokenizer(ctx);

    if (threads > 0) at::set_num_threads(static_cast<int>(threads));

    try {
      module_ = torch::jit::load(model_path.string(), device_);
    } catch (const c10::Error& e) {
      throw Error(MUKI_ERR_CONFIG, model_path.string() +
                                       ": not a loadable TorchScript model (save it with "
                                       "torch.jit.save of a torch.jit.script or torch.jit.trace "
                                       "module): " + torch_message(e));
    }
    module_.eval();
    check_forward_signature(model_path);
    find_dropout_modules();
    if (ctx.options.has("dropout")) override_dropout(ctx.options.get_float("dropout", 0.1));
    probe(model_path, labels_path);

    std::ostringstream msg;
    msg << "loaded " << model_path.filename().string() << " on " << device_.str() << " ("
        << labels_.size() << " labels, " << at::get_num_threads() << " threads): "
        << sampling_note();
    ctx.log(MUKI_LOG_INFO, msg.str());
  }

  const std::vector<std::string>& labels() const override { return labels_; }
  bool can_sample() const override { return !dropout_.empty(); }

  std::string sampling_note() const override {
    if (dropout_.empty())
      return "cannot sample: the model has no dropout submodule (a model frozen with "
             "torch.jit.freeze has its submodules inlined and its dropout removed; export it with "
             "torch.jit.script of the unfrozen module to get MC dropout)";
    std::map<std::string, int> by_p;  // "0.1" -> count
    for (const auto& d : dropout_) {
      std::ostringstream p;
      if (d.p) p << *d.p; else p << "unknown";
      ++by_p[p.str()];
    }
    std::ostringstream note;
    note << "MC dropout on " << dropout_.size() << " dropout module"
         << (dropout_.size() == 1 ? "" : "s") << " (";
    bool first = true;
    for (const auto& [p, count] : by_p) {
      note << (first ? "" : ", ") << "p=" << p;
      if (by_p.size() > 1) note << " x" << count;
      first = false;
    }
    note << "); batch norm and all other modules stay in eval mode";
    return note.str();
  }

  size_t feature_dim() const override { return static_cast<size_t>(feature_dim_); }

  void predict_with_features(const std::vector<std::string_view>& texts, uint32_t samples,
                             uint64_t seed, muki::sdk::Tensor out,
                             muki::sdk::Tensor* features) override {
    const int64_t n = static_cast<int64_t>(texts.size());
    const int64_t c = static_cast<int64_t>(labels_.size());
    const int64_t k = samples;
    try {
      for (int64_t start = 0, chunk = 0; start < n; start += batch_size_, ++chunk) {
        const int64_t end = std::min(n, start + batch_size_);
        const std::vector<std::string_view> part(texts.begin() + start, texts.begin() + end);
        const int64_t b = end - start;
        Outputs outputs;  // [max(1, K) * b, C] and [.., H]: replica r of text i is row r*b + i
        if (samples == 0) {
          outputs = forward(part, 1);
        } else {
          muki::core::SeededGeneratorGuard seeded(
              device_, splitmix64(seed ^ splitmix64(static_cast<uint64_t>(chunk))));
          StochasticMode mode(dropout_);
          outputs = forward(part, k);
        }
        muki::plugins::copy_passes(outputs.logits, out, start, b, k);
        if (features != nullptr) muki::plugins::copy_passes(outputs.features, *features, start, b, k);
      }
    } catch (const c10::Error& e) {
      throw Error(MUKI_ERR_INTERNAL, "the model's forward failed: " + torch_message(e));
    }
    if (k >= 2) refuse_identical_samples(out, k, n * c);
  }

 private:
  // Switches the dropout submodules (and only them) to train mode; back to eval when it goes.
  class StochasticMode {
   public:
    explicit StochasticMode(std::vector<DropoutModule>& modules) : modules_(modules) {
      for (auto& d : modules_) d.module.train(true);
    }
    ~StochasticMode() {
      for (auto& d : modules_) d.module.train(false);
    }
    StochasticMode(const StochasticMode&) = delete;
    StochasticMode& operator=(const StochasticMode&) = delete;

   private:
    std::vector<DropoutModule>& modules_;
  };

  struct Outputs {
    at::Tensor logits;    // [rows, C]
    at::Tensor features;  // [rows, H], undefined when the teacher has no features
  };

  // Tokenizes, replicates the batch `replicas` times along the batch dimension, runs forward
  // under inference mode and returns float32 logits [replicas * b, C] (and features) on the CPU.
  Outputs forward(const std::vector<std::string_view>& texts, int64_t replicas) {
    const muki::core::Batch batch = muki::core::encode_batch(
        *tokenizer_, texts, static_cast<size_t>(max_length_), /*add_special_tokens=*/true);
    const int64_t b = batch.batch_size, l = batch.length;
    c10::InferenceMode guard;
    at::Tensor ids = torch::from_blob(const_cast<int64_t*>(batch.input_ids.data()), {b, l},
                                      torch::kInt64);
    at::Tensor mask = torch::from_blob(const_cast<int64_t*>(batch.attention_mask.data()), {b, l},
                                       torch::kInt64);
    if (replicas > 1) {
      ids = ids.repeat({replicas, 1});
      mask = mask.repeat({replicas, 1});
    }
    // .to() copies to the device; on the CPU clone() so the module never sees our buffers.
    ids = device_.is_cpu() ? ids.clone() : ids.to(device_);
    mask = device_.is_cpu() ? mask.clone() : mask.to(device_);
    const c10::IValue out = module_.forward({ids, mask});
    at::Tensor logits = output_tensor(out);
    const int64_t c = static_cast<int64_t>(labels_.size());
    if (logits.dim() != 2 || logits.size(0) != replicas * b || logits.size(1) != c)
      throw Error(MUKI_ERR_INTERNAL, "the model returned logits of shape " +
                                         shape_string(logits) + ", expected [" +
                                         std::to_string(replicas * b) + ", " + std::to_string(c) +
                                         "]");
    Outputs result{logits.to(torch::kCPU, torch::kFloat32).contiguous(), {}};
    if (feature_dim_ > 0) {
      const at::Tensor f = features_tensor(out);
      if (!f.defined() || f.dim() != 2 || f.size(0) != replicas * b || f.size(1) != feature_dim_)
        throw Error(MUKI_ERR_INTERNAL, "the model returned features of shape " +
                                           (f.defined() ? shape_string(f) : std::string("none")) +
                                           ", expected [" + std::to_string(replicas * b) + ", " +
                                           std::to_string(feature_dim_) + "]");
      result.features = f.to(torch::kCPU, torch::kFloat32).contiguous();
    }
    return result;
  }

  // The second element of a tuple output when it is a floating-point [B, H] tensor, else undefined.
  static at::Tensor features_tensor(const c10::IValue& out) {
    if (!out.isTuple()) return {};
    const auto& elements = out.toTupleRef().elements();
    if (elements.size() < 2 || !elements[1].isTensor()) return {};
    const at::Tensor f = elements[1].toTensor();
    return f.dim() == 2 && f.is_floating_point() ? f : at::Tensor();
  }

  static at::Tensor output_tensor(const c10::IValue& out) {
    if (out.isTensor()) return out.toTensor();
    if (out.isTuple()) {
      const auto& elements = out.toTupleRef().elements();
      if (!elements.empty() && elements[0].isTensor()) return elements[0].toTensor();
    }
    throw Error(MUKI_ERR_CONFIG, "the model's forward returned a " + out.type()->str() +
                                     "; inputs = \"ids_mask\" needs a logits Tensor [B, C] (or a "
                                     "tuple whose first element is one)");
  }

  static std::string shape_string(const at::Tensor& t) {
    std::string s = "[";
    for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
    return s + "]";
  }

  void check_forward_signature(const fs::path& model_path) const {
    const auto method = module_.find_method("forward");
    if (!method)
      throw Error(MUKI_ERR_CONFIG, model_path.string() + ": the module has no forward() method");
    const auto& args = method->function().getSchema().arguments();
    // args[0] is self. Extra arguments with defaults are fine.
    size_t required = 0;
    std::string names;
    for (size_t i = 1; i < args.size(); ++i) {
      names += (i > 1 ? ", " : "") + args[i].name();
      if (!args[i].default_value()) ++required;
    }
    if (args.size() < 3 || required > 2)
      throw Error(MUKI_ERR_CONFIG, model_path.string() + ": forward(" + names +
                                       ") does not fit inputs = \"ids_mask\", which calls "
                                       "forward(input_ids, attention_mask)");
  }

  void find_dropout_modules() {
    for (const auto& item : module_.named_modules()) {
      std::string qualified;
      if (item.name.empty() || !is_dropout_class(class_name(item.value, &qualified))) continue;
      DropoutModule d{item.name, qualified, item.value, std::nullopt, false};
      const auto type = item.value.type();
      d.p_is_attribute = type->hasAttribute("p");
      if (item.value.hasattr("p")) {
        const c10::IValue p = item.value.attr("p");
        if (p.isDouble()) d.p = p.toDouble();
      }
      dropout_.push_back(std::move(d));
    }
  }

  void override_dropout(double p) {
    std::ostringstream value;
    value << p;
    const std::string what = "option 'dropout' = " + value.str();
    if (!(p > 0.0 && p < 1.0)) throw Error(MUKI_ERR_CONFIG, what + ": p must be in (0, 1)");
    if (dropout_.empty())
      throw Error(MUKI_ERR_CONFIG, what + " cannot be applied: the model has no dropout "
                                          "submodule");
    for (const auto& d : dropout_)
      if (!d.p_is_attribute)
        throw Error(MUKI_ERR_CONFIG,
                    what + " cannot be applied: the dropout module '" + d.path + "' (" +
                        d.type_name + ") does not keep p as a TorchScript attribute" +
                        (d.module.hasattr("p")
                             ? " but as a constant compiled into its code (torch.nn.Dropout "
                               "lists p in __constants__)"
                             : "") +
                        "; export the model with the p you want, or use a dropout module that "
                        "stores p as a plain attribute and passes it to F.dropout");
    for (auto& d : dropout_) {
      d.module.setattr("p", c10::IValue(p));
      d.p = p;
    }
  }

  // One forward on a short text: the model runs, and its output fits the labels file.
  void probe(const fs::path& model_path, const fs::path& labels_path) {
    const int64_t c = static_cast<int64_t>(labels_.size());
    c10::IValue out;
    try {
      const muki::core::Batch batch =
          muki::core::encode_batch(*tokenizer_, std::vector<std::string_view>{"muki"},
                                   static_cast<size_t>(max_length_), true);
      c10::InferenceMode guard;
      at::Tensor ids = torch::tensor(batch.input_ids, torch::kInt64).view({1, batch.length});
      at::Tensor mask = torch::tensor(batch.attention_mask, torch::kInt64).view({1, batch.length});
      out = module_.forward({ids.to(device_), mask.to(device_)});
    } catch (const c10::Error& e) {
      throw Error(MUKI_ERR_CONFIG, model_path.string() +
                                       ": forward(input_ids [1, L] int64, attention_mask [1, L] "
                                       "int64) failed on a probe text: " + torch_message(e));
    }
    const at::Tensor logits = output_tensor(out);
    if (use_features_) {
      const at::Tensor f = features_tensor(out);
      if (f.defined() && f.size(0) == 1) feature_dim_ = f.size(1);
    }
    if (logits.dim() != 2 || logits.size(0) != 1)
      throw Error(MUKI_ERR_CONFIG, model_path.string() + ": forward returned shape " +
                                       shape_string(logits) + " for one text; logits must be "
                                       "[B, C]");
    if (logits.size(1) != c)
      throw Error(MUKI_ERR_CONFIG, model_path.string() + " returns " +
                                       std::to_string(logits.size(1)) + " logits per text, but " +
                                       labels_path.string() + " lists " + std::to_string(c) +
                                       " labels: they must match, in the order of the logits");
  }

  // "Identical" up to float rounding: the K replicas of a text are different rows of one batched
  // forward, and a BLAS kernel may round rows in different blocks differently (seen: 2.4e-7 apart
  // with 2 threads), whereas dropout at any useful rate moves logits by orders of magnitude more.
  void refuse_identical_samples(const muki::sdk::Tensor& out, int64_t k, int64_t per_sample) const {
    const float* base = &out(0, 0, 0);
    for (int64_t s = 1; s < k; ++s)
      for (int64_t i = 0; i < per_sample; ++i)
        if (std::fabs(base[s * per_sample + i] - base[i]) > 1e-5f * (1.0f + std::fabs(base[i])))
          return;
    throw Error(MUKI_ERR_UNSUPPORTED,
                "K=" + std::to_string(k) + " stochastic passes gave identical outputs: the model's "
                "dropout is inactive although its " + std::to_string(dropout_.size()) +
                " dropout modules were switched to train mode (was it traced in eval mode, or "
                "frozen with torch.jit.freeze?); export it with torch.jit.script, or trace it "
                "with the dropout modules kept in train mode");
  }

  std::vector<std::string> labels_;
  std::unique_ptr<muki::core::Tokenizer> tokenizer_;
  torch::jit::Module module_;
  torch::Device device_ = torch::kCPU;
  std::vector<DropoutModule> dropout_;
  int64_t max_length_ = 128;
  int64_t batch_size_ = 32;
  bool use_features_ = true;
  int64_t feature_dim_ = 0;  // H when the model returns (logits, features), else 0
};

const muki_param_desc kParams[] = {
    muki::sdk::required_param("model", MUKI_PARAM_PATH,
                              "TorchScript file (.pt) saved with torch.jit.save"),
    muki::sdk::required_param("tokenizer", MUKI_PARAM_PATH,
                              "BERT vocab.txt (WordPiece) or SentencePiece .model"),
    muki::sdk::param("tokenizer_type", MUKI_PARAM_STRING, "\"auto\"",
                     "auto (by extension: .model = sentencepiece) | wordpiece | sentencepiece"),
    muki::sdk::param("lowercase", MUKI_PARAM_BOOL, "true",
                     "WordPiece only: lowercase and strip accents (uncased models)"),
    muki::sdk::required_param("labels", MUKI_PARAM_PATH,
                              "label names, one per line, in the order of the model's logits"),
    muki::sdk::param("max_length", MUKI_PARAM_INT, "128",
                     "tokens per text including [CLS] and [SEP]; longer texts are truncated", 3,
                     1048576),
    muki::sdk::param("device", MUKI_PARAM_STRING, "\"auto\"", "auto | cpu | cuda | cuda:N"),
    muki::sdk::param("threads", MUKI_PARAM_INT, "0",
                     "torch intra-op threads, process-wide (0 = leave the host's setting)", 0, 4096),
    muki::sdk::param("batch_size", MUKI_PARAM_INT, "32",
                     "texts per forward call (K samples run K * batch_size rows at once)", 1,
                     1048576),
    muki::sdk::param("inputs", MUKI_PARAM_STRING, "\"ids_mask\"",
                     "calling convention: ids_mask = forward(input_ids, attention_mask) -> "
                     "logits [B, C], both inputs int64 [B, L]"),
    muki::sdk::param("dropout", MUKI_PARAM_FLOAT, nullptr,
                     "override p of every dropout module for the stochastic passes (only when "
                     "the modules keep p as an attribute; torch.nn.Dropout compiles it in)",
                     0.0, 1.0),
    muki::sdk::param("features", MUKI_PARAM_STRING, "\"auto\"",
                     "auto = a forward returning (logits [B, C], pooled [B, H], ...) gives "
                     "features of dimension H | none"),
};

}  // namespace

MUKI_PLUGIN_LIBRARY_WITH_HOOKS(
    "muki-teacher-torchscript", "0.1.0", "TorchScript classifiers exported from PyTorch",
    muki::plugins::share_host_lock, nullptr,
    MUKI_TEACHER(TorchScriptTeacher, "torchscript", "0.1.0",
                 "a TorchScript classifier + its tokenizer + label names; MC dropout switches "
                 "only the dropout submodules to train mode",
                 kParams))
