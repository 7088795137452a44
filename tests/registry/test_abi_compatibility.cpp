// The compatibility matrix of the plugin ABI, as ONNX Runtime and Triton keep theirs: a library
// built against the frozen 1.0 header (tests/abi/v1_0) loads, lists and runs on this host (1.2); a
// library of a newer minor on a host that claims 1.0 is refused with both numbers. Also the 1.1 additions:
// the typed option getters, parameter flags, teacher features and the contract checks.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>

#include <muki/registry/registry.h>

#include "../test_support.h"

using muki::registry::Kind;
using muki::registry::PluginError;
using muki::registry::Registry;
using muki::test::fixture_dir;
using muki::test::plugin_dir;
using ::testing::HasSubstr;

namespace {

std::filesystem::path abi10_library() { return fixture_dir("abi10") / "libfixture_abi10.so"; }

std::string load_error(Registry& registry, const std::filesystem::path& path) {
  try {
    registry.load_library(path);
  } catch (const PluginError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

// The stride hazard: ABI 1.1 grew muki_param_desc from 56 to 64 bytes. A host that indexed a 1.0
// library's params[] by its own sizeof would read the second and third parameters 8 and 16 bytes
// off (garbage names, or a crash); this test fails on that layout.
TEST(AbiCompatibility, OnePointZeroLibraryListsEveryParameterOfEveryPlugin) {
  Registry registry;
  registry.load_library(abi10_library());
  const std::pair<Kind, const char*> plugins[] = {{Kind::Teacher, "abi10_length"},
                                                  {Kind::Uncertainty, "abi10_margin"},
                                                  {Kind::Integration, "abi10_pick"}};
  for (const auto& [kind, name] : plugins) {
    const auto& info = registry.get(kind, name);
    SCOPED_TRACE(name);
    EXPECT_EQ(muki::registry::format_abi(info.abi_version), "1.0");
    ASSERT_EQ(info.params.size(), 3u);
    const std::string prefix(1, name == std::string("abi10_length") ? 't'
                                : name == std::string("abi10_margin") ? 'u' : 'i');
    EXPECT_EQ(info.params[0].name, prefix + "_alpha");
    EXPECT_EQ(info.params[0].type, MUKI_PARAM_INT);
    EXPECT_EQ(info.params[0].default_value, "1");
    EXPECT_EQ(info.params[0].max_value, 10.0);
    EXPECT_EQ(info.params[1].name, prefix + "_beta");
    EXPECT_EQ(info.params[1].doc, "second parameter");
    EXPECT_EQ(info.params[1].max_value, 1.0);
    EXPECT_EQ(info.params[2].name, prefix + "_gamma");
    EXPECT_TRUE(info.params[2].required);
    EXPECT_FALSE(info.params[2].min_value.has_value());
    for (const auto& p : info.params) EXPECT_FALSE(p.allow_non_finite);  // 1.0 has no flags
  }
}

TEST(AbiCompatibility, OnePointZeroPluginsRunOnTheNewHost) {
  Registry registry;
  registry.load_library(abi10_library());
  auto teacher = registry.create_teacher("abi10_length", {"t", "t_gamma = \"x\"", "/", 1});
  EXPECT_EQ(teacher->labels(), (std::vector<std::string>{"short", "long"}));
  EXPECT_EQ(teacher->feature_dim(), 0);  // a 1.0 teacher has no features
  std::vector<float> logits(2 * 2);
  teacher->predict({"tiny", std::string(40, 'x')}, 0, 0, logits.data());
  EXPECT_EQ(logits, (std::vector<float>{1.6f, -1.6f, -2.0f, 2.0f}));
  std::vector<float> features(4);
  EXPECT_THROW(teacher->predict({"a", "b"}, 0, 0, logits.data(), features.data()), PluginError);

  auto uncertainty = registry.create_uncertainty("abi10_margin", {"u", "", "/", 1});
  std::vector<float> scores(2);
  uncertainty->score(logits.data(), 1, 2, 2, scores.data());
  EXPECT_FLOAT_EQ(scores[0], 0.8f);  // |1.6 - -1.6| / 4
  EXPECT_FLOAT_EQ(scores[1], 1.0f);  // |-2 - 2| / 4

  // Two teachers: the 1.0 strategy reads teachers[1] at its own 1.0 stride, so the host must
  // hand it 1.0-sized elements. Example 0 picks teacher 1 (higher score), example 1 teacher 0.
  auto integration = registry.create_integration("abi10_pick", {"i", "", "/", 1});
  // A 1.0 plugin knows no feature objective and leaves the 1.1 fields zero.
  EXPECT_EQ(integration->feature_objective(), MUKI_FEATURE_OBJECTIVE_NONE);
  const std::vector<float> a_logits = {0.0f, 0.0f, std::log(3.0f), 0.0f};
  const std::vector<float> a_scores = {0.1f, 0.9f};
  const std::vector<float> b_logits = {std::log(4.0f), 0.0f, 0.0f, 0.0f};
  const std::vector<float> b_scores = {0.5f, 0.2f};
  const std::vector<int64_t> a_map = {0, 1}, b_map = {2, 3};
  std::vector<float> target(2 * 4), weight(2);
  integration->integrate({{a_logits.data(), a_scores.data(), &a_map},
                          {b_logits.data(), b_scores.data(), &b_map}},
                         2, 4, nullptr, target.data(), weight.data());
  EXPECT_THAT(target, ::testing::Pointwise(::testing::FloatNear(1e-6f),
                                           std::vector<float>{0, 0, 0.8f, 0.2f,  //
                                                              0.75f, 0.25f, 0, 0}));
  EXPECT_EQ(weight, (std::vector<float>{1.0f, 1.0f}));
}

// A 1.1 strategy fitted on reference data, on this 1.2 host: the host's reference struct is larger
// than the plugin knows (the 1.2 background), and the 1.1 fields stay where the plugin reads them.
// The plugin also sets flag bit 0x4, undefined in 1.1: the host ignores it.
TEST(AbiCompatibility, AOnePointOneFittedStrategyRunsOnThisHost) {
  Registry registry;
  registry.load_library(fixture_dir("abi11") / "libfixture_abi11.so");
  const muki::registry::PluginInfo* info = registry.find(Kind::Uncertainty, "abi11_feature_mean");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(muki::registry::format_abi(info->abi_version), "1.1");
  auto strategy = registry.create_uncertainty("abi11_feature_mean", {"u", "", "/", 0});
  EXPECT_TRUE(strategy->needs_features());
  EXPECT_TRUE(strategy->needs_reference());
  EXPECT_FALSE(strategy->needs_background());
  // Teacher 1's reference: first features 1 and 3 (mean 2), second features ignored.
  const std::vector<float> logits(4, 0.0f), features = {1, 9, 3, 9};
  const std::vector<int64_t> labels = {0, 1};
  strategy->fit({1, "t", logits.data(), 2, 2, features.data(), 2, labels.data()});
  const std::vector<float> query = {2.5f, 0, -1, 0};
  std::vector<float> out(2);
  strategy->score(1, logits.data(), 1, 2, 2, query.data(), 2, out.data());
  EXPECT_THAT(out, ::testing::ElementsAre(::testing::FloatEq(-0.5f), ::testing::FloatEq(-3.0f)));
}

TEST(AbiCompatibility, NewerPluginOnAHostThatClaimsOnePointZeroIsRefusedWithBothNumbers) {
  Registry old_host(MUKI_MAKE_VERSION(1, 0));
  const std::string error = load_error(old_host, plugin_dir() / "libmuki_uncertainty_builtin.so");
  EXPECT_THAT(error, HasSubstr("plugin ABI 1.2 is incompatible with host ABI 1.0"));
  // ... while the 1.0 library is still welcome there.
  EXPECT_EQ(load_error(old_host, abi10_library()), "(no error)");
}

TEST(AbiOnePointOne, TypedOptionGettersReadEveryType) {
  Registry registry;
  registry.load_library(fixture_dir("options") / "libfixture_options_probe.so");
  auto read = [&](const std::string& options) {
    auto probe = registry.create_uncertainty("options_probe", {"p", options, "/", 0});
    std::vector<float> logits(6 * 2), out(6);
    probe->score(logits.data(), 1, 6, 2, out.data());
    return out;
  };
  EXPECT_EQ(read(""), (std::vector<float>{0, 7, 0.25f, 0, 0, -1}));  // defaults kept
  EXPECT_EQ(read("flag = true\ncount = -3\nrate = 2\nname = \"hello\"\n"
                 "words = [\"a\", \"bcd\", \"ef\"]"),
            (std::vector<float>{1, -3, 2, 5, 3, 3}));  // rate: an integer reads as a float
  EXPECT_TRUE(std::isnan(read("rate = nan")[2]));
}

TEST(AbiOnePointOne, GetterTypeMismatchFailsCreateNamingTheKey) {
  Registry registry;
  registry.load_library(fixture_dir("options") / "libfixture_options_probe.so");
  try {
    registry.create_uncertainty("options_probe", {"p", "count = \"three\"", "/", 0});
    FAIL() << "expected PluginError";
  } catch (const PluginError& e) {
    EXPECT_STREQ(e.what(), "uncertainty strategy 'options_probe' (p): create failed: option "
                           "'count' must be an integer");
  }
}

TEST(AbiOnePointOne, ParameterFlagsReachTheHost) {
  Registry registry;
  registry.load_library(fixture_dir("options") / "libfixture_options_probe.so");
  const auto& info = registry.get(Kind::Uncertainty, "options_probe");
  ASSERT_EQ(info.params.size(), 5u);
  EXPECT_TRUE(info.find_param("rate")->allow_non_finite);
  EXPECT_FALSE(info.find_param("count")->allow_non_finite);
}

TEST(AbiOnePointOne, TeacherFeaturesCrossTheBoundary) {
  Registry registry;
  registry.load_library(fixture_dir("good") / "libfixture_c_teacher.so");
  auto teacher = registry.create_teacher("fixture_length", {"t", "", "/", 1});
  ASSERT_EQ(teacher->feature_dim(), 2);
  std::vector<float> logits(2 * 2), features(2 * 2);
  teacher->predict({"tiny", "two words here"}, 0, 0, logits.data(), features.data());
  EXPECT_EQ(features, (std::vector<float>{0.4f, 1.0f, 1.4f, 3.0f}));
  EXPECT_FLOAT_EQ(logits[0], 1.6f);  // the logits are those of predict() without features
  std::vector<float> k_logits(3 * 2 * 2), k_features(3 * 2 * 2);
  teacher->predict({"tiny", "two words here"}, 3, 5, k_logits.data(), k_features.data());
  EXPECT_EQ(k_features[8], 0.4f);  // [K, B, H]: pass 2, text 0
  EXPECT_EQ(k_features[11], 3.0f);
}

TEST(AbiOnePointOne, HostApiOffersEveryOnePointOneService) {
  const muki_host_api* host = muki::registry::host_api();
  EXPECT_EQ(host->abi_version, MUKI_ABI_VERSION);
  EXPECT_EQ(host->struct_size, sizeof(muki_host_api));
  EXPECT_NE(host->option_has, nullptr);
  EXPECT_NE(host->option_string_array, nullptr);
  host->lock_process_state();  // recursive
  host->lock_process_state();
  host->unlock_process_state();
  host->unlock_process_state();
}
