// Publishing, lanes, ordering and backpressure, driven deterministically in manual mode.
#include <gtest/gtest.h>

#include <set>
#include <stdexcept>
#include <vector>

#include "common.hpp"

using tachyon::overflow;
using tachyon::priority;
using tachyon::result;
using namespace std::chrono_literals;

namespace {

/// Records the order handlers saw events in, as "H7", "O1", "Q3".
struct recorder {
  std::vector<std::string> seen;
  std::vector<tachyon::subscription> subs;

  explicit recorder(tachyon::bus<tt::Events>& bus) {
    subs.push_back(bus.subscribe<tt::Halt>(
        [this](const tt::Halt& h) { seen.push_back("H" + std::to_string(h.instrument)); }));
    subs.push_back(bus.subscribe<tt::Order>(
        [this](const tt::Order& o) { seen.push_back("O" + std::to_string(o.id)); }));
    subs.push_back(bus.subscribe<tt::Quote>(
        [this](const tt::Quote& q) { seen.push_back("Q" + std::to_string(q.instrument)); }));
  }
};

using strings = std::vector<std::string>;

}  // namespace

TEST(Publish, NothingRunsInManualModeUntilPolled) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  recorder rec(bus);
  ASSERT_EQ(bus.publish(tt::Quote{1, 0, 0}), result::ok);
  EXPECT_TRUE(rec.seen.empty());
  EXPECT_EQ(bus.poll(), 1u);
  EXPECT_EQ(rec.seen, strings{"Q1"});
}

TEST(Publish, MostUrgentLaneRunsFirst) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  recorder rec(bus);
  ASSERT_EQ(bus.publish(tt::Quote{1, 0, 0}), result::ok);  // normal
  ASSERT_EQ(bus.publish(tt::Order{2, 1}), result::ok);     // high
  ASSERT_EQ(bus.publish(tt::Halt{3}), result::ok);         // critical
  ASSERT_EQ(bus.publish(tt::Quote{4, 0, 0}, priority::low), result::ok);
  EXPECT_EQ(bus.poll(), 4u);
  EXPECT_EQ(rec.seen, (strings{"H3", "O2", "Q1", "Q4"}));
}

TEST(Publish, PerCallPriorityOverridesTheTypeDefault) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  recorder rec(bus);
  ASSERT_EQ(bus.publish(tt::Halt{1}, priority::low), result::ok);
  ASSERT_EQ(bus.publish(tt::Quote{2, 0, 0}, priority::critical), result::ok);
  bus.poll();
  EXPECT_EQ(rec.seen, (strings{"Q2", "H1"}));
}

TEST(Publish, OneProducerIsFifoWithinALane) {
  tachyon::bus<tt::Events> bus{tt::manual(1024, 7)};
  recorder rec(bus);
  strings expected;
  for (std::uint32_t i = 0; i < 100; ++i) {
    ASSERT_EQ(bus.publish(tt::Quote{i, 0, 0}), result::ok);
    expected.push_back("Q" + std::to_string(i));
  }
  EXPECT_EQ(bus.poll(), 100u);
  EXPECT_EQ(rec.seen, expected);
}

TEST(Publish, CriticalEventWaitsAtMostOneBatch) {
  tachyon::bus<tt::Events> bus{tt::manual(1024, 4)};
  recorder rec(bus);
  for (std::uint32_t i = 0; i < 10; ++i) ASSERT_EQ(bus.publish(tt::Quote{i, 0, 0}), result::ok);
  EXPECT_EQ(bus.run_once(), 4u);  // Q0..Q3
  ASSERT_EQ(bus.publish(tt::Halt{99}), result::ok);
  EXPECT_EQ(bus.run_once(), 1u);  // the critical lane is looked at before the next batch
  EXPECT_EQ(rec.seen, (strings{"Q0", "Q1", "Q2", "Q3", "H99"}));
  EXPECT_EQ(bus.poll(), 6u);
}

TEST(Publish, PollStopsAtMaxEvents) {
  tachyon::bus<tt::Events> bus{tt::manual(1024, 64)};
  recorder rec(bus);
  for (std::uint32_t i = 0; i < 10; ++i) ASSERT_EQ(bus.publish(tt::Quote{i, 0, 0}), result::ok);
  EXPECT_EQ(bus.poll(3), 3u);
  EXPECT_EQ(bus.poll(), 7u);
}

TEST(Publish, HandlersReceiveTheEnvelopeHeader) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  tachyon::meta got{};
  auto s = bus.subscribe<tt::Order>([&](const tt::Order&, const tachyon::meta& m) { got = m; });
  const auto before = tachyon::clock::now();
  ASSERT_EQ(bus.publish(tt::Order{5, 1}, {.lane = priority::low, .correlation_id = 42}),
            result::ok);
  bus.poll();
  EXPECT_EQ(got.correlation_id, 42u);
  EXPECT_EQ(got.lane, priority::low);
  EXPECT_EQ(got.type_index, tt::Events::index_of<tt::Order>());
  EXPECT_GE(got.publish_ticks, before);
  EXPECT_LE(got.publish_ticks, tachyon::clock::now());
}

TEST(Publish, WithoutTimestampsPublishTicksIsZero) {
  auto cfg = tt::manual();
  cfg.timestamps = false;
  tachyon::bus<tt::Events> bus{cfg};
  std::vector<std::uint64_t> ticks;
  auto s = bus.subscribe<tt::Quote>(
      [&](const tt::Quote&, const tachyon::meta& m) { ticks.push_back(m.publish_ticks); });
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  const std::vector<tt::Quote> two(2);
  ASSERT_EQ(bus.publish_batch(std::span<const tt::Quote>(two)).queued, 2u);
  EXPECT_EQ(bus.poll(), 3u);
  EXPECT_EQ(ticks, (std::vector<std::uint64_t>{0, 0, 0}));
}

TEST(Publish, SequencesIncreasePerProducer) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  std::vector<std::uint64_t> seqs;
  auto s = bus.subscribe<tt::Quote>(
      [&](const tt::Quote&, const tachyon::meta& m) { seqs.push_back(m.sequence); });
  for (int i = 0; i < 5; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  bus.poll();
  ASSERT_EQ(seqs.size(), 5u);
  // The thread's context id in the low 16 bits, its count above them.
  for (std::size_t i = 1; i < seqs.size(); ++i) {
    EXPECT_EQ(seqs[i] & 0xffff, seqs[0] & 0xffff);
    EXPECT_EQ(seqs[i] >> 16, (seqs[i - 1] >> 16) + 1);
  }
}

TEST(PublishBatch, StampsEachEventLikePublishDoes) {
  // publish_batch builds inline events in the queue's slots: each gets the next sequence of
  // the thread, the type's lane, its type, and the same publish stamp as the rest of its chunk.
  tachyon::bus<tt::Events> bus{tt::manual()};
  std::vector<tachyon::meta> seen;
  std::vector<std::uint32_t> instruments;
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote& q, const tachyon::meta& m) {
    seen.push_back(m);
    instruments.push_back(q.instrument);
  });
  ASSERT_EQ(bus.publish(tt::Quote{100, 0, 0}), result::ok);
  std::vector<tt::Quote> batch;
  for (std::uint32_t i = 0; i < 130; ++i) batch.push_back(tt::Quote{i, 1.0, 2.0});
  ASSERT_EQ(bus.publish_batch(std::span<const tt::Quote>(batch)).queued, 130u);
  ASSERT_EQ(bus.publish(tt::Quote{200, 0, 0}), result::ok);
  ASSERT_EQ(bus.poll(), 132u);
  ASSERT_EQ(seen.size(), 132u);
  for (std::size_t i = 1; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].sequence & 0xffff, seen[0].sequence & 0xffff);
    EXPECT_EQ(seen[i].sequence >> 16, (seen[i - 1].sequence >> 16) + 1) << i;
    EXPECT_EQ(seen[i].lane, priority::normal);
    EXPECT_EQ(seen[i].type_index, seen[0].type_index);
    EXPECT_EQ(seen[i].correlation_id, 0u);
    EXPECT_EQ(seen[i].attempt, 0u);
    EXPECT_EQ(seen[i].flags, 0u);
  }
  for (std::uint32_t i = 0; i < 130; ++i) EXPECT_EQ(instruments[i + 1], i);
  // One clock read per chunk: 130 events in at most three chunks (the 63 credits left from the
  // first publish, then 64, then 3), never going back.
  std::set<std::uint64_t> stamps;
  for (std::size_t i = 1; i <= 130; ++i) {
    EXPECT_NE(seen[i].publish_ticks, 0u);
    EXPECT_GE(seen[i].publish_ticks, seen[i - 1].publish_ticks);
    stamps.insert(seen[i].publish_ticks);
  }
  EXPECT_LE(stamps.size(), 3u);
}

TEST(Publish, RejectsAPriorityOutsideTheFourLanes) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  try {
    (void)bus.publish(tt::Quote{}, static_cast<priority>(7));
    FAIL() << "accepted priority 7";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(),
                 "tachyon::publish: priority 7 is not a lane; allowed: critical (0), high (1), "
                 "normal (2), low (3)");
  }
}

TEST(Publish, BoxedEventsAreDeliveredAndFreed) {
  ASSERT_EQ(tt::Note::live.load(), 0);
  {
    tachyon::bus<tt::Events> bus{tt::manual()};
    std::string got;
    auto s = bus.subscribe<tt::Note>([&](const tt::Note& n) { got = n.text; });
    ASSERT_EQ(bus.publish(tt::Note{"a string too long for small-string optimisation"}), result::ok);
    EXPECT_EQ(tt::Note::live.load(), 1);  // the boxed copy
    bus.poll();
    EXPECT_EQ(got, "a string too long for small-string optimisation");
    EXPECT_EQ(tt::Note::live.load(), 0);
  }
}

TEST(Backpressure, LaneCapacityIsExact) {
  tachyon::bus<tt::Events> bus{tt::manual(5)};
  for (int i = 0; i < 5; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  EXPECT_EQ(bus.publish(tt::Quote{}), result::full);
  // Other lanes have their own room.
  EXPECT_EQ(bus.publish(tt::Halt{}), result::ok);
  EXPECT_EQ(bus.metrics().lanes[2].depth, 5u);
}

TEST(Backpressure, FailPolicyRejectsWhenLaneIsFullAndLeavesTheEventToTheCaller) {
  tachyon::bus<tt::Events> bus{tt::manual(1)};
  ASSERT_EQ(bus.publish(tt::Note{"first"}), result::ok);
  tt::Note second{"second"};
  EXPECT_EQ(bus.publish(std::move(second)), result::full);
  EXPECT_EQ(second.text, "second");  // not moved from
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.rejected_full, 1u);
  EXPECT_EQ(m.total.accepted, 1u);
  bus.poll();
}

TEST(Backpressure, DropPolicyDiscardsAndCounts) {
  auto cfg = tt::manual(2);
  cfg.overflow = overflow::drop;
  tachyon::bus<tt::Events> bus{cfg};
  int ran = 0;
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) { ++ran; });
  EXPECT_EQ(bus.publish(tt::Quote{}), result::ok);
  EXPECT_EQ(bus.publish(tt::Quote{}), result::ok);
  EXPECT_EQ(bus.publish(tt::Quote{}), result::dropped);
  EXPECT_EQ(bus.poll(), 2u);
  EXPECT_EQ(ran, 2);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, 3u);
  EXPECT_EQ(m.total.dropped, 1u);
  EXPECT_EQ(m.total.dispatched, 2u);
  EXPECT_EQ(m.lanes[2].counts.dropped, 1u);
  EXPECT_EQ(m.types[tt::Events::index_of<tt::Quote>()].counts.dropped, 1u);
}

TEST(Backpressure, BlockPolicyGivesUpAtTheDeadline) {
  auto cfg = tt::manual(1);
  cfg.overflow = overflow::block;
  cfg.block_timeout = 2ms;
  tachyon::bus<tt::Events> bus{cfg};
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(bus.publish(tt::Quote{}), result::full);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 2ms);
  EXPECT_EQ(bus.metrics().total.rejected_full, 1u);
  bus.poll();
}

TEST(Backpressure, BlockPolicyWaitsForRoomMadeByAnotherThread) {
  auto cfg = tt::manual(1);
  cfg.overflow = overflow::block;
  cfg.block_timeout = std::chrono::minutes(1);  // only a lost wake-up would reach it
  tachyon::bus<tt::Events> bus{cfg};
  ASSERT_EQ(bus.publish(tt::Quote{1, 0, 0}), result::ok);
  std::atomic<bool> returned{false};
  result second = result::stopped;
  std::thread producer([&] {
    second = bus.publish(tt::Quote{2, 0, 0});
    returned = true;
  });
  std::this_thread::sleep_for(10ms);  // lets the producer reach its wait (the test's power)
  EXPECT_FALSE(returned.load());      // the lane is full: it cannot have returned
  std::size_t ran = 0;
  EXPECT_TRUE(tt::eventually([&] {
    ran += bus.poll();
    return ran == 2;
  }));
  producer.join();
  EXPECT_EQ(second, result::ok);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, 2u);
  EXPECT_EQ(m.total.dispatched, 2u);
  EXPECT_EQ(m.total.rejected_full, 0u);
}

TEST(Backpressure, PublishFromAHandlerIntoAFullLaneUnderBlockReturnsFull) {
  auto cfg = tt::manual(1);
  cfg.overflow = overflow::block;
  cfg.block_timeout = std::chrono::minutes(1);  // a handler must not wait even this long
  tachyon::bus<tt::Events> bus{cfg};
  std::vector<result> inner;
  auto s = bus.subscribe<tt::Order>([&](const tt::Order&) {
    inner.push_back(bus.publish(tt::Quote{}));  // the normal lane is full
  });
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  ASSERT_EQ(bus.publish(tt::Order{}), result::ok);
  EXPECT_EQ(bus.run_once(), 1u);  // the Order (high lane) runs first
  EXPECT_EQ(inner, std::vector<result>{result::full});
  bus.poll();
}

TEST(Backpressure, PublishBatchStopsAtTheBoundUnderFail) {
  tachyon::bus<tt::Events> bus{tt::manual(100)};
  std::vector<tt::Quote> quotes(150, tt::Quote{});
  const auto r = bus.publish_batch(std::span<const tt::Quote>(quotes));
  EXPECT_EQ(r.queued, 100u);
  EXPECT_EQ(r.dropped, 0u);
  EXPECT_EQ(r.status, result::full);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, 100u);
  EXPECT_EQ(m.total.rejected_full, 50u);
  EXPECT_EQ(bus.poll(), 100u);
}

TEST(Backpressure, PublishBatchDropsTheOverflowUnderDrop) {
  auto cfg = tt::manual(100);
  cfg.overflow = overflow::drop;
  tachyon::bus<tt::Events> bus{cfg};
  std::vector<tt::Quote> quotes(150, tt::Quote{});
  const auto r = bus.publish_batch(std::span<const tt::Quote>(quotes));
  EXPECT_EQ(r.queued, 100u);
  EXPECT_EQ(r.dropped, 50u);
  EXPECT_EQ(r.status, result::ok);
  EXPECT_EQ(bus.metrics().total.accepted, 150u);
  EXPECT_EQ(bus.poll(), 100u);
}

TEST(PublishBatch, DeliversEveryEventInOrder) {
  tachyon::bus<tt::Events> bus{tt::manual(1024, 16)};
  recorder rec(bus);
  std::vector<tt::Quote> quotes;
  strings expected;
  for (std::uint32_t i = 0; i < 200; ++i) {
    quotes.push_back({i, 0, 0});
    expected.push_back("Q" + std::to_string(i));
  }
  const auto r = bus.publish_batch(std::span<const tt::Quote>(quotes));
  EXPECT_EQ(r.queued, 200u);
  EXPECT_EQ(r.status, result::ok);
  EXPECT_EQ(bus.poll(), 200u);
  EXPECT_EQ(rec.seen, expected);
}

TEST(PublishBatch, HonoursAnExplicitPriority) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  recorder rec(bus);
  ASSERT_EQ(bus.publish(tt::Quote{1, 0, 0}), result::ok);
  const std::vector<tt::Quote> quotes{{2, 0, 0}};
  ASSERT_EQ(bus.publish_batch(std::span<const tt::Quote>(quotes), priority::critical).queued, 1u);
  bus.poll();
  EXPECT_EQ(rec.seen, (strings{"Q2", "Q1"}));
}

TEST(Dispatch, RunsHandlersInlineAndCountsThem) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  recorder rec(bus);
  bus.dispatch(tt::Halt{8});
  EXPECT_EQ(rec.seen, strings{"H8"});
  const auto m = bus.metrics();
  EXPECT_EQ(m.lanes[0].counts.accepted, 1u);
  EXPECT_EQ(m.lanes[0].counts.dispatched, 1u);
  EXPECT_EQ(m.in_flight, 0u);
}

// dispatch() keeps one counter per type (8 to a row) and metrics() spreads it over accepted and
// dispatched, in the type's row and its default lane's row; a throw is counted as failed. Ten
// types put the last two in a second row.
template <int N>
struct Tagged {
  int v;
};
TEST(Dispatch, CountsEveryTypeInItsRowAndDefaultLane) {
  using Many = tachyon::registry<Tagged<0>, Tagged<1>, Tagged<2>, Tagged<3>, Tagged<4>, Tagged<5>,
                                 Tagged<6>, Tagged<7>, tachyon::event<Tagged<8>, priority::low>,
                                 tachyon::event<Tagged<9>, priority::critical>>;
  tachyon::bus<Many> bus{tt::manual()};
  auto s0 = bus.subscribe<Tagged<0>>([](const Tagged<0>&) {});
  auto s9 = bus.subscribe<Tagged<9>>([](const Tagged<9>& t) {
    if (t.v < 0) throw std::runtime_error("negative");
  });
  bus.dispatch(Tagged<0>{1});
  bus.dispatch(Tagged<8>{1});
  bus.dispatch(Tagged<8>{2});
  bus.dispatch(Tagged<9>{1});
  bus.dispatch(Tagged<9>{2});
  bus.dispatch(Tagged<9>{-1});
  const auto m = bus.metrics();
  EXPECT_EQ(m.types[0].counts.accepted, 1u);
  EXPECT_EQ(m.types[0].counts.dispatched, 1u);
  EXPECT_EQ(m.types[1].counts.accepted, 0u);
  EXPECT_EQ(m.types[8].counts.dispatched, 2u);
  EXPECT_EQ(m.types[9].counts.accepted, 3u);
  EXPECT_EQ(m.types[9].counts.dispatched, 2u);
  EXPECT_EQ(m.types[9].counts.failed, 1u);
  EXPECT_EQ(m.lanes[0].counts.accepted, 3u);  // critical: Tagged<9>
  EXPECT_EQ(m.lanes[0].counts.failed, 1u);
  EXPECT_EQ(m.lanes[2].counts.dispatched, 1u);  // normal: Tagged<0>
  EXPECT_EQ(m.lanes[3].counts.dispatched, 2u);  // low: Tagged<8>
  EXPECT_EQ(m.total.accepted, 6u);
  EXPECT_EQ(m.total.dispatched + m.total.failed, 6u);
  EXPECT_EQ(m.in_flight, 0u);
}

TEST(Stop, PublishAfterStopReturnsStopped) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  EXPECT_EQ(bus.stop(), 0u);
  EXPECT_EQ(bus.publish(tt::Quote{}), result::stopped);
  tt::Note n{"kept"};
  EXPECT_EQ(bus.publish(std::move(n)), result::stopped);
  EXPECT_EQ(n.text, "kept");
  EXPECT_EQ(bus.metrics().total.rejected_stopped, 2u);
  EXPECT_EQ(bus.metrics().total.accepted, 0u);
}

TEST(Stop, DrainRunsWhatIsQueuedInManualMode) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  recorder rec(bus);
  for (std::uint32_t i = 0; i < 3; ++i) ASSERT_EQ(bus.publish(tt::Quote{i, 0, 0}), result::ok);
  EXPECT_EQ(bus.stop(), 0u);
  EXPECT_EQ(rec.seen, (strings{"Q0", "Q1", "Q2"}));
}

TEST(Stop, DiscardReleasesAndCountsWhatIsQueued) {
  ASSERT_EQ(tt::Note::live.load(), 0);
  tachyon::bus<tt::Events> bus{tt::manual()};
  recorder rec(bus);
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  ASSERT_EQ(bus.publish(tt::Halt{}), result::ok);
  ASSERT_EQ(bus.publish(tt::Note{"boxed and discarded"}), result::ok);
  EXPECT_EQ(bus.stop(tachyon::stop_mode::discard), 3u);
  EXPECT_TRUE(rec.seen.empty());
  EXPECT_EQ(tt::Note::live.load(), 0);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.discarded, 3u);
  EXPECT_EQ(m.lanes[0].counts.discarded, 1u);
  EXPECT_EQ(m.in_flight, 0u);
  EXPECT_EQ(bus.stop(), 0u);  // idempotent
}

TEST(Stop, DiscardBegunInsideAHandlerEndsManualPolling) {
  // batch = 1: each event is a batch of its own, so the handler that begins the discard is the
  // whole of the batch that is running, and the other nine are still queued.
  tachyon::bus<tt::Events> bus{tt::manual(1024, 1)};
  std::vector<std::uint32_t> ran;
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote& q) {
    ran.push_back(q.instrument);
    if (q.instrument == 0) {
      EXPECT_EQ(bus.stop(tachyon::stop_mode::discard), 0u);  // inside a handler: only begins
    }
  });
  for (std::uint32_t i = 0; i < 10; ++i) ASSERT_EQ(bus.publish(tt::Quote{i, 0, 0}), result::ok);
  EXPECT_EQ(bus.poll(), 1u);  // the batch running when the discard began, and nothing after
  EXPECT_EQ(bus.run_once(), 0u);
  EXPECT_EQ(bus.poll(), 0u);
  EXPECT_EQ(ran, (std::vector<std::uint32_t>{0}));
  EXPECT_EQ(bus.stop(), 9u);  // finishes the discard asked for inside the handler
  const auto m = bus.metrics();
  const auto& t = m.total;
  EXPECT_EQ(t.accepted, 10u);
  EXPECT_EQ(t.dispatched, 1u);
  EXPECT_EQ(t.discarded, 9u);
  EXPECT_EQ(m.in_flight, 0u);
  EXPECT_EQ(t.accepted, t.dispatched + t.failed + t.dropped + t.discarded + m.in_flight);
}

TEST(Stop, DiscardFromAnotherThreadEndsManualPolling) {
  tachyon::bus<tt::Events> bus{tt::manual(1024, 1)};
  std::vector<std::uint32_t> ran;
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote& q) { ran.push_back(q.instrument); });
  for (std::uint32_t i = 0; i < 10; ++i) ASSERT_EQ(bus.publish(tt::Quote{i, 0, 0}), result::ok);
  ASSERT_EQ(bus.run_once(), 1u);
  std::uint64_t discarded = 0;
  std::thread([&] { discarded = bus.stop(tachyon::stop_mode::discard); }).join();
  EXPECT_EQ(discarded, 9u);
  EXPECT_EQ(bus.poll(), 0u);
  EXPECT_EQ(bus.run_once(), 0u);
  EXPECT_EQ(ran, (std::vector<std::uint32_t>{0}));
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, m.total.dispatched + m.total.discarded + m.in_flight);
  EXPECT_EQ(m.total.discarded, 9u);
}

TEST(Stop, DestructorDrains) {
  std::vector<std::string> seen;
  {
    tachyon::bus<tt::Events> bus{tt::manual()};
    auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) { seen.push_back("Q"); });
    ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
    s.detach();  // keep the handler until the bus goes
  }
  EXPECT_EQ(seen.size(), 1u);
}

TEST(Publish, PollKeepsGoingAcrossLanesUpToMaxEvents) {
  tachyon::bus<tt::Events> bus{tt::manual(1024, 4)};
  recorder rec(bus);
  ASSERT_EQ(bus.publish(tt::Halt{1}), result::ok);
  ASSERT_EQ(bus.publish(tt::Halt{2}), result::ok);
  for (std::uint32_t i = 0; i < 5; ++i) ASSERT_EQ(bus.publish(tt::Quote{i, 0, 0}), result::ok);
  // max_events equal to the batch, but the first batch (the critical lane) holds only two.
  EXPECT_EQ(bus.poll(4), 4u);
  EXPECT_EQ(rec.seen, (strings{"H1", "H2", "Q0", "Q1"}));
  EXPECT_EQ(bus.poll(), 3u);
}
