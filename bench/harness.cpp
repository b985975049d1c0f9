// harness.cpp: time, payloads, CPUs, the child registry and signal handling.
#include "harness.hpp"

#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <climits>

#include "transport.hpp"

namespace ipcbus::bench {

const char* transport_name(Transport t) {
  switch (t) {
    case Transport::kFloorLine:
      return "floor-line";
    case Transport::kFloorFutex:
      return "floor-futex";
    case Transport::kFloorRing:
      return "floor-ring";
    case Transport::kBus:
      return "ipcbus";
    case Transport::kIceoryx:
      return "iceoryx";
    case Transport::kUds:
      return "unix-socket";
    case Transport::kPosixMq:
      return "posix-mq";
    case Transport::kBoostMq:
      return "boost-mq";
    case Transport::kZmq:
      return "zeromq";
  }
  return "?";
}

const char* wait_name(Wait w) {
  return w == Wait::kSpin ? "spin" : "sleep";
}

std::uint64_t control_bytes() {
  return (sizeof(Control) + kDataAlign - 1) / kDataAlign * kDataAlign;
}

std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

std::uint64_t cpu_time_ns() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

std::uint64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

std::uint64_t page_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<std::uint64_t>(u.ru_minflt + u.ru_majflt);
}

void sleep_ns(std::uint64_t ns) {
  timespec ts{static_cast<time_t>(ns / 1000000000ULL), static_cast<long>(ns % 1000000000ULL)};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

void fill_payload(std::byte* p, std::size_t n, std::uint64_t seq, std::uint32_t source,
                  bool stamp) {
  if (n < kMinPayload) {
    std::memset(p, static_cast<int>(seq & 0xff), n);
    return;
  }
  std::memset(p + sizeof(EventHeader), static_cast<int>(seq & 0xff), n - sizeof(EventHeader));
  const EventHeader h{seq, stamp ? now_ns() : 0, source, 0};
  std::memcpy(p, &h, sizeof h);
  std::memcpy(p + n - 8, &seq, 8);
}

EventHeader touch_payload(const std::byte* p, std::size_t n, bool* ok) {
  EventHeader h{};
  if (n < kMinPayload) {
    *ok = n == 0 || p != nullptr;
    return h;
  }
  std::uint64_t sum = 0;
  for (std::size_t off = 0; off + 8 <= n; off += 64) {
    std::uint64_t w;
    std::memcpy(&w, p + off, 8);
    sum += w;
  }
  // Keep the reads: the sum goes nowhere, but the compiler must compute it.
  asm volatile("" : : "r"(sum) : "memory");
  std::memcpy(&h, p, sizeof h);
  std::uint64_t trailer = 0;
  std::memcpy(&trailer, p + n - 8, 8);
  *ok = trailer == h.seq;
  return h;
}

std::vector<int> usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> out;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) {
        out.push_back(c);
      }
    }
  }
  if (out.empty()) {
    out.push_back(0);
  }
  return out;
}

bool pin_to_cpu(int cpu) {
  if (cpu < 0) {
    return true;
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0;
}

const std::string& self_exe() {
  static const std::string path = [] {
    char buf[PATH_MAX];
    const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }();
  return path;
}

namespace {

// The registry is read by the signal handler: plain ints behind atomics
// that are lock-free, so the handler may touch them.
constexpr int kMaxChildren = 64;
std::atomic<int> g_children[kMaxChildren];
std::atomic<int> g_daemon{0};
std::atomic<bool> g_interrupted{false};
std::atomic<bool> g_exit_on_signal{false};

// relaxed, for every atomic here: single words read by the handler; nothing
// else is published through them.
void on_signal(int) {
  const bool again = g_interrupted.exchange(true, std::memory_order_relaxed);
  for (auto& c : g_children) {
    const int pid = c.load(std::memory_order_relaxed);
    if (pid > 0) {
      kill(pid, SIGKILL);  // async-signal-safe, as is everything below
    }
  }
  const int daemon = g_daemon.load(std::memory_order_relaxed);
  if (daemon > 0) {
    kill(daemon, SIGTERM);
  }
  if (again || g_exit_on_signal.load(std::memory_order_relaxed)) {
    if (daemon > 0) {
      int status = 0;
      waitpid(daemon, &status, 0);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        remove_roudi_files();
      }
    }
    _exit(130);
  }
}

}  // namespace

void register_child(int pid) {
  for (auto& c : g_children) {
    int expected = 0;
    // relaxed: the slot is only a pid for the signal handler.
    if (c.compare_exchange_strong(expected, pid, std::memory_order_relaxed)) {
      return;
    }
  }
}

void forget_child(int pid) {
  for (auto& c : g_children) {
    int expected = pid;
    // relaxed: as above.
    if (c.compare_exchange_strong(expected, 0, std::memory_order_relaxed)) {
      return;
    }
  }
}

void kill_children() {
  for (auto& c : g_children) {
    // relaxed: as above.
    const int pid = c.load(std::memory_order_relaxed);
    if (pid > 0) {
      kill(pid, SIGKILL);
      int status = 0;
      waitpid(pid, &status, 0);
      c.store(0, std::memory_order_relaxed);
    }
  }
}

// relaxed, all three: see on_signal().
bool interrupted() {
  return g_interrupted.load(std::memory_order_relaxed);
}
void register_daemon(int pid) {
  g_daemon.store(pid, std::memory_order_relaxed);
}
void set_exit_on_signal(bool on) {
  g_exit_on_signal.store(on, std::memory_order_relaxed);
}

void install_parent_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) {
    sigaction(s, &sa, nullptr);
  }
  signal(SIGPIPE, SIG_IGN);
}

void role_fail(RoleResult& r, const std::string& what) {
  const std::size_t n = std::min(what.size(), sizeof r.error - 1);
  std::memcpy(r.error, what.data(), n);
  r.error[n] = '\0';
  // release: the parent that sees kFailed sees the message.
  r.state.store(static_cast<std::uint32_t>(RoleState::kFailed), std::memory_order_release);
}

}  // namespace ipcbus::bench
