// open_options_test.cpp: what OpenOptions and Config change about opening a
// bus (exclusive create, observe-only handles, the segment's mode and group),
// the bus's deduplicated error log, the receive-latency histogram, and the
// per-publisher counters that inspect() shows.
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "ipcbus/bus.hpp"
#include "ipcbus/config.hpp"
#include "test_bus.hpp"

namespace ipcbus::test {
namespace {

std::string segment_path(const std::string& bus) {
  return "/dev/shm/ipcbus." + bus;
}

bool segment_exists(const std::string& bus) {
  struct stat st {};
  return stat(segment_path(bus).c_str(), &st) == 0;
}

OpenOptions options_for(const std::string& name) {
  OpenOptions o;
  o.name = name;
  o.config = small_config();
  return o;
}

// The bus removed when the test ends, whatever it asserted on the way.
struct DestroyAtEnd {
  std::string name;
  ~DestroyAtEnd() { (void)Bus::destroy(name); }
};

std::optional<ListenerInfo> info_of(const Bus& bus, const Listener& l) {
  for (const ListenerInfo& info : bus.inspect().listeners) {
    if (info.index == l.index() && info.generation == l.generation()) {
      return info;
    }
  }
  return std::nullopt;
}

std::uint64_t bucket_sum(const LatencyHistogram& h) {
  std::uint64_t sum = 0;
  for (std::uint64_t c : h.counts) {
    sum += c;
  }
  return sum;
}

// publish_and_receive publishes `n` events on `topic` and receives them all
// on `l`, failing the test if any does not come.
void publish_and_receive(Bus& bus, Listener& l, const std::string& topic, int n) {
  Publisher p = bus.publisher();
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(p.publish(topic, "x").status, PublishStatus::kOk) << i;
    ASSERT_TRUE(l.receive_for(std::chrono::seconds(10)).has_value()) << i;
  }
}

// A group this process may give a segment to, other than its own if it can
// find one (as root any group will do); else its own group.
std::optional<std::pair<std::string, gid_t>> usable_group() {
  const gid_t own = getegid();
  std::vector<gid_t> candidates;
  if (geteuid() == 0) {
    setgrent();
    while (const group* g = getgrent()) {
      candidates.push_back(g->gr_gid);
    }
    endgrent();
  } else {
    std::vector<gid_t> groups(static_cast<std::size_t>(std::max(getgroups(0, nullptr), 0)));
    const int n = getgroups(static_cast<int>(groups.size()), groups.data());
    groups.resize(static_cast<std::size_t>(std::max(n, 0)));
    candidates = groups;
  }
  candidates.push_back(own);  // the fallback, tried last
  auto other = std::find_if(candidates.begin(), candidates.end(),
                            [own](gid_t g) { return g != own && getgrgid(g) != nullptr; });
  const gid_t chosen = other != candidates.end() ? *other : own;
  const group* g = getgrgid(chosen);
  if (g == nullptr) {
    return std::nullopt;
  }
  return std::make_pair(std::string(g->gr_name), chosen);
}

TEST(OpenOptions, ExclusiveCreateOfAnExistingBusIsAlreadyExistsAndLeavesItUntouched) {
  TestBus t;
  Listener l = t.listen("sensors/#");
  struct stat before {};
  ASSERT_EQ(stat(segment_path(t.name()).c_str(), &before), 0);
  const BusInfo info_before = t.bus().inspect();
  OpenOptions o = options_for(t.name());
  o.exclusive = true;
  o.config.ring_capacity = 2 * kRingCapacity;

  auto opened = Bus::open(o);

  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, Errc::kAlreadyExists) << opened.error().message;
  struct stat after {};
  ASSERT_EQ(stat(segment_path(t.name()).c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino);
  EXPECT_EQ(after.st_size, before.st_size);
  const BusInfo info_after = t.bus().inspect();
  EXPECT_EQ(info_after.config.ring_capacity, kRingCapacity);
  EXPECT_EQ(info_after.listeners.size(), info_before.listeners.size());
  EXPECT_EQ(info_after.processes.size(), info_before.processes.size());
  EXPECT_EQ(info_after.trie_version, info_before.trie_version);
  Publisher p = t.bus().publisher();
  EXPECT_EQ(p.publish("sensors/a", "still here").status, PublishStatus::kOk);
  auto sample = l.receive_for(std::chrono::seconds(10));
  ASSERT_TRUE(sample.has_value());
  EXPECT_EQ(text_of(*sample), "still here");
}

TEST(OpenOptions, ExclusiveCreateOfANewBusCreatesIt) {
  const DestroyAtEnd bus{unique_bus_name()};
  ASSERT_FALSE(segment_exists(bus.name));
  OpenOptions o = options_for(bus.name);
  o.exclusive = true;

  auto opened = Bus::open(o);

  ASSERT_TRUE(opened) << opened.error().message;
  EXPECT_TRUE(segment_exists(bus.name));
  EXPECT_EQ(opened.value().inspect().config.ring_capacity, kRingCapacity);
}

TEST(OpenOptions, ObserveOnlyOfAMissingBusIsNotFoundAndCreatesNothing) {
  const DestroyAtEnd bus{unique_bus_name()};
  OpenOptions o = options_for(bus.name);
  o.observe_only = true;  // create stays true: observe_only overrides it

  auto opened = Bus::open(o);

  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, Errc::kNotFound) << opened.error().message;
  EXPECT_FALSE(segment_exists(bus.name));
}

TEST(OpenOptions, ObserveOnlyTakesNoProcessEntry) {
  TestBus t;
  const std::size_t before = t.bus().inspect().processes.size();
  OpenOptions o = options_for(t.name());
  o.observe_only = true;

  auto observer = Bus::open(o);

  ASSERT_TRUE(observer) << observer.error().message;
  EXPECT_EQ(t.bus().inspect().processes.size(), before);
  EXPECT_EQ(observer.value().inspect().processes.size(), before);
  EXPECT_EQ(observer.value().inspect().name, t.name());
}

TEST(OpenOptions, ObserveOnlyOpensWhenTheProcessTableIsFull) {
  Config c = small_config();
  c.max_processes = 1;
  TestBus t(c);  // its handle holds the only process entry
  ASSERT_EQ(t.bus().inspect().processes.size(), 1U);
  const OpenOptions plain = options_for(t.name());
  OpenOptions observe = plain;
  observe.observe_only = true;

  auto refused = Bus::open(plain);
  auto observer = Bus::open(observe);

  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::kProcessTableFull) << refused.error().message;
  const BusInfo info = t.bus().inspect();
  EXPECT_TRUE(std::any_of(info.errors.begin(), info.errors.end(), [](const ErrorLogEntry& e) {
    return e.kind == "attach-refused";
  })) << "no attach-refused entry in the error log";
  ASSERT_TRUE(observer) << observer.error().message;
  EXPECT_EQ(observer.value().inspect().processes.size(), 1U);
}

TEST(OpenOptions, ModeGivesTheSegmentThosePermissionBits) {
  const DestroyAtEnd bus{unique_bus_name()};
  OpenOptions o = options_for(bus.name);
  o.config.mode = 0640;

  auto opened = Bus::open(o);

  ASSERT_TRUE(opened) << opened.error().message;
  struct stat st {};
  ASSERT_EQ(stat(segment_path(bus.name).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640U);
  EXPECT_EQ(opened.value().inspect().config.mode, 0640U);
}

TEST(OpenOptions, GroupGivesTheSegmentThatGroup) {
  const auto g = usable_group();
  ASSERT_TRUE(g.has_value()) << "no group name for gid " << getegid();
  const DestroyAtEnd bus{unique_bus_name()};
  OpenOptions o = options_for(bus.name);
  o.config.mode = 0660;
  o.config.group = g->first;

  auto opened = Bus::open(o);

  ASSERT_TRUE(opened) << opened.error().message;
  struct stat st {};
  ASSERT_EQ(stat(segment_path(bus.name).c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, g->second) << "group " << g->first;
  EXPECT_EQ(st.st_mode & 07777, 0660U);
}

TEST(OpenOptions, UnknownGroupIsAnInvalidArgumentNamingItAndLeavesNoSegment) {
  const DestroyAtEnd bus{unique_bus_name()};
  const std::string group_name = "no-such-group-" + std::to_string(getpid());
  ASSERT_EQ(getgrnam(group_name.c_str()), nullptr);
  OpenOptions o = options_for(bus.name);
  o.config.group = group_name;

  auto opened = Bus::open(o);

  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, Errc::kInvalidArgument) << opened.error().message;
  EXPECT_NE(opened.error().message.find(group_name), std::string::npos) << opened.error().message;
  EXPECT_FALSE(segment_exists(bus.name));
}

TEST(ErrorLog, SameKindAndMessageTwiceIsOneEntryCountedTwice) {
  TestBus t;
  const std::size_t before = t.bus().inspect().errors.size();

  t.bus().record_error("test-kind", "the same message");
  t.bus().record_error("test-kind", "the same message");

  const BusInfo info = t.bus().inspect();
  ASSERT_EQ(info.errors.size(), before + 1);
  const ErrorLogEntry& e = info.errors.back();
  EXPECT_EQ(e.kind, "test-kind");
  EXPECT_EQ(e.message, "the same message");
  EXPECT_EQ(e.count, 2U);
  EXPECT_LE(e.first_realtime_ns, e.last_realtime_ns);
}

TEST(ErrorLog, DifferentMessagesOrKindsAreSeparateEntries) {
  TestBus t;
  const std::size_t before = t.bus().inspect().errors.size();

  t.bus().record_error("test-kind", "one message");
  t.bus().record_error("test-kind", "another message");
  t.bus().record_error("other-kind", "one message");

  const BusInfo info = t.bus().inspect();
  ASSERT_EQ(info.errors.size(), before + 3);
  for (std::size_t i = before; i < info.errors.size(); ++i) {
    EXPECT_EQ(info.errors[i].count, 1U) << info.errors[i].kind << ": " << info.errors[i].message;
  }
}

TEST(LatencyHistogram, BucketBoundariesArePowersOfTwoFrom128Ns) {
  constexpr int kLast = LatencyHistogram::kBuckets - 1;

  EXPECT_EQ(LatencyHistogram::bucket_of(0), 0);
  EXPECT_EQ(LatencyHistogram::bucket_of(127), 0);
  EXPECT_EQ(LatencyHistogram::bucket_of(128), 1);
  EXPECT_EQ(LatencyHistogram::bucket_of(255), 1);
  EXPECT_EQ(LatencyHistogram::bucket_of(256), 2);
  EXPECT_EQ(LatencyHistogram::bucket_of(~std::uint64_t{0}), kLast);
  EXPECT_EQ(LatencyHistogram::upper_ns(0), 128U);
  EXPECT_EQ(LatencyHistogram::upper_ns(1), 256U);
  EXPECT_EQ(LatencyHistogram::upper_ns(kLast), 0U);
  for (int k = 0; k < kLast; ++k) {
    const std::uint64_t upper = LatencyHistogram::upper_ns(k);
    EXPECT_EQ(LatencyHistogram::bucket_of(upper - 1), k) << k;
    EXPECT_EQ(LatencyHistogram::bucket_of(upper), k + 1) << k;
  }
}

TEST(LatencyHistogram, OnCountsEachReceivedEventInExactlyOneBucket) {
  TestBus t;
  ListenerOptions lo;
  lo.latency_histogram = true;
  Listener l = t.listen("lat/#", lo);

  publish_and_receive(t.bus(), l, "lat/a", 10);

  const auto info = info_of(t.bus(), l);
  ASSERT_TRUE(info.has_value());
  EXPECT_TRUE(info->histogram_enabled);
  EXPECT_EQ(info->counters.received, 10U);
  EXPECT_EQ(bucket_sum(info->latency), info->counters.received);
}

TEST(LatencyHistogram, OffCountsNothing) {
  TestBus t;
  Listener l = t.listen("lat/#");

  publish_and_receive(t.bus(), l, "lat/a", 10);

  const auto info = info_of(t.bus(), l);
  ASSERT_TRUE(info.has_value());
  EXPECT_FALSE(info->histogram_enabled);
  EXPECT_EQ(info->counters.received, 10U);
  EXPECT_EQ(bucket_sum(info->latency), 0U);
}

TEST(LatencyHistogram, SwitchedOnMidwayCountsFromThenOn) {
  TestBus t;
  Listener l = t.listen("lat/#");
  publish_and_receive(t.bus(), l, "lat/a", 4);

  l.set_latency_histogram(true);
  publish_and_receive(t.bus(), l, "lat/a", 6);

  const auto info = info_of(t.bus(), l);
  ASSERT_TRUE(info.has_value());
  EXPECT_TRUE(info->histogram_enabled);
  EXPECT_EQ(info->counters.received, 10U);
  EXPECT_EQ(bucket_sum(info->latency), 6U);
}

TEST(PublisherInfo, LivePublisherShowsItsCountsAndGoesWithIt) {
  TestBus t;
  Listener l = t.listen("pub/#");
  std::uint32_t id = 0;
  {
    Publisher p = t.bus().publisher();
    id = p.id();
    ASSERT_EQ(p.publish("pub/a", "abc").status, PublishStatus::kOk);
    ASSERT_EQ(p.publish("pub/a", "defgh").status, PublishStatus::kOk);

    const BusInfo info = t.bus().inspect();

    auto it = std::find_if(info.publishers.begin(), info.publishers.end(),
                           [id](const PublisherInfo& pi) { return pi.id == id; });
    ASSERT_NE(it, info.publishers.end()) << "publisher " << id << " not in inspect()";
    EXPECT_EQ(it->published, 2U);
    EXPECT_EQ(it->bytes, 8U);
    EXPECT_EQ(it->pid, getpid());
  }

  const BusInfo after = t.bus().inspect();
  EXPECT_TRUE(std::none_of(after.publishers.begin(), after.publishers.end(),
                           [id](const PublisherInfo& pi) { return pi.id == id; }))
      << "publisher " << id << " still shown after it was destroyed";
}

}  // namespace
}  // namespace ipcbus::test
