// trie.hpp: matching a topic against the shared topic trie without a lock.
//
// Writers (subscribe, unsubscribe) change the trie under the robust trie
// mutex, inside a seqlock write section: the trie version is odd while they
// work. Readers (publishers) never lock: they read the version, walk the
// trie with relaxed loads, and keep the answer only if the version is even
// and unchanged at the end. A node freed by a writer may be reused at once:
// a reader that wandered into it reads garbage that the version check then
// throws away, and every index it follows is bounds-checked first, so that
// garbage cannot take it outside the tables or round a loop forever.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "core.hpp"

namespace ipcbus::detail {

// The edge table maps (parent, label) to a literal child by open addressing:
// a probe starts at edge_slot(parent, hash of the label) and goes up one slot
// at a time (masked by edge_count - 1) until an empty word. A used word is
// edge_key(parent, child); a removed one is a tombstone, skipped by lookups
// and reused by insertions.
inline constexpr std::uint64_t kEdgeEmpty = 0;
inline constexpr std::uint64_t kEdgeTomb = ~0ULL;

inline std::uint64_t edge_key(std::uint32_t parent, std::uint32_t child) {
  return (static_cast<std::uint64_t>(parent) + 1) << 32 | child;
}

inline std::uint64_t edge_slot(std::uint32_t parent, std::uint64_t label_hash) {
  std::uint64_t h = label_hash ^ ((static_cast<std::uint64_t>(parent) + 1) * 0x9E3779B97F4A7C15ULL);
  h ^= h >> 29;
  return h;
}

// What repair_trie found and changed, for its log line and for tests.
struct TrieRepairCounts {
  bool version_was_odd = false;         // the dead writer was inside a change
  std::uint32_t subs_kept = 0;          // records a live listener still holds
  std::uint32_t subs_dropped = 0;       // records in use or half linked, now free
  std::uint32_t subs_on_free_list = 0;  // kept records the free list also reached
  std::uint32_t nodes_kept = 0;         // nodes with a subscription at or below, root included
  std::uint32_t nodes_freed = 0;        // nodes in use but holding nothing, now free
  std::uint32_t nodes_merged = 0;       // duplicate children folded into their twin
  std::uint32_t refcounts_fixed = 0;
  std::uint32_t edges_added = 0;    // literal links the edge table lacked
  std::uint32_t edges_removed = 0;  // words naming freed, moved or unknown children
  std::uint32_t links_fixed = 0;    // plus_child / hash_child words rewritten
  bool gauges_fixed = false;        // nodes_used, subs_used or edge_tombstones were off
};

// repair_trie rebuilds the trie after a writer died holding the trie mutex
// (EOWNERDEAD): from the subscription records that the lists of live
// listeners reach, it rebuilds the node and listener lists, refcounts, edge
// table, wildcard links, free lists and gauges, then publishes a new even
// version. The caller holds the trie mutex, not yet marked consistent, and
// has not opened a write section. See trie_repair.cpp.
TrieRepairCounts repair_trie(BusCore& core);

struct RouteTarget {
  std::uint32_t listener;
  std::uint32_t generation;
};

// Scratch space a publisher owns, sized once for its bus, so that matching
// allocates nothing.
class Matcher {
 public:
  explicit Matcher(const BusCore& core);

  // match fills `out` (room for max_listeners targets, each listener once)
  // with the listeners whose filters match `topic`, a valid topic name, and
  // returns how many; *version is the trie version the answer is valid for.
  std::uint32_t match(std::string_view topic, RouteTarget* out, std::uint64_t* version);

 private:
  struct Frame {
    std::uint32_t node;
    std::uint32_t level;
  };
  bool walk(std::uint32_t nlevels, bool dollar, RouteTarget* out, std::uint32_t* count);
  bool collect(std::uint32_t node, RouteTarget* out, std::uint32_t* count);

  const BusCore& core_;
  std::vector<std::string_view> levels_;
  std::vector<std::uint64_t> hashes_;
  std::vector<Frame> stack_;
  std::vector<std::uint64_t> seen_;
  std::uint32_t budget_ = 0;
};

}  // namespace ipcbus::detail
