// sizing.cpp: Little's law for rings, ring entries for pools, and verdicts on
// the current settings.
#include "sizing.hpp"

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "output.hpp"

namespace ipcbus::cli {

bool overlaps(std::string_view a, std::string_view b) {
  for (;;) {
    const std::size_t a_end = std::min(a.find('/'), a.size());
    const std::size_t b_end = std::min(b.find('/'), b.size());
    const std::string_view la = a.substr(0, a_end);
    const std::string_view lb = b.substr(0, b_end);
    if (la == "#" || lb == "#") {
      return true;
    }
    if (la != "+" && lb != "+" && la != lb) {
      return false;
    }
    const bool a_done = a_end == a.size();
    const bool b_done = b_end == b.size();
    if (a_done || b_done) {
      // "x/#" also matches "x", so a filter that goes on with just "/#" fits.
      return (a_done && b_done) || (a_done && b.substr(b_end) == "/#") ||
             (b_done && a.substr(a_end) == "/#");
    }
    a.remove_prefix(a_end + 1);
    b.remove_prefix(b_end + 1);
  }
}

std::uint64_t pow2_at_least(double n) {
  std::uint64_t p = kMinCapacity;
  while (static_cast<double>(p) < n && p < (1ULL << 40)) {
    p <<= 1;
  }
  return p;
}

std::string num(double v) {
  char text[32];
  std::snprintf(text, sizeof text, v < 10 ? "%.3g" : "%.0f", v);
  return text;
}

Advice advise_capacity(double lambda, double w_s, double burst_s, std::string w_source) {
  Advice a{lambda, w_s, std::move(w_source), 0};
  a.capacity = pow2_at_least(kHeadroom * lambda * (w_s + burst_s));
  return a;
}

void explain(const Advice& a, double burst_s) {
  const double l = a.lambda * (a.w_s + burst_s);
  std::cout << "  lambda = " << num(a.lambda) << " events/s, W = " << duration_ns(a.w_s * 1e9)
            << " (" << a.w_source << ")";
  if (burst_s > 0) {
    std::cout << ", burst = " << num(burst_s) << " s";
  }
  std::cout << "\n  L = lambda * (W + burst) = " << num(l) << " events; x" << kHeadroom
            << " headroom = " << num(kHeadroom * l) << "; next power of two (at least "
            << kMinCapacity << ") -> ring capacity " << a.capacity << "\n";
}

// judge says what a listener does when a burst needs `recommended` entries.
std::string judge(const ListenerInfo& l, std::uint64_t recommended) {
  std::string verdict;
  if (l.fill.capacity >= recommended) {
    verdict = "ok (capacity " + std::to_string(l.fill.capacity) + ")";
  } else {
    verdict = "capacity " + std::to_string(l.fill.capacity) + " < " + std::to_string(recommended) +
              ": a burst fills it, and then ";
    switch (l.overflow) {
      case Overflow::kBlock:
        verdict += "it BLOCKS its publishers (up to their block timeout, then it loses events)";
        break;
      case Overflow::kDropNewest:
        verdict += "it DROPS the newest events";
        break;
      case Overflow::kDropOldest:
        verdict += "it DROPS the oldest events";
        break;
    }
    if (l.adaptive && l.fill.allocated >= recommended) {
      verdict += " (adaptive: it may grow to " + std::to_string(l.fill.allocated) + ")";
    }
  }
  if (l.fill.allocated < recommended) {
    verdict += "; the bus allocates only " + std::to_string(l.fill.allocated) +
               " entries per ring: recreate it with 'ipcbus create --ring-capacity " +
               std::to_string(recommended) + "'";
  }
  return verdict;
}

std::size_t class_for(const std::vector<PoolClass>& pools, double size) {
  for (std::size_t k = 0; k < pools.size(); ++k) {
    if (static_cast<double>(pools[k].payload_bytes) >= size) {
      return k;
    }
  }
  return pools.empty() ? 0 : pools.size() - 1;
}

// advise_pools: chunks in flight are bounded by the ring entries that can be
// queued (each pins one chunk; an event reaching several listeners shares
// one), plus a sample held by each listener and a loan per publisher.
void advise_pools(const std::vector<std::uint64_t>& capacities, std::size_t publishers,
                  std::size_t others, const Config& config, double size,
                  const std::string& size_source, const std::vector<std::uint64_t>* peak_used) {
  std::uint64_t rings = 0;
  std::uint64_t largest = 0;
  for (std::uint64_t c : capacities) {
    rings += c;
    largest = std::max(largest, c);
  }
  const std::uint64_t held = capacities.size() + publishers;
  const std::uint64_t need = rings + held;
  const std::size_t k = class_for(config.pools, size);
  std::cout << "\npools\n"
            << "  every queued event pins one chunk, shared by all the listeners it reached.\n"
            << "  chunks in flight <= sum of the recommended ring capacities (listeners may\n"
            << "  queue different events) + 1 sample held per listener + 1 loan per publisher\n"
            << "  = " << rings << " + " << capacities.size() << " + " << publishers << " = " << need
            << " (" << largest + held << " if every listener receives the same events)\n";
  if (others != 0) {
    std::cout << "  (for the selected listeners only: the bus's " << others
              << (others == 1 ? " other listener takes" : " other listeners take")
              << " chunks from the same pools)\n";
  }
  if (config.pools.empty()) {
    return;
  }
  const PoolClass& c = config.pools[k];
  std::cout << "  payload " << num(size) << " B (" << size_source << ") -> the " << c.payload_bytes
            << " B class: " << c.count << " chunks";
  if (peak_used != nullptr && k < peak_used->size()) {
    std::cout << ", at most " << (*peak_used)[k] << " in use during the sample";
  }
  if (c.count >= need) {
    std::cout << ": ok\n";
  } else {
    std::cout << ": SHORT by " << need - c.count
              << ": when the rings fill, publishes fail with pool-exhausted; recreate the bus\n"
              << "  with 'ipcbus create --pool " << c.payload_bytes << ":" << need
              << "' and a --pool for each other class\n";
  }
}

}  // namespace ipcbus::cli
