// pool_test.cpp: unit tests of the chunk pools: taking and returning chunks
// directly, exhaustion and reuse through the public API, size class
// selection, and fan-out costing one chunk.
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iostream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core.hpp"
#include "test_bus.hpp"

namespace ipcbus {
namespace {

using test::kLargeCount;
using test::kLargePayload;
using test::kSmallCount;
using test::kSmallPayload;
using test::TestBus;

// --- the free lists, directly --------------------------------------------------

TEST(Pool, TakeChunkReturnsNullWhenTheClassIsEmpty) {
  TestBus tb;
  auto& sut = tb.core();
  std::vector<detail::ChunkHeader*> held;
  for (std::uint32_t i = 0; i < kSmallCount; ++i) {
    held.push_back(sut.take_chunk(0));
    ASSERT_NE(held.back(), nullptr) << "chunk " << i;
  }

  detail::ChunkHeader* extra = sut.take_chunk(0);

  EXPECT_EQ(extra, nullptr);
  for (auto* c : held) {
    sut.release_own(c);
  }
}

TEST(Pool, AnEmptyClassLeavesTheOtherClassesUsable) {
  TestBus tb;
  auto& sut = tb.core();
  std::vector<detail::ChunkHeader*> held;
  for (std::uint32_t i = 0; i < kSmallCount; ++i) {
    held.push_back(sut.take_chunk(0));
  }

  detail::ChunkHeader* large = sut.take_chunk(1);

  ASSERT_NE(large, nullptr);
  EXPECT_EQ(large->pool_class, 1U);
  sut.release_own(large);
  for (auto* c : held) {
    sut.release_own(c);
  }
}

TEST(Pool, TakenChunksAreDistinctAndOfTheirClass) {
  TestBus tb;
  auto& sut = tb.core();
  std::set<detail::ChunkHeader*> held;

  for (std::uint32_t i = 0; i < kLargeCount; ++i) {
    detail::ChunkHeader* c = sut.take_chunk(1);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->pool_class, 1U);
    EXPECT_EQ(c->capacity, kLargePayload);
    EXPECT_EQ(sut.chunk(c->self_ref), c);
    held.insert(c);
  }

  EXPECT_EQ(held.size(), kLargeCount);
  for (auto* c : held) {
    sut.release_own(c);
  }
}

TEST(Pool, ReturnedChunkCanBeTakenAgain) {
  TestBus tb;
  auto& sut = tb.core();
  std::vector<detail::ChunkHeader*> held;
  for (std::uint32_t i = 0; i < kLargeCount; ++i) {
    held.push_back(sut.take_chunk(1));
  }
  ASSERT_EQ(sut.take_chunk(1), nullptr);
  sut.release_own(held.back());
  held.pop_back();

  detail::ChunkHeader* again = sut.take_chunk(1);

  EXPECT_NE(again, nullptr);
  held.push_back(again);
  for (auto* c : held) {
    sut.release_own(c);
  }
}

TEST(Pool, FreeCountReturnsToTotalAfterEveryChunkComesBack) {
  TestBus tb;
  auto& sut = tb.core();
  std::vector<detail::ChunkHeader*> held;
  for (std::uint32_t i = 0; i < kSmallCount; ++i) {
    held.push_back(sut.take_chunk(0));
  }
  const std::uint32_t free_while_held = tb.free_chunks(0);

  for (auto* c : held) {
    sut.release_own(c);
  }

  EXPECT_EQ(free_while_held, 0U);
  EXPECT_EQ(tb.free_chunks(0), kSmallCount);
  EXPECT_EQ(tb.bus().inspect().pools.at(0).total, kSmallCount);
}

TEST(Pool, ReleaseChunkRecyclesOnlyOnTheLastHolder) {
  TestBus tb;
  auto& sut = tb.core();
  detail::ChunkHeader* c = sut.take_chunk(0);
  ASSERT_NE(c, nullptr);
  // Two listener holders besides the taker. relaxed: single thread.
  c->holders.store(c->holders.load(std::memory_order_relaxed) | 0b101, std::memory_order_relaxed);

  sut.release_own(c);
  sut.release_chunk(c, 0b001);
  const std::uint32_t free_before_last = tb.free_chunks(0);
  sut.release_chunk(c, 0b001);  // a holder that is gone already: no effect
  EXPECT_EQ(tb.free_chunks(0), free_before_last);
  sut.release_chunk(c, 0b100);

  EXPECT_EQ(free_before_last, kSmallCount - 1);
  EXPECT_EQ(tb.free_chunks(0), kSmallCount);
  // relaxed: single thread.
  EXPECT_EQ(c->holders.load(std::memory_order_relaxed), 0U);
}

TEST(PoolConcurrency, TakeAndReturnNeverHandOneChunkToTwoThreads) {
  TestBus tb;
  auto& sut = tb.core();
  constexpr int kThreads = 4;
  constexpr int kRounds = 20000;
  std::vector<std::atomic<int>> holders(1U << 16);
  std::atomic<int> doubles{0};
  std::vector<std::thread> threads;

  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        detail::ChunkHeader* c = sut.take_chunk(0);
        if (c == nullptr) {
          std::this_thread::yield();
          continue;
        }
        auto& h = holders[c->self_ref % holders.size()];
        // relaxed: the count itself is the check; the pool's orders are under test.
        if (h.fetch_add(1, std::memory_order_relaxed) != 0) {
          doubles.fetch_add(1, std::memory_order_relaxed);
        }
        h.fetch_sub(1, std::memory_order_relaxed);
        sut.release_own(c);
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }

  EXPECT_EQ(doubles.load(), 0);
  EXPECT_EQ(tb.free_chunks(0), kSmallCount);
  std::set<detail::ChunkHeader*> all;
  for (detail::ChunkHeader* c = sut.take_chunk(0); c != nullptr; c = sut.take_chunk(0)) {
    all.insert(c);
  }
  EXPECT_EQ(all.size(), kSmallCount);
  for (auto* c : all) {
    sut.release_own(c);
  }
}

// --- exhaustion and reuse, through the public API -----------------------------

std::string payload_for(std::uint32_t i, std::size_t size) {
  std::string p(size, '\0');
  std::mt19937 rng(i);
  for (char& ch : p) {
    ch = static_cast<char>(rng());
  }
  return p;
}

TEST(PoolExhaustion, PublishFailsWhenSamplesHoldEveryChunk) {
  TestBus tb;
  Listener l = tb.listen("pool/t");
  Publisher sut = tb.bus().publisher();
  std::vector<Sample> held;
  for (std::uint32_t i = 0; i < kSmallCount; ++i) {
    ASSERT_EQ(sut.publish("pool/t", payload_for(i, kSmallPayload)).status, PublishStatus::kOk);
    auto s = l.try_receive();
    ASSERT_TRUE(s.has_value());
    held.push_back(std::move(*s));
  }

  const PublishResult r = sut.publish("pool/t", "one more");

  EXPECT_EQ(r.status, PublishStatus::kPoolExhausted);
  EXPECT_EQ(r.delivered, 0U);
  EXPECT_FALSE(l.try_receive().has_value());
}

TEST(PoolExhaustion, PublishFailsWhenLoansHoldEveryChunk) {
  TestBus tb;
  Listener l = tb.listen("pool/t");
  Publisher sut = tb.bus().publisher();
  std::vector<Loan> loans;
  for (std::uint32_t i = 0; i < kSmallCount; ++i) {
    auto loan = sut.loan(8);
    ASSERT_TRUE(loan.has_value()) << loan.error().message;
    loans.push_back(std::move(loan).value());
  }

  const PublishResult r = sut.publish("pool/t", "x");

  EXPECT_EQ(r.status, PublishStatus::kPoolExhausted);
  EXPECT_EQ(l.counters().delivered, 0U);
}

TEST(PoolExhaustion, QueuedEventsStayIntactByteForByte) {
  TestBus tb;
  Listener l = tb.listen("pool/t");
  Publisher sut = tb.bus().publisher();
  for (std::uint32_t i = 0; i < kSmallCount; ++i) {
    ASSERT_EQ(sut.publish("pool/t", payload_for(i, 1 + i * 3)).status, PublishStatus::kOk);
  }
  ASSERT_EQ(sut.publish("pool/t", payload_for(99, 10)).status, PublishStatus::kPoolExhausted);
  ASSERT_FALSE(sut.loan(10).has_value());

  std::uint32_t intact = 0;
  for (std::uint32_t i = 0; i < kSmallCount; ++i) {
    auto s = l.try_receive();
    ASSERT_TRUE(s.has_value()) << "event " << i;
    EXPECT_EQ(s->topic(), "pool/t");
    EXPECT_EQ(s->sequence(), i + 1);
    intact += test::text_of(*s) == payload_for(i, 1 + i * 3) ? 1 : 0;
  }

  EXPECT_EQ(intact, kSmallCount);
}

TEST(PoolExhaustion, PublishSucceedsAgainOnceOneSampleIsReleased) {
  TestBus tb;
  Listener l = tb.listen("pool/t");
  Publisher sut = tb.bus().publisher();
  std::vector<Sample> held;
  for (std::uint32_t i = 0; i < kSmallCount; ++i) {
    ASSERT_EQ(sut.publish("pool/t", "x").status, PublishStatus::kOk);
    held.push_back(std::move(*l.try_receive()));
  }
  ASSERT_EQ(sut.publish("pool/t", "x").status, PublishStatus::kPoolExhausted);

  held.pop_back();
  const PublishResult r = sut.publish("pool/t", "y");

  EXPECT_EQ(r.status, PublishStatus::kOk);
  EXPECT_EQ(r.delivered, 1U);
}

TEST(PoolReuse, FreeCountReturnsToTotalAfterSamplesAreReleased) {
  TestBus tb;
  Listener l = tb.listen("pool/t");
  Publisher sut = tb.bus().publisher();
  {
    std::vector<Sample> held;
    for (std::uint32_t i = 0; i < 5; ++i) {
      ASSERT_EQ(sut.publish("pool/t", "x").status, PublishStatus::kOk);
      held.push_back(std::move(*l.try_receive()));
    }
    ASSERT_EQ(tb.free_chunks(0), kSmallCount - 5);
  }

  const std::uint32_t free_after = tb.free_chunks(0);

  EXPECT_EQ(free_after, kSmallCount);
}

TEST(PoolReuse, ReusedChunkCarriesTheNewTopicLengthAndSequence) {
  TestBus tb;
  Listener l = tb.listen("#");
  Publisher sut = tb.bus().publisher();
  ASSERT_EQ(sut.publish("first/long/topic/name", "0123456789abcdef").status, PublishStatus::kOk);
  const std::byte* old_bytes = nullptr;
  {
    auto old = l.try_receive();
    ASSERT_TRUE(old.has_value());
    old_bytes = old->payload().data();
  }

  ASSERT_EQ(sut.publish("b", "z").status, PublishStatus::kOk);
  auto fresh = l.try_receive();

  ASSERT_TRUE(fresh.has_value());
  EXPECT_EQ(fresh->payload().data(), old_bytes) << "the pool is a stack: the chunk is reused";
  EXPECT_EQ(fresh->topic(), "b");
  EXPECT_EQ(fresh->payload().size(), 1U);
  EXPECT_EQ(fresh->payload_text(), "z");
  EXPECT_EQ(fresh->sequence(), 2U);
  EXPECT_EQ(fresh->publisher_id(), sut.id());
}

TEST(PoolReuse, LoanDroppedUnpublishedReturnsItsChunk) {
  TestBus tb;
  Publisher sut = tb.bus().publisher();
  {
    auto loan = sut.loan(kSmallPayload);
    ASSERT_TRUE(loan.has_value());
    ASSERT_EQ(tb.free_chunks(0), kSmallCount - 1);
  }

  EXPECT_EQ(tb.free_chunks(0), kSmallCount);
}

TEST(PoolReuse, LoanPublishedToNobodyReturnsItsChunk) {
  TestBus tb;
  Publisher sut = tb.bus().publisher();
  auto loan = sut.loan(4);
  ASSERT_TRUE(loan.has_value());

  const PublishResult r = sut.publish("nobody/here", std::move(loan).value());

  EXPECT_EQ(r.status, PublishStatus::kNoListeners);
  EXPECT_EQ(tb.free_chunks(0), kSmallCount);
}

TEST(PoolReuse, PublishToNobodyTakesNoChunk) {
  TestBus tb;
  Publisher sut = tb.bus().publisher();

  const PublishResult r = sut.publish("nobody/here", "x");

  EXPECT_EQ(r.status, PublishStatus::kNoListeners);
  EXPECT_EQ(tb.free_chunks(0), kSmallCount);
}

TEST(PoolReuse, ShrunkLoanIsReceivedWithItsShorterLength) {
  TestBus tb;
  Listener l = tb.listen("loan/t");
  Publisher sut = tb.bus().publisher();
  auto loan = sut.loan(40);
  ASSERT_TRUE(loan.has_value());
  ASSERT_EQ(loan->size(), 40U);
  for (std::size_t i = 0; i < 40; ++i) {
    loan->data()[i] = static_cast<std::byte>('a' + i % 26);
  }
  loan->shrink(5);

  ASSERT_EQ(sut.publish("loan/t", std::move(loan).value()).status, PublishStatus::kOk);
  auto s = l.try_receive();

  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->payload_text(), "abcde");
}

TEST(PoolReuse, MoveAssignedSampleReleasesTheChunkItHeld) {
  TestBus tb;
  Listener l = tb.listen("mv/t");
  Publisher pub = tb.bus().publisher();
  ASSERT_EQ(pub.publish("mv/t", "1").status, PublishStatus::kOk);
  ASSERT_EQ(pub.publish("mv/t", "2").status, PublishStatus::kOk);
  Sample sut = std::move(*l.try_receive());
  Sample second = std::move(*l.try_receive());

  sut = std::move(second);

  EXPECT_EQ(sut.payload_text(), "2");
  EXPECT_EQ(tb.free_chunks(0), kSmallCount - 1);
}

// --- size classes ----------------------------------------------------------------

// class_of_loan tells which class a loan of `size` bytes came from by the free
// counts inspect() reports, or -1 when the loan failed.
int class_of_loan(TestBus& tb, std::size_t size) {
  Publisher pub = tb.bus().publisher();
  auto loan = pub.loan(size);
  if (!loan) {
    return -1;
  }
  const auto pools = tb.bus().inspect().pools;
  for (std::size_t k = 0; k < pools.size(); ++k) {
    if (pools[k].free + 1 == pools[k].total) {
      return static_cast<int>(k);
    }
  }
  return -2;
}

TEST(PoolClass, OneBytePayloadUsesTheSmallestClass) {
  TestBus tb;

  EXPECT_EQ(class_of_loan(tb, 1), 0);
  EXPECT_EQ(tb.core().class_for(1), 0);
}

TEST(PoolClass, EmptyPayloadUsesTheSmallestClass) {
  TestBus tb;

  EXPECT_EQ(class_of_loan(tb, 0), 0);
}

TEST(PoolClass, PayloadOfExactlyTheClassMaximumStaysInThatClass) {
  TestBus tb;

  EXPECT_EQ(class_of_loan(tb, kSmallPayload), 0);
  EXPECT_EQ(class_of_loan(tb, kLargePayload), 1);
}

TEST(PoolClass, OneByteAboveTheClassMaximumGoesToTheNextClass) {
  TestBus tb;

  EXPECT_EQ(class_of_loan(tb, kSmallPayload + 1), 1);
  EXPECT_EQ(tb.core().class_for(kSmallPayload + 1), 1);
}

TEST(PoolClass, AboveTheLargestClassLoanIsPayloadTooLarge) {
  TestBus tb;
  Publisher sut = tb.bus().publisher();

  auto loan = sut.loan(kLargePayload + 1);

  ASSERT_FALSE(loan.has_value());
  EXPECT_EQ(loan.error().code, Errc::kPayloadTooLarge);
  EXPECT_EQ(tb.core().class_for(kLargePayload + 1), -1);
}

TEST(PoolClass, AboveTheLargestClassPublishIsPayloadTooLarge) {
  TestBus tb;
  Listener l = tb.listen("big/t");
  Publisher sut = tb.bus().publisher();

  const PublishResult r = sut.publish("big/t", std::string(kLargePayload + 1, 'x'));

  EXPECT_EQ(r.status, PublishStatus::kPayloadTooLarge);
  EXPECT_FALSE(l.try_receive().has_value());
}

TEST(PoolClass, PublishedPayloadTakesItsChunkFromTheChosenClass) {
  TestBus tb;
  Listener l = tb.listen("cls/t");
  Publisher sut = tb.bus().publisher();

  ASSERT_EQ(sut.publish("cls/t", std::string(kSmallPayload + 1, 'x')).status, PublishStatus::kOk);

  EXPECT_EQ(tb.free_chunks(0), kSmallCount);
  EXPECT_EQ(tb.free_chunks(1), kLargeCount - 1);
}

// --- fan-out -----------------------------------------------------------------------

TEST(PoolFanOut, OnePublishToFourListenersUsesOneChunk) {
  TestBus tb;
  std::vector<Listener> ls;
  for (int i = 0; i < 4; ++i) {
    ls.push_back(tb.listen("fan/t"));
  }
  Publisher sut = tb.bus().publisher();

  const PublishResult r = sut.publish("fan/t", "shared");

  EXPECT_EQ(r.delivered, 4U);
  EXPECT_EQ(tb.free_chunks(0), kSmallCount - 1);
  EXPECT_EQ(tb.free_chunks(1), kLargeCount);
}

TEST(PoolFanOut, EveryListenerReadsTheSameChunk) {
  TestBus tb;
  std::vector<Listener> ls;
  for (int i = 0; i < 4; ++i) {
    ls.push_back(tb.listen("fan/t"));
  }
  Publisher pub = tb.bus().publisher();
  ASSERT_EQ(pub.publish("fan/t", "shared").status, PublishStatus::kOk);

  std::vector<Sample> got;
  for (auto& l : ls) {
    auto s = l.try_receive();
    ASSERT_TRUE(s.has_value());
    got.push_back(std::move(*s));
  }

  for (const auto& s : got) {
    EXPECT_EQ(s.payload_text(), "shared");
    EXPECT_EQ(s.payload().data(), got.front().payload().data()) << "shared, not copied";
  }
  EXPECT_EQ(tb.free_chunks(0), kSmallCount - 1);
}

TEST(PoolFanOut, ChunkReturnsOnlyWhenTheLastSampleIsReleased) {
  TestBus tb;
  std::vector<Listener> ls;
  for (int i = 0; i < 4; ++i) {
    ls.push_back(tb.listen("fan/t"));
  }
  Publisher pub = tb.bus().publisher();
  ASSERT_EQ(pub.publish("fan/t", "shared").status, PublishStatus::kOk);
  std::vector<Sample> got;
  for (auto& l : ls) {
    got.push_back(std::move(*l.try_receive()));
  }
  std::vector<std::uint32_t> free_after_release;

  while (!got.empty()) {
    got.pop_back();
    free_after_release.push_back(tb.free_chunks(0));
  }

  const std::uint32_t held = kSmallCount - 1;
  EXPECT_EQ(free_after_release, (std::vector<std::uint32_t>{held, held, held, kSmallCount}));
}

TEST(PoolFanOut, PausedListenerDoesNotHoldAReference) {
  TestBus tb;
  Listener a = tb.listen("fan/t");
  Listener paused = tb.listen("fan/t");
  ASSERT_TRUE(paused.pause());
  Publisher pub = tb.bus().publisher();
  ASSERT_EQ(pub.publish("fan/t", "x").delivered, 1U);

  { auto s = a.try_receive(); }

  EXPECT_EQ(tb.free_chunks(0), kSmallCount);
}

}  // namespace
}  // namespace ipcbus
