// The NATS bridge between buses of this process, against a real nats-server on 127.0.0.1:
// core NATS both ways with correlation kept, loops across three buses, the quarantine of bad
// input, JetStream acknowledgement after settling, redelivery and replay, backpressure,
// connection failures and a server restarted mid-stream.
#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>

#include "bridge_fixture.hpp"

namespace {

using namespace std::chrono_literals;
using bt::Bridge;
using bt::Bus;
using bt::eventually;
using bt::Note;
using bt::Order;
using bt::Reply;
using tachyon::test::nats_server;

using bt::js_export;
using bt::js_import;
using bt::opts;
using bt::order_bytes;
using bt::raw_client;
using bt::valid_meta;

}  // namespace

TEST(NatsBridge, CoreNatsBothWaysKeepsCorrelationAndMarksImports) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server;
  server.start();

  Bus a{bt::threaded()}, b{bt::threaded()};
  std::atomic<int> orders_seen{0}, replies_ok{0}, wrong{0};
  auto on_order = b.subscribe<Order>([&](const Order& o, const tachyon::meta& m) {
    if (!(m.flags & tachyon::meta_flags::external) || o.qty != o.id * 2 ||
        o.price != static_cast<double>(o.id) / 4 || m.correlation_id != 1000 + o.id)
      wrong.fetch_add(1);
    orders_seen.fetch_add(1);
    (void)b.publish(Reply{o.id, m.correlation_id});  // inherits the correlation id
  });
  auto on_reply = a.subscribe<Reply>([&](const Reply& r, const tachyon::meta& m) {
    if (m.correlation_id == 1000 + r.id && r.seen_correlation == 1000 + r.id &&
        (m.flags & tachyon::meta_flags::external))
      replies_ok.fetch_add(1);
    else
      wrong.fetch_add(1);
  });
  Bridge ba{a, opts(server, "a")}, bb{b, opts(server, "b")};
  bb.import_type<Order>("orders.created");
  bb.export_type<Reply>("orders.replies");
  ba.import_type<Reply>("orders.replies");
  ba.export_type<Order>("orders.created");
  // Subscriptions reach the server before anything is published: a round trip to it.
  ASSERT_TRUE(ba.flush() && bb.flush());

  constexpr int n = 200;
  for (std::uint64_t i = 0; i < n; ++i)
    ASSERT_EQ(a.publish(Order{i, static_cast<std::uint32_t>(i * 2), static_cast<double>(i) / 4},
                        {.correlation_id = 1000 + i}),
              tachyon::result::ok);
  ASSERT_TRUE(eventually([&] { return replies_ok.load() + wrong.load() >= n; }));
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(orders_seen.load(), n);
  EXPECT_EQ(replies_ok.load(), n);
  ASSERT_TRUE(ba.flush() && bb.flush());
  // An import is counted once its publish returns, which may be after its handler ran.
  ASSERT_TRUE(eventually([&] { return ba.metrics().imported == n && bb.metrics().imported == n; }));
  const auto ma = ba.metrics(), mb = bb.metrics();
  EXPECT_EQ(ma.exported, static_cast<std::uint64_t>(n));
  EXPECT_EQ(mb.imported, static_cast<std::uint64_t>(n));
  EXPECT_EQ(mb.exported, static_cast<std::uint64_t>(n));
  EXPECT_EQ(ma.imported, static_cast<std::uint64_t>(n));
  EXPECT_EQ(ma.gaps + mb.gaps + ma.quarantined + mb.quarantined + ma.export_errors, 0u);
  EXPECT_TRUE(ba.health().healthy) << ba.health().problems.size();
  EXPECT_TRUE(ma.connected);
}

TEST(NatsBridge, CodecTypesCrossWithTheirFields) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server;
  server.start();
  Bus a{bt::threaded()}, b{bt::threaded()};
  std::mutex mu;
  std::vector<Note> got;
  auto s = b.subscribe<Note>([&](const Note& n) {
    std::lock_guard lock(mu);
    got.push_back(n);
  });
  Bridge ba{a, opts(server, "a")}, bb{b, opts(server, "b")};
  bb.import_type<Note>("notes.>");
  ba.export_type<Note>("notes.x");
  ASSERT_TRUE(bb.flush());
  const Note sent[] = {
      {"", {}}, {std::string("nul\0inside", 10), {-1, 0, 7}}, {std::string(5000, 'z'), {1}}};
  for (const Note& n : sent) ASSERT_EQ(a.publish(n), tachyon::result::ok);
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mu);
    return got.size() == 3;
  }));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(got[i].text, sent[i].text);
    EXPECT_EQ(got[i].tags, sent[i].tags);
  }
}

TEST(NatsBridge, ImportedEventsAreNeverExportedBackAcrossThreeBuses) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server;
  server.start();
  Bus a{bt::threaded()}, b{bt::threaded()}, c{bt::threaded()};
  std::atomic<int> at_a{0}, at_b{0}, at_c{0};
  auto sa = a.subscribe<Note>([&](const Note&, const tachyon::meta& m) {
    if (m.flags & tachyon::meta_flags::external) at_a.fetch_add(1);
  });
  auto sb = b.subscribe<Note>([&](const Note&, const tachyon::meta& m) {
    if (m.flags & tachyon::meta_flags::external) at_b.fetch_add(1);
  });
  auto sc = c.subscribe<Note>([&](const Note&, const tachyon::meta& m) {
    if (m.flags & tachyon::meta_flags::external) at_c.fetch_add(1);
  });
  Bridge ba{a, opts(server, "a")}, bb{b, opts(server, "b")}, bc{c, opts(server, "c")};
  for (Bridge* x : {&ba, &bb, &bc}) {
    x->export_type<Note>("chat");
    x->import_type<Note>("chat");
  }
  ASSERT_TRUE(ba.flush() && bb.flush() && bc.flush());
  for (int i = 0; i < 10; ++i) ASSERT_EQ(a.publish(Note{"from a", {i}}), tachyon::result::ok);
  ASSERT_TRUE(eventually([&] { return at_b.load() == 10 && at_c.load() == 10; }));
  // A marker from c, after everything a sent went round: had anyone echoed, it would be here
  // before the marker (one server, in order per connection).
  ASSERT_TRUE(bb.flush() && bc.flush());
  ASSERT_EQ(c.publish(Note{"marker", {}}), tachyon::result::ok);
  ASSERT_TRUE(eventually([&] { return at_a.load() == 1 && at_b.load() == 11; }));
  ASSERT_TRUE(ba.flush() && bb.flush() && bc.flush());
  EXPECT_EQ(at_a.load(), 1);
  EXPECT_EQ(at_b.load(), 11);
  EXPECT_EQ(at_c.load(), 10);
  EXPECT_EQ(ba.metrics().exported, 10u);
  EXPECT_EQ(bb.metrics().exported, 0u);
  EXPECT_EQ(bc.metrics().exported, 1u);
  EXPECT_EQ(bb.metrics().export_skipped, 11u);
  EXPECT_EQ(bc.metrics().export_skipped, 10u);
  EXPECT_EQ(ba.metrics().export_skipped, 1u);
}

TEST(NatsBridge, BadMessagesAreQuarantinedWithTheirReasonNeverDecoded) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server;
  server.start();
  Bus b{bt::threaded()};
  std::atomic<int> handled{0};
  std::atomic<std::uint64_t> last_id{0};
  auto s = b.subscribe<Order>([&](const Order& o) {
    last_id = o.id;
    handled.fetch_add(1);
  });
  auto o = opts(server, "b");
  o.max_message_bytes = 1024;
  o.quarantine_capacity = 4;  // the oldest leave first
  Bridge bb{b, o};
  bb.import_type<Order>("in.>");
  ASSERT_TRUE(bb.flush());
  raw_client raw(server.url());
  const std::string good = order_bytes({42, 1, 2.0});
  const std::string type = "test.Order";
  raw.send("in.a", good, {});  // no headers
  raw.send("in.b", good, {{"Tachyon-Type", "test.Reply"}, {"Tachyon-Meta", valid_meta()}});
  raw.send("in.c", good, {{"Tachyon-Type", type}, {"Tachyon-Meta", valid_meta(2)}});
  raw.send("in.d", good, {{"Tachyon-Type", type}, {"Tachyon-Meta", valid_meta(1, 12345)}});
  raw.send("in.e", good.substr(0, 5), {{"Tachyon-Type", type}, {"Tachyon-Meta", valid_meta()}});
  raw.send("in.f", good, {{"Tachyon-Type", type}, {"Tachyon-Meta", "v1 1 zz"}});
  raw.send("in.g", std::string(2000, 'x'),
           {{"Tachyon-Type", type}, {"Tachyon-Meta", valid_meta()}});
  raw.send("in.h", good + "x", {{"Tachyon-Type", type}, {"Tachyon-Meta", valid_meta()}});
  raw.send("in.ok", good, {{"Tachyon-Type", type}, {"Tachyon-Meta", valid_meta()}});
  ASSERT_TRUE(eventually([&] { return bb.metrics().received == 9; }));
  ASSERT_TRUE(eventually([&] { return handled.load() == 1; }));
  // An import is counted once its publish returns, which may be after its handler ran.
  ASSERT_TRUE(eventually([&] { return bb.metrics().imported == 1; }));
  EXPECT_EQ(last_id.load(), 42u);
  const auto m = bb.metrics();
  EXPECT_EQ(m.quarantined, 8u);
  EXPECT_EQ(m.imported, 1u);
  EXPECT_FALSE(bb.health().healthy);
  const auto q = bb.quarantine();
  ASSERT_EQ(q.size(), 4u);  // in.e .. in.h
  EXPECT_EQ(q[0].subject, "in.e");
  EXPECT_NE(q[0].reason.find("payload of 5 bytes; allowed: exactly 24"), std::string::npos)
      << q[0].reason;
  EXPECT_EQ(q[0].payload.size(), 5u);
  EXPECT_NE(q[1].reason.find("Tachyon-Meta: 3 fields; allowed: exactly 8"), std::string::npos)
      << q[1].reason;
  EXPECT_NE(q[2].reason.find("2000 bytes"), std::string::npos) << q[2].reason;
  EXPECT_NE(q[3].reason.find("payload of 25 bytes; allowed: exactly 24"), std::string::npos)
      << q[3].reason;
  EXPECT_EQ(q[3].type, "test.Order");
}

TEST(NatsBridge, QuarantineReasonsNameWhatWasWrong) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server;
  server.start();
  Bus b{bt::threaded()};
  Bridge bb{b, opts(server, "b")};
  bb.import_type<Order>("in.>");
  ASSERT_TRUE(bb.flush());
  raw_client raw(server.url());
  const std::string good = order_bytes({1, 1, 1.0});
  raw.send("in.a", good, {});
  raw.send("in.b", good, {{"Tachyon-Type", "test.Reply"}, {"Tachyon-Meta", valid_meta()}});
  raw.send("in.c", good, {{"Tachyon-Type", "test.Order"}, {"Tachyon-Meta", valid_meta(2)}});
  raw.send("in.d", good, {{"Tachyon-Type", "test.Order"}, {"Tachyon-Meta", valid_meta(1, 12345)}});
  ASSERT_TRUE(eventually([&] { return bb.metrics().quarantined == 4; }));
  const auto q = bb.quarantine();
  ASSERT_EQ(q.size(), 4u);
  EXPECT_NE(q[0].reason.find("no Tachyon-Type header"), std::string::npos) << q[0].reason;
  EXPECT_NE(q[1].reason.find("type 'test.Reply'; this import takes 'test.Order'"),
            std::string::npos)
      << q[1].reason;
  EXPECT_NE(q[2].reason.find("version 2 of test.Order; allowed: 1 to 1"), std::string::npos)
      << q[2].reason;
  EXPECT_NE(q[3].reason.find("fingerprint"), std::string::npos) << q[3].reason;
}

TEST(NatsBridge, NoServerIsAClearErrorOrTheReconnectPolicy) {
  TACHYON_REQUIRE_NATS_SERVER();
  const int port = tachyon::test::pick_free_ports(1).at(0);
  Bus a{bt::threaded()};
  tachyon::nats::options o;
  o.url = "nats://127.0.0.1:" + std::to_string(port);
  o.name = "a";
  try {
    Bridge b{a, o};
    FAIL() << "connected to nothing";
  } catch (const tachyon::nats::error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(o.url), std::string::npos) << what;
    EXPECT_NE(what.find("is nats-server running there?"), std::string::npos) << what;
  }
  // With the policy: made at once, connected once the server is there.
  o.reconnect.retry_initial_connect = true;
  o.reconnect.wait = 50ms;
  o.reconnect.max_attempts = -1;
  Bridge b{a, o};
  EXPECT_FALSE(b.metrics().connected);
  tachyon::test::nats_server_options so;
  so.port = port;
  nats_server server(so);
  server.start();
  ASSERT_TRUE(eventually([&] { return b.metrics().connected; }));
  Bus c{bt::threaded()};
  std::atomic<int> got{0};
  auto s = c.subscribe<Order>([&](const Order&) { got.fetch_add(1); });
  Bridge bc{c, opts(server, "c")};
  bc.import_type<Order>("late");
  b.export_type<Order>("late");
  ASSERT_TRUE(bc.flush());
  ASSERT_EQ(a.publish(Order{1, 1, 1.0}), tachyon::result::ok);
  ASSERT_TRUE(eventually([&] { return got.load() == 1; }));
}

TEST(NatsBridge, BadArgumentsNameWhatIsAllowed) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server;
  server.start();
  Bus a{bt::threaded()};
  Bridge b{a, opts(server, "a")};
  EXPECT_THROW(b.export_type<Order>("orders.*"), std::invalid_argument);
  EXPECT_THROW(b.export_type<Order>(""), std::invalid_argument);
  EXPECT_THROW(b.import_type<Order>("a..b"), std::invalid_argument);
  EXPECT_THROW(b.import_type<Order>("has space"), std::invalid_argument);
  tachyon::nats::export_options eo;
  eo.jetstream = tachyon::nats::stream_options{.name = "bad.name"};
  EXPECT_THROW(b.export_type<Order>("x", eo), std::invalid_argument);
  tachyon::nats::import_options io;
  io.jetstream = tachyon::nats::consumer_options{.stream = "S"};  // no durable
  EXPECT_THROW(b.import_type<Order>("x", io), std::invalid_argument);
  auto o = opts(server, "z");
  o.url = " , ";
  EXPECT_THROW((Bridge{a, o}), std::invalid_argument);
}

// ---- JetStream --------------------------------------------------------------------------------

TEST(NatsBridge, JetStreamAcknowledgesEachImportOnceItSettledWhateverItsOutcome) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server;
  server.start();
  Bus a{bt::threaded()}, b{bt::threaded()};
  std::atomic<int> runs{0};
  auto s = b.subscribe<Order>([&](const Order& o) {
    runs.fetch_add(1);
    if (o.id % 10 == 0) throw std::runtime_error("unlucky");
  });
  Bridge ba{a, opts(server, "a")}, bb{b, opts(server, "b")};
  ba.export_type<Order>("js.orders", js_export("ORDERS"));
  constexpr int n = 300;
  for (std::uint64_t i = 0; i < n; ++i) ASSERT_EQ(a.publish(Order{i, 1, 1.0}), tachyon::result::ok);
  ASSERT_TRUE(bt::ran_all(a) && ba.flush(60s));
  EXPECT_EQ(ba.metrics().exported, static_cast<std::uint64_t>(n));  // each acknowledged
  EXPECT_EQ(ba.metrics().export_errors, 0u);
  bb.import_type<Order>("js.orders", js_import("ORDERS", "b"));
  ASSERT_TRUE(eventually([&] { return bb.metrics().acknowledged == n; }));
  EXPECT_EQ(runs.load(), n);
  ASSERT_TRUE(eventually([&] { return bb.metrics().imported == n; }));
  const auto mb = bb.metrics();
  EXPECT_EQ(mb.imported, static_cast<std::uint64_t>(n));
  EXPECT_EQ(mb.redelivered, 0u);
  EXPECT_EQ(mb.awaiting_settle, 0u);
  const auto bm = b.metrics();
  EXPECT_EQ(bm.types[0].counts.failed, static_cast<std::uint64_t>(n / 10));
  EXPECT_EQ(bm.types[0].counts.dispatched, static_cast<std::uint64_t>(n - n / 10));
}

TEST(NatsBridge, JetStreamReplaysFromASequenceOrATime) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server;
  server.start();
  Bus a{bt::threaded()};
  Bridge ba{a, opts(server, "a")};
  ba.export_type<Order>("log.orders", js_export("LOG"));
  // The first half just after a whole second, so that `middle` is likely a few hundredths past
  // it: libnats 3.4 would send that start time wrong (its fraction's leading zeros dropped), and
  // the bridge sends the whole second and skips the first half's messages by their timestamps.
  const auto now = std::chrono::system_clock::now();
  std::this_thread::sleep_until(std::chrono::ceil<std::chrono::seconds>(now) + 1ms);
  for (std::uint64_t i = 1; i <= 50; ++i)
    ASSERT_EQ(a.publish(Order{i, 1, 1.0}), tachyon::result::ok);
  ASSERT_TRUE(bt::ran_all(a) && ba.flush(60s));
  std::this_thread::sleep_for(20ms);  // a time strictly between the halves (the server's clock)
  const auto middle = std::chrono::system_clock::now();
  std::this_thread::sleep_for(20ms);
  for (std::uint64_t i = 51; i <= 100; ++i)
    ASSERT_EQ(a.publish(Order{i, 1, 1.0}), tachyon::result::ok);
  ASSERT_TRUE(bt::ran_all(a) && ba.flush(60s));

  Bus r{bt::threaded()};
  std::mutex mu;
  std::vector<std::uint64_t> ids;
  auto s = r.subscribe<Order>([&](const Order& o, const tachyon::meta& m) {
    std::lock_guard lock(mu);
    ids.push_back((m.flags & tachyon::meta_flags::external) ? o.id : 0);
  });
  Bridge br{r, opts(server, "r")};
  EXPECT_EQ(br.replay<Order>("LOG", "log.orders", {.sequence = 1}), 100u);
  EXPECT_EQ(br.replay<Order>("LOG", "", {.sequence = 91}), 10u);
  EXPECT_EQ(br.replay<Order>("LOG", "log.orders", {.sequence = 0, .time = middle}), 50u);
  const auto fraction = middle.time_since_epoch() % std::chrono::seconds(1);
  if (fraction < 100ms) {  // the rounding was needed
    EXPECT_GT(br.metrics().before_start, 0u);
  }
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mu);
    return ids.size() == 160;
  }));
  std::lock_guard lock(mu);
  std::multiset<std::uint64_t> seen(ids.begin(), ids.end());
  EXPECT_EQ(seen.count(0), 0u);
  EXPECT_EQ(seen.count(1), 1u);
  EXPECT_EQ(seen.count(50), 1u);
  EXPECT_EQ(seen.count(51), 2u);
  EXPECT_EQ(seen.count(95), 3u);
}

TEST(NatsBridge, JetStreamIntoAFullBusWaitsInTheBridgeAndTakesNothingMoreMeanwhile) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server;
  server.start();
  Bus a{bt::threaded()};
  // b: a small lane that refuses when full, and a handler held until the import has waited.
  Bus b{tachyon::config{.workers = 1,
                        .lane_capacity = 4,
                        .wait = tachyon::wait_strategy::spin_then_park,
                        .overflow = tachyon::overflow::fail}};
  std::atomic<bool> hold{true};
  std::mutex mu;
  std::map<std::uint64_t, int> runs;
  auto s = b.subscribe<Order>([&](const Order& o) {
    while (hold.load()) std::this_thread::sleep_for(1ms);
    std::lock_guard lock(mu);
    ++runs[o.id];
  });
  Bridge ba{a, opts(server, "a")};
  ba.export_type<Order>("bp.orders", js_export("BP"));
  constexpr int n = 200;
  for (std::uint64_t i = 0; i < n; ++i) ASSERT_EQ(a.publish(Order{i, 1, 1.0}), tachyon::result::ok);
  ASSERT_TRUE(bt::ran_all(a) && ba.flush(60s));
  auto o = opts(server, "b");
  Bridge bb{b, o};
  tachyon::nats::import_options io = js_import("BP", "b");
  io.jetstream->batch = 16;
  bb.import_type<Order>("bp.orders", io);
  ASSERT_TRUE(eventually([&] { return bb.metrics().import_waits == 1; }));
  std::this_thread::sleep_for(200ms);
  // One running, four in the lane, one waiting in the bridge: the fetcher took at most its
  // batch of 16, not the stream's 200.
  EXPECT_LE(bb.metrics().received, 16u);
  hold = false;
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mu);
    return runs.size() == n;
  }));
  ASSERT_TRUE(eventually([&] { return bb.metrics().acknowledged == n; }));
  const auto m = bb.metrics();
  EXPECT_EQ(m.import_refused, 0u);
  EXPECT_EQ(m.negative_acknowledged, 0u);
  EXPECT_EQ(m.redelivered, 0u);
  std::lock_guard lock(mu);
  for (auto& [id, count] : runs) EXPECT_EQ(count, 1) << id;
}

TEST(NatsBridge, JetStreamLosesNothingAcknowledgedWhenTheServerRestartsMidStream) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server;
  server.start();
  Bus a{bt::threaded()}, b{bt::threaded()};
  std::mutex mu;
  std::set<std::uint64_t> seen;
  auto s = b.subscribe<Order>([&](const Order& o) {
    std::lock_guard lock(mu);
    seen.insert(o.id);
  });
  auto oa = opts(server, "a");
  oa.reconnect.max_attempts = -1;
  oa.reconnect.wait = 50ms;
  auto ob = oa;
  ob.name = "b";
  Bridge ba{a, oa}, bb{b, ob};
  ba.export_type<Order>("rs.orders", js_export("RS"));
  bb.import_type<Order>("rs.orders", js_import("RS", "b"));
  constexpr std::uint64_t n = 2000;
  std::thread publisher([&] {
    for (std::uint64_t i = 0; i < n; ++i) {
      (void)a.publish(Order{i, 1, 1.0});
      if (i % 100 == 0) std::this_thread::sleep_for(2ms);
    }
  });
  ASSERT_TRUE(eventually([&] { return ba.metrics().exported > 200; }));
  server.kill();
  server.restart();
  publisher.join();
  ASSERT_TRUE(bt::ran_all(a) && ba.flush(120s));
  const auto ma = ba.metrics();
  EXPECT_GE(ma.reconnects, 1u);
  // Every export the server acknowledged is handled; an export it never acknowledged is
  // counted as lost (export_errors), and with resends there should be none.
  EXPECT_EQ(ma.export_errors, 0u);
  const std::uint64_t failed = a.metrics().types[0].counts.failed;  // export queue full: counted
  EXPECT_EQ(ma.exported + ma.export_duplicates + ma.export_queue_full, n);
  EXPECT_EQ(failed, ma.export_queue_full);
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mu);
    return seen.size() == n - ma.export_queue_full;
  }));
}

TEST(NatsBridge, ASlowImportIsBoundedAndItsDropsAreCountedAndReported) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server;
  server.start();
  // A lane of 4 under overflow::block and a handler held: the import's publish waits, it stops
  // taking from NATS, and libnats keeps at most 50 messages for it, dropping the rest.
  Bus b{tachyon::config{.workers = 1, .lane_capacity = 4}};
  std::atomic<bool> hold{true};
  std::atomic<int> handled{0};
  auto s = b.subscribe<Order>([&](const Order&) {
    while (hold.load()) std::this_thread::sleep_for(1ms);
    handled.fetch_add(1);
  });
  auto o = opts(server, "b");
  o.import_pending_messages = 50;
  Bridge bb{b, o};
  bb.import_type<Order>("slow");
  ASSERT_TRUE(bb.flush());
  raw_client raw(server.url());
  constexpr int n = 2000;
  for (int i = 0; i < n; ++i)
    raw.send_order("slow", static_cast<std::uint64_t>(i), static_cast<std::uint64_t>(i + 1));
  ASSERT_EQ(natsConnection_FlushTimeout(raw.nc, 10000), NATS_OK);
  ASSERT_TRUE(eventually([&] { return bb.metrics().slow_consumer_dropped > 0; }));
  const auto h = bb.health();
  EXPECT_FALSE(h.healthy);
  EXPECT_TRUE(std::any_of(h.problems.begin(), h.problems.end(),
                          [](const std::string& p) { return p.find("slow consumer") == 0; }));
  hold = false;
  // Every message is either taken (and handled) or counted dropped: none vanishes.
  ASSERT_TRUE(eventually([&] {
    const auto m = bb.metrics();
    return m.received + m.slow_consumer_dropped == n;
  }));
  // The sender's per-subject count shows the same loss from the importer's side, once a
  // message after the last one lost arrives.
  raw.send_order("slow", static_cast<std::uint64_t>(n), static_cast<std::uint64_t>(n) + 1);
  ASSERT_TRUE(eventually(
      [&] { return bb.metrics().received + bb.metrics().slow_consumer_dropped == n + 1; }));
  const auto m = bb.metrics();
  ASSERT_TRUE(eventually([&] { return handled.load() == static_cast<int>(m.received); }));
  ASSERT_TRUE(eventually([&] { return bb.metrics().imported == m.received; }));
  // The importer counts a message received on arrival and the gap it reveals a little later, in
  // the same callback: wait for that gap, which must equal the drops exactly.
  ASSERT_TRUE(eventually([&] { return bb.metrics().gaps == m.slow_consumer_dropped; }))
      << "gaps " << bb.metrics().gaps << ", dropped " << m.slow_consumer_dropped;
}

TEST(NatsBridge, CloseSendsWhatImportedEventsCausedBeforeItDisconnects) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server;
  server.start();
  Bus front{bt::threaded()}, worker{bt::threaded()};
  std::atomic<bool> started{false};
  std::atomic<int> done{0};
  auto work = worker.subscribe<Order>([&](const Order& o) {
    started = true;
    std::this_thread::sleep_for(300ms);  // still running when close() begins
    (void)worker.publish(Reply{o.id, 0});
  });
  auto seen = front.subscribe<Reply>([&](const Reply&) { done.fetch_add(1); });
  Bridge bf{front, opts(server, "front")};
  auto bw = std::make_unique<Bridge>(worker, opts(server, "worker"));
  bf.export_type<Order>("close.orders", js_export("CLOSE"));
  bf.import_type<Reply>("close.done");
  bw->import_type<Order>("close.orders", js_import("CLOSE", "w"));
  bw->export_type<Reply>("close.done");
  ASSERT_TRUE(bf.flush() && bw->flush());
  ASSERT_EQ(front.publish(Order{1, 1, 1.0}), tachyon::result::ok);
  ASSERT_TRUE(eventually([&] { return started.load(); }));
  bw->close();
  const auto m = bw->metrics();
  EXPECT_EQ(m.acknowledged, 1u);
  EXPECT_EQ(m.exported, 1u);  // the reply its handler published after close() began
  ASSERT_TRUE(eventually([&] { return done.load() == 1; }));
}

TEST(NatsBridge, ATypeIsExportedOnceToASubject) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server;
  server.start();
  Bus a{bt::threaded()};
  Bridge b{a, opts(server, "a")};
  b.export_type<Order>("once");
  try {
    b.export_type<Order>("once");
    FAIL() << "exported twice";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("test.Order is exported to 'once' already"),
              std::string::npos)
        << e.what();
  }
  b.export_type<Order>("twice");  // another subject is another export
  b.export_type<Reply>("once");   // another type too
}

TEST(NatsBridge, HealthNamesAJetStreamImportWhoseConsumerIsGone) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server;
  server.start();
  Bus a{bt::threaded()}, b{bt::threaded()};
  Bridge ba{a, opts(server, "a")}, bb{b, opts(server, "b")};
  ba.export_type<Order>("gone.orders", js_export("GONE"));
  bb.import_type<Order>("gone.orders", js_import("GONE", "b"));
  ASSERT_TRUE(bb.health().healthy);
  raw_client raw(server.url());
  jsCtx* js = nullptr;
  ASSERT_EQ(natsConnection_JetStream(&js, raw.nc, nullptr), NATS_OK);
  jsErrCode jerr{};
  ASSERT_EQ(js_DeleteConsumer(js, "GONE", "b", nullptr, &jerr), NATS_OK);
  jsCtx_Destroy(js);
  ASSERT_TRUE(eventually([&] { return !bb.health().healthy; }));
  const auto h = bb.health();
  ASSERT_FALSE(h.problems.empty());
  EXPECT_NE(
      h.problems.back().find("import of gone.orders (stream GONE, consumer b): fetch failing"),
      std::string::npos)
      << h.problems.back();
}
