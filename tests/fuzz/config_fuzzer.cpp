// The experiment config: parsing, `--set` overrides and validation, through the entry points
// `muki validate` uses (Config::parse, apply_override, prepared_outputs, validate), against a
// registry holding the built-in strategy plugins (so that their option schemas are checked too),
// plus the `muki teacher train` checks of the same text.
//
// Input: sections separated by a line "%%" (fuzz_support.h):
//   0    the config, parsed as <folder>/experiment.toml
//   1    other.toml in the same folder, for the config's [prepare] teachers/runs to name
//        (absent: no such file)
//   2-5  one `--set` override each, applied in order
// The folder is empty otherwise, so relative paths in the config reach nothing real.
#include <cstdint>
#include <fstream>
#include <string>

#include <spdlog/spdlog.h>

#include <muki/experiment/config.h>
#include <muki/registry/registry.h>

#include "fuzz_support.h"

namespace {

using muki::core::Config;
using muki::core::ConfigError;

void require(bool ok) {
  if (!ok) __builtin_trap();
}

const std::filesystem::path& folder() {
  static const std::filesystem::path path = muki::fuzz::temp_folder("config");
  return path;
}

muki::registry::Registry& registry() {
  static muki::registry::Registry* r = [] {
    auto* out = new muki::registry::Registry();
    const std::filesystem::path dir = MUKI_FUZZ_PLUGIN_DIR;
    out->load_library(dir / "libmuki_uncertainty_builtin.so");
    out->load_library(dir / "libmuki_integration_builtin.so");
    return out;
  }();
  return *r;
}

void write_other(const std::string_view* text) {
  const std::filesystem::path path = folder() / "other.toml";
  std::error_code ec;
  if (text == nullptr) {
    std::filesystem::remove(path, ec);
    return;
  }
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(text->data(), static_cast<std::streamsize>(text->size()));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  registry();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto sections = muki::fuzz::split_sections(data, size, 6);
  write_other(sections.size() > 1 ? &sections[1] : nullptr);
  try {
    Config config = Config::parse(sections[0], (folder() / "experiment.toml").string(), folder());
    for (size_t i = 2; i < sections.size(); ++i) config.apply_override(sections[i]);

    // What print-config shows must read back as the same config.
    const std::string printed = config.to_toml();
    const Config reread = Config::parse(printed, "printed.toml", folder());
    require(reread.to_toml() == printed);

    (void)muki::core::prepared_outputs(config);
    const auto problems = muki::core::validate(config, registry());
    for (const auto& p : problems) require(!p.message.empty());
    if (problems.empty()) {
      (void)muki::core::output_dir(config);
      (void)muki::core::cache_dir(config);
    }
    for (const auto& p : muki::core::validate_teacher_training(config)) require(!p.message.empty());
    (void)muki::core::teacher_entries(config);
  } catch (const ConfigError& e) {
    require(!e.problems().empty());
  }
  return 0;
}
