// The README's NATS snippet, compiled from the README by tests/CMakeLists.txt, run against a
// nats-server of its own.
#include "nats_server.hpp"

#ifdef TACHYON_README_NATS_BRIDGE
TEST(NatsReadme, BridgeSnippetRunsAgainstARealServer) {
  TACHYON_REQUIRE_NATS_SERVER();
  tachyon::test::nats_server server;
  server.start();
  tachyon::test::child_process snippet(
      tachyon::test::own_program({TACHYON_README_NATS_BRIDGE, server.url()}),
      server.dir() / "snippet.out");
  const auto status = snippet.wait_for_exit(std::chrono::seconds(60));
  ASSERT_TRUE(status) << snippet.output();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << snippet.output();
  EXPECT_NE(snippet.output().find("paid 3, exported 3"), std::string::npos) << snippet.output();
}
#endif
