// tachyon/detail/metrics/outcomes.hpp — the one table of event outcomes.
//
// Each outcome is named here once: its counter kind (the slot in a thread's counter row that
// the hot paths bump), its name (the JSON key and the Prometheus `outcome` label value) and
// its field in tachyon::event_counts. The counting code (detail/context/thread_context.hpp),
// the snapshot (bus_core::metrics) and the exposition (src/metrics/exposition.cpp) all read
// this table, so adding an outcome is one row here and one field in event_counts.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <tachyon/metrics.hpp>

namespace tachyon::detail {

/// Counter kinds: the slots of one counter row.
enum counter : std::uint8_t {
  c_accepted,
  c_dispatched,
  c_failed,
  c_dropped,
  c_discarded,
  c_rejected_full,
  c_rejected_stopped,
  c_handler_errors,
  c_dead_lettered,
  c_expired,
  c_retried,
  c_short_circuited,
  c_replayed,
  c_conflated,
  c_displaced,
  c_vetoed,
  c_journal_refused,
  // Not in event_counts: events that left the lanes for the timer (a retry pending, or a
  // delayed event), and those of them that settled since. Their difference is in flight.
  c_parked,
  c_unparked,
  // Not in event_counts either, and in type rows only: publishes of a conflated type whose key
  // found no slot (conflate_by's Keys were all taken), queued unconflated.
  c_unconflated,
  counter_kinds
};
/// The slots of a counter row (four cache lines): counter_kinds, rounded up to a power of two
/// (sync_ok() divides by it).
inline constexpr std::size_t row_slots = 32;
static_assert(counter_kinds <= row_slots, "tachyon: the counter kinds fit a row");

/// The misc row's slots: per-thread counts that are not event outcomes.
enum misc_counter : std::uint8_t { m_batches, m_batched_events, m_lane_allocations, m_parks };

struct outcome {
  counter kind;
  /// Its key in to_json()'s counts objects and the value of the `outcome` label in
  /// to_prometheus(); what it counts is said at its event_counts field.
  std::string_view name;
  std::uint64_t event_counts::*field;
};

inline constexpr std::array<outcome, c_parked> outcomes = {{
    {c_accepted, "accepted", &event_counts::accepted},
    {c_dispatched, "dispatched", &event_counts::dispatched},
    {c_failed, "failed", &event_counts::failed},
    {c_dropped, "dropped", &event_counts::dropped},
    {c_discarded, "discarded", &event_counts::discarded},
    {c_rejected_full, "rejected_full", &event_counts::rejected_full},
    {c_rejected_stopped, "rejected_stopped", &event_counts::rejected_stopped},
    {c_handler_errors, "handler_errors", &event_counts::handler_errors},
    {c_dead_lettered, "dead_lettered", &event_counts::dead_lettered},
    {c_expired, "expired", &event_counts::expired},
    {c_retried, "retried", &event_counts::retried},
    {c_short_circuited, "short_circuited", &event_counts::short_circuited},
    {c_replayed, "replayed", &event_counts::replayed},
    {c_conflated, "conflated", &event_counts::conflated},
    {c_displaced, "displaced", &event_counts::displaced},
    {c_vetoed, "vetoed", &event_counts::vetoed},
    {c_journal_refused, "journal_refused", &event_counts::journal_refused},
}};

/// Row i of the table is counter kind i: the counting code indexes rows by kind.
constexpr bool outcomes_in_kind_order() noexcept {
  for (std::size_t i = 0; i < outcomes.size(); ++i)
    if (outcomes[i].kind != i) return false;
  return true;
}
static_assert(outcomes_in_kind_order(), "tachyon: outcomes[] must list the counter kinds in order");
static_assert(sizeof(event_counts) == outcomes.size() * sizeof(std::uint64_t),
              "tachyon: every field of event_counts is an outcome in outcomes[]");

}  // namespace tachyon::detail
