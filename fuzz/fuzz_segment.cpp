// fuzz_segment: header validation on mutated segment images must never
// crash, loop or accept an image whose offsets would take a reader outside
// the mapping. Input: a list of (offset, byte) patches applied to a valid
// image of a small bus.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core.hpp"
#include "ipcbus/config.hpp"
#include "layout.hpp"
#include "segment.hpp"

namespace {

ipcbus::Config small_config() {
  ipcbus::Config c;
  c.pools = {{64, 8}, {512, 4}};
  c.max_listeners = 4;
  c.ring_capacity = 8;
  c.trie_nodes = 16;
  c.subscriptions = 16;
  c.max_processes = 4;
  c.max_publishers = 4;
  return c;
}

const std::vector<char>& pristine() {
  static const std::vector<char> image = [] {
    const ipcbus::Config c = small_config();
    std::vector<char> v(ipcbus::detail::segment_size(c));
    ipcbus::detail::init_segment(v.data(), v.size(), c);
    return v;
  }();
  return image;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::vector<char>& base = pristine();
  // Only the header is read by validation; patch within it and a little past.
  const std::size_t span = sizeof(ipcbus::detail::SegmentHeader) + 64;
  alignas(64) static char image[sizeof(ipcbus::detail::SegmentHeader) + 4096];
  std::memcpy(image, base.data(), sizeof image);
  for (std::size_t i = 0; i + 2 < size; i += 3) {
    const std::size_t off = (static_cast<std::size_t>(data[i]) << 8 | data[i + 1]) % span;
    image[off] = static_cast<char>(data[i + 2]);
  }
  // The mapped size the reader believes: the pristine size, or less.
  const std::uint64_t mapped = size > 0 && (data[0] & 1) ? base.size() / 2 : base.size();
  const auto* h = reinterpret_cast<const ipcbus::detail::SegmentHeader*>(image);
  const auto ok = ipcbus::detail::validate_header(*h, mapped);
  if (ok) {
    // Accepted: every region must lie inside the mapping.
    const ipcbus::detail::Layout l = ipcbus::detail::compute_layout(ipcbus::detail::config_of(*h));
    if (l.total > mapped || h->segment_bytes > mapped || h->proc_off >= mapped ||
        h->sub_off >= mapped || h->errlog_off >= mapped) {
      std::abort();
    }
  } else if (ok.error().message.empty()) {
    std::abort();  // every refusal says why
  }
  return 0;
}
