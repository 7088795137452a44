// The report of a run: run_dir/report/report.html, one self-contained page (figures inline as
// SVG, no script, no external file), and its figures as PNG and SVG files beside it, drawn by
// gnuplot (Debian's gnuplot-nox). It shows the metrics, the distribution of the normalised
// uncertainty of the teacher that owns an example's gold label vs the other teachers for
// single-pass entropy and MC dropout (the paper's Figure 2), teacher-selection accuracy,
// per-class recall, the confusion matrix, the student's training curve and, when asked, other
// runs' results beside this one's. Torch-free.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <muki/metrics/evaluation.h>
#include <muki/report/run_summary.h>

namespace muki::core {

struct ReportData {
  std::string title;
  RunSummary summary;
  std::vector<std::string> labels;  // the union
  UnionEvaluation evaluation;  // the student on the test split
  struct Eval {
    int64_t step = 0;
    double train_loss = 0, dev_accuracy = 0;
  };
  std::vector<Eval> history;
  // One panel of the uncertainty figure: the normalised uncertainty u = 1 - certainty of every
  // (test example, teacher) pair, split by whether the teacher owns the example's gold label.
  struct Uncertainty {
    std::string name;  // "single-pass entropy", "MC dropout (K = 16)"
    std::vector<float> owner, other;
    double selection_accuracy = 0;
    double auroc = 0;
  };
  std::vector<Uncertainty> uncertainties;
  // Other runs shown beside this one (the config's [report] compare): a run's folder and its
  // summary.json, absent when it has not finished.
  struct Compared {
    std::string run;
    std::optional<RunSummary> summary;
  };
  std::vector<Compared> compared;
};

// Fractions of `values` (expected in [0, 1]; outside values go to the end bins) in `bins` equal
// bins over [0, 1]; all zeros when `values` is empty.
std::vector<double> histogram(const std::vector<float>& values, int bins);

// Writes `folder`/report.html, `folder`/figures/*.{svg,png} and the data they are drawn from
// (`folder`/data/*.tsv). Without gnuplot on PATH the page still has every table and says which
// figures are missing and why. Returns the page's path. Throws std::runtime_error when a file
// cannot be written or gnuplot fails on a figure.
std::filesystem::path write_report(const std::filesystem::path& folder, const ReportData& data);

}  // namespace muki::core
