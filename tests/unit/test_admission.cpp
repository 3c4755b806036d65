// The lane's admission (detail/lane/admission.hpp) on its own: exact bounds, revocation of
// idle credits, the settle race, and the count of shared read-modify-writes per publish.
#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <thread>
#include <vector>

#include <tachyon/detail/lane/admission.hpp>

#include "common.hpp"

using tachyon::detail::credit_account;
using tachyon::detail::lane_admission;

namespace {

/// A lane's accounts, as the bus keeps them: one per thread, visited by revokers.
struct accounts {
  std::deque<credit_account> all;
  credit_account& add() { return all.emplace_back(); }
  auto each() {
    return [this](auto&& f) {
      for (auto& a : all) f(a);
    };
  }
};

const std::atomic<bool> not_stopping{false};

/// Admits one event for the owner of `a`, refilling as the bus does; false when full.
bool admit_one(lane_admission& adm, credit_account& a, accounts& accs) {
  for (;;) {
    bool stopped = false;
    if (lane_admission::try_admit(a, 1, adm.asymmetric(), not_stopping, stopped)) return true;
    EXPECT_FALSE(stopped);
    if (adm.refill(a, 1, accs.each()) == 0) return false;
  }
}

/// Admits one event after another for the owner of `a` until the lane is full; how many.
std::uint32_t admit_until_full(lane_admission& adm, credit_account& a, accounts& accs) {
  std::uint32_t n = 0;
  while (admit_one(adm, a, accs)) ++n;
  return n;
}

std::uint64_t occupancy(accounts& accs) {
  std::uint64_t used = 0, done = 0;
  for (auto& a : accs.all) {
    used += a.used.load();
    done += a.done.load();
  }
  return used - done;
}

/// free + sum(limit - used) + occupancy = capacity, when nothing is in progress.
void expect_conserved(const lane_admission& adm, accounts& accs) {
  std::int64_t held = 0;
  for (auto& a : accs.all) held += static_cast<std::int64_t>(a.limit.load() - a.used.load());
  EXPECT_EQ(adm.pool() + held + static_cast<std::int64_t>(occupancy(accs)),
            static_cast<std::int64_t>(adm.capacity()));
}

}  // namespace

TEST(LaneAdmission, OneAccountTakesExactlyTheCapacity) {
  for (std::uint32_t cap : {1u, 8u, 100u, 1000u}) {
    lane_admission adm(cap, 0, tachyon::detail::asymmetric_fences());
    accounts accs;
    credit_account& a = accs.add();
    EXPECT_EQ(admit_until_full(adm, a, accs), cap);
    expect_conserved(adm, accs);
  }
}

TEST(LaneAdmission, CreditsLeftInAnIdleAccountAreRevokedForOthers) {
  lane_admission adm(1024, 0, tachyon::detail::asymmetric_fences());
  accounts accs;
  credit_account& idle = accs.add();
  credit_account& busy = accs.add();
  ASSERT_TRUE(admit_one(adm, idle, accs));
  EXPECT_GT(idle.spare(), 0u);  // it took a chunk and spent one credit
  EXPECT_EQ(admit_until_full(adm, busy, accs), 1023u);
  EXPECT_EQ(idle.spare(), 0u);
  EXPECT_EQ(idle.used.load(), 1u);
  expect_conserved(adm, accs);
}

TEST(LaneAdmission, GiveBackReturnsUnspentCreditsToThePool) {
  lane_admission adm(1024, 0, tachyon::detail::asymmetric_fences());
  accounts accs;
  credit_account& a = accs.add();
  ASSERT_TRUE(admit_one(adm, a, accs));
  ASSERT_GT(a.spare(), 0u);
  adm.give_back(a);
  EXPECT_EQ(a.spare(), 0u);
  EXPECT_EQ(adm.pool(), 1023);
  expect_conserved(adm, accs);
}

TEST(LaneAdmission, TheChunkShrinksNearTheBound) {
  lane_admission adm(16, 0, tachyon::detail::asymmetric_fences());
  accounts accs;
  credit_account& a = accs.add();
  ASSERT_EQ(adm.refill(a, 1, accs.each()), 2u);  // an eighth of 16
  credit_account& b = accs.add();
  ASSERT_EQ(adm.refill(b, 1, accs.each()), 1u);  // 14 left: at least one
  EXPECT_EQ(adm.refill(b, 5, accs.each()), 5u);  // as asked, when more than the chunk
}

TEST(LaneAdmission, ReentryDoorIsBoundedAndSeparate) {
  lane_admission adm(4, 3, tachyon::detail::asymmetric_fences());
  accounts accs;
  credit_account& a = accs.add();
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(admit_one(adm, a, accs));
  EXPECT_FALSE(admit_one(adm, a, accs));  // the front door is full
  EXPECT_TRUE(adm.try_reenter());         // the second door is not
  EXPECT_TRUE(adm.try_reenter());
  EXPECT_TRUE(adm.try_reenter());
  EXPECT_FALSE(adm.try_reenter());  // but it is bounded
  EXPECT_EQ(adm.reentry_depth(), 3u);
  adm.release(0, 2);
  EXPECT_EQ(adm.reentry_depth(), 1u);
  EXPECT_FALSE(admit_one(adm, a, accs));  // re-entries gave back none of the front door's room
  EXPECT_TRUE(adm.maybe_nonempty());
}

TEST(LaneAdmission, ConcurrentPublishersNeverExceedTheBound) {
  // Four publishers and a consumer around a 16-credit lane: chunks, refills and revocations all
  // happen. `inside` counts events after their admission and before their release, so it is at
  // most the true occupancy, which the bound must keep at or below the capacity.
  constexpr std::uint32_t cap = 16;
  const int per_thread = tt::sanitized() ? 3000 : 30000;
  lane_admission adm(cap, 0, tachyon::detail::asymmetric_fences());
  accounts accs;
  std::vector<credit_account*> mine;
  for (int t = 0; t < 4; ++t) mine.push_back(&accs.add());
  credit_account& consumer = accs.add();
  std::atomic<std::int64_t> inside{0}, max_inside{0}, admitted{0};
  std::atomic<int> producers_done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      credit_account& a = *mine[static_cast<std::size_t>(t)];
      for (int i = 0; i < per_thread; ++i) {
        while (!admit_one(adm, a, accs)) std::this_thread::yield();
        const std::int64_t now = inside.fetch_add(1) + 1;
        std::int64_t m = max_inside.load();
        while (now > m && !max_inside.compare_exchange_weak(m, now)) {
        }
        admitted.fetch_add(1);
      }
      if (t % 2 == 0) adm.give_back(a);  // half of them give back, half leave credits behind
      producers_done.fetch_add(1);
    });
  }
  threads.emplace_back([&] {
    std::int64_t released = 0;
    for (;;) {
      const std::int64_t avail = admitted.load() - released;
      if (avail > 0) {
        const std::int64_t n = std::min<std::int64_t>(avail, 5);
        inside.fetch_sub(n);
        consumer.done.store(consumer.done.load() + static_cast<std::uint64_t>(n));
        adm.release(static_cast<std::uint64_t>(n), 0);
        released += n;
      } else if (producers_done.load() == 4 && admitted.load() == released) {
        return;
      } else {
        std::this_thread::yield();
      }
    }
  });
  for (auto& t : threads) t.join();
  EXPECT_LE(max_inside.load(), static_cast<std::int64_t>(cap));
  EXPECT_EQ(admitted.load(), 4 * per_thread);
  EXPECT_EQ(occupancy(accs), 0u);
  expect_conserved(adm, accs);
  // The credits left behind come back for whoever needs them: the lane admits `cap` again.
  credit_account& late = accs.add();
  EXPECT_EQ(admit_until_full(adm, late, accs), cap);
}

TEST(LaneAdmission, AnOwnerRacingItsRevokerNeverLosesOrInventsACredit) {
  // One owner admits and cancels in a loop while another thread revokes its spare credits
  // again and again: every attempt that meets a revocation is settled one way or the other,
  // and the books balance at the end.
  lane_admission adm(64, 0, tachyon::detail::asymmetric_fences());
  accounts accs;
  credit_account& owner = accs.add();
  credit_account& thief = accs.add();
  std::atomic<bool> done{false};
  std::atomic<int> revocations{0};
  const int wanted = tt::sanitized() ? 50 : 200;
  std::thread revoker([&] {
    while (!done.load())
      if (adm.revoke_spare(&thief, accs.each()) != 0) revocations.fetch_add(1);
  });
  std::uint64_t kept = 0;
  // Until the revoker has taken credits from under the owner `wanted` times (bounded: a
  // revoker that never ran would leave the test proving nothing, and it says so).
  for (long i = 0; revocations.load() < wanted && i < 50'000'000; ++i) {
    if (!admit_one(adm, owner, accs)) {
      // Full: give everything back (as a consumer would) and go on.
      owner.done.store(owner.used.load());
      adm.release(kept, 0);
      kept = 0;
      continue;
    }
    if (i % 3 == 0) {
      lane_admission::cancel(owner, 1);
    } else {
      ++kept;
    }
  }
  done.store(true);
  revoker.join();
  EXPECT_GE(revocations.load(), wanted);
  owner.done.store(owner.used.load());
  adm.release(kept, 0);
  expect_conserved(adm, accs);
  adm.give_back(owner);
  EXPECT_EQ(adm.pool(), 64);
}

#if defined(TACHYON_COUNT_SHARED_RMW)
TEST(LaneAdmission, OneSharedReadModifyWritePerChunkNotPerEvent) {
  lane_admission adm(1u << 16, 0, tachyon::detail::asymmetric_fences());
  accounts accs;
  credit_account& a = accs.add();
  const std::uint64_t before = tachyon::detail::shared_rmws;
  constexpr std::uint64_t events = 64 * 100;
  for (std::uint64_t i = 0; i < events; ++i) ASSERT_TRUE(admit_one(adm, a, accs));
  EXPECT_EQ(tachyon::detail::shared_rmws - before, events / lane_admission::max_chunk);
}
#endif

// refill() must not say 0, "the lane is full", while credits are on their way back to the pool:
// between a give_back()'s lowering of the account's limit and its put() (a thread ending), or
// between a revoker's CAS and its put() (a membarrier long), they are in neither an account
// nor the pool. refill() therefore retries the pool after its revocation pass, which takes the
// revoke mutex that give_back() and every revoker hold across that window. Here a thread
// holding the whole lane gives it back while another refills: every refill must get a credit,
// whether it revokes them, finds them in the pool, or waits for the give_back to finish.
TEST(LaneAdmission, RefillDoesNotReportFullWhileCreditsAreOnTheirWayBackToThePool) {
  const bool asym = tachyon::detail::asymmetric_fences();
  for (int round = 0; round < 300; ++round) {
    lane_admission adm(8, 0, asym);
    std::deque<credit_account> all;
    credit_account& ending = all.emplace_back();
    credit_account& taker = all.emplace_back();
    auto each = [&](auto&& f) {
      for (auto& a : all) f(a);
    };
    ASSERT_EQ(adm.refill(ending, 8, each), 8u);  // it holds the whole lane, unspent
    std::atomic<bool> go{false};
    std::thread exiting([&] {
      while (!go.load()) {
      }
      adm.give_back(ending);  // the ending thread's release_credits
    });
    go.store(true);
    const std::uint64_t got = adm.refill(taker, 1, each);
    exiting.join();
    ASSERT_GE(got, 1u) << "round " << round << ": refill reported a full lane; pool " << adm.pool()
                       << " of 8";
    EXPECT_EQ(adm.pool() + static_cast<std::int64_t>(taker.spare() + ending.spare()), 8);
  }
}
