// The drain (bus_core's half in src/worker/): the worker loop, one batch from the most urgent
// lane (drain_batch, the hot path), its timed variant, idling and parking, manual drive
// (run_once, poll) and stop. The threads themselves are the worker_pool's
// (src/worker/worker_pool.cpp).
#include <tachyon/detail/bus_core.hpp>

#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include <stdexcept>
#include <thread>

#include "metrics/latency_set.hpp"

namespace tachyon::detail {

// The context cache of context_registry::context() (detail/context/context_registry.hpp). It
// is defined here, not beside the registry, because the translation unit that defines a
// thread_local reads it with one %fs-relative instruction, and other ones load its offset from
// the GOT first: run_once() and poll() look up the caller's context on every call, and this
// keeps that lookup one instruction shorter (perf/callgrind, the hop row).
constinit thread_local tls_cache_entry tls_last_context{};

void bus_core::ensure_buffer(thread_context& ctx) {
  if (ctx.drain_buffer_size >= cfg_.batch) return;
  deallocate(ctx.drain_buffer);
  ctx.drain_buffer = nullptr;
  ctx.drain_buffer =
      static_cast<envelope*>(allocate(sizeof(envelope) * cfg_.batch, alignof(envelope)));
  ctx.drain_buffer_size = cfg_.batch;
}

namespace {

/// steady_clock::now() + d, saturating at time_point::max() (a due time or a timeout near the
/// end of the representable range must not wrap into the past).
std::chrono::steady_clock::time_point deadline_after(std::chrono::nanoseconds d) noexcept {
  const auto now = std::chrono::steady_clock::now();
  using tp = std::chrono::steady_clock::time_point;
  if (d <= std::chrono::nanoseconds::zero()) return now;
  const auto room = std::chrono::duration_cast<std::chrono::nanoseconds>(tp::max() - now);
  return d >= room ? tp::max() : now + std::chrono::duration_cast<tp::duration>(d);
}

}  // namespace

void bus_core::worker_main(std::uint32_t index) {
#if defined(__linux__)
  // A worker's timed sleeps (until a retry or a delayed event is due) wake on time, not up to
  // the default 50 us of timer slack later.
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
#endif
  thread_context& ctx = context();
  ensure_buffer(ctx);
  worker_ctx_[index].store(&ctx, std::memory_order_release);  // to observe_worker()'s acquire
  struct on_return {  // health() and a timed stop() see it go, whichever way it returns
    bus_core* self;
    std::uint32_t index;
    ~on_return() {
      // After the last batch, and before the worker counts as gone, so that stop(mode,
      // timeout) bounds a stop hook that hangs as it bounds a handler.
      worker_stopping(self->cfg_, index);
      // The null's release orders nothing observe_worker() reads. The fetch_sub is seq_cst:
      // wait_point's notifier change, against stop()'s seq_cst checks.
      self->worker_ctx_[index].store(nullptr, std::memory_order_release);
      self->workers_running_.fetch_sub(1, std::memory_order_seq_cst);
      self->workers_exited_.notify_all();
    }
  } mark{this, index};
  idle_period period;
  for (;;) {
    // The acquire pairs with nothing that matters: begin_stop() writes nothing a drainer reads
    // before the flag, and stop() joins the workers before it discards. Relaxed would do; this
    // costs one ldar per batch on aarch64 (a plain mov on x86-64).
    if (discarding_.load(std::memory_order_acquire)) return;
    // The timer, once per batch: one relaxed load while nothing waits in it. Once a drain stop
    // has begun, everything in it is due: the workers run it, within stop(mode, timeout)'s
    // bound and in health()'s view, rather than leave it to the stopping thread.
    if (timers_.armed()) [[unlikely]]
      fire_due(ctx, stopping_.load(std::memory_order_relaxed));
    const std::size_t n = drain_batch(ctx, cfg_.batch);
    if (n != 0) {
      if (n == cfg_.batch) work_.notify_one();  // more may be waiting: wake a sleeping peer
      period = {};
      continue;
    }
    // Not exact for admissions still in a publisher's store buffer; stop() drains those.
    if (stopping_.load(std::memory_order_seq_cst) && lanes_empty() && !timers_.armed()) return;
    idle(ctx, period);
  }
}

void bus_core::idle(thread_context& ctx, idle_period& p) {
  if (p.rounds++ == 0) {
    p.since = std::chrono::steady_clock::now();
    return;
  }
  switch (cfg_.wait) {
    case wait_strategy::busy_spin:
      break;
    case wait_strategy::yield:
      std::this_thread::yield();
      break;
    case wait_strategy::spin_then_park:
      cpu_relax();
      break;
  }
  if ((p.rounds & 1023) == 0 && !p.credits_reclaimed) {
    // Credits left in the accounts of threads that stopped publishing keep a lane's hint
    // "maybe non-empty", and the scan then asks moodycamel every round. After a millisecond
    // idle, take them back (one heavy fence), once per idle period.
    if (std::chrono::steady_clock::now() - p.since >= std::chrono::milliseconds(1)) {
      reclaim_idle_credits(ctx);
      p.credits_reclaimed = true;
    }
  }
  if (cfg_.wait != wait_strategy::spin_then_park) return;
  if ((p.rounds & 63) != 0) return;  // read the clock every 64 polls
  if (std::chrono::steady_clock::now() - p.since < cfg_.spin_before_park) return;
  const auto key = work_.prepare_wait();
  // A publisher's admission is a plain store (then a compiler barrier, then its load of the
  // waiter count in notify_one): the heavy fence makes every admission made before our
  // prepare_wait visible to lanes_empty() below, or makes that publisher see us waiting.
  heavy_fence(asymmetric_);
  // The flags are this wait's conditions, read seq_cst (begin_stop stores them so, then notifies).
  if (!lanes_empty() || stopping_.load(std::memory_order_seq_cst) ||
      discarding_.load(std::memory_order_seq_cst)) {
    work_.cancel_wait();
    return;
  }
  // A retry or a delayed event waiting in the timer bounds the sleep: the worker wakes when it
  // falls due (a real clock; a virtual one moves only when told, so it is polled instead).
  auto until = std::chrono::steady_clock::time_point::max();
  if (timers_.armed()) {
    if (time_.is_virtual) {
      work_.cancel_wait();
      return;
    }
    const std::uint64_t due = timers_.next_due(), now = now_ns();
    if (due <= now) {
      work_.cancel_wait();
      return;
    }
    if (due != UINT64_MAX) {
      // Wake spin_before_park early and poll the rest of the way (the idle period starts
      // again): a futex time-out lands late by the wake-up's latency, which a due retry or
      // delayed event would pay. Due sooner than that: do not park.
      const std::uint64_t gap = due - now;
      const auto spin = static_cast<std::uint64_t>(cfg_.spin_before_park.count());
      if (gap <= spin) {
        work_.cancel_wait();
        return;
      }
      const std::uint64_t sleep = gap - spin;
      until = deadline_after(sleep > static_cast<std::uint64_t>(INT64_MAX)
                                 ? std::chrono::nanoseconds::max()
                                 : std::chrono::nanoseconds(static_cast<std::int64_t>(sleep)));
    }
  }
  bump(ctx.misc_row().v[m_parks]);
  // Relaxed: read only for a report (observe_worker()).
  ctx.parked.store(true, std::memory_order_relaxed);
  work_.wait(key, until);
  ctx.parked.store(false, std::memory_order_relaxed);
  p.rounds = 0;
}

void bus_core::reclaim_idle_credits(thread_context& ctx) {
  for (unsigned l = 0; l < priority_count; ++l) {
    lane_admission& adm = lanes_[l].admission;
    if (!adm.maybe_nonempty()) continue;
    adm.give_back(ctx.credits[l]);
    adm.revoke_spare(&ctx.credits[l], accounts(l));
  }
}

inline void bus_core::end_batch(thread_context& ctx, unsigned l, std::size_t n) noexcept {
  // The lane's outcome counts and batch_in_hand move together, once per batch, so the lane's
  // accounting balances in every snapshot (a finished event of an unfinished batch still
  // reads as in flight, and is not yet counted in its outcome). `n`: the batch's front-door
  // events; deliveries (retries, delayed events) count their events' outcomes themselves.
  counter_row& row = ctx.lane_row(l);
  bump(row.v[c_dispatched], n - ctx.batch_failed);
  if (ctx.batch_failed != 0) [[unlikely]]
    end_batch_tally(ctx, row);
  // Release: a snapshot that sees the batch out of hand sees its outcomes (metrics()).
  ctx.batch_in_hand.store(0, std::memory_order_release);
}

void bus_core::end_batch_tally(thread_context& ctx, counter_row& row) noexcept {
  for (std::size_t k = 0; k < counter_kinds; ++k) {
    if (ctx.batch_tally[k] != 0) {
      bump(row.v[k], ctx.batch_tally[k]);
      ctx.batch_tally[k] = 0;
    }
  }
  ctx.batch_failed = 0;
}

[[gnu::always_inline]] inline std::size_t bus_core::take_batch(thread_context& ctx, unsigned l,
                                                               std::size_t n) noexcept {
  const std::size_t reentered = reentered_in(ctx, l, n);
  // batch_in_hand before done (whose store is a release: count_out()): a snapshot between the
  // two counts the batch twice, never not at all. A release too: a snapshot that reads this
  // word (not the 0 before it) must still see the previous batch's outcomes, and a relaxed
  // store would not carry end_batch()'s release on to it.
  ctx.batch_in_hand.store(batch_word(n - reentered, l), std::memory_order_release);
  count_out(ctx, l, n, reentered);
  return n - reentered;
}

std::size_t bus_core::reentered_in(thread_context& ctx, unsigned l, std::size_t n) const noexcept {
  // The door is idle unless something re-entered, so the per-envelope look is skipped then.
  std::size_t reentered = 0;
  if (lanes_[l].admission.reentry_depth() != 0) [[unlikely]] {
    for (std::size_t i = 0; i < n; ++i)
      reentered += (ctx.drain_buffer[i].header.flags & meta_flags::reentered) != 0;
    ctx.batch_reentered = static_cast<std::uint32_t>(reentered);  // a strand's turn shares by it
  }
  return reentered;
}

void bus_core::count_out(thread_context& ctx, unsigned l, std::size_t n,
                         std::size_t reentered) noexcept {
  lane& ln = lanes_[l];
  // `done` counts what left through the front door: re-entered deliveries never added to
  // `used` (their own door counts them), and counting them here would hide as many events.
  // Release: whoever sees the new `done` (metrics(), front_occupancy()) sees the batch in hand.
  credit_account& a = ctx.credits[l];
  a.done.store(a.done.load(std::memory_order_relaxed) + (n - reentered), std::memory_order_release);
  // Give the room back at once, not after the handlers: publishers blocked on this lane
  // proceed while the batch runs. The pool wakes one waiting publisher per batch; it passes
  // the wake on if room is left when it has taken its own.
  ln.admission.release(n - reentered, reentered);
}

std::size_t bus_core::drain_batch(thread_context& ctx, std::size_t max) {
  // The hint (some credit is out of the pool) lets a scan skip an empty lane without asking
  // moodycamel, which costs tens of ns per empty poll. But the hint's line is written by
  // publishers once per chunk of credits, and a worker spinning on it would take it from them
  // each time; so the lane last drained is polled directly, as a bare moodycamel consumer
  // would, for the next hot_lane_polls empty scans. More urgent lanes are still checked
  // first by their hints, so priority is unchanged.
  constexpr std::uint32_t hot_lane_polls = 1024;
  for (unsigned l = 0; l < priority_count; ++l) {
    lane& ln = lanes_[l];
    if (l != ctx.hot_lane && !ln.admission.maybe_nonempty()) continue;
    const std::size_t n = ln.queue.try_dequeue_bulk(*ctx.consumer[l], ctx.drain_buffer, max);
    if (n == 0) {  // empty, admitted but not yet enqueued, or a peer took them
      if (l == ctx.hot_lane && ++ctx.hot_misses == hot_lane_polls) ctx.hot_lane = priority_count;
      continue;
    }
    ctx.hot_lane = l;
    ctx.hot_misses = 0;
    const std::size_t front = take_batch(ctx, l, n);
    bump(ctx.misc_row().v[m_batches]);
    bump(ctx.misc_row().v[m_batched_events], n);
    // config::latency_histograms: the rest of the batch, timed; when off, this is the one
    // branch per batch the option costs.
    if (cfg_.latency_histograms) [[unlikely]]
      return dispatch_timed_cold(ctx, n);
    enter_dispatch(ctx);
    for (std::size_t i = 0; i < n; ++i) {
      envelope& env = ctx.drain_buffer[i];
      enter_cause(ctx, env.header);  // what its handlers' publishes inherit
      types_.dispatch[env.header.type_index](tables_, env, ctx);  // settles it
    }
    exit_dispatch(ctx);
    ctx.cause = {};
    end_batch(ctx, l, front);
    return n;
  }
  return 0;
}

std::size_t bus_core::dispatch_timed_cold(thread_context& ctx, std::size_t n) {
  return dispatch_timed(ctx, n);
}

std::size_t bus_core::dispatch_timed(thread_context& ctx, std::size_t n) {
  // The batch, as drain_batch marked it in hand: its lane and its front-door events.
  const std::uint32_t held = ctx.batch_in_hand.load(std::memory_order_relaxed);
  const unsigned l = batch_lane(held);
  const std::size_t front = batch_size(held);
  latency_set* set = ctx.latency.load(std::memory_order_relaxed);
  if (set == nullptr) [[unlikely]] {
    try {
      set = new latency_set(types_.count);
      ctx.latency.store(set, std::memory_order_release);
    } catch (const std::bad_alloc&) {  // out of memory: this batch goes unrecorded
    }
  }
  enter_dispatch(ctx);
  // One clock read per batch, before its first handler, stands for the start of every event
  // of the batch: an event's queue wait is publish_ticks to this reading, so the handler time
  // of the events ahead of it in the same batch is not counted as its wait. Then one read
  // after each event: the previous reading is the start of the next event's handlers, so an
  // event's handler time includes the release of its payload, its counters and these
  // records (a few ns).
  std::uint64_t start = clock::now();
  const std::uint64_t batch_start = start;
  for (std::size_t i = 0; i < n; ++i) {
    envelope& env = ctx.drain_buffer[i];
    const std::uint16_t t = env.header.type_index;
    const std::uint64_t published = env.header.publish_ticks;  // 0: config::timestamps off
    if (published != 0 && set != nullptr)
      if (histogram* h = latency_set::get(set->lane[l]))  // made on its first record only
        h->record(batch_start > published ? batch_start - published : 0);
    enter_cause(ctx, env.header);
    types_.dispatch[t](tables_, env, ctx);  // settles it
    const std::uint64_t end = clock::now();
    if (set != nullptr && t < types_.count)  // a delivery (retry, delayed event) is not timed
      if (histogram* h = latency_set::get(set->type[t])) h->record(end > start ? end - start : 0);
    start = end;
  }
  exit_dispatch(ctx);
  ctx.cause = {};
  end_batch(ctx, l, front);
  return n;
}

thread_context& bus_core::manual_context() {
  thread_context& ctx = context();
  if (ctx.dispatch_nesting > 0)
    throw std::logic_error(
        "tachyon::bus::poll/run_once called from inside a handler of the same bus; a handler "
        "must not drain the bus that is running it");
  ensure_buffer(ctx);
  return ctx;
}

// Once a discard has begun, manual draining runs nothing more, as a worker starts no new
// batch: what is queued is stop()'s to release and count in `discarded`. (The flag's acquire is
// not needed, as in worker_main: it is a signal that carries no data.)
std::size_t bus_core::run_once() {
  thread_context& ctx = manual_context();
  if (discarding_.load(std::memory_order_acquire)) return 0;
  if (timers_.armed()) [[unlikely]]
    fire_due(ctx, false);
  return manual_outcome(ctx, drain_batch(ctx, cfg_.batch));
}

std::size_t bus_core::poll(std::size_t max_events) {
  thread_context& ctx = manual_context();
  std::size_t total = 0;
  while (total < max_events && !discarding_.load(std::memory_order_acquire)) {
    if (timers_.armed()) [[unlikely]]
      fire_due(ctx, false);
    const std::size_t n = drain_batch(ctx, std::min<std::size_t>(cfg_.batch, max_events - total));
    if (n == 0) break;
    total += n;
  }
  return manual_outcome(ctx, total);
}

std::size_t bus_core::manual_outcome(thread_context& ctx, std::size_t ran) {
  // A manual drainer's idle period, as a worker's (idle()): after this many calls that found
  // nothing, the credits left in idle accounts (its own included: in manual mode the drainer
  // is often the publisher) go back to the pools, so that its scans read the cheap hint again.
  constexpr std::uint32_t empty_calls_before_reclaim = 1024;
  if (ran != 0) {
    ctx.empty_drains = 0;
  } else if (++ctx.empty_drains == empty_calls_before_reclaim) {
    reclaim_idle_credits(ctx);
  }
  return ran;
}

// ---- stop --------------------------------------------------------------------------------------

bool bus_core::begin_stop(stop_mode mode) {
  thread_context& ctx = context();
  if (mode == stop_mode::discard) discarding_.store(true, std::memory_order_seq_cst);
  stopping_.store(true, std::memory_order_seq_cst);
  // Publishers admit with a plain store and then read stopping_ (try_admit): after this fence
  // every admission that read false is visible to lanes_empty(), so the drain below and the
  // workers' last look see it.
  heavy_fence(asymmetric_);
  work_.notify_all();
  for (auto& ln : lanes_) ln.room.notify_all();
  return ctx.dispatch_nesting == 0;  // inside a handler: joining would wait for ourselves
}

stop_report bus_core::stop(stop_mode mode, std::chrono::nanoseconds timeout) {
  stop_report r;
  if (!begin_stop(mode)) return r;
  const auto deadline = deadline_after(timeout);
  // seq_cst: the waiter's checks of workers_exited_'s protocol (worker_main's fetch_sub).
  while (workers_running_.load(std::memory_order_seq_cst) != 0) {
    const auto key = workers_exited_.prepare_wait();
    if (workers_running_.load(std::memory_order_seq_cst) == 0) {
      workers_exited_.cancel_wait();
      break;
    }
    if (!workers_exited_.wait(key, deadline) && std::chrono::steady_clock::now() >= deadline &&
        workers_running_.load(std::memory_order_seq_cst) != 0) {
      const std::uint64_t now = now_ns();
      for (std::uint32_t i = 0; i < cfg_.workers; ++i) {
        worker_health w = observe_worker(i, now);
        if (w.state == worker_state::running || w.state == worker_state::stalled)
          r.stuck.push_back(std::move(w));
      }
      r.unsettled = metrics().in_flight;
      return r;
    }
  }
  r.discarded = stop(mode);
  r.unsettled = metrics().in_flight;
  r.complete = r.unsettled == 0;
  return r;
}

std::uint64_t bus_core::stop(stop_mode mode) {
  thread_context& ctx = context();
  if (!begin_stop(mode)) return 0;

  std::lock_guard lock(stop_mutex_);
  if (stopped_) return 0;
  workers_.join();
  ensure_buffer(ctx);
  std::uint64_t discarded = 0;
  // The flag's value only (a late discard is caught by the next look): seq_cst is not needed.
  if (!discarding_.load(std::memory_order_seq_cst))
    drain_everything(ctx);  // manual mode, or what a publisher admitted just before stopping_
  // A discard asked for before, or during the drain (by a handler it ran, or by a stop(discard)
  // now waiting for the lock), wins: what the drain left is discarded.
  if (discarding_.load(std::memory_order_seq_cst)) discarded = discard_all(ctx);
  stopped_ = true;
  return discarded;
}

void bus_core::drain_everything(thread_context& ctx) {
  // Retries and delayed events run now, their delays cut short: a drain runs everything the
  // bus accepted. A retry scheduled meanwhile is due at once (bus_core::handle_failures), and
  // each delivery is still bounded by its max_attempts, so this ends. It ends early when a
  // discard begins: a discard shuts the re-entry door, and a delivery fired at it would go back
  // into the timer, to be fired again, for ever.
  for (;;) {
    while (!lanes_empty()) {
      if (discarding_.load(std::memory_order_seq_cst)) return;
      if (drain_batch(ctx, cfg_.batch) == 0) std::this_thread::yield();
    }
    if (discarding_.load(std::memory_order_seq_cst)) return;
    // Under the timer's lock: a delayed publish that took its slot before stopping_ was set
    // (timer_queue::reserve reads it under the same lock) is seen here until it is parked.
    if (timers_.empty_now()) return;
    fire_due(ctx, true);
  }
}

std::size_t bus_core::discard_all(thread_context& ctx) {
  std::size_t total = 0;
  for (;;) {
    bool any = false;
    for (unsigned l = 0; l < priority_count; ++l) {
      lane& ln = lanes_[l];
      while (const std::size_t n = ln.queue.try_dequeue_bulk(*ctx.consumer[l], ctx.drain_buffer,
                                                             ctx.drain_buffer_size)) {
        any = true;
        count_out(ctx, l, n, reentered_in(ctx, l, n));
        for (std::size_t i = 0; i < n; ++i) {
          envelope& env = ctx.drain_buffer[i];
          const std::uint16_t t = env.header.type_index;
          if (t == delivery_type()) {
            // Counts itself. A delivery of all the handlers is an event that never ran (one
            // with a deadline, or a delayed one that fell due): one event, as it would be in
            // the timer; a retry is not.
            total += delivery_of(env)->target == nullptr;
            discard_delivery(ctx, env);
            continue;
          }
          if (t == strand_type()) {  // a strand's token: its keyed events count themselves
            total += discard_strand(ctx, *strand_of(env), l);
            continue;
          }
          journal_settled(ctx, env.header, tachyon::outcome::discarded);
          types_.ops[t].release(env);
          ctx.count(l, t, c_discarded);
          ++total;
        }
      }
    }
    if (lanes_empty()) {
      // What waits in the timer: a delayed event is discarded, a retry discards its event
      // (unless another of its deliveries settles it otherwise).
      delivery* d[64];
      while (const std::size_t n = timers_.pop_due(0, true, d, 64)) {
        timers_.moved(n);
        for (std::size_t i = 0; i < n; ++i) {
          parked_event* pe = d[i]->event;
          total += d[i]->target == nullptr;  // a delayed event: one event discarded
          pe->add_mark(mark::discarded);
          if (d[i]->target != nullptr) d[i]->target->release();
          delete d[i];
          settle_run(ctx, pe, false);
          pe->release_ref();
        }
      }
      return total;
    }
    if (!any) std::this_thread::yield();  // a publisher is between admitting and enqueueing
  }
}

}  // namespace tachyon::detail
