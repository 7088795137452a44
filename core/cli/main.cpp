// The `muki` command line: a thin dispatcher over core and registry.
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "muki/core/config.h"
#include "muki/registry/registry.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;
using muki::registry::Registry;

namespace {

constexpr const char* kVersion = "0.1.0";

const char* kUsage =
    "usage: muki <command> [options]\n"
    "\n"
    "commands:\n"
    "  plugins        list the plugins found (kind, name, version, ABI, library, parameters)\n"
    "  validate       check an experiment config against the host's and the plugins' schemas\n"
    "  print-config   print an experiment config with --set overrides applied\n"
    "\n"
    "Run `muki <command> --help` for a command's options.\n"
    "Plugins are searched in: --path folders, [plugins].paths of the config, $MUKI_PLUGIN_PATH,\n"
    "and muki's own plugin folder.\n";

struct CommonOptions {
  std::vector<std::string> paths;
  bool no_default_paths = false;
  std::string log_level = "warn";
};

void add_common(po::options_description& desc, CommonOptions& common) {
  desc.add_options()("help,h", "show this help")(
      "path,p", po::value(&common.paths)->composing(),
      "a folder of plugin libraries to load (repeatable)")(
      "no-default-paths", po::bool_switch(&common.no_default_paths),
      "load only --path and config folders, not $MUKI_PLUGIN_PATH or muki's own")(
      "log-level", po::value(&common.log_level)->default_value("warn"),
      "trace, debug, info, warn, error");
}

// Parses a command's arguments; returns false (after printing help) when --help was given.
bool parse(const std::vector<std::string>& args, const po::options_description& desc,
           const po::positional_options_description& positional, po::variables_map& vm,
           const std::string& usage) {
  po::store(po::command_line_parser(args).options(desc).positional(positional).run(), vm);
  if (vm.count("help")) {
    std::cout << usage << "\n" << desc << "\n";
    return false;
  }
  po::notify(vm);
  return true;
}

void setup_logging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("muki");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("[%H:%M:%S] [%^%l%$] %v");
  spdlog::set_level(spdlog::level::from_str(level));
}

// Loads the plugin folders; prints one line per library that failed. Returns the failure count.
size_t load_plugins(Registry& registry, const CommonOptions& common,
                    const std::vector<fs::path>& config_paths) {
  std::vector<fs::path> folders;
  for (const auto& p : common.paths) folders.emplace_back(p);
  folders.insert(folders.end(), config_paths.begin(), config_paths.end());
  if (!common.no_default_paths)
    for (const auto& p : muki::registry::default_plugin_folders()) folders.push_back(p);
  const auto failures = registry.scan(folders);
  for (const auto& f : failures) std::cerr << "error: " << f.message << "\n";
  return failures.size();
}

std::string schema_line(const muki::registry::ParamInfo& p) {
  std::ostringstream out;
  out << "      " << std::left << std::setw(22) << p.name << std::setw(13)
      << muki::registry::param_type_name(p.type);
  if (p.required)
    out << "required";
  else
    out << "default " << (p.default_value ? *p.default_value : "(none)");
  if (p.min_value) out << "  in [" << *p.min_value << ", " << *p.max_value << "]";
  if (!p.doc.empty()) out << "  # " << p.doc;
  return out.str();
}

int cmd_plugins(const std::vector<std::string>& args) {
  CommonOptions common;
  po::options_description desc("muki plugins options");
  add_common(desc, common);
  po::variables_map vm;
  if (!parse(args, desc, {}, vm, "usage: muki plugins [--path DIR]...")) return 0;
  setup_logging(common.log_level);

  Registry registry;
  const size_t failures = load_plugins(registry, common, {});
  const auto plugins = registry.list();
  for (const auto* p : plugins) {
    std::cout << std::left << std::setw(12) << muki::registry::kind_name(p->kind) << " "
              << std::setw(20) << p->name << " v" << std::setw(8) << p->version << " ABI "
              << muki::registry::format_abi(p->abi_version) << "  " << p->library_path.string()
              << "\n";
    if (!p->description.empty()) std::cout << "      " << p->description << "\n";
    for (const auto& param : p->params) std::cout << schema_line(param) << "\n";
  }
  if (plugins.empty()) std::cerr << "error: no plugins found\n";
  std::cout << plugins.size() << " plugins";
  if (failures > 0) std::cout << ", " << failures << " libraries refused (see above)";
  std::cout << "\n";
  return failures == 0 && !plugins.empty() ? 0 : 1;
}

struct ConfigOptions {
  std::string config;
  std::vector<std::string> sets;
};

void add_config(po::options_description& desc, ConfigOptions& options) {
  desc.add_options()("config", po::value(&options.config)->required(), "experiment TOML file")(
      "set", po::value(&options.sets)->composing(),
      "override: KEY=VALUE with VALUE in TOML syntax, e.g. --set uncertainty.options.samples=8 "
      "(repeatable; applied in order, after the file)");
}

muki::core::Config load_config(const ConfigOptions& options) {
  auto config = muki::core::Config::load(options.config);
  for (const auto& s : options.sets) config.apply_override(s);
  return config;
}

int cmd_validate(const std::vector<std::string>& args) {
  CommonOptions common;
  ConfigOptions cfg;
  po::options_description desc("muki validate options");
  add_config(desc, cfg);
  add_common(desc, common);
  po::positional_options_description positional;
  positional.add("config", 1);
  po::variables_map vm;
  if (!parse(args, desc, positional, vm, "usage: muki validate CONFIG [--set KEY=VALUE]...")) return 0;
  setup_logging(common.log_level);

  const auto config = load_config(cfg);
  Registry registry;
  const size_t failures = load_plugins(registry, common, config.plugin_paths());
  const auto problems = muki::core::validate(config, registry);
  for (const auto& p : problems) std::cerr << p.format() << "\n";
  if (problems.empty() && failures == 0) {
    std::cout << cfg.config << ": valid\n";
    return 0;
  }
  std::cerr << cfg.config << ": " << problems.size() << " problem"
            << (problems.size() == 1 ? "" : "s") << " found\n";
  return 1;
}

int cmd_print_config(const std::vector<std::string>& args) {
  ConfigOptions cfg;
  po::options_description desc("muki print-config options");
  add_config(desc, cfg);
  desc.add_options()("help,h", "show this help");
  po::positional_options_description positional;
  positional.add("config", 1);
  po::variables_map vm;
  if (!parse(args, desc, positional, vm, "usage: muki print-config CONFIG [--set KEY=VALUE]..."))
    return 0;
  std::cout << load_config(cfg).to_toml();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> all(argv + 1, argv + argc);
  if (all.empty() || all[0] == "--help" || all[0] == "-h" || all[0] == "help") {
    std::cout << kUsage;
    return all.empty() ? 2 : 0;
  }
  if (all[0] == "--version") {
    std::cout << "muki " << kVersion << " (plugin ABI " << MUKI_ABI_MAJOR << "." << MUKI_ABI_MINOR
              << ")\n";
    return 0;
  }
  static const std::map<std::string, int (*)(const std::vector<std::string>&)> commands = {
      {"plugins", &cmd_plugins}, {"validate", &cmd_validate}, {"print-config", &cmd_print_config}};
  const auto it = commands.find(all[0]);
  if (it == commands.end()) {
    std::cerr << "muki: unknown command '" << all[0] << "'\n\n" << kUsage;
    return 2;
  }
  try {
    return it->second(std::vector<std::string>(all.begin() + 1, all.end()));
  } catch (const muki::core::ConfigError& e) {
    std::cerr << e.what() << "\n";
  } catch (const po::error& e) {
    std::cerr << "muki " << all[0] << ": " << e.what() << " (see --help)\n";
  } catch (const std::exception& e) {
    std::cerr << "muki " << all[0] << ": error: " << e.what() << "\n";
  }
  return 1;
}
