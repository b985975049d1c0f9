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
// Bump on every change to any structure in this file.
inline constexpr std::uint32_t kLayoutVersion = 1;
inline constexpr std::uint32_t kMaxPoolClasses = 8;
inline constexpr std::uint32_t kChunkUnit = 64;  // chunk references count in these

static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "shared atomics must be lock-free to work across processes");
static_assert(std::atomic<std::uint32_t>::is_always_lock_free,
              "shared atomics must be lock-free to work across processes");

// ---------------------------------------------------------------------------
// Listener state word (64 bits):
//
//   63            32 31                        2 1   0
//  +----------------+---------------------------+-----+
//  |   generation   |  pins (publishers inside)  |state|
//  +----------------+---------------------------+-----+
//
// state: 0 Free, 1 Active, 2 Paused, 3 Closed. Zeroed memory is Free with
// generation 0, a valid empty slot.
// INVARIANT1: publishers put entries into a slot's ring only while they hold
//   a pin taken when the state was Active with the generation their route
//   names. (a) close() waits for pins to reach zero before it drains the
//   ring, so no entry lands after the drain. (b) A slot is claimed by a CAS
//   Free(g) -> Active(g+1), so a route made for generation g never matches
//   again.
// INVARIANT2: the generation changes only when a Free slot is claimed.
inline constexpr std::uint64_t kStateMask = 0x3;
inline constexpr std::uint64_t kPinOne = 0x4;
inline constexpr std::uint64_t kPinMask = 0xFFFFFFFCULL;
inline constexpr int kGenShift = 32;

inline constexpr std::uint64_t state_bits(std::uint64_t w) {
  return w & kStateMask;
}
inline constexpr std::uint64_t pins_of(std::uint64_t w) {
  return (w & kPinMask) >> 2;
}
inline constexpr std::uint32_t generation_of(std::uint64_t w) {
  return static_cast<std::uint32_t>(w >> kGenShift);
}
inline constexpr std::uint64_t make_state_word(std::uint32_t gen, std::uint64_t state) {
  return (static_cast<std::uint64_t>(gen) << kGenShift) | state;
}
static_assert(state_bits(0) == 0 && generation_of(0) == 0, "zeroed slot must read as Free gen 0");
static_assert(pins_of(kPinOne) == 1, "pin count starts above the state bits");

// ---------------------------------------------------------------------------
struct PoolDesc {
  std::uint32_t payload_bytes;
  std::uint32_t count;
  std::uint32_t stride;  // bytes per chunk: header, topic area, payload
  std::uint32_t reserved;
  std::uint64_t offset;  // of chunk 0 in the segment
};

// One size class's free list: a Treiber stack of chunk references whose head
// carries a 32-bit tag against ABA: [tag:32][chunk ref:32].
struct alignas(kCacheLine) PoolHead {
  std::atomic<std::uint64_t> head;
  std::atomic<std::uint32_t> free_count;
};

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

  PoolHead pool_heads[kMaxPoolClasses];
};

// One attached process. Claimed by CAS of `state` 0 -> 1.
struct alignas(kCacheLine) ProcessEntry {
  std::atomic<std::uint32_t> state;  // 0 free, 1 in use
  std::atomic<std::int32_t> pid;     // CAS from a dead pid hands the entry over
  std::uint64_t start_time;          // field 22 of /proc/PID/stat: tells a reused pid apart
  std::uint64_t attach_realtime_ns;
  std::atomic<std::uint32_t> listeners;
};

// Counters of one live publisher, for tools. Claimed by CAS of state 0 -> 1.
// Only its publisher writes the counters (plain relaxed stores, no RMW).
struct alignas(kCacheLine) PublisherSlot {
  std::atomic<std::uint32_t> state;
  std::uint32_t id;
  std::int32_t pid;
  std::uint32_t reserved;
  std::atomic<std::uint64_t> published;
  std::atomic<std::uint64_t> bytes;
};

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
struct alignas(kCacheLine) ChunkHeader {
  std::atomic<std::uint32_t> refcount;   // ring entries + samples + the publisher while it fans out
  std::atomic<std::uint32_t> next_free;  // free-list link, meaningful only while free
  std::uint32_t pool_class;
  std::uint32_t self_ref;  // this chunk's reference
  std::int32_t owner_pid;  // who holds it unpublished (loan), 0 once published
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
