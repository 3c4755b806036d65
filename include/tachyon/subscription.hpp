// tachyon/subscription.hpp — the RAII handle of one subscribed handler.
//
// Destroying the handle, or calling unsubscribe(), removes the handler.
//
// Outside handlers (this thread is not running a handler or dispatch() of this bus), it waits
// for quiescence: when the call returns the handler is not running on any thread and will
// never start again, and its captured state has been freed.
//
// Inside a handler of the same bus (the handler being removed, or another one), it waits for
// no other thread, because that thread may be waiting for this one. When the call returns the
// handler will not start again on any thread; invocations already under way, this thread's
// included, finish normally. Its captured state (and the old handler table) is freed once
// every thread that may still run it has left its dispatch: by the next grace period any
// thread passes (a worker finishing a batch, a dispatch() or poll() returning), by the next
// subscribe() or outside unsubscribe(), or at the bus's destruction, whichever comes first;
// never inside a handler that may still be running it. So handlers may remove themselves or
// each other, at the same moment on several threads, without deadlock.
//
// Thread-safety: one handle must not be used by two threads at once; different handles may.
// A handle may outlive its bus, once the bus's destruction has finished (then unsubscribe()
// does nothing); destroying a bus while another thread unsubscribes from it is a race.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <utility>

#include <tachyon/meta.hpp>
#include <tachyon/resilience.hpp>

namespace tachyon {

namespace detail {
class bus_core;
class serial_gate;

/// Shared by a handle and the bus's handler table (and, while they hold it, by a pending retry
/// or a dead-letter entry); freed when all have let go. The callable (the handler and its
/// filter) goes earlier, as soon as the table lets go (drop_callable): a retry or dead letter
/// that still holds the state finds it not `live` and never calls it.
struct subscription_state {
  virtual ~subscription_state() = default;
  /// Destroys the handler and its filter. Called once, when the table's reference goes: no
  /// thread runs it then, nor will again.
  virtual void drop_callable() noexcept {}

  std::atomic<std::uint32_t> refs{2};  // the handle's and the table's
  // live, owner: only their values matter (a state reaches its readers through the table's load
  // or the handle), so their acquires and releases publish nothing; relaxed would do.
  std::atomic<bool> live{true};           // false once unsubscribed (checked before each call)
  std::atomic<bus_core*> owner{nullptr};  // null once the bus is gone
  void (*remove)(bus_core*, subscription_state*) noexcept = nullptr;  // the typed unsubscribe
  int order = 0;                                                      // subscribe_options::order
  std::uint64_t sequence = 0;    // subscription order within the bus
  std::uint16_t type_index = 0;  // its type's index (the first, for several types)
  /// The types it runs for, as metrics and health name them: the type's name, or several
  /// joined by '|' ("*" for subscribe_all).
  std::string type_label;
  /// The call of one event, its type erased (`ev` points to an event of type m.type_index):
  /// the filter, then the handler; what a replay, and a retry of a subscription without a
  /// breaker, call.
  using erased_call = void (*)(const subscription_state*, const void* ev, const meta& m);
  erased_call invoke = nullptr;
  /// The same through the breaker (the filter, then the breaker, then the handler): what a
  /// retry of a subscription with a breaker calls.
  erased_call invoke_guarded = nullptr;

  // Failure handling (subscribe_options), fixed at subscribe.
  std::string name;
  retry_policy retry;
  breaker_policy breaker;
  bool dead_letters = true;
  /// Whether a failure of this subscription needs more than the `failed` count: a retry, a
  /// dead letter or a breaker. Plain subscriptions skip the failure machinery.
  bool resilient = false;
  /// subscribe_options::serial: its calls go through `gate`, so the handler never runs on two
  /// threads at once. The gate is owned by the typed node (handler_node), made at subscribe.
  bool serial = false;
  serial_gate* gate = nullptr;

  // Breaker (breaker_policy): state, failure streak and the open window's end, in one word
  // (detail/resilience/breaker.hpp).
  std::atomic<std::uint64_t> breaker_word{0};
  // Per-subscription counts, written on failure paths only.
  std::atomic<std::uint64_t> errors{0};
  std::atomic<std::uint64_t> retried{0};
  std::atomic<std::uint64_t> short_circuited{0};
  std::atomic<std::uint64_t> dead_lettered{0};

  /// Handlers run in ascending order, then in subscription order.
  bool before(const subscription_state& o) const noexcept {
    return order != o.order ? order < o.order : sequence < o.sequence;
  }

  // Taking a reference needs no order (the caller holds one); dropping one is acq_rel, so the
  // last holder's delete comes after every other holder's use.
  void acquire() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  /// The table lets go: after a grace period, so no thread runs the callable.
  void release_from_table() noexcept {
    drop_callable();
    release();
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

  /// Removes the handler (see the top of this file for when it waits: only outside handlers).
  /// Idempotent.
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
