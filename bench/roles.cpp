// roles.cpp: what a child process does: ping, pong, send a stream, receive
// a stream, or publish timed bursts. The loops are the same for every
// transport; only the Sender and Receiver differ.
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "harness.hpp"
#include "transport.hpp"

namespace ipcbus::bench {

namespace {

// relaxed: polled while waiting; the start itself needs no ordering beyond
// what each transport's own hand-over provides.
bool aborted(const Control& ctl) {
  return ctl.abort.load(std::memory_order_relaxed) != 0;
}

// Wait for the parent's go without sleeping, so that no role starts late
// because its wake-up from a sleep waited for a CPU; yielding leaves the CPU
// to peers still opening their endpoints.
bool wait_go(const Control& ctl) {
  // acquire: pairs with the parent's release store of `go`, after which
  // every peer has opened its endpoints.
  while (ctl.go.load(std::memory_order_acquire) == 0) {
    if (aborted(ctl)) {
      return false;
    }
    sched_yield();
  }
  return true;
}

bool send_one(Sender& tx, std::size_t n, std::uint64_t seq, std::uint32_t source, bool stamp) {
  std::byte* p = tx.loan(n);
  if (p == nullptr) {
    return false;
  }
  fill_payload(p, n, seq, source, stamp);
  return tx.send(n);
}

// Role 0 of a ping-pong: send, wait for the answer, one clock read per
// round trip (the previous read closes one round and opens the next).
int run_pinger(Control& ctl, RoleResult& r, Endpoints& ep) {
  const CaseSpec& s = ctl.spec;
  const std::size_t n = s.payload;
  const std::uint64_t total = s.warmup_iterations + s.max_iterations;
  // A payload too small for a header cannot carry the end marker: such a
  // case runs an exact count, known to both sides, and ignores the deadline.
  const bool exact = n < kMinPayload;
  if (!wait_go(ctl)) {
    role_fail(r, "aborted before start");
    return 1;
  }
  // The ponger says when it is about to wait for the first ping, so that the
  // first round trip is the first event's and not the ponger's late start.
  const RoleResult& ponger = ctl.roles[1];
  // acquire: pairs with the ponger's release store.
  while (ponger.progress.load(std::memory_order_acquire) == 0) {
    if (aborted(ctl)) {
      role_fail(r, "aborted before the ponger was ready");
      return 1;
    }
    sched_yield();
  }
  sleep_ns(1'000'000);  // let it reach its receive call
  const std::uint64_t cpu0 = cpu_time_ns();
  std::uint64_t deadline = 0;
  const std::uint64_t faults0 = page_faults();
  std::uint64_t prev = now_ns();
  const std::uint64_t start = prev;
  bool warm = s.warmup_iterations > 0;
  std::uint64_t i = 0;
  for (; i < total; ++i) {
    const std::uint64_t seq = i + 1;
    if (!send_one(*ep.tx, n, seq, 0, !ep.tx->stamps())) {
      role_fail(r, "send: " + ep.tx->error());
      return 1;
    }
    std::size_t got = 0;
    std::uint64_t stamp = 0;
    const std::byte* p = ep.rx->receive(&got, &stamp);
    if (p == nullptr) {
      role_fail(r, "receive: " + ep.rx->error());
      return 1;
    }
    bool ok = true;
    const EventHeader h = touch_payload(p, got, &ok);
    if (!ok || got != n || (n >= kMinPayload && h.seq != seq)) {
      ++r.errors;
    }
    ep.rx->release();
    const std::uint64_t t = now_ns();
    const std::uint64_t half = (t - prev) / 2;
    prev = t;
    if (i == 0) {
      r.first_rtt_ns = 2 * half;
      r.first_faults = page_faults() - faults0;
    } else if (i == 999) {
      r.thousandth_rtt_ns = 2 * half;
    }
    // Warm-up: the first warmup_iterations round trips or warmup_ns,
    // whichever ends first (large payloads would take long otherwise).
    warm = warm && i + 1 < s.warmup_iterations && t - start < s.warmup_ns;
    if (!warm) {
      r.rtt_half.record(half);
      if (deadline == 0) {
        deadline = t + s.duration_ns;
      } else if (!exact && t >= deadline && r.rtt_half.count() >= 1000) {
        ++i;
        break;
      }
    }
    if (aborted(ctl)) {
      role_fail(r, "aborted");
      return 1;
    }
  }
  r.sent = i;
  r.received = i;
  r.cpu_ns = cpu_time_ns() - cpu0;
  if (!exact && !send_one(*ep.tx, n, kEndSeq, 0, false)) {
    role_fail(r, "send end: " + ep.tx->error());
    return 1;
  }
  return 0;
}

// Role 1 of a ping-pong: answer each ping with a pong of the same sequence.
// One clock read per event, for the one-way figure (also paid by every
// transport, the floor included, so the ratios stay fair).
int run_ponger(Control& ctl, RoleResult& r, Endpoints& ep) {
  const std::size_t n = ctl.spec.payload;
  const bool timed = n >= kMinPayload;
  if (!wait_go(ctl)) {
    role_fail(r, "aborted before start");
    return 1;
  }
  const std::uint64_t cpu0 = cpu_time_ns();
  const std::uint64_t faults0 = page_faults();
  // release: the pinger starts once it sees this.
  r.progress.store(1, std::memory_order_release);
  bool warm = ctl.spec.warmup_iterations > 0;
  std::uint64_t first = 0;
  for (std::uint64_t i = 0;; ++i) {
    std::size_t got = 0;
    std::uint64_t stamp = 0;
    const std::byte* p = ep.rx->receive(&got, &stamp);
    if (p == nullptr) {
      role_fail(r, "receive: " + ep.rx->error());
      return 1;
    }
    const std::uint64_t t = timed ? now_ns() : 0;
    bool ok = true;
    const EventHeader h = touch_payload(p, got, &ok);
    ep.rx->release();
    const std::uint64_t seq = n >= kMinPayload ? h.seq : i + 1;
    if (n >= kMinPayload && h.seq == kEndSeq) {
      break;
    }
    if (!ok || got != n) {
      ++r.errors;
    }
    if (timed) {
      const std::uint64_t sent_at = stamp != 0 ? stamp : h.stamp_ns;
      const std::uint64_t one_way = t > sent_at ? t - sent_at : 0;
      if (i == 0) {
        r.first_oneway_ns = one_way;
      } else if (i == 999) {
        r.thousandth_oneway_ns = one_way;
      }
      // The pinger's warm-up rule, applied to this side's own count and clock.
      first = first == 0 ? t : first;
      warm = warm && i + 1 < ctl.spec.warmup_iterations && t - first < ctl.spec.warmup_ns;
      if (!warm) {
        r.one_way.record(one_way);
      }
    }
    ++r.received;
    if (!send_one(*ep.tx, n, seq, 1, !ep.tx->stamps() && timed)) {
      role_fail(r, "send: " + ep.tx->error());
      return 1;
    }
    ++r.sent;
    if (i == 0) {
      r.first_faults = page_faults() - faults0;
    }
    if (n < kMinPayload && ctl.spec.max_iterations != 0 &&
        i + 1 >= ctl.spec.warmup_iterations + ctl.spec.max_iterations) {
      break;  // an exact count, see run_pinger()
    }
  }
  r.cpu_ns = cpu_time_ns() - cpu0;
  return 0;
}

// A stream sender: as many events as the transport takes for the duration,
// the clock read once every 64 events, then an end marker.
int run_stream_sender(Control& ctl, RoleResult& r, Endpoints& ep, int role) {
  const CaseSpec& s = ctl.spec;
  const std::size_t n = s.payload;
  const auto source = static_cast<std::uint32_t>(role);
  if (!wait_go(ctl)) {
    role_fail(r, "aborted before start");
    return 1;
  }
  const std::uint64_t cpu0 = cpu_time_ns();
  const std::uint64_t t0 = now_ns();
  const std::uint64_t stop = t0 + s.warmup_ns + s.duration_ns;
  std::uint64_t seq = 0;
  for (;;) {
    for (int k = 0; k < 64; ++k) {
      if (!send_one(*ep.tx, n, ++seq, source, false)) {
        role_fail(r, "send: " + ep.tx->error());
        return 1;
      }
    }
    if (now_ns() >= stop || aborted(ctl)) {
      break;
    }
  }
  r.busy_ns = now_ns() - t0;
  r.sent = seq;
  r.cpu_ns = cpu_time_ns() - cpu0;
  if (!send_one(*ep.tx, n, kEndSeq, source, false)) {
    role_fail(r, "send end: " + ep.tx->error());
    return 1;
  }
  return 0;
}

// A fan-out sender: bursts of capacity/2 events, each timed as a whole,
// with the listeners drained between bursts so that no publish waits.
int run_fanout_sender(Control& ctl, RoleResult& r, Endpoints& ep) {
  const CaseSpec& s = ctl.spec;
  const std::size_t n = s.payload;
  const std::uint32_t burst = std::max<std::uint32_t>(1, s.capacity / 2);
  if (!wait_go(ctl)) {
    role_fail(r, "aborted before start");
    return 1;
  }
  const std::uint64_t cpu0 = cpu_time_ns();
  std::uint64_t seq = 0;
  for (std::uint32_t b = 0; b < s.bursts; ++b) {
    for (std::uint32_t l = 0; l < s.listeners; ++l) {
      const RoleResult& lr = ctl.roles[s.publishers + l];
      // acquire: the listener's count of events it has taken out.
      while (lr.progress.load(std::memory_order_acquire) < seq) {
        if (aborted(ctl)) {
          role_fail(r, "aborted");
          return 1;
        }
        cpu_relax();
      }
    }
    const std::uint64_t t0 = now_ns();
    for (std::uint32_t k = 0; k < burst; ++k) {
      if (!send_one(*ep.tx, n, ++seq, 0, false)) {
        role_fail(r, "send: " + ep.tx->error());
        return 1;
      }
    }
    const std::uint64_t t1 = now_ns();
    if (b > 0) {  // the first burst warms the route cache and the rings
      r.rtt_half.record((t1 - t0) / burst);
    }
  }
  r.sent = seq;
  r.cpu_ns = cpu_time_ns() - cpu0;
  if (!send_one(*ep.tx, n, kEndSeq, 0, false)) {
    role_fail(r, "send end: " + ep.tx->error());
    return 1;
  }
  return 0;
}

// A stream receiver: counts events after the warm-up, checks each payload
// and the order per sender, until every sender's end marker came.
int run_stream_receiver(Control& ctl, RoleResult& r, Endpoints& ep) {
  const CaseSpec& s = ctl.spec;
  const std::size_t n = s.payload;
  const bool report_progress = s.pattern == Pattern::kFanoutCost;
  std::vector<std::uint64_t> last(s.publishers, 0);
  std::uint32_t ends = 0;
  if (!wait_go(ctl)) {
    role_fail(r, "aborted before start");
    return 1;
  }
  const std::uint64_t cpu0 = cpu_time_ns();
  std::uint64_t first = 0;
  std::uint64_t window_start = 0;
  std::uint64_t count_at_start = 0;
  // The clock is read every 64 events, or every event when they are few and large.
  const std::uint64_t check_mask = n >= 16384 ? 0 : 63;
  while (ends < s.publishers) {
    std::size_t got = 0;
    std::uint64_t stamp = 0;
    const std::byte* p = ep.rx->receive(&got, &stamp);
    if (p == nullptr) {
      role_fail(r, "receive: " + ep.rx->error());
      return 1;
    }
    bool ok = true;
    const EventHeader h = touch_payload(p, got, &ok);
    ep.rx->release();
    if (h.seq == kEndSeq) {
      ++ends;
      continue;
    }
    if (!ok || got != n || h.source >= s.publishers || h.seq != last[h.source] + 1) {
      ++r.errors;
    }
    if (h.source < s.publishers) {
      last[h.source] = h.seq;
    }
    ++r.received;
    if (report_progress) {
      // release: the sender waits for this count before its next burst.
      r.progress.store(r.received, std::memory_order_release);
    }
    if (first == 0) {
      first = now_ns();
    } else if (window_start == 0 && (r.received & check_mask) == 0) {
      const std::uint64_t t = now_ns();
      if (t >= first + s.warmup_ns) {
        window_start = t;
        count_at_start = r.received;
      }
    }
  }
  const std::uint64_t end = now_ns();
  if (window_start == 0) {  // too few events for a warm-up: count them all
    window_start = first;
    count_at_start = std::min<std::uint64_t>(r.received, 1);
  }
  r.window_ns = end > window_start ? end - window_start : 0;
  r.counted = r.received - count_at_start;
  r.cpu_ns = cpu_time_ns() - cpu0;
  return 0;
}

// Wait until every role that receives from `role` has finished (done or
// failed), or the case is aborted.
void wait_for_receivers(const Control& ctl, int role) {
  const CaseSpec& s = ctl.spec;
  int first = 0;
  int last = -1;
  if (s.pattern == Pattern::kPingPong) {
    if (role == 0) {  // the pinger's end marker goes to the ponger
      first = last = 1;
    }
  } else if (s.sends(role)) {
    first = static_cast<int>(s.publishers);
    last = s.roles() - 1;
  }
  for (int k = first; k <= last; ++k) {
    // acquire: pairs with the receiver's release store of its final state.
    while (ctl.roles[k].state.load(std::memory_order_acquire) <
           static_cast<std::uint32_t>(RoleState::kDone)) {
      if (aborted(ctl)) {
        return;
      }
      sleep_ns(200'000);
    }
  }
}

}  // namespace

int child_main(int role, int ctl_fd) {
  // Die with the parent, whatever happens to it.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) {
    return 1;
  }
  struct stat st {};
  if (fstat(ctl_fd, &st) != 0 || static_cast<std::uint64_t>(st.st_size) < sizeof(Control)) {
    std::fprintf(stderr, "ipcbus-bench role %d: bad control descriptor\n", role);
    return 2;
  }
  void* base = mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ | PROT_WRITE,
                    MAP_SHARED, ctl_fd, 0);
  if (base == MAP_FAILED) {
    std::perror("ipcbus-bench: mmap control");
    return 2;
  }
  close(ctl_fd);
  auto& ctl = *static_cast<Control*>(base);
  if (ctl.magic != kControlMagic || role < 0 || role >= ctl.spec.roles()) {
    std::fprintf(stderr, "ipcbus-bench role %d: bad control block\n", role);
    return 2;
  }
  const CaseSpec& s = ctl.spec;
  RoleResult& r = ctl.roles[role];
  set_run_dir(s.dir);
  // A last resort against a hang that the parent's watchdog did not catch.
  alarm(static_cast<unsigned>(s.duration_ns / 1000000000ULL) * 4 + 120);
  if (!pin_to_cpu(s.cpu[role])) {
    role_fail(r, "cannot pin to CPU " + std::to_string(s.cpu[role]));
    return 1;
  }
  Endpoints ep = open_endpoints(ctl, role);
  if (!ep.error.empty()) {
    role_fail(r, ep.error);
    return 1;
  }
  // release: the parent that sees kReady may start the others.
  r.state.store(static_cast<std::uint32_t>(RoleState::kReady), std::memory_order_release);
  int rc = 0;
  switch (s.pattern) {
    case Pattern::kPingPong:
      rc = role == 0 ? run_pinger(ctl, r, ep) : run_ponger(ctl, r, ep);
      break;
    case Pattern::kStream:
      rc = s.sends(role) ? run_stream_sender(ctl, r, ep, role) : run_stream_receiver(ctl, r, ep);
      break;
    case Pattern::kFanoutCost:
      rc = s.sends(role) ? run_fanout_sender(ctl, r, ep) : run_stream_receiver(ctl, r, ep);
      break;
  }
  if (rc == 0) {
    // release: the parent reads the results after it sees kDone.
    r.state.store(static_cast<std::uint32_t>(RoleState::kDone), std::memory_order_release);
  }
  // A sender keeps its end open until the roles it sends to are done: a
  // ZeroMQ PULL socket drops what it holds from a peer that disconnects, the
  // end marker included, and other transports may do the same.
  if (rc == 0) {
    wait_for_receivers(ctl, role);
  }
  // Close the transports before the process goes (iceoryx deregisters).
  ep.tx.reset();
  ep.rx.reset();
  return rc;
}

}  // namespace ipcbus::bench
