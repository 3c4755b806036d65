// The reference model (reference_model.hpp). Each rule names the header that documents it;
// "mirrors" marks a corner the headers leave to the implementation, copied from src/.
#include "model/reference_model.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include <tachyon/detail/resilience/backoff.hpp>  // mix64: the jitter's hash (mirrors)

namespace tachyon_model {

using tachyon::event_counts;
using tachyon::result;

std::string to_string(const call& c) {
  return std::string(1, c.kind) + " sub=" + c.subscription + " ev=" + std::to_string(c.event_id) +
         " type=" + std::to_string(c.type) + " lane=" + std::to_string(c.lane) +
         " attempt=" + std::to_string(c.attempt) + " flags=" + std::to_string(c.flags) +
         " corr=" + std::to_string(c.correlation_id) + " seq=" + std::to_string(c.sequence);
}

std::string to_string(const dead_letter_view& d) {
  return "#" + std::to_string(d.id) + " ev=" + std::to_string(d.event_id) +
         " type=" + std::to_string(d.type) + " lane=" + std::to_string(d.lane) +
         " corr=" + std::to_string(d.correlation_id) + " seq=" + std::to_string(d.sequence) +
         " sub='" + d.subscription + "' attempts=" + std::to_string(d.attempts) + " what='" +
         d.what + "' when=" + std::to_string(d.when_ns);
}

model::model(settings s) : cfg_(std::move(s)) { type_counts_.resize(cfg_.type_names.size()); }

// ---- bookkeeping --------------------------------------------------------------------------------

// meta::sequence: the publishing thread's context id in the low 16 bits, its running count
// above. Mirrors: the first (here, the only) thread of a bus gets context id 1, and a sequence
// is taken by every event that is stamped (queued, parked in the timer, or dispatch()ed).
u64 model::take_sequence() { return 1 | (next_sequence_++ << 16); }

// metrics.hpp: every event count goes to its lane's row and its type's row.
void model::count(unsigned l, unsigned t, u64 event_counts::*field, u64 n) {
  lane_counts_[l].*field += n;
  type_counts_[t].*field += n;
}

// config::lane_capacity bounds what publish() queued and nobody took out yet; re-entered
// deliveries have their own door (config::reentry_capacity).
std::size_t model::front_depth(unsigned l) const {
  return static_cast<std::size_t>(std::count_if(lanes_[l].begin(), lanes_[l].end(),
                                                [](const lane_entry& e) { return e.front; }));
}
std::size_t model::reentry_depth(unsigned l) const { return lanes_[l].size() - front_depth(l); }

std::size_t model::new_event(unsigned type, unsigned lane, u64 id, u64 corr, u64 deadline,
                             bool dle) {
  event e;
  e.id = id;
  e.type = type;
  e.lane = lane;
  e.correlation_id = corr;
  e.sequence = take_sequence();
  e.deadline_ns = deadline;
  e.dead_letter_expired = dle;
  events_.push_back(e);
  return events_.size() - 1;
}

// config.hpp overflow::drop_oldest: the oldest front-door entry of the lane leaves it, counted
// displaced (its event never ran); re-entered deliveries before it are stepped over (at most 16
// per round) and put back at the lane's back, in their order. Mirrors bus_core::displace_one
// and admit_displacing with one thread, whose own moodycamel producer holds the whole lane:
// up to 16 rounds, each displacing or finding nothing.
bool model::displace_oldest(unsigned l) {
  auto& lane = lanes_[l];
  for (int round = 0; round < 16; ++round) {
    std::vector<lane_entry> held;
    std::optional<lane_entry> found;
    while (held.size() < 16 && !lane.empty()) {
      lane_entry en = std::move(lane.front());
      lane.pop_front();
      if (!en.front) {
        held.push_back(std::move(en));
        continue;
      }
      found = std::move(en);
      break;
    }
    cov_.stepped_over += held.size();
    for (auto& h : held) lane.push_back(std::move(h));
    if (!found) continue;
    event& e = events_[found->ev];
    e.pending = 0;
    e.settled = true;
    count(e.lane, e.type, &event_counts::displaced);
    ++cov_.displaced;
    return true;
  }
  return false;
}

// bus::publish (result.hpp, config.hpp overflow): refused with `stopped` once stop() began
// (before looking at the room), else taken if the lane has room; else `full` (fail), taken
// and dropped (drop), or taken in the room of the lane's oldest event (drop_oldest). Counted:
// accepted, rejected_full, rejected_stopped, dropped, displaced.
result model::admit_front(unsigned l, unsigned type) {
  if (stopping_) {
    count(l, type, &event_counts::rejected_stopped);
    return result::stopped;
  }
  if (front_depth(l) < cfg_.lane_capacity) return result::ok;
  if (cfg_.overflow == tachyon::overflow::drop_oldest && displace_oldest(l)) return result::ok;
  if (cfg_.overflow == tachyon::overflow::drop || cfg_.overflow == tachyon::overflow::drop_oldest) {
    count(l, type, &event_counts::accepted);
    count(l, type, &event_counts::dropped);
    return result::dropped;
  }
  count(l, type, &event_counts::rejected_full);
  return result::full;
}

// ---- publish, dispatch, subscribe ---------------------------------------------------------------

result model::publish(unsigned type, u64 event_id, const publish_options& opts) {
  const unsigned l = opts.lane ? *opts.lane : cfg_.default_lanes[type];
  // publish_options::not_before: a later time parks the event in the timer (a full timer
  // returns `full`); it is accepted and in flight at once, and enters its lane through the
  // re-entry door when due. 0 or a time already past: now.
  if (opts.not_before_ns > now_) {
    if (stopping_) {
      count(l, type, &event_counts::rejected_stopped);
      return result::stopped;
    }
    if (timer_.size() >= cfg_.timer_capacity) {
      count(l, type, &event_counts::rejected_full);
      return result::full;
    }
    const std::size_t ev = new_event(type, l, event_id, opts.correlation_id, opts.deadline_ns,
                                     opts.dead_letter_expired);
    events_[ev].waited = true;  // lane_metrics::waiting: events of this lane in the timer
    count(l, type, &event_counts::accepted);
    push_timer(timer_entry{opts.not_before_ns, 0, ev, all_handlers, 0, {}});
    return result::ok;
  }
  const result r = admit_front(l, type);
  if (r != result::ok) return r;
  const std::size_t ev =
      new_event(type, l, event_id, opts.correlation_id, opts.deadline_ns, opts.dead_letter_expired);
  count(l, type, &event_counts::accepted);
  lane_entry en;
  en.ev = ev;
  // Mirrors: an event with a deadline (or a not_before already past) travels as a delivery of
  // all its handlers through the front door; it behaves as a plain event but for the deadline.
  en.delivery = opts.deadline_ns != 0 || opts.not_before_ns != 0;
  lanes_[l].push_back(en);
  return result::ok;
}

// bus::publish_batch: the overflow policy applies per event; stops at the first refusal.
batch_outcome model::publish_batch(unsigned type, const std::vector<u64>& event_ids,
                                   std::optional<unsigned> lane) {
  const unsigned l = lane ? *lane : cfg_.default_lanes[type];
  batch_outcome out;
  for (std::size_t i = 0; i < event_ids.size(); ++i) {
    if (stopping_) {
      count(l, type, &event_counts::rejected_stopped, event_ids.size() - i);
      out.status = result::stopped;
      return out;
    }
    if (front_depth(l) < cfg_.lane_capacity ||
        (cfg_.overflow == tachyon::overflow::drop_oldest && displace_oldest(l))) {
      const std::size_t ev = new_event(type, l, event_ids[i], 0, 0, false);
      count(l, type, &event_counts::accepted);
      lane_entry en;
      en.ev = ev;
      lanes_[l].push_back(en);
      ++out.queued;
    } else if (cfg_.overflow == tachyon::overflow::drop ||
               cfg_.overflow == tachyon::overflow::drop_oldest) {
      count(l, type, &event_counts::accepted);
      count(l, type, &event_counts::dropped);
      ++out.dropped;
    } else {
      count(l, type, &event_counts::rejected_full, event_ids.size() - i);
      out.status = result::full;
      return out;
    }
  }
  return out;
}

// bus::dispatch: T's handlers now, in order; counted accepted, then dispatched or failed, in
// the type's default lane; it neither retries nor dead-letters (failures are only counted).
void model::dispatch(unsigned type, u64 event_id) {
  event e;
  e.id = event_id;
  e.type = type;
  e.lane = cfg_.default_lanes[type];
  e.sequence = take_sequence();
  const bool ok = run_all(e, meta_view{});
  failures_.clear();
  failed_plain_ = false;
  count(e.lane, type, &event_counts::accepted);
  count(e.lane, type, ok ? &event_counts::dispatched : &event_counts::failed);
}

std::size_t model::subscribe(subscription_spec spec) {
  sub s;
  const std::size_t number = subs_.size();
  // subscribe_options::name: empty gives "<type name>#<subscription number within the bus>".
  s.name =
      spec.name.empty() ? cfg_.type_names[spec.type] + "#" + std::to_string(number) : spec.name;
  // Mirrors: a subscription without retries nor breaker keeps no failure record unless the
  // bus has dead letters (the outcome is the same either way: failed).
  s.resilient = spec.retry.max_attempts > 1 || spec.breaker_threshold != 0;
  s.spec = std::move(spec);
  subs_.push_back(std::move(s));
  return number;
}

// subscription.hpp: unsubscribe removes the handler at once; a pending retry of it then fails
// (metrics.hpp: "its subscription removed before its retry"), its dead letters stay (replay
// skips them).
void model::unsubscribe(std::size_t number) { subs_[number].live = false; }

// ---- the breaker (resilience.hpp breaker_policy; detail/resilience/breaker.hpp) ---------------

// Closed: calls pass. Open: none until the window ends, then exactly one (half-open probe).
bool model::breaker_admit(sub& s) {
  switch (s.state) {
    case breaker_state::closed:
      return true;
    case breaker_state::half_open:
      return false;  // the probe is out
    case breaker_state::open:
      if (now_ < s.open_until) return false;
      s.state = breaker_state::half_open;
      ++cov_.probes;
      return true;
  }
  return false;
}

// A call returned: the streak ends, a probe closes it. Ignored while open.
void model::breaker_succeeded(sub& s) {
  if (s.state == breaker_state::open) return;
  s.state = breaker_state::closed;
  s.streak = 0;
}

// breaker_policy::counts: an exception it does not count leaves the failure streak as it was;
// a probe that throws one closes the breaker (the handler was reached and answered).
void model::breaker_not_counted(sub& s) {
  if (s.state == breaker_state::half_open) {
    s.state = breaker_state::closed;
    s.streak = 0;
  }
}

// A counted failure: `failure_threshold` consecutive ones (or a failed probe) open it for
// open_for, its end kept in 1024-ns units, rounded up. Ignored while open.
void model::breaker_failed(sub& s) {
  const u64 until = (now_ + s.spec.breaker_open_for_ns + 1023) / 1024 * 1024;
  switch (s.state) {
    case breaker_state::open:
      return;
    case breaker_state::half_open:
      s.state = breaker_state::open;
      s.open_until = until;
      return;
    case breaker_state::closed:
      if (s.streak + 1 >= s.spec.breaker_threshold) {
        s.state = breaker_state::open;
        s.open_until = until;
        s.streak = 0;
      } else {
        s.streak = std::min(s.streak + 1, 1023u);
      }
      return;
  }
}

// ---- running handlers ---------------------------------------------------------------------------

void model::log(char kind, const sub& s, const event& e, const meta_view& m) {
  calls_.push_back(
      call{kind, s.name, e.id, e.type, e.lane, m.attempt, m.flags, e.correlation_id, e.sequence});
}

// One subscription's turn in a run. subscribe_options::filter: the handler runs only for events
// where filter(ev) is true; nothing else about the subscription is involved for the others.
// breaker_policy: while open the handler is not called and the delivery is short-circuited.
bool model::call_guarded(int si, const event& e, const meta_view& m) {
  sub& s = subs_[static_cast<std::size_t>(si)];
  const bool breaker = s.spec.breaker_threshold != 0;
  if (s.spec.filter && !s.spec.filter(e.id)) {
    cov_.filtered_breaker += breaker;
    return true;
  }
  if (breaker && !breaker_admit(s)) {
    short_circuited(si, e);
    return false;
  }
  log('H', s, e, m);
  const handler_fate f = s.spec.body(e.id, m.attempt);
  if (!f.threw) {
    if (breaker) breaker_succeeded(s);
    return true;
  }
  handler_failed(si, e, m, f);
  return false;
}

// subscribe_options::order: a type's handlers run in ascending order, then subscription order;
// a throw does not stop the others (README, Errors). Returns whether none failed.
bool model::run_all(const event& e, const meta_view& m) {
  std::vector<int> list;
  for (std::size_t i = 0; i < subs_.size(); ++i)
    if (subs_[i].live && subs_[i].spec.type == e.type) list.push_back(static_cast<int>(i));
  std::stable_sort(list.begin(), list.end(), [&](int a, int b) {
    return subs_[static_cast<std::size_t>(a)].spec.order <
           subs_[static_cast<std::size_t>(b)].spec.order;
  });
  bool ok = true;
  for (int si : list) ok = call_guarded(si, e, m) && ok;
  return ok;
}

// A retry runs only its subscription (retry_policy), through its breaker; a replay runs it
// bypassing the breaker, which it neither asks nor tells (bus::replay_dead_letters). A removed
// subscription is gone.
model::run_status model::run_one(int si, const event& e, const meta_view& m, bool replay) {
  sub& s = subs_[static_cast<std::size_t>(si)];
  if (!s.live) return run_status::gone;
  if (!replay) return call_guarded(si, e, m) ? run_status::ok : run_status::failed;
  if (s.spec.filter && !s.spec.filter(e.id)) return run_status::ok;
  log('H', s, e, m);
  const handler_fate f = s.spec.body(e.id, m.attempt);
  if (!f.threw) return run_status::ok;  // a replay neither asks the breaker nor tells it
  handler_failed(si, e, m, f, false);
  return run_status::failed;
}

// A handler threw: handler_errors (its event's lane and type), the subscription's errors, its
// breaker fed (breaker_policy::counts) when the call went through it (not a replay's), the error
// hook (config::on_error) called; the failure is decided at the end of the event's run.
void model::handler_failed(int si, const event& e, const meta_view& m, const handler_fate& f,
                           bool through_breaker) {
  sub& s = subs_[static_cast<std::size_t>(si)];
  count(e.lane, e.type, &event_counts::handler_errors);
  ++s.errors;
  if (through_breaker && s.spec.breaker_threshold != 0) {
    if (!s.spec.breaker_has_counts || f.counts) {
      breaker_failed(s);
    } else {
      breaker_not_counted(s);
      ++cov_.not_counted;
    }
  }
  log('E', s, e, m);
  if (s.resilient || cfg_.dead_letter_capacity > 0)
    failures_.push_back(failure{si, false, f.what});
  else
    failed_plain_ = true;
}

// metrics.hpp short_circuited: deliveries an open breaker did not call.
void model::short_circuited(int si, const event& e) {
  count(e.lane, e.type, &event_counts::short_circuited);
  ++cov_.short_circuits;
  ++subs_[static_cast<std::size_t>(si)].short_circuited;
  failures_.push_back(failure{si, true, {}});
}

// ---- settling -----------------------------------------------------------------------------------

// One envelope of a batch. A plain event runs all its handlers. A delivery first checks its
// event's deadline (publish_options::deadline: not run once passed), then runs all handlers
// (an event's own run) or one subscription (a retry); meta::attempt is the delivery's, and
// meta_flags::reentered is set when it came through the re-entry door.
void model::run_entry(const lane_entry& en) {
  event& e = events_[en.ev];
  if (en.delivery && e.deadline_ns != 0 && now_ >= e.deadline_ns) {
    if (en.target == all_handlers) {  // it never ran: expired
      ++cov_.expired;
      e.marks |= m_expired;
      if (e.dead_letter_expired && cfg_.dead_letter_capacity > 0)
        park_dead_letter(en.ev, all_handlers, 0, tachyon::deadline_passed().what());
    } else {  // a retry past the deadline: that delivery fails for good, with its last error
      ++cov_.retry_past_deadline;
      sub& s = subs_[static_cast<std::size_t>(en.target)];
      if (cfg_.dead_letter_capacity > 0 && s.spec.dead_letters)
        park_dead_letter(en.ev, en.target, en.attempt, en.last_what);
      else
        e.marks |= m_failed;
    }
    settle_run(en.ev);
    return;
  }
  const meta_view m{en.attempt, en.front ? 0u : unsigned{tachyon::meta_flags::reentered}};
  run_status st;
  if (en.target == all_handlers)
    st = run_all(e, m) ? run_status::ok : run_status::failed;
  else
    st = run_one(en.target, e, m, false);
  if (st == run_status::gone) {
    events_[en.ev].marks |= m_failed;
    ++cov_.retry_gone;
  }
  if (st == run_status::failed && failures_.empty()) failed_plain_ = true;
  if (st != run_status::ok || !failures_.empty()) handle_failures(en.ev, en.attempt);
  settle_run(en.ev);
}

// The end of a run that failed, per failed subscription (bus.hpp subscribe_options,
// resilience.hpp retry_policy, config.hpp timer_capacity / dead_letter_capacity):
//   short-circuited: dead letters under when_open::dead_letter (if the bus has any and the
//     subscription sends there), else the event is marked failed;
//   threw: a retry after its backoff while runs < max_attempts and the deadline has not
//     passed (a full timer: as exhausted); exhausted: the dead letters, else failed.
void model::handle_failures(std::size_t ev, unsigned attempt) {
  if (failed_plain_) events_[ev].marks |= m_failed;
  const bool dl = cfg_.dead_letter_capacity > 0;
  std::vector<failure> fs;
  fs.swap(failures_);
  failed_plain_ = false;
  for (auto& f : fs) {
    sub& s = subs_[static_cast<std::size_t>(f.sub)];
    event& e = events_[ev];
    if (f.short_circuit) {
      if (s.spec.breaker_action == tachyon::when_open::dead_letter && dl && s.spec.dead_letters)
        park_dead_letter(ev, f.sub, attempt, tachyon::circuit_open(s.name).what());
      else
        e.marks |= m_failed;
      continue;
    }
    const unsigned runs = attempt + 1;
    if (runs < s.spec.retry.max_attempts && (e.deadline_ns == 0 || now_ < e.deadline_ns)) {
      e.waited = true;  // mirrors: counted waiting as soon as a retry is tried
      // bus::stop: during stop(drain) a retry does not wait out its backoff.
      const u64 due = now_ + (stopping_ ? 0 : backoff(s.spec.retry, runs, e.sequence));
      if (push_timer(timer_entry{due, 0, ev, f.sub, runs, f.what})) {
        ++e.pending;
        ++cov_.retries;
        ++s.retried;
        count(e.lane, e.type, &event_counts::retried);
        continue;
      }
      ++cov_.retry_timer_full;
    }
    if (dl && s.spec.dead_letters)
      park_dead_letter(ev, f.sub, runs, f.what);
    else
      e.marks |= m_failed;
  }
}

// metrics.hpp event_counts: an event settles once every delivery of it has; its outcome is
// expired > dead_lettered > failed > discarded > dispatched.
void model::settle_run(std::size_t ev) {
  event& e = events_[ev];
  if (--e.pending != 0) return;
  e.settled = true;
  u64 event_counts::*kind = &event_counts::dispatched;
  if (e.marks & m_expired)
    kind = &event_counts::expired;
  else if (e.marks & m_dead_lettered)
    kind = &event_counts::dead_lettered;
  else if (e.marks & m_failed)
    kind = &event_counts::failed;
  else if (e.marks & m_discarded)
    kind = &event_counts::discarded;
  count(e.lane, e.type, kind);
}

// config::dead_letter_capacity: the oldest entry is dropped (and counted) when full.
// resilience.hpp dead_letter: attempts, the last error's what(), when (now), an id unique within
// the bus in order of parking (mirrors: the first is 1).
void model::park_dead_letter(std::size_t ev, int target, std::uint32_t attempts, std::string what) {
  events_[ev].marks |= m_dead_lettered;
  ++cov_.dead_letters;
  if (target != all_handlers) ++subs_[static_cast<std::size_t>(target)].dead_lettered;
  push_dead_letter(dead_letter{next_dead_letter_id_++, ev, target, attempts, std::move(what), now_},
                   false);
}

void model::push_dead_letter(dead_letter d, bool keep_place) {
  if (dead_letters_.size() >= cfg_.dead_letter_capacity) {
    dead_letters_.pop_front();
    ++evicted_;
    ++cov_.evictions;
  }
  // A replay that fails puts its entry back in its place (by id, oldest first).
  auto at = keep_place ? std::find_if(dead_letters_.begin(), dead_letters_.end(),
                                      [&](const dead_letter& x) { return x.id > d.id; })
                       : dead_letters_.end();
  dead_letters_.insert(at, std::move(d));
}

// config::timer_capacity: retries and delayed events waiting at once. Mirrors: the timer is
// ordered by (due, scheduling order).
bool model::push_timer(timer_entry t) {
  if (timer_.size() >= cfg_.timer_capacity) return false;
  t.order = next_timer_order_++;
  timer_.push_back(std::move(t));
  return true;
}

// The drain's look at the timer (mirrors bus_core::fire_due): up to 64 entries due now (every
// one, due or not, with `all`), earliest first, each into its lane's re-entry door; one that
// finds the door full stays in the timer (keeping its place), or under stop(drain) runs here.
void model::fire_due(bool all) {
  std::vector<timer_entry> due;
  while (due.size() < 64) {
    auto it = std::min_element(timer_.begin(), timer_.end(), [](const auto& a, const auto& b) {
      return a.due != b.due ? a.due < b.due : a.order < b.order;
    });
    if (it == timer_.end() || (!all && it->due > now_)) break;
    due.push_back(std::move(*it));
    timer_.erase(it);
  }
  for (auto& t : due) {
    const unsigned l = events_[t.ev].lane;
    lane_entry en{t.ev, true, t.target, t.attempt, false, t.last_what};
    if (reentry_depth(l) < cfg_.reentry_capacity && !discarding_) {
      lanes_[l].push_back(std::move(en));
    } else if (all && !discarding_) {
      ++cov_.ran_in_place;
      run_entry(en);
    } else {
      ++cov_.door_full;
      timer_.push_back(std::move(t));  // keeps its due time and order
    }
  }
}

// bus::run_once: at most one batch (config::batch) from the most urgent non-empty lane, FIFO.
std::size_t model::drain_batch(std::size_t max) {
  for (auto& lane : lanes_) {
    if (lane.empty()) continue;
    const std::size_t n = std::min(max, lane.size());
    std::vector<lane_entry> batch(lane.begin(), lane.begin() + static_cast<std::ptrdiff_t>(n));
    lane.erase(lane.begin(), lane.begin() + static_cast<std::ptrdiff_t>(n));
    ++batches_;
    batched_events_ += n;
    for (const auto& en : batch) run_entry(en);
    return n;
  }
  return 0;
}

// bus::run_once: nothing once a discard began; due timer entries re-enter first.
std::size_t model::run_once() {
  if (discarding_) return 0;
  if (!timer_.empty()) fire_due(false);
  return drain_batch(cfg_.batch);
}

// bus::poll: batches until the lanes are empty or max_events ran (mirrors: the timer is looked
// at before every batch, and a batch takes at most what is left of max_events).
std::size_t model::poll(std::size_t max_events) {
  std::size_t total = 0;
  while (total < max_events && !discarding_) {
    if (!timer_.empty()) fire_due(false);
    const std::size_t n = drain_batch(std::min<std::size_t>(cfg_.batch, max_events - total));
    if (n == 0) break;
    total += n;
  }
  return total;
}

// bus::stop(drain): runs everything now, timers firing regardless of due (mirrors: the lanes
// are drained before each look at the timer).
void model::drain_everything() {
  for (;;) {
    while (std::any_of(lanes_.begin(), lanes_.end(), [](const auto& l) { return !l.empty(); }))
      drain_batch(cfg_.batch);
    if (timer_.empty()) return;
    fire_due(true);
  }
}

// bus::stop(discard): runs nothing more; what is queued or waiting is discarded (an event, or
// the event of a retry, marked discarded). Returns how many events it discarded: those that
// never ran (published or delayed ones), not the events of pending retries.
u64 model::discard_all() {
  u64 total = 0;
  for (unsigned l = 0; l < lane_count; ++l) {
    for (const auto& en : lanes_[l]) {
      if (en.target == all_handlers) ++total;
      events_[en.ev].marks |= m_discarded;
      settle_run(en.ev);
    }
    lanes_[l].clear();
  }
  for (const auto& t : timer_) {
    if (t.target == all_handlers) ++total;
    events_[t.ev].marks |= m_discarded;
    settle_run(t.ev);
  }
  timer_.clear();
  return total;
}

// bus::stop: refuses publishes at once; idempotent (the second call returns 0), but a later
// discard still stops manual draining.
u64 model::stop(tachyon::stop_mode mode) {
  if (mode == tachyon::stop_mode::discard) discarding_ = true;
  stopping_ = true;
  if (stopped_) return 0;
  stopped_ = true;
  if (discarding_) {
    const u64 n = discard_all();
    cov_.discards += n;
    return n;
  }
  drain_everything();
  return 0;
}

// ---- dead letters -------------------------------------------------------------------------------

dead_letter_view model::view(const dead_letter& d) const {
  const event& e = events_[d.ev];
  dead_letter_view v;
  v.id = d.id;
  v.event_id = e.id;
  v.type = e.type;
  v.lane = e.lane;
  v.correlation_id = e.correlation_id;
  v.sequence = e.sequence;
  v.subscription =
      d.target == all_handlers ? std::string() : subs_[static_cast<std::size_t>(d.target)].name;
  v.attempts = d.attempts;
  v.what = d.what;
  v.when_ns = d.when;
  return v;
}

std::vector<dead_letter_view> model::dead_letters() const {
  std::vector<dead_letter_view> out;
  for (const auto& d : dead_letters_) out.push_back(view(d));
  return out;
}

// bus::replay_dead_letters: each picked entry, oldest first, on this thread: its subscription
// again (or, for an expired event, all the type's handlers), attempt = its attempts and
// meta_flags::replayed; counted `replayed`. Success removes it; a throw puts it back, attempts
// + 1, with the new error; an entry whose subscription was removed is skipped and stays.
tachyon::replay_result model::replay(const std::function<bool(const dead_letter_view&)>& pick) {
  tachyon::replay_result out;
  std::vector<dead_letter> taken;
  for (auto it = dead_letters_.begin(); it != dead_letters_.end();) {
    if (pick(view(*it))) {
      taken.push_back(std::move(*it));
      it = dead_letters_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& d : taken) {
    if (d.target != all_handlers && !subs_[static_cast<std::size_t>(d.target)].live) {
      ++out.skipped;
      ++cov_.replay_skips;
      push_dead_letter(std::move(d), true);
      continue;
    }
    const event& e = events_[d.ev];
    ++out.replayed;
    ++cov_.replays;
    count(e.lane, e.type, &event_counts::replayed);
    const meta_view m{std::min<std::uint32_t>(d.attempts, 255), tachyon::meta_flags::replayed};
    // Mirrors: an expired event's replay runs its handlers as a drained event would, breakers
    // included.
    const bool ok =
        d.target == all_handlers ? run_all(e, m) : run_one(d.target, e, m, true) == run_status::ok;
    // The last failure's error becomes the entry's (mirrors: a short circuit carries none).
    if (!failures_.empty() && !failures_.back().short_circuit) d.what = failures_.back().what;
    failures_.clear();
    failed_plain_ = false;
    if (ok) {
      ++out.succeeded;
    } else {
      ++out.failed;
      ++d.attempts;
      push_dead_letter(std::move(d), true);
    }
  }
  return out;
}

std::size_t model::clear_dead_letters() {
  const std::size_t n = dead_letters_.size();
  dead_letters_.clear();
  return n;
}

// ---- the snapshot
// ---------------------------------------------------------------------------------

// metrics.hpp: lanes[].depth is what publish queued and nobody took out; waiting, the events of
// the lane that went to the timer (a pending retry, a delayed event) and have not settled;
// in_flight their sum (nothing is in a dispatcher's hands between calls).
snapshot model::metrics() const {
  snapshot s;
  s.types = type_counts_;
  for (unsigned l = 0; l < lane_count; ++l) {
    s.lanes[l] = lane_counts_[l];
    s.depth[l] = front_depth(l);
    s.total += lane_counts_[l];
  }
  for (const auto& e : events_)
    if (e.waited && !e.settled) ++s.waiting[e.lane];
  for (unsigned l = 0; l < lane_count; ++l) {
    s.lane_in_flight[l] = s.depth[l] + s.waiting[l];
    s.in_flight += s.lane_in_flight[l];
  }
  s.batches = batches_;
  s.batched_events = batched_events_;
  s.dead_letters = dead_letters_.size();
  s.dead_letters_evicted = evicted_;
  s.timer_entries = timer_.size();
  for (const auto& sb : subs_) {
    if (!sb.live) continue;
    tachyon::subscription_metrics m;
    m.name = sb.name;
    m.type = cfg_.type_names[sb.spec.type];
    m.errors = sb.errors;
    m.retried = sb.retried;
    m.short_circuited = sb.short_circuited;
    m.dead_lettered = sb.dead_lettered;
    if (sb.spec.breaker_threshold == 0)
      m.breaker = tachyon::breaker_state::none;
    else if (sb.state == breaker_state::open)
      m.breaker = tachyon::breaker_state::open;
    else if (sb.state == breaker_state::half_open)
      m.breaker = tachyon::breaker_state::half_open;
    else
      m.breaker = tachyon::breaker_state::closed;
    s.subscriptions.push_back(std::move(m));
  }
  return s;
}

// retry_policy: attempt k waits min(max_delay, initial_delay x multiplier^(k-1)) x (1 - jitter x
// u), u in [0, 1) a hash of the event's sequence and k (mirrors: the hash, its 53 bits, and
// rounding to the nearest nanosecond).
u64 model::backoff(const tachyon::retry_policy& p, unsigned k, u64 sequence) const {
  double d = static_cast<double>(p.initial_delay.count()) *
             std::pow(p.multiplier, static_cast<double>(k - 1));
  d = std::min(d, static_cast<double>(p.max_delay.count()));
  if (p.jitter > 0) {
    const double u = static_cast<double>(tachyon::detail::mix64(sequence ^ (u64{k} << 56)) >> 11) /
                     9007199254740992.0;
    d *= 1.0 - p.jitter * u;
  }
  return static_cast<u64>(std::llround(std::max(d, 0.0)));
}

}  // namespace tachyon_model
