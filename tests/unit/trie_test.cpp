// trie_test.cpp: unit tests of the topic trie (subscribe, unsubscribe, pruning,
// limits) and of the lock-free Matcher against ipcbus::filter_matches. The
// route cache built on the trie's version is tested in state_test.cpp.
//
// The randomised tests print their seed; set IPCBUS_TRIE_SEED to replay one.
#include "trie.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ipcbus/topic.hpp"
#include "test_bus.hpp"

namespace ipcbus {
namespace {

using test::TestBus;

std::uint32_t seed_for_test() {
  const char* env = std::getenv("IPCBUS_TRIE_SEED");
  const std::uint32_t seed = env != nullptr
                                 ? static_cast<std::uint32_t>(std::strtoul(env, nullptr, 10))
                                 : std::random_device{}();
  std::cout << "seed " << seed << " (IPCBUS_TRIE_SEED)\n";
  return seed;
}

// Random filters and topics over a small vocabulary, so that they overlap.
class Generator {
 public:
  explicit Generator(std::uint32_t seed) : rng_(seed) {}

  std::string level(bool first) {
    static const char* const kWords[] = {"a", "b", "c", "dd", "e", ""};
    if (first && rng_() % 10 == 0) {
      return "$s";
    }
    return kWords[rng_() % std::size(kWords)];
  }
  std::string topic() {
    std::string t;
    const std::uint32_t n = 1 + rng_() % 5;
    for (std::uint32_t i = 0; i < n; ++i) {
      t += (i == 0 ? "" : "/") + level(i == 0);
    }
    return t.empty() ? "a" : t;  // an empty topic name is invalid
  }
  std::string filter() {
    std::string f;
    const std::uint32_t n = 1 + rng_() % 5;
    for (std::uint32_t i = 0; i < n; ++i) {
      const std::uint32_t r = rng_() % 8;
      const std::string l = r == 0 ? "+" : (r == 1 && i + 1 == n) ? "#" : level(i == 0);
      f += (i == 0 ? "" : "/") + l;
    }
    return f.empty() ? "+" : f;
  }
  std::uint32_t below(std::uint32_t n) { return rng_() % n; }
  std::mt19937& rng() { return rng_; }

 private:
  std::mt19937 rng_;
};

// The number of trie nodes a set of filters needs: the root plus one node per
// distinct level prefix (a shared prefix is one node).
std::uint32_t nodes_for(const std::set<std::pair<std::uint32_t, std::string>>& subs) {
  std::set<std::string> prefixes;
  for (const auto& [listener, f] : subs) {
    for (std::size_t i = 0; i <= f.size(); ++i) {
      if (i == f.size() || f[i] == '/') {
        prefixes.insert(f.substr(0, i));  // levels hold no '/': the prefix names the levels
      }
    }
  }
  return 1 + static_cast<std::uint32_t>(prefixes.size());
}

Config roomy_config() {
  Config c = test::small_config();
  c.trie_nodes = 20000;
  c.subscriptions = 4096;
  return c;
}

// --- subscribe, unsubscribe, prune ------------------------------------------------

TEST(Trie, SubscribeThenUnsubscribeLeavesTheTrieEmpty) {
  TestBus tb;
  Listener sut = tb.listen("");
  ASSERT_TRUE(sut.subscribe("a/b/c"));
  ASSERT_EQ(tb.bus().inspect().trie_nodes_used, 4U);

  ASSERT_TRUE(sut.unsubscribe("a/b/c"));

  EXPECT_EQ(tb.bus().inspect().trie_nodes_used, 1U);
  EXPECT_EQ(tb.bus().inspect().subscriptions_used, 0U);
}

TEST(Trie, SharedPrefixesAreCountedOnce) {
  TestBus tb;
  Listener sut = tb.listen("");

  for (const char* f : {"a/b/c", "a/b/d", "a/+/c", "a/#"}) {
    ASSERT_TRUE(sut.subscribe(f)) << f;
  }

  // root, a, a/b, a/b/c, a/b/d, a/+, a/+/c, a/#
  EXPECT_EQ(tb.bus().inspect().trie_nodes_used, 8U);
  EXPECT_EQ(tb.bus().inspect().subscriptions_used, 4U);
}

TEST(Trie, TwoListenersOnOneFilterShareItsNodes) {
  TestBus tb;
  Listener a = tb.listen("x/y");

  Listener b = tb.listen("x/y");

  EXPECT_EQ(tb.bus().inspect().trie_nodes_used, 3U);
  EXPECT_EQ(tb.bus().inspect().subscriptions_used, 2U);
}

TEST(Trie, RandomFiltersGiveTheirMemoryBackWhenAllAreRemoved) {
  TestBus tb(roomy_config());
  Generator gen(seed_for_test());
  std::vector<Listener> ls;
  for (std::uint32_t i = 0; i < test::kMaxListeners; ++i) {
    ls.push_back(tb.listen(""));
  }
  std::set<std::pair<std::uint32_t, std::string>> held;
  for (int i = 0; i < 3000; ++i) {
    const std::uint32_t l = gen.below(test::kMaxListeners);
    const std::string f = gen.filter();
    ASSERT_TRUE(ls[l].subscribe(f)) << f;
    held.emplace(l, f);
  }
  ASSERT_EQ(tb.bus().inspect().subscriptions_used, held.size());
  ASSERT_EQ(tb.bus().inspect().trie_nodes_used, nodes_for(held));
  std::vector<std::pair<std::uint32_t, std::string>> order(held.begin(), held.end());
  std::shuffle(order.begin(), order.end(), gen.rng());

  for (std::size_t i = 0; i < order.size(); ++i) {
    ASSERT_TRUE(ls[order[i].first].unsubscribe(order[i].second)) << order[i].second;
    held.erase(order[i]);
    if (i % 500 == 0) {
      ASSERT_EQ(tb.bus().inspect().trie_nodes_used, nodes_for(held)) << "after " << i;
    }
  }

  EXPECT_EQ(tb.bus().inspect().trie_nodes_used, 1U);
  EXPECT_EQ(tb.bus().inspect().subscriptions_used, 0U);
}

TEST(Trie, ListenerMatchingThroughSeveralFiltersReceivesOnce) {
  TestBus tb;
  Listener sut = tb.listen("a/b");
  ASSERT_TRUE(sut.subscribe("a/+"));
  ASSERT_TRUE(sut.subscribe("a/#"));
  ASSERT_TRUE(sut.subscribe("#"));
  Publisher pub = tb.bus().publisher();

  const PublishResult r = pub.publish("a/b", "once");

  EXPECT_EQ(r.delivered, 1U);
  EXPECT_TRUE(sut.try_receive().has_value());
  EXPECT_FALSE(sut.try_receive().has_value());
}

TEST(Trie, UnsubscribePrunesOnlyTheEmptyBranch) {
  TestBus tb;
  Listener gone = tb.listen("s/x/y");
  Listener sibling = tb.listen("s/x/z");
  const std::uint32_t nodes_before = tb.bus().inspect().trie_nodes_used;
  Publisher pub = tb.bus().publisher();

  ASSERT_TRUE(gone.unsubscribe("s/x/y"));

  EXPECT_EQ(tb.bus().inspect().trie_nodes_used, nodes_before - 1);
  EXPECT_EQ(pub.publish("s/x/z", "still").delivered, 1U);
  EXPECT_EQ(pub.publish("s/x/y", "gone").status, PublishStatus::kNoListeners);
  EXPECT_TRUE(sibling.try_receive().has_value());
}

TEST(Trie, UnsubscribeOfALongerFilterKeepsItsPrefixFilter) {
  TestBus tb;
  Listener sut = tb.listen("a/b");
  ASSERT_TRUE(sut.subscribe("a/b/c"));
  Publisher pub = tb.bus().publisher();

  ASSERT_TRUE(sut.unsubscribe("a/b/c"));

  EXPECT_EQ(tb.bus().inspect().trie_nodes_used, 3U);
  EXPECT_EQ(pub.publish("a/b", "x").delivered, 1U);
  EXPECT_EQ(pub.publish("a/b/c", "x").status, PublishStatus::kNoListeners);
}

TEST(Trie, ResubscribingTheSameFilterIsIdempotent) {
  TestBus tb;
  Listener sut = tb.listen("same/f");
  const BusInfo before = tb.bus().inspect();

  ASSERT_TRUE(sut.subscribe("same/f"));

  const BusInfo after = tb.bus().inspect();
  EXPECT_EQ(after.subscriptions_used, 1U);
  EXPECT_EQ(after.trie_nodes_used, before.trie_nodes_used);
  EXPECT_EQ(after.trie_version, before.trie_version);
  EXPECT_EQ(sut.filters(), std::vector<std::string>{"same/f"});
  Publisher pub = tb.bus().publisher();
  EXPECT_EQ(pub.publish("same/f", "x").delivered, 1U);
}

TEST(Trie, OneUnsubscribeUndoesADoubleSubscribe) {
  TestBus tb;
  Listener sut = tb.listen("same/f");
  ASSERT_TRUE(sut.subscribe("same/f"));

  ASSERT_TRUE(sut.unsubscribe("same/f"));

  EXPECT_EQ(tb.bus().inspect().trie_nodes_used, 1U);
  EXPECT_TRUE(sut.filters().empty());
}

TEST(Trie, UnsubscribeOfAFilterNotHeldIsNotFound) {
  TestBus tb;
  Listener sut = tb.listen("held/f");

  const auto r = sut.unsubscribe("other/f");

  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kNotFound);
  EXPECT_EQ(tb.bus().inspect().subscriptions_used, 1U);
}

TEST(Trie, UnsubscribeOfAPrefixOfAHeldFilterIsNotFound) {
  TestBus tb;
  Listener sut = tb.listen("a/b/c");

  const auto r = sut.unsubscribe("a/b");

  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kNotFound);
  EXPECT_EQ(tb.bus().inspect().trie_nodes_used, 4U);
}

TEST(Trie, UnsubscribeOfAnotherListenersFilterIsNotFoundAndKeepsIt) {
  TestBus tb;
  Listener owner = tb.listen("theirs");
  Listener sut = tb.listen("");

  const auto r = sut.unsubscribe("theirs");

  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kNotFound);
  Publisher pub = tb.bus().publisher();
  EXPECT_EQ(pub.publish("theirs", "x").delivered, 1U);
}

TEST(Trie, SecondUnsubscribeIsNotFound) {
  TestBus tb;
  Listener sut = tb.listen("f");
  ASSERT_TRUE(sut.unsubscribe("f"));

  const auto r = sut.unsubscribe("f");

  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kNotFound);
}

TEST(Trie, FullTrieReturnsTrieFullWithNoPartialChange) {
  Config c = test::small_config();
  c.trie_nodes = 8;
  TestBus tb(c);
  Listener sut = tb.listen("a/b/c/d/e/f");  // root + 6 nodes: one left
  const BusInfo before = tb.bus().inspect();

  const auto r = sut.subscribe("x/y");

  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kTrieFull);
  const BusInfo after = tb.bus().inspect();
  EXPECT_EQ(after.trie_nodes_used, before.trie_nodes_used);
  EXPECT_EQ(after.subscriptions_used, before.subscriptions_used);
  EXPECT_EQ(after.trie_version, before.trie_version);
  EXPECT_EQ(sut.filters(), std::vector<std::string>{"a/b/c/d/e/f"});
}

TEST(Trie, FullTrieStillTakesAFilterThatFitsTheNodesLeft) {
  Config c = test::small_config();
  c.trie_nodes = 8;
  TestBus tb(c);
  Listener sut = tb.listen("a/b/c/d/e/f");
  ASSERT_FALSE(sut.subscribe("x/y"));

  const auto r = sut.subscribe("a/b/z");

  EXPECT_TRUE(r);
  EXPECT_EQ(tb.bus().inspect().trie_nodes_used, 8U);
  Publisher pub = tb.bus().publisher();
  EXPECT_EQ(pub.publish("a/b/c/d/e/f", "x").delivered, 1U);
}

TEST(Trie, NoFreeSubscriptionRecordReturnsTrieFull) {
  Config c = test::small_config();
  c.subscriptions = 2;
  TestBus tb(c);
  Listener sut = tb.listen("one");
  ASSERT_TRUE(sut.subscribe("two"));
  const std::uint32_t nodes = tb.bus().inspect().trie_nodes_used;

  const auto r = sut.subscribe("three");

  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kTrieFull);
  EXPECT_EQ(tb.bus().inspect().trie_nodes_used, nodes);
}

TEST(Trie, FilterLevelLongerThanMaxLevelBytesIsInvalid) {
  TestBus tb;
  Listener sut = tb.listen("");
  const std::string level(tb.bus().config().max_level_bytes + 1, 'q');

  const auto r = sut.subscribe("a/" + level);

  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kInvalidFilter);
  EXPECT_NE(r.error().message.find("max_level_bytes"), std::string::npos) << r.error().message;
  EXPECT_EQ(tb.bus().inspect().trie_nodes_used, 1U);
}

TEST(Trie, FilterLevelOfExactlyMaxLevelBytesIsAccepted) {
  TestBus tb;
  Listener sut = tb.listen("");
  const std::string level(tb.bus().config().max_level_bytes, 'q');

  const auto r = sut.subscribe("a/" + level);

  EXPECT_TRUE(r);
  Publisher pub = tb.bus().publisher();
  EXPECT_EQ(pub.publish("a/" + level, "x").delivered, 1U);
}

TEST(Trie, DollarTopicsAreNotMatchedByLeadingWildcards) {
  TestBus tb;
  Listener hash = tb.listen("#");
  Listener plus = tb.listen("+/x");
  Listener dollar = tb.listen("$SYS/#");
  Publisher pub = tb.bus().publisher();

  const PublishResult r = pub.publish("$SYS/x", "x");

  EXPECT_EQ(r.delivered, 1U);
  EXPECT_TRUE(dollar.try_receive().has_value());
  EXPECT_FALSE(hash.try_receive().has_value());
  EXPECT_FALSE(plus.try_receive().has_value());
}

TEST(Trie, VersionStaysEvenAndGrowsOnEveryChange) {
  TestBus tb;
  Listener sut = tb.listen("");
  const std::uint64_t v0 = tb.bus().inspect().trie_version;

  ASSERT_TRUE(sut.subscribe("v/1"));
  const std::uint64_t v1 = tb.bus().inspect().trie_version;
  ASSERT_TRUE(sut.unsubscribe("v/1"));
  const std::uint64_t v2 = tb.bus().inspect().trie_version;

  EXPECT_EQ(v0 % 2, 0U);
  EXPECT_EQ(v1 % 2, 0U);
  EXPECT_EQ(v2 % 2, 0U);
  EXPECT_LT(v0, v1);
  EXPECT_LT(v1, v2);
}

TEST(Trie, ClosingAListenerRemovesAllItsFilters) {
  TestBus tb;
  Listener sut = tb.listen("c/1");
  ASSERT_TRUE(sut.subscribe("c/2/+"));
  ASSERT_TRUE(sut.subscribe("#"));

  sut.close();

  EXPECT_EQ(tb.bus().inspect().trie_nodes_used, 1U);
  EXPECT_EQ(tb.bus().inspect().subscriptions_used, 0U);
}

TEST(Trie, InspectReportsTheFiltersEachListenerHolds) {
  TestBus tb;
  Listener sut = tb.listen("i/1");
  ASSERT_TRUE(sut.subscribe("i/+/#"));
  ASSERT_TRUE(sut.subscribe("//"));

  const BusInfo info = tb.bus().inspect();

  ASSERT_EQ(info.listeners.size(), 1U);
  const std::set<std::string> got(info.listeners[0].filters.begin(),
                                  info.listeners[0].filters.end());
  EXPECT_EQ(got, (std::set<std::string>{"i/1", "i/+/#", "//"}));
}

// --- the Matcher against the reference ---------------------------------------------

TEST(Matcher, AgreesWithFilterMatchesForRandomTopicsAndFilters) {
  TestBus tb(roomy_config());
  Generator gen(seed_for_test());
  std::vector<Listener> ls;
  std::vector<std::vector<std::string>> filters(test::kMaxListeners);
  for (std::uint32_t i = 0; i < test::kMaxListeners; ++i) {
    ls.push_back(tb.listen(""));
    for (int k = 0; k < 1 + static_cast<int>(gen.below(12)); ++k) {
      filters[i].push_back(gen.filter());
      ASSERT_TRUE(ls[i].subscribe(filters[i].back())) << filters[i].back();
    }
  }
  detail::Matcher sut(tb.core());
  std::vector<detail::RouteTarget> out(test::kMaxListeners);
  int wrong = 0;
  int matched_topics = 0;

  for (int t = 0; t < 3000; ++t) {
    const std::string topic = gen.topic();
    std::uint64_t version = 0;
    const std::uint32_t n = sut.match(topic, out.data(), &version);
    std::set<std::uint32_t> got;
    for (std::uint32_t k = 0; k < n; ++k) {
      got.insert(out[k].listener);
      EXPECT_EQ(out[k].generation, ls.at(out[k].listener).generation());
    }
    std::set<std::uint32_t> want;
    for (std::uint32_t i = 0; i < test::kMaxListeners; ++i) {
      for (const auto& f : filters[i]) {
        if (filter_matches(f, topic)) {
          want.insert(ls[i].index());
        }
      }
    }
    matched_topics += want.empty() ? 0 : 1;
    if (got != want || n != got.size()) {
      ++wrong;
      ADD_FAILURE() << "topic '" << topic << "': matcher found " << got.size() << " of "
                    << want.size() << " (entries " << n << ")";
    }
    if (wrong > 5) {
      break;
    }
  }

  EXPECT_EQ(wrong, 0);
  EXPECT_GT(matched_topics, 100) << "too few topics matched anything to test the matcher";
}

TEST(Matcher, EmptyLevelsAreLevels) {
  TestBus tb;
  Listener one_level = tb.listen("a/+/b");
  Listener two_levels = tb.listen("a/+");
  detail::Matcher sut(tb.core());
  std::vector<detail::RouteTarget> out(test::kMaxListeners);
  std::uint64_t version = 0;

  const std::uint32_t n = sut.match("a//b", out.data(), &version);

  ASSERT_EQ(n, 1U);
  EXPECT_EQ(out[0].listener, one_level.index());
  EXPECT_EQ(version, tb.bus().inspect().trie_version);
}

// --- churn elsewhere does not disturb a stable subscription ------------------------

TEST(TrieConcurrency, StableSubscriptionReceivesEveryEventDuringChurn) {
  TestBus tb(roomy_config());
  ListenerOptions small;
  small.capacity = 4;  // drop-oldest: the rings hold few chunks, the pool never runs dry
  Listener stable = tb.listen("stable/#", small);
  constexpr int kPerPublisher = 20000;
  std::atomic<int> publishers_left{2};
  std::atomic<int> failures{0};
  std::atomic<int> churns{0};
  const std::uint32_t seed = seed_for_test();

  std::thread churn([&] {
    ListenerOptions tiny;
    tiny.capacity = 2;
    Listener mine = tb.listen("", tiny);
    Generator gen(seed);
    std::vector<std::string> held;
    // acquire: pairs with the publishers' release decrement.
    while (publishers_left.load(std::memory_order_acquire) > 0) {
      if (held.size() < 20 && gen.below(2) == 0) {
        held.push_back(gen.filter());
        if (!mine.subscribe(held.back())) {
          failures.fetch_add(1, std::memory_order_relaxed);  // relaxed: read after join
        }
      } else if (!held.empty()) {
        const std::size_t i = gen.below(static_cast<std::uint32_t>(held.size()));
        (void)mine.unsubscribe(held[i]);  // a duplicate may already be gone
        held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
      }
      churns.fetch_add(1, std::memory_order_relaxed);  // relaxed: read after join
    }
  });
  std::vector<std::thread> publishers;
  for (int p = 0; p < 2; ++p) {
    publishers.emplace_back([&, p] {
      Publisher pub = tb.bus().publisher();
      Generator gen(seed + 1 + static_cast<std::uint32_t>(p));
      for (int i = 0; i < kPerPublisher; ++i) {
        const PublishResult r = pub.publish("stable/x", "s");
        const PublishResult other = pub.publish(gen.topic(), "o");
        if (r.status != PublishStatus::kOk || r.delivered + r.skipped < 1 || !other.ok()) {
          failures.fetch_add(1, std::memory_order_relaxed);  // relaxed: read after join
        }
      }
      // release: the churn thread stops after the last publish.
      publishers_left.fetch_sub(1, std::memory_order_release);
    });
  }
  for (auto& t : publishers) {
    t.join();
  }
  churn.join();

  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(churns.load(), 0);
  // Every publish reached the stable listener: it went into the ring or, when
  // drop-oldest could not evict (the other publisher was preempted between
  // claiming a ring position and filling it), was dropped as the newest.
  const ListenerCounters k = stable.counters();
  EXPECT_EQ(k.delivered + k.dropped_newest, 2U * kPerPublisher);
  EXPECT_EQ(tb.bus().inspect().trie_nodes_used, 3U);  // root, stable, stable/#
}

}  // namespace
}  // namespace ipcbus
