// tests/model/reference_model.hpp — a reference model of one bus in manual mode
// (config::workers = 0, one thread does everything), for the differential test
// (tests/model/differential.cpp).
//
// The model is meant to be obviously correct rather than fast: plain containers, no atomics,
// every rule in one place with a comment naming where it is documented. It knows nothing of
// payloads or handlers: an event is an id and a type, and a subscription's handler is
// described by two functions the caller provides (does its filter pass this event; does it
// throw on this event at this attempt), which the caller's real handlers also obey.
//
// What it covers: publish (with lane, correlation id, deadline, not_before,
// dead_letter_expired, under overflow::fail, drop and drop_oldest), publish_batch, dispatch(),
// subscribe (order, filter, name, retry, breaker with or without a `counts` predicate,
// dead_letters), unsubscribe, run_once, poll, the virtual clock, replay and clearing of dead
// letters, stop(drain) and stop(discard), the error hook, and every counter of metrics() but
// latency histograms, lane_allocations and threads. Where the headers are silent, it mirrors
// the implementation; each such place says "mirrors".
//
// What it leaves out: workers and any second thread (nothing concurrent), overflow::block,
// handlers that call into the bus (publish, subscribe, unsubscribe, stop, dispatch from inside
// a handler), filters, hooks and `counts` predicates that throw, out-of-memory paths,
// config::timestamps (meta::publish_ticks) and the error hook's payload beyond the event's id.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <tachyon/config.hpp>
#include <tachyon/meta.hpp>
#include <tachyon/metrics.hpp>
#include <tachyon/resilience.hpp>
#include <tachyon/result.hpp>
#include <tachyon/stop_mode.hpp>

namespace tachyon_model {

using u64 = std::uint64_t;
inline constexpr unsigned lane_count = 4;

/// What a handler does for one event at one attempt.
struct handler_fate {
  bool threw = false;
  bool counts = true;  // for the breaker's `counts` predicate (when the subscription has one)
  std::string what;    // the exception's what()
};

/// One thing the handlers and the error hook saw, in the order they saw it.
struct call {
  char kind = 'H';  // 'H': a handler ran; 'E': the error hook was called
  std::string subscription;
  u64 event_id = 0;
  unsigned type = 0;
  unsigned lane = 0;
  unsigned attempt = 0;
  unsigned flags = 0;
  u64 correlation_id = 0;
  u64 sequence = 0;
  bool operator==(const call&) const = default;
};
std::string to_string(const call& c);

/// A dead letter as visit_dead_letters() shows it.
struct dead_letter_view {
  u64 id = 0;
  u64 event_id = 0;
  unsigned type = 0;
  unsigned lane = 0;
  u64 correlation_id = 0;
  u64 sequence = 0;
  std::string subscription;
  std::uint32_t attempts = 0;
  std::string what;
  u64 when_ns = 0;
  bool operator==(const dead_letter_view&) const = default;
};
std::string to_string(const dead_letter_view& d);

/// metrics_snapshot's fields that the model predicts.
struct snapshot {
  tachyon::event_counts total;
  std::array<tachyon::event_counts, lane_count> lanes{};
  std::array<u64, lane_count> depth{}, waiting{}, lane_in_flight{};
  std::vector<tachyon::event_counts> types;
  u64 in_flight = 0;
  u64 batches = 0;
  u64 batched_events = 0;
  u64 dead_letters = 0;
  u64 dead_letters_evicted = 0;
  u64 timer_entries = 0;
  std::vector<tachyon::subscription_metrics> subscriptions;
};

struct settings {
  std::uint32_t lane_capacity = 8;
  std::uint32_t batch = 4;
  std::uint32_t reentry_capacity = 4;
  std::uint32_t timer_capacity = 8;
  std::uint32_t dead_letter_capacity = 0;
  tachyon::overflow overflow = tachyon::overflow::fail;  // fail or drop (block is not modelled)
  std::vector<unsigned> default_lanes;                   // per type, registry order
  std::vector<std::string> type_names;                   // per type, registry order
};

struct publish_options {
  std::optional<unsigned> lane;
  u64 correlation_id = 0;
  u64 deadline_ns = 0;
  u64 not_before_ns = 0;
  bool dead_letter_expired = false;
};

struct subscription_spec {
  unsigned type = 0;
  int order = 0;
  std::string name;  // empty: "<type name>#<subscription number>"
  tachyon::retry_policy retry;
  std::uint32_t breaker_threshold = 0;  // 0: no breaker
  u64 breaker_open_for_ns = 0;
  tachyon::when_open breaker_action = tachyon::when_open::dead_letter;
  bool breaker_has_counts = false;  // a `counts` predicate that reads handler_fate::counts
  bool dead_letters = true;
  std::function<bool(u64 event_id)> filter;  // empty: none
  std::function<handler_fate(u64 event_id, unsigned attempt)> body;
};

struct batch_outcome {
  std::size_t queued = 0;
  std::size_t dropped = 0;
  tachyon::result status = tachyon::result::ok;
};

/// The model's clock starts where virtual_clock does (time.hpp): at 1 s.
inline constexpr u64 clock_start_ns = 1'000'000'000;

/// How often the model took its rarer paths: the fuzz test reports them, so that a generator
/// that stopped reaching a corner shows.
struct coverage {
  u64 retries = 0;              // retries scheduled
  u64 retry_timer_full = 0;     // a retry that found the timer full
  u64 retry_past_deadline = 0;  // a retry that found its event's deadline passed
  u64 retry_gone = 0;           // a retry whose subscription was removed
  u64 door_full = 0;            // a due delivery that found its lane's door full
  u64 ran_in_place = 0;         // stop(drain) ran a delivery the door had no room for
  u64 expired = 0;              // events that expired
  u64 short_circuits = 0;
  u64 probes = 0;            // half-open probes admitted
  u64 filtered_breaker = 0;  // events a filter kept from a subscription with a breaker
  u64 not_counted = 0;       // exceptions the breaker's `counts` did not count
  u64 dead_letters = 0;      // entries parked
  u64 evictions = 0;
  u64 replays = 0;       // entries replayed
  u64 replay_skips = 0;  // entries skipped (their subscription removed)
  u64 discards = 0;      // events discarded by stop(discard)
  u64 displaced = 0;     // events displaced under overflow::drop_oldest
  u64 stepped_over = 0;  // re-entered deliveries a displacement stepped over
};

class model {
 public:
  explicit model(settings s);

  u64 now() const { return now_; }
  void advance(u64 ns) { now_ += ns; }

  tachyon::result publish(unsigned type, u64 event_id, const publish_options& opts);
  batch_outcome publish_batch(unsigned type, const std::vector<u64>& event_ids,
                              std::optional<unsigned> lane);
  void dispatch(unsigned type, u64 event_id);
  /// Returns the subscription's number (its place in subscription order).
  std::size_t subscribe(subscription_spec spec);
  void unsubscribe(std::size_t number);
  std::size_t run_once();
  std::size_t poll(std::size_t max_events);
  u64 stop(tachyon::stop_mode mode);
  tachyon::replay_result replay(const std::function<bool(const dead_letter_view&)>& pick);
  std::size_t clear_dead_letters();

  snapshot metrics() const;
  std::vector<dead_letter_view> dead_letters() const;
  const std::vector<call>& calls() const { return calls_; }
  const std::string& subscription_name(std::size_t number) const { return subs_[number].name; }
  const coverage& covered() const { return cov_; }

 private:
  // Marks on an event; its outcome is the highest (metrics.hpp, event_counts).
  enum mark : std::uint8_t { m_discarded = 1, m_failed = 2, m_dead_lettered = 4, m_expired = 8 };
  static constexpr int all_handlers = -1;

  struct event {
    u64 id = 0;
    unsigned type = 0, lane = 0;
    u64 correlation_id = 0, sequence = 0, deadline_ns = 0;
    bool dead_letter_expired = false;
    int pending = 1;  // runs owed to it (its first, or the delivery that carries it)
    std::uint8_t marks = 0;
    bool waited = false;  // it has been counted in lanes[].waiting
    bool settled = false;
  };
  struct lane_entry {  // one envelope in a lane's FIFO
    std::size_t ev = 0;
    bool delivery = false;  // false: a plain published event
    int target = all_handlers;
    unsigned attempt = 0;
    bool front = true;  // came through publish (the front door), not the re-entry door
    std::string last_what;
  };
  struct timer_entry {
    u64 due = 0, order = 0;
    std::size_t ev = 0;
    int target = all_handlers;
    unsigned attempt = 0;
    std::string last_what;
  };
  struct dead_letter {
    u64 id = 0;
    std::size_t ev = 0;
    int target = all_handlers;
    std::uint32_t attempts = 0;
    std::string what;
    u64 when = 0;
  };
  struct failure {
    int sub = 0;
    bool short_circuit = false;
    std::string what;
  };
  enum class breaker_state { closed, open, half_open };
  struct sub {
    subscription_spec spec;
    std::string name;
    bool live = true;
    bool resilient = false;
    u64 errors = 0, retried = 0, short_circuited = 0, dead_lettered = 0;
    breaker_state state = breaker_state::closed;
    unsigned streak = 0;
    u64 open_until = 0;
  };
  enum class run_status { ok, failed, gone };
  struct meta_view {
    unsigned attempt = 0;
    unsigned flags = 0;
  };

  u64 take_sequence();
  tachyon::event_counts& lane_row(unsigned l) { return lane_counts_[l]; }
  void count(unsigned l, unsigned t, u64 tachyon::event_counts::*field, u64 n = 1);
  std::size_t front_depth(unsigned l) const;
  /// overflow::drop_oldest on a full lane: makes room by displacing its oldest front-door
  /// entry; false when it found none (the new event is then dropped).
  bool displace_oldest(unsigned l);
  std::size_t reentry_depth(unsigned l) const;
  std::size_t new_event(unsigned type, unsigned lane, u64 id, u64 corr, u64 deadline, bool dle);
  tachyon::result admit_front(unsigned l, unsigned type);

  bool breaker_admit(sub& s);
  void breaker_succeeded(sub& s);
  void breaker_failed(sub& s);
  void breaker_not_counted(sub& s);

  void log(char kind, const sub& s, const event& e, const meta_view& m);
  bool call_guarded(int si, const event& e, const meta_view& m);
  bool run_all(const event& e, const meta_view& m);
  run_status run_one(int si, const event& e, const meta_view& m, bool replay);
  void handler_failed(int si, const event& e, const meta_view& m, const handler_fate& f,
                      bool through_breaker = true);
  void short_circuited(int si, const event& e);

  void run_entry(const lane_entry& en);
  void handle_failures(std::size_t ev, unsigned attempt);
  void settle_run(std::size_t ev);
  void park_dead_letter(std::size_t ev, int target, std::uint32_t attempts, std::string what);
  void push_dead_letter(dead_letter d, bool keep_place);
  bool push_timer(timer_entry t);
  void fire_due(bool all);
  std::size_t drain_batch(std::size_t max);
  void drain_everything();
  u64 discard_all();
  u64 backoff(const tachyon::retry_policy& p, unsigned k, u64 sequence) const;
  dead_letter_view view(const dead_letter& d) const;

  settings cfg_;
  u64 now_ = clock_start_ns;
  u64 next_sequence_ = 0;
  bool stopping_ = false, discarding_ = false, stopped_ = false;
  std::vector<event> events_;
  std::vector<sub> subs_;
  std::array<std::deque<lane_entry>, lane_count> lanes_;
  std::vector<timer_entry> timer_;
  u64 next_timer_order_ = 0;
  std::deque<dead_letter> dead_letters_;
  u64 next_dead_letter_id_ = 1;
  u64 evicted_ = 0;
  std::vector<failure> failures_;  // the running event's
  bool failed_plain_ = false;
  std::array<tachyon::event_counts, lane_count> lane_counts_{};
  std::vector<tachyon::event_counts> type_counts_;
  u64 batches_ = 0, batched_events_ = 0;
  std::vector<call> calls_;
  coverage cov_;
};

}  // namespace tachyon_model
