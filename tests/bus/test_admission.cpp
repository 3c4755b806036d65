// The lane bound as users see it: exact capacity from one thread and from several, credits
// that a thread took and then left behind (it exited, sleeps, is blocked), shared writes per
// publish, depth and in-flight while credits are held, blocked publishers woken one by one,
// and the re-entry door.
#include <gtest/gtest.h>

#include <barrier>
#include <latch>
#include <stdexcept>
#include <thread>
#include <vector>

#include "common.hpp"

namespace tachyon::detail {
/// The test's key to a bus's core (bus.hpp befriends it; the library never defines it).
struct bus_access {
  template <class R>
  static bus_core& core(bus<R>& b) {
    return b.core_;
  }
  static lane_admission& admission(bus_core& c, priority p) {
    return c.lanes_[static_cast<unsigned>(p)].admission;
  }
};
}  // namespace tachyon::detail

using tachyon::overflow;
using tachyon::priority;
using tachyon::result;
using tachyon::detail::bus_access;

namespace {

tachyon::config failing(std::uint32_t capacity, std::uint32_t workers = 0) {
  return {
      .workers = workers, .lane_capacity = capacity, .overflow = overflow::fail, .producers = 8};
}

/// Publishes Quotes until one is refused; returns how many were taken.
std::uint32_t fill(tachyon::bus<tt::Events>& bus) {
  std::uint32_t n = 0;
  while (bus.publish(tt::Quote{}) == result::ok) ++n;
  return n;
}

}  // namespace

TEST(Admission, CapacityEightTakesExactlyEightFromOneThread) {
  tachyon::bus<tt::Events> bus{failing(8)};
  EXPECT_EQ(fill(bus), 8u);
  EXPECT_EQ(bus.metrics().lanes[2].depth, 8u);
  EXPECT_EQ(bus.poll(), 8u);
  EXPECT_EQ(fill(bus), 8u);  // and again, once drained
}

TEST(Admission, CapacityEightTakesExactlyEightFromSeveralThreads) {
  for (int round = 0; round < 20; ++round) {
    tachyon::bus<tt::Events> bus{failing(8)};
    std::atomic<std::uint32_t> taken{0};
    std::barrier start(4);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&] {
        start.arrive_and_wait();
        taken.fetch_add(fill(bus));
      });
    for (auto& t : threads) t.join();
    ASSERT_EQ(taken.load(), 8u) << "round " << round;
    const auto m = bus.metrics();
    EXPECT_EQ(m.lanes[2].depth, 8u);
    EXPECT_EQ(m.total.rejected_full, 4u);
  }
}

TEST(Admission, CreditsOfAThreadThatExitedAreNotStranded) {
  tachyon::bus<tt::Events> bus{failing(1024)};
  std::thread([&] { ASSERT_EQ(bus.publish(tt::Quote{}), result::ok); }).join();
  EXPECT_EQ(fill(bus), 1023u);
}

TEST(Admission, CreditsOfASleepingOrBlockedThreadAreNotStranded) {
  // One thread publishes once (taking a chunk of credits) and then sleeps on a latch; another
  // is blocked in a publish under overflow::block on a different, full bus lane. The lane must
  // still take its whole capacity from the main thread.
  tachyon::bus<tt::Events> bus{{.workers = 0,
                                .lane_capacity = 1024,
                                .overflow = overflow::block,
                                .block_timeout = std::chrono::minutes(1),
                                .producers = 8}};
  std::latch published(1), wake(1);
  std::thread sleeper([&] {
    ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
    published.count_down();
    wake.wait();
  });
  published.wait();
  std::uint32_t n = 0;
  while (n < 1023) {
    ASSERT_EQ(bus.publish(tt::Quote{}), result::ok) << "after " << n;
    ++n;
  }
  // Full now: a blocked publisher in the same lane holds nothing either.
  std::atomic<bool> blocked_done{false};
  std::thread blocked([&] {
    EXPECT_EQ(bus.publish(tt::Quote{}), result::ok);
    blocked_done.store(true);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let it block (not required)
  EXPECT_FALSE(blocked_done.load());
  EXPECT_EQ(bus.run_once(), 64u);  // makes room; the blocked publisher takes one slot
  blocked.join();
  wake.count_down();
  sleeper.join();
  EXPECT_EQ(bus.poll(), 1024u - 64u + 1u);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, 1025u);
  EXPECT_EQ(m.total.dispatched, 1025u);
  EXPECT_EQ(m.in_flight, 0u);
}

TEST(Admission, DepthAndInFlightAreExactWhileAThreadHoldsCredits) {
  tachyon::bus<tt::Events> bus{failing(1024)};
  std::latch published(1), wake(1);
  std::thread holder([&] {
    for (int i = 0; i < 3; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
    published.count_down();
    wake.wait();  // keeps its unspent credits
  });
  published.wait();
  auto m = bus.metrics();
  EXPECT_EQ(m.lanes[2].depth, 3u);
  EXPECT_EQ(m.in_flight, 3u);
  EXPECT_EQ(bus.poll(), 3u);
  m = bus.metrics();
  EXPECT_EQ(m.lanes[2].depth, 0u);
  EXPECT_EQ(m.in_flight, 0u);
  EXPECT_EQ(m.total.accepted, m.total.dispatched);
  wake.count_down();
  holder.join();
}

#if defined(TACHYON_COUNT_SHARED_RMW)
TEST(Admission, APublishUnderTheBoundMakesOneSharedReadModifyWritePerChunk) {
  tachyon::bus<tt::Events> bus{failing(1u << 16)};
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);  // first use: context, producer token
  const std::uint64_t before = tachyon::detail::shared_rmws;
  constexpr std::uint64_t events = 6400;
  for (std::uint64_t i = 0; i < events; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  const std::uint64_t rmws = tachyon::detail::shared_rmws - before;
  EXPECT_LE(rmws, events / tachyon::detail::lane_admission::max_chunk + 1);
  EXPECT_GE(rmws, 1u);  // the counter counts: refills happened
  const std::vector<tt::Quote> batch(640);
  const std::uint64_t before_batch = tachyon::detail::shared_rmws;
  ASSERT_EQ(bus.publish_batch(std::span<const tt::Quote>(batch)).queued, 640u);
  EXPECT_LE(tachyon::detail::shared_rmws - before_batch, 640u / 64 + 1);
}
#endif

TEST(Admission, AWorkerParksWhileAPublisherHoldsCreditsAndWakesForItsNextEvent) {
  tachyon::bus<tt::Events> bus{{.workers = 1,
                                .lane_capacity = 1024,
                                .wait = tachyon::wait_strategy::spin_then_park,
                                .spin_before_park = std::chrono::nanoseconds(0),
                                .producers = 2}};
  std::atomic<int> ran{0};
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) { ran.fetch_add(1); });
  for (int i = 1; i <= 50; ++i) {
    const std::uint64_t parks = bus.metrics().parks;
    ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);  // this thread keeps its spare credits
    ASSERT_TRUE(tt::eventually([&] { return ran.load() == i; })) << "event " << i;
    ASSERT_TRUE(tt::eventually([&] { return bus.metrics().parks > parks; })) << "event " << i;
  }
}

TEST(Admission, AnIdleWorkerTakesBackCreditsLeftInIdleAccountsSoTheHintReadsEmpty) {
  // A thread publishes once (taking a chunk of credits) and stays alive without publishing
  // again. Once the worker has been idle for a millisecond it revokes those credits, and the
  // lane's pool, the idle scan's hint, is full again.
  tachyon::bus<tt::Events> bus{{.workers = 1,
                                .lane_capacity = 1024,
                                .wait = tachyon::wait_strategy::busy_spin,
                                .producers = 2}};
  std::atomic<int> ran{0};
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) { ran.fetch_add(1); });
  auto& adm = bus_access::admission(bus_access::core(bus), priority::normal);
  std::latch published(1), wake(1);
  std::thread holder([&] {
    ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
    published.count_down();
    wake.wait();
  });
  published.wait();
  ASSERT_TRUE(tt::eventually([&] { return ran.load() == 1; }));
  EXPECT_TRUE(tt::eventually([&] { return adm.pool() == 1024 && !adm.maybe_nonempty(); }))
      << "pool " << adm.pool();
  wake.count_down();
  holder.join();
}

TEST(Admission, AManualDrainerThatFindsNothingTakesBackIdleCreditsSoTheHintReadsEmpty) {
  tachyon::bus<tt::Events> bus{tt::manual(1024)};
  auto& adm = bus_access::admission(bus_access::core(bus), priority::normal);
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);  // this thread takes a chunk of credits
  ASSERT_EQ(bus.poll(), 1u);
  EXPECT_LT(adm.pool(), 1024);  // its unspent credits are still out: the hint says "maybe"
  for (int i = 0; i < 1023; ++i) ASSERT_EQ(bus.run_once(), 0u);
  EXPECT_LT(adm.pool(), 1024);
  ASSERT_EQ(bus.run_once(), 0u);  // the 1024th empty call in a row
  EXPECT_EQ(adm.pool(), 1024);
  EXPECT_FALSE(adm.maybe_nonempty());
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);  // and publishing takes credits again
  EXPECT_EQ(bus.poll(), 1u);
}

TEST(Admission, BlockedPublishersAreWokenOneByOneAndAllGetThrough) {
  // Six publishers on a lane of four, one slow-ish worker: every wake-up is one publisher,
  // which passes it on when room is left. A lost hand-off would leave a publisher asleep.
  tachyon::bus<tt::Events> bus{
      {.workers = 1, .lane_capacity = 4, .batch = 2, .overflow = overflow::block, .producers = 6}};
  std::atomic<std::uint64_t> ran{0};
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) { ran.fetch_add(1); });
  const int per_thread = tt::sanitized() ? 100 : 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < per_thread; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
    });
  for (auto& t : threads) t.join();
  bus.stop();
  EXPECT_EQ(ran.load(), 6u * per_thread);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, 6u * per_thread);
  EXPECT_EQ(m.total.dispatched, 6u * per_thread);
}

TEST(Admission, TheReentryDoorTakesNoPublisherRoomAndIsBounded) {
  auto cfg = failing(4);
  cfg.reentry_capacity = 2;
  tachyon::bus<tt::Events> bus{cfg};
  std::vector<tachyon::meta> seen;
  auto s = bus.subscribe<tt::Quote>(
      [&](const tt::Quote&, const tachyon::meta& m) { seen.push_back(m); });
  ASSERT_EQ(fill(bus), 4u);  // the front door is full
  auto& core = bus_access::core(bus);
  tachyon::detail::envelope env{};
  env.header.sequence = 77;
  env.header.correlation_id = 42;
  env.header.type_index = 2;  // Quote
  env.header.lane = priority::normal;
  tachyon::detail::store_payload<tt::Quote>(env, tt::Quote{9, 1, 2});
  EXPECT_TRUE(core.reenter(env));
  EXPECT_TRUE(core.reenter(env));
  EXPECT_FALSE(core.reenter(env));  // bounded
  EXPECT_EQ(bus.metrics().lanes[2].depth, 6u);
  EXPECT_EQ(bus.poll(), 6u);
  ASSERT_EQ(seen.size(), 6u);
  std::size_t reentered = 0;
  for (const auto& m : seen) {
    if ((m.flags & tachyon::meta_flags::reentered) == 0) continue;
    ++reentered;
    EXPECT_EQ(m.sequence, 77u);
    EXPECT_EQ(m.correlation_id, 42u);
    EXPECT_GE(m.attempt, 1u);
  }
  EXPECT_EQ(reentered, 2u);
  EXPECT_EQ(bus.metrics().lanes[2].depth, 0u);
  EXPECT_TRUE(core.reenter(env));  // the door's room came back with the dequeue
  EXPECT_EQ(bus.poll(), 1u);
}

TEST(Admission, SequenceCountWrapsWithoutTouchingTheThreadId) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  std::vector<std::uint64_t> seqs;
  auto s = bus.subscribe<tt::Quote>(
      [&](const tt::Quote&, const tachyon::meta& m) { seqs.push_back(m.sequence); });
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  ASSERT_EQ(bus.poll(), 1u);
  const std::uint64_t id = seqs[0] & 0xffff;
  auto& ctx = bus_access::core(bus).context();
  ctx.next_sequence = ((std::uint64_t{1} << 48) - 2) << 16 | id;  // two before the wrap
  for (int i = 0; i < 3; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  ASSERT_EQ(bus.poll(), 3u);
  ASSERT_EQ(seqs.size(), 4u);
  EXPECT_EQ(seqs[1], ((std::uint64_t{1} << 48) - 2) << 16 | id);
  EXPECT_EQ(seqs[2], ((std::uint64_t{1} << 48) - 1) << 16 | id);
  EXPECT_EQ(seqs[3], id);  // the count wrapped to 0; the id is intact
}

namespace {
struct Fragile {
  static inline int copies_before_throw = 1 << 30;
  static inline std::atomic<int> live{0};
  int v = 0;
  explicit Fragile(int x) : v(x) { live.fetch_add(1); }
  Fragile(const Fragile& o) : v(o.v) {
    if (copies_before_throw-- == 0) throw std::runtime_error("copy 150 failed");
    live.fetch_add(1);
  }
  ~Fragile() { live.fetch_sub(1); }
};
using FragileEvents = tachyon::registry<Fragile>;
}  // namespace

TEST(PublishBatch, ACopyThatThrowsQueuesNothingOfItsChunkAndSaysHowManyWereQueued) {
  {
    tachyon::bus<FragileEvents> bus{
        {.workers = 0, .lane_capacity = 1024, .overflow = overflow::fail, .producers = 2}};
    int ran = 0;
    auto s = bus.subscribe<Fragile>([&](const Fragile&) { ++ran; });
    std::vector<Fragile> evs;
    evs.reserve(200);
    for (int i = 0; i < 200; ++i) evs.emplace_back(i);
    const int live_before = Fragile::live.load();
    Fragile::copies_before_throw = 150;
    try {
      (void)bus.publish_batch(std::span<const Fragile>(evs));
      FAIL() << "no exception";
    } catch (const tachyon::publish_batch_error& e) {
      EXPECT_EQ(e.queued, 128u);  // two whole chunks of 64; the third is not queued
      EXPECT_EQ(e.dropped, 0u);
      EXPECT_THROW(std::rethrow_if_nested(e), std::runtime_error);
    }
    EXPECT_EQ(Fragile::live.load(), live_before + 128);  // the third chunk's copies were freed
    EXPECT_EQ(bus.poll(), 128u);
    EXPECT_EQ(ran, 128);
    const auto m = bus.metrics();
    EXPECT_EQ(m.total.accepted, 128u);
    EXPECT_EQ(m.in_flight, 0u);
    EXPECT_EQ(m.lanes[2].depth, 0u);
    Fragile::copies_before_throw = 1 << 30;
    EXPECT_EQ(bus.publish_batch(std::span<const Fragile>(evs)).queued, 200u);  // room intact
    EXPECT_EQ(bus.poll(), 200u);
  }
  EXPECT_EQ(Fragile::live.load(), 0);
}
