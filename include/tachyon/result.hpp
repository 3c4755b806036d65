// tachyon/result.hpp — what publish() says happened to an event.
#pragma once

#include <cstdint>
#include <string_view>

namespace tachyon {

/// The outcome of one publish. `ok` and `dropped` mean the bus took the event (it is counted
/// in `accepted`, and later in exactly one of dispatched / failed / dropped / discarded);
/// every other value means the bus refused it and the caller still owns it.
enum class [[nodiscard]] result : std::uint8_t{
    ok = 0,   ///< queued; it will be dispatched (or discarded by stop(discard), and counted)
    full,     ///< refused: the lane is full and the policy is `fail`, or a `block` deadline
              ///< passed, or a worker would have had to block on its own pool (see bus.hpp)
    dropped,  ///< taken and discarded at once: the lane is full and the policy is `drop`
    stopped,  ///< refused: stop() has begun
};

/// "ok", "full", "dropped" or "stopped".
constexpr std::string_view to_string(result r) noexcept {
  switch (r) {
    case result::ok:
      return "ok";
    case result::full:
      return "full";
    case result::dropped:
      return "dropped";
    case result::stopped:
      return "stopped";
  }
  return "unknown";
}

}  // namespace tachyon
