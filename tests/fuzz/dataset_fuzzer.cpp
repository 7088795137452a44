// The TSV and JSONL dataset readers (core/data): built twice, as muki_fuzz_dataset_tsv and
// muki_fuzz_dataset_jsonl (MUKI_FUZZ_FORMAT), so that each has a corpus of its own format.
//
// Input: one byte of reader settings, then the file. Settings, bit by bit:
//   0 on_error = skip (else fail)        1 label_field = "label"     2 id_field = "id"
//   3 group_field = "group"              4 labels = {admin, games, net}
//   5-7 max_problems (0-7)
// Beyond "no crash": what the reader delivers must be what dataset.h promises.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>

#include <muki/data/dataset.h>
#include <muki/data/jsonl_row.h>
#include <muki/text/utf8.h>

#include "fuzz_support.h"

namespace {

using muki::core::DataError;
using muki::core::DatasetReader;
using muki::core::DatasetSpec;
using muki::core::Example;

void require(bool ok) {
  if (!ok) __builtin_trap();
}

bool blank(const std::string& text) {
  return text.find_first_not_of(" \t\r\n\v\f") == std::string::npos;
}

// The in-memory entry point of the JSONL reader, line by line: its error positions must lie
// within the line (1-based, one past the end for "unexpected end").
void parse_rows(std::string_view file) {
  while (!file.empty()) {
    const size_t end = file.find('\n');
    const std::string_view line = file.substr(0, end);
    try {
      for (const auto& [key, value] : muki::core::parse_flat_json_object(line)) {
        require(muki::core::utf8::is_valid(key));
        require(value.type != muki::core::JsonScalar::Type::String ||
                muki::core::utf8::is_valid(value.text));
      }
    } catch (const muki::core::JsonError& e) {
      require(e.byte() >= 1 && e.byte() <= line.size() + 1);
    }
    if (end == std::string_view::npos) break;
    file.remove_prefix(end + 1);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const muki::fuzz::MemoryFile file("dataset");
  muki::fuzz::ByteReader in(data, size);
  const uint8_t settings = in.u8();
  const std::string_view content = in.rest();
  file.assign(content);

  DatasetSpec spec;
  spec.path = file.path();
  spec.format = MUKI_FUZZ_FORMAT;
  spec.on_error = (settings & 1) != 0 ? muki::core::OnError::Skip : muki::core::OnError::Fail;
  if ((settings & 2) != 0) spec.label_field = "label";
  if ((settings & 4) != 0) spec.id_field = "id";
  if ((settings & 8) != 0) spec.group_field = "group";
  if ((settings & 16) != 0) spec.labels = {"admin", "games", "net"};
  spec.max_problems = settings >> 5;
  const std::unordered_set<std::string> labels(spec.labels.begin(), spec.labels.end());

  if (std::string_view(MUKI_FUZZ_FORMAT) == "jsonl") parse_rows(content);
  try {
    DatasetReader reader(spec);
    Example ex;
    size_t rows = 0, last_line = 0;
    while (reader.next(ex)) {
      ++rows;
      require(ex.line > last_line);
      last_line = ex.line;
      require(muki::core::utf8::is_valid(ex.text) && !blank(ex.text));
      require(ex.label.has_value() == !spec.label_field.empty());
      if (ex.label) require(!ex.label->empty() && (labels.empty() || labels.count(*ex.label) == 1));
    }
    const auto& report = reader.report();
    require(report.rows_read == rows);
    require(report.problems.size() <= spec.max_problems);
    require(report.problems.size() <= report.rows_skipped);
    (void)report.summary(spec.path);
  } catch (const DataError&) {
  }
  return 0;
}
