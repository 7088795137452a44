// A strict parser for one flat JSON object: {"key": value, ...} where every value is a string,
// number, true, false or null (RFC 8259 grammar; no nesting). It is what a JSONL data line is.
// Strings are fully unescaped (\" \\ \/ \b \f \n \r \t \uXXXX, surrogate pairs joined) and must
// be valid UTF-8; lone surrogates, raw control characters, duplicate keys, nested arrays/objects
// and anything after the closing brace are errors.
#pragma once

#include <cstddef>
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

}  // namespace muki::core
