// reclaim.cpp: crash cleanup. When a process dies without detaching, what it
// held is found from the segment alone and given back exactly once:
//
//   its listener slots   by the owner field of their state word; every chunk
//                        reference of the slot (ring entries and samples) by
//                        the slot's bit in each chunk's holders word;
//   its taken chunks     (loans, publishes under way) by the taker field of
//                        the holders word;
//   a fan-out cut short  by its publisher slot's journal: the targets it had
//                        not pushed yet lose their bits, a ring position it
//                        had claimed and not filled is filled with kSkip;
//   its process entry    last, so that nothing above can be mistaken for a
//                        new process's.
//
// Every drop is one atomic operation on a holders word (see layout.hpp), so a
// reclaimer killed at any point leaves nothing that a second pass would drop
// twice; the entry's OFD lock, taken over from the dead owner, makes sure
// that only one reclaimer works on an entry at a time, and a reclaimer that
// dies lets go of it for the next.
#include <spdlog/spdlog.h>

#include <thread>

#include "core.hpp"
#include "crash.hpp"
#include "process.hpp"

namespace ipcbus::detail {

namespace {

// The chunk with reference `ref`, or nullptr when no chunk starts there.
ChunkHeader* chunk_by_ref(BusCore& c, std::uint32_t ref) {
  const std::uint64_t off = std::uint64_t{ref} * kChunkUnit;
  for (std::uint32_t k = 0; k < c.pool_count(); ++k) {
    const PoolDesc& p = c.pool(k);
    if (off >= p.offset && off < p.offset + std::uint64_t{p.count} * p.stride &&
        (off - p.offset) % p.stride == 0) {
      return c.chunk(ref);
    }
  }
  return nullptr;
}

enum class Pushed { kNo, kYes, kUnknown };

// Did the dead publisher's push of `ref` into ring `listener` at `pos` land?
// A claimed position it never filled (a hole) is filled with kSkip here.
Pushed resolve_push(BusCore& c, std::uint32_t listener, std::uint64_t pos, std::uint32_t ref,
                    CleanupReport* report) {
  ListenerSlot& s = c.slot(listener);
  const std::uint32_t cap = c.header().ring_capacity;
  RingEntry& e = c.ring(listener)[pos & (cap - 1)];
  // acquire: SYNC(ring-publish), as a consumer reads it.
  std::uint64_t w = e.load(std::memory_order_acquire);
  const auto seq = static_cast<std::uint32_t>(w >> 32);
  const auto value = static_cast<std::uint32_t>(w);
  const auto p32 = static_cast<std::uint32_t>(pos);
  if (seq == p32 + 1) {
    return value == ref ? Pushed::kYes : Pushed::kNo;
  }
  if (seq == p32 + cap) {
    return value == ref ? Pushed::kYes : Pushed::kNo;  // pushed and consumed since
  }
  if (seq == p32) {
    // relaxed: compared with a position we already know was handed out.
    if (s.tail.load(std::memory_order_relaxed) <= pos) {
      return Pushed::kNo;  // it died before claiming the position
    }
    // It claimed the position and died before filling it: consumers wait on
    // it forever. Fill it with an entry that carries nothing.
    // release: SYNC(ring-publish) for the consumer that reads the skip.
    if (e.compare_exchange_strong(w, (static_cast<std::uint64_t>(p32 + 1) << 32) | kSkip,
                                  std::memory_order_release, std::memory_order_relaxed)) {
      ++report->repaired;
      // relaxed: a counter.
      c.header().repaired_entries.fetch_add(1, std::memory_order_relaxed);
    }
    return Pushed::kNo;
  }
  // LIMIT: the ring went round since; whether that entry was ours is lost.
  // The bit stays, so the chunk comes back when the listener's slot does.
  return Pushed::kUnknown;
}

// Finish a drop-oldest eviction a dead publisher was in, from its drop
// journal: the evicted event's reference goes exactly once.
void resolve_drop(BusCore& c, PublisherSlot& j, std::uint32_t slot_index, CleanupReport* report) {
  // relaxed, for the journal: its writer is dead.
  const std::uint64_t at = j.pop_pos.load(std::memory_order_relaxed);
  const std::uint32_t listener = j.pop_listener.load(std::memory_order_relaxed);
  if (at == 0 || listener >= c.header().max_listeners) {
    return;
  }
  const std::uint64_t pos = at - 1;
  ChunkHeader* ch = chunk_by_ref(c, j.pop_ref.load(std::memory_order_relaxed));
  const std::uint32_t cap = c.header().ring_capacity;
  ListenerSlot& s = c.slot(listener);
  RingEntry& e = c.ring(listener)[pos & (cap - 1)];
  const auto p32 = static_cast<std::uint32_t>(pos);
  // acquire: the entry as its last writer left it.
  std::uint64_t w = e.load(std::memory_order_acquire);
  bool ours = false;
  if (static_cast<std::uint32_t>(w >> 32) == p32 + 1) {
    // relaxed: compared with a position already handed out or not.
    if (s.head.load(std::memory_order_relaxed) <= pos) {
      return;  // it died before taking the position
    }
    // Taken and not freed: by us, or by the listener in the middle of its
    // own pop, which would finish at once. Give the listener that moment.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    w = e.load(std::memory_order_acquire);
    if (static_cast<std::uint32_t>(w >> 32) == p32 + 1) {
      // release: SYNC(ring-free), producers may reuse the entry now.
      if (e.compare_exchange_strong(
              w, (static_cast<std::uint64_t>(p32 + cap) << 32) | (kDropMark | slot_index),
              std::memory_order_release, std::memory_order_relaxed)) {
        ++report->repaired;
        // relaxed: a counter.
        c.header().repaired_entries.fetch_add(1, std::memory_order_relaxed);
        ours = true;
        ch = chunk_by_ref(c, static_cast<std::uint32_t>(w));  // what the entry held
      }
    }
  }
  // Freed by cleanup just now: the entry still held the event, so its bit
  // is held for this event and no sequence check is needed (the dead
  // publisher may have died before it journalled the sequence).
  const bool still_held = ours;
  if (!ours) {
    ours = static_cast<std::uint32_t>(w >> 32) == p32 + cap &&
           static_cast<std::uint32_t>(w) == (kDropMark | slot_index);
  }
  // LIMIT: a ring gone round since the eviction has lost the mark; the bit
  // then stays until the listener's slot is closed or reclaimed.
  if (!ours || ch == nullptr) {
    return;
  }
  // The same event, not a later use of the chunk: drop its bit (a no-op if
  // the eviction had got that far). The journal's sequence was stored
  // before the entry took the mark, so it is current here.
  if (still_held || (ch->sequence == j.pop_sequence.load(std::memory_order_relaxed) &&
                     ch->publisher_id == j.pop_publisher.load(std::memory_order_relaxed))) {
    // relaxed: a filter; release_chunk()'s RMW is the drop.
    if ((ch->holders.load(std::memory_order_relaxed) & (1ULL << listener)) != 0) {
      c.release_chunk(ch, 1ULL << listener, false);
      ++report->chunks;
    }
  }
}

// Undo what a dead publisher's fan-out left, from its journal.
void resolve_fanout(BusCore& c, PublisherSlot& j, std::uint32_t dead, CleanupReport* report) {
  // relaxed, for the journal: its writer is dead; what it stored before it
  // died is what we read.
  const std::uint64_t active = j.active.load(std::memory_order_acquire);
  if ((active & 1) == 0) {
    return;
  }
  ChunkHeader* ch = chunk_by_ref(c, j.chunk.load(std::memory_order_relaxed));
  if (ch == nullptr) {
    return;
  }
  // acquire: see the holders word as its last writers left it.
  const std::uint64_t holders = ch->holders.load(std::memory_order_acquire);
  if (taker_of(holders) != dead) {
    return;  // it had dropped its own reference: the fan-out was over
  }
  const std::uint64_t slots = (std::uint64_t{1} << c.header().max_listeners) - 1;
  std::uint64_t pending = j.pending.load(std::memory_order_relaxed) & holders & slots;
  const std::uint32_t at = j.push_listener.load(std::memory_order_relaxed);
  std::uint64_t drop = 0;
  while (pending != 0) {
    const std::uint64_t bit = pending & (~pending + 1);
    pending &= ~bit;
    const auto listener = static_cast<std::uint32_t>(__builtin_ctzll(bit));
    Pushed pushed = Pushed::kNo;
    if (listener == at) {
      const std::uint64_t pos = j.push_pos.load(std::memory_order_relaxed);
      pushed = resolve_push(c, listener, pos, ch->self_ref, report);
    }
    if (pushed == Pushed::kNo) {
      drop |= bit;
    }
  }
  if (drop != 0) {
    c.release_chunk(ch, drop, false);
    report->chunks += static_cast<std::uint64_t>(__builtin_popcountll(drop));
    IPCBUS_CRASH_POINT("reclaim");
  }
}

}  // namespace

bool BusCore::reclaim_process(std::uint32_t i, CleanupReport* report) {
  SegmentHeader& h = *header_;
  ProcessEntry& e = process(i);
  // acquire: pairs with the release stores of the entry's state.
  std::uint32_t state = e.state.load(std::memory_order_acquire);
  if (state == kProcFree || i == process_index_ || fd_ < 0) {
    return false;
  }
  const std::uint64_t lock = lock_base(h) + i;
  // The dead owner's lock is free; taking it makes us the entry's only
  // reclaimer. A live owner, or another reclaimer, holds it.
  if (!lock_byte(fd_, lock)) {
    return false;
  }
  state = e.state.load(std::memory_order_acquire);
  if (state == kProcFree) {
    unlock_byte(fd_, lock);  // it detached meanwhile
    return false;
  }
  const std::uint64_t seen_ns = monotonic_ns();
  // relaxed: a report for tools; the lock is what excludes others.
  const std::uint64_t dead_since = e.dead_since_ns.load(std::memory_order_relaxed);
  const std::uint64_t since = dead_since != 0 ? dead_since : seen_ns;
  e.state.store(kProcReclaiming, std::memory_order_relaxed);
  const std::int32_t pid = e.pid.load(std::memory_order_relaxed);
  log().warn("bus={}: process entry {} (pid {}) is dead; reclaiming what it held", name_, i, pid);
  CleanupReport mine;

  // 1. Its publishers: the fan-out each was in, then the slot.
  PublisherSlot* pubs = publisher_slots();
  for (std::uint32_t p = 0; p < h.max_publishers; ++p) {
    // acquire: the slot's fields as its owner left them.
    if (pubs[p].state.load(std::memory_order_acquire) != 1 || pubs[p].process != i) {
      continue;
    }
    resolve_drop(*this, pubs[p], p, &mine);
    IPCBUS_CRASH_POINT("reclaim");
    resolve_fanout(*this, pubs[p], i, &mine);
    IPCBUS_CRASH_POINT("reclaim");
    // relaxed: the fan-out above is settled; the next claimer's CAS needs
    // only the slot free (its acquire pairs with this release).
    pubs[p].active.store(0, std::memory_order_relaxed);
    pubs[p].pop_pos.store(0, std::memory_order_relaxed);
    pubs[p].state.store(0, std::memory_order_release);
    ++mine.publishers;
  }

  // 2. Its listeners: closed, their references all dropped, then freed.
  for (std::uint32_t l = 0; l < h.max_listeners; ++l) {
    // acquire: the slot's options as its claimer wrote them.
    const std::uint64_t w = listeners_[l].state.load(std::memory_order_acquire);
    if (state_bits(w) == static_cast<std::uint64_t>(ListenerState::kFree) || owner_of(w) != i) {
      continue;
    }
    std::uint64_t dropped = 0;
    if (!close_listener(l, generation_of(w), /*owner_dead=*/true, &dropped)) {
      // Left for a later pass; the entry's lock goes so that one can start.
      unlock_byte(fd_, lock);
      record_error("reclaim-stalled", "entry " + std::to_string(i) + ": listener slot " +
                                          std::to_string(l) + " could not be closed");
      return false;
    }
    ++mine.listeners;
    mine.chunks += dropped;  // its queued events and the samples it held
    IPCBUS_CRASH_POINT("reclaim");
  }

  // 3. Its taken chunks: loans and publishes it never finished.
  for (std::uint32_t k = 0; k < pool_count_; ++k) {
    for (std::uint32_t j = 0; j < pools_[k].count; ++j) {
      ChunkHeader* c = chunk_at(pools_[k], j);
      // relaxed: a filter; the CAS below decides.
      std::uint64_t hw = c->holders.load(std::memory_order_relaxed);
      while (taker_of(hw) == i) {
        // acq_rel: as release_chunk(), whose job this is for the dead taker.
        if (c->holders.compare_exchange_weak(hw, hw & ~kTakerBits, std::memory_order_acq_rel,
                                             std::memory_order_relaxed)) {
          if ((hw & ~kTakerBits) == 0) {
            mark_free(c);
          }
          ++mine.chunks;
          IPCBUS_CRASH_POINT("reclaim");
          break;
        }
      }
    }
  }

  // 4. Free chunks whose bit a dead taker or releaser cleared and never set
  // back. A bit set for a chunk a live taker is claiming costs that taker
  // nothing (its holders CAS decides), so this needs no quiet bus.
  for (std::uint32_t k = 0; k < pool_count_; ++k) {
    for (std::uint32_t j = 0; j < pools_[k].count; ++j) {
      ChunkHeader* c = chunk_at(pools_[k], j);
      // relaxed: a hint is being repaired, see take_chunk().
      if (c->holders.load(std::memory_order_relaxed) == 0 &&
          (bitmap_[c->index / 64].load(std::memory_order_relaxed) & (1ULL << (c->index % 64))) ==
              0) {
        mark_free(c);
        ++mine.swept;
      }
    }
  }

  // 5. The entry, last.
  // relaxed: published by the release store of the state.
  e.listeners.store(0, std::memory_order_relaxed);
  e.pid.store(0, std::memory_order_relaxed);
  e.dead_since_ns.store(0, std::memory_order_relaxed);
  IPCBUS_CRASH_POINT("reclaim");
  const std::uint64_t took = monotonic_ns() - since;
  // relaxed, for these: figures for tools, published with the entry's
  // release below, so that whoever sees the entry free sees them counted
  // (a reclaimer killed just here makes the next one count it again).
  h.reclaimed_processes.fetch_add(1, std::memory_order_relaxed);
  h.reclaimed_listeners.fetch_add(mine.listeners, std::memory_order_relaxed);
  h.reclaimed_chunks.fetch_add(mine.chunks, std::memory_order_relaxed);
  h.last_reclaim_ns.store(took, std::memory_order_relaxed);
  // release: the next claimer (acquire CAS) sees everything above done.
  e.state.store(kProcFree, std::memory_order_release);
  unlock_byte(fd_, lock);

  // One record counts every reclaim (the text is the same, so the log
  // keeps one line); which process and what came back go to the log line.
  record_error("reclaim", "cleaned up after a dead process: what it held came back");
  log().warn(
      "bus={}: reclaimed entry {} (pid {}): {} listener(s), {} publisher(s), {} chunk "
      "reference(s), {} ring position(s) repaired, {} free chunk(s) swept, in {} us",
      name_, i, pid, mine.listeners, mine.publishers, mine.chunks, mine.repaired, mine.swept,
      took / 1000);
  if (report != nullptr) {
    report->processes += 1;
    report->listeners += mine.listeners;
    report->publishers += mine.publishers;
    report->chunks += mine.chunks;
    report->repaired += mine.repaired;
    report->swept += mine.swept;
    report->last_ns = took;
  }
  return true;
}

std::uint32_t BusCore::reclaim_dead(CleanupReport* report) {
  std::uint32_t n = 0;
  for (std::uint32_t i = 0; i < header_->max_processes; ++i) {
    ProcessEntry& e = process(i);
    // acquire: pairs with the release stores of the entry's state.
    if (e.state.load(std::memory_order_acquire) == kProcFree || i == process_index_) {
      continue;
    }
    if (process_alive(i)) {
      continue;
    }
    // relaxed: when the death was first seen, for the reclaim time figure.
    std::uint64_t zero = 0;
    e.dead_since_ns.compare_exchange_strong(zero, monotonic_ns(), std::memory_order_relaxed);
    if (reclaim_process(i, report)) {
      ++n;
    }
  }
  return n;
}

std::vector<std::string> BusCore::check() {
  std::vector<std::string> out;
  SegmentHeader& h = *header_;
  auto say = [&out](std::string s) {
    if (out.size() < 200) {
      out.push_back(std::move(s));
    }
  };
  // Live holders.
  std::vector<bool> live(h.max_processes, false);
  for (std::uint32_t i = 0; i < h.max_processes; ++i) {
    // acquire: the entry as its owner published it.
    const std::uint32_t st = process(i).state.load(std::memory_order_acquire);
    if (st == kProcFree) {
      continue;
    }
    live[i] = process_alive(i);
    if (!live[i]) {
      say("process entry " + std::to_string(i) + " (pid " +
          std::to_string(process(i).pid.load(std::memory_order_relaxed)) +
          ") belongs to a dead process and was not reclaimed");
    }
  }
  std::uint64_t used_slots = 0;
  for (std::uint32_t l = 0; l < h.max_listeners; ++l) {
    const ListenerSlot& s = listeners_[l];
    // acquire: as claim_listener().
    const std::uint64_t w = s.state.load(std::memory_order_acquire);
    // relaxed: a report of a quiet bus.
    const std::uint64_t head = s.head.load(std::memory_order_relaxed);
    const std::uint64_t tail = s.tail.load(std::memory_order_relaxed);
    if (state_bits(w) == static_cast<std::uint64_t>(ListenerState::kFree)) {
      if (head != tail) {
        say("free listener slot " + std::to_string(l) + " has " + std::to_string(tail - head) +
            " entries in its ring");
      }
      if (s.subs_head.load(std::memory_order_relaxed) != kNone) {
        say("free listener slot " + std::to_string(l) + " still has subscriptions");
      }
      continue;
    }
    used_slots |= 1ULL << l;
    const std::uint32_t owner = owner_of(w);
    if (owner >= h.max_processes || !live[owner]) {
      say("listener slot " + std::to_string(l) + " is owned by " +
          (owner >= h.max_processes ? std::string("no process")
                                    : "dead process entry " + std::to_string(owner)));
    }
    if (tail - head > h.ring_capacity) {
      say("listener slot " + std::to_string(l) + " ring holds " + std::to_string(tail - head) +
          " entries, more than its " + std::to_string(h.ring_capacity));
      continue;
    }
    const std::uint64_t mask = h.ring_capacity - 1;
    for (std::uint64_t pos = head; pos != tail; ++pos) {
      // acquire: SYNC(ring-publish).
      const std::uint64_t e = ring(l)[pos & mask].load(std::memory_order_acquire);
      const auto ref = static_cast<std::uint32_t>(e);
      if (static_cast<std::uint32_t>(e >> 32) != static_cast<std::uint32_t>(pos + 1) ||
          ref == kSkip) {
        continue;  // being written, or a repaired position
      }
      ChunkHeader* c = chunk_by_ref(*this, ref);
      if (c == nullptr) {
        say("listener slot " + std::to_string(l) + " ring position " + std::to_string(pos) +
            " names no chunk (" + std::to_string(ref) + ")");
      } else if ((c->holders.load(std::memory_order_relaxed) & (1ULL << l)) == 0) {
        say("listener slot " + std::to_string(l) + " ring holds chunk " + std::to_string(ref) +
            " without its holder bit");
      }
    }
  }
  std::uint64_t free_chunks = 0;
  std::uint64_t bit_errors = 0;
  for (std::uint32_t k = 0; k < pool_count_; ++k) {
    for (std::uint32_t j = 0; j < pools_[k].count; ++j) {
      ChunkHeader* c = chunk_at(pools_[k], j);
      // relaxed: a report of a quiet bus.
      const std::uint64_t hw = c->holders.load(std::memory_order_relaxed);
      const bool bit =
          (bitmap_[c->index / 64].load(std::memory_order_relaxed) & (1ULL << (c->index % 64))) != 0;
      if (hw == 0) {
        ++free_chunks;
        if (!bit && ++bit_errors <= 5) {
          say("chunk " + std::to_string(c->self_ref) + " (class " + std::to_string(k) +
              ") is free but the pool cannot find it (bitmap bit clear)");
        }
        continue;
      }
      // A bit set for a chunk in use is a stale hint, harmless by design.
      (void)bit;
      const std::uint32_t t = taker_of(hw);
      if (t != kNone && t != taker_of(kTakerBits) && (t >= h.max_processes || !live[t])) {
        say("chunk " + std::to_string(c->self_ref) + " is held by dead taker entry " +
            std::to_string(t));
      }
      const std::uint64_t stray = hw & kListenerBits & ~used_slots;
      if (stray != 0) {
        say("chunk " + std::to_string(c->self_ref) + " is held by free listener slot(s) mask " +
            std::to_string(stray));
      }
    }
  }
  if (bit_errors > 5) {
    say(std::to_string(bit_errors) + " chunks in all disagree with the pool bitmap");
  }
  PublisherSlot* pubs = publisher_slots();
  for (std::uint32_t p = 0; p < h.max_publishers; ++p) {
    // acquire: the slot as its owner left it.
    if (pubs[p].state.load(std::memory_order_acquire) == 1 &&
        (pubs[p].process >= h.max_processes || !live[pubs[p].process])) {
      say("publisher slot " + std::to_string(p) + " (pid " + std::to_string(pubs[p].pid) +
          ") is owned by a dead process");
    }
  }
  // The trie: every node's refcount is the number of subscriptions at or
  // below it, every subscription names a used node and a used slot.
  const std::uint32_t nodes = h.trie_nodes;
  std::vector<std::uint32_t> count(nodes, 0);
  std::uint32_t subs = 0;
  for (std::uint32_t l = 0; l < h.max_listeners; ++l) {
    // relaxed: a report of a quiet bus, read under no lock.
    std::uint32_t r = listeners_[l].subs_head.load(std::memory_order_relaxed);
    for (std::uint32_t steps = 0; r != kNone; ++steps) {
      if (r >= h.subscriptions || steps > h.subscriptions) {
        say("listener slot " + std::to_string(l) + " subscription list is broken");
        break;
      }
      ++subs;
      if ((used_slots & (1ULL << l)) == 0) {
        say("free listener slot " + std::to_string(l) + " has subscription " + std::to_string(r));
      }
      std::uint32_t n = subs_[r].node.load(std::memory_order_relaxed);
      for (std::uint32_t up = 0; n != kNone && n < nodes && up <= nodes; ++up) {
        ++count[n];
        n = node(n).parent.load(std::memory_order_relaxed);
      }
      r = subs_[r].next_in_listener.load(std::memory_order_relaxed);
    }
  }
  if (subs != h.subs_used.load(std::memory_order_relaxed)) {
    say("the trie counts " + std::to_string(h.subs_used.load(std::memory_order_relaxed)) +
        " subscriptions but the listeners hold " + std::to_string(subs));
  }
  std::uint32_t bad_nodes = 0;
  for (std::uint32_t n = 1; n < nodes; ++n) {
    const std::uint32_t kind = node(n).kind.load(std::memory_order_relaxed);
    const std::uint32_t rc = node(n).refcount.load(std::memory_order_relaxed);
    if (kind != kNodeFree && rc != count[n] && ++bad_nodes <= 5) {
      say("trie node " + std::to_string(n) + " has refcount " + std::to_string(rc) + " but " +
          std::to_string(count[n]) + " subscriptions at or below it");
    }
  }
  if (bad_nodes > 5) {
    say(std::to_string(bad_nodes) + " trie nodes in all have a wrong refcount");
  }
  (void)free_chunks;
  return out;
}

}  // namespace ipcbus::detail
