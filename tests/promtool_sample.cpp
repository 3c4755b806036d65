// Prints a real bus's to_prometheus(), latency histograms on and every lane used, for the
// metrics.promtool test (tests/CMakeLists.txt), which pipes it into `promtool check metrics`.
#include <cstdio>

#include "common.hpp"

int main() {
  auto cfg = tt::manual();
  cfg.latency_histograms = true;
  tachyon::bus<tt::Events> bus{cfg};
  auto s = bus.subscribe<tt::Order>([](const tt::Order& o) {
    if (o.id % 7 == 0) throw std::runtime_error("failed order");
  });
  for (std::uint32_t i = 0; i < 100; ++i) {
    (void)bus.publish(tt::Halt{i});
    (void)bus.publish(tt::Order{i, 1.0});
    (void)bus.publish(tt::Quote{i, 1.0, 2.0});
    (void)bus.publish(tt::Note{"note"}, tachyon::priority::low);
  }
  bus.poll();
  const std::string text = bus.metrics().to_prometheus();
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}
