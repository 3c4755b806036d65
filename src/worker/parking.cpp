// detail::wait_point (detail/worker/parking.hpp) on Linux futexes.
#include <tachyon/detail/worker/parking.hpp>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <ctime>

namespace tachyon::detail {

namespace {
long futex(std::atomic<std::uint32_t>* word, int op, std::uint32_t val,
           const timespec* timeout) noexcept {
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op, val, timeout, nullptr, 0);
}
}  // namespace

bool wait_point::wait(key k, std::chrono::steady_clock::time_point deadline) noexcept {
  using namespace std::chrono;
  bool in_time = true;
  // Acquire, paired with wake()'s bump: a waiter that sees the new generation sees the
  // notifier's change too, and its re-check finds it. No lost wake-up rests on it (that is the
  // seq_cst pair of the header comment, and the futex's own check of the word).
  while (generation_.load(std::memory_order_acquire) == k) {
    timespec ts{};
    const timespec* timeout = nullptr;
    if (deadline != steady_clock::time_point::max()) {
      const auto left = deadline - steady_clock::now();
      if (left <= nanoseconds::zero()) {
        in_time = false;
        break;
      }
      const auto ns = duration_cast<nanoseconds>(left).count();
      ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
      ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
      timeout = &ts;
    }
    // Returns at once (EAGAIN) if the generation moved since prepare_wait(): no lost wake-up.
    futex(&generation_, FUTEX_WAIT_PRIVATE, k, timeout);
  }
  // As cancel_wait()'s: the wait is over, so relaxed would do.
  waiters_.fetch_sub(1, std::memory_order_seq_cst);
  return in_time;
}

void wait_point::wake(bool all) noexcept {
  // Release is what this needs: a waiter whose prepare_wait() or wait() reads the new
  // generation then sees the notifier's change, made before. seq_cst is more than that.
  generation_.fetch_add(1, std::memory_order_seq_cst);
  futex(&generation_, FUTEX_WAKE_PRIVATE, all ? INT_MAX : 1, nullptr);
}

}  // namespace tachyon::detail
