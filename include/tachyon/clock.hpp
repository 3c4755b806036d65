// tachyon/clock.hpp — the cheap clock stamped on every published event.
//
// On x86-64 with an invariant TSC it reads the time-stamp counter (no syscall; 7.8-8.7 ns a
// call in a tight loop on the Intel development VM, 11.5 ns on an earlier AMD one); elsewhere it
// reads std::chrono::steady_clock and a tick is a nanosecond. Ticks are comparable across threads
// and cores of one machine; convert differences with to_ns().
#pragma once

#include <chrono>
#include <cstdint>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace tachyon::clock {

namespace detail {
/// Set once at start-up (static initialisation in src/clock.cpp). Thread-safe to read.
extern const bool use_tsc;
}  // namespace detail

/// Now, in ticks. Never allocates, never blocks, thread-safe.
inline std::uint64_t now() noexcept {
#if defined(__x86_64__)
  if (detail::use_tsc) return __rdtsc();
#endif
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

/// Nanoseconds per tick, calibrated against steady_clock once, on the first call (10 ms), from
/// two readings that each bracket a tick read between steady_clock reads < 2 us apart.
double ns_per_tick() noexcept;

/// A tick difference in nanoseconds.
inline double to_ns(std::uint64_t ticks) noexcept {
  return static_cast<double>(ticks) * ns_per_tick();
}

}  // namespace tachyon::clock
