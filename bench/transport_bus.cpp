// transport_bus.cpp: ipcbus through its public API, zero copy (loan, write
// in place, publish; receive, read in place, release). Every listener uses
// the block policy, so that a stream loses nothing and is counted whole.
#include <algorithm>
#include <optional>
#include <thread>

#include "ipcbus/bus.hpp"
#include "transport.hpp"

namespace ipcbus::bench {

namespace {

constexpr std::chrono::seconds kBlockTimeout{60};

std::string topic_of(int direction) {
  return "bench/d" + std::to_string(direction);
}

class BusResources : public Resources {
 public:
  BusResources(std::string name, Bus bus) : name_(std::move(name)), bus_(std::move(bus)) {}
  ~BusResources() override { (void)Bus::destroy(name_); }
  // Everyone has mapped the segment: its name can go, the mappings stay.
  void after_ready() override {
    (void)Bus::destroy(name_);
    bus_.reset();
  }

 private:
  std::string name_;
  std::optional<Bus> bus_;
};

class BusSender : public Sender {
 public:
  BusSender(Bus bus, int direction)
      : bus_(std::move(bus)), pub_(bus_.publisher()), topic_(topic_of(direction)) {
    pub_.set_block_timeout(kBlockTimeout);
  }
  std::byte* loan(std::size_t n) override {
    for (std::uint64_t tries = 0;; ++tries) {
      auto l = pub_.loan(n);
      if (l) {
        loan_ = std::move(l.value());
        return loan_.data().data();
      }
      if (l.error().code != Errc::kPoolExhausted || tries > 50'000'000) {
        error_ = l.error().message;
        return nullptr;
      }
      cpu_relax();  // the listeners still hold every chunk: back off
    }
  }
  bool send(std::size_t) override {
    const PublishResult r = pub_.publish(topic_, std::move(loan_));
    if (r.status != PublishStatus::kOk || r.skipped != 0) {
      error_ = std::string("publish: ") + publish_status_name(r.status) + ", delivered " +
               std::to_string(r.delivered) + ", skipped " + std::to_string(r.skipped);
      return false;
    }
    return true;
  }
  bool stamps() const override { return true; }

 private:
  Bus bus_;
  Publisher pub_;
  std::string topic_;
  Loan loan_;
};

class BusReceiver : public Receiver {
 public:
  BusReceiver(Bus bus, Listener listener) : bus_(std::move(bus)), listener_(std::move(listener)) {}
  const std::byte* receive(std::size_t* n, std::uint64_t* stamp_ns) override {
    auto s = listener_.receive();
    if (!s) {
      error_ = "listener closed";
      return nullptr;
    }
    sample_ = std::move(*s);
    *n = sample_.payload().size();
    *stamp_ns = sample_.timestamp_ns();
    return sample_.payload().data();
  }
  void release() override { sample_ = Sample(); }

 private:
  Bus bus_;
  Listener listener_;
  Sample sample_;
};

}  // namespace

std::unique_ptr<Resources> prepare_bus(CaseSpec& spec, std::string* error) {
  Config c;
  const std::uint32_t in_flight = spec.pattern == Pattern::kPingPong ? 16 : spec.capacity;
  c.pools = {{std::max<std::uint32_t>(spec.payload, 64), in_flight + 8 * kMaxRoles + 64}};
  c.ring_capacity = spec.capacity;
  c.max_listeners = 32;
  c.max_processes = 64;
  OpenOptions o;
  o.name = spec.name;
  o.config = c;
  (void)Bus::destroy(o.name);
  auto bus = Bus::open(o);
  if (!bus) {
    *error = "bus open: " + bus.error().message;
    return nullptr;
  }
  return std::make_unique<BusResources>(o.name, std::move(bus.value()));
}

Endpoints open_bus(Control& ctl, int role) {
  const CaseSpec& s = ctl.spec;
  Endpoints e;
  OpenOptions o;
  o.name = s.name;
  o.create = false;
  auto bus = Bus::open(o);
  if (!bus) {
    e.error = "bus open: " + bus.error().message;
    return e;
  }
  const bool ping = s.pattern == Pattern::kPingPong;
  if (ping || !s.sends(role)) {
    ListenerOptions lo;
    lo.overflow = Overflow::kBlock;
    lo.wait = s.wait == Wait::kSpin ? WaitStrategy::kBusyPoll : WaitStrategy::kSleep;
    auto l = bus.value().listen(lo);
    if (!l) {
      e.error = "listen: " + l.error().message;
      return e;
    }
    if (auto ok = l.value().subscribe(topic_of(receive_direction(s, role))); !ok) {
      e.error = "subscribe: " + ok.error().message;
      return e;
    }
    e.rx = std::make_unique<BusReceiver>(bus.value(), std::move(l.value()));
  }
  if (ping || s.sends(role)) {
    e.tx = std::make_unique<BusSender>(bus.value(), send_direction(s, role));
  }
  return e;
}

}  // namespace ipcbus::bench
