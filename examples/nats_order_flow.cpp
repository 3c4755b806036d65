// nats_order_flow: order_flow split across two processes over NATS (tachyon::nats::bridge).
//
//   orders    publishes OrderCreated; its handler publishes PaymentRequested (exported);
//             imports PaymentCompleted, whose handler publishes OrderShipped.
//   payments  imports PaymentRequested; a handler charges the card, with a retry policy (the
//             gateway declines the first charge of even orders), and publishes
//             PaymentCompleted (exported).
//
// So events cross both ways, and each order's id, its correlation id, crosses with them: the
// bridge writes meta::correlation_id on the wire and the importer publishes with it, so what a
// handler of an imported event publishes inherits it as usual. Causation ids do not cross: they
// are sequences of the sender's bus, meaningless in the receiver's. An imported event is
// published by the bridge outside any handler, so its causation id is 0 and a trail's causation
// chain starts again at the process boundary.
//
// Delivery, chosen per direction:
// - PaymentRequested goes over JetStream (stream SHOP_PAYMENTS, durable consumer "payments").
//   The orders bridge counts an export as sent only once the server has stored it; the payments
//   bridge acknowledges each message only once its event has settled in the payments bus
//   (after the charge and its retries). A payments process that is down, or restarted, loses
//   nothing: the requests wait in the stream, and the durable consumer resumes after the last
//   acknowledged one. A crash between a charge and its acknowledgement redelivers the request
//   (at least once, marked meta_flags::redelivered): a real gateway must be idempotent by order.
// - PaymentCompleted goes over core NATS: at most once, no storage. Fast, but a completion sent
//   while no orders process listens is gone (the importer counts messages lost in between as
//   `gaps`, never what was sent to nobody). Make it JetStream too (a durable consumer "orders")
//   when orders must survive its own restarts, and ship idempotently by order id.
//
// PaymentRequested carries strings (a customer and a card token) through a codec with encode and
// decode; PaymentCompleted travels raw (trivially copyable: its bytes, checked by size).
//
//   nats_order_flow payments --url nats://127.0.0.1:4222   # until Ctrl-C
//   nats_order_flow orders   --url nats://127.0.0.1:4222   # 8 orders; waits until shipped
//   nats_order_flow --self-test
//
// --self-test starts nats-server itself ($TACHYON_NATS_SERVER, else PATH, else /usr/sbin) on a
// free 127.0.0.1 port, publishes 4 orders before any payments process runs, starts this program
// as the payments process, waits until they ship, stops it (SIGTERM), publishes 4 more while it
// is down, starts it again, and checks every order's trail exactly. Exit 0 passed, 1 failed,
// 77 skipped (no nats-server; with TACHYON_REQUIRE_NATS=1 that fails instead).
#include <tachyon/nats/bridge.hpp>
#include <tachyon/tachyon.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ull = unsigned long long;

struct OrderCreated {
  std::uint64_t order;
};
struct PaymentRequested {
  std::uint64_t order;
  std::uint64_t amount_cents;
  std::string customer;
  std::string card_token;
};
struct PaymentCompleted {
  std::uint64_t order;
  std::uint64_t attempts;  // charges it took, retries included
};
struct OrderShipped {
  std::uint64_t order;
};
using Events = tachyon::registry<OrderCreated, PaymentRequested, PaymentCompleted, OrderShipped>;
using Bus = tachyon::bus<Events>;
using Bridge = tachyon::nats::bridge<Bus>;

template <>
struct tachyon::codec<PaymentRequested> {
  static constexpr std::string_view name = "shop.PaymentRequested";
  static constexpr std::uint32_t version = 1;
  static void encode(const PaymentRequested& p, tachyon::writer& w) {
    w.put(p.order);
    w.put(p.amount_cents);
    w.put(std::string_view(p.customer));
    w.put(std::string_view(p.card_token));
  }
  static PaymentRequested decode(tachyon::reader& r, std::uint32_t) {
    PaymentRequested p;
    p.order = r.get<std::uint64_t>();
    p.amount_cents = r.get<std::uint64_t>();
    p.customer = r.get_string();
    p.card_token = r.get_string();
    return p;
  }
};
template <>
struct tachyon::codec<PaymentCompleted> {  // raw: its object bytes
  static constexpr std::string_view name = "shop.PaymentCompleted";
  static constexpr std::uint32_t version = 1;
};

constexpr const char* requests_subject = "shop.payments.requested";
constexpr const char* completions_subject = "shop.payments.completed";
constexpr bool flaky(std::uint64_t order) { return order % 2 == 0; }  // declined once
std::string customer_of(std::uint64_t order) {
  return "customer \"" + std::to_string(order) + "\"";
}
std::string token_of(std::uint64_t order) { return "tok_" + std::to_string(order * 7919); }

std::atomic<int> failures{0};
void check(bool ok, const std::string& what) {
  if (!ok && ++failures > 0) std::fprintf(stderr, "nats_order_flow: FAILED: %s\n", what.c_str());
}
template <class Pred>
bool await(Pred pred, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  for (; !pred(); std::this_thread::sleep_for(1ms))
    if (std::chrono::steady_clock::now() > end) return false;
  return true;
}

// ---- payments: runs until SIGTERM or SIGINT ------------------------------------------------
int run_payments(const std::string& url, long expect) {
  sigset_t stop_signals;  // blocked before any thread starts, so every thread inherits it
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  Bus bus{{.workers = 2}};
  std::mutex mu;
  std::map<std::uint64_t, std::uint64_t> charges;
  std::atomic<long> completed{0};
  auto charge = bus.subscribe<PaymentRequested>(
      [&](const PaymentRequested& p, const tachyon::meta& m) {
        check(m.correlation_id == p.order && (m.flags & tachyon::meta_flags::external) &&
                  p.customer == customer_of(p.order) && p.card_token == token_of(p.order),
              "payments: request " + std::to_string(p.order) + " arrived whole, correlated");
        std::uint64_t n;
        {
          const std::lock_guard lock(mu);
          n = ++charges[p.order];
        }
        std::printf("[payments] charge order %llu (%s, %s, %llu cents): attempt %llu%s\n",
                    ull(p.order), p.customer.c_str(), p.card_token.c_str(), ull(p.amount_cents),
                    ull(n), flaky(p.order) && n == 1 ? ", declined: gateway timeout" : "");
        if (flaky(p.order) && n == 1) throw std::runtime_error("gateway timeout");
        check(bus.publish(PaymentCompleted{p.order, n}) == tachyon::result::ok, "publish");
        ++completed;
      },
      {.name = "charge", .retry = {.max_attempts = 3, .initial_delay = 1ms, .max_delay = 2ms}});

  tachyon::nats::bridge link{bus, {.url = url, .name = "payments"}};
  link.export_type<PaymentCompleted>(completions_subject);
  tachyon::nats::import_options io;
  io.jetstream = tachyon::nats::consumer_options{.stream = "SHOP_PAYMENTS", .durable = "payments"};
  // The stream is made by its exporter, orders: until it has run once, there is nothing to read.
  for (int tries = 0;; ++tries) {
    try {
      link.import_type<PaymentRequested>(requests_subject, io);
      break;
    } catch (const tachyon::nats::error& e) {
      if (tries == 0) std::printf("[payments] waiting for stream SHOP_PAYMENTS (%s)\n", e.what());
      timespec half{0, 500'000'000};
      if (sigtimedwait(&stop_signals, nullptr, &half) > 0) return 0;
    }
  }
  std::printf("[payments] consuming %s on %s as durable \"payments\"; Ctrl-C stops\n",
              requests_subject, url.c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop_signals, &sig);
  link.close();  // stops importing, waits for what it imported to settle, sends what is queued
  bus.stop();
  const auto b = link.metrics();
  const auto t = bus.metrics().total;
  long flaky_orders = 0;
  for (auto& [order, n] : charges) flaky_orders += flaky(order);
  std::printf(
      "[payments] stopped: received %llu, imported %llu, acknowledged %llu, redelivered "
      "%llu; %ld completed, exported %llu; %llu charges retried\n",
      ull(b.received), ull(b.imported), ull(b.acknowledged), ull(b.redelivered), completed.load(),
      ull(b.exported), ull(t.retried));
  check(b.received == b.imported && b.imported == b.acknowledged && b.quarantined == 0 &&
            b.awaiting_settle == 0 && b.export_errors == 0 && b.exported == ull(completed.load()) &&
            t.retried == ull(flaky_orders) && t.handler_errors == ull(flaky_orders) &&
            t.dead_lettered + t.failed == 0 &&
            (expect < 0 || (b.imported == ull(expect) && completed == expect &&
                            b.redelivered == 0)),  // after a crash, redeliveries are expected
        "payments: every request imported, charged, acknowledged and its completion sent");
  return failures == 0 ? 0 : 1;
}

// ---- orders: publishes `count` orders from `first`, waits until each has shipped -----------
using trail = std::array<std::vector<tachyon::meta>, 4>;  // each step's runs, per order
struct orders_side {
  Bus bus{{.workers = 2}};
  std::mutex mu;
  std::map<std::uint64_t, trail> trails;
  std::map<std::uint64_t, std::uint64_t> attempts;
  std::vector<tachyon::subscription> subs;
  std::unique_ptr<Bridge> link;
  std::atomic<std::uint64_t> lo{0}, hi{0};  // the orders placed here: [lo, hi)
  std::atomic<std::uint64_t> foreign{0};    // completions of others' orders

  void note(std::uint64_t order, int step, const tachyon::meta& m) {
    const std::lock_guard lock(mu);
    trails[order][step].push_back(m);
  }
  explicit orders_side(const std::string& url) {
    subs.push_back(
        bus.subscribe<OrderCreated>([this](const OrderCreated& e, const tachyon::meta& m) {
          note(e.order, 0, m);
          check(bus.publish(PaymentRequested{e.order, 100 * e.order, customer_of(e.order),
                                             token_of(e.order)}) == tachyon::result::ok,
                "publish");
        }));
    subs.push_back(bus.subscribe<PaymentRequested>(
        [this](const PaymentRequested& e, const tachyon::meta& m) { note(e.order, 1, m); }));
    subs.push_back(bus.subscribe<PaymentCompleted>([this](const PaymentCompleted& e,
                                                          const tachyon::meta& m) {
      // Core NATS hands every completion to every orders process listening: another one's
      // orders are not ours to ship.
      if (e.order < lo.load() || e.order >= hi.load()) {
        std::printf("[orders] completion of order %llu: not placed here, ignored\n", ull(e.order));
        ++foreign;
        return;
      }
      note(e.order, 2, m);
      {
        const std::lock_guard lock(mu);
        attempts[e.order] = e.attempts;
      }
      check(bus.publish(OrderShipped{e.order}) == tachyon::result::ok, "publish");
    }));
    subs.push_back(bus.subscribe<OrderShipped>(
        [this](const OrderShipped& e, const tachyon::meta& m) { note(e.order, 3, m); }));
    link = std::make_unique<Bridge>(bus, tachyon::nats::options{.url = url, .name = "orders"});
    tachyon::nats::export_options eo;
    eo.jetstream = tachyon::nats::stream_options{.name = "SHOP_PAYMENTS"};
    link->export_type<PaymentRequested>(requests_subject, eo);  // makes the stream if missing
    link->import_type<PaymentCompleted>(completions_subject);
    check(link->flush(), "the import's subscription reached the server");
  }
  void place(std::uint64_t first, std::uint64_t count) {
    if (lo == 0) lo = first;
    hi = first + count;
    for (std::uint64_t o = first; o < first + count; ++o)
      check(bus.publish(OrderCreated{o}, {.correlation_id = o}) == tachyon::result::ok, "publish");
    check(link->flush(20s), "the requests were stored by JetStream");
  }
  std::size_t shipped() {
    const std::lock_guard lock(mu);
    std::size_t n = 0;
    for (auto& [order, t] : trails) n += !t[3].empty();
    return n;
  }
  // Each step ran once, with the order's correlation id; causation follows each process's
  // chain, and restarts at 0 where the completion came in from NATS (marked external).
  void verify(std::uint64_t first, std::uint64_t count) {
    link->close();
    bus.stop();
    const std::lock_guard lock(mu);
    static const char* names[] = {"OrderCreated", "PaymentRequested", "PaymentCompleted",
                                  "OrderShipped"};
    for (auto& [order, t] : trails) {
      std::printf("order %llu, %llu charge(s):\n", ull(order), ull(attempts[order]));
      bool once = true;
      for (int i = 0; i < 4; ++i) {
        once = once && t[i].size() == 1;
        for (auto& m : t[i])
          std::printf("  %-16s seq %#-9llx caused by %#-9llx correlation %llu%s\n", names[i],
                      ull(m.sequence), ull(m.causation_id), ull(m.correlation_id),
                      (m.flags & tachyon::meta_flags::external) ? "  (from NATS)" : "");
      }
      check(once, "order " + std::to_string(order) + ": each step ran exactly once");
      if (!once) continue;
      const auto& m0 = t[0][0];
      const auto& m1 = t[1][0];
      const auto& m2 = t[2][0];
      const auto& m3 = t[3][0];
      const bool external = m2.flags & tachyon::meta_flags::external;
      check(m0.correlation_id == order && m1.correlation_id == order &&
                m2.correlation_id == order && m3.correlation_id == order,
            "order " + std::to_string(order) + ": its id is every step's correlation id");
      check(m0.causation_id == 0 && m1.causation_id == m0.sequence && m2.causation_id == 0 &&
                external && m3.causation_id == m2.sequence,
            "order " + std::to_string(order) + ": causation within each process");
      check(attempts[order] == (flaky(order) ? 2u : 1u),
            "order " + std::to_string(order) + ": charged " + std::to_string(attempts[order]) +
                " time(s)");
    }
    check(trails.size() == count && !trails.empty() && trails.begin()->first == first,
          "every order placed, nothing else, shipped");
    const auto b = link->metrics();
    const auto t = bus.metrics().total;
    std::printf(
        "orders bridge: exported %llu (stored by JetStream), imported %llu, gaps %llu; "
        "bus: accepted %llu = dispatched %llu\n",
        ull(b.exported), ull(b.imported), ull(b.gaps), ull(t.accepted), ull(t.dispatched));
    const std::uint64_t others = foreign;
    if (others != 0)
      std::printf("orders bridge: %llu completions of others' orders\n", ull(others));
    check(b.exported == count && b.imported == count + others && b.received == count + others &&
              b.gaps == 0 && b.export_errors + b.quarantined + b.export_skipped == 0 &&
              t.accepted == 4 * count + others && t.dispatched == t.accepted && t.unsettled() == 0,
          "the books: " + std::to_string(count) + " requests out, as many completions in");
  }
};

int run_orders(const std::string& url, std::uint64_t first, std::uint64_t count) {
  orders_side side{url};
  side.place(first, count);
  std::printf(
      "[orders] placed orders %llu to %llu; waiting for them to ship (is `payments` "
      "running?)\n",
      ull(first), ull(first + count - 1));
  if (!await([&] { return side.shipped() == count; }, 60s))
    check(false, "not every order shipped within 60 s");
  side.verify(first, count);
  return failures == 0 ? 0 : 1;
}

// ---- --self-test: a nats-server and a payments process of our own ---------------------------
struct child {  // a process started with fork+exec; killed with its parent (PDEATHSIG)
  pid_t pid = -1;
  child(const std::vector<std::string>& argv, const char* log) {
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {  // only async-signal-safe calls until exec
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (log != nullptr) {
        const int fd = ::open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) ::dup2(fd, 1), ::dup2(fd, 2);
      }
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  // SIGTERM, then SIGKILL if it has not exited within `grace`; its wait status.
  int stop(std::chrono::milliseconds grace) {
    int status = 0;
    if (pid < 0) return status;
    ::kill(pid, SIGTERM);
    if (!await([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, grace)) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
    }
    pid = -1;
    return status;
  }
  ~child() { stop(0ms); }
};

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("cannot bind 127.0.0.1:0");
  ::close(fd);
  return ntohs(a.sin_port);
}
bool accepts(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  if (fd >= 0) ::close(fd);
  return ok;
}
fs::path find_nats_server() {
  if (const char* env = std::getenv("TACHYON_NATS_SERVER"); env != nullptr && *env != '\0') {
    if (::access(env, X_OK) == 0) return env;
    std::fprintf(stderr, "nats_order_flow: TACHYON_NATS_SERVER=%s is not an executable\n", env);
    return {};
  }
  std::string dirs = std::getenv("PATH") ? std::getenv("PATH") : "";
  dirs += ":/usr/sbin:/usr/local/sbin";  // Debian's package puts it in /usr/sbin
  for (std::size_t at = 0; at <= dirs.size();) {
    const std::size_t end = std::min(dirs.find(':', at), dirs.size());
    const fs::path p = fs::path(dirs.substr(at, end - at)) / "nats-server";
    if (end > at && ::access(p.c_str(), X_OK) == 0) return p;
    at = end + 1;
  }
  return {};
}

int self_test() {
  const fs::path server_bin = find_nats_server();
  if (server_bin.empty()) {
    const char* req = std::getenv("TACHYON_REQUIRE_NATS");
    const bool required = req != nullptr && std::string(req) == "1";
    std::fprintf(stderr,
                 "nats_order_flow: %s: nats-server not found ($TACHYON_NATS_SERVER, PATH, "
                 "/usr/sbin); install Debian's nats-server%s\n",
                 required ? "FAILED" : "SKIPPED",
                 required ? " (TACHYON_REQUIRE_NATS=1: a missing server fails)" : "");
    return required ? 1 : 77;
  }
  std::string dir_template = (fs::temp_directory_path() / "nats_order_flow-XXXXXX").string();
  if (::mkdtemp(dir_template.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  const fs::path dir = dir_template;
  const std::string log = (dir / "nats-server.log").string();
  std::unique_ptr<child> server, payments;
  std::atomic<pid_t> server_pid{-1}, payments_pid{-1};  // for the watchdog
  // The overall bound: a hang anywhere (a server that never answers, a lost completion) ends
  // the run as a failure, with the server and the payments process killed and the dir removed.
  std::mutex watch_mu;
  std::condition_variable watch_cv;
  bool done = false;
  std::thread watchdog([&] {
    std::unique_lock lock(watch_mu);
    if (watch_cv.wait_for(lock, 60s, [&] { return done; })) return;
    std::fprintf(stderr, "nats_order_flow: FAILED: the self-test did not end within 60 s\n");
    for (const pid_t pid : {payments_pid.load(), server_pid.load()})
      if (pid > 0) ::kill(pid, SIGKILL);
    std::error_code ec;
    fs::remove_all(dir, ec);
    std::_Exit(1);
  });
  const auto finish = [&] {
    payments.reset();
    if (server) server->stop(10s);
    if (failures != 0) {  // the server's log goes with the directory: show its end first
      std::fprintf(stderr, "nats-server's log (%s), its end:\n", log.c_str());
      std::ifstream in(log);
      std::vector<std::string> lines;
      for (std::string line; std::getline(in, line);) lines.push_back(line);
      for (std::size_t i = lines.size() > 20 ? lines.size() - 20 : 0; i < lines.size(); ++i)
        std::fprintf(stderr, "  %s\n", lines[i].c_str());
    }
    {
      const std::lock_guard lock(watch_mu);
      done = true;
    }
    watch_cv.notify_one();
    watchdog.join();
    std::error_code ec;
    fs::remove_all(dir, ec);
  };
  try {
    // A port picked free may be taken before the server binds it: then it exits; pick again.
    int port = 0;
    for (int attempt = 1; attempt <= 3 && !server; ++attempt) {
      port = free_port();
      server = std::make_unique<child>(
          std::vector<std::string>{server_bin.string(), "-a", "127.0.0.1", "-p",
                                   std::to_string(port), "-js", "-sd", (dir / "js").string()},
          log.c_str());
      server_pid = server->pid;
      int status = 0;
      const bool up = await(
          [&] { return accepts(port) || ::waitpid(server->pid, &status, WNOHANG) == server->pid; },
          20s);
      if (up && accepts(port)) break;
      if (!up)
        throw std::runtime_error("nats-server did not accept on port " + std::to_string(port) +
                                 " within 20 s");
      server_pid = server->pid = -1;  // it exited (reaped above)
      server.reset();
    }
    if (!server) throw std::runtime_error("nats-server did not start, 3 attempts");
    const std::string url = "nats://127.0.0.1:" + std::to_string(port);
    std::printf("nats-server %s -js on %s\n", server_bin.c_str(), url.c_str());

    char self[4096];
    const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) throw std::runtime_error("readlink /proc/self/exe failed");
    const std::vector<std::string> payments_argv{
        std::string(self, std::size_t(n)), "payments", "--url", url, "--expect", "4"};
    const auto stop_payments = [&] {
      const int status = payments->stop(10s);
      payments_pid = -1;
      payments.reset();
      check(WIFEXITED(status) && WEXITSTATUS(status) == 0,
            "the payments process checked itself and exited 0 on SIGTERM");
    };
    orders_side side{url};
    std::printf("[orders] 4 orders placed while no payments process runs\n");
    side.place(1001, 4);
    std::fflush(stdout);
    payments = std::make_unique<child>(payments_argv, nullptr);
    payments_pid = payments->pid;
    check(await([&] { return side.shipped() == 4; }, 30s), "orders 1001-1004 shipped");
    stop_payments();
    std::printf("[orders] payments stopped; 4 more orders placed\n");
    side.place(1005, 4);
    std::fflush(stdout);
    payments = std::make_unique<child>(payments_argv, nullptr);
    payments_pid = payments->pid;
    check(await([&] { return side.shipped() == 8; }, 30s), "orders 1005-1008 shipped");
    stop_payments();
    side.verify(1001, 8);
    check(side.foreign == 0, "no completion of an order not placed");
  } catch (const std::exception& e) {
    check(false, e.what());
  }
  finish();
  std::printf("%s\n", failures == 0 ? "PASSED" : "FAILED");
  return failures == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines of both processes interleave whole
  const std::vector<std::string> args(argv + 1, argv + argc);
  std::string role, url = "nats://127.0.0.1:4222";
  long expect = -1;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--url" && i + 1 < args.size())
      url = args[++i];
    else if (args[i] == "--expect" && i + 1 < args.size())
      expect = std::stol(args[++i]);
    else if (role.empty() &&
             (args[i] == "orders" || args[i] == "payments" || args[i] == "--self-test"))
      role = args[i];
    else
      role = "?";
  }
  try {
    if (role == "--self-test") return self_test();
    if (role == "payments") return run_payments(url, expect);
    if (role == "orders") {  // ids from the clock (ms), so that runs against one server differ
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
      return run_orders(url, static_cast<std::uint64_t>(ms % 10'000'000'000) * 10 + 1, 8);
    }
  } catch (const std::exception& e) {  // e.g. tachyon::nats::error: no server at --url
    std::fprintf(stderr, "nats_order_flow: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr,
               "usage: nats_order_flow orders|payments [--url nats://127.0.0.1:4222]\n"
               "       nats_order_flow --self-test\n");
  return 2;
}
