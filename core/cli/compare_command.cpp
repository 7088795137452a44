// `muki compare RUN_DIR... [--csv]`: one table row per finished run, read from its summary.json:
// the strategies, test accuracy and macro-F1 over the union, accuracy on each teacher's labels,
// teacher-selection accuracy, the accuracy of the integrated targets, and the KL to a reference.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>

#include "cli_common.h"
#include "muki/report/run_summary.h"

namespace muki::cli {
namespace fs = std::filesystem;

namespace {

// A figure as a cell: percent with one decimal, or a number with four; empty when absent.
std::string cell(const std::optional<double>& v, bool percent) {
  if (!v) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, percent ? "%.1f" : "%.4f", percent ? 100.0 * *v : *v);
  return buf;
}

std::string option_key(const core::RunSummary::StrategyOption& o) { return o.section + "." + o.name; }

}  // namespace

int cmd_compare(const std::vector<std::string>& args) {
  std::vector<std::string> runs;
  bool csv = false;
  po::options_description desc("options");
  desc.add_options()("help,h", "show this help")("run", po::value(&runs)->composing(),
                                                  "a run directory (repeatable, positional)")(
      "csv", po::bool_switch(&csv), "comma-separated values instead of a Markdown table");
  po::positional_options_description positional;
  positional.add("run", -1);
  if (!parse(args, desc, positional,
             "usage: muki compare RUN_DIR... [--csv]\n\nAccuracies are in percent."))
    return 0;
  if (runs.empty()) throw po::error("give at least one run directory");

  std::vector<std::pair<std::string, core::RunSummary>> rows;
  std::vector<std::string> teachers;  // in first-seen order
  int failures = 0;
  for (const std::string& run : runs) {
    if (!fs::exists(fs::path(run) / "summary.json")) {
      std::cerr << "muki compare: " << run << ": no summary.json (unfinished? `muki run` it again to resume)\n";
      ++failures;
      continue;
    }
    core::RunSummary s = core::read_run_summary(run);
    for (const auto& t : s.test.teachers)
      if (std::find(teachers.begin(), teachers.end(), t.teacher) == teachers.end()) teachers.push_back(t.teacher);
    rows.emplace_back(run, std::move(s));
  }
  if (rows.empty()) return 1;  // nothing to tabulate: the reasons are above

  // Strategy options shown are those whose values differ between the runs compared.
  auto option_of = [](const core::RunSummary& s, const std::string& key) -> const std::string* {
    for (const auto& o : s.options)
      if (option_key(o) == key) return &o.value;
    return nullptr;
  };
  std::vector<std::string> varying;
  for (const auto& [run, s] : rows)
    for (const auto& o : s.options) {
      const std::string key = option_key(o);
      // K is in the uncertainty column already.
      if (key == "uncertainty.samples" || std::find(varying.begin(), varying.end(), key) != varying.end()) continue;
      for (const auto& other : rows)
        if (const std::string* value = option_of(other.second, key); value == nullptr || *value != o.value) {
          varying.push_back(key);
          break;
        }
    }
  std::vector<std::string> header = {"run", "uncertainty", "integration", "options", "test acc",
                                     "macro-F1"};
  for (const auto& t : teachers) header.push_back(t + " acc");
  header.insert(header.end(), {"selection acc", "target acc", "KL to reference"});
  const char* sep = csv ? "," : " | ";
  // CSV: a cell with a comma or a quote is quoted (RFC 4180).
  auto escape = [&](const std::string& c) {
    if (!csv || c.find_first_of(",\"\n") == std::string::npos) return c;
    std::string out = "\"";
    for (char ch : c) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
    return out + "\"";
  };
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out = csv ? "" : "| ";
    for (size_t i = 0; i < cells.size(); ++i) out += (i ? sep : "") + escape(cells[i]);
    return out + (csv ? "" : " |");
  };
  std::cout << line(header) << "\n";
  if (!csv) {
    std::vector<std::string> rule = {"---", "---", "---", "---"};  // the four text columns
    rule.resize(header.size(), "---:");
    std::cout << line(rule) << "\n";
  }
  for (const auto& [run, s] : rows) {
    std::string uncertainty = s.uncertainty;
    if (s.samples != 0) uncertainty += " (K=" + std::to_string(s.samples) + ")";
    if (s.calibration == "dev" || s.calibration == "reference" || s.calibration == "label-free")
      uncertainty += ", calibrated";
    std::string options;
    for (const auto& key : varying)
      if (const std::string* value = option_of(s, key))
        options += (options.empty() ? "" : " ") + key.substr(key.find('.') + 1) + "=" + *value;
    const std::string name = fs::path(run).filename().empty() ? run : fs::path(run).filename().string();
    std::vector<std::string> cells = {name, uncertainty, s.integration, options,
                                      cell(s.test.accuracy, true), cell(s.test.macro_f1, true)};
    for (const auto& t : teachers) {
      std::optional<double> accuracy;
      for (const auto& mine : s.test.teachers)
        if (mine.teacher == t) accuracy = mine.accuracy;
      cells.push_back(cell(accuracy, true));
    }
    cells.push_back(cell(s.test.selection_accuracy, true));
    cells.push_back(cell(s.test.target_accuracy, true));
    cells.push_back(cell(s.transfer.kl_to_reference, false));
    std::cout << line(cells) << "\n";
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace muki::cli
