// inproc.hpp: the figures ipcbus-bench measures inside one process, in the
// same run as the multi-process cases: route lookup, state transition, ring
// push, allocations per event and trie memory.
#pragma once

#include <nlohmann/json.hpp>

namespace ipcbus::bench {

nlohmann::json measure_route_lookup(bool quick);
nlohmann::json measure_state_transition(bool quick);
nlohmann::json measure_ring_and_pool(bool quick);
nlohmann::json measure_allocations(bool quick);
nlohmann::json measure_trie_memory(bool quick);

}  // namespace ipcbus::bench
