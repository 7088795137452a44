// DFA's and CFL's feature objectives (muki_model), against hand-computed values and against
// tests/core/feature_objectives_reference.py, which computes them with python3-torch from the
// formulas in plugin.h.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include <torch/torch.h>

#include <muki/model/feature_objectives.h>

#include "../test_support.h"

using namespace muki::core;
using muki::test::TempDir;

namespace {

std::map<std::string, std::vector<double>> read_reference(const std::filesystem::path& file) {
  std::map<std::string, std::vector<double>> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string name;
    fields >> name;
    double v;
    while (fields >> v) out[name].push_back(v);
  }
  return out;
}

// The loss and its gradient with respect to the student's features.
std::pair<double, std::vector<double>> loss_and_grad(
    const std::function<torch::Tensor(const torch::Tensor&)>& loss, const torch::Tensor& student) {
  torch::Tensor s = student.clone().requires_grad_(true);
  torch::Tensor l = loss(s);
  l.backward();
  const torch::Tensor g = s.grad().to(torch::kDouble).flatten().contiguous();
  return {l.item<double>(), std::vector<double>(g.data_ptr<double>(), g.data_ptr<double>() + g.numel())};
}

}  // namespace

TEST(FeatureObjectives, MmdMatchesAHandComputedCase) {
  // x = (1, 0), y = (0, 1): pooled squared distances [[0, 2], [2, 0]], so s = 4 / 4 = 1;
  // K(a, a) = 5 and K(x, y) = exp(-8) + exp(-4) + exp(-2) + exp(-1) + exp(-1/2).
  const double kxy = std::exp(-8.0) + std::exp(-4.0) + std::exp(-2.0) + std::exp(-1.0) + std::exp(-0.5);
  const torch::Tensor x = torch::tensor({{1.0f, 0.0f}}), y = torch::tensor({{0.0f, 3.0f}});  // norm 3: normalised away
  EXPECT_NEAR(multi_kernel_mmd2(x, y).item<double>(), 10.0 - 2.0 * kxy, 1e-5);  // 7.7432070
  // Identical samples, even all-equal rows (s = 0): no discrepancy, no NaN.
  const torch::Tensor z = torch::randn({6, 4});
  EXPECT_NEAR(multi_kernel_mmd2(z, z).item<double>(), 0.0, 1e-6);
  EXPECT_EQ(multi_kernel_mmd2(torch::ones({3, 2}), torch::ones({3, 2})).item<double>(), 0.0);
}

TEST(FeatureObjectives, MatchAPythonTorchReference) {
  torch::manual_seed(7);
  const int64_t b = 5, hs = 8;
  const torch::Tensor student = torch::randn({b, hs});
  const std::vector<torch::Tensor> teachers = {torch::randn({b, 6}), torch::randn({b, 4}) * 2};
  const torch::Tensor other = torch::randn({b + 2, hs}) + 0.5;  // MMD's second sample: m != n
  const auto dfa = make_feature_objective(FeatureObjectiveKind::Dfa, hs, {6, 4});
  const auto cfl = make_feature_objective(FeatureObjectiveKind::Cfl, hs, {6, 4});
  c10::Dict<std::string, torch::Tensor> dict;
  dict.insert("student", student);
  dict.insert("teacher0", teachers[0]);
  dict.insert("teacher1", teachers[1]);
  dict.insert("other", other);
  for (const auto& [prefix, module] : {std::pair{"dfa.", dfa}, std::pair{"cfl.", cfl}})
    for (const auto& p : module->named_parameters(true)) dict.insert(prefix + p.key(), p.value().detach());
  TempDir dir;
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  std::ofstream(dir.path() / "inputs.pt", std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  const std::string python = muki::test::python_with_torch();
  ASSERT_FALSE(python.empty()) << "no python3 with torch (Debian's python3-torch)";
  const muki::test::CommandResult r = muki::test::run_command(
      python + " " + (muki::test::source_dir() / "tests/core/feature_objectives_reference.py").string() +
      " " + (dir.path() / "inputs.pt").string() + " " + (dir.path() / "ref.txt").string());
  ASSERT_EQ(r.code, 0) << r.output;
  auto reference = read_reference(dir.path() / "ref.txt");

  const std::map<std::string, std::function<torch::Tensor(const torch::Tensor&)>> losses = {
      {"mmd", [&](const torch::Tensor& s) { return multi_kernel_mmd2(s, other); }},
      {"dfa", [&](const torch::Tensor& s) { return dfa->forward(s, teachers); }},
      {"cfl", [&](const torch::Tensor& s) { return cfl->forward(s, teachers); }}};
  for (const auto& [name, loss] : losses) {
    SCOPED_TRACE(name);
    ASSERT_EQ(reference[name].size(), 1u);
    const auto [value, grad] = loss_and_grad(loss, student);
    EXPECT_GT(value, 0.0);
    EXPECT_NEAR(value, reference[name][0], 1e-5 * std::max(1.0, std::abs(value)));
    const std::vector<double>& expected = reference[name + ".grad"];
    ASSERT_EQ(grad.size(), expected.size());
    for (size_t i = 0; i < grad.size(); ++i) EXPECT_NEAR(grad[i], expected[i], 1e-5) << "element " << i;
  }
}

TEST(FeatureObjectives, RefuseWhatTheyWereNotBuiltFor) {
  EXPECT_THROW(make_feature_objective(FeatureObjectiveKind::Dfa, 8, {}), std::invalid_argument);
  EXPECT_THROW(make_feature_objective(FeatureObjectiveKind::Cfl, 8, {4, 0}), std::invalid_argument);
  EXPECT_THROW(make_feature_objective(FeatureObjectiveKind::Cfl, 0, {4}), std::invalid_argument);
  const auto dfa = make_feature_objective(FeatureObjectiveKind::Dfa, 8, {4, 4});
  try {
    dfa->forward(torch::randn({2, 8}), {torch::randn({2, 4})});
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "feature objective: built for 2 teachers, given 1");
  }
}
