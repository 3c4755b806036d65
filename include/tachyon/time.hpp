// tachyon/time.hpp — the clock that retries, delays, deadlines, breakers and health read, and
// the traits through which a bus is given one.
//
// A bus reads "now" from its traits' time source, never from a global: the real one
// (steady_time, std::chrono::steady_clock) in production, a virtual_clock that a test moves
// by hand in the reference model and the fuzz test. It is read only off the hot path: when a
// retry or a delayed event is scheduled or falls due, when an event that carries a deadline
// starts, and when a breaker is open. (meta::publish_ticks is a separate, cheaper stamp:
// tachyon::clock, clock.hpp.)
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace tachyon {

/// Nanoseconds on a bus's time source (bus::now()); deadlines and not_before are given in it.
using duration = std::chrono::nanoseconds;

/// The real time source: std::chrono::steady_clock, in nanoseconds since its epoch.
struct steady_time {
  std::chrono::nanoseconds now() const noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::steady_clock::now().time_since_epoch());
  }
  /// A real clock moves by itself: a worker waiting for a timer may sleep until it is due.
  static constexpr bool is_virtual = false;
};

/// A clock that moves only when told (tests, simulations). Starts at 1 s, so that "0" never
/// reads as a time. Thread-safe. Meant for manual mode (config::workers = 0): a worker waiting
/// for a timer on a virtual clock does not sleep on it, it polls (see bus::now()).
class virtual_clock {
 public:
  // Release/acquire: a thread that reads a time also sees what the thread that moved the clock
  // there did first, as a test expects. The bus itself needs only the value (what it schedules
  // travels under the timer's lock).
  std::chrono::nanoseconds now() const noexcept {
    return std::chrono::nanoseconds(ns_.load(std::memory_order_acquire));
  }
  void advance(std::chrono::nanoseconds d) noexcept {
    ns_.fetch_add(d.count(), std::memory_order_acq_rel);
  }
  void set(std::chrono::nanoseconds t) noexcept { ns_.store(t.count(), std::memory_order_release); }
  static constexpr bool is_virtual = true;

 private:
  std::atomic<std::int64_t> ns_{1'000'000'000};
};

/// The second template parameter of tachyon::bus: compile-time choices that are not
/// configuration. `time_source` is default-constructed as a member of the bus and reached
/// through bus::time_source().
struct default_traits {
  using time_source = steady_time;
};

/// default_traits with a virtual_clock.
struct virtual_time_traits {
  using time_source = virtual_clock;
};

}  // namespace tachyon
