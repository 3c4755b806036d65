// A hostile review of the NATS bridge: each test here shows one way to break it (a race, a
// lifetime, a lost message), against a real nats-server on 127.0.0.1, kept once fixed.
#include <nats/nats.h>

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "bridge_fixture.hpp"

namespace {

using namespace std::chrono_literals;
using bt::Bridge;
using bt::Bus;
using bt::eventually;
using bt::Note;
using bt::Order;
using tachyon::test::nats_server;

using bt::js_export;
using bt::js_import;
using bt::opts;
using bt::raw_client;

}  // namespace

// Two types exported to one subject under JetStream: each export counts its own sequence, and the
// message id was "<origin>/<subject>/<count>", so the second type's messages carried the first's
// ids and the server dropped them as duplicates (counted export_duplicates: lost).
TEST(NatsBridgeReview, JetStreamExportsOfTwoTypesOnOneSubjectAreNotTakenForDuplicates) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server;
  server.start();
  Bus a{bt::threaded()};
  Bridge ba{a, opts(server, "a")};
  ba.export_type<Order>("mix.x", js_export("MIX"));
  ba.export_type<Note>("mix.x", js_export("MIX"));
  constexpr int n = 10;
  // flush() covers what the export handlers queued, not events the bus has yet to run them on: wait
  // for the acknowledgements instead.
  auto answered = [&] { return ba.metrics().exported + ba.metrics().export_duplicates; };
  for (std::uint64_t i = 0; i < n; ++i) ASSERT_EQ(a.publish(Order{i, 1, 1.0}), tachyon::result::ok);
  ASSERT_TRUE(eventually([&] { return answered() == n; }));
  for (int i = 0; i < n; ++i) ASSERT_EQ(a.publish(Note{"n", {i}}), tachyon::result::ok);
  ASSERT_TRUE(eventually([&] { return answered() == 2 * n; }));
  const auto m = ba.metrics();
  EXPECT_EQ(m.export_duplicates, 0u);
  EXPECT_EQ(m.exported, 2u * n) << "errors " << m.export_errors << " queue_full "
                                << m.export_queue_full << " unacked " << m.export_unacknowledged
                                << " resent " << m.export_resent;
}

// metrics() reads each core import's subscription (its dropped count) while close() destroys them:
// close() must not free a subscription that metrics() may be reading.
TEST(NatsBridgeReview, MetricsDuringCloseNeverReadsAFreedSubscription) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server;
  server.start();
  Bus b{bt::threaded()};
  for (int round = 0; round < 10; ++round) {
    std::optional<Bridge> bb;
    bb.emplace(b, opts(server, "b"));
    for (int i = 0; i < 8; ++i) bb->import_type<Order>("m." + std::to_string(i));
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> reads{0};
    std::thread reader([&] {
      while (!stop.load()) {
        (void)bb->metrics();
        reads.fetch_add(1);
      }
    });
    ASSERT_TRUE(eventually([&] { return reads.load() > 10; }));
    bb->close();
    stop = true;
    reader.join();
  }
}

// export_type while another export is being sent: the sender thread looks its export up by index in
// a std::deque that add_export grows (a data race TSan sees once the deque's map grows).
TEST(NatsBridgeReview, ExportTypeWhileExportingIsRaceFree) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server;
  server.start();
  Bus a{bt::threaded()};
  Bridge ba{a, opts(server, "a")};
  ba.export_type<Order>("busy");
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> sent{0};
  std::thread publisher([&] {
    std::uint64_t i = 0;
    while (!stop.load())
      if (a.publish(Order{i++, 1, 1.0}) == tachyon::result::ok) sent.fetch_add(1);
  });
  ASSERT_TRUE(eventually([&] { return ba.metrics().exported > 100; }));
  for (int i = 0; i < 200; ++i) ba.export_type<Note>("more." + std::to_string(i));
  stop = true;
  publisher.join();
  // Every event the bus took reaches the export handler and one of these counters.
  ASSERT_TRUE(eventually([&] {
    const auto m = ba.metrics();
    return m.exported + m.export_queue_full + m.export_errors == sent.load();
  }));
}

// A JetStream import into a bus that stays full for a second: each refusal is a delivery (negative
// acknowledgement after 100 ms), so after max_deliver (5) refusals in about half a second the
// server never offers the message again. Under "at least once" every message must reach the bus
// once it has room.
TEST(NatsBridgeReview, JetStreamImportIntoABusFullForASecondLosesNothing) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server;
  server.start();
  Bus a{bt::threaded()};
  Bus b{tachyon::config{.workers = 1,
                        .lane_capacity = 4,
                        .wait = tachyon::wait_strategy::spin_then_park,
                        .overflow = tachyon::overflow::fail}};
  std::atomic<bool> hold{true};
  struct release {
    std::atomic<bool>& h;
    ~release() { h = false; }
  } release_on_exit{hold};
  std::mutex mu;
  std::set<std::uint64_t> ran;
  auto s = b.subscribe<Order>([&](const Order& o) {
    while (hold.load()) std::this_thread::sleep_for(1ms);
    std::lock_guard lock(mu);
    ran.insert(o.id);
  });
  Bridge ba{a, opts(server, "a")}, bb{b, opts(server, "b")};
  ba.export_type<Order>("full.orders", js_export("FULL"));
  constexpr int n = 40;
  for (std::uint64_t i = 0; i < n; ++i) ASSERT_EQ(a.publish(Order{i, 1, 1.0}), tachyon::result::ok);
  ASSERT_TRUE(ba.flush(60s));
  bb.import_type<Order>("full.orders", js_import("FULL", "b"));
  // One event runs and four wait in the lane; the next waits in the bridge for room, and the
  // fetcher with it, for a second: five times what five refusals 100 ms apart would have taken.
  ASSERT_TRUE(eventually([&] { return bb.metrics().import_waits >= 1; }));
  std::this_thread::sleep_for(1s);
  hold = false;
  // ack_wait is 2 s: anything still coming comes within a few of them.
  eventually(
      [&] {
        std::lock_guard lock(mu);
        return ran.size() == n;
      },
      15s);
  std::lock_guard lock(mu);
  EXPECT_EQ(ran.size(), static_cast<std::size_t>(n))
      << "refused " << bb.metrics().import_refused << " times; never offered again";
  EXPECT_EQ(bb.metrics().import_refused, 0u);
}

// A core import whose callback waits in a blocked bus's publish while the bridge is destroyed:
// the destructor waits for the callback to return (it returned into a freed bridge before).
TEST(NatsBridgeReview, CoreImportBlockedInTheBusWhileTheBridgeIsDestroyed) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server;
  server.start();
  Bus b{tachyon::config{.workers = 1, .lane_capacity = 1}};
  std::atomic<bool> hold{true};
  std::atomic<int> handled{0};
  auto s = b.subscribe<Order>([&](const Order&) {
    while (hold.load()) std::this_thread::sleep_for(1ms);
    handled.fetch_add(1);
  });
  std::thread releaser;
  {
    Bridge bb{b, opts(server, "b")};
    bb.import_type<Order>("cblk");
    ASSERT_TRUE(bb.flush());
    raw_client raw(server.url());
    for (std::uint64_t i = 0; i < 4; ++i) raw.send_order("cblk", i, i + 1);
    ASSERT_EQ(natsConnection_FlushTimeout(raw.nc, 10000), NATS_OK);
    ASSERT_TRUE(eventually([&] { return bb.metrics().received >= 3; }));  // one waits in publish
    releaser = std::thread([&] {
      std::this_thread::sleep_for(300ms);
      hold = false;
    });
  }  // the bridge is destroyed while that publish waits: it waits for it
  releaser.join();
  EXPECT_FALSE(hold.load());
  ASSERT_TRUE(eventually([&] { return handled.load() == 4; }));
}

// A core NATS export that NATS refuses (here: larger than the server's max_payload) is counted lost
// by the exporter (export_errors); it must not also have used up a per-subject sequence number, or
// the importer counts the same loss again as a gap.
TEST(NatsBridgeReview, AnExportNatsRefusedIsCountedOnceNotAlsoAsAGap) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server;
  server.start();
  Bus a{bt::threaded()}, b{bt::threaded()};
  std::atomic<int> got{0};
  auto s = b.subscribe<Note>([&](const Note&) { got.fetch_add(1); });
  Bridge ba{a, opts(server, "a")}, bb{b, opts(server, "b")};
  bb.import_type<Note>("big.notes");
  ba.export_type<Note>("big.notes");
  ASSERT_TRUE(bb.flush());
  ASSERT_EQ(a.publish(Note{"small", {}}), tachyon::result::ok);
  ASSERT_TRUE(eventually([&] { return got.load() == 1; }));
  ASSERT_EQ(a.publish(Note{std::string(2 << 20, 'x'), {}}), tachyon::result::ok);  // > 1 MiB
  ASSERT_TRUE(eventually([&] { return ba.metrics().export_errors == 1; }));
  ASSERT_EQ(a.publish(Note{"small", {}}), tachyon::result::ok);
  ASSERT_TRUE(eventually([&] { return got.load() == 2; }));
  EXPECT_EQ(ba.metrics().export_errors, 1u);
  EXPECT_EQ(bb.metrics().gaps, 0u) << "one message lost, counted by both bridges";
}

// The bus stops before the bridge closes (a shutdown in the wrong order, or a bridge closed later
// than its bus): the import hands back what the bus refused and stops taking, so the next run of
// the importer on the same durable consumer gets every message.
TEST(NatsBridgeReview, JetStreamImportIntoAStoppedBusLeavesTheMessagesForTheNextRun) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server;
  server.start();
  Bus a{bt::threaded()};
  Bridge ba{a, opts(server, "a")};
  ba.export_type<Order>("stop.orders", js_export("STOP"));
  constexpr int n = 20;
  for (std::uint64_t i = 0; i < n; ++i) ASSERT_EQ(a.publish(Order{i, 1, 1.0}), tachyon::result::ok);
  ASSERT_TRUE(eventually([&] { return ba.metrics().exported == n; }));
  {
    Bus b{bt::threaded()};
    b.stop();
    Bridge bb{b, opts(server, "b")};
    bb.import_type<Order>("stop.orders", js_import("STOP", "b"));
    // What it fetched is handed back (each message once) and it fetches nothing more.
    ASSERT_TRUE(eventually([&] { return bb.metrics().import_refused >= 1; }));
    ASSERT_TRUE(eventually([&] {
      const auto m = bb.metrics();
      return m.received == m.import_refused && m.negative_acknowledged == m.import_refused;
    }));
  }
  Bus c{bt::threaded()};
  std::atomic<int> got{0};
  auto s = c.subscribe<Order>([&](const Order&) { got.fetch_add(1); });
  Bridge bc{c, opts(server, "c")};
  bc.import_type<Order>("stop.orders", js_import("STOP", "b"));  // the same durable: a new run
  eventually([&] { return got.load() == n; }, 10s);              // ack_wait is 2 s
  EXPECT_EQ(got.load(), n) << "the next run never saw them";
}
