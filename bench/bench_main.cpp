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
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <thread>
#include <vector>

#include <concurrentqueue/concurrentqueue.h>
#include <tachyon/tachyon.hpp>

#include "pinning.hpp"

namespace {

struct Ping {
  std::uint64_t seq;
};
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

// ---- one-hop round trip ------------------------------------------------------------------------

void roundtrip_tachyon(benchmark::State& state) {
  pinned_scope pin;
  tachyon::config cfg{.workers = 1,
                      .lane_capacity = 1024,
                      .batch = 64,
                      .wait = tachyon::wait_strategy::busy_spin,
                      .overflow = tachyon::overflow::block,
                      .producers = 1};
  if (consumer_cpu() >= 0) cfg.cpus = {consumer_cpu()};
  tachyon::bus<Events> bus{cfg};
  alignas(64) std::atomic<std::uint64_t> flag{0};
  auto s =
      bus.subscribe<Ping>([&](const Ping& p) { flag.store(p.seq, std::memory_order_release); });
  std::uint64_t seq = 0;
  for (auto _ : state) {
    ++seq;
    if (bus.publish(Ping{seq}) != tachyon::result::ok) state.SkipWithError("publish refused");
    while (flag.load(std::memory_order_acquire) != seq) {
    }
  }
  state.SetItemsProcessed(state.iterations());
  bus.stop();
}

void roundtrip_moodycamel(benchmark::State& state) {
  pinned_scope pin;
  moodycamel::ConcurrentQueue<Ping> q(1024);
  alignas(64) std::atomic<std::uint64_t> flag{0};
  alignas(64) std::atomic<bool> done{false};
  std::thread consumer([&] {
    pin_this_thread(consumer_cpu());
    moodycamel::ConsumerToken ctok(q);
    Ping buf[64];
    while (!done.load(std::memory_order_relaxed)) {
      const std::size_t n = q.try_dequeue_bulk(ctok, buf, 64);
      for (std::size_t i = 0; i < n; ++i) flag.store(buf[i].seq, std::memory_order_release);
    }
  });
  moodycamel::ProducerToken ptok(q);
  std::uint64_t seq = 0;
  for (auto _ : state) {
    ++seq;
    if (!q.enqueue(ptok, Ping{seq})) state.SkipWithError("enqueue failed");
    while (flag.load(std::memory_order_acquire) != seq) {
    }
  }
  state.SetItemsProcessed(state.iterations());
  done = true;
  consumer.join();
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
BENCHMARK(roundtrip_tachyon)
    ->Name("roundtrip/tachyon_busy_spin")
    ->UseRealTime()
    ->Repetitions(5)
    ->ReportAggregatesOnly(true);
BENCHMARK(roundtrip_moodycamel)
    ->Name("roundtrip/moodycamel_tokens")
    ->UseRealTime()
    ->Repetitions(5)
    ->ReportAggregatesOnly(true);

BENCHMARK_MAIN();
