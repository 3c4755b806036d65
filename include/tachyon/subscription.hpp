// tachyon/subscription.hpp — the RAII handle of one subscribed handler.
//
// Destroying the handle, or calling unsubscribe(), removes the handler. When the call returns
// the handler is not running on any other thread and will never start again on any thread.
// The one exception is the calling thread itself: called from inside a handler (the handler
// being removed, or another one of the same bus), unsubscribe() cannot wait for the
// invocation it is part of; that invocation finishes normally, and the memory of the removed
// handler is freed only after it has. It does wait for the other threads, so two handlers
// that unsubscribe each other at the same moment on two workers would wait for each other
// forever: don't build such cycles (flag the other side instead).
//
// Thread-safety: one handle must not be used by two threads at once; different handles may.
// A handle may outlive its bus, once the bus's destruction has finished (then unsubscribe()
// does nothing); destroying a bus while another thread unsubscribes from it is a race.
#pragma once

#include <atomic>
#include <cstdint>
#include <utility>

namespace tachyon {

namespace detail {
class bus_core;

/// Shared by a handle and the bus's handler table; freed when both have let go.
struct subscription_state {
  virtual ~subscription_state() = default;

  std::atomic<std::uint32_t> refs{2};     // the handle's and the table's
  std::atomic<bool> live{true};           // false once unsubscribed (checked before each call)
  std::atomic<bus_core*> owner{nullptr};  // null once the bus is gone
  void (*remove)(bus_core*, subscription_state*) noexcept = nullptr;  // the typed unsubscribe
  int order = 0;                                                      // subscribe_options::order
  std::uint64_t sequence = 0;  // subscription order within the bus

  /// Handlers run in ascending order, then in subscription order.
  bool before(const subscription_state& o) const noexcept {
    return order != o.order ? order < o.order : sequence < o.sequence;
  }

  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
};
}  // namespace detail

class subscription {
 public:
  subscription() noexcept = default;
  explicit subscription(detail::subscription_state* s) noexcept : state_(s) {}
  subscription(subscription&& o) noexcept : state_(std::exchange(o.state_, nullptr)) {}
  subscription& operator=(subscription&& o) noexcept {
    if (this != &o) {
      unsubscribe();
      state_ = std::exchange(o.state_, nullptr);
    }
    return *this;
  }
  subscription(const subscription&) = delete;
  subscription& operator=(const subscription&) = delete;
  ~subscription() { unsubscribe(); }

  /// Removes the handler (see the top of this file for when it waits). Idempotent.
  /// Takes the bus's subscription lock; never call it from a signal handler.
  void unsubscribe() noexcept {
    if (auto* s = std::exchange(state_, nullptr)) {
      if (auto* bus = s->owner.load(std::memory_order_acquire)) s->remove(bus, s);
      s->release();
    }
  }

  /// Lets go of the handle without unsubscribing: the handler stays until the bus is destroyed.
  void detach() noexcept {
    if (auto* s = std::exchange(state_, nullptr)) s->release();
  }

  /// True while this handle holds a subscription that has not been removed.
  bool active() const noexcept {
    return state_ != nullptr && state_->live.load(std::memory_order_acquire) &&
           state_->owner.load(std::memory_order_acquire) != nullptr;
  }
  explicit operator bool() const noexcept { return active(); }

 private:
  detail::subscription_state* state_ = nullptr;
};

}  // namespace tachyon
