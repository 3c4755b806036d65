// bus_core's failure handling (detail/bus_core.hpp, "failures"): what happens after a handler
// throws, to the event and to each failed delivery; the timer's firing; delayed publishes;
// deliveries at stop(discard). None of it runs unless a handler fails or an event carries a
// deadline or a delay.
#include <tachyon/detail/bus_core.hpp>
#include <tachyon/detail/resilience/backoff.hpp>
#include <tachyon/detail/resilience/breaker.hpp>
#include <tachyon/resilience.hpp>

#include <new>
#include <string>

namespace tachyon::detail {

namespace {

std::string describe(const std::exception_ptr& e) {
  if (!e) return "unknown error";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "an exception not derived from std::exception";
  }
}

/// The outcome kind of a settled event: its highest mark (metrics.hpp, event_counts).
counter outcome_of(std::uint8_t marks) noexcept {
  if (marks & mark::expired) return c_expired;
  if (marks & mark::dead_lettered) return c_dead_lettered;
  if (marks & mark::failed) return c_failed;
  if (marks & mark::discarded) return c_discarded;
  return c_dispatched;
}

/// What a settle_listener is told for an outcome counter.
tachyon::outcome told_as(counter kind) noexcept {
  switch (kind) {
    case c_failed:
      return tachyon::outcome::failed;
    case c_dead_lettered:
      return tachyon::outcome::dead_lettered;
    case c_expired:
      return tachyon::outcome::expired;
    case c_discarded:
      return tachyon::outcome::discarded;
    default:
      return tachyon::outcome::dispatched;
  }
}

}  // namespace

void bus_core::clear_failures(thread_context& ctx, failure_mark from) noexcept {
  const auto first = ctx.failures.begin() + static_cast<std::ptrdiff_t>(from.kept);
  for (auto it = first; it != ctx.failures.end(); ++it) it->sub->release();
  ctx.failures.erase(first, ctx.failures.end());
  ctx.failed_plain = from.plain;
}

void bus_core::take_replay_error(thread_context& ctx, dead_letter_entry& e,
                                 failure_mark from) noexcept {
  if (ctx.failures.size() > from.kept && ctx.failures.back().error) {
    e.error = ctx.failures.back().error;
    try {
      e.what = describe(e.error);
    } catch (...) {
    }
  }
  clear_failures(ctx, from);
}

void bus_core::handler_failed(thread_context& ctx, const meta& m, subscription_state* s,
                              std::exception_ptr e, const void* payload, bool keep) noexcept {
  ctx.count(static_cast<unsigned>(m.lane), m.type_index, c_handler_errors);
  s->errors.fetch_add(1, std::memory_order_relaxed);
  if (hooks_.records_run_errors) ctx.run_error = e;
  if (cfg_.on_error) {
    try {
      cfg_.on_error(handler_error{m, types_.ops[m.type_index].name, e, s->name, payload});
    } catch (...) {  // the hook must not throw; if it does, nothing else may suffer for it
    }
  }
  if (!keep) return;
  if (s->resilient || dead_letters_.enabled()) {
    try {
      ctx.failures.push_back(failure_record{s, std::move(e), false});
      s->acquire();
      return;
    } catch (...) {  // out of memory: this failure is only counted
    }
  }
  ctx.failed_plain = true;
}

void bus_core::short_circuited(thread_context& ctx, const meta& m, subscription_state* s,
                               bool keep) noexcept {
  ctx.count(static_cast<unsigned>(m.lane), m.type_index, c_short_circuited);
  s->short_circuited.fetch_add(1, std::memory_order_relaxed);
  if (hooks_.records_run_errors) {
    try {
      ctx.run_error = std::make_exception_ptr(circuit_open(s->name));
    } catch (...) {  // out of memory for the exception: the run reads as failed without one
    }
  }
  if (!keep) return;
  try {
    ctx.failures.push_back(failure_record{s, nullptr, true});
    s->acquire();
  } catch (...) {
    ctx.failed_plain = true;
  }
}

void bus_core::interceptor_failed(thread_context& ctx, const meta& m, std::string_view name,
                                  std::exception_ptr e, const void* payload) noexcept {
  ctx.count(static_cast<unsigned>(m.lane), m.type_index, c_handler_errors);
  if (!cfg_.on_error) return;
  try {
    const std::string who = "interceptor:" + std::string(name);
    cfg_.on_error(handler_error{m, types_.ops[m.type_index].name, std::move(e), who, payload});
  } catch (...) {  // the hook must not throw (and the name may not fit in memory)
  }
}

void bus_core::park_dead_letter(parked_event* pe, subscription_state* s, std::uint32_t attempts,
                                std::exception_ptr error) noexcept {
  pe->add_mark(mark::dead_lettered);
  if (s != nullptr) s->dead_lettered.fetch_add(1, std::memory_order_relaxed);
  dead_letter_entry e;
  e.event = pe;
  pe->acquire();
  e.target = s;  // its reference moves into the entry
  e.attempts = attempts;
  try {
    e.what = describe(error);
  } catch (...) {  // out of memory for the text: the exception itself is kept
  }
  e.error = std::move(error);
  e.when_ns = now_ns();
  dead_letters_.push(std::move(e));
}

void bus_core::handle_failures(thread_context& ctx, parked_event* pe,
                               std::uint8_t attempt) noexcept {
  if (ctx.failed_plain) pe->add_mark(mark::failed);
  const auto l = static_cast<unsigned>(pe->env.header.lane);
  const std::uint16_t t = pe->env.header.type_index;
  const bool dead_letters = dead_letters_.enabled();
  for (auto& f : ctx.failures) {
    subscription_state* s = f.sub;  // its reference moves on below (timer, dead letters) or goes
    if (f.short_circuit) {
      if (s->breaker.action == when_open::dead_letter && dead_letters && s->dead_letters) {
        std::exception_ptr why;
        try {
          why = std::make_exception_ptr(circuit_open(s->name));
        } catch (...) {
        }
        park_dead_letter(pe, s, attempt, std::move(why));
      } else {
        pe->add_mark(mark::failed);
        s->release();
      }
      continue;
    }
    const std::uint32_t runs = attempt + 1u;
    // A hint, relaxed: timers_.push() reads the flag again under the timer's lock and decides.
    if (runs < s->retry.max_attempts && !discarding_.load(std::memory_order_relaxed) &&
        (pe->deadline_ns == 0 || now_ns() < pe->deadline_ns)) {
      if (auto* d = new (std::nothrow) delivery{pe, s}) {
        d->attempt = static_cast<std::uint8_t>(runs);
        d->last_error = f.error;
        // During stop(drain) a retry does not wait out its backoff (see bus::stop).
        d->due_ns = now_ns() + (stopping_.load(std::memory_order_relaxed)
                                    ? 0
                                    : backoff_ns(s->retry, runs, pe->env.header.sequence));
        pe->acquire();
        // Relaxed: this run's own count keeps `pending` above zero meanwhile; the timer's lock
        // hands the delivery on, and settle_run's acq_rel decrements order the rest.
        pe->pending.fetch_add(1, std::memory_order_relaxed);
        // Counted at once, even from a batch that still holds the event: a snapshot in
        // between counts it twice (in hand and waiting), never not at all. An RMW, so one
        // thread counts it; relaxed: settle_run reads it after this run's acq_rel decrement.
        if (!pe->waited.exchange(true, std::memory_order_relaxed))
          bump(ctx.lane_row(l).v[c_parked]);
        bool scheduled = false, earliest = false;
        try {
          scheduled = timers_.push(d, discarding_, earliest);
        } catch (...) {
        }
        if (scheduled) {
          // A parked worker's sleep was bounded by the earliest due time it saw.
          if (earliest) work_.notify_one();
          s->retried.fetch_add(1, std::memory_order_relaxed);
          ctx.count(l, t, c_retried);
          continue;
        }
        // The timer is full (or a discard began): this delivery fails for good below. Relaxed: the
        // delivery never got out, and this run still holds its own count.
        pe->pending.fetch_sub(1, std::memory_order_relaxed);
        pe->release_ref();  // not the last: the run in progress holds one
        d->target = nullptr;
        d->event = nullptr;
        delete d;
        if (discarding_.load(std::memory_order_relaxed)) {
          pe->add_mark(mark::discarded);
          s->release();
          continue;
        }
      }
    }
    if (dead_letters && s->dead_letters) {
      park_dead_letter(pe, s, runs, std::move(f.error));
    } else {
      pe->add_mark(mark::failed);
      s->release();
    }
  }
  ctx.failures.clear();
  ctx.failed_plain = false;
}

void bus_core::settle_run(thread_context& ctx, parked_event* pe, bool front) noexcept {
  if (pe->pending.fetch_sub(1, std::memory_order_acq_rel) != 1) {
    if (front) ++ctx.batch_failed;  // not settled with this batch: it waits for its retries
    return;
  }
  const auto l = static_cast<unsigned>(pe->env.header.lane);
  const counter kind = outcome_of(pe->outcome_marks());
  bump(ctx.type_row(pe->env.header.type_index).v[kind]);
  if (front && pe->listener == nullptr) {
    // Counted with the batch (end_batch), as the lane's in-flight mark moves.
    if (kind != c_dispatched) {
      ++ctx.batch_failed;
      ++ctx.batch_tally[kind];
    }
  } else {
    // A listener reads the lane's counts (metrics()) in its call, before the batch ends: the
    // outcome is counted now and left out of the batch's. A snapshot until the batch ends
    // counts the event twice (in flight and settled), never not at all.
    if (front) ++ctx.batch_failed;
    bump(ctx.lane_row(l).v[kind]);
  }
  // The outcome before the way out of the timer (release: metrics() reads c_unparked first): a
  // snapshot in between counts the event twice, never not at all. `waited` relaxed: every store
  // of it comes before its thread's decrement of `pending` (park_delayed's, before the timer's
  // lock), which our acq_rel decrement to zero acquired.
  if (pe->waited.load(std::memory_order_relaxed)) bump_release(ctx.lane_row(l).v[c_unparked]);
  told(ctx, *pe, told_as(kind));
}

void bus_core::resolve_failed(thread_context& ctx, envelope& env, release_fn release) noexcept {
  // Nothing kept (the plain failure of old), or no memory to park it: counted failed, with the
  // batch. Out of memory there is no retry and no dead letter.
  auto* pe = ctx.failures.empty() ? nullptr : new (std::nothrow) parked_event(env, release, 0);
  if (pe == nullptr) {
    clear_failures(ctx);
    bump(ctx.type_row(env.header.type_index).v[c_failed]);
    ++ctx.batch_failed;
    ++ctx.batch_tally[c_failed];
    journal_settled(ctx, env.header, tachyon::outcome::failed);
    release(env);
    return;
  }
  // From here `pe` owns the payload (the envelope's bytes were copied, a box's pointer with
  // them); its `pending` starts at 1 for this run.
  handle_failures(ctx, pe, env.header.attempt);
  settle_run(ctx, pe, true);
  pe->release_ref();
}

void bus_core::finish_delivery(thread_context& ctx, delivery* d, run_status status) noexcept {
  parked_event* pe = d->event;
  if (status == run_status::gone) pe->add_mark(mark::failed);
  if (status == run_status::failed && ctx.failures.empty()) ctx.failed_plain = true;
  if (status != run_status::ok || !ctx.failures.empty()) handle_failures(ctx, pe, d->attempt);
  const bool front = d->front;
  if (d->target != nullptr) d->target->release();
  delete d;  // its reference to the event goes with the one below
  settle_run(ctx, pe, front);
  pe->release_ref();
}

void bus_core::expire_delivery(thread_context& ctx, delivery* d) noexcept {
  parked_event* pe = d->event;
  if (d->target == nullptr) {  // the event's own run: it never ran
    pe->add_mark(mark::expired);
    if (pe->dead_letter_expired && dead_letters_.enabled()) {
      std::exception_ptr why;
      try {
        why = std::make_exception_ptr(deadline_passed());
      } catch (...) {
      }
      park_dead_letter(pe, nullptr, 0, std::move(why));
      pe->add_mark(mark::expired);
    }
  } else {  // a retry past the deadline: that delivery fails for good, with its last error
    subscription_state* s = std::exchange(d->target, nullptr);
    if (dead_letters_.enabled() && s->dead_letters)
      park_dead_letter(pe, s, d->attempt, d->last_error);
    else {
      pe->add_mark(mark::failed);
      s->release();
    }
  }
  const bool front = d->front;
  delete d;
  settle_run(ctx, pe, front);
  pe->release_ref();
}

std::size_t bus_core::fire_due(thread_context& ctx, bool all) {
  constexpr std::size_t per_look = 64;
  const std::uint64_t now = all ? 0 : now_ns();
  if (!all && now < timers_.next_due_hint()) return 0;  // nothing due: no lock taken
  delivery* due[per_look];
  const std::size_t n = timers_.pop_due(now, all, due, per_look);
  std::size_t moved = 0;
  for (std::size_t i = 0; i < n; ++i) {
    delivery* d = due[i];
    envelope env;
    env.header = d->event->env.header;
    env.header.type_index = delivery_type();
    env.header.attempt = d->attempt;
    carry(env, d);
    if (reenter(env)) {
      timers_.moved(1);
      ++moved;
    } else if (all && !discarding_.load(std::memory_order_relaxed)) {  // a hint: see above
      // stop(drain) with the door full: run it here rather than wait.
      timers_.moved(1);  // before the run, which may schedule a retry into this slot
      enter_dispatch(ctx);
      const event_cause outer = ctx.cause;
      enter_cause(ctx, d->event->env.header);
      types_.ops[d->event->env.header.type_index].run_delivery(tables_, *d, ctx);
      ctx.cause = outer;
      exit_dispatch(ctx);
      ++moved;
    } else {
      timers_.put_back(d);  // the door is full: it waits for a batch to make room
    }
  }
  return moved;
}

void bus_core::discard_delivery(thread_context& ctx, envelope& env) noexcept {
  delivery* d = delivery_of(env);
  parked_event* pe = d->event;
  if (d->front) {  // a published event that never ran: discarded as any queued event
    ctx.count(static_cast<unsigned>(env.header.lane), pe->env.header.type_index, c_discarded);
    told(ctx, *pe, tachyon::outcome::discarded);
    d->dispose();
    return;
  }
  pe->add_mark(mark::discarded);
  if (d->target != nullptr) d->target->release();
  delete d;
  settle_run(ctx, pe, false);
  pe->release_ref();
}

result bus_core::timer_admit(unsigned l, std::uint16_t type) {
  thread_context& ctx = context();
  switch (timers_.reserve(stopping_)) {
    case timer_queue::admission::ok:
      return result::ok;
    case timer_queue::admission::stopped:
      ctx.count(l, type, c_rejected_stopped);
      return result::stopped;
    case timer_queue::admission::full:
      break;
  }
  ctx.count(l, type, c_rejected_full);
  return result::full;
}

void bus_core::park_delayed(parked_event* pe, std::uint64_t not_before_ns) noexcept {
  thread_context& ctx = context();
  const auto l = static_cast<unsigned>(pe->env.header.lane);
  // pe's `pending` of 1 is this delivery's.
  auto* d = new (std::nothrow) delivery{pe, nullptr};
  if (d == nullptr) {  // out of memory: accepted, and failed at once rather than lost
    timers_.unreserve();
    ctx.count(l, pe->env.header.type_index, c_accepted);
    ctx.count(l, pe->env.header.type_index, c_failed);
    told(ctx, *pe, tachyon::outcome::failed);
    pe->release_ref();
    return;
  }
  d->due_ns = not_before_ns;
  pe->waited.store(true, std::memory_order_relaxed);  // the timer's lock hands it on
  ctx.count(l, pe->env.header.type_index, c_accepted);
  bump(ctx.lane_row(l).v[c_parked]);
  if (!timers_.push_reserved(d, discarding_)) {
    // A stop(discard) emptied the timer while this publish held its slot: the event, moved in
    // already, is accepted and discarded, as if the discard had found it waiting.
    ctx.count(l, pe->env.header.type_index, c_discarded);
    bump_release(ctx.lane_row(l).v[c_unparked]);  // after the outcome, as settle() does
    told(ctx, *pe, tachyon::outcome::discarded);
    d->dispose();
    return;
  }
  // A parked worker's sleep was bounded by the earliest due time it saw: let one look again.
  work_.notify_one();
}

}  // namespace tachyon::detail
