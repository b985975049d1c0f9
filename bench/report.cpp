// report.cpp: results JSON, ratios, bars, sanity, table, markdown, plots.
#include "report.hpp"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <sstream>

#include "transport.hpp"

namespace ipcbus::bench {

using nlohmann::json;

namespace {

constexpr const char* kBus = "ipcbus";

json percentiles(const Histogram& h) {
  return {{"count", h.count()},         {"min", h.min()},          {"mean", h.mean()},
          {"p50", h.percentile(50)},    {"p90", h.percentile(90)}, {"p99", h.percentile(99)},
          {"p999", h.percentile(99.9)}, {"max", h.max()}};
}

double num(const json& j, const char* key, double fallback = 0) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) {
    return fallback;
  }
  return j[key].get<double>();
}

std::string str(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

// j[key] when it is an object, else an empty object.
const json& sub(const json& j, const char* key) {
  static const json kEmpty = json::object();
  return j.is_object() && j.contains(key) && j[key].is_object() ? j[key] : kEmpty;
}

// j[key] when it is an array, else an empty array.
const json& list(const json& j, const char* key) {
  static const json kEmpty = json::array();
  return j.is_object() && j.contains(key) && j[key].is_array() ? j[key] : kEmpty;
}

bool is_peer(const std::string& t) {
  return t != kBus && t.rfind("floor-", 0) != 0;
}

// --- lookups ------------------------------------------------------------------

const json* find_latency(const json& r, const std::string& t, const std::string& wait,
                         double payload) {
  if (!r.contains("latency")) {
    return nullptr;
  }
  for (const json& row : r["latency"]) {
    if (str(row, "transport") == t && str(row, "wait") == wait && num(row, "payload") == payload) {
      return &row;
    }
  }
  return nullptr;
}

const json* find_stream(const json& r, const std::string& t, const std::string& wait,
                        double payload, double pubs, double subs) {
  if (!r.contains("throughput")) {
    return nullptr;
  }
  for (const json& row : r["throughput"]) {
    if (str(row, "transport") == t && str(row, "wait") == wait && num(row, "payload") == payload &&
        num(row, "publishers") == pubs && num(row, "listeners") == subs) {
      return &row;
    }
  }
  return nullptr;
}

std::string fmt(double v, int digits = 0) {
  if (!std::isfinite(v)) {
    return "n/a";
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string fmt_ratio(double v) {
  return std::isfinite(v) && v > 0 ? fmt(v, v < 10 ? 2 : 1) + "x" : "n/a";
}

std::string fmt_ns(double ns) {
  if (!std::isfinite(ns) || ns <= 0) {
    return "n/a";
  }
  if (ns < 10000) {
    return fmt(ns) + " ns";
  }
  if (ns < 10e6) {
    return fmt(ns / 1000, ns < 100000 ? 1 : 0) + " us";
  }
  return fmt(ns / 1e6, 1) + " ms";
}

std::string fmt_rate(double per_s) {
  if (!std::isfinite(per_s) || per_s <= 0) {
    return "n/a";
  }
  if (per_s >= 1e6) {
    return fmt(per_s / 1e6, 2) + " M/s";
  }
  return fmt(per_s / 1e3, 1) + " k/s";
}

std::string fmt_bytes_rate(double b) {
  if (!std::isfinite(b) || b <= 0) {
    return "n/a";
  }
  if (b >= 1e9) {
    return fmt(b / 1e9, 2) + " GB/s";
  }
  return fmt(b / 1e6, 1) + " MB/s";
}

std::string fmt_size(double bytes) {
  const auto b = static_cast<std::uint64_t>(bytes);
  if (b >= (1U << 20) && b % (1U << 20) == 0) {
    return std::to_string(b >> 20) + " MiB";
  }
  if (b >= 1024 && b % 1024 == 0) {
    return std::to_string(b >> 10) + " KiB";
  }
  return std::to_string(b) + " B";
}

double median(std::vector<double> v) {
  if (v.empty()) {
    return NAN;
  }
  std::sort(v.begin(), v.end());
  return v.size() % 2 == 1 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// Nearest rank: the smallest value with at least `q` of them at or below it.
double percentile(std::vector<double> v, double q) {
  if (v.empty()) {
    return NAN;
  }
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::clamp<std::size_t>(rank, 1, v.size()) - 1];
}

// The documented cleanup bound (docs/failure-model.md), as the report states it next to the figure.
constexpr const char* kReclaimBound =
    "at once (pidfd, same pid namespace); 100 ms for processes in other pid namespaces "
    "(lock probe at the agent's interval)";

std::vector<double> payloads_of(const json& r, const char* section) {
  std::vector<double> out;
  if (r.contains(section)) {
    for (const json& row : r[section]) {
      const double p = num(row, "payload");
      if (p > 0 && std::find(out.begin(), out.end(), p) == out.end()) {
        out.push_back(p);
      }
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> transports_of(const json& r, const char* section) {
  std::vector<std::string> out;
  if (r.contains(section)) {
    for (const json& row : r[section]) {
      const std::string t = str(row, "transport");
      if (std::find(out.begin(), out.end(), t) == out.end()) {
        out.push_back(t);
      }
    }
  }
  // The bus first, then the floors, then the peers in the order they ran.
  std::stable_sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
    auto rank = [](const std::string& t) {
      return t == kBus ? 0 : t.rfind("floor-", 0) == 0 ? 1 : 2;
    };
    return rank(a) < rank(b);
  });
  return out;
}

}  // namespace

// --- case JSON ------------------------------------------------------------------

json case_json(const CaseOut& c, const std::string& kind) {
  const CaseSpec& s = c.spec;
  json j;
  j["transport"] = transport_name(s.transport);
  j["wait"] = wait_name(s.wait);
  j["payload"] = s.payload;
  std::uint64_t errors = 0;
  for (const RoleOut& r : c.roles) {
    errors += r.errors;
  }
  j["errors"] = errors;
  j["wall_s"] = c.wall_s;
  if (kind == "latency" || kind == "first_event") {
    j["bind_now"] = s.bind_now;
    j.update(percentiles(c.rtt_half));
    j["one_way"] = c.one_way.count() > 0 ? percentiles(c.one_way) : json(nullptr);
    j["iterations"] = c.roles[0].sent;
    j["pinger_cpu_s"] = static_cast<double>(c.roles[0].cpu_ns) / 1e9;
    j["ponger_cpu_s"] = static_cast<double>(c.roles[1].cpu_ns) / 1e9;
    j["first_rtt_half_ns"] = c.roles[0].first_rtt_ns / 2;
    j["thousandth_rtt_half_ns"] = c.roles[0].thousandth_rtt_ns / 2;
    j["first_oneway_ns"] = c.roles[1].first_oneway_ns;
    j["thousandth_oneway_ns"] = c.roles[1].thousandth_oneway_ns;
    j["first_round_trip_page_faults"] = c.roles[0].first_faults + c.roles[1].first_faults;
    return j;
  }
  j["publishers"] = s.publishers;
  j["listeners"] = s.listeners;
  j["capacity"] = s.capacity;
  std::uint64_t sent = 0;
  double sender_ns = 0;
  for (std::uint32_t p = 0; p < s.publishers; ++p) {
    const RoleOut& r = c.roles[p];
    sent += r.sent;
    sender_ns += r.sent > 0 ? static_cast<double>(r.busy_ns) / static_cast<double>(r.sent) : 0;
  }
  j["sent"] = sent;
  double sender_cpu = 0;
  for (std::uint32_t p = 0; p < s.publishers; ++p) {
    sender_cpu += static_cast<double>(c.roles[p].cpu_ns);
  }
  // CPU time per event: unlike the rates, it does not count the time other
  // processes held the CPU (it does count a side's spinning while it waits).
  j["sender_cpu_ns_per_event"] = sent > 0 ? sender_cpu / static_cast<double>(sent) : 0;
  if (kind == "fanout") {
    j.update(percentiles(c.rtt_half));
    j["ns_per_publish_p50"] = c.rtt_half.percentile(50);
    j["ns_per_publish_mean"] = c.rtt_half.mean();
    j["bursts_timed"] = c.rtt_half.count();
    j["burst"] = std::max<std::uint32_t>(1, s.capacity / 2);
  }
  double total = 0;
  double least = INFINITY;
  json per = json::array();
  bool lossless = true;
  for (std::uint32_t l = 0; l < s.listeners; ++l) {
    const RoleOut& r = c.roles[s.publishers + l];
    const double rate =
        r.window_ns > 0 ? static_cast<double>(r.counted) * 1e9 / static_cast<double>(r.window_ns)
                        : 0;
    total += rate;
    least = std::min(least, rate);
    per.push_back(
        {{"received", r.received},
         {"events_per_s", rate},
         {"cpu_s", static_cast<double>(r.cpu_ns) / 1e9},
         {"cpu_ns_per_event",
          r.received > 0 ? static_cast<double>(r.cpu_ns) / static_cast<double>(r.received) : 0}});
    lossless = lossless && r.received == sent;
  }
  j["receivers"] = per;
  j["events_per_s"] = total;  // summed over the listeners: events delivered per second
  j["per_listener_events_per_s"] = s.listeners > 0 ? total / s.listeners : 0;
  j["slowest_listener_events_per_s"] = std::isfinite(least) ? least : 0;
  j["bytes_per_s"] = total * s.payload;
  j["lossless"] = lossless;
  j["sender_ns_per_event"] = s.publishers > 0 ? sender_ns / s.publishers : 0;
  return j;
}

// --- analysis -------------------------------------------------------------------

namespace {

// A row of a bar round: kind, transport, wait, payload (streams: 1 to 1).
struct Pick {
  const char* kind;
  const char* transport;
  const char* wait;
  double payload;
};

bool picks(const json& row, const Pick& p) {
  return str(row, "kind") == p.kind && str(row, "transport") == p.transport &&
         str(row, "wait") == p.wait && num(row, "payload") == p.payload &&
         num(row, "publishers", 1) == 1 && num(row, "listeners", 1) == 1;
}

// a / b, as the median over rounds of the ratio within a round, with the
// medians of a and b themselves.
struct RoundStat {
  double ratio = NAN;
  double a = NAN;
  double b = NAN;
  std::vector<double> ratios;
  std::string describe() const {
    if (ratios.size() <= 1) {
      return "one run";
    }
    std::string out = "median of " + std::to_string(ratios.size()) + " rounds (";
    for (std::size_t i = 0; i < ratios.size(); ++i) {
      out += (i ? ", " : "") + fmt(ratios[i], 2);
    }
    return out + ")";
  }
};

RoundStat round_ratio(const json& r, const Pick& a, const Pick& b, const char* metric) {
  RoundStat st;
  std::map<int, std::pair<const json*, const json*>> rounds;
  for (const json& row : list(r, "bar_rounds")) {
    const int k = static_cast<int>(num(row, "round", -1));
    if (picks(row, a)) {
      rounds[k].first = &row;
    } else if (picks(row, b)) {
      rounds[k].second = &row;
    }
  }
  if (rounds.empty()) {  // no rounds in this run: the sweep's own rows
    const bool l = std::string(a.kind) == "latency";
    const json* ra = l ? find_latency(r, a.transport, a.wait, a.payload)
                       : find_stream(r, a.transport, a.wait, a.payload, 1, 1);
    const json* rb = l ? find_latency(r, b.transport, b.wait, b.payload)
                       : find_stream(r, b.transport, b.wait, b.payload, 1, 1);
    rounds[0] = {ra, rb};
  }
  std::vector<double> as, bs;
  for (const auto& [k, pair] : rounds) {
    if (pair.first == nullptr || pair.second == nullptr || !(num(*pair.second, metric) > 0)) {
      continue;
    }
    as.push_back(num(*pair.first, metric));
    bs.push_back(num(*pair.second, metric));
    st.ratios.push_back(as.back() / bs.back());
  }
  st.ratio = median(st.ratios);
  st.a = median(as);
  st.b = median(bs);
  return st;
}

}  // namespace

void add_analysis(json& r) {
  json ratios = json::array();
  // Latency: the bus against its floor and against each peer, same wait.
  for (const json& row : list(r, "latency")) {
    if (str(row, "transport") != kBus) {
      continue;
    }
    const std::string wait = str(row, "wait");
    const double payload = num(row, "payload");
    std::vector<std::pair<std::string, const json*>> others;
    others.emplace_back(wait == "spin" ? "floor-line" : "floor-futex",
                        find_latency(r, wait == "spin" ? "floor-line" : "floor-futex",
                                     wait == "spin" ? "spin" : "sleep", payload));
    if (wait == "spin") {
      others.emplace_back("floor-line 0 B", find_latency(r, "floor-line", "spin", 0));
    }
    for (const std::string& t : transports_of(r, "latency")) {
      if (is_peer(t)) {
        others.emplace_back(t, find_latency(r, t, wait, payload));
      }
    }
    for (const auto& [name, other] : others) {
      if (other == nullptr) {
        continue;
      }
      for (const char* metric : {"p50", "p99"}) {
        ratios.push_back({{"kind", "latency"},
                          {"wait", wait},
                          {"payload", payload},
                          {"metric", metric},
                          {"against", name},
                          {"ipcbus", num(row, metric)},
                          {"other", num(*other, metric)},
                          {"ratio", num(row, metric) / num(*other, metric)},
                          {"better", "lower"}});
      }
    }
  }
  // Throughput: the bus against the ring floor (1 to 1) and each peer.
  for (const json& row : list(r, "throughput")) {
    if (str(row, "transport") != kBus) {
      continue;
    }
    const std::string wait = str(row, "wait");
    const double payload = num(row, "payload");
    const double pubs = num(row, "publishers");
    const double subs = num(row, "listeners");
    std::vector<std::pair<std::string, const json*>> others;
    if (pubs == 1 && subs == 1) {
      others.emplace_back("floor-ring", find_stream(r, "floor-ring", "spin", payload, 1, 1));
    }
    for (const std::string& t : transports_of(r, "throughput")) {
      if (is_peer(t)) {
        others.emplace_back(t, find_stream(r, t, wait, payload, pubs, subs));
      }
    }
    for (const auto& [name, other] : others) {
      if (other == nullptr) {
        continue;
      }
      const char* metric = subs > 1 ? "per_listener_events_per_s" : "events_per_s";
      ratios.push_back({{"kind", "throughput"},
                        {"wait", wait},
                        {"payload", payload},
                        {"publishers", pubs},
                        {"listeners", subs},
                        {"metric", metric},
                        {"against", name},
                        {"ipcbus", num(row, metric)},
                        {"other", num(*other, metric)},
                        {"ratio", num(row, metric) / num(*other, metric)},
                        {"better", "higher"}});
    }
  }
  r["ratios"] = ratios;

  // Fan-out: the least-squares slope of ns per publish over the listener count.
  json slopes = json::object();
  std::map<double, std::vector<std::pair<double, double>>> by_payload;
  for (const json& row : list(r, "fanout_cost")) {
    by_payload[num(row, "payload")].emplace_back(num(row, "listeners"),
                                                 num(row, "ns_per_publish_p50"));
  }
  for (const auto& [payload, pts] : by_payload) {
    if (pts.size() < 2) {
      continue;
    }
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (const auto& [x, y] : pts) {
      sx += x;
      sy += y;
      sxx += x * x;
      sxy += x * y;
    }
    const double n = static_cast<double>(pts.size());
    const double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
    slopes[std::to_string(static_cast<int>(payload))] = {{"payload", payload},
                                                         {"ns_per_added_listener", slope},
                                                         {"intercept_ns", (sy - slope * sx) / n}};
  }
  r["fanout_slope"] = slopes;

  // First event vs thousandth: medians over the fresh-bus runs, with lazy
  // symbol binding and with LD_BIND_NOW.
  for (const bool bind_now : {false, true}) {
    std::vector<double> first, thousandth, first_ow, thousandth_ow, faults;
    for (const json& row : list(r, "first_event_runs")) {
      if (row.value("bind_now", false) != bind_now) {
        continue;
      }
      faults.push_back(num(row, "first_round_trip_page_faults"));
      first.push_back(num(row, "first_rtt_half_ns"));
      thousandth.push_back(num(row, "thousandth_rtt_half_ns"));
      first_ow.push_back(num(row, "first_oneway_ns"));
      thousandth_ow.push_back(num(row, "thousandth_oneway_ns"));
    }
    r[bind_now ? "first_event_bind_now" : "first_event"] = {
        {"runs", first.size()},
        {"first_rtt_half_ns", median(first)},
        {"thousandth_rtt_half_ns", median(thousandth)},
        {"first_oneway_ns", median(first_ow)},
        {"thousandth_oneway_ns", median(thousandth_ow)},
        {"ratio_rtt", median(first) / median(thousandth)},
        {"ratio_oneway", median(first_ow) / median(thousandth_ow)},
        {"first_round_trip_page_faults", median(faults)}};
  }

  // Crash cleanup: kill to reclaimed over every round of every reclaim case.
  if (!list(r, "reclaim_runs").empty()) {
    std::vector<double> took, agent, gap, exited;
    std::size_t rounds = 0;
    std::size_t not_by_agent = 0;
    for (const json& row : list(r, "reclaim_runs")) {
      for (const json& k : list(row, "rounds")) {
        ++rounds;
        if (!k.value("ok", false)) {
          continue;
        }
        took.push_back(num(k, "kill_to_reclaimed_ns"));
        agent.push_back(num(k, "agent_reclaim_ns"));
        gap.push_back(num(k, "poll_gap_ns"));
        if (num(k, "kill_to_exited_ns") > 0) {
          exited.push_back(num(k, "kill_to_exited_ns"));
        }
        not_by_agent += k.value("by_agent", false) ? 0 : 1;
      }
    }
    r["reclaim"] = {{"rounds", rounds},
                    {"reclaimed", took.size()},
                    {"failed", rounds - took.size()},
                    {"not_by_agent", not_by_agent},
                    {"min_ns", percentile(took, 0)},
                    {"median_ns", median(took)},
                    {"p90_ns", percentile(took, 0.9)},
                    {"max_ns", percentile(took, 1)},
                    {"agent_median_ns", median(agent)},
                    {"agent_max_ns", percentile(agent, 1)},
                    {"poll_gap_median_ns", median(gap)},
                    {"exited_median_ns", median(exited)},
                    {"exited_max_ns", percentile(exited, 1)},
                    {"bound", kReclaimBound}};
  } else {
    r.erase("reclaim");
  }

  // The bars of issue 4.
  json bars = json::array();
  auto bar = [&](const std::string& name, const std::string& measured, double ratio,
                 const std::string& target, int reached, const std::string& note) {
    bars.push_back({{"bar", name},
                    {"measured", measured},
                    {"ratio", std::isfinite(ratio) ? json(ratio) : json(nullptr)},
                    {"target", target},
                    {"reached", reached < 0 ? json("n/a") : json(reached == 1)},
                    {"note", note}});
  };
  auto verdict = [](double ratio, double limit, bool lower_is_better) {
    if (!std::isfinite(ratio)) {
      return -1;
    }
    return (lower_is_better ? ratio <= limit : ratio >= limit) ? 1 : 0;
  };
  // The first bars: medians over the interleaved bar rounds of the ratio
  // taken within each round (or the sweep's figures when there are no rounds).
  auto lat = [&](const char* t, const char* w, double p) { return Pick{"latency", t, w, p}; };
  auto tput = [&](const char* t) { return Pick{"throughput", t, "spin", 64}; };
  {
    const RoundStat p50 =
        round_ratio(r, lat(kBus, "spin", 64), lat("floor-line", "spin", 64), "p50");
    const RoundStat p99 =
        round_ratio(r, lat(kBus, "spin", 64), lat("floor-line", "spin", 64), "p99");
    const RoundStat bare =
        round_ratio(r, lat(kBus, "spin", 64), lat("floor-line", "spin", 0), "p50");
    bar("one-way latency, busy-poll, 64 B: p50 within 1.5x of the cache-line floor",
        fmt_ns(p50.a) + " vs floor " + fmt_ns(p50.b) +
            " (a line carrying 64 B); vs the bare "
            "line (0 B, " +
            fmt_ns(bare.b) + ") " + fmt_ratio(bare.ratio) + "; " + p50.describe(),
        p50.ratio, "<= 1.5x", verdict(p50.ratio, 1.5, true),
        "ratio = ipcbus / floor (lower is better), median over rounds of the ratio in a round");
    bar("one-way latency, busy-poll, 64 B: p99 within 3x of the floor",
        fmt_ns(p99.a) + " vs floor p99 " + fmt_ns(p99.b) + "; " + p99.describe(), p99.ratio,
        "<= 3x", verdict(p99.ratio, 3, true), "ratio = ipcbus p99 / floor p99");
  }
  {
    const RoundStat p50 =
        round_ratio(r, lat(kBus, "sleep", 64), lat("floor-futex", "sleep", 64), "p50");
    const RoundStat p99 =
        round_ratio(r, lat(kBus, "sleep", 64), lat("floor-futex", "sleep", 64), "p99");
    bar("one-way latency, sleeping listener, 64 B: within 1.2x of the raw futex ping-pong",
        fmt_ns(p50.a) + " vs futex floor " + fmt_ns(p50.b) + "; p99 ratio " + fmt_ratio(p99.ratio) +
            "; " + p50.describe(),
        p50.ratio, "<= 1.2x", verdict(p50.ratio, 1.2, true), "p50 ratio = ipcbus / futex floor");
  }
  double ring_event_ns = NAN;
  {
    const RoundStat x = round_ratio(r, tput(kBus), tput("floor-ring"), "events_per_s");
    if (x.b > 0) {
      ring_event_ns = 1e9 / x.b;
    }
    bar("throughput 1 to 1, 64 B: at least 0.7x of the raw SPSC ring",
        fmt_rate(x.a) + " vs ring " + fmt_rate(x.b) + "; " + x.describe(), x.ratio, ">= 0.7x",
        verdict(x.ratio, 0.7, false), "ratio = ipcbus / ring, higher is better");
  }
  {
    const json& inproc = sub(r, "inproc");
    const double push_ns = num(sub(inproc, "ring_and_pool"), "push_ns", NAN);
    const json s64 = sub(slopes, "64");
    const json s16k = sub(slopes, "16384");
    const double slope = num(s64, "ns_per_added_listener", NAN);
    const double slope16 = num(s16k, "ns_per_added_listener", NAN);
    const double copy = num(sub(inproc, "ring_and_pool"), "memcpy_16k_ns", NAN);
    bar("1 to N: per-event cost grows by no more than one ring push per added listener",
        fmt(slope, 1) + " ns per added listener at 64 B, " + fmt(slope16, 1) +
            " ns at 16 KiB (a 16 KiB copy costs " + fmt(copy) +
            " ns); one ring push between "
            "processes (1 / raw ring rate) " +
            fmt(ring_event_ns, 1) + " ns, in one process " + fmt(push_ns, 1) + " ns",
        slope / ring_event_ns, "<= 1 ring push", verdict(slope / ring_event_ns, 1.0, true),
        "ratio = slope / cross-process ring push; one chunk per event: the slope does not grow "
        "with the payload");
  }
  {
    int rows = 0;
    int fast = 0;
    double worst = INFINITY;
    std::string worst_row;
    for (const json& x : ratios) {
      if (!is_peer(str(x, "against"))) {
        continue;
      }
      const double v = num(x, "ratio");
      const double speedup = str(x, "better") == "lower" ? 1 / v : v;
      ++rows;
      fast += speedup >= 2 ? 1 : 0;
      if (speedup < worst) {
        worst = speedup;
        worst_row = str(x, "kind") + " " + str(x, "metric") + " " + str(x, "wait") + " " +
                    fmt_size(num(x, "payload")) + " vs " + str(x, "against");
        if (x.contains("listeners")) {
          worst_row += " (" + fmt(num(x, "publishers")) + "->" + fmt(num(x, "listeners")) + ")";
        }
      }
    }
    bar("at least twice as fast as every peer on every latency and throughput row",
        std::to_string(fast) + " of " + std::to_string(rows) + " rows at >= 2x; worst " +
            fmt_ratio(worst) + " (" + worst_row + ")",
        worst, ">= 2x on every row", rows == 0 ? -1 : (fast == rows ? 1 : 0),
        "speed-up = peer latency / ipcbus latency, or ipcbus throughput / peer throughput");
  }
  {
    const json& routes = list(sub(r, "inproc"), "route_lookup");
    const json* small = nullptr;
    const json* big = nullptr;
    const json* big_wild = nullptr;
    for (const json& row : routes) {
      if (num(row, "levels") != 7) {
        continue;
      }
      if (!row.value("wildcards", false) &&
          (small == nullptr || num(row, "subscriptions") < num(*small, "subscriptions"))) {
        small = &row;
      }
      if (num(row, "subscriptions") == 100000) {
        (row.value("wildcards", false) ? big_wild : big) = &row;
      }
    }
    const double growth = small && big ? num(*big, "cached_ns") / num(*small, "cached_ns") : NAN;
    bar("route lookup cached O(1)",
        small && big
            ? fmt(num(*small, "cached_ns"), 1) + " ns at " + fmt(num(*small, "subscriptions")) +
                  " subscriptions, " + fmt(num(*big, "cached_ns"), 1) + " ns at 100k"
            : "n/a",
        growth, "flat (100k / 1k <= 1.5x)", verdict(growth, 1.5, true),
        "cached = Publisher::behind() on one topic");
    const double un = big ? num(*big, "uncached_match_ns") : NAN;
    bar("route lookup uncached below 1 us, 7-level topic, 100k subscriptions",
        big ? fmt(un, 0) + " ns (Matcher), " + fmt(num(*big, "uncached_publisher_ns"), 0) +
                  " ns through the publisher; with wildcards " +
                  (big_wild ? fmt(num(*big_wild, "uncached_match_ns"), 0) + " ns" : "n/a")
            : "n/a",
        un / 1000, "< 1000 ns", verdict(un, 1000, true), "ratio = ns / 1000 ns");
  }
  {
    const json st = sub(sub(r, "inproc"), "state_transition");
    const double t = num(st, "transition_ns", NAN);
    const double cas = num(st, "cas_ns", NAN);
    bar("listener state transition about one uncontended CAS (reference 15 ns)",
        fmt(t, 1) + " ns per transition; one acq_rel CAS measured here " + fmt(cas, 1) +
            " ns (ratio " + fmt(t / cas, 2) + ")",
        t / 15.0, "<= 15 ns (the design's reference for one CAS)", verdict(t, 15.0, true),
        "ratio = transition / 15 ns; a transition is a relaxed load, one CAS and the Result");
  }
  {
    const json a = sub(sub(r, "inproc"), "allocations");
    const double per = num(a, "per_event", NAN);
    bar("zero heap allocations per event (publish + receive)",
        std::isfinite(per) ? fmt(per, 4) + " per event over " + fmt(2 * num(a, "events")) +
                                 " events (copy and loan paths)"
                           : "n/a",
        per, "0", std::isfinite(per) ? (per == 0 ? 1 : 0) : -1,
        "counted by a replaced operator new in ipcbus-bench; tests/alloc counts it too");
  }
  {
    const json m = sub(sub(r, "inproc"), "trie_memory");
    const bool has = m.contains("back_to_empty");
    bar("memory: bytes per subscription reported; trie back to its empty size; pruning",
        has ? fmt(num(m, "bytes_per_subscription"), 0) + " B per subscription (" +
                  fmt(num(m, "nodes_per_subscription"), 2) +
                  " nodes), after removing all: " + fmt(num(m, "nodes_used_after_removing_all")) +
                  " node(s) vs " + fmt(num(m, "nodes_used_empty")) + " empty; churning " +
                  fmt(num(m, "subscriptions")) + ": " + fmt(num(m, "churn_nodes_in_use")) +
                  " nodes in use vs " + fmt(num(m, "churn_nodes_ever_created")) +
                  " without pruning (" + fmt(num(m, "churn_bytes_saved") / 1024, 0) + " KiB saved)"
            : "n/a",
        NAN, "back to empty", has ? (m.value("back_to_empty", false) ? 1 : 0) : -1, "");
  }
  {
    const json& fe = r["first_event"];
    const json& bn = r["first_event_bind_now"];
    bar("first-event latency vs the thousandth (pre-warmed segment)",
        fmt_ns(num(fe, "first_rtt_half_ns", NAN)) + " first vs " +
            fmt_ns(num(fe, "thousandth_rtt_half_ns", NAN)) + " thousandth (RTT/2, median of " +
            fmt(num(fe, "runs")) + " fresh buses); with LD_BIND_NOW " +
            fmt_ns(num(bn, "first_rtt_half_ns", NAN)) + " vs " +
            fmt_ns(num(bn, "thousandth_rtt_half_ns", NAN)) + "; one-way (stamp) " +
            fmt_ns(num(fe, "first_oneway_ns", NAN)) + " vs " +
            fmt_ns(num(fe, "thousandth_oneway_ns", NAN)),
        num(bn, "ratio_rtt", NAN), "report both", -1,
        "ratio = first / thousandth with LD_BIND_NOW; the first event also pays the "
        "route-cache miss (a trie walk) and cold caches and code");
  }
  if (r.contains("reclaim")) {
    const json& c = r["reclaim"];
    bar("crash cleanup: kill to reclaimed, with the agent",
        "median " + fmt_ns(num(c, "median_ns", NAN)) + ", p90 " + fmt_ns(num(c, "p90_ns", NAN)) +
            ", max " + fmt_ns(num(c, "max_ns", NAN)) + " over " + fmt(num(c, "reclaimed")) +
            " SIGKILLs (the agent's own, death seen to done: median " +
            fmt_ns(num(c, "agent_median_ns", NAN)) + ", max " +
            fmt_ns(num(c, "agent_max_ns", NAN)) + ")",
        NAN, std::string("documented bound: ") + kReclaimBound, -1,
        "from just before kill() until Bus::inspect() shows the victim's entry, listener and "
        "publisher gone and every pool full");
  }
  r["bars"] = bars;
}

// --- sanity -----------------------------------------------------------------------

std::vector<std::string> sanity_problems(const json& r) {
  std::vector<std::string> out;
  for (const json& f : list(r, "failures")) {
    out.push_back("failed: " + str(f, "case") + ": " + str(f, "error"));
  }
  auto ordered = [](const json& h) {
    return num(h, "count") > 0 && num(h, "min") <= num(h, "p50") &&
           num(h, "p50") <= num(h, "p90") && num(h, "p90") <= num(h, "p99") &&
           num(h, "p99") <= num(h, "p999") && num(h, "p999") <= num(h, "max") && num(h, "p50") > 0;
  };
  auto label = [](const json& row) {
    return str(row, "transport") + " " + str(row, "wait") + " " + fmt_size(num(row, "payload"));
  };
  for (const char* section : {"latency", "first_event_runs", "bar_rounds"}) {
    for (const json& row : list(r, section)) {
      if (str(row, "kind") == "throughput") {
        continue;  // a throughput row of a bar round: checked below
      }
      if (!ordered(row)) {
        out.push_back(std::string(section) + " " + label(row) +
                      ": percentiles not ordered or empty");
      }
      if (!row["one_way"].is_null() && !ordered(row["one_way"])) {
        out.push_back("one-way " + label(row) + ": percentiles not ordered or empty");
      }
      if (num(row, "errors") != 0) {
        out.push_back(label(row) + ": " + fmt(num(row, "errors")) + " torn or out-of-order events");
      }
    }
  }
  std::vector<const json*> streams;
  for (const json& row : list(r, "throughput")) {
    streams.push_back(&row);
  }
  for (const json& row : list(r, "bar_rounds")) {
    if (str(row, "kind") == "throughput") {
      streams.push_back(&row);
    }
  }
  for (const json* each : streams) {
    const json& row = *each;
    const std::string l =
        label(row) + " " + fmt(num(row, "publishers")) + "->" + fmt(num(row, "listeners"));
    if (!(num(row, "events_per_s") > 0) || !(num(row, "slowest_listener_events_per_s") > 0)) {
      out.push_back("throughput " + l + ": zero throughput");
    }
    if (!row.value("lossless", false)) {
      out.push_back("throughput " + l + ": events lost (every transport here blocks when full)");
    }
    if (num(row, "errors") != 0) {
      out.push_back("throughput " + l + ": torn or out-of-order events");
    }
  }
  for (const json& row : list(r, "fanout_cost")) {
    if (!(num(row, "ns_per_publish_p50") > 0)) {
      out.push_back("fan-out cost " + label(row) + ": no timing");
    }
  }
  for (const json& row : list(r, "reclaim_runs")) {
    const auto& rounds = list(row, "rounds");
    if (rounds.empty()) {
      out.push_back("reclaim: no round ran");
    }
    for (const json& k : rounds) {
      const std::string which = "reclaim round " + fmt(num(k, "round")) + ": ";
      if (!k.value("ok", false)) {
        out.push_back(which + str(k, "error"));
        continue;
      }
      if (!(num(k, "kill_to_reclaimed_ns") > 0)) {
        out.push_back(which + "no timing");
      }
      if (!(num(k, "chunks_out_before_kill") > 0)) {
        out.push_back(which + "the victim held no chunk");
      }
      if (!k.value("by_agent", false)) {
        out.push_back(which + "the bus's reclaimed-process count did not move by one");
      }
    }
  }
  if (r.contains("reclaim")) {
    const json& c = r["reclaim"];
    if (!(num(c, "reclaimed") > 0)) {
      out.push_back("reclaim: nothing reclaimed");
    } else if (!(num(c, "min_ns") <= num(c, "median_ns") &&
                 num(c, "median_ns") <= num(c, "p90_ns") && num(c, "p90_ns") <= num(c, "max_ns"))) {
      out.push_back("reclaim: figures not ordered");
    }
  }
  const double planned = num(r, "planned_cases");
  const double got =
      static_cast<double>(list(r, "latency").size() + list(r, "throughput").size() +
                          list(r, "fanout_cost").size() + list(r, "first_event_runs").size() +
                          list(r, "bar_rounds").size() + list(r, "reclaim_runs").size());
  if (got != planned) {
    out.push_back("missing results: " + fmt(planned - got) + " of " + fmt(planned) + " cases");
  }
  const json& in = sub(r, "inproc");
  for (const json& row : list(in, "route_lookup")) {
    if (!(num(row, "uncached_match_ns") > 0 && num(row, "cached_ns") > 0)) {
      out.push_back("route lookup: no timing");
    }
  }
  if (in.contains("state_transition") && !(num(in["state_transition"], "transition_ns") > 0 &&
                                           num(in["state_transition"], "cas_ns") > 0)) {
    out.push_back("state transition: no timing");
  }
  if (in.contains("trie_memory") && !in["trie_memory"].value("all_calls_ok", false)) {
    out.push_back("trie memory: a subscribe or unsubscribe failed");
  }
  return out;
}

// --- human table -----------------------------------------------------------------

std::string human_table(const json& r) {
  std::ostringstream o;
  char line[512];
  const json& m = sub(r, "machine");
  o << "ipcbus-bench " << (r.value("quick", false) ? "(quick) " : "") << str(r, "started_utc")
    << "  " << str(m, "cpu_model") << ", " << num(m, "cpus_usable") << " CPUs, " << str(m, "kernel")
    << "\n";
  for (const char* wait : {"spin", "sleep"}) {
    o << "\none-way latency (round trip / 2), "
      << (std::string(wait) == "spin" ? "busy-poll" : "sleeping")
      << " receivers; ratio = ipcbus / this (lower is better)\n";
    std::snprintf(line, sizeof line, "%-8s %-12s %9s %9s %9s %9s %9s %9s %8s %8s\n", "payload",
                  "transport", "p50", "p90", "p99", "p99.9", "max", "one-way", "x p50", "x p99");
    o << line;
    for (const double p : payloads_of(r, "latency")) {
      const json* bus = find_latency(r, kBus, wait, p);
      for (const std::string& t : transports_of(r, "latency")) {
        const std::string w = t == "floor-line" ? "spin" : t == "floor-futex" ? "sleep" : wait;
        if ((t == "floor-line" && std::string(wait) != "spin") ||
            (t == "floor-futex" && std::string(wait) != "sleep")) {
          continue;
        }
        const json* row = find_latency(r, t, w, p);
        if (row == nullptr) {
          continue;
        }
        const json& ow = (*row)["one_way"];
        std::snprintf(
            line, sizeof line, "%-8s %-12s %9s %9s %9s %9s %9s %9s %8s %8s\n", fmt_size(p).c_str(),
            t.c_str(), fmt_ns(num(*row, "p50")).c_str(), fmt_ns(num(*row, "p90")).c_str(),
            fmt_ns(num(*row, "p99")).c_str(), fmt_ns(num(*row, "p999")).c_str(),
            fmt_ns(num(*row, "max")).c_str(), ow.is_null() ? "-" : fmt_ns(num(ow, "p50")).c_str(),
            bus && t != kBus ? fmt_ratio(num(*bus, "p50") / num(*row, "p50")).c_str() : "",
            bus && t != kBus ? fmt_ratio(num(*bus, "p99") / num(*row, "p99")).c_str() : "");
        o << line;
      }
    }
  }
  o << "\nthroughput, one direction, counted at the receivers; ratio = ipcbus / this (higher is "
       "better)\n";
  std::snprintf(line, sizeof line, "%-8s %-6s %-5s %-12s %11s %11s %12s %8s\n", "payload", "wait",
                "P->N", "transport", "events/s", "per lis.", "bytes/s", "x");
  o << line;
  for (const json& row : list(r, "throughput")) {
    const json* bus = find_stream(r, kBus, str(row, "wait"), num(row, "payload"),
                                  num(row, "publishers"), num(row, "listeners"));
    const bool fan = num(row, "listeners") > 1;
    const char* metric = fan ? "per_listener_events_per_s" : "events_per_s";
    std::string ratio;
    if (bus && str(row, "transport") != kBus) {
      ratio = fmt_ratio(num(*bus, metric) / num(row, metric));
    }
    const std::string pn = fmt(num(row, "publishers")) + "->" + fmt(num(row, "listeners"));
    std::snprintf(line, sizeof line, "%-8s %-6s %-5s %-12s %11s %11s %12s %8s\n",
                  fmt_size(num(row, "payload")).c_str(), str(row, "wait").c_str(), pn.c_str(),
                  str(row, "transport").c_str(), fmt_rate(num(row, "events_per_s")).c_str(),
                  fmt_rate(num(row, "per_listener_events_per_s")).c_str(),
                  fmt_bytes_rate(num(row, "bytes_per_s")).c_str(), ratio.c_str());
    o << line;
  }
  if (!list(r, "fanout_cost").empty()) {
    o << "\nfan-out cost: ns per publish in a burst (busy listeners drain between bursts)\n";
    for (const json& row : r["fanout_cost"]) {
      std::snprintf(line, sizeof line, "  %-8s %2.0f listeners  %8s per publish (p50), mean %s\n",
                    fmt_size(num(row, "payload")).c_str(), num(row, "listeners"),
                    fmt_ns(num(row, "ns_per_publish_p50")).c_str(),
                    fmt_ns(num(row, "ns_per_publish_mean")).c_str());
      o << line;
    }
  }
  if (r.contains("reclaim")) {
    const json& c = r["reclaim"];
    o << "\ncrash cleanup: SIGKILL to reclaimed, with the agent (" << fmt(num(c, "reclaimed"))
      << " of " << fmt(num(c, "rounds")) << " kills reclaimed)\n";
    std::snprintf(line, sizeof line, "  %-34s %9s %9s %9s %9s\n", "", "min", "median", "p90",
                  "max");
    o << line;
    std::snprintf(line, sizeof line, "  %-34s %9s %9s %9s %9s\n", "kill to reclaimed (inspect)",
                  fmt_ns(num(c, "min_ns", NAN)).c_str(), fmt_ns(num(c, "median_ns", NAN)).c_str(),
                  fmt_ns(num(c, "p90_ns", NAN)).c_str(), fmt_ns(num(c, "max_ns", NAN)).c_str());
    o << line;
    std::snprintf(line, sizeof line, "  %-34s %9s %9s %9s %9s\n",
                  "agent's own (death seen to done)", "",
                  fmt_ns(num(c, "agent_median_ns", NAN)).c_str(), "",
                  fmt_ns(num(c, "agent_max_ns", NAN)).c_str());
    o << line;
    std::snprintf(line, sizeof line, "  %-34s %9s %9s %9s %9s\n", "kernel: kill to exited (zombie)",
                  "", fmt_ns(num(c, "exited_median_ns", NAN)).c_str(), "",
                  fmt_ns(num(c, "exited_max_ns", NAN)).c_str());
    o << line;
    o << "  poll resolution (median gap between looks): "
      << fmt_ns(num(c, "poll_gap_median_ns", NAN)) << "\n  documented bound: " << str(c, "bound")
      << "\n";
  }
  o << "\nbars (performance targets, as ratios measured in this run)\n";
  for (const json& b : list(r, "bars")) {
    const json& reached = b["reached"];
    const std::string verdict =
        reached.is_boolean() ? (reached.get<bool>() ? "REACHED" : "not reached") : "reported";
    o << "  [" << verdict << "] " << str(b, "bar") << "\n      " << str(b, "measured");
    if (b["ratio"].is_number()) {
      o << "  (ratio " << fmt(b["ratio"].get<double>(), 3) << ", target " << str(b, "target")
        << ")";
    }
    o << "\n";
  }
  const auto& fails = list(r, "failures");
  if (!fails.empty()) {
    o << "\nfailures\n";
    for (const json& f : fails) {
      o << "  " << str(f, "case") << ": " << str(f, "error") << "\n";
    }
  }
  o << "\nran " << fmt(num(r, "duration_s"), 0) << " s\n";
  return o.str();
}

// --- markdown ------------------------------------------------------------------------

std::string markdown_report(const json& r, const json& micro, const std::string& notes) {
  std::ostringstream o;
  const json& m = sub(r, "machine");
  auto load = [](const json& l) {
    if (!l.is_array() || l.size() != 3) {
      return std::string("n/a");
    }
    return fmt(l[0].get<double>(), 2) + " / " + fmt(l[1].get<double>(), 2) + " / " +
           fmt(l[2].get<double>(), 2);
  };
  o << "# ipcbus benchmarks\n\n"
    << "The latest figures of `ipcbus-bench` (the multi-process comparison) and of the micro "
       "benchmarks, from one run on the machine below. Every figure comes with its ratio to the "
       "matching floor of this machine and to each peer, measured in the same run. These machines "
       "are shared and noisy: read the ratios, not the absolute times.\n\n"
    << "## Machine and run\n\n"
    << "| | |\n|---|---|\n"
    << "| CPU | " << str(m, "cpu_model") << " |\n"
    << "| CPUs | " << num(m, "cpus_online") << " online, " << num(m, "cpus_usable")
    << " usable (the two sides of every case pinned to different CPUs) |\n"
    << "| kernel | " << str(m, "kernel") << ", clock source " << str(m, "clocksource")
    << (str(m, "hypervisor").empty() ? "" : ", hypervisor " + str(m, "hypervisor")) << " |\n"
    << "| run | " << str(r, "started_utc") << ", " << fmt(num(r, "duration_s"), 0) << " s"
    << (r.value("quick", false) ? " (quick subset)" : "") << " |\n"
    << "| load average (1/5/15 min) | before " << load(r.value("load_before", json())) << ", after "
    << load(r.value("load_after", json())) << " |\n\n";

  o << "## How to rerun\n\n"
    << "```sh\nscripts/bench.sh            # build, run everything, rewrite this file and "
       "docs/bench/*.png\n"
    << "build/bench/ipcbus-bench --quick   # the seconds-long smoke pass that ctest runs\n"
    << "build/bench/ipcbus-bench --json out.json --plots docs/bench\n"
    << "build/bench/ipcbus-bench --report out.json --micro micro.json > BENCHMARKS.md\n```\n\n"
    << "`scripts/bench.sh` waits for the 1-minute load average to drop below 1.0 (up to 15 "
       "minutes) before it measures.\n\n";

  o << "## How it measures\n\n"
    << "- Every case runs in fresh processes (fork + exec of `ipcbus-bench` in a role), the "
       "two sides pinned to different CPUs. A watchdog kills and reaps every child of a case "
       "that fails or overruns; children die with the parent; RouDi is started for the run and "
       "stopped after it; every name made in /dev/shm and /dev/mqueue is removed.\n"
    << "- Latency: ping-pong, one clock read per round trip, one-way = round trip / 2, in a "
       "log-linear histogram (128 sub-buckets per power of two: under 0.8 % error, 1 ns to 17 s). "
       "\"one-way (stamp)\" is the receive time minus the CLOCK_MONOTONIC stamp of the event "
       "(the bus stamps each event itself; the others carry the stamp in the payload).\n"
    << "- Payloads: the sender writes every byte of the payload (in place where the transport "
       "lends memory: ipcbus and iceoryx loans, the floors' shared slots; in a private buffer "
       "that the transport copies otherwise); the receiver reads one word of every cache line "
       "and checks a header and a trailer (sequence numbers: nothing torn, lost or reordered).\n"
    << "- Throughput: one direction, as fast as the sender can, counted at the receivers after "
       "a warm-up, nothing lost (ipcbus listeners use the block policy, iceoryx "
       "WAIT_FOR_CONSUMER/BLOCK_PRODUCER, the others block when full). Queue depth per payload: "
       "1024 events up to 16 KiB, 64 at 256 KiB, 16 at 1 MiB (iceoryx: at most 256).\n"
    << "- Floors: `floor-line` is a mailbox line polled by spinning (with a 0 B payload: two "
       "atomics bounced between two processes), `floor-futex` the same mailbox with FUTEX_WAIT "
       "/ FUTEX_WAKE on every event, `floor-ring` a raw SPSC ring of payload slots.\n"
    << "- Peers: iceoryx 2.0 (untyped API; busy `take()` loop or WaitSet), Unix domain stream "
       "socketpair, POSIX message queues, Boost.Interprocess message_queue, ZeroMQ PUSH/PULL "
       "over ipc://. \"spin\" peers poll with their non-blocking call, \"sleep\" peers block.\n"
    << "- Ratios: ipcbus figure / other figure. For latency lower is better; for throughput "
       "higher is better.\n\n";

  o << "## The performance bars\n\n| bar | measured | ratio | target | reached "
       "|\n|---|---|---|---|---|\n";
  for (const json& b : list(r, "bars")) {
    const json& reached = b["reached"];
    o << "| " << str(b, "bar") << " | " << str(b, "measured") << " | "
      << (b["ratio"].is_number() ? fmt(b["ratio"].get<double>(), 3) : "") << " | "
      << str(b, "target") << " | "
      << (reached.is_boolean() ? (reached.get<bool>() ? "yes" : "**no**") : "reported") << " |\n";
  }
  o << "\n";

  if (!notes.empty()) {
    o << notes << (notes.back() == '\n' ? "\n" : "\n\n");
  }

  for (const char* wait : {"spin", "sleep"}) {
    const bool spin = std::string(wait) == "spin";
    o << "## One-way latency, " << (spin ? "busy-polling" : "sleeping") << " receivers\n\n"
      << "Round trip / 2. \"x p50\" and \"x p99\" are ipcbus / this row (below 1: ipcbus is "
         "faster).\n\n"
      << "| payload | transport | p50 | p90 | p99 | p99.9 | max | one-way (stamp) p50 | x p50 | x "
         "p99 |\n"
      << "|---|---|---|---|---|---|---|---|---|---|\n";
    for (const double p : payloads_of(r, "latency")) {
      const json* bus = find_latency(r, kBus, wait, p);
      std::vector<std::pair<std::string, const json*>> rows;
      if (spin && p == 64) {
        rows.emplace_back("floor-line (0 B)", find_latency(r, "floor-line", "spin", 0));
      }
      for (const std::string& t : transports_of(r, "latency")) {
        if ((t == "floor-line" && !spin) || (t == "floor-futex" && spin)) {
          continue;
        }
        rows.emplace_back(
            t, find_latency(r, t, t.rfind("floor-", 0) == 0 ? (spin ? "spin" : "sleep") : wait, p));
      }
      for (const auto& [name, row] : rows) {
        if (row == nullptr) {
          continue;
        }
        const json& ow = (*row)["one_way"];
        const bool self = name == kBus;
        o << "| " << fmt_size(p) << " | " << (self ? "**ipcbus**" : name) << " | "
          << fmt_ns(num(*row, "p50")) << " | " << fmt_ns(num(*row, "p90")) << " | "
          << fmt_ns(num(*row, "p99")) << " | " << fmt_ns(num(*row, "p999")) << " | "
          << fmt_ns(num(*row, "max")) << " | " << (ow.is_null() ? "" : fmt_ns(num(ow, "p50")))
          << " | " << (bus && !self ? fmt_ratio(num(*bus, "p50") / num(*row, "p50")) : "") << " | "
          << (bus && !self ? fmt_ratio(num(*bus, "p99") / num(*row, "p99")) : "") << " |\n";
      }
    }
    o << "\n";
  }

  auto throughput_table = [&](const std::string& title,
                              const std::function<bool(const json&)>& pick, bool per_listener) {
    o << "## " << title << "\n\n"
      << "\"x\" is ipcbus / this row" << (per_listener ? " per listener" : "")
      << " (above 1: ipcbus is faster). \"sender CPU\" is the senders' CPU time per event "
         "sent: unlike the rates it does not count the time other processes held the CPU.\n\n"
      << "| payload | wait | P->N | transport | events/s | per listener | slowest listener | "
         "bytes/s | sender CPU | x |\n"
      << "|---|---|---|---|---|---|---|---|---|---|\n";
    for (const json& row : list(r, "throughput")) {
      if (!pick(row)) {
        continue;
      }
      const json* bus = find_stream(r, kBus, str(row, "wait"), num(row, "payload"),
                                    num(row, "publishers"), num(row, "listeners"));
      const char* metric = per_listener ? "per_listener_events_per_s" : "events_per_s";
      const bool self = str(row, "transport") == kBus;
      o << "| " << fmt_size(num(row, "payload")) << " | " << str(row, "wait") << " | "
        << fmt(num(row, "publishers")) << "->" << fmt(num(row, "listeners")) << " | "
        << (self ? "**ipcbus**" : str(row, "transport")) << " | "
        << fmt_rate(num(row, "events_per_s")) << " | "
        << fmt_rate(num(row, "per_listener_events_per_s")) << " | "
        << fmt_rate(num(row, "slowest_listener_events_per_s")) << " | "
        << fmt_bytes_rate(num(row, "bytes_per_s")) << " | "
        << fmt_ns(num(row, "sender_cpu_ns_per_event")) << " | "
        << (bus && !self ? fmt_ratio(num(*bus, metric) / num(row, metric)) : "") << " |\n";
    }
    o << "\n";
  };
  throughput_table(
      "Throughput, 1 publisher to 1 listener",
      [](const json& row) { return num(row, "publishers") == 1 && num(row, "listeners") == 1; },
      false);
  throughput_table(
      "Throughput, 1 publisher to N listeners",
      [](const json& row) { return num(row, "publishers") == 1 && num(row, "listeners") > 1; },
      true);
  throughput_table(
      "Throughput, N publishers to 1 listener",
      [](const json& row) { return num(row, "publishers") > 1; }, false);

  if (!list(r, "fanout_cost").empty()) {
    o << "## Fan-out cost: one chunk per event, not N copies\n\n"
      << "The publisher times bursts of " << num(r["fanout_cost"][0], "burst")
      << " publishes into N busy-polling listeners (in other processes), which drain between "
         "bursts so that no publish waits; ns per publish, median over the bursts.\n\n"
      << "| payload | listeners | ns per publish (p50) | mean | p99 |\n|---|---|---|---|---|\n";
    for (const json& row : r["fanout_cost"]) {
      o << "| " << fmt_size(num(row, "payload")) << " | " << num(row, "listeners") << " | "
        << fmt(num(row, "ns_per_publish_p50")) << " | " << fmt(num(row, "ns_per_publish_mean"))
        << " | " << fmt(num(row, "p99")) << " |\n";
    }
    o << "\n";
    for (const auto& [key, s] : sub(r, "fanout_slope").items()) {
      o << "- " << fmt_size(num(s, "payload")) << ": " << fmt(num(s, "ns_per_added_listener"), 1)
        << " ns per added listener (least squares over N)\n";
    }
    o << "\n";
  }

  o << "## First event vs the thousandth\n\n"
    << "A fresh bus (its pages faulted in at creation), fresh processes, busy-polling, 64 B; "
       "median of "
    << num(sub(r, "first_event"), "runs")
    << " runs each. With lazy binding the first calls into libipcbus also resolve their "
       "symbols, as in any fresh application; LD_BIND_NOW=1 resolves them at start.\n\n"
    << "| | first event | thousandth | ratio |\n|---|---|---|---|\n";
  for (const char* key : {"first_event", "first_event_bind_now"}) {
    const json& fe = sub(r, key);
    const std::string how = std::string(key) == "first_event" ? "" : ", LD_BIND_NOW";
    o << "| round trip / 2" << how << " | " << fmt_ns(num(fe, "first_rtt_half_ns", NAN)) << " | "
      << fmt_ns(num(fe, "thousandth_rtt_half_ns", NAN)) << " | "
      << fmt_ratio(num(fe, "ratio_rtt", NAN)) << " |\n"
      << "| one-way (stamp)" << how << " | " << fmt_ns(num(fe, "first_oneway_ns", NAN)) << " | "
      << fmt_ns(num(fe, "thousandth_oneway_ns", NAN)) << " | "
      << fmt_ratio(num(fe, "ratio_oneway", NAN)) << " |\n";
  }
  o << "\nPage faults in the two processes during the first round trip (median): "
    << fmt(num(sub(r, "first_event"), "first_round_trip_page_faults", NAN))
    << " with lazy binding, "
    << fmt(num(sub(r, "first_event_bind_now"), "first_round_trip_page_faults", NAN))
    << " with LD_BIND_NOW (the segment's pages are faulted in when it is created and mapped, so "
       "these are the processes' own code, stack and heap pages).\n\n";

  if (r.contains("reclaim")) {
    const json& c = r["reclaim"];
    double sleep_ns = NAN;
    for (const json& row : list(r, "reclaim_runs")) {
      sleep_ns = num(row, "poll_sleep_ns", NAN);
    }
    o << "## Crash cleanup: kill to reclaimed (agent)\n\n"
      << "A fresh bus of the default configuration with the real agent (`ipcbus-agent`) on it. "
         "Each round a fresh victim process opens the bus, makes a listener subscribed to "
         "`bench/reclaim/#` and a publisher, publishes 8 events to itself (two size classes), "
         "keeps one as a Sample and the rest in its ring, holds a Loan of a third class, and "
         "says it is ready; the bench SIGKILLs it and times, on CLOCK_MONOTONIC, from just "
         "before kill() until Bus::inspect() shows the victim's process entry, listener and "
         "publisher gone and every pool full again (looking every "
      << fmt_ns(sleep_ns)
      << " plus the time of one inspect(); the victim is reaped only after). \"agent's own\" is "
         "the bus's figure of the last reclaim, from the death seen to done. "
      << fmt(num(c, "reclaimed")) << " of " << fmt(num(c, "rounds")) << " kills reclaimed"
      << (num(c, "not_by_agent") > 0 ? " (**" + fmt(num(c, "not_by_agent")) + " not by the agent**)"
                                     : ", every one by the agent")
      << ".\n\n"
      << "| | min | median | p90 | max |\n|---|---|---|---|---|\n"
      << "| kill to reclaimed | " << fmt_ns(num(c, "min_ns", NAN)) << " | "
      << fmt_ns(num(c, "median_ns", NAN)) << " | " << fmt_ns(num(c, "p90_ns", NAN)) << " | "
      << fmt_ns(num(c, "max_ns", NAN)) << " |\n"
      << "| agent's own (death seen to done) | | " << fmt_ns(num(c, "agent_median_ns", NAN))
      << " | | " << fmt_ns(num(c, "agent_max_ns", NAN)) << " |\n"
      << "| kernel: kill to exited (a zombie, as the polls saw it) | | "
      << fmt_ns(num(c, "exited_median_ns", NAN)) << " | | " << fmt_ns(num(c, "exited_max_ns", NAN))
      << " |\n\n"
      << "The kernel tears the victim down (its mappings of the segment included) before it drops "
         "the victim's entry lock and makes its pidfd readable, so nobody can see the death "
         "before \"kill to exited\".\n\n"
      << "Documented bound (docs/failure-model.md): " << str(c, "bound")
      << ". Median gap between two looks at the bus: " << fmt_ns(num(c, "poll_gap_median_ns", NAN))
      << ", the resolution of these figures.\n\n";
  }

  const json& in = sub(r, "inproc");
  if (in.contains("trie_memory")) {
    const json& t = in["trie_memory"];
    o << "## Trie memory\n\n"
      << "| | |\n|---|---|\n"
      << "| subscriptions | " << num(t, "subscriptions") << " filters of " << num(t, "levels")
      << " levels |\n"
      << "| bytes per trie node | " << num(t, "node_stride_bytes") << " (node + label) + "
      << fmt(num(t, "edge_bytes_per_node"), 0) << " (its share of the edge table) |\n"
      << "| bytes per subscription record | " << num(t, "sub_record_bytes") << " |\n"
      << "| nodes per subscription | " << fmt(num(t, "nodes_per_subscription"), 2) << " |\n"
      << "| **bytes per subscription** (in use) | " << fmt(num(t, "bytes_per_subscription"), 0)
      << " |\n"
      << "| bytes reserved per configured subscription | "
      << fmt(num(t, "reserved_bytes_per_configured_subscription"), 0)
      << " (the trie regions of the segment / configured subscriptions) |\n"
      << "| nodes in use: empty / full / after removing all | " << num(t, "nodes_used_empty")
      << " / " << num(t, "nodes_used_full") << " / " << num(t, "nodes_used_after_removing_all")
      << (t.value("back_to_empty", false) ? " (back to empty)" : " (**not** back to empty)")
      << " |\n"
      << "| churn: every subscription replaced once | " << num(t, "churn_nodes_in_use")
      << " nodes in use with pruning; " << num(t, "churn_nodes_ever_created")
      << " ever created, all of which would remain without it: "
      << fmt(num(t, "churn_bytes_saved") / 1024, 0) << " KiB saved |\n\n";
  }
  if (in.contains("route_lookup")) {
    o << "## Route lookup, state transition, ring, allocations (in one process)\n\n"
      << "| subscriptions | levels | wildcards | uncached (Matcher) | uncached (publisher) | "
         "cached |\n"
      << "|---|---|---|---|---|---|\n";
    for (const json& row : in["route_lookup"]) {
      o << "| " << num(row, "subscriptions") << " | " << num(row, "levels") << " | "
        << (row.value("wildcards", false) ? "yes" : "no") << " | "
        << fmt(num(row, "uncached_match_ns")) << " ns | " << fmt(num(row, "uncached_publisher_ns"))
        << " ns | " << fmt(num(row, "cached_ns"), 1) << " ns |\n";
    }
    const json& st = sub(in, "state_transition");
    const json& rp = sub(in, "ring_and_pool");
    const json& al = sub(in, "allocations");
    o << "\n| | ns |\n|---|---|\n"
      << "| listener state transition (pause or resume) | " << fmt(num(st, "transition_ns"), 1)
      << " |\n"
      << "| one uncontended CAS (acq_rel) | " << fmt(num(st, "cas_ns"), 1) << " |\n"
      << "| ring push (uncontended) | " << fmt(num(rp, "push_ns"), 1) << " |\n"
      << "| ring pop (uncontended) | " << fmt(num(rp, "pop_ns"), 1) << " |\n"
      << "| pool take + return | " << fmt(num(rp, "take_return_ns"), 1) << " |\n"
      << "| memcpy of 16 KiB | " << fmt(num(rp, "memcpy_16k_ns"), 0) << " |\n"
      << "| heap allocations per event (publish + receive) | " << fmt(num(al, "per_event"), 4)
      << " |\n\n";
  }

  if (micro.is_object() && micro.contains("benchmarks")) {
    o << "## Micro benchmarks (Google Benchmark, median of the repetitions)\n\n"
      << "| benchmark | time | CPU | items/s |\n|---|---|---|---|\n";
    for (const json& b : micro["benchmarks"]) {
      const std::string agg = b.value("aggregate_name", "");
      if (!agg.empty() && agg != "median") {
        continue;
      }
      std::string name = b.value("run_name", b.value("name", ""));
      o << "| " << name << " | " << fmt(num(b, "real_time"), 1) << " " << b.value("time_unit", "ns")
        << " | " << fmt(num(b, "cpu_time"), 1) << " " << b.value("time_unit", "ns") << " | "
        << (b.contains("items_per_second") ? fmt_rate(num(b, "items_per_second")) : "") << " |\n";
    }
    o << "\n";
  }

  o << "## Plots\n\n"
    << "![latency, busy-poll](docs/bench/latency-spin.png)\n\n"
    << "![latency, sleeping](docs/bench/latency-sleep.png)\n\n"
    << "![ipcbus latency percentiles](docs/bench/latency-percentiles.png)\n\n"
    << "![throughput by listeners](docs/bench/throughput-listeners.png)\n\n"
    << "![throughput by publishers](docs/bench/throughput-publishers.png)\n\n"
    << "![throughput by payload](docs/bench/throughput-payload.png)\n\n";

  const auto& fails = list(r, "failures");
  const auto& insane = list(r, "sanity_problems");
  if (!fails.empty() || !insane.empty()) {
    o << "## Failures\n\n";
    for (const json& f : fails) {
      o << "- " << str(f, "case") << ": " << str(f, "error") << "\n";
    }
    for (const json& p : insane) {
      o << "- " << p.get<std::string>() << "\n";
    }
    o << "\n";
  }
  return o.str();
}

// --- plots --------------------------------------------------------------------------

namespace {

std::string quoted(const std::string& s) {
  return "'" + s + "'";
}

}  // namespace

bool write_plots(const json& r, const std::string& dir, std::string* why) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  char data_template[] = "/tmp/ipcbus-bench-plot-XXXXXX";
  if (mkdtemp(data_template) == nullptr) {
    *why = "mkdtemp for the plot data failed";
    return false;
  }
  const std::string data = data_template;
  struct RemoveAfter {
    std::string dir;
    ~RemoveAfter() {
      std::error_code e;
      std::filesystem::remove_all(dir, e);
    }
  } remove_after{data};
  std::ostringstream gp;
  gp << "set terminal pngcairo size 1000,640 font 'sans,10'\n"
     << "set grid\nset key outside right top\nset logscale y\n"
     << "set format y '%.0s%c'\n";  // 100k, 1M: SI prefixes
  const std::string payload_tics =
      "set xtics ('64 B' 64, '1 KiB' 1024, '16 KiB' 16384, '256 KiB' 262144, '1 MiB' 1048576)\n"
      "set xrange [48:1400000]\n";
  const std::string count_tics = "set xtics (1, 2, 4, 8, 16)\nset xrange [0.8:11]\n";
  const std::vector<double> payloads = payloads_of(r, "latency");

  // Latency by payload, per transport, p50 solid and p99 dashed.
  for (const char* wait : {"spin", "sleep"}) {
    std::vector<std::string> series;
    for (const std::string& t : transports_of(r, "latency")) {
      const std::string w = t == "floor-line" ? "spin" : t == "floor-futex" ? "sleep" : wait;
      if ((t == "floor-line" && std::string(wait) != "spin") ||
          (t == "floor-futex" && std::string(wait) != "sleep")) {
        continue;
      }
      const std::string file = data + "/lat-" + wait + "-" + t + ".dat";
      std::ofstream f(file);
      int rows = 0;
      for (const double p : payloads) {
        if (const json* row = find_latency(r, t, w, p)) {
          f << p << " " << num(*row, "p50") << " " << num(*row, "p99") << "\n";
          ++rows;
        }
      }
      if (rows > 0) {
        series.push_back(t);
      }
    }
    if (series.empty()) {
      continue;
    }
    gp << "set output " << quoted(dir + "/latency-" + wait + ".png") << "\n"
       << "set title 'one-way latency (round trip / 2), "
       << (std::string(wait) == "spin" ? "busy-polling" : "sleeping")
       << " receivers: p50 solid, p99 dashed'\n"
       << "set xlabel 'payload'\nset ylabel 'ns'\nset logscale x 2\n"
       << payload_tics << "plot ";
    for (std::size_t i = 0; i < series.size(); ++i) {
      const std::string file = quoted(data + "/lat-" + wait + "-" + series[i] + ".dat");
      gp << (i ? ", " : "") << file << " using 1:2 with linespoints lw 2 lc " << i + 1 << " title "
         << quoted(series[i] + " p50") << ", " << file << " using 1:3 with lines dt 2 lc " << i + 1
         << " notitle";
    }
    gp << "\n";
  }

  // The bus's own percentiles by payload.
  {
    for (const char* wait : {"spin", "sleep"}) {
      std::ofstream f(data + "/bus-pct-" + wait + ".dat");
      for (const double p : payloads) {
        if (const json* row = find_latency(r, kBus, wait, p)) {
          f << p << " " << num(*row, "p50") << " " << num(*row, "p90") << " " << num(*row, "p99")
            << " " << num(*row, "p999") << "\n";
        }
      }
    }
    gp << "set output " << quoted(dir + "/latency-percentiles.png") << "\n"
       << "set title 'ipcbus one-way latency percentiles by payload: busy-poll solid, sleeping "
          "dashed'\n"
       << "set xlabel 'payload'\nset ylabel 'ns'\nset logscale x 2\n"
       << payload_tics << "plot ";
    const char* names[] = {"p50", "p90", "p99", "p99.9"};
    for (int i = 0; i < 4; ++i) {
      gp << (i ? ", " : "") << quoted(data + "/bus-pct-spin.dat") << " using 1:" << i + 2
         << " with linespoints lw 2 lc " << i + 1 << " title "
         << quoted(std::string("spin ") + names[i]) << ", " << quoted(data + "/bus-pct-sleep.dat")
         << " using 1:" << i + 2 << " with linespoints dt 2 lc " << i + 1 << " title "
         << quoted(std::string("sleep ") + names[i]);
    }
    gp << "\n";
  }

  // Throughput by listeners (1 to N) and by publishers (N to 1), 64 B.
  auto by_count = [&](const std::string& png, const std::string& title, bool fan_out) {
    std::vector<std::string> series;
    for (const std::string& t : transports_of(r, "throughput")) {
      for (const char* wait : {"spin", "sleep"}) {
        const std::string file = data + "/" + png + "-" + t + "-" + wait + ".dat";
        std::ofstream f(file);
        int rows = 0;
        for (const double n : {1.0, 2.0, 4.0, 8.0, 16.0}) {
          const json* row =
              fan_out ? find_stream(r, t, wait, 64, 1, n) : find_stream(r, t, wait, 64, n, 1);
          if (row != nullptr) {
            f << n << " " << num(*row, fan_out ? "per_listener_events_per_s" : "events_per_s")
              << "\n";
            ++rows;
          }
        }
        if (rows > 1) {
          series.push_back(t + "-" + wait);
        }
      }
    }
    if (series.empty()) {
      return;
    }
    gp << "set output " << quoted(dir + "/" + png + ".png") << "\n"
       << "set title " << quoted(title) << "\nset xlabel "
       << quoted(fan_out ? "listeners (1 publisher)" : "publishers (1 listener)") << "\nset ylabel "
       << quoted(fan_out ? "events/s per listener" : "events/s") << "\n"
       << "set logscale x 2\n"
       << count_tics << "plot ";
    for (std::size_t i = 0; i < series.size(); ++i) {
      const bool sleep = series[i].find("-sleep") != std::string::npos;
      gp << (i ? ", " : "") << quoted(data + "/" + png + "-" + series[i] + ".dat")
         << " using 1:2 with linespoints lw 2 " << (sleep ? "dt 2 " : "") << "lc " << i / 2 + 1
         << " title " << quoted(series[i]);
    }
    gp << "\n";
  };
  by_count("throughput-listeners",
           "throughput 1 to N, 64 B, per listener (busy solid, sleeping dashed)", true);
  by_count("throughput-publishers",
           "throughput N to 1, 64 B, at the listener (busy solid, sleeping dashed)", false);

  // Throughput 1 to 1 by payload, bytes/s.
  {
    std::vector<std::string> series;
    for (const std::string& t : transports_of(r, "throughput")) {
      for (const char* wait : {"spin", "sleep"}) {
        const std::string file = data + "/tp-" + t + "-" + wait + ".dat";
        std::ofstream f(file);
        int rows = 0;
        for (const double p : payloads_of(r, "throughput")) {
          if (const json* row = find_stream(r, t, wait, p, 1, 1)) {
            f << p << " " << num(*row, "bytes_per_s") << "\n";
            ++rows;
          }
        }
        if (rows > 0) {
          series.push_back(t + "-" + wait);
        }
      }
    }
    if (!series.empty()) {
      gp << "set output " << quoted(dir + "/throughput-payload.png") << "\n"
         << "set title 'throughput 1 to 1 by payload (busy solid, sleeping dashed)'\n"
         << "set xlabel 'payload'\nset ylabel 'bytes/s'\nset logscale x 2\n"
         << payload_tics << "plot ";
      int colour = 0;
      std::string last;
      for (std::size_t i = 0; i < series.size(); ++i) {
        const std::string t = series[i].substr(0, series[i].rfind('-'));
        if (t != last) {
          ++colour;
          last = t;
        }
        const bool sleep = series[i].find("-sleep") != std::string::npos;
        gp << (i ? ", " : "") << quoted(data + "/tp-" + series[i] + ".dat")
           << " using 1:2 with linespoints lw 2 " << (sleep ? "dt 2 " : "") << "lc " << colour
           << " title " << quoted(series[i]);
      }
      gp << "\n";
    }
  }
  const std::string script = data + "/plots.gp";
  {
    std::ofstream f(script);
    f << gp.str();
  }
  const std::string log = data + "/gnuplot.log";
  const int pid = fork();
  if (pid == 0) {
    // gnuplot's warnings (an x range of one payload in --quick) go to a log.
    if (FILE* f = std::freopen(log.c_str(), "w", stderr)) {
      dup2(fileno(f), 1);
    }
    execlp("gnuplot", "gnuplot", script.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0) {
    std::ifstream f(log);
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    *why = "gnuplot failed on " + script + ": " + text.substr(0, 400);
    return false;
  }
  return true;
}

}  // namespace ipcbus::bench
