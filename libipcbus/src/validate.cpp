// validate.cpp: the structure checks of validate.hpp. Each check returns the
// first problem it finds as text (empty: none); validate_structure() stops at
// the first one.
#include "validate.hpp"

#include <pthread.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace ipcbus::detail {

namespace {

// peek reads a plain field that other processes may be writing, as one
// untorn relaxed load: a range check needs no ordering.
template <class T>
T peek(const T& field) {
  return std::atomic_ref<T>(const_cast<T&>(field)).load(std::memory_order_relaxed);
}
// relaxed: as above, for the segment's atomics.
template <class T>
T peek(const std::atomic<T>& field) {
  return field.load(std::memory_order_relaxed);
}

std::string num(std::uint64_t v) {
  return v == kNone ? std::string("none") : std::to_string(v);
}

// The segment's tables as the header places them.
class View {
 public:
  View(const SegmentHeader& h, const char* base) : h_(h), base_(base) {}

  const SegmentHeader& h() const { return h_; }
  const ListenerSlot& slot(std::uint32_t i) const {
    return reinterpret_cast<const ListenerSlot*>(base_ + h_.listener_off)[i];
  }
  const RingEntry& ring_entry(std::uint32_t listener, std::uint32_t k) const {
    return reinterpret_cast<const RingEntry*>(
        base_ + h_.ring_off)[std::uint64_t{listener} * h_.ring_capacity + k];
  }
  const TrieNode& node(std::uint32_t i) const {
    return *reinterpret_cast<const TrieNode*>(base_ + h_.node_off +
                                              std::uint64_t{i} * h_.node_stride);
  }
  const SubRecord& sub(std::uint32_t i) const {
    return reinterpret_cast<const SubRecord*>(base_ + h_.sub_off)[i];
  }
  const std::atomic<std::uint64_t>& edge(std::uint32_t i) const {
    return reinterpret_cast<const std::atomic<std::uint64_t>*>(base_ + h_.edge_off)[i];
  }
  const ChunkHeader& chunk(std::uint32_t pool, std::uint32_t j) const {
    const PoolDesc& p = h_.pools[pool];
    return *reinterpret_cast<const ChunkHeader*>(base_ + p.offset + std::uint64_t{j} * p.stride);
  }

  // The pool class whose chunk `ref` names, or -1 when it names no chunk.
  int pool_of(std::uint32_t ref) const {
    const std::uint64_t off = std::uint64_t{ref} * kChunkUnit;
    for (std::uint32_t k = 0; k < h_.pool_count; ++k) {
      const PoolDesc& p = h_.pools[k];
      if (off >= p.offset && off < p.offset + std::uint64_t{p.count} * p.stride &&
          (off - p.offset) % p.stride == 0) {
        return static_cast<int>(k);
      }
    }
    return -1;
  }

  // "": `v` is kNone or below `n`; else the problem.
  static std::string index(const std::string& where, const char* field, std::uint32_t v,
                           const char* table, std::uint32_t n) {
    if (v == kNone || v < n) {
      return "";
    }
    return where + ": " + field + " " + num(v) + " is not below " + table + " " + num(n);
  }

 private:
  const SegmentHeader& h_;
  const char* base_;
};

std::string check_counters(const View& v) {
  const SegmentHeader& h = v.h();
  std::string p =
      View::index("header", "node_free_head", peek(h.node_free_head), "trie_nodes", h.trie_nodes);
  if (p.empty()) {
    p = View::index("header", "sub_free_head", peek(h.sub_free_head), "subscriptions",
                    h.subscriptions);
  }
  const std::uint32_t nodes_used = peek(h.nodes_used);
  if (p.empty() && (nodes_used == 0 || nodes_used > h.trie_nodes)) {
    p = "header: nodes_used " + num(nodes_used) + " is not in 1..trie_nodes " + num(h.trie_nodes);
  }
  const std::uint32_t subs_used = peek(h.subs_used);
  if (p.empty() && subs_used > h.subscriptions) {
    p = "header: subs_used " + num(subs_used) + " is above subscriptions " + num(h.subscriptions);
  }
  const std::uint32_t tombstones = peek(h.edge_tombstones);
  if (p.empty() && tombstones > h.edge_count) {
    p = "header: edge_tombstones " + num(tombstones) + " is above edge_count " + num(h.edge_count);
  }
  for (std::uint32_t k = 0; p.empty() && k < h.pool_count; ++k) {
    if (h.pools[k].bitmap_word + (h.pools[k].count + 63) / 64 > h.bitmap_words) {
      p = "header: the free bitmap of pool " + num(k) + " runs past the bitmap";
    }
  }
#ifdef __GLIBC__
  // The mutex's type word, against one made as init_segment() makes it: a
  // tool never locks it, but every trie writer does, and glibc aborts on a
  // type it does not know.
  pthread_mutex_t probe;
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&probe, &attr);
  pthread_mutexattr_destroy(&attr);
  const int want = probe.__data.__kind;
  pthread_mutex_destroy(&probe);
  const int kind = peek(h.trie_mutex.__data.__kind);
  if (p.empty() && kind != want) {
    p = "header: the trie mutex is not a robust process-shared mutex (type " +
        std::to_string(kind) + ", not " + std::to_string(want) + ")";
  }
#endif
  return p;
}

std::string check_listeners(const View& v) {
  const SegmentHeader& h = v.h();
  for (std::uint32_t i = 0; i < h.max_listeners; ++i) {
    const ListenerSlot& s = v.slot(i);
    const std::string where = "listener slot " + num(i);
    const std::uint32_t allocated = peek(s.allocated);
    const std::uint32_t capacity = peek(s.capacity);
    if (allocated != h.ring_capacity) {
      return where + ": ring of " + num(allocated) + " entries, not ring_capacity " +
             num(h.ring_capacity);
    }
    if (capacity == 0 || capacity > allocated) {
      return where + ": capacity " + num(capacity) + " is not in 1.." + num(allocated);
    }
    if (peek(s.high_water_percent) > 100 || peek(s.overflow) > 2 || peek(s.wait) > 2 ||
        peek(s.adaptive) > 1) {
      return where + ": an option is out of range (high water " + num(peek(s.high_water_percent)) +
             ", overflow " + num(peek(s.overflow)) + ", wait " + num(peek(s.wait)) + ", adaptive " +
             num(peek(s.adaptive)) + ")";
    }
    std::string p = View::index(where, "owner_process", peek(s.owner_process), "max_processes",
                                h.max_processes);
    if (p.empty()) {
      p = View::index(where, "subs_head", peek(s.subs_head), "subscriptions", h.subscriptions);
    }
    if (!p.empty()) {
      return p;
    }
    for (std::uint32_t k = 0; k < h.ring_capacity; ++k) {
      const auto ref = static_cast<std::uint32_t>(peek(v.ring_entry(i, k)));
      // kSkip: a repaired position; kDropMark | slot: freed by an eviction.
      if (ref != kNone && ref != kSkip && (ref & kDropMark) != kDropMark && v.pool_of(ref) < 0) {
        return where + ": ring entry " + num(k) + " names no chunk (" + num(ref) + ")";
      }
    }
  }
  return "";
}

std::string check_trie(const View& v) {
  const SegmentHeader& h = v.h();
  const std::uint32_t tn = h.trie_nodes;
  for (std::uint32_t n = 0; n < tn; ++n) {
    const TrieNode& t = v.node(n);
    const std::string where = "trie node " + num(n);
    const std::uint32_t kind = peek(t.kind);
    if (kind > kNodeHash || (n == 0) != (kind == kNodeRoot)) {
      return where + ": kind " + num(kind) + (n == 0 ? " where the root belongs" : "");
    }
    const std::uint32_t len = peek(t.label_len);
    if (len > h.max_level_bytes) {
      return where + ": label of " + num(len) + " bytes, above max_level_bytes " +
             num(h.max_level_bytes);
    }
    for (const auto& [field, value] :
         {std::pair{"parent", peek(t.parent)}, std::pair{"plus_child", peek(t.plus_child)},
          std::pair{"hash_child", peek(t.hash_child)}, std::pair{"next_free", peek(t.next_free)}}) {
      if (std::string p = View::index(where, field, value, "trie_nodes", tn); !p.empty()) {
        return p;
      }
    }
    if (std::string p =
            View::index(where, "subs_head", peek(t.subs_head), "subscriptions", h.subscriptions);
        !p.empty()) {
      return p;
    }
  }
  for (std::uint32_t e = 0; e < h.edge_count; ++e) {
    const std::uint64_t w = peek(v.edge(e));
    if (w == 0 || w == ~0ULL) {
      continue;  // empty, tombstone
    }
    const auto parent = static_cast<std::uint32_t>((w >> 32) - 1);
    const auto child = static_cast<std::uint32_t>(w);
    if (parent >= tn || child >= tn) {
      return "trie edge " + num(e) + ": links node " + num(parent) + " to node " + num(child) +
             ", not both below trie_nodes " + num(tn);
    }
  }
  for (std::uint32_t s = 0; s < h.subscriptions; ++s) {
    const SubRecord& r = v.sub(s);
    const std::string where = "subscription record " + num(s);
    std::string p = View::index(where, "node", peek(r.node), "trie_nodes", tn);
    if (p.empty()) {
      p = View::index(where, "listener", peek(r.listener), "max_listeners", h.max_listeners);
    }
    for (const auto& [field, value] : {std::pair{"next_in_node", peek(r.next_in_node)},
                                       std::pair{"next_in_listener", peek(r.next_in_listener)},
                                       std::pair{"next_free", peek(r.next_free)}}) {
      if (p.empty()) {
        p = View::index(where, field, value, "subscriptions", h.subscriptions);
      }
    }
    if (!p.empty()) {
      return p;
    }
  }
  return "";
}

std::string check_chunks(const View& v) {
  const SegmentHeader& h = v.h();
  const std::uint32_t topic_area =
      static_cast<std::uint32_t>((h.max_topic_bytes + kCacheLine - 1) / kCacheLine * kCacheLine);
  for (std::uint32_t k = 0; k < h.pool_count; ++k) {
    const PoolDesc& pool = h.pools[k];
    for (std::uint32_t j = 0; j < pool.count; ++j) {
      const ChunkHeader& c = v.chunk(k, j);
      const auto ref =
          static_cast<std::uint32_t>((pool.offset + std::uint64_t{j} * pool.stride) / kChunkUnit);
      const std::string where = "chunk " + num(j) + " of pool " + num(k);
      // Set once by the creator: pool class, reference, capacity, payload offset.
      if (peek(c.pool_class) != k || peek(c.self_ref) != ref ||
          peek(c.capacity) != pool.payload_bytes ||
          peek(c.payload_offset) != sizeof(ChunkHeader) + topic_area) {
        return where + ": its header does not describe it (class " + num(peek(c.pool_class)) +
               ", reference " + num(peek(c.self_ref)) + ", capacity " + num(peek(c.capacity)) +
               ", payload offset " + num(peek(c.payload_offset)) + ")";
      }
      if (peek(c.index) != pool.bitmap_word * 64 + j) {
        return where + ": its bitmap index " + num(peek(c.index)) + " is not its place";
      }
      const std::uint64_t holders = peek(c.holders);
      const std::uint32_t taker = taker_of(holders);
      const std::uint64_t slots =
          h.max_listeners >= 64 ? ~0ULL : (std::uint64_t{1} << h.max_listeners) - 1;
      if ((taker != kNone && taker != taker_of(kTakerBits) && taker >= h.max_processes) ||
          (holders & kListenerBits & ~slots) != 0) {
        return where + ": its holders word names a process or listener slot the bus does not have";
      }
      if (peek(c.topic_len) > h.max_topic_bytes || peek(c.payload_len) > pool.payload_bytes) {
        return where + ": topic of " + num(peek(c.topic_len)) + " bytes or payload of " +
               num(peek(c.payload_len)) + " bytes does not fit it";
      }
    }
  }
  return "";
}

// The chains a reader walks: each listener's subscription list, each node's
// way to the root, the two free lists. Called inside a seqlock read section,
// where any read may be torn by a writer (the section is then thrown away):
// so every index read here is range-checked before it is used, each time.
std::string check_chains(const View& v) {
  const SegmentHeader& h = v.h();
  const std::uint32_t tn = h.trie_nodes;
  const std::uint32_t subs = h.subscriptions;
  std::vector<std::uint8_t> on_list(subs, 0);
  for (std::uint32_t i = 0; i < h.max_listeners; ++i) {
    for (std::uint32_t s = peek(v.slot(i).subs_head); s != kNone;
         s = peek(v.sub(s).next_in_listener)) {
      if (s >= subs || on_list[s] != 0) {
        return "listener slot " + num(i) + ": its subscription list " +
               (s >= subs ? "leaves the table (" + num(s) + ")"
                          : "meets record " + num(s) + " twice (a cycle, or two lists)");
      }
      on_list[s] = 1;
      const std::uint32_t owner = peek(v.sub(s).listener);
      if (owner != i || peek(v.sub(s).node) >= tn) {
        return "subscription record " + num(s) + " is on listener slot " + num(i) +
               "'s list but names listener " + num(owner) + " and node " + num(peek(v.sub(s).node));
      }
    }
  }
  // 0 not seen, 1 on the path being followed, 2 leads to the root. The path
  // is kept rather than read again: a writer may change it meanwhile.
  std::vector<std::uint8_t> mark(tn, 0);
  std::vector<std::uint32_t> path;
  mark[0] = 2;
  for (std::uint32_t n = 1; n < tn; ++n) {
    if (peek(v.node(n).kind) == kNodeFree) {
      continue;
    }
    path.clear();
    std::uint32_t m = n;
    while (mark[m] == 0) {
      mark[m] = 1;
      path.push_back(m);
      const std::uint32_t parent = peek(v.node(m).parent);
      if (parent >= tn) {
        return "trie node " + num(m) + " does not lead to the root (parent " + num(parent) + ")";
      }
      m = parent;
    }
    if (mark[m] == 1) {
      return "trie node " + num(m) + " is its own ancestor (a cycle of parents)";
    }
    for (std::uint32_t on_path : path) {
      mark[on_path] = 2;
    }
  }
  std::uint32_t steps = 0;
  for (std::uint32_t n = peek(h.node_free_head); n != kNone; n = peek(v.node(n).next_free)) {
    if (n >= tn || ++steps > tn) {
      return "the free list of trie nodes " +
             (n >= tn ? "leaves the table (" + num(n) + ")" : std::string("does not end"));
    }
  }
  steps = 0;
  for (std::uint32_t s = peek(h.sub_free_head); s != kNone; s = peek(v.sub(s).next_free)) {
    if (s >= subs || ++steps > subs || on_list[s] != 0) {
      return "the free list of subscription records " +
             (s >= subs      ? "leaves the table (" + num(s) + ")"
              : steps > subs ? std::string("does not end")
                             : "holds record " + num(s) + ", which a listener holds");
    }
  }
  return "";
}

// check_chains_stable runs check_chains inside a trie seqlock read section,
// a few times if writers overlap it; a walk that never comes out stable is
// no evidence either way and passes.
std::string check_chains_stable(const View& v) {
  const SegmentHeader& h = v.h();
  for (int attempt = 0; attempt < 4; ++attempt) {
    // SYNC(trie): acquire pairs with the trie writer's release store of the
    // even version (trie.cpp): the trie as of that version is visible.
    const std::uint64_t v1 = h.trie_version.load(std::memory_order_acquire);
    if ((v1 & 1) != 0) {
      std::this_thread::yield();
      continue;
    }
    std::string problem = check_chains(v);
    // SYNC(trie-begin): pairs with the writer's release fence in
    // TrieWriter::begin(): if the walk read a change, v2 is a new version.
    std::atomic_thread_fence(std::memory_order_acquire);
    // relaxed: ordered by the fence above.
    if (h.trie_version.load(std::memory_order_relaxed) == v1) {
      return problem;
    }
  }
  return "";
}

}  // namespace

Result<void> validate_structure(const SegmentHeader& h, const char* base, std::uint64_t bytes) {
  if (h.segment_bytes > bytes) {
    return Error{Errc::kForeignSegment, "segment is corrupt: its header says " +
                                            std::to_string(h.segment_bytes) + " bytes, " +
                                            std::to_string(bytes) + " are mapped"};
  }
  const View v(h, base);
  // Not checked: the process, publisher and error-log tables, whose fields
  // readers print but never follow (inspect() bounds the error texts).
  for (auto* check :
       {check_counters, check_listeners, check_trie, check_chunks, check_chains_stable}) {
    if (std::string problem = check(v); !problem.empty()) {
      return Error{Errc::kForeignSegment, "segment is corrupt: " + problem};
    }
  }
  return {};
}

}  // namespace ipcbus::detail
