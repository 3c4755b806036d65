// The one-hop round trip, timed per operation, with tachyon and its peer interleaved.
//
// Google Benchmark reports one mean per repetition, and on a shared virtual machine a burst of
// preemption during one implementation's repetitions skews a ratio of means. Here every round
// trip is timed on its own (tachyon::clock ticks), and the implementations take turns in short
// trials: a round is one trial of each, back to back. Each row reports percentiles of all its
// samples. The ratio is paired: per round, tachyon's p50 over the peer's p50 in that round,
// and the median of those over all rounds. Pairing matters here: this machine's cross-core
// latency jumps between modes (about 300 ns and 750 ns round trips were both seen) as the
// hypervisor moves the virtual CPUs, and pooled percentiles then mix modes in different
// proportions. Pinning as in bench_main.cpp: publisher on the first usable CPU, consumer on
// the second.
//
//   tachyon            bus with one busy_spin worker; the handler stores the sequence to a flag
//   moodycamel_tokens  bare ConcurrentQueue, producer token, consumer token, bulk dequeue of 64,
//                      a spinning consumer that stores the sequence to the flag; the element is
//                      the user's 8-byte event
//   moodycamel_64B     the same, with a 64-byte cache-line element: the size of tachyon's
//                      envelope (32-byte header + 32 bytes of payload). The gap between the two
//                      moodycamel rows is what carrying the envelope costs; the gap between
//                      this row and tachyon's is what the rest of tachyon costs.
//
// Usage: tachyon_roundtrip [rounds=31] [round_trips_per_trial=10000] [--json FILE]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <tachyon/tachyon.hpp>

#include "hops.hpp"

namespace {

/// One trial: a fresh hop (its consumer started and pinned), n / 10 round trips of warm-up,
/// then n round trips each timed on its own.
template <class Hop>
void trial(std::vector<std::uint64_t>& out, std::size_t n) {
  Hop hop;
  std::uint64_t seq = 0;
  auto once = [&] {
    if (!hop(++seq)) std::abort();
  };
  for (std::size_t i = 0; i < n / 10; ++i) once();
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t t0 = tachyon::clock::now();
    once();
    out.push_back(tachyon::clock::now() - t0);
  }
}

struct summary {
  std::string name;
  std::size_t samples;
  double p50, p90, p99, p999, max;
};

summary summarise(const std::string& name, std::vector<std::uint64_t>& ticks) {
  std::sort(ticks.begin(), ticks.end());
  const double k = tachyon::clock::ns_per_tick();
  auto pct = [&](double p) {
    const auto i = static_cast<std::size_t>(p * static_cast<double>(ticks.size() - 1));
    return static_cast<double>(ticks[i]) * k;
  };
  return {name,
          ticks.size(),
          pct(0.50),
          pct(0.90),
          pct(0.99),
          pct(0.999),
          static_cast<double>(ticks.back()) * k};
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 31;
  std::size_t per_trial = 10000;
  const char* json = nullptr;
  int positional = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
      json = argv[++i];
    } else if (positional++ == 0) {
      rounds = std::max(1, std::atoi(argv[i]));
    } else {
      per_trial = std::max<std::size_t>(100, std::strtoull(argv[i], nullptr, 10));
    }
  }
  const int producer_cpu = bench::producer_cpu();
  const int consumer_cpu = bench::consumer_cpu();
  bench::pin_this_thread(producer_cpu);

  std::vector<std::uint64_t> samples[3];
  for (auto& v : samples) v.reserve(static_cast<std::size_t>(rounds) * per_trial);
  using trial_fn = void (*)(std::vector<std::uint64_t>&, std::size_t);
  const trial_fn runs[3] = {trial<bench::tachyon_hop>, trial<bench::moodycamel_hop<bench::Ping>>,
                            trial<bench::moodycamel_hop<bench::Ping64>>};
  std::vector<double> paired[3];  // per round: tachyon p50 / peer p50
  auto p50_of_last = [&](const std::vector<std::uint64_t>& v) {
    std::vector<std::uint64_t> last(v.end() - static_cast<std::ptrdiff_t>(per_trial), v.end());
    std::nth_element(last.begin(), last.begin() + static_cast<std::ptrdiff_t>(per_trial / 2),
                     last.end());
    return static_cast<double>(last[per_trial / 2]);
  };
  for (int t = 0; t < rounds; ++t) {  // rotate the order, so drift hits every row alike
    for (int k = 0; k < 3; ++k) {
      const int i = (t + k) % 3;
      runs[i](samples[i], per_trial);
    }
    const double mine = p50_of_last(samples[0]);
    for (int peer = 1; peer < 3; ++peer) paired[peer].push_back(mine / p50_of_last(samples[peer]));
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const summary rows[] = {summarise("tachyon_busy_spin", samples[0]),
                          summarise("moodycamel_tokens", samples[1]),
                          summarise("moodycamel_64B", samples[2])};

  std::printf(
      "one-hop round trip, publisher cpu %d, consumer cpu %d, %d rounds x %zu round trips per "
      "implementation, clock %s\n",
      producer_cpu, consumer_cpu, rounds, per_trial,
      tachyon::clock::detail::use_tsc ? "TSC" : "steady_clock");
  std::printf("%-20s %10s %10s %10s %10s %10s %10s\n", "impl", "samples", "p50 ns", "p90 ns",
              "p99 ns", "p99.9 ns", "max ns");
  for (const auto& r : rows)
    std::printf("%-20s %10zu %10.0f %10.0f %10.0f %10.0f %10.0f\n", r.name.c_str(), r.samples,
                r.p50, r.p90, r.p99, r.p999, r.max);
  for (int peer = 1; peer < 3; ++peer) {
    auto sorted = paired[peer];
    std::sort(sorted.begin(), sorted.end());
    std::printf("ratio tachyon / %s, paired p50 over %d rounds: median %.3f (min %.3f, max %.3f)\n",
                rows[peer].name.c_str(), rounds, median(paired[peer]), sorted.front(),
                sorted.back());
  }
  if (json != nullptr) {
    if (FILE* f = std::fopen(json, "w")) {
      std::fprintf(f,
                   "{\"producer_cpu\":%d,\"consumer_cpu\":%d,\"rounds\":%d,\"per_trial\":%zu,"
                   "\"paired_p50_ratio\":{\"moodycamel_tokens\":%.4f,\"moodycamel_64B\":%.4f},"
                   "\"results\":[",
                   producer_cpu, consumer_cpu, rounds, per_trial, median(paired[1]),
                   median(paired[2]));
      for (std::size_t i = 0; i < 3; ++i)
        std::fprintf(f,
                     "%s{\"name\":\"%s\",\"samples\":%zu,\"p50_ns\":%.1f,\"p90_ns\":%.1f,"
                     "\"p99_ns\":%.1f,\"p999_ns\":%.1f,\"max_ns\":%.1f}",
                     i ? "," : "", rows[i].name.c_str(), rows[i].samples, rows[i].p50, rows[i].p90,
                     rows[i].p99, rows[i].p999, rows[i].max);
      std::fprintf(f, "]}\n");
      std::fclose(f);
    }
  }
  return 0;
}
