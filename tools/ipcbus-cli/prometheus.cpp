// prometheus.cpp: the text exposition of a reading, family by family, and the
// textfile collector's atomic write.
#include "prometheus.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <iterator>
#include <map>
#include <system_error>
#include <utility>
#include <vector>

#include "cli.hpp"
#include "records.hpp"
#include "text.hpp"

namespace ipcbus::cli {

namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

std::string escape_label_value(const std::string& value) {
  std::string out;
  for (char ch : value) {
    if (ch == '\\' || ch == '"') {
      out += '\\';
      out += ch;
    } else if (ch == '\n') {
      out += "\\n";
    } else {
      out += ch;
    }
  }
  return out;
}

// number_text: the shortest text that reads back as `v`.
std::string number_text(double v) {
  char text[40];
  const auto [end, ec] = std::to_chars(text, text + sizeof text, v);
  return ec == std::errc() ? std::string(text, end) : std::string("NaN");
}

// Exposition collects the samples of one metric family at a time and writes
// the family (HELP, TYPE, samples) only when it has samples.
class Exposition {
 public:
  explicit Exposition(std::string bus) : bus_(std::move(bus)) {}

  void family(const std::string& name, const char* type, const char* help) {
    flush();
    name_ = name;
    head_ = "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  }
  // sample writes `suffix` after the family's name ("_bucket", "_count").
  void sample(const Labels& labels, std::uint64_t value, const char* suffix = "") {
    add(labels, std::to_string(value), suffix);
  }
  void sample(const Labels& labels, double value, const char* suffix = "") {
    add(labels, number_text(value), suffix);
  }
  std::string text() {
    flush();
    return std::move(out_);
  }

 private:
  void add(const Labels& labels, const std::string& value, const char* suffix) {
    std::string line = name_ + suffix + "{bus=\"" + escape_label_value(bus_) + "\"";
    for (const auto& [key, text] : labels) {
      line += "," + key + "=\"" + escape_label_value(text) + "\"";
    }
    samples_ += line + "} " + value + "\n";
  }
  void flush() {
    if (!samples_.empty()) {
      out_ += head_ + samples_;
    }
    samples_.clear();
  }

  std::string bus_;
  std::string name_;
  std::string head_;
  std::string samples_;
  std::string out_;
};

std::uint64_t in_use(std::uint64_t total, std::uint64_t free) {
  return total - std::min(free, total);
}

void bus_metrics(const BusInfo& info, Exposition& x) {
  const Config& c = info.config;
  x.family("ipcbus_info", "gauge", "Always 1; the labels say which segment layout the bus has.");
  x.sample({{"layout_version", std::to_string(info.layout_version)}}, std::uint64_t{1});
  x.family("ipcbus_segment_bytes", "gauge", "Size of the shared-memory segment.");
  x.sample({}, info.segment_bytes);
  x.family("ipcbus_ring_allocated_events", "gauge", "Ring entries allocated per listener.");
  x.sample({}, std::uint64_t{c.ring_capacity});
  x.family("ipcbus_listener_slots", "gauge", "Listener slots, in use or free.");
  x.sample({{"state", "used"}}, std::uint64_t{info.listeners.size()});
  x.sample({{"state", "free"}}, in_use(c.max_listeners, info.listeners.size()));
  // The process printing them is left out, as process_metrics() explains.
  const std::int32_t self = getpid();
  const auto alive = static_cast<std::uint64_t>(
      std::count_if(info.processes.begin(), info.processes.end(),
                    [&](const ProcessInfo& p) { return p.alive && p.pid != self; }));
  x.family("ipcbus_process_entries", "gauge",
           "Process entries: attached and alive (this scrape's own left out), attached and dead "
           "(not yet reclaimed), free.");
  x.sample({{"state", "alive"}}, alive);
  const std::uint64_t dead = static_cast<std::uint64_t>(std::count_if(
      info.processes.begin(), info.processes.end(), [](const ProcessInfo& p) { return !p.alive; }));
  x.sample({{"state", "dead"}}, dead);
  x.sample({{"state", "free"}}, in_use(c.max_processes, info.processes.size()));
  x.family("ipcbus_trie_nodes", "gauge", "Topic trie nodes, in use or free.");
  x.sample({{"state", "used"}}, std::uint64_t{info.trie_nodes_used});
  x.sample({{"state", "free"}}, in_use(c.trie_nodes, info.trie_nodes_used));
  x.family("ipcbus_subscriptions", "gauge", "Subscription records, in use or free.");
  x.sample({{"state", "used"}}, std::uint64_t{info.subscriptions_used});
  x.sample({{"state", "free"}}, in_use(c.subscriptions, info.subscriptions_used));
  x.family("ipcbus_trie_changes_total", "counter", "Changes of the topic trie (its version).");
  x.sample({}, info.trie_version);
  x.family("ipcbus_publishers_created_total", "counter", "Publishers made on the bus.");
  x.sample({}, info.publishers_created);
}

void pool_metrics(const BusInfo& info, Exposition& x) {
  x.family("ipcbus_pool_chunks", "gauge", "Payload chunks per size class, free or used.");
  for (const PoolInfo& p : info.pools) {
    const std::string size = std::to_string(p.payload_bytes);
    x.sample({{"class_bytes", size}, {"state", "free"}}, std::uint64_t{p.free});
    x.sample({{"class_bytes", size}, {"state", "used"}}, in_use(p.total, p.free));
  }
}

Labels listener_labels(const ListenerInfo& l) {
  return {{"listener", std::to_string(l.index)}, {"filters", join(l.filters, " ")}};
}

// One family per loop over the listeners, as the format wants each family's
// samples together.
void listener_counter(const BusInfo& info, Exposition& x, const std::string& name, const char* type,
                      const char* help, std::uint64_t (*value)(const ListenerInfo&)) {
  x.family(name, type, help);
  for (const ListenerInfo& l : info.listeners) {
    x.sample(listener_labels(l), value(l));
  }
}

void latency_metrics(const BusInfo& info, Exposition& x) {
  x.family("ipcbus_listener_receive_latency_seconds", "histogram",
           "Publish-to-receive latency of listeners whose histogram is on. The segment keeps "
           "power-of-two buckets and no sum: _sum is estimated from bucket midpoints.");
  for (const ListenerInfo& l : info.listeners) {
    const std::uint64_t total = histogram_total(l.latency);
    if (!l.histogram_enabled && total == 0) {
      continue;
    }
    std::uint64_t cumulative = 0;
    for (int k = 0; k < LatencyHistogram::kBuckets; ++k) {
      cumulative += l.latency.counts[k];
      const std::uint64_t upper = LatencyHistogram::upper_ns(k);
      Labels labels = listener_labels(l);
      labels.emplace_back("le",
                          upper == 0 ? "+Inf" : number_text(static_cast<double>(upper) / 1e9));
      x.sample(labels, cumulative, "_bucket");
    }
    x.sample(listener_labels(l), histogram_sum_estimate_ns(l.latency) / 1e9, "_sum");
    x.sample(listener_labels(l), total, "_count");
  }
}

void listener_metrics(const BusInfo& info, Exposition& x) {
  x.family("ipcbus_listener_info", "gauge",
           "Always 1; the labels give the listener's owner, state and policies.");
  for (const ListenerInfo& l : info.listeners) {
    Labels labels = listener_labels(l);
    labels.insert(labels.end(), {{"pid", std::to_string(l.owner_pid)},
                                 {"state", listener_state_name(l.state)},
                                 {"overflow", overflow_name(l.overflow)},
                                 {"wait", wait_strategy_name(l.wait)}});
    x.sample(labels, std::uint64_t{1});
  }
  listener_counter(info, x, "ipcbus_listener_received_events_total", "counter",
                   "Events the listener took out of its ring.",
                   [](const ListenerInfo& l) { return l.counters.received; });
  listener_counter(info, x, "ipcbus_listener_delivered_events_total", "counter",
                   "Events publishers put into the listener's ring.",
                   [](const ListenerInfo& l) { return l.counters.delivered; });
  x.family("ipcbus_listener_dropped_events_total", "counter",
           "Events the listener lost, by reason: newest (ring full, drop-newest), oldest "
           "(discarded for room, drop-oldest), block_timeout (ring full past a publisher's "
           "timeout, block).");
  for (const ListenerInfo& l : info.listeners) {
    const std::pair<const char*, std::uint64_t> reasons[] = {
        {"newest", l.counters.dropped_newest},
        {"oldest", l.counters.dropped_oldest},
        {"block_timeout", l.counters.block_timeouts}};
    for (const auto& [reason, n] : reasons) {
      Labels labels = listener_labels(l);
      labels.emplace_back("reason", reason);
      x.sample(labels, n);
    }
  }
  listener_counter(
      info, x, "ipcbus_listener_high_water_signals_total", "counter",
      "Publishes that found the ring above its high-water mark (adaptive listeners only).",
      [](const ListenerInfo& l) { return l.counters.high_water_signals; });
  listener_counter(info, x, "ipcbus_listener_wakeups_total", "counter",
                   "Futex wakes publishers made for the listener.",
                   [](const ListenerInfo& l) { return l.counters.wakeups; });
  listener_counter(info, x, "ipcbus_listener_backlog_events", "gauge",
                   "Events queued in the ring (approximate while publishers run).",
                   [](const ListenerInfo& l) { return std::uint64_t{l.fill.used}; });
  listener_counter(info, x, "ipcbus_listener_capacity_events", "gauge",
                   "Effective ring capacity of the listener.",
                   [](const ListenerInfo& l) { return std::uint64_t{l.fill.capacity}; });
  listener_counter(info, x, "ipcbus_listener_behind", "gauge",
                   "1 when the backlog is above the listener's high-water mark.",
                   [](const ListenerInfo& l) { return std::uint64_t{l.fill.behind ? 1U : 0U}; });
  latency_metrics(info, x);
}

void publisher_metrics(const BusInfo& info, Exposition& x) {
  auto labels = [](const PublisherInfo& p) {
    return Labels{{"publisher", std::to_string(p.id)}, {"pid", std::to_string(p.pid)}};
  };
  x.family("ipcbus_publisher_published_events_total", "counter",
           "Events a live publisher published (with or without listeners).");
  for (const PublisherInfo& p : info.publishers) {
    x.sample(labels(p), p.published);
  }
  x.family("ipcbus_publisher_published_bytes_total", "counter",
           "Payload bytes of the events a live publisher published.");
  for (const PublisherInfo& p : info.publishers) {
    x.sample(labels(p), p.bytes);
  }
}

// process_metrics leaves out the process printing them: a scrape every
// minute would otherwise add a new pid label each time.
void process_metrics(const BusInfo& info, Exposition& x) {
  std::vector<ProcessInfo> others;
  std::copy_if(info.processes.begin(), info.processes.end(), std::back_inserter(others),
               [self = getpid()](const ProcessInfo& p) { return p.pid != self; });
  auto labels = [](const ProcessInfo& p) {
    return Labels{{"index", std::to_string(p.index)}, {"pid", std::to_string(p.pid)}};
  };
  x.family("ipcbus_process_alive", "gauge", "1 while an attached process lives, 0 once it died.");
  for (const ProcessInfo& p : others) {
    x.sample(labels(p), std::uint64_t{p.alive ? 1U : 0U});
  }
  x.family("ipcbus_process_listeners", "gauge", "Listeners an attached process owns.");
  for (const ProcessInfo& p : others) {
    x.sample(labels(p), std::uint64_t{p.listeners});
  }
}

void error_metrics(const BusInfo& info, Exposition& x) {
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> kinds;  // count, last ns
  for (const ErrorLogEntry& e : info.errors) {
    auto& [count, last] = kinds[e.kind];
    count += e.count;
    last = std::max(last, e.last_realtime_ns);
  }
  x.family("ipcbus_error_log_events_total", "counter",
           "Notable events in the bus's error log, by kind.");
  for (const auto& [kind, v] : kinds) {
    x.sample({{"kind", kind}}, v.first);
  }
  x.family("ipcbus_error_log_last_timestamp_seconds", "gauge",
           "When an event of the kind was last logged, in seconds since the epoch.");
  for (const auto& [kind, v] : kinds) {
    x.sample({{"kind", kind}}, static_cast<double>(v.second) / 1e9);
  }
}

void topic_metrics(const BusInfo& info, Exposition& x) {
  x.family("ipcbus_filter_listeners", "gauge", "Listeners holding a topic filter.");
  for (const Json& row : topic_records(info)) {
    x.sample({{"filter", row["filter"].get<std::string>()}}, row["listeners"].get<std::uint64_t>());
  }
}

[[noreturn]] void fail(const std::string& what, const std::string& path) {
  throw CliError(kExitRuntime, what + " " + path + ": " + std::generic_category().message(errno));
}

}  // namespace

std::string prometheus_text(const BusInfo& info, unsigned sections) {
  Exposition x(info.name);
  if ((sections & kMetricsBus) != 0) {
    bus_metrics(info, x);
  }
  if ((sections & kMetricsPools) != 0) {
    pool_metrics(info, x);
  }
  if ((sections & kMetricsListeners) != 0) {
    listener_metrics(info, x);
  }
  if ((sections & kMetricsPublishers) != 0) {
    publisher_metrics(info, x);
  }
  if ((sections & kMetricsProcesses) != 0) {
    process_metrics(info, x);
  }
  if ((sections & kMetricsErrors) != 0) {
    error_metrics(info, x);
  }
  if ((sections & kMetricsTopics) != 0) {
    topic_metrics(info, x);
  }
  return x.text();
}

std::string write_textfile(const std::string& dir, const std::string& bus,
                           const std::string& text) {
  std::string target = dir + "/ipcbus_" + bus + ".prom";
  std::string temp = dir + "/.ipcbus_" + bus + ".prom.XXXXXX";
  const int fd = mkstemp(temp.data());
  if (fd < 0) {
    fail("cannot create a temporary file like", temp);
  }
  auto give_up = [&](const char* what) {
    const int saved = errno;
    close(fd);
    unlink(temp.c_str());
    errno = saved;
    fail(what, temp);
  };
  // The collector runs as another user: the file must be world-readable
  // (mkstemp makes it 0600).
  if (fchmod(fd, 0644) != 0) {
    give_up("cannot chmod");
  }
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      give_up("cannot write");
    }
    done += static_cast<std::size_t>(n);
  }
  if (fsync(fd) != 0) {
    give_up("cannot fsync");
  }
  if (close(fd) != 0) {
    unlink(temp.c_str());
    fail("cannot close", temp);
  }
  if (rename(temp.c_str(), target.c_str()) != 0) {
    const int saved = errno;
    unlink(temp.c_str());
    errno = saved;
    fail("cannot rename the temporary file to", target);
  }
  // The rename itself is durable once the directory is synced.
  const int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    fsync(dir_fd);
    close(dir_fd);
  }
  return target;
}

}  // namespace ipcbus::cli
