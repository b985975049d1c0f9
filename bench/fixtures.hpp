// fixtures.hpp: in-process set-ups shared by the micro benchmarks and the
// in-process part of ipcbus-bench.
//
// The internals (BusCore's pools and rings, the trie Matcher) are reached
// without a hook in the library: a bus is opened through the public API, and
// its segment is mapped a second time here and wrapped in a BusCore that is
// not registered as a process (index kNone), which is all BusCore needs.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "core.hpp"
#include "ipcbus/bus.hpp"
#include "trie.hpp"

namespace ipcbus::bench {

// A bus private to this process (its name is gone once it is mapped), with a
// second mapping of its segment as a BusCore for the internals.
class LocalBus {
 public:
  LocalBus(const std::string& tag, const Config& config) {
    name_ = "bench-" + tag + "-" + std::to_string(getpid());
    (void)Bus::destroy(name_);
    OpenOptions o;
    o.name = name_;
    o.config = config;
    auto bus = Bus::open(o);
    if (!bus) {
      std::fprintf(stderr, "ipcbus-bench: open %s: %s\n", name_.c_str(),
                   bus.error().message.c_str());
      std::abort();
    }
    bus_ = std::make_unique<Bus>(std::move(bus.value()));
    const std::string path = "/ipcbus." + name_;
    const int fd = shm_open(path.c_str(), O_RDWR, 0);
    struct stat st {};
    if (fd < 0 || fstat(fd, &st) != 0) {
      std::fprintf(stderr, "ipcbus-bench: cannot map %s again\n", path.c_str());
      std::abort();
    }
    bytes_ = static_cast<std::size_t>(st.st_size);
    base_ = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    (void)Bus::destroy(name_);  // the name goes, the mappings stay
    if (base_ == MAP_FAILED) {
      std::abort();
    }
    core_ = std::make_unique<detail::BusCore>(name_, base_, bytes_, detail::kNone);
  }
  ~LocalBus() {
    core_.reset();
    munmap(base_, bytes_);
    (void)Bus::destroy(name_);
  }
  LocalBus(const LocalBus&) = delete;
  LocalBus& operator=(const LocalBus&) = delete;

  Bus& bus() { return *bus_; }
  detail::BusCore& core() { return *core_; }

 private:
  std::string name_;
  std::unique_ptr<Bus> bus_;
  void* base_ = nullptr;
  std::size_t bytes_ = 0;
  std::unique_ptr<detail::BusCore> core_;
};

// The i-th filter of a trie of `levels` levels. Level 1 has 16 values,
// level 2 has 97, level 3 is unique per filter, the rest are fixed words. With
// wildcards, one filter in 10 has '+' at level 2 and another one in 10 ends
// in '#' after level 2.
inline std::string bench_filter(std::uint32_t i, int levels, bool wildcards) {
  std::string f = "s" + std::to_string(i % 16);
  if (wildcards && i % 10 == 5) {
    return f + "/b" + std::to_string(i % 97) + "/#";
  }
  f += (wildcards && i % 10 == 0) ? "/+" : "/b" + std::to_string(i % 97);
  f += "/c" + std::to_string(i);
  static const char* const kWords[] = {"d", "e", "f", "g", "h", "i", "j"};
  for (int l = 3; l < levels; ++l) {
    f += '/';
    f += kWords[l - 3];
  }
  return f;
}

// The topic that the i-th filter names (without its wildcards).
inline std::string bench_topic(std::uint32_t i, int levels) {
  return bench_filter(i, levels, /*wildcards=*/false);
}

// A bus with `subs` subscriptions spread over 48 listeners (the most a bus has).
class TrieFixture {
 public:
  TrieFixture(std::uint32_t subs, int levels, bool wildcards)
      : subs_(subs), levels_(levels), local_("trie", config_for(subs, levels)) {
    for (int i = 0; i < 48; ++i) {
      listeners_.push_back(std::move(local_.bus().listen({}).value()));
    }
    for (std::uint32_t i = 0; i < subs; ++i) {
      auto ok = listeners_[i % 48].subscribe(bench_filter(i, levels, wildcards));
      if (!ok) {
        std::fprintf(stderr, "ipcbus-bench: subscribe: %s\n", ok.error().message.c_str());
        std::abort();
      }
    }
    publisher_ = std::make_unique<Publisher>(local_.bus().publisher());
    matcher_ = std::make_unique<detail::Matcher>(local_.core());
    out_.resize(local_.core().header().max_listeners);
  }

  static Config config_for(std::uint32_t subs, int levels) {
    Config c;
    c.trie_nodes = subs * static_cast<std::uint32_t>(levels) + 4096;
    c.subscriptions = subs + 64;
    c.pools = {{64, 64}};
    c.max_listeners = 48;
    c.ring_capacity = 64;
    return c;
  }

  // One uncached lookup straight through the Matcher: the listener count.
  std::uint32_t match(std::string_view topic) {
    std::uint64_t version = 0;
    return matcher_->match(topic, out_.data(), &version);
  }

  Publisher& publisher() { return *publisher_; }
  Bus& bus() { return local_.bus(); }
  std::uint32_t subs() const { return subs_; }
  int levels() const { return levels_; }

 private:
  std::uint32_t subs_;
  int levels_;
  LocalBus local_;
  std::vector<Listener> listeners_;
  std::unique_ptr<Publisher> publisher_;
  std::unique_ptr<detail::Matcher> matcher_;
  std::vector<detail::RouteTarget> out_;
};

}  // namespace ipcbus::bench
