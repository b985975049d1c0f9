// ipcbus-agent: the housekeeping process of a bus. It creates the bus with
// the embedded default configuration (or --config FILE) if it does not
// exist, or opens it, reports the configuration, and watches the process
// table, logging every attach and detach. It is never on the data path: the
// bus works without it.
//
// As a service: it tells systemd it is ready (Type=notify) by writing to
// $NOTIFY_SOCKET itself, without libsystemd; SIGTERM and SIGINT stop it
// gracefully; SIGHUP re-reads the [agent] table of the configuration file
// (log level, interval). Logs go to stderr, which the journal collects.
//
// TODO: reclaim what crashed processes held and prune the trie after them;
// the crash cleanup issue builds that on this loop.
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <map>
#include <thread>

#include "ipcbus/bus.hpp"
#include "ipcbus/config_file.hpp"

namespace {

std::atomic<int> g_signal{0};
std::atomic<bool> g_reload{false};

// relaxed, both: flags polled by the main loop of this thread.
void on_signal(int sig) {
  g_signal.store(sig, std::memory_order_relaxed);
}
void on_hup(int /*sig*/) {
  g_reload.store(true, std::memory_order_relaxed);
}

// Send one sd_notify message ("READY=1", ...) if systemd asked for them.
void notify_systemd(const std::string& message) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || (path[0] != '/' && path[0] != '@') ||
      std::strlen(path) >= sizeof(sockaddr_un::sun_path)) {
    return;
  }
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path, sizeof(addr.sun_path) - 1);
  if (addr.sun_path[0] == '@') {
    addr.sun_path[0] = '\0';  // abstract socket namespace
  }
  const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + std::strlen(path));
  (void)sendto(fd, message.data(), message.size(), MSG_NOSIGNAL,
               reinterpret_cast<const sockaddr*>(&addr), len);
  close(fd);
}

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
      info.name, info.layout_version, info.segment_bytes, pools, c.max_listeners, c.ring_capacity,
      c.trie_nodes, c.subscriptions, c.max_topic_bytes, c.max_processes);
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

// Record in the bus's error log every listener whose drops grew by at least
// `threshold` since the last look, once per look: the operator finds it in
// `ipcbus errors` even when nobody watched the counters.
void watch_drops(ipcbus::Bus& bus, std::uint64_t threshold,
                 std::map<std::uint64_t, std::uint64_t>& last_drops) {
  const ipcbus::BusInfo info = bus.inspect();
  std::map<std::uint64_t, std::uint64_t> now;
  for (const auto& l : info.listeners) {
    const std::uint64_t key = (std::uint64_t{l.index} << 32) | l.generation;
    const std::uint64_t drops =
        l.counters.dropped_newest + l.counters.dropped_oldest + l.counters.block_timeouts;
    const auto it = last_drops.find(key);
    const std::uint64_t before = it == last_drops.end() ? 0 : it->second;
    now[key] = before;  // the baseline moves only when a report is made
    if (drops >= before + threshold) {
      now[key] = drops;
      std::string filters;
      for (const auto& f : l.filters) {
        filters += (filters.empty() ? "" : " ") + f;
      }
      bus.record_error("drops", "listener " + std::to_string(l.index) + " (" + filters +
                                    ") dropped over " + std::to_string(threshold) +
                                    " events since the last report");
      spdlog::get("ipcbus")->warn("listener dropping events listener={} filters=\"{}\" drops={}",
                                  l.index, filters, drops - before);
    }
  }
  last_drops = std::move(now);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ipcbus-agent: housekeeping for an ipcbus bus"};
  std::string bus_name;
  std::string config_path;
  std::string level;
  double interval = 0;
  app.add_option("--bus", bus_name, "bus name (default: $IPCBUS_BUS, else 'default')");
  app.add_option("--config", config_path,
                 "TOML configuration file (see etc/ipcbus.toml); re-read on SIGHUP")
      ->envname("IPCBUS_CONFIG");
  app.add_option("--log-level", level, "trace, debug, info, warn, error (overrides the file)")
      ->envname("IPCBUS_LOG_LEVEL");
  app.add_option("--interval", interval, "seconds between looks at the process table")
      ->check(CLI::Range(0.01, 60.0));
  std::uint64_t drop_threshold = 1000;
  app.add_option("--drop-threshold", drop_threshold,
                 "drops per listener between two looks that go into the error log")
      ->check(CLI::Range(1, 1000000000));
  CLI11_PARSE(app, argc, argv);

  auto log = spdlog::stderr_color_mt("ipcbus");  // the library logs through it too
  spdlog::set_default_logger(log);

  ipcbus::ConfigFile file;
  auto load = [&]() -> bool {
    if (config_path.empty()) {
      return true;
    }
    auto loaded = ipcbus::load_config_file(config_path);
    if (!loaded) {
      log->error("configuration not loaded: {}", loaded.error().message);
      return false;
    }
    file = std::move(loaded.value());
    return true;
  };
  auto apply = [&]() {
    log->set_level(spdlog::level::from_str(level.empty() ? file.agent.log_level : level));
  };
  if (!load()) {
    return 1;
  }
  apply();

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  struct sigaction hup {};
  hup.sa_handler = on_hup;
  sigaction(SIGHUP, &hup, nullptr);

  const std::string name = ipcbus::resolve_bus_name(bus_name);
  log->info("agent starting bus={} pid={} config={}", name, getpid(),
            config_path.empty() ? "embedded defaults" : config_path);
  ipcbus::OpenOptions options;
  options.name = name;
  options.config = file.bus;
  auto bus = ipcbus::Bus::open(options);
  if (!bus) {
    log->error("cannot open bus={} error=\"{}\" ({})", name, bus.error().message,
               ipcbus::errc_name(bus.error().code));
    return 1;
  }
  report_config(*log, *bus);
  notify_systemd("READY=1\nSTATUS=watching bus " + name);

  std::map<std::uint32_t, Seen> seen;
  std::map<std::uint64_t, std::uint64_t> last_drops;
  // relaxed, for the flags: set by this thread's signal handlers.
  while (g_signal.load(std::memory_order_relaxed) == 0) {
    if (g_reload.exchange(false, std::memory_order_relaxed)) {
      notify_systemd("RELOADING=1");
      if (load()) {
        apply();
        log->info("configuration re-read log_level={} interval_ms={}",
                  level.empty() ? file.agent.log_level : level, file.agent.interval_ms);
      }
      notify_systemd("READY=1");
    }
    watch_processes(*log, *bus, seen);
    watch_drops(*bus, drop_threshold, last_drops);
    const double seconds = interval > 0 ? interval : file.agent.interval_ms / 1000.0;
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  }
  notify_systemd("STOPPING=1");
  log->info("agent stopping bus={} signal={}", name, strsignal(g_signal.load()));
  return 0;
}
