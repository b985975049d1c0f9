// replay.hpp: the three roles of ipcbus-replay and what each is given.
//
// The coordinator is the process the user starts. It creates a fresh bus and
// starts every other role as a child: the same binary again (/proc/self/exe)
// with the hidden option --role. Children talk back through their stdout, one
// line per message:
//   listener:  "ready"            after it has subscribed
//              "report {json}"    after it has drained everything, then exits
//   publisher: "ready ID"         after it has prepared its events (ID: its publisher id)
//              "report {json}"    after its last publish, then exits
// A publisher starts publishing when it reads "go" on its stdin. Listeners end
// when they receive the control event (kControlTopic): a '$' topic, so no
// filter that starts with a wildcard matches it and it is never counted.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "ipcbus/bus.hpp"

namespace replay {

inline constexpr const char* kControlTopic = "$control/done";
inline constexpr const char* kDefaultInput = "/var/log/dpkg.log";

// The filters used when --listeners-spec is not given: distinct, and at least
// one with '+'.
inline const std::vector<std::string>& default_filters() {
  static const std::vector<std::string> filters = {
      "#", "dpkg/#", "dpkg/status/#", "dpkg/+/+", "dpkg/status/installed/+", "dpkg/install/#",
  };
  return filters;
}

struct CoordinatorOptions {
  std::string input = kDefaultInput;
  std::string bus;  // empty: replay-<pid>
  std::vector<std::string> filters = default_filters();
  std::uint32_t publishers = 3;
  std::uint32_t repeat = 20;
  ipcbus::WaitStrategy wait = ipcbus::WaitStrategy::kHybrid;
  std::string json;  // empty: no JSON file
  std::chrono::seconds watchdog{120};
  std::chrono::milliseconds block_timeout{5000};
};

struct ListenerRoleOptions {
  std::string bus;
  std::string filter;
  ipcbus::WaitStrategy wait = ipcbus::WaitStrategy::kHybrid;
  std::uint64_t expect = 0;  // events the coordinator expects; sizes the latency array
};

struct PublisherRoleOptions {
  std::string bus;
  std::string input;
  std::uint32_t index = 0;  // this publisher takes the lines i with i % publishers == index
  std::uint32_t publishers = 1;
  std::uint32_t repeat = 1;
  std::chrono::milliseconds block_timeout{5000};
  int progress_fd = -1;  // memfd of per-publisher progress counters, or -1
};

// Each returns the process's exit code.
int run_coordinator(const CoordinatorOptions& options);
int run_listener(const ListenerRoleOptions& options);
int run_publisher(const PublisherRoleOptions& options);

// Progress counters: one per publisher, a cache line apart, in a memfd the
// coordinator maps and every publisher maps too.
inline constexpr std::size_t kProgressStride = 64;

// emit_line writes `line` and '\n' to stdout with write(2), unbuffered, so the
// coordinator sees it at once. Returns false if stdout is gone.
bool emit_line(const std::string& line);

// now_ns: CLOCK_MONOTONIC, the clock of Sample::timestamp_ns().
std::uint64_t now_ns();

}  // namespace replay
