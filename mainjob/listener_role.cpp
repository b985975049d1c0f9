// listener_role.cpp: a listener child. It subscribes to one filter and to the
// control topic, says "ready", receives until the control event, drains, and
// reports its count, drops, order check and latency percentiles.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "event_log.hpp"
#include "ipcbus/topic.hpp"
#include "replay.hpp"

namespace replay {

namespace {

// LIMIT: latencies go into one preallocated array, sorted at the end (Debian 12
// packages no C or C++ HDR histogram); past kMaxSamples events only every
// stride-th latency is kept, so percentiles of very long runs are sampled (max
// stays exact).
inline constexpr std::uint64_t kMaxSamples = std::uint64_t{1} << 23;  // 64 MiB of samples

// What one listener saw.
class Tally {
 public:
  explicit Tally(std::uint64_t expect)
      : stride_(expect > kMaxSamples ? (expect + kMaxSamples - 1) / kMaxSamples : 1),
        last_sequence_(64, 0) {
    latencies_.reserve(std::min(expect, kMaxSamples) + 1024);
  }

  // add records one data event received at `now`.
  void add(const ipcbus::Sample& s, std::uint64_t now, std::string_view filter) {
    ++received_;
    const std::uint64_t ts = s.timestamp_ns();
    const std::uint64_t latency = now > ts ? now - ts : 0;
    max_ns_ = std::max(max_ns_, latency);
    if (received_ % stride_ == 0) {
      latencies_.push_back(latency);
    }

    const std::uint32_t id = s.publisher_id();
    if (id >= last_sequence_.size()) {
      last_sequence_.resize(id + 1, 0);
    }
    if (s.sequence() <= last_sequence_[id]) {
      ++order_violations_;
    }
    last_sequence_[id] = s.sequence();

    // Integrity: the topic is what the payload says it is, and it matches our filter.
    derive_topic(s.payload_text(), scratch_);
    if (scratch_ != s.topic() || !ipcbus::filter_matches(filter, s.topic())) {
      ++corrupt_;
    }
  }

  nlohmann::json report(const ipcbus::ListenerCounters& k, std::string_view filter) {
    std::sort(latencies_.begin(), latencies_.end());
    std::uint32_t publishers_seen = 0;
    for (std::uint64_t seq : last_sequence_) {
      publishers_seen += seq != 0 ? 1 : 0;
    }
    return {
        {"filter", filter},
        {"received", received_},
        {"drops", k.dropped_newest + k.dropped_oldest + k.block_timeouts},
        {"dropped_newest", k.dropped_newest},
        {"dropped_oldest", k.dropped_oldest},
        {"block_timeouts", k.block_timeouts},
        {"wakeups", k.wakeups},
        {"order_violations", order_violations_},
        {"corrupt", corrupt_},
        {"publishers_seen", publishers_seen},
        {"latency_samples", latencies_.size()},
        {"p50_ns", percentile(50)},
        {"p99_ns", percentile(99)},
        {"max_ns", max_ns_},
    };
  }

 private:
  // Nearest rank over the sorted samples; 0 when there are none.
  std::uint64_t percentile(std::uint32_t p) const {
    if (latencies_.empty()) {
      return 0;
    }
    const std::uint64_t n = latencies_.size();
    const std::uint64_t rank = (n * p + 99) / 100;  // ceil(n * p / 100), at least 1 for n >= 1
    return latencies_[std::max<std::uint64_t>(rank, 1) - 1];
  }

  std::uint64_t stride_;
  std::vector<std::uint64_t> latencies_;
  std::vector<std::uint64_t> last_sequence_;  // by publisher id; sequences start at 1
  std::uint64_t received_ = 0;
  std::uint64_t max_ns_ = 0;
  std::uint64_t order_violations_ = 0;
  std::uint64_t corrupt_ = 0;
  std::string scratch_;
};

}  // namespace

int run_listener(const ListenerRoleOptions& o) {
  signal(SIGINT, SIG_IGN);  // the coordinator handles Ctrl-C and ends us
  ipcbus::OpenOptions open_options;
  open_options.name = o.bus;
  open_options.create = false;  // the coordinator made it; never make another
  auto opened = ipcbus::Bus::open(open_options);
  if (!opened) {
    std::fprintf(stderr, "listener %s: cannot open bus %s: %s\n", o.filter.c_str(), o.bus.c_str(),
                 opened.error().message.c_str());
    return 1;
  }
  ipcbus::Bus bus = std::move(opened.value());
  ipcbus::ListenerOptions listen_options;
  listen_options.overflow = ipcbus::Overflow::kBlock;  // counts must be exact: nothing may drop
  listen_options.wait = o.wait;
  auto made = bus.listen(listen_options);
  if (!made) {
    std::fprintf(stderr, "listener %s: %s\n", o.filter.c_str(), made.error().message.c_str());
    return 1;
  }
  ipcbus::Listener listener = std::move(made.value());
  for (const std::string& f : {o.filter, std::string(kControlTopic)}) {
    if (auto ok = listener.subscribe(f); !ok) {
      std::fprintf(stderr, "listener: cannot subscribe %s: %s\n", f.c_str(),
                   ok.error().message.c_str());
      return 1;
    }
  }
  Tally tally(o.expect);
  if (!emit_line("ready")) {
    return 1;
  }

  // Until the control event; then whatever is still queued (nothing, when the
  // publishers exited before the coordinator sent it, but drain to be sure).
  bool done = false;
  while (!done) {
    std::optional<ipcbus::Sample> s = listener.receive_for(std::chrono::milliseconds(200));
    if (!s) {
      continue;  // the coordinator's watchdog ends a run that never finishes
    }
    const std::uint64_t now = now_ns();
    if (s->topic() == kControlTopic) {
      done = true;
    } else {
      tally.add(*s, now, o.filter);
    }
  }
  while (std::optional<ipcbus::Sample> s = listener.try_receive()) {
    if (s->topic() != kControlTopic) {
      tally.add(*s, now_ns(), o.filter);
    }
  }

  const nlohmann::json report = tally.report(listener.counters(), o.filter);
  listener.close();
  return emit_line("report " + report.dump()) ? 0 : 1;
}

}  // namespace replay
