// publish_options::on_settle (settle.hpp) and publish_options::external: a listener is told,
// exactly once and after the counts, the outcome an accepted event ended in, whichever path
// settles it; a refused publish never tells it. External events carry meta_flags::external on
// every run. Manual mode on a virtual clock, and a threaded stress test under TSan.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bus/books.hpp"
#include "common.hpp"

namespace {

using namespace std::chrono_literals;
using tachyon::outcome;
using tachyon::result;
using vbus = tachyon::bus<tt::Events, tachyon::virtual_time_traits>;
using tt::manual_dl;
using tt::retries;

constexpr std::uint16_t quote_t = tt::Events::index_of<tt::Quote>();
constexpr std::uint16_t note_t = tt::Events::index_of<tt::Note>();

/// One listener: counts its calls and keeps what the last one said; `during` runs inside the
/// call (to look at the bus's metrics from there).
struct probe : tachyon::settle_listener {
  std::atomic<int> calls{0};
  outcome told{};
  tachyon::meta m{};
  std::thread::id on{};
  std::function<void()> during;

  probe() { settled = &on_settled; }
  static void on_settled(tachyon::settle_listener& self, const tachyon::meta& m,
                         outcome o) noexcept {
    auto& p = static_cast<probe&>(self);
    p.m = m;
    p.told = o;
    p.on = std::this_thread::get_id();
    if (p.during) p.during();
    p.calls.fetch_add(1, std::memory_order_release);
  }
};

/// The header the handlers saw, first run.
struct seen_meta {
  std::vector<tachyon::meta> runs;
};

TEST(Settle, ToStringNamesEachOutcome) {
  EXPECT_EQ(tachyon::to_string(outcome::dispatched), "dispatched");
  EXPECT_EQ(tachyon::to_string(outcome::failed), "failed");
  EXPECT_EQ(tachyon::to_string(outcome::dead_lettered), "dead_lettered");
  EXPECT_EQ(tachyon::to_string(outcome::expired), "expired");
  EXPECT_EQ(tachyon::to_string(outcome::discarded), "discarded");
  EXPECT_EQ(tachyon::to_string(outcome::displaced), "displaced");
}

TEST(Settle, DispatchedIsToldOnceAfterTheHandlersWithTheEventsMeta) {
  vbus bus{tt::manual()};
  std::vector<tachyon::meta> runs;
  auto s = bus.subscribe<tt::Quote>(
      [&](const tt::Quote&, const tachyon::meta& m) { runs.push_back(m); });
  probe p;
  std::uint64_t dispatched_in_call = 0, type_dispatched_in_call = 0;
  p.during = [&] {
    const auto m = bus.metrics();
    dispatched_in_call = m.total.dispatched;
    type_dispatched_in_call = m.types[quote_t].counts.dispatched;
  };
  ASSERT_EQ(bus.publish(tt::Quote{1, 2, 3},
                        tachyon::publish_options{.correlation_id = 7, .on_settle = &p}),
            result::ok);
  EXPECT_EQ(p.calls.load(), 0);  // accepted, not settled
  EXPECT_EQ(bus.poll(), 1u);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(p.calls.load(), 1);
  EXPECT_EQ(p.told, outcome::dispatched);
  EXPECT_EQ(p.m.sequence, runs[0].sequence);
  EXPECT_EQ(p.m.correlation_id, 7u);
  EXPECT_EQ(p.m.type_index, quote_t);
  EXPECT_EQ(p.m.flags, 0u);
  EXPECT_EQ(runs[0].flags, 0u);  // the first run, through the front door
  EXPECT_EQ(p.on, std::this_thread::get_id());
  // The listener saw the event counted in its outcome, in total and in its type.
  EXPECT_EQ(dispatched_in_call, 1u);
  EXPECT_EQ(type_dispatched_in_call, 1u);
  bus.poll();
  EXPECT_EQ(p.calls.load(), 1);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, 1u);
  EXPECT_EQ(m.total.dispatched, 1u);
  tt::expect_books_balance(m);
}

TEST(Settle, ANoHandlerEventIsDispatched) {
  vbus bus{tt::manual()};
  probe p;
  ASSERT_EQ(bus.publish(tt::Quote{}, {.on_settle = &p}), result::ok);
  bus.poll();
  EXPECT_EQ(p.calls.load(), 1);
  EXPECT_EQ(p.told, outcome::dispatched);
  tt::expect_books_balance(bus.metrics());
}

TEST(Settle, FailedWhenAHandlerThrowsWithoutRetries) {
  vbus bus{tt::manual()};
  auto s = bus.subscribe<tt::Quote>([](const tt::Quote&) { throw std::runtime_error("x"); });
  probe p;
  std::uint64_t failed_in_call = 0;
  p.during = [&] { failed_in_call = bus.metrics().total.failed; };
  ASSERT_EQ(bus.publish(tt::Quote{}, {.on_settle = &p}), result::ok);
  bus.poll();
  EXPECT_EQ(p.calls.load(), 1);
  EXPECT_EQ(p.told, outcome::failed);
  EXPECT_EQ(failed_in_call, 1u);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.failed, 1u);
  EXPECT_EQ(m.total.dispatched, 0u);
  tt::expect_books_balance(m);
}

TEST(Settle, ARetriedEventIsToldOnlyAfterItsLastRetry) {
  vbus bus{tt::manual()};
  int runs = 0;
  std::vector<std::uint8_t> flags;
  auto s = bus.subscribe<tt::Quote>(
      [&](const tt::Quote&, const tachyon::meta& m) {
        flags.push_back(m.flags);
        if (++runs < 3) throw std::runtime_error("down");
      },
      {.retry = retries(5, 1ms)});
  probe p;
  ASSERT_EQ(bus.publish(tt::Quote{}, {.on_settle = &p, .external = true}), result::ok);
  bus.poll();
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(p.calls.load(), 0);  // waits for its retry
  bus.time_source().advance(1ms);
  bus.poll();
  EXPECT_EQ(runs, 2);
  EXPECT_EQ(p.calls.load(), 0);
  bus.time_source().advance(2ms);
  bus.poll();
  EXPECT_EQ(runs, 3);
  EXPECT_EQ(p.calls.load(), 1);
  EXPECT_EQ(p.told, outcome::dispatched);
  EXPECT_EQ(p.m.flags, tachyon::meta_flags::external);
  // Every run saw the event as external; the retries also as re-entered.
  EXPECT_EQ(flags, (std::vector<std::uint8_t>{
                       tachyon::meta_flags::external,
                       tachyon::meta_flags::external | tachyon::meta_flags::reentered,
                       tachyon::meta_flags::external | tachyon::meta_flags::reentered}));
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.dispatched, 1u);
  EXPECT_EQ(m.total.retried, 2u);
  tt::expect_books_balance(m);
}

TEST(Settle, DeadLetteredOnceAndAReplayTellsNothingMore) {
  vbus bus{manual_dl()};
  bool heal = false;
  std::vector<std::uint8_t> flags;
  auto s = bus.subscribe<tt::Note>(
      [&](const tt::Note&, const tachyon::meta& m) {
        flags.push_back(m.flags);
        if (!heal) throw std::runtime_error("down");
      },
      {.retry = retries(2, 0ns)});
  probe p;
  const int live_before = tt::Note::live.load();
  ASSERT_EQ(bus.publish(tt::Note{"n"}, {.correlation_id = 3, .on_settle = &p, .external = true}),
            result::ok);
  bus.poll();  // the first run and its retry (due at once) fail: exhausted, dead-lettered
  EXPECT_EQ(p.calls.load(), 1);
  EXPECT_EQ(p.told, outcome::dead_lettered);
  EXPECT_EQ(p.m.correlation_id, 3u);
  EXPECT_EQ(p.m.type_index, note_t);
  EXPECT_EQ(bus.dead_letter_count(), 1u);
  auto m = bus.metrics();
  EXPECT_EQ(m.total.dead_lettered, 1u);
  tt::expect_books_balance(m);
  heal = true;
  EXPECT_EQ(bus.replay_dead_letters().succeeded, 1u);
  EXPECT_EQ(p.calls.load(), 1);  // settled already: the replay is not a new outcome
  ASSERT_EQ(flags.size(), 3u);
  EXPECT_EQ(flags[2], tachyon::meta_flags::external | tachyon::meta_flags::replayed);
  tt::expect_books_balance(bus.metrics());
  EXPECT_EQ(tt::Note::live.load(), live_before);
}

TEST(Settle, ExpiredWhenTheDeadlinePassedBeforeItRan) {
  vbus bus{manual_dl()};
  int ran = 0;
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) { ++ran; });
  probe a, b, c;
  ASSERT_EQ(bus.publish(tt::Quote{}, {.deadline = bus.now() + 5ms, .on_settle = &a}), result::ok);
  ASSERT_EQ(
      bus.publish(tt::Quote{},
                  {.deadline = bus.now() + 5ms, .dead_letter_expired = true, .on_settle = &b}),
      result::ok);
  ASSERT_EQ(bus.publish(tt::Quote{}, {.deadline = bus.now() + 50ms, .on_settle = &c}), result::ok);
  bus.time_source().advance(10ms);
  EXPECT_EQ(bus.poll(), 3u);
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(a.calls.load(), 1);
  EXPECT_EQ(a.told, outcome::expired);
  EXPECT_EQ(b.calls.load(), 1);
  EXPECT_EQ(b.told, outcome::expired);  // dead-lettered too, counted expired
  EXPECT_EQ(c.calls.load(), 1);
  EXPECT_EQ(c.told, outcome::dispatched);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.expired, 2u);
  tt::expect_books_balance(m);
  EXPECT_EQ(bus.replay_dead_letters().succeeded, 1u);
  EXPECT_EQ(b.calls.load(), 1);
}

TEST(Settle, ARetryPastTheDeadlineSettlesTheEventOnce) {
  vbus bus{tt::manual()};
  auto s = bus.subscribe<tt::Quote>([](const tt::Quote&) { throw std::runtime_error("x"); },
                                    {.retry = retries(3, 10ms)});
  probe p;
  ASSERT_EQ(bus.publish(tt::Quote{}, {.deadline = bus.now() + 5ms, .on_settle = &p}), result::ok);
  bus.poll();
  EXPECT_EQ(p.calls.load(), 0);  // its retry waits, due after the deadline
  bus.time_source().advance(10ms);
  bus.poll();  // the retry would start past the deadline: that delivery fails for good
  EXPECT_EQ(p.calls.load(), 1);
  EXPECT_EQ(p.told, outcome::failed);
  tt::expect_books_balance(bus.metrics());
}

TEST(Settle, DiscardedWhenStopDiscardFindsItQueuedDelayedOrRetrying) {
  vbus bus{tt::manual()};
  auto s = bus.subscribe<tt::Note>(
      [](const tt::Note& n) {
        if (n.text == "r") throw std::runtime_error("x");
      },
      {.retry = retries(4, 1h)});
  probe retrying, queued, delayed, due;
  const int live_before = tt::Note::live.load();
  ASSERT_EQ(bus.publish(tt::Note{"r"}, {.on_settle = &retrying}), result::ok);
  bus.poll();  // fails, waits an hour for its retry
  EXPECT_EQ(retrying.calls.load(), 0);
  ASSERT_EQ(bus.publish(tt::Note{"d"}, {.not_before = bus.now() + 1h, .on_settle = &delayed}),
            result::ok);
  ASSERT_EQ(bus.publish(tt::Note{"u"}, {.not_before = bus.now() + 1ms, .on_settle = &due}),
            result::ok);
  ASSERT_EQ(bus.publish(tt::Note{"q"}, {.on_settle = &queued}), result::ok);
  bus.time_source().advance(1ms);
  ASSERT_EQ(bus.publish(tt::Halt{}), result::ok);
  // Fires "u" into its lane's re-entry door, then runs the critical lane only.
  EXPECT_EQ(bus.run_once(), 1u);
  EXPECT_EQ(bus.stop(tachyon::stop_mode::discard), 3u);  // d, u, q; r's retry is not an event
  for (probe* p : {&retrying, &queued, &delayed, &due}) {
    EXPECT_EQ(p->calls.load(), 1);
    EXPECT_EQ(p->told, outcome::discarded);
  }
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.discarded, 4u);
  tt::expect_books_balance(m);
  EXPECT_EQ(tt::Note::live.load(), live_before);
}

TEST(Settle, StopDrainRunsADelayedEventAndItsListenerIsToldDispatched) {
  vbus bus{tt::manual()};
  int ran = 0;
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) { ++ran; });
  probe p;
  ASSERT_EQ(bus.publish(tt::Quote{}, {.not_before = bus.now() + 1h, .on_settle = &p}), result::ok);
  bus.poll();
  EXPECT_EQ(p.calls.load(), 0);
  EXPECT_EQ(bus.stop(), 0u);
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(p.calls.load(), 1);
  EXPECT_EQ(p.told, outcome::dispatched);
  tt::expect_books_balance(bus.metrics());
}

TEST(Settle, DisplacedUnderDropOldestIsToldOnThePublishersThread) {
  auto cfg = tt::manual(4);
  cfg.overflow = tachyon::overflow::drop_oldest;
  vbus bus{cfg};
  std::vector<std::uint32_t> ran;
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote& q) { ran.push_back(q.instrument); });
  probe first, last;
  std::uint64_t displaced_in_call = 0;
  first.during = [&] { displaced_in_call = bus.metrics().total.displaced; };
  ASSERT_EQ(bus.publish(tt::Quote{0, 0, 0}, {.on_settle = &first}), result::ok);
  for (std::uint32_t i = 1; i < 4; ++i) ASSERT_EQ(bus.publish(tt::Quote{i, 0, 0}), result::ok);
  EXPECT_EQ(first.calls.load(), 0);
  ASSERT_EQ(bus.publish(tt::Quote{4, 0, 0}, {.on_settle = &last}), result::ok);
  EXPECT_EQ(first.calls.load(), 1);
  EXPECT_EQ(first.told, outcome::displaced);
  EXPECT_EQ(first.on, std::this_thread::get_id());
  EXPECT_EQ(displaced_in_call, 1u);
  EXPECT_EQ(bus.poll(), 4u);
  EXPECT_EQ(ran, (std::vector<std::uint32_t>{1, 2, 3, 4}));
  EXPECT_EQ(last.calls.load(), 1);
  EXPECT_EQ(last.told, outcome::dispatched);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.displaced, 1u);
  EXPECT_EQ(m.total.dispatched, 4u);
  tt::expect_books_balance(m);
}

TEST(Settle, KeyedEventsWithListenersRunInOrderAndAreEachToldOnce) {
  vbus bus{tt::manual()};
  std::vector<std::uint32_t> ran;
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote& q) { ran.push_back(q.instrument); });
  constexpr int n = 10;
  std::vector<probe> ps(n);
  for (int i = 0; i < n; ++i) {
    // Every other one without a listener: both kinds share the key's order.
    tachyon::publish_options o{.key = 42};
    if (i % 2 == 0) o.on_settle = &ps[i];
    ASSERT_EQ(bus.publish(tt::Quote{static_cast<std::uint32_t>(i), 0, 0}, o), result::ok);
  }
  bus.poll();
  std::vector<std::uint32_t> expect;
  for (std::uint32_t i = 0; i < n; ++i) expect.push_back(i);
  EXPECT_EQ(ran, expect);
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(ps[i].calls.load(), i % 2 == 0 ? 1 : 0) << i;
    if (i % 2 == 0) {
      EXPECT_EQ(ps[i].told, outcome::dispatched) << i;
    }
  }
  tt::expect_books_balance(bus.metrics());
}

TEST(Settle, KeyedEventDiscardedFromItsStrand) {
  vbus bus{tt::manual()};
  auto s = bus.subscribe<tt::Quote>([](const tt::Quote&) {});
  probe p;
  ASSERT_EQ(bus.publish(tt::Quote{}, {.key = 5, .on_settle = &p}), result::ok);
  EXPECT_EQ(bus.stop(tachyon::stop_mode::discard), 1u);
  EXPECT_EQ(p.calls.load(), 1);
  EXPECT_EQ(p.told, outcome::discarded);
  tt::expect_books_balance(bus.metrics());
}

TEST(Settle, SeveralSubscriptionsOneRetryingIsToldOnceAtTheEnd) {
  vbus bus{manual_dl()};
  int a = 0, b = 0, c = 0;
  auto sa = bus.subscribe<tt::Quote>([&](const tt::Quote&) { ++a; });
  auto sb = bus.subscribe<tt::Quote>(
      [&](const tt::Quote&) {
        ++b;
        throw std::runtime_error("b down");
      },
      {.retry = retries(3, 1ms)});
  auto sc = bus.subscribe<tt::Quote>([&](const tt::Quote&) { ++c; });
  probe p;
  ASSERT_EQ(bus.publish(tt::Quote{}, {.on_settle = &p}), result::ok);
  bus.poll();
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(p.calls.load(), 0) << i;
    bus.time_source().advance(10ms);
    bus.poll();
  }
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 3);
  EXPECT_EQ(c, 1);
  EXPECT_EQ(p.calls.load(), 1);
  EXPECT_EQ(p.told, outcome::dead_lettered);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.dead_lettered, 1u);
  tt::expect_books_balance(m);
}

TEST(Settle, RefusedPublishesNeverCallTheListener) {
  auto cfg = tt::manual(2);
  cfg.timer_capacity = 1;
  vbus bus{cfg};
  probe ok1, ok2, full, timer_full, stopped, stopped_delayed;
  ASSERT_EQ(bus.publish(tt::Quote{}, {.on_settle = &ok1}), result::ok);
  ASSERT_EQ(bus.publish(tt::Quote{}, {.on_settle = &ok2}), result::ok);
  EXPECT_EQ(bus.publish(tt::Quote{}, {.on_settle = &full}), result::full);
  ASSERT_EQ(bus.publish(tt::Quote{}, {.not_before = bus.now() + 1h}), result::ok);
  EXPECT_EQ(bus.publish(tt::Quote{}, {.not_before = bus.now() + 1h, .on_settle = &timer_full}),
            result::full);
  bus.stop();
  EXPECT_EQ(bus.publish(tt::Quote{}, {.on_settle = &stopped}), result::stopped);
  EXPECT_EQ(bus.publish(tt::Quote{}, {.not_before = bus.now() + 1h, .on_settle = &stopped_delayed}),
            result::stopped);
  EXPECT_EQ(ok1.calls.load(), 1);
  EXPECT_EQ(ok2.calls.load(), 1);
  for (probe* p : {&full, &timer_full, &stopped, &stopped_delayed}) EXPECT_EQ(p->calls.load(), 0);
  tt::expect_books_balance(bus.metrics());
}

TEST(Settle, OverflowDropAndAThrowingPayloadNeverCallTheListener) {
  auto cfg = tt::manual(1);
  cfg.overflow = tachyon::overflow::drop;
  vbus bus{cfg};
  probe kept, dropped;
  ASSERT_EQ(bus.publish(tt::Quote{}, {.on_settle = &kept}), result::ok);
  EXPECT_EQ(bus.publish(tt::Quote{}, {.on_settle = &dropped}), result::dropped);
  bus.poll();
  EXPECT_EQ(kept.calls.load(), 1);
  EXPECT_EQ(dropped.calls.load(), 0);
  tt::expect_books_balance(bus.metrics());
}

TEST(Settle, MisuseIsRefusedByName) {
  vbus bus{tt::manual()};
  probe p;
  const std::vector<tt::Quote> qs(3);
  try {
    (void)bus.publish_batch(std::span<const tt::Quote>(qs), {.on_settle = &p});
    ADD_FAILURE() << "publish_batch took a listener";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("on_settle"), std::string::npos) << e.what();
  }
  try {
    bus.dispatch(tt::Quote{}, {.on_settle = &p});
    ADD_FAILURE() << "dispatch took a listener";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("on_settle"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("external"), std::string::npos) << e.what();
  }
  tachyon::settle_listener empty;  // no function
  try {
    (void)bus.publish(tt::Quote{}, {.on_settle = &empty});
    ADD_FAILURE() << "publish took a listener without a function";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("settled"), std::string::npos) << e.what();
  }
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, 0u);
  EXPECT_EQ(p.calls.load(), 0);
}

// ---- external --------------------------------------------------------------------------------

TEST(External, HandlersSeeTheFlagOnEveryWayIn) {
  vbus bus{manual_dl()};
  std::vector<std::pair<std::uint32_t, std::uint8_t>> seen;
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote& q, const tachyon::meta& m) {
    seen.emplace_back(q.instrument, m.flags);
  });
  constexpr auto ext = tachyon::meta_flags::external;
  ASSERT_EQ(bus.publish(tt::Quote{1, 0, 0}, {.external = true}), result::ok);
  ASSERT_EQ(bus.publish(tt::Quote{2, 0, 0}), result::ok);
  ASSERT_EQ(bus.publish(tt::Quote{3, 0, 0}, {.key = 9, .external = true}), result::ok);
  ASSERT_EQ(bus.publish(tt::Quote{4, 0, 0}, {.deadline = bus.now() + 1h, .external = true}),
            result::ok);
  const std::vector<tt::Quote> batch{{5, 0, 0}, {6, 0, 0}};
  const auto br = bus.publish_batch(std::span<const tt::Quote>(batch), {.external = true});
  EXPECT_EQ(br.queued, 2u);
  ASSERT_EQ(bus.publish(tt::Quote{7, 0, 0}, {.not_before = bus.now() + 1ms, .external = true}),
            result::ok);
  bus.poll();
  bus.time_source().advance(1ms);
  bus.poll();
  bus.dispatch(tt::Quote{8, 0, 0}, {.external = true});
  bus.dispatch(tt::Quote{9, 0, 0}, {});
  using seen_t = std::vector<std::pair<std::uint32_t, std::uint8_t>>;
  EXPECT_EQ(seen, (seen_t{{1, ext},
                          {2, 0},
                          {3, ext},
                          {4, ext},
                          {5, ext},
                          {6, ext},
                          {7, ext | tachyon::meta_flags::reentered},
                          {8, ext},
                          {9, 0}}));
  tt::expect_books_balance(bus.metrics());
}

TEST(External, APlainFailedEventKeepsTheFlagInItsRetryAndDeadLetter) {
  vbus bus{manual_dl()};
  std::vector<std::uint8_t> flags;
  auto s = bus.subscribe<tt::Quote>(
      [&](const tt::Quote&, const tachyon::meta& m) {
        flags.push_back(m.flags);
        throw std::runtime_error("x");
      },
      {.retry = retries(2, 0ns)});
  ASSERT_EQ(bus.publish(tt::Quote{}, {.external = true}), result::ok);
  bus.poll();
  bus.poll();
  int visited = 0;
  bus.visit_dead_letters([&](const auto& dl) {
    ++visited;
    EXPECT_EQ(dl.meta.flags, tachyon::meta_flags::external);
  });
  EXPECT_EQ(visited, 1);
  (void)bus.replay_dead_letters();
  constexpr auto ext = tachyon::meta_flags::external;
  EXPECT_EQ(flags, (std::vector<std::uint8_t>{ext, ext | tachyon::meta_flags::reentered,
                                              ext | tachyon::meta_flags::replayed}));
}

/// A conflated type: an external event is not conflated (nor replaced), as one with a deadline
/// is not; plain events around it still are.
struct Level {
  std::uint32_t key;
  std::uint64_t value;
};
using CEvents = tachyon::registry<
    tachyon::event<Level, tachyon::priority::normal, tachyon::conflate_by<&Level::key, 8>>>;

TEST(External, AConflatedTypesExternalEventIsNotConflated) {
  tachyon::bus<CEvents> bus{tt::manual()};
  std::vector<std::pair<std::uint64_t, std::uint8_t>> seen;
  auto s = bus.subscribe<Level>(
      [&](const Level& l, const tachyon::meta& m) { seen.emplace_back(l.value, m.flags); });
  ASSERT_EQ(bus.publish(Level{1, 1}), result::ok);
  ASSERT_EQ(bus.publish(Level{1, 2}, {.external = true}), result::ok);  // does not replace 1
  ASSERT_EQ(bus.publish(Level{1, 3}), result::ok);                      // replaces 1
  EXPECT_EQ(bus.poll(), 2u);
  using seen_t = std::vector<std::pair<std::uint64_t, std::uint8_t>>;
  EXPECT_EQ(seen, (seen_t{{3, 0}, {2, tachyon::meta_flags::external}}));
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.conflated, 1u);
  tt::expect_books_balance(m);
}

TEST(Settle, AConflatedTypesEventWithAListenerIsNotConflated) {
  tachyon::bus<CEvents> bus{tt::manual()};
  std::vector<std::uint64_t> seen;
  auto s = bus.subscribe<Level>([&](const Level& l) { seen.push_back(l.value); });
  probe p;
  ASSERT_EQ(bus.publish(Level{1, 1}, {.on_settle = &p}), result::ok);
  ASSERT_EQ(bus.publish(Level{1, 2}), result::ok);  // does not replace the listened one
  EXPECT_EQ(bus.poll(), 2u);
  EXPECT_EQ(seen, (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(p.calls.load(), 1);
  EXPECT_EQ(p.told, outcome::dispatched);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.conflated, 0u);
  tt::expect_books_balance(m);
}

// ---- stress ------------------------------------------------------------------------------------

/// A listener per event, counting into per-outcome totals; `calls` catches a second call.
struct counted : tachyon::settle_listener {
  std::atomic<int> calls{0};
  std::atomic<int>* per_outcome = nullptr;
  counted() { settled = &on; }
  static void on(tachyon::settle_listener& self, const tachyon::meta&, outcome o) noexcept {
    auto& c = static_cast<counted&>(self);
    c.per_outcome[static_cast<int>(o)].fetch_add(1, std::memory_order_relaxed);
    c.calls.fetch_add(1, std::memory_order_acq_rel);
  }
};

void stress(tachyon::stop_mode mode) {
  constexpr int publishers = 4;
  const int each = tt::sanitized() ? 1500 : 10000;
  tachyon::config cfg{.workers = 2,
                      .lane_capacity = 1024,
                      .batch = 32,
                      .overflow = tachyon::overflow::drop_oldest,
                      .producers = publishers + 1};
  cfg.dead_letter_capacity = 64;
  tachyon::bus<tt::Events> bus{cfg};
  std::atomic<int> per_outcome[6] = {};
  std::vector<std::unique_ptr<counted[]>> listeners;
  for (int p = 0; p < publishers; ++p) {
    listeners.emplace_back(new counted[each]);
    for (int i = 0; i < each; ++i) listeners.back()[i].per_outcome = per_outcome;
  }
  // Throws on a fixed share of (instrument, attempt): some retry into success, some exhaust
  // into the dead letters, some into `failed` (the second subscription keeps no dead letters).
  auto s1 = bus.subscribe<tt::Quote>(
      [](const tt::Quote& q, const tachyon::meta& m) {
        if (q.instrument % 5 == 0 && m.attempt < q.instrument % 3) throw std::runtime_error("r");
      },
      {.retry = retries(2, 1us)});
  auto s2 = bus.subscribe<tt::Quote>(
      [](const tt::Quote& q) {
        if (q.instrument % 97 == 1) throw std::runtime_error("f");
      },
      {.dead_letters = false});
  std::atomic<int> accepted{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < publishers; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < each; ++i) {
        tachyon::publish_options o{.on_settle = &listeners[p][i]};
        if (i % 7 == 0) o.key = static_cast<std::uint64_t>(i % 13 + 1);
        if (i % 11 == 0) o.deadline = bus.now() + std::chrono::microseconds(i % 50);
        if (i % 17 == 0 && o.key == 0) o.not_before = bus.now() + std::chrono::microseconds(20);
        o.external = (i & 1) != 0;
        const result r = bus.publish(tt::Quote{static_cast<std::uint32_t>(p * each + i), 0, 0}, o);
        if (r == result::ok) accepted.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  if (mode == tachyon::stop_mode::discard) {
    // Racing the publishers: what is queued, delayed or retrying then is discarded, and what
    // is published after it is refused (stopped) and never told.
    ASSERT_TRUE(tt::eventually([&] { return accepted.load() >= publishers * each / 2; }));
    bus.stop(mode);
  }
  for (auto& t : threads) t.join();
  bus.stop(mode);
  const auto m = bus.metrics();
  tt::expect_books_balance(m);
  int told = 0, twice = 0;
  for (auto& l : listeners)
    for (int i = 0; i < each; ++i) {
      const int c = l[i].calls.load(std::memory_order_acquire);
      told += c;
      twice += c > 1;
    }
  const auto& t = m.total;
  std::printf(
      "settle stress: accepted %llu dispatched %llu failed %llu dead_lettered %llu "
      "expired %llu discarded %llu displaced %llu dropped %llu rejected_full %llu\n",
      (unsigned long long)t.accepted, (unsigned long long)t.dispatched,
      (unsigned long long)t.failed, (unsigned long long)t.dead_lettered,
      (unsigned long long)t.expired, (unsigned long long)t.discarded,
      (unsigned long long)t.displaced, (unsigned long long)t.dropped,
      (unsigned long long)t.rejected_full);
  std::printf("settle stress: rejected_stopped %llu\n", (unsigned long long)t.rejected_stopped);
  EXPECT_EQ(twice, 0);
  EXPECT_EQ(told, accepted.load());
  // Every publish was told, or dropped (drop_oldest found nothing it could displace), or
  // refused (a full timer, the stop): and each outcome told is one the metrics counted.
  EXPECT_EQ(static_cast<std::uint64_t>(told) + m.total.dropped + m.total.rejected_full +
                m.total.rejected_stopped,
            static_cast<std::uint64_t>(publishers) * each);
  EXPECT_EQ(m.total.accepted, static_cast<std::uint64_t>(told) + m.total.dropped);
  EXPECT_EQ(static_cast<std::uint64_t>(per_outcome[static_cast<int>(outcome::dispatched)].load()),
            m.total.dispatched);
  EXPECT_EQ(static_cast<std::uint64_t>(per_outcome[static_cast<int>(outcome::failed)].load()),
            m.total.failed);
  EXPECT_EQ(
      static_cast<std::uint64_t>(per_outcome[static_cast<int>(outcome::dead_lettered)].load()),
      m.total.dead_lettered);
  EXPECT_EQ(static_cast<std::uint64_t>(per_outcome[static_cast<int>(outcome::expired)].load()),
            m.total.expired);
  EXPECT_EQ(static_cast<std::uint64_t>(per_outcome[static_cast<int>(outcome::discarded)].load()),
            m.total.discarded);
  EXPECT_EQ(static_cast<std::uint64_t>(per_outcome[static_cast<int>(outcome::displaced)].load()),
            m.total.displaced);
}

TEST(SettleStress, EveryListenerToldOnceAndTheCountsMatchTheMetricsDrain) {
  stress(tachyon::stop_mode::drain);
}

TEST(SettleStress, EveryListenerToldOnceAndTheCountsMatchTheMetricsDiscard) {
  stress(tachyon::stop_mode::discard);
}

}  // namespace

TEST(External, RedeliveredIsMarkedWithExternalOnlyOnEveryWayIn) {
  vbus bus{manual_dl()};
  std::vector<std::pair<std::uint32_t, std::uint8_t>> seen;
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote& q, const tachyon::meta& m) {
    seen.emplace_back(q.instrument, m.flags);
  });
  constexpr auto ext = tachyon::meta_flags::external;
  constexpr auto again = tachyon::meta_flags::redelivered;
  ASSERT_EQ(bus.publish(tt::Quote{1, 0, 0}, {.external = true, .redelivered = true}), result::ok);
  ASSERT_EQ(bus.publish(tt::Quote{2, 0, 0}, {.redelivered = true}), result::ok);  // alone: ignored
  ASSERT_EQ(bus.publish(tt::Quote{3, 0, 0}, {.key = 5, .external = true, .redelivered = true}),
            result::ok);
  ASSERT_EQ(bus.publish(tt::Quote{4, 0, 0},
                        {.deadline = bus.now() + 1h, .external = true, .redelivered = true}),
            result::ok);
  bus.poll();
  bus.dispatch(tt::Quote{5, 0, 0}, {.external = true, .redelivered = true});
  bus.dispatch(tt::Quote{6, 0, 0}, {.redelivered = true});
  using seen_t = std::vector<std::pair<std::uint32_t, std::uint8_t>>;
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(
      seen,
      (seen_t{
          {1, ext | again}, {2, 0}, {3, ext | again}, {4, ext | again}, {5, ext | again}, {6, 0}}));
}
