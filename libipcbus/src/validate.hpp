// validate.hpp: the checks of a mapped segment's tables, past its header:
// every index a reader follows lies inside its table, and every chain it
// walks ends. validate_header() (segment.hpp) has already bounded the
// regions themselves against the mapping.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ipcbus/result.hpp"
#include "layout.hpp"

namespace ipcbus::detail {

// validate_structure checks the segment at `base` (`bytes` mapped), whose
// header passed validate_header(). It returns kForeignSegment with a message
// naming the first bad record and field, e.g. "segment is corrupt: trie node
// 5: parent 77 is not below trie_nodes 32".
//
// Safe on a live bus, and never a false alarm there: the per-record checks
// test only what holds at every instant (an index is in its table or kNone,
// a constant field has its value), and the chain walks (subscription lists,
// trie parents, free lists) run inside a trie seqlock read section and are
// skipped when none comes out stable (a writer busy, or dead mid-change).
// Reads only; costs one pass over the tables (less than prefaulting them).
Result<void> validate_structure(const SegmentHeader& h, const char* base, std::uint64_t bytes);

}  // namespace ipcbus::detail
