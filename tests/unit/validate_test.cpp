// validate_test.cpp: validate_structure() on a copy of a bus in use (it
// passes), on that copy with one field broken (it fails naming the record
// and the field), and on a live bus while other threads subscribe,
// unsubscribe and publish (it never raises a false alarm).
#include "validate.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "core.hpp"
#include "test_bus.hpp"

namespace ipcbus::test {
namespace {

using detail::kNone;

// A private, aligned copy of a segment's bytes, with typed views into it.
class Image {
 public:
  explicit Image(detail::BusCore& core)
      : bytes_(core.header().segment_bytes),
        data_(new (std::align_val_t{64}) char[bytes_], Delete{}) {
    std::memcpy(data_.get(), core.base(), bytes_);
  }
  detail::SegmentHeader& h() { return *reinterpret_cast<detail::SegmentHeader*>(data_.get()); }
  detail::ListenerSlot& slot(std::uint32_t i) {
    return reinterpret_cast<detail::ListenerSlot*>(data_.get() + h().listener_off)[i];
  }
  detail::TrieNode& node(std::uint32_t i) {
    return *reinterpret_cast<detail::TrieNode*>(data_.get() + h().node_off +
                                                std::uint64_t{i} * h().node_stride);
  }
  detail::SubRecord& sub(std::uint32_t i) {
    return reinterpret_cast<detail::SubRecord*>(data_.get() + h().sub_off)[i];
  }
  detail::RingEntry& ring(std::uint32_t listener, std::uint32_t k) {
    return reinterpret_cast<detail::RingEntry*>(
        data_.get() + h().ring_off)[std::uint64_t{listener} * h().ring_capacity + k];
  }
  detail::ChunkHeader& chunk(std::uint32_t pool, std::uint32_t j) {
    return *reinterpret_cast<detail::ChunkHeader*>(data_.get() + h().pools[pool].offset +
                                                   std::uint64_t{j} * h().pools[pool].stride);
  }
  Result<void> validate() { return detail::validate_structure(h(), data_.get(), bytes_); }

 private:
  struct Delete {
    void operator()(char* p) const { ::operator delete[](p, std::align_val_t{64}); }
  };
  std::size_t bytes_;
  std::unique_ptr<char[], Delete> data_;
};

// A bus with something in every table the checks look at.
class Validate : public ::testing::Test {
 protected:
  void SetUp() override {
    a_.emplace(t_.listen("sensors/+/temp"));
    ASSERT_TRUE(a_->subscribe("sensors/kitchen/#"));
    b_.emplace(t_.listen("#"));
    ASSERT_TRUE(b_->subscribe("a/b/c"));
    Publisher p = t_.bus().publisher();
    ASSERT_TRUE(p.publish("sensors/kitchen/temp", "21.5").ok());
    ASSERT_TRUE(p.publish("a/b/c", "x").ok());
    held_ = b_->try_receive();
    ASSERT_TRUE(held_.has_value());
  }

  // The index of the first subscription record listener `l` holds.
  std::uint32_t first_sub(Image& image, const Listener& l) {
    // relaxed: a private copy no one else touches.
    return image.slot(l.index()).subs_head.load(std::memory_order_relaxed);
  }

  TestBus t_;
  std::optional<Listener> a_;
  std::optional<Listener> b_;
  std::optional<Sample> held_;
};

TEST_F(Validate, CopyOfABusInUsePasses) {
  Image sut(t_.core());

  auto ok = sut.validate();

  EXPECT_TRUE(ok) << ok.error().message;
}

struct Breakage {
  const char* name;
  std::function<void(Image&, std::uint32_t a, std::uint32_t s)>
      apply;             // a: listener, s: its record
  const char* expected;  // in the message
};

TEST_F(Validate, EachBrokenFieldIsForeignSegmentNamingIt) {
  // relaxed, in every store here: a private copy no one else reads.
  const std::vector<Breakage> cases = {
      {"listener subs_head past the table",
       [](Image& m, std::uint32_t a, std::uint32_t) {
         m.slot(a).subs_head.store(m.h().subscriptions, std::memory_order_relaxed);
       },
       "subs_head"},
      {"listener capacity above its ring",
       [](Image& m, std::uint32_t a, std::uint32_t) {
         m.slot(a).capacity.store(m.h().ring_capacity * 2, std::memory_order_relaxed);
       },
       "capacity"},
      {"listener owner_process past the table",
       [](Image& m, std::uint32_t a, std::uint32_t) { m.slot(a).owner_process = 70000; },
       "owner_process"},
      {"ring entry naming no chunk",
       [](Image& m, std::uint32_t a, std::uint32_t) {
         m.ring(a, 3).store(5, std::memory_order_relaxed);
       },
       "ring entry 3 names no chunk"},
      {"subscription list in a cycle",
       [](Image& m, std::uint32_t, std::uint32_t s) {
         m.sub(s).next_in_listener.store(s, std::memory_order_relaxed);
       },
       "twice"},
      {"subscription record naming another listener",
       [](Image& m, std::uint32_t a, std::uint32_t s) {
         m.sub(s).listener.store(a + 1, std::memory_order_relaxed);
       },
       "names listener"},
      {"subscription node past the table",
       [](Image& m, std::uint32_t, std::uint32_t s) {
         m.sub(s).node.store(m.h().trie_nodes + 7, std::memory_order_relaxed);
       },
       "node"},
      {"trie node its own parent",
       [](Image& m, std::uint32_t, std::uint32_t s) {
         const std::uint32_t n = m.sub(s).node.load(std::memory_order_relaxed);
         m.node(n).parent.store(n, std::memory_order_relaxed);
       },
       "cycle of parents"},
      {"trie node label longer than a level",
       [](Image& m, std::uint32_t, std::uint32_t s) {
         const std::uint32_t n = m.sub(s).node.load(std::memory_order_relaxed);
         m.node(n).label_len.store(m.h().max_level_bytes + 1, std::memory_order_relaxed);
       },
       "label of"},
      {"root node not a root",
       [](Image& m, std::uint32_t, std::uint32_t) {
         m.node(0).kind.store(detail::kNodeLiteral, std::memory_order_relaxed);
       },
       "trie node 0"},
      {"free list of nodes in a cycle",
       [](Image& m, std::uint32_t, std::uint32_t) {
         const std::uint32_t f = m.h().node_free_head.load(std::memory_order_relaxed);
         m.node(f).next_free.store(f, std::memory_order_relaxed);
       },
       "free list of trie nodes does not end"},
      {"free subscription record also held",
       [](Image& m, std::uint32_t, std::uint32_t s) {
         m.h().sub_free_head.store(s, std::memory_order_relaxed);
       },
       "which a listener holds"},
      {"edge to a node past the table",
       [](Image& m, std::uint32_t, std::uint32_t) {
         auto* edges = reinterpret_cast<std::atomic<std::uint64_t>*>(
             reinterpret_cast<char*>(&m.h()) + m.h().edge_off);
         edges[1].store((std::uint64_t{1} << 32) | 0xFFFFFFF0U, std::memory_order_relaxed);
       },
       "trie edge 1"},
      {"nodes_used above the table",
       [](Image& m, std::uint32_t, std::uint32_t) {
         m.h().nodes_used.store(m.h().trie_nodes + 1, std::memory_order_relaxed);
       },
       "nodes_used"},
      {"chunk held by a listener slot the bus does not have",
       [](Image& m, std::uint32_t, std::uint32_t) {
         m.chunk(0, 1).holders.store(1ULL << 47, std::memory_order_relaxed);
       },
       "chunk 1 of pool 0"},
      {"chunk header of another chunk",
       [](Image& m, std::uint32_t, std::uint32_t) { m.chunk(0, 2).self_ref += 1; },
       "chunk 2 of pool 0"},
      {"trie mutex of another type",
       [](Image& m, std::uint32_t, std::uint32_t) { m.h().trie_mutex.__data.__kind ^= 0x3; },
       "trie mutex"},
  };
  for (const Breakage& c : cases) {
    SCOPED_TRACE(c.name);
    Image sut(t_.core());
    const std::uint32_t s = first_sub(sut, *a_);
    ASSERT_NE(s, kNone);
    c.apply(sut, a_->index(), s);

    auto ok = sut.validate();

    ASSERT_FALSE(ok);
    EXPECT_EQ(ok.error().code, Errc::kForeignSegment);
    EXPECT_NE(ok.error().message.find("segment is corrupt: "), std::string::npos)
        << ok.error().message;
    EXPECT_NE(ok.error().message.find(c.expected), std::string::npos) << ok.error().message;
  }
}

TEST_F(Validate, LiveBusUnderChangeNeverFailsValidation) {
  constexpr int kRounds = 3000;
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    Listener l = t_.listen("");
    Publisher p = t_.bus().publisher();
    // relaxed: a lone stop flag.
    for (int i = 0; !stop.load(std::memory_order_relaxed); ++i) {
      const std::string f = "churn/" + std::to_string(i % 7) + "/+/x" + std::to_string(i % 3);
      (void)l.subscribe(f);
      (void)p.publish("churn/1/a/x1", "e");
      (void)l.try_receive();
      (void)l.unsubscribe(f);
      // Paced, so that some validations find the trie still between two
      // changes and walk its chains (a walk a change overlaps is skipped).
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  });
  detail::BusCore& core = t_.core();
  int failures = 0;
  std::string first;

  for (int i = 0; i < kRounds; ++i) {
    auto ok = detail::validate_structure(core.header(), core.base(), core.header().segment_bytes);
    if (!ok) {
      first = first.empty() ? ok.error().message : first;
      ++failures;
    }
  }
  // relaxed: see above; join orders the rest.
  stop.store(true, std::memory_order_relaxed);
  churn.join();

  EXPECT_EQ(failures, 0) << "first: " << first;
}

}  // namespace
}  // namespace ipcbus::test
