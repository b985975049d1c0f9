// bad_input_test.cpp: unit tests of what the library refuses, and how: bad
// topics, filters, payload sizes, exhausted resources, foreign or mismatched
// segments, bad configurations and bus names. Each refusal must come with the
// documented code, leave nothing half done, and never crash.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "layout.hpp"
#include "test_bus.hpp"

namespace ipcbus {
namespace {

using test::TestBus;

// --- topics, filters, payloads ----------------------------------------------------

class BadTopic : public ::testing::TestWithParam<std::string> {};

TEST_P(BadTopic, PublishIsRejectedAndQueuesNothing) {
  TestBus tb;
  Listener all = tb.listen("#");
  Publisher sut = tb.bus().publisher();

  const PublishResult r = sut.publish(GetParam(), "x");

  EXPECT_EQ(r.status, PublishStatus::kInvalidTopic);
  EXPECT_EQ(r.delivered, 0U);
  EXPECT_EQ(r.sequence, 0U);
  EXPECT_FALSE(all.try_receive().has_value());
  EXPECT_EQ(all.counters().delivered, 0U);
  EXPECT_EQ(tb.free_chunks(0), test::kSmallCount);
}

TEST_P(BadTopic, PublishedLoanIsRejectedAndReturnsItsChunk) {
  TestBus tb;
  Listener all = tb.listen("#");
  Publisher sut = tb.bus().publisher();
  auto loan = sut.loan(8);
  ASSERT_TRUE(loan.has_value());

  const PublishResult r = sut.publish(GetParam(), std::move(loan).value());

  EXPECT_EQ(r.status, PublishStatus::kInvalidTopic);
  EXPECT_FALSE(all.try_receive().has_value());
  EXPECT_EQ(tb.free_chunks(0), test::kSmallCount);
}

INSTANTIATE_TEST_SUITE_P(Mqtt, BadTopic,
                         ::testing::Values(std::string("a/+"), std::string("a/#"), std::string("#"),
                                           std::string(""), std::string("a\0b", 3),
                                           std::string("bad\xff"), std::string(129, 't')));

struct BadFilterCase {
  std::string filter;
  std::string reason;  // a fragment the error message must hold
};

class BadFilter : public ::testing::TestWithParam<BadFilterCase> {};

TEST_P(BadFilter, SubscribeIsRejectedWithTheReason) {
  TestBus tb;
  Listener sut = tb.listen("");

  const auto r = sut.subscribe(GetParam().filter);

  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kInvalidFilter);
  EXPECT_NE(r.error().message.find(GetParam().reason), std::string::npos) << r.error().message;
  EXPECT_EQ(tb.bus().inspect().trie_nodes_used, 1U);
  EXPECT_TRUE(sut.filters().empty());
}

TEST_P(BadFilter, UnsubscribeIsRejectedAsInvalid) {
  TestBus tb;
  Listener sut = tb.listen("");

  const auto r = sut.unsubscribe(GetParam().filter);

  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kInvalidFilter);
}

INSTANTIATE_TEST_SUITE_P(
    Mqtt, BadFilter,
    ::testing::Values(BadFilterCase{"a/#/b", "last level"}, BadFilterCase{"a+", "entire level"},
                      BadFilterCase{"#a", "entire level"}, BadFilterCase{"a/b#", "entire level"},
                      BadFilterCase{"", "empty"}, BadFilterCase{std::string("a\0b", 3), "NUL"},
                      BadFilterCase{"a/\xc3", "UTF-8"},
                      BadFilterCase{std::string(129, 'f'), "longer than"}));

TEST(BadInput, OversizePublishIsPayloadTooLargeAndQueuesNothing) {
  TestBus tb;
  Listener l = tb.listen("big");
  Publisher sut = tb.bus().publisher();

  const PublishResult r = sut.publish("big", std::string(test::kLargePayload + 1, 'x'));

  EXPECT_EQ(r.status, PublishStatus::kPayloadTooLarge);
  EXPECT_EQ(r.sequence, 0U);
  EXPECT_EQ(l.counters().delivered, 0U);
}

TEST(BadInput, OversizeLoanIsPayloadTooLargeAndSaysTheLimit) {
  TestBus tb;
  Publisher sut = tb.bus().publisher();

  auto loan = sut.loan(test::kLargePayload + 1);

  ASSERT_FALSE(loan.has_value());
  EXPECT_EQ(loan.error().code, Errc::kPayloadTooLarge);
  EXPECT_NE(loan.error().message.find(std::to_string(test::kLargePayload)), std::string::npos)
      << loan.error().message;
}

TEST(BadInput, ExhaustedPoolFailsLoanAndPublishAndKeepsEarlierEvents) {
  TestBus tb;
  Listener l = tb.listen("ex/t");
  Publisher sut = tb.bus().publisher();
  for (std::uint32_t i = 0; i < test::kLargeCount; ++i) {
    ASSERT_EQ(sut.publish("ex/t", std::string(200, static_cast<char>('A' + i))).delivered, 1U);
  }

  auto loan = sut.loan(200);
  const PublishResult r = sut.publish("ex/t", std::string(200, 'Z'));

  ASSERT_FALSE(loan.has_value());
  EXPECT_EQ(loan.error().code, Errc::kPoolExhausted);
  EXPECT_EQ(r.status, PublishStatus::kPoolExhausted);
  EXPECT_EQ(sut.publish("ex/t", "small still fits").status, PublishStatus::kOk);
  for (std::uint32_t i = 0; i < test::kLargeCount; ++i) {
    auto s = l.try_receive();
    ASSERT_TRUE(s.has_value());
    EXPECT_EQ(test::text_of(*s), std::string(200, static_cast<char>('A' + i)));
  }
}

TEST(BadInput, FullListenerTableIsListenerTableFull) {
  TestBus tb;
  std::vector<Listener> ls;
  for (std::uint32_t i = 0; i < test::kMaxListeners; ++i) {
    ls.push_back(tb.listen(""));
  }

  auto extra = tb.bus().listen({});

  ASSERT_FALSE(extra.has_value());
  EXPECT_EQ(extra.error().code, Errc::kListenerTableFull);
  EXPECT_NE(extra.error().message.find("max_listeners"), std::string::npos);
}

TEST(BadInput, ClosingOneListenerOfAFullTableMakesRoom) {
  TestBus tb;
  std::vector<Listener> ls;
  for (std::uint32_t i = 0; i < test::kMaxListeners; ++i) {
    ls.push_back(tb.listen(""));
  }
  ls[3].close();

  auto again = tb.bus().listen({});

  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->index(), ls[3].index());
}

TEST(BadInput, HighWaterPercentOutsideOneToHundredIsInvalid) {
  TestBus tb;
  ListenerOptions zero;
  zero.high_water_percent = 0;
  ListenerOptions above;
  above.high_water_percent = 101;

  auto a = tb.bus().listen(zero);
  auto b = tb.bus().listen(above);

  ASSERT_FALSE(a.has_value());
  ASSERT_FALSE(b.has_value());
  EXPECT_EQ(a.error().code, Errc::kInvalidArgument);
  EXPECT_EQ(b.error().code, Errc::kInvalidArgument);
  EXPECT_TRUE(tb.bus().inspect().listeners.empty());
}

// --- segments that are not ours, or not of this layout ------------------------------

// A /dev/shm object made by hand under a bus's name, removed at the end.
class RawShm {
 public:
  RawShm(const std::string& bus, std::size_t bytes) : path_("/ipcbus." + bus), bytes_(bytes) {
    fd_ = shm_open(path_.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd_ >= 0 && ftruncate(fd_, static_cast<off_t>(bytes)) == 0) {
      base_ = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    }
  }
  // Maps the segment an existing bus made.
  explicit RawShm(const std::string& bus) : path_("/ipcbus." + bus) {
    fd_ = shm_open(path_.c_str(), O_RDWR, 0600);
    owned_ = false;
    if (fd_ >= 0) {
      bytes_ = static_cast<std::size_t>(lseek(fd_, 0, SEEK_END));
      base_ = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    }
  }
  ~RawShm() {
    if (base_ != MAP_FAILED && base_ != nullptr) {
      munmap(base_, bytes_);
    }
    if (fd_ >= 0) {
      close(fd_);
    }
    if (owned_) {
      shm_unlink(path_.c_str());
    }
  }
  RawShm(const RawShm&) = delete;
  RawShm& operator=(const RawShm&) = delete;

  bool ok() const { return base_ != MAP_FAILED && base_ != nullptr; }
  unsigned char* bytes() const { return static_cast<unsigned char*>(base_); }
  std::vector<unsigned char> copy() const { return {bytes(), bytes() + bytes_}; }
  detail::SegmentHeader& header() const { return *reinterpret_cast<detail::SegmentHeader*>(base_); }

 private:
  std::string path_;
  std::size_t bytes_ = 0;
  int fd_ = -1;
  void* base_ = nullptr;
  bool owned_ = true;
};

constexpr std::size_t kForeignBytes = 64 * 1024;

Result<Bus> open_named(const std::string& name, bool create = true) {
  OpenOptions o;
  o.name = name;
  o.create = create;
  o.config = test::small_config();
  o.ready_timeout = std::chrono::milliseconds(20);
  return Bus::open(o);
}

TEST(BadSegment, RandomBytesAreAForeignSegmentAndStayUnchanged) {
  const std::string name = test::unique_bus_name();
  RawShm shm(name, kForeignBytes);
  ASSERT_TRUE(shm.ok());
  std::mt19937 rng(12345);
  for (std::size_t i = 0; i < kForeignBytes; ++i) {
    shm.bytes()[i] = static_cast<unsigned char>(rng());
  }
  const std::vector<unsigned char> before = shm.copy();

  auto r = open_named(name);

  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kForeignSegment) << r.error().message;
  EXPECT_TRUE(shm.copy() == before) << "the segment was written to";
}

TEST(BadSegment, ZerosWithAWrongMagicAreAForeignSegmentAndStayUnchanged) {
  const std::string name = test::unique_bus_name();
  RawShm shm(name, kForeignBytes);
  ASSERT_TRUE(shm.ok());
  const std::uint64_t wrong = detail::kMagic ^ 0x10;
  std::memcpy(shm.bytes(), &wrong, sizeof(wrong));
  const std::vector<unsigned char> before = shm.copy();

  auto r = open_named(name, /*create=*/false);

  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kForeignSegment) << r.error().message;
  EXPECT_TRUE(shm.copy() == before) << "the segment was written to";
}

// A file smaller than a segment header was never a bus (a creator sizes its
// file from 0 to the whole segment in one step): an opener that may create
// must not take it for a half-made bus and overwrite it.
TEST(BadSegment, AFileSmallerThanAHeaderIsAForeignSegmentAndStaysUnchanged) {
  for (const std::size_t bytes : {std::size_t{7}, std::size_t{100}}) {
    const std::string name = test::unique_bus_name();
    RawShm shm(name, bytes);
    ASSERT_TRUE(shm.ok());
    std::memcpy(shm.bytes(), "abcdefg", 7);
    const std::vector<unsigned char> before = shm.copy();

    auto r = open_named(name);

    ASSERT_FALSE(r.has_value()) << bytes << " bytes were taken for a bus";
    EXPECT_EQ(r.error().code, Errc::kForeignSegment) << r.error().message;
    EXPECT_NE(r.error().message.find(std::to_string(bytes) + " bytes"), std::string::npos)
        << r.error().message;
    struct stat st {};
    ASSERT_EQ(stat(("/dev/shm/ipcbus." + name).c_str(), &st), 0);
    EXPECT_EQ(static_cast<std::size_t>(st.st_size), bytes) << "the file was resized";
    EXPECT_TRUE(shm.copy() == before) << "the file was written to";
  }
}

// (An opener that may create takes a zero-filled segment with its init lock
// free for one whose creator died, and initialises it: tests/crash/creator_test.cpp.)
TEST(BadSegment, AllZeroSegmentIsNotReadyForAnOpenOnlyAndStaysUnchanged) {
  const std::string name = test::unique_bus_name();
  RawShm shm(name, kForeignBytes);
  ASSERT_TRUE(shm.ok());

  auto r = open_named(name, /*create=*/false);

  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kSegmentNotReady) << r.error().message;
  EXPECT_TRUE(shm.copy() == std::vector<unsigned char>(kForeignBytes, 0));
}

// The numbers that appear in `text`, for checking what a message names.
std::set<std::uint64_t> numbers_in(const std::string& text) {
  std::set<std::uint64_t> out;
  for (std::size_t i = 0; i < text.size();) {
    if (text[i] < '0' || text[i] > '9') {
      ++i;
      continue;
    }
    std::size_t end = i;
    while (end < text.size() && text[end] >= '0' && text[end] <= '9') {
      ++end;
    }
    out.insert(std::stoull(text.substr(i, end - i)));
    i = end;
  }
  return out;
}

TEST(BadSegment, OtherLayoutVersionIsLayoutMismatchNamingBothVersions) {
  TestBus tb;
  RawShm shm(tb.name());
  ASSERT_TRUE(shm.ok());
  constexpr std::uint32_t kOther = 4242;
  shm.header().layout_version = kOther;

  auto r = open_named(tb.name());

  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kLayoutMismatch);
  const std::set<std::uint64_t> named = numbers_in(r.error().message);
  EXPECT_TRUE(named.count(kOther) == 1 && named.count(layout_version()) == 1) << r.error().message;
}

TEST(BadSegment, OtherStructureFingerprintIsLayoutMismatch) {
  TestBus tb;
  RawShm shm(tb.name());
  ASSERT_TRUE(shm.ok());
  shm.header().fingerprint ^= 1;

  auto r = open_named(tb.name(), /*create=*/false);

  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kLayoutMismatch) << r.error().message;
}

TEST(BadSegment, HeaderSizesThatDisagreeWithItsOffsetsAreRefused) {
  TestBus tb;
  RawShm shm(tb.name());
  ASSERT_TRUE(shm.ok());
  shm.header().ring_capacity = 2 * test::kRingCapacity;

  auto r = open_named(tb.name(), /*create=*/false);

  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kForeignSegment) << r.error().message;
}

TEST(BadSegment, HeaderWithAnImpossiblePoolCountIsRefused) {
  TestBus tb;
  RawShm shm(tb.name());
  ASSERT_TRUE(shm.ok());
  shm.header().pool_count = detail::kMaxPoolClasses + 1;

  auto r = open_named(tb.name(), /*create=*/false);

  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kForeignSegment) << r.error().message;
}

// --- configuration and names -----------------------------------------------------------

bool shm_exists(const std::string& bus) {
  return access(("/dev/shm/ipcbus." + bus).c_str(), F_OK) == 0;
}

struct BadConfigCase {
  const char* what;  // a fragment the error message must hold
  Config config;
};

BadConfigCase bad_config(const char* what, void (*change)(Config&)) {
  Config c = test::small_config();
  change(c);
  return {what, c};
}

class BadConfig : public ::testing::TestWithParam<BadConfigCase> {};

TEST_P(BadConfig, OpenIsInvalidArgumentAndCreatesNoSegment) {
  const std::string name = test::unique_bus_name();
  OpenOptions o;
  o.name = name;
  o.config = GetParam().config;

  auto r = Bus::open(o);

  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
  EXPECT_NE(r.error().message.find(GetParam().what), std::string::npos) << r.error().message;
  EXPECT_FALSE(shm_exists(name));
}

INSTANTIATE_TEST_SUITE_P(
    Sizes, BadConfig,
    ::testing::Values(bad_config("ring_capacity", [](Config& c) { c.ring_capacity = 1000; }),
                      bad_config("ring_capacity", [](Config& c) { c.ring_capacity = 0; }),
                      bad_config("pool", [](Config& c) { c.pools.clear(); }),
                      bad_config("grow",
                                 [](Config& c) {
                                   c.pools = {{256, 4}, {64, 4}};
                                 }),
                      bad_config("max_listeners", [](Config& c) { c.max_listeners = 0; }),
                      bad_config("trie_nodes", [](Config& c) { c.trie_nodes = 1; }),
                      bad_config("max_level_bytes", [](Config& c) { c.max_level_bytes = 200; }),
                      bad_config("mode", [](Config& c) { c.mode = 0400; })));

TEST(BadInput, ConfigValidateNamesTheBadValue) {
  Config sut = test::small_config();
  sut.ring_capacity = 1000;

  const auto r = sut.validate();

  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
  EXPECT_NE(r.error().message.find("1000"), std::string::npos) << r.error().message;
}

class BadBusName : public ::testing::TestWithParam<std::string> {};

TEST_P(BadBusName, OpenAndDestroyAreInvalidArgument) {
  OpenOptions o;
  o.name = GetParam();
  o.config = test::small_config();

  auto opened = Bus::open(o);
  const auto destroyed = Bus::destroy(GetParam());

  ASSERT_FALSE(opened.has_value());
  EXPECT_EQ(opened.error().code, Errc::kInvalidArgument);
  ASSERT_FALSE(destroyed);
  EXPECT_EQ(destroyed.error().code, Errc::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Names, BadBusName,
                         ::testing::Values(std::string("a/b"), std::string("../up"),
                                           std::string("has space"), std::string(201, 'n')));

TEST(BadInput, OpenWithoutCreateOfAMissingBusIsNotFound) {
  OpenOptions o;
  o.name = test::unique_bus_name();
  o.create = false;

  auto r = Bus::open(o);

  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::kNotFound);
  EXPECT_FALSE(shm_exists(o.name));
}

TEST(BadInput, DestroyOfAMissingBusIsNotFound) {
  const auto r = Bus::destroy(test::unique_bus_name());

  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kNotFound);
}

TEST(BadInput, OpeningAnExistingBusIgnoresTheCallersConfig) {
  TestBus tb;
  OpenOptions o;
  o.name = tb.name();
  o.config = test::small_config();
  o.config.ring_capacity = 1024;
  o.config.max_listeners = 3;

  auto r = Bus::open(o);

  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->config().ring_capacity, test::kRingCapacity);
  EXPECT_EQ(r->config().max_listeners, test::kMaxListeners);
}

// A publisher made while every publisher slot is taken delivers nothing
// (its fan-outs would have no crash journal) and says so; it takes a slot
// as soon as one frees, with its counters kept.
TEST(BadInput, APublisherWithoutASlotIsRefusedUntilOneFrees) {
  Config config = test::small_config();
  config.max_publishers = 2;
  TestBus tb(config);
  Listener l = tb.listen("p/#");
  std::optional<Publisher> first = tb.bus().publisher();
  Publisher second = tb.bus().publisher();
  Publisher sut = tb.bus().publisher();
  ASSERT_EQ(first->publish("p/a", "one").status, PublishStatus::kOk);

  const PublishResult copied = sut.publish("p/a", "refused");
  auto loan = sut.loan(8);
  ASSERT_TRUE(loan.has_value());
  const PublishResult loaned = sut.publish("p/a", std::move(*loan));
  const PublishResult nobody = sut.publish("q/nobody-listens", "counted");

  EXPECT_EQ(copied.status, PublishStatus::kPublisherTableFull);
  EXPECT_EQ(loaned.status, PublishStatus::kPublisherTableFull);
  EXPECT_STREQ(publish_status_name(copied.status), "publisher table full");
  EXPECT_EQ(nobody.status, PublishStatus::kNoListeners);
  EXPECT_EQ(tb.free_chunks(0), test::kSmallCount - 1);  // the queued "one" only
  auto s = l.try_receive();
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->payload_text(), "one");
  EXPECT_FALSE(l.try_receive().has_value());

  first.reset();
  const PublishResult later = sut.publish("p/a", "taken");

  EXPECT_EQ(later.status, PublishStatus::kOk);
  auto t = l.try_receive();
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->payload_text(), "taken");
  EXPECT_EQ(t->publisher_id(), sut.id());
  bool found = false;
  for (const PublisherInfo& p : tb.bus().inspect().publishers) {
    if (p.id == sut.id()) {
      found = true;
      EXPECT_EQ(p.published, 2U);  // "counted" before the slot, "taken" after
    }
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace ipcbus
