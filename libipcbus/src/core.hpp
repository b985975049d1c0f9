// core.hpp: BusCore, one process's view of a mapped segment, and the inline
// hot-path pieces (pools, rings, futex) that publishers and listeners share.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "ipcbus/bus.hpp"
#include "layout.hpp"

namespace spdlog {
class logger;
}

namespace ipcbus::detail {

// The library's logger: the application's "ipcbus" logger if it registered
// one, else one writing to stderr at the level $IPCBUS_LOG_LEVEL (warn).
spdlog::logger& log();

inline std::uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // vDSO: no system call
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

inline void cpu_relax() {
  __builtin_ia32_pause();
}

// Shared (not private) futex operations: the word lives in the segment and
// the waiter and waker are different processes.
inline void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                       std::uint64_t timeout_ns) {
  timespec ts{static_cast<time_t>(timeout_ns / 1000000000ULL),
              static_cast<long>(timeout_ns % 1000000000ULL)};
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT, expected, &ts, nullptr, 0);
}
inline void futex_wake(std::atomic<std::uint32_t>* word, int count) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE, count, nullptr, nullptr,
          0);
}

inline std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 1469598103934665603ULL;
  for (char c : s) {
    h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  }
  return h;
}

enum class PushResult { kPushed, kFull };

class BusCore {
 public:
  BusCore(std::string name, void* base, std::size_t bytes, std::uint32_t process_index);
  ~BusCore();
  BusCore(const BusCore&) = delete;
  BusCore& operator=(const BusCore&) = delete;

  const std::string& name() const { return name_; }
  const Config& config() const { return config_; }
  SegmentHeader& header() const { return *header_; }
  char* base() const { return base_; }
  std::uint32_t process_index() const { return process_index_; }
  std::int32_t pid() const { return pid_; }

  // --- chunks -------------------------------------------------------------
  ChunkHeader* chunk(std::uint32_t ref) const {
    return reinterpret_cast<ChunkHeader*>(base_ + static_cast<std::uint64_t>(ref) * kChunkUnit);
  }
  char* chunk_topic(ChunkHeader* c) const {
    return reinterpret_cast<char*>(c) + sizeof(ChunkHeader);
  }
  std::byte* chunk_payload(ChunkHeader* c) const {
    return reinterpret_cast<std::byte*>(c) + c->payload_offset;
  }
  // The smallest class that holds `bytes`, or -1.
  int class_for(std::size_t bytes) const {
    for (std::uint32_t k = 0; k < pool_count_; ++k) {
      if (bytes <= pools_[k].payload_bytes) {
        return static_cast<int>(k);
      }
    }
    return -1;
  }
  std::size_t largest_payload() const { return pools_[pool_count_ - 1].payload_bytes; }

  // take_chunk pops a free chunk of class k or returns nullptr when empty.
  ChunkHeader* take_chunk(int k) {
    PoolHead& ph = header_->pool_heads[k];
    // SYNC(pool): acquire pairs with the release CAS in return_chunk(): the
    // popped chunk's next_free and the previous owner's writes are visible.
    std::uint64_t h = ph.head.load(std::memory_order_acquire);
    for (;;) {
      const auto ref = static_cast<std::uint32_t>(h);
      if (ref == kNone) {
        return nullptr;
      }
      ChunkHeader* c = chunk(ref);
      // relaxed: a stale next (the chunk was taken meanwhile) fails the
      // tagged CAS below, which compares the whole head word.
      const std::uint32_t next = c->next_free.load(std::memory_order_relaxed);
      const std::uint64_t tag = (h >> 32) + 1;
      if (ph.head.compare_exchange_weak(h, (tag << 32) | next, std::memory_order_acquire,
                                        std::memory_order_acquire)) {
        // relaxed: an approximate gauge for tools, no ordering needed.
        ph.free_count.fetch_sub(1, std::memory_order_relaxed);
        return c;
      }
    }
  }

  // return_chunk pushes a chunk whose last reference is gone.
  void return_chunk(ChunkHeader* c) {
    PoolHead& ph = header_->pool_heads[c->pool_class];
    c->owner_pid = 0;
    // relaxed: the head word is read by poppers, and it is the head CAS below
    // that publishes this store.
    std::uint64_t h = ph.head.load(std::memory_order_relaxed);
    for (;;) {
      c->next_free.store(static_cast<std::uint32_t>(h), std::memory_order_relaxed);
      const std::uint64_t tag = (h >> 32) + 1;
      // SYNC(pool): release publishes next_free and every write made to the
      // chunk by its users before the next owner pops it.
      if (ph.head.compare_exchange_weak(h, (tag << 32) | c->self_ref, std::memory_order_release,
                                        std::memory_order_relaxed)) {
        // relaxed: gauge only.
        ph.free_count.fetch_add(1, std::memory_order_relaxed);
        return;
      }
    }
  }

  // release_chunk drops `n` references and recycles the chunk on the last.
  void release_chunk(ChunkHeader* c, std::uint32_t n = 1) {
    // acq_rel: release orders this holder's reads of the payload before the
    // drop; acquire, on the last drop, makes every holder's drop visible
    // before the chunk is rewritten by its next owner.
    if (c->refcount.fetch_sub(n, std::memory_order_acq_rel) == n) {
      return_chunk(c);
    }
  }

  // --- listeners and rings ------------------------------------------------
  ListenerSlot& slot(std::uint32_t i) const { return listeners_[i]; }
  RingEntry* ring(std::uint32_t i) const {
    return rings_ + static_cast<std::uint64_t>(i) * header_->ring_capacity;
  }

  // try_push appends a chunk reference to listener i's ring (several
  // producers may push at once). Vyukov's bounded MPMC queue with the
  // sequence and the value packed in one 64-bit word: an entry is published
  // by a single store, so a reader never sees half an entry.
  PushResult try_push(std::uint32_t i, std::uint32_t ref, std::uint64_t* position) {
    ListenerSlot& s = listeners_[i];
    RingEntry* r = ring(i);
    const std::uint64_t mask = s.allocated - 1;
    // relaxed: a starting guess; the entry's sequence decides.
    std::uint64_t pos = s.tail.load(std::memory_order_relaxed);
    for (;;) {
      // relaxed: capacity only bounds the fill level, a stale value is harmless.
      const std::uint32_t cap = s.capacity.load(std::memory_order_relaxed);
      // relaxed: only consulted when the effective capacity is below the
      // allocated size; a stale head errs on the side of "full".
      if (cap < s.allocated && pos - s.head.load(std::memory_order_relaxed) >= cap) {
        return PushResult::kFull;
      }
      RingEntry& e = r[pos & mask];
      // SYNC(ring-free): acquire pairs with the release store in try_pop()
      // that freed this entry, so we do not overwrite an unread entry.
      const std::uint64_t w = e.load(std::memory_order_acquire);
      const auto diff = static_cast<std::int32_t>(static_cast<std::uint32_t>(w >> 32) -
                                                  static_cast<std::uint32_t>(pos));
      if (diff == 0) {
        // relaxed: the CAS only hands out the position; the entry store
        // below is the publication.
        if (s.tail.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          // SYNC(ring-publish): release pairs with the acquire in try_pop():
          // the chunk's header, topic and payload are visible before the entry.
          e.store((static_cast<std::uint64_t>(static_cast<std::uint32_t>(pos + 1)) << 32) | ref,
                  std::memory_order_release);
          *position = pos;
          return PushResult::kPushed;
        }
      } else if (diff < 0) {
        return PushResult::kFull;
      } else {
        // relaxed: another producer moved on; retry from its position.
        pos = s.tail.load(std::memory_order_relaxed);
      }
    }
  }

  // try_pop takes the oldest chunk reference, or kNone when empty. The
  // listener calls it, and so does a publisher applying drop-oldest.
  std::uint32_t try_pop(std::uint32_t i) {
    ListenerSlot& s = listeners_[i];
    RingEntry* r = ring(i);
    // The header's copy of the ring size, not the slot's: the slot's first
    // cache line is written by publishers and the consumer should not read it.
    const std::uint32_t allocated = header_->ring_capacity;
    const std::uint64_t mask = allocated - 1;
    // relaxed: a starting guess; the entry's sequence decides.
    std::uint64_t pos = s.head.load(std::memory_order_relaxed);
    for (;;) {
      RingEntry& e = r[pos & mask];
      // SYNC(ring-publish): acquire pairs with the release store in try_push().
      const std::uint64_t w = e.load(std::memory_order_acquire);
      const auto diff = static_cast<std::int32_t>(static_cast<std::uint32_t>(w >> 32) -
                                                  static_cast<std::uint32_t>(pos + 1));
      if (diff == 0) {
        // relaxed: the CAS hands out the position; w was read before it and
        // no one else can take this entry once we own the position.
        if (s.head.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          // SYNC(ring-free): release pairs with the acquire in try_push().
          e.store(
              static_cast<std::uint64_t>(static_cast<std::uint32_t>(pos + allocated)) << 32 | kNone,
              std::memory_order_release);
          return static_cast<std::uint32_t>(w);
        }
      } else if (diff < 0) {
        return kNone;
      } else {
        // relaxed: another consumer moved on; retry from its position.
        pos = s.head.load(std::memory_order_relaxed);
      }
    }
  }

  // The fill level of listener i; approximate while others run.
  std::uint32_t ring_used(std::uint32_t i) const {
    ListenerSlot& s = listeners_[i];
    // relaxed: a gauge; tail is read first so that used is never negative
    // by more than the pops that raced in between, clamped below.
    const std::uint64_t tail = s.tail.load(std::memory_order_relaxed);
    const std::uint64_t head = s.head.load(std::memory_order_relaxed);
    return tail > head ? static_cast<std::uint32_t>(tail - head) : 0;
  }

  // Wake listener i if it sleeps. Called by a publisher after a push.
  void wake_if_sleeping(ListenerSlot& s) {
    // SYNC(sleep): the seq_cst fence pairs with the one in Listener's wait:
    // either we see sleeping == 1, or the listener's re-check of the ring
    // sees our entry. Without it, the store of the entry and this load
    // could reorder and the wake be lost.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    // relaxed: the fence above orders it; most of the time it is 0.
    if (s.sleeping.load(std::memory_order_relaxed) != 0 &&
        s.sleeping.exchange(0, std::memory_order_relaxed) != 0) {
      // release: the listener's futex_wait compares against this word; the
      // entry itself was published by the ring's release store.
      s.futex.fetch_add(1, std::memory_order_release);
      futex_wake(&s.futex, 1);
      // relaxed: a counter.
      s.wakeups.fetch_add(1, std::memory_order_relaxed);
    }
  }

  // Wake publishers waiting for room in listener i's ring.
  void wake_space_waiters(ListenerSlot& s) {
    // relaxed: publishers wait with a short timeout, so a wake missed by
    // this unordered load costs at most that timeout, not a hang.
    if (s.space_waiters.load(std::memory_order_relaxed) != 0) {
      // relaxed: the waiter re-checks the ring, which carries the ordering.
      s.space_futex.fetch_add(1, std::memory_order_relaxed);
      futex_wake(&s.space_futex, 64);
    }
  }

  // --- trie (trie.cpp), control path under the trie mutex -------------------
  Result<void> subscribe(std::uint32_t listener, std::uint32_t generation, std::string_view filter);
  Result<void> unsubscribe(std::uint32_t listener, std::string_view filter);
  void unsubscribe_all(std::uint32_t listener);
  // The filters listener i holds, rebuilt from the trie.
  std::vector<std::string> filters_of(std::uint32_t listener);

  TrieNode& node(std::uint32_t i) const {
    return *reinterpret_cast<TrieNode*>(nodes_ +
                                        static_cast<std::uint64_t>(i) * header_->node_stride);
  }
  const char* node_label(std::uint32_t i) const {
    return nodes_ + static_cast<std::uint64_t>(i) * header_->node_stride + sizeof(TrieNode);
  }
  SubRecord& sub(std::uint32_t i) const { return subs_[i]; }
  // Word i of the edge table (i < edge_count), for repair_trie and tests.
  std::atomic<std::uint64_t>& edge(std::uint32_t i) const { return edges_[i]; }
  // Lock-free lookup of a literal child by label; kNone when absent.
  std::uint32_t find_child(std::uint32_t parent, std::string_view label,
                           std::uint64_t label_hash) const;

  // --- observability (bus.cpp) -----------------------------------------------
  void record_error(std::string_view kind, std::string_view text);
  ErrorRecord* error_log() const {
    return reinterpret_cast<ErrorRecord*>(base_ + header_->errlog_off);
  }
  PublisherSlot* publisher_slots() const {
    return reinterpret_cast<PublisherSlot*>(base_ + header_->publisher_off);
  }
  // claim_publisher_slot returns a free publisher slot, or nullptr if all are taken.
  PublisherSlot* claim_publisher_slot(std::uint32_t id);

  // --- claiming and releasing listener slots (bus.cpp) ----------------------
  Result<std::uint32_t> claim_listener(const ListenerOptions& options, std::uint32_t* generation);
  void close_listener(std::uint32_t index, std::uint32_t generation);

 private:
  friend class TrieWriter;
  std::string name_;
  char* base_;
  std::size_t bytes_;
  SegmentHeader* header_;
  ListenerSlot* listeners_;
  RingEntry* rings_;
  char* nodes_;
  std::atomic<std::uint64_t>* edges_;
  SubRecord* subs_;
  PoolDesc pools_[kMaxPoolClasses];
  std::uint32_t pool_count_;
  std::uint32_t process_index_;
  std::int32_t pid_;
  Config config_;
};

// Initialise a zeroed segment of `bytes` for `config` (the creator only).
void init_segment(void* base, std::size_t bytes, const Config& config);
// Bytes a segment for `config` needs.
std::uint64_t segment_size(const Config& config);

}  // namespace ipcbus::detail
