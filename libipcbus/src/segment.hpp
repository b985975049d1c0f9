// segment.hpp: creating, opening and validating the shared segment.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "ipcbus/bus.hpp"
#include "layout.hpp"

namespace ipcbus::detail {

// Where each region of a segment for a given Config starts.
struct Layout {
  std::uint64_t proc_off = 0;
  std::uint64_t listener_off = 0;
  std::uint64_t ring_off = 0;
  std::uint64_t node_off = 0;
  std::uint64_t edge_off = 0;
  std::uint64_t sub_off = 0;
  std::uint64_t publisher_off = 0;
  std::uint64_t errlog_off = 0;
  std::uint64_t bitmap_off = 0;
  std::uint32_t bitmap_words = 0;
  std::uint32_t chunk_count = 0;
  std::uint32_t node_stride = 0;
  std::uint32_t edge_count = 0;
  std::uint32_t pool_count = 0;
  PoolDesc pools[kMaxPoolClasses]{};
  std::uint64_t total = 0;
};
Layout compute_layout(const Config& config);

// The sizes recorded in a header, as a Config.
Config config_of(const SegmentHeader& h);

// validate_header checks everything a process follows before it trusts the
// segment: magic, layout version, fingerprint, sizes and offsets against the
// real size of the mapping. The message names what is wrong.
Result<void> validate_header(const SegmentHeader& h, std::uint64_t mapped_bytes);

// record_error_at adds (kind, text) to the error log at `log` (entries
// records), deduplicated; `dropped` (may be null) counts records that found
// the log full. Lock-free; slow path only.
void record_error_at(ErrorRecord* log, std::uint32_t entries, std::string_view kind,
                     std::string_view text, std::atomic<std::uint64_t>* dropped);

// A mapped segment; unmapped when the last owner lets go.
struct Mapping {
  std::shared_ptr<void> holder;  // keeps the Boost mapping alive
  void* base = nullptr;
  std::uint64_t bytes = 0;
  bool created = false;
  int fd = -1;  // the segment's open file, owned by holder
  // Set when this open found a segment whose creator died before it stored
  // the magic and initialised it afresh: what happened, for the error log.
  std::string recovered;
};

// The /dev/shm name of bus `name`, or kInvalidArgument for a bad name.
Result<std::string> shm_name(const std::string& name);

// map_bus opens (or creates, if allowed) the named bus and returns it mapped
// and validated. Two racing creators end on one segment; an opener waits up
// to ready_timeout for a creator to finish. An opener that may create and
// finds the creator dead before it stored the magic (its init lock, see
// kInitLockByte, is free) initialises the segment itself (Mapping::recovered).
Result<Mapping> map_bus(const std::string& name, const OpenOptions& options);

}  // namespace ipcbus::detail
