// fuzz_trie: a sequence of subscribe / unsubscribe / publish operations on a
// real (small) bus, checked after every publish against a reference model
// (which listener holds which filters, matched with the reference matcher),
// and at the end: every subscription removed leaves the trie at its root.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "ipcbus/bus.hpp"
#include "ipcbus/topic.hpp"
#include "reference.hpp"

namespace {

constexpr int kListeners = 4;
const char* const kLevels[] = {"a", "b", "", "+", "#", "$x", "c"};

ipcbus::Bus& bus() {
  static ipcbus::Bus* b = [] {
    ipcbus::OpenOptions o;
    o.name = "fuzz-trie-" + std::to_string(getpid());
    o.config.pools = {{64, 64}};
    o.config.max_listeners = 8;
    o.config.ring_capacity = 64;
    o.config.trie_nodes = 512;
    o.config.subscriptions = 256;
    auto r = ipcbus::Bus::open(o);
    if (!r) {
      std::abort();
    }
    (void)ipcbus::Bus::destroy(o.name);
    return new ipcbus::Bus(std::move(r.value()));
  }();
  return *b;
}

// Build a filter or topic of up to 4 levels from the next input bytes.
std::string take_path(const std::uint8_t*& p, const std::uint8_t* end) {
  if (p == end) {
    return "a";
  }
  const int n = 1 + (*p++ % 4);
  std::string s;
  for (int i = 0; i < n && p != end; ++i) {
    if (i > 0) {
      s += '/';
    }
    s += kLevels[*p++ % (sizeof kLevels / sizeof kLevels[0])];
  }
  return s.empty() ? "a" : s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ipcbus::Bus& b = bus();
  std::vector<ipcbus::Listener> listeners;
  for (int i = 0; i < kListeners; ++i) {
    listeners.push_back(std::move(b.listen({}).value()));
  }
  std::vector<std::set<std::string>> model(kListeners);
  ipcbus::Publisher pub = b.publisher();
  const std::uint8_t* p = data;
  const std::uint8_t* end = data + size;
  while (p != end) {
    const std::uint8_t op = *p++;
    const int who = op % kListeners;
    const std::string path = take_path(p, end);
    switch ((op >> 2) % 3) {
      case 0: {
        const bool valid = ipcbus::check_topic_filter(path).has_value();
        const auto r = listeners[who].subscribe(path);
        if ((!valid && r) || (valid && !r && r.error().code != ipcbus::Errc::kTrieFull)) {
          std::abort();
        }
        if (r) {
          model[who].insert(path);
        }
        break;
      }
      case 1: {
        const auto r = listeners[who].unsubscribe(path);
        if (r.has_value() != (model[who].erase(path) == 1)) {
          std::abort();
        }
        break;
      }
      default: {
        if (!ipcbus::check_topic_name(path)) {
          break;
        }
        std::uint32_t expected = 0;
        for (int i = 0; i < kListeners; ++i) {
          for (const auto& f : model[i]) {
            if (fuzz::reference_matches(f, path)) {
              ++expected;
              break;
            }
          }
        }
        const auto r = pub.publish(path, "x");
        const std::uint32_t got = r.status == ipcbus::PublishStatus::kNoListeners ? 0 : r.delivered;
        if (got != expected) {
          std::abort();
        }
        for (auto& l : listeners) {
          while (l.try_receive()) {
          }
        }
      }
    }
  }
  listeners.clear();  // closing removes every subscription
  const ipcbus::BusInfo info = b.inspect();
  if (info.trie_nodes_used != 1 || info.subscriptions_used != 0) {
    std::abort();
  }
  return 0;
}
