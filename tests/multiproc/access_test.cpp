// access_test.cpp: a bus as a second, real user sees it. The test (root)
// makes a system user and a group for the run, creates buses as root, and
// starts the CLI, the agent and the peer program as that user (fork, then
// setgroups/setgid/setuid, then exec). Checked: a default 0600 bus refuses
// the other user with a message naming the owner and the mode, exit 1, and
// nothing is created or changed; a 0660 bus of a group the user is in lets
// it attach, publish and subscribe once it allows another user's bus; a
// 0660 bus of a group the user is not in refuses it; `ls`, `stat`,
// `errors`, `top --once` of another user's bus end with a message, no crash
// and no hang. The user and the group are removed on tear down, whatever
// the outcome. Without root the tests are skipped.
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "multiproc.hpp"

namespace ipcbus::test {
namespace {

inline constexpr const char* kAgent = IPCBUS_AGENT;
// Each child of these tests ends in well under a second; past this bound it
// hangs, and is killed and reported.
inline constexpr auto kHangBound = std::chrono::seconds(20);

struct ChildRun {
  Exit exit;
  std::string out;
  std::string err;
  std::string what() const {
    return "exit " + std::to_string(exit.code) + " signal " + std::to_string(exit.signal) +
           (exit.timed_out ? " (hung, killed)" : "") + "\nstdout:\n" + out + "\nstderr:\n" + err;
  }
};

// shell runs a command line (useradd and friends) and returns its exit status.
int shell(const std::string& command) {
  const int status = std::system((command + " >/dev/null 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// retry_shell retries a command that may find /etc/passwd locked by another
// test process adding or removing its own user at the same moment.
bool retry_shell(const std::string& command) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (shell(command) == 0) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

struct FileState {
  bool exists = false;
  uid_t uid = 0;
  gid_t gid = 0;
  mode_t mode = 0;
  std::string bytes;
  bool operator==(const FileState&) const = default;
};

FileState state_of(const std::string& path) {
  FileState s;
  struct stat st {};
  if (stat(path.c_str(), &st) == 0) {
    s.exists = true;
    s.uid = st.st_uid;
    s.gid = st.st_gid;
    s.mode = st.st_mode & 07777;
    s.bytes = read_file(path);
  }
  return s;
}

// The names in /dev/shm owned by `uid`.
std::vector<std::string> shm_files_of(uid_t uid) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm", ec)) {
    struct stat st {};
    if (stat(entry.path().c_str(), &st) == 0 && st.st_uid == uid) {
      out.push_back(entry.path().string());
    }
  }
  return out;
}

bool has_text(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

class Access : public MultiProc {
 protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "needs root: it adds a system user and a group and runs children as that "
                      "user (CI runs as root)";
    }
    const std::string id = std::to_string(getpid());
    user_ = "ipcbus-test-" + id;
    group_ = "ipcbus-tg-" + id;
    if (getgrnam(group_.c_str()) == nullptr) {
      ASSERT_TRUE(retry_shell("groupadd --system " + group_)) << "groupadd " << group_;
      made_group_ = true;
    }
    if (getpwnam(user_.c_str()) == nullptr) {
      ASSERT_TRUE(retry_shell("useradd --system --no-create-home --shell /usr/sbin/nologin -G " +
                              group_ + " " + user_))
          << "useradd " << user_;
      made_user_ = true;
    } else {
      ASSERT_TRUE(retry_shell("usermod -a -G " + group_ + " " + user_));
    }
    const passwd* pw = getpwnam(user_.c_str());
    const group* gr = getgrnam(group_.c_str());
    ASSERT_NE(pw, nullptr);
    ASSERT_NE(gr, nullptr);
    uid_ = pw->pw_uid;
    gid_ = pw->pw_gid;
    shared_gid_ = gr->gr_gid;
    // The groups the system database gives the user, as a login would.
    int count = 32;
    groups_.resize(static_cast<std::size_t>(count));
    ASSERT_GE(getgrouplist(user_.c_str(), gid_, groups_.data(), &count), 0);
    groups_.resize(static_cast<std::size_t>(count));
    ASSERT_NE(std::find(groups_.begin(), groups_.end(), shared_gid_), groups_.end())
        << user_ << " is not in " << group_;
  }

  void TearDown() override {
    MultiProc::TearDown();  // the user's processes end before the user goes
    if (made_user_ || !user_.empty()) {
      EXPECT_TRUE(retry_shell("userdel " + user_)) << "userdel " << user_;
    }
    if (made_group_ || !group_.empty()) {
      EXPECT_TRUE(getgrnam(group_.c_str()) == nullptr || retry_shell("groupdel " + group_))
          << "groupdel " << group_;
    }
  }

  std::string path() const { return "/dev/shm/ipcbus." + bus_; }

  // create_bus_with makes this test's bus as root with `mode` and `group`.
  void create_bus_with(std::uint32_t mode, const std::string& group) {
    OpenOptions o;
    o.name = bus_;
    o.config = small_config();
    o.config.mode = mode;
    o.config.group = group;
    auto opened = Bus::open(o);
    ASSERT_TRUE(opened) << opened.error().message;
    bus_handle_.emplace(std::move(opened.value()));
  }

  // as_user runs argv as the test user to its end (killed past kHangBound).
  ChildRun as_user(const std::vector<std::string>& argv) {
    SpawnOptions o;
    o.stdout_path = temp_file("out");
    o.stderr_path = temp_file("err");
    o.uid = uid_;
    o.gid = gid_;
    o.groups = groups_;
    ChildRun r;
    r.exit = finish(start(argv, o), kHangBound);
    r.out = read_file(o.stdout_path);
    r.err = read_file(o.stderr_path);
    return r;
  }

  pid_t start_as_user(const std::vector<std::string>& argv, const std::string& out,
                      std::vector<int> pass_fds = {}) {
    SpawnOptions o;
    o.stdout_path = out;
    o.stderr_to_stdout = true;
    o.pass_fds = std::move(pass_fds);
    o.uid = uid_;
    o.gid = gid_;
    o.groups = groups_;
    return start(argv, o);
  }

  std::string user_;
  std::string group_;
  bool made_user_ = false;
  bool made_group_ = false;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  gid_t shared_gid_ = 0;
  std::vector<gid_t> groups_;
};

TEST_F(Access, DefaultBusRefusesAnotherUserNamingOwnerAndModeAndChangesNothing) {
  create_bus_with(0600, "");
  const FileState before = state_of(path());
  ASSERT_TRUE(before.exists);
  ASSERT_EQ(before.mode, 0600U);
  ASSERT_EQ(before.uid, 0U);

  const std::vector<std::vector<std::string>> commands = {
      {kCli, "ls", "--bus", bus_},
      {kCli, "ls", "topics", "--bus", bus_},
      {kCli, "stat", "--bus", bus_},
      {kCli, "stat", "--bus", bus_, "-o", "json"},
      {kCli, "errors", "--bus", bus_},
      {kCli, "top", "--once", "--interval", "0.1", "--bus", bus_},
      {kCli, "--allow-other-owner", "ls", "--bus", bus_},
      {kCli, "sub", "--bus", bus_, "-C", "1", "-W", "1", "any/#"},
      {kCli, "pub", "--bus", bus_, "any/x", "-m", "x"},
      {kCli, "create", "--bus", bus_},
      {kCli, "destroy", "--bus", bus_},
      {kAgent, "--bus", bus_, "--interval", "0.05"},
  };
  for (const auto& argv : commands) {
    const ChildRun r = as_user(argv);
    const std::string all = r.out + r.err;
    const std::string cmd = argv[1];
    SCOPED_TRACE(argv[0] + " " + cmd + " " + (argv.size() > 2 ? argv[2] : ""));

    EXPECT_TRUE(r.exit.exited) << r.what();
    EXPECT_EQ(r.exit.code, 1) << r.what();
    if (cmd == "create") {
      EXPECT_TRUE(has_text(r.err, "already exists")) << r.what();
      continue;
    }
    EXPECT_TRUE(has_text(all, "owned by user root (uid 0)")) << r.what();
    EXPECT_TRUE(has_text(all, "mode 0600")) << r.what();
    EXPECT_TRUE(has_text(all, user_)) << r.what();
  }
  const ChildRun peer =
      as_user({kPeer, "listen", "--bus", bus_, "--filter", "any/#", "--count", "1"});

  EXPECT_TRUE(peer.exit.exited) << peer.what();
  EXPECT_EQ(peer.exit.code, 2) << peer.what();
  EXPECT_TRUE(has_text(peer.out, "error open: permission denied")) << peer.what();
  EXPECT_TRUE(has_text(peer.out, "mode 0600")) << peer.what();
  EXPECT_EQ(state_of(path()), before) << "the refused user changed the segment";
  EXPECT_TRUE(shm_files_of(uid_).empty()) << "the refused user created " << shm_files_of(uid_)[0];
  EXPECT_TRUE(bus_handle_->inspect().processes.size() == 1) << "only this test is attached";
}

TEST_F(Access, GroupModeBusLetsAMemberOfTheGroupPublishAndSubscribe) {
  create_bus_with(0660, group_);
  const FileState made = state_of(path());
  ASSERT_EQ(made.mode, 0660U);
  ASSERT_EQ(made.gid, shared_gid_);
  auto root_listener = bus_handle_->listen({});
  ASSERT_TRUE(root_listener) << root_listener.error().message;
  ASSERT_TRUE(root_listener->subscribe("shared/#"));
  Pipe ready;
  const std::string listen_out = temp_file("listen");

  const pid_t listener =
      start_as_user({kPeer, "listen", "--bus", bus_, "--allow-other-owner", "--filter", "shared/#",
                     "--count", "5", "--ready-fd", std::to_string(ready.write_end)},
                    listen_out, {ready.write_end});
  ready.close_write();
  ASSERT_EQ(read_byte(ready.read_end), kReady) << describe("listener", listen_out);
  const ChildRun ls = as_user({kCli, "--allow-other-owner", "ls", "--bus", bus_});
  const ChildRun topics =
      as_user({"/usr/bin/env", "IPCBUS_ALLOW_OTHER_OWNER=1", kCli, "ls", "topics", "--bus", bus_});
  const ChildRun stat = as_user({kCli, "--allow-other-owner", "stat", "--bus", bus_, "-o", "json"});
  const ChildRun publisher = as_user({kPeer, "publish", "--bus", bus_, "--allow-other-owner",
                                      "--topic", "shared/a", "--count", "5"});
  const Exit listened = finish(listener, kHangBound);
  const ChildRun cli_pub =
      as_user({kCli, "--allow-other-owner", "pub", "--bus", bus_, "shared/cli", "-m", "from-cli"});

  EXPECT_TRUE(ended_ok(ls.exit)) << ls.what();
  EXPECT_TRUE(has_text(ls.out, std::to_string(listener))) << ls.what();
  EXPECT_TRUE(ended_ok(topics.exit)) << topics.what();
  EXPECT_TRUE(has_text(topics.out, "shared/#")) << topics.what();
  EXPECT_TRUE(ended_ok(stat.exit)) << stat.what();
  EXPECT_TRUE(has_text(stat.out, "\"mode\":\"0660\"") || has_text(stat.out, "\"mode\": \"0660\""))
      << stat.what();
  EXPECT_TRUE(ended_ok(publisher.exit)) << publisher.what();
  EXPECT_EQ(field(publisher.out, "ok"), 5) << publisher.what();
  EXPECT_TRUE(ended_ok(listened)) << describe("listener", listen_out);
  const std::vector<Event> events = events_in(read_file(listen_out));
  ASSERT_EQ(events.size(), 5U) << describe("listener", listen_out);
  for (const Event& e : events) {
    EXPECT_TRUE(e.intact) << describe("listener", listen_out);
  }
  EXPECT_TRUE(ended_ok(cli_pub.exit)) << cli_pub.what();
  int at_root = 0;
  bool cli_event = false;
  while (auto s = root_listener->try_receive()) {
    ++at_root;
    cli_event = cli_event || s->payload_text() == "from-cli";
  }
  EXPECT_EQ(at_root, 6) << "root's listener gets the user's 5 peer events and 1 CLI event";
  EXPECT_TRUE(cli_event);
}

TEST_F(Access, GroupMemberWithoutTheAllowFlagIsRefusedWithAHint) {
  create_bus_with(0660, group_);

  const ChildRun ls = as_user({kCli, "ls", "--bus", bus_});
  const ChildRun peer = as_user({kPeer, "listen", "--bus", bus_, "--filter", "x", "--count", "1"});

  EXPECT_TRUE(ls.exit.exited) << ls.what();
  EXPECT_EQ(ls.exit.code, 1) << ls.what();
  EXPECT_TRUE(has_text(ls.err, "owned by user root (uid 0), group " + group_)) << ls.what();
  EXPECT_TRUE(has_text(ls.err, "mode 0660")) << ls.what();
  EXPECT_TRUE(has_text(ls.err, "--allow-other-owner")) << ls.what();
  EXPECT_EQ(peer.exit.code, 2) << peer.what();
  EXPECT_TRUE(has_text(peer.out, "allow_other_owner")) << peer.what();
}

TEST_F(Access, GroupModeBusRefusesAUserOutsideTheGroup) {
  create_bus_with(0660, "root");  // a group the test user is not in
  const FileState before = state_of(path());
  ASSERT_EQ(before.gid, 0U);

  const ChildRun ls = as_user({kCli, "--allow-other-owner", "ls", "--bus", bus_});
  const ChildRun stat = as_user({kCli, "--allow-other-owner", "stat", "--bus", bus_});
  const ChildRun errors = as_user({kCli, "--allow-other-owner", "errors", "--bus", bus_});
  const ChildRun forced = as_user({kCli, "destroy", "--force", "--bus", bus_});

  for (const ChildRun* r : {&ls, &stat, &errors}) {
    EXPECT_TRUE(r->exit.exited) << r->what();
    EXPECT_EQ(r->exit.code, 1) << r->what();
    EXPECT_TRUE(has_text(r->err, "group root (gid 0), mode 0660")) << r->what();
    EXPECT_TRUE(has_text(r->err, user_)) << r->what();
  }
  EXPECT_TRUE(forced.exit.exited) << forced.what();
  EXPECT_EQ(forced.exit.code, 1) << forced.what();
  EXPECT_TRUE(has_text(forced.err, "belongs to uid 0 (mode 0660)")) << forced.what();
  EXPECT_TRUE(has_text(forced.err, "only its owner or root may remove it")) << forced.what();
  EXPECT_EQ(state_of(path()), before) << "a refused user removed or changed the segment";
}

}  // namespace
}  // namespace ipcbus::test
