// publisher.cpp: the publish path. A publish takes one chunk, writes the
// event into it once, and pushes its reference into the ring of every
// listener the route cache names; no lock, no allocation, no log line, and a
// system call only to wake a sleeping listener (or to wait, when a
// block-policy ring is full).
#include <sched.h>

#include <algorithm>
#include <cstring>

#include "core.hpp"
#include "ipcbus/topic.hpp"
#include "trie.hpp"

namespace ipcbus {
namespace detail {

namespace {
inline constexpr std::uint32_t kCacheEntries = 64;  // direct-mapped, power of two
inline constexpr int kBlockSpins = 256;
inline constexpr std::uint64_t kBlockSleepNs = 200000;  // bounds a missed wake, see core.hpp
// How often a publisher blocked on a full ring checks that its listener's
// process still lives.
inline constexpr std::uint64_t kOwnerCheckNs = 10000000;
}  // namespace

class PublisherCore {
 public:
  explicit PublisherCore(std::shared_ptr<BusCore> bus)
      : bus_(std::move(bus)),
        c_(*bus_),
        matcher_(c_),
        max_listeners_(c_.header().max_listeners),
        max_topic_(c_.header().max_topic_bytes),
        entries_(kCacheEntries),
        topics_(static_cast<std::size_t>(kCacheEntries) * max_topic_),
        routes_(static_cast<std::size_t>(kCacheEntries) * max_listeners_) {
    // relaxed: a unique number is all we need.
    id_ = c_.header().next_publisher_id.fetch_add(1, std::memory_order_relaxed);
    slot_ = &private_slot_;
    if (!claim_slot()) {
      // Counted here until a slot frees up; it delivers nothing until then
      // (kPublisherTableFull), since its fan-outs would have no journal.
      c_.record_error("publisher-table-full",
                      "pid " + std::to_string(c_.pid()) + ": no publisher slot (max_publishers)");
    }
  }
  // claim_slot takes a slot of the segment's table, keeping the counters
  // counted so far; false if every slot is taken.
  bool claim_slot() {
    PublisherSlot* s = c_.claim_publisher_slot(id_);
    if (s == nullptr) {
      return false;
    }
    // relaxed: counters for tools; the slot is ours alone.
    s->published.store(private_slot_.published.load(std::memory_order_relaxed),
                       std::memory_order_relaxed);
    s->bytes.store(private_slot_.bytes.load(std::memory_order_relaxed), std::memory_order_relaxed);
    slot_index_ = static_cast<std::uint32_t>(s - c_.publisher_slots());
    slot_ = s;
    return true;
  }
  // journaled: whether fan-outs can be delivered (a slot of the table).
  bool journaled() { return slot_ != &private_slot_ || claim_slot(); }
  ~PublisherCore() {
    if (slot_ != &private_slot_) {
      // release: the next claimer's acquire CAS sees our last counters gone.
      slot_->state.store(0, std::memory_order_release);
    }
  }
  PublisherCore(const PublisherCore&) = delete;
  PublisherCore& operator=(const PublisherCore&) = delete;

  // Count one accepted event for tools: this publisher is the counters' only
  // writer, so relaxed loads and stores suffice and no RMW is paid.
  void count(std::size_t bytes) {
    slot_->published.store(slot_->published.load(std::memory_order_relaxed) + 1,
                           std::memory_order_relaxed);
    slot_->bytes.store(slot_->bytes.load(std::memory_order_relaxed) + bytes,
                       std::memory_order_relaxed);
  }

  struct Entry {
    std::uint64_t hash = 0;
    std::uint64_t version = 1;  // odd: never equal to a readable trie version
    std::uint32_t topic_len = 0;
    std::uint32_t count = 0;
  };

  // The cached routes of `topic`, refreshed if the trie changed; nullptr for
  // an invalid topic.
  const Entry* routes_for(std::string_view topic, const RouteTarget** targets) {
    if (topic.size() > max_topic_) {
      return nullptr;
    }
    // The topic of the last publish, most often (a publisher of one stream):
    // its entry is found by comparing the text, without hashing it. An entry
    // never filled has length 0, and an empty topic takes the long way.
    const bool last_same = !topic.empty() && entries_[last_].topic_len == topic.size() &&
                           std::memcmp(&topics_[static_cast<std::size_t>(last_) * max_topic_],
                                       topic.data(), topic.size()) == 0;
    std::uint64_t h = 0;
    std::uint32_t idx = last_;
    if (!last_same) {
      h = fnv1a(topic);
      idx = static_cast<std::uint32_t>(h) & (kCacheEntries - 1);
    }
    Entry& e = entries_[idx];
    char* cached = &topics_[static_cast<std::size_t>(idx) * max_topic_];
    RouteTarget* out = &routes_[static_cast<std::size_t>(idx) * max_listeners_];
    const bool same = last_same || (e.hash == h && e.topic_len == topic.size() &&
                                    std::memcmp(cached, topic.data(), topic.size()) == 0);
    // SYNC(trie): acquire pairs with the trie writer's release store; an
    // equal version means the cached answer is still the trie's answer.
    const std::uint64_t v = c_.header().trie_version.load(std::memory_order_acquire);
    if (!same || e.version != v) {
      if (!same) {
        if (!check_topic_name(topic, max_topic_)) {
          return nullptr;
        }
        std::memcpy(cached, topic.data(), topic.size());
        e.hash = h;
        e.topic_len = static_cast<std::uint32_t>(topic.size());
      }
      e.count = matcher_.match(topic, out, &e.version);
      ++misses_;
    }
    last_ = idx;
    *targets = out;
    return &e;
  }

  // deliver fans chunk `ch` (holding only our taker reference) out to the
  // route's targets. Every target's holder bit is set first, in one store,
  // and the bits of targets not reached are dropped at the end together with
  // our own reference. The journal in our publisher slot (active, chunk,
  // pending, push_listener, push_pos) is what crash cleanup reads if we die
  // half way; every store to it is relaxed because it is read only after this
  // process is dead, or by close_listener() behind the fences below.
  PublishResult deliver(ChunkHeader* ch, const Entry& e, const RouteTarget* targets) {
    PublishResult r;
    r.sequence = ch->sequence;
    std::uint64_t mask = 0;
    for (std::uint32_t i = 0; i < e.count; ++i) {
      mask |= 1ULL << targets[i].listener;
    }
    PublisherSlot& j = *slot_;
    j.chunk.store(ch->self_ref, std::memory_order_relaxed);
    j.pending.store(mask, std::memory_order_relaxed);
    IPCBUS_CRASH_POINT("publish");
    j.active.store(++epoch_ * 2 - 1, std::memory_order_relaxed);
    // SYNC(fanout): the seq_cst fence pairs with the one in wait_fanouts():
    // either a closing listener sees us inside this fan-out with its bit
    // pending, or we see its state Closed below. Without it our journal
    // stores and the state loads could reorder (store-load).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    // relaxed: the chunk is private (only our taker reference) until the
    // ring's release store publishes it.
    IPCBUS_CRASH_POINT("publish");
    ch->holders.store(c_.taker_bits() | mask, std::memory_order_relaxed);
    IPCBUS_CRASH_POINT("publish");
    std::uint64_t unreached = 0;
    std::uint64_t pending = mask;
    bool timed_out = false;
    for (std::uint32_t i = 0; i < e.count; ++i) {
      const RouteTarget t = targets[i];
      const std::uint64_t bit = 1ULL << t.listener;
      ListenerSlot& s = c_.slot(t.listener);
      // SYNC(claim): acquire pairs with the release of the claim CAS, so the
      // slot's options are those of generation t.generation.
      const std::uint64_t w = s.state.load(std::memory_order_acquire);
      bool pushed = false;
      if (generation_of(w) == t.generation &&
          state_bits(w) == static_cast<std::uint64_t>(ListenerState::kActive)) {
        j.push_listener.store(t.listener, std::memory_order_relaxed);
        pushed = push(t, s, ch->self_ref, &timed_out);
        if (pushed) {
          ++r.delivered;
        } else {
          ++r.skipped;
        }
      } else if (generation_of(w) == t.generation) {
        ++r.skipped;  // paused (or closing): not reached
      }
      IPCBUS_CRASH_POINT("publish");
      if (!pushed) {
        unreached |= bit;
      }
      pending &= ~bit;
      // release: SYNC(fanout) with wait_fanouts()'s acquire: our work on
      // this ring is done before it sees the bit gone.
      j.pending.store(pending, std::memory_order_release);
      IPCBUS_CRASH_POINT("publish");
    }
    // release: as above, for the whole fan-out.
    j.active.store(epoch_ * 2, std::memory_order_release);
    IPCBUS_CRASH_POINT("publish");
    c_.release_chunk(ch, c_.taker_bits() | unreached);
    r.status = timed_out ? PublishStatus::kTimedOut : PublishStatus::kOk;
    return r;
  }

  bool push(const RouteTarget& t, ListenerSlot& s, std::uint32_t ref, bool* timed_out) {
    std::uint64_t pos = 0;
    if (c_.try_push(t.listener, ref, &pos, &slot_->push_pos) == PushResult::kPushed) {
      after_push(s, pos);
      return true;
    }
    if (s.adaptive != 0) {
      // relaxed: capacity only feeds the resizing heuristic.
      high_water(s, s.capacity.load(std::memory_order_relaxed));
    }
    switch (static_cast<Overflow>(s.overflow)) {
      case Overflow::kDropNewest:
        // relaxed: a counter.
        s.dropped_newest.fetch_add(1, std::memory_order_relaxed);
        return false;
      case Overflow::kDropOldest:
        for (int attempt = 0; attempt < 64; ++attempt) {
          const std::uint32_t old = c_.try_pop(t.listener, slot_, slot_index_);
          if (old != kNone) {
            IPCBUS_CRASH_POINT("publish");
            c_.release_chunk(c_.chunk(old), 1ULL << t.listener);
            IPCBUS_CRASH_POINT("publish");
            // relaxed: the journal; the eviction is over.
            slot_->pop_pos.store(0, std::memory_order_relaxed);
            // relaxed: a counter.
            s.dropped_oldest.fetch_add(1, std::memory_order_relaxed);
          } else {
            // relaxed: the journal; nothing was evicted.
            slot_->pop_pos.store(0, std::memory_order_relaxed);
            if (attempt < 16) {
              // The oldest position is claimed by a producer that has not
              // written its entry yet (preempted between its two steps).
              cpu_relax();
            } else {
              sched_yield();  // let a preempted producer finish
            }
          }
          if (c_.try_push(t.listener, ref, &pos, &slot_->push_pos) == PushResult::kPushed) {
            after_push(s, pos);
            return true;
          }
        }
        // relaxed: a counter. Reached when others refill faster than we can
        // evict, or a producer stalls (or died) between claiming and writing
        // the oldest entry; the policy then falls back to drop-newest.
        // Crash cleanup fills a dead producer's claimed position with kSkip.
        s.dropped_newest.fetch_add(1, std::memory_order_relaxed);
        return false;
      case Overflow::kBlock:
        return push_blocking(t, s, ref, timed_out);
    }
    return false;
  }

  bool push_blocking(const RouteTarget& t, ListenerSlot& s, std::uint32_t ref, bool* timed_out) {
    const std::uint64_t deadline = monotonic_ns() + block_timeout_ns_;
    std::uint64_t next_owner_check = 0;
    std::uint64_t pos = 0;
    for (int spin = 0;; ++spin) {
      // acquire: a pause or close by the listener ends the wait (no
      // publisher waits for a paused listener).
      const std::uint64_t w = s.state.load(std::memory_order_acquire);
      if (generation_of(w) != t.generation ||
          state_bits(w) != static_cast<std::uint64_t>(ListenerState::kActive)) {
        return false;
      }
      if (c_.try_push(t.listener, ref, &pos, &slot_->push_pos) == PushResult::kPushed) {
        after_push(s, pos);
        return true;
      }
      const std::uint64_t now = monotonic_ns();
      // relaxed: a flag set by a signal handler; only its value matters.
      if (now >= deadline || (cancel_ != nullptr && cancel_->load(std::memory_order_relaxed))) {
        // relaxed: a counter.
        s.block_timeouts.fetch_add(1, std::memory_order_relaxed);
        *timed_out = true;
        return false;
      }
      if (spin < kBlockSpins) {
        cpu_relax();
        continue;
      }
      // acquire: the wake's bump; we re-check the ring after announcing.
      const std::uint32_t v = s.space_futex.load(std::memory_order_acquire);
      // seq_cst: the announcement must not pass the re-check below.
      s.space_waiters.fetch_add(1, std::memory_order_seq_cst);
      if (c_.try_push(t.listener, ref, &pos, &slot_->push_pos) == PushResult::kPushed) {
        s.space_waiters.fetch_sub(1, std::memory_order_relaxed);
        after_push(s, pos);
        return true;
      }
      futex_wait(&s.space_futex, v, std::min(kBlockSleepNs, deadline - now));
      // relaxed: the count only decides whether consumers bother to wake.
      s.space_waiters.fetch_sub(1, std::memory_order_relaxed);
      // Blocked already, so a probe costs nothing the event would not wait
      // anyway: a listener whose process died never makes room. Without an
      // agent nobody else may notice, so clean up after it here (the loop
      // then finds it Closed and moves on).
      if (now >= next_owner_check) {
        next_owner_check = now + kOwnerCheckNs;
        const std::uint32_t owner = owner_of(w);
        if (owner < c_.header().max_processes && !c_.process_alive(owner)) {
          c_.reclaim_from_fanout(slot_);
        }
      }
    }
  }

  void after_push(ListenerSlot& s, std::uint64_t pos) {
    if (s.wait != static_cast<std::uint8_t>(WaitStrategy::kBusyPoll)) {
      c_.wake_if_sleeping(s);
    }
    if (s.adaptive != 0) {
      // relaxed: the fill level is a heuristic for resizing.
      const std::uint64_t head = s.head.load(std::memory_order_relaxed);
      const std::uint32_t cap = s.capacity.load(std::memory_order_relaxed);
      const std::uint64_t used = pos + 1 > head ? pos + 1 - head : 0;
      if (used * 100 >= std::uint64_t{cap} * s.high_water_percent) {
        high_water(s, cap);
      }
    }
  }

  // One high-water signal; enough of them since the last change double the
  // effective capacity, up to the allocated ring.
  void high_water(ListenerSlot& s, std::uint32_t cap) {
    const std::uint64_t now = monotonic_ns();
    // relaxed, for these three: counters and timestamps read by the
    // resizing heuristics only; a lost race costs one signal.
    s.high_water_signals.fetch_add(1, std::memory_order_relaxed);
    s.last_high_water_ns.store(now, std::memory_order_relaxed);
    const std::uint32_t n = s.hw_since_change.fetch_add(1, std::memory_order_relaxed) + 1;
    if (n >= s.grow_after && cap < s.allocated) {
      std::uint32_t expected = cap;
      // relaxed: capacity is only a bound on the fill level.
      if (s.capacity.compare_exchange_strong(expected, cap * 2, std::memory_order_relaxed)) {
        s.hw_since_change.store(0, std::memory_order_relaxed);
        s.last_resize_ns.store(now, std::memory_order_relaxed);
      }
    }
  }

  std::shared_ptr<BusCore> bus_;
  BusCore& c_;
  Matcher matcher_;
  std::uint32_t max_listeners_;
  std::uint32_t max_topic_;
  std::vector<Entry> entries_;
  std::vector<char> topics_;
  std::vector<RouteTarget> routes_;
  std::uint32_t id_ = 0;
  PublisherSlot* slot_ = nullptr;
  PublisherSlot private_slot_{};  // counters only, while no slot is free
  std::uint32_t slot_index_ = 0xFFFFFFFU;
  std::uint64_t epoch_ = 0;  // fan-outs begun
  std::uint64_t seq_ = 0;
  std::uint64_t block_timeout_ns_ = 1000000000ULL;
  const std::atomic<bool>* cancel_ = nullptr;  // see Publisher::set_cancel_flag()
  std::uint64_t misses_ = 0;
  std::uint32_t last_ = 0;  // the route cache entry of the last lookup
};

}  // namespace detail

Publisher::Publisher(std::unique_ptr<detail::PublisherCore> core) : core_(std::move(core)) {}
Publisher::Publisher(Publisher&&) noexcept = default;
Publisher& Publisher::operator=(Publisher&&) noexcept = default;
Publisher::~Publisher() = default;

Publisher Bus::publisher() {
  return Publisher(std::make_unique<detail::PublisherCore>(core_));
}

PublishResult Publisher::publish(std::string_view topic, std::string_view payload) {
  return publish(topic, std::as_bytes(std::span<const char>(payload.data(), payload.size())));
}

PublishResult Publisher::publish(std::string_view topic, std::span<const std::byte> payload) {
  detail::PublisherCore& p = *core_;
  detail::BusCore& c = p.c_;
  PublishResult r;
  const int k = c.class_for(payload.size());
  if (k < 0) {
    r.status = PublishStatus::kPayloadTooLarge;
    return r;
  }
  const detail::RouteTarget* targets = nullptr;
  const auto* e = p.routes_for(topic, &targets);
  if (e == nullptr) {
    r.status = PublishStatus::kInvalidTopic;
    return r;
  }
  if (e->count == 0) {
    r.status = PublishStatus::kNoListeners;
    r.sequence = ++p.seq_;
    p.count(payload.size());
    return r;
  }
  if (!p.journaled()) [[unlikely]] {
    r.status = PublishStatus::kPublisherTableFull;
    return r;
  }
  detail::ChunkHeader* ch = c.take_chunk(k);
  if (ch == nullptr) {
    r.status = PublishStatus::kPoolExhausted;
    return r;
  }
  IPCBUS_CRASH_POINT("publish");
  ch->topic_len = static_cast<std::uint32_t>(topic.size());
  std::memcpy(c.chunk_topic(ch), topic.data(), topic.size());
  ch->payload_len = static_cast<std::uint32_t>(payload.size());
  if (!payload.empty()) {
    std::memcpy(c.chunk_payload(ch), payload.data(), payload.size());
  }
  ch->publisher_id = p.id_;
  ch->sequence = ++p.seq_;
  ch->timestamp_ns = detail::monotonic_ns();
  p.count(payload.size());
  return p.deliver(ch, *e, targets);
}

PublishResult Publisher::publish(std::string_view topic, Loan&& loan) {
  detail::PublisherCore& p = *core_;
  detail::BusCore& c = p.c_;
  PublishResult r;
  detail::ChunkHeader* ch = loan.chunk_;
  loan.chunk_ = nullptr;
  if (ch == nullptr) {
    r.status = PublishStatus::kPoolExhausted;
    return r;
  }
  const detail::RouteTarget* targets = nullptr;
  const auto* e = p.routes_for(topic, &targets);
  if (e == nullptr || e->count == 0) {
    if (e != nullptr) {
      p.count(ch->payload_len);
    }
    c.release_own(ch);
    r.status = e == nullptr ? PublishStatus::kInvalidTopic : PublishStatus::kNoListeners;
    r.sequence = e == nullptr ? 0 : ++p.seq_;
    return r;
  }
  if (!p.journaled()) [[unlikely]] {
    c.release_own(ch);
    r.status = PublishStatus::kPublisherTableFull;
    return r;
  }
  ch->topic_len = static_cast<std::uint32_t>(topic.size());
  std::memcpy(c.chunk_topic(ch), topic.data(), topic.size());
  ch->publisher_id = p.id_;
  ch->sequence = ++p.seq_;
  ch->timestamp_ns = detail::monotonic_ns();
  p.count(ch->payload_len);
  return p.deliver(ch, *e, targets);
}

Result<Loan> Publisher::loan(std::size_t size) {
  detail::BusCore& c = core_->c_;
  const int k = c.class_for(size);
  if (k < 0) {
    return Error{Errc::kPayloadTooLarge, "payload of " + std::to_string(size) +
                                             " bytes is larger than the largest chunk class (" +
                                             std::to_string(c.largest_payload()) + " bytes)"};
  }
  detail::ChunkHeader* ch = c.take_chunk(k);
  if (ch == nullptr) {
    return Error{Errc::kPoolExhausted, "no free chunk of " +
                                           std::to_string(c.header().pools[k].payload_bytes) +
                                           " bytes; every one is in use"};
  }
  IPCBUS_CRASH_POINT("loan");
  ch->payload_len = static_cast<std::uint32_t>(size);
  return Loan(&c, ch);
}

void Publisher::set_cancel_flag(const std::atomic<bool>* flag) {
  core_->cancel_ = flag;
}

void Publisher::set_block_timeout(std::chrono::nanoseconds timeout) {
  core_->block_timeout_ns_ = static_cast<std::uint64_t>(std::max<std::int64_t>(0, timeout.count()));
}

bool Publisher::behind(std::string_view topic) {
  const detail::RouteTarget* targets = nullptr;
  const auto* e = core_->routes_for(topic, &targets);
  if (e == nullptr) {
    return false;
  }
  detail::BusCore& c = core_->c_;
  for (std::uint32_t i = 0; i < e->count; ++i) {
    const detail::ListenerSlot& s = c.slot(targets[i].listener);
    // relaxed: a gauge.
    const std::uint32_t cap = s.capacity.load(std::memory_order_relaxed);
    if (std::uint64_t{c.ring_used(targets[i].listener)} * 100 >=
        std::uint64_t{cap} * s.high_water_percent) {
      return true;
    }
  }
  return false;
}

std::uint32_t Publisher::id() const {
  return core_->id_;
}
std::uint64_t Publisher::route_cache_misses() const {
  return core_->misses_;
}

// --- Loan ---------------------------------------------------------------------

Loan::Loan(Loan&& other) noexcept : core_(other.core_), chunk_(other.chunk_) {
  other.chunk_ = nullptr;
}
Loan& Loan::operator=(Loan&& other) noexcept {
  if (this != &other) {
    if (chunk_ != nullptr) {
      core_->release_own(chunk_);
    }
    core_ = other.core_;
    chunk_ = other.chunk_;
    other.chunk_ = nullptr;
  }
  return *this;
}
Loan::~Loan() {
  if (chunk_ != nullptr) {
    IPCBUS_CRASH_POINT("loan");
    core_->release_own(chunk_);
  }
}
std::span<std::byte> Loan::data() {
  return {core_->chunk_payload(chunk_), chunk_->payload_len};
}
std::size_t Loan::size() const {
  return chunk_ == nullptr ? 0 : chunk_->payload_len;
}
void Loan::shrink(std::size_t size) {
  if (chunk_ != nullptr && size < chunk_->payload_len) {
    chunk_->payload_len = static_cast<std::uint32_t>(size);
  }
}

}  // namespace ipcbus
