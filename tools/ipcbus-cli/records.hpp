// records.hpp: what Bus::inspect() reads, as JSON records (the one shape that
// ls, stat and errors print in every format), and the arithmetic on two
// readings that rates and latency quantiles need (top, hz, advise).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "ipcbus/bus.hpp"
#include "output.hpp"

namespace ipcbus::cli {

// --- records -----------------------------------------------------------------

// Permission bits as ls and chmod write them, e.g. "0600".
std::string mode_text(std::uint32_t mode);

// listener_record: identity, policy, fill and filters; with `detail` also the
// counters and the latency histogram.
Json listener_record(const ListenerInfo& l, bool detail);
Json process_record(const ProcessInfo& p, std::int32_t self_pid);
Json pool_record(const PoolInfo& p);
Json publisher_record(const PublisherInfo& p);
Json error_record(const ErrorLogEntry& e);
Json latency_record(const LatencyHistogram& h, bool enabled);

// topic_records: the distinct filters the listeners hold, each with how many
// listeners (and which) hold it, sorted by filter.
Json topic_records(const BusInfo& info);

// bus_record: name, sizes, use of the fixed tables, and the configuration.
Json bus_record(const BusInfo& info);

// --- two readings ------------------------------------------------------------

using Clock = std::chrono::steady_clock;

// A reading of the bus and when it was taken.
struct Snapshot {
  BusInfo info;
  Clock::time_point at;
};
Snapshot take_snapshot(const Bus& bus);

// A listener slot is the same listener in two readings when its index and
// generation agree; a publisher when its id does.
const ListenerInfo* find_listener(const BusInfo& info, std::uint32_t index,
                                  std::uint32_t generation);
const PublisherInfo* find_publisher(const BusInfo& info, std::uint32_t id);

// counter_delta is after - before, or after when the counter went back (the
// slot was reset in between).
std::uint64_t counter_delta(std::uint64_t before, std::uint64_t after);

// What one listener did between two readings.
struct ListenerDelta {
  double seconds = 0;
  std::uint64_t received = 0;
  std::uint64_t delivered = 0;
  std::uint64_t dropped_newest = 0;
  std::uint64_t dropped_oldest = 0;
  std::uint64_t block_timeouts = 0;
  LatencyHistogram latency;  // receives in the interval, by bucket
  // Events publishers tried to give it: put in its ring, or refused there.
  std::uint64_t offered() const { return delivered + dropped_newest + block_timeouts; }
  std::uint64_t dropped() const { return dropped_newest + dropped_oldest + block_timeouts; }
  double per_second(std::uint64_t n) const { return seconds > 0 ? n / seconds : 0.0; }
};
// listener_delta compares `now` with the same listener in `before`; nothing
// when `before` did not hold it (it is new since).
std::optional<ListenerDelta> listener_delta(const Snapshot& before, const Snapshot& after,
                                            const ListenerInfo& now);

// --- latency histograms ------------------------------------------------------

std::uint64_t histogram_total(const LatencyHistogram& h);
LatencyHistogram histogram_minus(const LatencyHistogram& after, const LatencyHistogram& before);
// Lower bound of bucket k in nanoseconds.
std::uint64_t bucket_lower_ns(int k);
// histogram_quantile estimates the q-quantile (0 < q <= 1) in nanoseconds by
// linear interpolation inside the bucket it falls in (as Prometheus's
// histogram_quantile does); in the open last bucket it answers that bucket's
// lower bound. Nothing for an empty histogram.
std::optional<double> histogram_quantile(const LatencyHistogram& h, double q);
// histogram_sum_estimate_ns: the sum of all latencies if each receive sat in
// the middle of its bucket (the last bucket counts at its lower bound). The
// segment keeps no exact sum.
double histogram_sum_estimate_ns(const LatencyHistogram& h);

}  // namespace ipcbus::cli
