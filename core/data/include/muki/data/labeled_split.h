// A labeled split mapped onto a label space (the union of the teachers' labels, or one teacher's
// own): the examples whose label the space holds, by index; the others are left out and counted
// by label, never dropped silently.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <muki/data/dataset.h>
#include <muki/data/label_space.h>

namespace muki::core {

struct LabeledSplit {
  std::vector<std::string> ids, texts;
  std::vector<int64_t> gold;               // indices into the label space
  std::map<std::string, int64_t> unknown;  // a label outside the space -> its examples left out

  int64_t left_out() const;
};

// Throws std::invalid_argument when an example has no label (the split was read unlabeled).
LabeledSplit map_onto(const Dataset& data, const LabelSpace& labels);

}  // namespace muki::core
