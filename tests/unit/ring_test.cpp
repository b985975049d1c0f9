// ring_test.cpp: unit tests of the listener rings: BusCore::try_push and
// try_pop on a ring no listener owns, and the overflow policies through the
// public API.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core.hpp"
#include "layout.hpp"
#include "test_bus.hpp"

namespace ipcbus {
namespace {

using detail::kNone;
using detail::PushResult;
using test::kRingCapacity;
using test::TestBus;

// A slot that no test here claims: its ring is driven directly.
constexpr std::uint32_t kRawSlot = test::kMaxListeners - 1;

PushResult push(detail::BusCore& core, std::uint32_t value) {
  std::uint64_t position = 0;
  return core.try_push(kRawSlot, value, &position);
}

TEST(Ring, TryPopReturnsNoneWhenEmpty) {
  TestBus tb;
  auto& sut = tb.core();

  const std::uint32_t got = sut.try_pop(kRawSlot);

  EXPECT_EQ(got, kNone);
}

TEST(Ring, TryPopReturnsNoneAgainAfterDraining) {
  TestBus tb;
  auto& sut = tb.core();
  ASSERT_EQ(push(sut, 7), PushResult::kPushed);
  ASSERT_EQ(sut.try_pop(kRawSlot), 7U);

  const std::uint32_t got = sut.try_pop(kRawSlot);

  EXPECT_EQ(got, kNone);
}

TEST(Ring, TryPushReturnsFullAtCapacity) {
  TestBus tb;
  auto& sut = tb.core();
  for (std::uint32_t i = 0; i < kRingCapacity; ++i) {
    ASSERT_EQ(push(sut, i), PushResult::kPushed) << "entry " << i;
  }

  const PushResult extra = push(sut, 999);

  EXPECT_EQ(extra, PushResult::kFull);
  EXPECT_EQ(sut.ring_used(kRawSlot), kRingCapacity);
}

TEST(Ring, FullRingTakesOneMoreAfterOnePop) {
  TestBus tb;
  auto& sut = tb.core();
  for (std::uint32_t i = 0; i < kRingCapacity; ++i) {
    ASSERT_EQ(push(sut, i), PushResult::kPushed);
  }
  ASSERT_EQ(sut.try_pop(kRawSlot), 0U);

  const PushResult again = push(sut, 1000);
  const PushResult then_full = push(sut, 1001);

  EXPECT_EQ(again, PushResult::kPushed);
  EXPECT_EQ(then_full, PushResult::kFull);
}

TEST(Ring, PopsInFifoOrder) {
  TestBus tb;
  auto& sut = tb.core();
  const std::vector<std::uint32_t> in = {5, 3, 9, 0, 12, 7};
  for (std::uint32_t v : in) {
    ASSERT_EQ(push(sut, v), PushResult::kPushed);
  }

  std::vector<std::uint32_t> out;
  for (std::uint32_t v = sut.try_pop(kRawSlot); v != kNone; v = sut.try_pop(kRawSlot)) {
    out.push_back(v);
  }

  EXPECT_EQ(out, in);
}

TEST(Ring, PushReportsConsecutivePositions) {
  TestBus tb;
  auto& sut = tb.core();
  std::vector<std::uint64_t> positions;

  for (std::uint32_t i = 0; i < 5; ++i) {
    std::uint64_t p = 0;
    ASSERT_EQ(sut.try_push(kRawSlot, i, &p), PushResult::kPushed);
    positions.push_back(p);
  }

  EXPECT_EQ(positions, (std::vector<std::uint64_t>{0, 1, 2, 3, 4}));
}

TEST(Ring, WrapsAroundManyTimesKeepingOrder) {
  TestBus tb;
  auto& sut = tb.core();
  const std::uint32_t seed = std::random_device{}();
  std::cout << "seed " << seed << "\n";
  std::mt19937 rng(seed);
  const std::uint32_t total = 10 * kRingCapacity + 17;
  std::uint32_t next_in = 0;
  std::uint32_t next_out = 0;

  while (next_out < total) {
    const std::uint32_t burst = 1 + rng() % kRingCapacity;
    for (std::uint32_t i = 0; i < burst && next_in < total; ++i) {
      if (push(sut, next_in) == PushResult::kFull) {
        break;
      }
      ++next_in;
    }
    const std::uint32_t drain = 1 + rng() % kRingCapacity;
    for (std::uint32_t i = 0; i < drain; ++i) {
      const std::uint32_t v = sut.try_pop(kRawSlot);
      if (v == kNone) {
        break;
      }
      ASSERT_EQ(v, next_out) << "seed " << seed;
      ++next_out;
    }
  }

  EXPECT_EQ(next_in, total);
  EXPECT_EQ(sut.try_pop(kRawSlot), kNone);
}

TEST(Ring, FillAndDrainRepeatedlyAcrossTheWrap) {
  TestBus tb;
  auto& sut = tb.core();
  std::uint32_t value = 0;

  for (int round = 0; round < 10; ++round) {
    for (std::uint32_t i = 0; i < kRingCapacity; ++i) {
      ASSERT_EQ(push(sut, value + i), PushResult::kPushed) << "round " << round;
    }
    ASSERT_EQ(push(sut, 0), PushResult::kFull) << "round " << round;
    for (std::uint32_t i = 0; i < kRingCapacity; ++i) {
      ASSERT_EQ(sut.try_pop(kRawSlot), value + i) << "round " << round;
    }
    ASSERT_EQ(sut.try_pop(kRawSlot), kNone);
    value += kRingCapacity;
  }

  EXPECT_EQ(sut.ring_used(kRawSlot), 0U);
}

TEST(Ring, EffectiveCapacityBelowAllocatedBoundsTheFill) {
  TestBus tb;
  auto& sut = tb.core();
  // relaxed: no other thread touches this slot.
  sut.slot(kRawSlot).capacity.store(8, std::memory_order_relaxed);
  for (std::uint32_t i = 0; i < 8; ++i) {
    ASSERT_EQ(push(sut, i), PushResult::kPushed);
  }

  const PushResult ninth = push(sut, 8);

  EXPECT_EQ(ninth, PushResult::kFull);
  EXPECT_EQ(sut.ring_used(kRawSlot), 8U);
}

TEST(Ring, RingUsedFollowsPushesAndPops) {
  TestBus tb;
  auto& sut = tb.core();
  for (std::uint32_t i = 0; i < 10; ++i) {
    ASSERT_EQ(push(sut, i), PushResult::kPushed);
  }
  for (int i = 0; i < 4; ++i) {
    ASSERT_NE(sut.try_pop(kRawSlot), kNone);
  }

  const std::uint32_t used = sut.ring_used(kRawSlot);

  EXPECT_EQ(used, 6U);
}

TEST(Ring, CarriesChunkReferencesThatResolveToTheSameChunk) {
  TestBus tb;
  auto& sut = tb.core();
  detail::ChunkHeader* a = sut.take_chunk(0);
  detail::ChunkHeader* b = sut.take_chunk(1);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(push(sut, a->self_ref), PushResult::kPushed);
  ASSERT_EQ(push(sut, b->self_ref), PushResult::kPushed);

  detail::ChunkHeader* first = sut.chunk(sut.try_pop(kRawSlot));
  detail::ChunkHeader* second = sut.chunk(sut.try_pop(kRawSlot));

  EXPECT_EQ(first, a);
  EXPECT_EQ(second, b);
  sut.release_own(a);
  sut.release_own(b);
}

// TODO: enable once the ring can step past an entry whose producer claimed its
// position and then stalled or died before filling it; today the consumer
// reports the ring empty while the entries behind that one wait, and a
// drop-oldest publisher cannot evict (it drops the newest instead).
TEST(Ring, DISABLED_EntriesQueuedBehindAStalledProducerAreStillReceived) {
  TestBus tb;
  auto& sut = tb.core();
  std::uint64_t claimed = 0;
  // relaxed: single thread; this only claims position 0, as a producer would.
  ASSERT_TRUE(
      sut.slot(kRawSlot).tail.compare_exchange_strong(claimed, 1, std::memory_order_relaxed));
  ASSERT_EQ(push(sut, 11), PushResult::kPushed);
  ASSERT_EQ(push(sut, 12), PushResult::kPushed);

  const std::uint32_t got = sut.try_pop(kRawSlot);

  EXPECT_NE(got, kNone);
}

TEST(RingConcurrency, ProducersDeliverEveryValueOnceInProducerOrder) {
  TestBus tb;
  auto& sut = tb.core();
  constexpr std::uint32_t kProducers = 4;
  constexpr std::uint32_t kPerProducer = 100000;
  std::vector<std::thread> producers;

  for (std::uint32_t p = 0; p < kProducers; ++p) {
    producers.emplace_back([&sut, p] {
      for (std::uint32_t i = 0; i < kPerProducer; ++i) {
        while (push(sut, (p << 20) | i) == PushResult::kFull) {
          std::this_thread::yield();
        }
      }
    });
  }
  std::vector<std::uint32_t> next(kProducers, 0);
  std::uint32_t received = 0;
  std::uint32_t out_of_order = 0;
  std::uint32_t unknown = 0;
  while (received < kProducers * kPerProducer) {
    const std::uint32_t v = sut.try_pop(kRawSlot);
    if (v == kNone) {
      std::this_thread::yield();
      continue;
    }
    ++received;
    const std::uint32_t p = v >> 20;
    const std::uint32_t seq = v & 0xFFFFFU;
    if (p >= kProducers) {
      ++unknown;  // no ASSERT while the producers run: they must be joined first
      continue;
    }
    if (seq != next[p]) {
      ++out_of_order;
    }
    next[p] = seq + 1;
  }
  for (auto& t : producers) {
    t.join();
  }

  EXPECT_EQ(unknown, 0U);
  EXPECT_EQ(out_of_order, 0U);
  for (std::uint32_t p = 0; p < kProducers; ++p) {
    EXPECT_EQ(next[p], kPerProducer) << "producer " << p;
  }
  EXPECT_EQ(sut.try_pop(kRawSlot), kNone);
}

TEST(RingConcurrency, ProducersAndConsumersLoseAndDuplicateNothing) {
  TestBus tb;
  auto& sut = tb.core();
  constexpr std::uint32_t kProducers = 2;
  constexpr std::uint32_t kPerProducer = 100000;
  constexpr std::uint32_t kTotal = kProducers * kPerProducer;
  std::vector<std::atomic<std::uint32_t>> seen(kTotal);
  std::atomic<std::uint32_t> popped{0};
  std::vector<std::thread> threads;

  for (std::uint32_t p = 0; p < kProducers; ++p) {
    threads.emplace_back([&sut, p] {
      for (std::uint32_t i = 0; i < kPerProducer; ++i) {
        while (push(sut, p * kPerProducer + i) == PushResult::kFull) {
          std::this_thread::yield();
        }
      }
    });
  }
  for (int c = 0; c < 2; ++c) {
    threads.emplace_back([&] {
      // relaxed: the counter only ends the loop; join() orders the results.
      while (popped.load(std::memory_order_relaxed) < kTotal) {
        const std::uint32_t v = sut.try_pop(kRawSlot);
        if (v == kNone) {
          std::this_thread::yield();
          continue;
        }
        if (v < kTotal) {
          // relaxed: read after join().
          seen[v].fetch_add(1, std::memory_order_relaxed);
        }
        popped.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }

  std::uint32_t wrong = 0;
  for (std::uint32_t v = 0; v < kTotal; ++v) {
    wrong += seen[v].load(std::memory_order_relaxed) == 1 ? 0 : 1;
  }
  EXPECT_EQ(wrong, 0U);
  EXPECT_EQ(popped.load(), kTotal);
}

// --- overflow policies, through the public API --------------------------------

constexpr std::uint32_t kSmallRing = 8;
constexpr std::uint32_t kExcess = 5;

ListenerOptions policy(Overflow overflow) {
  ListenerOptions o;
  o.overflow = overflow;
  o.capacity = kSmallRing;
  return o;
}

// Publishes kSmallRing + kExcess events "e1", "e2", ... on "ov/t".
std::vector<PublishResult> overfill(Publisher& pub) {
  std::vector<PublishResult> results;
  for (std::uint32_t i = 1; i <= kSmallRing + kExcess; ++i) {
    results.push_back(pub.publish("ov/t", "e" + std::to_string(i)));
  }
  return results;
}

std::vector<std::string> drain(Listener& l) {
  std::vector<std::string> out;
  while (auto s = l.try_receive()) {
    out.push_back(test::text_of(*s));
  }
  return out;
}

std::vector<std::string> events(std::uint32_t first, std::uint32_t last) {
  std::vector<std::string> out;
  for (std::uint32_t i = first; i <= last; ++i) {
    out.push_back("e" + std::to_string(i));
  }
  return out;
}

TEST(Overflow, DefaultPolicyIsDropOldest) {
  const ListenerOptions sut;

  EXPECT_EQ(sut.overflow, Overflow::kDropOldest);
}

TEST(Overflow, DropOldestCountsTheExcess) {
  TestBus tb;
  Listener sut = tb.listen("ov/t", policy(Overflow::kDropOldest));
  Publisher pub = tb.bus().publisher();

  overfill(pub);

  EXPECT_EQ(sut.counters().dropped_oldest, kExcess);
  EXPECT_EQ(sut.counters().dropped_newest, 0U);
  EXPECT_EQ(sut.counters().delivered, kSmallRing + kExcess);
}

TEST(Overflow, DropOldestKeepsTheNewestEvents) {
  TestBus tb;
  Listener sut = tb.listen("ov/t", policy(Overflow::kDropOldest));
  Publisher pub = tb.bus().publisher();
  overfill(pub);

  const std::vector<std::string> got = drain(sut);

  EXPECT_EQ(got, events(kExcess + 1, kSmallRing + kExcess));
}

TEST(Overflow, DropOldestReachesTheListenerOnEveryPublish) {
  TestBus tb;
  Listener sut = tb.listen("ov/t", policy(Overflow::kDropOldest));
  Publisher pub = tb.bus().publisher();

  const std::vector<PublishResult> results = overfill(pub);

  for (const PublishResult& r : results) {
    EXPECT_EQ(r.status, PublishStatus::kOk);
    EXPECT_EQ(r.delivered, 1U);
    EXPECT_EQ(r.skipped, 0U);
  }
}

TEST(Overflow, DropOldestReturnsEvictedChunksToThePool) {
  TestBus tb;
  Listener sut = tb.listen("ov/t", policy(Overflow::kDropOldest));
  Publisher pub = tb.bus().publisher();

  overfill(pub);

  EXPECT_EQ(tb.free_chunks(0), test::kSmallCount - kSmallRing);
}

TEST(Overflow, DropNewestCountsTheExcess) {
  TestBus tb;
  Listener sut = tb.listen("ov/t", policy(Overflow::kDropNewest));
  Publisher pub = tb.bus().publisher();

  overfill(pub);

  EXPECT_EQ(sut.counters().dropped_newest, kExcess);
  EXPECT_EQ(sut.counters().dropped_oldest, 0U);
  EXPECT_EQ(sut.counters().delivered, kSmallRing);
}

TEST(Overflow, DropNewestKeepsTheOldestEvents) {
  TestBus tb;
  Listener sut = tb.listen("ov/t", policy(Overflow::kDropNewest));
  Publisher pub = tb.bus().publisher();
  overfill(pub);

  const std::vector<std::string> got = drain(sut);

  EXPECT_EQ(got, events(1, kSmallRing));
}

TEST(Overflow, DropNewestPublishReportsTheListenerSkipped) {
  TestBus tb;
  Listener sut = tb.listen("ov/t", policy(Overflow::kDropNewest));
  Publisher pub = tb.bus().publisher();

  const std::vector<PublishResult> results = overfill(pub);

  for (std::uint32_t i = 0; i < results.size(); ++i) {
    const bool fits = i < kSmallRing;
    EXPECT_EQ(results[i].status, PublishStatus::kOk) << "publish " << i;
    EXPECT_EQ(results[i].delivered, fits ? 1U : 0U) << "publish " << i;
    EXPECT_EQ(results[i].skipped, fits ? 0U : 1U) << "publish " << i;
  }
  EXPECT_EQ(tb.free_chunks(0), test::kSmallCount - kSmallRing);
}

TEST(Overflow, OneFullListenerDoesNotStopAnotherFromReceiving) {
  TestBus tb;
  Listener full = tb.listen("ov/t", policy(Overflow::kDropNewest));
  Listener reader = tb.listen("ov/t");
  Publisher pub = tb.bus().publisher();
  std::vector<std::string> got;

  for (std::uint32_t i = 1; i <= kSmallRing + kExcess; ++i) {
    ASSERT_EQ(pub.publish("ov/t", "e" + std::to_string(i)).status, PublishStatus::kOk);
    auto s = reader.try_receive();
    ASSERT_TRUE(s.has_value());
    got.push_back(test::text_of(*s));
  }

  EXPECT_EQ(got, events(1, kSmallRing + kExcess));
  EXPECT_EQ(full.counters().dropped_newest, kExcess);
}

TEST(Overflow, ListenerReceivesInOrderAcrossManyWraps) {
  TestBus tb;
  Listener sut = tb.listen("wrap/t");
  Publisher pub = tb.bus().publisher();
  std::uint32_t bad = 0;

  for (std::uint32_t i = 0; i < 10 * kRingCapacity; ++i) {
    ASSERT_EQ(pub.publish("wrap/t", std::to_string(i)).status, PublishStatus::kOk);
    if (i % 3 == 2) {
      for (std::uint32_t j = i - 2; j <= i; ++j) {
        auto s = sut.try_receive();
        ASSERT_TRUE(s.has_value());
        bad += test::text_of(*s) == std::to_string(j) ? 0 : 1;
      }
    }
  }

  EXPECT_EQ(bad, 0U);
  EXPECT_EQ(sut.counters().dropped_oldest, 0U);
}

}  // namespace
}  // namespace ipcbus
