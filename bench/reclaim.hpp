// reclaim.hpp: the crash-cleanup case of ipcbus-bench (issue 3's bound as a figure).
//
// On a fresh bus the parent starts the real agent (ipcbus-agent), then, round
// after round, starts a victim (this program with --reclaim-victim) that
// holds a listener with queued events, a Sample, a Loan and a publisher,
// SIGKILLs it, and times from just before kill() until Bus::inspect() shows
// the victim's process entry, listeners and publishers gone and every pool
// full again. The agent is stopped with SIGTERM and the bus removed after.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ipcbus::bench {

// Between two looks at the bus while waiting for the reclaim.
inline constexpr std::uint64_t kReclaimPollSleepNs = 50'000;
// Past this after the kill a round is failed (a hang guard, not a judgement).
inline constexpr std::uint64_t kReclaimGuardNs = 10'000'000'000ULL;

struct ReclaimRound {
  bool ok = false;
  std::string error;  // why not ok
  int victim_pid = 0;
  std::uint64_t reclaimed_ns = 0;  // kill() to everything reclaimed, as inspect() saw it
  // kill() to the victim's exit (a zombie): the kernel's teardown of it, its
  // mappings included, comes before its entry lock and pidfd tell anyone.
  std::uint64_t exited_ns = 0;
  std::uint64_t agent_ns = 0;      // the agent's own figure: death seen to done (cleanup.last_ns)
  std::uint32_t entry_chunks = 0;  // chunks the victim's entry held as taker before the kill
  std::uint64_t chunks_out = 0;    // pool chunks not free before the kill (all holders)
  std::uint64_t polls = 0;         // inspect() calls until reclaimed
  std::uint64_t poll_gap_ns = 0;   // from the look before (or the kill) to that one: the resolution
  bool by_agent = false;           // the bus's reclaimed-process count moved by one
};

struct ReclaimOut {
  bool ok = false;    // every round reclaimed, the bus consistent, the agent stopped cleanly
  std::string error;  // why not ok
  std::string agent;  // the agent's path
  int agent_pid = 0;
  int rounds_planned = 0;
  std::vector<ReclaimRound> rounds;
  double wall_s = 0;
};

// The ipcbus-agent to run: next to this executable (an install), else in
// the build tree. Empty, with *why, when there is none.
std::string find_agent(std::string* why);
// Whether this build made an agent: then a missing one fails the case
// instead of skipping it.
bool agent_built();

// Run the case: `rounds` kills on one bus with one agent. Every process it
// starts is reaped before it returns, whatever happens.
ReclaimOut run_reclaim_case(int rounds);

// The victim process: `ipcbus-bench --reclaim-victim BUS --ready-fd FD`.
int reclaim_victim_main(const std::string& bus, int ready_fd);

// The case's row for the results JSON ("reclaim_runs").
nlohmann::json reclaim_json(const ReclaimOut& c);

}  // namespace ipcbus::bench
