// trie_crash_script.hpp: what trie_crash_test.cpp and its peer program
// (trie_crash_peer.cpp) agree on: the bus the test makes, the filters the
// test's own listener (the witness) holds, and the sequence of trie changes
// the peer makes for each crash path.
//
// The bus's trie is small (16 nodes, so an edge table of 32 words) so that
// the unsubscribe script's tombstones pass a quarter of the table and one
// of its unsubscribes rebuilds the edge table, a step with a crash point of
// its own. The scripts touch nodes the witness shares (a/b, x/#), make and
// prune literal, '+' and '#' nodes, and end by closing the listener, which
// removes what it still holds.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ipcbus/config.hpp"

namespace ipcbus::test {

inline Config trie_crash_config() {
  Config c;
  c.pools = {{64, 16}};
  c.max_listeners = 4;
  c.ring_capacity = 8;
  c.trie_nodes = 16;
  c.subscriptions = 32;
  c.max_topic_bytes = 64;
  c.max_level_bytes = 16;
  c.max_processes = 8;
  return c;
}

inline const std::vector<std::string>& witness_filters() {
  static const std::vector<std::string> f = {"a/b", "x/#"};
  return f;
}

enum class TrieOp { kSubscribe, kUnsubscribe, kClose };

struct TrieStep {
  TrieOp op;
  std::string filter;  // empty for kClose
};

// The peer's steps for crash path "subscribe" or "unsubscribe".
inline const std::vector<TrieStep>& trie_script(std::string_view path) {
  using enum TrieOp;
  static const std::vector<TrieStep> subscribe = {
      {kSubscribe, "a/b/c"},  // one new literal under the witness's a/b
      {kSubscribe, "a/b"},    // a record on a node the witness made
      {kSubscribe, "n/+/#"},  // a literal, a '+' and a '#'
      {kSubscribe, "x/#"},    // the witness's path again
      {kSubscribe, "m/k"},    // two literals
      {kUnsubscribe, "m/k"},  // leaves tombstones
      {kSubscribe, "m/j"},    // two literals again
      {kClose, ""},
  };
  static const std::vector<TrieStep> unsubscribe = {
      {kSubscribe, "a/b/c"},       {kSubscribe, "a/b"}, {kSubscribe, "n/+/#"}, {kSubscribe, "x/#"},
      {kUnsubscribe, "a/b/c"},                    // prunes a literal the witness does not share
      {kUnsubscribe, "n/+/#"},                    // prunes a '#', a '+' and a literal
      {kSubscribe, "k/m/n/o/p"},                  // ten nodes at once: with the witness's
      {kSubscribe, "j/m/n/o/p"},                  // and the test's probe, all sixteen
      {kUnsubscribe, "k/m/n/o/p"},                // five tombstones
      {kUnsubscribe, "j/m/n/o/p"},                // ten or more, above 32 / 4: rebuild
      {kSubscribe, "q/r"},         {kClose, ""},  // removes q/r, x/# and a/b
  };
  return path == "subscribe" ? subscribe : unsubscribe;
}

// Every level word the scripts and the witness use, for the topics checked.
inline const std::vector<std::string>& trie_crash_words() {
  static const std::vector<std::string> w = {"a", "b", "c", "x", "n",     "m", "k",
                                             "j", "i", "q", "r", "probe", ""};
  return w;
}

}  // namespace ipcbus::test
