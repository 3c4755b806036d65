// order_flow: OrderCreated -> PaymentRequested -> PaymentCompleted -> OrderShipped on two
// workers, each step a handler that publishes the next event. The payment gateway declines the
// first charge of some orders (the subscription retries after 1 ms, then 2 ms, in the bus's
// timer) and every charge of a bad card, whose payment ends in the dead letters; once the card
// is fixed, a replay ships it. Each order's id is its correlation id, which what its handlers
// publish inherits, each event's causation id the sequence of the one whose handler published
// it. The program prints each order's trail and checks it exactly.
#include <tachyon/tachyon.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <type_traits>

struct OrderCreated {
  std::uint64_t order;
};
struct PaymentRequested {
  std::uint64_t order;
};
struct PaymentCompleted {
  std::uint64_t order;
};
struct OrderShipped {
  std::uint64_t order;
};
using Events = tachyon::registry<OrderCreated, PaymentRequested, PaymentCompleted, OrderShipped>;
constexpr std::uint64_t first_order = 1001, orders = 6, bad_card = 1005;
constexpr bool flaky(std::uint64_t order) { return order % 2 == 0; }  // declined once

// What each step's handler saw, per order (correlation 0: not run), and the payment gateway.
using trail = std::array<tachyon::meta, 4>;
struct ledger {
  std::mutex mu;
  std::map<std::uint64_t, trail> trails;
  std::map<std::uint64_t, int> charges;
  std::atomic<bool> card_fixed{false};
  void note(std::uint64_t order, int step, const tachyon::meta& m) {
    const std::lock_guard lock(mu);
    trails[order][step] = m;
  }
  void charge(std::uint64_t order) {
    const std::lock_guard lock(mu);
    const int n = ++charges[order];
    if (order == bad_card && !card_fixed) throw std::runtime_error("card declined");
    if (flaky(order) && n == 1) throw std::runtime_error("gateway timeout");
  }
};

std::atomic<int> failures{0};  // handlers check too, on the workers
void check(bool ok, const char* what) {
  if (!ok && ++failures > 0) std::fprintf(stderr, "order_flow: FAILED: %s\n", what);
}
template <class Pred>
void await(const char* what, Pred pred) {  // 30 s: a hang, not a slow machine
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (; !pred(); std::this_thread::sleep_for(std::chrono::milliseconds(1)))
    if (std::chrono::steady_clock::now() > end) {
      std::fprintf(stderr, "order_flow: FAILED: timed out waiting until %s\n", what);
      std::_Exit(1);  // threads are stuck: there is no orderly shutdown to wait for
    }
}
using ull = unsigned long long;

// Correlation `order` on steps 0 .. last (0 after), each caused by the one before (step 0: none).
bool chain_ok(const trail& t, std::uint64_t order, int last) {
  for (int i = 0; i < 4; ++i)
    if (t[i].correlation_id != (i > last ? 0 : order) ||
        (i <= last && t[i].causation_id != (i == 0 ? 0 : t[i - 1].sequence)))
      return false;
  return true;
}

int main() {
  using namespace std::chrono_literals;
  using tachyon::meta;
  tachyon::bus<Events> bus{{.workers = 2, .dead_letter_capacity = 64}};
  ledger book;
  const auto settled = [&](std::uint64_t accepted) {  // quiet, with `accepted` events in all
    const auto m = bus.metrics();
    return m.total.accepted == accepted && m.in_flight == 0 && m.total.unsettled() == 0;
  };
  const auto ok = [](tachyon::result r) { check(r == tachyon::result::ok, "publish"); };

  auto s1 = bus.subscribe<OrderCreated>([&](const OrderCreated& e, const meta& m) {
    book.note(e.order, 0, m);
    ok(bus.publish(PaymentRequested{e.order}));  // inherits the order's correlation id
  });
  auto s2 = bus.subscribe<PaymentRequested>(
      [&](const PaymentRequested& e, const meta& m) {
        book.note(e.order, 1, m);
        book.charge(e.order);  // throws when declined: the retry policy takes over
        ok(bus.publish(PaymentCompleted{e.order}));
      },
      {.name = "payment", .retry = {.max_attempts = 3, .initial_delay = 1ms, .max_delay = 2ms}});
  auto s3 = bus.subscribe<PaymentCompleted>([&](const PaymentCompleted& e, const meta& m) {
    book.note(e.order, 2, m);
    ok(bus.publish(OrderShipped{e.order}));
  });
  auto s4 = bus.subscribe<OrderShipped>(
      [&](const OrderShipped& e, const meta& m) { book.note(e.order, 3, m); });

  for (std::uint64_t o = first_order; o < first_order + orders; ++o)
    ok(bus.publish(OrderCreated{o}, tachyon::publish_options{.correlation_id = o}));
  await("5 orders shipped, 1 payment dead-lettered", [&] { return settled(4 * orders - 2); });
  bus.visit_dead_letters([&](const auto& d) {
    std::printf("dead letter: %s of order %llu, correlation %llu, after %u attempts: %.*s\n",
                bus.metrics().types[d.meta.type_index].name.c_str(), ull(d.event.order),
                ull(d.meta.correlation_id), d.attempts, int(d.what.size()), d.what.data());
    const std::lock_guard lock(book.mu);  // and the order's trail stops at the payment
    check(std::is_same_v<std::decay_t<decltype(d.event)>, PaymentRequested> &&
              d.event.order == bad_card && d.meta.correlation_id == bad_card &&
              d.subscription == "payment" && d.attempts == 3 && d.what == "card declined" &&
              chain_ok(book.trails[bad_card], bad_card, 1),
          "the bad card's payment is the dead letter, after 3 attempts");
  });
  book.card_fixed = true;
  const auto r = bus.replay_dead_letters();  // runs "payment" again, on this thread
  check(r.replayed == 1 && r.succeeded == 1, "the replay of the fixed card succeeds");
  await("the bad card's order has shipped", [&] { return settled(4 * orders); });
  bus.stop();  // drains what is left; after it, the metrics are exact

  const auto m = bus.metrics();
  const std::lock_guard lock(book.mu);
  for (auto& [order, t] : book.trails) {
    std::printf("order %llu, %d charge(s):\n", ull(order), book.charges[order]);
    for (int i = 0; i < 4; ++i)
      std::printf("  %-16s seq %#-9llx caused by %#-9llx correlation %llu\n",
                  m.types[i].name.c_str(), ull(t[i].sequence), ull(t[i].causation_id),
                  ull(t[i].correlation_id));
    check(chain_ok(t, order, 3), "one correlation id; each step caused by the one before");
    check(book.charges[order] == (order == bad_card ? 4 : flaky(order) ? 2 : 1), "charges");
  }
  check(book.trails.size() == orders, "every order shipped");
  const auto& t = m.total;  // accepted = dispatched + failed + dead_lettered + expired + ...
  std::printf("accepted %llu = dispatched %llu + dead_lettered %llu\n", ull(t.accepted),
              ull(t.dispatched), ull(t.dead_lettered));
  check(t.accepted == 4 * orders && t.dispatched == 4 * orders - 1 && t.dead_lettered == 1 &&
            t.handler_errors == 6 && t.retried == 5 && t.replayed == 1 && t.unsettled() == 0 &&
            m.in_flight == 0 && m.timer_entries == 0 && bus.dead_letter_count() == 0,
        "the books: 24 accepted = 23 dispatched + 1 dead-lettered; 6 errors, 5 retries");
  return failures.load() == 0 ? 0 : 1;
}
