// A nats-server for the benchmarks (tachyon_nats_bench, tachyon_hot_paths' bridged rows): one
// process on a free 127.0.0.1 port, JetStream stored in a temporary directory, killed with its
// parent (PR_SET_PDEATHSIG) and stopped by the destructor. The tests' harness
// (tests/nats/nats_server.hpp) does more (clusters, restarts, failure reports through
// GoogleTest); a benchmark needs only this, and no GoogleTest.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace tachyon::bench {

/// nats-server's path: $TACHYON_NATS_SERVER, else the first `nats-server` on PATH; empty if
/// there is none.
inline std::string find_nats_server() {
  if (const char* env = std::getenv("TACHYON_NATS_SERVER"); env != nullptr && *env != '\0')
    return access(env, X_OK) == 0 ? std::string(env) : std::string();
  const char* path = std::getenv("PATH");
  std::string p = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin:/usr/sbin";
  std::size_t at = 0;
  while (at <= p.size()) {
    std::size_t colon = p.find(':', at);
    if (colon == std::string::npos) colon = p.size();
    const std::string candidate = p.substr(at, colon - at) + "/nats-server";
    if (colon > at && access(candidate.c_str(), X_OK) == 0) return candidate;
    at = colon + 1;
  }
  return {};
}

class nats_launcher {
 public:
  /// Starts `binary` and waits (20 s at most) until its client port accepts connections.
  /// Throws std::runtime_error, with the log's path, if it does not.
  explicit nats_launcher(const std::string& binary) {
    char tmpl[] = "/tmp/tachyon-nats-bench-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("nats_launcher: mkdtemp failed");
    dir_ = tmpl;
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = free_port();
      launch(binary);
      if (wait_ready(std::chrono::seconds(20))) return;
      stop();
    }
    throw std::runtime_error("nats_launcher: nats-server did not start; see " +
                             (dir_ / "nats-server.log").string());
  }
  ~nats_launcher() {
    stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  nats_launcher(const nats_launcher&) = delete;
  nats_launcher& operator=(const nats_launcher&) = delete;

  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
  pid_t pid() const noexcept { return pid_; }

  /// SIGTERM, then SIGKILL after 10 s. No-op once stopped.
  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > until) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    pid_ = -1;
  }

 private:
  static int free_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      if (fd >= 0) close(fd);
      throw std::runtime_error("nats_launcher: cannot pick a free port on 127.0.0.1");
    }
    close(fd);
    return ntohs(a.sin_port);
  }

  void launch(const std::string& binary) {
    const std::string log = (dir_ / "nats-server.log").string();
    const std::string store = (dir_ / "js").string();
    std::vector<std::string> args = {binary, "-a",  "127.0.0.1", "-p", std::to_string(port_),
                                     "-js",  "-sd", store,       "-l", log};
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("nats_launcher: fork failed");
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(126);
      const int devnull = open("/dev/null", O_RDWR);
      if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
      }
      std::vector<char*> argv;
      for (auto& s : args) argv.push_back(s.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }

  bool wait_ready(std::chrono::seconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;  // exited: the port was taken, or the server refused its arguments
      }
      const int fd = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(static_cast<std::uint16_t>(port_));
      const bool up = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
      close(fd);
      if (up) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  std::filesystem::path dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace tachyon::bench
