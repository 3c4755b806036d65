// tachyon/detail/worker/parking.hpp — wait_point: an event count (folly's EventCount, Dekker
// style) on a futex: the way idle workers sleep until there is work, and blocked publishers
// until there is room, without lost wake-ups and without a syscall on the notifier's side when
// nobody sleeps. (Named wait_point, not event count, so that "event counts" means only the
// metrics' outcome counters.)
//
// Protocol. Waiter:   key = prepare_wait(); if (condition()) cancel_wait(); else wait(key);
//           Notifier: make condition() true with a seq_cst operation; notify_one/all().
// Memory ordering: prepare_wait and the notifier's waiter check are seq_cst, so either the
// waiter's check of the condition sees the notifier's change, or the notifier sees the
// waiter and bumps the generation, which makes wait() return.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace tachyon::detail {

class wait_point {
 public:
  using key = std::uint32_t;

  /// The generation is a 32-bit futex word that every wake-up bumps; it wraps after 2^32 of them,
  /// harmlessly: a waiter compares only for equality with the key it took, so the wrap is
  /// seen as a change like any other. The only way to miss a wake-up would be for exactly
  /// 2^32 wake-ups to happen between a waiter's prepare_wait() and its futex call.
  /// `initial_generation` lets a test start near the wrap.
  explicit wait_point(std::uint32_t initial_generation = 0) noexcept
      : generation_(initial_generation) {}

  key prepare_wait() noexcept {
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    return generation_.load(std::memory_order_seq_cst);
  }
  /// seq_cst is more than this needs: this waiter will not sleep, so a notifier that sees the
  /// count drop loses nothing, and no other waiter's count is undone by it; relaxed would do.
  void cancel_wait() noexcept { waiters_.fetch_sub(1, std::memory_order_seq_cst); }

  /// Sleeps until a notify after prepare_wait() returned `k`, or until `deadline` passes
  /// (steady_clock; time_point::max() for none). Returns false on time-out. Ends the wait
  /// either way (no cancel_wait() after it). May return spuriously: re-check the condition.
  bool wait(key k, std::chrono::steady_clock::time_point deadline =
                       std::chrono::steady_clock::time_point::max()) noexcept;

  /// Cheap when nobody waits: one load of a line the waiters rarely write.
  void notify_one() noexcept {
    if (waiters_.load(std::memory_order_seq_cst) != 0) wake(false);
  }
  void notify_all() noexcept {
    if (waiters_.load(std::memory_order_seq_cst) != 0) wake(true);
  }

 private:
  void wake(bool all) noexcept;

  std::atomic<std::uint32_t> generation_;  // the futex word
  std::atomic<std::uint32_t> waiters_{0};
};

}  // namespace tachyon::detail
