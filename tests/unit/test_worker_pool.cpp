// detail::worker_pool on its own: every worker runs its body once with its own index, named and
// pinned; none runs before all are pinned, and a failed pin leaves nothing running.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>

#include <tachyon/detail/worker/worker_pool.hpp>

using tachyon::detail::worker_pool;
using ::testing::HasSubstr;

TEST(WorkerPool, EachWorkerRunsItsBodyOnceWithItsIndexAndName) {
  tachyon::config cfg;
  cfg.workers = 4;
  std::mutex m;
  std::set<std::uint32_t> seen;
  std::set<std::string> names;
  worker_pool pool;
  pool.start(cfg, [&](std::uint32_t i) {
    char name[16] = {};
    pthread_getname_np(pthread_self(), name, sizeof(name));
    std::lock_guard g(m);
    seen.insert(i);
    names.insert(name);
  });
  pool.join();
  EXPECT_EQ(seen, (std::set<std::uint32_t>{0, 1, 2, 3}));
  EXPECT_EQ(names, (std::set<std::string>{"tachyon-w0", "tachyon-w1", "tachyon-w2", "tachyon-w3"}));
  pool.join();  // idempotent
}

TEST(WorkerPool, NoWorkersRunsNothing) {
  tachyon::config cfg;
  cfg.workers = 0;
  std::atomic<int> runs{0};
  worker_pool pool;
  pool.start(cfg, [&](std::uint32_t) { ++runs; });
  pool.join();
  EXPECT_EQ(runs.load(), 0);
}

TEST(WorkerPool, AWorkerIsPinnedToItsCpu) {
  cpu_set_t allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
  int cpu = 0;
  while (!CPU_ISSET(cpu, &allowed)) ++cpu;
  tachyon::config cfg;
  cfg.workers = 1;
  cfg.cpus = {cpu};
  std::atomic<int> count{-1};
  std::atomic<bool> on_cpu{false};
  worker_pool pool;
  pool.start(cfg, [&](std::uint32_t) {
    cpu_set_t set;
    pthread_getaffinity_np(pthread_self(), sizeof(set), &set);
    count = CPU_COUNT(&set);
    on_cpu = CPU_ISSET(cpu, &set);
  });
  pool.join();
  EXPECT_EQ(count.load(), 1);
  EXPECT_TRUE(on_cpu.load());
}

TEST(WorkerPool, AFailedPinThrowsAndRunsNoBody) {
  cpu_set_t allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
  const long conf = sysconf(_SC_NPROCESSORS_CONF);
  int forbidden = -1;
  for (int c = 0; c < conf && c < CPU_SETSIZE; ++c)
    if (!CPU_ISSET(c, &allowed)) forbidden = c;
  if (forbidden < 0) GTEST_SKIP() << "every CPU of this machine is allowed to this process";
  tachyon::config cfg;
  cfg.workers = 2;
  cfg.cpus = {forbidden};
  std::atomic<int> runs{0};
  worker_pool pool;
  try {
    pool.start(cfg, [&](std::uint32_t) { ++runs; });
    FAIL() << "start() did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("could not pin worker tachyon-w"));
  }
  EXPECT_EQ(runs.load(), 0);
}

TEST(WorkerPool, AWorkerThatFailsToPinGetsNoHooksAndTheOthersStartAndStop) {
  cpu_set_t allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
  const long conf = sysconf(_SC_NPROCESSORS_CONF);
  int forbidden = -1, ok_cpu = -1;
  for (int c = 0; c < conf && c < CPU_SETSIZE; ++c) {
    if (!CPU_ISSET(c, &allowed)) forbidden = c;
    if (CPU_ISSET(c, &allowed) && ok_cpu < 0) ok_cpu = c;
  }
  if (forbidden < 0) GTEST_SKIP() << "every CPU of this machine is allowed to this process";
  tachyon::config cfg;
  cfg.workers = 2;
  cfg.cpus = {ok_cpu, forbidden};  // worker 0 pins, worker 1 cannot
  std::mutex m;
  std::multiset<std::uint32_t> starts, stops;
  cfg.on_worker_start = [&](std::uint32_t i) {
    std::lock_guard g(m);
    starts.insert(i);
  };
  cfg.on_worker_stop = [&](std::uint32_t i) {
    std::lock_guard g(m);
    stops.insert(i);
  };
  std::atomic<int> runs{0};
  worker_pool pool;
  EXPECT_THROW(pool.start(cfg, [&](std::uint32_t) { ++runs; }), std::runtime_error);
  EXPECT_EQ(runs.load(), 0);
  EXPECT_EQ(starts, (std::multiset<std::uint32_t>{0}));
  EXPECT_EQ(stops, (std::multiset<std::uint32_t>{0}));  // abandoned after its start: stopped
}
