// histogram.cpp: bucket arithmetic, percentiles and the self check.
#include "histogram.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace ipcbus::bench {

void Histogram::clear() {
  *this = Histogram{};
}

int Histogram::bucket_of(std::uint64_t ns) {
  if (ns < kSub) {
    return static_cast<int>(ns);
  }
  const int e = 63 - __builtin_clzll(ns);
  if (e > kTopBit) {
    return kBuckets - 1;
  }
  const auto sub = static_cast<int>((ns >> (e - kSubBits)) - kSub);
  return static_cast<int>(kSub) * (e - kSubBits + 1) + sub;
}

std::uint64_t Histogram::bucket_lower(int b) {
  if (b < static_cast<int>(kSub)) {
    return static_cast<std::uint64_t>(b);
  }
  const int e = b / static_cast<int>(kSub) + kSubBits - 1;
  const auto sub = static_cast<std::uint64_t>(b % static_cast<int>(kSub));
  return (kSub + sub) << (e - kSubBits);
}

std::uint64_t Histogram::bucket_upper(int b) {
  if (b < static_cast<int>(kSub)) {
    return static_cast<std::uint64_t>(b) + 1;
  }
  const int e = b / static_cast<int>(kSub) + kSubBits - 1;
  const auto sub = static_cast<std::uint64_t>(b % static_cast<int>(kSub));
  return (kSub + sub + 1) << (e - kSubBits);
}

void Histogram::record(std::uint64_t ns) {
  if (count_ == 0 || ns < min_) {
    min_ = ns;
  }
  max_ = std::max(max_, ns);
  sum_ += ns;
  ++count_;
  ++buckets_[bucket_of(ns)];
}

void Histogram::merge(const Histogram& other) {
  if (other.count_ == 0) {
    return;
  }
  min_ = count_ == 0 ? other.min_ : std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
  count_ += other.count_;
  for (int b = 0; b < kBuckets; ++b) {
    buckets_[b] += other.buckets_[b];
  }
}

std::uint64_t Histogram::percentile(double p) const {
  if (count_ == 0) {
    return 0;
  }
  const double clamped = std::clamp(p, 0.0, 100.0);
  auto rank = static_cast<std::uint64_t>(std::ceil(clamped / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  std::uint64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += buckets_[b];
    if (seen >= rank) {
      const std::uint64_t mid = b < static_cast<int>(kSub)
                                    ? bucket_lower(b)
                                    : (bucket_lower(b) + bucket_upper(b) - 1) / 2;
      return std::clamp(mid, min_, max_);
    }
  }
  return max_;
}

namespace {

bool fail(std::string* why, const std::string& what) {
  if (why != nullptr) {
    *why = what;
  }
  return false;
}

bool near(std::uint64_t got, double want, double tolerance) {
  return std::fabs(static_cast<double>(got) - want) <= want * tolerance + 1.0;
}

}  // namespace

bool histogram_self_check(std::string* why) {
  // 1. Buckets tile the value range without gaps, each within 1/128 of its values.
  for (int b = 0; b < Histogram::kBuckets; ++b) {
    const std::uint64_t lo = Histogram::bucket_lower(b);
    const std::uint64_t hi = Histogram::bucket_upper(b);
    if (Histogram::bucket_of(lo) != b || Histogram::bucket_of(hi - 1) != b) {
      return fail(why, "bucket " + std::to_string(b) + " does not hold its own bounds");
    }
    if (b + 1 < Histogram::kBuckets && Histogram::bucket_lower(b + 1) != hi) {
      return fail(why, "gap after bucket " + std::to_string(b));
    }
    if (static_cast<double>(hi - lo) > static_cast<double>(lo) / 128.0 + 1.0) {
      return fail(why, "bucket " + std::to_string(b) + " is wider than 1/128 of its values");
    }
  }
  if (Histogram::bucket_upper(Histogram::kBuckets - 1) < 10'000'000'000ULL) {
    return fail(why, "the top bucket ends below 10 s");
  }

  // 2. A uniform distribution 1..100000 ns: percentiles within the resolution.
  Histogram h;
  for (std::uint64_t v = 1; v <= 100000; ++v) {
    h.record(v);
  }
  const struct {
    double p;
    double want;
  } cases[] = {{50, 50000}, {90, 90000}, {99, 99000}, {99.9, 99900}, {100, 100000}};
  for (const auto& c : cases) {
    if (!near(h.percentile(c.p), c.want, 0.01)) {
      return fail(why, "uniform p" + std::to_string(c.p) + " = " +
                           std::to_string(h.percentile(c.p)) + ", want about " +
                           std::to_string(c.want));
    }
  }
  if (h.min() != 1 || h.max() != 100000 || h.count() != 100000 || !near(h.mean(), 50000.5, 1e-9)) {
    return fail(why, "uniform min/max/count/mean wrong");
  }

  // 3. Merging two halves gives the whole.
  Histogram a;
  Histogram b;
  for (std::uint64_t v = 1; v <= 100000; ++v) {
    (v % 2 == 0 ? a : b).record(v);
  }
  a.merge(b);
  for (const auto& c : cases) {
    if (a.percentile(c.p) != h.percentile(c.p)) {
      return fail(why, "merged percentile differs from the whole");
    }
  }

  // 4. A skewed distribution with a tail: percentiles ordered, tail found,
  // values past the top bucket clamped but the maximum kept exactly.
  Histogram s;
  for (int i = 0; i < 9990; ++i) {
    s.record(100 + static_cast<std::uint64_t>(i % 7));
  }
  for (int i = 0; i < 9; ++i) {
    s.record(50000);
  }
  s.record(1'000'000'000'000ULL);
  const std::uint64_t p50 = s.percentile(50);
  const std::uint64_t p99 = s.percentile(99);
  const std::uint64_t p999 = s.percentile(99.95);
  if (!(p50 <= p99 && p99 <= p999 && p999 <= s.max())) {
    return fail(why, "skewed percentiles out of order");
  }
  if (p50 < 100 || p50 > 106 || !near(p999, 50000, 0.01) || s.max() != 1'000'000'000'000ULL) {
    return fail(why, "skewed percentiles wrong: p50 " + std::to_string(p50) + " p99.95 " +
                         std::to_string(p999));
  }
  Histogram empty;
  if (empty.percentile(50) != 0 || empty.count() != 0) {
    return fail(why, "empty histogram is not empty");
  }
  return true;
}

}  // namespace ipcbus::bench
