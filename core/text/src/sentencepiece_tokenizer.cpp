#include <muki/text/sentencepiece_tokenizer.h>

#include <fstream>
#include <unordered_map>

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

namespace muki::core {
namespace {

std::optional<int64_t> optional_id(int id) {
  if (id < 0) return std::nullopt;
  return id;
}

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(
    std::unique_ptr<sentencepiece::SentencePieceProcessor> sp)
    : sp_(std::move(sp)) {}
SentencePieceTokenizer::SentencePieceTokenizer(SentencePieceTokenizer&&) noexcept = default;
SentencePieceTokenizer& SentencePieceTokenizer::operator=(SentencePieceTokenizer&&) noexcept =
    default;
SentencePieceTokenizer::~SentencePieceTokenizer() = default;

SentencePieceTokenizer SentencePieceTokenizer::train(const SentencePieceTrainOptions& options) {
  const std::string corpus = options.corpus.string();
  if (!std::filesystem::is_regular_file(options.corpus))
    throw TokenizerError(corpus + ": SentencePiece training corpus not found");
  const std::unordered_map<std::string, std::string> args = {
      {"input", corpus},
      {"model_type", options.model_type},
      {"vocab_size", std::to_string(options.vocab_size)},
      {"character_coverage", std::to_string(options.character_coverage)},
      {"hard_vocab_limit", options.hard_vocab_limit ? "true" : "false"},
      {"input_sentence_size", std::to_string(options.input_sentence_size)},
      {"shuffle_input_sentence", "true"},
      {"num_threads", std::to_string(options.num_threads)},
      {"pad_id", "0"},
      {"unk_id", "1"},
      {"bos_id", "2"},
      {"eos_id", "3"},
      {"minloglevel", "2"},  // SentencePiece's progress chatter: errors only
  };
  std::string model;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, nullptr, &model);
  if (!status.ok())
    throw TokenizerError(corpus + ": SentencePiece training failed: " + status.ToString());
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  if (const auto s = sp->LoadFromSerializedProto(model); !s.ok())
    throw TokenizerError("SentencePiece: cannot load the model just trained: " + s.ToString());
  return SentencePieceTokenizer(std::move(sp));
}

SentencePieceTokenizer SentencePieceTokenizer::load(const std::filesystem::path& model_file) {
  auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
  if (const auto s = sp->Load(model_file.string()); !s.ok())
    throw TokenizerError(model_file.string() + ": cannot load SentencePiece model: " +
                         s.ToString());
  return SentencePieceTokenizer(std::move(sp));
}

void SentencePieceTokenizer::save(const std::filesystem::path& model_file) const {
  const std::string bytes = sp_->serialized_model_proto();
  std::ofstream out(model_file, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw TokenizerError(model_file.string() + ": cannot write SentencePiece model");
}

std::vector<int64_t> SentencePieceTokenizer::encode(std::string_view text) const {
  std::vector<int> ids;
  // Encode fails only when no model is loaded, which the constructors rule out.
  if (const auto s = sp_->Encode(text, &ids); !s.ok())
    throw TokenizerError("SentencePiece encode failed: " + s.ToString());
  return std::vector<int64_t>(ids.begin(), ids.end());
}

std::vector<std::string> SentencePieceTokenizer::encode_pieces(std::string_view text) const {
  std::vector<std::string> pieces;
  if (const auto s = sp_->Encode(text, &pieces); !s.ok())
    throw TokenizerError("SentencePiece encode failed: " + s.ToString());
  return pieces;
}

std::string SentencePieceTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::vector<int> narrow;
  narrow.reserve(ids.size());
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab_size())
      throw std::out_of_range("SentencePiece id " + std::to_string(id) + " outside [0, " +
                              std::to_string(vocab_size()) + ")");
    narrow.push_back(static_cast<int>(id));
  }
  std::string text;
  if (const auto s = sp_->Decode(narrow, &text); !s.ok())
    throw TokenizerError("SentencePiece decode failed: " + s.ToString());
  return text;
}

std::string SentencePieceTokenizer::id_to_token(int64_t id) const {
  if (id < 0 || id >= vocab_size())
    throw std::out_of_range("SentencePiece id " + std::to_string(id) + " outside [0, " +
                            std::to_string(vocab_size()) + ")");
  return sp_->IdToPiece(static_cast<int>(id));
}

std::optional<int64_t> SentencePieceTokenizer::token_to_id(std::string_view token) const {
  // PieceToId answers unk_id() for unknown pieces; tell that apart from the unknown piece itself.
  const int id = sp_->PieceToId(token);
  if (id == sp_->unk_id() && sp_->IdToPiece(id) != token) return std::nullopt;
  return id;
}

int64_t SentencePieceTokenizer::vocab_size() const { return sp_->GetPieceSize(); }
int64_t SentencePieceTokenizer::pad_id() const {
  return sp_->pad_id() >= 0 ? sp_->pad_id() : sp_->unk_id();
}
std::optional<int64_t> SentencePieceTokenizer::cls_id() const { return optional_id(sp_->bos_id()); }
std::optional<int64_t> SentencePieceTokenizer::sep_id() const { return optional_id(sp_->eos_id()); }
std::optional<int64_t> SentencePieceTokenizer::unk_id() const { return optional_id(sp_->unk_id()); }

}  // namespace muki::core
