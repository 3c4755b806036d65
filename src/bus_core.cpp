// The compiled half of the bus: contexts, workers, parking, stop, reclamation, metrics.
#include <tachyon/detail/bus_core.hpp>
#include <tachyon/histogram.hpp>

#include <pthread.h>
#include <sched.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <latch>
#include <stdexcept>
#include <string>

namespace tachyon::detail {

constinit thread_local tls_cache_entry tls_last_context{};
/// Set once this thread's registry of contexts is destroyed (at thread exit; for the main
/// thread, before static objects are): a bus used after that (a thread_local destructor that
/// publishes, a static bus stopping in its destructor) gets its context from late_context_slow().
constinit thread_local bool tls_registry_gone = false;

/// Shared by the bus and (weakly) by every thread's context cache, so that a thread that ends
/// after its bus is gone does not touch freed memory, and one that ends before hands its
/// context back for reuse.
struct context_anchor {
  std::mutex m;
  bus_core* core = nullptr;
};

namespace {

std::atomic<std::uint64_t> next_bus_id{1};

/// This thread's contexts, one per bus it has used.
struct tls_registry {
  struct entry {
    std::uint64_t bus_id;
    thread_context* ctx;
    std::weak_ptr<context_anchor> anchor;
  };
  std::vector<entry> entries;

  ~tls_registry() {
    tls_registry_gone = true;
    tls_last_context = {};
    for (auto& e : entries) {
      if (auto a = e.anchor.lock()) {
        std::lock_guard g(a->m);
        if (a->core != nullptr) {
          a->core->release_credits(*e.ctx);
          e.ctx->owned.store(false, std::memory_order_release);
        }
      }
    }
  }
};
thread_local tls_registry tls_contexts;

/// The contexts a thread acquires after its registry is gone, kept under a pthread key: glibc
/// runs a thread's pthread key destructors after its thread_local destructors (__call_tls_dtors
/// before __nptl_deallocate_tsd in start_thread), so the key's destructor hands them back once
/// the last thread_local destructor that could publish has run. The main thread's are never
/// handed back (exit() runs no key destructors); a process has one main thread.
struct late_context {
  std::uint64_t bus_id;
  thread_context* ctx;
  std::weak_ptr<context_anchor> anchor;
  late_context* next;
};

void release_late_contexts(void* head) noexcept {
  // A key destructor that runs later (another library's) may use a bus again; it then starts
  // a new list, and glibc calls this again for it (up to PTHREAD_DESTRUCTOR_ITERATIONS).
  tls_last_context = {};
  for (auto* e = static_cast<late_context*>(head); e != nullptr;) {
    if (auto a = e->anchor.lock()) {
      std::lock_guard g(a->m);
      if (a->core != nullptr) {
        a->core->release_credits(*e->ctx);
        e->ctx->owned.store(false, std::memory_order_release);
      }
    }
    auto* next = e->next;
    delete e;
    e = next;
  }
}

/// The key, made on first use; nullopt if the process has run out of keys (then a late
/// context stays owned by its thread for good, as it would without this list).
const std::optional<pthread_key_t>& late_contexts_key() {
  static const std::optional<pthread_key_t> key = []() -> std::optional<pthread_key_t> {
    pthread_key_t k;
    if (pthread_key_create(&k, release_late_contexts) != 0) return std::nullopt;
    return k;
  }();
  return key;
}

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

// ---- thread_context ----------------------------------------------------------------------------

/// Written by the owning thread only (histogram records, the slots' first stores); metrics()
/// reads the slots with acquire and the histograms' relaxed counters while they change, which
/// tachyon::histogram allows.
struct latency_set {
  explicit latency_set(std::size_t types)
      : type_count(types), type(std::make_unique<std::atomic<histogram*>[]>(types)) {}
  ~latency_set() {
    for (auto& h : lane) drop(h);
    for (std::size_t t = 0; t < type_count; ++t) drop(type[t]);
  }
  latency_set(const latency_set&) = delete;
  latency_set& operator=(const latency_set&) = delete;

  /// The slot's histogram, made on first use (15 KiB); null if that allocation failed, and
  /// the value then goes unrecorded. Owner only.
  static histogram* get(std::atomic<histogram*>& slot) noexcept {
    histogram* h = slot.load(std::memory_order_relaxed);
    if (h == nullptr) [[unlikely]] {
      void* p = allocate_or_null(sizeof(histogram), alignof(histogram));
      if (p == nullptr) return nullptr;
      h = ::new (p) histogram();
      slot.store(h, std::memory_order_release);
    }
    return h;
  }
  static void drop(std::atomic<histogram*>& slot) noexcept {
    if (histogram* h = slot.load(std::memory_order_relaxed)) {
      h->~histogram();
      deallocate(h);
    }
  }

  std::array<std::atomic<histogram*>, priority_count> lane{};  // queue wait
  std::size_t type_count;
  std::unique_ptr<std::atomic<histogram*>[]> type;  // handler time
};

thread_context::thread_context(std::uint32_t id_, std::array<lane, priority_count>& lanes,
                               std::size_t types_)
    : next_sequence(id_), types(types_) {
  const std::size_t n = row_count(types);
  rows = static_cast<counter_row*>(allocate(n * sizeof(counter_row), alignof(counter_row)));
  for (std::size_t i = 0; i < n; ++i) ::new (&rows[i]) counter_row{};
  for (unsigned l = 0; l < priority_count; ++l) consumer[l].emplace(lanes[l].queue);
}

thread_context::~thread_context() {
  const std::size_t n = row_count(types);
  for (std::size_t i = 0; i < n; ++i) rows[i].~counter_row();
  deallocate(rows);
  deallocate(drain_buffer);
  delete latency.load(std::memory_order_relaxed);
}

// ---- construction, contexts --------------------------------------------------------------------

bus_core::bus_core(const config& cfg, type_table types, void* typed_bus)
    : cfg_(validated(cfg)),
      types_(types),
      typed_bus_(typed_bus),
      id_(next_bus_id.fetch_add(1, std::memory_order_relaxed)),
      lanes_(make_lanes(cfg_)),
      anchor_(std::make_shared<context_anchor>()) {
  // A lane whose reservation failed would allocate on publishes under the bound, and fail
  // them when that fails too: refuse the bus instead (the lanes free what they did get).
  if (lane_traits::allocation_failed) throw std::bad_alloc();
  anchor_->core = this;
}

bus_core::~bus_core() {
  stop(stop_mode::drain);  // a discard asked for earlier (discarding_) still wins
  {
    std::lock_guard g(anchor_->m);
    anchor_->core = nullptr;
  }
  if (tls_last_context.bus_id == id_) tls_last_context = {};
  free_garbage(retired_);
  // Contexts hold moodycamel tokens: they go before the lanes (members, destroyed after this).
  for (auto* c = contexts_.exchange(nullptr); c != nullptr;) {
    auto* next = c->next;
    delete c;
    c = next;
  }
}

thread_context& bus_core::context_slow() {
  if (tls_registry_gone) [[unlikely]]
    return late_context_slow();
  auto& entries = tls_contexts.entries;
  for (auto& e : entries) {
    if (e.bus_id == id_) {
      tls_last_context = {id_, e.ctx};
      return *e.ctx;
    }
  }
  std::erase_if(entries, [](const auto& e) { return e.anchor.expired(); });
  thread_context* ctx = acquire_context();
  entries.push_back({id_, ctx, anchor_});
  tls_last_context = {id_, ctx};
  return *ctx;
}

thread_context& bus_core::late_context_slow() {
  const auto& key = late_contexts_key();
  if (!key) return *acquire_context();  // stays owned: nobody would hand it back
  auto* head = static_cast<late_context*>(pthread_getspecific(*key));
  for (auto* e = head; e != nullptr; e = e->next) {
    if (e->bus_id == id_) {
      tls_last_context = {id_, e->ctx};
      return *e->ctx;
    }
  }
  auto entry = std::make_unique<late_context>(late_context{id_, nullptr, anchor_, head});
  if (pthread_setspecific(*key, entry.get()) != 0) return *acquire_context();  // as above
  thread_context* ctx;
  try {
    ctx = acquire_context();
  } catch (...) {
    pthread_setspecific(*key, head);
    throw;
  }
  entry->ctx = ctx;
  entry.release();
  tls_last_context = {id_, ctx};
  return *ctx;
}

thread_context* bus_core::acquire_context() {
  for (auto* c = contexts_.load(std::memory_order_acquire); c != nullptr; c = c->next) {
    bool expected = false;
    if (!c->owned.load(std::memory_order_relaxed) &&
        c->owned.compare_exchange_strong(expected, true, std::memory_order_acq_rel))
      return c;
  }
  const std::uint32_t id = next_context_id_.fetch_add(1, std::memory_order_relaxed);
  if (id > 0xffff)
    throw std::length_error(
        "tachyon: more than 65535 threads hold a context of this bus at once; a thread's "
        "context is handed back for reuse when the thread ends");
  auto* c = new thread_context(id, lanes_, types_.count);
  c->next = contexts_.load(std::memory_order_relaxed);
  while (!contexts_.compare_exchange_weak(c->next, c, std::memory_order_release,
                                          std::memory_order_relaxed)) {
  }
  return c;
}

void bus_core::ensure_buffer(thread_context& ctx) {
  if (ctx.drain_buffer_size >= cfg_.batch) return;
  deallocate(ctx.drain_buffer);
  ctx.drain_buffer = nullptr;
  ctx.drain_buffer =
      static_cast<envelope*>(allocate(sizeof(envelope) * cfg_.batch, alignof(envelope)));
  ctx.drain_buffer_size = cfg_.batch;
}

// ---- workers -----------------------------------------------------------------------------------

void bus_core::start() {
  if (cfg_.workers == 0) return;
  struct start_state {
    explicit start_state(std::ptrdiff_t n) : ready(n) {}
    std::latch ready;
    std::atomic<int> go{0};  // 1: run, 2: give up
    std::mutex m;
    std::string error;
  };
  auto st = std::make_shared<start_state>(cfg_.workers);
  auto abandon = [&] {
    st->go.store(2);
    st->go.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  };
  threads_.reserve(cfg_.workers);
  try {
    for (std::uint32_t i = 0; i < cfg_.workers; ++i) {
      threads_.emplace_back([this, i, st] {
        char name[16];
        std::snprintf(name, sizeof(name), "tachyon-w%u", i);
        pthread_setname_np(pthread_self(), name);  // perf, gdb and top show it
        if (!cfg_.cpus.empty()) {
          const int cpu = cfg_.cpus[i % cfg_.cpus.size()];
          cpu_set_t set;
          CPU_ZERO(&set);
          CPU_SET(cpu, &set);
          if (const int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set); rc != 0) {
            std::lock_guard g(st->m);
            if (st->error.empty())
              st->error = std::string("tachyon: could not pin worker ") + name + " to cpu " +
                          std::to_string(cpu) + ": " + std::strerror(rc);
          }
        }
        st->ready.count_down();
        st->go.wait(0);
        if (st->go.load() == 1) worker_main(i);
      });
    }
  } catch (...) {  // a thread could not be created
    abandon();
    throw;
  }
  st->ready.wait();
  if (!st->error.empty()) {
    abandon();
    throw std::runtime_error(st->error);
  }
  st->go.store(1);
  st->go.notify_all();
}

void bus_core::worker_main(std::uint32_t) {
  thread_context& ctx = context();
  ensure_buffer(ctx);
  std::uint32_t idle_rounds = 0;
  std::chrono::steady_clock::time_point idle_since{};
  bool credits_reclaimed = false;
  for (;;) {
    if (discarding_.load(std::memory_order_acquire)) return;
    const std::size_t n = drain_batch(ctx, cfg_.batch);
    if (n != 0) {
      if (n == cfg_.batch) work_.notify_one();  // more may be waiting: wake a sleeping peer
      idle_rounds = 0;
      credits_reclaimed = false;
      continue;
    }
    // Not exact for admissions still in a publisher's store buffer; stop() drains those.
    if (stopping_.load(std::memory_order_seq_cst) && lanes_empty()) return;
    idle(ctx, idle_rounds, idle_since, credits_reclaimed);
  }
}

void bus_core::idle(thread_context& ctx, std::uint32_t& rounds,
                    std::chrono::steady_clock::time_point& since, bool& credits_reclaimed) {
  if (rounds++ == 0) {
    since = std::chrono::steady_clock::now();
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
  if ((rounds & 1023) == 0 && !credits_reclaimed) {
    // Credits left in the accounts of threads that stopped publishing keep a lane's hint
    // "maybe non-empty", and the scan then asks moodycamel every round. After a millisecond
    // idle, take them back (one heavy fence), once per idle period.
    if (std::chrono::steady_clock::now() - since >= std::chrono::milliseconds(1)) {
      reclaim_idle_credits(ctx);
      credits_reclaimed = true;
    }
  }
  if (cfg_.wait != wait_strategy::spin_then_park) return;
  if ((rounds & 63) != 0) return;  // read the clock every 64 polls
  if (std::chrono::steady_clock::now() - since < cfg_.spin_before_park) return;
  const auto key = work_.prepare_wait();
  // A publisher's admission is a plain store (then a compiler barrier, then its load of the
  // waiter count in notify_one): the heavy fence makes every admission made before our
  // prepare_wait visible to lanes_empty() below, or makes that publisher see us waiting.
  heavy_fence(asymmetric_);
  if (!lanes_empty() || stopping_.load(std::memory_order_seq_cst) ||
      discarding_.load(std::memory_order_seq_cst)) {
    work_.cancel_wait();
    return;
  }
  bump(ctx.misc_row().v[m_parks]);
  work_.wait(key);
  rounds = 0;
}

void bus_core::reclaim_idle_credits(thread_context& ctx) {
  for (unsigned l = 0; l < priority_count; ++l) {
    lane_admission& adm = lanes_[l].admission;
    if (!adm.maybe_nonempty()) continue;
    adm.give_back(ctx.credits[l]);
    adm.revoke_spare(&ctx.credits[l], accounts(l));
  }
}

void bus_core::release_credits(thread_context& ctx) noexcept {
  for (unsigned l = 0; l < priority_count; ++l) lanes_[l].admission.give_back(ctx.credits[l]);
}

std::uint64_t bus_core::occupancy(unsigned l) const noexcept {
  // `done` first: an event is admitted (used) before it can be dequeued (done), so reading the
  // dequeue counts first keeps a racy difference from going below the truth by much; it is
  // clamped at zero all the same.
  std::uint64_t done = 0, used = 0;
  accounts(l)([&](const credit_account& a) { done += a.done.load(std::memory_order_seq_cst); });
  accounts(l)([&](const credit_account& a) { used += a.used.load(std::memory_order_seq_cst); });
  const std::uint64_t front = used > done ? used - done : 0;
  return front + lanes_[l].admission.reentry_depth();
}

bool bus_core::lanes_empty() const noexcept {
  for (unsigned l = 0; l < priority_count; ++l)
    if (occupancy(l) != 0) return false;
  return true;
}

inline void bus_core::end_batch(thread_context& ctx, unsigned l, std::size_t n) noexcept {
  // The lane's outcome counts and in_hand move together, once per batch, so the lane's
  // accounting balances in every snapshot (a finished event of an unfinished batch still
  // reads as in flight, and is not yet counted as dispatched or failed).
  counter_row& row = ctx.lane_row(l);
  bump(row.v[c_dispatched], n - ctx.batch_failed);
  if (ctx.batch_failed != 0) [[unlikely]] {
    bump(row.v[c_failed], ctx.batch_failed);
    ctx.batch_failed = 0;
  }
  ctx.in_hand.store(0, std::memory_order_relaxed);
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
    take_batch(ctx, l, n);
    bump(ctx.misc_row().v[m_batches]);
    bump(ctx.misc_row().v[m_batched_events], n);
    // config::latency_histograms: the rest of the batch, timed; when off, this is the one
    // branch per batch the option costs.
    if (cfg_.latency_histograms) [[unlikely]]
      return dispatch_timed_cold(ctx);
    enter_dispatch(ctx);
    for (std::size_t i = 0; i < n; ++i) {
      envelope& env = ctx.drain_buffer[i];
      types_.dispatch[env.header.type_index](typed_bus_, env, ctx);  // settles it
    }
    exit_dispatch(ctx);
    end_batch(ctx, l, n);
    return n;
  }
  return 0;
}

void bus_core::take_batch(thread_context& ctx, unsigned l, std::size_t n) noexcept {
  // in_hand before done: a snapshot between the two counts the batch twice, never not at all.
  ctx.in_hand.store(static_cast<std::uint32_t>(n << 2 | l), std::memory_order_relaxed);
  count_out(ctx, l, n);
}

void bus_core::count_out(thread_context& ctx, unsigned l, std::size_t n) noexcept {
  lane& ln = lanes_[l];
  // Events that came through the re-entry door give their room back to that door. The door
  // is idle unless something re-entered, so the per-event look is skipped then.
  std::uint64_t reentered = 0;
  if (ln.admission.reentry_depth() != 0) [[unlikely]]
    for (std::size_t i = 0; i < n; ++i)
      reentered += (ctx.drain_buffer[i].header.flags & meta_flags::reentered) != 0;
  credit_account& a = ctx.credits[l];
  a.done.store(a.done.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  // Give the room back at once, not after the handlers: publishers blocked on this lane
  // proceed while the batch runs. One waiting publisher is woken per batch; it passes the
  // wake on if room is left when it has taken its own.
  ln.admission.release(n - reentered, reentered);
  ln.room.notify_one();
}

std::size_t bus_core::dispatch_timed_cold(thread_context& ctx) { return dispatch_timed(ctx); }

std::size_t bus_core::dispatch_timed(thread_context& ctx) {
  // The batch, as drain_batch marked it in hand: its lane and size.
  const std::uint32_t held = ctx.in_hand.load(std::memory_order_relaxed);
  const unsigned l = held & 3;
  const std::size_t n = held >> 2;
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
      if (histogram* h = latency_set::get(set->lane[l]))
        h->record(batch_start > published ? batch_start - published : 0);
    types_.dispatch[t](typed_bus_, env, ctx);  // settles it
    const std::uint64_t end = clock::now();
    if (set != nullptr)
      if (histogram* h = latency_set::get(set->type[t])) h->record(end > start ? end - start : 0);
    start = end;
  }
  exit_dispatch(ctx);
  end_batch(ctx, l, n);
  return n;
}

thread_context& bus_core::manual_context() {
  thread_context& ctx = context();
  if (ctx.depth > 0)
    throw std::logic_error(
        "tachyon::bus::poll/run_once called from inside a handler of the same bus; a handler "
        "must not drain the bus that is running it");
  ensure_buffer(ctx);
  return ctx;
}

// Once a discard has begun, manual draining runs nothing more, as a worker starts no new
// batch: what is queued is stop()'s to release and count in `discarded`.
std::size_t bus_core::run_once() {
  thread_context& ctx = manual_context();
  if (discarding_.load(std::memory_order_acquire)) return 0;
  return drain_batch(ctx, cfg_.batch);
}

std::size_t bus_core::poll(std::size_t max_events) {
  thread_context& ctx = manual_context();
  std::size_t total = 0;
  while (total < max_events && !discarding_.load(std::memory_order_acquire)) {
    const std::size_t n = drain_batch(ctx, std::min<std::size_t>(cfg_.batch, max_events - total));
    if (n == 0) break;
    total += n;
  }
  return total;
}

// ---- publish slow paths ------------------------------------------------------------------------

std::uint32_t bus_core::admit_some(thread_context& ctx, unsigned l, std::uint32_t want,
                                   bool& stopped) {
  credit_account& a = ctx.credits[l];
  lane_admission& adm = lanes_[l].admission;
  for (;;) {
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
  if (stopped || stopping_.load(std::memory_order_seq_cst)) return refuse(result::stopped);
  switch (cfg_.overflow) {
    case overflow::fail:
      return refuse(result::full);
    case overflow::drop:
      ctx.count(l, type, c_accepted);
      ctx.count(l, type, c_dropped);
      return result::dropped;
    case overflow::block:
      break;
  }
  // A handler of this bus must not wait for room: the room is made by the very workers (or
  // poll() caller) that would be waiting. It gets `full` at once.
  if (ctx.depth > 0) return refuse(result::full);
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
  for (int spin = 0; spin < 128; ++spin) {  // room usually comes within one batch
    cpu_relax();
    if (admit_some(ctx, l, 1, stopped) == 1) return admitted();
    if (stopped) return refuse(result::stopped);
  }
  for (;;) {
    const auto key = ln.room.prepare_wait();
    if (admit_some(ctx, l, 1, stopped) == 1) {
      ln.room.cancel_wait();
      return admitted();
    }
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

bool bus_core::reenter(envelope& env) {
  const auto l = static_cast<unsigned>(env.header.lane);
  lane& ln = lanes_[l];
  thread_context& ctx = context();
  moodycamel::ProducerToken& token = producer_token(ctx, l);
  if (!ln.admission.try_reenter()) return false;
  // The door's RMW above is a full barrier: stop()'s heavy fence is not needed to see it.
  if (stopping_.load(std::memory_order_seq_cst)) {
    ln.admission.cancel_reenter();
    return false;
  }
  const meta saved = env.header;
  env.header.flags = static_cast<std::uint8_t>(env.header.flags | meta_flags::reentered);
  if (env.header.attempt != UINT8_MAX) ++env.header.attempt;
  if (!ln.queue.try_enqueue(token, env) && !ln.queue.enqueue(token, env)) {
    env.header = saved;
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
    for (std::uint32_t i = 0; i < n; ++i) types_.release[envs[i].header.type_index](envs[i]);
    lane_admission::cancel(ctx.credits[l], n);
    throw std::bad_alloc();
  }
  bump(ctx.misc_row().v[m_lane_allocations]);
}

void bus_core::report_error(thread_context& ctx, const meta& m, std::exception_ptr e) noexcept {
  ctx.count(static_cast<unsigned>(m.lane), m.type_index, c_handler_errors);
  if (!cfg_.on_error) return;
  try {
    cfg_.on_error(handler_error{m, types_.names[m.type_index], std::move(e)});
  } catch (...) {  // the hook must not throw; if it does, nothing else may suffer for it
  }
}

// ---- stop --------------------------------------------------------------------------------------

std::uint64_t bus_core::stop(stop_mode mode) {
  thread_context& ctx = context();
  if (mode == stop_mode::discard) discarding_.store(true, std::memory_order_seq_cst);
  stopping_.store(true, std::memory_order_seq_cst);
  // Publishers admit with a plain store and then read stopping_ (try_admit): after this fence
  // every admission that read false is visible to lanes_empty(), so the drain below and the
  // workers' last look see it.
  heavy_fence(asymmetric_);
  work_.notify_all();
  for (auto& ln : lanes_) ln.room.notify_all();
  if (ctx.depth > 0) return 0;  // inside a handler: joining would wait for ourselves

  std::lock_guard lock(stop_mutex_);
  if (stopped_) return 0;
  for (auto& t : threads_) t.join();
  threads_.clear();
  ensure_buffer(ctx);
  std::uint64_t discarded = 0;
  if (discarding_.load(std::memory_order_seq_cst)) {
    discarded = discard_all(ctx);
  } else {  // manual mode, or what a publisher reserved just before stopping_ was set
    while (!lanes_empty())
      if (drain_batch(ctx, cfg_.batch) == 0) std::this_thread::yield();
  }
  stopped_ = true;
  return discarded;
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
        count_out(ctx, l, n);
        for (std::size_t i = 0; i < n; ++i) {
          envelope& env = ctx.drain_buffer[i];
          types_.release[env.header.type_index](env);
          ctx.count(l, env.header.type_index, c_discarded);
        }
        total += n;
      }
    }
    if (lanes_empty()) return total;
    if (!any) std::this_thread::yield();  // a publisher is between admitting and enqueueing
  }
}

// ---- reclamation -------------------------------------------------------------------------------

void bus_core::synchronize() {
  // Readers announce the epoch they saw on entry, then load tables (enter_dispatch). After
  // heavy_fence, each reader's fence point lies either before ours, so its announcement is
  // visible to the scan below, or after, so its table loads see the swap our caller made
  // before the fetch_add. A reader whose epoch load already saw `target` loads tables after
  // that acquire and sees the swap too. So a reader still on the old table shows an epoch in
  // [1, target) until it leaves.
  const thread_context* self = &context();
  const std::uint64_t target = epoch_.fetch_add(1, std::memory_order_seq_cst) + 1;
  heavy_fence(asymmetric_);  // every reader's announcement is now visible, or it sees the swap
  for (auto* c = contexts_.load(std::memory_order_seq_cst); c != nullptr; c = c->next) {
    if (c == self) continue;
    for (unsigned spins = 0;; ++spins) {
      const std::uint64_t e = c->reader_epoch.load(std::memory_order_seq_cst);
      if (e == 0 || e >= target) break;
      if (spins < 64)
        cpu_relax();
      else if (spins < 1024)
        std::this_thread::yield();
      else
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
}

void bus_core::retire(void* p, void (*deleter)(void*)) noexcept {
  try {
    retired_.push_back({p, deleter, epoch_.fetch_add(1, std::memory_order_seq_cst) + 1});
    // Epochs grow in push order (retire holds the mutex): the front is the oldest.
    if (retired_.size() == 1) reclaim_due_.store(retired_.front().epoch, std::memory_order_relaxed);
  } catch (...) {  // out of memory: leak p
  }
}

void bus_core::reclaim(garbage& out) {
  if (retired_.empty()) return;
  // The one allocation, before anything moves: the push_back below cannot throw.
  out.reserve(out.size() + retired_.size());
  heavy_fence(asymmetric_);  // as in synchronize()
  std::uint64_t oldest_reader = UINT64_MAX;
  for (auto* c = contexts_.load(std::memory_order_seq_cst); c != nullptr; c = c->next) {
    const std::uint64_t e = c->reader_epoch.load(std::memory_order_seq_cst);
    if (e != 0) oldest_reader = std::min(oldest_reader, e);
  }
  std::erase_if(retired_, [&](const retired& r) {
    if (r.epoch > oldest_reader) return false;
    out.push_back(r);
    return true;
  });
  reclaim_due_.store(retired_.empty() ? 0 : retired_.front().epoch, std::memory_order_relaxed);
}

void bus_core::reclaim_after_dispatch() noexcept {
  // This thread has just left its outermost dispatch: it holds no table. First a cheap filter,
  // without the fence or the lock: an announcement older than the oldest retired epoch is a
  // reader that may still see it, and reclaim() would free nothing, so a worker that runs
  // beside a long handler does not pay a membarrier per batch. A stale value only moves the
  // attempt to a later exit; reclaim() decides with the fence.
  const std::uint64_t due = reclaim_due_.load(std::memory_order_relaxed);
  if (due == 0) return;
  for (auto* c = contexts_.load(std::memory_order_acquire); c != nullptr; c = c->next) {
    const std::uint64_t e = c->reader_epoch.load(std::memory_order_relaxed);
    if (e != 0 && e < due) return;
  }
  // Never block a dispatching thread on the lock: its holder is subscribing or unsubscribing,
  // and a later exit (or that holder's own reclaim) tries again.
  std::unique_lock lock(subscription_mutex_, std::try_to_lock);
  if (!lock.owns_lock()) return;
  garbage g;
  try {
    reclaim(g);
  } catch (...) {  // out of memory before anything moved: a later exit tries again
    return;
  }
  lock.unlock();
  free_garbage(g);  // user destructors: outside the lock, and this thread reads no table
}

// ---- metrics -----------------------------------------------------------------------------------

namespace {

/// A merged histogram of tick values, in nanoseconds. `h` is this call's own copy, so its
/// buckets add up: the count is taken from them (the copy's count_ was read apart from its
/// buckets while the writers wrote) and +Inf equals it, as Prometheus requires.
latency_summary summarize(const histogram& h) {
  latency_summary s;
  s.count = h.count_at_or_below(~std::uint64_t{0});
  if (s.count == 0) return s;
  const double ns_per_tick = clock::ns_per_tick();  // the first call calibrates (10 ms)
  auto ns = [&](std::uint64_t ticks) {
    return static_cast<std::uint64_t>(std::llround(static_cast<double>(ticks) * ns_per_tick));
  };
  s.sum_ns = ns(h.sum());
  s.p50_ns = ns(h.percentile(50));
  s.p90_ns = ns(h.percentile(90));
  s.p99_ns = ns(h.percentile(99));
  s.p999_ns = ns(h.percentile(99.9));
  s.max_ns = ns(h.max());
  for (std::size_t i = 0; i < s.buckets.size(); ++i) {
    const double ticks =
        std::floor(static_cast<double>(latency_summary::bounds_ns[i]) / ns_per_tick);
    s.buckets[i] = h.count_at_or_below(static_cast<std::uint64_t>(ticks));
  }
  return s;
}

}  // namespace

metrics_snapshot bus_core::metrics() const {
  metrics_snapshot s;
  s.workers = cfg_.workers;
  s.latency_histograms = cfg_.latency_histograms;
  // config::latency_histograms: [lanes][types], merged over the contexts.
  std::vector<histogram> merged(cfg_.latency_histograms ? priority_count + types_.count : 0);
  auto merge = [](histogram& into, const std::atomic<histogram*>& slot) {
    if (const histogram* h = slot.load(std::memory_order_acquire)) into.merge(*h);
  };
  s.types.resize(types_.count);
  for (std::size_t t = 0; t < types_.count; ++t) s.types[t].name = std::string(types_.names[t]);
  auto read = [](const counter_row& r) {
    auto v = [&](counter k) { return r.v[k].load(std::memory_order_relaxed); };
    event_counts c;
    c.accepted = v(c_accepted);
    c.dispatched = v(c_dispatched);
    c.failed = v(c_failed);
    c.dropped = v(c_dropped);
    c.discarded = v(c_discarded);
    c.rejected_full = v(c_rejected_full);
    c.rejected_stopped = v(c_rejected_stopped);
    c.handler_errors = v(c_handler_errors);
    return c;
  };
  for (auto* c = contexts_.load(std::memory_order_acquire); c != nullptr; c = c->next) {
    ++s.threads;
    for (unsigned l = 0; l < priority_count; ++l) {
      s.lanes[l].counts += read(c->lane_row(l));
      // Admitted through the front door (publish, publish_batch): see commit().
      s.lanes[l].counts.accepted += c->credits[l].used.load(std::memory_order_relaxed);
    }
    for (std::size_t t = 0; t < types_.count; ++t) {
      s.types[t].counts += read(c->type_row(t));
      const std::uint64_t sync = c->sync_ok(t).load(std::memory_order_relaxed);
      for (event_counts* e : {&s.types[t].counts, &s.lanes[types_.lanes[t]].counts}) {
        e->accepted += sync;
        e->dispatched += sync;
      }
    }
    const counter_row& misc = c->misc_row();
    s.batches += misc.v[m_batches].load(std::memory_order_relaxed);
    s.batched_events += misc.v[m_batched_events].load(std::memory_order_relaxed);
    s.lane_allocations += misc.v[m_lane_allocations].load(std::memory_order_relaxed);
    s.parks += misc.v[m_parks].load(std::memory_order_relaxed);
    const std::uint32_t held = c->in_hand.load(std::memory_order_relaxed);
    s.lanes[held & 3].in_flight += held >> 2;
    if (const latency_set* set = c->latency.load(std::memory_order_acquire)) {
      for (unsigned l = 0; l < priority_count; ++l) merge(merged[l], set->lane[l]);
      for (std::size_t t = 0; t < types_.count; ++t)
        merge(merged[priority_count + t], set->type[t]);
    }
  }
  if (!merged.empty()) {
    for (unsigned l = 0; l < priority_count; ++l) s.lanes[l].queue_wait = summarize(merged[l]);
    for (std::size_t t = 0; t < types_.count; ++t)
      s.types[t].handler_time = summarize(merged[priority_count + t]);
  }
  for (unsigned l = 0; l < priority_count; ++l) {
    auto& lm = s.lanes[l];
    lm.lane = static_cast<priority>(l);
    lm.capacity = lanes_[l].admission.capacity();
    lm.depth = occupancy(l);
    lm.in_flight += lm.depth;
    s.in_flight += lm.in_flight;
    s.total += lm.counts;
  }
  return s;
}

}  // namespace tachyon::detail
