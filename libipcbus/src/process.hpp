// process.hpp: telling a live process from a dead one or from a reused pid.
#pragma once

#include <cstdint>

namespace ipcbus::detail {

// Field 22 of /proc/PID/stat (start time in clock ticks since boot), or 0 if
// the process does not exist or is a zombie.
std::uint64_t process_start_time(std::int32_t pid);

// True when `pid` runs and, if start_time is not 0, started at start_time.
bool process_alive(std::int32_t pid, std::uint64_t start_time);

// The inode of this process's pid namespace (/proc/self/ns/pid), 0 if unknown.
std::uint64_t own_pid_namespace();
// A hash of this boot's id (/proc/sys/kernel/random/boot_id), 0 if unknown.
std::uint64_t own_boot_id();

// Open-file-description locks on one byte of `fd` (see ProcessEntry).
// lock_byte takes it without waiting (false if another holds it); with
// `wait`, it blocks until it gets it. byte_locked tells whether another open
// file description holds it.
bool lock_byte(int fd, std::uint64_t offset, bool wait = false);
void unlock_byte(int fd, std::uint64_t offset);
bool byte_locked(int fd, std::uint64_t offset);

}  // namespace ipcbus::detail
