// Ordering guarantees with several workers: serial subscriptions (subscribe_options::serial: a
// handler never runs on two threads at once) and keyed events (publish_options::key: one key's
// events run one at a time, in publish order, while other keys run in parallel).
//
// The manual-mode tests fix the exact order a drain runs keyed events in (lanes, strands, the
// batch budget, retries, deadlines, stop). The threaded ones run several publishers and workers
// and check what must hold whatever the interleaving: no handler call overlaps another where it
// must not (an in-handler counter that never exceeds 1), every (key, publisher) sequence is seen
// gap-free and in order, and the books balance exactly. The per-key state the handlers keep is
// plain memory: under TSan, a missing happens-before between two events of one key is a report.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bus/books.hpp"
#include "common.hpp"

#include <tachyon/detail/ordering/strand.hpp>

namespace {

using namespace std::chrono_literals;
using tachyon::priority;
using tachyon::result;

/// A keyed event: its publisher, its key, and its number among that publisher's events of
/// that key (16 bytes: travels inline).
struct Tick {
  std::uint32_t publisher, key;
  std::uint64_t seq;
};
/// The same in the high lane, so that one key's events cross lanes and types.
struct Fill {
  std::uint32_t publisher, key;
  std::uint64_t seq;
};
struct Alarm {
  std::uint32_t id;
};
using Events = tachyon::registry<tachyon::event<Alarm, priority::critical>,
                                 tachyon::event<Fill, priority::high>, Tick, tt::Note>;
using obus = tachyon::bus<Events>;
using vbus = tachyon::bus<Events, tachyon::virtual_time_traits>;

tachyon::publish_options keyed(std::uint64_t key) { return {.key = key}; }

/// How many threads are inside a section at once, and the most ever seen.
struct overlap {
  std::atomic<int> inside{0}, most{0};
  void enter() {
    const int now = inside.fetch_add(1) + 1;
    int m = most.load();
    while (now > m && !most.compare_exchange_weak(m, now)) {
    }
  }
  void leave() { inside.fetch_sub(1); }
  struct scope {
    overlap& o;
    explicit scope(overlap& x) : o(x) { o.enter(); }
    ~scope() { o.leave(); }
    scope(const scope&) = delete;
    scope& operator=(const scope&) = delete;
  };
};

tachyon::config threaded(std::uint32_t workers, std::uint32_t batch = 16,
                         std::uint32_t capacity = 1 << 12) {
  return {.workers = workers,
          .lane_capacity = capacity,
          .batch = batch,
          .overflow = tachyon::overflow::block,
          .producers = 4};
}

const tachyon::subscription_metrics& sub_named(const tachyon::metrics_snapshot& m,
                                               const std::string& name) {
  for (const auto& s : m.subscriptions)
    if (s.name == name) return s;
  static const tachyon::subscription_metrics none{};
  ADD_FAILURE() << "no subscription " << name;
  return none;
}

// ---- serial subscriptions ----------------------------------------------------------------------

TEST(Serial, APlainHandlerDoesRunOnTwoWorkersAtOnce) {
  // The control for the tests below: without `serial`, two workers run one handler at once.
  obus bus{threaded(2, 1)};
  std::atomic<int> arrived{0}, met{0};
  auto s = bus.subscribe<Tick>([&](const Tick&) {
    arrived.fetch_add(1);
    met.fetch_add(tt::eventually([&] { return arrived.load() >= 2; }) ? 1 : 0);
  });
  ASSERT_EQ(bus.publish(Tick{0, 0, 0}), result::ok);
  ASSERT_EQ(bus.publish(Tick{0, 0, 1}), result::ok);
  EXPECT_TRUE(tt::eventually([&] { return met.load() == 2; }));
  bus.stop();
}

TEST(Serial, ASecondCallWaitsForTheFirstAndIsCounted) {
  obus bus{threaded(2, 1)};
  overlap o;
  std::atomic<int> calls{0};
  std::atomic<bool> release{false};
  auto s = bus.subscribe<Tick>(
      [&](const Tick&) {
        const overlap::scope in(o);
        if (calls.fetch_add(1) == 0) (void)tt::eventually([&] { return release.load(); });
      },
      {.name = "serial", .serial = true});
  ASSERT_EQ(bus.publish(Tick{0, 0, 0}), result::ok);
  ASSERT_EQ(bus.publish(Tick{0, 0, 1}), result::ok);
  // The other worker took the second event and found the handler running.
  EXPECT_TRUE(tt::eventually([&] { return sub_named(bus.metrics(), "serial").serial_waits == 1; }));
  EXPECT_EQ(calls.load(), 1);
  release.store(true);
  EXPECT_TRUE(tt::eventually([&] { return calls.load() == 2; }));
  bus.stop();
  const auto m = bus.metrics();
  EXPECT_EQ(o.most.load(), 1);
  EXPECT_TRUE(sub_named(m, "serial").serial);
  EXPECT_EQ(sub_named(m, "serial").serial_waits, 1u);
  EXPECT_NE(m.to_json().find("\"serial\":true,\"serial_waits\":1"), std::string::npos);
  EXPECT_NE(
      m.to_prometheus().find("tachyon_subscription_serial_waits_total{subscription=\"serial\""),
      std::string::npos);
  tt::expect_books_balance(m);
}

TEST(Serial, HandlersNeverOverlapThemselvesUnderLoad) {
  // Four workers on whatever cores there are, three publishers and this thread's dispatch()
  // calls: a serial handler, a serial handler behind a breaker that throws now and then, and a
  // plain one beside them.
  obus bus{threaded(4, 8)};
  overlap tick_o, fill_o;
  std::uint64_t tick_calls = 0, fill_calls = 0;  // plain: only their serial handler writes them
  std::atomic<std::uint64_t> plain_calls{0};
  auto st = bus.subscribe<Tick>(
      [&](const Tick&) {
        const overlap::scope in(tick_o);
        if (++tick_calls % 16 == 0) std::this_thread::yield();  // widen the window
      },
      {.serial = true});
  auto sp = bus.subscribe<Tick>([&](const Tick&) { plain_calls.fetch_add(1); });
  tachyon::subscribe_options<Fill> guarded{.serial = true};
  guarded.breaker.failure_threshold = 1000;  // never opens: failures are not consecutive
  auto sf = bus.subscribe<Fill>(
      [&](const Fill& f) {
        const overlap::scope in(fill_o);
        ++fill_calls;
        if (f.seq % 5 == 0) throw std::runtime_error("every fifth");
      },
      std::move(guarded));
  const std::uint64_t per = tt::sanitized() ? 1'000 : 20'000;
  std::vector<std::thread> pubs;
  for (std::uint32_t p = 0; p < 3; ++p)
    pubs.emplace_back([&, p] {
      for (std::uint64_t i = 0; i < per; ++i) {
        ASSERT_EQ(bus.publish(Tick{p, 0, i}), result::ok);
        ASSERT_EQ(bus.publish(Fill{p, 0, i}), result::ok);
      }
    });
  const std::uint64_t direct = per / 10;
  for (std::uint64_t i = 0; i < direct; ++i) bus.dispatch(Tick{9, 0, i});
  for (auto& t : pubs) t.join();
  bus.stop();
  EXPECT_EQ(tick_o.most.load(), 1);
  EXPECT_EQ(fill_o.most.load(), 1);
  EXPECT_EQ(tick_calls, 3 * per + direct);
  EXPECT_EQ(plain_calls.load(), 3 * per + direct);
  EXPECT_EQ(fill_calls, 3 * per);
  const auto m = bus.metrics();
  const std::uint64_t fifths = 3 * ((per + 4) / 5);
  EXPECT_EQ(m.total.failed, fifths);
  EXPECT_EQ(m.total.handler_errors, fifths);
  EXPECT_EQ(m.total.dispatched, 6 * per + direct - fifths);
  tt::expect_books_balance(m);
}

TEST(Serial, RetriesTakeTurnsWithFirstRuns) {
  obus bus{threaded(3, 4)};
  overlap o;
  std::uint64_t calls = 0;
  auto s = bus.subscribe<Fill>(
      [&](const Fill& f, const tachyon::meta& m) {
        const overlap::scope in(o);
        ++calls;
        if (m.attempt == 0 && f.seq % 2 == 0) throw std::runtime_error("first run of an even one");
      },
      {.retry = tt::retries(3, 0ns), .serial = true});  // due at once: retries race first runs
  const std::uint64_t per = tt::sanitized() ? 500 : 10'000;
  std::vector<std::thread> pubs;
  for (std::uint32_t p = 0; p < 2; ++p)
    pubs.emplace_back([&, p] {
      for (std::uint64_t i = 0; i < per; ++i) ASSERT_EQ(bus.publish(Fill{p, 0, i}), result::ok);
    });
  for (auto& t : pubs) t.join();
  bus.stop();
  EXPECT_EQ(o.most.load(), 1);
  EXPECT_EQ(calls, 2 * per + per);  // every even event ran twice
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.retried, per);
  EXPECT_EQ(m.total.dispatched, 2 * per);
  tt::expect_books_balance(m);
}

TEST(Serial, DispatchOfItsOwnTypeFromInsideRunsNestedWithoutWaitingForItself) {
  obus bus{threaded(2, 4)};
  thread_local int depth = 0;
  std::atomic<int> threads_inside{0}, most_threads{0}, deepest{0};
  std::atomic<std::uint64_t> calls{0};
  auto s = bus.subscribe<Tick>(
      [&](const Tick& t) {
        if (depth++ == 0) {
          const int now = threads_inside.fetch_add(1) + 1;
          int m = most_threads.load();
          while (now > m && !most_threads.compare_exchange_weak(m, now)) {
          }
        }
        int d = deepest.load();
        while (depth > d && !deepest.compare_exchange_weak(d, depth)) {
        }
        calls.fetch_add(1);
        if (t.seq < 3) bus.dispatch(Tick{t.publisher, t.key, t.seq + 1});  // re-enters
        if (--depth == 0) threads_inside.fetch_sub(1);
      },
      {.name = "nested", .serial = true});
  constexpr std::uint64_t n = 200;
  std::thread other([&] {
    for (std::uint64_t i = 0; i < n; ++i) bus.dispatch(Tick{1, 0, 0});  // this thread, too
  });
  for (std::uint64_t i = 0; i < n; ++i) ASSERT_EQ(bus.publish(Tick{0, 0, 0}), result::ok);
  other.join();
  bus.stop();
  EXPECT_EQ(calls.load(), 4 * 2 * n);  // seq 0, 1, 2, 3 for each
  EXPECT_EQ(deepest.load(), 4);
  EXPECT_EQ(most_threads.load(), 1);
  tt::expect_books_balance(bus.metrics());
}

TEST(Serial, ACallWaitingWhileItsSubscriptionIsRemovedDoesNotRun) {
  obus bus{threaded(2, 1)};
  std::atomic<int> calls{0};
  std::atomic<bool> release{false};
  auto s = bus.subscribe<Tick>(
      [&](const Tick&) {
        if (calls.fetch_add(1) == 0) (void)tt::eventually([&] { return release.load(); });
      },
      {.name = "removed", .serial = true});
  ASSERT_EQ(bus.publish(Tick{0, 0, 0}), result::ok);
  ASSERT_EQ(bus.publish(Tick{0, 0, 1}), result::ok);
  ASSERT_TRUE(
      tt::eventually([&] { return sub_named(bus.metrics(), "removed").serial_waits == 1; }));
  std::atomic<bool> removed{false};
  std::thread remover([&] {
    s.unsubscribe();  // waits for the running call, and for the waiting one to give up
    removed.store(true);
  });
  // Removed from the tables (and `live` cleared) before the remover waits for the callers.
  ASSERT_TRUE(tt::eventually([&] { return bus.metrics().subscriptions.empty(); }));
  EXPECT_FALSE(removed.load());  // the first call still runs
  release.store(true);
  remover.join();
  EXPECT_EQ(calls.load(), 1);  // the waiting call did not start after the removal
  bus.stop();
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.dispatched, 2u);
  tt::expect_books_balance(m);
}

// ---- keyed events, manual mode ---------------------------------------------------------------

tachyon::config manual(std::uint32_t capacity = 64, std::uint32_t batch = 64) {
  return {.workers = 0,
          .lane_capacity = capacity,
          .batch = batch,
          .overflow = tachyon::overflow::fail,
          .producers = 2};
}

/// Records, in order, what the handlers of a manual bus ran: "T<seq>", "F<seq>", "A<id>".
struct journal {
  std::vector<std::string> ran;
  std::vector<tachyon::subscription> subs;
  template <class Bus>
  explicit journal(Bus& bus) {
    subs.push_back(bus.template subscribe<Tick>(
        [this](const Tick& t) { ran.push_back("T" + std::to_string(t.seq)); }));
    subs.push_back(bus.template subscribe<Fill>(
        [this](const Fill& f) { ran.push_back("F" + std::to_string(f.seq)); }));
    subs.push_back(bus.template subscribe<Alarm>(
        [this](const Alarm& a) { ran.push_back("A" + std::to_string(a.id)); }));
  }
};
using strings = std::vector<std::string>;

TEST(Keys, OneKeysEventsRunInPublishOrderEachFromItsOwnLane) {
  ASSERT_NE(tachyon::detail::strand_index(1, 256), tachyon::detail::strand_index(2, 256));
  obus bus{manual()};
  journal j(bus);
  ASSERT_EQ(bus.publish(Tick{0, 1, 1}, keyed(1)), result::ok);  // normal lane
  ASSERT_EQ(bus.publish(Fill{0, 1, 2}, keyed(1)), result::ok);  // high lane, after T1
  ASSERT_EQ(bus.publish(Alarm{3}), result::ok);                 // critical, unkeyed
  ASSERT_EQ(bus.publish(Tick{0, 2, 4}, keyed(2)), result::ok);  // another key
  ASSERT_EQ(bus.publish(Fill{0, 0, 5}), result::ok);            // high, unkeyed
  bus.poll();
  // The most urgent lanes first; F2 waits for T1, its key's earlier event, and then runs from
  // the high lane; key 2 does not wait for key 1.
  EXPECT_EQ(j.ran, (strings{"A3", "F5", "T1", "T4", "F2"}));
  const auto m = bus.metrics();
  EXPECT_EQ(m.lanes[1].counts.accepted, 2u);
  EXPECT_EQ(m.lanes[1].counts.dispatched, 2u);
  EXPECT_EQ(m.lanes[2].counts.dispatched, 2u);
  EXPECT_EQ(m.total.dispatched, 5u);
  tt::expect_books_balance(m);
}

TEST(Keys, KeysThatShareAStrandRunOneAtATimeInTheirCommonOrder) {
  auto cfg = manual();
  cfg.key_strands = 1;  // every key collides
  obus bus{cfg};
  journal j(bus);
  ASSERT_EQ(bus.publish(Tick{0, 1, 1}, keyed(1)), result::ok);
  ASSERT_EQ(bus.publish(Fill{0, 2, 2}, keyed(2)), result::ok);  // waits behind key 1's T1
  ASSERT_EQ(bus.publish(Tick{0, 1, 3}, keyed(1)), result::ok);
  ASSERT_EQ(bus.publish(Fill{0, 0, 4}), result::ok);
  bus.poll();
  EXPECT_EQ(j.ran, (strings{"F4", "T1", "F2", "T3"}));
  tt::expect_books_balance(bus.metrics());
}

TEST(Keys, KeyedEventsAreAdmittedUnderTheirLanesBound) {
  obus bus{manual(4)};
  journal j(bus);
  for (std::uint64_t i = 0; i < 4; ++i)
    ASSERT_EQ(bus.publish(Tick{0, 1, i}, keyed(1 + i % 2)), result::ok);
  Tick more{0, 1, 9};
  EXPECT_EQ(bus.publish(std::move(more), keyed(1)), result::full);  // the rvalue is left alone
  EXPECT_EQ(bus.publish(Tick{0, 1, 9}), result::full);              // nor room for others
  auto m = bus.metrics();
  EXPECT_EQ(m.lanes[2].depth, 4u);  // the keyed events count as queued in their lane
  EXPECT_EQ(m.total.rejected_full, 2u);
  bus.poll();
  EXPECT_EQ(j.ran.size(), 4u);
  for (std::uint64_t i = 0; i < 4; ++i)
    ASSERT_EQ(bus.publish(Tick{0, 1, 10 + i}, keyed(1)), result::ok);  // the room came back
  bus.poll();
  EXPECT_EQ(j.ran.size(), 8u);
  tt::expect_books_balance(bus.metrics());

  auto cfg = manual(2);
  cfg.overflow = tachyon::overflow::drop;
  obus dropping{cfg};
  journal d(dropping);
  EXPECT_EQ(dropping.publish(Tick{0, 1, 1}, keyed(5)), result::ok);
  EXPECT_EQ(dropping.publish(Tick{0, 1, 2}, keyed(5)), result::ok);
  EXPECT_EQ(dropping.publish(Tick{0, 1, 3}, keyed(5)), result::dropped);
  dropping.poll();
  EXPECT_EQ(d.ran, (strings{"T1", "T2"}));
  const auto dm = dropping.metrics();
  EXPECT_EQ(dm.total.dropped, 1u);
  tt::expect_books_balance(dm);
}

TEST(Keys, AStrandsTurnTakesWhatIsLeftOfTheBatch) {
  obus bus{manual(64, 4)};
  journal j(bus);
  ASSERT_EQ(bus.publish(Tick{0, 0, 100}), result::ok);
  ASSERT_EQ(bus.publish(Tick{0, 0, 101}), result::ok);
  for (std::uint64_t i = 0; i < 10; ++i)
    ASSERT_EQ(bus.publish(Tick{0, 7, i}, keyed(7)), result::ok);
  // One batch: the two plain events and the token; the turn gets the 2 events left of 4.
  EXPECT_EQ(bus.run_once(), 3u);  // entries of the lane: a strand's turn counts as one
  EXPECT_EQ(j.ran, (strings{"T100", "T101", "T0", "T1"}));
  EXPECT_EQ(bus.run_once(), 1u);  // the token alone: a whole batch of the key's events
  EXPECT_EQ(j.ran.size(), 8u);
  bus.poll();
  EXPECT_EQ(j.ran.size(), 12u);
  for (std::size_t i = 2; i < 12; ++i) EXPECT_EQ(j.ran[i], "T" + std::to_string(i - 2));
  tt::expect_books_balance(bus.metrics());
}

TEST(Keys, TokensInOneBatchShareIt) {
  ASSERT_NE(tachyon::detail::strand_index(1, 256), tachyon::detail::strand_index(2, 256));
  obus bus{manual(64, 8)};
  journal j(bus);
  for (std::uint64_t i = 0; i < 10; ++i) {
    ASSERT_EQ(bus.publish(Tick{0, 1, i}, keyed(1)), result::ok);
    ASSERT_EQ(bus.publish(Fill{0, 2, 100 + i}, {.lane = priority::normal, .key = 2}), result::ok);
  }
  // Two tokens in a batch of 8: four events each, not eight for the first and one for the next.
  EXPECT_EQ(bus.run_once(), 2u);
  EXPECT_EQ(j.ran, (strings{"T0", "T1", "T2", "T3", "F100", "F101", "F102", "F103"}));
  EXPECT_EQ(bus.run_once(), 2u);
  EXPECT_EQ(j.ran.size(), 16u);
  EXPECT_EQ(bus.run_once(), 2u);  // two left of key 1; key 2's turn takes the rest of the batch
  EXPECT_EQ(j.ran.size(), 20u);
  EXPECT_EQ(j.ran[16], "T8");
  EXPECT_EQ(j.ran[19], "F109");
  tt::expect_books_balance(bus.metrics());
}

TEST(Keys, ABatchFullOfTokensGivesEachAnEighthOfABatch) {
  obus bus{manual(256, 16)};
  std::vector<std::uint64_t> per_key(16);
  auto s = bus.subscribe<Tick>([&](const Tick& t) { ++per_key[t.key]; });
  for (std::uint64_t i = 0; i < 4; ++i)
    for (std::uint32_t k = 0; k < 16; ++k)
      ASSERT_EQ(bus.publish(Tick{0, k, i}, keyed(100 + k)), result::ok);
  const auto strands = [] {
    std::vector<std::size_t> v;
    for (std::uint32_t k = 0; k < 16; ++k) v.push_back(tachyon::detail::strand_index(100 + k, 256));
    std::sort(v.begin(), v.end());
    return static_cast<std::size_t>(std::unique(v.begin(), v.end()) - v.begin());
  }();
  ASSERT_EQ(strands, 16u);  // no two of these keys share a strand
  // 16 tokens in a batch of 16: an even share would be 1; the floor is 16 / 8 = 2.
  EXPECT_EQ(bus.run_once(), 16u);
  for (std::uint32_t k = 0; k < 16; ++k) EXPECT_EQ(per_key[k], 2u) << k;
  bus.poll();
  for (std::uint32_t k = 0; k < 16; ++k) EXPECT_EQ(per_key[k], 4u) << k;
  tt::expect_books_balance(bus.metrics());
}

TEST(Keys, ARetriedKeyedEventLeavesItsKeysOrder) {
  // A retry waits out its backoff in the timer: holding the key's later events behind it (and
  // those of every key sharing its strand) for up to max_delay would stall them all, so the
  // key moves on and the retry runs when due.
  vbus bus{tt::manual_dl()};
  std::vector<std::string> ran;
  auto s = bus.subscribe<Tick>(
      [&](const Tick& t, const tachyon::meta& m) {
        ran.push_back("T" + std::to_string(t.seq) + "@" + std::to_string(m.attempt));
        if (t.seq == 1 && m.attempt == 0) throw std::runtime_error("once");
      },
      {.retry = tt::retries(2, 1ms)});
  for (std::uint64_t i = 1; i <= 3; ++i)
    ASSERT_EQ(bus.publish(Tick{0, 7, i}, keyed(7)), result::ok);
  bus.poll();
  EXPECT_EQ(ran, (strings{"T1@0", "T2@0", "T3@0"}));
  EXPECT_EQ(bus.metrics().in_flight, 1u);  // T1's retry, in the timer
  bus.time_source().advance(1ms);
  bus.poll();
  EXPECT_EQ(ran, (strings{"T1@0", "T2@0", "T3@0", "T1@1"}));
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.retried, 1u);
  EXPECT_EQ(m.total.dispatched, 3u);
  tt::expect_books_balance(m);
}

TEST(Keys, AKeyedEventPastItsDeadlineExpiresInItsPlace) {
  vbus bus{tt::manual_dl()};
  journal j(bus);
  tachyon::publish_options late = keyed(7);
  late.deadline = bus.now() + 1ms;
  ASSERT_EQ(bus.publish(Tick{0, 7, 1}, late), result::ok);
  ASSERT_EQ(bus.publish(Tick{0, 7, 2}, keyed(7)), result::ok);
  tachyon::publish_options in_time = keyed(7);
  in_time.deadline = bus.now() + 1h;
  ASSERT_EQ(bus.publish(Tick{0, 7, 3}, in_time), result::ok);
  bus.time_source().advance(2ms);
  bus.poll();
  EXPECT_EQ(j.ran, (strings{"T2", "T3"}));
  auto m = bus.metrics();
  EXPECT_EQ(m.total.expired, 1u);
  EXPECT_EQ(m.total.dispatched, 2u);
  tt::expect_books_balance(m);

  // Discarded before they run: each is one event discarded.
  ASSERT_EQ(bus.publish(Tick{0, 7, 4}, in_time), result::ok);
  ASSERT_EQ(bus.publish(Tick{0, 7, 5}, keyed(7)), result::ok);
  EXPECT_EQ(bus.stop(tachyon::stop_mode::discard), 2u);
  m = bus.metrics();
  EXPECT_EQ(m.total.discarded, 2u);
  tt::expect_books_balance(m);
}

TEST(Keys, NotBeforeWithAKeyIsRefused) {
  vbus bus{manual()};
  tachyon::publish_options opts = keyed(7);
  opts.not_before = bus.now() + 1ms;
  try {
    (void)bus.publish(Tick{0, 7, 1}, opts);
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("publish_options::key and not_before cannot be combined"),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("allowed: a key with or without a deadline"), std::string::npos) << what;
  }
  EXPECT_EQ(bus.metrics().total.accepted, 0u);
}

TEST(Keys, KeyStrandsOutOfRangeIsRefused) {
  for (std::uint32_t bad : {0u, 65537u}) {
    auto cfg = manual();
    cfg.key_strands = bad;
    try {
      obus bus{cfg};
      ADD_FAILURE() << "accepted key_strands = " << bad;
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()), "tachyon::config.key_strands = " + std::to_string(bad) +
                                           " is invalid: allowed 1 .. 65536");
    }
  }
  auto cfg = manual();
  cfg.key_strands = 65536;
  obus ok{cfg};
  EXPECT_EQ(ok.publish(Tick{0, 0, 0}, keyed(~0ull)), result::ok);
  EXPECT_EQ(ok.poll(), 1u);
}

TEST(Keys, StopDrainRunsEveryKeyedEventInOrder) {
  obus bus{manual(64, 2)};
  journal j(bus);
  for (std::uint64_t i = 0; i < 6; ++i) {
    ASSERT_EQ(bus.publish(Tick{0, 1, i}, keyed(1)), result::ok);
    ASSERT_EQ(bus.publish(Fill{0, 2, i}, keyed(2)), result::ok);
  }
  EXPECT_EQ(bus.stop(), 0u);
  ASSERT_EQ(j.ran.size(), 12u);
  std::uint64_t t = 0, f = 0;
  for (const auto& r : j.ran) {
    if (r[0] == 'T') {
      EXPECT_EQ(r, "T" + std::to_string(t++));
    } else {
      EXPECT_EQ(r, "F" + std::to_string(f++));
    }
  }
  EXPECT_EQ(bus.publish(Tick{0, 1, 9}, keyed(1)), result::stopped);
  tt::expect_books_balance(bus.metrics());
}

TEST(Keys, StopDiscardCountsEveryKeyedEventOnceAndReleasesBoxedOnes) {
  const int notes_before = tt::Note::live.load();
  {
    obus bus{manual(64, 4)};
    journal j(bus);
    std::atomic<int> notes{0};
    auto sn = bus.subscribe<tt::Note>([&](const tt::Note&) { notes.fetch_add(1); });
    for (std::uint64_t i = 0; i < 5; ++i) {
      ASSERT_EQ(bus.publish(Tick{0, 1, i}, keyed(1)), result::ok);
      ASSERT_EQ(bus.publish(Fill{0, 2, i}, keyed(2)), result::ok);
      ASSERT_EQ(bus.publish(tt::Note("n" + std::to_string(i)), keyed(3)), result::ok);
      ASSERT_EQ(bus.publish(Tick{0, 0, 100 + i}), result::ok);
    }
    bus.run_once();  // the high lane: key 2's token, a turn of 4 Fills (the batch)
    bus.run_once();  // the high lane again: key 2's last Fill
    const std::size_t ran = j.ran.size() + static_cast<std::size_t>(notes.load());
    ASSERT_GT(ran, 0u);
    ASSERT_LT(ran, 20u);
    const std::uint64_t discarded = bus.stop(tachyon::stop_mode::discard);
    EXPECT_EQ(ran + discarded, 20u);
    const auto m = bus.metrics();
    EXPECT_EQ(m.total.discarded, discarded);
    EXPECT_EQ(m.total.dispatched, ran);
    tt::expect_books_balance(m);
  }
  EXPECT_EQ(tt::Note::live.load(), notes_before);  // every boxed payload released
}

// ---- keyed events with several workers ---------------------------------------------------------

/// What the handlers of one key have seen: per publisher, the next sequence number expected.
/// Plain memory, touched only by that key's handlers: the strand must order them.
struct key_books {
  std::array<std::uint64_t, 4> next{};
  std::uint64_t runs = 0;
  overlap o;
};

struct keyed_run {
  static constexpr std::uint32_t keys = 8;
  std::array<key_books, keys> books{};
  std::atomic<std::uint64_t> out_of_order{0}, unkeyed{0};
  std::vector<tachyon::subscription> subs;

  void check(std::uint32_t publisher, std::uint32_t key, std::uint64_t seq) {
    if (key >= keys) {  // an unkeyed event
      unkeyed.fetch_add(1);
      return;
    }
    key_books& b = books[key];
    const overlap::scope in(b.o);
    if (seq != b.next[publisher]) out_of_order.fetch_add(1);
    b.next[publisher] = seq + 1;
    ++b.runs;
  }
  explicit keyed_run(obus& bus) {
    subs.push_back(
        bus.subscribe<Tick>([this](const Tick& t) { check(t.publisher, t.key, t.seq); }));
    subs.push_back(
        bus.subscribe<Fill>([this](const Fill& f) { check(f.publisher, f.key, f.seq); }));
  }
  /// Publishes `per_key` events of every key from publisher p (key k's i-th event is a Fill,
  /// high, when i % 3 == 0; every seventh goes critical by the per-call priority), an unkeyed
  /// Tick every fourth step, until done or the bus says stopped. Returns events accepted.
  static std::uint64_t publish_all(obus& bus, std::uint32_t p, std::uint64_t per_key,
                                   std::atomic<std::uint64_t>& accepted_unkeyed) {
    std::uint64_t accepted = 0;
    std::array<std::uint64_t, keys> seq{};
    for (std::uint64_t step = 0; step < per_key * keys; ++step) {
      const auto k = static_cast<std::uint32_t>((step * 5 + p) % keys);
      const std::uint64_t i = seq[k];
      tachyon::publish_options opts = keyed(1000 + k);
      if (i % 7 == 6) opts.lane = priority::critical;
      const result r =
          i % 3 == 0 ? bus.publish(Fill{p, k, i}, opts) : bus.publish(Tick{p, k, i}, opts);
      if (r == result::stopped) return accepted;
      if (r != result::ok) {
        ADD_FAILURE() << "publish: " << tachyon::to_string(r);
        return accepted;
      }
      ++seq[k];
      ++accepted;
      if (step % 4 == 0) {
        const result u = bus.publish(Tick{p, keys, step});
        if (u == result::stopped) return accepted;
        accepted_unkeyed.fetch_add(1);
      }
    }
    return accepted;
  }
};

TEST(Keys, PerKeyOrderHoldsWithSeveralPublishersAndWorkers) {
  auto cfg = threaded(3, 16, 256);  // a small lane: publishers block now and then
  cfg.key_strands = 4;              // eight keys on four strands: collisions too
  obus bus{cfg};
  keyed_run run(bus);
  const std::uint64_t per_key = tt::sanitized() ? 200 : 3'000;
  std::atomic<std::uint64_t> accepted{0}, unkeyed{0};
  std::vector<std::thread> pubs;
  for (std::uint32_t p = 0; p < 3; ++p)
    pubs.emplace_back(
        [&, p] { accepted.fetch_add(keyed_run::publish_all(bus, p, per_key, unkeyed)); });
  for (auto& t : pubs) t.join();
  bus.stop();
  EXPECT_EQ(accepted.load(), 3 * per_key * keyed_run::keys);
  EXPECT_EQ(run.out_of_order.load(), 0u);
  for (std::uint32_t k = 0; k < keyed_run::keys; ++k) {
    EXPECT_EQ(run.books[k].o.most.load(), 1) << "key " << k;
    EXPECT_EQ(run.books[k].runs, 3 * per_key) << "key " << k;
    for (std::uint32_t p = 0; p < 3; ++p) EXPECT_EQ(run.books[k].next[p], per_key);
  }
  EXPECT_EQ(run.unkeyed.load(), unkeyed.load());
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.dispatched, accepted.load() + unkeyed.load());
  tt::expect_books_balance(m);
}

TEST(Keys, AHandlerPublishingToItsOwnKeyKeepsItsChainInOrder) {
  obus bus{threaded(2, 8)};
  constexpr std::uint32_t chains = 4;
  const std::uint64_t length = tt::sanitized() ? 500 : 5'000;
  std::array<std::uint64_t, chains> next{};  // plain: ordered by the key
  std::atomic<std::uint64_t> bad{0}, done{0};
  auto s = bus.subscribe<Tick>([&](const Tick& t) {
    if (t.seq != next[t.key]) bad.fetch_add(1);
    next[t.key] = t.seq + 1;
    if (t.seq + 1 < length) {
      // Two at once: the second lands behind the first in the key's strand, which this
      // thread holds; neither may run before this call returns, nor out of order.
      if (t.seq % 2 == 0) {
        if (bus.publish(Tick{0, t.key, t.seq + 1}, keyed(t.key + 1)) != result::ok)
          bad.fetch_add(1);
        if (t.seq + 2 < length &&
            bus.publish(Tick{0, t.key, t.seq + 2}, keyed(t.key + 1)) != result::ok)
          bad.fetch_add(1);
      }
    } else {
      done.fetch_add(1);
    }
  });
  for (std::uint32_t c = 0; c < chains; ++c)
    ASSERT_EQ(bus.publish(Tick{0, c, 0}, keyed(c + 1)), result::ok);
  EXPECT_TRUE(tt::eventually([&] { return done.load() == chains; }));
  bus.stop();
  EXPECT_EQ(bad.load(), 0u);
  for (std::uint32_t c = 0; c < chains; ++c) EXPECT_EQ(next[c], length);
  tt::expect_books_balance(bus.metrics());
}

/// Per (key, publisher) the handlers saw 0, 1, 2, ... with no gap (what ran is a prefix).
void expect_prefixes(const keyed_run& run) {
  EXPECT_EQ(run.out_of_order.load(), 0u);
  for (std::uint32_t k = 0; k < keyed_run::keys; ++k) EXPECT_EQ(run.books[k].o.most.load(), 1);
}

TEST(Keys, StopDrainWhilePublishersRunRunsEveryAcceptedEvent) {
  obus bus{threaded(2, 16, 512)};
  keyed_run run(bus);
  std::atomic<std::uint64_t> accepted{0}, unkeyed{0};
  std::vector<std::thread> pubs;
  for (std::uint32_t p = 0; p < 3; ++p)
    pubs.emplace_back(
        [&, p] { accepted.fetch_add(keyed_run::publish_all(bus, p, 1'000'000, unkeyed)); });
  ASSERT_TRUE(tt::eventually([&] { return bus.metrics().total.dispatched > 2'000; }));
  EXPECT_EQ(bus.stop(), 0u);
  for (auto& t : pubs) t.join();
  expect_prefixes(run);
  std::uint64_t ran = 0;
  for (const auto& b : run.books) ran += b.runs;
  EXPECT_EQ(ran, accepted.load());
  EXPECT_EQ(run.unkeyed.load(), unkeyed.load());
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, accepted.load() + unkeyed.load());
  EXPECT_EQ(m.total.dispatched, m.total.accepted);
  tt::expect_books_balance(m);
}

TEST(Keys, StopDiscardWhilePublishersRunCountsEveryEventItDiscards) {
  obus bus{threaded(2, 16, 512)};
  keyed_run run(bus);
  std::atomic<std::uint64_t> accepted{0}, unkeyed{0};
  std::vector<std::thread> pubs;
  for (std::uint32_t p = 0; p < 3; ++p)
    pubs.emplace_back(
        [&, p] { accepted.fetch_add(keyed_run::publish_all(bus, p, 1'000'000, unkeyed)); });
  ASSERT_TRUE(tt::eventually([&] { return bus.metrics().total.dispatched > 2'000; }));
  const std::uint64_t discarded = bus.stop(tachyon::stop_mode::discard);
  for (auto& t : pubs) t.join();
  expect_prefixes(run);
  std::uint64_t ran = 0;
  for (const auto& b : run.books) ran += b.runs;
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, accepted.load() + unkeyed.load());
  EXPECT_EQ(m.total.discarded, discarded);
  EXPECT_EQ(ran + run.unkeyed.load() + discarded, m.total.accepted);
  EXPECT_EQ(m.total.dispatched, ran + run.unkeyed.load());
  tt::expect_books_balance(m);
}

}  // namespace
