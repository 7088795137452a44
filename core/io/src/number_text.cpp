#include "muki/io/number_text.h"

#include <charconv>

namespace muki::core {

std::string shortest_number(double value) {
  char buf[32];  // the longest shortest form of a double is 24 characters
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, end);
}

}  // namespace muki::core
