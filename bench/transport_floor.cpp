// transport_floor.cpp: the raw floors of the machine, in the case's data
// area (a shared memfd mapping).
//
// Mailbox (latency): one 32-bit word per direction, each on its own cache
// line, and one payload area after them that both directions share (a
// ping-pong alternates, so the answer may be written where the question was
// read, as the bus's LIFO pool does with its chunks). The sender writes the
// payload and stores the next sequence into its word; the receiver waits for
// the word to change, by spinning on plain loads (floor-line) or in
// FUTEX_WAIT (floor-futex, woken by FUTEX_WAKE after every store). No "slot
// free" flag is needed: the answer proves the payload was read. With a
// payload of 0 this is two atomics bounced between two processes.
//
// Ring (throughput): a single-producer single-consumer ring of payload
// slots; head and tail on their own lines, each side keeping a private copy
// of the other's index and re-reading the shared one only when the copy says
// full or empty.
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include "transport.hpp"

namespace ipcbus::bench {

namespace {

constexpr std::uint64_t kLine = 64;
std::uint64_t align_up(std::uint64_t v, std::uint64_t a) {
  return (v + a - 1) / a * a;
}

std::uint64_t slot_stride(const CaseSpec& s) {
  return align_up(s.payload, kLine);
}

void futex_wait(std::atomic<std::uint32_t>* w, std::uint32_t expected) {
  // Shared futex: the waker is another process.
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(w), FUTEX_WAIT, expected, nullptr, nullptr,
          0);
}
void futex_wake(std::atomic<std::uint32_t>* w) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(w), FUTEX_WAKE, 1, nullptr, nullptr, 0);
}

struct Mailbox {
  std::atomic<std::uint32_t>* word;
  std::byte* payload;
};

Mailbox mailbox(Control& ctl, int direction) {
  auto* base = reinterpret_cast<std::byte*>(&ctl) + ctl.spec.data_offset;
  return {reinterpret_cast<std::atomic<std::uint32_t>*>(
              base + static_cast<std::uint64_t>(direction) * kLine),
          base + 2 * kLine};
}

class MailboxSender : public Sender {
 public:
  MailboxSender(Mailbox m, bool futex) : m_(m), futex_(futex) {}
  std::byte* loan(std::size_t) override { return m_.payload; }
  bool send(std::size_t) override {
    // release: SYNC(mailbox): the payload written before is visible to the
    // receiver that acquires the new sequence.
    m_.word->store(++seq_, std::memory_order_release);
    if (futex_) {
      futex_wake(m_.word);
    }
    return true;
  }

 private:
  Mailbox m_;
  bool futex_;
  std::uint32_t seq_ = 0;
};

class MailboxReceiver : public Receiver {
 public:
  MailboxReceiver(Mailbox m, bool futex, std::size_t n) : m_(m), futex_(futex), n_(n) {}
  const std::byte* receive(std::size_t* n, std::uint64_t* stamp_ns) override {
    std::uint32_t v;
    if (futex_) {
      // acquire: SYNC(mailbox), see MailboxSender::send().
      while ((v = m_.word->load(std::memory_order_acquire)) == seen_) {
        futex_wait(m_.word, seen_);
      }
    } else {
      // acquire: SYNC(mailbox). A bare load loop, no pause: the floor.
      while ((v = m_.word->load(std::memory_order_acquire)) == seen_) {
      }
    }
    seen_ = v;
    *n = n_;
    *stamp_ns = 0;
    return m_.payload;
  }
  void release() override {}

 private:
  Mailbox m_;
  bool futex_;
  std::size_t n_;
  std::uint32_t seen_ = 0;
};

struct RingView {
  std::atomic<std::uint64_t>* tail;  // written by the producer
  std::atomic<std::uint64_t>* head;  // written by the consumer
  std::byte* slots;
  std::uint64_t capacity;
  std::uint64_t stride;
};

RingView ring(Control& ctl) {
  auto* base = reinterpret_cast<std::byte*>(&ctl) + ctl.spec.data_offset;
  return {reinterpret_cast<std::atomic<std::uint64_t>*>(base),
          reinterpret_cast<std::atomic<std::uint64_t>*>(base + kLine), base + 2 * kLine,
          ctl.spec.capacity, slot_stride(ctl.spec)};
}

class RingSender : public Sender {
 public:
  explicit RingSender(RingView r) : r_(r) {}
  std::byte* loan(std::size_t) override {
    while (tail_ - head_seen_ >= r_.capacity) {
      // acquire: SYNC(ring-free): the consumer is done with the slot.
      head_seen_ = r_.head->load(std::memory_order_acquire);
    }
    return r_.slots + (tail_ % r_.capacity) * r_.stride;
  }
  bool send(std::size_t) override {
    // release: SYNC(ring-publish): the slot's bytes before the index.
    r_.tail->store(++tail_, std::memory_order_release);
    return true;
  }

 private:
  RingView r_;
  std::uint64_t tail_ = 0;
  std::uint64_t head_seen_ = 0;
};

class RingReceiver : public Receiver {
 public:
  RingReceiver(RingView r, std::size_t n) : r_(r), n_(n) {}
  const std::byte* receive(std::size_t* n, std::uint64_t* stamp_ns) override {
    while (head_ >= tail_seen_) {
      // acquire: SYNC(ring-publish), see RingSender::send().
      tail_seen_ = r_.tail->load(std::memory_order_acquire);
    }
    *n = n_;
    *stamp_ns = 0;
    return r_.slots + (head_ % r_.capacity) * r_.stride;
  }
  void release() override {
    // release: SYNC(ring-free): our reads of the slot before the producer reuses it.
    r_.head->store(++head_, std::memory_order_release);
  }

 private:
  RingView r_;
  std::size_t n_;
  std::uint64_t head_ = 0;
  std::uint64_t tail_seen_ = 0;
};

}  // namespace

std::uint64_t floor_data_bytes(const CaseSpec& s) {
  switch (s.transport) {
    case Transport::kFloorLine:
    case Transport::kFloorFutex:
      return align_up(2 * kLine + s.payload, 4096);
    case Transport::kFloorRing:
      return align_up(2 * kLine + s.capacity * slot_stride(s), 4096);
    default:
      return 0;
  }
}

Endpoints open_floor(Control& ctl, int role) {
  const CaseSpec& s = ctl.spec;
  Endpoints e;
  if (s.transport == Transport::kFloorRing) {
    if (s.sends(role)) {
      e.tx = std::make_unique<RingSender>(ring(ctl));
    } else {
      e.rx = std::make_unique<RingReceiver>(ring(ctl), s.payload);
    }
    return e;
  }
  const bool futex = s.transport == Transport::kFloorFutex;
  e.tx = std::make_unique<MailboxSender>(mailbox(ctl, send_direction(s, role)), futex);
  e.rx =
      std::make_unique<MailboxReceiver>(mailbox(ctl, receive_direction(s, role)), futex, s.payload);
  return e;
}

}  // namespace ipcbus::bench
