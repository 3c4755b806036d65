// Lifecycle features: bus::subscribers<T>() (a lock-free count of T's live handlers).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pthread.h>

#include <dirent.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <latch>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "books.hpp"
#include "common.hpp"

#include <tachyon/tachyon.hpp>

namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using tt::Events;
using tt::Halt;
using tt::Note;
using tt::Order;
using tt::Quote;

// ---- subscribers<T>() ---------------------------------------------------------------------------

TEST(Subscribers, CountsLiveHandlersThroughSubscribeAndUnsubscribe) {
  tachyon::bus<Events> bus{tt::manual()};
  EXPECT_EQ(bus.subscribers<Quote>(), 0u);
  auto a = bus.subscribe<Quote>([](const Quote&) {});
  auto b = bus.subscribe<Quote>([](const Quote&, const tachyon::meta&) {}, {.order = -5});
  std::optional<tachyon::subscription> c = bus.subscribe<Quote>([](const Quote&) {});
  auto o = bus.subscribe<Order>([](const Order&) {});
  EXPECT_EQ(bus.subscribers<Quote>(), 3u);
  EXPECT_EQ(bus.subscribers<Order>(), 1u);
  EXPECT_EQ(bus.subscribers<Halt>(), 0u);

  b.unsubscribe();
  EXPECT_EQ(bus.subscribers<Quote>(), 2u);
  b.unsubscribe();  // idempotent: counts nothing twice
  EXPECT_EQ(bus.subscribers<Quote>(), 2u);
  c.reset();  // the handle's destruction removes it
  EXPECT_EQ(bus.subscribers<Quote>(), 1u);
  a.detach();  // a detached handler stays until the bus goes
  EXPECT_EQ(bus.subscribers<Quote>(), 1u);
  auto moved = std::move(o);  // moving the handle keeps the subscription
  EXPECT_EQ(bus.subscribers<Order>(), 1u);
  moved = tachyon::subscription{};
  EXPECT_EQ(bus.subscribers<Order>(), 0u);
}

TEST(Subscribers, InsideAHandlerSeesItsOwnSubscribeAndUnsubscribeAtOnce) {
  tachyon::bus<Events> bus{tt::manual()};
  std::vector<std::size_t> seen;
  tachyon::subscription self, added;
  auto other = bus.subscribe<Quote>([](const Quote&) {});
  self = bus.subscribe<Quote>([&](const Quote&) {
    seen.push_back(bus.subscribers<Quote>());  // 2: itself and `other`
    self.unsubscribe();                        // from inside: waits for nobody
    seen.push_back(bus.subscribers<Quote>());  // 1: the removal counts at once
    added = bus.subscribe<Quote>([](const Quote&) {});
    seen.push_back(bus.subscribers<Quote>());  // 2 again
    seen.push_back(bus.subscribers<Order>());  // another type, from inside: 0
  });
  ASSERT_EQ(bus.publish(Quote{1, 1, 1}), tachyon::result::ok);
  EXPECT_EQ(bus.poll(), 1u);
  EXPECT_EQ(seen, (std::vector<std::size_t>{2, 1, 2, 0}));
  EXPECT_EQ(bus.subscribers<Quote>(), 2u);
  // And from dispatch(), on the caller's thread.
  std::size_t in_dispatch = 0;
  auto h = bus.subscribe<Halt>([&](const Halt&) { in_dispatch = bus.subscribers<Halt>(); });
  bus.dispatch(Halt{1});
  EXPECT_EQ(in_dispatch, 1u);
}

TEST(Subscribers, ReadsSafelyWhileOtherThreadsSubscribeAndUnsubscribe) {
  // Readers (a plain thread and the workers' handlers) count while a writer swaps the list
  // under them; under ASan a read of a freed list fails, under TSan an unordered one. The
  // count is always between what is certainly there and what may be.
  const int rounds = tt::sanitized() ? 300 : 3000;
  tachyon::bus<Events> bus{
      {.workers = 2, .lane_capacity = 1024, .overflow = tachyon::overflow::drop}};
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::atomic<std::uint64_t> reads{0};
  auto base = bus.subscribe<Quote>([&](const Quote&) {
    const std::size_t n = bus.subscribers<Quote>();  // inside a handler, on a worker
    if (n < 1 || n > 4) bad.fetch_add(1);
    reads.fetch_add(1);
  });
  std::thread writer([&] {
    for (int i = 0; i < rounds; ++i) {
      auto x = bus.subscribe<Quote>([](const Quote&) {});
      auto y = bus.subscribe<Quote>([](const Quote&) {}, {.order = i % 3 - 1});
      auto z = bus.subscribe<Quote>([](const Quote&) {});
      y.unsubscribe();
    }  // x and z go at the end of each round
    done.store(true);
  });
  std::thread reader([&] {
    while (!done.load()) {
      const std::size_t n = bus.subscribers<Quote>();
      if (n < 1 || n > 4) bad.fetch_add(1);
      reads.fetch_add(1);
    }
  });
  std::thread publisher([&] {
    while (!done.load()) (void)bus.publish(Quote{1, 1, 1});
  });
  writer.join();
  reader.join();
  publisher.join();
  bus.stop();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(reads.load(), 0u);
  EXPECT_EQ(bus.subscribers<Quote>(), 1u);
  tt::expect_books_balance(bus.metrics());
}

}  // namespace
