// tachyon/result.hpp — what publish() says happened to an event.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>

namespace tachyon {

/// The outcome of one publish. `ok` and `dropped` mean the bus took the event (it is counted
/// in `accepted`, and later in exactly one of dispatched / failed / dropped / discarded);
/// every other value means the bus refused it and the caller still owns it.
enum class [[nodiscard]] result : std::uint8_t{
    ok = 0,   ///< queued; it will be dispatched (or discarded by stop(discard), or displaced
              ///< by a newer event under overflow::drop_oldest; counted)
    full,     ///< refused: the lane is full and the policy is `fail`, or a `block` deadline
              ///< passed, or a worker would have had to block on its own pool (see bus.hpp)
    dropped,  ///< taken and discarded at once: the lane is full and the policy is `drop`
              ///< (or `drop_oldest` found no queued event it could displace at that moment)
    stopped,  ///< refused: stop() has begun
    vetoed,   ///< refused: an interceptor's before_publish said no (counted in `vetoed`)
    /// refused: the event's type is journaled and the journal could not write its record (the
    /// disk or a file size limit is full, a file could not be made, the record is larger than a
    /// segment): counted in `journal_refused`; bus::journal_stats().last_error says why.
    journal_failed,
};

/// "ok", "full", "dropped", "stopped", "vetoed" or "journal_failed".
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
    case result::vetoed:
      return "vetoed";
    case result::journal_failed:
      return "journal_failed";
  }
  return "unknown";
}

/// Thrown by publish_batch() when copying an event into the bus threw. The events of the
/// chunk that was being copied (up to 64) are not queued; the `queued` events before them are,
/// and will be dispatched; `dropped` were taken under overflow::drop. The exception the copy
/// threw is nested (std::rethrow_if_nested).
class publish_batch_error : public std::runtime_error, public std::nested_exception {
 public:
  publish_batch_error(std::size_t queued_events, std::size_t dropped_events)
      : std::runtime_error("tachyon::publish_batch: copying an event threw after " +
                           std::to_string(queued_events) + " events were queued (and " +
                           std::to_string(dropped_events) +
                           " dropped); the rest of the span was not queued"),
        queued(queued_events),
        dropped(dropped_events) {}
  std::size_t queued;
  std::size_t dropped;
};

}  // namespace tachyon
