// multiproc.hpp: what the multi-process tests share: starting peers and tools
// as real processes (fork + exec), waiting for them with a bound, reading
// what they printed, and a fixture that gives each test a bus name of its
// own, a watchdog, and a clean-up that kills and reaps every child it left.
//
// Every wait here has a generous bound that only guards against a hang; no
// test asserts on how long anything took.
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ipcbus/bus.hpp"
#include "layout.hpp"
#include "peer_protocol.hpp"

namespace ipcbus::test {

inline constexpr const char* kPeer = IPCBUS_TEST_PEER;
inline constexpr const char* kCli = IPCBUS_CLI;
inline constexpr auto kChildTimeout = std::chrono::seconds(60);
inline constexpr auto kReadyTimeout = std::chrono::seconds(30);

// A pipe whose ends are both close-on-exec; a child inherits only the end
// that spawn() is told to pass.
struct Pipe {
  int read_end = -1;
  int write_end = -1;
  Pipe() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) == 0) {
      read_end = fds[0];
      write_end = fds[1];
    }
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  ~Pipe() {
    close_read();
    close_write();
  }
  void close_read() {
    if (read_end >= 0) {
      close(read_end);
      read_end = -1;
    }
  }
  void close_write() {
    if (write_end >= 0) {
      close(write_end);
      write_end = -1;
    }
  }
};

// How to start a child: its stdin, stdout and stderr files (empty: inherit;
// stderr may go to the stdout file), and the descriptors it keeps across exec.
struct SpawnOptions {
  std::string stdin_path;
  std::string stdout_path;
  std::string stderr_path;
  bool stderr_to_stdout = false;
  std::vector<int> pass_fds;
  // Run the child as this user (a root parent only): its groups, then its
  // gid, then its uid are set before exec; the child exits 125 if one fails.
  std::optional<uid_t> uid;
  gid_t gid = 0;
  std::vector<gid_t> groups;
};

// spawn forks and execs argv[0] with argv. The child dies with the thread
// that forked it (PR_SET_PDEATHSIG), so a test process that crashes leaves
// no peer behind. Returns the pid, or -1.
inline pid_t spawn(const std::vector<std::string>& argv, const SpawnOptions& o) {
  // Everything the child needs is built before fork: after it, the child
  // may only make async-signal-safe calls.
  std::vector<char*> cargv;
  for (const std::string& s : argv) {
    cargv.push_back(const_cast<char*>(s.c_str()));
  }
  cargv.push_back(nullptr);
  const int in = o.stdin_path.empty() ? -1 : open(o.stdin_path.c_str(), O_RDONLY | O_CLOEXEC);
  auto open_out = [](const std::string& path) {
    return path.empty() ? -1 : open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  };
  const int out = open_out(o.stdout_path);
  const int err = o.stderr_to_stdout ? -1 : open_out(o.stderr_path);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    if (o.uid && (setgroups(o.groups.size(), o.groups.data()) != 0 || setgid(o.gid) != 0 ||
                  setuid(*o.uid) != 0)) {
      _exit(125);
    }
    // After the change of user: a change of credentials clears the setting.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) {
      _exit(126);  // the parent died before the line above
    }
    if (in >= 0) {
      dup2(in, STDIN_FILENO);
    }
    if (out >= 0) {
      dup2(out, STDOUT_FILENO);
      if (o.stderr_to_stdout) {
        dup2(out, STDERR_FILENO);
      }
    }
    if (err >= 0) {
      dup2(err, STDERR_FILENO);
    }
    for (int fd : o.pass_fds) {
      fcntl(fd, F_SETFD, 0);
    }
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  for (int fd : {in, out, err}) {
    if (fd >= 0) {
      close(fd);
    }
  }
  return pid;
}

// How a child ended.
struct Exit {
  bool exited = false;     // exited normally (see code), else killed or timed out
  int code = -1;           // exit status when exited
  int signal = 0;          // the signal that ended it, if any
  bool timed_out = false;  // still running at the bound; it was killed
};

// wait_exit reaps `pid`, killing it first if it runs past `bound`.
inline Exit wait_exit(pid_t pid, std::chrono::milliseconds bound = kChildTimeout) {
  Exit e;
  const auto deadline = std::chrono::steady_clock::now() + bound;
  int status = 0;
  for (;;) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      break;
    }
    if (r < 0) {
      return e;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      e.timed_out = true;
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  e.exited = WIFEXITED(status);
  e.code = e.exited ? WEXITSTATUS(status) : -1;
  e.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  return e;
}

inline bool ended_ok(const Exit& e) {
  return e.exited && e.code == 0;
}

// still_running tells whether `pid` has not exited yet (it is not reaped).
inline bool still_running(pid_t pid) {
  siginfo_t info{};
  return waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
         info.si_pid == 0;
}

// read_byte waits up to `bound` for one byte on `fd`; nothing on timeout or
// when every writer has closed the pipe (the child died).
inline std::optional<char> read_byte(int fd, std::chrono::milliseconds bound = kReadyTimeout) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(bound.count())) != 1) {
    return std::nullopt;
  }
  char c = 0;
  if (read(fd, &c, 1) != 1) {
    return std::nullopt;
  }
  return c;
}

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// The lines of `text` that start with `prefix` followed by a space.
inline std::vector<std::string> lines_with(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix + " ", 0) == 0) {
      out.push_back(line);
    }
  }
  return out;
}

// The value of `key=` in a line of key=value fields, or -1.
inline long long field(const std::string& line, const std::string& key) {
  const std::size_t at = line.find(" " + key + "=");
  if (at == std::string::npos) {
    return -1;
  }
  return std::strtoll(line.c_str() + at + key.size() + 2, nullptr, 10);
}

// One "event" line of a listening peer.
struct Event {
  std::uint32_t publisher = 0;
  std::uint64_t sequence = 0;
  std::string topic;
  std::size_t length = 0;
  bool intact = false;
};

inline std::vector<Event> events_in(const std::string& text) {
  std::vector<Event> out;
  for (const std::string& line : lines_with(text, "event")) {
    std::istringstream in(line.substr(6));
    Event e;
    std::string verdict;
    in >> e.publisher >> e.sequence >> e.topic >> e.length >> verdict;
    e.intact = verdict == "ok";
    out.push_back(e);
  }
  return out;
}

// A read-only mapping of a bus's whole segment, for looking at what the
// public API does not show (the creator pid, a listener's sleeping flag).
class RawSegment {
 public:
  explicit RawSegment(const std::string& bus) {
    const int fd = open(("/dev/shm/ipcbus." + bus).c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0) {
      bytes_ = static_cast<std::size_t>(st.st_size);
      void* p = mmap(nullptr, bytes_, PROT_READ, MAP_SHARED, fd, 0);
      base_ = p == MAP_FAILED ? nullptr : static_cast<const char*>(p);
    }
    if (fd >= 0) {
      close(fd);
    }
  }
  RawSegment(const RawSegment&) = delete;
  RawSegment& operator=(const RawSegment&) = delete;
  ~RawSegment() {
    if (base_ != nullptr) {
      munmap(const_cast<char*>(base_), bytes_);
    }
  }
  bool mapped() const { return base_ != nullptr && bytes_ >= sizeof(detail::SegmentHeader); }
  const detail::SegmentHeader& header() const {
    return *reinterpret_cast<const detail::SegmentHeader*>(base_);
  }
  const detail::ListenerSlot& slot(std::uint32_t i) const {
    return reinterpret_cast<const detail::ListenerSlot*>(base_ + header().listener_off)[i];
  }

 private:
  const char* base_ = nullptr;
  std::size_t bytes_ = 0;
};

// poll_until checks `done` every few milliseconds until it holds or `bound`
// passes; returns whether it held.
template <class F>
bool poll_until(F done, std::chrono::milliseconds bound = kReadyTimeout) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// Watchdog: if a test runs past its bound, SIGKILLs the children it was told
// about (so that every bounded wait of the test returns and it fails), and
// if the test still has not ended after a grace period, aborts the binary
// rather than let it block CI.
class Watchdog {
 public:
  explicit Watchdog(std::chrono::seconds bound) : thread_([this, bound] { run(bound); }) {}
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopped_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void watch(pid_t pid) {
    std::lock_guard<std::mutex> lock(mutex_);
    pids_.push_back(pid);
  }
  // relaxed: read by the test thread after the child it waits for died; the
  // kill that made it die happened after this store in the watchdog thread.
  bool fired() const { return fired_.load(std::memory_order_relaxed); }

 private:
  void run(std::chrono::seconds bound) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (cv_.wait_for(lock, bound, [this] { return stopped_; })) {
      return;
    }
    // relaxed: see fired().
    fired_.store(true, std::memory_order_relaxed);
    std::fprintf(stderr, "watchdog: test ran past %lld s; killing %zu children\n",
                 static_cast<long long>(bound.count()), pids_.size());
    for (pid_t pid : pids_) {
      kill(pid, SIGKILL);
    }
    if (cv_.wait_for(lock, std::chrono::seconds(20), [this] { return stopped_; })) {
      return;
    }
    std::fprintf(stderr, "watchdog: test still stuck 20 s later; aborting\n");
    std::abort();
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopped_ = false;
  std::atomic<bool> fired_{false};
  std::vector<pid_t> pids_;
  std::thread thread_;
};

// MultiProc: the fixture of every multi-process test. It names a bus after
// the test and this process, starts children through start(), and on tear
// down kills and reaps every child not yet reaped, removes the bus and the
// temporary files.
class MultiProc : public ::testing::Test {
 protected:
  MultiProc() : watchdog_(std::chrono::seconds(90)) {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    static int serial = 0;
    bus_ = std::string("mp-") + std::to_string(getpid()) + "-" + std::to_string(++serial) + "-" +
           info->name();
    for (char& c : bus_) {
      const bool allowed = std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-';
      c = allowed ? c : '_';  // parameterised tests have a '/' in their names
    }
  }

  void TearDown() override {
    for (pid_t pid : running_) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    running_.clear();
    (void)Bus::destroy(bus_);
    for (const std::string& f : files_) {
      if (HasFailure()) {
        std::fprintf(stderr, "kept %s\n", f.c_str());
      } else {
        std::remove(f.c_str());
      }
    }
    EXPECT_FALSE(watchdog_.fired()) << "the watchdog killed this test's children";
  }

  // create_bus makes this test's bus with small_config() and keeps it open.
  Bus& create_bus() {
    OpenOptions o;
    o.name = bus_;
    o.config = small_config();
    auto opened = Bus::open(o);
    EXPECT_TRUE(opened) << opened.error().message;
    bus_handle_.emplace(std::move(opened.value()));
    return *bus_handle_;
  }

  // A file name for a child's output (or input), removed on tear down.
  std::string temp_file(const std::string& tag) {
    files_.push_back("/tmp/ipcbus-" + bus_ + "-" + std::to_string(files_.size()) + "-" + tag);
    return files_.back();
  }

  // start runs `argv` as a child, watched by the watchdog and reaped on
  // tear down if the test did not finish() it.
  pid_t start(const std::vector<std::string>& argv, const SpawnOptions& o) {
    const pid_t pid = spawn(argv, o);
    EXPECT_GT(pid, 0) << "fork failed";
    if (pid > 0) {
      running_.push_back(pid);
      watchdog_.watch(pid);
    }
    return pid;
  }

  // start_peer runs the peer program in `role` on this test's bus, with
  // stdout and stderr to `out_path`, keeping `pass_fds` open.
  pid_t start_peer(const std::string& role, std::vector<std::string> args,
                   const std::string& out_path, std::vector<int> pass_fds = {}) {
    std::vector<std::string> argv = {kPeer, role, "--bus", bus_};
    argv.insert(argv.end(), args.begin(), args.end());
    SpawnOptions o;
    o.stdout_path = out_path;
    o.stderr_to_stdout = true;
    o.pass_fds = std::move(pass_fds);
    return start(argv, o);
  }

  // finish reaps a child started here (killing it past the bound).
  Exit finish(pid_t pid, std::chrono::milliseconds bound = kChildTimeout) {
    std::erase(running_, pid);
    return wait_exit(pid, bound);
  }

  // The listener slot a child process owns, from the segment.
  std::optional<ListenerInfo> listener_of(pid_t pid) const {
    for (const ListenerInfo& l : bus_handle_->inspect().listeners) {
      if (l.owner_pid == pid) {
        return l;
      }
    }
    return std::nullopt;
  }

  std::string bus_;
  std::optional<Bus> bus_handle_;
  std::vector<pid_t> running_;
  std::vector<std::string> files_;
  Watchdog watchdog_;
};

// describe gives what a child printed, for failure messages.
inline std::string describe(const std::string& what, const std::string& path) {
  return what + " printed:\n" + read_file(path);
}

}  // namespace ipcbus::test
