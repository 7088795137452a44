// Building an experiment's pieces from its validated config: datasets, teacher instances (with
// the cache keys that identify them), uncertainty and integration instances.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <muki/data/dataset.h>
#include <muki/data/label_space.h>
#include <muki/experiment/config.h>
#include <muki/experiment/teacher_pass.h>
#include <muki/registry/registry.h>

namespace muki::core {

// A split's table ({ path = "a.tsv" | ["a.tsv", "b.tsv"], text, label, ... }) as reader specs,
// one per file, paths resolved against the config's folder.
std::vector<DatasetSpec> dataset_specs(const toml::table& split, const Config& config);
// [data].<split>. Throws ConfigError naming the key when the split is not configured.
std::vector<DatasetSpec> dataset_specs(const Config& config, std::string_view split);

// The experiment seed ([experiment].seed, default 0).
uint64_t experiment_seed(const Config& config);

// The teacher pass an experiment runs (`muki run` and `muki analyze` alike, so they share the
// cache): `samples` (the strategy's K) and `features` as given, the experiment's seed,
// `batch_size` texts a call, [uncertainty].adaptive_tolerance (default 0 = exact K passes),
// [distributed].chunk_size examples a cache chunk (default 256, or batch_size when larger; what
// concurrent processes and the ranks of a job share), the
// cache under cache_dir(config). Throws ConfigError at adaptive_tolerance when it is on and
// `samples` is not a positive multiple of 4.
TeacherPassOptions teacher_pass_options(const Config& config, uint32_t samples, bool features,
                                        int64_t batch_size);

struct TeacherSetup {
  std::string name;
  std::unique_ptr<registry::TeacherInstance> instance;
  // Identifies the teacher for caches: plugin name and version, library file, options, and the
  // content of every PATH option (the model files).
  std::string cache_key;
  // [[teachers]] reference: held-out labeled texts of this teacher's own labels (e.g. the
  // reference.jsonl `muki teacher train` writes); fitted on and calibrated against instead of the
  // experiment's dev split. Empty when not given.
  std::vector<DatasetSpec> reference;
};

// Creates every [[teachers]] entry, in order.
std::vector<TeacherSetup> create_teachers(const Config& config, const registry::Registry& registry);

// Creates one teacher from a table with `adapter` and optional `options` (a [[teachers]] entry,
// or [reference]), named `name`.
TeacherSetup create_teacher(const Config& config, const registry::Registry& registry,
                            const toml::table& table, const std::string& name);

// Creates the named strategy with the options of the config's [uncertainty] / [integration]
// table when that table names the same strategy, else with the plugin's defaults.
std::unique_ptr<registry::UncertaintyInstance> create_uncertainty(
    const Config& config, const registry::Registry& registry, std::string_view strategy);
std::unique_ptr<registry::IntegrationInstance> create_integration(
    const Config& config, const registry::Registry& registry, std::string_view strategy);

// A strategy that reads features cannot score a teacher without them: throws ConfigError naming
// the strategy, the first such teacher and its adapter, before any teacher pass runs.
void check_features(const Config& config, const registry::UncertaintyInstance& strategy,
                    const std::vector<TeacherSetup>& teachers);
// The same for an integration strategy with a feature objective (DFA, CFL).
void check_features(const Config& config, const registry::IntegrationInstance& strategy,
                    const std::vector<TeacherSetup>& teachers);

// Everything about how the plugins fit together that is known before any teacher runs: the
// features above, and the integration strategy's own refusals of these teachers (UHC of
// overlapping label sets, margin re-weighting of a single teacher, or a third party's rule),
// found by integrating one synthetic example with the teachers' real label maps. Throws
// ConfigError at [integration] strategy with the strategy's message. `muki validate` and
// `muki run` both call it, so validate cannot pass a composition that run then refuses.
void check_composition(const Config& config, const registry::UncertaintyInstance& uncertainty,
                       const registry::IntegrationInstance& integration,
                       const std::vector<TeacherSetup>& teachers, const LabelSpace& labels);

// The strategies and teachers of an experiment, and the union of the teachers' labels.
struct ExperimentPlugins {
  std::string uncertainty_name, integration_name;
  std::unique_ptr<registry::UncertaintyInstance> uncertainty;
  std::unique_ptr<registry::IntegrationInstance> integration;
  std::vector<TeacherSetup> teachers;
  std::optional<TeacherSetup> reference;  // [reference]: the teacher the targets are compared with
  LabelSpace labels;
  // A strategy that ignores the scores needs no stochastic passes (and no uncertainty figures).
  bool scored = true;
};

// Creates the config's strategies and teachers (loading the teachers' models) and checks their
// composition (check_composition). Throws ConfigError or registry::PluginError.
ExperimentPlugins create_experiment_plugins(const Config& config, const registry::Registry& registry);

// Loads plugin folders (config paths, extra paths, defaults) and validates the config; throws
// ConfigError listing every problem (a library that failed to load is one of them).
void load_and_validate(const Config& config, registry::Registry& registry,
                       const std::vector<std::filesystem::path>& extra_paths,
                       bool default_paths = true);

}  // namespace muki::core
