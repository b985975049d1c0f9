// transport_iceoryx.cpp: iceoryx 2.0 (Debian's package), untyped publisher
// and subscriber, zero copy. The publisher waits for a full subscriber queue
// (WAIT_FOR_CONSUMER with BLOCK_PRODUCER), so that a stream loses nothing.
// Busy-polling listeners spin on take(); sleeping ones wait in a WaitSet.
// The RouDi daemon is started by the parent with a config of its own (pools
// for every payload size of the run) and stopped at the end.
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

#include "iceoryx_hoofs/log/logmanager.hpp"
#include "iceoryx_posh/mepoo/chunk_header.hpp"
#include "iceoryx_posh/popo/untyped_publisher.hpp"
#include "iceoryx_posh/popo/untyped_subscriber.hpp"
#include "iceoryx_posh/popo/wait_set.hpp"
#include "iceoryx_posh/runtime/posh_runtime.hpp"
#include "transport.hpp"

namespace ipcbus::bench {

namespace {

constexpr std::uint64_t kSubscribeTimeoutNs = 20'000'000'000ULL;

iox::capro::ServiceDescription service(const CaseSpec& s, int direction) {
  return {iox::capro::IdString_t(iox::cxx::TruncateToCapacity, "ipcbus-bench"),
          iox::capro::IdString_t(iox::cxx::TruncateToCapacity, s.name),
          iox::capro::IdString_t(iox::cxx::TruncateToCapacity,
                                 ("d" + std::to_string(direction)).c_str())};
}

void init_runtime(const CaseSpec& s, int role) {
  iox::log::LogManager::GetLogManager().SetDefaultLogLevel(iox::log::LogLevel::kWarn,
                                                           iox::log::LogLevelOutput::kHideLogLevel);
  // The runtime's socket is /tmp/<name>: named after the case, so that the
  // parent can remove it if this process is killed.
  const std::string name = std::string(s.name) + "-r" + std::to_string(role);
  iox::runtime::PoshRuntime::initRuntime(
      iox::RuntimeName_t(iox::cxx::TruncateToCapacity, name.c_str()));
}

class IoxSender : public Sender {
 public:
  explicit IoxSender(const iox::capro::ServiceDescription& sd)
      : pub_(sd, [] {
          iox::popo::PublisherOptions o;
          o.subscriberTooSlowPolicy = iox::popo::ConsumerTooSlowPolicy::WAIT_FOR_CONSUMER;
          return o;
        }()) {}
  std::byte* loan(std::size_t n) override {
    for (std::uint64_t tries = 0;; ++tries) {
      auto r = pub_.loan(static_cast<std::uint32_t>(n));
      if (!r.has_error()) {
        chunk_ = r.value();
        return static_cast<std::byte*>(chunk_);
      }
      if (tries > 50'000'000) {
        error_ = "iceoryx loan failed (" + std::to_string(static_cast<int>(r.get_error())) + ")";
        return nullptr;
      }
      cpu_relax();
    }
  }
  bool send(std::size_t) override {
    pub_.publish(chunk_);
    chunk_ = nullptr;
    return true;
  }

 private:
  iox::popo::UntypedPublisher pub_;
  void* chunk_ = nullptr;
};

class IoxReceiver : public Receiver {
 public:
  IoxReceiver(const iox::capro::ServiceDescription& sd, std::uint32_t capacity, bool sleep)
      : sub_(sd, [capacity] {
          iox::popo::SubscriberOptions o;
          o.queueCapacity = std::min<std::uint64_t>(capacity, iox::MAX_SUBSCRIBER_QUEUE_CAPACITY);
          o.queueFullPolicy = iox::popo::QueueFullPolicy::BLOCK_PRODUCER;
          return o;
        }()) {
    if (sleep) {
      waitset_.emplace();
      waitset_->attachState(sub_, iox::popo::SubscriberState::HAS_DATA).or_else([this](auto) {
        error_ = "cannot attach the subscriber to a WaitSet";
      });
    }
  }
  bool wait_subscribed() {
    const std::uint64_t deadline = now_ns() + kSubscribeTimeoutNs;
    while (sub_.getSubscriptionState() != iox::SubscribeState::SUBSCRIBED) {
      if (now_ns() > deadline) {
        error_ = "iceoryx subscription not established";
        return false;
      }
      sleep_ns(1'000'000);
    }
    return error_.empty();
  }
  const std::byte* receive(std::size_t* n, std::uint64_t* stamp_ns) override {
    for (;;) {
      auto r = sub_.take();
      if (!r.has_error()) {
        chunk_ = r.value();
        *n = iox::mepoo::ChunkHeader::fromUserPayload(chunk_)->userPayloadSize();
        *stamp_ns = 0;
        return static_cast<const std::byte*>(chunk_);
      }
      if (waitset_) {
        (void)waitset_->wait();
      }
    }
  }
  void release() override {
    sub_.release(chunk_);
    chunk_ = nullptr;
  }

 private:
  iox::popo::UntypedSubscriber sub_;
  std::optional<iox::popo::WaitSet<>> waitset_;
  const void* chunk_ = nullptr;
};

// --- RouDi ------------------------------------------------------------------

int g_roudi_pid = 0;

// What RouDi leaves when it dies without its shutdown (it aborts at SIGTERM
// when a registered client was killed): its shared memory, its socket and
// lock files. Kept as plain strings so that a signal handler may unlink them.
constexpr int kRoudiFiles = 5;
char g_roudi_files[kRoudiFiles][128];

void note_roudi_files() {
  const passwd* pw = getpwuid(geteuid());
  const std::string user = pw != nullptr ? pw->pw_name : std::to_string(geteuid());
  const std::string files[kRoudiFiles] = {"/dev/shm/iceoryx_mgmt", "/dev/shm/" + user, "/tmp/roudi",
                                          "/tmp/roudi.lock", "/tmp/iox-unique-roudi.lock"};
  for (int i = 0; i < kRoudiFiles; ++i) {
    std::snprintf(g_roudi_files[i], sizeof g_roudi_files[i], "%s", files[i].c_str());
  }
}

// Pools for every payload size the run uses, the chunk header included, with
// enough chunks for the deepest queue (see the case plan) of each size.
std::string roudi_config() {
  struct Pool {
    std::uint64_t payload;
    std::uint32_t count;
  };
  const Pool pools[] = {{64, 8192}, {1024, 4096}, {16384, 2048}, {262144, 200}, {1048576, 96}};
  std::ostringstream o;
  o << "[general]\nversion = 1\n\n[[segment]]\n\n";
  for (const Pool& p : pools) {
    o << "[[segment.mempool]]\nsize = " << (p.payload + 256) << "\ncount = " << p.count << "\n\n";
  }
  return o.str();
}

bool other_roudi_running() {
  std::ifstream f("/tmp/roudi.lock");
  if (!f) {
    return false;
  }
  const int fd = open("/tmp/roudi.lock", O_RDONLY);
  if (fd < 0) {
    return false;
  }
  // RouDi holds a lock on the file while it runs.
  const bool locked = lockf(fd, F_TEST, 0) != 0;
  close(fd);
  return locked;
}

}  // namespace

bool start_roudi(const std::string& work_dir, std::string* why) {
  if (g_roudi_pid > 0) {
    return true;
  }
  if (other_roudi_running()) {
    *why = "another RouDi is running on this machine; iceoryx skipped";
    return false;
  }
  note_roudi_files();
  const std::string cfg = work_dir + "/roudi.toml";
  const std::string log = work_dir + "/roudi.log";
  {
    std::ofstream f(cfg);
    f << roudi_config();
  }
  const int pid = fork();
  if (pid < 0) {
    *why = "fork for RouDi failed";
    return false;
  }
  if (pid == 0) {
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    setpgid(0, 0);  // a terminal's ^C goes to us; we stop RouDi ourselves
    execl("/usr/bin/iox-roudi", "iox-roudi", "-c", cfg.c_str(), "-m", "off", "-l", "info",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  g_roudi_pid = pid;
  register_daemon(pid);
  const std::uint64_t deadline = now_ns() + 20'000'000'000ULL;
  while (now_ns() < deadline) {
    std::ifstream f(log);
    std::stringstream text;
    text << f.rdbuf();
    if (text.str().find("RouDi is ready for clients") != std::string::npos) {
      return true;
    }
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      register_daemon(0);
      g_roudi_pid = 0;
      *why = "RouDi exited at start: " + text.str().substr(0, 400);
      return false;
    }
    sleep_ns(20'000'000);
  }
  *why = "RouDi did not become ready";
  stop_roudi();
  return false;
}

void stop_roudi() {
  if (g_roudi_pid <= 0) {
    return;
  }
  kill(g_roudi_pid, SIGTERM);
  // RouDi removes its shared memory and lock files on SIGTERM; give it time.
  const std::uint64_t deadline = now_ns() + 10'000'000'000ULL;
  int status = 0;
  while (waitpid(g_roudi_pid, &status, WNOHANG) == 0) {
    if (now_ns() > deadline) {
      kill(g_roudi_pid, SIGKILL);
      waitpid(g_roudi_pid, &status, 0);
      break;
    }
    sleep_ns(10'000'000);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    remove_roudi_files();  // it died without its own clean-up
  }
  register_daemon(0);
  g_roudi_pid = 0;
}

void remove_roudi_files() {
  for (auto& f : g_roudi_files) {
    if (f[0] != '\0') {
      unlink(f);  // async-signal-safe
    }
  }
}

bool roudi_running() {
  return g_roudi_pid > 0;
}

Endpoints open_iceoryx(Control& ctl, int role) {
  const CaseSpec& s = ctl.spec;
  Endpoints e;
  init_runtime(s, role);
  const bool ping = s.pattern == Pattern::kPingPong;
  // Offer first: in a ping-pong each side subscribes to what the other offers.
  if (ping || s.sends(role)) {
    e.tx = std::make_unique<IoxSender>(service(s, send_direction(s, role)));
  }
  if (ping || !s.sends(role)) {
    auto rx = std::make_unique<IoxReceiver>(service(s, receive_direction(s, role)), s.capacity,
                                            s.wait == Wait::kSleep);
    if (!rx->wait_subscribed()) {
      e.error = rx->error();
      return e;
    }
    e.rx = std::move(rx);
  }
  return e;
}

}  // namespace ipcbus::bench
