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

inline constexpr std::size_t cache_line = 64;

/// moodycamel tuned for tachyon: explicit producers only (every publisher has a token),
/// 64-envelope blocks (4 KiB), and every allocation through detail::allocate (mimalloc).
struct lane_traits : moodycamel::ConcurrentQueueDefaultTraits {
  static constexpr std::size_t BLOCK_SIZE = 64;
  static constexpr std::size_t INITIAL_IMPLICIT_PRODUCER_HASH_SIZE = 0;
  static void* malloc(std::size_t n) { return allocate_or_null(n, alignof(std::max_align_t)); }
  static void free(void* p) { deallocate(p); }
};

using lane_queue = moodycamel::ConcurrentQueue<envelope, lane_traits>;

/// One priority lane. tachyon keeps its own exact bound (moodycamel's is per producer and
/// block-granular) as two monotonic counters on separate lines: `reserved`, written only by
/// publishers, and `released`, written by the consumers (and by a publisher giving a
/// reservation back). occupancy = reserved - released. A publisher checks the bound against
/// its own cached copy of `released`, which can only overstate the occupancy, and reloads it
/// only when that copy says full; so in the common case a publish writes no line a consumer
/// writes, and a drained batch writes no line a publisher writes, where one shared counter
/// would bounce between them on every event and every batch.
/// The difference doubles as the idle scan's "maybe non-empty" hint, far cheaper than asking
/// an empty moodycamel queue (60-140 ns a poll in its own benchmarks).
struct alignas(cache_line) lane {
  explicit lane(std::size_t prealloc_events, std::size_t producers, std::uint32_t cap)
      : queue(prealloc_events, producers, 0), capacity(cap) {}

  /// Events in the lane now, reserved but not yet dequeued (snapshot; exact when quiet).
  /// `released` is read first so that the difference is never negative.
  std::uint64_t depth() const noexcept {
    const std::uint64_t rel = released.load(std::memory_order_seq_cst);
    return reserved.load(std::memory_order_seq_cst) - rel;
  }

  lane_queue queue;
  alignas(cache_line) std::atomic<std::uint64_t> reserved{0};
  std::uint32_t capacity;  // read with `reserved`, by the publishers
  alignas(cache_line) std::atomic<std::uint64_t> released{0};
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

  // Owner-only state.
  std::uint64_t next_sequence;  // context id << 48, then +1 per event
  std::uint32_t depth = 0;      // dispatch nesting on this thread
  std::size_t types;
  counter_row* rows;  // [lanes][types][misc][sync_ok], see lane_row .. sync_ok
  envelope* drain_buffer = nullptr;
  std::uint32_t drain_buffer_size = 0;
  std::array<std::uint64_t, priority_count> released_seen{};  // per lane, see lane
  // Hot lane (consumers): the lane last drained, polled without its hint for a while; see
  // bus_core::drain_batch. hot_lane == priority_count: none.
  unsigned hot_lane = priority_count;
  std::uint32_t hot_misses = 0;
  std::array<std::optional<moodycamel::ProducerToken>, priority_count> producer;
  std::array<std::optional<moodycamel::ConsumerToken>, priority_count> consumer;

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

/// Runs an envelope's handlers and releases its payload. Returns true when no handler threw;
/// it counts the type row's `dispatched` itself, and on a throw `failed` in both rows (the
/// caller counts the lane's `dispatched` once per batch).
using dispatch_fn = bool (*)(void* bus, envelope& env, thread_context& ctx);
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

  /// The whole publish path but the payload: reserve room under the lane's bound (or apply the
  /// overflow policy), stamp the header, enqueue with this thread's token, count, wake a worker.
  /// `fill(envelope&)` stores the payload; it runs only once room is reserved.
  template <class Fill>
  result publish(unsigned l, std::uint16_t type, std::uint64_t correlation, Fill&& fill) {
    thread_context& ctx = context();
    lane& ln = lanes_[l];
    moodycamel::ProducerToken& token = producer_token(ctx, l);  // may allocate: before reserving
    if (!try_reserve(ctx, l)) [[unlikely]] {
      const result r = on_full(ctx, l, type, 1);
      if (r != result::ok) return r;
    }
    // The reservation is the linearisation point against stop(): stop() sets stopping_ and
    // then waits for every lane to be empty, so a reserved event is always drained.
    if (stopping_.load(std::memory_order_seq_cst)) [[unlikely]]
      return refuse_stopped(ctx, ln, l, type, 1, 1);
    unstamped<1> slot;
    envelope& env = slot.at[0];
    stamp(ctx, env, l, type, correlation, cfg_.timestamps ? clock::now() : 0);
    try {
      fill(env);
    } catch (...) {  // the event's move constructor or the box's allocation threw
      unreserve(ln, 1);
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

  /// publish() for `n` events of one type, reserving and enqueueing up to 64 at a time.
  /// `fill(envelope&, i)` stores event i. Stops at the first refusal (full or stopped).
  template <class Fill>
  bulk_outcome publish_bulk(unsigned l, std::uint16_t type, std::size_t n, Fill&& fill) {
    constexpr std::uint32_t chunk = 64;
    thread_context& ctx = context();
    lane& ln = lanes_[l];
    moodycamel::ProducerToken& token = producer_token(ctx, l);  // may allocate: before reserving
    bulk_outcome out;
    unstamped<chunk> slots;  // 4 KiB of stack
    envelope* buf = slots.at;
    std::size_t i = 0;
    while (i < n) {
      std::uint32_t k =
          try_reserve_some(ctx, l, static_cast<std::uint32_t>(std::min<std::size_t>(n - i, chunk)));
      if (k == 0) {
        const result r = on_full(ctx, l, type, n - i);
        if (r == result::dropped) {
          ++out.dropped;
          ++i;
          continue;
        }
        if (r != result::ok) {
          out.status = r;
          return out;
        }
        k = 1;  // on_full reserved one slot
      }
      if (stopping_.load(std::memory_order_seq_cst)) [[unlikely]] {
        out.status = refuse_stopped(ctx, ln, l, type, k, n - i);
        return out;
      }
      std::uint32_t j = 0;
      // One clock read per chunk: the events of one call are published at one instant. A TSC
      // read per event held publish_batch to 96 M events/s on the development VM (384 M/s with
      // one read per chunk, tachyon_bench publish_batch/tachyon).
      const std::uint64_t ticks = cfg_.timestamps ? clock::now() : 0;
      try {
        for (; j < k; ++j) {
          stamp(ctx, buf[j], l, type, 0, ticks);
          fill(buf[j], i + j);
        }
      } catch (...) {
        for (std::uint32_t q = 0; q < j; ++q) types_.release[type](buf[q]);
        unreserve(ln, k);
        throw;
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
    env.header.sequence = ctx.next_sequence++;
    env.header.correlation_id = correlation;
    env.header.publish_ticks = ticks;
    env.header.type_index = type;
    env.header.lane = static_cast<priority>(l);
  }

  /// Counts `n` enqueued events and wakes a worker if one sleeps.
  void commit(thread_context& ctx, unsigned l, std::uint16_t type, std::uint32_t n) noexcept {
    ctx.count(l, type, c_accepted, n);
    work_.notify_one();
  }

  /// Gives back `reserved` slots and counts `refused` events as rejected_stopped.
  result refuse_stopped(thread_context& ctx, lane& ln, unsigned l, std::uint16_t type,
                        std::uint32_t reserved, std::size_t refused) noexcept {
    unreserve(ln, reserved);
    ctx.count(l, type, c_rejected_stopped, refused);
    return result::stopped;
  }

  /// Reserves up to `want` slots at once; returns how many (0 when the lane is full).
  std::uint32_t try_reserve_some(thread_context& ctx, unsigned l, std::uint32_t want) noexcept {
    lane& ln = lanes_[l];
    std::uint64_t r = ln.reserved.load(std::memory_order_relaxed);
    // Signed: a stale `r` (older than the cached release) reads as room, and the CAS then
    // fails and refreshes it.
    auto room = [&] {
      return static_cast<std::int64_t>(ln.capacity) -
             static_cast<std::int64_t>(r - ctx.released_seen[l]);
    };
    for (;;) {
      if (room() <= 0) {
        ctx.released_seen[l] = ln.released.load(std::memory_order_seq_cst);
        if (room() <= 0) return 0;
      }
      const auto n = static_cast<std::uint32_t>(
          std::min<std::int64_t>(want, std::min<std::int64_t>(room(), ln.capacity)));
      if (ln.reserved.compare_exchange_weak(r, r + n, std::memory_order_seq_cst,
                                            std::memory_order_relaxed))
        return n;
    }
  }
  bool try_reserve(thread_context& ctx, unsigned l) noexcept {
    return try_reserve_some(ctx, l, 1) == 1;
  }
  void unreserve(lane& ln, std::uint32_t n) noexcept {
    ln.released.fetch_add(n, std::memory_order_seq_cst);
    room_.notify_all();
  }

  /// The slow half of publish on a full lane: applies the overflow policy. Returns ok once a
  /// slot is reserved (block); otherwise the result to hand back, with `refused` events
  /// counted as rejected (full, stopped) or one event as accepted and dropped (drop).
  result on_full(thread_context& ctx, unsigned l, std::uint16_t type, std::size_t refused);
  /// try_enqueue failed: more publishing threads than config::producers. Allocates; counted
  /// in lane_allocations. Throws std::bad_alloc (after releasing the events) if that fails.
  void enqueue_growing(thread_context& ctx, lane& ln, envelope* envs, std::uint32_t n);
  void make_producer_token(thread_context& ctx, unsigned l);

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
  void exit_dispatch(thread_context& ctx) noexcept {
    if (--ctx.depth == 0) ctx.reader_epoch.store(0, std::memory_order_release);
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
  /// old one (a grace period). The calling thread is not waited for: inside a handler it is
  /// itself a reader, so what it retired must wait for reclaim().
  void synchronize();
  /// Keeps `p` until no dispatch that began before now can see it. Call with the mutex held.
  /// Never throws: out of memory, `p` is leaked rather than freed while it may be in use.
  void retire(void* p, void (*deleter)(void*)) noexcept;
  /// Moves into `out` what retire() kept whose grace period has ended. Call with the mutex
  /// held, and free `out` (free_garbage) after unlocking: the deleters run user destructors.
  void reclaim(garbage& out);
  static void free_garbage(garbage& g) noexcept {
    for (auto& r : g) r.deleter(r.p);
    g.clear();
  }

  // ---- lifecycle and observation -------------------------------------------------------------

  std::uint64_t stop(stop_mode mode);
  metrics_snapshot metrics() const;
  std::uint64_t id() const noexcept { return id_; }
  const config& cfg() const noexcept { return cfg_; }
  void* typed_bus() const noexcept { return typed_bus_; }

 private:
  friend struct context_anchor;

  thread_context& context_slow();
  thread_context& manual_context();  // checks that this thread may drain, sizes its buffer
  thread_context* acquire_context();
  void worker_main(std::uint32_t index);
  /// Dequeues one batch from the most urgent non-empty lane and dispatches it.
  std::size_t drain_batch(thread_context& ctx, std::size_t max);
  /// The rest of drain_batch with config::latency_histograms: dispatches and counts the batch
  /// that ctx.in_hand describes, timing it into this thread's histograms. Returns its size.
  [[gnu::noinline]] std::size_t dispatch_timed(thread_context& ctx);
  /// drain_batch calls dispatch_timed through this, marked cold: with a plain call GCC kept the
  /// batch size on the stack in the untimed loop (2 instructions an event, perf/callgrind).
  [[gnu::cold, gnu::noinline]] std::size_t dispatch_timed_cold(thread_context& ctx);
  void ensure_buffer(thread_context& ctx);
  std::size_t discard_all(thread_context& ctx);
  bool lanes_empty() const noexcept;
  void idle(thread_context& ctx, std::uint32_t& idle_rounds,
            std::chrono::steady_clock::time_point& idle_since);

  config cfg_;
  type_table types_;
  void* typed_bus_;
  std::uint64_t id_;

  std::array<lane, priority_count> lanes_;

  alignas(cache_line) std::atomic<bool> stopping_{false};
  std::atomic<bool> discarding_{false};
  event_count work_;  // idle workers sleep here
  event_count room_;  // publishers blocked on a full lane sleep here

  alignas(cache_line) std::atomic<std::uint64_t> epoch_{1};
  const bool asymmetric_ = asymmetric_fences();     // read with epoch_, on the same line
  std::atomic<thread_context*> contexts_{nullptr};  // push-only list
  std::atomic<std::uint32_t> next_context_id_{1};
  std::shared_ptr<context_anchor> anchor_;

  std::mutex subscription_mutex_;
  garbage retired_;

  std::mutex stop_mutex_;
  bool stopped_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace detail
}  // namespace tachyon
