// Review of the per-thread credit admission (detail/lane/admission.hpp) through a whole bus:
// each test here pins down one concrete failure of the protocol's promises (exact occupancy,
// stop(drain) runs every accepted event, a blocked publisher is woken when room appears).
#include <gtest/gtest.h>

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "common.hpp"

// Token for token the definition in test_admission.cpp (one definition across the binary).
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
TEST(AdmissionReview, AReenteredEventDequeuedDoesNotHideTheNextPublishedOne) {
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

// Lost wake-up. A lane of one credit (manual mode, block_timeout far away); thread T publishes a Stall and its copy stalls: T holds
// the lane's only credit as `used`. Publisher B (overflow::block, no time-out) finds the pool
// empty and nothing to revoke (T's limit == used) and sleeps on the lane's `room`. T's copy
// throws: publish() cancel()s, which lowers `used` and leaves the credit in T's account as a
// spare one. Nothing wakes B: cancel() does not touch `room`, the lane is empty so no batch is
// ever released, and the idle reclaim (manual_outcome after 1024 empty calls) puts the credit
// back in the pool (pool() == capacity, depth 0) without notifying `room` either. B sleeps
// forever on an empty lane (here: until the test's stop()).
//
// The same holds for publish_batch() when a chunk's fill throws (cancel of k credits), for a
// thread whose context is handed back (give_back's put) and for any revoke_spare() by an
// idle worker: credits that reach the pool by any path other than release() wake nobody.
TEST(AdmissionReview, ABlockedPublisherIsWokenWhenACancelledPublishFreesTheLane) {
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
