// segment.cpp: the segment's layout, its creation by one process, and the
// checks every other process makes before it follows anything inside it.
#include "segment.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <new>
#include <system_error>
#include <thread>
#include <vector>

#include "core.hpp"
#include "crash.hpp"
#include "process.hpp"
#include "validate.hpp"

namespace bip = boost::interprocess;

namespace ipcbus {

namespace {

bool is_pow2(std::uint64_t v) {
  return v != 0 && (v & (v - 1)) == 0;
}
std::uint64_t align_up(std::uint64_t v, std::uint64_t a) {
  return (v + a - 1) / a * a;
}

Error invalid(std::string message) {
  return Error{Errc::kInvalidArgument, std::move(message)};
}

}  // namespace

Result<void> Config::validate() const {
  if (pools.empty() || pools.size() > detail::kMaxPoolClasses) {
    return invalid("config: between 1 and " + std::to_string(detail::kMaxPoolClasses) +
                   " pool size classes are needed, got " + std::to_string(pools.size()));
  }
  for (std::size_t k = 0; k < pools.size(); ++k) {
    if (pools[k].payload_bytes == 0 || pools[k].count == 0) {
      return invalid("config: pool class " + std::to_string(k) +
                     " needs a payload size and a count above 0");
    }
    if (k > 0 && pools[k].payload_bytes <= pools[k - 1].payload_bytes) {
      return invalid("config: pool classes must grow strictly in payload size");
    }
    if (pools[k].payload_bytes > (1U << 30)) {
      return invalid("config: pool class payload above 1 GiB");
    }
  }
  if (max_listeners == 0 || max_listeners > detail::kMaxListenerSlots) {
    return invalid("config: max_listeners must be 1.." + std::to_string(detail::kMaxListenerSlots) +
                   ", got " + std::to_string(max_listeners));
  }
  if (!is_pow2(ring_capacity) || ring_capacity < 2 || ring_capacity > (1U << 20)) {
    return invalid("config: ring_capacity must be a power of two in 2..1048576, got " +
                   std::to_string(ring_capacity));
  }
  if (trie_nodes < 2 || trie_nodes > (1U << 24)) {
    return invalid("config: trie_nodes must be 2..16777216, got " + std::to_string(trie_nodes));
  }
  if (subscriptions == 0 || subscriptions > (1U << 24)) {
    return invalid("config: subscriptions must be 1..16777216, got " +
                   std::to_string(subscriptions));
  }
  if (max_topic_bytes == 0 || max_topic_bytes > 65535) {
    return invalid("config: max_topic_bytes must be 1..65535, got " +
                   std::to_string(max_topic_bytes));
  }
  if (max_level_bytes == 0 || max_level_bytes > max_topic_bytes) {
    return invalid("config: max_level_bytes must be 1..max_topic_bytes, got " +
                   std::to_string(max_level_bytes));
  }
  if (max_publishers == 0 || max_publishers > 65536) {
    return invalid("config: max_publishers must be 1..65536, got " +
                   std::to_string(max_publishers));
  }
  if (max_processes == 0 || max_processes > detail::kMaxProcessEntries) {
    return invalid("config: max_processes must be 1.." +
                   std::to_string(detail::kMaxProcessEntries) + ", got " +
                   std::to_string(max_processes));
  }
  if ((mode & ~0777U) != 0 || (mode & 0600U) != 0600U) {
    return invalid("config: mode must be permission bits including owner read and write (0600)");
  }
  // Chunk references (offset / 64) stay below kDropMark, which ring entries
  // freed by an eviction carry instead.
  if (detail::compute_layout(*this).total / detail::kChunkUnit >= detail::kDropMark) {
    return invalid("config: the segment would exceed 240 GiB");
  }
  return {};
}

std::string resolve_bus_name(const std::string& name) {
  if (!name.empty()) {
    return name;
  }
  const char* env = std::getenv("IPCBUS_BUS");
  if (env != nullptr && *env != '\0') {
    return env;
  }
  return kDefaultBusName;
}

std::uint32_t layout_version() {
  return detail::kLayoutVersion;
}

namespace detail {

Layout compute_layout(const Config& c) {
  Layout l;
  std::uint64_t off = align_up(sizeof(SegmentHeader), kCacheLine);
  l.errlog_off = off;
  off += std::uint64_t{kErrorLogEntries} * sizeof(ErrorRecord);
  l.publisher_off = off;
  off += std::uint64_t{c.max_publishers} * sizeof(PublisherSlot);
  l.proc_off = off;
  off += align_up(std::uint64_t{c.max_processes} * sizeof(ProcessEntry), kCacheLine);
  l.listener_off = off;
  off += std::uint64_t{c.max_listeners} * sizeof(ListenerSlot);
  l.ring_off = off;
  off += align_up(std::uint64_t{c.max_listeners} * c.ring_capacity * sizeof(RingEntry), kCacheLine);
  l.node_stride = static_cast<std::uint32_t>(align_up(sizeof(TrieNode) + c.max_level_bytes, 8));
  l.node_off = off;
  off += align_up(std::uint64_t{c.trie_nodes} * l.node_stride, kCacheLine);
  std::uint64_t edges = 2;
  while (edges < 2ULL * c.trie_nodes) {
    edges <<= 1;
  }
  l.edge_count = static_cast<std::uint32_t>(edges);
  l.edge_off = off;
  off += align_up(edges * sizeof(std::uint64_t), kCacheLine);
  l.sub_off = off;
  off += align_up(std::uint64_t{c.subscriptions} * sizeof(SubRecord), kCacheLine);
  l.pool_count = static_cast<std::uint32_t>(c.pools.size());
  std::uint32_t words = 0;
  for (std::size_t k = 0; k < c.pools.size() && k < kMaxPoolClasses; ++k) {
    l.pools[k].bitmap_word = words;
    words += (c.pools[k].count + 63) / 64;
    l.chunk_count += c.pools[k].count;
  }
  l.bitmap_off = off;
  l.bitmap_words = words;
  off += align_up(std::uint64_t{words} * sizeof(std::uint64_t), kCacheLine);
  const std::uint64_t topic_area = align_up(c.max_topic_bytes, kCacheLine);
  for (std::size_t k = 0; k < c.pools.size() && k < kMaxPoolClasses; ++k) {
    PoolDesc& p = l.pools[k];
    p.payload_bytes = c.pools[k].payload_bytes;
    p.count = c.pools[k].count;
    p.stride = static_cast<std::uint32_t>(sizeof(ChunkHeader) + topic_area +
                                          align_up(p.payload_bytes, kCacheLine));
    p.offset = off;
    off += std::uint64_t{p.count} * p.stride;
  }
  l.total = align_up(off, 4096);
  return l;
}

std::uint64_t segment_size(const Config& config) {
  return compute_layout(config).total;
}

Config config_of(const SegmentHeader& h) {
  Config c;
  c.pools.clear();
  for (std::uint32_t k = 0; k < h.pool_count && k < kMaxPoolClasses; ++k) {
    c.pools.push_back({h.pools[k].payload_bytes, h.pools[k].count});
  }
  c.max_listeners = h.max_listeners;
  c.ring_capacity = h.ring_capacity;
  c.trie_nodes = h.trie_nodes;
  c.subscriptions = h.subscriptions;
  c.max_topic_bytes = h.max_topic_bytes;
  c.max_level_bytes = h.max_level_bytes;
  c.max_processes = h.max_processes;
  c.max_publishers = h.max_publishers;
  c.mode = h.mode;
  return c;
}

namespace {

std::uint64_t realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

void init_mutex(pthread_mutex_t* m) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  // Robust: a process that dies holding it does not block everyone; the
  // next locker gets EOWNERDEAD (see TrieWriter).
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(m, &attr);
  pthread_mutexattr_destroy(&attr);
}

}  // namespace

void init_segment(void* base, std::size_t bytes, const Config& c) {
  const Layout l = compute_layout(c);
  char* b = static_cast<char*>(base);
  auto* h = new (b) SegmentHeader{};
  h->layout_version = kLayoutVersion;
  h->header_bytes = sizeof(SegmentHeader);
  h->errlog_version = kErrorLogVersion;
  h->errlog_entries = kErrorLogEntries;
  h->errlog_off = l.errlog_off;
  h->publisher_off = l.publisher_off;
  h->max_publishers = c.max_publishers;
  h->fingerprint = layout_fingerprint();
  h->segment_bytes = bytes;
  h->creator_pid = getpid();
  h->pool_count = l.pool_count;
  h->created_realtime_ns = realtime_ns();
  h->max_listeners = c.max_listeners;
  h->ring_capacity = c.ring_capacity;
  h->trie_nodes = c.trie_nodes;
  h->subscriptions = c.subscriptions;
  h->max_topic_bytes = c.max_topic_bytes;
  h->max_level_bytes = c.max_level_bytes;
  h->max_processes = c.max_processes;
  h->mode = c.mode;
  h->edge_count = l.edge_count;
  h->node_stride = l.node_stride;
  for (std::uint32_t k = 0; k < kMaxPoolClasses; ++k) {
    h->pools[k] = l.pools[k];
  }
  h->proc_off = l.proc_off;
  h->listener_off = l.listener_off;
  h->ring_off = l.ring_off;
  h->node_off = l.node_off;
  h->edge_off = l.edge_off;
  h->sub_off = l.sub_off;
  h->bitmap_off = l.bitmap_off;
  h->bitmap_words = l.bitmap_words;
  h->chunk_count = l.chunk_count;
  init_mutex(&h->trie_mutex);
  IPCBUS_CRASH_POINT("create");
  // The segment is private to this process until the magic is stored below,
  // so plain (relaxed) initialisation suffices for everything before it.
  h->next_publisher_id.store(1, std::memory_order_relaxed);

  for (std::uint32_t i = 0; i < kErrorLogEntries; ++i) {
    new (b + l.errlog_off + i * sizeof(ErrorRecord)) ErrorRecord{};
  }
  for (std::uint32_t i = 0; i < c.max_publishers; ++i) {
    new (b + l.publisher_off + i * sizeof(PublisherSlot)) PublisherSlot{};
  }
  for (std::uint32_t i = 0; i < c.max_processes; ++i) {
    new (b + l.proc_off + i * sizeof(ProcessEntry)) ProcessEntry{};
  }
  for (std::uint32_t i = 0; i < c.max_listeners; ++i) {
    auto* s = new (b + l.listener_off + i * sizeof(ListenerSlot)) ListenerSlot{};
    s->allocated = c.ring_capacity;
    s->capacity.store(c.ring_capacity, std::memory_order_relaxed);
    s->subs_head.store(kNone, std::memory_order_relaxed);
    auto* ring = reinterpret_cast<RingEntry*>(b + l.ring_off) +
                 static_cast<std::uint64_t>(i) * c.ring_capacity;
    for (std::uint32_t k = 0; k < c.ring_capacity; ++k) {
      new (&ring[k]) RingEntry((static_cast<std::uint64_t>(k) << 32) | kNone);
    }
  }
  IPCBUS_CRASH_POINT("create");
  for (std::uint32_t i = 0; i < c.trie_nodes; ++i) {
    auto* n = new (b + l.node_off + std::uint64_t{i} * l.node_stride) TrieNode{};
    n->parent.store(kNone, std::memory_order_relaxed);
    n->plus_child.store(kNone, std::memory_order_relaxed);
    n->hash_child.store(kNone, std::memory_order_relaxed);
    n->subs_head.store(kNone, std::memory_order_relaxed);
    n->next_free.store(i + 1 < c.trie_nodes ? i + 1 : kNone, std::memory_order_relaxed);
  }
  reinterpret_cast<TrieNode*>(b + l.node_off)->kind.store(kNodeRoot, std::memory_order_relaxed);
  h->node_free_head.store(c.trie_nodes > 1 ? 1 : kNone, std::memory_order_relaxed);
  h->nodes_used.store(1, std::memory_order_relaxed);
  for (std::uint32_t i = 0; i < l.edge_count; ++i) {
    new (b + l.edge_off + i * sizeof(std::uint64_t)) std::atomic<std::uint64_t>(0);
  }
  for (std::uint32_t i = 0; i < c.subscriptions; ++i) {
    auto* s = new (b + l.sub_off + std::uint64_t{i} * sizeof(SubRecord)) SubRecord{};
    s->next_free.store(i + 1 < c.subscriptions ? i + 1 : kNone, std::memory_order_relaxed);
  }
  h->sub_free_head.store(0, std::memory_order_relaxed);
  IPCBUS_CRASH_POINT("create");

  const std::uint64_t topic_area = align_up(c.max_topic_bytes, kCacheLine);
  auto* bitmap = reinterpret_cast<std::atomic<std::uint64_t>*>(b + l.bitmap_off);
  for (std::uint32_t w = 0; w < l.bitmap_words; ++w) {
    new (&bitmap[w]) std::atomic<std::uint64_t>(0);
  }
  for (std::uint32_t k = 0; k < l.pool_count; ++k) {
    const PoolDesc& p = l.pools[k];
    for (std::uint32_t j = 0; j < p.count; ++j) {
      const std::uint64_t off = p.offset + std::uint64_t{j} * p.stride;
      auto* ch = new (b + off) ChunkHeader{};
      ch->pool_class = k;
      ch->self_ref = static_cast<std::uint32_t>(off / kChunkUnit);
      ch->index = p.bitmap_word * 64 + j;
      ch->capacity = p.payload_bytes;
      ch->payload_offset = static_cast<std::uint32_t>(sizeof(ChunkHeader) + topic_area);
      bitmap[ch->index / 64].store(
          bitmap[ch->index / 64].load(std::memory_order_relaxed) | (1ULL << (ch->index % 64)),
          std::memory_order_relaxed);
    }
  }

  IPCBUS_CRASH_POINT("create");
  // SYNC(ready): release pairs with the acquire load of the magic in
  // map_bus(): an opener that sees the magic sees the whole initialised
  // segment. Zeroed memory (magic 0) reads as "not ready yet".
  h->magic.store(kMagic, std::memory_order_release);
}

Result<void> validate_header(const SegmentHeader& h, std::uint64_t mapped_bytes) {
  // acquire: SYNC(ready), see init_segment().
  const std::uint64_t magic = h.magic.load(std::memory_order_acquire);
  if (magic != kMagic) {
    return Error{Errc::kForeignSegment,
                 "segment is not an ipcbus segment (magic " + std::to_string(magic) + ")"};
  }
  if (h.layout_version != kLayoutVersion) {
    return Error{Errc::kLayoutMismatch,
                 "segment has layout version " + std::to_string(h.layout_version) +
                     " but this build reads layout version " + std::to_string(kLayoutVersion)};
  }
  if (h.fingerprint != layout_fingerprint() || h.header_bytes != sizeof(SegmentHeader)) {
    return Error{Errc::kLayoutMismatch,
                 "segment has layout version " + std::to_string(h.layout_version) +
                     " with structure fingerprint " + std::to_string(h.fingerprint) +
                     " but this build has fingerprint " + std::to_string(layout_fingerprint()) +
                     " (another build of the same version)"};
  }
  if (h.pool_count == 0 || h.pool_count > kMaxPoolClasses) {
    return Error{Errc::kForeignSegment,
                 "segment header is corrupt: pool count " + std::to_string(h.pool_count)};
  }
  const Config c = config_of(h);
  if (auto ok = c.validate(); !ok) {
    return Error{Errc::kForeignSegment, "segment header is corrupt: " + ok.error().message};
  }
  const Layout l = compute_layout(c);
  bool same = l.total == h.segment_bytes && l.proc_off == h.proc_off &&
              l.listener_off == h.listener_off && l.ring_off == h.ring_off &&
              l.node_off == h.node_off && l.edge_off == h.edge_off && l.sub_off == h.sub_off &&
              l.publisher_off == h.publisher_off && l.errlog_off == h.errlog_off &&
              l.bitmap_off == h.bitmap_off && l.bitmap_words == h.bitmap_words &&
              l.chunk_count == h.chunk_count && h.errlog_entries == kErrorLogEntries &&
              h.errlog_version == kErrorLogVersion && l.node_stride == h.node_stride &&
              l.edge_count == h.edge_count;
  for (std::uint32_t k = 0; same && k < l.pool_count; ++k) {
    same = l.pools[k].offset == h.pools[k].offset && l.pools[k].stride == h.pools[k].stride &&
           l.pools[k].bitmap_word == h.pools[k].bitmap_word;
  }
  if (!same) {
    return Error{Errc::kForeignSegment,
                 "segment header is corrupt: its offsets do not follow from its sizes"};
  }
  if (h.segment_bytes > mapped_bytes) {
    return Error{Errc::kForeignSegment, "segment is " + std::to_string(mapped_bytes) +
                                            " bytes but its header says " +
                                            std::to_string(h.segment_bytes)};
  }
  return {};
}

void record_error_at(ErrorRecord* log, std::uint32_t entries, std::string_view kind,
                     std::string_view text, std::atomic<std::uint64_t>* dropped) {
  kind = kind.substr(0, sizeof(ErrorRecord::kind) - 1);
  text = text.substr(0, sizeof(ErrorRecord::text));
  std::uint64_t key = 1469598103934665603ULL;
  for (std::string_view part : {kind, std::string_view("\0", 1), text}) {
    for (char ch : part) {
      key = (key ^ static_cast<unsigned char>(ch)) * 1099511628211ULL;
    }
  }
  key |= 1;  // never 0, the key of an empty record
  const std::uint64_t now = realtime_ns();
  for (std::uint32_t i = 0; i < entries; ++i) {
    ErrorRecord& r = log[i];
    // acquire: pairs with the release store of state 2 below; the record's
    // text is complete once we see it ready.
    std::uint32_t state = r.state.load(std::memory_order_acquire);
    if (state == 2 && r.key.load(std::memory_order_relaxed) == key) {
      // relaxed: counters and times of a report.
      r.count.fetch_add(1, std::memory_order_relaxed);
      r.last_realtime_ns.store(now, std::memory_order_relaxed);
      return;
    }
    if (state == 0 &&
        // acq_rel: one writer wins the empty record.
        r.state.compare_exchange_strong(state, 1, std::memory_order_acq_rel)) {
      std::memcpy(r.kind, kind.data(), kind.size());
      r.kind[kind.size()] = '\0';
      std::memcpy(r.text, text.data(), text.size());
      r.text_len = static_cast<std::uint32_t>(text.size());
      // relaxed: published by the release store of the state.
      r.key.store(key, std::memory_order_relaxed);
      r.count.store(1, std::memory_order_relaxed);
      r.first_realtime_ns.store(now, std::memory_order_relaxed);
      r.last_realtime_ns.store(now, std::memory_order_relaxed);
      // release: readers that see state 2 see the whole record.
      r.state.store(2, std::memory_order_release);
      return;
    }
  }
  if (dropped != nullptr) {
    // relaxed: a counter.
    dropped->fetch_add(1, std::memory_order_relaxed);
  }
}

Result<std::string> shm_name(const std::string& name) {
  if (name.empty() || name.size() > 200) {
    return Error{Errc::kInvalidArgument, "bus name must be 1..200 characters"};
  }
  for (char ch : name) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.';
    if (!ok) {
      return Error{Errc::kInvalidArgument,
                   "bus name '" + name + "' may only hold letters, digits, '-', '_' and '.'"};
    }
  }
  return "ipcbus." + name;
}

namespace {

// Fault every page of the mapping in now, so that the first events do not pay
// for page faults (pre-warming). Failure is harmless: pages fault on use.
void prefault(void* base, std::uint64_t bytes) {
  if (madvise(base, bytes, MADV_POPULATE_WRITE) == 0) {
    return;
  }
  // Older kernels: touch one byte per page. relaxed: a read for its side
  // effect only; the byte may be in use by other processes.
  auto* p = static_cast<char*>(base);
  for (std::uint64_t off = 0; off < bytes; off += 4096) {
    (void)std::atomic_ref<char>(p[off]).load(std::memory_order_relaxed);
  }
}

struct Holder {
  bip::shared_memory_object shm;
  bip::mapped_region region;
};

Error system_error(const std::string& what, const bip::interprocess_exception& e) {
  const int err = e.get_native_error();
  if (err == EACCES || err == EPERM) {
    return Error{Errc::kPermissionDenied, what + ": permission denied"};
  }
  return Error{Errc::kSystem, what + ": " + e.what()};
}

// "user root (uid 0)", or "uid 1234" when the user has no name.
std::string user_text(uid_t uid) {
  passwd pw{};
  passwd* found = nullptr;
  char buf[1024];
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found != nullptr) {
    return "user " + std::string(found->pw_name) + " (uid " + std::to_string(uid) + ")";
  }
  return "uid " + std::to_string(uid);
}
std::string group_text(gid_t gid) {
  group gr{};
  group* found = nullptr;
  char buf[4096];
  if (getgrgid_r(gid, &gr, buf, sizeof buf, &found) == 0 && found != nullptr) {
    return "group " + std::string(found->gr_name) + " (gid " + std::to_string(gid) + ")";
  }
  return "gid " + std::to_string(gid);
}

// Who owns the segment and by which mode, for refusals:
// "owned by user root (uid 0), group root (gid 0), mode 0600".
std::string ownership_text(const struct stat& st) {
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  return "owned by " + user_text(st.st_uid) + ", " + group_text(st.st_gid) + ", mode " + mode;
}

// The refusal of an open that the segment's permissions forbid, naming the
// owner and mode and who we are.
Error access_denied(const std::string& shm) {
  struct stat st {};
  const std::string path = "/dev/shm/" + shm;
  const std::string owner = stat(path.c_str(), &st) == 0 ? ownership_text(st) : "of unknown owner";
  return Error{Errc::kPermissionDenied,
               "bus segment " + path + " is " + owner + ", which does not let this process (" +
                   user_text(geteuid()) + ", " + group_text(getegid()) +
                   ") read and write it; to share a bus, create it with a group mode such as "
                   "0660 and a group both users are members of"};
}

// Give the segment's file to config.group, when one is named.
Result<void> give_to_group(int fd, const std::string& shm, const Config& config) {
  if (config.group.empty()) {
    return {};
  }
  // getgrnam_r, not getgrnam: attach may run in several threads at once.
  std::vector<char> buffer(std::size_t{16} * 1024);
  group entry{};
  group* g = nullptr;
  while (getgrnam_r(config.group.c_str(), &entry, buffer.data(), buffer.size(), &g) == ERANGE &&
         buffer.size() < std::size_t{1024} * 1024) {
    buffer.resize(buffer.size() * 2);
  }
  if (g == nullptr) {
    // A bad value of the configuration, not a lack of rights.
    return Error{Errc::kInvalidArgument, "cannot give bus segment /dev/shm/" + shm + " to group '" +
                                             config.group + "': no such group"};
  }
  if (fchown(fd, static_cast<uid_t>(-1), g->gr_gid) != 0) {
    return Error{Errc::kPermissionDenied, "cannot give bus segment /dev/shm/" + shm +
                                              " to group '" + config.group +
                                              "': " + std::generic_category().message(errno)};
  }
  // fchown may clear set-id bits only; the mode stays as created.
  return {};
}

// Size, reserve, map and initialise the segment of `holder` for `config`, up
// to and including the magic. The caller holds the init lock. `zero`: clear
// the mapping first (a dead creator's leftovers that could not be punched out).
Result<std::uint64_t> initialise(Holder& holder, const std::string& shm, const Config& config,
                                 bool zero) {
  const std::uint64_t bytes = segment_size(config);
  const int fd = holder.shm.get_mapping_handle().handle;
  try {
    holder.shm.truncate(static_cast<bip::offset_t>(bytes));
    IPCBUS_CRASH_POINT("create");
    // Reserve every page now: on a full /dev/shm a later first touch would
    // raise SIGBUS in some process instead of an error here.
    const int rc = posix_fallocate(fd, 0, static_cast<off_t>(bytes));
    if (rc != 0) {
      return Error{rc == ENOSPC ? Errc::kNoSpace : Errc::kSystem,
                   "cannot reserve " + std::to_string(bytes) + " bytes for bus segment /dev/shm/" +
                       shm + ": " + std::generic_category().message(rc)};
    }
    IPCBUS_CRASH_POINT("create");
    holder.region = bip::mapped_region(holder.shm, bip::read_write, 0, bytes);
  } catch (const bip::interprocess_exception& e) {
    return Error{Errc::kSystem, "cannot size bus segment /dev/shm/" + shm + " to " +
                                    std::to_string(bytes) + " bytes: " + e.what()};
  }
  if (zero) {
    // Openers only read the magic, which is 0 and stays 0 here.
    std::memset(holder.region.get_address(), 0, bytes);
    IPCBUS_CRASH_POINT("create");
  }
  prefault(holder.region.get_address(), bytes);
  init_segment(holder.region.get_address(), bytes, config);
  return bytes;
}

Result<Mapping> create_bus(const std::string& shm, const Config& config) {
  if (auto ok = config.validate(); !ok) {
    return ok.error();
  }
  auto holder = std::make_shared<Holder>();
  try {
    holder->shm = bip::shared_memory_object(bip::create_only, shm.c_str(), bip::read_write,
                                            bip::permissions(static_cast<int>(config.mode)));
  } catch (const bip::interprocess_exception& e) {
    if (e.get_error_code() == bip::already_exists_error) {
      return Error{Errc::kNotFound, "exists"};  // the caller opens it instead
    }
    return system_error("cannot create bus segment /dev/shm/" + shm, e);
  }
  IPCBUS_CRASH_POINT("create");
  const int fd = holder->shm.get_mapping_handle().handle;
  // SYNC(init): the init lock before anything else, so that openers take us
  // for alive until the magic is out. An opener that came between the create
  // and this lock took us for dead and recovers the segment itself (it holds
  // the lock, or sized the file before it let go): open it as they do.
  // LIMIT: so, rarely, an exclusive create loses to an opener of its own
  // name and reports kAlreadyExists.
  struct stat st {};
  if (!lock_byte(fd, kInitLockByte)) {
    return Error{Errc::kNotFound, "exists"};
  }
  if (fstat(fd, &st) != 0 || st.st_size != 0) {
    unlock_byte(fd, kInitLockByte);
    return Error{Errc::kNotFound, "exists"};
  }
  IPCBUS_CRASH_POINT("create");
  if (auto ok = give_to_group(fd, shm, config); !ok) {
    bip::shared_memory_object::remove(shm.c_str());
    return ok.error();
  }
  auto bytes = initialise(*holder, shm, config, /*zero=*/false);
  if (!bytes) {
    bip::shared_memory_object::remove(shm.c_str());
    return bytes.error();
  }
  IPCBUS_CRASH_POINT("create");
  // After the magic's release store: an opener that takes the lock now
  // finds the magic and opens as usual.
  unlock_byte(fd, kInitLockByte);
  Mapping m;
  m.base = holder->region.get_address();
  m.bytes = *bytes;
  m.created = true;
  m.fd = fd;
  m.holder = std::move(holder);
  return m;
}

// Say in the segment's own error log that a process of another layout was
// refused, when the log's format (which outlives layout versions) is ours.
void note_refusal(Holder& holder, const SegmentHeader& h, std::uint64_t size,
                  const std::string& why) {
  const std::uint64_t end = h.errlog_off + std::uint64_t{h.errlog_entries} * sizeof(ErrorRecord);
  if (h.errlog_version != kErrorLogVersion || h.errlog_entries == 0 || h.errlog_entries > 4096 ||
      h.errlog_off < 32 || end > size) {
    return;
  }
  try {
    bip::mapped_region region(holder.shm, bip::read_write, 0, end);
    auto* log =
        reinterpret_cast<ErrorRecord*>(static_cast<char*>(region.get_address()) + h.errlog_off);
    record_error_at(log, h.errlog_entries, "attach-refused",
                    "pid " + std::to_string(getpid()) + ": " + why, nullptr);
  } catch (const bip::interprocess_exception&) {
    // read-only access or a vanished segment: nothing to record.
  }
}

// The segment's creator died before it stored the magic, and we hold the
// init lock, so no one else is writing it: initialise it afresh for our own
// config, as a create would. Returns the mapping, or an empty one when the
// magic turned out to be there after all (the creator finished just before
// we took the lock).
Result<Mapping> recover(std::shared_ptr<Holder>& holder, const std::string& shm,
                        const Config& config) {
  if (auto ok = config.validate(); !ok) {
    return ok.error();
  }
  const int fd = holder->shm.get_mapping_handle().handle;
  bip::offset_t size = 0;
  holder->shm.get_size(size);
  std::int32_t dead = 0;
  if (size >= static_cast<bip::offset_t>(sizeof(SegmentHeader))) {
    bip::mapped_region probe(holder->shm, bip::read_only, 0, sizeof(SegmentHeader));
    const auto* h = static_cast<const SegmentHeader*>(probe.get_address());
    // acquire: SYNC(ready), see init_segment().
    if (h->magic.load(std::memory_order_acquire) != 0) {
      return Mapping{};
    }
    dead = h->creator_pid;  // plain: its writer is dead; 0 if it got no further
  }
  // Zero what the dead creator left. Punching the pages out keeps the file's
  // size, so an opener probing the header meanwhile reads zeros, not SIGBUS.
  bool zero = false;
  if (size > 0) {
    zero = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, size) != 0;
    IPCBUS_CRASH_POINT("create");
  }
  // The dead creator's mode may not be ours; keep its mode if we may not change it.
  (void)fchmod(fd, static_cast<mode_t>(config.mode));
  if (auto ok = give_to_group(fd, shm, config); !ok) {
    return ok.error();
  }
  auto bytes = initialise(*holder, shm, config, zero);
  if (!bytes) {
    return bytes.error();
  }
  Mapping m;
  m.base = holder->region.get_address();
  m.bytes = *bytes;
  m.created = true;
  m.fd = fd;
  const std::string who = dead > 0 ? "pid " + std::to_string(dead) : "(pid unknown)";
  m.recovered = "creator " + who + " died mid-init; redone by pid " + std::to_string(getpid());
  m.holder = std::move(holder);
  return m;
}

Result<Mapping> open_existing(const std::string& shm, const OpenOptions& options) {
  const std::chrono::milliseconds ready_timeout = options.ready_timeout;
  auto holder = std::make_shared<Holder>();
  try {
    holder->shm = bip::shared_memory_object(bip::open_only, shm.c_str(), bip::read_write);
  } catch (const bip::interprocess_exception& e) {
    if (e.get_error_code() == bip::not_found_error) {
      return Error{Errc::kNotFound, "no bus segment /dev/shm/" + shm};
    }
    if (e.get_native_error() == EACCES || e.get_native_error() == EPERM) {
      return access_denied(shm);
    }
    return system_error("cannot open bus segment /dev/shm/" + shm, e);
  }
  const int fd = holder->shm.get_mapping_handle().handle;
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    return Error{Errc::kSystem, "fstat: " + std::generic_category().message(errno)};
  }
  if (st.st_uid != geteuid() && !options.allow_other_owner) {
    return Error{Errc::kPermissionDenied,
                 "bus segment /dev/shm/" + shm + " is " + ownership_text(st) + ", not by this " +
                     user_text(geteuid()) +
                     "; opening another user's bus must be allowed explicitly (allow_other_owner)"};
  }
  // Only an opener that may create may recover a segment whose creator died;
  // one that only looks never writes.
  const bool may_recover = options.create && !options.observe_only;
  // Wait until the creator has sized the segment and stored the magic.
  const auto deadline = std::chrono::steady_clock::now() + ready_timeout;
  std::chrono::steady_clock::time_point unlocked_since{};  // init lock seen free since
  for (;;) {
    bip::offset_t size = 0;
    holder->shm.get_size(size);
    if (size > 0 && size < static_cast<bip::offset_t>(sizeof(SegmentHeader))) {
      // A creator sizes the file in one step, from 0 to the whole segment:
      // a file in between was never one of ours, and recovering it as a
      // half-made bus would overwrite someone else's data.
      return Error{Errc::kForeignSegment,
                   "/dev/shm/" + shm + " is " + std::to_string(size) +
                       " bytes, smaller than any bus segment's header (" +
                       std::to_string(sizeof(SegmentHeader)) +
                       "): not an ipcbus segment; remove it or use another bus name"};
    }
    if (size >= static_cast<bip::offset_t>(sizeof(SegmentHeader))) {
      bip::mapped_region probe(holder->shm, bip::read_only, 0, sizeof(SegmentHeader));
      const auto* h = static_cast<const SegmentHeader*>(probe.get_address());
      // acquire: SYNC(ready), see init_segment().
      const std::uint64_t magic = h->magic.load(std::memory_order_acquire);
      if (magic != 0) {
        if (auto ok = validate_header(*h, static_cast<std::uint64_t>(size)); !ok) {
          if (ok.error().code == Errc::kLayoutMismatch) {
            note_refusal(*holder, *h, static_cast<std::uint64_t>(size), ok.error().message);
          }
          return ok.error();
        }
        const std::uint64_t bytes = h->segment_bytes;
        holder->region = bip::mapped_region(holder->shm, bip::read_write, 0, bytes);
        prefault(holder->region.get_address(), bytes);
        // Past the header, check every table before anything follows it:
        // tools look at buses they did not make, and an attach cleans up
        // after dead processes, which walks the tables too.
        const auto* base = static_cast<const char*>(holder->region.get_address());
        if (auto ok =
                validate_structure(*reinterpret_cast<const SegmentHeader*>(base), base, bytes);
            !ok) {
          return ok.error();
        }
        Mapping m;
        m.base = holder->region.get_address();
        m.bytes = bytes;
        m.fd = fd;
        m.holder = std::move(holder);
        return m;
      }
    }
    // No magic yet. SYNC(init): a live creator holds the init lock; if we
    // can take it, the creator is gone and only we may write the segment.
    if (may_recover && lock_byte(fd, kInitLockByte)) {
      auto recovered = recover(holder, shm, options.config);
      if (recovered && recovered->base != nullptr) {
        IPCBUS_CRASH_POINT("create");
      }
      // After the magic's release store, as the creator does.
      unlock_byte(fd, kInitLockByte);
      if (!recovered || recovered->base != nullptr) {
        return recovered;
      }
      continue;  // the creator finished after all: open it as usual
    }
    // A creator holds the init lock from its first system call after the
    // create on; one that has not held it for 100 ms is dead, and an opener
    // that may not recover need not wait out the whole ready timeout.
    const auto now = std::chrono::steady_clock::now();
    if (!byte_locked(fd, kInitLockByte)) {
      if (unlocked_since == std::chrono::steady_clock::time_point{}) {
        unlocked_since = now;
      }
    } else {
      unlocked_since = {};
    }
    const bool creator_dead = unlocked_since != std::chrono::steady_clock::time_point{} &&
                              now - unlocked_since >= std::chrono::milliseconds(100);
    if (now >= deadline || (!may_recover && creator_dead)) {
      if (!byte_locked(fd, kInitLockByte)) {
        return Error{Errc::kSegmentNotReady,
                     "bus segment /dev/shm/" + shm +
                         " exists but its creator died before it finished initialising it; "
                         "an open that may create the bus (or the agent) recovers it"};
      }
      return Error{Errc::kSegmentNotReady, "bus segment /dev/shm/" + shm +
                                               " exists but its creator, still running, did not "
                                               "finish initialising it within " +
                                               std::to_string(ready_timeout.count()) + " ms"};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace

Result<Mapping> map_bus(const std::string& name, const OpenOptions& options) {
  auto shm = shm_name(name);
  if (!shm) {
    return shm.error();
  }
  try {
    if (options.create && !options.observe_only) {
      auto created = create_bus(*shm, options.config);
      if (created || created.error().code != Errc::kNotFound) {
        return created;
      }
      if (options.exclusive) {
        return Error{Errc::kAlreadyExists, "bus segment /dev/shm/" + *shm + " already exists"};
      }
    }
    return open_existing(*shm, options);
  } catch (const bip::interprocess_exception& e) {
    return system_error("bus segment /dev/shm/" + *shm, e);
  } catch (const std::exception& e) {
    return Error{Errc::kSystem, std::string("bus segment: ") + e.what()};
  }
}

}  // namespace detail
}  // namespace ipcbus
