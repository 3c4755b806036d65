// metrics_endpoint: serves bus.metrics().to_prometheus() at /metrics, for Prometheus to
// scrape, and bus.health().to_json() at /health (200 when healthy, 503 when not, as load
// balancers and Kubernetes probes expect), over HTTP with civetweb.
//
//   metrics_endpoint [--port N] [--self-test]
//
// Listens on 127.0.0.1 only, on port N or by default one the OS picks (printed). Without
// --self-test it serves, with a little traffic, until Ctrl-C; with it (the ctest test) it
// scrapes itself over a loopback socket, checks the answers and exits non-zero on a mismatch.
#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>
#include <string_view>
#include <thread>

#include <tachyon/tachyon.hpp>

struct Tick {
  std::uint64_t n;
};
using app_bus = tachyon::bus<tachyon::registry<Tick>>;

// civetweb runs these on its own threads: metrics() and health() may be called from any
// thread, while the workers run.
void reply(mg_connection* conn, int status, const char* type, const std::string& body) {
  mg_response_header_start(conn, status);
  mg_response_header_add(conn, "Content-Type", type, -1);
  mg_response_header_add(conn, "Content-Length", std::to_string(body.size()).c_str(), -1);
  mg_response_header_send(conn);
  mg_write(conn, body.data(), body.size());
}
int serve_metrics(mg_connection* conn, void* bus) {
  reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8",
        static_cast<app_bus*>(bus)->metrics().to_prometheus());
  return 200;
}
int serve_health(mg_connection* conn, void* bus) {
  const tachyon::health_report h = static_cast<app_bus*>(bus)->health();
  reply(conn, h.healthy ? 200 : 503, "application/json", h.to_json());
  return h.healthy ? 200 : 503;
}

// One GET to 127.0.0.1:port, as a scraper sends it: the whole response, headers and body;
// empty if nothing answered within 10 s.
std::string http_get(int port, const char* path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  const timeval limit{.tv_sec = 10, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
    const std::string request =
        std::string("GET ") + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      char buf[4096];
      for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;)
        response.append(buf, static_cast<std::size_t>(n));
    }
  }
  close(fd);
  return response;
}

int failures = 0;
void check(const std::string& response, std::string_view start, std::string_view part) {
  if (response.starts_with(start) && response.find(part) != std::string::npos) return;
  ++failures;
  std::fprintf(stderr, "metrics_endpoint: FAILED: no '%.*s'; the response began:\n%.2000s\n",
               int(part.size()), part.data(), response.c_str());
}

void self_test(app_bus& bus, int port) {
  for (std::uint64_t i = 0; i < 1000; ++i) (void)bus.publish(Tick{i});  // overflow::block
  for (int ms = 0; bus.metrics().total.dispatched < 1000 && ms < 30'000; ++ms)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const std::string metrics = http_get(port, "/metrics");
  check(metrics, "HTTP/1.1 200 ", "Content-Type: text/plain; version=0.0.4");
  check(metrics, "HTTP/1.1 200 ", "\r\n\r\n# HELP tachyon_events_total ");
  check(metrics, "HTTP/1.1 200 ",
        "\ntachyon_events_total{lane=\"normal\",outcome=\"dispatched\"} 1000\n");
  check(http_get(port, "/health"), "HTTP/1.1 200 ", "\r\n\r\n{\"healthy\":true,");
  check(http_get(port, "/other"), "HTTP/1.1 404 ", "");
  std::printf("self-test: %s\n", failures == 0 ? "passed" : "FAILED");
}

std::atomic<bool> interrupted{false};

int main(int argc, char** argv) {
  bool run_self_test = false;
  int port = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--self-test") {
      run_self_test = true;
      continue;
    }
    const std::string_view value = arg == "--port" && i + 1 < argc ? argv[++i] : "";
    const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), port);
    if (error != std::errc{} || end != value.data() + value.size() || port < 0 || port > 65535) {
      std::fprintf(stderr, "usage: %s [--port 0..65535 (0: any free one)] [--self-test]\n",
                   argv[0]);
      return 2;
    }
  }

  app_bus bus{{.workers = 1}};
  auto sub = bus.subscribe<Tick>([](const Tick&) {});

  mg_init_library(0);
  const std::string listen = "127.0.0.1:" + std::to_string(port);
  const char* options[] = {"listening_ports", listen.c_str(), "num_threads", "2", nullptr};
  const mg_callbacks callbacks{};
  mg_context* server = mg_start(&callbacks, nullptr, options);
  if (server == nullptr) return std::fprintf(stderr, "cannot listen on %s\n", listen.c_str()), 1;
  mg_set_request_handler(server, "/metrics", serve_metrics, &bus);
  mg_set_request_handler(server, "/health", serve_health, &bus);
  mg_server_port bound{};
  mg_get_server_ports(server, 1, &bound);
  std::printf("serving http://127.0.0.1:%d/metrics and /health\n", bound.port);
  std::fflush(stdout);

  if (run_self_test) {
    self_test(bus, bound.port);
  } else {
    std::signal(SIGINT, [](int) { interrupted = true; });
    std::signal(SIGTERM, [](int) { interrupted = true; });
    for (std::uint64_t i = 0; !interrupted; ++i) {  // some traffic, for the numbers to move
      (void)bus.publish(Tick{i});
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  mg_stop(server);  // no handler runs after this, so the bus may go
  mg_exit_library();
  return failures == 0 ? 0 : 1;
}
