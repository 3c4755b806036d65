// middleware: other buses' middleware as tachyon interceptors, on two workers: validation, access
// control (a thread-local caller) and rate limiting (a token bucket per type) veto publishes; an
// enricher stamps correlation ids; an audit log keeps every run's outcome. All checked exactly.
#include <tachyon/tachyon.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

struct Order {
  std::uint64_t id;
  int qty;
};
struct Refund {
  std::uint64_t id;
};
struct Shipped {  // published by the Order handler, on a worker
  std::uint64_t id;
};
using Events = tachyon::registry<Order, Refund, Shipped>;
constexpr const char* names[] = {"Order", "Refund", "Shipped"};
using tachyon::meta, tachyon::publish_options, tachyon::verdict;
enum class role { none, clerk, admin };
thread_local role caller = role::none;  // set by the code that publishes (say, per request)

struct counts_vetoes {
  std::atomic<int> vetoed{0};
  verdict judge(bool ok) { return ok ? verdict::allow : (++vetoed, verdict::reject); }
};
struct Validate : counts_vetoes {  // malformed events never enter the bus
  verdict before_publish(Order& o, publish_options&) { return judge(o.qty > 0); }
};
// Refunds need an admin: checked on the publishing thread, as a handler can't tell who asked.
struct AccessControl : counts_vetoes {
  verdict before_publish(Refund&, publish_options&) { return judge(caller == role::admin); }
};
// A token bucket per type, kept as one atomic, the time at which it is full again (GCRA): taking
// a token is one compare-and-swap. Shipped, the bus's own follow-up, has no hook: not limited.
struct RateLimit : counts_vetoes {
  const tachyon::virtual_clock* clock = nullptr;  // the bus's (steady_time in production)
  std::int64_t burst = 4, every = 1'000'000;      // 4 tokens, 1 more each ms
  std::atomic<std::int64_t> full_at[Events::size]{};
  template <class T>
  requires(!std::is_same_v<T, Shipped>) verdict before_publish(T&, publish_options&) {
    auto& b = full_at[Events::index_of<T>()];
    const std::int64_t now = clock->now().count();
    for (std::int64_t at = b.load();;) {  // tokens left: burst - (at - now) / every
      const std::int64_t from = std::max(at, now);
      if (from - now > (burst - 1) * every) return judge(false);
      if (b.compare_exchange_weak(at, from + every)) return verdict::allow;
    }
  }
};
// A correlation id for what starts a chain. Inside a handler the options already carry the
// running event's id (the one the bus would pass on), so only a new chain reads 0 here.
struct Enrich {
  std::atomic<std::uint64_t> next{1};
  verdict before_publish(auto&, publish_options& o) {
    if (o.correlation_id == 0) o.correlation_id = next++;
    return verdict::allow;
  }
};
struct Audit {  // every run of an event's handlers, with its outcome
  std::atomic<int> started{0};
  std::mutex mu;
  std::vector<std::string> log;
  void before_dispatch(const auto&, const meta&) { ++started; }
  void after_dispatch(const auto& ev, const meta& m, std::exception_ptr error) {
    std::string line = std::string(names[m.type_index]) + " " + std::to_string(ev.id) + " #" +
                       std::to_string(m.correlation_id) + ": ";
    try {
      if (error) std::rethrow_exception(error);
      line += "ok";
    } catch (const std::exception& e) {
      line += e.what();
    } catch (...) {
      line += "unknown error";
    }
    const std::lock_guard lock(mu);
    log.push_back(std::move(line));
  }
};
// In order; after_dispatch in reverse. The first veto ends before_publish: no token spent.
struct traits : tachyon::virtual_time_traits {
  using interceptors = tachyon::interceptors<Audit, Validate, AccessControl, RateLimit, Enrich>;
};
std::atomic<int> failures{0};  // handlers check too, on the workers
void check(bool ok, const char* what) {
  if (!ok && ++failures > 0) std::fprintf(stderr, "middleware: FAILED: %s\n", what);
}

int main() {
  using namespace std::chrono_literals;
  tachyon::bus<Events, traits> bus{{.workers = 2}};
  bus.interceptor<RateLimit>().clock = &bus.time_source();  // before anything is published
  auto s1 = bus.subscribe<Order>([&](const Order& o) {
    if (o.id == 3) throw std::runtime_error("out of stock");
    check(bus.publish(Shipped{o.id}) == tachyon::result::ok, "Shipped is published");
  });
  auto s2 = bus.subscribe<Refund>([](const Refund&) { check(caller == role::none, "no caller"); });
  std::atomic<int> refused{0};  // publish returned vetoed
  const auto publish = [&](auto ev, publish_options o = {}) {
    refused += bus.publish(ev, o) == tachyon::result::vetoed;
  };

  caller = role::clerk;
  publish(Order{1, 1}, {.correlation_id = 42});   // the caller's id is kept
  for (std::uint64_t id = 2; id <= 10; ++id) {    // 4 tokens at first: 6 and 7 find none
    if (id == 8) bus.time_source().advance(1ms);  // one more: order 8 takes it, 10 finds none
    publish(Order{id, id == 4 ? 0 : id == 9 ? -1 : 1});  // 4 and 9: no quantity
  }
  publish(Refund{1});  // a clerk may not refund
  std::thread([&] {
    caller = role::admin;  // another thread, another caller
    for (std::uint64_t id : {2, 8}) publish(Refund{id});
  }).join();
  for (auto end = std::chrono::steady_clock::now() + 30s; bus.metrics().total.accepted < 11;)
    if (std::this_thread::sleep_for(1ms); std::chrono::steady_clock::now() > end)
      break;   // 30 s: hung
  bus.stop();  // once the handlers' Shipped are in (it refuses publishes); drains; counts exact

  auto& audit = bus.interceptor<Audit>();
  std::sort(audit.log.begin(), audit.log.end());
  for (const auto& line : audit.log) std::printf("audit: %s\n", line.c_str());
  const std::vector<std::string> want = {
      "Order 1 #42: ok",  "Order 2 #1: ok",   "Order 3 #2: out of stock", "Order 5 #3: ok",
      "Order 8 #4: ok",   "Refund 2 #5: ok",  "Refund 8 #6: ok",          "Shipped 1 #42: ok",
      "Shipped 2 #1: ok", "Shipped 5 #3: ok", "Shipped 8 #4: ok"};  // order's correlation id
  check(audit.started == 11 && audit.log == want, "one audit entry per run, with its outcome");
  const auto t = bus.metrics().total;
  const int v = bus.interceptor<Validate>().vetoed, a = bus.interceptor<AccessControl>().vetoed,
            r = bus.interceptor<RateLimit>().vetoed;
  std::printf("vetoed %d = validation %d + access %d + rate limit %d\n", int(t.vetoed), v, a, r);
  check(v == 2 && a == 1 && r == 3 && t.vetoed == 6 && refused == 6 && t.accepted == 11 &&
            t.dispatched == 10 && t.failed == 1 && t.handler_errors == 1,
        "vetoed 6 = 2 malformed + 1 refund + 3 over the limit; 11 accepted = 10 + 1 failed");
  return failures.load() == 0 ? 0 : 1;
}
