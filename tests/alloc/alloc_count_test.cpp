// alloc_count_test.cpp: the data path allocates nothing. Every global
// allocation and deallocation function is replaced by one that counts while
// counting is switched on; each test warms its routes up with counting off,
// then runs many publish/receive cycles with it on and expects zero.
//
// The counters are global (not thread-local) so that the two-thread test
// also counts the publisher thread.
//
// LIMIT: only operator new/delete are counted; a direct malloc() on the data
// path would pass unseen (the library calls none, by review, not by test).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ipcbus/bus.hpp"

namespace {

// relaxed, for all three: plain counters and a switch read by one thread at
// a time around the measured region; the test reads them after a join or on
// the same thread.
std::atomic<bool> g_counting{false};
std::atomic<std::uint64_t> g_news{0};
std::atomic<std::uint64_t> g_deletes{0};

void note_new() {
  if (g_counting.load(std::memory_order_relaxed)) {
    g_news.fetch_add(1, std::memory_order_relaxed);
  }
}
void note_delete(void* p) {
  if (p != nullptr && g_counting.load(std::memory_order_relaxed)) {
    g_deletes.fetch_add(1, std::memory_order_relaxed);
  }
}

// Out of line: inlined into a caller, GCC pairs the free() below with a
// new-expression and warns of a mismatched deallocation.
[[gnu::noinline]] void* counted_alloc(std::size_t size, std::size_t align, bool nothrow) {
  note_new();
  size = size == 0 ? 1 : size;
  void* p = nullptr;
  if (align <= alignof(std::max_align_t)) {
    p = std::malloc(size);
  } else if (posix_memalign(&p, align, size) != 0) {
    p = nullptr;
  }
  if (p == nullptr && !nothrow) {
    throw std::bad_alloc();
  }
  return p;
}
[[gnu::noinline]] void counted_free(void* p) {
  note_delete(p);
  std::free(p);
}

constexpr std::size_t kPlain = alignof(std::max_align_t);
std::size_t align_of(std::align_val_t a) {
  return static_cast<std::size_t>(a);
}

// Counting is on inside one Counted's life. What it saw is read after.
class Counted {
 public:
  Counted() {
    g_news.store(0, std::memory_order_relaxed);
    g_deletes.store(0, std::memory_order_relaxed);
    g_counting.store(true, std::memory_order_seq_cst);  // seq_cst: fence the region's start
  }
  ~Counted() { stop(); }
  Counted(const Counted&) = delete;
  Counted& operator=(const Counted&) = delete;
  void stop() { g_counting.store(false, std::memory_order_seq_cst); }  // seq_cst: its end
  static std::uint64_t news() { return g_news.load(std::memory_order_relaxed); }
  static std::uint64_t deletes() { return g_deletes.load(std::memory_order_relaxed); }
};

}  // namespace

void* operator new(std::size_t n) {
  return counted_alloc(n, kPlain, false);
}
void* operator new[](std::size_t n) {
  return counted_alloc(n, kPlain, false);
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return counted_alloc(n, kPlain, true);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return counted_alloc(n, kPlain, true);
}
void* operator new(std::size_t n, std::align_val_t a) {
  return counted_alloc(n, align_of(a), false);
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return counted_alloc(n, align_of(a), false);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted_alloc(n, align_of(a), true);
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted_alloc(n, align_of(a), true);
}
void operator delete(void* p) noexcept {
  counted_free(p);
}
void operator delete[](void* p) noexcept {
  counted_free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  counted_free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  counted_free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  counted_free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  counted_free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  counted_free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  counted_free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  counted_free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  counted_free(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  counted_free(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  counted_free(p);
}

namespace ipcbus {
namespace {

constexpr int kCycles = 10000;
constexpr int kWarmup = 64;
const char* const kTopics[] = {"plant/line1/temp", "plant/line2/temp", "plant/line1/pressure",
                               "alarms/high"};
constexpr int kTopicCount = 4;

// Keeps the compiler from removing an allocation whose result goes unused.
void escape(const void* p) {
  asm volatile("" : : "g"(p) : "memory");
}

// HangGuard aborts the binary, rather than block CI, if a test outlives
// `bound` (a lost wake-up would make each receive_for wait its full timeout).
// Its thread is made with the fixture, before anything is counted, and its
// wait allocates nothing.
class HangGuard {
 public:
  explicit HangGuard(std::chrono::seconds bound)
      : thread_([this, bound] {
          std::unique_lock<std::mutex> lock(mutex_);
          if (!cv_.wait_for(lock, bound, [this] { return done_; })) {
            std::fprintf(stderr, "alloc test still running after %lld s: aborting\n",
                         static_cast<long long>(bound.count()));
            std::abort();
          }
        }) {}
  HangGuard(const HangGuard&) = delete;
  HangGuard& operator=(const HangGuard&) = delete;
  ~HangGuard() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// A bus of its own for each test, removed at the end.
class AllocCount : public ::testing::Test {
 protected:
  AllocCount() : guard_(std::chrono::seconds(120)) {
    name_ = "alloc-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    OpenOptions o;
    o.name = name_;
    o.config.pools = {{256, 256}, {4096, 64}};
    o.config.max_listeners = 8;
    o.config.ring_capacity = 64;
    o.config.trie_nodes = 128;
    o.config.subscriptions = 128;
    o.config.max_processes = 8;
    auto opened = Bus::open(o);
    EXPECT_TRUE(opened) << opened.error().message;
    bus_.emplace(std::move(opened.value()));
  }
  ~AllocCount() override { (void)Bus::destroy(name_); }

  Listener make_listener(Overflow overflow = Overflow::kDropOldest,
                         WaitStrategy wait = WaitStrategy::kHybrid, std::uint32_t capacity = 0) {
    ListenerOptions lo;
    lo.overflow = overflow;
    lo.wait = wait;
    lo.capacity = capacity;
    auto l = bus_->listen(lo);
    EXPECT_TRUE(l) << l.error().message;
    EXPECT_TRUE(l->subscribe("plant/+/temp"));
    EXPECT_TRUE(l->subscribe("plant/line1/#"));
    EXPECT_TRUE(l->subscribe("alarms/#"));
    return std::move(l.value());
  }

  HangGuard guard_;
  std::string name_;
  std::optional<Bus> bus_;
};

TEST(AllocCounter, CountsAnAllocationWhenOn) {
  std::uint64_t news = 0;
  std::uint64_t deletes = 0;
  {
    Counted counted;
    {
      std::string s(100, 'x');
      escape(s.data());
    }
    counted.stop();
    news = Counted::news();
    deletes = Counted::deletes();
  }

  EXPECT_GE(news, 1U);
  EXPECT_GE(deletes, 1U);
}

TEST(AllocCounter, CountsNothingWhenOff) {
  {
    std::string s(100, 'x');
    escape(s.data());
  }
  Counted counted;
  counted.stop();

  EXPECT_EQ(Counted::news(), 0U);
}

TEST_F(AllocCount, CountsTheLibrarysOwnAllocations) {
  std::uint64_t news = 0;

  {
    Counted counted;
    Publisher publisher = bus_->publisher();  // sizes its route cache: allocates
    counted.stop();
    news = Counted::news();
  }

  EXPECT_GE(news, 1U) << "allocations made inside libipcbus must reach the counter";
}

TEST_F(AllocCount, PublishTryReceiveAndReleaseAllocateNothing) {
  Listener sut = make_listener();
  Publisher publisher = bus_->publisher();
  std::byte payload[200];
  std::memset(payload, 0x5a, sizeof(payload));
  for (int i = 0; i < kWarmup; ++i) {
    (void)publisher.publish(kTopics[i % kTopicCount], std::span<const std::byte>(payload));
    (void)sut.try_receive();
  }
  const std::uint64_t misses = publisher.route_cache_misses();
  int delivered = 0;
  int received = 0;

  Counted counted;
  for (int i = 0; i < kCycles; ++i) {
    const PublishResult r =
        publisher.publish(kTopics[i % kTopicCount], std::span<const std::byte>(payload));
    delivered += static_cast<int>(r.delivered);
    std::optional<Sample> s = sut.try_receive();
    received += s && s->payload().size() == sizeof(payload) ? 1 : 0;
  }
  counted.stop();

  EXPECT_EQ(Counted::news(), 0U);
  EXPECT_EQ(Counted::deletes(), 0U);
  EXPECT_EQ(delivered, kCycles);
  EXPECT_EQ(received, kCycles);
  EXPECT_EQ(publisher.route_cache_misses(), misses) << "the measured cycles ran on cached routes";
}

TEST_F(AllocCount, LoanAndPublishLoanAllocateNothing) {
  Listener sut = make_listener();
  Publisher publisher = bus_->publisher();
  auto cycle = [&](int i) {
    Result<Loan> loan = publisher.loan(1000);
    if (!loan) {
      return 0;
    }
    std::memset(loan->data().data(), i & 0xFF, loan->size());
    loan->shrink(500);
    const PublishResult r = publisher.publish(kTopics[i % kTopicCount], std::move(*loan));
    std::optional<Sample> s = sut.try_receive();
    return r.delivered == 1 && s && s->payload().size() == 500 ? 1 : 0;
  };
  for (int i = 0; i < kWarmup; ++i) {
    (void)cycle(i);
  }
  int good = 0;

  Counted counted;
  for (int i = 0; i < kCycles; ++i) {
    good += cycle(i);
  }
  counted.stop();

  EXPECT_EQ(Counted::news(), 0U);
  EXPECT_EQ(Counted::deletes(), 0U);
  EXPECT_EQ(good, kCycles);
}

TEST_F(AllocCount, ReceiveForWokenByAnotherThreadAllocatesNothing) {
  Listener sut = make_listener(Overflow::kDropOldest, WaitStrategy::kSleep);
  Publisher publisher = bus_->publisher();
  for (int i = 0; i < kWarmup; ++i) {
    (void)publisher.publish(kTopics[i % kTopicCount], "warm");
    (void)sut.try_receive();
  }
  // The publisher thread sends event i+1 only once event i was taken, so the
  // listener mostly finds its ring empty and sleeps in receive_for. The
  // thread is made before counting starts and, since its exit frees its
  // state, ends only after counting stopped. A missed event ends both loops
  // (taken jumps to the end) instead of waiting out every later timeout.
  std::atomic<int> taken{0};
  std::atomic<int> phase{0};  // 1: counting is on; 2: the producer is done; 3: counting is off
  int published = 0;
  std::thread producer([&] {
    // acquire, for every load of phase and taken: pairs with the release
    // stores of the other thread, whose earlier writes we then see.
    while (phase.load(std::memory_order_acquire) < 1) {
      std::this_thread::yield();
    }
    for (int i = 0; i < kCycles && taken.load(std::memory_order_acquire) <= kCycles; ++i) {
      while (taken.load(std::memory_order_acquire) < i) {
        std::this_thread::yield();
      }
      published += publisher.publish(kTopics[i % kTopicCount], "tick").delivered == 1 ? 1 : 0;
    }
    // release: `published` is visible to the main thread once it sees 2.
    phase.store(2, std::memory_order_release);
    while (phase.load(std::memory_order_acquire) < 3) {
      std::this_thread::yield();
    }
  });
  int received = 0;

  Counted counted;
  // release, for every store of phase and taken: see the producer's acquires.
  phase.store(1, std::memory_order_release);
  for (int i = 0; i < kCycles; ++i) {
    std::optional<Sample> s = sut.receive_for(std::chrono::seconds(10));
    if (!s) {
      taken.store(kCycles + 1, std::memory_order_release);
      break;
    }
    received += s->payload_text() == "tick" ? 1 : 0;
    taken.fetch_add(1, std::memory_order_release);
  }
  while (phase.load(std::memory_order_acquire) < 2) {
    std::this_thread::yield();
  }
  counted.stop();
  phase.store(3, std::memory_order_release);
  producer.join();

  EXPECT_EQ(Counted::news(), 0U);
  EXPECT_EQ(Counted::deletes(), 0U);
  EXPECT_EQ(received, kCycles);
  EXPECT_EQ(published, kCycles);
  EXPECT_GT(sut.counters().wakeups, 0U) << "the listener never slept, the sleep path went untested";
}

TEST_F(AllocCount, FanOutToFourListenersAllocatesNothing) {
  std::vector<Listener> sut;
  for (int i = 0; i < 4; ++i) {
    sut.push_back(make_listener());
  }
  Publisher publisher = bus_->publisher();
  std::byte payload[64] = {};
  for (int i = 0; i < kWarmup; ++i) {
    (void)publisher.publish(kTopics[i % kTopicCount], std::span<const std::byte>(payload));
    for (Listener& l : sut) {
      (void)l.try_receive();
    }
  }
  int delivered = 0;
  int received = 0;

  Counted counted;
  for (int i = 0; i < kCycles; ++i) {
    delivered += static_cast<int>(
        publisher.publish(kTopics[i % kTopicCount], std::span<const std::byte>(payload)).delivered);
    for (Listener& l : sut) {
      received += l.try_receive() ? 1 : 0;
    }
  }
  counted.stop();

  EXPECT_EQ(Counted::news(), 0U);
  EXPECT_EQ(Counted::deletes(), 0U);
  EXPECT_EQ(delivered, 4 * kCycles);
  EXPECT_EQ(received, 4 * kCycles);
}

TEST_F(AllocCount, FullRingDropPoliciesAllocateNothing) {
  Listener oldest = make_listener(Overflow::kDropOldest, WaitStrategy::kHybrid, 8);
  Listener newest = make_listener(Overflow::kDropNewest, WaitStrategy::kHybrid, 8);
  Publisher publisher = bus_->publisher();
  for (int i = 0; i < kWarmup; ++i) {
    (void)publisher.publish(kTopics[i % kTopicCount], "x");
  }

  Counted counted;
  for (int i = 0; i < kCycles; ++i) {
    (void)publisher.publish(kTopics[i % kTopicCount], "x");
  }
  counted.stop();

  EXPECT_EQ(Counted::news(), 0U);
  EXPECT_EQ(Counted::deletes(), 0U);
  EXPECT_EQ(oldest.counters().dropped_oldest, static_cast<std::uint64_t>(kWarmup + kCycles - 8));
  EXPECT_EQ(newest.counters().dropped_newest, static_cast<std::uint64_t>(kWarmup + kCycles - 8));
}

TEST_F(AllocCount, PublishAfterTrieChangeRecomputesRouteWithoutAllocating) {
  Listener sut = make_listener();
  Listener other = make_listener();
  Publisher publisher = bus_->publisher();
  (void)publisher.publish(kTopics[0], "warm");
  (void)sut.try_receive();
  (void)other.try_receive();
  const std::uint64_t misses = publisher.route_cache_misses();
  std::uint64_t news = 0;
  int received = 0;
  constexpr int kChanges = 100;

  for (int i = 0; i < kChanges; ++i) {
    // The trie changes (allocation allowed: control path), then one publish
    // must recompute its route (counted).
    const bool subscribed = (i % 2) == 0;
    EXPECT_TRUE(subscribed ? other.subscribe("unrelated/" + std::to_string(i % 4))
                           : other.unsubscribe("unrelated/" + std::to_string((i - 1) % 4)));
    Counted counted;
    const PublishResult r = publisher.publish(kTopics[0], "after change");
    std::optional<Sample> s = sut.try_receive();
    std::optional<Sample> t = other.try_receive();
    received += r.delivered == 2 && s && t ? 1 : 0;
    s.reset();
    t.reset();
    counted.stop();
    news += Counted::news() + Counted::deletes();
  }

  EXPECT_EQ(news, 0U);
  EXPECT_EQ(received, kChanges);
  EXPECT_EQ(publisher.route_cache_misses(), misses + kChanges);
}

}  // namespace
}  // namespace ipcbus
