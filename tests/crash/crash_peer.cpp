// crash_peer.cpp: the victim of the crash-point tests, linked to the
// crash-point build of the library (ipcbus_crash), so that $IPCBUS_CRASH_AT
// kills it at its k-th crash point (libipcbus/src/crash.hpp).
//
//   crash_peer publish BUS N     N copying publishes on c/e
//   crash_peer loan BUS N        N loans: even ones published, odd ones dropped
//   crash_peer receive BUS N     a listener on c/#; writes 'R' on $CRASH_PEER_READY_FD when
//                                subscribed, then receives N events, holding
//                                up to two samples at a time
//   crash_peer subscribe BUS N   N subscribe / unsubscribe pairs of one listener
//   crash_peer reclaim BUS       Bus::reclaim_dead() once (the agent's cleanup)
//   crash_peer hold BUS          a listener on c/# and two loans, held until
//                                killed (writes 'R' on $CRASH_PEER_READY_FD when ready)
//   crash_peer create BUS N      opens the bus with create allowed, the config of
//                                small_config() but a ring capacity of N
//
// Prints "done" and exits 0 when it got to the end, that is when k was past
// the path's last crash point.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ipcbus/bus.hpp"

namespace {

ipcbus::Bus open_bus(const char* name) {
  ipcbus::OpenOptions o;
  o.name = name;
  o.create = false;
  auto bus = ipcbus::Bus::open(o);
  if (!bus) {
    std::fprintf(stderr, "crash_peer: %s\n", bus.error().message.c_str());
    std::exit(2);
  }
  return std::move(bus).value();
}

// Tell the test we are ready, on the pipe $CRASH_PEER_READY_FD names.
void ready() {
  const char* fd = std::getenv("CRASH_PEER_READY_FD");
  const char r = 'R';
  if (fd != nullptr) {
    (void)!write(std::atoi(fd), &r, 1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  alarm(300);  // never outlive a test that lost track of us
  if (argc < 3) {
    return 2;
  }
  const std::string role = argv[1];
  const int n = argc > 3 ? std::atoi(argv[3]) : 0;
  if (role == "create") {
    ipcbus::OpenOptions o;
    o.name = argv[2];
    o.config.pools = {{256, 512}, {4096, 64}};
    o.config.max_listeners = 16;
    o.config.ring_capacity = static_cast<std::uint32_t>(n);
    o.config.trie_nodes = 256;
    o.config.subscriptions = 256;
    o.config.max_processes = 32;
    auto made = ipcbus::Bus::open(o);
    std::printf("%s\n", made ? "done" : made.error().message.c_str());
    return made ? 0 : 2;
  }
  ipcbus::Bus bus = open_bus(argv[2]);
  if (role == "publish") {
    ipcbus::Publisher pub = bus.publisher();
    pub.set_block_timeout(std::chrono::milliseconds(10));
    for (int i = 0; i < n; ++i) {
      (void)pub.publish("c/e", std::to_string(i));
    }
  } else if (role == "loan") {
    ipcbus::Publisher pub = bus.publisher();
    for (int i = 0; i < n; ++i) {
      auto loan = pub.loan(8);
      if (!loan) {
        return 2;
      }
      loan->data()[0] = std::byte{1};
      if (i % 2 == 0) {
        (void)pub.publish("c/e", std::move(*loan));
      }
    }
  } else if (role == "receive") {
    auto l = bus.listen({});
    if (!l || !l->subscribe("c/#")) {
      return 2;
    }
    ready();
    std::deque<ipcbus::Sample> held;
    for (int i = 0; i < n; ++i) {
      auto s = l->receive_for(std::chrono::seconds(10));
      if (!s) {
        return 3;
      }
      held.push_back(std::move(*s));
      if (held.size() > 2) {
        held.pop_front();
      }
    }
  } else if (role == "subscribe") {
    auto l = bus.listen({});
    if (!l) {
      return 2;
    }
    for (int i = 0; i < n; ++i) {
      const std::string f = "c/s" + std::to_string(i) + "/+/x";
      if (!l->subscribe(f) || !l->unsubscribe(f)) {
        return 2;
      }
    }
  } else if (role == "reclaim") {
    (void)bus.reclaim_dead();
  } else if (role == "hold") {
    auto l = bus.listen({});
    if (!l || !l->subscribe("c/#")) {
      return 2;
    }
    ipcbus::Publisher pub = bus.publisher();
    auto a = pub.loan(8);
    auto b = pub.loan(300);
    (void)pub.publish("c/e", "held");
    auto s = l->try_receive();
    ready();
    for (;;) {
      pause();
    }
  } else if (role == "stuck-block") {
    // A block-policy listener with a 2-entry ring that never receives.
    ipcbus::ListenerOptions o;
    o.overflow = ipcbus::Overflow::kBlock;
    o.capacity = 2;
    auto l = bus.listen(o);
    if (!l || !l->subscribe("c/#")) {
      return 2;
    }
    ready();
    for (;;) {
      pause();
    }
  } else if (role == "orphan") {
    // n samples kept after their Listener is closed, then wait to be killed.
    ipcbus::Publisher pub = bus.publisher();
    std::vector<ipcbus::Sample> held;
    {
      auto l = bus.listen({});
      if (!l || !l->subscribe("c/#")) {
        return 2;
      }
      for (int i = 0; i < n; ++i) {
        (void)pub.publish("c/e", "orphan");
        auto s = l->try_receive();
        if (!s) {
          return 3;
        }
        held.push_back(std::move(*s));
      }
    }
    ready();
    for (;;) {
      pause();
    }
  } else if (role == "chaos-pub") {
    ipcbus::Publisher pub = bus.publisher();
    pub.set_block_timeout(std::chrono::seconds(5));
    std::printf("pub %u\n", pub.id());
    std::fflush(stdout);
    int ok = 0;
    for (int i = 0; i < n; ++i) {
      const auto r = pub.publish(argv[4], std::to_string(i + 1));
      ok += r.status == ipcbus::PublishStatus::kOk ? 1 : 0;
    }
    std::printf("published %d\n", ok);
  } else if (role == "chaos-sub") {
    ipcbus::ListenerOptions o;
    o.overflow = *ipcbus::parse_overflow(argv[4]);
    o.wait = ipcbus::WaitStrategy::kHybrid;
    auto l = bus.listen(o);
    if (!l || !l->subscribe(argv[5])) {
      return 2;
    }
    ready();
    struct From {
      std::uint64_t count = 0;
      std::uint64_t last = 0;
      bool ordered = true;
      std::set<std::uint64_t> seen;
      std::uint64_t dups = 0;
    };
    std::map<std::uint32_t, From> from;
    for (;;) {
      auto s = l->receive_for(std::chrono::seconds(3));
      if (!s) {
        break;
      }
      From& f = from[s->publisher_id()];
      const std::uint64_t seq = s->sequence();
      f.dups += f.seen.insert(seq).second ? 0 : 1;
      f.ordered = f.ordered && seq > f.last;
      f.last = seq;
      ++f.count;
    }
    for (const auto& [id, f] : from) {
      std::printf("from %u %llu %d %llu\n", id, static_cast<unsigned long long>(f.count),
                  f.ordered ? 1 : 0, static_cast<unsigned long long>(f.dups));
    }
  } else {
    return 2;
  }
  std::printf("done\n");
  return 0;
}
