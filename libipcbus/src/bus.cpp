// bus.cpp: BusCore (one process's attachment to a segment), process entries,
// claiming and closing listener slots, and Bus::inspect for the tools.
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "core.hpp"
#include "crash.hpp"
#include "process.hpp"
#include "segment.hpp"

namespace ipcbus {

namespace detail {

spdlog::logger& log() {
  static std::shared_ptr<spdlog::logger> logger = [] {
    if (auto existing = spdlog::get("ipcbus")) {
      return existing;
    }
    auto l = spdlog::stderr_color_mt("ipcbus");
    const char* level = std::getenv("IPCBUS_LOG_LEVEL");
    l->set_level(level != nullptr ? spdlog::level::from_str(level) : spdlog::level::warn);
    return l;
  }();
  return *logger;
}

BusCore::BusCore(std::string name, void* base, std::size_t bytes, std::uint32_t process_index,
                 int fd)
    : name_(std::move(name)),
      base_(static_cast<char*>(base)),
      bytes_(bytes),
      header_(static_cast<SegmentHeader*>(base)),
      listeners_(reinterpret_cast<ListenerSlot*>(base_ + header_->listener_off)),
      rings_(reinterpret_cast<RingEntry*>(base_ + header_->ring_off)),
      nodes_(base_ + header_->node_off),
      edges_(reinterpret_cast<std::atomic<std::uint64_t>*>(base_ + header_->edge_off)),
      subs_(reinterpret_cast<SubRecord*>(base_ + header_->sub_off)),
      bitmap_(reinterpret_cast<std::atomic<std::uint64_t>*>(base_ + header_->bitmap_off)),
      pool_count_(header_->pool_count),
      process_index_(kNone),
      taker_(0),
      fd_(fd),
      pid_ns_(own_pid_namespace()),
      pid_(getpid()),
      config_(config_of(*header_)) {
  for (std::uint32_t k = 0; k < kMaxPoolClasses; ++k) {
    pools_[k] = header_->pools[k];
  }
  payload_skip_ = static_cast<std::uint32_t>(
      sizeof(ChunkHeader) + (std::uint64_t{header_->max_topic_bytes} + 63) / 64 * 64);
  set_process(process_index);
}

void BusCore::set_process(std::uint32_t index) {
  process_index_ = index;
  // A core without an entry (tools, tests) takes chunks under a taker no
  // entry has, which crash cleanup leaves alone.
  taker_ = index == kNone ? kTakerBits : taker_word(index);
  stash_ = index == kNone ? 0 : stash_word(index);
  for (std::uint32_t k = 0; k < kMaxPoolClasses; ++k) {
    // A process may keep a 16th of a pool cached, up to kCacheSlots chunks;
    // pools of fewer than 16 keep none.
    cache_limit_[k] =
        index == kNone || k >= pool_count_ ? 0 : std::min(kCacheSlots, pools_[k].count / 16);
    cache_[k] = index == kNone ? nullptr : process(index).cache[k];
  }
}

void BusCore::cache_flush(std::uint32_t k) {
  if (cache_[k] == nullptr) {
    return;
  }
  std::uint32_t word = kNone;
  std::uint64_t bits = 0;
  for (std::uint32_t i = 0; i < kCacheSlots; ++i) {
    std::atomic<std::uint32_t>& slot = cache_[k][i];
    // relaxed: the references are hints; the holders CAS decides.
    if (slot.load(std::memory_order_relaxed) == 0) {
      continue;
    }
    // relaxed: as above.
    const std::uint32_t ref = slot.exchange(0, std::memory_order_relaxed);
    if (ref == 0) {
      continue;
    }
    ChunkHeader* c = chunk(ref);
    std::uint64_t expected = stash_;
    // release: SYNC(pool) with the acquire CAS of the chunk's next taker.
    if (!c->holders.compare_exchange_strong(expected, 0, std::memory_order_release,
                                            std::memory_order_relaxed)) {
      continue;  // stolen meanwhile
    }
    IPCBUS_CRASH_POINT("drop");
    if (c->index / 64 != word) {
      if (bits != 0) {
        // relaxed: a hint, as in mark_free().
        bitmap_[word].fetch_or(bits, std::memory_order_relaxed);
      }
      word = c->index / 64;
      bits = 0;
    }
    bits |= 1ULL << (c->index % 64);
  }
  if (bits != 0) {
    // relaxed: a hint, as in mark_free().
    bitmap_[word].fetch_or(bits, std::memory_order_relaxed);
  }
}

namespace {
// The chunk of pool p that reference `ref` names, or nullptr.
ChunkHeader* pool_chunk(const BusCore& c, const PoolDesc& p, std::uint32_t ref) {
  const std::uint64_t at = std::uint64_t{ref} * kChunkUnit;
  if (ref == 0 || at < p.offset || (at - p.offset) % p.stride != 0 ||
      (at - p.offset) / p.stride >= p.count) {
    return nullptr;
  }
  return c.chunk(ref);
}
}  // namespace

ChunkHeader* BusCore::steal_chunk(std::uint32_t k) {
  const PoolDesc& p = pools_[k];
  for (std::uint32_t e = 0; e < header_->max_processes; ++e) {
    ProcessEntry& pe = process(e);
    // relaxed: a free entry's cache was emptied; a stale look costs a miss.
    if (pe.state.load(std::memory_order_relaxed) == kProcFree) {
      continue;
    }
    for (std::uint32_t i = 0; i < kCacheSlots; ++i) {
      // relaxed: a hint; the holders CAS below decides.
      ChunkHeader* c = pool_chunk(*this, p, pe.cache[k][i].load(std::memory_order_relaxed));
      if (c == nullptr) {
        continue;
      }
      // relaxed: as above.
      std::uint64_t hw = c->holders.load(std::memory_order_relaxed);
      // acquire: SYNC(pool) with the release CAS that cached the chunk.
      if (is_cached(hw) && c->holders.compare_exchange_strong(hw, taker_, std::memory_order_acquire,
                                                              std::memory_order_relaxed)) {
        IPCBUS_CRASH_POINT("take");
        return c;
      }
    }
  }
  return nullptr;
}

std::uint32_t BusCore::cached_chunks(std::uint32_t k) const {
  const PoolDesc& p = pools_[k];
  std::uint32_t n = 0;
  for (std::uint32_t e = 0; e < header_->max_processes; ++e) {
    const ProcessEntry& pe = process(e);
    for (std::uint32_t i = 0; i < kCacheSlots; ++i) {
      // relaxed, for both: a gauge.
      const ChunkHeader* c = pool_chunk(*this, p, pe.cache[k][i].load(std::memory_order_relaxed));
      if (c != nullptr && is_cached(c->holders.load(std::memory_order_relaxed)) &&
          (bitmap_[c->index / 64].load(std::memory_order_relaxed) & (1ULL << (c->index % 64))) ==
              0) {
        ++n;
      }
    }
  }
  return n;
}

BusCore::~BusCore() {
  if (process_index_ == kNone) {
    return;
  }
  const std::uint32_t index = process_index_;
  // Slots parked for samples: a Sample may not outlive the bus, so none is
  // left to come back; free them before the entry goes.
  for (std::uint32_t l = 0; l < header_->max_listeners; ++l) {
    finish_parked(l);
  }
  deregister_process();
  log().debug("detached bus={} pid={} entry={}", name_, pid_, index);
}

void BusCore::record_error(std::string_view kind, std::string_view text) {
  record_error_at(error_log(), header_->errlog_entries, kind, text, &header_->errlog_dropped);
}

PublisherSlot* BusCore::claim_publisher_slot(std::uint32_t id) {
  PublisherSlot* slots = publisher_slots();
  for (std::uint32_t i = 0; i < header_->max_publishers; ++i) {
    std::uint32_t expected = 0;
    // acq_rel: one publisher wins the slot; acquire sees the last owner's reset.
    if (slots[i].state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
      slots[i].id = id;
      slots[i].pid = pid_;
      slots[i].process = process_index_;
      // relaxed, for the journal: a fresh slot is outside any fan-out.
      slots[i].active.store(0, std::memory_order_relaxed);
      slots[i].pending.store(0, std::memory_order_relaxed);
      slots[i].pop_pos.store(0, std::memory_order_relaxed);
      // relaxed: counters for tools.
      slots[i].published.store(0, std::memory_order_relaxed);
      slots[i].bytes.store(0, std::memory_order_relaxed);
      return &slots[i];
    }
  }
  return nullptr;
}

Result<std::uint32_t> BusCore::claim_listener(const ListenerOptions& o, std::uint32_t* gen) {
  const std::uint32_t allocated = header_->ring_capacity;
  std::uint32_t cap = o.capacity != 0 ? o.capacity : (o.adaptive ? 64 : allocated);
  std::uint32_t pow2 = 2;
  while (pow2 < cap && pow2 < allocated) {
    pow2 <<= 1;
  }
  cap = std::min(pow2, allocated);
  if (o.high_water_percent == 0 || o.high_water_percent > 100) {
    return Error{Errc::kInvalidArgument, "high_water_percent must be 1..100"};
  }
  for (std::uint32_t i = 0; i < header_->max_listeners; ++i) {
    ListenerSlot& s = listeners_[i];
    // acquire: pairs with the release CAS to Free in close_listener(): the
    // drained ring and reset counters of the last owner are visible.
    std::uint64_t w = s.state.load(std::memory_order_acquire);
    while (state_bits(w) == static_cast<std::uint64_t>(ListenerState::kFree)) {
      const std::uint32_t g = generation_of(w) + 1;
      const std::uint64_t want =
          make_state_word(g, static_cast<std::uint64_t>(ListenerState::kActive)) |
          owner_bits(process_index_);
      // acq_rel: acquire as above; release orders the claim before the
      // option writes below (publishers only reach them through a route,
      // which the trie version publishes later).
      if (s.state.compare_exchange_weak(w, want, std::memory_order_acq_rel,
                                        std::memory_order_acquire)) {
        // relaxed for every option store: published by the trie's release
        // store when the listener first subscribes.
        s.capacity.store(cap, std::memory_order_relaxed);
        s.high_water_percent = o.high_water_percent;
        s.min_capacity = std::max<std::uint32_t>(2, std::min(o.min_capacity, cap));
        s.grow_after = std::max<std::uint32_t>(1, o.grow_after);
        s.overflow = static_cast<std::uint8_t>(o.overflow);
        s.wait = static_cast<std::uint8_t>(o.wait);
        s.adaptive = o.adaptive ? 1 : 0;
        s.owner_pid = pid_;
        s.owner_process = process_index_;
        s.quiet_ns = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(o.quiet_period).count());
        s.tail_base = s.tail.load(std::memory_order_relaxed);
        s.received.store(0, std::memory_order_relaxed);
        s.dropped_newest.store(0, std::memory_order_relaxed);
        s.dropped_oldest.store(0, std::memory_order_relaxed);
        s.block_timeouts.store(0, std::memory_order_relaxed);
        s.high_water_signals.store(0, std::memory_order_relaxed);
        s.wakeups.store(0, std::memory_order_relaxed);
        s.hw_since_change.store(0, std::memory_order_relaxed);
        s.last_high_water_ns.store(0, std::memory_order_relaxed);
        s.last_resize_ns.store(monotonic_ns(), std::memory_order_relaxed);
        s.sleeping.store(0, std::memory_order_relaxed);
        for (auto& bucket : s.latency) {
          bucket.store(0, std::memory_order_relaxed);
        }
        s.histogram_on.store(o.latency_histogram ? 1 : 0, std::memory_order_relaxed);
        if (process_index_ != kNone) {
          auto* table = reinterpret_cast<ProcessEntry*>(base_ + header_->proc_off);
          // relaxed: a gauge.
          table[process_index_].listeners.fetch_add(1, std::memory_order_relaxed);
        }
        *gen = g;
        log().debug("listener claimed bus={} slot={} gen={} capacity={} overflow={}", name_, i, g,
                    cap, overflow_name(o.overflow));
        return i;
      }
    }
  }
  return Error{Errc::kListenerTableFull, "all " + std::to_string(header_->max_listeners) +
                                             " listener slots are in use (max_listeners)"};
}

bool BusCore::close_listener(std::uint32_t index, std::uint32_t generation, bool owner_dead,
                             std::uint64_t* dropped_out) {
  ListenerSlot& s = listeners_[index];
  // acquire: see the state as the last transition left it.
  std::uint64_t w = s.state.load(std::memory_order_acquire);
  for (;;) {
    if (generation_of(w) != generation ||
        state_bits(w) == static_cast<std::uint64_t>(ListenerState::kFree)) {
      return true;  // not ours any more
    }
    if (state_bits(w) == static_cast<std::uint64_t>(ListenerState::kClosed)) {
      break;
    }
    const std::uint64_t want =
        (w & ~kStateMask) | static_cast<std::uint64_t>(ListenerState::kClosed);
    // seq_cst: SYNC(fanout) with the publisher's fence in deliver(): either
    // it sees Closed, or wait_fanouts() below sees it inside its fan-out.
    if (s.state.compare_exchange_weak(w, want, std::memory_order_seq_cst,
                                      std::memory_order_acquire)) {
      break;
    }
  }
  IPCBUS_CRASH_POINT("close");
  // Crash cleanup does not wait forever on a trie mutex that no live
  // process will ever release (corrupt bytes): it tries again later.
  if (!unsubscribe_all(
          index, owner_dead ? std::chrono::milliseconds(2000) : std::chrono::milliseconds(0))) {
    log().error("listener slot {}: the trie mutex stayed taken for 2 s; left closed, bus={}", index,
                name_);
    return false;
  }
  IPCBUS_CRASH_POINT("close");

  // Publishers blocked on this full ring re-check the state when woken.
  // relaxed: the wake itself is the signal; they re-read the state word.
  s.space_futex.fetch_add(1, std::memory_order_relaxed);
  futex_wake(&s.space_futex, 1 << 20);
  if (!wait_fanouts(index, std::chrono::seconds(2))) {
    // LIMIT: a live publisher stuck inside a fan-out to this slot for 2 s
    // (a block timeout longer than that, on another full ring) keeps the
    // slot Closed, not reusable; the next close or crash cleanup retries.
    log().error("listener slot {} still has a publisher inside after 2 s; left closed, bus={}",
                index, name_);
    return false;
  }
  std::uint64_t dropped = 0;
  // relaxed: the samples of this slot are this process's, counted here.
  if (owner_dead || samples_out[index].load(std::memory_order_relaxed) == 0) {
    // Every reference of this slot, in its ring or as a sample a dead owner
    // held, is dropped, by the slot's bit in every chunk. A live owner does
    // it too when it holds no sample: so the bits a dead producer or dropper
    // left behind unresolved (reclaim.cpp) end with the slot.
    dropped = drop_slot_bits(index, !owner_dead);
    reset_ring(index);
    free_slot(index, w);
  } else {
    // Every entry between head and tail holds one reference; a position a
    // dead producer claimed and never filled holds none.
    const std::uint64_t mask = header_->ring_capacity - 1;
    // relaxed: no producer or consumer is left inside (wait_fanouts above,
    // and the owner is closing), so these are stable.
    const std::uint64_t head = s.head.load(std::memory_order_relaxed);
    const std::uint64_t tail = s.tail.load(std::memory_order_relaxed);
    RingEntry* r = ring(index);
    for (std::uint64_t pos = head; pos != tail && pos - head <= mask; ++pos) {
      // acquire: SYNC(ring-publish), the entry's chunk is visible.
      const std::uint64_t e = r[pos & mask].load(std::memory_order_acquire);
      const auto ref = static_cast<std::uint32_t>(e);
      if (static_cast<std::uint32_t>(e >> 32) == static_cast<std::uint32_t>(pos + 1) &&
          ref != kNone && ref != kSkip) {
        release_chunk(chunk(ref), 1ULL << index, !owner_dead);
        ++dropped;
      }
    }
    reset_ring(index);
    // Samples of this slot are still out: park it until the last is back.
    // seq_cst: SYNC(park) with sample_returned(), see there.
    parked_[index].store(1, std::memory_order_seq_cst);
    if (samples_out[index].load(std::memory_order_seq_cst) == 0) {
      finish_parked(index);  // the last one came back meanwhile
    }
  }
  log().debug("listener closed bus={} slot={} gen={} references dropped={}{}", name_, index,
              generation, dropped, owner_dead ? " (owner dead)" : "");
  if (dropped_out != nullptr) {
    *dropped_out = dropped;
  }
  return true;
}

std::uint64_t BusCore::drop_slot_bits(std::uint32_t index, bool to_cache) {
  std::uint64_t dropped = 0;
  const std::uint64_t bit = 1ULL << index;
  for (std::uint32_t k = 0; k < pool_count_; ++k) {
    for (std::uint32_t j = 0; j < pools_[k].count; ++j) {
      ChunkHeader* c = chunk_at(pools_[k], j);
      // relaxed: a filter; release_chunk()'s RMW is the drop.
      if ((c->holders.load(std::memory_order_relaxed) & bit) != 0) {
        release_chunk(c, bit, to_cache);
        ++dropped;
        IPCBUS_CRASH_POINT("reclaim");
      }
    }
  }
  return dropped;
}

void BusCore::free_slot(std::uint32_t index, std::uint64_t closed_word) {
  ListenerSlot& s = listeners_[index];
  const std::uint32_t owner = owner_of(closed_word);
  if (owner < header_->max_processes) {
    // relaxed: a gauge.
    process(owner).listeners.fetch_sub(1, std::memory_order_relaxed);
  }
  // relaxed: the CAS below decides; only the closer writes a Closed slot.
  std::uint64_t w = s.state.load(std::memory_order_relaxed);
  for (;;) {
    const std::uint64_t want =
        (w & ~(kStateMask | kOwnerMask)) | static_cast<std::uint64_t>(ListenerState::kFree);
    // release: SYNC with claim_listener()'s acquire: the emptied ring is
    // visible to the next owner of the slot.
    if (s.state.compare_exchange_weak(w, want, std::memory_order_release,
                                      std::memory_order_relaxed)) {
      break;
    }
  }
}

void BusCore::finish_parked(std::uint32_t index) {
  // acq_rel: one caller wins; it sees the park and the samples' drops.
  if (parked_[index].exchange(0, std::memory_order_acq_rel) == 0) {
    return;
  }
  // No sample of the slot is left in this process: every bit it still has
  // is stale (see close_listener()), and dropping them all is exact.
  const std::uint64_t dropped = drop_slot_bits(index, true);
  // acquire: the Closed word with its owner, as close_listener() left it.
  free_slot(index, listeners_[index].state.load(std::memory_order_acquire));
  log().debug("parked listener slot freed bus={} slot={} stale references dropped={}", name_, index,
              dropped);
}

// The publisher slot whose fan-out this thread is inside while it runs
// crash cleanup itself (a block-policy publisher that found its listener's
// owner dead): close_listener() must not wait for that fan-out, which
// re-reads the listener's state before every push and so pushes nothing
// into the closed ring.
thread_local const PublisherSlot* t_own_fanout = nullptr;

void BusCore::reclaim_from_fanout(const PublisherSlot* own) {
  t_own_fanout = own;
  (void)reclaim_dead(nullptr);
  t_own_fanout = nullptr;
}

bool BusCore::wait_fanouts(std::uint32_t index, std::chrono::milliseconds limit) {
  // SYNC(fanout): pairs with the publisher's fence, see close_listener().
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const std::uint64_t bit = 1ULL << index;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  PublisherSlot* slots = publisher_slots();
  for (std::uint32_t p = 0; p < header_->max_publishers; ++p) {
    PublisherSlot& j = slots[p];
    // acquire: pairs with the release stores of active and pending in
    // deliver(): the publisher's work on our ring is visible once it is out.
    const std::uint64_t active = j.active.load(std::memory_order_acquire);
    if (j.state.load(std::memory_order_acquire) != 1 || (active & 1) == 0 || &j == t_own_fanout) {
      continue;
    }
    int spins = 0;
    while (j.active.load(std::memory_order_acquire) == active &&
           (j.pending.load(std::memory_order_acquire) & bit) != 0 &&
           j.state.load(std::memory_order_acquire) == 1) {
      if (j.process != process_index_ && !process_alive(j.process)) {
        break;  // a dead publisher pushes nothing more; crash cleanup repairs
      }
      if (std::chrono::steady_clock::now() > deadline) {
        return false;
      }
      if (++spins < 64) {
        cpu_relax();
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    }
  }
  return true;
}

void BusCore::reset_ring(std::uint32_t index) {
  ListenerSlot& s = listeners_[index];
  RingEntry* r = ring(index);
  const std::uint32_t cap = header_->ring_capacity;
  // relaxed, for all: nobody is inside the ring; the state's release store
  // that frees the slot publishes these.
  const std::uint64_t base = s.tail.load(std::memory_order_relaxed);
  for (std::uint32_t k = 0; k < cap; ++k) {
    const std::uint64_t pos = base + k;
    r[pos & (cap - 1)].store(
        static_cast<std::uint64_t>(static_cast<std::uint32_t>(pos)) << 32 | kNone,
        std::memory_order_relaxed);
  }
  s.head.store(base, std::memory_order_relaxed);
}

}  // namespace detail

// --- Bus -------------------------------------------------------------------

Result<Bus> Bus::open(const OpenOptions& options) {
  const std::string name = resolve_bus_name(options.name);
  auto mapped = detail::map_bus(name, options);
  if (!mapped) {
    // A missing bus is an answer, not a failure, for callers asking create=false.
    const auto level =
        mapped.error().code == Errc::kNotFound ? spdlog::level::debug : spdlog::level::err;
    detail::log().log(level, "attach failed bus={} reason={}", name, mapped.error().message);
    return mapped.error();
  }
  detail::Mapping m = std::move(mapped.value());
  // The core keeps the mapping alive through the deleter's capture.
  auto holder = m.holder;
  auto* core = new detail::BusCore(name, m.base, m.bytes, detail::kNone, m.fd);
  std::shared_ptr<detail::BusCore> shared(core, [holder](detail::BusCore* c) { delete c; });
  if (!m.recovered.empty()) {
    detail::log().warn("bus={}: {} (the segment was initialised anew)", name, m.recovered);
    core->record_error("creator-died", m.recovered);
  }
  if (!options.observe_only) {
    const std::uint32_t proc = core->register_process();
    if (proc == detail::kNone) {
      auto& h = core->header();
      core->record_error("attach-refused",
                         "pid " + std::to_string(getpid()) + ": process table full");
      return Error{Errc::kProcessTableFull,
                   "all " + std::to_string(h.max_processes) +
                       " process entries of the bus are held by live processes (max_processes)"};
    }
    core->set_process(proc);
    // An opener finishes what dead processes left when no agent did.
    CleanupReport report;
    if (options.reclaim_at_attach && core->reclaim_dead(&report) != 0) {
      detail::log().warn("bus={}: cleaned up after {} dead process(es) at attach", name,
                         report.processes);
    }
  }
  detail::log().info("attached bus={} pid={} created={} bytes={}", name, getpid(), m.created,
                     m.bytes);
  return Bus(std::move(shared));
}

Result<void> Bus::destroy(const std::string& name) {
  auto shm = detail::shm_name(resolve_bus_name(name));
  if (!shm) {
    return shm.error();
  }
  if (!boost::interprocess::shared_memory_object::remove(shm->c_str())) {
    return Error{Errc::kNotFound, "no bus segment /dev/shm/" + *shm};
  }
  return {};
}

const std::string& Bus::name() const {
  return core_->name();
}
void Bus::record_error(std::string_view kind, std::string_view message) {
  core_->record_error(kind, message);
}
const Config& Bus::config() const {
  return core_->config();
}

Result<Listener> Bus::listen(const ListenerOptions& options) {
  std::uint32_t gen = 0;
  auto index = core_->claim_listener(options, &gen);
  if (!index) {
    return index.error();
  }
  return Listener(core_, *index, gen);
}

CleanupReport Bus::reclaim_dead() {
  CleanupReport r;
  core_->reclaim_dead(&r);
  return r;
}

std::vector<std::string> Bus::check() const {
  return core_->check();
}

Result<void> Bus::take_agent_role() {
  detail::SegmentHeader& h = core_->header();
  if (core_->fd() < 0 || !detail::lock_byte(core_->fd(), detail::lock_base(h) + h.max_processes)) {
    // relaxed: the pid is for the message only.
    return Error{Errc::kAlreadyExists,
                 "another agent (pid " +
                     std::to_string(h.agent_pid.load(std::memory_order_relaxed)) +
                     ") is already serving bus '" + core_->name() + "'"};
  }
  // relaxed, both: for messages and tools; the lock is the role.
  h.agent_pid.store(getpid(), std::memory_order_relaxed);
  h.agent_epoch.fetch_add(1, std::memory_order_relaxed);
  return {};
}

bool Bus::name_linked() const {
  auto shm = detail::shm_name(core_->name());
  struct stat mine {};
  struct stat named {};
  if (!shm || core_->fd() < 0 || fstat(core_->fd(), &mine) != 0) {
    return true;  // cannot tell
  }
  if (stat(("/dev/shm/" + *shm).c_str(), &named) != 0) {
    return false;
  }
  return named.st_ino == mine.st_ino && named.st_dev == mine.st_dev;
}

bool Bus::wait_attach(std::uint32_t* seen, std::chrono::milliseconds timeout) const {
  std::atomic<std::uint32_t>& count = core_->header().attach_count;
  // acquire: SYNC(attach) with register_process()'s release increment: the
  // new entry is Live for whoever looks after this.
  std::uint32_t now = count.load(std::memory_order_acquire);
  if (now == *seen && timeout.count() > 0) {
    detail::futex_wait(&count, now,
                       static_cast<std::uint64_t>(
                           std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count()));
    // acquire: as above.
    now = count.load(std::memory_order_acquire);
  }
  const bool moved = now != *seen;
  *seen = now;
  return moved;
}

BusInfo Bus::inspect() const {
  using namespace detail;
  const SegmentHeader& h = core_->header();
  BusInfo info;
  info.name = core_->name();
  info.layout_version = h.layout_version;
  info.config = core_->config();
  info.segment_bytes = h.segment_bytes;
  // relaxed, for all reads here: a report, not a synchronised snapshot.
  info.trie_version = h.trie_version.load(std::memory_order_relaxed);
  info.trie_nodes_used = h.nodes_used.load(std::memory_order_relaxed);
  info.subscriptions_used = h.subs_used.load(std::memory_order_relaxed);
  info.publishers_created = h.next_publisher_id.load(std::memory_order_relaxed) - 1;
  for (std::uint32_t k = 0; k < h.pool_count; ++k) {
    info.pools.push_back({h.pools[k].payload_bytes, h.pools[k].count, core_->free_chunks(k)});
  }
  for (std::uint32_t i = 0; i < h.max_listeners; ++i) {
    const ListenerSlot& s = core_->slot(i);
    const std::uint64_t w = s.state.load(std::memory_order_acquire);
    if (state_bits(w) == 0) {
      continue;
    }
    ListenerInfo l;
    l.index = i;
    l.generation = generation_of(w);
    l.state = static_cast<ListenerState>(state_bits(w));
    l.owner_pid = s.owner_pid;
    if (owner_of(w) < h.max_processes) {
      // relaxed: a report.
      l.owner_pid = core_->process(owner_of(w)).pid.load(std::memory_order_relaxed);
    }
    l.overflow = static_cast<Overflow>(s.overflow);
    l.wait = static_cast<WaitStrategy>(s.wait);
    l.adaptive = s.adaptive != 0;
    l.fill.used = core_->ring_used(i);
    l.fill.capacity = s.capacity.load(std::memory_order_relaxed);
    l.fill.allocated = s.allocated;
    l.fill.behind =
        std::uint64_t{l.fill.used} * 100 >= std::uint64_t{l.fill.capacity} * s.high_water_percent;
    l.counters.received = s.received.load(std::memory_order_relaxed);
    l.counters.delivered = s.tail.load(std::memory_order_relaxed) - s.tail_base;
    l.counters.dropped_newest = s.dropped_newest.load(std::memory_order_relaxed);
    l.counters.dropped_oldest = s.dropped_oldest.load(std::memory_order_relaxed);
    l.counters.block_timeouts = s.block_timeouts.load(std::memory_order_relaxed);
    l.counters.high_water_signals = s.high_water_signals.load(std::memory_order_relaxed);
    l.counters.wakeups = s.wakeups.load(std::memory_order_relaxed);
    l.histogram_enabled = s.histogram_on.load(std::memory_order_relaxed) != 0;
    for (int k = 0; k < LatencyHistogram::kBuckets; ++k) {
      l.latency.counts[k] = s.latency[k].load(std::memory_order_relaxed);
    }
    l.filters = core_->filters_of(i);
    info.listeners.push_back(std::move(l));
  }
  // Chunks per taker, for `ls processes`.
  std::vector<std::uint32_t> taken(h.max_processes, 0);
  for (std::uint32_t k = 0; k < h.pool_count; ++k) {
    for (std::uint32_t j = 0; j < h.pools[k].count; ++j) {
      // relaxed: a report.
      const std::uint64_t hw =
          core_->chunk_at(h.pools[k], j)->holders.load(std::memory_order_relaxed);
      const std::uint32_t t = taker_of(hw);
      if (t < h.max_processes && !is_cached(hw)) {  // a cached chunk is free
        ++taken[t];
      }
    }
  }
  const std::uint64_t own_ns = own_pid_namespace();
  for (std::uint32_t i = 0; i < h.max_processes; ++i) {
    const ProcessEntry& e = core_->process(i);
    const std::uint32_t state = e.state.load(std::memory_order_acquire);
    if (state == kProcFree) {
      continue;
    }
    ProcessInfo p;
    p.index = i;
    p.pid = e.pid.load(std::memory_order_acquire);
    p.start_time = e.start_time;
    p.reclaiming = state == kProcReclaiming;
    p.alive = !p.reclaiming && core_->process_alive(i);
    p.same_pid_namespace = e.pid_ns == 0 || e.pid_ns == own_ns;
    p.listeners = e.listeners.load(std::memory_order_relaxed);
    p.chunks = taken[i];
    info.processes.push_back(p);
  }
  const PublisherSlot* pubs = core_->publisher_slots();
  for (std::uint32_t i = 0; i < h.max_publishers; ++i) {
    if (pubs[i].state.load(std::memory_order_acquire) != 1) {
      continue;
    }
    for (auto& p : info.processes) {
      if (p.index == pubs[i].process) {
        ++p.publishers;
      }
    }
    info.publishers.push_back({pubs[i].id, pubs[i].pid,
                               pubs[i].published.load(std::memory_order_relaxed),
                               pubs[i].bytes.load(std::memory_order_relaxed)});
  }
  const ErrorRecord* log = core_->error_log();
  for (std::uint32_t i = 0; i < h.errlog_entries; ++i) {
    // acquire: SYNC with record_error_at()'s release of state 2.
    if (log[i].state.load(std::memory_order_acquire) != 2) {
      continue;
    }
    ErrorLogEntry e;
    e.kind.assign(log[i].kind, strnlen(log[i].kind, sizeof(log[i].kind)));
    e.message.assign(log[i].text, std::min<std::size_t>(log[i].text_len, sizeof(log[i].text)));
    e.count = log[i].count.load(std::memory_order_relaxed);
    e.first_realtime_ns = log[i].first_realtime_ns.load(std::memory_order_relaxed);
    e.last_realtime_ns = log[i].last_realtime_ns.load(std::memory_order_relaxed);
    info.errors.push_back(std::move(e));
  }
  // relaxed, for these: counters for a report.
  info.errors_dropped = h.errlog_dropped.load(std::memory_order_relaxed);
  if (core_->fd() >= 0 && byte_locked(core_->fd(), lock_base(h) + h.max_processes)) {
    info.agent_pid = h.agent_pid.load(std::memory_order_relaxed);
  }
  info.cleanup.processes = h.reclaimed_processes.load(std::memory_order_relaxed);
  info.cleanup.listeners = h.reclaimed_listeners.load(std::memory_order_relaxed);
  info.cleanup.chunks = h.reclaimed_chunks.load(std::memory_order_relaxed);
  info.cleanup.repaired = h.repaired_entries.load(std::memory_order_relaxed);
  info.cleanup.last_ns = h.last_reclaim_ns.load(std::memory_order_relaxed);
  std::sort(info.errors.begin(), info.errors.end(),
            [](const auto& a, const auto& b) { return a.first_realtime_ns < b.first_realtime_ns; });
  return info;
}

// --- names -------------------------------------------------------------------

const char* overflow_name(Overflow o) {
  switch (o) {
    case Overflow::kBlock:
      return "block";
    case Overflow::kDropNewest:
      return "drop-newest";
    case Overflow::kDropOldest:
      return "drop-oldest";
  }
  return "?";
}
const char* wait_strategy_name(WaitStrategy w) {
  switch (w) {
    case WaitStrategy::kBusyPoll:
      return "spin";
    case WaitStrategy::kHybrid:
      return "hybrid";
    case WaitStrategy::kSleep:
      return "sleep";
  }
  return "?";
}
const char* listener_state_name(ListenerState s) {
  switch (s) {
    case ListenerState::kFree:
      return "free";
    case ListenerState::kActive:
      return "active";
    case ListenerState::kPaused:
      return "paused";
    case ListenerState::kClosed:
      return "closed";
  }
  return "?";
}
std::optional<Overflow> parse_overflow(std::string_view t) {
  if (t == "block") {
    return Overflow::kBlock;
  }
  if (t == "drop-newest") {
    return Overflow::kDropNewest;
  }
  if (t == "drop-oldest") {
    return Overflow::kDropOldest;
  }
  return std::nullopt;
}
std::optional<WaitStrategy> parse_wait_strategy(std::string_view t) {
  if (t == "spin" || t == "busy-poll") {
    return WaitStrategy::kBusyPoll;
  }
  if (t == "hybrid") {
    return WaitStrategy::kHybrid;
  }
  if (t == "sleep") {
    return WaitStrategy::kSleep;
  }
  return std::nullopt;
}
const char* publish_status_name(PublishStatus s) {
  switch (s) {
    case PublishStatus::kOk:
      return "ok";
    case PublishStatus::kNoListeners:
      return "no listeners";
    case PublishStatus::kTimedOut:
      return "timed out";
    case PublishStatus::kInvalidTopic:
      return "invalid topic";
    case PublishStatus::kPayloadTooLarge:
      return "payload too large";
    case PublishStatus::kPoolExhausted:
      return "pool exhausted";
    case PublishStatus::kPublisherTableFull:
      return "publisher table full";
  }
  return "?";
}

}  // namespace ipcbus
