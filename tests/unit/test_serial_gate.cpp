// detail::serial_gate on its own: mutual exclusion between threads (a plain counter that TSan
// would flag if two holders overlapped), re-entry on the holding thread, and sleepers woken.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "common.hpp"

#include <tachyon/detail/subscription/serial_gate.hpp>

using tachyon::detail::serial_gate;

TEST(SerialGate, HoldersOnSeveralThreadsNeverOverlap) {
  serial_gate gate;
  std::uint64_t plain = 0;  // written only under the gate: a data race if two held it at once
  std::atomic<int> inside{0}, most{0};
  constexpr int threads = 4;
  const int rounds = tt::sanitized() ? 5'000 : 50'000;
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < rounds; ++i) {
        const serial_gate::turn turn(gate);
        const int now = inside.fetch_add(1) + 1;
        int m = most.load();
        while (now > m && !most.compare_exchange_weak(m, now)) {
        }
        ++plain;
        inside.fetch_sub(1);
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(plain, std::uint64_t{threads} * static_cast<std::uint64_t>(rounds));
  EXPECT_EQ(most.load(), 1);
}

TEST(SerialGate, TheHoldingThreadEntersAgainWithoutWaiting) {
  serial_gate gate;
  ASSERT_TRUE(gate.enter());
  EXPECT_FALSE(gate.enter());  // nested: nothing taken, nothing to leave
  {
    const serial_gate::turn nested(gate);  // the same as a scope
  }
  // Still held by this thread: another thread cannot take it.
  std::atomic<bool> other_got_it{false};
  std::thread t([&] {
    const serial_gate::turn turn(gate);
    other_got_it.store(true);
  });
  EXPECT_TRUE(tt::eventually([&] { return gate.waits() == 1; }));  // it found it held
  EXPECT_FALSE(other_got_it.load());
  gate.leave();
  t.join();
  EXPECT_TRUE(other_got_it.load());
  EXPECT_EQ(gate.waits(), 1u);
}

TEST(SerialGate, ASleeperIsWokenWhenTheHolderLeaves) {
  // The holder keeps the gate far longer than the waiter's spin, so the waiter sleeps on the
  // futex; leave() must wake it (a lost wake-up would hang here, bounded by eventually()).
  serial_gate gate;
  ASSERT_TRUE(gate.enter());
  std::atomic<int> done{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 3; ++i)
    ts.emplace_back([&] {
      const serial_gate::turn turn(gate);
      done.fetch_add(1);
    });
  EXPECT_TRUE(tt::eventually([&] { return gate.waits() == 3; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(2));  // let them fall asleep (not needed
                                                              // for correctness)
  gate.leave();
  EXPECT_TRUE(tt::eventually([&] { return done.load() == 3; }));
  for (auto& t : ts) t.join();
}
