// Handler order, filters, RAII handles and the unsubscribe guarantee.
#include <gtest/gtest.h>

#include <barrier>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "common.hpp"

using tachyon::result;
using namespace std::chrono_literals;

namespace {

/// Runs `scenario` on a thread of its own and waits for it at most 30 s, far beyond a healthy
/// run. A deadlock can be neither joined nor abandoned safely (the stuck threads use the
/// scenario's bus), so past the deadline it records the failure and ends this test's process
/// at once: ctest reports a failure instead of waiting out its timeout.
template <class F>
void must_finish(const char* what, F scenario) {
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread t([done, &scenario] {
    scenario();
    done->store(true);
  });
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!done->load()) {
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << what << ": still running after 30 s, deadlocked";
      std::fflush(stdout);
      std::fflush(stderr);
      std::_Exit(1);
    }
    std::this_thread::sleep_for(1ms);
  }
  t.join();
}

}  // namespace

TEST(Subscription, HandlersRunByOrderThenSubscriptionOrder) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  std::vector<std::string> seen;
  auto a = bus.subscribe<tt::Quote>([&](const tt::Quote&) { seen.push_back("a0"); });
  auto b = bus.subscribe<tt::Quote>([&](const tt::Quote&) { seen.push_back("b5"); }, {.order = 5});
  auto c =
      bus.subscribe<tt::Quote>([&](const tt::Quote&) { seen.push_back("c-3"); }, {.order = -3});
  auto d = bus.subscribe<tt::Quote>([&](const tt::Quote&) { seen.push_back("d0"); });
  bus.dispatch(tt::Quote{});
  EXPECT_EQ(seen, (std::vector<std::string>{"c-3", "a0", "d0", "b5"}));
}

TEST(Subscription, FilterSkipsEventsItRejects) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  std::vector<std::uint64_t> ids;
  auto s = bus.subscribe<tt::Order>([&](const tt::Order& o) { ids.push_back(o.id); },
                                    {.filter = [](const tt::Order& o) { return o.qty > 0; }});
  ASSERT_EQ(bus.publish(tt::Order{1, 10}), result::ok);
  ASSERT_EQ(bus.publish(tt::Order{2, -1}), result::ok);
  ASSERT_EQ(bus.publish(tt::Order{3, 5}), result::ok);
  bus.poll();
  EXPECT_EQ(ids, (std::vector<std::uint64_t>{1, 3}));
  EXPECT_EQ(bus.metrics().total.dispatched, 3u);  // a filtered event is still delivered
}

TEST(Subscription, HandlerMayTakeMeta) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  tachyon::priority lane = tachyon::priority::low;
  auto s = bus.subscribe<tt::Halt>([&](const tt::Halt&, const tachyon::meta& m) { lane = m.lane; });
  bus.dispatch(tt::Halt{});
  EXPECT_EQ(lane, tachyon::priority::critical);
}

TEST(Subscription, DestroyingTheHandleUnsubscribes) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  int ran = 0;
  {
    auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) { ++ran; });
    bus.dispatch(tt::Quote{});
  }
  bus.dispatch(tt::Quote{});
  EXPECT_EQ(ran, 1);
}

TEST(Subscription, UnsubscribeIsIdempotentAndEndsDelivery) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  int ran = 0;
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) { ++ran; });
  EXPECT_TRUE(s.active());
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  s.unsubscribe();
  s.unsubscribe();
  EXPECT_FALSE(s.active());
  bus.poll();  // queued before the unsubscribe, but the handler is gone
  EXPECT_EQ(ran, 0);
}

TEST(Subscription, MovingTheHandleMovesTheSubscription) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  int ran = 0;
  tachyon::subscription outer;
  {
    auto inner = bus.subscribe<tt::Quote>([&](const tt::Quote&) { ++ran; });
    outer = std::move(inner);
    EXPECT_FALSE(inner.active());
  }
  bus.dispatch(tt::Quote{});
  EXPECT_EQ(ran, 1);
  outer = tachyon::subscription{};
  bus.dispatch(tt::Quote{});
  EXPECT_EQ(ran, 1);
}

TEST(Subscription, HandleMayOutliveTheBus) {
  tachyon::subscription s;
  {
    tachyon::bus<tt::Events> bus{tt::manual()};
    s = bus.subscribe<tt::Quote>([](const tt::Quote&) {});
    EXPECT_TRUE(s.active());
  }
  EXPECT_FALSE(s.active());
  s.unsubscribe();  // a no-op, not a use of the dead bus
}

TEST(Subscription, HandlerMayUnsubscribeItselfWithoutDeadlock) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  int ran = 0;
  tachyon::subscription s;
  s = bus.subscribe<tt::Quote>([&](const tt::Quote&) {
    ++ran;
    s.unsubscribe();
  });
  for (int i = 0; i < 3; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  EXPECT_EQ(bus.poll(), 3u);
  EXPECT_EQ(ran, 1);  // one-shot
}

TEST(Subscription, HandlerUnsubscribingALaterHandlerStopsItForThatSameEvent) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  int second_ran = 0;
  tachyon::subscription second;
  auto first =
      bus.subscribe<tt::Quote>([&](const tt::Quote&) { second.unsubscribe(); }, {.order = 0});
  second = bus.subscribe<tt::Quote>([&](const tt::Quote&) { ++second_ran; }, {.order = 1});
  bus.dispatch(tt::Quote{});
  EXPECT_EQ(second_ran, 0);
}

TEST(Subscription, HandlerMaySubscribeAnotherHandler) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  int late_ran = 0;
  std::vector<tachyon::subscription> late;
  auto s = bus.subscribe<tt::Order>([&](const tt::Order&) {
    late.push_back(bus.subscribe<tt::Quote>([&](const tt::Quote&) { ++late_ran; }));
  });
  ASSERT_EQ(bus.publish(tt::Order{}), result::ok);
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  bus.poll();  // Order (high) first, which subscribes the Quote handler
  EXPECT_EQ(late_ran, 1);
}

TEST(Subscription, UnsubscribeWaitsForTheRunningHandlerToReturn) {
  tachyon::bus<tt::Events> bus{{.workers = 1, .lane_capacity = 64}};
  std::atomic<bool> entered{false}, release{false}, running{false};
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) {
    running = true;
    entered = true;
    while (!release.load()) std::this_thread::yield();
    running = false;
  });
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  ASSERT_TRUE(tt::eventually([&] { return entered.load(); }));

  std::atomic<bool> returned{false};
  bool running_at_return = true;
  std::thread unsubscriber([&] {
    s.unsubscribe();
    running_at_return = running.load();
    returned = true;
  });
  std::this_thread::sleep_for(20ms);  // gives a broken unsubscribe time to return early
  EXPECT_FALSE(returned.load());
  release = true;
  unsubscriber.join();
  EXPECT_FALSE(running_at_return);
}

TEST(Subscription, SubscribeFromAnotherThreadWhileWorkersDispatch) {
  tachyon::bus<tt::Events> bus{{.workers = 2, .lane_capacity = 1024}};
  std::atomic<int> ran{0};
  std::vector<tachyon::subscription> subs;
  for (int round = 0; round < 50; ++round) {
    subs.push_back(bus.subscribe<tt::Quote>([&](const tt::Quote&) { ran.fetch_add(1); }));
    while (bus.publish(tt::Quote{}) != result::ok) std::this_thread::yield();
  }
  bus.stop();
  // Round r's event sees at least the r+1 handlers subscribed before it was published.
  EXPECT_GE(ran.load(), 50 * 51 / 2);
  EXPECT_LE(ran.load(), 50 * 50);
}

TEST(Subscription, HandlerOwningAnotherHandleIsFreedWithoutDeadlock) {
  int ran = 0;
  {
    tachyon::bus<tt::Events> bus{tt::manual()};
    auto inner = bus.subscribe<tt::Quote>([&](const tt::Quote&) { ++ran; });
    // The Order handler owns the Quote handle: destroying the handler unsubscribes Quote.
    auto outer = bus.subscribe<tt::Order>([h = std::move(inner)](const tt::Order&) {});
    bus.dispatch(tt::Quote{});
    outer.detach();
  }  // ~bus frees the Order handler, whose captured handle must not call back into the bus
  EXPECT_EQ(ran, 1);
}

TEST(Subscription, UnsubscribingAHandlerThatOwnsAHandleFreesBoth) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  int quote_ran = 0;
  auto inner = bus.subscribe<tt::Quote>([&](const tt::Quote&) { ++quote_ran; });
  auto outer = bus.subscribe<tt::Order>([h = std::move(inner)](const tt::Order&) {});
  bus.dispatch(tt::Quote{});
  outer.unsubscribe();  // runs the captured handle's destructor: Quote goes too
  bus.dispatch(tt::Quote{});
  EXPECT_EQ(quote_ran, 1);
}

// ---- unsubscribe from inside handlers: no waiting, so no deadlock ----------------------------

namespace {

/// Two handlers that are inside at once and each unsubscribe from there: `a` takes Quote and
/// `b` Order. Each counts its run, waits at the barrier until the other handler is inside too,
/// unsubscribes (its own handle, or with `drops::other` the other handler's: each handle is
/// then used by one thread only) and counts its return. Declared after the bus, so destroyed
/// before it, as the handles must be.
struct meeting_handlers {
  enum class drops { itself, other };

  std::barrier<> both{2};
  std::atomic<int> runs{0}, returned{0};
  tachyon::subscription a, b;

  meeting_handlers(tachyon::bus<tt::Events>& bus, drops which) {
    tachyon::subscription* a_drops = which == drops::itself ? &a : &b;
    tachyon::subscription* b_drops = which == drops::itself ? &b : &a;
    a = bus.subscribe<tt::Quote>([this, a_drops](const tt::Quote&) { meet_and_drop(*a_drops); });
    b = bus.subscribe<tt::Order>([this, b_drops](const tt::Order&) { meet_and_drop(*b_drops); });
  }

 private:
  void meet_and_drop(tachyon::subscription& s) {
    runs.fetch_add(1);
    both.arrive_and_wait();
    s.unsubscribe();
    returned.fetch_add(1);
  }
};

}  // namespace

// Without the fix each thread's unsubscribe waited for a grace period, that is for the other
// thread to leave its handler, while the other did the same: both hung forever.
TEST(Subscription, TwoWorkersWhoseHandlersUnsubscribeThemselvesAtOnceDoNotDeadlock) {
  must_finish("two self-unsubscribing handlers on two workers", [] {
    tachyon::bus<tt::Events> bus{{.workers = 2, .lane_capacity = 64, .batch = 1}};
    meeting_handlers h(bus, meeting_handlers::drops::itself);
    // batch = 1 and the first handler waits at the barrier: the other worker takes the other.
    ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
    ASSERT_EQ(bus.publish(tt::Order{}), result::ok);
    ASSERT_TRUE(tt::eventually([&] { return h.returned.load() == 2; }));
    EXPECT_FALSE(h.a.active());
    EXPECT_FALSE(h.b.active());
    ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
    ASSERT_EQ(bus.publish(tt::Order{}), result::ok);
    bus.stop();
    EXPECT_EQ(h.runs.load(), 2);  // neither started again
  });
}

TEST(Subscription, TwoWorkersWhoseHandlersUnsubscribeEachOtherAtOnceDoNotDeadlock) {
  must_finish("two handlers unsubscribing each other on two workers", [] {
    tachyon::bus<tt::Events> bus{{.workers = 2, .lane_capacity = 64, .batch = 1}};
    meeting_handlers h(bus, meeting_handlers::drops::other);
    ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
    ASSERT_EQ(bus.publish(tt::Order{}), result::ok);
    ASSERT_TRUE(tt::eventually([&] { return h.returned.load() == 2; }));
    ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
    ASSERT_EQ(bus.publish(tt::Order{}), result::ok);
    bus.stop();
    EXPECT_EQ(h.runs.load(), 2);
  });
}

TEST(Subscription, WorkerAndDispatchThreadWhoseHandlersUnsubscribeThemselvesDoNotDeadlock) {
  must_finish("self-unsubscribing handlers on a worker and in dispatch()", [] {
    tachyon::bus<tt::Events> bus{{.workers = 1, .lane_capacity = 64, .batch = 1}};
    meeting_handlers h(bus, meeting_handlers::drops::itself);
    ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);  // the worker runs a
    bus.dispatch(tt::Order{});                        // this thread runs b
    ASSERT_TRUE(tt::eventually([&] { return h.returned.load() == 2; }));
    bus.dispatch(tt::Order{});
    ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
    bus.stop();
    EXPECT_EQ(h.runs.load(), 2);
  });
}

TEST(Subscription, WorkerAndPollThreadWhoseHandlersUnsubscribeThemselvesDoNotDeadlock) {
  must_finish("self-unsubscribing handlers on a worker and in poll()", [] {
    tachyon::bus<tt::Events> bus{{.workers = 1, .lane_capacity = 64, .batch = 1}};
    meeting_handlers h(bus, meeting_handlers::drops::itself);
    ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
    ASSERT_EQ(bus.publish(tt::Order{}), result::ok);
    // The worker takes one event (batch = 1) and waits at the barrier, so poll() gets the
    // other: the two handlers are inside at once on two threads.
    while (h.returned.load() < 2) {
      bus.poll();
      std::this_thread::yield();
    }
    ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
    ASSERT_EQ(bus.publish(tt::Order{}), result::ok);
    bus.stop();
    EXPECT_EQ(h.runs.load(), 2);
  });
}

// ---- a handler removed from inside is freed by the next grace period -------------------------

// Without the fix it was freed only by a later subscribe() or by the bus's destruction.
TEST(Subscription, SelfUnsubscribedHandlerIsFreedByTheNextGracePeriodWithoutASubscribe) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  std::atomic<int> destroyed{0};
  int alive_after_unsubscribe = -1;
  tachyon::subscription s;
  s = bus.subscribe<tt::Quote>([&, p = tt::destroy_probe(&destroyed)](const tt::Quote&) {
    s.unsubscribe();
    alive_after_unsubscribe = destroyed.load() == 0;  // it is still running: not freed yet
  });
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  EXPECT_EQ(bus.poll(), 2u);
  for (int step = 0; step < 4 && destroyed.load() == 0; ++step) bus.dispatch(tt::Halt{});
  EXPECT_EQ(alive_after_unsubscribe, 1);
  EXPECT_EQ(destroyed.load(), 1);
}

TEST(Subscription, HandlerUnsubscribedInsideDispatchIsFreedByTheNextGracePeriod) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  std::atomic<int> destroyed{0};
  tachyon::subscription s;
  s = bus.subscribe<tt::Quote>(
      [&, p = tt::destroy_probe(&destroyed)](const tt::Quote&) { s.unsubscribe(); });
  auto other = bus.subscribe<tt::Halt>([](const tt::Halt&) {});
  bus.dispatch(tt::Quote{});
  for (int step = 0; step < 4 && destroyed.load() == 0; ++step) bus.dispatch(tt::Halt{});
  EXPECT_EQ(destroyed.load(), 1);
}

TEST(Subscription, SelfUnsubscribedHandlerOnAWorkerIsFreedByALaterBatch) {
  tachyon::bus<tt::Events> bus{
      {.workers = 1, .lane_capacity = 64, .overflow = tachyon::overflow::fail}};
  std::atomic<int> destroyed{0};
  std::atomic<bool> ran{false};
  tachyon::subscription s;
  s = bus.subscribe<tt::Quote>([&, p = tt::destroy_probe(&destroyed)](const tt::Quote&) {
    s.unsubscribe();
    ran = true;
  });
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  ASSERT_TRUE(tt::eventually([&] { return ran.load(); }));
  // Orders for the worker's later batches; `full` is fine, the lane drains meanwhile.
  EXPECT_TRUE(tt::eventually([&] {
    if (destroyed.load() == 1) return true;
    (void)bus.publish(tt::Order{});
    return false;
  }));
  bus.stop();
  EXPECT_EQ(destroyed.load(), 1);
}
