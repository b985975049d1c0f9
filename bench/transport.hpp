// transport.hpp: one interface over the bus, the raw floors and the peers, so
// that every transport runs the same ping-pong and stream loops (roles.cpp).
//
// A Sender lends room for a payload (the transport's own memory when it has
// zero-copy, a private buffer when it copies) and sends it. A Receiver
// returns the next payload, in place where it can, until release().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "harness.hpp"

namespace ipcbus::bench {

class Sender {
 public:
  virtual ~Sender() = default;
  // loan returns room for `n` payload bytes, or nullptr on failure.
  virtual std::byte* loan(std::size_t n) = 0;
  // send delivers the `n` bytes written into the last loan. False on failure.
  virtual bool send(std::size_t n) = 0;
  // Whether the transport stamps each event itself (the bus does).
  virtual bool stamps() const { return false; }
  const std::string& error() const { return error_; }

 protected:
  std::string error_;
};

class Receiver {
 public:
  virtual ~Receiver() = default;
  // receive waits (spinning or sleeping, as the case says) for the next
  // event and returns its payload and size; *stamp_ns is the transport's own
  // send stamp, or 0. nullptr on failure.
  virtual const std::byte* receive(std::size_t* n, std::uint64_t* stamp_ns) = 0;
  // release hands the last payload back to the transport.
  virtual void release() = 0;
  const std::string& error() const { return error_; }

 protected:
  std::string error_;
};

// The two ends a role uses: ping-pong roles have both, a stream sender only
// tx and a stream receiver only rx.
struct Endpoints {
  std::unique_ptr<Sender> tx;
  std::unique_ptr<Receiver> rx;
  std::string error;  // set when opening failed
};

// Opened in the child, after pinning and before it reports ready.
Endpoints open_endpoints(Control& ctl, int role);

// What the parent makes for a case before the children start, and removes
// after they are gone (destructor). after_ready() runs once every child has
// opened its endpoints.
class Resources {
 public:
  virtual ~Resources() = default;
  virtual void after_ready() {}
};
std::unique_ptr<Resources> prepare_resources(CaseSpec& spec, std::string* error);

// Whether a transport can run a case shape at all (e.g. no 1 to N fan-out
// over a Unix socket, POSIX queues bounded by the kernel's message size).
bool transport_supports(const CaseSpec& spec, std::string* why);

// A POSIX queue limit of this machine for this process ("msg_max",
// "msgsize_max"), or no limit (~0) when the process may exceed the sysctls.
std::uint32_t posix_mq_limit(const char* name);

// --- per transport (transport_*.cpp) ------------------------------------------
// The bytes of data area the floors of a case need (0 for other transports).
std::uint64_t floor_data_bytes(const CaseSpec& spec);
Endpoints open_floor(Control& ctl, int role);
Endpoints open_bus(Control& ctl, int role);
Endpoints open_iceoryx(Control& ctl, int role);
Endpoints open_uds(Control& ctl, int role);
Endpoints open_posix_mq(Control& ctl, int role);
Endpoints open_boost_mq(Control& ctl, int role);
Endpoints open_zmq(Control& ctl, int role);

std::unique_ptr<Resources> prepare_bus(CaseSpec& spec, std::string* error);
std::unique_ptr<Resources> prepare_uds(CaseSpec& spec, std::string* error);
std::unique_ptr<Resources> prepare_posix_mq(CaseSpec& spec, std::string* error);
std::unique_ptr<Resources> prepare_boost_mq(CaseSpec& spec, std::string* error);
std::unique_ptr<Resources> prepare_zmq(CaseSpec& spec, std::string* error);

// The name of a per-direction resource: direction 0 carries pings (and
// streams), direction 1 pongs.
std::string resource_name(const CaseSpec& spec, int direction);
// The direction a role sends on and the one it receives on.
int send_direction(const CaseSpec& spec, int role);
int receive_direction(const CaseSpec& spec, int role);

// iceoryx needs its daemon: start it once per run (the parent), stop it at
// the end. start returns false (and why) when RouDi cannot be started.
bool start_roudi(const std::string& work_dir, std::string* why);
void stop_roudi();
bool roudi_running();
// Unlink what a RouDi that died uncleanly left (async-signal-safe).
void remove_roudi_files();

// The directory for socket files and configs of this run (made by the parent).
const std::string& run_dir();
void set_run_dir(const std::string& dir);

}  // namespace ipcbus::bench
