// tachyon/detail/resilience/breaker.hpp — a subscription's circuit breaker (breaker_policy) in
// one atomic word: the state in bits 0-1, the failure streak in bits 2-11, and, while open, the
// end of the open window in bits 12-63 (in 1024-ns units: 146 years of range). Every move is one
// compare-and-swap on that word, so exactly one caller wins the half-open probe. The success
// path of a closed breaker with no streak reads the word and writes nothing.
//
// Memory ordering: the breaker's whole state is this word and nothing else is published with
// it, so the CAS's atomicity alone decides every move: the acquire and acq_rel below order
// nothing that needs it, and relaxed would do (they are off the quiet path).
#pragma once

#include <atomic>
#include <cstdint>

#include <tachyon/metrics.hpp>

namespace tachyon::detail::breaker {

inline constexpr std::uint64_t closed = 0, open = 1, half_open = 2;
inline constexpr std::uint64_t max_streak = 1023;

constexpr std::uint64_t state(std::uint64_t w) noexcept { return w & 3; }
constexpr std::uint64_t streak(std::uint64_t w) noexcept { return (w >> 2) & max_streak; }
constexpr std::uint64_t until_ns(std::uint64_t w) noexcept { return (w >> 12) << 10; }
constexpr std::uint64_t make_closed(std::uint64_t streak) noexcept { return streak << 2; }
constexpr std::uint64_t make_open(std::uint64_t until_ns) noexcept {
  // Rounded up, so the window never ends before `until_ns`.
  return (((until_ns + 1023) >> 10) << 12) | open;
}

/// Whether a call may go ahead now: 0 no; otherwise a token the call hands back to succeeded()
/// or failed(). Closed: yes (token `admitted`). Open and its window not over: no. Open and
/// over: yes for the one caller whose CAS moves it to half-open (the probe: its token is the
/// half-open word, unique to this opening because it keeps the window's end), no for the rest.
/// Half-open: no (the probe is out).
inline constexpr std::uint64_t admitted = 1;
inline std::uint64_t admit(std::atomic<std::uint64_t>& word, std::uint64_t now_ns) noexcept {
  std::uint64_t w = word.load(std::memory_order_acquire);
  for (;;) {
    const std::uint64_t s = state(w);
    if (s == closed) return admitted;
    if (s == half_open || now_ns < until_ns(w)) return 0;
    const std::uint64_t probe = (w & ~std::uint64_t{3}) | half_open;
    if (word.compare_exchange_weak(w, probe, std::memory_order_acq_rel, std::memory_order_acquire))
      return probe;
  }
}

/// The guard's read before each call: closed with no streak needs nothing else.
inline bool quiet(const std::atomic<std::uint64_t>& word) noexcept {
  return word.load(std::memory_order_relaxed) == make_closed(0);
}

/// A call returned, or threw something the policy does not count: a streak ends; the probe
/// (`token` is the half-open word it installed) closes the breaker. Ignored while open, and
/// while half-open from any call but the probe: those were admitted before the breaker opened
/// and say nothing about the dependency now.
inline void succeeded(std::atomic<std::uint64_t>& word, std::uint64_t token) noexcept {
  std::uint64_t w = word.load(std::memory_order_acquire);
  for (;;) {
    if (w == make_closed(0) || state(w) == open) return;
    if (state(w) == half_open && w != token) return;
    if (word.compare_exchange_weak(w, make_closed(0), std::memory_order_acq_rel,
                                   std::memory_order_acquire))
      return;
  }
}

/// A throw that breaker_policy::counts does not count: the streak stays as it was; the probe
/// closes the breaker (the handler was reached and answered).
inline void not_counted(std::atomic<std::uint64_t>& word, std::uint64_t token) noexcept {
  std::uint64_t w = word.load(std::memory_order_acquire);
  while (state(w) == half_open && w == token)
    if (word.compare_exchange_weak(w, make_closed(0), std::memory_order_acq_rel,
                                   std::memory_order_acquire))
      return;
}

/// A counted failure: the streak grows; at `threshold`, or when the probe fails, the breaker
/// opens until now + open_for. Ignored while open, and while half-open from any call but the
/// probe. Returns true if this call opened it.
inline bool failed(std::atomic<std::uint64_t>& word, std::uint64_t token, std::uint64_t threshold,
                   std::uint64_t now_ns, std::uint64_t open_for_ns) noexcept {
  std::uint64_t w = word.load(std::memory_order_acquire);
  for (;;) {
    std::uint64_t next;
    switch (state(w)) {
      case open:
        return false;  // a call admitted before it opened
      case half_open:
        if (w != token) return false;  // not the probe
        next = make_open(now_ns + open_for_ns);
        break;
      default: {
        const std::uint64_t s = streak(w) + 1;
        next = s >= threshold ? make_open(now_ns + open_for_ns)
                              : make_closed(s < max_streak ? s : max_streak);
      }
    }
    if (word.compare_exchange_weak(w, next, std::memory_order_acq_rel, std::memory_order_acquire))
      return state(next) == open;
  }
}

inline breaker_state report(std::uint64_t w, bool configured) noexcept {
  if (!configured) return breaker_state::none;
  switch (state(w)) {
    case open:
      return breaker_state::open;
    case half_open:
      return breaker_state::half_open;
    default:
      return breaker_state::closed;
  }
}

}  // namespace tachyon::detail::breaker
