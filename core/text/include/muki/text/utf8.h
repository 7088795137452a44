// UTF-8 validation, decoding and encoding: the only text encoding muki reads or writes.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace muki::core::utf8 {

// Byte offset (0-based) of the first byte that does not start a well-formed UTF-8 sequence
// (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF, no truncated sequence);
// nullopt when the whole of `text` is valid.
std::optional<std::size_t> find_invalid(std::string_view text) noexcept;

inline bool is_valid(std::string_view text) noexcept { return !find_invalid(text).has_value(); }

// Decodes `text`. Each ill-formed sequence becomes one U+FFFD, so decoding never throws; validate
// first where bad input must be reported.
std::u32string decode(std::string_view text);

// Appends the UTF-8 encoding of `cp` (a scalar value; surrogates and values above U+10FFFF are
// written as U+FFFD).
void append(std::string& out, char32_t cp);

std::string encode(std::u32string_view text);

}  // namespace muki::core::utf8
