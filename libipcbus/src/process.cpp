// process.cpp: process identity and liveness, and a process's entry in the
// segment (attach and detach).
#include "process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "core.hpp"

namespace ipcbus::detail {

std::uint64_t process_start_time(std::int32_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const std::size_t paren = text.rfind(')');
  if (paren == std::string::npos || paren + 2 > text.size()) {
    return 0;
  }
  std::istringstream rest(text.substr(paren + 2));
  std::string field;
  // Fields after the command: 3 state, 4 ppid, ... 22 starttime.
  for (int i = 3; i <= 22 && rest >> field; ++i) {
    if (i == 3 && (field == "Z" || field == "X")) {
      return 0;  // a zombie is dead, whatever its parent does
    }
    if (i == 22) {
      return std::strtoull(field.c_str(), nullptr, 10);
    }
  }
  return 0;
}

bool process_alive(std::int32_t pid, std::uint64_t start_time) {
  if (pid <= 0) {
    return false;
  }
  if (kill(pid, 0) != 0 && errno != EPERM) {
    return false;
  }
  const std::uint64_t now = process_start_time(pid);
  return now != 0 && (start_time == 0 || now == start_time);
}

std::uint64_t own_pid_namespace() {
  char buf[64] = {};
  const ssize_t n = readlink("/proc/self/ns/pid", buf, sizeof(buf) - 1);
  if (n <= 0) {
    return 0;
  }
  // "pid:[4026531836]"
  const char* open = std::strchr(buf, '[');
  return open == nullptr ? 0 : std::strtoull(open + 1, nullptr, 10);
}

std::uint64_t own_boot_id() {
  std::ifstream f("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(f, id);
  return id.empty() ? 0 : fnv1a(id);
}

namespace {
flock byte_range(short type, std::uint64_t offset) {
  flock fl{};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(offset);
  fl.l_len = 1;
  return fl;
}
}  // namespace

bool lock_byte(int fd, std::uint64_t offset, bool wait) {
  flock fl = byte_range(F_WRLCK, offset);
  for (;;) {
    if (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) == 0) {
      return true;
    }
    if (errno != EINTR) {
      return false;
    }
  }
}

void unlock_byte(int fd, std::uint64_t offset) {
  flock fl = byte_range(F_UNLCK, offset);
  fcntl(fd, F_OFD_SETLK, &fl);
}

bool byte_locked(int fd, std::uint64_t offset) {
  flock fl = byte_range(F_WRLCK, offset);
  if (fcntl(fd, F_OFD_GETLK, &fl) != 0) {
    return true;  // cannot tell: never call a process dead on a failed probe
  }
  return fl.l_type != F_UNLCK;
}

bool BusCore::process_alive(std::uint32_t i) const {
  if (i >= header_->max_processes) {
    return false;
  }
  if (i == process_index_) {
    return true;
  }
  const ProcessEntry& e = process(i);
  // acquire: pairs with the release store that made the entry Live.
  const std::uint32_t state = e.state.load(std::memory_order_acquire);
  if (state == kProcFree) {
    return false;
  }
  // The kernel let go of the lock: the owner is gone. (A child that forked
  // without exec shares the open file and so keeps its parent's entry alive,
  // rightly: it has the parent's mapping and objects.)
  return fd_ < 0 || byte_locked(fd_, lock_base(*header_) + i);
}

std::uint32_t BusCore::register_process() {
  SegmentHeader& h = *header_;
  const std::int32_t pid = getpid();
  for (int round = 0; round < 2; ++round) {
    for (std::uint32_t i = 0; i < h.max_processes; ++i) {
      ProcessEntry& e = process(i);
      // relaxed: a first look; the CAS below decides.
      if (e.state.load(std::memory_order_relaxed) != kProcFree) {
        continue;
      }
      // The lock first, then the entry: whoever holds byte i owns entry i,
      // so a prober never sees a Live entry without its lock.
      if (!lock_byte(fd_, lock_base(h) + i)) {
        continue;
      }
      std::uint32_t expected = kProcFree;
      // acq_rel: acquire sees the last owner's or reclaimer's clearing;
      // release orders our claim before we fill the entry.
      if (!e.state.compare_exchange_strong(expected, kProcClaiming, std::memory_order_acq_rel)) {
        unlock_byte(fd_, lock_base(h) + i);
        continue;
      }
      e.start_time = process_start_time(pid);
      e.pid_ns = pid_ns_;
      e.boot_id = own_boot_id();
      timespec ts{};
      clock_gettime(CLOCK_REALTIME, &ts);
      e.attach_realtime_ns = static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL +
                             static_cast<std::uint64_t>(ts.tv_nsec);
      // relaxed, for these: published by the release store of Live below.
      e.pid.store(pid, std::memory_order_relaxed);
      e.listeners.store(0, std::memory_order_relaxed);
      e.dead_since_ns.store(0, std::memory_order_relaxed);
      for (auto& cls : e.cache) {
        for (auto& slot : cls) {
          // relaxed: references left by the last owner are stale (crash
          // cleanup freed its cached chunks); published by the store below.
          slot.store(0, std::memory_order_relaxed);
        }
      }
      // release: a prober that sees Live sees the identity above.
      e.state.store(kProcLive, std::memory_order_release);
      // release: SYNC(attach) with Bus::wait_attach(): the agent woken
      // below finds the entry Live and opens a pidfd for us at once. Also a
      // gauge for tools.
      h.attach_count.fetch_add(1, std::memory_order_release);
      futex_wake(&h.attach_count, INT32_MAX);  // slow path: one system call per attach
      return i;
    }
    // Every entry is taken: clean up after dead owners, then look again.
    if (round == 0 && reclaim_dead(nullptr) == 0) {
      break;
    }
  }
  return kNone;
}

void BusCore::deregister_process() {
  if (process_index_ == kNone) {
    return;
  }
  // Our cached chunks go back first: a cache is only ever taken from by
  // its owner or by a thief whose pool ran dry.
  for (std::uint32_t k = 0; k < pool_count_; ++k) {
    cache_flush(k);
  }
  ProcessEntry& e = process(process_index_);
  // relaxed: published by the release store below.
  e.pid.store(0, std::memory_order_relaxed);
  // release: the next claimer (acquire CAS) sees the entry cleared.
  e.state.store(kProcFree, std::memory_order_release);
  unlock_byte(fd_, lock_base(*header_) + process_index_);
  set_process(kNone);
}

}  // namespace ipcbus::detail
