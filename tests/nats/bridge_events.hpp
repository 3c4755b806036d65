// Event types of the bridge tests, with their codecs: one raw (trivially copyable, no
// encode/decode), one with fields of its own and an older version it still reads.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <tachyon/codec.hpp>
#include <tachyon/nats/bridge.hpp>
#include <tachyon/tachyon.hpp>

namespace bt {

struct Order {
  std::uint64_t id;
  std::uint32_t qty;
  double price;
};
struct Reply {
  std::uint64_t id;
  std::uint64_t seen_correlation;
};
/// Not trivially copyable: its codec writes the fields. Version 1 had no tags.
struct Note {
  std::string text;
  std::vector<std::int32_t> tags;
};
/// In the registry, never given a codec (export_type<Plain> must not compile).
struct Plain {
  int x;
};

using Events = tachyon::registry<Order, Reply, Note, Plain>;
using Bus = tachyon::bus<Events>;
using Bridge = tachyon::nats::bridge<Bus>;

inline tachyon::config threaded(std::uint32_t workers = 1, std::uint32_t capacity = 1024) {
  return {.workers = workers,
          .lane_capacity = capacity,
          .wait = tachyon::wait_strategy::spin_then_park};
}

/// Waits until pred() holds; gives up after a minute (a hang, never a slow machine).
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::minutes(1)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

/// Waits until the bus has run every event published so far (none queued or running), so that
/// the export handlers have queued them all: bridge::flush() covers what is queued.
inline bool ran_all(Bus& bus) {
  return eventually([&] { return bus.metrics().in_flight == 0; });
}

}  // namespace bt

template <>
struct tachyon::codec<bt::Order> {
  static constexpr std::string_view name = "test.Order";
  static constexpr std::uint32_t version = 1;
};
template <>
struct tachyon::codec<bt::Reply> {
  static constexpr std::string_view name = "test.Reply";
  static constexpr std::uint32_t version = 1;
};
template <>
struct tachyon::codec<bt::Note> {
  static constexpr std::string_view name = "test.Note";
  static constexpr std::uint32_t version = 2;
  static constexpr std::uint32_t oldest = 1;
  static void encode(const bt::Note& n, tachyon::writer& w) {
    w.put(std::string_view(n.text));
    w.put(static_cast<std::uint32_t>(n.tags.size()));
    for (auto t : n.tags) w.put(t);
  }
  static bt::Note decode(tachyon::reader& r, std::uint32_t version) {
    bt::Note n;
    n.text = r.get_string();
    if (version >= 2) {
      const auto count = r.get<std::uint32_t>();
      if (count > r.remaining() / 4)
        throw tachyon::codec_error("test.Note: tag count past the end");
      for (std::uint32_t i = 0; i < count; ++i) n.tags.push_back(r.get<std::int32_t>());
    }
    return n;
  }
};
