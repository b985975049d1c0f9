// pubsub_test.cpp: publish and subscribe between real processes: one
// publisher process to one listener process, wildcard filters in several
// listener processes, pause and resume, and a sleeping listener woken by a
// publisher in another process.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "ipcbus/topic.hpp"
#include "multiproc.hpp"

namespace ipcbus::test {
namespace {

using PubSub = MultiProc;

TEST_F(PubSub, ListenerProcessReceivesEveryEventInOrderWithItsPayload) {
  create_bus();
  constexpr int kEvents = 2000;
  Pipe ready;
  const std::string listener_out = temp_file("listener");
  const std::string publisher_out = temp_file("publisher");
  const pid_t listener =
      start_peer("listen",
                 {"--filter", "sensors/+/temp", "--count", std::to_string(kEvents), "--overflow",
                  "block", "--ready-fd", std::to_string(ready.write_end)},
                 listener_out, {ready.write_end});
  ready.close_write();
  ASSERT_EQ(read_byte(ready.read_end), kReady) << describe("listener", listener_out);

  const pid_t publisher = start_peer("publish",
                                     {"--topic", "sensors/kitchen/temp", "--count",
                                      std::to_string(kEvents), "--block-timeout-ms", "30000"},
                                     publisher_out);
  const Exit publisher_exit = finish(publisher);
  const Exit listener_exit = finish(listener);

  ASSERT_TRUE(ended_ok(publisher_exit)) << describe("publisher", publisher_out);
  ASSERT_TRUE(ended_ok(listener_exit)) << describe("listener", listener_out);
  const auto summary = lines_with(read_file(publisher_out), "published");
  ASSERT_EQ(summary.size(), 1U);
  EXPECT_EQ(field(summary[0], "ok"), kEvents);
  EXPECT_EQ(field(summary[0], "delivered"), kEvents);
  EXPECT_EQ(field(summary[0], "skipped"), 0);
  const std::vector<Event> events = events_in(read_file(listener_out));
  ASSERT_EQ(events.size(), static_cast<std::size_t>(kEvents));
  for (std::size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].publisher, field(summary[0], "id"));
    EXPECT_EQ(events[i].sequence, i + 1) << "event " << i << " out of order";
    EXPECT_EQ(events[i].topic, "sensors/kitchen/temp");
    EXPECT_EQ(events[i].length, varying_payload_size(i + 1));
    EXPECT_TRUE(events[i].intact) << "payload of event " << i + 1 << " damaged";
  }
}

TEST_F(PubSub, EachWildcardListenerProcessGetsWhatFilterMatchesPredicts) {
  create_bus();
  const std::vector<std::string> filters = {"a/+/c", "a/#", "#"};
  const std::vector<std::string> topics = {"a/b/c", "a/x/c", "a/b",    "a",     "a/b/c/d",
                                           "b/c",   "a//c",  "$SYS/a", "a/c/c/"};
  constexpr int kRounds = 30;
  const int events = kRounds * static_cast<int>(topics.size());
  std::vector<std::string> topic_args;
  for (const std::string& t : topics) {
    topic_args.insert(topic_args.end(), {"--topic", t});
  }
  std::vector<long> expected(filters.size(), 0);
  long reaching_nobody = 0;
  for (int i = 0; i < events; ++i) {
    bool reached = false;
    for (std::size_t f = 0; f < filters.size(); ++f) {
      const bool m =
          filter_matches(filters[f], topics[static_cast<std::size_t>(i) % topics.size()]);
      expected[f] += m ? 1 : 0;
      reached = reached || m;
    }
    reaching_nobody += reached ? 0 : 1;
  }
  std::vector<pid_t> listeners;
  std::vector<std::string> outs;
  std::vector<std::unique_ptr<Pipe>> ready;
  for (std::size_t f = 0; f < filters.size(); ++f) {
    ready.push_back(std::make_unique<Pipe>());
    outs.push_back(temp_file("listener"));
    listeners.push_back(
        start_peer("listen",
                   {"--filter", filters[f], "--count", std::to_string(expected[f]), "--overflow",
                    "block", "--linger", "--ready-fd", std::to_string(ready[f]->write_end)},
                   outs[f], {ready[f]->write_end}));
    ready[f]->close_write();
  }
  for (std::size_t f = 0; f < filters.size(); ++f) {
    ASSERT_EQ(read_byte(ready[f]->read_end), kReady) << describe("listener", outs[f]);
  }

  const std::string publisher_out = temp_file("publisher");
  std::vector<std::string> args = {"--count", std::to_string(events), "--block-timeout-ms",
                                   "30000"};
  args.insert(args.end(), topic_args.begin(), topic_args.end());
  const Exit publisher_exit = finish(start_peer("publish", args, publisher_out));
  // Every listener has its count; SIGUSR1 lets each count what is left over.
  for (std::size_t f = 0; f < filters.size(); ++f) {
    EXPECT_EQ(read_byte(ready[f]->read_end), kFinished) << describe("listener", outs[f]);
    kill(listeners[f], SIGUSR1);
  }

  ASSERT_TRUE(ended_ok(publisher_exit)) << describe("publisher", publisher_out);
  const auto summary = lines_with(read_file(publisher_out), "published");
  ASSERT_EQ(summary.size(), 1U);
  EXPECT_EQ(field(summary[0], "no_listeners"), reaching_nobody);
  EXPECT_EQ(field(summary[0], "ok"), events - reaching_nobody);
  EXPECT_EQ(field(summary[0], "delivered"), expected[0] + expected[1] + expected[2]);
  for (std::size_t f = 0; f < filters.size(); ++f) {
    ASSERT_TRUE(ended_ok(finish(listeners[f]))) << describe("listener", outs[f]);
    const std::string out = read_file(outs[f]);
    const std::vector<Event> got = events_in(out);
    EXPECT_EQ(static_cast<long>(got.size()), expected[f]) << filters[f];
    EXPECT_EQ(lines_with(out, "extra"), std::vector<std::string>{"extra 0"}) << filters[f];
    std::uint64_t last = 0;
    for (const Event& e : got) {
      EXPECT_GT(e.sequence, last) << filters[f] << ": out of order";
      last = e.sequence;
      EXPECT_EQ(e.topic, topics[(e.sequence - 1) % topics.size()]) << filters[f];
      EXPECT_TRUE(filter_matches(filters[f], e.topic)) << filters[f] << " got " << e.topic;
      EXPECT_TRUE(e.intact);
    }
  }
}

TEST_F(PubSub, PausedListenerProcessIsSkippedAndReceivesAgainAfterResume) {
  create_bus();
  constexpr int kEach = 5;
  Pipe ready;
  const std::string listener_out = temp_file("listener");
  const pid_t listener =
      start_peer("listen",
                 {"--filter", "jobs/#", "--count", std::to_string(2 * kEach), "--overflow", "block",
                  "--pause-cycle", "--ready-fd", std::to_string(ready.write_end)},
                 listener_out, {ready.write_end});
  ready.close_write();
  ASSERT_EQ(read_byte(ready.read_end), kReady) << describe("listener", listener_out);
  auto publish_batch = [&](const std::string& tag) {
    const std::string out = temp_file(tag);
    const Exit e = finish(
        start_peer("publish", {"--topic", "jobs/" + tag, "--count", std::to_string(kEach)}, out));
    EXPECT_TRUE(ended_ok(e)) << describe(tag, out);
    const auto lines = lines_with(read_file(out), "published");
    return lines.empty() ? std::string() : lines[0];
  };

  const std::string before = publish_batch("before");
  kill(listener, SIGUSR1);
  ASSERT_EQ(read_byte(ready.read_end), kPaused) << describe("listener", listener_out);
  ASSERT_EQ(listener_of(listener).value().state, ListenerState::kPaused);
  const std::string paused = publish_batch("paused");
  kill(listener, SIGUSR1);
  ASSERT_EQ(read_byte(ready.read_end), kResumed) << describe("listener", listener_out);
  ASSERT_EQ(listener_of(listener).value().state, ListenerState::kActive);
  const std::string after = publish_batch("after");
  const Exit listener_exit = finish(listener);

  EXPECT_EQ(field(before, "delivered"), kEach);
  EXPECT_EQ(field(paused, "delivered"), 0);
  EXPECT_EQ(field(paused, "skipped"), kEach);
  EXPECT_EQ(field(paused, "ok"), kEach);
  EXPECT_EQ(field(after, "delivered"), kEach);
  ASSERT_TRUE(ended_ok(listener_exit)) << describe("listener", listener_out);
  std::map<std::string, int> per_topic;
  for (const Event& e : events_in(read_file(listener_out))) {
    ++per_topic[e.topic];
    EXPECT_NE(e.publisher, field(paused, "id")) << "an event published while paused arrived";
  }
  EXPECT_EQ(per_topic, (std::map<std::string, int>{{"jobs/before", kEach}, {"jobs/after", kEach}}));
}

TEST_F(PubSub, SleepingListenerProcessIsWokenByPublisherProcess) {
  create_bus();
  Pipe ready;
  const std::string listener_out = temp_file("listener");
  const pid_t listener =
      start_peer("listen",
                 {"--filter", "doorbell", "--count", "1", "--wait", "sleep", "--blocking-receive",
                  "--linger", "--ready-fd", std::to_string(ready.write_end)},
                 listener_out, {ready.write_end});
  ready.close_write();
  ASSERT_EQ(read_byte(ready.read_end), kReady) << describe("listener", listener_out);
  const std::optional<ListenerInfo> slot = listener_of(listener);
  ASSERT_TRUE(slot.has_value());
  ASSERT_EQ(slot->wait, WaitStrategy::kSleep);
  RawSegment raw(bus_);
  ASSERT_TRUE(raw.mapped());
  // The listener announces itself asleep and then makes no system call but
  // the futex wait; asleep by its flag and by the kernel, it is in that wait.
  const bool asleep = poll_until([&] {
    // relaxed: a flag read from outside for a test; the process state decides.
    const bool flagged = raw.slot(slot->index).sleeping.load(std::memory_order_relaxed) == 1;
    const std::string stat = read_file("/proc/" + std::to_string(listener) + "/stat");
    const std::size_t paren = stat.rfind(')');
    return flagged && paren != std::string::npos && stat.compare(paren + 2, 1, "S") == 0;
  });
  ASSERT_TRUE(asleep) << describe("listener", listener_out);

  const std::string publisher_out = temp_file("publisher");
  const Exit publisher_exit =
      finish(start_peer("publish", {"--topic", "doorbell", "--count", "1"}, publisher_out));
  ASSERT_TRUE(ended_ok(publisher_exit)) << describe("publisher", publisher_out);
  ASSERT_EQ(read_byte(ready.read_end), kFinished) << describe("listener", listener_out);
  const std::optional<ListenerInfo> woken = listener_of(listener);
  kill(listener, SIGUSR1);
  const Exit listener_exit = finish(listener);

  ASSERT_TRUE(woken.has_value());
  EXPECT_GE(woken->counters.wakeups, 1U);
  EXPECT_EQ(woken->counters.received, 1U);
  ASSERT_TRUE(ended_ok(listener_exit)) << describe("listener", listener_out);
  const std::vector<Event> events = events_in(read_file(listener_out));
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].topic, "doorbell");
  EXPECT_TRUE(events[0].intact);
}

}  // namespace
}  // namespace ipcbus::test
