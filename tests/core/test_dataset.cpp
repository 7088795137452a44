#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include <gtest/gtest.h>

#include <muki/data/dataset.h>
#include <muki/data/jsonl_row.h>
#include <muki/io/json.h>
#include <muki/text/utf8.h>

namespace fs = std::filesystem;
using namespace muki::core;

namespace {

// A scratch folder per test, removed afterwards.
class Dataset_ : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("muki_dataset_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::string& content) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }

  // The DataError message read_all throws, or "no error".
  static std::string error_of(const DatasetSpec& spec) {
    try {
      read_all(spec);
    } catch (const DataError& e) {
      return e.what();
    }
    return "no error";
  }

  DatasetSpec labeled(const fs::path& p) {
    DatasetSpec spec;
    spec.path = p;
    spec.label_field = "label";
    spec.group_field = "group";
    return spec;
  }

  fs::path dir_;
};

}  // namespace

// ---- UTF-8 and the flat JSON parser --------------------------------------------------------

TEST(DatasetUtf8, FindsTheFirstInvalidByte) {
  EXPECT_FALSE(utf8::find_invalid("plain ascii").has_value());
  EXPECT_FALSE(utf8::find_invalid("héllo 中文 🙂").has_value());
  EXPECT_EQ(utf8::find_invalid("ab\xff"), 2u);
  EXPECT_EQ(utf8::find_invalid("a\xc3"), 1u);               // truncated
  EXPECT_EQ(utf8::find_invalid("\xc0\xaf"), 0u);            // overlong '/'
  EXPECT_EQ(utf8::find_invalid("x\xed\xa0\x80"), 1u);       // encoded surrogate U+D800
  EXPECT_EQ(utf8::find_invalid("\xf4\x90\x80\x80"), 0u);    // above U+10FFFF
  EXPECT_EQ(utf8::find_invalid("é\x80"), 2u);               // stray continuation byte
  EXPECT_EQ(utf8::decode("a\xff" "b"), std::u32string(U"a\uFFFDb"));
  EXPECT_EQ(utf8::encode(U"é🙂"), "é🙂");
}

TEST(DatasetJson, ParsesFlatObjectsWithEscapes) {
  const auto members = parse_flat_json_object(
      R"( {"text": "a \"q\" \\ \/ \b\f\n\r\t \u00e9 \ud83d\ude00 中", "n": -1.5e3, "t": true, "f": false, "z": null} )");
  ASSERT_EQ(members.size(), 5u);
  EXPECT_EQ(members[0].first, "text");
  EXPECT_EQ(members[0].second.text, "a \"q\" \\ / \b\f\n\r\t é 😀 中");
  EXPECT_EQ(members[1].second.type, JsonScalar::Type::Number);
  EXPECT_EQ(members[1].second.text, "-1.5e3");
  EXPECT_EQ(members[2].second.type, JsonScalar::Type::Bool);
  EXPECT_EQ(members[3].second.text, "false");
  EXPECT_EQ(members[4].second.type, JsonScalar::Type::Null);
  EXPECT_TRUE(parse_flat_json_object("{}").empty());
  EXPECT_EQ(json_quote("a\"b\\\n\x01"), "\"a\\\"b\\\\\\n\\u0001\"");
}

TEST(DatasetJson, RejectsWhatIsNotStrictFlatJson) {
  const auto error = [](std::string_view text) -> std::string {
    try {
      parse_flat_json_object(text);
    } catch (const JsonError& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_EQ(error(R"({"a" 1})"), "byte 6: expected ':' after a key");
  EXPECT_EQ(error(R"({"a": 1,})"), "byte 9: expected a string key");
  EXPECT_EQ(error(R"({"a": 1} x)"), "byte 10: unexpected text after the closing '}'");
  EXPECT_EQ(error(R"({"a": [1]})"),
            "byte 7: nested objects and arrays are not supported (flat objects only) (key 'a')");
  EXPECT_EQ(error(R"({"a": 01})"), "byte 8: leading zeros are not allowed in a number (key 'a')");
  EXPECT_EQ(error(R"({"a": 1, "a": 2})"), "byte 10: duplicate key 'a'");
  EXPECT_EQ(error(R"({"a": "x\ud800"})"),
            "byte 9: high surrogate not followed by a \\u low surrogate (key 'a')");
  EXPECT_EQ(error(R"({"a": "\udc00"})"), "byte 8: lone low surrogate in \\u escape (key 'a')");
  EXPECT_EQ(error(R"({"a": "\x"})"), "byte 8: invalid escape '\\x' (key 'a')");
  EXPECT_EQ(error("{\"a\": \"tab\there\"}"),
            "byte 11: raw control character in a string (escape it) (key 'a')");
  EXPECT_EQ(error(R"({"a": "open)"), "byte 7: unterminated string (key 'a')");
  EXPECT_EQ(error(R"({"a": tru})"), "byte 7: expected a value (key 'a')");
  EXPECT_EQ(error(R"({"a": 1)"), "byte 8: expected ',' or '}' after a value, found the end of the line");
  EXPECT_EQ(error("[1]"), "byte 1: expected '{' at the start of an object");
  EXPECT_EQ(error("{\"a\": \"\xff\"}"), "byte 8: invalid UTF-8 at byte 8 (key 'a')");
}

// ---- TSV --------------------------------------------------------------------------------

TEST_F(Dataset_, ReadsBuilderTsv) {
  const fs::path p = write("d.tsv",
                           "\xEF\xBB\xBFid\tgroup\tlabel\ttext\n"
                           "a1\tsrc-a\tgames\tA puzzle game with 中文 and émoji 🙂\r\n"
                           "\n"
                           "a2\tsrc-b\tsound\tAn audio editor.\n");
  const Dataset data = read_all(labeled(p));
  ASSERT_EQ(data.examples.size(), 2u);
  const Example& e = data.examples[0];
  EXPECT_EQ(e.id, "a1");
  EXPECT_EQ(e.group, "src-a");
  EXPECT_EQ(e.label, "games");
  EXPECT_EQ(e.text, "A puzzle game with 中文 and émoji 🙂");  // CR of the CRLF removed
  EXPECT_EQ(e.line, 2u);
  EXPECT_EQ(data.examples[1].line, 4u);
  EXPECT_EQ(data.report.rows_read, 2u);
  EXPECT_EQ(data.report.rows_skipped, 0u);
  EXPECT_EQ(data.report.blank_lines, 1u);
}

TEST_F(Dataset_, UnlabeledSpecNeverReadsTheLabel) {
  const fs::path p = write("d.tsv", "id\tgroup\tlabel\ttext\nx\tg\t\tsome text\n");
  DatasetSpec spec;
  spec.path = p;  // no label field: the empty label is not a problem
  const Dataset data = read_all(spec);
  ASSERT_EQ(data.examples.size(), 1u);
  EXPECT_FALSE(data.examples[0].label.has_value());
  EXPECT_EQ(data.examples[0].id, "x");  // the "id" column, found by default
  EXPECT_EQ(data.examples[0].group, "");

  // Without an id column, the id is the line number.
  const fs::path q = write("t.tsv", "text\nfirst\nsecond\n");
  spec.path = q;
  const Dataset d2 = read_all(spec);
  ASSERT_EQ(d2.examples.size(), 2u);
  EXPECT_EQ(d2.examples[1].id, "3");
}

TEST_F(Dataset_, TsvErrorMessages) {
  // Bad encoding: byte 11 of line 2 is in the text column.
  fs::path p = write("enc.tsv", "id\tgroup\tlabel\ttext\na\tg\tx\tcaf\xe9 au lait\n");
  EXPECT_EQ(error_of(labeled(p)), p.string() + ":2: invalid UTF-8 at byte 10 (field 'text')");

  p = write("cols.tsv", "id\ttext\na\thello\n");
  EXPECT_EQ(error_of(labeled(p)),
            p.string() + ":1: missing column 'label' in the header (columns: id, text)");

  p = write("count.tsv", "id\tgroup\tlabel\ttext\na\tg\tx\tok\nb\tg\tno tab here\n");
  EXPECT_EQ(error_of(labeled(p)), p.string() + ":3: expected 4 tab-separated fields, found 3");
  p = write("count2.tsv", "id\tgroup\tlabel\ttext\na\tg\tx\ttext\twith a tab\n");
  EXPECT_EQ(error_of(labeled(p)), p.string() + ":2: expected 4 tab-separated fields, found 5");

  p = write("empty.tsv", "id\tgroup\tlabel\ttext\na\tg\tx\t   \n");
  EXPECT_EQ(error_of(labeled(p)), p.string() + ":2: empty text (field 'text')");

  p = write("nolabel.tsv", "id\tgroup\tlabel\ttext\na\tg\t\tsome text\n");
  EXPECT_EQ(error_of(labeled(p)), p.string() + ":2: empty label (field 'label')");

  p = write("unknown.tsv", "id\tgroup\tlabel\ttext\na\tg\tgames\tok\nb\tg\tmusic\tok\n");
  DatasetSpec spec = labeled(p);
  spec.labels = {"games", "sound"};
  EXPECT_EQ(error_of(spec),
            p.string() + ":3: unknown label 'music', expected one of: games, sound (field 'label')");

  p = write("dup.tsv", "id\ttext\tlabel\ttext\n");
  EXPECT_EQ(error_of(labeled(p)),
            p.string() + ":1: duplicate column 'text' in the header (columns 2 and 4)");

  p = write("nothing.tsv", "");
  EXPECT_EQ(error_of(labeled(p)), p.string() + ": empty file, expected a header line");

  spec.path = dir_ / "missing.tsv";
  EXPECT_EQ(error_of(spec), spec.path.string() + ": cannot open data file");

  spec.path = write("data.csv", "text\nx\n");
  EXPECT_EQ(error_of(spec), spec.path.string() +
                                ": cannot tell the format from the extension '.csv' (set format = "
                                "\"tsv\", \"jsonl\" or \"text\")");
  spec.format = "tsv";  // an explicit format wins over the extension
  spec.label_field.clear();
  spec.group_field.clear();
  EXPECT_EQ(error_of(spec), "no error");
}

TEST_F(Dataset_, SkipModeCountsAndReportsEveryDroppedRow) {
  const fs::path p = write("mixed.tsv",
                           "id\tgroup\tlabel\ttext\n"
                           "1\tg\tgames\tgood one\n"
                           "2\tg\tgames\t\n"                // empty text
                           "3\tg\tmusic\tunknown label\n"   // unknown label
                           "4\tg\tsound\tbad \xff byte\n"   // bad UTF-8
                           "5\tg\tsound\n"                  // 3 fields
                           "6\tg\tsound\tgood two\n");
  DatasetSpec spec = labeled(p);
  spec.labels = {"games", "sound"};
  spec.on_error = OnError::Skip;
  spec.max_problems = 3;
  const Dataset data = read_all(spec);
  ASSERT_EQ(data.examples.size(), 2u);
  EXPECT_EQ(data.examples[0].id, "1");
  EXPECT_EQ(data.examples[1].id, "6");
  EXPECT_EQ(data.report.rows_read, 2u);
  EXPECT_EQ(data.report.rows_skipped, 4u);
  ASSERT_EQ(data.report.problems.size(), 3u);  // all 4 counted, the first 3 kept
  EXPECT_EQ(data.report.problems[0], p.string() + ":3: empty text (field 'text')");
  EXPECT_EQ(data.report.problems[1],
            p.string() + ":4: unknown label 'music', expected one of: games, sound (field 'label')");
  EXPECT_EQ(data.report.problems[2], p.string() + ":5: invalid UTF-8 at byte 15 (field 'text')");
  const std::string summary = data.report.summary(p);
  EXPECT_NE(summary.find("2 rows read, 4 skipped"), std::string::npos) << summary;
  EXPECT_NE(summary.find("... and 1 more"), std::string::npos) << summary;

  // Header problems are never skipped.
  spec.path = write("bad_header.tsv", "id\ttext\n1\tx\n");
  EXPECT_THROW(read_all(spec), DataError);
}

TEST_F(Dataset_, StreamingReaderAndCallback) {
  const fs::path p = write("s.tsv", "id\tgroup\tlabel\ttext\n1\tg\ta\tone\n2\tg\tb\ttwo\n");
  DatasetReader reader(labeled(p));
  Example e;
  ASSERT_TRUE(reader.next(e));
  EXPECT_EQ(e.text, "one");
  ASSERT_TRUE(reader.next(e));
  EXPECT_EQ(e.label, "b");
  EXPECT_FALSE(reader.next(e));
  EXPECT_EQ(reader.report().rows_read, 2u);

  std::vector<std::string> ids;
  const ReadReport report = read_dataset(labeled(p), [&](Example&& ex) { ids.push_back(ex.id); });
  EXPECT_EQ(ids, (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(report.rows_read, 2u);
}

// ---- JSONL ------------------------------------------------------------------------------

TEST_F(Dataset_, ReadsJsonl) {
  const fs::path p = write("d.jsonl",
                           R"({"id": 17, "text": "caf\u00e9 \"quoted\"\nnext \ud83d\ude00", "label": "games", "extra": [1]})"
                           "\n"
                           "\n"
                           R"({"text": "no id here", "label": 3, "score": 0.5, "ok": true})"
                           "\n");
  // "extra": [1] is nested: a problem, even though the key is not requested.
  DatasetSpec spec;
  spec.path = p;
  spec.label_field = "label";
  EXPECT_EQ(error_of(spec),
            p.string() +
                ":1: invalid JSON at byte 90: nested objects and arrays are not supported (flat "
                "objects only) (field 'extra')");

  const fs::path q = write("e.jsonl",
                           R"({"id": 17, "text": "caf\u00e9 \"quoted\"\nnext \ud83d\ude00", "label": "games"})"
                           "\n"
                           "   \n"
                           R"({"text": "no id here", "label": 3, "score": 0.5, "ok": true})"
                           "\n");
  spec.path = q;
  const Dataset data = read_all(spec);
  ASSERT_EQ(data.examples.size(), 2u);
  EXPECT_EQ(data.examples[0].id, "17");  // numbers kept as written
  EXPECT_EQ(data.examples[0].text, "café \"quoted\"\nnext 😀");
  EXPECT_EQ(data.examples[0].label, "games");
  EXPECT_EQ(data.examples[1].id, "3");  // no "id" key: the line number
  EXPECT_EQ(data.examples[1].label, "3");
  EXPECT_EQ(data.report.blank_lines, 1u);
}

TEST_F(Dataset_, JsonlErrorMessages) {
  DatasetSpec spec;
  spec.path = write("syntax.jsonl", "{\"text\": \"fine\"}\n{\"text\" \"no colon\"}\n");
  EXPECT_EQ(error_of(spec),
            spec.path.string() + ":2: invalid JSON at byte 9: expected ':' after a key");

  spec.path = write("missing.jsonl", "{\"body\": \"x\"}\n");
  EXPECT_EQ(error_of(spec), spec.path.string() + ":1: missing field (field 'text')");

  spec.path = write("type.jsonl", "{\"text\": 12}\n");
  EXPECT_EQ(error_of(spec), spec.path.string() + ":1: expected a string, found 12 (field 'text')");

  spec.path = write("null.jsonl", "{\"text\": \"x\", \"label\": null}\n");
  spec.label_field = "label";
  EXPECT_EQ(error_of(spec), spec.path.string() + ":1: field is null (field 'label')");

  spec.path = write("enc.jsonl", "{\"text\": \"bad \xc3\x28\"}\n");
  EXPECT_EQ(error_of(spec), spec.path.string() + ":1: invalid UTF-8 at byte 15 (field 'text')");

  spec.path = write("surrogate.jsonl", R"({"text": "lone \udc00"})" "\n");
  EXPECT_EQ(error_of(spec), spec.path.string() +
                                ":1: invalid JSON at byte 16: lone low surrogate in \\u escape "
                                "(field 'text')");

  spec.path = write("empty.jsonl", R"({"text": " \n ", "label": "a"})" "\n");
  EXPECT_EQ(error_of(spec), spec.path.string() + ":1: empty text (field 'text')");

  spec.path = write("unknown.jsonl", R"({"text": "t", "label": "z"})" "\n");
  spec.labels = {"a", "b"};
  EXPECT_EQ(error_of(spec), spec.path.string() +
                                ":1: unknown label 'z', expected one of: a, b (field 'label')");

  spec.path = write("explicit_id.jsonl", R"({"text": "t", "label": "a"})" "\n");
  spec.id_field = "uid";
  EXPECT_EQ(error_of(spec), spec.path.string() + ":1: missing field (field 'uid')");
}

TEST_F(Dataset_, JsonlSkipMode) {
  DatasetSpec spec;
  spec.path = write("m.jsonl",
                    "{\"text\": \"one\"}\n"
                    "not json\n"
                    "{\"text\": \"\"}\n"
                    "{\"text\": \"two\"}\n");
  spec.on_error = OnError::Skip;
  const Dataset data = read_all(spec);
  EXPECT_EQ(data.report.rows_read, 2u);
  EXPECT_EQ(data.report.rows_skipped, 2u);
  ASSERT_EQ(data.report.problems.size(), 2u);
  EXPECT_EQ(data.report.problems[0],
            spec.path.string() + ":2: invalid JSON at byte 1: expected '{' at the start of an object");
  EXPECT_EQ(data.report.problems[1], spec.path.string() + ":3: empty text (field 'text')");
}

// ---- A real data file, when the dataset builder has produced it -----------------------------

TEST(DatasetReal, ReadsDdtpEnglishTrainSplit) {
  const fs::path p = fs::path(MUKI_TEST_SOURCE_DIR) / "data/ddtp-en/train.tsv";
  if (!fs::exists(p)) GTEST_SKIP() << p << " not built (scripts/data/)";
  DatasetSpec spec;
  spec.path = p;
  spec.label_field = "label";
  spec.group_field = "group";
  spec.id_field = "id";
  const Dataset data = read_all(spec);  // Fail mode: the builder's output must be clean
  EXPECT_GT(data.examples.size(), 100u);
  EXPECT_EQ(data.report.rows_skipped, 0u);
  for (const Example& e : data.examples) {
    ASSERT_FALSE(e.id.empty()) << p << ":" << e.line;
    ASSERT_FALSE(e.label->empty()) << p << ":" << e.line;
    ASSERT_EQ(e.text.find('\t'), std::string::npos);
  }
}

TEST_F(Dataset_, TextFilesHoldOneTextALine) {
  // Tabs are text here, blank lines are skipped, the id is the line number; a .txt is text.
  const fs::path p = write("corpus.txt", "\xEF\xBB\xBF" "first text\tstill first\r\n\n   \nsecond\n");
  DatasetSpec spec;
  spec.path = p;
  const Dataset data = read_all(spec);
  ASSERT_EQ(data.examples.size(), 2u);
  EXPECT_EQ(data.examples[0].text, "first text\tstill first");
  EXPECT_EQ(data.examples[0].id, "1");
  EXPECT_EQ(data.examples[1].text, "second");
  EXPECT_EQ(data.examples[1].id, "4");
  EXPECT_EQ(data.report.blank_lines, 2u);
  // Bad bytes are reported at their line; a text file has no label to read.
  spec.path = write("bad.txt", "good\nbad \xFF byte\n");
  EXPECT_EQ(error_of(spec), spec.path.string() + ":2: invalid UTF-8 at byte 5 (field 'text')");
  spec.path = p;
  spec.label_field = "label";
  EXPECT_EQ(error_of(spec), p.string() + ": format \"text\" (one text a line) has no field 'label'; use tsv "
                                         "or jsonl for labeled data");
}
