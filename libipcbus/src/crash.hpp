// crash.hpp: crash points for the crash-cleanup tests.
//
// In the test build of the library (target ipcbus_crash, compiled with
// IPCBUS_CRASH_POINTS), IPCBUS_CRASH_POINT("path") counts how often the path
// passed that point in this process; when $IPCBUS_CRASH_AT is "path:k" the
// k-th pass kills the process with SIGKILL, as the OOM killer would. In every
// other build the macro is nothing.
#pragma once

#ifdef IPCBUS_CRASH_POINTS
namespace ipcbus::detail {
void crash_point(const char* path);
}  // namespace ipcbus::detail
#define IPCBUS_CRASH_POINT(path) ::ipcbus::detail::crash_point(path)
#else
#define IPCBUS_CRASH_POINT(path) ((void)0)
#endif
