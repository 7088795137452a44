#include "muki/pipeline/sweep.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <sstream>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "muki/io/files.h"
#include "muki/io/json.h"
#include "muki/io/number_text.h"
#include "muki/model/process_group.h"

namespace muki::core {
namespace fs = std::filesystem;

GridAxis parse_grid(std::string_view spec) {
  const size_t eq = spec.find('=');
  if (eq == std::string_view::npos || eq == 0)
    throw std::invalid_argument("--grid '" + std::string(spec) + "': expected KEY=V1,V2,...");
  GridAxis axis;
  axis.key = std::string(spec.substr(0, eq));
  std::string current;
  int depth = 0;
  char quote = 0;
  bool escaped = false;  // after a backslash in a "..." string
  auto finish = [&] {
    if (current.empty())
      throw std::invalid_argument("--grid '" + std::string(spec) + "': an empty value");
    axis.values.push_back(current);
    current.clear();
  };
  for (char c : spec.substr(eq + 1)) {
    if (quote != 0) {
      if (escaped) escaped = false;
      else if (c == '\\' && quote == '"') escaped = true;
      else if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth < 0) break;
    } else if (c == ',' && depth == 0) {
      finish();
      continue;
    }
    current += c;
  }
  if (depth != 0 || quote != 0)
    throw std::invalid_argument("--grid '" + std::string(spec) + "': unbalanced quotes or brackets");
  finish();
  return axis;
}

std::string value_label(std::string_view value) {
  if (!value.empty() && value.front() == '{') {
    try {
      const toml::table t = toml::parse("v = " + std::string(value));
      if (auto strategy = t.at_path("v.strategy").value<std::string>()) return *strategy;
    } catch (const toml::parse_error&) {
    }
  }
  std::string out;
  for (char c : value) {
    if (out.size() == 40) break;
    out += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-') ? c : '_';
  }
  // Quotes and brackets at the ends make no name.
  while (!out.empty() && out.back() == '_') out.pop_back();
  out.erase(0, out.find_first_not_of('_'));
  return out.empty() || out == "." || out == ".." ? "value" : out;
}

MeanStd mean_std(const std::vector<double>& values) {
  MeanStd m;
  m.n = static_cast<int64_t>(values.size());
  if (values.empty()) return m;
  for (double v : values) m.mean += v;
  m.mean /= static_cast<double>(values.size());
  if (values.size() < 2) return m;
  double squares = 0;
  for (double v : values) squares += (v - m.mean) * (v - m.mean);
  m.std = std::sqrt(squares / static_cast<double>(values.size() - 1));
  return m;
}

std::vector<GridPoint> grid_points(const std::vector<GridAxis>& grid) {
  std::vector<GridPoint> points(1);
  for (const GridAxis& axis : grid) {
    std::vector<GridPoint> next;
    for (const GridPoint& p : points)
      for (const std::string& v : axis.values) {
        GridPoint n = p;
        n.values.push_back(v);
        n.label += (n.label.empty() ? "" : "-") + value_label(v);
        next.push_back(std::move(n));
      }
    points = std::move(next);
  }
  if (points.front().label.empty()) points.front().label = "base";
  // Two values can have one label (tau=0.2 and tau=0.5 of `weighted`): number the later ones, so
  // each combination has a folder of its own.
  std::map<std::string, int> seen;
  for (GridPoint& p : points)
    if (const int n = ++seen[p.label]; n > 1) p.label += "-" + std::to_string(n);
  return points;
}

namespace {

struct Combination {
  GridPoint point;
  std::vector<Config> configs;  // one run's config per seed, in the order of the seeds
  std::map<std::string, std::vector<double>> metrics;  // summary key -> one value per seed
  int64_t runs_done = 0;
  std::vector<std::string> errors;
};

// A column of the results: a figure every run of the sweep may have.
struct Column {
  std::string key;   // summary.json's
  std::string name;  // in results.md
};

std::string pm(const MeanStd& m) {
  if (m.n == 0) return "";
  char buf[48];
  std::snprintf(buf, sizeof buf, m.n > 1 ? "%.1f ± %.1f" : "%.1f", 100.0 * m.mean, 100.0 * m.std);
  return buf;
}

}  // namespace

SweepResult run_sweep(const Config& base, registry::Registry& registry, const SweepOptions& options) {
  if (options.seeds.empty()) throw std::invalid_argument("a sweep needs at least one seed");
  SweepResult result;
  result.folder = options.folder.empty() ? fs::path(output_dir(base).lexically_normal().string() + "-sweep")
                                         : options.folder;
  const fs::path cache = cache_dir(base);

  std::vector<Combination> combinations;
  for (GridPoint& p : grid_points(options.grid)) combinations.push_back({std::move(p), {}, {}, 0, {}});

  // Every run's config, validated before any runs: a grid key or value that no run can take (a
  // typo) is refused at once, not after the runs before it have spent their hours.
  std::vector<ConfigProblem> problems;
  for (Combination& c : combinations) {
    for (int64_t seed : options.seeds) {
      Config config = base;
      for (size_t a = 0; a < options.grid.size(); ++a)
        config.apply_override(options.grid[a].key + "=" + c.point.values[a]);
      config.apply_override("experiment.seed=" + std::to_string(seed));
      const fs::path dir = result.folder / c.point.label / ("seed-" + std::to_string(seed));
      config.apply_override("experiment.output_dir=" + json_quote(dir.string()));
      config.apply_override("experiment.cache_dir=" + json_quote(cache.string()));
      const auto invalid = validate(config, registry);
      problems.insert(problems.end(), invalid.begin(), invalid.end());
      c.configs.push_back(std::move(config));
    }
  }
  if (!problems.empty()) throw ConfigError(sorted_unique(std::move(problems)));

  // In a job, run i goes to rank i mod world_size, which runs it alone; the outcomes are gathered
  // and rank 0 writes the table. Each rank's own runs: their figures (key, value) or their error.
  Communicator* const group = options.run.group;
  const int rank = group != nullptr ? group->rank() : 0, world = group != nullptr ? group->world_size() : 1;
  RunOptions run_options = options.run;
  run_options.group = nullptr;
  if (group != nullptr && world > 1) {
    spdlog::info("sweep: {} runs over {} ranks; rank {} runs every {}th from its {}th", combinations.size() * options.seeds.size(),
                 world, rank, world, rank + 1);
    // The teachers and dependency runs of every run are made once, by rank 0, before any rank
    // needs them (ranks preparing at once would write the same teacher); its error is every rank's.
    std::string error;
    if (rank == 0) {
      try {
        for (const Combination& c : combinations)
          for (const Config& config : c.configs) prepare_experiment(config, registry, run_options);
      } catch (const std::exception& e) {
        error = e.what();
      }
    }
    error = group->broadcast(error, 0);
    if (!error.empty()) throw std::runtime_error((rank == 0 ? "" : "rank 0: ") + error);
  }
  Json outcomes = Json::array();  // this rank's: {"run": i, "figures": [[key, column, value], ...]} or {"run": i, "error": ...}
  for (size_t i = 0, run = 0; i < combinations.size(); ++i) {
    for (size_t si = 0; si < options.seeds.size(); ++si, ++run) {
      if (static_cast<int>(run % static_cast<size_t>(world)) != rank) continue;
      const Combination& c = combinations[i];
      const int64_t seed = options.seeds[si];
      const Config& config = c.configs[si];
      try {
        spdlog::info("sweep: {} seed {} -> {}", c.point.label, seed, output_dir(config).string());
        prepare_experiment(config, registry, run_options);
        const RunResult result_of_run = run_experiment(config, registry, run_options);
        Json figures = Json::array();
        for (const SummaryFigure& f : accuracy_figures(result_of_run.summary))
          figures.push_back({f.key, f.column, f.value ? Json(*f.value) : Json()});
        outcomes.push_back({{"run", run}, {"figures", figures}});
      } catch (const std::exception& e) {
        spdlog::error("sweep: {} seed {} failed: {}", c.point.label, seed, e.what());
        outcomes.push_back({{"run", run}, {"error", e.what()}});
      }
    }
  }
  std::vector<Json> all(1, outcomes);
  if (group != nullptr && world > 1) {
    all.clear();
    // Messages may hold bytes that are not UTF-8 (a text cut short): replaced, not thrown on.
    for (const std::string& text : group->all_gather(outcomes.dump(-1, ' ', false, Json::error_handler_t::replace)))
      all.push_back(Json::parse(text));
    if (rank != 0) return result;  // rank 0 writes the table
  }
  std::vector<Json> by_run(combinations.size() * options.seeds.size());
  for (const Json& from_rank : all)
    for (const Json& o : from_rank) by_run[o.at("run").get<size_t>()] = o;

  // The accuracies over the union, then each teacher's, in the order the runs first report them.
  std::vector<Column> columns;
  for (const SummaryFigure& f : accuracy_figures(RunSummary{})) columns.push_back({f.key, f.column});
  for (size_t i = 0, run = 0; i < combinations.size(); ++i) {
    Combination& c = combinations[i];
    for (size_t si = 0; si < options.seeds.size(); ++si, ++run) {
      ++result.runs;
      const Json& o = by_run[run];
      if (o.contains("error")) {
        ++result.failed;
        std::string message = o.at("error").get<std::string>();
        std::replace(message.begin(), message.end(), '\n', ' ');
        c.errors.push_back("seed " + std::to_string(options.seeds[si]) + ": " + message);
        continue;
      }
      for (const Json& f : o.at("figures")) {
        const std::string key = f.at(0).get<std::string>();
        if (std::none_of(columns.begin(), columns.end(), [&](const Column& k) { return k.key == key; }))
          columns.push_back({key, f.at(1).get<std::string>()});
        if (!f.at(2).is_null()) c.metrics[key].push_back(f.at(2).get<double>());
      }
      ++c.runs_done;
    }
  }

  std::ostringstream md, csv;
  md << "|";
  for (const GridAxis& axis : options.grid) md << " " << axis.key << " |";
  md << " seeds |";
  for (const Column& k : columns) md << " " << k.name << " |";
  md << "\n|";
  for (size_t i = 0; i < options.grid.size(); ++i) md << "---|";
  md << "---:|";
  for (size_t i = 0; i < columns.size(); ++i) md << "---:|";
  md << "\n";
  for (const GridAxis& axis : options.grid) csv << axis.key << ",";
  csv << "seeds";
  for (const Column& k : columns) csv << "," << k.key << ".mean," << k.key << ".std";
  csv << "\n";
  for (const Combination& c : combinations) {
    md << "|";
    for (const std::string& v : c.point.values) md << " " << value_label(v) << " |";
    md << " " << c.runs_done << " |";
    for (const std::string& v : c.point.values) csv << json_quote(value_label(v)) << ",";
    csv << c.runs_done;
    for (const Column& k : columns) {
      const auto it = c.metrics.find(k.key);
      const MeanStd m = mean_std(it == c.metrics.end() ? std::vector<double>{} : it->second);
      md << " " << pm(m) << " |";
      csv << "," << (m.n ? shortest_number(m.mean) : "") << "," << (m.n > 1 ? shortest_number(m.std) : "");
    }
    md << "\n";
    csv << "\n";
  }
  // After the table: a line inside it would end it.
  for (const Combination& c : combinations)
    for (const std::string& e : c.errors) md << "\n" << c.point.label << " failed, " << e << "\n";
  std::string seeds;
  for (int64_t s : options.seeds) seeds += (seeds.empty() ? "" : ", ") + std::to_string(s);
  result.markdown = "Sweep of " + base.path().string() + ", seeds " + seeds +
                    "; test split, percent, mean ± standard deviation over the seeds.\n\n" + md.str();
  fs::create_directories(result.folder);
  write_file_atomically(result.folder / "results.md", result.markdown);
  write_file_atomically(result.folder / "results.csv", csv.str());
  return result;
}

}  // namespace muki::core
