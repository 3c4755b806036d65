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
// except that a worker always takes the most urgent non-empty lane first.
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
#include <tachyon/meta.hpp>
#include <tachyon/metrics.hpp>
#include <tachyon/registry.hpp>
#include <tachyon/result.hpp>
#include <tachyon/stop_mode.hpp>
#include <tachyon/subscription.hpp>

namespace tachyon {

/// Per-call publish settings.
struct publish_options {
  std::optional<priority> lane = std::nullopt;  ///< empty: the type's default priority
  std::uint64_t correlation_id = 0;             ///< handed to handlers in meta
};

/// Per-subscription settings.
template <class T>
struct subscribe_options {
  /// Handlers of one type run in ascending `order`, then in subscription order.
  int order = 0;
  /// When set, the handler runs only for events where filter(ev) is true. Called on the
  /// dispatching thread; must not throw (a throw counts as the handler's).
  std::function<bool(const T&)> filter = {};
};

/// What publish_batch() did: `queued` will be dispatched, `dropped` were taken and discarded
/// (overflow::drop); status is ok when every event was taken, else why the rest was refused
/// (the refused events are the last size - queued - dropped of the span).
struct [[nodiscard]] batch_result {
  std::size_t queued = 0;
  std::size_t dropped = 0;
  result status = result::ok;
};

template <class Registry>
class bus {
 public:
  using registry_type = Registry;

  /// Validates `cfg` (throws std::invalid_argument naming the field, the value and what is
  /// allowed), reserves the lanes' memory and starts the workers, pinned and named. Throws
  /// std::runtime_error if a worker cannot be pinned; nothing is left running then.
  explicit bus(const config& cfg = {})
      : core_(cfg, detail::type_table{type_ops_.data(), dispatch_column_.data(), Registry::size},
              &handlers_) {
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
  /// on a thread's first call. Throws std::invalid_argument for a priority outside the four,
  /// and whatever T's move/copy constructor throws.
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
  /// run on several workers at once. Takes the subscription lock and allocates; safe from any
  /// thread and from inside handlers. Events already queued will reach it.
  template <class T, class F>
  [[nodiscard]] subscription subscribe(F&& handler, subscribe_options<T> opts = {}) {
    static_assert(Registry::template contains<T>,
                  "tachyon: subscribe<T>: T is not in the bus's registry; add it to "
                  "tachyon::registry<...>");
    static_assert(std::is_invocable_v<std::decay_t<F>&, const T&> ||
                      std::is_invocable_v<std::decay_t<F>&, const T&, const meta&>,
                  "tachyon: a handler must be callable as f(const T&) or "
                  "f(const T&, const tachyon::meta&)");
    return subscription(
        handlers_.template add<T>(std::forward<F>(handler), opts.order, std::move(opts.filter)));
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
    const bool ok = handlers_.template run<T, index>(ev, m, ctx);
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
  /// workers. Throws std::logic_error if called from inside a handler of this bus.
  std::size_t run_once() { return core_.run_once(); }

  /// Runs batches on this thread until the lanes are empty or `max_events` ran; returns how
  /// many ran. Same rules as run_once().
  std::size_t poll(std::size_t max_events = SIZE_MAX) { return core_.poll(max_events); }

  /// Refuses new publishes (result::stopped) at once, then drain: runs everything queued and
  /// joins the workers; discard: runs nothing more, releases and counts what is queued, and
  /// joins. Returns how many events it discarded. Idempotent; the second call returns 0.
  /// Called from inside a handler it only begins the stop (it cannot join its own thread);
  /// the destructor, or a later stop() from outside, finishes it.
  std::uint64_t stop(stop_mode mode = stop_mode::drain) { return core_.stop(mode); }

  /// Sums every thread's counters into a snapshot (see metrics.hpp). Allocates; lock-free
  /// with respect to publishers and workers. Racy while the bus runs, exact once quiet.
  metrics_snapshot metrics() const { return core_.metrics(); }

  const config& settings() const noexcept { return core_.cfg(); }

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
      throw std::invalid_argument("tachyon::publish: priority " + std::to_string(l) +
                                  " is not a lane; allowed: critical (0), high (1), normal "
                                  "(2), low (3)");
    return l;
  }

  template <class T, std::size_t I>
  static void dispatch_one(void* self, detail::envelope& env, detail::thread_context& ctx) {
    auto& tables = *static_cast<detail::handler_tables<Registry>*>(self);
    const bool ok = tables.template run<T, I>(detail::payload_of<T>(env), env.header, ctx);
    detail::bus_core::settle(ctx, env, ok);
    detail::release_payload<T>(env);
  }

  template <class T>
  static void release_one(detail::envelope& env) noexcept {
    detail::release_payload<T>(env);
  }

  template <std::size_t I>
  static constexpr detail::dispatch_fn dispatch_of() noexcept {
    return &dispatch_one<typename type_at<I>::type, I>;
  }
  template <std::size_t... I>
  static constexpr auto make_type_ops(std::index_sequence<I...>) {
    return std::array<detail::type_ops, Registry::size>{detail::type_ops{
        dispatch_of<I>(), &release_one<typename type_at<I>::type>,
        detail::type_name<typename type_at<I>::type>(),
        static_cast<std::uint8_t>(
            Registry::template default_priority_of<typename type_at<I>::type>())}...};
  }
  template <std::size_t... I>
  static constexpr auto make_dispatch_column(std::index_sequence<I...>) {
    return std::array<detail::dispatch_fn, Registry::size>{dispatch_of<I>()...};
  }
  template <std::size_t I>
  struct type_at {
    using type = typename Registry::template type_at<I>;
  };

  // One row per type (dispatch, release, name, default lane). Defined below the class: its
  // initialiser needs the complete class.
  static const std::array<detail::type_ops, Registry::size> type_ops_;
  // type_ops_[i].dispatch again, packed (type_table::dispatch): the drain's per-event lookup.
  static const std::array<detail::dispatch_fn, Registry::size> dispatch_column_;

  // A bus may sit anywhere (a stack frame, a struct): the lines its workers read on every event
  // (the core's settings first, the handler tables last) are kept apart from whatever the
  // application writes next to it. bus_core is line-aligned and handlers_ (its tables) starts a
  // line, so the object's size is a multiple of 64 and no neighbour shares either end. Sharing a
  // line with a publisher's stack variable cost a cross-core transfer per hop: with ~760 ns hops on
  // the development VM the round trip went from 1.2-1.3x bare moodycamel to 0.95-1.08x when this
  // was fixed (the paired round trip, now in bench/latency.cpp; same run for both).
  detail::bus_core core_;                             // first: destroyed last, after the tables
  detail::handler_tables<Registry> handlers_{core_};  // its tables start a line
};

template <class Registry>
const std::array<detail::type_ops, Registry::size> bus<Registry>::type_ops_ =
    bus<Registry>::make_type_ops(std::make_index_sequence<Registry::size>{});
template <class Registry>
const std::array<detail::dispatch_fn, Registry::size> bus<Registry>::dispatch_column_ =
    bus<Registry>::make_dispatch_column(std::make_index_sequence<Registry::size>{});

}  // namespace tachyon
