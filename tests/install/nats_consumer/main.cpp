// Links tachyon::nats from an install: a codec round trip, the wire header's text, and a bridge
// that finds no server at a port nothing listens on (no network beyond 127.0.0.1).
#include <tachyon/nats/bridge.hpp>
#include <tachyon/tachyon.hpp>

#include <cstdio>

struct Ping {
  std::uint64_t id;
};
template <>
struct tachyon::codec<Ping> {
  static constexpr std::string_view name = "install.Ping";
  static constexpr std::uint32_t version = 1;
};

int main() {
  std::vector<std::byte> bytes;
  tachyon::encode(Ping{7}, bytes);
  if (tachyon::decode<Ping>(bytes, 1).id != 7) return 1;
  tachyon::nats::wire_meta m{1, tachyon::fingerprint<Ping>(), 1, 2, 3, 4, 5};
  tachyon::nats::wire_meta back;
  std::string why;
  if (!tachyon::nats::parse_meta(tachyon::nats::format_meta(m), back, why)) return 2;
  tachyon::bus<tachyon::registry<Ping>> bus{{.workers = 1}};
  try {
    tachyon::nats::bridge link{bus, {.url = "nats://127.0.0.1:1", .name = "install"}};
    return 3;  // port 1: nothing listens there
  } catch (const tachyon::nats::error& e) {
    std::printf("no server, as expected: %s\n", e.what());
  }
  return 0;
}
