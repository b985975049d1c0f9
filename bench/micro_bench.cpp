// micro_bench.cpp: Google Benchmark micro benchmarks of the hot pieces, in
// one process: pool take/return, ring push/pop (uncontended and with a
// producer and a consumer thread), listener state transitions, route lookup
// (cached and uncached, 1k/10k/100k subscriptions, 3 and 7 levels, with and
// without wildcards) and publish + receive with 1, 4 and 16 listeners.
// Cross-process latency and throughput are the job of ipcbus-bench.
//
// Internals are reached through fixtures.hpp: the bus is opened through the
// public API and its segment mapped again as a BusCore.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "fixtures.hpp"

namespace {

using ipcbus::bench::LocalBus;
using ipcbus::bench::TrieFixture;

ipcbus::Config small_config(std::uint32_t listeners = 48) {
  ipcbus::Config c;
  c.pools = {{256, 4096}};
  c.ring_capacity = 1024;
  c.max_listeners = listeners;
  return c;
}

// --- pool -----------------------------------------------------------------------

void BM_Pool_TakeReturn(benchmark::State& state) {
  LocalBus local("pool", small_config());
  ipcbus::detail::BusCore& core = local.core();
  for (auto _ : state) {
    ipcbus::detail::ChunkHeader* c = core.take_chunk(0);
    benchmark::DoNotOptimize(c);
    core.release_own(c);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Pool_TakeReturn);

// The same through the public API: Publisher::loan and the Loan's destructor.
void BM_Pool_LoanRelease(benchmark::State& state) {
  LocalBus local("loan", small_config());
  ipcbus::Publisher pub = local.bus().publisher();
  for (auto _ : state) {
    auto loan = pub.loan(64);
    benchmark::DoNotOptimize(loan);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Pool_LoanRelease);

// --- ring -----------------------------------------------------------------------

// One push and one pop per iteration, one thread: the uncontended cost.
void BM_Ring_PushPop_Uncontended(benchmark::State& state) {
  LocalBus local("ring", small_config(4));
  ipcbus::detail::BusCore& core = local.core();
  const std::uint32_t slot = 3;  // never claimed by a listener
  const std::uint32_t ref = core.take_chunk(0)->self_ref;
  std::uint64_t pos = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(core.try_push(slot, ref, &pos));
    benchmark::DoNotOptimize(core.try_pop(slot));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Ring_PushPop_Uncontended);

// Thread 0 pushes, thread 1 pops, the same count each: every entry crosses
// cores. Time per iteration is per event handed over.
void BM_Ring_Contended(benchmark::State& state) {
  static std::unique_ptr<LocalBus> local;
  static std::uint32_t ref = 0;
  if (state.thread_index() == 0) {
    // A fresh, empty ring for every run; the threads of the previous run
    // have been joined by the framework.
    local = std::make_unique<LocalBus>("ringmt", small_config(4));
    ref = local->core().take_chunk(0)->self_ref;
  }
  // The framework starts the timed loops of both threads together, after
  // both have run the code above, so the fixture is ready inside the loop.
  ipcbus::detail::BusCore* core = nullptr;
  const std::uint32_t slot = 3;  // never claimed by a listener
  std::uint64_t pos = 0;
  for (auto _ : state) {
    if (core == nullptr) {
      core = &local->core();
    }
    if (state.thread_index() == 0) {
      while (core->try_push(slot, ref, &pos) != ipcbus::detail::PushResult::kPushed) {
        ipcbus::detail::cpu_relax();
      }
    } else {
      while (core->try_pop(slot) == ipcbus::detail::kNone) {
        ipcbus::detail::cpu_relax();
      }
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Ring_Contended)->Threads(2)->UseRealTime();

// The same hand-over, with a pooled chunk taken by the producer and given
// back by the consumer: the ring plus the pool's free-list head, which the
// two sides then bounce between their cores on every event.
void BM_Handoff_RingPool(benchmark::State& state) {
  static std::unique_ptr<LocalBus> local;
  if (state.thread_index() == 0) {
    local = std::make_unique<LocalBus>("ringpool", small_config(4));
  }
  ipcbus::detail::BusCore* core = nullptr;
  const std::uint32_t slot = 3;
  std::uint64_t pos = 0;
  for (auto _ : state) {
    if (core == nullptr) {
      core = &local->core();
    }
    if (state.thread_index() == 0) {
      ipcbus::detail::ChunkHeader* c;
      while ((c = core->take_chunk(0)) == nullptr) {
        ipcbus::detail::cpu_relax();
      }
      while (core->try_push(slot, c->self_ref, &pos) != ipcbus::detail::PushResult::kPushed) {
        ipcbus::detail::cpu_relax();
      }
    } else {
      std::uint32_t ref;
      while ((ref = core->try_pop(slot)) == ipcbus::detail::kNone) {
        ipcbus::detail::cpu_relax();
      }
      core->release_own(core->chunk(ref));
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Handoff_RingPool)->Threads(2)->UseRealTime();

// The whole event between two threads through the public API: loan, write
// 64 B, publish; try_receive, read, release. Compare with the two above: the
// rest is the chunk header's line and the bookkeeping of publish and receive.
void BM_Handoff_Bus(benchmark::State& state) {
  static std::unique_ptr<LocalBus> local;
  static std::unique_ptr<ipcbus::Listener> listener;
  if (state.thread_index() == 0) {
    listener.reset();
    local = std::make_unique<LocalBus>("handoff", small_config(4));
    ipcbus::ListenerOptions o;
    o.wait = ipcbus::WaitStrategy::kBusyPoll;
    o.overflow = ipcbus::Overflow::kBlock;
    listener = std::make_unique<ipcbus::Listener>(std::move(local->bus().listen(o).value()));
    (void)listener->subscribe("bench/handoff");
  }
  std::unique_ptr<ipcbus::Publisher> pub;
  std::uint64_t sum = 0;
  for (auto _ : state) {
    if (state.thread_index() == 0) {
      if (!pub) {
        pub = std::make_unique<ipcbus::Publisher>(local->bus().publisher());
      }
      auto loan = pub->loan(64);
      while (!loan) {
        ipcbus::detail::cpu_relax();
        loan = pub->loan(64);
      }
      std::memset(loan.value().data().data(), 1, 64);
      benchmark::DoNotOptimize(pub->publish("bench/handoff", std::move(loan.value())));
    } else {
      std::optional<ipcbus::Sample> s;
      while (!(s = listener->try_receive())) {
        ipcbus::detail::cpu_relax();
      }
      sum += static_cast<std::uint64_t>(s->payload()[0]);
    }
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Handoff_Bus)->Threads(2)->UseRealTime();

// --- listener state -------------------------------------------------------------------

void BM_State_PauseResume(benchmark::State& state) {
  LocalBus local("state", small_config());
  ipcbus::Listener l = std::move(local.bus().listen({}).value());
  for (auto _ : state) {
    (void)l.pause();
    (void)l.resume();
  }
  state.SetItemsProcessed(state.iterations() * 2);  // items = transitions
}
BENCHMARK(BM_State_PauseResume);

// The reference: one uncontended acq_rel CAS on a word of our own.
void BM_State_RawCas(benchmark::State& state) {
  alignas(64) std::atomic<std::uint64_t> word{0};
  std::uint64_t i = 0;
  for (auto _ : state) {
    std::uint64_t expected = i;
    // acq_rel: the order the listener's transition uses.
    benchmark::DoNotOptimize(word.compare_exchange_strong(
        expected, i + 1, std::memory_order_acq_rel, std::memory_order_relaxed));
    ++i;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_State_RawCas);

// --- route lookup ----------------------------------------------------------------------

// One fixture at a time, kept while consecutive benchmarks share it.
TrieFixture& trie_fixture(std::uint32_t subs, int levels, bool wild) {
  static std::unique_ptr<TrieFixture> fx;
  static std::tuple<std::uint32_t, int, bool> key{0, 0, false};
  const auto want = std::make_tuple(subs, levels, wild);
  if (!fx || key != want) {
    fx.reset();
    fx = std::make_unique<TrieFixture>(subs, levels, wild);
    key = want;
  }
  return *fx;
}

enum RouteMode { kMatcher = 0, kPublisherUncached = 1, kPublisherCached = 2 };

// Args: subscriptions, levels, wildcards (0/1), mode. kMatcher walks the
// trie every time (no cache); kPublisherUncached goes through the route
// cache with 4096 distinct topics cycling through its 64 entries, so every
// lookup misses; kPublisherCached asks for one topic again and again.
void BM_Route(benchmark::State& state) {
  const auto subs = static_cast<std::uint32_t>(state.range(0));
  const auto levels = static_cast<int>(state.range(1));
  const bool wild = state.range(2) != 0;
  const auto mode = static_cast<RouteMode>(state.range(3));
  TrieFixture& fx = trie_fixture(subs, levels, wild);
  std::vector<std::string> topics;
  for (std::uint32_t i = 0; i < 4096; ++i) {
    topics.push_back(ipcbus::bench::bench_topic((i * 7919U) % subs, levels));
  }
  ipcbus::Publisher& pub = fx.publisher();
  const std::uint64_t misses0 = pub.route_cache_misses();
  std::uint64_t i = 0;
  for (auto _ : state) {
    switch (mode) {
      case kMatcher:
        benchmark::DoNotOptimize(fx.match(topics[i & 4095]));
        break;
      case kPublisherUncached:
        benchmark::DoNotOptimize(pub.behind(topics[i & 4095]));
        break;
      case kPublisherCached:
        benchmark::DoNotOptimize(pub.behind(topics[0]));
        break;
    }
    ++i;
  }
  state.counters["miss_rate"] = static_cast<double>(pub.route_cache_misses() - misses0) /
                                static_cast<double>(std::max<std::uint64_t>(1, i));
  state.SetItemsProcessed(state.iterations());
}
// Registered with the mode varying fastest, so that the three modes of one
// trie run one after the other on one fixture.
void route_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"subs", "levels", "wild", "mode"});
  for (const int subs : {1000, 10000, 100000}) {
    for (const int levels : {3, 7}) {
      for (const int wild : {0, 1}) {
        for (const int mode : {kMatcher, kPublisherUncached, kPublisherCached}) {
          b->Args({subs, levels, wild, mode});
        }
      }
    }
  }
}
BENCHMARK(BM_Route)->Apply(route_args);

// --- publish ----------------------------------------------------------------------------

// One publish (a 64 B copy into a chunk) and one receive per listener.
void BM_Publish_Receive(benchmark::State& state) {
  const auto listeners = static_cast<int>(state.range(0));
  LocalBus local("pubrecv", small_config());
  std::vector<ipcbus::Listener> ls;
  for (int i = 0; i < listeners; ++i) {
    ipcbus::ListenerOptions o;
    o.wait = ipcbus::WaitStrategy::kBusyPoll;
    ls.push_back(std::move(local.bus().listen(o).value()));
    (void)ls.back().subscribe("bench/+/value");
  }
  ipcbus::Publisher pub = local.bus().publisher();
  const char payload[64] = {};
  for (auto _ : state) {
    auto r = pub.publish("bench/x/value", std::string_view(payload, sizeof payload));
    benchmark::DoNotOptimize(r);
    for (auto& l : ls) {
      auto s = l.try_receive();
      benchmark::DoNotOptimize(s);
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Publish_Receive)->ArgName("listeners")->Arg(1)->Arg(4)->Arg(16);

// One 64 B publish and one receive per iteration.
void publish_receive_loop(benchmark::State& state, ipcbus::Publisher& pub, ipcbus::Listener& l) {
  const char payload[64] = {};
  for (auto _ : state) {
    auto r = pub.publish("bench/x/value", std::string_view(payload, sizeof payload));
    benchmark::DoNotOptimize(r);
    auto s = l.try_receive();
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations());
}

// The cost of the observability counters on the data path: one publish and
// one receive of 64 B with the listener's receive-latency histogram off (0)
// and on (1). Publisher and listener counters are always on in both.
void BM_Publish_Receive_Histogram(benchmark::State& state) {
  LocalBus local("pubrecv-hist", small_config());
  ipcbus::ListenerOptions o;
  o.wait = ipcbus::WaitStrategy::kBusyPoll;
  o.latency_histogram = state.range(0) != 0;
  ipcbus::Listener l = std::move(local.bus().listen(o).value());
  (void)l.subscribe("bench/+/value");
  ipcbus::Publisher pub = local.bus().publisher();
  publish_receive_loop(state, pub, l);
}
BENCHMARK(BM_Publish_Receive_Histogram)->ArgName("histogram")->Arg(0)->Arg(1);

// The always-on counters: a publisher with its counter slot (1) against one
// without (0: the bus's only publisher slot is taken by another publisher).
void BM_Publish_Receive_PublisherCounters(benchmark::State& state) {
  ipcbus::Config c = small_config();
  c.max_publishers = 1;
  LocalBus local("pubrecv-count", c);
  ipcbus::ListenerOptions o;
  o.wait = ipcbus::WaitStrategy::kBusyPoll;
  ipcbus::Listener l = std::move(local.bus().listen(o).value());
  (void)l.subscribe("bench/+/value");
  std::optional<ipcbus::Publisher> holder;
  if (state.range(0) == 0) {
    holder.emplace(local.bus().publisher());  // takes the only slot
  }
  ipcbus::Publisher pub = local.bus().publisher();
  publish_receive_loop(state, pub, l);
}
BENCHMARK(BM_Publish_Receive_PublisherCounters)->ArgName("counters")->Arg(0)->Arg(1);

// The zero-copy path: loan, write 64 B in place, publish; then receive.
void BM_Publish_Loan_Receive(benchmark::State& state) {
  const auto listeners = static_cast<int>(state.range(0));
  LocalBus local("publoan", small_config());
  std::vector<ipcbus::Listener> ls;
  for (int i = 0; i < listeners; ++i) {
    ipcbus::ListenerOptions o;
    o.wait = ipcbus::WaitStrategy::kBusyPoll;
    ls.push_back(std::move(local.bus().listen(o).value()));
    (void)ls.back().subscribe("bench/+/value");
  }
  ipcbus::Publisher pub = local.bus().publisher();
  for (auto _ : state) {
    auto loan = pub.loan(64);
    std::memset(loan.value().data().data(), 1, 64);
    auto r = pub.publish("bench/x/value", std::move(loan.value()));
    benchmark::DoNotOptimize(r);
    for (auto& l : ls) {
      auto s = l.try_receive();
      benchmark::DoNotOptimize(s);
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Publish_Loan_Receive)->ArgName("listeners")->Arg(1)->Arg(4)->Arg(16);

}  // namespace

BENCHMARK_MAIN();
