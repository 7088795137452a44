// One row of a JSONL data file (dataset.h): a flat JSON object {"key": value, ...} whose values
// are strings, numbers, true, false or null (RFC 8259 grammar; no nesting). The parser is strict
// and says where a row is wrong, by byte and key, so that one bad line among thousands can be
// found and fixed; nlohmann-json (json.h, for the files muki writes itself) accepts duplicate keys
// and nesting and reports neither. Strings are fully unescaped (\" \\ \/ \b \f \n \r \t
// \uXXXX, surrogate pairs joined) and must be valid UTF-8; lone surrogates, raw control
// characters, duplicate keys, nested arrays/objects and anything after the closing brace are
// errors.
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

}  // namespace muki::core
