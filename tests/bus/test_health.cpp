// bus::health() and stop() with a timeout, with real workers. Stalls are made by handlers that
// wait on a flag the test controls, and dated on a virtual clock: nothing here depends on how
// fast the machine is.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>

#include "common.hpp"

namespace {

using namespace std::chrono_literals;
using tachyon::result;
using tachyon::worker_state;
using vbus = tachyon::bus<tt::Events, tachyon::virtual_time_traits>;

tachyon::config one_worker() {
  tachyon::config cfg;
  cfg.workers = 1;
  cfg.lane_capacity = 64;
  cfg.stall_threshold = 1ms;
  cfg.overflow = tachyon::overflow::fail;
  return cfg;
}

/// A handler that blocks until released.
struct gate {
  std::atomic<bool> entered{false};
  std::atomic<bool> open{false};
  void pass() {
    entered.store(true);
    while (!open.load()) std::this_thread::yield();
  }
};

TEST(Health, NamesTheSubscriptionAWorkerIsInAndReportsTheStall) {
  vbus bus{one_worker()};
  gate g;
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) { g.pass(); }, {.name = "slow-pricer"});
  auto h0 = bus.health();
  ASSERT_EQ(h0.workers.size(), 1u);
  EXPECT_TRUE(h0.healthy);
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  ASSERT_TRUE(tt::eventually([&] { return g.entered.load(); }));
  auto h = bus.health();  // first sight of the batch: running since now
  EXPECT_EQ(h.workers[0].state, worker_state::running);
  EXPECT_EQ(h.workers[0].subscription, "slow-pricer");
  EXPECT_EQ(h.workers[0].type, "tt::Quote");
  EXPECT_EQ(h.workers[0].lane, tachyon::priority::normal);
  EXPECT_TRUE(h.healthy);
  bus.time_source().advance(1ms);
  h = bus.health();
  EXPECT_EQ(h.workers[0].state, worker_state::stalled);
  EXPECT_EQ(h.workers[0].running_for, 1ms);
  EXPECT_FALSE(h.healthy);
  EXPECT_NE(h.to_json().find(R"("state":"stalled","lane":"normal","subscription":"slow-pricer")"),
            std::string::npos);
  EXPECT_NE(h.to_prometheus("t").find(R"(t_worker_state{worker="0",state="stalled"} 1)"),
            std::string::npos);
  g.open.store(true);
  ASSERT_TRUE(tt::eventually([&] {
    const auto st = bus.health().workers[0].state;
    return st == worker_state::idle || st == worker_state::parked;
  }));
  EXPECT_TRUE(bus.health().healthy);
}

TEST(Health, ReportsFullLanesOpenBreakersAndDeadLetters) {
  auto cfg = tt::manual(10);
  cfg.dead_letter_capacity = 4;
  cfg.fill_warning = 0.5;
  vbus bus{cfg};
  auto s = bus.subscribe<tt::Quote>([](const tt::Quote&) { throw std::runtime_error("down"); },
                                    {.name = "q", .breaker = {.failure_threshold = 1}});
  for (int i = 0; i < 6; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  auto h = bus.health();
  EXPECT_FALSE(h.healthy);
  EXPECT_TRUE(h.lanes[2].over_fill_warning);
  EXPECT_EQ(h.lanes[2].depth, 6u);
  bus.poll();
  h = bus.health();
  EXPECT_FALSE(h.lanes[2].over_fill_warning);
  ASSERT_EQ(h.breakers.size(), 1u);
  EXPECT_EQ(h.breakers[0].subscription, "q");
  EXPECT_EQ(h.breakers[0].state, tachyon::breaker_state::open);
  EXPECT_EQ(h.dead_letters, 4u);  // six parked, the oldest two evicted
  EXPECT_EQ(bus.metrics().dead_letters_evicted, 2u);
  EXPECT_FALSE(h.healthy);
}

TEST(TimedStop, ReturnsWhatIsStuckAndALaterStopFinishes) {
  vbus bus{one_worker()};
  gate g;
  std::atomic<int> ran{0};
  auto s = bus.subscribe<tt::Quote>(
      [&](const tt::Quote&) {
        g.pass();
        ran.fetch_add(1);
      },
      {.name = "never-returns"});
  for (int i = 0; i < 3; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  ASSERT_TRUE(tt::eventually([&] { return g.entered.load(); }));
  const auto r = bus.stop(tachyon::stop_mode::drain, 20ms);
  EXPECT_FALSE(r.complete);
  EXPECT_EQ(r.unsettled, 3u);
  ASSERT_EQ(r.stuck.size(), 1u);
  EXPECT_EQ(r.stuck[0].subscription, "never-returns");
  EXPECT_EQ(bus.publish(tt::Quote{}), result::stopped);  // the bus is stopping
  g.open.store(true);
  EXPECT_EQ(bus.stop(), 0u);
  EXPECT_EQ(ran.load(), 3);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.dispatched, 3u);
  EXPECT_EQ(m.in_flight, 0u);
}

TEST(TimedStop, CompletesWhenTheWorkersReturnInTime) {
  tachyon::bus<tt::Events> bus{one_worker()};
  std::atomic<int> ran{0};
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) { ran.fetch_add(1); });
  for (int i = 0; i < 5; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  const auto r = bus.stop(tachyon::stop_mode::drain, 1min);
  EXPECT_TRUE(r.complete);
  EXPECT_TRUE(r.stuck.empty());
  EXPECT_EQ(ran.load(), 5);
  EXPECT_EQ(bus.health().workers[0].state, worker_state::exited);
}

TEST(Workers, RetriesRunOnWorkersWithARealClock) {
  tachyon::config cfg;
  cfg.workers = 2;
  cfg.dead_letter_capacity = 8;
  tachyon::bus<tt::Events> bus{cfg};
  std::atomic<int> calls{0};
  auto s = bus.subscribe<tt::Quote>(
      [&](const tt::Quote&) {
        if (calls.fetch_add(1) % 3 != 2) throw std::runtime_error("flaky");
      },
      {.retry = {.max_attempts = 3, .initial_delay = 100us, .max_delay = 1ms}});
  for (int i = 0; i < 10; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  ASSERT_TRUE(tt::eventually([&] {
    const auto m = bus.metrics();
    return m.total.dispatched + m.total.dead_lettered == 10u && m.in_flight == 0u;
  }));
  bus.stop();
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, 10u);
  EXPECT_EQ(m.total.dispatched + m.total.dead_lettered, 10u);
  EXPECT_EQ(m.total.handler_errors, static_cast<std::uint64_t>(calls.load()) - m.total.dispatched);
}

}  // namespace

namespace {

// A retry scheduled by a thread that is not a worker (run_once beside workers) must wake a
// worker parked with nothing in the timer: its sleep was bounded by nothing.
TEST(Workers, ARetryScheduledByAPollerWakesAParkedWorker) {
  tachyon::config cfg = one_worker();
  cfg.spin_before_park = 0ns;
  tachyon::bus<tt::Events> bus{cfg};
  std::atomic<int> runs{0};
  auto s = bus.subscribe<tt::Quote>(
      [&](const tt::Quote&) {
        if (runs.fetch_add(1) == 0) throw std::runtime_error("first run fails");
      },
      {.retry = {.max_attempts = 2, .initial_delay = 200us, .max_delay = 200us}});
  ASSERT_TRUE(
      tt::eventually([&] { return bus.health().workers[0].state == worker_state::parked; }));
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  bus.run_once();  // may find the event gone to the worker: either way one run fails
  ASSERT_TRUE(tt::eventually([&] { return runs.load() == 2; }));
  ASSERT_TRUE(tt::eventually([&] { return bus.metrics().in_flight == 0; }));
  EXPECT_EQ(bus.metrics().total.dispatched, 1u);
}

// stop(mode, timeout) bounds what the timer holds too: a retry with an hour's backoff whose
// handler then never returns is reported stuck, not hung on.
TEST(TimedStop, BoundsARetryThatHangsAfterTheStopBegan) {
  vbus bus{one_worker()};
  gate g;
  auto s = bus.subscribe<tt::Quote>(
      [&](const tt::Quote&, const tachyon::meta& m) {
        if (m.attempt == 0) throw std::runtime_error("first run fails");
        g.pass();
      },
      {.name = "retried", .retry = {.max_attempts = 2, .initial_delay = 1h, .max_delay = 1h}});
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  ASSERT_TRUE(tt::eventually([&] { return bus.metrics().lanes[2].waiting == 1; }));
  const auto r = bus.stop(tachyon::stop_mode::drain, 20ms);
  EXPECT_FALSE(r.complete);
  ASSERT_EQ(r.stuck.size(), 1u);
  EXPECT_EQ(r.stuck[0].subscription, "retried");
  EXPECT_EQ(r.unsettled, 1u);
  g.open.store(true);
  bus.stop();
  EXPECT_EQ(bus.metrics().total.dispatched, 1u);
}

TEST(TimedStop, ATimeoutAtTheEndOfTheRangeDoesNotWrap) {
  tachyon::bus<tt::Events> bus{one_worker()};
  const auto r = bus.stop(tachyon::stop_mode::drain, std::chrono::nanoseconds::max());
  EXPECT_TRUE(r.complete);
  EXPECT_TRUE(r.stuck.empty());
}

// Only the half-open probe decides the probe: a call admitted before the breaker opened, that
// fails after the probe went out, neither reopens it nor spoils the probe's success.
TEST(Breaker, ALateCallFromBeforeTheOpeningDoesNotDecideTheProbe) {
  tachyon::config cfg = one_worker();
  cfg.workers = 2;
  vbus bus{cfg};
  gate late, probe;
  auto s = bus.subscribe<tt::Quote>(
      [&](const tt::Quote& q) {
        if (q.instrument == 1) {  // admitted while closed; fails once the probe is out
          late.pass();
          throw std::runtime_error("late failure");
        }
        if (q.instrument == 2) throw std::runtime_error("opens the breaker");
        if (q.instrument == 3) probe.pass();  // the probe: succeeds
      },
      {.name = "guarded",
       .breaker = {.failure_threshold = 1, .open_for = 1ms, .action = tachyon::when_open::skip}});
  ASSERT_EQ(bus.publish(tt::Quote{1, 0, 0}), result::ok);
  ASSERT_TRUE(tt::eventually([&] { return late.entered.load(); }));
  ASSERT_EQ(bus.publish(tt::Quote{2, 0, 0}), result::ok);  // the other worker: opens it
  auto state = [&] { return bus.metrics().subscriptions[0].breaker; };
  ASSERT_TRUE(tt::eventually([&] { return state() == tachyon::breaker_state::open; }));
  bus.time_source().advance(2ms);
  ASSERT_EQ(bus.publish(tt::Quote{3, 0, 0}), result::ok);  // the probe
  ASSERT_TRUE(tt::eventually([&] { return probe.entered.load(); }));
  EXPECT_EQ(state(), tachyon::breaker_state::half_open);
  late.open.store(true);  // the late call fails now
  ASSERT_TRUE(tt::eventually([&] { return bus.metrics().total.failed == 2; }));
  EXPECT_EQ(state(), tachyon::breaker_state::half_open);  // not reopened by it
  probe.open.store(true);
  ASSERT_TRUE(tt::eventually([&] { return bus.metrics().total.dispatched == 1; }));
  EXPECT_EQ(state(), tachyon::breaker_state::closed);
}

}  // namespace
