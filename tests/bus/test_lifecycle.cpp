// Lifecycle features: bus::subscribers<T>() (a lock-free count of T's live handlers) and
// config::on_worker_start / on_worker_stop (hooks on each worker thread).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pthread.h>

#include <dirent.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <latch>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "books.hpp"
#include "common.hpp"

#include <tachyon/tachyon.hpp>

namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using tt::Events;
using tt::Halt;
using tt::Note;
using tt::Order;
using tt::Quote;

// ---- subscribers<T>() ---------------------------------------------------------------------------

TEST(Subscribers, CountsLiveHandlersThroughSubscribeAndUnsubscribe) {
  tachyon::bus<Events> bus{tt::manual()};
  EXPECT_EQ(bus.subscribers<Quote>(), 0u);
  auto a = bus.subscribe<Quote>([](const Quote&) {});
  auto b = bus.subscribe<Quote>([](const Quote&, const tachyon::meta&) {}, {.order = -5});
  std::optional<tachyon::subscription> c = bus.subscribe<Quote>([](const Quote&) {});
  auto o = bus.subscribe<Order>([](const Order&) {});
  EXPECT_EQ(bus.subscribers<Quote>(), 3u);
  EXPECT_EQ(bus.subscribers<Order>(), 1u);
  EXPECT_EQ(bus.subscribers<Halt>(), 0u);

  b.unsubscribe();
  EXPECT_EQ(bus.subscribers<Quote>(), 2u);
  b.unsubscribe();  // idempotent: counts nothing twice
  EXPECT_EQ(bus.subscribers<Quote>(), 2u);
  c.reset();  // the handle's destruction removes it
  EXPECT_EQ(bus.subscribers<Quote>(), 1u);
  a.detach();  // a detached handler stays until the bus goes
  EXPECT_EQ(bus.subscribers<Quote>(), 1u);
  auto moved = std::move(o);  // moving the handle keeps the subscription
  EXPECT_EQ(bus.subscribers<Order>(), 1u);
  moved = tachyon::subscription{};
  EXPECT_EQ(bus.subscribers<Order>(), 0u);
}

TEST(Subscribers, InsideAHandlerSeesItsOwnSubscribeAndUnsubscribeAtOnce) {
  tachyon::bus<Events> bus{tt::manual()};
  std::vector<std::size_t> seen;
  tachyon::subscription self, added;
  auto other = bus.subscribe<Quote>([](const Quote&) {});
  self = bus.subscribe<Quote>([&](const Quote&) {
    seen.push_back(bus.subscribers<Quote>());  // 2: itself and `other`
    self.unsubscribe();                        // from inside: waits for nobody
    seen.push_back(bus.subscribers<Quote>());  // 1: the removal counts at once
    added = bus.subscribe<Quote>([](const Quote&) {});
    seen.push_back(bus.subscribers<Quote>());  // 2 again
    seen.push_back(bus.subscribers<Order>());  // another type, from inside: 0
  });
  ASSERT_EQ(bus.publish(Quote{1, 1, 1}), tachyon::result::ok);
  EXPECT_EQ(bus.poll(), 1u);
  EXPECT_EQ(seen, (std::vector<std::size_t>{2, 1, 2, 0}));
  EXPECT_EQ(bus.subscribers<Quote>(), 2u);
  // And from dispatch(), on the caller's thread.
  std::size_t in_dispatch = 0;
  auto h = bus.subscribe<Halt>([&](const Halt&) { in_dispatch = bus.subscribers<Halt>(); });
  bus.dispatch(Halt{1});
  EXPECT_EQ(in_dispatch, 1u);
}

TEST(Subscribers, ReadsSafelyWhileOtherThreadsSubscribeAndUnsubscribe) {
  // Readers (a plain thread and the workers' handlers) count while a writer swaps the list
  // under them; under ASan a read of a freed list fails, under TSan an unordered one. The
  // count is always between what is certainly there and what may be.
  const int rounds = tt::sanitized() ? 300 : 3000;
  tachyon::bus<Events> bus{
      {.workers = 2, .lane_capacity = 1024, .overflow = tachyon::overflow::drop}};
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::atomic<std::uint64_t> reads{0};
  auto base = bus.subscribe<Quote>([&](const Quote&) {
    const std::size_t n = bus.subscribers<Quote>();  // inside a handler, on a worker
    if (n < 1 || n > 4) bad.fetch_add(1);
    reads.fetch_add(1);
  });
  std::thread writer([&] {
    for (int i = 0; i < rounds; ++i) {
      auto x = bus.subscribe<Quote>([](const Quote&) {});
      auto y = bus.subscribe<Quote>([](const Quote&) {}, {.order = i % 3 - 1});
      auto z = bus.subscribe<Quote>([](const Quote&) {});
      y.unsubscribe();
    }  // x and z go at the end of each round
    done.store(true);
  });
  std::thread reader([&] {
    while (!done.load()) {
      const std::size_t n = bus.subscribers<Quote>();
      if (n < 1 || n > 4) bad.fetch_add(1);
      reads.fetch_add(1);
    }
  });
  std::thread publisher([&] {
    while (!done.load()) (void)bus.publish(Quote{1, 1, 1});
  });
  writer.join();
  reader.join();
  publisher.join();
  bus.stop();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(reads.load(), 0u);
  EXPECT_EQ(bus.subscribers<Quote>(), 1u);
  tt::expect_books_balance(bus.metrics());
}

// ---- worker hooks -------------------------------------------------------------------------------

std::string this_thread_name() {
  char name[16] = {};
  pthread_getname_np(pthread_self(), name, sizeof(name));
  return name;
}

/// Threads of this process named tachyon-w*: what a failed construction must not leave behind.
int worker_threads_alive() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/task")) {
    while (const dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream comm(std::string("/proc/self/task/") + e->d_name + "/comm");
      std::string name;
      std::getline(comm, name);
      n += name.rfind("tachyon-w", 0) == 0 ? 1 : 0;
    }
    closedir(d);
  }
  return n;
}

struct hook_log {
  struct entry {
    char kind;  // 's' start, 'h' handler, 'x' stop
    std::uint32_t index;
    std::thread::id thread;
    std::string name;
  };
  std::mutex m;
  std::vector<entry> entries;
  void add(char kind, std::uint32_t index) {
    std::lock_guard g(m);
    entries.push_back({kind, index, std::this_thread::get_id(), this_thread_name()});
  }
  std::size_t count(char kind) {
    std::lock_guard g(m);
    return static_cast<std::size_t>(std::count_if(entries.begin(), entries.end(),
                                                  [&](const entry& e) { return e.kind == kind; }));
  }
};

TEST(WorkerHooks, RunOncePerWorkerOnItsThreadBeforeTheFirstHandlerAndAfterTheLast) {
  constexpr std::uint32_t workers = 3;
  const int events = tt::sanitized() ? 2000 : 20000;
  hook_log log;
  tachyon::config cfg{.workers = workers, .overflow = tachyon::overflow::block};
  cfg.on_worker_start = [&](std::uint32_t i) { log.add('s', i); };
  cfg.on_worker_stop = [&](std::uint32_t i) { log.add('x', i); };
  std::optional<tachyon::bus<Events>> bus;
  bus.emplace(cfg);
  // Every start hook has returned before the constructor does.
  EXPECT_EQ(log.count('s'), workers);
  EXPECT_EQ(log.count('x'), 0u);
  auto s = bus->subscribe<Quote>([&](const Quote&) { log.add('h', 0); });
  for (int i = 0; i < events; ++i) ASSERT_EQ(bus->publish(Quote{1, 1, 1}), tachyon::result::ok);
  bus->stop();
  EXPECT_EQ(log.count('x'), workers);  // stop() returns after every stop hook
  bus.reset();

  std::map<std::thread::id, std::uint32_t> worker_of;  // a worker's thread -> its index
  std::map<std::uint32_t, int> starts, stops;
  std::map<std::thread::id, bool> stopped;  // per worker thread: its stop hook has been logged
  std::size_t handled = 0;
  for (const auto& e : log.entries) {
    switch (e.kind) {
      case 's':
        ++starts[e.index];
        EXPECT_EQ(e.name, "tachyon-w" + std::to_string(e.index));  // named before the hook
        EXPECT_TRUE(worker_of.emplace(e.thread, e.index).second) << "two starts on one thread";
        break;
      case 'h':
        ++handled;
        ASSERT_TRUE(worker_of.count(e.thread)) << "a handler ran on a thread before its start hook";
        EXPECT_FALSE(stopped[e.thread]) << "a handler ran after its worker's stop hook";
        EXPECT_EQ(e.name.rfind("tachyon-w", 0), 0u);
        break;
      case 'x':
        ++stops[e.index];
        ASSERT_TRUE(worker_of.count(e.thread));
        EXPECT_EQ(worker_of[e.thread], e.index) << "stop hook on another worker's thread";
        stopped[e.thread] = true;
        break;
    }
  }
  EXPECT_EQ(handled, static_cast<std::size_t>(events));
  for (std::uint32_t i = 0; i < workers; ++i) {
    EXPECT_EQ(starts[i], 1) << "worker " << i;
    EXPECT_EQ(stops[i], 1) << "worker " << i;
  }
  EXPECT_EQ(worker_of.size(), workers);
}

TEST(WorkerHooks, AThrowingStartHookFailsTheConstructorAndStopsTheWorkersThatStarted) {
  hook_log log;
  tachyon::config cfg{.workers = 3};
  cfg.on_worker_start = [&](std::uint32_t i) {
    log.add('s', i);
    if (i == 1) throw std::domain_error("no profiler slot");
  };
  cfg.on_worker_stop = [&](std::uint32_t i) { log.add('x', i); };
  try {
    tachyon::bus<Events> bus{cfg};
    FAIL() << "the constructor did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("config::on_worker_start threw on worker tachyon-w1"));
    EXPECT_THAT(e.what(), HasSubstr("no profiler slot"));
    try {
      std::rethrow_if_nested(e);
      ADD_FAILURE() << "the hook's exception is not nested";
    } catch (const std::domain_error& inner) {
      EXPECT_STREQ(inner.what(), "no profiler slot");
    }
  }
  // Nothing is left running, and the hooks are final: every worker started (1 threw), and
  // exactly those whose start returned (0 and 2) were stopped.
  EXPECT_EQ(worker_threads_alive(), 0);
  std::multiset<std::uint32_t> starts, stops;
  for (const auto& e : log.entries) (e.kind == 's' ? starts : stops).insert(e.index);
  EXPECT_EQ(starts, (std::multiset<std::uint32_t>{0, 1, 2}));
  EXPECT_EQ(stops, (std::multiset<std::uint32_t>{0, 2}));
}

TEST(WorkerHooks, AStartHookThrowingANonStandardExceptionIsNestedToo) {
  tachyon::config cfg{.workers = 2};
  cfg.on_worker_start = [](std::uint32_t) { throw 42; };
  try {
    tachyon::bus<Events> bus{cfg};
    FAIL() << "the constructor did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("an exception not derived from std::exception"));
    try {
      std::rethrow_if_nested(e);
      ADD_FAILURE() << "the hook's exception is not nested";
    } catch (int v) {
      EXPECT_EQ(v, 42);
    }
  }
  EXPECT_EQ(worker_threads_alive(), 0);
}

TEST(WorkerHooks, AThrowingStopHookIsSwallowedAndEveryWorkerStillStops) {
  std::atomic<int> stops{0}, handled{0};
  tachyon::config cfg{.workers = 3};
  cfg.on_worker_stop = [&](std::uint32_t) {
    stops.fetch_add(1);
    throw std::runtime_error("profiler gone");
  };
  {
    tachyon::bus<Events> bus{cfg};
    auto s = bus.subscribe<Quote>([&](const Quote&) { handled.fetch_add(1); });
    for (int i = 0; i < 100; ++i) ASSERT_EQ(bus.publish(Quote{1, 1, 1}), tachyon::result::ok);
    EXPECT_EQ(bus.stop(), 0u);
    EXPECT_EQ(stops.load(), 3);
    EXPECT_EQ(handled.load(), 100);
    tt::expect_books_balance(bus.metrics());
  }  // the destructor does not call them again
  EXPECT_EQ(stops.load(), 3);
  EXPECT_EQ(worker_threads_alive(), 0);
}

TEST(WorkerHooks, AStopHookThatHangsIsBoundedByATimedStop) {
  std::atomic<bool> release{false};
  std::atomic<int> stops{0};
  tachyon::config cfg{.workers = 1};
  cfg.on_worker_stop = [&](std::uint32_t) {
    tt::eventually([&] { return release.load(); });
    stops.fetch_add(1);
  };
  tachyon::bus<Events> bus{cfg};
  const auto r = bus.stop(tachyon::stop_mode::drain, 20ms);  // the hook holds the worker
  EXPECT_FALSE(r.complete);
  EXPECT_EQ(stops.load(), 0);
  release.store(true);
  EXPECT_EQ(bus.stop(), 0u);  // finishes the stop: joins once the hook returns
  EXPECT_EQ(stops.load(), 1);
}

TEST(WorkerHooks, AreNotCalledInManualMode) {
  std::atomic<int> calls{0};
  auto cfg = tt::manual();
  cfg.on_worker_start = [&](std::uint32_t) { calls.fetch_add(1); };
  cfg.on_worker_stop = [&](std::uint32_t) { calls.fetch_add(1); };
  {
    tachyon::bus<Events> bus{cfg};
    int handled = 0;
    auto s = bus.subscribe<Quote>([&](const Quote&) { ++handled; });
    ASSERT_EQ(bus.publish(Quote{1, 1, 1}), tachyon::result::ok);
    EXPECT_EQ(bus.poll(), 1u);
    EXPECT_EQ(handled, 1);
    bus.stop();
  }
  EXPECT_EQ(calls.load(), 0);
}

}  // namespace
