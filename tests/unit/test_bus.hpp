// test_bus.hpp: a small bus with a name of its own for one unit test, destroyed
// when the test ends.
//
// TestBus opens (creates) the bus through the public API. Tests that reach the
// library's internals (rings, pools, trie, state words) ask it for core(): a
// second BusCore over a mapping of its own of the same segment, registered as
// no process, so that it changes no process table entry and closes nothing
// when it goes.
//
// Declare the TestBus first in a test, so that every Listener, Publisher,
// Sample and Loan of the test is gone before the bus is destroyed.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "core.hpp"
#include "ipcbus/bus.hpp"
#include "ipcbus/config.hpp"
#include "segment.hpp"

namespace ipcbus::test {

// Class 0 holds kSmallPayload bytes, class 1 kLargePayload; a ring holds 64.
inline constexpr std::uint32_t kSmallPayload = 64;
inline constexpr std::uint32_t kSmallCount = 16;
inline constexpr std::uint32_t kLargePayload = 256;
inline constexpr std::uint32_t kLargeCount = 4;
inline constexpr std::uint32_t kRingCapacity = 64;
inline constexpr std::uint32_t kMaxListeners = 8;

// small_config is the Config every test starts from: a few chunks in two
// classes, short rings, a trie of a few hundred nodes.
inline Config small_config() {
  Config c;
  c.pools = {{kSmallPayload, kSmallCount}, {kLargePayload, kLargeCount}};
  c.max_listeners = kMaxListeners;
  c.ring_capacity = kRingCapacity;
  c.trie_nodes = 512;
  c.subscriptions = 512;
  c.max_topic_bytes = 128;
  c.max_level_bytes = 32;
  c.max_processes = 8;
  return c;
}

// unique_bus_name gives a bus name no other test, run or process uses at once:
// "ut-<pid>-<counter>-<test name>".
inline std::string unique_bus_name() {
  static std::atomic<std::uint32_t> counter{0};
  std::string test_name = "none";
  if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info()) {
    test_name = info->name();
  }
  std::string name = "ut-" + std::to_string(getpid()) + "-" +
                     // relaxed: only uniqueness is needed.
                     std::to_string(counter.fetch_add(1, std::memory_order_relaxed)) + "-";
  for (char ch : test_name.substr(0, 80)) {
    const bool keep =
        (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
    name += keep ? ch : '_';
  }
  return name;
}

// map_existing maps bus `name`, which must exist, for a BusCore of a test's
// own; it throws when it cannot.
inline detail::Mapping map_existing(const std::string& name) {
  OpenOptions o;
  o.name = name;
  o.create = false;
  auto mapped = detail::map_bus(name, o);
  if (!mapped) {
    throw std::runtime_error("cannot map test bus " + name + ": " + mapped.error().message);
  }
  return std::move(mapped).value();
}

class TestBus {
 public:
  explicit TestBus(const Config& config = small_config()) : name_(unique_bus_name()) {
    OpenOptions o;
    o.name = name_;
    o.config = config;
    auto opened = Bus::open(o);
    if (!opened) {
      // A constructor cannot ASSERT; gtest reports the exception as a failure.
      throw std::runtime_error("cannot open test bus " + name_ + ": " + opened.error().message);
    }
    bus_.emplace(std::move(opened).value());
  }
  ~TestBus() {
    raw_core_.reset();
    raw_.reset();
    bus_.reset();
    (void)Bus::destroy(name_);
  }
  TestBus(const TestBus&) = delete;
  TestBus& operator=(const TestBus&) = delete;

  Bus& bus() { return *bus_; }
  const std::string& name() const { return name_; }

  // core is the segment seen from inside, through a mapping of its own.
  detail::BusCore& core() {
    if (!raw_core_) {
      raw_.emplace(map_existing(name_));
      raw_core_ = std::make_unique<detail::BusCore>(
          name_, raw_->base, static_cast<std::size_t>(raw_->bytes), detail::kNone);
    }
    return *raw_core_;
  }

  // listen opens a listener that holds `filter` (none when empty).
  Listener listen(std::string_view filter, ListenerOptions options = {}) {
    auto l = bus().listen(options);
    if (!l) {
      throw std::runtime_error("cannot open listener: " + l.error().message);
    }
    if (!filter.empty()) {
      if (auto ok = l->subscribe(filter); !ok) {
        throw std::runtime_error("cannot subscribe " + std::string(filter) + ": " +
                                 ok.error().message);
      }
    }
    return std::move(l).value();
  }

  // free_chunks is what inspect() reports free in pool class k.
  std::uint32_t free_chunks(std::size_t k) const { return bus_->inspect().pools.at(k).free; }

 private:
  std::string name_;
  std::optional<Bus> bus_;
  std::optional<detail::Mapping> raw_;
  std::unique_ptr<detail::BusCore> raw_core_;
};

// The payload of a sample as a string, for comparisons.
inline std::string text_of(const Sample& s) {
  return std::string(s.payload_text());
}

}  // namespace ipcbus::test
