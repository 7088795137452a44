#include "unicode.h"

#include <algorithm>
#include <iterator>

namespace muki::core::unicode {
namespace {

struct CodePointRange {
  char32_t first, last;
};
struct CodePointPair {
  char32_t from, to;
};
struct CodePointExpansion {
  char32_t from;
  char32_t to[4];  // zero-terminated when shorter than 4
};

#include "unicode_tables.inc"

template <std::size_t N>
bool in_ranges(const CodePointRange (&table)[N], char32_t cp) {
  const auto it = std::upper_bound(std::begin(table), std::end(table), cp,
                                   [](char32_t c, const CodePointRange& r) { return c < r.first; });
  return it != std::begin(table) && cp <= std::prev(it)->last;
}

template <typename T, std::size_t N>
const T* find_entry(const T (&table)[N], char32_t cp) {
  const auto it = std::lower_bound(std::begin(table), std::end(table), cp,
                                   [](const T& e, char32_t c) { return e.from < c; });
  return it != std::end(table) && it->from == cp ? &*it : nullptr;
}

void append_expansion(std::u32string& out, const CodePointExpansion& e) {
  for (char32_t c : e.to) {
    if (c == 0) break;
    out.push_back(c);
  }
}

// Unicode 15.0, section 3.13, Final_Sigma: C is preceded by a cased letter (skipping
// case-ignorable ones) and not followed by one.
bool is_final_sigma(const std::u32string& text, std::size_t i) {
  std::size_t j = i;
  bool before = false;
  while (j > 0) {
    const char32_t c = text[--j];
    if (is_case_ignorable(c)) continue;
    before = is_cased(c);
    break;
  }
  if (!before) return false;
  for (std::size_t k = i + 1; k < text.size(); ++k) {
    if (is_case_ignorable(text[k])) continue;
    return !is_cased(text[k]);
  }
  return true;
}

}  // namespace

bool is_nonspacing_mark(char32_t cp) { return in_ranges(kMnRanges, cp); }
bool is_punctuation_category(char32_t cp) { return in_ranges(kPunctRanges, cp); }
bool is_control_category(char32_t cp) { return in_ranges(kControlRanges, cp); }
bool is_space_separator(char32_t cp) { return in_ranges(kSpaceSepRanges, cp); }
bool is_cased(char32_t cp) { return in_ranges(kCasedRanges, cp); }
bool is_case_ignorable(char32_t cp) { return in_ranges(kCaseIgnorableRanges, cp); }

std::u32string to_lower(const std::u32string& text) {
  std::u32string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char32_t cp = text[i];
    if (cp < 0x80) {
      out.push_back(cp >= U'A' && cp <= U'Z' ? cp + 32 : cp);
    } else if (cp == 0x03A3) {
      out.push_back(is_final_sigma(text, i) ? 0x03C2 : 0x03C3);
    } else if (const auto* special = find_entry(kLowerSpecial, cp)) {
      append_expansion(out, *special);
    } else if (const auto* simple = find_entry(kLowerSimple, cp)) {
      out.push_back(simple->to);
    } else {
      out.push_back(cp);
    }
  }
  return out;
}

std::u32string decompose(const std::u32string& text) {
  // Hangul syllable decomposition, Unicode 15.0 section 3.12.
  constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
  constexpr char32_t kVCount = 21, kTCount = 28, kSCount = 19 * kVCount * kTCount;
  std::u32string out;
  out.reserve(text.size());
  for (char32_t cp : text) {
    if (cp < 0xC0) {
      out.push_back(cp);
    } else if (cp >= kSBase && cp < kSBase + kSCount) {
      const char32_t s = cp - kSBase;
      out.push_back(kLBase + s / (kVCount * kTCount));
      out.push_back(kVBase + (s % (kVCount * kTCount)) / kTCount);
      if (s % kTCount != 0) out.push_back(kTBase + s % kTCount);
    } else if (const auto* d = find_entry(kDecomposition, cp)) {
      append_expansion(out, *d);
    } else {
      out.push_back(cp);
    }
  }
  return out;
}

}  // namespace muki::core::unicode
