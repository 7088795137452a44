// The JSON muki writes and reads back: run.json, summary.json, metrics.jsonl, train_report.json,
// analysis-<split>.json. Documents are built as values (nlohmann's ordered_json: members stay in
// the order they were added, so a file's bytes never depend on a hash) and written by the two
// functions below; no JSON is assembled from strings.
//
// Data files (JSONL datasets) are read by the stricter parser of jsonl_row.h, which reports
// problems by byte and key.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace muki::core {

using Json = nlohmann::ordered_json;

// One line: `{"key": value, ...}`, a space after every ':' and ',' (the layout of metrics.jsonl
// and summary.json), floats in the shortest form that reads back (shortest_number), NaN and
// infinities as null (JSON has no literal for them), invalid UTF-8 replaced by U+FFFD.
std::string json_line(const Json& value);

// For files people read: each member of a top-level object on a line of its own, written as
// json_line writes it; ends with a newline.
std::string json_lines(const Json& object);

// A JSON string literal for `text`, quotes included.
std::string json_quote(std::string_view text);

// Parses a JSON file. Throws std::runtime_error naming the file when it cannot be read or is not
// JSON.
Json read_json_file(const std::filesystem::path& file);

}  // namespace muki::core
