// The union label space Y = Y_1 ∪ ... ∪ Y_N built from the teachers' label lists.
//
// Order: first appearance, teacher by teacher, each teacher's labels in its own order. So a
// teacher whose labels are new keeps them contiguous (the per-teacher blocks UHC-style losses
// use), and the order does not change when a teacher is appended. Labels are merged by exact name
// (byte-wise, case-sensitive): the same name from two teachers is ONE union label, owned by both.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace muki::core {

class LabelSpace {
 public:
  // teacher_labels[i] = teacher i's label names, index = the teacher's own class index. Throws
  // std::invalid_argument on an empty name or a name listed twice by the same teacher (its
  // outputs would be ambiguous); the message names the teacher and the label.
  explicit LabelSpace(const std::vector<std::vector<std::string>>& teacher_labels);

  std::size_t size() const { return names_.size(); }
  std::size_t num_teachers() const { return label_maps_.size(); }
  // Union label names, index = union index.
  const std::vector<std::string>& names() const { return names_; }
  const std::string& name(std::size_t union_index) const { return names_.at(union_index); }

  // Union index of `name`. Throws std::out_of_range "unknown label 'x' (known labels: a, b, c)".
  std::size_t index_of(std::string_view name) const;
  bool contains(std::string_view name) const;

  // label_map(t)[j] = union index of teacher t's label j. Throws std::out_of_range on a bad t.
  const std::vector<int64_t>& label_map(std::size_t teacher) const;
  // The inverse: the j with label_map(t)[j] == union_index, or -1 when teacher t does not have
  // that label. Throws std::out_of_range on a bad t.
  int64_t local_index(std::size_t teacher, int64_t union_index) const;
  // Teachers that have union label `union_index`, ascending. Throws std::out_of_range.
  const std::vector<std::size_t>& owners(std::size_t union_index) const;

 private:
  std::vector<std::string> names_;
  std::unordered_map<std::string, std::size_t> index_;
  std::vector<std::vector<int64_t>> label_maps_;
  std::vector<std::vector<std::size_t>> owners_;
};

}  // namespace muki::core
