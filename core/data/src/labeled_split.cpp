#include "muki/data/labeled_split.h"

#include <stdexcept>

namespace muki::core {

int64_t LabeledSplit::left_out() const {
  int64_t n = 0;
  for (const auto& [label, count] : unknown) n += count;
  return n;
}

LabeledSplit map_onto(const Dataset& data, const LabelSpace& labels) {
  LabeledSplit out;
  for (const Example& e : data.examples) {
    if (!e.label) throw std::invalid_argument("map_onto: example " + e.id + " has no label");
    if (!labels.contains(*e.label)) {
      ++out.unknown[*e.label];
      continue;
    }
    out.ids.push_back(e.id);
    out.texts.push_back(e.text);
    out.gold.push_back(static_cast<int64_t>(labels.index_of(*e.label)));
  }
  return out;
}

}  // namespace muki::core
