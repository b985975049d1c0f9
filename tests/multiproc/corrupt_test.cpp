// corrupt_test.cpp: the tools against corrupt segments. A small bus with
// listeners, filters, queued events, a paused listener, a latency histogram,
// a live publisher and error-log entries is copied byte for byte; for each
// seed a copy gets one mutation and is written as a new segment under a bus
// name of its own, and the real `ipcbus ls`, `ls topics`, `stat` (table and
// JSON), `errors`, `top --once` and `ipcbus-agent` (stopped by SIGTERM after
// 300 ms) run against it as child processes.
//
// A mutation is, by seed (deterministic, splitmix64):
//   - random bytes over a random region (offset anywhere, 1..256 bytes);
//   - a whole header field set to a chosen value (0, all ones, off by one,
//     a flipped bit, a table size, random);
//   - a whole field of one record (listener slot, trie node, subscription
//     record, edge word, ring entry, chunk header, process entry, error
//     record) set the same way.
// Pass: every child exits 0, or exits 1 with a message on stderr; no child
// dies of a signal, hangs (killed at the bound), exits otherwise, or makes a
// sanitizer speak; and the readers, which read one unchanging copy, all
// exit alike. The 200 seeds run in 20 shards (one test each) so that shards
// run in parallel and each stays short, under a sanitizer too. A failing seed
// keeps its segment in /tmp/ipcbus-corrupt-seed<N>.bin.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "layout.hpp"
#include "multiproc.hpp"

namespace ipcbus::test {
namespace {

inline constexpr const char* kAgent = IPCBUS_AGENT;
inline constexpr int kShards = 20;
inline constexpr int kSeedsPerShard = 10;  // 200 seeds in all
// A tool reads a bus this small in milliseconds (a missing magic makes it
// wait its 2 s ready timeout); past this bound it hangs.
inline constexpr auto kHangBound = std::chrono::seconds(10);
inline constexpr auto kAgentRun = std::chrono::milliseconds(300);

// splitmix64: a small generator whose sequence is the same everywhere.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : next() % n; }

 private:
  std::uint64_t state_;
};

// A field of the segment: where it is and how many bytes it has.
struct Field {
  std::string name;
  std::size_t offset;
  std::size_t size;
};

template <class M>
Field field_of(const std::string& name, const char* base, const M& member) {
  return Field{name, static_cast<std::size_t>(reinterpret_cast<const char*>(&member) - base),
               sizeof(M)};
}

// The field `member` of `*record`, named for reports.
#define IPCBUS_FIELD(record, member) field_of(#member, base, (record)->member)

std::vector<Field> header_fields(const char* base) {
  const auto* h = reinterpret_cast<const detail::SegmentHeader*>(base);
  std::vector<Field> f = {
      IPCBUS_FIELD(h, magic),
      IPCBUS_FIELD(h, layout_version),
      IPCBUS_FIELD(h, header_bytes),
      IPCBUS_FIELD(h, errlog_version),
      IPCBUS_FIELD(h, errlog_entries),
      IPCBUS_FIELD(h, errlog_off),
      IPCBUS_FIELD(h, fingerprint),
      IPCBUS_FIELD(h, segment_bytes),
      IPCBUS_FIELD(h, creator_pid),
      IPCBUS_FIELD(h, pool_count),
      IPCBUS_FIELD(h, max_listeners),
      IPCBUS_FIELD(h, ring_capacity),
      IPCBUS_FIELD(h, trie_nodes),
      IPCBUS_FIELD(h, subscriptions),
      IPCBUS_FIELD(h, max_topic_bytes),
      IPCBUS_FIELD(h, max_level_bytes),
      IPCBUS_FIELD(h, max_processes),
      IPCBUS_FIELD(h, mode),
      IPCBUS_FIELD(h, max_publishers),
      IPCBUS_FIELD(h, edge_count),
      IPCBUS_FIELD(h, node_stride),
      IPCBUS_FIELD(h, pools[0].payload_bytes),
      IPCBUS_FIELD(h, pools[0].count),
      IPCBUS_FIELD(h, pools[0].stride),
      IPCBUS_FIELD(h, pools[0].offset),
      IPCBUS_FIELD(h, pools[1].payload_bytes),
      IPCBUS_FIELD(h, pools[1].count),
      IPCBUS_FIELD(h, pools[1].offset),
      IPCBUS_FIELD(h, proc_off),
      IPCBUS_FIELD(h, listener_off),
      IPCBUS_FIELD(h, ring_off),
      IPCBUS_FIELD(h, node_off),
      IPCBUS_FIELD(h, edge_off),
      IPCBUS_FIELD(h, sub_off),
      IPCBUS_FIELD(h, publisher_off),
      IPCBUS_FIELD(h, trie_mutex),
      // glibc's words of the mutex: a lock word naming a thread that does
      // not exist is a mutex held for ever.
      IPCBUS_FIELD(h, trie_mutex.__data.__lock),
      IPCBUS_FIELD(h, trie_mutex.__data.__owner),
      IPCBUS_FIELD(h, trie_mutex.__data.__kind),
      IPCBUS_FIELD(h, trie_version),
      IPCBUS_FIELD(h, node_free_head),
      IPCBUS_FIELD(h, nodes_used),
      IPCBUS_FIELD(h, sub_free_head),
      IPCBUS_FIELD(h, subs_used),
      IPCBUS_FIELD(h, edge_tombstones),
      IPCBUS_FIELD(h, next_publisher_id),
      IPCBUS_FIELD(h, attach_count),
      IPCBUS_FIELD(h, errlog_dropped),
      IPCBUS_FIELD(h, bitmap_off),
      IPCBUS_FIELD(h, bitmap_words),
      IPCBUS_FIELD(h, chunk_count),
      IPCBUS_FIELD(h, pools[1].bitmap_word),
      IPCBUS_FIELD(h, agent_pid),
  };
  return f;
}

// The fields of one record of each table, picked by the generator.
std::vector<Field> record_fields(const char* base, Rng& rng) {
  const auto* h = reinterpret_cast<const detail::SegmentHeader*>(base);
  std::vector<Field> out;
  auto tag = [&out](std::vector<Field> fields, const std::string& record) {
    for (Field& f : fields) {
      f.name = record + "." + f.name;
      out.push_back(std::move(f));
    }
  };
  const std::uint64_t li = rng.below(h->max_listeners);
  const auto* s = reinterpret_cast<const detail::ListenerSlot*>(base + h->listener_off) + li;
  tag({IPCBUS_FIELD(s, state), IPCBUS_FIELD(s, capacity), IPCBUS_FIELD(s, allocated),
       IPCBUS_FIELD(s, high_water_percent), IPCBUS_FIELD(s, overflow), IPCBUS_FIELD(s, wait),
       IPCBUS_FIELD(s, owner_pid), IPCBUS_FIELD(s, owner_process), IPCBUS_FIELD(s, tail_base),
       IPCBUS_FIELD(s, tail), IPCBUS_FIELD(s, head), IPCBUS_FIELD(s, subs_head),
       IPCBUS_FIELD(s, filter_count), IPCBUS_FIELD(s, histogram_on), IPCBUS_FIELD(s, latency[3])},
      "listener[" + std::to_string(li) + "]");
  const std::uint64_t ni = rng.below(h->trie_nodes);
  const auto* n =
      reinterpret_cast<const detail::TrieNode*>(base + h->node_off + ni * h->node_stride);
  tag({IPCBUS_FIELD(n, kind), IPCBUS_FIELD(n, parent), IPCBUS_FIELD(n, plus_child),
       IPCBUS_FIELD(n, hash_child), IPCBUS_FIELD(n, subs_head), IPCBUS_FIELD(n, refcount),
       IPCBUS_FIELD(n, label_len), IPCBUS_FIELD(n, next_free), IPCBUS_FIELD(n, label_hash)},
      "node[" + std::to_string(ni) + "]");
  const std::uint64_t si = rng.below(h->subscriptions);
  const auto* r = reinterpret_cast<const detail::SubRecord*>(base + h->sub_off) + si;
  tag({IPCBUS_FIELD(r, node), IPCBUS_FIELD(r, listener), IPCBUS_FIELD(r, generation),
       IPCBUS_FIELD(r, next_in_node), IPCBUS_FIELD(r, next_in_listener),
       IPCBUS_FIELD(r, next_free)},
      "sub[" + std::to_string(si) + "]");
  const std::uint64_t ei = rng.below(h->edge_count);
  out.push_back({"edge[" + std::to_string(ei) + "]", h->edge_off + ei * 8, 8});
  const std::uint64_t ri = rng.below(std::uint64_t{h->max_listeners} * h->ring_capacity);
  out.push_back({"ring_entry[" + std::to_string(ri) + "]", h->ring_off + ri * 8, 8});
  const std::uint64_t ci = rng.below(h->pools[0].count);
  const auto* c = reinterpret_cast<const detail::ChunkHeader*>(base + h->pools[0].offset +
                                                               ci * h->pools[0].stride);
  tag({IPCBUS_FIELD(c, holders), IPCBUS_FIELD(c, index), IPCBUS_FIELD(c, pool_class),
       IPCBUS_FIELD(c, self_ref), IPCBUS_FIELD(c, capacity), IPCBUS_FIELD(c, payload_len),
       IPCBUS_FIELD(c, topic_len), IPCBUS_FIELD(c, payload_offset)},
      "chunk[" + std::to_string(ci) + "]");
  const std::uint64_t pi = rng.below(h->max_processes);
  const auto* p = reinterpret_cast<const detail::ProcessEntry*>(base + h->proc_off) + pi;
  tag({IPCBUS_FIELD(p, state), IPCBUS_FIELD(p, pid), IPCBUS_FIELD(p, start_time),
       IPCBUS_FIELD(p, listeners)},
      "process[" + std::to_string(pi) + "]");
  const std::uint64_t xi = rng.below(h->errlog_entries);
  const auto* e = reinterpret_cast<const detail::ErrorRecord*>(base + h->errlog_off) + xi;
  tag({IPCBUS_FIELD(e, state), IPCBUS_FIELD(e, text_len), IPCBUS_FIELD(e, count),
       IPCBUS_FIELD(e, kind), IPCBUS_FIELD(e, text)},
      "error[" + std::to_string(xi) + "]");
  return out;
}

#undef IPCBUS_FIELD

// set_field overwrites a whole field with a value chosen from the cases that
// break range checks most often.
std::string set_field(std::string& bytes, const Field& f, Rng& rng,
                      const detail::SegmentHeader& h) {
  char* at = bytes.data() + f.offset;
  if (f.size > 8) {
    for (std::size_t i = 0; i < f.size; ++i) {
      at[i] = static_cast<char>(rng.next());
    }
    return f.name + " = random bytes";
  }
  std::uint64_t old = 0;
  std::memcpy(&old, at, f.size);
  const std::uint64_t tables[] = {h.max_listeners, h.trie_nodes,    h.subscriptions,
                                  h.max_processes, h.ring_capacity, h.edge_count};
  std::uint64_t v = 0;
  switch (rng.below(8)) {
    case 0:
      v = 0;
      break;
    case 1:
      v = ~0ULL;
      break;
    case 2:
      v = old + 1;
      break;
    case 3:
      v = old - 1;
      break;
    case 4:
      v = old ^ (1ULL << rng.below(f.size * 8));
      break;
    case 5:
      v = tables[rng.below(std::size(tables))];
      break;
    case 6:
      v = 0xFFFFFFFEULL;
      break;
    default:
      v = rng.next();
      break;
  }
  const std::uint64_t mask = f.size == 8 ? ~0ULL : (1ULL << (f.size * 8)) - 1;
  v &= mask;
  if (v == old) {
    v = old ^ 1;  // a mutation always changes the field
  }
  std::memcpy(at, &v, f.size);
  char text[64];
  std::snprintf(text, sizeof text, " = 0x%llx (was 0x%llx)", static_cast<unsigned long long>(v),
                static_cast<unsigned long long>(old));
  return f.name + text;
}

// mutate applies seed's mutation to `bytes` and says what it did.
std::string mutate(std::string& bytes, std::uint64_t seed) {
  Rng rng(seed);
  // A private copy of the header, aligned, for the table sizes.
  auto header = std::make_unique<detail::SegmentHeader>();
  std::memcpy(static_cast<void*>(header.get()), bytes.data(), sizeof(detail::SegmentHeader));
  switch (seed % 4) {
    case 2: {
      const std::vector<Field> fields = header_fields(bytes.data());
      return "header " + set_field(bytes, fields[rng.below(fields.size())], rng, *header);
    }
    case 3: {
      const std::vector<Field> fields = record_fields(bytes.data(), rng);
      return set_field(bytes, fields[rng.below(fields.size())], rng, *header);
    }
    default: {
      const std::size_t offset = rng.below(bytes.size());
      const std::size_t length = std::min<std::size_t>(1 + rng.below(256), bytes.size() - offset);
      for (std::size_t i = 0; i < length; ++i) {
        bytes[offset + i] = static_cast<char>(rng.next());
      }
      return "random bytes at " + std::to_string(offset) + " +" + std::to_string(length);
    }
  }
}

bool write_segment(const std::string& bus, const std::string& bytes) {
  const std::string path = "/dev/shm/ipcbus." + bus;
  const int fd = open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) {
    return false;
  }
  const bool ok = write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
  close(fd);
  return ok;
}

// One tool run against a corrupt copy and how it ended.
struct ToolRun {
  std::string name;
  pid_t pid = -1;
  std::string out;
  std::string err;
  Exit exit;
  std::string why;  // empty: it passed
};

// verdict is empty when the run passes, else why it does not.
std::string verdict(const ToolRun& r) {
  if (r.exit.timed_out) {
    return "hung (killed after the bound)";
  }
  if (r.exit.signal != 0) {
    return std::string("died of signal ") + strsignal(r.exit.signal);
  }
  if (!r.exit.exited || (r.exit.code != 0 && r.exit.code != 1)) {
    return "exited " + std::to_string(r.exit.code);
  }
  const std::string err = read_file(r.err);
  if (r.exit.code == 1 && err.empty()) {
    return "exited 1 without a message";
  }
  for (const char* word : {"AddressSanitizer", "LeakSanitizer", "runtime error:"}) {
    if (err.find(word) != std::string::npos) {
      return std::string("sanitizer report (") + word + ")";
    }
  }
  return "";
}

class CorruptSegment : public MultiProc, public ::testing::WithParamInterface<int> {
 protected:
  void TearDown() override {
    for (const std::string& name : copies_) {
      (void)Bus::destroy(name);
    }
    for (const std::string& f : outputs_) {
      std::remove(f.c_str());
    }
    samples_.clear();
    listeners_.clear();
    publisher_.reset();
    MultiProc::TearDown();
  }

  // make_source fills this test's bus with something of everything the tools read.
  void make_source() {
    OpenOptions o;
    o.name = bus_;
    o.config.pools = {{64, 24}, {512, 4}};
    o.config.max_listeners = 6;
    o.config.ring_capacity = 8;
    o.config.trie_nodes = 32;
    o.config.subscriptions = 24;
    o.config.max_topic_bytes = 64;
    o.config.max_level_bytes = 16;
    o.config.max_processes = 4;
    o.config.max_publishers = 4;
    auto opened = Bus::open(o);
    ASSERT_TRUE(opened) << opened.error().message;
    bus_handle_.emplace(std::move(opened.value()));
    const std::vector<std::vector<std::string>> filters = {
        {"sensors/+/temp", "sensors/kitchen/#"}, {"#", "a/b/c"}, {"$SYS/x"}, {"a/+/c", "q"}};
    for (const auto& list : filters) {
      ListenerOptions lo;
      lo.latency_histogram = listeners_.size() == 3;
      auto l = bus_handle_->listen(lo);
      ASSERT_TRUE(l) << l.error().message;
      for (const std::string& f : list) {
        ASSERT_TRUE(l->subscribe(f)) << f;
      }
      listeners_.push_back(std::move(*l));
    }
    ASSERT_TRUE(listeners_[2].pause());
    publisher_.emplace(bus_handle_->publisher());
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(publisher_->publish("sensors/kitchen/temp", "21." + std::to_string(i)).ok());
      ASSERT_TRUE(publisher_->publish("a/b/c", std::string(100, 'p')).ok());
    }
    auto kept = listeners_[3].try_receive();
    ASSERT_TRUE(kept.has_value());
    samples_.push_back(std::move(*kept));
    bus_handle_->record_error("test", "a corrupt-segment fixture");
    bus_handle_->record_error("test", "a corrupt-segment fixture");
    bus_handle_->record_error("drops", "listener 1 dropped over 1000 events");
  }

  // output names one reused file per tool, removed on tear down.
  std::string output(const std::string& tag) {
    const std::string path = "/tmp/ipcbus-" + bus_ + "-" + tag;
    if (std::find(outputs_.begin(), outputs_.end(), path) == outputs_.end()) {
      outputs_.push_back(path);
    }
    return path;
  }

  ToolRun start_tool(const std::string& name, std::vector<std::string> argv) {
    ToolRun r;
    r.name = name;
    r.out = output(name + ".out");
    r.err = output(name + ".err");
    SpawnOptions o;
    o.stdout_path = r.out;
    o.stderr_path = r.err;
    r.pid = start(argv, o);
    return r;
  }

  // run_tools runs every tool against bus `copy` and returns the runs that failed.
  std::vector<ToolRun> run_tools(const std::string& copy) {
    std::vector<ToolRun> readers = {
        start_tool("ls", {kCli, "ls", "--bus", copy}),
        start_tool("ls-topics", {kCli, "ls", "topics", "--bus", copy}),
        start_tool("stat", {kCli, "stat", "--bus", copy}),
        start_tool("stat-json", {kCli, "stat", "--bus", copy, "-o", "json"}),
        start_tool("errors", {kCli, "errors", "--bus", copy}),
    };
    for (ToolRun& r : readers) {
      r.exit = finish(r.pid, kHangBound);
    }
    // doctor reads as they do but exits 1 on any violation, which a copy of a
    // live bus (its processes dead, as far as the copy knows) has: only its
    // way of ending is judged.
    ToolRun doctor = start_tool("doctor", {kCli, "doctor", "--bus", copy});
    doctor.exit = finish(doctor.pid, kHangBound);
    // The agent attaches (it writes a process entry, maybe the error log),
    // so it runs after the readers, next to top.
    // top reads before the agent attaches: an attach cleans up after the
    // copy's processes (dead to it), which changes what a reader sees.
    ToolRun top = start_tool("top", {kCli, "top", "--once", "--interval", "0.1", "--bus", copy});
    top.exit = finish(top.pid, kHangBound);
    ToolRun agent =
        start_tool("agent", {kAgent, "--bus", copy, "--interval", "0.01", "--log-level", "info"});
    // It logs "agent starting" once its SIGTERM handler is in place; a
    // SIGTERM before that would end it as a signal, not as a stop.
    poll_until(
        [&] {
          return !still_running(agent.pid) ||
                 read_file(agent.err).find("agent starting") != std::string::npos;
        },
        kHangBound);
    poll_until([&] { return !still_running(agent.pid); }, kAgentRun);
    kill(agent.pid, SIGTERM);
    agent.exit = finish(agent.pid, kHangBound);
    readers.push_back(top);
    for (ToolRun& r : readers) {
      r.why = verdict(r);
    }
    // The readers read one unchanging copy: it opens for all or for none,
    // and what opens prints in every format.
    for (ToolRun& r : readers) {
      if (r.why.empty() && readers[0].why.empty() && r.exit.code != readers[0].exit.code) {
        r.why = "exited " + std::to_string(r.exit.code) + " where ls exited " +
                std::to_string(readers[0].exit.code);
      }
    }
    readers.push_back(agent);
    readers.back().why = verdict(agent);
    readers.push_back(doctor);
    readers.back().why = verdict(doctor);
    std::vector<ToolRun> failed;
    for (const ToolRun& r : readers) {
      if (!r.why.empty()) {
        failed.push_back(r);
      }
    }
    return failed;
  }

  std::vector<std::string> copies_;
  std::vector<std::string> outputs_;
  std::vector<Listener> listeners_;
  std::vector<Sample> samples_;
  std::optional<Publisher> publisher_;
};

TEST_P(CorruptSegment, EveryToolExitsWithAStatusNeverASignalOrAHang) {
  make_source();
  ASSERT_FALSE(HasFatalFailure());
  const std::string source = read_file("/dev/shm/ipcbus." + bus_);
  ASSERT_EQ(source.size(), bus_handle_->inspect().segment_bytes);
  // $IPCBUS_CORRUPT_SEED_BASE shifts every shard's seeds, to explore more.
  const char* base = std::getenv("IPCBUS_CORRUPT_SEED_BASE");
  const int first = (base != nullptr ? std::atoi(base) : 0) + GetParam() * kSeedsPerShard;
  std::printf("corrupt: seeds from %d (set IPCBUS_CORRUPT_SEED_BASE to shift them)\n", first);
  int refused = 0;
  int read = 0;
  int failed_seeds = 0;

  for (int seed = first; seed < first + kSeedsPerShard; ++seed) {
    std::string bytes = source;
    const std::string what = mutate(bytes, static_cast<std::uint64_t>(seed));
    const std::string copy = bus_ + "-s" + std::to_string(seed);
    copies_.push_back(copy);
    ASSERT_TRUE(write_segment(copy, bytes)) << copy;
    const std::vector<ToolRun> failed = run_tools(copy);
    const bool ls_refused = read_file(output("ls.err")).find("cannot open") != std::string::npos;
    (void)Bus::destroy(copy);

    (ls_refused ? refused : read) += 1;
    std::printf("seed %d: %s: %s\n", seed, what.c_str(),
                ls_refused       ? "refused at open"
                : failed.empty() ? "read"
                                 : "FAILED");
    if (failed.empty()) {
      continue;
    }
    ++failed_seeds;
    const std::string keep = "/tmp/ipcbus-corrupt-seed" + std::to_string(seed) + ".bin";
    std::ofstream(keep, std::ios::binary) << bytes;
    for (const ToolRun& r : failed) {
      ADD_FAILURE() << "seed " << seed << " (" << what << "): " << r.name << " " << r.why
                    << "; segment kept in " << keep << "\nstderr:\n"
                    << read_file(r.err).substr(0, 2000);
    }
  }
  std::printf("corrupt: seeds %d..%d: %d refused at open, %d read, %d with a failing tool\n", first,
              first + kSeedsPerShard - 1, refused, read, failed_seeds);
}

INSTANTIATE_TEST_SUITE_P(Seeds, CorruptSegment, ::testing::Range(0, kShards));

class CorruptLabel : public CorruptSegment {};

TEST_F(CorruptLabel, FilterLabelThatIsNotUtf8PrintsAsAReplacementInEveryFormat) {
  make_source();
  ASSERT_FALSE(HasFatalFailure());
  std::string bytes = read_file("/dev/shm/ipcbus." + bus_);
  const auto* h = reinterpret_cast<const detail::SegmentHeader*>(bytes.data());
  std::size_t label = 0;
  for (std::uint32_t n = 1; n < h->trie_nodes && label == 0; ++n) {
    const std::size_t at = h->node_off + std::size_t{n} * h->node_stride;
    const auto* node = reinterpret_cast<const detail::TrieNode*>(bytes.data() + at);
    // relaxed: a private copy of the bytes.
    if (node->label_len.load(std::memory_order_relaxed) == 7 &&
        bytes.compare(at + sizeof(detail::TrieNode), 7, "kitchen") == 0) {
      label = at + sizeof(detail::TrieNode);
    }
  }
  ASSERT_NE(label, 0U) << "no trie node labelled kitchen";
  bytes[label] = '\xFF';  // "sensors/\xFFitchen/#": not UTF-8
  const std::string copy = bus_ + "-label";
  copies_.push_back(copy);
  ASSERT_TRUE(write_segment(copy, bytes));

  std::vector<ToolRun> runs = {
      start_tool("ls", {kCli, "ls", "--bus", copy}),
      start_tool("ls-json", {kCli, "ls", "--bus", copy, "-o", "json"}),
      start_tool("topics-ndjson", {kCli, "ls", "topics", "--bus", copy, "-o", "ndjson"}),
      start_tool("stat-json", {kCli, "stat", "--bus", copy, "-o", "json"}),
  };
  for (ToolRun& r : runs) {
    r.exit = finish(r.pid, kHangBound);
  }

  for (const ToolRun& r : runs) {
    const std::string out = read_file(r.out);
    EXPECT_TRUE(ended_ok(r.exit)) << r.name << ": " << read_file(r.err);
    const std::string shown = r.name == "ls" ? "sensors/\xFFitchen/#" : "sensors/\uFFFDitchen/#";
    const std::string utf8 = r.name == "ls" ? shown : "sensors/\xEF\xBF\xBDitchen/#";
    EXPECT_TRUE(out.find(utf8) != std::string::npos || out.find(shown) != std::string::npos)
        << r.name << " printed:\n"
        << out;
  }
}

}  // namespace
}  // namespace ipcbus::test
