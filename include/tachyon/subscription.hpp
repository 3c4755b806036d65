// tachyon/subscription.hpp — the RAII handle of one subscribed handler.
//
// Destroying the handle, or calling unsubscribe(), removes the handler. When the call returns
// the handler is not running on any thread and will never run again — except when it is
// called from inside a handler of the same bus (on a worker, or in poll()/dispatch()): then
// it does not wait (that could deadlock), the handler will not start again on any thread,
// but an invocation that another thread had already begun may still be finishing.
//
// Thread-safety: one handle must not be used by two threads at once; different handles may.
// A handle may outlive its bus: once the bus is gone, unsubscribe() does nothing.
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
  void (*remove)(bus_core*, subscription_state*) = nullptr;  // the typed unsubscribe
  std::uint64_t order_key = 0;  // (order, subscription sequence), sortable

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
