// topic.cpp: MQTT 3.1.1 / 5.0 topic names and topic filters (section 4.7 of both
// specifications): validation with messages that say what is wrong and where, and
// matching of a filter against a topic name without allocating.
//
// Byte positions in messages are 0-based offsets into the string.

#include "ipcbus/topic.hpp"

#include <algorithm>
#include <cstdint>
#include <string>

namespace ipcbus {
namespace {

constexpr char kLevelSeparator = '/';
constexpr char kSingleLevelWildcard = '+';
constexpr char kMultiLevelWildcard = '#';

// What is wrong with a multi-byte UTF-8 sequence.
enum class Utf8Fault : std::uint8_t {
  kNone,
  kStrayContinuation,  // 0x80..0xBF where a sequence should start
  kNeverValidByte,     // 0xC0, 0xC1, 0xF5..0xFF
  kOverlong,           // a longer encoding than the code point needs
  kSurrogate,          // U+D800..U+DFFF
  kAboveMax,           // beyond U+10FFFF
  kTruncated,          // the string ends, or a non-continuation byte comes, too early
};

// What is wrong with a name or filter, found by one left-to-right scan.
enum class Problem : std::uint8_t {
  kNone,
  kNul,
  kBadUtf8,
  kWildcardInName,
  kPlusNotWholeLevel,
  kHashNotWholeLevel,
  kHashNotLast,
};

struct Finding {
  Problem problem = Problem::kNone;
  std::size_t at = 0;      // byte offset of the offending character or sequence
  unsigned char byte = 0;  // the byte at `at`
  Utf8Fault utf8 = Utf8Fault::kNone;
};

constexpr bool is_continuation(unsigned char b) {
  return (b & 0xC0U) == 0x80U;
}

// Checks the multi-byte sequence that starts at s[i] (s[i] >= 0x80). On success
// sets `length` to the sequence's length in bytes.
Utf8Fault check_utf8_sequence(std::string_view s, std::size_t i, std::size_t& length) {
  const auto lead = static_cast<unsigned char>(s[i]);
  // The allowed range of the second byte; narrower than 0x80..0xBF only for the
  // leads where the second byte decides overlong, surrogate or out of range.
  unsigned char second_min = 0x80;
  unsigned char second_max = 0xBF;
  Utf8Fault below_min = Utf8Fault::kNone;
  Utf8Fault above_max = Utf8Fault::kNone;
  if (lead < 0xC0) {
    return Utf8Fault::kStrayContinuation;
  } else if (lead < 0xC2) {  // NOLINT(bugprone-branch-clone): as for >= 0xF5, other reason
    return Utf8Fault::kNeverValidByte;  // could only start an overlong 2-byte form
  } else if (lead < 0xE0) {
    length = 2;
  } else if (lead < 0xF0) {
    length = 3;
    if (lead == 0xE0) {
      second_min = 0xA0;
      below_min = Utf8Fault::kOverlong;
    } else if (lead == 0xED) {
      second_max = 0x9F;
      above_max = Utf8Fault::kSurrogate;
    }
  } else if (lead < 0xF5) {
    length = 4;
    if (lead == 0xF0) {
      second_min = 0x90;
      below_min = Utf8Fault::kOverlong;
    } else if (lead == 0xF4) {
      second_max = 0x8F;
      above_max = Utf8Fault::kAboveMax;
    }
  } else {
    return Utf8Fault::kNeverValidByte;
  }
  for (std::size_t k = 1; k < length; ++k) {
    if (i + k >= s.size()) {
      return Utf8Fault::kTruncated;
    }
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (!is_continuation(b)) {
      return Utf8Fault::kTruncated;
    }
    if (k == 1 && b < second_min) {
      return below_min;
    }
    if (k == 1 && b > second_max) {
      return above_max;
    }
  }
  return Utf8Fault::kNone;
}

// Finds the first problem in a non-empty string, scanning left to right.
Finding scan(std::string_view s, bool is_filter) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == 0) {
      return {Problem::kNul, i, c, Utf8Fault::kNone};
    }
    if (c >= 0x80) {
      std::size_t length = 0;
      const Utf8Fault fault = check_utf8_sequence(s, i, length);
      if (fault != Utf8Fault::kNone) {
        return {Problem::kBadUtf8, i, c, fault};
      }
      i += length;
      continue;
    }
    if (c == kSingleLevelWildcard || c == kMultiLevelWildcard) {
      if (!is_filter) {
        return {Problem::kWildcardInName, i, c, Utf8Fault::kNone};
      }
      const bool starts_level = i == 0 || s[i - 1] == kLevelSeparator;
      const bool ends_level = i + 1 == s.size() || s[i + 1] == kLevelSeparator;
      if (c == kSingleLevelWildcard && !(starts_level && ends_level)) {
        return {Problem::kPlusNotWholeLevel, i, c, Utf8Fault::kNone};
      }
      if (c == kMultiLevelWildcard) {
        if (!starts_level || !ends_level) {
          return {Problem::kHashNotWholeLevel, i, c, Utf8Fault::kNone};
        }
        if (i + 1 != s.size()) {
          return {Problem::kHashNotLast, i, c, Utf8Fault::kNone};
        }
      }
    }
    ++i;
  }
  return {};
}

std::string hex_byte(unsigned char b) {
  constexpr const char* kDigits = "0123456789ABCDEF";
  std::string out = "0x";
  out += kDigits[b >> 4U];
  out += kDigits[b & 0x0FU];
  return out;
}

std::string describe_utf8_fault(Utf8Fault fault, unsigned char byte) {
  switch (fault) {
    case Utf8Fault::kStrayContinuation:
      return "continuation byte " + hex_byte(byte) + " without a lead byte";
    case Utf8Fault::kNeverValidByte:
      return "byte " + hex_byte(byte) + " never appears in UTF-8";
    case Utf8Fault::kOverlong:
      return "overlong encoding";
    case Utf8Fault::kSurrogate:
      return "encoded UTF-16 surrogate (U+D800..U+DFFF)";
    case Utf8Fault::kAboveMax:
      return "code point above U+10FFFF";
    case Utf8Fault::kTruncated:
      return "truncated multi-byte sequence";
    case Utf8Fault::kNone:
      break;
  }
  return "invalid sequence";
}

std::string describe(const Finding& f, const char* what) {
  const std::string at = std::to_string(f.at);
  const std::string subject = what;
  switch (f.problem) {
    case Problem::kNul:
      return subject + " contains NUL at byte " + at;
    case Problem::kBadUtf8:
      return subject + " is not valid UTF-8 at byte " + at + ": " +
             describe_utf8_fault(f.utf8, f.byte);
    case Problem::kWildcardInName:
      return subject + " contains the wildcard '" + static_cast<char>(f.byte) + "' at byte " + at +
             "; wildcards are only allowed in filters";
    case Problem::kPlusNotWholeLevel:
      return subject + ": '+' must occupy an entire level (at byte " + at + ")";
    case Problem::kHashNotWholeLevel:
      return subject + ": '#' must occupy an entire level (at byte " + at + ")";
    case Problem::kHashNotLast:
      return subject + ": '#' must be the last level (at byte " + at + ")";
    case Problem::kNone:
      break;
  }
  return subject + " is invalid";
}

// The shared body of check_topic_name and check_topic_filter.
Result<void> check(std::string_view s, std::size_t max_bytes, bool is_filter) {
  const char* what = is_filter ? "topic filter" : "topic name";
  const Errc code = is_filter ? Errc::kInvalidFilter : Errc::kInvalidTopic;
  // A caller's limit never lifts the MQTT one.
  const std::size_t limit = std::min(max_bytes, kMqttMaxTopicBytes);
  try {
    if (s.empty()) {
      return Error{code, std::string(what) + " is empty"};
    }
    if (s.size() > limit) {
      return Error{code, std::string(what) + " is " + std::to_string(s.size()) +
                             " bytes, longer than the limit of " + std::to_string(limit)};
    }
    const Finding finding = scan(s, is_filter);
    if (finding.problem != Problem::kNone) {
      return Error{code, describe(finding, what)};
    }
    return {};
  } catch (...) {
    // Only building a message can throw (out of memory): report the code alone.
    return Error{code, {}};
  }
}

}  // namespace

Result<void> check_topic_name(std::string_view name, std::size_t max_bytes) {
  return check(name, max_bytes, /*is_filter=*/false);
}

Result<void> check_topic_filter(std::string_view filter, std::size_t max_bytes) {
  return check(filter, max_bytes, /*is_filter=*/true);
}

bool filter_matches(std::string_view filter, std::string_view topic) {
  if (filter.empty() || topic.empty()) {
    return false;
  }
  // MQTT 4.7.2: a filter that starts with a wildcard does not match a topic
  // name that starts with '$' ("$SYS/..." and the like).
  if (topic.front() == '$' &&
      (filter.front() == kSingleLevelWildcard || filter.front() == kMultiLevelWildcard)) {
    return false;
  }
  // f and t are the starts of the current level of the filter and the topic.
  std::size_t f = 0;
  std::size_t t = 0;
  for (;;) {
    const std::size_t f_end = std::min(filter.find(kLevelSeparator, f), filter.size());
    const std::string_view f_level = filter.substr(f, f_end - f);
    if (f_level.size() == 1 && f_level.front() == kMultiLevelWildcard) {
      return true;  // '#' takes this topic level and every one below it
    }
    const std::size_t t_end = std::min(topic.find(kLevelSeparator, t), topic.size());
    const bool is_plus = f_level.size() == 1 && f_level.front() == kSingleLevelWildcard;
    if (!is_plus && f_level != topic.substr(t, t_end - t)) {
      return false;
    }
    const bool filter_done = f_end == filter.size();
    const bool topic_done = t_end == topic.size();
    if (topic_done) {
      // All topic levels matched: the filter must end here too, or go on with
      // just "/#", since '#' also matches the parent level ("a/#" matches "a").
      if (filter_done) {
        return true;
      }
      const std::string_view rest = filter.substr(f_end + 1);
      return rest.size() == 1 && rest.front() == kMultiLevelWildcard;
    }
    if (filter_done) {
      return false;
    }
    f = f_end + 1;
    t = t_end + 1;
  }
}

}  // namespace ipcbus
