// tachyon/intercept.hpp — interceptors (middleware): code that every event of a bus passes
// through, declared with the bus's type so that a bus without them compiles to exactly the
// code it would have without this header.
//
//   struct Validate {
//     tachyon::verdict before_publish(Order& o, tachyon::publish_options&) {
//       return o.qty > 0 ? tachyon::verdict::allow : tachyon::verdict::reject;
//     }
//   };
//   struct Trace {
//     template <class T>
//     void before_dispatch(const T&, const tachyon::meta& m) { ... }
//     template <class T>
//     void after_dispatch(const T&, const tachyon::meta& m, std::exception_ptr error) { ... }
//   };
//   struct traits : tachyon::default_traits {
//     using interceptors = tachyon::interceptors<Validate, Trace>;
//   };
//   tachyon::bus<Events, traits> bus;
//   bus.interceptor<Validate>();  // the bus's instance, to configure it
//
// Each interceptor is default-constructed as a member of the bus and may have any of three
// hooks, for every event type (a template) or for some (overloads); a hook an interceptor does
// not have for a type costs that type nothing:
//
//   before_publish(T& ev, publish_options& opts) -> verdict (or bool, true = allow)
//     On the publishing thread, in publish() and publish_batch(), before the event is admitted,
//     in the list's order. It may change the event and its options (lane, correlation id,
//     deadline...). Inside a handler, options without a correlation id arrive with the one
//     the event would inherit (the running event's), so `correlation_id == 0` means the event
//     starts a chain. (Setting it to 0 there does not start a new chain: 0 always inherits;
//     set a fresh id instead.) The first `reject` ends it: publish returns result::vetoed, counted
//     in `vetoed`, and the event was never accepted. A throw propagates to the caller, as a throw
//     from T's copy would. An rvalue event is screened in place (a vetoed one is left to the
//     caller, changed by what the interceptors did to it, not moved from); an lvalue is copied
//     first, so the caller's object is never changed. dispatch() is not a publish: it does not
//     pass through before_publish.
//   before_dispatch(const T&, const meta&)
//     On the dispatching thread, before the event's handlers run (each run: the first, every
//     retry, a replay, a dispatch()), in the list's order.
//   after_dispatch(const T&, const meta&, std::exception_ptr error)
//     After them, in the reverse order; `error` is the last exception a handler of this run
//     threw (a short-circuit by an open breaker reads as tachyon::circuit_open), null if none.
//
// The dispatch hooks must not throw: one that does is counted in handler_errors and reported to
// config::on_error under the name "interceptor:<its type>", and the event's handlers (and the
// other hooks) still run. Every hook may be called from many threads at once: an interceptor's
// state must be safe for that (atomics, or per-thread).
#pragma once

#include <cstdint>

namespace tachyon {

/// What before_publish decides.
enum class verdict : std::uint8_t { allow, reject };

/// The interceptors of a bus, in order: `using interceptors = tachyon::interceptors<A, B>;`
/// in its traits (time.hpp).
template <class... Interceptors>
struct interceptors {};

}  // namespace tachyon
