// publisher_role.cpp: a publisher child. It takes every P-th line of the log,
// waits for "go", publishes its lines `repeat` times and reports what it did.
#include <signal.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "event_log.hpp"
#include "replay.hpp"

namespace replay {

namespace {

struct Event {
  std::string topic;
  std::string_view payload;
};

// Blocks until a line "go" comes on stdin; false on EOF or anything else.
bool wait_for_go() {
  std::string got;
  char c = 0;
  while (got.size() < 16) {
    const ssize_t n = read(STDIN_FILENO, &c, 1);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    if (c == '\n') {
      return got == "go";
    }
    got.push_back(c);
  }
  return false;
}

// The progress counter of this publisher, in the coordinator's memfd; null
// when there is none.
std::uint64_t* map_progress(int fd, std::uint32_t index) {
  if (fd < 0) {
    return nullptr;
  }
  const std::size_t bytes = (static_cast<std::size_t>(index) + 1) * kProgressStride;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    return nullptr;
  }
  return reinterpret_cast<std::uint64_t*>(static_cast<char*>(p) + index * kProgressStride);
}

void pause_briefly() {
  const timespec ts{0, 20000};  // 20 us: lets listeners return chunks to the pool
  nanosleep(&ts, nullptr);
}

}  // namespace

int run_publisher(const PublisherRoleOptions& o) {
  signal(SIGINT, SIG_IGN);  // the coordinator handles Ctrl-C and ends us
  ipcbus::OpenOptions open_options;
  open_options.name = o.bus;
  open_options.create = false;  // the coordinator made it; never make another
  auto opened = ipcbus::Bus::open(open_options);
  if (!opened) {
    std::fprintf(stderr, "publisher %u: cannot open bus %s: %s\n", o.index, o.bus.c_str(),
                 opened.error().message.c_str());
    return 1;
  }
  ipcbus::Bus bus = std::move(opened.value());
  const std::size_t max_payload = bus.config().pools.back().payload_bytes;

  const LogFile log = read_log(o.input, max_payload);
  std::vector<Event> events;
  for (std::size_t i = o.index; i < log.lines.size(); i += o.publishers) {
    Event e;
    derive_topic(log.lines[i], e.topic);
    e.payload = log.lines[i];
    events.push_back(std::move(e));
  }
  ipcbus::Publisher publisher = bus.publisher();
  publisher.set_block_timeout(o.block_timeout);
  std::uint64_t* progress = map_progress(o.progress_fd, o.index);

  if (!emit_line("ready " + std::to_string(publisher.id())) || !wait_for_go()) {
    return 1;  // the coordinator is gone or gave up
  }

  std::uint64_t published = 0;
  std::uint64_t timed_out = 0;
  std::uint64_t pool_waits = 0;
  std::uint64_t errors = 0;
  std::string first_error;
  for (std::uint32_t r = 0; r < o.repeat; ++r) {
    for (const Event& e : events) {
      ipcbus::PublishResult res = publisher.publish(e.topic, e.payload);
      while (res.status == ipcbus::PublishStatus::kPoolExhausted) {
        ++pool_waits;
        pause_briefly();
        res = publisher.publish(e.topic, e.payload);
      }
      if (res.status == ipcbus::PublishStatus::kTimedOut) {
        ++timed_out;
      } else if (!res.ok()) {
        if (errors++ == 0) {
          first_error = std::string(ipcbus::publish_status_name(res.status)) + ": " + e.topic;
        }
        continue;
      }
      ++published;
      if (progress != nullptr && (published & 63U) == 0) {
        // relaxed: a gauge for the progress line; nothing is published through it.
        std::atomic_ref<std::uint64_t>(*progress).store(published, std::memory_order_relaxed);
      }
    }
  }
  if (progress != nullptr) {
    // relaxed: as above; the report line carries the exact count.
    std::atomic_ref<std::uint64_t>(*progress).store(published, std::memory_order_relaxed);
  }

  nlohmann::json report = {
      {"index", o.index},           {"publisher_id", publisher.id()},
      {"published", published},     {"timed_out", timed_out},
      {"pool_waits", pool_waits},   {"errors", errors},
      {"first_error", first_error}, {"route_cache_misses", publisher.route_cache_misses()},
  };
  return emit_line("report " + report.dump()) ? 0 : 1;
}

}  // namespace replay
