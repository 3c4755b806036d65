// metrics_snapshot exposition: Prometheus text format 0.0.4 and JSON. The outcomes and their
// names come from the one table, detail/metrics/outcomes.hpp.
#include <tachyon/detail/metrics/outcomes.hpp>
#include <tachyon/metrics.hpp>

#include <algorithm>
#include <iterator>
#include <string>

namespace tachyon {

std::string_view to_string(breaker_state s) noexcept {
  switch (s) {
    case breaker_state::none:
      return "none";
    case breaker_state::closed:
      return "closed";
    case breaker_state::open:
      return "open";
    case breaker_state::half_open:
      return "half_open";
  }
  return "unknown";
}

event_counts& event_counts::operator+=(const event_counts& o) noexcept {
  for (const auto& k : detail::outcomes) this->*k.field += o.*k.field;
  return *this;
}

namespace {

using detail::outcomes;

// Label values escape backslash, double quote and newline (exposition format rules).
std::string label_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string json_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static const char hex[] = "0123456789abcdef";
          out += "\\u00";
          out += hex[(c >> 4) & 0xf];
          out += hex[c & 0xf];
        } else {
          out += c;
        }
    }
  }
  return out;
}

void header(std::string& out, const std::string& name, const char* type, const char* help) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void sample(std::string& out, const std::string& name, const std::string& labels, std::uint64_t v) {
  out += name;
  if (!labels.empty()) out += "{" + labels + "}";
  out += " " + std::to_string(v) + "\n";
}

// latency_summary::bounds_ns in seconds, as Prometheus clients print `le` (Go's %g).
constexpr const char* le_seconds[] = {"1e-07", "2.5e-07", "5e-07", "1e-06",  "2.5e-06", "5e-06",
                                      "1e-05", "2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005",
                                      "0.001", "0.01",    "0.1",   "1"};
static_assert(std::size(le_seconds) == latency_summary::bounds_ns.size());

// Nanoseconds as exact decimal seconds: 1234567 -> "0.001234567", 2000000000 -> "2".
std::string seconds(std::uint64_t ns) {
  std::string out = std::to_string(ns / 1'000'000'000);
  std::uint64_t frac = ns % 1'000'000'000;
  if (frac == 0) return out;
  std::string digits = std::to_string(frac);
  digits.insert(0, 9 - digits.size(), '0');
  digits.erase(digits.find_last_not_of('0') + 1);
  return out + "." + digits;
}

// One histogram series: _bucket per `le`, +Inf, _sum (seconds), _count.
void histogram_samples(std::string& out, const std::string& name, const std::string& labels,
                       const latency_summary& s) {
  for (std::size_t i = 0; i < s.buckets.size(); ++i)
    sample(out, name + "_bucket", labels + ",le=\"" + le_seconds[i] + "\"", s.buckets[i]);
  sample(out, name + "_bucket", labels + ",le=\"+Inf\"", s.count);
  out += name + "_sum{" + labels + "} " + seconds(s.sum_ns) + "\n";
  sample(out, name + "_count", labels, s.count);
}

std::string summary_json(const latency_summary& s) {
  return "{\"count\":" + std::to_string(s.count) + ",\"sum\":" + std::to_string(s.sum_ns) +
         ",\"p50\":" + std::to_string(s.p50_ns) + ",\"p90\":" + std::to_string(s.p90_ns) +
         ",\"p99\":" + std::to_string(s.p99_ns) + ",\"p999\":" + std::to_string(s.p999_ns) +
         ",\"max\":" + std::to_string(s.max_ns) + "}";
}

std::string counts_json(const event_counts& c) {
  std::string out = "{";
  bool first = true;
  for (const auto& o : outcomes) {
    if (!first) out += ",";
    first = false;
    out += "\"" + std::string(o.name) + "\":" + std::to_string(c.*o.field);
  }
  return out + "}";
}

}  // namespace

std::string metrics_snapshot::to_prometheus(std::string_view prefix) const {
  const std::string p(prefix);
  std::string out;

  const std::string events = p + "_events_total";
  header(out, events, "counter",
         "Events by lane and outcome; retried, short_circuited, replayed and handler_errors "
         "count deliveries; rejected_full, rejected_stopped, vetoed and journal_refused were never "
         "accepted.");
  for (const auto& l : lanes)
    for (const auto& o : outcomes)
      sample(
          out, events,
          "lane=\"" + std::string(to_string(l.lane)) + "\",outcome=\"" + std::string(o.name) + "\"",
          l.counts.*o.field);

  const std::string typed = p + "_type_events_total";
  header(out, typed, "counter", "Events by event type and outcome.");
  for (const auto& t : types)
    for (const auto& o : outcomes)
      sample(out, typed,
             "type=\"" + label_escape(t.name) + "\",outcome=\"" + std::string(o.name) + "\"",
             t.counts.*o.field);

  const std::string unconflated = p + "_type_unconflated_total";
  header(out, unconflated, "counter",
         "Events of a conflated type queued unconflated: their key found no slot (conflate_by's "
         "Keys were all taken).");
  for (const auto& t : types)
    sample(out, unconflated, "type=\"" + label_escape(t.name) + "\"", t.unconflated);

  const std::string depth = p + "_lane_depth";
  header(out, depth, "gauge", "Events queued in the lane (snapshot).");
  for (const auto& l : lanes)
    sample(out, depth, "lane=\"" + std::string(to_string(l.lane)) + "\"", l.depth);
  const std::string lane_flight = p + "_lane_in_flight";
  header(out, lane_flight, "gauge",
         "Events queued in or being dispatched from the lane (snapshot).");
  for (const auto& l : lanes)
    sample(out, lane_flight, "lane=\"" + std::string(to_string(l.lane)) + "\"", l.in_flight);
  const std::string waiting = p + "_lane_waiting";
  header(out, waiting, "gauge",
         "Events of the lane waiting in the timer: a retry pending, or delayed (snapshot).");
  for (const auto& l : lanes)
    sample(out, waiting, "lane=\"" + std::string(to_string(l.lane)) + "\"", l.waiting);
  const std::string cap = p + "_lane_capacity";
  header(out, cap, "gauge", "Configured capacity of each lane.");
  for (const auto& l : lanes)
    sample(out, cap, "lane=\"" + std::string(to_string(l.lane)) + "\"", l.capacity);

  struct scalar {
    const char* suffix;
    const char* type;
    const char* help;
    std::uint64_t value;
  };
  const scalar scalars[] = {
      {"_in_flight", "gauge", "Events queued or being dispatched (snapshot).", in_flight},
      {"_batches_total", "counter", "Batches drained.", batches},
      {"_batched_events_total", "counter", "Events in drained batches.", batched_events},
      {"_lane_allocations_total", "counter",
       "Enqueues that grew a lane beyond its reserved memory.", lane_allocations},
      {"_parks_total", "counter", "Times an idle worker went to sleep.", parks},
      {"_workers", "gauge", "Worker threads.", workers},
      {"_threads", "gauge", "Threads with counter blocks on this bus.", threads},
      {"_dead_letters", "gauge", "Entries in the dead-letter queue (snapshot).", dead_letters},
      {"_dead_letters_evicted_total", "counter",
       "Dead letters dropped, oldest first, from a full queue.", dead_letters_evicted},
      {"_timer_entries", "gauge", "Retries and delayed events waiting in the timer (snapshot).",
       timer_entries},
  };
  for (const auto& s : scalars) {
    header(out, p + s.suffix, s.type, s.help);
    sample(out, p + s.suffix, "", s.value);
  }

  const std::string sub_failures = p + "_subscription_deliveries_total";
  header(out, sub_failures, "counter",
         "Failed deliveries by subscription: errors thrown, retries scheduled, short circuits, "
         "dead letters.");
  for (const auto& m : subscriptions) {
    const std::string labels = "subscription=\"" + label_escape(m.name) + "\",type=\"" +
                               label_escape(m.type) + "\",kind=\"";
    sample(out, sub_failures, labels + "error\"", m.errors);
    sample(out, sub_failures, labels + "retried\"", m.retried);
    sample(out, sub_failures, labels + "short_circuited\"", m.short_circuited);
    sample(out, sub_failures, labels + "dead_lettered\"", m.dead_lettered);
  }
  // Only when a subscription is serial: the family is left out rather than exported empty for
  // a feature not in use.
  if (std::any_of(subscriptions.begin(), subscriptions.end(),
                  [](const subscription_metrics& m) { return m.serial; })) {
    const std::string serial_waits = p + "_subscription_serial_waits_total";
    header(out, serial_waits, "counter",
           "Calls of a serial handler that found it running on another thread and waited, by "
           "serial subscription.");
    for (const auto& m : subscriptions) {
      if (!m.serial) continue;
      sample(out, serial_waits,
             "subscription=\"" + label_escape(m.name) + "\",type=\"" + label_escape(m.type) + "\"",
             m.serial_waits);
    }
  }
  const std::string breakers = p + "_subscription_breaker_state";
  header(out, breakers, "gauge",
         "1 for the breaker's current state (closed, open, half_open), by subscription with a "
         "breaker.");
  for (const auto& m : subscriptions) {
    if (m.breaker == breaker_state::none) continue;
    for (auto st : {breaker_state::closed, breaker_state::open, breaker_state::half_open})
      sample(out, breakers,
             "subscription=\"" + label_escape(m.name) + "\",state=\"" + std::string(to_string(st)) +
                 "\"",
             m.breaker == st ? 1 : 0);
  }

  // Without config::latency_histograms nothing was measured: the families are left out, not
  // exported as empty histograms that would read as "no latency".
  if (!latency_histograms) return out;
  const std::string wait = p + "_queue_wait_seconds";
  header(out, wait, "histogram",
         "Time from publish to the start of the batch that ran the event, by lane.");
  for (const auto& l : lanes)
    histogram_samples(out, wait, "lane=\"" + std::string(to_string(l.lane)) + "\"", l.queue_wait);
  const std::string handler = p + "_handler_seconds";
  header(out, handler, "histogram", "Time to run all handlers of one event, by event type.");
  for (const auto& t : types)
    histogram_samples(out, handler, "type=\"" + label_escape(t.name) + "\"", t.handler_time);
  return out;
}

std::string metrics_snapshot::to_json() const {
  std::string out = "{\"total\":" + counts_json(total) + ",\"lanes\":[";
  for (std::size_t i = 0; i < lanes.size(); ++i) {
    const auto& l = lanes[i];
    if (i) out += ",";
    out += "{\"lane\":\"" + std::string(to_string(l.lane)) +
           "\",\"depth\":" + std::to_string(l.depth) + ",\"waiting\":" + std::to_string(l.waiting) +
           ",\"in_flight\":" + std::to_string(l.in_flight) +
           ",\"capacity\":" + std::to_string(l.capacity) + ",\"counts\":" + counts_json(l.counts) +
           ",\"queue_wait\":" + summary_json(l.queue_wait) + "}";
  }
  out += "],\"types\":[";
  for (std::size_t i = 0; i < types.size(); ++i) {
    if (i) out += ",";
    out += "{\"name\":\"" + json_escape(types[i].name) +
           "\",\"counts\":" + counts_json(types[i].counts) +
           ",\"handler_time\":" + summary_json(types[i].handler_time) +
           ",\"unconflated\":" + std::to_string(types[i].unconflated) + "}";
  }
  out += "],\"subscriptions\":[";
  for (std::size_t i = 0; i < subscriptions.size(); ++i) {
    const auto& m = subscriptions[i];
    if (i) out += ",";
    out += "{\"name\":\"" + json_escape(m.name) + "\",\"type\":\"" + json_escape(m.type) +
           "\",\"errors\":" + std::to_string(m.errors) +
           ",\"retried\":" + std::to_string(m.retried) +
           ",\"short_circuited\":" + std::to_string(m.short_circuited) +
           ",\"dead_lettered\":" + std::to_string(m.dead_lettered) + ",\"breaker\":\"" +
           std::string(to_string(m.breaker)) + "\",\"serial\":" + (m.serial ? "true" : "false") +
           ",\"serial_waits\":" + std::to_string(m.serial_waits) + "}";
  }
  out += "],\"dead_letters\":" + std::to_string(dead_letters) +
         ",\"dead_letters_evicted\":" + std::to_string(dead_letters_evicted) +
         ",\"timer_entries\":" + std::to_string(timer_entries) +
         ",\"in_flight\":" + std::to_string(in_flight) + ",\"batches\":" + std::to_string(batches) +
         ",\"batched_events\":" + std::to_string(batched_events) +
         ",\"lane_allocations\":" + std::to_string(lane_allocations) +
         ",\"parks\":" + std::to_string(parks) + ",\"workers\":" + std::to_string(workers) +
         ",\"threads\":" + std::to_string(threads) +
         ",\"latency_histograms\":" + (latency_histograms ? "true" : "false") + "}";
  return out;
}

}  // namespace tachyon
