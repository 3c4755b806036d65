// Ordering guarantees with several workers: serial subscriptions (subscribe_options::serial: a
// handler never runs on two threads at once). The threaded tests check what must hold whatever
// the interleaving: no handler call overlaps another (an in-handler counter that never exceeds
// 1; the handlers' counts are plain memory, so under TSan a missing happens-before between two
// calls is a report), and the books balance exactly.
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

}  // namespace
