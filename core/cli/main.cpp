// The `muki` command line: a thin dispatcher over core and registry.
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "cli_common.h"
#include "muki/model/device.h"
#include "muki/experiment/experiment.h"

namespace fs = std::filesystem;
using muki::registry::Registry;
using namespace muki::cli;

namespace {

constexpr const char* kVersion = MUKI_VERSION;  // the CMake project's version

const char* kUsage =
    "usage: muki <command> [options]\n"
    "\n"
    "commands:\n"
    "  run            run an experiment: teacher pass, integration, student, evaluation\n"
    "  sweep          run a grid of overrides x seeds; a table of means and spreads\n"
    "  compare        print a table comparing finished runs (their summary.json)\n"
    "  plugins        list the plugins found (kind, name, version, ABI, library, parameters)\n"
    "  validate       check an experiment config against the host's and the plugins' schemas\n"
    "  print-config   print an experiment config with --set overrides applied\n"
    "  analyze        run the teachers on a labeled split and measure the integrated supervision\n"
    "  teacher train  train a teacher on a label subset; writes a checkpoint folder\n"
    "  pretrain       pre-train an encoder (masked language model) for teachers and students\n"
    "\n"
    "Run `muki <command> --help` for a command's options.\n"
    "Plugins are searched in: --path folders, [plugins].paths of the config, $MUKI_PLUGIN_PATH,\n"
    "and muki's own plugin folder.\n";

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
  po::options_description desc("options");
  add_common(desc, common);
  if (!parse(args, desc, {}, "usage: muki plugins [--path DIR]...")) return 0;
  setup_logging(common.log_level);

  Registry registry;
  std::vector<fs::path> folders = extra_paths(common);
  if (!common.no_default_paths)
    for (const auto& p : muki::registry::default_plugin_folders()) folders.push_back(p);
  const auto failures = registry.scan(folders);
  for (const auto& f : failures) std::cerr << "error: " << f.message << "\n";

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
  if (!failures.empty()) std::cout << ", " << failures.size() << " libraries refused (see above)";
  std::cout << "\n";
  return failures.empty() && !plugins.empty() ? 0 : 1;
}

int cmd_validate(const std::vector<std::string>& args) {
  CommonOptions common;
  ConfigOptions cfg;
  po::options_description desc("options");
  add_config(desc, cfg);
  if (!parse_config_command(args, desc, common, "warn", "usage: muki validate CONFIG [--set KEY=VALUE]..."))
    return 0;
  setup_logging(common.log_level);

  const auto config = load_config(cfg);
  Registry registry;
  // The teachers are loaded too (their labels decide what the strategies can do), unless
  // [prepare] has yet to make some of them.
  const bool teachers_pending = muki::core::prepare_pending(config);
  try {
    load_plugins_and_validate(config, registry, common);
    if (!teachers_pending) muki::core::create_experiment_plugins(config, registry);
  } catch (const muki::core::ConfigError& e) {
    const size_t n = e.problems().size();
    std::cerr << e.what() << "\n"
              << cfg.config << ": " << n << " problem" << (n == 1 ? "" : "s") << " found\n";
    return 1;
  }
  std::cout << cfg.config << ": valid"
            << (teachers_pending ? " (the teachers [prepare] makes were not checked: they do not exist yet)" : "")
            << "\n";
  return 0;
}

int cmd_print_config(const std::vector<std::string>& args) {
  ConfigOptions cfg;
  po::options_description desc("options");
  add_config(desc, cfg);
  desc.add_options()("help,h", "show this help");
  po::positional_options_description positional;
  positional.add("config", 1);
  if (!parse(args, desc, positional, "usage: muki print-config CONFIG [--set KEY=VALUE]..."))
    return 0;
  std::cout << load_config(cfg).to_toml();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  muki::core::tune_allocator();
  // The host's own seeded passes take the lock its plugins take (SDK 1.1's process-state lock).
  muki::core::share_process_state_lock(muki::registry::host_api()->lock_process_state,
                                       muki::registry::host_api()->unlock_process_state);
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
      {"run", &cmd_run},
      {"compare", &cmd_compare},
      {"sweep", &cmd_sweep},
      {"plugins", &cmd_plugins},
      {"validate", &cmd_validate},
      {"print-config", &cmd_print_config},
      {"analyze", &cmd_analyze},
      {"teacher", &cmd_teacher_train},
      {"pretrain", &cmd_pretrain}};
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
