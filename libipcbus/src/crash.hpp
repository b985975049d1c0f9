// crash.hpp: crash points for the crash-cleanup tests.
//
// In the test build of the library (target ipcbus_crash, compiled with
// IPCBUS_CRASH_POINTS), IPCBUS_CRASH_POINT("path") counts the passes over
// crash points of the paths named by $IPCBUS_CRASH_AT ("path[+path...]:k")
// in this process, and the k-th pass kills the process with SIGKILL, as the
// OOM killer would. A point sits between every two writes to shared memory
// of its path. $IPCBUS_CRASH_SIGNAL=STOP stops the process there (SIGSTOP)
// instead. In every other build the macro is nothing.
//
// Paths: take, push, pop, drop (core.hpp: pool take, ring push and pop,
// holder drop), publish, loan, receive, release, close, reclaim, subscribe,
// unsubscribe, create (segment.cpp: creating a segment, or initialising
// anew one whose creator died, up to the magic and the init lock's release).
#pragma once

#ifdef IPCBUS_CRASH_POINTS
namespace ipcbus::detail {
void crash_point(const char* path);
}  // namespace ipcbus::detail
#define IPCBUS_CRASH_POINT(path) ::ipcbus::detail::crash_point(path)
#else
#define IPCBUS_CRASH_POINT(path) ((void)0)
#endif
