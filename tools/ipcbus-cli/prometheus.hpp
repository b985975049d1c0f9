// prometheus.hpp: a bus's counters and gauges in the Prometheus text
// exposition format (version 0.0.4), and the atomic write of a
// node-exporter textfile-collector file.
#pragma once

#include <string>

#include "ipcbus/bus.hpp"

namespace ipcbus::cli {

// The parts of a reading to expose; stat shows them all, ls and errors the
// part they list.
enum MetricSection : unsigned {
  kMetricsBus = 1U << 0,         // segment size, table use, publishers created
  kMetricsPools = 1U << 1,       // chunks free and used per size class
  kMetricsListeners = 1U << 2,   // counters, fill, latency histogram
  kMetricsPublishers = 1U << 3,  // events and bytes published
  kMetricsProcesses = 1U << 4,   // attached processes and whether they live
  kMetricsErrors = 1U << 5,      // error-log counts per kind
  kMetricsTopics = 1U << 6,      // listeners per filter
  kMetricsAll = (1U << 7) - 1,
};

// prometheus_text renders `sections` of `info`. Every sample carries the
// label bus="<name>"; names end in their unit (_bytes, _events, _seconds)
// and counters in _total.
std::string prometheus_text(const BusInfo& info, unsigned sections);

// write_textfile replaces DIR/ipcbus_<bus>.prom with `text` atomically: a
// temporary file in DIR (its name does not end in .prom, so the collector
// skips it), fsync, rename over the target, fsync of DIR. Returns the path.
// Throws CliError (kExitRuntime) naming what failed.
std::string write_textfile(const std::string& dir, const std::string& bus, const std::string& text);

}  // namespace ipcbus::cli
