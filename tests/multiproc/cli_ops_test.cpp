// cli_ops_test.cpp: the operator's commands of the real `ipcbus` binary, run
// as a shell runs them: create/destroy and their exit codes, stat in every
// machine format (and into a textfile directory), sub -F, top --once, advise,
// ls topics, errors, usage errors (exit 2), and looks at a missing bus that
// fail (exit 1) without creating it. Listeners are `ipcbus sub` processes.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "layout.hpp"
#include "multiproc.hpp"

#if __has_include(<nlohmann/json.hpp>)
#include <nlohmann/json.hpp>
#define IPCBUS_TEST_HAVE_JSON 1
#endif

namespace ipcbus::test {
namespace {

// What one run of the CLI printed and how it ended.
struct CliRun {
  Exit exit;
  std::string out;
  std::string err;
  std::string what() const {
    return "exit " + std::to_string(exit.code) + " (signal " + std::to_string(exit.signal) +
           ")\nstdout:\n" + out + "\nstderr:\n" + err;
  }
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') {
      line.pop_back();
    }
    if (!line.empty()) {
      out.push_back(line);
    }
  }
  return out;
}

bool segment_exists(const std::string& bus) {
  struct stat st {};
  return stat(("/dev/shm/ipcbus." + bus).c_str(), &st) == 0;
}

class CliOps : public MultiProc {
 protected:
  void TearDown() override {
    observer_.reset();
    for (pid_t pid : subs_) {
      kill(pid, SIGTERM);
    }
    for (pid_t pid : subs_) {
      (void)finish(pid);
    }
    subs_.clear();
    MultiProc::TearDown();
    if (!scratch_dir_.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(scratch_dir_, ignored);
    }
  }

  // run_cli runs `ipcbus ARGS...` to its end and returns what it printed.
  CliRun run_cli(const std::vector<std::string>& args) { return run_program(kCli, args); }

  // run_program runs `PROGRAM ARGS...` to its end and returns what it printed.
  CliRun run_program(const std::string& program, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {program};
    argv.insert(argv.end(), args.begin(), args.end());
    SpawnOptions o;
    o.stdout_path = temp_file("out");
    o.stderr_path = temp_file("err");
    const pid_t pid = start(argv, o);
    CliRun r;
    r.exit = finish(pid);
    r.out = read_file(o.stdout_path);
    r.err = read_file(o.stderr_path);
    return r;
  }

  // create_small_bus makes this test's bus with `ipcbus create`, small (a
  // short ring, two small pools) so that parallel runs spare /dev/shm.
  // Returns whether it did, reporting why not.
  bool create_small_bus() {
    const CliRun r = run_cli(
        {"create", "--bus", bus_, "--ring-capacity", "64", "--pool", "256:64", "--pool", "4096:8"});
    EXPECT_TRUE(ended_ok(r.exit)) << r.what();
    return ended_ok(r.exit);
  }

  // observer maps this test's bus without a process entry, so that it counts
  // as no user of the bus (destroy would otherwise name this test).
  Bus* observer() {
    if (!observer_) {
      OpenOptions o;
      o.name = bus_;
      o.observe_only = true;
      std::optional<Bus> opened;
      poll_until([&] {
        auto r = Bus::open(o);
        if (r) {
          opened.emplace(std::move(r).value());
        }
        return opened.has_value();
      });
      if (opened) {
        observer_.emplace(std::move(*opened));
      }
    }
    return observer_ ? &*observer_ : nullptr;
  }

  // start_sub runs `ipcbus sub ARGS... FILTER` in the background (stdout to
  // `out_path`) and waits until its listener holds FILTER.
  pid_t start_sub(const std::string& filter, const std::vector<std::string>& args,
                  const std::string& out_path) {
    std::vector<std::string> argv = {kCli, "sub", "--bus", bus_};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back(filter);
    SpawnOptions o;
    o.stdout_path = out_path;
    o.stderr_path = out_path + ".err";
    files_.push_back(o.stderr_path);
    const pid_t pid = start(argv, o);
    subs_.push_back(pid);
    Bus* bus = observer();
    EXPECT_NE(bus, nullptr) << "sub never created bus " << bus_;
    const bool ready = bus != nullptr && poll_until([&] {
                         for (const ListenerInfo& l : bus->inspect().listeners) {
                           if (l.owner_pid == pid && std::find(l.filters.begin(), l.filters.end(),
                                                               filter) != l.filters.end()) {
                             return true;
                           }
                         }
                         return !still_running(pid);
                       });
    EXPECT_TRUE(ready && still_running(pid))
        << "sub " << filter << " not listening; " << describe("its stderr", o.stderr_path);
    return pid;
  }

  // kill_sub kills a background sub with SIGKILL, as a crash would, and reaps it.
  void kill_sub(pid_t pid) {
    std::erase(subs_, pid);
    kill(pid, SIGKILL);
    (void)finish(pid);
  }

  // stop_sub ends a background sub with SIGTERM (it exits 0) and reaps it.
  Exit stop_sub(pid_t pid) {
    std::erase(subs_, pid);
    kill(pid, SIGTERM);
    return finish(pid);
  }

  // A directory of this test's own, removed on tear down.
  std::string scratch_dir() {
    if (scratch_dir_.empty()) {
      std::string pattern = "/tmp/ipcbus-" + bus_ + "-XXXXXX";
      if (mkdtemp(pattern.data()) != nullptr) {
        scratch_dir_ = pattern;
      }
    }
    return scratch_dir_;
  }

  // A bus name no one uses, for commands that must not create it.
  std::string missing_bus() const { return bus_ + "-missing"; }

  std::vector<pid_t> subs_;
  std::optional<Bus> observer_;
  std::string scratch_dir_;
};

TEST_F(CliOps, CreateExitsZeroThenOneWhenTheBusExists) {
  ASSERT_EQ(access(kCli, X_OK), 0) << "no ipcbus CLI at " << kCli;

  const CliRun first = run_cli({"create", "--bus", bus_, "--ring-capacity", "64"});
  const CliRun second = run_cli({"create", "--bus", bus_, "--ring-capacity", "64"});

  EXPECT_TRUE(ended_ok(first.exit)) << first.what();
  EXPECT_TRUE(segment_exists(bus_));
  ASSERT_NE(observer(), nullptr);
  EXPECT_EQ(observer()->config().ring_capacity, 64U);
  EXPECT_TRUE(second.exit.exited) << second.what();
  EXPECT_EQ(second.exit.code, 1) << second.what();
  EXPECT_NE(second.err.find("already exists"), std::string::npos) << second.what();
}

// Ctrl-C ends a pub that waits for room in a full block-policy ring at
// once, not when its (here 600 s) timeout runs out: the bound of finish()
// is only a hang guard, far below that timeout.
TEST_F(CliOps, SigintEndsAPubWaitingForRoomAtOnce) {
  ASSERT_TRUE(create_small_bus());
  const pid_t sub = start_sub("z", {"--capacity", "2"}, temp_file("sub.out"));
  kill(sub, SIGSTOP);
  const std::string lines = temp_file("lines");
  {
    std::ofstream out(lines);
    for (int i = 0; i < 100; ++i) {
      out << i << "\n";
    }
  }
  SpawnOptions o;
  o.stdin_path = lines;
  o.stdout_path = temp_file("pub.out");
  o.stderr_path = temp_file("pub.err");
  const pid_t pub = start({kCli, "pub", "--bus", bus_, "--timeout", "600", "z"}, o);
  const bool full = poll_until([&] {
    for (const ListenerInfo& l : observer()->inspect().listeners) {
      if (l.owner_pid == sub && l.fill.used >= 2) {
        return true;
      }
    }
    return false;
  });
  ASSERT_TRUE(full) << describe("pub", o.stderr_path);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // into its wait

  kill(pub, SIGINT);
  const Exit e = finish(pub, std::chrono::seconds(30));

  kill(sub, SIGCONT);
  EXPECT_FALSE(e.timed_out) << "pub kept waiting after SIGINT";
  EXPECT_TRUE(e.exited && e.code == 1) << describe("pub", o.stderr_path);
  EXPECT_NE(read_file(o.stderr_path).find("interrupted"), std::string::npos)
      << describe("pub", o.stderr_path);
}

TEST_F(CliOps, StatPrometheusIsWellFormedExposition) {
  ASSERT_TRUE(create_small_bus());
  start_sub("stat/#", {}, temp_file("sub.out"));

  const CliRun r = run_cli({"stat", "--bus", bus_, "-o", "prometheus"});

  ASSERT_TRUE(ended_ok(r.exit)) << r.what();
  EXPECT_NE(r.out.find("# TYPE ipcbus_segment_bytes gauge\n"), std::string::npos) << r.out;
  const std::regex sample(R"(^[a-zA-Z_:][a-zA-Z0-9_:]*\{[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*")"
                          R"((,[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*")*\} )"
                          R"((-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?|NaN|[-+]Inf)$)");
  int samples = 0;
  for (const std::string& line : lines_of(r.out)) {
    if (line.rfind("# ", 0) == 0) {
      continue;
    }
    ++samples;
    EXPECT_TRUE(std::regex_match(line, sample)) << "not a sample line: " << line;
  }
  EXPECT_GT(samples, 0) << r.out;
}

TEST_F(CliOps, StatCsvHasAHeaderAndRows) {
  ASSERT_TRUE(create_small_bus());
  start_sub("stat/#", {}, temp_file("sub.out"));

  const CliRun r = run_cli({"stat", "--bus", bus_, "-o", "csv"});

  ASSERT_TRUE(ended_ok(r.exit)) << r.what();
  const std::vector<std::string> lines = lines_of(r.out);
  ASSERT_GE(lines.size(), 2U) << r.out;
  EXPECT_EQ(lines[0], "record,id,key,value");
  const auto listener_rows = std::count_if(
      lines.begin() + 1, lines.end(), [](const auto& l) { return l.rfind("listener,", 0) == 0; });
  EXPECT_GT(listener_rows, 0) << r.out;
}

TEST_F(CliOps, StatNdjsonIsOneJsonObjectPerLine) {
  ASSERT_TRUE(create_small_bus());
  start_sub("stat/#", {}, temp_file("sub.out"));

  const CliRun r = run_cli({"stat", "--bus", bus_, "-o", "ndjson"});

  ASSERT_TRUE(ended_ok(r.exit)) << r.what();
  const std::vector<std::string> lines = lines_of(r.out);
  ASSERT_FALSE(lines.empty()) << r.out;
  int listeners = 0;
  for (const std::string& line : lines) {
#ifdef IPCBUS_TEST_HAVE_JSON
    const auto parsed = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(parsed.is_discarded()) << "not JSON: " << line;
    ASSERT_TRUE(parsed.is_object()) << line;
    ASSERT_TRUE(parsed.contains("record")) << line;
    listeners += parsed["record"] == "listener" ? 1 : 0;
#else
    EXPECT_EQ(line.front(), '{') << line;
    EXPECT_EQ(line.back(), '}') << line;
    listeners += line.find("\"record\":\"listener\"") != std::string::npos ? 1 : 0;
#endif
  }
  EXPECT_EQ(listeners, 1) << r.out;
}

TEST_F(CliOps, StatTextfileDirWritesThePromFileAndNoTemporary) {
  ASSERT_TRUE(create_small_bus());
  const std::string dir = scratch_dir();
  ASSERT_FALSE(dir.empty()) << "mkdtemp failed";

  const CliRun r = run_cli({"stat", "--bus", bus_, "--textfile-dir", dir});

  ASSERT_TRUE(ended_ok(r.exit)) << r.what();
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  ASSERT_EQ(names.size(), 1U) << "files left in " << dir << ": " << names.size();
  EXPECT_EQ(names[0], "ipcbus_" + bus_ + ".prom");
  const std::string text = read_file(dir + "/" + names[0]);
  EXPECT_NE(text.find("# TYPE ipcbus_segment_bytes gauge\n"), std::string::npos) << text;
}

TEST_F(CliOps, SubFormatPrintsTopicSequenceLengthAndPayload) {
  ASSERT_TRUE(create_small_bus());
  const std::string out = temp_file("sub.out");
  const pid_t sub = start_sub("topic", {"-F", "%t|%s|%l|%p", "-C", "1"}, out);

  const CliRun pub = run_cli(
      {"pub", "--bus", bus_, "--wait-listeners", "1", "--timeout", "30", "-m", "hello", "topic"});
  std::erase(subs_, sub);
  const Exit sub_exit = finish(sub);

  EXPECT_TRUE(ended_ok(pub.exit)) << pub.what();
  EXPECT_TRUE(ended_ok(sub_exit)) << describe("sub (stderr)", out + ".err");
  EXPECT_EQ(read_file(out), "topic|1|5|hello\n");
}

TEST_F(CliOps, DestroyRefusesWhileASubRunsAndForceRemovesItAndTheSubSaysSo) {
  ASSERT_TRUE(create_small_bus());
  const std::string out = temp_file("sub.out");
  const pid_t sub = start_sub("held/#", {}, out);
  ASSERT_TRUE(segment_exists(bus_));

  const CliRun refused = run_cli({"destroy", "--bus", bus_});

  EXPECT_TRUE(refused.exit.exited) << refused.what();
  EXPECT_EQ(refused.exit.code, 1) << refused.what();
  EXPECT_NE(refused.err.find("pid " + std::to_string(sub)), std::string::npos) << refused.what();
  EXPECT_TRUE(segment_exists(bus_));

  const CliRun forced = run_cli({"destroy", "--bus", bus_, "--force"});

  EXPECT_TRUE(ended_ok(forced.exit)) << forced.what();
  EXPECT_FALSE(segment_exists(bus_));
  EXPECT_TRUE(still_running(sub)) << "the sub should keep its mapping";
  // An idle sub looks at the name about once a second and says it once.
  const std::string hint = "was destroyed (ipcbus destroy --force) or replaced";
  EXPECT_TRUE(poll_until([&] { return read_file(out + ".err").find(hint) != std::string::npos; },
                         std::chrono::seconds(30)))
      << describe("sub (stderr)", out + ".err");
  EXPECT_TRUE(still_running(sub)) << "publishers still attached may still reach the sub";
  EXPECT_TRUE(ended_ok(stop_sub(sub)));
  const std::string err = read_file(out + ".err");
  EXPECT_EQ(err.find(hint), err.rfind(hint)) << "said more than once:\n" << err;
}

TEST_F(CliOps, DestroyOfAnUnusedBusExitsZero) {
  ASSERT_TRUE(create_small_bus());

  const CliRun r = run_cli({"destroy", "--bus", bus_});

  EXPECT_TRUE(ended_ok(r.exit)) << r.what();
  EXPECT_FALSE(segment_exists(bus_));
}

TEST_F(CliOps, TopOncePrintsOneRowPerListener) {
  ASSERT_TRUE(create_small_bus());
  start_sub("alpha/#", {}, temp_file("alpha.out"));
  start_sub("beta/+/gamma", {}, temp_file("beta.out"));

  const CliRun r = run_cli({"top", "--once", "--bus", bus_, "-i", "0.1"});

  ASSERT_TRUE(ended_ok(r.exit)) << r.what();
  for (const std::string filter : {"alpha/#", "beta/+/gamma"}) {
    const std::vector<std::string> lines = lines_of(r.out);
    const auto rows = std::count_if(lines.begin(), lines.end(), [&](const std::string& line) {
      return line.find(filter) != std::string::npos;
    });
    EXPECT_EQ(rows, 1) << filter << " in:\n" << r.out;
  }
}

TEST_F(CliOps, AdviseWithRateRecommendsTheRingCapacity) {
  // 20000/s x (0.5 ms + 50 ms burst) = 1010 events, x 2 headroom, next power of two.
  const CliRun r = run_cli({"advise", "#", "--bus", missing_bus(), "--rate", "20000", "--latency",
                            "0.0005", "--burst", "0.05"});

  EXPECT_TRUE(ended_ok(r.exit)) << r.what();
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(\b2048\b)"))) << r.what();
  EXPECT_FALSE(segment_exists(missing_bus()));
}

TEST_F(CliOps, LsTopicsListsTheFilterWithOneListener) {
  ASSERT_TRUE(create_small_bus());
  start_sub("lstopic/+/x", {}, temp_file("sub.out"));

  const CliRun r = run_cli({"ls", "topics", "--bus", bus_});

  ASSERT_TRUE(ended_ok(r.exit)) << r.what();
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(lstopic/\+/x\s+1\b)"))) << r.what();
}

TEST_F(CliOps, ErrorsExitsZero) {
  ASSERT_TRUE(create_small_bus());

  const CliRun r = run_cli({"errors", "--bus", bus_});

  EXPECT_TRUE(ended_ok(r.exit)) << r.what();
}

TEST_F(CliOps, UsageErrorsExitTwo) {
  const CliRun bad_format = run_cli({"stat", "--bus", bus_, "-o", "nope"});
  const CliRun bad_capacity = run_cli({"create", "--bus", bus_, "--ring-capacity", "3"});

  EXPECT_TRUE(bad_format.exit.exited) << bad_format.what();
  EXPECT_EQ(bad_format.exit.code, 2) << bad_format.what();
  EXPECT_TRUE(bad_capacity.exit.exited) << bad_capacity.what();
  EXPECT_EQ(bad_capacity.exit.code, 2) << bad_capacity.what();
  EXPECT_NE(bad_capacity.err.find("ring_capacity"), std::string::npos) << bad_capacity.what();
  EXPECT_FALSE(segment_exists(bus_));
  // A usage error is one line naming the command, as every diagnostic.
  EXPECT_EQ(bad_format.err.rfind("ipcbus stat: ", 0), 0U) << bad_format.what();
  const CliRun no_such = run_cli({"bogus", "--bus", bus_});
  EXPECT_TRUE(no_such.exit.exited) << no_such.what();
  EXPECT_EQ(no_such.exit.code, 2) << no_such.what();
  EXPECT_NE(no_such.err.find("unknown command 'bogus'"), std::string::npos) << no_such.what();
  const CliRun empty_name = run_cli({"ls", "--bus", ""});
  EXPECT_TRUE(empty_name.exit.exited) << empty_name.what();
  EXPECT_EQ(empty_name.exit.code, 2) << empty_name.what();
  EXPECT_NE(empty_name.err.find("a bus name cannot be empty"), std::string::npos)
      << empty_name.what();
}

TEST_F(CliOps, ABadTopicIsShownCutShortAndEscapedInItsOneLineDiagnostic) {
  const std::string huge = std::string(70000, 'b') + "/+";
  const CliRun long_topic = run_cli({"match", "a/#", huge});
  const CliRun not_utf8 = run_cli({"match", "a\xff/#", "a"});

  EXPECT_EQ(long_topic.exit.code, 2) << long_topic.what();
  EXPECT_LT(long_topic.err.size(), 400U) << "the whole topic was echoed";
  EXPECT_NE(long_topic.err.find("... (70002 bytes)"), std::string::npos) << long_topic.what();
  EXPECT_EQ(lines_of(long_topic.err).size(), 1U) << long_topic.what();
  EXPECT_EQ(not_utf8.exit.code, 2) << not_utf8.what();
  EXPECT_NE(not_utf8.err.find("'a\\xff/#'"), std::string::npos) << not_utf8.what();
}

TEST_F(CliOps, AnUnknownLogLevelIsSaidAndTheLogStaysOn) {
  const CliRun r =
      run_program("/usr/bin/env", {"IPCBUS_LOG_LEVEL=bogus", kCli, "ls", "--bus", missing_bus()});

  EXPECT_TRUE(r.exit.exited) << r.what();
  EXPECT_EQ(r.exit.code, 1) << r.what();
  EXPECT_NE(r.err.find("IPCBUS_LOG_LEVEL='bogus' is not one of"), std::string::npos) << r.what();
  EXPECT_FALSE(segment_exists(missing_bus()));
}

TEST_F(CliOps, ANaNTimeoutAndAnUnknownGroupAreBadValuesThatExitTwo) {
  const CliRun nan_timeout =
      run_cli({"pub", "--bus", bus_, "--timeout", "nan", "-m", "x", "some/topic"});
  const CliRun no_group = run_cli(
      {"create", "--bus", bus_, "--mode", "0660", "--group", "ipcbus-test-no-such-group-x"});

  EXPECT_TRUE(nan_timeout.exit.exited) << nan_timeout.what();
  EXPECT_EQ(nan_timeout.exit.code, 2) << nan_timeout.what();
  EXPECT_NE(nan_timeout.err.find("not a number"), std::string::npos) << nan_timeout.what();
  EXPECT_TRUE(no_group.exit.exited) << no_group.what();
  EXPECT_EQ(no_group.exit.code, 2) << no_group.what();
  EXPECT_NE(no_group.err.find("no such group"), std::string::npos) << no_group.what();
  EXPECT_FALSE(segment_exists(bus_));
}

TEST_F(CliOps, TheAgentTellsItsVersionAndExitsTwoOnBadUsage) {
  const CliRun version = run_program(IPCBUS_AGENT, {"--version"});
  const CliRun unknown = run_program(IPCBUS_AGENT, {"--bus", bus_, "--no-such-flag"});
  const CliRun bad_interval = run_program(IPCBUS_AGENT, {"--bus", bus_, "--interval", "0"});
  // spdlog alone would take an unknown level for "off" and say nothing ever.
  const CliRun bad_level = run_program(IPCBUS_AGENT, {"--bus", bus_, "--log-level", "INFO"});

  EXPECT_TRUE(ended_ok(version.exit)) << version.what();
  EXPECT_NE(version.out.find("ipcbus-agent " IPCBUS_TEST_VERSION " (segment layout " +
                             std::to_string(layout_version()) + ")"),
            std::string::npos)
      << version.what();
  EXPECT_TRUE(unknown.exit.exited) << unknown.what();
  EXPECT_EQ(unknown.exit.code, 2) << unknown.what();
  EXPECT_NE(unknown.err.find("--no-such-flag"), std::string::npos) << unknown.what();
  EXPECT_TRUE(bad_interval.exit.exited) << bad_interval.what();
  EXPECT_EQ(bad_interval.exit.code, 2) << bad_interval.what();
  EXPECT_NE(bad_interval.err.find("--interval"), std::string::npos) << bad_interval.what();
  EXPECT_TRUE(bad_level.exit.exited) << bad_level.what();
  EXPECT_EQ(bad_level.exit.code, 2) << bad_level.what();
  EXPECT_NE(bad_level.err.find("--log-level"), std::string::npos) << bad_level.what();
  EXPECT_FALSE(segment_exists(bus_));
}

TEST_F(CliOps, LsShowsAFiltersNewlineEscapedAndAKilledOwnersListenerAsSuch) {
  ASSERT_TRUE(create_small_bus());
  const pid_t sub = start_sub("line\nbreak/#", {}, temp_file("sub.out"));
  kill_sub(sub);

  const CliRun r = run_cli({"ls", "--bus", bus_});

  EXPECT_TRUE(ended_ok(r.exit)) << r.what();
  const std::vector<std::string> lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 2U) << "a header and one row, unbroken:\n" << r.out;
  EXPECT_NE(lines[1].find("line\\nbreak/#"), std::string::npos) << r.out;
  EXPECT_NE(lines[1].find("active (owner dead)"), std::string::npos) << r.out;
}

TEST_F(CliOps, AgentOnceReportsWhatCameBackFromAKilledSub) {
  ASSERT_TRUE(create_small_bus());
  const std::string out = temp_file("sub.out");
  const pid_t sub = start_sub("dead/#", {}, out);
  ASSERT_EQ(kill(sub, SIGSTOP), 0);
  const CliRun pub = run_cli({"pub", "--bus", bus_, "-m", "queued", "dead/x"});
  const CliRun pub2 = run_cli({"pub", "--bus", bus_, "-m", "queued", "dead/y"});
  ASSERT_TRUE(ended_ok(pub.exit) && ended_ok(pub2.exit)) << pub.what() << pub2.what();
  kill_sub(sub);

  const CliRun once = run_program(IPCBUS_AGENT, {"--bus", bus_, "--once"});

  EXPECT_TRUE(ended_ok(once.exit)) << once.what();
  // The sub's process, its listener and the two events queued in its ring.
  EXPECT_NE(once.out.find("processes 1 listeners 1 publishers 0 chunks 2 "), std::string::npos)
      << once.what();
  const CliRun doctor = run_cli({"doctor", "--bus", bus_});
  EXPECT_TRUE(ended_ok(doctor.exit)) << doctor.what();
}

// A bus whose creator is still initialising it (its init lock held, no
// magic yet) is waited for as long as the global --ready-timeout says.
TEST_F(CliOps, ReadyTimeoutIsHowLongAToolWaitsForASlowCreator) {
  const std::string path = "/dev/shm/ipcbus." + bus_;
  const int fd = open(path.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(ftruncate(fd, 64 * 1024), 0);
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(detail::kInitLockByte);
  fl.l_len = 1;
  ASSERT_EQ(fcntl(fd, F_OFD_SETLK, &fl), 0) << "cannot take the init lock as a creator would";

  const CliRun r = run_cli({"--ready-timeout", "0.25", "ls", "--bus", bus_});
  const CliRun bad = run_cli({"--ready-timeout", "-1", "ls", "--bus", bus_});

  close(fd);
  unlink(path.c_str());
  EXPECT_TRUE(r.exit.exited) << r.what();
  EXPECT_EQ(r.exit.code, 1) << r.what();
  EXPECT_NE(r.err.find("still running, did not finish initialising it within 250 ms"),
            std::string::npos)
      << r.what();
  EXPECT_EQ(bad.exit.code, 2) << bad.what();
}

TEST_F(CliOps, AgentOnceRunsBesideAServingAgent) {
  ASSERT_TRUE(create_small_bus());
  SpawnOptions so;
  so.stdout_path = temp_file("agent.out");
  so.stderr_path = temp_file("agent.err");
  const pid_t agent = start({IPCBUS_AGENT, "--bus", bus_}, so);
  Bus* bus = observer();
  ASSERT_NE(bus, nullptr);
  ASSERT_TRUE(poll_until([&] { return bus->inspect().agent_pid == agent; }))
      << describe("the agent's stderr", so.stderr_path);

  const CliRun once = run_program(IPCBUS_AGENT, {"--bus", bus_, "--once"});

  kill(agent, SIGTERM);
  EXPECT_TRUE(ended_ok(finish(agent))) << describe("the agent's stderr", so.stderr_path);
  EXPECT_TRUE(ended_ok(once.exit)) << once.what();
  EXPECT_NE(once.out.find("processes 0 "), std::string::npos) << once.what();
}

TEST_F(CliOps, LsAndStatOfAMissingBusExitOneAndCreateNothing) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"ls", "--bus", missing_bus()},
        std::vector<std::string>{"ls", "topics", "--bus", missing_bus()},
        std::vector<std::string>{"stat", "--bus", missing_bus()},
        std::vector<std::string>{"stat", "--bus", missing_bus(), "-o", "prometheus"}}) {
    const CliRun r = run_cli(args);

    EXPECT_TRUE(r.exit.exited) << args[0] << ": " << r.what();
    EXPECT_EQ(r.exit.code, 1) << args[0] << ": " << r.what();
    EXPECT_FALSE(segment_exists(missing_bus())) << args[0];
  }
}

}  // namespace
}  // namespace ipcbus::test
