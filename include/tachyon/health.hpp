// tachyon/health.hpp — what bus::health() and a timed bus::stop() report: per worker, whether
// it is idle, parked, running a handler (which subscription, since when) or stalled; lanes
// above their fill warning; open breakers; dead letters present.
//
// health() reads only what workers already write for their own reasons (their reader epoch,
// the batch they hold, their batch count, the subscription they are calling, a parked flag
// set on the way to sleep): no extra shared write per event. "Since when" is sampled: a
// worker's run is dated from the first health() call that saw it in its current batch (a
// batch count that has not moved), so a stall shows on the first call at least
// config::stall_threshold after the one that first saw it. Call it periodically (a watchdog).
// Times are on the bus's time source (bus::now()).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <tachyon/metrics.hpp>
#include <tachyon/registry.hpp>

namespace tachyon {

enum class worker_state : std::uint8_t {
  idle,     ///< polling for work (or still starting)
  parked,   ///< asleep until work (or a timer) arrives
  running,  ///< inside a batch, for less than config::stall_threshold
  stalled,  ///< inside one batch for config::stall_threshold or longer
  exited,   ///< returned: the bus is stopping
};
std::string_view to_string(worker_state s) noexcept;

struct worker_health {
  std::uint32_t index = 0;  ///< tachyon-w<index>
  worker_state state = worker_state::idle;
  /// While running or stalled: the lane of its batch, the subscription it is calling (its
  /// name; empty between handlers, or if it was removed meanwhile) and that subscription's
  /// event type, and how long it has been in this batch (a lower bound; see above).
  priority lane = priority::normal;
  std::string subscription;
  std::string type;
  std::chrono::nanoseconds running_for{0};
  std::uint64_t batches = 0;  ///< batches it has drained
};

struct lane_health {
  priority lane = priority::normal;
  std::uint64_t depth = 0;
  std::uint32_t capacity = 0;
  bool over_fill_warning = false;  ///< depth > config::fill_warning x capacity
};

struct breaker_health {
  std::string subscription;
  std::string type;
  breaker_state state = breaker_state::none;
};

struct health_report {
  /// No worker stalled, no lane over its fill warning, no breaker open or half-open, no dead
  /// letters.
  bool healthy = true;
  bool stopping = false;
  std::vector<worker_health> workers;
  std::array<lane_health, priority_count> lanes{};
  std::vector<breaker_health> breakers;  ///< those not closed
  std::uint64_t dead_letters = 0;
  std::uint64_t timer_entries = 0;

  /// One JSON object with every field above.
  std::string to_json() const;
  /// Prometheus text format: `prefix_healthy`, `prefix_worker_state{worker,state}` (1 for
  /// the current state), `prefix_worker_running_seconds{worker}`, `prefix_lane_over_fill{lane}`,
  /// `prefix_breaker_open{subscription,state}`, `prefix_health_dead_letters`.
  std::string to_prometheus(std::string_view prefix = "tachyon") const;
};

/// What stop(mode, timeout) did.
struct stop_report {
  /// Every worker returned in time and everything accepted has settled (as the mode says).
  bool complete = false;
  std::uint64_t discarded = 0;  ///< as stop(mode) returns
  /// Events not settled when it returned (metrics_snapshot::in_flight then).
  std::uint64_t unsettled = 0;
  /// Workers still inside a handler when the time ran out: where they are and since when.
  std::vector<worker_health> stuck;
};

}  // namespace tachyon
