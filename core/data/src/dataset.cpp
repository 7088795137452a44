#include <muki/data/dataset.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <unordered_map>
#include <unordered_set>

#include <muki/data/jsonl_row.h>
#include <muki/text/utf8.h>

namespace muki::core {
namespace {

enum class Format { Tsv, Jsonl, Text };

// A problem with one row: `what`, and the field it concerns (may be empty).
struct RowProblem {
  std::string what;
  std::string field;
};

std::string describe(const RowProblem& p) {
  return p.field.empty() ? p.what : p.what + " (field '" + p.field + "')";
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// A line with nothing on it. In TSV only a truly empty line: a line of tabs is a row of empty
// fields, and gets reported.
bool is_blank(const std::string& line, Format format) {
  if (format == Format::Tsv) return line.empty();
  return std::all_of(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t'; });
}

bool is_blank_text(const std::string& text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
  });
}

Format format_of(const DatasetSpec& spec) {
  std::string f = spec.format;
  if (f.empty()) {
    const std::string ext = spec.path.extension().string();
    if (ext == ".tsv") return Format::Tsv;
    if (ext == ".jsonl" || ext == ".ndjson") return Format::Jsonl;
    if (ext == ".txt") return Format::Text;
    throw DataError(spec.path.string() + ": cannot tell the format from the extension '" + ext +
                    "' (set format = \"tsv\", \"jsonl\" or \"text\")");
  }
  if (f == "tsv") return Format::Tsv;
  if (f == "jsonl") return Format::Jsonl;
  if (f == "text") return Format::Text;
  throw DataError(spec.path.string() + ": unknown format '" + f + "' (expected tsv, jsonl or text)");
}

std::vector<std::string_view> split_tabs(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  for (;;) {
    const std::size_t tab = line.find('\t', start);
    if (tab == std::string_view::npos) {
      fields.push_back(line.substr(start));
      return fields;
    }
    fields.push_back(line.substr(start, tab - start));
    start = tab + 1;
  }
}

}  // namespace

std::string ReadReport::summary(const std::filesystem::path& path) const {
  std::string out = path.string() + ": " + std::to_string(rows_read) + " rows read, " +
                    std::to_string(rows_skipped) + " skipped";
  if (blank_lines != 0) out += ", " + std::to_string(blank_lines) + " blank lines";
  for (const std::string& p : problems) out += "\n  " + p;
  if (rows_skipped > problems.size())
    out += "\n  ... and " + std::to_string(rows_skipped - problems.size()) + " more";
  return out;
}

struct DatasetReader::State {
  DatasetSpec spec;
  Format format = Format::Tsv;
  std::ifstream in;
  std::string line;
  std::size_t line_no = 0;
  ReadReport report;
  std::unordered_set<std::string> labels;
  // TSV: the header's columns and the index of each requested field (-1: absent).
  std::vector<std::string> columns;
  long text_col = -1, label_col = -1, id_col = -1, group_col = -1;

  std::string where() const { return spec.path.string() + ":" + std::to_string(line_no); }

  // Reads the next physical line into `line`; false at the end.
  bool read_line() {
    if (!std::getline(in, line)) {
      if (in.bad()) throw DataError(spec.path.string() + ": read error after line " +
                                    std::to_string(line_no));
      return false;
    }
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_no == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);
    return true;
  }

  void read_header() {
    if (!read_line()) throw DataError(spec.path.string() + ": empty file, expected a header line");
    if (const auto bad = utf8::find_invalid(line))
      throw DataError(where() + ": invalid UTF-8 at byte " + std::to_string(*bad + 1) +
                      " (header)");
    std::unordered_map<std::string, long> index;
    for (std::string_view name : split_tabs(line)) {
      const long col = static_cast<long>(columns.size());
      columns.emplace_back(name);
      if (auto [it, inserted] = index.emplace(name, col); !inserted)
        throw DataError(where() + ": duplicate column '" + std::string(name) +
                        "' in the header (columns " + std::to_string(it->second + 1) + " and " +
                        std::to_string(col + 1) + ")");
    }
    const auto find = [&](const std::string& field, bool required) -> long {
      if (field.empty()) return -1;
      if (const auto it = index.find(field); it != index.end()) return it->second;
      if (!required) return -1;
      throw DataError(where() + ": missing column '" + field + "' in the header (columns: " +
                      join(columns) + ")");
    };
    text_col = find(spec.text_field, true);
    label_col = find(spec.label_field, true);
    group_col = find(spec.group_field, true);
    id_col = spec.id_field.empty() ? find("id", false) : find(spec.id_field, true);
  }

  // Fills `ex` from the current TSV line, or returns the problem.
  std::optional<RowProblem> parse_tsv(Example& ex) const {
    const std::vector<std::string_view> fields = split_tabs(line);
    if (const auto bad = utf8::find_invalid(line)) {
      // Name the column the bad byte is in.
      std::size_t col = static_cast<std::size_t>(std::count(line.begin(), line.begin() + static_cast<long>(*bad), '\t'));
      return RowProblem{"invalid UTF-8 at byte " + std::to_string(*bad + 1),
                        col < columns.size() ? columns[col] : std::string()};
    }
    if (fields.size() != columns.size())
      return RowProblem{"expected " + std::to_string(columns.size()) + " tab-separated fields, found " +
                            std::to_string(fields.size()), {}};
    const auto at = [&](long col) { return std::string(fields[static_cast<std::size_t>(col)]); };
    ex.text = at(text_col);
    if (label_col >= 0) ex.label = at(label_col);
    ex.id = id_col >= 0 ? at(id_col) : std::to_string(line_no);
    if (group_col >= 0) ex.group = at(group_col);
    return std::nullopt;
  }

  std::optional<RowProblem> parse_jsonl(Example& ex) const {
    std::vector<std::pair<std::string, JsonScalar>> members;
    try {
      members = parse_flat_json_object(line);
    } catch (const JsonError& e) {
      if (e.kind() == JsonError::Kind::Utf8) return RowProblem{e.message(), e.key()};
      return RowProblem{"invalid JSON at byte " + std::to_string(e.byte()) + ": " + e.message(),
                        e.key()};
    }
    const auto find = [&](const std::string& key) -> const JsonScalar* {
      for (const auto& [k, v] : members)
        if (k == key) return &v;
      return nullptr;
    };
    // Reads `key` into `out`; strings, and numbers when allow_number (kept as written).
    const auto get = [&](const std::string& key, bool allow_number,
                         std::string& out) -> std::optional<RowProblem> {
      const JsonScalar* v = find(key);
      if (!v) return RowProblem{"missing field", key};
      if (v->type == JsonScalar::Type::String ||
          (allow_number && v->type == JsonScalar::Type::Number)) {
        out = v->text;
        return std::nullopt;
      }
      if (v->type == JsonScalar::Type::Null) return RowProblem{"field is null", key};
      return RowProblem{std::string("expected a string") + (allow_number ? " or a number" : "") +
                            ", found " + v->text,
                        key};
    };
    if (auto p = get(spec.text_field, false, ex.text)) return p;
    if (!spec.label_field.empty()) {
      ex.label.emplace();
      if (auto p = get(spec.label_field, true, *ex.label)) return p;
    }
    if (!spec.group_field.empty())
      if (auto p = get(spec.group_field, true, ex.group)) return p;
    if (!spec.id_field.empty()) {
      if (auto p = get(spec.id_field, true, ex.id)) return p;
    } else if (find("id")) {
      if (auto p = get("id", true, ex.id)) return p;
    } else {
      ex.id = std::to_string(line_no);
    }
    return std::nullopt;
  }

  // A text file: the line is the text, its number the id.
  std::optional<RowProblem> parse_text(Example& ex) const {
    if (const auto bad = utf8::find_invalid(line))
      return RowProblem{"invalid UTF-8 at byte " + std::to_string(*bad + 1), spec.text_field};
    ex.text = line;
    ex.id = std::to_string(line_no);
    return std::nullopt;
  }

  // Checks common to every format.
  std::optional<RowProblem> check(const Example& ex) const {
    if (is_blank_text(ex.text)) return RowProblem{"empty text", spec.text_field};
    if (ex.label) {
      if (ex.label->empty()) return RowProblem{"empty label", spec.label_field};
      if (!labels.empty() && !labels.count(*ex.label))
        return RowProblem{"unknown label '" + *ex.label + "', expected one of: " +
                              join(spec.labels),
                          spec.label_field};
    }
    return std::nullopt;
  }
};

DatasetReader::DatasetReader(DatasetSpec spec) : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.spec = std::move(spec);
  s.format = format_of(s.spec);
  s.labels.insert(s.spec.labels.begin(), s.spec.labels.end());
  s.in.open(s.spec.path, std::ios::binary);
  if (!s.in) throw DataError(s.spec.path.string() + ": cannot open data file");
  if (s.format == Format::Tsv) s.read_header();
  // A text file has one column: labels, groups and named ids have nowhere to come from.
  if (s.format == Format::Text) {
    for (const std::string* field : {&s.spec.label_field, &s.spec.group_field, &s.spec.id_field})
      if (!field->empty())
        throw DataError(s.spec.path.string() + ": format \"text\" (one text a line) has no field '" +
                        *field + "'; use tsv or jsonl for labeled data");
  }
}

DatasetReader::DatasetReader(DatasetReader&&) noexcept = default;
DatasetReader& DatasetReader::operator=(DatasetReader&&) noexcept = default;
DatasetReader::~DatasetReader() = default;

const ReadReport& DatasetReader::report() const { return state_->report; }
const DatasetSpec& DatasetReader::spec() const { return state_->spec; }

bool DatasetReader::next(Example& example) {
  State& s = *state_;
  while (s.read_line()) {
    if (is_blank(s.line, s.format)) {
      ++s.report.blank_lines;
      continue;
    }
    Example ex;
    ex.line = s.line_no;
    std::optional<RowProblem> problem = s.format == Format::Tsv     ? s.parse_tsv(ex)
                                        : s.format == Format::Jsonl ? s.parse_jsonl(ex)
                                                                    : s.parse_text(ex);
    if (!problem) problem = s.check(ex);
    if (problem) {
      std::string message = s.where() + ": " + describe(*problem);
      if (s.spec.on_error == OnError::Fail) throw DataError(message);
      ++s.report.rows_skipped;
      if (s.report.problems.size() < s.spec.max_problems)
        s.report.problems.push_back(std::move(message));
      continue;
    }
    ++s.report.rows_read;
    example = std::move(ex);
    return true;
  }
  return false;
}

ReadReport read_dataset(const DatasetSpec& spec,
                        const std::function<void(Example&&)>& on_example) {
  DatasetReader reader(spec);
  Example ex;
  while (reader.next(ex)) on_example(std::move(ex));
  return reader.report();
}

Dataset read_all(const DatasetSpec& spec) {
  Dataset data;
  data.report = read_dataset(spec, [&](Example&& ex) { data.examples.push_back(std::move(ex)); });
  return data;
}

Dataset read_all(const std::vector<DatasetSpec>& specs) {
  Dataset out;
  for (const DatasetSpec& spec : specs) {
    Dataset part = read_all(spec);
    out.examples.insert(out.examples.end(), std::make_move_iterator(part.examples.begin()),
                        std::make_move_iterator(part.examples.end()));
    out.report.rows_read += part.report.rows_read;
    out.report.rows_skipped += part.report.rows_skipped;
    out.report.blank_lines += part.report.blank_lines;
    out.report.problems.insert(out.report.problems.end(), part.report.problems.begin(),
                               part.report.problems.end());
  }
  return out;
}

}  // namespace muki::core
