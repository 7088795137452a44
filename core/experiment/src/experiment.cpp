#include "muki/experiment/experiment.h"

#include <algorithm>

#include "muki/io/fingerprint.h"

namespace muki::core {
namespace fs = std::filesystem;
using registry::Kind;

std::vector<DatasetSpec> dataset_specs(const toml::table& table, const Config& config) {
  DatasetSpec spec;
  spec.format = table["format"].value_or<std::string>("");
  spec.text_field = table["text"].value_or<std::string>("text");
  spec.label_field = table["label"].value_or<std::string>("");
  spec.id_field = table["id"].value_or<std::string>("");
  spec.group_field = table["group"].value_or<std::string>("");
  spec.on_error = table["on_error"].value_or<std::string>("fail") == "skip" ? OnError::Skip : OnError::Fail;
  std::vector<std::string> paths;
  if (const toml::array* list = table["path"].as_array()) {
    for (const toml::node& p : *list) paths.push_back(p.value_or<std::string>(""));
  } else {
    paths.push_back(table["path"].value_or<std::string>(""));
  }
  std::vector<DatasetSpec> out;
  for (const std::string& p : paths) {
    spec.path = (config.base_dir() / p).lexically_normal();
    out.push_back(spec);
  }
  return out;
}

std::vector<DatasetSpec> dataset_specs(const Config& config, std::string_view split) {
  const std::string key = "data." + std::string(split);
  const toml::table* table = config.root().at_path(key).as_table();
  if (table == nullptr)
    throw ConfigError({ConfigProblem{config.path().string(), 0, 0,
                                     "missing [" + key + "] (this command needs that split)"}});
  return dataset_specs(*table, config);
}

uint64_t experiment_seed(const Config& config) {
  return static_cast<uint64_t>(config.root().at_path("experiment.seed").value_or<int64_t>(0));
}

TeacherPassOptions teacher_pass_options(const Config& config, uint32_t samples, bool features,
                                        int64_t batch_size) {
  const toml::node_view<const toml::node> node = config.root().at_path("uncertainty.adaptive_tolerance");
  const double tolerance = node.value_or(0.0);
  if (tolerance > 0 && (samples == 0 || samples % 4 != 0)) {
    const toml::source_region& where = node.node()->source();  // a --set value names its --set
    throw ConfigError({ConfigProblem{where.path ? *where.path : config.path().string(), where.begin.line,
                                     where.begin.column,
                                     "uncertainty.adaptive_tolerance needs a strategy that samples a multiple of 4 "
                                     "passes (rounds of K/4, K/2, K), but it samples " + std::to_string(samples)}});
  }
  TeacherPassOptions options;
  options.samples = samples;
  options.features = features;
  options.seed = experiment_seed(config);
  options.batch_size = batch_size;
  options.adaptive_tolerance = tolerance;
  // Unset, a chunk holds at least one call's texts: a chunk ends a call, so a smaller one would cut
  // every call short (and change the batches' seeds).
  options.chunk_size =
      config.root().at_path("distributed.chunk_size").value_or(std::max(options.chunk_size, batch_size));
  options.cache_dir = cache_dir(config) / "teacher-pass";
  return options;
}

TeacherSetup create_teacher(const Config& config, const registry::Registry& registry,
                            const toml::table& t, const std::string& name) {
  TeacherSetup setup;
  setup.name = name;
  const std::string adapter = t["adapter"].value_or<std::string>("");
  const registry::PluginInfo& info = registry.get(Kind::Teacher, adapter);
  const std::string options =
      plugin_options_toml(t["options"].as_table(), config, registry, Kind::Teacher, adapter);
  Fingerprint key;
  key.add(info.name).add(info.version).add(options).add_path(info.library_path);
  for (const auto& p : info.params)
    if (p.type == MUKI_PARAM_PATH)
      if (auto value = t.at_path("options." + p.name).value<std::string>())
        key.add_path(config.base_dir() / *value);
  setup.cache_key = key.hex();
  if (const toml::table* reference = t["reference"].as_table()) setup.reference = dataset_specs(*reference, config);
  setup.instance = registry.create_teacher(
      adapter, registry::CreateArgs{setup.name, options, config.base_dir(), experiment_seed(config)});
  return setup;
}

std::vector<TeacherSetup> create_teachers(const Config& config, const registry::Registry& registry) {
  std::vector<TeacherSetup> out;
  const toml::array* teachers = config.root().get_as<toml::array>("teachers");
  if (teachers == nullptr) return out;
  for (const toml::node& node : *teachers) {
    const toml::table& t = *node.as_table();
    out.push_back(create_teacher(config, registry, t, t["name"].value_or<std::string>("")));
  }
  return out;
}

namespace {
// The options of [section] if it configures `strategy`, else none (the plugin's defaults).
std::string strategy_options(const Config& config, const registry::Registry& registry, Kind kind,
                             const char* section, std::string_view strategy) {
  const toml::table* table = config.root()[section].as_table();
  if (table == nullptr) return {};
  const auto configured = (*table)["strategy"].value<std::string>();
  const registry::PluginInfo& wanted = registry.get(kind, strategy);
  if (!configured || registry.find(kind, *configured) != &wanted) return {};
  return plugin_options_toml((*table)["options"].as_table(), config, registry, kind, strategy);
}
}  // namespace

std::unique_ptr<registry::UncertaintyInstance> create_uncertainty(
    const Config& config, const registry::Registry& registry, std::string_view strategy) {
  const std::string options =
      strategy_options(config, registry, Kind::Uncertainty, "uncertainty", strategy);
  return registry.create_uncertainty(
      strategy, {std::string(strategy), options, config.base_dir(), experiment_seed(config)});
}

namespace {
void require_features(const Config& config, const std::string& reader,
                      const std::vector<TeacherSetup>& teachers) {
  for (const TeacherSetup& t : teachers)
    if (t.instance->feature_dim() == 0)
      throw ConfigError({ConfigProblem{
          config.path().string(), 0, 0,
          reader + " reads the teachers' features, but teacher '" + t.name + "' (adapter '" +
              t.instance->plugin().name + "') gives none; pick a strategy that reads logits only"}});
}
}  // namespace

void check_features(const Config& config, const registry::UncertaintyInstance& strategy,
                    const std::vector<TeacherSetup>& teachers) {
  if (strategy.needs_features())
    require_features(config, "uncertainty strategy '" + strategy.plugin().name + "'", teachers);
}

void check_features(const Config& config, const registry::IntegrationInstance& strategy,
                    const std::vector<TeacherSetup>& teachers) {
  if (strategy.feature_objective() != MUKI_FEATURE_OBJECTIVE_NONE)
    require_features(config, "integration strategy '" + strategy.plugin().name + "'", teachers);
}

void check_composition(const Config& config, const registry::UncertaintyInstance& uncertainty,
                       const registry::IntegrationInstance& integration,
                       const std::vector<TeacherSetup>& teachers, const LabelSpace& labels) {
  if (!integration.ignores_scores()) check_features(config, uncertainty, teachers);
  check_features(config, integration, teachers);

  // Uniform logits and distinct certainties (teacher t scores -t), so a strategy that picks or
  // weights teachers, or takes their margin, sees an ordinary example.
  const int64_t union_size = static_cast<int64_t>(labels.size());
  std::vector<std::vector<float>> logits(teachers.size());
  std::vector<float> scores(teachers.size());
  std::vector<registry::TeacherOutputsView> views;
  for (size_t t = 0; t < teachers.size(); ++t) {
    logits[t].assign(labels.label_map(t).size(), 0.0f);
    scores[t] = -static_cast<float>(t);
    views.push_back({logits[t].data(), &scores[t], &labels.label_map(t)});
  }
  const int64_t gold = 0;
  std::vector<float> target(static_cast<size_t>(union_size)), weight(1);
  try {
    integration.integrate(views, 1, union_size, integration.needs_gold() ? &gold : nullptr,
                          target.data(), weight.data());
  } catch (const registry::PluginError& e) {
    // Where the strategy was named: the file, or the --set that replaced it.
    const toml::source_region& at = config.root().at_path("integration.strategy").node()->source();
    throw ConfigError({ConfigProblem{at.path ? *at.path : config.path().string(), at.begin.line, at.begin.column,
                                     std::string("these teachers cannot be integrated: ") + e.what()}});
  }
}

std::unique_ptr<registry::IntegrationInstance> create_integration(
    const Config& config, const registry::Registry& registry, std::string_view strategy) {
  const std::string options =
      strategy_options(config, registry, Kind::Integration, "integration", strategy);
  return registry.create_integration(
      strategy, {std::string(strategy), options, config.base_dir(), experiment_seed(config)});
}

ExperimentPlugins create_experiment_plugins(const Config& config, const registry::Registry& registry) {
  const toml::table& root = config.root();
  ExperimentPlugins p{*root.at_path("uncertainty.strategy").value<std::string>(),
                      *root.at_path("integration.strategy").value<std::string>(),
                      nullptr, nullptr, {}, std::nullopt, LabelSpace({}), true};
  p.uncertainty = create_uncertainty(config, registry, p.uncertainty_name);
  p.integration = create_integration(config, registry, p.integration_name);
  p.teachers = create_teachers(config, registry);
  std::vector<std::vector<std::string>> teacher_labels;
  for (const auto& t : p.teachers) teacher_labels.push_back(t.instance->labels());
  p.labels = LabelSpace(teacher_labels);
  if (const toml::table* ref = root["reference"].as_table())
    p.reference = create_teacher(config, registry, *ref, "reference");
  p.scored = !p.integration->ignores_scores();
  check_composition(config, *p.uncertainty, *p.integration, p.teachers, p.labels);
  return p;
}

void load_and_validate(const Config& config, registry::Registry& registry,
                       const std::vector<fs::path>& extra_paths, bool default_paths) {
  std::vector<fs::path> folders = extra_paths;
  const auto configured = config.plugin_paths();
  folders.insert(folders.end(), configured.begin(), configured.end());
  if (default_paths)
    for (const auto& p : registry::default_plugin_folders()) folders.push_back(p);
  std::vector<ConfigProblem> problems;
  for (const auto& failure : registry.scan(folders))
    problems.push_back(ConfigProblem{"plugin library", 0, 0, failure.message});
  const auto invalid = validate(config, registry);
  problems.insert(problems.end(), invalid.begin(), invalid.end());
  if (!problems.empty()) throw ConfigError(std::move(problems));
}

}  // namespace muki::core
