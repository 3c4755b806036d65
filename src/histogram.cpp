// tachyon::histogram: merging and percentiles (record() is inline in the header).
#include <tachyon/histogram.hpp>

#include <algorithm>
#include <cmath>

namespace tachyon {

void histogram::merge(const histogram& other) noexcept {
  const std::uint64_t n = other.count();
  if (n == 0) return;
  for (std::size_t b = 0; b < bucket_count; ++b)
    if (const std::uint64_t c = other.bucket(b)) bump(buckets_[b], c);
  bump(count_, n);
  bump(sum_, other.sum());
  if (other.max() > max()) max_.store(other.max(), std::memory_order_relaxed);
  if (other.min() < min_.load(std::memory_order_relaxed))
    min_.store(other.min(), std::memory_order_relaxed);
}

void histogram::reset() noexcept {
  for (auto& b : buckets_) b.store(0, std::memory_order_relaxed);
  count_.store(0, std::memory_order_relaxed);
  sum_.store(0, std::memory_order_relaxed);
  min_.store(~std::uint64_t{0}, std::memory_order_relaxed);
  max_.store(0, std::memory_order_relaxed);
}

double histogram::mean() const noexcept {
  const std::uint64_t n = count();
  return n == 0 ? 0.0 : static_cast<double>(sum()) / static_cast<double>(n);
}

std::uint64_t histogram::percentile(double p) const noexcept {
  const std::uint64_t n = count();
  if (n == 0) return 0;
  if (!(p > 0.0)) return min();  // also NaN
  if (p >= 100.0) return max();
  // Nearest rank: the smallest rank r (1-based) with r >= p/100 * n.
  auto rank = static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(n)));
  rank = std::clamp<std::uint64_t>(rank, 1, n);
  std::uint64_t seen = 0;
  for (std::size_t b = 0; b < bucket_count; ++b) {
    seen += bucket(b);
    if (seen >= rank) return std::min(bucket_high(b), max());
  }
  return max();  // counts read while a writer records may not add up; never past max
}

std::uint64_t histogram::count_at_or_below(std::uint64_t value) const noexcept {
  const std::size_t last = bucket_of(value);
  std::uint64_t seen = 0;
  for (std::size_t b = 0; b <= last; ++b) seen += bucket(b);
  return seen;
}

}  // namespace tachyon
