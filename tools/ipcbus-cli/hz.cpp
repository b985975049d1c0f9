// hz.cpp: `ipcbus hz FILTER...` and `ipcbus bw FILTER...`: the rate and the
// bandwidth of the events that match, printed once a second over a sliding
// window, in the shape ros2 topic hz and bw print them. Each runs a listener
// of its own with the drop-oldest policy, so that it never slows a publisher.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>

#include "cli.hpp"
#include "ipcbus/topic.hpp"
#include "text.hpp"

namespace ipcbus::cli {

namespace {

using Clock = std::chrono::steady_clock;

inline constexpr auto kPollSlice = std::chrono::milliseconds(100);
inline constexpr auto kReportEvery = std::chrono::seconds(1);

enum class Measure { kRate, kBandwidth };

struct RateOptions {
  Measure measure = Measure::kRate;
  std::string bus;
  std::vector<std::string> filters;
  std::int64_t count = 0;     // 0: no limit
  double idle_timeout_s = 0;  // 0: none
  std::int64_t window = 0;    // set per measure
  bool publish_time = false;
};

// One event as the window keeps it.
struct Arrival {
  double seconds;  // arrival (or publish) time
  std::size_t bytes;
};

// "1.23 KB/s": decimal prefixes, as ros2 topic bw prints them.
std::string rate_of_bytes(double bytes_per_s) {
  char text[48];
  if (bytes_per_s < 1000) {
    std::snprintf(text, sizeof text, "%.2f B/s", bytes_per_s);
  } else if (bytes_per_s < 1e6) {
    std::snprintf(text, sizeof text, "%.2f KB/s", bytes_per_s / 1e3);
  } else {
    std::snprintf(text, sizeof text, "%.2f MB/s", bytes_per_s / 1e6);
  }
  return text;
}

std::string size_text(double bytes) {
  char text[48];
  if (bytes < 1000) {
    std::snprintf(text, sizeof text, "%.0f B", bytes);
  } else if (bytes < 1e6) {
    std::snprintf(text, sizeof text, "%.2f KB", bytes / 1e3);
  } else {
    std::snprintf(text, sizeof text, "%.2f MB", bytes / 1e6);
  }
  return text;
}

// print_rate: the mean interval's inverse, and the spread of the intervals.
void print_rate(const std::deque<Arrival>& window) {
  const std::size_t n = window.size() - 1;  // intervals
  double min = std::numeric_limits<double>::max();
  double max = 0;
  double sum = 0;
  for (std::size_t i = 1; i < window.size(); ++i) {
    const double gap = window[i].seconds - window[i - 1].seconds;
    min = std::min(min, gap);
    max = std::max(max, gap);
    sum += gap;
  }
  const double mean = sum / static_cast<double>(n);
  double squares = 0;
  for (std::size_t i = 1; i < window.size(); ++i) {
    const double d = window[i].seconds - window[i - 1].seconds - mean;
    squares += d * d;
  }
  const double std_dev = std::sqrt(squares / static_cast<double>(n));
  char text[200];
  std::snprintf(text, sizeof text,
                "average rate: %.3f\n\tmin: %.6fs max: %.6fs std dev: %.6fs window: %zu\n",
                mean > 0 ? 1.0 / mean : 0.0, min, max, std_dev, window.size());
  std::cout << text;
}

// print_bandwidth: bytes over the window's time span (up to now), and the
// spread of the sizes.
void print_bandwidth(const std::deque<Arrival>& window, double now_s) {
  std::size_t total = 0;
  std::size_t min = std::numeric_limits<std::size_t>::max();
  std::size_t max = 0;
  for (const Arrival& a : window) {
    total += a.bytes;
    min = std::min(min, a.bytes);
    max = std::max(max, a.bytes);
  }
  const double span = now_s - window.front().seconds;
  const double per_s = span > 0 ? static_cast<double>(total) / span : 0.0;
  std::cout << rate_of_bytes(per_s) << " from " << window.size() << " messages\n"
            << "\tMessage size mean: "
            << size_text(static_cast<double>(total) / static_cast<double>(window.size()))
            << " min: " << size_text(static_cast<double>(min))
            << " max: " << size_text(static_cast<double>(max)) << '\n';
}

double seconds_of(Clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

int run_rate(const RateOptions& o) {
  for (const std::string& f : o.filters) {
    if (auto ok = check_topic_filter(f); !ok) {
      throw CliError(kExitUsage, "invalid filter " + quote_arg(f) + ": " + ok.error().message);
    }
  }
  install_stop_handlers();
  Bus bus = open_bus(o.bus, /*create=*/true);
  ListenerOptions options;
  options.overflow = Overflow::kDropOldest;  // a measuring tool must not hold publishers up
  auto made = bus.listen(options);
  if (!made) {
    throw CliError(kExitRuntime, std::string("cannot make a listener: ") +
                                     errc_name(made.error().code) + ": " + made.error().message);
  }
  Listener listener = std::move(made).value();
  for (const std::string& f : o.filters) {
    if (auto ok = listener.subscribe(f); !ok) {
      throw CliError(kExitRuntime, "cannot subscribe " + quote_arg(f) + ": " + ok.error().message);
    }
  }

  const auto window_size = static_cast<std::size_t>(o.window);
  const auto idle =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.idle_timeout_s));
  std::deque<Arrival> window;
  std::int64_t seen = 0;
  std::int64_t seen_at_report = 0;
  std::uint64_t dropped_at_report = 0;
  auto last_event = Clock::now();
  auto next_report = Clock::now() + kReportEvery;
  bool done = false;

  auto report = [&] {
    if (seen == 0) {
      return;  // as ros2 does: silent until the first event
    }
    if (seen == seen_at_report) {
      std::cout << "no new messages\n";
    } else if (o.measure == Measure::kRate && window.size() >= 2) {
      print_rate(window);
    } else if (o.measure == Measure::kBandwidth && !window.empty()) {
      print_bandwidth(window, o.publish_time ? window.back().seconds : seconds_of(Clock::now()));
    }
    const std::uint64_t dropped = listener.counters().dropped_oldest;
    if (dropped != dropped_at_report) {
      std::cout << "\t(" << dropped - dropped_at_report
                << " events dropped by this tool's own listener, which fell behind: the "
                   "figures are low)\n";
      dropped_at_report = dropped;
    }
    std::cout.flush();
    seen_at_report = seen;
  };

  while (!done && !stop_requested()) {
    std::optional<Sample> sample = listener.try_receive();
    const auto now = Clock::now();
    if (!sample) {
      if (now >= next_report) {
        report();
        next_report += kReportEvery;
        if (next_report <= now) {
          next_report = now + kReportEvery;  // we were suspended: do not catch up
        }
      }
      if (o.idle_timeout_s > 0 && now - last_event >= idle) {
        break;
      }
      sample = listener.receive_for(std::min<Clock::duration>(kPollSlice, next_report - now));
      if (!sample) {
        continue;
      }
    }
    const double at = o.publish_time ? static_cast<double>(sample->timestamp_ns()) / 1e9
                                     : seconds_of(Clock::now());
    window.push_back({at, sample->payload().size()});
    if (window.size() > window_size) {
      window.pop_front();
    }
    sample.reset();
    ++seen;
    last_event = Clock::now();
    if (o.count != 0 && seen >= o.count) {
      report();
      done = true;
    }
  }
  listener.close();
  return kExitOk;
}

Command add_rate_command(CLI::App& app, Measure measure) {
  auto o = std::make_shared<RateOptions>();
  o->measure = measure;
  const bool hz = measure == Measure::kRate;
  o->window = hz ? 10000 : 100;  // ros2 topic hz and bw defaults
  CLI::App* cmd =
      hz ? app.add_subcommand("hz", "Print the rate of the events matching the filters")
         : app.add_subcommand("bw", "Print the bandwidth of the events matching the filters");
  std::string footer =
      hz ? "Once a second, print the average rate of the events that match any FILTER over\n"
           "the last --window events, with the min, max and standard deviation of the\n"
           "intervals between them (as ros2 topic hz does); 'no new messages' when none\n"
           "came. Intervals are between arrivals at this tool, or with --publish-time\n"
           "between publish timestamps (exact for one publisher).\n"
           "\n"
           "Example:\n"
           "  ipcbus hz 'sensors/+/temp'"
         : "Once a second, print the bandwidth of the events that match any FILTER over the\n"
           "last --window events (payload bytes over the time since the oldest of them),\n"
           "with the mean, min and max payload size (as ros2 topic bw does); 'no new\n"
           "messages' when none came.\n"
           "\n"
           "Example:\n"
           "  ipcbus bw 'camera/#'";
  cmd->footer(footer +
              "\n\nRuns its own drop-oldest listener, so it never slows a publisher; if it falls\n"
              "behind it says how many events it lost. Creates the bus if it does not exist.\n"
              "Runs until -C events came, -W seconds passed without one, or SIGINT; each\n"
              "exits 0.");
  add_bus_option(*cmd, o->bus);
  cmd->add_option("FILTER", o->filters, "Topic filters, e.g. 'sensors/+/temp'")->required();
  cmd->add_option("-C,--count", o->count, "Exit after N events (printing the figures once more)")
      ->type_name("N")
      ->check(
          CLI::Range(std::int64_t{1}, std::numeric_limits<std::int64_t>::max()).description(""));
  cmd->add_option("-W,--idle-timeout", o->idle_timeout_s, "Exit after SECONDS without an event")
      ->type_name("SECONDS")
      ->check(number_in(0.001, kMaxSeconds).description(""));
  cmd->add_option("-w,--window", o->window, "Events the figures are computed over")
      ->type_name("N")
      ->check(CLI::Range(std::int64_t{2}, std::int64_t{10000000}).description(""))
      ->capture_default_str();
  cmd->add_flag("--publish-time", o->publish_time,
                "Time events by their publish timestamps instead of their arrival");
  return {cmd, [o] { return run_rate(*o); }};
}

}  // namespace

Command add_hz_command(CLI::App& app) {
  return add_rate_command(app, Measure::kRate);
}

Command add_bw_command(CLI::App& app) {
  return add_rate_command(app, Measure::kBandwidth);
}

}  // namespace ipcbus::cli
