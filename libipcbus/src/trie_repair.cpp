// trie_repair.cpp: repair_trie, the rebuild of the topic trie after a writer
// died holding the trie mutex.
//
// A writer can die between any two of its stores (trie.cpp marks the places
// with crash points). It may leave a node taken from the free list but not
// linked, or linked with refcount 0; refcounts raised or dropped on part of a
// path; an edge inserted, or tombstoned and not counted, or the whole table
// cleared half way through a rebuild; a record taken from the free list but
// on no list, or on its node's list only; a free list whose head names a
// record or node still in use; gauges off by one; the version odd.
//
// The ground truth is what no writer step leaves half done. A record on the
// list of a listener whose slot is not Free, naming that listener and the
// slot's current generation, was written in full before it was linked there,
// and so was the chain of nodes it names (kind, label, parent), up to the
// root. Everything else is derived from those records and rebuilt: both
// kinds of record list, refcounts, the edge table, the wildcard links, the
// free lists and the gauges. Records and nodes nothing derives are freed.
//
// The repair writes in an order that keeps the ground truth whole at every
// step (records' nodes first, then surviving nodes, then lists, and only then
// frees), so that a process that dies while repairing leaves a trie the next
// writer, who gets EOWNERDEAD again, repairs to the same result.
//
// Readers (publishers) go on matching without a lock meanwhile: the version
// is odd from the first store to the last, as for a normal writer, so they
// retry; every index they follow is bounds-checked. Every loop here is
// bounded by a table size, and an index out of range is dropped.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "trie.hpp"

namespace ipcbus::detail {

namespace {

// relaxed, for every load and store through these two: the trie mutex we
// hold orders them against other writers (the dead one's stores were made
// before the kernel handed us its mutex), and the odd and even version
// stores in open_version() and close_version() order them for readers.
template <class T>
T get(const std::atomic<T>& a) {
  return a.load(std::memory_order_relaxed);
}
template <class T>
void put(std::atomic<T>& a, T v) {
  a.store(v, std::memory_order_relaxed);
}

// depth_ values other than a depth; kBroken is the smallest.
constexpr std::uint32_t kUnseen = kNone;
constexpr std::uint32_t kOnChain = kNone - 1;
constexpr std::uint32_t kBroken = kNone - 2;

class Repair {
 public:
  explicit Repair(BusCore& core)
      : c_(core),
        h_(core.header()),
        nodes_(h_.trie_nodes),
        subs_(h_.subscriptions),
        listeners_(h_.max_listeners),
        edges_(h_.edge_count) {}

  TrieRepairCounts run() {
    open_version();
    note_old_state();
    check_nodes();
    merge_twins();
    collect_records();
    count_refs();
    tally();
    write_record_nodes();
    write_nodes();
    write_edges();
    write_lists();
    free_rest();
    write_gauges();
    close_version();
    log_result();
    return n_;
  }

 private:
  void open_version() {
    // relaxed: only writers store the version and we hold the mutex.
    const std::uint64_t v = h_.trie_version.load(std::memory_order_relaxed);
    n_.version_was_odd = (v & 1) != 0;
    old_version_ = v;
    version_ = v | 1;
    // relaxed: as above; the fence below orders it before the repair.
    h_.trie_version.store(version_, std::memory_order_relaxed);
    // SYNC(trie-begin): as in TrieWriter::begin(): the release fence orders
    // the odd version before every store below, pairing with the reader's
    // acquire fence before its second version load.
    std::atomic_thread_fence(std::memory_order_release);
  }

  void close_version() {
    // SYNC(trie): release pairs with the reader's acquire load of the
    // version: a reader that sees the new even version sees the whole repair.
    h_.trie_version.store(version_ + 1, std::memory_order_release);
  }

  // What the free lists reached and the gauges said before the repair.
  void note_old_state() {
    on_free_node_.assign(nodes_, 0);
    std::uint32_t n = get(h_.node_free_head);
    for (std::uint32_t steps = 0; n < nodes_ && steps < nodes_ && on_free_node_[n] == 0; ++steps) {
      on_free_node_[n] = 1;
      n = get(c_.node(n).next_free);
    }
    on_free_sub_.assign(subs_, 0);
    std::uint32_t s = get(h_.sub_free_head);
    for (std::uint32_t steps = 0; s < subs_ && steps < subs_ && on_free_sub_[s] == 0; ++steps) {
      on_free_sub_[s] = 1;
      s = get(c_.sub(s).next_free);
    }
    old_nodes_used_ = get(h_.nodes_used);
    old_subs_used_ = get(h_.subs_used);
    old_tombstones_ = get(h_.edge_tombstones);
    for (std::uint32_t i = 0; i < edges_; ++i) {
      const std::uint64_t w = get(c_.edge(i));
      if (w != kEdgeEmpty && w != kEdgeTomb) {
        old_edges_.push_back(w);
      }
    }
  }

  // A node is whole when its kind, label and label hash agree and its parent
  // index is in range. The label is read with plain loads: no writer runs
  // and readers do not write.
  bool whole(std::uint32_t n) const {
    const TrieNode& t = c_.node(n);
    const std::uint32_t kind = get(t.kind);
    const std::uint32_t len = get(t.label_len);
    if ((kind != kNodeLiteral && kind != kNodePlus && kind != kNodeHash) ||
        len > h_.max_level_bytes || get(t.parent) >= nodes_) {
      return false;
    }
    const std::string_view label(c_.node_label(n), len);
    if (get(t.label_hash) != fnv1a(label)) {
      return false;
    }
    switch (kind) {
      case kNodePlus:
        return label == "+";
      case kNodeHash:
        return label == "#";
      default:
        return label != "+" && label != "#";
    }
  }

  // depth_[n] becomes n's level when n is sound: whole, under a parent that
  // is the root or a sound node other than a '#' (which ends a filter), on a
  // chain to the root with no cycle and no deeper than a filter can go.
  void check_nodes() {
    depth_.assign(nodes_, kUnseen);
    depth_[0] = 0;
    const std::uint32_t max_depth = h_.max_topic_bytes + 1;  // "//" has 3 levels in 2 bytes
    std::vector<std::uint32_t> chain;
    for (std::uint32_t n = 1; n < nodes_; ++n) {
      if (depth_[n] != kUnseen) {
        continue;
      }
      chain.clear();
      std::uint32_t base = kBroken;
      for (std::uint32_t m = n;;) {
        if (depth_[m] != kUnseen) {
          base = depth_[m] == kOnChain ? kBroken : depth_[m];  // kOnChain: a cycle
          break;
        }
        chain.push_back(m);
        if (!whole(m)) {
          break;  // base stays kBroken
        }
        depth_[m] = kOnChain;
        m = get(c_.node(m).parent);
      }
      for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
        const std::uint32_t parent = get(c_.node(*it).parent);
        // A broken base (kBroken) fails the first test, so that the parent
        // index, whole only for whole nodes, is followed only when in range.
        const bool ok = base < max_depth && (parent == 0 || get(c_.node(parent).kind) != kNodeHash);
        base = ok ? base + 1 : kBroken;
        depth_[*it] = base;
      }
    }
  }
  bool sound(std::uint32_t n) const { return depth_[n] < kBroken; }

  // canon_[n] is the node that stands for sound node n: n itself, or the
  // first (lowest index) of its twins, the sound children of the same
  // parent with the same label (the edge table and the wildcard links hold
  // one child per label). Twins do not come from a dead writer, which links
  // a node only where find_child found none, but from other damage; their
  // records and children move to the node that stands for them.
  void merge_twins() {
    canon_.assign(nodes_, kNone);
    canon_[0] = 0;
    std::vector<std::pair<std::uint32_t, std::uint32_t>> order;  // (depth, node)
    for (std::uint32_t n = 1; n < nodes_; ++n) {
      if (sound(n)) {
        order.emplace_back(depth_[n], n);
      }
    }
    std::sort(order.begin(), order.end());  // parents before children
    std::unordered_map<std::string, std::uint32_t> first;
    first.reserve(order.size());
    std::string key;
    for (const auto& [depth, n] : order) {
      const TrieNode& t = c_.node(n);
      const std::uint32_t parent = canon_[get(t.parent)];
      key.assign(reinterpret_cast<const char*>(&parent), sizeof parent);
      key.append(c_.node_label(n), get(t.label_len));  // the label implies the kind
      const auto [it, fresh] = first.try_emplace(key, n);
      canon_[n] = it->second;
      n_.nodes_merged += fresh ? 0 : 1;
    }
  }

  // The records each listener still holds, in its list's order: on the list
  // of a slot that is not Free, naming that slot and its generation and a
  // sound node other than the root, once per (listener, node).
  void collect_records() {
    keep_.assign(subs_, 0);
    target_.assign(subs_, kNone);
    walked_by_.assign(subs_, kNone);
    kept_.assign(listeners_, {});
    std::unordered_set<std::uint64_t> held;
    for (std::uint32_t i = 0; i < listeners_; ++i) {
      ListenerSlot& ls = c_.slot(i);
      // relaxed: the state may change under us (a claim or a close does not
      // take the trie mutex), but a slot's list changes only under the mutex
      // we hold: a slot seen Free has no records, one being claimed none yet,
      // one being closed keeps its records until its close takes the mutex.
      const std::uint64_t w = ls.state.load(std::memory_order_relaxed);
      if (state_bits(w) == static_cast<std::uint64_t>(ListenerState::kFree)) {
        continue;
      }
      const std::uint32_t gen = generation_of(w);
      std::uint32_t s = get(ls.subs_head);
      for (std::uint32_t steps = 0; s < subs_ && steps < subs_ && walked_by_[s] != i; ++steps) {
        walked_by_[s] = i;  // seen again in this walk: a cycle, stop
        const SubRecord& r = c_.sub(s);
        const std::uint32_t node = get(r.node);
        if (keep_[s] == 0 && get(r.listener) == i && get(r.generation) == gen && node != 0 &&
            node < nodes_ && sound(node) &&
            held.insert(static_cast<std::uint64_t>(i) << 32 | canon_[node]).second) {
          keep_[s] = 1;
          target_[s] = canon_[node];
          kept_[i].push_back(s);
        }
        s = get(r.next_in_listener);
      }
    }
  }

  // refs_[n]: the kept records at or below n; a node lives when it has one.
  void count_refs() {
    refs_.assign(nodes_, 0);
    for (const std::vector<std::uint32_t>& list : kept_) {
      for (const std::uint32_t s : list) {
        ++n_.subs_kept;
        std::uint32_t m = target_[s];
        for (std::uint32_t steps = 0; steps < nodes_; ++steps) {
          ++refs_[m];
          if (m == 0) {
            break;
          }
          m = canon_[get(c_.node(m).parent)];
        }
      }
    }
    plus_.assign(nodes_, kNone);
    hash_.assign(nodes_, kNone);
    for (std::uint32_t n = 1; n < nodes_; ++n) {
      if (lives(n)) {
        const std::uint32_t kind = get(c_.node(n).kind);
        const std::uint32_t parent = canon_[get(c_.node(n).parent)];
        if (kind == kNodePlus) {
          plus_[parent] = n;
        } else if (kind == kNodeHash) {
          hash_[parent] = n;
        } else {
          new_edges_.push_back(n);
        }
      }
    }
  }
  bool lives(std::uint32_t n) const { return n == 0 || refs_[n] > 0; }

  // The counts of the log line, from the state before any store.
  void tally() {
    n_.nodes_kept = 1;
    for (std::uint32_t n = 0; n < nodes_; ++n) {
      const TrieNode& t = c_.node(n);
      if (lives(n)) {
        n_.nodes_kept += n == 0 ? 0 : 1;
        n_.refcounts_fixed += get(t.refcount) != refs_[n] ? 1 : 0;
        n_.links_fixed += get(t.plus_child) != plus_[n] ? 1 : 0;
        n_.links_fixed += get(t.hash_child) != hash_[n] ? 1 : 0;
      } else if (get(t.kind) != kNodeFree || on_free_node_[n] == 0) {
        ++n_.nodes_freed;
      }
    }
    for (std::uint32_t s = 0; s < subs_; ++s) {
      if (keep_[s] != 0) {
        n_.subs_on_free_list += on_free_sub_[s];
      } else if (on_free_sub_[s] == 0) {
        ++n_.subs_dropped;
      }
    }
    std::vector<std::uint64_t> now;
    now.reserve(new_edges_.size());
    for (const std::uint32_t n : new_edges_) {
      now.push_back(edge_key(canon_[get(c_.node(n).parent)], n));
    }
    std::sort(now.begin(), now.end());
    std::sort(old_edges_.begin(), old_edges_.end());
    std::vector<std::uint64_t> diff;
    std::set_difference(now.begin(), now.end(), old_edges_.begin(), old_edges_.end(),
                        std::back_inserter(diff));
    n_.edges_added = static_cast<std::uint32_t>(diff.size());
    diff.clear();
    std::set_difference(old_edges_.begin(), old_edges_.end(), now.begin(), now.end(),
                        std::back_inserter(diff));
    n_.edges_removed = static_cast<std::uint32_t>(diff.size());
    n_.gauges_fixed =
        old_nodes_used_ != n_.nodes_kept || old_subs_used_ != n_.subs_kept || old_tombstones_ != 0;
  }

  // Kept records name the node that stands for theirs before any node is
  // freed, so that a repair cut short still finds them whole.
  void write_record_nodes() {
    for (std::uint32_t s = 0; s < subs_; ++s) {
      if (keep_[s] != 0) {
        put(c_.sub(s).node, target_[s]);
      }
    }
  }

  // Surviving nodes get their parent's stand-in, links and refcount (their
  // record lists are relinked below); only then are the others freed.
  void write_nodes() {
    TrieNode& root = c_.node(0);
    put(root.kind, static_cast<std::uint32_t>(kNodeRoot));
    put(root.parent, kNone);
    for (std::uint32_t n = 0; n < nodes_; ++n) {
      if (lives(n)) {
        TrieNode& t = c_.node(n);
        if (n != 0) {
          put(t.parent, canon_[get(t.parent)]);
        }
        put(t.plus_child, plus_[n]);
        put(t.hash_child, hash_[n]);
        put(t.subs_head, kNone);
        put(t.refcount, refs_[n]);
        put(t.next_free, kNone);
      }
    }
    std::uint32_t head = kNone;
    for (std::uint32_t n = nodes_ - 1; n > 0; --n) {
      if (!lives(n)) {
        TrieNode& t = c_.node(n);
        put(t.kind, static_cast<std::uint32_t>(kNodeFree));
        put(t.parent, kNone);
        put(t.plus_child, kNone);
        put(t.hash_child, kNone);
        put(t.subs_head, kNone);
        put(t.refcount, 0U);
        put(t.next_free, head);
        head = n;
      }
    }
    put(h_.node_free_head, head);
  }

  // The edge table from scratch: one word per surviving literal node, at
  // the first empty slot of its probe sequence, and no tombstones. There is
  // room: the table has at least twice as many slots as there are nodes.
  void write_edges() {
    const std::uint32_t mask = edges_ - 1;
    for (std::uint32_t i = 0; i < edges_; ++i) {
      put(c_.edge(i), kEdgeEmpty);
    }
    for (const std::uint32_t n : new_edges_) {
      const TrieNode& t = c_.node(n);
      const std::uint32_t parent = get(t.parent);  // the stand-in, written above
      std::uint64_t i = edge_slot(parent, get(t.label_hash));
      for (std::uint32_t probes = 0; probes < edges_; ++probes, ++i) {
        std::atomic<std::uint64_t>& e = c_.edge(static_cast<std::uint32_t>(i & mask));
        if (get(e) == kEdgeEmpty) {
          put(e, edge_key(parent, n));
          break;
        }
      }
    }
    put(h_.edge_tombstones, 0U);
  }

  // Each listener's list keeps its order, less the records not kept; each
  // kept record goes onto its node's list. Slots seen Free get empty lists.
  void write_lists() {
    for (std::uint32_t i = 0; i < listeners_; ++i) {
      const std::vector<std::uint32_t>& list = kept_[i];
      for (std::size_t k = 0; k < list.size(); ++k) {
        SubRecord& r = c_.sub(list[k]);
        put(r.next_in_listener, k + 1 < list.size() ? list[k + 1] : kNone);
        TrieNode& t = c_.node(target_[list[k]]);
        put(r.next_in_node, get(t.subs_head));
        put(t.subs_head, list[k]);
        put(r.next_free, kNone);
      }
      ListenerSlot& ls = c_.slot(i);
      put(ls.subs_head, list.empty() ? kNone : list.front());
      put(ls.filter_count, static_cast<std::uint32_t>(list.size()));
    }
  }

  // Records not kept are on no list now: clear them onto the free list.
  void free_rest() {
    std::uint32_t head = kNone;
    for (std::uint32_t s = subs_; s-- > 0;) {
      if (keep_[s] == 0) {
        SubRecord& r = c_.sub(s);
        put(r.node, kNone);
        put(r.listener, kNone);
        put(r.next_in_node, kNone);
        put(r.next_in_listener, kNone);
        put(r.next_free, head);
        head = s;
      }
    }
    put(h_.sub_free_head, head);
  }

  void write_gauges() {
    put(h_.nodes_used, n_.nodes_kept);
    put(h_.subs_used, n_.subs_kept);
  }

  void log_result() {
    log().warn(
        "trie repaired after a writer died holding the trie mutex: bus={} version {}->{}{} "
        "subscriptions kept={} dropped={} kept_but_on_free_list={} nodes kept={} freed={} "
        "merged={} refcounts_fixed={} edges added={} removed={} wildcard_links_fixed={} "
        "nodes_used {}->{} subs_used {}->{} tombstones {}->0",
        c_.name(), old_version_, version_ + 1, n_.version_was_odd ? " (was odd)" : "", n_.subs_kept,
        n_.subs_dropped, n_.subs_on_free_list, n_.nodes_kept, n_.nodes_freed, n_.nodes_merged,
        n_.refcounts_fixed, n_.edges_added, n_.edges_removed, n_.links_fixed, old_nodes_used_,
        n_.nodes_kept, old_subs_used_, n_.subs_kept, old_tombstones_);
    c_.record_error("trie-repair", "writer died; kept " + std::to_string(n_.subs_kept) +
                                       " subs, dropped " + std::to_string(n_.subs_dropped) +
                                       ", freed " + std::to_string(n_.nodes_freed) + " nodes");
  }

  BusCore& c_;
  SegmentHeader& h_;
  const std::uint32_t nodes_;
  const std::uint32_t subs_;
  const std::uint32_t listeners_;
  const std::uint32_t edges_;
  TrieRepairCounts n_;
  std::uint64_t old_version_ = 0;
  std::uint64_t version_ = 0;
  std::uint32_t old_nodes_used_ = 0;
  std::uint32_t old_subs_used_ = 0;
  std::uint32_t old_tombstones_ = 0;
  std::vector<std::uint8_t> on_free_node_;
  std::vector<std::uint8_t> on_free_sub_;
  std::vector<std::uint64_t> old_edges_;
  std::vector<std::uint32_t> depth_;
  std::vector<std::uint32_t> canon_;
  std::vector<std::uint8_t> keep_;
  std::vector<std::uint32_t> target_;
  std::vector<std::uint32_t> walked_by_;
  std::vector<std::vector<std::uint32_t>> kept_;
  std::vector<std::uint32_t> refs_;
  std::vector<std::uint32_t> plus_;
  std::vector<std::uint32_t> hash_;
  std::vector<std::uint32_t> new_edges_;  // surviving literal nodes
};

}  // namespace

TrieRepairCounts repair_trie(BusCore& core) {
  return Repair(core).run();
}

}  // namespace ipcbus::detail
