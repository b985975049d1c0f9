// trie_crash_peer.cpp: the program trie_crash_test.cpp kills inside trie
// writes. Linked to ipcbus_crash, the library with live crash points.
//
//   trie_crash_peer --bus B --path subscribe|unsubscribe --crash-at PATH:K
//
// Sets $IPCBUS_CRASH_AT to PATH:K (before the first crash point reads it),
// opens bus B, makes a listener and prints "listener <index> <generation>",
// then runs the path's script (trie_crash_script.hpp), printing "done <i>"
// after step i returns. The K-th crash point passed on PATH kills it with
// SIGKILL; when the script has fewer, it ends with status 0. Status 2: bad
// arguments or a failed call. It ends itself after 60 s (alarm).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "ipcbus/bus.hpp"
#include "trie_crash_script.hpp"

namespace {

constexpr int kExitError = 2;

std::string arg(int argc, char** argv, const std::string& key) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == key) {
      return argv[i + 1];
    }
  }
  return "";
}

int fail(const std::string& what, const ipcbus::Error& e) {
  std::printf("error %s: %s\n", what.c_str(), e.message.c_str());
  return kExitError;
}

}  // namespace

int main(int argc, char** argv) {
  alarm(60);
  const std::string bus_name = arg(argc, argv, "--bus");
  const std::string path = arg(argc, argv, "--path");
  const std::string crash_at = arg(argc, argv, "--crash-at");
  if (bus_name.empty() || (path != "subscribe" && path != "unsubscribe") || crash_at.empty()) {
    std::printf("usage: trie_crash_peer --bus B --path subscribe|unsubscribe --crash-at P:K\n");
    return kExitError;
  }
  setenv("IPCBUS_CRASH_AT", crash_at.c_str(), 1);

  ipcbus::OpenOptions o;
  o.name = bus_name;
  o.create = false;
  auto bus = ipcbus::Bus::open(o);
  if (!bus) {
    return fail("open", bus.error());
  }
  auto listener = bus->listen({});
  if (!listener) {
    return fail("listen", listener.error());
  }
  std::printf("listener %u %u\n", listener->index(), listener->generation());
  std::fflush(stdout);

  const auto& steps = ipcbus::test::trie_script(path);
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const ipcbus::test::TrieStep& s = steps[i];
    switch (s.op) {
      case ipcbus::test::TrieOp::kSubscribe:
        if (auto ok = listener->subscribe(s.filter); !ok) {
          return fail("subscribe " + s.filter, ok.error());
        }
        break;
      case ipcbus::test::TrieOp::kUnsubscribe:
        if (auto ok = listener->unsubscribe(s.filter); !ok) {
          return fail("unsubscribe " + s.filter, ok.error());
        }
        break;
      case ipcbus::test::TrieOp::kClose:
        listener->close();
        break;
    }
    std::printf("done %zu\n", i);
    std::fflush(stdout);
  }
  return 0;
}
