// Shared by the failure tests: their configurations and policies, a bounded call, the
// "counts all but std::logic_error" breaker predicate, and the accounting check: once a bus is
// quiet, every accepted event is in exactly one outcome, in total, per lane and per type, and
// nothing is in flight or in the timer.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>

#include "common.hpp"

#include <tachyon/tachyon.hpp>

namespace tt {

/// Manual mode (tt::manual) with dead letters.
inline tachyon::config manual_dl(std::uint32_t dead_letters = 16) {
  auto cfg = manual();
  cfg.dead_letter_capacity = dead_letters;
  return cfg;
}

/// `attempts` runs in all, the first retry after `first`, doubling (up to max(first, 1 s)).
inline tachyon::retry_policy retries(
    std::uint32_t attempts, std::chrono::nanoseconds first = std::chrono::milliseconds(1)) {
  return {.max_attempts = attempts,
          .initial_delay = first,
          .max_delay = std::max<std::chrono::nanoseconds>(first, std::chrono::seconds(1)),
          .multiplier = 2.0};
}

/// A breaker_policy::counts that counts every exception but std::logic_error (the caller's
/// fault, not the dependency's).
inline bool counts_all_but_logic_error(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::logic_error&) {
    return false;
  } catch (...) {
    return true;
  }
}

/// Runs f on a thread of its own and waits for it at most as long as tt::eventually does. A
/// call that does not return fails the test; the stuck thread still uses the bus, so nothing
/// can be cleaned up and the process ends rather than hangs.
template <class F>
void finishes(const char* what, F&& f) {
  std::atomic<bool> done{false};
  std::thread t([&] {
    f();
    done.store(true);
  });
  if (!eventually([&] { return done.load(); })) {
    ADD_FAILURE() << what << " did not return: stuck";
    std::fflush(stdout);
    std::fprintf(stderr, "%s did not return: stuck; aborting\n", what);
    std::abort();
  }
  t.join();
}

/// accepted = dispatched + failed + dead_lettered + expired + dropped + discarded + conflated
/// + displaced, with in_flight 0: true when `c` balances with nothing unsettled.
inline bool balanced(const tachyon::event_counts& c) {
  return c.accepted == c.dispatched + c.failed + c.dead_lettered + c.expired + c.dropped +
                           c.discarded + c.conflated + c.displaced;
}

/// The books of a quiet bus: the equation exact in total, per lane and per type; nothing in
/// flight (measured), nothing waiting in the timer.
inline void expect_books_balance(const tachyon::metrics_snapshot& m) {
  EXPECT_TRUE(balanced(m.total)) << m.to_json();
  EXPECT_EQ(m.in_flight, 0u);
  EXPECT_EQ(m.timer_entries, 0u);
  for (const auto& l : m.lanes) {
    EXPECT_TRUE(balanced(l.counts)) << "lane " << tachyon::to_string(l.lane);
    EXPECT_EQ(l.in_flight, 0u) << "lane " << tachyon::to_string(l.lane);
    EXPECT_EQ(l.waiting, 0u) << "lane " << tachyon::to_string(l.lane);
  }
  for (const auto& t : m.types) EXPECT_TRUE(balanced(t.counts)) << "type " << t.name;
}

}  // namespace tt
