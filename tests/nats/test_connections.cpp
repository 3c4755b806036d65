// The connection options that production servers ask for, against servers that ask for them:
// user and password, a token, and TLS with a CA made for the test (openssl), a wrong CA refused.
#include <cstdlib>
#include <filesystem>

#include "bridge_events.hpp"
#include "nats_server.hpp"

namespace {

using namespace std::chrono_literals;
using bt::Bridge;
using bt::Bus;
using bt::eventually;
using bt::Order;
using tachyon::test::nats_server;
using tachyon::test::nats_server_options;

/// Two buses through one server with `client` options: an order goes from one to the other.
void round_trip(const tachyon::nats::options& client) {
  Bus a{bt::threaded()}, b{bt::threaded()};
  std::atomic<int> got{0};
  auto s = b.subscribe<Order>([&](const Order& o) {
    if (o.id == 42) got.fetch_add(1);
  });
  auto oa = client, ob = client;
  oa.name = "a";
  ob.name = "b";
  Bridge ba{a, oa}, bb{b, ob};
  bb.import_type<Order>("secure.orders");
  ba.export_type<Order>("secure.orders");
  ASSERT_TRUE(bb.flush());
  ASSERT_EQ(a.publish(Order{42, 1, 1.0}), tachyon::result::ok);
  ASSERT_TRUE(eventually([&] { return got.load() == 1; }));
  EXPECT_TRUE(ba.metrics().connected);
}

std::string refusal(const tachyon::nats::options& client) {
  Bus a{bt::threaded()};
  try {
    Bridge b{a, client};
  } catch (const tachyon::nats::error& e) {
    return e.what();
  }
  return "";
}

/// Runs a shell command (openssl); true if it exits 0.
bool run(const std::string& command) {
  return std::system((command + " >/dev/null 2>&1").c_str()) == 0;
}

}  // namespace

TEST(NatsConnections, UserAndPasswordAreSentAndAWrongOneIsRefused) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server_options so;
  so.extra_args = {"--user", "alice", "--pass", "s3cret"};
  nats_server server(so);
  server.start();
  tachyon::nats::options o;
  o.url = server.url();
  o.user = "alice";
  o.password = "s3cret";
  round_trip(o);
  o.password = "wrong";
  const std::string why = refusal(o);
  EXPECT_NE(why.find("cannot connect to " + server.url()), std::string::npos) << why;
  EXPECT_NE(why.find("uthoriz"), std::string::npos) << why;  // libnats: "Authorization Violation"
}

TEST(NatsConnections, ATokenIsSent) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server_options so;
  so.extra_args = {"--auth", "t0ken"};
  nats_server server(so);
  server.start();
  tachyon::nats::options o;
  o.url = server.url();
  o.token = "t0ken";
  round_trip(o);
  o.token = "other";
  EXPECT_FALSE(refusal(o).empty());
}

TEST(NatsConnections, TlsWithTheServersCaConnectsAndAnotherCaIsRefused) {
  TACHYON_REQUIRE_NATS_SERVER();
  const auto dir =
      std::filesystem::temp_directory_path() / ("tachyon-tls-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  struct cleanup {
    std::filesystem::path p;
    ~cleanup() { std::filesystem::remove_all(p); }
  } c{dir};
  const std::string d = dir.string();
  // A CA, a server certificate it signs for "localhost", and a second CA that signed nothing.
  const std::string subj = "-subj /CN=tachyon-test-ca";
  ASSERT_TRUE(run("openssl req -x509 -newkey rsa:2048 -nodes -days 1 " + subj + " -keyout " + d +
                  "/ca.key -out " + d + "/ca.pem"));
  ASSERT_TRUE(run("openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout " + d +
                  "/server.key -out " + d + "/server.csr"));
  {
    std::FILE* f = std::fopen((d + "/san.ext").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("subjectAltName=DNS:localhost,IP:127.0.0.1\n", f);
    std::fclose(f);
  }
  ASSERT_TRUE(run("openssl x509 -req -days 1 -in " + d + "/server.csr -CA " + d +
                  "/ca.pem -CAkey " + d + "/ca.key -CAcreateserial -extfile " + d +
                  "/san.ext -out " + d + "/server.pem"));
  ASSERT_TRUE(run("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=other-ca -keyout " +
                  d + "/other.key -out " + d + "/other.pem"));

  nats_server_options so;
  so.extra_args = {"--tls", "--tlscert", d + "/server.pem", "--tlskey", d + "/server.key"};
  nats_server server(so);
  server.start();
  tachyon::nats::options o;
  o.url = server.url();
  o.tls.enabled = true;
  o.tls.ca_file = d + "/ca.pem";
  o.tls.expected_hostname = "localhost";
  round_trip(o);
  o.tls.ca_file = d + "/other.pem";
  const std::string why = refusal(o);
  EXPECT_NE(why.find("cannot connect to " + server.url()), std::string::npos) << why;
  // Without TLS, a server that requires it refuses too.
  o.tls = {};
  EXPECT_FALSE(refusal(o).empty());
}
