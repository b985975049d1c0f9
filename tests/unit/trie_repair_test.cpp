// trie_repair_test.cpp: unit tests of repair_trie, the rebuild of the topic
// trie after a writer died holding the trie mutex.
//
// Each test builds a trie of a few hundred random subscriptions over several
// listeners, damages it through BusCore as a writer killed between two of its
// stores would have left it (or worse: cycles, stray indices), repairs it and
// checks that (1) every topic matches the listeners the subscriptions still
// held say, (2) the trie's links, lists, free lists and gauges agree, (3) its
// refcounts and gauges equal those of a fresh trie of the same subscriptions,
// and (4) unsubscribing everything brings it back to the root alone.
// multiproc/trie_crash_test.cpp kills real writers.
//
// The random filters print their seed; set IPCBUS_TRIE_SEED to replay one.
#include <gtest/gtest.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "test_bus.hpp"
#include "trie.hpp"
#include "trie_check.hpp"

namespace ipcbus {
namespace {

using detail::kNone;
using test::Held;
using test::TestBus;

constexpr std::uint32_t kListeners = 6;
constexpr std::size_t kSubscriptions = 300;

Config repair_config() {
  Config c = test::small_config();
  c.trie_nodes = 4096;
  c.subscriptions = 1024;
  return c;
}

std::uint32_t seed_for_test() {
  const char* env = std::getenv("IPCBUS_TRIE_SEED");
  const std::uint32_t seed = env != nullptr
                                 ? static_cast<std::uint32_t>(std::strtoul(env, nullptr, 10))
                                 : std::random_device{}();
  std::cout << "seed " << seed << " (IPCBUS_TRIE_SEED)\n";
  return seed;
}

const std::vector<std::string>& words() {
  static const std::vector<std::string> w = {"a", "b", "c", "dd", "", "$s"};
  return w;
}

// Every topic of up to four levels over words() ('$s' only leads).
const std::vector<std::string>& topics() {
  static const std::vector<std::string> t = [] {
    std::vector<std::string> out;
    for (const std::string& topic : test::all_topics(words(), 4)) {
      if (topic.find("$s", 1) == std::string::npos) {
        out.push_back(topic);
      }
    }
    return out;
  }();
  return t;
}

// relaxed, for every access through these two: the tests play a writer that
// holds the trie, with no reader or other writer running.
template <class T>
T get(const std::atomic<T>& a) {
  return a.load(std::memory_order_relaxed);
}
template <class T, class V>
void put(std::atomic<T>& a, V v) {
  a.store(static_cast<T>(v), std::memory_order_relaxed);
}

class TrieRepair : public ::testing::Test {
 protected:
  TrieRepair() : tb_(repair_config()), rng_(seed_for_test()) {}

  void SetUp() override {
    for (std::uint32_t i = 0; i < kListeners; ++i) {
      ls_.push_back(tb_.listen(""));
      ASSERT_EQ(ls_.back().index(), i) << "the fresh trie relies on slots taken in order";
    }
    ASSERT_TRUE(ls_[0].subscribe("a/b"));  // so that node "a" is there to hang damage on
    held_.emplace(0, "a/b");
    while (held_.size() < kSubscriptions) {
      const std::uint32_t l = static_cast<std::uint32_t>(rng_() % kListeners);
      const std::string f = random_filter();
      ASSERT_TRUE(ls_[l].subscribe(f)) << f;
      held_.emplace(l, f);
    }
    ASSERT_EQ(test::check_matching(core(), held_, topics()), "") << "before any damage";
    ASSERT_EQ(test::check_structure(core()), "") << "before any damage";
    version_before_ = get(h().trie_version);
  }

  std::string random_filter() {
    std::string f;
    const std::uint32_t n = 1 + rng_() % 5;
    for (std::uint32_t i = 0; i < n; ++i) {
      const std::uint32_t r = rng_() % 8;
      std::string l = r == 0 ? "+" : (r == 1 && i + 1 == n) ? "#" : words()[rng_() % 5];
      if (i == 0 && rng_() % 10 == 0) {
        l = "$s";
      }
      f += (i == 0 ? "" : "/") + l;
    }
    return f.empty() ? "+" : f;  // an empty filter is invalid
  }

  detail::BusCore& core() { return tb_.core(); }
  detail::SegmentHeader& h() { return core().header(); }
  detail::TrieNode& node(std::uint32_t n) { return core().node(n); }
  detail::SubRecord& sub(std::uint32_t s) { return core().sub(s); }
  std::uint32_t gen(std::uint32_t l) { return ls_[l].generation(); }

  // --- a writer's steps, as trie.cpp takes them ---------------------------
  void make_version_odd() { put(h().trie_version, get(h().trie_version) | 1); }
  std::uint32_t take_node() {
    const std::uint32_t n = get(h().node_free_head);
    put(h().node_free_head, get(node(n).next_free));
    put(h().nodes_used, get(h().nodes_used) + 1);
    return n;
  }
  void write_node(std::uint32_t n, std::uint32_t parent, const std::string& label) {
    detail::TrieNode& t = node(n);
    put(t.parent, parent);
    put(t.plus_child, kNone);
    put(t.hash_child, kNone);
    put(t.subs_head, kNone);
    put(t.refcount, 0);
    put(t.label_len, label.size());
    put(t.label_hash, detail::fnv1a(label));
    std::copy(label.begin(), label.end(), const_cast<char*>(core().node_label(n)));
    put(t.kind, label == "+"   ? detail::kNodePlus
                : label == "#" ? detail::kNodeHash
                               : detail::kNodeLiteral);
  }
  void insert_edge(std::uint32_t parent, std::uint32_t child, std::uint64_t word) {
    const std::uint32_t mask = h().edge_count - 1;
    std::uint64_t i = detail::edge_slot(parent, get(node(child).label_hash));
    for (;; ++i) {
      std::atomic<std::uint64_t>& e = core().edge(static_cast<std::uint32_t>(i & mask));
      if (get(e) == detail::kEdgeEmpty) {
        put(e, word);
        return;
      }
    }
  }
  void link_node(std::uint32_t n) {
    const std::uint32_t parent = get(node(n).parent);
    switch (get(node(n).kind)) {
      case detail::kNodePlus:
        put(node(parent).plus_child, n);
        break;
      case detail::kNodeHash:
        put(node(parent).hash_child, n);
        break;
      default:
        insert_edge(parent, n, detail::edge_key(parent, n));
    }
  }
  // The edge word of literal node n, as find_child probes for it.
  std::atomic<std::uint64_t>& edge_of(std::uint32_t n) {
    const std::uint32_t parent = get(node(n).parent);
    const std::uint32_t mask = h().edge_count - 1;
    std::uint64_t i = detail::edge_slot(parent, get(node(n).label_hash));
    for (std::uint32_t probes = 0;; ++probes, ++i) {
      std::atomic<std::uint64_t>& e = core().edge(static_cast<std::uint32_t>(i & mask));
      if (get(e) == detail::edge_key(parent, n) || probes > h().edge_count) {
        return e;
      }
    }
  }
  std::uint32_t take_sub() {
    const std::uint32_t s = get(h().sub_free_head);
    put(h().sub_free_head, get(sub(s).next_free));
    put(h().subs_used, get(h().subs_used) + 1);
    return s;
  }
  void write_sub(std::uint32_t s, std::uint32_t n, std::uint32_t l) {
    put(sub(s).node, n);
    put(sub(s).listener, l);
    put(sub(s).generation, gen(l));
    put(sub(s).next_in_node, get(node(n).subs_head));
  }
  void link_in_node(std::uint32_t s) { put(node(get(sub(s).node)).subs_head, s); }
  void link_in_listener(std::uint32_t s) {
    detail::ListenerSlot& ls = core().slot(get(sub(s).listener));
    put(sub(s).next_in_listener, get(ls.subs_head));
    put(ls.subs_head, s);
  }
  void unlink(std::atomic<std::uint32_t>& head, std::uint32_t s,
              std::atomic<std::uint32_t> detail::SubRecord::*next) {
    std::atomic<std::uint32_t>* link = &head;
    while (get(*link) != s) {
      link = &(sub(get(*link)).*next);
    }
    put(*link, get(sub(s).*next));
  }
  void free_sub(std::uint32_t s) {
    put(sub(s).node, kNone);
    put(sub(s).listener, kNone);
    put(sub(s).next_free, get(h().sub_free_head));
    put(h().sub_free_head, s);
    put(h().subs_used, get(h().subs_used) - 1);
  }
  void free_node(std::uint32_t n) {
    put(node(n).kind, detail::kNodeFree);
    put(node(n).parent, kNone);
    put(node(n).next_free, get(h().node_free_head));
    put(h().node_free_head, n);
    put(h().nodes_used, get(h().nodes_used) - 1);
  }

  // The node of filter f, kNone when the trie has none.
  std::uint32_t node_of(const std::string& f) {
    std::uint32_t n = 0;
    for (const std::string& l : test::split_levels(f)) {
      n = l == "+"   ? get(node(n).plus_child)
          : l == "#" ? get(node(n).hash_child)
                     : core().find_child(n, l, detail::fnv1a(l));
      if (n == kNone) {
        break;
      }
    }
    return n;
  }
  // The record of (listener l, filter f).
  std::uint32_t record_of(std::uint32_t l, const std::string& f) {
    const std::uint32_t n = node_of(f);
    for (std::uint32_t s = get(node(n).subs_head); s != kNone; s = get(sub(s).next_in_node)) {
      if (get(sub(s).listener) == l) {
        return s;
      }
    }
    return kNone;
  }
  // A held filter of a leaf held once, at least `levels` deep and literal
  // throughout, or "" if none.
  std::string lone_literal_leaf(std::uint32_t levels, std::uint32_t* listener) {
    for (const auto& [l, f] : held_) {
      if (test::split_levels(f).size() >= levels && f.find_first_of("+#") == std::string::npos &&
          get(node(node_of(f)).refcount) == 1) {
        *listener = l;
        return f;
      }
    }
    return "";
  }

  // --- the checks ------------------------------------------------------------
  // After a repair: the trie answers as `want` says, is whole, equals a fresh
  // trie of `want` and has moved to a new even version.
  void expect_repaired(const Held& want) {
    EXPECT_EQ(test::check_matching(core(), want, topics()), "");
    EXPECT_EQ(test::check_structure(core()), "");
    TestBus fresh(repair_config());
    std::vector<Listener> fls;
    for (std::uint32_t i = 0; i < kListeners; ++i) {
      fls.push_back(fresh.listen(""));
      ASSERT_EQ(fls.back().index(), i);
    }
    for (const auto& [l, f] : want) {
      ASSERT_TRUE(fls[l].subscribe(f)) << f;
    }
    const detail::SegmentHeader& fh = fresh.core().header();
    EXPECT_EQ(get(h().nodes_used), get(fh.nodes_used));
    EXPECT_EQ(get(h().nodes_used), test::nodes_for(want));
    EXPECT_EQ(get(h().subs_used), get(fh.subs_used));
    EXPECT_EQ(get(h().edge_tombstones), get(fh.edge_tombstones));
    EXPECT_TRUE(test::view_of(core()) == test::view_of(fresh.core()))
        << "kinds, refcounts or record lists differ from a fresh trie";
    const std::uint64_t v = get(h().trie_version);
    EXPECT_EQ(v % 2, 0U);
    EXPECT_GT(v, version_before_);
    version_before_ = v;
    for (std::uint32_t i = 0; i < kListeners; ++i) {
      std::set<std::string> mine;
      for (const auto& [l, f] : want) {
        if (l == i) {
          mine.insert(f);
        }
      }
      const std::vector<std::string> got = core().filters_of(i);
      EXPECT_EQ(std::set<std::string>(got.begin(), got.end()), mine) << "listener " << i;
      EXPECT_EQ(got.size(), mine.size()) << "listener " << i;
    }
  }
  // Unsubscribing all of `want` leaves the root alone and every record free.
  void expect_all_unsubscribe(const Held& want) {
    for (const auto& [l, f] : want) {
      EXPECT_TRUE(core().unsubscribe(l, f)) << l << " " << f;
    }
    EXPECT_EQ(get(h().nodes_used), 1U);
    EXPECT_EQ(get(h().subs_used), 0U);
    EXPECT_EQ(test::check_structure(core()), "");
    EXPECT_EQ(test::check_matching(core(), {}, topics()), "");
  }

  TestBus tb_;
  std::mt19937 rng_;
  std::vector<Listener> ls_;
  Held held_;
  std::uint64_t version_before_ = 0;
};

// --- nodes ----------------------------------------------------------------------

TEST_F(TrieRepair, NodeTakenFromTheFreeListButNotLinkedIsFreed) {
  make_version_odd();
  const std::uint32_t n = take_node();
  write_node(n, node_of("a"), "zz");

  const detail::TrieRepairCounts r = detail::repair_trie(core());

  EXPECT_TRUE(r.version_was_odd);
  EXPECT_EQ(r.nodes_freed, 1U);
  EXPECT_EQ(r.subs_dropped, 0U);
  EXPECT_TRUE(r.gauges_fixed);
  EXPECT_EQ(get(node(n).kind), detail::kNodeFree);
  expect_repaired(held_);
  expect_all_unsubscribe(held_);
}

TEST_F(TrieRepair, NodeTakenButNotCountedIsFreed) {
  make_version_odd();
  const std::uint32_t n = get(h().node_free_head);  // alloc_node died before the gauge
  put(h().node_free_head, get(node(n).next_free));

  const detail::TrieRepairCounts r = detail::repair_trie(core());

  EXPECT_EQ(r.nodes_freed, 1U);
  expect_repaired(held_);
  expect_all_unsubscribe(held_);
}

TEST_F(TrieRepair, NodesLinkedWithRefcountZeroAreUnlinkedAndFreed) {
  make_version_odd();
  const std::uint32_t lit = take_node();
  write_node(lit, 0, "fresh");
  link_node(lit);
  const std::uint32_t plus = take_node();
  write_node(plus, lit, "+");
  link_node(plus);
  const std::uint32_t hash = take_node();
  write_node(hash, node_of("a"), "#");
  const bool a_had_hash = get(node(node_of("a")).hash_child) != kNone;
  if (!a_had_hash) {
    link_node(hash);
  }
  ASSERT_EQ(node_of("fresh/+"), plus);

  const detail::TrieRepairCounts r = detail::repair_trie(core());

  EXPECT_EQ(r.nodes_freed, 3U);
  EXPECT_EQ(r.edges_removed, 1U);
  EXPECT_EQ(r.links_fixed, a_had_hash ? 0U : 1U);  // links of freed nodes do not count
  EXPECT_EQ(node_of("fresh"), kNone);
  expect_repaired(held_);
  expect_all_unsubscribe(held_);
}

TEST_F(TrieRepair, TwinNodesAreMergedWithTheirRecords) {
  // Not a dead writer's doing (it links a node only where none was found),
  // but the repair must not keep two children with one label.
  std::uint32_t owner = 0;
  const std::string f = lone_literal_leaf(2, &owner);
  ASSERT_NE(f, "") << "no literal leaf held once";
  const std::uint32_t other = (owner + 1) % kListeners;
  const std::uint32_t original = node_of(f);
  const std::uint32_t owners_record = record_of(owner, f);
  make_version_odd();
  const std::uint32_t twin = take_node();
  const std::vector<std::string> levels = test::split_levels(f);
  write_node(twin, get(node(original).parent), levels.back());
  const std::uint32_t s = take_sub();
  write_sub(s, twin, other);
  link_in_node(s);
  link_in_listener(s);
  put(core().slot(other).filter_count, get(core().slot(other).filter_count) + 1);
  for (std::uint32_t m = twin; m != kNone; m = get(node(m).parent)) {
    put(node(m).refcount, get(node(m).refcount) + 1);
  }
  Held want = held_;
  want.emplace(other, f);

  const detail::TrieRepairCounts r = detail::repair_trie(core());

  EXPECT_EQ(r.nodes_merged, 1U);
  EXPECT_EQ(get(sub(s).node), get(sub(owners_record).node));  // one of the two stands for both
  expect_repaired(want);
  expect_all_unsubscribe(want);
}

// --- refcounts on a path ------------------------------------------------------------

TEST_F(TrieRepair, SubscribeThatDiedRaisingRefcountsKeepsItsRecord) {
  // The record is on both lists, so the subscription stands; the dead writer
  // raised the refcounts of only the first `raised` nodes of the path.
  const std::uint32_t l = 2;
  const std::string f = "dd/c/+/new/leaf";
  for (std::uint32_t raised = 0; raised <= 6; ++raised) {
    SCOPED_TRACE("raised " + std::to_string(raised));
    ASSERT_TRUE(core().subscribe(l, gen(l), f));
    std::vector<std::uint32_t> path;
    for (std::uint32_t m = node_of(f); m != kNone; m = get(node(m).parent)) {
      path.push_back(m);  // leaf first, root last: the order refcounts go up
    }
    ASSERT_EQ(path.size(), 6U);
    make_version_odd();
    for (std::size_t k = raised; k < path.size(); ++k) {
      put(node(path[k]).refcount, get(node(path[k]).refcount) - 1);
    }
    if (raised == 0) {
      put(core().slot(l).filter_count, get(core().slot(l).filter_count) - 1);
    }
    Held want = held_;
    want.emplace(l, f);

    const detail::TrieRepairCounts r = detail::repair_trie(core());

    EXPECT_EQ(r.refcounts_fixed, 6U - raised);
    EXPECT_EQ(r.subs_dropped, 0U);
    expect_repaired(want);
    ASSERT_TRUE(core().unsubscribe(l, f));
  }
  expect_all_unsubscribe(held_);
}

TEST_F(TrieRepair, UnsubscribeThatDiedAfterPruningALeafFreesTheRestOfTheBranch) {
  // remove_sub died in its refcount walk: the record is freed, the leaf's
  // refcount dropped and the leaf pruned; its ancestors were not reached.
  std::uint32_t l = 0;
  const std::string f = "b/dd/fresh/leaf";
  Held with = held_;
  with.emplace(l, f);
  const std::uint32_t own = test::nodes_for(with) - test::nodes_for(held_);  // fresh, leaf, ...
  ASSERT_TRUE(core().subscribe(l, gen(l), f));
  const std::uint32_t s = record_of(l, f);
  const std::uint32_t leaf = node_of(f);
  make_version_odd();
  unlink(node(leaf).subs_head, s, &detail::SubRecord::next_in_node);
  unlink(core().slot(l).subs_head, s, &detail::SubRecord::next_in_listener);
  put(core().slot(l).filter_count, get(core().slot(l).filter_count) - 1);
  free_sub(s);
  put(node(leaf).refcount, 0);
  put(edge_of(leaf), detail::kEdgeTomb);
  put(h().edge_tombstones, get(h().edge_tombstones) + 1);
  free_node(leaf);

  const detail::TrieRepairCounts r = detail::repair_trie(core());

  // The nodes of f no other filter needs, but the leaf, had refcount 1 and
  // nothing below; the others on the path (the root at least) one too many.
  EXPECT_EQ(r.nodes_freed, own - 1);
  EXPECT_EQ(r.edges_removed, own - 1);
  EXPECT_EQ(r.refcounts_fixed, 5 - own);
  EXPECT_EQ(r.subs_dropped, 0U);
  EXPECT_EQ(node_of("b/dd/fresh"), kNone);
  expect_repaired(held_);
  expect_all_unsubscribe(held_);
}

TEST_F(TrieRepair, UnsubscribeThatDiedHalfWayDownTheRefcountsKeepsTheOthers) {
  std::uint32_t l = 0;
  const std::string f = lone_literal_leaf(3, &l);
  ASSERT_NE(f, "") << "no literal leaf held once";
  const std::uint32_t s = record_of(l, f);
  const std::uint32_t leaf = node_of(f);
  make_version_odd();
  unlink(node(leaf).subs_head, s, &detail::SubRecord::next_in_node);
  unlink(core().slot(l).subs_head, s, &detail::SubRecord::next_in_listener);
  put(core().slot(l).filter_count, get(core().slot(l).filter_count) - 1);
  free_sub(s);
  // Only the leaf's refcount dropped; pruning it had not begun.
  put(node(leaf).refcount, 0);
  Held want = held_;
  want.erase({l, f});

  const detail::TrieRepairCounts r = detail::repair_trie(core());

  EXPECT_GE(r.nodes_freed, 1U);
  EXPECT_GE(r.edges_removed, 1U);
  expect_repaired(want);
  expect_all_unsubscribe(want);
}

// --- edges ----------------------------------------------------------------------------

TEST_F(TrieRepair, EdgeTableClearedByADeadRebuildIsRebuilt) {
  make_version_odd();
  std::uint32_t words_before = 0;
  for (std::uint32_t i = 0; i < h().edge_count; ++i) {
    words_before += get(core().edge(i)) != detail::kEdgeEmpty ? 1 : 0;
    put(core().edge(i), detail::kEdgeEmpty);
  }
  put(h().edge_tombstones, 0);
  ASSERT_GT(words_before, 10U);

  const detail::TrieRepairCounts r = detail::repair_trie(core());

  EXPECT_EQ(r.edges_added, words_before);
  EXPECT_EQ(r.edges_removed, 0U);
  expect_repaired(held_);
  expect_all_unsubscribe(held_);
}

TEST_F(TrieRepair, EdgeTableHalfClearedIsRebuilt) {
  make_version_odd();
  std::uint32_t cleared = 0;
  for (std::uint32_t i = 0; i < h().edge_count / 2; ++i) {
    cleared += get(core().edge(i)) != detail::kEdgeEmpty ? 1 : 0;
    put(core().edge(i), detail::kEdgeEmpty);
  }
  ASSERT_GT(cleared, 0U);

  const detail::TrieRepairCounts r = detail::repair_trie(core());

  EXPECT_EQ(r.edges_added, cleared);
  expect_repaired(held_);
  expect_all_unsubscribe(held_);
}

TEST_F(TrieRepair, StrayAndUncountedEdgesAreDropped) {
  std::uint32_t l = 0;
  const std::string f = lone_literal_leaf(2, &l);
  ASSERT_NE(f, "");
  make_version_odd();
  // remove_edge died before counting its tombstone, on a node still in use.
  put(edge_of(node_of(f)), detail::kEdgeTomb);
  // Words naming a free node, a child out of range and a parent out of range.
  const std::uint32_t free_node_index = get(h().node_free_head);
  write_node(free_node_index, 0, "ghost");
  insert_edge(0, free_node_index, detail::edge_key(0, free_node_index));
  put(node(free_node_index).kind, detail::kNodeFree);
  insert_edge(0, node_of("a"), detail::edge_key(0, h().trie_nodes + 7));
  insert_edge(0, node_of("a"), detail::edge_key(h().trie_nodes + 3, node_of("a")));

  const detail::TrieRepairCounts r = detail::repair_trie(core());

  EXPECT_EQ(r.edges_added, 1U);
  EXPECT_EQ(r.edges_removed, 3U);
  expect_repaired(held_);
  expect_all_unsubscribe(held_);
}

// --- subscription records ----------------------------------------------------------------

TEST_F(TrieRepair, RecordTakenButOnNoListIsFreed) {
  make_version_odd();
  const std::uint32_t s = take_sub();
  write_sub(s, node_of(held_.begin()->second), 5);

  const detail::TrieRepairCounts r = detail::repair_trie(core());

  EXPECT_EQ(r.subs_dropped, 1U);
  EXPECT_EQ(get(sub(s).listener), kNone);
  expect_repaired(held_);
  expect_all_unsubscribe(held_);
}

TEST_F(TrieRepair, RecordTakenButNotCountedIsFreed) {
  make_version_odd();
  const std::uint32_t s = get(h().sub_free_head);  // alloc_sub died before the gauge
  put(h().sub_free_head, get(sub(s).next_free));

  const detail::TrieRepairCounts r = detail::repair_trie(core());

  EXPECT_EQ(r.subs_dropped, 1U);
  expect_repaired(held_);
  expect_all_unsubscribe(held_);
}

TEST_F(TrieRepair, RecordOnItsNodesListOnlyIsDroppedAndMatchesNothing) {
  // A listener that holds no filter ending at that node, so that the record
  // would route topics to it if the repair kept it.
  std::uint32_t n = kNone;
  std::uint32_t l = kNone;
  for (const auto& [holder, f] : held_) {
    for (std::uint32_t other = 0; other < kListeners && l == kNone; ++other) {
      if (held_.count({other, f}) == 0) {
        n = node_of(f);
        l = other;
      }
    }
    if (l != kNone) {
      break;
    }
  }
  ASSERT_NE(l, kNone);
  make_version_odd();
  const std::uint32_t s = take_sub();
  write_sub(s, n, l);
  link_in_node(s);

  const detail::TrieRepairCounts r = detail::repair_trie(core());

  EXPECT_EQ(r.subs_dropped, 1U);
  expect_repaired(held_);
  expect_all_unsubscribe(held_);
}

TEST_F(TrieRepair, RecordOffTheNodesListButStillTheListenersIsKept) {
  // remove_sub died between its two unlinks: the unsubscribe did not happen.
  std::uint32_t l = 0;
  const std::string f = lone_literal_leaf(1, &l);
  ASSERT_NE(f, "");
  const std::uint32_t s = record_of(l, f);
  make_version_odd();
  unlink(node(node_of(f)).subs_head, s, &detail::SubRecord::next_in_node);

  const detail::TrieRepairCounts r = detail::repair_trie(core());

  EXPECT_EQ(r.subs_dropped, 0U);
  EXPECT_EQ(r.subs_kept, held_.size());
  expect_repaired(held_);
  expect_all_unsubscribe(held_);
}

TEST_F(TrieRepair, RecordOnNoListButNotYetFreedIsFreed) {
  // remove_sub died after both unlinks, before free_sub.
  std::uint32_t l = 0;
  const std::string f = lone_literal_leaf(1, &l);
  ASSERT_NE(f, "");
  const std::uint32_t s = record_of(l, f);
  make_version_odd();
  unlink(node(node_of(f)).subs_head, s, &detail::SubRecord::next_in_node);
  unlink(core().slot(l).subs_head, s, &detail::SubRecord::next_in_listener);
  Held want = held_;
  want.erase({l, f});

  const detail::TrieRepairCounts r = detail::repair_trie(core());

  EXPECT_EQ(r.subs_dropped, 1U);
  expect_repaired(want);
  expect_all_unsubscribe(want);
}

TEST_F(TrieRepair, FreeListHeadsNamingEntriesInUseAreRebuilt) {
  const std::uint32_t used_record = record_of(held_.begin()->first, held_.begin()->second);
  const std::uint32_t used_node = node_of(held_.begin()->second);
  make_version_odd();
  put(h().sub_free_head, used_record);
  put(h().node_free_head, used_node);

  const detail::TrieRepairCounts r = detail::repair_trie(core());

  EXPECT_GE(r.subs_on_free_list, 1U);
  expect_repaired(held_);
  // The rebuilt free lists hand out only free entries: a hundred more
  // subscriptions leave the first ones whole.
  Held want = held_;
  while (want.size() < held_.size() + 100) {
    const std::uint32_t l = static_cast<std::uint32_t>(rng_() % kListeners);
    const std::string f = "more/" + random_filter();
    ASSERT_TRUE(core().subscribe(l, gen(l), f)) << f;
    want.emplace(l, f);
  }
  EXPECT_EQ(test::check_matching(core(), want, topics()), "");
  EXPECT_EQ(test::check_structure(core()), "");
  expect_all_unsubscribe(want);
}

TEST_F(TrieRepair, VersionLeftOddAloneIsClosedWithNothingElseChanged) {
  make_version_odd();
  const test::TrieView before = test::view_of(core());

  const detail::TrieRepairCounts r = detail::repair_trie(core());

  EXPECT_TRUE(r.version_was_odd);
  EXPECT_EQ(r.subs_kept, held_.size());
  EXPECT_EQ(r.subs_dropped + r.subs_on_free_list + r.nodes_freed + r.nodes_merged +
                r.refcounts_fixed + r.edges_added + r.edges_removed + r.links_fixed,
            0U);
  EXPECT_FALSE(r.gauges_fixed);
  EXPECT_TRUE(test::view_of(core()) == before);
  expect_repaired(held_);
  expect_all_unsubscribe(held_);
}

// --- which listeners count ---------------------------------------------------------------

TEST_F(TrieRepair, RecordsOfFreeSlotsAndOfOldGenerationsAreDropped) {
  const std::uint32_t freed = 1;
  const std::uint32_t reclaimed = 2;
  std::uint32_t lost = 0;
  Held want;
  for (const auto& [l, f] : held_) {
    if (l == freed || l == reclaimed) {
      ++lost;
    } else {
      want.emplace(l, f);
    }
  }
  ASSERT_GT(lost, 0U);
  make_version_odd();
  detail::ListenerSlot& fs = core().slot(freed);
  // relaxed: no other thread uses these slots.
  fs.state.store(detail::make_state_word(gen(freed), 0), std::memory_order_relaxed);
  detail::ListenerSlot& rs = core().slot(reclaimed);
  // relaxed: as above; Active under the next generation.
  rs.state.store(detail::make_state_word(gen(reclaimed) + 1, 1), std::memory_order_relaxed);

  const detail::TrieRepairCounts r = detail::repair_trie(core());

  EXPECT_EQ(r.subs_dropped, lost);
  EXPECT_EQ(get(fs.subs_head), kNone);
  EXPECT_EQ(get(rs.subs_head), kNone);
  EXPECT_EQ(get(rs.filter_count), 0U);
  expect_repaired(want);
  expect_all_unsubscribe(want);
}

// --- corrupt links ----------------------------------------------------------------------

TEST_F(TrieRepair, CyclesAndIndicesOutOfRangeEndTheirWalks) {
  Held want = held_;
  // Listener 0: its last record points back to its first (a cycle).
  std::vector<std::uint32_t> list0;
  for (std::uint32_t s = get(core().slot(0).subs_head); s != kNone;
       s = get(sub(s).next_in_listener)) {
    list0.push_back(s);
  }
  // Listener 1: the link after its second record goes out of range; the
  // records after it are lost.
  std::vector<std::uint32_t> list1;
  for (std::uint32_t s = get(core().slot(1).subs_head); s != kNone;
       s = get(sub(s).next_in_listener)) {
    list1.push_back(s);
  }
  ASSERT_GE(list0.size(), 2U);
  ASSERT_GE(list1.size(), 4U);
  const std::vector<std::string> filters1 = core().filters_of(1);  // in list order
  for (std::size_t k = 2; k < filters1.size(); ++k) {
    want.erase({1, filters1[k]});
  }
  // Listener 3: its first record names a node out of range.
  const std::vector<std::string> filters3 = core().filters_of(3);
  ASSERT_FALSE(filters3.empty());
  want.erase({3, filters3[0]});
  const std::uint32_t first3 = get(core().slot(3).subs_head);
  // Two garbage nodes in use whose parents name each other, and one whose
  // parent is out of range.
  make_version_odd();
  put(sub(list0.back()).next_in_listener, list0.front());
  put(sub(list1[1]).next_in_listener, h().subscriptions + 11);
  put(sub(first3).node, h().trie_nodes + 5);
  const std::uint32_t x = take_node();
  const std::uint32_t y = take_node();
  const std::uint32_t z = take_node();
  write_node(x, y, "x");
  write_node(y, x, "y");
  write_node(z, h().trie_nodes + 9, "z");
  // A node list that cycles, and free lists that cycle.
  const std::uint32_t n = node_of(held_.begin()->second);
  const std::uint32_t s = get(node(n).subs_head);
  put(sub(s).next_in_node, s);
  const std::uint32_t fn = get(h().node_free_head);
  put(node(get(node(fn).next_free)).next_free, fn);
  const std::uint32_t fs = get(h().sub_free_head);
  put(sub(get(sub(fs).next_free)).next_free, fs);

  const detail::TrieRepairCounts r = detail::repair_trie(core());

  EXPECT_EQ(r.subs_kept, want.size());
  EXPECT_GE(r.nodes_freed, 3U);
  expect_repaired(want);
  expect_all_unsubscribe(want);
}

// --- everything at once, and through TrieWriter ------------------------------------------

TEST_F(TrieRepair, EveryKindOfDamageAtOnceIsRepaired) {
  std::uint32_t l = 0;
  const std::string gone = lone_literal_leaf(2, &l);
  ASSERT_NE(gone, "");
  Held want = held_;
  want.erase({l, gone});
  // Indices found before the damage, while find_child still finds them.
  const std::uint32_t s_gone = record_of(l, gone);
  const std::uint32_t gone_node = node_of(gone);
  const auto& [kept_l, kept_f] = *want.rbegin();
  const std::uint32_t kept_record = record_of(kept_l, kept_f);
  const std::uint32_t kept_node = node_of(kept_f);
  const std::uint32_t some_node = node_of(want.begin()->second);
  make_version_odd();
  unlink(node(gone_node).subs_head, s_gone, &detail::SubRecord::next_in_node);
  unlink(core().slot(l).subs_head, s_gone, &detail::SubRecord::next_in_listener);
  const std::uint32_t loose = take_node();
  write_node(loose, 0, "loose");
  link_node(loose);
  const std::uint32_t unlinked = take_node();
  write_node(unlinked, loose, "+");
  const std::uint32_t half = take_sub();
  write_sub(half, some_node, 4);
  link_in_node(half);
  for (std::uint32_t i = 0; i < h().edge_count; i += 3) {
    put(core().edge(i), detail::kEdgeEmpty);
  }
  for (std::uint32_t m = kept_node; m != kNone; m = get(node(m).parent)) {
    put(node(m).refcount, get(node(m).refcount) + 7);
  }
  put(h().sub_free_head, kept_record);
  put(h().edge_tombstones, 99);

  const detail::TrieRepairCounts r = detail::repair_trie(core());

  EXPECT_EQ(r.subs_kept, want.size());
  EXPECT_GE(r.nodes_freed, 2U);
  expect_repaired(want);
  expect_all_unsubscribe(want);
}

TEST_F(TrieRepair, NextWriterRepairsWhenTheLastOneDiedHoldingTheMutex) {
  const std::size_t errors_before = tb_.bus().inspect().errors.size();
  const std::uint32_t half = [&] {
    std::uint32_t s = kNone;
    // A thread that ends holding the robust mutex leaves it owner-dead, as
    // a killed process does.
    std::thread writer([&] {
      ASSERT_EQ(pthread_mutex_lock(&h().trie_mutex), 0);
      make_version_odd();
      const std::uint32_t n = take_node();
      write_node(n, 0, "dying");
      link_node(n);
      s = take_sub();
      write_sub(s, n, 3);
      link_in_node(s);
    });
    writer.join();
    return s;
  }();
  ASSERT_NE(half, kNone);

  ASSERT_TRUE(ls_[0].subscribe("after/the/repair"));

  Held want = held_;
  want.emplace(0, "after/the/repair");
  // The half-linked record was freed, and perhaps taken again by the subscribe.
  EXPECT_TRUE(get(sub(half).listener) == kNone || half == record_of(0, "after/the/repair"));
  EXPECT_EQ(node_of("dying"), kNone);
  const BusInfo info = tb_.bus().inspect();
  ASSERT_EQ(info.errors.size(), errors_before + 1);
  EXPECT_EQ(info.errors.back().kind, "trie-repair");
  expect_repaired(want);
  // The mutex is consistent again: it locks without EOWNERDEAD.
  ASSERT_EQ(pthread_mutex_lock(&h().trie_mutex), 0);
  pthread_mutex_unlock(&h().trie_mutex);
  expect_all_unsubscribe(want);
}

}  // namespace
}  // namespace ipcbus
