// tachyon/detail/subscription/handler_tables.hpp — the handlers of a bus: one immutable,
// sorted list per registered type, swapped whole on subscribe and unsubscribe (copy on write)
// and read without a lock by the dispatching threads, which announce themselves to the bus's
// epoch domain (epoch.hpp) for as long as they may hold a list. A swapped-out list, and a
// removed handler, is freed after a grace period: at once by an outside unsubscribe (which
// waits for it), or retired and reclaimed later when the remover is itself a handler.
//
// Invariants: lists are changed only under the subscription lock (the epoch domain's mutex),
// never in place; a list in a table is never freed before every reader that may have loaded it
// has left its dispatch; a handler whose `live` flag is clear never starts again.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include <tachyon/detail/bus_core.hpp>
#include <tachyon/detail/lane/admission.hpp>  // cache_line
#include <tachyon/detail/resilience/breaker.hpp>
#include <tachyon/detail/resilience/parked.hpp>
#include <tachyon/detail/subscription/serial_gate.hpp>
#include <tachyon/meta.hpp>
#include <tachyon/subscription.hpp>

namespace tachyon::detail {

template <class T>
struct handler_list {
  using call_fn = void (*)(const subscription_state*, const T&, const meta&);
  struct entry {
    call_fn call;
    subscription_state* state;
  };
  std::vector<entry> entries;  // immutable once published; sorted by subscription_state::before
};

/// The breaker of `s` is not closed and quiet: lets the call through if it admits one (closed
/// with a streak, or the half-open probe), returning its token, else throws
/// short_circuit_signal.
[[gnu::cold]] inline std::uint64_t admit_or_throw(subscription_state* s) {
  const std::uint64_t token =
      breaker::admit(s->breaker_word, s->owner.load(std::memory_order_acquire)->now_ns());
  if (token == 0) throw short_circuit_signal{};
  return token;
}

/// A call through the breaker threw: it counts (breaker_policy::counts decides) as a failure,
/// or as an answer of the dependency.
[[gnu::cold]] inline void breaker_threw(subscription_state* s, std::uint64_t token,
                                        const std::exception_ptr& e) noexcept {
  bool counts = true;
  if (s->breaker.counts) {
    try {
      counts = s->breaker.counts(e);
    } catch (...) {  // the predicate must not throw; if it does, the failure counts
    }
  }
  if (counts)
    breaker::failed(s->breaker_word, token, s->breaker.failure_threshold,
                    s->owner.load(std::memory_order_acquire)->now_ns(),
                    static_cast<std::uint64_t>(s->breaker.open_for.count()));
  else
    breaker::not_counted(s->breaker_word, token);
}

/// The breaker around a subscription's handler: asks the breaker first, throws
/// short_circuit_signal instead of calling `body` when it is open, and tells it how the call
/// went, with the call's token, so that only the half-open probe decides the probe's outcome.
/// A closed breaker with no failure streak costs one relaxed load and one compare before the
/// call and after it, and writes nothing. A throw is reported to the breaker here and thrown
/// on (a second throw, on the failure path of subscriptions with a breaker only).
template <class Body>
void guarded_call(const subscription_state* s, Body&& body) {
  auto* st = const_cast<subscription_state*>(s);
  std::uint64_t token = breaker::admitted;
  if (!breaker::quiet(st->breaker_word)) [[unlikely]]
    token = admit_or_throw(st);
  try {
    body();
  } catch (...) {
    breaker_threw(st, token, std::current_exception());
    throw;
  }
  if (!breaker::quiet(st->breaker_word)) [[unlikely]]
    breaker::succeeded(st->breaker_word, token);
}

template <class T, class F>
struct handler_node final : subscription_state {
  handler_node(F&& f, std::function<bool(const T&)>&& flt)
      : fn(std::in_place, std::move(f)), filter(std::move(flt)) {}
  handler_node(const F& f, std::function<bool(const T&)>&& flt)
      : fn(std::in_place, f), filter(std::move(flt)) {}

  /// A plain subscription's call (and every subscription's, for a replay): the filter, then
  /// the handler.
  static void call(const subscription_state* s, const T& ev, const meta& m) {
    const auto* self = static_cast<const handler_node*>(s);
    if (self->filter && !self->filter(ev)) return;
    run(self, ev, m);
  }
  /// The call of a subscription with a breaker: the filter first, so that an event it rejects
  /// is no call of the handler: the breaker neither admits nor short-circuits it, and hears
  /// nothing of it (no probe spent, no streak ended). Then the breaker, then the handler.
  static void call_guarded(const subscription_state* s, const T& ev, const meta& m) {
    const auto* self = static_cast<const handler_node*>(s);
    if (self->filter && !self->filter(ev)) return;
    guarded_call(s, [&] { run(self, ev, m); });
  }
  static void call_erased(const subscription_state* s, const void* ev, const meta& m) {
    call(s, *static_cast<const T*>(ev), m);
  }
  static void call_guarded_erased(const subscription_state* s, const void* ev, const meta& m) {
    call_guarded(s, *static_cast<const T*>(ev), m);
  }
  static void call_serial_erased(const subscription_state* s, const void* ev, const meta& m) {
    call_serial(s, *static_cast<const T*>(ev), m);
  }
  static void call_serial_guarded_erased(const subscription_state* s, const void* ev,
                                         const meta& m) {
    call_serial_guarded(s, *static_cast<const T*>(ev), m);
  }
  /// A serial subscription's calls (subscribe_options::serial): call and call_guarded with the
  /// handler's gate held around the breaker and the handler, so that the breaker, too, sees
  /// the calls one at a time, in the order they ran. The filter runs before, outside the gate:
  /// an event it rejects waits for nothing. A call that waited for the gate while its
  /// subscription was removed does not run (unsubscribe's promise: it does not start again).
  static void call_serial(const subscription_state* s, const T& ev, const meta& m) {
    const auto* self = static_cast<const handler_node*>(s);
    if (self->filter && !self->filter(ev)) return;
    const serial_gate::turn turn(*s->gate);
    // Relaxed: the gate's acquire orders it after the removal by a holder; an outside remover
    // clears it before waiting for this thread to leave its dispatch.
    if (!s->live.load(std::memory_order_relaxed)) return;
    run(self, ev, m);
  }
  static void call_serial_guarded(const subscription_state* s, const T& ev, const meta& m) {
    const auto* self = static_cast<const handler_node*>(s);
    if (self->filter && !self->filter(ev)) return;
    const serial_gate::turn turn(*s->gate);
    if (!s->live.load(std::memory_order_relaxed)) return;
    guarded_call(s, [&] { run(self, ev, m); });
  }
  void drop_callable() noexcept override {
    fn.reset();
    filter = nullptr;
  }

  mutable std::optional<F> fn;  // may run on several workers at once: its state is the user's
  std::function<bool(const T&)> filter;
  // Only for serial subscriptions (null otherwise; subscription_state::gate points to it):
  // freed with the node, after every thread that may wait on it has left its dispatch.
  std::unique_ptr<serial_gate> owned_gate;

 private:
  static void run(const handler_node* self, const T& ev, const meta& m) {
    if constexpr (std::is_invocable_v<F&, const T&, const meta&>)
      (*self->fn)(ev, m);
    else
      (*self->fn)(ev);
  }
};

/// One visitor subscribed to several types (subscribe_all, subscribe<A, B, C>, subscribe_tagged):
/// one state, with an entry in each of its types' tables, each calling the visitor for its type.
template <class Registry, class F, class... Ts>
struct multi_node final : subscription_state {
  explicit multi_node(F&& f) : fn(std::in_place, std::move(f)) {}
  explicit multi_node(const F& f) : fn(std::in_place, f) {}

  template <class T>
  static void call(const subscription_state* s, const T& ev, const meta& m) {
    run(static_cast<const multi_node*>(s), ev, m);
  }
  template <class T>
  static void call_guarded(const subscription_state* s, const T& ev, const meta& m) {
    guarded_call(s, [&] { run(static_cast<const multi_node*>(s), ev, m); });
  }
  /// The erased calls pick the type by the event's index.
  static void call_erased(const subscription_state* s, const void* ev, const meta& m) {
    (void)((m.type_index == Registry::template index_of<Ts>()
                ? (call<Ts>(s, *static_cast<const Ts*>(ev), m), true)
                : false) ||
           ...);
  }
  static void call_guarded_erased(const subscription_state* s, const void* ev, const meta& m) {
    (void)((m.type_index == Registry::template index_of<Ts>()
                ? (call_guarded<Ts>(s, *static_cast<const Ts*>(ev), m), true)
                : false) ||
           ...);
  }
  void drop_callable() noexcept override { fn.reset(); }

  mutable std::optional<F> fn;

 private:
  template <class T>
  static void run(const multi_node* self, const T& ev, const meta& m) {
    if constexpr (std::is_invocable_v<F&, const T&, const meta&>)
      (*self->fn)(ev, m);
    else
      (*self->fn)(ev);
  }
};

template <class Registry>
class handler_tables {
 public:
  /// Empty tables; `core` reports handler errors and runs the grace periods.
  explicit handler_tables(bus_core& core) noexcept : core_(&core) {
    for (auto& t : tables_) t.store(nullptr, std::memory_order_relaxed);
  }

  /// Frees the tables. The bus is stopped first (no dispatch runs). Two phases: first make
  /// every handle inert (so a handler's destructor that owns another handle does not call back
  /// into this bus), then, outside the lock, let them go. Handles that outlive the bus become
  /// inert.
  ~handler_tables() {
    std::vector<std::pair<void*, void (*)(void*)>> lists;
    std::vector<subscription_state*> states;
    {
      std::lock_guard lock(core_->epochs().mutex());
      Registry::for_each_type([&]<class T, std::size_t I>() {
        void* list = tables_[I].exchange(nullptr, std::memory_order_acq_rel);
        if (list == nullptr) return;
        for (auto& e : static_cast<handler_list<T>*>(list)->entries) {
          e.state->owner.store(nullptr, std::memory_order_release);
          e.state->live.store(false, std::memory_order_release);
          states.push_back(e.state);
        }
        lists.emplace_back(list, &delete_list<T>);
      });
      core_->clear_subscriptions();
    }
    // A subscription to several types has an entry in each of their tables: released once.
    std::sort(states.begin(), states.end());
    states.erase(std::unique(states.begin(), states.end()), states.end());
    for (auto* st : states) st->release_from_table();
    for (auto& [list, deleter] : lists) deleter(list);
  }
  handler_tables(const handler_tables&) = delete;
  handler_tables& operator=(const handler_tables&) = delete;

  /// Adds `handler` to T's list (after those of lower `order`, then of earlier subscription)
  /// and returns its state, which the caller wraps in a subscription handle. `setup` fills the
  /// state's failure handling (name, policies) before it is published. Takes the lock and
  /// allocates; safe from any thread and from inside handlers.
  template <class T, class F, class Setup>
  subscription_state* add(F&& handler, int order, std::function<bool(const T&)>&& filter,
                          Setup&& setup) {
    constexpr std::size_t index = Registry::template index_of<T>();
    using node_t = handler_node<T, std::decay_t<F>>;
    using call_fn = typename handler_list<T>::call_fn;
    auto node = std::make_unique<node_t>(std::forward<F>(handler), std::move(filter));
    // Relaxed: the table store that publishes the node (publish_list) releases it, with the rest.
    node->owner.store(core_, std::memory_order_relaxed);
    node->remove = &remove_handler<T>;
    node->order = order;
    node->type_index = static_cast<std::uint16_t>(index);
    epoch_domain::garbage garbage;
    {
      std::lock_guard lock(core_->epochs().mutex());
      node->sequence = next_subscription_++;
      setup(static_cast<subscription_state&>(*node));
      // The call is chosen here, once: a plain subscription keeps the plain call, and only a
      // serial one pays for its gate. Retries (invoke_guarded, invoke) and replays (invoke) of
      // a serial subscription go through the gate as well.
      if (node->serial) {
        node->owned_gate = std::make_unique<serial_gate>();
        node->gate = node->owned_gate.get();
      }
      const call_fn plain = node->serial ? &node_t::call_serial : &node_t::call;
      const call_fn guarded = node->serial ? &node_t::call_serial_guarded : &node_t::call_guarded;
      node->invoke = node->serial ? &node_t::call_serial_erased : &node_t::call_erased;
      node->invoke_guarded =
          node->serial ? &node_t::call_serial_guarded_erased : &node_t::call_guarded_erased;
      auto next = with_entry<T>(node->breaker.failure_threshold != 0 ? guarded : plain, node.get());
      core_->epochs().reclaim(garbage);
      core_->add_subscription(node.get());  // reserves first: may throw, nothing changed yet
      // Nothing below throws: from here the table owns the node (and the handle, the caller's).
      publish_list<T>(next);
    }
    epoch_domain::free_garbage(garbage);
    return node.release();
  }

  /// Adds one visitor for every type of Ts (at least one): one state, an entry in each type's
  /// list, published under one lock; unsubscribe removes them all at once (remove_handler).
  template <class... Ts, class F, class Setup>
  subscription_state* add_multi(F&& visitor, int order, Setup&& setup) {
    static_assert(sizeof...(Ts) > 0);
    using node_t = multi_node<Registry, std::decay_t<F>, Ts...>;
    using first = std::tuple_element_t<0, std::tuple<Ts...>>;
    auto node = std::make_unique<node_t>(std::forward<F>(visitor));
    node->owner.store(core_, std::memory_order_relaxed);  // as in add()
    node->remove = &remove_handler<Ts...>;
    node->order = order;
    node->type_index = static_cast<std::uint16_t>(Registry::template index_of<first>());
    node->invoke = &node_t::call_erased;
    node->invoke_guarded = &node_t::call_guarded_erased;
    epoch_domain::garbage garbage;
    {
      std::lock_guard lock(core_->epochs().mutex());
      node->sequence = next_subscription_++;
      setup(static_cast<subscription_state&>(*node));
      const bool guarded = node->breaker.failure_threshold != 0;
      // Every new list first (any of them may throw: nothing is changed yet)...
      std::tuple<std::unique_ptr<handler_list<Ts>>...> next{
          with_entry<Ts>(guarded ? &node_t::template call_guarded<Ts> : &node_t::template call<Ts>,
                         node.get())...};
      core_->epochs().reclaim(garbage);
      core_->add_subscription(node.get());  // reserves first: may throw, nothing changed yet
      // ...then each published, its old list retired.
      (publish_list<Ts>(std::get<std::unique_ptr<handler_list<Ts>>>(next)), ...);
    }
    epoch_domain::free_garbage(garbage);
    return node.release();
  }

  /// Runs one subscription's handler for a retry (through its breaker, if it has one). The
  /// caller has entered a dispatch.
  template <class T>
  run_status run_one(const T& ev, const meta& m, thread_context& ctx,
                     subscription_state* s) noexcept {
    if (!s->live.load(std::memory_order_relaxed)) return run_status::gone;
    ctx.calling.store(s, std::memory_order_relaxed);
    try {
      (s->breaker.failure_threshold != 0 ? s->invoke_guarded : s->invoke)(s, &ev, m);
      return run_status::ok;
    } catch (const short_circuit_signal&) {
      core_->short_circuited(ctx, m, s);
    } catch (...) {
      core_->handler_failed(ctx, m, s, std::current_exception(), &ev);
    }
    return run_status::failed;
  }

  /// Runs one subscription's handler for a replay, bypassing its breaker: the operator asked.
  template <class T>
  run_status replay_one(const T& ev, const meta& m, thread_context& ctx,
                        subscription_state* s) noexcept {
    if (!s->live.load(std::memory_order_relaxed)) return run_status::gone;
    ctx.calling.store(s, std::memory_order_relaxed);
    try {
      s->invoke(s, &ev, m);
      return run_status::ok;
    } catch (...) {
      core_->handler_failed(ctx, m, s, std::current_exception(), &ev);
    }
    return run_status::failed;
  }

  bus_core& core() const noexcept { return *core_; }

  /// T's handlers (type index I) that are live now: in its list and not unsubscribed (an
  /// unsubscribe clears `live` before it swaps the list, and a list that kept a dead entry
  /// when memory ran out still holds it). Reads the list without the lock, as a dispatch
  /// does: the caller has entered a dispatch, so the list is not freed under it.
  template <class T, std::size_t I>
  std::size_t live_count() const noexcept {
    const auto* list = list_of<T, I>();
    if (list == nullptr) return 0;
    std::size_t n = 0;
    // The acquire is not needed (only the flag is read; an unsubscribe that returned before
    // this call is seen by coherence); harmless off the hot path.
    for (const auto& e : list->entries) n += e.state->live.load(std::memory_order_acquire) ? 1 : 0;
    return n;
  }

  /// Runs T's handlers (type index I) in order; a throw is reported and the others still run.
  /// Returns whether none threw. The caller has entered a dispatch (bus_core::enter_dispatch).
  /// `drained`: a run of the drain (or a replay), whose failures the failure path resolves
  /// (kept in ctx.failures) and whose subscription calls health() watches (ctx.calling).
  /// dispatch() runs with it false: its failures are only counted, and it leaves ctx.failures
  /// alone, which may hold the failures of a drained event whose handler called dispatch().
  template <class T, std::size_t I, bool drained = true>
  bool run(const T& ev, const meta& m, thread_context& ctx) noexcept {
    const auto* list = list_of<T, I>();
    if (list == nullptr) return true;
    bool ok = true;
    for (const auto& e : list->entries) {
      if (!e.state->live.load(std::memory_order_relaxed)) continue;  // unsubscribed meanwhile
      if constexpr (drained) ctx.calling.store(e.state, std::memory_order_relaxed);
      try {
        e.call(e.state, ev, m);
      } catch (const short_circuit_signal&) {
        ok = false;
        core_->short_circuited(ctx, m, e.state, drained);
      } catch (...) {
        ok = false;
        core_->handler_failed(ctx, m, e.state, std::current_exception(), &ev, drained);
      }
    }
    return ok;
  }

 private:
  /// Acquire is what this load needs (the list's entries, which the table stores release); the
  /// grace period's store-load order comes from enter()'s fence pair, not from seq_cst here. It
  /// costs what acquire does: a mov on x86-64, an ldar on aarch64 without RCpc.
  template <class T, std::size_t I>
  handler_list<T>* list_of() const noexcept {
    return static_cast<handler_list<T>*>(tables_[I].load(std::memory_order_seq_cst));
  }

  /// A copy of T's list with `call` for `s` inserted in its place (order, then subscription).
  /// Called under the lock; throws only for memory.
  template <class T>
  std::unique_ptr<handler_list<T>> with_entry(typename handler_list<T>::call_fn call,
                                              subscription_state* s) const {
    constexpr std::size_t index = Registry::template index_of<T>();
    auto* old = list_of<T, index>();
    auto next = std::make_unique<handler_list<T>>();
    if (old) next->entries = old->entries;
    const typename handler_list<T>::entry e{call, s};
    next->entries.insert(
        std::upper_bound(next->entries.begin(), next->entries.end(), e,
                         [](const auto& a, const auto& b) { return a.state->before(*b.state); }),
        e);
    return next;
  }
  /// Publishes T's new list and retires the old one. Under the lock; never throws once the
  /// retirement list has room (epoch_domain::retire).
  template <class T>
  void publish_list(std::unique_ptr<handler_list<T>>& next) {
    constexpr std::size_t index = Registry::template index_of<T>();
    auto* old = list_of<T, index>();
    // Release publishes the list; the epoch fetch_add after it (retire(), synchronize()) is what
    // a reader's announcement is ordered against. seq_cst is more than this needs.
    tables_[index].store(next.release(), std::memory_order_seq_cst);
    if (old) core_->epochs().retire(old, &delete_list<T>);
  }

  template <class T>
  static void delete_list(void* p) {
    delete static_cast<handler_list<T>*>(p);
  }
  static void release_state(void* p) { static_cast<subscription_state*>(p)->release_from_table(); }

  /// subscription::unsubscribe() lands here. Never throws: if memory for the new table runs
  /// out, the handler stays in the table but is marked dead (skipped) until the bus goes.
  ///
  /// From outside handlers (this thread is not dispatching on this bus) it waits for a grace
  /// period: when it returns, the handler is not running anywhere and never will again, and
  /// both the handler and the old table are freed here.
  ///
  /// From inside a handler (ctx.dispatch_nesting > 0) it waits for nobody: this thread is itself a
  /// reader that another thread's grace period may be waiting for, so two handlers removing
  /// themselves or each other on two threads would otherwise wait for each other forever.
  /// What it still guarantees, once it returns: the handler does not start again on any
  /// thread. A dispatch loads the table with a seq_cst load, so one that loads it after the
  /// store below gets the new table, without the handler. One still iterating the old table
  /// loads `live` (relaxed) before each call; `live` is cleared under the lock, before the
  /// return, and never set again, so a load that happens after the return (the only sense in
  /// which another thread's call can come "after" it) reads false by write-read coherence and
  /// skips the call. A call that had already read true was under way before the return, like
  /// one already running: those are what the outside caller's grace period waits for, and
  /// what the inside caller does not. The handler (its captured state) and the old table are
  /// retired: freed by reclaim() once every thread that may still hold the old table has left
  /// its dispatch (its announced epoch is older than the retirement's), which the next
  /// outermost exit_dispatch() of any thread, the next subscribe() or outside unsubscribe(),
  /// or the bus's destruction notices; never inside a table iteration that could touch them.
  template <class... Ts>
  static void remove_handler(bus_core* core, subscription_state* s) noexcept {
    auto& b = *static_cast<handler_tables*>(core->tables());
    // The old list of each type, once swapped (null where out of memory kept the dead entry).
    std::array<std::pair<void*, void (*)(void*)>, sizeof...(Ts)> olds{};
    bool all_swapped = true;
    epoch_domain::garbage garbage;
    bool inside = false;
    {
      std::lock_guard lock(core->epochs().mutex());
      if (!s->live.exchange(false, std::memory_order_seq_cst)) return;  // already removed
      core->remove_subscription(s);
      std::size_t k = 0;
      (
          [&] {
            using T = Ts;
            constexpr std::size_t I = Registry::template index_of<T>();
            try {
              handler_list<T>* old = b.template list_of<T, I>();
              auto next = std::make_unique<handler_list<T>>();
              next->entries.reserve(old->entries.size() - 1);
              for (const auto& e : old->entries)
                if (e.state != s) next->entries.push_back(e);
              b.tables_[I].store(next.release(), std::memory_order_seq_cst);  // as publish_list
              olds[k] = {old, &delete_list<T>};
            } catch (...) {  // out of memory: this table keeps the dead entry
              all_swapped = false;
            }
            ++k;
          }(),
          ...);
      inside = core->inside_dispatch();
      if (inside) {
        for (auto& [old, deleter] : olds)
          if (old != nullptr) core->epochs().retire(old, deleter);
        // The tables' reference, once no table holds the state (the bus's end frees the rest).
        if (all_swapped) core->epochs().retire(s, &release_state);
        try {
          core->epochs().reclaim(
              garbage);  // older retirements only: this thread still holds its epoch
        } catch (...) {  // out of memory: a later reclaim frees them
        }
      }
    }
    if (!inside) {
      // Outside the lock, so that handlers may subscribe while we wait for them.
      core->synchronize();  // every other thread: not running it, and will not start it again
      for (auto& [old, deleter] : olds)
        if (old != nullptr) deleter(old);
      if (all_swapped) s->release_from_table();
      try {
        std::lock_guard lock(core->epochs().mutex());
        core->epochs().reclaim(garbage);  // what handlers retired meanwhile
      } catch (...) {                     // out of memory: a later reclaim frees them
      }
    }
    epoch_domain::free_garbage(garbage);  // user destructors: outside the lock
  }

  // Starts a line (handler_tables is line-aligned): the lists that every dispatch loads.
  alignas(cache_line) std::array<std::atomic<void*>, Registry::size> tables_;
  std::uint64_t next_subscription_ = 0;  // guarded by the subscription lock
  bus_core* core_;
};

}  // namespace tachyon::detail
