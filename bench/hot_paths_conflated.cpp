// op_publish_conflated for the callgrind workload (hot_paths.cpp), alone in its translation unit
// so that the other hot paths are compiled (and inlined) exactly as without it.
#include <tachyon/tachyon.hpp>

#include <cstdint>

namespace {

struct Level {
  std::uint64_t key;
  std::uint64_t value;
};
using conflated_bus_t = tachyon::bus<tachyon::registry<
    tachyon::event<Level, tachyon::priority::normal, tachyon::conflate_by<&Level::key, 64>>>>;
constexpr std::uint64_t conflated_keys = 8;

[[gnu::noinline]] tachyon::result op_publish_conflated(conflated_bus_t& b, std::uint64_t i) {
  return b.publish(Level{i % conflated_keys, i});
}

}  // namespace

namespace hot_paths {

std::uint64_t conflated_rounds(int rounds, std::uint64_t per_round, std::uint64_t& sink) {
  conflated_bus_t bus{
      {.workers = 0, .lane_capacity = 4096, .overflow = tachyon::overflow::fail, .producers = 1}};
  auto s = bus.subscribe<Level>([&](const Level& l) { sink += l.value; });
  std::uint64_t failures = 0;
  for (int r = 0; r < rounds; ++r) {
    for (std::uint64_t i = 0; i < per_round; ++i)
      failures += op_publish_conflated(bus, i) != tachyon::result::ok;
    if (bus.poll() != conflated_keys) ++failures;  // one event per key: the latest
  }
  return failures;
}

}  // namespace hot_paths
