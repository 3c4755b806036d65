// tachyon/detail/subscription/waiters.hpp — what bus::wait_for() and bus::request() wait with.
//
// One waiter_table per bus, made on the first wait or request (a bus that never waits has
// none: a null pointer in its waiter_home, and nothing on any hot path). It registers every
// call that waits: a wait_for(), a blocking request(), an asynchronous request(). Each is an
// entry, found by its id (a fresh correlation id, 2^63 + n) in one of 16 lock-striped chained
// hash maps; an asynchronous request is also in its stripe's deadline heap.
//
// Exactly once. Every party that can finish an entry (the reply's dispatch, wait_for's
// subscription, the timeout thread, the waiting thread at its timeout, stop(), a request whose
// publish was refused) first takes the entry out of its stripe under the stripe's mutex, and
// only a take that finds it still in (in_table true, then false) goes on to finish it. An entry
// is put in once, so in_table goes from true to false once: one taker, whatever the timing of
// a reply against a timeout. The loser finds nothing and does nothing.
//
// Lifetimes. A blocking entry lives on its waiting thread's stack: the waiter leaves only once
// it took the entry itself, or saw the taker's `delivered` store, which is the taker's last
// touch of it (its wake-up goes to the table's wait_point, not the entry's). An asynchronous
// entry is on the heap with two references, the requester's (dropped when request() returns)
// and the table's (dropped by whoever finishes it), because a reply may finish it before
// request() has armed it.
//
// Arming. An asynchronous request is inserted unarmed before its publish (a fast reply must
// find it) and armed after the publish returned ok. Only the reply can take an unarmed entry;
// the timeout thread and stop() take armed ones. So a request whose publish is refused takes
// its own entry back and its callback never runs (barring a reply forged with its id).
//
// Memory ordering: an entry's fields are guarded by its stripe's mutex while in the table and
// owned by the taker after; a blocking waiter reads its value after an acquire load of
// `delivered` that the taker stored (seq_cst, paired with the wait_point's protocol). Ids come
// from one relaxed fetch_add per call.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <tachyon/detail/alloc.hpp>
#include <tachyon/detail/lane/admission.hpp>  // cache_line
#include <tachyon/detail/worker/parking.hpp>
#include <tachyon/meta.hpp>
#include <tachyon/subscription.hpp>

namespace tachyon::detail {

/// Request ids are request_id_base + n, n counting from 1 per bus: correlation ids that users
/// choose below 2^63 never meet them, and the replies subscription rejects every event whose
/// correlation id is below it with one compare.
inline constexpr std::uint64_t request_id_base = std::uint64_t{1} << 63;
/// The type of a wait_for() entry: no reply type, so a reply's look-up never takes it.
inline constexpr std::uint16_t no_reply_type = UINT16_MAX;

/// Now on the steady clock, in nanoseconds since its epoch.
inline std::uint64_t steady_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}
/// steady_ns() + timeout, saturating at UINT64_MAX (never); a timeout <= 0 is now.
std::uint64_t deadline_ns_after(std::chrono::nanoseconds timeout) noexcept;

class waiter_table;

/// What an asynchronous request's on_reply must be: callable as f(const Reply*).
template <class F, class Reply>
concept reply_callback = std::is_invocable_v < std::decay_t<F>
&, const Reply* > ;

/// One waiting call. See the top of this file for who takes it and when.
struct waiter_entry {
  enum class kind : std::uint8_t { wait, blocking, async };
  /// Finishes a taken entry: `reply` is the reply event (a T), or null when none came (the
  /// timeout, stop()). Called once, by the taker. Only the reply path may throw (an
  /// asynchronous request's on_reply): the replies subscription's failure.
  using complete_fn = void (*)(waiter_table& t, waiter_entry& e, const void* reply);

  waiter_entry(std::uint64_t i, kind k, std::uint16_t t, complete_fn c) noexcept
      : id(i), complete(c), type(t), what(k) {}
  waiter_entry(const waiter_entry&) = delete;
  waiter_entry& operator=(const waiter_entry&) = delete;

  const std::uint64_t id;
  const complete_fn complete;
  std::uint64_t deadline_ns = UINT64_MAX;  // asynchronous requests: when the timeout takes it
  const std::uint16_t type;                // the reply's registry index, or no_reply_type
  const kind what;
  // Guarded by the stripe's mutex.
  bool in_table = false;
  bool counted = false;  // in pending(): a wait_for() once its subscription is in
  bool armed = false;    // asynchronous: the timeout thread and stop() may take it
  std::uint32_t heap_index = UINT32_MAX;
  waiter_entry* next = nullptr;  // the bucket's chain; the taker's list once taken
  /// Set when taken: wait_for's handler skips its predicate once the wait is over. A hint; the
  /// take decides.
  std::atomic<bool> taken{false};
};

/// The entry of a wait_for() or a blocking request(), on its waiting thread's stack: the taker
/// copies the event in (or the exception its copy, or the predicate, threw) and says so.
template <class T>
struct blocking_waiter final : waiter_entry {
  blocking_waiter(std::uint64_t i, kind k, std::uint16_t t) noexcept
      : waiter_entry(i, k, t, &deliver) {}

  static void deliver(waiter_table& t, waiter_entry& e, const void* reply);

  // What the taker writes, on a line apart from the entry's bookkeeping: the waiting thread
  // spins on `delivered`, and pulls only this line back from the taker's core (with the value
  // when it fits).
  alignas(cache_line) std::atomic<std::uint32_t> delivered{0};
  std::optional<T> value;
  std::exception_ptr error;
};

/// The entry of an asynchronous request(): holds on_reply until it has run.
template <class Reply, class F>
struct async_waiter final : waiter_entry {
  async_waiter(std::uint64_t i, std::uint16_t t, priority reply_lane, subscription_state* h, F&& f)
      : waiter_entry(i, kind::async, t, &finish),
        on_reply(std::move(f)),
        lane(reply_lane),
        hub(h) {}
  async_waiter(std::uint64_t i, std::uint16_t t, priority reply_lane, subscription_state* h,
               const F& f)
      : waiter_entry(i, kind::async, t, &finish), on_reply(f), lane(reply_lane), hub(h) {}

  /// Runs on_reply once, then drops the table's reference. On the reply path a throw of
  /// on_reply goes on (the replies subscription's failure: counted, the error hook told);
  /// with no reply there is no event to fail, so it goes to the error hook and the replies
  /// subscription's error count only.
  static void finish(waiter_table& t, waiter_entry& e, const void* reply);

  void release() noexcept {  // acq_rel: the last holder's delete after every holder's use
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // Through tachyon's allocator (mimalloc): the entry is often freed on the thread that
  // dispatched the reply, not the one that made it, which mimalloc takes without a lock.
  static void* operator new(std::size_t size) { return allocate(size, alignof(async_waiter)); }
  static void operator delete(void* p) noexcept { deallocate(p); }

  F on_reply;
  std::atomic<std::uint8_t> refs{2};  // the requester's and the table's
  const priority lane;                // the reply type's default lane, for the error hook
  subscription_state* const hub;      // the replies subscription of the reply type
};

/// The registered waits of one bus. All of it is cold except take_reply(), which a reply
/// event of a type that has had requests pays: one compare for correlation ids below 2^63,
/// else one uncontended stripe lock and a short chain walk.
class waiter_table {
 public:
  static constexpr std::size_t stripe_count = 16;

  /// `types`: the registry's size (one replies subscription per reply type, made on demand).
  /// `on_error`: the bus's error hook (config::on_error), for a throw of on_reply(nullptr).
  waiter_table(std::size_t types, const std::function<void(const handler_error&)>* on_error);
  /// Stops the timeout thread; close() has run (the bus's destructor calls shutdown()).
  ~waiter_table();
  waiter_table(const waiter_table&) = delete;
  waiter_table& operator=(const waiter_table&) = delete;

  /// A fresh id: request_id_base + n.
  std::uint64_t next_id() noexcept {
    return request_id_base | next_id_.fetch_add(1, std::memory_order_relaxed);
  }

  /// Registers `e` (unarmed; in pending() if `counted`, else from count_in()). False, with
  /// nothing registered, once the table is closed (the bus stopped). Allocates when its stripe
  /// grows: std::bad_alloc, with nothing registered.
  bool insert(waiter_entry& e, bool counted = true);
  /// A wait_for() whose subscription is in: pending() counts it from now on (so that a test,
  /// or a user, that sees it counted knows the events it publishes next will be seen).
  void count_in(waiter_entry& e) noexcept;
  /// Takes `e` out if it is still in: true when this call took it. The caller then finishes
  /// it, or (a refused publish) lets it go.
  bool take(waiter_entry& e) noexcept;
  /// Takes out the request with this id that waits for a reply of registry index `type`, if
  /// there is one (the replies subscription's look-up).
  waiter_entry* take_reply(std::uint64_t id, std::uint16_t type) noexcept;
  /// An asynchronous request whose publish returned ok: from now on its timeout and stop()
  /// may take it. If stop() closed the table meanwhile it is finished here, with no reply.
  /// The caller holds its own reference to `e`.
  void arm(waiter_entry& e) noexcept;
  /// stop() has finished (or the bus goes): takes every entry but unarmed ones (their
  /// requesters finish them in arm()) and finishes each with no reply, on this thread; later
  /// inserts are refused. Idempotent.
  void close() noexcept;
  /// close(), then ends the timeout thread. Not from on_reply on the timeout thread.
  void shutdown() noexcept;

  /// Starts the timeout thread, named tachyon-timeout, if it is not running: the first
  /// asynchronous request does. Throws std::system_error if it cannot start.
  void start_reaper() {
    // Only the flag is read (the slow path decides under its mutex): relaxed would do.
    if (!reaper_started_.load(std::memory_order_acquire)) [[unlikely]]
      start_reaper_slow();
  }

  /// Waits until `flag` is set (signal()) or `deadline_ns` passes (UINT64_MAX: no limit):
  /// spins for `spin` first, then sleeps on the wait_point of id's stripe. Returns whether
  /// the flag was set.
  bool await(const std::atomic<std::uint32_t>& flag, std::uint64_t id, std::uint64_t deadline_ns,
             std::chrono::nanoseconds spin) noexcept;
  /// Sets `flag` (the taker's last touch of a blocking entry) and wakes its stripe's sleepers.
  void signal(std::atomic<std::uint32_t>& flag, std::uint64_t id) noexcept {
    wait_point& wp = wakes_[id % stripe_count].point;
    flag.store(1, std::memory_order_seq_cst);
    wp.notify_all();
  }

  /// Calls still waiting now (a snapshot).
  std::size_t pending() const noexcept;

  /// The replies subscription of registry index `type`, or null before its first request.
  /// Acquire, paired with set_hub()'s release: the subscription is whole.
  subscription_state* hub(std::size_t type) const noexcept {
    return hubs_[type].load(std::memory_order_acquire);
  }
  /// Held while a replies subscription is made, so that a type gets one.
  std::mutex& hub_mutex() noexcept { return hub_mutex_; }
  /// Records the replies subscription of `type` (takes the handle's reference to `s`).
  void set_hub(std::size_t type, subscription_state* s) noexcept {
    hubs_[type].store(s, std::memory_order_release);
  }

  /// A throw of on_reply(nullptr): counted in the replies subscription's errors, told to the
  /// error hook (whose own throw is swallowed).
  void report(const handler_error& error, subscription_state* hub) noexcept;

 private:
  struct alignas(cache_line) stripe {
    std::mutex mutex;
    std::vector<waiter_entry*> buckets;  // chains; a power of two in size
    std::vector<waiter_entry*> heap;     // armed asynchronous entries, earliest deadline first
    std::size_t entries = 0;             // in the chains
    std::size_t async_entries = 0;       // armed or not: the heap's reserved room
    std::atomic<std::size_t> count{0};   // counted entries; written under the mutex, released
  };
  struct alignas(cache_line) wake {
    wait_point point;
  };

  stripe& stripe_of(std::uint64_t id) noexcept { return stripes_[id % stripe_count]; }
  static std::size_t bucket_of(const stripe& s, std::uint64_t id) noexcept {
    return (id / stripe_count) & (s.buckets.size() - 1);
  }
  /// Takes `e` out of stripe `s` (locked): its chain, its heap slot, the counts.
  void unlink(stripe& s, waiter_entry& e) noexcept;
  static void heap_push(stripe& s, waiter_entry& e) noexcept;
  static void heap_erase(stripe& s, waiter_entry& e) noexcept;
  static void sift_up(stripe& s, std::size_t i) noexcept;
  static void sift_down(stripe& s, std::size_t i) noexcept;
  /// Finishes each entry of the taker's list with no reply.
  void finish_none(waiter_entry* list) noexcept;
  void start_reaper_slow();
  void reaper_main();

  std::array<stripe, stripe_count> stripes_;
  std::array<wake, stripe_count> wakes_;
  std::atomic<std::uint64_t> next_id_{1};
  std::atomic<bool> closed_{false};

  std::unique_ptr<std::atomic<subscription_state*>[]> hubs_;
  std::size_t types_;
  std::mutex hub_mutex_;
  const std::function<void(const handler_error&)>* on_error_;

  // The timeout thread: sleeps until the earliest armed deadline of any stripe. reaper_next_
  // is that deadline, 0 while it scans; arm() wakes it for an earlier one.
  std::mutex reaper_mutex_;  // guards starting and joining it
  std::thread reaper_;
  wait_point reaper_wake_;
  std::atomic<std::uint64_t> reaper_next_{UINT64_MAX};
  std::atomic<std::uint64_t> reaper_last_due_{0};  // the latest deadline armed (a hint)
  std::atomic<bool> reaper_exit_{false};
  std::atomic<bool> reaper_started_{false};
};

/// What a bus holds: the table, made on first use. Cold; one line.
class alignas(cache_line) waiter_home {
 public:
  waiter_home() = default;
  ~waiter_home();
  waiter_home(const waiter_home&) = delete;
  waiter_home& operator=(const waiter_home&) = delete;

  /// The table, made on the first call (allocates; under a mutex). A table made after close()
  /// starts closed.
  waiter_table& table(std::size_t types,
                      const std::function<void(const handler_error&)>* on_error) {
    // Acquire, paired with make()'s release: the table is whole.
    if (waiter_table* t = table_.load(std::memory_order_acquire)) [[likely]]
      return *t;
    return make(types, on_error);
  }
  /// stop() has finished: pending waits end with nothing, later ones are refused.
  void close() noexcept;
  /// The bus goes: close(), and the timeout thread ends.
  void shutdown() noexcept;
  /// Calls still waiting now (a snapshot); 0 without a table.
  std::size_t pending() const noexcept {
    const waiter_table* t = table_.load(std::memory_order_acquire);
    return t == nullptr ? 0 : t->pending();
  }

 private:
  waiter_table& make(std::size_t types, const std::function<void(const handler_error&)>* on_error);

  std::atomic<waiter_table*> table_{nullptr};
  std::mutex mutex_;     // guards making the table and closed_
  bool closed_ = false;  // guarded by mutex_
};

/// Ends a blocking wait so that nothing refers to its entry afterwards, however the scope ends:
/// settle() takes the entry back (nothing came: its value stays empty), or, if another party
/// took it, waits for that party's signal (without limit: it is only copying the event in).
template <class T>
class blocking_scope {
 public:
  blocking_scope(waiter_table& t, blocking_waiter<T>& e) noexcept : table_(t), entry_(e) {}
  ~blocking_scope() { settle(); }
  blocking_scope(const blocking_scope&) = delete;
  blocking_scope& operator=(const blocking_scope&) = delete;

  void settle() noexcept {
    if (settled_) return;
    settled_ = true;
    // Delivered: its taker is done with it (only a taker signals), no lock needed.
    if (entry_.delivered.load(std::memory_order_acquire) != 0) return;
    if (!table_.take(entry_)) table_.await(entry_.delivered, entry_.id, UINT64_MAX, {});
  }

 private:
  waiter_table& table_;
  blocking_waiter<T>& entry_;
  bool settled_ = false;
};

/// The requester's reference to its asynchronous entry, dropped when request() returns.
template <class Entry>
class requester_ref {
 public:
  explicit requester_ref(Entry* e) noexcept : entry_(e) {}
  ~requester_ref() {
    if (entry_ != nullptr) entry_->release();
  }
  requester_ref(const requester_ref&) = delete;
  requester_ref& operator=(const requester_ref&) = delete;

  /// The entry never reached anyone else (not registered, or taken back before anyone
  /// finished it): both references are ours, and it goes now, its on_reply never called.
  void take_back() noexcept {
    delete entry_;
    entry_ = nullptr;
  }

 private:
  Entry* entry_;
};

template <class T>
void blocking_waiter<T>::deliver(waiter_table& t, waiter_entry& e, const void* reply) {
  auto& w = static_cast<blocking_waiter&>(e);
  if (reply != nullptr) {
    try {
      w.value.emplace(*static_cast<const T*>(reply));
    } catch (...) {  // T's copy threw: the waiting thread rethrows it
      w.error = std::current_exception();
    }
  }
  t.signal(w.delivered, w.id);
}

template <class Reply, class F>
void async_waiter<Reply, F>::finish(waiter_table& t, waiter_entry& e, const void* reply) {
  auto& self = static_cast<async_waiter&>(e);
  struct drop_table_ref {
    async_waiter* w;
    ~drop_table_ref() { w->release(); }
  } guard{&self};
  if (reply != nullptr) {
    self.on_reply(static_cast<const Reply*>(reply));
    return;
  }
  try {
    self.on_reply(static_cast<const Reply*>(nullptr));
  } catch (...) {
    meta m;
    m.correlation_id = self.id;
    m.type_index = self.type;
    m.lane = self.lane;
    t.report(handler_error{m, detail::type_name<Reply>(), std::current_exception(), self.hub->name,
                           nullptr},
             self.hub);
  }
}

}  // namespace tachyon::detail
