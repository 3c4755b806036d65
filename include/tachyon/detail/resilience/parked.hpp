// tachyon/detail/resilience/parked.hpp — what an event becomes when it cannot settle in the
// batch that ran it (detail/bus_core.hpp, "failures"): a parked_event that owns its payload,
// the deliveries still owed to it (a retry of one subscription, or, for a delayed event or one
// with a deadline, a run of all its handlers), the timer where deliveries wait to be due, and
// the dead letters. All of it is off the hot path: it is allocated when a handler fails, when
// an event is published with a deadline or a delay, and never otherwise.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <string>
#include <vector>

#include <tachyon/detail/lane/admission.hpp>  // cache_line
#include <tachyon/detail/lane/envelope.hpp>
#include <tachyon/settle.hpp>
#include <tachyon/subscription.hpp>

namespace tachyon::detail {

using release_fn = void (*)(envelope& env) noexcept;

/// Which outcome an event settles in, by precedence (metrics.hpp, event_counts): the highest
/// mark wins. No mark: dispatched.
namespace mark {
inline constexpr std::uint8_t discarded = 1, failed = 2, dead_lettered = 4, expired = 8;
}

/// An event held outside the lanes. Owns the payload (released with the last reference).
struct parked_event {
  parked_event(const envelope& e, release_fn r, std::uint64_t deadline) noexcept
      : env(e), release(r), deadline_ns(deadline) {}

  envelope env;  // the header as published (its real type index) and the payload
  release_fn release;
  std::uint64_t deadline_ns;  // 0: none
  std::atomic<std::uint32_t> refs{1};
  // Deliveries not yet settled, plus one for a run in progress: the event settles when it
  // reaches zero, on whichever thread brings it there.
  std::atomic<std::uint32_t> pending{1};
  std::atomic<std::uint8_t> marks{0};
  // Set (before its first delivery is scheduled) once the event has been counted as waiting
  // (c_parked): its settlement then counts it out again (c_unparked).
  std::atomic<bool> waited{false};
  bool dead_letter_expired = false;  // publish_options::dead_letter_expired
  // publish_options::on_settle: told once, by whichever path settles the event (bus_core's
  // settle_run, or a front delivery discarded or displaced before it ran), after the counts.
  settle_listener* listener = nullptr;

  /// Tells the listener, if any, how the event ended.
  void settled(tachyon::outcome o) const noexcept {
    if (listener != nullptr) [[unlikely]]
      listener->settled(*listener, env.header, o);
  }

  // References: taking one needs no order (the caller holds one already); dropping one is
  // acq_rel, so the last holder's delete comes after every other holder's use.
  void acquire() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
  void release_ref() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      release(env);
      delete this;
    }
  }
  // Marks: each is added before its thread's decrement of `pending` and read after the acq_rel
  // decrement that takes it to zero (settle_run), which orders them all: relaxed would do here.
  std::uint8_t outcome_marks() const noexcept { return marks.load(std::memory_order_acquire); }
  void add_mark(std::uint8_t m) noexcept { marks.fetch_or(m, std::memory_order_acq_rel); }
};

/// One run owed to a parked event: a retry of `target`, or (target null) all its handlers.
/// Holds a reference to the event and to the target.
struct delivery {
  delivery(parked_event* e, subscription_state* t) noexcept : event(e), target(t) {}

  parked_event* event;
  subscription_state* target;  // null: every handler of the type
  std::uint64_t due_ns = 0;
  std::uint64_t order = 0;        // the timer's tie-break: scheduling order
  std::exception_ptr last_error;  // the failure that scheduled it (a retry)
  std::uint8_t attempt = 0;       // meta::attempt of this run
  bool front = false;             // entered through the front door: settles with its batch's counts

  /// Lets go of the target and the event; does not settle anything.
  void dispose() noexcept {
    if (target != nullptr) target->release();
    event->release_ref();
    delete this;
  }
};

/// Deliveries waiting to fall due: one deadline heap per bus, ordered by (due, order). A heap,
/// not a timing wheel: retries are rare next to events, their delays span microseconds to an
/// hour, and a heap is exact at every scale without tuning a tick. One per bus, not per worker:
/// any thread that drains (every worker, and in manual mode whoever polls) fires what is due,
/// so nothing is stranded on a worker that parks or a poller that stops polling. Its mutex is
/// taken only to schedule and to fire; the drain reads one word of it per batch (armed()).
class timer_queue {
 public:
  explicit timer_queue(std::uint32_t capacity) : capacity_(capacity) {}
  ~timer_queue() {
    for (delivery* d : heap_) d->dispose();
  }
  timer_queue(const timer_queue&) = delete;
  timer_queue& operator=(const timer_queue&) = delete;

  /// Anything waiting: the drain's one read per batch (a hint). Relaxed, also where a worker
  /// about to park reads it (bus_core::idle): correct there only because heavy_fence() after its
  /// prepare_wait() is a seq_cst fence, which orders this load after the waiter count, against
  /// changed()'s seq_cst store and the pusher's notify.
  bool armed() const noexcept { return size_.load(std::memory_order_relaxed) != 0; }
  std::size_t size() const noexcept { return size_.load(std::memory_order_relaxed); }

  /// Schedules `d` (takes it). False, with `d` untouched, when full or when `refuse` (a stop
  /// flag, read under the lock so that a stop that empties the timer afterwards sees `d`) is set.
  /// The size is stored seq_cst: a worker about to park reads it after its prepare_wait, so it
  /// sees this delivery or its waker (park_delayed, handle_failures) sees it waiting.
  /// `earliest`: set when `d` is now the first due.
  bool push(delivery* d, const std::atomic<bool>& refuse, bool& earliest) {
    std::lock_guard lock(mutex_);
    // The stop sets the flag before it takes this lock to empty the timer: the lock orders
    // the two, and seq_cst is more than needed (here, in reserve() and in push_reserved()).
    if (refuse.load(std::memory_order_seq_cst) || taken() >= capacity_) return false;
    insert(d);
    earliest = heap_.front() == d;
    return true;
  }
  enum class admission { ok, full, stopped };
  /// Takes a slot for a delivery made afterwards (push_reserved), or says why not.
  admission reserve(const std::atomic<bool>& stopping) {
    std::lock_guard lock(mutex_);
    if (stopping.load(std::memory_order_seq_cst)) return admission::stopped;
    if (taken() >= capacity_) return admission::full;
    ++reserved_;
    changed();
    return admission::ok;
  }
  void unreserve() noexcept {
    std::lock_guard lock(mutex_);
    --reserved_;
    changed();
  }
  /// Fills a slot taken by reserve() (never allocates: the heap's memory is reserved up front).
  /// False, with the slot given up and `d` untouched, when `refuse` is set: a discard that
  /// emptied the timer while the slot was held (read under the lock, as push() does).
  bool push_reserved(delivery* d, const std::atomic<bool>& refuse) noexcept {
    std::lock_guard lock(mutex_);
    --reserved_;
    if (refuse.load(std::memory_order_seq_cst)) {
      // Relaxed: the size only falls; a parker that misses it finds the heap empty under the
      // lock (next_due()) and sleeps without limit, as it would have.
      size_.store(heap_.size() + reserved_, std::memory_order_relaxed);
      return false;
    }
    insert(d);
    return true;
  }
  /// Nothing waits and no slot is held, read under the lock: exact against reserve() for a
  /// caller that set the stop flag reserve() reads before calling this.
  bool empty_now() {
    std::lock_guard lock(mutex_);
    return heap_.empty() && reserved_ == 0;
  }
  /// Puts back a delivery that fell due but could not move on (its lane's door was full),
  /// keeping its place. Never fails: its slot was freed by the pop that took it.
  void put_back(delivery* d) noexcept {
    std::lock_guard lock(mutex_);
    --held_;
    heap_.push_back(d);  // within the capacity reserved up front: never reallocates
    std::push_heap(heap_.begin(), heap_.end(), later);
    changed();
  }
  /// Pops up to `max` deliveries due at `now_ns` (every one, due or not, if `all`), earliest
  /// first, into `out`. Returns how many.
  std::size_t pop_due(std::uint64_t now_ns, bool all, delivery** out, std::size_t max) {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    while (n < max && !heap_.empty() && (all || heap_.front()->due_ns <= now_ns)) {
      std::pop_heap(heap_.begin(), heap_.end(), later);
      out[n++] = heap_.back();
      heap_.pop_back();
    }
    held_ += n;  // their slots stay taken until they move on (moved()) or come back
    changed();
    return n;
  }
  /// `n` deliveries that pop_due() gave out have moved on (into a lane, run, or settled): their
  /// slots are free again.
  void moved(std::size_t n) noexcept {
    if (n == 0) return;
    std::lock_guard lock(mutex_);
    held_ -= n;
  }
  /// The earliest due time, or UINT64_MAX when empty.
  std::uint64_t next_due() {
    std::lock_guard lock(mutex_);
    return heap_.empty() ? UINT64_MAX : heap_.front()->due_ns;
  }
  /// next_due() without the lock, as of the last change: a drainer that is not yet due skips
  /// the lock (an idle worker with a retry pending polls this, not the mutex).
  std::uint64_t next_due_hint() const noexcept { return next_due_.load(std::memory_order_relaxed); }
  /// Reserves the heap's memory for `capacity` entries (the bus's constructor), so that no
  /// scheduling allocates and put_back cannot fail.
  void reserve_memory() { heap_.reserve(capacity_); }

 private:
  /// Slots in use: waiting, reserved for a delayed publish, or popped and not yet moved on.
  std::size_t taken() const noexcept { return heap_.size() + reserved_ + held_; }
  void changed() noexcept {  // under the lock
    size_.store(heap_.size() + reserved_, std::memory_order_seq_cst);
    next_due_.store(heap_.empty() ? UINT64_MAX : heap_.front()->due_ns, std::memory_order_relaxed);
  }
  void insert(delivery* d) noexcept {
    d->order = next_order_++;
    heap_.push_back(d);  // within the reserved capacity: never reallocates
    std::push_heap(heap_.begin(), heap_.end(), later);
    changed();
  }
  static bool later(const delivery* a, const delivery* b) noexcept {
    return a->due_ns != b->due_ns ? a->due_ns > b->due_ns : a->order > b->order;
  }
  std::mutex mutex_;
  std::vector<delivery*> heap_;
  std::uint64_t next_order_ = 0;
  std::uint32_t capacity_;
  std::uint32_t reserved_ = 0;
  std::size_t held_ = 0;  // popped by pop_due, not yet moved on or put back
  alignas(cache_line) std::atomic<std::size_t> size_{0};  // read by the drain, once per batch
  std::atomic<std::uint64_t> next_due_{UINT64_MAX};
  char pad_[cache_line - sizeof(std::atomic<std::size_t>) - sizeof(std::atomic<std::uint64_t>)];
};

/// One entry of the dead letters. Holds a reference to the event and to the subscription.
struct dead_letter_entry {
  parked_event* event = nullptr;
  subscription_state* target = nullptr;  // null: an expired event (all handlers)
  std::uint32_t attempts = 0;
  std::exception_ptr error;
  std::string what;
  std::uint64_t when_ns = 0;
  std::uint64_t id = 0;

  void acquire() const noexcept {
    event->acquire();
    if (target != nullptr) target->acquire();
  }
  void dispose() noexcept {
    if (target != nullptr) target->release();
    event->release_ref();
    event = nullptr;
    target = nullptr;
  }
};

/// The bounded dead-letter queue (config::dead_letter_capacity), oldest first. Cold: a mutex
/// guards it; entries are released outside it (a payload's destructor is the user's code).
class dead_letter_store {
 public:
  explicit dead_letter_store(std::uint32_t capacity) : capacity_(capacity) {}
  ~dead_letter_store() {
    for (auto& e : entries_) e.dispose();
  }
  dead_letter_store(const dead_letter_store&) = delete;
  dead_letter_store& operator=(const dead_letter_store&) = delete;

  bool enabled() const noexcept { return capacity_ != 0; }
  // size_, evicted_: written under the mutex, read for reports (relaxed: the values only).
  std::size_t size() const noexcept { return size_.load(std::memory_order_relaxed); }
  std::uint64_t evicted() const noexcept { return evicted_.load(std::memory_order_relaxed); }

  /// Adds `e` (takes its references), dropping the oldest entry when full. Gives an id.
  void push(dead_letter_entry e) noexcept {
    dead_letter_entry old, lost;
    {
      std::lock_guard lock(mutex_);
      e.id = next_id_++;
      if (entries_.size() >= capacity_) {
        old = std::move(entries_.front());
        entries_.pop_front();
        evicted_.fetch_add(1, std::memory_order_relaxed);
      }
      try {
        entries_.push_back(std::move(e));
      } catch (...) {  // out of memory: the entry is lost, and counted as evicted
        evicted_.fetch_add(1, std::memory_order_relaxed);
        lost = e;
      }
      size_.store(entries_.size(), std::memory_order_relaxed);
    }
    // Outside the lock: a payload's destructor is the user's code.
    if (old.event != nullptr) old.dispose();
    if (lost.event != nullptr) lost.dispose();
  }
  /// Puts back an entry taken out for a replay that failed; it keeps its id and its place by
  /// id (oldest first). Drops the oldest when full, as push() does: that may be the entry put
  /// back itself, when newer ones filled the queue while it was out.
  void put_back(dead_letter_entry e) noexcept {
    dead_letter_entry old, lost;
    {
      std::lock_guard lock(mutex_);
      auto at =
          std::lower_bound(entries_.begin(), entries_.end(), e.id,
                           [](const dead_letter_entry& x, std::uint64_t id) { return x.id < id; });
      try {
        entries_.insert(at, std::move(e));
      } catch (...) {  // out of memory: lost, counted as evicted, released below
        evicted_.fetch_add(1, std::memory_order_relaxed);
        lost = e;
      }
      if (entries_.size() > capacity_) {
        old = std::move(entries_.front());
        entries_.pop_front();
        evicted_.fetch_add(1, std::memory_order_relaxed);
      }
      size_.store(entries_.size(), std::memory_order_relaxed);
    }
    if (old.event != nullptr) old.dispose();
    if (lost.event != nullptr) lost.dispose();
  }
  /// Copies of every entry, each holding its own references (release with dispose()).
  std::vector<dead_letter_entry> copy() const {
    std::lock_guard lock(mutex_);
    std::vector<dead_letter_entry> out(entries_.begin(), entries_.end());
    for (const auto& e : out) e.acquire();
    return out;
  }
  /// Takes out the entries whose ids are in `ids` (sorted) and still present.
  std::vector<dead_letter_entry> take(const std::vector<std::uint64_t>& ids) {
    std::vector<dead_letter_entry> out;
    std::lock_guard lock(mutex_);
    out.reserve(ids.size());
    auto keep = entries_.begin();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (std::binary_search(ids.begin(), ids.end(), it->id)) {
        out.push_back(std::move(*it));
      } else {
        // Not onto itself: a self-move-assigned std::string may come out empty (libstdc++'s
        // does), which lost the `what` of every entry older than the first one taken.
        if (keep != it) *keep = std::move(*it);
        ++keep;
      }
    }
    entries_.erase(keep, entries_.end());
    size_.store(entries_.size(), std::memory_order_relaxed);
    return out;
  }
  /// Moves every entry into `out` (empty; swapping allocates nothing).
  void take_all(std::deque<dead_letter_entry>& out) noexcept {
    std::lock_guard lock(mutex_);
    out.swap(entries_);
    size_.store(0, std::memory_order_relaxed);
  }

 private:
  mutable std::mutex mutex_;
  std::deque<dead_letter_entry> entries_;
  std::uint64_t next_id_ = 1;
  std::uint32_t capacity_;
  std::atomic<std::size_t> size_{0};
  std::atomic<std::uint64_t> evicted_{0};
};

/// Thrown by a breaker's guard instead of calling the handler (caught by the dispatch loop,
/// never seen by users): the delivery is short-circuited.
struct short_circuit_signal {};

}  // namespace tachyon::detail
