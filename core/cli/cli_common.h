// Options and helpers every `muki` subcommand shares.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "muki/experiment/config.h"
#include "muki/registry/registry.h"

namespace muki::core {
class ProcessGroup;
}

namespace muki::cli {

namespace po = boost::program_options;

struct CommonOptions {
  std::vector<std::string> paths;
  bool no_default_paths = false;
  std::string log_level;
};

struct ConfigOptions {
  std::string config;
  std::vector<std::string> sets;
};

void add_common(po::options_description& desc, CommonOptions& common,
                const char* default_log_level = "warn");
void add_config(po::options_description& desc, ConfigOptions& options);

// Parses a command's arguments; returns false (after printing usage and options) on --help.
bool parse(const std::vector<std::string>& args, const po::options_description& desc,
           const po::positional_options_description& positional, const std::string& usage);

// parse() for a command whose one positional argument is CONFIG, with the common options after
// `desc`'s own.
bool parse_config_command(const std::vector<std::string>& args, po::options_description& desc,
                          CommonOptions& common, const char* default_log_level,
                          const std::string& usage);

void setup_logging(const std::string& level);

// The distributed job this process is a rank of, when a launcher (torchrun, srun) set RANK,
// WORLD_SIZE, MASTER_ADDR and MASTER_PORT; null when it runs alone. `distributed` is the config's
// [distributed] table (backend, timeout_s), or null for the defaults. From then on every log line
// names the rank. Throws what distributed_environment() and ProcessGroup::join throw.
std::unique_ptr<core::ProcessGroup> join_job(const toml::table* distributed);

// Loads the file and applies the --set overrides in order.
core::Config load_config(const ConfigOptions& options);

std::vector<std::filesystem::path> extra_paths(const CommonOptions& common);

// core::load_and_validate with the command line's plugin folders: --path, then the config's
// [plugins].paths, then muki's own unless --no-default-paths. Throws ConfigError.
void load_plugins_and_validate(const core::Config& config, registry::Registry& registry,
                               const CommonOptions& common);

int cmd_analyze(const std::vector<std::string>& args);
int cmd_teacher_train(const std::vector<std::string>& args);
int cmd_pretrain(const std::vector<std::string>& args);
int cmd_run(const std::vector<std::string>& args);
int cmd_compare(const std::vector<std::string>& args);
int cmd_sweep(const std::vector<std::string>& args);

}  // namespace muki::cli
