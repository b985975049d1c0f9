// records.cpp: JSON records of what Bus::inspect() reads, deltas between two
// readings, and latency quantiles from the coarse histogram.
#include "records.hpp"

#include <algorithm>
#include <cstdio>
#include <map>

namespace ipcbus::cli {

// --- records -----------------------------------------------------------------

std::string mode_text(std::uint32_t mode) {
  char text[16];
  std::snprintf(text, sizeof text, "%04o", mode & 07777U);
  return text;
}

Json latency_record(const LatencyHistogram& h, bool enabled) {
  Json buckets = Json::array();
  for (int k = 0; k < LatencyHistogram::kBuckets; ++k) {
    const std::uint64_t upper = LatencyHistogram::upper_ns(k);
    buckets.push_back(Json{{"le_ns", upper == 0 ? Json() : Json(upper)}, {"count", h.counts[k]}});
  }
  auto quantile = [&](double q) -> Json {
    const auto v = histogram_quantile(h, q);
    return v ? Json(static_cast<std::uint64_t>(*v)) : Json();
  };
  return Json{{"enabled", enabled},       {"count", histogram_total(h)},
              {"p50_ns", quantile(0.50)}, {"p90_ns", quantile(0.90)},
              {"p99_ns", quantile(0.99)}, {"buckets", std::move(buckets)}};
}

Json listener_record(const ListenerInfo& l, bool detail) {
  Json r{{"index", l.index},
         {"generation", l.generation},
         {"pid", l.owner_pid},
         {"state", listener_state_name(l.state)},
         {"overflow", overflow_name(l.overflow)},
         {"wait", wait_strategy_name(l.wait)},
         {"adaptive", l.adaptive},
         {"backlog", l.fill.used},
         {"capacity", l.fill.capacity},
         {"allocated", l.fill.allocated},
         {"behind", l.fill.behind},
         {"latency_histogram", l.histogram_enabled},
         {"filters", l.filters}};
  if (detail) {
    const ListenerCounters& k = l.counters;
    r["counters"] = Json{{"received", k.received},
                         {"delivered", k.delivered},
                         {"dropped_newest", k.dropped_newest},
                         {"dropped_oldest", k.dropped_oldest},
                         {"block_timeouts", k.block_timeouts},
                         {"high_water_signals", k.high_water_signals},
                         {"wakeups", k.wakeups}};
    r["latency"] = latency_record(l.latency, l.histogram_enabled);
  }
  return r;
}

Json process_record(const ProcessInfo& p, std::int32_t self_pid) {
  const char* state = p.reclaiming ? "reclaiming" : p.alive ? "alive" : "dead";
  return Json{{"index", p.index},
              {"pid", p.pid},
              {"start_time", p.start_time},
              {"alive", p.alive},
              {"state", state},
              {"same_pid_namespace", p.same_pid_namespace},
              {"listeners", p.listeners},
              {"publishers", p.publishers},
              {"chunks", p.chunks},
              {"self", p.pid == self_pid}};
}

Json pool_record(const PoolInfo& p) {
  return Json{{"payload_bytes", p.payload_bytes},
              {"total", p.total},
              {"free", p.free},
              {"in_use", p.total - std::min(p.free, p.total)}};
}

Json publisher_record(const PublisherInfo& p) {
  return Json{{"id", p.id}, {"pid", p.pid}, {"published", p.published}, {"bytes", p.bytes}};
}

Json error_record(const ErrorLogEntry& e) {
  return Json{{"kind", e.kind},
              {"count", e.count},
              {"first", iso8601_utc(e.first_realtime_ns)},
              {"last", iso8601_utc(e.last_realtime_ns)},
              {"first_realtime_ns", e.first_realtime_ns},
              {"last_realtime_ns", e.last_realtime_ns},
              {"message", e.message}};
}

Json topic_records(const BusInfo& info) {
  std::map<std::string, std::vector<std::uint32_t>> holders;  // sorted by filter
  for (const ListenerInfo& l : info.listeners) {
    for (const std::string& f : l.filters) {
      holders[f].push_back(l.index);
    }
  }
  Json rows = Json::array();
  for (const auto& [filter, indices] : holders) {
    rows.push_back(Json{{"filter", filter}, {"listeners", indices.size()}, {"indices", indices}});
  }
  return rows;
}

Json bus_record(const BusInfo& info) {
  const Config& c = info.config;
  Json pools = Json::array();
  for (const PoolClass& p : c.pools) {
    pools.push_back(Json{{"payload_bytes", p.payload_bytes}, {"count", p.count}});
  }
  return Json{{"name", info.name},
              {"layout_version", info.layout_version},
              {"segment_bytes", info.segment_bytes},
              {"trie_version", info.trie_version},
              {"trie_nodes", {{"used", info.trie_nodes_used}, {"total", c.trie_nodes}}},
              {"subscriptions", {{"used", info.subscriptions_used}, {"total", c.subscriptions}}},
              {"publishers_created", info.publishers_created},
              {"processes_attached", info.processes.size()},
              {"config",
               {{"max_listeners", c.max_listeners},
                {"ring_capacity", c.ring_capacity},
                {"trie_nodes", c.trie_nodes},
                {"subscriptions", c.subscriptions},
                {"max_topic_bytes", c.max_topic_bytes},
                {"max_level_bytes", c.max_level_bytes},
                {"max_processes", c.max_processes},
                {"max_publishers", c.max_publishers},
                {"mode", mode_text(c.mode)},
                {"group", c.group},
                {"pools", std::move(pools)}}}};
}

// --- two readings ------------------------------------------------------------

Snapshot take_snapshot(const Bus& bus) {
  Snapshot s{bus.inspect(), Clock::now()};
  return s;
}

const ListenerInfo* find_listener(const BusInfo& info, std::uint32_t index,
                                  std::uint32_t generation) {
  for (const ListenerInfo& l : info.listeners) {
    if (l.index == index && l.generation == generation) {
      return &l;
    }
  }
  return nullptr;
}

const PublisherInfo* find_publisher(const BusInfo& info, std::uint32_t id) {
  for (const PublisherInfo& p : info.publishers) {
    if (p.id == id) {
      return &p;
    }
  }
  return nullptr;
}

std::uint64_t counter_delta(std::uint64_t before, std::uint64_t after) {
  return after >= before ? after - before : after;
}

std::optional<ListenerDelta> listener_delta(const Snapshot& before, const Snapshot& after,
                                            const ListenerInfo& now) {
  const ListenerInfo* was = find_listener(before.info, now.index, now.generation);
  if (was == nullptr) {
    return std::nullopt;
  }
  ListenerDelta d;
  d.seconds = std::chrono::duration<double>(after.at - before.at).count();
  const ListenerCounters& a = was->counters;
  const ListenerCounters& b = now.counters;
  d.received = counter_delta(a.received, b.received);
  d.delivered = counter_delta(a.delivered, b.delivered);
  d.dropped_newest = counter_delta(a.dropped_newest, b.dropped_newest);
  d.dropped_oldest = counter_delta(a.dropped_oldest, b.dropped_oldest);
  d.block_timeouts = counter_delta(a.block_timeouts, b.block_timeouts);
  d.latency = histogram_minus(now.latency, was->latency);
  return d;
}

// --- latency histograms ------------------------------------------------------

std::uint64_t histogram_total(const LatencyHistogram& h) {
  std::uint64_t n = 0;
  for (std::uint64_t c : h.counts) {
    n += c;
  }
  return n;
}

LatencyHistogram histogram_minus(const LatencyHistogram& after, const LatencyHistogram& before) {
  LatencyHistogram d;
  for (int k = 0; k < LatencyHistogram::kBuckets; ++k) {
    d.counts[k] = counter_delta(before.counts[k], after.counts[k]);
  }
  return d;
}

std::uint64_t bucket_lower_ns(int k) {
  return k == 0 ? 0 : LatencyHistogram::upper_ns(k - 1);
}

std::optional<double> histogram_quantile(const LatencyHistogram& h, double q) {
  const std::uint64_t total = histogram_total(h);
  if (total == 0) {
    return std::nullopt;
  }
  const double rank = q * static_cast<double>(total);
  double below = 0;
  for (int k = 0; k < LatencyHistogram::kBuckets; ++k) {
    const auto count = static_cast<double>(h.counts[k]);
    if (count > 0 && below + count >= rank) {
      const auto lower = static_cast<double>(bucket_lower_ns(k));
      if (k == LatencyHistogram::kBuckets - 1) {
        return lower;  // open bucket: all we know is "at least"
      }
      const auto upper = static_cast<double>(LatencyHistogram::upper_ns(k));
      return lower + (upper - lower) * ((rank - below) / count);
    }
    below += count;
  }
  return static_cast<double>(bucket_lower_ns(LatencyHistogram::kBuckets - 1));
}

double histogram_sum_estimate_ns(const LatencyHistogram& h) {
  double sum = 0;
  for (int k = 0; k < LatencyHistogram::kBuckets; ++k) {
    const auto lower = static_cast<double>(bucket_lower_ns(k));
    const double middle = k == LatencyHistogram::kBuckets - 1
                              ? lower
                              : (lower + static_cast<double>(LatencyHistogram::upper_ns(k))) / 2;
    sum += middle * static_cast<double>(h.counts[k]);
  }
  return sum;
}

}  // namespace ipcbus::cli
