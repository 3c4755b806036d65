// tachyon_latency: latency distributions, every sample recorded into a tachyon::histogram of
// tachyon::clock ticks (converted to ns when reported), threads pinned as in bench/pinning.hpp
// (publisher on the first usable CPU, consumer or worker on the second), warm-up before every
// measurement. Four groups:
//
// roundtrip  The one-hop round trip of bench/hops.hpp, every round trip timed on its own. On a
//   shared virtual machine a burst of preemption during one implementation's turn skews any
//   comparison of separate runs, and this machine's cross-core latency jumps between modes (about
//   300 ns and 750 ns round trips were both seen) as the hypervisor moves the virtual CPUs. So the
//   implementations take turns in short trials: a round is one trial of each, the order rotated per
//   round, each trial a fresh hop (consumer started and pinned), per_trial / 10 round trips of
//   warm-up, then per_trial timed ones (or fewer if the trial's time cap runs out: the futex-bound
//   rows are slow). tachyon_parked waits, untimed, before each round trip until its worker has
//   parked (bench/hops.hpp), so each timed hop wakes a sleeping worker: the futex cost, comparable
//   with mutex_cv and asio_thread_pool, whose consumers sleep too. Each row reports percentiles of
//   all its samples. The ratios are paired: per round, tachyon_busy_spin's p50 over the peer's p50
//   in that round; reported is the median over the rounds, with the smallest and largest round. For
//   mutex_cv the inverse (the peer over tachyon) is reported as a speedup.
//
// open_loop  One-way latency under an offered load, corrected for coordinated omission. The
//   publisher (the main thread) sends on a fixed schedule t_i = t0 + i * interval, spinning until
//   now >= t_i; the event carries t_i, the time it was meant to be sent, and the consumer records
//   now - t_i. If the publisher is held up (a full queue, a preemption) the events behind it are
//   late by as much, and that lateness is counted, as a user whose requests arrive on their own
//   schedule would see it. "saturation" sends as fast as it can and records from the actual send
//   stamp; its latency is that of a full queue, and its figure is the achieved rate. Rows: tachyon
//   (one busy_spin worker, lane_capacity 8192, overflow::block; `refused` counts publishes that did
//   not return ok, which must be 0) and moodycamel_tokens in the same layout (a pinned consumer
//   thread, consumer token, bulk dequeue of 64, one clock read per event; the producer retries
//   try_enqueue on a queue pre-sized to 8192, which never allocates and so holds 8192 events,
//   like tachyon's lane: it pushes back like `block` instead of growing). The two implementations
//   alternate per rate; in a full run each (rate, implementation) runs three times, interleaved,
//   and the histograms are merged. offered_per_s is 0 for saturation.
//
// priority  The bound a critical event waits under a saturated low lane: a worker runs at most one
//   batch of low events before it looks at the critical lane again, so a critical event waits at
//   most batch x (cost of one low event) + one hop. A bus with one busy_spin worker; Low at
//   priority::low, whose handler burns H (spinning on clock ticks), and Probe at
//   priority::critical, whose handler records now - meta.publish_ticks. One thread on the producer
//   CPU both floods and probes: it tops the low lane up with publish_batch(64) under overflow::fail
//   (lane_capacity 4096), pausing ~1 us when the lane is full, and every 20 us publishes a Probe.
//   (With 2 CPUs a separate flooder thread would share the prober's CPU, and the scheduler could
//   preempt the prober between its stamp and its enqueue, which would be counted as queue wait.)
//   The cost of one low event is measured, not assumed: a gate event holds the worker while the
//   lane is filled, then the worker drains it and (last - first handler start) / (n - 1) is the
//   per-event cost, dispatch included; median of 3 (handler_measured_ns). Under the flood the same
//   event costs more (the flooder writes the lines the worker reads), so the worker also counts the
//   low events it runs in the measured window: window / count is low_event_ns, an upper estimate
//   (it includes any time the lane ran empty). The bound uses the larger of the two. One hop is
//   half of tachyon_busy_spin's round-trip p50 (from the roundtrip group, or measured here when
//   that group is not run). `met` says whether the p99 wait is within the bound; `met_hop_p99`
//   the same with half the round trip's p99 as the hop (the p99 wait includes the hop's tail):
//   that one is the issue's target (tools/bench_table.py's Targets table reports it).
//
// retry  What a retry adds to its backoff: a bus with one worker whose handler throws on attempt 0
//   and returns on attempt 1, retry max_attempts 2 with a fixed delay D (jitter 0). One event at a
//   time (the publisher spins until its retry has run); per event, (attempt 1's start) - (attempt
//   0's clock read just before its throw) - D. Rows: busy_spin with D = 50 us (the mechanism:
//   unwinding, scheduling, the timer firing into the re-entry door, the worker's next batch), and
//   spin_then_park with D = 200 us, longer than the 50 us spin, so the worker parks until the
//   retry is due (adds the futex wake-up and the kernel's timer slack).
//
// request  Request/reply against the bare hops it is made of (bench/hops.hpp): tachyon_busy_spin
//   (one hop: publish, a handler stores to a flag), tachyon_two_hops (publish Ask, its handler
//   publishes Answer with the correlation id, an Answer handler stores to the flag: request/reply
//   by hand), tachyon_request (the blocking bus.request<Answer>) and tachyon_request_async
//   (bus.request<Answer> with an on_reply that stores to the flag). One busy_spin worker runs both
//   hops. Interleaved trials as in roundtrip; the ratios are paired per round: each request row's
//   p50 over tachyon_two_hops' p50 (what the waiter machinery adds), and tachyon_two_hops over
//   tachyon_busy_spin.
//
// Noise. Before the groups, one pinned thread per CPU only spins on the clock (0.3 s quick, 1 s
// full) and counts the gaps over 10 us: the time this machine takes away from a spinning thread
// (kernel, other processes, the hypervisor). On the 2-vCPU development VM that ranged from about 1%
// to 15% of the time, with stalls up to tens of ms, and tails (p99 and beyond) follow it; each
// group also reports the process's involuntary context switches while it ran.
//
// No assertion anywhere is about time: the figures are reported, never checked, except that a
// watchdog aborts the run if no benchmark step finishes for a minute (a hang).
//
// Usage: tachyon_latency [--quick] [--json FILE]
//                        [--only roundtrip|open_loop|priority|retry|request]
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <sys/resource.h>

#include <concurrentqueue/concurrentqueue.h>
#include <tachyon/tachyon.hpp>

#include "emulation.hpp"
#include "hops.hpp"
#include "pinning.hpp"
#include "text.hpp"

namespace {

using ticks = std::uint64_t;
using tachyon::clock::now;

// ---- formatting ----------------------------------------------------------------------------

using bench::fmt;
using bench::json_string;

double ticks_to_ns(ticks t) { return tachyon::clock::to_ns(t); }
ticks ns_to_ticks(double ns) {
  return static_cast<ticks>(ns / tachyon::clock::ns_per_tick() + 0.5);
}

/// "100k", "1M", "2.5M": a rate for a row's name.
std::string rate_name(double per_s) {
  if (per_s >= 1e6) return fmt("%gM", per_s / 1e6);
  if (per_s >= 1e3) return fmt("%gk", per_s / 1e3);
  return fmt("%g", per_s);
}

// ---- rows, groups, tables, JSON -------------------------------------------------------------

/// One extra column of a row: its JSON value and its text in the table.
struct field {
  std::string key, json, text;
};
field num(const std::string& key, double v, int decimals = 0) {
  return {key, fmt("%.*f", decimals, v), fmt("%.*f", decimals, v)};
}
field text(const std::string& key, const std::string& v) { return {key, json_string(v), v}; }
field flag(const std::string& key, bool v) { return {key, v ? "true" : "false", v ? "yes" : "NO"}; }

/// A named latency distribution (ticks) and the columns that say what it was measured under.
struct row {
  std::string name;
  std::vector<field> extra;
  tachyon::histogram hist;
};

/// A paired figure with its target, if it has one.
struct ratio {
  std::string figure;
  double value, min, max;
  std::optional<std::string> target;
  std::optional<bool> met;
};

struct group {
  std::string name, title;
  std::vector<field> header;  // group-level settings (rounds, layout, ...)
  std::vector<row> rows;
  std::vector<ratio> ratios;
  std::vector<std::string> notes;
};

constexpr std::array<double, 12> curve_points = {0,    50,   75,    90,    95,     99,
                                                 99.5, 99.9, 99.95, 99.99, 99.999, 100};

double pct_ns(const tachyon::histogram& h, double p) { return ticks_to_ns(h.percentile(p)); }

std::string row_json(const row& r) {
  std::string s = "{\"name\":" + json_string(r.name);
  for (const auto& f : r.extra) s += ",\"" + f.key + "\":" + f.json;
  const auto& h = r.hist;
  s += fmt(",\"samples\":%llu", static_cast<unsigned long long>(h.count()));
  s += fmt(",\"p50_ns\":%.1f,\"p90_ns\":%.1f,\"p99_ns\":%.1f,\"p999_ns\":%.1f,\"p9999_ns\":%.1f",
           pct_ns(h, 50), pct_ns(h, 90), pct_ns(h, 99), pct_ns(h, 99.9), pct_ns(h, 99.99));
  s += fmt(",\"max_ns\":%.1f,\"mean_ns\":%.1f", ticks_to_ns(h.max()),
           h.mean() * tachyon::clock::ns_per_tick());
  s += ",\"curve\":[";
  for (std::size_t i = 0; i < curve_points.size(); ++i)
    s += fmt("%s[%g,%.1f]", i ? "," : "", curve_points[i], pct_ns(h, curve_points[i]));
  return s + "]}";
}

std::string group_json(const group& g) {
  std::string s = "{\"group\":" + json_string(g.name) + ",\"title\":" + json_string(g.title);
  for (const auto& f : g.header) s += ",\"" + f.key + "\":" + f.json;
  s += ",\"rows\":[";
  for (std::size_t i = 0; i < g.rows.size(); ++i)
    s += (i ? ",\n   " : "\n   ") + row_json(g.rows[i]);
  s += "],\"ratios\":[";
  for (std::size_t i = 0; i < g.ratios.size(); ++i) {
    const auto& r = g.ratios[i];
    s += fmt("%s{\"figure\":%s,\"value\":%.4f,\"min\":%.4f,\"max\":%.4f,\"target\":%s,\"met\":%s}",
             i ? "," : "", json_string(r.figure).c_str(), r.value, r.min, r.max,
             r.target ? json_string(*r.target).c_str() : "null",
             r.met ? (*r.met ? "true" : "false") : "null");
  }
  s += "],\"notes\":[";
  for (std::size_t i = 0; i < g.notes.size(); ++i) s += (i ? "," : "") + json_string(g.notes[i]);
  return s + "]}";
}

void print_group(const group& g) {
  std::printf("\n== %s: %s\n", g.name.c_str(), g.title.c_str());
  for (const auto& f : g.header) std::printf("   %s: %s\n", f.key.c_str(), f.text.c_str());
  // Columns: name, the rows' extra fields (by the first row's keys), then the distribution.
  std::size_t name_w = 4;
  for (const auto& r : g.rows) name_w = std::max(name_w, r.name.size());
  std::vector<std::size_t> w;
  if (!g.rows.empty())
    for (std::size_t i = 0; i < g.rows[0].extra.size(); ++i) {
      std::size_t x = g.rows[0].extra[i].key.size();
      for (const auto& r : g.rows)
        if (i < r.extra.size()) x = std::max(x, r.extra[i].text.size());
      w.push_back(x);
    }
  const char* cols[] = {"samples", "p50", "p90", "p99", "p99.9", "p99.99", "max", "mean"};
  std::printf("%-*s", static_cast<int>(name_w), "name");
  for (std::size_t i = 0; i < w.size(); ++i)
    std::printf("  %*s", static_cast<int>(w[i]), g.rows[0].extra[i].key.c_str());
  for (const char* c : cols) std::printf(" %9s", c);
  std::printf("   (ns)\n");
  for (const auto& r : g.rows) {
    std::printf("%-*s", static_cast<int>(name_w), r.name.c_str());
    for (std::size_t i = 0; i < w.size(); ++i)
      std::printf("  %*s", static_cast<int>(w[i]),
                  i < r.extra.size() ? r.extra[i].text.c_str() : "");
    const auto& h = r.hist;
    std::printf(" %9llu %9.0f %9.0f %9.0f %9.0f %9.0f %9.0f %9.0f\n",
                static_cast<unsigned long long>(h.count()), pct_ns(h, 50), pct_ns(h, 90),
                pct_ns(h, 99), pct_ns(h, 99.9), pct_ns(h, 99.99), ticks_to_ns(h.max()),
                h.mean() * tachyon::clock::ns_per_tick());
  }
  for (const auto& r : g.ratios) {
    std::printf("%s: %.3f (rounds: min %.3f, max %.3f)", r.figure.c_str(), r.value, r.min, r.max);
    if (r.target) std::printf("  target %s: %s", r.target->c_str(), *r.met ? "met" : "NOT met");
    std::printf("\n");
  }
  for (const auto& n : g.notes) std::printf("note: %s\n", n.c_str());
  std::fflush(stdout);
}

// ---- progress and the watchdog --------------------------------------------------------------

/// Every benchmark step reports here; a thread aborts the process if none does for a minute.
class watchdog {
 public:
  watchdog()
      : thread_([this] {
          std::unique_lock lock(mutex_);
          std::uint64_t seen = ~std::uint64_t{0};
          int idle_s = 0;
          while (!stop_) {
            cv_.wait_for(lock, std::chrono::seconds(1));
            const std::uint64_t n = steps_.load(std::memory_order_relaxed);
            idle_s = n == seen ? idle_s + 1 : 0;
            seen = n;
            if (idle_s >= 60) {
              std::fprintf(stderr,
                           "[latency] watchdog: no progress for 60 s after '%s'; aborting\n",
                           last_.c_str());
              std::_Exit(3);
            }
          }
        }) {}
  ~watchdog() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

  __attribute__((format(printf, 2, 3))) void step(const char* f, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, f);
    std::vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    std::fprintf(stderr, "[latency] %s\n", buf);
    {
      std::lock_guard lock(mutex_);
      last_ = buf;
    }
    steps_.fetch_add(1, std::memory_order_relaxed);
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mutex_
  std::string last_;   // guarded by mutex_
  std::atomic<std::uint64_t> steps_{0};
  std::thread thread_;  // last
};

watchdog* progress = nullptr;

struct settings {
  bool quick = false;
  // roundtrip
  int rounds = 21;
  std::size_t per_trial = 10000;
  double trial_cap_s = 1.5;
  // open_loop
  std::vector<double> rates = {1e5, 5e5, 1e6, 2e6, 4e6};
  double ol_warmup_s = 0.1, ol_duration_s = 0.5;
  int ol_reps = 3;
  // priority
  std::vector<std::uint32_t> batches = {1, 16, 64};
  std::vector<double> handler_ns = {0, 100, 1000};
  double prio_duration_s = 0.5;
  double probe_interval_ns = 20000;
  // retry
  std::size_t retry_warmup = 200;
  std::size_t retry_events = 5000;  // busy_spin; spin_then_park runs half as many
};

// ---- 1. roundtrip ----------------------------------------------------------------------------

/// One trial of Hop: records each timed round trip into `all` and `trial`; stops early at the
/// time cap. Returns false if a hop was refused.
template <class Hop>
bool rt_trial(tachyon::histogram& all, std::vector<ticks>& trial, std::size_t n, ticks cap) {
  auto hop = std::make_unique<Hop>();
  trial.clear();
  std::uint64_t seq = 0;
  const ticks start = now();
  for (std::size_t i = 0; i < n / 10 && now() - start < cap / 4; ++i)
    if (!(*hop)(++seq)) return false;
  const ticks measure_start = now();
  for (std::size_t i = 0; i < n; ++i) {
    if constexpr (requires { hop->prepare(); }) hop->prepare();  // untimed (tachyon_parked)
    const ticks t0 = now();
    if (!(*hop)(++seq)) return false;
    const ticks t1 = now();
    all.record(t1 - t0);
    trial.push_back(t1 - t0);
    if (t1 - measure_start > cap) break;
  }
  return true;
}

struct rt_impl {
  const char* name;
  bool (*trial)(tachyon::histogram&, std::vector<ticks>&, std::size_t, ticks);
};

constexpr rt_impl rt_impls[] = {
    {"tachyon_busy_spin", rt_trial<bench::tachyon_hop>},
    {"tachyon_busy_spin_no_ts", rt_trial<bench::tachyon_hop_no_timestamps>},
    {"tachyon_yield", rt_trial<bench::tachyon_yield_hop>},
    {"tachyon_spin_then_park", rt_trial<bench::tachyon_spin_then_park_hop>},
    {"tachyon_parked", rt_trial<bench::tachyon_parked_hop>},
    {"moodycamel_tokens", rt_trial<bench::moodycamel_hop<bench::Ping>>},
    {"moodycamel_64B", rt_trial<bench::moodycamel_hop<bench::Ping64>>},
    {"atomic_queue", rt_trial<bench::atomic_queue_hop>},
    {"mutex_cv", rt_trial<bench::mutex_cv_hop>},
    {"asio_thread_pool", rt_trial<bench::asio_hop>},
    {"cache_line", rt_trial<bench::cache_line_hop>},
};
constexpr std::size_t rt_count = std::size(rt_impls);
constexpr std::size_t rt_no_ts = 1, rt_moodycamel = 5;  // the pair of the no-timestamp ratio
static_assert(std::string_view(rt_impls[rt_no_ts].name) == "tachyon_busy_spin_no_ts");
static_assert(std::string_view(rt_impls[rt_moodycamel].name) == "moodycamel_tokens");

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

ticks p50_of(std::vector<ticks>& v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

/// One hop, for the priority bound: half of tachyon_busy_spin's round trip, at p50 and at p99.
struct hop_estimate {
  double p50_ns = 0, p99_ns = 0;
  bool from_roundtrip = false;
};

/// Runs the group; `hop` receives half of tachyon_busy_spin's round-trip p50 and p99.
group run_roundtrip(const settings& s, hop_estimate& hop) {
  group g{"roundtrip", "one-hop round trip (ns)", {}, {}, {}, {}};
  g.header = {num("rounds", s.rounds), num("per_trial", static_cast<double>(s.per_trial)),
              num("trial_cap_s", s.trial_cap_s, 2)};
  std::vector<tachyon::histogram> hists(rt_count);
  std::vector<std::vector<double>> per_round(rt_count);  // tachyon p50 / impl p50, per round
  std::vector<double> no_ts_per_round;  // tachyon_busy_spin_no_ts p50 / moodycamel_tokens p50
  std::vector<ticks> trial;
  trial.reserve(s.per_trial);
  const ticks cap = ns_to_ticks(s.trial_cap_s * 1e9);
  for (int r = 0; r < s.rounds; ++r) {
    progress->step("roundtrip round %d/%d", r + 1, s.rounds);
    std::array<ticks, rt_count> p50{};
    for (std::size_t k = 0; k < rt_count; ++k) {  // rotate the order: drift hits every row alike
      const std::size_t i = (static_cast<std::size_t>(r) + k) % rt_count;
      if (!rt_impls[i].trial(hists[i], trial, s.per_trial, cap)) {
        std::fprintf(stderr, "[latency] %s refused a hop; aborting\n", rt_impls[i].name);
        std::exit(1);
      }
      p50[i] = p50_of(trial);
    }
    for (std::size_t i = 1; i < rt_count; ++i)
      if (p50[i] != 0)
        per_round[i].push_back(static_cast<double>(p50[0]) / static_cast<double>(p50[i]));
    if (p50[rt_moodycamel] != 0)
      no_ts_per_round.push_back(static_cast<double>(p50[rt_no_ts]) /
                                static_cast<double>(p50[rt_moodycamel]));
  }
  for (std::size_t i = 0; i < rt_count; ++i) g.rows.push_back({rt_impls[i].name, {}, hists[i]});
  hop = {pct_ns(hists[0], 50) / 2, pct_ns(hists[0], 99) / 2, true};

  for (std::size_t i = 1; i < rt_count; ++i) {
    const std::string peer = rt_impls[i].name;
    if (peer.rfind("tachyon", 0) == 0 || per_round[i].empty()) continue;  // peers only
    auto v = per_round[i];
    ratio x;
    if (peer == "mutex_cv") {
      for (auto& e : v) e = 1.0 / e;
      x.figure = "round trip p50, mutex_cv / tachyon_busy_spin (paired speedup)";
    } else {
      x.figure = "round trip p50, tachyon_busy_spin / " + peer + " (paired)";
      if (peer == "moodycamel_tokens") x.target = "<= 1.05";
    }
    x.value = median_of(v);
    x.min = *std::min_element(v.begin(), v.end());
    x.max = *std::max_element(v.begin(), v.end());
    if (x.target) x.met = x.value <= 1.05;
    g.ratios.push_back(x);
  }
  if (!no_ts_per_round.empty()) {  // the same hop without the publish's clock read
    ratio x;
    x.figure = "round trip p50, tachyon_busy_spin_no_ts / moodycamel_tokens (paired)";
    x.value = median_of(no_ts_per_round);
    x.min = *std::min_element(no_ts_per_round.begin(), no_ts_per_round.end());
    x.max = *std::max_element(no_ts_per_round.begin(), no_ts_per_round.end());
    g.ratios.push_back(x);
  }
  g.notes.push_back(
      "every round trip timed on its own (two clock reads included); ratios are medians over "
      "rounds of per-round p50 ratios");
  return g;
}

// ---- request ---------------------------------------------------------------------------------

constexpr rt_impl rq_impls[] = {
    {"tachyon_busy_spin", rt_trial<bench::tachyon_hop>},
    {"tachyon_two_hops", rt_trial<bench::tachyon_two_hops>},
    {"tachyon_request", rt_trial<bench::tachyon_request_hop>},
    {"tachyon_request_async", rt_trial<bench::tachyon_request_async_hop>},
};
constexpr std::size_t rq_count = std::size(rq_impls);

ratio paired(std::string figure, const std::vector<double>& v) {
  ratio x;
  x.figure = std::move(figure);
  x.value = median_of(v);
  x.min = v.empty() ? 0 : *std::min_element(v.begin(), v.end());
  x.max = v.empty() ? 0 : *std::max_element(v.begin(), v.end());
  return x;
}

group run_request(const settings& s) {
  group g{"request", "request/reply round trip (ns)", {}, {}, {}, {}};
  g.header = {num("rounds", s.rounds), num("per_trial", static_cast<double>(s.per_trial)),
              num("trial_cap_s", s.trial_cap_s, 2)};
  std::vector<tachyon::histogram> hists(rq_count);
  std::vector<double> two_over_one, req_over_two, async_over_two;
  std::vector<ticks> trial;
  trial.reserve(s.per_trial);
  const ticks cap = ns_to_ticks(s.trial_cap_s * 1e9);
  for (int r = 0; r < s.rounds; ++r) {
    progress->step("request round %d/%d", r + 1, s.rounds);
    std::array<double, rq_count> p50{};
    for (std::size_t k = 0; k < rq_count; ++k) {
      const std::size_t i = (static_cast<std::size_t>(r) + k) % rq_count;
      if (!rq_impls[i].trial(hists[i], trial, s.per_trial, cap)) {
        std::fprintf(stderr, "[latency] %s refused or lost a round trip; aborting\n",
                     rq_impls[i].name);
        std::exit(1);
      }
      p50[i] = static_cast<double>(p50_of(trial));
    }
    if (p50[0] != 0) two_over_one.push_back(p50[1] / p50[0]);
    if (p50[1] != 0) {
      req_over_two.push_back(p50[2] / p50[1]);
      async_over_two.push_back(p50[3] / p50[1]);
    }
  }
  for (std::size_t i = 0; i < rq_count; ++i) g.rows.push_back({rq_impls[i].name, {}, hists[i]});
  g.ratios.push_back(
      paired("round trip p50, tachyon_request / tachyon_two_hops (paired)", req_over_two));
  g.ratios.push_back(
      paired("round trip p50, tachyon_request_async / tachyon_two_hops (paired)", async_over_two));
  g.ratios.push_back(
      paired("round trip p50, tachyon_two_hops / tachyon_busy_spin (paired)", two_over_one));
  g.notes.push_back(
      "a request/reply is two hops through the bus (the request, then the reply) on one worker; "
      "tachyon_two_hops is that exchange without the waiter table, so request / two_hops is "
      "what bus::request adds");
  return g;
}

/// Half of tachyon_busy_spin's round trip, for when the roundtrip group is not run: p50 is the
/// median of 5 trials' p50s, p99 that of all their samples.
hop_estimate measure_hop(const settings& s) {
  progress->step("priority: measuring one hop (tachyon_busy_spin round trip / 2)");
  tachyon::histogram h;
  std::vector<ticks> trial;
  std::vector<double> p50s;
  for (int r = 0; r < 5; ++r) {
    if (!rt_trial<bench::tachyon_hop>(h, trial, std::min<std::size_t>(s.per_trial, 5000),
                                      ns_to_ticks(0.5e9)))
      std::exit(1);
    p50s.push_back(static_cast<double>(p50_of(trial)));
  }
  return {ticks_to_ns(static_cast<ticks>(median_of(p50s))) / 2, pct_ns(h, 99) / 2, false};
}

// ---- 2. open_loop ----------------------------------------------------------------------------

struct Stamped {
  ticks t;                // intended send time (paced) or actual send time (saturation)
  std::uint64_t measure;  // 0 during warm-up
};

struct ol_result {
  std::uint64_t sent = 0;     // measured events sent
  std::uint64_t refused = 0;  // publishes that did not return ok
  double elapsed_s = 0;       // first measured intended send .. last measured send returned
  bool truncated = false;     // the deadline cut a paced run short (the consumer fell behind)
};

/// The publisher: paced at `rate` events/s (0: as fast as it can) for warm-up then duration.
/// `send` returns false if the event was refused (it is then not resent).
template <class Send>
ol_result publish_loop(Send&& send, double rate, double warm_s, double dur_s) {
  ol_result out;
  const double tpns = 1.0 / tachyon::clock::ns_per_tick();  // ticks per ns
  const ticks t0 = now() + ns_to_ticks(20000);
  if (rate <= 0) {  // saturation
    const ticks warm_end = t0 + ns_to_ticks(warm_s * 1e9);
    const ticks end = warm_end + ns_to_ticks(dur_s * 1e9);
    ticks t = now();
    while (t < warm_end) {
      if (!send(Stamped{t, 0})) ++out.refused;
      t = now();
    }
    const ticks start = t;
    while (t < end) {
      if (send(Stamped{t, 1}))
        ++out.sent;
      else
        ++out.refused;
      t = now();
    }
    out.elapsed_s = ticks_to_ns(now() - start) * 1e-9;
    return out;
  }
  const double interval = 1e9 / rate * tpns;  // ticks
  const auto n_warm = static_cast<std::uint64_t>(rate * warm_s);
  const auto n_total = n_warm + static_cast<std::uint64_t>(rate * dur_s);
  const ticks deadline = t0 + ns_to_ticks((warm_s + dur_s) * 3e9 + 0.2e9);
  ticks first = 0;
  for (std::uint64_t i = 0; i < n_total; ++i) {
    const ticks ti = t0 + static_cast<ticks>(static_cast<double>(i) * interval);
    ticks t = now();
    while (t < ti) t = now();
    if (t > deadline) {
      out.truncated = true;
      break;
    }
    const bool measured = i >= n_warm;
    if (measured && first == 0) first = ti;
    if (!send(Stamped{ti, measured ? 1u : 0u}))
      ++out.refused;
    else if (measured)
      ++out.sent;
  }
  out.elapsed_s = first == 0 ? 0 : ticks_to_ns(now() - first) * 1e-9;
  return out;
}

ol_result ol_tachyon(tachyon::histogram& hist, double rate, const settings& s) {
  tachyon::config cfg{.workers = 1,
                      .lane_capacity = 8192,
                      .batch = 64,
                      .wait = tachyon::wait_strategy::busy_spin,
                      .overflow = tachyon::overflow::block,
                      .producers = 1};
  if (bench::consumer_cpu() >= 0) cfg.cpus = {bench::consumer_cpu()};
  tachyon::bus<tachyon::registry<Stamped>> bus(cfg);
  tachyon::histogram local;  // written by the worker only
  auto sub = bus.subscribe<Stamped>([&local](const Stamped& e) {
    if (e.measure) local.record(now() - e.t);
  });
  const ol_result r =
      publish_loop([&bus](const Stamped& e) { return bus.publish(e) == tachyon::result::ok; }, rate,
                   s.ol_warmup_s, s.ol_duration_s);
  bus.stop();  // drains, then joins the worker: its records happen-before the merge
  hist.merge(local);
  return r;
}

ol_result ol_moodycamel(tachyon::histogram& hist, double rate, const settings& s) {
  moodycamel::ConcurrentQueue<Stamped> q(8192);  // try_enqueue: holds 8192
  moodycamel::ProducerToken ptok(q);
  std::atomic<bool> done{false};
  tachyon::histogram local;  // written by the consumer only
  std::thread consumer([&] {
    bench::pin_this_thread(bench::consumer_cpu());
    moodycamel::ConsumerToken ctok(q);
    Stamped buf[64];
    for (;;) {
      const bool finishing = done.load(std::memory_order_acquire);  // every enqueue is visible
      const std::size_t n = q.try_dequeue_bulk(ctok, buf, 64);
      for (std::size_t i = 0; i < n; ++i)
        if (buf[i].measure) local.record(now() - buf[i].t);
      if (n == 0 && finishing) break;
    }
  });
  const ol_result r = publish_loop(
      [&](const Stamped& e) {
        while (!q.try_enqueue(ptok, e)) {
        }
        return true;
      },
      rate, s.ol_warmup_s, s.ol_duration_s);
  done.store(true, std::memory_order_release);
  consumer.join();
  hist.merge(local);
  return r;
}

group run_open_loop(const settings& s) {
  group g{"open_loop", "one-way latency under open-loop offered load, CO-corrected (ns)",
          {},          {},
          {},          {}};
  g.header = {num("duration_s", s.ol_duration_s, 2), num("warmup_s", s.ol_warmup_s, 2),
              num("repetitions", s.ol_reps)};
  struct impl {
    const char* name;
    ol_result (*run)(tachyon::histogram&, double, const settings&);
  };
  const impl impls[] = {{"tachyon", ol_tachyon}, {"moodycamel_tokens", ol_moodycamel}};
  std::vector<double> rates = s.rates;
  rates.push_back(0);  // saturation
  for (const double rate : rates) {
    const std::string rname = rate > 0 ? rate_name(rate) + "/s" : "saturation";
    tachyon::histogram hist[2];
    ol_result total[2];
    for (int rep = 0; rep < s.ol_reps; ++rep)
      for (std::size_t k = 0; k < 2; ++k) {
        const std::size_t i = (k + static_cast<std::size_t>(rep)) % 2;
        progress->step("open_loop %s@%s rep %d/%d", impls[i].name, rname.c_str(), rep + 1,
                       s.ol_reps);
        const ol_result r = impls[i].run(hist[i], rate, s);
        total[i].sent += r.sent;
        total[i].refused += r.refused;
        total[i].elapsed_s += r.elapsed_s;
        total[i].truncated = total[i].truncated || r.truncated;
      }
    for (std::size_t i = 0; i < 2; ++i) {
      const double achieved =
          total[i].elapsed_s > 0 ? static_cast<double>(total[i].sent) / total[i].elapsed_s : 0;
      row x{
          std::string(impls[i].name) + "@" + rname,
          {text("impl", impls[i].name), num("offered_per_s", rate), num("achieved_per_s", achieved),
           num("refused", static_cast<double>(total[i].refused))},
          hist[i]};
      g.rows.push_back(x);
      if (total[i].truncated)
        g.notes.push_back(x.name +
                          ": the consumer fell so far behind that the run hit its "
                          "deadline before sending every scheduled event");
    }
  }
  g.notes.push_back(
      "latency = consumer's clock read - intended send time (saturation: actual send time); "
      "tachyon: overflow::block, lane_capacity 8192; moodycamel: pre-sized to 8192, try_enqueue "
      "retried while full");
  return g;
}

// ---- 3. priority -----------------------------------------------------------------------------

struct Low {
  std::uint32_t kind;  // 0 flood, 1 gate, 2 first timed, 3 last timed
};
struct Probe {
  std::uint64_t measure;
};
using prio_events = tachyon::registry<tachyon::event<Low, tachyon::priority::low>,
                                      tachyon::event<Probe, tachyon::priority::critical>>;

/// What the worker writes (the histogram, the calibration stamps) and the gate it waits on.
struct alignas(64) prio_state {
  tachyon::histogram wait;
  ticks first = 0, last = 0;
  alignas(64) std::atomic<bool> gate_open{false};
  alignas(64) std::atomic<bool> timed_done{false};
  alignas(64) std::atomic<std::uint64_t> low_done{0};  // low events run; the worker's line
};

struct prio_cell {
  double drain_ns = 0;    // per low event, draining a full lane with nobody publishing
  double in_situ_ns = 0;  // per low event during the measurement (idle time included)
  std::uint64_t probes = 0, probes_refused = 0, probes_at_full = 0;
  tachyon::histogram wait;
};

prio_cell run_prio_cell(std::uint32_t batch, double h_ns, double duration_s, double interval_ns) {
  constexpr std::uint32_t capacity = 4096;
  tachyon::config cfg{.workers = 1,
                      .lane_capacity = capacity,
                      .batch = batch,
                      .wait = tachyon::wait_strategy::busy_spin,
                      .overflow = tachyon::overflow::fail,
                      .producers = 1};
  if (bench::consumer_cpu() >= 0) cfg.cpus = {bench::consumer_cpu()};
  tachyon::bus<prio_events> bus(cfg);
  auto st = std::make_unique<prio_state>();
  const ticks h = ns_to_ticks(h_ns);
  auto s_low = bus.subscribe<Low>([&w = *st, h](const Low& e) {
    if (e.kind != 0) [[unlikely]] {
      if (e.kind == 1) {
        while (!w.gate_open.load(std::memory_order_acquire)) {
        }
      } else if (e.kind == 2) {
        w.first = now();
      } else if (e.kind == 3) {
        w.last = now();
        w.timed_done.store(true, std::memory_order_release);
      }
    }
    if (h != 0) {
      const ticks end = now() + h;
      while (now() < end) {
      }
    }
    w.low_done.store(w.low_done.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  });
  auto s_probe = bus.subscribe<Probe>([&w = *st](const Probe& p, const tachyon::meta& m) {
    if (p.measure) w.wait.record(now() - m.publish_ticks);
  });
  auto must = [](tachyon::result r) {
    if (r != tachyon::result::ok) {
      std::fprintf(stderr, "[latency] priority: a calibration publish was refused (%s)\n",
                   std::string(tachyon::to_string(r)).c_str());
      std::exit(1);
    }
  };

  // The cost of one low event: gate the worker, fill the lane behind the gate, open it, and
  // time the drain from the first timed event's start to the last's.
  const std::uint32_t n = capacity - batch - 2;
  std::vector<double> costs;
  for (int k = 0; k < 3; ++k) {
    st->gate_open.store(false, std::memory_order_relaxed);
    st->timed_done.store(false, std::memory_order_relaxed);
    must(bus.publish(Low{1}));
    must(bus.publish(Low{2}));
    for (std::uint32_t i = 0; i < n - 2; ++i) must(bus.publish(Low{0}));
    must(bus.publish(Low{3}));
    st->gate_open.store(true, std::memory_order_release);
    while (!st->timed_done.load(std::memory_order_acquire)) std::this_thread::yield();
    costs.push_back(ticks_to_ns(st->last - st->first) / static_cast<double>(n - 1));
  }
  prio_cell out;
  out.drain_ns = median_of(costs);

  // Flood and probe from this one thread (see the header comment).
  const std::vector<Low> chunk(64, Low{0});
  const std::span<const Low> lows(chunk);
  const ticks interval = ns_to_ticks(interval_ns);
  const ticks pause = ns_to_ticks(1000);
  const ticks start = now();
  const ticks measure_from = start + ns_to_ticks(std::min(0.05, duration_s / 4) * 1e9);
  const ticks end = measure_from + ns_to_ticks(duration_s * 1e9);
  ticks next_probe = start + interval;
  bool lane_full = false;
  ticks window_start = 0;
  std::uint64_t done_at_start = 0;
  for (;;) {
    ticks t = now();
    if (t >= next_probe) {
      if (t >= end) break;
      const bool measure = t >= measure_from;
      if (measure && window_start == 0) {
        window_start = t;
        done_at_start = st->low_done.load(std::memory_order_relaxed);
      }
      if (bus.publish(Probe{measure ? 1u : 0u}) != tachyon::result::ok)
        ++out.probes_refused;
      else if (measure) {
        ++out.probes;
        out.probes_at_full += lane_full ? 1 : 0;
      }
      next_probe += interval;
      if (next_probe < t) next_probe = t + interval;  // fell behind: no burst to catch up
      continue;
    }
    const tachyon::batch_result b = bus.publish_batch(lows);
    lane_full = b.status != tachyon::result::ok;
    if (lane_full) {  // give the worker room; keep the probe on time
      const ticks until = std::min(next_probe, t + pause);
      while (now() < until) {
      }
    }
  }
  const ticks window_end = now();
  const std::uint64_t done_in_window = st->low_done.load(std::memory_order_relaxed) - done_at_start;
  out.in_situ_ns = done_in_window == 0 ? 0
                                       : ticks_to_ns(window_end - window_start) /
                                             static_cast<double>(done_in_window);
  bus.stop();  // drains the low lane (at most 4096 x H), joins the worker
  out.wait = st->wait;
  return out;
}

group run_priority(const settings& s, const hop_estimate& hop) {
  group g{"priority", "critical-lane queue wait under a saturated low lane (ns)", {}, {}, {}, {}};
  const std::string layout = fmt(
      "worker busy_spin on cpu %d; one thread on cpu %d floods the low lane (publish_batch of 64, "
      "overflow::fail, lane_capacity 4096, ~1 us pause when full) and publishes a critical Probe "
      "every %.0f us",
      bench::consumer_cpu(), bench::producer_cpu(), s.probe_interval_ns / 1000);
  g.header = {
      text("layout", layout), num("duration_s", s.prio_duration_s, 2), num("hop_ns", hop.p50_ns, 1),
      num("hop_p99_ns", hop.p99_ns, 1),
      text("hop_source", hop.from_roundtrip ? "roundtrip group: tachyon_busy_spin round trip / 2"
                                            : "measured here: tachyon_busy_spin round trip / 2")};
  for (const std::uint32_t b : s.batches)
    for (const double h : s.handler_ns) {
      progress->step("priority b=%u h=%.0fns", b, h);
      const prio_cell c = run_prio_cell(b, h, s.prio_duration_s, s.probe_interval_ns);
      const double per_event = std::max(c.drain_ns, c.in_situ_ns);
      const double bound = static_cast<double>(b) * per_event + hop.p50_ns;
      const double bound_p99 = static_cast<double>(b) * per_event + hop.p99_ns;
      const double p99 = pct_ns(c.wait, 99);
      const double full_pct =
          c.probes ? 100.0 * static_cast<double>(c.probes_at_full) / static_cast<double>(c.probes)
                   : 0;
      g.rows.push_back(
          {fmt("critical wait b=%u h=%.0fns", b, h),
           {num("batch", b), num("handler_ns", h), num("handler_measured_ns", c.drain_ns, 1),
            num("low_event_ns", c.in_situ_ns, 1), num("bound_ns", bound), flag("met", p99 <= bound),
            num("bound_hop_p99_ns", bound_p99), flag("met_hop_p99", p99 <= bound_p99),
            num("low_full_pct", full_pct),
            num("probes_refused", static_cast<double>(c.probes_refused))},
           c.wait});
    }
  g.notes.push_back(
      "bound = batch x max(handler_measured_ns, low_event_ns) + hop_ns; met = p99 <= bound. "
      "bound_hop_p99_ns is the same with hop_p99_ns: the p99 wait carries the hop's own tail, "
      "which the p50 hop leaves out, so small batch x H cells miss the p50-hop bound by that");
  g.notes.push_back(
      "handler_measured_ns = cost of one low event (handler + dispatch) draining a full lane with "
      "nobody publishing; low_event_ns = measurement window / low events run in it, i.e. the "
      "cost while the flooder writes the lane (an overestimate when the lane runs empty)");
  g.notes.push_back(
      "low_full_pct = share of probes published while the last top-up found the low lane full");
  g.notes.push_back(
      fmt("one stall of the worker's CPU for T us delays T/%.0f probes: in a %.2f s "
          "window a 1 ms stall is %.2f%% of the samples, enough to move p99",
          s.probe_interval_ns / 1000, s.prio_duration_s,
          100.0 * (1e6 / s.probe_interval_ns) / (s.prio_duration_s * 1e9 / s.probe_interval_ns)));
  return g;
}

// ---- 4. retry --------------------------------------------------------------------------------

struct Flaky {
  std::uint64_t seq;
  std::uint64_t measure;  // 0 during warm-up
};

/// What the handler throws on attempt 0: no message to allocate.
struct retry_failure : std::exception {
  const char* what() const noexcept override { return "tachyon_latency: attempt 0 fails"; }
};

/// Written by the worker (the handler), read by the publisher after the bus has stopped,
/// except `done`, which the publisher spins on.
struct alignas(64) retry_state {
  ticks threw = 0;  // attempt 0's clock read, just before its throw
  tachyon::histogram added;
  std::uint64_t early = 0;  // attempt 1 started less than the delay after the throw (clamped)
  alignas(64) std::atomic<std::uint64_t> done{0};  // seq of the last event whose attempt 1 ran
};

struct retry_cell {
  tachyon::histogram added;
  std::uint64_t events = 0, early = 0, refused = 0, lost = 0, parks = 0;
};

/// One event at a time through a bus with one worker (pinned to the consumer CPU, waiting as
/// `wait` says): its handler throws on attempt 0 and returns on attempt 1, with retry
/// max_attempts 2 and initial_delay = max_delay = `delay` (jitter 0: exactly `delay`). Per
/// event, records (attempt 1's start) - (attempt 0's throw) - delay: what a retry adds to its
/// backoff (the unwinding, scheduling it, the timer's firing into the re-entry door, the
/// worker's next look at it, and for a parked worker the futex wake-up and timer slack).
retry_cell run_retry_cell(tachyon::wait_strategy wait, std::chrono::nanoseconds delay,
                          std::size_t warmup, std::size_t n) {
  tachyon::config cfg{.workers = 1,
                      .lane_capacity = 1024,
                      .wait = wait,
                      .overflow = tachyon::overflow::fail,
                      .producers = 1};
  if (bench::consumer_cpu() >= 0) cfg.cpus = {bench::consumer_cpu()};
  tachyon::bus<tachyon::registry<Flaky>> bus(cfg);
  auto st = std::make_unique<retry_state>();
  const ticks d = ns_to_ticks(static_cast<double>(delay.count()));
  tachyon::subscribe_options<Flaky> opts;
  opts.retry = {.max_attempts = 2, .initial_delay = delay, .max_delay = delay};
  auto sub = bus.subscribe<Flaky>(
      [&w = *st, d](const Flaky& e, const tachyon::meta& m) {
        if (m.attempt == 0) {
          w.threw = now();
          throw retry_failure{};
        }
        const ticks since = now() - w.threw;
        if (e.measure) {
          if (since >= d) {
            w.added.record(since - d);
          } else {
            ++w.early;
            w.added.record(0);
          }
        }
        w.done.store(e.seq, std::memory_order_release);
      },
      std::move(opts));
  retry_cell out;
  // A retry that never comes would hang the loop: give up on it after a second (counted lost).
  const ticks give_up = ns_to_ticks(1e9) + d;
  for (std::size_t i = 1; i <= warmup + n; ++i) {
    const bool measure = i > warmup;
    if (bus.publish(Flaky{i, measure ? 1u : 0u}) != tachyon::result::ok) {
      ++out.refused;
      continue;
    }
    const ticks t0 = now();
    while (st->done.load(std::memory_order_acquire) != i) {
      if (now() - t0 > give_up) {
        ++out.lost;
        break;
      }
    }
    out.events += measure ? 1 : 0;
  }
  out.parks = bus.metrics().parks;
  bus.stop();  // joins the worker: its records happen-before the reads below
  out.added = st->added;
  out.early = st->early;
  return out;
}

group run_retry(const settings& s) {
  group g{"retry", "a retry's latency beyond its backoff (ns)", {}, {}, {}, {}};
  g.header = {text("layout", fmt("one worker on cpu %d; the publisher on cpu %d sends one event, "
                                 "waits (spinning) until its retry has run, then sends the next",
                                 bench::consumer_cpu(), bench::producer_cpu())),
              num("warmup_events", static_cast<double>(s.retry_warmup))};
  struct cell {
    const char* wait_name;
    tachyon::wait_strategy wait;
    std::chrono::nanoseconds delay;
    std::size_t n;
  };
  const cell cells[] = {
      {"busy_spin", tachyon::wait_strategy::busy_spin, std::chrono::microseconds(50),
       s.retry_events},
      // The delay outlasts spin_before_park (50 us): the worker parks until the retry is due.
      {"spin_then_park", tachyon::wait_strategy::spin_then_park, std::chrono::microseconds(200),
       s.retry_events / 2},
  };
  for (const cell& c : cells) {
    progress->step("retry %s delay %lld us", c.wait_name,
                   static_cast<long long>(c.delay.count() / 1000));
    const retry_cell r = run_retry_cell(c.wait, c.delay, s.retry_warmup, c.n);
    g.rows.push_back(
        {fmt("retry_added_latency/%s", c.wait_name),
         {text("wait", c.wait_name), num("delay_ns", static_cast<double>(c.delay.count())),
          num("events", static_cast<double>(r.events)), num("early", static_cast<double>(r.early)),
          num("lost", static_cast<double>(r.lost)), num("refused", static_cast<double>(r.refused)),
          num("parks", static_cast<double>(r.parks))},
         r.added});
  }
  g.notes.push_back(
      "added = (attempt 1's handler start) - (attempt 0's clock read just before its throw) - "
      "delay, on tachyon::clock; retry max_attempts 2, initial_delay = max_delay = delay, jitter "
      "0. "
      "It includes the unwinding of the throw (~1 us), scheduling the retry, the timer firing it "
      "into the re-entry door and the worker running it; with spin_then_park the worker has "
      "parked by then (parks), and the futex wake-up and the kernel's timer slack (50 us by "
      "default) add to it");
  g.notes.push_back(
      "early = retries that started less than delay after the throw (tachyon::clock and the "
      "bus's steady_clock disagreeing slightly), recorded as 0; lost = retries not seen within "
      "1 s (must be 0)");
  return g;
}

// ---- main ------------------------------------------------------------------------------------

/// Involuntary context switches of this process so far: a spinning thread pinned to its own CPU
/// is switched out only when something else wants that CPU, so this counts competing load.
long involuntary_switches() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_nivcsw;
}

std::string loadavg() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

/// What this machine takes from a thread that only spins: one pinned thread per benchmark CPU
/// reads the clock in a loop for `seconds`; every gap over 10 us is time the CPU was taken
/// away (by the kernel, another process, or the hypervisor).
struct noise {
  double seconds = 0;
  std::uint64_t gaps_10us = 0, gaps_1ms = 0;
  double lost_pct = 0, max_gap_us = 0;
};

noise measure_noise(double seconds) {
  struct cpu_noise {
    std::uint64_t gaps_10us = 0, gaps_1ms = 0;
    ticks lost = 0, max_gap = 0;
  };
  cpu_noise per_cpu[2];
  const ticks len = ns_to_ticks(seconds * 1e9), g10 = ns_to_ticks(1e4), g1ms = ns_to_ticks(1e6);
  auto spin = [&](int cpu, cpu_noise& out) {
    bench::pin_this_thread(cpu);
    const ticks end = now() + len;
    for (ticks prev = now(), t = prev; t < end; prev = t) {
      t = now();
      const ticks d = t - prev;
      if (d > g10) [[unlikely]] {
        ++out.gaps_10us;
        out.gaps_1ms += d > g1ms ? 1 : 0;
        out.lost += d;
        out.max_gap = std::max(out.max_gap, d);
      }
    }
  };
  std::thread other(spin, bench::consumer_cpu(), std::ref(per_cpu[1]));
  spin(bench::producer_cpu(), per_cpu[0]);
  other.join();
  noise n;
  n.seconds = seconds;
  for (const auto& c : per_cpu) {
    n.gaps_10us += c.gaps_10us;
    n.gaps_1ms += c.gaps_1ms;
    n.lost_pct += 100.0 * ticks_to_ns(c.lost) / (seconds * 1e9) / 2;
    n.max_gap_us = std::max(n.max_gap_us, ticks_to_ns(c.max_gap) / 1000);
  }
  return n;
}

/// Runs one group and adds what says whether something else ran on the machine meanwhile.
template <class F>
group measured(F&& run) {
  const long before = involuntary_switches();
  const std::string load = loadavg();
  group g = run();
  g.header.push_back(
      num("involuntary_switches", static_cast<double>(involuntary_switches() - before)));
  g.header.push_back(text("loadavg_before", load));
  return g;
}

int usage() {
  std::fprintf(stderr,
               "usage: tachyon_latency [--quick] [--json FILE] "
               "[--only roundtrip|open_loop|priority|retry|request]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  bench::warn_if_emulated("tachyon_latency");
  settings s;
  const char* json = nullptr;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      s.quick = true;
    } else if (std::strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
      json = argv[++i];
    } else if (std::strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
      only = argv[++i];
      if (only != "roundtrip" && only != "open_loop" && only != "priority" && only != "retry" &&
          only != "request")
        return usage();
    } else {
      return usage();
    }
  }
  if (s.quick) {
    s.rounds = 9;
    s.per_trial = 3000;
    s.trial_cap_s = 0.3;
    s.ol_warmup_s = 0.05;
    s.ol_duration_s = 0.15;
    s.ol_reps = 1;
    s.prio_duration_s = 0.12;
    s.retry_events = 2000;
  }
  const int producer_cpu = bench::producer_cpu();
  const int consumer_cpu = bench::consumer_cpu();
  bench::pin_this_thread(producer_cpu);
  const double ns_per_tick = tachyon::clock::ns_per_tick();  // calibrate before anything runs
  const char* const clock_source = tachyon::clock::source();
  std::printf("tachyon_latency%s: publisher cpu %d, consumer cpu %d, clock %s (%.4f ns/tick)\n",
              s.quick ? " --quick" : "", producer_cpu, consumer_cpu, clock_source, ns_per_tick);
  if (consumer_cpu < 0)
    std::printf("warning: fewer than 2 usable CPUs; spinning consumers share the publisher's\n");
  std::fflush(stdout);

  const auto wall0 = std::chrono::steady_clock::now();
  watchdog dog;
  progress = &dog;
  progress->step("noise: spinning on both CPUs");
  const noise quiet = measure_noise(s.quick ? 0.3 : 1.0);
  std::printf(
      "machine noise: a spinning thread on each CPU lost %.1f%% of %.1f s to %llu stalls over 10 "
      "us (%llu over 1 ms, longest %.0f us)\n",
      quiet.lost_pct, quiet.seconds, static_cast<unsigned long long>(quiet.gaps_10us),
      static_cast<unsigned long long>(quiet.gaps_1ms), quiet.max_gap_us);
  std::fflush(stdout);
  std::vector<group> groups;
  hop_estimate hop;
  if (only.empty() || only == "roundtrip") {
    groups.push_back(measured([&] { return run_roundtrip(s, hop); }));
    print_group(groups.back());
  }
  if (only.empty() || only == "open_loop") {
    groups.push_back(measured([&] { return run_open_loop(s); }));
    print_group(groups.back());
  }
  if (only.empty() || only == "priority") {
    if (!hop.from_roundtrip) hop = measure_hop(s);
    groups.push_back(measured([&] { return run_priority(s, hop); }));
    print_group(groups.back());
  }
  if (only.empty() || only == "retry") {
    groups.push_back(measured([&] { return run_retry(s); }));
    print_group(groups.back());
  }
  if (only.empty() || only == "request") {
    groups.push_back(measured([&] { return run_request(s); }));
    print_group(groups.back());
  }
  progress = nullptr;
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  std::printf("\ntachyon_latency: done in %.1f s\n", wall_s);

  if (json != nullptr) {
    std::string out =
        "{" + bench::emulation_json_fields() +
        fmt("\"clock\":\"%s\",\"ns_per_tick\":%.6f,\"producer_cpu\":%d,\"consumer_cpu\":%d,"
            "\"quick\":%s,\"wall_s\":%.1f,\n \"noise\":{\"seconds\":%.2f,\"lost_pct\":%.2f,"
            "\"stalls_over_10us\":%llu,\"stalls_over_1ms\":%llu,\"longest_stall_us\":%.0f},\n "
            "\"groups\":[",
            clock_source, ns_per_tick, producer_cpu, consumer_cpu, s.quick ? "true" : "false",
            wall_s, quiet.seconds, quiet.lost_pct, static_cast<unsigned long long>(quiet.gaps_10us),
            static_cast<unsigned long long>(quiet.gaps_1ms), quiet.max_gap_us);
    for (std::size_t i = 0; i < groups.size(); ++i)
      out += (i ? ",\n  " : "\n  ") + group_json(groups[i]);
    out += "]}\n";
    FILE* f = std::fopen(json, "w");
    if (f == nullptr || std::fwrite(out.data(), 1, out.size(), f) != out.size() ||
        std::fclose(f) != 0) {
      std::fprintf(stderr, "tachyon_latency: cannot write %s\n", json);
      return 1;
    }
  }
  return 0;
}
