// detail::epoch_domain on its own, with fake readers (epoch_reader objects driven by the test
// instead of dispatching threads): retire/reclaim keep a pointer exactly as long as a reader
// that entered before its retirement is still in, synchronize() waits for such a reader and
// returns once it leaves. Every wait is bounded; the outcomes do not depend on timing.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <mutex>
#include <thread>

#include <tachyon/detail/subscription/epoch.hpp>

using tachyon::detail::epoch_domain;
using tachyon::detail::epoch_reader;
using namespace std::chrono_literals;

namespace {

/// The deleter the tests retire with: `p` is an int that counts the frees.
void count_free(void* p) { ++*static_cast<int*>(p); }

void retire(epoch_domain& d, int& freed) {
  std::lock_guard lock(d.mutex());
  d.retire(&freed, &count_free);
}

/// reclaim() under the lock, then free what it handed back; returns how many it freed.
std::size_t reclaim(epoch_domain& d) {
  epoch_domain::garbage g;
  {
    std::lock_guard lock(d.mutex());
    d.reclaim(g);
  }
  const std::size_t n = g.size();
  epoch_domain::free_garbage(g);
  return n;
}

struct Epoch : ::testing::Test {
  epoch_domain d{tachyon::detail::asymmetric_fences()};
  epoch_reader a, b;
  void SetUp() override {
    d.add_reader(a);
    d.add_reader(b);
  }
};

}  // namespace

TEST_F(Epoch, WithNoReaderInsideARetiredPointerIsFreedByTheNextReclaim) {
  int freed = 0;
  retire(d, freed);
  EXPECT_EQ(freed, 0);  // retire() never frees
  EXPECT_EQ(reclaim(d), 1u);
  EXPECT_EQ(freed, 1);
  EXPECT_EQ(reclaim(d), 0u);  // once only
}

TEST_F(Epoch, ARetiredPointerIsKeptWhileAReaderThatEnteredBeforeIsInside) {
  int freed = 0;
  d.enter(a);  // a may hold the table about to be retired
  retire(d, freed);
  EXPECT_EQ(reclaim(d), 0u);
  EXPECT_EQ(freed, 0);
  d.enter(b);  // b entered after the retirement: it cannot hold it, and does not keep it
  EXPECT_EQ(reclaim(d), 0u);  // a still does
  EXPECT_TRUE(d.leave(a));    // something is retired: the leaver is told to try
  EXPECT_EQ(reclaim(d), 1u);
  EXPECT_EQ(freed, 1);
  EXPECT_FALSE(d.leave(b));  // nothing retired any more
}

TEST_F(Epoch, OnlyThePointersRetiredAfterTheOldestReaderEnteredAreKept) {
  int first = 0, second = 0;
  retire(d, first);
  d.enter(a);
  retire(d, second);
  EXPECT_EQ(reclaim(d), 1u);  // the first: a entered after it
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 0);
  d.leave(a);
  EXPECT_EQ(reclaim(d), 1u);
  EXPECT_EQ(second, 1);
}

TEST_F(Epoch, ReclaimAfterLeaveFreesOnceNoOlderReaderIsLeftAndNeverWaitsForTheLock) {
  int freed = 0;
  d.enter(a);
  d.enter(b);
  retire(d, freed);
  ASSERT_TRUE(d.leave(a));
  d.reclaim_after_leave();  // b still inside since before the retirement
  EXPECT_EQ(freed, 0);
  ASSERT_TRUE(d.leave(b));
  {
    std::unique_lock held(d.mutex());  // a subscriber holds the lock: the leaver must not wait
    std::thread([&] { d.reclaim_after_leave(); }).join();
    EXPECT_EQ(freed, 0);
  }
  d.reclaim_after_leave();
  EXPECT_EQ(freed, 1);
  EXPECT_FALSE(d.leave(a));
}

TEST_F(Epoch, SynchronizeWaitsForAReaderInsideAndReturnsOnceItLeaves) {
  d.enter(a);
  auto done = std::async(std::launch::async, [&] { d.synchronize(nullptr); });
  // It must not return while a is inside; 100 ms is only how long the test looks.
  EXPECT_EQ(done.wait_for(100ms), std::future_status::timeout);
  d.leave(a);
  ASSERT_EQ(done.wait_for(30s), std::future_status::ready);
  done.get();
}

TEST_F(Epoch, SynchronizeDoesNotWaitForItselfNorForReadersOutside) {
  d.enter(a);  // the caller's own reader: not waited for
  auto done = std::async(std::launch::async, [&] { d.synchronize(&a); });
  ASSERT_EQ(done.wait_for(30s), std::future_status::ready);
  done.get();
  d.leave(a);
}

TEST_F(Epoch, SynchronizeDoesNotWaitForAReaderThatEnteredAfterItBegan) {
  // b enters once the grace period has begun (the epoch has moved, which a probe reader sees):
  // b loads tables after the swap, so synchronize() returns when a leaves, b still inside.
  epoch_reader probe;
  d.add_reader(probe);
  d.enter(probe);
  const std::uint64_t before = probe.epoch.load();
  d.leave(probe);
  d.enter(a);
  auto done = std::async(std::launch::async, [&] { d.synchronize(nullptr); });
  const auto give_up = std::chrono::steady_clock::now() + 30s;
  for (;;) {
    d.enter(probe);
    const std::uint64_t now = probe.epoch.load();
    d.leave(probe);
    if (now > before) break;
    ASSERT_LT(std::chrono::steady_clock::now(), give_up) << "synchronize() never began";
    std::this_thread::yield();
  }
  d.enter(b);
  EXPECT_EQ(done.wait_for(100ms), std::future_status::timeout);  // a is still inside
  d.leave(a);
  ASSERT_EQ(done.wait_for(30s), std::future_status::ready);
  done.get();
  d.leave(b);
}

TEST_F(Epoch, TheDomainFreesWhatIsStillRetiredWhenItGoes) {
  int freed = 0;
  {
    epoch_domain local(tachyon::detail::asymmetric_fences());
    epoch_reader r;
    local.add_reader(r);
    local.enter(r);
    {
      std::lock_guard lock(local.mutex());
      local.retire(&freed, &count_free);
    }
    local.leave(r);
  }
  EXPECT_EQ(freed, 1);
}
