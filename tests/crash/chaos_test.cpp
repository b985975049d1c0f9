// chaos_test.cpp: publishers and listeners of every overflow policy, some of
// them killed (SIGKILL) at random for a bounded time while the agent cleans
// up, then: the bus consistent (doctor), no chunk leaked, and every listener
// that survived got, from every publisher that survived, every event of the
// block policy, none twice, in order. $IPCBUS_CHAOS_SECONDS runs it longer
// (scripts/chaos.sh).
#include <map>
#include <random>

#include "multiproc.hpp"

namespace ipcbus::test {
namespace {

constexpr const char* kCrashPeer = IPCBUS_CRASH_PEER;
constexpr const char* kAgent = IPCBUS_AGENT;

class Chaos : public MultiProc {};

TEST_F(Chaos, RandomKillsLoseNothingForTheSurvivorsAndLeakNothing) {
  const char* env = std::getenv("IPCBUS_CHAOS_SECONDS");
  const double seconds = env != nullptr ? std::atof(env) : 3.0;
  const int per_publisher = env != nullptr ? 2000000 : 20000;
  Bus& bus = create_bus();
  SpawnOptions ao;
  ao.stdout_path = temp_file("agent");
  ao.stderr_to_stdout = true;
  const pid_t agent =
      start({kAgent, "--bus", bus_, "--interval", "0.05", "--log-level", "warn"}, ao);
  ASSERT_TRUE(poll_until([&] { return bus.inspect().agent_pid == agent; }));

  auto peer = [&](std::vector<std::string> args, const std::string& tag, int ready_fd) {
    SpawnOptions o;
    o.stdout_path = temp_file(tag);
    o.stderr_to_stdout = true;
    if (ready_fd >= 0) {
      setenv("CRASH_PEER_READY_FD", std::to_string(ready_fd).c_str(), 1);
      o.pass_fds = {ready_fd};
    }
    args.insert(args.begin(), {kCrashPeer});
    args.insert(args.begin() + 2, bus_);
    const pid_t pid = start(args, o);
    unsetenv("CRASH_PEER_READY_FD");
    return std::make_pair(pid, o.stdout_path);
  };
  // Survivors: two block-policy listeners, two publishers.
  std::vector<std::pair<pid_t, std::string>> subs;
  for (int i = 0; i < 2; ++i) {
    Pipe ready;
    subs.push_back(peer({"chaos-sub", "0", "block", "c/#"}, "sub", ready.write_end));
    ready.close_write();
    ASSERT_TRUE(read_byte(ready.read_end)) << describe("survivor listener", subs.back().second);
  }
  std::mt19937 rng(20261203);
  const char* policies[] = {"block", "drop-newest", "drop-oldest"};
  std::vector<pid_t> victims;
  int spawned = 0;
  auto spawn_victim = [&] {
    const int kind = static_cast<int>(rng() % 4);
    if (kind == 0) {
      victims.push_back(peer({"chaos-pub", "100000000", "c/v"}, "vpub", -1).first);
    } else {
      victims.push_back(
          peer({"chaos-sub", "0", policies[rng() % 3], kind == 1 ? "#" : "c/+"}, "vsub", -1).first);
    }
    ++spawned;
  };
  for (int i = 0; i < 4; ++i) {
    spawn_victim();
  }
  std::vector<std::pair<pid_t, std::string>> pubs;
  for (int i = 0; i < 2; ++i) {
    pubs.push_back(peer({"chaos-pub", std::to_string(per_publisher), "c/s"}, "pub", -1));
  }
  int kills = 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(30 + rng() % 120));
    const std::size_t which = rng() % victims.size();
    kill(victims[which], SIGKILL);
    finish(victims[which]);
    victims.erase(victims.begin() + static_cast<long>(which));
    ++kills;
    spawn_victim();
  }
  for (pid_t v : victims) {
    kill(v, SIGKILL);
    finish(v);
    ++kills;
  }
  std::map<std::uint32_t, long long> published;  // survivor publisher id -> events
  for (const auto& [pid, out] : pubs) {
    EXPECT_TRUE(ended_ok(finish(pid, std::chrono::seconds(300)))) << describe("publisher", out);
    const std::string text = read_file(out);
    const auto id = lines_with(text, "pub");
    const auto done = lines_with(text, "published");
    ASSERT_FALSE(id.empty() || done.empty()) << describe("publisher", out);
    published[static_cast<std::uint32_t>(std::stoul(id[0].substr(4)))] =
        std::stoll(done[0].substr(10));
  }
  long long received = 0;
  for (const auto& [pid, out] : subs) {
    EXPECT_TRUE(ended_ok(finish(pid, std::chrono::seconds(300)))) << describe("listener", out);
    std::map<std::uint32_t, std::vector<long long>> from;
    for (const std::string& line : lines_with(read_file(out), "from")) {
      std::istringstream in(line.substr(5));
      std::uint32_t id = 0;
      long long count = 0, ordered = 0, dups = 0;
      in >> id >> count >> ordered >> dups;
      from[id] = {count, ordered, dups};
      EXPECT_EQ(dups, 0) << "publisher " << id << " events arrived twice";
      EXPECT_EQ(ordered, 1) << "publisher " << id << " events out of order";
    }
    for (const auto& [id, n] : published) {
      EXPECT_EQ(n, per_publisher) << "survivor publisher " << id << " did not publish everything";
      ASSERT_EQ(from.count(id), 1U) << describe("listener", out);
      EXPECT_EQ(from[id][0], per_publisher) << "survivor listener lost events of publisher " << id;
      received += from[id][0];
    }
  }
  // Everything left is cleaned up: only this test and the agent remain.
  EXPECT_TRUE(poll_until([&] { return bus.inspect().processes.size() == 2; }))
      << describe("agent", ao.stdout_path);
  const std::vector<std::string> v = bus.check();
  EXPECT_TRUE(v.empty()) << v.size() << " violations, first: " << (v.empty() ? "" : v[0]);
  std::uint64_t leaked = 0;
  for (const PoolInfo& p : bus.inspect().pools) {
    leaked += p.total - p.free;
  }
  EXPECT_EQ(leaked, 0U);
  const CleanupReport c = bus.inspect().cleanup;
  std::printf(
      "[ chaos ] %.1f s, %d kills of %d victims, %lld events received by the survivors "
      "from the survivors, %llu processes cleaned up, %llu ring positions repaired, "
      "%llu chunks leaked\n",
      seconds, kills, spawned, received, static_cast<unsigned long long>(c.processes),
      static_cast<unsigned long long>(c.repaired), static_cast<unsigned long long>(leaked));
  RecordProperty("kills", kills);
  RecordProperty("leaked", static_cast<int>(leaked));
  kill(agent, SIGTERM);
  finish(agent);
}

}  // namespace
}  // namespace ipcbus::test
