// Reading a journal back: filters, replay into a bus, types read at other versions or layouts,
// segments rolling and retention, durability modes, and the configuration's checks.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <set>
#include <stdexcept>
#include <thread>

#include "common.hpp"
#include "journal/journal_types.hpp"

namespace jt {

/// test.Order as an older build wrote it (version 1: no note).
struct OrderV1 {
  std::string sku;
  std::uint32_t qty = 0;
};
/// test.Order as a newer build writes it (version 3): this build's codec reads up to 2.
struct OrderV3 {
  std::string sku;
};
/// One name, two layouts of a raw type.
struct RawSmall {
  std::int32_t x;
};
struct RawBig {
  std::int64_t x, y;
};

}  // namespace jt

template <>
struct tachyon::codec<jt::OrderV1> {
  static constexpr std::string_view name = "test.Order";
  static constexpr std::uint32_t version = 1;
  static void encode(const jt::OrderV1& o, tachyon::writer& w) {
    w.put(std::string_view(o.sku));
    w.put(o.qty);
  }
  static jt::OrderV1 decode(tachyon::reader& r, std::uint32_t) {
    jt::OrderV1 o;
    o.sku = r.get_string();
    o.qty = r.get<std::uint32_t>();
    return o;
  }
};
template <>
struct tachyon::codec<jt::OrderV3> {
  static constexpr std::string_view name = "test.Order";
  static constexpr std::uint32_t version = 3;
  static void encode(const jt::OrderV3& o, tachyon::writer& w) { w.put(std::string_view(o.sku)); }
  static jt::OrderV3 decode(tachyon::reader& r, std::uint32_t) { return {r.get_string()}; }
};
template <>
struct tachyon::codec<jt::RawSmall> {
  static constexpr std::string_view name = "test.Raw";
  static constexpr std::uint32_t version = 1;
};
template <>
struct tachyon::codec<jt::RawBig> {
  static constexpr std::string_view name = "test.Raw";
  static constexpr std::uint32_t version = 1;
};

namespace {

using jt::Order;
using jt::Tick;
using tachyon::journal_filter;
using tachyon::journal_reader;
using tachyon::outcome;
using tachyon::publish_options;
using tachyon::result;

tachyon::config manual_journal(const jt::temp_dir& d) {
  tachyon::config c = jt::journaled(d, 0);
  c.lane_capacity = 4096;
  c.overflow = tachyon::overflow::fail;
  c.producers = 2;
  return c;
}

/// 100 ticks (ids 0..99, correlation id = id % 5) and 10 orders after every tenth tick.
std::uint64_t write_sample(const jt::temp_dir& dir) {
  tachyon::bus<jt::Events> bus(manual_journal(dir));
  for (std::uint64_t i = 0; i < 100; ++i) {
    EXPECT_EQ(bus.publish(Tick{i, 0}, publish_options{.correlation_id = i % 5}), result::ok);
    if (i % 10 == 9) {
      EXPECT_EQ(bus.publish(Order{"o" + std::to_string(i), 1, ""}), result::ok);
    }
  }
  bus.stop();
  return bus.journal_run_id();
}

TEST(JournalRead, FiltersPickTypesRunsSequencesTimesAndCorrelations) {
  jt::temp_dir dir;
  const std::uint64_t run = write_sample(dir);
  auto count = [&](journal_filter f) { return jt::read_all(dir.path, std::move(f)).size(); };
  EXPECT_EQ(count({}), 110u);
  EXPECT_EQ(count({.types = {"test.Order"}}), 10u);
  EXPECT_EQ(
      count({.types = {"test.Order", std::string(tachyon::bus<jt::Events>::type_name<Tick>())}}),
      110u);
  EXPECT_EQ(count({.types = {"no.such.Type"}}), 0u);
  EXPECT_EQ(count({.run_id = run}), 110u);
  EXPECT_EQ(count({.run_id = run + 1}), 0u);
  EXPECT_EQ(count({.correlation_id = 3}), 20u);
  // From a sequence: the 50th record on, inclusive.
  const auto all = jt::read_all(dir.path);
  const auto from =
      jt::read_all(dir.path, {.run_id = run, .from_sequence = all[50].header.sequence});
  ASSERT_EQ(from.size(), 60u);
  EXPECT_EQ(from.front().header.sequence, all[50].header.sequence);
  // Times: all of them lie within the run; none before it or after now.
  EXPECT_EQ(count({.to_time = all.front().time}), 0u);
  EXPECT_EQ(count({.from_time = all.front().time}), 110u);
  EXPECT_EQ(count({.from_time = std::chrono::system_clock::now() + std::chrono::hours(1)}), 0u);
  // Outcome records, when asked for, come beside the events.
  EXPECT_EQ(count({.outcome_records = true}), 220u);
  // Times never go backwards within the run's one thread.
  for (std::size_t i = 1; i < all.size(); ++i) EXPECT_LE(all[i - 1].time, all[i].time);
}

TEST(JournalRead, ReplayPublishesIntoABusAsExternalReplayedEvents) {
  jt::temp_dir dir;
  write_sample(dir);
  tachyon::bus<jt::Events> target(tachyon::config{
      .workers = 0, .lane_capacity = 4096, .overflow = tachyon::overflow::fail, .producers = 2});
  std::vector<std::uint64_t> ids;
  int orders = 0;
  auto a = target.subscribe<Tick>([&](const Tick& t, const tachyon::meta& m) {
    EXPECT_EQ(m.flags, tachyon::meta_flags::external | tachyon::meta_flags::replayed);
    EXPECT_EQ(m.correlation_id, t.id % 5);
    EXPECT_EQ(m.lane, tachyon::priority::normal);
    ids.push_back(t.id);
  });
  auto b = target.subscribe<Order>([&](const Order& o, const tachyon::meta& m) {
    EXPECT_EQ(m.lane, tachyon::priority::high);
    EXPECT_EQ(o.qty, 1u);
    ++orders;
  });
  const auto report = tachyon::replay(target, dir.path);
  EXPECT_EQ(report.published, 110u);
  EXPECT_EQ(report.refused, 0u);
  EXPECT_EQ(report.skipped_types, 0u);
  EXPECT_TRUE(report.scan.clean());
  target.poll();
  target.poll();
  ASSERT_EQ(ids.size(), 100u);
  for (std::uint64_t i = 0; i < 100; ++i) EXPECT_EQ(ids[i], i);
  EXPECT_EQ(orders, 10);

  // A bus that does not register Order skips its records and says how many.
  using TicksOnly = tachyon::registry<Tick>;
  tachyon::bus<TicksOnly> narrow(tachyon::config{
      .workers = 0, .lane_capacity = 4096, .overflow = tachyon::overflow::fail, .producers = 2});
  const auto r2 = tachyon::replay(narrow, dir.path);
  EXPECT_EQ(r2.published, 100u);
  EXPECT_EQ(r2.skipped_types, 10u);
  const auto r2b = tachyon::replay(narrow, dir.path, {.correlation_id = 3});
  EXPECT_EQ(r2b.published, 20u);  // ids 3, 8, 13, ...
  EXPECT_EQ(r2b.skipped_types, 0u);
  // A lane that fills refuses the rest, counted.
  tachyon::bus<TicksOnly> tiny(tachyon::config{
      .workers = 0, .lane_capacity = 8, .overflow = tachyon::overflow::fail, .producers = 2});
  const auto r3 = tachyon::replay(
      tiny, dir.path, {.types = {std::string(tachyon::bus<TicksOnly>::type_name<Tick>())}});
  EXPECT_EQ(r3.published, 8u);
  EXPECT_EQ(r3.refused, 92u);
  EXPECT_EQ(tiny.metrics().total.rejected_full, 92u);
}

template <class T>
void write_one(const jt::temp_dir& dir, const T& ev) {
  using R = tachyon::registry<tachyon::event<T, tachyon::priority::normal, tachyon::journaled>>;
  tachyon::config c;
  c.workers = 0;
  c.overflow = tachyon::overflow::fail;
  c.journal.directory = dir.str();
  c.journal.segment_bytes = 64 << 10;
  tachyon::bus<R> bus(c);
  EXPECT_EQ(bus.publish(ev), result::ok);
  bus.stop();
}

TEST(JournalRead, OlderVersionsReadThroughTheCodecAndTheRestIsRefusedByName) {
  {
    jt::temp_dir dir;
    write_one(dir, jt::OrderV1{"old", 7});
    journal_reader in(dir.path);
    std::size_t n = 0;
    for (const auto& r : in) {
      ++n;
      ASSERT_NE(r.type, nullptr);
      EXPECT_EQ(r.type->version, 1u);
      EXPECT_FALSE(r.type->raw);
      const Order o = r.decode<Order>();  // this build's codec: version 2, oldest 1
      EXPECT_EQ(o.sku, "old");
      EXPECT_EQ(o.qty, 7u);
      EXPECT_EQ(o.note, "");
      EXPECT_THROW((void)r.decode<Tick>(), tachyon::journal_error);
    }
    EXPECT_EQ(n, 1u);
  }
  {
    jt::temp_dir dir;
    write_one(dir, jt::OrderV3{"new"});
    journal_reader in(dir.path);
    for (const auto& r : in) {
      try {
        (void)r.decode<Order>();
        ADD_FAILURE() << "a version-3 record decoded as version 2";
      } catch (const tachyon::codec_error& e) {
        EXPECT_NE(std::string(e.what()).find("version 3"), std::string::npos) << e.what();
      }
    }
  }
  {
    jt::temp_dir dir;
    write_one(dir, jt::RawSmall{5});
    journal_reader in(dir.path);
    for (const auto& r : in) {
      EXPECT_EQ(r.decode<jt::RawSmall>().x, 5);
      try {
        (void)r.decode<jt::RawBig>();
        ADD_FAILURE() << "raw bytes of one layout read as another";
      } catch (const tachyon::journal_error& e) {
        EXPECT_NE(std::string(e.what()).find("4 bytes aligned 4"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("16 bytes aligned 8"), std::string::npos) << e.what();
      }
    }
  }
}

TEST(JournalRead, SegmentsRollAndRetentionKeepsTheNewest) {
  jt::temp_dir dir;
  tachyon::config c = manual_journal(dir);
  c.journal.segment_bytes = 64 << 10;  // 60 KiB of records: 853 ticks of 72 bytes
  c.journal.retain_segments = 3;
  {
    tachyon::bus<jt::Events> bus(c);
    for (std::uint64_t i = 0; i < 10000; ++i) {
      ASSERT_EQ(bus.publish(Tick{i, 0}), result::ok);
      if (i % 1000 == 999) bus.poll(1000);
    }
    bus.stop();
    const auto s = bus.journal_stats();
    EXPECT_EQ(s.records, 10000u);
    EXPECT_GE(s.segments, 20u);  // events and their outcomes, 10000 of each
    // Each segment is its writer's first, or was made ahead, or made inline on a roll (a
    // prepared one may also be left unused when the bus closes).
    EXPECT_GE(s.prepared + s.made_inline + s.writers, s.segments);
  }
  // Retention runs on the journal's thread as segments close, and once more when the bus
  // closes its journal: after that, three segments are left, the newest.
  EXPECT_LE(dir.segments().size(), 3u);
  journal_reader in(dir.path);
  std::uint64_t last = 0, n = 0;
  for (const auto& r : in) {
    const Tick t = r.decode<Tick>();
    if (n++ != 0) {
      EXPECT_EQ(t.id, last + 1);  // the newest stretch, whole
    }
    last = t.id;
  }
  EXPECT_EQ(last, 9999u);
  EXPECT_GT(n, 0u);
  EXPECT_LT(n, 3u * 853u);  // at most three segments' worth
  EXPECT_EQ(in.scan().gaps, 0u);
  EXPECT_TRUE(in.scan().clean());
}

TEST(JournalRead, RetentionByBytesCountsEveryRunsSegments) {
  jt::temp_dir dir;
  tachyon::config c = manual_journal(dir);
  c.journal.segment_bytes = 64 << 10;
  c.journal.retain_bytes = 256 << 10;
  for (int run = 0; run < 3; ++run) {
    tachyon::bus<jt::Events> bus(c);
    for (std::uint64_t i = 0; i < 3000; ++i) {
      ASSERT_EQ(bus.publish(Tick{i, 0}), result::ok);
      if (i % 1000 == 999) bus.poll(1000);
    }
    bus.stop();
  }
  std::uint64_t bytes = 0;  // on the disk: a closed segment's unused tail is a hole
  for (const auto& f : dir.segments()) {
    struct stat st {};
    ASSERT_EQ(::stat(f.c_str(), &st), 0);
    bytes += static_cast<std::uint64_t>(st.st_blocks) * 512;
  }
  EXPECT_LE(bytes, 256u << 10);
  EXPECT_GT(bytes, 0u);
}

TEST(JournalRead, IntervalAndEveryEventDurabilitySync) {
  for (const auto mode : {tachyon::durability::interval, tachyon::durability::every_event}) {
    jt::temp_dir dir;
    tachyon::config c = manual_journal(dir);
    c.journal.durability = mode;
    c.journal.sync_interval = std::chrono::milliseconds(1);
    tachyon::bus<jt::Events> bus(c);
    for (std::uint64_t i = 0; i < 20; ++i) ASSERT_EQ(bus.publish(Tick{i, 0}), result::ok);
    if (mode == tachyon::durability::every_event) {
      // One per event before its publish returned, besides those of the directory (a segment
      // made) and of a segment's header (taken by the writer).
      EXPECT_GE(bus.journal_stats().syncs, 20u);
    } else {
      EXPECT_TRUE(tt::eventually([&] { return bus.journal_stats().syncs > 0; }));
    }
    EXPECT_EQ(bus.journal_stats().sync_failures, 0u);
    bus.stop();
  }
}

TEST(JournalRead, ManyThreadsKeepTheirOwnOrderAndEveryEventIsThereOnce) {
  jt::temp_dir dir;
  constexpr int publishers = 3;
  constexpr std::uint64_t each = 3000;
  {
    tachyon::config c = jt::journaled(dir, 2);
    c.journal.segment_bytes = 64 << 10;  // rolls while the threads publish
    tachyon::bus<jt::Events> bus(c);
    std::atomic<std::uint64_t> ran{0};
    auto s = bus.subscribe<Tick>([&](const Tick&) { ran.fetch_add(1); });
    std::vector<std::thread> ts;
    for (int p = 0; p < publishers; ++p)
      ts.emplace_back([&, p] {
        for (std::uint64_t i = 0; i < each; ++i)
          ASSERT_EQ(bus.publish(Tick{static_cast<std::uint64_t>(p) << 32 | i, 0}), result::ok);
      });
    for (auto& t : ts) t.join();
    ASSERT_TRUE(tt::eventually([&] { return ran.load() == publishers * each; }));
    bus.stop();
    const auto js = bus.journal_stats();
    EXPECT_EQ(js.records, publishers * each);
    EXPECT_EQ(js.outcomes, publishers * each);
    // A publisher and a worker at least: a thread that ended hands its context (and writer) to
    // the next thread that starts, so three short-lived publishers may share fewer.
    EXPECT_GE(js.writers, 2u);
  }
  journal_reader in(dir.path);
  std::vector<std::uint64_t> next(publishers, 0);
  std::uint64_t n = 0;
  for (const auto& r : in) {
    const Tick t = r.decode<Tick>();
    const auto p = static_cast<std::size_t>(t.id >> 32);
    ASSERT_LT(p, next.size());
    EXPECT_EQ(t.id & 0xffffffffu, next[p]++);  // each thread's events in its order
    EXPECT_EQ(r.outcome, outcome::dispatched);
    ++n;
  }
  EXPECT_EQ(n, publishers * each);
  EXPECT_TRUE(in.scan().clean());
  EXPECT_EQ(in.scan().orphan_outcomes, 0u);
}

TEST(JournalRead, BadSettingsAndDirectoriesAreRefusedByName) {
  jt::temp_dir dir;
  auto refused = [&](auto edit, const char* field) {
    tachyon::config c = manual_journal(dir);
    edit(c);
    try {
      tachyon::bus<jt::Events> bus(c);
      ADD_FAILURE() << field << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  refused([](tachyon::config& c) { c.journal.segment_bytes = 4096; }, "journal.segment_bytes");
  refused([](tachyon::config& c) { c.journal.segment_bytes = (64 << 10) + 1; },
          "journal.segment_bytes");
  refused([](tachyon::config& c) { c.journal.sync_interval = std::chrono::milliseconds(0); },
          "journal.sync_interval");
  refused([](tachyon::config& c) { c.journal.durability = static_cast<tachyon::durability>(9); },
          "journal.durability");
  // A directory that is a file.
  const auto file = dir.path / "plain-file";
  { std::ofstream(file) << "x"; }
  tachyon::config c = manual_journal(dir);
  c.journal.directory = file.string();
  try {
    tachyon::bus<jt::Events> bus(c);
    ADD_FAILURE() << "a file was taken for a journal directory";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("plain-file"), std::string::npos) << e.what();
  }
  // No journal: nothing is written, and journal_stats says so.
  tachyon::bus<jt::Events> off(tachyon::config{.workers = 0, .overflow = tachyon::overflow::fail});
  EXPECT_EQ(off.publish(Tick{1, 0}), result::ok);
  EXPECT_FALSE(off.journal_stats().enabled);
  EXPECT_EQ(off.journal_run_id(), 0u);
  // A reader of a directory that does not exist says which.
  try {
    journal_reader in(dir.path / "missing");
    ADD_FAILURE() << "a missing directory was read";
  } catch (const tachyon::journal_error& e) {
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos) << e.what();
  }
}

}  // namespace
