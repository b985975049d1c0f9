// peer_protocol.hpp: what the multi-process tests and their peer program
// (peer.cpp) agree on: the bus configuration peers create, the payload bytes
// of each event, and the bytes a peer writes on its ready pipe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "ipcbus/config.hpp"

namespace ipcbus::test {

// A small bus, so that many tests and processes can have one at once. The
// ring (64 entries) is smaller than the small pool (512 chunks), so that a
// full ring never runs the pool dry.
inline Config small_config() {
  Config c;
  c.pools = {{256, 512}, {4096, 64}};
  c.max_listeners = 16;
  c.ring_capacity = 64;
  c.trie_nodes = 256;
  c.subscriptions = 256;
  c.max_processes = 32;
  return c;
}

// The payload size of event `seq` when a publisher is asked for varying
// sizes: 0 to 599 bytes, so that both pool classes and the empty payload occur.
inline std::size_t varying_payload_size(std::uint64_t seq) {
  return (seq * 37) % 600;
}

// The byte at `index` of the payload of event `seq`: a function of both, so
// that a payload delivered under the wrong sequence or shifted is caught.
inline std::byte payload_byte(std::uint64_t seq, std::size_t index) {
  return static_cast<std::byte>((seq * 131 + index * 7 + (index >> 8)) & 0xFF);
}

inline void fill_payload(std::uint64_t seq, std::span<std::byte> out) {
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] = payload_byte(seq, i);
  }
}

inline bool payload_is_intact(std::uint64_t seq, std::span<const std::byte> payload) {
  for (std::size_t i = 0; i < payload.size(); ++i) {
    if (payload[i] != payload_byte(seq, i)) {
      return false;
    }
  }
  return true;
}

// Bytes a peer writes on its ready pipe (--ready-fd).
inline constexpr char kReady = 'R';     // attached and subscribed (or, for create, opened)
inline constexpr char kWaiting = 'W';   // create: blocked on the start pipe
inline constexpr char kPaused = 'P';    // pause-cycle: the listener paused itself
inline constexpr char kResumed = 'A';   // pause-cycle: the listener is active again
inline constexpr char kFinished = 'D';  // linger: received what was asked, waiting for SIGUSR1

}  // namespace ipcbus::test
