// layout.hpp: the structures that live inside the shared segment.
//
// The segment maps at a different address in every process, so nothing in it
// is a pointer: every link is a 32-bit index into a table, or a chunk
// reference (the chunk's byte offset divided by 64). Indices are validated
// against the table sizes in the header before they are followed.
//
//   offset 0      SegmentHeader (magic, layout version, fingerprint, sizes, offsets)
//   proc_off      ProcessEntry[max_processes]
//   listener_off  ListenerSlot[max_listeners]
//   ring_off      RingEntry[max_listeners][ring_capacity]
//   node_off      trie nodes, node_stride bytes each, node 0 is the root
//   edge_off      edge table: (parent, child) words, open addressing
//   sub_off       SubRecord[subscriptions]
//   bitmap_off    free-chunk bitmap, one bit per chunk, pool k from word pool[k].bitmap_word
//   pool k        chunks of class k, pool[k].stride bytes each
//
// Every std::atomic here must be lock-free and address-free, which the
// static_asserts below check, so that processes share it through the mapping.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace ipcbus::detail {

inline constexpr std::size_t kCacheLine = 64;
inline constexpr std::uint32_t kNone = 0xFFFFFFFFU;
// "IPCBUS" followed by two zero bytes would look too much like text; the
// high byte makes a random or zeroed segment very unlikely to match.
inline constexpr std::uint64_t kMagic = 0x9a53554243504931ULL;
// Bump on every change to any structure in this file, or to the protocol
// processes follow on it. 3: the creator holds the init lock (kInitLockByte)
// while it initialises, and the library of version 2 does not. 4: each
// process entry caches free chunks (ProcessEntry::cache, stash_word()).
inline constexpr std::uint32_t kLayoutVersion = 4;
inline constexpr std::uint32_t kMaxPoolClasses = 8;
inline constexpr std::uint32_t kChunkUnit = 64;  // chunk references count in these
// A ring entry whose value is kSkip carries no chunk: crash repair writes it
// into a position a dead producer claimed but never filled.
inline constexpr std::uint32_t kSkip = 0xFFFFFFFEU;
// Listener slots are holder bits of a chunk (see ChunkHeader::holders).
inline constexpr std::uint32_t kMaxListenerSlots = 48;
// Free chunks a process may cache per pool class (ProcessEntry::cache): one
// cache line of references.
inline constexpr std::uint32_t kCacheSlots = 16;
// Process entries are numbered below this (the taker field's low 15 bits).
inline constexpr std::uint32_t kMaxProcessEntries = 32000;

static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "shared atomics must be lock-free to work across processes");
static_assert(std::atomic<std::uint32_t>::is_always_lock_free,
              "shared atomics must be lock-free to work across processes");

// ---------------------------------------------------------------------------
// Listener state word (64 bits):
//
//   63            32 31          16 15        2 1   0
//  +----------------+--------------+-----------+-----+
//  |   generation   |  owner + 1   |  (zero)   |state|
//  +----------------+--------------+-----------+-----+
//
// state: 0 Free, 1 Active, 2 Paused, 3 Closed. owner: the process entry that
// claimed the slot, set by the claim CAS itself so that crash cleanup always
// knows whose slot it is. Zeroed memory is Free with generation 0, a valid
// empty slot.
// INVARIANT1: publishers put entries into a slot's ring only inside a
//   fan-out (PublisherSlot::active odd, the slot's bit in `pending`) that
//   began before they read the state as Active with the generation their
//   route names. (a) close() waits until no live publisher is inside such a
//   fan-out, so no entry lands after the drain. (b) A slot is claimed by a CAS
//   Free(g) -> Active(g+1), so a route made for generation g never matches
//   again.
// INVARIANT2: the generation changes only when a Free slot is claimed.
// (Layout 1 counted publishers inside in bits 2..31, "pins"; the fan-out
// journal replaced them and took two read-modify-writes per target off the
// publish path.)
inline constexpr std::uint64_t kStateMask = 0x3;
inline constexpr int kOwnerShift = 16;
inline constexpr std::uint64_t kOwnerMask = 0xFFFFULL << kOwnerShift;
inline constexpr int kGenShift = 32;

inline constexpr std::uint64_t state_bits(std::uint64_t w) {
  return w & kStateMask;
}
inline constexpr std::uint32_t generation_of(std::uint64_t w) {
  return static_cast<std::uint32_t>(w >> kGenShift);
}
// The owner's process entry, kNone when the slot has none.
inline constexpr std::uint32_t owner_of(std::uint64_t w) {
  return static_cast<std::uint32_t>((w & kOwnerMask) >> kOwnerShift) - 1U;
}
inline constexpr std::uint64_t owner_bits(std::uint32_t process_index) {
  return (static_cast<std::uint64_t>(process_index + 1U) << kOwnerShift) & kOwnerMask;
}
inline constexpr std::uint64_t make_state_word(std::uint32_t gen, std::uint64_t state) {
  return (static_cast<std::uint64_t>(gen) << kGenShift) | state;
}
static_assert(state_bits(0) == 0 && generation_of(0) == 0, "zeroed slot must read as Free gen 0");
static_assert(owner_of(0) == 0xFFFFFFFFU, "zeroed slot has no owner");

// ---------------------------------------------------------------------------
struct PoolDesc {
  std::uint32_t payload_bytes;
  std::uint32_t count;
  std::uint32_t stride;       // bytes per chunk: header, topic area, payload
  std::uint32_t bitmap_word;  // first word of this class in the free bitmap
  std::uint64_t offset;       // of chunk 0 in the segment
};

// Chunk pools keep no list. A chunk is free exactly when its holders word is
// zero (ChunkHeader); the bitmap (bit set = probably free) only tells takers
// where to look. A taker clears a bit and then claims the chunk by CAS of its
// holders word 0 -> taker, so a stale bit costs a failed CAS, never a double
// hand-out; whoever drops the last holder sets the bit again. A crash between
// the two steps leaves a free chunk with a clear bit, which the sweep in
// reclaim.cpp finds.

// The error log's record format. It has its own version, kept apart from
// the layout version and at a fixed place in the header, so that a process
// of another layout can still say in the log why it was refused.
inline constexpr std::uint32_t kErrorLogVersion = 1;
inline constexpr std::uint32_t kErrorLogEntries = 64;

// One deduplicated error-log record, claimed by CAS of state 0 -> 1 and
// ready at 2.
struct ErrorRecord {
  std::atomic<std::uint32_t> state;
  std::uint32_t text_len;
  std::atomic<std::uint64_t> key;  // hash of kind and text, for deduplication
  std::atomic<std::uint64_t> count;
  std::atomic<std::uint64_t> first_realtime_ns;
  std::atomic<std::uint64_t> last_realtime_ns;
  char kind[16];
  char text[72];
};
static_assert(sizeof(ErrorRecord) == 128, "error records are part of the error log version");

struct SegmentHeader {
  // The first 32 bytes keep their meaning in every layout version.
  // Written last by the creator (release); zero means "not ready yet".
  std::atomic<std::uint64_t> magic;
  std::uint32_t layout_version;
  std::uint32_t header_bytes;
  std::uint32_t errlog_version;  // kErrorLogVersion
  std::uint32_t errlog_entries;
  std::uint64_t errlog_off;   // ErrorRecord[errlog_entries]
  std::uint64_t fingerprint;  // sizes of this build's structures, see layout_fingerprint()
  std::uint64_t segment_bytes;
  std::int32_t creator_pid;
  std::uint32_t pool_count;
  std::uint64_t created_realtime_ns;

  // Sizes fixed at creation.
  std::uint32_t max_listeners;
  std::uint32_t ring_capacity;
  std::uint32_t trie_nodes;
  std::uint32_t subscriptions;
  std::uint32_t max_topic_bytes;
  std::uint32_t max_level_bytes;
  std::uint32_t max_processes;
  std::uint32_t mode;
  std::uint32_t max_publishers;
  std::uint32_t reserved1;
  std::uint32_t edge_count;  // power of two
  std::uint32_t node_stride;
  PoolDesc pools[kMaxPoolClasses];

  // Region offsets.
  std::uint64_t proc_off;
  std::uint64_t listener_off;
  std::uint64_t ring_off;
  std::uint64_t node_off;
  std::uint64_t edge_off;
  std::uint64_t sub_off;
  std::uint64_t publisher_off;
  std::uint64_t bitmap_off;
  std::uint32_t bitmap_words;
  std::uint32_t chunk_count;  // all classes together

  // Trie writers hold this robust, process-shared mutex. Readers (publishers)
  // never take it: they read under the seqlock below.
  alignas(kCacheLine) pthread_mutex_t trie_mutex;
  // Trie seqlock: odd while a writer is changing the trie. Publishers cache
  // routes tagged with the version they were computed at.
  alignas(kCacheLine) std::atomic<std::uint64_t> trie_version;
  // Allocation state of the trie, changed under trie_mutex, read by tools.
  alignas(kCacheLine) std::atomic<std::uint32_t> node_free_head;
  std::atomic<std::uint32_t> nodes_used;
  std::atomic<std::uint32_t> sub_free_head;
  std::atomic<std::uint32_t> subs_used;
  std::atomic<std::uint32_t> edge_tombstones;

  alignas(kCacheLine) std::atomic<std::uint32_t> next_publisher_id;
  std::atomic<std::uint32_t> attach_count;
  std::atomic<std::uint64_t> errlog_dropped;  // records that found the log full

  // The agent: it holds an OFD lock on byte lock_base() + max_processes of
  // the segment's file while it runs; these say which one, for messages.
  alignas(kCacheLine) std::atomic<std::int32_t> agent_pid;
  std::atomic<std::uint32_t> agent_epoch;  // bumped by each agent that takes over
  // Crash cleanup's figures, for tools and the benchmark.
  std::atomic<std::uint64_t> reclaimed_processes;
  std::atomic<std::uint64_t> reclaimed_chunks;
  std::atomic<std::uint64_t> reclaimed_listeners;
  std::atomic<std::uint64_t> repaired_entries;  // ring positions filled with kSkip
  std::atomic<std::uint64_t> last_reclaim_ns;   // detection to done, of the last one
};

// Byte-range locks that tell a live process from a dead one sit past the end
// of the segment's file (a lock needs no data under it): byte lock_base(h) + i
// is held by process entry i's owner, lock_base(h) + max_processes by the agent.
inline std::uint64_t lock_base(const SegmentHeader& h) {
  return h.segment_bytes;
}

// The creator holds an OFD lock on this byte of the segment's file from just
// after it creates the name until just after it stores the magic, so an
// opener that finds no magic can tell a creator still at work (the lock is
// held) from one that died (the kernel dropped it). A fixed offset past every
// segment and its liveness bytes: an opener needs no header to probe it.
inline constexpr std::uint64_t kInitLockByte = 1ULL << 46;
static_assert(kInitLockByte > (240ULL << 30) + 65001,
              "the init lock byte lies past every segment (below 240 GiB) and its lock bytes");

// One attached process.
//
// state: 0 Free, 1 Live, 2 Reclaiming (its owner died and a reclaimer is
// cleaning up after it), 3 Claiming (being filled by a new owner). Whoever
// holds the OFD lock on byte lock_base() + index of the segment's file owns
// the entry: its process while it lives, then the one reclaimer that took the
// lock over. The kernel drops the lock when the last descriptor of that open
// file goes, that is when the process exits or is killed, before it becomes a
// zombie, in whatever pid namespace it runs, so a reused pid or a container
// cannot fool it. pid, start_time, pid_ns and boot_id are for people.
enum ProcessState : std::uint32_t {
  kProcFree = 0,
  kProcLive = 1,
  kProcReclaiming = 2,  // a reclaimer holds the entry's lock now
  kProcClaiming = 3
};
struct alignas(kCacheLine) ProcessEntry {
  std::atomic<std::uint32_t> state;
  std::atomic<std::int32_t> pid;
  std::uint64_t start_time;  // field 22 of /proc/PID/stat
  std::uint64_t attach_realtime_ns;
  std::atomic<std::uint32_t> listeners;
  std::uint32_t reserved;
  std::uint64_t pid_ns;                      // inode of /proc/self/ns/pid
  std::uint64_t boot_id;                     // hash of /proc/sys/kernel/random/boot_id
  std::atomic<std::uint64_t> dead_since_ns;  // CLOCK_MONOTONIC when first seen dead
  // The owner's cache of free chunks, per pool class: chunk references, 0
  // when empty. A chunk freed in this process is put here instead of into
  // the shared bitmap, and this process's next take finds it here, so the
  // bitmap's words stop bouncing between the cores of a publisher and its
  // listeners. The references are hints; a chunk is cached exactly when its
  // holders word is stash_word(owner), and whoever moves that word by CAS
  // owns the chunk (the owner, a process that found its pool empty, or crash
  // cleanup). Written by the owner; read by others only to steal or count.
  alignas(kCacheLine) std::atomic<std::uint32_t> cache[kMaxPoolClasses][kCacheSlots];
};

// One publisher: its counters for tools and the journal crash cleanup reads.
// Claimed by CAS of state 0 -> 1; only its publisher writes the rest, with
// plain (relaxed) stores, except `active` (see PublisherCore::deliver).
struct alignas(kCacheLine) PublisherSlot {
  std::atomic<std::uint32_t> state;
  std::uint32_t id;
  std::int32_t pid;
  std::uint32_t process;  // owner's process entry
  std::atomic<std::uint64_t> published;
  std::atomic<std::uint64_t> bytes;
  // The fan-out journal. active is odd while the publisher is inside a
  // fan-out of `chunk`; pending holds the listener bits it has not pushed
  // yet; push_listener / push_pos the ring position it is about to claim.
  std::atomic<std::uint64_t> active;
  std::atomic<std::uint64_t> pending;
  std::atomic<std::uint64_t> push_pos;
  std::atomic<std::uint32_t> chunk;
  std::atomic<std::uint32_t> push_listener;
  // The drop journal (drop-oldest, rare; its own line): the entry this
  // publisher is evicting from ring pop_listener at pop_pos - 1 (0: none),
  // and the event it holds, told apart from a later use of the same chunk by
  // its publisher and sequence.
  alignas(kCacheLine) std::atomic<std::uint64_t> pop_pos;
  std::atomic<std::uint64_t> pop_sequence;
  std::atomic<std::uint32_t> pop_listener;
  std::atomic<std::uint32_t> pop_ref;
  std::atomic<std::uint32_t> pop_publisher;
};
static_assert(sizeof(PublisherSlot) == 2 * kCacheLine, "a publisher slot is two cache lines");
// A ring entry freed by a publisher's drop-oldest eviction carries this mark
// and the evicting publisher slot's index instead of the chunk reference.
inline constexpr std::uint32_t kDropMark = 0xF0000000U;

// One listener. Fields are grouped by who writes them so that a publisher
// and the listener do not bounce one cache line on every event.
struct alignas(kCacheLine) ListenerSlot {
  // Line 1: the state word and the options publishers read.
  std::atomic<std::uint64_t> state;
  std::atomic<std::uint32_t> capacity;  // effective capacity (adaptive may change it)
  std::uint32_t allocated;              // ring entries, a power of two
  std::uint32_t high_water_percent;
  std::uint32_t min_capacity;
  std::uint32_t grow_after;
  std::uint8_t overflow;
  std::uint8_t wait;
  std::uint8_t adaptive;
  std::uint8_t reserved0;
  std::int32_t owner_pid;
  std::uint32_t owner_process;  // index of the owner's ProcessEntry
  std::uint64_t quiet_ns;
  std::uint64_t tail_base;  // tail when the slot was claimed: delivered = tail - tail_base

  // Line 2: producers' position.
  alignas(kCacheLine) std::atomic<std::uint64_t> tail;

  // Line 3: the consumer's position and its private counters.
  alignas(kCacheLine) std::atomic<std::uint64_t> head;
  std::atomic<std::uint64_t> received;

  // Line 4: sleeping and waking.
  alignas(kCacheLine) std::atomic<std::uint32_t> futex;  // bumped by each wake
  std::atomic<std::uint32_t> sleeping;                   // 1 while the listener sleeps
  std::atomic<std::uint32_t> space_futex;                // bumped when room was made
  std::atomic<std::uint32_t> space_waiters;              // publishers asleep on a full ring

  // Line 5: rare-path counters, written by publishers.
  alignas(kCacheLine) std::atomic<std::uint64_t> dropped_newest;
  std::atomic<std::uint64_t> dropped_oldest;
  std::atomic<std::uint64_t> block_timeouts;
  std::atomic<std::uint64_t> high_water_signals;
  std::atomic<std::uint64_t> wakeups;
  std::atomic<std::uint32_t> hw_since_change;
  std::atomic<std::uint64_t> last_high_water_ns;
  std::atomic<std::uint64_t> last_resize_ns;

  // Line 6: the listener's subscriptions, changed under trie_mutex.
  alignas(kCacheLine) std::atomic<std::uint32_t> subs_head;
  std::atomic<std::uint32_t> filter_count;

  // Lines 7-9: the receive-latency histogram, written by the listener only.
  alignas(kCacheLine) std::atomic<std::uint32_t> histogram_on;
  std::atomic<std::uint64_t> latency[20];
};

// A ring entry: [sequence:32][chunk ref:32]. See ring.hpp.
using RingEntry = std::atomic<std::uint64_t>;

// A trie node; node_stride bytes, the label follows the struct.
enum NodeKind : std::uint32_t {
  kNodeFree = 0,
  kNodeRoot = 1,
  kNodeLiteral = 2,
  kNodePlus = 3,
  kNodeHash = 4
};
struct TrieNode {
  std::atomic<std::uint32_t> kind;
  std::atomic<std::uint32_t> parent;
  std::atomic<std::uint32_t> plus_child;
  std::atomic<std::uint32_t> hash_child;
  std::atomic<std::uint32_t> subs_head;  // SubRecords of filters ending here
  std::atomic<std::uint32_t> refcount;   // subscriptions at or below this node
  std::atomic<std::uint32_t> label_len;
  std::atomic<std::uint32_t> next_free;
  std::atomic<std::uint64_t> label_hash;
  // char label[max_level_bytes] follows
};
static_assert(sizeof(TrieNode) == 40, "TrieNode layout is part of the layout version");

// One subscription: listener x filter node.
struct SubRecord {
  std::atomic<std::uint32_t> node;
  std::atomic<std::uint32_t> listener;
  std::atomic<std::uint32_t> generation;  // of the listener when subscribed
  std::atomic<std::uint32_t> next_in_node;
  std::atomic<std::uint32_t> next_in_listener;
  std::atomic<std::uint32_t> next_free;
};

}  // namespace ipcbus::detail

namespace ipcbus::detail {

// ChunkHeader heads every chunk; the topic area (max_topic_bytes, rounded up
// to 64) and then the payload follow it.
//
// holders (64 bits) says who holds a reference to the chunk:
//
//   63          48 47                                   0
//  +--------------+--------------------------------------+
//  | taker + 1    |  one bit per listener slot            |
//  +--------------+--------------------------------------+
//
// taker: the process entry that took the chunk and still holds its own
// reference (a loan, or a publish whose fan-out is running), 0 when none.
// With the field's top bit set (and not all ones) the chunk is free and
// cached by that entry's process (stash_word()); all ones is the taker of a
// core without an entry (tools and tests).
// Listener bit i: slot i holds one reference, as a ring entry or a sample.
// Zero means free. Every change is one atomic operation on this word, so a
// holder's reference goes exactly once, whether its owner releases it or crash
// cleanup does it for a dead one: clearing a bit that is already clear is a
// no-op, and only the change that makes the word zero frees the chunk.
inline constexpr int kTakerShift = 48;
inline constexpr std::uint64_t kListenerBits = (1ULL << kTakerShift) - 1;
inline constexpr std::uint64_t kTakerBits = ~kListenerBits;
inline constexpr std::uint64_t taker_word(std::uint32_t process_index) {
  return static_cast<std::uint64_t>(process_index + 1) << kTakerShift;
}
inline constexpr std::uint64_t kCachedFlag = 1ULL << 63;
inline constexpr std::uint64_t stash_word(std::uint32_t process_index) {
  return taker_word(process_index) | kCachedFlag;
}
// is_cached: the chunk is free, in the cache of process taker_of(holders).
inline constexpr bool is_cached(std::uint64_t holders) {
  return (holders & kCachedFlag) != 0 && (holders & kTakerBits) != kTakerBits;
}
inline constexpr std::uint32_t taker_of(std::uint64_t holders) {
  const auto field = static_cast<std::uint32_t>(holders >> kTakerShift);
  // A cached chunk's owner is its taker for crash cleanup; kNone when none.
  return (field == 0xFFFFU ? field : field & 0x7FFFU) - 1;
}
struct alignas(kCacheLine) ChunkHeader {
  std::atomic<std::uint64_t> holders;
  std::uint32_t pool_class;
  std::uint32_t self_ref;  // this chunk's reference
  std::uint32_t index;     // among all chunks, for the bitmap
  std::uint32_t capacity;  // payload bytes this chunk can hold
  std::uint32_t payload_len;
  std::uint32_t topic_len;
  std::uint64_t sequence;
  std::uint64_t timestamp_ns;
  std::uint32_t publisher_id;
  std::uint32_t payload_offset;  // from the chunk's start
};
static_assert(sizeof(ChunkHeader) == kCacheLine, "a chunk header fills one cache line");

// The fingerprint of this build's structure sizes; another build with the
// same layout version but other sizes is refused.
constexpr std::uint64_t layout_fingerprint() {
  std::uint64_t h = 1469598103934665603ULL;
  const std::uint64_t parts[] = {
      sizeof(SegmentHeader),   sizeof(ProcessEntry), sizeof(ListenerSlot), sizeof(TrieNode),
      sizeof(PublisherSlot),   sizeof(ErrorRecord),  sizeof(SubRecord),    sizeof(ChunkHeader),
      sizeof(pthread_mutex_t), kLayoutVersion};
  for (std::uint64_t p : parts) {
    h = (h ^ p) * 1099511628211ULL;
  }
  return h;
}

}  // namespace ipcbus::detail
