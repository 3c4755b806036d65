// tachyon/detail/resilience/backoff.hpp — a retry's delay (retry_policy), as the header
// tachyon/resilience.hpp states it: deterministic, so that the reference model and the bus
// agree to the nanosecond.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <tachyon/resilience.hpp>

namespace tachyon::detail {

/// splitmix64's finaliser: a well-mixed 64-bit hash.
constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/// The delay before retry `k` (1 = the first retry) of the event with `sequence`, in ns.
inline std::uint64_t backoff_ns(const retry_policy& p, std::uint32_t k,
                                std::uint64_t sequence) noexcept {
  const double initial = static_cast<double>(p.initial_delay.count());
  const double cap = static_cast<double>(p.max_delay.count());
  double d = initial * std::pow(p.multiplier, static_cast<double>(k - 1));
  d = std::min(d, cap);
  if (p.jitter > 0) {
    const double u = static_cast<double>(mix64(sequence ^ (std::uint64_t{k} << 56)) >> 11) *
                     (1.0 / 9007199254740992.0);  // [0, 1), 53 bits
    d *= 1.0 - p.jitter * u;
  }
  return static_cast<std::uint64_t>(std::llround(std::max(d, 0.0)));
}

}  // namespace tachyon::detail
