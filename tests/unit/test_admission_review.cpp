// Review of lane_admission (detail/lane/admission.hpp) on its own.
#include <gtest/gtest.h>

#include <atomic>
#include <deque>

#include <tachyon/detail/lane/admission.hpp>

using tachyon::detail::credit_account;
using tachyon::detail::lane_admission;

// refill() says 0, "the lane is full", when its take() found the pool empty and its
// revoke_spare() then found no spare credit. But credits can be in neither place for a while:
// between give_back()'s CAS of limit and its put() (a thread ending), and between a revoker's
// CAS and its put() (an idle worker's reclaim_idle_credits, a membarrier long). When the
// pool is refilled in that window, refill() still returns 0 without looking at the pool again:
// under overflow::fail the publish is refused on a lane that has room (here: an empty one),
// under overflow::block the publisher goes to sleep, and neither give_back() nor
// revoke_spare() notifies `room`, so it sleeps until its time-out (forever without one).
//
// The interleaving is made deterministic by running the ending thread's give_back() inside the
// taker's own scan of the accounts (revoke_spare calls for_each_account first thing).
TEST(LaneAdmissionReview, RefillDoesNotReportFullWhileCreditsAreOnTheirWayBackToThePool) {
  lane_admission adm(8, 0, tachyon::detail::asymmetric_fences());
  std::deque<credit_account> all;
  credit_account& ending = all.emplace_back();
  credit_account& taker = all.emplace_back();
  auto each = [&](auto&& f) {
    for (auto& a : all) f(a);
  };
  ASSERT_EQ(adm.refill(ending, 8, each), 8u);  // it holds the whole lane, unspent
  ASSERT_EQ(adm.pool(), 0);
  bool gave_back = false;
  auto each_while_ending_thread_exits = [&](auto&& f) {
    if (!gave_back) {
      gave_back = true;
      adm.give_back(ending);  // the ending thread's release_credits, right now
    }
    for (auto& a : all) f(a);
  };
  const std::uint64_t got = adm.refill(taker, 1, each_while_ending_thread_exits);
  ASSERT_TRUE(gave_back);
  EXPECT_EQ(adm.pool() + static_cast<std::int64_t>(taker.spare()), 8);  // nothing admitted
  EXPECT_GE(got, 1u) << "refill reported a full lane; pool " << adm.pool() << " of 8";
}
