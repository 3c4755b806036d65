// tachyon/metrics.hpp — what a bus has carried, summed on demand from per-thread counters.
//
// Every thread that publishes or dispatches keeps its own cache-line-aligned counter rows,
// written only by itself with relaxed atomics (no locked instruction, no shared line on the
// hot path). bus::metrics() sums them. While the bus runs, a snapshot is a racy observation:
// its terms were read at slightly different moments. Once the bus is quiet (no publish in
// progress and nothing queued or running), the accounting equation holds exactly:
//
//   accepted = dispatched + failed + dead_lettered + expired + dropped + discarded
//              + conflated + displaced + in_flight
//
// where in_flight is measured independently (lane occupancy + events a dispatcher holds +
// events waiting in the timer). See event_counts for which outcome an event ends in.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <tachyon/registry.hpp>

namespace tachyon {

/// An accepted event ends in exactly one outcome, once every delivery of it (each
/// subscription's run, retries included) has settled:
///   expired        it never ran: its deadline (publish_options::deadline) passed first;
///   dead_lettered  else, if any delivery went to the dead letters;
///   failed         else, if any delivery failed for good (its retries exhausted, its breaker
///                  open under when_open::skip, its subscription removed before its retry);
///   discarded      else, if stop(discard) took it, or a retry of it, before it finished;
///   dispatched     else: every handler eventually ran without throwing (or none matched);
///   dropped        it never entered a lane (overflow::drop);
///   conflated      a newer event of its type with the same key (conflate_by) replaced it
///                  while it waited in its lane, and the handlers saw the newer one;
///   displaced      a newer event took its place in a full lane (overflow::drop_oldest).
/// Until then it is in flight: in a lane, in a dispatcher's hands, or waiting in the timer (a
/// pending retry, a delayed event). `retried`, `short_circuited`, `replayed` and
/// `handler_errors` count deliveries, not events. `rejected_full`, `rejected_stopped` and
/// `vetoed` and `journal_refused` count publishes that were refused: those events were never
/// accepted.
struct event_counts {
  std::uint64_t accepted = 0;          ///< taken by the bus: publish() returned ok or dropped,
                                       ///< plus every dispatch() call
  std::uint64_t dispatched = 0;        ///< every handler ran without throwing (or none matched)
  std::uint64_t failed = 0;            ///< a delivery failed for good (see above)
  std::uint64_t dropped = 0;           ///< discarded on a full lane under overflow::drop
  std::uint64_t discarded = 0;         ///< still queued (or waiting) at stop(stop_mode::discard)
  std::uint64_t rejected_full = 0;     ///< refused with result::full (not accepted)
  std::uint64_t rejected_stopped = 0;  ///< refused with result::stopped (not accepted)
  std::uint64_t handler_errors = 0;    ///< exceptions thrown by handlers, every attempt
  std::uint64_t dead_lettered = 0;     ///< a delivery of it went to the dead letters
  std::uint64_t expired = 0;           ///< its deadline passed before it ran
  std::uint64_t retried = 0;           ///< retries scheduled (deliveries, not events)
  std::uint64_t short_circuited = 0;   ///< deliveries an open breaker did not call
  std::uint64_t replayed = 0;          ///< dead letters replayed (not counted as accepted)
  std::uint64_t conflated = 0;         ///< replaced in its lane by a newer event with the same key
  std::uint64_t displaced = 0;         ///< pushed out of a full lane by a newer event (drop_oldest)
  std::uint64_t vetoed = 0;  ///< refused by an interceptor with result::vetoed (not accepted)
  std::uint64_t journal_refused = 0;  ///< refused with result::journal_failed (not accepted)

  /// accepted - (dispatched + failed + dead_lettered + expired + dropped + discarded +
  /// conflated + displaced): what
  /// the counters say is still in the bus. Compare with metrics_snapshot::in_flight, which is
  /// measured, not derived.
  std::int64_t unsettled() const noexcept {
    return static_cast<std::int64_t>(accepted) -
           static_cast<std::int64_t>(dispatched + failed + dead_lettered + expired + dropped +
                                     discarded + conflated + displaced);
  }
  event_counts& operator+=(const event_counts& o) noexcept;
};

/// A latency histogram (config::latency_histograms) summed over every dispatching thread,
/// in nanoseconds. Recorded in clock ticks by tachyon::histogram (buckets at most 1/32 wide,
/// relative to their values) and converted with tachyon::clock::ns_per_tick() here, so the
/// percentiles carry the histogram's resolution: each is its bucket's upper edge, never above
/// max_ns. All zero when the option is off or nothing was recorded.
struct latency_summary {
  /// The Prometheus `le` bounds, in nanoseconds: 100 ns .. 1 s, fixed, plus +Inf (= count).
  static constexpr std::array<std::uint64_t, 16> bounds_ns = {
      100,    250,     500,     1'000,   2'500,     5'000,      10'000,      25'000,
      50'000, 100'000, 250'000, 500'000, 1'000'000, 10'000'000, 100'000'000, 1'000'000'000};

  std::uint64_t count = 0;   ///< values recorded
  std::uint64_t sum_ns = 0;  ///< their sum
  std::uint64_t p50_ns = 0;
  std::uint64_t p90_ns = 0;
  std::uint64_t p99_ns = 0;
  std::uint64_t p999_ns = 0;  ///< the 99.9th percentile
  std::uint64_t max_ns = 0;
  /// Cumulative: values in histogram buckets whose lower edge is at or below bounds_ns[i]
  /// (so a value up to 1/32 above a bound may be counted under it). Non-decreasing, <= count.
  std::array<std::uint64_t, bounds_ns.size()> buckets{};
};

struct lane_metrics {
  priority lane = priority::normal;
  event_counts counts;
  std::uint64_t depth = 0;      ///< events queued now (snapshot; exact when quiet)
  std::uint64_t waiting = 0;    ///< events of this lane in the timer: a retry pending, delayed
  std::uint64_t in_flight = 0;  ///< depth + waiting + events a dispatcher holds (measured)
  std::uint32_t capacity = 0;   ///< config::lane_capacity
  /// From publish (meta::publish_ticks) to the start of the batch that ran the event, for the
  /// drained events of this lane that carry a stamp (config::timestamps).
  latency_summary queue_wait;
};

/// Per type, in flight is not measured separately (a lane holds several types): it is
/// counts.unsettled(), derived from the counters, exact once the bus is quiet.
struct type_metrics {
  std::string name;  ///< the C++ type's name, e.g. "app::Quote"
  event_counts counts;
  /// All of one drained event's handlers (and the release of its payload); dispatch() calls
  /// are not timed.
  latency_summary handler_time;
  /// A type registered with conflate_by: events published after its Keys slots were all
  /// taken, whose key had none; they were queued as events of any other type, unconflated.
  /// Always 0 for other types.
  std::uint64_t unconflated = 0;
};

/// A breaker's state (breaker_policy), as metrics and health report it.
enum class breaker_state : std::uint8_t { none, closed, open, half_open };
std::string_view to_string(breaker_state s) noexcept;

struct subscription_metrics {
  std::string name;
  std::string type;
  std::uint64_t errors = 0;           ///< exceptions its handler threw
  std::uint64_t retried = 0;          ///< retries scheduled
  std::uint64_t short_circuited = 0;  ///< deliveries its open breaker did not call
  std::uint64_t dead_lettered = 0;    ///< deliveries parked in the dead letters
  breaker_state breaker = breaker_state::none;
  /// subscribe_options::serial: whether it is serial, and how many of its calls found the
  /// handler running on another thread and waited for it (contention: its throughput is one
  /// thread's). Nested calls on the running thread do not wait and are not counted.
  bool serial = false;
  std::uint64_t serial_waits = 0;
};

struct metrics_snapshot {
  event_counts total;
  std::array<lane_metrics, priority_count> lanes{};
  std::vector<type_metrics> types;  ///< in registry order
  /// Events queued in the lanes plus events a dispatcher has dequeued and not finished: the
  /// sum of lanes[].in_flight.
  std::uint64_t in_flight = 0;
  std::uint64_t batches = 0;               ///< batches drained by workers and poll()/run_once()
  std::uint64_t batched_events = 0;        ///< events those batches held (mean = this / batches)
  std::uint64_t lane_allocations = 0;      ///< enqueues that had to grow a lane (see config)
  std::uint64_t parks = 0;                 ///< times an idle worker went to sleep
  std::uint64_t dead_letters = 0;          ///< entries in the dead letters now
  std::uint64_t dead_letters_evicted = 0;  ///< dropped, oldest first, from a full queue
  std::uint64_t timer_entries = 0;         ///< retries and delayed events waiting now
  /// Per subscription: its name, type and failure counts (handler calls that succeed are
  /// counted per type, not here). In subscription order.
  std::vector<subscription_metrics> subscriptions;
  std::uint32_t workers = 0;
  std::uint32_t threads = 0;  ///< threads that have touched the bus (counter blocks)
  /// config::latency_histograms: whether queue_wait and handler_time are recorded.
  bool latency_histograms = false;

  /// Prometheus text exposition format (version 0.0.4), metric names prefixed `prefix_`.
  /// With latency_histograms, two histogram families in seconds, every lane and type present
  /// (zero counts included): `prefix_queue_wait_seconds{lane}` and
  /// `prefix_handler_seconds{type}`, `le` from latency_summary::bounds_ns. Without it they
  /// are left out altogether rather than exported as empty histograms that look measured.
  /// Allocates; call it off the hot path.
  std::string to_prometheus(std::string_view prefix = "tachyon") const;
  /// One JSON object with every field above; a latency summary as {"count", "sum", "p50",
  /// "p90", "p99", "p999", "max"}, all but count in nanoseconds (no buckets). Allocates.
  std::string to_json() const;
};

}  // namespace tachyon
