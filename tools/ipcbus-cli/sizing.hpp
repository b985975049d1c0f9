// sizing.hpp: the arithmetic of `ipcbus advise`: ring capacity by Little's
// law, pool sizes from ring capacities, and what a listener whose capacity
// falls short does; each prints its reasoning.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ipcbus/bus.hpp"

namespace ipcbus::cli {

inline constexpr std::uint32_t kMinCapacity = 16;  // below this, headroom rounds away
inline constexpr double kHeadroom = 2.0;

// overlaps: some topic matches both filters (per level: '#' takes the rest,
// '+' any one level, a name only itself), so a listener holding `b` receives
// some of the events `a` matches. '#' overlaps every filter. (The MQTT rule
// that wildcards skip '$' topics is not considered.)
bool overlaps(std::string_view a, std::string_view b);

// pow2_at_least: the smallest power of two >= n, and at least kMinCapacity.
std::uint64_t pow2_at_least(double n);

// num: a number for the reasoning, 3 significant digits below 10.
std::string num(double v);

// A listener's recommended capacity and what it was computed from.
struct Advice {
  double lambda = 0;     // events offered per second
  double w_s = 0;        // seconds an event waits in the ring
  std::string w_source;  // where W came from, for the reader
  std::uint64_t capacity = kMinCapacity;
};

// advise_capacity: L = lambda * (W + burst), times kHeadroom, rounded up by
// pow2_at_least.
Advice advise_capacity(double lambda, double w_s, double burst_s, std::string w_source);

// explain prints the two lines of reasoning behind `a`.
void explain(const Advice& a, double burst_s);

// judge says whether listener `l` holds a burst of `recommended` events, and
// if not what its overflow policy then does (drop newest, drop oldest, or
// block its publishers), and whether the bus's rings are large enough.
std::string judge(const ListenerInfo& l, std::uint64_t recommended);

// class_for: the pool a payload of `size` bytes goes to (the smallest that
// holds it), or the largest when none does.
std::size_t class_for(const std::vector<PoolClass>& pools, double size);

// advise_pools prints the chunks needed in flight for listeners with ring
// `capacities` and `publishers` publishers, and compares it with the size
// class that payloads of `size` bytes use. `others` counts the bus's
// listeners left out; `peak_used` (per pool, may be null) what a sample saw.
void advise_pools(const std::vector<std::uint64_t>& capacities, std::size_t publishers,
                  std::size_t others, const Config& config, double size,
                  const std::string& size_source, const std::vector<std::uint64_t>* peak_used);

}  // namespace ipcbus::cli
