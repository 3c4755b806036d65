// tachyon/detail/subscription/epoch.hpp — epoch-based reclamation of handler tables.
//
// Readers (threads running handlers) announce, on entering their outermost dispatch, the epoch
// they saw, and clear it (0) on leaving. A writer that swapped a table either waits for a grace
// period (synchronize: every reader that could hold the old table has left) or retires the old
// table with the epoch of the swap, and reclaim() frees what no reader announced at or before
// that epoch can still see. The reader side is one plain store and a compiler barrier
// (light_fence); the full barrier is the writer's heavy_fence (membarrier), see fence.hpp.
//
// Grace periods. A retired pointer with epoch r is freed once every reader's announcement is 0
// or >= r: such a reader entered after the swap (its table loads see the new table) or is not
// reading. A thread's leaving its outermost dispatch is a grace period for it, so exit is where
// a dispatching thread tries to reclaim (cheaply: one relaxed load of `reclaim_due`).
//
// The domain owns the subscription lock: retire() and reclaim() run under it; so do the table
// swaps of the handler tables that use this domain.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include <tachyon/detail/lane/admission.hpp>  // cache_line
#include <tachyon/detail/subscription/fence.hpp>

namespace tachyon::detail {

/// One reading thread's announcement: the epoch it saw when it entered its outermost dispatch,
/// 0 when it is not dispatching. Written by its owner, read by writers. Lives inside the
/// owner's thread_context; registered with the domain once (add_reader), never removed.
struct epoch_reader {
  std::atomic<std::uint64_t> epoch{0};
  epoch_reader* next = nullptr;  // the domain's push-only list; immutable once pushed
};

class epoch_domain {
 public:
  struct retired {
    void* p;
    void (*deleter)(void*);
    std::uint64_t epoch;
  };
  using garbage = std::vector<retired>;

  explicit epoch_domain(bool asymmetric) noexcept : asymmetric_(asymmetric) {}
  ~epoch_domain() { free_garbage(retired_); }
  epoch_domain(const epoch_domain&) = delete;
  epoch_domain& operator=(const epoch_domain&) = delete;

  /// Adds a reader (push-only, lock-free). The reader must outlive the domain's last scan.
  void add_reader(epoch_reader& r) noexcept;

  /// The reader enters (outermost dispatch only): announces the current epoch. The
  /// announcement is ordered before the table loads that follow by light_fence, paired with
  /// the heavy_fence that synchronize() and reclaim() issue before they read announcements.
  void enter(epoch_reader& r) noexcept {
    // Release: a writer may read this announcement (>= its target) rather than the 0 that
    // leave() stored; the release orders the previous dispatch's table loads before it, so
    // the writer's free still comes after them. (leave()'s release does not carry over to a
    // later relaxed store.) On x86-64 both are plain stores.
    r.epoch.store(epoch_.load(std::memory_order_acquire), std::memory_order_release);
    light_fence(asymmetric_);
  }
  /// The reader leaves (outermost dispatch only). Returns true when something is retired (one
  /// relaxed load of a line readers only read): the caller then calls reclaim_after_leave().
  bool leave(epoch_reader& r) noexcept {
    // Release: this dispatch's table loads come before a writer's acquire of the 0, and so
    // before its free (synchronize(), reclaim()).
    r.epoch.store(0, std::memory_order_release);
    return reclaim_due_.load(std::memory_order_relaxed) != 0;
  }

  /// After a table swap: waits until no reader other than `self` (may be null) can still be
  /// reading the old table (a grace period). Only for a thread that is not itself reading: two
  /// readers synchronizing would wait for each other forever; a reader retires instead.
  void synchronize(const epoch_reader* self);
  /// Keeps `p` until no reader that entered before now can see it. Call with mutex() held.
  /// Never throws: out of memory, `p` is leaked rather than freed while it may be in use.
  void retire(void* p, void (*deleter)(void*)) noexcept;
  /// Moves into `out` what retire() kept whose grace period has ended. Call with mutex()
  /// held, and free `out` (free_garbage) after unlocking: the deleters run user destructors.
  /// Throws (std::bad_alloc) only before it has moved anything.
  void reclaim(garbage& out);
  /// leave()'s slow half, on a thread that has just left its outermost dispatch: a cheap
  /// filter, then try_lock (never blocks), reclaim, unlock, free.
  void reclaim_after_leave() noexcept;
  static void free_garbage(garbage& g) noexcept {
    for (auto& r : g) r.deleter(r.p);
    g.clear();
  }
  /// Frees everything retired, grace period or not: only once no reader can be left.
  void free_all() noexcept { free_garbage(retired_); }

  /// The subscription lock: guards the retired list and the table swaps.
  std::mutex& mutex() noexcept { return mutex_; }

 private:
  // Read by every reader on entry (epoch_, asymmetric_) and exit (reclaim_due_); written by
  // writers only. reclaim_due_: the epoch of the oldest retired pointer, 0 when none (written
  // by retire() and reclaim() under the mutex; read relaxed as a hint).
  alignas(cache_line) std::atomic<std::uint64_t> epoch_{1};
  std::atomic<std::uint64_t> reclaim_due_{0};
  const bool asymmetric_;
  std::atomic<epoch_reader*> readers_{nullptr};  // push-only list

  alignas(cache_line) std::mutex mutex_;
  garbage retired_;
};
static_assert(alignof(epoch_domain) == cache_line,
              "tachyon: the epoch's line is shared by readers with nothing they write");

}  // namespace tachyon::detail
