// detail::asymmetric_fences / light_fence / heavy_fence on their own: the choice is made once
// per process, and the pair orders a store before a load on both sides (a Dekker test: two
// threads that each store their flag and then load the other's must never both load 0).
#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <thread>
#include <vector>

#include <tachyon/detail/subscription/fence.hpp>

using tachyon::detail::asymmetric_fences;
using tachyon::detail::heavy_fence;
using tachyon::detail::light_fence;

TEST(Fence, AsymmetricFencesAnswersTheSameOnEveryCallAndThread) {
  const bool first = asymmetric_fences();
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(asymmetric_fences(), first);
  std::vector<std::thread> threads;
  std::atomic<int> differ{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) differ += asymmetric_fences() != first;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(differ.load(), 0);
}

namespace {

/// `rounds` rounds of Dekker: the light side stores x then loads y, the heavy side stores y
/// then loads x, both relaxed with only the fence pair between. Returns the rounds in which
/// both loaded 0 (which the pair forbids).
int dekker_violations(bool asymmetric, int rounds) {
  std::atomic<int> x{0}, y{0};
  std::vector<int> light_saw(static_cast<std::size_t>(rounds)),
      heavy_saw(static_cast<std::size_t>(rounds));
  std::barrier sync(2);
  std::thread light([&] {
    for (int r = 0; r < rounds; ++r) {
      sync.arrive_and_wait();  // round r begins: x and y are 0
      x.store(1, std::memory_order_relaxed);
      light_fence(asymmetric);
      light_saw[static_cast<std::size_t>(r)] = y.load(std::memory_order_relaxed);
      sync.arrive_and_wait();  // both done
      sync.arrive_and_wait();  // the heavy side has reset x and y
    }
  });
  for (int r = 0; r < rounds; ++r) {
    sync.arrive_and_wait();
    y.store(1, std::memory_order_relaxed);
    heavy_fence(asymmetric);
    heavy_saw[static_cast<std::size_t>(r)] = x.load(std::memory_order_relaxed);
    sync.arrive_and_wait();
    x.store(0, std::memory_order_relaxed);
    y.store(0, std::memory_order_relaxed);
    sync.arrive_and_wait();
  }
  light.join();
  int violations = 0;
  for (std::size_t r = 0; r < light_saw.size(); ++r)
    violations += light_saw[r] == 0 && heavy_saw[r] == 0;
  return violations;
}

}  // namespace

TEST(Fence, ThePairNeverLetsBothSidesReadZero) {
  EXPECT_EQ(dekker_violations(asymmetric_fences(), 5000), 0);
}

TEST(Fence, TheSymmetricFallbackNeverLetsBothSidesReadZero) {
  EXPECT_EQ(dekker_violations(false, 5000), 0);  // full fences on both sides
}
