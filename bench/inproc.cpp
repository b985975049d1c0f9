// inproc.cpp: in-process measurements. Each timing is the median of five
// repetitions of a loop, in nanoseconds of this thread's CPU time per
// operation: on a shared machine the wall clock would also count the time
// other processes held the CPU.
#include "inproc.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <vector>

#include "alloc_count.hpp"
#include "fixtures.hpp"
#include "harness.hpp"
#include "segment.hpp"

namespace ipcbus::bench {

namespace {

using nlohmann::json;

// The median over five runs of `body(iterations)`, in ns per iteration.
double median_ns(std::uint64_t iterations, const std::function<void(std::uint64_t)>& body) {
  std::vector<double> runs;
  for (int r = 0; r < 5; ++r) {
    const std::uint64_t t0 = thread_cpu_ns();
    body(iterations);
    runs.push_back(static_cast<double>(thread_cpu_ns() - t0) / static_cast<double>(iterations));
  }
  std::sort(runs.begin(), runs.end());
  return runs[2];
}

template <class T>
void keep(const T& v) {
  asm volatile("" : : "g"(&v) : "memory");
}

}  // namespace

json measure_route_lookup(bool quick) {
  json rows = json::array();
  const std::vector<std::uint32_t> sizes = quick ? std::vector<std::uint32_t>{1000, 10000}
                                                 : std::vector<std::uint32_t>{1000, 10000, 100000};
  for (const std::uint32_t subs : sizes) {
    for (const int levels : {3, 7}) {
      for (const bool wild : {false, true}) {
        if (quick && levels == 3) {
          continue;
        }
        TrieFixture fx(subs, levels, wild);
        // Distinct topics, more than the route cache's 64 entries.
        std::vector<std::string> topics;
        for (std::uint32_t i = 0; i < 4096; ++i) {
          topics.push_back(bench_topic((i * 7919U) % subs, levels));
        }
        const std::uint64_t n = quick ? 20000 : 200000;
        std::uint32_t matched = 0;
        const double uncached = median_ns(n, [&](std::uint64_t k) {
          for (std::uint64_t i = 0; i < k; ++i) {
            matched += fx.match(topics[i & 4095]);
          }
        });
        Publisher& pub = fx.publisher();
        const std::uint64_t misses0 = pub.route_cache_misses();
        const double uncached_public = median_ns(n, [&](std::uint64_t k) {
          for (std::uint64_t i = 0; i < k; ++i) {
            keep(pub.behind(topics[i & 4095]));
          }
        });
        const double miss_rate =
            static_cast<double>(pub.route_cache_misses() - misses0) / static_cast<double>(5 * n);
        const std::string& hot = topics[1];
        (void)pub.behind(hot);
        const double cached = median_ns(n * 10, [&](std::uint64_t k) {
          for (std::uint64_t i = 0; i < k; ++i) {
            keep(pub.behind(hot));
          }
        });
        rows.push_back({{"subscriptions", subs},
                        {"levels", levels},
                        {"wildcards", wild},
                        {"uncached_match_ns", uncached},
                        {"uncached_publisher_ns", uncached_public},
                        {"uncached_publisher_miss_rate", miss_rate},
                        {"cached_ns", cached},
                        {"listeners_matched_per_lookup",
                         static_cast<double>(matched) / static_cast<double>(5 * n)}});
      }
    }
  }
  return rows;
}

json measure_state_transition(bool quick) {
  LocalBus local("state", [] {
    Config c;
    c.pools = {{64, 64}};
    return c;
  }());
  Listener l = std::move(local.bus().listen({}).value());
  const std::uint64_t n = quick ? 100000 : 2000000;
  const double pause_resume = median_ns(n, [&](std::uint64_t k) {
    for (std::uint64_t i = 0; i < k; ++i) {
      (void)l.pause();
      (void)l.resume();
    }
  });
  // The reference: one uncontended acq_rel CAS on a word of our own.
  alignas(64) std::atomic<std::uint64_t> word{0};
  const double cas = median_ns(n, [&](std::uint64_t k) {
    for (std::uint64_t i = 0; i < k; ++i) {
      std::uint64_t expected = i;
      // acq_rel: the same order as the listener's transition.
      word.compare_exchange_strong(expected, i + 1, std::memory_order_acq_rel,
                                   std::memory_order_relaxed);
    }
  });
  return {{"transition_ns", pause_resume / 2}, {"cas_ns", cas}, {"ratio", pause_resume / 2 / cas}};
}

json measure_ring_and_pool(bool quick) {
  Config c;
  c.pools = {{64, 1024}};
  c.ring_capacity = 1024;
  c.max_listeners = 4;
  LocalBus local("ring", c);
  detail::BusCore& core = local.core();
  const std::uint32_t slot = c.max_listeners - 1;  // never claimed: ours alone
  detail::ChunkHeader* ch = core.take_chunk(0);
  const std::uint32_t ref = ch->self_ref;
  const std::uint64_t n = quick ? 100000 : 2000000;
  std::uint64_t pos = 0;
  // Pushes and pops in batches of 512, timed together: ns per push + pop.
  const double push_pop = median_ns(n, [&](std::uint64_t k) {
    for (std::uint64_t i = 0; i < k; i += 512) {
      for (int j = 0; j < 512; ++j) {
        (void)core.try_push(slot, ref, &pos);
      }
      for (int j = 0; j < 512; ++j) {
        keep(core.try_pop(slot));
      }
    }
  });
  // Push alone and pop alone: 512 of each, timed apart, median of many rounds.
  std::vector<double> pushes;
  std::vector<double> pops;
  for (int round = 0; round < (quick ? 50 : 500); ++round) {
    const std::uint64_t t0 = thread_cpu_ns();
    for (int j = 0; j < 512; ++j) {
      (void)core.try_push(slot, ref, &pos);
    }
    const std::uint64_t t1 = thread_cpu_ns();
    for (int j = 0; j < 512; ++j) {
      keep(core.try_pop(slot));
    }
    const std::uint64_t t2 = thread_cpu_ns();
    pushes.push_back(static_cast<double>(t1 - t0) / 512);
    pops.push_back(static_cast<double>(t2 - t1) / 512);
  }
  std::sort(pushes.begin(), pushes.end());
  std::sort(pops.begin(), pops.end());
  core.release_own(ch);
  const double take_return = median_ns(n, [&](std::uint64_t k) {
    for (std::uint64_t i = 0; i < k; ++i) {
      detail::ChunkHeader* h = core.take_chunk(0);
      core.release_own(h);
    }
  });
  // A copy of a 16 KiB payload: what each extra listener would cost a bus
  // that copied events instead of sharing one chunk.
  std::vector<std::byte> a(16384, std::byte{1});
  std::vector<std::byte> b(16384);
  const double copy16k = median_ns(quick ? 2000 : 20000, [&](std::uint64_t k) {
    for (std::uint64_t i = 0; i < k; ++i) {
      std::memcpy(b.data(), a.data(), a.size());
      keep(b[i & 16383]);
    }
  });
  return {{"push_pop_ns", push_pop},
          {"push_ns", pushes[pushes.size() / 2]},
          {"pop_ns", pops[pops.size() / 2]},
          {"take_return_ns", take_return},
          {"memcpy_16k_ns", copy16k}};
}

json measure_allocations(bool quick) {
  Config c;
  c.pools = {{256, 256}, {4096, 64}};
  LocalBus local("alloc", c);
  ListenerOptions lo;
  lo.wait = WaitStrategy::kBusyPoll;
  Listener l = std::move(local.bus().listen(lo).value());
  (void)l.subscribe("bench/alloc/+");
  Publisher pub = local.bus().publisher();
  const char payload[64] = {};
  const std::string topic = "bench/alloc/x";
  auto one = [&] {
    (void)pub.publish(topic, std::string_view(payload, sizeof payload));
    auto s = l.try_receive();
    keep(s);
  };
  auto one_loan = [&] {
    auto loan = pub.loan(64);
    if (loan) {
      (void)pub.publish(topic, std::move(loan.value()));
    }
    auto s = l.receive_for(std::chrono::milliseconds(10));
    keep(s);
  };
  for (int i = 0; i < 1000; ++i) {  // warm: route cache filled, first-use paths taken
    one();
    one_loan();
  }
  const std::uint64_t events = quick ? 10000 : 100000;
  const std::uint64_t a0 = heap_allocations();
  for (std::uint64_t i = 0; i < events; ++i) {
    one();
  }
  const std::uint64_t a1 = heap_allocations();
  for (std::uint64_t i = 0; i < events; ++i) {
    one_loan();
  }
  const std::uint64_t a2 = heap_allocations();
  return {{"events", events},
          {"copy_publish_receive_allocations", a1 - a0},
          {"loan_publish_receive_allocations", a2 - a1},
          {"per_event", static_cast<double>(a2 - a0) / static_cast<double>(2 * events)}};
}

json measure_trie_memory(bool quick) {
  const std::uint32_t subs = quick ? 2000 : 10000;
  const int levels = 7;
  Config c;
  c.trie_nodes = subs * 8 + 4096;
  c.subscriptions = subs * 2 + 64;
  c.pools = {{64, 64}};
  c.max_listeners = 48;
  const detail::Layout layout = detail::compute_layout(c);
  const double node_bytes = layout.node_stride;
  const double edge_bytes_per_node =
      static_cast<double>(layout.edge_count) * 8.0 / static_cast<double>(c.trie_nodes);
  const double sub_bytes = sizeof(detail::SubRecord);

  LocalBus local("triemem", c);
  Bus& bus = local.bus();
  std::vector<Listener> ls;
  for (int i = 0; i < 48; ++i) {
    ls.push_back(std::move(bus.listen({}).value()));
  }
  const BusInfo empty = bus.inspect();
  std::uint64_t created = 0;  // nodes ever allocated: what would remain without pruning
  // relaxed: a gauge, read by the only writer (this thread) between changes.
  auto nodes_used = [&] {
    return local.core().header().nodes_used.load(std::memory_order_relaxed);
  };
  auto subscribe = [&](std::uint32_t i, std::uint32_t generation) {
    const std::uint32_t before = nodes_used();
    const std::string f = bench_filter(i, levels, false) + "/r" + std::to_string(generation);
    if (!ls[i % 48].subscribe(f)) {
      return false;
    }
    created += nodes_used() - before;
    return true;
  };
  bool ok = true;
  for (std::uint32_t i = 0; i < subs; ++i) {
    ok = subscribe(i, 0) && ok;
  }
  const BusInfo full = bus.inspect();
  // Churn: every live subscription replaced once by a new one.
  for (std::uint32_t i = 0; i < subs; ++i) {
    ok = ls[i % 48].unsubscribe(bench_filter(i, levels, false) + "/r0").has_value() && ok;
    ok = subscribe(i, 1) && ok;
  }
  const BusInfo churned = bus.inspect();
  for (std::uint32_t i = 0; i < subs; ++i) {
    ok = ls[i % 48].unsubscribe(bench_filter(i, levels, false) + "/r1").has_value() && ok;
  }
  const BusInfo after = bus.inspect();

  const std::uint32_t used_nodes = full.trie_nodes_used - empty.trie_nodes_used;
  const std::uint32_t used_subs = full.subscriptions_used - empty.subscriptions_used;
  const double per_sub =
      (used_nodes * (node_bytes + edge_bytes_per_node) + used_subs * sub_bytes) / subs;
  const double reserved_per_sub = (static_cast<double>(layout.sub_off - layout.node_off) +
                                   static_cast<double>(c.subscriptions) * sub_bytes) /
                                  static_cast<double>(c.subscriptions);
  const double node_cost = node_bytes + edge_bytes_per_node;
  return {
      {"subscriptions", subs},
      {"levels", levels + 1},
      {"all_calls_ok", ok},
      {"node_stride_bytes", layout.node_stride},
      {"edge_bytes_per_node", edge_bytes_per_node},
      {"sub_record_bytes", sub_bytes},
      {"nodes_used_empty", empty.trie_nodes_used},
      {"subs_used_empty", empty.subscriptions_used},
      {"nodes_used_full", full.trie_nodes_used},
      {"nodes_per_subscription", static_cast<double>(used_nodes) / subs},
      {"bytes_per_subscription", per_sub},
      {"reserved_bytes_per_configured_subscription", reserved_per_sub},
      {"nodes_used_after_removing_all", after.trie_nodes_used},
      {"subs_used_after_removing_all", after.subscriptions_used},
      {"back_to_empty", after.trie_nodes_used == empty.trie_nodes_used &&
                            after.subscriptions_used == empty.subscriptions_used},
      {"churn_nodes_in_use", churned.trie_nodes_used},
      {"churn_nodes_ever_created", created + empty.trie_nodes_used},
      {"churn_nodes_saved", created + empty.trie_nodes_used - churned.trie_nodes_used},
      {"churn_bytes_saved",
       static_cast<double>(created + empty.trie_nodes_used - churned.trie_nodes_used) * node_cost}};
}

}  // namespace ipcbus::bench
