// ipcbus/bus.hpp: the public API of libipcbus.
//
// A Bus is one named shared-memory segment. Publishers put events on topics;
// Listeners hold topic filters and receive every event whose topic matches,
// each through a ring of its own. Payloads live in pooled chunks that are
// shared, not copied, by every listener an event reaches.
//
//   auto bus = ipcbus::Bus::open({}).value();          // "default", or $IPCBUS_BUS
//   auto listener = bus.listen({}).value();
//   listener.subscribe("sensors/+/temp");
//   auto publisher = bus.publisher();
//   publisher.publish("sensors/kitchen/temp", "21.5");
//   if (auto sample = listener.receive_for(std::chrono::seconds(1))) use(sample->payload());
//
// Threads: a Bus may be shared by threads. A Publisher, a Listener, a Loan and
// a Sample each belong to one thread at a time.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ipcbus/config.hpp"
#include "ipcbus/result.hpp"

namespace ipcbus {

namespace detail {
class BusCore;
class PublisherCore;
struct ChunkHeader;
}  // namespace detail

// What a publisher does when a listener's ring is full. Chosen per listener.
enum class Overflow : std::uint8_t {
  kBlock,       // the publisher waits for room, up to its block timeout
  kDropNewest,  // the new event is not delivered to this listener
  kDropOldest,  // the oldest queued event is discarded to make room (library default)
};

// How a listener waits in receive() and receive_for().
enum class WaitStrategy : std::uint8_t {
  kBusyPoll,  // spin on the ring; lowest latency, burns a core
  kHybrid,    // spin a little, then sleep on a futex (the default)
  kSleep,     // sleep on a futex at once
};

// The state of a listener slot, as held in its state word.
enum class ListenerState : std::uint8_t { kFree = 0, kActive = 1, kPaused = 2, kClosed = 3 };

const char* overflow_name(Overflow o);           // "block", "drop-newest", "drop-oldest"
const char* wait_strategy_name(WaitStrategy w);  // "spin", "hybrid", "sleep"
const char* listener_state_name(ListenerState s);
std::optional<Overflow> parse_overflow(std::string_view text);
std::optional<WaitStrategy> parse_wait_strategy(std::string_view text);

// ListenerOptions are chosen when a listener is made and fixed for its life.
struct ListenerOptions {
  Overflow overflow = Overflow::kDropOldest;
  WaitStrategy wait = WaitStrategy::kHybrid;
  // Effective ring capacity; 0 means the bus's ring_capacity. Rounded up to a
  // power of two and capped at the ring's allocated size.
  std::uint32_t capacity = 0;
  // Fill level, in percent of the effective capacity, above which the
  // listener counts as behind.
  std::uint32_t high_water_percent = 75;
  // Adaptive capacity: the effective capacity starts at `capacity` (or 64 if
  // that is 0) and doubles, up to the ring's allocated size, after
  // `grow_after` publishes that found the ring above the high-water mark
  // since the last change; it halves, down to `min_capacity`, when the
  // listener has drained below a quarter of it and no high-water signal came
  // for `quiet_period`. See docs/architecture.md, "Adaptive capacity".
  bool adaptive = false;
  // Keep a receive-latency histogram in the segment (see LatencyHistogram);
  // costs one clock read per receive while on. Switchable at run time.
  bool latency_histogram = false;
  std::uint32_t min_capacity = 16;
  std::uint32_t grow_after = 8;
  std::chrono::milliseconds quiet_period{1000};
};

// Per-listener counters, read without stopping anyone (each field is exact,
// the set is not a snapshot of one instant).
struct ListenerCounters {
  std::uint64_t received = 0;        // events taken out of the ring by the listener
  std::uint64_t delivered = 0;       // events put into the ring by publishers
  std::uint64_t dropped_newest = 0;  // not delivered: ring full, policy drop-newest
  std::uint64_t dropped_oldest = 0;  // discarded from the ring: policy drop-oldest
  std::uint64_t block_timeouts = 0;  // not delivered: ring full past a publisher's timeout
  // Publishes that found the ring above its high-water mark; counted for
  // adaptive listeners only (others do not pay for the fill-level read).
  std::uint64_t high_water_signals = 0;
  std::uint64_t wakeups = 0;  // futex wakes publishers made for this listener
};

// Receive latency (receive time minus publish timestamp) in coarse
// power-of-two buckets: bucket 0 counts below 128 ns, bucket k (1..kBuckets-2)
// counts [128 ns * 2^(k-1), 128 ns * 2^k), the last bucket everything above.
struct LatencyHistogram {
  static constexpr int kBuckets = 20;
  std::uint64_t counts[kBuckets] = {};
  // Upper bound of bucket k in nanoseconds (the last bucket has none: 0).
  static std::uint64_t upper_ns(int k) {
    return k >= kBuckets - 1 ? 0 : 128ULL << static_cast<unsigned>(k);
  }
  static int bucket_of(std::uint64_t ns) {
    const std::uint64_t units = ns >> 7;  // in 128 ns
    if (units == 0) {
      return 0;
    }
    const int k = 64 - __builtin_clzll(units);  // floor(log2(units)) + 1
    return k < kBuckets - 1 ? k : kBuckets - 1;
  }
};

// The fill level of a listener's ring.
struct Fill {
  std::uint32_t used = 0;       // entries queued (approximate while publishers run)
  std::uint32_t capacity = 0;   // effective capacity now
  std::uint32_t allocated = 0;  // ring entries allocated in the segment
  bool behind = false;          // used is above the high-water mark
};

// A received event: a read-only view of its chunk, which goes back to its
// pool when the last Sample and ring entry holding it are gone. A Sample must
// not outlive every Bus, Publisher and Listener handle of its bus.
class Sample {
 public:
  Sample() = default;
  Sample(Sample&& other) noexcept;
  Sample& operator=(Sample&& other) noexcept;
  Sample(const Sample&) = delete;
  Sample& operator=(const Sample&) = delete;
  ~Sample();

  std::string_view topic() const;
  std::span<const std::byte> payload() const;
  std::string_view payload_text() const;  // the payload bytes as chars
  std::uint64_t sequence() const;         // per publisher, from 1
  std::uint64_t timestamp_ns() const;     // CLOCK_MONOTONIC at publish
  std::uint32_t publisher_id() const;     // unique per publisher on this bus
  explicit operator bool() const { return chunk_ != nullptr; }

 private:
  friend class Listener;
  Sample(detail::BusCore* core, detail::ChunkHeader* chunk, std::uint64_t holder)
      : core_(core), chunk_(chunk), holder_(holder) {}
  detail::BusCore* core_ = nullptr;
  detail::ChunkHeader* chunk_ = nullptr;
  std::uint64_t holder_ = 0;  // the listener's bit in the chunk's holders word
};

// A chunk lent to a publisher for writing a payload in place (zero copy).
// Give it back with Publisher::publish(topic, std::move(loan)); a Loan that
// is destroyed unpublished returns its chunk to the pool.
class Loan {
 public:
  Loan() = default;
  Loan(Loan&& other) noexcept;
  Loan& operator=(Loan&& other) noexcept;
  Loan(const Loan&) = delete;
  Loan& operator=(const Loan&) = delete;
  ~Loan();

  std::span<std::byte> data();  // `size` bytes as asked for in loan()
  std::size_t size() const;
  // shrink sets the payload length to `size` bytes, at most the loaned size.
  void shrink(std::size_t size);
  explicit operator bool() const { return chunk_ != nullptr; }

 private:
  friend class Publisher;
  Loan(detail::BusCore* core, detail::ChunkHeader* chunk) : core_(core), chunk_(chunk) {}
  detail::BusCore* core_ = nullptr;
  detail::ChunkHeader* chunk_ = nullptr;
};

// The outcome of one publish. Hot path: no allocation, no exception.
enum class PublishStatus : std::uint8_t {
  kOk,               // reached every listener that matched (drops by policy are counted there)
  kNoListeners,      // valid, and nobody listens to this topic: nothing was queued
  kTimedOut,         // some block-policy listeners stayed full past the block timeout
  kInvalidTopic,     // fix the topic; nothing was queued
  kPayloadTooLarge,  // larger than the largest size class; nothing was queued
  kPoolExhausted,    // no free chunk in the size class: back off and retry
  // Every publisher slot (bus.max_publishers) is taken by other publishers:
  // nothing was queued. A publisher needs one to deliver, so that crash
  // cleanup can finish a fan-out it dies in; it takes one as they free up.
  kPublisherTableFull,
};
const char* publish_status_name(PublishStatus s);

struct PublishResult {
  PublishStatus status = PublishStatus::kOk;
  std::uint32_t delivered = 0;  // listeners whose ring took the event
  std::uint32_t skipped = 0;    // listeners not reached: dropped-newest, paused, timed out
  std::uint64_t sequence = 0;   // the event's sequence number (0 when nothing was queued)
  bool ok() const { return status == PublishStatus::kOk || status == PublishStatus::kNoListeners; }
};

class Bus;

// Publisher: puts events on the bus. It caches, per topic, the listeners the
// topic reaches and checks the trie's version on each publish to revalidate.
class Publisher {
 public:
  Publisher(Publisher&&) noexcept;
  Publisher& operator=(Publisher&&) noexcept;
  ~Publisher();

  // publish copies `payload` into a chunk and delivers it to every matching
  // listener. The topic is validated on a route-cache miss.
  PublishResult publish(std::string_view topic, std::span<const std::byte> payload);
  PublishResult publish(std::string_view topic, std::string_view payload);
  // publish a loaned chunk; the loan is consumed whatever the outcome.
  PublishResult publish(std::string_view topic, Loan&& loan);

  // loan lends a chunk of the smallest class that holds `size` bytes.
  // Errors: kPayloadTooLarge, kPoolExhausted.
  Result<Loan> loan(std::size_t size);

  // How long publish() waits for room in a full block-policy ring. Default 1 s.
  void set_block_timeout(std::chrono::nanoseconds timeout);
  // set_cancel_flag: while `*flag` (which must outlive the publisher; null
  // for none) is true, a publish waiting for room gives up at once, as if
  // its block timeout had passed (kTimedOut). For a signal handler's flag:
  // the wait wakes at least every 200 us to look at it.
  void set_cancel_flag(const std::atomic<bool>* flag);

  // behind tells whether any listener that `topic` reaches is above its
  // high-water mark; it uses (and fills) the route cache.
  bool behind(std::string_view topic);

  std::uint32_t id() const;
  std::uint64_t route_cache_misses() const;

 private:
  friend class Bus;
  explicit Publisher(std::unique_ptr<detail::PublisherCore> core);
  std::unique_ptr<detail::PublisherCore> core_;
};

// Listener: one subscription endpoint with its own ring and state word.
class Listener {
 public:
  Listener(Listener&& other) noexcept;
  Listener& operator=(Listener&& other) noexcept;
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  ~Listener();  // closes the listener

  // subscribe adds a filter; a listener that matches one event through
  // several filters receives it once. Errors: kInvalidFilter, kTrieFull,
  // kClosed. Subscribing a filter the listener already holds succeeds.
  Result<void> subscribe(std::string_view filter);
  // unsubscribe removes a filter and prunes trie branches left empty.
  Result<void> unsubscribe(std::string_view filter);

  // try_receive returns the next event or nothing, at once. Nothing while paused.
  std::optional<Sample> try_receive();
  // receive_for waits up to `timeout` by the listener's wait strategy.
  std::optional<Sample> receive_for(std::chrono::nanoseconds timeout);
  // receive waits without limit; nothing only when the listener is closed.
  std::optional<Sample> receive();

  // State changes are single compare-and-swap transitions of the state word.
  // pause: publishers skip this listener until resume. close is final; the
  // slot is free for another listener once the Samples it gave out are gone
  // (until then it counts against max_listeners).
  Result<void> pause();
  Result<void> resume();
  void close();

  // Switch the receive-latency histogram on or off.
  void set_latency_histogram(bool on);

  ListenerState state() const;
  Fill fill() const;
  ListenerCounters counters() const;
  std::uint32_t index() const { return index_; }  // slot in the listener table
  std::uint32_t generation() const { return generation_; }
  const std::vector<std::string>& filters() const { return filters_; }

 private:
  friend class Bus;
  Listener(std::shared_ptr<detail::BusCore> core, std::uint32_t index, std::uint32_t generation);
  std::shared_ptr<detail::BusCore> core_;
  std::uint32_t index_ = 0;
  std::uint32_t generation_ = 0;
  std::uint32_t receives_since_check_ = 0;
  std::uint64_t received_ = 0;
  ListenerState state_ = ListenerState::kActive;
  // Options fixed for the listener's life, kept here so that receiving does
  // not read the slot's first cache line, which publishers write (pins).
  Overflow overflow_ = Overflow::kDropOldest;
  WaitStrategy wait_ = WaitStrategy::kHybrid;
  bool adaptive_ = false;
  bool histogram_ = false;
  std::vector<std::string> filters_;
  void maybe_shrink();
};

// What Bus::inspect() reads from the segment, for tools.
struct PoolInfo {
  std::uint32_t payload_bytes = 0;
  std::uint32_t total = 0;
  std::uint32_t free = 0;
};
struct ListenerInfo {
  std::uint32_t index = 0;
  std::uint32_t generation = 0;
  ListenerState state = ListenerState::kFree;
  std::int32_t owner_pid = 0;
  Overflow overflow = Overflow::kDropOldest;
  WaitStrategy wait = WaitStrategy::kHybrid;
  bool adaptive = false;
  Fill fill;
  ListenerCounters counters;
  bool histogram_enabled = false;
  LatencyHistogram latency;
  std::vector<std::string> filters;
};
struct PublisherInfo {
  std::uint32_t id = 0;
  std::int32_t pid = 0;
  std::uint64_t published = 0;  // events accepted (with or without listeners)
  std::uint64_t bytes = 0;      // payload bytes of those events
};
// One deduplicated entry of the bus's error log: notable events (refused
// attaches, reclaims, drops past a threshold) kept in the segment.
struct ErrorLogEntry {
  std::string kind;  // a short word: "attach-refused", "drops", "reclaim", ...
  std::string message;
  std::uint64_t count = 0;
  std::uint64_t first_realtime_ns = 0;
  std::uint64_t last_realtime_ns = 0;
};
struct ProcessInfo {
  std::uint32_t index = 0;
  std::int32_t pid = 0;
  std::uint64_t start_time = 0;  // from /proc/PID/stat, clock ticks since boot
  // alive: the kernel still holds the entry's lock for its owner (see
  // docs/failure-model.md); reclaiming: a dead owner being cleaned up after.
  bool alive = false;
  bool reclaiming = false;
  bool same_pid_namespace = true;  // pid means this pid to us
  std::uint32_t listeners = 0;     // listener slots it owns
  std::uint32_t publishers = 0;    // publisher slots it owns
  std::uint32_t chunks = 0;        // chunks it holds as taker (loans, publishes under way)
};
// What crash cleanup brought back, over the life of the bus (BusInfo) or in
// one pass (Bus::reclaim_dead).
struct CleanupReport {
  std::uint64_t processes = 0;   // dead processes cleaned up after
  std::uint64_t listeners = 0;   // their listener slots closed and freed
  std::uint64_t publishers = 0;  // their publisher slots freed
  std::uint64_t chunks = 0;      // chunk references dropped for them
  std::uint64_t repaired = 0;    // ring positions repaired
  std::uint64_t swept = 0;       // free chunks put back in the pool's bitmap
  std::uint64_t last_ns = 0;     // the last reclaim: from death seen to done
};
struct BusInfo {
  std::string name;
  std::uint32_t layout_version = 0;
  Config config;
  std::uint64_t segment_bytes = 0;
  std::uint64_t trie_version = 0;
  std::uint32_t trie_nodes_used = 0;
  std::uint32_t subscriptions_used = 0;
  std::uint64_t publishers_created = 0;
  std::vector<PoolInfo> pools;
  std::vector<ListenerInfo> listeners;    // slots not free
  std::vector<ProcessInfo> processes;     // entries in use
  std::vector<PublisherInfo> publishers;  // live publishers
  std::vector<ErrorLogEntry> errors;      // the error log, oldest first
  std::uint64_t errors_dropped = 0;       // records that found the error log full
  std::int32_t agent_pid = 0;             // the agent holding the bus's agent lock, 0 if none
  CleanupReport cleanup;                  // crash cleanup so far
};

// How to open a bus.
struct OpenOptions {
  std::string name;                               // empty: $IPCBUS_BUS, else "default"
  bool create = true;                             // create the bus if it does not exist
  Config config;                                  // used only when this call creates the bus
  std::chrono::milliseconds ready_timeout{2000};  // wait for a creator to finish
  // Open a bus whose segment belongs to another user. Off by default: a bus
  // of another user is refused even when its mode would let us in.
  bool allow_other_owner = false;
  // With create: fail with kAlreadyExists instead of opening an existing bus.
  bool exclusive = false;
  // Map the bus to look at it (tools) without taking a process entry, so a
  // full process table does not lock observers out. Implies create = false;
  // such a handle may publish but should not make listeners.
  bool observe_only = false;
  // An opener cleans up after the bus's dead processes when it attaches, so
  // that a bus without an agent still gets back what they held. Off for a
  // caller that calls reclaim_dead() itself to report what came back (the
  // agent).
  bool reclaim_at_attach = true;
};

// Bus: a handle to one mapped segment. Copies share the mapping; the process
// detaches when the last handle, publisher and listener are gone.
class Bus {
 public:
  // open maps the bus, creating it if allowed. Two processes creating the
  // same bus at once end up on one segment. Errors: kNotFound (create=false),
  // kForeignSegment, kLayoutMismatch, kSegmentNotReady, kPermissionDenied,
  // kInvalidArgument (bad config), kProcessTableFull, kSystem.
  static Result<Bus> open(const OpenOptions& options);

  // destroy removes the bus's name from /dev/shm; mappings stay valid.
  static Result<void> destroy(const std::string& name);

  Publisher publisher();
  Result<Listener> listen(const ListenerOptions& options);

  const std::string& name() const;
  const Config& config() const;  // what the segment says
  BusInfo inspect() const;

  // reclaim_dead cleans up after every process of the bus that died without
  // detaching: its listeners (closed, rings drained, samples it held
  // returned, subscriptions removed), its loans and half-done publishes, its
  // publisher slots, and its process entry. The agent calls it; any process
  // may, and several at once are safe (each dead entry gets one reclaimer,
  // chosen by a kernel lock). See docs/failure-model.md.
  CleanupReport reclaim_dead();

  // check verifies the bus's invariants and returns one line per violation
  // (empty: consistent): every chunk free or held by live holders, the pool
  // bitmap agreeing, no listener or publisher owned by a dead process, free
  // slots clean, trie counts consistent. `ipcbus doctor` prints them.
  std::vector<std::string> check() const;

  // take_agent_role makes this handle the bus's agent. At most one process
  // holds the role at a time: a kernel lock on the segment's file that dies
  // with its holder, so a killed agent's successor can take over at once.
  // kAlreadyExists names the pid of the agent that holds it.
  Result<void> take_agent_role();

  // name_linked is false when the bus's name in /dev/shm is gone or names
  // another segment while this handle still maps the old one (systemd-logind
  // RemoveIPC at logout, a manual rm): new processes would not find us.
  bool name_linked() const;

  // wait_attach waits up to `timeout` for a process to attach after the
  // attach count `*seen` (start from 0); true, with `*seen` moved on, if one
  // did. The agent watches new processes with it, so that it holds a pidfd
  // for each within moments of its attach. Slow path: a futex wait.
  bool wait_attach(std::uint32_t* seen, std::chrono::milliseconds timeout) const;

  // record_error adds to the bus's deduplicated error log: an entry with the
  // same kind and message gets its count and last time updated. Slow path:
  // never call it from a publish or receive loop. Text is cut to fit.
  void record_error(std::string_view kind, std::string_view message);

 private:
  explicit Bus(std::shared_ptr<detail::BusCore> core) : core_(std::move(core)) {}
  std::shared_ptr<detail::BusCore> core_;
};

// The layout version this build reads and writes.
std::uint32_t layout_version();

}  // namespace ipcbus
