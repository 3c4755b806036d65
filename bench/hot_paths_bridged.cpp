// tachyon_hot_paths' bridged pair (see hot_paths.cpp): what a NATS bridge attached to a bus
// costs the bus's own publish and drain of a type the bridge does not export.
//
//   op_publish_bridged  bus::publish of an 8-byte Beat into a manual bus to which a
//                       tachyon::nats::bridge is attached, exporting the bus's other type, Cargo
//                       (a real bridge, connected to a nats-server started here on 127.0.0.1:
//                       the server is another process, outside valgrind)
//   op_drain_bridged    bus::poll draining those Beats through one handler (per event: / n)
//   op_publish_twin     the same on a twin bus of the same type, with the same Beat handler and
//   op_drain_twin       no bridge
//
// Both pairs are in this one translation unit and call the same instantiations, so that GCC's
// inlining is the same for both and a difference can only come from the bridge. Without the
// bridge library (no libnats) or without nats-server, the rows are not measured (perf/callgrind
// prints "not found"), with the reason on stderr.
#include <tachyon/tachyon.hpp>

#include <cstdint>
#include <cstdio>

namespace hot_paths {
std::uint64_t bridged_rounds(int rounds, std::uint64_t per_round, std::uint64_t& sink);
}  // namespace hot_paths

#if TACHYON_HOT_PATHS_NATS
#include <tachyon/nats/bridge.hpp>

#include <memory>
#include <optional>

#include "nats_launcher.hpp"

namespace {

struct Beat {
  std::uint64_t seq;
};
struct Cargo {
  std::uint64_t seq;
};
using bridged_bus_t = tachyon::bus<tachyon::registry<Beat, Cargo>>;

tachyon::config settings() {
  return {.workers = 0, .lane_capacity = 4096, .overflow = tachyon::overflow::fail, .producers = 1};
}

// The wrappers read their bus from a global of their own, so that their machine code differs
// and GCC does not fold the pairs into one function.
bridged_bus_t* bridged = nullptr;
bridged_bus_t* twin = nullptr;

[[gnu::noinline]] tachyon::result op_publish_bridged(std::uint64_t i) {
  return bridged->publish(Beat{i});
}
[[gnu::noinline]] tachyon::result op_publish_twin(std::uint64_t i) {
  return twin->publish(Beat{i});
}
[[gnu::noinline]] std::size_t op_drain_bridged() { return bridged->poll(); }
[[gnu::noinline]] std::size_t op_drain_twin() { return twin->poll(); }

}  // namespace

template <>
struct tachyon::codec<Cargo> {
  static constexpr std::string_view name = "hot_paths.Cargo";
  static constexpr std::uint32_t version = 1;
};

std::uint64_t hot_paths::bridged_rounds(int rounds, std::uint64_t per_round, std::uint64_t& sink) {
  const std::string server = tachyon::bench::find_nats_server();
  if (server.empty()) {
    std::fprintf(stderr, "tachyon_hot_paths: nats-server not found; bridged rows not measured\n");
    return 0;
  }
  std::optional<tachyon::bench::nats_launcher> launcher;
  launcher.emplace(server);
  bridged_bus_t with_bridge{settings()}, without{settings()};
  bridged = &with_bridge;
  twin = &without;
  auto s1 = with_bridge.subscribe<Beat>([&](const Beat& b) { sink += b.seq; });
  auto s2 = without.subscribe<Beat>([&](const Beat& b) { sink += b.seq; });
  tachyon::nats::options o;
  o.url = launcher->url();
  o.name = "hot-paths";
  o.export_queue = 64;
  auto link = std::make_unique<tachyon::nats::bridge<bridged_bus_t>>(with_bridge, o);
  link->export_type<Cargo>("hot_paths.cargo");
  std::uint64_t failures = 0;
  for (int r = 0; r < rounds; ++r) {
    for (std::uint64_t i = 0; i < per_round; ++i)
      failures += op_publish_bridged(i) != tachyon::result::ok;
    if (op_drain_bridged() != per_round) ++failures;
    for (std::uint64_t i = 0; i < per_round; ++i)
      failures += op_publish_twin(i) != tachyon::result::ok;
    if (op_drain_twin() != per_round) ++failures;
  }
  // The bridge works: one Cargo goes out through it.
  (void)with_bridge.publish(Cargo{1});
  (void)with_bridge.poll();
  if (!link->flush() || link->metrics().exported != 1) ++failures;
  link.reset();
  launcher.reset();
  return failures;
}

#else

std::uint64_t hot_paths::bridged_rounds(int, std::uint64_t, std::uint64_t&) {
  std::fprintf(stderr,
               "tachyon_hot_paths: built without the NATS bridge; bridged rows not measured\n");
  return 0;
}

#endif
