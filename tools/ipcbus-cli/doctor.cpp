// doctor.cpp: `ipcbus doctor`, the invariants of a live bus checked from the
// outside (Bus::check), plus what only an operator can fix: a vanished name
// in /dev/shm, no agent. With --repair it first cleans up after dead
// processes, as the agent would.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <iostream>
#include <memory>
#include <thread>

#include "cli.hpp"
#include "output.hpp"

namespace ipcbus::cli {

namespace {

struct DoctorOptions {
  std::string bus;
  bool repair = false;
  bool json = false;
};

// A live bus moves while we read it: a chunk between two steps of a take
// looks wrong for a few nanoseconds. Only what two looks agree on counts.
std::vector<std::string> stable_violations(const Bus& bus) {
  std::vector<std::string> first = bus.check();
  if (first.empty()) {
    return first;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const std::vector<std::string> second = bus.check();
  std::vector<std::string> both;
  for (const std::string& v : first) {
    if (std::find(second.begin(), second.end(), v) != second.end()) {
      both.push_back(v);
    }
  }
  return both;
}

int run_doctor(const DoctorOptions& o) {
  Bus bus = open_bus(o.bus, /*create=*/false);
  Json repaired = nullptr;
  if (o.repair) {
    const CleanupReport r = bus.reclaim_dead();
    repaired =
        Json{{"processes", r.processes}, {"listeners", r.listeners}, {"publishers", r.publishers},
             {"chunks", r.chunks},       {"repaired", r.repaired},   {"swept", r.swept}};
  }
  std::vector<std::string> violations = stable_violations(bus);
  const BusInfo info = bus.inspect();
  std::vector<std::string> warnings;
  if (!bus.name_linked()) {
    violations.push_back("the bus's name /dev/shm/ipcbus." + info.name +
                         " is gone or names another segment while processes still map this one "
                         "(systemd-logind RemoveIPC? see docs/failure-model.md)");
  }
  if (info.agent_pid == 0) {
    warnings.push_back(
        "no agent serves this bus: dead processes are cleaned up only when "
        "another process attaches (run ipcbus-agent)");
  }
  if (o.json) {
    Json out{{"bus", info.name},
             {"ok", violations.empty()},
             {"violations", violations},
             {"warnings", warnings},
             {"agent_pid", info.agent_pid},
             {"cleanup",
              {{"processes", info.cleanup.processes},
               {"listeners", info.cleanup.listeners},
               {"chunks", info.cleanup.chunks},
               {"repaired", info.cleanup.repaired},
               {"last_us", info.cleanup.last_ns / 1000}}}};
    if (!repaired.is_null()) {
      out["repair"] = repaired;
    }
    std::cout << out.dump() << "\n";
  } else {
    if (!repaired.is_null()) {
      std::cout << "repair: cleaned up after " << repaired["processes"] << " dead process(es), "
                << repaired["chunks"] << " chunk reference(s), " << repaired["listeners"]
                << " listener(s)\n";
    }
    for (const std::string& v : violations) {
      std::cout << "violation: " << v << "\n";
    }
    for (const std::string& w : warnings) {
      std::cerr << "ipcbus doctor: warning: " << w << "\n";
    }
    if (violations.empty()) {
      std::cout << "ok: bus '" << info.name << "' is consistent (" << info.processes.size()
                << " process(es), " << info.listeners.size() << " listener(s))\n";
    } else {
      std::cerr << "ipcbus doctor: bus '" << info.name << "' has " << violations.size()
                << " violation(s)\n";
    }
  }
  return violations.empty() ? kExitOk : kExitRuntime;
}

}  // namespace

Command add_doctor_command(CLI::App& app) {
  auto o = std::make_shared<DoctorOptions>();
  CLI::App* cmd = app.add_subcommand(
      "doctor", "Check a live bus's invariants; exit 1 and list every violation found");
  cmd->footer(
      "Checks: every chunk free or held by live holders and findable by the pool, no listener\n"
      "or publisher owned by a dead process, free slots empty, trie refcounts matching the\n"
      "subscriptions, the name still linked in /dev/shm. --repair first cleans up after dead\n"
      "processes, as the agent does.");
  add_bus_option(*cmd, o->bus);
  cmd->add_flag("--repair", o->repair, "Clean up after dead processes first");
  cmd->add_flag("--json", o->json, "One JSON object instead of lines");
  return {cmd, [o] { return run_doctor(*o); }};
}

}  // namespace ipcbus::cli
