// config::latency_histograms: queue wait per lane, handler time per type, their summaries in
// metrics() and their exposition (golden texts).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <thread>
#include <vector>

#include "common.hpp"

using tachyon::result;
using ::testing::HasSubstr;
using ::testing::Not;

namespace {

constexpr std::size_t quote = tt::Events::index_of<tt::Quote>();
constexpr unsigned normal = static_cast<unsigned>(tachyon::priority::normal);

tachyon::config timed(bool histograms = true) {
  auto cfg = tt::manual();
  cfg.latency_histograms = histograms;
  return cfg;
}

void burn(std::chrono::microseconds d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
  }
}

std::uint64_t total_queue_wait(const tachyon::metrics_snapshot& m) {
  std::uint64_t n = 0;
  for (const auto& l : m.lanes) n += l.queue_wait.count;
  return n;
}
std::uint64_t total_handler_time(const tachyon::metrics_snapshot& m) {
  std::uint64_t n = 0;
  for (const auto& t : m.types) n += t.handler_time.count;
  return n;
}

void expect_consistent(const tachyon::latency_summary& s) {
  EXPECT_LE(s.p50_ns, s.p90_ns);
  EXPECT_LE(s.p90_ns, s.p99_ns);
  EXPECT_LE(s.p99_ns, s.p999_ns);
  EXPECT_LE(s.p999_ns, s.max_ns);
  for (std::size_t i = 1; i < s.buckets.size(); ++i) EXPECT_LE(s.buckets[i - 1], s.buckets[i]);
  EXPECT_LE(s.buckets.back(), s.count);
}

}  // namespace

TEST(LatencyHistograms, ManualModeTimesHandlersAndQueueWait) {
  tachyon::bus<tt::Events> bus{timed()};
  auto s = bus.subscribe<tt::Quote>([](const tt::Quote&) { burn(std::chrono::microseconds(20)); });
  constexpr std::uint64_t events = 10;
  for (std::uint64_t i = 0; i < events; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  ASSERT_EQ(bus.poll(), events);
  const auto m = bus.metrics();
  EXPECT_TRUE(m.latency_histograms);
  const auto& h = m.types[quote].handler_time;
  EXPECT_EQ(h.count, events);
  EXPECT_GE(h.p50_ns, 20'000u);
  EXPECT_GE(h.sum_ns, events * 20'000);
  EXPECT_EQ(h.buckets[6], 0u);          // le 10 us: nothing ran that fast
  EXPECT_EQ(h.buckets.back(), events);  // le 1 s
  expect_consistent(h);
  EXPECT_EQ(m.lanes[normal].queue_wait.count, events);
  expect_consistent(m.lanes[normal].queue_wait);
  EXPECT_EQ(total_queue_wait(m), events);  // the other lanes ran nothing
  EXPECT_EQ(total_handler_time(m), events);
}

TEST(LatencyHistograms, OffRecordsAndAllocatesNothing) {
  tachyon::bus<tt::Events> bus{timed(false)};
  auto s = bus.subscribe<tt::Quote>([](const tt::Quote&) {});
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  ASSERT_EQ(bus.poll(), 1u);  // the first poll makes the drain buffer
  for (int i = 0; i < 5; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  const std::uint64_t before = tachyon::detail::thread_allocations();
  ASSERT_EQ(bus.poll(), 5u);
  EXPECT_EQ(tachyon::detail::thread_allocations(), before);
  const auto m = bus.metrics();
  EXPECT_FALSE(m.latency_histograms);
  EXPECT_EQ(total_queue_wait(m), 0u);
  EXPECT_EQ(total_handler_time(m), 0u);
  EXPECT_EQ(m.types[quote].handler_time.p50_ns, 0u);
}

TEST(LatencyHistograms, MadeOnTheFirstRecordOnly) {
  tachyon::bus<tt::Events> bus{timed()};
  auto s = bus.subscribe<tt::Quote>([](const tt::Quote&) {});
  // A thread that only publishes makes no histogram: it allocates what it would without them.
  auto publisher_allocations = [](tachyon::bus<tt::Events>& b) {
    std::uint64_t n = 0;
    std::thread([&] {
      const std::uint64_t before = tachyon::detail::thread_allocations();
      for (int i = 0; i < 3; ++i) ASSERT_EQ(b.publish(tt::Quote{}), result::ok);
      n = tachyon::detail::thread_allocations() - before;
    }).join();
    return n;
  };
  tachyon::bus<tt::Events> untimed{timed(false)};
  EXPECT_EQ(publisher_allocations(bus), publisher_allocations(untimed));
  untimed.poll();
  ASSERT_EQ(bus.run_once(), 3u);  // makes the drain buffer
  ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  ASSERT_EQ(bus.publish(tt::Halt{}), result::ok);
  std::uint64_t before = tachyon::detail::thread_allocations();
  ASSERT_EQ(bus.run_once(), 1u);  // the critical lane: its queue wait, Halt's handler time
  EXPECT_EQ(tachyon::detail::thread_allocations() - before, 2u);
  before = tachyon::detail::thread_allocations();
  ASSERT_EQ(bus.run_once(), 1u);  // the normal lane and Quote already have theirs
  EXPECT_EQ(tachyon::detail::thread_allocations() - before, 0u);
  const auto m = bus.metrics();
  EXPECT_EQ(total_queue_wait(m), 5u);
  EXPECT_EQ(total_handler_time(m), 5u);
}

TEST(LatencyHistograms, WithoutTimestampsOnlyHandlerTime) {
  auto cfg = timed();
  cfg.timestamps = false;
  tachyon::bus<tt::Events> bus{cfg};
  for (int i = 0; i < 7; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
  ASSERT_EQ(bus.publish(tt::Order{}), result::ok);
  ASSERT_EQ(bus.poll(), 8u);
  const auto m = bus.metrics();
  EXPECT_EQ(total_queue_wait(m), 0u);
  EXPECT_EQ(m.types[quote].handler_time.count, 7u);  // no subscriber: still timed
  EXPECT_EQ(total_handler_time(m), 8u);
}

TEST(LatencyHistograms, CountEveryEventOfTwoWorkers) {
  auto cfg = tachyon::config{.workers = 2, .lane_capacity = 1024, .producers = 1};
  cfg.latency_histograms = true;
  tachyon::bus<tt::Events> bus{cfg};
  auto s = bus.subscribe<tt::Order>([](const tt::Order& o) {
    if (o.id % 100 == 0) throw std::runtime_error("one in a hundred");
  });
  std::atomic<bool> done{false};
  std::thread reader([&] {  // reads the histograms while the workers write them
    while (!done.load()) {
      const auto m = bus.metrics();
      for (const auto& t : m.types) expect_consistent(t.handler_time);
      std::this_thread::yield();
    }
  });
  constexpr std::uint64_t events = 20'000;
  for (std::uint64_t i = 0; i < events; ++i) {
    const result r = i % 3 == 0 ? bus.publish(tt::Order{i, 1}) : bus.publish(tt::Quote{});
    ASSERT_EQ(r, result::ok);
  }
  bus.stop();
  done = true;
  reader.join();
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.dispatched + m.total.failed, events);
  EXPECT_GT(m.total.failed, 0u);
  EXPECT_EQ(total_handler_time(m), m.total.dispatched + m.total.failed);
  EXPECT_EQ(total_queue_wait(m), m.total.dispatched + m.total.failed);
}

// ---- exposition: golden texts of a snapshot built by hand ----------------------------------

namespace {

tachyon::latency_summary summary(std::uint64_t base) {
  tachyon::latency_summary s;
  s.count = 10 * base;
  s.sum_ns = 1'234'567 * base;
  s.p50_ns = 800 * base;
  s.p90_ns = 2'000 * base;
  s.p99_ns = 40'000 * base;
  s.p999_ns = 90'000 * base;
  s.max_ns = 2'000'000'000 * base;
  for (std::size_t i = 0; i < s.buckets.size(); ++i)
    s.buckets[i] = std::min<std::uint64_t>(i, 9) * base;
  return s;
}

tachyon::metrics_snapshot golden_snapshot() {
  tachyon::metrics_snapshot m;
  for (unsigned l = 0; l < tachyon::priority_count; ++l) {
    auto& lane = m.lanes[l];
    lane.lane = static_cast<tachyon::priority>(l);
    lane.counts.accepted = 10 + l;
    lane.counts.dispatched = 9 + l;
    lane.counts.failed = 1;
    lane.capacity = 64;
    if (l == 0) lane.queue_wait = summary(1);  // the other lanes: empty
    m.total += lane.counts;
  }
  m.types.push_back({"app::Quote", {.accepted = 46, .dispatched = 42, .failed = 4}, summary(2)});
  m.batches = 5;
  m.batched_events = 46;
  m.workers = 1;
  m.threads = 2;
  m.latency_histograms = true;
  return m;
}

/// The expected lines of one series of a family of outcome counters, in the exposition's order.
std::string outcome_lines(const std::string& family, const std::string& label,
                          const std::array<std::uint64_t, 17>& counts) {
  static constexpr const char* outcomes[] = {
      "accepted",      "dispatched",       "failed",         "dropped",       "discarded",
      "rejected_full", "rejected_stopped", "handler_errors", "dead_lettered", "expired",
      "retried",       "short_circuited",  "replayed",       "conflated",     "displaced",
      "vetoed",        "journal_refused"};
  std::string text;
  for (std::size_t i = 0; i < counts.size(); ++i)
    text += family + "{" + label + ",outcome=\"" + outcomes[i] + "\"} " +
            std::to_string(counts[i]) + "\n";
  return text;
}

/// The expected lines of one histogram series: the cumulative count at each bound (+Inf last),
/// then the sum in seconds, as the exposition spells it, and the count.
std::string histogram_lines(const std::string& family, const std::string& label,
                            const std::array<std::uint64_t, 17>& cumulative, const std::string& sum,
                            std::uint64_t count) {
  static constexpr const char* bounds[] = {
      "1e-07",  "2.5e-07", "5e-07",  "1e-06", "2.5e-06", "5e-06", "1e-05", "2.5e-05", "5e-05",
      "0.0001", "0.00025", "0.0005", "0.001", "0.01",    "0.1",   "1",     "+Inf"};
  std::string text;
  for (std::size_t i = 0; i < cumulative.size(); ++i)
    text += family + "_bucket{" + label + ",le=\"" + bounds[i] + "\"} " +
            std::to_string(cumulative[i]) + "\n";
  text += family + "_sum{" + label + "} " + sum + "\n";
  text += family + "_count{" + label + "} " + std::to_string(count) + "\n";
  return text;
}

}  // namespace

TEST(LatencyExposition, PrometheusGolden) {
  constexpr std::array<std::uint64_t, 17> empty{};
  const std::string expected =
      "# HELP t_events_total Events by lane and outcome; retried, short_circuited, replayed and "
      "handler_errors count deliveries; rejected_full, rejected_stopped, vetoed and "
      "journal_refused "
      "were never accepted.\n"
      "# TYPE t_events_total counter\n" +
      outcome_lines("t_events_total", R"(lane="critical")",
                    {10, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) +
      outcome_lines("t_events_total", R"(lane="high")",
                    {11, 10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) +
      outcome_lines("t_events_total", R"(lane="normal")",
                    {12, 11, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) +
      outcome_lines("t_events_total", R"(lane="low")",
                    {13, 12, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) +
      "# HELP t_type_events_total Events by event type and outcome.\n"
      "# TYPE t_type_events_total counter\n" +
      outcome_lines("t_type_events_total", R"(type="app::Quote")",
                    {46, 42, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) +
      R"(# HELP t_type_unconflated_total Events of a conflated type queued unconflated: their key found no slot (conflate_by's Keys were all taken).
# TYPE t_type_unconflated_total counter
t_type_unconflated_total{type="app::Quote"} 0
# HELP t_lane_depth Events queued in the lane (snapshot).
# TYPE t_lane_depth gauge
t_lane_depth{lane="critical"} 0
t_lane_depth{lane="high"} 0
t_lane_depth{lane="normal"} 0
t_lane_depth{lane="low"} 0
# HELP t_lane_in_flight Events queued in or being dispatched from the lane (snapshot).
# TYPE t_lane_in_flight gauge
t_lane_in_flight{lane="critical"} 0
t_lane_in_flight{lane="high"} 0
t_lane_in_flight{lane="normal"} 0
t_lane_in_flight{lane="low"} 0
# HELP t_lane_waiting Events of the lane waiting in the timer: a retry pending, or delayed (snapshot).
# TYPE t_lane_waiting gauge
t_lane_waiting{lane="critical"} 0
t_lane_waiting{lane="high"} 0
t_lane_waiting{lane="normal"} 0
t_lane_waiting{lane="low"} 0
# HELP t_lane_capacity Configured capacity of each lane.
# TYPE t_lane_capacity gauge
t_lane_capacity{lane="critical"} 64
t_lane_capacity{lane="high"} 64
t_lane_capacity{lane="normal"} 64
t_lane_capacity{lane="low"} 64
# HELP t_in_flight Events queued or being dispatched (snapshot).
# TYPE t_in_flight gauge
t_in_flight 0
# HELP t_batches_total Batches drained.
# TYPE t_batches_total counter
t_batches_total 5
# HELP t_batched_events_total Events in drained batches.
# TYPE t_batched_events_total counter
t_batched_events_total 46
# HELP t_lane_allocations_total Enqueues that grew a lane beyond its reserved memory.
# TYPE t_lane_allocations_total counter
t_lane_allocations_total 0
# HELP t_parks_total Times an idle worker went to sleep.
# TYPE t_parks_total counter
t_parks_total 0
# HELP t_workers Worker threads.
# TYPE t_workers gauge
t_workers 1
# HELP t_threads Threads with counter blocks on this bus.
# TYPE t_threads gauge
t_threads 2
# HELP t_dead_letters Entries in the dead-letter queue (snapshot).
# TYPE t_dead_letters gauge
t_dead_letters 0
# HELP t_dead_letters_evicted_total Dead letters dropped, oldest first, from a full queue.
# TYPE t_dead_letters_evicted_total counter
t_dead_letters_evicted_total 0
# HELP t_timer_entries Retries and delayed events waiting in the timer (snapshot).
# TYPE t_timer_entries gauge
t_timer_entries 0
# HELP t_subscription_deliveries_total Failed deliveries by subscription: errors thrown, retries scheduled, short circuits, dead letters.
# TYPE t_subscription_deliveries_total counter
# HELP t_subscription_breaker_state 1 for the breaker's current state (closed, open, half_open), by subscription with a breaker.
# TYPE t_subscription_breaker_state gauge
# HELP t_queue_wait_seconds Time from publish to the start of the batch that ran the event, by lane.
# TYPE t_queue_wait_seconds histogram
)" +
      histogram_lines("t_queue_wait_seconds", R"(lane="critical")",
                      {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 9, 9, 9, 9, 10}, "0.001234567", 10) +
      histogram_lines("t_queue_wait_seconds", R"(lane="high")", empty, "0", 0) +
      histogram_lines("t_queue_wait_seconds", R"(lane="normal")", empty, "0", 0) +
      histogram_lines("t_queue_wait_seconds", R"(lane="low")", empty, "0", 0) +
      "# HELP t_handler_seconds Time to run all handlers of one event, by event type.\n"
      "# TYPE t_handler_seconds histogram\n" +
      histogram_lines("t_handler_seconds", R"(type="app::Quote")",
                      {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 18, 18, 18, 18, 18, 18, 20},
                      "0.002469134", 20);
  EXPECT_EQ(golden_snapshot().to_prometheus("t"), expected);
}

TEST(LatencyExposition, JsonGolden) {
  const std::string expected =
      R"({"total":{"accepted":46,"dispatched":42,"failed":4,"dropped":0,"discarded":0,"rejected_full":0,"rejected_stopped":0,"handler_errors":0,"dead_lettered":0,"expired":0,"retried":0,"short_circuited":0,"replayed":0,"conflated":0,"displaced":0,"vetoed":0,"journal_refused":0},"lanes":[{"lane":"critical","depth":0,"waiting":0,"in_flight":0,"capacity":64,"counts":{"accepted":10,"dispatched":9,"failed":1,"dropped":0,"discarded":0,"rejected_full":0,"rejected_stopped":0,"handler_errors":0,"dead_lettered":0,"expired":0,"retried":0,"short_circuited":0,"replayed":0,"conflated":0,"displaced":0,"vetoed":0,"journal_refused":0},"queue_wait":{"count":10,"sum":1234567,"p50":800,"p90":2000,"p99":40000,"p999":90000,"max":2000000000}},{"lane":"high","depth":0,"waiting":0,"in_flight":0,"capacity":64,"counts":{"accepted":11,"dispatched":10,"failed":1,"dropped":0,"discarded":0,"rejected_full":0,"rejected_stopped":0,"handler_errors":0,"dead_lettered":0,"expired":0,"retried":0,"short_circuited":0,"replayed":0,"conflated":0,"displaced":0,"vetoed":0,"journal_refused":0},"queue_wait":{"count":0,"sum":0,"p50":0,"p90":0,"p99":0,"p999":0,"max":0}},{"lane":"normal","depth":0,"waiting":0,"in_flight":0,"capacity":64,"counts":{"accepted":12,"dispatched":11,"failed":1,"dropped":0,"discarded":0,"rejected_full":0,"rejected_stopped":0,"handler_errors":0,"dead_lettered":0,"expired":0,"retried":0,"short_circuited":0,"replayed":0,"conflated":0,"displaced":0,"vetoed":0,"journal_refused":0},"queue_wait":{"count":0,"sum":0,"p50":0,"p90":0,"p99":0,"p999":0,"max":0}},{"lane":"low","depth":0,"waiting":0,"in_flight":0,"capacity":64,"counts":{"accepted":13,"dispatched":12,"failed":1,"dropped":0,"discarded":0,"rejected_full":0,"rejected_stopped":0,"handler_errors":0,"dead_lettered":0,"expired":0,"retried":0,"short_circuited":0,"replayed":0,"conflated":0,"displaced":0,"vetoed":0,"journal_refused":0},"queue_wait":{"count":0,"sum":0,"p50":0,"p90":0,"p99":0,"p999":0,"max":0}}],"types":[{"name":"app::Quote","counts":{"accepted":46,"dispatched":42,"failed":4,"dropped":0,"discarded":0,"rejected_full":0,"rejected_stopped":0,"handler_errors":0,"dead_lettered":0,"expired":0,"retried":0,"short_circuited":0,"replayed":0,"conflated":0,"displaced":0,"vetoed":0,"journal_refused":0},"handler_time":{"count":20,"sum":2469134,"p50":1600,"p90":4000,"p99":80000,"p999":180000,"max":4000000000},"unconflated":0}],"subscriptions":[],"dead_letters":0,"dead_letters_evicted":0,"timer_entries":0,"in_flight":0,"batches":5,"batched_events":46,"lane_allocations":0,"parks":0,"workers":1,"threads":2,"latency_histograms":true})";
  EXPECT_EQ(golden_snapshot().to_json(), expected);
}

TEST(LatencyExposition, PrometheusLeavesTheFamiliesOutWhenOff) {
  auto m = golden_snapshot();
  m.latency_histograms = false;
  const std::string text = m.to_prometheus("t");
  EXPECT_THAT(text, Not(HasSubstr("_seconds")));
  EXPECT_THAT(text, HasSubstr("t_threads 2\n"));
  EXPECT_THAT(m.to_json(), HasSubstr("\"latency_histograms\":false}"));
}
