// inspect.cpp: `ipcbus ls topics|listeners|processes` and `ipcbus errors`,
// what Bus::inspect() reads from the segment, in any output format. Neither
// creates the bus, and neither needs the agent.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

#include "cli.hpp"
#include "output.hpp"
#include "prometheus.hpp"
#include "records.hpp"

namespace ipcbus::cli {

namespace {

const std::vector<std::string> kAllFormats = {"table", "json", "ndjson", "csv", "prometheus"};

struct LsOptions {
  std::string bus;
  std::string what = "listeners";
  FormatOption format;
};

struct ErrorsOptions {
  std::string bus;
  FormatOption format;
};

void print_listeners(const BusInfo& info, Format format) {
  if (format == Format::kPrometheus) {
    std::cout << prometheus_text(info, kMetricsListeners);
    return;
  }
  Json rows = Json::array();
  for (const ListenerInfo& l : info.listeners) {
    Json row = listener_record(l, /*detail=*/false);
    if (format == Format::kTable) {
      // A killed owner's listener keeps its state until crash cleanup runs.
      for (const ProcessInfo& p : info.processes) {
        if (p.pid == l.owner_pid && !p.alive) {
          row["state"] = std::string(listener_state_name(l.state)) + " (owner dead)";
        }
      }
    }
    rows.push_back(std::move(row));
  }
  print_records(std::cout, format, rows,
                {{"INDEX", "index"},
                 {"GEN", "generation"},
                 {"PID", "pid"},
                 {"STATE", "state"},
                 {"OVERFLOW", "overflow"},
                 {"WAIT", "wait"},
                 {"BACKLOG", "backlog"},
                 {"CAPACITY", "capacity"},
                 {"FILTERS", "filters"}},
                listener_record(ListenerInfo{}, false));
}

void print_processes(const BusInfo& info, Format format) {
  if (format == Format::kPrometheus) {
    std::cout << prometheus_text(info, kMetricsProcesses);
    return;
  }
  const std::int32_t self = getpid();
  Json rows = Json::array();
  for (const ProcessInfo& p : info.processes) {
    Json row = process_record(p, self);
    if (format == Format::kTable) {
      row["note"] = p.pid == self           ? "this ipcbus ls"
                    : !p.same_pid_namespace ? "other pid namespace"
                                            : "";
    }
    rows.push_back(std::move(row));
  }
  print_records(std::cout, format, rows,
                {{"INDEX", "index"},
                 {"PID", "pid"},
                 {"STATE", "state"},
                 {"LISTENERS", "listeners"},
                 {"PUBLISHERS", "publishers"},
                 {"CHUNKS", "chunks"},
                 {"NOTE", "note"}},
                process_record(ProcessInfo{}, self));
}

void print_topics(const BusInfo& info, Format format) {
  if (format == Format::kPrometheus) {
    std::cout << prometheus_text(info, kMetricsTopics);
    return;
  }
  const Json example{{"filter", ""}, {"listeners", 0}, {"indices", Json::array()}};
  print_records(std::cout, format, topic_records(info),
                {{"FILTER", "filter"}, {"LISTENERS", "listeners"}, {"INDICES", "indices"}},
                example);
}

int run_ls(const LsOptions& o) {
  const Bus bus = open_bus(o.bus, /*create=*/false);
  const BusInfo info = bus.inspect();
  const Format format = o.format.format();
  if (o.what == "processes") {
    print_processes(info, format);
  } else if (o.what == "topics") {
    print_topics(info, format);
  } else {
    print_listeners(info, format);
  }
  return kExitOk;
}

int run_errors(const ErrorsOptions& o) {
  const Bus bus = open_bus(o.bus, /*create=*/false);
  const BusInfo info = bus.inspect();
  const Format format = o.format.format();
  if (format == Format::kPrometheus) {
    std::cout << prometheus_text(info, kMetricsErrors);
    return kExitOk;
  }
  Json rows = Json::array();
  for (const ErrorLogEntry& e : info.errors) {
    rows.push_back(error_record(e));
  }
  if (format == Format::kTable && rows.empty()) {
    std::cerr << "ipcbus errors: the error log of bus '" << info.name << "' is empty\n";
    return kExitOk;
  }
  print_records(std::cout, format, rows,
                {{"KIND", "kind"},
                 {"COUNT", "count"},
                 {"FIRST", "first"},
                 {"LAST", "last"},
                 {"MESSAGE", "message"}},
                error_record(ErrorLogEntry{}));
  return kExitOk;
}

}  // namespace

Command add_ls_command(CLI::App& app) {
  auto o = std::make_shared<LsOptions>();
  CLI::App* cmd = app.add_subcommand("ls", "List the listeners, topic filters or processes");
  cmd->footer(
      "List what the segment holds: the listeners (the default) with owner, policy\n"
      "and backlog; the distinct topic filters (topics) with how many listeners hold\n"
      "each (publishers' topics are not recorded, so only filters appear); or the\n"
      "process entries. Reads the segment directly, so it works while the agent is\n"
      "down. Does not create the bus; a missing bus exits 1.\n"
      "\n"
      "Examples:\n"
      "  ipcbus ls\n"
      "  ipcbus ls topics -o csv\n"
      "  ipcbus ls processes --json");
  add_bus_option(*cmd, o->bus);
  cmd->add_option("WHAT", o->what, "listeners, topics or processes")
      ->check(CLI::IsMember({"listeners", "topics", "processes"}))
      ->capture_default_str();
  add_format_option(*cmd, o->format, kAllFormats);
  return {cmd, [o] { return run_ls(*o); }};
}

Command add_errors_command(CLI::App& app) {
  auto o = std::make_shared<ErrorsOptions>();
  CLI::App* cmd = app.add_subcommand("errors", "Print the bus's log of notable events");
  cmd->footer(
      "Print the error log kept inside the segment: notable events (refused attaches,\n"
      "reclaims of dead processes' resources, drops past a threshold, version\n"
      "mismatches), deduplicated by kind and message, each with how often it happened\n"
      "and when first and last (ISO 8601, UTC), oldest first. Library code and the\n"
      "agent write it off the data path. An empty log prints nothing (a note on\n"
      "stderr for the table). Does not create the bus; a missing bus exits 1.");
  add_bus_option(*cmd, o->bus);
  add_format_option(*cmd, o->format, kAllFormats);
  return {cmd, [o] { return run_errors(*o); }};
}

}  // namespace ipcbus::cli
