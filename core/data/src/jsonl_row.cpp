#include <muki/data/jsonl_row.h>

#include <algorithm>
#include <unordered_set>

#include <muki/text/utf8.h>

namespace muki::core {

JsonError::JsonError(Kind kind, std::size_t byte, std::string message, std::string key)
    : std::runtime_error("byte " + std::to_string(byte) + ": " + message +
                         (key.empty() ? std::string() : " (key '" + key + "')")),
      kind_(kind),
      byte_(byte),
      message_(std::move(message)),
      key_(std::move(key)) {}

namespace {

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  std::vector<std::pair<std::string, JsonScalar>> object() {
    std::vector<std::pair<std::string, JsonScalar>> members;
    std::unordered_set<std::string> seen;
    skip_ws();
    expect('{', "expected '{' at the start of an object");
    skip_ws();
    if (peek() == '}') {
      ++i_;
    } else {
      for (;;) {
        skip_ws();
        if (peek() != '"') fail("expected a string key");
        const std::size_t key_at = i_;
        std::string key = string();
        if (!seen.insert(key).second) fail_at(key_at, "duplicate key '" + key + "'");
        skip_ws();
        expect(':', "expected ':' after a key");
        skip_ws();
        key_ = key;
        JsonScalar value = scalar();
        key_.clear();
        members.emplace_back(std::move(key), std::move(value));
        skip_ws();
        if (peek() == ',') {
          ++i_;
          continue;
        }
        expect('}', "expected ',' or '}' after a value");
        break;
      }
    }
    skip_ws();
    if (i_ != s_.size()) fail("unexpected text after the closing '}'");
    return members;
  }

 private:
  [[noreturn]] void fail_at(std::size_t at, std::string message,
                            JsonError::Kind kind = JsonError::Kind::Syntax) {
    throw JsonError(kind, at + 1, std::move(message), key_);
  }
  [[noreturn]] void fail(std::string message) { fail_at(i_, std::move(message)); }

  // The next byte, or '\0' at the end (a raw NUL in the text is an error wherever it appears).
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  bool at_end() const { return i_ >= s_.size(); }

  void expect(char c, const char* message) {
    if (at_end() || s_[i_] != c) fail(at_end() ? std::string(message) + ", found the end of the line"
                                               : message);
    ++i_;
  }

  void skip_ws() {
    while (!at_end() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }

  JsonScalar scalar() {
    JsonScalar v;
    const char c = peek();
    if (c == '"') {
      v.type = JsonScalar::Type::String;
      v.text = string();
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      v.type = JsonScalar::Type::Number;
      v.text = number();
    } else if (literal("true")) {
      v.type = JsonScalar::Type::Bool;
      v.text = "true";
    } else if (literal("false")) {
      v.type = JsonScalar::Type::Bool;
      v.text = "false";
    } else if (literal("null")) {
      v.type = JsonScalar::Type::Null;
      v.text = "null";
    } else if (c == '{' || c == '[') {
      fail("nested objects and arrays are not supported (flat objects only)");
    } else {
      fail(at_end() ? "expected a value, found the end of the line" : "expected a value");
    }
    return v;
  }

  bool literal(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }

  std::string number() {
    const std::size_t start = i_;
    const auto digits = [&] {
      const std::size_t from = i_;
      while (!at_end() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
      return i_ - from;
    };
    if (peek() == '-') ++i_;
    if (peek() == '0') {
      ++i_;
      if (peek() >= '0' && peek() <= '9') fail("leading zeros are not allowed in a number");
    } else if (digits() == 0) {
      fail("expected a digit");
    }
    if (peek() == '.') {
      ++i_;
      if (digits() == 0) fail("expected a digit after '.'");
    }
    if (peek() == 'e' || peek() == 'E') {
      ++i_;
      if (peek() == '+' || peek() == '-') ++i_;
      if (digits() == 0) fail("expected a digit in the exponent");
    }
    return std::string(s_.substr(start, i_ - start));
  }

  unsigned hex4() {
    if (i_ + 4 > s_.size()) fail("truncated \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = s_[i_];
      v <<= 4;
      if (h >= '0' && h <= '9') {
        v |= static_cast<unsigned>(h - '0');
      } else if (h >= 'a' && h <= 'f') {
        v |= static_cast<unsigned>(h - 'a' + 10);
      } else if (h >= 'A' && h <= 'F') {
        v |= static_cast<unsigned>(h - 'A' + 10);
      } else {
        fail("invalid hex digit in \\u escape");
      }
      ++i_;
    }
    return v;
  }

  // A string literal at i_ (the opening quote); returns its unescaped UTF-8 content.
  std::string string() {
    const std::size_t open = i_;
    ++i_;
    std::string out;
    for (;;) {
      if (at_end()) fail_at(open, "unterminated string");
      const unsigned char c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        ++i_;
        return out;
      }
      if (c < 0x20) fail("raw control character in a string (escape it)");
      if (c >= 0x80) {
        // Copy one UTF-8 sequence, validated.
        std::size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
        len = std::min(len, s_.size() - i_);
        if (!utf8::is_valid(s_.substr(i_, len)) || len == 1)
          fail_at(i_, "invalid UTF-8 at byte " + std::to_string(i_ + 1), JsonError::Kind::Utf8);
        out.append(s_.substr(i_, len));
        i_ += len;
        continue;
      }
      if (c != '\\') {
        out.push_back(static_cast<char>(c));
        ++i_;
        continue;
      }
      const std::size_t escape_at = i_;
      ++i_;
      if (at_end()) fail_at(open, "unterminated string");
      const char e = s_[i_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          char32_t cp = hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF)
            fail_at(escape_at, "lone low surrogate in \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (s_.substr(i_, 2) != "\\u")
              fail_at(escape_at, "high surrogate not followed by a \\u low surrogate");
            i_ += 2;
            const char32_t low = hex4();
            if (low < 0xDC00 || low > 0xDFFF)
              fail_at(escape_at, "high surrogate not followed by a \\u low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          utf8::append(out, cp);
          break;
        }
        default:
          fail_at(escape_at, std::string("invalid escape '\\") + e + "'");
      }
    }
  }

  std::string_view s_;
  std::size_t i_ = 0;
  std::string key_;  // the key whose value is being parsed
};

}  // namespace

std::vector<std::pair<std::string, JsonScalar>> parse_flat_json_object(std::string_view text) {
  return Parser(text).object();
}

}  // namespace muki::core
