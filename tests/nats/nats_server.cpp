#include "nats_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <nats/nats.h>

extern char** environ;

namespace tachyon::test {
namespace {

using clock = std::chrono::steady_clock;

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

bool env_is_one(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && std::string(value) == "1";
}

/// A file descriptor closed on scope exit.
struct fd_guard {
  int fd = -1;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

sockaddr_in loopback(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

/// Bounds connect() (Linux applies SO_SNDTIMEO to it) and reads: a port whose listener does not
/// accept (backlog full) would otherwise hold connect() for the kernel's SYN retries, ~2 min.
void bound_socket_waits(int fd) {
  timeval limit{};
  limit.tv_sec = 2;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
}

bool tcp_accepts(int port) {
  fd_guard sock{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (sock.fd < 0) return false;
  bound_socket_waits(sock.fd);
  const sockaddr_in address = loopback(port);
  return ::connect(sock.fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
}

std::filesystem::path make_temp_dir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "tachyon-nats-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error(errno_text("mkdtemp"));
  return pattern;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// child_process

child_process::child_process(std::vector<std::string> argv, std::filesystem::path output,
                             std::vector<std::string> extra_env)
    : output_(std::move(output)) {
  if (argv.empty()) throw std::invalid_argument("child_process: argv is empty; give a path");
  // Everything the child needs is built before fork: between fork and exec only
  // async-signal-safe calls are allowed (the parent may have other threads, e.g. libnats').
  std::vector<char*> args;
  for (auto& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const auto name = entry.substr(0, entry.find('=') + 1);
    bool overridden = false;
    for (const auto& extra : extra_env) overridden |= extra.rfind(name, 0) == 0;
    if (!overridden) env_strings.push_back(entry);
  }
  for (const auto& extra : extra_env) env_strings.push_back(extra);
  std::vector<char*> envp;
  for (auto& entry : env_strings) envp.push_back(entry.data());
  envp.push_back(nullptr);

  fd_guard out{::open(output_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)};
  if (out.fd < 0) throw std::runtime_error(errno_text(("open " + output_.string()).c_str()));
  fd_guard in{::open("/dev/null", O_RDONLY | O_CLOEXEC)};
  if (in.fd < 0) throw std::runtime_error(errno_text("open /dev/null"));
  // exec's failure comes back through this pipe (its write end closes on a successful exec).
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) throw std::runtime_error(errno_text("pipe2"));
  fd_guard report_read{report[0]};
  fd_guard report_write{report[1]};

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(errno_text("fork"));
  if (pid == 0) {
    // The child dies with the thread that started it, so a crashed test leaves no servers.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(in.fd, 0);
    ::dup2(out.fd, 1);
    ::dup2(out.fd, 2);
    // Sockets that libnats or another test opened without O_CLOEXEC must not leak into the
    // child (a leaked listener would keep a port busy after the test closed it).
    ::syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */);
    ::execve(args[0], args.data(), envp.data());
    const int error = errno;
    [[maybe_unused]] auto ignored = ::write(report[1], &error, sizeof error);
    ::_exit(127);
  }
  pid_ = pid;
  ::close(report_write.fd);
  report_write.fd = -1;
  int error = 0;
  ssize_t got;
  do got = ::read(report_read.fd, &error, sizeof error);
  while (got < 0 && errno == EINTR);
  if (got == static_cast<ssize_t>(sizeof error)) {
    int status;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    throw std::runtime_error("child_process: cannot exec " + argv[0] + ": " + std::strerror(error));
  }
}

child_process::~child_process() {
  if (pid_ > 0) kill(SIGKILL);
}

bool child_process::running() {
  if (pid_ <= 0 || status_) return false;
  int status;
  const pid_t got = ::waitpid(pid_, &status, WNOHANG);
  if (got == pid_) status_ = status;
  return !status_;
}

void child_process::kill(int sig) {
  if (!running()) return;
  ::kill(pid_, sig);
  if (sig == SIGKILL) {
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    status_ = status;
  }
}

std::optional<int> child_process::wait_for_exit(std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  while (running()) {
    if (clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(5ms);
  }
  return status_;
}

std::string child_process::output() const { return read_file(output_); }

bool child_process::wait_for_output(const std::string& needle, std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  for (;;) {
    // Read after checking for exit, so that what a process wrote just before it ended counts.
    const bool alive = running();
    if (output().find(needle) != std::string::npos) return true;
    if (!alive || clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
}

namespace {

constexpr const char* child_role_variable = "TACHYON_CHILD_ROLE";

std::map<std::string, child_role_function>& child_roles() {
  static std::map<std::string, child_role_function> roles;
  return roles;
}

/// Runs the child role named in the environment, if any, when RUN_ALL_TESTS starts: by then
/// every test file's static initializers have registered their roles.
class child_role_runner : public ::testing::EmptyTestEventListener {
  void OnTestProgramStart(const ::testing::UnitTest&) override {
    const char* name = std::getenv(child_role_variable);
    if (name == nullptr) return;
    const auto role = child_roles().find(name);
    int status = 125;
    if (role == child_roles().end()) {
      std::cerr << "no child role '" << name << "' is registered in this binary\n";
    } else {
      status = role->second();
    }
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);
    std::_Exit(status);
  }
};

}  // namespace

bool register_child_role(const char* name, child_role_function function) {
  if (child_roles().empty()) {
    ::testing::UnitTest::GetInstance()->listeners().Append(new child_role_runner);
  }
  if (!child_roles().emplace(name, function).second) {
    std::cerr << "TACHYON_CHILD_ROLE(" << name << ") is defined twice\n";
    std::abort();
  }
  return true;
}

std::unique_ptr<child_process> spawn_child_role(const std::string& name,
                                                std::filesystem::path output,
                                                std::vector<std::string> extra_env) {
  extra_env.push_back(std::string(child_role_variable) + "=" + name);
  // No test is selected, in case the role returns to gtest by mistake.
  return std::make_unique<child_process>(own_program({self_exe().string(), "--gtest_filter=-*"}),
                                         std::move(output), std::move(extra_env));
}

std::filesystem::path self_exe() { return std::filesystem::read_symlink("/proc/self/exe"); }

std::string file_tail(const std::filesystem::path& path, std::size_t lines) {
  std::ifstream in(path);
  std::deque<std::string> tail;
  for (std::string line; std::getline(in, line);) {
    tail.push_back(std::move(line));
    if (tail.size() > lines) tail.pop_front();
  }
  std::string text;
  for (const auto& line : tail) text += line + '\n';
  return text;
}

// ---------------------------------------------------------------------------------------------
// Availability

namespace {

struct availability {
  std::filesystem::path binary;
  std::string why;  // empty: available
};

availability check_availability() {
  availability result;
  std::filesystem::path candidate;
  if (const char* forced = std::getenv("TACHYON_NATS_SERVER"); forced != nullptr && *forced) {
    candidate = forced;
  } else if (const char* path = std::getenv("PATH"); path != nullptr) {
    std::istringstream dirs(path);
    for (std::string dir; std::getline(dirs, dir, ':');) {
      const auto file = std::filesystem::path(dir.empty() ? "." : dir) / "nats-server";
      if (::access(file.c_str(), X_OK) == 0) {
        candidate = file;
        break;
      }
    }
  }
  if (candidate.empty() && ::access("/usr/bin/nats-server", X_OK) == 0) {
    candidate = "/usr/bin/nats-server";
  }
  if (candidate.empty()) {
    result.why = "no nats-server in $TACHYON_NATS_SERVER or on PATH";
    return result;
  }
  if (::access(candidate.c_str(), X_OK) != 0) {
    result.why = candidate.string() + " is not executable";
    return result;
  }
  // It must really run: a binary for another architecture or a broken install fails here.
  try {
    const auto dir = make_temp_dir();
    std::string why;
    {
      child_process version({candidate.string(), "--version"}, dir / "version.txt");
      const auto status = version.wait_for_exit(nats_start_timeout);
      if (!status) {
        why = candidate.string() + " --version did not end within 20 s";
      } else if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0 ||
                 version.output().find("nats-server") == std::string::npos) {
        why = candidate.string() + " --version failed: " + version.output();
      }
    }
    std::filesystem::remove_all(dir);
    if (!why.empty()) {
      result.why = why;
      return result;
    }
  } catch (const std::exception& e) {
    result.why = e.what();
    return result;
  }
  result.binary = candidate;
  return result;
}

const availability& cached_availability() {
  static const availability result = check_availability();
  return result;
}

}  // namespace

bool nats_server_available(std::string& why) {
  why = cached_availability().why;
  return why.empty();
}

std::filesystem::path nats_server_binary() { return cached_availability().binary; }

bool nats_required() { return env_is_one("TACHYON_REQUIRE_NATS"); }

// ---------------------------------------------------------------------------------------------
// Ports

std::vector<int> pick_free_ports(std::size_t count) {
  std::vector<fd_guard> held(count);
  std::vector<int> ports;
  for (auto& sock : held) {
    sock.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock.fd < 0) throw std::runtime_error(errno_text("socket"));
    sockaddr_in address = loopback(0);
    if (::bind(sock.fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      throw std::runtime_error(errno_text("bind 127.0.0.1:0"));
    }
    socklen_t length = sizeof address;
    if (::getsockname(sock.fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      throw std::runtime_error(errno_text("getsockname"));
    }
    ports.push_back(ntohs(address.sin_port));
  }
  return ports;
}

// ---------------------------------------------------------------------------------------------
// nats_server

namespace {

/// Thrown by wait_ready when the server exited because a port was taken: start() picks again.
struct port_taken : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr int start_attempts = 5;

}  // namespace

nats_server::nats_server(nats_server_options options) : options_(std::move(options)) {
  const bool any =
      !options_.cluster_name.empty() || options_.cluster_port != 0 || !options_.route_ports.empty();
  const bool all =
      !options_.cluster_name.empty() && options_.cluster_port != 0 && !options_.route_ports.empty();
  if (any && !all) {
    throw std::invalid_argument(
        "nats_server_options: cluster_name, cluster_port and route_ports go together (all set "
        "for a cluster node, none for a single server)");
  }
  dir_ = make_temp_dir();
}

nats_server::~nats_server() {
  try {
    stop();
  } catch (...) {
  }
  const bool failed = ::testing::Test::HasFailure();
  if (failed || env_is_one("TACHYON_KEEP_NATS_DIRS")) {
    std::cerr << "nats_server " << options_.name << ": kept " << dir_.string() << '\n';
    if (failed) std::cerr << "log tail:\n" << file_tail(log_path());
    return;
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string nats_server::url() const { return "nats://127.0.0.1:" + std::to_string(options_.port); }

std::vector<std::string> nats_server::argv() const {
  std::vector<std::string> args = {nats_server_binary().string(),
                                   "-a",
                                   "127.0.0.1",
                                   "-p",
                                   std::to_string(options_.port),
                                   "-m",
                                   std::to_string(options_.monitor_port),
                                   "-n",
                                   options_.name};
  if (options_.jetstream) {
    args.insert(args.end(), {"-js", "-sd", (dir_ / "store").string()});
  }
  if (!options_.cluster_name.empty()) {
    std::string routes;
    for (const int port : options_.route_ports) {
      routes +=
          (routes.empty() ? "" : ",") + std::string("nats://127.0.0.1:") + std::to_string(port);
    }
    args.insert(args.end(),
                {"--cluster", "nats://127.0.0.1:" + std::to_string(options_.cluster_port),
                 "--cluster_name", options_.cluster_name, "--routes", routes});
  }
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  return args;
}

void nats_server::launch() {
  if (process_ && process_->running()) {
    throw std::logic_error("nats_server::launch: " + options_.name + " is already running");
  }
  if (nats_server_binary().empty()) {
    std::string why;
    nats_server_available(why);
    throw std::runtime_error("nats_server: nats-server cannot run: " + why);
  }
  if (options_.port == 0 || options_.monitor_port == 0) {
    const auto ports = pick_free_ports(2);
    if (options_.port == 0) options_.port = ports[0];
    if (options_.monitor_port == 0) options_.monitor_port = ports[1];
  }
  if (options_.name.empty()) options_.name = "tachyon-" + std::to_string(options_.port);
  const auto args = argv();
  command_line_.clear();
  for (const auto& arg : args) command_line_ += (command_line_.empty() ? "" : " ") + arg;
  {
    std::error_code missing;
    const auto size = std::filesystem::file_size(log_path(), missing);
    log_offset_ = missing ? 0 : static_cast<std::size_t>(size);
    std::ofstream log(log_path(), std::ios::app);
    log << "=== launch " << ++launches_ << ": " << command_line_ << '\n';
  }
  process_.reset();
  process_ = std::make_unique<child_process>(args, log_path());
}

void nats_server::wait_ready(std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  for (;;) {
    if (!process_ || !process_->running()) {
      const bool taken = read_file(log_path()).substr(log_offset_).find("address already in use") !=
                         std::string::npos;
      const std::string what = "nats-server " + options_.name + " exited before it was ready";
      if (taken) throw port_taken(what);
      fail(what);
    }
    // /healthz first: the monitoring port is the server's own, while something else may
    // listen on a client port that was taken (the server then exits, seen above).
    if (http_get("/healthz").first == 200 && tcp_accepts(options_.port)) return;
    if (clock::now() > deadline) {
      fail("nats-server " + options_.name + " was not ready (/healthz 200, client port " +
           "accepting) within " + std::to_string(timeout.count()) +
           " ms; /healthz says: " + http_get("/healthz").second);
    }
    // Not more often: each failed /healthz is a warning line in the server's log.
    std::this_thread::sleep_for(25ms);
  }
}

void nats_server::start() {
  const bool pick_client = options_.port == 0;
  const bool pick_monitor = options_.monitor_port == 0;
  for (int attempt = 1;; ++attempt) {
    launch();
    try {
      wait_ready();
      return;
    } catch (const port_taken&) {
      if (attempt == start_attempts || !(pick_client || pick_monitor)) {
        fail("nats-server " + options_.name + ": a port was taken, " + std::to_string(attempt) +
             " attempts");
      }
      if (pick_client) options_.port = 0;
      if (pick_monitor) options_.monitor_port = 0;
      if (pick_client) options_.name.clear();
    }
  }
}

void nats_server::stop() {
  if (!process_ || !process_->running()) return;
  process_->kill(SIGTERM);
  if (!process_->wait_for_exit(nats_stop_timeout)) process_->kill(SIGKILL);
}

void nats_server::kill() {
  if (process_) process_->kill(SIGKILL);
}

void nats_server::restart() {
  stop();
  launch();
  try {
    wait_ready();
  } catch (const port_taken&) {
    fail("nats-server " + options_.name + ": its port was taken by another process meanwhile");
  }
}

bool nats_server::running() { return process_ && process_->running(); }

pid_t nats_server::pid() { return running() ? process_->pid() : -1; }

std::pair<int, std::string> nats_server::http_get(const std::string& path) const {
  fd_guard sock{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (sock.fd < 0) return {0, errno_text("socket")};
  bound_socket_waits(sock.fd);
  const sockaddr_in address = loopback(options_.monitor_port);
  if (::connect(sock.fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    return {0, errno_text("connect")};
  }
  const std::string request =
      "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (::send(sock.fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return {0, errno_text("send")};
  }
  std::string response;
  char buffer[4096];
  for (ssize_t got; (got = ::recv(sock.fd, buffer, sizeof buffer, 0)) != 0;) {
    if (got < 0) {
      if (errno == EINTR) continue;
      return {0, errno_text("recv")};
    }
    response.append(buffer, static_cast<std::size_t>(got));
  }
  // "HTTP/1.1 200 OK\r\n...\r\n\r\nbody"
  const auto space = response.find(' ');
  const auto body = response.find("\r\n\r\n");
  if (space == std::string::npos || body == std::string::npos) return {0, response};
  return {std::atoi(response.c_str() + space + 1), response.substr(body + 4)};
}

void nats_server::fail(const std::string& what) const {
  throw std::runtime_error(what + "\ncommand: " + command_line_ + "\nlog tail (" +
                           log_path().string() + "):\n" + file_tail(log_path()));
}

// ---------------------------------------------------------------------------------------------
// nats_cluster

nats_cluster::nats_cluster(std::string cluster_name) : name_(std::move(cluster_name)) {
  if (name_.empty()) throw std::invalid_argument("nats_cluster: the cluster name is empty");
}

std::string nats_cluster::urls() const {
  std::string urls;
  for (const auto& url : url_list()) urls += (urls.empty() ? "" : ",") + url;
  return urls;
}

std::vector<std::string> nats_cluster::url_list() const {
  std::vector<std::string> urls;
  for (const auto& node : nodes_) urls.push_back(node->url());
  return urls;
}

void nats_cluster::start() {
  for (int attempt = 1;; ++attempt) {
    // All nine ports at once, so that they differ from each other.
    const auto ports = pick_free_ports(3 * size);
    for (std::size_t i = 0; i < size; ++i) {
      nats_server_options options;
      options.name = name_ + "-" + std::to_string(i);
      options.cluster_name = name_;
      options.port = ports[3 * i];
      options.monitor_port = ports[3 * i + 1];
      options.cluster_port = ports[3 * i + 2];
      for (std::size_t j = 0; j < size; ++j) {
        if (j != i) options.route_ports.push_back(ports[3 * j + 2]);
      }
      nodes_[i] = std::make_unique<nats_server>(std::move(options));
    }
    // The meta group needs a quorum, so no node is ready before two of them run.
    for (auto& node : nodes_) node->launch();
    try {
      const auto deadline = clock::now() + nats_start_timeout;
      for (auto& node : nodes_) {
        node->wait_ready(std::chrono::duration_cast<std::chrono::milliseconds>(
            std::max(deadline - clock::now(), clock::duration(0))));
      }
    } catch (const port_taken& e) {
      if (attempt == start_attempts) {
        throw std::runtime_error(std::string(e.what()) + ": a port was taken, " +
                                 std::to_string(attempt) + " attempts");
      }
      for (auto& node : nodes_) node->kill();
      continue;
    }
    wait_for_replicated_stream(nats_start_timeout);
    return;
  }
}

void nats_cluster::kill(std::size_t i) { nodes_.at(i)->kill(); }
void nats_cluster::stop(std::size_t i) { nodes_.at(i)->stop(); }
void nats_cluster::restart(std::size_t i) { nodes_.at(i)->restart(); }

void nats_cluster::wait_for_replicated_stream(std::chrono::milliseconds timeout) {
  natsOptions* options = nullptr;
  natsConnection* connection = nullptr;
  jsCtx* js = nullptr;
  std::string last_error;
  const auto cleanup = [&] {
    if (js) jsCtx_Destroy(js);
    if (connection) natsConnection_Destroy(connection);
    if (options) natsOptions_Destroy(options);
  };
  const std::string all = urls();
  natsStatus status = natsOptions_Create(&options);
  const auto list = url_list();
  std::vector<const char*> servers;
  for (const auto& url : list) servers.push_back(url.c_str());
  if (status == NATS_OK) {
    status = natsOptions_SetServers(options, servers.data(), static_cast<int>(servers.size()));
  }
  if (status == NATS_OK) status = natsOptions_SetTimeout(options, 2000);
  if (status == NATS_OK) status = natsConnection_Connect(&connection, options);
  if (status == NATS_OK) status = natsConnection_JetStream(&js, connection, nullptr);
  if (status != NATS_OK) {
    last_error = natsStatus_GetText(status);
    cleanup();
    nodes_[0]->fail("nats_cluster: cannot connect to " + all + ": " + last_error);
  }
  const auto deadline = clock::now() + timeout;
  for (;;) {
    jsStreamConfig config;
    jsStreamConfig_Init(&config);
    config.Name = "tachyon_harness_ready";
    const char* subjects[] = {"tachyon.harness.ready"};
    config.Subjects = subjects;
    config.SubjectsLen = 1;
    config.Replicas = 3;
    config.Storage = js_MemoryStorage;
    jsOptions js_options;
    jsOptions_Init(&js_options);
    js_options.Wait = 2000;
    jsStreamInfo* info = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    status = js_AddStream(&info, js, &config, &js_options, &code);
    if (status == NATS_OK) {
      const int replicas = info->Config != nullptr ? static_cast<int>(info->Config->Replicas) : 0;
      jsStreamInfo_Destroy(info);
      js_DeleteStream(js, config.Name, &js_options, nullptr);
      cleanup();
      if (replicas != 3) {
        nodes_[0]->fail("nats_cluster: the stream asked with 3 replicas has " +
                        std::to_string(replicas));
      }
      return;
    }
    last_error = std::string(natsStatus_GetText(status)) + " (JetStream error " +
                 std::to_string(static_cast<int>(code)) + ")";
    if (clock::now() > deadline) break;
    std::this_thread::sleep_for(100ms);
  }
  cleanup();
  nodes_[0]->fail("nats_cluster: no stream with 3 replicas could be created within " +
                  std::to_string(timeout.count()) + " ms; last error: " + last_error);
}

}  // namespace tachyon::test
