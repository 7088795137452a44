// `muki compare RUN_DIR... [--csv]`: one table row per finished run, read from its summary.json:
// the strategies, test accuracy and macro-F1 over the union, accuracy on each teacher's labels,
// teacher-selection accuracy, the accuracy of the integrated targets, and the KL to a reference.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>

#include "cli_common.h"
#include "muki/core/flat_json.h"
#include "muki/core/run_directory.h"

namespace muki::cli {
namespace fs = std::filesystem;

namespace {

using Summary = std::map<std::string, core::JsonScalar>;

std::string cell(const Summary& s, const std::string& key, bool percent = false) {
  const auto it = s.find(key);
  if (it == s.end() || it->second.type == core::JsonScalar::Type::Null) return "";
  if (it->second.type != core::JsonScalar::Type::Number) return it->second.text;
  char buf[32];
  const double v = std::strtod(it->second.text.c_str(), nullptr);
  std::snprintf(buf, sizeof buf, percent ? "%.1f" : "%.4f", percent ? 100.0 * v : v);
  return buf;
}

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

  std::vector<std::pair<std::string, Summary>> rows;
  std::vector<std::string> teachers;  // in first-seen order
  int failures = 0;
  for (const std::string& run : runs) {
    const fs::path file = fs::path(run) / "summary.json";
    if (!fs::exists(file)) {
      std::cerr << "muki compare: " << run << ": no summary.json (unfinished? `muki run` it again to resume)\n";
      ++failures;
      continue;
    }
    Summary s;
    for (auto& [key, value] : core::read_flat_json_file(file.string())) s[key] = value;
    for (const auto& [key, value] : s)
      if (const std::string name = core::teacher_of_accuracy_key(key);
          !name.empty() && std::find(teachers.begin(), teachers.end(), name) == teachers.end())
        teachers.push_back(name);
    rows.emplace_back(run, std::move(s));
  }

  // Strategy options shown are those whose values differ between the runs compared.
  std::vector<std::string> varying;
  for (const auto& [run, s] : rows)
    for (const auto& [key, value] : s) {
      // K is in the uncertainty column already.
      if (key.find(".options.") == std::string::npos || key == "uncertainty.options.samples") continue;
      if (std::find(varying.begin(), varying.end(), key) != varying.end()) continue;
      for (const auto& other : rows)
        if (const auto it = other.second.find(key); it == other.second.end() || it->second.text != value.text) {
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
    std::string uncertainty = cell(s, "uncertainty");
    if (const auto k = s.find("samples"); k != s.end() && k->second.text != "0")
      uncertainty += " (K=" + k->second.text + ")";
    std::string options;
    for (const auto& key : varying)
      if (const auto it = s.find(key); it != s.end())
        options += (options.empty() ? "" : " ") + key.substr(key.find(".options.") + 9) + "=" + it->second.text;
    const std::string name = fs::path(run).filename().empty() ? run : fs::path(run).filename().string();
    std::vector<std::string> cells = {name, uncertainty, cell(s, "integration"), options,
                                      cell(s, "test.accuracy", true), cell(s, "test.macro_f1", true)};
    for (const auto& t : teachers) cells.push_back(cell(s, "test.teacher." + t + ".accuracy", true));
    cells.push_back(cell(s, "test.selection_accuracy", true));
    cells.push_back(cell(s, "test.target_accuracy", true));
    cells.push_back(cell(s, "transfer.kl_to_reference"));
    std::cout << line(cells) << "\n";
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace muki::cli
