// Correlation and causation: what an event published (or dispatched) from inside a handler
// inherits from the event that handler runs for, on every path that runs handlers (the drain,
// dispatch(), retries, delayed events, replays), and that nothing leaks to a publish from
// outside handlers.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "books.hpp"
#include "common.hpp"

namespace {

using tachyon::meta;
using tachyon::publish_options;

struct Start {
  int step;
};
struct Next {
  int step;
};
struct Last {
  int step;
};
struct Boxed {
  std::string text;
};
using Chain = tachyon::registry<Start, Next, Last, Boxed>;
using chain_bus = tachyon::bus<Chain>;

/// What a handler saw: the sequence, correlation and causation of one event.
struct seen {
  std::uint64_t sequence = 0, correlation = 0, causation = 0;
};
seen of(const meta& m) { return {m.sequence, m.correlation_id, m.causation_id}; }

TEST(Causation, AHandlersPublishInheritsTheCorrelationAndNamesItsCause) {
  chain_bus bus{tt::manual()};
  seen start, next, last;
  auto s1 = bus.subscribe<Start>([&](const Start&, const meta& m) {
    start = of(m);
    ASSERT_EQ(bus.publish(Next{1}), tachyon::result::ok);
  });
  auto s2 = bus.subscribe<Next>([&](const Next&, const meta& m) {
    next = of(m);
    ASSERT_EQ(bus.publish(Last{2}), tachyon::result::ok);
  });
  auto s3 = bus.subscribe<Last>([&](const Last&, const meta& m) { last = of(m); });
  ASSERT_EQ(bus.publish(Start{0}, publish_options{.correlation_id = 42}), tachyon::result::ok);
  bus.poll();
  EXPECT_EQ(start.correlation, 42u);
  EXPECT_EQ(start.causation, 0u);  // published from outside handlers
  EXPECT_EQ(next.correlation, 42u);
  EXPECT_EQ(next.causation, start.sequence);
  EXPECT_EQ(last.correlation, 42u);
  EXPECT_EQ(last.causation, next.sequence);
}

TEST(Causation, AnExplicitCorrelationWinsAndTheCauseIsStillNamed) {
  chain_bus bus{tt::manual()};
  seen start, next;
  auto s1 = bus.subscribe<Start>([&](const Start&, const meta& m) {
    start = of(m);
    ASSERT_EQ(bus.publish(Next{1}, publish_options{.correlation_id = 7}), tachyon::result::ok);
  });
  auto s2 = bus.subscribe<Next>([&](const Next&, const meta& m) { next = of(m); });
  ASSERT_EQ(bus.publish(Start{0}, publish_options{.correlation_id = 42}), tachyon::result::ok);
  bus.poll();
  EXPECT_EQ(next.correlation, 7u);
  EXPECT_EQ(next.causation, start.sequence);
}

TEST(Causation, NothingLeaksToAPublishFromOutsideHandlersAfterABatch) {
  chain_bus bus{tt::manual()};
  std::vector<seen> nexts;
  auto s1 = bus.subscribe<Start>([&](const Start&) {});
  auto s2 = bus.subscribe<Next>([&](const Next&, const meta& m) { nexts.push_back(of(m)); });
  ASSERT_EQ(bus.publish(Start{0}, publish_options{.correlation_id = 42}), tachyon::result::ok);
  bus.poll();
  // The poller's own publish and dispatch, after the batch: no cause, no correlation.
  ASSERT_EQ(bus.publish(Next{1}), tachyon::result::ok);
  bus.dispatch(Next{2});
  bus.poll();
  ASSERT_EQ(nexts.size(), 2u);
  for (const auto& n : nexts) {
    EXPECT_EQ(n.correlation, 0u);
    EXPECT_EQ(n.causation, 0u);
  }
}

TEST(Causation, DispatchInheritsAndRestoresTheOuterCause) {
  chain_bus bus{tt::manual()};
  seen start, next, last_from_next, last_after;
  int lasts = 0;
  auto s1 = bus.subscribe<Start>([&](const Start&, const meta& m) {
    start = of(m);
    bus.dispatch(Next{1});  // inherits 42; its handler dispatches Last
    bus.dispatch(Last{9});  // after the nested dispatch: the cause is Start again
  });
  auto s2 = bus.subscribe<Next>([&](const Next&, const meta& m) {
    next = of(m);
    bus.dispatch(Last{2});
  });
  auto s3 = bus.subscribe<Last>([&](const Last& l, const meta& m) {
    ++lasts;
    (l.step == 2 ? last_from_next : last_after) = of(m);
  });
  ASSERT_EQ(bus.publish(Start{0}, publish_options{.correlation_id = 42}), tachyon::result::ok);
  bus.poll();
  ASSERT_EQ(lasts, 2);
  EXPECT_EQ(next.correlation, 42u);
  EXPECT_EQ(next.causation, start.sequence);
  EXPECT_EQ(last_from_next.correlation, 42u);
  EXPECT_EQ(last_from_next.causation, next.sequence);
  EXPECT_EQ(last_after.correlation, 42u);
  EXPECT_EQ(last_after.causation, start.sequence);
}

TEST(Causation, ADispatchFromOutsideIsTheCauseOfWhatItsHandlersPublish) {
  chain_bus bus{tt::manual()};
  seen next, last, after;
  auto s2 = bus.subscribe<Next>([&](const Next&, const meta& m) {
    next = of(m);
    ASSERT_EQ(bus.publish(Last{1}), tachyon::result::ok);
  });
  auto s3 = bus.subscribe<Last>(
      [&](const Last& l, const meta& m) { (l.step == 1 ? last : after) = of(m); });
  bus.dispatch(Next{0}, publish_options{.correlation_id = 5});
  EXPECT_EQ(next.correlation, 5u);
  EXPECT_EQ(next.causation, 0u);
  bus.poll();
  EXPECT_EQ(last.correlation, 5u);
  EXPECT_EQ(last.causation, next.sequence);
  // Restored after the dispatch: this thread is outside handlers again.
  ASSERT_EQ(bus.publish(Last{2}), tachyon::result::ok);
  bus.poll();
  EXPECT_EQ(after.correlation, 0u);
  EXPECT_EQ(after.causation, 0u);
}

TEST(Causation, DispatchTakesALaneAndRefusesWhatOnlyPublishCanDo) {
  chain_bus bus{tt::manual()};
  tachyon::priority lane = tachyon::priority::normal;
  auto s = bus.subscribe<Next>([&](const Next&, const meta& m) { lane = m.lane; });
  bus.dispatch(Next{0}, publish_options{.lane = tachyon::priority::low});
  EXPECT_EQ(lane, tachyon::priority::low);
  const auto m = bus.metrics();
  EXPECT_EQ(m.lanes[3].counts.accepted, 1u);
  EXPECT_EQ(m.lanes[3].counts.dispatched, 1u);
  tt::expect_books_balance(m);
  try {
    bus.dispatch(Next{1}, publish_options{.deadline = bus.now() + std::chrono::seconds(1)});
    FAIL() << "a deadline on dispatch() was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("deadline, not_before, dead_letter_expired and key"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(bus.dispatch(Next{1}, publish_options{.not_before = bus.now()}),
               std::invalid_argument);
  EXPECT_THROW(bus.dispatch(Next{1}, publish_options{.dead_letter_expired = true}),
               std::invalid_argument);
  EXPECT_THROW(bus.dispatch(Next{1}, publish_options{.lane = static_cast<tachyon::priority>(9)}),
               std::invalid_argument);
  tt::expect_books_balance(bus.metrics());  // refusals count nothing
}

TEST(Causation, PublishBatchTakesOptionsAndInherits) {
  chain_bus bus{tt::manual()};
  seen start;
  std::vector<seen> nexts, boxed;
  std::vector<tachyon::priority> lanes;
  auto s1 = bus.subscribe<Start>([&](const Start&, const meta& m) {
    start = of(m);
    const Next two[] = {{1}, {2}};
    ASSERT_EQ(bus.publish_batch(std::span<const Next>(two)).queued, 2u);
    const Boxed notes[] = {{"a"}, {"b"}, {"c"}};
    ASSERT_EQ(bus.publish_batch(std::span<const Boxed>(notes)).queued, 3u);
  });
  auto s2 = bus.subscribe<Next>([&](const Next&, const meta& m) {
    nexts.push_back(of(m));
    lanes.push_back(m.lane);
  });
  auto s3 = bus.subscribe<Boxed>([&](const Boxed&, const meta& m) { boxed.push_back(of(m)); });
  ASSERT_EQ(bus.publish(Start{0}, publish_options{.correlation_id = 42}), tachyon::result::ok);
  bus.poll();
  ASSERT_EQ(nexts.size(), 2u);
  ASSERT_EQ(boxed.size(), 3u);
  for (const auto& n : nexts) {
    EXPECT_EQ(n.correlation, 42u);
    EXPECT_EQ(n.causation, start.sequence);
  }
  for (const auto& b : boxed) {
    EXPECT_EQ(b.correlation, 42u);
    EXPECT_EQ(b.causation, start.sequence);
  }
  // From outside, with options: the correlation and the lane of every event.
  nexts.clear();
  lanes.clear();
  const Next three[] = {{3}, {4}, {5}};
  const auto r =
      bus.publish_batch(std::span<const Next>(three),
                        publish_options{.lane = tachyon::priority::high, .correlation_id = 9});
  ASSERT_EQ(r.queued, 3u);
  bus.poll();
  ASSERT_EQ(nexts.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(nexts[i].correlation, 9u);
    EXPECT_EQ(nexts[i].causation, 0u);
    EXPECT_EQ(lanes[i], tachyon::priority::high);
  }
}

TEST(Causation, PublishBatchWithADelayPublishesEachEvent) {
  using vbus = tachyon::bus<Chain, tachyon::virtual_time_traits>;
  vbus bus{tt::manual()};
  std::vector<int> steps;
  auto s = bus.subscribe<Next>([&](const Next& n) { steps.push_back(n.step); });
  const Next three[] = {{1}, {2}, {3}};
  const auto r =
      bus.publish_batch(std::span<const Next>(three),
                        publish_options{.not_before = bus.now() + std::chrono::milliseconds(5)});
  EXPECT_EQ(r.queued, 3u);
  EXPECT_EQ(r.status, tachyon::result::ok);
  bus.poll();
  EXPECT_TRUE(steps.empty());
  bus.time_source().advance(std::chrono::milliseconds(5));
  bus.poll();
  EXPECT_EQ(steps, (std::vector<int>{1, 2, 3}));
  tt::expect_books_balance(bus.metrics());
}

TEST(Causation, RetriesDelayedEventsAndReplaysRunWithTheirEventsCause) {
  using vbus = tachyon::bus<Chain, tachyon::virtual_time_traits>;
  vbus bus{tt::manual_dl()};
  seen start;
  std::vector<seen> from_retry, from_delayed, from_replay;
  int runs = 0;
  bool fail_forever = false;
  auto s1 = bus.subscribe<Start>(
      [&](const Start&, const meta& m) {
        start = of(m);
        ++runs;
        if (runs == 1 || fail_forever) throw std::runtime_error("not yet");
        ASSERT_EQ(bus.publish(Next{m.attempt}), tachyon::result::ok);
      },
      {.retry = tt::retries(2)});
  auto s2 = bus.subscribe<Next>([&](const Next&, const meta& m) { from_retry.push_back(of(m)); });
  auto s3 = bus.subscribe<Last>([&](const Last&, const meta& m) {
    from_delayed.push_back(of(m));
    if (from_delayed.size() == 1) {
      ASSERT_EQ(bus.publish(Boxed{"from a delayed event"}), tachyon::result::ok);
    }
  });
  auto s4 =
      bus.subscribe<Boxed>([&](const Boxed&, const meta& m) { from_replay.push_back(of(m)); });

  // A retry: its handler's publish names the event it retries.
  ASSERT_EQ(bus.publish(Start{0}, publish_options{.correlation_id = 42}), tachyon::result::ok);
  bus.poll();
  bus.time_source().advance(std::chrono::seconds(1));
  bus.poll();
  ASSERT_EQ(from_retry.size(), 1u);
  EXPECT_EQ(from_retry[0].correlation, 42u);
  EXPECT_EQ(from_retry[0].causation, start.sequence);

  // A delayed event's handler: the delayed event is the cause.
  ASSERT_EQ(
      bus.publish(Last{0}, publish_options{.correlation_id = 8,
                                           .not_before = bus.now() + std::chrono::seconds(1)}),
      tachyon::result::ok);
  bus.time_source().advance(std::chrono::seconds(1));
  bus.poll();
  ASSERT_EQ(from_delayed.size(), 1u);
  ASSERT_EQ(from_replay.size(), 1u);
  EXPECT_EQ(from_replay[0].correlation, 8u);
  EXPECT_EQ(from_replay[0].causation, from_delayed[0].sequence);

  // A replay from the dead letters, on this thread: its handler's publish names the replayed
  // event, and the replaying thread's cause is restored after (it is outside handlers).
  fail_forever = true;
  ASSERT_EQ(bus.publish(Start{1}, publish_options{.correlation_id = 77}), tachyon::result::ok);
  bus.poll();
  bus.time_source().advance(std::chrono::seconds(1));
  bus.poll();
  ASSERT_EQ(bus.dead_letter_count(), 1u);
  const std::uint64_t dead = start.sequence;
  fail_forever = false;
  from_retry.clear();
  const auto rr = bus.replay_dead_letters();
  EXPECT_EQ(rr.succeeded, 1u);
  bus.poll();
  ASSERT_EQ(from_retry.size(), 1u);
  EXPECT_EQ(from_retry[0].correlation, 77u);
  EXPECT_EQ(from_retry[0].causation, dead);
  ASSERT_EQ(bus.publish(Next{5}), tachyon::result::ok);
  bus.poll();
  ASSERT_EQ(from_retry.size(), 2u);
  EXPECT_EQ(from_retry[1].correlation, 0u);
  EXPECT_EQ(from_retry[1].causation, 0u);
}

TEST(Causation, AKeyedEventsHandlerNamesItAsTheCause) {
  chain_bus bus{tt::manual()};
  seen start, next;
  auto s1 = bus.subscribe<Start>([&](const Start&, const meta& m) {
    start = of(m);
    ASSERT_EQ(bus.publish(Next{1}), tachyon::result::ok);
  });
  auto s2 = bus.subscribe<Next>([&](const Next&, const meta& m) { next = of(m); });
  ASSERT_EQ(bus.publish(Start{0}, publish_options{.correlation_id = 42, .key = 9}),
            tachyon::result::ok);
  bus.poll();
  bus.poll();
  EXPECT_EQ(start.correlation, 42u);
  EXPECT_EQ(next.correlation, 42u);
  EXPECT_EQ(next.causation, start.sequence);
  EXPECT_NE(start.sequence, 0u);
}

TEST(Causation, ChainsAcrossWorkersKeepTheirCorrelation) {
  constexpr int chains = tt::sanitized() ? 200 : 2000;
  chain_bus bus{{.workers = 2, .lane_capacity = 4096}};
  std::mutex mu;
  std::vector<seen> starts(chains + 1), nexts(chains + 1), lasts(chains + 1);
  std::atomic<int> done{0};
  auto s1 = bus.subscribe<Start>([&](const Start& s, const meta& m) {
    {
      std::lock_guard lock(mu);
      starts[s.step] = of(m);
    }
    ASSERT_EQ(bus.publish(Next{s.step}), tachyon::result::ok);
  });
  auto s2 = bus.subscribe<Next>([&](const Next& n, const meta& m) {
    {
      std::lock_guard lock(mu);
      nexts[n.step] = of(m);
    }
    ASSERT_EQ(bus.publish(Last{n.step}), tachyon::result::ok);
  });
  auto s3 = bus.subscribe<Last>([&](const Last& l, const meta& m) {
    {
      std::lock_guard lock(mu);
      lasts[l.step] = of(m);
    }
    done.fetch_add(1);
  });
  for (int i = 1; i <= chains; ++i)
    ASSERT_EQ(bus.publish(Start{i}, publish_options{.correlation_id = 1000u + i}),
              tachyon::result::ok);
  ASSERT_TRUE(tt::eventually([&] { return done.load() == chains; }));
  bus.stop();
  std::lock_guard lock(mu);
  for (int i = 1; i <= chains; ++i) {
    ASSERT_EQ(nexts[i].correlation, 1000u + i) << i;
    ASSERT_EQ(nexts[i].causation, starts[i].sequence) << i;
    ASSERT_EQ(lasts[i].correlation, 1000u + i) << i;
    ASSERT_EQ(lasts[i].causation, nexts[i].sequence) << i;
  }
  tt::expect_books_balance(bus.metrics());
}

}  // namespace
