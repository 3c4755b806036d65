// The failure tests' accounting check: once a bus is quiet, every accepted event is in exactly
// one outcome, in total, per lane and per type, and nothing is in flight or in the timer.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include <tachyon/tachyon.hpp>

namespace tt {

/// accepted = dispatched + failed + dead_lettered + expired + dropped + discarded, with
/// in_flight 0: true when `c` balances with nothing unsettled.
inline bool balanced(const tachyon::event_counts& c) {
  return c.accepted ==
         c.dispatched + c.failed + c.dead_lettered + c.expired + c.dropped + c.discarded;
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
