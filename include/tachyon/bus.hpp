// tachyon/bus.hpp — the event bus.
//
// tachyon::bus<Registry> carries the event types listed in Registry (registry.hpp). Any thread
// publishes; a pool of `config::workers` threads (or the owner, in manual mode) runs the
// subscribed handlers, the most urgent lane first.
//
// Thread-safety: every member function may be called from any thread, concurrently with the
// others, and from inside handlers, except where a comment says otherwise. The bus must not be
// destroyed while another thread still calls into it.
//
// Memory ordering: everything a publisher wrote before publish() returned ok happens-before
// the handlers' run for that event (moodycamel's enqueue releases, its dequeue acquires).
// Ordering: FIFO per publishing thread within one lane; nothing between threads or lanes,
// except that a worker always takes the most urgent non-empty lane first. Events published with
// the same publish_options::key run one at a time in publish order, across threads and lanes.
// A subscribe_options::serial handler never runs on two threads at once.
//
// Hot paths. publish(): one credit spent from this thread's account in the lane (a store to a
// line only this thread writes, a compiler barrier, a re-check of its limit and of the stop
// flag; one read-modify-write on the lane's pool per refill of up to 64 credits), one rdtsc
// (none with config::timestamps false), one moodycamel enqueue with this thread's token, one
// relaxed counter store, one load to see whether a worker sleeps; no lock, no syscall unless a
// worker sleeps, no allocation for events stored inline (trivially copyable, <= 24 bytes,
// alignment <= 8). Drain: per batch one bulk dequeue, one fetch_add giving the batch's credits
// back to the lane's pool, one plain store announcing the reader epoch (the matching full
// barrier is the writer's membarrier: detail/subscription/fence.hpp) and one relaxed load, on
// leaving, of the "something is retired" hint on the epoch's line, a few counter stores and
// two of the in-flight mark; per event one indirect call into the type's dispatcher, the
// handler calls and one counter store. A thread's first call into a bus allocates its context
// (consumer tokens, counters), and its first publish into a lane its moodycamel producer.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <tachyon/config.hpp>
#include <tachyon/detail/bus_core.hpp>
#include <tachyon/detail/subscription/handler_tables.hpp>
#include <tachyon/detail/type_name.hpp>
#include <tachyon/health.hpp>
#include <tachyon/meta.hpp>
#include <tachyon/metrics.hpp>
#include <tachyon/registry.hpp>
#include <tachyon/resilience.hpp>
#include <tachyon/result.hpp>
#include <tachyon/stop_mode.hpp>
#include <tachyon/subscription.hpp>
#include <tachyon/time.hpp>

namespace tachyon {

/// Per-call publish settings.
struct publish_options {
  std::optional<priority> lane = std::nullopt;  ///< empty: the type's default priority
  std::uint64_t correlation_id = 0;             ///< handed to handlers in meta
  /// On the bus's time source (bus::now()); 0: none. An event whose deadline has passed when
  /// its handlers would start is not run: it settles as `expired`. A retry of it that would
  /// start after the deadline is not run either: that delivery fails for good.
  std::chrono::nanoseconds deadline{0};
  /// On the bus's time source; 0 or a time already past: now. A later time parks the event in
  /// the bus's timer (config::timer_capacity; a full timer returns `full`) until then, and it
  /// then enters its lane through the re-entry door. It is accepted (and in flight) at once.
  std::chrono::nanoseconds not_before{0};
  /// With a deadline: an expired event goes to the dead letters (if the bus has any), to be
  /// replayed to all of its type's handlers.
  bool dead_letter_expired = false;
  /// 0: none. Events published with the same non-zero key (of any type, in any lane) run one
  /// at a time, in publish order: in the order one thread published them, and between threads
  /// in the order their publish() calls took (a call that happens-before another goes first;
  /// calls that overlap are ordered either way, but the same for every observer). Other keys
  /// run in parallel, on other workers. Keys are hashed onto config::key_strands strands;
  /// keys that share a strand are also run one at a time and in their common publish order.
  /// Each event still runs from its own lane (priority orders the strands, not the events of
  /// one key: a critical event waits for the less urgent ones published before it with its
  /// key). Admitted under the lane's bound like any event. A retry of a keyed event's
  /// subscription runs after its backoff, outside the key's order; see the README. Not with
  /// not_before (std::invalid_argument). The first keyed publish of a thread, and of the bus,
  /// allocates; after that the nodes are reused.
  std::uint64_t key = 0;
};

/// Per-subscription settings.
template <class T>
struct subscribe_options {
  /// Handlers of one type run in ascending `order`, then in subscription order.
  int order = 0;
  /// When set, the handler runs only for events where filter(ev) is true. Called on the
  /// dispatching thread; must not throw (a throw counts as the handler's).
  std::function<bool(const T&)> filter = {};
  /// Names the subscription in dead letters, the error hook, metrics and health. Empty: the
  /// type's name and the subscription's number within the bus, "app::Quote#3".
  std::string name = {};
  /// Retries of a delivery that threw (only this subscription runs again). Default: none.
  retry_policy retry = {};
  /// A circuit breaker around the handler. Default: none.
  breaker_policy breaker = {};
  /// A delivery that fails for good (retries exhausted, or short-circuited under
  /// when_open::dead_letter) goes to the bus's dead letters, when it has any
  /// (config::dead_letter_capacity); false: it is counted `failed` instead.
  bool dead_letters = true;
  /// The handler never runs on two threads at once (its calls from the workers, poll(),
  /// dispatch(), retries and replays take turns). A thread that finds it running elsewhere
  /// waits (a short spin, then a futex sleep) with its batch in hand. A call from inside the
  /// handler itself on the same thread (a dispatch() of its own type) runs nested at once
  /// instead of waiting for itself. The filter is not serialised. false (the default) costs
  /// nothing: a plain subscription's call is chosen at subscribe. true costs, per call, two
  /// read-modify-writes on a line of the subscription's own (uncontended, it stays in the
  /// running thread's cache). Serial handlers that dispatch() into each other on two threads
  /// can deadlock, as two locks taken in opposite orders would: publish() instead.
  bool serial = false;
};

/// What publish_batch() did: `queued` will be dispatched, `dropped` were taken and discarded
/// (overflow::drop); status is ok when every event was taken, else why the rest was refused
/// (the refused events are the last size - queued - dropped of the span).
struct [[nodiscard]] batch_result {
  std::size_t queued = 0;
  std::size_t dropped = 0;
  result status = result::ok;
};

namespace detail {
/// subscribe_options' policies, checked at subscribe(): std::invalid_argument names the field,
/// the value and what is allowed.
void validate_policies(const retry_policy& r, const breaker_policy& b);
}  // namespace detail

/// `Traits` (time.hpp): compile-time choices; today the time source that retries, delays,
/// deadlines, breakers and health read.
template <class Registry, class Traits = default_traits>
class bus {
 public:
  using registry_type = Registry;
  using traits_type = Traits;
  using time_source_type = typename Traits::time_source;

  /// Validates `cfg` (throws std::invalid_argument naming the field, the value and what is
  /// allowed), reserves the lanes' memory and starts the workers, pinned and named. Throws
  /// std::runtime_error if a worker cannot be pinned; nothing is left running then.
  explicit bus(const config& cfg = {})
      : core_(cfg, detail::type_table{type_ops_.data(), dispatch_column_.data(), Registry::size},
              &handlers_, detail::time_ref{&read_time, &time_, time_source_type::is_virtual}) {
    // The layout promise of the members' comment below, checked where the class is complete.
    static_assert(alignof(detail::bus_core) == detail::cache_line &&
                      alignof(detail::handler_tables<Registry>) == detail::cache_line,
                  "tachyon: the core and the handler tables each start a cache line");
    static_assert(sizeof(bus) % detail::cache_line == 0,
                  "tachyon: a bus shares no cache line with its neighbours");
    core_.start();
  }

  /// stop(stop_mode::drain) unless stopped already, then frees the handler tables. Handles
  /// that outlive the bus become inert.
  ~bus() {
    core_.stop(stop_mode::drain);  // a discard asked for earlier still wins
    // Then handlers_ (declared after core_) frees the tables, before core_ goes.
  }

  bus(const bus&) = delete;
  bus& operator=(const bus&) = delete;

  // ---- publish ---------------------------------------------------------------------------------

  /// Queues `ev` in its lane (the type's default priority unless told). Never throws on a
  /// full lane: applies config::overflow and says what happened. Under overflow::block, a call
  /// from inside a handler of this bus does not wait (it could wait for itself): it returns
  /// `full`. On `full` and `stopped` an rvalue `ev` is left untouched.
  /// Allocates only for boxed events (not trivially copyable, > 32 bytes or over-aligned) and
  /// on a thread's first call (and, with publish_options::key, while a thread has more keyed
  /// events in flight than ever before). Throws std::invalid_argument for a priority outside
  /// the four or a key with not_before, and whatever T's move/copy constructor throws.
  template <class E>
  result publish(E&& ev) {
    return publish(std::forward<E>(ev), publish_options{});
  }
  template <class E>
  result publish(E&& ev, priority p) {
    return publish(std::forward<E>(ev), publish_options{.lane = p});
  }
  template <class E>
  result publish(E&& ev, const publish_options& opts) {
    using T = std::remove_cvref_t<E>;
    constexpr auto index = static_cast<std::uint16_t>(Registry::template index_of<T>());
    const unsigned l = lane_of<T>(opts.lane);
    if ((static_cast<std::uint64_t>(opts.deadline.count() | opts.not_before.count()) | opts.key) !=
        0) [[unlikely]]
      return publish_timed<T>(std::forward<E>(ev), l, index, opts);
    return core_.template publish<detail::stored_inline<T>>(
        l, index, opts.correlation_id,
        [&](detail::envelope& env) { detail::store_payload<T>(env, std::forward<E>(ev)); });
  }

  /// Publishes a span of events of one type, taking lane room for up to 64 at a time (one
  /// admission and one moodycamel bulk enqueue per chunk; inline events are built directly in
  /// the queue's slots). The overflow policy applies per event. If copying an event throws,
  /// nothing of its chunk is queued and tachyon::publish_batch_error says what was.
  template <class T>
  batch_result publish_batch(std::span<const T> evs, std::optional<priority> p = std::nullopt) {
    constexpr auto index = static_cast<std::uint16_t>(Registry::template index_of<T>());
    const auto out = core_.publish_batch(
        lane_of<T>(p), index, evs.data(), evs.size(),
        [&](detail::envelope& env, auto i) { detail::store_payload<T>(env, evs[i]); });
    return batch_result{out.queued, out.dropped, out.status};
  }

  // ---- subscribe -------------------------------------------------------------------------------

  /// Adds a handler for T: `void(const T&)` or `void(const T&, const tachyon::meta&)`. It may
  /// run on several workers at once, unless subscribe_options::serial. Takes the subscription
  /// lock and allocates; safe from any thread and from inside handlers. Events already queued
  /// will reach it.
  template <class T, class F>
  [[nodiscard]] subscription subscribe(F&& handler, subscribe_options<T> opts = {}) {
    static_assert(Registry::template contains<T>,
                  "tachyon: subscribe<T>: T is not in the bus's registry; add it to "
                  "tachyon::registry<...>");
    static_assert(std::is_invocable_v<std::decay_t<F>&, const T&> ||
                      std::is_invocable_v<std::decay_t<F>&, const T&, const meta&>,
                  "tachyon: a handler must be callable as f(const T&) or "
                  "f(const T&, const tachyon::meta&)");
    detail::validate_policies(opts.retry, opts.breaker);
    return subscription(handlers_.template add<T>(
        std::forward<F>(handler), opts.order, std::move(opts.filter),
        [&](detail::subscription_state& s) {
          s.name = opts.name.empty()
                       ? std::string(detail::type_name<T>()) + "#" + std::to_string(s.sequence)
                       : std::move(opts.name);
          s.retry = opts.retry;
          s.breaker = std::move(opts.breaker);
          s.dead_letters = opts.dead_letters;
          s.serial = opts.serial;
          s.resilient = s.retry.max_attempts > 1 || s.breaker.failure_threshold != 0;
        }));
  }

  // ---- dispatch --------------------------------------------------------------------------------

  /// Runs T's handlers now, on this thread, in order; counted like a published event (in
  /// accepted, then dispatched or failed, in the type's default lane). Works after stop().
  /// Allocates nothing after the thread's first call into the bus.
  template <class T>
  void dispatch(const T& ev) {
    constexpr std::size_t index = Registry::template index_of<T>();
    constexpr auto l = static_cast<unsigned>(Registry::template default_priority_of<T>());
    detail::thread_context& ctx = core_.context();
    meta m;
    m.sequence = ctx.take_sequence();
    m.type_index = static_cast<std::uint16_t>(index);
    m.lane = static_cast<priority>(l);
    core_.enter_dispatch(ctx);
    const bool ok = handlers_.template run<T, index, false>(ev, m, ctx);
    core_.exit_dispatch(ctx);
    if (ok) [[likely]] {
      detail::bump(ctx.sync_ok(index));
    } else {
      ctx.count(l, index, detail::c_accepted);
      ctx.count(l, index, detail::c_failed);
    }
  }

  // ---- manual drive, stop, metrics ---------------------------------------------------------

  /// Runs at most one batch (config::batch events) from the most urgent non-empty lane on
  /// this thread; returns how many ran. For manual mode (workers = 0), also allowed beside
  /// workers. Throws std::logic_error if called from inside a handler of this bus. Counts, and
  /// `max_events` below bounds, the lanes' entries: an event, a due retry or delayed event, or
  /// a key's turn (publish_options::key), which runs a share of the batch of that key's events
  /// (the handlers' own counts are exact).
  std::size_t run_once() { return core_.run_once(); }

  /// Runs batches on this thread until the lanes are empty or `max_events` ran; returns how
  /// many ran. Same rules as run_once().
  std::size_t poll(std::size_t max_events = SIZE_MAX) { return core_.poll(max_events); }

  /// Refuses new publishes (result::stopped) at once, then drain: runs everything queued and
  /// joins the workers; discard: runs nothing more, releases and counts what is queued, and
  /// joins. Returns how many events it discarded. Idempotent; the second call returns 0.
  /// Called from inside a handler it only begins the stop (it cannot join its own thread);
  /// the destructor, or a later stop() from outside, finishes it. Retries and delayed events:
  /// drain runs them now (no backoff, no wait; each delivery still bounded by max_attempts);
  /// discard settles them as discarded (see the README's Failures). In manual mode it does not
  /// wait for other threads' poll() / run_once(): stop those first.
  std::uint64_t stop(stop_mode mode = stop_mode::drain) { return core_.stop(mode); }

  /// stop(mode), but waits at most `timeout` (real time) for the workers to return: a handler
  /// that never returns no longer hangs it silently. On time-out it returns complete = false,
  /// what is unsettled, and which workers are stuck, in which subscription, since when; the
  /// bus stays stopping (publishes refused). A later stop() finishes the stop, and the
  /// destructor waits for the workers without limit: a bus cannot be freed under a handler
  /// that is still running. In manual mode everything runs on the caller, and the timeout
  /// has nothing to bound.
  stop_report stop(stop_mode mode, std::chrono::nanoseconds timeout) {
    return core_.stop(mode, timeout);
  }

  /// Per worker: idle, parked, running (which subscription, since when) or stalled (in one
  /// batch longer than config::stall_threshold); lanes above config::fill_warning; breakers
  /// not closed; dead letters. See health.hpp for how it is measured.
  health_report health() { return core_.health(); }

  /// Sums every thread's counters into a snapshot (see metrics.hpp). Allocates; lock-free
  /// with respect to publishers and workers. Racy while the bus runs, exact once quiet.
  metrics_snapshot metrics() const { return core_.metrics(); }

  const config& settings() const noexcept { return core_.cfg(); }

  // ---- time and dead letters -------------------------------------------------------------

  /// Now, on the bus's time source: what publish_options::deadline and not_before are
  /// measured against.
  std::chrono::nanoseconds now() const noexcept { return time_.now(); }
  /// The time source itself (a virtual_clock, to move it).
  time_source_type& time_source() noexcept { return time_; }

  /// Entries in the dead letters now.
  std::size_t dead_letter_count() const noexcept { return core_.dead_letters().size(); }

  /// Calls `visitor(const tachyon::dead_letter<T>&)` for each dead letter, oldest first, with T
  /// its event's type: the visitor must accept every registered type (a generic lambda). It
  /// sees a copy of the queue taken at the call; it may call into the bus.
  template <class Visitor>
  void visit_dead_letters(Visitor&& visitor) const {
    auto entries = core_.dead_letters().copy();
    const release_all guard{entries};
    for (auto& e : entries) with_view(e, visitor);
  }

  /// Runs again, on this thread, the subscription that failed each dead letter `pick` chooses
  /// (`pick(const tachyon::dead_letter<T>&)` -> bool, over every registered type), and never a
  /// handler that already succeeded; an expired event's entry runs all its type's handlers, as
  /// a dispatch would (through their breakers). A subscription's entry bypasses its breaker (it
  /// is neither asked nor told) and its retries. A replay keeps the event's meta (correlation id,
  /// sequence; meta::flags has meta_flags::replayed) and counts in `replayed`, not `accepted`. An
  /// entry whose replay succeeds leaves the dead letters; one that throws again stays, its attempts
  /// + 1 and its error the new one. It waits for nothing, so it may run inside a handler.
  template <class Pick>
  replay_result replay_dead_letters(Pick&& pick) {
    std::vector<std::uint64_t> ids;
    {
      auto entries = core_.dead_letters().copy();
      const release_all guard{entries};  // also when `pick` throws
      for (auto& e : entries)
        if (with_view(e, pick)) ids.push_back(e.id);
    }
    return replay(ids);
  }
  replay_result replay_dead_letters() {
    return replay_dead_letters([](const auto&) { return true; });
  }
  /// Removes every dead letter; returns how many.
  std::size_t clear_dead_letters() {
    std::deque<detail::dead_letter_entry> all;
    core_.dead_letters().take_all(all);
    for (auto& e : all) e.dispose();
    return all.size();
  }

  /// The registered type's name, as metrics and the error hook report it.
  template <class T>
  static constexpr std::string_view type_name() noexcept {
    return detail::type_name<T>();
  }

 private:
  friend struct detail::bus_access;

  template <class T>
  static unsigned lane_of(std::optional<priority> p) {
    static_assert(Registry::template contains<T>,
                  "tachyon: publish: this event type is not in the bus's registry; add it to "
                  "tachyon::registry<...>");
    if (!p) return static_cast<unsigned>(Registry::template default_priority_of<T>());
    const auto l = static_cast<unsigned>(*p);
    if (l >= priority_count) [[unlikely]]
      throw_not_a_lane(l);
    return l;
  }
  /// lane_of's refusal, out of line: with the message built inline, lane_of was big enough that
  /// GCC stopped inlining it into publish() once the translation unit grew (a bus of one more
  /// type), and publish() then kept its publish_options on the stack across the call (+46
  /// instructions per publish, perf/callgrind).
  [[noreturn, gnu::cold, gnu::noinline]] static void throw_not_a_lane(unsigned l) {
    throw std::invalid_argument("tachyon::publish: priority " + std::to_string(l) +
                                " is not a lane; allowed: critical (0), high (1), normal "
                                "(2), low (3)");
  }

  static std::uint64_t read_time(const void* source) noexcept {
    return static_cast<std::uint64_t>(static_cast<const time_source_type*>(source)->now().count());
  }

  template <class T, std::size_t I>
  static void dispatch_one(void* self, detail::envelope& env, detail::thread_context& ctx) {
    auto& tables = *static_cast<detail::handler_tables<Registry>*>(self);
    if (tables.template run<T, I>(detail::payload_of<T>(env), env.header, ctx)) [[likely]] {
      detail::bus_core::settle_ok(ctx, env);
      detail::release_payload<T>(env);
    } else {
      tables.core().resolve_failed(ctx, env, &release_one<T>);  // takes the payload
    }
  }

  template <class T>
  static void release_one(detail::envelope& env) noexcept {
    detail::release_payload<T>(env);
  }

  /// An envelope of type index Registry::size: it carries a delivery (a retry, a delayed event,
  /// an event with a deadline), run by its event's type.
  static void dispatch_delivery(void* self, detail::envelope& env, detail::thread_context& ctx) {
    detail::delivery* d = detail::bus_core::delivery_of(env);
    type_ops_[d->event->env.header.type_index].run_delivery(self, *d, ctx);
  }
  /// Lets a delivery go without counting it (its enqueue failed; see discard_delivery).
  static void release_delivery(detail::envelope& env) noexcept {
    detail::bus_core::delivery_of(env)->dispose();
  }

  template <class T, std::size_t I>
  static void run_delivery(void* self, detail::delivery& d, detail::thread_context& ctx) {
    auto& tables = *static_cast<detail::handler_tables<Registry>*>(self);
    detail::bus_core& core = tables.core();
    detail::parked_event& pe = *d.event;
    if (pe.deadline_ns != 0 && core.now_ns() >= pe.deadline_ns) {
      core.expire_delivery(ctx, &d);
      return;
    }
    meta m = pe.env.header;
    m.attempt = d.attempt;
    if (!d.front) m.flags = static_cast<std::uint8_t>(m.flags | meta_flags::reentered);
    const T& ev = detail::payload_of<T>(pe.env);
    detail::run_status status;
    if (d.target == nullptr)
      status = tables.template run<T, I>(ev, m, ctx) ? detail::run_status::ok
                                                     : detail::run_status::failed;
    else
      status = tables.template run_one<T>(ev, m, ctx, d.target);
    core.finish_delivery(ctx, &d, status);
  }

  template <class T, std::size_t I>
  static bool replay_entry(void* self, detail::dead_letter_entry& e, detail::thread_context& ctx) {
    auto& tables = *static_cast<detail::handler_tables<Registry>*>(self);
    meta m = e.event->env.header;
    m.attempt = static_cast<std::uint8_t>(std::min<std::uint32_t>(e.attempts, UINT8_MAX));
    m.flags = static_cast<std::uint8_t>(m.flags | meta_flags::replayed);
    const T& ev = detail::payload_of<T>(e.event->env);
    const auto kept = detail::bus_core::mark_failures(ctx);  // a replay inside a handler
    tables.core().enter_dispatch(ctx);
    const bool ok = e.target == nullptr ? tables.template run<T, I>(ev, m, ctx)
                                        : tables.template replay_one<T>(ev, m, ctx, e.target) ==
                                              detail::run_status::ok;
    tables.core().exit_dispatch(ctx);
    detail::bus_core::take_replay_error(ctx, e, kept);  // no retry, no breaker's dead letter
    return ok;
  }

  template <class T, class E>
  [[gnu::noinline]] result publish_timed(E&& ev, unsigned l, std::uint16_t index,
                                         const publish_options& opts) {
    const auto deadline = static_cast<std::uint64_t>(opts.deadline.count());
    const auto not_before = static_cast<std::uint64_t>(opts.not_before.count());
    if (opts.key != 0) {
      // A keyed event takes its place in its key's order when it is published; one held back
      // until later would hold back every later event of its key (and of the keys sharing its
      // strand) behind it.
      if (not_before != 0)
        throw std::invalid_argument(
            "tachyon::publish: publish_options::key and not_before cannot be combined: a keyed "
            "event takes its place in its key's order when published; allowed: a key with or "
            "without a deadline, or not_before without a key");
      if (deadline == 0)
        return core_.publish_keyed(
            l, index, opts.correlation_id, opts.key,
            [&](detail::envelope& env) { detail::store_payload<T>(env, std::forward<E>(ev)); });
    }
    if (not_before > core_.now_ns()) {
      if (const result r = core_.timer_admit(l, index); r != result::ok) return r;
      detail::parked_event* pe = nullptr;
      detail::envelope env;
      core_.stamp_delayed(env.header, l, index, opts.correlation_id);
      try {
        detail::store_payload<T>(env, std::forward<E>(ev));
        try {
          pe = new detail::parked_event(env, &release_one<T>, deadline);
        } catch (...) {
          detail::release_payload<T>(env);
          throw;
        }
      } catch (...) {
        core_.timer_unadmit();
        throw;
      }
      pe->dead_letter_expired = opts.dead_letter_expired;
      core_.park_delayed(pe, not_before);
      return result::ok;
    }
    // A deadline alone: through the front door like any event (or its key's strand), carried as
    // a delivery that checks the deadline when it starts.
    auto with_deadline = [&](detail::envelope& env) {
      detail::envelope held;
      held.header = env.header;  // as stamped: sequence, ticks, the real type
      detail::store_payload<T>(held, std::forward<E>(ev));
      detail::parked_event* pe;
      detail::delivery* d;
      try {
        pe = new detail::parked_event(held, &release_one<T>, deadline);
      } catch (...) {
        detail::release_payload<T>(held);
        throw;
      }
      pe->dead_letter_expired = opts.dead_letter_expired;
      try {
        d = new detail::delivery{pe, nullptr};
      } catch (...) {
        pe->release_ref();
        throw;
      }
      d->front = true;
      env.header.type_index = core_.delivery_type();
      detail::bus_core::carry(env, d);
    };
    if (opts.key != 0)
      return core_.publish_keyed(l, index, opts.correlation_id, opts.key, with_deadline);
    return core_.template publish<false>(l, index, opts.correlation_id, with_deadline);
  }

  /// Lets go of the references that copies of dead-letter entries hold, however the scope ends.
  struct release_all {
    std::vector<detail::dead_letter_entry>& entries;
    ~release_all() {
      for (auto& e : entries) e.dispose();
    }
  };

  /// Calls f(const dead_letter<T>&) for entry e with T its event's type; returns what f does.
  template <class F>
  static auto with_view(detail::dead_letter_entry& e, F& f) {
    using R = decltype(f(std::declval<const dead_letter<typename type_at<0>::type>&>()));
    return with_view_at<R>(e, f, std::make_index_sequence<Registry::size>{});
  }
  template <class R, class F, std::size_t... I>
  static R with_view_at(detail::dead_letter_entry& e, F& f, std::index_sequence<I...>) {
    const std::size_t t = e.event->env.header.type_index;
    if constexpr (std::is_void_v<R>) {
      (void)((t == I ? (f(view_of<typename type_at<I>::type>(e)), true) : false) || ...);
    } else {
      R out{};
      (void)((t == I ? (out = f(view_of<typename type_at<I>::type>(e)), true) : false) || ...);
      return out;
    }
  }
  template <class T>
  static dead_letter<T> view_of(const detail::dead_letter_entry& e) {
    return dead_letter<T>{
        detail::payload_of<T>(e.event->env),
        e.event->env.header,
        e.target != nullptr ? std::string_view(e.target->name) : std::string_view(),
        e.attempts,
        e.error,
        e.what,
        std::chrono::nanoseconds(e.when_ns),
        e.id};
  }

  replay_result replay(std::vector<std::uint64_t>& ids) {
    replay_result out;
    if (ids.empty()) return out;
    std::sort(ids.begin(), ids.end());
    detail::thread_context& ctx = core_.context();  // may allocate: before anything is taken
    auto taken = core_.dead_letters().take(ids);
    for (auto& e : taken) {
      if (e.target != nullptr && !e.target->live.load(std::memory_order_acquire)) {
        ++out.skipped;
        core_.dead_letters().put_back(std::move(e));
        continue;
      }
      const auto& h = e.event->env.header;
      ++out.replayed;
      ctx.count(static_cast<unsigned>(h.lane), h.type_index, detail::c_replayed);
      if (type_ops_[h.type_index].replay(&handlers_, e, ctx)) {
        ++out.succeeded;
        e.dispose();
      } else {
        ++out.failed;
        ++e.attempts;
        core_.dead_letters().put_back(std::move(e));
      }
    }
    return out;
  }

  template <std::size_t I>
  static constexpr detail::dispatch_fn dispatch_of() noexcept {
    return &dispatch_one<typename type_at<I>::type, I>;
  }
  template <std::size_t... I>
  static constexpr auto make_type_ops(std::index_sequence<I...>) {
    return std::array<detail::type_ops, Registry::size + 2>{
        detail::type_ops{
            dispatch_of<I>(), &release_one<typename type_at<I>::type>,
            &run_delivery<typename type_at<I>::type, I>,
            &replay_entry<typename type_at<I>::type, I>,
            detail::type_name<typename type_at<I>::type>(),
            static_cast<std::uint8_t>(
                Registry::template default_priority_of<typename type_at<I>::type>())}...,
        detail::type_ops{&dispatch_delivery, &release_delivery, nullptr, nullptr, "delivery", 0},
        detail::type_ops{&detail::bus_core::dispatch_strand, &detail::bus_core::release_token,
                         nullptr, nullptr, "strand", 0}};
  }
  template <std::size_t... I>
  static constexpr auto make_dispatch_column(std::index_sequence<I...>) {
    return std::array<detail::dispatch_fn, Registry::size + 2>{
        dispatch_of<I>()..., &dispatch_delivery, &detail::bus_core::dispatch_strand};
  }
  template <std::size_t I>
  struct type_at {
    using type = typename Registry::template type_at<I>;
  };

  // One row per type (dispatch, release, name, default lane), one for deliveries and one for
  // strand tokens (type_table). Defined below the class: its initialiser needs the complete class.
  static const std::array<detail::type_ops, Registry::size + 2> type_ops_;
  // type_ops_[i].dispatch again, packed (type_table::dispatch): the drain's per-event lookup.
  static const std::array<detail::dispatch_fn, Registry::size + 2> dispatch_column_;

  // A bus may sit anywhere (a stack frame, a struct): the lines its workers read on every event
  // (the core's settings first, the handler tables last) are kept apart from whatever the
  // application writes next to it. bus_core is line-aligned and handlers_ (its tables) starts a
  // line, so the object's size is a multiple of 64 and no neighbour shares either end. Sharing a
  // line with a publisher's stack variable cost a cross-core transfer per hop: with ~760 ns hops on
  // the development VM the round trip went from 1.2-1.3x bare moodycamel to 0.95-1.08x when this
  // was fixed (the paired round trip, now in bench/latency.cpp; same run for both).
  time_source_type time_;  // read by the core (time_ref): constructed before it, gone after
  detail::bus_core core_;  // destroyed after the tables
  detail::handler_tables<Registry> handlers_{core_};  // its tables start a line
};

template <class Registry, class Traits>
const std::array<detail::type_ops, Registry::size + 2> bus<Registry, Traits>::type_ops_ =
    bus<Registry, Traits>::make_type_ops(std::make_index_sequence<Registry::size>{});
template <class Registry, class Traits>
const std::array<detail::dispatch_fn, Registry::size + 2> bus<Registry, Traits>::dispatch_column_ =
    bus<Registry, Traits>::make_dispatch_column(std::make_index_sequence<Registry::size>{});

}  // namespace tachyon
