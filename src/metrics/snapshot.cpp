// bus_core::metrics(): every thread's counter rows and histograms summed into a snapshot.
#include <tachyon/detail/bus_core.hpp>
#include <tachyon/detail/resilience/breaker.hpp>
#include <tachyon/detail/subscription/serial_gate.hpp>

#include <cmath>
#include <vector>

#include "metrics/latency_set.hpp"

namespace tachyon::detail {

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
  for (std::size_t t = 0; t < types_.count; ++t) s.types[t].name = std::string(types_.ops[t].name);
  auto read = [](const counter_row& r) {  // one field per outcome (metrics/outcomes.hpp)
    event_counts c;
    for (const auto& o : outcomes) c.*o.field = r.v[o.kind].load(std::memory_order_relaxed);
    return c;
  };
  // An event in flight moves from the lane (admitted, not yet out: depth) into a worker's hand
  // (batch_in_hand), maybe into the timer (parked, not yet unparked), and into an outcome
  // count. Each move writes where the event goes before where it leaves (a release store) so
  // that a snapshot that reads the places in the reverse order (acquire loads) finds it at least
  // once, perhaps twice, while the bus runs: done (in front_occupancy), then every context's
  // batch_in_hand, unparked, parked, and last the outcome counts. Exact when the bus is quiet.
  std::array<std::uint64_t, priority_count> depth{};
  for (unsigned l = 0; l < priority_count; ++l) depth[l] = front_occupancy(l);
  for (auto* c = contexts_.first(); c != nullptr; c = c->next) {
    const std::uint32_t held = c->batch_in_hand.load(std::memory_order_acquire);
    s.lanes[batch_lane(held)].in_flight += batch_size(held);
  }
  // Per lane: events that went to wait in the timer, and those of them that settled since.
  std::array<std::uint64_t, priority_count> parked{}, unparked{};
  for (auto* c = contexts_.first(); c != nullptr; c = c->next)
    for (unsigned l = 0; l < priority_count; ++l)
      unparked[l] += c->lane_row(l).v[c_unparked].load(std::memory_order_acquire);
  // Relaxed: an event leaves the timer through `unparked`, read above; nothing read below has
  // to come after this. So are the counts below (outcomes, read last).
  for (auto* c = contexts_.first(); c != nullptr; c = c->next)
    for (unsigned l = 0; l < priority_count; ++l)
      parked[l] += c->lane_row(l).v[c_parked].load(std::memory_order_relaxed);
  for (auto* c = contexts_.first(); c != nullptr; c = c->next) {
    ++s.threads;
    for (unsigned l = 0; l < priority_count; ++l) {
      s.lanes[l].counts += read(c->lane_row(l));
      // Admitted through the front door (publish, publish_batch): see commit().
      s.lanes[l].counts.accepted += c->credits[l].used.load(std::memory_order_relaxed);
    }
    for (std::size_t t = 0; t < types_.count; ++t) {
      s.types[t].counts += read(c->type_row(t));
      s.types[t].unconflated += c->type_row(t).v[c_unconflated].load(std::memory_order_relaxed);
      const std::uint64_t sync = c->sync_ok(t).load(std::memory_order_relaxed);
      for (event_counts* e : {&s.types[t].counts, &s.lanes[types_.ops[t].lane].counts}) {
        e->accepted += sync;
        e->dispatched += sync;
      }
    }
    const counter_row& misc = c->misc_row();
    s.batches += misc.v[m_batches].load(std::memory_order_relaxed);
    s.batched_events += misc.v[m_batched_events].load(std::memory_order_relaxed);
    s.lane_allocations += misc.v[m_lane_allocations].load(std::memory_order_relaxed);
    s.parks += misc.v[m_parks].load(std::memory_order_relaxed);
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
    lm.depth = depth[l];
    lm.waiting = parked[l] > unparked[l] ? parked[l] - unparked[l] : 0;
    lm.in_flight += lm.depth + lm.waiting;
    s.in_flight += lm.in_flight;
    s.total += lm.counts;
  }
  s.dead_letters = dead_letters_.size();
  s.dead_letters_evicted = dead_letters_.evicted();
  s.timer_entries = timers_.size();
  for_each_subscription([&](const subscription_state& st) {
    subscription_metrics m;
    m.name = st.name;
    m.type = st.type_label;
    m.errors = st.errors.load(std::memory_order_relaxed);
    m.retried = st.retried.load(std::memory_order_relaxed);
    m.short_circuited = st.short_circuited.load(std::memory_order_relaxed);
    m.dead_lettered = st.dead_lettered.load(std::memory_order_relaxed);
    m.breaker = breaker::report(st.breaker_word.load(std::memory_order_relaxed),
                                st.breaker.failure_threshold != 0);
    m.serial = st.serial;
    m.serial_waits = st.gate != nullptr ? st.gate->waits() : 0;
    s.subscriptions.push_back(std::move(m));
  });
  return s;
}

}  // namespace tachyon::detail
