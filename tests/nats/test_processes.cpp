// The bridge across processes and servers: two processes exchanging typed events both ways,
// a JetStream importer killed with SIGKILL mid-stream and started again, and a three-node
// cluster losing a node while traffic flows.
#include <unistd.h>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "bridge_events.hpp"
#include "nats_server.hpp"

namespace {

using namespace std::chrono_literals;
using bt::Bridge;
using bt::Bus;
using bt::eventually;
using bt::Order;
using bt::Reply;

/// One line, written whole (the parent reads the file while the child writes it).
void say(const std::string& line) {
  const std::string l = line + "\n";
  (void)!::write(1, l.data(), l.size());
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

/// "got <id> <redelivered>" lines of a child's output: id -> redelivered flags seen.
std::multimap<std::uint64_t, int> got_lines(const std::string& out) {
  std::multimap<std::uint64_t, int> got;
  std::istringstream in(out);
  std::string word;
  std::uint64_t id = 0;
  int again = 0;
  while (in >> word) {
    if (word == "got" && (in >> id >> again)) got.emplace(id, again);
  }
  return got;
}

}  // namespace

// A second process: imports orders, answers each with a reply carrying its correlation id.
TACHYON_CHILD_ROLE(bridge_responder) {
  Bus bus{bt::threaded()};
  tachyon::nats::options o;
  o.url = env("NATS_URL");
  o.name = "responder";
  auto s = bus.subscribe<Order>([&](const Order& ord, const tachyon::meta& m) {
    (void)bus.publish(Reply{ord.id, m.correlation_id});
  });
  Bridge bridge{bus, o};
  bridge.import_type<Order>("proc.orders");
  bridge.export_type<Reply>("proc.replies");
  if (!bridge.flush()) return 3;
  say("ready");
  const std::uint64_t count = std::strtoull(env("COUNT").c_str(), nullptr, 10);
  if (!eventually([&] { return bridge.metrics().exported == count; })) return 4;
  bridge.close();
  say("done");
  return 0;
}

TEST(NatsProcesses, TwoProcessesExchangeTypedEventsBothWaysWithCorrelationKept) {
  TACHYON_REQUIRE_NATS_SERVER();
  tachyon::test::nats_server server;
  server.start();
  constexpr std::uint64_t n = 300;
  auto child =
      tachyon::test::spawn_child_role("bridge_responder", server.dir() / "responder.out",
                                      {"NATS_URL=" + server.url(), "COUNT=" + std::to_string(n)});
  ASSERT_TRUE(child->wait_for_output("ready", 60s)) << child->output();

  Bus bus{bt::threaded()};
  std::atomic<std::uint64_t> ok{0}, wrong{0};
  auto s = bus.subscribe<Reply>([&](const Reply& r, const tachyon::meta& m) {
    const bool right = m.correlation_id == 7000 + r.id && r.seen_correlation == 7000 + r.id &&
                       (m.flags & tachyon::meta_flags::external);
    (right ? ok : wrong).fetch_add(1);
  });
  tachyon::nats::options o;
  o.url = server.url();
  o.name = "requester";
  Bridge bridge{bus, o};
  bridge.import_type<Reply>("proc.replies");
  bridge.export_type<Order>("proc.orders");
  ASSERT_TRUE(bridge.flush());
  for (std::uint64_t i = 0; i < n; ++i)
    ASSERT_EQ(bus.publish(Order{i, 1, 1.0}, {.correlation_id = 7000 + i}), tachyon::result::ok);
  ASSERT_TRUE(eventually([&] { return ok.load() + wrong.load() == n; })) << child->output();
  EXPECT_EQ(wrong.load(), 0u);
  const auto status = child->wait_for_exit(60s);
  ASSERT_TRUE(status) << child->output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << child->output();
  EXPECT_EQ(bridge.metrics().gaps, 0u);
}

// A JetStream importer whose handler is slow enough to be killed in the middle of the stream.
TACHYON_CHILD_ROLE(bridge_js_importer) {
  Bus bus{bt::threaded()};
  tachyon::nats::options o;
  o.url = env("NATS_URL");
  o.name = "importer";
  auto s = bus.subscribe<Order>([&](const Order& ord, const tachyon::meta& m) {
    std::this_thread::sleep_for(1ms);
    say("got " + std::to_string(ord.id) + " " +
        ((m.flags & tachyon::meta_flags::redelivered) ? "1" : "0"));
  });
  Bridge bridge{bus, o};
  tachyon::nats::import_options io;
  io.jetstream = tachyon::nats::consumer_options{
      .stream = "KILL", .durable = "worker", .ack_wait = 1s, .batch = 16};
  bridge.import_type<Order>("kill.orders", io);
  say("ready");
  while (true) std::this_thread::sleep_for(1s);  // until killed
}

TEST(NatsProcesses, JetStreamImporterKilledMidStreamLosesNothingAndMarksRedeliveries) {
  TACHYON_REQUIRE_NATS_SERVER();
  tachyon::test::nats_server server;
  server.start();
  constexpr std::uint64_t n = 400;
  Bus bus{bt::threaded()};
  tachyon::nats::options o;
  o.url = server.url();
  o.name = "exporter";
  Bridge bridge{bus, o};
  tachyon::nats::export_options eo;
  eo.jetstream = tachyon::nats::stream_options{.name = "KILL"};
  bridge.export_type<Order>("kill.orders", eo);
  for (std::uint64_t i = 0; i < n; ++i)
    ASSERT_EQ(bus.publish(Order{i, 1, 1.0}), tachyon::result::ok);
  ASSERT_TRUE(bt::ran_all(bus) && bridge.flush(60s));
  ASSERT_EQ(bridge.metrics().exported, n);  // every one acknowledged by the server

  const std::vector<std::string> child_env{"NATS_URL=" + server.url()};
  auto first =
      tachyon::test::spawn_child_role("bridge_js_importer", server.dir() / "first.out", child_env);
  ASSERT_TRUE(eventually([&] { return got_lines(first->output()).size() >= 100; }))
      << first->output();
  first->kill(SIGKILL);
  const auto before = got_lines(first->output());
  ASSERT_LT(before.size(), n) << "the importer finished before it was killed";

  auto second =
      tachyon::test::spawn_child_role("bridge_js_importer", server.dir() / "second.out", child_env);
  std::multimap<std::uint64_t, int> after;
  auto all_seen = [&] {
    after = got_lines(second->output());
    std::set<std::uint64_t> ids;
    for (auto& [id, again] : before) ids.insert(id);
    for (auto& [id, again] : after) ids.insert(id);
    return ids.size() == n;
  };
  ASSERT_TRUE(eventually(all_seen)) << second->output();
  second->kill(SIGKILL);
  // At least once: every acknowledged export was handled. A message the first process handled
  // but had not acknowledged when it died comes again, marked.
  std::size_t duplicates = 0, marked = 0;
  for (auto& [id, again] : after) {
    if (again) ++marked;
    if (before.count(id) != 0) {
      ++duplicates;
      EXPECT_EQ(again, 1) << "order " << id << " handled twice without the redelivered mark";
    }
  }
  for (std::uint64_t id = 0; id < n; ++id)
    EXPECT_TRUE(before.count(id) + after.count(id) >= 1) << "order " << id << " lost";
  EXPECT_GE(marked, duplicates);
  std::printf(
      "killed after %zu handled; the second run handled %zu, %zu of them again, %zu marked\n",
      before.size(), after.size(), duplicates, marked);
}

TEST(NatsProcesses, ClusterLosesANodeWhileTrafficFlowsAndNothingAcknowledgedIsLost) {
  TACHYON_REQUIRE_NATS_SERVER();
  tachyon::test::nats_cluster cluster;
  cluster.start();
  Bus a{bt::threaded()}, b{bt::threaded()};
  std::mutex mu;
  std::set<std::uint64_t> seen;
  auto s = b.subscribe<Order>([&](const Order& o) {
    std::lock_guard lock(mu);
    seen.insert(o.id);
  });
  tachyon::nats::options o;
  o.url = cluster.urls();
  o.name = "a";
  o.reconnect.max_attempts = -1;
  o.reconnect.wait = 50ms;
  auto ob = o;
  ob.name = "b";
  Bridge ba{a, o}, bb{b, ob};
  tachyon::nats::export_options eo;
  eo.jetstream = tachyon::nats::stream_options{.name = "CL", .replicas = 3};
  ba.export_type<Order>("cl.orders", eo);
  tachyon::nats::import_options io;
  io.jetstream = tachyon::nats::consumer_options{.stream = "CL", .durable = "b", .ack_wait = 2s};
  bb.import_type<Order>("cl.orders", io);
  constexpr std::uint64_t n = 1000;
  std::thread publisher([&] {
    for (std::uint64_t i = 0; i < n; ++i) {
      (void)a.publish(Order{i, 1, 1.0});
      if (i % 50 == 0) std::this_thread::sleep_for(5ms);
    }
  });
  const bool flowing = eventually([&] { return ba.metrics().exported > 200; });
  cluster.kill(0);
  publisher.join();
  ASSERT_TRUE(flowing);
  ASSERT_TRUE(bt::ran_all(a) && ba.flush(120s));
  const auto ma = ba.metrics();
  EXPECT_EQ(ma.export_errors, 0u);
  EXPECT_EQ(ma.export_queue_full, 0u);
  EXPECT_EQ(ma.exported + ma.export_duplicates, n);
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mu);
    return seen.size() == n;
  }));
}
