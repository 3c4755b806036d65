// detail::wait_point on its own: no lost wake-up, time-outs, and the 32-bit generation's wrap.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#include <tachyon/detail/worker/parking.hpp>

using tachyon::detail::wait_point;

TEST(WaitPoint, ANotifyAfterPrepareWaitEndsTheWaitAcrossTheGenerationWrap) {
  wait_point ec(UINT32_MAX - 2);
  for (int i = 0; i < 6; ++i) {  // generations MAX-2, MAX-1, MAX, 0, 1, 2
    const auto key = ec.prepare_wait();
    ec.notify_one();            // a waiter is registered: this bumps the generation
    EXPECT_TRUE(ec.wait(key));  // returns at once instead of sleeping
  }
}

TEST(WaitPoint, PingPongAcrossTheWrapLosesNoWakeUp) {
  // Two threads hand a token back and forth through two wait points that start just before
  // the wrap; a lost wake-up would leave one asleep forever (bounded by the timed wait).
  wait_point to_b(UINT32_MAX - 500), to_a(UINT32_MAX - 500);
  std::atomic<int> token{0};
  constexpr int rounds = 2000;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  auto wait_for = [&](wait_point& ec, int value) {
    while (token.load() != value) {
      const auto key = ec.prepare_wait();
      if (token.load() == value) {
        ec.cancel_wait();
        return true;
      }
      if (!ec.wait(key, deadline)) return token.load() == value;
    }
    return true;
  };
  std::thread b([&] {
    for (int i = 0; i < rounds; ++i) {
      if (!wait_for(to_b, 2 * i + 1)) return;
      token.store(2 * i + 2);
      to_a.notify_one();
    }
  });
  bool ok = true;
  for (int i = 0; i < rounds && ok; ++i) {
    token.store(2 * i + 1);
    to_b.notify_one();
    ok = wait_for(to_a, 2 * i + 2);
  }
  b.join();
  EXPECT_TRUE(ok);
  EXPECT_EQ(token.load(), 2 * rounds);
}

TEST(WaitPoint, ATimedWaitWithoutNotifyTimesOut) {
  wait_point ec;
  const auto key = ec.prepare_wait();
  EXPECT_FALSE(ec.wait(key, std::chrono::steady_clock::now() + std::chrono::milliseconds(1)));
  ec.notify_all();  // no waiter left: nothing to wake, nothing breaks
}
