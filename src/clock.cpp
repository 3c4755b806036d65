// tachyon::clock: TSC when the CPU says it is invariant (constant rate across P/C-states and
// synchronised across cores), steady_clock otherwise.
#include <tachyon/clock.hpp>

#include <thread>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace tachyon::clock {

namespace {
bool detect_invariant_tsc() noexcept {
#if defined(__x86_64__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0x80000000u, nullptr) < 0x80000007u) return false;
  __cpuid(0x80000007u, a, b, c, d);
  return (d & (1u << 8)) != 0;  // CPUID.80000007H:EDX[8] "invariant TSC"
#else
  return false;
#endif
}

double calibrate() noexcept {
  if (!detail::use_tsc) return 1.0;
  using sc = std::chrono::steady_clock;
  // Two short windows; the longer one wins. 5 ms keeps the error under 0.1% even when a
  // window is stretched by a preemption, because both ends are read back to back.
  const auto t0 = sc::now();
  const std::uint64_t c0 = now();
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const auto t1 = sc::now();
  const std::uint64_t c1 = now();
  const double ns =
      static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
  return c1 > c0 ? ns / static_cast<double>(c1 - c0) : 1.0;
}
}  // namespace

namespace detail {
const bool use_tsc = detect_invariant_tsc();
}

double ns_per_tick() noexcept {
  static const double v = calibrate();  // thread-safe static init
  return v;
}

}  // namespace tachyon::clock
