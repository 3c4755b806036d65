// tachyon::histogram: bucket arithmetic, exact percentiles on known data, merging, and a reader
// running beside the writer.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include <tachyon/histogram.hpp>

using tachyon::histogram;

namespace {

/// Nearest rank on sorted data: the smallest value with at least p% of the values at or below.
std::uint64_t exact_percentile(const std::vector<std::uint64_t>& sorted, double p) {
  if (p <= 0.0) return sorted.front();
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

/// What the histogram must report for an exact percentile: the upper edge of its bucket,
/// never above the largest value recorded.
std::uint64_t reported(std::uint64_t exact, std::uint64_t max) {
  return std::min(histogram::bucket_high(histogram::bucket_of(exact)), max);
}

constexpr double kPercentiles[] = {0, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 99.999, 100};

}  // namespace

TEST(Histogram, BucketsTileTheWholeRangeWithoutGaps) {
  EXPECT_EQ(histogram::bucket_low(0), 0u);
  EXPECT_EQ(histogram::bucket_high(histogram::bucket_count - 1),
            std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(histogram::bucket_of(std::numeric_limits<std::uint64_t>::max()),
            histogram::bucket_count - 1);
  for (std::size_t b = 0; b < histogram::bucket_count; ++b) {
    const std::uint64_t lo = histogram::bucket_low(b), hi = histogram::bucket_high(b);
    ASSERT_LE(lo, hi) << "bucket " << b;
    ASSERT_EQ(histogram::bucket_of(lo), b) << "bucket " << b;
    ASSERT_EQ(histogram::bucket_of(hi), b) << "bucket " << b;
    if (b + 1 < histogram::bucket_count) {
      ASSERT_EQ(histogram::bucket_low(b + 1), hi + 1);
    }
    // Below 64 every value has a bucket of its own; above, a bucket is at most 1/32 of its
    // values wide.
    if (hi < 64) {
      ASSERT_EQ(lo, hi) << "bucket " << b;
    } else {
      ASSERT_LE(static_cast<double>(hi - lo + 1) / static_cast<double>(lo), 1.0 / 32) << b;
    }
  }
}

TEST(Histogram, EmptyReportsZeros) {
  histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.mean(), 0.0);
  for (double p : kPercentiles) EXPECT_EQ(h.percentile(p), 0u) << p;
}

TEST(Histogram, SmallValuesAreExact) {
  histogram h;
  for (std::uint64_t v = 1; v <= 60; ++v) h.record(v);  // 1..60, each once
  EXPECT_EQ(h.count(), 60u);
  EXPECT_EQ(h.sum(), 60u * 61u / 2u);
  EXPECT_DOUBLE_EQ(h.mean(), 30.5);
  EXPECT_EQ(h.min(), 1u);
  EXPECT_EQ(h.max(), 60u);
  EXPECT_EQ(h.percentile(0), 1u);
  EXPECT_EQ(h.percentile(50), 30u);  // rank 30
  EXPECT_EQ(h.percentile(90), 54u);  // rank 54
  EXPECT_EQ(h.percentile(99), 60u);  // rank ceil(59.4) = 60
  EXPECT_EQ(h.percentile(100), 60u);
  EXPECT_EQ(h.percentile(1.0 / 60 * 100), 1u);  // exactly rank 1
  EXPECT_EQ(h.count_at_or_below(10), 10u);
  EXPECT_EQ(h.count_at_or_below(0), 0u);
}

TEST(Histogram, LargeValuesReportTheirBucketsUpperEdgeButNeverPastMax) {
  histogram h;
  h.record(1000);  // bucket [992, 1007]: 2^9..2^10 in 32 steps of 16
  h.record(1000);
  h.record(5000);  // bucket [4992, 5119]
  EXPECT_EQ(histogram::bucket_low(histogram::bucket_of(1000)), 992u);
  EXPECT_EQ(histogram::bucket_high(histogram::bucket_of(1000)), 1007u);
  EXPECT_EQ(h.percentile(50), 1007u);
  EXPECT_EQ(h.percentile(66), 1007u);
  EXPECT_EQ(h.percentile(67), 5000u);  // the edge is 5119, clamped to the max seen
  EXPECT_EQ(h.percentile(100), 5000u);
  EXPECT_EQ(h.min(), 1000u);
}

TEST(Histogram, PercentilesMatchNearestRankOnRandomData) {
  std::mt19937_64 rng(12345);
  for (int trial = 0; trial < 8; ++trial) {
    // Log-uniform values across 1 ns .. ~1 s, the spread latencies have.
    std::uniform_real_distribution<double> exponent(0.0, 30.0);
    const std::size_t n = 1 + rng() % 20000;
    std::vector<std::uint64_t> values(n);
    histogram h;
    for (auto& v : values) {
      v = static_cast<std::uint64_t>(std::exp2(exponent(rng)));
      h.record(v);
    }
    std::sort(values.begin(), values.end());
    ASSERT_EQ(h.count(), n);
    EXPECT_EQ(h.min(), values.front());
    EXPECT_EQ(h.max(), values.back());
    for (double p : kPercentiles) {
      const std::uint64_t exact = exact_percentile(values, p);
      const std::uint64_t got = h.percentile(p);
      EXPECT_EQ(got, p == 0 ? values.front() : reported(exact, values.back()))
          << "p" << p << " n=" << n;
      EXPECT_GE(got, exact);
      EXPECT_LE(static_cast<double>(got - exact), static_cast<double>(exact) / 32.0);
    }
  }
}

TEST(Histogram, RecordWithCountEqualsRepeatedRecords) {
  histogram a, b;
  a.record(777, 5);
  a.record(3);
  for (int i = 0; i < 5; ++i) b.record(777);
  b.record(3);
  EXPECT_EQ(a.count(), b.count());
  EXPECT_EQ(a.sum(), b.sum());
  for (double p : kPercentiles) EXPECT_EQ(a.percentile(p), b.percentile(p)) << p;
}

TEST(Histogram, ExtremesAreKept) {
  histogram h;
  h.record(0);
  h.record(std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(h.percentile(50), 0u);
  EXPECT_EQ(h.percentile(100), std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(h.percentile(-5), 0u);  // clamped to [0, 100]
  EXPECT_EQ(h.percentile(250), std::numeric_limits<std::uint64_t>::max());
}

TEST(Histogram, MergeOfPartsEqualsTheWhole) {
  std::mt19937_64 rng(7);
  histogram whole, parts[3];
  for (int i = 0; i < 30000; ++i) {
    const std::uint64_t v = rng() % 1'000'000;
    whole.record(v);
    parts[i % 3].record(v);
  }
  histogram merged;
  for (const auto& p : parts) merged.merge(p);
  EXPECT_EQ(merged.count(), whole.count());
  EXPECT_EQ(merged.sum(), whole.sum());
  EXPECT_EQ(merged.min(), whole.min());
  EXPECT_EQ(merged.max(), whole.max());
  for (std::size_t b = 0; b < histogram::bucket_count; ++b)
    ASSERT_EQ(merged.bucket(b), whole.bucket(b)) << "bucket " << b;
  const histogram copy = merged;
  for (double p : kPercentiles) EXPECT_EQ(copy.percentile(p), whole.percentile(p)) << p;
  merged.reset();
  EXPECT_EQ(merged.count(), 0u);
  EXPECT_EQ(merged.percentile(50), 0u);
  merged.merge(histogram{});  // merging an empty one changes nothing, min included
  EXPECT_EQ(merged.min(), 0u);
  merged.record(42);
  EXPECT_EQ(merged.min(), 42u);
}

// Per-thread instances recorded concurrently and merged after the join give exact totals; a
// reader running beside a writer sees counts that only grow (and TSan sees no race).
TEST(Histogram, PerThreadInstancesMergeExactlyAndReadersMayRunBesideTheWriter) {
  constexpr int kThreads = 4;
  constexpr std::uint64_t kPerThread = 50000;
  std::vector<histogram> per_thread(kThreads);
  std::atomic<bool> writing{true};
  std::thread reader([&] {
    std::uint64_t last = 0;
    while (writing.load(std::memory_order_acquire)) {
      const std::uint64_t now = per_thread[0].count();
      ASSERT_GE(now, last);
      last = now;
      (void)per_thread[0].percentile(99);
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t)
    writers.emplace_back([&, t] {
      for (std::uint64_t i = 0; i < kPerThread; ++i) per_thread[t].record(i % 1000 + t);
    });
  for (auto& w : writers) w.join();
  writing.store(false, std::memory_order_release);
  reader.join();
  histogram total;
  for (const auto& h : per_thread) total.merge(h);
  EXPECT_EQ(total.count(), kThreads * kPerThread);
  EXPECT_EQ(total.min(), 0u);
  EXPECT_EQ(total.max(), 999u + kThreads - 1);
  EXPECT_EQ(total.count_at_or_below(std::numeric_limits<std::uint64_t>::max()), total.count());
}
