// test_fixture: unit tests for code that reacts to events, with a fresh bus per test where
// other buses would need a shared one's reset(). Manual mode (config.workers = 0): nothing runs
// until the test calls poll(), on the test's own thread, so each assertion sees a settled bus.
// A virtual clock (tachyon::virtual_time_traits) makes a retry's backoff pass when the test
// says so: bus.time_source().advance(...).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <utility>
#include <vector>

#include <tachyon/tachyon.hpp>

using namespace std::chrono_literals;

struct OrderPlaced {
  std::uint64_t id;
  double amount;
};
struct OrderCharged {
  std::uint64_t id;
  std::uint8_t attempt;  // 0: charged at the first try
};
using Events = tachyon::registry<OrderPlaced, OrderCharged>;
using test_bus = tachyon::bus<Events, tachyon::virtual_time_traits>;

// The code under test: charges each placed order through a payment gateway, which throws when
// it is down, retries after 10 ms, then 20 ms, and publishes OrderCharged when it succeeds.
class billing {
 public:
  billing(test_bus& bus, std::function<void(const OrderPlaced&)> gateway)
      : bus_(bus),
        gateway_(std::move(gateway)),
        sub_(bus.subscribe<OrderPlaced>(
            [this](const OrderPlaced& o, const tachyon::meta& m) {
              gateway_(o);
              (void)bus_.publish(OrderCharged{o.id, m.attempt});
            },
            {.name = "billing",
             .retry = {.max_attempts = 3, .initial_delay = 10ms, .max_delay = 1s}})) {}

 private:
  test_bus& bus_;
  std::function<void(const OrderPlaced&)> gateway_;
  tachyon::subscription sub_;
};

class BillingTest : public ::testing::Test {
 protected:
  static tachyon::config manual() {
    tachyon::config cfg{.workers = 0, .overflow = tachyon::overflow::fail};
    cfg.dead_letter_capacity = 16;  // a charge that fails for good is kept, to replay
    return cfg;
  }
  void publish_order(std::uint64_t id) {
    ASSERT_EQ(bus.publish(OrderPlaced{id, 100.0}), tachyon::result::ok);
  }
  // Every accepted event ended in exactly one outcome; nothing queued or waiting for a retry.
  void expect_settled() {
    const tachyon::metrics_snapshot m = bus.metrics();
    EXPECT_EQ(m.total.unsettled(), 0);
    EXPECT_EQ(m.in_flight, 0u);
    EXPECT_EQ(m.timer_entries, 0u);
  }

  test_bus bus{manual()};    // a new one for every test: nothing carries over
  int gateway_failures = 0;  // the next calls that throw
  billing under_test{bus, [this](const OrderPlaced&) {
                       if (gateway_failures == 0) return;
                       --gateway_failures;
                       throw std::runtime_error("payment gateway timed out");
                     }};
  std::vector<OrderCharged> charged;  // what the code under test published, seen by a spy
  tachyon::subscription spy =
      bus.subscribe<OrderCharged>([this](const OrderCharged& c) { charged.push_back(c); });
};

TEST_F(BillingTest, NothingRunsUntilTheTestPolls) {
  publish_order(1);
  publish_order(2);
  EXPECT_TRUE(charged.empty());
  EXPECT_EQ(bus.poll(), 4u);  // both orders, then the two OrderCharged they published
  ASSERT_EQ(charged.size(), 2u);
  EXPECT_EQ(charged[0].id, 1u);
  EXPECT_EQ(charged[1].id, 2u);
  EXPECT_EQ(bus.metrics().total.dispatched, 4u);
  expect_settled();
}

TEST_F(BillingTest, EachTestStartsFromAnEmptyBus) {
  EXPECT_EQ(bus.metrics().total.accepted, 0u);
  EXPECT_EQ(bus.poll(), 0u);
}

TEST_F(BillingTest, AFailedChargeIsRetriedWhenItsBackoffHasPassed) {
  gateway_failures = 2;
  publish_order(7);
  EXPECT_EQ(bus.poll(), 1u);  // attempt 0 throws: a retry is due in 10 ms
  bus.time_source().advance(9ms);
  EXPECT_EQ(bus.poll(), 0u);  // not yet
  bus.time_source().advance(1ms);
  EXPECT_EQ(bus.poll(), 1u);  // attempt 1 throws: the next is due 20 ms later
  EXPECT_TRUE(charged.empty());
  bus.time_source().advance(20ms);
  EXPECT_EQ(bus.poll(), 2u);  // attempt 2 charges, and OrderCharged runs
  ASSERT_EQ(charged.size(), 1u);
  EXPECT_EQ(charged[0].attempt, 2);
  const tachyon::metrics_snapshot m = bus.metrics();
  EXPECT_EQ(m.total.handler_errors, 2u);
  EXPECT_EQ(m.total.retried, 2u);
  EXPECT_EQ(m.total.dispatched, 2u);
  expect_settled();
}

TEST_F(BillingTest, AChargeThatKeepsFailingIsDeadLetteredThenReplayed) {
  gateway_failures = 3;
  publish_order(7);
  bus.poll();
  for (auto backoff : {10ms, 20ms}) {
    bus.time_source().advance(backoff);
    bus.poll();
  }
  EXPECT_TRUE(charged.empty());
  EXPECT_EQ(bus.dead_letter_count(), 1u);
  EXPECT_EQ(bus.metrics().total.dead_lettered, 1u);
  expect_settled();

  const tachyon::replay_result r = bus.replay_dead_letters();  // the gateway is back
  EXPECT_EQ(r.succeeded, 1u);
  EXPECT_EQ(bus.poll(), 1u);  // the OrderCharged the replay published
  ASSERT_EQ(charged.size(), 1u);
  EXPECT_EQ(bus.dead_letter_count(), 0u);
}
