// tachyon/clock.hpp — the cheap clock stamped on every published event.
//
// It reads a counter of the CPU's where there is a usable one: on x86-64 the time-stamp counter
// when the CPU says it is invariant (no syscall; 7.8-8.7 ns a call in a tight loop on the Intel
// development VM, 11.5 ns on an earlier AMD one); on aarch64 the generic timer's virtual count,
// cntvct_el0, when its frequency register is set. Either rate is calibrated against
// steady_clock (ns_per_tick()), not taken from what the CPU reports. Elsewhere it reads
// std::chrono::steady_clock and a tick is a nanosecond. Ticks are comparable across threads and
// cores of one machine; convert differences with to_ns(). On x86-64 the read is not ordered
// with the loads around it (no lfence): a difference between reads on two threads may come out
// a few ns negative, and tachyon's latency figures clamp it at zero. The counter's resolution is
// its rate's: a TSC tick is under a ns; a cntvct_el0 tick is 1 / cntfrq_el0 (16 ns under
// qemu-user's 62.5 MHz).
#pragma once

#include <chrono>
#include <cstdint>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace tachyon::clock {

namespace detail {
/// True when now() reads the CPU's counter, false when steady_clock. Set once at start-up
/// (static initialisation in src/clock.cpp). Thread-safe to read.
extern const bool use_counter;
}  // namespace detail

/// Now, in ticks. Never allocates, never blocks, thread-safe.
inline std::uint64_t now() noexcept {
#if defined(__x86_64__)
  if (detail::use_counter) return __rdtsc();
#elif defined(__aarch64__)
  if (detail::use_counter) {
    // isb first, as Linux's own reads of the counter do: the architecture lets a core read it
    // out of order with the instructions around it, so without one a thread could see it run
    // backwards.
    std::uint64_t ticks;
    asm volatile("isb\n\tmrs %0, cntvct_el0" : "=r"(ticks) : : "memory");
    return ticks;
  }
#endif
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

/// Nanoseconds per tick, calibrated against steady_clock once, on the first call (10 ms), from
/// two readings that each bracket a tick read between steady_clock reads < 2 us apart.
double ns_per_tick() noexcept;

/// What now() reads: "tsc", "cntvct_el0" or "steady_clock".
const char* source() noexcept;

/// A tick difference in nanoseconds.
inline double to_ns(std::uint64_t ticks) noexcept {
  return static_cast<double>(ticks) * ns_per_tick();
}

}  // namespace tachyon::clock
