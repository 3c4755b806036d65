// tachyon/settle.hpp — being told how an event ended: publish_options::on_settle.
#pragma once

#include <cstdint>
#include <string_view>

#include <tachyon/meta.hpp>

namespace tachyon {

/// The final outcome of an accepted event: the metrics' outcome counter it ended in
/// (metrics.hpp, event_counts), for the outcomes an event published with on_settle can reach.
/// (It is never conflated: such an event skips conflation. `dropped` is a refusal, not an
/// outcome of an accepted event: publish returns it, and the listener is not called.)
enum class outcome : std::uint8_t {
  dispatched,
  failed,
  dead_lettered,
  expired,
  discarded,
  displaced
};

/// "dispatched", "failed", "dead_lettered", "expired", "discarded", "displaced".
constexpr std::string_view to_string(outcome o) noexcept {
  switch (o) {
    case outcome::dispatched:
      return "dispatched";
    case outcome::failed:
      return "failed";
    case outcome::dead_lettered:
      return "dead_lettered";
    case outcome::expired:
      return "expired";
    case outcome::discarded:
      return "discarded";
    case outcome::displaced:
      return "displaced";
  }
  return "unknown";
}

/// Told, exactly once, the final outcome of an event published with publish_options::on_settle,
/// if that publish returned result::ok (not for full, stopped, dropped or vetoed, nor when
/// publish threw: then the caller still owns it). Called on whichever thread settles the event
/// (a worker, a poll(), a stop(), a publisher that displaced it under overflow::drop_oldest),
/// after the event is counted in its outcome (a metrics() snapshot taken in the call counts it
/// there; it may still count it in flight too). The call must not throw or block: it may run
/// inside a worker's batch, a poll(), a stop() or another thread's publish(). The listener must
/// stay alive until it is called; one listener object serves one event (embed it in a struct
/// of your own to give the call its context: `self` is the object the publish named).
/// A retried event is told once, after its last delivery; an event dead-lettered is told
/// `dead_lettered` when it settles, and a later replay of it from the dead letters tells nothing.
struct settle_listener {
  void (*settled)(settle_listener& self, const meta& m, outcome o) noexcept = nullptr;
};

}  // namespace tachyon
