// ipcbus-agent: the housekeeping process of a bus. It creates the bus with
// the embedded default configuration if it does not exist (or opens it),
// reports the configuration, and watches the process table, logging every
// attach and detach. It is never on the data path: the bus works without it.
//
// TODO: reclaim what crashed processes held and prune the trie after them;
// the crash cleanup issue builds that on this loop.
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <map>
#include <thread>

#include "ipcbus/bus.hpp"

namespace {

std::atomic<int> g_signal{0};

void on_signal(int sig) { g_signal.store(sig, std::memory_order_relaxed); }  // relaxed: a flag

struct Seen {
  std::int32_t pid;
  bool alive;
};

void report_config(spdlog::logger& log, const ipcbus::Bus& bus) {
  const ipcbus::BusInfo info = bus.inspect();
  const ipcbus::Config& c = info.config;
  std::string pools;
  for (const auto& p : c.pools) {
    pools += (pools.empty() ? "" : ",") + std::to_string(p.payload_bytes) + "x" +
             std::to_string(p.count);
  }
  log.info(
      "config bus={} layout={} bytes={} pools={} listeners={} ring={} trie_nodes={} "
      "subscriptions={} max_topic={} processes={}",
      info.name, info.layout_version, info.segment_bytes, pools, c.max_listeners,
      c.ring_capacity, c.trie_nodes, c.subscriptions, c.max_topic_bytes, c.max_processes);
}

// Log the difference between the process table now and what we saw last.
void watch_processes(spdlog::logger& log, const ipcbus::Bus& bus,
                     std::map<std::uint32_t, Seen>& seen) {
  const ipcbus::BusInfo info = bus.inspect();
  std::map<std::uint32_t, Seen> now;
  for (const auto& p : info.processes) {
    now[p.index] = Seen{p.pid, p.alive};
  }
  for (const auto& [index, s] : now) {
    auto it = seen.find(index);
    if (it == seen.end() || it->second.pid != s.pid) {
      log.info("process attached pid={} entry={}", s.pid, index);
    }
    if (!s.alive && (it == seen.end() || it->second.alive)) {
      log.warn("process gone without detaching pid={} entry={}", s.pid, index);
    }
  }
  for (const auto& [index, s] : seen) {
    auto it = now.find(index);
    if (it == now.end() || it->second.pid != s.pid) {
      log.info("process detached pid={} entry={}", s.pid, index);
    }
  }
  seen = std::move(now);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ipcbus-agent: housekeeping for an ipcbus bus"};
  std::string bus_name;
  std::string level = "info";
  double interval = 0.1;
  app.add_option("--bus", bus_name, "bus name (default: $IPCBUS_BUS, else 'default')");
  app.add_option("--log-level", level, "trace, debug, info, warn, error")
      ->envname("IPCBUS_LOG_LEVEL");
  app.add_option("--interval", interval, "seconds between looks at the process table")
      ->check(CLI::Range(0.01, 60.0));
  CLI11_PARSE(app, argc, argv);

  auto log = spdlog::stderr_color_mt("ipcbus");  // the library logs through it too
  log->set_level(spdlog::level::from_str(level));
  spdlog::set_default_logger(log);

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  const std::string name = ipcbus::resolve_bus_name(bus_name);
  log->info("agent starting bus={} pid={}", name, getpid());
  ipcbus::OpenOptions options;
  options.name = name;
  auto bus = ipcbus::Bus::open(options);
  if (!bus) {
    log->error("cannot open bus={} error=\"{}\" ({})", name, bus.error().message,
               ipcbus::errc_name(bus.error().code));
    return 1;
  }
  report_config(*log, *bus);

  std::map<std::uint32_t, Seen> seen;
  const auto period = std::chrono::duration<double>(interval);
  // relaxed: the flag is set by the signal handler of this thread.
  while (g_signal.load(std::memory_order_relaxed) == 0) {
    watch_processes(*log, *bus, seen);
    std::this_thread::sleep_for(period);
  }
  log->info("agent stopping bus={} signal={}", name, strsignal(g_signal.load()));
  return 0;
}
