#include "muki/model/checkpoint.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include <toml++/toml.h>
#include <torch/torch.h>

#include "muki/io/files.h"
#include "muki/io/fingerprint.h"
#ifdef MUKI_TORCH_SENTENCEPIECE
#include "muki/text/sentencepiece_tokenizer.h"
#endif
#include "muki/text/wordpiece_tokenizer.h"

namespace muki::core {
namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "muki-classifier";
constexpr const char* kEncoderFormat = "muki-encoder";
// The classification layer's tensors, which an encoder leaves out.
constexpr const char* kClassifierPrefix = "classifier.";
constexpr int64_t kFormatVersion = 1;

// torch's errors carry a C++ backtrace in what(); the first part is what a user needs.
std::string torch_message(const c10::Error& e) {
  std::string msg = e.what_without_backtrace();
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  return msg;
}

std::string shape_string(torch::IntArrayRef sizes) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < sizes.size(); ++i) out << (i ? ", " : "") << sizes[i];
  return out.str() + "]";
}

// Every parameter and buffer by its full module path; the order is the module's own.
std::vector<std::pair<std::string, torch::Tensor>> named_tensors(torch::nn::Module& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : model.named_parameters(/*recurse=*/true)) out.emplace_back(p.key(), p.value());
  for (const auto& b : model.named_buffers(/*recurse=*/true)) out.emplace_back(b.key(), b.value());
  return out;
}

void write_text(const fs::path& file, const std::string& text) {
  try {
    write_file_atomically(file, text);
  } catch (const std::runtime_error& e) {
    throw CheckpointError(e.what());
  }
}

// config.toml (format, [model], [tokenizer]; an encoder has no num_labels) and the tokenizer
// file, copied in unless it is already there.
void write_config_and_tokenizer(const fs::path& folder, const std::string& format, const ModelConfig& m,
                                const TokenizerSpec& spec, const fs::path& tokenizer_file) {
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) throw CheckpointError(folder.string() + ": cannot create the folder: " + ec.message());
  toml::table model_table{{"type", m.type},         {"vocab_size", m.vocab_size}, {"hidden", m.hidden},
                          {"layers", m.layers},     {"heads", m.heads},           {"ffn", m.ffn},
                          {"max_length", m.max_length}, {"dropout", m.dropout},   {"pooling", m.pooling},
                          {"filters", m.filters}};
  if (format == kFormat) model_table.insert("num_labels", m.num_labels);
  toml::table tokenizer_table{{"type", spec.type}, {"file", spec.file}, {"lowercase", spec.lowercase}};
  toml::table root{{"format", format},
                   {"format_version", kFormatVersion},
                   {"model", model_table},
                   {"tokenizer", tokenizer_table}};
  std::ostringstream config_text;
  config_text << "# muki " << (format == kFormat ? "classifier checkpoint" : "pre-trained encoder")
              << " (see core/model/include/muki/model/checkpoint.h)\n" << root << "\n";
  write_text(folder / "config.toml", config_text.str());
  const fs::path tokenizer_target = folder / spec.file;
  if (fs::weakly_canonical(tokenizer_file, ec) != fs::weakly_canonical(tokenizer_target, ec)) {
    fs::copy_file(tokenizer_file, tokenizer_target, fs::copy_options::overwrite_existing, ec);
    if (ec)
      throw CheckpointError(tokenizer_file.string() + ": cannot copy the tokenizer into " +
                            folder.string() + ": " + ec.message());
  }
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const TokenizerSpec& spec, const fs::path& folder) {
  const fs::path file = folder / spec.file;
  std::error_code ec;
  if (spec.file.empty() || !fs::is_regular_file(file, ec))
    throw CheckpointError(file.string() + ": tokenizer file missing (config.toml [tokenizer] file = \"" +
                          spec.file + "\")");
  try {
    if (spec.type == "wordpiece") {
      WordPieceOptions options;
      options.lower_case = spec.lowercase;
      return std::make_unique<WordPieceTokenizer>(WordPieceTokenizer::from_file(file, options));
    }
    if (spec.type == "sentencepiece") {
#ifdef MUKI_TORCH_SENTENCEPIECE
      return std::make_unique<SentencePieceTokenizer>(SentencePieceTokenizer::load(file));
#else
      throw CheckpointError(file.string() + ": SentencePiece tokenizers are off in this build: "
                            "Debian's libsentencepiece bundles a protobuf that clashes with the "
                            "system LibTorch's (see core/CMakeLists.txt, MUKI_TORCH_SENTENCEPIECE)");
#endif
    }
  } catch (const TokenizerError& e) {
    throw CheckpointError(std::string("tokenizer: ") + e.what());
  }
  throw CheckpointError((folder / "config.toml").string() +
                        ": tokenizer.type must be \"wordpiece\" or \"sentencepiece\", not \"" +
                        spec.type + "\"");
}

// The weights' checksum (a Fingerprint of the file) beside them: LibTorch loads an archive with
// overwritten bytes inside a tensor without complaint.
fs::path checksum_file(const fs::path& weights) { return weights.string() + ".checksum"; }

std::string archive_bytes(torch::serialize::OutputArchive& archive) {
  std::string bytes;
  archive.save_to([&bytes](const void* data, size_t n) {
    bytes.append(static_cast<const char*>(data), n);
    return n;
  });
  return bytes;
}

namespace {
std::vector<std::string> recorded_checksums(const fs::path& state) {
  std::vector<std::string> out;
  std::ifstream in(checksum_file(state));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}
}  // namespace

void write_state_archive(torch::serialize::OutputArchive& archive, const fs::path& file) {
  const fs::path tmp = file.string() + ".tmp";
  try {
    fs::create_directories(file.parent_path());
    const std::string bytes = archive_bytes(archive);
    write_file_durably(tmp, bytes);
    std::vector<std::string> checksums = recorded_checksums(file);
    checksums.insert(checksums.begin(), Fingerprint().add_file_bytes(bytes).hex());
    checksums.resize(std::min<size_t>(checksums.size(), 2));
    write_file_atomically(checksum_file(file), checksums[0] + "\n" + (checksums.size() > 1 ? checksums[1] + "\n" : ""));
    fs::rename(tmp, file);
  } catch (const c10::Error& e) {
    throw std::runtime_error(file.string() + ": cannot write the training state: " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw std::runtime_error(file.string() + ": cannot write the training state: " + e.what());
  }
}

bool state_file_intact(const fs::path& file) {
  const std::vector<std::string> checksums = recorded_checksums(file);
  return checksums.empty() ||
         std::find(checksums.begin(), checksums.end(), Fingerprint().add_file_content(file).hex()) != checksums.end();
}

void save_weights(torch::nn::Module& model, const fs::path& file, const std::string& skip_prefix) {
  torch::serialize::OutputArchive archive;
  for (const auto& [name, tensor] : named_tensors(model))
    if (skip_prefix.empty() || name.rfind(skip_prefix, 0) != 0)
      archive.write(name, tensor.detach().to(torch::kCPU).contiguous());
  std::string bytes;
  try {
    bytes = archive_bytes(archive);
  } catch (const c10::Error& e) {
    throw CheckpointError(file.string() + ": cannot write the weights: " + torch_message(e));
  }
  write_text(file, bytes);
  write_text(checksum_file(file), Fingerprint().add_file_bytes(bytes).hex() + "\n");
}

void load_weights(torch::nn::Module& model, const fs::path& file, const std::string& skip_prefix) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) throw CheckpointError(file.string() + ": no such file");
  // Checkpoints from before muki 0.2, or made by hand, have no checksum: nothing to compare.
  if (std::ifstream sum(checksum_file(file)); sum) {
    std::string expected;
    sum >> expected;
    if (expected != Fingerprint().add_file_content(file).hex())
      throw CheckpointError(file.string() + ": checksum mismatch: the file changed after muki wrote it "
                            "(damaged or edited; " + checksum_file(file).filename().string() +
                            " holds the original's); restore it or train it again");
  }
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(file.string(), torch::Device(torch::kCPU));
  } catch (const c10::Error& e) {
    throw CheckpointError(file.string() + ": not a readable weights archive: " + torch_message(e));
  }
  std::set<std::string> expected;
  torch::NoGradGuard no_grad;
  for (auto& [name, target] : named_tensors(model)) {
    if (!skip_prefix.empty() && name.rfind(skip_prefix, 0) == 0) continue;
    expected.insert(name);
    torch::Tensor stored;
    bool found = false;
    try {
      found = archive.try_read(name, stored);
    } catch (const c10::Error& e) {
      throw CheckpointError(file.string() + ": tensor '" + name + "' is unreadable: " +
                            torch_message(e));
    }
    if (!found) throw CheckpointError(file.string() + ": tensor '" + name + "' is missing");
    if (stored.sizes() != target.sizes())
      throw CheckpointError(file.string() + ": tensor '" + name + "' has shape " +
                            shape_string(stored.sizes()) + ", the model expects " +
                            shape_string(target.sizes()));
    if (stored.scalar_type() != target.scalar_type())
      throw CheckpointError(file.string() + ": tensor '" + name + "' has dtype " +
                            std::string(c10::toString(stored.scalar_type())) + ", the model expects " +
                            std::string(c10::toString(target.scalar_type())));
    target.copy_(stored);
  }
  for (const std::string& key : archive.keys())
    if (!expected.count(key))
      throw CheckpointError(file.string() + ": tensor '" + key +
                            "' is not part of this model (a different architecture?)");
}

std::vector<std::string> read_labels_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw CheckpointError(file.string() + ": cannot open the labels file");
  std::vector<std::string> labels;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.pop_back();
    labels.push_back(line);
  }
  while (!labels.empty() && labels.back().empty()) labels.pop_back();
  std::set<std::string> seen;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i].empty())
      throw CheckpointError(file.string() + ":" + std::to_string(i + 1) + ": empty label name");
    if (!seen.insert(labels[i]).second)
      throw CheckpointError(file.string() + ":" + std::to_string(i + 1) + ": label '" +
                            labels[i] + "' is listed twice");
  }
  if (labels.empty()) throw CheckpointError(file.string() + ": no labels");
  return labels;
}

void save_checkpoint(const fs::path& folder, ClassifierImpl& model, const TokenizerSpec& spec,
                     const fs::path& tokenizer_file, const std::vector<std::string>& labels,
                     const std::string& train_report_json) {
  const ModelConfig& m = model.config();
  if (static_cast<int64_t>(labels.size()) != m.num_labels)
    throw std::invalid_argument("save_checkpoint: " + std::to_string(labels.size()) +
                                " labels for a model with " + std::to_string(m.num_labels) +
                                " outputs");
  write_config_and_tokenizer(folder, kFormat, m, spec, tokenizer_file);
  std::string label_text;
  for (const auto& l : labels) label_text += l + "\n";
  write_text(folder / "labels.txt", label_text);
  save_weights(model, folder / "weights.pt");
  if (!train_report_json.empty()) write_text(folder / "train_report.json", train_report_json);
}

namespace {

// config.toml of a folder written in `format`.
std::pair<ModelConfig, TokenizerSpec> read_folder_config(const fs::path& folder, const std::string& format) {
  const fs::path file = folder / "config.toml";
  std::error_code ec;
  if (!fs::is_regular_file(file, ec))
    throw CheckpointError(file.string() + ": no such file (is " + folder.string() +
                          " a muki checkpoint folder?)");
  toml::table root;
  try {
    root = toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    throw CheckpointError(file.string() + ":" + std::to_string(e.source().begin.line) + ": " +
                          std::string(e.description()));
  }
  if (const std::string found = root["format"].value_or(std::string()); found != format)
    throw CheckpointError(file.string() + ": format is \"" + found + "\", not \"" + format + "\"" +
                          (found == kEncoderFormat ? " (a pre-trained encoder: name it as model.init to fine-tune from it)"
                           : found == kFormat      ? " (a classifier checkpoint, not a pre-trained encoder)"
                                                   : ""));
  const int64_t version = root["format_version"].value_or(int64_t{0});
  if (version < 1 || version > kFormatVersion)
    throw CheckpointError(file.string() + ": format_version " + std::to_string(version) +
                          " is not supported (this muki reads 1.." +
                          std::to_string(kFormatVersion) + ")");
  auto need_int = [&](const char* key) {
    auto v = root["model"][key].value<int64_t>();
    if (!v) throw CheckpointError(file.string() + ": model." + key + " is missing or not an integer");
    return *v;
  };
  auto need_string = [&](const char* table, const char* key) {
    auto v = root[table][key].value<std::string>();
    if (!v)
      throw CheckpointError(file.string() + ": " + table + "." + key + " is missing or not a string");
    return *v;
  };
  ModelConfig m;
  m.type = need_string("model", "type");
  m.vocab_size = need_int("vocab_size");
  m.num_labels = format == kFormat ? need_int("num_labels") : 1;  // validate() wants one
  m.hidden = need_int("hidden");
  m.layers = need_int("layers");
  m.heads = need_int("heads");
  m.ffn = need_int("ffn");
  m.max_length = need_int("max_length");
  m.filters = need_int("filters");
  m.pooling = need_string("model", "pooling");
  auto dropout = root["model"]["dropout"].value<double>();
  if (!dropout) throw CheckpointError(file.string() + ": model.dropout is missing or not a number");
  m.dropout = *dropout;
  try {
    m.validate();
  } catch (const std::invalid_argument& e) {
    throw CheckpointError(file.string() + ": " + e.what());
  }
  TokenizerSpec t;
  t.type = need_string("tokenizer", "type");
  t.file = need_string("tokenizer", "file");
  t.lowercase = root["tokenizer"]["lowercase"].value_or(true);
  if (format != kFormat) m.num_labels = 0;
  return {m, t};
}

}  // namespace

std::pair<ModelConfig, TokenizerSpec> read_checkpoint_config(const fs::path& folder) {
  return read_folder_config(folder, kFormat);
}

void save_encoder(const fs::path& folder, TransformerClassifierImpl& model, torch::nn::Module& head,
                  const TokenizerSpec& spec, const fs::path& tokenizer_file) {
  write_config_and_tokenizer(folder, kEncoderFormat, model.config(), spec, tokenizer_file);
  save_weights(model, folder / "encoder.pt", kClassifierPrefix);
  save_weights(head, folder / "mlm_head.pt");
}

std::pair<ModelConfig, TokenizerSpec> read_encoder_config(const fs::path& folder) {
  return read_folder_config(folder, kEncoderFormat);
}

void load_encoder_weights(ClassifierImpl& model, const fs::path& folder) {
  const auto [encoder, spec] = read_encoder_config(folder);
  const ModelConfig& m = model.config();
  if (m.type != encoder.type || m.vocab_size != encoder.vocab_size || m.hidden != encoder.hidden ||
      m.layers != encoder.layers || m.heads != encoder.heads || m.ffn != encoder.ffn ||
      m.max_length != encoder.max_length)
    throw CheckpointError((folder / "config.toml").string() +
                          ": the encoder's [model] sizes differ from the model being initialised "
                          "(model.init takes them from the encoder)");
  load_weights(model, folder / "encoder.pt", kClassifierPrefix);
}

LoadedCheckpoint load_checkpoint(const fs::path& folder, const torch::Device& device) {
  LoadedCheckpoint out;
  out.folder = folder;
  std::tie(out.model_config, out.tokenizer_spec) = read_checkpoint_config(folder);
  out.labels = read_labels_file(folder / "labels.txt");
  if (static_cast<int64_t>(out.labels.size()) != out.model_config.num_labels)
    throw CheckpointError((folder / "labels.txt").string() + ": " +
                          std::to_string(out.labels.size()) + " labels, but config.toml says " +
                          "model.num_labels = " + std::to_string(out.model_config.num_labels));
  out.tokenizer = load_tokenizer(out.tokenizer_spec, folder);
  if (out.tokenizer->vocab_size() != out.model_config.vocab_size)
    throw CheckpointError((folder / out.tokenizer_spec.file).string() + ": vocabulary of " +
                          std::to_string(out.tokenizer->vocab_size()) +
                          " tokens, but config.toml says model.vocab_size = " +
                          std::to_string(out.model_config.vocab_size));
  out.model = make_classifier(out.model_config);
  load_weights(*out.model, folder / "weights.pt");
  out.model->to(device);
  out.model->eval();
  return out;
}

}  // namespace muki::core
