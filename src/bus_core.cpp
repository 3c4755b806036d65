// The compiled half of bus_core (detail/bus_core.hpp): construction, the lanes' occupancy,
// and the publish path's slow halves (admission refills, overflow, re-entry, growing a lane).
// The drain, idling and stop are in src/worker/, the metrics snapshot in src/metrics/.
#include <tachyon/detail/bus_core.hpp>
#include <tachyon/detail/journal/journal.hpp>

#include <stdexcept>
#include <string>
#include <thread>

namespace tachyon::detail {

namespace {

std::array<lane, priority_count> make_lanes(const config& cfg) {
  // moodycamel's (minCapacity, maxExplicitProducers) constructor reserves enough blocks for
  // that many producers to hold minCapacity elements each, and sizes every producer's block
  // index from that pool, so try_enqueue under tachyon's bound never needs to allocate.
  // reserved_bytes(cfg) is what this asks for; validate() refused more than
  // max_reserved_bytes. bus_core's constructor checks that every lane got it.
  const std::size_t producers = std::size_t{cfg.producers} + cfg.workers;
  const std::size_t events = cfg.lane_capacity;
  lane_traits::allocation_failed = false;
  const bool asym = asymmetric_fences();
  auto one = [&] { return lane(events, producers, cfg.lane_capacity, cfg.reentry_capacity, asym); };
  return {one(), one(), one(), one()};
}

const config& validated(const config& cfg) {
  validate(cfg);
  return cfg;
}

}  // namespace

// ---- construction ------------------------------------------------------------------------------

bus_core::bus_core(const config& cfg, type_table types, void* tables, time_ref time,
                   hooks_ref hooks)
    : cfg_(validated(cfg)),
      types_(types),
      tables_(tables),
      time_(time),
      hooks_(hooks),
      lanes_(make_lanes(cfg_)),
      contexts_(lanes_, types_.count, epochs_, &bus_core::hand_back, this) {
  // A lane whose reservation failed would allocate on publishes under the bound, and fail
  // them when that fails too: refuse the bus instead (the lanes free what they did get).
  if (lane_traits::allocation_failed) throw std::bad_alloc();
  timers_.reserve_memory();  // scheduling a retry never allocates the heap
  worker_ctx_ = std::make_unique<std::atomic<thread_context*>[]>(cfg_.workers);
}

bus_core::~bus_core() {
  stop(stop_mode::drain);  // a discard asked for earlier (discarding_) still wins
  contexts_.detach();      // threads that end from now on leave their credits alone
  epochs_.free_all();
  if (strand* all = strands_.load(std::memory_order_acquire)) {  // empty now: only their stubs
    for (std::uint32_t i = 0; i < cfg_.key_strands; ++i) all[i].~strand();
    deallocate(all);
  }
  // The members go in reverse order: the contexts (moodycamel tokens) before the lanes.
}

void bus_core::start() {
  // Before any worker starts (the thread's start orders it): seq_cst is more than needed.
  workers_running_.store(cfg_.workers, std::memory_order_seq_cst);
  try {
    workers_.start(cfg_, [this](std::uint32_t i) { worker_main(i); });
  } catch (...) {  // none ran its body
    workers_running_.store(0, std::memory_order_seq_cst);
    throw;
  }
}

// ---- lanes -------------------------------------------------------------------------------------

void bus_core::release_credits(thread_context& ctx) noexcept {
  for (unsigned l = 0; l < priority_count; ++l) lanes_[l].admission.give_back(ctx.credits[l]);
}

std::uint64_t bus_core::occupancy(unsigned l) const noexcept {
  return front_occupancy(l) + lanes_[l].admission.reentry_depth();
}

std::uint64_t bus_core::front_occupancy(unsigned l) const noexcept {
  // `done` first: an event is admitted (used) before it can be dequeued (done), so reading the
  // dequeue counts first keeps a racy difference from going below the truth by much; it is
  // clamped at zero all the same. `done`'s acquire keeps that order on a weak CPU (the used loads
  // cannot move before it, and see what count_out()'s release carries); seq_cst is more than
  // that needs (stop and the parking check read this after heavy_fence).
  std::uint64_t done = 0, used = 0;
  accounts(l)([&](const credit_account& a) { done += a.done.load(std::memory_order_seq_cst); });
  accounts(l)([&](const credit_account& a) { used += a.used.load(std::memory_order_seq_cst); });
  return used > done ? used - done : 0;
}

bool bus_core::lanes_empty() const noexcept {
  for (unsigned l = 0; l < priority_count; ++l)
    if (occupancy(l) != 0) return false;
  return true;
}

// ---- publish slow paths ------------------------------------------------------------------------

std::uint32_t bus_core::admit_some(thread_context& ctx, unsigned l, std::uint32_t want,
                                   bool& stopped) {
  credit_account& a = ctx.credits[l];
  lane_admission& adm = lanes_[l].admission;
  for (;;) {
    // A filter: try_admit's load after the fence decides, and admit_one's room wait checks the
    // flag itself. seq_cst is not needed here (an ldar on aarch64, once per refill or chunk).
    if (stopping_.load(std::memory_order_seq_cst)) {
      stopped = true;
      return 0;
    }
    std::uint64_t have = a.spare();
    if (have == 0) {
      if (adm.refill(a, want, accounts(l)) == 0) return 0;
      continue;  // a revoker may have taken them back already: look again
    }
    const auto k = static_cast<std::uint32_t>(std::min<std::uint64_t>(have, want));
    if (lane_admission::try_admit(a, k, asymmetric_, stopping_, stopped)) return k;
    if (stopped) return 0;
  }
}

result bus_core::admit_one(thread_context& ctx, unsigned l, std::uint16_t type, bool stopped,
                           std::size_t refused) {
  auto refuse = [&](result r) {
    const counter k = r == result::stopped ? c_rejected_stopped : c_rejected_full;
    ctx.count(l, type, k, refused);
    return r;
  };
  if (!stopped && admit_some(ctx, l, 1, stopped) == 1) return result::ok;
  // Only which refusal it is: seq_cst is not needed.
  if (stopped || stopping_.load(std::memory_order_seq_cst)) return refuse(result::stopped);
  switch (cfg_.overflow) {
    case overflow::fail:
      return refuse(result::full);
    case overflow::drop:
      ctx.count(l, type, c_accepted);
      ctx.count(l, type, c_dropped);
      return result::dropped;
    case overflow::drop_oldest:
      return admit_displacing(ctx, l, type, refused);
    case overflow::block:
      break;
  }
  // A handler of this bus must not wait for room: the room is made by the very workers (or
  // poll() caller) that would be waiting. It gets `full` at once.
  if (ctx.dispatch_nesting > 0) return refuse(result::full);
  lane& ln = lanes_[l];
  const auto deadline = cfg_.block_timeout == std::chrono::nanoseconds::zero()
                            ? std::chrono::steady_clock::time_point::max()
                            : std::chrono::steady_clock::now() + cfg_.block_timeout;
  // Woken once per freed batch, one waiter at a time: a publisher that got room and sees more
  // left passes the wake on to the next.
  auto admitted = [&] {
    if (ln.admission.pool() > 0) ln.room.notify_one();
    return result::ok;
  };
  // Poll for config::spin_before_park first, as an idle worker does: room usually comes within
  // a batch, and a publisher asleep on the futex would make the worker pay a wake-up syscall
  // per batch and leave the lane to run empty while it is scheduled back in. The poll reads
  // only the pool; a full admission (which may revoke idle credits) is tried when room shows,
  // and before every sleep.
  const auto spin_until =
      std::min(deadline, std::chrono::steady_clock::now() + cfg_.spin_before_park);
  for (std::uint32_t spin = 1;; ++spin) {
    cpu_relax();
    // Relaxed: a poll; the check before each sleep below is the one that must not miss it.
    if (stopping_.load(std::memory_order_relaxed)) return refuse(result::stopped);
    if (ln.admission.pool() > 0) {
      if (admit_some(ctx, l, 1, stopped) == 1) return admitted();
      if (stopped) return refuse(result::stopped);
    }
    if ((spin & 63) == 0 && std::chrono::steady_clock::now() >= spin_until) break;
  }
  for (;;) {
    const auto key = ln.room.prepare_wait();
    if (admit_some(ctx, l, 1, stopped) == 1) {
      ln.room.cancel_wait();
      return admitted();
    }
    // seq_cst: room's waiter check, against begin_stop()'s store and notify_all.
    if (stopped || stopping_.load(std::memory_order_seq_cst)) {
      ln.room.cancel_wait();
      return refuse(result::stopped);
    }
    if (!ln.room.wait(key, deadline)) {
      if (admit_some(ctx, l, 1, stopped) == 1) return admitted();
      return refuse(stopped ? result::stopped : result::full);
    }
  }
}

result bus_core::admit_displacing(thread_context& ctx, unsigned l, std::uint16_t type,
                                  std::size_t refused) {
  // Each round displaces one event and hands its room to this thread, or, finding none it
  // can take, looks for room again: the lane's front-door events were all in other threads'
  // hands (admitted and not yet enqueued, or dequeued and not yet counted out), which lasts
  // nanoseconds. A revoker that finds the pool empty may also take the handed-over credit
  // before this thread spends it. The rounds are bounded, so that a publish under
  // drop_oldest never waits: when they run out, the new event is dropped.
  constexpr int rounds = 16;
  for (int i = 0; i < rounds; ++i) {
    if (!displace_one(ctx, l)) cpu_relax();
    bool stopped = false;
    if (admit_some(ctx, l, 1, stopped) == 1) return result::ok;
    if (stopped) {
      ctx.count(l, type, c_rejected_stopped, refused);
      return result::stopped;
    }
  }
  ctx.count(l, type, c_accepted);
  ctx.count(l, type, c_dropped);
  return result::dropped;
}

bool bus_core::displace_one(thread_context& ctx, unsigned l) {
  lane& ln = lanes_[l];
  moodycamel::ProducerToken& own = *ctx.producer[l];  // publish made it before admitting
  // Deliveries (retries, delayed events that fell due) entered through the re-entry door: taking
  // one out makes no room for a publisher, so they are stepped over, held here and put back. A
  // bounded number, so that a lane whose visible front is all deliveries (the front-door events
  // are in other threads' hands for the moment) cannot hold a publisher: it drops instead.
  constexpr std::size_t max_stepped = 16;
  unstamped<max_stepped> stepped;
  std::size_t held = 0;
  envelope env;
  bool own_empty = false, found = false;
  while (held < max_stepped) {
    // This thread's own producer first: exactly its oldest event in the lane (FIFO per
    // producer). Then moodycamel's pick among the others (see the README's Backpressure).
    bool got = !own_empty && ln.queue.try_dequeue_from_producer(own, env);
    if (!got) {
      own_empty = true;
      got = ln.queue.try_dequeue(env);
    }
    if (!got) break;
    if ((env.header.flags & meta_flags::reentered) != 0) {
      stepped.at[held++] = env;
      continue;
    }
    found = true;
    break;
  }
  if (held != 0) put_back(ctx, l, stepped.at, held);
  if (!found) return false;
  // Counted before it leaves the lane's occupancy (hand_over): a snapshot in between counts
  // the event twice, never not at all.
  const std::uint16_t t = env.header.type_index;
  if (t == delivery_type()) {
    // A front-door delivery: an event published with a deadline, which never ran. Displaced as
    // a plain event would be (not parked, so nothing waits on it).
    delivery* d = delivery_of(env);
    ctx.count(l, d->event->env.header.type_index, c_displaced);
    told(ctx, *d->event, tachyon::outcome::displaced);
    d->dispose();
  } else {
    ctx.count(l, t, c_displaced);
    journal_settled(ctx, env.header, tachyon::outcome::displaced);
    types_.ops[t].release(env);
  }
  lane_admission::hand_over(ctx.credits[l]);
  return true;
}

void bus_core::put_back(thread_context& ctx, unsigned l, envelope* envs, std::size_t n) noexcept {
  // Through this thread's producer, to the back of its sub-queue: deliveries are not ordered
  // among themselves or against events. Still counted by the re-entry door, which they never
  // left, so stop() and metrics() see them throughout. A delivery that cannot go back (no
  // memory for a block) leaves through the door and is discarded, counted.
  lane& ln = lanes_[l];
  moodycamel::ProducerToken& own = *ctx.producer[l];
  if (ln.queue.try_enqueue_bulk(own, envs, n) || ln.queue.enqueue_bulk(own, envs, n)) return;
  for (std::size_t i = 0; i < n; ++i) {
    if (ln.queue.enqueue(own, envs[i])) continue;
    ln.admission.cancel_reenter();
    discard_delivery(ctx, envs[i]);
  }
}

bool bus_core::reenter(envelope& env) {
  const auto l = static_cast<unsigned>(env.header.lane);
  lane& ln = lanes_[l];
  thread_context& ctx = context();
  moodycamel::ProducerToken& token = producer_token(ctx, l);
  if (!ln.admission.try_reenter()) return false;
  // The door's RMW and this load are both seq_cst, so they stay in order (a Dekker pair with
  // stop(discard)'s store of discarding_ and its later reads of the door, occupancy()):
  // stop()'s heavy fence is not needed to see it.
  // A seq_cst RMW alone would not order a later relaxed load on aarch64.
  // A drain stop still takes re-entries (retries and delayed events run before it returns).
  if (discarding_.load(std::memory_order_seq_cst)) {
    ln.admission.cancel_reenter();
    return false;
  }
  const std::uint8_t flags = env.header.flags;
  env.header.flags = static_cast<std::uint8_t>(flags | meta_flags::reentered);
  if (!ln.queue.try_enqueue(token, env) && !ln.queue.enqueue(token, env)) {
    env.header.flags = flags;
    ln.admission.cancel_reenter();
    return false;
  }
  work_.notify_one();
  return true;
}

void bus_core::throw_batch_error(std::size_t queued, std::size_t dropped) {
  throw publish_batch_error(queued, dropped);
}

void bus_core::make_producer_token(thread_context& ctx, unsigned l) {
  ctx.producer[l].emplace(lanes_[l].queue);
  if (!ctx.producer[l]->valid()) {  // moodycamel could not allocate the producer
    ctx.producer[l].reset();
    throw std::bad_alloc();
  }
}

void bus_core::enqueue_growing(thread_context& ctx, lane& ln, envelope* envs, std::uint32_t n) {
  const auto l = static_cast<unsigned>(&ln - lanes_.data());
  const bool ok = n == 1 ? ln.queue.enqueue(producer_token(ctx, l), envs[0])
                         : ln.queue.enqueue_bulk(producer_token(ctx, l), envs, n);
  if (!ok) {
    for (std::uint32_t i = 0; i < n; ++i) types_.ops[envs[i].header.type_index].release(envs[i]);
    undo_admission(ctx, l, n);
    throw std::bad_alloc();
  }
  bump(ctx.misc_row().v[m_lane_allocations]);
}

void bus_core::journal_outcome(thread_context& ctx, const meta& m, tachyon::outcome o) noexcept {
  journal_->settled(ctx, m, o);
}

}  // namespace tachyon::detail
