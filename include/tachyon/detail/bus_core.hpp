// tachyon/detail/bus_core.hpp — the untyped machinery behind tachyon::bus<Registry>. bus_core
// owns the pieces and joins them: the four lanes (detail/lane/), the thread contexts
// (detail/context/), the worker pool and the drain (detail/worker/, src/worker/), epoch
// reclamation (detail/subscription/epoch.hpp) and the metrics snapshot (src/metrics/). The
// hot paths (publish, enter/exit of a dispatch, settle) are here, in the header, so that they
// inline into the typed front; the typed front (bus.hpp) adds the registry, the handler tables
// (detail/subscription/handler_tables.hpp), publish and dispatch. Users never name anything
// here.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <mutex>
#include <string_view>
#include <vector>

#include <concurrentqueue/concurrentqueue.h>

#include <tachyon/clock.hpp>
#include <tachyon/config.hpp>
#include <tachyon/detail/context/context_registry.hpp>
#include <tachyon/detail/context/thread_context.hpp>
#include <tachyon/detail/lane/admission.hpp>
#include <tachyon/detail/lane/envelope.hpp>
#include <tachyon/detail/lane/lane.hpp>
#include <tachyon/detail/metrics/outcomes.hpp>
#include <tachyon/detail/ordering/strand.hpp>
#include <tachyon/detail/resilience/parked.hpp>
#include <tachyon/detail/subscription/epoch.hpp>
#include <tachyon/detail/subscription/fence.hpp>
#include <tachyon/detail/worker/parking.hpp>
#include <tachyon/detail/worker/worker_pool.hpp>
#include <tachyon/health.hpp>
#include <tachyon/meta.hpp>
#include <tachyon/metrics.hpp>
#include <tachyon/result.hpp>
#include <tachyon/stop_mode.hpp>

namespace tachyon::detail {

class journal;

/// Runs a drained envelope's handlers, settles it and releases its payload.
using dispatch_fn = void (*)(void* bus, envelope& env, thread_context& ctx);
/// Runs one delivery of a parked event (resilience/parked.hpp) and finishes it.
using delivery_fn = void (*)(void* bus, delivery& d, thread_context& ctx);
/// Runs a dead-letter entry's subscription (or, for an expired event, all the type's handlers)
/// once, on this thread; returns whether it succeeded.
using replay_fn = bool (*)(void* bus, dead_letter_entry& e, thread_context& ctx);

/// What the typed bus tells the core about one registered type: one row per type, indexed by
/// the type's registry index (meta::type_index).
struct type_ops {
  dispatch_fn dispatch;
  release_fn release;
  delivery_fn run_delivery;
  replay_fn replay;
  std::string_view name;
  std::uint8_t lane;  // the type's default lane
};

/// The typed bus's rows, one per registered type. `dispatch` is the rows' dispatch column
/// again, packed 8 bytes to a type: the drain looks it up once per event, and a 40-byte row
/// stride costs two address instructions per event that an 8-byte stride does not
/// (perf/callgrind). Both come from the same per-type constant (bus::dispatch_of()).
/// Both columns have two rows more than there are types: type index `count` marks an envelope
/// that carries a delivery (resilience/parked.hpp) instead of an event; its dispatch runs the
/// delivery (bus_core::dispatch_delivery), its release discards it. Type index `count + 1`
/// marks a strand's token (ordering/strand.hpp); its dispatch runs a turn of the strand's
/// keyed events (bus_core::dispatch_strand). Such envelopes cost the drain nothing extra: the
/// per-event lookup is the same.
struct type_table {
  const type_ops* ops;
  const dispatch_fn* dispatch;  // dispatch[t] == ops[t].dispatch
  std::size_t count;            // registered types; ops and dispatch hold count + 2 rows
};

/// How a bus reads its time source (tachyon/time.hpp): erased, read off the hot path only.
struct time_ref {
  std::uint64_t (*now)(const void* source) noexcept;
  const void* source;
  bool is_virtual;
};

/// The typed bus's interceptors (intercept.hpp), erased: their tuple, and whether a handler's
/// throw must be kept in thread_context::run_error for an after_dispatch.
struct hooks_ref {
  void* interceptors;
  bool records_run_errors;
};

/// How one run of a delivery ended.
enum class run_status : std::uint8_t { ok, failed, gone /* its subscription was removed */ };

/// Where a run that settles nothing itself (a replay) begins in the thread's failure list
/// (thread_context::failures, failed_plain): inside a handler, the list already holds the running
/// event's failures, which the nested run must leave as they are.
struct failure_mark {
  std::size_t kept = 0;
  bool plain = false;
};

/// Declared, never defined by the library: a test may define it to reach a bus's core (the
/// re-entry door, injected sequence values) without widening the public API.
struct bus_access;
/// tachyon::replay's way to publish with meta_flags::replayed (tachyon/journal.hpp).
struct journal_replay;

/// Writes the header of an event entering its lane for the first time, every field: what
/// stamp() and stamped_from both do (field by field, so that the compiler stores into the
/// slot rather than building a meta aside and copying it). `correlation` 0 inherits the
/// running event's (cause; zero outside handlers), whose sequence becomes the causation id.
inline void write_fresh_header(meta& m, std::uint64_t sequence, std::uint64_t correlation,
                               const event_cause& cause, std::uint64_t ticks, std::uint16_t type,
                               priority lane) noexcept {
  m.sequence = sequence;
  m.correlation_id = correlation != 0 ? correlation : cause.correlation;
  m.causation_id = cause.sequence;
  m.publish_ticks = ticks;
  m.type_index = type;
  m.lane = lane;
  m.attempt = 0;
  m.flags = 0;
}

/// The iterator publish_batch hands moodycamel's bulk enqueue for events stored inline: each
/// `*it` builds a stamped envelope as a prvalue, which the enqueue's placement new constructs
/// directly in the queue's slot (no stack chunk, no second copy). The sequence of the i-th
/// event is the thread's next sequence plus i steps; the caller advances it afterwards.
template <class T>
struct stamped_from {
  static_assert(stored_inline<T>);
  const T* ev;
  std::uint64_t sequence;
  std::uint64_t correlation;
  event_cause cause;
  std::uint64_t ticks;
  std::uint16_t type;
  priority lane;

  envelope operator*() const noexcept {
    envelope e;
    write_fresh_header(e.header, sequence, correlation, cause, ticks, type, lane);
    ::new (static_cast<void*>(e.payload)) T(*ev);
    return e;
  }
  stamped_from& operator++() noexcept {
    ++ev;
    sequence += thread_context::sequence_step;
    return *this;
  }
  stamped_from operator++(int) noexcept {
    stamped_from was = *this;
    ++*this;
    return was;
  }
};

class alignas(cache_line) bus_core {
 public:
  /// `tables`: what the types' dispatch functions receive (the typed bus's
  /// handler_tables); `types`: the typed bus's per-type rows.
  bus_core(const config& cfg, type_table types, void* tables, time_ref time, hooks_ref hooks);
  ~bus_core();
  bus_core(const bus_core&) = delete;
  bus_core& operator=(const bus_core&) = delete;

  /// Starts the workers; throws (after joining what started) if one cannot be pinned.
  void start();

  /// This thread's context for this bus: one compare on the fast path.
  thread_context& context() { return contexts_.context(); }

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
    if (const result r = admit_single(ctx, l, type); r != result::ok) return r;
    unstamped<plain_copy ? 0 : 1> slot;
    envelope& env = plain_copy ? ctx.scratch : slot.at[0];
    stamp(ctx, env, l, type, correlation, cfg_.timestamps ? clock::now() : 0);
    try {
      fill(env);
    } catch (...) {  // the event's move constructor or the box's allocation threw
      undo_admission(ctx, l, 1);
      throw;
    }
    if (!ln.queue.try_enqueue(token, env)) [[unlikely]]
      enqueue_growing(ctx, ln, &env, 1);
    commit(ctx, type, 1);
    return result::ok;
  }

  struct bulk_outcome {
    std::size_t queued = 0;
    std::size_t dropped = 0;
    result status = result::ok;
  };

#if defined(__GNUC__) && !defined(__clang__)
  // GCC 12 at -O2 reports a false -Wstringop-overflow inside moodycamel's enqueue_bulk with a
  // producer token (an atomic load "writing 8 bytes into a region of size 0"), known upstream
  // (cameron314/concurrentqueue#456); silenced here so that users' -Werror builds are not hit.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
  /// publish() for the `n` events of one type at `evs`, admitting and enqueueing up to 64 at a
  /// time (one admission and one moodycamel bulk enqueue per chunk). Stops at the first refusal
  /// (full or stopped). Events stored inline are built by moodycamel's bulk enqueue directly in
  /// its slots (stamped_from); the others are stamped and boxed into a stack chunk first
  /// (`fill(envelope&, i)` stores event i), and if `fill` throws, the events of that chunk are
  /// released and not queued, and publish_batch_error says how many earlier ones were.
  template <class T, class Fill>
  bulk_outcome publish_batch(unsigned l, std::uint16_t type, std::uint64_t correlation,
                             const T* evs, std::size_t n, Fill&& fill) {
    constexpr std::uint32_t chunk = lane_admission::max_chunk;
    constexpr bool direct = stored_inline<T>;
    thread_context& ctx = context();
    lane& ln = lanes_[l];
    moodycamel::ProducerToken& token = producer_token(ctx, l);  // may allocate: before admitting
    bulk_outcome out;
    unstamped<direct ? 0 : chunk> slots;
    static_assert(direct || sizeof(slots) == 4096, "tachyon: a chunk of envelopes is 4 KiB");
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
      // One clock read per chunk: the events of one call are published at one instant.
      const std::uint64_t ticks = cfg_.timestamps ? clock::now() : 0;
      if constexpr (direct) {
        const stamped_from<T> it{evs + i, ctx.next_sequence,       correlation, ctx.cause, ticks,
                                 type,    static_cast<priority>(l)};
        if (!ln.queue.try_enqueue_bulk(token, it, k)) [[unlikely]] {
          if (!ln.queue.enqueue_bulk(token, it, k)) {  // more publishers than the reservation
            undo_admission(ctx, l, k);
            throw std::bad_alloc();
          }
          bump(ctx.misc_row().v[m_lane_allocations]);
        }
        ctx.next_sequence += k * thread_context::sequence_step;
      } else {
        std::uint32_t j = 0;
        try {
          for (; j < k; ++j) {
            stamp(ctx, buf[j], l, type, correlation, ticks);
            fill(buf[j], i + j);
          }
        } catch (...) {
          for (std::uint32_t q = 0; q < j; ++q) types_.ops[type].release(buf[q]);
          undo_admission(ctx, l, k);
          throw_batch_error(out.queued, out.dropped);
        }
        if (!ln.queue.try_enqueue_bulk(token, buf, k)) [[unlikely]]
          enqueue_growing(ctx, ln, buf, k);
      }
      commit(ctx, type, k);
      out.queued += k;
      i += k;
    }
    return out;
  }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

  // ---- conflation (detail/conflation/conflation.hpp) ----------------------------------------

  /// Whether stop() has begun (a racy observation, as the admission's own check is): a
  /// conflated publish that replaces a queued event takes no room in the lane, and reads this
  /// instead, so that publishing after stop() returns `stopped` on that path too.
  bool stopping() const noexcept { return stopping_.load(std::memory_order_relaxed); }

  /// The front door of a conflation token: admits one envelope into lane l as publish() admits
  /// an event (the overflow policy included; a refusal is counted and returned as there). Then
  /// `claim(envelope&)` puts its event in its slot and says whether the slot needs this token:
  /// false (another publisher's token already names the slot), and the room goes back to the
  /// lane and nothing is enqueued (claim counted the outcome). If claim throws, the room goes
  /// back and the exception propagates. If the enqueue cannot allocate, `abandon()` settles
  /// what the slot holds and the publish returns `dropped`.
  template <class Claim, class Abandon>
  result publish_token(unsigned l, std::uint16_t type, Claim&& claim, Abandon&& abandon) {
    thread_context& ctx = context();
    lane& ln = lanes_[l];
    moodycamel::ProducerToken& token = producer_token(ctx, l);  // may allocate: before admitting
    if (const result r = admit_single(ctx, l, type); r != result::ok) return r;
    // A stack slot, not the context's scratch: claim() constructs the event (user code, which
    // may publish on this bus).
    unstamped<1> slot;
    envelope& env = slot.at[0];
    bool needed;
    try {
      needed = claim(env);
    } catch (...) {
      undo_admission(ctx, l, 1);
      throw;
    }
    if (!needed) {
      // undo_admission, not a bare cancel: the credit must reach the pool, where a publisher
      // blocked on this lane is woken for it.
      undo_admission(ctx, l, 1);
      return result::ok;
    }
    // By rvalue (the envelope is trivially copyable: the same copy), so that this is another
    // moodycamel instantiation than publish()'s. GCC inlines publish()'s into publish() only
    // while it has few call sites, and out of line it costs every publish 15 instructions
    // (perf/callgrind, a program with seven inlined publish paths); this one adds none.
    if (!ln.queue.try_enqueue(token, std::move(env))) [[unlikely]] {
      if (!ln.queue.enqueue(token, std::move(env))) {
        undo_admission(ctx, l, 1);
        abandon();
        return result::dropped;
      }
      bump(ctx.misc_row().v[m_lane_allocations]);
    }
    commit(ctx, type, 1);
    return result::ok;
  }

  /// Admits one event of this thread into lane l: a credit from its account, else admit_one()
  /// (refill, or the overflow policy). Returns ok, or the refusal to hand back (counted). The
  /// admission is the linearisation point against stop(): try_admit reads stopping_ after the
  /// admission is visible (stop() pairs with a heavy fence), so an admitted event is always
  /// drained.
  [[gnu::always_inline]] result admit_single(thread_context& ctx, unsigned l, std::uint16_t type) {
    bool stopped = false;
    if (lane_admission::try_admit(ctx.credits[l], 1, asymmetric_, stopping_, stopped)) [[likely]]
      return result::ok;
    return admit_one(ctx, l, type, stopped);
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
    write_fresh_header(env.header, ctx.take_sequence(), correlation, ctx.cause, ticks, type,
                       static_cast<priority>(l));
  }

  /// Counts `n` enqueued events and wakes a worker if one sleeps. Only the type's row: the
  /// lane's `accepted` is the sum of its accounts' `used` (metrics()), which the admission
  /// already wrote.
  void commit(thread_context& ctx, std::uint16_t type, std::uint32_t n) noexcept {
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

  /// admit_one under overflow::drop_oldest, once the lane was found full: displaces the oldest
  /// front-door event it can take (displace_one) and admits this thread's event in its room.
  /// Returns ok, stopped (`refused` counted rejected), or dropped (nothing could be displaced;
  /// the event counted accepted and dropped).
  [[gnu::cold]] result admit_displacing(thread_context& ctx, unsigned l, std::uint16_t type,
                                        std::size_t refused);
  /// Takes the oldest event that came through lane l's front door out of the lane: first from
  /// this thread's own producer (its oldest queued event there), else from the producer
  /// moodycamel's tokenless dequeue picks. Deliveries that re-entered the lane are stepped
  /// over and put back (they hold none of the lane's room). Settles what it took as
  /// displaced, releases its payload and hands its credit to this thread's account. False
  /// when it found nothing it could take.
  bool displace_one(thread_context& ctx, unsigned l);
  /// Puts `n` stepped-over deliveries back into lane l through this thread's producer.
  void put_back(thread_context& ctx, unsigned l, envelope* envs, std::size_t n) noexcept;

  /// Undoes `n` admissions of this thread in lane l whose events will not be enqueued (the
  /// payload threw, the queue could not allocate): the credits go back to the pool, where a
  /// blocked publisher is woken for them.
  void undo_admission(thread_context& ctx, unsigned l, std::uint32_t n) noexcept {
    lane_admission::cancel(ctx.credits[l], n);
    lanes_[l].admission.give_back(ctx.credits[l]);
  }

  /// Calls f(credit_account&) for every thread's account in lane l.
  auto accounts(unsigned l) const noexcept {
    return [this, l](auto&& f) {
      for (auto* c = contexts_.first(); c != nullptr; c = c->next) f(c->credits[l]);
    };
  }
  /// Events admitted into lane l and not yet dequeued. Exact when quiet; after a heavy_fence,
  /// counts every admission that a publisher's stopping_ check did not refuse.
  std::uint64_t occupancy(unsigned l) const noexcept;
  /// The part of occupancy() that came through the front door: events, not deliveries.
  std::uint64_t front_occupancy(unsigned l) const noexcept;

  /// Re-enters an envelope into its lane through the second door: it takes none of the
  /// publishers' room, but the door is bounded (config::reentry_capacity). Returns false, with
  /// the envelope untouched, when the door is full or a discard has begun. Marks it reentered.
  bool reenter(envelope& env);

  /// try_enqueue failed: more publishing threads than config::producers. Allocates; counted
  /// in lane_allocations. Throws std::bad_alloc (after releasing the events) if that fails.
  void enqueue_growing(thread_context& ctx, lane& ln, envelope* envs, std::uint32_t n);
  void make_producer_token(thread_context& ctx, unsigned l);
  [[noreturn]] static void throw_batch_error(std::size_t queued, std::size_t dropped);

  // ---- dispatch ----------------------------------------------------------------------------

  /// Marks this thread as reading handler tables (nestable): the outermost entry announces
  /// its epoch (epoch_domain::enter: a store and a compiler barrier, paired with the writers'
  /// membarrier, fence.hpp).
  void enter_dispatch(thread_context& ctx) noexcept {
    if (ctx.dispatch_nesting++ == 0) epochs_.enter(ctx.reader);
  }
  /// Leaving the outermost dispatch is a grace period for this thread: if something is
  /// retired (one relaxed load of a line readers only read, the epoch's), try to free it.
  void exit_dispatch(thread_context& ctx) noexcept {
    if (--ctx.dispatch_nesting == 0) {
      if (epochs_.leave(ctx.reader)) [[unlikely]]
        epochs_.reclaim_after_leave();
    }
  }

  /// The event `m` is about to run its handlers on this thread: what their publishes inherit
  /// (meta's first 16 bytes, copied whole; see event_cause).
  static void enter_cause(thread_context& ctx, const meta& m) noexcept {
    std::memcpy(&ctx.cause, &m, sizeof(event_cause));
  }

  /// The settle point of an event whose handlers all ran without a throw (or none matched):
  /// counted dispatched in its type's row here, in its lane's row with the batch (end_batch),
  /// so that the lane's counts move with the in-flight mark. Its payload is released after.
  static void settle_ok(thread_context& ctx, const envelope& env) noexcept {
    bump(ctx.type_row(env.header.type_index).v[c_dispatched]);
  }

  // ---- journal (detail/journal/; null and untouched without config::journal) ---------------

  /// Set by the typed bus, which owns the journal, before start().
  void attach_journal(journal* j) noexcept { journal_ = j; }
  /// The settle point's journal hook: event `m` settled as `o`; if its type is journaled, its
  /// outcome record goes to this thread's segment. One test of a pointer without a journal.
  void journal_settled(thread_context& ctx, const meta& m, tachyon::outcome o) noexcept {
    if (journal_ != nullptr) [[unlikely]]
      journal_outcome(ctx, m, o);
  }
  /// Out of line (src/bus_core.cpp), so that this header needs the journal declared only.
  void journal_outcome(thread_context& ctx, const meta& m, tachyon::outcome o) noexcept;
  /// A parked event settled as `o`: its outcome record (journal_settled), then its listener.
  void told(thread_context& ctx, const parked_event& pe, tachyon::outcome o) noexcept {
    journal_settled(ctx, pe.env.header, o);
    pe.settled(o);
  }

  // ---- failures (cold; src/resilience/) -----------------------------------------------------

  /// A handler threw: counts it, feeds its subscription's breaker, calls the error hook, and
  /// keeps the failure for the end of the event's run when the subscription (or the dead
  /// letters) can do more than count it.
  /// `keep` false (dispatch()): only counted, nothing kept.
  [[gnu::cold]] void handler_failed(thread_context& ctx, const meta& m, subscription_state* s,
                                    std::exception_ptr e, const void* payload,
                                    bool keep = true) noexcept;
  /// An interceptor's before_dispatch or after_dispatch threw: counted in handler_errors and
  /// reported to the error hook under "interceptor:<name>".
  [[gnu::cold]] void interceptor_failed(thread_context& ctx, const meta& m, std::string_view name,
                                        std::exception_ptr e, const void* payload) noexcept;
  /// A publish refused before admission (an interceptor's veto): counted as `kind`.
  void count_refusal(unsigned l, std::uint16_t type, counter kind) {
    context().count(l, type, kind);
  }
  const hooks_ref& hooks() const noexcept { return hooks_; }
  /// A breaker's guard did not call its handler (short_circuit_signal).
  [[gnu::cold]] void short_circuited(thread_context& ctx, const meta& m, subscription_state* s,
                                     bool keep = true) noexcept;
  /// The end of a drained event's run when a handler failed: settles it as failed, or parks
  /// it (retries scheduled, dead letters) and takes its payload (the envelope must not be
  /// released after this).
  void resolve_failed(thread_context& ctx, envelope& env, release_fn release) noexcept;
  /// The end of a delivery's run (bus::run_delivery): resolves its failures, settles the
  /// delivery and, with its last delivery, the event.
  void finish_delivery(thread_context& ctx, delivery* d, run_status status) noexcept;
  /// A delivery whose event's deadline passed before it started: not run.
  void expire_delivery(thread_context& ctx, delivery* d) noexcept;
  /// The thread's failure list as it is now, before a nested run (failure_mark).
  static failure_mark mark_failures(const thread_context& ctx) noexcept {
    return {ctx.failures.size(), ctx.failed_plain};
  }
  /// Drops the failures kept since `from` (all of them by default) and restores the plain
  /// flag as it was then (a replay, an event that could not be parked).
  static void clear_failures(thread_context& ctx, failure_mark from = {}) noexcept;
  /// A replay ran: its last failure, if any, becomes the entry's error; the failures it kept
  /// since `from` are dropped.
  static void take_replay_error(thread_context& ctx, dead_letter_entry& e,
                                failure_mark from) noexcept;
  /// Decides each kept failure of a run of `pe` (attempt `attempt`): a retry scheduled, a dead
  /// letter, or the event marked failed.
  void handle_failures(thread_context& ctx, parked_event* pe, std::uint8_t attempt) noexcept;
  /// A run of `pe` ended: the event settles if it was its last pending delivery.
  void settle_run(thread_context& ctx, parked_event* pe, bool front) noexcept;
  /// Parks a delivery in the dead letters (takes the reference to `s`, which may be null).
  void park_dead_letter(parked_event* pe, subscription_state* s, std::uint32_t attempts,
                        std::exception_ptr error) noexcept;
  /// The drain's once-per-batch look at the timer: fires what is due (every delivery, due or
  /// not, with `all`) into its lane's re-entry door. Returns how many moved.
  std::size_t fire_due(thread_context& ctx, bool all);
  /// stop(discard) found an envelope carrying a delivery (type index types_.count): counts
  /// it discarded (a front-door one as an event, a retry as its event's mark) and lets it go.
  void discard_delivery(thread_context& ctx, envelope& env) noexcept;
  /// The delivery an envelope of type index types_.count carries.
  static delivery* delivery_of(const envelope& env) noexcept {
    delivery* d;
    std::memcpy(&d, env.payload, sizeof d);
    return d;
  }
  static void carry(envelope& env, delivery* d) noexcept { std::memcpy(env.payload, &d, sizeof d); }
  /// A delayed publish (publish_options::not_before) takes a timer slot first, so that a
  /// refusal (full, stopped; counted) leaves the caller's event untouched.
  result timer_admit(unsigned l, std::uint16_t type);
  void timer_unadmit() noexcept { timers_.unreserve(); }
  /// Stamps the header of a delayed event as publish() would.
  void stamp_delayed(meta& m, unsigned l, std::uint16_t type, std::uint64_t correlation) noexcept {
    thread_context& ctx = context();
    write_fresh_header(m, ctx.take_sequence(), correlation, ctx.cause,
                       cfg_.timestamps ? clock::now() : 0, type, static_cast<priority>(l));
  }
  /// Parks a delayed event in the slot timer_admit() took, due at `not_before_ns`; counts it
  /// accepted and waiting.
  void park_delayed(parked_event* pe, std::uint64_t not_before_ns) noexcept;
  std::uint64_t now_ns() const noexcept { return time_.now(time_.source); }
  dead_letter_store& dead_letters() noexcept { return dead_letters_; }
  const dead_letter_store& dead_letters() const noexcept { return dead_letters_; }
  timer_queue& timers() noexcept { return timers_; }
  /// The index that marks an envelope carrying a delivery.
  std::uint16_t delivery_type() const noexcept { return static_cast<std::uint16_t>(types_.count); }

  // ---- keyed events (ordering/strand.hpp; cold unless publish_options::key is used) ---------

  /// publish() for an event with a key: admitted into lane l as any event (or the overflow
  /// policy applies), but queued on its key's strand; a token goes into the lane when the
  /// strand was idle. `fill(envelope&)` stores the payload. The first keyed publish of the bus
  /// makes the strands, and a thread's first ones make its nodes (allocations); after that it
  /// allocates nothing for inline events.
  /// Only the payload is typed: the rest is compiled once, in the library (src/ordering/), so
  /// that a bus's keyed path adds little to its users' translation units (more code there had
  /// GCC stop inlining parts of the plain publish path).
  template <class Fill>
  result publish_keyed(unsigned l, std::uint16_t type, std::uint64_t correlation, std::uint64_t key,
                       Fill&& fill) {
    using F = std::remove_reference_t<Fill>;
    return publish_keyed_erased(l, type, correlation, key, &fill,
                                [](void* f, envelope& env) { (*static_cast<F*>(f))(env); });
  }
  /// publish_keyed with the payload's store erased: `fill(arg, env)` (which may throw: the
  /// admission is then undone and the exception goes on).
  result publish_keyed_erased(unsigned l, std::uint16_t type, std::uint64_t correlation,
                              std::uint64_t key, void* arg, void (*fill)(void*, envelope&));
  /// The index that marks a strand's token.
  std::uint16_t strand_type() const noexcept {
    return static_cast<std::uint16_t>(types_.count + 1);
  }
  /// The dispatch column's row for tokens: a turn of the token's strand (run_strand).
  static void dispatch_strand(void* tables, envelope& env, thread_context& ctx) noexcept;
  /// The release column's row for tokens: nothing to release (a token owns nothing).
  static void release_token(envelope&) noexcept {}
  /// The live subscriptions (for metrics and health). Called under the subscription lock.
  void add_subscription(subscription_state* s) { subscriptions_.push_back(s); }
  void remove_subscription(subscription_state* s) noexcept { std::erase(subscriptions_, s); }
  void clear_subscriptions() noexcept { subscriptions_.clear(); }
  template <class F>
  void for_each_subscription(F&& f) const {
    std::lock_guard lock(const_cast<epoch_domain&>(epochs_).mutex());
    for (const subscription_state* s : subscriptions_) f(*s);
  }

  /// Manual drive. run_once(): at most one batch from the most urgent non-empty lane.
  /// poll(): batches until the lanes are empty or `max_events` ran. Both return events run.
  std::size_t run_once();
  std::size_t poll(std::size_t max_events);

  // ---- subscriptions (cold) ------------------------------------------------------------------

  /// The bus's epoch domain: the subscription lock, retire/reclaim, grace periods.
  epoch_domain& epochs() noexcept { return epochs_; }
  /// True when this thread is running a handler (or dispatch()) of this bus. Never allocates:
  /// a thread without a context of this bus is not inside one (unsubscribe is noexcept).
  bool inside_dispatch() noexcept {
    const thread_context* c = contexts_.find();
    return c != nullptr && c->dispatch_nesting > 0;
  }
  /// After a handler table was swapped: waits until no other thread can still be reading the
  /// old one (epoch_domain::synchronize). Only for a thread that is not dispatching on this bus
  /// (a dispatching thread retires instead), so this thread's own announcement is 0 and needs
  /// no skipping.
  void synchronize() { epochs_.synchronize(nullptr); }

  // ---- lifecycle and observation -------------------------------------------------------------

  /// Gives this thread's unspent credits back to the lanes (a thread that ends).
  void release_credits(thread_context& ctx) noexcept;

  std::uint64_t stop(stop_mode mode);
  /// stop(mode), waiting at most `timeout` (real time) for the workers to return; see bus.hpp.
  stop_report stop(stop_mode mode, std::chrono::nanoseconds timeout);
  metrics_snapshot metrics() const;
  health_report health();
  /// stop(drain)'s work on this thread: fires every timer entry, due or not, and drains the
  /// lanes, until both are empty or a discard begins (stop() then discards the rest).
  void drain_everything(thread_context& ctx);
  const config& cfg() const noexcept { return cfg_; }
  void* tables() const noexcept { return tables_; }

 private:
  friend struct bus_access;  // tests
  /// context_registry's hand_back: a thread that ends gives its unspent credits back.
  static void hand_back(void* self, thread_context& ctx) noexcept {
    static_cast<bus_core*>(self)->release_credits(ctx);
  }
  thread_context& manual_context();  // checks that this thread may drain, sizes its buffer
  /// stop()'s first half: refuse publishes (and, for discard, new batches), wake everyone.
  /// Returns false when called from inside a handler (which must not wait for the rest).
  bool begin_stop(stop_mode mode);
  /// One worker's view for health() and a timed stop(), dated by health_samples_.
  worker_health observe_worker(std::uint32_t i, std::uint64_t now);
  void worker_main(std::uint32_t index);
  /// Dequeues one batch from the most urgent non-empty lane and dispatches it.
  std::size_t drain_batch(thread_context& ctx, std::size_t max);
  /// A batch of n was dequeued from lane l: marks its events in flight, counts them out of the
  /// lane and gives their room back. Returns how many came through the front door (the rest
  /// are deliveries that came through the re-entry door).
  std::size_t take_batch(thread_context& ctx, unsigned l, std::size_t n) noexcept;
  /// How many of the n envelopes in the drain buffer came through the re-entry door (0 at the
  /// cost of one load when the door is idle).
  std::size_t reentered_in(thread_context& ctx, unsigned l, std::size_t n) const noexcept;
  /// n envelopes, `reentered` of them through the re-entry door, left lane l (dequeued):
  /// counts them out of its occupancy, gives their room back and wakes one blocked publisher.
  void count_out(thread_context& ctx, unsigned l, std::size_t n, std::size_t reentered) noexcept;
  /// The end of a batch whose front-door events did not all settle as dispatched.
  [[gnu::cold]] static void end_batch_tally(thread_context& ctx, counter_row& row) noexcept;
  /// The rest of drain_batch with config::latency_histograms: dispatches and counts the batch
  /// that ctx.batch_in_hand describes, timing it into this thread's histograms. Returns its
  /// size.
  [[gnu::noinline]] std::size_t dispatch_timed(thread_context& ctx, std::size_t n);
  /// drain_batch calls dispatch_timed through this, marked cold: with a plain call GCC kept the
  /// batch size on the stack in the untimed loop (2 instructions an event, perf/callgrind).
  [[gnu::cold, gnu::noinline]] std::size_t dispatch_timed_cold(thread_context& ctx, std::size_t n);
  /// The end of a batch of n from lane l: its lane counts and its in-flight mark move together.
  void end_batch(thread_context& ctx, unsigned l, std::size_t n) noexcept;
  void ensure_buffer(thread_context& ctx);
  std::size_t discard_all(thread_context& ctx);

  // Keyed events (src/ordering/strands.cpp).
  /// The strand of `key`; makes the bus's strands on first use.
  strand& strand_for(std::uint64_t key);
  strand* make_strands();
  /// A node for this thread's next keyed event: a spare one, one given back, or a new one.
  strand_node* take_node(thread_context& ctx);
  strand_node* new_node(thread_context& ctx);
  /// A node taken by this thread and not used (the publish was refused or threw).
  static void keep_node(thread_context& ctx, strand_node* n) noexcept;
  /// Hands `n` nodes that have run back to their publishers' contexts.
  static void give_back_nodes(thread_context& ctx, strand_node* const* nodes,
                              std::size_t n) noexcept;
  /// Puts strand s's token into lane l: through the re-entry door's count but not its bound
  /// (lane_admission::enter_token). Waits, yielding, while memory for it cannot be had.
  void enqueue_token(thread_context& ctx, strand& s, unsigned l) noexcept;
  /// A token of s was dequeued from lane l by this thread, in a batch of that lane: runs the
  /// strand's events that are in lane l, in order, as part of the batch, up to what is left of
  /// the batch, and hands the token on (or lets it go when the strand is idle).
  void run_strand(thread_context& ctx, strand& s, unsigned l) noexcept;
  /// run_strand's chunk of k nodes: in hand, out of the lane, run, counted in the lane's row.
  void run_strand_chunk(thread_context& ctx, unsigned l, std::uint32_t held,
                        strand_node* const* nodes, std::size_t k) noexcept;
  /// stop(discard) found a token of s in lane l: discards the strand's events; returns how many.
  std::size_t discard_strand(thread_context& ctx, strand& s, unsigned l) noexcept;
  static strand* strand_of(const envelope& env) noexcept {
    strand* s;
    std::memcpy(&s, env.payload, sizeof s);
    return s;
  }
  /// Every lane's occupancy is zero (exact for what a heavy_fence made visible).
  bool lanes_empty() const noexcept;
  /// A worker's current run of empty scans.
  struct idle_period {
    std::uint32_t rounds = 0;
    std::chrono::steady_clock::time_point since{};
    bool credits_reclaimed = false;
  };
  void idle(thread_context& ctx, idle_period& period);
  /// Returns this thread's unspent credits and revokes idle ones, so that the lanes' hints
  /// read empty again (an idle worker, once per idle period).
  void reclaim_idle_credits(thread_context& ctx);
  /// run_once()/poll() return through here: counts calls that ran nothing and reclaims idle
  /// credits once per run of them.
  std::size_t manual_outcome(thread_context& ctx, std::size_t ran);

  config cfg_;
  type_table types_;
  void* tables_;  // the typed bus's handler_tables<Registry>
  time_ref time_;
  hooks_ref hooks_;
  journal* journal_ = nullptr;  // config::journal; set before start(), then read only

  // Declared before the contexts, which hold moodycamel tokens of its queues: destroyed after.
  std::array<lane, priority_count> lanes_;

  // Read by every publish: stopping_ and asymmetric_ (and work_'s waiter count, to see whether
  // a worker sleeps). Written once at stop(), and by workers when they park.
  alignas(cache_line) std::atomic<bool> stopping_{false};
  std::atomic<bool> discarding_{false};
  const bool asymmetric_ = asymmetric_fences();
  wait_point work_;  // idle workers sleep here

  epoch_domain epochs_{asymmetric_};  // starts a line: readers load its epoch on every entry
  context_registry contexts_;

  std::mutex stop_mutex_;
  bool stopped_ = false;

  // Failure handling: cold, but the drain reads timers_.armed() once per batch (its own line).
  timer_queue timers_{cfg_.timer_capacity};
  dead_letter_store dead_letters_{cfg_.dead_letter_capacity};
  std::vector<subscription_state*> subscriptions_;  // guarded by the subscription lock

  // Keyed events: config::key_strands strands, made by the first keyed publish (read with
  // acquire by the keyed path only).
  std::atomic<strand*> strands_{nullptr};

  // Health: each worker's context while it runs (null before and after), how many still run,
  // and what the last health() call saw of each (for "since when").
  std::unique_ptr<std::atomic<thread_context*>[]> worker_ctx_;
  std::atomic<std::uint32_t> workers_running_{0};
  wait_point workers_exited_;
  struct health_sample {
    std::uint64_t batches = 0;
    std::uint64_t since_ns = 0;
    bool running = false;
  };
  std::mutex health_mutex_;
  std::vector<health_sample> health_samples_;  // guarded by health_mutex_

  worker_pool workers_;
};
static_assert(alignof(bus_core) == cache_line && sizeof(bus_core) % cache_line == 0,
              "tachyon: a bus_core starts and ends on a cache line");

}  // namespace tachyon::detail
