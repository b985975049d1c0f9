// event_log.hpp: how ipcbus-replay turns a log file into events.
//
// One event per line: the payload is the line (without its '\n', cut to the
// bus's largest payload), the topic is derived from the line's fields. Lines of
// /var/log/dpkg.log get topics by what they say; a line of any other shape goes
// to "dpkg/other". Every process of a run (coordinator, publishers, listeners)
// derives topics with these functions, so they agree byte for byte.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace replay {

// The longest level a derived topic carries; longer fields are cut. Two such
// levels plus the fixed ones stay far below the bus's max_topic_bytes (256).
inline constexpr std::size_t kMaxLevelBytes = 64;
inline constexpr std::size_t kMaxDerivedTopicBytes = 12 + 2 * kMaxLevelBytes + 1;
static_assert(kMaxDerivedTopicBytes <= 256, "a derived topic must fit the default max_topic_bytes");

// LogFile: the text of a file and views of its lines into that text.
struct LogFile {
  std::string text;
  std::vector<std::string_view> lines;  // without '\n'; each at most max_payload bytes
};

// read_log reads `path` whole and splits it into lines, each cut to
// `max_payload` bytes. A last line without '\n' is a line; an empty file has
// none. Throws std::runtime_error naming the file when it cannot be read.
LogFile read_log(const std::string& path, std::size_t max_payload);

// derive_topic writes the topic of `line` into `out` (cleared first; its
// capacity is reused, so a warm `out` costs no allocation):
//   DATE TIME status STATE PACKAGE ...      -> dpkg/status/STATE/PACKAGE
//   DATE TIME ACTION PACKAGE ...            -> dpkg/ACTION/PACKAGE
//       for ACTION in install, upgrade, remove, purge, configure, trigproc
//   DATE TIME startup WHAT ...              -> dpkg/startup/WHAT
//   anything else                           -> dpkg/other
// DATE is dddd-dd-dd and TIME dd:dd:dd. Fields are cut to kMaxLevelBytes and
// every byte outside printable ASCII, and each '+', '#' and '/', becomes '_',
// so the result is always a valid MQTT topic name of fixed depth.
void derive_topic(std::string_view line, std::string& out);

}  // namespace replay
