// Failure handling through the API, in manual mode on a virtual clock: retries with backoff,
// dead letters and replay, breakers, deadlines and delays, stop modes, and the accounting.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "bus/books.hpp"
#include "common.hpp"

namespace {

using namespace std::chrono_literals;
using tachyon::result;
using vbus = tachyon::bus<tt::Events, tachyon::virtual_time_traits>;

using tt::manual_dl;
using tt::retries;

TEST(Retry, OnlyTheFailingSubscriptionRunsAgainAfterItsBackoff) {
  vbus bus{manual_dl()};
  int a = 0, b = 0;
  std::vector<std::uint8_t> attempts;
  auto sa = bus.subscribe<tt::Quote>([&](const tt::Quote&) { ++a; });
  auto sb = bus.subscribe<tt::Quote>(
      [&](const tt::Quote&, const tachyon::meta& m) {
        attempts.push_back(m.attempt);
        if (++b < 3) throw std::runtime_error("down");
      },
      {.retry = retries(5, 1ms)});
  ASSERT_EQ(bus.publish(tt::Quote{1, 2, 3}, tachyon::publish_options{.correlation_id = 9}),
            result::ok);
  EXPECT_EQ(bus.poll(), 1u);
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 1);
  auto m = bus.metrics();
  EXPECT_EQ(m.in_flight, 1u);  // waiting in the timer
  EXPECT_EQ(m.lanes[2].waiting, 1u);
  EXPECT_EQ(m.total.retried, 1u);
  EXPECT_EQ(m.total.dispatched, 0u);
  bus.poll();  // not due yet
  EXPECT_EQ(b, 1);
  bus.time_source().advance(1ms);
  bus.poll();
  EXPECT_EQ(b, 2);  // first retry failed; the second waits 2 ms
  bus.time_source().advance(1ms);
  bus.poll();
  EXPECT_EQ(b, 2);
  bus.time_source().advance(1ms);
  bus.poll();
  EXPECT_EQ(b, 3);
  EXPECT_EQ(a, 1);  // never again
  EXPECT_EQ(attempts, (std::vector<std::uint8_t>{0, 1, 2}));
  m = bus.metrics();
  EXPECT_EQ(m.total.dispatched, 1u);
  EXPECT_EQ(m.total.retried, 2u);
  EXPECT_EQ(m.total.handler_errors, 2u);
  EXPECT_EQ(bus.dead_letter_count(), 0u);
  tt::expect_books_balance(m);
}

TEST(Retry, ExhaustedRetriesGoToTheDeadLettersAndReplayRunsOnlyThatSubscription) {
  vbus bus{manual_dl()};
  int a = 0, b = 0;
  bool heal = false;
  auto sa = bus.subscribe<tt::Note>([&](const tt::Note&) { ++a; });
  auto sb = bus.subscribe<tt::Note>(
      [&](const tt::Note& n, const tachyon::meta& m) {
        ++b;
        EXPECT_EQ(n.text, "boxed payload survives");
        EXPECT_EQ(m.correlation_id, 5u);
        if (!heal) throw std::runtime_error("still down");
      },
      {.name = "audit", .retry = retries(2, 0ns)});
  const int live_before = tt::Note::live.load();
  ASSERT_EQ(bus.publish(tt::Note{"boxed payload survives"},
                        tachyon::publish_options{.correlation_id = 5}),
            result::ok);
  bus.poll();
  bus.poll();  // the retry (no delay) runs and fails: exhausted
  EXPECT_EQ(b, 2);
  EXPECT_EQ(bus.dead_letter_count(), 1u);
  auto m = bus.metrics();
  EXPECT_EQ(m.total.dead_lettered, 1u);
  tt::expect_books_balance(m);
  int visited = 0;
  bus.visit_dead_letters([&](const auto& dl) {
    using T = std::remove_cvref_t<decltype(dl.event)>;
    if constexpr (std::is_same_v<T, tt::Note>) {
      ++visited;
      EXPECT_EQ(dl.event.text, "boxed payload survives");
      EXPECT_EQ(dl.subscription, "audit");
      EXPECT_EQ(dl.attempts, 2u);
      EXPECT_EQ(dl.what, "still down");
      EXPECT_EQ(dl.meta.correlation_id, 5u);
    }
  });
  EXPECT_EQ(visited, 1);
  auto r = bus.replay_dead_letters();
  EXPECT_EQ(r.replayed, 1u);
  EXPECT_EQ(r.failed, 1u);
  EXPECT_EQ(bus.dead_letter_count(), 1u);
  heal = true;
  r = bus.replay_dead_letters([](const auto& dl) { return dl.subscription == "audit"; });
  EXPECT_EQ(r.succeeded, 1u);
  EXPECT_EQ(bus.dead_letter_count(), 0u);
  EXPECT_EQ(a, 1);  // the handler that succeeded never ran again
  EXPECT_EQ(b, 4);
  m = bus.metrics();
  EXPECT_EQ(m.total.replayed, 2u);
  EXPECT_EQ(m.total.accepted, 1u);  // a replay is not a new event
  tt::expect_books_balance(m);
  EXPECT_EQ(tt::Note::live.load(), live_before);  // the payload went with the last entry
}

TEST(Replay, ASelectiveReplayLeavesTheEntriesItDidNotPickAsTheyWere) {
  vbus bus{manual_dl()};
  auto s = bus.subscribe<tt::Quote>([](const tt::Quote& q) {
    throw std::runtime_error("failed " + std::to_string(q.instrument));
  });
  for (std::uint32_t i : {1u, 2u, 3u}) ASSERT_EQ(bus.publish(tt::Quote{i, 0, 0}), result::ok);
  bus.poll();
  ASSERT_EQ(bus.dead_letter_count(), 3u);
  const auto r = bus.replay_dead_letters([](const auto& dl) { return dl.what == "failed 2"; });
  EXPECT_EQ(r.replayed, 1u);
  EXPECT_EQ(r.failed, 1u);
  std::vector<std::string> what;
  std::vector<std::uint32_t> attempts;
  bus.visit_dead_letters([&](const auto& dl) {
    what.emplace_back(dl.what);
    attempts.push_back(dl.attempts);
  });
  EXPECT_EQ(what, (std::vector<std::string>{"failed 1", "failed 2", "failed 3"}));
  EXPECT_EQ(attempts, (std::vector<std::uint32_t>{1, 2, 1}));
}

TEST(Retry, WithoutDeadLettersAnExhaustedDeliveryFails) {
  vbus bus{tt::manual()};
  auto s = bus.subscribe<tt::Quote>([](const tt::Quote&) { throw std::runtime_error("x"); },
                                    {.retry = retries(3, 0ns)});
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  for (int i = 0; i < 5; ++i) bus.poll();
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.failed, 1u);
  EXPECT_EQ(m.total.handler_errors, 3u);
  EXPECT_EQ(m.total.retried, 2u);
  tt::expect_books_balance(m);
}

TEST(Breaker, OpensAfterTheThresholdShortCircuitsThenOneProbeCloses) {
  vbus bus{tt::manual()};  // no dead letters: the errors and the short circuits read failed
  int calls = 0;
  bool healthy = false;
  auto s = bus.subscribe<tt::Quote>(
      [&](const tt::Quote&) {
        ++calls;
        if (!healthy) throw std::runtime_error("dependency down");
      },
      {.name = "pricer",
       .breaker = {.failure_threshold = 2, .open_for = 10ms, .action = tachyon::when_open::skip}});
  for (int i = 0; i < 5; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  bus.poll();
  EXPECT_EQ(calls, 2);  // opened after two; three short-circuited
  auto m = bus.metrics();
  EXPECT_EQ(m.total.short_circuited, 3u);
  EXPECT_EQ(m.total.failed, 5u);
  ASSERT_EQ(m.subscriptions.size(), 1u);
  EXPECT_EQ(m.subscriptions[0].breaker, tachyon::breaker_state::open);
  EXPECT_EQ(m.subscriptions[0].name, "pricer");
  bus.time_source().advance(10ms + 1024ns);  // the window ends at most 1.024 us late
  healthy = true;
  for (int i = 0; i < 3; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  bus.poll();
  EXPECT_EQ(calls, 5);  // the probe succeeded and closed it
  m = bus.metrics();
  EXPECT_EQ(m.subscriptions[0].breaker, tachyon::breaker_state::closed);
  EXPECT_EQ(m.total.dispatched, 3u);
  tt::expect_books_balance(m);
}

TEST(Breaker, OpenBreakerDeadLettersWithCircuitOpen) {
  vbus bus{manual_dl()};
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) { throw std::runtime_error("down"); },
                                    {.breaker = {.failure_threshold = 1, .open_for = 1s}});
  for (int i = 0; i < 3; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  bus.poll();
  EXPECT_EQ(bus.dead_letter_count(), 3u);
  int open = 0;
  bus.visit_dead_letters([&](const auto& dl) {
    try {
      std::rethrow_exception(dl.error);
    } catch (const tachyon::circuit_open&) {
      ++open;
    } catch (...) {
    }
  });
  EXPECT_EQ(open, 2);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.dead_lettered, 3u);
  EXPECT_EQ(m.total.short_circuited, 2u);
  tt::expect_books_balance(m);
}

// subscribe_options::filter: the handler runs only for events the filter passes; an event it
// rejects is none of the breaker's business: not short-circuited while it is open (the event
// reads dispatched: none matched), no probe spent on it, no streak ended by it.
TEST(Breaker, AnEventTheFilterRejectsIsNotShortCircuitedNorTakenAsTheProbe) {
  vbus bus{manual_dl()};
  int calls = 0;
  auto s = bus.subscribe<tt::Quote>(
      [&](const tt::Quote&) {
        ++calls;
        throw std::runtime_error("down");
      },
      {.filter = [](const tt::Quote& q) { return q.instrument != 0; },
       .breaker = {.failure_threshold = 1, .open_for = 10us}});
  const auto wanted = tt::Quote{1, 0, 0}, unwanted = tt::Quote{0, 0, 0};
  ASSERT_EQ(bus.publish(wanted), result::ok);  // fails: the breaker opens
  ASSERT_EQ(bus.publish(unwanted), result::ok);
  bus.poll();
  auto m = bus.metrics();
  EXPECT_EQ(m.subscriptions[0].breaker, tachyon::breaker_state::open);
  EXPECT_EQ(m.total.short_circuited, 0u);
  EXPECT_EQ(m.total.dispatched, 1u);
  EXPECT_EQ(bus.dead_letter_count(), 1u);
  bus.time_source().advance(10us + 1024ns);
  ASSERT_EQ(bus.publish(unwanted), result::ok);  // the window is over: not the probe
  bus.poll();
  EXPECT_EQ(bus.metrics().subscriptions[0].breaker, tachyon::breaker_state::open);
  ASSERT_EQ(bus.publish(wanted), result::ok);  // the probe: it fails, the breaker opens again
  bus.poll();
  EXPECT_EQ(calls, 2);
  m = bus.metrics();
  EXPECT_EQ(m.subscriptions[0].breaker, tachyon::breaker_state::open);
  EXPECT_EQ(m.total.dispatched, 2u);
  EXPECT_EQ(m.total.short_circuited, 0u);
  tt::expect_books_balance(m);
}

TEST(Breaker, AnEventTheFilterRejectsDoesNotEndAFailureStreak) {
  vbus bus{tt::manual()};
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) { throw std::runtime_error("down"); },
                                    {.filter = [](const tt::Quote& q) { return q.instrument != 0; },
                                     .breaker = {.failure_threshold = 2, .open_for = 1s}});
  for (std::uint32_t i : {1u, 0u, 1u}) ASSERT_EQ(bus.publish(tt::Quote{i, 0, 0}), result::ok);
  bus.poll();
  EXPECT_EQ(bus.metrics().subscriptions[0].breaker, tachyon::breaker_state::open);
}

TEST(Breaker, AnExceptionCountsDoesNotCountLeavesTheStreakAsItWas) {
  // breaker_policy::counts: "One it does not count leaves the failure streak as it was".
  vbus bus{tt::manual()};
  auto s = bus.subscribe<tt::Quote>(
      [&](const tt::Quote& q) {
        if (q.instrument == 0) throw std::logic_error("the caller's fault");
        throw std::runtime_error("the dependency is down");
      },
      {.breaker = {.failure_threshold = 2,
                   .open_for = 1s,
                   .action = tachyon::when_open::skip,
                   .counts = tt::counts_all_but_logic_error}});
  for (std::uint32_t i : {1u, 0u, 1u}) ASSERT_EQ(bus.publish(tt::Quote{i, 0, 0}), result::ok);
  bus.poll();
  const auto m = bus.metrics();
  EXPECT_EQ(m.subscriptions[0].breaker, tachyon::breaker_state::open);  // two counted in a row
  EXPECT_EQ(m.total.handler_errors, 3u);
  tt::expect_books_balance(m);
}

TEST(Deadline, AnEventPastItsDeadlineIsNotRun) {
  vbus bus{manual_dl()};
  int ran = 0;
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) { ++ran; });
  ASSERT_EQ(bus.publish(tt::Quote{}, tachyon::publish_options{.deadline = bus.now() + 5ms}),
            result::ok);
  ASSERT_EQ(bus.publish(tt::Quote{}, tachyon::publish_options{.deadline = bus.now() + 5ms,
                                                              .dead_letter_expired = true}),
            result::ok);
  ASSERT_EQ(bus.publish(tt::Quote{}, tachyon::publish_options{.deadline = bus.now() + 50ms}),
            result::ok);
  bus.time_source().advance(10ms);
  EXPECT_EQ(bus.poll(), 3u);
  EXPECT_EQ(ran, 1);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.expired, 2u);
  EXPECT_EQ(m.total.dispatched, 1u);
  EXPECT_EQ(bus.dead_letter_count(), 1u);
  tt::expect_books_balance(m);
  const auto r = bus.replay_dead_letters();  // an expired entry replays to every handler
  EXPECT_EQ(r.succeeded, 1u);
  EXPECT_EQ(ran, 2);
}

TEST(Delay, NotBeforeHoldsTheEventInTheTimerUntilDue) {
  vbus bus{tt::manual()};
  std::vector<int> order;
  auto s =
      bus.subscribe<tt::Quote>([&](const tt::Quote& q) { order.push_back(int(q.instrument)); });
  ASSERT_EQ(
      bus.publish(tt::Quote{1, 0, 0}, tachyon::publish_options{.not_before = bus.now() + 2ms}),
      result::ok);
  ASSERT_EQ(bus.publish(tt::Quote{2, 0, 0}), result::ok);
  bus.poll();
  EXPECT_EQ(order, (std::vector<int>{2}));
  auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, 2u);
  EXPECT_EQ(m.in_flight, 1u);
  EXPECT_EQ(m.timer_entries, 1u);
  bus.time_source().advance(2ms);
  bus.poll();
  EXPECT_EQ(order, (std::vector<int>{2, 1}));
  tt::expect_books_balance(bus.metrics());
}

TEST(Delay, AFullTimerRefusesTheDelayedPublishAndLeavesTheEvent) {
  auto cfg = tt::manual();
  cfg.timer_capacity = 1;
  vbus bus{cfg};
  ASSERT_EQ(bus.publish(tt::Note{"a"}, tachyon::publish_options{.not_before = bus.now() + 1s}),
            result::ok);
  tt::Note keep{"kept"};
  EXPECT_EQ(bus.publish(std::move(keep), tachyon::publish_options{.not_before = bus.now() + 1s}),
            result::full);
  EXPECT_EQ(keep.text, "kept");
  EXPECT_EQ(bus.metrics().total.rejected_full, 1u);
}

TEST(Stop, DrainRunsPendingRetriesAndDelayedEventsNow) {
  vbus bus{manual_dl()};
  int fails = 0, delayed = 0;
  auto s = bus.subscribe<tt::Quote>(
      [&](const tt::Quote& q) {
        if (q.instrument == 1) {
          ++fails;
          throw std::runtime_error("x");
        }
        ++delayed;
      },
      {.retry = retries(4, 1h)});
  ASSERT_EQ(bus.publish(tt::Quote{1, 0, 0}), result::ok);
  ASSERT_EQ(bus.publish(tt::Quote{2, 0, 0}, tachyon::publish_options{.not_before = bus.now() + 1h}),
            result::ok);
  bus.poll();
  EXPECT_EQ(fails, 1);
  EXPECT_EQ(bus.stop(), 0u);
  EXPECT_EQ(fails, 4);  // every attempt, without waiting out the backoff
  EXPECT_EQ(delayed, 1);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.dead_lettered, 1u);
  EXPECT_EQ(m.total.dispatched, 1u);
  tt::expect_books_balance(m);
}

TEST(Stop, DiscardDiscardsPendingRetriesAndDelayedEvents) {
  vbus bus{manual_dl()};
  auto s = bus.subscribe<tt::Note>([&](const tt::Note&) { throw std::runtime_error("x"); },
                                   {.retry = retries(4, 1h)});
  const int live_before = tt::Note::live.load();
  ASSERT_EQ(bus.publish(tt::Note{"r"}), result::ok);
  ASSERT_EQ(bus.publish(tt::Note{"d"}, tachyon::publish_options{.not_before = bus.now() + 1h}),
            result::ok);
  ASSERT_EQ(bus.publish(tt::Note{"q"}), result::ok);
  bus.run_once();  // runs "r" and "q" (one batch): both fail, both wait for a retry
  EXPECT_EQ(bus.stop(tachyon::stop_mode::discard), 1u);  // the delayed one
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.discarded, 3u);
  tt::expect_books_balance(m);
  EXPECT_EQ(tt::Note::live.load(), live_before);
}

TEST(Stop, DiscardCountsADelayedEventThatFellDueAndWaitsInItsLane) {
  vbus bus{tt::manual()};
  int ran = 0;
  auto q = bus.subscribe<tt::Quote>([&](const tt::Quote&) { ++ran; });
  ASSERT_EQ(bus.publish(tt::Quote{}, tachyon::publish_options{.not_before = bus.now() + 1ms}),
            result::ok);
  bus.time_source().advance(1ms);
  ASSERT_EQ(bus.publish(tt::Halt{}), result::ok);
  // Fires the delayed Quote into the normal lane's re-entry door, then runs the critical lane.
  EXPECT_EQ(bus.run_once(), 1u);
  EXPECT_EQ(ran, 0);
  EXPECT_EQ(bus.stop(tachyon::stop_mode::discard), 1u);  // as it would in the timer
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.discarded, 1u);
  tt::expect_books_balance(m);
}

TEST(Unsubscribe, APendingRetryOfARemovedSubscriptionFailsAndFreesItsHandler) {
  vbus bus{tt::manual()};
  std::atomic<int> destroyed{0};
  auto s = bus.subscribe<tt::Quote>(
      [p = tt::destroy_probe(&destroyed)](const tt::Quote&) { throw std::runtime_error("x"); },
      {.retry = retries(3, 1ms)});
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  bus.poll();
  s.unsubscribe();
  EXPECT_EQ(destroyed.load(), 1);  // freed although the retry still holds the subscription
  bus.time_source().advance(1ms);
  bus.poll();
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.failed, 1u);
  tt::expect_books_balance(m);
}

TEST(ErrorHook, SeesTheTypedEventAndTheSubscriptionName) {
  int seen = 0;
  auto cfg = tt::manual();
  cfg.on_error = [&](const tachyon::handler_error& e) {
    ASSERT_NE(e.get<tt::Quote>(), nullptr);
    EXPECT_EQ(e.get<tt::Order>(), nullptr);
    EXPECT_EQ(e.get<tt::Quote>()->instrument, 42u);
    EXPECT_EQ(e.subscription, "q");
    ++seen;
  };
  vbus bus{cfg};
  auto s = bus.subscribe<tt::Quote>([](const tt::Quote&) { throw std::runtime_error("x"); },
                                    {.name = "q"});
  ASSERT_EQ(bus.publish(tt::Quote{42, 0, 0}), result::ok);
  bus.poll();
  EXPECT_EQ(seen, 1);
}

TEST(Policies, InvalidOptionsAreRefusedByName) {
  vbus bus{tt::manual()};
  auto sub = [&](tachyon::subscribe_options<tt::Quote> o) {
    return bus.subscribe<tt::Quote>([](const tt::Quote&) {}, std::move(o));
  };
  EXPECT_THROW(sub({.retry = {.max_attempts = 0}}), std::invalid_argument);
  EXPECT_THROW(sub({.retry = {.max_attempts = 2, .multiplier = 0.5}}), std::invalid_argument);
  EXPECT_THROW(sub({.retry = {.max_attempts = 2, .jitter = 1.5}}), std::invalid_argument);
  EXPECT_THROW(sub({.breaker = {.failure_threshold = 5000}}), std::invalid_argument);
  try {
    sub({.retry = {.max_attempts = 2, .initial_delay = 2s, .max_delay = 1s}});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("retry.max_delay"), std::string::npos);
  }
}

}  // namespace

namespace {

TEST(Nesting, DispatchAndReplayInsideAHandlerKeepTheOuterEventsFailures) {
  vbus bus{manual_dl()};
  int outer_runs = 0;
  // The first handler of Quote throws (kept for a retry); the second calls dispatch() of an
  // Order whose handler throws, and replays the dead letters: neither may touch the Quote's
  // kept failure.
  auto a = bus.subscribe<tt::Quote>(
      [&](const tt::Quote&) {
        if (++outer_runs == 1) throw std::runtime_error("first run fails");
      },
      {.order = 0, .retry = retries(2, 1ms)});
  auto b = bus.subscribe<tt::Quote>(
      [&](const tt::Quote&) {
        bus.dispatch(tt::Order{1, 1});
        (void)bus.replay_dead_letters();
      },
      {.order = 1});
  auto o = bus.subscribe<tt::Order>([](const tt::Order&) { throw std::runtime_error("inner"); });
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  bus.poll();
  auto m = bus.metrics();
  EXPECT_EQ(m.types[2].counts.retried, 1u);  // the Quote's retry was scheduled
  EXPECT_EQ(m.types[1].counts.failed, 1u);   // the dispatched Order only failed
  bus.time_source().advance(1ms);
  bus.poll();
  EXPECT_EQ(outer_runs, 2);
  m = bus.metrics();
  EXPECT_EQ(m.types[2].counts.dispatched, 1u);
  tt::expect_books_balance(m);
}

}  // namespace
