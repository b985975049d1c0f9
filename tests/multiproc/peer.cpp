// peer.cpp: the program that multi-process tests start, in one role per run.
//
//   peer listen --bus B --filter F [--filter F..] [--count N] [--overflow P]
//        [--wait W] [--capacity C] [--ready-fd FD] [--hold] [--drain]
//        [--pause-cycle] [--linger] [--sleep-us U] [--blocking-receive]
//   peer publish --bus B --topic T [--topic T..] --count N
//        [--payload-size S|var] [--block-timeout-ms T]
//   peer create --bus B --start-fd FD --ready-fd FD --filter F
//   peer half-create --bus B --size BYTES
//
// listen: opens the bus, makes a listener and subscribes, writes kReady on the
//   ready pipe, then receives --count events (each receive waits up to 20 s)
//   and prints one line per event:
//     event <publisher id> <sequence> <topic> <payload length> ok|bad
//   ("bad" when the payload is not the one peer_protocol.hpp gives for the
//   sequence). --hold waits for SIGUSR1 before receiving; --drain, instead of a
//   count, takes what is queued without waiting; --pause-cycle pauses at the
//   first SIGUSR1 (writes kPaused) and resumes at the second (writes kResumed)
//   before receiving; --linger, after receiving, prints the counters, writes
//   kFinished and on SIGUSR1 prints "extra <n>" for what was still queued.
// publish: publishes --count events, topic i going to the i-th --topic in
//   turn, and prints one summary line:
//     published id=<id> ok=<n> no_listeners=<n> timed_out=<n> failed=<n>
//       delivered=<sum> skipped=<sum> last_seq=<seq>
// create: blocks until the start pipe is closed, then opens the bus with
//   create=true (small_config()), prints "opened ino=<inode> bytes=<size>",
//   subscribes, writes kReady and waits for one event, which it prints.
// half-create: makes /dev/shm/ipcbus.B of --size zero bytes and exits as a
//   creator that died before initialising would.
//
// listen and publish take --allow-other-owner to open a bus that belongs to
// another user (OpenOptions::allow_other_owner).
//
// Exit status: 0 success, 2 bad arguments or a failed call, 3 an event did
// not come in time. Every peer ends itself after 90 s (alarm), so none
// outlives a test that lost track of it.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "ipcbus/bus.hpp"
#include "peer_protocol.hpp"

namespace {

using ipcbus::test::small_config;
using Args = std::map<std::string, std::vector<std::string>>;

constexpr int kExitOk = 0;
constexpr int kExitError = 2;
constexpr int kExitTimeout = 3;
constexpr auto kReceiveTimeout = std::chrono::seconds(20);
constexpr int kSignalTimeoutS = 60;
constexpr unsigned kLifetimeS = 90;

Args parse(int argc, char** argv) {
  Args args;
  for (int i = 2; i < argc; ++i) {
    std::string key = argv[i];
    if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
      args[key].emplace_back(argv[++i]);
    } else {
      args[key].emplace_back();  // a flag
    }
  }
  return args;
}

bool has(const Args& a, const std::string& key) {
  return a.count(key) != 0;
}
std::string get(const Args& a, const std::string& key, const std::string& fallback = "") {
  auto it = a.find(key);
  return it == a.end() || it->second.empty() ? fallback : it->second.front();
}
long get_num(const Args& a, const std::string& key, long fallback) {
  return has(a, key) ? std::strtol(get(a, key).c_str(), nullptr, 10) : fallback;
}

int fail(const std::string& what, const ipcbus::Error& e) {
  std::printf("error %s: %s (%s)\n", what.c_str(), ipcbus::errc_name(e.code), e.message.c_str());
  return kExitError;
}

void signal_ready(int fd, char what) {
  if (fd >= 0 && write(fd, &what, 1) != 1) {
    std::printf("error writing the ready pipe\n");
  }
}

// Waits for SIGUSR1, which main() blocked so that it queues until taken here.
bool wait_usr1() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  const timespec limit{kSignalTimeoutS, 0};
  return sigtimedwait(&set, nullptr, &limit) == SIGUSR1;
}

void print_event(const ipcbus::Sample& s) {
  const bool ok = ipcbus::test::payload_is_intact(s.sequence(), s.payload());
  std::printf("event %u %llu %.*s %zu %s\n", s.publisher_id(),
              static_cast<unsigned long long>(s.sequence()), static_cast<int>(s.topic().size()),
              s.topic().data(), s.payload().size(), ok ? "ok" : "bad");
}

ipcbus::Result<ipcbus::Bus> open_existing(const Args& a) {
  ipcbus::OpenOptions o;
  o.name = get(a, "--bus");
  o.create = false;
  o.allow_other_owner = has(a, "--allow-other-owner");
  return ipcbus::Bus::open(o);
}

int listen(const Args& a) {
  auto bus = open_existing(a);
  if (!bus) {
    return fail("open", bus.error());
  }
  ipcbus::ListenerOptions lo;
  lo.overflow = ipcbus::parse_overflow(get(a, "--overflow", "block")).value_or(lo.overflow);
  lo.wait = ipcbus::parse_wait_strategy(get(a, "--wait", "hybrid")).value_or(lo.wait);
  lo.capacity = static_cast<std::uint32_t>(get_num(a, "--capacity", 0));
  auto listener = bus->listen(lo);
  if (!listener) {
    return fail("listen", listener.error());
  }
  for (const std::string& f : a.at("--filter")) {
    if (auto ok = listener->subscribe(f); !ok) {
      return fail("subscribe " + f, ok.error());
    }
  }
  const int ready_fd = static_cast<int>(get_num(a, "--ready-fd", -1));
  signal_ready(ready_fd, ipcbus::test::kReady);

  if (has(a, "--hold") && !wait_usr1()) {
    std::printf("error no SIGUSR1\n");
    return kExitTimeout;
  }
  if (has(a, "--pause-cycle")) {
    if (!wait_usr1() || !listener->pause()) {
      return kExitError;
    }
    signal_ready(ready_fd, ipcbus::test::kPaused);
    if (!wait_usr1() || !listener->resume()) {
      return kExitError;
    }
    signal_ready(ready_fd, ipcbus::test::kResumed);
  }

  const long count = get_num(a, "--count", 0);
  const long sleep_us = get_num(a, "--sleep-us", 0);
  const bool blocking = has(a, "--blocking-receive");
  long received = 0;
  for (; has(a, "--drain") || received < count; ++received) {
    std::optional<ipcbus::Sample> s;
    if (has(a, "--drain")) {
      s = listener->try_receive();
      if (!s) {
        break;
      }
    } else {
      s = blocking ? listener->receive() : listener->receive_for(kReceiveTimeout);
      if (!s) {
        std::printf("timeout after %ld of %ld events\n", received, count);
        return kExitTimeout;
      }
    }
    print_event(*s);
    if (sleep_us > 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
    }
  }

  if (has(a, "--linger")) {
    const ipcbus::ListenerCounters k = listener->counters();
    std::printf("counters received=%llu wakeups=%llu\n",
                static_cast<unsigned long long>(k.received),
                static_cast<unsigned long long>(k.wakeups));
    signal_ready(ready_fd, ipcbus::test::kFinished);
    if (!wait_usr1()) {
      return kExitTimeout;
    }
    long extra = 0;
    while (listener->try_receive()) {
      ++extra;
    }
    std::printf("extra %ld\n", extra);
  }
  std::printf("done %ld\n", received);
  return kExitOk;
}

int publish(const Args& a) {
  auto bus = open_existing(a);
  if (!bus) {
    return fail("open", bus.error());
  }
  ipcbus::Publisher pub = bus->publisher();
  pub.set_block_timeout(std::chrono::milliseconds(get_num(a, "--block-timeout-ms", 1000)));
  const std::vector<std::string>& topics = a.at("--topic");
  const std::string size_arg = get(a, "--payload-size", "var");
  const long count = get_num(a, "--count", 0);
  std::vector<std::byte> payload(ipcbus::test::small_config().pools.back().payload_bytes);
  long ok = 0;
  long none = 0;
  long timed_out = 0;
  long failed = 0;
  unsigned long long delivered = 0;
  unsigned long long skipped = 0;
  unsigned long long last_seq = 0;
  const std::uint64_t first_seq = 1;  // a new publisher's sequence starts at 1
  for (long i = 0; i < count; ++i) {
    const std::uint64_t seq = first_seq + static_cast<std::uint64_t>(i);
    const std::size_t size = size_arg == "var" ? ipcbus::test::varying_payload_size(seq)
                                               : std::strtoul(size_arg.c_str(), nullptr, 10);
    const std::span<std::byte> bytes(payload.data(), size);
    ipcbus::test::fill_payload(seq, bytes);
    const std::string& topic = topics[static_cast<std::size_t>(i) % topics.size()];
    ipcbus::PublishResult r = pub.publish(topic, std::span<const std::byte>(bytes));
    // A pool runs dry only while listeners hold every chunk: back off and retry.
    for (int retry = 0; r.status == ipcbus::PublishStatus::kPoolExhausted && retry < 20000;
         ++retry) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      r = pub.publish(topic, std::span<const std::byte>(bytes));
    }
    ok += r.status == ipcbus::PublishStatus::kOk ? 1 : 0;
    none += r.status == ipcbus::PublishStatus::kNoListeners ? 1 : 0;
    timed_out += r.status == ipcbus::PublishStatus::kTimedOut ? 1 : 0;
    failed += r.ok() || r.status == ipcbus::PublishStatus::kTimedOut ? 0 : 1;
    delivered += r.delivered;
    skipped += r.skipped;
    last_seq = r.sequence;
  }
  std::printf(
      "published id=%u ok=%ld no_listeners=%ld timed_out=%ld failed=%ld delivered=%llu "
      "skipped=%llu last_seq=%llu\n",
      pub.id(), ok, none, timed_out, failed, delivered, skipped, last_seq);
  return kExitOk;
}

int create(const Args& a) {
  const int start_fd = static_cast<int>(get_num(a, "--start-fd", -1));
  const int ready_fd = static_cast<int>(get_num(a, "--ready-fd", -1));
  signal_ready(ready_fd, ipcbus::test::kWaiting);
  char byte = 0;
  while (read(start_fd, &byte, 1) > 0) {
  }

  ipcbus::OpenOptions o;
  o.name = get(a, "--bus");
  o.create = true;
  o.config = small_config();
  auto bus = ipcbus::Bus::open(o);
  if (!bus) {
    return fail("open", bus.error());
  }
  struct stat st {};
  if (stat(("/dev/shm/ipcbus." + o.name).c_str(), &st) != 0) {
    std::printf("error stat\n");
    return kExitError;
  }
  std::printf("opened ino=%llu bytes=%llu\n", static_cast<unsigned long long>(st.st_ino),
              static_cast<unsigned long long>(bus->inspect().segment_bytes));
  auto listener = bus->listen({});
  if (!listener) {
    return fail("listen", listener.error());
  }
  if (auto ok = listener->subscribe(get(a, "--filter")); !ok) {
    return fail("subscribe", ok.error());
  }
  signal_ready(ready_fd, ipcbus::test::kReady);
  auto s = listener->receive_for(kReceiveTimeout);
  if (!s) {
    std::printf("timeout\n");
    return kExitTimeout;
  }
  print_event(*s);
  return kExitOk;
}

int half_create(const Args& a) {
  const std::string path = "/ipcbus." + get(a, "--bus");
  const int fd = shm_open(path.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0 || ftruncate(fd, static_cast<off_t>(get_num(a, "--size", 0))) != 0) {
    std::printf("error shm_open/ftruncate %s\n", path.c_str());
    return kExitError;
  }
  close(fd);
  std::printf("half-created %s\n", path.c_str());
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  alarm(kLifetimeS);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // each line reaches the file at once
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &usr1, nullptr);  // queued until wait_usr1() takes it

  if (argc < 2) {
    std::fprintf(stderr, "usage: peer listen|publish|create|half-create --bus B ...\n");
    return kExitError;
  }
  const std::string role = argv[1];
  const Args args = parse(argc, argv);
  if (!has(args, "--bus") || (role == "listen" && !has(args, "--filter")) ||
      (role == "publish" && !has(args, "--topic"))) {
    std::fprintf(stderr, "peer %s: missing --bus, --filter or --topic\n", role.c_str());
    return kExitError;
  }
  if (role == "listen") {
    return listen(args);
  }
  if (role == "publish") {
    return publish(args);
  }
  if (role == "create") {
    return create(args);
  }
  if (role == "half-create") {
    return half_create(args);
  }
  std::fprintf(stderr, "peer: unknown role %s\n", role.c_str());
  return kExitError;
}
