// tachyon::clock: ticks never run backwards on a thread, and to_ns() agrees with steady_clock.
// The agreement check brackets each tick read between two steady_clock reads and allows for the
// bracket's width, so a preemption widens the allowance instead of failing the test.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>
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
  if (!tachyon::clock::detail::use_counter) {
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

TEST(Clock, ReadsTheCpusCounterWhereThereIsAUsableOne) {
  const std::string source = tachyon::clock::source();
#if defined(__aarch64__)
  // The generic timer's count is used whenever firmware programmed its frequency.
  std::uint64_t frequency;
  asm volatile("mrs %0, cntfrq_el0" : "=r"(frequency));
  EXPECT_EQ(tachyon::clock::detail::use_counter, frequency != 0);
  EXPECT_EQ(source, tachyon::clock::detail::use_counter ? "cntvct_el0" : "steady_clock");
#elif defined(__x86_64__)
  EXPECT_EQ(source, tachyon::clock::detail::use_counter ? "tsc" : "steady_clock");
#else
  EXPECT_FALSE(tachyon::clock::detail::use_counter);
  EXPECT_EQ(source, "steady_clock");
#endif
}
