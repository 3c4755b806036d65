// tachyon_bench: the Google Benchmark suite. Every tachyon benchmark has its peer in the same
// binary and the same run, named <figure>/tachyon... beside <figure>/<peer>[/<args>], which is
// how tools/bench_table.py pairs them:
//
//   publish/<impl>          one publish of an 8-byte event on one thread, manual mode, the lane
//                           drained every 4096 with the clock paused: tachyon (config::timestamps
//                           false), tachyon_ts (timestamps true: one clock read more) vs
//                           moodycamel try_enqueue with a producer token; moodycamel_64B: the
//                           same with a 64-byte element, the size of tachyon's envelope.
//   clock_now/<impl>        one tachyon::clock::now(), the read tachyon_ts adds (its target is
//                           2x the peer + this); std::chrono::steady_clock::now() beside it.
//   publish_batch/<impl>    publish_batch of 64 events a call (items = events; timestamps on, the
//                           default) vs moodycamel enqueue_bulk of 64 with a producer token into
//                           a queue pre-sized to one drain (it never allocates); same drain;
//                           moodycamel_64B: the same with 64-byte elements.
//   throughput_1p1w/<impl>  one producer (this thread) to one consumer pinned to another CPU,
//                           busy-spinning, a 16-byte event (Pair16) on both sides: a bus with one
//                           busy_spin worker, overflow::block, lane_capacity 8192 (twice what an
//                           iteration has in flight, so the producer never waits for room) vs a
//                           moodycamel consumer thread with a consumer token and try_dequeue_bulk
//                           of 64, the producer calling enqueue with a token into a queue
//                           pre-sized to 8192 (blocks are reused once drained, so the run needs
//                           no more; the counter allocs, its mallocs while timed, says so). An
//                           iteration publishes 4096 events and waits until all are counted.
//                           moodycamel_64B: the same peer moving a 64-byte element, the size of
//                           tachyon's envelope (one cache line per event, where 16-byte elements
//                           share a line four to one).
//   throughput/<impl>/P:W   P producers to W consumers (P = W = 1, 2, 4, ... ), 8-byte events,
//                           every idle wait a sched_yield() (the `yield` strategy), the peer
//                           retrying try_enqueue, so that oversubscribed runs still progress;
//                           items = events, summed over producers. Labelled "oversubscribed"
//                           when 2P > usable CPUs.
//   drain_blocked/<impl>    a worker's drain rate (items = events drained) on a full lane of
//                           4096: tachyon, with a producer on the other CPU publishing without
//                           pause under overflow::block, so that it waits on the lane and refills
//                           it as room is freed, vs prefilled: the same lane filled beforehand,
//                           nobody publishing. The worker is this thread calling poll() on a
//                           manual bus (see drain_blocked() for why); counter ran_empty says
//                           whether the producer kept the lane full.
//   idle_scan/<impl>        one scan of four empty lanes: run_once() on a manual bus whose four
//                           types have the four priorities, vs try_dequeue_bulk with consumer
//                           tokens on four empty ConcurrentQueues (each has had a producer).
//   dispatch_<H>/<impl>     synchronous delivery to H = 1 or 8 handlers: bus::dispatch (metrics
//                           are always on) vs a noinline direct call, std::function and
//                           Boost.Signals2. Every handler does the same work, work() below.
//   failed_delivery_retry_scheduled/<impl>
//                           one publish + run_once on a manual bus of an event whose handler
//                           throws: tachyon, with retry max_attempts 2 and a 1-hour
//                           initial_delay (the iteration ends with its retry scheduled in the
//                           timer) vs plain_failure, the same throw with no retry (counted
//                           failed) and no_failure, the same handler returning. The throw and
//                           catch (~1 us) are most of a failing row: tachyon - plain_failure is
//                           the retry's own cost, plain_failure - no_failure about the throw's.
//   breaker_success_path/<impl>/<op>
//                           a subscription with a circuit breaker (failure_threshold 5) whose
//                           handler never fails (tachyon) vs the same without a breaker
//                           (no_breaker): op dispatch, bus::dispatch as dispatch_1; op drain,
//                           poll() of a pre-filled lane of 4096 (counter events_per_iteration;
//                           tools/bench_table.py reports time per event).
//   conflated_publish_flood/<impl>/keys:K
//                           one publish of a 16-byte event keyed round-robin over K keys, manual
//                           mode, the lane drained every 4096 publishes with the clock paused:
//                           tachyon, the type registered with conflate_by (after a key's first
//                           event each publish replaces the waiting one: a box allocated, a CAS,
//                           the old box freed) vs plain_publish, the same type unconflated.
//   conflated_flood_drained/<impl>/keys:K
//                           the same with the drains timed: per published event, the publish
//                           and its share of the handlers (counter delivered_per_event: 1 plain,
//                           K / 4096 conflated).
//
// The one-hop round trip is measured by tachyon_latency (bench/latency.cpp), every trip timed
// and implementations interleaved; Google Benchmark's mean of one is not quoted.
//
// Threads are pinned (bench/pinning.hpp): this thread and producers on the even-numbered usable
// CPUs, consumers on the odd ones (CPU 0 and CPU 1 on a 2-CPU machine).
//
// Repetitions: 5 per benchmark, aggregates only, unless --benchmark_repetitions=N is given
// (tools/bench --quick passes 1 and a shorter --benchmark_min_time).
#include <benchmark/benchmark.h>
#include <sched.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include <concurrentqueue/concurrentqueue.h>
#include <boost/signals2/signal.hpp>
#include <tachyon/tachyon.hpp>

#include "emulation.hpp"
#include "pinning.hpp"

namespace {

using bench::consumer_cpu;
using bench::pin_this_thread;
using bench::pinned_scope;
using bench::producer_cpu;
using bench::usable_cpus;

struct Ping {
  std::uint64_t seq;
};
using Events = tachyon::registry<Ping>;

/// The 1P1W figure's event: 16 bytes on both sides (tachyon stores it inline in its envelope,
/// moodycamel in its block).
struct Pair16 {
  std::uint64_t seq;
  std::uint64_t check;
};
static_assert(sizeof(Pair16) == 16);

/// A peer element the size of tachyon's envelope (one cache line): the `_64B` peers show how
/// much of a gap is the bytes each event moves rather than the work done per event.
struct alignas(64) Line64 {
  std::uint64_t seq;
  std::uint64_t rest[7];
};
static_assert(sizeof(Line64) == 64);

template <class E>
E make_event(std::uint64_t seq) noexcept {
  if constexpr (std::is_same_v<E, Pair16>)
    return E{seq, ~seq};
  else if constexpr (std::is_same_v<E, Line64>)
    return E{seq, {}};
  else
    return E{seq};
}

/// Producer i's CPU and consumer i's CPU: even and odd usable CPUs, wrapping around.
int producer_cpu_of(std::size_t i) {
  const auto& cpus = usable_cpus();
  return cpus.empty() ? -1 : cpus[(2 * i) % cpus.size()];
}
int consumer_cpu_of(std::size_t i) {
  const auto& cpus = usable_cpus();
  return cpus.empty() ? -1 : cpus[(2 * i + 1) % cpus.size()];
}

/// Events counted by consumer threads, one cache line per thread, summed by the benchmark
/// thread. add_one() finds the calling thread's line through a thread_local: the same per-event
/// work for tachyon's handlers and the peers' consumers.
class counter_board {
 public:
  void add_one() noexcept {
    thread_local const counter_board* owner = nullptr;
    thread_local slot* mine = nullptr;
    if (owner != this) [[unlikely]] {
      mine = &slots_[claimed_.fetch_add(1, std::memory_order_relaxed) % slots_.size()];
      owner = this;
    }
    mine->n.store(mine->n.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  std::uint64_t sum() const noexcept {
    const std::size_t used =
        std::min<std::size_t>(claimed_.load(std::memory_order_relaxed), slots_.size());
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < used; ++i) total += slots_[i].n.load(std::memory_order_relaxed);
    return total;
  }

 private:
  struct alignas(64) slot {
    std::atomic<std::uint64_t> n{0};
  };
  std::array<slot, 64> slots_{};
  alignas(64) std::atomic<std::uint32_t> claimed_{0};
};

enum class idle { spin, yield };

inline void wait_a_little(idle how) {
  if (how == idle::yield) sched_yield();
}

/// moodycamel's default traits with its allocations counted (blocks, block indexes, producers),
/// so that a benchmark can say its peer queue did not allocate while timed.
struct counted_traits : moodycamel::ConcurrentQueueDefaultTraits {
  static void* malloc(std::size_t size) {
    count().fetch_add(1, std::memory_order_relaxed);
    return std::malloc(size);
  }
  static void free(void* ptr) { std::free(ptr); }
  static std::uint64_t allocations() { return count().load(std::memory_order_relaxed); }

 private:
  static std::atomic<std::uint64_t>& count() {
    static std::atomic<std::uint64_t> n{0};
    return n;
  }
};

// ---- publish cost ------------------------------------------------------------------------------

constexpr std::uint32_t drain_every = 4096;  // events queued before a paused drain
constexpr std::size_t batch_size = 64;

/// Manual mode, one publisher, a lane that holds one drain's worth: the publish benchmarks'
/// bus, drained with the clock paused. `timestamps` as config::timestamps (its default is on).
tachyon::config drained_by_hand(bool timestamps = true) {
  return {.workers = 0,
          .lane_capacity = drain_every,
          .overflow = tachyon::overflow::fail,
          .producers = 1,
          .timestamps = timestamps};
}

void publish_tachyon(benchmark::State& state, bool timestamps) {
  pinned_scope pin;
  tachyon::bus<Events> bus{drained_by_hand(timestamps)};
  auto s = bus.subscribe<Ping>([](const Ping& p) { benchmark::DoNotOptimize(p.seq); });
  std::uint64_t seq = 0;
  std::uint32_t queued = 0;
  std::uint64_t refused = 0;
  for (auto _ : state) {
    refused += bus.publish(Ping{++seq}) != tachyon::result::ok;
    if (++queued == drain_every) [[unlikely]] {
      state.PauseTiming();
      bus.poll();
      queued = 0;
      state.ResumeTiming();
    }
  }
  if (refused != 0) state.SkipWithError("a publish was refused");
  state.SetItemsProcessed(state.iterations());
}

template <class E>
void publish_moodycamel(benchmark::State& state) {
  pinned_scope pin;
  moodycamel::ConcurrentQueue<E> q(drain_every);
  moodycamel::ProducerToken ptok(q);
  moodycamel::ConsumerToken ctok(q);
  std::vector<E> buf(batch_size);
  std::uint64_t seq = 0;
  std::uint32_t queued = 0;
  std::uint64_t refused = 0;
  for (auto _ : state) {
    refused += !q.try_enqueue(ptok, make_event<E>(++seq));
    if (++queued == drain_every) [[unlikely]] {
      state.PauseTiming();
      while (q.try_dequeue_bulk(ctok, buf.data(), buf.size()) != 0) {
      }
      queued = 0;
      state.ResumeTiming();
    }
  }
  if (refused != 0) state.SkipWithError("a try_enqueue was refused");
  state.SetItemsProcessed(state.iterations());
}

std::vector<Ping> numbered_batch() {
  std::vector<Ping> evs(batch_size);
  for (std::size_t i = 0; i < evs.size(); ++i) evs[i].seq = i;
  return evs;
}

void publish_batch_tachyon(benchmark::State& state) {
  pinned_scope pin;
  tachyon::bus<Events> bus{drained_by_hand()};
  auto s = bus.subscribe<Ping>([](const Ping& p) { benchmark::DoNotOptimize(p.seq); });
  const std::vector<Ping> evs = numbered_batch();
  std::uint32_t queued = 0;
  std::uint64_t refused = 0;
  for (auto _ : state) {
    const auto r = bus.publish_batch(std::span<const Ping>(evs));
    refused += batch_size - r.queued;
    if ((queued += batch_size) == drain_every) [[unlikely]] {
      state.PauseTiming();
      bus.poll();
      queued = 0;
      state.ResumeTiming();
    }
  }
  if (refused != 0) state.SkipWithError("publish_batch refused events");
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch_size));
}

template <class E>
void publish_batch_moodycamel(benchmark::State& state) {
  pinned_scope pin;
  moodycamel::ConcurrentQueue<E> q(drain_every);
  moodycamel::ProducerToken ptok(q);
  moodycamel::ConsumerToken ctok(q);
  std::vector<E> evs;
  for (std::size_t i = 0; i < batch_size; ++i) evs.push_back(make_event<E>(i));
  std::vector<E> buf(batch_size);
  std::uint32_t queued = 0;
  std::uint64_t refused = 0;
  for (auto _ : state) {
    refused += !q.enqueue_bulk(ptok, evs.data(), evs.size());
    if ((queued += batch_size) == drain_every) [[unlikely]] {
      state.PauseTiming();
      while (q.try_dequeue_bulk(ctok, buf.data(), buf.size()) != 0) {
      }
      queued = 0;
      state.ResumeTiming();
    }
  }
  if (refused != 0) state.SkipWithError("enqueue_bulk failed");
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch_size));
}

/// The clock read a publish makes with config::timestamps on, and steady_clock for scale.
void clock_now_tachyon(benchmark::State& state) {
  pinned_scope pin;
  for (auto _ : state) benchmark::DoNotOptimize(tachyon::clock::now());
  state.SetItemsProcessed(state.iterations());
}

void clock_now_steady_clock(benchmark::State& state) {
  pinned_scope pin;
  for (auto _ : state) benchmark::DoNotOptimize(std::chrono::steady_clock::now());
  state.SetItemsProcessed(state.iterations());
}

// ---- producers to consumers --------------------------------------------------------------------

constexpr std::uint64_t per_producer = 4096;  // events each producer publishes an iteration

/// Room for every event of an iteration, twice over: an iteration has at most
/// producers x per_producer events in flight, so a publish never waits for room (tachyon's
/// lane) and an enqueue never needs a block the queue was not built with (moodycamel's).
std::uint32_t lane_bound(std::uint32_t producers) {
  return static_cast<std::uint32_t>(std::max<std::uint64_t>(8192, 2 * producers * per_producer));
}

/// A bus of events E whose handler counts, with `workers` workers pinned to the consumer CPUs.
template <class E>
class tachyon_sink {
 public:
  tachyon_sink(std::uint32_t workers, std::uint32_t producers, idle how)
      : bus_(settings(workers, producers, how)) {
    sub_ = bus_.template subscribe<E>([this](const E&) { counted_.add_one(); });
  }
  std::uint64_t counted() const noexcept { return counted_.sum(); }
  /// Enqueues that had to grow a lane so far (metrics_snapshot::lane_allocations).
  std::uint64_t allocations() const { return bus_.metrics().lane_allocations; }

  /// Producer side. One per producing thread.
  class producer {
   public:
    explicit producer(tachyon_sink& s) : bus_(s.bus_) {}
    bool publish(std::uint64_t seq) {
      return bus_.publish(make_event<E>(seq)) == tachyon::result::ok;
    }

   private:
    tachyon::bus<tachyon::registry<E>>& bus_;
  };

 private:
  static tachyon::config settings(std::uint32_t workers, std::uint32_t producers, idle how) {
    tachyon::config cfg{.workers = workers,
                        .lane_capacity = lane_bound(producers),
                        .batch = 64,
                        .wait = how == idle::spin ? tachyon::wait_strategy::busy_spin
                                                  : tachyon::wait_strategy::yield,
                        .overflow = tachyon::overflow::block,
                        .producers = producers};
    // From 16:16 up the reservation passes the default max_reserved_bytes (1 GiB): meant here.
    cfg.max_reserved_bytes = std::size_t{1} << 40;
    for (std::uint32_t i = 0; i < workers; ++i)
      if (consumer_cpu_of(i) >= 0) cfg.cpus.push_back(consumer_cpu_of(i));
    return cfg;
  }

  counter_board counted_;
  tachyon::bus<tachyon::registry<E>> bus_;
  tachyon::subscription sub_;  // last: unsubscribes before the bus stops
};

/// How the moodycamel producer puts an event in: `retry` calls try_enqueue until it succeeds
/// (a bounded queue that pushes back like overflow::block), `enqueue` calls enqueue, which
/// allocates a block when the queue has none free (never in a timed round: see lane_bound).
enum class push { retry, enqueue };

/// The peer: one ConcurrentQueue of E, pre-sized to lane_bound(producers), `consumers` threads
/// pinned to the consumer CPUs, each with a consumer token, dequeuing up to 64 at a time and
/// counting each element.
template <class E, push How>
class moodycamel_sink {
 public:
  moodycamel_sink(std::uint32_t consumers, std::uint32_t producers, idle how)
      : queue_(lane_bound(producers)), how_(how) {
    for (std::uint32_t i = 0; i < consumers; ++i)
      threads_.emplace_back([this, i] { consume(consumer_cpu_of(i)); });
  }
  ~moodycamel_sink() {
    done_.store(true, std::memory_order_relaxed);
    for (auto& t : threads_) t.join();
  }
  moodycamel_sink(const moodycamel_sink&) = delete;
  moodycamel_sink& operator=(const moodycamel_sink&) = delete;

  std::uint64_t counted() const noexcept { return counted_.sum(); }
  /// Allocations by any counted queue so far (only this one runs during the benchmark).
  std::uint64_t allocations() const { return counted_traits::allocations(); }

  class producer {
   public:
    explicit producer(moodycamel_sink& s) : sink_(s), token_(s.queue_) {}
    bool publish(std::uint64_t seq) {
      if constexpr (How == push::enqueue) {
        return sink_.queue_.enqueue(token_, make_event<E>(seq));
      } else {
        while (!sink_.queue_.try_enqueue(token_, make_event<E>(seq))) wait_a_little(sink_.how_);
        return true;
      }
    }

   private:
    moodycamel_sink& sink_;
    moodycamel::ProducerToken token_;
  };

 private:
  void consume(int cpu) {
    pin_this_thread(cpu);
    moodycamel::ConsumerToken ctok(queue_);
    E buf[64];
    while (!done_.load(std::memory_order_relaxed)) {
      const std::size_t n = queue_.try_dequeue_bulk(ctok, buf, 64);
      for (std::size_t i = 0; i < n; ++i) counted_.add_one();
      if (n == 0) wait_a_little(how_);
    }
  }

  counter_board counted_;
  moodycamel::ConcurrentQueue<E, counted_traits> queue_;
  idle how_;
  alignas(64) std::atomic<bool> done_{false};
  std::vector<std::thread> threads_;  // last: start once everything they read exists
};

/// P producers (this thread is producer 0) to W consumers of Sink. Each iteration every producer
/// publishes per_producer events; the iteration ends when the consumers have counted them all.
/// One untimed round first, so that no thread's first-call set-up lands in the timed ones.
template <class Sink>
void throughput(benchmark::State& state, std::uint32_t producers, std::uint32_t consumers,
                idle how) {
  pinned_scope pin(producer_cpu_of(0));
  Sink sink(consumers, producers, how);
  std::atomic<std::uint64_t> generation{0};
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> refused{0};

  auto publish_share = [&](typename Sink::producer& p, std::uint64_t base) {
    std::uint64_t bad = 0;
    for (std::uint64_t i = 0; i < per_producer; ++i) bad += !p.publish(base + i);
    if (bad != 0) refused.fetch_add(bad, std::memory_order_relaxed);
  };

  std::vector<std::thread> others;
  for (std::uint32_t i = 1; i < producers; ++i)
    others.emplace_back([&, i] {
      pin_this_thread(producer_cpu_of(i));
      typename Sink::producer p(sink);
      std::uint64_t seen = 0;
      for (;;) {
        generation.wait(seen, std::memory_order_acquire);
        seen = generation.load(std::memory_order_acquire);
        if (stop.load(std::memory_order_acquire)) return;
        publish_share(p, seen * per_producer);
      }
    });

  typename Sink::producer mine(sink);
  std::uint64_t expected = 0;
  auto one_round = [&] {
    const std::uint64_t g = generation.fetch_add(1, std::memory_order_release) + 1;
    generation.notify_all();
    publish_share(mine, g * per_producer);
    expected += producers * per_producer;
    while (sink.counted() < expected) wait_a_little(how);
  };
  one_round();  // warm-up, untimed: every thread's first publish and dequeue, lane blocks
  const std::uint64_t warm = expected;
  const std::uint64_t allocations_before = sink.allocations();
  for (auto _ : state) one_round();
  // Allocations while timed: tachyon's lane growths, or the peer queue's mallocs. 0 expected.
  state.counters["allocs"] = static_cast<double>(sink.allocations() - allocations_before);

  stop.store(true, std::memory_order_release);
  generation.fetch_add(1, std::memory_order_release);
  generation.notify_all();
  for (auto& t : others) t.join();

  if (refused.load() != 0) state.SkipWithError("a publish was refused");
  state.SetItemsProcessed(static_cast<std::int64_t>(expected - warm));
  if (2 * producers > usable_cpus().size())
    state.SetLabel("oversubscribed: " + std::to_string(producers + consumers) + " threads on " +
                   std::to_string(usable_cpus().size()) + " CPUs");
}

// ---- draining a full lane ----------------------------------------------------------------

// The lane's capacity, and the events an iteration drains.
constexpr std::uint32_t drain_lane = 4096;
// Multiply-adds per event in the drain_blocked handler (about 100 ns): slower than a publish, so
// the blocked producer keeps the lane full. work:0, a handler that does nothing, is shown too;
// there the worker outruns the producer and the lane runs empty.
constexpr unsigned drain_work = 64;

/// A handler's fixed work: `n` dependent multiply-adds (about 4 cycles each), the same
/// instructions whichever variant runs it.
inline void handler_work(std::uint64_t seq, unsigned n) {
  std::uint64_t x = seq;
  for (unsigned i = 0; i < n; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    benchmark::DoNotOptimize(x);
  }
}

/// A worker draining a full lane, with a producer blocked on it (`producer_blocks`) or with a
/// lane filled beforehand and nobody publishing. The worker is this thread, pinned to the
/// consumer CPU, calling poll() on a manual bus (workers = 0): the same drain loop a busy_spin
/// worker runs, with no worker thread to stop and start. The producer is a thread pinned to the
/// producer CPU.
///   producer_blocks: it publishes without pause under overflow::block, so it waits on the full
///     lane and takes each batch's room as the worker frees it. An iteration times poll() until
///     drain_lane events have run.
///   prefilled: per iteration, with the clock paused, it fills the lane to capacity and stops;
///     then the timed part drains those drain_lane events.
/// Items = events drained. The counter ran_empty is how often, per iteration, poll() found the
/// lane empty: above 0 in the blocking variant the producer did not keep the lane full, and the
/// figure is then not the worker's alone. The producer is either slower than the worker (work:0)
/// or was descheduled: on the loaded 2-vCPU development VM (load average 7-9) a timing probe
/// in the producer saw 94 publishes in 0.26 s take 1.7 ms each on average (157 ms in all), the
/// lane running empty meanwhile; outside them it published ~16 M/s, about the pre-filled drain
/// rate (16.5 M/s). Every event's handler runs handler_work(work).
void drain_blocked(benchmark::State& state, bool producer_blocks, unsigned work) {
  pinned_scope pin(consumer_cpu());
  // block_timeout: manual mode requires one; a publish that waits this long is a failure.
  tachyon::bus<Events> bus{{.workers = 0,
                            .lane_capacity = drain_lane,
                            .batch = 64,
                            .overflow = tachyon::overflow::block,
                            .block_timeout = std::chrono::seconds(1),
                            .producers = 1}};
  auto sub = bus.subscribe<Ping>([work](const Ping& p) { handler_work(p.seq, work); });

  std::atomic<bool> stop{false};
  std::atomic<bool> producer_done{false};
  std::atomic<std::uint64_t> fills_asked{0};
  std::atomic<std::uint64_t> fills_done{0};
  std::atomic<std::uint64_t> refused{0};
  std::thread producer([&] {
    pin_this_thread(producer_cpu());
    std::uint64_t seq = 0;
    std::uint64_t bad = 0;
    if (producer_blocks) {
      while (!stop.load(std::memory_order_relaxed))
        bad += bus.publish(Ping{++seq}) != tachyon::result::ok;
    } else {
      for (std::uint64_t done = 0;;) {
        fills_asked.wait(done, std::memory_order_acquire);
        if (stop.load(std::memory_order_acquire)) break;
        ++done;
        for (std::uint32_t i = 0; i < drain_lane; ++i)
          bad += bus.publish(Ping{++seq}) != tachyon::result::ok;
        fills_done.store(done, std::memory_order_release);
        fills_done.notify_one();
      }
    }
    refused.store(bad, std::memory_order_relaxed);
    producer_done.store(true, std::memory_order_release);
  });

  std::uint64_t ran_empty = 0;
  auto drain = [&](std::size_t n) {
    for (std::size_t got = 0; got < n;) {
      const std::size_t k = bus.poll(n - got);
      got += k;
      if (got < n) ++ran_empty;
    }
  };
  std::uint64_t fills = 0;
  auto fill = [&] {
    fills_asked.store(++fills, std::memory_order_release);
    fills_asked.notify_one();
    fills_done.wait(fills - 1, std::memory_order_acquire);
  };

  // Warm-up, untimed: both threads' first calls into the bus, the lane's blocks.
  if (!producer_blocks) fill();
  drain(drain_lane);
  ran_empty = 0;
  for (auto _ : state) {
    if (!producer_blocks) {
      state.PauseTiming();
      fill();
      state.ResumeTiming();
    }
    drain(drain_lane);
  }

  stop.store(true, std::memory_order_release);
  fills_asked.fetch_add(1, std::memory_order_release);
  fills_asked.notify_one();
  while (!producer_done.load(std::memory_order_acquire)) bus.poll();  // unblocks a waiting publish
  producer.join();
  bus.poll();

  if (refused.load() != 0) state.SkipWithError("a publish was refused");
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(drain_lane));
  state.counters["ran_empty"] =
      benchmark::Counter(static_cast<double>(ran_empty), benchmark::Counter::kAvgIterations);
  if (producer_blocks && ran_empty != 0)
    state.SetLabel("lane ran empty " +
                   std::to_string(ran_empty / std::max<std::uint64_t>(state.iterations(), 1)) +
                   "x an iteration: the producer did not keep it full");
}

// ---- idle scan -----------------------------------------------------------------------------

struct Crit {
  std::uint64_t v;
};
struct High {
  std::uint64_t v;
};
struct Norm {
  std::uint64_t v;
};
struct Low {
  std::uint64_t v;
};
using FourLanes = tachyon::registry<tachyon::event<Crit, tachyon::priority::critical>,
                                    tachyon::event<High, tachyon::priority::high>,
                                    tachyon::event<Norm, tachyon::priority::normal>,
                                    tachyon::event<Low, tachyon::priority::low>>;

void idle_scan_tachyon(benchmark::State& state) {
  pinned_scope pin;
  tachyon::bus<FourLanes> bus{
      {.workers = 0, .lane_capacity = 1024, .overflow = tachyon::overflow::fail, .producers = 1}};
  // One event through each lane first: every lane has had a producer, as in a running system.
  bool ok =
      bus.publish(Crit{1}) == tachyon::result::ok && bus.publish(High{1}) == tachyon::result::ok &&
      bus.publish(Norm{1}) == tachyon::result::ok && bus.publish(Low{1}) == tachyon::result::ok;
  ok = ok && bus.poll() == 4;
  std::size_t ran = 0;
  for (auto _ : state) ran += bus.run_once();
  if (!ok || ran != 0) state.SkipWithError("the lanes were not empty");
  state.SetItemsProcessed(state.iterations());
}

void idle_scan_moodycamel(benchmark::State& state) {
  pinned_scope pin;
  struct lane {
    moodycamel::ConcurrentQueue<Ping> q{1024};
    moodycamel::ProducerToken ptok{q};
    moodycamel::ConsumerToken ctok{q};
  };
  auto lanes = std::make_unique<std::array<lane, 4>>();
  Ping buf[64];
  bool ok = true;
  for (auto& l : *lanes)
    ok = ok && l.q.try_enqueue(l.ptok, Ping{1}) && l.q.try_dequeue_bulk(l.ctok, buf, 64) == 1;
  std::size_t ran = 0;
  for (auto _ : state)
    for (auto& l : *lanes) ran += l.q.try_dequeue_bulk(l.ctok, buf, 64);
  if (!ok || ran != 0) state.SkipWithError("the queues were not empty");
  state.SetItemsProcessed(state.iterations());
}

// ---- synchronous dispatch ------------------------------------------------------------------

/// Every handler's work, whatever calls it.
inline void work(const Ping& p, std::uint64_t& sink) {
  sink += p.seq;
  benchmark::DoNotOptimize(sink);
}
[[gnu::noinline]] void direct_handler(const Ping& p, std::uint64_t& sink) { work(p, sink); }

void dispatch_tachyon(benchmark::State& state, int handlers) {
  pinned_scope pin;
  tachyon::bus<Events> bus{{.workers = 0, .overflow = tachyon::overflow::fail, .producers = 1}};
  std::uint64_t sink = 0;
  std::vector<tachyon::subscription> subs;
  for (int h = 0; h < handlers; ++h)
    subs.push_back(bus.subscribe<Ping>([&sink](const Ping& p) { work(p, sink); }));
  std::uint64_t seq = 0;
  for (auto _ : state) bus.dispatch(Ping{++seq});
  state.SetItemsProcessed(state.iterations());
  subs.clear();
}

void dispatch_direct(benchmark::State& state, int handlers) {
  std::uint64_t sink = 0;
  std::uint64_t seq = 0;
  for (auto _ : state) {
    const Ping p{++seq};
    for (int h = 0; h < handlers; ++h) direct_handler(p, sink);
  }
  state.SetItemsProcessed(state.iterations());
}

void dispatch_std_function(benchmark::State& state, int handlers) {
  std::uint64_t sink = 0;
  std::vector<std::function<void(const Ping&)>> fns;
  for (int h = 0; h < handlers; ++h) fns.emplace_back([&sink](const Ping& p) { work(p, sink); });
  benchmark::DoNotOptimize(fns.data());
  std::uint64_t seq = 0;
  for (auto _ : state) {
    const Ping p{++seq};
    for (const auto& f : fns) f(p);
  }
  state.SetItemsProcessed(state.iterations());
}

void dispatch_signals2(benchmark::State& state, int handlers) {
  std::uint64_t sink = 0;
  boost::signals2::signal<void(const Ping&)> sig;
  for (int h = 0; h < handlers; ++h) sig.connect([&sink](const Ping& p) { work(p, sink); });
  std::uint64_t seq = 0;
  for (auto _ : state) sig(Ping{++seq});
  state.SetItemsProcessed(state.iterations());
}

// ---- failure handling ------------------------------------------------------------------------

/// What the failing handlers throw: no message to allocate, so a throw costs only the C++
/// runtime's own work (allocating the exception, unwinding, the catch): about 1 us on the
/// development VM, which dwarfs the rest of a failed delivery.
struct bench_failure : std::exception {
  const char* what() const noexcept override { return "tachyon_bench: handler failure"; }
};

enum class on_failure {
  retry,  ///< the handler throws; retry max_attempts 2, initial_delay 1 hour: a retry is scheduled
  plain,  ///< the handler throws; no retry, no breaker, no dead letters: counted failed
  none,   ///< the handler returns: the same publish + run_once with nothing failing
};

/// A manual bus with one subscription of Ping, built and torn down off the clock.
class failure_rig {
 public:
  explicit failure_rig(on_failure kind)
      : bus_(std::make_unique<tachyon::bus<Events>>(
            tachyon::config{.workers = 0,
                            .lane_capacity = 1024,
                            .overflow = tachyon::overflow::fail,
                            .producers = 1})) {
    tachyon::subscribe_options<Ping> opts;
    if (kind == on_failure::retry)
      opts.retry = {.max_attempts = 2,
                    .initial_delay = std::chrono::hours(1),
                    .max_delay = std::chrono::hours(1)};
    const bool throws = kind != on_failure::none;
    sub_ = bus_->subscribe<Ping>(
        [throws](const Ping& p) {
          benchmark::DoNotOptimize(p.seq);
          if (throws) throw bench_failure{};
        },
        std::move(opts));
  }
  ~failure_rig() {
    // Unsubscribed first, the pending retries find their subscription gone at the bus's
    // stop(drain) and fail without running (no 4096 throws to wait for).
    sub_.unsubscribe();
    bus_.reset();
  }
  failure_rig(const failure_rig&) = delete;
  failure_rig& operator=(const failure_rig&) = delete;
  tachyon::bus<Events>& bus() noexcept { return *bus_; }

 private:
  std::unique_ptr<tachyon::bus<Events>> bus_;
  tachyon::subscription sub_;
};

/// Events a failure_rig takes before it is replaced (off the clock): with retries, each waits
/// in the bus's timer (an hour away) with its parked copy and delivery, and a timer that grows
/// without bound would not be the steady state measured (config::timer_capacity is 65536).
constexpr std::uint32_t failures_per_rig = 4096;

/// One publish + run_once of an event whose only handler throws (or not: on_failure::none), on
/// a manual bus; the iteration ends with the event failed for good (plain), its retry scheduled
/// (retry: a parked copy of the event, a delivery, a push on the timer's heap, and while any
/// retry waits, run_once's look at the timer, a clock read), or dispatched (none). The throw is
/// in both failing variants, so retry - plain is what scheduling a retry costs, and plain - none
/// roughly what the throw itself costs.
void failed_delivery(benchmark::State& state, on_failure kind) {
  pinned_scope pin;
  std::unique_ptr<failure_rig> rig;
  std::uint64_t seq = 0, refused = 0, ran = 0, retried = 0;
  std::uint32_t on_this_rig = failures_per_rig;
  auto replace_rig = [&] {
    if (rig) retried += rig->bus().metrics().total.retried;
    rig.reset();
    rig = std::make_unique<failure_rig>(kind);
    // Warm-up: this thread's context in the new bus, its lane producer, its first throw.
    refused += rig->bus().publish(Ping{++seq}) != tachyon::result::ok;
    ran += rig->bus().run_once();
    on_this_rig = 0;
  };
  for (auto _ : state) {
    if (on_this_rig == failures_per_rig) [[unlikely]] {
      state.PauseTiming();
      replace_rig();
      state.ResumeTiming();
    }
    tachyon::bus<Events>& bus = rig->bus();
    refused += bus.publish(Ping{++seq}) != tachyon::result::ok;
    ran += bus.run_once();
    ++on_this_rig;
  }
  if (rig) retried += rig->bus().metrics().total.retried;
  rig.reset();  // the loop is over: off the clock
  if (refused != 0 || ran != seq)
    state.SkipWithError("a publish was refused or did not run");
  else if (kind == on_failure::retry && retried != seq)
    state.SkipWithError("not every failed delivery had its retry scheduled");
  if (kind != on_failure::none) state.SetLabel("incl. one throw + catch, ~1 us");
  state.SetItemsProcessed(state.iterations());
}

/// A subscription with a circuit breaker (failure_threshold 5) whose handler never fails, vs
/// the same without one: the breaker's success path is one relaxed load of its word before the
/// call and one after (a closed breaker with no failure streak writes nothing).
tachyon::subscribe_options<Ping> breaker_options(bool breaker) {
  tachyon::subscribe_options<Ping> opts;
  if (breaker) opts.breaker.failure_threshold = 5;
  return opts;
}

/// breaker_success_path/<impl>/dispatch: bus::dispatch to that one handler, as dispatch_1.
void breaker_dispatch(benchmark::State& state, bool breaker) {
  pinned_scope pin;
  tachyon::bus<Events> bus{{.workers = 0, .overflow = tachyon::overflow::fail, .producers = 1}};
  std::uint64_t sink = 0;
  auto s = bus.subscribe<Ping>([&sink](const Ping& p) { work(p, sink); }, breaker_options(breaker));
  std::uint64_t seq = 0;
  for (auto _ : state) bus.dispatch(Ping{++seq});
  state.SetItemsProcessed(state.iterations());
  state.counters["events_per_iteration"] = 1;
}

/// breaker_success_path/<impl>/drain: poll() draining a lane of drain_lane events through that
/// one handler (batches of 64); the lane is filled off the clock before each iteration.
void breaker_drain(benchmark::State& state, bool breaker) {
  pinned_scope pin;
  tachyon::bus<Events> bus{{.workers = 0,
                            .lane_capacity = drain_lane,
                            .batch = 64,
                            .overflow = tachyon::overflow::fail,
                            .producers = 1}};
  std::uint64_t sink = 0;
  auto s = bus.subscribe<Ping>([&sink](const Ping& p) { work(p, sink); }, breaker_options(breaker));
  std::uint64_t seq = 0, refused = 0, ran = 0;
  auto fill = [&] {
    for (std::uint32_t i = 0; i < drain_lane; ++i)
      refused += bus.publish(Ping{++seq}) != tachyon::result::ok;
  };
  fill();  // warm-up, untimed
  ran += bus.poll();
  for (auto _ : state) {
    state.PauseTiming();
    fill();
    state.ResumeTiming();
    ran += bus.poll();
  }
  if (refused != 0 || ran != seq) state.SkipWithError("a publish was refused or did not run");
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(drain_lane));
  state.counters["events_per_iteration"] = drain_lane;
}

// ---- conflation
// ----------------------------------------------------------------------------------

/// A price level keyed by instrument: 16 bytes, stored inline by a plain bus.
struct Level {
  std::uint64_t key;
  std::uint64_t value;
};
/// The same event, conflated by key (conflate_by) or not.
using ConflatedLevels = tachyon::registry<
    tachyon::event<Level, tachyon::priority::normal, tachyon::conflate_by<&Level::key, 64>>>;
using PlainLevels = tachyon::registry<Level>;

constexpr std::uint32_t flood_drain_every = 4096;  // publishes between drains

/// conflated_publish_flood and conflated_flood_drained: one thread publishes Level events over
/// `keys` keys round-robin into a manual bus, and drains it every flood_drain_every publishes:
/// with the clock paused (`timed_drain` false: the publish alone) or running (true: publish and
/// handlers, per published event). items = events published; counter delivered_per_event =
/// handler runs / events published (1 for plain; keys / 4096 for a conflating bus).
template <class Registry>
void conflated_flood(benchmark::State& state, std::uint64_t keys, bool timed_drain) {
  pinned_scope pin;
  tachyon::bus<Registry> bus{{.workers = 0,
                              .lane_capacity = flood_drain_every,
                              .overflow = tachyon::overflow::fail,
                              .producers = 1}};
  std::uint64_t sink = 0, ran = 0;
  auto s = bus.template subscribe<Level>([&](const Level& l) {
    sink += l.value;
    ++ran;
    benchmark::DoNotOptimize(sink);
  });
  std::uint64_t seq = 0, refused = 0;
  std::uint32_t queued = 0;
  for (auto _ : state) {
    ++seq;
    refused += bus.publish(Level{seq % keys, seq}) != tachyon::result::ok;
    if (++queued == flood_drain_every) [[unlikely]] {
      if (!timed_drain) state.PauseTiming();
      bus.poll();
      queued = 0;
      if (!timed_drain) state.ResumeTiming();
    }
  }
  bus.poll();
  if (refused != 0) state.SkipWithError("a publish was refused");
  state.SetItemsProcessed(state.iterations());
  state.counters["delivered_per_event"] =
      static_cast<double>(ran) / static_cast<double>(std::max<std::uint64_t>(seq, 1));
}

// ---- keyed events
// ------------------------------------------------------------------------------

/// publish/tachyon_keyed: publish/tachyon_ts (timestamps on) with publish_options::key, the key
/// cycling over 64 keys: what ordering by key costs a publish.
void publish_keyed_tachyon(benchmark::State& state) {
  pinned_scope pin;
  tachyon::bus<Events> bus{drained_by_hand()};
  auto s = bus.subscribe<Ping>([](const Ping& p) { benchmark::DoNotOptimize(p.seq); });
  std::uint64_t seq = 0;
  std::uint32_t queued = 0;
  std::uint64_t refused = 0;
  for (auto _ : state) {
    ++seq;
    refused += bus.publish(Ping{seq}, tachyon::publish_options{.key = 1 + (seq & 63)}) !=
               tachyon::result::ok;
    if (++queued == drain_every) [[unlikely]] {
      state.PauseTiming();
      bus.poll();
      queued = 0;
      state.ResumeTiming();
    }
  }
  if (refused != 0) state.SkipWithError("a publish was refused");
  state.SetItemsProcessed(state.iterations());
}

/// keyed_drain/<impl>: poll() draining drain_lane events through one handler, the lane filled
/// off the clock before each iteration, under `keys` keys (0: unkeyed). With 64 keys every
/// strand is backed up at once (the worst case: turns of batch / 8); with one, a single strand
/// runs whole batches.
void keyed_drain(benchmark::State& state, std::uint64_t keys) {
  pinned_scope pin;
  tachyon::bus<Events> bus{{.workers = 0,
                            .lane_capacity = drain_lane,
                            .batch = 64,
                            .overflow = tachyon::overflow::fail,
                            .producers = 1}};
  std::uint64_t sink = 0, ran = 0;
  auto s = bus.subscribe<Ping>([&](const Ping& p) {
    work(p, sink);
    ++ran;
  });
  std::uint64_t seq = 0, refused = 0;
  auto fill = [&] {
    for (std::uint32_t i = 0; i < drain_lane; ++i) {
      ++seq;
      const tachyon::publish_options opts{.key = keys == 0 ? 0 : 1 + seq % keys};
      refused += bus.publish(Ping{seq}, opts) != tachyon::result::ok;
    }
  };
  fill();  // warm-up, untimed: makes the strands and this thread's nodes
  bus.poll();
  for (auto _ : state) {
    state.PauseTiming();
    fill();
    state.ResumeTiming();
    bus.poll();
  }
  if (refused != 0 || ran != seq) state.SkipWithError("a publish was refused or did not run");
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(drain_lane));
  state.counters["events_per_iteration"] = drain_lane;
}

// ---- registration --------------------------------------------------------------------------

/// Adds the suite's common settings: `repetitions` (0: whatever --benchmark_repetitions says),
/// aggregates only.
benchmark::internal::Benchmark* common(benchmark::internal::Benchmark* b, int repetitions) {
  if (repetitions > 0) b->Repetitions(repetitions);
  return b->ReportAggregatesOnly(true);
}

void register_all(int reps) {
  using benchmark::RegisterBenchmark;
  common(RegisterBenchmark("publish/tachyon", publish_tachyon, false), reps);
  common(RegisterBenchmark("publish/tachyon_ts", publish_tachyon, true), reps);
  common(RegisterBenchmark("publish/moodycamel_tokens", publish_moodycamel<Ping>), reps);
  common(RegisterBenchmark("publish/moodycamel_64B", publish_moodycamel<Line64>), reps);
  common(RegisterBenchmark("publish/tachyon_keyed", publish_keyed_tachyon), reps);
  common(RegisterBenchmark("clock_now/tachyon", clock_now_tachyon), reps);
  common(RegisterBenchmark("clock_now/steady_clock", clock_now_steady_clock), reps);
  common(RegisterBenchmark("publish_batch/tachyon", publish_batch_tachyon), reps);
  common(RegisterBenchmark("publish_batch/moodycamel_bulk", publish_batch_moodycamel<Ping>), reps);
  common(RegisterBenchmark("publish_batch/moodycamel_64B", publish_batch_moodycamel<Line64>), reps);

  common(RegisterBenchmark("throughput_1p1w/tachyon", throughput<tachyon_sink<Pair16>>, 1u, 1u,
                           idle::spin),
         reps)
      ->UseRealTime();
  common(RegisterBenchmark("throughput_1p1w/moodycamel_tokens",
                           throughput<moodycamel_sink<Pair16, push::enqueue>>, 1u, 1u, idle::spin),
         reps)
      ->UseRealTime();
  common(RegisterBenchmark("throughput_1p1w/moodycamel_64B",
                           throughput<moodycamel_sink<Line64, push::enqueue>>, 1u, 1u, idle::spin),
         reps)
      ->UseRealTime();

  for (unsigned work : {drain_work, 0u}) {
    const std::string args = "/work:" + std::to_string(work);
    common(RegisterBenchmark(("drain_blocked/tachyon" + args).c_str(), drain_blocked, true, work),
           reps)
        ->UseRealTime();
    common(
        RegisterBenchmark(("drain_blocked/prefilled" + args).c_str(), drain_blocked, false, work),
        reps)
        ->UseRealTime();
  }

  // P = W = 1, 2, 4, then doubling while P <= the usable CPUs.
  const auto cpus = static_cast<std::uint32_t>(std::max<std::size_t>(usable_cpus().size(), 1));
  for (std::uint32_t p = 1; p <= 4 || p <= cpus; p *= 2) {
    const std::string args = std::to_string(p) + ":" + std::to_string(p);
    common(RegisterBenchmark(("throughput/tachyon/" + args).c_str(), throughput<tachyon_sink<Ping>>,
                             p, p, idle::yield),
           reps)
        ->UseRealTime();
    common(RegisterBenchmark(("throughput/moodycamel/" + args).c_str(),
                             throughput<moodycamel_sink<Ping, push::retry>>, p, p, idle::yield),
           reps)
        ->UseRealTime();
  }

  common(RegisterBenchmark("idle_scan/tachyon", idle_scan_tachyon), reps);
  common(RegisterBenchmark("idle_scan/moodycamel_4x", idle_scan_moodycamel), reps);

  for (int h : {1, 8}) {
    const std::string figure = "dispatch_" + std::to_string(h) + "/";
    common(RegisterBenchmark((figure + "tachyon").c_str(), dispatch_tachyon, h), reps);
    common(RegisterBenchmark((figure + "direct_call").c_str(), dispatch_direct, h), reps);
    common(RegisterBenchmark((figure + "std_function").c_str(), dispatch_std_function, h), reps);
    common(RegisterBenchmark((figure + "boost_signals2").c_str(), dispatch_signals2, h), reps);
  }

  common(RegisterBenchmark("failed_delivery_retry_scheduled/tachyon", failed_delivery,
                           on_failure::retry),
         reps);
  common(RegisterBenchmark("failed_delivery_retry_scheduled/plain_failure", failed_delivery,
                           on_failure::plain),
         reps);
  common(RegisterBenchmark("failed_delivery_retry_scheduled/no_failure", failed_delivery,
                           on_failure::none),
         reps);

  for (const std::uint64_t keys : {1u, 64u}) {
    const std::string args = "/keys:" + std::to_string(keys);
    for (const bool timed_drain : {false, true}) {
      const std::string figure =
          timed_drain ? "conflated_flood_drained/" : "conflated_publish_flood/";
      common(RegisterBenchmark((figure + "tachyon" + args).c_str(),
                               conflated_flood<ConflatedLevels>, keys, timed_drain),
             reps);
      common(RegisterBenchmark((figure + "plain_publish" + args).c_str(),
                               conflated_flood<PlainLevels>, keys, timed_drain),
             reps);
    }
  }
  common(RegisterBenchmark("keyed_drain/tachyon_64_keys", keyed_drain, std::uint64_t{64}), reps);
  common(RegisterBenchmark("keyed_drain/tachyon_1_key", keyed_drain, std::uint64_t{1}), reps);
  common(RegisterBenchmark("keyed_drain/unkeyed", keyed_drain, std::uint64_t{0}), reps);

  for (const bool drain : {false, true}) {
    const std::string args = drain ? "/drain" : "/dispatch";
    const auto fn = drain ? breaker_drain : breaker_dispatch;
    common(RegisterBenchmark(("breaker_success_path/tachyon" + args).c_str(), fn, true), reps);
    common(RegisterBenchmark(("breaker_success_path/no_breaker" + args).c_str(), fn, false), reps);
  }
}

}  // namespace

int main(int argc, char** argv) {
  bench::warn_if_emulated("tachyon_bench");
  bench::mark_context(benchmark::AddCustomContext);
  constexpr int default_repetitions = 5;
  bool repetitions_given = false;
  for (int i = 1; i < argc; ++i)
    repetitions_given |= std::string_view(argv[i]).starts_with("--benchmark_repetitions");
  (void)usable_cpus();  // read before any benchmark pins this thread
  register_all(repetitions_given ? 0 : default_repetitions);

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
