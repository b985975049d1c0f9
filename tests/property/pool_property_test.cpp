// pool_property_test.cpp: chunk pools against a model of who holds what.
//
// A tiny bus (two size classes of three and two chunks, rings of at most
// four) with two listeners whose filters overlap. Random loans, loan drops
// and shrinks, publishes of loans and of copies, receives, sample releases, pauses and
// resumes run on the bus and on the model. The model counts the chunks in
// use per class: one per outstanding loan, and one per event still held by
// a ring entry or a Sample, however many of them share it. After every step
// each class's free count is the model's (total minus those in use); loan()
// and publish() report kPoolExhausted exactly when the model's class is
// empty (and only when someone listens, for a copying publish); every
// payload a Sample or Loan holds is still intact; and at the end, whether
// the listeners drain or are closed, every pool is full again.
#include <gtest/gtest.h>
#include <rapidcheck.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "ipcbus/bus.hpp"
#include "property.hpp"

namespace ipcbus {
namespace {

using prop::check_property;
using prop::ScratchBus;

constexpr std::array<PoolClass, 2> kPools = {{{32, 3}, {128, 2}}};
constexpr int kClasses = 2;
constexpr int kListeners = 2;
constexpr std::array<const char*, kListeners> kFilters = {"pool/#", "pool/both"};
constexpr std::array<const char*, 3> kTopics = {"pool/first", "pool/both", "elsewhere"};

// --- the reference model ---------------------------------------------------------

// The class a payload of `size` bytes goes to: the smallest that holds it.
std::optional<int> model_class(std::size_t size) {
  for (int k = 0; k < kClasses; ++k) {
    if (size <= kPools[k].payload_bytes) {
      return k;
    }
  }
  return std::nullopt;
}

struct ModelEvent {
  int pool_class = 0;
  std::uint32_t refs = 0;  // ring entries and Samples holding it
  std::string topic;
  std::string payload;
};

struct ModelLoan {
  int pool_class = 0;
  std::string payload;  // what was written into it
};

struct ModelRing {
  Overflow overflow = Overflow::kDropOldest;
  std::uint32_t capacity = 0;
  bool paused = false;
  std::deque<std::uint64_t> queue;  // event sequences, oldest first
};

struct PoolModel {
  std::map<std::uint64_t, ModelEvent> events;  // by sequence; only those with refs
  std::vector<ModelLoan> loans;
  std::vector<std::uint64_t> samples;  // the event each held Sample shows
  std::array<ModelRing, kListeners> rings;
  std::uint64_t sequence = 0;  // the publisher's last sequence number

  std::uint32_t in_use(int k) const {
    std::uint32_t n = 0;
    for (const auto& l : loans) {
      n += l.pool_class == k ? 1 : 0;
    }
    for (const auto& [seq, e] : events) {
      n += e.pool_class == k ? 1 : 0;
    }
    return n;
  }
  std::uint32_t free(int k) const { return kPools[k].count - in_use(k); }

  void drop_ref(std::uint64_t seq) {
    auto it = events.find(seq);
    if (--it->second.refs == 0) {
      events.erase(it);
    }
  }

  // The listeners a topic reaches, by kFilters: "pool/#" takes both pool
  // topics, "pool/both" one of them, and nobody takes "elsewhere".
  static std::vector<int> route(int topic) {
    switch (topic) {
      case 0:
        return {0};
      case 1:
        return {0, 1};
      default:
        return {};
    }
  }

  // deliver puts a new event, already in a chunk of class k, into the rings
  // `targets` names by their policies, and tells what the publish says.
  PublishResult deliver(const std::vector<int>& targets, int k, const std::string& topic,
                        const std::string& payload) {
    PublishResult r;
    r.sequence = ++sequence;
    bool timed_out = false;
    std::uint32_t refs = 0;
    for (int l : targets) {
      ModelRing& ring = rings[l];
      bool take = !ring.paused;
      if (take && ring.queue.size() >= ring.capacity) {
        if (ring.overflow == Overflow::kDropOldest) {
          drop_ref(ring.queue.front());
          ring.queue.pop_front();
        } else {
          take = false;
          timed_out = timed_out || ring.overflow == Overflow::kBlock;
        }
      }
      if (take) {
        ring.queue.push_back(r.sequence);
        ++refs;
      }
    }
    r.delivered = refs;
    r.skipped = static_cast<std::uint32_t>(targets.size()) - refs;
    r.status = timed_out ? PublishStatus::kTimedOut : PublishStatus::kOk;
    if (refs > 0) {
      events[r.sequence] = ModelEvent{k, refs, topic, payload};
    }
    return r;
  }
};

// --- operations and their generators ----------------------------------------------

enum class PoolOpKind {
  kLoan,
  kDropLoan,
  kShrinkLoan,
  kPublishLoan,
  kPublishCopy,
  kReceive,
  kReleaseSample,
  kPause,
  kResume,
};

struct PoolOp {
  PoolOpKind kind = PoolOpKind::kLoan;
  std::size_t size = 0;  // kLoan, kShrinkLoan, kPublishCopy
  int topic = 0;         // kPublishLoan, kPublishCopy: index into kTopics
  int pick = 0;          // which loan, sample or listener
};

std::ostream& operator<<(std::ostream& os, const PoolOp& op) {
  switch (op.kind) {
    case PoolOpKind::kLoan:
      return os << "loan(" << op.size << ")";
    case PoolOpKind::kDropLoan:
      return os << "drop_loan(#" << op.pick << ")";
    case PoolOpKind::kShrinkLoan:
      return os << "shrink_loan(#" << op.pick << ", " << op.size << ")";
    case PoolOpKind::kPublishLoan:
      return os << "publish_loan(#" << op.pick << ", " << kTopics[op.topic] << ")";
    case PoolOpKind::kPublishCopy:
      return os << "publish_copy(" << op.size << ", " << kTopics[op.topic] << ")";
    case PoolOpKind::kReceive:
      return os << "receive(L" << op.pick << ")";
    case PoolOpKind::kReleaseSample:
      return os << "release_sample(#" << op.pick << ")";
    case PoolOpKind::kPause:
      return os << "pause(L" << op.pick << ")";
    case PoolOpKind::kResume:
      return os << "resume(L" << op.pick << ")";
  }
  return os;
}

rc::Gen<PoolOp> gen_pool_op() {
  // Sizes at and around each class's bound, and past the largest.
  const auto size = rc::gen::element<std::size_t>(0, 1, 31, 32, 33, 100, 128, 129, 4096);
  const auto topic = rc::gen::inRange(0, static_cast<int>(kTopics.size()));
  const auto pick = rc::gen::inRange(0, 8);
  const auto listener = rc::gen::inRange(0, kListeners);
  const auto with_pick = [](PoolOpKind kind, rc::Gen<int> g) {
    return rc::gen::map(g, [kind](int p) { return PoolOp{kind, 0, 0, p}; });
  };
  return rc::gen::weightedOneOf<PoolOp>({
      {4, rc::gen::map(size,
                       [](std::size_t s) {
                         return PoolOp{PoolOpKind::kLoan, s, 0, 0};
                       })},
      {1, with_pick(PoolOpKind::kDropLoan, pick)},
      {1, rc::gen::apply(
              [](int p, std::size_t s) {
                return PoolOp{PoolOpKind::kShrinkLoan, s, 0, p};
              },
              pick, size)},
      {3, rc::gen::apply(
              [](int p, int t) {
                return PoolOp{PoolOpKind::kPublishLoan, 0, t, p};
              },
              pick, topic)},
      {4, rc::gen::apply(
              [](std::size_t s, int t) {
                return PoolOp{PoolOpKind::kPublishCopy, s, t, 0};
              },
              size, topic)},
      {4, with_pick(PoolOpKind::kReceive, listener)},
      {3, with_pick(PoolOpKind::kReleaseSample, pick)},
      {1, with_pick(PoolOpKind::kPause, listener)},
      {1, with_pick(PoolOpKind::kResume, listener)},
  });
}

struct RingChoice {
  Overflow overflow = Overflow::kDropOldest;
  std::uint32_t capacity = 2;
};

std::ostream& operator<<(std::ostream& os, const RingChoice& c) {
  return os << "{" << overflow_name(c.overflow) << ", capacity " << c.capacity << "}";
}

rc::Gen<RingChoice> gen_ring_choice() {
  return rc::gen::apply(
      [](Overflow o, std::uint32_t c) {
        return RingChoice{o, c};
      },
      rc::gen::element(Overflow::kBlock, Overflow::kDropNewest, Overflow::kDropOldest),
      rc::gen::element<std::uint32_t>(2, 4));
}

// --- the system under test, step by step -------------------------------------------

std::string text_of(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

struct PoolRun {
  Bus& bus;
  Publisher& publisher;
  std::vector<Listener>& listeners;
  std::vector<Loan>& loans;
  std::vector<Sample>& samples;
  PoolModel model;
  std::uint32_t loans_made = 0;
  bool saw_exhausted = false;  // a loan or a publish found its class empty

  void loan(std::size_t size) {
    const auto k = model_class(size);
    auto got = publisher.loan(size);
    if (!k) {
      RC_ASSERT(!got.has_value());
      RC_ASSERT(got.error().code == Errc::kPayloadTooLarge);
      return;
    }
    if (model.free(*k) == 0) {
      saw_exhausted = true;
      RC_ASSERT(!got.has_value());
      RC_ASSERT(got.error().code == Errc::kPoolExhausted);
      return;
    }
    RC_ASSERT(got.has_value());
    RC_ASSERT(got->size() == size);
    RC_ASSERT(got->data().size() == size);
    const std::string payload(size, static_cast<char>('A' + loans_made++ % 26));
    std::memcpy(got->data().data(), payload.data(), size);
    loans.push_back(std::move(got).value());
    model.loans.push_back(ModelLoan{*k, payload});
  }

  void drop_loan(int pick) {
    if (loans.empty()) {
      return;
    }
    const std::size_t i = static_cast<std::size_t>(pick) % loans.size();
    RC_ASSERT(text_of(loans[i].data()) == model.loans[i].payload);
    loans.erase(loans.begin() + static_cast<std::ptrdiff_t>(i));
    model.loans.erase(model.loans.begin() + static_cast<std::ptrdiff_t>(i));
  }

  // shrink sets the payload length, never above what was loaned.
  void shrink_loan(int pick, std::size_t size) {
    if (loans.empty()) {
      return;
    }
    const std::size_t i = static_cast<std::size_t>(pick) % loans.size();
    std::string& payload = model.loans[i].payload;
    payload.resize(std::min(size, payload.size()));

    loans[i].shrink(size);

    RC_ASSERT(loans[i].size() == payload.size());
    RC_ASSERT(text_of(loans[i].data()) == payload);
  }

  void expect(const PublishResult& r, const PublishResult& want) {
    RC_ASSERT(r.status == want.status);
    RC_ASSERT(r.sequence == want.sequence);
    RC_ASSERT(r.delivered == want.delivered);
    RC_ASSERT(r.skipped == want.skipped);
  }

  void publish_loan(int pick, int t) {
    const std::string topic = kTopics[t];
    if (loans.empty()) {
      return;
    }
    const std::size_t i = static_cast<std::size_t>(pick) % loans.size();
    RC_ASSERT(text_of(loans[i].data()) == model.loans[i].payload);
    const ModelLoan ml = model.loans[i];
    model.loans.erase(model.loans.begin() + static_cast<std::ptrdiff_t>(i));
    const std::vector<int> route = PoolModel::route(t);
    PublishResult want;
    if (route.empty()) {
      want.status = PublishStatus::kNoListeners;  // the chunk goes back at once
      want.sequence = ++model.sequence;
    } else {
      want = model.deliver(route, ml.pool_class, topic, ml.payload);
    }

    const PublishResult r = publisher.publish(topic, std::move(loans[i]));
    loans.erase(loans.begin() + static_cast<std::ptrdiff_t>(i));

    expect(r, want);
  }

  void publish_copy(std::size_t size, int t) {
    const std::string topic = kTopics[t];
    const auto k = model_class(size);
    const std::vector<int> route = PoolModel::route(t);
    const std::string payload(size, static_cast<char>('a' + (model.sequence + 1) % 26));
    PublishResult want;
    if (!k) {
      want.status = PublishStatus::kPayloadTooLarge;
    } else if (route.empty()) {
      want.status = PublishStatus::kNoListeners;  // no chunk is needed for nobody
      want.sequence = ++model.sequence;
    } else if (model.free(*k) == 0) {
      saw_exhausted = true;
      want.status = PublishStatus::kPoolExhausted;
    } else {
      want = model.deliver(route, *k, topic, payload);
    }

    const PublishResult r = publisher.publish(topic, payload);

    expect(r, want);
  }

  void receive(int l) {
    ModelRing& ring = model.rings[l];
    auto sample = listeners[l].try_receive();
    if (ring.paused || ring.queue.empty()) {
      RC_ASSERT(!sample.has_value());
      return;
    }
    RC_ASSERT(sample.has_value());
    const std::uint64_t seq = ring.queue.front();
    ring.queue.pop_front();  // the ring's reference moves to the Sample
    RC_ASSERT(sample->sequence() == seq);
    check_sample(*sample, seq);
    samples.push_back(std::move(*sample));
    model.samples.push_back(seq);
  }

  void check_sample(const Sample& s, std::uint64_t seq) {
    const ModelEvent& e = model.events.at(seq);
    RC_ASSERT(s.sequence() == seq);
    RC_ASSERT(s.topic() == e.topic);
    RC_ASSERT(s.payload_text() == e.payload);
  }

  void release_sample(int pick) {
    if (samples.empty()) {
      return;
    }
    const std::size_t i = static_cast<std::size_t>(pick) % samples.size();
    check_sample(samples[i], model.samples[i]);  // nobody reused its chunk meanwhile
    samples.erase(samples.begin() + static_cast<std::ptrdiff_t>(i));
    model.drop_ref(model.samples[i]);
    model.samples.erase(model.samples.begin() + static_cast<std::ptrdiff_t>(i));
  }

  void pause(int l) {
    const auto ok = listeners[l].pause();
    RC_ASSERT(ok.has_value() == !model.rings[l].paused);
    model.rings[l].paused = true;
  }

  void resume(int l) {
    const auto ok = listeners[l].resume();
    RC_ASSERT(ok.has_value() == model.rings[l].paused);
    model.rings[l].paused = false;
  }

  void check_pools() {
    const BusInfo info = bus.inspect();
    RC_ASSERT(info.pools.size() == static_cast<std::size_t>(kClasses));
    for (int k = 0; k < kClasses; ++k) {
      RC_ASSERT(info.pools[k].total == kPools[k].count);
      RC_ASSERT(info.pools[k].free == model.free(k));
    }
  }

  void apply(const PoolOp& op) {
    switch (op.kind) {
      case PoolOpKind::kLoan:
        loan(op.size);
        break;
      case PoolOpKind::kDropLoan:
        drop_loan(op.pick);
        break;
      case PoolOpKind::kShrinkLoan:
        shrink_loan(op.pick, op.size);
        break;
      case PoolOpKind::kPublishLoan:
        publish_loan(op.pick, op.topic);
        break;
      case PoolOpKind::kPublishCopy:
        publish_copy(op.size, op.topic);
        break;
      case PoolOpKind::kReceive:
        receive(op.pick);
        break;
      case PoolOpKind::kReleaseSample:
        release_sample(op.pick);
        break;
      case PoolOpKind::kPause:
        pause(op.pick);
        break;
      case PoolOpKind::kResume:
        resume(op.pick);
        break;
    }
    check_pools();
  }
};

// Free chunks per class are exactly those nobody holds, exhaustion comes
// exactly when the model's class is empty, and every chunk comes back.
TEST(PoolProperty, FreeChunksAreThoseNobodyHolds) {
  check_property(800, [] {
    const auto rings = *rc::gen::container<std::vector<RingChoice>>(kListeners, gen_ring_choice());
    const auto ops = *rc::gen::scale(2.0, rc::gen::container<std::vector<PoolOp>>(gen_pool_op()));
    const bool close_at_end = *rc::gen::arbitrary<bool>();

    Config config = prop::small_config();
    config.pools.assign(kPools.begin(), kPools.end());
    config.ring_capacity = 4;
    ScratchBus scratch(config);
    Publisher publisher = scratch.bus().publisher();
    publisher.set_block_timeout(std::chrono::nanoseconds(0));
    std::vector<Listener> listeners;
    std::vector<Loan> loans;
    std::vector<Sample> samples;
    PoolRun run{scratch.bus(), publisher, listeners, loans, samples, {}, 0};
    for (int l = 0; l < kListeners; ++l) {
      ListenerOptions o;
      o.overflow = rings[l].overflow;
      o.capacity = rings[l].capacity;
      auto made = scratch.bus().listen(o);
      RC_ASSERT(made.has_value());
      RC_ASSERT(made->subscribe(kFilters[l]).has_value());
      listeners.push_back(std::move(made).value());
      run.model.rings[l].overflow = rings[l].overflow;
      run.model.rings[l].capacity = rings[l].capacity;
    }
    run.check_pools();

    for (const PoolOp& op : ops) {
      run.apply(op);
    }

    RC_CLASSIFY(run.saw_exhausted, "exhausted");

    if (close_at_end) {
      // Closing a listener releases what its ring still holds; Samples and
      // Loans keep theirs until they go.
      for (int l = 0; l < kListeners; ++l) {
        listeners[l].close();
        for (const std::uint64_t seq : run.model.rings[l].queue) {
          run.model.drop_ref(seq);
        }
        run.model.rings[l].queue.clear();
        run.check_pools();
      }
    } else {
      for (int l = 0; l < kListeners; ++l) {
        if (run.model.rings[l].paused) {
          run.resume(l);
        }
        while (!run.model.rings[l].queue.empty()) {
          run.receive(l);
        }
        run.receive(l);  // and nothing more
        run.check_pools();
      }
    }
    while (!samples.empty()) {
      run.release_sample(0);
      run.check_pools();
    }
    while (!loans.empty()) {
      run.drop_loan(0);
      run.check_pools();
    }
    const BusInfo info = scratch.bus().inspect();
    for (int k = 0; k < kClasses; ++k) {
      RC_ASSERT(info.pools[k].free == kPools[k].count);
    }
  });
}

}  // namespace
}  // namespace ipcbus
