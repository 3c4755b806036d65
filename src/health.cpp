// bus_core::health() and what it reports (tachyon/health.hpp): read from what the workers
// write for their own reasons, dated by sampling.
#include <tachyon/detail/bus_core.hpp>
#include <tachyon/detail/resilience/breaker.hpp>
#include <tachyon/health.hpp>

#include <string>

namespace tachyon {

std::string_view to_string(worker_state s) noexcept {
  switch (s) {
    case worker_state::idle:
      return "idle";
    case worker_state::parked:
      return "parked";
    case worker_state::running:
      return "running";
    case worker_state::stalled:
      return "stalled";
    case worker_state::exited:
      return "exited";
  }
  return "unknown";
}

namespace detail {

worker_health bus_core::observe_worker(std::uint32_t i, std::uint64_t now) {
  worker_health w;
  w.index = i;
  std::lock_guard lock(health_mutex_);
  health_samples_.resize(cfg_.workers);
  health_sample& s = health_samples_[i];
  // Acquire, paired with worker_main()'s release: the context's plain fields (its rows, read by
  // misc_row()) are whole. The relaxed loads below read values for a report, where any recent
  // value will do; none is read through (`calling` is only compared).
  thread_context* ctx = worker_ctx_[i].load(std::memory_order_acquire);
  if (ctx == nullptr) {  // returned (workers return only once the bus stops), or starting
    w.state = stopping_.load(std::memory_order_relaxed) ? worker_state::exited : worker_state::idle;
    s = {};
    return w;
  }
  w.batches = ctx->misc_row().v[m_batches].load(std::memory_order_relaxed);
  // In a batch while its reader epoch is announced (enter_dispatch .. exit_dispatch). The
  // acquire orders nothing this reads (only atomics, for their values): relaxed would do.
  if (ctx->reader.epoch.load(std::memory_order_acquire) == 0) {
    w.state =
        ctx->parked.load(std::memory_order_relaxed) ? worker_state::parked : worker_state::idle;
    s = {};
    return w;
  }
  if (!s.running || s.batches != w.batches) s = {w.batches, now, true};
  w.running_for = std::chrono::nanoseconds(now > s.since_ns ? now - s.since_ns : 0);
  w.state = w.running_for >= cfg_.stall_threshold ? worker_state::stalled : worker_state::running;
  w.lane = static_cast<priority>(batch_lane(ctx->batch_in_hand.load(std::memory_order_relaxed)));
  // The subscription it called last: named only if it is still subscribed (its state may be
  // gone otherwise; only its address is compared then).
  const subscription_state* calling = ctx->calling.load(std::memory_order_relaxed);
  for_each_subscription([&](const subscription_state& st) {
    if (&st != calling) return;
    w.subscription = st.name;
    w.type = st.type_label;
  });
  return w;
}

health_report bus_core::health() {
  health_report r;
  const std::uint64_t now = now_ns();
  r.stopping = stopping_.load(std::memory_order_relaxed);  // a report: any recent value
  for (std::uint32_t i = 0; i < cfg_.workers; ++i) {
    r.workers.push_back(observe_worker(i, now));
    const worker_state st = r.workers.back().state;
    if (st == worker_state::stalled) r.healthy = false;
  }
  for (unsigned l = 0; l < priority_count; ++l) {
    lane_health& lh = r.lanes[l];
    lh.lane = static_cast<priority>(l);
    lh.depth = front_occupancy(l);
    lh.capacity = lanes_[l].admission.capacity();
    lh.over_fill_warning =
        static_cast<double>(lh.depth) > cfg_.fill_warning * static_cast<double>(lh.capacity);
    if (lh.over_fill_warning) r.healthy = false;
  }
  for_each_subscription([&](const subscription_state& st) {
    // Relaxed: the breaker's state for a report, decoded from the word alone.
    const breaker_state b = breaker::report(st.breaker_word.load(std::memory_order_relaxed),
                                            st.breaker.failure_threshold != 0);
    if (b == breaker_state::open || b == breaker_state::half_open)
      r.breakers.push_back({st.name, st.type_label, b});
  });
  if (!r.breakers.empty()) r.healthy = false;
  r.dead_letters = dead_letters_.size();
  if (r.dead_letters != 0) r.healthy = false;
  r.timer_entries = timers_.size();
  return r;
}

}  // namespace detail

namespace {

std::string escaped(std::string_view s, bool json) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    if (json && static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

std::string health_report::to_json() const {
  std::string out = std::string("{\"healthy\":") + (healthy ? "true" : "false") +
                    ",\"stopping\":" + (stopping ? "true" : "false") + ",\"workers\":[";
  for (std::size_t i = 0; i < workers.size(); ++i) {
    const auto& w = workers[i];
    if (i) out += ",";
    out += "{\"index\":" + std::to_string(w.index) + ",\"state\":\"" +
           std::string(to_string(w.state)) + "\",\"lane\":\"" + std::string(to_string(w.lane)) +
           "\",\"subscription\":\"" + escaped(w.subscription, true) + "\",\"type\":\"" +
           escaped(w.type, true) + "\",\"running_ns\":" + std::to_string(w.running_for.count()) +
           ",\"batches\":" + std::to_string(w.batches) + "}";
  }
  out += "],\"lanes\":[";
  for (std::size_t i = 0; i < lanes.size(); ++i) {
    const auto& l = lanes[i];
    if (i) out += ",";
    out += "{\"lane\":\"" + std::string(to_string(l.lane)) +
           "\",\"depth\":" + std::to_string(l.depth) +
           ",\"capacity\":" + std::to_string(l.capacity) +
           ",\"over_fill_warning\":" + (l.over_fill_warning ? "true" : "false") + "}";
  }
  out += "],\"breakers\":[";
  for (std::size_t i = 0; i < breakers.size(); ++i) {
    if (i) out += ",";
    out += "{\"subscription\":\"" + escaped(breakers[i].subscription, true) + "\",\"type\":\"" +
           escaped(breakers[i].type, true) + "\",\"state\":\"" +
           std::string(to_string(breakers[i].state)) + "\"}";
  }
  out += "],\"dead_letters\":" + std::to_string(dead_letters) +
         ",\"timer_entries\":" + std::to_string(timer_entries) + "}";
  return out;
}

std::string health_report::to_prometheus(std::string_view prefix) const {
  const std::string p(prefix);
  std::string out;
  auto family = [&](const std::string& name, const char* type, const char* help) {
    out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  };
  family(p + "_healthy", "gauge",
         "1 when no worker is stalled, no lane over its fill warning, "
         "no breaker open and no dead letters.");
  out += p + "_healthy " + (healthy ? "1" : "0") + "\n";
  family(p + "_worker_state", "gauge", "1 for each worker's current state.");
  for (const auto& w : workers)
    for (auto st : {worker_state::idle, worker_state::parked, worker_state::running,
                    worker_state::stalled, worker_state::exited})
      out += p + "_worker_state{worker=\"" + std::to_string(w.index) + "\",state=\"" +
             std::string(to_string(st)) + "\"} " + (w.state == st ? "1" : "0") + "\n";
  family(p + "_worker_running_seconds", "gauge",
         "How long each worker has been in its current batch (0 when not in one).");
  for (const auto& w : workers) {
    const auto ns = static_cast<std::uint64_t>(w.running_for.count());
    std::string frac = std::to_string(ns % 1'000'000'000);
    frac.insert(0, 9 - frac.size(), '0');
    out += p + "_worker_running_seconds{worker=\"" + std::to_string(w.index) + "\"} " +
           std::to_string(ns / 1'000'000'000) + "." + frac + "\n";
  }
  family(p + "_lane_over_fill", "gauge", "1 when the lane is above its fill warning.");
  for (const auto& l : lanes)
    out += p + "_lane_over_fill{lane=\"" + std::string(to_string(l.lane)) + "\"} " +
           (l.over_fill_warning ? "1" : "0") + "\n";
  family(p + "_breaker_open", "gauge", "1 for each subscription whose breaker is not closed.");
  for (const auto& b : breakers)
    out += p + "_breaker_open{subscription=\"" + escaped(b.subscription, false) + "\",state=\"" +
           std::string(to_string(b.state)) + "\"} 1\n";
  family(p + "_health_dead_letters", "gauge", "Entries in the dead letters.");
  out += p + "_health_dead_letters " + std::to_string(dead_letters) + "\n";
  return out;
}

}  // namespace tachyon
