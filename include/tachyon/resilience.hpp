// tachyon/resilience.hpp — what happens when a handler throws: retry with backoff, circuit
// breakers and dead letters, per subscription (subscribe_options), and the dead-letter entry
// a user inspects and replays. The README's "Failures" section tells the whole story; the
// outcome an event ends in is described at tachyon::event_counts.
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <tachyon/meta.hpp>

namespace tachyon {

/// How a subscription's failed delivery is retried. Only the subscription that threw runs
/// again, never the event's other handlers. Attempt k (k = 1 for the first retry) waits
///   min(max_delay, initial_delay x multiplier^(k-1)) x (1 - jitter x u)
/// where u in [0, 1) is a hash of the event's sequence and k: spread like random jitter across
/// events, yet the same on every run (the reference model relies on it).
struct retry_policy {
  /// Runs of one delivery in all, the first included: 1 = no retry (the default). 1 .. 255.
  std::uint32_t max_attempts = 1;
  std::chrono::nanoseconds initial_delay = std::chrono::milliseconds(1);  ///< 0 .. 1 hour
  std::chrono::nanoseconds max_delay = std::chrono::seconds(1);  ///< initial_delay .. 1 hour
  double multiplier = 2.0;                                       ///< 1 .. 1000
  double jitter = 0.0;  ///< 0 (none) .. 1 (anything from 0 to the full delay)
};

/// What a subscription's open breaker does with the events it is not called for.
enum class when_open : std::uint8_t {
  dead_letter,  ///< park them in the dead letters (if the bus has any; else as skip)
  skip,         ///< count them (short_circuited) and let them go; the event reads `failed`
};

/// A circuit breaker per subscription. Closed: calls pass. After `failure_threshold`
/// consecutive failures that `counts` accepts it opens: for `open_for` the handler is not
/// called (the delivery is short-circuited, counted, and goes where `action` says). Then one
/// call passes as a probe (half-open; exactly one, even with several workers: the state moves
/// by compare-and-swap on one word); its success closes the breaker, its failure opens it for
/// another `open_for`. Consecutive, not a ratio over a window: one word holds the whole state,
/// and a dependency that is down fails every call anyway.
struct breaker_policy {
  /// 0: no breaker (the default). 1 .. 1023.
  std::uint32_t failure_threshold = 0;
  /// 1 us .. 1 hour. The window's end is kept in 1024-ns units, rounded up: it may last up to
  /// 1.024 us longer than this, never less.
  std::chrono::nanoseconds open_for = std::chrono::seconds(1);
  when_open action = when_open::dead_letter;
  /// Which exceptions count as failures of the dependency. Empty: all of them. One it does not
  /// count leaves the failure streak as it was (a probe that throws one closes the breaker:
  /// the handler was reached and answered). Must not throw.
  std::function<bool(const std::exception_ptr&)> counts = {};
};

/// What a short-circuited delivery carries as its error (dead-letter entries, the error hook).
class circuit_open : public std::runtime_error {
 public:
  explicit circuit_open(const std::string& subscription)
      : std::runtime_error("tachyon: the circuit breaker of subscription '" + subscription +
                           "' is open; the handler was not called") {}
};

/// What an expired event carries as its error when it is dead-lettered.
class deadline_passed : public std::runtime_error {
 public:
  deadline_passed()
      : std::runtime_error("tachyon: the event's deadline passed before its handlers started") {}
};

/// One parked delivery, as bus::dead_letters() visitors and replay predicates see it. Valid
/// during the call only (copy what you keep; `event` may be copied if T is copyable).
template <class T>
struct dead_letter {
  const T& event;
  const tachyon::meta& meta;  ///< as the event was published (sequence, correlation id...)
  /// The subscription that failed it (its subscribe_options::name); empty for an event that
  /// expired before any handler ran (a replay runs all of the type's handlers then).
  std::string_view subscription;
  std::uint32_t attempts;         ///< runs that failed (retries and replays included)
  std::exception_ptr error;       ///< the last one's exception
  std::string_view what;          ///< its what(), or a description when it is not a std::exception
  std::chrono::nanoseconds when;  ///< bus::now() when it was parked
  std::uint64_t id;               ///< unique within the bus, in order of parking
};

/// What bus::replay_dead_letters() did.
struct replay_result {
  std::size_t replayed = 0;   ///< entries whose subscription ran again
  std::size_t succeeded = 0;  ///< ... and did not throw: removed from the dead letters
  std::size_t failed = 0;     ///< ... and threw again: back in the dead letters, attempts + 1
  std::size_t skipped = 0;    ///< their subscription was removed: left in place
};

}  // namespace tachyon
