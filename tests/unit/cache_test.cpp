// cache_test.cpp: unit tests of the per-process chunk cache (ProcessEntry::
// cache): a process reuses what it freed without the shared bitmap, a full
// cache goes back in one pass, a process whose pool ran dry takes what others
// cache, leaving the bus or dying gives it all back, and no chunk is ever
// handed to two takers.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core.hpp"
#include "segment.hpp"
#include "test_bus.hpp"

namespace ipcbus {
namespace {

using test::TestBus;

// Class 0: kCount chunks of 64 bytes, so a process caches kCount / 16 of
// them; class 1 is too small to be cached at all.
constexpr std::uint32_t kCount = 64;
constexpr std::uint32_t kSlots = kCount / 16;

Config cache_config(std::uint32_t count = kCount) {
  Config c = test::small_config();
  c.pools = {{64, count}, {256, 8}};
  return c;
}

// EntryCore is a BusCore with a process entry of its own, over a mapping of
// its own: to the pool, another process. Its destructor leaves the bus.
class EntryCore {
 public:
  explicit EntryCore(const std::string& name) : mapping_(test::map_existing(name)) {
    core_ = std::make_unique<detail::BusCore>(
        name, mapping_.base, static_cast<std::size_t>(mapping_.bytes), detail::kNone, mapping_.fd);
    const std::uint32_t index = core_->register_process();
    if (index == detail::kNone) {
      throw std::runtime_error("no process entry free");
    }
    core_->set_process(index);
  }
  ~EntryCore() { core_.reset(); }
  EntryCore(const EntryCore&) = delete;
  EntryCore& operator=(const EntryCore&) = delete;

  detail::BusCore& core() { return *core_; }
  std::uint32_t index() const { return core_->process_index(); }

 private:
  detail::Mapping mapping_;
  std::unique_ptr<detail::BusCore> core_;
};

std::uint64_t holders_of(const detail::ChunkHeader* c) {
  // relaxed: the test reads a quiet bus.
  return c->holders.load(std::memory_order_relaxed);
}

// The bitmap's free bits of class 0, without the caches.
std::uint32_t bitmap_free(detail::BusCore& core) {
  const detail::PoolDesc& p = core.pool(0);
  std::uint32_t n = 0;
  for (std::uint32_t w = 0; w < (p.count + 63) / 64; ++w) {
    // relaxed: the test reads a quiet bus.
    n += static_cast<std::uint32_t>(
        __builtin_popcountll(core.bitmap()[p.bitmap_word + w].load(std::memory_order_relaxed)));
  }
  return n;
}

// Victim forks a process that runs `body`; body calls hold(ok) once it is
// set up, which tells the parent and waits there for the SIGKILL. The
// constructor returns once the victim holds (ready()) or failed.
class Victim {
 public:
  using Hold = std::function<void(bool)>;
  explicit Victim(const std::function<void(const Hold&)>& body) {
    int fds[2];
    if (pipe(fds) != 0) {
      return;
    }
    pid_ = fork();
    if (pid_ == 0) {
      close(fds[0]);
      const int out = fds[1];
      body([out](bool ok) {
        const char byte = ok ? 1 : 0;
        (void)!write(out, &byte, 1);
        for (;;) {
          pause();
        }
      });
      _exit(1);  // the body returned without holding
    }
    close(fds[1]);
    char byte = 0;
    ready_ = pid_ > 0 && read(fds[0], &byte, 1) == 1 && byte == 1;
    close(fds[0]);
  }
  ~Victim() {
    if (pid_ > 0 && !reaped_) {
      (void)kill_and_reap();
    }
  }
  Victim(const Victim&) = delete;
  Victim& operator=(const Victim&) = delete;

  bool ready() const { return ready_; }
  // kill_and_reap sends SIGKILL and waits for the victim; true if that
  // signal is what ended it.
  bool kill_and_reap() {
    int status = 0;
    reaped_ = kill(pid_, SIGKILL) == 0 && waitpid(pid_, &status, 0) == pid_;
    return reaped_ && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  }

 private:
  pid_t pid_ = -1;
  bool ready_ = false;
  bool reaped_ = false;
};

TEST(Cache, AChunkFreedInAProcessIsTakenAgainFromItsCache) {
  TestBus tb(cache_config());
  EntryCore a(tb.name());
  detail::ChunkHeader* c = a.core().take_chunk(0);
  ASSERT_NE(c, nullptr);

  a.core().release_own(c);

  EXPECT_EQ(holders_of(c), detail::stash_word(a.index()));
  EXPECT_TRUE(detail::is_cached(holders_of(c)));
  EXPECT_EQ(detail::taker_of(holders_of(c)), a.index());
  EXPECT_EQ(bitmap_free(tb.core()), kCount - 1);  // not in the bitmap...
  EXPECT_EQ(tb.free_chunks(0), kCount);           // ...but counted free
  detail::ChunkHeader* again = a.core().take_chunk(0);
  EXPECT_EQ(again, c);
  EXPECT_EQ(holders_of(again), detail::taker_word(a.index()));
  EXPECT_EQ(tb.free_chunks(0), kCount - 1);
  a.core().release_own(again);
}

TEST(Cache, ASampleReleasedByAListenerGoesToItsProcesssCache) {
  TestBus tb(cache_config());
  Listener l = tb.listen("t");
  Publisher pub = tb.bus().publisher();
  ASSERT_TRUE(pub.publish("t", "x").ok());
  std::optional<Sample> s = l.try_receive();
  ASSERT_TRUE(s.has_value());

  s.reset();

  EXPECT_EQ(bitmap_free(tb.core()), kCount - 1);
  EXPECT_EQ(tb.free_chunks(0), kCount);
  const BusInfo info = tb.bus().inspect();
  for (const ProcessInfo& p : info.processes) {
    EXPECT_EQ(p.chunks, 0U) << "a cached chunk is not a chunk in use";
  }
  EXPECT_TRUE(pub.publish("t", "y").ok());  // and the next publish takes it
  EXPECT_EQ(bitmap_free(tb.core()), kCount - 1);
}

TEST(Cache, AFullCacheGoesBackToTheBitmapInOnePass) {
  TestBus tb(cache_config());
  EntryCore a(tb.name());
  std::vector<detail::ChunkHeader*> held;
  for (std::uint32_t i = 0; i < kSlots + 1; ++i) {
    held.push_back(a.core().take_chunk(0));
    ASSERT_NE(held.back(), nullptr);
  }
  for (std::uint32_t i = 0; i < kSlots; ++i) {
    a.core().release_own(held[i]);
  }
  ASSERT_EQ(bitmap_free(tb.core()), kCount - kSlots - 1);

  a.core().release_own(held[kSlots]);  // one more than the cache holds

  EXPECT_EQ(bitmap_free(tb.core()), kCount - 1);  // the first kSlots went back
  EXPECT_TRUE(detail::is_cached(holders_of(held[kSlots])));
  for (std::uint32_t i = 0; i < kSlots; ++i) {
    EXPECT_EQ(holders_of(held[i]), 0U) << "chunk " << i;
  }
  EXPECT_EQ(tb.free_chunks(0), kCount);
}

TEST(Cache, APoolTooSmallToSpareChunksKeepsNoCache) {
  TestBus tb(cache_config());
  EntryCore a(tb.name());
  detail::ChunkHeader* c = a.core().take_chunk(1);
  ASSERT_NE(c, nullptr);

  a.core().release_own(c);

  EXPECT_EQ(holders_of(c), 0U);
  EXPECT_EQ(tb.free_chunks(1), 8U);
}

TEST(Cache, AProcessWhosePoolRanDryTakesWhatAnotherCaches) {
  TestBus tb(cache_config());
  EntryCore a(tb.name());
  EntryCore b(tb.name());
  std::vector<detail::ChunkHeader*> held;
  for (std::uint32_t i = 0; i < kCount; ++i) {
    held.push_back(a.core().take_chunk(0));
    ASSERT_NE(held.back(), nullptr);
  }
  std::set<std::uint32_t> cached;  // by reference: a and b map at other addresses
  for (auto it = held.end() - kSlots; it != held.end(); ++it) {
    cached.insert((*it)->self_ref);
    a.core().release_own(*it);
  }
  ASSERT_EQ(bitmap_free(tb.core()), 0U);
  held.resize(kCount - kSlots);

  std::vector<detail::ChunkHeader*> stolen;
  std::set<std::uint32_t> stolen_refs;
  for (std::uint32_t i = 0; i < kSlots; ++i) {
    detail::ChunkHeader* c = b.core().take_chunk(0);
    ASSERT_NE(c, nullptr) << "steal " << i;
    EXPECT_EQ(holders_of(c), detail::taker_word(b.index()));
    stolen.push_back(c);
    stolen_refs.insert(c->self_ref);
  }
  EXPECT_EQ(stolen_refs, cached);
  EXPECT_EQ(b.core().take_chunk(0), nullptr);  // now the pool is truly empty
  EXPECT_EQ(a.core().take_chunk(0), nullptr);  // and a's stale slots name nothing free
  EXPECT_EQ(tb.free_chunks(0), 0U);

  for (detail::ChunkHeader* c : stolen) {
    b.core().release_own(c);
  }
  for (detail::ChunkHeader* c : held) {
    a.core().release_own(c);
  }
  EXPECT_EQ(tb.free_chunks(0), kCount);
}

TEST(Cache, LeavingTheBusReturnsTheCacheToTheBitmap) {
  TestBus tb(cache_config());
  {
    EntryCore a(tb.name());
    std::vector<detail::ChunkHeader*> held;
    for (std::uint32_t i = 0; i < kSlots; ++i) {
      held.push_back(a.core().take_chunk(0));
    }
    for (detail::ChunkHeader* c : held) {
      a.core().release_own(c);
    }
    ASSERT_EQ(bitmap_free(tb.core()), kCount - kSlots);
  }

  EXPECT_EQ(bitmap_free(tb.core()), kCount);
  EXPECT_TRUE(tb.core().check().empty());
}

TEST(Cache, CrashCleanupFreesTheCacheOfAProcessKilledBySigkill) {
  TestBus tb(cache_config());
  Victim victim([&tb](const Victim::Hold& hold) {
    EntryCore a(tb.name());
    std::vector<detail::ChunkHeader*> held;
    for (std::uint32_t i = 0; i < kSlots + 2; ++i) {
      held.push_back(a.core().take_chunk(0));
    }
    for (std::uint32_t i = 0; i < kSlots; ++i) {
      a.core().release_own(held[i]);  // cached; the last two stay loaned
    }
    hold(true);
  });
  ASSERT_TRUE(victim.ready());
  ASSERT_EQ(bitmap_free(tb.core()), kCount - kSlots - 2);
  ASSERT_EQ(tb.free_chunks(0), kCount - 2);

  ASSERT_TRUE(victim.kill_and_reap());
  EntryCore reclaimer(tb.name());  // a core with the segment's file, to probe locks
  const std::uint32_t reclaimed = reclaimer.core().reclaim_dead(nullptr);

  EXPECT_EQ(reclaimed, 1U);
  EXPECT_EQ(bitmap_free(tb.core()), kCount);
  EXPECT_EQ(tb.free_chunks(0), kCount);
  EXPECT_TRUE(tb.core().check().empty());
}

// listening_victim forks a Victim that attaches to bus `name` and holds one
// listener of `filter`: the events published to it queue up in its ring.
Victim listening_victim(const std::string& name, const std::string& filter) {
  return Victim([&name, &filter](const Victim::Hold& hold) {
    OpenOptions o;
    o.name = name;
    o.create = false;
    auto bus = Bus::open(o);
    auto listener = bus ? bus->listen({}) : Result<Listener>(Error{Errc::kInvalidArgument, ""});
    hold(listener && listener->subscribe(filter));
  });
}

TEST(Cache, CrashCleanupPutsWhatItFreesForTheDeadInTheBitmapNotInItsOwnCache) {
  TestBus tb(cache_config());
  Victim victim = listening_victim(tb.name(), "dead/queue");
  ASSERT_TRUE(victim.ready());
  Publisher pub = tb.bus().publisher();
  for (int i = 0; i < 6; ++i) {
    ASSERT_EQ(pub.publish("dead/queue", "x").status, PublishStatus::kOk);
  }
  ASSERT_EQ(bitmap_free(tb.core()), kCount - 6);

  ASSERT_TRUE(victim.kill_and_reap());
  EntryCore reclaimer(tb.name());
  ASSERT_EQ(reclaimer.core().reclaim_dead(nullptr), 1U);

  EXPECT_EQ(bitmap_free(tb.core()), kCount) << "the reclaimer kept some in its cache";
  EXPECT_TRUE(tb.core().check().empty());
}

// What crash cleanup reports for a killed listener counts the events queued
// in its ring, and the bus's error log counts the reclaim.
TEST(Cache, ReclaimOfAKilledListenerCountsItsQueuedEventsAndIsInTheErrorLog) {
  TestBus tb(cache_config());
  Victim victim = listening_victim(tb.name(), "dead/counted");
  ASSERT_TRUE(victim.ready());
  Publisher pub = tb.bus().publisher();
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(pub.publish("dead/counted", "x").status, PublishStatus::kOk);
  }

  ASSERT_TRUE(victim.kill_and_reap());
  EntryCore reclaimer(tb.name());
  CleanupReport report;
  ASSERT_EQ(reclaimer.core().reclaim_dead(&report), 1U);

  EXPECT_EQ(report.listeners, 1U);
  EXPECT_EQ(report.chunks, 5U) << "the queued events' references were dropped uncounted";
  const BusInfo info = tb.bus().inspect();
  EXPECT_EQ(info.cleanup.chunks, 5U);
  const auto logged = std::find_if(info.errors.begin(), info.errors.end(),
                                   [](const ErrorLogEntry& e) { return e.kind == "reclaim"; });
  ASSERT_NE(logged, info.errors.end()) << "no reclaim record in the error log";
  EXPECT_EQ(logged->count, 1U);
}

// Two "processes" with two threads each take, hold a few and return chunks
// of a pool that runs dry, so that chunks pass through both caches, the
// bitmap and steals: no chunk may be held by two at once, and all come back.
TEST(CacheConcurrency, NoChunkIsHandedToTwoTakersAcrossCachesAndSteals) {
  constexpr std::uint32_t kSmall = 32;  // a cache of 2 per process
  TestBus tb(cache_config(kSmall));
  EntryCore a(tb.name());
  EntryCore b(tb.name());
  constexpr int kRounds = 20000;
  constexpr std::size_t kHold = 10;  // 4 threads x 10 > 32: the pool runs dry
  std::vector<std::atomic<int>> owners(1U << 16);
  std::atomic<int> doubles{0};
  std::atomic<int> takes{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    detail::BusCore& core = t < 2 ? a.core() : b.core();
    threads.emplace_back([&core, &owners, &doubles, &takes, t] {
      std::vector<detail::ChunkHeader*> held;
      for (int i = 0; i < kRounds; ++i) {
        if (held.size() < kHold && ((i + t) % 3) != 0) {
          detail::ChunkHeader* c = core.take_chunk(0);
          if (c == nullptr) {
            std::this_thread::yield();
            continue;
          }
          // relaxed, for these: the counts are the check; the pool's orders
          // are under test.
          takes.fetch_add(1, std::memory_order_relaxed);
          if (owners[c->self_ref % owners.size()].fetch_add(1, std::memory_order_relaxed) != 0) {
            doubles.fetch_add(1, std::memory_order_relaxed);
          }
          held.push_back(c);
        } else if (!held.empty()) {
          detail::ChunkHeader* c = held.back();
          held.pop_back();
          owners[c->self_ref % owners.size()].fetch_sub(1, std::memory_order_relaxed);
          core.release_own(c);
        }
      }
      for (detail::ChunkHeader* c : held) {
        owners[c->self_ref % owners.size()].fetch_sub(1, std::memory_order_relaxed);
        core.release_own(c);
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }

  EXPECT_EQ(doubles.load(), 0);
  EXPECT_GT(takes.load(), kRounds);
  EXPECT_EQ(tb.free_chunks(0), kSmall);
  std::set<detail::ChunkHeader*> all;
  for (detail::ChunkHeader* c = a.core().take_chunk(0); c != nullptr; c = a.core().take_chunk(0)) {
    all.insert(c);
  }
  EXPECT_EQ(all.size(), kSmall);
  for (detail::ChunkHeader* c : all) {
    a.core().release_own(c);
  }
  EXPECT_TRUE(tb.core().check().empty());
}

}  // namespace
}  // namespace ipcbus
