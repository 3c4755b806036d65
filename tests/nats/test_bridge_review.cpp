// A hostile review of the NATS bridge: each test here shows one way to break it
// (a race, a lifetime, a lost message), against a real nats-server on
// 127.0.0.1.
#include <nats/nats.h>

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "bridge_events.hpp"
#include "nats_server.hpp"

namespace {

using namespace std::chrono_literals;
using bt::Bridge;
using bt::Bus;
using bt::eventually;
using bt::Note;
using bt::Order;
using tachyon::test::nats_server;

tachyon::nats::options opts(const nats_server& s, std::string name) {
  tachyon::nats::options o;
  o.url = s.url();
  o.name = std::move(name);
  return o;
}

tachyon::nats::export_options js_export(std::string stream) {
  tachyon::nats::export_options o;
  o.jetstream = tachyon::nats::stream_options{.name = std::move(stream)};
  return o;
}
tachyon::nats::import_options js_import(std::string stream, std::string durable) {
  tachyon::nats::import_options o;
  o.jetstream = tachyon::nats::consumer_options{
      .stream = std::move(stream), .durable = std::move(durable), .ack_wait = 2s};
  return o;
}

struct raw_client {
  natsConnection* nc = nullptr;
  explicit raw_client(const std::string& url) {
    if (natsConnection_ConnectTo(&nc, url.c_str()) != NATS_OK) throw std::runtime_error("connect");
  }
  ~raw_client() { natsConnection_Destroy(nc); }
  void send_order(const std::string& subject, std::uint64_t id, std::uint64_t n) {
    const Order o{id, 1, 1.0};
    natsMsg* m = nullptr;
    ASSERT_EQ(natsMsg_Create(&m, subject.c_str(), nullptr, reinterpret_cast<const char*>(&o),
                             static_cast<int>(sizeof o)),
              NATS_OK);
    natsMsgHeader_Set(m, "Tachyon-Type", "test.Order");
    natsMsgHeader_Set(
        m, "Tachyon-Meta",
        tachyon::nats::format_meta({1, tachyon::fingerprint<Order>(), 7, 99, 0, 0, n}).c_str());
    ASSERT_EQ(natsConnection_PublishMsg(nc, m), NATS_OK);
    natsMsg_Destroy(m);
  }
};

}  // namespace

// metrics() reads each core import's subscription (its dropped count) while
// close() destroys them: close() must not free a subscription that metrics()
// may be reading.
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
