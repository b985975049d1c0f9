// topic_test.cpp: unit tests of ipcbus/topic.hpp (topic names, topic filters and
// matching), derived from section 4.7 of MQTT 3.1.1 and MQTT 5.0 and from their
// rules on UTF-8 encoded strings (1.5.3 in 3.1.1, 1.5.4 in 5.0). Also checks
// errc_name from ipcbus/result.hpp for the codes that topic checks return.
//
// The property test draws its cases from a seeded generator; it prints the seed
// and takes another one from the environment variable IPCBUS_TOPIC_SEED.

#include "ipcbus/topic.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <new>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "ipcbus/result.hpp"

// Counting replacements of the global allocation functions, so that a test can
// tell whether a call allocated. They count only while g_count_allocations is set.
// They are kept out of line: inlined into a caller, GCC mistakes the free() of
// malloc()ed memory for a mismatched deallocation (-Wmismatched-new-delete).
namespace {
std::atomic<bool> g_count_allocations{false};
std::atomic<long> g_allocations{0};
}  // namespace

[[gnu::noinline]] void* operator new(std::size_t size) {
  if (g_count_allocations.load(std::memory_order_relaxed)) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) {
    return p;
  }
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t /*size*/) noexcept {
  std::free(p);
}

namespace ipcbus {
namespace {

using namespace std::string_view_literals;

constexpr std::size_t kNoOffset = std::string_view::npos;

// Counts the allocations made while an object of this type lives.
class AllocationCounter {
 public:
  AllocationCounter() {
    g_allocations.store(0);
    g_count_allocations.store(true);
  }
  ~AllocationCounter() { g_count_allocations.store(false); }
  AllocationCounter(const AllocationCounter&) = delete;
  AllocationCounter& operator=(const AllocationCounter&) = delete;
  long count() const { return g_allocations.load(); }
};

// Renders a string with its non-printable and non-ASCII bytes as \xHH.
std::string printable(std::string_view s) {
  constexpr const char* kDigits = "0123456789ABCDEF";
  std::string out = "\"";
  for (const char ch : s) {
    const auto b = static_cast<unsigned char>(ch);
    if (b >= 0x20 && b < 0x7F && b != '\\' && b != '"') {
      out += ch;
    } else {
      out += "\\x";
      out += kDigits[b >> 4U];
      out += kDigits[b & 0x0FU];
    }
  }
  return out + "\"";
}

// Whether `message` says "at byte N" for exactly this N.
bool mentions_offset(const std::string& message, std::size_t at) {
  const std::string needle = "at byte " + std::to_string(at);
  for (std::size_t pos = message.find(needle); pos != std::string::npos;
       pos = message.find(needle, pos + 1)) {
    const std::size_t after = pos + needle.size();
    if (after == message.size() || message[after] < '0' || message[after] > '9') {
      return true;
    }
  }
  return false;
}

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

// ---------------------------------------------------------------------------
// An independent reference: split into levels, then match level by level.

std::vector<std::string> split_levels(std::string_view s) {
  std::vector<std::string> levels(1);
  for (const char ch : s) {
    if (ch == '/') {
      levels.emplace_back();
    } else {
      levels.back() += ch;
    }
  }
  return levels;
}

bool reference_match_levels(const std::vector<std::string>& filter, std::size_t i,
                            const std::vector<std::string>& topic, std::size_t j) {
  if (i == filter.size()) {
    return j == topic.size();
  }
  if (filter[i] == "#") {
    return true;  // this level and all below it, or none (the parent level)
  }
  if (j == topic.size()) {
    return false;
  }
  if (filter[i] != "+" && filter[i] != topic[j]) {
    return false;
  }
  return reference_match_levels(filter, i + 1, topic, j + 1);
}

bool reference_match(std::string_view filter, std::string_view topic) {
  if (topic.substr(0, 1) == "$" && (filter.substr(0, 1) == "+" || filter.substr(0, 1) == "#")) {
    return false;
  }
  return reference_match_levels(split_levels(filter), 0, split_levels(topic), 0);
}

// Reference validators for strings of ASCII without NUL (what the generator makes).
bool reference_valid_name(std::string_view s) {
  return !s.empty() && s.find_first_of("+#") == std::string_view::npos;
}

bool reference_valid_filter(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  const std::vector<std::string> levels = split_levels(s);
  for (std::size_t i = 0; i < levels.size(); ++i) {
    const std::string& level = levels[i];
    if (level.find_first_of("+#") == std::string::npos) {
      continue;
    }
    if (level == "+") {
      continue;
    }
    if (level == "#" && i + 1 == levels.size()) {
      continue;
    }
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------
// Valid topic names.

// MQTT 4.7.3: at least one character, spaces allowed, leading/trailing '/'
// makes a distinct name, "/" alone is valid, case matters; 1.5.4: any
// well-formed UTF-8 without U+0000 (control characters and non-characters are
// only "SHOULD NOT", so they are accepted; U+FEFF is a character, not stripped).
const std::string_view kValidNames[] = {
    "a"sv,
    "0"sv,
    "sport"sv,
    "sport/tennis/player1"sv,
    "sport/tennis/player1/ranking"sv,
    "sport/tennis/player1/score/wimbledon"sv,
    "/"sv,
    "//"sv,
    "///"sv,
    "/finance"sv,
    "finance/"sv,
    "/finance/"sv,
    "a//b"sv,
    "a/b/c/d/e/f/g/h/i/j"sv,
    "$SYS"sv,
    "$SYS/broker/clients/total"sv,
    "$"sv,
    "$/a"sv,
    "a/$"sv,
    "a$b"sv,
    "$share/group/topic"sv,
    " "sv,
    "a b"sv,
    "sport tennis/player 1"sv,
    "ACCOUNTS"sv,
    "Accounts payable"sv,
    "-_.~!@%^&*()=[]{};:'\",<>?\\|`"sv,
    "tab\there"sv,
    "\x01"sv,
    "\x1F"sv,
    "\x7F"sv,
    "\xC2\x80"sv,  // U+0080, a C1 control: SHOULD NOT, still valid
    "\xC2\x9F"sv,  // U+009F
    "\xC2\xA0"sv,  // U+00A0
    "\xC3\xA4"sv,  // U+00E4
    "Gr\xC3\xBC\xC3\x9F/x"sv,
    "a/\xC3\xA4/b"sv,
    "\xDF\xBF"sv,      // U+07FF, the largest 2-byte code point
    "\xE0\xA0\x80"sv,  // U+0800, the smallest 3-byte code point
    "\xE1\x80\x80"sv,  // U+1000
    "\xE2\x82\xAC"sv,  // U+20AC
    "\xE2\x80\x8B"sv,  // U+200B
    "\xE6\x97\xA5\xE6\x9C\xAC"sv,
    "\xEC\xBF\xBF"sv,      // U+CFFF
    "\xED\x9F\xBF"sv,      // U+D7FF, just below the surrogates
    "\xEE\x80\x80"sv,      // U+E000, just above the surrogates
    "\xEF\xBB\xBF"sv,      // U+FEFF, must not be skipped or stripped
    "\xEF\xBF\xBD"sv,      // U+FFFD
    "\xEF\xBF\xBF"sv,      // U+FFFF, a non-character: SHOULD NOT, still valid
    "\xF0\x90\x80\x80"sv,  // U+10000, the smallest 4-byte code point
    "\xF0\x9F\x98\x80"sv,  // U+1F600
    "\xF1\x80\x80\x80"sv,  // U+40000
    "\xF3\xBF\xBF\xBF"sv,  // U+FFFFF
    "\xF4\x80\x80\x80"sv,  // U+100000
    "\xF4\x8F\xBF\xBF"sv,  // U+10FFFF, the largest code point
    "sensors/\xE2\x84\x83/kitchen"sv,
};

class ValidTopicName : public testing::TestWithParam<std::string_view> {};

TEST_P(ValidTopicName, IsAccepted) {
  const Result<void> r = check_topic_name(GetParam());
  EXPECT_TRUE(r.has_value()) << printable(GetParam()) << ": " << r.error().message;
}

TEST_P(ValidTopicName, IsAlsoAValidFilter) {
  const Result<void> r = check_topic_filter(GetParam());
  EXPECT_TRUE(r.has_value()) << printable(GetParam()) << ": " << r.error().message;
}

TEST_P(ValidTopicName, MatchesItselfAsAFilter) {
  EXPECT_TRUE(filter_matches(GetParam(), GetParam())) << printable(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Mqtt, ValidTopicName, testing::ValuesIn(kValidNames));

// ---------------------------------------------------------------------------
// Invalid topic names and filters: the message must say why and where.

struct InvalidCase {
  std::string_view text;
  std::string_view reason;  // must appear in the message
  std::string_view detail;  // must appear too, unless empty
  std::size_t at;           // the message says "at byte <at>", unless kNoOffset
};

void PrintTo(const InvalidCase& c, std::ostream* os) {
  *os << printable(c.text) << " (" << c.reason << ")";
}

const InvalidCase kInvalidNames[] = {
    // 4.7.1: wildcards may be used in filters, MUST NOT be used in names.
    {"+"sv, "wildcard '+'", "only allowed in filters", 0},
    {"#"sv, "wildcard '#'", "only allowed in filters", 0},
    {"sport/+"sv, "wildcard '+'", "", 6},
    {"sport/#"sv, "wildcard '#'", "", 6},
    {"sport/tennis/#"sv, "wildcard '#'", "", 13},
    {"+/tennis"sv, "wildcard '+'", "", 0},
    {"a+b"sv, "wildcard '+'", "", 1},
    {"a#b"sv, "wildcard '#'", "", 1},
    {"sport/tennis+"sv, "wildcard '+'", "", 12},
    {"$SYS/#"sv, "wildcard '#'", "", 5},
    {"/+"sv, "wildcard '+'", "", 1},
    {"sport+/#"sv, "wildcard '+'", "", 5},  // the first one is reported
    {"\xC3\xA4+"sv, "wildcard '+'", "", 2},
    // 4.7.3: at least one character.
    {""sv, "empty", "", kNoOffset},
    // 4.7.3 and 1.5.4: no U+0000.
    {"\0"sv, "NUL", "", 0},
    {"a\0"sv, "NUL", "", 1},
    {"a\0b"sv, "NUL", "", 1},
    {"sport/\0"sv, "NUL", "", 6},
    {"\0+"sv, "NUL", "", 0},           // the first problem wins
    {"+\0"sv, "wildcard '+'", "", 0},  // the first problem wins
    // 1.5.4: well-formed UTF-8 only.
    {"\x80"sv, "UTF-8", "continuation byte 0x80", 0},
    {"\xBF"sv, "UTF-8", "continuation byte 0xBF", 0},
    {"a\x80"sv, "UTF-8", "continuation", 1},
    {"\xC3\xA4\x80"sv, "UTF-8", "continuation", 2},
    {"\xF0\x9F\x98\x80\x80"sv, "UTF-8", "continuation", 4},
    {"\xC0\x80"sv, "UTF-8", "0xC0", 0},  // the overlong NUL of "modified UTF-8"
    {"\xC0\xAF"sv, "UTF-8", "0xC0", 0},  // an overlong '/'
    {"\xC1\xBF"sv, "UTF-8", "0xC1", 0},
    {"\xF5\x80\x80\x80"sv, "UTF-8", "0xF5", 0},
    {"\xF7\xBF\xBF\xBF"sv, "UTF-8", "0xF7", 0},
    {"\xF8\x88\x80\x80\x80"sv, "UTF-8", "0xF8", 0},
    {"\xFC\x84\x80\x80\x80\x80"sv, "UTF-8", "0xFC", 0},
    {"\xFE"sv, "UTF-8", "0xFE", 0},
    {"\xFF"sv, "UTF-8", "0xFF", 0},
    {"\xE0\x80\x80"sv, "UTF-8", "overlong", 0},
    {"\xE0\x80\xAF"sv, "UTF-8", "overlong", 0},
    {"\xE0\x9F\xBF"sv, "UTF-8", "overlong", 0},
    {"\xF0\x80\x80\x80"sv, "UTF-8", "overlong", 0},
    {"\xF0\x8F\xBF\xBF"sv, "UTF-8", "overlong", 0},
    {"ok/\xF0\x80\x80\xAF"sv, "UTF-8", "overlong", 3},
    {"\xED\xA0\x80"sv, "UTF-8", "surrogate", 0},              // U+D800
    {"\xED\xAD\xBF"sv, "UTF-8", "surrogate", 0},              // U+DB7F
    {"\xED\xAE\x80"sv, "UTF-8", "surrogate", 0},              // U+DB80
    {"\xED\xB0\x80"sv, "UTF-8", "surrogate", 0},              // U+DC00
    {"\xED\xBF\xBF"sv, "UTF-8", "surrogate", 0},              // U+DFFF
    {"\xED\xA0\xBD\xED\xB8\x80"sv, "UTF-8", "surrogate", 0},  // a CESU-8 surrogate pair
    {"abcde\xED\xB0\x80"sv, "UTF-8", "surrogate", 5},
    {"\xF4\x90\x80\x80"sv, "UTF-8", "U+10FFFF", 0},
    {"\xF4\xBF\xBF\xBF"sv, "UTF-8", "U+10FFFF", 0},
    {"\xC3"sv, "UTF-8", "truncated", 0},
    {"a\xC3"sv, "UTF-8", "truncated", 1},
    {"\xE2"sv, "UTF-8", "truncated", 0},
    {"\xE2\x82"sv, "UTF-8", "truncated", 0},
    {"\xF0"sv, "UTF-8", "truncated", 0},
    {"\xF0\x9F"sv, "UTF-8", "truncated", 0},
    {"\xF0\x9F\x98"sv, "UTF-8", "truncated", 0},
    {"\xED\x9F"sv, "UTF-8", "truncated", 0},
    {"\xC3z"sv, "UTF-8", "truncated", 0},
    {"\xE2(\xA1"sv, "UTF-8", "truncated", 0},
    {"\xE2\x82/"sv, "UTF-8", "truncated", 0},
    {"\xF0\x9F\x98/"sv, "UTF-8", "truncated", 0},
    {"\xC3\xC3\xA4"sv, "UTF-8", "truncated", 0},
    {"ok/\xE2\x82"sv, "UTF-8", "truncated", 3},
    {"\xC3\0"sv, "UTF-8", "truncated", 0},
};

class InvalidTopicName : public testing::TestWithParam<InvalidCase> {};

TEST_P(InvalidTopicName, IsRejectedWithItsReason) {
  const InvalidCase& c = GetParam();
  const Result<void> r = check_topic_name(c.text);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kInvalidTopic);
  const std::string& message = r.error().message;
  EXPECT_EQ(message.rfind("topic name", 0), 0U) << message;
  EXPECT_TRUE(contains(message, c.reason)) << message;
  EXPECT_TRUE(contains(message, c.detail)) << message;
  if (c.at != kNoOffset) {
    EXPECT_TRUE(mentions_offset(message, c.at)) << message;
  }
}

INSTANTIATE_TEST_SUITE_P(Mqtt, InvalidTopicName, testing::ValuesIn(kInvalidNames));

// Every invalid name is an invalid filter too, except the ones whose only flaw
// is a wildcard in the right place.
class InvalidTopicNameAsFilter : public testing::TestWithParam<InvalidCase> {};

TEST_P(InvalidTopicNameAsFilter, IsRejectedWithTheSameReason) {
  const InvalidCase& c = GetParam();
  const Result<void> r = check_topic_filter(c.text);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kInvalidFilter);
  const std::string& message = r.error().message;
  EXPECT_EQ(message.rfind("topic filter", 0), 0U) << message;
  EXPECT_TRUE(contains(message, c.reason)) << message;
  EXPECT_TRUE(contains(message, c.detail)) << message;
  if (c.at != kNoOffset) {
    EXPECT_TRUE(mentions_offset(message, c.at)) << message;
  }
}

std::vector<InvalidCase> invalid_names_without_wildcards() {
  std::vector<InvalidCase> out;
  for (const InvalidCase& c : kInvalidNames) {
    if (!contains(std::string(c.reason), "wildcard")) {
      out.push_back(c);
    }
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Mqtt, InvalidTopicNameAsFilter,
                         testing::ValuesIn(invalid_names_without_wildcards()));

// ---------------------------------------------------------------------------
// Valid topic filters (4.7.1.2, 4.7.1.3, 4.7.2).

const std::string_view kValidFilters[] = {
    "#"sv,
    "+"sv,
    "+/+"sv,
    "+/+/+"sv,
    "/+"sv,
    "+/"sv,
    "/+/"sv,
    "+//+"sv,
    "a//+"sv,
    "/#"sv,
    "//#"sv,
    "+/#"sv,
    "+/+/#"sv,
    "/+/#"sv,
    "sport/#"sv,
    "sport/tennis/#"sv,
    "sport/tennis/player1/#"sv,
    "sport/+"sv,
    "sport/tennis/+"sv,
    "sport/+/player1"sv,
    "sport/+/#"sv,
    "+/tennis/#"sv,
    "+/monitor/Clients"sv,
    "a/+/b/+/c"sv,
    "$SYS/#"sv,
    "$SYS/monitor/+"sv,
    "$SYS/+/+"sv,
    "$SYS/+/#"sv,
    "$/#"sv,
    "$/+"sv,
    "$share/group/#"sv,
    "a b/+"sv,
    "+/ "sv,
    "\xC3\xA4/+/#"sv,
    "sensors/\xE2\x84\x83/#"sv,
    "+/\xF0\x9F\x98\x80"sv,
    "+/\xF4\x8F\xBF\xBF/#"sv,
};

class ValidTopicFilter : public testing::TestWithParam<std::string_view> {};

TEST_P(ValidTopicFilter, IsAccepted) {
  const Result<void> r = check_topic_filter(GetParam());
  EXPECT_TRUE(r.has_value()) << printable(GetParam()) << ": " << r.error().message;
}

TEST_P(ValidTopicFilter, IsNotAValidTopicName) {
  const Result<void> r = check_topic_name(GetParam());
  ASSERT_FALSE(r.has_value()) << printable(GetParam());
  EXPECT_TRUE(contains(r.error().message, "wildcard")) << r.error().message;
}

INSTANTIATE_TEST_SUITE_P(Mqtt, ValidTopicFilter, testing::ValuesIn(kValidFilters));

// ---------------------------------------------------------------------------
// Invalid topic filters.

constexpr std::string_view kPlusLevel = "'+' must occupy an entire level";
constexpr std::string_view kHashLevel = "'#' must occupy an entire level";
constexpr std::string_view kHashLast = "'#' must be the last level";

const InvalidCase kInvalidFilters[] = {
    // 4.7.1.2: '#' is a whole level and the last character of the filter.
    {"sport/tennis#"sv, kHashLevel, "", 12},
    {"sport/tennis/#/ranking"sv, kHashLast, "", 13},
    {"a/#/b"sv, kHashLast, "", 2},
    {"a#"sv, kHashLevel, "", 1},
    {"a/b#"sv, kHashLevel, "", 3},
    {"a/#b"sv, kHashLevel, "", 2},
    {"#a"sv, kHashLevel, "", 0},
    {"##"sv, kHashLevel, "", 0},
    {"#+"sv, kHashLevel, "", 0},
    {"#/"sv, kHashLast, "", 0},
    {"#/a"sv, kHashLast, "", 0},
    {"#/#"sv, kHashLast, "", 0},
    {"/#/"sv, kHashLast, "", 1},
    {"//#/"sv, kHashLast, "", 2},
    {"+/#/+"sv, kHashLast, "", 2},
    {"$SYS#"sv, kHashLevel, "", 4},
    {"$SYS/#/"sv, kHashLast, "", 5},
    {"sport/#/#"sv, kHashLast, "", 6},
    // 4.7.1.3: '+' occupies an entire level.
    {"a+"sv, kPlusLevel, "", 1},
    {"+a"sv, kPlusLevel, "", 0},
    {"++"sv, kPlusLevel, "", 0},
    {"+#"sv, kPlusLevel, "", 0},
    {"a/+b"sv, kPlusLevel, "", 2},
    {"a/b+"sv, kPlusLevel, "", 3},
    {"a/+b/c"sv, kPlusLevel, "", 2},
    {"+/a+"sv, kPlusLevel, "", 3},
    {"sport+"sv, kPlusLevel, "", 5},
    {"sport/+tennis"sv, kPlusLevel, "", 6},
    {"+sport/#"sv, kPlusLevel, "", 0},
    {"\xC3\xA4+"sv, kPlusLevel, "", 2},
    {"+\xC3\xA4"sv, kPlusLevel, "", 0},
    {"$+"sv, kPlusLevel, "", 1},
    // The string rules apply to filters as to names.
    {""sv, "empty", "", kNoOffset},
    {"\0"sv, "NUL", "", 0},
    {"a/\0/#"sv, "NUL", "", 2},
    {"+/\0"sv, "NUL", "", 2},
    {"+/\xC0\x80"sv, "UTF-8", "0xC0", 2},
    {"a/\xED\xA0\x80/#"sv, "UTF-8", "surrogate", 2},
    {"sport/\xE2\x82"sv, "UTF-8", "truncated", 6},
    {"\xF4\x90\x80\x80/#"sv, "UTF-8", "U+10FFFF", 0},
    {"\xE0\x80\x80/+"sv, "UTF-8", "overlong", 0},
    {"#/\xFF"sv, kHashLast, "", 0},  // the first problem wins
};

class InvalidTopicFilter : public testing::TestWithParam<InvalidCase> {};

TEST_P(InvalidTopicFilter, IsRejectedWithItsReason) {
  const InvalidCase& c = GetParam();
  const Result<void> r = check_topic_filter(c.text);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kInvalidFilter);
  const std::string& message = r.error().message;
  EXPECT_EQ(message.rfind("topic filter", 0), 0U) << message;
  EXPECT_TRUE(contains(message, c.reason)) << message;
  EXPECT_TRUE(contains(message, c.detail)) << message;
  if (c.at != kNoOffset) {
    EXPECT_TRUE(mentions_offset(message, c.at)) << message;
  }
}

TEST_P(InvalidTopicFilter, IsNotAValidTopicNameEither) {
  EXPECT_FALSE(check_topic_name(GetParam().text).has_value());
}

INSTANTIATE_TEST_SUITE_P(Mqtt, InvalidTopicFilter, testing::ValuesIn(kInvalidFilters));

// ---------------------------------------------------------------------------
// Exact messages, for the people who read them.

TEST(TopicMessage, WildcardInNameNamesTheWildcardAndItsByte) {
  EXPECT_EQ(
      check_topic_name("a/b/+").error().message,
      "topic name contains the wildcard '+' at byte 4; wildcards are only allowed in filters");
  EXPECT_EQ(
      check_topic_name("a/b/#").error().message,
      "topic name contains the wildcard '#' at byte 4; wildcards are only allowed in filters");
}

TEST(TopicMessage, EmptyNameAndFilterSaySo) {
  EXPECT_EQ(check_topic_name("").error().message, "topic name is empty");
  EXPECT_EQ(check_topic_filter("").error().message, "topic filter is empty");
}

TEST(TopicMessage, TooLongGivesTheLengthAndTheLimit) {
  const std::string s(300, 'a');
  EXPECT_EQ(check_topic_name(s, 256).error().message,
            "topic name is 300 bytes, longer than the limit of 256");
  EXPECT_EQ(check_topic_filter(s, 256).error().message,
            "topic filter is 300 bytes, longer than the limit of 256");
}

TEST(TopicMessage, NulGivesItsByte) {
  EXPECT_EQ(check_topic_name("ab\0c"sv).error().message, "topic name contains NUL at byte 2");
  EXPECT_EQ(check_topic_filter("ab\0c"sv).error().message, "topic filter contains NUL at byte 2");
}

TEST(TopicMessage, BadUtf8GivesItsByteAndWhy) {
  EXPECT_EQ(check_topic_name("abcd/\xC0\x80"sv).error().message,
            "topic name is not valid UTF-8 at byte 5: byte 0xC0 never appears in UTF-8");
  EXPECT_EQ(check_topic_name("abcd/\xED\xA0\x80"sv).error().message,
            "topic name is not valid UTF-8 at byte 5: encoded UTF-16 surrogate (U+D800..U+DFFF)");
  EXPECT_EQ(check_topic_name("abcd/\xE0\x80\x80"sv).error().message,
            "topic name is not valid UTF-8 at byte 5: overlong encoding");
  EXPECT_EQ(check_topic_name("abcd/\xE2\x82"sv).error().message,
            "topic name is not valid UTF-8 at byte 5: truncated multi-byte sequence");
  EXPECT_EQ(check_topic_name("abcd/\x9F"sv).error().message,
            "topic name is not valid UTF-8 at byte 5: continuation byte 0x9F without a lead byte");
  EXPECT_EQ(check_topic_name("abcd/\xF4\x90\x80\x80"sv).error().message,
            "topic name is not valid UTF-8 at byte 5: code point above U+10FFFF");
}

TEST(TopicMessage, MisplacedWildcardsInFilterGiveTheRuleAndTheByte) {
  EXPECT_EQ(check_topic_filter("a/#/b").error().message,
            "topic filter: '#' must be the last level (at byte 2)");
  EXPECT_EQ(check_topic_filter("abc#").error().message,
            "topic filter: '#' must occupy an entire level (at byte 3)");
  EXPECT_EQ(check_topic_filter("a/b+").error().message,
            "topic filter: '+' must occupy an entire level (at byte 3)");
}

TEST(TopicMessage, ByteOffsetsCountFromZero) {
  EXPECT_TRUE(mentions_offset(check_topic_name("+").error().message, 0));
  EXPECT_TRUE(mentions_offset(check_topic_name("a+").error().message, 1));
}

// ---------------------------------------------------------------------------
// Length limits (4.7.3: at most 65,535 bytes; the bus may set a lower limit).

TEST(TopicLength, NameOfExactlyTheLimitIsAccepted) {
  EXPECT_TRUE(check_topic_name(std::string(256, 'a'), 256).has_value());
  EXPECT_TRUE(check_topic_name("a", 1).has_value());
}

TEST(TopicLength, NameOneByteOverTheLimitIsRejected) {
  const Result<void> r = check_topic_name(std::string(257, 'a'), 256);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kInvalidTopic);
  EXPECT_TRUE(contains(r.error().message, "longer than the limit of 256")) << r.error().message;
}

TEST(TopicLength, FilterOfExactlyTheLimitIsAccepted) {
  EXPECT_TRUE(check_topic_filter(std::string(254, 'a') + "/#", 256).has_value());
}

TEST(TopicLength, FilterOneByteOverTheLimitIsRejected) {
  const Result<void> r = check_topic_filter(std::string(255, 'a') + "/#", 256);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kInvalidFilter);
  EXPECT_TRUE(contains(r.error().message, "long")) << r.error().message;
}

TEST(TopicLength, DefaultLimitIsTheMqttLimit) {
  EXPECT_EQ(kMqttMaxTopicBytes, 65535U);
  EXPECT_TRUE(check_topic_name(std::string(65535, 'a')).has_value());
  EXPECT_TRUE(check_topic_filter(std::string(65533, 'a') + "/#").has_value());
  const Result<void> name = check_topic_name(std::string(65536, 'a'));
  ASSERT_FALSE(name.has_value());
  EXPECT_EQ(name.error().message, "topic name is 65536 bytes, longer than the limit of 65535");
  EXPECT_FALSE(check_topic_filter(std::string(65536, 'a')).has_value());
}

TEST(TopicLength, LimitAboveTheMqttLimitDoesNotLiftIt) {
  const Result<void> r = check_topic_name(std::string(65536, 'a'), 100000);
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(contains(r.error().message, "limit of 65535")) << r.error().message;
  EXPECT_FALSE(check_topic_filter(std::string(65536, 'a'), 100000).has_value());
}

TEST(TopicLength, LimitCountsBytesNotCharacters) {
  // Two characters, four bytes.
  EXPECT_TRUE(check_topic_name("\xC3\xA4\xC3\xB6", 4).has_value());
  EXPECT_FALSE(check_topic_name("\xC3\xA4\xC3\xB6", 3).has_value());
  EXPECT_TRUE(check_topic_name("\xF0\x9F\x98\x80", 4).has_value());
  EXPECT_FALSE(check_topic_name("\xF0\x9F\x98\x80", 2).has_value());
}

TEST(TopicLength, ZeroLimitRejectsEveryNonEmptyString) {
  EXPECT_TRUE(contains(check_topic_name("a", 0).error().message, "long"));
  EXPECT_TRUE(contains(check_topic_filter("#", 0).error().message, "long"));
}

TEST(TopicLength, EmptyIsReportedAsEmptyWhateverTheLimit) {
  EXPECT_EQ(check_topic_name("", 0).error().message, "topic name is empty");
  EXPECT_EQ(check_topic_filter("", 0).error().message, "topic filter is empty");
}

TEST(TopicLength, LengthIsCheckedBeforeContent) {
  const Result<void> r = check_topic_name(std::string(300, '+'), 256);
  ASSERT_FALSE(r.has_value());
  EXPECT_TRUE(contains(r.error().message, "long")) << r.error().message;
}

TEST(TopicLength, LongNameWithBadUtf8AtTheEndIsFoundThere) {
  std::string s(1000, 'a');
  s += '\xFF';
  const Result<void> r = check_topic_name(s);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message,
            "topic name is not valid UTF-8 at byte 1000: byte 0xFF never appears in UTF-8");
}

// ---------------------------------------------------------------------------
// Matching: a table of filter / topic / expected outcome.

struct MatchCase {
  std::string_view filter;
  std::string_view topic;
  bool matches;
};

void PrintTo(const MatchCase& c, std::ostream* os) {
  *os << printable(c.filter) << (c.matches ? " matches " : " does not match ")
      << printable(c.topic);
}

const MatchCase kMatchTable[] = {
    // Without wildcards a filter matches only the identical name (4.7.3: case
    // sensitive, no normalisation, leading and trailing '/' are significant).
    {"sport", "sport", true},
    {"sport", "Sport", false},
    {"sport", "sport/", false},
    {"sport/", "sport", false},
    {"sport/", "sport/", true},
    {"/sport", "sport", false},
    {"/sport", "/sport", true},
    {"/", "/", true},
    {"/", "//", false},
    {"//", "//", true},
    {"//", "/", false},
    {"a/b/c", "a/b/c", true},
    {"a/b/c", "a/b", false},
    {"a/b", "a/b/c", false},
    {"a//b", "a/b", false},
    {"a/b", "a//b", false},
    {"a//b", "a//b", true},
    {"ab", "a", false},
    {"a", "ab", false},
    {"ACCOUNTS", "Accounts", false},
    {"ACCOUNTS", "ACCOUNTS", true},
    {"Accounts payable", "Accounts payable", true},
    {"Accounts payable", "Accounts  payable", false},
    {"sport/tennis", "sport/tennis ", false},
    {" ", " ", true},
    {" ", "  ", false},
    {"$SYS", "$SYS", true},
    {"$SYS/broker", "$SYS/broker", true},
    {"$SYS/broker", "$sys/broker", false},
    {"$share/group/x", "$share/group/x", true},
    {"\xC3\xA4", "\xC3\xA4", true},
    {"\xC3\xA4", "a\xCC\x88", false},       // no Unicode normalisation
    {"\xC3\xA4", "\xC3\x84", false},        // case sensitive beyond ASCII
    {"\xEF\xBB\xBFsport", "sport", false},  // U+FEFF is not stripped
    {"\xEF\xBB\xBFsport", "\xEF\xBB\xBFsport", true},
    // '#' matches the level it stands in and every level below (4.7.1.2).
    {"#", "sport", true},
    {"#", "a", true},
    {"#", "sport/tennis/player1", true},
    {"#", "/", true},
    {"#", "//", true},
    {"#", "/finance", true},
    {"#", "finance/", true},
    {"#", "a$", true},
    {"#", " $SYS", true},
    {"#", "/$SYS", true},
    {"#", "\xF0\x9F\x98\x80/a", true},
    {"sport/#", "sport", true},  // the parent level too
    {"sport/#", "sport/", true},
    {"sport/#", "sport/tennis", true},
    {"sport/#", "sport/tennis/player1", true},
    {"sport/#", "sport/tennis/player1/ranking", true},
    {"sport/#", "sports", false},
    {"sport/#", "spor", false},
    {"sport/#", "Sport/tennis", false},
    {"sport/#", "/sport", false},
    {"sport/#", "/sport/tennis", false},
    {"sport/tennis/player1/#", "sport/tennis/player1", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
    {"sport/tennis/player1/#", "sport/tennis/player2", false},
    {"sport/tennis/player1/#", "sport/tennis", false},
    {"sport/tennis/#", "sport/tennis", true},
    {"sport/tennis/#", "sport", false},
    {"sport/tennis/#", "sport/tennisX/a", false},
    {"/#", "/", true},
    {"/#", "/finance", true},
    {"/#", "//", true},
    {"/#", "finance", false},
    {"/#", "finance/", false},
    {"//#", "//", true},
    {"//#", "/", true},
    {"//#", "///", true},
    {"//#", "/a", false},
    {"a/#", "a", true},
    {"a/#", "a/b/c/d/e/f", true},
    {"a/#", "b", false},
    {"a/#", "b/a", false},
    {"a/#", "ab", false},
    {"\xC3\xA4/#", "\xC3\x84", false},
    {"\xC3\xA4/#", "\xC3\xA4/x/y", true},
    {"sensors/\xE2\x84\x83/#", "sensors/\xE2\x84\x83/kitchen", true},
    // '+' matches exactly one level, which may be empty (4.7.1.3).
    {"+", "sport", true},
    {"+", "a", true},
    {"+", " ", true},
    {"+", "a$", true},
    {"+", "\xF0\x9F\x98\x80", true},
    {"+", "/", false},
    {"+", "/finance", false},
    {"+", "finance/", false},
    {"+", "sport/tennis", false},
    {"sport/+", "sport", false},
    {"sport/+", "sport/", true},
    {"sport/+", "sport/tennis", true},
    {"sport/+", "sport/tennis/player1", false},
    {"sport/+", "sport/tennis/", false},
    {"sport/tennis/+", "sport/tennis/player1", true},
    {"sport/tennis/+", "sport/tennis/player2", true},
    {"sport/tennis/+", "sport/tennis/player1/ranking", false},
    {"sport/tennis/+", "sport/tennis", false},
    {"sport/+/player1", "sport/tennis/player1", true},
    {"sport/+/player1", "sport//player1", true},
    {"sport/+/player1", "sport/player1", false},
    {"sport/+/player1", "sport/tennis/player2", false},
    {"+/+", "/finance", true},
    {"+/+", "/", true},
    {"+/+", "a/b", true},
    {"+/+", "a/", true},
    {"+/+", "a", false},
    {"+/+", "a/b/c", false},
    {"/+", "/finance", true},
    {"/+", "/", true},
    {"/+", "finance", false},
    {"/+", "//", false},
    {"/+", "a/b", false},
    {"+/", "a/", true},
    {"+/", "/", true},
    {"+/", "a", false},
    {"+/", "a/b", false},
    {"+//+", "a//b", true},
    {"+//+", "//", true},
    {"+//+", "a/b/c", false},
    {"+/+/+", "//", true},
    {"+/+/+", "a/b/c", true},
    {"+/+/+", "a/b", false},
    {"a/+/b", "a/x/b", true},
    {"a/+/b", "a//b", true},
    {"a/+/b", "a/b", false},
    {"a/+/b", "a/x/y/b", false},
    {"\xC3\xA4/+", "\xC3\xA4/x", true},
    {"+/\xE2\x82\xAC", "price/\xE2\x82\xAC", true},
    {"+/b", "\xEF\xBB\xBF/b", true},
    {"a b/+", "a b/c d", true},
    {"a b/+", "ab/c", false},
    {"+/ ", "x/ ", true},
    {"+/ ", "x/", false},
    // '+' and '#' together.
    {"+/#", "sport", true},
    {"+/#", "/", true},
    {"+/#", "sport/tennis/player1", true},
    {"+/+/#", "a", false},
    {"+/+/#", "a/b", true},
    {"+/+/#", "a/b/c/d", true},
    {"+/tennis/#", "sport/tennis", true},
    {"+/tennis/#", "sport/tennis/player1", true},
    {"+/tennis/#", "sport/badminton", false},
    {"+/tennis/#", "tennis", false},
    {"sport/+/#", "sport", false},
    {"sport/+/#", "sport/", true},
    {"sport/+/#", "sport/tennis/a/b", true},
    {"/+/#", "/a", true},
    {"/+/#", "a/b", false},
    // Names that start with '$' are not matched by filters that start with a
    // wildcard (4.7.2), but are matched by filters that spell the '$' level.
    {"#", "$SYS", false},
    {"#", "$SYS/broker", false},
    {"#", "$", false},
    {"#", "$/a", false},
    {"#", "$share/group/x", false},
    {"+", "$SYS", false},
    {"+", "$", false},
    {"+/+", "$SYS/x", false},
    {"+/#", "$SYS/x", false},
    {"+/#", "$SYS", false},
    {"+/monitor/Clients", "$SYS/monitor/Clients", false},
    {"+/monitor/Clients", "SYS/monitor/Clients", true},
    {"+/monitor/Clients", "/monitor/Clients", true},
    {"+/$SYS", "$/$SYS", false},
    {"+/$SYS", "a/$SYS", true},
    {"a/+", "a/$SYS", true},  // '$' is special only as the first character
    {"a/#", "a/$SYS/x", true},
    {"$SYS/#", "$SYS", true},
    {"$SYS/#", "$SYS/", true},
    {"$SYS/#", "$SYS/x", true},
    {"$SYS/#", "$SYS/broker/clients/total", true},
    {"$SYS/#", "$SYSTEM/x", false},
    {"$SYS/#", "SYS/x", false},
    {"$SYS/#", "$sys/x", false},
    {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
    {"$SYS/monitor/+", "$SYS/monitor/", true},
    {"$SYS/+", "$SYS/x", true},
    {"$SYS/+/#", "$SYS/broker", true},
    {"$SYS/+/#", "$SYS", false},
    {"$/#", "$", true},
    {"$/#", "$/a", true},
    {"$/+", "$/", true},
    {"$share/group/#", "$share/group/x", true},
};

class FilterMatchTable : public testing::TestWithParam<MatchCase> {};

TEST_P(FilterMatchTable, GivesTheExpectedAnswer) {
  const MatchCase& c = GetParam();
  EXPECT_EQ(filter_matches(c.filter, c.topic), c.matches);
}

TEST_P(FilterMatchTable, UsesOnlyValidInput) {
  const MatchCase& c = GetParam();
  EXPECT_TRUE(check_topic_filter(c.filter).has_value()) << printable(c.filter);
  EXPECT_TRUE(check_topic_name(c.topic).has_value()) << printable(c.topic);
}

TEST_P(FilterMatchTable, AgreesWithTheReferenceMatcher) {
  const MatchCase& c = GetParam();
  EXPECT_EQ(reference_match(c.filter, c.topic), c.matches);
}

INSTANTIATE_TEST_SUITE_P(Mqtt, FilterMatchTable, testing::ValuesIn(kMatchTable));

TEST(FilterMatchTable, HasAtLeast150Rows) {
  EXPECT_GE(std::size(kMatchTable), 150U);
}

// ---------------------------------------------------------------------------
// Named behaviours, one each.

TEST(TopicFilter, HashMatchesParentLevel) {
  EXPECT_TRUE(filter_matches("sport/#", "sport"));
  EXPECT_TRUE(filter_matches("sport/tennis/#", "sport/tennis"));
}

TEST(TopicFilter, HashAloneMatchesEveryNonDollarTopic) {
  EXPECT_TRUE(filter_matches("#", "a"));
  EXPECT_TRUE(filter_matches("#", "/"));
  EXPECT_TRUE(filter_matches("#", "a/b/c/d"));
  EXPECT_FALSE(filter_matches("#", "$SYS/x"));
}

TEST(TopicFilter, PlusMatchesAnEmptyLevel) {
  EXPECT_TRUE(filter_matches("+/+", "/finance"));
  EXPECT_TRUE(filter_matches("/+", "/"));
  EXPECT_TRUE(filter_matches("a/+/b", "a//b"));
}

TEST(TopicFilter, PlusDoesNotMatchTwoLevels) {
  EXPECT_FALSE(filter_matches("+", "/finance"));
  EXPECT_FALSE(filter_matches("sport/+", "sport/tennis/player1"));
}

TEST(TopicFilter, PlusDoesNotMatchAMissingLevel) {
  EXPECT_FALSE(filter_matches("sport/+", "sport"));
}

TEST(TopicFilter, LeadingSlashMakesAnEmptyFirstLevel) {
  EXPECT_TRUE(filter_matches("+/finance", "/finance"));
  EXPECT_FALSE(filter_matches("finance", "/finance"));
}

TEST(TopicFilter, WildcardFirstDoesNotMatchDollarTopics) {
  EXPECT_FALSE(filter_matches("#", "$SYS"));
  EXPECT_FALSE(filter_matches("+/monitor/Clients", "$SYS/monitor/Clients"));
}

TEST(TopicFilter, DollarSysHashMatchesDollarSysTopics) {
  EXPECT_TRUE(filter_matches("$SYS/#", "$SYS/x"));
  EXPECT_TRUE(filter_matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
}

TEST(TopicFilter, MatchingIsCaseSensitive) {
  EXPECT_FALSE(filter_matches("ACCOUNTS", "Accounts"));
  EXPECT_FALSE(filter_matches("accounts/+", "Accounts/x"));
  EXPECT_TRUE(filter_matches("Accounts/+", "Accounts/x"));
}

TEST(TopicFilter, SpacesAreOrdinaryCharacters) {
  EXPECT_TRUE(filter_matches("Accounts payable/+", "Accounts payable/2024"));
  EXPECT_FALSE(filter_matches("Accounts payable", "Accountspayable"));
}

TEST(TopicFilter, EmptyInputNeverMatches) {
  EXPECT_FALSE(filter_matches("", ""));
  EXPECT_FALSE(filter_matches("", "a"));
  EXPECT_FALSE(filter_matches("#", ""));
  EXPECT_FALSE(filter_matches("+", ""));
}

TEST(TopicFilter, InvalidInputIsAnsweredSafely) {
  // The answer is unspecified; the call must not read out of bounds (run under ASan).
  const std::string_view bad[] = {"#/",   "a/#/b", "##",   "+a", "a+",   "/",    "//#/", "#/#/",
                                  "\0"sv, "\xFF",  "\xC3", "+/", "+//#", "/#/+", "$",    "$/+#"};
  std::size_t answers = 0;
  for (const std::string_view f : bad) {
    for (const std::string_view t : bad) {
      answers += filter_matches(f, t) ? 1 : 0;
    }
  }
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> length(0, 12);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int n = 0; n < 5000; ++n) {
    std::string f(static_cast<std::size_t>(length(rng)), '\0');
    std::string t(static_cast<std::size_t>(length(rng)), '\0');
    for (char& ch : f) {
      ch = "/+#a$"[byte(rng) % 5];
    }
    for (char& ch : t) {
      ch = static_cast<char>(byte(rng));
    }
    answers += filter_matches(f, t) ? 1 : 0;
  }
  EXPECT_GT(answers, 0U);
}

TEST(TopicFilter, AllocationCounterSeesAnAllocation) {
  // Guards the two tests below against a counter that never counts.
  long allocations = 0;
  {
    const AllocationCounter counter;
    const std::string heap(100, 'x');
    allocations = counter.count();
  }
  EXPECT_GE(allocations, 1);
}

TEST(TopicFilter, MatchingDoesNotAllocate) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const MatchCase& c : kMatchTable) {
    pairs.emplace_back(std::string(c.filter), std::string(c.topic));
  }
  std::string deep_topic;
  std::string deep_filter;
  for (int i = 0; i < 1000; ++i) {
    deep_topic += "level/";
    deep_filter += "+/";
  }
  deep_topic += "end";
  deep_filter += "#";
  std::size_t matched = 0;
  long allocations = 0;
  {
    const AllocationCounter counter;
    for (const auto& [f, t] : pairs) {
      matched += filter_matches(f, t) ? 1 : 0;
    }
    matched += filter_matches(deep_filter, deep_topic) ? 1 : 0;
    matched += filter_matches(deep_topic, deep_topic) ? 1 : 0;
    allocations = counter.count();
  }
  EXPECT_EQ(allocations, 0);
  EXPECT_GT(matched, 0U);
}

TEST(TopicName, CheckingValidInputDoesNotAllocate) {
  bool all_valid = true;
  long allocations = 0;
  {
    const AllocationCounter counter;
    for (const std::string_view name : kValidNames) {
      all_valid = check_topic_name(name).has_value() && all_valid;
    }
    for (const std::string_view filter : kValidFilters) {
      all_valid = check_topic_filter(filter).has_value() && all_valid;
    }
    allocations = counter.count();
  }
  EXPECT_TRUE(all_valid);
  EXPECT_EQ(allocations, 0);
}

TEST(TopicName, ValidNameIsAcceptedUpToTheLastByte) {
  // Every proper prefix of a valid multi-byte sequence is truncated; the whole one is fine.
  const std::string_view full = "x/\xF0\x9F\x98\x80";
  EXPECT_TRUE(check_topic_name(full).has_value());
  for (std::size_t n = 3; n < full.size(); ++n) {
    const Result<void> r = check_topic_name(full.substr(0, n));
    ASSERT_FALSE(r.has_value()) << n;
    EXPECT_TRUE(contains(r.error().message, "truncated")) << r.error().message;
    EXPECT_TRUE(mentions_offset(r.error().message, 2)) << r.error().message;
  }
}

TEST(TopicName, EverySurrogateIsRejected) {
  for (unsigned cp = 0xD800; cp <= 0xDFFF; ++cp) {
    const char s[] = {static_cast<char>(0xE0 | (cp >> 12)),
                      static_cast<char>(0x80 | ((cp >> 6) & 0x3F)),
                      static_cast<char>(0x80 | (cp & 0x3F))};
    const Result<void> r = check_topic_name(std::string_view(s, sizeof s));
    ASSERT_FALSE(r.has_value()) << std::hex << cp;
    ASSERT_TRUE(contains(r.error().message, "surrogate")) << r.error().message;
  }
}

// Encodes a code point as UTF-8 in the shortest form.
std::string encode_utf8(std::uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

TEST(TopicName, EveryScalarValueExceptNulAndWildcardsIsAccepted) {
  std::size_t rejected = 0;
  for (std::uint32_t cp = 1; cp <= 0x10FFFF; ++cp) {
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp == '+' || cp == '#') {
      continue;
    }
    if (!check_topic_name(encode_utf8(cp)).has_value()) {
      ++rejected;
      ADD_FAILURE() << "U+" << std::hex << cp << " rejected";
      if (rejected > 10) {
        break;
      }
    }
  }
  EXPECT_EQ(rejected, 0U);
}

TEST(TopicName, EveryOverlongFormIsRejected) {
  // Two-byte forms of U+0000..U+007F, three-byte of ..U+07FF, four-byte of ..U+FFFF.
  for (std::uint32_t cp = 0; cp < 0x10000; cp += (cp < 0x800 ? 1 : 97)) {
    std::string s;
    if (cp < 0x80) {
      s = {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
    }
    const std::string three = {static_cast<char>(0xE0), static_cast<char>(0x80 | (cp >> 6)),
                               static_cast<char>(0x80 | (cp & 0x3F))};
    const std::string four = {static_cast<char>(0xF0), static_cast<char>(0x80 | (cp >> 12)),
                              static_cast<char>(0x80 | ((cp >> 6) & 0x3F)),
                              static_cast<char>(0x80 | (cp & 0x3F))};
    if (!s.empty()) {
      ASSERT_FALSE(check_topic_name(s).has_value()) << std::hex << cp;
    }
    if (cp < 0x800) {
      ASSERT_FALSE(check_topic_name(three).has_value()) << std::hex << cp;
    }
    ASSERT_FALSE(check_topic_name(four).has_value()) << std::hex << cp;
  }
}

// ---------------------------------------------------------------------------
// Property test: filter_matches against the reference on random pairs.

std::uint64_t property_seed() {
  if (const char* env = std::getenv("IPCBUS_TOPIC_SEED"); env != nullptr && *env != '\0') {
    return std::strtoull(env, nullptr, 10);
  }
  return 20240611;
}

class RandomTopics {
 public:
  explicit RandomTopics(std::uint64_t seed) : rng_(seed) {}

  // Any string of 1..8 characters over {a, b, $, /} (names) or {a, b, $, /, +, #} (filters).
  std::string characters(bool wildcards) {
    const std::string_view alphabet = wildcards ? "ab$/+#" : "ab$/";
    std::string out(pick(1, 8), ' ');
    for (char& ch : out) {
      ch = alphabet[pick(0, alphabet.size() - 1)];
    }
    return out;
  }

  // 1..5 levels, each one token; empty levels included.
  std::string levels(bool wildcards) {
    static constexpr std::string_view kPlain[] = {"", "a", "b", "$", "ab", "$a", "a$"};
    static constexpr std::string_view kAll[] = {"", "a", "b", "$", "ab", "$a", "+", "+", "#"};
    std::string out;
    const std::size_t n = pick(1, 5);
    for (std::size_t i = 0; i < n; ++i) {
      if (i > 0) {
        out += '/';
      }
      out +=
          wildcards ? kAll[pick(0, std::size(kAll) - 1)] : kPlain[pick(0, std::size(kPlain) - 1)];
    }
    return out;
  }

  // A topic made to fit `filter`: each '+' becomes a plain level, a final '#'
  // becomes zero or more plain levels; then, sometimes, one character changes.
  std::string fitting(std::string_view filter) {
    static constexpr std::string_view kLevel[] = {"", "a", "b", "$", "ab"};
    std::string out;
    std::size_t start = 0;
    for (;;) {
      const std::size_t end = std::min(filter.find('/', start), filter.size());
      const std::string_view level = filter.substr(start, end - start);
      if (level == "#") {
        const std::size_t extra = pick(start == 0 ? 1 : 0, 3);
        if (extra == 0 && !out.empty()) {
          out.pop_back();  // the parent level: drop the '/' before '#'
        }
        for (std::size_t i = 0; i < extra; ++i) {
          out += (i > 0 ? "/" : "");
          out += kLevel[pick(0, std::size(kLevel) - 1)];
        }
      } else if (level == "+") {
        out += kLevel[pick(0, std::size(kLevel) - 1)];
      } else {
        out += level;
      }
      if (end == filter.size()) {
        break;
      }
      out += '/';
      start = end + 1;
    }
    if (!out.empty() && pick(0, 3) == 0) {
      out[pick(0, out.size() - 1)] = "ab$/"[pick(0, 3)];
    }
    return out;
  }

  std::string filter() { return pick(0, 1) == 0 ? characters(true) : levels(true); }

  std::string topic_for(std::string_view filter) {
    switch (pick(0, 3)) {
      case 0:
        return characters(false);
      case 1:
        return levels(false);
      default:
        return fitting(filter);
    }
  }

 private:
  std::size_t pick(std::size_t lo, std::size_t hi) {
    return std::uniform_int_distribution<std::size_t>(lo, hi)(rng_);
  }

  std::mt19937_64 rng_;
};

TEST(TopicFilterProperty, MatchesTheReferenceMatcherOnRandomPairs) {
  const std::uint64_t seed = property_seed();
  std::cout << "[ seed     ] IPCBUS_TOPIC_SEED=" << seed << '\n';
  RecordProperty("seed", std::to_string(seed));
  SCOPED_TRACE("IPCBUS_TOPIC_SEED=" + std::to_string(seed));
  RandomTopics random(seed);

  constexpr int kPairs = 20000;
  constexpr int kMaxReported = 20;
  int reported = 0;
  std::size_t compared = 0;
  std::size_t matched = 0;
  std::set<std::string> distinct_filters;
  for (int n = 0; n < kPairs && reported < kMaxReported; ++n) {
    const std::string filter = random.filter();
    const std::string topic = random.topic_for(filter);
    const bool filter_ok = check_topic_filter(filter).has_value();
    const bool topic_ok = check_topic_name(topic).has_value();
    if (filter_ok != reference_valid_filter(filter)) {
      ADD_FAILURE() << "check_topic_filter(" << printable(filter) << ") = " << filter_ok;
      ++reported;
    }
    if (topic_ok != reference_valid_name(topic)) {
      ADD_FAILURE() << "check_topic_name(" << printable(topic) << ") = " << topic_ok;
      ++reported;
    }
    if (topic_ok && !check_topic_filter(topic).has_value()) {
      ADD_FAILURE() << "valid name " << printable(topic) << " is not a valid filter";
      ++reported;
    }
    if (!filter_ok || !topic_ok) {
      continue;
    }
    const bool got = filter_matches(filter, topic);
    const bool want = reference_match(filter, topic);
    if (got != want) {
      ADD_FAILURE() << "filter_matches(" << printable(filter) << ", " << printable(topic)
                    << ") = " << got << ", reference says " << want;
      ++reported;
    }
    if (filter.find_first_of("+#") == std::string::npos && got != (filter == topic)) {
      ADD_FAILURE() << "plain filter " << printable(filter) << " vs " << printable(topic);
      ++reported;
    }
    ++compared;
    matched += got ? 1 : 0;
    distinct_filters.insert(filter);
  }
  std::cout << "[ property ] " << compared << " valid pairs compared, " << matched << " matched, "
            << distinct_filters.size() << " distinct filters\n";
  // The generator must give both answers often, or the test proves little.
  EXPECT_GE(compared, 5000U);
  EXPECT_GE(matched, 1000U);
  EXPECT_GE(compared - matched, 1000U);
}

// ---------------------------------------------------------------------------
// errc_name for the codes above, and for every code.

TEST(ErrcName, NamesTheTopicCodes) {
  EXPECT_STREQ(errc_name(Errc::kInvalidTopic), "invalid topic");
  EXPECT_STREQ(errc_name(Errc::kInvalidFilter), "invalid filter");
  EXPECT_STREQ(errc_name(Errc::kPoolExhausted), "pool exhausted");
}

TEST(ErrcName, EveryCodeHasADistinctName) {
  std::set<std::string> names;
  for (int v = static_cast<int>(Errc::kInvalidTopic); v <= static_cast<int>(Errc::kSystem); ++v) {
    const char* name = errc_name(static_cast<Errc>(v));
    ASSERT_NE(name, nullptr);
    EXPECT_NE(std::string(name), "unknown error") << v;
    names.insert(name);
  }
  EXPECT_EQ(names.size(), static_cast<std::size_t>(Errc::kSystem));
}

TEST(ErrcName, ValueOutsideTheEnumIsUnknown) {
  EXPECT_STREQ(errc_name(static_cast<Errc>(0)), "unknown error");
  EXPECT_STREQ(errc_name(static_cast<Errc>(200)), "unknown error");
}

}  // namespace
}  // namespace ipcbus
