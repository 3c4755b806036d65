// The worker pool: names, pinning, wait strategies, wake-ups, errors and stop.
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include <mutex>
#include <set>
#include <vector>

#include "common.hpp"

using tachyon::result;
using tachyon::wait_strategy;
using namespace std::chrono_literals;

namespace {
std::string this_thread_name() {
  char name[16] = {};
  pthread_getname_np(pthread_self(), name, sizeof(name));
  return name;
}
}  // namespace

TEST(Workers, AreNamedTachyonWN) {
  tachyon::bus<tt::Events> bus{{.workers = 2, .lane_capacity = 256}};
  std::mutex m;
  std::set<std::string> names;
  std::atomic<int> ran{0};
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) {
    std::lock_guard g(m);
    names.insert(this_thread_name());
    ran.fetch_add(1);
  });
  for (int i = 0; i < 200; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  bus.stop();
  EXPECT_EQ(ran.load(), 200);
  ASSERT_FALSE(names.empty());
  for (const auto& n : names) EXPECT_TRUE(n == "tachyon-w0" || n == "tachyon-w1") << n;
}

TEST(Workers, RunOnTheirPinnedCpu) {
  cpu_set_t allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
  int cpu = 0;
  while (!CPU_ISSET(cpu, &allowed)) ++cpu;
  tachyon::bus<tt::Events> bus{{.workers = 1, .cpus = {cpu}, .lane_capacity = 64}};
  std::atomic<int> seen_cpu{-1};
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) { seen_cpu = sched_getcpu(); });
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  bus.stop();
  EXPECT_EQ(seen_cpu.load(), cpu);
}

class EveryWaitStrategy : public ::testing::TestWithParam<wait_strategy> {};

TEST_P(EveryWaitStrategy, DeliversEveryEventExactlyOnce) {
  tachyon::bus<tt::Events> bus{
      {.workers = 2, .lane_capacity = 128, .batch = 16, .wait = GetParam()}};
  std::atomic<std::uint64_t> count{0}, sum{0};
  auto s = bus.subscribe<tt::Order>([&](const tt::Order& o) {
    count.fetch_add(1);
    sum.fetch_add(o.id);
  });
  constexpr std::uint64_t n = 5000;
  for (std::uint64_t i = 1; i <= n; ++i) ASSERT_EQ(bus.publish(tt::Order{i, 1}), result::ok);
  bus.stop();
  EXPECT_EQ(count.load(), n);
  EXPECT_EQ(sum.load(), n * (n + 1) / 2);
}

INSTANTIATE_TEST_SUITE_P(Workers, EveryWaitStrategy,
                         ::testing::Values(wait_strategy::busy_spin, wait_strategy::yield,
                                           wait_strategy::spin_then_park),
                         [](const auto& param_info) {
                           switch (param_info.param) {
                             case wait_strategy::busy_spin:
                               return std::string("busy_spin");
                             case wait_strategy::yield:
                               return std::string("yield");
                             default:
                               return std::string("spin_then_park");
                           }
                         });

TEST(Workers, ParkedWorkerWakesForEveryEvent) {
  // Each round waits until the worker has parked again, then publishes one event: a lost
  // wake-up would leave that event queued and the round would never finish.
  tachyon::bus<tt::Events> bus{{.workers = 1,
                                .lane_capacity = 64,
                                .wait = wait_strategy::spin_then_park,
                                .spin_before_park = 0ns}};
  std::atomic<int> ran{0};
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) { ran.fetch_add(1); });
  constexpr int rounds = 300;
  for (int i = 0; i < rounds; ++i) {
    ASSERT_TRUE(tt::eventually([&] { return bus.metrics().parks >= std::uint64_t(i + 1); }));
    ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
    ASSERT_TRUE(tt::eventually([&] { return ran.load() == i + 1; })) << "lost wake-up";
  }
  EXPECT_GE(bus.metrics().parks, std::uint64_t{rounds});
}

TEST(Workers, ThrowingHandlerDoesNotStopTheOthersOrTheWorker) {
  std::mutex m;
  std::vector<std::string> errors;
  tachyon::config cfg{.workers = 1, .lane_capacity = 64};
  cfg.on_error = [&](const tachyon::handler_error& e) {
    std::lock_guard g(m);
    try {
      std::rethrow_exception(e.error);
    } catch (const std::exception& ex) {
      errors.push_back(std::string(e.type_name) + ":" + ex.what() + ":" +
                       std::to_string(e.event.correlation_id));
    }
  };
  tachyon::bus<tt::Events> bus{cfg};
  std::atomic<int> after{0};
  auto thrower = bus.subscribe<tt::Order>([](const tt::Order& o) {
    if (o.id % 2 == 0) throw std::runtime_error("even");
  });
  auto counter = bus.subscribe<tt::Order>([&](const tt::Order&) { after.fetch_add(1); });
  for (std::uint64_t i = 1; i <= 10; ++i)
    ASSERT_EQ(bus.publish(tt::Order{i, 1}, {.correlation_id = i}), result::ok);
  bus.stop();
  EXPECT_EQ(after.load(), 10);
  const auto met = bus.metrics();
  EXPECT_EQ(met.total.failed, 5u);
  EXPECT_EQ(met.total.dispatched, 5u);
  EXPECT_EQ(met.total.handler_errors, 5u);
  ASSERT_EQ(errors.size(), 5u);
  EXPECT_EQ(errors[0], "tt::Order:even:2");
}

TEST(Workers, ThrowingErrorHookIsSwallowed) {
  tachyon::config cfg{.workers = 1, .lane_capacity = 64};
  cfg.on_error = [](const tachyon::handler_error&) { throw std::logic_error("hook"); };
  tachyon::bus<tt::Events> bus{cfg};
  auto s = bus.subscribe<tt::Quote>([](const tt::Quote&) { throw 7; });
  for (int i = 0; i < 3; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  bus.stop();
  EXPECT_EQ(bus.metrics().total.failed, 3u);
}

TEST(Workers, StopDrainsEverythingQueued) {
  tachyon::bus<tt::Events> bus{{.workers = 2, .lane_capacity = 4096}};
  std::atomic<int> ran{0};
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) { ran.fetch_add(1); });
  for (int i = 0; i < 4000; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  EXPECT_EQ(bus.stop(), 0u);
  EXPECT_EQ(ran.load(), 4000);
  EXPECT_EQ(bus.publish(tt::Quote{}), result::stopped);
}

TEST(Workers, StopDiscardAccountsForEveryEvent) {
  tachyon::bus<tt::Events> bus{{.workers = 1, .lane_capacity = 4096, .batch = 1}};
  std::atomic<bool> release{false};
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) {
    while (!release.load()) std::this_thread::yield();
  });
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  std::thread stopper([&] { release = true; });
  const auto discarded = bus.stop(tachyon::stop_mode::discard);
  stopper.join();
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.discarded, discarded);
  EXPECT_EQ(m.total.dispatched + m.total.discarded, 1000u);
  EXPECT_EQ(m.in_flight, 0u);
}

TEST(Workers, StopFromInsideAHandlerDoesNotDeadlock) {
  tachyon::bus<tt::Events> bus{{.workers = 1, .lane_capacity = 64}};
  std::atomic<int> stops{0};
  auto s = bus.subscribe<tt::Halt>(
      [&](const tt::Halt&) { stops.fetch_add(static_cast<int>(1 + bus.stop())); });
  ASSERT_EQ(bus.publish(tt::Halt{}), result::ok);
  ASSERT_TRUE(tt::eventually([&] { return bus.publish(tt::Quote{}) == result::stopped; }));
  EXPECT_EQ(bus.stop(), 0u);  // finishes the stop: joins
  EXPECT_EQ(stops.load(), 1);
}

TEST(Workers, BlockedPublisherIsReleasedByStop) {
  tachyon::bus<tt::Events> bus{{.workers = 1, .lane_capacity = 1, .batch = 1}};
  std::atomic<bool> release{false}, entered{false};
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) {
    entered = true;
    while (!release.load()) std::this_thread::yield();
  });
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);  // taken by the worker, which then blocks
  ASSERT_TRUE(tt::eventually([&] { return entered.load(); }));
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);  // fills the lane
  result blocked = result::ok;
  std::thread publisher([&] { blocked = bus.publish(tt::Quote{}); });
  std::thread stopper([&] { bus.stop(tachyon::stop_mode::discard); });
  ASSERT_TRUE(tt::eventually([&] { return bus.publish(tt::Quote{}) == result::stopped; }));
  publisher.join();  // released by stop, not by room
  release = true;
  stopper.join();
  EXPECT_EQ(blocked, result::stopped);
}

TEST(Workers, StopFromAHandlerStillDrainsWhenTheBusIsDestroyed) {
  std::atomic<int> quotes{0};
  std::atomic<bool> entered{false}, release{false};
  std::thread releaser;
  {
    tachyon::bus<tt::Events> bus{{.workers = 1, .lane_capacity = 64, .batch = 1}};
    auto halt = bus.subscribe<tt::Halt>([&](const tt::Halt&) { (void)bus.stop(); });
    auto quote = bus.subscribe<tt::Quote>([&](const tt::Quote&) {
      entered = true;
      while (!release.load()) std::this_thread::yield();
      quotes.fetch_add(1);
    });
    for (int i = 0; i < 10; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
    ASSERT_EQ(bus.publish(tt::Halt{}), result::ok);
    ASSERT_TRUE(tt::eventually([&] { return entered.load(); }));
    releaser = std::thread([&] {
      std::this_thread::sleep_for(10ms);  // lets the destructor begin first (the test's power)
      release = true;
    });
    halt.detach();
    quote.detach();
  }  // the destructor: the handler asked for a drain, so all ten quotes run
  releaser.join();
  EXPECT_EQ(quotes.load(), 10);
}

// Inside a handler unsubscribe() waits for nobody (waiting could deadlock two workers that do
// it at once): it returns while the other worker still runs the removed handler, which then
// never starts again and is freed only after it has left.
TEST(Workers, UnsubscribeFromAnotherHandlerDoesNotWaitAndTheHandlerNeverStartsAgain) {
  tachyon::bus<tt::Events> bus{{.workers = 2, .lane_capacity = 64, .batch = 1}};
  std::atomic<bool> b_entered{false}, release{false}, a_returned{false};
  std::atomic<int> b_runs{0}, destroyed{0}, destroyed_at_return{-1};
  tachyon::subscription b =
      bus.subscribe<tt::Order>([&, p = tt::destroy_probe(&destroyed)](const tt::Order&) {
        b_runs.fetch_add(1);
        b_entered = true;
        while (!release.load()) std::this_thread::yield();
      });
  auto a = bus.subscribe<tt::Quote>([&](const tt::Quote&) {
    b.unsubscribe();  // B runs on the other worker: this does not wait for it
    destroyed_at_return = destroyed.load();
    a_returned = true;
  });
  ASSERT_EQ(bus.publish(tt::Order{}), result::ok);
  ASSERT_TRUE(tt::eventually([&] { return b_entered.load(); }));
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);  // the free worker takes it
  const bool returned_while_b_ran = tt::eventually([&] { return a_returned.load(); });
  EXPECT_TRUE(returned_while_b_ran);
  EXPECT_EQ(destroyed.load(), 0);  // B is still running: its state must still be there
  for (int i = 0; i < 4; ++i) ASSERT_EQ(bus.publish(tt::Order{}), result::ok);
  release = true;
  EXPECT_TRUE(tt::eventually([&] {  // freed by a later batch's grace period
    if (destroyed.load() == 1) return true;
    (void)bus.publish(tt::Halt{});
    return false;
  }));
  bus.stop();
  EXPECT_EQ(destroyed_at_return.load(), 0);
  EXPECT_EQ(b_runs.load(), 1);  // the four later Orders did not start it
}
