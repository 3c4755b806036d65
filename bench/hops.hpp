// The one-hop round trip that both benchmark programs time: publish a sequence number, a
// consumer pinned to another CPU takes it and stores it to a flag, the publisher spins until
// the flag shows it. hop(seq) does one round trip; each type owns its consumer for its life.
//
//   tachyon_hop        a bus with one busy_spin worker; the handler stores to the flag
//   moodycamel_hop<E>  bare ConcurrentQueue<E> driven the way tachyon drives it: a producer
//                      token, a consumer token, bulk dequeue of up to 64, a spinning consumer
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>

#include <concurrentqueue/concurrentqueue.h>
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

class tachyon_hop {
 public:
  tachyon_hop() : bus_(settings()) {
    sub_ = bus_.subscribe<Ping>(
        [this](const Ping& p) { flag_.store(p.seq, std::memory_order_release); });
  }

  /// One round trip; false if the publish was refused (it never is under these settings).
  bool operator()(std::uint64_t seq) {
    if (bus_.publish(Ping{seq}) != tachyon::result::ok) return false;
    while (flag_.load(std::memory_order_acquire) != seq) {
    }
    return true;
  }

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

  tachyon::bus<tachyon::registry<Ping>> bus_;
  alignas(64) std::atomic<std::uint64_t> flag_{0};
  tachyon::subscription sub_;  // last: unsubscribes before the bus stops
};

template <class Element = Ping>
class moodycamel_hop {
 public:
  moodycamel_hop() : consumer_([this] { consume(); }) {}
  ~moodycamel_hop() {
    done_.store(true, std::memory_order_relaxed);
    consumer_.join();
  }
  moodycamel_hop(const moodycamel_hop&) = delete;
  moodycamel_hop& operator=(const moodycamel_hop&) = delete;

  /// One round trip; false if moodycamel could not enqueue (it allocates if it must).
  bool operator()(std::uint64_t seq) {
    Element e{};
    e.seq = seq;
    if (!queue_.enqueue(ptok_, e)) return false;
    while (flag_.load(std::memory_order_acquire) != seq) {
    }
    return true;
  }

 private:
  void consume() {
    pin_this_thread(consumer_cpu());
    moodycamel::ConsumerToken ctok(queue_);
    Element buf[64];
    while (!done_.load(std::memory_order_relaxed)) {
      const std::size_t n = queue_.try_dequeue_bulk(ctok, buf, 64);
      for (std::size_t i = 0; i < n; ++i) flag_.store(buf[i].seq, std::memory_order_release);
    }
  }

  moodycamel::ConcurrentQueue<Element> queue_{1024};
  moodycamel::ProducerToken ptok_{queue_};
  alignas(64) std::atomic<std::uint64_t> flag_{0};
  alignas(64) std::atomic<bool> done_{false};
  std::thread consumer_;  // last: starts once everything it reads exists
};

}  // namespace bench
