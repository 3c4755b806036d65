// tachyon::clock: ticks never run backwards on a thread, and to_ns() agrees with steady_clock.
// The agreement check brackets each tick read between two steady_clock reads and allows for the
// bracket's width, so a preemption widens the allowance instead of failing the test.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <thread>

#include <tachyon/clock.hpp>

namespace {
using sc = std::chrono::steady_clock;

struct bracketed {
  sc::time_point before, after;
  std::uint64_t ticks;
};
bracketed read() {
  bracketed r;
  r.before = sc::now();
  r.ticks = tachyon::clock::now();
  r.after = sc::now();
  return r;
}
double ns(sc::duration d) { return std::chrono::duration<double, std::nano>(d).count(); }
}  // namespace

TEST(Clock, NeverRunsBackwardsOnOneThread) {
  std::uint64_t last = tachyon::clock::now();
  for (int i = 0; i < 200000; ++i) {
    const std::uint64_t t = tachyon::clock::now();
    ASSERT_GE(t, last) << "read " << i;
    last = t;
  }
}

TEST(Clock, TicksConvertToSteadyClockNanoseconds) {
  EXPECT_GT(tachyon::clock::ns_per_tick(), 0.0);
  if (!tachyon::clock::detail::use_tsc) {
    EXPECT_EQ(tachyon::clock::ns_per_tick(), 1.0);
  }
  const bracketed a = read();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const bracketed b = read();
  const double measured = tachyon::clock::to_ns(b.ticks - a.ticks);
  // The true interval between the tick reads lies between these two.
  const double shortest = ns(b.before - a.after);
  const double longest = ns(b.after - a.before);
  // 1% for the calibration (it is good to about 0.02%: see clock.cpp).
  EXPECT_GE(measured, shortest * 0.99);
  EXPECT_LE(measured, longest * 1.01);
}
