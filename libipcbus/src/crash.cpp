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
struct Target {
  std::string path;
  long at = 0;
};
const Target& target() {
  static const Target t = [] {
    Target r;
    const char* env = std::getenv("IPCBUS_CRASH_AT");
    if (env != nullptr) {
      const char* colon = std::strrchr(env, ':');
      if (colon != nullptr) {
        r.path.assign(env, colon);
        r.at = std::strtol(colon + 1, nullptr, 10);
      }
    }
    return r;
  }();
  return t;
}
std::atomic<long> passes{0};
}  // namespace

void crash_point(const char* path) {
  const Target& t = target();
  if (t.at <= 0 || t.path != path) {
    return;
  }
  // relaxed: a count within this process; the kill needs no ordering.
  if (passes.fetch_add(1, std::memory_order_relaxed) + 1 == t.at) {
    raise(SIGKILL);
  }
}

}  // namespace ipcbus::detail
#endif
