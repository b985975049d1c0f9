// state_test.cpp: unit tests of the listener state word (pause and resume,
// close being final, the generation bump on slot reuse, the word staying
// consistent under contended transitions) and of the publisher's route cache,
// which the trie's version revalidates and the generation guards.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "layout.hpp"
#include "test_bus.hpp"

namespace ipcbus {
namespace {

using test::TestBus;

TEST(ListenerState, PausedListenerIsSkippedByPublish) {
  TestBus tb;
  Listener sut = tb.listen("st/t");
  Publisher pub = tb.bus().publisher();
  ASSERT_TRUE(sut.pause());

  const PublishResult r = pub.publish("st/t", "while paused");

  EXPECT_EQ(r.status, PublishStatus::kOk);
  EXPECT_EQ(r.skipped, 1U);
  EXPECT_EQ(r.delivered, 0U);
  EXPECT_EQ(sut.counters().delivered, 0U);
}

TEST(ListenerState, EventsPublishedWhilePausedAreNotReceivedAfterResume) {
  TestBus tb;
  Listener sut = tb.listen("st/t");
  Publisher pub = tb.bus().publisher();
  ASSERT_TRUE(sut.pause());
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(pub.publish("st/t", "lost").skipped, 1U);
  }

  ASSERT_TRUE(sut.resume());

  EXPECT_FALSE(sut.try_receive().has_value());
  EXPECT_EQ(tb.free_chunks(0), test::kSmallCount);
}

TEST(ListenerState, ResumedListenerReceivesAgain) {
  TestBus tb;
  Listener sut = tb.listen("st/t");
  Publisher pub = tb.bus().publisher();
  ASSERT_TRUE(sut.pause());
  ASSERT_EQ(pub.publish("st/t", "lost").skipped, 1U);
  ASSERT_TRUE(sut.resume());

  const PublishResult r = pub.publish("st/t", "after");

  EXPECT_EQ(r.delivered, 1U);
  auto s = sut.try_receive();
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->payload_text(), "after");
}

TEST(ListenerState, PausedListenerReceivesNothingThatWasQueuedBeforeUntilResumed) {
  TestBus tb;
  Listener sut = tb.listen("st/t");
  Publisher pub = tb.bus().publisher();
  ASSERT_EQ(pub.publish("st/t", "queued").delivered, 1U);
  ASSERT_TRUE(sut.pause());

  const bool got_while_paused = sut.try_receive().has_value();
  ASSERT_TRUE(sut.resume());
  auto s = sut.try_receive();

  EXPECT_FALSE(got_while_paused);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->payload_text(), "queued");
}

TEST(ListenerState, PausingAPausedListenerFails) {
  TestBus tb;
  Listener sut = tb.listen("st/t");
  ASSERT_TRUE(sut.pause());

  const auto r = sut.pause();

  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
  EXPECT_EQ(sut.state(), ListenerState::kPaused);
}

TEST(ListenerState, ResumingAnActiveListenerFails) {
  TestBus tb;
  Listener sut = tb.listen("st/t");

  const auto r = sut.resume();

  ASSERT_FALSE(r);
  EXPECT_EQ(sut.state(), ListenerState::kActive);
}

TEST(ListenerState, InspectSeesTheStateInTheSegment) {
  TestBus tb;
  Listener sut = tb.listen("st/t");

  ASSERT_TRUE(sut.pause());
  const ListenerState paused = tb.bus().inspect().listeners.at(0).state;
  ASSERT_TRUE(sut.resume());
  const ListenerState resumed = tb.bus().inspect().listeners.at(0).state;

  EXPECT_EQ(paused, ListenerState::kPaused);
  EXPECT_EQ(resumed, ListenerState::kActive);
}

TEST(ListenerState, PauseKeepsTheGenerationAndLeavesNoPin) {
  TestBus tb;
  Listener sut = tb.listen("st/t");
  auto& slot = tb.core().slot(sut.index());

  ASSERT_TRUE(sut.pause());

  // acquire: read what the transition's release CAS wrote.
  const std::uint64_t w = slot.state.load(std::memory_order_acquire);
  EXPECT_EQ(detail::state_bits(w), static_cast<std::uint64_t>(ListenerState::kPaused));
  EXPECT_EQ(detail::generation_of(w), sut.generation());
  EXPECT_EQ(w & 0xFFFCU, 0U);  // bits between the state and the owner stay zero
}

TEST(ListenerState, CloseIsFinal) {
  TestBus tb;
  Listener sut = tb.listen("st/t");

  sut.close();

  EXPECT_EQ(sut.state(), ListenerState::kClosed);
  EXPECT_FALSE(sut.pause());
  EXPECT_FALSE(sut.resume());
  EXPECT_EQ(sut.state(), ListenerState::kClosed);
  EXPECT_FALSE(sut.try_receive().has_value());
}

TEST(ListenerState, SubscribeAfterCloseIsClosed) {
  TestBus tb;
  Listener sut = tb.listen("st/t");
  sut.close();

  const auto r = sut.subscribe("st/other");

  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kClosed);
  EXPECT_EQ(tb.bus().inspect().trie_nodes_used, 1U);
}

TEST(ListenerState, UnsubscribeAfterCloseIsClosed) {
  TestBus tb;
  Listener sut = tb.listen("st/t");
  sut.close();

  const auto r = sut.unsubscribe("st/t");

  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kClosed);
}

TEST(ListenerState, CloseFreesTheSlotAndItsFilters) {
  TestBus tb;
  Listener sut = tb.listen("st/t");
  Publisher pub = tb.bus().publisher();

  sut.close();

  EXPECT_TRUE(tb.bus().inspect().listeners.empty());
  EXPECT_EQ(pub.publish("st/t", "x").status, PublishStatus::kNoListeners);
}

TEST(ListenerState, CloseReturnsQueuedChunksToThePool) {
  TestBus tb;
  Listener sut = tb.listen("st/t");
  Publisher pub = tb.bus().publisher();
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(pub.publish("st/t", "x").delivered, 1U);
  }
  ASSERT_EQ(tb.free_chunks(0), test::kSmallCount - 5);

  sut.close();

  EXPECT_EQ(tb.free_chunks(0), test::kSmallCount);
}

TEST(ListenerState, ClosingTwiceIsHarmless) {
  TestBus tb;
  Listener sut = tb.listen("st/t");
  sut.close();
  Listener next = tb.listen("st/n");

  sut.close();

  EXPECT_EQ(next.state(), ListenerState::kActive);
  ASSERT_EQ(tb.bus().inspect().listeners.size(), 1U);
  Publisher pub = tb.bus().publisher();
  EXPECT_EQ(pub.publish("st/n", "x").delivered, 1U);
}

TEST(ListenerState, ClosingAPausedListenerFreesItsSlot) {
  TestBus tb;
  Listener sut = tb.listen("st/t");
  ASSERT_TRUE(sut.pause());

  sut.close();

  EXPECT_TRUE(tb.bus().inspect().listeners.empty());
}

TEST(ListenerState, DestructorClosesTheListener) {
  TestBus tb;
  {
    Listener sut = tb.listen("st/t");
    ASSERT_EQ(tb.bus().inspect().listeners.size(), 1U);
  }

  EXPECT_TRUE(tb.bus().inspect().listeners.empty());
  EXPECT_EQ(tb.bus().inspect().subscriptions_used, 0U);
}

TEST(ListenerState, MovedListenerKeepsTheSlotAndTheMovedFromOneIsClosed) {
  TestBus tb;
  Listener from = tb.listen("st/t");
  Publisher pub = tb.bus().publisher();

  Listener sut = std::move(from);
  from.close();  // must not close the slot that moved away

  EXPECT_EQ(from.state(), ListenerState::kClosed);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(pub.publish("st/t", "x").delivered, 1U);
  EXPECT_TRUE(sut.try_receive().has_value());
}

// --- slot reuse and generations ------------------------------------------------------

TEST(ListenerGeneration, ReusedSlotHasTheNextGeneration) {
  TestBus tb;
  Listener old = tb.listen("old/t");
  const std::uint32_t index = old.index();
  const std::uint32_t generation = old.generation();

  old.close();
  Listener sut = tb.listen("new/t");

  EXPECT_EQ(sut.index(), index);
  EXPECT_EQ(sut.generation(), generation + 1);
  EXPECT_EQ(tb.bus().inspect().listeners.at(0).generation, generation + 1);
}

TEST(ListenerGeneration, NewListenerInAReusedSlotGetsNothingOnTheOldTopic) {
  TestBus tb;
  Publisher pub = tb.bus().publisher();
  Listener old = tb.listen("old/t");
  ASSERT_EQ(pub.publish("old/t", "cached").delivered, 1U);  // the route is cached now
  old.close();

  Listener sut = tb.listen("new/t");
  ASSERT_EQ(sut.index(), old.index());
  const PublishResult r = pub.publish("old/t", "stale");

  EXPECT_EQ(r.delivered, 0U);
  EXPECT_FALSE(sut.try_receive().has_value());
  EXPECT_EQ(sut.counters().delivered, 0U);
}

TEST(ListenerGeneration, RouteNamingTheOldGenerationDeliversNothing) {
  TestBus tb;
  Listener old = tb.listen("");
  const std::uint32_t index = old.index();
  const std::uint32_t old_generation = old.generation();
  old.close();
  Listener sut = tb.listen("new/t");
  ASSERT_EQ(sut.index(), index);
  // A subscription record of the old generation: exactly what a route made
  // before the slot was reused names.
  ASSERT_TRUE(tb.core().subscribe(index, old_generation, "old/t"));
  Publisher pub = tb.bus().publisher();

  const PublishResult r = pub.publish("old/t", "stale");

  EXPECT_EQ(r.status, PublishStatus::kOk);
  EXPECT_EQ(r.delivered, 0U);
  EXPECT_FALSE(sut.try_receive().has_value());
  EXPECT_EQ(tb.free_chunks(0), test::kSmallCount);
  EXPECT_TRUE(tb.core().unsubscribe(index, "old/t"));
}

// --- contended transitions -----------------------------------------------------------

// One CAS from `from` to `to` that keeps the generation and the pins, as
// Listener::pause and resume make it.
bool try_transition(detail::ListenerSlot& s, ListenerState from, ListenerState to) {
  // relaxed: the CAS carries the ordering.
  std::uint64_t w = s.state.load(std::memory_order_relaxed);
  if (detail::state_bits(w) != static_cast<std::uint64_t>(from)) {
    return false;
  }
  const std::uint64_t want = (w & ~detail::kStateMask) | static_cast<std::uint64_t>(to);
  // acq_rel: as in listener.cpp; publishers see the new state at their next pin.
  return s.state.compare_exchange_strong(w, want, std::memory_order_acq_rel,
                                         std::memory_order_relaxed);
}

TEST(ListenerStateConcurrency, HammeredTransitionsLeaveAConsistentWordAndNoPins) {
  TestBus tb;
  ListenerOptions o;
  o.capacity = 8;
  Listener sut = tb.listen("st/t", o);
  detail::ListenerSlot& slot = tb.core().slot(sut.index());
  constexpr int kTogglers = 3;
  constexpr int kAttempts = 20000;
  constexpr int kPublishes = 20000;
  std::atomic<int> pauses{0};
  std::atomic<int> resumes{0};
  std::atomic<int> bad_results{0};
  std::atomic<std::uint64_t> delivered{0};
  std::vector<std::thread> threads;

  for (int t = 0; t < kTogglers; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kAttempts; ++i) {
        // relaxed on the counters: read after join().
        if (try_transition(slot, ListenerState::kActive, ListenerState::kPaused)) {
          pauses.fetch_add(1, std::memory_order_relaxed);
        } else if (try_transition(slot, ListenerState::kPaused, ListenerState::kActive)) {
          resumes.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  }
  for (int p = 0; p < 2; ++p) {
    threads.emplace_back([&] {
      Publisher pub = tb.bus().publisher();
      for (int i = 0; i < kPublishes; ++i) {
        const PublishResult r = pub.publish("st/t", "x");
        // relaxed on the counters: read after join().
        if (r.status != PublishStatus::kOk || r.delivered + r.skipped != 1) {
          bad_results.fetch_add(1, std::memory_order_relaxed);
        }
        delivered.fetch_add(r.delivered, std::memory_order_relaxed);
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }

  // acquire: the last transition and unpin are visible (join orders them too).
  const std::uint64_t w = slot.state.load(std::memory_order_acquire);
  EXPECT_EQ(w & 0xFFFCU, 0U);  // bits between the state and the owner stay zero
  EXPECT_EQ(detail::generation_of(w), sut.generation());
  const bool paused = detail::state_bits(w) == static_cast<std::uint64_t>(ListenerState::kPaused);
  EXPECT_TRUE(paused ||
              detail::state_bits(w) == static_cast<std::uint64_t>(ListenerState::kActive));
  EXPECT_EQ(pauses.load() - resumes.load(), paused ? 1 : 0);
  EXPECT_GT(pauses.load(), 0);
  EXPECT_EQ(bad_results.load(), 0);
  EXPECT_EQ(sut.counters().delivered, delivered.load());
  if (paused) {
    ASSERT_TRUE(try_transition(slot, ListenerState::kPaused, ListenerState::kActive));
  }
  EXPECT_TRUE(sut.try_receive().has_value() || delivered.load() == 0);
}

TEST(ListenerStateConcurrency, PublishersLeaveNoFanoutOpen) {
  TestBus tb;
  ListenerOptions o;
  o.capacity = 8;  // drop-oldest: the unread ring holds fewer chunks than the pool has
  Listener sut = tb.listen("st/t", o);
  std::vector<std::thread> threads;

  for (int p = 0; p < 2; ++p) {
    threads.emplace_back([&] {
      Publisher pub = tb.bus().publisher();
      for (int i = 0; i < 5000; ++i) {
        (void)pub.publish("st/t", "x");
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }

  // relaxed: join() ordered every fan-out's end before these loads.
  const detail::PublisherSlot* slots = tb.core().publisher_slots();
  for (std::uint32_t p = 0; p < tb.core().header().max_publishers; ++p) {
    EXPECT_EQ(slots[p].active.load(std::memory_order_relaxed) % 2, 0U) << "publisher slot " << p;
  }
  // drop-oldest turns into drop-newest when the other publisher is preempted
  // between claiming a ring position and filling it; either way it was reached.
  EXPECT_EQ(sut.counters().delivered + sut.counters().dropped_newest, 10000U);
}

// --- the route cache ------------------------------------------------------------------

TEST(RouteCache, RepeatedPublishesOfOneTopicDoNotMiss) {
  TestBus tb;
  Listener l = tb.listen("rc/t");
  Publisher sut = tb.bus().publisher();
  ASSERT_EQ(sut.publish("rc/t", "x").delivered, 1U);
  const std::uint64_t misses = sut.route_cache_misses();

  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(sut.publish("rc/t", "x").delivered, 1U);
    (void)l.try_receive();
  }

  EXPECT_EQ(misses, 1U);
  EXPECT_EQ(sut.route_cache_misses(), misses);
}

TEST(RouteCache, SubscribeElsewhereMakesTheNextPublishMissOnce) {
  TestBus tb;
  Listener l = tb.listen("rc/t");
  Publisher sut = tb.bus().publisher();
  ASSERT_EQ(sut.publish("rc/t", "x").delivered, 1U);
  const std::uint64_t before = sut.route_cache_misses();
  Listener elsewhere = tb.listen("unrelated/topic");

  ASSERT_EQ(sut.publish("rc/t", "x").delivered, 1U);
  ASSERT_EQ(sut.publish("rc/t", "x").delivered, 1U);

  EXPECT_EQ(sut.route_cache_misses(), before + 1);
}

TEST(RouteCache, NewSubscriptionIsSeenByTheNextPublish) {
  TestBus tb;
  Listener first = tb.listen("rc/t");
  Publisher sut = tb.bus().publisher();
  ASSERT_EQ(sut.publish("rc/t", "x").delivered, 1U);

  Listener second = tb.listen("rc/#");
  const PublishResult r = sut.publish("rc/t", "y");

  EXPECT_EQ(r.delivered, 2U);
  auto s = second.try_receive();
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->payload_text(), "y");
}

TEST(RouteCache, UnsubscribeIsSeenByTheNextPublish) {
  TestBus tb;
  Listener l = tb.listen("rc/t");
  Publisher sut = tb.bus().publisher();
  ASSERT_EQ(sut.publish("rc/t", "x").delivered, 1U);

  ASSERT_TRUE(l.unsubscribe("rc/t"));
  const PublishResult r = sut.publish("rc/t", "y");

  EXPECT_EQ(r.status, PublishStatus::kNoListeners);
}

TEST(RouteCache, EachDistinctTopicMissesOnce) {
  TestBus tb;
  Listener l = tb.listen("#");
  Publisher sut = tb.bus().publisher();

  for (int round = 0; round < 3; ++round) {
    for (const char* t : {"t/1", "t/2", "t/3"}) {
      ASSERT_EQ(sut.publish(t, "x").delivered, 1U);
      (void)l.try_receive();
    }
  }

  EXPECT_EQ(sut.route_cache_misses(), 3U);
}

}  // namespace
}  // namespace ipcbus
