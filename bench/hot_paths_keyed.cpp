// The ordering half of perf/callgrind's workload (hot_paths.cpp says why it is a file of its
// own):
//
//   op_publish_keyed    bus::publish of an 8-byte event with publish_options::key, the key
//                       cycling over 64 keys (manual mode, lane never full)
//   op_drain_keyed      bus::poll draining 4000 of those through one handler (per event:
//                       / 4000): 64 strands backed up at once, so each batch of 64 tokens
//                       gives each strand a turn of batch / 8 = 8 events (the worst case)
//   op_drain_one_key    the same with every event under one key (a second bus, of its own
//                       type): one token, turns of a whole batch (the best case)
//   op_drain_serial     op_drain (unkeyed) on a third bus whose one handler is
//                       subscribe_options::serial, never contended: what the gate costs a call
#include <tachyon/tachyon.hpp>

#include <cstdint>

namespace {

struct Keyed {
  std::uint64_t seq;
};
using keyed_bus_t = tachyon::bus<tachyon::registry<Keyed>>;
struct OneKey {
  std::uint64_t seq;
};
using one_key_bus_t = tachyon::bus<tachyon::registry<OneKey>>;
struct Serial {
  std::uint64_t seq;
};
using serial_bus_t = tachyon::bus<tachyon::registry<Serial>>;

[[gnu::noinline]] tachyon::result op_publish_keyed(keyed_bus_t& b, std::uint64_t i) {
  return b.publish(Keyed{i}, tachyon::publish_options{.key = 1 + (i & 63)});
}
[[gnu::noinline]] std::size_t op_drain_keyed(keyed_bus_t& b) { return b.poll(); }
[[gnu::noinline, gnu::no_icf]] std::size_t op_drain_one_key(one_key_bus_t& b) { return b.poll(); }
[[gnu::noinline, gnu::no_icf]] std::size_t op_drain_serial(serial_bus_t& b) { return b.poll(); }

tachyon::config manual() {
  return {.workers = 0, .lane_capacity = 4096, .overflow = tachyon::overflow::fail, .producers = 1};
}

std::uint64_t sink_sum = 0, ran = 0;

}  // namespace

std::uint64_t keyed_round(std::uint64_t per_round, std::uint64_t& sink) {
  static keyed_bus_t keyed{manual()};
  static one_key_bus_t one{manual()};
  static auto sk = keyed.subscribe<Keyed>([](const Keyed& p) {
    sink_sum += p.seq;
    ++ran;
  });
  static auto so = one.subscribe<OneKey>([](const OneKey& p) {
    sink_sum += p.seq;
    ++ran;
  });
  static serial_bus_t serial{manual()};
  static auto ss = serial.subscribe<Serial>(
      [](const Serial& p) {
        sink_sum += p.seq;
        ++ran;
      },
      {.serial = true});
  std::uint64_t failures = 0;
  const std::uint64_t before = ran;
  for (std::uint64_t i = 0; i < per_round; ++i)
    failures += op_publish_keyed(keyed, i) != tachyon::result::ok;
  (void)op_drain_keyed(keyed);  // returns the lane's entries: a strand's turn counts as one
  for (std::uint64_t i = 0; i < per_round; ++i)
    failures += one.publish(OneKey{i}, tachyon::publish_options{.key = 7}) != tachyon::result::ok;
  (void)op_drain_one_key(one);
  for (std::uint64_t i = 0; i < per_round; ++i)
    failures += serial.publish(Serial{i}) != tachyon::result::ok;
  failures += op_drain_serial(serial) != per_round;
  sink += sink_sum;
  return failures + (ran - before != 3 * per_round);
}
