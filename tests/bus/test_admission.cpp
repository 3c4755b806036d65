// The lane bound as users see it: exact capacity from one thread and from several, credits
// that a thread took and then left behind (it exited, sleeps, is blocked), shared writes per
// publish, depth and in-flight while credits are held, blocked publishers woken one by one and
// when undone admissions free the lane, and the re-entry door.
#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <fstream>
#include <latch>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bus/bus_access.hpp"
#include "common.hpp"

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

TEST(Admission, ManyBlockedPublishersOnALaneOfFourAllGetThrough) {
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

namespace {

/// An envelope for a Quote as the (future) retry path would hand it to bus_core::reenter().
tachyon::detail::envelope quote_envelope() {
  tachyon::detail::envelope env{};
  env.header.sequence = 77;
  env.header.type_index = 2;  // Quote in tt::Events
  env.header.lane = priority::normal;
  tachyon::detail::store_payload<tt::Quote>(env, tt::Quote{9, 1, 2});
  return env;
}

}  // namespace

// count_out() adds every dequeued event to the consumer's `done`, re-entered ones included,
// but a re-entered event never added to anyone's `used` (it came through reentry_free_). So
// after one re-entered event has been dequeued, sum(used) - sum(done) is one below the truth
// for the rest of the bus's life: the next front-door event reads as depth 0, lanes_empty()
// is true while it is queued, and stop(drain) returns without running it.
TEST(Admission, AReenteredEventDequeuedDoesNotHideTheNextPublishedOne) {
  tachyon::bus<tt::Events> bus{tt::manual(8)};
  int ran = 0;
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) { ++ran; });
  auto& core = bus_access::core(bus);
  auto env = quote_envelope();
  ASSERT_TRUE(core.reenter(env));
  ASSERT_EQ(bus.poll(), 1u);
  ASSERT_EQ(ran, 1);
  ASSERT_EQ(bus.metrics().lanes[2].depth, 0u);

  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);  // through the front door
  const auto m = bus.metrics();
  EXPECT_EQ(m.lanes[2].depth, 1u) << "the queued event is not counted";
  EXPECT_EQ(m.in_flight, 1u);
  bus.stop();  // drain: runs everything queued
  EXPECT_EQ(ran, 2) << "stop(drain) returned with an accepted event never run";
  const auto after = bus.metrics();
  EXPECT_EQ(after.in_flight, 0u);
}

namespace {

/// A payload whose copy, once armed, stalls until released and then throws: the publish that
/// copies it has taken a credit (admitted) and then gives it back (cancel).
struct Stall {
  static inline std::atomic<bool> armed{false}, entered{false}, go{false};
  int v = 0;
  Stall() = default;
  Stall(const Stall& o) : v(o.v) {
    if (armed.exchange(false)) {
      entered.store(true);
      (void)tt::eventually([] { return go.load(); });
      throw std::runtime_error("copy failed");
    }
  }
};
using StallEvents = tachyon::registry<tt::Quote, Stall>;

/// The scheduler state of thread `tid` of this process ('R', 'S', ...), from /proc.
char thread_state(long tid) {
  std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto p = s.rfind(')');
  return p == std::string::npos || p + 2 >= s.size() ? '?' : s[p + 2];
}

}  // namespace

// Lost wake-up. A lane of one credit (manual mode, block_timeout far away); thread T publishes a
// Stall and its copy stalls: T holds the lane's only credit as `used`. Publisher B
// (overflow::block, no time-out) finds the pool empty and nothing to revoke (T's limit == used) and
// sleeps on the lane's `room`. T's copy throws: publish() cancel()s, which lowers `used` and leaves
// the credit in T's account as a spare one. Nothing wakes B: cancel() does not touch `room`, the
// lane is empty so no batch is ever released, and the idle reclaim (manual_outcome after 1024 empty
// calls) puts the credit back in the pool (pool() == capacity, depth 0) without notifying `room`
// either. B sleeps forever on an empty lane (here: until the test's stop()).
//
// The same holds for publish_batch() when a chunk's fill throws (cancel of k credits), for a
// thread whose context is handed back (give_back's put) and for any revoke_spare() by an
// idle worker: credits that reach the pool by any path other than release() wake nobody.
TEST(Admission, ABlockedPublisherIsWokenWhenACancelledPublishFreesTheLane) {
  tachyon::bus<StallEvents> bus{{.workers = 0,
                                 .lane_capacity = 1,
                                 .spin_before_park = std::chrono::nanoseconds(0),
                                 .overflow = overflow::block,
                                 // Far beyond the test's own bound (tt::eventually's minute):
                                 // never what ends B's wait in a passing run.
                                 .block_timeout = std::chrono::minutes(10),
                                 .producers = 4}};
  auto& adm = bus_access::admission(bus_access::core(bus), priority::normal);
  Stall::armed = true;
  Stall::entered = false;
  Stall::go = false;
  std::atomic<bool> threw{false};
  std::thread t([&] {
    try {
      (void)bus.publish(Stall{});
    } catch (const std::runtime_error&) {
      threw = true;
    }
  });
  ASSERT_TRUE(tt::eventually([] { return Stall::entered.load(); }));
  std::atomic<long> tid{0};
  std::atomic<bool> b_done{false};
  std::atomic<result> b_result{result::full};
  std::thread b([&] {
    tid = static_cast<long>(::syscall(SYS_gettid));
    b_result.store(bus.publish(tt::Quote{}));
    b_done = true;
  });
  // B asleep in the futex of room.wait() (the only place it sleeps: nothing else revokes or
  // allocates in this bus meanwhile).
  const bool asleep = tt::eventually([&] { return tid.load() != 0 && thread_state(tid) == 'S'; });
  Stall::go = true;
  t.join();
  ASSERT_TRUE(threw.load());
  ASSERT_TRUE(asleep);
  // An idle manual drainer reclaims the spare credit into the pool: the lane is plainly empty.
  for (int i = 0; i < 1100 && !b_done.load(); ++i) (void)bus.run_once();
  const bool woke = tt::eventually([&] { return b_done.load(); });
  EXPECT_TRUE(woke) << "blocked publisher still asleep; pool " << adm.pool() << " of "
                    << adm.capacity() << ", depth " << bus.metrics().lanes[2].depth;
  (void)bus.stop();  // wakes B if it is still asleep (result::stopped)
  b.join();
  if (woke) {
    EXPECT_EQ(b_result.load(), result::ok);
  }
}
