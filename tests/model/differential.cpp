// tachyon_differential: a seeded differential test of the bus against the reference model
// (reference_model.hpp), in manual mode on a virtual clock.
//
// Each case draws a configuration and a sequence of operations (publishes with random types,
// lanes and options, subscriptions with random order, filter, retry, breaker and name,
// unsubscribes, run_once, poll, clock moves, dead-letter replays and clears, dispatch(), stop)
// and runs it through both, comparing after every operation: the operation's result, every
// handler call and error-hook call (event, subscription, attempt, flags, correlation id,
// sequence, lane), every counter of metrics(), and the dead letters. Whether a handler throws,
// and whether a filter passes, is a pure function of (case seed, event id, subscription,
// attempt), so both sides agree.
//
// On a mismatch it prints the seed, then shrinks the sequence (delta debugging: removes chunks
// of operations, then single ones, while the run still fails; bounded) and prints the shortest
// failing sequence it found, with the mismatch.
//
//   tachyon_differential [--cases N] [--seed S] [--ops N] [--verbose]
//
// Case i runs with case seed S + i; `--seed <case seed> --cases 1` reruns one case.
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <tachyon/detail/resilience/backoff.hpp>  // mix64
#include <tachyon/tachyon.hpp>

#include "model/reference_model.hpp"

namespace {

using tachyon_model::u64;

// ---- the events ---------------------------------------------------------------------------------

struct Alarm {  // inline, critical by default
  u64 id;
};
struct Trade {  // inline, high
  u64 id;
  double price;
};
struct Tick {  // inline, normal
  u64 id;
  std::uint32_t venue;
};
struct Memo {  // boxed (not trivially copyable), low
  u64 id;
  std::string text;
};

using Events = tachyon::registry<tachyon::event<Alarm, tachyon::priority::critical>,
                                 tachyon::event<Trade, tachyon::priority::high>,
                                 tachyon::event<Tick, tachyon::priority::normal>,
                                 tachyon::event<Memo, tachyon::priority::low>>;
using bus_t = tachyon::bus<Events, tachyon::virtual_time_traits>;
constexpr unsigned type_count = 4;

template <class T>
T make(u64 id) {
  if constexpr (std::is_same_v<T, Memo>)
    return Memo{id, "memo " + std::to_string(id) + " carried in a box"};
  else {
    T ev{};
    ev.id = id;
    return ev;
  }
}

/// Calls f.template operator()<T>() for the type of index t.
template <class F>
decltype(auto) with_type(unsigned t, F&& f) {
  switch (t) {
    case 0:
      return f.template operator()<Alarm>();
    case 1:
      return f.template operator()<Trade>();
    case 2:
      return f.template operator()<Tick>();
    default:
      return f.template operator()<Memo>();
  }
}

// ---- the oracle: what handlers and filters do, a pure function of the case seed -----------------

constexpr u64 mix(u64 x) { return tachyon::detail::mix64(x); }
u64 hash(u64 a, u64 b, u64 c, u64 d) { return mix(mix(mix(mix(a) ^ b) ^ c) ^ d); }

struct behaviour {
  u64 tag = 0;              // the subscription's identity in the oracle
  unsigned filter_mod = 0;  // 0: no filter; else passes unless hash % filter_mod == 0
  unsigned fail_pct = 0;
  unsigned uncounted_pct = 0;  // of failures, those the breaker's `counts` does not count
};

bool passes(u64 seed, const behaviour& b, u64 event_id) {
  return b.filter_mod == 0 || hash(seed, event_id, b.tag, 0xf1f1) % b.filter_mod != 0;
}

tachyon_model::handler_fate fate(u64 seed, const behaviour& b, u64 event_id, unsigned attempt) {
  const u64 x = hash(seed, event_id, b.tag, attempt);
  tachyon_model::handler_fate f;
  if (x % 100 >= b.fail_pct) return f;
  f.threw = true;
  f.counts = (x >> 24) % 100 >= b.uncounted_pct;
  f.what = "handler " + std::to_string(b.tag) + " failed event " + std::to_string(event_id) +
           " at attempt " + std::to_string(attempt) + (f.counts ? "" : " (not counted)");
  return f;
}

struct counted_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct uncounted_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

bool picked(unsigned pick_mod, const tachyon_model::dead_letter_view& v) {
  return pick_mod == 0 || hash(v.event_id, v.attempts, 0x9e, 0) % pick_mod == 0;
}

// ---- operations ---------------------------------------------------------------------------------

enum class op_kind {
  publish,
  publish_batch,
  dispatch,
  subscribe,
  unsubscribe,
  run_once,
  poll,
  advance,
  replay,
  clear,
  stop
};

struct op {
  op_kind kind = op_kind::run_once;
  unsigned type = 0;
  int lane = -1;  // -1: the type's default
  u64 id = 0;     // event id (the first, for a batch); subscription tag (subscribe, unsubscribe)
  u64 corr = 0;
  std::optional<std::int64_t> deadline, not_before;  // relative to now at the call
  bool dead_letter_expired = false;
  unsigned count = 0;  // batch size; poll's max_events (0: no limit); replay's pick_mod
  u64 ns = 0;          // advance; 0: to the next multiple of 1024 ns (a breaker window's end)
  // subscribe
  int order = 0;
  bool named = false;
  behaviour how;
  tachyon::retry_policy retry;
  std::uint32_t threshold = 0;
  u64 open_for = 0;
  tachyon::when_open action = tachyon::when_open::dead_letter;
  bool has_counts = false;
  bool dead_letters = true;
  tachyon::stop_mode mode = tachyon::stop_mode::drain;
};

const char* type_names[] = {"Alarm", "Trade", "Tick", "Memo"};
const char* lane_names[] = {"critical", "high", "normal", "low"};

std::string rel(const std::optional<std::int64_t>& v) {
  if (!v) return "-";
  return *v >= 0 ? "now+" + std::to_string(*v) : "now" + std::to_string(*v);
}

std::string to_string(const op& o) {
  auto lane = [&] { return o.lane < 0 ? std::string("default") : lane_names[o.lane]; };
  switch (o.kind) {
    case op_kind::publish:
      return std::string("publish ") + type_names[o.type] + " id=" + std::to_string(o.id) +
             " lane=" + lane() + " corr=" + std::to_string(o.corr) +
             " deadline=" + rel(o.deadline) + " not_before=" + rel(o.not_before) +
             (o.dead_letter_expired ? " dead_letter_expired" : "");
    case op_kind::publish_batch:
      return std::string("publish_batch ") + type_names[o.type] + " ids=" + std::to_string(o.id) +
             ".." + std::to_string(o.id + o.count - 1) + " lane=" + lane();
    case op_kind::dispatch:
      return std::string("dispatch ") + type_names[o.type] + " id=" + std::to_string(o.id);
    case op_kind::subscribe: {
      char buf[512];
      std::snprintf(buf, sizeof buf,
                    "subscribe %s tag=%" PRIu64
                    " order=%d name=%s filter_mod=%u fail=%u%% "
                    "uncounted=%u%% retry={max_attempts=%u initial=%" PRId64 "ns max=%" PRId64
                    "ns x%.2f jitter=%.2f} breaker={threshold=%u open_for=%" PRIu64
                    "ns action=%s counts=%s} dead_letters=%d",
                    type_names[o.type], o.id, o.order, o.named ? "named" : "default",
                    o.how.filter_mod, o.how.fail_pct, o.how.uncounted_pct, o.retry.max_attempts,
                    static_cast<std::int64_t>(o.retry.initial_delay.count()),
                    static_cast<std::int64_t>(o.retry.max_delay.count()), o.retry.multiplier,
                    o.retry.jitter, o.threshold, o.open_for,
                    o.action == tachyon::when_open::skip ? "skip" : "dead_letter",
                    o.has_counts ? "predicate" : "all", o.dead_letters ? 1 : 0);
      return buf;
    }
    case op_kind::unsubscribe:
      return "unsubscribe tag=" + std::to_string(o.id);
    case op_kind::run_once:
      return "run_once";
    case op_kind::poll:
      return "poll max=" + (o.count == 0 ? std::string("all") : std::to_string(o.count));
    case op_kind::advance:
      return o.ns == 0 ? std::string("advance to the next 1024-ns boundary")
                       : "advance " + std::to_string(o.ns) + "ns";
    case op_kind::replay:
      return "replay_dead_letters pick_mod=" + std::to_string(o.count);
    case op_kind::clear:
      return "clear_dead_letters";
    case op_kind::stop:
      return std::string("stop ") + (o.mode == tachyon::stop_mode::drain ? "drain" : "discard");
  }
  return "?";
}

struct case_config {
  std::uint32_t lane_capacity, batch, reentry_capacity, timer_capacity, dead_letter_capacity;
  tachyon::overflow overflow;
};

std::string to_string(const case_config& c) {
  return "lane_capacity=" + std::to_string(c.lane_capacity) + " batch=" + std::to_string(c.batch) +
         " reentry_capacity=" + std::to_string(c.reentry_capacity) +
         " timer_capacity=" + std::to_string(c.timer_capacity) +
         " dead_letter_capacity=" + std::to_string(c.dead_letter_capacity) + " overflow=" +
         (c.overflow == tachyon::overflow::drop          ? "drop"
          : c.overflow == tachyon::overflow::drop_oldest ? "drop_oldest"
                                                         : "fail");
}

// ---- the generator ------------------------------------------------------------------------------

class rng {
 public:
  explicit rng(u64 seed) : s_(seed) {}
  u64 next() { return mix(s_++); }
  unsigned below(unsigned n) { return static_cast<unsigned>(next() % n); }
  bool chance(unsigned pct) { return below(100) < pct; }
  template <class T, std::size_t N>
  T pick(const T (&a)[N]) {
    return a[below(N)];
  }

 private:
  u64 s_;
};

case_config draw_config(rng& r) {
  case_config c;
  c.lane_capacity = 1 + r.below(6);
  c.batch = 1 + r.below(4);
  c.reentry_capacity = 1 + r.below(4);
  c.timer_capacity = 1 + r.below(8);
  c.dead_letter_capacity = r.chance(30) ? 0 : 1 + r.below(5);
  const tachyon::overflow policies[] = {tachyon::overflow::fail, tachyon::overflow::drop,
                                        tachyon::overflow::drop_oldest};
  c.overflow = r.pick(policies);
  return c;
}

op draw_subscribe(rng& r, u64 tag) {
  op o;
  o.kind = op_kind::subscribe;
  o.type = r.below(type_count);
  o.id = tag;
  o.order = static_cast<int>(r.below(3)) - 1;
  o.named = r.chance(50);
  o.how.tag = tag;
  o.how.filter_mod = r.chance(70) ? 0 : 2 + r.below(2);
  const unsigned fail[] = {0, 20, 50, 80, 100};
  o.how.fail_pct = r.pick(fail);
  o.how.uncounted_pct = r.chance(50) ? 0 : 30;
  if (r.chance(50)) {
    using ns = std::chrono::nanoseconds;
    const std::int64_t initial[] = {0, 1, 100, 1000, 1500};
    const double mult[] = {1.0, 1.5, 2.0, 3.0};
    const double jitter[] = {0.0, 0.0, 0.25, 1.0};
    o.retry.max_attempts = 2 + r.below(3);
    o.retry.initial_delay = ns(r.pick(initial));
    const std::int64_t cap[] = {o.retry.initial_delay.count(), 3 * o.retry.initial_delay.count(),
                                10000};
    o.retry.max_delay = ns(r.pick(cap));
    o.retry.multiplier = r.pick(mult);
    o.retry.jitter = r.pick(jitter);
  }
  if (r.chance(40)) {
    const u64 open_for[] = {1000, 1500, 2048, 5000};
    o.threshold = 1 + r.below(3);
    o.open_for = r.pick(open_for);
    o.action = r.chance(50) ? tachyon::when_open::dead_letter : tachyon::when_open::skip;
    o.has_counts = r.chance(50);
  }
  o.dead_letters = r.chance(80);
  return o;
}

std::vector<op> draw_ops(rng& r, std::size_t length) {
  std::vector<op> ops;
  u64 next_id = 1, next_tag = 1;
  std::vector<u64> tags;
  for (unsigned i = 1 + r.below(3); i > 0; --i) {
    ops.push_back(draw_subscribe(r, next_tag));
    tags.push_back(next_tag++);
  }
  const std::int64_t deadlines[] = {-1000, 0, 500, 1500, 2000, 1000000};
  const std::int64_t delays[] = {-5, 0, 300, 1500, 100000};
  const u64 advances[] = {0, 1, 100, 512, 1000, 1024, 1024, 2000, 5000, 1000000};
  auto lane = [&] { return r.chance(60) ? -1 : static_cast<int>(r.below(4)); };
  while (ops.size() < length) {
    op o;
    const unsigned k = r.below(100);
    if (k < 30) {
      o.kind = op_kind::publish;
      o.type = r.below(type_count);
      o.id = next_id++;
      o.lane = lane();
      o.corr = r.below(4);
      if (r.chance(30)) o.deadline = r.pick(deadlines);
      if (r.chance(25)) o.not_before = r.pick(delays);
      o.dead_letter_expired = r.chance(50);
    } else if (k < 34) {
      o.kind = op_kind::publish_batch;
      o.type = r.below(type_count);
      o.count = 1 + r.below(4);
      o.id = next_id;
      next_id += o.count;
      o.lane = lane();
    } else if (k < 37) {
      o.kind = op_kind::dispatch;
      o.type = r.below(type_count);
      o.id = next_id++;
    } else if (k < 44) {
      o = draw_subscribe(r, next_tag);
      tags.push_back(next_tag++);
    } else if (k < 47) {
      o.kind = op_kind::unsubscribe;
      o.id = tags.empty() ? 0 : tags[r.below(static_cast<unsigned>(tags.size()))];
    } else if (k < 62) {
      o.kind = op_kind::run_once;
    } else if (k < 70) {
      o.kind = op_kind::poll;
      o.count = r.chance(50) ? 0 : 1 + r.below(10);
    } else if (k < 88) {
      o.kind = op_kind::advance;
      o.ns = r.pick(advances);
    } else if (k < 94) {
      o.kind = op_kind::replay;
      o.count = r.chance(50) ? 0 : 2 + r.below(2);
    } else if (k < 95) {
      o.kind = op_kind::clear;
    } else if (k < 96 && r.chance(25)) {
      o.kind = op_kind::stop;
      o.mode = r.chance(50) ? tachyon::stop_mode::drain : tachyon::stop_mode::discard;
    } else {
      o.kind = op_kind::run_once;
    }
    ops.push_back(o);
  }
  if (r.chance(50)) {  // and at the end, a stop, then a few calls into the stopped bus
    op s;
    s.kind = op_kind::stop;
    s.mode = r.chance(50) ? tachyon::stop_mode::drain : tachyon::stop_mode::discard;
    ops.push_back(s);
    op p;
    p.kind = op_kind::publish;
    p.type = r.below(type_count);
    p.id = next_id++;
    ops.push_back(p);
    p.not_before = 1000;
    p.id = next_id++;
    ops.push_back(p);
    op q;
    q.kind = op_kind::replay;
    ops.push_back(q);
    q.kind = op_kind::poll;
    ops.push_back(q);
  }
  return ops;
}

// ---- the two sides ------------------------------------------------------------------------------

tachyon::config bus_config(const case_config& c) {
  tachyon::config cfg;
  cfg.workers = 0;
  cfg.lane_capacity = c.lane_capacity;
  cfg.batch = c.batch;
  cfg.overflow = c.overflow;
  cfg.producers = 1;
  cfg.reentry_capacity = c.reentry_capacity;
  cfg.timer_capacity = c.timer_capacity;
  cfg.dead_letter_capacity = c.dead_letter_capacity;
  cfg.timestamps = false;
  return cfg;
}

tachyon_model::settings model_settings(const case_config& c) {
  tachyon_model::settings s;
  s.lane_capacity = c.lane_capacity;
  s.batch = c.batch;
  s.reentry_capacity = c.reentry_capacity;
  s.timer_capacity = c.timer_capacity;
  s.dead_letter_capacity = c.dead_letter_capacity;
  s.overflow = c.overflow;
  for (unsigned t = 0; t < type_count; ++t) {
    s.default_lanes.push_back(t);  // Alarm critical, Trade high, Tick normal, Memo low
    s.type_names.push_back(
        std::string(with_type(t, []<class T>() { return bus_t::type_name<T>(); })));
  }
  return s;
}

template <class T>
tachyon_model::dead_letter_view view_of(const tachyon::dead_letter<T>& dl) {
  tachyon_model::dead_letter_view v;
  v.id = dl.id;
  v.event_id = dl.event.id;
  v.type = dl.meta.type_index;
  v.lane = static_cast<unsigned>(dl.meta.lane);
  v.correlation_id = dl.meta.correlation_id;
  v.sequence = dl.meta.sequence;
  v.subscription = std::string(dl.subscription);
  v.attempts = dl.attempts;
  v.what = std::string(dl.what);
  v.when_ns = static_cast<u64>(dl.when.count());
  return v;
}

/// The real bus and what its handlers saw. The log is declared first: it outlives the bus,
/// whose destructor still runs handlers (stop(drain)).
struct real_side {
  std::vector<tachyon_model::call> log;
  std::unique_ptr<bus_t> bus;
  std::map<u64, tachyon::subscription> handles;  // by tag

  explicit real_side(const case_config& c) {
    tachyon::config cfg = bus_config(c);
    cfg.on_error = [this](const tachyon::handler_error& e) {
      tachyon_model::call k;
      k.kind = 'E';
      k.subscription = std::string(e.subscription);
      for (unsigned t = 0; t < type_count; ++t)
        with_type(t, [&]<class T>() {
          if (const T* p = e.get<T>()) k.event_id = p->id;
        });
      fill(k, e.event);
      log.push_back(std::move(k));
    };
    bus = std::make_unique<bus_t>(cfg);
  }
  ~real_side() {
    handles.clear();
    bus.reset();
  }

  static void fill(tachyon_model::call& k, const tachyon::meta& m) {
    k.type = m.type_index;
    k.lane = static_cast<unsigned>(m.lane);
    k.attempt = m.attempt;
    k.flags = m.flags;
    k.correlation_id = m.correlation_id;
    k.sequence = m.sequence;
  }

  std::vector<tachyon_model::dead_letter_view> dead_letters() const {
    std::vector<tachyon_model::dead_letter_view> out;
    bus->visit_dead_letters([&](const auto& dl) { out.push_back(view_of(dl)); });
    return out;
  }

  template <class T>
  void subscribe(const op& o, u64 seed) {
    auto name = std::make_shared<std::string>();
    const behaviour how = o.how;
    tachyon::subscribe_options<T> opts;
    opts.order = o.order;
    if (o.named) opts.name = "h" + std::to_string(o.id);
    if (how.filter_mod != 0)
      opts.filter = [seed, how](const T& ev) { return passes(seed, how, ev.id); };
    opts.retry = o.retry;
    opts.breaker.failure_threshold = o.threshold;
    if (o.threshold != 0) {
      opts.breaker.open_for = std::chrono::nanoseconds(o.open_for);
      opts.breaker.action = o.action;
      if (o.has_counts)
        opts.breaker.counts = [](const std::exception_ptr& e) {
          try {
            std::rethrow_exception(e);
          } catch (const uncounted_failure&) {
            return false;
          } catch (...) {
            return true;
          }
        };
    }
    opts.dead_letters = o.dead_letters;
    auto handler = [this, seed, how, name](const T& ev, const tachyon::meta& m) {
      tachyon_model::call k;
      k.subscription = *name;
      k.event_id = ev.id;
      fill(k, m);
      log.push_back(std::move(k));
      const auto f = fate(seed, how, ev.id, m.attempt);
      if (!f.threw) return;
      if (f.counts) throw counted_failure(f.what);
      throw uncounted_failure(f.what);
    };
    auto sub = bus->subscribe<T>(std::move(handler), std::move(opts));
    // The bus's own name for it (default names are checked against the model's in metrics).
    *name = bus->metrics().subscriptions.back().name;
    handles[o.id] = std::move(sub);
  }
};

/// The model and the map from subscription tags to its subscription numbers.
struct model_side {
  tachyon_model::model m;
  std::map<u64, std::size_t> subs;  // by tag
  explicit model_side(const case_config& c) : m(model_settings(c)) {}
};

// ---- one operation on each side -----------------------------------------------------------------

u64 absolute(u64 now, const std::optional<std::int64_t>& rel) {
  if (!rel) return 0;
  return static_cast<u64>(static_cast<std::int64_t>(now) + *rel);
}

/// How far an advance moves the clock from `now`.
u64 step(const op& o, u64 now) { return o.ns != 0 ? o.ns : (1024 - now % 1024) % 1024; }

std::string batch_string(std::size_t queued, std::size_t dropped, tachyon::result status) {
  return "queued=" + std::to_string(queued) + " dropped=" + std::to_string(dropped) +
         " status=" + std::string(tachyon::to_string(status));
}

std::string replay_string(const tachyon::replay_result& r) {
  return "replayed=" + std::to_string(r.replayed) + " succeeded=" + std::to_string(r.succeeded) +
         " failed=" + std::to_string(r.failed) + " skipped=" + std::to_string(r.skipped);
}

std::string apply(real_side& s, const op& o, u64 seed) {
  bus_t& bus = *s.bus;
  switch (o.kind) {
    case op_kind::publish:
      return with_type(o.type, [&]<class T>() -> std::string {
        tachyon::publish_options opts;
        if (o.lane >= 0) opts.lane = static_cast<tachyon::priority>(o.lane);
        opts.correlation_id = o.corr;
        const u64 now = static_cast<u64>(bus.now().count());
        opts.deadline = std::chrono::nanoseconds(absolute(now, o.deadline));
        opts.not_before = std::chrono::nanoseconds(absolute(now, o.not_before));
        opts.dead_letter_expired = o.dead_letter_expired;
        T ev = make<T>(o.id);
        const tachyon::result r = bus.publish(std::move(ev), opts);
        std::string out(tachyon::to_string(r));
        // result.hpp: on full and stopped an rvalue is left untouched.
        if constexpr (std::is_same_v<T, Memo>)
          if ((r == tachyon::result::full || r == tachyon::result::stopped) &&
              ev.text != make<Memo>(o.id).text)
            out += " (the refused event was moved from)";
        return out;
      });
    case op_kind::publish_batch:
      return with_type(o.type, [&]<class T>() {
        std::vector<T> evs;
        for (unsigned i = 0; i < o.count; ++i) evs.push_back(make<T>(o.id + i));
        std::optional<tachyon::priority> p;
        if (o.lane >= 0) p = static_cast<tachyon::priority>(o.lane);
        const auto r = bus.publish_batch(std::span<const T>(evs), p);
        return batch_string(r.queued, r.dropped, r.status);
      });
    case op_kind::dispatch:
      with_type(o.type, [&]<class T>() { bus.dispatch(make<T>(o.id)); });
      return "done";
    case op_kind::subscribe:
      with_type(o.type, [&]<class T>() { s.subscribe<T>(o, seed); });
      return "subscribed";
    case op_kind::unsubscribe:
      if (auto it = s.handles.find(o.id); it != s.handles.end()) it->second.unsubscribe();
      return "done";
    case op_kind::run_once:
      return std::to_string(bus.run_once());
    case op_kind::poll:
      return std::to_string(bus.poll(o.count == 0 ? SIZE_MAX : o.count));
    case op_kind::advance:
      bus.time_source().advance(
          std::chrono::nanoseconds(step(o, static_cast<u64>(bus.now().count()))));
      return "done";
    case op_kind::replay:
      return replay_string(
          bus.replay_dead_letters([&](const auto& dl) { return picked(o.count, view_of(dl)); }));
    case op_kind::clear:
      return std::to_string(bus.clear_dead_letters());
    case op_kind::stop:
      return std::to_string(bus.stop(o.mode));
  }
  return "?";
}

std::string apply(model_side& s, const op& o, u64 seed) {
  tachyon_model::model& m = s.m;
  switch (o.kind) {
    case op_kind::publish: {
      tachyon_model::publish_options opts;
      if (o.lane >= 0) opts.lane = static_cast<unsigned>(o.lane);
      opts.correlation_id = o.corr;
      opts.deadline_ns = absolute(m.now(), o.deadline);
      opts.not_before_ns = absolute(m.now(), o.not_before);
      opts.dead_letter_expired = o.dead_letter_expired;
      return std::string(tachyon::to_string(m.publish(o.type, o.id, opts)));
    }
    case op_kind::publish_batch: {
      std::vector<u64> ids;
      for (unsigned i = 0; i < o.count; ++i) ids.push_back(o.id + i);
      std::optional<unsigned> lane;
      if (o.lane >= 0) lane = static_cast<unsigned>(o.lane);
      const auto r = m.publish_batch(o.type, ids, lane);
      return batch_string(r.queued, r.dropped, r.status);
    }
    case op_kind::dispatch:
      m.dispatch(o.type, o.id);
      return "done";
    case op_kind::subscribe: {
      tachyon_model::subscription_spec spec;
      spec.type = o.type;
      spec.order = o.order;
      if (o.named) spec.name = "h" + std::to_string(o.id);
      spec.retry = o.retry;
      spec.breaker_threshold = o.threshold;
      spec.breaker_open_for_ns = o.open_for;
      spec.breaker_action = o.action;
      spec.breaker_has_counts = o.has_counts;
      spec.dead_letters = o.dead_letters;
      const behaviour how = o.how;
      if (how.filter_mod != 0) spec.filter = [seed, how](u64 id) { return passes(seed, how, id); };
      spec.body = [seed, how](u64 id, unsigned attempt) { return fate(seed, how, id, attempt); };
      s.subs[o.id] = m.subscribe(std::move(spec));
      return "subscribed";
    }
    case op_kind::unsubscribe:
      if (auto it = s.subs.find(o.id); it != s.subs.end()) m.unsubscribe(it->second);
      return "done";
    case op_kind::run_once:
      return std::to_string(m.run_once());
    case op_kind::poll:
      return std::to_string(m.poll(o.count == 0 ? SIZE_MAX : o.count));
    case op_kind::advance:
      m.advance(step(o, m.now()));
      return "done";
    case op_kind::replay:
      return replay_string(
          m.replay([&](const tachyon_model::dead_letter_view& v) { return picked(o.count, v); }));
    case op_kind::clear:
      return std::to_string(m.clear_dead_letters());
    case op_kind::stop:
      return std::to_string(m.stop(o.mode));
  }
  return "?";
}

// ---- comparison ---------------------------------------------------------------------------------

struct differences {
  std::vector<std::string> lines;
  template <class A, class B>
  void check(const std::string& what, const A& bus, const B& model) {
    if (!(bus == model)) lines.push_back(what + ": bus " + show(bus) + ", model " + show(model));
  }
  static std::string show(const std::string& s) { return "'" + s + "'"; }
  static std::string show(tachyon::breaker_state s) { return std::string(tachyon::to_string(s)); }
  template <class N>
  static std::string show(const N& n) {
    return std::to_string(n);
  }
};

constexpr std::pair<const char*, u64 tachyon::event_counts::*> count_fields[] = {
    {"accepted", &tachyon::event_counts::accepted},
    {"dispatched", &tachyon::event_counts::dispatched},
    {"failed", &tachyon::event_counts::failed},
    {"dropped", &tachyon::event_counts::dropped},
    {"discarded", &tachyon::event_counts::discarded},
    {"rejected_full", &tachyon::event_counts::rejected_full},
    {"rejected_stopped", &tachyon::event_counts::rejected_stopped},
    {"handler_errors", &tachyon::event_counts::handler_errors},
    {"dead_lettered", &tachyon::event_counts::dead_lettered},
    {"expired", &tachyon::event_counts::expired},
    {"retried", &tachyon::event_counts::retried},
    {"short_circuited", &tachyon::event_counts::short_circuited},
    {"replayed", &tachyon::event_counts::replayed},
    {"conflated", &tachyon::event_counts::conflated},
    {"displaced", &tachyon::event_counts::displaced},
    {"vetoed", &tachyon::event_counts::vetoed},
    {"journal_refused", &tachyon::event_counts::journal_refused},
};
static_assert(std::size(count_fields) * sizeof(u64) == sizeof(tachyon::event_counts),
              "every field of event_counts is compared");

void compare_counts(differences& d, const std::string& where, const tachyon::event_counts& bus,
                    const tachyon::event_counts& model) {
  for (const auto& [name, field] : count_fields)
    d.check(where + "." + name, bus.*field, model.*field);
}

void compare_metrics(differences& d, const tachyon::metrics_snapshot& b,
                     const tachyon_model::snapshot& m, const case_config& c) {
  compare_counts(d, "total", b.total, m.total);
  for (unsigned l = 0; l < tachyon_model::lane_count; ++l) {
    const std::string at = std::string("lanes[") + lane_names[l] + "]";
    compare_counts(d, at + ".counts", b.lanes[l].counts, m.lanes[l]);
    d.check(at + ".depth", b.lanes[l].depth, m.depth[l]);
    d.check(at + ".waiting", b.lanes[l].waiting, m.waiting[l]);
    d.check(at + ".in_flight", b.lanes[l].in_flight, m.lane_in_flight[l]);
    d.check(at + ".capacity", b.lanes[l].capacity, c.lane_capacity);
  }
  d.check("types.size", b.types.size(), m.types.size());
  for (std::size_t t = 0; t < std::min(b.types.size(), m.types.size()); ++t)
    compare_counts(d, "types[" + b.types[t].name + "]", b.types[t].counts, m.types[t]);
  d.check("in_flight", b.in_flight, m.in_flight);
  d.check("batches", b.batches, m.batches);
  d.check("batched_events", b.batched_events, m.batched_events);
  d.check("dead_letters", b.dead_letters, m.dead_letters);
  d.check("dead_letters_evicted", b.dead_letters_evicted, m.dead_letters_evicted);
  d.check("timer_entries", b.timer_entries, m.timer_entries);
  d.check("workers", b.workers, 0u);
  d.check("parks", b.parks, 0u);
  d.check("subscriptions.size", b.subscriptions.size(), m.subscriptions.size());
  for (std::size_t i = 0; i < std::min(b.subscriptions.size(), m.subscriptions.size()); ++i) {
    const auto& x = b.subscriptions[i];
    const auto& y = m.subscriptions[i];
    const std::string at = "subscriptions[" + std::to_string(i) + "]";
    d.check(at + ".name", x.name, y.name);
    d.check(at + ".type", x.type, y.type);
    d.check(at + ".errors", x.errors, y.errors);
    d.check(at + ".retried", x.retried, y.retried);
    d.check(at + ".short_circuited", x.short_circuited, y.short_circuited);
    d.check(at + ".dead_lettered", x.dead_lettered, y.dead_lettered);
    d.check(at + ".breaker", x.breaker, y.breaker);
  }
}

/// Everything observable after one operation; empty when both sides agree.
std::vector<std::string> compare(real_side& r, model_side& s, const std::string& bus_result,
                                 const std::string& model_result, const case_config& c) {
  differences d;
  d.check("result", bus_result, model_result);
  d.check("now", static_cast<u64>(r.bus->now().count()), s.m.now());
  const auto& bl = r.log;
  const auto& ml = s.m.calls();
  if (bl != ml) {
    std::size_t i = 0;
    while (i < bl.size() && i < ml.size() && bl[i] == ml[i]) ++i;
    d.lines.push_back("calls differ from call #" + std::to_string(i) + " (bus made " +
                      std::to_string(bl.size()) + ", model " + std::to_string(ml.size()) + ")");
    for (std::size_t j = i; j < std::min(i + 6, std::max(bl.size(), ml.size())); ++j)
      d.lines.push_back(
          "  #" + std::to_string(j) +
          "  bus: " + (j < bl.size() ? to_string(bl[j]) : std::string("-")) +
          "\n        model: " + (j < ml.size() ? to_string(ml[j]) : std::string("-")));
  }
  compare_metrics(d, r.bus->metrics(), s.m.metrics(), c);
  d.check("dead_letter_count", r.bus->dead_letter_count(), s.m.dead_letters().size());
  const auto bd = r.dead_letters();
  const auto md = s.m.dead_letters();
  if (bd != md) {
    d.lines.push_back("dead letters differ:");
    for (const auto& x : bd) d.lines.push_back("  bus:   " + to_string(x));
    for (const auto& x : md) d.lines.push_back("  model: " + to_string(x));
  }
  return d.lines;
}

// ---- running, shrinking -------------------------------------------------------------------------

struct mismatch {
  std::size_t step = 0;  // the operation after which the sides disagreed
  std::vector<std::string> lines;
};

tachyon_model::coverage total_coverage;

void add(tachyon_model::coverage& into, const tachyon_model::coverage& c) {
  into.retries += c.retries;
  into.retry_timer_full += c.retry_timer_full;
  into.retry_past_deadline += c.retry_past_deadline;
  into.retry_gone += c.retry_gone;
  into.door_full += c.door_full;
  into.ran_in_place += c.ran_in_place;
  into.expired += c.expired;
  into.short_circuits += c.short_circuits;
  into.probes += c.probes;
  into.filtered_breaker += c.filtered_breaker;
  into.not_counted += c.not_counted;
  into.dead_letters += c.dead_letters;
  into.evictions += c.evictions;
  into.replays += c.replays;
  into.replay_skips += c.replay_skips;
  into.discards += c.discards;
  into.displaced += c.displaced;
  into.stepped_over += c.stepped_over;
}

void print_coverage(const tachyon_model::coverage& c) {
  std::printf("paths taken: retries %" PRIu64 " (timer full %" PRIu64 ", past deadline %" PRIu64
              ", subscription gone %" PRIu64 "), door full %" PRIu64
              ", run in place at stop %" PRIu64 ", expired %" PRIu64 ", short circuits %" PRIu64
              ", probes %" PRIu64 ", filtered before a breaker %" PRIu64 ", not counted %" PRIu64
              ", dead letters %" PRIu64 " (evicted %" PRIu64 "), replays %" PRIu64
              " (skipped %" PRIu64 "), discarded at stop %" PRIu64 ", displaced %" PRIu64
              " (deliveries stepped over %" PRIu64 ")\n",
              c.retries, c.retry_timer_full, c.retry_past_deadline, c.retry_gone, c.door_full,
              c.ran_in_place, c.expired, c.short_circuits, c.probes, c.filtered_breaker,
              c.not_counted, c.dead_letters, c.evictions, c.replays, c.replay_skips, c.discards,
              c.displaced, c.stepped_over);
}

/// Runs `ops` on a fresh bus and model; the first operation after which they disagree.
/// `coverage` (if given) receives the model's counts of rare paths.
std::optional<mismatch> run(u64 seed, const case_config& c, const std::vector<op>& ops,
                            bool verbose, tachyon_model::coverage* coverage = nullptr) {
  real_side real(c);
  model_side model(c);
  for (std::size_t i = 0; i < ops.size(); ++i) {
    std::string br, mr;
    try {
      br = apply(real, ops[i], seed);
    } catch (const std::exception& e) {
      br = std::string("threw: ") + e.what();
    }
    try {
      mr = apply(model, ops[i], seed);
    } catch (const std::exception& e) {
      mr = std::string("threw: ") + e.what();
    }
    if (verbose) std::printf("  %3zu  %-60s -> %s\n", i, to_string(ops[i]).c_str(), br.c_str());
    auto lines = compare(real, model, br, mr, c);
    if (!lines.empty()) return mismatch{i, std::move(lines)};
  }
  if (coverage != nullptr) add(*coverage, model.m.covered());
  return std::nullopt;
}

/// Delta debugging (ddmin, bounded by `budget` runs): removes chunks of operations while the
/// sequence still fails, then tries every single removal once more.
std::vector<op> shrink(u64 seed, const case_config& c, std::vector<op> ops, std::size_t budget) {
  auto fails = [&](std::vector<op>& candidate) {
    if (budget == 0) return false;
    --budget;
    const auto m = run(seed, c, candidate, false);
    if (!m) return false;
    candidate.resize(m->step + 1);  // what comes after the first mismatch is not needed
    return true;
  };
  std::size_t n = 2;
  while (ops.size() >= 2 && budget > 0) {
    const std::size_t chunk = (ops.size() + n - 1) / n;
    bool removed = false;
    for (std::size_t start = 0; start < ops.size(); start += chunk) {
      std::vector<op> candidate(ops.begin(), ops.begin() + static_cast<std::ptrdiff_t>(start));
      candidate.insert(
          candidate.end(),
          ops.begin() + static_cast<std::ptrdiff_t>(std::min(start + chunk, ops.size())),
          ops.end());
      if (fails(candidate)) {
        ops = std::move(candidate);
        n = std::max<std::size_t>(n - 1, 2);
        removed = true;
        break;
      }
    }
    if (!removed) {
      if (n >= ops.size()) break;
      n = std::min(ops.size(), n * 2);
    }
  }
  for (std::size_t i = 0; i < ops.size() && budget > 0;) {
    std::vector<op> candidate = ops;
    candidate.erase(candidate.begin() + static_cast<std::ptrdiff_t>(i));
    if (fails(candidate))
      ops = std::move(candidate);
    else
      ++i;
  }
  return ops;
}

void print_failure(u64 seed, const case_config& c, const std::vector<op>& ops, const mismatch& m) {
  std::printf("config: %s\n", to_string(c).c_str());
  for (std::size_t i = 0; i < ops.size(); ++i)
    std::printf("  %3zu  %s\n", i, to_string(ops[i]).c_str());
  std::printf("mismatch after operation %zu:\n", m.step);
  for (const auto& l : m.lines) std::printf("  %s\n", l.c_str());
  std::printf("reproduce: tachyon_differential --seed %" PRIu64 " --cases 1\n", seed);
}

}  // namespace

int main(int argc, char** argv) {
  u64 seed = 1;
  std::size_t cases = 1000, length = 80;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> u64 {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return std::strtoull(argv[++i], nullptr, 10);
    };
    if (a == "--cases")
      cases = value();
    else if (a == "--seed")
      seed = value();
    else if (a == "--ops")
      length = value();
    else if (a == "--verbose")
      verbose = true;
    else {
      std::fprintf(stderr, "usage: %s [--cases N] [--seed S] [--ops N] [--verbose]\n", argv[0]);
      return 2;
    }
  }
  const auto start = std::chrono::steady_clock::now();
  std::size_t ops_run = 0;
  for (std::size_t k = 0; k < cases; ++k) {
    const u64 case_seed = seed + k;
    rng r(mix(case_seed));
    const case_config c = draw_config(r);
    const std::vector<op> ops = draw_ops(r, length / 2 + r.below(static_cast<unsigned>(length)));
    if (verbose) std::printf("case seed %" PRIu64 ": %s\n", case_seed, to_string(c).c_str());
    const auto m = run(case_seed, c, ops, verbose, &total_coverage);
    ops_run += ops.size();
    if (!m) continue;
    std::printf("MISMATCH in case seed %" PRIu64 " (case %zu of %zu)\n", case_seed, k + 1, cases);
    std::vector<op> failing(ops.begin(), ops.begin() + static_cast<std::ptrdiff_t>(m->step + 1));
    print_failure(case_seed, c, failing, *m);
    std::printf("\nshrinking %zu operations...\n", failing.size());
    const std::vector<op> small = shrink(case_seed, c, failing, 4000);
    const auto again = run(case_seed, c, small, false);
    std::printf("shortest failing sequence found (%zu operations):\n", small.size());
    if (again) print_failure(case_seed, c, small, *again);
    return 1;
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%zu cases, %zu operations, bus and model agree (seed %" PRIu64 ", %.1f s)\n", cases,
              ops_run, seed, secs);
  print_coverage(total_coverage);
  return 0;
}
