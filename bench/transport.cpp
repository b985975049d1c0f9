// transport.cpp: choosing a transport, directions and names.
#include "transport.hpp"

#include <fcntl.h>
#include <mqueue.h>
#include <unistd.h>

#include <fstream>

namespace ipcbus::bench {

namespace {
std::string g_run_dir = "/tmp";
}  // namespace

const std::string& run_dir() {
  return g_run_dir;
}
void set_run_dir(const std::string& dir) {
  g_run_dir = dir;
}

std::string resource_name(const CaseSpec& spec, int direction) {
  return std::string(spec.name) + "-d" + std::to_string(direction);
}

int send_direction(const CaseSpec& spec, int role) {
  return spec.pattern == Pattern::kPingPong ? role : 0;
}

int receive_direction(const CaseSpec& spec, int role) {
  return spec.pattern == Pattern::kPingPong ? 1 - role : 0;
}

std::uint32_t posix_mq_limit(const char* name) {
  std::ifstream f(std::string("/proc/sys/fs/mqueue/") + name);
  std::uint64_t v = 0;
  if (!(f >> v)) {
    return 0xFFFFFFFFU;
  }
  // Above the sysctl only a process with CAP_SYS_RESOURCE (in the initial
  // namespace) may go; find out once by trying.
  static const bool privileged = [] {
    mq_attr attr{};
    attr.mq_maxmsg = 1;
    attr.mq_msgsize = 1 << 20;
    const std::string probe = "/ipcbus-bench-probe-" + std::to_string(getpid());
    const mqd_t q = mq_open(probe.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
    if (q == static_cast<mqd_t>(-1)) {
      return false;
    }
    mq_close(q);
    mq_unlink(probe.c_str());
    return true;
  }();
  return privileged ? 0xFFFFFFFFU : static_cast<std::uint32_t>(v);
}

bool transport_supports(const CaseSpec& spec, std::string* why) {
  const bool ping = spec.pattern == Pattern::kPingPong;
  const bool one_to_one = spec.publishers == 1 && spec.listeners == 1;
  const bool fan_in = spec.listeners == 1;
  auto no = [&](const char* reason) {
    *why = reason;
    return false;
  };
  if (!ping && spec.roles() > kMaxRoles) {
    return no("more roles than the harness holds");
  }
  if (spec.pattern == Pattern::kFanoutCost && spec.transport != Transport::kBus) {
    return no("the fan-out cost is measured for the bus only");
  }
  if (!ping && spec.payload < kMinPayload) {
    return no("streams need room for a header");
  }
  switch (spec.transport) {
    case Transport::kFloorLine:
    case Transport::kFloorFutex:
      return ping || no("a mailbox floor is a ping-pong");
    case Transport::kFloorRing:
      return (!ping && one_to_one) || no("the SPSC ring floor is a 1 to 1 stream");
    case Transport::kBus:
    case Transport::kIceoryx:
      return true;
    case Transport::kUds:
      return ping || one_to_one || no("a socket pair joins two processes");
    case Transport::kPosixMq:
      if (spec.payload > posix_mq_limit("msgsize_max")) {
        *why = "POSIX queue messages are limited to " +
               std::to_string(posix_mq_limit("msgsize_max")) +
               " bytes here (fs.mqueue.msgsize_max, and no CAP_SYS_RESOURCE in this namespace)";
        return false;
      }
      return ping || fan_in || no("a queue has one reader: no 1 to N fan-out without N copies");
    case Transport::kBoostMq:
    case Transport::kZmq:
      return ping || fan_in || no("a queue has one reader: no 1 to N fan-out without N copies");
  }
  return no("unknown transport");
}

Endpoints open_endpoints(Control& ctl, int role) {
  switch (ctl.spec.transport) {
    case Transport::kFloorLine:
    case Transport::kFloorFutex:
    case Transport::kFloorRing:
      return open_floor(ctl, role);
    case Transport::kBus:
      return open_bus(ctl, role);
    case Transport::kIceoryx:
      return open_iceoryx(ctl, role);
    case Transport::kUds:
      return open_uds(ctl, role);
    case Transport::kPosixMq:
      return open_posix_mq(ctl, role);
    case Transport::kBoostMq:
      return open_boost_mq(ctl, role);
    case Transport::kZmq:
      return open_zmq(ctl, role);
  }
  Endpoints e;
  e.error = "unknown transport";
  return e;
}

std::unique_ptr<Resources> prepare_resources(CaseSpec& spec, std::string* error) {
  switch (spec.transport) {
    case Transport::kBus:
      return prepare_bus(spec, error);
    case Transport::kUds:
      return prepare_uds(spec, error);
    case Transport::kPosixMq:
      return prepare_posix_mq(spec, error);
    case Transport::kBoostMq:
      return prepare_boost_mq(spec, error);
    case Transport::kZmq:
      return prepare_zmq(spec, error);
    default:
      return std::make_unique<Resources>();  // floors live in the data area; iceoryx in RouDi
  }
}

}  // namespace ipcbus::bench
