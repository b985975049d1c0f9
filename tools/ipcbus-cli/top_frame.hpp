// top_frame.hpp: one frame of `ipcbus top` as lines of text, made from two
// readings of the bus; the terminal view and the plain --once output both
// print it.
#pragma once

#include <string>
#include <vector>

#include "records.hpp"

namespace ipcbus::cli {

struct FrameLine {
  enum class Style { kNormal, kTitle, kHeading, kAlert };
  std::string text;
  Style style = Style::kNormal;
};

// build_frame: the bus summary, then a line per listener (receive rate,
// backlog, drops per second by reason, latency quantiles over the interval,
// state, owner), per pool size class and per live publisher, and the latest
// error-log entries. Without `before` the rates read "-".
std::vector<FrameLine> build_frame(const Snapshot* before, const Snapshot& now, double interval_s);

}  // namespace ipcbus::cli
