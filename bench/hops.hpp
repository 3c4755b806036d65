// The one-hop round trip that the benchmark programs time: publish a sequence number, a consumer
// pinned to another CPU takes it and stores it to a flag, the publisher spins until the flag
// shows it. hop(seq) does one round trip and returns false only if the publish was refused; each
// type owns its consumer (a thread pinned to consumer_cpu(), or a bus worker) for its life.
//
//   tachyon_hop                  a bus with one busy_spin worker; the handler stores to the flag
//   tachyon_hop_no_timestamps    the same with config::timestamps false: no clock read per publish
//   tachyon_yield_hop            the same with wait_strategy::yield
//   tachyon_spin_then_park_hop   the same with spin_then_park and the default spin_before_park
//                                (50 us): the next hop comes well within the spin, so the worker
//                                should not park (not checked per hop, unlike the parked row)
//   tachyon_parked_hop           spin_then_park with spin_before_park = 0, and prepare() (to be
//                                called before each timed hop) waits until the worker has parked
//                                (metrics().parks went up, then 5 us more), so every timed hop
//                                pays the futex wake-up of a sleeping worker
//   moodycamel_hop<E>            bare ConcurrentQueue<E> driven the way tachyon drives it: a
//                                producer token, a consumer token, bulk dequeue of up to 64, a
//                                spinning consumer
//   atomic_queue_hop             atomic_queue::AtomicQueue2<uint64_t, 1024> (MPMC), a spinning
//                                consumer
//   mutex_cv_hop                 a std::deque guarded by a std::mutex, the consumer sleeps on a
//                                std::condition_variable: the classic queue tachyon replaces
//   asio_hop                     boost::asio::thread_pool with one thread; each hop is a post()
//   cache_line_hop               the floor: the publisher stores seq to a line the consumer spins
//                                on, the consumer echoes it to the flag (two lines bouncing)
//
// Request/reply (bench/latency.cpp's request group), each on a bus with one busy_spin worker
// whose Ask handler publishes Answer{seq} with the Ask's correlation id:
//   tachyon_two_hops             the same exchange by hand: publish Ask with correlation id seq,
//                                an Answer handler stores the correlation id to the flag
//   tachyon_request_hop          the blocking bus.request<Answer>(Ask, 1 s): the caller spins
//                                (config::spin_before_park) on its own reply, then copies it
//   tachyon_request_async_hop    bus.request<Answer>(Ask, 1 s, on_reply); on_reply stores the
//                                reply to the flag, which the publisher spins on
//
// In every case the publisher spins on the flag, so the figures differ only in how the hop gets
// to the consumer and wakes it.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>

#include <atomic_queue/atomic_queue.h>
#include <concurrentqueue/concurrentqueue.h>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <tachyon/tachyon.hpp>

#include "pinning.hpp"

namespace bench {

struct Ping {
  std::uint64_t seq;
};
/// The size of tachyon's envelope (32-byte header + 32 bytes of payload), for the peer.
struct alignas(64) Ping64 {
  std::uint64_t seq;
  char pad[56];
};
static_assert(sizeof(Ping64) == sizeof(tachyon::detail::envelope));

/// The peers' consumer: a thread pinned to consumer_cpu() that runs `body(done)` until `done`
/// reads true, which the destructor sets before it joins. Declared last in its owner, so that it
/// starts after, and is joined before, everything the body touches.
class consumer_thread {
 public:
  template <class Body>
  explicit consumer_thread(Body body)
      : thread_([this, body]() mutable {
          pin_this_thread(consumer_cpu());
          body(done_);
        }) {}
  ~consumer_thread() {
    done_.store(true, std::memory_order_relaxed);
    thread_.join();
  }
  consumer_thread(const consumer_thread&) = delete;
  consumer_thread& operator=(const consumer_thread&) = delete;

 private:
  alignas(64) std::atomic<bool> done_{false};
  std::thread thread_;  // last: starts once done_ exists
};

/// Spins until `flag` shows `seq`: the publisher's half of every hop.
inline void await_echo(const std::atomic<std::uint64_t>& flag, std::uint64_t seq) {
  while (flag.load(std::memory_order_acquire) != seq) {
  }
}

/// A bus with one worker pinned to consumer_cpu(), waiting the way `Wait` says. SpinNs < 0
/// keeps config's default spin_before_park; otherwise it is the spin in nanoseconds.
template <tachyon::wait_strategy Wait, long long SpinNs = -1, bool Timestamps = true>
class basic_tachyon_hop {
 public:
  basic_tachyon_hop() : bus_(settings()) {
    sub_ = bus_.subscribe<Ping>(
        [this](const Ping& p) { flag_.store(p.seq, std::memory_order_release); });
  }

  /// One round trip; false if the publish was refused (it never is under these settings).
  bool operator()(std::uint64_t seq) {
    if (bus_.publish(Ping{seq}) != tachyon::result::ok) return false;
    await_echo(flag_, seq);
    return true;
  }

  /// Worker parks at once when idle: the hop is meant to wake it from its sleep.
  static constexpr bool parks_every_hop =
      Wait == tachyon::wait_strategy::spin_then_park && SpinNs == 0;

  /// Untimed, before a hop: waits until the worker has gone to sleep since the last call (at
  /// most 10 ms), then 5 us more so that it is inside the futex wait, not just about to be.
  void prepare() requires parks_every_hop {
    using sc = std::chrono::steady_clock;
    const auto give_up = sc::now() + std::chrono::milliseconds(10);
    std::uint64_t parks = bus_.metrics().parks;
    while (parks <= parks_seen_ && sc::now() < give_up) parks = bus_.metrics().parks;
    parks_seen_ = parks;
    const auto settle = sc::now() + std::chrono::microseconds(5);
    while (sc::now() < settle) {
    }
  }

 private:
  static tachyon::config settings() {
    tachyon::config cfg{.workers = 1,
                        .lane_capacity = 1024,
                        .batch = 64,
                        .wait = Wait,
                        .overflow = tachyon::overflow::block,
                        .producers = 1};
    if constexpr (SpinNs >= 0) cfg.spin_before_park = std::chrono::nanoseconds(SpinNs);
    cfg.timestamps = Timestamps;
    if (consumer_cpu() >= 0) cfg.cpus = {consumer_cpu()};
    return cfg;
  }

  tachyon::bus<tachyon::registry<Ping>> bus_;
  alignas(64) std::atomic<std::uint64_t> flag_{0};
  std::uint64_t parks_seen_ = 0;  // prepare()'s: parks counted by the last call
  tachyon::subscription sub_;     // last: unsubscribes before the bus stops
};

using tachyon_hop = basic_tachyon_hop<tachyon::wait_strategy::busy_spin>;
/// The same without the publish's clock read (config::timestamps false).
using tachyon_hop_no_timestamps = basic_tachyon_hop<tachyon::wait_strategy::busy_spin, -1, false>;
using tachyon_yield_hop = basic_tachyon_hop<tachyon::wait_strategy::yield>;
using tachyon_spin_then_park_hop = basic_tachyon_hop<tachyon::wait_strategy::spin_then_park>;
using tachyon_parked_hop = basic_tachyon_hop<tachyon::wait_strategy::spin_then_park, 0>;

template <class Element = Ping>
class moodycamel_hop {
 public:
  /// One round trip; false if moodycamel could not enqueue (it allocates if it must).
  bool operator()(std::uint64_t seq) {
    Element e{};
    e.seq = seq;
    if (!queue_.enqueue(ptok_, e)) return false;
    await_echo(flag_, seq);
    return true;
  }

 private:
  void consume(const std::atomic<bool>& done) {
    moodycamel::ConsumerToken ctok(queue_);
    Element buf[64];
    while (!done.load(std::memory_order_relaxed)) {
      const std::size_t n = queue_.try_dequeue_bulk(ctok, buf, 64);
      for (std::size_t i = 0; i < n; ++i) flag_.store(buf[i].seq, std::memory_order_release);
    }
  }

  moodycamel::ConcurrentQueue<Element> queue_{1024};
  moodycamel::ProducerToken ptok_{queue_};
  alignas(64) std::atomic<std::uint64_t> flag_{0};
  consumer_thread consumer_{[this](const std::atomic<bool>& done) { consume(done); }};  // last
};

class atomic_queue_hop {
 public:
  /// One round trip; false if the queue was full (it never is: one hop in flight at a time).
  bool operator()(std::uint64_t seq) {
    if (!queue_.try_push(seq)) return false;
    await_echo(flag_, seq);
    return true;
  }

 private:
  void consume(const std::atomic<bool>& done) {
    std::uint64_t v = 0;
    while (!done.load(std::memory_order_relaxed))
      if (queue_.try_pop(v)) flag_.store(v, std::memory_order_release);
  }

  atomic_queue::AtomicQueue2<std::uint64_t, 1024> queue_;
  alignas(64) std::atomic<std::uint64_t> flag_{0};
  consumer_thread consumer_{[this](const std::atomic<bool>& done) { consume(done); }};  // last
};

class mutex_cv_hop {
 public:
  mutex_cv_hop() : consumer_([this] { consume(); }) {}
  ~mutex_cv_hop() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_one();
    consumer_.join();
  }
  mutex_cv_hop(const mutex_cv_hop&) = delete;
  mutex_cv_hop& operator=(const mutex_cv_hop&) = delete;

  bool operator()(std::uint64_t seq) {
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(seq);
    }
    cv_.notify_one();
    await_echo(flag_, seq);
    return true;
  }

 private:
  void consume() {
    pin_this_thread(consumer_cpu());
    std::unique_lock lock(mutex_);
    for (;;) {
      cv_.wait(lock, [this] { return done_ || !queue_.empty(); });
      if (queue_.empty()) return;  // done, and nothing left
      while (!queue_.empty()) {
        const std::uint64_t v = queue_.front();
        queue_.pop_front();
        lock.unlock();
        flag_.store(v, std::memory_order_release);
        lock.lock();
      }
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::uint64_t> queue_;  // guarded by mutex_
  bool done_ = false;                // guarded by mutex_
  alignas(64) std::atomic<std::uint64_t> flag_{0};
  std::thread consumer_;  // last
};

class asio_hop {
 public:
  /// Pins the pool's one thread from inside a first task, and waits until that ran.
  asio_hop() {
    std::atomic<bool> pinned{false};
    boost::asio::post(pool_, [&pinned] {
      pin_this_thread(consumer_cpu());
      pinned.store(true, std::memory_order_release);
    });
    while (!pinned.load(std::memory_order_acquire)) std::this_thread::yield();
  }
  ~asio_hop() { pool_.join(); }  // nothing is pending: every hop waited for its task
  asio_hop(const asio_hop&) = delete;
  asio_hop& operator=(const asio_hop&) = delete;

  bool operator()(std::uint64_t seq) {
    boost::asio::post(pool_, [this, seq] { flag_.store(seq, std::memory_order_release); });
    await_echo(flag_, seq);
    return true;
  }

 private:
  alignas(64) std::atomic<std::uint64_t> flag_{0};
  boost::asio::thread_pool pool_{1};  // last: its thread stops before flag_ goes
};

class cache_line_hop {
 public:
  bool operator()(std::uint64_t seq) {
    in_.store(seq, std::memory_order_release);
    await_echo(flag_, seq);
    return true;
  }

 private:
  void consume(const std::atomic<bool>& done) {
    std::uint64_t last = 0;
    while (!done.load(std::memory_order_relaxed)) {
      const std::uint64_t v = in_.load(std::memory_order_acquire);
      if (v != last) {
        flag_.store(v, std::memory_order_release);
        last = v;
      }
    }
  }

  alignas(64) std::atomic<std::uint64_t> in_{0};
  alignas(64) std::atomic<std::uint64_t> flag_{0};
  consumer_thread consumer_{[this](const std::atomic<bool>& done) { consume(done); }};  // last
};

struct Ask {
  std::uint64_t seq;
};
struct Answer {
  std::uint64_t seq;
};
using request_events = tachyon::registry<Ask, Answer>;

/// The request group's bus: one busy_spin worker on consumer_cpu(), and a responder that
/// answers each Ask with Answer{seq} under the Ask's correlation id.
class request_bus {
 public:
  request_bus() : bus_(settings()) {
    responder_ = bus_.subscribe<Ask>([this](const Ask& a, const tachyon::meta& m) {
      (void)bus_.publish(Answer{a.seq},
                         tachyon::publish_options{.correlation_id = m.correlation_id});
    });
  }
  tachyon::bus<request_events>& bus() noexcept { return bus_; }

 private:
  static tachyon::config settings() {
    tachyon::config cfg{.workers = 1,
                        .lane_capacity = 1024,
                        .batch = 64,
                        .wait = tachyon::wait_strategy::busy_spin,
                        .overflow = tachyon::overflow::block,
                        .producers = 1};
    if (consumer_cpu() >= 0) cfg.cpus = {consumer_cpu()};
    return cfg;
  }

  tachyon::bus<request_events> bus_;
  tachyon::subscription responder_;  // last: unsubscribes before the bus stops
};

class tachyon_two_hops {
 public:
  tachyon_two_hops() {
    sub_ = rb_.bus().subscribe<Answer>([this](const Answer&, const tachyon::meta& m) {
      flag_.store(m.correlation_id, std::memory_order_release);
    });
  }
  bool operator()(std::uint64_t seq) {
    if (rb_.bus().publish(Ask{seq}, tachyon::publish_options{.correlation_id = seq}) !=
        tachyon::result::ok)
      return false;
    await_echo(flag_, seq);
    return true;
  }

 private:
  request_bus rb_;
  alignas(64) std::atomic<std::uint64_t> flag_{0};
  tachyon::subscription sub_;  // last
};

class tachyon_request_hop {
 public:
  bool operator()(std::uint64_t seq) {
    const auto reply = rb_.bus().request<Answer>(Ask{seq}, std::chrono::seconds(1));
    return reply.has_value() && reply->seq == seq;
  }

 private:
  request_bus rb_;
};

class tachyon_request_async_hop {
 public:
  bool operator()(std::uint64_t seq) {
    if (rb_.bus().request<Answer>(Ask{seq}, std::chrono::seconds(1), [this](const Answer* a) {
          flag_.store(a != nullptr ? a->seq : 0, std::memory_order_release);
        }) != tachyon::result::ok)
      return false;
    await_echo(flag_, seq);
    return true;
  }

 private:
  request_bus rb_;
  alignas(64) std::atomic<std::uint64_t> flag_{0};
};

}  // namespace bench
