// ipcbus/config.hpp: the sizes a bus is created with.
//
// Every size is fixed when the bus is created and recorded in the segment's
// header; a process that opens an existing bus uses what the header says, not
// its own Config. The defaults below are the embedded configuration: a bus
// needs no file to run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ipcbus/result.hpp"

namespace ipcbus {

// One chunk size class: `count` payload blocks of up to `payload_bytes` each.
struct PoolClass {
  std::uint32_t payload_bytes;
  std::uint32_t count;
};

// Config is what a bus is created with. Open of an existing bus ignores it.
struct Config {
  // Chunk pools by size class, smallest first. A payload goes to the smallest
  // class it fits; the largest class bounds the payload size.
  std::vector<PoolClass> pools = {{256, 8192}, {4096, 1024}, {65536, 128}, {1U << 20, 16}};
  std::uint32_t max_listeners = 48;     // listener slots (at most 48: see docs/architecture.md)
  std::uint32_t ring_capacity = 1024;   // ring entries allocated per listener, power of 2
  std::uint32_t trie_nodes = 8192;      // topic trie nodes (one per filter level)
  std::uint32_t subscriptions = 8192;   // subscription records (listener x filter)
  std::uint32_t max_topic_bytes = 256;  // longest topic name or filter
  std::uint32_t max_level_bytes = 64;   // longest level of a filter (topics are not bound)
  std::uint32_t max_processes = 128;    // process entries (at most 32000)
  std::uint32_t max_publishers = 256;   // publishers able to deliver at once
  std::uint32_t mode = 0600;            // permission bits of the segment (owner-only)
  // Group that owns the segment, so that its members can share the bus when
  // `mode` grants the group access (e.g. 0660). Empty: the creator's group.
  std::string group;

  // validate returns kInvalidArgument naming the first bad value.
  Result<void> validate() const;
};

// The bus name used when none is given and IPCBUS_BUS is unset.
inline constexpr const char* kDefaultBusName = "default";

// resolve_bus_name returns `name` if not empty, else $IPCBUS_BUS if set and
// not empty, else kDefaultBusName.
std::string resolve_bus_name(const std::string& name);

}  // namespace ipcbus
