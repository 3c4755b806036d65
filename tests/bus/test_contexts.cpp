// Per-thread contexts: made on a thread's first use of a bus, handed back when the thread ends.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "common.hpp"

using tachyon::result;

namespace {

std::atomic<std::uint64_t> published_at_exit{0};

/// Publishes from its destructor, which runs at thread exit after tachyon's own thread_local
/// registry is gone when that registry was made later (the thread used the bus after this
/// object was constructed): thread_local destructors run in reverse order of construction.
struct publishes_at_exit {
  tachyon::bus<tt::Events>* bus = nullptr;
  ~publishes_at_exit() {
    if (bus == nullptr) return;
    for (std::uint32_t i = 0; i < 2; ++i)
      if (bus->publish(tt::Quote{i, 0, 0}) == result::ok) published_at_exit.fetch_add(1);
  }
};
thread_local publishes_at_exit at_exit;

}  // namespace

TEST(Contexts, ThreadsPublishingFromThreadLocalDestructorsReuseContexts) {
  constexpr int rounds = 75, at_once = 4;  // 300 threads, at most 4 alive at a time
  constexpr std::uint64_t per_thread = 1 + 2;
  published_at_exit = 0;
  tachyon::bus<tt::Events> bus{tt::manual(4096)};
  std::atomic<std::uint64_t> ran{0};
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) { ran.fetch_add(1); });
  for (int r = 0; r < rounds; ++r) {
    std::vector<std::thread> threads;
    for (int t = 0; t < at_once; ++t)
      threads.emplace_back([&] {
        at_exit.bus = &bus;                                      // constructed first ...
        ASSERT_EQ(bus.publish(tt::Quote{9, 0, 0}), result::ok);  // ... the registry after it
      });
    for (auto& t : threads) t.join();
  }
  const std::uint64_t threads = rounds * at_once;
  EXPECT_EQ(published_at_exit.load(), threads * 2);
  const auto m = bus.metrics();
  // The threads alive at once and the main thread: a joined thread has handed its context
  // back (pthread_join returns after the thread's exit-time destructors have run).
  EXPECT_LE(m.threads, at_once + 1u) << "contexts of exited threads were not reused";
  EXPECT_EQ(m.total.accepted, threads * per_thread);
  EXPECT_EQ(bus.poll(), threads * per_thread);
  EXPECT_EQ(ran.load(), threads * per_thread);
  const auto after = bus.metrics();
  EXPECT_EQ(after.total.dispatched, threads * per_thread);
  EXPECT_EQ(after.in_flight, 0u);
}
