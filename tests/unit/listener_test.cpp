// listener_test.cpp: unit tests of the receive side: try_receive and
// receive_for, the three wait strategies, adaptive capacity, the fill level
// and "behind", and the block overflow policy with a publisher timeout.
//
// No test asserts on elapsed time. Where a test must wait for the other side
// (a listener asleep, a publisher blocked), it watches the state word that
// says so in the segment, with a generous guard against hanging.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "layout.hpp"
#include "test_bus.hpp"

namespace ipcbus {
namespace {

using namespace std::chrono_literals;
using test::TestBus;

// Waits until `word` is not zero, or a guard of seconds runs out (the test's
// assertions then fail instead of the test hanging).
bool wait_nonzero(const std::atomic<std::uint32_t>& word) {
  const auto guard = std::chrono::steady_clock::now() + 10s;
  // acquire: the other thread's state change is what we wait for.
  while (word.load(std::memory_order_acquire) == 0) {
    if (std::chrono::steady_clock::now() > guard) {
      return false;
    }
    std::this_thread::yield();
  }
  return true;
}

TEST(Listener, TryReceiveOnAnEmptyRingReturnsNothing) {
  TestBus tb;
  Listener sut = tb.listen("l/t");

  const auto got = sut.try_receive();

  EXPECT_FALSE(got.has_value());
}

TEST(Listener, ReceiveForWithZeroTimeoutReturnsNothingWhenEmpty) {
  TestBus tb;
  Listener sut = tb.listen("l/t");

  const auto got = sut.receive_for(0ns);

  EXPECT_FALSE(got.has_value());
}

TEST(Listener, ReceiveForReturnsAQueuedEvent) {
  TestBus tb;
  Listener sut = tb.listen("l/t");
  Publisher pub = tb.bus().publisher();
  ASSERT_EQ(pub.publish("l/t", "ready").delivered, 1U);

  const auto got = sut.receive_for(10s);

  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->payload_text(), "ready");
}

TEST(Listener, ReceiveForOnAPausedListenerReturnsNothing) {
  TestBus tb;
  Listener sut = tb.listen("l/t");
  ASSERT_TRUE(sut.pause());

  const auto got = sut.receive_for(10s);  // returns at once: a paused listener waits for nothing

  EXPECT_FALSE(got.has_value());
}

TEST(Listener, ReceiveOnAClosedListenerReturnsNothing) {
  TestBus tb;
  Listener sut = tb.listen("l/t");
  sut.close();

  const auto got = sut.receive();

  EXPECT_FALSE(got.has_value());
}

TEST(Listener, SampleCarriesTopicPayloadSequenceAndPublisher) {
  TestBus tb;
  Listener sut = tb.listen("l/#");
  Publisher pub = tb.bus().publisher();
  ASSERT_EQ(pub.publish("l/a", "one").sequence, 1U);
  ASSERT_EQ(pub.publish("l/b", "two").sequence, 2U);

  auto first = sut.try_receive();
  auto second = sut.try_receive();

  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(first->topic(), "l/a");
  EXPECT_EQ(second->topic(), "l/b");
  EXPECT_EQ(first->payload_text(), "one");
  EXPECT_EQ(first->sequence(), 1U);
  EXPECT_EQ(second->sequence(), 2U);
  EXPECT_EQ(first->publisher_id(), pub.id());
  EXPECT_GT(first->timestamp_ns(), 0U);
  EXPECT_LE(first->timestamp_ns(), second->timestamp_ns());
}

TEST(Listener, CountersCountDeliveredAndReceivedEvents) {
  TestBus tb;
  Listener sut = tb.listen("l/t");
  Publisher pub = tb.bus().publisher();
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(pub.publish("l/t", "x").delivered, 1U);
  }

  (void)sut.try_receive();
  (void)sut.try_receive();

  EXPECT_EQ(sut.counters().delivered, 3U);
  EXPECT_EQ(sut.counters().received, 2U);
  EXPECT_EQ(sut.fill().used, 1U);
}

// --- the wait strategies -----------------------------------------------------------

class ListenerWait : public ::testing::TestWithParam<WaitStrategy> {};

TEST_P(ListenerWait, ReceiveForReturnsNothingWhenNoEventComes) {
  TestBus tb;
  ListenerOptions o;
  o.wait = GetParam();
  Listener sut = tb.listen("w/t", o);

  const auto got = sut.receive_for(20ms);

  EXPECT_FALSE(got.has_value());
}

TEST_P(ListenerWait, ReceivesAnEventPublishedFromAnotherThreadWhileWaiting) {
  TestBus tb;
  ListenerOptions o;
  o.wait = GetParam();
  Listener sut = tb.listen("w/t", o);
  detail::ListenerSlot& slot = tb.core().slot(sut.index());
  std::atomic<std::uint32_t> waiting{0};
  PublishResult published;

  std::thread publisher([&] {
    Publisher pub = tb.bus().publisher();
    if (GetParam() == WaitStrategy::kBusyPoll) {
      (void)wait_nonzero(waiting);
      std::this_thread::sleep_for(5ms);  // let the listener spin a while
    } else {
      (void)wait_nonzero(slot.sleeping);  // the listener is asleep on its futex
    }
    published = pub.publish("w/t", "wake up");
  });
  // release: the publisher may start once we are about to wait.
  waiting.store(1, std::memory_order_release);
  const auto got = sut.receive_for(30s);
  publisher.join();

  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->payload_text(), "wake up");
  EXPECT_EQ(published.delivered, 1U);
  if (GetParam() != WaitStrategy::kBusyPoll) {
    EXPECT_GE(sut.counters().wakeups, 1U) << "woken by the publisher, not by the timeout";
  }
}

TEST_P(ListenerWait, ReceiveWithoutLimitGetsAnEventFromAnotherThread) {
  TestBus tb;
  ListenerOptions o;
  o.wait = GetParam();
  Listener sut = tb.listen("w/t", o);

  std::thread publisher([&] {
    Publisher pub = tb.bus().publisher();
    std::this_thread::sleep_for(2ms);
    (void)pub.publish("w/t", "late");
  });
  const auto got = sut.receive();
  publisher.join();

  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->payload_text(), "late");
}

INSTANTIATE_TEST_SUITE_P(Strategies, ListenerWait,
                         ::testing::Values(WaitStrategy::kBusyPoll, WaitStrategy::kHybrid,
                                           WaitStrategy::kSleep),
                         [](const ::testing::TestParamInfo<WaitStrategy>& param) {
                           return std::string(param.param == WaitStrategy::kBusyPoll ? "Spin"
                                              : param.param == WaitStrategy::kHybrid ? "Hybrid"
                                                                                     : "Sleep");
                         });

TEST(Listener, BusyPollListenerIsNeverWokenByFutex) {
  TestBus tb;
  ListenerOptions o;
  o.wait = WaitStrategy::kBusyPoll;
  Listener sut = tb.listen("w/t", o);
  Publisher pub = tb.bus().publisher();

  ASSERT_EQ(pub.publish("w/t", "x").delivered, 1U);
  const auto got = sut.receive_for(10s);

  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(sut.counters().wakeups, 0U);
}

// --- capacity: rounding, adaptive growth and shrinking -------------------------------

TEST(ListenerCapacity, RequestedCapacityIsRoundedUpToAPowerOfTwo) {
  TestBus tb;
  ListenerOptions o;
  o.capacity = 10;

  Listener sut = tb.listen("c/t", o);

  EXPECT_EQ(sut.fill().capacity, 16U);
  EXPECT_EQ(sut.fill().allocated, test::kRingCapacity);
}

TEST(ListenerCapacity, RequestedCapacityIsCappedAtTheAllocatedRing) {
  TestBus tb;
  ListenerOptions o;
  o.capacity = 1000;

  Listener sut = tb.listen("c/t", o);

  EXPECT_EQ(sut.fill().capacity, test::kRingCapacity);
}

TEST(ListenerCapacity, ZeroCapacityMeansTheBusRingCapacity) {
  TestBus tb;

  Listener sut = tb.listen("c/t");

  EXPECT_EQ(sut.fill().capacity, test::kRingCapacity);
}

TEST(ListenerCapacity, FixedCapacityDoesNotGrowUnderOverload) {
  TestBus tb;
  ListenerOptions o;
  o.capacity = 8;  // below the pool's 16 chunks: drop-oldest always finds a free one
  Listener sut = tb.listen("c/t", o);
  Publisher pub = tb.bus().publisher();

  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(pub.publish("c/t", "x").delivered, 1U);
  }

  EXPECT_EQ(sut.fill().capacity, 8U);
  EXPECT_EQ(sut.fill().used, 8U);
}

// A bus whose pool outlasts a full ring, so that growth is not cut short by
// pool exhaustion.
Config adaptive_config() {
  Config c = test::small_config();
  c.pools = {{test::kSmallPayload, 4 * test::kRingCapacity}, {test::kLargePayload, 4}};
  return c;
}

ListenerOptions adaptive_options() {
  ListenerOptions o;
  o.adaptive = true;
  o.capacity = 16;
  o.grow_after = 4;
  o.quiet_period = 20ms;
  return o;
}

TEST(ListenerCapacity, AdaptiveCapacityGrowsWhileTheListenerDoesNotRead) {
  TestBus tb(adaptive_config());
  Listener sut = tb.listen("c/t", adaptive_options());
  Publisher pub = tb.bus().publisher();

  for (std::uint32_t i = 0; i < 2 * test::kRingCapacity; ++i) {
    ASSERT_TRUE(pub.publish("c/t", "x").ok());
  }

  const Fill f = sut.fill();
  EXPECT_GT(f.capacity, 16U);
  EXPECT_LE(f.capacity, f.allocated);
  EXPECT_GT(f.used, 16U) << "the grown ring holds more than the first capacity";
  EXPECT_GT(sut.counters().high_water_signals, 0U);
}

// The shrink rule: the effective capacity halves (never below min_capacity)
// when the listener finds its ring drained below a quarter of the capacity and
// neither a high-water signal nor a resize happened for quiet_period. The
// listener checks on a try_receive that finds the ring empty (and on every
// 64th receive), so each quiet period allows one halving.
TEST(ListenerCapacity, AdaptiveCapacityShrinksAfterDrainingAndAQuietPeriod) {
  TestBus tb(adaptive_config());
  Listener sut = tb.listen("c/t", adaptive_options());
  Publisher pub = tb.bus().publisher();
  for (std::uint32_t i = 0; i < 2 * test::kRingCapacity; ++i) {
    ASSERT_TRUE(pub.publish("c/t", "x").ok());
  }
  const std::uint32_t grown = sut.fill().capacity;
  ASSERT_GT(grown, 16U);
  while (sut.try_receive()) {
  }

  // Sleep past the quiet period, then let the listener look; repeated a
  // bounded number of times so that a slow machine does not fail the test.
  for (int attempt = 0; attempt < 50 && sut.fill().capacity >= grown; ++attempt) {
    std::this_thread::sleep_for(adaptive_options().quiet_period + 5ms);
    for (int i = 0; i < 3; ++i) {
      (void)sut.try_receive();
    }
  }

  EXPECT_LT(sut.fill().capacity, grown);
  EXPECT_GE(sut.fill().capacity, 16U);
}

TEST(ListenerCapacity, AdaptiveCapacityShrinksNoFurtherThanMinCapacity) {
  TestBus tb(adaptive_config());
  Listener sut = tb.listen("c/t", adaptive_options());
  Publisher pub = tb.bus().publisher();
  for (std::uint32_t i = 0; i < 2 * test::kRingCapacity; ++i) {
    ASSERT_TRUE(pub.publish("c/t", "x").ok());
  }
  while (sut.try_receive()) {
  }

  // Enough quiet periods to halve from any grown size down to the minimum,
  // and then some that must change nothing.
  std::vector<std::uint32_t> seen;
  for (int attempt = 0; attempt < 100 && seen.size() < 4; ++attempt) {
    std::this_thread::sleep_for(adaptive_options().quiet_period + 5ms);
    (void)sut.try_receive();
    const std::uint32_t cap = sut.fill().capacity;
    if (cap == adaptive_options().min_capacity) {
      seen.push_back(cap);
    }
  }

  EXPECT_EQ(seen.size(), 4U) << "capacity never reached min_capacity";
  EXPECT_EQ(sut.fill().capacity, adaptive_options().min_capacity);
}

// --- fill level and "behind" ------------------------------------------------------------

ListenerOptions sixteen() {
  ListenerOptions o;
  o.capacity = 16;  // the high-water mark, 75 %, is at 12 entries
  return o;
}

TEST(ListenerBehind, NotBehindBelowTheHighWaterMark) {
  TestBus tb;
  Listener sut = tb.listen("b/t", sixteen());
  Publisher pub = tb.bus().publisher();

  for (int i = 0; i < 11; ++i) {
    ASSERT_EQ(pub.publish("b/t", "x").delivered, 1U);
  }

  EXPECT_EQ(sut.fill().used, 11U);
  EXPECT_FALSE(sut.fill().behind);
  EXPECT_FALSE(pub.behind("b/t"));
}

TEST(ListenerBehind, BehindAtTheHighWaterMark) {
  TestBus tb;
  Listener sut = tb.listen("b/t", sixteen());
  Publisher pub = tb.bus().publisher();

  for (int i = 0; i < 12; ++i) {
    ASSERT_EQ(pub.publish("b/t", "x").delivered, 1U);
  }

  EXPECT_TRUE(sut.fill().behind);
  EXPECT_TRUE(pub.behind("b/t"));
  EXPECT_TRUE(tb.bus().inspect().listeners.at(0).fill.behind);
}

TEST(ListenerBehind, NoLongerBehindAfterDraining) {
  TestBus tb;
  Listener sut = tb.listen("b/t", sixteen());
  Publisher pub = tb.bus().publisher();
  for (int i = 0; i < 14; ++i) {
    ASSERT_EQ(pub.publish("b/t", "x").delivered, 1U);
  }
  ASSERT_TRUE(pub.behind("b/t"));

  while (sut.try_receive()) {
  }

  EXPECT_FALSE(sut.fill().behind);
  EXPECT_FALSE(pub.behind("b/t"));
}

TEST(ListenerBehind, BehindIsFalseForATopicNobodyListensTo) {
  TestBus tb;
  Listener full = tb.listen("b/t", sixteen());
  Publisher pub = tb.bus().publisher();
  for (int i = 0; i < 16; ++i) {
    ASSERT_EQ(pub.publish("b/t", "x").delivered, 1U);
  }

  EXPECT_FALSE(pub.behind("b/other"));
  EXPECT_FALSE(pub.behind("b/+"));  // not a topic name
}

// --- the block policy ------------------------------------------------------------------

ListenerOptions blocking(std::uint32_t capacity) {
  ListenerOptions o;
  o.overflow = Overflow::kBlock;
  o.capacity = capacity;
  return o;
}

TEST(ListenerBlock, PublishIntoAFullRingTimesOut) {
  TestBus tb;
  Listener sut = tb.listen("k/t", blocking(4));
  Publisher pub = tb.bus().publisher();
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(pub.publish("k/t", "x").delivered, 1U);
  }
  pub.set_block_timeout(10ms);

  const PublishResult r = pub.publish("k/t", "too many");

  EXPECT_EQ(r.status, PublishStatus::kTimedOut);
  EXPECT_EQ(r.delivered, 0U);
  EXPECT_EQ(r.skipped, 1U);
  EXPECT_EQ(sut.counters().block_timeouts, 1U);
  EXPECT_EQ(tb.free_chunks(0), test::kSmallCount - 4);
}

TEST(ListenerBlock, PublishWithRoomDoesNotBlock) {
  TestBus tb;
  Listener sut = tb.listen("k/t", blocking(4));
  Publisher pub = tb.bus().publisher();
  pub.set_block_timeout(0ns);

  const PublishResult r = pub.publish("k/t", "fits");

  EXPECT_EQ(r.status, PublishStatus::kOk);
  EXPECT_EQ(sut.counters().block_timeouts, 0U);
}

TEST(ListenerBlock, BlockedPublisherProceedsWhenTheListenerMakesRoom) {
  TestBus tb;
  Listener sut = tb.listen("k/t", blocking(4));
  detail::ListenerSlot& slot = tb.core().slot(sut.index());
  Publisher pub = tb.bus().publisher();
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(pub.publish("k/t", std::to_string(i)).delivered, 1U);
  }
  pub.set_block_timeout(30s);
  PublishResult r;

  std::thread blocked([&] { r = pub.publish("k/t", "4"); });
  (void)wait_nonzero(slot.space_waiters);  // the publisher sleeps, waiting for room
  std::vector<std::string> got;
  while (got.size() < 5) {
    if (auto s = sut.receive_for(30s)) {
      got.push_back(test::text_of(*s));
    }
  }
  blocked.join();

  EXPECT_EQ(r.status, PublishStatus::kOk);
  EXPECT_EQ(r.delivered, 1U);
  EXPECT_EQ(got, (std::vector<std::string>{"0", "1", "2", "3", "4"}));
  EXPECT_EQ(sut.counters().block_timeouts, 0U);
}

TEST(ListenerBlock, BlockedPublisherGivesUpWhenTheListenerPauses) {
  TestBus tb;
  Listener sut = tb.listen("k/t", blocking(2));
  detail::ListenerSlot& slot = tb.core().slot(sut.index());
  Publisher pub = tb.bus().publisher();
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(pub.publish("k/t", "x").delivered, 1U);
  }
  pub.set_block_timeout(30s);
  PublishResult r;

  std::thread blocked([&] { r = pub.publish("k/t", "never"); });
  (void)wait_nonzero(slot.space_waiters);
  const bool paused = sut.pause().has_value();  // no ASSERT before the join
  blocked.join();

  ASSERT_TRUE(paused);
  EXPECT_EQ(r.status, PublishStatus::kOk);
  EXPECT_EQ(r.delivered, 0U);
  EXPECT_EQ(r.skipped, 1U);
  EXPECT_EQ(sut.counters().block_timeouts, 0U);
}

// A closed listener's slot stays taken while Samples it gave out live: a
// new listener must not get the slot (and its bit in those chunks).
TEST(Listener, AClosedListenersSlotIsNotReusedWhileItsSamplesLive) {
  TestBus tb;
  std::vector<Listener> others;
  for (std::uint32_t i = 1; i < test::kMaxListeners; ++i) {
    others.push_back(tb.listen("other/x"));
  }
  std::optional<Sample> held;
  {
    Listener sut = tb.listen("l/t");
    Publisher pub = tb.bus().publisher();
    ASSERT_EQ(pub.publish("l/t", "kept").delivered, 1U);
    ASSERT_EQ(pub.publish("l/t", "queued").delivered, 1U);
    held = sut.try_receive();
    ASSERT_TRUE(held.has_value());
  }  // closed with one sample out and one event still queued

  auto refused = tb.bus().listen({});
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, Errc::kListenerTableFull);
  EXPECT_EQ(held->payload_text(), "kept");
  EXPECT_EQ(tb.free_chunks(0), test::kSmallCount - 1);  // the queued one went back

  held.reset();

  EXPECT_EQ(tb.free_chunks(0), test::kSmallCount);
  auto again = tb.bus().listen({});
  EXPECT_TRUE(again.has_value());
}

// Samples moved around and returned in any order: the slot is freed with
// the last, and only then.
TEST(Listener, TheLastReturnedSampleFreesAParkedSlot) {
  TestBus tb;
  std::vector<Listener> others;
  for (std::uint32_t i = 1; i < test::kMaxListeners; ++i) {
    others.push_back(tb.listen("other/x"));
  }
  std::vector<Sample> held;
  {
    Listener sut = tb.listen("l/t");
    Publisher pub = tb.bus().publisher();
    for (int i = 0; i < 3; ++i) {
      ASSERT_EQ(pub.publish("l/t", "e").delivered, 1U);
      auto s = sut.try_receive();
      ASSERT_TRUE(s.has_value());
      held.push_back(std::move(*s));
    }
  }
  Sample moved;
  moved = std::move(held[1]);
  held.erase(held.begin());

  EXPECT_FALSE(tb.bus().listen({}).has_value());
  held.clear();
  EXPECT_FALSE(tb.bus().listen({}).has_value());  // `moved` still holds one
  EXPECT_EQ(tb.free_chunks(0), test::kSmallCount - 1);
  moved = Sample();

  EXPECT_EQ(tb.free_chunks(0), test::kSmallCount);
  EXPECT_TRUE(tb.bus().listen({}).has_value());
}

}  // namespace
}  // namespace ipcbus
