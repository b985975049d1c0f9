// crash.cpp: see crash.hpp.
#include "crash.hpp"

#ifdef IPCBUS_CRASH_POINTS
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

namespace ipcbus::detail {

namespace {
// $IPCBUS_CRASH_AT is "path[+path...]:k": the k-th pass over any of the
// named paths kills the process.
struct Target {
  std::string paths;  // "+a+b+", for a search of "+name+"
  long at = 0;
  int signal = SIGKILL;
};
const Target& target() {
  static const Target t = [] {
    Target r;
    const char* env = std::getenv("IPCBUS_CRASH_AT");
    if (env != nullptr) {
      const char* colon = std::strrchr(env, ':');
      if (colon != nullptr) {
        r.paths = "+" + std::string(env, colon) + "+";
        r.at = std::strtol(colon + 1, nullptr, 10);
      }
    }
    // $IPCBUS_CRASH_SIGNAL=STOP stops the process there instead (a creator
    // that is slow, not dead).
    const char* sig = std::getenv("IPCBUS_CRASH_SIGNAL");
    if (sig != nullptr && std::strcmp(sig, "STOP") == 0) {
      r.signal = SIGSTOP;
    }
    return r;
  }();
  return t;
}
std::atomic<long> passes{0};
}  // namespace

void crash_point(const char* path) {
  const Target& t = target();
  if (t.at <= 0 || t.paths.find("+" + std::string(path) + "+") == std::string::npos) {
    return;
  }
  // relaxed: a count within this process; the kill needs no ordering.
  if (passes.fetch_add(1, std::memory_order_relaxed) + 1 == t.at) {
    raise(t.signal);
  }
}

}  // namespace ipcbus::detail
#endif
