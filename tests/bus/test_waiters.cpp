// bus::wait_for and request/reply: what they return, when they give up, where they are refused,
// what stop() does to them, that nothing is left subscribed or waiting, and that each request
// is finished exactly once when replies and timeouts race (a stress for TSan).
#include <gtest/gtest.h>

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "books.hpp"
#include "common.hpp"

using tachyon::result;
using namespace std::chrono_literals;

namespace wt {

struct Ask {
  std::uint64_t n;
};
struct Answer {
  std::uint64_t n;
};
/// Nobody answers it: requests for it can only time out or be stopped.
struct Silence {
  std::uint64_t n;
};
/// A reply type of its own, for the "same id, other type" case.
struct Ack {
  std::uint64_t n;
};
using Events = tachyon::registry<Ask, Answer, Silence, Ack, tt::Quote, tt::Note>;

}  // namespace wt

namespace {

using wt::Ack;
using wt::Answer;
using wt::Ask;
using wt::Silence;
using bus_t = tachyon::bus<wt::Events>;

constexpr std::uint64_t two_to_63 = std::uint64_t{1} << 63;
/// Long enough to mean "forever" for a call that must succeed: only a hang fails it.
constexpr auto generous = 60s;

tachyon::config workers(std::uint32_t n) {
  return {.workers = n, .lane_capacity = 4096, .overflow = tachyon::overflow::block};
}

/// A responder: answers each Ask with Answer{n * 10}, carrying the request's correlation id.
tachyon::subscription responder(bus_t& bus) {
  return bus.subscribe<Ask>([&bus](const Ask& a, const tachyon::meta& m) {
    (void)bus.publish(Answer{a.n * 10},
                      tachyon::publish_options{.correlation_id = m.correlation_id});
  });
}

std::string thread_name() {
  char name[16] = {};
  pthread_getname_np(pthread_self(), name, sizeof name);
  return name;
}

std::size_t subscriptions(const bus_t& bus) { return bus.metrics().subscriptions.size(); }

/// Runs f on a thread of its own, started once `bus` counts `n` waits, and joined by the
/// returned handle's destructor.
struct after_waiting {
  std::thread t;
  template <class F>
  after_waiting(bus_t& bus, std::size_t n, F f)
      : t([&bus, n, f = std::move(f)] {
          EXPECT_TRUE(tt::eventually([&] { return bus.waiting() == n; }));
          f();
        }) {}
  ~after_waiting() { t.join(); }
};

}  // namespace

// ---- wait_for --------------------------------------------------------------------------------

TEST(WaitFor, ReturnsTheMatchingEventAndIgnoresTheOthers) {
  bus_t bus{workers(1)};
  const std::size_t before = subscriptions(bus);
  std::optional<tt::Quote> got;
  {
    after_waiting publisher(bus, 1, [&] {
      ASSERT_EQ(bus.publish(tt::Quote{1, 1.0, 2.0}), result::ok);
      ASSERT_EQ(bus.publish(tt::Quote{2, 1.0, 2.0}), result::ok);
      ASSERT_EQ(bus.publish(tt::Quote{7, 99.5, 100.5}), result::ok);
      ASSERT_EQ(bus.publish(tt::Quote{7, 0.0, 0.0}), result::ok);  // one worker: runs later
    });
    got = bus.wait_for<tt::Quote>([](const tt::Quote& q) { return q.instrument == 7; }, generous);
  }
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->instrument, 7u);
  EXPECT_EQ(got->bid, 99.5);
  EXPECT_EQ(bus.waiting(), 0u);
  EXPECT_EQ(subscriptions(bus), before);
  bus.stop();
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.dispatched, 4u);
  EXPECT_EQ(m.total.failed, 0u);
  tt::expect_books_balance(m);
}

TEST(WaitFor, WithoutAPredicateReturnsTheNextEventOfItsType) {
  bus_t bus{workers(2)};
  after_waiting publisher(bus, 1, [&] {
    ASSERT_EQ(bus.publish(Ack{5}), result::ok);  // another type: not what it waits for
    ASSERT_EQ(bus.publish(Answer{42}), result::ok);
  });
  const auto got = bus.wait_for<Answer>(generous);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->n, 42u);
}

TEST(WaitFor, TimesOutWithNothingWhenNoEventMatches) {
  bus_t bus{workers(1)};
  const std::size_t before = subscriptions(bus);
  ASSERT_EQ(bus.publish(tt::Quote{1, 0, 0}), result::ok);
  const auto start = std::chrono::steady_clock::now();
  const auto got =
      bus.wait_for<tt::Quote>([](const tt::Quote& q) { return q.instrument == 9; }, 20ms);
  EXPECT_FALSE(got.has_value());
  EXPECT_GE(std::chrono::steady_clock::now() - start, 20ms);
  EXPECT_EQ(bus.waiting(), 0u);
  EXPECT_EQ(subscriptions(bus), before);
}

TEST(WaitFor, ANonPositiveTimeoutHasAlreadyPassed) {
  bus_t bus{workers(1)};
  EXPECT_FALSE(bus.wait_for<tt::Quote>(0ns).has_value());
  EXPECT_FALSE(bus.wait_for<tt::Quote>(-5s).has_value());
  EXPECT_EQ(bus.waiting(), 0u);
}

TEST(WaitFor, AnEndlessTimeoutWaitsForTheEventOrTheStop) {
  bus_t bus{workers(1)};
  {
    after_waiting publisher(bus, 1, [&] { ASSERT_EQ(bus.publish(Ack{3}), result::ok); });
    const auto got = bus.wait_for<Ack>(std::chrono::nanoseconds::max());
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->n, 3u);
  }
  std::atomic<int> calls{0};
  ASSERT_EQ(
      bus.request<Silence>(Ask{}, std::chrono::nanoseconds::max(),
                           [&](const Silence* s) { calls.fetch_add(s == nullptr ? 1 : 100); }),
      result::ok);
  bus.stop();
  EXPECT_EQ(calls.load(), 1);
}

TEST(WaitFor, SeesAnEventStillQueuedWhenItBeganInManualMode) {
  // Manual mode: the waiting call drives the bus on its own thread, so what was queued before
  // the call is dispatched after it subscribed, and matches.
  bus_t bus{tt::manual()};
  std::thread::id ran_on;
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) { ran_on = std::this_thread::get_id(); });
  ASSERT_EQ(bus.publish(tt::Quote{1, 0, 0}), result::ok);
  ASSERT_EQ(bus.publish(tt::Quote{3, 5, 6}), result::ok);
  ASSERT_EQ(bus.publish(tt::Quote{4, 0, 0}), result::ok);
  const auto got =
      bus.wait_for<tt::Quote>([](const tt::Quote& q) { return q.instrument == 3; }, generous);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->bid, 5.0);
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  EXPECT_EQ(bus.metrics().total.dispatched, 3u);  // one batch held all three
}

TEST(WaitFor, TimesOutInManualModeWhenNothingComes) {
  bus_t bus{tt::manual()};
  EXPECT_FALSE(bus.wait_for<tt::Quote>(10ms).has_value());
}

TEST(WaitFor, ReturnsAfterTheTypesOtherHandlersRan) {
  bus_t bus{tt::manual()};
  bool handled = false;
  auto s = bus.subscribe<Ack>([&](const Ack&) { handled = true; }, {.order = 1000});
  ASSERT_EQ(bus.publish(Ack{1}), result::ok);
  const auto got = bus.wait_for<Ack>(generous);
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(handled);
}

TEST(WaitFor, IsRefusedInsideAHandlerOfTheSameBus) {
  bus_t bus{workers(1)};
  std::atomic<int> refused{0};
  std::string message;
  auto s = bus.subscribe<Ack>([&](const Ack&) {
    try {
      (void)bus.wait_for<tt::Quote>(generous);
    } catch (const std::logic_error& e) {
      message = e.what();
      refused.fetch_add(1);
    }
  });
  ASSERT_EQ(bus.publish(Ack{1}), result::ok);
  ASSERT_TRUE(tt::eventually([&] { return refused.load() == 1; }));
  EXPECT_NE(message.find("tachyon::bus::wait_for called from inside a handler of the same bus"),
            std::string::npos)
      << message;
  bus.dispatch(Ack{2});  // inside dispatch(): refused too
  EXPECT_EQ(refused.load(), 2);
  EXPECT_EQ(bus.waiting(), 0u);
}

TEST(WaitFor, PredicateThatThrowsEndsTheWaitWithItsException) {
  bus_t bus{workers(2)};
  const std::size_t before = subscriptions(bus);
  after_waiting publisher(bus, 1, [&] { ASSERT_EQ(bus.publish(tt::Quote{1, 0, 0}), result::ok); });
  EXPECT_THROW(
      (void)bus.wait_for<tt::Quote>(
          [](const tt::Quote&) -> bool { throw std::runtime_error("bad predicate"); }, generous),
      std::runtime_error);
  EXPECT_EQ(subscriptions(bus), before);
  bus.stop();
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.failed, 0u);  // the event is not the predicate's fault
  EXPECT_EQ(m.total.dispatched, 1u);
}

TEST(WaitFor, SeveralWaitersOnSeveralWorkersEachGetTheirOwnEvent) {
  constexpr std::uint32_t waiters = 6;
  bus_t bus{workers(3)};
  const std::size_t before = subscriptions(bus);
  std::vector<std::optional<tt::Quote>> got(waiters);
  std::vector<std::thread> threads;
  for (std::uint32_t i = 0; i < waiters; ++i)
    threads.emplace_back([&, i] {
      got[i] =
          bus.wait_for<tt::Quote>([i](const tt::Quote& q) { return q.instrument == i; }, generous);
    });
  ASSERT_TRUE(tt::eventually([&] { return bus.waiting() == waiters; }));
  for (std::uint32_t round = 0; round < 3; ++round)  // each matching event three times
    for (std::uint32_t i = 0; i < waiters; ++i)
      ASSERT_EQ(bus.publish(tt::Quote{i, static_cast<double>(i), 0}), result::ok);
  for (auto& t : threads) t.join();
  for (std::uint32_t i = 0; i < waiters; ++i) {
    ASSERT_TRUE(got[i].has_value()) << i;
    EXPECT_EQ(got[i]->instrument, i);
  }
  EXPECT_EQ(bus.waiting(), 0u);
  EXPECT_EQ(subscriptions(bus), before);
  bus.stop();
  tt::expect_books_balance(bus.metrics());
}

TEST(WaitFor, StopEndsAPendingWaitAndLaterOnesReturnAtOnce) {
  bus_t bus{workers(1)};
  std::optional<tt::Quote> got{tt::Quote{}};
  std::thread waiter([&] { got = bus.wait_for<tt::Quote>(generous); });
  ASSERT_TRUE(tt::eventually([&] { return bus.waiting() == 1; }));
  tt::finishes("stop() with a wait pending", [&] { bus.stop(); });
  tt::finishes("the pending wait", [&] { waiter.join(); });
  EXPECT_FALSE(got.has_value());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(bus.wait_for<tt::Quote>(generous).has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 30s);  // not the minute: at once
  EXPECT_EQ(bus.waiting(), 0u);
}

TEST(WaitFor, ReturnsACopyOfABoxedEvent) {
  bus_t bus{workers(1)};
  const int live = tt::Note::live.load();
  {
    after_waiting publisher(bus, 1, [&] { ASSERT_EQ(bus.publish(tt::Note{"hello"}), result::ok); });
    const auto got = bus.wait_for<tt::Note>(generous);
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->text, "hello");
  }
  bus.stop();
  EXPECT_EQ(tt::Note::live.load(), live);
}

// ---- request / reply -------------------------------------------------------------------------

TEST(Request, BlockingRoundTripReturnsTheReply) {
  bus_t bus{workers(2)};
  auto r = responder(bus);
  for (std::uint64_t n = 1; n <= 20; ++n) {
    const auto got = bus.request<Answer>(Ask{n}, generous);
    ASSERT_TRUE(got.has_value()) << n;
    EXPECT_EQ(got->n, n * 10);
  }
  EXPECT_EQ(bus.waiting(), 0u);
  bus.stop();
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.dispatched, 40u);
  tt::expect_books_balance(m);
}

TEST(Request, AsyncRoundTripCallsOnReplyOnceWithTheReply) {
  bus_t bus{workers(2)};
  auto r = responder(bus);
  std::atomic<int> calls{0};
  std::atomic<std::uint64_t> seen{0};
  ASSERT_EQ(bus.request<Answer>(Ask{7}, generous,
                                [&](const Answer* a) {
                                  seen.store(a != nullptr ? a->n : 0);
                                  calls.fetch_add(1);
                                }),
            result::ok);
  ASSERT_TRUE(tt::eventually([&] { return calls.load() == 1; }));
  EXPECT_EQ(seen.load(), 70u);
  EXPECT_EQ(bus.waiting(), 0u);
  bus.stop();
  EXPECT_EQ(calls.load(), 1);  // stop() found nothing pending
}

TEST(Request, EachRequestCarriesAFreshCorrelationIdAbove2To63) {
  bus_t bus{tt::manual()};
  std::vector<std::uint64_t> ids;
  auto s = bus.subscribe<Ask>([&](const Ask&, const tachyon::meta& m) {
    ids.push_back(m.correlation_id);
    (void)bus.publish(Answer{}, tachyon::publish_options{.correlation_id = m.correlation_id});
  });
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(bus.request<Answer>(Ask{}, generous).has_value());
  ASSERT_EQ(ids.size(), 3u);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    EXPECT_GT(ids[i], two_to_63);
    if (i > 0) {
      EXPECT_GT(ids[i], ids[i - 1]);
    }
  }
}

TEST(Request, BlockingTimesOutWithoutAResponder) {
  bus_t bus{workers(1)};
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(bus.request<Silence>(Ask{1}, 20ms).has_value());
  EXPECT_GE(std::chrono::steady_clock::now() - start, 20ms);
  EXPECT_EQ(bus.waiting(), 0u);
}

TEST(Request, AsyncTimesOutOnTheTimeoutThreadWithNoReply) {
  bus_t bus{workers(1)};
  std::atomic<int> calls{0};
  std::atomic<bool> null_reply{false};
  std::string on_thread;
  const auto start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::duration after{};
  ASSERT_EQ(bus.request<Silence>(Ask{1}, 20ms,
                                 [&](const Silence* s) {
                                   after = std::chrono::steady_clock::now() - start;
                                   on_thread = thread_name();
                                   null_reply.store(s == nullptr);
                                   calls.fetch_add(1);
                                 }),
            result::ok);
  ASSERT_TRUE(tt::eventually([&] { return calls.load() == 1; }));
  EXPECT_TRUE(null_reply.load());
  EXPECT_EQ(on_thread, "tachyon-timeout");
  EXPECT_GE(after, 20ms);
  EXPECT_EQ(bus.waiting(), 0u);
  bus.stop();
  EXPECT_EQ(calls.load(), 1);
}

TEST(Request, TimeoutsFireInDeadlineOrderWhateverTheOrderOfTheRequests) {
  // Each request's deadline lies between (clock before the call) + timeout and (clock after
  // it) + timeout; two requests whose such intervals do not overlap must time out in deadline
  // order, however late the timeout thread wakes (it may find several due at once). On a
  // loaded machine some pairs may overlap: those are not checked.
  constexpr int requests = 12;
  bus_t bus{workers(1)};
  std::mutex m;
  std::vector<int> order;
  std::vector<
      std::pair<std::chrono::steady_clock::time_point, std::chrono::steady_clock::time_point>>
      window(requests);
  for (int k = 0; k < requests; ++k) {
    const int i = (k * 5) % requests;  // issued out of deadline order
    const auto timeout = 20ms + 7ms * i;
    const auto before = std::chrono::steady_clock::now();
    ASSERT_EQ(bus.request<Silence>(Ask{}, timeout,
                                   [&, i](const Silence*) {
                                     std::lock_guard lock(m);
                                     order.push_back(i);
                                   }),
              result::ok);
    window[i] = {before + timeout, std::chrono::steady_clock::now() + timeout};
  }
  ASSERT_TRUE(tt::eventually([&] {
    std::lock_guard lock(m);
    return order.size() == requests;
  }));
  std::lock_guard lock(m);
  for (std::size_t a = 0; a < order.size(); ++a)
    for (std::size_t b = a + 1; b < order.size(); ++b)  // order[a] ran before order[b] ...
      EXPECT_FALSE(window[order[b]].second < window[order[a]].first)  // ... so not surely later
          << order[a] << " timed out before " << order[b];
}

TEST(Request, TimeoutsThatFallDueTogetherRunInDeadlineOrder) {
  // The first timeout's on_reply holds the timeout thread until every other request is past
  // its deadline: its next scan finds them all due at once, across stripes.
  constexpr int requests = 10;
  bus_t bus{workers(1)};
  std::atomic<bool> holding{false}, release{false};
  ASSERT_EQ(bus.request<Silence>(Ask{}, 1ms,
                                 [&](const Silence*) {
                                   holding.store(true);
                                   EXPECT_TRUE(tt::eventually([&] { return release.load(); }));
                                 }),
            result::ok);
  ASSERT_TRUE(tt::eventually([&] { return holding.load(); }));
  std::vector<int> order;  // written by the timeout thread only, read after it is done
  std::atomic<int> done{0};
  std::vector<std::chrono::steady_clock::time_point> lo(requests), hi(requests);
  for (int k = 0; k < requests; ++k) {
    const int i = (k * 3) % requests;
    const auto timeout = 1ms + 1ms * i;
    const auto before = std::chrono::steady_clock::now();
    ASSERT_EQ(bus.request<Silence>(Ask{}, timeout,
                                   [&, i](const Silence*) {
                                     order.push_back(i);
                                     done.fetch_add(1);
                                   }),
              result::ok);
    lo[i] = before + timeout;
    hi[i] = std::chrono::steady_clock::now() + timeout;
  }
  const auto last = *std::max_element(hi.begin(), hi.end());
  ASSERT_TRUE(tt::eventually([&] { return std::chrono::steady_clock::now() > last; }));
  release.store(true);
  ASSERT_TRUE(tt::eventually([&] { return done.load() == requests; }));
  ASSERT_EQ(order.size(), static_cast<std::size_t>(requests));
  for (std::size_t a = 0; a < order.size(); ++a)
    for (std::size_t b = a + 1; b < order.size(); ++b)
      EXPECT_FALSE(hi[order[b]] < lo[order[a]]) << order[a] << " timed out before " << order[b];
}

TEST(Request, TheTimeoutThreadWakesForAnEarlierDeadline) {
  bus_t bus{workers(1)};
  std::atomic<int> calls{0};
  // The timeout thread goes to sleep until the first deadline, ten minutes away ...
  ASSERT_EQ(bus.request<Silence>(Ask{1}, 10min, [&](const Silence*) { calls.fetch_add(100); }),
            result::ok);
  ASSERT_TRUE(tt::eventually([&] { return bus.waiting() == 1; }));
  // ... and a nearer one must wake it: tt::eventually gives up after one minute.
  ASSERT_EQ(bus.request<Silence>(Ask{2}, 10ms, [&](const Silence*) { calls.fetch_add(1); }),
            result::ok);
  ASSERT_TRUE(tt::eventually([&] { return calls.load() == 1; }));
  EXPECT_EQ(bus.waiting(), 1u);
  bus.stop();
  EXPECT_EQ(calls.load(), 101);
}

TEST(Request, AfterAnsweredRequestsTheTimeoutThreadStillWakesForANearerDeadline) {
  bus_t bus{workers(1)};
  auto r = responder(bus);
  std::atomic<int> answered{0}, timed_out{0};
  // Answered at once: the timeout thread, finding nothing armed, sleeps until the latest
  // deadline it was told of, ten minutes away ...
  for (int i = 0; i < 20; ++i)
    ASSERT_EQ(
        bus.request<Answer>(Ask{1}, 10min, [&](const Answer* a) { answered += a != nullptr; }),
        result::ok);
  ASSERT_TRUE(tt::eventually([&] { return answered.load() == 20 && bus.waiting() == 0; }));
  // ... and a nearer deadline must still wake it.
  ASSERT_EQ(
      bus.request<Silence>(Ask{2}, 10ms, [&](const Silence* s) { timed_out += s == nullptr; }),
      result::ok);
  ASSERT_TRUE(tt::eventually([&] { return timed_out.load() == 1; }));
}

TEST(Request, ReplyWithAnotherCorrelationIdIsNotTaken) {
  bus_t bus{tt::manual()};
  std::uint64_t answered = 0;
  auto s = bus.subscribe<Ask>([&](const Ask&, const tachyon::meta& m) {
    // First the wrong ones: a user's id, the next request's id; then the right one, with no
    // id given: inside the request's handler it inherits the request's.
    (void)bus.publish(Answer{2}, tachyon::publish_options{.correlation_id = 12345});
    (void)bus.publish(Answer{3}, tachyon::publish_options{.correlation_id = m.correlation_id + 1});
    (void)bus.publish(Answer{4});
    ++answered;
  });
  const auto got = bus.request<Answer>(Ask{}, generous);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->n, 4u);
  EXPECT_EQ(answered, 1u);
}

TEST(Request, AnEventOfAnotherReplyTypeWithTheSameIdIsNotTaken) {
  bus_t bus{tt::manual()};
  // Ack has a replies subscription too, from a request of its own.
  auto acks = bus.subscribe<Silence>([&](const Silence&, const tachyon::meta& m) {
    (void)bus.publish(Ack{1}, tachyon::publish_options{.correlation_id = m.correlation_id});
  });
  ASSERT_TRUE(bus.request<Ack>(Silence{}, generous).has_value());
  auto s = bus.subscribe<Ask>([&](const Ask&, const tachyon::meta& m) {
    (void)bus.publish(Ack{2}, tachyon::publish_options{.correlation_id = m.correlation_id});
    (void)bus.publish(Answer{3}, tachyon::publish_options{.correlation_id = m.correlation_id});
  });
  const auto got = bus.request<Answer>(Ask{}, generous);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->n, 3u);
}

TEST(Request, SecondAnswerFindsNoRequestAndIsDispatchedLikeAnyEvent) {
  bus_t bus{tt::manual()};
  auto s = bus.subscribe<Ask>([&](const Ask&, const tachyon::meta& m) {
    const tachyon::publish_options same{.correlation_id = m.correlation_id};
    (void)bus.publish(Answer{1}, same);
    (void)bus.publish(Answer{2}, same);
  });
  int calls = 0;
  std::uint64_t got = 0;
  ASSERT_EQ(bus.request<Answer>(Ask{}, generous,
                                [&](const Answer* a) {
                                  ++calls;
                                  got = a != nullptr ? a->n : 0;
                                }),
            result::ok);
  EXPECT_EQ(bus.poll(), 3u);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(got, 1u);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.dispatched, 3u);
  tt::expect_books_balance(m);
}

TEST(Request, ACorrelationIdInTheOptionsIsRejected) {
  bus_t bus{tt::manual()};
  try {
    (void)bus.request<Answer>(Ask{}, generous, tachyon::publish_options{.correlation_id = 5});
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(),
                 "tachyon::bus::request: publish_options::correlation_id is 5; allowed: 0 only "
                 "(the bus gives each request a fresh correlation id, 2^63 + n)");
  }
  EXPECT_THROW(
      (void)bus.request<Answer>(
          Ask{}, generous, [](const Answer*) {}, tachyon::publish_options{.correlation_id = 5}),
      std::invalid_argument);
  EXPECT_EQ(bus.waiting(), 0u);
  EXPECT_EQ(bus.metrics().total.accepted, 0u);
}

TEST(Request, PublishOptionsChooseTheRequestsLane) {
  bus_t bus{tt::manual()};
  tachyon::priority lane = tachyon::priority::low;
  auto s = bus.subscribe<Ask>([&](const Ask&, const tachyon::meta& m) {
    lane = m.lane;
    (void)bus.publish(Answer{}, tachyon::publish_options{.correlation_id = m.correlation_id});
  });
  ASSERT_TRUE(bus.request<Answer>(Ask{}, generous,
                                  tachyon::publish_options{.lane = tachyon::priority::critical})
                  .has_value());
  EXPECT_EQ(lane, tachyon::priority::critical);
}

TEST(Request, RefusedPublishReturnsAtOnceAndNeverCallsOnReply) {
  bus_t bus{tt::manual(/*capacity=*/1)};
  ASSERT_EQ(bus.publish(Ask{0}), result::ok);  // the normal lane is now full (overflow::fail)
  int calls = 0;
  EXPECT_EQ(bus.request<Answer>(Ask{1}, generous, [&](const Answer*) { ++calls; }), result::full);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(bus.request<Answer>(Ask{2}, generous).has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 30s);  // at once, not at the timeout
  EXPECT_EQ(bus.waiting(), 0u);
  bus.stop();
  EXPECT_EQ(bus.request<Answer>(Ask{3}, generous, [&](const Answer*) { ++calls; }),
            result::stopped);
  EXPECT_FALSE(bus.request<Answer>(Ask{4}, generous).has_value());
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(bus.waiting(), 0u);
  tt::expect_books_balance(bus.metrics());
}

TEST(Request, BlockingRequestIsRefusedInsideAHandlerButTheAsyncOneWorks) {
  bus_t bus{workers(1)};
  auto r = responder(bus);
  std::string message;
  std::atomic<std::uint64_t> answer{0};
  auto s = bus.subscribe<Ack>([&](const Ack&) {
    try {
      (void)bus.request<Answer>(Ask{1}, generous);
    } catch (const std::logic_error& e) {
      message = e.what();
    }
    (void)bus.request<Answer>(Ask{2}, generous,
                              [&](const Answer* a) { answer.store(a ? a->n : 1); });
  });
  ASSERT_EQ(bus.publish(Ack{}), result::ok);
  ASSERT_TRUE(tt::eventually([&] { return answer.load() != 0; }));
  EXPECT_EQ(answer.load(), 20u);
  EXPECT_NE(message.find("tachyon::bus::request called from inside a handler of the same bus"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("use the asynchronous request(ev, timeout, on_reply)"), std::string::npos);
}

TEST(Request, ManualModeBlockingRequestDrivesTheBusOnTheCallingThread) {
  bus_t bus{tt::manual()};
  std::thread::id responded_on;
  auto s = bus.subscribe<Ask>([&](const Ask& a, const tachyon::meta& m) {
    responded_on = std::this_thread::get_id();
    (void)bus.publish(Answer{a.n + 1},
                      tachyon::publish_options{.correlation_id = m.correlation_id});
  });
  const auto got = bus.request<Answer>(Ask{41}, generous);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->n, 42u);
  EXPECT_EQ(responded_on, std::this_thread::get_id());
  EXPECT_EQ(bus.poll(), 0u);  // both events ran inside the call
}

TEST(Request, StopFinishesPendingAsyncRequestsWithNoReplyOnTheStoppingThread) {
  constexpr int pending = 50;
  bus_t bus{workers(2)};
  std::atomic<int> calls{0}, nulls{0};
  std::atomic<int> off_thread{0};
  const auto me = std::this_thread::get_id();
  for (int i = 0; i < pending; ++i)
    ASSERT_EQ(bus.request<Silence>(Ask{}, generous,
                                   [&](const Silence* s) {
                                     if (std::this_thread::get_id() != me) off_thread.fetch_add(1);
                                     nulls.fetch_add(s == nullptr);
                                     calls.fetch_add(1);
                                   }),
              result::ok);
  EXPECT_EQ(bus.waiting(), static_cast<std::size_t>(pending));
  bus.stop();
  EXPECT_EQ(calls.load(), pending);  // all of them, before stop() returned
  EXPECT_EQ(nulls.load(), pending);
  EXPECT_EQ(off_thread.load(), 0);
  EXPECT_EQ(bus.waiting(), 0u);
}

TEST(Request, StopDispatchesRepliesAlreadyQueuedAndGivesUpOnTheRest) {
  bus_t bus{tt::manual()};
  auto r = responder(bus);
  std::optional<std::uint64_t> queued, unanswered, silent;
  ASSERT_EQ(bus.request<Answer>(Ask{3}, generous, [&](const Answer* a) { queued = a ? a->n : 0; }),
            result::ok);
  ASSERT_EQ(bus.run_once(), 1u);  // the Ask ran: its Answer is queued
  ASSERT_EQ(
      bus.request<Answer>(Ask{4}, generous, [&](const Answer* a) { unanswered = a ? a->n : 0; }),
      result::ok);
  ASSERT_EQ(
      bus.request<Silence>(Ask{5}, generous, [&](const Silence* s) { silent = s ? s->n : 0; }),
      result::ok);
  // The drain dispatches the queued Answer; the second Ask runs too, but its responder's
  // publish is refused (stopping); nobody sends Silence. Then the rest end with nothing.
  bus.stop();
  EXPECT_EQ(queued, 30u);
  EXPECT_EQ(unanswered, 0u);
  EXPECT_EQ(silent, 0u);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.dispatched, 4u);  // three Asks, one Answer
  tt::expect_books_balance(m);
}

TEST(Request, DestroyingTheBusFinishesPendingAsyncRequests) {
  std::atomic<int> calls{0};
  {
    bus_t bus{workers(1)};
    for (int i = 0; i < 10; ++i)
      ASSERT_EQ(bus.request<Silence>(Ask{}, generous, [&](const Silence*) { calls.fetch_add(1); }),
                result::ok);
  }
  EXPECT_EQ(calls.load(), 10);
}

TEST(Request, StopFromInsideAHandlerLeavesRequestsToTheirTimeoutOrTheFinalStop) {
  bus_t bus{workers(1)};
  std::atomic<int> calls{0};
  auto s = bus.subscribe<Ack>([&](const Ack&) { bus.stop(); });  // only begins the stop
  ASSERT_EQ(bus.request<Silence>(Ask{}, generous, [&](const Silence*) { calls.fetch_add(1); }),
            result::ok);
  ASSERT_EQ(bus.publish(Ack{}), result::ok);
  ASSERT_TRUE(tt::eventually([&] { return bus.publish(Ack{}) == result::stopped; }));
  EXPECT_EQ(calls.load(), 0);
  bus.stop();  // finishes it
  EXPECT_EQ(calls.load(), 1);
}

TEST(Request, OnReplyThatThrowsFailsTheReplyLikeAnyHandler) {
  std::atomic<int> hook{0};
  std::string hook_subscription;
  tachyon::config cfg = tt::manual();
  cfg.on_error = [&](const tachyon::handler_error& e) {
    hook_subscription = std::string(e.subscription);
    hook.fetch_add(1);
  };
  bus_t bus{cfg};
  auto r = responder(bus);
  ASSERT_EQ(bus.request<Answer>(Ask{1}, generous,
                                [](const Answer*) { throw std::runtime_error("on_reply"); }),
            result::ok);
  EXPECT_EQ(bus.poll(), 2u);
  EXPECT_EQ(hook.load(), 1);
  EXPECT_EQ(hook_subscription, "tachyon::replies<wt::Answer>");
  auto m = bus.metrics();
  EXPECT_EQ(m.total.failed, 1u);      // the Answer
  EXPECT_EQ(m.total.dispatched, 1u);  // the Ask
  tt::expect_books_balance(m);
}

TEST(Request, OnReplyThatThrowsWithNoReplyIsReportedToTheErrorHook) {
  std::atomic<int> hook{0};
  std::uint64_t correlation = 0;
  std::string type;
  tachyon::config cfg = workers(1);
  cfg.on_error = [&](const tachyon::handler_error& e) {
    correlation = e.event.correlation_id;
    type = std::string(e.type_name);
    hook.fetch_add(1);
  };
  bus_t bus{cfg};
  ASSERT_EQ(
      bus.request<Silence>(Ask{}, 1ms, [](const Silence*) { throw std::runtime_error("timeout"); }),
      result::ok);
  ASSERT_TRUE(tt::eventually([&] { return hook.load() == 1; }));
  EXPECT_GT(correlation, two_to_63);
  EXPECT_EQ(type, "wt::Silence");
  std::uint64_t errors = 0;
  for (const auto& s : bus.metrics().subscriptions)
    if (s.name == "tachyon::replies<wt::Silence>") errors = s.errors;
  EXPECT_EQ(errors, 1u);
}

TEST(Request, OneRepliesSubscriptionPerTypeAndNothingLeftWaiting) {
  bus_t bus{workers(2)};
  auto r = responder(bus);
  const std::size_t before = subscriptions(bus);
  std::atomic<int> calls{0};
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(bus.request<Answer>(Ask{1}, generous).has_value());
    ASSERT_EQ(bus.request<Answer>(Ask{1}, generous, [&](const Answer*) { calls.fetch_add(1); }),
              result::ok);
    EXPECT_FALSE(bus.request<Silence>(Ask{1}, 0ns).has_value());
  }
  ASSERT_TRUE(tt::eventually([&] { return calls.load() == 50; }));
  const auto subs = bus.metrics().subscriptions;
  EXPECT_EQ(subs.size(), before + 2);  // tachyon::replies<Answer> and tachyon::replies<Silence>
  EXPECT_EQ(subs[subs.size() - 2].name, "tachyon::replies<wt::Answer>");
  EXPECT_EQ(subs.back().name, "tachyon::replies<wt::Silence>");
  ASSERT_TRUE(tt::eventually([&] { return bus.waiting() == 0; }));
}

TEST(Request, ReplyCarriesABoxedEvent) {
  bus_t bus{workers(1)};
  auto s = bus.subscribe<Ask>([&](const Ask& a, const tachyon::meta& m) {
    (void)bus.publish(tt::Note{"answer " + std::to_string(a.n)},
                      tachyon::publish_options{.correlation_id = m.correlation_id});
  });
  const auto got = bus.request<tt::Note>(Ask{9}, generous);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->text, "answer 9");
  std::atomic<int> calls{0};
  std::string text;
  ASSERT_EQ(bus.request<tt::Note>(Ask{8}, generous,
                                  [&](const tt::Note* n) {
                                    text = n ? n->text : "";
                                    calls.fetch_add(1);
                                  }),
            result::ok);
  ASSERT_TRUE(tt::eventually([&] { return calls.load() == 1; }));
  EXPECT_EQ(text, "answer 8");
}

// ---- exactly once, under stress -----------------------------------------------------------

namespace {

/// What the stress's responder does with request n: answer at once, twice, never, or late.
enum class answer_kind { now, twice, never, late };
answer_kind kind_of(std::uint64_t n) {
  switch ((n * 2654435761u) >> 7 & 3) {
    case 0:
      return answer_kind::now;
    case 1:
      return answer_kind::twice;
    case 2:
      return answer_kind::never;
    default:
      return answer_kind::late;
  }
}

/// The span replies and timeouts race over: short timeouts and late answers are spread across
/// it, so that some replies land just before their request's timeout and some just after.
constexpr auto race = tt::sanitized() ? 600us : 200us;

/// Request n's timeout: 0 (already passed when it is armed), race / 2, race, or generous
/// (then a reply that is sent must win).
std::chrono::nanoseconds timeout_of(std::uint64_t n) {
  switch (n % 4) {
    case 0:
      return 0ns;
    case 1:
      return race / 2;
    case 2:
      return race;
    default:
      return generous;
  }
}

/// The stress responder: answers request n as kind_of(n) says; a late answer spins 0, race / 2
/// or race first.
tachyon::subscription racing_responder(bus_t& bus) {
  return bus.subscribe<Ask>([&bus](const Ask& a, const tachyon::meta& m) {
    const answer_kind k = kind_of(a.n);
    if (k == answer_kind::never) return;
    if (k == answer_kind::late) {
      const auto until = std::chrono::steady_clock::now() + race * (a.n / 4 % 3) / 2;
      while (std::chrono::steady_clock::now() < until) {
      }
    }
    const tachyon::publish_options same{.correlation_id = m.correlation_id};
    (void)bus.publish(Answer{a.n}, same);
    if (k == answer_kind::twice) (void)bus.publish(Answer{a.n}, same);
  });
}

}  // namespace

TEST(RequestStress, EveryAsyncRequestIsFinishedExactlyOnceWhenRepliesRaceTheirTimeouts) {
  constexpr std::uint32_t threads = 4;
  constexpr std::uint64_t window = 8;  // requests each thread keeps outstanding
  const std::uint32_t per_thread = tt::sanitized() ? 600 : 4000;
  const std::uint64_t total = threads * per_thread;
  bus_t bus{{.workers = 3, .lane_capacity = 8192, .overflow = tachyon::overflow::block}};
  auto r = racing_responder(bus);
  auto calls = std::make_unique<std::atomic<int>[]>(total);
  auto replied = std::make_unique<std::atomic<int>[]>(total);
  auto done_per_thread = std::make_unique<std::atomic<std::uint64_t>[]>(threads);
  std::atomic<int> wrong{0};
  std::atomic<std::uint64_t> finished{0};
  std::vector<std::thread> requesters;
  for (std::uint32_t t = 0; t < threads; ++t)
    requesters.emplace_back([&, t] {
      for (std::uint32_t i = 0; i < per_thread; ++i) {
        const std::uint64_t n = t * per_thread + i;
        // Keep the queue short, so that replies race the short timeouts rather than a backlog
        // (a request that never gets an answer and has the generous timeout is left out).
        while (i - done_per_thread[t].load() >= window) std::this_thread::yield();
        const bool stays = kind_of(n) == answer_kind::never && timeout_of(n) == generous;
        if (stays) done_per_thread[t].fetch_add(1);
        const result res =
            bus.request<Answer>(Ask{n}, timeout_of(n), [&, n, t, stays](const Answer* a) {
              calls[n].fetch_add(1);
              if (a != nullptr) {
                replied[n].fetch_add(1);
                if (a->n != n) wrong.fetch_add(1);
              }
              if (!stays) done_per_thread[t].fetch_add(1);
              finished.fetch_add(1);
            });
        EXPECT_EQ(res, result::ok);
      }
    });
  for (auto& t : requesters) t.join();
  std::uint64_t stay = 0;
  for (std::uint64_t n = 0; n < total; ++n)
    stay += kind_of(n) == answer_kind::never && timeout_of(n) == generous;
  ASSERT_TRUE(tt::eventually([&] { return finished.load() == total - stay; }));
  EXPECT_EQ(bus.waiting(), stay);
  bus.stop();  // the ones nobody answers and that would wait a minute: finished now
  EXPECT_EQ(finished.load(), total);
  for (std::uint64_t n = 0; n < total; ++n) {
    ASSERT_EQ(calls[n].load(), 1) << "request " << n;
    if (kind_of(n) == answer_kind::never) {
      EXPECT_EQ(replied[n].load(), 0) << n;
    } else if (timeout_of(n) == generous) {
      EXPECT_EQ(replied[n].load(), 1) << n;  // an answer was sent well within the timeout
    }
  }
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(bus.waiting(), 0u);
  tt::expect_books_balance(bus.metrics());
}

TEST(RequestStress, StopWhileRequestsAreInFlightFinishesEachExactlyOnce) {
  constexpr std::uint32_t threads = 3;
  const std::uint32_t per_thread = tt::sanitized() ? 300 : 3000;
  const std::uint64_t total = threads * per_thread;
  bus_t bus{{.workers = 2, .lane_capacity = 8192, .overflow = tachyon::overflow::block}};
  auto r = responder(bus);
  auto calls = std::make_unique<std::atomic<int>[]>(total);
  std::atomic<std::uint64_t> finished{0}, accepted{0}, refused{0};
  std::atomic<std::uint64_t> issued{0};
  std::vector<std::thread> requesters;
  for (std::uint32_t t = 0; t < threads; ++t)
    requesters.emplace_back([&, t] {
      for (std::uint32_t i = 0; i < per_thread; ++i) {
        const std::uint64_t n = t * per_thread + i;
        // Half are answered, half wait for a reply type nobody sends: those stop() finishes.
        auto note = [&, n](const void*) {
          calls[n].fetch_add(1);
          finished.fetch_add(1);
        };
        const result res = n % 2 == 0 ? bus.request<Answer>(Ask{n}, generous, note)
                                      : bus.request<Silence>(Ask{n}, generous, note);
        (res == result::ok ? accepted : refused).fetch_add(1);
        issued.fetch_add(1);
        if (res != result::ok) {
          EXPECT_EQ(res, result::stopped);
        }
      }
    });
  ASSERT_TRUE(tt::eventually([&] { return issued.load() >= total / 3; }));
  bus.stop();
  for (auto& t : requesters) t.join();
  // Every accepted request finished exactly once (by its reply, or by stop() with nothing),
  // before stop() returned or, for one racing it, in its own arm(); refused ones never.
  ASSERT_TRUE(tt::eventually([&] { return finished.load() == accepted.load(); }));
  EXPECT_EQ(accepted.load() + refused.load(), total);
  std::uint64_t ran = 0;
  for (std::uint64_t n = 0; n < total; ++n) {
    EXPECT_LE(calls[n].load(), 1) << n;
    ran += calls[n].load();
  }
  EXPECT_EQ(ran, accepted.load());
  EXPECT_EQ(bus.waiting(), 0u);
  tt::expect_books_balance(bus.metrics());
}

TEST(RequestStress, BlockingRequestsGetTheirOwnReplyOrNothing) {
  constexpr std::uint32_t threads = 4;
  const std::uint32_t per_thread = tt::sanitized() ? 200 : 2000;
  bus_t bus{{.workers = 2, .lane_capacity = 8192, .overflow = tachyon::overflow::block}};
  auto r = racing_responder(bus);
  std::atomic<int> wrong{0}, missing{0}, never_answered_got_one{0};
  std::vector<std::thread> requesters;
  for (std::uint32_t t = 0; t < threads; ++t)
    requesters.emplace_back([&, t] {
      for (std::uint32_t i = 0; i < per_thread; ++i) {
        const std::uint64_t n = t * per_thread + i;
        const bool never = kind_of(n) == answer_kind::never;
        // A request nobody answers would wait out a generous timeout: give it a short one.
        const auto timeout = never && timeout_of(n) == generous ? race : timeout_of(n);
        const auto got = bus.request<Answer>(Ask{n}, timeout);
        if (!got) {
          if (timeout == generous) missing.fetch_add(1);
          continue;
        }
        if (got->n != n) wrong.fetch_add(1);
        if (never) never_answered_got_one.fetch_add(1);
      }
    });
  for (auto& t : requesters) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(missing.load(), 0);
  EXPECT_EQ(never_answered_got_one.load(), 0);
  EXPECT_EQ(bus.waiting(), 0u);
  bus.stop();
  tt::expect_books_balance(bus.metrics());
}
