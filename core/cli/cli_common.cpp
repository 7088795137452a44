#include "cli_common.h"

#include "muki/experiment/experiment.h"
#include "muki/model/process_group.h"

#include <iostream>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace muki::cli {

void add_common(po::options_description& desc, CommonOptions& common,
                const char* default_log_level) {
  desc.add_options()("help,h", "show this help")(
      "path,p", po::value(&common.paths)->composing(),
      "a folder of plugin libraries to load (repeatable)")(
      "no-default-paths", po::bool_switch(&common.no_default_paths),
      "load only --path and config folders, not $MUKI_PLUGIN_PATH or muki's own")(
      "log-level", po::value(&common.log_level)->default_value(default_log_level),
      "trace, debug, info, warn, error");
}

void add_config(po::options_description& desc, ConfigOptions& options) {
  desc.add_options()("config", po::value(&options.config)->required(), "experiment TOML file")(
      "set", po::value(&options.sets)->composing(),
      "override: KEY=VALUE with VALUE in TOML syntax, e.g. --set uncertainty.options.samples=8 "
      "(repeatable; applied in order, after the file)");
}

bool parse(const std::vector<std::string>& args, const po::options_description& desc,
           const po::positional_options_description& positional, const std::string& usage) {
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(desc).positional(positional).run(), vm);
  if (vm.count("help")) {
    std::cout << usage << "\n\n" << desc << "\n";
    return false;
  }
  po::notify(vm);
  return true;
}

bool parse_config_command(const std::vector<std::string>& args, po::options_description& desc,
                          CommonOptions& common, const char* default_log_level,
                          const std::string& usage) {
  add_common(desc, common, default_log_level);
  po::positional_options_description positional;
  positional.add("config", 1);
  return parse(args, desc, positional, usage);
}

void setup_logging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("muki");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("[%H:%M:%S] [%^%l%$] %v");
  spdlog::set_level(spdlog::level::from_str(level));
}

std::unique_ptr<core::ProcessGroup> join_job(const toml::table* distributed) {
  const std::optional<core::DistributedEnvironment> env = core::distributed_environment();
  if (!env) return nullptr;
  spdlog::set_pattern("[%H:%M:%S] [rank " + std::to_string(env->rank) + "] [%^%l%$] %v");
  core::ProcessGroupOptions options;
  if (distributed != nullptr) {
    options.backend = (*distributed)["backend"].value_or(options.backend);
    options.timeout = std::chrono::seconds((*distributed)["timeout_s"].value_or(int64_t{300}));
  }
  return core::ProcessGroup::join(*env, options);
}

core::Config load_config(const ConfigOptions& options) {
  auto config = core::Config::load(options.config);
  for (const auto& s : options.sets) config.apply_override(s);
  return config;
}

std::vector<std::filesystem::path> extra_paths(const CommonOptions& common) {
  return std::vector<std::filesystem::path>(common.paths.begin(), common.paths.end());
}

void load_plugins_and_validate(const core::Config& config, registry::Registry& registry,
                               const CommonOptions& common) {
  core::load_and_validate(config, registry, extra_paths(common), !common.no_default_paths);
}

}  // namespace muki::cli
