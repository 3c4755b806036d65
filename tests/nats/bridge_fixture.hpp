// What the bridge tests share beyond their event types: bridge options for a test server,
// JetStream options, and a plain libnats client for messages the bridge did not write.
#pragma once

#include <nats/nats.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "bridge_events.hpp"
#include "nats_server.hpp"

namespace bt {

/// A bridge named `name` on `server`.
inline tachyon::nats::options opts(const tachyon::test::nats_server& server, std::string name) {
  tachyon::nats::options o;
  o.url = server.url();
  o.name = std::move(name);
  return o;
}

inline tachyon::nats::export_options js_export(std::string stream) {
  tachyon::nats::export_options o;
  o.jetstream = tachyon::nats::stream_options{.name = std::move(stream)};
  return o;
}
/// A durable consumer with a 2 s ack wait: a redelivery the tests wait for comes in seconds.
inline tachyon::nats::import_options js_import(std::string stream, std::string durable) {
  tachyon::nats::import_options o;
  o.jetstream = tachyon::nats::consumer_options{.stream = std::move(stream),
                                                .durable = std::move(durable),
                                                .ack_wait = std::chrono::seconds(2)};
  return o;
}

inline std::string order_bytes(const Order& o) {
  return std::string(reinterpret_cast<const char*>(&o), sizeof o);
}
/// Tachyon-Meta as an exporter of Order writes it, with its per-subject count `n`.
inline std::string valid_meta(std::uint32_t version = 1,
                              std::uint64_t fp = tachyon::fingerprint<Order>(),
                              std::uint64_t n = 1) {
  return tachyon::nats::format_meta({version, fp, 7, 99, 0, 0, n});
}

/// A plain libnats connection, for messages the bridge did not write.
struct raw_client {
  natsConnection* nc = nullptr;
  explicit raw_client(const std::string& url) {
    if (natsConnection_ConnectTo(&nc, url.c_str()) != NATS_OK) throw std::runtime_error("connect");
  }
  ~raw_client() { natsConnection_Destroy(nc); }
  raw_client(const raw_client&) = delete;
  raw_client& operator=(const raw_client&) = delete;

  void send(const std::string& subject, const std::string& payload,
            const std::vector<std::pair<std::string, std::string>>& headers) {
    natsMsg* m = nullptr;
    ASSERT_EQ(natsMsg_Create(&m, subject.c_str(), nullptr, payload.data(),
                             static_cast<int>(payload.size())),
              NATS_OK);
    for (const auto& [k, v] : headers) natsMsgHeader_Set(m, k.c_str(), v.c_str());
    ASSERT_EQ(natsConnection_PublishMsg(nc, m), NATS_OK);
    natsMsg_Destroy(m);
  }
  /// An Order with the headers its exporter would write, `n` its per-subject count.
  void send_order(const std::string& subject, std::uint64_t id, std::uint64_t n) {
    send(subject, order_bytes({id, 1, 1.0}),
         {{"Tachyon-Type", "test.Order"},
          {"Tachyon-Meta", valid_meta(1, tachyon::fingerprint<Order>(), n)}});
  }
};

}  // namespace bt
