#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.hpp"
#include "own_program.hpp"

using ::testing::AllOf;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

namespace {

/// Constructs a bus and returns the message of the std::invalid_argument it throws.
std::string refusal(const tachyon::config& cfg) {
  try {
    tachyon::bus<tt::Events> bus{cfg};
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  ADD_FAILURE() << "the configuration was accepted";
  return {};
}

tachyon::config valid() { return tt::manual(); }

/// refusal() of valid() with the one change that `change` makes.
template <class Change>
std::string refusal_of(Change change) {
  auto cfg = valid();
  change(cfg);
  return refusal(cfg);
}

}  // namespace

TEST(Config, DefaultsAreValid) {
  EXPECT_NO_THROW(tachyon::validate(tachyon::config{}));
  EXPECT_NO_THROW(tachyon::validate(valid()));
}

TEST(Config, RejectsAbsurdWorkerCounts) {
  EXPECT_THAT(refusal_of([](tachyon::config& c) { c.workers = 257; }),
              AllOf(HasSubstr("config.workers = 257"), HasSubstr("0 .. 256")));
}

TEST(Config, RejectsZeroLaneCapacity) {
  EXPECT_THAT(refusal_of([](tachyon::config& c) { c.lane_capacity = 0; }),
              AllOf(HasSubstr("config.lane_capacity = 0"), HasSubstr("1 .. 16777216")));
}

TEST(Config, RejectsLaneCapacityAboveTwoToThe24) {
  EXPECT_THAT(refusal_of([](tachyon::config& c) { c.lane_capacity = (1u << 24) + 1; }),
              HasSubstr("config.lane_capacity = 16777217"));
}

TEST(Config, RejectsZeroBatch) {
  EXPECT_THAT(refusal_of([](tachyon::config& c) { c.batch = 0; }),
              AllOf(HasSubstr("config.batch = 0"), HasSubstr("1 .. 4096")));
}

TEST(Config, RejectsBatchAbove4096) {
  EXPECT_THAT(refusal_of([](tachyon::config& c) { c.batch = 5000; }),
              HasSubstr("config.batch = 5000"));
}

TEST(Config, RejectsZeroProducers) {
  EXPECT_THAT(refusal_of([](tachyon::config& c) { c.producers = 0; }),
              AllOf(HasSubstr("config.producers = 0"), HasSubstr("1 .. 1024")));
}

TEST(Config, RejectsAnUnknownWaitStrategy) {
  EXPECT_THAT(
      refusal_of([](tachyon::config& c) { c.wait = static_cast<tachyon::wait_strategy>(9); }),
      AllOf(HasSubstr("config.wait = 9"), HasSubstr("spin_then_park (2)")));
}

TEST(Config, RejectsAnUnknownOverflowPolicy) {
  EXPECT_THAT(
      refusal_of([](tachyon::config& c) { c.overflow = static_cast<tachyon::overflow>(9); }),
      AllOf(HasSubstr("config.overflow = 9"), HasSubstr("drop (2)")));
}

TEST(Config, RejectsANegativeSpinBeforePark) {
  EXPECT_THAT(refusal_of([](tachyon::config& c) { c.spin_before_park = -1ns; }),
              AllOf(HasSubstr("config.spin_before_park = -1 ns"), HasSubstr("0 .. 1 s")));
}

TEST(Config, RejectsASpinBeforeParkAboveOneSecond) {
  EXPECT_THAT(refusal_of([](tachyon::config& c) { c.spin_before_park = 2s; }),
              HasSubstr("config.spin_before_park = 2000000000 ns"));
}

TEST(Config, RejectsANegativeBlockTimeout) {
  EXPECT_THAT(
      refusal_of([](tachyon::config& c) { c.block_timeout = -5ns; }),
      AllOf(HasSubstr("config.block_timeout = -5 ns"), HasSubstr("0 (no deadline) .. 1 hour")));
}

TEST(Config, RejectsABlockTimeoutAboveOneHour) {
  EXPECT_THAT(refusal_of([](tachyon::config& c) { c.block_timeout = std::chrono::hours(2); }),
              HasSubstr("config.block_timeout = 7200000000000 ns"));
}

TEST(Config, RejectsACpuTheMachineDoesNotHave) {
  const long cpus = sysconf(_SC_NPROCESSORS_CONF);
  auto cfg = valid();
  cfg.workers = 1;
  cfg.cpus = {0, static_cast<int>(cpus)};
  EXPECT_THAT(refusal(cfg),
              AllOf(HasSubstr("config.cpus[1] = " + std::to_string(cpus)),
                    HasSubstr("this machine has CPUs 0 .. " + std::to_string(cpus - 1))));
}

TEST(Config, AcceptsEveryCpuTheMachineHasEvenFromAPinnedThread) {
  cpu_set_t saved, only_first;
  ASSERT_EQ(sched_getaffinity(0, sizeof(saved), &saved), 0);
  int first = 0;
  while (!CPU_ISSET(first, &saved)) ++first;
  CPU_ZERO(&only_first);
  CPU_SET(first, &only_first);
  ASSERT_EQ(sched_setaffinity(0, sizeof(only_first), &only_first), 0);
  std::vector<int> all;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &saved)) all.push_back(c);
  auto cfg = valid();
  cfg.workers = 1;
  cfg.cpus = all;
  EXPECT_NO_THROW(tachyon::validate(cfg));
  sched_setaffinity(0, sizeof(saved), &saved);
}

TEST(Config, RejectsANegativeCpu) {
  auto cfg = valid();
  cfg.workers = 1;
  cfg.cpus = {-1};
  EXPECT_THAT(refusal(cfg), HasSubstr("config.cpus[0] = -1"));
}

TEST(Config, RejectsBlockingWithoutDeadlineInManualMode) {
  auto cfg = valid();
  cfg.overflow = tachyon::overflow::block;
  cfg.block_timeout = 0ns;
  EXPECT_THAT(refusal(cfg),
              AllOf(HasSubstr("config.overflow = block"), HasSubstr("workers = 0 (manual mode)")));
}

TEST(Config, AcceptsBlockingWithADeadlineInManualMode) {
  auto cfg = valid();
  cfg.overflow = tachyon::overflow::block;
  cfg.block_timeout = 1ms;
  EXPECT_NO_THROW(tachyon::bus<tt::Events>{cfg});
}

TEST(Config, RefusesBeforeReservingAnyLaneMemory) {
  auto cfg = valid();
  cfg.workers = 4;
  cfg.batch = 0;
  const auto before = tachyon::detail::thread_allocations();
  EXPECT_THROW(tachyon::bus<tt::Events>{cfg}, std::invalid_argument);
  // Validation runs before the lanes reserve memory: a refused bus allocates nothing.
  EXPECT_EQ(tachyon::detail::thread_allocations(), before);
}

TEST(Config, IgnoresCpusInManualMode) {
  // config::cpus is documented as ignored with workers = 0: nothing is pinned, so nothing is
  // checked either, not even a CPU the machine does not have.
  auto cfg = valid();
  cfg.cpus = {-1, static_cast<int>(sysconf(_SC_NPROCESSORS_CONF)) + 7};
  EXPECT_NO_THROW(tachyon::validate(cfg));
  EXPECT_NO_THROW(tachyon::bus<tt::Events>{cfg});
}

namespace {

/// lane_traits (so the same blocks), counting what moodycamel asks for.
struct counting_traits : tachyon::detail::lane_traits {
  static inline std::uint64_t bytes = 0;
  static void* malloc(std::size_t n) {
    bytes += n;
    return std::malloc(n);
  }
  static void free(void* p) { std::free(p); }
};

/// What lane_queue(capacity, producers, 0) really allocates when it is constructed.
std::uint64_t measured_lane_reservation(std::size_t capacity, std::size_t producers) {
  counting_traits::bytes = 0;
  moodycamel::ConcurrentQueue<tachyon::detail::envelope, counting_traits> q(capacity, producers, 0);
  return counting_traits::bytes;
}

}  // namespace

TEST(Config, ReservationIsWhatMoodycamelAllocates) {
  for (std::size_t capacity : {1u, 63u, 64u, 65u, 1000u, 1024u, 4096u})
    for (std::size_t producers : {1u, 2u, 5u, 9u})
      EXPECT_EQ(tachyon::detail::lane_reservation_bytes(capacity, producers),
                measured_lane_reservation(capacity, producers))
          << "lane_capacity " << capacity << ", producers + workers " << producers;
}

TEST(Config, RejectsLanesThatWouldReserveMoreThanMaxReservedBytes) {
  // Each value in its range, together about 1.1 TB per lane.
  auto cfg = valid();
  cfg.lane_capacity = 1u << 24;
  cfg.producers = 1024;
  EXPECT_THAT(
      refusal(cfg),
      AllOf(HasSubstr("config.lane_capacity x (producers + workers) = 16777216 x (1024 + 0)"),
            HasSubstr("would reserve " + std::to_string(tachyon::detail::reserved_bytes(cfg)) +
                      " bytes"),
            HasSubstr("above max_reserved_bytes = 1073741824")));
}

TEST(Config, AcceptsLanesUpToMaxReservedBytesExactly) {
  auto cfg = valid();  // lane_capacity 1024, producers 2, workers 0: under 1 MiB in all
  const std::uint64_t total = 4 * measured_lane_reservation(cfg.lane_capacity, cfg.producers);
  cfg.max_reserved_bytes = total;
  EXPECT_NO_THROW(tachyon::bus<tt::Events>{cfg});
  cfg.max_reserved_bytes = total - 1;
  EXPECT_THAT(refusal(cfg),
              AllOf(HasSubstr("config.lane_capacity x (producers + workers) = 1024 x (2 + 0)"),
                    HasSubstr("would reserve " + std::to_string(total) + " bytes"),
                    HasSubstr("max_reserved_bytes = " + std::to_string(total - 1))));
  cfg.workers = 1;  // each worker is a producer too
  cfg.max_reserved_bytes = total;
  EXPECT_THAT(refusal(cfg), HasSubstr("= 1024 x (2 + 1)"));
}

TEST(ConfigDeathTest, ThrowsBadAllocWhenTheReservationCannotBeHad) {
  if (tt::sanitized()) GTEST_SKIP() << "sanitizers reserve address space and trap huge allocations";
  if (tachyon::test::emulated)
    GTEST_SKIP() << "under qemu-user the address-space limit also bounds the emulator's own "
                    "mappings, and qemu is killed before the library's reservation is tried";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        // The child may grow its address space by 1 GiB; the lanes ask for about 1.1 TB each,
        // allowed by max_reserved_bytes, so moodycamel's reservation fails, whatever the
        // machine's overcommit policy.
        rlimit lim{};
        getrlimit(RLIMIT_AS, &lim);
        std::FILE* f = std::fopen("/proc/self/statm", "r");
        unsigned long pages = 0;
        if (f == nullptr || std::fscanf(f, "%lu", &pages) != 1) std::_Exit(3);
        std::fclose(f);
        lim.rlim_cur = pages * static_cast<unsigned long>(sysconf(_SC_PAGESIZE)) + (1ul << 30);
        if (setrlimit(RLIMIT_AS, &lim) != 0) std::_Exit(4);
        auto cfg = valid();
        cfg.lane_capacity = 1u << 24;
        cfg.producers = 1024;
        cfg.max_reserved_bytes = SIZE_MAX;
        try {
          tachyon::bus<tt::Events> bus{cfg};
        } catch (const std::bad_alloc&) {
          std::_Exit(0);
        }
        std::_Exit(1);  // built with lanes that reserved nothing
      },
      ::testing::ExitedWithCode(0), "");
}
