// Shared by the tests: event types and a bounded wait that never decides a test by timing.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <utility>

#include <tachyon/tachyon.hpp>

namespace tt {

struct Quote {
  std::uint32_t instrument;
  double bid, ask;
};
struct Order {
  std::uint64_t id;
  double qty;
};
struct Halt {
  std::uint32_t instrument;
};
/// Not trivially copyable: travels boxed. Counts live instances to prove none leak.
struct Note {
  static inline std::atomic<int> live{0};
  std::string text;
  explicit Note(std::string t) : text(std::move(t)) { live.fetch_add(1); }
  Note(const Note& o) : text(o.text) { live.fetch_add(1); }
  Note(Note&& o) noexcept : text(std::move(o.text)) { live.fetch_add(1); }
  ~Note() { live.fetch_sub(1); }
};

using Events = tachyon::registry<tachyon::event<Halt, tachyon::priority::critical>,
                                 tachyon::event<Order, tachyon::priority::high>, Quote, Note>;

/// Manual mode with a policy that cannot block forever.
inline tachyon::config manual(std::uint32_t capacity = 1024, std::uint32_t batch = 64) {
  return {.workers = 0,
          .lane_capacity = capacity,
          .batch = batch,
          .overflow = tachyon::overflow::fail,
          .producers = 2};
}

/// Waits until pred() holds, yielding; gives up after a minute, far beyond any healthy run,
/// so a false result means the code under test is stuck, not that the machine is slow.
template <class Pred>
bool eventually(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

/// Captured by a handler to see when the bus frees it: counts the destruction of the one
/// instance that was not moved from (a handler is moved into the bus at least once).
struct destroy_probe {
  std::atomic<int>* destroyed;
  explicit destroy_probe(std::atomic<int>* d) noexcept : destroyed(d) {}
  destroy_probe(destroy_probe&& o) noexcept : destroyed(std::exchange(o.destroyed, nullptr)) {}
  destroy_probe(const destroy_probe&) = delete;
  destroy_probe& operator=(const destroy_probe&) = delete;
  destroy_probe& operator=(destroy_probe&&) = delete;
  ~destroy_probe() {
    if (destroyed != nullptr) destroyed->fetch_add(1);
  }
};

/// True when a sanitizer slows everything down: stress sizes shrink, checks stay exact.
constexpr bool sanitized() {
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  return true;
#else
  return false;
#endif
}

}  // namespace tt
