// listener.cpp: the receive path, the wait strategies, the listener's state
// transitions and adaptive shrinking; and Sample, the RAII view of a chunk.
#include <algorithm>

#include "core.hpp"

namespace ipcbus {

namespace {
inline constexpr std::uint64_t kHybridSpinNs = 20000;  // spin this long before sleeping
inline constexpr std::uint64_t kForeverNs = 3600ULL * 1000000000ULL;

constexpr std::uint64_t state_value(ListenerState s) {
  return static_cast<std::uint64_t>(s);
}
}  // namespace

Listener::Listener(std::shared_ptr<detail::BusCore> core, std::uint32_t index,
                   std::uint32_t generation)
    : core_(std::move(core)), index_(index), generation_(generation) {
  const detail::ListenerSlot& s = core_->slot(index_);
  overflow_ = static_cast<Overflow>(s.overflow);
  wait_ = static_cast<WaitStrategy>(s.wait);
  adaptive_ = s.adaptive != 0;
  // relaxed: only this listener switches it.
  histogram_ = s.histogram_on.load(std::memory_order_relaxed) != 0;
}

Listener::Listener(Listener&& other) noexcept
    : core_(std::move(other.core_)),
      index_(other.index_),
      generation_(other.generation_),
      receives_since_check_(other.receives_since_check_),
      received_(other.received_),
      state_(other.state_),
      overflow_(other.overflow_),
      wait_(other.wait_),
      adaptive_(other.adaptive_),
      histogram_(other.histogram_),
      filters_(std::move(other.filters_)) {
  other.state_ = ListenerState::kClosed;
}

Listener& Listener::operator=(Listener&& other) noexcept {
  if (this != &other) {
    close();
    core_ = std::move(other.core_);
    index_ = other.index_;
    generation_ = other.generation_;
    receives_since_check_ = other.receives_since_check_;
    received_ = other.received_;
    state_ = other.state_;
    overflow_ = other.overflow_;
    wait_ = other.wait_;
    adaptive_ = other.adaptive_;
    histogram_ = other.histogram_;
    filters_ = std::move(other.filters_);
    other.state_ = ListenerState::kClosed;
  }
  return *this;
}

Listener::~Listener() {
  close();
}

Result<void> Listener::subscribe(std::string_view filter) {
  if (!core_ || state_ == ListenerState::kClosed) {
    return Error{Errc::kClosed, "listener is closed"};
  }
  if (auto ok = core_->subscribe(index_, generation_, filter); !ok) {
    return ok;
  }
  if (std::find(filters_.begin(), filters_.end(), filter) == filters_.end()) {
    filters_.emplace_back(filter);
  }
  return {};
}

Result<void> Listener::unsubscribe(std::string_view filter) {
  if (!core_ || state_ == ListenerState::kClosed) {
    return Error{Errc::kClosed, "listener is closed"};
  }
  if (auto ok = core_->unsubscribe(index_, filter); !ok) {
    return ok;
  }
  std::erase(filters_, filter);
  return {};
}

std::optional<Sample> Listener::try_receive() {
  if (state_ != ListenerState::kActive) {
    return std::nullopt;
  }
  detail::BusCore& c = *core_;
  detail::ListenerSlot& s = c.slot(index_);
  const std::uint32_t ref = c.try_pop(index_);
  IPCBUS_CRASH_POINT("receive");
  if (ref == detail::kNone) {
    if (adaptive_) {
      maybe_shrink();
    }
    return std::nullopt;
  }
  // relaxed: this listener is the counter's only writer; tools read it.
  s.received.store(++received_, std::memory_order_relaxed);
  if (overflow_ == Overflow::kBlock) {
    c.wake_space_waiters(s);
  }
  if (adaptive_ && (++receives_since_check_ & 63U) == 0) {
    maybe_shrink();
  }
  detail::ChunkHeader* ch = c.chunk(ref);
  c.prefetch_received(ch);
  if (histogram_) {
    const std::uint64_t now = detail::monotonic_ns();
    const std::uint64_t ns = now > ch->timestamp_ns ? now - ch->timestamp_ns : 0;
    auto& bucket = s.latency[LatencyHistogram::bucket_of(ns)];
    // relaxed: this listener is the only writer; tools read the buckets.
    bucket.store(bucket.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  // relaxed: a count within this process, read by close() of this listener.
  c.samples_out[index_].fetch_add(1, std::memory_order_relaxed);
  return Sample(&c, ch, 1ULL << index_);
}

std::optional<Sample> Listener::receive_for(std::chrono::nanoseconds timeout) {
  if (auto sample = try_receive()) {
    return sample;
  }
  if (state_ != ListenerState::kActive || timeout.count() <= 0) {
    return std::nullopt;  // a paused listener receives nothing, and waits for nothing
  }
  detail::ListenerSlot& s = core_->slot(index_);
  const std::uint64_t start = detail::monotonic_ns();
  const std::uint64_t deadline = start + static_cast<std::uint64_t>(timeout.count());
  const WaitStrategy strategy = wait_;

  if (strategy != WaitStrategy::kSleep) {
    const std::uint64_t spin_until =
        strategy == WaitStrategy::kBusyPoll ? deadline : std::min(deadline, start + kHybridSpinNs);
    for (std::uint32_t i = 1;; ++i) {
      if (auto sample = try_receive()) {
        return sample;
      }
      if ((i & 63U) == 0 && detail::monotonic_ns() >= spin_until) {
        break;
      }
      detail::cpu_relax();
    }
    if (strategy == WaitStrategy::kBusyPoll) {
      return std::nullopt;
    }
  }

  for (;;) {
    // acquire: pairs with the waker's release bump of the futex word.
    const std::uint32_t seen = s.futex.load(std::memory_order_acquire);
    // relaxed store, then the fence: SYNC(sleep), see wake_if_sleeping().
    s.sleeping.store(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (auto sample = try_receive()) {
      // relaxed: publishers only use it to decide whether to wake us.
      s.sleeping.store(0, std::memory_order_relaxed);
      return sample;
    }
    const std::uint64_t now = detail::monotonic_ns();
    if (now >= deadline) {
      s.sleeping.store(0, std::memory_order_relaxed);
      return std::nullopt;
    }
    detail::futex_wait(&s.futex, seen, deadline - now);
    // relaxed: awake again; publishers only use it to decide whether to wake.
    s.sleeping.store(0, std::memory_order_relaxed);
  }
}

std::optional<Sample> Listener::receive() {
  while (state_ == ListenerState::kActive) {
    if (auto sample = receive_for(std::chrono::nanoseconds(kForeverNs))) {
      return sample;
    }
  }
  return std::nullopt;
}

// Shrink the effective capacity by half when the ring has drained below a
// quarter of it and neither a high-water signal nor a resize came for the
// quiet period.
void Listener::maybe_shrink() {
  detail::BusCore& c = *core_;
  detail::ListenerSlot& s = c.slot(index_);
  // relaxed, for all loads and stores here: resizing heuristics; capacity
  // only bounds the fill level and a stale value is harmless.
  const std::uint32_t cap = s.capacity.load(std::memory_order_relaxed);
  if (cap <= s.min_capacity || std::uint64_t{c.ring_used(index_)} * 4 >= cap) {
    return;
  }
  const std::uint64_t now = detail::monotonic_ns();
  if (now - s.last_high_water_ns.load(std::memory_order_relaxed) < s.quiet_ns ||
      now - s.last_resize_ns.load(std::memory_order_relaxed) < s.quiet_ns) {
    return;
  }
  std::uint32_t expected = cap;
  if (s.capacity.compare_exchange_strong(expected, std::max(cap / 2, s.min_capacity),
                                         std::memory_order_relaxed)) {
    s.last_resize_ns.store(now, std::memory_order_relaxed);
    s.hw_since_change.store(0, std::memory_order_relaxed);
  }
}

namespace {

// One CAS from `from` to `to`, keeping the generation.
bool transition(detail::ListenerSlot& s, std::uint32_t gen, ListenerState from, ListenerState to) {
  // relaxed: the CAS below carries the ordering.
  std::uint64_t w = s.state.load(std::memory_order_relaxed);
  for (;;) {
    if (detail::generation_of(w) != gen || detail::state_bits(w) != state_value(from)) {
      return false;
    }
    const std::uint64_t want = (w & ~detail::kStateMask) | state_value(to);
    // acq_rel: publishers load the state with acquire and see the new one
    // from their next fan-out on; only this listener and crash cleanup
    // write the word, so a retry is rare (a spurious CAS failure).
    if (s.state.compare_exchange_weak(w, want, std::memory_order_acq_rel,
                                      std::memory_order_relaxed)) {
      return true;
    }
  }
}

}  // namespace

Result<void> Listener::pause() {
  if (!core_ || !transition(core_->slot(index_), generation_, ListenerState::kActive,
                            ListenerState::kPaused)) {
    return Error{Errc::kInvalidArgument,
                 std::string("cannot pause a listener that is ") + listener_state_name(state_)};
  }
  state_ = ListenerState::kPaused;
  return {};
}

Result<void> Listener::resume() {
  if (!core_ || !transition(core_->slot(index_), generation_, ListenerState::kPaused,
                            ListenerState::kActive)) {
    return Error{Errc::kInvalidArgument,
                 std::string("cannot resume a listener that is ") + listener_state_name(state_)};
  }
  state_ = ListenerState::kActive;
  return {};
}

void Listener::close() {
  if (core_ && state_ != ListenerState::kClosed) {
    core_->close_listener(index_, generation_);
  }
  state_ = ListenerState::kClosed;
}

void Listener::set_latency_histogram(bool on) {
  if (core_) {
    // relaxed: only this listener reads it on its receive path.
    core_->slot(index_).histogram_on.store(on ? 1 : 0, std::memory_order_relaxed);
  }
  histogram_ = on;
}

ListenerState Listener::state() const {
  return state_;
}

Fill Listener::fill() const {
  Fill f;
  if (!core_) {
    return f;
  }
  const detail::ListenerSlot& s = core_->slot(index_);
  f.used = core_->ring_used(index_);
  // relaxed: a gauge.
  f.capacity = s.capacity.load(std::memory_order_relaxed);
  f.allocated = s.allocated;
  f.behind = std::uint64_t{f.used} * 100 >= std::uint64_t{f.capacity} * s.high_water_percent;
  return f;
}

ListenerCounters Listener::counters() const {
  ListenerCounters k;
  if (!core_) {
    return k;
  }
  const detail::ListenerSlot& s = core_->slot(index_);
  // relaxed, for all: counters, each exact, not a snapshot together.
  k.received = s.received.load(std::memory_order_relaxed);
  k.delivered = s.tail.load(std::memory_order_relaxed) - s.tail_base;
  k.dropped_newest = s.dropped_newest.load(std::memory_order_relaxed);
  k.dropped_oldest = s.dropped_oldest.load(std::memory_order_relaxed);
  k.block_timeouts = s.block_timeouts.load(std::memory_order_relaxed);
  k.high_water_signals = s.high_water_signals.load(std::memory_order_relaxed);
  k.wakeups = s.wakeups.load(std::memory_order_relaxed);
  return k;
}

// --- Sample -----------------------------------------------------------------

Sample::Sample(Sample&& other) noexcept
    : core_(other.core_), chunk_(other.chunk_), holder_(other.holder_) {
  other.chunk_ = nullptr;
}
Sample& Sample::operator=(Sample&& other) noexcept {
  if (this != &other) {
    if (chunk_ != nullptr) {
      core_->return_sample(chunk_, holder_);
    }
    core_ = other.core_;
    chunk_ = other.chunk_;
    holder_ = other.holder_;
    other.chunk_ = nullptr;
  }
  return *this;
}
Sample::~Sample() {
  if (chunk_ != nullptr) {
    IPCBUS_CRASH_POINT("release");
    core_->return_sample(chunk_, holder_);
  }
}
std::string_view Sample::topic() const {
  return {core_->chunk_topic(chunk_), chunk_->topic_len};
}
std::span<const std::byte> Sample::payload() const {
  return {core_->chunk_payload(chunk_), chunk_->payload_len};
}
std::string_view Sample::payload_text() const {
  return {reinterpret_cast<const char*>(core_->chunk_payload(chunk_)), chunk_->payload_len};
}
std::uint64_t Sample::sequence() const {
  return chunk_->sequence;
}
std::uint64_t Sample::timestamp_ns() const {
  return chunk_->timestamp_ns;
}
std::uint32_t Sample::publisher_id() const {
  return chunk_->publisher_id;
}

}  // namespace ipcbus
