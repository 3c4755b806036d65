// What the crash tests' child (journal_child.cpp) and parent (test_crash.cpp) share: the events
// the child publishes, each recognisable from its fields alone, and the shared memory through
// which the child says which of them publish() acknowledged.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "journal/journal_types.hpp"

namespace jc {

inline constexpr std::size_t max_threads = 4;
inline constexpr std::size_t max_results = 1u << 16;  // mode=full: one result per event id
inline constexpr std::uint8_t not_published = 0xff;

/// A file the parent creates and both map (MAP_SHARED). The child only ever raises the
/// counters, each with a release store after the fact it announces.
struct shared {
  /// Per publishing thread: publish() returned ok for its events 0 .. acked - 1 (its ids
  /// count 0, 1, 2, ...; stored after each ok, so the last acknowledged id is acked - 1).
  std::atomic<std::uint64_t> acked[max_threads];
  std::atomic<std::uint64_t> run_id;  // the latest bus's journal_run_id()
  std::atomic<std::uint32_t> runs;    // buses constructed (mode=cycle: one per cycle)
  std::atomic<std::uint32_t> phase;   // mode=full: 1 refusing (waits for `go` without a limit)
  std::atomic<std::uint32_t> go;      // mode=full: set by the parent once it freed space
  std::atomic<std::uint32_t> done;    // the child finished what it was asked and wrote below
  // mode=full, written before `done`:
  std::uint64_t ok, refused, other;  // publish() results of its events
  std::uint64_t stats_records, stats_outcomes, stats_refused, stats_outcomes_lost;
  std::uint64_t metric_refused, metric_accepted;
  char last_error[1024];
  char error[1024];  // why the child gave up (bus construction, an unexpected result)
  std::uint8_t result[max_results];  // mode=full: static_cast<uint8_t>(result) per event id
};

/// Thread t's event k: a codec'd Order every fourth (its note's length varies, so records do,
/// and segment rolls land anywhere), a raw Tick otherwise.
inline bool is_order(std::uint64_t k) { return k % 4 == 3; }
inline jt::Tick tick(std::uint32_t t, std::uint64_t k) {
  return jt::Tick{std::uint64_t{t} << 48 | k, 0.25 * static_cast<double>(k) + t};
}
inline jt::Order order(std::uint32_t t, std::uint64_t k) {
  return jt::Order{"t" + std::to_string(t) + "-" + std::to_string(k), static_cast<std::uint32_t>(k),
                   std::string(k % 41, static_cast<char>('a' + t))};
}

/// Publishes thread t's event k.
template <class Bus>
tachyon::result publish(Bus& bus, std::uint32_t t, std::uint64_t k) {
  return is_order(k) ? bus.publish(order(t, k)) : bus.publish(tick(t, k));
}

struct event_id {
  std::uint32_t thread;
  std::uint64_t k;
  friend bool operator==(const event_id&, const event_id&) = default;
  friend bool operator<(const event_id& a, const event_id& b) {
    return a.thread != b.thread ? a.thread < b.thread : a.k < b.k;
  }
};

/// Which event a record holds, if it is one of publish()'s, whole and with every field as
/// published; nullopt for anything else (a wrong field, a Tick where an Order belongs).
inline std::optional<event_id> identify(const tachyon::journal_record& r) {
  if (r.is<jt::Tick>()) {
    const jt::Tick t = r.decode<jt::Tick>();
    const event_id id{static_cast<std::uint32_t>(t.id >> 48), t.id & ((1ull << 48) - 1)};
    if (id.thread >= max_threads || is_order(id.k) || t.px != tick(id.thread, id.k).px)
      return std::nullopt;
    return id;
  }
  if (r.is<jt::Order>()) {
    const jt::Order o = r.decode<jt::Order>();
    const auto dash = o.sku.find('-');
    if (o.sku.size() < 3 || o.sku[0] != 't' || dash == std::string::npos) return std::nullopt;
    const event_id id{static_cast<std::uint32_t>(std::stoul(o.sku.substr(1, dash - 1))), o.qty};
    if (id.thread >= max_threads || !is_order(id.k)) return std::nullopt;
    const jt::Order want = order(id.thread, id.k);
    if (o.sku != want.sku || o.note != want.note) return std::nullopt;
    return id;
  }
  return std::nullopt;
}

}  // namespace jc
