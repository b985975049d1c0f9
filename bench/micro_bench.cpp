// micro_bench.cpp: Google Benchmark micro benchmarks of the hot pieces, in
// one process: pool take/return, ring push/pop, listener state transitions,
// route lookup (cached and uncached) and publish + receive with 1, 4 and 16
// listeners. Cross-process latency and throughput are the job of the
// multi-process benchmark (performance issue).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <random>
#include <string>
#include <vector>

#include "core.hpp"
#include "ipcbus/bus.hpp"
#include "trie.hpp"

namespace {

ipcbus::Bus make_bus(const char* tag, ipcbus::Config config = {}) {
  const std::string name = std::string("bench-") + tag + "-" + std::to_string(getpid());
  (void)ipcbus::Bus::destroy(name);
  ipcbus::OpenOptions o;
  o.name = name;
  o.config = std::move(config);
  auto bus = ipcbus::Bus::open(o);
  if (!bus) {
    std::fprintf(stderr, "open: %s\n", bus.error().message.c_str());
    std::abort();
  }
  (void)ipcbus::Bus::destroy(name);  // the name goes, the mapping stays
  return std::move(bus.value());
}

void BM_Publish_Receive(benchmark::State& state) {
  const auto listeners = static_cast<int>(state.range(0));
  ipcbus::Bus bus = make_bus("pubrecv");
  std::vector<ipcbus::Listener> ls;
  for (int i = 0; i < listeners; ++i) {
    ipcbus::ListenerOptions o;
    o.wait = ipcbus::WaitStrategy::kBusyPoll;
    ls.push_back(std::move(bus.listen(o).value()));
    (void)ls.back().subscribe("bench/+/value");
  }
  auto pub = bus.publisher();
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
BENCHMARK(BM_Publish_Receive)->Arg(1)->Arg(4)->Arg(16);

void BM_Pool_TakeReturn(benchmark::State& state) {
  ipcbus::Bus bus = make_bus("pool");
  auto pub = bus.publisher();
  for (auto _ : state) {
    auto loan = pub.loan(64);
    benchmark::DoNotOptimize(loan);
  }
}
BENCHMARK(BM_Pool_TakeReturn);

void BM_State_PauseResume(benchmark::State& state) {
  ipcbus::Bus bus = make_bus("state");
  auto l = std::move(bus.listen({}).value());
  for (auto _ : state) {
    (void)l.pause();
    (void)l.resume();
  }
  state.SetItemsProcessed(state.iterations() * 2);
}
BENCHMARK(BM_State_PauseResume);

// Route lookup among `range(0)` subscriptions, for 7-level topics.
void BM_Route_Uncached(benchmark::State& state) {
  const auto subs = static_cast<std::uint32_t>(state.range(0));
  ipcbus::Config c;
  c.trie_nodes = subs * 4 + 64;
  c.subscriptions = subs + 16;
  c.pools = {{64, 64}};
  c.max_listeners = 64;
  ipcbus::Bus bus = make_bus("route", c);
  std::vector<ipcbus::Listener> ls;
  for (int i = 0; i < 64; ++i) {
    ls.push_back(std::move(bus.listen({}).value()));
  }
  std::mt19937 rng(42);
  for (std::uint32_t i = 0; i < subs; ++i) {
    const std::string f = "site" + std::to_string(i % 16) + "/b" + std::to_string(i % 97) +
                          "/c" + std::to_string(i) + "/d/e/f/g";
    (void)ls[i % 64].subscribe(f);
  }
  (void)ls[0].subscribe("site3/+/c7/#");
  ipcbus::Publisher pub = bus.publisher();
  auto bus_core_probe = pub.behind("site3/b7/c7/d/e/f/g");  // fills the cache
  benchmark::DoNotOptimize(bus_core_probe);
  std::uint32_t i = 0;
  for (auto _ : state) {
    // A different topic every time; 64 cache entries cannot hold them.
    const std::string t = "site" + std::to_string(i % 16) + "/b" + std::to_string(i % 97) +
                          "/c" + std::to_string(i % subs) + "/d/e/f/g";
    ++i;
    benchmark::DoNotOptimize(pub.behind(t));
  }
}
BENCHMARK(BM_Route_Uncached)->Arg(1000)->Arg(10000)->Arg(100000);

}  // namespace

BENCHMARK_MAIN();
