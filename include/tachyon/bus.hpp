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
// two of the in-flight mark; per event one 16-byte copy of its sequence and correlation id to
// the thread's context (what a handler's publish inherits), one indirect call into the type's
// dispatcher, the handler calls and one counter store. A thread's first call into a bus allocates
// its context (consumer tokens, counters), and its first publish into a lane its moodycamel
// producer. A type registered with conflate_by (detail/conflation/) publishes through its key's
// slot instead: one box allocated per publish, and a replacement of a waiting event is one CAS and
// no lane room. Types without the option compile none of it (if constexpr; their dispatch and
// release rows are unchanged).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <climits>
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
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <tachyon/config.hpp>
#include <tachyon/detail/bus_core.hpp>
#include <tachyon/detail/conflation/conflation.hpp>
#include <tachyon/detail/journal/identity.hpp>
#include <tachyon/detail/journal/journal.hpp>
#include <tachyon/detail/subscription/handler_tables.hpp>
#include <tachyon/detail/subscription/waiters.hpp>
#include <tachyon/detail/type_name.hpp>
#include <tachyon/health.hpp>
#include <tachyon/intercept.hpp>
#include <tachyon/meta.hpp>
#include <tachyon/metrics.hpp>
#include <tachyon/registry.hpp>
#include <tachyon/resilience.hpp>
#include <tachyon/result.hpp>
#include <tachyon/settle.hpp>
#include <tachyon/stop_mode.hpp>
#include <tachyon/subscription.hpp>
#include <tachyon/time.hpp>

namespace tachyon {

/// Per-call publish settings.
struct publish_options {
  std::optional<priority> lane = std::nullopt;  ///< empty: the type's default priority
  /// Handed to handlers in meta. 0: none, or, from inside a handler, the running event's
  /// (correlation follows a chain of events from the one that started it).
  std::uint64_t correlation_id = 0;
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
  /// Told, exactly once, how the event ended (settle.hpp), if publish() returns `ok`. The event
  /// is carried as an event with a deadline is (one allocation for it, one for its run); it is
  /// not conflated. Not with publish_batch() (one listener is told about one event) nor
  /// dispatch() (which returns when the event has run): std::invalid_argument.
  settle_listener* on_settle = nullptr;
  /// The event came from outside this bus (a bridge's import, a journal's replay): its
  /// handlers see meta_flags::external in meta::flags on every run of it (retries and
  /// dead-letter replays included), so that a bridge's export never sends an import back.
  /// Allowed with dispatch() and publish_batch(). An external event of a conflated type is not
  /// conflated (as one with a deadline is not): publish() takes the options' path, which keeps
  /// the plain path free of the flag.
  bool external = false;
  /// With external (alone it is ignored): its source delivered it before (a JetStream
  /// redelivery after the importing process died, say); handlers see meta_flags::redelivered.
  /// Read only on the cold path that `external` already takes: plain publish()'s one test of
  /// its options stays as it is (perf/README.md says what a wider one cost).
  bool redelivered = false;
};

/// Per-subscription settings. subscribe_options<> (void): those of a subscription to several
/// types (subscribe_all, subscribe<A, B, C>, subscribe_tagged), which has no typed filter.
template <class T = void>
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

template <>
struct subscribe_options<void> {
  int order = 0;                ///< as subscribe_options<T>::order, in each type's list
  std::string name = {};        ///< empty: the types' names and the subscription's number
  retry_policy retry = {};      ///< as subscribe_options<T>::retry
  breaker_policy breaker = {};  ///< one breaker for all its types
  bool dead_letters = true;     ///< as subscribe_options<T>::dead_letters
};

/// What publish_batch() did: `queued` will be dispatched, `dropped` were taken and discarded
/// (overflow::drop), `vetoed` were refused by an interceptor (anywhere in the span; the others
/// went on); status is ok when every event was taken or vetoed, else why the rest was refused
/// (the refused events are the last size - queued - dropped - vetoed of the span).
struct [[nodiscard]] batch_result {
  std::size_t queued = 0;
  std::size_t dropped = 0;
  result status = result::ok;
  std::size_t vetoed = 0;
};

namespace detail {
/// subscribe_options' policies, checked at subscribe(): std::invalid_argument names the field,
/// the value and what is allowed.
void validate_policies(const retry_policy& r, const breaker_policy& b);

/// What a bus takes from its Traits (time.hpp, intercept.hpp): each member is optional.
template <class Traits>
struct time_source_of {
  using type = steady_time;
};
template <class Traits>
requires requires { typename Traits::time_source; }
struct time_source_of<Traits> {
  using type = typename Traits::time_source;
};
template <class Traits>
struct interceptors_of {
  using type = interceptors<>;
};
template <class Traits>
requires requires { typename Traits::interceptors; }
struct interceptors_of<Traits> {
  using type = typename Traits::interceptors;
};

/// A visitor of several types takes each as v(const T&, const meta&) or v(const T&).
template <class V, class T>
inline constexpr bool visits =
    std::is_invocable_v<V&, const T&, const meta&> || std::is_invocable_v<V&, const T&>;
/// Instantiated per type: its failure names the type it cannot take in the compiler's
/// "required from" line.
template <class V, class T>
struct visitor_takes {
  static_assert(visits<V, T>,
                "tachyon: subscribe_all / subscribe<A, B, ...> / subscribe_tagged: the visitor "
                "cannot be called as v(const T&, const tachyon::meta&) or v(const T&) for the "
                "event type T of this instantiation (visitor_takes<Visitor, T>); give it an "
                "overload or make it generic");
  static constexpr bool value = true;
};

/// The registered types with any of Tags, as a tuple.
template <class Registry, class T, class... Tags>
inline constexpr bool has_any_tag = (Registry::template has_tag<T, Tags> || ...);
template <class Registry, class Tuple, class... Tags>
struct tagged_types;
template <class Registry, class... Ts, class... Tags>
struct tagged_types<Registry, std::tuple<Ts...>, Tags...> {
  using type =
      decltype(std::tuple_cat(std::declval<std::conditional_t<has_any_tag<Registry, Ts, Tags...>,
                                                              std::tuple<Ts>, std::tuple<>>>()...));
};

template <class I, class T>
concept screens = requires(I& i, T& ev, publish_options& o) {
  i.before_publish(ev, o);
};
template <class I, class T>
concept precedes = requires(I& i, const T& ev, const meta& m) {
  i.before_dispatch(ev, m);
};
template <class I, class T>
concept follows = requires(I& i, const T& ev, const meta& m, std::exception_ptr e) {
  i.after_dispatch(ev, m, e);
};

template <class List>
struct interceptor_set;
template <class... Is>
struct interceptor_set<interceptors<Is...>> {
  static_assert((std::is_default_constructible_v<Is> && ...),
                "tachyon::interceptors<...>: each interceptor is default-constructed as a "
                "member of the bus");
  using tuple = std::tuple<Is...>;
  template <class T>
  static constexpr bool screens_any = (screens<Is, T> || ...);
  template <class T>
  static constexpr bool wraps_any = (precedes<Is, T> || ...) || (follows<Is, T> || ...);
  template <class T>
  static constexpr bool follows_type = (follows<Is, T> || ...);
  template <class Registry, std::size_t... I>
  static constexpr bool follows_any_of(std::index_sequence<I...>) {
    return (follows_type<typename Registry::template type_at<I>> || ...);
  }
};
}  // namespace detail

/// `Traits`: compile-time choices, each optional: `time_source` (time.hpp; steady_time when
/// absent), the clock that retries, delays, deadlines, breakers and health read, and
/// `interceptors` (intercept.hpp; none when absent).
template <class Registry, class Traits = default_traits>
class bus {
  using interceptor_set = detail::interceptor_set<typename detail::interceptors_of<Traits>::type>;

 public:
  using registry_type = Registry;
  using traits_type = Traits;
  using time_source_type = typename detail::time_source_of<Traits>::type;
  using interceptor_list = typename detail::interceptors_of<Traits>::type;

  /// Validates `cfg` (throws std::invalid_argument naming the field, the value and what is
  /// allowed), reserves the lanes' memory and starts the workers, pinned and named. Throws
  /// std::runtime_error if a worker cannot be pinned; nothing is left running then.
  explicit bus(const config& cfg = {})
      : core_(cfg, detail::type_table{type_ops_.data(), dispatch_column_.data(), Registry::size},
              &handlers_, detail::time_ref{&read_time, &time_, time_source_type::is_virtual},
              detail::hooks_ref{&interceptors_, records_run_errors}) {
    // The layout promise of the members' comment below, checked where the class is complete.
    static_assert(alignof(detail::bus_core) == detail::cache_line &&
                      alignof(detail::handler_tables<Registry>) == detail::cache_line,
                  "tachyon: the core and the handler tables each start a cache line");
    static_assert(sizeof(bus) % detail::cache_line == 0,
                  "tachyon: a bus shares no cache line with its neighbours");
    // A registry without a journaled type has nothing to write: no directory, no thread.
    if constexpr (Registry::any_journaled) {
      if (!cfg.journal.directory.empty()) {
        journal_ = std::make_unique<detail::journal>(cfg.journal, journal_types());
        core_.attach_journal(journal_.get());
      }
    }
    core_.start();
  }

  /// stop(stop_mode::drain) unless stopped already, then frees the handler tables. Handles
  /// that outlive the bus become inert.
  ~bus() {
    core_.stop(stop_mode::drain);  // a discard asked for earlier still wins
    waiters_.shutdown();           // waits still pending end with nothing; the timeout thread ends
    // Then handlers_ (declared after core_) frees the tables, before core_ goes.
  }

  bus(const bus&) = delete;
  bus& operator=(const bus&) = delete;

  // ---- publish ---------------------------------------------------------------------------------

  /// Queues `ev` in its lane (the type's default priority unless told). Never throws on a
  /// full lane: applies config::overflow and says what happened (under drop_oldest `ok`, the
  /// displaced event's payload released on this thread). Under overflow::block, a call
  /// from inside a handler of this bus does not wait (it could wait for itself): it returns
  /// `full`. On `full` and `stopped` an rvalue `ev` is left untouched.
  /// Allocates only for boxed events (not trivially copyable, > 32 bytes or over-aligned) and
  /// on a thread's first call (and, with publish_options::key, while a thread has more keyed
  /// events in flight than ever before). Throws std::invalid_argument for a priority outside
  /// the four or a key with not_before, and whatever T's move/copy constructor throws.
  /// A type registered with conflate_by<&T::key, Keys>: if an event of the same key waits in
  /// the same lane (queued, or dequeued with its handlers not yet started), `ev` replaces it
  /// (the old one is counted `conflated`) and needs no room in the lane; otherwise it is queued
  /// as any event. Allocates one box per call (the event and its meta). Not conflated: events
  /// with a deadline, not_before, a key, on_settle or external, and events whose key finds no slot
  /// once Keys keys are tracked (counted in metrics' type `unconflated`). See
  /// detail/conflation/conflation.hpp.
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
    if constexpr (interceptor_set::template screens_any<T>)
      return publish_screened<T>(std::forward<E>(ev), opts);
    else
      return publish_admitted<T>(std::forward<E>(ev), opts);
  }

  /// Publishes a span of events of one type, taking lane room for up to 64 at a time (one
  /// admission and one moodycamel bulk enqueue per chunk; inline events are built directly in
  /// the queue's slots). The overflow policy applies per event. `opts` applies to every event
  /// (lane, correlation id; with a deadline, not_before, a key or external each event is
  /// published on its own, as publish() would). on_settle is refused (std::invalid_argument):
  /// a listener is told about one event. If copying an event throws, nothing of its chunk is queued
  /// and tachyon::publish_batch_error says what was. A conflated type (conflate_by): each event is
  /// published in turn as publish() would (no bulk enqueue); a throwing copy stops there, with
  /// publish_batch_error saying what was taken.
  template <class T>
  batch_result publish_batch(std::span<const T> evs, const publish_options& opts = {}) {
    constexpr auto index = static_cast<std::uint16_t>(Registry::template index_of<T>());
    const unsigned l = lane_of<T>(opts.lane);
    if (opts.on_settle != nullptr) [[unlikely]]
      throw_batch_settle();
    if constexpr (interceptor_set::template screens_any<T>) return publish_each(evs, opts);
    if constexpr (Registry::template is_journaled<T>)
      if (journal_ != nullptr) return publish_each(evs, opts);  // one record per publish
    if ((static_cast<std::uint64_t>(opts.deadline.count() | opts.not_before.count()) | opts.key |
         reinterpret_cast<std::uintptr_t>(opts.on_settle) | opts.external) != 0) [[unlikely]]
      return publish_each(evs, opts);
    if constexpr (conflated<T>) {
      return publish_batch_conflated(evs, l, opts.correlation_id);
    } else {
      const auto out = core_.publish_batch(
          l, index, opts.correlation_id, evs.data(), evs.size(),
          [&](detail::envelope& env, auto i) { detail::store_payload<T>(env, evs[i]); });
      return batch_result{out.queued, out.dropped, out.status};
    }
  }
  template <class T>
  batch_result publish_batch(std::span<const T> evs, std::optional<priority> p) {
    return publish_batch(evs, publish_options{.lane = p});
  }

  // ---- subscribe -----------------------------------------------------------------------

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
          s.type_label = detail::type_name<T>();
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

  /// One visitor for every registered type: called as v(const T&, const meta&) (or
  /// v(const T&)) for each event of any type; a type it cannot take fails to compile, naming
  /// the type. One entry in each type's handler table, so dispatch pays for it what it pays
  /// for any handler; its handle removes it from all of them at once. Audit logs, tracing,
  /// metrics taps.
  template <class V>
  [[nodiscard]] subscription subscribe_all(V&& visitor, subscribe_options<> opts = {}) {
    return subscribe_set(std::forward<V>(visitor), std::move(opts),
                         static_cast<all_types*>(nullptr), "*");
  }

  /// One visitor for the listed types (two or more; subscribe<T>(handler) for one).
  template <class T1, class T2, class... Ts, class V>
  [[nodiscard]] subscription subscribe(V&& visitor, subscribe_options<> opts = {}) {
    static_assert(Registry::template contains<T1> && Registry::template contains<T2> &&
                      (Registry::template contains<Ts> && ...),
                  "tachyon: subscribe<A, B, ...>: every type must be in the bus's registry");
    static_assert(detail::count_of<T1, T1, T2, Ts...>() == 1 &&
                      detail::count_of<T2, T1, T2, Ts...>() == 1 &&
                      ((detail::count_of<Ts, T1, T2, Ts...>() == 1) && ...),
                  "tachyon: subscribe<A, B, ...>: a type is listed twice");
    return subscribe_set(std::forward<V>(visitor), std::move(opts),
                         static_cast<std::tuple<T1, T2, Ts...>*>(nullptr), {});
  }

  /// One visitor for every registered type tagged with any of Tags
  /// (event<T, P, tachyon::tags<...>>): the "user.*" and "*.error" subscriptions of other
  /// buses, resolved at compile time. At least one registered type must carry one of them.
  template <class... Tags, class V>
  [[nodiscard]] subscription subscribe_tagged(V&& visitor, subscribe_options<> opts = {}) {
    static_assert(sizeof...(Tags) > 0, "tachyon: subscribe_tagged<Tag...>: name a tag");
    using set = typename detail::tagged_types<Registry, all_types, Tags...>::type;
    static_assert(std::tuple_size_v<set> > 0,
                  "tachyon: subscribe_tagged<Tag...>: no registered type carries any of these "
                  "tags (event<T, P, tachyon::tags<...>>)");
    return subscribe_set(std::forward<V>(visitor), std::move(opts), static_cast<set*>(nullptr), {});
  }

  /// How many handlers T has now: subscriptions made and not yet removed. A removal counts
  /// as soon as unsubscribe() has marked the handler removed, before it waits for (or, inside
  /// a handler, without waiting for) invocations already under way. A snapshot: a subscribe or
  /// unsubscribe racing with it on another thread may or may not be counted; one that
  /// returned before the call, on any thread, is. Lock-free and never waits: it reads T's
  /// handler list as a dispatch does, under the reader epoch (so an unsubscribe cannot free the
  /// list under it), and costs what a dispatch() to no handler costs plus a load per handler;
  /// allocates only as dispatch() does. From any thread, and from inside handlers.
  template <class T>
  std::size_t subscribers() {
    static_assert(Registry::template contains<T>,
                  "tachyon: subscribers<T>: T is not in the bus's registry; add it to "
                  "tachyon::registry<...>");
    constexpr std::size_t index = Registry::template index_of<T>();
    detail::thread_context& ctx = core_.context();
    core_.enter_dispatch(ctx);  // the list may be swapped and freed by an unsubscribe meanwhile
    const std::size_t n = handlers_.template live_count<T, index>();
    core_.exit_dispatch(ctx);
    return n;
  }

  // ---- dispatch ------------------------------------------------------------------------

  /// Runs T's handlers now, on this thread, in order; counted like a published event (in
  /// accepted, then dispatched or failed, in the type's default lane, or `opts.lane`). Inside
  /// a handler it inherits the correlation id and takes the running event as its cause, as
  /// publish() does. `opts`: lane, correlation_id and external; a deadline, not_before,
  /// dead_letter_expired, key or on_settle is refused (std::invalid_argument): dispatch() runs
  /// now. Works after
  /// stop(). Allocates nothing after the thread's first call into the bus.
  template <class T>
  void dispatch(const T& ev) {
    constexpr std::size_t index = Registry::template index_of<T>();
    constexpr auto home = static_cast<unsigned>(Registry::template default_priority_of<T>());
    detail::thread_context& ctx = core_.context();
    const meta m = caused_by(ctx, 0, static_cast<std::uint16_t>(index), home);
    core_.enter_dispatch(ctx);
    // This event is now the cause of what its handlers publish. With no correlation id of its
    // own it carries the outer one, so only the sequence changes, and m holds the outer
    // sequence (its causation id) to restore.
    ctx.cause.sequence = m.sequence;
    const bool ok = run_wrapped(
        core_, ev, m, ctx, [&] { return handlers_.template run<T, index, false>(ev, m, ctx); });
    ctx.cause.sequence = m.causation_id;
    core_.exit_dispatch(ctx);
    if (ok) [[likely]] {
      detail::bump(ctx.sync_ok(index));
    } else {
      ctx.count(home, index, detail::c_accepted);
      ctx.count(home, index, detail::c_failed);
    }
  }
  template <class T>
  void dispatch(const T& ev, const publish_options& opts) {
    dispatch_in<T>(ev, opts);
  }

  // ---- waiting: wait_for, request/reply --------------------------------------------------------
  //
  // A bus that never waits pays nothing for these: its waiter table is made by the first call,
  // and no hot path reads it. Timeouts are real time (std::chrono::steady_clock), not the bus's
  // time source; a timeout <= 0 has already passed. In manual mode (workers = 0) a blocking call
  // drives the bus itself: it runs run_once() on the calling thread until its event has come or
  // its time is up, so handlers run on the caller meanwhile (other threads may poll as well).

  /// Waits for an event of type T for which pred(ev) is true, dispatched after this call has
  /// subscribed (so an event still queued when the call begins may match), and returns a copy
  /// of it: the first such event, if several are dispatched at once on different workers.
  /// std::nullopt when `timeout` passes first, or when the bus stops meanwhile (at once if it
  /// has). The wait is an ordinary subscription of T, named "tachyon::wait_for<T>", ordered
  /// after T's other handlers (order INT_MAX), added for the call and removed before it returns:
  /// T's events pay one more handler call while it waits, the call pays a subscribe and an
  /// unsubscribe (a grace period). pred runs on the dispatching threads, maybe on several at
  /// once; if it throws, the wait ends and the exception is rethrown here (T's event does not
  /// count as failed). Blocks; spins config::spin_before_park, then sleeps. Allocates.
  /// Throws std::logic_error if called from inside a handler of this bus: the event it waits
  /// for might need the very handler (or worker) it would block.
  template <class T, class Pred>
  std::optional<T> wait_for(Pred pred, std::chrono::nanoseconds timeout) {
    static_assert(Registry::template contains<T>,
                  "tachyon: wait_for<T>: T is not in the bus's registry; add it to "
                  "tachyon::registry<...>");
    static_assert(std::is_copy_constructible_v<T>,
                  "tachyon: wait_for<T>: T must be copy-constructible: the waiter gets a copy");
    static_assert(std::is_invocable_r_v<bool, Pred&, const T&>,
                  "tachyon: wait_for<T>(pred, timeout): pred must be callable as "
                  "bool(const T&)");
    refuse_wait_inside_handler("wait_for");
    const std::uint64_t deadline = detail::deadline_ns_after(timeout);
    detail::waiter_table& t = waiter_table();
    detail::blocking_waiter<T> w(t.next_id(), detail::waiter_entry::kind::wait,
                                 detail::no_reply_type);
    if (!t.insert(w, false)) return std::nullopt;  // the bus has stopped
    detail::blocking_scope<T> scope{t, w};
    subscribe_options<T> o;
    o.order = INT_MAX;
    o.name = "tachyon::wait_for<" + std::string(detail::type_name<T>()) + ">";
    o.dead_letters = false;
    subscription sub = subscribe<T>(
        [&w, &pred, table = &t](const T& ev) {
          if (w.taken.load(std::memory_order_relaxed)) return;  // over: skip the predicate
          bool match;
          try {
            match = static_cast<bool>(pred(ev));
          } catch (...) {
            if (table->take(w)) {
              w.error = std::current_exception();
              table->signal(w.delivered, w.id);
            }
            return;
          }
          if (match && table->take(w)) w.complete(*table, w, &ev);
        },
        std::move(o));
    t.count_in(w);
    await_delivery(t, w.delivered, w.id, deadline);
    scope.settle();
    sub.unsubscribe();  // nothing of this call runs after it returns
    if (w.error) std::rethrow_exception(w.error);
    return std::move(w.value);
  }
  /// wait_for() for the next event of type T, whatever it holds.
  template <class T>
  std::optional<T> wait_for(std::chrono::nanoseconds timeout) {
    return wait_for<T>([](const T&) { return true; }, timeout);
  }

  /// Publishes `req` with a fresh correlation id (2^63 + n, n counting from 1 per bus: keep
  /// your own correlation ids below 2^63 and they never meet) and calls on_reply exactly once:
  /// on_reply(&reply) when an event of type Reply carrying that correlation id is dispatched,
  /// or on_reply(nullptr) when `timeout` passes first, or when stop() finishes first. Returns
  /// the publish's result: only with result::ok will on_reply run; otherwise (full, dropped,
  /// stopped, vetoed) it never runs and the request is forgotten.
  ///
  /// on_reply(&reply) runs on the thread that dispatches the reply, as a handler of it (the
  /// subscription "tachyon::replies<Reply>", ordered after Reply's other handlers): the pointer
  /// is valid during the call only, and the rules of handlers apply (it may publish and make
  /// requests; it must not block on this bus); it may run before request() returns. If it
  /// throws, the reply counts as failed like any handler's throw. on_reply(nullptr) runs on the
  /// bus's timeout thread, "tachyon-timeout" (started by the first asynchronous request), or on
  /// the thread whose stop() finished the bus (or inside this call, if that stop() finished
  /// while it published); keep it short, it delays other timeouts. If it
  /// throws, the error hook hears of it and the replies subscription's errors count it. It must
  /// not destroy the bus.
  ///
  /// A responder answers by publishing a Reply with the request's correlation id (meta::
  /// correlation_id) in publish_options; a second answer, or one after the timeout, finds no
  /// request and is dispatched like any event. The first request for a Reply type subscribes
  /// "tachyon::replies<Reply>" for the bus's life: from then on Reply's events pay one handler
  /// call (one compare when their correlation id is below 2^63; else a striped lock). Allocates
  /// (on_reply's storage). Throws std::invalid_argument if opts.correlation_id is not 0 (the bus
  /// chooses it), and whatever publish() throws (the request is then forgotten).
  template <class Reply, class Req, detail::reply_callback<Reply> F>
  result request(Req&& req, std::chrono::nanoseconds timeout, F&& on_reply,
                 const publish_options& opts = {}) {
    check_request<Reply, Req>(opts);
    constexpr auto index = static_cast<std::uint16_t>(Registry::template index_of<Reply>());
    const std::uint64_t deadline = detail::deadline_ns_after(timeout);
    detail::waiter_table& t = waiter_table();
    detail::subscription_state* hub = replies_of<Reply>(t);
    t.start_reaper();
    using entry_t = detail::async_waiter<Reply, std::decay_t<F>>;
    auto* e = new entry_t(t.next_id(), index, Registry::template default_priority_of<Reply>(), hub,
                          std::forward<F>(on_reply));
    e->deadline_ns = deadline;
    // Both references are ours until the entry is in the table; while it is, the table's
    // goes to whoever finishes it, and ours when this call returns. An entry taken back
    // before anyone finished it is deleted outright.
    detail::requester_ref<entry_t> mine{e};
    bool registered;
    try {
      registered = t.insert(*e);
    } catch (...) {
      mine.take_back();
      throw;
    }
    if (!registered) {  // the bus has stopped
      mine.take_back();
      return result::stopped;
    }
    publish_options o = opts;
    o.correlation_id = e->id;
    result r;
    try {
      r = publish(std::forward<Req>(req), o);
    } catch (...) {
      if (t.take(*e)) mine.take_back();
      throw;
    }
    if (r != result::ok) {
      if (t.take(*e)) mine.take_back();  // no reply can come: forgotten, on_reply never runs
      return r;
    }
    t.arm(*e);
    return result::ok;
  }

  /// The blocking request: publishes `req` as the asynchronous request() does and waits for its
  /// reply; returns a copy of it, or std::nullopt when `timeout` passes first, when the bus
  /// stops meanwhile, or at once when the publish is refused (full, dropped, stopped, vetoed;
  /// counted in the metrics as any refusal). The timeout runs from the call; a publish blocked
  /// on a full lane (overflow::block) is not cut short by it. Blocks; spins
  /// config::spin_before_park, then sleeps; in manual mode it drives the bus. Throws
  /// std::logic_error if called from inside a handler of this bus (use the asynchronous form),
  /// std::invalid_argument if opts.correlation_id is not 0, and what publish() or Reply's copy
  /// throws.
  template <class Reply, class Req>
  std::optional<Reply> request(Req&& req, std::chrono::nanoseconds timeout,
                               const publish_options& opts = {}) {
    check_request<Reply, Req>(opts);
    static_assert(std::is_copy_constructible_v<Reply>,
                  "tachyon: request<Reply>(req, timeout): Reply must be copy-constructible: the "
                  "waiter gets a copy (the asynchronous request(req, timeout, on_reply) does not "
                  "copy it)");
    refuse_wait_inside_handler("request");
    constexpr auto index = static_cast<std::uint16_t>(Registry::template index_of<Reply>());
    const std::uint64_t deadline = detail::deadline_ns_after(timeout);
    detail::waiter_table& t = waiter_table();
    replies_of<Reply>(t);
    detail::blocking_waiter<Reply> w(t.next_id(), detail::waiter_entry::kind::blocking, index);
    if (!t.insert(w)) return std::nullopt;  // the bus has stopped
    detail::blocking_scope<Reply> scope{t, w};
    publish_options o = opts;
    o.correlation_id = w.id;
    if (publish(std::forward<Req>(req), o) == result::ok)
      await_delivery(t, w.delivered, w.id, deadline);
    scope.settle();
    if (w.error) std::rethrow_exception(w.error);
    return std::move(w.value);
  }

  /// Calls waiting now, a snapshot: requests (blocking and asynchronous) from their start,
  /// wait_for() calls once subscribed (an event of T dispatched after it counts one will be
  /// seen).
  std::size_t waiting() const noexcept { return waiters_.pending(); }

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
  ///
  /// Waits (wait_for, request): once a stop() outside handlers has finished, every wait still
  /// pending ends at once with nothing (std::nullopt; on_reply(nullptr) runs on this thread),
  /// and later ones are refused: no reply can come any more.
  std::uint64_t stop(stop_mode mode = stop_mode::drain) {
    const bool finishes = !core_.inside_dispatch();  // inside a handler it only begins
    const std::uint64_t discarded = core_.stop(mode);
    if (finishes) waiters_.close();
    return discarded;
  }

  /// stop(mode), but waits at most `timeout` (real time) for the workers to return: a handler
  /// that never returns no longer hangs it silently. On time-out it returns complete = false,
  /// what is unsettled, and which workers are stuck, in which subscription, since when; the
  /// bus stays stopping (publishes refused). A later stop() finishes the stop, and the
  /// destructor waits for the workers without limit: a bus cannot be freed under a handler
  /// that is still running. In manual mode everything runs on the caller, and the timeout
  /// has nothing to bound.
  stop_report stop(stop_mode mode, std::chrono::nanoseconds timeout) {
    stop_report r = core_.stop(mode, timeout);
    if (r.complete) waiters_.close();  // as stop(mode) does, once the stop has finished
    return r;
  }

  /// Per worker: idle, parked, running (which subscription, since when) or stalled (in one
  /// batch longer than config::stall_threshold); lanes above config::fill_warning; breakers
  /// not closed; dead letters. See health.hpp for how it is measured.
  health_report health() { return core_.health(); }

  /// Sums every thread's counters into a snapshot (see metrics.hpp). Allocates; lock-free
  /// with respect to publishers and workers. Racy while the bus runs, exact once quiet.
  metrics_snapshot metrics() const { return core_.metrics(); }

  const config& settings() const noexcept { return core_.cfg(); }

  /// What the journal (config::journal) has written, refused and made; `enabled` false and
  /// zeros without one. Takes the journal's lock (cold).
  ::tachyon::journal_stats journal_stats() const {
    return journal_ != nullptr ? journal_->stats() : ::tachyon::journal_stats{};
  }
  /// The journal's run id: every record this bus writes carries it (0 without a journal).
  std::uint64_t journal_run_id() const noexcept {
    return journal_ != nullptr ? journal_->run_id() : 0;
  }

  // ---- time and dead letters -------------------------------------------------------------

  /// Now, on the bus's time source: what publish_options::deadline and not_before are
  /// measured against.
  std::chrono::nanoseconds now() const noexcept { return time_.now(); }
  /// The time source itself (a virtual_clock, to move it).
  time_source_type& time_source() noexcept { return time_; }

  /// The bus's instance of interceptor I (intercept.hpp), to configure it.
  template <class I>
  I& interceptor() noexcept {
    return std::get<I>(interceptors_);
  }
  template <class I>
  const I& interceptor() const noexcept {
    return std::get<I>(interceptors_);
  }

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
  /// entry whose replay succeeds leaves the dead letters; one that throws again stays, its
  /// attempts
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
  friend struct detail::journal_replay;

  /// publish() with meta flags `Also` added to the external event's (journal replay only).
  template <std::uint8_t Also, class E>
  result publish_flagged(E&& ev, const publish_options& opts) {
    using T = std::remove_cvref_t<E>;
    if constexpr (interceptor_set::template screens_any<T>)
      return publish_screened<T, Also>(std::forward<E>(ev), opts);
    else
      return publish_admitted<T, Also>(std::forward<E>(ev), opts);
  }

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

  /// publish_batch()'s refusal of on_settle, out of line as throw_not_a_lane is.
  [[noreturn, gnu::cold, gnu::noinline]] static void throw_batch_settle() {
    throw std::invalid_argument(
        "tachyon::publish_batch: publish_options::on_settle names one listener, which is told "
        "about one event; publish() each event with a listener of its own (allowed in a "
        "batch: lane, correlation_id, deadline, not_before, dead_letter_expired, key, external)");
  }

  // ---- conflation (detail/conflation/conflation.hpp) --------------------------------------

  /// True for a type registered with conflate_by<...>.
  template <class T>
  static constexpr bool conflated = !std::is_void_v<typename Registry::template conflation_of<T>>;
  template <class T>
  using conflation_table = typename detail::conflation_tables<Registry>::template table_of<T>;

  /// publish_batch() of a conflated type: each event is published (and conflated) in turn, as
  /// publish() would; there is no bulk enqueue to share between events that may replace each
  /// other.
  template <class T>
  batch_result publish_batch_conflated(std::span<const T> evs, unsigned l,
                                       std::uint64_t correlation) {
    batch_result out;
    for (const T& ev : evs) {
      result r;
      try {
        r = publish(
            ev, publish_options{.lane = static_cast<priority>(l), .correlation_id = correlation});
      } catch (...) {
        detail::bus_core::throw_batch_error(out.queued, out.dropped);
      }
      if (r == result::ok) {
        ++out.queued;
      } else if (r == result::dropped) {
        ++out.dropped;
      } else {
        out.status = r;
        break;
      }
    }
    return out;
  }

  /// A conflated type's dispatch: a token is opened into the envelope of its slot's latest
  /// event, which then runs as any event does. Other types keep dispatch_one: they pay nothing.
  template <class T, std::size_t I>
  static void dispatch_conflated(void* self, detail::envelope& env, detail::thread_context& ctx) {
    if (env.header.flags & detail::token_flag) [[likely]] {
      detail::open_token<typename conflation_table<T>::slot, T>(env);
      detail::bus_core::enter_cause(ctx, env.header);  // the latest event's, not the token's
    }
    dispatch_one<T, I>(self, env, ctx);
  }
  /// A conflated type's release (stop(discard), a failed enqueue): a token lets its slot's
  /// latest event go.
  template <class T>
  static void release_conflated(detail::envelope& env) noexcept {
    if (env.header.flags & detail::token_flag) [[likely]]
      detail::discard_token<typename conflation_table<T>::slot, T>(env);
    else
      detail::release_payload<T>(env);
  }

  static std::uint64_t read_time(const void* source) noexcept {
    return static_cast<std::uint64_t>(static_cast<const time_source_type*>(source)->now().count());
  }

  template <class T, std::size_t I>
  static void dispatch_one(void* self, detail::envelope& env, detail::thread_context& ctx) {
    auto& tables = *static_cast<detail::handler_tables<Registry>*>(self);
    const T& ev = detail::payload_of<T>(env);
    if (run_wrapped(tables.core(), ev, env.header, ctx,
                    [&] { return tables.template run<T, I>(ev, env.header, ctx); })) [[likely]] {
      detail::bus_core::settle_ok(ctx, env);
      if constexpr (Registry::template is_journaled<T>)
        tables.core().journal_settled(ctx, env.header, outcome::dispatched);
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
    const detail::run_status status = run_wrapped(core, ev, m, ctx, [&] {
      if (d.target == nullptr)
        return tables.template run<T, I>(ev, m, ctx) ? detail::run_status::ok
                                                     : detail::run_status::failed;
      return tables.template run_one<T>(ev, m, ctx, d.target);
    });
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
    const detail::event_cause outer = ctx.cause;
    detail::bus_core::enter_cause(ctx, m);
    const bool ok = run_wrapped(tables.core(), ev, m, ctx, [&] {
      return e.target == nullptr
                 ? tables.template run<T, I>(ev, m, ctx)
                 : tables.template replay_one<T>(ev, m, ctx, e.target) == detail::run_status::ok;
    });
    ctx.cause = outer;
    tables.core().exit_dispatch(ctx);
    detail::bus_core::take_replay_error(ctx, e, kept);  // no retry, no breaker's dead letter
    return ok;
  }

  /// The header of a dispatch() on this thread, every field written once: its causation
  /// and, unless `correlation` is given, its correlation id inherited from the running event.
  static meta caused_by(detail::thread_context& ctx, std::uint64_t correlation, std::uint16_t index,
                        unsigned lane) noexcept {
    return meta{.sequence = ctx.take_sequence(),
                .correlation_id = correlation != 0 ? correlation : ctx.cause.correlation,
                .causation_id = ctx.cause.sequence,
                .publish_ticks = 0,
                .type_index = index,
                .lane = static_cast<priority>(lane),
                .attempt = 0,
                .flags = 0};
  }

  template <std::size_t... I>
  static std::tuple<typename Registry::template type_at<I>...> all_types_of(
      std::index_sequence<I...>);
  using all_types = decltype(all_types_of(std::make_index_sequence<Registry::size>{}));

  /// subscribe_all / subscribe<A, B, ...> / subscribe_tagged: the visitor in each table of Ts.
  template <class V, class... Ts>
  subscription subscribe_set(V&& visitor, subscribe_options<>&& opts, std::tuple<Ts...>*,
                             std::string_view label) {
    static_assert((detail::visitor_takes<std::decay_t<V>, Ts>::value && ...));
    detail::validate_policies(opts.retry, opts.breaker);
    std::string types(label);
    if (types.empty())
      ((types += (types.empty() ? "" : "|") + std::string(detail::type_name<Ts>())), ...);
    return subscription(handlers_.template add_multi<Ts...>(
        std::forward<V>(visitor), opts.order, [&](detail::subscription_state& s) {
          s.type_label = types;
          s.name =
              opts.name.empty() ? types + "#" + std::to_string(s.sequence) : std::move(opts.name);
          s.retry = opts.retry;
          s.breaker = std::move(opts.breaker);
          s.dead_letters = opts.dead_letters;
          s.resilient = s.retry.max_attempts > 1 || s.breaker.failure_threshold != 0;
        }));
  }

  /// dispatch() with options: a lane or a correlation id of its own.
  template <class T>
  [[gnu::noinline]] void dispatch_in(const T& ev, const publish_options& opts) {
    constexpr std::size_t index = Registry::template index_of<T>();
    if ((opts.deadline.count() | opts.not_before.count()) != 0 || opts.dead_letter_expired ||
        opts.key != 0 || opts.on_settle != nullptr)
      throw std::invalid_argument(
          "tachyon::dispatch: publish_options::deadline, not_before, dead_letter_expired and key "
          "apply to publish(), as does on_settle; dispatch() runs the handlers now and returns "
          "when they have run (allowed: lane, correlation_id, external)");
    const unsigned l = lane_of<T>(opts.lane);
    detail::thread_context& ctx = core_.context();
    const detail::event_cause outer = ctx.cause;
    const meta m{
        .sequence = ctx.take_sequence(),
        .correlation_id = opts.correlation_id != 0 ? opts.correlation_id : outer.correlation,
        .causation_id = outer.sequence,
        .publish_ticks = 0,
        .type_index = static_cast<std::uint16_t>(index),
        .lane = static_cast<priority>(l),
        .attempt = 0,
        .flags = static_cast<std::uint8_t>(
            opts.external ? meta_flags::external | (opts.redelivered ? meta_flags::redelivered : 0)
                          : 0)};
    core_.enter_dispatch(ctx);
    detail::bus_core::enter_cause(ctx, m);
    const bool ok = run_wrapped(
        core_, ev, m, ctx, [&] { return handlers_.template run<T, index, false>(ev, m, ctx); });
    ctx.cause = outer;
    core_.exit_dispatch(ctx);
    ctx.count(l, index, detail::c_accepted);
    ctx.count(l, index, ok ? detail::c_dispatched : detail::c_failed);
  }

  /// publish_batch() with a deadline or not_before, or of a type with before_publish
  /// interceptors: each event through publish(), stopping at the first refusal (full,
  /// stopped), as the bulk path does; a vetoed event is counted and the rest go on.
  template <class T>
  [[gnu::noinline]] batch_result publish_each(std::span<const T> evs, const publish_options& opts) {
    batch_result out;
    for (const T& ev : evs) {
      result r;
      try {
        r = publish(ev, opts);
      } catch (...) {  // a copy or an interceptor threw: say what was taken before it
        detail::bus_core::throw_batch_error(out.queued, out.dropped);
      }
      if (r == result::ok) {
        ++out.queued;
      } else if (r == result::dropped) {
        ++out.dropped;
      } else if (r == result::vetoed) {
        ++out.vetoed;
      } else {
        out.status = r;
        break;
      }
    }
    return out;
  }

  /// publish() past the interceptors: the event as it is admitted.
  template <class T, std::uint8_t Also = 0, class E>
  result publish_admitted(E&& ev, const publish_options& opts) {
    constexpr auto index = static_cast<std::uint16_t>(Registry::template index_of<T>());
    if constexpr (Registry::template is_journaled<T>)
      if (journal_ != nullptr) return publish_journaled<T, Also>(std::forward<E>(ev), opts);
    const unsigned l = lane_of<T>(opts.lane);
    if ((static_cast<std::uint64_t>(opts.deadline.count() | opts.not_before.count()) | opts.key |
         reinterpret_cast<std::uintptr_t>(opts.on_settle) | opts.external) != 0) [[unlikely]]
      return publish_timed<T, Also>(std::forward<E>(ev), l, index, opts);
    if constexpr (conflated<T>) {  // conflate_by: compiled only for such types
      if (auto* s = conflation_.template of<T>().find(conflation_table<T>::key_of(ev), l))
          [[likely]]
        return detail::conflate<T>(core_, *s, std::forward<E>(ev), l, index, opts.correlation_id);
      detail::bump(core_.context().type_row(index).v[detail::c_unconflated]);
    }
    return core_.template publish<detail::stored_inline<T>>(
        l, index, opts.correlation_id,
        [&](detail::envelope& env) { detail::store_payload<T>(env, std::forward<E>(ev)); });
  }

  /// publish() of a journaled type with the journal on: its record is reserved in this thread's
  /// segment (a refusal, if it cannot be, before anything else happens), filled where the
  /// header is stamped, and committed once the event is queued; a refused event's record is
  /// wiped. Either path of publish(): the plain one, or publish_timed for the options.
  template <class T, std::uint8_t Also = 0, class E>
  result publish_journaled(E&& ev, const publish_options& opts) {
    constexpr auto index = static_cast<std::uint16_t>(Registry::template index_of<T>());
    using id = detail::journal_identity<T>;
    const unsigned l = lane_of<T>(opts.lane);
    detail::thread_context& ctx = core_.context();
    detail::journal_writer* w = ctx.journal;
    if (w == nullptr) [[unlikely]] {
      w = journal_->writer_for(ctx);
      if (w == nullptr) return journal_refusal(l, index);
    }
    const void* payload;
    std::size_t n;
    if constexpr (id::raw) {
      payload = std::addressof(ev);
      n = sizeof(T);
    } else {
      w->scratch.clear();
      tachyon::writer out(w->scratch);
      codec<T>::encode(ev, out);
      payload = w->scratch.data();
      n = w->scratch.size();
    }
    const std::size_t length = sizeof(detail::journal_format::record_header) + n;
    if (length > UINT32_MAX) [[unlikely]] {
      journal_->fail("tachyon::journal: an event of " + std::to_string(n) +
                     " bytes encoded; a record holds at most 4294967239");
      return journal_refusal(l, index);
    }
    std::byte* at = w->reserve(length, detail::journal_format::event);
    if (at == nullptr) [[unlikely]]
      return journal_refusal(l, index);
    // The payload goes in at once: whatever runs on this thread before the header is written
    // (a settle listener publishing, inside this publish) may reuse the scratch.
    std::memcpy(at + sizeof(detail::journal_format::record_header), payload, n);
    detail::journal_slot slot{w, at, length};
    result r;
    try {
      if ((static_cast<std::uint64_t>(opts.deadline.count() | opts.not_before.count()) | opts.key |
           reinterpret_cast<std::uintptr_t>(opts.on_settle) | opts.external) != 0)
        r = publish_timed<T, Also>(std::forward<E>(ev), l, index, opts, &slot);
      else
        r = core_.template publish<detail::stored_inline<T>>(
            l, index, opts.correlation_id, [&](detail::envelope& env) {
              slot.write(env.header);
              detail::store_payload<T>(env, std::forward<E>(ev));
            });
    } catch (...) {
      w->abandon(at, length);
      throw;
    }
    if (r == result::ok) [[likely]]
      w->commit(at, length, false);
    else
      w->abandon(at, length);
    return r;
  }
  [[gnu::cold, gnu::noinline]] result journal_refusal(unsigned l, std::uint16_t index) {
    core_.count_refusal(l, index, detail::c_journal_refused);
    journal_->refused();
    return result::journal_failed;
  }

  /// What the journal is told of each registered type: whether it is journaled, and if so its
  /// declared identity. A journaled type that cannot be written fails to compile here.
  static std::vector<detail::journal_type> journal_types() {
    std::vector<detail::journal_type> out(Registry::size);
    Registry::for_each_type([&]<class T, std::size_t I>() {
      if constexpr (Registry::template is_journaled<T>) {
        static_assert(detail::journal_payload<T>,
                      "tachyon::journaled: this event type is neither trivially copyable nor has "
                      "a tachyon::codec<T> with encode and decode (tachyon/codec.hpp); give it "
                      "one, or leave the type out of the journal");
        using id = detail::journal_identity<T>;
        detail::journal_type& t = out[I];
        t.journaled = true;
        t.kind = id::raw ? detail::journal_format::payload_kind::raw
                         : detail::journal_format::payload_kind::codec;
        t.version = id::version;
        t.oldest = id::oldest;
        t.size = id::raw ? static_cast<std::uint32_t>(sizeof(T)) : 0;
        t.align = static_cast<std::uint32_t>(alignof(T));
        t.fingerprint = id::fingerprint_of(id::version);
        t.name = id::name;
      }
    });
    return out;
  }

  /// publish() through the interceptors' before_publish (intercept.hpp), in order: the first
  /// reject refuses the event (result::vetoed, counted).
  template <class T, std::uint8_t Also = 0, class E>
  result publish_screened(E&& ev, const publish_options& opts) {
    publish_options o = opts;
    // The interceptors see the id the event will carry: inside a handler, with none given,
    // the running event's (so that an enricher's "none given" test does not cut the chain).
    if (o.correlation_id == 0) o.correlation_id = core_.context().cause.correlation;
    if constexpr (std::is_rvalue_reference_v<E&&> && !std::is_const_v<std::remove_reference_t<E>>) {
      if (!screen(ev, o)) return vetoed<T>(o);
      return publish_admitted<T, Also>(std::move(ev), o);
    } else {
      T copy(ev);
      if (!screen(copy, o)) return vetoed<T>(o);
      return publish_admitted<T, Also>(std::move(copy), o);
    }
  }
  template <class T>
  bool screen(T& ev, publish_options& o) {
    return std::apply([&](auto&... is) { return (screen_one(is, ev, o) && ...); }, interceptors_);
  }
  template <class I, class T>
  static bool screen_one(I& i, T& ev, publish_options& o) {
    if constexpr (detail::screens<I, T>) {
      using R = decltype(i.before_publish(ev, o));
      static_assert(std::is_same_v<R, verdict> || std::is_same_v<R, bool>,
                    "tachyon: an interceptor's before_publish(T&, publish_options&) returns "
                    "tachyon::verdict (or bool: true allows)");
      if constexpr (std::is_same_v<R, bool>)
        return i.before_publish(ev, o);
      else
        return i.before_publish(ev, o) == verdict::allow;
    } else {
      return true;
    }
  }
  template <class T>
  result vetoed(const publish_options& o) {
    constexpr auto index = static_cast<std::uint16_t>(Registry::template index_of<T>());
    // The lane the options name, if an interceptor left them naming one; else the type's.
    const unsigned l = o.lane && static_cast<unsigned>(*o.lane) < priority_count
                           ? static_cast<unsigned>(*o.lane)
                           : static_cast<unsigned>(Registry::template default_priority_of<T>());
    core_.count_refusal(l, index, detail::c_vetoed);
    return result::vetoed;
  }

  /// Runs T's handlers for one run of an event: between the interceptors' before_dispatch and
  /// after_dispatch when there are any for T (intercept.hpp), else exactly `run()`.
  template <class T, class Run>
  static auto run_wrapped(detail::bus_core& core, const T& ev, const meta& m,
                          detail::thread_context& ctx, Run&& run) noexcept {
    if constexpr (!interceptor_set::template wraps_any<T>) {
      if constexpr (records_run_errors) {
        // A run of a type without hooks, on a bus that records errors for another type's
        // after_dispatch: its errors are its own, never the enclosing hooked run's.
        std::exception_ptr outer = std::exchange(ctx.run_error, nullptr);
        const auto out = run();
        ctx.run_error = std::move(outer);
        return out;
      } else {
        return run();
      }
    } else {
      auto& is = *static_cast<typename interceptor_set::tuple*>(core.hooks().interceptors);
      std::apply([&](auto&... i) { (before_one(core, i, ev, m, ctx), ...); }, is);
      std::exception_ptr outer = std::exchange(ctx.run_error, nullptr);  // a nested run's own
      const auto out = run();
      const std::exception_ptr error = std::exchange(ctx.run_error, std::move(outer));
      std::apply([&](auto&... i) { after_all(core, ev, m, error, ctx, i...); }, is);
      return out;
    }
  }
  template <class I, class T>
  static void before_one(detail::bus_core& core, I& i, const T& ev, const meta& m,
                         detail::thread_context& ctx) noexcept {
    if constexpr (detail::precedes<I, T>) {
      try {
        i.before_dispatch(ev, m);
      } catch (...) {
        core.interceptor_failed(ctx, m, detail::type_name<I>(), std::current_exception(), &ev);
      }
    }
  }
  template <class T, class I, class... Rest>
  static void after_all(detail::bus_core& core, const T& ev, const meta& m,
                        const std::exception_ptr& error, detail::thread_context& ctx, I& i,
                        Rest&... rest) noexcept {
    if constexpr (sizeof...(Rest) != 0) after_all(core, ev, m, error, ctx, rest...);  // reversed
    if constexpr (detail::follows<I, T>) {
      try {
        i.after_dispatch(ev, m, error);
      } catch (...) {
        core.interceptor_failed(ctx, m, detail::type_name<I>(), std::current_exception(), &ev);
      }
    }
  }
  template <class T>
  static void after_all(detail::bus_core&, const T&, const meta&, const std::exception_ptr&,
                        detail::thread_context&) noexcept {}

  /// Whether a handler's throw must be kept for after_dispatch (bus_core::hooks_ref).
  static constexpr bool records_run_errors = interceptor_set::template follows_any_of<Registry>(
      std::make_index_sequence<Registry::size>{});

  /// publish() with a deadline, not_before, a key, on_settle or external: the options that
  /// cost something, off the plain publish path (which tests them with one branch).
  /// `Also`: meta flags added to an external event's (replay()'s meta_flags::replayed).
  /// `journaled`: a journaled event's record (one detail::journal_slot*), written where its
  /// header has been stamped, before its payload is moved in; a pack, empty for the publishes
  /// of other types, which then compile none of it and pass no argument for it.
  template <class T, std::uint8_t Also = 0, class E, class... Slot>
  [[gnu::noinline]] result publish_timed(E&& ev, unsigned l, std::uint16_t index,
                                         const publish_options& opts, Slot... journaled) {
    static_assert(sizeof...(Slot) <= 1);
    const auto deadline = static_cast<std::uint64_t>(opts.deadline.count());
    const auto not_before = static_cast<std::uint64_t>(opts.not_before.count());
    settle_listener* const listener = opts.on_settle;
    if (opts.key != 0) {
      // A keyed event takes its place in its key's order when it is published; one held back
      // until later would hold back every later event of its key (and of the keys sharing its
      // strand) behind it.
      if (not_before != 0)
        throw std::invalid_argument(
            "tachyon::publish: publish_options::key and not_before cannot be combined: a keyed "
            "event takes its place in its key's order when published; allowed: a key with or "
            "without a deadline, or not_before without a key");
      // A key alone: what publish_timed reads besides costs it two tests.
      if ((deadline | reinterpret_cast<std::uintptr_t>(listener) | opts.external) == 0)
        return core_.publish_keyed(l, index, opts.correlation_id, opts.key,
                                   [&](detail::envelope& env) {
                                     (journaled->write(env.header), ...);
                                     detail::store_payload<T>(env, std::forward<E>(ev));
                                   });
    }
    const auto flags = static_cast<std::uint8_t>(
        opts.external
            ? meta_flags::external | (opts.redelivered ? meta_flags::redelivered : 0) | Also
            : 0);
    if (listener != nullptr && listener->settled == nullptr)
      throw std::invalid_argument(
          "tachyon::publish: publish_options::on_settle names a settle_listener whose `settled` "
          "is null; allowed: a listener with its function set, or no listener (nullptr)");
    // An event with a listener is carried in a parked event (deadline 0 if none), the one
    // place that knows when it settles, whichever way it goes.
    const bool parked = deadline != 0 || listener != nullptr;
    if (not_before > core_.now_ns()) {
      if (const result r = core_.timer_admit(l, index); r != result::ok) return r;
      detail::parked_event* pe = nullptr;
      detail::envelope env;
      core_.stamp_delayed(env.header, l, index, opts.correlation_id);
      env.header.flags = flags;
      (journaled->write(env.header), ...);
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
      pe->listener = listener;
      core_.park_delayed(pe, not_before);
      return result::ok;
    }
    // A deadline or a listener (or a not_before already past): through the front door like any
    // event (or its key's strand), carried as a delivery that checks the deadline when it
    // starts. external alone: a plain event with its flag. One fill for both, so that this
    // function holds one more copy of the publish path, not two (a second one here had GCC stop
    // inlining the admission into the plain publish(): +24 instructions, perf/callgrind). Not
    // conflated either way, as an event with a deadline is not.
    const bool carried = parked || not_before != 0;
    auto with_deadline = [&](detail::envelope& env) {
      if (!carried) {
        env.header.flags = flags;
        (journaled->write(env.header), ...);
        detail::store_payload<T>(env, std::forward<E>(ev));
        return;
      }
      detail::envelope held;
      held.header = env.header;  // as stamped: sequence, ticks, the real type
      held.header.flags = flags;
      (journaled->write(held.header), ...);
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
      pe->listener = listener;
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

  // ---- waiting (see wait_for and request) ------------------------------------------------------

  detail::waiter_table& waiter_table() {
    return waiters_.table(Registry::size, &core_.cfg().on_error);
  }

  void refuse_wait_inside_handler(const char* call) {
    if (core_.inside_dispatch()) [[unlikely]]
      throw std::logic_error(
          std::string("tachyon::bus::") + call +
          " called from inside a handler of the same bus; a handler must not block waiting for "
          "the bus that is running it (the event it waits for may need this very handler's "
          "worker); use the asynchronous request(ev, timeout, on_reply), or a subscription");
  }

  template <class Reply, class Req>
  static void check_request(const publish_options& opts) {
    static_assert(Registry::template contains<Reply>,
                  "tachyon: request<Reply>: Reply is not in the bus's registry; add it to "
                  "tachyon::registry<...>");
    static_assert(!std::is_same_v<std::remove_cvref_t<Req>, Reply>,
                  "tachyon: request<Reply>(req, ...): the request and its reply must be of "
                  "different types (a request of the reply's type would answer itself)");
    if (opts.correlation_id != 0)
      throw std::invalid_argument("tachyon::bus::request: publish_options::correlation_id is " +
                                  std::to_string(opts.correlation_id) +
                                  "; allowed: 0 only (the bus gives each request a fresh "
                                  "correlation id, 2^63 + n)");
  }

  /// The replies subscription of Reply, made by its first request: it finishes the request
  /// whose id a dispatched Reply carries.
  template <class Reply>
  detail::subscription_state* replies_of(detail::waiter_table& t) {
    constexpr std::size_t index = Registry::template index_of<Reply>();
    if (detail::subscription_state* s = t.hub(index)) [[likely]]
      return s;
    std::lock_guard lock(t.hub_mutex());
    if (detail::subscription_state* s = t.hub(index)) return s;
    detail::subscription_state* s = handlers_.template add<Reply>(
        [table = &t](const Reply& ev, const meta& m) {
          if (m.correlation_id < detail::request_id_base) return;  // a user's id, or none
          if (detail::waiter_entry* e =
                  table->take_reply(m.correlation_id, static_cast<std::uint16_t>(index)))
            e->complete(*table, *e, &ev);
        },
        INT_MAX, std::function<bool(const Reply&)>{},
        [](detail::subscription_state& st) {
          st.name = "tachyon::replies<" + std::string(detail::type_name<Reply>()) + ">";
          st.dead_letters = false;  // a throw of on_reply: the reply counts as failed
        });
    t.set_hub(index, s);
    return s;
  }

  /// Waits until `flag` is set or the deadline passes; returns whether it was set. With
  /// workers, spins then sleeps; in manual mode, drives the bus on this thread.
  bool await_delivery(detail::waiter_table& t, const std::atomic<std::uint32_t>& flag,
                      std::uint64_t id, std::uint64_t deadline_ns) {
    if (core_.cfg().workers != 0)
      return t.await(flag, id, deadline_ns, core_.cfg().spin_before_park);
    // Acquire, paired with signal()'s store: the taker's writes to the entry are ours.
    while (flag.load(std::memory_order_acquire) == 0) {
      if (detail::steady_ns() >= deadline_ns) return false;
      if (core_.run_once() == 0) std::this_thread::yield();
    }
    return true;
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
    using T = typename type_at<I>::type;
    if constexpr (conflated<T>)
      return &dispatch_conflated<T, I>;
    else
      return &dispatch_one<T, I>;
  }
  template <std::size_t I>
  static constexpr detail::release_fn release_of() noexcept {
    using T = typename type_at<I>::type;
    if constexpr (conflated<T>)
      return &release_conflated<T>;
    else
      return &release_one<T>;
  }
  template <std::size_t... I>
  static constexpr auto make_type_ops(std::index_sequence<I...>) {
    return std::array<detail::type_ops, Registry::size + 2>{
        detail::type_ops{
            dispatch_of<I>(), release_of<I>(), &run_delivery<typename type_at<I>::type, I>,
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
  [[no_unique_address]] typename interceptor_set::tuple interceptors_;  // likewise (hooks_ref)
  // conflate_by's key tables (empty without such a type). Before the core: its stop(), in the
  // destructors, drains or discards the tokens that name their slots.
  [[no_unique_address]] detail::conflation_tables<Registry> conflation_;
  // config::journal (null without one): closed after the core has stopped and settled
  // everything, so every outcome record is written before its segment is cut.
  std::unique_ptr<detail::journal> journal_;
  detail::bus_core core_;                             // destroyed after the tables
  detail::handler_tables<Registry> handlers_{core_};  // its tables start a line
  // Cold: the waiter table (wait_for, request), made on first use. One line of its own; goes
  // before the tables, whose replies subscriptions point into it (they run no more by then).
  detail::waiter_home waiters_;
};

template <class Registry, class Traits>
const std::array<detail::type_ops, Registry::size + 2> bus<Registry, Traits>::type_ops_ =
    bus<Registry, Traits>::make_type_ops(std::make_index_sequence<Registry::size>{});
template <class Registry, class Traits>
const std::array<detail::dispatch_fn, Registry::size + 2> bus<Registry, Traits>::dispatch_column_ =
    bus<Registry, Traits>::make_dispatch_column(std::make_index_sequence<Registry::size>{});

}  // namespace tachyon
