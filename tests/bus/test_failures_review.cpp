// A hostile review of the failure handling, kept as deterministic tests: manual mode on a
// virtual clock wherever one thread can stage the case, threads and handshakes (never sleeps)
// where the case is a race between two calls. Each test names what it would break.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bus/books.hpp"
#include "common.hpp"

namespace {

using namespace std::chrono_literals;
using tachyon::result;
using vbus = tachyon::bus<tt::Events, tachyon::virtual_time_traits>;

constexpr std::size_t order_index = tt::Events::index_of<tt::Order>();
constexpr std::size_t quote_index = tt::Events::index_of<tt::Quote>();
constexpr std::size_t note_index = tt::Events::index_of<tt::Note>();

using tt::finishes;
using tt::manual_dl;
using tt::retries;

// ---- nested calls inside a handler ----------------------------------------------------------

// dispatch() from inside a handler ran its own handlers on the running event's failure list
// and, when one of them threw, cleared the whole list: the outer event's kept failure (a retry
// owed to another subscription) was lost and the event read `failed`.
TEST(Review, DispatchInsideAHandlerKeepsTheOuterEventsRetry) {
  vbus bus{manual_dl()};
  int a = 0;
  auto sa = bus.subscribe<tt::Quote>(
      [&](const tt::Quote&) {
        if (++a == 1) throw std::runtime_error("a down");
      },
      {.name = "a", .retry = retries(2, 1ms)});
  auto sb = bus.subscribe<tt::Quote>(
      [&](const tt::Quote&) {
        bus.dispatch(tt::Order{7, 1});
      },
      {.order = 1, .name = "b"});
  auto so = bus.subscribe<tt::Order>([](const tt::Order&) { throw std::runtime_error("o down"); },
                                     {.name = "o"});
  ASSERT_EQ(bus.publish(tt::Quote{1, 0, 0}), result::ok);
  EXPECT_EQ(bus.poll(), 1u);
  auto m = bus.metrics();
  EXPECT_EQ(m.total.retried, 1u);
  EXPECT_EQ(m.timer_entries, 1u);
  bus.time_source().advance(1ms);
  bus.poll();
  EXPECT_EQ(a, 2);
  m = bus.metrics();
  EXPECT_EQ(m.types[quote_index].counts.dispatched, 1u);
  EXPECT_EQ(m.types[quote_index].counts.failed, 0u);
  EXPECT_EQ(m.types[order_index].counts.failed, 1u);  // dispatch() neither retries nor parks
  EXPECT_EQ(bus.dead_letter_count(), 0u);
  tt::expect_books_balance(m);
}

// The same through replay_dead_letters() from inside a handler: the replay took the running
// event's failures with its own.
TEST(Review, ReplayInsideAHandlerKeepsTheOuterEventsRetry) {
  vbus bus{manual_dl()};
  auto sx = bus.subscribe<tt::Order>([](const tt::Order&) { throw std::runtime_error("x down"); },
                                     {.name = "x"});
  ASSERT_EQ(bus.publish(tt::Order{1, 1}), result::ok);
  bus.poll();
  ASSERT_EQ(bus.dead_letter_count(), 1u);
  int a = 0;
  tachyon::replay_result inner;
  auto sa = bus.subscribe<tt::Quote>(
      [&](const tt::Quote&) {
        if (++a == 1) throw std::runtime_error("a down");
      },
      {.name = "a", .retry = retries(2, 1ms)});
  auto sb = bus.subscribe<tt::Quote>([&](const tt::Quote&) { inner = bus.replay_dead_letters(); },
                                     {.order = 1, .name = "b"});
  ASSERT_EQ(bus.publish(tt::Quote{1, 0, 0}), result::ok);
  bus.poll();
  EXPECT_EQ(inner.replayed, 1u);
  EXPECT_EQ(inner.failed, 1u);
  EXPECT_EQ(bus.metrics().total.retried, 1u);
  int seen = 0;
  bus.visit_dead_letters([&](const auto& dl) {
    ++seen;
    EXPECT_EQ(dl.subscription, "x");
    EXPECT_EQ(dl.attempts, 2u);
    EXPECT_EQ(dl.what, "x down");  // the replay's own error, not the outer event's
  });
  EXPECT_EQ(seen, 1);
  bus.time_source().advance(1ms);
  bus.poll();
  EXPECT_EQ(a, 2);
  const auto m = bus.metrics();
  EXPECT_EQ(m.types[quote_index].counts.dispatched, 1u);
  EXPECT_EQ(m.types[quote_index].counts.failed, 0u);
  tt::expect_books_balance(m);
}

// ---- stop ----------------------------------------------------------------------------------

// A handler run by stop(drain) asks for a discard while a retry waits in the timer: the drain
// fired the retry at a door that a discard keeps shut, put it back, and fired it again, for
// ever, holding the stop lock (a stop(discard) from another thread would wait on it for ever
// too). A discard asked for meanwhile must win, as it does for a worker.
TEST(Review, StopDiscardAskedDuringStopDrainWinsInsteadOfSpinning) {
  const int live_before = tt::Note::live.load();
  {
    vbus bus{manual_dl()};
    auto sr = bus.subscribe<tt::Note>([](const tt::Note&) { throw std::runtime_error("r down"); },
                                      {.name = "r", .retry = retries(3, 1h)});
    auto sh = bus.subscribe<tt::Order>(
        [&](const tt::Order&) { EXPECT_EQ(bus.stop(tachyon::stop_mode::discard), 0u); });
    ASSERT_EQ(bus.publish(tt::Note{"its retry waits in the timer"}), result::ok);
    bus.poll();
    ASSERT_EQ(bus.metrics().timer_entries, 1u);
    ASSERT_EQ(bus.publish(tt::Order{1, 1}), result::ok);  // high lane: the drain runs it first
    ASSERT_EQ(bus.publish(tt::Note{"queued behind it"}), result::ok);
    std::uint64_t discarded = 99;
    finishes("stop(drain) after a handler asked for a discard", [&] { discarded = bus.stop(); });
    EXPECT_EQ(discarded, 1u);  // the queued note; the retry's event counts itself
    const auto m = bus.metrics();
    EXPECT_EQ(m.types[order_index].counts.dispatched, 1u);
    EXPECT_EQ(m.types[note_index].counts.discarded, 2u);
    EXPECT_EQ(m.total.handler_errors, 1u);  // the retry never ran
    tt::expect_books_balance(m);
  }
  EXPECT_EQ(tt::Note::live.load(), live_before);
}

/// A shared handshake for Gate's move constructor.
struct gate_latch {
  std::atomic<bool> armed{false};
  std::atomic<bool> entered{false};
  std::atomic<bool> open{false};
};

/// Boxed (not trivially copyable). Its move constructor, when its latch is armed, signals and
/// then waits until the latch opens: it holds a publisher inside publish(), after the timer
/// slot is taken and before the event is parked. Counts live instances.
struct Gate {
  static inline std::atomic<int> live{0};
  gate_latch* latch = nullptr;
  std::string tag = "boxed";
  explicit Gate(gate_latch* l) : latch(l) { live.fetch_add(1); }
  Gate(const Gate& o) : latch(o.latch), tag(o.tag) { live.fetch_add(1); }
  Gate(Gate&& o) noexcept : latch(o.latch), tag(std::move(o.tag)) {
    live.fetch_add(1);
    if (latch != nullptr && latch->armed.exchange(false)) {
      latch->entered.store(true);
      EXPECT_TRUE(tt::eventually([&] { return latch->open.load(); }));
    }
  }
  ~Gate() { live.fetch_sub(1); }
};
using GateEvents = tachyon::registry<tt::Quote, Gate>;
using gbus = tachyon::bus<GateEvents, tachyon::virtual_time_traits>;

// A delayed publish holds its timer slot while it moves the event in; stop(discard) emptied the
// timer meanwhile and returned; the publisher then parked the event in a stopped bus's timer,
// where nothing would ever fire or count it: in flight for ever, a timer entry after stop.
TEST(Review, ADelayedPublishCaughtByStopDiscardIsDiscardedNotLeftInTheTimer) {
  ASSERT_EQ(Gate::live.load(), 0);
  {
    gbus bus{tt::manual()};
    int ran = 0;
    auto s = bus.subscribe<Gate>([&](const Gate&) { ++ran; });
    gate_latch latch;
    latch.armed = true;
    result r = result::full;
    std::thread publisher([&] {
      r = bus.publish(Gate{&latch}, tachyon::publish_options{.not_before = bus.now() + 1h});
    });
    ASSERT_TRUE(tt::eventually([&] { return latch.entered.load(); }));
    EXPECT_EQ(bus.metrics().timer_entries, 1u);  // the slot it holds
    EXPECT_EQ(bus.stop(tachyon::stop_mode::discard), 0u);
    latch.open = true;
    publisher.join();
    EXPECT_EQ(r, result::ok);  // accepted (the event was moved in already), then discarded
    EXPECT_EQ(ran, 0);
    const auto m = bus.metrics();
    EXPECT_EQ(m.total.accepted, 1u);
    EXPECT_EQ(m.total.discarded, 1u);
    tt::expect_books_balance(m);
  }
  EXPECT_EQ(Gate::live.load(), 0);
}

// The same race with stop(drain): the drain waits for the slot to be filled and runs the event
// (a drain runs everything accepted), whatever the delay asked for.
TEST(Review, ADelayedPublishCaughtByStopDrainRunsBeforeStopReturns) {
  ASSERT_EQ(Gate::live.load(), 0);
  {
    gbus bus{tt::manual()};
    std::atomic<int> ran{0};
    auto s = bus.subscribe<Gate>([&](const Gate&) { ran.fetch_add(1); });
    gate_latch latch;
    latch.armed = true;
    std::thread publisher([&] {
      EXPECT_EQ(bus.publish(Gate{&latch}, tachyon::publish_options{.not_before = bus.now() + 1h}),
                result::ok);
    });
    ASSERT_TRUE(tt::eventually([&] { return latch.entered.load(); }));
    std::atomic<bool> stopped{false};
    std::thread stopper([&] {
      EXPECT_EQ(bus.stop(), 0u);
      stopped = true;
    });
    std::uint64_t quotes = 0;  // accepted before the stop began
    ASSERT_TRUE(tt::eventually([&] {
      const result r = bus.publish(tt::Quote{});
      quotes += r == result::ok;
      return r == result::stopped;
    }));
    EXPECT_FALSE(stopped.load());  // it cannot finish: an accepted event is not parked yet
    latch.open = true;
    publisher.join();
    stopper.join();
    EXPECT_EQ(ran.load(), 1);
    const auto m = bus.metrics();
    EXPECT_EQ(m.total.accepted, quotes + 1);
    EXPECT_EQ(m.total.dispatched, quotes + 1);
    tt::expect_books_balance(m);
  }
  EXPECT_EQ(Gate::live.load(), 0);
}

// not_before during a stop, from inside a handler the drain runs and from outside after it:
// refused as stopped, the caller's event untouched, nothing parked.
TEST(Review, NotBeforeDuringStopIsRefusedAndLeavesTheEvent) {
  vbus bus{tt::manual()};
  result inside = result::ok;
  std::string left;
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) {
    tt::Note n{"inside"};
    inside = bus.publish(std::move(n), tachyon::publish_options{.not_before = bus.now() + 1ms});
    left = n.text;
  });
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  EXPECT_EQ(bus.stop(), 0u);
  EXPECT_EQ(inside, result::stopped);
  EXPECT_EQ(left, "inside");
  tt::Note outside{"outside"};
  EXPECT_EQ(
      bus.publish(std::move(outside), tachyon::publish_options{.deadline = bus.now() + 2ms,
                                                               .not_before = bus.now() + 1ms}),
      result::stopped);
  EXPECT_EQ(outside.text, "outside");
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.rejected_stopped, 2u);
  tt::expect_books_balance(m);
}

// ---- dead letters --------------------------------------------------------------------------

// A replay takes its entry out while the handler runs; a new dead letter fills the queue
// meanwhile; the replay fails and puts the entry back into a full queue. The queue drops its
// oldest entry, and the entry put back is older than the new one: it is the one to go, not
// the newer entry (config::dead_letter_capacity: "the oldest entry is dropped").
TEST(Review, AFailedReplayPutBackIntoAFullQueueDropsTheOldestEntry) {
  vbus bus{manual_dl(1)};
  std::atomic<bool> in_replay{false}, pushed{false};
  auto sx = bus.subscribe<tt::Order>(
      [&](const tt::Order& o, const tachyon::meta& m) {
        if (m.flags & tachyon::meta_flags::replayed) {
          in_replay = true;
          EXPECT_TRUE(tt::eventually([&] { return pushed.load(); }));
        }
        throw std::runtime_error("x down " + std::to_string(o.id));
      },
      {.name = "x"});
  ASSERT_EQ(bus.publish(tt::Order{1, 1}), result::ok);
  bus.poll();
  ASSERT_EQ(bus.dead_letter_count(), 1u);
  std::thread other([&] {
    EXPECT_TRUE(tt::eventually([&] { return in_replay.load(); }));
    EXPECT_EQ(bus.publish(tt::Order{2, 1}), result::ok);
    EXPECT_EQ(bus.poll(), 1u);  // a new dead letter while the first is out for its replay
    pushed = true;
  });
  const auto r = bus.replay_dead_letters();
  other.join();
  EXPECT_EQ(r.replayed, 1u);
  EXPECT_EQ(r.failed, 1u);
  EXPECT_EQ(bus.dead_letter_count(), 1u);
  std::vector<std::uint64_t> kept;
  bus.visit_dead_letters([&](const auto& dl) {
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(dl.event)>, tt::Order>)
      kept.push_back(dl.event.id);
  });
  EXPECT_EQ(kept, (std::vector<std::uint64_t>{2}));
  const auto m = bus.metrics();
  EXPECT_EQ(m.dead_letters_evicted, 1u);
  EXPECT_EQ(m.total.dead_lettered, 2u);
  tt::expect_books_balance(m);
}

// dead_letter_capacity 1: each new dead letter evicts the one before, counted; the books
// balance (an evicted entry's event stays dead_lettered).
TEST(Review, DeadLetterCapacityOneEvictsEachPreviousEntry) {
  vbus bus{manual_dl(1)};
  auto s = bus.subscribe<tt::Order>([](const tt::Order&) { throw std::runtime_error("down"); });
  for (std::uint64_t i = 1; i <= 5; ++i) ASSERT_EQ(bus.publish(tt::Order{i, 1}), result::ok);
  bus.poll();
  std::vector<std::uint64_t> kept;
  bus.visit_dead_letters([&](const auto& dl) {
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(dl.event)>, tt::Order>)
      kept.push_back(dl.event.id);
  });
  EXPECT_EQ(kept, (std::vector<std::uint64_t>{5}));
  const auto m = bus.metrics();
  EXPECT_EQ(m.dead_letters, 1u);
  EXPECT_EQ(m.dead_letters_evicted, 4u);
  EXPECT_EQ(m.total.dead_lettered, 5u);
  tt::expect_books_balance(m);
}

// A replayed handler clears the dead letters and dispatches; replays fail and succeed; entries
// are evicted: every entry ever parked is visible, evicted, cleared or replayed successfully.
TEST(Review, ReplayBesideClearLosesNoEntry) {
  vbus bus{manual_dl(4)};
  bool heal = false;
  std::size_t cleared = 0;
  auto s = bus.subscribe<tt::Order>(
      [&](const tt::Order& o, const tachyon::meta& m) {
        if (m.flags & tachyon::meta_flags::replayed) {
          if (o.id == 4) cleared += bus.clear_dead_letters();  // from inside a replay
          if (o.id == 7) bus.dispatch(tt::Quote{});            // nested, succeeds
          if (heal || o.id % 2 == 0) return;
        }
        throw std::runtime_error("down");
      },
      {.name = "x"});
  auto event_is = [](std::uint64_t id) {
    return [id](const auto& dl) {
      if constexpr (std::is_same_v<std::remove_cvref_t<decltype(dl.event)>, tt::Order>)
        return dl.event.id == id;
      return false;
    };
  };
  for (std::uint64_t i = 1; i <= 6; ++i) ASSERT_EQ(bus.publish(tt::Order{i, 1}), result::ok);
  bus.poll();  // 6 parked, the 2 oldest evicted: 3, 4, 5, 6 remain
  ASSERT_EQ(bus.dead_letter_count(), 4u);
  auto r = bus.replay_dead_letters(event_is(4));  // clears 3, 5, 6, then succeeds
  EXPECT_EQ(r.succeeded, 1u);
  EXPECT_EQ(cleared, 3u);
  std::size_t succeeded = r.succeeded;
  for (std::uint64_t i = 7; i <= 8; ++i) ASSERT_EQ(bus.publish(tt::Order{i, 1}), result::ok);
  bus.poll();
  r = bus.replay_dead_letters();  // 7 fails again, 8 succeeds
  EXPECT_EQ(r.replayed, 2u);
  EXPECT_EQ(r.failed, 1u);
  succeeded += r.succeeded;
  heal = true;
  r = bus.replay_dead_letters();
  EXPECT_EQ(r.succeeded, 1u);
  succeeded += r.succeeded;
  const auto m = bus.metrics();
  EXPECT_EQ(m.dead_letters, 0u);
  EXPECT_EQ(m.total.dead_lettered, 8u);
  EXPECT_EQ(m.total.dead_lettered, m.dead_letters + m.dead_letters_evicted + cleared + succeeded);
  EXPECT_EQ(m.total.replayed, 4u);
  tt::expect_books_balance(m);
}

// A replay's pick or a visitor that throws: the copies of the entries it was handed hold
// references to their events and subscriptions, and must let go of every one of them (a
// boxed payload would otherwise outlive the bus); the dead letters stay as they were.
TEST(Review, APickOrVisitorThatThrowsLeaksNoDeadLetter) {
  const int live_before = tt::Note::live.load();
  {
    vbus bus{manual_dl()};
    bool heal = false;
    auto s = bus.subscribe<tt::Note>(
        [&](const tt::Note&) {
          if (!heal) throw std::runtime_error("down");
        },
        {.name = "x"});
    for (int i = 0; i < 3; ++i) ASSERT_EQ(bus.publish(tt::Note{std::to_string(i)}), result::ok);
    bus.poll();
    ASSERT_EQ(bus.dead_letter_count(), 3u);
    int picked = 0;
    EXPECT_THROW((void)bus.replay_dead_letters([&](const auto&) -> bool {
      if (++picked == 2) throw std::runtime_error("pick");
      return true;
    }),
                 std::runtime_error);
    EXPECT_THROW(bus.visit_dead_letters([](const auto&) { throw 1; }), int);
    EXPECT_EQ(bus.dead_letter_count(), 3u);  // nothing was taken
    heal = true;
    const auto r = bus.replay_dead_letters();
    EXPECT_EQ(r.succeeded, 3u);
    EXPECT_EQ(bus.dead_letter_count(), 0u);
    tt::expect_books_balance(bus.metrics());
  }
  EXPECT_EQ(tt::Note::live.load(), live_before);
}

// The bus goes with dead letters and pending retries holding boxed events and subscriptions:
// every payload and every handler is freed once.
TEST(Review, ABusDestroyedWithBoxedDeadLettersFreesThem) {
  const int live_before = tt::Note::live.load();
  std::atomic<int> destroyed{0};
  tachyon::subscription outlives;
  {
    vbus bus{manual_dl(8)};
    outlives = bus.subscribe<tt::Note>(
        [p = tt::destroy_probe(&destroyed)](const tt::Note&) { throw std::runtime_error("x"); },
        {.name = "x"});
    auto s = bus.subscribe<tt::Note>([](const tt::Note&) { throw 7; }, {.name = "non-std"});
    for (int i = 0; i < 12; ++i) ASSERT_EQ(bus.publish(tt::Note{std::to_string(i)}), result::ok);
    ASSERT_EQ(
        bus.publish(tt::Note{"expired"}, tachyon::publish_options{.deadline = bus.now() + 1ms,
                                                                  .dead_letter_expired = true}),
        result::ok);
    bus.time_source().advance(1ms);
    bus.poll();
    EXPECT_EQ(bus.dead_letter_count(), 8u);
    EXPECT_GT(tt::Note::live.load(), live_before);
    tt::expect_books_balance(bus.metrics());
  }
  EXPECT_EQ(tt::Note::live.load(), live_before);
  EXPECT_EQ(destroyed.load(), 1);
  EXPECT_FALSE(outlives.active());
}

// ---- hostile handlers and hooks --------------------------------------------------------------

// A handler that throws an int, an error hook that throws (rethrowing the handler's error, or
// something of its own), a breaker predicate that throws: the throws count as the failures they
// are (a predicate that throws counts the failure), and nothing else changes.
TEST(Review, NonStdThrowsAndThrowingHooksAreContained) {
  auto cfg = manual_dl();
  int hook_calls = 0;
  cfg.on_error = [&](const tachyon::handler_error& e) {
    ++hook_calls;
    if (hook_calls % 2 == 0) throw 3.5;
    std::rethrow_exception(e.error);
  };
  vbus bus{cfg};
  int calls = 0;
  auto s = bus.subscribe<tt::Quote>(
      [&](const tt::Quote&) {
        ++calls;
        throw 42;
      },
      {.name = "int",
       .retry = retries(2, 0ns),
       .breaker = {.failure_threshold = 5,
                   .open_for = 1s,
                   .action = tachyon::when_open::dead_letter,
                   .counts = [](const std::exception_ptr&) -> bool { throw "predicate"; }}});
  for (int i = 0; i < 3; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  bus.poll();  // three first runs fail; their retries: two fail (the breaker opens at the
               // fifth failure), the third is short-circuited
  EXPECT_EQ(calls, 5);
  EXPECT_EQ(hook_calls, 5);
  int non_std = 0, open = 0;
  bus.visit_dead_letters([&](const auto& dl) {
    try {
      std::rethrow_exception(dl.error);
    } catch (int v) {
      EXPECT_EQ(v, 42);
      EXPECT_EQ(dl.what, "an exception not derived from std::exception");
      EXPECT_EQ(dl.attempts, 2u);
      ++non_std;
    } catch (const tachyon::circuit_open&) {
      ++open;
    }
  });
  EXPECT_EQ(non_std, 2);
  EXPECT_EQ(open, 1);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.handler_errors, 5u);
  EXPECT_EQ(m.total.short_circuited, 1u);
  EXPECT_EQ(m.total.dead_lettered, 3u);
  ASSERT_EQ(m.subscriptions.size(), 1u);
  EXPECT_EQ(m.subscriptions[0].breaker, tachyon::breaker_state::open);
  tt::expect_books_balance(m);
}

// A retry's handler removes its own subscription and throws: the next retry finds it gone and
// fails the event; the handler's state is freed once.
TEST(Review, UnsubscribeFromInsideItsOwnRetry) {
  vbus bus{manual_dl()};
  std::atomic<int> destroyed{0};
  tachyon::subscription s;
  int calls = 0;
  s = bus.subscribe<tt::Quote>(
      [&, p = tt::destroy_probe(&destroyed)](const tt::Quote&, const tachyon::meta& m) {
        ++calls;
        if (m.attempt == 1) s.unsubscribe();
        throw std::runtime_error("x");
      },
      {.retry = retries(4, 1ms)});
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  bus.poll();
  bus.time_source().advance(1ms);
  bus.poll();  // attempt 1: removes itself, throws, schedules attempt 2
  bus.time_source().advance(2ms);
  bus.poll();  // attempt 2: gone
  EXPECT_EQ(calls, 2);
  bus.poll();  // a grace period for the retired handler
  EXPECT_EQ(destroyed.load(), 1);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.failed, 1u);
  EXPECT_EQ(bus.dead_letter_count(), 0u);  // a removed subscription's delivery is not parked
  tt::expect_books_balance(m);
}

// An outside unsubscribe while the subscription's retry runs on another thread: it waits for
// that run, which throws and schedules a retry of a removed subscription; that retry fails
// the event, and the handler's state is freed once, after its last run.
TEST(Review, UnsubscribeWhileItsRetryRunsOnAnotherThread) {
  vbus bus{manual_dl()};
  std::atomic<int> destroyed{0};
  std::atomic<bool> running{false}, go{false};
  auto s = bus.subscribe<tt::Quote>(
      [&, p = tt::destroy_probe(&destroyed)](const tt::Quote&, const tachyon::meta& m) {
        if (m.attempt == 1) {
          running = true;
          EXPECT_TRUE(tt::eventually([&] { return go.load(); }));
          EXPECT_EQ(destroyed.load(), 0);  // not freed under its own feet
        }
        throw std::runtime_error("x");
      },
      {.retry = retries(3, 1ms)});
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  bus.poll();
  bus.time_source().advance(1ms);
  std::thread poller([&] { bus.poll(); });
  ASSERT_TRUE(tt::eventually([&] { return running.load(); }));
  std::thread remover([&] { s.unsubscribe(); });
  ASSERT_TRUE(tt::eventually([&] { return bus.metrics().subscriptions.empty(); }));
  go = true;
  poller.join();
  remover.join();
  EXPECT_EQ(destroyed.load(), 1);
  bus.time_source().advance(1h);
  bus.poll();
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.failed, 1u);
  EXPECT_EQ(m.total.handler_errors, 2u);
  tt::expect_books_balance(m);
}

// ---- tight bounds ----------------------------------------------------------------------------

// reentry_capacity 0 would leave due deliveries in the timer until stop(drain), with workers
// spinning on a due time they can never act on: refused.
TEST(Review, ReentryCapacityZeroIsRefused) {
  auto cfg = manual_dl();
  cfg.reentry_capacity = 0;
  try {
    vbus bus{cfg};
    FAIL() << "reentry_capacity = 0 was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("reentry_capacity = 0"), std::string::npos) << e.what();
  }
}

// reentry_capacity 1: many deliveries due at once pass the door one at a time, all in one
// poll, earliest first.
TEST(Review, ReentryCapacityOnePassesDueDeliveriesOneAtATime) {
  auto cfg = manual_dl();
  cfg.reentry_capacity = 1;
  vbus bus{cfg};
  std::vector<std::uint32_t> retried;
  auto s = bus.subscribe<tt::Quote>(
      [&](const tt::Quote& q, const tachyon::meta& m) {
        if (m.attempt == 0) throw std::runtime_error("x");
        retried.push_back(q.instrument);
      },
      {.retry = retries(2, 1ms)});
  for (std::uint32_t i = 0; i < 10; ++i) ASSERT_EQ(bus.publish(tt::Quote{i, 0, 0}), result::ok);
  bus.poll();
  bus.time_source().advance(1ms);
  EXPECT_EQ(bus.poll(), 10u);
  EXPECT_EQ(retried, (std::vector<std::uint32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  tt::expect_books_balance(bus.metrics());
}

// timer_capacity 1: a retry that finds the timer full is not scheduled; its delivery goes to
// the dead letters at once; a delayed publish then returns full and leaves its event.
TEST(Review, TimerCapacityOneSendsTheOverflowingRetryToTheDeadLetters) {
  auto cfg = manual_dl();
  cfg.timer_capacity = 1;
  vbus bus{cfg};
  auto s = bus.subscribe<tt::Quote>([](const tt::Quote&) { throw std::runtime_error("x"); },
                                    {.retry = retries(2, 1ms)});
  ASSERT_EQ(bus.publish(tt::Quote{1, 0, 0}), result::ok);
  ASSERT_EQ(bus.publish(tt::Quote{2, 0, 0}), result::ok);
  bus.poll();
  auto m = bus.metrics();
  EXPECT_EQ(m.total.retried, 1u);
  EXPECT_EQ(m.timer_entries, 1u);
  EXPECT_EQ(bus.dead_letter_count(), 1u);
  tt::Note n{"left"};
  EXPECT_EQ(bus.publish(std::move(n), tachyon::publish_options{.not_before = bus.now() + 1ms}),
            result::full);
  EXPECT_EQ(n.text, "left");
  bus.time_source().advance(1ms);
  bus.poll();
  m = bus.metrics();
  EXPECT_EQ(m.total.dead_lettered, 2u);
  tt::expect_books_balance(m);
}

// ---- deadlines and delays from inside handlers ----------------------------------------------

// A handler publishes with a deadline, with not_before, and with both: each follows its rules
// (a delayed event runs when due, an expired one does not run and is dead-lettered if asked).
TEST(Review, DeadlineAndNotBeforeFromInsideHandlers) {
  vbus bus{manual_dl()};
  std::vector<std::uint64_t> ran;
  auto so = bus.subscribe<tt::Order>([&](const tt::Order& o) { ran.push_back(o.id); });
  auto sq = bus.subscribe<tt::Quote>([&](const tt::Quote&) {
    const auto now = bus.now();
    EXPECT_EQ(bus.publish(tt::Order{1, 0}, tachyon::publish_options{.deadline = now + 1ms}),
              result::ok);
    EXPECT_EQ(bus.publish(tt::Order{2, 0}, tachyon::publish_options{.not_before = now + 2ms}),
              result::ok);
    EXPECT_EQ(bus.publish(tt::Order{3, 0}, tachyon::publish_options{.deadline = now + 1ms,
                                                                    .not_before = now + 2ms,
                                                                    .dead_letter_expired = true}),
              result::ok);
    EXPECT_EQ(bus.publish(tt::Order{4, 0}, tachyon::publish_options{.deadline = now + 5ms}),
              result::ok);
  });
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  EXPECT_EQ(bus.run_once(), 1u);  // the quote only
  bus.time_source().advance(2ms);
  bus.poll();
  EXPECT_EQ(ran, (std::vector<std::uint64_t>{4, 2}));
  const auto m = bus.metrics();
  EXPECT_EQ(m.types[order_index].counts.expired, 2u);
  EXPECT_EQ(m.types[order_index].counts.dispatched, 2u);
  EXPECT_EQ(bus.dead_letter_count(), 1u);
  tt::expect_books_balance(m);
}

// ---- workers -------------------------------------------------------------------------------

// Two workers on a virtual clock, retries due in an hour, stop(drain) from outside while the
// workers run: every retry runs to its last attempt without waiting out its delay, and the
// books balance.
TEST(Review, StopDrainWithWorkersRunsEveryPendingRetry) {
  auto cfg = manual_dl(1024);
  cfg.workers = 2;
  cfg.overflow = tachyon::overflow::block;
  tachyon::bus<tt::Events, tachyon::virtual_time_traits> bus{cfg};
  std::atomic<int> calls{0};
  auto s = bus.subscribe<tt::Note>(
      [&](const tt::Note&) {
        calls.fetch_add(1);
        throw std::runtime_error("x");
      },
      {.retry = retries(3, 1h)});
  constexpr int n = 200;
  for (int i = 0; i < n; ++i) ASSERT_EQ(bus.publish(tt::Note{"n"}), result::ok);
  ASSERT_TRUE(tt::eventually([&] { return calls.load() >= n; }));
  finishes("stop(drain) with retries pending", [&] { EXPECT_EQ(bus.stop(), 0u); });
  EXPECT_EQ(calls.load(), 3 * n);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.dead_lettered, std::uint64_t{n});
  tt::expect_books_balance(m);
}

}  // namespace
