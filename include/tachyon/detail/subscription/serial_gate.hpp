// tachyon/detail/subscription/serial_gate.hpp — what makes a `serial` subscription's handler
// (subscribe_options::serial) run one call at a time: a small mutex with an owner, so that the
// thread already inside the handler can call it again (a dispatch() of its own type from
// inside it) without waiting for itself.
//
// The gate is a futex word (0 free, 1 held, 2 held with sleepers: Drepper's "mutex 3") and the
// address of a thread-local byte naming its holder. enter() on the holding thread returns false
// at once and the nested call runs: a recursive call, not a concurrent one. A thread that finds
// it held polls it for `spin_polls` pauses (a handler call is usually shorter than a sleep and a
// wake-up), then sleeps on the word until leave() wakes it.
//
// Memory ordering: enter() acquires and leave() releases the word, so everything one call of
// the handler wrote happens-before the next call, on whichever thread. The holder field is
// relaxed: a thread only ever compares it with its own tag, which no other thread writes, and it
// always sees its own last store (coherence), so it never mistakes another thread's hold for its
// own. Thread-safety: any thread; enter()/leave() pair on one thread.
#pragma once

#include <atomic>
#include <cstdint>

#include <tachyon/detail/lane/admission.hpp>  // cache_line, cpu_relax

namespace tachyon::detail {

/// A unique address per thread: a constant-initialised thread_local needs no guard.
inline const void* this_thread_tag() noexcept {
  static thread_local const char tag = 0;
  return &tag;
}

/// On a line of its own: every call of the handler writes it, and no other line of the
/// subscription (its `live` flag, read by every dispatch) should move with it.
class alignas(cache_line) serial_gate {
 public:
  /// Polls of a held gate before sleeping on it: with cpu_relax() at 40-140 cycles (x86-64's
  /// pause; aarch64's isb is not measured), about 2 to 10 us, the order of a short handler's run.
  static constexpr std::uint32_t spin_polls = 128;

  /// Takes the gate for this thread. Returns false, taking nothing, when this thread holds it
  /// already (a nested call); true otherwise, after waiting for the holder if there is one.
  bool enter() noexcept {
    const void* self = this_thread_tag();
    if (holder_.load(std::memory_order_relaxed) == self) return false;
    std::uint32_t free = 0;
    // Acquire: the last call's writes, released by its leave(). Failure relaxed: nothing is read.
    if (!word_.compare_exchange_strong(free, 1, std::memory_order_acquire,
                                       std::memory_order_relaxed)) [[unlikely]]
      enter_contended();
    holder_.store(self, std::memory_order_relaxed);  // after the acquire: see leave()
    return true;
  }
  /// Gives the gate up (after enter() returned true); wakes one sleeper if any sleeps.
  void leave() noexcept {
    // Before the release below, so it precedes the next holder's store of its tag in holder_'s
    // order: that holder's nested enter() sees its own tag, never our later null.
    holder_.store(nullptr, std::memory_order_relaxed);
    if (word_.exchange(0, std::memory_order_release) == 2) [[unlikely]]
      wake_one();
  }

  /// Times a thread found the gate held by another and had to wait (relaxed; for metrics).
  std::uint64_t waits() const noexcept { return waits_.load(std::memory_order_relaxed); }

  /// enter() / leave() as a scope; nothing to leave for a nested call.
  class turn {
   public:
    explicit turn(serial_gate& g) noexcept : gate_(g.enter() ? &g : nullptr) {}
    ~turn() {
      if (gate_ != nullptr) gate_->leave();
    }
    turn(const turn&) = delete;
    turn& operator=(const turn&) = delete;

   private:
    serial_gate* gate_;
  };

 private:
  void enter_contended() noexcept;  // src/subscription/serial_gate.cpp
  void wake_one() noexcept;

  std::atomic<std::uint32_t> word_{0};  // the futex word: 0 free, 1 held, 2 held, sleepers
  std::atomic<const void*> holder_{nullptr};
  std::atomic<std::uint64_t> waits_{0};
};

}  // namespace tachyon::detail
