// tachyon/detail/bus_core.hpp — the untyped machinery behind tachyon::bus<Registry>: lanes,
// per-thread contexts, the worker pool, parking, stop, reclamation and metrics. The typed
// front (bus.hpp) adds the registry, handler tables, publish and dispatch; what is compiled
// once lives in src/bus_core.cpp. Users never name anything here.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include <concurrentqueue/concurrentqueue.h>

#include <tachyon/clock.hpp>
#include <tachyon/config.hpp>
#include <tachyon/detail/alloc.hpp>
#include <tachyon/detail/envelope.hpp>
#include <tachyon/detail/fence.hpp>
#include <tachyon/detail/lane/admission.hpp>
#include <tachyon/detail/parking.hpp>
#include <tachyon/meta.hpp>
#include <tachyon/metrics.hpp>
#include <tachyon/result.hpp>

namespace tachyon {

/// What stop() does with the events still queued.
enum class stop_mode : std::uint8_t {
  drain,    ///< run them all, then join the workers (the default, also the destructor's)
  discard,  ///< run none of them: release them, count them in `discarded`, join
};

namespace detail {

/// moodycamel tuned for tachyon: explicit producers only (every publisher has a token),
/// 64-envelope blocks (4 KiB), and every allocation through detail::allocate (mimalloc).
struct lane_traits : moodycamel::ConcurrentQueueDefaultTraits {
  static constexpr std::size_t BLOCK_SIZE = 64;
  static constexpr std::size_t INITIAL_IMPLICIT_PRODUCER_HASH_SIZE = 0;
  static void* malloc(std::size_t n) {
    void* p = allocate_or_null(n, alignof(std::max_align_t));
    if (p == nullptr) [[unlikely]]
      allocation_failed = true;
    return p;
  }
  static void free(void* p) { deallocate(p); }
  /// Set when an allocation on this thread failed. moodycamel's constructor does not report
  /// that it could not reserve its blocks (it leaves the pool empty); the bus checks this.
  static inline thread_local bool allocation_failed = false;
};

using lane_queue = moodycamel::ConcurrentQueue<envelope, lane_traits>;

/// moodycamel's Block (concurrentqueue.h) is private: this mirrors its layout for lane_traits
/// and envelope, so that what a lane reserves is known before it is reserved.
/// Config.ReservationIsWhatMoodycamelAllocates checks it against the queue's real allocation.
struct mirrored_block {
  alignas(envelope) std::byte elements[sizeof(envelope) * lane_traits::BLOCK_SIZE];
  void* next;
  std::atomic<std::size_t> elements_completely_dequeued;
  std::atomic<bool>
      empty_flags[lane_traits::BLOCK_SIZE <= lane_traits::EXPLICIT_BLOCK_EMPTY_COUNTER_THRESHOLD
                      ? lane_traits::BLOCK_SIZE
                      : 1];
  std::atomic<std::uint32_t> free_list_refs;
  std::atomic<void*> free_list_next;
  std::atomic<bool> should_be_on_free_list;
  bool dynamically_allocated;
};

/// Bytes that one lane's queue, lane_queue(capacity, producers, 0), allocates when it is
/// constructed: one array of (ceil(capacity / BLOCK_SIZE) - 1) x (producers + 1) + 2 x
/// producers blocks, plus the padding moodycamel adds to over-align it.
constexpr std::uint64_t lane_reservation_bytes(std::uint64_t capacity,
                                               std::uint64_t producers) noexcept {
  constexpr std::uint64_t b = lane_traits::BLOCK_SIZE;
  const std::uint64_t blocks = ((capacity + b - 1) / b - 1) * (producers + 1) + 2 * producers;
  constexpr std::uint64_t pad = alignof(mirrored_block) > alignof(std::max_align_t)
                                    ? alignof(mirrored_block) - 1 + sizeof(void*)
                                    : 0;
  return blocks == 0 ? 0 : blocks * sizeof(mirrored_block) + pad;
}

/// What the four lanes of a bus with this configuration reserve (see make_lanes).
constexpr std::uint64_t reserved_bytes(const config& cfg) noexcept {
  return priority_count *
         lane_reservation_bytes(cfg.lane_capacity, std::uint64_t{cfg.producers} + cfg.workers);
}

/// One priority lane: the queue, and the admission that keeps its exact bound (moodycamel's
/// own bound is per producer and block-granular), with the publishers blocked on it.
struct alignas(cache_line) lane {
  lane(std::size_t prealloc_events, std::size_t producers, std::uint32_t capacity,
       std::uint32_t reentry_capacity, bool asymmetric)
      : queue(prealloc_events, producers, 0), admission(capacity, reentry_capacity, asymmetric) {}

  lane_queue queue;
  lane_admission admission;
  alignas(cache_line) event_count room;  // publishers blocked on a full lane sleep here
};

/// Counter kinds: one cache line (8 counters) per row.
enum counter : std::uint8_t {
  c_accepted,
  c_dispatched,
  c_failed,
  c_dropped,
  c_discarded,
  c_rejected_full,
  c_rejected_stopped,
  c_handler_errors,
  counter_kinds
};
enum misc_counter : std::uint8_t { m_batches, m_batched_events, m_lane_allocations, m_parks };

struct alignas(cache_line) counter_row {
  std::atomic<std::uint64_t> v[counter_kinds];
};
static_assert(sizeof(counter_row) == cache_line);

/// One dispatching thread's latency histograms (config::latency_histograms), per lane and per
/// type, each made on its first record; defined in src/bus_core.cpp.
struct latency_set;

/// Written by one thread only: a relaxed load and store, no locked instruction.
inline void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

/// Everything one thread keeps per bus: moodycamel tokens, counter rows, its reader epoch.
/// Created on the thread's first use of the bus; handed to a new thread when its thread ends.
struct thread_context {
  thread_context(std::uint32_t id, std::array<lane, priority_count>& lanes, std::size_t types);
  ~thread_context();
  thread_context(const thread_context&) = delete;
  thread_context& operator=(const thread_context&) = delete;

  counter_row& lane_row(unsigned l) noexcept { return rows[l]; }
  counter_row& type_row(std::size_t t) noexcept { return rows[priority_count + t]; }
  counter_row& misc_row() noexcept { return rows[priority_count + types]; }
  /// dispatch() calls that ran every handler without a throw, per type, 8 types to a row.
  /// Counted once here instead of accepted + dispatched in both the lane and the type row
  /// (dispatch() always uses the type's default lane); metrics() adds them back to all four.
  std::atomic<std::uint64_t>& sync_ok(std::size_t t) noexcept {
    return rows[priority_count + types + 1 + t / counter_kinds].v[t % counter_kinds];
  }
  static std::size_t row_count(std::size_t types) noexcept {
    return priority_count + types + 1 + (types + counter_kinds - 1) / counter_kinds;
  }

  /// Every event count goes to its lane's row and its type's row.
  void count(unsigned l, std::size_t t, counter k, std::uint64_t n = 1) noexcept {
    bump(lane_row(l).v[k], n);
    bump(type_row(t).v[k], n);
  }

  /// The next event's sequence (see meta::sequence): the context id in the low 16 bits, a
  /// count above that wraps by itself after 2^48 events without touching the id.
  std::uint64_t take_sequence() noexcept {
    const std::uint64_t s = next_sequence;
    next_sequence += sequence_step;
    return s;
  }
  static constexpr std::uint64_t sequence_step = std::uint64_t{1} << 16;

  // Owner-only state.
  std::uint64_t next_sequence;  // see take_sequence()
  std::uint32_t depth = 0;      // dispatch nesting on this thread
  std::size_t types;
  counter_row* rows;  // [lanes][types][misc][sync_ok], see lane_row .. sync_ok
  envelope* drain_buffer = nullptr;
  std::uint32_t drain_buffer_size = 0;
  std::uint32_t batch_failed = 0;  // events of the running batch that settled as failed
  // Hot lane (consumers): the lane last drained, polled without its hint for a while; see
  // bus_core::drain_batch. hot_lane == priority_count: none.
  unsigned hot_lane = priority_count;
  std::uint32_t hot_misses = 0;
  std::array<std::optional<moodycamel::ProducerToken>, priority_count> producer;
  std::array<std::optional<moodycamel::ConsumerToken>, priority_count> consumer;

  envelope scratch;  // publish() builds trivially copyable events here; see bus_core::publish

  // Written by the owner, read by others (revokers, the park check, stop, metrics).
  alignas(cache_line) std::array<credit_account, priority_count> credits;  // per lane

  // Written by the owner, read by others: its own line.
  alignas(cache_line) std::atomic<std::uint64_t> reader_epoch{0};  // 0: not dispatching
  // Events dequeued and not yet finished, << 2, | their lane (a batch comes from one lane).
  std::atomic<std::uint32_t> in_hand{0};

  // config::latency_histograms: made by the owner on its first timed batch (release), read by
  // metrics() (acquire). Null with the option off.
  std::atomic<latency_set*> latency{nullptr};

  // Registry bookkeeping (cold).
  std::atomic<bool> owned{true};
  thread_context* next = nullptr;
};

/// Runs a drained envelope's handlers, settles it (bus_core::settle) and releases its payload.
using dispatch_fn = void (*)(void* bus, envelope& env, thread_context& ctx);
using release_fn = void (*)(envelope& env) noexcept;

/// What the typed bus tells the core about its registry.
struct type_table {
  const dispatch_fn* dispatch;
  const release_fn* release;
  const std::string_view* names;
  const std::uint8_t* lanes;  // each type's default lane
  std::size_t count;
};

/// The bus's identity for threads' context caches; ids are never reused.
struct tls_cache_entry {
  std::uint64_t bus_id = 0;
  thread_context* ctx = nullptr;
};
extern constinit thread_local tls_cache_entry tls_last_context;

struct context_anchor;  // outlives the bus while threads still hold its contexts

/// Declared, never defined by the library: a test may define it to reach a bus's core (the
/// re-entry door, injected sequence values) without widening the public API.
struct bus_access;

class alignas(cache_line) bus_core {
 public:
  bus_core(const config& cfg, type_table types, void* typed_bus);
  ~bus_core();
  bus_core(const bus_core&) = delete;
  bus_core& operator=(const bus_core&) = delete;

  /// Starts the workers; throws (after joining what started) if one cannot be pinned.
  void start();

  /// This thread's context for this bus: one compare on the fast path.
  thread_context& context() {
    if (tls_last_context.bus_id == id_) [[likely]]
      return *tls_last_context.ctx;
    return context_slow();
  }

  // ---- publish -----------------------------------------------------------------------------

  /// The whole publish path but the payload: admit the event under the lane's bound (or apply
  /// the overflow policy), stamp the header, enqueue with this thread's token, count, wake a
  /// worker. `fill(envelope&)` stores the payload; it runs only once the event is admitted.
  /// `plain_copy`: fill() is a memcpy-like store that cannot call back into the bus, so the
  /// envelope is built in the context's scratch slot (already 64-byte aligned, on a line this
  /// thread owns) instead of a stack slot that would make every publish realign its frame.
  template <bool plain_copy = false, class Fill>
  result publish(unsigned l, std::uint16_t type, std::uint64_t correlation, Fill&& fill) {
    thread_context& ctx = context();
    lane& ln = lanes_[l];
    moodycamel::ProducerToken& token = producer_token(ctx, l);  // may allocate: before admitting
    bool stopped = false;
    // The admission is the linearisation point against stop(): try_admit reads stopping_ after
    // the admission is visible (stop() pairs with a heavy fence), so an admitted event is
    // always drained.
    if (!lane_admission::try_admit(ctx.credits[l], 1, asymmetric_, stopping_, stopped))
        [[unlikely]] {
      const result r = admit_one(ctx, l, type, stopped);
      if (r != result::ok) return r;
    }
    unstamped<plain_copy ? 0 : 1> slot;
    envelope& env = plain_copy ? ctx.scratch : slot.at[0];
    stamp(ctx, env, l, type, correlation, cfg_.timestamps ? clock::now() : 0);
    try {
      fill(env);
    } catch (...) {  // the event's move constructor or the box's allocation threw
      lane_admission::cancel(ctx.credits[l], 1);
      throw;
    }
    if (!ln.queue.try_enqueue(token, env)) [[unlikely]]
      enqueue_growing(ctx, ln, &env, 1);
    commit(ctx, l, type, 1);
    return result::ok;
  }

  struct bulk_outcome {
    std::size_t queued = 0;
    std::size_t dropped = 0;
    result status = result::ok;
  };

  /// publish() for `n` events of one type, admitting and enqueueing up to 64 at a time (one
  /// admission and one moodycamel bulk enqueue per chunk). `fill(envelope&, i)` stores event i.
  /// Stops at the first refusal (full or stopped). If `fill` throws, the events of that chunk
  /// are released and not queued, and publish_batch_error says how many earlier ones were.
  template <class Fill>
  bulk_outcome publish_bulk(unsigned l, std::uint16_t type, std::size_t n, Fill&& fill) {
    constexpr std::uint32_t chunk = lane_admission::max_chunk;
    thread_context& ctx = context();
    lane& ln = lanes_[l];
    moodycamel::ProducerToken& token = producer_token(ctx, l);  // may allocate: before admitting
    bulk_outcome out;
    unstamped<chunk> slots;  // 4 KiB of stack
    envelope* buf = slots.at;
    std::size_t i = 0;
    while (i < n) {
      const auto want = static_cast<std::uint32_t>(std::min<std::size_t>(n - i, chunk));
      bool stopped = false;
      std::uint32_t k = admit_some(ctx, l, want, stopped);
      if (k == 0) {
        const result r = admit_one(ctx, l, type, stopped, n - i);
        if (r == result::dropped) {
          ++out.dropped;
          ++i;
          continue;
        }
        if (r != result::ok) {
          out.status = r;
          return out;
        }
        k = 1;  // admit_one admitted one event
      }
      std::uint32_t j = 0;
      // One clock read per chunk: the events of one call are published at one instant.
      const std::uint64_t ticks = cfg_.timestamps ? clock::now() : 0;
      try {
        for (; j < k; ++j) {
          stamp(ctx, buf[j], l, type, 0, ticks);
          fill(buf[j], i + j);
        }
      } catch (...) {
        for (std::uint32_t q = 0; q < j; ++q) types_.release[type](buf[q]);
        lane_admission::cancel(ctx.credits[l], k);
        throw_batch_error(out.queued, out.dropped);
      }
      if (!ln.queue.try_enqueue_bulk(token, buf, k)) [[unlikely]]
        enqueue_growing(ctx, ln, buf, k);
      commit(ctx, l, type, k);
      out.queued += k;
      i += k;
    }
    return out;
  }

  /// This thread's moodycamel producer in lane l, made on its first publish there: a lane has
  /// producers only for threads that publish into it, which keeps its dequeue scan short.
  /// Throws std::bad_alloc if moodycamel cannot allocate the producer.
  moodycamel::ProducerToken& producer_token(thread_context& ctx, unsigned l) {
    if (!ctx.producer[l]) [[unlikely]]
      make_producer_token(ctx, l);
    return *ctx.producer[l];
  }

  void stamp(thread_context& ctx, envelope& env, unsigned l, std::uint16_t type,
             std::uint64_t correlation, std::uint64_t ticks) noexcept {
    env.header.sequence = ctx.take_sequence();
    env.header.correlation_id = correlation;
    env.header.causation_id = 0;
    env.header.publish_ticks = ticks;
    env.header.type_index = type;
    env.header.lane = static_cast<priority>(l);
    env.header.attempt = 0;
    env.header.flags = 0;
  }

  /// Counts `n` enqueued events and wakes a worker if one sleeps. Only the type's row: the
  /// lane's `accepted` is the sum of its accounts' `used` (metrics()), which the admission
  /// already wrote.
  void commit(thread_context& ctx, unsigned, std::uint16_t type, std::uint32_t n) noexcept {
    bump(ctx.type_row(type).v[c_accepted], n);
    work_.notify_one();
  }

  /// Admits up to `want` events from this thread into lane l: what its credits cover,
  /// refilling from the pool (or by revoking idle credits) when they cover none. Returns how
  /// many; 0 when the lane is full, or with `stopped` set when stop() has begun.
  std::uint32_t admit_some(thread_context& ctx, unsigned l, std::uint32_t want, bool& stopped);

  /// The slow half of publish when try_admit found no credit: refills, and on a full lane
  /// applies the overflow policy. Returns ok once one event is admitted; otherwise the result
  /// to hand back, with `refused` events counted as rejected (full, stopped) or one event as
  /// accepted and dropped (drop).
  result admit_one(thread_context& ctx, unsigned l, std::uint16_t type, bool stopped,
                   std::size_t refused = 1);

  /// Calls f(credit_account&) for every thread's account in lane l.
  auto accounts(unsigned l) const noexcept {
    return [this, l](auto&& f) {
      for (auto* c = contexts_.load(std::memory_order_acquire); c != nullptr; c = c->next)
        f(c->credits[l]);
    };
  }
  /// Events admitted into lane l and not yet dequeued. Exact when quiet; after a heavy_fence,
  /// counts every admission that a publisher's stopping_ check did not refuse.
  std::uint64_t occupancy(unsigned l) const noexcept;

  /// Re-enters an event into its lane through the second door: it takes none of the
  /// publishers' room, but the door is bounded (config::reentry_capacity). Returns false, with
  /// the envelope untouched, when the door is full or stop() has begun. The envelope keeps its
  /// header (sequence, correlation); its attempt count goes up and it is marked reentered.
  bool reenter(envelope& env);

  /// try_enqueue failed: more publishing threads than config::producers. Allocates; counted
  /// in lane_allocations. Throws std::bad_alloc (after releasing the events) if that fails.
  void enqueue_growing(thread_context& ctx, lane& ln, envelope* envs, std::uint32_t n);
  void make_producer_token(thread_context& ctx, unsigned l);
  [[noreturn]] static void throw_batch_error(std::size_t queued, std::size_t dropped);

  // ---- dispatch ----------------------------------------------------------------------------

  /// Marks this thread as reading handler tables (nestable). The announcement must be ordered
  /// before the table loads that follow: a compiler barrier here, paired with the membarrier
  /// that synchronize() and reclaim() issue before they read any announcement (fence.hpp), or
  /// a full fence on both sides where membarrier is unavailable.
  void enter_dispatch(thread_context& ctx) noexcept {
    if (ctx.depth++ == 0) {
      ctx.reader_epoch.store(epoch_.load(std::memory_order_acquire), std::memory_order_relaxed);
      light_fence(asymmetric_);
    }
  }
  /// Leaving the outermost dispatch is a grace period for this thread: if something is
  /// retired (one relaxed load of a line readers only read, the epoch's), try to free it.
  void exit_dispatch(thread_context& ctx) noexcept {
    if (--ctx.depth == 0) {
      ctx.reader_epoch.store(0, std::memory_order_release);
      if (reclaim_due_.load(std::memory_order_relaxed) != 0) [[unlikely]]
        reclaim_after_dispatch();
    }
  }

  /// The settle point: where a drained event's final outcome is decided and counted, once,
  /// while its payload is still alive. Today the outcome is dispatched (every handler ran
  /// without a throw, or none matched) or failed. The type's row is counted here; the lane's
  /// row with the batch (drain_batch), so that it moves with the in-flight mark.
  static void settle(thread_context& ctx, const envelope& env, bool ok) noexcept {
    if (ok) [[likely]] {
      bump(ctx.type_row(env.header.type_index).v[c_dispatched]);
    } else {
      bump(ctx.type_row(env.header.type_index).v[c_failed]);
      ++ctx.batch_failed;
    }
  }

  /// Reports a handler's exception: counts it and calls config::on_error (never throws).
  void report_error(thread_context& ctx, const meta& m, std::exception_ptr e) noexcept;

  /// Manual drive. run_once(): at most one batch from the most urgent non-empty lane.
  /// poll(): batches until the lanes are empty or `max_events` ran. Both return events run.
  std::size_t run_once();
  std::size_t poll(std::size_t max_events);

  // ---- subscriptions (cold) ------------------------------------------------------------------

  std::mutex& subscription_mutex() noexcept { return subscription_mutex_; }
  /// True when this thread is running a handler (or dispatch()) of this bus.
  bool inside_dispatch() { return context().depth > 0; }

  struct retired {
    void* p;
    void (*deleter)(void*);
    std::uint64_t epoch;
  };
  using garbage = std::vector<retired>;

  /// After a handler table was swapped: waits until no other thread can still be reading the
  /// old one (a grace period). The calling thread is not waited for. Only for a thread that
  /// is not dispatching on this bus: a dispatching thread is itself a reader that another
  /// synchronize() may be waiting for, so two of them would wait for each other forever; it
  /// retires instead, and reclaim() frees once the grace period has passed.
  void synchronize();
  /// Keeps `p` until no dispatch that began before now can see it. Call with the mutex held.
  /// Never throws: out of memory, `p` is leaked rather than freed while it may be in use.
  /// Sets reclaim_due_, so that the next outermost exit_dispatch() of any thread tries reclaim.
  void retire(void* p, void (*deleter)(void*)) noexcept;
  /// Moves into `out` what retire() kept whose grace period has ended. Call with the mutex
  /// held, and free `out` (free_garbage) after unlocking: the deleters run user destructors.
  /// Throws (std::bad_alloc) only before it has moved anything.
  void reclaim(garbage& out);
  static void free_garbage(garbage& g) noexcept {
    for (auto& r : g) r.deleter(r.p);
    g.clear();
  }

  // ---- lifecycle and observation -------------------------------------------------------------

  /// Gives this thread's unspent credits back to the lanes (a thread that ends).
  void release_credits(thread_context& ctx) noexcept;

  std::uint64_t stop(stop_mode mode);
  metrics_snapshot metrics() const;
  std::uint64_t id() const noexcept { return id_; }
  const config& cfg() const noexcept { return cfg_; }
  void* typed_bus() const noexcept { return typed_bus_; }

 private:
  friend struct context_anchor;

  thread_context& context_slow();
  thread_context& late_context_slow();  // context_slow() after the thread's registry is gone
  thread_context& manual_context();     // checks that this thread may drain, sizes its buffer
  thread_context* acquire_context();
  void worker_main(std::uint32_t index);
  /// Dequeues one batch from the most urgent non-empty lane and dispatches it.
  std::size_t drain_batch(thread_context& ctx, std::size_t max);
  /// A batch of n was dequeued from lane l: marks it in flight, counts it out of the lane and
  /// gives its room back.
  void take_batch(thread_context& ctx, unsigned l, std::size_t n) noexcept;
  /// n events left lane l (dequeued): counts them out of its occupancy, gives their room back
  /// and wakes one blocked publisher.
  void count_out(thread_context& ctx, unsigned l, std::size_t n) noexcept;
  /// The rest of drain_batch with config::latency_histograms: dispatches and counts the batch
  /// that ctx.in_hand describes, timing it into this thread's histograms. Returns its size.
  [[gnu::noinline]] std::size_t dispatch_timed(thread_context& ctx);
  /// drain_batch calls dispatch_timed through this, marked cold: with a plain call GCC kept the
  /// batch size on the stack in the untimed loop (2 instructions an event, perf/callgrind).
  [[gnu::cold, gnu::noinline]] std::size_t dispatch_timed_cold(thread_context& ctx);
  /// The end of a batch of n from lane l: its lane counts and its in-flight mark move together.
  void end_batch(thread_context& ctx, unsigned l, std::size_t n) noexcept;
  void ensure_buffer(thread_context& ctx);
  std::size_t discard_all(thread_context& ctx);
  /// Every lane's occupancy is zero (exact for what a heavy_fence made visible).
  bool lanes_empty() const noexcept;
  void idle(thread_context& ctx, std::uint32_t& idle_rounds,
            std::chrono::steady_clock::time_point& idle_since, bool& credits_reclaimed);
  /// Returns this thread's unspent credits and revokes idle ones, so that the lanes' hints
  /// read empty again (an idle worker, once per idle period).
  void reclaim_idle_credits(thread_context& ctx);
  /// exit_dispatch()'s slow half: try_lock (never blocks), reclaim, unlock, free.
  void reclaim_after_dispatch() noexcept;

  config cfg_;
  type_table types_;
  void* typed_bus_;
  std::uint64_t id_;

  std::array<lane, priority_count> lanes_;

  // Read by every publish: stopping_ and asymmetric_ (and work_'s waiter count, to see whether
  // a worker sleeps). Written once at stop(), and by workers when they park.
  alignas(cache_line) std::atomic<bool> stopping_{false};
  std::atomic<bool> discarding_{false};
  const bool asymmetric_ = asymmetric_fences();
  event_count work_;  // idle workers sleep here

  alignas(cache_line) std::atomic<std::uint64_t> epoch_{1};
  std::atomic<thread_context*> contexts_{nullptr};  // push-only list
  std::atomic<std::uint32_t> next_context_id_{1};
  // The epoch of the oldest retired pointer, 0 when none (written by retire() and reclaim()
  // under subscription_mutex_; read relaxed by exit_dispatch as a hint). On epoch_'s line,
  // which readers load anyway and write never.
  std::atomic<std::uint64_t> reclaim_due_{0};
  std::shared_ptr<context_anchor> anchor_;

  std::mutex subscription_mutex_;
  garbage retired_;

  std::mutex stop_mutex_;
  bool stopped_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace detail
}  // namespace tachyon
