// trie_property_test.cpp: topic routing against a naive MQTT matcher.
//
// Random subscribes, unsubscribes and listener re-opens over a small
// alphabet of levels (with '+', '#', empty levels, a '$' level and levels at
// and past the bus's level limit), mixed with
// publishes of random topics from two publishers. The model holds each
// listener's filters as a set and answers "who receives this topic" by
// matching every filter by the MQTT rules, one at a time. After every step
// the bus must agree: the same listeners get the event, each exactly once;
// the trie holds one node per distinct filter prefix plus its root; a
// subscribe fails with kTrieFull exactly when the model runs out of nodes or
// records; and once everything is unsubscribed the trie is back to its
// initial size with no subscription left.
#include <gtest/gtest.h>
#include <rapidcheck.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "ipcbus/bus.hpp"
#include "ipcbus/topic.hpp"
#include "property.hpp"

namespace ipcbus {
namespace {

using prop::check_property;
using prop::ScratchBus;

constexpr int kListeners = 4;
constexpr int kPublishers = 2;

// --- the reference model ---------------------------------------------------------

std::vector<std::string> split_levels(std::string_view s) {
  std::vector<std::string> levels;
  std::size_t start = 0;
  for (;;) {
    const std::size_t slash = s.find('/', start);
    if (slash == std::string_view::npos) {
      levels.emplace_back(s.substr(start));
      return levels;
    }
    levels.emplace_back(s.substr(start, slash - start));
    start = slash + 1;
  }
}

// model_matches is MQTT's rule read level by level: '#' takes the rest (and
// its parent level: "a/#" matches "a"), '+' takes exactly one level, other
// levels must be equal, and a topic starting with '$' is not matched by a
// filter whose first level is a wildcard.
bool model_matches(const std::string& filter, const std::string& topic) {
  const std::vector<std::string> f = split_levels(filter);
  const std::vector<std::string> t = split_levels(topic);
  if (topic.front() == '$' && (f[0] == "+" || f[0] == "#")) {
    return false;
  }
  for (std::size_t i = 0; i < f.size(); ++i) {
    if (f[i] == "#") {
      return true;
    }
    if (i >= t.size() || (f[i] != "+" && f[i] != t[i])) {
      return false;
    }
  }
  return f.size() == t.size();
}

struct TrieModel {
  std::vector<std::set<std::string>> filters = std::vector<std::set<std::string>>(kListeners);

  // Every distinct non-empty prefix (as levels) of every filter held: one
  // trie node each, shared by listeners and by filters with that prefix.
  std::set<std::vector<std::string>> prefixes() const {
    std::set<std::vector<std::string>> out;
    for (const auto& held : filters) {
      for (const std::string& f : held) {
        const std::vector<std::string> levels = split_levels(f);
        for (std::size_t n = 1; n <= levels.size(); ++n) {
          out.emplace(levels.begin(), levels.begin() + static_cast<std::ptrdiff_t>(n));
        }
      }
    }
    return out;
  }
  std::size_t subscriptions() const {
    std::size_t n = 0;
    for (const auto& held : filters) {
      n += held.size();
    }
    return n;
  }
  // The nodes `filter` would add: its prefixes that no filter holds yet.
  std::size_t missing_nodes(const std::string& filter) const {
    const auto have = prefixes();
    const std::vector<std::string> levels = split_levels(filter);
    std::size_t missing = 0;
    for (std::size_t n = 1; n <= levels.size(); ++n) {
      missing += have.count({levels.begin(), levels.begin() + static_cast<std::ptrdiff_t>(n)}) == 0;
    }
    return missing;
  }
  std::set<int> receivers(const std::string& topic) const {
    std::set<int> out;
    for (int l = 0; l < kListeners; ++l) {
      for (const std::string& f : filters[l]) {
        if (model_matches(f, topic)) {
          out.insert(l);
        }
      }
    }
    return out;
  }
};

// --- operations and their generators ----------------------------------------------

enum class TrieOpKind { kSubscribe, kUnsubscribe, kUnsubscribeHeld, kPublish, kReopen };

struct TrieOp {
  TrieOpKind kind = TrieOpKind::kPublish;
  int who = 0;       // the listener, or the publisher for kPublish
  std::string text;  // the filter or the topic
  int pick = 0;      // kUnsubscribeHeld: which held filter
};

std::ostream& operator<<(std::ostream& os, const TrieOp& op) {
  switch (op.kind) {
    case TrieOpKind::kSubscribe:
      return os << "subscribe(L" << op.who << ", \"" << op.text << "\")";
    case TrieOpKind::kUnsubscribe:
      return os << "unsubscribe(L" << op.who << ", \"" << op.text << "\")";
    case TrieOpKind::kUnsubscribeHeld:
      return os << "unsubscribe_held(L" << op.who << ", #" << op.pick << ")";
    case TrieOpKind::kPublish:
      return os << "publish(P" << op.who << ", \"" << op.text << "\")";
    case TrieOpKind::kReopen:
      return os << "reopen(L" << op.who << ")";
  }
  return os;
}

std::string join_levels(const std::vector<std::string>& levels) {
  std::string out;
  for (std::size_t i = 0; i < levels.size(); ++i) {
    out += (i == 0 ? "" : "/") + levels[i];
  }
  return out.empty() ? "/" : out;  // one empty level is no name; two are
}

rc::Gen<std::vector<std::string>> gen_levels(int most, std::vector<std::string> alphabet) {
  return rc::gen::mapcat(rc::gen::inRange(1, most + 1), [alphabet](int n) {
    return rc::gen::container<std::vector<std::string>>(static_cast<std::size_t>(n),
                                                        rc::gen::elementOf(alphabet));
  });
}

// Levels at and past the bus's max_level_bytes (16): filters may hold the
// first and not the second; topic names may hold both, and four such levels
// make a topic longer than max_topic_bytes (64).
constexpr std::size_t kMaxLevelBytes = 16;
constexpr std::size_t kMaxTopicBytes = 64;
const std::string kLongestLevel = "level-of-16bytes";
const std::string kTooLongLevel = "level-of-17-bytes";

rc::Gen<std::string> gen_topic() {
  return rc::gen::map(gen_levels(4, {"a", "b", "", "$s", kLongestLevel, kTooLongLevel}),
                      join_levels);
}

rc::Gen<std::string> gen_filter() {
  return rc::gen::oneOf(
      rc::gen::just(std::string("#")),
      rc::gen::map(gen_levels(3, {"a", "b", "", "$s", "+", kLongestLevel, kTooLongLevel}),
                   join_levels),
      rc::gen::map(gen_levels(3, {"a", "b", "", "$s", "+", kLongestLevel, kTooLongLevel}),
                   [](std::vector<std::string> levels) {
                     levels.emplace_back("#");
                     return join_levels(levels);
                   }));
}

rc::Gen<TrieOp> gen_trie_op() {
  const auto listener = rc::gen::inRange(0, kListeners);
  return rc::gen::weightedOneOf<TrieOp>({
      {4, rc::gen::apply(
              [](int l, std::string f) {
                return TrieOp{TrieOpKind::kSubscribe, l, f, 0};
              },
              listener, gen_filter())},
      {1, rc::gen::apply(
              [](int l, std::string f) {
                return TrieOp{TrieOpKind::kUnsubscribe, l, f, 0};
              },
              listener, gen_filter())},
      {2, rc::gen::apply(
              [](int l, int pick) {
                return TrieOp{TrieOpKind::kUnsubscribeHeld, l, "", pick};
              },
              listener, rc::gen::inRange(0, 8))},
      {6, rc::gen::apply(
              [](int p, std::string t) {
                return TrieOp{TrieOpKind::kPublish, p, t, 0};
              },
              rc::gen::inRange(0, kPublishers), gen_topic())},
      {1, rc::gen::map(listener,
                       [](int l) {
                         return TrieOp{TrieOpKind::kReopen, l, "", 0};
                       })},
  });
}

// --- the system under test, step by step -------------------------------------------

struct TrieRun {
  Bus& bus;
  std::uint32_t trie_nodes;
  std::uint32_t subscriptions;
  std::uint32_t root_nodes;  // trie_nodes_used of the empty trie
  std::vector<Publisher> publishers;
  std::vector<Listener> listeners;
  TrieModel model;
  std::uint64_t events = 0;
  bool saw_full = false;    // a subscribe was refused for want of nodes or records
  bool saw_fanout = false;  // a publish reached two listeners or more

  void subscribe(int l, const std::string& filter) {
    const std::vector<std::string> levels = split_levels(filter);
    if (std::any_of(levels.begin(), levels.end(),
                    [](const std::string& level) { return level.size() > kMaxLevelBytes; })) {
      const auto refused = listeners[l].subscribe(filter);
      RC_ASSERT(!refused);
      RC_ASSERT(refused.error().code == Errc::kInvalidFilter);
      return;
    }
    const bool held = model.filters[l].count(filter) != 0;
    const bool full =
        !held && (root_nodes + model.prefixes().size() + model.missing_nodes(filter) > trie_nodes ||
                  model.subscriptions() >= subscriptions);
    const auto ok = listeners[l].subscribe(filter);
    if (full) {
      saw_full = true;
      RC_ASSERT(!ok);
      RC_ASSERT(ok.error().code == Errc::kTrieFull);
      return;
    }
    RC_ASSERT(ok.has_value());
    model.filters[l].insert(filter);
  }

  void unsubscribe(int l, const std::string& filter) {
    const bool held = model.filters[l].count(filter) != 0;
    const auto ok = listeners[l].unsubscribe(filter);
    if (!held) {
      RC_ASSERT(!ok);
      RC_ASSERT(ok.error().code == Errc::kNotFound);
      return;
    }
    RC_ASSERT(ok.has_value());
    model.filters[l].erase(filter);
  }

  void reopen(int l) {
    ListenerOptions o;
    o.overflow = Overflow::kDropNewest;  // every listener is drained after each publish
    // The listener table is full: the new listener takes the slot the old
    // one frees, with a new generation that cached routes must not reach.
    const std::uint32_t index = listeners[l].index();
    const std::uint32_t generation = listeners[l].generation();
    listeners[l].close();
    auto fresh = bus.listen(o);
    RC_ASSERT(fresh.has_value());
    RC_ASSERT(fresh->index() == index);
    RC_ASSERT(fresh->generation() != generation);
    listeners[l] = std::move(fresh).value();
    model.filters[l].clear();
  }

  void publish(int p, const std::string& topic) {
    if (topic.size() > kMaxTopicBytes) {
      RC_ASSERT(publishers[p].publish(topic, "x").status == PublishStatus::kInvalidTopic);
      for (Listener& l : listeners) {
        RC_ASSERT(!l.try_receive().has_value());
      }
      return;
    }
    const std::set<int> expected = model.receivers(topic);
    saw_fanout = saw_fanout || expected.size() >= 2;
    const std::string payload = "event " + std::to_string(++events);

    const PublishResult r = publishers[p].publish(topic, payload);

    RC_ASSERT(r.status == (expected.empty() ? PublishStatus::kNoListeners : PublishStatus::kOk));
    RC_ASSERT(r.delivered == expected.size());
    RC_ASSERT(r.skipped == 0U);
    for (int l = 0; l < kListeners; ++l) {
      auto first = listeners[l].try_receive();
      RC_ASSERT(first.has_value() == (expected.count(l) != 0));
      if (first) {
        RC_ASSERT(first->topic() == topic);
        RC_ASSERT(first->payload_text() == payload);
      }
      RC_ASSERT(!listeners[l].try_receive().has_value());  // once, however many filters match
    }
  }

  // The trie's size and every listener's filters, as the segment tells them.
  void check_shape() {
    const BusInfo info = bus.inspect();
    RC_ASSERT(info.trie_nodes_used == root_nodes + model.prefixes().size());
    RC_ASSERT(info.subscriptions_used == model.subscriptions());
    for (int l = 0; l < kListeners; ++l) {
      const auto li = prop::info_of(info, listeners[l]);
      RC_ASSERT(li.has_value());
      RC_ASSERT(std::set<std::string>(li->filters.begin(), li->filters.end()) == model.filters[l]);
      const auto& mine = listeners[l].filters();
      RC_ASSERT(std::set<std::string>(mine.begin(), mine.end()) == model.filters[l]);
    }
  }

  void apply(const TrieOp& op) {
    switch (op.kind) {
      case TrieOpKind::kSubscribe:
        subscribe(op.who, op.text);
        break;
      case TrieOpKind::kUnsubscribe:
        unsubscribe(op.who, op.text);
        break;
      case TrieOpKind::kUnsubscribeHeld: {
        const auto& held = model.filters[op.who];
        if (!held.empty()) {
          unsubscribe(op.who,
                      *std::next(held.begin(), static_cast<std::ptrdiff_t>(op.pick % held.size())));
        }
        break;
      }
      case TrieOpKind::kPublish:
        publish(op.who, op.text);
        return;  // routing changes nothing in the trie
      case TrieOpKind::kReopen:
        reopen(op.who);
        break;
    }
    check_shape();
  }
};

// The bus delivers to exactly the listeners the model names, once each, and
// the trie's size follows the filters held, through any sequence of changes.
TEST(TrieProperty, RoutingMatchesTheMqttModelAndTheTrieShrinksBack) {
  check_property(800, [] {
    Config config = prop::small_config();
    // Small tries, so that subscribes also run out of nodes and records.
    config.trie_nodes = static_cast<std::uint32_t>(*rc::gen::inRange(2, 40));
    config.subscriptions = static_cast<std::uint32_t>(*rc::gen::inRange(1, 24));
    config.max_listeners = kListeners;
    config.max_level_bytes = kMaxLevelBytes;
    config.max_topic_bytes = kMaxTopicBytes;
    const auto ops = *rc::gen::scale(2.0, rc::gen::container<std::vector<TrieOp>>(gen_trie_op()));

    ScratchBus scratch(config);
    TrieRun run{scratch.bus(),
                config.trie_nodes,
                config.subscriptions,
                scratch.bus().inspect().trie_nodes_used,
                {},
                {},
                {},
                0};
    RC_ASSERT(scratch.bus().inspect().subscriptions_used == 0U);
    for (int p = 0; p < kPublishers; ++p) {
      run.publishers.push_back(scratch.bus().publisher());
    }
    ListenerOptions o;
    o.overflow = Overflow::kDropNewest;
    for (int l = 0; l < kListeners; ++l) {
      auto made = scratch.bus().listen(o);
      RC_ASSERT(made.has_value());
      run.listeners.push_back(std::move(made).value());
    }

    std::set<std::string> topics;
    for (const TrieOp& op : ops) {
      run.apply(op);
      if (op.kind == TrieOpKind::kPublish) {
        topics.insert(op.text);
      }
    }
    RC_CLASSIFY(run.saw_full, "trie full");
    RC_CLASSIFY(run.saw_fanout, "fan-out");

    for (int l = 0; l < kListeners; ++l) {
      const std::set<std::string> held = run.model.filters[l];
      for (const std::string& f : held) {
        run.unsubscribe(l, f);
      }
    }
    run.check_shape();
    const BusInfo info = scratch.bus().inspect();
    RC_ASSERT(info.trie_nodes_used == run.root_nodes);
    RC_ASSERT(info.subscriptions_used == 0U);
    for (const std::string& t : topics) {
      for (int p = 0; p < kPublishers; ++p) {
        RC_ASSERT(run.publishers[p].publish(t, "late").status ==
                  (t.size() > kMaxTopicBytes ? PublishStatus::kInvalidTopic
                                             : PublishStatus::kNoListeners));
      }
    }
  });
}

// The library's own matcher (topic.hpp) gives the model's answer on the
// same alphabet, so the routing property above tests the trie, not a shared
// misreading of the rules.
TEST(TrieProperty, FilterMatchesAgreesWithTheModel) {
  check_property(3000, [] {
    const std::string filter = *gen_filter();
    const std::string topic = *gen_topic();
    RC_ASSERT(check_topic_filter(filter).has_value());  // no bus: MQTT's own limits only
    RC_ASSERT(check_topic_name(topic).has_value());
    RC_ASSERT(filter_matches(filter, topic) == model_matches(filter, topic));
  });
}

}  // namespace
}  // namespace ipcbus
