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
