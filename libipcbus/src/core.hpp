// core.hpp: BusCore, one process's view of a mapped segment, and the inline
// hot-path pieces (pools, rings, futex) that publishers and listeners share.
#pragma once

#include <cpuid.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "crash.hpp"
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

// Whether this CPU has PREFETCHW (CPUID 0x80000001, ECX bit 8). The
// baseline x86-64 target lets the compiler emit only read prefetches, which
// fetch a line shared, and the write that follows then pays a second trip
// to take it over.
inline const bool cpu_has_prefetchw = [] {
  unsigned a = 0;
  unsigned b = 0;
  unsigned c = 0;
  unsigned d = 0;
  return __get_cpuid(0x80000001U, &a, &b, &c, &d) != 0 && (c & (1U << 8)) != 0;
}();

// prefetch_write starts fetching the line at p for writing (exclusive).
inline void prefetch_write(const void* p) {
  if (cpu_has_prefetchw) {
    asm volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
  } else {
    __builtin_prefetch(p, 1);
  }
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
  // `fd` is the segment's open file (-1 in tests that map memory only).
  BusCore(std::string name, void* base, std::size_t bytes, std::uint32_t process_index,
          int fd = -1);
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

  // take_chunk claims a free chunk of class k for this process (its holders
  // word becomes this process's taker reference) or returns nullptr when the
  // class has none: first from this process's cache, then from the bitmap
  // (see its comment in layout.hpp), last from other processes' caches.
  ChunkHeader* take_chunk(int k) {
    if (ChunkHeader* c = cache_take(static_cast<std::uint32_t>(k))) {
      return c;
    }
    const PoolDesc& p = pools_[k];
    const std::uint32_t words = (p.count + 63) / 64;
    std::atomic<std::uint64_t>* bm = bitmap_ + p.bitmap_word;
    // relaxed: a per-process starting point, so that processes spread over
    // the bitmap's words instead of fighting over the first one.
    std::uint32_t wi = hint_[k].load(std::memory_order_relaxed);
    if (wi >= words) {
      wi = 0;
    }
    for (std::uint32_t n = 0; n < words; ++n) {
      // relaxed: the bitmap is a hint; the holders CAS below decides.
      std::uint64_t bits = bm[wi].load(std::memory_order_relaxed);
      while (bits != 0) {
        const std::uint64_t bit = bits & (~bits + 1);
        // relaxed: as above; clearing the bit only keeps other takers away.
        const std::uint64_t old = bm[wi].fetch_and(~bit, std::memory_order_relaxed);
        IPCBUS_CRASH_POINT("take");
        if ((old & bit) != 0) {
          ChunkHeader* c = chunk_at(p, wi * 64U + static_cast<std::uint32_t>(__builtin_ctzll(bit)));
          std::uint64_t expected = 0;
          // SYNC(pool): acquire pairs with the acq_rel drop of the last
          // holder in release_chunk(): the previous users' reads and writes
          // of the chunk happen before ours.
          if (c->holders.compare_exchange_strong(expected, taker_, std::memory_order_acquire,
                                                 std::memory_order_relaxed)) {
            hint_[k].store(wi, std::memory_order_relaxed);
            IPCBUS_CRASH_POINT("take");
            const std::uint64_t rest = old & ~bit;
            if (rest != 0) {
              // The next take's chunk, most likely: fetch its line for
              // writing now, while the caller fills this one, instead of
              // stalling on it then (the last holder wrote it elsewhere).
              prefetch_for_write(
                  chunk_at(p, wi * 64U + static_cast<std::uint32_t>(__builtin_ctzll(rest))));
            }
            return c;
          }
          // A stale bit of a chunk in use: it stays clear.
        }
        bits = old & ~bit;
      }
      if (++wi == words) {
        wi = 0;
      }
    }
    return steal_chunk(static_cast<std::uint32_t>(k));
  }

  // prefetch_for_write starts fetching the lines of chunk c that a publish
  // writes (header, topic, the payload's first line) for writing.
  void prefetch_for_write(const ChunkHeader* c) const {
    const char* at = reinterpret_cast<const char*>(c);
    prefetch_write(at);
    prefetch_write(at + sizeof(ChunkHeader));
    prefetch_write(at + payload_skip_);
  }
  // prefetch_received starts fetching what a listener reads of chunk c, for
  // writing: the header (its holders word is dropped at release) and the
  // payload's first line, whose address otherwise waits for the header, and
  // which this process writes next if its cache hands it the chunk again.
  void prefetch_received(const ChunkHeader* c) const {
    const char* at = reinterpret_cast<const char*>(c);
    prefetch_write(at);
    prefetch_write(at + payload_skip_);
  }

  // release_chunk drops the references named by `mask` (listener bits and/or
  // the taker bits) and frees the chunk if they were the last.
  // `to_cache`: false when dropping for another process (crash cleanup),
  // whose chunks this process has no reason to keep.
  void release_chunk(ChunkHeader* c, std::uint64_t mask, bool to_cache = true) {
    // acq_rel: release orders this holder's use of the chunk before the
    // drop; acquire, on the last drop, orders every holder's use before the
    // chunk goes back to the pool. SYNC(pool) with take_chunk().
    const std::uint64_t old = c->holders.fetch_and(~mask, std::memory_order_acq_rel);
    IPCBUS_CRASH_POINT("drop");
    if (old != 0 && (old & ~mask) == 0) {
      if (!to_cache || !cache_put(c)) {
        mark_free(c);
      }
      IPCBUS_CRASH_POINT("drop");
    }
  }

  // --- this process's chunk cache (ProcessEntry::cache) ---------------------
  // cache_take takes a chunk of class k from this process's cache, or nullptr.
  ChunkHeader* cache_take(std::uint32_t k) {
    std::atomic<std::uint32_t>* slots = cache_[k];
    for (std::uint32_t i = 0; i < cache_limit_[k]; ++i) {
      // relaxed: the references are hints; the holders CAS below decides.
      if (slots[i].load(std::memory_order_relaxed) == 0) {
        continue;
      }
      // relaxed: as above; the exchange only keeps this process's other
      // threads from trying the same reference.
      const std::uint32_t ref = slots[i].exchange(0, std::memory_order_relaxed);
      if (ref == 0) {
        continue;
      }
      IPCBUS_CRASH_POINT("take");
      ChunkHeader* c = chunk(ref);
      std::uint64_t expected = stash_;
      // SYNC(pool): acquire pairs with the release CAS in cache_put(), which
      // followed the last holder's drop: their use of the chunk comes first.
      if (c->holders.compare_exchange_strong(expected, taker_, std::memory_order_acquire,
                                             std::memory_order_relaxed)) {
        IPCBUS_CRASH_POINT("take");
        return c;
      }
      // Taken by steal_chunk() meanwhile: the reference was stale.
    }
    return nullptr;
  }
  // cache_put keeps chunk c, just freed by this process (holders zero, bit
  // clear), in this process's cache; false if the class has no cache, and
  // the caller marks it free in the bitmap. A full cache goes back to the
  // bitmap first, all of it in one pass.
  bool cache_put(ChunkHeader* c) {
    const std::uint32_t k = c->pool_class;
    if (k >= kMaxPoolClasses || cache_limit_[k] == 0) {
      return false;
    }
    std::uint64_t zero = 0;
    // release: SYNC(pool) with the acquire CAS of whoever takes it from the
    // cache. A CAS, not a store: a crash sweep may have set the chunk's bit,
    // and a taker taken it, since our drop; then it is theirs. The chunk is
    // marked first and named in a slot after, so that a slot taken by
    // cache_take() never names a chunk that is not marked yet.
    if (!c->holders.compare_exchange_strong(zero, stash_, std::memory_order_release,
                                            std::memory_order_relaxed)) {
      return true;
    }
    IPCBUS_CRASH_POINT("drop");
    std::atomic<std::uint32_t>* slots = cache_[k];
    for (int round = 0; round < 2; ++round) {
      for (std::uint32_t i = 0; i < cache_limit_[k]; ++i) {
        std::uint32_t expected = 0;
        // relaxed: the reference is a hint; the holders word says cached.
        if (slots[i].load(std::memory_order_relaxed) == 0 &&
            slots[i].compare_exchange_strong(expected, c->self_ref, std::memory_order_relaxed)) {
          return true;
        }
      }
      cache_flush(k);  // c is in no slot yet, so it stays
    }
    // Other threads of this process filled it again meanwhile: the bitmap.
    std::uint64_t mine = stash_;
    // release: as above, for the bitmap's next taker.
    if (c->holders.compare_exchange_strong(mine, 0, std::memory_order_release,
                                           std::memory_order_relaxed)) {
      mark_free(c);
    }
    return true;
  }
  // cache_flush returns every chunk of class k in this process's cache to
  // the bitmap, with one bitmap RMW per word they share.
  void cache_flush(std::uint32_t k);
  // steal_chunk takes a chunk of class k from another process's cache (the
  // bitmap had none), or nullptr.
  ChunkHeader* steal_chunk(std::uint32_t k);
  // cached_chunks counts class k's chunks in every process's cache.
  std::uint32_t cached_chunks(std::uint32_t k) const;
  // release_own drops this process's taker reference (an unpublished loan).
  void release_own(ChunkHeader* c) { release_chunk(c, kTakerBits); }

  // mark_free sets the chunk's bit so that takers find it again.
  void mark_free(ChunkHeader* c) {
    // relaxed: a hint; the holders word, already zero, is the truth.
    bitmap_[c->index / 64].fetch_or(1ULL << (c->index % 64), std::memory_order_relaxed);
  }
  // free_chunks counts class k's bitmap and the processes' caches: what
  // takers can find now.
  std::uint32_t free_chunks(std::uint32_t k) const {
    const PoolDesc& p = pools_[k];
    std::uint32_t n = cached_chunks(k);
    for (std::uint32_t w = 0; w < (p.count + 63) / 64; ++w) {
      // relaxed: a gauge.
      n += static_cast<std::uint32_t>(
          __builtin_popcountll(bitmap_[p.bitmap_word + w].load(std::memory_order_relaxed)));
    }
    return n;
  }
  ChunkHeader* chunk_at(const PoolDesc& p, std::uint32_t j) const {
    return reinterpret_cast<ChunkHeader*>(base_ + p.offset + std::uint64_t{j} * p.stride);
  }
  std::uint64_t taker_bits() const { return taker_; }
  std::atomic<std::uint64_t>* bitmap() const { return bitmap_; }
  std::uint32_t pool_count() const { return pool_count_; }
  const PoolDesc& pool(std::uint32_t k) const { return pools_[k]; }

  // --- listeners and rings ------------------------------------------------
  ListenerSlot& slot(std::uint32_t i) const { return listeners_[i]; }
  RingEntry* ring(std::uint32_t i) const {
    return rings_ + static_cast<std::uint64_t>(i) * header_->ring_capacity;
  }

  // try_push appends a chunk reference to listener i's ring (several
  // producers may push at once). Vyukov's bounded MPMC queue with the
  // sequence and the value packed in one 64-bit word: an entry is published
  // by a single store, so a reader never sees half an entry.
  // `journal`, when given, receives each position before this producer tries
  // to claim it, for crash cleanup (PublisherSlot::push_pos).
  PushResult try_push(std::uint32_t i, std::uint32_t ref, std::uint64_t* position,
                      std::atomic<std::uint64_t>* journal = nullptr) {
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
      // The entry's line was written last by the consumer that freed it:
      // take it over for the store below in one trip, not a read and then
      // a second trip to upgrade it.
      prefetch_write(&e);
      // SYNC(ring-free): acquire pairs with the release store in try_pop()
      // that freed this entry, so we do not overwrite an unread entry.
      const std::uint64_t w = e.load(std::memory_order_acquire);
      const auto diff = static_cast<std::int32_t>(static_cast<std::uint32_t>(w >> 32) -
                                                  static_cast<std::uint32_t>(pos));
      if (diff == 0) {
        if (journal != nullptr) {
          // relaxed: read by crash cleanup only after this process died.
          journal->store(pos, std::memory_order_relaxed);
        }
        // relaxed: the CAS only hands out the position; the entry store
        // below is the publication.
        if (s.tail.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          IPCBUS_CRASH_POINT("push");
          // SYNC(ring-publish): release pairs with the acquire in try_pop():
          // the chunk's header, topic and payload are visible before the entry.
          e.store((static_cast<std::uint64_t>(static_cast<std::uint32_t>(pos + 1)) << 32) | ref,
                  std::memory_order_release);
          *position = pos;
          IPCBUS_CRASH_POINT("push");
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
  // listener calls it, and so does a publisher applying drop-oldest. Entries
  // that crash repair filled with kSkip are consumed and passed over.
  // A publisher evicting for drop-oldest passes its slot: it journals each
  // position before it tries to take it, and marks the freed entry as its
  // own, so that crash cleanup can finish an eviction it died in.
  std::uint32_t try_pop(std::uint32_t i, PublisherSlot* dropper = nullptr,
                        std::uint32_t dropper_index = 0) {
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
        std::uint64_t freed = w & 0xFFFFFFFFULL;
        if (dropper != nullptr) {
          const auto ref = static_cast<std::uint32_t>(w);
          // relaxed, for the journal: read by crash cleanup only after this
          // process died. The chunk is readable: the entry holds it.
          dropper->pop_listener.store(i, std::memory_order_relaxed);
          dropper->pop_ref.store(ref, std::memory_order_relaxed);
          dropper->pop_pos.store(pos + 1, std::memory_order_relaxed);
          freed = kDropMark | dropper_index;
        }
        // relaxed: the CAS hands out the position; w was read before it and
        // no one else can take this entry once we own the position.
        if (s.head.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          if (dropper != nullptr && static_cast<std::uint32_t>(w) != kSkip) {
            // Only now is the chunk ours to read: before the CAS the listener
            // could have taken the entry and freed the chunk for reuse.
            // relaxed, for the journal: crash cleanup compares these only
            // once the entry shows our mark, which the release store below
            // publishes after them.
            const ChunkHeader* ch = chunk(static_cast<std::uint32_t>(w));
            dropper->pop_sequence.store(ch->sequence, std::memory_order_relaxed);
            dropper->pop_publisher.store(ch->publisher_id, std::memory_order_relaxed);
          }
          IPCBUS_CRASH_POINT("pop");
          // SYNC(ring-free): release pairs with the acquire in try_push(). The
          // value stays (or the evicting publisher's mark), so that crash
          // cleanup can tell whose entry was read.
          e.store(
              static_cast<std::uint64_t>(static_cast<std::uint32_t>(pos + allocated)) << 32 | freed,
              std::memory_order_release);
          IPCBUS_CRASH_POINT("pop");
          const auto ref = static_cast<std::uint32_t>(w);
          if (ref == kSkip) {
            ++pos;
            continue;
          }
          return ref;
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
  // unsubscribe_all removes every subscription of `listener`; with
  // `patience`, false if the trie mutex stayed taken that long.
  bool unsubscribe_all(std::uint32_t listener, std::chrono::milliseconds patience = {});
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
  // close_listener closes slot `index` of `generation` and frees it. With
  // `owner_dead`, crash cleanup closes it for a dead owner: every chunk bit
  // of the slot is dropped, so the samples the owner held come back too.
  // False when it could not finish (the slot stays Closed; call it again).
  // A live owner closing while it still holds samples of the slot parks the
  // slot: Closed and still owned, so that no one reuses it (and its bit)
  // while those samples live, and crash cleanup finds them by the owner.
  // `dropped`, if given, receives the number of chunk references dropped.
  bool close_listener(std::uint32_t index, std::uint32_t generation, bool owner_dead = false,
                      std::uint64_t* dropped = nullptr);
  // return_sample drops a Sample's reference (`holder` is its slot's bit).
  void return_sample(ChunkHeader* c, std::uint64_t holder) {
    release_chunk(c, holder);
    IPCBUS_CRASH_POINT("release");
    const auto index = static_cast<std::uint32_t>(__builtin_ctzll(holder));
    // seq_cst: SYNC(park), see sample_returned(); the count is this
    // process's, and an RMW costs the same in any order on x86.
    if (samples_out[index].fetch_sub(1, std::memory_order_seq_cst) == 1) {
      sample_returned(index);
    }
  }
  // sample_returned is called when the last sample of slot `index` held in
  // this process is gone; it frees the slot if it was parked.
  void sample_returned(std::uint32_t index) {
    // seq_cst: SYNC(park) with close_listener(): either it sees our count
    // at zero, or we see its park; exchange() lets only one of us finish.
    if (parked_[index].load(std::memory_order_seq_cst) != 0) {
      finish_parked(index);
    }
  }
  // finish_parked frees parked slot `index` (no-op if not parked): every bit
  // the slot still has in a chunk is dropped, then the slot is Free.
  void finish_parked(std::uint32_t index);
  // wait_fanouts waits until no live publisher can still push into ring
  // `index` (see INVARIANT1); false if some live one did not leave in time.
  bool wait_fanouts(std::uint32_t index, std::chrono::milliseconds limit);
  // reset_ring empties ring `index` (no producer or consumer may be inside).
  void reset_ring(std::uint32_t index);

  // --- processes (process.cpp) ------------------------------------------------
  ProcessEntry& process(std::uint32_t i) const {
    return reinterpret_cast<ProcessEntry*>(base_ + header_->proc_off)[i];
  }
  // process_alive tells whether entry i's owner still runs (OFD lock, and
  // the pid's start time when it is in our pid namespace).
  bool process_alive(std::uint32_t i) const;
  int fd() const { return fd_; }
  // register_process takes a process entry (and its lock) for this process;
  // kNone when every entry is held by a live process.
  std::uint32_t register_process();
  void deregister_process();
  // Use entry `index` from now on (after register_process()).
  void set_process(std::uint32_t index);

  // --- crash cleanup (reclaim.cpp) -------------------------------------------
  // reclaim_dead cleans up after every dead process of the bus and returns
  // how many it reclaimed; `report`, if given, adds up what came back.
  std::uint32_t reclaim_dead(CleanupReport* report);
  // reclaim_from_fanout runs reclaim_dead() from inside the fan-out that
  // slot `own` journals (see wait_fanouts()).
  void reclaim_from_fanout(const PublisherSlot* own);
  // reclaim_process cleans up after entry i if its owner is dead and no one
  // else is at it; false otherwise.
  bool reclaim_process(std::uint32_t i, CleanupReport* report);
  // check verifies the bus's invariants (ipcbus doctor); one line per violation.
  std::vector<std::string> check();

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
  std::atomic<std::uint64_t>* bitmap_;
  std::atomic<std::uint32_t> hint_[kMaxPoolClasses]{};
  std::uint32_t pool_count_;
  std::uint32_t process_index_;
  std::uint64_t taker_;         // taker_word(process_index_)
  std::uint64_t stash_;         // stash_word(process_index_): our cached chunks' holders word
  std::uint32_t payload_skip_;  // a chunk's payload offset (header and topic area)
  // Our entry's chunk cache, per class, and how many of its slots we use
  // (0 for a core without an entry, and for pools too small to spare them).
  std::atomic<std::uint32_t>* cache_[kMaxPoolClasses]{};
  std::uint32_t cache_limit_[kMaxPoolClasses]{};

 public:
  // Samples this process holds per listener slot: a close with none left
  // may drop every bit of the slot, which also clears what a dead producer
  // left ambiguous (see reclaim.cpp).
  std::atomic<std::uint32_t> samples_out[kMaxListenerSlots]{};

 private:
  // Per slot: 1 when this process parked it (see close_listener()).
  std::atomic<std::uint32_t> parked_[kMaxListenerSlots]{};
  // drop_slot_bits drops bit `index` in every chunk; returns how many.
  // `to_cache` as in release_chunk().
  std::uint64_t drop_slot_bits(std::uint32_t index, bool to_cache);
  // free_slot: the last step of a close, from Closed to Free.
  void free_slot(std::uint32_t index, std::uint64_t closed_word);

  int fd_ = -1;  // the segment's file, holding our OFD lock
  std::uint64_t pid_ns_ = 0;
  std::int32_t pid_;
  Config config_;
};

// Initialise a zeroed segment of `bytes` for `config` (the creator only).
void init_segment(void* base, std::size_t bytes, const Config& config);
// Bytes a segment for `config` needs.
std::uint64_t segment_size(const Config& config);

}  // namespace ipcbus::detail
