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
// Crash cleanup: it watches every attached process through a pidfd (a
// kernel handle that becomes readable when the process dies) and, on a
// death or at every interval, calls Bus::reclaim_dead(), which gives back
// what dead processes held (docs/failure-model.md). Entries of processes in
// another pid namespace have no pidfd here and are found at the interval, by
// their entry lock. One agent per bus: a second one refuses, or with
// --standby waits and takes over when the first dies. It also reports when
// the bus's name vanished from /dev/shm under live processes (RemoveIPC).
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

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
    // Gone from the table: it detached, or it died and was cleaned up (by
    // us, logged as a reclaim, or by another opener) before we saw it dead.
    if ((it == now.end() || it->second.pid != s.pid) && s.alive) {
      log.info("process left pid={} entry={}", s.pid, index);
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

// Pidfds of the attached processes in our pid namespace, by pid.
class DeathWatch {
 public:
  ~DeathWatch() {
    for (const auto& [pid, fd] : fds_) {
      close(fd);
    }
  }
  // Follow the processes `info` lists; forget those it no longer does.
  // True when one of them is dead already (it died before we held a pidfd
  // for it): the caller reclaims at once rather than at the next look.
  bool update(const ipcbus::BusInfo& info) {
    std::set<std::int32_t> want;
    bool dead = false;
    for (const auto& p : info.processes) {
      if (!p.alive && !p.reclaiming) {
        dead = true;
      } else if (p.alive && p.same_pid_namespace && p.pid > 0 && p.pid != getpid()) {
        want.insert(p.pid);
      }
    }
    for (auto it = fds_.begin(); it != fds_.end();) {
      if (want.count(it->first) == 0) {
        close(it->second);
        it = fds_.erase(it);
      } else {
        ++it;
      }
    }
    for (std::int32_t pid : want) {
      if (fds_.count(pid) == 0) {
        const int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
        if (fd >= 0) {
          fds_[pid] = fd;
        } else if (errno == ESRCH) {
          dead = true;  // gone (and reaped) since inspect() saw it
        }
      }
    }
    return dead;
  }
  // Wait up to `timeout` for one of them to die, or for `wake` (or -1) to
  // become readable; true if either happened.
  bool wait(std::chrono::milliseconds timeout, int wake) {
    std::vector<pollfd> p;
    for (const auto& [pid, fd] : fds_) {
      p.push_back({fd, POLLIN, 0});
    }
    if (wake >= 0) {
      p.push_back({wake, POLLIN, 0});
    }
    if (poll(p.data(), p.size(), static_cast<int>(timeout.count())) <= 0) {
      return false;
    }
    // A pidfd stays readable once its process is gone: forget those that
    // fired, so that the next wait does not return at once.
    for (const pollfd& q : p) {
      if (q.revents != 0) {
        for (auto it = fds_.begin(); it != fds_.end(); ++it) {
          if (it->second == q.fd) {
            close(q.fd);
            fds_.erase(it);
            break;
          }
        }
      }
    }
    return true;
  }

 private:
  std::map<std::int32_t, int> fds_;
};

// AttachWatch makes a new process known to the main loop at once, so that
// it has a pidfd for it before it can die unseen: a thread waits on the
// bus's attach count and writes a byte to a pipe that the loop polls.
class AttachWatch {
 public:
  explicit AttachWatch(const ipcbus::Bus& bus) : bus_(bus) {
    if (pipe2(fds_, O_CLOEXEC | O_NONBLOCK) != 0) {
      fds_[0] = fds_[1] = -1;
      return;  // the 100 ms refresh alone then finds new processes
    }
    (void)bus_.wait_attach(&seen_, std::chrono::milliseconds(0));  // from now on
    // The thread takes no signals: they go to the main loop's poll.
    sigset_t all;
    sigset_t old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    thread_ = std::thread([this] { run(); });
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  ~AttachWatch() {
    // relaxed: the thread looks at the flag at least every 100 ms.
    stop_.store(true, std::memory_order_relaxed);
    if (thread_.joinable()) {
      thread_.join();
    }
    for (int fd : fds_) {
      if (fd >= 0) {
        close(fd);
      }
    }
  }
  AttachWatch(const AttachWatch&) = delete;
  AttachWatch& operator=(const AttachWatch&) = delete;

  int fd() const { return fds_[0]; }
  void drain() {
    char buf[64];
    while (fds_[0] >= 0 && read(fds_[0], buf, sizeof buf) > 0) {
    }
  }

 private:
  void run() {
    // relaxed: a stop request, see the destructor.
    while (!stop_.load(std::memory_order_relaxed)) {
      if (bus_.wait_attach(&seen_, std::chrono::milliseconds(100))) {
        const char b = 'a';
        (void)!write(fds_[1], &b, 1);  // a full pipe already wakes the loop
      }
    }
  }

  const ipcbus::Bus& bus_;
  int fds_[2] = {-1, -1};
  std::uint32_t seen_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

void reclaim(spdlog::logger& log, ipcbus::Bus& bus) {
  const ipcbus::CleanupReport r = bus.reclaim_dead();
  if (r.processes != 0) {
    log.warn(
        "cleaned up after {} dead process(es): {} listener(s), {} publisher(s), {} chunk "
        "reference(s), {} ring position(s) repaired; last took {} us",
        r.processes, r.listeners, r.publishers, r.chunks, r.repaired, r.last_ns / 1000);
  }
}

}  // namespace

// main() below runs this and turns an exception that escapes it into a message.
static int agent_main(int argc, char** argv) {
  CLI::App app{"ipcbus-agent: housekeeping for an ipcbus bus"};
  std::string bus_name;
  std::string config_path;
  std::string level;
  double interval = 0;
  app.add_option("--bus", bus_name, "bus name (default: $IPCBUS_BUS, else 'default')");
  app.add_option("--config", config_path,
                 "TOML configuration file (see etc/ipcbus.toml); re-read on SIGHUP")
      ->envname("IPCBUS_CONFIG");
  // The names the configuration file takes; spdlog would read any other as "off".
  app.add_option("--log-level", level,
                 "trace, debug, info, warn, error, critical or off (overrides the file)")
      ->envname("IPCBUS_LOG_LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_option("--interval", interval, "seconds between looks at the process table")
      ->check(CLI::Range(0.01, 60.0));
  std::uint64_t drop_threshold = 1000;
  app.add_option("--drop-threshold", drop_threshold,
                 "drops per listener between two looks that go into the error log")
      ->check(CLI::Range(1, 1000000000));
  bool once = false;
  app.add_flag("--once", once,
               "clean up after dead processes once, print what came back, and exit");
  bool standby = false;
  app.add_flag("--standby", standby,
               "if another agent serves the bus, wait and take over when it stops");
  app.set_version_flag("--version", std::string("ipcbus-agent ") + IPCBUS_VERSION +
                                        " (segment layout " +
                                        std::to_string(ipcbus::layout_version()) + ")");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Exit status as the ipcbus CLI's: 0 for --help and --version, 2 for bad usage.
    return app.exit(e) == 0 ? 0 : 2;
  }

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
  options.reclaim_at_attach = false;  // reclaimed below, and reported
  auto bus = ipcbus::Bus::open(options);
  if (!bus) {
    log->error("cannot open bus={} error=\"{}\" ({})", name, bus.error().message,
               ipcbus::errc_name(bus.error().code));
    return 1;
  }
  // --once is a one-off cleanup, as `ipcbus doctor --repair` is: reclaiming
  // is safe beside a serving agent (each dead entry is taken by one
  // reclaimer), so it needs no agent role.
  if (auto role = once ? ipcbus::Result<void>{} : bus->take_agent_role(); !role) {
    if (!standby) {
      log->error("{}; stop it first, or run this one with --standby", role.error().message);
      return 1;
    }
    log->info("{}; standing by", role.error().message);
    while (!bus->take_agent_role()) {
      if (g_signal.load(std::memory_order_relaxed) != 0) {
        return 0;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    log->info("took over as the agent of bus={}", name);
  }
  if (once) {
    const ipcbus::CleanupReport r = bus->reclaim_dead();
    std::printf(
        "processes %llu listeners %llu publishers %llu chunks %llu repaired %llu swept %llu\n",
        static_cast<unsigned long long>(r.processes), static_cast<unsigned long long>(r.listeners),
        static_cast<unsigned long long>(r.publishers), static_cast<unsigned long long>(r.chunks),
        static_cast<unsigned long long>(r.repaired), static_cast<unsigned long long>(r.swept));
    return 0;
  }
  report_config(*log, *bus);
  reclaim(*log, *bus);  // what the previous agent (or nobody) left
  notify_systemd("READY=1\nSTATUS=watching bus " + name);

  std::map<std::uint32_t, Seen> seen;
  std::map<std::uint64_t, std::uint64_t> last_drops;
  DeathWatch deaths;
  AttachWatch attaches(*bus);
  bool unlinked_reported = false;
  auto next_look = std::chrono::steady_clock::now();
  // The longest wait between two looks at the process table; new processes
  // are seen at their attach (AttachWatch), processes in other pid
  // namespaces by their entry lock at the next look.
  constexpr auto kWatchRefresh = std::chrono::milliseconds(100);
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
    const double seconds = interval > 0 ? interval : file.agent.interval_ms / 1000.0;
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_look) {
      watch_processes(*log, *bus, seen);
      watch_drops(*bus, drop_threshold, last_drops);
      reclaim(*log, *bus);
      (void)deaths.update(bus->inspect());
      const bool linked = bus->name_linked();
      if (!linked && !unlinked_reported) {
        const std::string what = "the segment's name /dev/shm/ipcbus." + name +
                                 " vanished while processes still use the bus (RemoveIPC?)";
        log->error("{}; new processes will create a separate bus. See docs/failure-model.md", what);
        bus->record_error("unlinked", what);
      }
      unlinked_reported = !linked;
      next_look = now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(seconds));
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        next_look - std::chrono::steady_clock::now());
    // A pidfd that fires is a death just now, the attach pipe a new process
    // to watch; a process in another pid namespace (no pidfd) is found by
    // its entry lock at the next refresh (a probe per entry, no scan).
    (void)deaths.wait(std::clamp(left, std::chrono::milliseconds(1), kWatchRefresh), attaches.fd());
    attaches.drain();
    reclaim(*log, *bus);
    if (deaths.update(bus->inspect())) {
      reclaim(*log, *bus);  // one that died between the two
      (void)deaths.update(bus->inspect());
    }
  }
  notify_systemd("STOPPING=1");
  // NOLINTNEXTLINE(concurrency-mt-unsafe): strsignal's buffer; only this thread calls it
  log->info("agent stopping bus={} signal={}", name, strsignal(g_signal.load()));
  return 0;
}

int main(int argc, char** argv) {
  try {
    return agent_main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ipcbus-agent: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "ipcbus-agent: unknown exception\n");
  }
  return 1;
}
