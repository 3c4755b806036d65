// The journal at its edges: a directory spelt with a trailing slash, a reader that outlives the
// bus that wrote what it maps, a replay into the bus that writes the same directory, publishes
// nested inside a publish, and a record of another run inside a damaged stretch.
#include <gtest/gtest.h>

#include <fstream>
#include <vector>

#include "common.hpp"
#include "journal/journal_types.hpp"

namespace {

using jt::Order;
using jt::Tick;
using tachyon::journal_reader;
using tachyon::outcome;
using tachyon::publish_options;
using tachyon::result;
namespace fmt = tachyon::detail::journal_format;

tachyon::config manual_journal(const std::string& dir, std::uint32_t capacity = 4096) {
  tachyon::config c;
  c.workers = 0;
  c.lane_capacity = capacity;
  c.overflow = tachyon::overflow::fail;
  c.producers = 2;
  c.journal.directory = dir;
  c.journal.segment_bytes = 64 << 10;
  return c;
}

TEST(JournalEdges, RetentionNeverDeletesAnOpenSegmentHoweverTheDirectoryIsSpelt) {
  jt::temp_dir dir;
  tachyon::config c = manual_journal(dir.str() + "//./");
  c.journal.retain_segments = 2;
  constexpr std::uint64_t n = 5000;
  {
    tachyon::bus<jt::Events> bus(c);
    for (std::uint64_t i = 0; i < n; ++i) {
      ASSERT_EQ(bus.publish(Tick{i, 0}), result::ok);
      if (i % 500 == 499) bus.poll(500);
    }
    bus.stop();
  }
  journal_reader in(dir.path);
  std::uint64_t last = 0, count = 0;
  for (const auto& r : in) {
    last = r.decode<Tick>().id;
    ++count;
  }
  EXPECT_EQ(last, n - 1);  // the newest records were kept
  EXPECT_GT(count, 0u);
  EXPECT_TRUE(in.scan().clean());
}

TEST(JournalEdges, AReaderOutlivesTheBusThatClosesWhatItMaps) {
  jt::temp_dir dir;
  auto bus = std::make_unique<tachyon::bus<jt::Events>>(jt::journaled(dir));
  auto s = bus->subscribe<Tick>([](const Tick&) {});
  // 4096 + 512 x 72: the records end on a page boundary, where a cut file would end.
  for (std::uint64_t i = 0; i < 512; ++i) ASSERT_EQ(bus->publish(Tick{i, 0}), result::ok);
  bus->stop();
  journal_reader in(dir.path);
  s.unsubscribe();
  bus.reset();  // closes every segment the reader has mapped
  std::uint64_t count = 0;
  for (const auto& r : in) count += r.is<Tick>();
  EXPECT_EQ(count, 512u);
  EXPECT_TRUE(in.scan().clean());
}

TEST(JournalEdges, AReaderHandsOutWhatWasCommittedWhenItWasMade) {
  jt::temp_dir dir;
  {
    tachyon::bus<jt::Events> first(manual_journal(dir.str()));
    for (std::uint64_t i = 0; i < 100; ++i) ASSERT_EQ(first.publish(Tick{i, 0}), result::ok);
    first.stop();
  }
  // The restart: a bus on the same directory replays what the journal holds into itself; what
  // it journals meanwhile is not read back by the same replay.
  tachyon::bus<jt::Events> again(manual_journal(dir.str()));
  std::uint64_t ran = 0;
  auto s = again.subscribe<Tick>([&](const Tick&) { ++ran; });
  ASSERT_EQ(again.publish(Tick{1000, 0}), result::ok);
  journal_reader in(dir.path);
  const auto report = tachyon::replay(again, in);
  EXPECT_EQ(report.published, 101u);
  while (again.poll() != 0) {
  }
  EXPECT_EQ(ran, 102u);
  again.stop();
}

struct publishing_listener : tachyon::settle_listener {
  tachyon::bus<jt::Events>* bus = nullptr;
  std::vector<std::uint32_t> acked;  // qty of the nested Orders whose publish returned ok
  publishing_listener() {
    settled = [](tachyon::settle_listener& self, const tachyon::meta&, outcome) noexcept {
      auto& me = static_cast<publishing_listener&>(self);
      // Inside the publish that displaced this listener's event: codec'd events (the outer
      // publish's encode lives in the same thread's scratch) large enough to roll segments.
      for (std::uint32_t k = 0; k < 5; ++k) {
        Order big{std::string(30000, static_cast<char>('a' + k)), 100 + k, ""};
        if (me.bus->publish(std::move(big), publish_options{.lane = tachyon::priority::low}) ==
            result::ok)
          me.acked.push_back(100 + k);
      }
    };
  }
};

TEST(JournalEdges, PublishesNestedInsideAPublishKeepEveryRecordWhole) {
  jt::temp_dir dir;
  publishing_listener listener;
  std::vector<std::uint32_t> outer_ok;
  {
    tachyon::config c = manual_journal(dir.str(), 1);
    c.overflow = tachyon::overflow::drop_oldest;
    tachyon::bus<jt::Events> bus(c);
    listener.bus = &bus;
    ASSERT_EQ(bus.publish(Order{"first", 1, "x"}, publish_options{.on_settle = &listener}),
              result::ok);
    // Displaces the first, whose listener publishes five 30 KB Orders before this one's record
    // is committed: the segment rolls over under its claim, more than once.
    ASSERT_EQ(bus.publish(Order{"OUTER", 2, "kept whole"}), result::ok);
    EXPECT_GE(listener.acked.size(), 1u);
    bus.stop(tachyon::stop_mode::discard);
  }
  journal_reader in(dir.path);
  bool outer = false;
  std::vector<std::uint32_t> nested;
  for (const auto& r : in) {
    const Order o = r.decode<Order>();  // never garbage: throws if a payload were clobbered
    if (o.sku == "OUTER") {
      outer = true;
      EXPECT_EQ(o.note, "kept whole");
    } else if (o.qty >= 100) {
      EXPECT_EQ(o.sku, std::string(30000, static_cast<char>('a' + (o.qty - 100))));
      nested.push_back(o.qty);
    }
  }
  EXPECT_TRUE(outer);
  EXPECT_EQ(nested, listener.acked);
  EXPECT_TRUE(in.scan().clean());
  EXPECT_GE(in.segments().size(), 3u);
}

TEST(JournalEdges, ARecordOfAnotherRunInsideDamageIsNeverHandedOut) {
  jt::temp_dir a, b;
  for (const auto* d : {&a, &b}) {
    tachyon::bus<jt::Events> bus(manual_journal(d->str()));
    for (std::uint64_t i = 0; i < 50; ++i)
      ASSERT_EQ(bus.publish(Tick{d == &a ? 1000 + i : i, 0}), result::ok);
    bus.stop();
  }
  // b's record 10 and 11 overwritten by a's records 20 and 21 (each 72 bytes), with one byte of
  // the first damaged: the second is a well-formed record, but of another run.
  auto find = [](const jt::temp_dir& d, std::uint64_t id) {
    journal_reader in(d.path);
    for (const auto& r : in)
      if (r.decode<Tick>().id == id) return std::pair{std::string(r.file), r.offset};
    return std::pair{std::string(), std::uint64_t{0}};
  };
  const auto [fa, oa] = find(a, 1020);
  const auto [fb, ob] = find(b, 10);
  ASSERT_FALSE(fa.empty());
  ASSERT_FALSE(fb.empty());
  std::vector<char> bytes(144);
  {
    std::ifstream in(fa, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(oa));
    in.read(bytes.data(), 144);
  }
  bytes[30] ^= 1;
  {
    std::fstream out(fb, std::ios::binary | std::ios::in | std::ios::out);
    out.seekp(static_cast<std::streamoff>(ob));
    out.write(bytes.data(), 144);
  }
  journal_reader in(b.path);
  std::vector<std::uint64_t> ids;
  for (const auto& r : in) ids.push_back(r.decode<Tick>().id);
  ASSERT_EQ(ids.size(), 48u);
  for (const std::uint64_t id : ids) EXPECT_LT(id, 1000u);  // none of a's
  ASSERT_EQ(in.scan().corrupt, 1u);
  EXPECT_EQ(in.scan().corrupt_bytes, 144u);
}

}  // namespace
