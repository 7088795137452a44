#include <gtest/gtest.h>

#include <muki/data/label_space.h>
#include <muki/data/labeled_split.h>

using muki::core::LabelSpace;
using Lists = std::vector<std::vector<std::string>>;

TEST(LabelSpace, FirstAppearanceOrderKeepsTeacherBlocks) {
  const LabelSpace space({{"games", "sound", "graphics", "text"}, {"science", "math", "net", "admin"}});
  EXPECT_EQ(space.size(), 8u);
  EXPECT_EQ(space.num_teachers(), 2u);
  EXPECT_EQ(space.names(), (std::vector<std::string>{"games", "sound", "graphics", "text",
                                                     "science", "math", "net", "admin"}));
  EXPECT_EQ(space.label_map(0), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(space.label_map(1), (std::vector<int64_t>{4, 5, 6, 7}));
  EXPECT_EQ(space.index_of("net"), 6u);
  EXPECT_EQ(space.name(6), "net");
  EXPECT_EQ(space.owners(6), (std::vector<std::size_t>{1}));
}

TEST(LabelSpace, OverlappingNamesAreMerged) {
  const LabelSpace space({{"a", "b", "c"}, {"c", "d", "a"}, {"e"}});
  EXPECT_EQ(space.names(), (std::vector<std::string>{"a", "b", "c", "d", "e"}));
  EXPECT_EQ(space.label_map(0), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(space.label_map(1), (std::vector<int64_t>{2, 3, 0}));
  EXPECT_EQ(space.label_map(2), (std::vector<int64_t>{4}));
  // local_index inverts label_map: union label 0 is teacher 1's third label, and not teacher 2's.
  EXPECT_EQ(space.local_index(1, 0), 2);
  EXPECT_EQ(space.local_index(0, 2), 2);
  EXPECT_EQ(space.local_index(2, 0), -1);
  EXPECT_EQ(space.owners(0), (std::vector<std::size_t>{0, 1}));
  EXPECT_EQ(space.owners(1), (std::vector<std::size_t>{0}));
  EXPECT_EQ(space.owners(2), (std::vector<std::size_t>{0, 1}));
  EXPECT_EQ(space.owners(4), (std::vector<std::size_t>{2}));
  EXPECT_TRUE(space.contains("d"));
  EXPECT_FALSE(space.contains("D"));  // names are case-sensitive
}

TEST(LabelSpace, Errors) {
  const LabelSpace space({{"games", "sound"}, {"math"}});
  try {
    space.index_of("music");
    FAIL() << "expected std::out_of_range";
  } catch (const std::out_of_range& e) {
    EXPECT_STREQ(e.what(), "unknown label 'music' (known labels: games, sound, math)");
  }
  EXPECT_THROW(space.label_map(2), std::out_of_range);
  EXPECT_THROW(space.owners(3), std::out_of_range);

  try {
    LabelSpace(Lists{{"a"}, {"b", "c", "b"}});
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "teacher 1 lists label 'b' twice");
  }
  EXPECT_THROW(LabelSpace(Lists{{"a", ""}}), std::invalid_argument);

  const LabelSpace empty(Lists{});
  EXPECT_EQ(empty.size(), 0u);
  try {
    empty.index_of("x");
    FAIL();
  } catch (const std::out_of_range& e) {
    EXPECT_STREQ(e.what(), "unknown label 'x' (known labels: none)");
  }
}

TEST(LabeledSplit, UnknownLabelsAreLeftOutAndCounted) {
  const LabelSpace space({{"a", "b"}, {"c"}});
  muki::core::Dataset data;
  for (const char* label : {"c", "z", "a", "z", "y"}) {
    muki::core::Example e;
    e.id = "id-" + std::string(label);
    e.text = "text " + std::string(label);
    e.label = label;
    data.examples.push_back(e);
  }
  const auto split = muki::core::map_onto(data, space);
  EXPECT_EQ(split.gold, (std::vector<int64_t>{2, 0}));
  EXPECT_EQ(split.texts, (std::vector<std::string>{"text c", "text a"}));
  EXPECT_EQ(split.ids, (std::vector<std::string>{"id-c", "id-a"}));
  EXPECT_EQ(split.unknown, (std::map<std::string, int64_t>{{"y", 1}, {"z", 2}}));
  EXPECT_EQ(split.left_out(), 3);
  data.examples.front().label.reset();
  EXPECT_THROW(muki::core::map_onto(data, space), std::invalid_argument);
}
