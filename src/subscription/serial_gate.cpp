// detail::serial_gate's slow half (detail/subscription/serial_gate.hpp): the wait for a held
// gate, on a Linux futex.
#include <tachyon/detail/subscription/serial_gate.hpp>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace tachyon::detail {

namespace {
void futex(std::atomic<std::uint32_t>* word, int op, std::uint32_t val) noexcept {
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op, val, nullptr, nullptr, 0);
}
}  // namespace

void serial_gate::enter_contended() noexcept {
  waits_.fetch_add(1, std::memory_order_relaxed);  // a count for metrics: orders nothing
  for (std::uint32_t i = 0; i < spin_polls; ++i) {
    cpu_relax();
    // The poll is relaxed; the CAS that takes the gate acquires, as enter()'s.
    std::uint32_t c = word_.load(std::memory_order_relaxed);
    if (c == 0 &&
        word_.compare_exchange_weak(c, 1, std::memory_order_acquire, std::memory_order_relaxed))
      return;
  }
  // Mark the gate "held, sleepers" before each sleep, so that leave() wakes one of us; a thread
  // that gets it this way keeps the mark (it cannot know whether others still sleep), which
  // costs at most one wake-up syscall too many. The acquire counts when it reads 0: the gate
  // is ours, after the last holder's release.
  while (word_.exchange(2, std::memory_order_acquire) != 0)
    futex(&word_, FUTEX_WAIT_PRIVATE, 2);  // returns at once if the word is no longer 2
}

void serial_gate::wake_one() noexcept { futex(&word_, FUTEX_WAKE_PRIVATE, 1); }

}  // namespace tachyon::detail
