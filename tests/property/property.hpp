// property.hpp: what the property tests share: running a RapidCheck property
// as a GoogleTest with a run count of its own, and a scratch bus made and
// destroyed through the public API only.
//
// The properties drive the library through ipcbus/bus.hpp alone (no
// internal header), so that they hold whatever the pools, rings and trie
// look like inside: each one runs random operations against the bus and
// against a small reference model side by side and asserts, after every
// step, that the two agree.
//
// Run counts: each property has a default (see check_property). Setting
// RC_PARAMS="max_success=N" overrides every default; a failure prints the
// RC_PARAMS="reproduce=..." string that replays its shrunk counterexample.
#pragma once

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "ipcbus/bus.hpp"
#include "ipcbus/config.hpp"
#include "ipcbus/result.hpp"

namespace ipcbus {

// Names for RapidCheck's reports of a failed RC_ASSERT (found by ADL).
inline std::ostream& operator<<(std::ostream& os, PublishStatus s) {
  return os << publish_status_name(s);
}
inline std::ostream& operator<<(std::ostream& os, Errc e) {
  return os << errc_name(e);
}
inline std::ostream& operator<<(std::ostream& os, Overflow o) {
  return os << overflow_name(o);
}
inline std::ostream& operator<<(std::ostream& os, ListenerState s) {
  return os << listener_state_name(s);
}

}  // namespace ipcbus

namespace ipcbus::prop {

// check_property runs `property` (a callable taking no argument that draws
// its inputs with *gen) `runs` times as the current GoogleTest, unless
// RC_PARAMS names max_success, and fails the test with RapidCheck's report
// (the shrunk counterexample and how to reproduce it). On success it prints
// the distribution of what the property classified, if anything.
template <class Property>
void check_property(int runs, Property&& property) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  rc::detail::TestMetadata metadata;
  metadata.id = std::string(info->test_suite_name()) + "/" + info->name();
  metadata.description = info->name();
  rc::detail::TestParams params = rc::detail::configuration().testParams;
  const char* env = std::getenv("RC_PARAMS");
  if (env == nullptr || std::string_view(env).find("max_success") == std::string_view::npos) {
    params.maxSuccess = runs;
  }
  const auto result = rc::detail::checkTestable(std::forward<Property>(property), metadata, params);
  std::ostringstream report;
  rc::detail::printResultMessage(result, report);
  if (!result.template is<rc::detail::SuccessResult>()) {
    FAIL() << report.str();
  }
  // The share of runs that reached each case the property classifies, so a
  // log shows that the cases that matter were reached.
  if (!result.template get<rc::detail::SuccessResult>().distribution.empty()) {
    std::cout << report.str();
  }
}

// ScratchBus creates a bus of its own (a name no other run or process
// uses) with `config`, and destroys it when it goes. Declare it before every
// Publisher, Listener, Loan and Sample of the run, so that they go first.
class ScratchBus {
 public:
  explicit ScratchBus(const Config& config) : name_(next_name()) {
    OpenOptions o;
    o.name = name_;
    o.config = config;
    o.exclusive = true;  // a leftover of a killed run must not be picked up
    auto opened = Bus::open(o);
    if (!opened && opened.error().code == Errc::kAlreadyExists) {
      (void)Bus::destroy(name_);
      opened = Bus::open(o);
    }
    if (!opened) {
      throw std::runtime_error("cannot create bus " + name_ + ": " + opened.error().message);
    }
    bus_.emplace(std::move(opened).value());
  }
  ~ScratchBus() {
    bus_.reset();
    (void)Bus::destroy(name_);
  }
  ScratchBus(const ScratchBus&) = delete;
  ScratchBus& operator=(const ScratchBus&) = delete;

  Bus& bus() { return *bus_; }

 private:
  static std::string next_name() {
    static std::uint32_t counter = 0;  // the properties run on one thread
    return "prop-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
  }

  std::string name_;
  std::optional<Bus> bus_;
};

// small_config is the start of every property's bus: sizes small enough that
// rings fill and pools run dry within a few operations.
inline Config small_config() {
  Config c;
  c.pools = {{64, 16}};
  c.max_listeners = 4;
  c.ring_capacity = 8;
  c.trie_nodes = 64;
  c.subscriptions = 64;
  c.max_topic_bytes = 64;
  c.max_level_bytes = 16;
  c.max_processes = 4;
  c.max_publishers = 4;
  return c;
}

// The listener, by slot, as inspect() reports it; nothing if not there.
inline std::optional<ListenerInfo> info_of(const BusInfo& info, const Listener& l) {
  for (const ListenerInfo& li : info.listeners) {
    if (li.index == l.index() && li.generation == l.generation()) {
      return li;
    }
  }
  return std::nullopt;
}

}  // namespace ipcbus::prop
