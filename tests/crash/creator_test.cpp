// creator_test.cpp: a creator that dies while it initialises the segment,
// tested by killing (or stopping) a real creator at every crash point of the
// "create" path (libipcbus/src/crash.hpp).
//
// A creator holds the init lock (detail::kInitLockByte, an OFD lock on the
// segment's file) from just after it creates the name until just after it
// stores the magic. An opener that may create and finds no magic and the
// lock free takes the creator for dead and initialises the segment itself;
// one that finds the lock held waits, then gives kSegmentNotReady. Openers
// that may not create, and observers, never write.
#include <algorithm>
#include <barrier>
#include <set>

#include "core.hpp"
#include "multiproc.hpp"

namespace ipcbus::test {
namespace {

constexpr const char* kCrashPeer = IPCBUS_CRASH_PEER;
// The victim's ring capacity: its segment is bigger than small_config()'s,
// so a recovered segment tells by its size who initialised it.
constexpr int kVictimRing = 256;

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) {
    out += "  " + l + "\n";
  }
  return out;
}

class CreatorCrash : public MultiProc {
 protected:
  std::string shm_path() const { return "/dev/shm/ipcbus." + bus_; }

  // A crash_peer that creates the bus with ring capacity `ring`, with
  // $IPCBUS_CRASH_AT=create:k (k 0: none) and, with `stop`, stopped there
  // instead of killed. The environment is set around the fork: the test
  // thread is the only one here.
  pid_t start_creator(int k, int ring, bool stop = false) {
    if (k > 0) {
      setenv("IPCBUS_CRASH_AT", ("create:" + std::to_string(k)).c_str(), 1);
    }
    if (stop) {
      setenv("IPCBUS_CRASH_SIGNAL", "STOP", 1);
    }
    SpawnOptions o;
    o.stdout_path = temp_file("creator");
    o.stderr_to_stdout = true;
    const pid_t pid = start({kCrashPeer, "create", bus_, std::to_string(ring)}, o);
    unsetenv("IPCBUS_CRASH_AT");
    unsetenv("IPCBUS_CRASH_SIGNAL");
    return pid;
  }

  // The segment file's size and bytes, to tell whether anyone wrote to it.
  std::string snapshot() const { return read_file(shm_path()); }

  // Whether a process holds the init lock, probed as an opener does.
  bool init_lock_held() const {
    const int fd = open(shm_path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return false;
    }
    flock fl{};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = static_cast<off_t>(detail::kInitLockByte);
    fl.l_len = 1;
    const bool held = fcntl(fd, F_OFD_GETLK, &fl) != 0 || fl.l_type != F_UNLCK;
    close(fd);
    return held;
  }

  // Whether the segment's magic is stored (the creator finished).
  bool magic_stored() const {
    RawSegment raw(bus_);
    // acquire: SYNC(ready), as an opener reads it.
    return raw.mapped() && raw.header().magic.load(std::memory_order_acquire) == detail::kMagic;
  }

  static OpenOptions opener(const std::string& bus, bool create = true) {
    OpenOptions o;
    o.name = bus;
    o.create = create;
    o.config = small_config();
    o.ready_timeout = std::chrono::seconds(30);  // a hang guard: a dead creator is seen at once
    return o;
  }

  static std::size_t recoveries(const Bus& bus) {
    const auto errors = bus.inspect().errors;
    return static_cast<std::size_t>(
        std::count_if(errors.begin(), errors.end(),
                      [](const ErrorLogEntry& e) { return e.kind == "creator-died"; }));
  }

  // What every open after a creator's death must give: a bus that works and
  // that doctor finds consistent.
  static void check_usable(Bus& bus) {
    auto l = bus.listen({});
    ASSERT_TRUE(l) << l.error().message;
    ASSERT_TRUE(l->subscribe("c/#"));
    Publisher pub = bus.publisher();
    const PublishResult r = pub.publish("c/e", "after");
    EXPECT_EQ(r.status, PublishStatus::kOk);
    EXPECT_EQ(r.delivered, 1U);
    auto s = l->try_receive();
    ASSERT_TRUE(s.has_value()) << "the event published after recovery did not arrive";
    EXPECT_EQ(s->topic(), "c/e");
    EXPECT_EQ(s->payload_text(), "after");
    const std::vector<std::string> v = bus.check();
    EXPECT_TRUE(v.empty()) << "doctor found:\n" << joined(v);
  }
};

// Kill the creator at its k-th "create" crash point, for every k until it
// runs to the end; a fresh opener then gets a working bus every time.
TEST_F(CreatorCrash, EveryCreateCrashPointIsRecoveredByTheNextOpener) {
  int killed = 0;
  int recovered = 0;
  int ready_at_death = 0;
  bool completed = false;
  for (int k = 1; k <= 100 && !completed && !HasFailure(); ++k) {
    SCOPED_TRACE("create crash point " + std::to_string(k));
    (void)Bus::destroy(bus_);
    const pid_t victim = start_creator(k, kVictimRing);
    const Exit e = finish(victim);
    if (ended_ok(e)) {
      completed = true;
    } else {
      ASSERT_EQ(e.signal, SIGKILL) << "exit code " << e.code;
      ++killed;
    }
    EXPECT_FALSE(init_lock_held()) << "the dead creator's init lock outlived it";
    const bool was_ready = magic_stored();
    auto bus = Bus::open(opener(bus_));
    ASSERT_TRUE(bus) << bus.error().message;
    check_usable(*bus);
    if (was_ready) {
      ++ready_at_death;
      EXPECT_EQ(recoveries(*bus), 0U) << "a finished segment was initialised again";
      EXPECT_EQ(bus->config().ring_capacity, static_cast<std::uint32_t>(kVictimRing));
    } else {
      ++recovered;
      EXPECT_EQ(recoveries(*bus), 1U) << "the recovery is not in the error log";
      EXPECT_EQ(bus->inspect().segment_bytes, detail::segment_size(small_config()))
          << "the recovered segment does not have the opener's own size";
    }
  }
  EXPECT_TRUE(completed) << "the creator never ran to the end";
  EXPECT_GE(recovered, 5) << "too few crash points before the magic to mean anything";
  std::printf("[ crash points ] create: %d killed, %d recovered by the opener, %d already ready\n",
              killed, recovered, ready_at_death);
  RecordProperty("create_crash_points", killed);
}

// A recovering opener that dies in turn, at each of its own "create" crash
// points, is recovered by the next one.
TEST_F(CreatorCrash, AnOpenerKilledWhileRecoveringIsRecoveredInTurn) {
  int killed = 0;
  bool completed = false;
  for (int k = 1; k <= 100 && !completed && !HasFailure(); ++k) {
    SCOPED_TRACE("recovery crash point " + std::to_string(k));
    (void)Bus::destroy(bus_);
    // The first creator dies past the sizing, mid-way through the tables.
    const Exit first = finish(start_creator(5, kVictimRing));
    ASSERT_EQ(first.signal, SIGKILL);
    ASSERT_FALSE(magic_stored());
    const Exit second = finish(start_creator(k, 128));
    if (ended_ok(second)) {
      completed = true;
    } else {
      ASSERT_EQ(second.signal, SIGKILL) << "exit code " << second.code;
      ++killed;
    }
    const bool was_ready = magic_stored();
    auto bus = Bus::open(opener(bus_));
    ASSERT_TRUE(bus) << bus.error().message;
    check_usable(*bus);
    EXPECT_EQ(bus->config().ring_capacity, was_ready ? 128U : small_config().ring_capacity);
  }
  EXPECT_TRUE(completed);
  EXPECT_GE(killed, 5);
  std::printf("[ crash points ] recovery: %d killed, each recovered in turn\n", killed);
  RecordProperty("recovery_crash_points", killed);
}

// Openers racing on a dead creator's segment: one initialises it, every
// other waits for its magic and opens the same segment.
TEST_F(CreatorCrash, RacingOpenersRecoverOnce) {
  constexpr int kOpeners = 4;
  constexpr int kRounds = 10;
  for (int round = 0; round < kRounds && !HasFailure(); ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    (void)Bus::destroy(bus_);
    ASSERT_EQ(finish(start_creator(3 + round % 5, kVictimRing)).signal, SIGKILL);
    std::vector<std::optional<Result<Bus>>> opened(kOpeners);
    std::barrier go(kOpeners);
    std::vector<std::thread> threads;
    for (int i = 0; i < kOpeners; ++i) {
      threads.emplace_back([&, i] {
        OpenOptions o = opener(bus_);
        // Each its own ring capacity: a second initialisation would show.
        o.config.ring_capacity = 16U << i;
        go.arrive_and_wait();
        opened[i].emplace(Bus::open(o));
      });
    }
    for (std::thread& t : threads) {
      t.join();
    }
    std::set<std::uint32_t> rings;
    for (auto& r : opened) {
      ASSERT_TRUE(r.has_value());
      ASSERT_TRUE(r->has_value()) << r->error().message;
      rings.insert(r->value().config().ring_capacity);
    }
    EXPECT_EQ(rings.size(), 1U) << "openers ended on different initialisations";
    Bus& bus = opened[0]->value();
    EXPECT_EQ(recoveries(bus), 1U) << "the segment was recovered more than once";
    check_usable(bus);
  }
}

// A creator stopped (SIGSTOP) at each of its "create" crash points is slow,
// not dead: while it holds the init lock no opener takes over or writes,
// and once it goes on it finishes the bus as its own.
TEST_F(CreatorCrash, ASlowCreatorIsNotTakenOver) {
  int held = 0;
  int before_lock = 0;
  bool completed = false;
  for (int k = 1; k <= 100 && !completed && !HasFailure(); ++k) {
    SCOPED_TRACE("create crash point " + std::to_string(k));
    (void)Bus::destroy(bus_);
    const pid_t creator = start_creator(k, kVictimRing, /*stop=*/true);
    ASSERT_TRUE(poll_until([&] {
      siginfo_t info{};
      return waitid(P_PID, static_cast<id_t>(creator), &info,
                    WSTOPPED | WEXITED | WNOHANG | WNOWAIT) == 0 &&
             info.si_pid == creator;
    })) << "the creator neither stopped nor ended";
    if (!still_running(creator)) {  // past its last crash point: it ended
      EXPECT_TRUE(ended_ok(finish(creator)));
      completed = true;
      auto bus = Bus::open(opener(bus_));
      ASSERT_TRUE(bus) << bus.error().message;
      check_usable(*bus);
      break;
    }
    bool took_over = false;
    if (magic_stored()) {
      // Stopped after the magic, before letting go of the lock: the bus is
      // ready, the lock does not matter to openers any more.
      auto bus = Bus::open(opener(bus_));
      ASSERT_TRUE(bus) << bus.error().message;
      EXPECT_EQ(recoveries(*bus), 0U);
    } else if (init_lock_held()) {
      ++held;
      const std::string before = snapshot();
      OpenOptions o = opener(bus_);
      o.ready_timeout = std::chrono::milliseconds(200);
      auto bus = Bus::open(o);
      ASSERT_FALSE(bus) << "a live creator's segment was taken over";
      EXPECT_EQ(bus.error().code, Errc::kSegmentNotReady);
      EXPECT_NE(bus.error().message.find("still running"), std::string::npos)
          << bus.error().message;
      o.create = false;
      auto only = Bus::open(o);
      ASSERT_FALSE(only);
      EXPECT_EQ(only.error().code, Errc::kSegmentNotReady);
      EXPECT_TRUE(snapshot() == before) << "the segment of a live creator was written to";
    } else {
      // Stopped between creating the name and taking the lock: it cannot be
      // told from a dead one, so an opener recovers the segment, and the
      // creator, when it goes on, finds that and opens it as it is.
      ++before_lock;
      auto bus = Bus::open(opener(bus_));
      ASSERT_TRUE(bus) << bus.error().message;
      EXPECT_EQ(recoveries(*bus), 1U);
      took_over = true;
    }
    kill(creator, SIGCONT);
    const Exit e = finish(creator);
    EXPECT_TRUE(ended_ok(e)) << describe("creator", files_.back());
    auto bus = Bus::open(opener(bus_));
    ASSERT_TRUE(bus) << bus.error().message;
    EXPECT_EQ(bus->config().ring_capacity,
              took_over ? small_config().ring_capacity : static_cast<std::uint32_t>(kVictimRing))
        << "the bus is not the one its initialiser made";
    EXPECT_EQ(recoveries(*bus), took_over ? 1U : 0U);
    check_usable(*bus);
  }
  EXPECT_TRUE(completed);
  EXPECT_GE(held, 5) << "too few crash points under the init lock";
  std::printf(
      "[ crash points ] create, stopped: %d under the init lock (not taken over), %d before it\n",
      held, before_lock);
  RecordProperty("stopped_under_lock", held);
}

// A creator held alive by a child that holds the init lock by hand, on a
// zero-filled segment: nobody takes over.
TEST_F(CreatorCrash, AnInitLockHeldByHandKeepsOpenersOut) {
  const int fd = shm_open(("/ipcbus." + bus_).c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 64 * 1024), 0);
  close(fd);
  // flock(1) would take a whole-file lock of another kind: a child that takes
  // the OFD lock on the byte and waits, as a live creator does.
  Pipe ready;
  const pid_t child = fork();
  if (child == 0) {
    const int cfd = shm_open(("/ipcbus." + bus_).c_str(), O_RDWR, 0);
    flock fl{};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = static_cast<off_t>(detail::kInitLockByte);
    fl.l_len = 1;
    const char r = fcntl(cfd, F_OFD_SETLK, &fl) == 0 ? 'R' : 'F';
    (void)!write(ready.write_end, &r, 1);
    pause();
    _exit(0);
  }
  running_.push_back(child);
  watchdog_.watch(child);
  ready.close_write();
  ASSERT_EQ(read_byte(ready.read_end), std::optional<char>('R'));
  const std::string before = snapshot();
  OpenOptions o = opener(bus_);
  o.ready_timeout = std::chrono::milliseconds(200);
  auto bus = Bus::open(o);
  ASSERT_FALSE(bus);
  EXPECT_EQ(bus.error().code, Errc::kSegmentNotReady);
  EXPECT_TRUE(snapshot() == before) << "the segment was written to";
  kill(child, SIGKILL);
  finish(child);
  // The lock died with its holder: now the opener recovers it.
  auto after = Bus::open(opener(bus_));
  ASSERT_TRUE(after) << after.error().message;
  EXPECT_EQ(recoveries(*after), 1U);
  check_usable(*after);
}

// Openers that may not create, and tools that only look, never write a dead
// creator's segment: they say what happened and how it is recovered.
TEST_F(CreatorCrash, OpenOnlyAndObserversRefuseAndDoNotWrite) {
  ASSERT_EQ(finish(start_creator(5, kVictimRing)).signal, SIGKILL);
  ASSERT_FALSE(magic_stored());
  const std::string before = snapshot();
  OpenOptions o = opener(bus_, /*create=*/false);
  o.ready_timeout = std::chrono::milliseconds(100);
  auto only = Bus::open(o);
  ASSERT_FALSE(only);
  EXPECT_EQ(only.error().code, Errc::kSegmentNotReady);
  EXPECT_NE(only.error().message.find("died before it finished"), std::string::npos)
      << only.error().message;
  o.observe_only = true;
  auto observer = Bus::open(o);
  ASSERT_FALSE(observer);
  EXPECT_EQ(observer.error().code, Errc::kSegmentNotReady);
  for (const char* command : {"ls", "stat", "doctor"}) {
    SpawnOptions so;
    so.stdout_path = temp_file(command);
    so.stderr_to_stdout = true;
    const Exit e = finish(start({kCli, command, "--bus", bus_}, so));
    EXPECT_TRUE(e.exited && e.code == 1) << command << ": " << describe(command, so.stdout_path);
  }
  EXPECT_TRUE(snapshot() == before) << "an open-only opener or a tool wrote to the segment";
  auto bus = Bus::open(opener(bus_));
  ASSERT_TRUE(bus) << bus.error().message;
  EXPECT_EQ(recoveries(*bus), 1U);
  check_usable(*bus);
}

// The agent opens with create allowed: started on a dead creator's segment,
// it recovers it, and tools then see the bus and the record of what happened.
TEST_F(CreatorCrash, TheAgentRecoversADeadCreatorsSegment) {
  ASSERT_EQ(finish(start_creator(6, kVictimRing)).signal, SIGKILL);
  ASSERT_FALSE(magic_stored());
  SpawnOptions o;
  o.stdout_path = temp_file("agent");
  o.stderr_to_stdout = true;
  const pid_t agent =
      start({IPCBUS_AGENT, "--bus", bus_, "--interval", "0.05", "--log-level", "info"}, o);
  ASSERT_TRUE(poll_until([&] { return magic_stored(); })) << describe("agent", o.stdout_path);
  OpenOptions look = opener(bus_, /*create=*/false);
  look.observe_only = true;
  auto bus = Bus::open(look);
  ASSERT_TRUE(bus) << bus.error().message;
  EXPECT_EQ(recoveries(*bus), 1U);
  EXPECT_TRUE(poll_until([&] { return bus->inspect().agent_pid == agent; }));
  EXPECT_NE(read_file(o.stdout_path).find("died mid-init"), std::string::npos)
      << describe("agent", o.stdout_path);
  kill(agent, SIGTERM);
  EXPECT_TRUE(ended_ok(finish(agent)));
  auto user = Bus::open(opener(bus_, /*create=*/false));
  ASSERT_TRUE(user) << user.error().message;
  check_usable(*user);
}

}  // namespace
}  // namespace ipcbus::test
