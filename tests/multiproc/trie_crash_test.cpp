// trie_crash_test.cpp: trie writers killed, for real, inside their changes.
//
// For each crash path ("subscribe", "unsubscribe") and k = 1, 2, ...: a fresh
// bus (trie_crash_config()) whose witness listener, in this process, holds
// witness_filters(); then the peer (trie_crash_peer, built on ipcbus_crash)
// runs its script with IPCBUS_CRASH_AT=path:k, which SIGKILLs it at the k-th
// crash point it passes on that path: inside a trie write, holding the
// robust trie mutex. After the kill the test opens the bus again and
// subscribes once, so the first lock sees EOWNERDEAD and repairs, and checks
// that the peer's listener holds its filters as of just before or just after
// the step it died in, that every topic matches as those and the witness's
// filters say, and that the trie's links, lists, free lists and gauges agree.
// Closing the dead peer's listener (as crash cleanup will) and the witness
// must then leave the root alone. The loop ends at the first k the peer
// survives, so every crash point on the path was hit in some run.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "../unit/trie_check.hpp"
#include "multiproc.hpp"
#include "segment.hpp"
#include "trie_crash_script.hpp"

namespace ipcbus::test {
namespace {

constexpr const char* kTrieCrashPeer = IPCBUS_TRIE_CRASH_PEER;
constexpr long kMaxRuns = 1000;  // far above the crash points of either script

// states[i]: the peer's filters before step i of `steps` (states[size]: after all).
std::vector<std::set<std::string>> states_of(const std::vector<TrieStep>& steps) {
  std::vector<std::set<std::string>> out(1);
  for (const TrieStep& s : steps) {
    std::set<std::string> next = out.back();
    switch (s.op) {
      case TrieOp::kSubscribe:
        next.insert(s.filter);
        break;
      case TrieOp::kUnsubscribe:
        next.erase(s.filter);
        break;
      case TrieOp::kClose:
        next.clear();
        break;
    }
    out.push_back(std::move(next));
  }
  return out;
}

const std::vector<std::string>& topics() {
  static const std::vector<std::string> t = all_topics(trie_crash_words(), 3);
  return t;
}

// A BusCore of the test's own over bus `name`, registered as no process, to
// read the trie and to close a dead process's listener.
class RawCore {
 public:
  explicit RawCore(const std::string& name) {
    OpenOptions o;
    o.name = name;
    o.create = false;
    auto m = detail::map_bus(name, o);
    if (m) {
      mapping_ = std::move(m).value();
      core_ = std::make_unique<detail::BusCore>(
          name, mapping_.base, static_cast<std::size_t>(mapping_.bytes), detail::kNone);
    }
  }
  detail::BusCore* get() const { return core_.get(); }

 private:
  detail::Mapping mapping_;
  std::unique_ptr<detail::BusCore> core_;
};

// Removes a bus's name however the run ends.
struct BusName {
  std::string name;
  ~BusName() { (void)Bus::destroy(name); }
};

struct PathTally {
  long killed = 0;
  long step_done = 0;    // the step the peer died in had taken effect
  long step_undone = 0;  // it had not
  long reclaimed = 0;    // the dead peer's listener was closed by crash cleanup
};

class TrieCrash : public MultiProc {
 protected:
  // One run with IPCBUS_CRASH_AT=path:k; *completed when the peer survived.
  void run_once(const std::string& path, long k, PathTally* tally, bool* completed) {
    const std::vector<TrieStep>& steps = trie_script(path);
    const std::vector<std::set<std::string>> states = states_of(steps);
    const BusName bus_name{bus_ + "-" + std::to_string(k)};
    const std::string& name = bus_name.name;
    SCOPED_TRACE(path + ":" + std::to_string(k));
    OpenOptions o;
    o.name = name;
    o.config = trie_crash_config();
    auto bus = Bus::open(o);
    ASSERT_TRUE(bus) << bus.error().message;
    auto witness = bus->listen({});
    ASSERT_TRUE(witness) << witness.error().message;
    for (const std::string& f : witness_filters()) {
      ASSERT_TRUE(witness->subscribe(f)) << f;
    }

    const std::string out = temp_file(path + "-" + std::to_string(k));
    SpawnOptions so;
    so.stdout_path = out;
    so.stderr_to_stdout = true;
    const pid_t pid = start({kTrieCrashPeer, "--bus", name, "--path", path, "--crash-at",
                             path + ":" + std::to_string(k)},
                            so);
    ASSERT_GT(pid, 0);
    const Exit e = finish(pid);
    const std::string text = read_file(out);
    const std::size_t done = lines_with(text, "done").size();
    const std::vector<std::string> who = lines_with(text, "listener");
    ASSERT_EQ(who.size(), 1U) << describe("peer", out);
    std::uint32_t peer_index = 0;
    std::uint32_t peer_gen = 0;
    std::istringstream(who[0].substr(9)) >> peer_index >> peer_gen;

    if (ended_ok(e)) {
      *completed = true;
      ASSERT_EQ(done, steps.size()) << describe("peer", out);
    } else {
      ASSERT_EQ(e.signal, SIGKILL) << describe("peer", out);
      ASSERT_LT(done, steps.size());
      ++tally->killed;
      // Killed inside a write section: the version it left is odd.
      const RawSegment raw(name);
      ASSERT_TRUE(raw.mapped());
      // relaxed: the writer is dead; nothing else writes the version now.
      EXPECT_EQ(raw.header().trie_version.load(std::memory_order_relaxed) % 2, 1U);

      // Open the bus again and change the trie once: the first lock of the
      // trie mutex sees EOWNERDEAD and repairs.
      OpenOptions again;
      again.name = name;
      again.create = false;
      auto other = Bus::open(again);
      ASSERT_TRUE(other) << other.error().message;
      auto probe = other->listen({});
      ASSERT_TRUE(probe) << probe.error().message;
      ASSERT_TRUE(probe->subscribe("probe"));
      ASSERT_TRUE(probe->unsubscribe("probe"));
      probe->close();
    }

    const BusInfo info = bus->inspect();
    EXPECT_EQ(info.trie_version % 2, 0U);
    const bool repaired =
        std::any_of(info.errors.begin(), info.errors.end(),
                    [](const ErrorLogEntry& x) { return x.kind == "trie-repair"; });
    EXPECT_EQ(repaired, !*completed) << "a repair is logged after a kill, and only then";
    std::optional<ListenerInfo> peer;
    for (const ListenerInfo& l : info.listeners) {
      if (l.index == peer_index && l.generation == peer_gen) {
        peer = l;
      }
    }
    const std::set<std::string> held_by_peer =
        peer ? std::set<std::string>(peer->filters.begin(), peer->filters.end())
             : std::set<std::string>{};
    if (*completed) {
      EXPECT_FALSE(peer.has_value()) << "the peer closed its listener";
    } else if (!peer) {
      ++tally->reclaimed;  // reopening the bus closed the dead process's listener
    } else if (steps[done].op == TrieOp::kClose) {
      // unsubscribe_all died part way: what is left is part of what was held.
      EXPECT_TRUE(std::includes(states[done].begin(), states[done].end(), held_by_peer.begin(),
                                held_by_peer.end()));
    } else {
      const bool before = held_by_peer == states[done];
      const bool after = held_by_peer == states[done + 1];
      EXPECT_TRUE(before || after)
          << "the peer's filters are neither those before step " << done << " nor those after it";
      tally->step_done += after && !before ? 1 : 0;
      tally->step_undone += before && !after ? 1 : 0;
    }

    Held held;
    for (const std::string& f : witness_filters()) {
      held.emplace(witness->index(), f);
    }
    for (const std::string& f : held_by_peer) {
      held.emplace(peer_index, f);
    }
    const RawCore raw_core(name);
    ASSERT_NE(raw_core.get(), nullptr);
    EXPECT_EQ(check_matching(*raw_core.get(), held, topics()), "");
    EXPECT_EQ(check_structure(*raw_core.get()), "");
    EXPECT_EQ(info.trie_nodes_used, nodes_for(held));
    EXPECT_EQ(info.subscriptions_used, held.size());

    // Close the dead peer's listener, as crash cleanup would, and the
    // witness: the trie is the root alone again.
    if (peer) {
      raw_core.get()->close_listener(peer_index, peer_gen);
    }
    witness->close();
    const BusInfo after = bus->inspect();
    EXPECT_EQ(after.trie_nodes_used, 1U);
    EXPECT_EQ(after.subscriptions_used, 0U);
    EXPECT_EQ(check_structure(*raw_core.get()), "");
  }

  // Runs k = 1, 2, ... until the peer survives; returns the crash points
  // passed (the runs that killed it).
  PathTally every_crash_point(const std::string& path) {
    PathTally tally;
    bool completed = false;
    for (long k = 1; k <= kMaxRuns && !completed && !HasFatalFailure(); ++k) {
      run_once(path, k, &tally, &completed);
    }
    EXPECT_TRUE(completed) << "the peer never ran its script through";
    std::printf(
        "crash path %s: %ld crash points passed by the script, each killed once; "
        "the step in progress had taken effect %ld times, had not %ld times; "
        "%ld listeners reclaimed before the check\n",
        path.c_str(), tally.killed, tally.step_done, tally.step_undone, tally.reclaimed);
    return tally;
  }
};

TEST_F(TrieCrash, SubscribeKilledAtEveryCrashPointIsRepairedByTheNextWriter) {
  const PathTally t = every_crash_point("subscribe");

  EXPECT_GT(t.killed, 0);
  if (t.reclaimed > 0) {
    // Crash cleanup at attach closed the dead peer's listener (and so
    // repaired the trie) before the check: the outcome of the step it died
    // in is gone with the listener; the matching and structure checks of
    // every kill above still ran.
    EXPECT_EQ(t.reclaimed, t.killed);
    return;
  }
  // Both outcomes occur: killed before the record reached the listener's
  // list the subscribe is undone, after it it stands.
  EXPECT_GT(t.step_done, 0);
  EXPECT_GT(t.step_undone, 0);
}

TEST_F(TrieCrash, UnsubscribeKilledAtEveryCrashPointIsRepairedByTheNextWriter) {
  const PathTally t = every_crash_point("unsubscribe");

  EXPECT_GT(t.killed, 0);
  if (t.reclaimed > 0) {
    // Crash cleanup at attach closed the dead peer's listener (and so
    // repaired the trie) before the check: the outcome of the step it died
    // in is gone with the listener; the matching and structure checks of
    // every kill above still ran.
    EXPECT_EQ(t.reclaimed, t.killed);
    return;
  }
  EXPECT_GT(t.step_done, 0);
  EXPECT_GT(t.step_undone, 0);
}

}  // namespace
}  // namespace ipcbus::test
