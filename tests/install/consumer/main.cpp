// Uses an installed tachyon through its public header only: publishes 1000 events on a bus
// with one worker, stops it (which drains), and exits 0 only if the handler saw all of them.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <tachyon/tachyon.hpp>
#include <thread>

namespace {

struct Ping {
  std::uint64_t n;
};

using Events = tachyon::registry<Ping>;

constexpr std::uint64_t kEvents = 1000;

}  // namespace

int main() {
  tachyon::bus<Events> bus{{.workers = 1, .lane_capacity = 1024}};
  std::atomic<std::uint64_t> seen{0};
  auto sub =
      bus.subscribe<Ping>([&](const Ping&) { seen.fetch_add(1, std::memory_order_relaxed); });

  for (std::uint64_t i = 0; i < kEvents; ++i) {
    tachyon::result r;
    while ((r = bus.publish(Ping{i})) != tachyon::result::ok) {
      if (r == tachyon::result::stopped) {
        std::fprintf(stderr, "consumer: publish returned stopped at event %llu\n",
                     static_cast<unsigned long long>(i));
        return 1;
      }
      std::this_thread::yield();  // full: the worker is behind; try again
    }
  }
  bus.stop();  // drains, then joins the worker

  const std::uint64_t got = seen.load();
  if (got != kEvents) {
    std::fprintf(stderr, "consumer: handler saw %llu of %llu events\n",
                 static_cast<unsigned long long>(got), static_cast<unsigned long long>(kEvents));
    return 1;
  }
  std::printf("consumer: %llu events dispatched\n", static_cast<unsigned long long>(got));
  return 0;
}
