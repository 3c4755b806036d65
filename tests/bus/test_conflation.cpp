// Conflation by key (tachyon::conflate_by): the latest event of a key replaces the one waiting in
// its lane. Deterministic in manual mode first (what a handler sees, and the exact accounting on
// every path: replaced, refused, dropped, discarded, retried, beyond the key space), then
// stressed with threads under TSan: per-publisher order per key, the last value of every key
// delivered, and the books exact.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bus/books.hpp"
#include "common.hpp"

namespace {

using namespace std::chrono_literals;
using tachyon::conflate_by;
using tachyon::priority;
using tachyon::result;

/// Inline (16 bytes): a conflated envelope's value travels copied.
struct Tick {
  std::uint32_t key;
  std::uint64_t value;
};
/// Boxed (not trivially copyable), keyed by a string; counts live instances to prove none leak.
struct Doc {
  static inline std::atomic<int> live{0};
  std::string key;
  std::string body;
  Doc(std::string k, std::string b) : key(std::move(k)), body(std::move(b)) { live.fetch_add(1); }
  Doc(const Doc& o) : key(o.key), body(o.body) { live.fetch_add(1); }
  Doc(Doc&& o) noexcept : key(std::move(o.key)), body(std::move(o.body)) { live.fetch_add(1); }
  Doc& operator=(const Doc&) = default;
  Doc& operator=(Doc&&) noexcept = default;
  ~Doc() { live.fetch_sub(1); }
};
/// Two keys only: the third is beyond the key space.
struct Small {
  std::uint32_t key;
  std::uint64_t value;
};
/// Its copy throws while `fail` is set.
struct Fragile {
  static inline bool fail = false;
  std::uint32_t key;
  std::uint64_t value;
  Fragile(std::uint32_t k, std::uint64_t v) : key(k), value(v) {}
  Fragile(const Fragile& o) : key(o.key), value(o.value) {
    if (fail) throw std::runtime_error("copy failed");
  }
  Fragile& operator=(const Fragile&) = default;
};
struct Other {
  int v;
};

using Events =
    tachyon::registry<tachyon::event<Tick, priority::normal, conflate_by<&Tick::key, 64>>,
                      tachyon::event<Doc, priority::normal, conflate_by<&Doc::key, 8>>,
                      tachyon::event<Small, priority::low, conflate_by<&Small::key, 2>>,
                      tachyon::event<Fragile, priority::normal, conflate_by<&Fragile::key>>, Other>;
using bus_t = tachyon::bus<Events>;
using vbus_t = tachyon::bus<Events, tachyon::virtual_time_traits>;

constexpr std::size_t tick_t = Events::index_of<Tick>();
constexpr std::size_t doc_t = Events::index_of<Doc>();
constexpr std::size_t small_t = Events::index_of<Small>();
constexpr std::size_t fragile_t = Events::index_of<Fragile>();
constexpr unsigned normal = 2;

using seen_t = std::vector<std::pair<std::uint32_t, std::uint64_t>>;

/// Subscribes to Tick and records (key, value) in the order handlers ran.
template <class Bus>
tachyon::subscription record_ticks(Bus& bus, seen_t& seen) {
  return bus.template subscribe<Tick>(
      [&seen](const Tick& t) { seen.emplace_back(t.key, t.value); });
}

// ---- what a handler sees ------------------------------------------------------------------------

TEST(Conflation, HandlerSeesOnlyTheLatestEventOfAKey) {
  bus_t bus{tt::manual()};
  seen_t seen;
  auto s = record_ticks(bus, seen);
  for (std::uint64_t v = 1; v <= 5; ++v) ASSERT_EQ(bus.publish(Tick{7, v}), result::ok);
  EXPECT_EQ(bus.poll(), 1u);
  EXPECT_EQ(seen, (seen_t{{7, 5}}));
  const auto m = bus.metrics();
  for (const tachyon::event_counts* c :
       {&m.total, &m.lanes[normal].counts, &m.types[tick_t].counts}) {
    EXPECT_EQ(c->accepted, 5u);
    EXPECT_EQ(c->dispatched, 1u);
    EXPECT_EQ(c->conflated, 4u);
  }
  EXPECT_EQ(m.batched_events, 1u);  // one envelope travelled
  tt::expect_books_balance(m);
}

TEST(Conflation, HandlerGetsTheLatestEventsMetaWithNoMarkOfTheToken) {
  bus_t bus{tt::manual()};
  std::vector<tachyon::meta> metas;
  auto s = bus.subscribe<Tick>([&](const Tick&, const tachyon::meta& m) { metas.push_back(m); });
  for (std::uint64_t c = 11; c <= 13; ++c)
    ASSERT_EQ(bus.publish(Tick{1, c}, tachyon::publish_options{.correlation_id = c}), result::ok);
  // A plain event after them: its sequence is the thread's next, so the latest Tick's is the
  // one before it.
  std::vector<std::uint64_t> other_seq;
  auto so = bus.subscribe<Other>(
      [&](const Other&, const tachyon::meta& m) { other_seq.push_back(m.sequence); });
  ASSERT_EQ(bus.publish(Other{1}), result::ok);
  bus.poll();
  ASSERT_EQ(metas.size(), 1u);
  ASSERT_EQ(other_seq.size(), 1u);
  EXPECT_EQ(metas[0].correlation_id, 13u);
  EXPECT_EQ(metas[0].sequence + tachyon::detail::thread_context::sequence_step, other_seq[0]);
  EXPECT_EQ(metas[0].flags, 0u);
  EXPECT_EQ(metas[0].attempt, 0u);
  EXPECT_EQ(metas[0].lane, priority::normal);
  EXPECT_EQ(metas[0].type_index, tick_t);
}

TEST(Conflation, KeysConflateApartAndKeepTheQueuePositionOfTheirFirstEvent) {
  bus_t bus{tt::manual()};
  seen_t seen;
  auto s = record_ticks(bus, seen);
  for (auto [k, v] : seen_t{{1, 1}, {2, 1}, {1, 2}, {3, 1}, {2, 2}, {1, 3}})
    ASSERT_EQ(bus.publish(Tick{k, v}), result::ok);
  EXPECT_EQ(bus.poll(), 3u);
  EXPECT_EQ(seen, (seen_t{{1, 3}, {2, 2}, {3, 1}}));
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, 6u);
  EXPECT_EQ(m.total.dispatched, 3u);
  EXPECT_EQ(m.total.conflated, 3u);
  tt::expect_books_balance(m);
}

TEST(Conflation, AnEventBehindOneThatIsRunningQueuesAnew) {
  bus_t bus{tt::manual()};
  seen_t seen;
  auto s = bus.subscribe<Tick>([&](const Tick& t) {
    seen.emplace_back(t.key, t.value);
    if (t.value == 1) {
      EXPECT_EQ(bus.publish(Tick{5, 2}), result::ok);  // its slot is empty now
    }
  });
  ASSERT_EQ(bus.publish(Tick{5, 1}), result::ok);
  EXPECT_EQ(bus.poll(), 2u);
  EXPECT_EQ(seen, (seen_t{{5, 1}, {5, 2}}));
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, 2u);
  EXPECT_EQ(m.total.dispatched, 2u);
  EXPECT_EQ(m.total.conflated, 0u);
  tt::expect_books_balance(m);
}

TEST(Conflation, ADequeuedEventWhoseHandlersHaveNotStartedIsStillReplaced) {
  bus_t bus{tt::manual()};
  seen_t seen;
  auto s = record_ticks(bus, seen);
  // Other and the Tick's token are dequeued in one batch; Other's handler runs first and
  // publishes a newer Tick, which the token (not yet opened) delivers instead.
  auto so = bus.subscribe<Other>([&](const Other&) {
    EXPECT_EQ(bus.publish(Tick{9, 2}), result::ok);
  });
  ASSERT_EQ(bus.publish(Other{1}), result::ok);
  ASSERT_EQ(bus.publish(Tick{9, 1}), result::ok);
  EXPECT_EQ(bus.poll(), 2u);
  EXPECT_EQ(seen, (seen_t{{9, 2}}));
  const auto m = bus.metrics();
  EXPECT_EQ(m.types[tick_t].counts.accepted, 2u);
  EXPECT_EQ(m.types[tick_t].counts.dispatched, 1u);
  EXPECT_EQ(m.types[tick_t].counts.conflated, 1u);
  tt::expect_books_balance(m);
}

TEST(Conflation, EachLaneConflatesItsOwnEventsOfAKey) {
  bus_t bus{tt::manual()};
  std::vector<std::pair<std::uint64_t, priority>> seen;
  auto s = bus.subscribe<Tick>(
      [&](const Tick& t, const tachyon::meta& m) { seen.emplace_back(t.value, m.lane); });
  ASSERT_EQ(bus.publish(Tick{1, 1}), result::ok);
  ASSERT_EQ(bus.publish(Tick{1, 2}, priority::high), result::ok);
  ASSERT_EQ(bus.publish(Tick{1, 3}), result::ok);
  EXPECT_EQ(bus.poll(), 2u);
  EXPECT_EQ(seen, (std::vector<std::pair<std::uint64_t, priority>>{{2, priority::high},
                                                                   {3, priority::normal}}));
  const auto m = bus.metrics();
  EXPECT_EQ(m.lanes[1].counts.accepted, 1u);
  EXPECT_EQ(m.lanes[1].counts.dispatched, 1u);
  EXPECT_EQ(m.lanes[normal].counts.accepted, 2u);
  EXPECT_EQ(m.lanes[normal].counts.dispatched, 1u);
  EXPECT_EQ(m.lanes[normal].counts.conflated, 1u);
  tt::expect_books_balance(m);
}

TEST(Conflation, BoxedEventsConflateAndNoneLeaks) {
  {
    bus_t bus{tt::manual()};
    std::vector<std::string> seen;
    auto s = bus.subscribe<Doc>([&](const Doc& d) { seen.push_back(d.key + "=" + d.body); });
    for (const char* b : {"1", "2", "3"}) ASSERT_EQ(bus.publish(Doc{"a", b}), result::ok);
    const Doc lvalue{"b", "x"};
    ASSERT_EQ(bus.publish(lvalue), result::ok);  // copied
    EXPECT_EQ(lvalue.body, "x");
    ASSERT_EQ(bus.publish(Doc{"b", "y"}), result::ok);
    EXPECT_EQ(bus.poll(), 2u);
    EXPECT_EQ(seen, (std::vector<std::string>{"a=3", "b=y"}));
    const auto m = bus.metrics();
    EXPECT_EQ(m.types[doc_t].counts.accepted, 5u);
    EXPECT_EQ(m.types[doc_t].counts.conflated, 3u);
    tt::expect_books_balance(m);
  }
  EXPECT_EQ(Doc::live.load(), 0);
}

// ---- the key space ------------------------------------------------------------------------------

TEST(Conflation, BeyondItsKeysAnEventIsQueuedUnconflatedAndCounted) {
  bus_t bus{tt::manual()};
  seen_t seen;
  auto s = bus.subscribe<Small>([&](const Small& e) { seen.emplace_back(e.key, e.value); });
  // Keys = 2: keys 1 and 2 take the slots; key 3 finds none and queues as a plain event.
  for (auto [k, v] : seen_t{{1, 1}, {2, 1}, {3, 1}, {3, 2}, {3, 3}, {1, 2}})
    ASSERT_EQ(bus.publish(Small{k, v}), result::ok);
  EXPECT_EQ(bus.poll(), 5u);
  EXPECT_EQ(seen, (seen_t{{1, 2}, {2, 1}, {3, 1}, {3, 2}, {3, 3}}));
  const auto m = bus.metrics();
  EXPECT_EQ(m.types[small_t].counts.accepted, 6u);
  EXPECT_EQ(m.types[small_t].counts.dispatched, 5u);
  EXPECT_EQ(m.types[small_t].counts.conflated, 1u);
  EXPECT_EQ(m.types[small_t].unconflated, 3u);
  EXPECT_EQ(m.types[tick_t].unconflated, 0u);
  const std::string name(bus_t::type_name<Small>());
  EXPECT_NE(m.to_json().find("{\"name\":\"" + name + "\""), std::string::npos) << m.to_json();
  EXPECT_NE(m.to_json().find(",\"unconflated\":3}"), std::string::npos) << m.to_json();
  EXPECT_NE(m.to_prometheus().find("tachyon_type_unconflated_total{type=\"" + name + "\"} 3\n"),
            std::string::npos)
      << m.to_prometheus();
  tt::expect_books_balance(m);
}

TEST(Conflation, AKeyInTwoLanesTakesTwoOfTheKeys) {
  bus_t bus{tt::manual()};
  seen_t seen;
  auto s = bus.subscribe<Small>([&](const Small& e) { seen.emplace_back(e.key, e.value); });
  ASSERT_EQ(bus.publish(Small{1, 1}), result::ok);                    // low: slot 1
  ASSERT_EQ(bus.publish(Small{1, 2}, priority::normal), result::ok);  // normal: slot 2
  ASSERT_EQ(bus.publish(Small{2, 1}), result::ok);                    // no slot left
  ASSERT_EQ(bus.publish(Small{2, 2}), result::ok);
  ASSERT_EQ(bus.publish(Small{1, 3}), result::ok);  // replaces (1, 1) in low
  EXPECT_EQ(bus.poll(), 4u);
  EXPECT_EQ(seen, (seen_t{{1, 2}, {1, 3}, {2, 1}, {2, 2}}));
  const auto m = bus.metrics();
  EXPECT_EQ(m.types[small_t].unconflated, 2u);
  EXPECT_EQ(m.types[small_t].counts.conflated, 1u);
  tt::expect_books_balance(m);
}

TEST(Conflation, KeysMustBeHashableAndComparable) {
  struct no_hash {
    int v;
    bool operator==(const no_hash&) const = default;
  };
  struct no_equality {
    int v;
  };
  static_assert(tachyon::detail::conflation_key<std::uint32_t>);
  static_assert(tachyon::detail::conflation_key<std::string>);
  static_assert(!tachyon::detail::conflation_key<no_hash>);
  static_assert(!tachyon::detail::conflation_key<no_equality>);
  SUCCEED();
}

// ---- room, refusals, drops ----------------------------------------------------------------------

TEST(Conflation, AReplacementNeedsNoRoomInTheLane) {
  bus_t bus{tt::manual(1)};
  seen_t seen;
  auto s = record_ticks(bus, seen);
  ASSERT_EQ(bus.publish(Tick{1, 1}), result::ok);  // the token takes the lane's one place
  for (std::uint64_t v = 2; v <= 10; ++v) ASSERT_EQ(bus.publish(Tick{1, v}), result::ok);
  EXPECT_EQ(bus.publish(Tick{2, 1}), result::full);  // a second key needs a token: no room
  EXPECT_EQ(bus.poll(), 1u);
  EXPECT_EQ(seen, (seen_t{{1, 10}}));
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, 10u);
  EXPECT_EQ(m.total.dispatched, 1u);
  EXPECT_EQ(m.total.conflated, 9u);
  EXPECT_EQ(m.total.rejected_full, 1u);
  tt::expect_books_balance(m);
}

TEST(Conflation, ARefusedRvalueIsLeftUntouched) {
  bus_t bus{tt::manual(1)};
  ASSERT_EQ(bus.publish(Doc{"a", "1"}), result::ok);
  Doc d{"b", "keep me"};
  EXPECT_EQ(bus.publish(std::move(d)), result::full);
  EXPECT_EQ(d.body, "keep me");
  EXPECT_EQ(d.key, "b");
  bus.stop();
  Doc e{"a", "after stop"};
  EXPECT_EQ(bus.publish(std::move(e)), result::stopped);
  EXPECT_EQ(e.body, "after stop");
}

TEST(Conflation, UnderOverflowDropANewKeyIsDroppedButAReplacementIsTaken) {
  auto cfg = tt::manual(1);
  cfg.overflow = tachyon::overflow::drop;
  bus_t bus{cfg};
  seen_t seen;
  auto s = record_ticks(bus, seen);
  ASSERT_EQ(bus.publish(Tick{1, 1}), result::ok);
  EXPECT_EQ(bus.publish(Tick{2, 1}), result::dropped);
  ASSERT_EQ(bus.publish(Tick{1, 2}), result::ok);
  bus.poll();
  EXPECT_EQ(seen, (seen_t{{1, 2}}));
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, 3u);
  EXPECT_EQ(m.total.dropped, 1u);
  EXPECT_EQ(m.total.conflated, 1u);
  EXPECT_EQ(m.total.dispatched, 1u);
  tt::expect_books_balance(m);
}

TEST(Conflation, AThrowingCopyCountsNothingAndGivesTheRoomBack) {
  bus_t bus{tt::manual(1)};
  std::vector<std::uint64_t> seen;
  auto s = bus.subscribe<Fragile>([&](const Fragile& f) { seen.push_back(f.value); });
  const Fragile a{1, 1}, b{1, 2}, c{2, 1};
  Fragile::fail = true;
  EXPECT_THROW((void)bus.publish(a), std::runtime_error);  // token path: after admitting
  Fragile::fail = false;
  ASSERT_EQ(bus.publish(a), result::ok);  // the room came back
  Fragile::fail = true;
  EXPECT_THROW((void)bus.publish(b), std::runtime_error);  // replacement path
  Fragile::fail = false;
  EXPECT_EQ(bus.publish(c), result::full);
  bus.poll();
  EXPECT_EQ(seen, (std::vector<std::uint64_t>{1}));
  const auto m = bus.metrics();
  EXPECT_EQ(m.types[fragile_t].counts.accepted, 1u);
  EXPECT_EQ(m.types[fragile_t].counts.dispatched, 1u);
  EXPECT_EQ(m.types[fragile_t].counts.conflated, 0u);
  tt::expect_books_balance(m);
}

// ---- stop ---------------------------------------------------------------------------------------

TEST(Conflation, StopDiscardSettlesEachKeysLatestAsDiscarded) {
  bus_t bus{tt::manual()};
  int ran = 0;
  auto s = bus.subscribe<Tick>([&](const Tick&) { ++ran; });
  for (std::uint32_t k = 1; k <= 3; ++k)
    for (std::uint64_t v = 1; v <= 4; ++v) ASSERT_EQ(bus.publish(Tick{k, v}), result::ok);
  EXPECT_EQ(bus.stop(tachyon::stop_mode::discard), 3u);
  EXPECT_EQ(ran, 0);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, 12u);
  EXPECT_EQ(m.total.conflated, 9u);
  EXPECT_EQ(m.total.discarded, 3u);
  EXPECT_EQ(m.total.dispatched, 0u);
  tt::expect_books_balance(m);
  EXPECT_EQ(bus.publish(Tick{1, 5}), result::stopped);  // its slot is empty: no token to ride
}

TEST(Conflation, StopDiscardFreesBoxedEvents) {
  {
    bus_t bus{tt::manual(1024, 1)};
    std::vector<std::string> seen;
    auto s = bus.subscribe<Doc>([&](const Doc& d) { seen.push_back(d.body); });
    for (const char* b : {"1", "2", "3"}) ASSERT_EQ(bus.publish(Doc{"a", b}), result::ok);
    for (const char* b : {"4", "5"}) ASSERT_EQ(bus.publish(Doc{"b", b}), result::ok);
    EXPECT_EQ(bus.run_once(), 1u);
    EXPECT_EQ(bus.stop(tachyon::stop_mode::discard), 1u);
    EXPECT_EQ(seen, (std::vector<std::string>{"3"}));
    const auto m = bus.metrics();
    EXPECT_EQ(m.total.accepted, 5u);
    EXPECT_EQ(m.total.dispatched, 1u);
    EXPECT_EQ(m.total.conflated, 3u);
    EXPECT_EQ(m.total.discarded, 1u);
    tt::expect_books_balance(m);
    EXPECT_EQ(Doc::live.load(), 0);
  }
  EXPECT_EQ(Doc::live.load(), 0);
}

TEST(Conflation, StopDrainDeliversTheLatestOfEveryKey) {
  bus_t bus{tt::manual()};
  seen_t seen;
  auto s = record_ticks(bus, seen);
  for (std::uint64_t v = 1; v <= 3; ++v)
    for (std::uint32_t k = 1; k <= 2; ++k) ASSERT_EQ(bus.publish(Tick{k, v}), result::ok);
  EXPECT_EQ(bus.stop(), 0u);
  EXPECT_EQ(seen, (seen_t{{1, 3}, {2, 3}}));
  tt::expect_books_balance(bus.metrics());
}

TEST(Conflation, AReplacementIsRefusedOnceStopHasBegun) {
  bus_t bus{tt::manual()};
  seen_t seen;
  auto s = record_ticks(bus, seen);
  // Other and Tick(4, 1) are in one batch; Other's handler begins the stop (it cannot finish
  // it from inside a handler) and then publishes a replacement for the queued Tick.
  auto so = bus.subscribe<Other>([&](const Other&) {
    bus.stop();
    EXPECT_EQ(bus.publish(Tick{4, 2}), result::stopped);
    EXPECT_EQ(bus.publish(Tick{5, 1}), result::stopped);
  });
  ASSERT_EQ(bus.publish(Other{1}), result::ok);
  ASSERT_EQ(bus.publish(Tick{4, 1}), result::ok);
  EXPECT_EQ(bus.poll(), 2u);
  EXPECT_EQ(seen, (seen_t{{4, 1}}));
  const auto m = bus.metrics();
  EXPECT_EQ(m.types[tick_t].counts.rejected_stopped, 2u);
  EXPECT_EQ(m.types[tick_t].counts.conflated, 0u);
  tt::expect_books_balance(m);
}

// ---- with the rest of the bus -------------------------------------------------------------------

TEST(Conflation, AFailedDeliveryIsRetriedWithTheValueItRan) {
  vbus_t bus{tt::manual_dl()};
  seen_t seen;
  int calls = 0;
  auto s = bus.subscribe<Tick>(
      [&](const Tick& t) {
        seen.emplace_back(t.key, t.value);
        if (++calls == 1) throw std::runtime_error("down");
      },
      {.retry = tt::retries(2, 1ms)});
  ASSERT_EQ(bus.publish(Tick{1, 1}), result::ok);
  ASSERT_EQ(bus.publish(Tick{1, 2}), result::ok);
  EXPECT_EQ(bus.poll(), 1u);
  // A retry is a delivery of the event that ran, not of the slot: a newer event of the key
  // queues anew meanwhile.
  ASSERT_EQ(bus.publish(Tick{1, 3}), result::ok);
  bus.time_source().advance(1ms);
  bus.poll();
  EXPECT_EQ(seen, (seen_t{{1, 2}, {1, 3}, {1, 2}}));
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, 3u);
  EXPECT_EQ(m.total.conflated, 1u);
  EXPECT_EQ(m.total.dispatched, 2u);
  EXPECT_EQ(m.total.retried, 1u);
  EXPECT_EQ(m.total.handler_errors, 1u);
  tt::expect_books_balance(m);
}

TEST(Conflation, AFailureWithoutRetryIsCountedFailed) {
  bus_t bus{tt::manual()};
  auto s = bus.subscribe<Doc>([&](const Doc&) { throw std::runtime_error("down"); });
  ASSERT_EQ(bus.publish(Doc{"a", "1"}), result::ok);
  ASSERT_EQ(bus.publish(Doc{"a", "2"}), result::ok);
  bus.poll();
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.failed, 1u);
  EXPECT_EQ(m.total.conflated, 1u);
  tt::expect_books_balance(m);
}

TEST(Conflation, TimedPublishesAreNotConflated) {
  vbus_t bus{tt::manual()};
  seen_t seen;
  auto s = record_ticks(bus, seen);
  const tachyon::publish_options with_deadline{.deadline = bus.now() + 1h};
  const tachyon::publish_options delayed{.not_before = bus.now() + 1ms};
  for (std::uint64_t v = 1; v <= 2; ++v)
    ASSERT_EQ(bus.publish(Tick{1, v}, with_deadline), result::ok);
  for (std::uint64_t v = 3; v <= 4; ++v) ASSERT_EQ(bus.publish(Tick{1, v}, delayed), result::ok);
  bus.poll();
  bus.time_source().advance(1ms);
  bus.poll();
  EXPECT_EQ(seen, (seen_t{{1, 1}, {1, 2}, {1, 3}, {1, 4}}));
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.conflated, 0u);
  EXPECT_EQ(m.total.dispatched, 4u);
  tt::expect_books_balance(m);
}

TEST(Conflation, PublishBatchConflatesEachEvent) {
  bus_t bus{tt::manual()};
  seen_t seen;
  auto s = record_ticks(bus, seen);
  std::vector<Tick> evs;
  for (std::uint64_t v = 0; v < 10; ++v) evs.push_back(Tick{1, v});
  for (std::uint64_t v = 0; v < 5; ++v) evs.push_back(Tick{2, v});
  const auto r = bus.publish_batch(std::span<const Tick>(evs));
  EXPECT_EQ(r.queued, 15u);
  EXPECT_EQ(r.status, result::ok);
  EXPECT_EQ(bus.poll(), 2u);
  EXPECT_EQ(seen, (seen_t{{1, 9}, {2, 4}}));
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, 15u);
  EXPECT_EQ(m.total.conflated, 13u);
  tt::expect_books_balance(m);
}

TEST(Conflation, PublishBatchStopsAtTheFirstRefusal) {
  bus_t bus{tt::manual(1)};
  const std::vector<Tick> evs{{1, 1}, {1, 2}, {2, 1}, {1, 3}};
  const auto r = bus.publish_batch(std::span<const Tick>(evs));
  EXPECT_EQ(r.queued, 2u);
  EXPECT_EQ(r.status, result::full);
  EXPECT_EQ(bus.poll(), 1u);
  tt::expect_books_balance(bus.metrics());
}

TEST(Conflation, PublishBatchReportsWhatWasQueuedWhenACopyThrows) {
  bus_t bus{tt::manual()};
  const std::vector<Fragile> evs{{1, 1}, {2, 1}};
  Fragile::fail = true;
  try {
    (void)bus.publish_batch(std::span<const Fragile>(evs));
    ADD_FAILURE() << "publish_batch did not throw";
  } catch (const tachyon::publish_batch_error& e) {
    EXPECT_EQ(e.queued, 0u);
  }
  Fragile::fail = false;
  tt::expect_books_balance(bus.metrics());
}

TEST(Conflation, DispatchRunsInlineAndIsNotConflated) {
  bus_t bus{tt::manual()};
  seen_t seen;
  auto s = record_ticks(bus, seen);
  bus.dispatch(Tick{1, 1});
  bus.dispatch(Tick{1, 2});
  EXPECT_EQ(seen, (seen_t{{1, 1}, {1, 2}}));
  EXPECT_EQ(bus.metrics().total.dispatched, 2u);
}

// ---- stress (TSan) ------------------------------------------------------------------------------

/// Tick with its publisher, for the stress tests: per (key, publisher) the values 1..rounds.
struct Mark {
  std::uint32_t key;
  std::uint32_t publisher;
  std::uint64_t value;
};
constexpr std::uint32_t mark_keys = 32;  // the Keys of Mark's conflate_by
using MarkEvents =
    tachyon::registry<tachyon::event<Mark, priority::normal, conflate_by<&Mark::key, mark_keys>>>;
using mark_bus = tachyon::bus<MarkEvents>;

constexpr std::uint32_t publishers = 3;

/// A flood's shape. `hot`: a few keys, so that nearly every publish races with the others on
/// a slot that holds a box. `crowded`: more keys than the lane has room for tokens, so that
/// new tokens wait for room (overflow::block) while drains empty slots and replacements and
/// new tokens race for them. `overflowing`: more keys than Mark's Keys, so that publishers race
/// to claim the last slots, and the keys left without one are queued unconflated.
struct shape {
  const char* name;
  std::uint32_t keys;
  std::uint32_t lane_capacity;
  std::uint64_t rounds;
};
constexpr shape hot{"hot", 4, 16, tt::sanitized() ? 3000 : 30000};
constexpr shape crowded{"crowded", 24, 8, tt::sanitized() ? 200 : 1000};
constexpr shape overflowing{"overflowing", mark_keys + 8, 64, tt::sanitized() ? 200 : 1000};

/// Events of the keys that found no slot: exactly all the events of keys - Keys keys (a key
/// either has a slot from its first sight on or never gets one).
std::uint64_t unconflated_in(const shape& f) {
  return f.keys <= mark_keys ? 0 : std::uint64_t{f.keys - mark_keys} * publishers * f.rounds;
}

tachyon::config flood(const shape& f, std::uint32_t workers) {
  return {.workers = workers,
          .lane_capacity = f.lane_capacity,
          .batch = 8,
          .wait = tachyon::wait_strategy::spin_then_park,
          .overflow = tachyon::overflow::block,
          .producers = publishers + 1};
}

/// Each publisher publishes rounds x keys events, every key's values increasing.
void publish_all(mark_bus& bus, const shape& f, std::atomic<std::uint64_t>& refused) {
  std::vector<std::thread> threads;
  for (std::uint32_t p = 0; p < publishers; ++p)
    threads.emplace_back([&, p] {
      for (std::uint64_t v = 1; v <= f.rounds; ++v)
        for (std::uint32_t k = 0; k < f.keys; ++k)
          if (bus.publish(Mark{k, p, v}) != result::ok) refused.fetch_add(1);
    });
  for (auto& t : threads) t.join();
}

class ConflationStress : public ::testing::TestWithParam<shape> {};

TEST_P(ConflationStress, OneWorkerSeesEachPublishersValuesOfAKeyInOrderAndTheLastOfEveryKey) {
  // With one worker, handlers run in the order tokens are opened, which is the order the
  // slot's boxes were installed: a publisher's values of a key never go backwards, and the
  // last event of each key (every publisher's last value is `rounds`) is the last one seen.
  const shape f = GetParam();
  mark_bus bus{flood(f, 1)};
  std::vector<std::uint64_t> last(std::size_t{f.keys} * publishers, 0);
  std::vector<std::uint64_t> last_of_key(f.keys, 0);
  std::uint64_t backwards = 0, ran = 0;
  auto s = bus.subscribe<Mark>([&](const Mark& m) {  // one worker: no two calls overlap
    std::uint64_t& mine = last[std::size_t{m.key} * publishers + m.publisher];
    backwards += m.value <= mine;
    mine = m.value;
    last_of_key[m.key] = m.value;
    ++ran;
  });
  std::atomic<std::uint64_t> refused{0};
  publish_all(bus, f, refused);
  EXPECT_EQ(bus.stop(), 0u);  // joins the worker: its writes above are visible now
  EXPECT_EQ(refused.load(), 0u);
  EXPECT_EQ(backwards, 0u);
  for (std::uint32_t k = 0; k < f.keys; ++k) EXPECT_EQ(last_of_key[k], f.rounds) << "key " << k;
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, std::uint64_t{publishers} * f.keys * f.rounds);
  EXPECT_EQ(m.total.dispatched, ran);
  EXPECT_EQ(m.total.accepted, m.total.dispatched + m.total.conflated);
  EXPECT_GT(m.total.conflated, 0u);
  EXPECT_EQ(m.types[0].unconflated, unconflated_in(f));
  tt::expect_books_balance(m);
}

TEST_P(ConflationStress, ManyWorkersDeliverEachEventAtMostOnceAndTheLastOfEveryKey) {
  // With several workers two handlers of one key may run at once, so their order says
  // nothing; what holds is that each event is delivered at most once, that the last event of
  // each key (a value `rounds`, from whichever publisher installed last) is delivered, and the
  // books.
  const shape f = GetParam();
  mark_bus bus{flood(f, 3)};
  const std::size_t cells = std::size_t{f.keys} * publishers * (f.rounds + 1);
  auto delivered = std::make_unique<std::atomic<std::uint8_t>[]>(cells);
  auto cell = [&](const Mark& m) {
    return (std::size_t{m.key} * publishers + m.publisher) * (f.rounds + 1) + m.value;
  };
  std::atomic<std::uint64_t> twice{0}, ran{0};
  auto s = bus.subscribe<Mark>([&](const Mark& m) {
    if (delivered[cell(m)].exchange(1, std::memory_order_relaxed) != 0) twice.fetch_add(1);
    ran.fetch_add(1, std::memory_order_relaxed);
  });
  std::atomic<std::uint64_t> refused{0};
  publish_all(bus, f, refused);
  EXPECT_EQ(bus.stop(), 0u);
  EXPECT_EQ(refused.load(), 0u);
  EXPECT_EQ(twice.load(), 0u);
  for (std::uint32_t k = 0; k < f.keys; ++k) {
    bool last = false;
    for (std::uint32_t p = 0; p < publishers; ++p)
      last = last || delivered[cell(Mark{k, p, f.rounds})].load() != 0;
    EXPECT_TRUE(last) << "key " << k << ": no publisher's last value was delivered";
  }
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, std::uint64_t{publishers} * f.keys * f.rounds);
  EXPECT_EQ(m.total.dispatched, ran.load());
  EXPECT_EQ(m.total.accepted, m.total.dispatched + m.total.conflated);
  EXPECT_EQ(m.types[0].unconflated, unconflated_in(f));
  tt::expect_books_balance(m);
}

TEST_P(ConflationStress, StopDiscardInTheMiddleOfAFloodBalancesTheBooks) {
  const shape f = GetParam();
  mark_bus bus{flood(f, 2)};
  std::atomic<std::uint64_t> ran{0};
  auto s = bus.subscribe<Mark>([&](const Mark&) { ran.fetch_add(1, std::memory_order_relaxed); });
  std::atomic<std::uint64_t> ok{0}, stopped{0}, other{0};
  std::vector<std::thread> threads;
  for (std::uint32_t p = 0; p < publishers; ++p)
    threads.emplace_back([&, p] {
      for (std::uint64_t v = 1;; ++v) {
        const result r = bus.publish(Mark{static_cast<std::uint32_t>(v % f.keys), p, v});
        if (r == result::ok) {
          ok.fetch_add(1);
        } else if (r == result::stopped) {
          stopped.fetch_add(1);
          return;
        } else {
          other.fetch_add(1);
        }
      }
    });
  ASSERT_TRUE(tt::eventually([&] { return ran.load() >= 500 && ok.load() >= 20000; }));
  const std::uint64_t discarded = bus.stop(tachyon::stop_mode::discard);
  for (auto& t : threads) t.join();
  EXPECT_EQ(other.load(), 0u);
  EXPECT_EQ(stopped.load(), publishers);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, ok.load());
  EXPECT_EQ(m.total.rejected_stopped, stopped.load());
  EXPECT_EQ(m.total.discarded, discarded);
  EXPECT_EQ(m.total.dispatched, ran.load());
  EXPECT_EQ(m.total.accepted, m.total.dispatched + m.total.conflated + m.total.discarded);
  tt::expect_books_balance(m);
}

INSTANTIATE_TEST_SUITE_P(Floods, ConflationStress, ::testing::Values(hot, crowded, overflowing),
                         [](const auto& p) { return std::string(p.param.name); });

}  // namespace
