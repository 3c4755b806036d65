// The harness itself: real nats-servers start, serve core NATS and JetStream, keep JetStream
// data over a restart, come back on the same port after a crash, form a JetStream cluster that
// survives a node's death, and listen on 127.0.0.1 only.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nats/nats.h>

#include "nats_server.hpp"

namespace {

using namespace std::chrono_literals;
using tachyon::test::child_process;
using tachyon::test::nats_cluster;
using tachyon::test::nats_server;

/// Polls pred() until it holds or `limit` passes (a bound only a hang reaches).
template <class Pred>
bool within(std::chrono::milliseconds limit, Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// libnats handles, destroyed in reverse order of creation.
struct options_deleter {
  void operator()(natsOptions* p) const { natsOptions_Destroy(p); }
};
struct connection_deleter {
  void operator()(natsConnection* p) const { natsConnection_Destroy(p); }
};
struct js_deleter {
  void operator()(jsCtx* p) const { jsCtx_Destroy(p); }
};
struct subscription_deleter {
  void operator()(natsSubscription* p) const { natsSubscription_Destroy(p); }
};
struct msg_deleter {
  void operator()(natsMsg* p) const { natsMsg_Destroy(p); }
};
struct ack_deleter {
  void operator()(jsPubAck* p) const { jsPubAck_Destroy(p); }
};
struct stream_info_deleter {
  void operator()(jsStreamInfo* p) const { jsStreamInfo_Destroy(p); }
};
using options_ptr = std::unique_ptr<natsOptions, options_deleter>;
using connection_ptr = std::unique_ptr<natsConnection, connection_deleter>;
using js_ptr = std::unique_ptr<jsCtx, js_deleter>;
using subscription_ptr = std::unique_ptr<natsSubscription, subscription_deleter>;
using msg_ptr = std::unique_ptr<natsMsg, msg_deleter>;
using ack_ptr = std::unique_ptr<jsPubAck, ack_deleter>;
using stream_info_ptr = std::unique_ptr<jsStreamInfo, stream_info_deleter>;

tachyon::test::nats_server_options core_only() {
  tachyon::test::nats_server_options options;
  options.jetstream = false;
  return options;
}

std::string text(natsStatus status) { return natsStatus_GetText(status); }

options_ptr client_options(const std::vector<std::string>& urls) {
  natsOptions* raw = nullptr;
  EXPECT_EQ(natsOptions_Create(&raw), NATS_OK);
  options_ptr options(raw);
  std::vector<const char*> servers;
  for (const auto& url : urls) servers.push_back(url.c_str());
  EXPECT_EQ(natsOptions_SetServers(options.get(), servers.data(), static_cast<int>(servers.size())),
            NATS_OK);
  EXPECT_EQ(natsOptions_SetTimeout(options.get(), 5000), NATS_OK);
  return options;
}

connection_ptr connect(natsOptions* options) {
  natsConnection* raw = nullptr;
  const natsStatus status = natsConnection_Connect(&raw, options);
  EXPECT_EQ(status, NATS_OK) << text(status);
  return connection_ptr(raw);
}

js_ptr jetstream(natsConnection* connection) {
  jsCtx* raw = nullptr;
  EXPECT_EQ(natsConnection_JetStream(&raw, connection, nullptr), NATS_OK);
  return js_ptr(raw);
}

void add_stream(jsCtx* js, const char* name, const char* subject, int replicas) {
  jsStreamConfig config;
  jsStreamConfig_Init(&config);
  config.Name = name;
  config.Subjects = &subject;
  config.SubjectsLen = 1;
  config.Replicas = replicas;
  config.Storage = js_FileStorage;
  jsStreamInfo* raw = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus status = js_AddStream(&raw, js, &config, nullptr, &code);
  stream_info_ptr info(raw);
  ASSERT_EQ(status, NATS_OK) << text(status) << " (JetStream error " << code << ")";
  EXPECT_EQ(info->Config->Replicas, replicas);
}

std::uint64_t stream_messages(jsCtx* js, const char* name) {
  jsStreamInfo* raw = nullptr;
  const natsStatus status = js_GetStreamInfo(&raw, js, name, nullptr, nullptr);
  stream_info_ptr info(raw);
  EXPECT_EQ(status, NATS_OK) << text(status);
  return status == NATS_OK ? info->State.Msgs : ~std::uint64_t{0};
}

/// The 127.0.0.1/0.0.0.0/... addresses that process `pid` listens on, as "a.b.c.d:port"
/// (IPv6 ones as "[v6]:port"): its socket inodes matched against /proc/net/tcp{,6}.
std::set<std::string> listening_addresses(pid_t pid) {
  std::set<std::string> inodes;
  const auto fd_dir = "/proc/" + std::to_string(pid) + "/fd";
  for (const auto& entry : std::filesystem::directory_iterator(fd_dir)) {
    std::error_code error;
    const auto target = std::filesystem::read_symlink(entry.path(), error).string();
    if (target.rfind("socket:[", 0) == 0) inodes.insert(target.substr(8, target.size() - 9));
  }
  std::set<std::string> listening;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
          timeout >> inode;
      if (state != "0A" || inodes.count(inode) == 0) continue;  // 0A: LISTEN
      const auto colon = local.find(':');
      const auto port = std::stoi(local.substr(colon + 1), nullptr, 16);
      const auto hex = local.substr(0, colon);
      if (hex.size() == 8) {  // IPv4, little-endian on x86
        const auto address = static_cast<std::uint32_t>(std::stoul(hex, nullptr, 16));
        listening.insert(std::to_string(address & 0xff) + "." +
                         std::to_string((address >> 8) & 0xff) + "." +
                         std::to_string((address >> 16) & 0xff) + "." +
                         std::to_string(address >> 24) + ":" + std::to_string(port));
      } else {
        listening.insert("[" + hex + "]:" + std::to_string(port));
      }
    }
  }
  return listening;
}

std::set<std::string> loopback(std::initializer_list<int> ports) {
  std::set<std::string> addresses;
  for (const int port : ports) addresses.insert("127.0.0.1:" + std::to_string(port));
  return addresses;
}

// ---------------------------------------------------------------------------------------------

TEST(NatsHarness, ServerRunsHere) {
  TACHYON_REQUIRE_NATS_SERVER();
  EXPECT_FALSE(tachyon::test::nats_server_binary().empty());
}

TEST(NatsHarness, CoreNatsMessageReachesASubscriber) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server(core_only());
  server.start();
  EXPECT_EQ(server.url(), "nats://127.0.0.1:" + std::to_string(server.port()));
  const auto options = client_options({server.url()});
  const auto connection = connect(options.get());
  ASSERT_TRUE(connection);
  natsSubscription* raw_sub = nullptr;
  ASSERT_EQ(natsConnection_SubscribeSync(&raw_sub, connection.get(), "harness.core"), NATS_OK);
  subscription_ptr sub(raw_sub);
  ASSERT_EQ(natsConnection_Flush(connection.get()), NATS_OK);
  ASSERT_EQ(natsConnection_PublishString(connection.get(), "harness.core", "hello"), NATS_OK);
  natsMsg* raw_msg = nullptr;
  ASSERT_EQ(natsSubscription_NextMsg(&raw_msg, sub.get(), 10000), NATS_OK);
  msg_ptr msg(raw_msg);
  EXPECT_EQ(std::string(natsMsg_GetData(msg.get()),
                        static_cast<std::size_t>(natsMsg_GetDataLength(msg.get()))),
            "hello");
  EXPECT_STREQ(natsMsg_GetSubject(msg.get()), "harness.core");
}

TEST(NatsHarness, ListensOnLoopbackOnly) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server;
  server.start();
  EXPECT_EQ(listening_addresses(server.pid()), loopback({server.port(), server.monitor_port()}));
}

TEST(NatsHarness, JetStreamMessageSurvivesARestart) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server;
  server.start();
  {
    const auto options = client_options({server.url()});
    const auto connection = connect(options.get());
    ASSERT_TRUE(connection);
    const auto js = jetstream(connection.get());
    ASSERT_NO_FATAL_FAILURE(add_stream(js.get(), "HARNESS", "harness.js.>", 1));
    jsPubAck* raw_ack = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus status =
        js_Publish(&raw_ack, js.get(), "harness.js.one", "kept", 4, nullptr, &code);
    ack_ptr ack(raw_ack);
    ASSERT_EQ(status, NATS_OK) << text(status) << " (JetStream error " << code << ")";
    EXPECT_STREQ(ack->Stream, "HARNESS");
    EXPECT_EQ(ack->Sequence, 1u);
    EXPECT_FALSE(ack->Duplicate);
  }
  const int port = server.port();
  server.restart();
  EXPECT_EQ(server.port(), port);

  const auto options = client_options({server.url()});
  const auto connection = connect(options.get());
  ASSERT_TRUE(connection);
  const auto js = jetstream(connection.get());
  EXPECT_EQ(stream_messages(js.get(), "HARNESS"), 1u);
  natsSubscription* raw_sub = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  ASSERT_EQ(js_PullSubscribe(&raw_sub, js.get(), "harness.js.>", "reader", nullptr, nullptr, &code),
            NATS_OK)
      << code;
  subscription_ptr sub(raw_sub);
  natsMsgList list{};
  ASSERT_EQ(natsSubscription_Fetch(&list, sub.get(), 10, 10000, &code), NATS_OK) << code;
  ASSERT_EQ(list.Count, 1);
  EXPECT_EQ(std::string(natsMsg_GetData(list.Msgs[0]),
                        static_cast<std::size_t>(natsMsg_GetDataLength(list.Msgs[0]))),
            "kept");
  jsMsgMetaData* meta = nullptr;
  ASSERT_EQ(natsMsg_GetMetaData(&meta, list.Msgs[0]), NATS_OK);
  EXPECT_EQ(meta->Sequence.Stream, 1u);
  EXPECT_STREQ(meta->Stream, "HARNESS");
  jsMsgMetaData_Destroy(meta);
  EXPECT_EQ(natsMsg_AckSync(list.Msgs[0], nullptr, nullptr), NATS_OK);
  natsMsgList_Destroy(&list);
}

TEST(NatsHarness, ClientReconnectsAfterKillAndRestartOnTheSamePort) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server(core_only());
  server.start();
  const int port = server.port();

  std::atomic<int> disconnects{0};
  std::atomic<int> reconnects{0};
  const auto options = client_options({server.url()});
  ASSERT_EQ(natsOptions_SetMaxReconnect(options.get(), -1), NATS_OK);  // forever
  ASSERT_EQ(natsOptions_SetReconnectWait(options.get(), 50), NATS_OK);
  ASSERT_EQ(
      natsOptions_SetDisconnectedCB(
          options.get(),
          [](natsConnection*, void* count) { static_cast<std::atomic<int>*>(count)->fetch_add(1); },
          &disconnects),
      NATS_OK);
  ASSERT_EQ(
      natsOptions_SetReconnectedCB(
          options.get(),
          [](natsConnection*, void* count) { static_cast<std::atomic<int>*>(count)->fetch_add(1); },
          &reconnects),
      NATS_OK);
  const auto connection = connect(options.get());
  ASSERT_TRUE(connection);

  server.kill();
  EXPECT_FALSE(server.running());
  ASSERT_TRUE(within(20s, [&] { return disconnects.load() == 1; }));
  server.restart();
  EXPECT_EQ(server.port(), port);
  ASSERT_TRUE(within(20s, [&] { return reconnects.load() == 1; }))
      << "status " << natsConnection_Status(connection.get());
  EXPECT_EQ(disconnects.load(), 1);

  natsSubscription* raw_sub = nullptr;
  ASSERT_EQ(natsConnection_SubscribeSync(&raw_sub, connection.get(), "harness.back"), NATS_OK);
  subscription_ptr sub(raw_sub);
  ASSERT_EQ(natsConnection_Flush(connection.get()), NATS_OK);
  ASSERT_EQ(natsConnection_PublishString(connection.get(), "harness.back", "again"), NATS_OK);
  natsMsg* raw_msg = nullptr;
  ASSERT_EQ(natsSubscription_NextMsg(&raw_msg, sub.get(), 10000), NATS_OK);
  msg_ptr msg(raw_msg);
  EXPECT_EQ(natsMsg_GetDataLength(msg.get()), 5);
}

TEST(NatsHarness, StopEndsTheServerAndFreesItsPort) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server(core_only());
  server.start();
  server.stop();
  EXPECT_FALSE(server.running());
  const auto options = client_options({server.url()});
  natsConnection* raw = nullptr;
  EXPECT_EQ(natsConnection_Connect(&raw, options.get()), NATS_NO_SERVER);
  natsConnection_Destroy(raw);
  server.stop();  // again: a no-op
  server.kill();  // and so is this
}

TEST(NatsHarness, StartFailureCarriesTheServerLog) {
  TACHYON_REQUIRE_NATS_SERVER();
  // Hold a port, listening, and ask for exactly that port: no retry can help.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t length = sizeof address;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  auto options = core_only();
  options.port = ntohs(address.sin_port);
  nats_server server(options);
  try {
    server.start();
    ADD_FAILURE() << "start() succeeded on a taken port";
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("a port was taken"), std::string::npos) << message;
    EXPECT_NE(message.find("address already in use"), std::string::npos) << message;
    EXPECT_NE(message.find("-a 127.0.0.1"), std::string::npos) << message;
  }
  ::close(fd);
}

TEST(NatsHarness, ClusterOptionsMustComeTogether) {
  try {
    tachyon::test::nats_server_options options;
    options.cluster_name = "c";
    nats_server server(options);
    ADD_FAILURE() << "a cluster name without a cluster port was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("cluster_port"), std::string::npos) << e.what();
  }
}

TEST(NatsHarness, ClusterKeepsAcknowledgingWithANodeKilled) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_cluster cluster;
  cluster.start();
  for (std::size_t i = 0; i < nats_cluster::size; ++i) {
    auto& node = cluster.node(i);
    EXPECT_EQ(listening_addresses(node.pid()),
              loopback({node.port(), node.monitor_port(), node.cluster_port()}))
        << "node " << i;
  }

  const auto options = client_options(cluster.url_list());
  ASSERT_EQ(natsOptions_SetMaxReconnect(options.get(), -1), NATS_OK);
  ASSERT_EQ(natsOptions_SetReconnectWait(options.get(), 50), NATS_OK);
  const auto connection = connect(options.get());
  ASSERT_TRUE(connection);
  const auto js = jetstream(connection.get());
  ASSERT_NO_FATAL_FAILURE(add_stream(js.get(), "CLUSTERED", "harness.cluster.>", 3));

  // Publishes message `n` with its own MsgId until one try is acknowledged: a try that timed
  // out during the failover may still have been stored, and the id makes its retry a duplicate.
  int duplicates = 0;
  const auto publish = [&](int n) {
    const std::string id = "m" + std::to_string(n);
    std::string last = "no try";
    const bool acked = within(30s, [&] {
      jsPubOptions publish_options;
      jsPubOptions_Init(&publish_options);
      publish_options.MsgId = id.c_str();
      publish_options.MaxWait = 2000;
      jsPubAck* raw_ack = nullptr;
      jsErrCode code = static_cast<jsErrCode>(0);
      const natsStatus status = js_Publish(&raw_ack, js.get(), "harness.cluster.x", id.data(),
                                           static_cast<int>(id.size()), &publish_options, &code);
      ack_ptr ack(raw_ack);
      if (status != NATS_OK) {
        last = text(status) + " (JetStream error " + std::to_string(code) + ")";
        return false;
      }
      duplicates += ack->Duplicate ? 1 : 0;
      return true;
    });
    EXPECT_TRUE(acked) << "message " << n << ": " << last;
  };
  for (int n = 1; n <= 5; ++n) publish(n);

  // Kill the node the client is connected to: the client fails over, and the stream (whose
  // leader may have been there) elects a new leader among the two left.
  char connected[256] = {};
  ASSERT_EQ(natsConnection_GetConnectedUrl(connection.get(), connected, sizeof connected), NATS_OK);
  std::size_t victim = nats_cluster::size;
  for (std::size_t i = 0; i < nats_cluster::size; ++i) {
    if (cluster.node(i).url() == connected) victim = i;
  }
  ASSERT_LT(victim, nats_cluster::size) << connected;
  cluster.kill(victim);
  for (int n = 6; n <= 10; ++n) publish(n);
  EXPECT_EQ(stream_messages(js.get(), "CLUSTERED"), 10u) << duplicates << " duplicates";

  // The killed node comes back on its ports and catches up.
  cluster.restart(victim);
  for (int n = 11; n <= 12; ++n) publish(n);
  EXPECT_EQ(stream_messages(js.get(), "CLUSTERED"), 12u);
}

// ---------------------------------------------------------------------------------------------

// A child copy of this binary that publishes `count` core NATS messages and says so.
TACHYON_CHILD_ROLE(harness_publisher) {
  const char* url = std::getenv("NATS_URL");
  const int count = std::atoi(std::getenv("COUNT"));
  natsConnection* connection = nullptr;
  if (url == nullptr || natsConnection_ConnectTo(&connection, url) != NATS_OK) return 2;
  for (int n = 0; n < count; ++n) {
    const std::string data = std::to_string(n);
    if (natsConnection_PublishString(connection, "harness.child", data.c_str()) != NATS_OK) {
      return 3;
    }
  }
  // Flush: the server has taken every message before this process ends.
  if (natsConnection_Flush(connection) != NATS_OK) return 4;
  natsConnection_Destroy(connection);
  std::printf("published %d\n", count);
  return 0;
}

TEST(NatsHarness, ChildProcessPublishesToTheParent) {
  TACHYON_REQUIRE_NATS_SERVER();
  nats_server server(core_only());
  server.start();
  const auto options = client_options({server.url()});
  const auto connection = connect(options.get());
  ASSERT_TRUE(connection);
  natsSubscription* raw_sub = nullptr;
  ASSERT_EQ(natsConnection_SubscribeSync(&raw_sub, connection.get(), "harness.child"), NATS_OK);
  subscription_ptr sub(raw_sub);
  ASSERT_EQ(natsConnection_Flush(connection.get()), NATS_OK);

  const auto child = tachyon::test::spawn_child_role(
      "harness_publisher", server.dir() / "child.out", {"NATS_URL=" + server.url(), "COUNT=100"});
  const auto status = child->wait_for_exit(60s);
  ASSERT_TRUE(status) << child->output();
  ASSERT_EQ(*status, 0) << child->output();
  EXPECT_NE(child->output().find("published 100\n"), std::string::npos) << child->output();

  for (int n = 0; n < 100; ++n) {
    natsMsg* raw_msg = nullptr;
    ASSERT_EQ(natsSubscription_NextMsg(&raw_msg, sub.get(), 10000), NATS_OK) << n;
    msg_ptr msg(raw_msg);
    EXPECT_STREQ(natsMsg_GetData(msg.get()), std::to_string(n).c_str());
  }
  // The server delivered the child's messages before it answers this flush: no 101st.
  ASSERT_EQ(natsConnection_Flush(connection.get()), NATS_OK);
  std::uint64_t queued = ~std::uint64_t{0};
  ASSERT_EQ(natsSubscription_QueuedMsgs(sub.get(), &queued), NATS_OK);
  EXPECT_EQ(queued, 0u);
}

class ChildProcess : public ::testing::Test {
 protected:
  std::filesystem::path dir = [] {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "tachyon-child-XXXXXX").string();
    return std::filesystem::path(::mkdtemp(pattern.data()));
  }();
  ~ChildProcess() override { std::filesystem::remove_all(dir); }
};

TEST_F(ChildProcess, OutputAndExitStatusComeBack) {
  child_process child({"/bin/sh", "-c", "echo \"$GREETING\"; echo oops >&2; exit 3"}, dir / "out",
                      {"GREETING=hello"});
  const auto status = child.wait_for_exit(20s);
  ASSERT_TRUE(status);
  ASSERT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 3);
  EXPECT_EQ(child.output(), "hello\noops\n");
  EXPECT_FALSE(child.running());
  EXPECT_EQ(child.wait_for_exit(0ms), status);
}

TEST_F(ChildProcess, KillEndsAHungChild) {
  child_process child({"/bin/sleep", "1000"}, dir / "out");
  EXPECT_TRUE(child.running());
  EXPECT_FALSE(child.wait_for_exit(20ms));
  child.kill();
  EXPECT_FALSE(child.running());
  const auto status = child.wait_for_exit(0ms);
  ASSERT_TRUE(status);
  ASSERT_TRUE(WIFSIGNALED(*status));
  EXPECT_EQ(WTERMSIG(*status), SIGKILL);
}

TEST_F(ChildProcess, WaitForOutputSeesALineAndGivesUpWhenTheChildEnds) {
  child_process child({"/bin/sh", "-c", "echo ready; exec sleep 1000"}, dir / "out");
  EXPECT_TRUE(child.wait_for_output("ready", 20s));
  child.kill();
  child_process quiet({"/bin/true"}, dir / "quiet");
  EXPECT_FALSE(quiet.wait_for_output("never", 20s));  // returns when /bin/true ends
}

TEST_F(ChildProcess, ExecFailureThrowsWithTheReason) {
  try {
    child_process child({"/nonexistent/binary"}, dir / "out");
    ADD_FAILURE() << "exec of a missing binary did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot exec /nonexistent/binary"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << e.what();
  }
}

TEST_F(ChildProcess, AnUnknownRoleExits125) {
  const auto child = tachyon::test::spawn_child_role("no_such_role", dir / "out");
  const auto status = child->wait_for_exit(60s);
  ASSERT_TRUE(status);
  ASSERT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 125);
  EXPECT_NE(child->output().find("no child role 'no_such_role'"), std::string::npos)
      << child->output();
}

TEST_F(ChildProcess, ThisBinaryRunsAsAChild) {
  child_process child(
      tachyon::test::own_program({tachyon::test::self_exe().string(), "--gtest_list_tests",
                                  "--gtest_filter=ChildProcess.*"}),
      dir / "out");
  const auto status = child.wait_for_exit(60s);
  ASSERT_TRUE(status);
  EXPECT_EQ(*status, 0);
  EXPECT_NE(child.output().find("ThisBinaryRunsAsAChild"), std::string::npos) << child.output();
}

}  // namespace
