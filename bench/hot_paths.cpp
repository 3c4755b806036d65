// A fixed, single-threaded workload for perf/callgrind: each hot path is called through a
// noinline wrapper exactly `n` times, so callgrind's inclusive count for the wrapper divided
// by n is the instructions per operation. Deterministic: same binary, same count.
//
//   op_publish          bus::publish of an 8-byte event (manual mode, lane never full)
//   op_drain            bus::poll draining 4000 events through one handler (per event: / 4000)
//   op_drain_timed      op_drain on a second bus, of its own event type (so that no code of
//                       the two is shared or folded), with config::latency_histograms on
//   op_drain_breaker    op_drain on a third bus, of its own event type, whose one handler has a
//                       circuit breaker (failure_threshold 5) and never fails: the breaker's
//                       success path, exact (compare with op_drain)
//   op_dispatch         bus::dispatch with one handler, metrics on (they always are)
//   op_publish_keyed    op_publish on a bus of its own, with publish_options::key cycling over
//                       64 keys (hot_paths_keyed.cpp; compare with op_publish)
//   op_drain_keyed      op_drain of those keyed events, 64 strands backed up; op_drain_one_key
//                       the same under one key (hot_paths_keyed.cpp; compare with op_drain)
//   op_drain_serial     op_drain through one subscribe_options::serial handler, uncontended
//                       (hot_paths_keyed.cpp; compare with op_drain)
//   op_enqueue_mc       the peer: moodycamel try_enqueue with a producer token
//   op_hop              one event through the whole hop, single-threaded: publish it, then
//                       run_once() drains a batch of one and the handler stores to a flag;
//                       the per-event work of a round trip, without the waiting
//   op_hop_mc           the peer's hop: enqueue with a token, bulk dequeue with a token, store
//   op_publish_conflated
//                       bus::publish of a 16-byte event registered with conflate_by, 8 keys
//                       round-robin, the lane drained each round: after a key's first event of
//                       the round, each publish replaces the waiting one (a box allocated and
//                       stamped, a CAS, the old box freed). In its own translation unit
//                       (hot_paths_conflated.cpp): one more publish path here would change
//                       GCC's inlining of the others, and their counts with it.
// The optional features' rows are in hot_paths_features.cpp (feature_round).
// The NATS bridge's rows (a type not exported, on a bus with a bridge attached and on its twin
// without) are in hot_paths_bridged.cpp (bridged_rounds).
// The journal's rows (a journaled type's publish and drained event with config::journal on, and
// on its twin with it off) are in hot_paths_journaled.cpp (journaled_rounds).
//   op_two_hops         request/reply by hand (manual mode; hot_paths_request.cpp): publish Ask
//                       with a correlation id, run_once() runs its handler, which publishes
//                       Answer with that id, run_once() runs Answer's handler (a store)
//   op_request          the same exchange through the blocking bus::request<Answer> (manual
//                       mode: the call drives the bus; Answer has only the replies subscription)
//
// The request/reply pair lives in a translation unit of its own: GCC caps how much a unit may
// grow by inlining, and the request machinery in this one left publish()'s admission out of
// line in op_publish (97 -> 170 instructions), which says nothing about publish().
#include <concurrentqueue/concurrentqueue.h>
#include <tachyon/tachyon.hpp>

#include <cstdio>
#include <cstdlib>

std::uint64_t feature_round(std::uint64_t per_round, std::uint64_t& sink);
/// hot_paths_request.cpp: runs op_two_hops and op_request `n` times each; returns failures.
std::uint64_t run_request_ops(std::uint64_t n);
/// hot_paths_keyed.cpp: one round of its ops (keyed events, a serial handler); returns failures. In
/// a file of its own so that its bus's code does not change what GCC inlines here (one more bus
/// type in this file made op_hop 15 instructions dearer, with no change to the library).
std::uint64_t keyed_round(std::uint64_t per_round, std::uint64_t& sink);

namespace {

struct Ping {
  std::uint64_t seq;
};
using Events = tachyon::registry<Ping>;
using bus_t = tachyon::bus<Events>;
struct Pong {
  std::uint64_t seq;
};
using timed_bus_t = tachyon::bus<tachyon::registry<Pong>>;
struct Guarded {
  std::uint64_t seq;
};
using breaker_bus_t = tachyon::bus<tachyon::registry<Guarded>>;

[[gnu::noinline]] tachyon::result op_publish(bus_t& b, std::uint64_t i) {
  return b.publish(Ping{i});
}
[[gnu::noinline]] std::size_t op_drain(bus_t& b) { return b.poll(); }
// no_icf: its machine code is op_drain's, and GCC would otherwise fold the two into one.
[[gnu::noinline, gnu::no_icf]] std::size_t op_drain_timed(timed_bus_t& b) { return b.poll(); }
[[gnu::noinline, gnu::no_icf]] std::size_t op_drain_breaker(breaker_bus_t& b) { return b.poll(); }
[[gnu::noinline]] void op_dispatch(bus_t& b, std::uint64_t i) { b.dispatch(Ping{i}); }
[[gnu::noinline]] std::size_t op_hop(bus_t& b, std::uint64_t i) {
  (void)b.publish(Ping{i});
  return b.run_once();
}
[[gnu::noinline]] std::size_t op_hop_mc(moodycamel::ConcurrentQueue<Ping>& q,
                                        moodycamel::ProducerToken& p, moodycamel::ConsumerToken& c,
                                        std::uint64_t i, std::uint64_t& flag) {
  (void)q.try_enqueue(p, Ping{i});
  Ping buf[64];
  const std::size_t n = q.try_dequeue_bulk(c, buf, 64);
  for (std::size_t k = 0; k < n; ++k) flag = buf[k].seq;
  return n;
}
[[gnu::noinline]] bool op_enqueue_mc(moodycamel::ConcurrentQueue<Ping>& q,
                                     moodycamel::ProducerToken& t, std::uint64_t i) {
  return q.try_enqueue(t, Ping{i});
}

}  // namespace

namespace hot_paths {
/// hot_paths_conflated.cpp: `rounds` rounds of op_publish_conflated x per_round then a drain;
/// returns the failures.
std::uint64_t conflated_rounds(int rounds, std::uint64_t per_round, std::uint64_t& sink);
/// hot_paths_bridged.cpp: `rounds` rounds of its bridged and unbridged publish and drain; returns
/// the failures (0, with a line on stderr, when it cannot run: no bridge library or server).
std::uint64_t bridged_rounds(int rounds, std::uint64_t per_round, std::uint64_t& sink);
/// hot_paths_journaled.cpp: `rounds` rounds of its journaled and unjournaled publish and drain;
/// returns the failures.
std::uint64_t journaled_rounds(int rounds, std::uint64_t per_round, std::uint64_t& sink);
}  // namespace hot_paths

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 25;
  constexpr std::uint64_t per_round = 4000;
  bus_t bus{
      {.workers = 0, .lane_capacity = 4096, .overflow = tachyon::overflow::fail, .producers = 1}};
  std::uint64_t sink = 0;
  auto s = bus.subscribe<Ping>([&](const Ping& p) { sink += p.seq; });
  timed_bus_t timed{{.workers = 0,
                     .lane_capacity = 4096,
                     .overflow = tachyon::overflow::fail,
                     .producers = 1,
                     .latency_histograms = true}};
  auto st = timed.subscribe<Pong>([&](const Pong& p) { sink += p.seq; });
  breaker_bus_t guarded{
      {.workers = 0, .lane_capacity = 4096, .overflow = tachyon::overflow::fail, .producers = 1}};
  tachyon::subscribe_options<Guarded> with_breaker;
  with_breaker.breaker.failure_threshold = 5;
  auto sg =
      guarded.subscribe<Guarded>([&](const Guarded& p) { sink += p.seq; }, std::move(with_breaker));
  moodycamel::ConcurrentQueue<Ping> q(4096);
  moodycamel::ProducerToken ptok(q);
  moodycamel::ConsumerToken ctok(q);
  Ping buf[64];
  std::uint64_t failures = 0;
  for (int r = 0; r < rounds; ++r) {
    for (std::uint64_t i = 0; i < per_round; ++i)
      failures += op_publish(bus, i) != tachyon::result::ok;
    if (op_drain(bus) != per_round) ++failures;
    for (std::uint64_t i = 0; i < per_round; ++i)
      failures += timed.publish(Pong{i}) != tachyon::result::ok;
    if (op_drain_timed(timed) != per_round) ++failures;
    for (std::uint64_t i = 0; i < per_round; ++i)
      failures += guarded.publish(Guarded{i}) != tachyon::result::ok;
    if (op_drain_breaker(guarded) != per_round) ++failures;
    failures += keyed_round(per_round, sink);
    for (std::uint64_t i = 0; i < per_round; ++i) failures += !op_enqueue_mc(q, ptok, i);
    while (q.try_dequeue_bulk(ctok, buf, 64) != 0) {
    }
    for (std::uint64_t i = 0; i < per_round; ++i) op_dispatch(bus, i);
    for (std::uint64_t i = 0; i < per_round; ++i) failures += op_hop(bus, i) != 1;
    for (std::uint64_t i = 0; i < per_round; ++i)
      failures += op_hop_mc(q, ptok, ctok, i, sink) != 1;
    failures += feature_round(per_round, sink);
    failures += run_request_ops(per_round);
  }
  failures += hot_paths::conflated_rounds(rounds, per_round, sink);
  failures += hot_paths::bridged_rounds(rounds, per_round, sink);
  failures += hot_paths::journaled_rounds(rounds, per_round, sink);
  std::printf("ops %llu per path, %d drains of %llu, failures %llu, sink %llu\n",
              static_cast<unsigned long long>(rounds * per_round), rounds,
              static_cast<unsigned long long>(per_round), static_cast<unsigned long long>(failures),
              static_cast<unsigned long long>(sink));
  return failures == 0 ? 0 : 1;
}
