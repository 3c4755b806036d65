// tachyon_hot_paths' request/reply pair (see hot_paths.cpp): request/reply by hand, and the
// same exchange through bus::request, both in manual mode on their own buses.
#include <tachyon/tachyon.hpp>

#include <chrono>
#include <cstdint>

std::uint64_t run_request_ops(std::uint64_t n);

namespace {

struct Ask {
  std::uint64_t seq;
};
struct Answer {
  std::uint64_t seq;
};
using rr_bus_t = tachyon::bus<tachyon::registry<Ask, Answer>>;

[[gnu::noinline]] std::size_t op_two_hops(rr_bus_t& b, std::uint64_t i) {
  (void)b.publish(Ask{i}, tachyon::publish_options{.correlation_id = i + 1});
  const std::size_t n = b.run_once();
  return n + b.run_once();
}
[[gnu::noinline]] bool op_request(rr_bus_t& b, std::uint64_t i) {
  const auto reply = b.request<Answer>(Ask{i}, std::chrono::seconds(10));
  return reply.has_value() && reply->seq == i;
}

tachyon::config settings() {
  return {.workers = 0, .lane_capacity = 4096, .overflow = tachyon::overflow::fail, .producers = 1};
}

/// A bus whose Ask handler answers with Answer{seq} under the Ask's correlation id.
struct answering_bus {
  rr_bus_t bus{settings()};
  tachyon::subscription responder = bus.subscribe<Ask>([this](const Ask& a,
                                                              const tachyon::meta& m) {
    (void)bus.publish(Answer{a.seq}, tachyon::publish_options{.correlation_id = m.correlation_id});
  });
};

}  // namespace

std::uint64_t run_request_ops(std::uint64_t n) {
  static answering_bus by_hand, requests;
  static std::uint64_t sink = 0;
  static tachyon::subscription answers =
      by_hand.bus.subscribe<Answer>([](const Answer& a) { sink += a.seq; });
  std::uint64_t failures = 0;
  for (std::uint64_t i = 0; i < n; ++i) failures += op_two_hops(by_hand.bus, i) != 2;
  for (std::uint64_t i = 0; i < n; ++i) failures += !op_request(requests.bus, i);
  return failures;
}
