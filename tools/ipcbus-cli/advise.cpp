// advise.cpp: `ipcbus advise FILTER`: ring capacity and pool sizes by Little's
// law (L = lambda * W), from the live rate and latency of the listeners that
// FILTER selects or from a rate and latency given as flags, and which current
// settings would drop or block.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <thread>

#include "cli.hpp"
#include "ipcbus/topic.hpp"
#include "records.hpp"
#include "sizing.hpp"
#include "text.hpp"

namespace ipcbus::cli {

namespace {

inline constexpr auto kSampleStep = std::chrono::milliseconds(100);

struct AdviseOptions {
  std::string bus;
  std::string filter;
  double sample_s = 2.0;
  double rate = 0;  // events/s; > 0 selects the flag mode
  double latency_s = 0;
  double burst_s = 0;
  std::int64_t listeners = 0;  // flag mode: listeners to size pools for (0: those matching)
  std::int64_t size = 0;       // payload bytes (0: the publishers' mean, else the smallest class)
};

// What the sample saw of one listener.
struct Observed {
  std::size_t at = 0;           // index in Sampled::last.info.listeners
  double offered_per_s = 0;     // lambda: events publishers gave it
  double received_per_s = 0;    // mu: events it took
  double mean_backlog = 0;      // L, averaged over the readings
  std::optional<double> p99_s;  // W from its histogram, if on
  std::uint64_t dropped = 0;
};

struct Sampled {
  Snapshot last;
  std::vector<Observed> listeners;       // those FILTER selects
  std::vector<std::uint64_t> peak_used;  // per pool, over the readings
  double mean_size = 0;                  // payload bytes per event published in the sample
};

Sampled sample(const Bus& bus, const AdviseOptions& o) {
  const auto length =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.sample_s));
  const Snapshot first = take_snapshot(bus);
  Sampled out{first, {}, std::vector<std::uint64_t>(first.info.pools.size(), 0), 0};
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::pair<double, int>> backlog;
  for (;;) {
    for (const ListenerInfo& l : out.last.info.listeners) {
      auto& [sum, n] = backlog[{l.index, l.generation}];
      sum += l.fill.used;
      ++n;
    }
    for (std::size_t k = 0; k < out.last.info.pools.size() && k < out.peak_used.size(); ++k) {
      const PoolInfo& p = out.last.info.pools[k];
      out.peak_used[k] =
          std::max<std::uint64_t>(out.peak_used[k], p.total - std::min(p.free, p.total));
    }
    const auto elapsed = out.last.at - first.at;
    if (elapsed >= length || stop_requested()) {
      break;
    }
    std::this_thread::sleep_for(std::min<Clock::duration>(kSampleStep, length - elapsed));
    out.last = take_snapshot(bus);
  }

  std::uint64_t events = 0;
  std::uint64_t bytes = 0;
  for (const PublisherInfo& p : out.last.info.publishers) {
    const PublisherInfo* was = find_publisher(first.info, p.id);
    events += was != nullptr ? counter_delta(was->published, p.published) : p.published;
    bytes += was != nullptr ? counter_delta(was->bytes, p.bytes) : p.bytes;
  }
  out.mean_size = events == 0 ? 0 : static_cast<double>(bytes) / static_cast<double>(events);

  const auto& listeners = out.last.info.listeners;
  for (std::size_t i = 0; i < listeners.size(); ++i) {
    const ListenerInfo& l = listeners[i];
    if (std::none_of(l.filters.begin(), l.filters.end(),
                     [&](const std::string& f) { return overlaps(o.filter, f); })) {
      continue;
    }
    Observed ob;
    ob.at = i;
    if (auto d = listener_delta(first, out.last, l)) {
      ob.offered_per_s = d->per_second(d->offered());
      ob.received_per_s = d->per_second(d->received);
      ob.dropped = d->dropped();
      if (auto p99 = histogram_quantile(d->latency, 0.99)) {
        ob.p99_s = *p99 / 1e9;
      }
    }
    const auto& [sum, n] = backlog[{l.index, l.generation}];
    ob.mean_backlog = n == 0 ? 0 : sum / n;
    out.listeners.push_back(ob);
  }
  return out;
}

std::string policy_line(const ListenerInfo& l) {
  return "listener " + std::to_string(l.index) + " (pid " + std::to_string(l.owner_pid) + ", " +
         overflow_name(l.overflow) + ", capacity " + std::to_string(l.fill.capacity) +
         ", filters: " +
         [&] {
           std::string all;
           for (const std::string& f : l.filters) {
             all += (all.empty() ? "" : " ") + f;
           }
           return all;
         }() +
         ")";
}

int run_sampled(const Bus& bus, const AdviseOptions& o) {
  const Sampled s = sample(bus, o);
  const BusInfo& info = s.last.info;
  std::cout << "advise for '" << o.filter << "' on bus '" << info.name << "': sampled "
            << num(o.sample_s) << " s, " << s.listeners.size() << " listener"
            << (s.listeners.size() == 1 ? "" : "s") << " selected\n";
  if (s.listeners.empty()) {
    std::cout << "no listener receives events that '" << o.filter
              << "' matches; 'ipcbus ls topics' lists the filters held\n";
    return kExitRuntime;
  }
  std::vector<std::uint64_t> capacities;
  for (const Observed& ob : s.listeners) {
    const ListenerInfo& l = info.listeners[ob.at];
    std::cout << "\n"
              << policy_line(l) << "\n  offered " << si_number(ob.offered_per_s)
              << " events/s, received " << si_number(ob.received_per_s)
              << " events/s, mean backlog " << num(ob.mean_backlog) << ", " << ob.dropped
              << " lost in the sample\n";
    if (ob.offered_per_s <= 0) {
      std::cout << "  no events offered during the sample: run it while the publishers run,\n"
                   "  or give --rate and --latency\n";
      capacities.push_back(l.fill.capacity);
      continue;
    }
    Advice a;
    if (ob.p99_s) {
      a = advise_capacity(ob.offered_per_s, *ob.p99_s, o.burst_s,
                          "p99 publish-to-receive latency from its histogram");
    } else {
      const double w = ob.received_per_s > 0 ? ob.mean_backlog / ob.received_per_s : 0;
      a = advise_capacity(ob.offered_per_s, w, o.burst_s,
                          "mean backlog / receive rate, Little's law; a lower bound with the "
                          "histogram off");
    }
    explain(a, o.burst_s);
    if (ob.received_per_s < 0.95 * ob.offered_per_s && (ob.dropped > 0 || l.fill.behind)) {
      std::cout << "  it receives less than it is offered: no ring is large enough for a\n"
                   "  listener slower than its publishers; capacity only buys time\n";
    }
    std::cout << "  verdict: " << judge(l, a.capacity) << "\n";
    capacities.push_back(a.capacity);
  }
  double size = static_cast<double>(o.size);
  std::string size_source = "--size";
  if (o.size == 0) {
    size = s.mean_size > 0 ? s.mean_size : 1;
    size_source = s.mean_size > 0 ? "mean of the events published in the sample"
                                  : "nothing published in the sample: the smallest class";
  }
  advise_pools(capacities, info.publishers.size(), info.listeners.size() - s.listeners.size(),
               info.config, size, size_source, &s.peak_used);
  if (o.burst_s == 0) {
    std::cout << "\n(--burst SECONDS adds room for stalls of the listeners or bursts of the "
                 "publishers)\n";
  }
  return kExitOk;
}

int run_flags(const AdviseOptions& o) {
  std::optional<Bus> bus;
  try {
    bus.emplace(open_bus(o.bus, /*create=*/false));
  } catch (const CliError& e) {
    std::cerr << "ipcbus advise: " << e.what() << "; advising without the bus\n";
  }
  std::cout << "advise for " << num(o.rate) << " events/s within " << duration_ns(o.latency_s * 1e9)
            << (o.burst_s > 0 ? ", bursts of " + num(o.burst_s) + " s" : std::string()) << "\n\n";
  const Advice a = advise_capacity(o.rate, o.latency_s, o.burst_s, "--latency");
  std::cout << "ring capacity\n";
  explain(a, o.burst_s);
  const Config config = bus ? bus->config() : Config{};
  std::vector<const ListenerInfo*> selected;
  BusInfo info;
  if (bus) {
    info = bus->inspect();
    for (const ListenerInfo& l : info.listeners) {
      if (std::any_of(l.filters.begin(), l.filters.end(),
                      [&](const std::string& f) { return overlaps(o.filter, f); })) {
        selected.push_back(&l);
      }
    }
  }
  const std::size_t n = o.listeners > 0 ? static_cast<std::size_t>(o.listeners)
                                        : std::max<std::size_t>(selected.size(), 1);
  const std::size_t others = o.listeners > 0 ? 0 : info.listeners.size() - selected.size();
  advise_pools(std::vector<std::uint64_t>(n, a.capacity), bus ? info.publishers.size() : 1, others,
               config, o.size > 0 ? static_cast<double>(o.size) : 1,
               o.size > 0 ? "--size" : "no --size: the smallest class", nullptr);
  if (bus) {
    std::cout << "\ncurrent listeners that '" << o.filter << "' selects on bus '" << info.name
              << "'\n";
    if (selected.empty()) {
      std::cout << "  none\n";
    }
    for (const ListenerInfo* l : selected) {
      std::cout << "  " << policy_line(*l) << ": " << judge(*l, a.capacity) << "\n";
    }
  }
  return kExitOk;
}

int run_advise(const AdviseOptions& o) {
  if (auto ok = check_topic_filter(o.filter); !ok) {
    throw CliError(kExitUsage, "invalid filter " + quote_arg(o.filter) + ": " + ok.error().message);
  }
  if (o.rate > 0) {
    if (o.latency_s <= 0) {
      throw CliError(kExitUsage, "--rate needs --latency (the time an event may wait)");
    }
    return run_flags(o);
  }
  if (o.latency_s > 0) {
    throw CliError(kExitUsage, "--latency goes with --rate; without them advise samples the bus");
  }
  install_stop_handlers();
  const Bus bus = open_bus(o.bus, /*create=*/false);
  return run_sampled(bus, o);
}

}  // namespace

Command add_advise_command(CLI::App& app) {
  auto o = std::make_shared<AdviseOptions>();
  CLI::App* cmd =
      app.add_subcommand("advise", "Recommend ring capacity and pool sizes (Little's law)");
  cmd->footer(
      "Recommend ring capacities and pool sizes for the listeners FILTER selects (those\n"
      "that receive some of the events FILTER matches; '#' selects all), by Little's\n"
      "law: events queued L = lambda * W, lambda the events offered per second and W\n"
      "the time one waits. Capacity = L plus lambda * burst, times 2 for headroom,\n"
      "rounded up to a power of two. Then says which current settings drop or block.\n"
      "\n"
      "By default it samples the bus for --sample seconds: lambda from the counters, W\n"
      "from the listener's latency histogram (p99) when on, else mean backlog over the\n"
      "receive rate. With --rate and --latency it uses those instead (and checks the\n"
      "listeners if the bus exists). Does not create the bus.\n"
      "\n"
      "Examples:\n"
      "  ipcbus advise 'sensors/#' --sample 5\n"
      "  ipcbus advise '#' --rate 20000 --latency 0.0005 --burst 0.05 --size 200");
  add_bus_option(*cmd, o->bus);
  cmd->add_option("FILTER", o->filter, "Topic filter selecting the listeners")->required();
  cmd->add_option("--sample", o->sample_s, "Seconds to sample the counters over")
      ->type_name("SECONDS")
      ->check(number_in(0.1, 3600.0).description(""))
      ->capture_default_str();
  cmd->add_option("--rate", o->rate, "Events per second to size for (instead of sampling)")
      ->type_name("EVENTS_PER_S")
      ->check(number_in(1e-6, 1e12).description(""));
  cmd->add_option("--latency", o->latency_s, "Seconds an event may wait in a ring (with --rate)")
      ->type_name("SECONDS")
      ->check(number_in(1e-9, kMaxSeconds).description(""));
  cmd->add_option("--burst", o->burst_s,
                  "Seconds of arrivals at the full rate the ring must absorb on top (a stall of\n"
                  "the listener or a burst of the publishers)")
      ->type_name("SECONDS")
      ->check(number_in(0.0, kMaxSeconds).description(""))
      ->capture_default_str();
  cmd->add_option("--listeners", o->listeners, "With --rate: listeners to size the pools for")
      ->type_name("N")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 20).description(""));
  cmd->add_option("--size", o->size, "Payload bytes, to pick the pool size class")
      ->type_name("BYTES")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 32).description(""));
  return {cmd, [o] { return run_advise(*o); }};
}

}  // namespace ipcbus::cli
