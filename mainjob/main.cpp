// ipcbus-replay: replays an event log (by default /var/log/dpkg.log) through
// an ipcbus bus across separate processes, and checks that every listener got
// exactly the events its filter should match, in order, with no drops.
//
//   ipcbus-replay                                  # dpkg.log, 3 publishers, 6 listeners
//   ipcbus-replay --input /etc/services --repeat 5 --wait sleep --json out.json
//
// The same binary also plays the child roles (--role listener|publisher);
// those options are hidden from --help. See replay.hpp for the protocol.
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <exception>

#include "replay.hpp"

namespace replay {

bool emit_line(const std::string& line) {
  const std::string text = line + "\n";
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(STDOUT_FILENO, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  return true;
}

std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

namespace {

std::vector<std::string> split_filters(const std::string& spec) {
  // LIMIT: filters are split at every ','; a filter that contains ',' (valid
  // in MQTT) cannot be given.
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = spec.find(',', start);
    out.push_back(spec.substr(start, comma - start));
    if (comma == std::string::npos) {
      return out;
    }
    start = comma + 1;
  }
}

}  // namespace

}  // namespace replay

// main() below runs this and turns an exception that escapes it into a message.
static int replay_main(int argc, char** argv) {
  using namespace replay;
  CLI::App app{
      "Replay an event log through an ipcbus bus across processes: P publishers share the "
      "lines, L listeners with wildcard filters receive them; every count is checked exactly."};
  app.set_version_flag("--version", "ipcbus-replay 0.1.0");

  CoordinatorOptions co;
  std::string listeners_spec;
  std::string wait = "hybrid";
  std::uint32_t watchdog_s = 120;
  std::uint32_t block_timeout_ms = 5000;
  app.add_option("--input", co.input, "log file to replay, one event per line")
      ->capture_default_str();
  app.add_option("--bus", co.bus, "bus name (default replay-<pid>); it must not exist yet");
  app.add_option(
      "--listeners-spec",
      listeners_spec, "comma-separated topic filters, one listener each (default: " + [] {
        std::string s;
        for (const std::string& f : default_filters()) {
          s += (s.empty() ? "" : ",") + f;
        }
        return s;
      }() + ")");
  app.add_option("--publishers", co.publishers, "publisher processes")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--repeat", co.repeat, "times the whole file is replayed")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  app.add_option("--wait", wait, "listener wait strategy")
      ->check(CLI::IsMember({"spin", "hybrid", "sleep"}))
      ->capture_default_str();
  app.add_option("--json", co.json, "also write the results as JSON to this file");
  app.add_option("--timeout", watchdog_s, "watchdog: kill everything after this many seconds")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  app.add_option("--block-timeout-ms", block_timeout_ms,
                 "how long a publish waits for room in a full ring")
      ->check(CLI::Range(1, 600000))
      ->capture_default_str();

  // The child roles; an empty group hides them from --help.
  std::string role;
  ListenerRoleOptions lo;
  PublisherRoleOptions po;
  std::uint64_t expect = 0;
  std::string filter;
  std::uint32_t index = 0;
  int progress_fd = -1;
  app.add_option("--role", role)->check(CLI::IsMember({"listener", "publisher"}))->group("");
  app.add_option("--filter", filter)->group("");
  app.add_option("--expect", expect)->group("");
  app.add_option("--index", index)->group("");
  app.add_option("--progress-fd", progress_fd)->group("");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  const ipcbus::WaitStrategy strategy = *ipcbus::parse_wait_strategy(wait);
  try {
    if (role == "listener") {
      lo.bus = co.bus;
      lo.filter = filter;
      lo.wait = strategy;
      lo.expect = expect;
      return run_listener(lo);
    }
    if (role == "publisher") {
      po.bus = co.bus;
      po.input = co.input;
      po.index = index;
      po.publishers = co.publishers;
      po.repeat = co.repeat;
      po.block_timeout = std::chrono::milliseconds(block_timeout_ms);
      po.progress_fd = progress_fd;
      return run_publisher(po);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ipcbus-replay %s: %s\n", role.c_str(), e.what());
    return 1;
  }

  if (!listeners_spec.empty()) {
    co.filters = split_filters(listeners_spec);
    if (co.filters.size() > 64) {
      std::fprintf(stderr, "ipcbus-replay: at most 64 listeners\n");
      return 2;
    }
  }
  co.wait = strategy;
  co.watchdog = std::chrono::seconds(watchdog_s);
  co.block_timeout = std::chrono::milliseconds(block_timeout_ms);
  return run_coordinator(co);
}

int main(int argc, char** argv) {
  try {
    return replay_main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ipcbus-replay: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "ipcbus-replay: unknown exception\n");
  }
  return 1;
}
