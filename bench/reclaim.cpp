// reclaim.cpp: the crash-cleanup case: kill a process that holds things on
// the bus, time how long the agent takes to give them back.
#include "reclaim.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <span>

#include "harness.hpp"
#include "ipcbus/bus.hpp"
#include "runner.hpp"
#include "transport.hpp"

namespace ipcbus::bench {

namespace {

using nlohmann::json;

// Hang guards for what precedes a measurement: the agent taking its role,
// a victim getting ready, the agent stopping on SIGTERM.
constexpr std::uint64_t kStartGuardNs = 30'000'000'000ULL;
constexpr std::uint64_t kStopGuardNs = 10'000'000'000ULL;
constexpr const char* kVictimFilter = "bench/reclaim/#";

// The process of `pid` holds nothing on the bus any more: no process entry,
// listener or publisher, and every pool is full. Otherwise *left says what.
bool reclaimed(const BusInfo& info, int pid, std::string* left) {
  std::string out;
  for (const ProcessInfo& p : info.processes) {
    if (p.pid == pid) {
      out += std::string("process entry (") + (p.alive ? "alive" : "dead") +
             (p.reclaiming ? ", reclaiming" : "") + ", " + std::to_string(p.chunks) + " chunks); ";
    }
  }
  for (const ListenerInfo& l : info.listeners) {
    if (l.owner_pid == pid) {
      out += "listener slot " + std::to_string(l.index) + "; ";
    }
  }
  for (const PublisherInfo& p : info.publishers) {
    if (p.pid == pid) {
      out += "publisher " + std::to_string(p.id) + "; ";
    }
  }
  for (const PoolInfo& p : info.pools) {
    if (p.free != p.total) {
      out += "pool " + std::to_string(p.payload_bytes) + " B: " + std::to_string(p.free) + " of " +
             std::to_string(p.total) + " free; ";
    }
  }
  const bool none = out.empty();
  if (!none) {
    out.resize(out.size() - 2);  // the last "; "
  }
  if (left != nullptr) {
    *left = out;
  }
  return none;
}

// Wait for `pid` to exit, up to `guard_ns`, then SIGKILL it. Returns its status.
int reap(int pid, std::uint64_t guard_ns) {
  int status = 0;
  const std::uint64_t until = now_ns() + guard_ns;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (now_ns() > until) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    sleep_ns(1'000'000);
  }
  forget_child(pid);
  return status;
}

std::string status_text(int status) {
  if (WIFSIGNALED(status)) {
    const char* name = sigdescr_np(WTERMSIG(status));  // thread-safe, unlike strsignal
    return std::string("killed by signal ") +
           (name != nullptr ? name : std::to_string(WTERMSIG(status)));
  }
  return "exit code " + std::to_string(WEXITSTATUS(status));
}

// Start the agent of `bus`, its output into `log`. 0 when fork failed.
int start_agent(const std::string& agent, const std::string& bus, const std::string& log) {
  const char* argv[] = {"ipcbus-agent", "--bus", bus.c_str(), nullptr};
  const int parent = getpid();
  const int pid = fork();
  if (pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    // A graceful stop (SIGTERM) if the bench dies under it; it survives exec.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) {
      _exit(1);
    }
    close_range(3, ~0U, 0);
    execv(agent.c_str(), const_cast<char* const*>(argv));
    _exit(127);
  }
  if (pid < 0) {
    return 0;
  }
  register_child(pid);
  return pid;
}

// Start a victim on `bus`; it writes one byte on `ready` (its fd 3) when it
// holds everything. 0 when fork failed.
int start_victim(const std::string& bus, const std::string& log, int ready) {
  const char* argv[] = {"ipcbus-bench", "--reclaim-victim", bus.c_str(), "--ready-fd", "3",
                        nullptr};
  const int pid = fork();
  if (pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    if (ready == 3) {
      fcntl(3, F_SETFD, 0);  // dup2 onto itself would keep close-on-exec
    } else {
      dup2(ready, 3);
    }
    close_range(4, ~0U, 0);
    execv(self_exe().c_str(), const_cast<char* const*>(argv));
    _exit(127);
  }
  if (pid < 0) {
    return 0;
  }
  register_child(pid);
  return pid;
}

// One round: a victim started, made ready, killed, its reclaim timed.
// *fatal says why the case cannot go on (the round is then not a figure).
ReclaimRound run_round(const Bus& bus, const std::string& log, std::string* fatal) {
  ReclaimRound round;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    *fatal = "pipe failed";
    return round;
  }
  const int pid = start_victim(bus.name(), log, fds[1]);
  close(fds[1]);
  if (pid == 0) {
    close(fds[0]);
    *fatal = "fork failed";
    return round;
  }
  round.victim_pid = pid;
  // Ready: one byte; end of file: the victim died first.
  const int flags = fcntl(fds[0], F_GETFL);
  fcntl(fds[0], F_SETFL, flags | O_NONBLOCK);
  const std::uint64_t ready_until = now_ns() + kStartGuardNs;
  for (;;) {
    char b = 0;
    const ssize_t n = read(fds[0], &b, 1);
    if (n == 1) {
      break;
    }
    if (n == 0 || interrupted() || now_ns() > ready_until) {
      *fatal = n == 0          ? "the victim exited before it was ready"
               : interrupted() ? "interrupted"
                               : "the victim was not ready in time";
      break;
    }
    sleep_ns(200'000);
  }
  close(fds[0]);
  if (!fatal->empty()) {
    kill(pid, SIGKILL);
    *fatal += " (" + status_text(reap(pid, kStopGuardNs)) + ") [" + log_tail(log) + "]";
    return round;
  }

  // What the victim holds, as the bus says before the kill.
  const BusInfo before = bus.inspect();
  bool found = false;
  for (const ProcessInfo& p : before.processes) {
    if (p.pid == pid) {
      found = true;
      round.entry_chunks = p.chunks;
    }
  }
  for (const PoolInfo& p : before.pools) {
    round.chunks_out += p.total - p.free;
  }
  if (!found || round.chunks_out == 0) {
    kill(pid, SIGKILL);
    reap(pid, kStopGuardNs);
    *fatal = found ? "the victim holds no chunk" : "the victim has no process entry on the bus";
    return round;
  }

  // The measurement. The victim is not reaped until it is over: the agent
  // must see the death itself (a pidfd is readable at exit, before reaping).
  std::uint64_t prev = 0;
  const std::uint64_t t0 = now_ns();
  kill(pid, SIGKILL);
  for (;;) {
    if (round.exited_ns == 0) {
      siginfo_t si{};
      // WNOWAIT: seen, not reaped.
      if (waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
          si.si_pid == pid) {
        round.exited_ns = now_ns() - t0;
      }
    }
    const BusInfo info = bus.inspect();
    const std::uint64_t t = now_ns();
    ++round.polls;
    std::string left;
    if (reclaimed(info, pid, &left)) {
      round.ok = true;
      round.reclaimed_ns = t - t0;
      round.poll_gap_ns = t - (prev == 0 ? t0 : prev);
      round.agent_ns = info.cleanup.last_ns;
      round.by_agent = info.cleanup.processes == before.cleanup.processes + 1;
      break;
    }
    if (t - t0 > kReclaimGuardNs) {
      round.error = "not reclaimed 10 s after the kill: " + left;
      break;
    }
    if (interrupted()) {
      round.error = "interrupted";
      break;
    }
    prev = t;
    sleep_ns(kReclaimPollSleepNs);
  }
  reap(pid, kStopGuardNs);
  return round;
}

}  // namespace

std::string find_agent(std::string* why) {
  const std::string& self = self_exe();
  std::string beside = self.substr(0, self.rfind('/') + 1) + "ipcbus-agent";
  if (access(beside.c_str(), X_OK) == 0) {
    return beside;
  }
#ifdef IPCBUS_AGENT_BUILD_PATH
  if (access(IPCBUS_AGENT_BUILD_PATH, X_OK) == 0) {
    return IPCBUS_AGENT_BUILD_PATH;
  }
#endif
  *why = "no ipcbus-agent next to " + self + " nor in the build tree";
  return "";
}

bool agent_built() {
#ifdef IPCBUS_AGENT_BUILD_PATH
  return true;
#else
  return false;
#endif
}

ReclaimOut run_reclaim_case(int rounds) {
  ReclaimOut out;
  const std::uint64_t t_start = now_ns();
  out.rounds_planned = rounds;
  std::string why;
  out.agent = find_agent(&why);
  if (out.agent.empty()) {
    out.error = why;
    return out;
  }
  // A fresh bus of the default configuration, which the agent then opens.
  // This process holds an entry too, but no chunk.
  OpenOptions o;
  o.name = run_prefix() + "-reclaim";
  o.exclusive = true;
  (void)Bus::destroy(o.name);
  auto opened = Bus::open(o);
  if (!opened) {
    out.error = "bus open: " + opened.error().message;
    return out;
  }
  std::optional<Bus> bus(std::move(opened.value()));
  const std::string agent_log = run_dir() + "/" + o.name + "-agent.log";
  const std::string victim_log = run_dir() + "/" + o.name + "-victim.log";

  out.agent_pid = start_agent(out.agent, o.name, agent_log);
  if (out.agent_pid == 0) {
    out.error = "fork failed";
  }
  // Wait until the agent holds the bus's agent role.
  const std::uint64_t until = now_ns() + kStartGuardNs;
  while (out.error.empty()) {
    if (bus->inspect().agent_pid == out.agent_pid) {
      break;
    }
    int status = 0;
    if (waitpid(out.agent_pid, &status, WNOHANG) == out.agent_pid) {
      forget_child(out.agent_pid);
      out.error = "the agent exited (" + status_text(status) + ") [" + log_tail(agent_log) + "]";
      out.agent_pid = 0;
    } else if (interrupted()) {
      out.error = "interrupted";
    } else if (now_ns() > until) {
      out.error = "the agent did not take its role in time [" + log_tail(agent_log) + "]";
    }
    sleep_ns(1'000'000);
  }

  for (int r = 0; r < rounds && out.error.empty(); ++r) {
    std::string fatal;
    ReclaimRound round = run_round(*bus, victim_log, &fatal);
    if (!fatal.empty()) {
      out.error = "round " + std::to_string(r + 1) + ": " + fatal;
      break;
    }
    out.rounds.push_back(round);
    if (!round.ok) {
      // Later rounds would start on a bus that is not clean.
      out.error = "round " + std::to_string(r + 1) + ": " + round.error;
      break;
    }
  }
  if (out.error.empty()) {
    for (const std::string& v : bus->check()) {
      out.error += (out.error.empty() ? "bus check after the rounds: " : "; ") + v;
    }
  }

  if (out.agent_pid > 0) {
    kill(out.agent_pid, SIGTERM);
    const int status = reap(out.agent_pid, kStopGuardNs);
    // Interrupted: the signal handler has SIGKILLed it already.
    if (!interrupted() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
      out.error += std::string(out.error.empty() ? "" : "; ") +
                   "the agent stopped badly on SIGTERM (" + status_text(status) + ") [" +
                   log_tail(agent_log) + "]";
    }
  }
  bus.reset();
  (void)Bus::destroy(o.name);
  unlink(agent_log.c_str());
  unlink(victim_log.c_str());
  out.ok = out.error.empty();
  out.wall_s = static_cast<double>(now_ns() - t_start) / 1e9;
  return out;
}

int reclaim_victim_main(const std::string& name, int ready_fd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) {
    return 1;
  }
  alarm(120);  // a last resort: the parent kills it long before
  auto fail = [](const std::string& what) {
    std::fprintf(stderr, "ipcbus-bench victim: %s\n", what.c_str());
    return 1;
  };
  OpenOptions o;
  o.name = name;
  o.create = false;
  auto bus = Bus::open(o);
  if (!bus) {
    return fail("bus open: " + bus.error().message);
  }
  auto listener = bus->listen({});
  if (!listener) {
    return fail("listen: " + listener.error().message);
  }
  if (auto s = listener->subscribe(kVictimFilter); !s) {
    return fail("subscribe: " + s.error().message);
  }
  Publisher pub = bus->publisher();
  // Events of two size classes to itself: all but one stay in its ring.
  const std::vector<std::byte> small(64, std::byte{0x11});
  const std::vector<std::byte> large(3000, std::byte{0x22});
  for (int i = 0; i < 8; ++i) {
    const std::vector<std::byte>& p = i % 2 == 0 ? small : large;
    const PublishResult r =
        pub.publish("bench/reclaim/" + std::to_string(i), std::span<const std::byte>(p));
    if (r.status != PublishStatus::kOk || r.delivered != 1) {
      return fail(std::string("publish: ") + publish_status_name(r.status));
    }
  }
  std::optional<Sample> held = listener->receive_for(std::chrono::seconds(5));
  if (!held) {
    return fail("no event received");
  }
  // A loan of a third size class, written and never published.
  auto loan = pub.loan(60000);
  if (!loan) {
    return fail("loan: " + loan.error().message);
  }
  std::memset(loan->data().data(), 0x33, loan->size());
  const char ready = 'R';
  if (write(ready_fd, &ready, 1) != 1) {
    return fail("cannot say ready");
  }
  close(ready_fd);
  for (;;) {
    pause();  // until SIGKILL
  }
}

json reclaim_json(const ReclaimOut& c) {
  json rounds = json::array();
  int n = 0;
  for (const ReclaimRound& r : c.rounds) {
    json row = {{"round", ++n},
                {"ok", r.ok},
                {"victim_pid", r.victim_pid},
                {"kill_to_reclaimed_ns", r.reclaimed_ns},
                {"kill_to_exited_ns", r.exited_ns},
                {"poll_gap_ns", r.poll_gap_ns},
                {"agent_reclaim_ns", r.agent_ns},
                {"entry_chunks", r.entry_chunks},
                {"chunks_out_before_kill", r.chunks_out},
                {"polls", r.polls},
                {"by_agent", r.by_agent}};
    if (!r.ok) {
      row["error"] = r.error;
    }
    rounds.push_back(row);
  }
  return {{"kind", "reclaim"},
          {"transport", "ipcbus"},
          {"agent", c.agent},
          {"rounds_planned", c.rounds_planned},
          {"poll_sleep_ns", kReclaimPollSleepNs},
          {"guard_ns", kReclaimGuardNs},
          {"rounds", rounds},
          {"wall_s", c.wall_s}};
}

}  // namespace ipcbus::bench
