// children.hpp: the coordinator's child processes. Each is this binary run
// again (fork, then exec of /proc/self/exe) with its stdout, and optionally its
// stdin, on a pipe to the coordinator. A ChildSet kills and reaps every child
// still running when it is destroyed, so no error path leaves one behind; and
// each child gets SIGKILL from the kernel if the coordinator itself dies.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <deque>
#include <string>
#include <vector>

namespace replay {

struct Child {
  std::string what;  // for messages: "listener 2 (dpkg/#)"
  pid_t pid = -1;
  int out = -1;                    // read end of the child's stdout; -1 after EOF
  int in = -1;                     // write end of the child's stdin, or -1
  std::string partial;             // bytes after the last complete line
  std::vector<std::string> lines;  // complete lines read so far
  bool running = true;
  int status = 0;  // from waitpid, once not running

  // How it ended, for messages: "exited with status 1", "killed by signal 9".
  std::string how_it_ended() const;
  bool ended_well() const;  // exited with status 0
};

class ChildSet {
 public:
  ChildSet() = default;
  ChildSet(const ChildSet&) = delete;
  ChildSet& operator=(const ChildSet&) = delete;
  ~ChildSet() { kill_all(); }

  // spawn starts `args` (args[0] is only the name shown by ps) with the
  // signal mask `child_mask`. `keep_fd`, if not -1, stays open across exec.
  // Throws std::system_error when pipe or fork fails.
  Child& spawn(std::string what, const std::vector<std::string>& args, bool stdin_pipe, int keep_fd,
               const sigset_t& child_mask);

  // read_available reads what `c` has written without blocking, splitting it
  // into lines; at EOF it closes the pipe.
  void read_available(Child& c);

  // reap collects every child that has exited, without blocking.
  void reap();

  // kill_all sends SIGKILL to every running child and waits for each.
  void kill_all();

  std::deque<Child>& all() { return children_; }

 private:
  std::deque<Child> children_;  // a deque: references stay valid as it grows
};

}  // namespace replay
