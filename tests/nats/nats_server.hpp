// A test harness that runs real nats-server processes (one, or a three-node JetStream cluster)
// and other child processes for the NATS bridge tests.
//
// Everything listens on 127.0.0.1 only: the client port (-a 127.0.0.1), the monitoring port
// (nats-server binds it to the -a host), the cluster port and its routes.
//
// Threads: none of these objects may be used from two threads at once. A server or child is
// killed by the kernel when the thread that started it exits (PR_SET_PDEATHSIG, so that a
// crashed test never leaves servers behind): start them from the test's own thread.
//
// Every wait is bounded (generous bounds that only a real hang reaches); a failure throws
// std::runtime_error whose message names what was waited for and ends with the log's tail.
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "own_program.hpp"

namespace tachyon::test {

using namespace std::chrono_literals;

/// Generous bounds: a healthy server starts in well under a second here, a cluster in ~2 s.
inline constexpr std::chrono::milliseconds nats_start_timeout = 20s;
inline constexpr std::chrono::milliseconds nats_stop_timeout = 10s;

// ---------------------------------------------------------------------------------------------
/// A child process, started with fork+exec; its stdout and stderr go to a file.
/// The destructor SIGKILLs it if it still runs, and reaps it.
class child_process {
 public:
  /// Starts argv[0] (a path; PATH is not searched) with argv, the parent's environment plus
  /// `extra_env` ("NAME=value", overriding), stdout+stderr appended to `output`.
  /// Throws std::runtime_error if fork or exec fails (exec failure is seen as exit status 127
  /// by the caller's wait; fork failure throws here). Allocates.
  child_process(std::vector<std::string> argv, std::filesystem::path output,
                std::vector<std::string> extra_env = {});
  ~child_process();
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  pid_t pid() const noexcept { return pid_; }
  /// True until the process has been reaped (by wait_for_exit, kill or the destructor).
  bool running();
  /// Sends `sig` (default SIGKILL) and, for SIGKILL, reaps the process. No-op once reaped.
  void kill(int sig = 9);
  /// Waits at most `timeout` for the process to end; its raw waitpid status, or nullopt if
  /// it is still running. Once reaped, returns the same status again.
  std::optional<int> wait_for_exit(std::chrono::milliseconds timeout);
  /// Everything the process wrote so far (stdout and stderr, interleaved).
  std::string output() const;
  /// Waits at most `timeout` until output() contains `needle`; false if it does not, or if
  /// the process ended without writing it.
  bool wait_for_output(const std::string& needle, std::chrono::milliseconds timeout);
  const std::filesystem::path& output_path() const noexcept { return output_; }

 private:
  std::filesystem::path output_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

/// This test binary's own path (/proc/self/exe), for re-running it as a child process, e.g.
/// with --gtest_filter=... or a role in an environment variable.
std::filesystem::path self_exe();

/// A child role: a function that a child copy of this test binary runs instead of the tests;
/// its result is the child's exit status. Register one with TACHYON_CHILD_ROLE.
using child_role_function = int (*)();
bool register_child_role(const char* name, child_role_function function);

/// Defines and registers a child role, at namespace scope in a test file:
///   TACHYON_CHILD_ROLE(publisher) { ...; return 0; }
/// A role reads its parameters from the environment that spawn_child_role gave it.
#define TACHYON_CHILD_ROLE(name)                                               \
  static int tachyon_child_role_##name();                                      \
  [[maybe_unused]] static const bool tachyon_child_role_registered_##name =    \
      ::tachyon::test::register_child_role(#name, &tachyon_child_role_##name); \
  static int tachyon_child_role_##name()

/// Starts this test binary again, as a child that runs the role `name` and exits with its
/// result (125 if no such role is registered), with `extra_env` added to its environment
/// (e.g. "NATS_URL=..."). The role runs when RUN_ALL_TESTS starts, before any test, and
/// ends the process with _Exit (no static destructors: libnats threads may still run).
std::unique_ptr<child_process> spawn_child_role(const std::string& name,
                                                std::filesystem::path output,
                                                std::vector<std::string> extra_env = {});

/// The last `lines` lines of the file at `path` (empty if it cannot be read).
std::string file_tail(const std::filesystem::path& path, std::size_t lines = 40);

// ---------------------------------------------------------------------------------------------
/// Whether nats-server can run here: the binary is found ($TACHYON_NATS_SERVER, else PATH) and
/// `nats-server --version` runs. If not, `why` says what is missing. Checked once per process.
bool nats_server_available(std::string& why);
/// The nats-server binary nats_server_available() found (empty if none).
std::filesystem::path nats_server_binary();
/// TACHYON_REQUIRE_NATS=1 in the environment: a missing nats-server fails the test instead of
/// skipping it (CI sets it, so that CI never skips).
bool nats_required();

/// In a TEST body: skips the test, with the reason, when nats-server cannot run here, or
/// fails it if TACHYON_REQUIRE_NATS=1. Never passes silently.
#define TACHYON_REQUIRE_NATS_SERVER()                                                         \
  do {                                                                                        \
    std::string tachyon_nats_why_;                                                            \
    if (!::tachyon::test::nats_server_available(tachyon_nats_why_)) {                         \
      if (::tachyon::test::nats_required()) {                                                 \
        FAIL() << "TACHYON_REQUIRE_NATS=1 but nats-server cannot run: " << tachyon_nats_why_; \
      }                                                                                       \
      GTEST_SKIP() << "nats-server cannot run here (" << tachyon_nats_why_                    \
                   << "); install Debian's nats-server (tools/setup does)";                   \
    }                                                                                         \
  } while (0)

// ---------------------------------------------------------------------------------------------
/// How one nats-server is run. Ports 0 are picked free at start().
struct nats_server_options {
  bool jetstream = true;
  /// Server name (-n); must be unique in a cluster. Empty: "tachyon-<client port>".
  std::string name;
  /// Cluster membership: all three set, or none.
  std::string cluster_name;
  int cluster_port = 0;
  std::vector<int> route_ports;  ///< the other nodes' cluster ports
  int port = 0;                  ///< client port
  int monitor_port = 0;          ///< HTTP monitoring port: readiness comes from its /healthz
  /// More nats-server arguments (TLS, authorization), appended to the command line.
  std::vector<std::string> extra_args = {};
};

/// One nats-server process with its own temporary directory (log, JetStream store).
/// The directory is removed by the destructor, unless the running test has failed or
/// TACHYON_KEEP_NATS_DIRS=1, in which case its path (and the log's tail, on failure) is printed.
class nats_server {
 public:
  explicit nats_server(nats_server_options options = {});
  ~nats_server();
  nats_server(const nats_server&) = delete;
  nats_server& operator=(const nats_server&) = delete;

  /// Picks free loopback ports (those not given), starts the server and waits until it is
  /// ready: its client port accepts and GET /healthz answers 200 (which, with JetStream, means
  /// JetStream is enabled and, in a cluster, has a meta leader). If another process took a
  /// picked port first, picks again (a few times). Throws std::runtime_error with the log's
  /// tail on failure or after nats_start_timeout.
  void start();
  /// start() in two halves, for a cluster whose nodes become ready only together.
  void launch();
  void wait_ready(std::chrono::milliseconds timeout = nats_start_timeout);
  /// SIGTERM, then SIGKILL if it has not exited within nats_stop_timeout. No-op if stopped.
  void stop();
  /// SIGKILL at once (a crash, for fault tests). No-op if stopped.
  void kill();
  /// Starts it again on the same ports with the same store: JetStream data is kept.
  void restart();
  bool running();
  /// The server's process id while it runs, else -1.
  pid_t pid();

  std::string url() const;  ///< "nats://127.0.0.1:PORT"
  int port() const noexcept { return options_.port; }
  int monitor_port() const noexcept { return options_.monitor_port; }
  int cluster_port() const noexcept { return options_.cluster_port; }
  const std::string& name() const noexcept { return options_.name; }
  const std::filesystem::path& dir() const noexcept { return dir_; }
  std::filesystem::path log_path() const { return dir_ / "nats-server.log"; }
  /// The command line of the last launch, space-separated (for reports and failure messages).
  const std::string& command_line() const noexcept { return command_line_; }
  /// Raw HTTP GET of the monitoring endpoint `path` ("/healthz", "/jsz", ...): the status
  /// code and body, or status 0 if it could not connect. Bounded by a 2 s socket timeout.
  std::pair<int, std::string> http_get(const std::string& path) const;

 private:
  friend class nats_cluster;
  std::vector<std::string> argv() const;
  [[noreturn]] void fail(const std::string& what) const;

  nats_server_options options_;
  std::filesystem::path dir_;
  std::unique_ptr<child_process> process_;
  std::string command_line_;
  int launches_ = 0;
  std::size_t log_offset_ = 0;  ///< where the last launch's lines start in the log
};

/// Picks `count` distinct free TCP ports on 127.0.0.1 (bind to port 0 and read it, all held
/// open together so that they differ, then closed). Another process may take one before the
/// server binds it: nats_server::start() retries on that.
std::vector<int> pick_free_ports(std::size_t count);

// ---------------------------------------------------------------------------------------------
/// Three nats-servers, routed to each other, with JetStream clustered across them.
class nats_cluster {
 public:
  static constexpr std::size_t size = 3;

  /// Does not start anything; start() does.
  explicit nats_cluster(std::string cluster_name = "tachyon");
  ~nats_cluster() = default;

  /// Starts the three nodes and waits until each is ready and the JetStream meta group works:
  /// a stream with 3 replicas can be created (and is then deleted). Retries on a port race.
  void start();
  void kill(std::size_t i);
  void stop(std::size_t i);
  /// Restarts node i on its ports and store and waits until it is ready again.
  void restart(std::size_t i);
  nats_server& node(std::size_t i) { return *nodes_.at(i); }
  /// "nats://127.0.0.1:P0,nats://127.0.0.1:P1,nats://127.0.0.1:P2", for client failover
  /// through natsConnection_ConnectTo (natsOptions_SetURL takes one URL only: use url_list()
  /// with natsOptions_SetServers).
  std::string urls() const;
  std::vector<std::string> url_list() const;

 private:
  void wait_for_replicated_stream(std::chrono::milliseconds timeout);

  std::string name_;
  std::array<std::unique_ptr<nats_server>, size> nodes_;
};

}  // namespace tachyon::test
