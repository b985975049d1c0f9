// segment_test.cpp: creating a bus from many processes at once, and opening
// one whose creator died before it finished initialising the segment.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core.hpp"
#include "multiproc.hpp"

namespace ipcbus::test {
namespace {

using Segment = MultiProc;

TEST_F(Segment, ProcessesCreatingOneBusAtOnceAllEndOnOneSegment) {
  constexpr int kCreators = 8;
  Pipe start_gate;
  std::vector<std::unique_ptr<Pipe>> ready;
  std::vector<std::string> outs;
  std::vector<pid_t> creators;
  for (int i = 0; i < kCreators; ++i) {
    ready.push_back(std::make_unique<Pipe>());
    outs.push_back(temp_file("creator"));
    creators.push_back(start_peer("create",
                                  {"--start-fd", std::to_string(start_gate.read_end), "--ready-fd",
                                   std::to_string(ready.back()->write_end), "--filter", "race/#"},
                                  outs.back(), {start_gate.read_end, ready.back()->write_end}));
    ready.back()->close_write();
  }
  for (int i = 0; i < kCreators; ++i) {
    ASSERT_EQ(read_byte(ready[i]->read_end), kWaiting) << describe("creator", outs[i]);
  }

  // Every creator is blocked reading the gate; closing it releases them all.
  start_gate.close_write();
  for (int i = 0; i < kCreators; ++i) {
    ASSERT_EQ(read_byte(ready[i]->read_end), kReady) << describe("creator", outs[i]);
  }
  OpenOptions o;
  o.name = bus_;
  o.create = false;
  auto opened = Bus::open(o);
  ASSERT_TRUE(opened) << opened.error().message;
  bus_handle_.emplace(std::move(opened.value()));
  struct stat st {};
  ASSERT_EQ(stat(("/dev/shm/ipcbus." + bus_).c_str(), &st), 0);
  RawSegment raw(bus_);
  ASSERT_TRUE(raw.mapped());
  const pid_t creator_pid = raw.header().creator_pid;
  const BusInfo info = bus_handle_->inspect();
  Publisher publisher = bus_handle_->publisher();
  const PublishResult sent = publisher.publish("race/go", "go");
  std::vector<Exit> exits;
  for (pid_t pid : creators) {
    exits.push_back(finish(pid));
  }

  EXPECT_NE(std::find(creators.begin(), creators.end(), creator_pid), creators.end())
      << "the header names pid " << creator_pid << ", none of the creators";
  std::set<pid_t> owners;
  for (const ListenerInfo& l : info.listeners) {
    owners.insert(l.owner_pid);
  }
  EXPECT_EQ(owners, std::set<pid_t>(creators.begin(), creators.end()))
      << "every creator's listener is in the one segment";
  EXPECT_EQ(info.segment_bytes, static_cast<std::uint64_t>(st.st_size));
  EXPECT_EQ(info.config.ring_capacity, small_config().ring_capacity);
  EXPECT_EQ(sent.status, PublishStatus::kOk);
  EXPECT_EQ(sent.delivered, static_cast<std::uint32_t>(kCreators));
  for (int i = 0; i < kCreators; ++i) {
    const std::string out = read_file(outs[i]);
    EXPECT_TRUE(ended_ok(exits[i])) << describe("creator", outs[i]);
    const auto opened_lines = lines_with(out, "opened");
    ASSERT_EQ(opened_lines.size(), 1U) << out;
    EXPECT_EQ(field(opened_lines[0], "ino"), static_cast<long long>(st.st_ino));
    EXPECT_EQ(field(opened_lines[0], "bytes"), static_cast<long long>(info.segment_bytes));
    const std::vector<Event> events = events_in(out);
    ASSERT_EQ(events.size(), 1U) << out;
    EXPECT_EQ(events[0].topic, "race/go");
  }
}

class HalfInitialised : public MultiProc, public ::testing::WithParamInterface<long> {};

// The half-creator exits without the init lock (detail::kInitLockByte): a
// creator that died. An open-only opener refuses it and writes nothing; an
// opener that may create initialises it anew, to its own size.
TEST_P(HalfInitialised, OpenOnlyRefusesAndOpenWithCreateRecovers) {
  const std::string out = temp_file("half");
  const Exit made = finish(start_peer("half-create", {"--size", std::to_string(GetParam())}, out));
  ASSERT_TRUE(ended_ok(made)) << describe("half-create", out);
  const std::string path = "/dev/shm/ipcbus." + bus_;
  const std::string before = read_file(path);
  OpenOptions o;
  o.name = bus_;
  o.create = false;
  o.config = small_config();
  o.config.ring_capacity = 32;  // another size than the full-size case's
  o.ready_timeout = std::chrono::milliseconds(200);

  auto refused = Bus::open(o);

  ASSERT_FALSE(refused) << "a zero-filled segment was taken for a ready one";
  EXPECT_EQ(refused.error().code, Errc::kSegmentNotReady) << refused.error().message;
  EXPECT_TRUE(read_file(path) == before) << "an open-only opener wrote to the segment";

  o.create = true;
  auto recovered = Bus::open(o);

  ASSERT_TRUE(recovered) << recovered.error().message;
  EXPECT_EQ(recovered->inspect().segment_bytes, detail::segment_size(o.config));
  EXPECT_EQ(recovered->config().ring_capacity, 32U);
  bool logged = false;
  for (const ErrorLogEntry& e : recovered->inspect().errors) {
    logged = logged || e.kind == "creator-died";
  }
  EXPECT_TRUE(logged) << "the recovery is not in the error log";
  EXPECT_TRUE(recovered->check().empty());
}

// Sizes: nothing (died before sizing), one page, and the full size of the bus.
INSTANTIATE_TEST_SUITE_P(
    Sizes, HalfInitialised,
    ::testing::Values(0L, 4096L, static_cast<long>(detail::segment_size(small_config()))));

}  // namespace
}  // namespace ipcbus::test
