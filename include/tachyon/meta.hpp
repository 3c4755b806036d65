// tachyon/meta.hpp — what a handler can learn about the event it is running for.
#pragma once

#include <cstdint>
#include <exception>
#include <string_view>

#include <tachyon/registry.hpp>

namespace tachyon {

/// The envelope header of an event, handed to handlers that take (const T&, const meta&).
/// Valid only during the handler call.
struct meta {
  /// Unique within a bus: the publishing thread's id in the high 16 bits, its own running
  /// count in the low 48. Increasing per publishing thread.
  std::uint64_t sequence = 0;
  /// Whatever the publisher passed in publish_options::correlation_id (0 if nothing).
  std::uint64_t correlation_id = 0;
  /// When it was published, in tachyon::clock ticks (see clock.hpp); 0 for dispatch().
  std::uint64_t publish_ticks = 0;
  /// The type's index in the registry.
  std::uint16_t type_index = 0;
  /// The lane it travelled in (for dispatch(): the type's default priority).
  priority lane = priority::normal;
};

/// What the error hook (config::on_error) receives when a handler throws.
struct handler_error {
  const meta& event;           ///< the event's header
  std::string_view type_name;  ///< the event type's name, e.g. "Quote"
  std::exception_ptr error;    ///< what the handler threw
};

}  // namespace tachyon
