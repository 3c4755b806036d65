// tachyon/meta.hpp — what a handler can learn about the event it is running for.
#pragma once

#include <cstdint>
#include <exception>
#include <string_view>

#include <tachyon/detail/type_name.hpp>
#include <tachyon/registry.hpp>

namespace tachyon {

/// The envelope header of an event, handed to handlers that take (const T&, const meta&).
/// Valid only during the handler call. 40 bytes: with the 24 bytes of inline payload it fills
/// one 64-byte cache line (detail/lane/envelope.hpp).
struct meta {
  /// Unique within a bus: the publishing thread's context id in the low 16 bits, its own
  /// running count in the high 48. Increasing per publishing thread until that count wraps,
  /// after 2^48 events from one thread (about 3 days at a billion events a second): then it
  /// starts again from the thread's id, and sequences stay unique among the events any bus
  /// could still hold.
  std::uint64_t sequence = 0;
  /// What the publisher passed in publish_options::correlation_id; if it passed none (0) from
  /// inside a handler, the correlation id of the event that handler runs for; else 0.
  std::uint64_t correlation_id = 0;
  /// The sequence of the event whose handler published (or dispatched) this one; 0 for an
  /// event published from outside handlers.
  std::uint64_t causation_id = 0;
  /// When it was published, in tachyon::clock ticks (see clock.hpp); 0 for dispatch() and with
  /// config::timestamps false.
  std::uint64_t publish_ticks = 0;
  /// The type's index in the registry.
  std::uint16_t type_index = 0;
  /// The lane it travelled in (for dispatch(): the type's default priority).
  priority lane = priority::normal;
  /// 0 on the first run of a handler for this event; a retry of one subscription (its
  /// retry_policy) counts up: 1 for the first retry, and so on.
  std::uint8_t attempt = 0;
  /// tachyon's own marks; see meta_flags.
  std::uint8_t flags = 0;
};

/// Bits of meta::flags.
namespace meta_flags {
/// The event entered its lane through the re-entry door (a retry, a delayed event that fell
/// due), not publish().
inline constexpr std::uint8_t reentered = 1;
/// A replay is running it: from the dead letters (bus::replay_dead_letters; that run only), or
/// from a journal (tachyon::replay, journal.hpp; with `external`, on every run of it).
inline constexpr std::uint8_t replayed = 2;
/// The event came from outside this bus (a bridge's import, a replay from a journal): its
/// publisher said so with publish_options::external. Set on every run of it (the first, its
/// retries, replays from the dead letters), so that an exporting handler can leave it alone.
inline constexpr std::uint8_t external = 4;
/// Its source delivered it before (publish_options::redelivered): a JetStream import's message
/// that the server redelivered, because an earlier delivery was not acknowledged in time (the
/// importing process died, say). Handlers that must not act twice check it.
inline constexpr std::uint8_t redelivered = 8;
}  // namespace meta_flags

/// What the error hook (config::on_error) receives when a handler throws, before tachyon
/// decides what happens next (a retry, the dead letters, or the `failed` count).
struct handler_error {
  const meta& event;              ///< the event's header (attempt: which run this was)
  std::string_view type_name;     ///< the event type's name, e.g. "app::Quote"
  std::exception_ptr error;       ///< what the handler threw
  std::string_view subscription;  ///< the subscription's name (subscribe_options::name)
  const void* payload = nullptr;  ///< the event; read it through get<T>()

  /// The event, if it is a T (the type is checked by its name); nullptr otherwise.
  template <class T>
  const T* get() const noexcept {
    return payload != nullptr && type_name == detail::type_name<T>()
               ? static_cast<const T*>(payload)
               : nullptr;
  }
};

}  // namespace tachyon
