#include <muki/data/label_space.h>

#include <algorithm>
#include <stdexcept>

namespace muki::core {

LabelSpace::LabelSpace(const std::vector<std::vector<std::string>>& teacher_labels) {
  label_maps_.reserve(teacher_labels.size());
  for (std::size_t t = 0; t < teacher_labels.size(); ++t) {
    std::vector<int64_t> map;
    map.reserve(teacher_labels[t].size());
    for (const std::string& name : teacher_labels[t]) {
      if (name.empty())
        throw std::invalid_argument("teacher " + std::to_string(t) + " has an empty label name");
      auto [it, inserted] = index_.emplace(name, names_.size());
      if (inserted) {
        names_.push_back(name);
        owners_.emplace_back();
      }
      std::vector<std::size_t>& owners = owners_[it->second];
      if (!owners.empty() && owners.back() == t)
        throw std::invalid_argument("teacher " + std::to_string(t) + " lists label '" + name +
                                    "' twice");
      owners.push_back(t);
      map.push_back(static_cast<int64_t>(it->second));
    }
    label_maps_.push_back(std::move(map));
  }
}

std::size_t LabelSpace::index_of(std::string_view name) const {
  if (const auto it = index_.find(std::string(name)); it != index_.end()) return it->second;
  std::string known;
  for (const std::string& n : names_) known += (known.empty() ? "" : ", ") + n;
  throw std::out_of_range("unknown label '" + std::string(name) + "' (known labels: " +
                          (known.empty() ? "none" : known) + ")");
}

bool LabelSpace::contains(std::string_view name) const {
  return index_.count(std::string(name)) != 0;
}

const std::vector<int64_t>& LabelSpace::label_map(std::size_t teacher) const {
  if (teacher >= label_maps_.size())
    throw std::out_of_range("teacher " + std::to_string(teacher) + " out of range (" +
                            std::to_string(label_maps_.size()) + " teachers)");
  return label_maps_[teacher];
}

int64_t LabelSpace::local_index(std::size_t teacher, int64_t union_index) const {
  const std::vector<int64_t>& map = label_map(teacher);
  const auto it = std::find(map.begin(), map.end(), union_index);
  return it == map.end() ? -1 : static_cast<int64_t>(it - map.begin());
}

const std::vector<std::size_t>& LabelSpace::owners(std::size_t union_index) const {
  if (union_index >= owners_.size())
    throw std::out_of_range("union label index " + std::to_string(union_index) +
                            " out of range (" + std::to_string(owners_.size()) + " labels)");
  return owners_[union_index];
}

}  // namespace muki::core
