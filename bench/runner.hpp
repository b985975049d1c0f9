// runner.hpp: running one case in child processes, from the parent.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "harness.hpp"

namespace ipcbus::bench {

// A child's results, copied out of the shared control block.
struct RoleOut {
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  std::uint64_t counted = 0;
  std::uint64_t errors = 0;
  std::uint64_t window_ns = 0;
  std::uint64_t busy_ns = 0;
  std::uint64_t cpu_ns = 0;
  std::uint64_t first_rtt_ns = 0;
  std::uint64_t thousandth_rtt_ns = 0;
  std::uint64_t first_oneway_ns = 0;
  std::uint64_t thousandth_oneway_ns = 0;
  std::uint64_t first_faults = 0;
};

struct CaseOut {
  CaseSpec spec;
  bool ok = false;
  bool skipped = false;  // the transport cannot run this shape, or is unavailable
  std::string error;     // why not ok (or why skipped)
  double wall_s = 0;
  std::vector<RoleOut> roles;
  Histogram rtt_half;  // merged over the roles (one role records it)
  Histogram one_way;
};

// run_case runs `spec` (its name is filled in here) and never leaves a child
// behind: on failure, timeout or interruption every child is killed and reaped.
CaseOut run_case(CaseSpec spec);

// The last few hundred characters of a child's log, on one line.
std::string log_tail(const std::string& path);

// The run's unique prefix for resource names: "bench-<pid>".
const std::string& run_prefix();

}  // namespace ipcbus::bench
