// histogram.hpp: a fixed-size log-linear latency histogram.
//
// Values are nanoseconds. Below 128 ns every value has a bucket of its own;
// above, each power of two is split into 128 equal sub-buckets, so that a
// bucket is never wider than 1/128 (0.8 %) of the values it holds. The top
// bucket ends at 2^34 ns (17 s); larger values are clamped into it, and the
// exact minimum, maximum and sum are kept beside the buckets.
//
// The struct is trivially copyable and holds no pointer, so that a child
// process can fill one inside a shared mapping and the parent read it.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

namespace ipcbus::bench {

class Histogram {
 public:
  static constexpr int kSubBits = 7;                       // 128 sub-buckets per octave
  static constexpr std::uint64_t kSub = 1ULL << kSubBits;  // values below this are exact
  static constexpr int kTopBit = 33;                       // highest octave: [2^33, 2^34)
  static constexpr int kBuckets = static_cast<int>(kSub) * (kTopBit - kSubBits + 2);

  void clear();
  void record(std::uint64_t ns);
  void merge(const Histogram& other);

  std::uint64_t count() const { return count_; }
  std::uint64_t min() const { return count_ == 0 ? 0 : min_; }
  std::uint64_t max() const { return max_; }
  double mean() const { return count_ == 0 ? 0.0 : static_cast<double>(sum_) / count_; }

  // percentile returns the value at `p` percent (0..100): the middle of the
  // bucket that holds the rank, clamped to [min, max]. 0 when empty.
  std::uint64_t percentile(double p) const;

  // The bucket of a value and the range [lower, upper) a bucket covers.
  static int bucket_of(std::uint64_t ns);
  static std::uint64_t bucket_lower(int b);
  static std::uint64_t bucket_upper(int b);

 private:
  std::uint64_t count_ = 0;
  std::uint64_t min_ = 0;
  std::uint64_t max_ = 0;
  std::uint64_t sum_ = 0;
  std::uint64_t buckets_[kBuckets] = {};
};
static_assert(std::is_trivially_copyable_v<Histogram>, "lives in shared memory");

// histogram_self_check records known distributions and checks the bucket
// arithmetic, the percentiles (within the 1 % resolution) and their order.
// On failure it returns false and says why.
bool histogram_self_check(std::string* why);

}  // namespace ipcbus::bench
