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

namespace {

using tachyon::publish_options;
using VBus = tachyon::bus<jt::Events, tachyon::virtual_time_traits>;

tachyon::config manual_journal(const jt::temp_dir& d, std::uint32_t capacity = 64) {
  tachyon::config c = jt::journaled(d, 0);
  c.lane_capacity = capacity;
  c.overflow = tachyon::overflow::fail;
  c.producers = 2;
  return c;
}

/// sequence -> (type name, outcome) of every event record.
std::map<std::uint64_t, std::pair<std::string, std::optional<outcome>>> outcomes_in(
    const std::filesystem::path& dir) {
  std::map<std::uint64_t, std::pair<std::string, std::optional<outcome>>> out;
  journal_reader in(dir);
  for (const auto& r : in) out[r.header.sequence] = {std::string(r.type_name()), r.outcome};
  EXPECT_TRUE(in.scan().clean());
  for (const auto& p : in.scan().problems)
    ADD_FAILURE() << tachyon::to_string(p.what) << " " << p.file << " @" << p.offset << " "
                  << p.bytes << ": " << p.detail;
  return out;
}

TEST(Journal, EachOutcomeOfTheBusIsAppendedWhereTheEventSettles) {
  jt::temp_dir dir;
  std::vector<std::uint64_t> seq(8);
  {
    tachyon::config c = manual_journal(dir, 4);
    c.dead_letter_capacity = 16;
    c.overflow = tachyon::overflow::drop_oldest;
    VBus bus(c);
    std::vector<std::uint64_t> ran;
    auto a = bus.subscribe<Tick>([&](const Tick& t, const tachyon::meta& m) {
      if (t.id == 1) throw std::runtime_error("to the dead letters");
      ran.push_back(m.sequence);
    });
    tachyon::subscribe_options<Order> no_dead_letters;
    no_dead_letters.dead_letters = false;
    auto b = bus.subscribe<Order>([](const Order&) { throw std::runtime_error("fails"); },
                                  std::move(no_dead_letters));
    // Sequences are this thread's count in the high bits: published in this order.
    ASSERT_EQ(bus.publish(Tick{0, 0}), result::ok);         // dispatched
    ASSERT_EQ(bus.publish(Tick{1, 0}), result::ok);         // dead_lettered
    ASSERT_EQ(bus.publish(Order{"x", 1, ""}), result::ok);  // failed
    ASSERT_EQ(
        bus.publish(Tick{3, 0}, publish_options{.deadline = bus.now() + std::chrono::seconds(1)}),
        result::ok);  // expired once the clock moves
    bus.time_source().advance(std::chrono::seconds(2));
    EXPECT_EQ(bus.poll(), 4u);
    // A full lane (4) under drop_oldest: the fifth publish displaces the first of these.
    for (std::uint64_t i = 10; i < 15; ++i) ASSERT_EQ(bus.publish(Tick{i, 0}), result::ok);
    EXPECT_EQ(bus.stop(tachyon::stop_mode::discard), 4u);  // the four left: discarded
    EXPECT_EQ(bus.metrics().total.displaced, 1u);
  }
  const auto got = outcomes_in(dir.path);
  ASSERT_EQ(got.size(), 9u);
  std::vector<std::optional<outcome>> in_order;
  for (const auto& [s, v] : got) in_order.push_back(v.second);
  const std::vector<std::optional<outcome>> want = {
      outcome::dispatched, outcome::dead_lettered, outcome::failed,
      outcome::expired,    outcome::displaced,     outcome::discarded,
      outcome::discarded,  outcome::discarded,     outcome::discarded};
  EXPECT_EQ(in_order, want);
}

TEST(Journal, ARecordThatCannotBeWrittenRefusesThePublishAndIsCounted) {
  jt::temp_dir dir;
  tachyon::config c = manual_journal(dir);
  c.journal.segment_bytes = 64 << 10;
  tachyon::bus<jt::Events> bus(c);
  int ran = 0;
  auto s = bus.subscribe<Order>([&](const Order&) { ++ran; });
  Order big{std::string(64 << 10, 'x'), 1, ""};
  EXPECT_EQ(bus.publish(big), result::journal_failed);
  EXPECT_EQ(tachyon::to_string(result::journal_failed), "journal_failed");
  EXPECT_EQ(big.sku.size(), std::size_t{64} << 10);  // refused: the caller keeps it
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.journal_refused, 1u);
  EXPECT_EQ(m.total.accepted, 0u);
  EXPECT_EQ(m.lanes[1].counts.journal_refused, 1u);  // Order's lane: high
  const auto js = bus.journal_stats();
  EXPECT_EQ(js.refused, 1u);
  EXPECT_NE(js.last_error.find("does not fit"), std::string::npos) << js.last_error;
  EXPECT_NE(js.last_error.find("segment_bytes"), std::string::npos) << js.last_error;
  // The writer goes on: a record that fits is written.
  EXPECT_EQ(bus.publish(Order{"small", 2, ""}), result::ok);
  EXPECT_EQ(bus.poll(), 1u);
  EXPECT_EQ(ran, 1);
  bus.stop();
  const auto all = jt::read_all(dir.path);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].outcome, outcome::dispatched);
}

struct settle_probe : tachyon::settle_listener {
  std::optional<outcome> told;
  settle_probe() {
    settled = [](tachyon::settle_listener& self, const tachyon::meta&, outcome o) noexcept {
      static_cast<settle_probe&>(self).told = o;
    };
  }
};

TEST(Journal, EveryPublishPathIsJournaledWithItsFlags) {
  jt::temp_dir dir;
  settle_probe probe;
  {
    VBus bus(manual_journal(dir));
    auto s = bus.subscribe<Tick>([](const Tick&) {});
    ASSERT_EQ(bus.publish(Tick{1, 0}, publish_options{.key = 7}), result::ok);
    ASSERT_EQ(
        bus.publish(Tick{2, 0}, publish_options{.deadline = bus.now() + std::chrono::hours(1)}),
        result::ok);
    ASSERT_EQ(bus.publish(Tick{3, 0}, publish_options{.on_settle = &probe}), result::ok);
    ASSERT_EQ(
        bus.publish(Tick{4, 0}, publish_options{.not_before = bus.now() + std::chrono::seconds(1)}),
        result::ok);
    ASSERT_EQ(bus.publish(Tick{5, 0}, publish_options{.external = true, .redelivered = true}),
              result::ok);
    const std::vector<Tick> batch = {{6, 0}, {7, 0}};
    const auto br = bus.publish_batch(std::span<const Tick>(batch));
    ASSERT_EQ(br.queued, 2u);
    bus.time_source().advance(std::chrono::seconds(2));
    ASSERT_TRUE(tt::eventually([&] {
      bus.poll();
      return bus.metrics().total.dispatched == 7;
    }));
    bus.stop();
    EXPECT_EQ(bus.journal_stats().records, 7u);
    EXPECT_EQ(bus.journal_stats().outcomes, 7u);
  }
  EXPECT_EQ(probe.told, outcome::dispatched);
  std::map<std::uint64_t, tachyon::journal_record> by_id;
  journal_reader in(dir.path);
  for (const auto& r : in) by_id[r.decode<Tick>().id] = r;
  ASSERT_EQ(by_id.size(), 7u);
  for (const auto& [id, r] : by_id) EXPECT_EQ(r.outcome, outcome::dispatched) << id;
  EXPECT_EQ(by_id[5].header.flags,
            tachyon::meta_flags::external | tachyon::meta_flags::redelivered);
  EXPECT_EQ(by_id[1].header.flags, 0);
  EXPECT_TRUE(in.scan().clean());
}

TEST(Journal, RunsFollowEachOtherInOneDirectoryAndOneBusAtATimeWritesIt) {
  jt::temp_dir dir;
  std::uint64_t first_run = 0, second_run = 0;
  {
    tachyon::bus<jt::Events> bus(manual_journal(dir));
    first_run = bus.journal_run_id();
    try {
      tachyon::bus<jt::Events> second(manual_journal(dir));
      ADD_FAILURE() << "a second bus opened a directory in use";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("in use by another bus"), std::string::npos) << e.what();
    }
    for (std::uint64_t i = 0; i < 5; ++i) ASSERT_EQ(bus.publish(Tick{i, 0}), result::ok);
    bus.stop();
  }
  {
    tachyon::bus<jt::Events> bus(manual_journal(dir));
    second_run = bus.journal_run_id();
    for (std::uint64_t i = 5; i < 8; ++i) ASSERT_EQ(bus.publish(Tick{i, 0}), result::ok);
    bus.stop();
  }
  ASSERT_NE(first_run, second_run);
  journal_reader in(dir.path);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> got;  // run, id
  for (const auto& r : in) got.emplace_back(r.run_id, r.decode<Tick>().id);
  ASSERT_EQ(got.size(), 8u);
  for (std::uint64_t i = 0; i < 8; ++i) {
    EXPECT_EQ(got[i].second, i);
    EXPECT_EQ(got[i].first, i < 5 ? first_run : second_run);
  }
  // Sequences restart with each run: the first event of each has the same one.
  const auto all = jt::read_all(dir.path);
  EXPECT_EQ(all[0].header.sequence, all[5].header.sequence);
  EXPECT_EQ(all[0].outcome, outcome::dispatched);  // stop(drain) ran it
}

}  // namespace

namespace {

TEST(Journal, RefusedPublishesLeaveNothingInTheSegment) {
  jt::temp_dir dir;
  tachyon::bus<jt::Events> bus(manual_journal(dir, 1));
  ASSERT_EQ(bus.publish(Tick{0, 0}), result::ok);
  const auto before = bus.journal_stats();
  for (int i = 0; i < 100000; ++i) ASSERT_EQ(bus.publish(Tick{1, 0}), result::full);
  const auto after = bus.journal_stats();
  EXPECT_EQ(after.bytes, before.bytes);  // a retry loop on a full lane writes nothing
  EXPECT_EQ(after.records, 1u);
  bus.stop();
  bus.poll();
  const auto all = jt::read_all(dir.path);
  ASSERT_EQ(all.size(), 1u);
}

TEST(Journal, DisplacedOutcomesWrittenInsideAPublishSurviveSegmentRolls) {
  // Under drop_oldest each publish into the full lane settles the oldest event as displaced,
  // on the publishing thread, while its own record is claimed: with small segments some of
  // those outcome records roll the segment over under the open claim.
  jt::temp_dir dir;
  constexpr std::uint64_t n = 20000;
  {
    tachyon::config c = manual_journal(dir, 2);
    c.overflow = tachyon::overflow::drop_oldest;
    c.journal.segment_bytes = 64 << 10;
    tachyon::bus<jt::Events> bus(c);
    for (std::uint64_t i = 0; i < n; ++i) ASSERT_EQ(bus.publish(Tick{i, 0}), result::ok);
    EXPECT_EQ(bus.stop(tachyon::stop_mode::discard), 2u);
    EXPECT_EQ(bus.metrics().total.displaced, n - 2);
    EXPECT_EQ(bus.journal_stats().outcomes, n);
    EXPECT_EQ(bus.journal_stats().outcomes_lost, 0u);
  }
  journal_reader in(dir.path);
  std::uint64_t next = 0, displaced = 0, discarded = 0;
  for (const auto& r : in) {
    EXPECT_EQ(r.decode<Tick>().id, next++);
    if (r.outcome == outcome::displaced) ++displaced;
    if (r.outcome == outcome::discarded) ++discarded;
  }
  EXPECT_EQ(next, n);
  EXPECT_EQ(displaced, n - 2);
  EXPECT_EQ(discarded, 2u);
  EXPECT_TRUE(in.scan().clean());
  EXPECT_GT(in.segments().size(), 20u);
}

}  // namespace
