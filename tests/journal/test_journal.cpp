// The journal through a bus: what is written, in what order, with which outcome, and what the
// reader hands back.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>
#include <stdexcept>
#include <thread>

#include "common.hpp"
#include "journal/journal_types.hpp"

namespace {

using jt::Chat;
using jt::Order;
using jt::Tick;
using tachyon::journal_reader;
using tachyon::journal_record_kind;
using tachyon::outcome;
using tachyon::result;

TEST(Journal, EveryAcceptedEventAndItsOutcomeIsReadBackInPublishOrder) {
  jt::temp_dir dir;
  std::atomic<int> ran{0};
  std::uint64_t run = 0;
  {
    tachyon::bus<jt::Events> bus(jt::journaled(dir));
    auto a = bus.subscribe<Tick>([&](const Tick&) { ran.fetch_add(1); });
    auto b = bus.subscribe<Order>([&](const Order&) { ran.fetch_add(1); });
    auto c = bus.subscribe<Chat>([&](const Chat&) { ran.fetch_add(1); });
    for (std::uint64_t i = 0; i < 1000; ++i) {
      ASSERT_EQ(bus.publish(Tick{i, 1.5 * static_cast<double>(i)}), result::ok);
      if (i % 10 == 0) {
        ASSERT_EQ(bus.publish(Order{"sku-" + std::to_string(i), static_cast<std::uint32_t>(i), "n"},
                              tachyon::publish_options{.correlation_id = i + 1}),
                  result::ok);
        ASSERT_EQ(bus.publish(Chat{"not journaled"}), result::ok);
      }
    }
    ASSERT_TRUE(tt::eventually([&] { return ran.load() == 1200; }));
    run = bus.journal_run_id();
    bus.stop();
    const auto s = bus.journal_stats();
    EXPECT_TRUE(s.enabled);
    EXPECT_EQ(s.records, 1100u);
    EXPECT_EQ(s.outcomes, 1100u);
    EXPECT_EQ(s.refused, 0u);
    EXPECT_EQ(s.outcomes_lost, 0u);
    EXPECT_TRUE(s.last_error.empty()) << s.last_error;
  }
  journal_reader in(dir.path);
  std::uint64_t ticks = 0, orders = 0, last_tick = 0;
  bool first = true;
  std::uint64_t last_number = 0;
  for (const auto& r : in) {
    ASSERT_EQ(r.kind, journal_record_kind::event);
    EXPECT_EQ(r.run_id, run);
    ASSERT_TRUE(r.outcome.has_value());
    EXPECT_EQ(*r.outcome, outcome::dispatched);
    if (!first) {
      EXPECT_GT(r.number, last_number);  // one publishing thread: its own order
    }
    first = false;
    last_number = r.number;
    if (r.is<Tick>()) {
      const Tick t = r.decode<Tick>();
      if (ticks != 0) {
        EXPECT_EQ(t.id, last_tick + 1);
      }
      EXPECT_EQ(t.px, 1.5 * static_cast<double>(t.id));
      EXPECT_EQ(r.header.lane, tachyon::priority::normal);
      last_tick = t.id;
      ++ticks;
    } else {
      ASSERT_TRUE(r.is<Order>()) << r.type_name();
      const Order o = r.decode<Order>();
      EXPECT_EQ(o.sku, "sku-" + std::to_string(o.qty));
      EXPECT_EQ(o.note, "n");
      EXPECT_EQ(r.header.correlation_id, o.qty + 1u);
      EXPECT_EQ(r.header.lane, tachyon::priority::high);
      EXPECT_EQ(last_tick, o.qty);  // published right after the tick of the same number
      ++orders;
    }
  }
  EXPECT_EQ(ticks, 1000u);
  EXPECT_EQ(orders, 100u);
  EXPECT_TRUE(in.scan().clean());
  EXPECT_EQ(in.scan().records, 1100u);
  EXPECT_EQ(in.scan().outcome_records, 1100u);
  EXPECT_EQ(in.scan().orphan_outcomes, 0u);
}

}  // namespace
