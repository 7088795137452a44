// Reading text examples from TSV and JSONL files, streaming, with every problem reported as
// "PATH:LINE: what is wrong (field 'x')".
//
// TSV: the first line is a header naming the columns; fields are separated by tabs, no quoting
// (the dataset builders collapse tabs and newlines inside text to spaces). JSONL: one flat JSON
// object per line (see jsonl_row.h); keys other than the requested fields are ignored, but
// their values must be scalars too (the whole line is parsed strictly). Both: UTF-8
// (a leading byte-order mark is skipped), LF or CRLF line ends; blank lines are skipped and
// counted (ReadReport::blank_lines). Text (since muki 0.3, for `muki pretrain`'s corpora): one
// text a line, its line number as the id; no labels, groups or id fields.
//
// Problems in a row (bad UTF-8, wrong TSV field count, JSON syntax, a missing or null field,
// empty text, an empty or unknown label) follow DatasetSpec::on_error: Fail throws DataError;
// Skip drops the row, counts it and keeps the first messages in the ReadReport. Problems with
// the file itself (cannot open, no header, duplicate or missing header column) always throw.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace muki::core {

// what() is "PATH:LINE: what is wrong (field 'x')" (no LINE for file-level problems).
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class OnError { Fail, Skip };

struct DatasetSpec {
  std::filesystem::path path;
  // "tsv", "jsonl" or "text"; empty: from the extension (.tsv; .jsonl or .ndjson; .txt).
  std::string format;
  std::string text_field = "text";
  // Empty: unlabeled; the label column, if any, is never read (a transfer set).
  std::string label_field;
  // Empty: the "id" field when the file has one (TSV column / JSONL key), else the line number.
  // Set: required in every row.
  std::string id_field;
  // Empty: no group (Example::group stays empty). Set: required in every row.
  std::string group_field;
  // Non-empty (and labeled): a label outside this set is a problem.
  std::vector<std::string> labels;
  OnError on_error = OnError::Fail;
  // Skip mode: how many problem messages ReadReport keeps (all are counted).
  std::size_t max_problems = 20;
};

struct Example {
  std::string id;
  std::string group;
  std::string text;
  std::optional<std::string> label;  // set iff the spec names a label field
  std::size_t line = 0;              // 1-based line in the file
};

struct ReadReport {
  std::size_t rows_read = 0;     // examples delivered
  std::size_t rows_skipped = 0;  // rows dropped for a problem (Skip mode)
  std::size_t blank_lines = 0;   // empty lines, ignored
  std::vector<std::string> problems;  // the first max_problems messages
  // "PATH: N rows read, M skipped" plus the kept messages, one per line.
  std::string summary(const std::filesystem::path& path) const;
};

// Streaming reader: one line in memory at a time.
class DatasetReader {
 public:
  // Opens the file and reads the TSV header. Throws DataError (cannot open, unknown format,
  // empty file, bad header).
  explicit DatasetReader(DatasetSpec spec);
  DatasetReader(DatasetReader&&) noexcept;
  DatasetReader& operator=(DatasetReader&&) noexcept;
  ~DatasetReader();

  // The next good example; false at the end of the file. Fail mode: throws DataError on the
  // first problem. Skip mode: skips bad rows (counted in report()). Throws DataError on an I/O
  // error.
  bool next(Example& example);

  const ReadReport& report() const;
  const DatasetSpec& spec() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Calls on_example for every good example, in file order; returns the report. Throws what
// DatasetReader throws, and whatever on_example throws.
ReadReport read_dataset(const DatasetSpec& spec,
                        const std::function<void(Example&&)>& on_example);

struct Dataset {
  std::vector<Example> examples;
  ReadReport report;
};

// Every good example in memory.
Dataset read_all(const DatasetSpec& spec);
// Every good example of every file, in order, the reports added up (problem messages name their
// file). Throws what read_all throws.
Dataset read_all(const std::vector<DatasetSpec>& specs);

}  // namespace muki::core
