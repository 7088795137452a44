// A strict parser for one flat JSON object: {"key": value, ...} where every value is a string,
// number, true, false or null (RFC 8259 grammar; no nesting). It is what a JSONL data line is.
// Strings are fully unescaped (\" \\ \/ \b \f \n \r \t \uXXXX, surrogate pairs joined) and must
// be valid UTF-8; lone surrogates, raw control characters, duplicate keys, nested arrays/objects
// and anything after the closing brace are errors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace muki::core {

struct JsonScalar {
  enum class Type { String, Number, Bool, Null };
  Type type = Type::Null;
  // String: the unescaped UTF-8 text. Number: as written ("1e3"). Bool: "true"/"false".
  // Null: "null".
  std::string text;
};

// Thrown by parse_flat_json_object.
class JsonError : public std::runtime_error {
 public:
  enum class Kind { Syntax, Utf8 };
  JsonError(Kind kind, std::size_t byte, std::string message, std::string key);
  Kind kind() const { return kind_; }
  // 1-based byte position in the parsed text where the problem is.
  std::size_t byte() const { return byte_; }
  // What is wrong, without the position ("expected ':' after a key").
  const std::string& message() const { return message_; }
  // The key whose value was being parsed; empty when the problem is not inside a value.
  const std::string& key() const { return key_; }

 private:
  Kind kind_;
  std::size_t byte_;
  std::string message_, key_;
};

// The members in their order in the text. Throws JsonError.
std::vector<std::pair<std::string, JsonScalar>> parse_flat_json_object(std::string_view text);

// A JSON string literal (quotes included) for `text`, which must be valid UTF-8.
std::string json_quote(std::string_view text);

// The shortest decimal text that reads back as exactly `value` ("0.2", not "0.20000000000000001");
// "null" for NaN and infinities, which JSON cannot write.
std::string shortest_number(double value);

// Builds one flat JSON object, members in the order added: a metrics.jsonl line, a summary.json.
// What it writes, parse_flat_json_object reads back (keys are not checked for duplicates).
class FlatJsonWriter {
 public:
  FlatJsonWriter& add_string(std::string_view key, std::string_view value);
  // NaN and infinities have no JSON literal: they are written as null.
  FlatJsonWriter& add_number(std::string_view key, double value);
  FlatJsonWriter& add_int(std::string_view key, int64_t value);
  FlatJsonWriter& add_bool(std::string_view key, bool value);
  // Every member of another writer, in its order.
  FlatJsonWriter& add_all(const FlatJsonWriter& other);
  // "{"key": value, ...}" on one line.
  std::string str() const { return "{" + members_ + "}"; }

 private:
  FlatJsonWriter& raw(std::string_view key, const std::string& literal);
  std::string members_;
};

// Reads a file holding one flat JSON object (summary.json). Throws JsonError with the file's name
// in the message, or std::runtime_error when it cannot be read.
std::vector<std::pair<std::string, JsonScalar>> read_flat_json_file(const std::string& path);

}  // namespace muki::core
