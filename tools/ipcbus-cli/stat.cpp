// stat.cpp: `ipcbus stat`, the whole reading of a bus: sizes, pools, every
// listener's counters and latency, publishers, the error log's size. As
// tables, JSON, NDJSON records, long-form CSV, or Prometheus text (to stdout
// or atomically into a node-exporter textfile directory).
#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

#include "cli.hpp"
#include "output.hpp"
#include "prometheus.hpp"
#include "records.hpp"
#include "text.hpp"

namespace ipcbus::cli {

namespace {

struct StatOptions {
  std::string bus;
  FormatOption format;
  std::string textfile_dir;
};

std::string str(std::uint64_t v) {
  return std::to_string(v);
}

std::string used_of(std::uint64_t used, std::uint64_t total) {
  return str(used) + " / " + str(total);
}

std::string quantile_text(const ListenerInfo& l, double q) {
  if (!l.histogram_enabled && histogram_total(l.latency) == 0) {
    return "-";
  }
  const auto v = histogram_quantile(l.latency, q);
  return v ? duration_ns(*v) : "-";
}

void print_summary(const BusInfo& info) {
  const Config& c = info.config;
  Table summary({"bus", info.name});
  summary.add_row({"layout version", str(info.layout_version)});
  summary.add_row({"segment bytes", str(info.segment_bytes) + " (" +
                                        byte_size(static_cast<double>(info.segment_bytes)) + ")"});
  summary.add_row({"trie nodes", used_of(info.trie_nodes_used, c.trie_nodes)});
  summary.add_row({"subscriptions", used_of(info.subscriptions_used, c.subscriptions)});
  summary.add_row({"listeners", used_of(info.listeners.size(), c.max_listeners)});
  summary.add_row({"processes", used_of(info.processes.size(), c.max_processes)});
  summary.add_row({"publishers", used_of(info.publishers.size(), c.max_publishers) + " live, " +
                                     str(info.publishers_created) + " created"});
  summary.add_row({"ring capacity", str(c.ring_capacity)});
  summary.add_row({"mode", mode_text(c.mode) + (c.group.empty() ? "" : " group " + c.group)});
  summary.add_row({"trie version", str(info.trie_version)});
  const std::size_t errors = info.errors.size();
  summary.add_row({"error log", errors == 0 ? std::string("empty")
                                            : str(errors) + (errors == 1 ? " entry" : " entries") +
                                                  " (see ipcbus errors)"});
  summary.print(std::cout);
}

void print_tables(const BusInfo& info) {
  print_summary(info);

  std::cout << '\n';
  Table pools({"POOL", "PAYLOAD_BYTES", "TOTAL", "FREE", "IN_USE"});
  pools.right_align({0, 1, 2, 3, 4});
  for (std::size_t k = 0; k < info.pools.size(); ++k) {
    const PoolInfo& p = info.pools[k];
    pools.add_row({str(k), str(p.payload_bytes), str(p.total), str(p.free),
                   str(p.total - std::min(p.free, p.total))});
  }
  pools.print(std::cout);

  std::cout << '\n';
  Table listeners({"INDEX", "PID", "RECEIVED", "DELIVERED", "DROPPED_NEWEST", "DROPPED_OLDEST",
                   "BLOCK_TIMEOUTS", "BACKLOG", "CAPACITY", "P50", "P99"});
  listeners.right_align({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  for (const ListenerInfo& l : info.listeners) {
    const ListenerCounters& k = l.counters;
    listeners.add_row({str(l.index), std::to_string(l.owner_pid), str(k.received), str(k.delivered),
                       str(k.dropped_newest), str(k.dropped_oldest), str(k.block_timeouts),
                       str(l.fill.used), str(l.fill.capacity), quantile_text(l, 0.50),
                       quantile_text(l, 0.99)});
  }
  listeners.print(std::cout);

  if (!info.publishers.empty()) {
    std::cout << '\n';
    Table publishers({"PUBLISHER", "PID", "PUBLISHED", "BYTES"});
    publishers.right_align({0, 1, 2, 3});
    for (const PublisherInfo& p : info.publishers) {
      publishers.add_row({str(p.id), std::to_string(p.pid), str(p.published), str(p.bytes)});
    }
    publishers.print(std::cout);
  }
}

Json stat_json(const BusInfo& info) {
  Json all = bus_record(info);
  Json& pools = all["pools"] = Json::array();
  for (const PoolInfo& p : info.pools) {
    pools.push_back(pool_record(p));
  }
  Json& listeners = all["listeners"] = Json::array();
  for (const ListenerInfo& l : info.listeners) {
    listeners.push_back(listener_record(l, /*detail=*/true));
  }
  Json& publishers = all["publishers"] = Json::array();
  for (const PublisherInfo& p : info.publishers) {
    publishers.push_back(publisher_record(p));
  }
  Json& errors = all["errors"] = Json::array();
  for (const ErrorLogEntry& e : info.errors) {
    errors.push_back(error_record(e));
  }
  return all;
}

// A record of the reading with its kind first, and what identifies it.
struct Record {
  const char* kind;
  std::string id;
  Json fields;
};

std::vector<Record> stat_records(const BusInfo& info) {
  std::vector<Record> records;
  records.push_back({"bus", info.name, bus_record(info)});
  for (const PoolInfo& p : info.pools) {
    records.push_back({"pool", str(p.payload_bytes), pool_record(p)});
  }
  for (const ListenerInfo& l : info.listeners) {
    records.push_back({"listener", str(l.index), listener_record(l, /*detail=*/true)});
  }
  for (const PublisherInfo& p : info.publishers) {
    records.push_back({"publisher", str(p.id), publisher_record(p)});
  }
  for (std::size_t i = 0; i < info.errors.size(); ++i) {
    records.push_back({"error", str(i), error_record(info.errors[i])});
  }
  return records;
}

// ndjson: one object per record, {"record": KIND, ...fields}.
void print_ndjson(const BusInfo& info) {
  for (const Record& r : stat_records(info)) {
    Json line{{"record", r.kind}};
    line.update(r.fields);
    std::cout << json_text(line) << '\n';
  }
}

// csv: long form, one value per row, so that records of different kinds
// share one header: record,id,key,value.
void print_csv(const BusInfo& info) {
  std::cout << "record,id,key,value\r\n";
  for (const Record& r : stat_records(info)) {
    const Json flat = flatten(r.fields);  // named: items() must not outlive it
    for (const auto& [key, value] : flat.items()) {
      std::string text = value.is_null()      ? ""
                         : value.is_boolean() ? (value.get<bool>() ? "true" : "false")
                                              : cell_text(value);
      std::cout << r.kind << ',' << csv_field(r.id) << ',' << csv_field(key) << ','
                << csv_field(text) << "\r\n";
    }
  }
}

int run_stat(const StatOptions& o) {
  Format format = o.format.format();
  if (!o.textfile_dir.empty()) {
    if (format != Format::kTable && format != Format::kPrometheus) {
      throw CliError(kExitUsage, "--textfile-dir writes Prometheus text; drop -o/--json");
    }
    format = Format::kPrometheus;
  }
  const Bus bus = open_bus(o.bus, /*create=*/false);
  const BusInfo info = bus.inspect();
  switch (format) {
    case Format::kTable:
      print_tables(info);
      break;
    case Format::kJson:
      std::cout << json_text(stat_json(info), 2) << '\n';
      break;
    case Format::kNdjson:
      print_ndjson(info);
      break;
    case Format::kCsv:
      print_csv(info);
      break;
    case Format::kPrometheus:
      if (o.textfile_dir.empty()) {
        std::cout << prometheus_text(info, kMetricsAll);
      } else {
        write_textfile(o.textfile_dir, info.name, prometheus_text(info, kMetricsAll));
      }
      break;
  }
  return kExitOk;
}

}  // namespace

Command add_stat_command(CLI::App& app) {
  auto o = std::make_shared<StatOptions>();
  CLI::App* cmd = app.add_subcommand("stat", "Summarise a bus: sizes, pools, listener counters");
  cmd->footer(
      "Summarise the bus: sizes, trie and subscription use, pool use per size class,\n"
      "the counters and latency quantiles of every listener (P50/P99 need the\n"
      "listener's histogram on, e.g. 'ipcbus sub --latency-histogram'), and the live\n"
      "publishers. Reads the segment directly, so it works while the agent is down.\n"
      "Does not create the bus; a missing bus exits 1.\n"
      "\n"
      "-o ndjson prints one record per line ({\"record\": \"bus|pool|listener|publisher|\n"
      "error\", ...}); -o csv prints the same records in long form (record,id,key,value);\n"
      "-o prometheus prints the text exposition format. --textfile-dir DIR writes that\n"
      "to DIR/ipcbus_<bus>.prom atomically (for node-exporter's textfile collector) and\n"
      "prints nothing.\n"
      "\n"
      "Examples:\n"
      "  ipcbus stat\n"
      "  ipcbus stat -o prometheus\n"
      "  ipcbus stat --textfile-dir /var/lib/prometheus/node-exporter");
  add_bus_option(*cmd, o->bus);
  add_format_option(*cmd, o->format, {"table", "json", "ndjson", "csv", "prometheus"});
  cmd->add_option("--textfile-dir", o->textfile_dir,
                  "Write the Prometheus text atomically to DIR/ipcbus_<bus>.prom")
      ->type_name("DIR")
      ->check(CLI::ExistingDirectory);
  return {cmd, [o] { return run_stat(*o); }};
}

}  // namespace ipcbus::cli
