// tachyon/detail/lane/admission.hpp — how an event claims room in a lane: exact bounds without a
// shared write per publish.
//
// A lane holds at most `capacity` events. Room is kept as credits. The lane's pool (`free`)
// holds the credits nobody has; a publishing thread takes them in chunks of up to
// `max_chunk` into its own account (one read-modify-write on the pool per chunk) and spends
// one per event with plain stores to a line only it writes. A consumer gives a batch's credits
// back to the pool with one read-modify-write per batch. So under the bound a publish writes no
// line of tachyon's that another thread writes, and a consumer reads no line of tachyon's that
// every publish writes (the queue's own lines are moodycamel's, as for any consumer).
//
// Per thread and lane, an account:
//   used   events this thread admitted into the lane (monotonic, but see `cancel`); owner only
//   limit  credits granted to it so far; raised by the owner (refill), lowered by a revoker
//   done   events admitted through this door that this thread took out of the lane
//          (consumers); owner only
// Invariant, exact when quiet:
//   free + sum(limit - used) + sum(used) - sum(done) = capacity
// and the lane's front-door occupancy (events admitted and not yet dequeued) is
// sum(used) - sum(done); re-entered events are counted by their own door (reentry_depth()).
//
// Credits a thread holds but does not spend (it stopped publishing into the lane, sleeps,
// exited) would make the bound inexact, so a thread that finds the pool empty revokes them:
// the owner's fast path is
//     used = u + 1;  light_fence;  if (limit > u) admitted  else settle()
// and a revoker lowers `limit` to the `used` it sees, issues heavy_fence (membarrier: a full
// barrier on every thread of the process), then reads `used` again. After the heavy fence
// every admission whose `limit` load saw the old limit has its `used` store visible, and every
// later one sees the lowered limit; so the second read counts every admitted event, plus at most
// one attempt that saw the lowered limit. The revoker settles the account at that count
// (limit = used read), which turns such an attempt into an admitted one, and returns the rest
// to the pool. The owner, whose attempt failed, waits for the settlement (`revoking`) and
// re-reads its limit: covered, the event is admitted; not covered, it undoes its store.
//
// Every credit that reaches the pool, by whatever path (a consumer's batch, an owner's
// give_back(), a revocation), wakes one publisher blocked on the lane (put()), so that a
// blocked publisher never sleeps while room exists. give_back() and revokers hold the revoke
// mutex while credits are between an account and the pool, and refill() retries the pool
// after taking it: a refill never reports a full lane because credits were on their way back.
//
// Retries and replays enter through a second, separately bounded door (`reentry_free`,
// one read-modify-write per event, rare by nature), so they never take a publisher's room
// and a blocked publisher never waits behind them.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>

#include <tachyon/detail/subscription/fence.hpp>
#include <tachyon/detail/worker/parking.hpp>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace tachyon::detail {

/// What tachyon pads and aligns to so that lines written by different threads are never
/// shared. x86-64: 64 bytes, its line. aarch64: 128, which covers both kinds of core: those
/// with 128-byte lines (Apple's, and designs derived from them), and those with 64-byte lines
/// that fetch lines in pairs; on the rest it costs padding (memory), not time. Elsewhere 64.
#if defined(__aarch64__)
inline constexpr std::size_t cache_line = 128;
#else
inline constexpr std::size_t cache_line = 64;
#endif

/// The pause in a poll loop: it lets the core's other hardware thread run and keeps the loop
/// from flooding the line it polls with reads. x86-64: `pause`. aarch64: `isb`, which waits
/// for the pipeline to drain, since `yield` is a no-op on most cores and a
/// loop of it polls as fast as one with nothing. Elsewhere nothing.
inline void cpu_relax() noexcept {
#if defined(__x86_64__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("isb" ::: "memory");
#endif
}

#if defined(TACHYON_COUNT_SHARED_RMW)
/// Read-modify-writes this thread made on lines other threads write (tests only: the machine
/// this is developed on has no hardware counters, so the code counts them itself).
inline thread_local std::uint64_t shared_rmws = 0;
inline void count_shared_rmw() noexcept { ++shared_rmws; }
#else
inline void count_shared_rmw() noexcept {}
#endif

/// One thread's credits in one lane. See the header comment for the protocol.
struct credit_account {
  std::atomic<std::uint64_t> used{0};
  std::atomic<std::uint64_t> limit{0};
  std::atomic<std::uint64_t> done{0};
  std::atomic<std::uint32_t> revoking{0};  // a revoker is settling this account
  std::uint64_t revoked_from = 0;          // the revoker's note of the limit it lowered

  /// Credits this thread holds and has not spent (owner's view; others' view is a hint).
  std::uint64_t spare() const noexcept {
    const std::uint64_t u = used.load(std::memory_order_relaxed);
    const std::uint64_t l = limit.load(std::memory_order_relaxed);
    return l > u ? l - u : 0;
  }
  /// Acquire: pairs with the revoker's release of 0, which it stores after the settled limit.
  void wait_settled() const noexcept {
    for (unsigned spins = 0; revoking.load(std::memory_order_acquire) != 0; ++spins) {
      if (spins < 64)
        cpu_relax();
      else
        std::this_thread::yield();
    }
  }
};

class lane_admission {
 public:
  /// Credits a refill takes at most. The owner spends them with plain stores; a refill is one
  /// read-modify-write on the pool's line.
  static constexpr std::uint32_t max_chunk = 64;

  /// `room`, if given, is where publishers blocked on this lane sleep: every credit that
  /// reaches the pool, by whatever path, wakes one of them (put()).
  lane_admission(std::uint32_t capacity, std::uint32_t reentry_capacity, bool asymmetric,
                 wait_point* room = nullptr)
      : free_(capacity),
        reentry_free_(reentry_capacity),
        capacity_(capacity),
        reentry_capacity_(reentry_capacity),
        asymmetric_(asymmetric),
        room_(room) {}

  std::uint32_t capacity() const noexcept { return capacity_; }
  std::uint32_t reentry_capacity() const noexcept { return reentry_capacity_; }
  bool asymmetric() const noexcept { return asymmetric_; }

  /// The idle scan's hint: false means the lane is certainly empty (every credit is in a pool,
  /// so nothing is admitted and not yet dequeued). One line, written once per chunk and batch.
  bool maybe_nonempty() const noexcept {
    return free_.load(std::memory_order_relaxed) != capacity_ ||
           reentry_free_.load(std::memory_order_relaxed) != reentry_capacity_;
  }

  // ---- the front door: publishers ------------------------------------------------------------

  /// Admits `n` events from the owner of `a` against the credits it holds. Returns false, with
  /// nothing admitted and nothing to undo, when it holds fewer than `n` (then refill()).
  /// `stopping` is read after the admission is visible (see bus_core::stop); when it reads
  /// true the admission is undone and *stopped is set.
  /// Always inlined: it is most of publish()'s admission, and GCC's unit-growth budget, spent
  /// elsewhere in a large translation unit, otherwise leaves it out of line (+24 instructions
  /// per publish, perf/callgrind).
  template <class StopFlag>
  [[gnu::always_inline]] static bool try_admit(credit_account& a, std::uint64_t n, bool asymmetric,
                                               const StopFlag& stop, bool& stopped) noexcept {
    // Relaxed: `used` is ours, and this `limit` only a filter: the load after the fence decides.
    const std::uint64_t u = a.used.load(std::memory_order_relaxed);
    if (a.limit.load(std::memory_order_relaxed) < u + n) [[unlikely]]
      return false;
    a.used.store(u + n, std::memory_order_relaxed);
    light_fence(asymmetric);  // the store above before the loads below; heavy_fence pairs
    // Acquire: a lowered limit comes with the revoker's `revoking` mark (settle_attempt).
    if (a.limit.load(std::memory_order_acquire) < u + n) [[unlikely]]
      return settle_attempt(a, u, n, asymmetric, stop, stopped);
    if (stop.load(std::memory_order_relaxed)) [[unlikely]] {
      cancel(a, n);
      stopped = true;
      return false;
    }
    return true;
  }

  /// Gives back `n` events admitted by this thread that will not be enqueued (the payload
  /// threw, stop() began). The credits stay in the account.
  static void cancel(credit_account& a, std::uint64_t n) noexcept {
    a.used.store(a.used.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }

  /// Takes credits from the pool into `a`: `want` at least as asked (fewer if the pool has
  /// fewer), rounded up to a chunk that shrinks as the pool runs low, so that little room sits
  /// idle in accounts near the bound. When the pool is empty, revokes other accounts' spare
  /// credits first (for_each_account(f) calls f(credit_account&) on every account of this lane).
  /// Returns the credits added (0: the lane is full).
  template <class ForEach>
  std::uint64_t refill(credit_account& a, std::uint64_t want, ForEach&& for_each_account) {
    std::uint64_t got = take(want);
    if (got == 0) {
      // Whatever the revocation finds: it also waits (on the revoke mutex) for a revocation or a
      // give_back() under way on another thread, whose credits are in neither an account nor
      // the pool until it ends; they are in the pool now.
      revoke_spare(&a, for_each_account);
      got = take(want);
      if (got == 0) return 0;
    }
    grant(a, got);
    return got;
  }

  /// Returns every credit `a` holds unspent to the pool (the owner: when its thread ends, when
  /// an admission it made is undone, when it goes idle); returns how many. Under the revoke
  /// mutex, so that a refill that found the pool empty meanwhile waits for the credits to
  /// arrive rather than report a full lane (see refill()).
  std::uint64_t give_back(credit_account& a) noexcept {
    std::lock_guard lock(revoke_mutex_);  // no revoker is settling `a` meanwhile
    // The mutex orders these against revokers, and only the owner (this thread) raises the
    // limit: relaxed would do here.
    const std::uint64_t l = a.limit.load(std::memory_order_acquire);
    const std::uint64_t u = a.used.load(std::memory_order_relaxed);
    if (l <= u) return 0;
    a.limit.store(u, std::memory_order_release);  // only the owner raises it, and that is us
    put(l - u);
    return l - u;
  }

  /// Revokes the spare credits of every account but `self` and returns them to the pool;
  /// returns how many came back. One heavy_fence when any account had spare credits, none
  /// otherwise. Also what an idle consumer calls, so that credits left in idle accounts do not
  /// keep the maybe_nonempty() hint set.
  template <class ForEach>
  std::uint64_t revoke_spare(const credit_account* self, ForEach&& for_each_account) {
    std::lock_guard lock(revoke_mutex_);
    std::uint64_t marked = 0;
    for_each_account([&](credit_account& c) {
      if (&c == self) return;
      // Estimates, which need no acquire: the read of `used` after heavy_fence settles.
      std::uint64_t l = c.limit.load(std::memory_order_acquire);
      const std::uint64_t u = c.used.load(std::memory_order_acquire);
      if (l <= u) return;
      // The CAS's release carries the mark to an owner that acquires the lowered limit (it
      // then waits); heavy_fence orders the rest. seq_cst is more than that needs, on a path
      // that pays a membarrier anyway.
      c.revoking.store(1, std::memory_order_seq_cst);
      if (!c.limit.compare_exchange_strong(l, u, std::memory_order_seq_cst)) {
        c.revoking.store(0, std::memory_order_release);  // the owner refilled: it is active
        return;
      }
      c.revoked_from = l;
      ++marked;
    });
    if (marked == 0) return 0;
    heavy_fence(asymmetric_);
    std::uint64_t returned = 0;
    for_each_account([&](credit_account& c) {
      if (c.revoking.load(std::memory_order_relaxed) == 0 || &c == self) return;  // our mark
      const std::uint64_t before = c.revoked_from;
      const std::uint64_t u = c.used.load(std::memory_order_seq_cst);
      c.limit.store(u, std::memory_order_release);
      c.revoking.store(0, std::memory_order_release);  // after the limit: wait_settled()
      returned += before - u;
    });
    if (returned != 0) put(returned);
    return returned;
  }

  /// A consumer dequeued `n` events admitted through the front door, `reentered` through the
  /// second: their room goes back (one read-modify-write each, per batch).
  void release(std::uint64_t n, std::uint64_t reentered) noexcept {
    if (n != 0) put(n);
    if (reentered != 0) {
      count_shared_rmw();
      // seq_cst as the door's other RMWs; room coming back needs no order.
      reentry_free_.fetch_add(static_cast<std::int64_t>(reentered), std::memory_order_seq_cst);
    }
  }

  /// The owner of `a` took one front-door event out of the lane to make room for its own
  /// (overflow::drop_oldest): counts it out of the lane (`done`, as a consumer would) and
  /// passes its credit straight to `a`, not through the pool, where another publisher could
  /// take it first. `done` before `limit`: in between, the credit is in neither place, so the
  /// bound is briefly one tighter, never looser. A revoker may still take the credit back to the
  /// pool before the owner spends it; the owner then refills, or displaces again.
  static void hand_over(credit_account& a) noexcept {
    a.done.store(a.done.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    grant(a, 1);
  }

  // ---- the second door: retries and replays --------------------------------------------------

  /// Takes room for one re-entering event; false when the door's bound is reached.
  /// seq_cst: the door's half of reenter()'s Dekker pair with stop(discard) (bus_core.cpp).
  bool try_reenter() noexcept {
    std::int64_t f = reentry_free_.load(std::memory_order_relaxed);
    while (f > 0) {
      count_shared_rmw();
      if (reentry_free_.compare_exchange_weak(f, f - 1, std::memory_order_seq_cst,
                                              std::memory_order_relaxed))
        return true;
    }
    return false;
  }
  /// Gives back room taken by try_reenter() for an event that will not be enqueued.
  void cancel_reenter() noexcept { release(0, 1); }
  /// A keyed events' strand token (detail/ordering/strand.hpp) enters through this door's count,
  /// so that the drain tells it from front-door events as it tells deliveries, but not its bound:
  /// a lane holds at most one token per strand, and the events behind a token are admitted
  /// already. Tokens may so take the door's room from due retries for a while (those wait in the
  /// timer until a batch has made room), never the reverse.
  /// seq_cst as the door's other RMWs; the drain that dequeues the token sees this through the
  /// queue (the enqueue releases, the dequeue acquires), whatever the order here.
  void enter_token() noexcept {
    count_shared_rmw();
    reentry_free_.fetch_sub(1, std::memory_order_seq_cst);
  }
  /// Re-entered events not yet dequeued (exact when quiet). seq_cst: stop(discard)'s half of
  /// the Dekker pair (see try_reenter()); the drain's look needs only coherence.
  std::uint64_t reentry_depth() const noexcept {
    const std::int64_t f = reentry_free_.load(std::memory_order_seq_cst);
    return f >= static_cast<std::int64_t>(reentry_capacity_)
               ? 0
               : static_cast<std::uint64_t>(reentry_capacity_ - f);
  }

  /// The pool, for tests and metrics, and a blocked publisher's hint (take() decides): seq_cst
  /// is more than any of them needs.
  std::int64_t pool() const noexcept { return free_.load(std::memory_order_seq_cst); }

 private:
  /// The owner's store of used = u + n met a limit below it: a revoker lowered it. Waits for
  /// the revoker to settle the account, then either keeps the admission (the revoker counted
  /// it) or undoes it and reports failure.
  template <class StopFlag>
  static bool settle_attempt(credit_account& a, std::uint64_t u, std::uint64_t n, bool asymmetric,
                             const StopFlag& stop, bool& stopped) noexcept {
    a.wait_settled();
    if (a.limit.load(std::memory_order_acquire) >= u + n) {
      light_fence(asymmetric);
      if (stop.load(std::memory_order_seq_cst)) {
        cancel(a, n);
        stopped = true;
        return false;
      }
      return true;
    }
    a.used.store(u, std::memory_order_relaxed);
    return false;
  }

  std::uint64_t take(std::uint64_t want) noexcept {
    // seq_cst: a publisher blocked on a full lane calls this after room.prepare_wait(), and
    // wait_point's protocol needs the check of the condition to be seq_cst, as put()'s add
    // is. (Once per chunk of credits; on x86-64 the same instruction as relaxed.)
    std::int64_t f = free_.load(std::memory_order_seq_cst);
    for (;;) {
      if (f <= 0) return 0;
      // A chunk of up to max_chunk, but at most an eighth of what is left, so that near the
      // bound most of the room stays in the pool where any thread can take it.
      const std::int64_t chunk =
          std::clamp<std::int64_t>(f / 8, 1, static_cast<std::int64_t>(max_chunk));
      const std::int64_t k = std::min(f, std::max(static_cast<std::int64_t>(want), chunk));
      count_shared_rmw();
      if (free_.compare_exchange_weak(f, f - k, std::memory_order_seq_cst,
                                      std::memory_order_relaxed))
        return static_cast<std::uint64_t>(k);
    }
  }
  void put(std::uint64_t n) noexcept {
    count_shared_rmw();
    // seq_cst: the notifier's change in room's protocol (take() is the waiter's check).
    free_.fetch_add(static_cast<std::int64_t>(n), std::memory_order_seq_cst);
    // Room appeared: one blocked publisher wakes (and passes the wake on if room is left).
    // One load when nobody sleeps.
    if (room_ != nullptr) room_->notify_one();
  }
  /// Adds `k` taken credits to the owner's limit. A revoker may be lowering it at the same time:
  /// the owner waits for the settlement (which stores the limit outright) and adds to the
  /// settled limit. A revoker that marks the account after wait_settled() looked is caught
  /// either way: its CAS makes ours fail, or our load read the limit it lowered, and then sees
  /// its mark (stored before that CAS, whose release our acquire load synchronizes with); adding
  /// to that limit would have the settlement overwrite the grant, and the k credits would be
  /// in no account and not in the pool. The mark is read with acquire so that a settlement seen
  /// over (mark 0) comes with the limit it stored, which the CAS then compares against.
  /// Acquire (load, failed CAS): a limit a revoker lowered comes with its `revoking` mark. The
  /// release half is not needed (it only makes a revoker's estimate of `used` fresher).
  static void grant(credit_account& a, std::uint64_t k) noexcept {
    for (;;) {
      a.wait_settled();
      std::uint64_t l = a.limit.load(std::memory_order_acquire);
      if (a.revoking.load(std::memory_order_acquire) != 0) continue;
      if (a.limit.compare_exchange_strong(l, l + k, std::memory_order_acq_rel)) return;
    }
  }

  // Publishers take from `free_` once per chunk and consumers give back once per batch; the
  // idle scan reads both counters here. The rest of the line is read-only after construction.
  alignas(cache_line) std::atomic<std::int64_t> free_;
  std::atomic<std::int64_t> reentry_free_;
  std::uint32_t capacity_;
  std::uint32_t reentry_capacity_;
  bool asymmetric_;
  wait_point* room_;
  alignas(cache_line) std::mutex revoke_mutex_;  // revokers and give_back()
};

}  // namespace tachyon::detail
