#include "muki/pipeline/student.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include "muki/model/checkpoint.h"
#include "muki/model/classifier_trainer.h"
#include "muki/model/device.h"
#include "muki/model/feature_objectives.h"
#include "muki/model/process_group.h"
#include "muki/model/text_encoding.h"
#include "training_setup.h"

namespace muki::core {

namespace {

torch::Tensor to_tensor(const std::vector<float>& v, std::vector<int64_t> shape) {
  return torch::from_blob(const_cast<float*>(v.data()), shape, torch::kFloat).clone();
}
torch::Tensor to_tensor(const std::vector<int64_t>& v) {
  return torch::from_blob(const_cast<int64_t*>(v.data()), {static_cast<int64_t>(v.size())},
                          torch::kLong)
      .clone();
}

// DFA's or CFL's modules for these teachers and this student (initialised right after the
// student, from the same seeded generator), and their loss on a batch's rows.
FeatureLoss make_feature_loss(const StudentSetup& s, int64_t student_dim, const toml::table* train,
                              const torch::Device& device) {
  const auto n = static_cast<int64_t>(s.transfer_texts.size());
  if (s.teacher_features.empty() || s.teacher_features.size() != s.teacher_feature_dims.size())
    throw std::invalid_argument("student: the feature objective needs every teacher's features");
  std::vector<torch::Tensor> features;
  for (size_t i = 0; i < s.teacher_features.size(); ++i) {
    const int64_t h = s.teacher_feature_dims[i];
    if (h < 1 || static_cast<int64_t>(s.teacher_features[i].size()) != n * h)
      throw std::invalid_argument("student: teacher " + std::to_string(i) + "'s features do not match " +
                                  std::to_string(n) + " transfer examples");
    features.push_back(to_tensor(s.teacher_features[i], {n, h}));
  }
  const auto kind = s.feature_objective == MUKI_FEATURE_OBJECTIVE_DFA ? FeatureObjectiveKind::Dfa
                                                                      : FeatureObjectiveKind::Cfl;
  std::shared_ptr<FeatureObjectiveImpl> objective =
      make_feature_objective(kind, student_dim, s.teacher_feature_dims);
  objective->to(device);
  FeatureLoss out;
  out.modules = objective;
  out.loss = [objective, features = std::move(features), weight = s.feature_weight](
                 const torch::Tensor& pooled, const torch::Tensor& indices) {
    std::vector<torch::Tensor> batch;
    for (const torch::Tensor& f : features)
      batch.push_back(f.index_select(0, indices).to(pooled.device(), pooled.scalar_type()));
    return weight * objective->forward(pooled, batch);
  };
  if (train != nullptr) {
    out.lr = (*train)["feature_lr"].value_or(out.lr);
    out.weight_decay = (*train)["feature_weight_decay"].value_or(out.weight_decay);
  }
  return out;
}

}  // namespace

StudentResult train_student(const StudentSetup& s) {
  const Config& config = *s.config;
  const toml::table& root = config.root();
  const auto n = static_cast<int64_t>(s.transfer_texts.size());
  const auto c = static_cast<int64_t>(s.labels.size());
  if (n == 0) throw std::invalid_argument("the transfer set is empty: nothing to train the student on");
  if (static_cast<int64_t>(s.targets.size()) != n * c || static_cast<int64_t>(s.weights.size()) != n)
    throw std::invalid_argument("student: targets/weights do not match " + std::to_string(n) +
                                " transfer examples x " + std::to_string(c) + " labels");
  if (s.dev_gold.size() != s.dev_texts.size())
    throw std::invalid_argument("student: dev texts and labels differ in number");

  const torch::Device device = device_from(config, "experiment.device");
  const uint64_t seed = static_cast<uint64_t>(root.at_path("experiment.seed").value_or(int64_t{0}));
  const toml::table* student = root["student"].as_table();
  auto table = [&](const char* key) {
    return student != nullptr ? (*student)[key].as_table() : nullptr;
  };

  // The student's vocabulary comes from the unlabeled transfer texts (or the pre-trained encoder
  // it starts from): it is deterministic, so a resumed run rebuilds exactly the same one.
  TrainingModel built = make_training_model(table("tokenizer"), table("model"), config, "student.",
                                            s.transfer_texts, s.folder, c, seed);
  const TrainingTokenizer& tok = built.tokenizer;
  const ModelConfig& mc = built.config;
  Classifier model = built.model;
  model->to(device);

  TrainerOptions options = trainer_options_from(table("train"));
  options.seed = seed;
  options.name = "student";
  options.state_file = s.state_file;
  options.group = s.group;
  // "auto" is one config on two machines: the device the state was made on is part of its key.
  options.state_key = s.state_key + "|" + device.str();

  const EncodedTexts transfer = encode_texts(*tok.tokenizer, s.transfer_texts, mc.max_length, true);
  const torch::Tensor targets = to_tensor(s.targets, {n, c});
  const torch::Tensor weights = to_tensor(s.weights, {n});
  LossFn loss;
  if (s.loss == MUKI_LOSS_KL_PER_TEACHER) {
    std::vector<torch::Tensor> blocks;
    for (const auto& b : s.blocks) blocks.push_back(to_tensor(b));
    loss = per_teacher_kl_loss(targets, weights, std::move(blocks), s.temperature);
  } else {
    loss = weighted_kl_loss(targets, weights, s.temperature);
  }
  std::optional<FeatureLoss> feature_loss;
  if (s.feature_objective != MUKI_FEATURE_OBJECTIVE_NONE)
    feature_loss = make_feature_loss(s, model->feature_dim(), table("train"), device);
  std::optional<EvalSet> dev;
  if (!s.dev_texts.empty()) {
    const EncodedTexts enc = encode_texts(*tok.tokenizer, s.dev_texts, mc.max_length, true);
    dev = EvalSet{enc.input_ids, enc.attention_mask, to_tensor(s.dev_gold)};
  }
  const TrainResult trained = train_classifier(
      *model, TrainInputs{transfer.input_ids, transfer.attention_mask}, loss,
      dev ? &*dev : nullptr, options, device,
      [&](const EvalRecord& r) {
        if (s.on_eval)
          s.on_eval(StudentEval{r.step, r.epoch, r.train_loss, r.dev.accuracy, r.dev.macro_f1});
      },
      feature_loss ? &*feature_loss : nullptr);

  StudentResult out;
  out.steps = trained.steps;
  out.planned_steps = trained.planned_steps;
  out.best_step = trained.best_step;
  out.resumed_from_step = trained.resumed_from_step;
  out.stopped_early = trained.stopped_early;
  out.best_dev_accuracy = trained.best_dev.accuracy;
  out.best_dev_macro_f1 = trained.best_dev.macro_f1;
  out.train_seconds = trained.seconds;
  out.device = device.str();
  out.vocab_size = tok.tokenizer->vocab_size();
  for (const auto& p : model->parameters()) out.parameters += p.numel();
  for (const EvalRecord& r : trained.history)
    out.history.push_back(StudentEval{r.step, r.epoch, r.train_loss, r.dev.accuracy, r.dev.macro_f1});

  if (!is_rank0(s.group)) return out;  // rank 0 predicts and saves
  if (!s.test_texts.empty()) {
    const EncodedTexts test = encode_texts(*tok.tokenizer, s.test_texts, mc.max_length, true);
    const torch::Tensor probs = torch::softmax(
        predict_logits(*model, test.input_ids, test.attention_mask, options.eval_batch_size, device), 1);
    const auto [top, arg] = probs.max(1);
    const torch::Tensor p = top.contiguous(), a = arg.contiguous();
    out.test_probability.assign(p.data_ptr<float>(), p.data_ptr<float>() + p.numel());
    out.test_predicted.assign(a.data_ptr<int64_t>(), a.data_ptr<int64_t>() + a.numel());
  }
  save_checkpoint(s.folder, *model, tok.spec, tok.file, s.labels);
  spdlog::info("student: {} steps{}, best dev accuracy {:.4f} at step {}, checkpoint {}", out.steps,
               out.stopped_early ? " (early stop)" : "", out.best_dev_accuracy, out.best_step,
               s.folder.string());
  return out;
}

}  // namespace muki::core
