// Publishing an inline event allocates nothing: global operator new is counted here (this
// file is its own executable for that reason), and tachyon's own allocator counts per thread.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "common.hpp"

namespace {
thread_local std::uint64_t news = 0;
}

// The replacements pair malloc with free, which GCC's heuristic cannot see through.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
  ++news;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace {
struct counts {
  std::uint64_t news, tachyon;
};
counts now() { return {news, tachyon::detail::thread_allocations()}; }
}  // namespace

TEST(Allocation, OperatorNewIsCountedHere) {
  const auto before = now();
  void* p = ::operator new(16);  // a call, not a new-expression: the compiler may not elide it
  ::operator delete(p);
  EXPECT_EQ(now().news, before.news + 1);  // the counter itself works
}

TEST(Allocation, PublishOfInlineEventsAllocatesNothing) {
  static_assert(tachyon::detail::stored_inline<tt::Quote>);
  tachyon::bus<tt::Events> bus{tt::manual(4096)};
  ASSERT_EQ(bus.publish(tt::Quote{}), tachyon::result::ok);  // this thread's context: once
  bus.poll();
  const auto before = now();
  for (int round = 0; round < 3; ++round) {  // fill to the bound, drain, again
    for (int i = 0; i < 4096; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), tachyon::result::ok);
    const auto mid = now();
    EXPECT_EQ(mid.news, before.news);
    EXPECT_EQ(mid.tachyon, before.tachyon);
    bus.poll();
  }
  EXPECT_EQ(bus.metrics().lane_allocations, 0u);
}

TEST(Allocation, PublishBatchOfInlineEventsAllocatesNothing) {
  tachyon::bus<tt::Events> bus{tt::manual(4096)};
  std::vector<tt::Quote> quotes(4096, tt::Quote{});
  ASSERT_EQ(bus.publish(tt::Quote{}), tachyon::result::ok);
  bus.poll();
  const auto before = now();
  const auto r = bus.publish_batch(std::span<const tt::Quote>(quotes));
  EXPECT_EQ(r.queued, 4096u);
  EXPECT_EQ(now().news, before.news);
  EXPECT_EQ(now().tachyon, before.tachyon);
  bus.poll();
}

TEST(Allocation, KeyedPublishOfInlineEventsAllocatesNothingOnceItsNodesExist) {
  // A thread's first keyed events make its nodes (and the bus's first one the strands); the
  // nodes come back to it when their events have run, and are used again.
  tachyon::bus<tt::Events> bus{tt::manual(4096)};
  std::uint64_t ran = 0;
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) { ++ran; });
  auto key = [](int i) {
    return tachyon::publish_options{.key = 1 + static_cast<unsigned>(i % 16)};
  };
  for (int i = 0; i < 4096; ++i) ASSERT_EQ(bus.publish(tt::Quote{}, key(i)), tachyon::result::ok);
  bus.poll();
  const auto before = now();
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 4096; ++i) ASSERT_EQ(bus.publish(tt::Quote{}, key(i)), tachyon::result::ok);
    const auto mid = now();
    EXPECT_EQ(mid.news, before.news);
    EXPECT_EQ(mid.tachyon, before.tachyon);
    bus.poll();
  }
  EXPECT_EQ(ran, 4u * 4096);
  EXPECT_EQ(bus.metrics().lane_allocations, 0u);
}

TEST(Allocation, DispatchAllocatesNothing) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  int ran = 0;
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) { ++ran; });
  bus.dispatch(tt::Quote{});
  const auto before = now();
  for (int i = 0; i < 1000; ++i) bus.dispatch(tt::Quote{});
  EXPECT_EQ(now().news, before.news);
  EXPECT_EQ(now().tachyon, before.tachyon);
  EXPECT_EQ(ran, 1001);
}

TEST(Allocation, BoxedEventsAllocateOnceThroughTachyon) {
  static_assert(!tachyon::detail::stored_inline<tt::Note>);
  tachyon::bus<tt::Events> bus{tt::manual()};
  ASSERT_EQ(bus.publish(tt::Quote{}), tachyon::result::ok);
  bus.poll();
  tt::Note n{"x"};
  const auto before = now();
  ASSERT_EQ(bus.publish(std::move(n)), tachyon::result::ok);
  EXPECT_EQ(now().tachyon, before.tachyon + 1);
  bus.poll();
}
