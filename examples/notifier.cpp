// notifier: sends notifications (e-mail, push, webhooks) from a bus; a worker never waits on
// the network. The low-lane handler only hands each one to an I/O thread through a bounded
// queue (its mutex held for one push or pop). When the I/O thread falls behind and the queue
// is full, the handler throws, and the subscription's policies take over: a retry after a
// backoff (waiting in the bus's timer, not on the worker), a breaker that stops paying for
// throws while the queue stays full, and the dead letters, replayed once the I/O thread has
// caught up. Nothing is lost, every outcome is counted. (Shedding, counting and returning,
// suits updates that a newer one supersedes; a user's alert is not one.)
//
// The run: with the network down, 40 notifications and 40 fills (high lane) are published;
// 16 notifications fit the queue and 24 end in the dead letters, while every fill runs; the
// network comes back, the dead letters are replayed, and all 40 notifications are sent.
#include <tachyon/tachyon.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <thread>

struct Notification {
  std::uint64_t user;
  std::uint32_t template_id;
};
struct Fill {
  std::uint64_t order;
  double qty;
};
using Events = tachyon::registry<tachyon::event<Fill, tachyon::priority::high>,
                                 tachyon::event<Notification, tachyon::priority::low>>;

struct queue_full : std::runtime_error {
  queue_full() : std::runtime_error("notification queue full: the I/O thread is behind") {}
};

// The hand-off to the I/O thread, which sends only while the network is up.
struct outbox {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Notification> items;
  const std::size_t capacity;
  std::size_t sent = 0;
  bool network_up = false, closed = false;  // down at first: the I/O thread falls behind

  explicit outbox(std::size_t n) : capacity(n) {}
  void push(const Notification& n) {  // never waits: a full queue is the caller's to handle
    const std::lock_guard lock(mu);
    if (items.size() == capacity) throw queue_full();
    items.push_back(n);
    cv.notify_one();
  }
  void run_io_thread() {
    std::unique_lock lock(mu);
    for (;;) {
      cv.wait(lock, [&] { return closed || (network_up && !items.empty()); });
      if (closed) return;
      items.pop_front();  // and sends it (a real one with the lock released)
      ++sent;
    }
  }
  template <class F>
  auto locked(F f) {  // reads or changes the state, and wakes the I/O thread
    const std::lock_guard lock(mu);
    cv.notify_one();
    return f();
  }
};

// Waits for what the program brings about; 30 s means a hang, not a slow machine.
template <class Pred>
void await(const char* what, Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr, "notifier: FAILED: timed out waiting until %s\n", what);
      std::_Exit(1);  // threads are stuck: there is no orderly shutdown to wait for
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

int failures = 0;
void check(bool ok, const char* what) {
  if (!ok && ++failures > 0) std::fprintf(stderr, "notifier: FAILED: %s\n", what);
}
using ull = unsigned long long;

int main() {
  using namespace std::chrono_literals;
  tachyon::config cfg{.workers = 1};  // .cpus = {2} would pin the worker to CPU 2
  cfg.dead_letter_capacity = 1024;
  tachyon::bus<Events> bus{cfg};

  outbox box{16};
  std::thread io([&] { box.run_io_thread(); });
  auto risk = bus.subscribe<Fill>([](const Fill&) {});  // the trading path: it must not wait
  auto notifier = bus.subscribe<Notification>(
      [&](const Notification& n) { box.push(n); },
      {.name = "notifier",
       .retry = {.max_attempts = 3, .initial_delay = 1ms, .max_delay = 4ms},
       .breaker = {.failure_threshold = 8,  // then 20 ms of no calls: straight to dead letters
                   .open_for = 20ms,
                   .action = tachyon::when_open::dead_letter}});

  for (std::uint64_t i = 0; i < 40; ++i) {
    check(bus.publish(Notification{i, 7}) == tachyon::result::ok, "publish a notification");
    check(bus.publish(Fill{i, 100.0}) == tachyon::result::ok, "publish a fill");
  }
  await("every event has settled", [&] {
    const auto m = bus.metrics();
    return m.total.accepted == 80 && m.in_flight == 0 && m.total.unsettled() == 0;
  });
  auto m = bus.metrics();
  const auto& notes = m.types[1].counts;  // registry order: Fill, Notification
  std::printf(
      "network down: %llu notifications queued, %llu dead-lettered (%llu throws, %llu "
      "retries, %llu short-circuited by the breaker); %llu fills ran\n",
      ull(notes.dispatched), ull(notes.dead_lettered), ull(m.total.handler_errors),
      ull(m.total.retried), ull(m.total.short_circuited), ull(m.types[0].counts.dispatched));
  check(notes.dispatched == 16 && notes.dead_lettered == 24, "16 queued, 24 dead-lettered");
  check(m.types[0].counts.dispatched == 40, "every fill ran");
  check(bus.dead_letter_count() == 24 && box.locked([&] { return box.items.size(); }) == 16,
        "a full queue and 24 dead letters");
  const auto h = bus.health();
  check(!h.healthy && h.dead_letters == 24, "health() reports the dead letters");

  box.locked([&] { return box.network_up = true; });  // the I/O thread catches up
  for (int round = 0; bus.dead_letter_count() > 0 && round < 100; ++round) {
    await("the queue has drained", [&] { return box.locked([&] { return box.items.empty(); }); });
    const auto r = bus.replay_dead_letters();  // runs "notifier" again, on this thread
    std::printf("replay: %zu replayed, %zu queued, %zu found the queue full\n", r.replayed,
                r.succeeded, r.failed);
  }
  await("all 40 notifications are sent",
        [&] { return box.locked([&] { return box.sent; }) == 40; });
  bus.stop();
  box.locked([&] { return box.closed = true; });
  io.join();
  m = bus.metrics();
  std::printf("sent %zu; accepted %llu = dispatched %llu + dead_lettered %llu; replayed %llu\n",
              box.sent, ull(m.total.accepted), ull(m.total.dispatched), ull(m.total.dead_lettered),
              ull(m.total.replayed));
  check(bus.dead_letter_count() == 0 && m.total.replayed >= 24, "every dead letter replayed");
  check(m.total.accepted == m.total.dispatched + m.total.dead_lettered, "the books balance");
  return failures == 0 ? 0 : 1;
}
