// bench_main.cpp: ipcbus-bench, the multi-process benchmark of issue 4.
//
//   ipcbus-bench [--quick] [--json FILE] [--plots DIR] [--only TEXT] [--scale X] [--no-iceoryx]
//                [--reclaim-rounds N]
//   ipcbus-bench --report FILE [--micro FILE] [--plots DIR]   BENCHMARKS.md from a saved run
//
// It measures, between separate processes, one-way latency (ping-pong round
// trip / 2, and receive time minus send stamp) and throughput (one direction,
// counted at the receivers) of ipcbus, of the machine's floors and of the
// peers users would pick instead, all in one run, and reports each figure as
// a ratio to its floor and to each peer. It exits non-zero when a case fails
// or a number is insane (no throughput, unordered percentiles, missing
// results); it never judges a timing. It also times crash cleanup: how long
// the agent takes, from a SIGKILL, to give back what the killed process held.
#include <dirent.h>
#include <mqueue.h>
#include <stdlib.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "harness.hpp"
#include "histogram.hpp"
#include "inproc.hpp"
#include "reclaim.hpp"
#include "report.hpp"
#include "runner.hpp"
#include "transport.hpp"

namespace ipcbus::bench {
namespace {

using nlohmann::json;

struct Options {
  bool quick = false;
  double scale = 1.0;
  bool iceoryx = true;
  std::string json_path;
  std::string plots_dir;
  std::string only;
  std::string report_path;
  std::string micro_path;
  std::string notes_path;
  int reclaim_rounds = 0;  // 0: 30, or 5 with --quick
};

struct Planned {
  std::string kind;  // latency, throughput, fanout, first_event, reclaim
  CaseSpec spec;
  int round = -1;  // >= 0: a repeat of the bar cases (see make_plan)
};

std::string describe(const Planned& p) {
  const CaseSpec& s = p.spec;
  std::ostringstream o;
  if (p.kind == "reclaim") {
    o << transport_name(s.transport) << " reclaim (" << s.max_iterations << " kills, agent)";
    return o.str();
  }
  o << transport_name(s.transport) << " " << wait_name(s.wait) << " " << p.kind << " " << s.payload
    << " B";
  if (s.pattern != Pattern::kPingPong) {
    o << " " << s.publishers << "->" << s.listeners;
  }
  if (p.round >= 0) {
    o << " (bar round " << p.round + 1 << ")";
  }
  return o.str();
}

// Whether `label` holds one of the '|'-separated parts of `only`.
bool label_matches(const std::string& label, const std::string& only) {
  std::size_t start = 0;
  for (;;) {
    const std::size_t bar = only.find('|', start);
    const std::string part = only.substr(start, bar == std::string::npos ? bar : bar - start);
    if (!part.empty() && label.find(part) != std::string::npos) {
      return true;
    }
    if (bar == std::string::npos) {
      return false;
    }
    start = bar + 1;
  }
}

std::uint32_t stream_capacity(std::uint32_t payload) {
  std::uint32_t cap = 1024;
  while (cap > 16 && static_cast<std::uint64_t>(cap) * payload > (16ULL << 20)) {
    cap /= 2;
  }
  return cap;
}

// Senders on the first CPU, receivers on the others; every role its own CPU
// when there are enough. One CPU: nothing pinned.
void assign_cpus(CaseSpec& s, const std::vector<int>& cpus) {
  const int roles = s.roles();
  const int n = static_cast<int>(cpus.size());
  int next_receiver = 0;
  for (int r = 0; r < roles; ++r) {
    if (n < 2) {
      s.cpu[r] = -1;
    } else if (n >= roles) {
      s.cpu[r] = cpus[static_cast<std::size_t>(r)];
    } else if (s.sends(r) && s.pattern != Pattern::kPingPong) {
      s.cpu[r] = cpus[0];
    } else if (s.pattern == Pattern::kPingPong) {
      s.cpu[r] = cpus[static_cast<std::size_t>(r % n)];
    } else {
      s.cpu[r] = cpus[static_cast<std::size_t>(1 + next_receiver++ % (n - 1))];
    }
  }
}

std::vector<Planned> make_plan(const Options& o, json* skipped) {
  const double k = o.scale;
  const bool q = o.quick;
  const auto ns = [k](double seconds) { return static_cast<std::uint64_t>(seconds * k * 1e9); };
  const std::vector<std::uint32_t> payloads =
      q ? std::vector<std::uint32_t>{64}
        : std::vector<std::uint32_t>{64, 1024, 16384, 262144, 1048576};
  const std::vector<std::uint32_t> fan =
      q ? std::vector<std::uint32_t>{2} : std::vector<std::uint32_t>{2, 4, 8};
  std::vector<Transport> peers =
      q ? std::vector<Transport>{Transport::kUds, Transport::kBoostMq}
        : std::vector<Transport>{Transport::kIceoryx, Transport::kUds, Transport::kPosixMq,
                                 Transport::kBoostMq, Transport::kZmq};
  if (!o.iceoryx) {
    std::erase(peers, Transport::kIceoryx);
  }
  const std::uint64_t lat_budget = ns(q ? 0.15 : 1.5);
  const std::uint64_t lat_warm = q ? 300 : 3000;
  const std::uint64_t stream_ns = ns(q ? 0.2 : 1.5);
  const std::uint64_t stream_warm = ns(q ? 0.03 : 0.2);

  std::vector<Planned> plan;
  auto latency = [&](Transport t, Wait w, std::uint32_t payload) {
    CaseSpec s;
    s.transport = t;
    s.pattern = Pattern::kPingPong;
    s.wait = w;
    s.payload = payload;
    s.capacity = 16;
    s.duration_ns = lat_budget;
    s.warmup_iterations = lat_warm;
    s.warmup_ns = ns(q ? 0.03 : 0.2);
    s.max_iterations = payload < kMinPayload ? (q ? 50000 : 1000000) : 50'000'000;
    plan.push_back({"latency", s});
  };
  auto stream = [&](Transport t, Wait w, std::uint32_t payload, std::uint32_t pubs,
                    std::uint32_t subs) {
    CaseSpec s;
    s.transport = t;
    s.pattern = Pattern::kStream;
    s.wait = w;
    s.payload = payload;
    s.publishers = pubs;
    s.listeners = subs;
    s.capacity = stream_capacity(payload);
    s.duration_ns = stream_ns;
    s.warmup_ns = stream_warm;
    plan.push_back({"throughput", s});
  };

  // Latency: the floors, the bus, the peers; busy-polling and sleeping.
  latency(Transport::kFloorLine, Wait::kSpin, 0);
  for (const std::uint32_t p : payloads) {
    latency(Transport::kFloorLine, Wait::kSpin, p);
    latency(Transport::kFloorFutex, Wait::kSleep, p);
    for (const Wait w : {Wait::kSpin, Wait::kSleep}) {
      latency(Transport::kBus, w, p);
      for (const Transport t : peers) {
        latency(t, w, p);
      }
    }
  }
  // Throughput 1 to 1.
  for (const std::uint32_t p : payloads) {
    stream(Transport::kFloorRing, Wait::kSpin, p, 1, 1);
    for (const Wait w : {Wait::kSpin, Wait::kSleep}) {
      stream(Transport::kBus, w, p, 1, 1);
      for (const Transport t : peers) {
        stream(t, w, p, 1, 1);
      }
    }
  }
  // 1 to N and N to 1.
  const std::vector<std::uint32_t> fan_payloads =
      q ? std::vector<std::uint32_t>{64} : std::vector<std::uint32_t>{64, 16384};
  for (const std::uint32_t p : fan_payloads) {
    for (const std::uint32_t n : fan) {
      for (const Wait w : {Wait::kSpin, Wait::kSleep}) {
        stream(Transport::kBus, w, p, 1, n);
        if (o.iceoryx && !q) {
          stream(Transport::kIceoryx, w, p, 1, n);
        }
      }
    }
  }
  for (const std::uint32_t n : fan) {
    for (const Wait w : {Wait::kSpin, Wait::kSleep}) {
      stream(Transport::kBus, w, 64, n, 1);
      for (const Transport t : peers) {
        if (t != Transport::kUds) {
          stream(t, w, 64, n, 1);
        }
      }
    }
  }
  // The fan-out cost per added listener, and the first event on a fresh bus.
  for (const std::uint32_t p : {64U, 16384U}) {
    for (const std::uint32_t n : {1U, 2U, 4U, 8U}) {
      if (q && n > 2) {
        continue;
      }
      CaseSpec s;
      s.transport = Transport::kBus;
      s.pattern = Pattern::kFanoutCost;
      s.wait = Wait::kSpin;
      s.payload = p;
      s.listeners = n;
      s.capacity = 512;
      s.bursts = q ? 20 : 150;
      s.duration_ns = ns(q ? 0.5 : 5);
      plan.push_back({"fanout", s});
    }
  }
  // With lazy binding (what a fresh application sees: its first calls into
  // the library resolve symbols) and with LD_BIND_NOW (the bus's own cost).
  for (const bool bind_now : {false, true}) {
    for (int r = 0; r < (q ? 2 : 5); ++r) {
      CaseSpec s;
      s.transport = Transport::kBus;
      s.pattern = Pattern::kPingPong;
      s.wait = Wait::kSpin;
      s.payload = 64;
      s.capacity = 16;
      s.warmup_iterations = 0;
      s.max_iterations = 1000;
      s.duration_ns = 0;
      s.bind_now = bind_now;
      plan.push_back({"first_event", s});
    }
  }
  // Crash cleanup: kill to reclaimed, with the agent (the documented bound).
  {
    CaseSpec s;
    s.transport = Transport::kBus;
    s.max_iterations =
        o.reclaim_rounds > 0 ? static_cast<std::uint64_t>(o.reclaim_rounds) : (q ? 5 : 30);
    plan.push_back({"reclaim", s});
  }

  // The cases the first bars compare, again in interleaved rounds: on a
  // shared machine the floor of one minute is not the floor of the next (the
  // host moves the vCPUs), so each bar is the median of ratios taken within
  // a round, floor and bus measured back to back.
  for (int r = 0; r < (q ? 0 : 5); ++r) {
    const std::size_t first = plan.size();
    latency(Transport::kFloorLine, Wait::kSpin, 0);
    latency(Transport::kFloorLine, Wait::kSpin, 64);
    latency(Transport::kBus, Wait::kSpin, 64);
    latency(Transport::kFloorFutex, Wait::kSleep, 64);
    latency(Transport::kBus, Wait::kSleep, 64);
    stream(Transport::kFloorRing, Wait::kSpin, 64, 1, 1);
    stream(Transport::kBus, Wait::kSpin, 64, 1, 1);
    for (std::size_t i = first; i < plan.size(); ++i) {
      plan[i].round = r;
    }
  }

  const std::vector<int> cpus = usable_cpus();
  std::vector<Planned> out;
  for (Planned& p : plan) {
    assign_cpus(p.spec, cpus);
    const std::string label = std::string(transport_name(p.spec.transport)) + " " + p.kind;
    if (!o.only.empty() && !label_matches(label, o.only) && !label_matches(describe(p), o.only)) {
      continue;
    }
    std::string why;
    const bool cannot = p.kind == "reclaim" ? !agent_built() && find_agent(&why).empty()
                                            : !transport_supports(p.spec, &why);
    if (cannot) {
      skipped->push_back({{"case", describe(p)}, {"why", why}});
      continue;
    }
    out.push_back(p);
  }
  return out;
}

std::string read_first_line(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  return line;
}

json load_average() {
  double l[3] = {0, 0, 0};
  if (getloadavg(l, 3) != 3) {
    return json::array();
  }
  return {l[0], l[1], l[2]};
}

json machine_info() {
  json m;
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0) {
      m["cpu_model"] = line.substr(line.find(':') + 2);
      break;
    }
  }
  m["cpus_online"] = sysconf(_SC_NPROCESSORS_ONLN);
  m["cpus_usable"] = usable_cpus().size();
  utsname u{};
  uname(&u);
  m["kernel"] = std::string(u.sysname) + " " + u.release;
  m["clocksource"] =
      read_first_line("/sys/devices/system/clocksource/clocksource0/current_clocksource");
  m["hypervisor"] = read_first_line("/sys/hypervisor/type");
  return m;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// The run directory this process made (empty until made): the only one it removes.
std::string g_made_dir;

// Remove whatever this run left in /dev/shm, /dev/mqueue and /tmp (its
// names all hold run_prefix()), and the run directory.

void remove_leftovers() {
  for (const char* d : {"/dev/shm", "/dev/mqueue", "/tmp"}) {
    DIR* h = opendir(d);
    if (h == nullptr) {
      continue;
    }
    while (dirent* e = readdir(h)) {
      const std::string name = e->d_name;
      // /tmp: iceoryx runtime sockets and locks of killed children.
      const bool ours = std::string(d) == "/tmp"
                            ? name.rfind(run_prefix() + "-", 0) == 0
                            : name.find(run_prefix() + "-") != std::string::npos;
      if (ours && e->d_type != DT_DIR) {
        if (std::string(d) == "/dev/mqueue") {
          mq_unlink(("/" + name).c_str());
        } else {
          unlink((std::string(d) + "/" + name).c_str());
        }
      }
    }
    closedir(h);
  }
  std::error_code ec;
  if (!g_made_dir.empty()) {
    std::filesystem::remove_all(g_made_dir, ec);
    g_made_dir.clear();
  }
}

std::string brief(const json& row) {
  std::ostringstream o;
  if (row.contains("p50")) {
    o << "p50 " << row["p50"].get<std::uint64_t>() << " ns, p99 " << row["p99"].get<std::uint64_t>()
      << " ns";
  } else if (row.contains("events_per_s")) {
    o << row["events_per_s"].get<double>() / 1e6 << " M/s";
  } else if (row.contains("rounds")) {
    std::vector<std::uint64_t> v;
    for (const json& r : row["rounds"]) {
      if (r.value("ok", false)) {
        v.push_back(r["kill_to_reclaimed_ns"].get<std::uint64_t>());
      }
    }
    std::sort(v.begin(), v.end());
    o << v.size() << " of " << row["rounds"].size() << " reclaimed";
    if (!v.empty()) {
      o << ", kill to reclaimed median " << v[v.size() / 2] / 1000 << " us, max " << v.back() / 1000
        << " us";
    }
  } else if (row.contains("ns_per_publish_p50")) {
    o << row["ns_per_publish_p50"].get<double>() << " ns/publish";
  }
  return o.str();
}

int run_all(const Options& o) {
  std::string why;
  if (!histogram_self_check(&why)) {
    std::fprintf(stderr, "ipcbus-bench: histogram self check failed: %s\n", why.c_str());
    return 1;
  }
  install_parent_signal_handlers();

  json results;
  results["schema"] = 1;
  results["tool"] = "ipcbus-bench";
  results["quick"] = o.quick;
  results["scale"] = o.scale;
  results["started_utc"] = utc_now();
  results["machine"] = machine_info();
  results["load_before"] = load_average();
  results["histogram_self_check"] = "passed";
  const std::uint64_t t_start = now_ns();

  std::fprintf(stderr, "ipcbus-bench: in-process figures...\n");
  json inproc = json::object();
  set_exit_on_signal(true);  // these loops do not poll interrupted()
  if (o.only.empty()) {
    inproc["route_lookup"] = measure_route_lookup(o.quick);
    inproc["state_transition"] = measure_state_transition(o.quick);
    inproc["ring_and_pool"] = measure_ring_and_pool(o.quick);
    inproc["allocations"] = measure_allocations(o.quick);
    inproc["trie_memory"] = measure_trie_memory(o.quick);
  }
  results["inproc"] = inproc;
  set_exit_on_signal(false);

  // Made after the in-process phase, which a signal ends with _exit().
  char dir_template[] = "/tmp/ipcbus-bench-XXXXXX";
  const char* dir = mkdtemp(dir_template);
  if (dir == nullptr) {
    std::perror("ipcbus-bench: mkdtemp");
    return 1;
  }
  set_run_dir(dir);
  g_made_dir = dir;

  json skipped = json::array();
  const std::vector<Planned> plan = make_plan(o, &skipped);
  results["skipped"] = skipped;
  bool roudi_failed = false;
  std::string roudi_why;
  for (const Planned& p : plan) {
    if (p.spec.transport == Transport::kIceoryx) {
      if (!start_roudi(run_dir(), &roudi_why)) {
        roudi_failed = true;
      }
      break;
    }
  }

  results["latency"] = json::array();
  results["throughput"] = json::array();
  results["fanout_cost"] = json::array();
  results["first_event_runs"] = json::array();
  results["reclaim_runs"] = json::array();
  results["bar_rounds"] = json::array();
  results["failures"] = json::array();
  int index = 0;
  for (const Planned& p : plan) {
    ++index;
    if (interrupted()) {
      break;
    }
    if (p.kind == "reclaim") {
      const ReclaimOut ro = run_reclaim_case(static_cast<int>(p.spec.max_iterations));
      if (!ro.ok) {
        std::fprintf(stderr, "[%d/%zu] %s: FAILED: %s\n", index, plan.size(), describe(p).c_str(),
                     ro.error.c_str());
        results["failures"].push_back({{"case", describe(p)}, {"error", ro.error}});
        continue;
      }
      const json row = reclaim_json(ro);
      std::fprintf(stderr, "[%d/%zu] %s: %s (%.1f s)\n", index, plan.size(), describe(p).c_str(),
                   brief(row).c_str(), ro.wall_s);
      results["reclaim_runs"].push_back(row);
      continue;
    }
    CaseOut out;
    if (p.spec.transport == Transport::kIceoryx && roudi_failed) {
      out.spec = p.spec;
      out.error = "iceoryx unavailable: " + roudi_why;
    } else {
      out = run_case(p.spec);
    }
    if (!out.ok) {
      std::fprintf(stderr, "[%d/%zu] %s: FAILED: %s\n", index, plan.size(), describe(p).c_str(),
                   out.error.c_str());
      results["failures"].push_back({{"case", describe(p)}, {"error", out.error}});
      continue;
    }
    json row = case_json(out, p.kind);
    std::fprintf(stderr, "[%d/%zu] %s: %s (%.1f s)\n", index, plan.size(), describe(p).c_str(),
                 brief(row).c_str(), out.wall_s);
    const char* section = p.round >= 0             ? "bar_rounds"
                          : p.kind == "latency"    ? "latency"
                          : p.kind == "throughput" ? "throughput"
                          : p.kind == "fanout"     ? "fanout_cost"
                                                   : "first_event_runs";
    if (p.round >= 0) {
      row["round"] = p.round;
      row["kind"] = p.kind;
    }
    results[section].push_back(row);
  }
  stop_roudi();
  kill_children();
  if (interrupted()) {
    remove_leftovers();
    std::fprintf(stderr, "ipcbus-bench: interrupted; children reaped, names removed\n");
    return 130;
  }
  results["load_after"] = load_average();
  results["duration_s"] = static_cast<double>(now_ns() - t_start) / 1e9;
  results["planned_cases"] = plan.size();

  add_analysis(results);
  const std::vector<std::string> problems = sanity_problems(results);
  results["sanity_problems"] = problems;

  std::cout << human_table(results) << std::flush;
  bool written = true;
  if (!o.json_path.empty()) {
    std::ofstream f(o.json_path);
    f << results.dump(1) << "\n";
    if (!f) {
      std::fprintf(stderr, "ipcbus-bench: cannot write %s\n", o.json_path.c_str());
      written = false;
    }
  }
  if (!o.plots_dir.empty() && !write_plots(results, o.plots_dir, &why)) {
    std::fprintf(stderr, "ipcbus-bench: plots: %s\n", why.c_str());
    written = false;
  }
  remove_leftovers();
  if (!written) {
    return 1;
  }
  for (const std::string& p : problems) {
    std::fprintf(stderr, "ipcbus-bench: insane or missing: %s\n", p.c_str());
  }
  return problems.empty() ? 0 : 1;
}

int report(const Options& o) {
  std::ifstream f(o.report_path);
  if (!f) {
    std::fprintf(stderr, "ipcbus-bench: cannot read %s\n", o.report_path.c_str());
    return 1;
  }
  json results = json::parse(f, nullptr, false);
  if (results.is_discarded()) {
    std::fprintf(stderr, "ipcbus-bench: %s is not JSON\n", o.report_path.c_str());
    return 1;
  }
  json micro;
  if (!o.micro_path.empty()) {
    std::ifstream m(o.micro_path);
    std::string text((std::istreambuf_iterator<char>(m)), std::istreambuf_iterator<char>());
    // Google Benchmark writes NaN (the spread of a counter that is always 0),
    // which is not JSON.
    for (const char* bad : {": -NaN", ": NaN", ": -Infinity", ": Infinity"}) {
      for (std::size_t at = text.find(bad); at != std::string::npos; at = text.find(bad, at)) {
        text.replace(at, std::strlen(bad), ": null");
      }
    }
    micro = json::parse(text, nullptr, false);
    if (micro.is_discarded()) {
      std::fprintf(stderr, "ipcbus-bench: %s is not JSON\n", o.micro_path.c_str());
      return 1;
    }
  }
  add_analysis(results);  // from the raw figures, with this build's rules
  std::string notes;
  if (!o.notes_path.empty()) {
    std::ifstream n(o.notes_path);
    if (!n) {
      std::fprintf(stderr, "ipcbus-bench: cannot read %s\n", o.notes_path.c_str());
      return 1;
    }
    notes.assign(std::istreambuf_iterator<char>(n), std::istreambuf_iterator<char>());
  }
  std::cout << markdown_report(results, micro, notes);
  std::string why;
  if (!o.plots_dir.empty() && !write_plots(results, o.plots_dir, &why)) {
    std::fprintf(stderr, "ipcbus-bench: plots: %s\n", why.c_str());
    return 1;
  }
  return 0;
}

void usage() {
  std::fprintf(
      stderr,
      "usage: ipcbus-bench [--quick] [--json FILE] [--plots DIR] [--only TEXT]\n"
      "                    [--scale X] [--no-iceoryx] [--reclaim-rounds N]\n"
      "       ipcbus-bench --report FILE [--micro FILE] [--notes FILE] [--plots DIR]\n"
      "  --quick       a seconds-long smoke subset (64 B, two peers)\n"
      "  --json FILE   write every figure, ratio and bar as JSON\n"
      "  --plots DIR   write PNG plots with gnuplot\n"
      "  --only TEXT   run only cases whose label or description holds TEXT, or one\n"
      "                of A|B|C (\"ipcbus latency\", \"ipcbus spin throughput 64 B 1->1\")\n"
      "  --scale X     multiply every duration by X\n"
      "  --no-iceoryx  leave iceoryx (and its RouDi daemon) out\n"
      "  --reclaim-rounds N  kills in the crash-cleanup case (\"ipcbus reclaim\"; "
      "default 30, 5 with --quick)\n"
      "  --report FILE markdown for BENCHMARKS.md from a saved JSON run (--plots: and its "
      "plots)\n");
}

}  // namespace
}  // namespace ipcbus::bench

int main(int argc, char** argv) {
  using namespace ipcbus::bench;
  Options o;
  int role = -1;
  int ctl_fd = -1;
  std::string victim_bus;
  int ready_fd = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--role") {
      role = std::atoi(next().c_str());
    } else if (a == "--ctl-fd") {
      ctl_fd = std::atoi(next().c_str());
    } else if (a == "--reclaim-victim") {
      victim_bus = next();
    } else if (a == "--ready-fd") {
      ready_fd = std::atoi(next().c_str());
    } else if (a == "--reclaim-rounds") {
      o.reclaim_rounds = std::atoi(next().c_str());
    } else if (a == "--quick") {
      o.quick = true;
    } else if (a == "--json") {
      o.json_path = next();
    } else if (a == "--plots") {
      o.plots_dir = next();
    } else if (a == "--only") {
      o.only = next();
    } else if (a == "--scale") {
      o.scale = std::atof(next().c_str());
    } else if (a == "--no-iceoryx") {
      o.iceoryx = false;
    } else if (a == "--report") {
      o.report_path = next();
    } else if (a == "--micro") {
      o.micro_path = next();
    } else if (a == "--notes") {
      o.notes_path = next();
    } else if (a == "-h" || a == "--help") {
      usage();
      return 0;
    } else {
      usage();
      return 2;
    }
  }
  if (role >= 0) {
    return child_main(role, ctl_fd);
  }
  if (!victim_bus.empty()) {
    return reclaim_victim_main(victim_bus, ready_fd);
  }
  if (!o.report_path.empty()) {
    return report(o);
  }
  if (o.scale <= 0) {
    usage();
    return 2;
  }
  try {
    return run_all(o);
  } catch (const std::exception& e) {
    // Nothing may outlive the run, whatever went wrong.
    stop_roudi();
    kill_children();
    remove_leftovers();
    std::fprintf(stderr, "ipcbus-bench: %s\n", e.what());
    return 1;
  }
}
