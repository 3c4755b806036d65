// tachyon's first benchmarks, each beside its peer in the same binary and the same run:
//
//   publish/<impl>    cost of one publish on one thread (the consumer side is drained with the
//                     clock paused): tachyon vs bare moodycamel enqueue with a producer token.
//   roundtrip/<impl>  one hop and back: the publisher stamps a sequence number, a consumer
//                     pinned to another CPU takes it and stores it to a flag the publisher
//                     spins on. tachyon with a busy_spin worker vs bare moodycamel driven the
//                     way tachyon drives it (producer token, consumer token, bulk dequeue of
//                     up to 64, a spinning consumer). Reported time = one round trip.
//
// Pinning: the benchmark thread on the first CPU this process may use, the consumer on the
// second (none if there is only one). tools/bench prints the table with tachyon / peer ratios.
#include <benchmark/benchmark.h>
#include <sched.h>

#include <vector>

#include <concurrentqueue/concurrentqueue.h>
#include <tachyon/tachyon.hpp>

#include "hops.hpp"

namespace {

using bench::Ping;
using Events = tachyon::registry<Ping>;

using bench::consumer_cpu;
using bench::pin_this_thread;
using bench::producer_cpu;

/// Pins the benchmark thread for the duration of one benchmark, then lets it go.
struct pinned_scope {
  cpu_set_t saved;
  pinned_scope() {
    sched_getaffinity(0, sizeof(saved), &saved);
    pin_this_thread(producer_cpu());
  }
  ~pinned_scope() { pthread_setaffinity_np(pthread_self(), sizeof(saved), &saved); }
};

constexpr std::uint32_t drain_every = 4096;

// ---- publish cost ------------------------------------------------------------------------------

void publish_tachyon(benchmark::State& state) {
  pinned_scope pin;
  tachyon::bus<Events> bus{{.workers = 0,
                            .lane_capacity = drain_every,
                            .overflow = tachyon::overflow::fail,
                            .producers = 1}};
  auto s = bus.subscribe<Ping>([](const Ping& p) { benchmark::DoNotOptimize(p.seq); });
  std::uint64_t seq = 0;
  std::uint32_t queued = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(bus.publish(Ping{++seq}));
    if (++queued == drain_every) [[unlikely]] {
      state.PauseTiming();
      bus.poll();
      queued = 0;
      state.ResumeTiming();
    }
  }
  state.SetItemsProcessed(state.iterations());
}

void publish_moodycamel(benchmark::State& state) {
  pinned_scope pin;
  moodycamel::ConcurrentQueue<Ping> q(drain_every);
  moodycamel::ProducerToken ptok(q);
  moodycamel::ConsumerToken ctok(q);
  std::vector<Ping> buf(64);
  std::uint64_t seq = 0;
  std::uint32_t queued = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(q.try_enqueue(ptok, Ping{++seq}));
    if (++queued == drain_every) [[unlikely]] {
      state.PauseTiming();
      while (q.try_dequeue_bulk(ctok, buf.data(), buf.size()) != 0) {
      }
      queued = 0;
      state.ResumeTiming();
    }
  }
  state.SetItemsProcessed(state.iterations());
}

// ---- one-hop round trip (bench/hops.hpp) --------------------------------------------------

template <class Hop>
void roundtrip(benchmark::State& state) {
  pinned_scope pin;
  Hop hop;
  std::uint64_t seq = 0;
  for (auto _ : state)
    if (!hop(++seq)) state.SkipWithError("the hop's publish was refused");
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

BENCHMARK(publish_tachyon)
    ->Name("publish/tachyon_inline")
    ->Repetitions(5)
    ->ReportAggregatesOnly(true);
BENCHMARK(publish_moodycamel)
    ->Name("publish/moodycamel_tokens")
    ->Repetitions(5)
    ->ReportAggregatesOnly(true);
BENCHMARK(roundtrip<bench::tachyon_hop>)
    ->Name("roundtrip/tachyon_busy_spin")
    ->UseRealTime()
    ->Repetitions(5)
    ->ReportAggregatesOnly(true);
BENCHMARK(roundtrip<bench::moodycamel_hop<>>)
    ->Name("roundtrip/moodycamel_tokens")
    ->UseRealTime()
    ->Repetitions(5)
    ->ReportAggregatesOnly(true);

BENCHMARK_MAIN();
