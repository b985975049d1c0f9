// runner.cpp: one case, from memfd to reaped children.
#include "runner.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <new>

#include "transport.hpp"

namespace ipcbus::bench {

namespace {

constexpr std::uint64_t kReadyTimeoutNs = 30'000'000'000ULL;
constexpr std::uint64_t kAbortGraceNs = 2'000'000'000ULL;

std::uint64_t g_case_counter = 0;

// The case's budget with a wide margin; past it the watchdog kills.
std::uint64_t case_deadline_ns(const CaseSpec& s) {
  return 3 * (s.duration_ns + s.warmup_ns) + 60'000'000'000ULL;
}

struct Child {
  int pid = 0;
  bool exited = false;
  int status = 0;
};

void reap_all(std::vector<Child>& children, bool kill_first) {
  for (Child& c : children) {
    if (c.exited || c.pid <= 0) {
      continue;
    }
    if (kill_first) {
      kill(c.pid, SIGKILL);
    }
    waitpid(c.pid, &c.status, 0);
    c.exited = true;
    forget_child(c.pid);
  }
}

// Poll the children once; true when all have exited.
bool poll_children(std::vector<Child>& children, bool* any_failed) {
  bool all = true;
  for (Child& c : children) {
    if (c.exited) {
      continue;
    }
    const int r = waitpid(c.pid, &c.status, WNOHANG);
    if (r == c.pid) {
      c.exited = true;
      forget_child(c.pid);
      if (!WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0) {
        *any_failed = true;
      }
    } else {
      all = false;
    }
  }
  return all;
}

std::string child_failure(const Control& ctl, const std::vector<Child>& children) {
  std::string out;
  for (std::size_t i = 0; i < children.size(); ++i) {
    const RoleResult& r = ctl.roles[i];
    // acquire: pairs with role_fail()'s release: the message is complete.
    const auto st = static_cast<RoleState>(r.state.load(std::memory_order_acquire));
    std::string what;
    if (st == RoleState::kFailed) {
      what = r.error;
    } else if (children[i].exited && WIFSIGNALED(children[i].status)) {
      what = std::string("killed by signal ") + strsignal(WTERMSIG(children[i].status));
    } else if (children[i].exited && WIFEXITED(children[i].status) &&
               WEXITSTATUS(children[i].status) != 0) {
      what = "exit code " + std::to_string(WEXITSTATUS(children[i].status));
    }
    if (!what.empty()) {
      out += (out.empty() ? "" : "; ") + std::string("role ") + std::to_string(i) + ": " + what;
    }
  }
  return out;
}

}  // namespace

std::string log_tail(const std::string& path) {
  std::ifstream f(path);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (text.size() > 300) {
    text = "..." + text.substr(text.size() - 300);
  }
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

const std::string& run_prefix() {
  static const std::string p = "bench-" + std::to_string(getpid());
  return p;
}

CaseOut run_case(CaseSpec spec) {
  CaseOut out;
  const std::uint64_t t0 = now_ns();
  std::snprintf(spec.name, sizeof spec.name, "%s-%llu", run_prefix().c_str(),
                static_cast<unsigned long long>(++g_case_counter));
  std::snprintf(spec.dir, sizeof spec.dir, "%s", run_dir().c_str());
  for (int& fd : spec.fd) {
    fd = -1;
  }
  out.spec = spec;
  std::string why;
  if (!transport_supports(spec, &why)) {
    out.skipped = true;
    out.error = why;
    return out;
  }
  spec.data_offset = control_bytes();
  spec.data_bytes = floor_data_bytes(spec);
  const std::uint64_t bytes = spec.data_offset + spec.data_bytes;

  // The control block: a memfd the children inherit (no close-on-exec).
  const int fd = memfd_create("ipcbus-bench-control", 0);
  if (fd < 0 || ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    out.error = "memfd for the control block failed";
    if (fd >= 0) {
      close(fd);
    }
    return out;
  }
  void* base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    close(fd);
    out.error = "mmap of the control block failed";
    return out;
  }
  auto* ctl = new (base) Control{};

  std::unique_ptr<Resources> res = prepare_resources(spec, &why);
  if (!res) {
    munmap(base, bytes);
    close(fd);
    out.error = why;
    return out;
  }
  ctl->spec = spec;
  ctl->magic = kControlMagic;
  out.spec = spec;

  // Start the children: fork, then exec this program in its role.
  const int roles = spec.roles();
  std::vector<Child> children(static_cast<std::size_t>(roles));
  // The children's environment: ours, plus LD_BIND_NOW=1 when asked.
  std::vector<std::string> env_text;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "LD_BIND_NOW=", 12) != 0) {
      env_text.emplace_back(*e);
    }
  }
  if (spec.bind_now) {
    env_text.emplace_back("LD_BIND_NOW=1");
  }
  std::vector<char*> envp;
  for (std::string& e : env_text) {
    envp.push_back(e.data());
  }
  envp.push_back(nullptr);
  const std::string fd_text = std::to_string(fd);
  std::vector<std::string> logs;
  for (int role = 0; role < roles; ++role) {
    logs.push_back(run_dir() + "/" + spec.name + "-role" + std::to_string(role) + ".log");
  }
  bool failed = false;
  for (int role = 0; role < roles && !failed; ++role) {
    const std::string role_text = std::to_string(role);
    const char* argv[] = {"ipcbus-bench", "--role",        role_text.c_str(),
                          "--ctl-fd",     fd_text.c_str(), nullptr};
    const int pid = fork();
    if (pid < 0) {
      failed = true;
      out.error = "fork failed";
      break;
    }
    if (pid == 0) {
      // The child's output goes to a log of its own; the parent's stdout
      // stays for its table, and a failure quotes the log.
      const int log =
          open(logs[static_cast<std::size_t>(role)].c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (log >= 0) {
        dup2(log, 1);
        dup2(log, 2);
        close(log);
      }
      execve(self_exe().c_str(), const_cast<char* const*>(argv), envp.data());
      _exit(127);
    }
    children[static_cast<std::size_t>(role)].pid = pid;
    register_child(pid);
  }

  // Wait until every child has opened its endpoints.
  const std::uint64_t ready_deadline = now_ns() + kReadyTimeoutNs;
  while (!failed) {
    int ready = 0;
    for (int role = 0; role < roles; ++role) {
      // acquire: pairs with the child's release store of its state.
      const auto st =
          static_cast<RoleState>(ctl->roles[role].state.load(std::memory_order_acquire));
      if (st == RoleState::kFailed) {
        failed = true;
      }
      ready += st == RoleState::kReady ? 1 : 0;
    }
    bool any_failed = false;
    poll_children(children, &any_failed);
    failed = failed || any_failed || interrupted();
    if (ready == roles || failed) {
      break;
    }
    if (now_ns() > ready_deadline) {
      failed = true;
      out.error = "children not ready in time";
      break;
    }
    sleep_ns(500'000);
  }

  if (!failed) {
    res->after_ready();
    // release: SYNC(go): the children start after every one is ready.
    ctl->go.store(1, std::memory_order_release);
    const std::uint64_t deadline = now_ns() + case_deadline_ns(spec);
    std::uint64_t abort_at = 0;
    for (;;) {
      bool any_failed = false;
      if (poll_children(children, &any_failed)) {
        failed = failed || any_failed;
        break;
      }
      if ((any_failed || interrupted()) && abort_at == 0) {
        failed = true;
        // relaxed: a request; children poll it.
        ctl->abort.store(1, std::memory_order_relaxed);
        abort_at = now_ns();
      }
      if (now_ns() > deadline) {
        failed = true;
        out.error = "watchdog: the case ran past its deadline";
        break;
      }
      if (abort_at != 0 && now_ns() > abort_at + kAbortGraceNs) {
        break;
      }
      sleep_ns(1'000'000);
    }
  }
  reap_all(children, /*kill_first=*/true);

  if (failed && out.error.empty()) {
    out.error = interrupted() ? "interrupted" : child_failure(*ctl, children);
    if (out.error.empty()) {
      out.error = "a child failed";
    }
  } else if (failed) {
    const std::string more = child_failure(*ctl, children);
    if (!more.empty()) {
      out.error += "; " + more;
    }
  }
  if (failed) {
    for (const std::string& log : logs) {
      const std::string tail = log_tail(log);
      if (!tail.empty()) {
        out.error += " [" + log.substr(log.rfind('/') + 1) + ": " + tail + "]";
      }
    }
  }
  for (int role = 0; role < roles && !failed; ++role) {
    // acquire: pairs with the child's release store of kDone.
    if (ctl->roles[role].state.load(std::memory_order_acquire) !=
        static_cast<std::uint32_t>(RoleState::kDone)) {
      failed = true;
      out.error = "role " + std::to_string(role) + " exited without reporting its results";
    }
  }
  for (const std::string& log : logs) {
    unlink(log.c_str());
  }
  out.ok = !failed;
  for (int role = 0; role < roles; ++role) {
    const RoleResult& r = ctl->roles[role];
    RoleOut o;
    o.sent = r.sent;
    o.received = r.received;
    o.counted = r.counted;
    o.errors = r.errors;
    o.window_ns = r.window_ns;
    o.busy_ns = r.busy_ns;
    o.cpu_ns = r.cpu_ns;
    o.first_rtt_ns = r.first_rtt_ns;
    o.thousandth_rtt_ns = r.thousandth_rtt_ns;
    o.first_oneway_ns = r.first_oneway_ns;
    o.thousandth_oneway_ns = r.thousandth_oneway_ns;
    o.first_faults = r.first_faults;
    out.rtt_half.merge(r.rtt_half);
    out.one_way.merge(r.one_way);
    out.roles.push_back(o);
  }
  res.reset();  // sockets closed, queues and the bus name removed
  ctl->~Control();
  munmap(base, bytes);
  close(fd);
  out.wall_s = static_cast<double>(now_ns() - t0) / 1e9;
  return out;
}

}  // namespace ipcbus::bench
