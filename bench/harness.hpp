// harness.hpp: what the parent of ipcbus-bench and its child processes share.
//
// The parent runs one case at a time. For each it makes a memfd holding a
// Control block (the case, one result area per child) followed by a data
// area for the raw floors, starts the children with fork + exec of its own
// binary and `--role K --ctl-fd F`, waits for every child to be ready, says
// go, and reaps them, killing all of them if one fails or the case runs past
// its deadline. Children die with the parent (PR_SET_PDEATHSIG) and on their
// own alarm, so that no process outlives a run.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "histogram.hpp"

namespace ipcbus::bench {

inline constexpr std::uint32_t kControlMagic = 0x69706362;  // "ipcb"
inline constexpr int kMaxRoles = 17;                        // 1 + 16, or 8 + 1
inline constexpr std::uint64_t kEndSeq = ~0ULL;             // sequence of an end marker

enum class Transport : std::uint32_t {
  kFloorLine,   // a mailbox line polled by spinning (two atomics when the payload is 0)
  kFloorFutex,  // the same mailbox, waited for with a shared futex
  kFloorRing,   // a raw SPSC ring of payload slots, spinning
  kBus,         // ipcbus
  kIceoryx,     // iceoryx 2.0, untyped API
  kUds,         // Unix domain stream socket (socketpair)
  kPosixMq,     // POSIX message queue
  kBoostMq,     // boost::interprocess::message_queue
  kZmq,         // ZeroMQ PUSH/PULL over ipc://
};
const char* transport_name(Transport t);  // "bus", "floor-line", "iceoryx", ...

enum class Pattern : std::uint32_t {
  kPingPong,    // role 0 pings, role 1 answers: latency
  kStream,      // roles 0..P-1 send, P..P+N-1 receive, as fast as possible: throughput
  kFanoutCost,  // role 0 publishes timed bursts into N listener rings
};

enum class Wait : std::uint32_t { kSpin, kSleep };
const char* wait_name(Wait w);  // "spin", "sleep"

struct CaseSpec {
  Transport transport = Transport::kBus;
  Pattern pattern = Pattern::kPingPong;
  Wait wait = Wait::kSpin;
  std::uint32_t payload = 64;     // bytes per event
  std::uint32_t publishers = 1;   // stream: sending roles
  std::uint32_t listeners = 1;    // stream: receiving roles
  std::uint32_t capacity = 1024;  // ring / queue depth, in events
  std::uint32_t bursts = 0;       // fan-out cost: bursts of `capacity / 2` events
  std::uint64_t duration_ns = 0;  // ping-pong: time budget; stream: sending time
  std::uint64_t max_iterations = 0;
  std::uint64_t warmup_iterations = 0;  // ping-pong: not recorded (or warmup_ns, if shorter)
  std::uint64_t warmup_ns = 0;          // stream: the receiver starts counting after this
  bool bind_now = false;                // children run with LD_BIND_NOW=1
  std::int32_t cpu[kMaxRoles] = {};     // -1: do not pin
  std::int32_t fd[kMaxRoles] = {};      // a descriptor a role inherits (sockets), else -1
  char name[96] = {};                   // base name of the case's resources
  char dir[160] = {};                   // the run's directory (socket files, logs)
  std::uint64_t data_offset = 0;        // of the data area in the control mapping
  std::uint64_t data_bytes = 0;

  int roles() const {
    return pattern == Pattern::kPingPong ? 2 : static_cast<int>(publishers + listeners);
  }
  bool sends(int role) const {
    return pattern == Pattern::kPingPong || role < static_cast<int>(publishers);
  }
};

enum class RoleState : std::uint32_t { kStarting = 0, kReady = 1, kDone = 2, kFailed = 3 };

// What one child reports. Written by that child only; read by the parent
// after the child is done (and `progress` by the sender of a fan-out case).
struct alignas(64) RoleResult {
  std::atomic<std::uint32_t> state;
  char error[244];
  alignas(64) std::atomic<std::uint64_t> progress;  // events received so far (fan-out)
  alignas(64) std::uint64_t sent;
  std::uint64_t received;   // data events, warm-up included
  std::uint64_t counted;    // data events in the measured window
  std::uint64_t errors;     // integrity or order violations
  std::uint64_t window_ns;  // the measured window
  std::uint64_t busy_ns;    // the sender's time from first to last send
  std::uint64_t cpu_ns;     // CPU time of the process over the run
  std::uint64_t first_rtt_ns;
  std::uint64_t thousandth_rtt_ns;
  std::uint64_t first_oneway_ns;
  std::uint64_t thousandth_oneway_ns;
  std::uint64_t first_faults;  // page faults (minor + major) during the first round trip
  Histogram rtt_half;          // ping-pong: round trip / 2; fan-out: ns per publish in a burst
  Histogram one_way;           // receive time minus the send stamp
};

struct Control {
  std::uint32_t magic;
  std::uint32_t reserved;
  CaseSpec spec;
  alignas(64) std::atomic<std::uint32_t> go;  // 1: start; set by the parent
  std::atomic<std::uint32_t> abort;           // 1: stop at once
  RoleResult roles[kMaxRoles];
};

// The data area follows the control block at this alignment.
inline constexpr std::uint64_t kDataAlign = 2 * 1024 * 1024;
std::uint64_t control_bytes();

// --- time, CPU, payload --------------------------------------------------------

std::uint64_t now_ns();         // CLOCK_MONOTONIC
std::uint64_t cpu_time_ns();    // CLOCK_PROCESS_CPUTIME_ID
std::uint64_t thread_cpu_ns();  // CLOCK_THREAD_CPUTIME_ID
inline void cpu_relax() {
  __builtin_ia32_pause();
}
void sleep_ns(std::uint64_t ns);
std::uint64_t page_faults();  // minor + major faults of this process so far

// The first 24 bytes of every payload of 24 bytes or more: who sent it, its
// sequence number and when. The last 8 bytes repeat the sequence, so that a
// receiver can tell a torn or stale payload.
struct EventHeader {
  std::uint64_t seq;
  std::uint64_t stamp_ns;
  std::uint32_t source;
  std::uint32_t reserved;
};
inline constexpr std::size_t kMinPayload = sizeof(EventHeader) + 8;

// fill writes a whole payload as a producer would: every byte, then the
// header and the trailing sequence. With `stamp`, the header carries the
// clock read after the bytes were written, as a send stamp.
void fill_payload(std::byte* p, std::size_t n, std::uint64_t seq, std::uint32_t source, bool stamp);
// touch reads one word of every cache line of a payload, as a consumer that
// looks at all of it would, and checks the header against the trailer.
// Returns the header; *ok is false when the payload is torn.
EventHeader touch_payload(const std::byte* p, std::size_t n, bool* ok);

// --- processes ------------------------------------------------------------------

// The CPUs this process may run on.
std::vector<int> usable_cpus();
bool pin_to_cpu(int cpu);

// The path of this program, for exec.
const std::string& self_exe();

// Children of the case being run; the signal handler kills them.
void register_child(int pid);
void forget_child(int pid);
void kill_children();  // SIGKILL to every registered child, then reap them

// The RouDi daemon's pid: a signal to the parent stops it with SIGTERM (so
// that it removes its shared memory), where children get SIGKILL.
void register_daemon(int pid);

// A flag set by SIGINT/SIGTERM/SIGHUP in the parent. The handler kills the
// children; while `exit_on_signal` is set (phases that do not poll the flag)
// or at a second signal, it also ends the process.
bool interrupted();
void install_parent_signal_handlers();
void set_exit_on_signal(bool on);

// Run as a child: parse the role flags, run the case's role, exit code.
int child_main(int role, int ctl_fd);

// Every role writes its failure reason here before it exits non-zero.
void role_fail(RoleResult& r, const std::string& what);

}  // namespace ipcbus::bench
