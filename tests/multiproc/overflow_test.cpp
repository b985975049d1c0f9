// overflow_test.cpp: each overflow policy with the publisher and the listener
// in different processes. The listener subscribes and then does not read
// until the test sends it SIGUSR1, so the ring's fill is known exactly when
// the publisher runs; the counters are read from the segment by this process.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "multiproc.hpp"

namespace ipcbus::test {
namespace {

constexpr int kCapacity = 8;

class Overflow : public MultiProc {
 protected:
  // Starts a listener of `policy` with a ring of kCapacity that holds off
  // reading until SIGUSR1, and waits until it is subscribed.
  pid_t start_holding_listener(const std::string& policy, std::vector<std::string> extra) {
    std::vector<std::string> args = {"--filter", "load/#",     "--overflow",
                                     policy,     "--capacity", std::to_string(kCapacity),
                                     "--hold",   "--ready-fd", std::to_string(ready_.write_end)};
    args.insert(args.end(), extra.begin(), extra.end());
    listener_out_ = temp_file("listener");
    const pid_t pid = start_peer("listen", args, listener_out_, {ready_.write_end});
    ready_.close_write();
    ready_ok_ = read_byte(ready_.read_end) == kReady;
    return pid;
  }

  std::string publish(int count, const std::string& out) {
    const Exit e = finish(start_peer(
        "publish",
        {"--topic", "load/x", "--count", std::to_string(count), "--block-timeout-ms", "30000"},
        out));
    EXPECT_TRUE(ended_ok(e)) << describe("publisher", out);
    const auto lines = lines_with(read_file(out), "published");
    return lines.empty() ? std::string() : lines[0];
  }

  Pipe ready_;
  bool ready_ok_ = false;
  std::string listener_out_;
};

TEST_F(Overflow, BlockPolicyHoldsPublisherProcessUntilSlowListenerReadsAll) {
  create_bus();
  constexpr int kEvents = 100;
  const pid_t listener =
      start_holding_listener("block", {"--count", std::to_string(kEvents), "--sleep-us", "300"});
  ASSERT_TRUE(ready_ok_) << describe("listener", listener_out_);
  const std::string publisher_out = temp_file("publisher");
  const pid_t publisher = start_peer(
      "publish",
      {"--topic", "load/x", "--count", std::to_string(kEvents), "--block-timeout-ms", "30000"},
      publisher_out);

  // The ring fills and the publisher, blocked on the next event, keeps running.
  ASSERT_TRUE(poll_until([&] {
    const auto l = listener_of(listener);
    return l && l->fill.used == kCapacity;
  })) << describe("listener", listener_out_);
  EXPECT_TRUE(still_running(publisher));
  EXPECT_EQ(listener_of(listener)->counters.delivered, static_cast<std::uint64_t>(kCapacity));
  kill(listener, SIGUSR1);
  const Exit publisher_exit = finish(publisher);
  const Exit listener_exit = finish(listener);

  ASSERT_TRUE(ended_ok(publisher_exit)) << describe("publisher", publisher_out);
  ASSERT_TRUE(ended_ok(listener_exit)) << describe("listener", listener_out_);
  const auto summary = lines_with(read_file(publisher_out), "published");
  ASSERT_EQ(summary.size(), 1U);
  EXPECT_EQ(field(summary[0], "ok"), kEvents);
  EXPECT_EQ(field(summary[0], "timed_out"), 0);
  EXPECT_EQ(field(summary[0], "delivered"), kEvents);
  EXPECT_EQ(field(summary[0], "skipped"), 0);
  const std::vector<Event> events = events_in(read_file(listener_out_));
  ASSERT_EQ(events.size(), static_cast<std::size_t>(kEvents));
  for (std::size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].sequence, i + 1);
    EXPECT_TRUE(events[i].intact);
  }
}

TEST_F(Overflow, DropNewestKeepsTheFirstEventsAndCountsTheRest) {
  create_bus();
  constexpr int kEvents = 20;
  const pid_t listener = start_holding_listener("drop-newest", {"--drain"});
  ASSERT_TRUE(ready_ok_) << describe("listener", listener_out_);

  const std::string summary = publish(kEvents, temp_file("publisher"));
  const std::optional<ListenerInfo> full = listener_of(listener);
  kill(listener, SIGUSR1);
  const Exit listener_exit = finish(listener);

  EXPECT_EQ(field(summary, "ok"), kEvents);
  EXPECT_EQ(field(summary, "delivered"), kCapacity);
  EXPECT_EQ(field(summary, "skipped"), kEvents - kCapacity);
  ASSERT_TRUE(full.has_value());
  EXPECT_EQ(full->fill.used, static_cast<std::uint32_t>(kCapacity));
  EXPECT_EQ(full->counters.delivered, static_cast<std::uint64_t>(kCapacity));
  EXPECT_EQ(full->counters.dropped_newest, static_cast<std::uint64_t>(kEvents - kCapacity));
  EXPECT_EQ(full->counters.dropped_oldest, 0U);
  ASSERT_TRUE(ended_ok(listener_exit)) << describe("listener", listener_out_);
  const std::vector<Event> events = events_in(read_file(listener_out_));
  ASSERT_EQ(events.size(), static_cast<std::size_t>(kCapacity));
  for (std::size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].sequence, i + 1) << "drop-newest must keep the oldest events";
    EXPECT_TRUE(events[i].intact);
  }
}

TEST_F(Overflow, DropOldestKeepsTheLastEventsAndCountsTheRest) {
  create_bus();
  constexpr int kEvents = 20;
  const pid_t listener = start_holding_listener("drop-oldest", {"--drain"});
  ASSERT_TRUE(ready_ok_) << describe("listener", listener_out_);

  const std::string summary = publish(kEvents, temp_file("publisher"));
  const std::optional<ListenerInfo> full = listener_of(listener);
  kill(listener, SIGUSR1);
  const Exit listener_exit = finish(listener);

  EXPECT_EQ(field(summary, "ok"), kEvents);
  EXPECT_EQ(field(summary, "delivered"), kEvents);
  EXPECT_EQ(field(summary, "skipped"), 0);
  ASSERT_TRUE(full.has_value());
  EXPECT_EQ(full->fill.used, static_cast<std::uint32_t>(kCapacity));
  EXPECT_EQ(full->counters.delivered, static_cast<std::uint64_t>(kEvents));
  EXPECT_EQ(full->counters.dropped_oldest, static_cast<std::uint64_t>(kEvents - kCapacity));
  EXPECT_EQ(full->counters.dropped_newest, 0U);
  ASSERT_TRUE(ended_ok(listener_exit)) << describe("listener", listener_out_);
  const std::vector<Event> events = events_in(read_file(listener_out_));
  ASSERT_EQ(events.size(), static_cast<std::size_t>(kCapacity));
  for (std::size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].sequence, kEvents - kCapacity + i + 1)
        << "drop-oldest must keep the newest events";
    EXPECT_TRUE(events[i].intact);
  }
}

}  // namespace
}  // namespace ipcbus::test
