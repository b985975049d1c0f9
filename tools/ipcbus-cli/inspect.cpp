// inspect.cpp: `ipcbus ls` and `ipcbus stat`, what Bus::inspect() reads from
// the segment, as tables for people or as JSON. Neither creates the bus.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "text.hpp"

namespace ipcbus::cli {

namespace {

using Json = nlohmann::ordered_json;

struct InspectOptions {
  std::string bus;
  std::string what = "listeners";  // ls only: listeners or processes
  bool json = false;
};

std::string str(std::uint64_t v) {
  return std::to_string(v);
}

// Permission bits as ls and chmod write them, e.g. "0600".
std::string mode_text(std::uint32_t mode) {
  char text[16];
  std::snprintf(text, sizeof text, "%04o", mode & 07777U);
  return text;
}

Json listener_json(const ListenerInfo& l) {
  return Json{{"index", l.index},
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
              {"filters", l.filters}};
}

Json counters_json(const ListenerCounters& k) {
  return Json{{"received", k.received},
              {"delivered", k.delivered},
              {"dropped_newest", k.dropped_newest},
              {"dropped_oldest", k.dropped_oldest},
              {"block_timeouts", k.block_timeouts},
              {"high_water_signals", k.high_water_signals},
              {"wakeups", k.wakeups}};
}

void print_listeners(const BusInfo& info, bool json) {
  if (json) {
    Json all = Json::array();
    for (const ListenerInfo& l : info.listeners) {
      all.push_back(listener_json(l));
    }
    std::cout << all.dump(2) << '\n';
    return;
  }
  Table t({"INDEX", "GEN", "PID", "STATE", "OVERFLOW", "WAIT", "BACKLOG", "CAPACITY", "FILTERS"});
  t.right_align({0, 1, 2, 6, 7});
  for (const ListenerInfo& l : info.listeners) {
    t.add_row({str(l.index), str(l.generation), std::to_string(l.owner_pid),
               listener_state_name(l.state), overflow_name(l.overflow), wait_strategy_name(l.wait),
               str(l.fill.used), str(l.fill.capacity), join(l.filters, " ")});
  }
  t.print(std::cout);
}

void print_processes(const BusInfo& info, bool json) {
  const std::int32_t self = getpid();
  if (json) {
    Json all = Json::array();
    for (const ProcessInfo& p : info.processes) {
      all.push_back(Json{{"index", p.index},
                         {"pid", p.pid},
                         {"start_time", p.start_time},
                         {"alive", p.alive},
                         {"listeners", p.listeners},
                         {"self", p.pid == self}});
    }
    std::cout << all.dump(2) << '\n';
    return;
  }
  Table t({"INDEX", "PID", "ALIVE", "LISTENERS", "NOTE"});
  t.right_align({0, 1, 3});
  for (const ProcessInfo& p : info.processes) {
    t.add_row({str(p.index), std::to_string(p.pid), p.alive ? "yes" : "no", str(p.listeners),
               p.pid == self ? "this ipcbus ls" : ""});
  }
  t.print(std::cout);
}

Json stat_json(const BusInfo& info) {
  Json pools = Json::array();
  for (const PoolInfo& p : info.pools) {
    pools.push_back(Json{{"payload_bytes", p.payload_bytes},
                         {"total", p.total},
                         {"free", p.free},
                         {"in_use", p.total - std::min(p.free, p.total)}});
  }
  Json listeners = Json::array();
  for (const ListenerInfo& l : info.listeners) {
    Json one = listener_json(l);
    one["counters"] = counters_json(l.counters);
    listeners.push_back(std::move(one));
  }
  const Config& c = info.config;
  return Json{{"name", info.name},
              {"layout_version", info.layout_version},
              {"segment_bytes", info.segment_bytes},
              {"trie_version", info.trie_version},
              {"trie_nodes", {{"used", info.trie_nodes_used}, {"total", info.config.trie_nodes}}},
              {"subscriptions", {{"used", info.subscriptions_used}, {"total", c.subscriptions}}},
              {"publishers_created", info.publishers_created},
              {"processes_attached", info.processes.size()},
              {"config",
               {{"max_listeners", c.max_listeners},
                {"ring_capacity", c.ring_capacity},
                {"max_topic_bytes", c.max_topic_bytes},
                {"max_level_bytes", c.max_level_bytes},
                {"max_processes", c.max_processes},
                {"mode", mode_text(c.mode)}}},
              {"pools", std::move(pools)},
              {"listeners", std::move(listeners)}};
}

std::string used_of(std::uint64_t used, std::uint64_t total) {
  return str(used) + " / " + str(total);
}

void print_stat(const BusInfo& info) {
  const Config& c = info.config;
  Table summary({"bus", info.name});
  summary.add_row({"layout version", str(info.layout_version)});
  summary.add_row({"segment bytes", str(info.segment_bytes)});
  summary.add_row({"trie nodes", used_of(info.trie_nodes_used, info.config.trie_nodes)});
  summary.add_row({"subscriptions", used_of(info.subscriptions_used, c.subscriptions)});
  summary.add_row({"listeners", used_of(info.listeners.size(), c.max_listeners)});
  summary.add_row({"processes", used_of(info.processes.size(), c.max_processes)});
  summary.add_row({"publishers created", str(info.publishers_created)});
  summary.add_row({"ring capacity", str(c.ring_capacity)});
  summary.add_row({"mode", mode_text(c.mode)});
  summary.add_row({"trie version", str(info.trie_version)});
  summary.print(std::cout);

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
                   "BLOCK_TIMEOUTS", "BACKLOG", "CAPACITY"});
  listeners.right_align({0, 1, 2, 3, 4, 5, 6, 7, 8});
  for (const ListenerInfo& l : info.listeners) {
    const ListenerCounters& k = l.counters;
    listeners.add_row({str(l.index), std::to_string(l.owner_pid), str(k.received), str(k.delivered),
                       str(k.dropped_newest), str(k.dropped_oldest), str(k.block_timeouts),
                       str(l.fill.used), str(l.fill.capacity)});
  }
  listeners.print(std::cout);
}

int run_ls(const InspectOptions& o) {
  const Bus bus = open_bus(o.bus, /*create=*/false);
  const BusInfo info = bus.inspect();
  if (o.what == "processes") {
    print_processes(info, o.json);
  } else {
    print_listeners(info, o.json);
  }
  return kExitOk;
}

int run_stat(const InspectOptions& o) {
  const Bus bus = open_bus(o.bus, /*create=*/false);
  const BusInfo info = bus.inspect();
  if (o.json) {
    std::cout << stat_json(info).dump(2) << '\n';
  } else {
    print_stat(info);
  }
  return kExitOk;
}

}  // namespace

Command add_ls_command(CLI::App& app) {
  auto o = std::make_shared<InspectOptions>();
  CLI::App* cmd = app.add_subcommand("ls", "List the listeners or processes of a bus");
  cmd->footer(
      "List the bus's listeners (the default) or its process entries. Does not create\n"
      "the bus; a missing bus exits 1.");
  add_bus_option(*cmd, o->bus);
  cmd->add_option("WHAT", o->what, "listeners or processes")
      ->check(CLI::IsMember({"listeners", "processes"}))
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print a JSON array instead of a table");
  return {cmd, [o] { return run_ls(*o); }};
}

Command add_stat_command(CLI::App& app) {
  auto o = std::make_shared<InspectOptions>();
  CLI::App* cmd = app.add_subcommand("stat", "Summarise a bus: sizes, pools, listener counters");
  cmd->footer(
      "Summarise the bus: sizes, trie and subscription use, pool use per size class,\n"
      "and the counters of every listener. Does not create the bus; a missing bus\n"
      "exits 1.");
  add_bus_option(*cmd, o->bus);
  cmd->add_flag("--json", o->json, "Print one JSON object instead of tables");
  return {cmd, [o] { return run_stat(*o); }};
}

}  // namespace ipcbus::cli
