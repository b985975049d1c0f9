// process.hpp: telling a live process from a dead one or from a reused pid.
#pragma once

#include <cstdint>

namespace ipcbus::detail {

// Field 22 of /proc/PID/stat (start time in clock ticks since boot), or 0 if
// the process does not exist or is a zombie.
std::uint64_t process_start_time(std::int32_t pid);

// True when `pid` runs and, if start_time is not 0, started at start_time.
bool process_alive(std::int32_t pid, std::uint64_t start_time);

}  // namespace ipcbus::detail
