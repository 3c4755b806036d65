// Failure handling under load: several producers and workers on the real clock, handlers that
// throw by a seeded hash of (event id, subscription, attempt), retries with microsecond
// backoff, breakers that open and close, a small dead-letter queue that evicts while another
// thread replays, visits and clears it, deadlines and not_before (some published from inside
// handlers), and subscriptions that come and go (from another thread and from inside
// handlers) while events flow. Then stop: after the bus went quiet by itself, or racing with
// the producers (drain, discard).
//
// Nothing here depends on timing to pass. Which deliveries fail is fixed by the hash; whether a
// breaker is open, a deadline passed or a retry was still pending when the stop came is not,
// so the test does not predict outcomes: it observes every handler call and derives each
// event's outcome from what the handlers saw (the reference below), then checks that the bus's
// books say exactly that, in total, per lane and per type; that every throw reached the error
// hook; that every dead letter ever parked is visible, evicted, cleared or replayed away; and
// that no event ran twice or without being accepted.
//
// The reference, per accepted event (stop(drain); see verify() for discard):
//   A (never throws, stable) did not run        -> expired (a drain runs everything else)
//   R's last run threw, or B threw or was short-circuited -> dead_lettered
//   F threw, or a churned subscription threw and its retry never ran -> failed
//   otherwise                                   -> dispatched
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bus/books.hpp"
#include "common.hpp"

namespace {

using namespace std::chrono_literals;
using tachyon::result;
using sbus = tachyon::bus<tt::Events>;  // default traits: the real clock

constexpr std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
/// A seeded coin: true for `percent` in 100 of the (id, salt, k) triples, the same every run.
constexpr bool chance(std::uint64_t id, std::uint64_t salt, std::uint64_t k, unsigned percent) {
  return mix(mix(id ^ (salt << 32)) ^ k) % 100 < percent;
}
enum salt : std::uint64_t { s_plan = 1, s_r, s_r_replay, s_b, s_f, s_churn };

std::uint64_t id_of(const tt::Order& o) { return o.id; }
std::uint64_t id_of(const tt::Note& n) { return std::stoull(n.text); }

/// What an event is and how it is published, fixed by its id.
struct plan {
  bool note;  // tt::Note (boxed) or tt::Order (inline)
  tachyon::priority lane;
  std::chrono::nanoseconds deadline{0};  // after bus.now() at publish; 0: none
  std::chrono::nanoseconds not_before{0};
  bool dead_letter_expired = false;
};
plan plan_of(std::uint64_t id) {
  const std::uint64_t x = mix(id ^ (std::uint64_t{s_plan} << 40));
  plan p{(x % 3) == 0, static_cast<tachyon::priority>((x >> 8) % 4)};
  if ((x >> 12) % 8 == 0) p.deadline = std::chrono::nanoseconds(20'000 + (x >> 16) % 400'000);
  if ((x >> 20) % 8 == 0) p.not_before = std::chrono::nanoseconds(1 + (x >> 28) % 200'000);
  p.dead_letter_expired = ((x >> 40) & 1) != 0;
  return p;
}

/// Everything the handlers saw of one event (its own runs, not replays).
struct seen {
  std::atomic<std::uint8_t> accepted{0};
  std::atomic<std::uint8_t> a{0};  // A's runs
  std::atomic<std::uint8_t> r_runs{0};
  std::atomic<std::uint8_t> r_last_threw{0};
  std::atomic<std::uint8_t> r_out_of_order{0};  // a run whose meta::attempt was not its number
  std::atomic<std::uint8_t> b_calls{0};
  std::atomic<std::uint8_t> b_threw{0};
  std::atomic<std::uint8_t> f_calls{0};
  std::atomic<std::uint8_t> f_threw{0};
  std::atomic<std::uint16_t> churn_throws{0};   // first runs of churned subscriptions that threw
  std::atomic<std::uint16_t> churn_retries{0};  // their retries that ran (these never throw)
};

enum class outcome { dispatched, failed, dead_lettered, expired, discarded, unknown };

/// One handle shared by the thread that made it and the handler that may remove it; whoever
/// claims it first is the only one to touch it (as in test_stress.cpp).
struct handle_slot {
  std::atomic<int> state{0};  // 0: being set up, 1: armed, 2: taken
  tachyon::subscription handle;
  void arm() { state.store(1, std::memory_order_release); }
  bool claim() {
    int armed = 1;
    return state.compare_exchange_strong(armed, 2, std::memory_order_acq_rel);
  }
};

/// A count and a checksum (the sum of the event ids), kept by the handlers as they run.
struct sum_counter {
  std::atomic<std::uint64_t> n{0}, sum{0};
  void add(std::uint64_t id) {
    n.fetch_add(1);
    sum.fetch_add(id);
  }
};
enum stable_sub : std::size_t { sub_a, sub_r, sub_b, sub_f, stable_subs };

struct dl_sighting {
  std::uint64_t event;
  std::string subscription;
};

/// The test's side of the books. Declared before the bus (its handlers and hook point here).
struct world {
  world(std::uint64_t producers, std::uint64_t per_producer)
      : per(per_producer), parents(producers * per_producer), st(2 * parents + 1) {}

  const std::uint64_t per;      // events per producer
  const std::uint64_t parents;  // ids 1 .. parents are published by producers; a child of
                                // parent p, published from inside a handler, has id parents + p
  std::vector<seen> st;
  sbus* bus = nullptr;

  // Every throw, as the handlers count them and as the error hook saw them.
  std::atomic<std::uint64_t> throws{0}, throw_sum{0}, hook_calls{0}, hook_sum{0};
  std::array<std::atomic<std::uint64_t>, 2> r_throws{}, r_replay_throws{}, b_throws{}, f_throws{};
  std::atomic<std::uint64_t> churn_subscribed{0}, stray{0};
  // Each stable subscription's successful runs (not replays), per type: count and checksum.
  std::array<std::array<sum_counter, stable_subs>, 2> ok{};

  std::mutex lock;                                    // guards what follows
  std::vector<std::shared_ptr<handle_slot>> adopted;  // subscribed from inside handlers
  std::vector<dl_sighting> sightings;                 // dead letters the collector saw
  tachyon::replay_result replays;
  std::uint64_t cleared = 0;

  void threw(std::uint64_t id) {
    throws.fetch_add(1);
    throw_sum.fetch_add(id);
  }
  /// The record of event `id`, run with meta `m` by a handler of type `ti` (0 order, 1 note);
  /// null, counted as stray, if the event is not one the test published as it sees it.
  seen* at(std::uint64_t id, const tachyon::meta& m, std::size_t ti) {
    if (id == 0 || id >= st.size() || m.correlation_id != id || m.lane != plan_of(id).lane ||
        plan_of(id).note != (ti == 1)) {
      stray.fetch_add(1);
      return nullptr;
    }
    return &st[id];
  }
  bool b_down(std::uint64_t id) const {  // B's dependency is down for runs of 64 events
    const std::uint64_t i = (id - 1) % parents % per;
    return mix(i / 64 ^ (std::uint64_t{s_b} << 40)) % 4 == 0;
  }

  /// Publishes event `id` as its plan says; true when accepted.
  result publish(std::uint64_t id) {
    const plan p = plan_of(id);
    tachyon::publish_options o{.lane = p.lane, .correlation_id = id};
    const auto now = bus->now();
    if (p.deadline.count() != 0) o.deadline = now + p.deadline;
    if (p.not_before.count() != 0) o.not_before = now + p.not_before;
    o.dead_letter_expired = p.dead_letter_expired;
    const result r = p.note ? bus->publish(tt::Note{std::to_string(id)}, o)
                            : bus->publish(tt::Order{id, 1.0}, o);
    if (r == result::ok) st[id].accepted.store(1);
    return r;
  }

  template <class T>
  auto churn_handler(std::uint64_t seq, std::shared_ptr<handle_slot> self, int remove_after) {
    return [this, seq, self = std::move(self), remove_after,
            calls = std::make_shared<std::atomic<int>>(0)](const T& ev, const tachyon::meta& m) {
      if (m.flags & tachyon::meta_flags::replayed) return;
      const std::uint64_t id = id_of(ev);
      seen* s = at(id, m, std::is_same_v<T, tt::Note> ? 1 : 0);
      if (s == nullptr) return;
      if (self && calls->fetch_add(1) + 1 == remove_after && self->claim())
        self->handle.unsubscribe();  // from inside, possibly while its retries are pending
      if (m.attempt == 0) {
        if (chance(id, s_churn, seq, 15)) {
          s->churn_throws.fetch_add(1);
          threw(id);
          throw std::runtime_error("churn");
        }
      } else {
        s->churn_retries.fetch_add(1);
      }
    };
  }
  template <class T>
  tachyon::subscribe_options<T> churn_options() {
    return {.order = static_cast<int>(churn_subscribed.load() % 3) - 1,
            .name = "churn",
            .retry = {.max_attempts = 2, .initial_delay = 5us, .max_delay = 5us},
            .dead_letters = false};
  }
  /// A churned subscription, made on any thread (also from inside a handler).
  template <class T>
  tachyon::subscription churn(int remove_after, std::shared_ptr<handle_slot> self = nullptr) {
    const std::uint64_t seq = churn_subscribed.fetch_add(1);
    return bus->subscribe<T>(churn_handler<T>(seq, std::move(self), remove_after),
                             churn_options<T>());
  }
};

/// The four stable subscriptions of one event type.
template <class T>
std::vector<tachyon::subscription> subscribe_stable(world& w, const char* tname) {
  constexpr std::size_t ti = std::is_same_v<T, tt::Note> ? 1 : 0;
  std::vector<tachyon::subscription> subs;
  // A: never throws; publishes a child (deadline, not_before, both) and subscribes a churned
  // handler, from inside, for some events.
  subs.push_back(w.bus->subscribe<T>(
      [&w](const T& ev, const tachyon::meta& m) {
        const std::uint64_t id = id_of(ev);
        if (m.flags & tachyon::meta_flags::replayed) return;
        seen* s = w.at(id, m, ti);
        if (s == nullptr) return;
        s->a.fetch_add(1);
        w.ok[ti][sub_a].add(id);
        if (id <= w.parents && id % 7 == 0) (void)w.publish(w.parents + id);
        if (id % 97 == 0) {
          auto slot = std::make_shared<handle_slot>();
          slot->handle = w.churn<T>(0);
          slot->arm();
          std::lock_guard g(w.lock);
          w.adopted.push_back(std::move(slot));
        }
      },
      {.order = -10, .name = std::string("A.") + tname}));
  // R: retried, dead-lettered when its retries run out (or its deadline passes first).
  subs.push_back(w.bus->subscribe<T>(
      [&w](const T& ev, const tachyon::meta& m) {
        const std::uint64_t id = id_of(ev);
        if (m.flags & tachyon::meta_flags::replayed) {
          if (chance(id, s_r_replay, m.attempt, 50)) {
            w.r_replay_throws[ti].fetch_add(1);
            w.threw(id);
            throw std::runtime_error("R, replayed");
          }
          return;
        }
        seen* s = w.at(id, m, ti);
        if (s == nullptr) return;
        if (s->r_runs.fetch_add(1) != m.attempt) s->r_out_of_order.store(1);
        const bool fail = chance(id, s_r, m.attempt, 35);
        s->r_last_threw.store(fail ? 1 : 0);
        if (fail) {
          w.r_throws[ti].fetch_add(1);
          w.threw(id);
          if (m.attempt == 1) throw id;  // not a std::exception
          throw std::runtime_error("R");
        }
        w.ok[ti][sub_r].add(id);
      },
      {.name = std::string("R.") + tname,
       .retry = {.max_attempts = 3,
                 .initial_delay = 5us,
                 .max_delay = 40us,
                 .multiplier = 2.0,
                 .jitter = 0.5}}));
  // B: behind a breaker (threshold 1 for orders: every failure opens it), dead-lettered when
  // it throws or is short-circuited; a logic_error is not counted by the breaker.
  subs.push_back(w.bus->subscribe<T>(
      [&w](const T& ev, const tachyon::meta& m) {
        const std::uint64_t id = id_of(ev);
        if (m.flags & tachyon::meta_flags::replayed) return;
        seen* s = w.at(id, m, ti);
        if (s == nullptr) return;
        s->b_calls.fetch_add(1);
        const bool down = w.b_down(id);
        if (down || chance(id, s_b, 0, 3)) {
          s->b_threw.store(1);
          w.b_throws[ti].fetch_add(1);
          w.threw(id);
          if (down) throw std::runtime_error("B's dependency is down");
          throw std::logic_error("B, not counted by its breaker");
        }
        w.ok[ti][sub_b].add(id);
      },
      {.name = std::string("B.") + tname,
       .breaker = {.failure_threshold = ti == 0 ? 1u : 3u,
                   .open_for = 50us,
                   .action = tachyon::when_open::dead_letter,
                   .counts = tt::counts_all_but_logic_error}}));
  // F: plain, no dead letters: its failures read `failed`.
  subs.push_back(w.bus->subscribe<T>(
      [&w](const T& ev, const tachyon::meta& m) {
        const std::uint64_t id = id_of(ev);
        if (m.flags & tachyon::meta_flags::replayed) return;
        seen* s = w.at(id, m, ti);
        if (s == nullptr) return;
        s->f_calls.fetch_add(1);
        if (chance(id, s_f, 0, 3)) {
          s->f_threw.store(1);
          w.f_throws[ti].fetch_add(1);
          w.threw(id);
          throw 7;
        }
        w.ok[ti][sub_f].add(id);
      },
      {.order = 10, .name = std::string("F.") + tname, .dead_letters = false}));
  return subs;
}

/// Checks one dead letter the collector sees; records it for the final check.
struct collector_view {
  world& w;
  template <class T>
  void operator()(const tachyon::dead_letter<T>& dl) const {
    if constexpr (std::is_same_v<T, tt::Order> || std::is_same_v<T, tt::Note>) {
      const std::uint64_t id = id_of(dl.event);
      EXPECT_EQ(dl.meta.correlation_id, id);
      std::lock_guard g(w.lock);
      w.sightings.push_back({id, std::string(dl.subscription)});
    } else {
      ADD_FAILURE() << "a dead letter of a type nobody published";
    }
  }
};

enum class ending { quiet_then_drain, drain_racing, discard_racing };

struct sizes {
  std::uint64_t producers = 3;
  std::uint64_t per_producer = tt::sanitized() ? 1500 : 10000;
  std::uint32_t workers = 3;
};

tachyon::config stress_config(world& w, std::uint32_t workers) {
  tachyon::config cfg;
  cfg.workers = workers;
  cfg.lane_capacity = 128;
  cfg.batch = 16;
  cfg.overflow = tachyon::overflow::block;
  cfg.block_timeout = 20s;  // a publisher blocked this long is stuck: it fails, never hangs
  cfg.producers = 6;
  cfg.reentry_capacity = 8;       // the door fills: due deliveries wait in the timer
  cfg.timer_capacity = 512;       // may fill: a retry then goes straight to the dead letters
  cfg.dead_letter_capacity = 32;  // fills and evicts
  cfg.on_error = [&w](const tachyon::handler_error& e) {
    std::uint64_t id = 0;
    if (const auto* o = e.get<tt::Order>()) id = o->id;
    if (const auto* n = e.get<tt::Note>()) id = std::stoull(n->text);
    w.hook_calls.fetch_add(1);
    w.hook_sum.fetch_add(id);
    if (id % 5 == 0) throw std::runtime_error("a hook that throws");
  };
  return cfg;
}

const tachyon::subscription_metrics* find_sub(const tachyon::metrics_snapshot& m,
                                              const std::string& name) {
  for (const auto& s : m.subscriptions)
    if (s.name == name) return &s;
  ADD_FAILURE() << "no subscription " << name;
  return nullptr;
}

using tt::finishes;

struct tally {
  std::uint64_t n = 0, sum = 0;
  void add(std::uint64_t id) {
    ++n;
    sum += id;
  }
};

void verify(world& w, const tachyon::metrics_snapshot& m, ending how, std::uint64_t discarded) {
  constexpr std::size_t order_t = tt::Events::index_of<tt::Order>();
  constexpr std::size_t note_t = tt::Events::index_of<tt::Note>();
  EXPECT_EQ(w.stray.load(), 0u);
  // [type 0 order / 1 note][outcome], and [lane][outcome]: count and sum of ids.
  std::array<std::array<tally, 6>, 2> by_type{};
  std::array<std::array<tally, 6>, 4> by_lane{};
  std::array<tally, 2> accepted_t{}, never_ran_t{};
  std::array<tally, 4> accepted_l{}, never_ran_l{};
  std::array<std::uint64_t, 2> r_dl{}, b_dl{}, b_short{};
  std::array<std::array<tally, stable_subs>, 2> succeeded{};  // what each record says
  std::uint64_t expired_dl_max = 0, retry_runs = 0, certain_dl = 0, bad = 0;
  auto complain = [&](std::uint64_t id, const char* what) {
    if (++bad <= 10) ADD_FAILURE() << "event " << id << ": " << what;
  };
  for (std::uint64_t id = 1; id < w.st.size(); ++id) {
    seen& s = w.st[id];
    const plan p = plan_of(id);
    const std::size_t t = p.note ? 1 : 0;
    const auto l = static_cast<std::size_t>(p.lane);
    const bool acc = s.accepted.load() != 0;
    const unsigned a = s.a.load(), r_runs = s.r_runs.load(), b_calls = s.b_calls.load();
    const unsigned f_calls = s.f_calls.load();
    if (!acc) {
      if (a + r_runs + b_calls + f_calls + s.churn_throws.load() + s.churn_retries.load() != 0)
        complain(id, "ran without being accepted");
      continue;
    }
    accepted_t[t].add(id);
    accepted_l[l].add(id);
    if (a > 1) complain(id, "A ran more than once");
    if (a == 0) {
      if (r_runs + b_calls + f_calls + s.churn_throws.load() + s.churn_retries.load() != 0)
        complain(id, "a handler ran but A did not");
      never_ran_t[t].add(id);
      never_ran_l[l].add(id);
      if (how != ending::discard_racing) {  // a drain runs everything: it expired
        by_type[t][static_cast<int>(outcome::expired)].add(id);
        by_lane[l][static_cast<int>(outcome::expired)].add(id);
      }
      expired_dl_max += p.dead_letter_expired;
      continue;
    }
    if (r_runs == 0 || r_runs > 3) complain(id, "R ran neither once nor up to three times");
    if (s.r_out_of_order.load()) complain(id, "R's attempts out of order");
    if (b_calls > 1) complain(id, "B ran more than once");
    if (f_calls != 1) complain(id, "F did not run exactly once");
    if (s.churn_retries.load() > s.churn_throws.load()) complain(id, "a churn retry too many");
    retry_runs += (r_runs > 0 ? r_runs - 1 : 0) + s.churn_retries.load();
    const bool r_failed = s.r_last_threw.load() != 0;
    const bool b_failed = b_calls == 0 || s.b_threw.load() != 0;
    const bool failed = s.f_threw.load() != 0 || s.churn_throws.load() > s.churn_retries.load();
    succeeded[t][sub_a].add(id);
    if (!r_failed) succeeded[t][sub_r].add(id);
    if (!b_failed) succeeded[t][sub_b].add(id);
    if (!s.f_threw.load()) succeeded[t][sub_f].add(id);
    r_dl[t] += r_failed;
    b_dl[t] += b_failed;
    b_short[t] += b_calls == 0;
    // R's last run threw on its last attempt, or B: parked for sure, even under a discard.
    certain_dl += b_failed || (r_failed && r_runs == 3);
    outcome o = outcome::dispatched;
    if (b_failed || (r_failed && r_runs == 3))
      o = outcome::dead_lettered;
    else if (r_failed || s.churn_throws.load() > s.churn_retries.load())
      // Under a drain R's unfinished retries were parked (its deadline passed, or the timer was
      // full) and a churned one failed (its handler gone, its deadline passed). Under a
      // discard, a retry still pending reads `discarded`, and one that failed after the discard
      // began is parked at once (R) or fails (churn): the reference cannot tell which.
      o = how == ending::discard_racing ? outcome::unknown
          : r_failed                    ? outcome::dead_lettered
                                        : outcome::failed;
    else if (failed)
      o = outcome::failed;
    by_type[t][static_cast<int>(o)].add(id);
    by_lane[l][static_cast<int>(o)].add(id);
  }
  EXPECT_EQ(bad, 0u);
  // The handlers' own counts and checksums of their successes against the per-event records;
  // and the outcomes partition the accepted events, counts and checksums.
  for (std::size_t t = 0; t < 2; ++t) {
    for (std::size_t k = 0; k < stable_subs; ++k) {
      SCOPED_TRACE("type " + std::to_string(t) + ", subscription " + "ARBF"[k]);
      EXPECT_EQ(w.ok[t][k].n.load(), succeeded[t][k].n);
      EXPECT_EQ(w.ok[t][k].sum.load(), succeeded[t][k].sum);
    }
    tally all = never_ran_t[t];
    if (how != ending::discard_racing) all = {};
    for (const auto& o : by_type[t]) {
      all.n += o.n;
      all.sum += o.sum;
    }
    EXPECT_EQ(all.n, accepted_t[t].n);
    EXPECT_EQ(all.sum, accepted_t[t].sum);
  }

  // The bus's books against the handlers' reference, per type and per lane.
  auto check = [&](const tachyon::event_counts& c, const std::array<tally, 6>& ref,
                   const tally& acc, const tally& never, const std::string& where) {
    SCOPED_TRACE(where);
    EXPECT_EQ(c.accepted, acc.n);
    EXPECT_EQ(c.dropped, 0u);
    EXPECT_EQ(c.dispatched, ref[static_cast<int>(outcome::dispatched)].n);
    if (how != ending::discard_racing) {
      EXPECT_EQ(c.failed, ref[static_cast<int>(outcome::failed)].n);
      EXPECT_EQ(c.dead_lettered, ref[static_cast<int>(outcome::dead_lettered)].n);
      EXPECT_EQ(c.expired, ref[static_cast<int>(outcome::expired)].n);
      EXPECT_EQ(c.discarded, 0u);
    } else {
      EXPECT_GE(c.expired + c.discarded, never.n);  // an event that never ran
      EXPECT_LE(c.expired, never.n);                // ... and only such an event expires
      EXPECT_GE(c.failed, ref[static_cast<int>(outcome::failed)].n);
      EXPECT_GE(c.dead_lettered, ref[static_cast<int>(outcome::dead_lettered)].n);
      EXPECT_EQ(c.failed + c.dead_lettered + c.expired + c.discarded,
                acc.n - ref[static_cast<int>(outcome::dispatched)].n);
    }
  };
  check(m.types[order_t].counts, by_type[0], accepted_t[0], never_ran_t[0], "orders");
  check(m.types[note_t].counts, by_type[1], accepted_t[1], never_ran_t[1], "notes");
  for (std::size_t l = 0; l < 4; ++l)
    check(m.lanes[l].counts, by_lane[l], accepted_l[l], never_ran_l[l],
          "lane " + std::to_string(l));
  tt::expect_books_balance(m);
  if (how == ending::discard_racing) {
    EXPECT_LE(discarded, m.total.discarded);
  }

  // Every throw counted by the bus and seen by the hook, with the same ids.
  EXPECT_EQ(m.total.handler_errors, w.throws.load());
  EXPECT_EQ(w.hook_calls.load(), w.throws.load());
  EXPECT_EQ(w.hook_sum.load(), w.throw_sum.load());
  EXPECT_GE(m.total.retried, retry_runs);  // a retry may also expire, or find its handler gone
  EXPECT_EQ(m.total.replayed, w.replays.replayed);

  // Per stable subscription: what its handler saw against what the bus counted.
  const char* names[2] = {"Order", "Note"};
  std::uint64_t parked_by_subs = 0;
  for (std::size_t t = 0; t < 2; ++t) {
    SCOPED_TRACE(names[t]);
    const auto* r = find_sub(m, std::string("R.") + names[t]);
    const auto* b = find_sub(m, std::string("B.") + names[t]);
    const auto* f = find_sub(m, std::string("F.") + names[t]);
    if (r == nullptr || b == nullptr || f == nullptr) return;
    EXPECT_EQ(r->errors, w.r_throws[t].load() + w.r_replay_throws[t].load());
    EXPECT_EQ(b->errors, w.b_throws[t].load());
    EXPECT_EQ(f->errors, w.f_throws[t].load());
    EXPECT_EQ(b->short_circuited, b_short[t]);
    EXPECT_EQ(b->dead_lettered, b_dl[t]);
    if (how != ending::discard_racing) {
      EXPECT_EQ(r->dead_lettered, r_dl[t]);
    }
    EXPECT_LE(r->dead_lettered, r_dl[t]);
    EXPECT_EQ(f->dead_lettered, 0u);
    parked_by_subs += r->dead_lettered + b->dead_lettered;
  }
  EXPECT_GE(parked_by_subs, certain_dl);

  // Every dead letter ever parked: visible, evicted, cleared or replayed successfully. The
  // entries of expired events (no subscription) are the rest: exactly the expired events that
  // asked for it, under a drain.
  const std::uint64_t entries =
      m.dead_letters + m.dead_letters_evicted + w.cleared + w.replays.succeeded;
  EXPECT_GE(entries, parked_by_subs);
  EXPECT_LE(entries - parked_by_subs, expired_dl_max);
  if (how != ending::discard_racing) {
    std::uint64_t expired_asking = 0;
    for (std::uint64_t id = 1; id < w.st.size(); ++id)
      expired_asking +=
          w.st[id].accepted.load() && w.st[id].a.load() == 0 && plan_of(id).dead_letter_expired;
    EXPECT_EQ(entries - parked_by_subs, expired_asking);
  }

  // What the collector saw, and what is left: each entry is one the reference parks.
  w.bus->visit_dead_letters(collector_view{w});
  std::uint64_t inconsistent = 0;
  for (const auto& d : w.sightings) {
    seen& s = w.st[d.event];
    const bool ran = s.a.load() != 0;
    bool ok = s.accepted.load() != 0;
    if (d.subscription.empty())
      ok = ok && !ran && plan_of(d.event).dead_letter_expired;
    else if (d.subscription[0] == 'R')
      ok = ok && ran && s.r_last_threw.load() != 0;
    else if (d.subscription[0] == 'B')
      ok = ok && ran && (s.b_calls.load() == 0 || s.b_threw.load() != 0);
    else
      ok = false;
    if (!ok && ++inconsistent <= 5)
      ADD_FAILURE() << "dead letter of event " << d.event << " for '" << d.subscription
                    << "' that the reference does not park";
  }
  EXPECT_EQ(inconsistent, 0u);

  std::printf(
      "[ stress   ] accepted %llu: dispatched %llu, failed %llu, dead_lettered %llu, expired "
      "%llu, discarded %llu; retried %llu, short_circuited %llu, replayed %llu, dead letters "
      "evicted %llu, cleared %llu; churned subscriptions %llu\n",
      static_cast<unsigned long long>(m.total.accepted),
      static_cast<unsigned long long>(m.total.dispatched),
      static_cast<unsigned long long>(m.total.failed),
      static_cast<unsigned long long>(m.total.dead_lettered),
      static_cast<unsigned long long>(m.total.expired),
      static_cast<unsigned long long>(m.total.discarded),
      static_cast<unsigned long long>(m.total.retried),
      static_cast<unsigned long long>(m.total.short_circuited),
      static_cast<unsigned long long>(m.total.replayed),
      static_cast<unsigned long long>(m.dead_letters_evicted),
      static_cast<unsigned long long>(w.cleared),
      static_cast<unsigned long long>(w.churn_subscribed.load()));
}

void run(ending how, sizes z) {
  const int notes_before = tt::Note::live.load();
  {
    world w(z.producers, z.per_producer);
    sbus bus{stress_config(w, z.workers)};
    w.bus = &bus;
    auto orders = subscribe_stable<tt::Order>(w, "Order");
    auto notes = subscribe_stable<tt::Note>(w, "Note");

    std::atomic<bool> producing{true};
    std::atomic<std::uint64_t> published{0};

    // Churn: subscriptions that come and go from outside, some removing themselves from
    // inside on their n-th call; and the ones subscribed from inside handlers, removed here.
    std::thread churner([&] {
      std::vector<std::shared_ptr<handle_slot>> window;
      for (std::uint64_t round = 0; producing.load(); ++round) {
        auto slot = std::make_shared<handle_slot>();
        const int remove_after = round % 4 == 1 ? 1 + static_cast<int>(round % 13) : 0;
        if (round % 2 == 0)
          slot->handle = w.churn<tt::Order>(remove_after, remove_after != 0 ? slot : nullptr);
        else
          slot->handle = w.churn<tt::Note>(remove_after, remove_after != 0 ? slot : nullptr);
        slot->arm();
        window.push_back(std::move(slot));
        if (window.size() > 4) {
          if (window.front()->claim()) window.front()->handle.unsubscribe();
          window.erase(window.begin());
        }
        std::vector<std::shared_ptr<handle_slot>> adopted;
        {
          std::lock_guard g(w.lock);
          adopted.swap(w.adopted);
        }
        for (auto& a : adopted)
          if (a->claim()) a->handle.unsubscribe();
        std::this_thread::yield();
      }
      for (auto& s : window)
        if (s->claim()) s->handle.unsubscribe();
    });

    // The dead letters: replayed (some), visited and cleared, while they fill and evict.
    std::thread collector([&] {
      for (std::uint64_t round = 0; producing.load(); ++round) {
        // Not the entries of expired events: their replay runs every handler, B through its
        // breaker, which would short-circuit replays too and blur B's count of its own.
        const auto r = bus.replay_dead_letters([&](const auto& dl) {
          collector_view{w}(dl);
          return !dl.subscription.empty() && dl.id % 3 == 0;
        });
        bus.visit_dead_letters(collector_view{w});
        std::lock_guard g(w.lock);
        w.replays.replayed += r.replayed;
        w.replays.succeeded += r.succeeded;
        w.replays.failed += r.failed;
        w.replays.skipped += r.skipped;
        if (round % 16 == 15) w.cleared += bus.clear_dead_letters();
      }
    });

    std::vector<std::thread> producers;
    for (std::uint64_t p = 0; p < z.producers; ++p) {
      producers.emplace_back([&, p] {
        for (std::uint64_t i = 0; i < z.per_producer; ++i) {
          const std::uint64_t id = p * z.per_producer + i + 1;
          const result r = w.publish(id);
          published.fetch_add(1);
          if (r == result::stopped) {
            EXPECT_NE(how, ending::quiet_then_drain);
            return;
          }
          // full: a delayed publish whose timer was full (not accepted, and fine), or a
          // publisher blocked past block_timeout, far beyond any healthy wait: stuck.
          EXPECT_TRUE(r == result::ok || (r == result::full && plan_of(id).not_before.count()))
              << "event " << id << ": " << static_cast<int>(r);
        }
      });
    }

    std::uint64_t discarded = 0;
    std::atomic<bool> stopped{false};
    std::thread stopper;
    if (how != ending::quiet_then_drain) {
      stopper = std::thread([&] {
        const std::uint64_t half = z.producers * z.per_producer / 2;
        EXPECT_TRUE(tt::eventually([&] { return published.load() >= half; }));
        discarded = bus.stop(how == ending::discard_racing ? tachyon::stop_mode::discard
                                                           : tachyon::stop_mode::drain);
        stopped = true;
      });
    }
    for (auto& t : producers) t.join();
    if (stopper.joinable() && !tt::eventually([&] { return stopped.load(); })) {
      ADD_FAILURE() << "stop() racing with the producers did not return: stuck";
      std::fflush(stdout);
      std::abort();  // the stuck stop holds the bus: nothing can be cleaned up
    }
    if (how == ending::quiet_then_drain) {
      // The workers alone must run every retry and delayed event to its end: bounded, never a
      // sleep. Quiet: nothing in flight, nothing in the timer, the counters settled.
      EXPECT_TRUE(tt::eventually([&] {
        const auto m = bus.metrics();
        return m.in_flight == 0 && m.timer_entries == 0 && m.total.unsettled() == 0;
      })) << bus.metrics().to_json();
    }
    producing = false;
    churner.join();
    collector.join();
    if (stopper.joinable()) {
      stopper.join();
      finishes("stop() after a stop racing with the producers", [&] { (void)bus.stop(); });
    } else {
      finishes("stop(drain) of a quiet bus", [&] { EXPECT_EQ(bus.stop(), 0u); });
    }
    {
      std::lock_guard g(w.lock);
      for (auto& a : w.adopted)
        if (a->claim()) a->handle.unsubscribe();
      w.adopted.clear();
    }
    verify(w, bus.metrics(), how, discarded);
  }
  EXPECT_EQ(tt::Note::live.load(), notes_before);  // every boxed payload freed, wherever it was
}

TEST(FailuresStress, ThreeWorkersRunEveryRetryAndDelayByThemselvesThenTheBooksBalance) {
  run(ending::quiet_then_drain, {});
}

TEST(FailuresStress, StopDrainRacingProducersRetriesAndReplaysSettlesEveryEvent) {
  run(ending::drain_racing, {.workers = 2});
}

TEST(FailuresStress, StopDiscardRacingProducersRetriesAndReplaysSettlesEveryEvent) {
  run(ending::discard_racing, {.workers = 3});
}

}  // namespace
