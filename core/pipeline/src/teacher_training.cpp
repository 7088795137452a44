#include "muki/pipeline/teacher_training.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "muki/data/dataset.h"
#include "muki/data/labeled_split.h"
#include "muki/experiment/experiment.h"
#include "muki/io/file_lock.h"
#include "muki/io/files.h"
#include "muki/io/fingerprint.h"
#include "muki/io/json.h"
#include "muki/io/number_text.h"
#include "muki/io/process.h"
#include "muki/model/checkpoint.h"
#include "muki/model/process_group.h"
#include "muki/model/classifier_trainer.h"
#include "muki/model/device.h"
#include "muki/model/models.h"
#include "muki/model/text_encoding.h"
#include "training_setup.h"

namespace muki::core {
namespace fs = std::filesystem;

namespace {

Json to_json(const ClassificationMetrics& m) {
  return {{"accuracy", m.accuracy}, {"macro_f1", m.macro_f1}, {"examples", m.examples}};
}

Json to_json(const std::optional<ClassificationMetrics>& m) { return m ? to_json(*m) : Json(); }

Json to_json(const SplitCounts& c) {
  return {{"read", c.read}, {"kept", c.kept}, {"left_out", c.left_out}};
}

// train_report.json's counts of the three splits.
Json split_counts(const TeacherTrainingResult& r) {
  return {{"train", to_json(r.train)}, {"dev", to_json(r.dev)}, {"test", to_json(r.test)}};
}

// The examples of `data` with one of the teacher's labels; `counts` gets how many were read, kept
// and left out.
LabeledSplit teacher_split(const Dataset& data, const LabelSpace& labels, SplitCounts& counts) {
  LabeledSplit out = map_onto(data, labels);
  counts = {static_cast<int64_t>(data.examples.size()), static_cast<int64_t>(out.gold.size()), out.left_out()};
  return out;
}

EvalSet eval_set(const Tokenizer& tokenizer, const LabeledSplit& split, int64_t max_length) {
  EncodedTexts enc = encode_texts(tokenizer, split.texts, max_length, /*pad_to_max=*/true);
  std::vector<int64_t> labels = split.gold;
  return EvalSet{enc.input_ids, enc.attention_mask,
                 torch::from_blob(labels.data(), {static_cast<int64_t>(labels.size())}, torch::kLong)
                     .clone()};
}

constexpr const char* kFasttextHint = "fastText teachers are trained by Debian's fasttext tool";

// fastText's input format: one "__label__<label> <text>" line per example.
void write_fasttext_file(const fs::path& file, const LabeledSplit& split, const std::vector<std::string>& labels) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  for (size_t i = 0; i < split.texts.size(); ++i) {
    std::string text = split.texts[i];
    // One example a line: a line break inside a text (JSONL allows it) would split it.
    std::replace_if(text.begin(), text.end(), [](char c) { return c == '\n' || c == '\r' || c == '\v' || c == '\f'; }, ' ');
    out << "__label__" << labels[static_cast<size_t>(split.gold[i])] << " " << text << "\n";
  }
  out.close();  // the last buffered lines are written here
  if (!out) throw CheckpointError(file.string() + ": cannot be written");
}

// Accuracy and macro-F1 of `fasttext predict` on a split.
ClassificationMetrics fasttext_metrics(const fs::path& model, const LabeledSplit& split,
                                       const std::vector<std::string>& labels, const fs::path& work) {
  const fs::path input = work / "eval.txt", predictions = work / "predictions.txt";
  write_fasttext_file(input, split, labels);
  run_program({"fasttext", "predict", model.string(), input.string(), "1"}, predictions, {}, kFasttextHint,
              work / "predict.log");
  std::ifstream in(predictions);
  std::vector<int64_t> predicted;
  for (std::string line; std::getline(in, line);) {
    const auto it = std::find(labels.begin(), labels.end(), line.substr(std::min<size_t>(9, line.size())));
    if (line.rfind("__label__", 0) != 0 || it == labels.end())
      throw std::runtime_error(predictions.string() + ": '" + line + "' is not one of this teacher's labels");
    predicted.push_back(it - labels.begin());
  }
  if (predicted.size() != split.gold.size())
    throw std::runtime_error(predictions.string() + ": " + std::to_string(predicted.size()) +
                             " predictions for " + std::to_string(split.gold.size()) + " texts");
  fs::remove(input);
  fs::remove(predictions);
  fs::remove(work / "predict.log");
  return classification_metrics(split.gold, predicted, static_cast<int64_t>(labels.size()));
}

// reference.jsonl in the teacher's folder: its dev examples of its own labels (id, label, text),
// held out from its training. An experiment names it as the teacher's [[teachers]] reference,
// what feature-space certainty is fitted on and certainty scores are calibrated against when the
// experiment has no labeled dev split over all the teachers' labels.
void write_reference(const fs::path& folder, const std::optional<LabeledSplit>& dev,
                     const std::vector<std::string>& labels) {
  if (!dev || dev->texts.empty()) return;
  std::string lines;
  for (size_t i = 0; i < dev->texts.size(); ++i)
    lines += json_line({{"id", dev->ids[i]}, {"label", labels[static_cast<size_t>(dev->gold[i])]},
                        {"text", dev->texts[i]}}) + "\n";
  std::error_code ec;
  fs::create_directories(folder, ec);
  write_file_atomically(folder / "reference.jsonl", lines);
}

// A fastText teacher: `fasttext supervised` (Debian's fasttext tool) on this teacher's examples,
// with [model] hidden as -dim and word_ngrams as -wordNgrams, [train] epochs and lr, one thread
// and the teacher's seed (the same data give the same model). The folder gets model.bin (what
// the `fasttext` adapter loads), labels.txt and train_report.json.
void train_fasttext(const Config& config, const std::string& name, uint64_t seed, const LabeledSplit& train,
                    const std::optional<LabeledSplit>& dev, const std::optional<LabeledSplit>& test,
                    TeacherTrainingResult& result) {
  const toml::table& root = config.root();
  for (const std::string& label : result.labels)
    if (label.find_first_of(" \t\n") != std::string::npos)
      throw std::invalid_argument("teacher.labels: '" + label + "' has whitespace, which a fastText label cannot");
  std::error_code ec;
  fs::create_directories(result.output, ec);
  if (ec) throw CheckpointError(result.output.string() + ": cannot create the folder: " + ec.message());
  const fs::path input = result.output / "train.txt", model = result.output / "model.bin";
  write_fasttext_file(input, train, result.labels);
  const auto started = std::chrono::steady_clock::now();
  run_program({"fasttext", "supervised", "-input", input.string(), "-output", (result.output / "model").string(),
               "-epoch", std::to_string(root.at_path("train.epochs").value_or(int64_t{25})),
               "-lr", shortest_number(root.at_path("train.lr").value_or(0.5)),
               "-dim", std::to_string(root.at_path("model.hidden").value_or(int64_t{50})),
               "-wordNgrams", std::to_string(root.at_path("model.word_ngrams").value_or(int64_t{2})),
               "-thread", "1", "-seed", std::to_string(seed), "-verbose", "0"},
              result.output / "fasttext.log", {}, kFasttextHint);
  result.train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  fs::remove(input);
  fs::remove(result.output / "model.vec", ec);
  if (dev && !dev->texts.empty()) result.dev_metrics = fasttext_metrics(model, *dev, result.labels, result.output);
  if (test && !test->texts.empty()) result.test_metrics = fasttext_metrics(model, *test, result.labels, result.output);
  std::string labels_text;
  for (const auto& l : result.labels) labels_text += l + "\n";
  write_file_atomically(result.output / "labels.txt", labels_text);
  write_reference(result.output, dev, result.labels);
  result.report_json = json_lines({{"name", name},
                                   {"model", {{"type", "fasttext"}}},
                                   {"labels", result.labels},
                                   {"data", split_counts(result)},
                                   {"train", {{"seconds", result.train_seconds}}},
                                   {"dev", to_json(result.dev_metrics)},
                                   {"test", to_json(result.test_metrics)}});
  write_file_atomically(result.output / "train_report.json", result.report_json);  // last: complete
  spdlog::info("teacher '{}' done: fastText, {} labels, {} train examples in {:.1f} s; test accuracy {}",
               name, result.labels.size(), result.train.kept, result.train_seconds,
               result.test_metrics ? std::to_string(result.test_metrics->accuracy) : "n/a");
}

}  // namespace

bool has_teacher_checkpoint(const fs::path& folder) {
  std::error_code ec;
  return fs::is_regular_file(folder / "train_report.json", ec);
}

// What a process training the teacher into `output` holds (file_lock.h): beside the folder, not
// in it, since the folder's files are the teacher's fingerprint.
static fs::path training_lock_file(fs::path output) {
  if (!output.has_filename()) output = output.parent_path();  // "a/b/"
  return output.string() + ".lock";
}

static std::string teacher_name(const Config& entry) {
  return entry.root().at_path("teacher.name").value_or(std::string());
}

std::vector<TeacherTrainingResult> train_teachers(const Config& file, bool missing_only, ProcessGroup* group) {
  if (auto problems = validate_teacher_training(file); !problems.empty()) throw ConfigError(std::move(problems));
  std::vector<TeacherTrainingResult> out;
  // Alone, this process may share the file with others (runs whose [prepare] names it, started
  // together): a teacher is trained by the process holding its lock. Missing teachers another
  // process is training are left for last, then waited for; the teacher is trained here only if
  // that process died first. A retraining (not missing_only) waits for the lock.
  std::vector<std::pair<Config, fs::path>> held_elsewhere;
  // Trains the teacher into `output` while this process holds its lock, unless another process
  // finished it first.
  auto train_holding = [&](const Config& entry, const fs::path& output, const FileLock&) {
    if (missing_only && has_teacher_checkpoint(output))
      spdlog::info("teacher '{}': {} was trained by another process", teacher_name(entry), output.string());
    else
      out.push_back(train_teacher(entry, nullptr));
  };
  auto wait_for = [](const Config& entry, const fs::path& output) {
    return FileLock::lock(training_lock_file(output), [&] {
      spdlog::info("teacher '{}': waiting for another process training it into {}", teacher_name(entry), output.string());
    });
  };
  for (const Config& entry : teacher_entries(file)) {
    const fs::path output = fs::absolute(entry.root().at_path("teacher.output").value_or(std::string())).lexically_normal();
    if (missing_only && as_rank0_decides(group, has_teacher_checkpoint(output))) {
      spdlog::info("teacher '{}': {} is there already", teacher_name(entry), output.string());
      continue;
    }
    if (group != nullptr) {  // the ranks train it together
      out.push_back(train_teacher(entry, group));
      continue;
    }
    if (std::optional<FileLock> claim = FileLock::try_lock(training_lock_file(output)))
      train_holding(entry, output, *claim);
    else if (missing_only)
      held_elsewhere.emplace_back(entry, output);
    else
      train_holding(entry, output, wait_for(entry, output));
  }
  for (const auto& [entry, output] : held_elsewhere) train_holding(entry, output, wait_for(entry, output));
  return out;
}

TeacherTrainingResult train_teacher(const Config& config, ProcessGroup* group) {
  if (auto problems = validate_teacher_training(config); !problems.empty())
    throw ConfigError(std::move(problems));
  const auto start = std::chrono::steady_clock::now();
  const toml::table& root = config.root();
  const std::string name = *root.at_path("teacher.name").value<std::string>();
  TeacherTrainingResult result;
  result.output = fs::absolute(*root.at_path("teacher.output").value<std::string>()).lexically_normal();
  const bool leader = is_rank0(group);
  const TrainingFolder folder(group, result.output, name);
  // Retraining: the old report is what marks a finished checkpoint, so it goes first; a run
  // killed halfway then leaves a folder that is not taken for a teacher.
  std::error_code gone;
  if (leader) fs::remove(result.output / "train_report.json", gone);
  const uint64_t seed = static_cast<uint64_t>(root.at_path("teacher.seed").value_or(int64_t{1}));
  const int threads = configure_threads(root.at_path("teacher.threads").value_or(int64_t{0}));
  const torch::Device device = device_from(config, "teacher.device");
  spdlog::info("teacher '{}': device {}, {} threads, output {}", name, device.str(), threads,
               result.output.string());

  // --- data --------------------------------------------------------------------------------
  const toml::table& data = *root["data"].as_table();
  const Dataset train_data = read_all(dataset_specs(*data["train"].as_table(), config));
  if (const toml::array* listed = root.at_path("teacher.labels").as_array()) {
    for (const toml::node& l : *listed) result.labels.push_back(*l.value<std::string>());
  } else {
    // No subset: every label of the train split, sorted (the supervised upper bound).
    std::set<std::string> all;
    for (const Example& e : train_data.examples) all.insert(*e.label);
    result.labels.assign(all.begin(), all.end());
  }
  const LabelSpace labels({result.labels});
  const LabeledSplit train = teacher_split(train_data, labels, result.train);
  for (size_t i = 0; i < result.labels.size(); ++i)
    if (std::find(train.gold.begin(), train.gold.end(), static_cast<int64_t>(i)) == train.gold.end())
      throw std::invalid_argument("teacher.labels: label '" + result.labels[i] +
                                  "' has no example in the train split [data.train]");
  auto read_optional = [&](const char* key, SplitCounts& counts) -> std::optional<LabeledSplit> {
    const toml::table* t = data[key].as_table();
    if (t == nullptr) return std::nullopt;
    return teacher_split(read_all(dataset_specs(*t, config)), labels, counts);
  };
  const std::optional<LabeledSplit> dev = read_optional("dev", result.dev);
  const std::optional<LabeledSplit> test = read_optional("test", result.test);
  auto log_split = [&](const char* split, const SplitCounts& c) {
    spdlog::info("{}: {} examples of this teacher's {} labels kept, {} with other labels left out",
                 split, c.kept, result.labels.size(), c.left_out);
  };
  if (group != nullptr) {  // every rank must train on the same rows, or the steps do not match
    Fingerprint seen;
    seen.add(config.to_toml());
    for (size_t i = 0; i < train.texts.size(); ++i) seen.add(train.texts[i]).add(static_cast<uint64_t>(train.gold[i]));
    if (const Agreement a = agreement_on(group, seen.hex()); a.differing > 0)
      throw std::runtime_error("teacher '" + name + "': rank " + std::to_string(a.differing) + " has another config or "
                               "other training rows than rank 0 (" + a.values[static_cast<size_t>(a.differing)] + " vs " +
                               a.values[0] + "); every rank must run the same file on the same data");
  }
  log_split("train", result.train);
  if (dev) log_split("dev", result.dev);
  if (test) log_split("test", result.test);
  if (root.at_path("model.type").value_or(std::string()) == "fasttext") {
    if (!leader) return result;  // fastText trains on its own threads, in rank 0
    train_fasttext(config, name, seed, train, dev, test, result);
    result.total_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
  }

  // --- tokenizer, model, trainer -------------------------------------------------------------
  TrainingModel built = make_training_model(root["tokenizer"].as_table(), root["model"].as_table(), config, "",
                                            train.texts, folder.path(),
                                            static_cast<int64_t>(result.labels.size()), seed);
  const TrainingTokenizer& tok = built.tokenizer;
  const Tokenizer* tokenizer = tok.tokenizer.get();
  const TokenizerSpec& spec = tok.spec;
  const ModelConfig& mc = built.config;
  Classifier model = built.model;
  model->to(device);
  TrainerOptions to = trainer_options_from(root["train"].as_table());
  to.seed = seed;
  to.name = name;
  to.group = group;

  // --- training ------------------------------------------------------------------------------
  const EvalSet train_set = eval_set(*tokenizer, train, mc.max_length);
  std::optional<EvalSet> dev_set, test_set;
  if (dev && !dev->texts.empty()) dev_set = eval_set(*tokenizer, *dev, mc.max_length);
  if (test && !test->texts.empty()) test_set = eval_set(*tokenizer, *test, mc.max_length);
  const TrainResult trained =
      train_classifier(*model, TrainInputs{train_set.input_ids, train_set.attention_mask},
                       cross_entropy_loss(train_set.labels), dev_set ? &*dev_set : nullptr, to, device);
  result.steps = trained.steps;
  result.best_step = trained.best_step;
  result.stopped_early = trained.stopped_early;
  result.train_seconds = trained.seconds;
  if (!leader) return result;  // rank 0 evaluates and writes the checkpoint
  if (dev_set) result.dev_metrics = evaluate(*model, *dev_set, to.eval_batch_size, device);
  if (test_set) result.test_metrics = evaluate(*model, *test_set, to.eval_batch_size, device);

  // --- report + checkpoint -------------------------------------------------------------------
  result.total_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  int64_t parameters = 0;
  for (const auto& p : model->parameters()) parameters += p.numel();
  Json history = Json::array();
  for (const EvalRecord& r : trained.history)
    history.push_back({{"step", r.step}, {"epoch", r.epoch}, {"train_loss", r.train_loss}, {"dev", to_json(r.dev)}});
  result.report_json = json_lines(
      {{"name", name},
       {"config", fs::absolute(config.path()).lexically_normal().string()},
       {"labels", result.labels},
       {"device", device.str()},
       {"threads", threads},
       {"seed", seed},
       {"model", {{"type", mc.type}, {"vocab_size", mc.vocab_size}, {"hidden", mc.hidden},
                  {"layers", mc.layers}, {"heads", mc.heads}, {"ffn", mc.ffn},
                  {"max_length", mc.max_length}, {"dropout", mc.dropout}, {"pooling", mc.pooling},
                  {"filters", mc.filters}, {"parameters", parameters}}},
       {"tokenizer", {{"type", spec.type}, {"vocab_size", tokenizer->vocab_size()}}},
       {"init", built.init.empty() ? Json() : Json(built.init.string())},
       {"data", split_counts(result)},
       {"train", {{"epochs", to.epochs}, {"batch_size", to.batch_size}, {"lr", to.lr},
                  {"bucket_batches", to.bucket_batches}, {"precision", to.bf16 ? "bf16" : "fp32"},
                  {"steps", result.steps}, {"planned_steps", trained.planned_steps},
                  {"best_step", result.best_step}, {"stopped_early", result.stopped_early},
                  {"seconds", result.train_seconds}, {"history", history}}},
       {"dev", to_json(result.dev_metrics)},
       {"test", to_json(result.test_metrics)},
       {"total_seconds", result.total_seconds}});
  write_reference(result.output, dev, result.labels);
  save_checkpoint(result.output, *model, spec, tok.file, result.labels, result.report_json);

  spdlog::info("teacher '{}' done: {} labels, {} train examples, {} steps in {:.1f} s{}", name,
               result.labels.size(), result.train.kept, result.steps, result.train_seconds,
               result.stopped_early ? " (early stop)" : "");
  if (result.dev_metrics)
    spdlog::info("  dev  accuracy {:.4f} macro-F1 {:.4f} ({} examples)", result.dev_metrics->accuracy,
                 result.dev_metrics->macro_f1, result.dev_metrics->examples);
  if (result.test_metrics)
    spdlog::info("  test accuracy {:.4f} macro-F1 {:.4f} ({} examples)", result.test_metrics->accuracy,
                 result.test_metrics->macro_f1, result.test_metrics->examples);
  spdlog::info("  checkpoint {}", result.output.string());
  return result;
}

}  // namespace muki::core
