// Numbers as muki writes them into files, tables and command lines.
#pragma once

#include <string>

namespace muki::core {

// The shortest decimal text that reads back as exactly `value` (std::to_chars): "0.2", not
// "0.20000000000000001"; "1e-05"; "nan", "inf" and "-inf" for those.
std::string shortest_number(double value);

}  // namespace muki::core
