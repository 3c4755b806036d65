// tachyon/histogram.hpp — a log-linear (HDR-style) histogram of non-negative integer values.
//
// Fixed memory, O(1) record, no allocation, no lock. Values below 2^sub_bucket_bits are counted
// exactly; above that every power of two [2^k, 2^(k+1)) is split into 2^sub_bucket_bits equal
// buckets, so a bucket's width is at most 1/32 of the values in it (relative error <= 3.125%).
// The whole 64-bit range is covered; nothing is clamped.
//
//   value v < 32:    bucket v                       (width 1, exact)
//   value v >= 32:   k = floor(log2 v), bucket = (k - 4) * 32 + (v >> (k - 5))
//
// One writer, any number of readers: record() is meant for the thread that owns the instance
// (a worker, a benchmark thread). Its counters are relaxed atomics written with plain loads and
// stores, so reading a histogram from another thread while its owner records is defined (a reader
// sees each counter at some recent value); on x86-64 a record() is plain loads, adds and stores,
// with no locked instruction. Per-thread instances are combined on demand with merge(); percentiles
// are computed on the merged copy.
//
// Percentiles use the nearest-rank definition: percentile(p) is the smallest recorded value v
// such that at least p% of the recorded values are <= v, reported as the upper edge of v's bucket
// (values below 32 are reported exactly) and never above max(). percentile(100) == max() and
// percentile(0) == min(). An empty histogram reports 0 everywhere.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace tachyon {

class histogram {
 public:
  /// Buckets per power of two, as a power of two: 2^5 = 32 sub-buckets.
  static constexpr unsigned sub_bucket_bits = 5;
  static constexpr std::uint64_t sub_buckets = std::uint64_t{1} << sub_bucket_bits;
  /// 32 exact buckets, then 32 per power of two from 2^5 to 2^63.
  static constexpr std::size_t bucket_count = (64 - sub_bucket_bits + 1) * sub_buckets;

  histogram() noexcept = default;
  histogram(const histogram& other) noexcept { merge(other); }
  histogram& operator=(const histogram& other) noexcept {
    if (this != &other) {
      reset();
      merge(other);
    }
    return *this;
  }

  /// Records one value. Single writer per instance; wait-free, no allocation.
  void record(std::uint64_t value) noexcept { record(value, 1); }

  /// Records `count` copies of `value`.
  void record(std::uint64_t value, std::uint64_t count) noexcept {
    // The count last, released: a reader that sees it (acquire) sees the value in min, max,
    // its bucket and the sum (see the note at bump()).
    bump(buckets_[bucket_of(value)], count);
    bump(sum_, value * count);  // wraps after 2^64; sum() is for means over sane ranges
    if (value > max_.load(std::memory_order_relaxed)) max_.store(value, std::memory_order_relaxed);
    if (value < min_.load(std::memory_order_relaxed)) min_.store(value, std::memory_order_relaxed);
    count_.store(count_.load(std::memory_order_relaxed) + count, std::memory_order_release);
  }

  /// Adds every count of `other` into this one. Not safe against another writer of *this.
  void merge(const histogram& other) noexcept;
  /// Forgets everything. Not safe against a concurrent record().
  void reset() noexcept;

  std::uint64_t count() const noexcept { return count_.load(std::memory_order_acquire); }
  std::uint64_t sum() const noexcept { return sum_.load(std::memory_order_relaxed); }
  /// 0 when empty.
  std::uint64_t min() const noexcept {
    return count() == 0 ? 0 : min_.load(std::memory_order_relaxed);
  }
  std::uint64_t max() const noexcept { return max_.load(std::memory_order_relaxed); }
  double mean() const noexcept;
  /// Nearest-rank percentile, p in [0, 100]; see the header comment. p outside is clamped.
  std::uint64_t percentile(double p) const noexcept;
  /// The number of recorded values v with lowest_equivalent(v) <= value, i.e. in buckets at or
  /// below value's bucket.
  std::uint64_t count_at_or_below(std::uint64_t value) const noexcept;

  /// Bucket arithmetic, exposed for tests and for renderers (Prometheus buckets).
  static constexpr std::size_t bucket_of(std::uint64_t v) noexcept {
    if (v < sub_buckets) return static_cast<std::size_t>(v);
    const unsigned k = 63u - static_cast<unsigned>(std::countl_zero(v));  // floor(log2 v) >= 5
    return static_cast<std::size_t>((k - sub_bucket_bits + 1) * sub_buckets +
                                    ((v >> (k - sub_bucket_bits)) - sub_buckets));
  }
  /// Smallest value that falls in bucket b.
  static constexpr std::uint64_t bucket_low(std::size_t b) noexcept {
    if (b < sub_buckets) return b;
    const std::uint64_t k = b / sub_buckets + sub_bucket_bits - 1;  // the power of two
    const std::uint64_t sub = b % sub_buckets;
    return (sub_buckets + sub) << (k - sub_bucket_bits);
  }
  /// Largest value that falls in bucket b.
  static constexpr std::uint64_t bucket_high(std::size_t b) noexcept {
    return b + 1 == bucket_count ? ~std::uint64_t{0} : bucket_low(b + 1) - 1;
  }
  /// The count in bucket b.
  std::uint64_t bucket(std::size_t b) const noexcept {
    return buckets_[b].load(std::memory_order_relaxed);
  }

 private:
  // One writer, so a load and a store make each add. The count is stored last with release and
  // read first with acquire (count(), and so min(), percentile() and merge()), so every value it
  // counts is already in min, max, the buckets and the sum: min() never reads the initial ~0 of
  // a histogram that has a count, nor max() a value below one counted. The other fields are
  // relaxed: read after the count they may be newer than it (the buckets may hold more than
  // count() says), never older. bus::metrics() takes its count from the buckets.
  static void bump(std::atomic<std::uint64_t>& c, std::uint64_t by) noexcept {
    c.store(c.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
  }

  std::array<std::atomic<std::uint64_t>, bucket_count> buckets_{};
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_{0};
  std::atomic<std::uint64_t> min_{~std::uint64_t{0}};
  std::atomic<std::uint64_t> max_{0};
};

}  // namespace tachyon
