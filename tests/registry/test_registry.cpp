// The registry: discovery, the ABI handshake, every refusal with its message, look-ups and the
// lifetime rule (a library stays loaded while anything it made lives).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <muki/registry/registry.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>

#include "../test_support.h"

using muki::registry::Kind;
using muki::registry::PluginError;
using muki::registry::Registry;
using muki::test::fixture_dir;
using muki::test::plugin_dir;
using ::testing::HasSubstr;

namespace {

std::string load_error(Registry& registry, const std::filesystem::path& path) {
  try {
    registry.load_library(path);
  } catch (const PluginError& e) {
    return e.what();
  }
  return "(no error)";
}

std::filesystem::path lib(const std::string& folder, const std::string& name) {
  return fixture_dir(folder) / ("lib" + name + ".so");
}

}  // namespace

TEST(Registry, ScansBuiltinPluginsOfEachKind) {
  Registry registry;
  const auto failures = registry.scan({plugin_dir()});
  for (const auto& f : failures) ADD_FAILURE() << f.message;
  EXPECT_NE(registry.find(Kind::Uncertainty, "entropy"), nullptr);
  EXPECT_NE(registry.find(Kind::Uncertainty, "mc_dropout"), nullptr);
  EXPECT_NE(registry.find(Kind::Integration, "max"), nullptr);
  EXPECT_NE(registry.find(Kind::Integration, "weighted"), nullptr);
  const auto* mc = registry.find(Kind::Uncertainty, "mc_dropout");
  ASSERT_NE(mc, nullptr);
  EXPECT_EQ(mc->version, "0.1.0");
  EXPECT_EQ(mc->abi_version, MUKI_ABI_VERSION);
  ASSERT_NE(mc->find_param("samples"), nullptr);
  EXPECT_EQ(mc->find_param("samples")->type, MUKI_PARAM_INT);
  EXPECT_EQ(*mc->find_param("samples")->default_value, "16");
}

TEST(Registry, BuiltinPluginsExportTheirEntryPointAlone) {
  // plugin.h's promise, kept by muki_add_plugin's linker version script.
  int libraries = 0;
  for (const auto& entry : std::filesystem::directory_iterator(plugin_dir())) {
    if (entry.path().extension() != ".so") continue;
    ++libraries;
    const auto nm = muki::test::run_command("nm -D --defined-only " + entry.path().string() + " | awk '{print $3}'");
    ASSERT_EQ(nm.code, 0) << nm.output;
    EXPECT_EQ(nm.output, "muki_plugin_library_entry\n") << entry.path();
  }
  EXPECT_GT(libraries, 0);
}

TEST(Registry, NamesAreCaseInsensitive) {
  Registry registry;
  registry.scan({plugin_dir()});
  const auto* a = registry.find(Kind::Uncertainty, "MC_Dropout");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->name, "mc_dropout");
  // Kinds are separate name spaces.
  EXPECT_EQ(registry.find(Kind::Teacher, "mc_dropout"), nullptr);
}

TEST(Registry, UnknownNameListsWhatIsAvailable) {
  Registry registry;
  registry.scan({plugin_dir()});
  try {
    registry.get(Kind::Uncertainty, "no_such_strategy");
    FAIL() << "expected PluginError";
  } catch (const PluginError& e) {
    EXPECT_THAT(e.what(), HasSubstr("uncertainty strategy 'no_such_strategy' not found; available: "
                                    "bald, density_ratio, energy, entropy, knn, mahalanobis, mc_dropout"));
  }
}

TEST(Registry, LoadingTheSameFileTwiceIsANoOp) {
  Registry registry;
  const auto path = plugin_dir() / "libmuki_uncertainty_builtin.so";
  registry.load_library(path);
  EXPECT_NO_THROW(registry.load_library(path));
  EXPECT_EQ(registry.names(Kind::Uncertainty).size(), 8u);
}

TEST(RegistryRefuses, MissingFile) {
  Registry registry;
  EXPECT_THAT(load_error(registry, "/nonexistent/libnothing.so"),
              HasSubstr("/nonexistent/libnothing.so: no such file"));
}

TEST(RegistryRefuses, FileThatIsNotASharedLibrary) {
  Registry registry;
  EXPECT_THAT(load_error(registry, lib("not_elf", "not_elf")),
              HasSubstr("libnot_elf.so: not a shared library (no ELF header)"));
}

// A plugin cut off after 20,000 bytes (a failed copy) made dlopen fault with SIGBUS, killing the
// host (issue 11, finding 1): the ELF headers are checked against the file's size first.
TEST(RegistryRefuses, TruncatedSharedLibrary) {
  muki::test::TempDir dir;
  std::ifstream in(plugin_dir() / "libmuki_integration_builtin.so", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 20000u);
  const auto truncated = dir.write("libtruncated.so", bytes.substr(0, 20000));
  Registry registry;
  EXPECT_THAT(load_error(registry, truncated),
              testing::MatchesRegex(".*libtruncated.so: a truncated or damaged shared library \\(segment [0-9]+ "
                                    "ends at byte [0-9]+, the file has 20000\\)"));
  // Only the header, cut: said so too.
  EXPECT_THAT(load_error(registry, dir.write("libheader.so", bytes.substr(0, 30))),
              HasSubstr("libheader.so: a truncated ELF file (its header is cut off)"));
}

TEST(RegistryRefuses, SharedLibraryWithoutEntrySymbol) {
  Registry registry;
  EXPECT_THAT(load_error(registry, lib("bad", "fixture_no_entry")),
              HasSubstr("not a muki plugin (no 'muki_plugin_library_entry' symbol)"));
}

TEST(RegistryRefuses, WrongAbiMajorNamingBothVersions) {
  Registry registry;
  const std::string message = load_error(registry, lib("bad", "fixture_wrong_major"));
  EXPECT_THAT(message, HasSubstr("plugin ABI 2.0 is incompatible with host ABI 1.2"));
}

TEST(RegistryRefuses, NewerMinorThanTheHost) {
  Registry registry;
  const std::string message = load_error(registry, lib("newer_minor", "fixture_newer_minor"));
  EXPECT_THAT(message, HasSubstr("plugin ABI 1.3 is incompatible with host ABI 1.2"));
}

TEST(RegistryRefuses, FailingInitWithThePluginsMessage) {
  Registry registry;
  EXPECT_THAT(load_error(registry, lib("bad", "fixture_failing_init")),
              HasSubstr("init failed: licence file /opt/vendor/licence.key not found"));
  EXPECT_EQ(registry.find(Kind::Uncertainty, "fixture_strategy"), nullptr);
}

TEST(RegistryRefuses, NullFunctionInTable) {
  Registry registry;
  EXPECT_THAT(load_error(registry, lib("null_function", "fixture_null_function")),
              HasSubstr("plugin 'fixture_strategy' has a NULL function in its table"));
}

TEST(RegistryRefuses, DuplicateKindAndNameIgnoringCase) {
  Registry registry;
  registry.load_library(plugin_dir() / "libmuki_uncertainty_builtin.so");
  const std::string message = load_error(registry, lib("duplicate", "fixture_duplicate"));
  EXPECT_THAT(message, HasSubstr("uncertainty strategy 'ENTROPY' is already provided by"));
  EXPECT_THAT(message, HasSubstr("libmuki_uncertainty_builtin.so"));
}

TEST(RegistryRefuses, ScanReportsEachBadLibraryAndKeepsGoing) {
  Registry registry;
  const auto failures = registry.scan({fixture_dir("bad"), fixture_dir("good"), "/no/such/folder"});
  ASSERT_EQ(failures.size(), 4u);
  EXPECT_THAT(failures[0].message, HasSubstr("init failed"));
  EXPECT_THAT(failures[1].message, HasSubstr("no 'muki_plugin_library_entry' symbol"));
  EXPECT_THAT(failures[2].message, HasSubstr("plugin ABI 2.0 is incompatible"));
  EXPECT_THAT(failures[3].message, HasSubstr("/no/such/folder: not a folder"));
  EXPECT_NE(registry.find(Kind::Teacher, "fixture_length"), nullptr);
  EXPECT_NE(registry.find(Kind::Uncertainty, "throwing"), nullptr);
}

TEST(RegistryInstances, PlainCTeacherThroughTheBoundary) {
  Registry registry;
  registry.load_library(lib("good", "fixture_c_teacher"));
  auto teacher = registry.create_teacher("fixture_length", {"t1", "", "/", 1});
  EXPECT_EQ(teacher->labels(), (std::vector<std::string>{"short", "long"}));
  EXPECT_TRUE(teacher->can_sample());
  EXPECT_THAT(teacher->sampling_note(), HasSubstr("noise"));
  std::vector<float> out(2 * 2);
  teacher->predict({"tiny", std::string(40, 'x')}, 0, 0, out.data());
  EXPECT_FLOAT_EQ(out[0], 1.6f);   // (20 - 4) / 10
  EXPECT_FLOAT_EQ(out[1], -1.6f);
  EXPECT_FLOAT_EQ(out[2], -2.0f);  // (20 - 40) / 10
  EXPECT_FLOAT_EQ(out[3], 2.0f);
  std::vector<float> a(3 * 2 * 2), b(3 * 2 * 2);
  teacher->predict({"tiny", "longer text"}, 3, 7, a.data());
  teacher->predict({"tiny", "longer text"}, 3, 7, b.data());
  EXPECT_EQ(a, b);  // same seed, same samples
  EXPECT_NE(a[0], a[4]);  // samples differ
}

TEST(RegistryInstances, ExceptionsBecomeStatusesWithMessages) {
  Registry registry;
  registry.load_library(lib("good", "fixture_throwing"));
  try {
    registry.create_uncertainty("throwing", {"u", "fail_in_create = true", "/", 0});
    FAIL() << "expected PluginError";
  } catch (const PluginError& e) {
    EXPECT_STREQ(e.what(),
                 "uncertainty strategy 'throwing' (u): create failed: asked to fail in create");
  }
  auto strategy = registry.create_uncertainty("throwing", {"u", "", "/", 0});
  std::vector<float> logits(2), scores(1);
  try {
    strategy->score(logits.data(), 1, 1, 2, scores.data());
    FAIL() << "expected PluginError";
  } catch (const PluginError& e) {
    EXPECT_STREQ(e.what(),
                 "uncertainty strategy 'throwing' (u): score failed: vector index 7 out of range");
  }
}

TEST(RegistryInstances, InvalidOptionsTomlIsAConfigError) {
  Registry registry;
  registry.load_library(plugin_dir() / "libmuki_uncertainty_builtin.so");
  try {
    registry.create_uncertainty("mc_dropout", {"u", "samples = = 3", "/", 0});
    FAIL() << "expected PluginError";
  } catch (const PluginError& e) {
    EXPECT_THAT(e.what(), HasSubstr("create failed: options are not valid TOML"));
  }
}

TEST(RegistryInstances, InstanceKeepsItsLibraryLoaded) {
  std::unique_ptr<muki::registry::UncertaintyInstance> strategy;
  {
    Registry registry;
    registry.load_library(plugin_dir() / "libmuki_uncertainty_builtin.so");
    strategy = registry.create_uncertainty("entropy", {"u", "", "/", 0});
  }  // the registry is gone; the instance still pins the library
  const std::vector<float> logits = {0.0f, 0.0f};
  float score = -1.0f;
  strategy->score(logits.data(), 1, 1, 2, &score);
  EXPECT_FLOAT_EQ(score, 0.0f);  // a uniform distribution is maximally uncertain
  EXPECT_EQ(strategy->plugin().name, "entropy");
}

// Tables in memory (Registry::register_library), as muki_fuzz_plugin_tables feeds them: arrays a
// compiler cannot have laid out are refused before an entry past the first is read.
namespace {

muki_status no_create(const muki_create_args*, void**, muki_error*) { return MUKI_ERR_UNSUPPORTED; }
void no_destroy(void*) {}
muki_status no_describe(void*, muki_uncertainty_info*, muki_error*) { return MUKI_ERR_INTERNAL; }
muki_status no_score(void*, const DLTensor*, DLTensor*, muki_error*) { return MUKI_ERR_INTERNAL; }
const muki_uncertainty_api kUncertaintyApi = {MUKI_ABI_VERSION, sizeof(muki_uncertainty_api), no_create,
                                              no_destroy, no_describe, no_score, nullptr, nullptr};

// `count` entries of `stride` bytes, each a copy of `entry` with the struct_size that `sizes`
// gives it (the first's is the stride), in a buffer exactly that large.
template <class T>
std::vector<unsigned char> laid_out(const T& entry, uint32_t stride, std::vector<uint32_t> sizes) {
  std::vector<unsigned char> out((sizes.size() - 1) * stride + std::max<size_t>(stride, sizeof(T)));
  for (size_t i = 0; i < sizes.size(); ++i) {
    T copy = entry;
    copy.struct_size = sizes[i];
    std::memcpy(out.data() + i * stride, &copy, sizeof(T));
  }
  return out;
}

std::string register_error(const muki_plugin_desc* plugins, uint64_t count) {
  const muki_library_desc library = {MUKI_ABI_VERSION, sizeof(muki_library_desc), "memory", "1.0", "",
                                     plugins, count, nullptr, nullptr};
  Registry registry;
  try {
    registry.register_library(&library, "memory.so");
  } catch (const PluginError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(RegistryRefuses, ArraysStridedByASizeNoCompilerGives) {
  muki_plugin_desc plugin = {MUKI_ABI_VERSION, sizeof(muki_plugin_desc), MUKI_KIND_UNCERTAINTY, "p",
                             "1.0", "", nullptr, 0, &kUncertaintyApi};
  const auto plugins = laid_out(plugin, 68, {68, 68});
  EXPECT_EQ(register_error(reinterpret_cast<const muki_plugin_desc*>(plugins.data()), 2),
            "memory.so: library has plugin entries of 68 bytes (struct_size), not a multiple of 8: no "
            "compiler lays out an array like that");

  const muki_param_desc param = {MUKI_ABI_VERSION, sizeof(muki_param_desc), "x", MUKI_PARAM_INT, 0,
                                 nullptr, "", 1.0, 0.0, 0};
  const auto params = laid_out(param, 60, {60, 60});
  plugin.params = reinterpret_cast<const muki_param_desc*>(params.data());
  plugin.num_params = 2;
  EXPECT_EQ(register_error(&plugin, 1),
            "memory.so: plugin 'p' has parameter entries of 60 bytes (struct_size), not a multiple of "
            "8: no compiler lays out an array like that");
}

TEST(RegistryRefuses, AnArrayEntryLargerThanTheFirst) {
  // A 1.0-sized array whose last entry claims the 1.1 flags field: that field would lie past the
  // array (found by muki_fuzz_plugin_tables as a heap-buffer-overflow).
  const muki_param_desc param = {MUKI_ABI_VERSION, sizeof(muki_param_desc), "x", MUKI_PARAM_INT, 0,
                                 nullptr, "", 1.0, 0.0, MUKI_PARAM_ALLOW_NON_FINITE};
  constexpr uint32_t v10 = offsetof(muki_param_desc, flags);
  const auto params = laid_out(param, v10, {v10, sizeof(muki_param_desc)});
  muki_plugin_desc plugin = {MUKI_ABI_VERSION, sizeof(muki_plugin_desc), MUKI_KIND_UNCERTAINTY, "p", "1.0",
                             "", reinterpret_cast<const muki_param_desc*>(params.data()), 2, &kUncertaintyApi};
  EXPECT_EQ(register_error(&plugin, 1),
            "memory.so: plugin 'p': parameter entry 1 has struct_size 64, the first has 56 (every "
            "entry of an array has the same)");

  plugin.params = nullptr;
  plugin.num_params = 0;
  const auto plugins = laid_out(plugin, sizeof(muki_plugin_desc), {sizeof(muki_plugin_desc), 72});
  EXPECT_EQ(register_error(reinterpret_cast<const muki_plugin_desc*>(plugins.data()), 2),
            "memory.so: plugin entry 1 has struct_size 72, the first has 64 (every entry "
            "of an array has the same)");
}

TEST(Registry, RegistersATableFromMemory) {
  const muki_param_desc param = {MUKI_ABI_VERSION, sizeof(muki_param_desc), "x", MUKI_PARAM_INT, 0,
                                 nullptr, "", 1.0, 0.0, 0};
  const muki_plugin_desc plugin = {MUKI_ABI_VERSION, sizeof(muki_plugin_desc), MUKI_KIND_UNCERTAINTY, "p",
                                   "1.0", "", &param, 1, &kUncertaintyApi};
  EXPECT_EQ(register_error(&plugin, 1), "(no error)");
}
