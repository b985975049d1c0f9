// top_frame.cpp: the sections of a `top` frame, each a table rendered to lines.
#include "top_frame.hpp"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "text.hpp"

namespace ipcbus::cli {

namespace {

using Style = FrameLine::Style;

// How many error-log entries the frame shows, newest first.
inline constexpr std::size_t kRecentErrors = 3;

std::string str(std::uint64_t v) {
  return std::to_string(v);
}

std::string rate_text(double per_s) {
  return si_number(per_s);
}

std::string percent(std::uint64_t part, std::uint64_t whole) {
  char text[16];
  std::snprintf(text, sizeof text, "%.1f%%",
                whole == 0 ? 0.0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole));
  return text;
}

std::string bar(std::uint64_t part, std::uint64_t whole, int width) {
  const int filled = whole == 0 ? 0
                                : static_cast<int>((static_cast<double>(part) * width + whole - 1) /
                                                   static_cast<double>(whole));
  return "[" + std::string(static_cast<std::size_t>(std::min(filled, width)), '#') +
         std::string(static_cast<std::size_t>(width - std::min(filled, width)), '.') + "]";
}

// add_table renders `table` and appends its lines, the heading styled as
// such and each row in `alerts` as an alert.
void add_table(std::vector<FrameLine>& lines, const Table& table, const std::vector<bool>& alerts) {
  std::ostringstream out;
  table.print(out);
  std::istringstream in(out.str());
  std::string line;
  std::size_t row = 0;
  while (std::getline(in, line)) {
    Style style = Style::kNormal;
    if (row == 0) {
      style = Style::kHeading;
    } else if (row - 1 < alerts.size() && alerts[row - 1]) {
      style = Style::kAlert;
    }
    lines.push_back({line, style});
    ++row;
  }
}

std::string latency_cell(const ListenerInfo& l, const std::optional<ListenerDelta>& d, double q) {
  if (!l.histogram_enabled) {
    return "off";
  }
  if (!d) {
    return "-";
  }
  const auto v = histogram_quantile(d->latency, q);
  return v ? duration_ns(*v) : "-";
}

void add_summary(std::vector<FrameLine>& lines, const Snapshot& now, double interval_s) {
  const BusInfo& info = now.info;
  char every[32];
  std::snprintf(every, sizeof every, "%.1f s", interval_s);
  lines.push_back({"ipcbus top - bus '" + info.name + "' - " + iso8601_utc(realtime_ns()) +
                       " - every " + every + " - q quits",
                   Style::kTitle});
  const auto alive = std::count_if(info.processes.begin(), info.processes.end(),
                                   [](const ProcessInfo& p) { return p.alive; });
  const Config& c = info.config;
  lines.push_back({"segment " + byte_size(static_cast<double>(info.segment_bytes)) + ", layout " +
                       str(info.layout_version) + "   listeners " + str(info.listeners.size()) +
                       "/" + str(c.max_listeners) + "   processes " + str(info.processes.size()) +
                       "/" + str(c.max_processes) + " (" + str(static_cast<std::uint64_t>(alive)) +
                       " alive)   publishers " + str(info.publishers.size()) +
                       " live   trie nodes " + str(info.trie_nodes_used) + "/" + str(c.trie_nodes) +
                       "   errors " + str(info.errors.size()),
                   Style::kNormal});
}

void add_listeners(std::vector<FrameLine>& lines, const Snapshot* before, const Snapshot& now) {
  Table t({"IDX", "PID", "STATE", "OVERFLOW", "RECV/S", "BACKLOG", "CAP", "FILL", "NEWEST/S",
           "OLDEST/S", "TIMEOUT/S", "P50", "P99", "FILTERS"});
  t.right_align({0, 1, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  std::vector<bool> alerts;
  for (const ListenerInfo& l : now.info.listeners) {
    std::optional<ListenerDelta> d;
    if (before != nullptr) {
      d = listener_delta(*before, now, l);
    }
    auto rate = [&](std::uint64_t ListenerDelta::*field) {
      return d ? rate_text(d->per_second((*d).*field)) : std::string("-");
    };
    t.add_row({str(l.index), std::to_string(l.owner_pid), listener_state_name(l.state),
               overflow_name(l.overflow), rate(&ListenerDelta::received), str(l.fill.used),
               str(l.fill.capacity), percent(l.fill.used, l.fill.capacity),
               rate(&ListenerDelta::dropped_newest), rate(&ListenerDelta::dropped_oldest),
               rate(&ListenerDelta::block_timeouts), latency_cell(l, d, 0.50),
               latency_cell(l, d, 0.99), join(l.filters, " ")});
    alerts.push_back(l.fill.behind || (d && d->dropped() > 0));
  }
  lines.push_back({"", Style::kNormal});
  lines.push_back(
      {"LISTENERS (rates per second over the last interval; P50/P99 over it, "
       "'off' without a histogram)",
       Style::kTitle});
  add_table(lines, t, alerts);
}

void add_pools(std::vector<FrameLine>& lines, const Snapshot& now) {
  Table t({"CLASS", "TOTAL", "USED", "USE", "BAR"});
  t.right_align({0, 1, 2, 3});
  std::vector<bool> alerts;
  for (const PoolInfo& p : now.info.pools) {
    const std::uint64_t used = p.total - std::min(p.free, p.total);
    t.add_row({byte_size(p.payload_bytes), str(p.total), str(used), percent(used, p.total),
               bar(used, p.total, 20)});
    alerts.push_back(p.free == 0);
  }
  lines.push_back({"", Style::kNormal});
  lines.push_back({"POOLS (chunks by payload size class)", Style::kTitle});
  add_table(lines, t, alerts);
}

void add_publishers(std::vector<FrameLine>& lines, const Snapshot* before, const Snapshot& now) {
  Table t({"ID", "PID", "EVENTS/S", "BYTES/S", "MEAN_SIZE", "PUBLISHED"});
  t.right_align({0, 1, 2, 3, 4, 5});
  for (const PublisherInfo& p : now.info.publishers) {
    const PublisherInfo* was = before != nullptr ? find_publisher(before->info, p.id) : nullptr;
    std::string events = "-";
    std::string bytes = "-";
    std::string mean = "-";
    if (was != nullptr) {
      const double seconds = std::chrono::duration<double>(now.at - before->at).count();
      const std::uint64_t n = counter_delta(was->published, p.published);
      const std::uint64_t b = counter_delta(was->bytes, p.bytes);
      events = rate_text(seconds > 0 ? n / seconds : 0);
      bytes = byte_size(seconds > 0 ? b / seconds : 0) + "/s";
      mean = n == 0 ? "-" : byte_size(static_cast<double>(b) / static_cast<double>(n));
    }
    t.add_row({str(p.id), std::to_string(p.pid), events, bytes, mean, str(p.published)});
  }
  lines.push_back({"", Style::kNormal});
  lines.push_back({"PUBLISHERS", Style::kTitle});
  add_table(lines, t, {});
}

void add_errors(std::vector<FrameLine>& lines, const Snapshot& now) {
  if (now.info.errors.empty()) {
    return;
  }
  std::vector<const ErrorLogEntry*> recent;
  for (const ErrorLogEntry& e : now.info.errors) {
    recent.push_back(&e);
  }
  std::sort(recent.begin(), recent.end(),
            [](const auto* a, const auto* b) { return a->last_realtime_ns > b->last_realtime_ns; });
  recent.resize(std::min(recent.size(), kRecentErrors));
  Table t({"LAST", "COUNT", "KIND", "MESSAGE"});
  t.right_align({1});
  for (const ErrorLogEntry* e : recent) {
    t.add_row({iso8601_utc(e->last_realtime_ns), str(e->count), e->kind, e->message});
  }
  lines.push_back({"", Style::kNormal});
  lines.push_back({"LATEST ERRORS (ipcbus errors lists them all)", Style::kTitle});
  add_table(lines, t, {});
}

}  // namespace

std::vector<FrameLine> build_frame(const Snapshot* before, const Snapshot& now, double interval_s) {
  std::vector<FrameLine> lines;
  add_summary(lines, now, interval_s);
  add_listeners(lines, before, now);
  add_pools(lines, now);
  add_publishers(lines, before, now);
  add_errors(lines, now);
  return lines;
}

}  // namespace ipcbus::cli
