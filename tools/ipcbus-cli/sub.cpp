// sub.cpp: `ipcbus sub FILTER...`: one listener holding every filter, each
// event printed on a line of its own (as mosquitto_sub prints them), from a
// -F format string, or as one JSON object per line.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli.hpp"
#include "event_format.hpp"
#include "ipcbus/topic.hpp"
#include "text.hpp"

namespace ipcbus::cli {

namespace {

using Clock = std::chrono::steady_clock;

// How long one wait lasts at most, so that a stop signal is seen promptly.
inline constexpr auto kPollSlice = std::chrono::milliseconds(100);
// How often an idle sub checks that the bus's name still leads to its segment.
inline constexpr auto kNameCheckEvery = std::chrono::seconds(1);

struct SubOptions {
  std::string bus;
  std::vector<std::string> filters;
  bool verbose = false;
  bool json = false;
  std::string format;       // -F; empty: none
  bool no_newline = false;  // -N
  bool latency_histogram = false;
  // Counts are signed: CLI11 would read "-1" into an unsigned as its maximum.
  std::int64_t count = 0;     // 0: no limit
  double idle_timeout_s = 0;  // 0: none
  std::int64_t capacity = 0;
  std::string overflow = "block";
  std::string wait = "hybrid";
};

void write_event(const Sample& sample, const SubOptions& o, const EventFormat* format,
                 OutputBuffer& out) {
  if (format != nullptr) {
    format->write(sample, out);
    if (!o.no_newline) {
      out.append('\n');
    }
    return;
  }
  if (!o.json) {
    if (o.verbose) {
      out.append(sample.topic());
      out.append(' ');
    }
    out.append(sample.payload_text());
    if (!o.no_newline) {
      out.append('\n');
    }
    return;
  }
  nlohmann::ordered_json event;
  event["topic"] = std::string(sample.topic());
  event["seq"] = sample.sequence();
  event["timestamp_ns"] = sample.timestamp_ns();
  event["publisher"] = sample.publisher_id();
  const std::string_view payload = sample.payload_text();
  if (is_valid_utf8(payload)) {
    event["payload"] = std::string(payload);
  } else {
    event["payload_base64"] = base64_encode(payload);
    event["payload_encoding"] = "base64";
  }
  out.append(event.dump());
  out.append('\n');
}

ListenerOptions listener_options(const SubOptions& o) {
  ListenerOptions options;
  options.capacity = static_cast<std::uint32_t>(o.capacity);  // checked: 0..2^30
  // Both were checked against the names by CLI11; a miss is a bug here.
  options.overflow = parse_overflow(o.overflow).value_or(Overflow::kBlock);
  options.wait = parse_wait_strategy(o.wait).value_or(WaitStrategy::kHybrid);
  options.latency_histogram = o.latency_histogram;
  return options;
}

int run_sub(const SubOptions& o) {
  std::optional<EventFormat> format;
  if (!o.format.empty()) {
    format.emplace(o.format);  // a bad format is a usage error, before any bus work
  }
  for (const std::string& f : o.filters) {
    if (auto ok = check_topic_filter(f); !ok) {
      throw CliError(kExitUsage, "invalid filter " + quote_arg(f) + ": " + ok.error().message);
    }
  }
  install_stop_handlers();
  Bus bus = open_bus(o.bus, /*create=*/true);
  auto made = bus.listen(listener_options(o));
  if (!made) {
    throw CliError(kExitRuntime, std::string("cannot make a listener: ") +
                                     errc_name(made.error().code) + ": " + made.error().message);
  }
  Listener listener = std::move(made).value();
  for (const std::string& f : o.filters) {
    if (auto ok = listener.subscribe(f); !ok) {
      const int code = ok.error().code == Errc::kInvalidFilter ? kExitUsage : kExitRuntime;
      throw CliError(code, "cannot subscribe " + quote_arg(f) + ": " + ok.error().message);
    }
  }

  OutputBuffer out(STDOUT_FILENO);
  const bool interactive = isatty(STDOUT_FILENO) != 0;
  const bool has_idle = o.idle_timeout_s > 0;
  const auto idle =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.idle_timeout_s));
  auto last_event = Clock::now();
  auto next_name_check = last_event + kNameCheckEvery;
  bool told_unlinked = false;
  std::int64_t seen = 0;
  while (!stop_requested() && !out.closed() && (o.count == 0 || seen < o.count)) {
    std::optional<Sample> sample = listener.try_receive();
    if (!sample) {
      out.flush();  // nothing pending: let readers of a pipe see what we have
      if (!told_unlinked && Clock::now() >= next_name_check) {
        next_name_check = Clock::now() + kNameCheckEvery;
        if (!bus.name_linked()) {
          // Publishers already attached still reach us; new ones open a new bus.
          told_unlinked = true;
          std::cerr << "ipcbus sub: bus '" << bus.name()
                    << "' was destroyed (ipcbus destroy --force) or replaced: publishers that "
                       "open it from now on get a new bus and do not reach this subscriber; "
                       "restart sub to follow them\n";
        }
      }
      auto slice = Clock::duration(kPollSlice);
      if (has_idle) {
        const auto left = last_event + idle - Clock::now();
        if (left <= Clock::duration::zero()) {
          break;
        }
        slice = std::min(slice, left);
      }
      sample = listener.receive_for(slice);
      if (!sample) {
        continue;
      }
    }
    write_event(*sample, o, format ? &*format : nullptr, out);
    sample.reset();  // the chunk goes back before we wait again
    ++seen;
    last_event = Clock::now();
    if (interactive) {
      out.flush();
    }
  }
  out.flush();
  listener.close();
  return kExitOk;
}

}  // namespace

Command add_sub_command(CLI::App& app) {
  auto o = std::make_shared<SubOptions>();
  CLI::App* cmd = app.add_subcommand("sub", "Subscribe to topic filters and print the events");
  cmd->footer(
      "Subscribe to the FILTERs (MQTT wildcards '+' and '#') on one listener and print\n"
      "each event's payload on a line of its own. Creates the bus if it does not exist.\n"
      "Runs until -C events arrived, -W seconds passed without one, or SIGINT/SIGTERM;\n"
      "each of these exits 0. A closed output (e.g. '| head -1') ends it quietly, also 0.\n"
      "The default overflow policy is block, so that a shell pipeline loses nothing; a\n"
      "stopped subscriber then holds its publishers up to their --timeout.\n"
      "\n"
      "Examples:\n"
      "  ipcbus sub 'logs/#' > events.txt\n"
      "  ipcbus sub -v -C 10 'sensors/+/temp'\n"
      "  ipcbus sub --json -W 5 '#'\n"
      "  ipcbus sub -F '%t seq=%s len=%l %p' 'sensors/#'\n"
      "\n"
      "-F fields: %t topic, %p payload, %l payload length, %s sequence (per publisher),\n"
      "%T publish timestamp (ns, CLOCK_MONOTONIC), %I publisher id, %x payload as hex,\n"
      "%% a '%'; escapes \\n \\t \\r \\\\. Each event's line ends in a newline unless -N.");
  add_bus_option(*cmd, o->bus);
  cmd->add_option("FILTER", o->filters, "Topic filters, e.g. 'sensors/+/temp' 'logs/#'")
      ->required();
  CLI::Option* verbose =
      cmd->add_flag("-v,--verbose", o->verbose, "Print 'TOPIC PAYLOAD' (as mosquitto_sub -v does)");
  CLI::Option* json =
      cmd->add_flag("--json", o->json,
                    "One JSON object per event: topic, seq, timestamp_ns, publisher, and payload\n"
                    "(or payload_base64 with payload_encoding \"base64\" when not UTF-8)");
  cmd->add_option("-F,--format", o->format, "Print each event by FORMAT (fields below)")
      ->type_name("FORMAT")
      ->excludes(verbose)
      ->excludes(json);
  cmd->add_flag("-N,--no-newline", o->no_newline,
                "Do not end each event with a newline (payloads and -F output)")
      ->excludes(json);
  cmd->add_flag("--latency-histogram", o->latency_histogram,
                "Keep this listener's receive-latency histogram in the segment (shown by\n"
                "stat, top and advise; costs one clock read per event)");
  cmd->add_option("-C,--count", o->count, "Exit after N events")
      ->type_name("N")
      ->check(
          CLI::Range(std::int64_t{1}, std::numeric_limits<std::int64_t>::max()).description(""));
  cmd->add_option("-W,--idle-timeout", o->idle_timeout_s,
                  "Exit (status 0) after SECONDS without an event. Unlike mosquitto_sub -W,\n"
                  "the clock restarts with every event")
      ->type_name("SECONDS")
      ->check(number_in(0.001, kMaxSeconds).description(""));
  cmd->add_option("--capacity", o->capacity,
                  "Ring capacity in events (rounded up to a power of two, at most the bus's\n"
                  "ring size; 0 = the bus's ring size)")
      ->type_name("N")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1} << 30).description(""))
      ->capture_default_str();
  cmd->add_option("--overflow", o->overflow,
                  "When the ring is full: block (the publisher waits; nothing is lost),\n"
                  "drop-newest, or drop-oldest")
      ->type_name("POLICY")
      ->check(CLI::IsMember({"block", "drop-newest", "drop-oldest"}))
      ->capture_default_str();
  cmd->add_option("--wait", o->wait, "How to wait for events: spin, hybrid or sleep")
      ->type_name("STRATEGY")
      ->check(CLI::IsMember({"spin", "hybrid", "sleep"}))
      ->capture_default_str();
  return {cmd, [o] { return run_sub(*o); }};
}

}  // namespace ipcbus::cli
