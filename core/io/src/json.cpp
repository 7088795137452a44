#include "muki/io/json.h"

#include <cmath>
#include <fstream>
#include <stdexcept>

#include "muki/io/number_text.h"

namespace muki::core {

namespace {

std::string scalar_text(const Json& value) {
  if (value.is_number_float()) {
    const double v = value.get<double>();
    return std::isfinite(v) ? shortest_number(v) : "null";
  }
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

void append(std::string& out, const Json& value) {
  if (value.is_object()) {
    out += '{';
    for (auto it = value.begin(); it != value.end(); ++it) {
      if (it != value.begin()) out += ", ";
      out += json_quote(it.key()) + ": ";
      append(out, it.value());
    }
    out += '}';
  } else if (value.is_array()) {
    out += '[';
    for (auto it = value.begin(); it != value.end(); ++it) {
      if (it != value.begin()) out += ", ";
      append(out, *it);
    }
    out += ']';
  } else {
    out += scalar_text(value);
  }
}

}  // namespace

std::string json_line(const Json& value) {
  std::string out;
  append(out, value);
  return out;
}

std::string json_lines(const Json& object) {
  if (!object.is_object() || object.empty()) return json_line(object) + "\n";
  std::string out = "{";
  for (auto it = object.begin(); it != object.end(); ++it) {
    out += it == object.begin() ? "\n  " : ",\n  ";
    out += json_quote(it.key()) + ": ";
    append(out, it.value());
  }
  return out + "\n}\n";
}

std::string json_quote(std::string_view text) { return scalar_text(Json(text)); }

Json read_json_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(file.string() + ": cannot be read");
  try {
    return Json::parse(in);
  } catch (const Json::parse_error& e) {
    throw std::runtime_error(file.string() + ": not JSON: " + e.what());
  }
}

}  // namespace muki::core
