// Counters, the accounting equation and exposition formats.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

#include "common.hpp"

using tachyon::overflow;
using tachyon::result;
using ::testing::HasSubstr;

namespace {
void expect_balanced(const tachyon::metrics_snapshot& m) {
  const auto& t = m.total;
  EXPECT_EQ(t.accepted, t.dispatched + t.failed + t.dropped + t.discarded + m.in_flight)
      << m.to_json();
  EXPECT_EQ(t.unsettled(), static_cast<std::int64_t>(m.in_flight));
}
}  // namespace

TEST(Metrics, CountPerLaneAndPerType) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  ASSERT_EQ(bus.publish(tt::Halt{}), result::ok);
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  ASSERT_EQ(bus.publish(tt::Quote{}, tachyon::priority::low), result::ok);
  auto m = bus.metrics();
  EXPECT_EQ(m.lanes[0].counts.accepted, 1u);
  EXPECT_EQ(m.lanes[2].counts.accepted, 1u);
  EXPECT_EQ(m.lanes[3].counts.accepted, 1u);
  EXPECT_EQ(m.types[tt::Events::index_of<tt::Quote>()].counts.accepted, 2u);
  EXPECT_EQ(m.types[tt::Events::index_of<tt::Quote>()].name, "tt::Quote");
  EXPECT_EQ(m.in_flight, 3u);
  EXPECT_EQ(m.lanes[2].depth, 1u);
  expect_balanced(m);
  bus.poll();
  m = bus.metrics();
  EXPECT_EQ(m.total.dispatched, 3u);
  EXPECT_EQ(m.in_flight, 0u);
  EXPECT_EQ(m.batches, 3u);  // one batch per lane
  EXPECT_EQ(m.batched_events, 3u);
  expect_balanced(m);
}

TEST(Metrics, AccountingBalancesAcrossEveryOutcome) {
  auto cfg = tt::manual(4);
  cfg.overflow = overflow::drop;
  tachyon::bus<tt::Events> bus{cfg};
  auto s = bus.subscribe<tt::Order>([](const tt::Order& o) {
    if (o.id == 1) throw std::runtime_error("one");
  });
  for (std::uint64_t i = 0; i < 6; ++i) (void)bus.publish(tt::Order{i, 1});  // 2 dropped
  expect_balanced(bus.metrics());
  EXPECT_EQ(bus.run_once(), 4u);  // 1 failed
  for (std::uint64_t i = 0; i < 3; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  expect_balanced(bus.metrics());
  EXPECT_EQ(bus.stop(tachyon::stop_mode::discard), 3u);
  (void)bus.publish(tt::Quote{});  // refused, not accepted
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, 9u);
  EXPECT_EQ(m.total.dispatched, 3u);
  EXPECT_EQ(m.total.failed, 1u);
  EXPECT_EQ(m.total.dropped, 2u);
  EXPECT_EQ(m.total.discarded, 3u);
  EXPECT_EQ(m.total.rejected_stopped, 1u);
  expect_balanced(m);
}

TEST(Metrics, PrometheusExpositionHasEveryFamily) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  const std::string text = bus.metrics().to_prometheus();
  EXPECT_THAT(text, HasSubstr("# TYPE tachyon_events_total counter\n"));
  EXPECT_THAT(text, HasSubstr("tachyon_events_total{lane=\"normal\",outcome=\"accepted\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("tachyon_type_events_total{type=\"tt::Quote\",outcome=\"accepted\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("tachyon_lane_depth{lane=\"normal\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("tachyon_lane_capacity{lane=\"low\"} 1024\n"));
  EXPECT_THAT(text, HasSubstr("tachyon_lane_in_flight{lane=\"normal\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("tachyon_in_flight 1\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE tachyon_workers gauge\n"));
  // Every sample line is `name{labels} value` or `name value`.
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# ", 0) == 0) continue;
    EXPECT_THAT(line, ::testing::MatchesRegex("tachyon_[a-z_]+(\\{.*\\})? [0-9]+")) << line;
  }
  bus.poll();
}

TEST(Metrics, PrometheusPrefixIsConfigurable) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  EXPECT_THAT(bus.metrics().to_prometheus("app_bus"), HasSubstr("app_bus_in_flight 0\n"));
}

TEST(Metrics, JsonCarriesTotalsLanesAndTypes) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  ASSERT_EQ(bus.publish(tt::Halt{}), result::ok);
  bus.poll();
  const std::string json = bus.metrics().to_json();
  EXPECT_THAT(json, HasSubstr("\"total\":{\"accepted\":1,\"dispatched\":1,"));
  EXPECT_THAT(
      json,
      HasSubstr(
          "{\"lane\":\"critical\",\"depth\":0,\"waiting\":0,\"in_flight\":0,\"capacity\":1024,"));
  EXPECT_THAT(json, HasSubstr("{\"name\":\"tt::Halt\",\"counts\":{\"accepted\":1,"));
  EXPECT_THAT(json, HasSubstr("\"in_flight\":0,"));
  EXPECT_EQ(json.front(), '{');
  EXPECT_EQ(json.back(), '}');
}

TEST(Metrics, InFlightPerLaneCountsWhatAWorkerHolds) {
  tachyon::bus<tt::Events> bus{{.workers = 1, .lane_capacity = 64, .batch = 4}};
  std::atomic<bool> entered{false}, release{false};
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) {
    entered = true;
    while (!release.load()) std::this_thread::yield();
  });
  for (int i = 0; i < 10; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  ASSERT_TRUE(tt::eventually([&] { return entered.load(); }));
  // The worker holds its first batch, 1 to 4 events (it may have started before all ten were
  // published): dequeued, so not in depth, but still in flight.
  const auto m = bus.metrics();
  EXPECT_GE(m.lanes[2].depth, 6u);
  EXPECT_LE(m.lanes[2].depth, 9u);
  EXPECT_EQ(m.lanes[2].in_flight, 10u);
  EXPECT_EQ(m.lanes[0].in_flight, 0u);
  EXPECT_EQ(m.in_flight, 10u);
  EXPECT_EQ(m.types[tt::Events::index_of<tt::Quote>()].counts.unsettled(), 10);
  release = true;
  bus.stop();
  EXPECT_EQ(bus.metrics().lanes[2].in_flight, 0u);
}

TEST(Metrics, CountersOfAnEndedThreadAreKept) {
  tachyon::bus<tt::Events> bus{tt::manual()};
  std::thread([&] { ASSERT_EQ(bus.publish(tt::Quote{}), result::ok); }).join();
  std::thread([&] { ASSERT_EQ(bus.publish(tt::Quote{}), result::ok); }).join();
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, 2u);
  EXPECT_LE(m.threads, 2u);  // the second thread reused the first one's counter block
  bus.poll();
}

TEST(Metrics, TheEquationHoldsInASnapshotTakenMidBatchAfterAFailure) {
  // One batch of five events; the first handler throws, the third takes a snapshot. The
  // failure must not be counted while the batch still counts it in flight.
  tachyon::bus<tt::Events> bus{tt::manual()};
  std::vector<tachyon::metrics_snapshot> mid;
  auto s = bus.subscribe<tt::Order>([&](const tt::Order& o) {
    if (o.id == 1) throw std::runtime_error("first fails");
    if (o.id == 3) mid.push_back(bus.metrics());
  });
  for (std::uint64_t id = 1; id <= 5; ++id) ASSERT_EQ(bus.publish(tt::Order{id, 1}), result::ok);
  ASSERT_EQ(bus.poll(), 5u);
  ASSERT_EQ(mid.size(), 1u);
  for (const auto& m : {mid[0], bus.metrics()}) {
    const auto& t = m.total;
    EXPECT_EQ(t.accepted, 5u);
    EXPECT_EQ(t.accepted, t.dispatched + t.failed + t.dropped + t.discarded + m.in_flight);
  }
  EXPECT_EQ(mid[0].in_flight, 5u);
  EXPECT_EQ(bus.metrics().total.failed, 1u);
}

TEST(Metrics, ASnapshotWhileWorkersRunFindsEveryAdmittedEventSomewhere) {
  // An event admitted before metrics() is called is, in that snapshot, in the lane (depth), in
  // a worker's hand, waiting in the timer, or in an outcome count: at least once, perhaps twice
  // while it moves. metrics() reads those places in the reverse of the order in which an event
  // moves through them (on a weakly ordered CPU, with acquire loads against release stores);
  // read in the wrong order, a snapshot taken just as a worker ends a batch misses the batch.
  // Every third event fails once and is retried, so events go through the timer too.
  constexpr std::uint64_t events = 40000;
  tachyon::bus<tt::Events> bus{{.workers = 2, .lane_capacity = 4096, .batch = 16}};
  auto s = bus.subscribe<tt::Order>(
      [](const tt::Order& o, const tachyon::meta& m) {
        if (o.id % 3 == 0 && m.attempt == 0) throw std::runtime_error("once");
      },
      {.retry = {.max_attempts = 2,
                 .initial_delay = std::chrono::microseconds(20),
                 .max_delay = std::chrono::microseconds(20)}});
  // A minute is far beyond any healthy run (well under a second here, 0.4 s under qemu): only
  // a hang (room that never comes back, events that never settle) reaches it, and fails.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  std::atomic<std::uint64_t> published{0};
  std::thread publisher([&] {
    for (std::uint64_t id = 1; id <= events; ++id) {
      while (bus.publish(tt::Order{id, 1}) != result::ok) {
        if (std::chrono::steady_clock::now() >= give_up) return;
        std::this_thread::yield();
      }
      published.store(id, std::memory_order_release);
    }
  });
  std::uint64_t snapshots = 0, short_by_most = 0;
  bool finished = false;
  while (std::chrono::steady_clock::now() < give_up) {
    const std::uint64_t before = published.load(std::memory_order_acquire);
    const auto m = bus.metrics();
    const auto& t = m.total;
    const std::uint64_t found = t.dispatched + t.failed + t.dead_lettered + t.expired + t.dropped +
                                t.discarded + t.conflated + t.displaced + m.in_flight;
    ++snapshots;
    if (found < before) short_by_most = std::max(short_by_most, before - found);
    if (before == events && t.dispatched == events) {
      finished = true;
      break;
    }
  }
  publisher.join();
  ASSERT_TRUE(finished) << "not every event was published and dispatched within a minute";
  bus.stop();
  EXPECT_GT(snapshots, 1u);
  EXPECT_EQ(short_by_most, 0u) << "a snapshot missed events admitted before it (" << snapshots
                               << " snapshots)";
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, events);
  EXPECT_EQ(m.total.dispatched, events);
  EXPECT_EQ(m.total.retried, events / 3);
  EXPECT_EQ(m.in_flight, 0u);
}
