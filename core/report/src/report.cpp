#include "muki/report/report.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "muki/io/files.h"
#include "muki/io/json.h"
#include "muki/io/number_text.h"
#include "muki/io/process.h"

namespace muki::core {
namespace fs = std::filesystem;

namespace {

std::string html_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// gnuplot string literal (single quotes; a quote is doubled).
std::string gp(std::string_view s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

std::string percent(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", 100.0 * v);
  return buf;
}

// A figure the run may not have measured: a dash when absent.
std::string percent(const std::optional<double>& v) { return v ? percent(*v) : "&ndash;"; }

// `v` to `places` decimals, without trailing zeros (0.612, not 0.612000).
std::string rounded(double v, int places) {
  const double scale = std::pow(10.0, places);
  return shortest_number(std::round(v * scale) / scale);
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// One figure: a gnuplot script body drawn twice, as SVG (inlined in the page) and as PNG.
struct Figure {
  std::string name;     // file stem
  std::string caption;  // HTML
  std::string plot;     // gnuplot commands after the terminal and output are set
  int width = 900, height = 420;
};

// Draws the figures with gnuplot; returns each one's inline SVG (empty when not drawn) and a
// note when gnuplot is missing.
std::vector<std::string> draw(const fs::path& folder, const std::vector<Figure>& figures,
                              std::string& note) {
  std::vector<std::string> svgs(figures.size());
  if (!program_on_path("gnuplot")) {
    note = "The figures are missing: gnuplot is not installed (Debian: apt-get install "
           "gnuplot-nox). Their data are in data/.";
    return svgs;
  }
  fs::create_directories(folder / "figures");
  for (size_t i = 0; i < figures.size(); ++i) {
    const Figure& f = figures[i];
    const fs::path svg = folder / "figures" / (f.name + ".svg"), png = folder / "figures" / (f.name + ".png");
    std::ostringstream script;
    script << "cd " << gp(folder.string()) << "\nset datafile separator \"\\t\"\n"
           << "set terminal svg size " << f.width << "," << f.height << " font 'sans,12' background rgb 'white'\n"
           << "set output " << gp(svg.string()) << "\n" << f.plot << "\nunset output\n"
           << "set terminal pngcairo size " << f.width << "," << f.height << " font 'sans,10' background rgb 'white'\n"
           << "set output " << gp(png.string()) << "\n" << f.plot << "\nunset output\n";
    const fs::path script_file = folder / "figures" / (f.name + ".gp");
    write_file_atomically(script_file, script.str());
    run_program({"gnuplot", script_file.string()}, folder / "figures" / (f.name + ".log"));
    std::string text = read_text(svg);
    // Inline: drop the XML prolog and doctype, keep the <svg> element.
    if (const size_t at = text.find("<svg"); at != std::string::npos) text = text.substr(at);
    svgs[i] = text;
  }
  return svgs;
}

// The paper's Figure 2: the distribution of each uncertainty panel, owners vs others.
std::optional<Figure> uncertainty_figure(const fs::path& folder, const std::vector<ReportData::Uncertainty>& panels) {
  if (panels.empty()) return std::nullopt;
  constexpr int kBins = 20;
  std::ostringstream tsv;
  tsv << "# bin_center";
  for (const auto& u : panels) tsv << "\towner:" << u.name << "\tother:" << u.name;
  tsv << "\n";
  std::vector<std::vector<double>> columns;
  for (const auto& u : panels) {
    columns.push_back(histogram(u.owner, kBins));
    columns.push_back(histogram(u.other, kBins));
  }
  for (int b = 0; b < kBins; ++b) {
    tsv << (b + 0.5) / kBins;
    for (const auto& c : columns) tsv << "\t" << c[static_cast<size_t>(b)];
    tsv << "\n";
  }
  write_file_atomically(folder / "data" / "uncertainty.tsv", tsv.str());
  std::ostringstream plot;
  plot << "set multiplot layout 1," << panels.size() << "\n"
       << "set style fill transparent solid 0.5 noborder\nset boxwidth " << 1.0 / kBins << "\n"
       << "set xrange [0:1]\nset yrange [0:*]\nset xlabel 'normalised uncertainty'\n"
       << "set ylabel 'fraction of (example, teacher) pairs'\nset key top center\n";
  for (size_t i = 0; i < panels.size(); ++i) {
    plot << "set title " << gp(panels[i].name + "  (AUROC " + rounded(panels[i].auroc, 3) + ")") << "\n"
         << "plot 'data/uncertainty.tsv' using 1:" << 2 * i + 2
         << " with boxes lc rgb '#1f77b4' title 'teacher that owns the gold label', "
         << "'' using 1:" << 2 * i + 3 << " with boxes lc rgb '#d62728' title 'other teachers'\n";
  }
  plot << "unset multiplot";
  return Figure{"uncertainty",
                "Normalised uncertainty of the teacher that owns each test example's gold label "
                "(blue) and of the other teachers (red): 1 - certainty for entropy and MC dropout "
                "(H / log C), the rank among all pairs for unbounded scores (marked 'rank'). The "
                "less the two overlap, the better the uncertainty picks the right teacher.",
                plot.str(), 450 * static_cast<int>(panels.size()), 400};
}

// The student's training curve.
std::optional<Figure> training_figure(const fs::path& folder, const std::vector<ReportData::Eval>& history) {
  if (history.empty()) return std::nullopt;
  std::ostringstream tsv;
  tsv << "# step\ttrain_loss\tdev_accuracy\n";
  for (const auto& e : history) tsv << e.step << "\t" << e.train_loss << "\t" << e.dev_accuracy << "\n";
  write_file_atomically(folder / "data" / "training.tsv", tsv.str());
  return Figure{"training",
                "The student's training: mean loss since the previous evaluation (left) and dev "
                "accuracy (right); the best dev accuracy picks the weights kept.",
                "set xlabel 'step'\nset ylabel 'training loss'\nset y2label 'dev accuracy'\n"
                "set ytics nomirror\nset y2tics\nset key bottom right\n"
                "plot 'data/training.tsv' using 1:2 with lines lw 2 lc rgb '#7f7f7f' title "
                "'training loss', '' using 1:3 axes x1y2 with linespoints lw 2 pt 7 ps 0.5 "
                "lc rgb '#1f77b4' title 'dev accuracy'",
                900, 380};
}

// Recall of each label of the union.
Figure classes_figure(const fs::path& folder, const ReportData& d) {
  std::ostringstream tsv;
  tsv << "# label\trecall\texamples\n";
  for (size_t u = 0; u < d.labels.size(); ++u)
    tsv << d.labels[u] << "\t" << d.evaluation.class_recall[u] << "\t" << d.evaluation.class_examples[u] << "\n";
  write_file_atomically(folder / "data" / "classes.tsv", tsv.str());
  return Figure{"classes", "Recall of each label of the union on the test split.",
                "set style fill solid 0.8\nset boxwidth 0.7\nset yrange [0:1]\n"
                "set ylabel 'recall'\nunset key\nset xtics rotate by -30\n"
                "plot 'data/classes.tsv' using 0:2:xtic(1) with boxes lc rgb '#2ca02c'",
                900, 360};
}

// The drawn figures, as the page shows them: each one's <figure> element by name, empty when it
// was not drawn.
class DrawnFigures {
 public:
  DrawnFigures(std::vector<Figure> figures, std::vector<std::string> svgs)
      : figures_(std::move(figures)), svgs_(std::move(svgs)) {}

  std::string html(const std::string& name) const {
    for (size_t i = 0; i < figures_.size(); ++i)
      if (figures_[i].name == name && !svgs_[i].empty())
        return "<figure id=\"figure-" + name + "\">" + svgs_[i] + "<figcaption>" +
               html_escape(figures_[i].caption) + " (<a href=\"figures/" + name + ".png\">PNG</a>)" +
               "</figcaption></figure>\n";
    return "";
  }

 private:
  std::vector<Figure> figures_;
  std::vector<std::string> svgs_;
};

std::string page_head(const std::string& title, const std::string& note) {
  std::ostringstream html;
  html << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
       << html_escape(title) << "</title>\n<style>\n"
       << "body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}\n"
       << "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;"
          "text-align:right}th{background:#f4f4f4}td.l,th.l{text-align:left}\n"
       << "figure{margin:1.5em 0}figcaption{color:#555;font-size:.9em}svg{max-width:100%;height:auto}\n"
       << ".note{background:#fff3cd;padding:.5em 1em}\n</style></head><body>\n"
       << "<h1>" << html_escape(title) << "</h1>\n";
  if (!note.empty()) html << "<p class=\"note\">" << html_escape(note) << "</p>\n";
  return html.str();
}

// The run's results, then every figure of summary.json.
std::string results_section(const RunSummary& s) {
  std::ostringstream html;
  html << "<h2>Results on the test split</h2>\n<table><tr><th class=\"l\">metric</th><th>value</th></tr>\n";
  auto row = [&](const std::string& name, const std::string& v) {
    html << "<tr><td class=\"l\">" << html_escape(name) << "</td><td>" << v << "</td></tr>\n";
  };
  row("accuracy over the union (%)", percent(s.test.accuracy));
  row("macro-F1 (%)", percent(s.test.macro_f1));
  for (const auto& t : s.test.teachers) row("accuracy on " + t.teacher + "'s labels (%)", percent(t.accuracy));
  row("teacher selection accuracy (%)", percent(s.test.selection_accuracy));
  row("accuracy of the integrated targets (%)", percent(s.test.target_accuracy));
  if (s.transfer.kl_to_reference)
    row("KL(target || reference) on the transfer set", rounded(*s.transfer.kl_to_reference, 4));
  html << "</table>\n<details><summary>every figure of summary.json</summary><table>\n";
  const Json figures = to_json(s);
  for (auto it = figures.begin(); it != figures.end(); ++it)
    html << "<tr><td class=\"l\">" << html_escape(it.key()) << "</td><td class=\"l\">"
         << html_escape(it->is_string() ? it->get<std::string>() : json_line(*it)) << "</td></tr>\n";
  html << "</table></details>\n";
  return html.str();
}

// This run beside the runs of [report] compare; a label missing from a run's union shows as a dash.
std::string compared_section(const ReportData& d) {
  if (d.compared.empty()) return "";
  std::vector<ReportData::Compared> runs = {{"this run", d.summary}};
  runs.insert(runs.end(), d.compared.begin(), d.compared.end());
  auto teachers_of = [](const RunSummary& summary) {
    std::string names;
    for (const auto& t : summary.test.teachers) names += (names.empty() ? "" : ", ") + t.teacher;
    return names;
  };
  auto recall_of = [](const RunSummary& summary, const std::string& label) -> std::optional<double> {
    for (const auto& c : summary.test.classes)
      if (c.label == label) return c.recall;
    return std::nullopt;
  };
  std::ostringstream html;
  html << "<h2>Compared with other runs</h2>\n<table><tr><th class=\"l\">run</th><th class=\"l\">teachers</th>"
          "<th class=\"l\">uncertainty</th><th class=\"l\">integration</th><th>test acc (%)</th>"
          "<th>macro-F1 (%)</th><th>selection acc (%)</th><th>target acc (%)</th></tr>\n";
  for (const auto& r : runs) {
    html << "<tr><td class=\"l\">" << html_escape(r.run) << "</td>";
    if (!r.summary) {
      html << "<td class=\"l\" colspan=\"7\">has not finished: no summary.json (run its config)</td></tr>\n";
      continue;
    }
    const RunSummary& o = *r.summary;
    std::string uncertainty = o.uncertainty;
    if (o.samples != 0) uncertainty += " (K = " + std::to_string(o.samples) + ")";
    html << "<td class=\"l\">" << html_escape(teachers_of(o)) << "</td><td class=\"l\">"
         << html_escape(uncertainty) << "</td><td class=\"l\">" << html_escape(o.integration)
         << "</td><td>" << percent(o.test.accuracy) << "</td><td>" << percent(o.test.macro_f1)
         << "</td><td>" << percent(o.test.selection_accuracy) << "</td><td>"
         << percent(o.test.target_accuracy) << "</td></tr>\n";
  }
  html << "</table>\n<table><tr><th class=\"l\">recall on the test split (%)</th>";
  for (size_t i = 0; i < runs.size(); ++i) html << "<th>" << (i == 0 ? std::string("this run") : html_escape(runs[i].run)) << "</th>";
  html << "</tr>\n";
  for (const auto& label : d.labels) {
    html << "<tr><td class=\"l\">" << html_escape(label) << "</td>";
    for (const auto& r : runs)
      html << "<td>" << (r.summary ? percent(recall_of(*r.summary, label)) : percent(std::nullopt)) << "</td>";
    html << "</tr>\n";
  }
  html << "</table>\n";
  return html.str();
}

// Which teacher knows: the uncertainty figure and each panel's selection accuracy and AUROC.
std::string uncertainty_section(const ReportData& d, const DrawnFigures& figures) {
  if (d.uncertainties.empty()) return "";
  std::ostringstream html;
  html << "<h2>Which teacher knows? Uncertainty of the right teacher vs the others</h2>\n"
       << figures.html("uncertainty")
       << "<table><tr><th class=\"l\">uncertainty</th><th>teacher selection accuracy (%)</th>"
          "<th>AUROC owner vs other</th></tr>\n";
  for (const auto& u : d.uncertainties)
    html << "<tr><td class=\"l\">" << html_escape(u.name) << "</td><td>" << percent(u.selection_accuracy)
         << "</td><td>" << rounded(u.auroc, 3) << "</td></tr>\n";
  html << "</table>\n";
  return html.str();
}

// Per-class recall and the confusion matrix.
std::string per_class_section(const ReportData& d, const DrawnFigures& figures) {
  const UnionEvaluation& ev = d.evaluation;
  std::ostringstream html;
  html << "<h2>Per class</h2>\n" << figures.html("classes")
       << "<h3>Confusion matrix (rows: gold, columns: predicted)</h3>\n<table><tr><th></th>";
  for (const auto& l : d.labels) html << "<th>" << html_escape(l) << "</th>";
  html << "<th>recall (%)</th></tr>\n";
  const size_t c = d.labels.size();
  for (size_t g = 0; g < c; ++g) {
    html << "<tr><th class=\"l\">" << html_escape(d.labels[g]) << "</th>";
    for (size_t p = 0; p < c; ++p) {
      const int64_t n = ev.confusion[g * c + p];
      const double share = ev.class_examples[g] > 0 ? static_cast<double>(n) / static_cast<double>(ev.class_examples[g]) : 0.0;
      // Shade by the share of the row: the diagonal should be dark, the rest light.
      const int light = 255 - static_cast<int>(std::lround(share * 155));
      html << "<td style=\"background:rgb(" << light << "," << light << ",255)\">" << n << "</td>";
    }
    html << "<td>" << percent(ev.class_recall[g]) << "</td></tr>\n";
  }
  html << "</table>\n";
  return html.str();
}

}  // namespace

std::vector<double> histogram(const std::vector<float>& values, int bins) {
  std::vector<double> out(static_cast<size_t>(bins), 0.0);
  if (values.empty() || bins < 1) return out;
  for (float v : values) {
    const int b = std::clamp(static_cast<int>(std::floor(static_cast<double>(v) * bins)), 0, bins - 1);
    out[static_cast<size_t>(b)] += 1.0;
  }
  for (double& x : out) x /= static_cast<double>(values.size());
  return out;
}

fs::path write_report(const fs::path& where, const ReportData& d) {
  const fs::path folder = fs::absolute(where).lexically_normal();  // gnuplot runs from it
  fs::create_directories(folder / "data");
  std::vector<Figure> figures;
  if (auto f = uncertainty_figure(folder, d.uncertainties)) figures.push_back(std::move(*f));
  if (auto f = training_figure(folder, d.history)) figures.push_back(std::move(*f));
  figures.push_back(classes_figure(folder, d));
  std::string note;
  std::vector<std::string> svgs = draw(folder, figures, note);
  const DrawnFigures drawn(std::move(figures), std::move(svgs));

  std::string html = page_head(d.title, note) + results_section(d.summary) + compared_section(d) +
                     uncertainty_section(d, drawn) + per_class_section(d, drawn);
  if (!d.history.empty()) html += "<h2>Training</h2>\n" + drawn.html("training");
  html += "</body></html>\n";
  const fs::path page = folder / "report.html";
  write_file_atomically(page, html);
  return page;
}

}  // namespace muki::core
