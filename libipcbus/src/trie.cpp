// trie.cpp: the topic trie in the segment. Writers hold the robust trie
// mutex and open a seqlock write section; readers match without a lock. See
// trie.hpp for the reader's argument and docs/architecture.md for the
// drawing.
#include "trie.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <thread>

#include "crash.hpp"
#include "ipcbus/topic.hpp"

namespace ipcbus::detail {

namespace {

// Split a filter or topic into levels. Control path: allocates.
std::vector<std::string_view> split_levels(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, slash - start));
    start = slash + 1;
  }
}

}  // namespace

// TrieWriter holds the trie mutex for one change and brackets the change
// with the seqlock's odd/even version.
class TrieWriter {
 public:
  // With `patience` above zero, gives up after that long (locked() false):
  // crash cleanup must not hang on a mutex whose bytes are corrupt.
  explicit TrieWriter(BusCore& core, std::chrono::milliseconds patience = {})
      : core_(core), h_(core.header()) {
    int rc = 0;
    if (patience.count() > 0) {
      timespec until{};
      clock_gettime(CLOCK_REALTIME, &until);
      const auto ns = until.tv_nsec + (patience.count() % 1000) * 1000000L;
      until.tv_sec += static_cast<time_t>(patience.count() / 1000 + ns / 1000000000L);
      until.tv_nsec = ns % 1000000000L;
      rc = pthread_mutex_timedlock(&h_.trie_mutex, &until);
      if (rc != 0 && rc != EOWNERDEAD) {
        locked_ = false;
        return;
      }
    } else {
      rc = pthread_mutex_lock(&h_.trie_mutex);
    }
    if (rc == EOWNERDEAD) {
      // A writer died inside its change. Repair first, mark the mutex
      // consistent after: if this process dies while repairing, the next
      // writer gets EOWNERDEAD again and repairs again.
      repair_trie(core);
      pthread_mutex_consistent(&h_.trie_mutex);
    }
  }
  bool locked() const { return locked_; }
  ~TrieWriter() {
    if (!locked_) {
      return;
    }
    if (open_) {
      // SYNC(trie): release pairs with the reader's acquire load of the
      // version: a reader that sees the new even version sees every change.
      h_.trie_version.store(version_ + 1, std::memory_order_release);
    }
    pthread_mutex_unlock(&h_.trie_mutex);
  }
  TrieWriter(const TrieWriter&) = delete;
  TrieWriter& operator=(const TrieWriter&) = delete;

  // begin makes the version odd; readers that overlap this change retry.
  void begin() {
    if (open_) {
      return;
    }
    open_ = true;
    // relaxed: only writers store the version and we hold the mutex.
    const std::uint64_t v = h_.trie_version.load(std::memory_order_relaxed);
    version_ = (v & 1) != 0 ? v : v + 1;  // odd already if a writer died mid-change
    h_.trie_version.store(version_, std::memory_order_relaxed);
    // SYNC(trie-begin): the release fence orders the odd version before the
    // changes below, pairing with the reader's acquire fence before its
    // second version load: a reader that saw any change sees a new version.
    std::atomic_thread_fence(std::memory_order_release);
  }

  std::uint32_t alloc_node() {
    const std::uint32_t n = h_.node_free_head.load(std::memory_order_relaxed);
    TrieNode& t = core_.node(n);
    // relaxed, here and in every trie write below: the seqlock (begin() and
    // the release store in the destructor) orders them for readers.
    h_.node_free_head.store(t.next_free.load(std::memory_order_relaxed), std::memory_order_relaxed);
    IPCBUS_CRASH_POINT("subscribe");  // off the free list, not counted
    h_.nodes_used.fetch_add(1, std::memory_order_relaxed);
    return n;
  }
  void free_node(std::uint32_t n) {
    TrieNode& t = core_.node(n);
    t.kind.store(kNodeFree, std::memory_order_relaxed);
    t.parent.store(kNone, std::memory_order_relaxed);
    t.next_free.store(h_.node_free_head.load(std::memory_order_relaxed), std::memory_order_relaxed);
    IPCBUS_CRASH_POINT("unsubscribe");  // marked free, not on the free list
    h_.node_free_head.store(n, std::memory_order_relaxed);
    IPCBUS_CRASH_POINT("unsubscribe");  // on the free list, still counted
    h_.nodes_used.fetch_sub(1, std::memory_order_relaxed);
  }
  std::uint32_t alloc_sub() {
    const std::uint32_t s = h_.sub_free_head.load(std::memory_order_relaxed);
    h_.sub_free_head.store(core_.sub(s).next_free.load(std::memory_order_relaxed),
                           std::memory_order_relaxed);
    IPCBUS_CRASH_POINT("subscribe");  // off the free list, not counted
    h_.subs_used.fetch_add(1, std::memory_order_relaxed);
    return s;
  }
  void free_sub(std::uint32_t s) {
    SubRecord& r = core_.sub(s);
    r.node.store(kNone, std::memory_order_relaxed);
    r.listener.store(kNone, std::memory_order_relaxed);
    r.next_free.store(h_.sub_free_head.load(std::memory_order_relaxed), std::memory_order_relaxed);
    IPCBUS_CRASH_POINT("unsubscribe");  // cleared, not on the free list
    h_.sub_free_head.store(s, std::memory_order_relaxed);
    IPCBUS_CRASH_POINT("unsubscribe");  // on the free list, still counted
    h_.subs_used.fetch_sub(1, std::memory_order_relaxed);
  }

  void insert_edge(std::uint32_t parent, std::uint32_t child, std::uint64_t label_hash) {
    const std::uint32_t mask = h_.edge_count - 1;
    std::uint64_t i = edge_slot(parent, label_hash);
    for (;; ++i) {
      auto& e = core_.edges_[i & mask];
      const std::uint64_t w = e.load(std::memory_order_relaxed);
      if (w == kEdgeEmpty || w == kEdgeTomb) {
        if (w == kEdgeTomb) {
          h_.edge_tombstones.fetch_sub(1, std::memory_order_relaxed);
        }
        e.store(edge_key(parent, child), std::memory_order_relaxed);
        return;
      }
    }
  }
  void remove_edge(std::uint32_t parent, std::uint32_t child, std::uint64_t label_hash) {
    const std::uint32_t mask = h_.edge_count - 1;
    std::uint64_t i = edge_slot(parent, label_hash);
    for (std::uint32_t probes = 0; probes < h_.edge_count; ++probes, ++i) {
      auto& e = core_.edges_[i & mask];
      const std::uint64_t w = e.load(std::memory_order_relaxed);
      if (w == edge_key(parent, child)) {
        e.store(kEdgeTomb, std::memory_order_relaxed);
        IPCBUS_CRASH_POINT("unsubscribe");  // tombstone not counted
        h_.edge_tombstones.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      if (w == kEdgeEmpty) {
        return;
      }
    }
  }
  // Rebuild the edge table without tombstones, from the live literal nodes.
  void rebuild_edges() {
    for (std::uint32_t i = 0; i < h_.edge_count; ++i) {
      core_.edges_[i].store(kEdgeEmpty, std::memory_order_relaxed);
    }
    h_.edge_tombstones.store(0, std::memory_order_relaxed);
    IPCBUS_CRASH_POINT("unsubscribe");  // every literal child unreachable
    if (h_.nodes_used.load(std::memory_order_relaxed) <= 1) {
      return;
    }
    for (std::uint32_t n = 1; n < h_.trie_nodes; ++n) {
      TrieNode& t = core_.node(n);
      if (t.kind.load(std::memory_order_relaxed) == kNodeLiteral) {
        insert_edge(t.parent.load(std::memory_order_relaxed), n,
                    t.label_hash.load(std::memory_order_relaxed));
      }
    }
  }

  // remove_sub unlinks record s from its node and listener, frees it, drops
  // the refcounts on the path to the root and prunes nodes left empty.
  void remove_sub(std::uint32_t s) {
    begin();
    IPCBUS_CRASH_POINT("unsubscribe");  // version odd, nothing changed
    SubRecord& r = core_.sub(s);
    const std::uint32_t node = r.node.load(std::memory_order_relaxed);
    const std::uint32_t listener = r.listener.load(std::memory_order_relaxed);
    unlink(core_.node(node).subs_head, s, &SubRecord::next_in_node);
    IPCBUS_CRASH_POINT("unsubscribe");  // off the node's list, still the listener's
    ListenerSlot& slot = core_.slot(listener);
    unlink(slot.subs_head, s, &SubRecord::next_in_listener);
    IPCBUS_CRASH_POINT("unsubscribe");  // on no list, still in use
    slot.filter_count.fetch_sub(1, std::memory_order_relaxed);
    free_sub(s);

    std::uint32_t n = node;
    while (n != kNone) {
      TrieNode& t = core_.node(n);
      const std::uint32_t parent = t.parent.load(std::memory_order_relaxed);
      const std::uint32_t left = t.refcount.fetch_sub(1, std::memory_order_relaxed) - 1;
      IPCBUS_CRASH_POINT("unsubscribe");  // refcounts dropped up to here only
      if (left == 0 && n != 0) {
        prune(n, parent);
      }
      n = parent;
    }
    if (h_.nodes_used.load(std::memory_order_relaxed) <= 1 ||
        h_.edge_tombstones.load(std::memory_order_relaxed) > h_.edge_count / 4) {
      rebuild_edges();
    }
  }

 private:
  // Remove record s from the singly linked list starting at head.
  void unlink(std::atomic<std::uint32_t>& head, std::uint32_t s,
              std::atomic<std::uint32_t> SubRecord::*next) {
    std::atomic<std::uint32_t>* link = &head;
    for (std::uint32_t steps = 0; steps <= h_.subscriptions; ++steps) {
      const std::uint32_t cur = link->load(std::memory_order_relaxed);
      if (cur == kNone || cur >= h_.subscriptions) {
        return;
      }
      if (cur == s) {
        link->store((core_.sub(s).*next).load(std::memory_order_relaxed),
                    std::memory_order_relaxed);
        return;
      }
      link = &(core_.sub(cur).*next);
    }
  }
  void prune(std::uint32_t n, std::uint32_t parent) {
    TrieNode& t = core_.node(n);
    TrieNode& p = core_.node(parent);
    switch (t.kind.load(std::memory_order_relaxed)) {
      case kNodePlus:
        p.plus_child.store(kNone, std::memory_order_relaxed);
        break;
      case kNodeHash:
        p.hash_child.store(kNone, std::memory_order_relaxed);
        break;
      default:
        remove_edge(parent, n, t.label_hash.load(std::memory_order_relaxed));
        break;
    }
    IPCBUS_CRASH_POINT("unsubscribe");  // unlinked from its parent, not freed
    free_node(n);
  }

  BusCore& core_;
  SegmentHeader& h_;
  bool open_ = false;
  bool locked_ = true;
  std::uint64_t version_ = 0;
};

namespace {

// Compare a node's label with `label`. The bytes are read as relaxed atomics:
// a writer may be relabelling a recycled node while a matcher reads it, and
// the seqlock's version check discards what such a read saw.
bool label_equals(const char* stored, std::string_view label) {
  for (std::size_t i = 0; i < label.size(); ++i) {
    // relaxed: seqlock-protected, see above.
    if (std::atomic_ref<char>(const_cast<char&>(stored[i])).load(std::memory_order_relaxed) !=
        label[i]) {
      return false;
    }
  }
  return true;
}

void store_label(char* stored, std::string_view label) {
  for (std::size_t i = 0; i < label.size(); ++i) {
    // relaxed: ordered for readers by the seqlock (TrieWriter).
    std::atomic_ref<char>(stored[i]).store(label[i], std::memory_order_relaxed);
  }
}

}  // namespace

std::uint32_t BusCore::find_child(std::uint32_t parent, std::string_view label,
                                  std::uint64_t label_hash) const {
  const std::uint32_t count = header_->edge_count;
  const std::uint32_t mask = count - 1;
  const std::uint32_t nodes = header_->trie_nodes;
  std::uint64_t i = edge_slot(parent, label_hash);
  for (std::uint32_t probes = 0; probes < count; ++probes, ++i) {
    // relaxed: read under the trie seqlock (see trie.hpp); validated there.
    const std::uint64_t w = edges_[i & mask].load(std::memory_order_relaxed);
    if (w == kEdgeEmpty) {
      return kNone;
    }
    if (w == kEdgeTomb || static_cast<std::uint32_t>((w >> 32) - 1) != parent) {
      continue;
    }
    const auto child = static_cast<std::uint32_t>(w);
    if (child >= nodes) {
      return kNone;  // garbage seen mid-change; the version check discards it
    }
    const TrieNode& t = node(child);
    // relaxed: seqlock-protected reads, as above.
    const std::uint32_t len = t.label_len.load(std::memory_order_relaxed);
    if (t.label_hash.load(std::memory_order_relaxed) == label_hash && len == label.size() &&
        len <= header_->max_level_bytes && label_equals(node_label(child), label)) {
      return child;
    }
  }
  return kNone;
}

Result<void> BusCore::subscribe(std::uint32_t listener, std::uint32_t generation,
                                std::string_view filter) {
  if (auto ok = check_topic_filter(filter, header_->max_topic_bytes); !ok) {
    return ok.error();
  }
  const std::vector<std::string_view> levels = split_levels(filter);
  for (std::size_t i = 0; i < levels.size(); ++i) {
    if (levels[i].size() > header_->max_level_bytes) {
      return Error{Errc::kInvalidFilter,
                   "topic filter level " + std::to_string(i + 1) + " is " +
                       std::to_string(levels[i].size()) +
                       " bytes; this bus's trie holds filter levels of up to " +
                       std::to_string(header_->max_level_bytes) + " bytes (max_level_bytes)"};
    }
  }

  TrieWriter w(*this);
  // Walk the part of the path that exists.
  std::uint32_t n = 0;
  std::size_t found = 0;
  for (; found < levels.size(); ++found) {
    const std::string_view l = levels[found];
    const TrieNode& t = node(n);
    const std::uint32_t child = l == "+"   ? t.plus_child.load(std::memory_order_relaxed)
                                : l == "#" ? t.hash_child.load(std::memory_order_relaxed)
                                           : find_child(n, l, fnv1a(l));
    if (child == kNone) {
      break;
    }
    n = child;
  }
  if (found == levels.size()) {
    for (std::uint32_t s = node(n).subs_head.load(std::memory_order_relaxed); s != kNone;
         s = sub(s).next_in_node.load(std::memory_order_relaxed)) {
      if (sub(s).listener.load(std::memory_order_relaxed) == listener) {
        return {};  // already held
      }
    }
  }
  const std::uint32_t missing = static_cast<std::uint32_t>(levels.size() - found);
  if (header_->nodes_used.load(std::memory_order_relaxed) + missing > header_->trie_nodes) {
    return Error{Errc::kTrieFull,
                 "trie is full: filter '" + std::string(filter) + "' needs " +
                     std::to_string(missing) + (missing == 1 ? " more node" : " more nodes") +
                     ", the bus has " + std::to_string(header_->trie_nodes) + " (trie_nodes)"};
  }
  if (header_->sub_free_head.load(std::memory_order_relaxed) == kNone) {
    return Error{Errc::kTrieFull, "all " + std::to_string(header_->subscriptions) +
                                      " subscription records are in use (subscriptions)"};
  }

  w.begin();
  IPCBUS_CRASH_POINT("subscribe");  // version odd, nothing changed
  for (std::size_t i = found; i < levels.size(); ++i) {
    const std::string_view l = levels[i];
    const std::uint32_t c = w.alloc_node();
    TrieNode& t = node(c);
    const std::uint64_t h = fnv1a(l);
    // relaxed, in all node writes: ordered for readers by the seqlock.
    t.parent.store(n, std::memory_order_relaxed);
    t.plus_child.store(kNone, std::memory_order_relaxed);
    t.hash_child.store(kNone, std::memory_order_relaxed);
    t.subs_head.store(kNone, std::memory_order_relaxed);
    t.refcount.store(0, std::memory_order_relaxed);
    t.label_len.store(static_cast<std::uint32_t>(l.size()), std::memory_order_relaxed);
    t.label_hash.store(h, std::memory_order_relaxed);
    store_label(const_cast<char*>(node_label(c)), l);
    IPCBUS_CRASH_POINT("subscribe");  // node taken and written, not linked
    if (l == "+") {
      t.kind.store(kNodePlus, std::memory_order_relaxed);
      node(n).plus_child.store(c, std::memory_order_relaxed);
    } else if (l == "#") {
      t.kind.store(kNodeHash, std::memory_order_relaxed);
      node(n).hash_child.store(c, std::memory_order_relaxed);
    } else {
      t.kind.store(kNodeLiteral, std::memory_order_relaxed);
      w.insert_edge(n, c, h);
    }
    IPCBUS_CRASH_POINT("subscribe");  // node linked with refcount 0
    n = c;
  }
  const std::uint32_t s = w.alloc_sub();
  SubRecord& r = sub(s);
  ListenerSlot& ls = slot(listener);
  r.node.store(n, std::memory_order_relaxed);
  r.listener.store(listener, std::memory_order_relaxed);
  r.generation.store(generation, std::memory_order_relaxed);
  r.next_in_node.store(node(n).subs_head.load(std::memory_order_relaxed),
                       std::memory_order_relaxed);
  IPCBUS_CRASH_POINT("subscribe");  // record written, on no list
  node(n).subs_head.store(s, std::memory_order_relaxed);
  IPCBUS_CRASH_POINT("subscribe");  // on the node's list, not the listener's
  r.next_in_listener.store(ls.subs_head.load(std::memory_order_relaxed), std::memory_order_relaxed);
  ls.subs_head.store(s, std::memory_order_relaxed);
  IPCBUS_CRASH_POINT("subscribe");  // on both lists, refcounts not raised
  ls.filter_count.fetch_add(1, std::memory_order_relaxed);
  for (std::uint32_t m = n; m != kNone; m = node(m).parent.load(std::memory_order_relaxed)) {
    node(m).refcount.fetch_add(1, std::memory_order_relaxed);
    IPCBUS_CRASH_POINT("subscribe");  // refcounts raised up to here only
  }
  log().debug("subscribed bus={} listener={} filter={}", name_, listener, filter);
  return {};
}

Result<void> BusCore::unsubscribe(std::uint32_t listener, std::string_view filter) {
  if (auto ok = check_topic_filter(filter, header_->max_topic_bytes); !ok) {
    return ok.error();
  }
  const std::vector<std::string_view> levels = split_levels(filter);
  TrieWriter w(*this);
  std::uint32_t n = 0;
  for (const std::string_view l : levels) {
    const TrieNode& t = node(n);
    n = l == "+"   ? t.plus_child.load(std::memory_order_relaxed)
        : l == "#" ? t.hash_child.load(std::memory_order_relaxed)
                   : (l.size() <= header_->max_level_bytes ? find_child(n, l, fnv1a(l)) : kNone);
    if (n == kNone) {
      break;
    }
  }
  if (n != kNone) {
    for (std::uint32_t s = node(n).subs_head.load(std::memory_order_relaxed); s != kNone;
         s = sub(s).next_in_node.load(std::memory_order_relaxed)) {
      if (sub(s).listener.load(std::memory_order_relaxed) == listener) {
        w.remove_sub(s);
        log().debug("unsubscribed bus={} listener={} filter={}", name_, listener, filter);
        return {};
      }
    }
  }
  return Error{Errc::kNotFound, "listener does not hold filter '" + std::string(filter) + "'"};
}

bool BusCore::unsubscribe_all(std::uint32_t listener, std::chrono::milliseconds patience) {
  TrieWriter w(*this, patience);
  if (!w.locked()) {
    return false;
  }
  for (std::uint32_t guard = 0; guard <= header_->subscriptions; ++guard) {
    const std::uint32_t s = slot(listener).subs_head.load(std::memory_order_relaxed);
    if (s == kNone || s >= header_->subscriptions) {
      break;
    }
    w.remove_sub(s);
  }
  return true;
}

namespace {

// One reading of listener's filters, rebuilt from its subscription records
// and their nodes' labels up to the root. Every index is range-checked and
// every walk bounded (a record seen twice ends the list; a filter stops at
// max_topic_bytes + 1 levels), so that a corrupt segment costs at most
// subscriptions x levels steps and never leads outside the tables. A filter
// whose way to the root is broken reads "(corrupt)".
std::vector<std::string> read_filters(const BusCore& core, std::uint32_t listener) {
  const SegmentHeader& h = core.header();
  std::vector<std::string> out;
  std::vector<bool> seen(h.subscriptions, false);
  std::vector<std::uint32_t> path;
  // relaxed, for every read here: seqlock-protected, see filters_of().
  for (std::uint32_t s = core.slot(listener).subs_head.load(std::memory_order_relaxed);
       s < h.subscriptions && !seen[s];
       s = core.sub(s).next_in_listener.load(std::memory_order_relaxed)) {
    seen[s] = true;
    path.clear();
    std::uint32_t n = core.sub(s).node.load(std::memory_order_relaxed);
    while (n != 0 && n < h.trie_nodes && path.size() <= h.max_topic_bytes) {
      path.push_back(n);
      n = core.node(n).parent.load(std::memory_order_relaxed);
    }
    std::string f;
    for (auto it = path.rbegin(); n == 0 && it != path.rend() && f.size() <= h.max_topic_bytes;
         ++it) {
      if (it != path.rbegin()) {
        f += '/';
      }
      const std::uint32_t len =
          std::min(core.node(*it).label_len.load(std::memory_order_relaxed), h.max_level_bytes);
      const char* label = core.node_label(*it);
      for (std::uint32_t i = 0; i < len; ++i) {
        f += std::atomic_ref<char>(const_cast<char&>(label[i])).load(std::memory_order_relaxed);
      }
    }
    out.push_back(n == 0 && !path.empty() && f.size() <= h.max_topic_bytes ? std::move(f)
                                                                           : "(corrupt)");
  }
  return out;
}

}  // namespace

std::vector<std::string> BusCore::filters_of(std::uint32_t listener) {
  // Read as publishers match (trie.hpp): under the seqlock, without the trie
  // mutex, so that a tool neither waits for writers nor trusts the mutex's
  // bytes. A reading that overlapped a change is taken again, a few times;
  // past that (a writer busy, or dead mid-change) the last one stands.
  std::vector<std::string> out;
  for (int attempt = 0; attempt < 8; ++attempt) {
    // SYNC(trie): acquire pairs with the writer's release store of the even
    // version (~TrieWriter): the trie as of that version is visible.
    const std::uint64_t v1 = header_->trie_version.load(std::memory_order_acquire);
    out = read_filters(*this, listener);
    // SYNC(trie-begin): pairs with the release fence in TrieWriter::begin():
    // if the reading saw any change, the load below sees a newer version.
    std::atomic_thread_fence(std::memory_order_acquire);
    // relaxed: ordered by the fence above.
    if ((v1 & 1) == 0 && header_->trie_version.load(std::memory_order_relaxed) == v1) {
      break;
    }
    std::this_thread::yield();
  }
  return out;
}

// --- lock-free matching ------------------------------------------------------

Matcher::Matcher(const BusCore& core) : core_(core) {
  const SegmentHeader& h = core.header();
  levels_.resize(h.max_topic_bytes + 1);
  hashes_.resize(h.max_topic_bytes + 1);
  stack_.resize(std::size_t{2} * (h.max_topic_bytes + 2));
  seen_.resize((h.max_listeners + 63) / 64);
}

bool Matcher::collect(std::uint32_t node, RouteTarget* out, std::uint32_t* count) {
  const SegmentHeader& h = core_.header();
  // relaxed, for every read of the trie here: seqlock-protected, see trie.hpp.
  std::uint32_t s = core_.node(node).subs_head.load(std::memory_order_relaxed);
  while (s != kNone) {
    if (s >= h.subscriptions || budget_-- == 0) {
      return false;
    }
    const SubRecord& r = core_.sub(s);
    const std::uint32_t l = r.listener.load(std::memory_order_relaxed);
    if (l >= h.max_listeners) {
      return false;
    }
    const std::uint64_t bit = 1ULL << (l % 64);
    if ((seen_[l / 64] & bit) == 0) {
      seen_[l / 64] |= bit;
      out[(*count)++] = RouteTarget{l, r.generation.load(std::memory_order_relaxed)};
    }
    s = r.next_in_node.load(std::memory_order_relaxed);
  }
  return true;
}

bool Matcher::walk(std::uint32_t nlevels, bool dollar, RouteTarget* out, std::uint32_t* count) {
  const SegmentHeader& h = core_.header();
  std::size_t top = 0;
  stack_[top++] = Frame{0, 0};
  while (top > 0) {
    const Frame f = stack_[--top];
    if (f.node >= h.trie_nodes || budget_-- == 0) {
      return false;
    }
    const TrieNode& t = core_.node(f.node);
    const std::uint32_t hash_child = t.hash_child.load(std::memory_order_relaxed);
    const bool wild_ok = !(dollar && f.level == 0);  // '$' topics skip leading wildcards
    if (hash_child != kNone && wild_ok) {
      if (hash_child >= h.trie_nodes || !collect(hash_child, out, count)) {
        return false;
      }
    }
    if (f.level == nlevels) {
      if (!collect(f.node, out, count)) {
        return false;
      }
      continue;
    }
    if (top + 2 > stack_.size()) {
      return false;
    }
    const std::uint32_t plus = t.plus_child.load(std::memory_order_relaxed);
    if (plus != kNone && wild_ok) {
      stack_[top++] = Frame{plus, f.level + 1};
    }
    const std::uint32_t lit = core_.find_child(f.node, levels_[f.level], hashes_[f.level]);
    if (lit != kNone) {
      stack_[top++] = Frame{lit, f.level + 1};
    }
  }
  return true;
}

std::uint32_t Matcher::match(std::string_view topic, RouteTarget* out, std::uint64_t* version) {
  const SegmentHeader& h = core_.header();
  std::uint32_t nlevels = 0;
  std::size_t start = 0;
  for (;;) {
    const std::size_t slash = topic.find('/', start);
    const std::string_view l = topic.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    levels_[nlevels] = l;
    hashes_[nlevels] = fnv1a(l);
    ++nlevels;
    if (slash == std::string_view::npos || nlevels == levels_.size()) {
      break;
    }
    start = slash + 1;
  }
  const bool dollar = !topic.empty() && topic[0] == '$';

  for (std::uint32_t attempt = 0;; ++attempt) {
    // SYNC(trie): acquire pairs with the writer's release store of the even
    // version: the trie as of that version is visible.
    const std::uint64_t v1 = h.trie_version.load(std::memory_order_acquire);
    if ((v1 & 1) != 0) {
      // LIMIT: a writer that died mid-change leaves the version odd until
      // the next writer repairs the trie (repair_trie); until then
      // publishers of uncached topics spin here.
      if (attempt > 64) {
        sched_yield();
      }
      cpu_relax();
      continue;
    }
    std::fill(seen_.begin(), seen_.end(), 0);
    budget_ = h.trie_nodes + h.subscriptions + 8;
    std::uint32_t count = 0;
    const bool complete = walk(nlevels, dollar, out, &count);
    // SYNC(trie-begin): the acquire fence pairs with the writer's release
    // fence in TrieWriter::begin(): if we read anything a writer changed, the
    // load below sees its odd (or a later) version.
    std::atomic_thread_fence(std::memory_order_acquire);
    // relaxed: ordered by the fence above.
    const std::uint64_t v2 = h.trie_version.load(std::memory_order_relaxed);
    if (v1 == v2 && complete) {
      *version = v1;
      return count;
    }
    if (v1 == v2) {
      // The walk hit a bad index with no writer active: the segment is
      // corrupt. Deliver what was found rather than spin.
      *version = v1;
      return count;
    }
  }
}

}  // namespace ipcbus::detail
