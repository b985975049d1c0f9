// trie_check.hpp: checks of a whole topic trie, for the tests of its repair
// (unit/trie_repair_test.cpp, multiproc/trie_crash_test.cpp).
//
// Each check returns a description of what is wrong, empty when nothing is:
//   check_matching  the Matcher's answer for each topic against
//                   ipcbus::filter_matches over the subscriptions expected;
//   check_structure every link, list, free list and gauge of the trie
//                   against the others (what find_child and the Matcher
//                   reach, what the lists hold, what the gauges count);
//   view_of         the trie by filter path (kind, refcount, listeners),
//                   to compare with a trie built afresh.
// They read the segment through BusCore with no writer running.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core.hpp"
#include "ipcbus/topic.hpp"
#include "trie.hpp"

namespace ipcbus::test {

// (listener slot index, filter)
using Held = std::set<std::pair<std::uint32_t, std::string>>;

// relaxed, for every load through this: the checks run with no writer.
template <class T>
T load(const std::atomic<T>& a) {
  return a.load(std::memory_order_relaxed);
}

inline std::vector<std::string> split_levels(std::string_view s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t slash = s.find('/', start);
    out.emplace_back(s.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) {
      return out;
    }
    start = slash + 1;
  }
}

// Every topic of 1..max_levels levels over `words` (each level one word).
inline std::vector<std::string> all_topics(const std::vector<std::string>& words,
                                           std::size_t max_levels) {
  std::vector<std::string> out;
  std::vector<std::string> level = {""};
  for (std::size_t depth = 1; depth <= max_levels; ++depth) {
    std::vector<std::string> next;
    for (const std::string& prefix : level) {
      for (const std::string& w : words) {
        next.push_back(depth == 1 ? w : prefix + "/" + w);
      }
    }
    for (const std::string& t : next) {
      if (!t.empty()) {
        out.push_back(t);
      }
    }
    level = std::move(next);
  }
  return out;
}

// The nodes a set of filters needs: the root and one per distinct prefix.
inline std::uint32_t nodes_for(const Held& held) {
  std::set<std::string> prefixes;
  for (const auto& [listener, f] : held) {
    for (std::size_t i = 0; i <= f.size(); ++i) {
      if (i == f.size() || f[i] == '/') {
        prefixes.insert(f.substr(0, i));
      }
    }
  }
  return 1 + static_cast<std::uint32_t>(prefixes.size());
}

inline std::string check_matching(const detail::BusCore& core, const Held& held,
                                  const std::vector<std::string>& topics) {
  detail::Matcher matcher(core);
  std::vector<detail::RouteTarget> out(core.header().max_listeners);
  std::string problems;
  int wrong = 0;
  for (const std::string& topic : topics) {
    std::uint64_t version = 0;
    const std::uint32_t n = matcher.match(topic, out.data(), &version);
    std::set<std::uint32_t> got;
    for (std::uint32_t k = 0; k < n; ++k) {
      got.insert(out[k].listener);
    }
    std::set<std::uint32_t> want;
    for (const auto& [listener, f] : held) {
      if (filter_matches(f, topic)) {
        want.insert(listener);
      }
    }
    if (got != want || got.size() != n || (version & 1) != 0) {
      if (++wrong <= 5) {
        problems += "topic '" + topic + "': matched " + std::to_string(got.size()) +
                    " listeners (" + std::to_string(n) + " entries), want " +
                    std::to_string(want.size()) + "; ";
      }
    }
  }
  if (wrong > 5) {
    problems += std::to_string(wrong) + " topics wrong in all";
  }
  return problems;
}

// The filter path of node n ("" for the root), or "<broken>".
inline std::string path_of(const detail::BusCore& core, std::uint32_t n) {
  const detail::SegmentHeader& h = core.header();
  std::vector<std::string> parts;
  for (std::uint32_t steps = 0; n != 0; ++steps) {
    if (n >= h.trie_nodes || steps > h.trie_nodes) {
      return "<broken>";
    }
    const detail::TrieNode& t = core.node(n);
    parts.emplace_back(core.node_label(n), std::min(load(t.label_len), h.max_level_bytes));
    n = load(t.parent);
  }
  std::string p;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    p += (it == parts.rbegin() ? "" : "/") + *it;
  }
  return parts.empty() ? "" : "=" + p;  // '=' keeps a one-level "" filter apart from the root
}

struct NodeView {
  std::uint32_t kind = 0;
  std::uint32_t refcount = 0;
  std::multiset<std::uint32_t> listeners;  // of the records on its list
  bool operator==(const NodeView&) const = default;
};
using TrieView = std::map<std::string, NodeView>;

inline TrieView view_of(const detail::BusCore& core) {
  const detail::SegmentHeader& h = core.header();
  TrieView v;
  for (std::uint32_t n = 0; n < h.trie_nodes; ++n) {
    const detail::TrieNode& t = core.node(n);
    if (load(t.kind) == detail::kNodeFree) {
      continue;
    }
    std::string key = path_of(core, n);
    if (v.count(key) != 0) {
      key += "<twin " + std::to_string(n) + ">";
    }
    NodeView& nv = v[key];
    nv.kind = load(t.kind);
    nv.refcount = load(t.refcount);
    std::uint32_t s = load(t.subs_head);
    for (std::uint32_t steps = 0; s < h.subscriptions && steps < h.subscriptions; ++steps) {
      nv.listeners.insert(load(core.sub(s).listener));
      s = load(core.sub(s).next_in_node);
    }
  }
  return v;
}

inline std::string check_structure(const detail::BusCore& core) {
  const detail::SegmentHeader& h = core.header();
  std::string p;
  auto bad = [&p](const std::string& what) { p += what + "; "; };
  const std::uint32_t T = h.trie_nodes;
  const std::uint32_t S = h.subscriptions;
  if ((load(h.trie_version) & 1) != 0) {
    bad("version odd");
  }
  // Nodes: each live node is reached from its parent, as the Matcher would.
  std::uint32_t live = 0;
  std::uint32_t literals = 0;
  for (std::uint32_t n = 0; n < T; ++n) {
    const detail::TrieNode& t = core.node(n);
    const std::uint32_t kind = load(t.kind);
    if (kind == detail::kNodeFree) {
      continue;
    }
    ++live;
    for (const std::uint32_t c : {load(t.plus_child), load(t.hash_child)}) {
      if (c != detail::kNone && (c >= T || load(core.node(c).parent) != n ||
                                 load(core.node(c).kind) == detail::kNodeFree)) {
        bad("node " + std::to_string(n) + " links a wildcard child that is not its own");
      }
    }
    if (n == 0) {
      if (kind != detail::kNodeRoot) {
        bad("root kind " + std::to_string(kind));
      }
      continue;
    }
    const std::uint32_t parent = load(t.parent);
    if (parent >= T || load(core.node(parent).kind) == detail::kNodeFree) {
      bad("node " + std::to_string(n) + " has a free or bad parent");
      continue;
    }
    const std::string_view label(core.node_label(n), load(t.label_len));
    const detail::TrieNode& pt = core.node(parent);
    const std::uint32_t reached = kind == detail::kNodePlus ? load(pt.plus_child)
                                  : kind == detail::kNodeHash
                                      ? load(pt.hash_child)
                                      : core.find_child(parent, label, detail::fnv1a(label));
    literals += kind == detail::kNodeLiteral ? 1 : 0;
    if (reached != n) {
      bad("node " + std::to_string(n) + " '" + std::string(label) +
          "' unreachable from its parent");
    }
    if (load(t.refcount) == 0) {
      bad("live node " + std::to_string(n) + " with refcount 0");
    }
  }
  if (live != load(h.nodes_used)) {
    bad("nodes_used " + std::to_string(load(h.nodes_used)) + ", live " + std::to_string(live));
  }
  // Refcounts: the records at or below each node.
  std::vector<std::uint32_t> refs(T, 0);
  std::vector<bool> listed(S, false);
  std::uint32_t on_node_lists = 0;
  for (std::uint32_t n = 0; n < T; ++n) {
    if (load(core.node(n).kind) == detail::kNodeFree) {
      continue;
    }
    std::uint32_t s = load(core.node(n).subs_head);
    for (std::uint32_t steps = 0; s != detail::kNone; ++steps) {
      if (s >= S || steps >= S) {
        bad("node list of " + std::to_string(n) + " broken");
        break;
      }
      ++on_node_lists;
      listed[s] = true;
      if (load(core.sub(s).node) != n) {
        bad("record " + std::to_string(s) + " on the list of a node it does not name");
      }
      for (std::uint32_t m = n, d = 0; m < T && d <= T; m = load(core.node(m).parent), ++d) {
        ++refs[m];
        if (m == 0) {
          break;
        }
      }
      s = load(core.sub(s).next_in_node);
    }
  }
  for (std::uint32_t n = 0; n < T; ++n) {
    if (load(core.node(n).kind) != detail::kNodeFree && load(core.node(n).refcount) != refs[n]) {
      bad("node " + std::to_string(n) + " refcount " + std::to_string(load(core.node(n).refcount)) +
          ", records below " + std::to_string(refs[n]));
    }
  }
  // Listener lists hold exactly the records on node lists.
  std::uint32_t on_listener_lists = 0;
  for (std::uint32_t i = 0; i < h.max_listeners; ++i) {
    const detail::ListenerSlot& ls = core.slot(i);
    std::uint32_t s = load(ls.subs_head);
    std::uint32_t len = 0;
    for (std::uint32_t steps = 0; s != detail::kNone; ++steps) {
      if (s >= S || steps >= S) {
        bad("listener list of " + std::to_string(i) + " broken");
        break;
      }
      ++len;
      const detail::SubRecord& r = core.sub(s);
      const std::uint32_t node = load(r.node);
      bool on_node_list = false;
      if (node < T) {
        std::uint32_t x = load(core.node(node).subs_head);
        for (std::uint32_t k = 0; x < S && k < S && !on_node_list; ++k) {
          on_node_list = x == s;
          x = load(core.sub(x).next_in_node);
        }
      }
      if (load(r.listener) != i || !on_node_list) {
        bad("record " + std::to_string(s) + " of listener " + std::to_string(i) +
            " misnamed or not on its node's list");
      }
      s = load(r.next_in_listener);
    }
    on_listener_lists += len;
    if (len != load(ls.filter_count)) {
      bad("listener " + std::to_string(i) + " filter_count " +
          std::to_string(load(ls.filter_count)) + ", list " + std::to_string(len));
    }
  }
  if (on_listener_lists != on_node_lists || on_node_lists != load(h.subs_used)) {
    bad("records on listener lists " + std::to_string(on_listener_lists) + ", on node lists " +
        std::to_string(on_node_lists) + ", subs_used " + std::to_string(load(h.subs_used)));
  }
  // Free lists: exactly the entries not in use, no cycle.
  std::uint32_t free_nodes = 0;
  std::uint32_t n = load(h.node_free_head);
  for (; n != detail::kNone && free_nodes <= T; ++free_nodes) {
    if (n >= T || load(core.node(n).kind) != detail::kNodeFree) {
      bad("node free list reaches " + std::to_string(n));
      break;
    }
    n = load(core.node(n).next_free);
  }
  if (free_nodes + load(h.nodes_used) != T) {
    bad("node free list " + std::to_string(free_nodes) + " long");
  }
  std::uint32_t free_subs = 0;
  std::uint32_t s = load(h.sub_free_head);
  for (; s != detail::kNone && free_subs <= S; ++free_subs) {
    if (s >= S || listed[s]) {
      bad("record free list reaches " + std::to_string(s));
      break;
    }
    s = load(core.sub(s).next_free);
  }
  if (free_subs + load(h.subs_used) != S) {
    bad("record free list " + std::to_string(free_subs) + " long");
  }
  // Edges: one word per literal node, tombstones as counted.
  std::uint32_t words = 0;
  std::uint32_t tombs = 0;
  for (std::uint32_t i = 0; i < h.edge_count; ++i) {
    const std::uint64_t w = load(core.edge(i));
    words += w != detail::kEdgeEmpty && w != detail::kEdgeTomb ? 1 : 0;
    tombs += w == detail::kEdgeTomb ? 1 : 0;
  }
  if (words != literals || tombs != load(h.edge_tombstones)) {
    bad("edge words " + std::to_string(words) + " for " + std::to_string(literals) +
        " literal nodes, tombstones " + std::to_string(tombs) + " counted " +
        std::to_string(load(h.edge_tombstones)));
  }
  return p;
}

}  // namespace ipcbus::test
