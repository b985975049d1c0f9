// children.cpp: fork and exec of child roles, their pipes, kill and reap.
#include "children.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <system_error>

namespace replay {

namespace {

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

void close_fd(int& fd) {
  if (fd >= 0) {
    close(fd);
    fd = -1;
  }
}

// In the child, between fork and exec: only async-signal-safe calls.
[[noreturn]] void exec_child(char* const* argv, pid_t parent, int out_w, int in_r, int keep_fd,
                             const sigset_t& mask) {
  // Die with the coordinator, whatever kills it; and catch a coordinator
  // that died before the line above took effect.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) {
    _exit(127);
  }
  if (dup2(out_w, STDOUT_FILENO) < 0) {
    _exit(127);
  }
  if (in_r >= 0) {
    if (dup2(in_r, STDIN_FILENO) < 0) {
      _exit(127);
    }
  } else {
    const int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null >= 0) {
      dup2(null, STDIN_FILENO);
    }
  }
  // Every other descriptor of the coordinator closes on exec, except keep_fd.
  if (keep_fd > STDERR_FILENO) {
    close_range(STDERR_FILENO + 1, static_cast<unsigned>(keep_fd) - 1, CLOSE_RANGE_CLOEXEC);
    close_range(static_cast<unsigned>(keep_fd) + 1, UINT_MAX, CLOSE_RANGE_CLOEXEC);
    fcntl(keep_fd, F_SETFD, 0);
  } else {
    close_range(STDERR_FILENO + 1, UINT_MAX, CLOSE_RANGE_CLOEXEC);
  }
  signal(SIGPIPE, SIG_DFL);  // the coordinator ignores it; exec would keep that
  // NOLINTNEXTLINE(concurrency-mt-unsafe): in the forked child, one thread; async-signal-safe
  sigprocmask(SIG_SETMASK, &mask, nullptr);
  execv("/proc/self/exe", argv);
  _exit(127);
}

}  // namespace

std::string Child::how_it_ended() const {
  if (running) {
    return "is still running";
  }
  if (WIFEXITED(status)) {
    return "exited with status " + std::to_string(WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    return "was killed by signal " + std::to_string(WTERMSIG(status));
  }
  return "ended with wait status " + std::to_string(status);
}

bool Child::ended_well() const {
  return !running && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

Child& ChildSet::spawn(std::string what, const std::vector<std::string>& args, bool stdin_pipe,
                       int keep_fd, const sigset_t& child_mask) {
  // Everything the child needs is built before fork: no allocation after it.
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  argv.reserve(copy.size() + 1);
  for (std::string& a : copy) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);

  int out[2] = {-1, -1};
  int in[2] = {-1, -1};
  if (pipe2(out, O_CLOEXEC) != 0) {
    throw_errno("pipe2");
  }
  if (stdin_pipe && pipe2(in, O_CLOEXEC) != 0) {
    const int saved = errno;
    close_fd(out[0]);
    close_fd(out[1]);
    errno = saved;
    throw_errno("pipe2");
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    exec_child(argv.data(), parent, out[1], in[0], keep_fd, child_mask);
  }
  const int fork_errno = errno;
  close_fd(out[1]);
  close_fd(in[0]);
  if (pid < 0) {
    close_fd(out[0]);
    close_fd(in[1]);
    errno = fork_errno;
    throw_errno("fork");
  }
  fcntl(out[0], F_SETFL, O_NONBLOCK);
  Child& c = children_.emplace_back();
  c.what = std::move(what);
  c.pid = pid;
  c.out = out[0];
  c.in = in[1];
  return c;
}

void ChildSet::read_available(Child& c) {
  char buf[4096];
  while (c.out >= 0) {
    const ssize_t n = read(c.out, buf, sizeof buf);
    if (n > 0) {
      c.partial.append(buf, static_cast<std::size_t>(n));
      std::size_t nl = 0;
      while ((nl = c.partial.find('\n')) != std::string::npos) {
        c.lines.push_back(c.partial.substr(0, nl));
        c.partial.erase(0, nl + 1);
      }
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return;
    }
    close_fd(c.out);  // EOF, or an error that ends the conversation just the same
  }
}

void ChildSet::reap() {
  for (Child& c : children_) {
    if (c.running && waitpid(c.pid, &c.status, WNOHANG) == c.pid) {
      c.running = false;
    }
  }
}

void ChildSet::kill_all() {
  for (Child& c : children_) {
    if (c.running) {
      kill(c.pid, SIGKILL);
    }
  }
  for (Child& c : children_) {
    while (c.running) {
      if (waitpid(c.pid, &c.status, 0) == c.pid || errno != EINTR) {
        c.running = false;
      }
    }
    close_fd(c.out);
    close_fd(c.in);
  }
}

}  // namespace replay
