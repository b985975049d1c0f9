// pub.cpp: `ipcbus pub TOPIC [-m TEXT]`: one event from -m, or one event per
// line of standard input, in order.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <memory>
#include <sstream>
#include <system_error>
#include <thread>

#include "cli.hpp"
#include "ipcbus/topic.hpp"
#include "text.hpp"

namespace ipcbus::cli {

namespace {

using Clock = std::chrono::steady_clock;

struct PubOptions {
  std::string bus;
  std::string topic;
  std::string message;
  bool has_message = false;
  double timeout_s = 5.0;
  std::int64_t wait_listeners = 0;  // signed: CLI11 reads "-1" into an unsigned
  bool verbose = false;
};

// What happened to the events, for the closing report.
struct Tally {
  std::uint64_t events = 0;          // lines read, or the one -m message
  std::uint64_t no_listeners = 0;    // valid, and nobody listened: not an error
  std::uint64_t deliveries = 0;      // listener rings that took an event
  std::uint64_t timed_out = 0;       // a block-policy listener stayed full
  std::uint64_t skipped = 0;         // a listener was not reached (dropped, paused, closing)
  std::uint64_t pool_exhausted = 0;  // no chunk came free within the timeout
  std::uint64_t too_large = 0;       // longer than the bus's largest payload
  std::uint64_t failed() const { return timed_out + skipped + pool_exhausted + too_large; }
};

// LineReader splits a file descriptor into lines without their '\n'; a last
// line without one counts too. A line longer than `max_line` bytes is not
// kept (memory stays bounded) and is reported as kTooLong with its length.
class LineReader {
 public:
  enum class Status { kLine, kTooLong, kEnd, kInterrupted };

  LineReader(int fd, std::size_t max_line)
      : fd_(fd), max_line_(max_line), buffer_(std::size_t{64} * 1024) {}

  Status next(std::string& line, std::size_t* length) {
    line.clear();
    std::size_t len = 0;
    bool have_bytes = false;
    bool too_long = false;
    for (;;) {
      if (pos_ == end_) {
        if (eof_) {
          break;
        }
        if (!fill()) {
          return Status::kInterrupted;
        }
        continue;
      }
      have_bytes = true;
      const char* start = buffer_.data() + pos_;
      const auto* newline = static_cast<const char*>(std::memchr(start, '\n', end_ - pos_));
      const std::size_t take =
          newline != nullptr ? static_cast<std::size_t>(newline - start) : end_ - pos_;
      if (!too_long && len + take <= max_line_) {
        line.append(start, take);
      } else if (!too_long) {
        too_long = true;
        line.clear();
      }
      len += take;
      pos_ += take;
      if (newline != nullptr) {
        ++pos_;
        break;
      }
    }
    *length = len;
    if (!have_bytes) {
      return Status::kEnd;
    }
    return too_long ? Status::kTooLong : Status::kLine;
  }

 private:
  // fill reads the next block; false when a stop signal interrupted it.
  bool fill() {
    for (;;) {
      const ssize_t n = ::read(fd_, buffer_.data(), buffer_.size());
      if (n > 0) {
        pos_ = 0;
        end_ = static_cast<std::size_t>(n);
        return true;
      }
      if (n == 0) {
        eof_ = true;
        return true;
      }
      if (errno != EINTR) {
        throw CliError(kExitRuntime,
                       "cannot read standard input: " + std::generic_category().message(errno));
      }
      if (stop_requested()) {
        return false;
      }
    }
  }

  int fd_;
  std::size_t max_line_;
  std::vector<char> buffer_;
  std::size_t pos_ = 0;
  std::size_t end_ = 0;
  bool eof_ = false;
};

// "1 event", "2 events".
std::string count_of(std::uint64_t n, const char* noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

std::string seconds_text(double seconds) {
  std::ostringstream out;
  out << seconds << " s";
  return out.str();
}

std::size_t largest_payload(const Config& config) {
  std::size_t largest = 0;
  for (const PoolClass& c : config.pools) {
    largest = std::max<std::size_t>(largest, c.payload_bytes);
  }
  return largest;
}

std::size_t matching_listeners(const Bus& bus, std::string_view topic) {
  const BusInfo info = bus.inspect();
  return static_cast<std::size_t>(
      std::count_if(info.listeners.begin(), info.listeners.end(), [&](const ListenerInfo& l) {
        return l.state == ListenerState::kActive &&
               std::any_of(l.filters.begin(), l.filters.end(),
                           [&](const std::string& f) { return filter_matches(f, topic); });
      }));
}

// wait_for_listeners returns once `wanted` active listeners match `topic`.
void wait_for_listeners(const Bus& bus, const PubOptions& o, Clock::duration timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const std::size_t have = matching_listeners(bus, o.topic);
    if (static_cast<std::int64_t>(have) >= o.wait_listeners) {
      return;
    }
    if (stop_requested()) {
      throw CliError(kExitRuntime, "interrupted while waiting for listeners");
    }
    if (Clock::now() >= deadline) {
      throw CliError(kExitRuntime,
                     "only " + std::to_string(have) + " of " +
                         count_of(static_cast<std::uint64_t>(o.wait_listeners), "active listener") +
                         " matching '" + o.topic + "' after " + seconds_text(o.timeout_s) +
                         " (--wait-listeners)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// publish_one publishes one event, retrying while the pool is exhausted, and
// counts the outcome.
void publish_one(Publisher& publisher, const PubOptions& o, std::string_view payload,
                 Clock::duration timeout, Tally& tally) {
  const auto deadline = Clock::now() + timeout;
  auto backoff = std::chrono::microseconds(100);
  for (;;) {
    const PublishResult r = publisher.publish(o.topic, payload);
    switch (r.status) {
      case PublishStatus::kOk:
        tally.deliveries += r.delivered;
        tally.skipped += r.skipped > 0 ? 1 : 0;
        return;
      case PublishStatus::kNoListeners:
        ++tally.no_listeners;
        return;
      case PublishStatus::kTimedOut:
        tally.deliveries += r.delivered;
        ++tally.timed_out;
        return;
      case PublishStatus::kPayloadTooLarge:
        ++tally.too_large;
        return;
      case PublishStatus::kInvalidTopic:
        throw CliError(kExitUsage, "invalid topic " + quote_arg(o.topic));
      case PublishStatus::kPublisherTableFull:
        throw CliError(kExitRuntime,
                       "every publisher slot of the bus is taken (bus.max_publishers)");
      case PublishStatus::kPoolExhausted:
        if (Clock::now() >= deadline || stop_requested()) {
          ++tally.pool_exhausted;
          return;
        }
        std::this_thread::sleep_for(backoff);
        backoff = std::min(backoff * 2, std::chrono::microseconds(10000));
        continue;
    }
    return;
  }
}

std::string failure_report(const Tally& t) {
  std::string what;
  auto add = [&](std::uint64_t n, const char* text) {
    if (n != 0) {
      what += (what.empty() ? "" : ", ") + std::to_string(n) + " " + text;
    }
  };
  add(t.timed_out, "timed out on a full listener (overflow block)");
  add(t.skipped, "skipped a listener (dropped by its policy, paused or closing)");
  add(t.pool_exhausted, "found no free chunk (pool exhausted)");
  add(t.too_large, "too large for the bus");
  return std::to_string(t.failed()) + " of " + count_of(t.events, "event") +
         (t.failed() == 1 ? " was" : " were") + " not delivered to every listener: " + what;
}

int run_pub(const PubOptions& o) {
  if (auto ok = check_topic_name(o.topic); !ok) {
    throw CliError(kExitUsage, "invalid topic " + quote_arg(o.topic) + ": " + ok.error().message);
  }
  install_stop_handlers();
  Bus bus = open_bus(o.bus, /*create=*/true);
  if (auto ok = check_topic_name(o.topic, bus.config().max_topic_bytes); !ok) {
    throw CliError(kExitUsage, "invalid topic " + quote_arg(o.topic) + " for bus '" + bus.name() +
                                   "': " + ok.error().message);
  }
  const auto timeout =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.timeout_s));
  const std::size_t max_payload = largest_payload(bus.config());
  Publisher publisher = bus.publisher();
  publisher.set_block_timeout(timeout);
  publisher.set_cancel_flag(stop_flag());  // Ctrl-C ends a wait for room at once
  if (o.wait_listeners > 0) {
    wait_for_listeners(bus, o, timeout);
  }

  Tally tally;
  bool interrupted = false;
  if (o.has_message) {
    ++tally.events;
    publish_one(publisher, o, o.message, timeout, tally);
  } else {
    LineReader reader(STDIN_FILENO, max_payload);
    std::string line;
    std::size_t length = 0;
    for (;;) {
      if (stop_requested()) {
        interrupted = true;
        break;
      }
      const LineReader::Status s = reader.next(line, &length);
      if (s == LineReader::Status::kEnd) {
        break;
      }
      if (s == LineReader::Status::kInterrupted) {
        interrupted = true;
        break;
      }
      ++tally.events;
      if (s == LineReader::Status::kTooLong) {
        ++tally.too_large;
        std::cerr << "ipcbus pub: line " << tally.events << " is " << length
                  << " bytes, longer than the largest payload of bus '" << bus.name() << "' ("
                  << max_payload << " bytes); not published\n";
        continue;
      }
      publish_one(publisher, o, line, timeout, tally);
    }
  }
  if (o.has_message && tally.too_large != 0) {
    std::cerr << "ipcbus pub: the message is " << o.message.size()
              << " bytes, longer than the largest payload of bus '" << bus.name() << "' ("
              << max_payload << " bytes)\n";
  }

  if (o.verbose) {
    std::cerr << "ipcbus pub: " << count_of(tally.events, "event") << " on '" << o.topic << "', "
              << tally.deliveries << (tally.deliveries == 1 ? " delivery" : " deliveries");
    if (tally.no_listeners != 0) {
      std::cerr << ", " << tally.no_listeners << " with no listener";
    }
    std::cerr << '\n';
  }
  if (interrupted) {
    throw CliError(kExitRuntime, "interrupted after " + count_of(tally.events, "event"));
  }
  if (tally.failed() != 0) {
    throw CliError(kExitRuntime, failure_report(tally));
  }
  return kExitOk;
}

}  // namespace

Command add_pub_command(CLI::App& app) {
  auto o = std::make_shared<PubOptions>();
  CLI::App* cmd = app.add_subcommand("pub", "Publish events on a topic");
  cmd->footer(
      "Publish events on TOPIC: the -m message, or else one event per line of standard\n"
      "input (without its newline; a last line without one counts too). Creates the bus\n"
      "if it does not exist. No listener is not an error. Exits 1, saying how many,\n"
      "when events were not delivered to every matching listener: a block-policy\n"
      "listener stayed full past --timeout, a listener dropped or skipped it, no chunk\n"
      "came free within --timeout, or a line was longer than the largest payload.\n"
      "\n"
      "Examples:\n"
      "  ipcbus pub sensors/kitchen/temp -m 21.5\n"
      "  ipcbus sub 'logs/#' > copy.log & ipcbus pub --wait-listeners 1 logs/dpkg < "
      "/var/log/dpkg.log");
  add_bus_option(*cmd, o->bus);
  cmd->add_option("TOPIC", o->topic, "Topic name, e.g. 'sensors/kitchen/temp'")->required();
  CLI::Option* message =
      cmd->add_option("-m,--message", o->message, "Publish this one event instead of reading stdin")
          ->type_name("TEXT");
  cmd->add_option("--timeout", o->timeout_s,
                  "Seconds to wait for room in a full block-policy listener, for a free chunk,\n"
                  "and for --wait-listeners")
      ->type_name("SECONDS")
      ->check(number_in(0.0, kMaxSeconds).description(""))
      ->capture_default_str();
  cmd->add_option("--wait-listeners", o->wait_listeners,
                  "Before publishing, wait (up to --timeout) until N active listeners match TOPIC")
      ->type_name("N")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1} << 20).description(""))
      ->capture_default_str();
  cmd->add_flag("-v,--verbose", o->verbose, "Report on stderr what was published");
  return {cmd, [o, message] {
            o->has_message = message->count() > 0;
            return run_pub(*o);
          }};
}

}  // namespace ipcbus::cli
