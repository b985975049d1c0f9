// transport_peers.cpp: what users would pick instead of a shared-memory bus,
// each used as its documentation suggests: Unix domain stream sockets (a
// socketpair), POSIX message queues, Boost.Interprocess message_queue and
// ZeroMQ PUSH/PULL over ipc://. All of them copy: the sender fills a private
// buffer that the transport copies, the receiver gets a copy in its own.
// Senders block when the transport is full, so a stream loses nothing.
// "sleep" receivers block in the transport; "spin" receivers poll it with
// its non-blocking call.
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include <boost/interprocess/ipc/message_queue.hpp>
#include <cstring>
#include <vector>

#include "transport.hpp"

namespace ipcbus::bench {

namespace bip = boost::interprocess;

namespace {

std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

// A sender whose loan is a private buffer.
class CopySender : public Sender {
 public:
  explicit CopySender(std::size_t n) : buf_(std::max<std::size_t>(n, 1)) {}
  std::byte* loan(std::size_t) override { return buf_.data(); }

 protected:
  std::vector<std::byte> buf_;
};

// A receiver that copies into a private buffer.
class CopyReceiver : public Receiver {
 public:
  explicit CopyReceiver(std::size_t n) : buf_(std::max<std::size_t>(n, 1)) {}
  void release() override {}

 protected:
  std::vector<std::byte> buf_;
};

// --- Unix domain stream socket -------------------------------------------------

class FdResources : public Resources {
 public:
  explicit FdResources(std::vector<int> fds) : fds_(std::move(fds)) {}
  ~FdResources() override { after_ready(); }
  void after_ready() override {
    for (int fd : fds_) {
      close(fd);
    }
    fds_.clear();
  }

 private:
  std::vector<int> fds_;
};

class UdsSender : public CopySender {
 public:
  UdsSender(int fd, std::size_t n) : CopySender(n), fd_(fd) {}
  bool send(std::size_t n) override {
    std::size_t done = 0;
    while (done < n) {
      const ssize_t w = write(fd_, buf_.data() + done, n - done);
      if (w < 0 && errno == EINTR) {
        continue;
      }
      if (w <= 0) {
        error_ = errno_text("write");
        return false;
      }
      done += static_cast<std::size_t>(w);
    }
    return true;
  }

 private:
  int fd_;
};

class UdsReceiver : public CopyReceiver {
 public:
  UdsReceiver(int fd, std::size_t n, bool spin) : CopyReceiver(n), fd_(fd), n_(n), spin_(spin) {}
  const std::byte* receive(std::size_t* n, std::uint64_t* stamp_ns) override {
    std::size_t done = 0;
    while (done < n_) {
      const ssize_t r = recv(fd_, buf_.data() + done, n_ - done, spin_ ? MSG_DONTWAIT : 0);
      if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
        continue;
      }
      if (r <= 0) {
        error_ = r == 0 ? "peer closed" : errno_text("recv");
        return nullptr;
      }
      done += static_cast<std::size_t>(r);
    }
    *n = n_;
    *stamp_ns = 0;
    return buf_.data();
  }

 private:
  int fd_;
  std::size_t n_;
  bool spin_;
};

// --- POSIX message queues ---------------------------------------------------------

std::string mq_path(const CaseSpec& s, int direction) {
  return "/" + resource_name(s, direction);
}

class MqResources : public Resources {
 public:
  explicit MqResources(std::vector<std::string> names) : names_(std::move(names)) {}
  ~MqResources() override {
    for (const auto& n : names_) {
      mq_unlink(n.c_str());
    }
  }

 private:
  std::vector<std::string> names_;
};

class MqSender : public CopySender {
 public:
  MqSender(mqd_t q, std::size_t n) : CopySender(n), q_(q) {}
  ~MqSender() override { mq_close(q_); }
  bool send(std::size_t n) override {
    while (mq_send(q_, reinterpret_cast<const char*>(buf_.data()), n, 0) != 0) {
      if (errno != EINTR) {
        error_ = errno_text("mq_send");
        return false;
      }
    }
    return true;
  }

 private:
  mqd_t q_;
};

class MqReceiver : public CopyReceiver {
 public:
  MqReceiver(mqd_t q, std::size_t n) : CopyReceiver(n), q_(q) {}
  ~MqReceiver() override { mq_close(q_); }
  const std::byte* receive(std::size_t* n, std::uint64_t* stamp_ns) override {
    for (;;) {
      const ssize_t r = mq_receive(q_, reinterpret_cast<char*>(buf_.data()), buf_.size(), nullptr);
      if (r >= 0) {
        *n = static_cast<std::size_t>(r);
        *stamp_ns = 0;
        return buf_.data();
      }
      if (errno != EINTR && errno != EAGAIN) {
        error_ = errno_text("mq_receive");
        return nullptr;
      }
    }
  }

 private:
  mqd_t q_;
};

// --- Boost.Interprocess message_queue ------------------------------------------

class BoostResources : public Resources {
 public:
  explicit BoostResources(std::vector<std::string> names) : names_(std::move(names)) {}
  ~BoostResources() override {
    for (const auto& n : names_) {
      bip::message_queue::remove(n.c_str());
    }
  }

 private:
  std::vector<std::string> names_;
};

class BoostSender : public CopySender {
 public:
  BoostSender(const std::string& name, std::size_t n)
      : CopySender(n), q_(bip::open_only, name.c_str()) {}
  bool send(std::size_t n) override {
    try {
      q_.send(buf_.data(), n, 0);
      return true;
    } catch (const std::exception& e) {
      error_ = e.what();
      return false;
    }
  }

 private:
  bip::message_queue q_;
};

class BoostReceiver : public CopyReceiver {
 public:
  BoostReceiver(const std::string& name, std::size_t n, bool spin)
      : CopyReceiver(n), q_(bip::open_only, name.c_str()), spin_(spin) {}
  const std::byte* receive(std::size_t* n, std::uint64_t* stamp_ns) override {
    try {
      bip::message_queue::size_type got = 0;
      unsigned prio = 0;
      if (spin_) {
        while (!q_.try_receive(buf_.data(), buf_.size(), got, prio)) {
        }
      } else {
        q_.receive(buf_.data(), buf_.size(), got, prio);
      }
      *n = got;
      *stamp_ns = 0;
      return buf_.data();
    } catch (const std::exception& e) {
      error_ = e.what();
      return nullptr;
    }
  }

 private:
  bip::message_queue q_;
  bool spin_;
};

// --- ZeroMQ -----------------------------------------------------------------------

std::string zmq_endpoint(const CaseSpec& s, int direction) {
  return "ipc://" + run_dir() + "/" + resource_name(s, direction) + ".zmq";
}

// One context per process, shared by its sockets, ended last.
struct ZmqContext {
  void* ctx = zmq_ctx_new();
  ~ZmqContext() { zmq_ctx_term(ctx); }
};
ZmqContext& zmq_context() {
  static ZmqContext c;
  return c;
}

void* zmq_socket_for(int type, std::uint32_t capacity) {
  void* s = zmq_socket(zmq_context().ctx, type);
  const int hwm = static_cast<int>(capacity);
  const int linger = -1;  // deliver everything queued (the end marker too) before closing
  zmq_setsockopt(s, type == ZMQ_PUSH ? ZMQ_SNDHWM : ZMQ_RCVHWM, &hwm, sizeof hwm);
  zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
  return s;
}

class ZmqSender : public CopySender {
 public:
  ZmqSender(void* sock, std::size_t n) : CopySender(n), sock_(sock) {}
  ~ZmqSender() override { zmq_close(sock_); }
  bool send(std::size_t n) override {
    while (zmq_send(sock_, buf_.data(), n, 0) < 0) {
      if (zmq_errno() != EINTR) {
        error_ = std::string("zmq_send: ") + zmq_strerror(zmq_errno());
        return false;
      }
    }
    return true;
  }

 private:
  void* sock_;
};

class ZmqReceiver : public CopyReceiver {
 public:
  ZmqReceiver(void* sock, std::size_t n, bool spin) : CopyReceiver(n), sock_(sock), spin_(spin) {}
  ~ZmqReceiver() override { zmq_close(sock_); }
  const std::byte* receive(std::size_t* n, std::uint64_t* stamp_ns) override {
    for (;;) {
      const int r = zmq_recv(sock_, buf_.data(), buf_.size(), spin_ ? ZMQ_DONTWAIT : 0);
      if (r >= 0) {
        *n = static_cast<std::size_t>(r);
        *stamp_ns = 0;
        return buf_.data();
      }
      if (zmq_errno() != EINTR && zmq_errno() != EAGAIN) {
        error_ = std::string("zmq_recv: ") + zmq_strerror(zmq_errno());
        return nullptr;
      }
    }
  }

 private:
  void* sock_;
  bool spin_;
};

int directions(const CaseSpec& s) {
  return s.pattern == Pattern::kPingPong ? 2 : 1;
}

}  // namespace

// --- parent side ---------------------------------------------------------------------

std::unique_ptr<Resources> prepare_uds(CaseSpec& spec, std::string* error) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
    *error = errno_text("socketpair");
    return nullptr;
  }
  spec.fd[0] = sv[0];
  spec.fd[1] = sv[1];
  return std::make_unique<FdResources>(std::vector<int>{sv[0], sv[1]});
}

std::unique_ptr<Resources> prepare_posix_mq(CaseSpec& spec, std::string* error) {
  // The queues' bytes count against RLIMIT_MSGQUEUE of their creator; raise
  // it as far as this process may (root: no limit).
  rlimit rl{RLIM_INFINITY, RLIM_INFINITY};
  if (setrlimit(RLIMIT_MSGQUEUE, &rl) != 0 && getrlimit(RLIMIT_MSGQUEUE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_MSGQUEUE, &rl);
  }
  std::vector<std::string> names;
  for (int d = 0; d < directions(spec); ++d) {
    const std::string name = mq_path(spec, d);
    mq_unlink(name.c_str());
    mq_attr attr{};
    // The depth of the other transports, or the machine's limit (msg_max).
    attr.mq_maxmsg = std::min<long>(spec.pattern == Pattern::kPingPong ? 4 : spec.capacity,
                                    posix_mq_limit("msg_max"));
    attr.mq_msgsize = spec.payload;
    const mqd_t q = mq_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
    if (q == static_cast<mqd_t>(-1)) {
      *error = errno_text("mq_open") + " (" + std::to_string(attr.mq_maxmsg) + " messages of " +
               std::to_string(attr.mq_msgsize) + " bytes)";
      for (const auto& n : names) {
        mq_unlink(n.c_str());
      }
      return nullptr;
    }
    mq_close(q);
    names.push_back(name);
    if (spec.pattern != Pattern::kPingPong) {
      spec.capacity = static_cast<std::uint32_t>(attr.mq_maxmsg);  // as run, for the report
    }
  }
  return std::make_unique<MqResources>(std::move(names));
}

std::unique_ptr<Resources> prepare_boost_mq(CaseSpec& spec, std::string* error) {
  std::vector<std::string> names;
  try {
    for (int d = 0; d < directions(spec); ++d) {
      const std::string name = resource_name(spec, d);
      bip::message_queue::remove(name.c_str());
      names.push_back(name);
      bip::message_queue q(bip::create_only, name.c_str(),
                           spec.pattern == Pattern::kPingPong ? 4 : spec.capacity, spec.payload);
    }
  } catch (const std::exception& e) {
    *error = std::string("boost message_queue: ") + e.what();
    for (const auto& n : names) {
      bip::message_queue::remove(n.c_str());
    }
    return nullptr;
  }
  return std::make_unique<BoostResources>(std::move(names));
}

std::unique_ptr<Resources> prepare_zmq(CaseSpec&, std::string*) {
  return std::make_unique<Resources>();  // the binding receiver makes the socket file
}

// --- child side ----------------------------------------------------------------------

Endpoints open_uds(Control& ctl, int role) {
  const CaseSpec& s = ctl.spec;
  Endpoints e;
  const int fd = s.fd[role];
  if (s.pattern == Pattern::kPingPong || s.sends(role)) {
    e.tx = std::make_unique<UdsSender>(fd, s.payload);
  }
  if (s.pattern == Pattern::kPingPong || !s.sends(role)) {
    e.rx = std::make_unique<UdsReceiver>(fd, s.payload, s.wait == Wait::kSpin);
  }
  return e;
}

Endpoints open_posix_mq(Control& ctl, int role) {
  const CaseSpec& s = ctl.spec;
  Endpoints e;
  if (s.pattern == Pattern::kPingPong || s.sends(role)) {
    const mqd_t q = mq_open(mq_path(s, send_direction(s, role)).c_str(), O_WRONLY);
    if (q == static_cast<mqd_t>(-1)) {
      e.error = errno_text("mq_open (send)");
      return e;
    }
    e.tx = std::make_unique<MqSender>(q, s.payload);
  }
  if (s.pattern == Pattern::kPingPong || !s.sends(role)) {
    const int flags = O_RDONLY | (s.wait == Wait::kSpin ? O_NONBLOCK : 0);
    const mqd_t q = mq_open(mq_path(s, receive_direction(s, role)).c_str(), flags);
    if (q == static_cast<mqd_t>(-1)) {
      e.error = errno_text("mq_open (receive)");
      return e;
    }
    e.rx = std::make_unique<MqReceiver>(q, s.payload);
  }
  return e;
}

Endpoints open_boost_mq(Control& ctl, int role) {
  const CaseSpec& s = ctl.spec;
  Endpoints e;
  try {
    if (s.pattern == Pattern::kPingPong || s.sends(role)) {
      e.tx = std::make_unique<BoostSender>(resource_name(s, send_direction(s, role)), s.payload);
    }
    if (s.pattern == Pattern::kPingPong || !s.sends(role)) {
      e.rx = std::make_unique<BoostReceiver>(resource_name(s, receive_direction(s, role)),
                                             s.payload, s.wait == Wait::kSpin);
    }
  } catch (const std::exception& ex) {
    e.error = std::string("boost message_queue open: ") + ex.what();
  }
  return e;
}

Endpoints open_zmq(Control& ctl, int role) {
  const CaseSpec& s = ctl.spec;
  Endpoints e;
  if (s.pattern == Pattern::kPingPong || !s.sends(role)) {
    void* sock = zmq_socket_for(ZMQ_PULL, s.capacity);
    if (zmq_bind(sock, zmq_endpoint(s, receive_direction(s, role)).c_str()) != 0) {
      e.error = std::string("zmq_bind: ") + zmq_strerror(zmq_errno());
      zmq_close(sock);
      return e;
    }
    e.rx = std::make_unique<ZmqReceiver>(sock, s.payload, s.wait == Wait::kSpin);
  }
  if (s.pattern == Pattern::kPingPong || s.sends(role)) {
    void* sock = zmq_socket_for(ZMQ_PUSH, s.capacity);
    if (zmq_connect(sock, zmq_endpoint(s, send_direction(s, role)).c_str()) != 0) {
      e.error = std::string("zmq_connect: ") + zmq_strerror(zmq_errno());
      zmq_close(sock);
      return e;
    }
    e.tx = std::make_unique<ZmqSender>(sock, s.payload);
  }
  return e;
}

}  // namespace ipcbus::bench
