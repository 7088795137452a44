// The `native` teacher adapter: a checkpoint folder written by `muki teacher train`
// (config.toml, labels.txt, the tokenizer file, weights.pt), run with muki's own model code.
//
// Options (schema in kParams below):
//   checkpoint  PATH, required. The checkpoint folder.
//   device      "auto" (CUDA when LibTorch sees it, else CPU) | "cpu" | "cuda" | "cuda:N".
//   threads     INT, default 0 = leave it: torch's intra-op threads are a process-wide setting,
//               which the host makes ([experiment].threads); > 0 overrides it for the process.
//   batch_size  INT, default 0 = auto (32 on the CPU, 512 on CUDA): rows per forward call. A
//               deterministic pass runs that many texts at a time; K stochastic passes run
//               max(1, batch_size / K) texts replicated K times, as ONE forward call. Measured on
//               2 CPU cores (bench/run.sh): 32-row calls run K = 16 passes 1.4x faster than
//               256-row ones (the activations stay in cache).
//   piece_texts INT, default 0 = auto (the whole request on the CPU; 4 calls' texts on CUDA): the
//               texts tokenized and sorted by length together (added in adapter 0.3.0, muki
//               0.10). A piece's calls are queued before the next piece is tokenized, so on CUDA,
//               whose forward calls return before the device has run them, the host tokenizes
//               piece j+1 while the device runs piece j. On the CPU the calls run as they are
//               made, so a whole request is one piece: the widest choice of lengths to bucket.
//               Outputs do not depend on it (tested on the CPU with small pieces).
//   dropout     FLOAT, optional: the p of every dropout module during the stochastic passes;
//               default the checkpoint's own rate (the rate it was trained with).
//   precision   "fp32" (default) | "bf16": bf16 runs the passes' matrix products in bfloat16
//               (torch autocast; normalisations and softmax stay float32), a speed option. Its
//               cost in teacher selection and student accuracy is measured in bench/README.md.
//
// Deterministic pass (samples = 0): eval mode, torch::InferenceMode.
// Stochastic passes (samples = K): only the dropout modules go to train mode (the models have no
// BatchNorm, and LayerNorm has no mode), the micro-batch is replicated K times in one forward
// call, and each text's masks are keyed by (request seed, its position in the request, k)
// (mc_dropout.h). Texts are bucketed by length within the request. The same (texts, K, seed)
// gives the same output whatever batch_size, to float rounding (the matrix products' blocking
// follows the call's shape). Results are copied to the host's CPU float32 tensor.
// Features (SDK 1.1): the model's pooled representation, the input of its classification layer
// ([CLS] or mean for the Transformer, the mean embedding, the CNN's max-pooled filters).
#include <muki/plugin.hpp>

#include <muki/model/checkpoint.h>
#include <muki/model/device.h>
#include <muki/model/mc_dropout.h>
#include <muki/model/text_encoding.h>

#include <torch/torch.h>

#include "torch_teacher.h"

#include <algorithm>
#include <filesystem>
#include <sstream>

namespace {

namespace fs = std::filesystem;
using muki::sdk::Error;

using muki::plugins::torch_message;

class NativeTeacher : public muki::sdk::Teacher {
 public:
  explicit NativeTeacher(const muki::sdk::Context& ctx) {
    const std::string folder = ctx.options.get_string("checkpoint", "");
    if (folder.empty()) throw Error(MUKI_ERR_CONFIG, "option 'checkpoint' is required");
    fs::path path(folder);
    if (path.is_relative() && !ctx.config_dir.empty()) path = fs::path(ctx.config_dir) / path;
    batch_size_ = ctx.options.get_int("batch_size", 0);
    if (batch_size_ < 0) throw Error(MUKI_ERR_CONFIG, "option 'batch_size' must be >= 0 (0 = auto)");
    piece_texts_ = ctx.options.get_int("piece_texts", 0);
    if (piece_texts_ < 0) throw Error(MUKI_ERR_CONFIG, "option 'piece_texts' must be >= 0 (0 = auto)");
    try {
      if (const int64_t threads = ctx.options.get_int("threads", 0); threads > 0)
        muki::core::configure_threads(threads);
      device_ = muki::core::resolve_device(ctx.options.get_string("device", "auto"));
      if (batch_size_ == 0) batch_size_ = device_.is_cuda() ? 512 : 32;
    } catch (const std::invalid_argument& e) {
      throw Error(MUKI_ERR_CONFIG, std::string("option 'device'/'threads': ") + e.what());
    }
    try {
      checkpoint_ = muki::core::load_checkpoint(path, device_);
    } catch (const muki::core::CheckpointError& e) {
      throw Error(MUKI_ERR_IO, std::string("checkpoint: ") + e.what());
    } catch (const c10::Error& e) {
      throw Error(MUKI_ERR_INTERNAL, "checkpoint " + path.string() + ": " + torch_message(e));
    }
    auto& model = *checkpoint_.model;
    double p = checkpoint_.model_config.dropout;
    if (ctx.options.has("dropout")) {
      p = ctx.options.get_float("dropout", p);
      try {
        muki::core::set_dropout_rate(model, p);
      } catch (const std::invalid_argument& e) {
        throw Error(MUKI_ERR_CONFIG, std::string("option 'dropout': ") + e.what());
      }
    }
    const std::string precision = ctx.options.get_string("precision", "fp32");
    if (precision != "fp32" && precision != "bf16")
      throw Error(MUKI_ERR_CONFIG, "option 'precision' must be \"fp32\" or \"bf16\", not \"" + precision + "\"");
    bf16_ = precision == "bf16";
    if (const std::string slow = bf16_ ? muki::core::bf16_slowness(device_) : ""; !slow.empty())
      ctx.log(MUKI_LOG_WARN, slow);
    const int64_t layers = muki::core::count_dropout_modules(model);
    can_sample_ = layers > 0 && p > 0;
    std::ostringstream note;
    if (can_sample_)
      note << "MC dropout p=" << p << " on " << layers << " dropout layers ("
           << checkpoint_.model_config.type << ")";
    note_ = note.str();
    ctx.log(MUKI_LOG_INFO, "loaded " + path.string() + ": " + checkpoint_.model_config.type + ", " +
                               std::to_string(checkpoint_.labels.size()) + " labels, device " +
                               device_.str());
  }

  const std::vector<std::string>& labels() const override { return checkpoint_.labels; }
  bool can_sample() const override { return can_sample_; }
  std::string sampling_note() const override { return note_; }

  size_t feature_dim() const override {
    return static_cast<size_t>(checkpoint_.model->feature_dim());
  }

  void predict_with_features(const std::vector<std::string_view>& texts, uint32_t samples,
                             uint64_t seed, muki::sdk::Tensor out,
                             muki::sdk::Tensor* features) override {
    const int64_t n = static_cast<int64_t>(texts.size());
    const int64_t k = samples;
    auto& model = *checkpoint_.model;
    const int64_t texts_per_call = std::max<int64_t>(1, batch_size_ / std::max<int64_t>(1, k));
    try {
      // Length bucketing: each piece of the request is tokenized once and cut into calls of texts
      // of similar length, so each call is padded little. A text's outputs do not depend on its
      // piece or call: its dropout masks are keyed by its position in the request (mc_dropout.h)
      // and attention and pooling ignore padding.
      const muki::core::Bf16Autocast autocast(device_, bf16_);
      // On CUDA the inputs go up from pinned memory without blocking, and the outputs stay on the
      // device until every call of the request is queued: the host then tokenizes the next piece
      // and cuts the next call's inputs while the device still runs the last ones.
      struct Call {
        std::vector<int64_t> rows;  // positions in the request
        torch::Tensor logits, pooled;
      };
      std::vector<Call> calls;
      const bool cuda = device_.is_cuda();
      auto upload = [&](const torch::Tensor& t) { return cuda ? t.pin_memory().to(device_, true) : t; };
      const int64_t piece = piece_texts_ > 0 ? piece_texts_ : cuda ? 4 * texts_per_call : std::max<int64_t>(n, 1);
      for (int64_t first = 0; first < n; first += piece) {
        const int64_t count = std::min(piece, n - first);
        const muki::core::EncodedTexts encoded = muki::core::encode_texts(
            *checkpoint_.tokenizer, std::vector<std::string_view>(texts.begin() + first, texts.begin() + first + count),
            checkpoint_.model_config.max_length);
        const std::vector<int64_t> order = muki::core::order_by_length(encoded.attention_mask);
        for (int64_t start = 0; start < count; start += texts_per_call) {
          const std::vector<int64_t> local(order.begin() + start, order.begin() + std::min(count, start + texts_per_call));
          Call call;
          for (int64_t i : local) call.rows.push_back(first + i);
          const muki::core::EncodedTexts enc = muki::core::select_rows(encoded, local);
          const torch::Tensor ids = upload(enc.input_ids), mask = upload(enc.attention_mask);
          torch::Tensor* pooled_out = features != nullptr ? &call.pooled : nullptr;
          call.logits = k == 0 ? muki::core::predict_deterministic(model, ids, mask, pooled_out)
                               : muki::core::mc_dropout_sample(model, ids, mask, k, seed, pooled_out, call.rows);
          calls.push_back(std::move(call));
        }
      }
      for (const Call& call : calls) {
        muki::plugins::copy_passes(call.logits, out, call.rows, k);
        if (features != nullptr) muki::plugins::copy_passes(call.pooled, *features, call.rows, k);
      }
    } catch (const c10::Error& e) {
      throw Error(MUKI_ERR_INTERNAL, "native teacher forward: " + torch_message(e));
    }
  }

 private:
  torch::Device device_ = torch::kCPU;
  muki::core::LoadedCheckpoint checkpoint_;
  int64_t batch_size_ = 0;  // rows per forward call
  int64_t piece_texts_ = 0;  // texts tokenized together (0 = auto)
  bool can_sample_ = false;
  bool bf16_ = false;  // precision = "bf16"
  std::string note_;
};

const muki_param_desc kParams[] = {
    muki::sdk::required_param("checkpoint", MUKI_PARAM_PATH,
                              "checkpoint folder written by `muki teacher train`"),
    muki::sdk::param("device", MUKI_PARAM_STRING, "\"auto\"", "auto | cpu | cuda | cuda:N"),
    muki::sdk::param("threads", MUKI_PARAM_INT, "0",
                     "torch intra-op threads, process-wide (0 = leave the host's setting)", 0,
                     4096),
    muki::sdk::param("batch_size", MUKI_PARAM_INT, "0",
                     "rows per forward call: texts, or texts x K when sampling (0 = 32 on the CPU, "
                     "512 on CUDA)", 0, 1e6),
    muki::sdk::param("piece_texts", MUKI_PARAM_INT, "0",
                     "texts tokenized and length-sorted together; on CUDA the next piece is tokenized "
                     "while the device runs this one (0 = the whole request on the CPU, 4 calls' texts "
                     "on CUDA)", 0, 1e9),
    muki::sdk::param("dropout", MUKI_PARAM_FLOAT, nullptr,
                     "MC-dropout rate override (default: the checkpoint's)", 0, 0.99),
    muki::sdk::param("precision", MUKI_PARAM_STRING, "\"fp32\"",
                     "fp32 | bf16 (matrix products in bfloat16: faster, see bench/README.md)"),
};

}  // namespace

MUKI_PLUGIN_LIBRARY_WITH_HOOKS("muki-teacher-native", "0.3.0",
                               "muki's own LibTorch classifier checkpoints", muki::plugins::share_host_lock, nullptr,
                               MUKI_TEACHER(NativeTeacher, "native", "0.3.0",
                                 "a `muki teacher train` checkpoint folder (Transformer, CNN or "
                                 "bag of embeddings); MC dropout for the stochastic passes",
                                 kParams))
