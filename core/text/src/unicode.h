// Internal: the Unicode character properties BERT's BasicTokenizer uses, from tables generated
// out of the Unicode Character Database (scripts/gen-unicode-tables.py -> unicode_tables.inc).
// Not installed; used by wordpiece_tokenizer.cpp.
#pragma once

#include <string>

namespace muki::core::unicode {

bool is_nonspacing_mark(char32_t cp);  // general category Mn
bool is_punctuation_category(char32_t cp);  // general category P*
bool is_control_category(char32_t cp);  // Cc or Cf
bool is_space_separator(char32_t cp);  // Zs
bool is_cased(char32_t cp);
bool is_case_ignorable(char32_t cp);

// Full lowercase of `text` as Python's str.lower() does it: unconditional SpecialCasing entries
// (U+0130 -> "i\u0307") and the Final_Sigma rule for U+03A3; no locale-specific rules.
std::u32string to_lower(const std::u32string& text);

// Canonical decomposition (NFD) of every code point, Hangul syllables included. Canonical
// reordering of combining marks is not applied: callers here drop the marks afterwards.
std::u32string decompose(const std::u32string& text);

}  // namespace muki::core::unicode
