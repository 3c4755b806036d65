// Lifecycle and load-shedding features: bus::subscribers<T>() (a lock-free count of T's live
// handlers), config::on_worker_start / on_worker_stop (hooks on each worker thread), and
// overflow::drop_oldest (a full lane makes room by displacing its oldest event).
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

// ---- overflow::drop_oldest ----------------------------------------------------------------------

tachyon::config drop_oldest_manual(std::uint32_t capacity) {
  auto cfg = tt::manual(capacity);
  cfg.overflow = tachyon::overflow::drop_oldest;
  return cfg;
}

TEST(DropOldest, AFullLaneKeepsTheNewestEventsAndCountsTheDisplaced) {
  tachyon::bus<Events> bus{drop_oldest_manual(8)};
  std::vector<std::uint32_t> ran;
  auto s = bus.subscribe<Quote>([&](const Quote& q) { ran.push_back(q.instrument); });
  for (std::uint32_t i = 0; i < 20; ++i)
    ASSERT_EQ(bus.publish(Quote{i, 1, 1}), tachyon::result::ok) << i;  // each new one is queued
  const auto mid = bus.metrics();
  EXPECT_EQ(mid.total.displaced, 12u);
  EXPECT_EQ(mid.in_flight, 8u);
  EXPECT_EQ(bus.poll(), 8u);
  EXPECT_EQ(ran, (std::vector<std::uint32_t>{12, 13, 14, 15, 16, 17, 18, 19}));
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, 20u);
  EXPECT_EQ(m.total.dispatched, 8u);
  EXPECT_EQ(m.total.displaced, 12u);
  EXPECT_EQ(m.total.dropped, 0u);
  EXPECT_EQ(m.total.rejected_full, 0u);
  EXPECT_EQ(m.lanes[static_cast<unsigned>(tachyon::priority::normal)].counts.displaced, 12u);
  tt::expect_books_balance(m);
  // Room that displacement handed over is the lane's like any other: it refills to 8 again.
  for (std::uint32_t i = 100; i < 108; ++i)
    ASSERT_EQ(bus.publish(Quote{i, 1, 1}), tachyon::result::ok);
  EXPECT_EQ(bus.metrics().total.displaced, 12u);
  EXPECT_EQ(bus.poll(), 8u);
  tt::expect_books_balance(bus.metrics());
}

TEST(DropOldest, OtherLanesAreUntouched) {
  tachyon::bus<Events> bus{drop_oldest_manual(4)};
  std::vector<std::string> ran;
  auto q = bus.subscribe<Quote>(
      [&](const Quote& e) { ran.push_back("q" + std::to_string(e.instrument)); });
  auto h = bus.subscribe<Halt>(
      [&](const Halt& e) { ran.push_back("h" + std::to_string(e.instrument)); });
  for (std::uint32_t i = 0; i < 3; ++i) ASSERT_EQ(bus.publish(Halt{i}), tachyon::result::ok);
  for (std::uint32_t i = 0; i < 6; ++i) ASSERT_EQ(bus.publish(Quote{i, 1, 1}), tachyon::result::ok);
  EXPECT_EQ(bus.poll(), 7u);
  EXPECT_EQ(ran, (std::vector<std::string>{"h0", "h1", "h2", "q2", "q3", "q4", "q5"}));
  const auto m = bus.metrics();
  EXPECT_EQ(m.lanes[static_cast<unsigned>(tachyon::priority::critical)].counts.displaced, 0u);
  EXPECT_EQ(m.lanes[static_cast<unsigned>(tachyon::priority::normal)].counts.displaced, 2u);
  tt::expect_books_balance(m);
}

TEST(DropOldest, ADisplacedBoxedEventIsReleasedAtOnce) {
  ASSERT_EQ(Note::live.load(), 0);
  {
    tachyon::bus<Events> bus{drop_oldest_manual(4)};
    std::vector<std::string> ran;
    auto s = bus.subscribe<Note>([&](const Note& n) { ran.push_back(n.text); });
    for (int i = 0; i < 10; ++i)
      ASSERT_EQ(bus.publish(Note{"n" + std::to_string(i)}), tachyon::result::ok);
    EXPECT_EQ(Note::live.load(), 4);  // the six displaced ones were destroyed by their displacers
    EXPECT_EQ(bus.poll(), 4u);
    EXPECT_EQ(ran, (std::vector<std::string>{"n6", "n7", "n8", "n9"}));
    EXPECT_EQ(Note::live.load(), 0);
    const auto m = bus.metrics();
    EXPECT_EQ(m.total.displaced, 6u);
    tt::expect_books_balance(m);
  }
  EXPECT_EQ(Note::live.load(), 0);
}

TEST(DropOldest, PublishBatchDisplacesOneQueuedEventPerEventBeyondTheBound) {
  tachyon::bus<Events> bus{drop_oldest_manual(8)};
  std::vector<std::uint32_t> ran;
  auto s = bus.subscribe<Quote>([&](const Quote& q) { ran.push_back(q.instrument); });
  ASSERT_EQ(bus.publish(Quote{1000, 1, 1}), tachyon::result::ok);  // an older event of the lane
  std::vector<Quote> batch;
  for (std::uint32_t i = 0; i < 100; ++i) batch.push_back(Quote{i, 1, 1});
  const auto b = bus.publish_batch(std::span<const Quote>(batch));
  EXPECT_EQ(b.status, tachyon::result::ok);
  EXPECT_EQ(b.queued, 100u);  // every one was queued; the older ones were displaced since
  EXPECT_EQ(b.dropped, 0u);
  EXPECT_EQ(bus.poll(), 8u);
  EXPECT_EQ(ran, (std::vector<std::uint32_t>{92, 93, 94, 95, 96, 97, 98, 99}));
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, 101u);
  EXPECT_EQ(m.total.displaced, 93u);
  tt::expect_books_balance(m);
}

TEST(DropOldest, AThreadDisplacesItsOwnOldestEventFirst) {
  // Another thread's events are older, but this thread has events of its own in the lane:
  // displacement takes this thread's oldest (FIFO per producer, which is exact), so a flooding
  // publisher sheds its own backlog, not other publishers' events.
  tachyon::bus<Events> bus{drop_oldest_manual(8)};
  std::vector<std::uint32_t> ran;
  auto s = bus.subscribe<Quote>([&](const Quote& q) { ran.push_back(q.instrument); });
  // This thread's context first, so that it does not take over the other thread's when that
  // thread ends (a context, with its producers, is handed on for reuse).
  EXPECT_EQ(bus.poll(), 0u);
  std::thread other([&] {
    for (std::uint32_t i = 0; i < 4; ++i)
      ASSERT_EQ(bus.publish(Quote{100 + i, 1, 1}), tachyon::result::ok);
  });
  other.join();
  for (std::uint32_t i = 0; i < 10; ++i)
    ASSERT_EQ(bus.publish(Quote{i, 1, 1}), tachyon::result::ok);
  EXPECT_EQ(bus.poll(), 8u);
  std::sort(ran.begin(), ran.end());
  EXPECT_EQ(ran, (std::vector<std::uint32_t>{6, 7, 8, 9, 100, 101, 102, 103}));
  EXPECT_EQ(bus.metrics().total.displaced, 6u);
  tt::expect_books_balance(bus.metrics());
}

TEST(DropOldest, AThreadWithNothingQueuedDisplacesTheOldestOfAnotherProducer) {
  // Which producer is moodycamel's choice (the fullest of the first three non-empty ones it
  // looks at); what it takes from that producer is that producer's oldest event.
  tachyon::bus<Events> bus{drop_oldest_manual(8)};
  std::vector<std::uint32_t> ran;
  auto s = bus.subscribe<Quote>([&](const Quote& q) { ran.push_back(q.instrument); });
  // a and b stay alive (their contexts owned) until c has published, so c's context, and its
  // producer in the lane, are new and hold nothing.
  std::latch published(2), release(1);
  auto fill = [&](std::uint32_t first) {
    for (std::uint32_t i = 0; i < 4; ++i)
      EXPECT_EQ(bus.publish(Quote{first + i, 1, 1}), tachyon::result::ok);
    published.count_down();
    release.wait();
  };
  std::thread a(fill, 100u);
  std::thread b(fill, 200u);
  published.wait();
  std::thread c([&] { EXPECT_EQ(bus.publish(Quote{300, 1, 1}), tachyon::result::ok); });
  c.join();
  release.count_down();
  a.join();
  b.join();
  EXPECT_EQ(bus.poll(), 8u);
  std::sort(ran.begin(), ran.end());
  const std::vector<std::uint32_t> a_lost{101, 102, 103, 200, 201, 202, 203, 300};
  const std::vector<std::uint32_t> b_lost{100, 101, 102, 103, 201, 202, 203, 300};
  EXPECT_TRUE(ran == a_lost || ran == b_lost) << ::testing::PrintToString(ran);
  EXPECT_EQ(bus.metrics().total.displaced, 1u);
  tt::expect_books_balance(bus.metrics());
}

TEST(DropOldest, ARetryQueuedInTheLaneIsSteppedOverNeverDisplaced) {
  // The retry re-enters the normal lane through this thread's own producer (run_once fires it),
  // at the front of what this thread has queued there: the displacing publishes below take
  // it out, step over it and put it back, and it still runs.
  tachyon::bus<Events> bus{drop_oldest_manual(4)};
  std::vector<std::string> ran;
  bool thrown = false;
  auto s = bus.subscribe<Quote>(
      [&](const Quote& q, const tachyon::meta& m) {
        if (q.instrument == 7 && !thrown) {
          thrown = true;
          throw std::runtime_error("once");
        }
        ran.push_back(std::to_string(q.instrument) + "@" + std::to_string(m.attempt));
      },
      {.retry = tt::retries(2, 0ns)});
  auto h = bus.subscribe<Halt>([](const Halt&) {});
  ASSERT_EQ(bus.publish(Quote{7, 1, 1}), tachyon::result::ok);
  EXPECT_EQ(bus.run_once(), 1u);  // throws: the retry is due at once
  ASSERT_EQ(bus.publish(Halt{1}), tachyon::result::ok);
  EXPECT_EQ(bus.run_once(), 1u);  // fires the retry into the normal lane, then runs the halt
  for (std::uint32_t i = 0; i < 12; ++i)
    ASSERT_EQ(bus.publish(Quote{i, 1, 1}), tachyon::result::ok);
  EXPECT_EQ(bus.poll(), 5u);  // the retry and the newest four
  std::sort(ran.begin(), ran.end());
  EXPECT_EQ(ran, (std::vector<std::string>{"10@0", "11@0", "7@1", "8@0", "9@0"}));
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.displaced, 8u);
  EXPECT_EQ(m.total.retried, 1u);
  EXPECT_EQ(m.total.dispatched, 1u + 1u + 4u);  // the retried quote, the halt, four quotes
  tt::expect_books_balance(m);
}

TEST(DropOldest, EventsWithADeadlineAreDisplacedLikeOthers) {
  ASSERT_EQ(Note::live.load(), 0);
  {
    tachyon::bus<Events> bus{drop_oldest_manual(4)};
    std::vector<std::string> ran;
    auto s = bus.subscribe<Note>([&](const Note& n) { ran.push_back(n.text); });
    for (int i = 0; i < 10; ++i) {
      tachyon::publish_options o;
      o.deadline = bus.now() + 1h;
      ASSERT_EQ(bus.publish(Note{"d" + std::to_string(i)}, o), tachyon::result::ok);
    }
    EXPECT_EQ(Note::live.load(), 4);
    EXPECT_EQ(bus.poll(), 4u);
    EXPECT_EQ(ran, (std::vector<std::string>{"d6", "d7", "d8", "d9"}));
    const auto m = bus.metrics();
    EXPECT_EQ(m.total.displaced, 6u);
    EXPECT_EQ(m.total.expired, 0u);
    tt::expect_books_balance(m);
  }
  EXPECT_EQ(Note::live.load(), 0);
}

TEST(DropOldest, AHandlerPublishingIntoAFullLaneDisplacesWithoutWaiting) {
  for (const std::uint32_t workers : {0u, 1u}) {
    auto cfg = drop_oldest_manual(4);
    cfg.workers = workers;
    tachyon::bus<Events> bus{cfg};
    std::mutex m;
    std::vector<std::uint32_t> ran;
    std::vector<tachyon::result> results;
    auto q = bus.subscribe<Quote>([&](const Quote& e) {
      std::lock_guard g(m);
      ran.push_back(e.instrument);
    });
    std::atomic<bool> halted{false};
    auto h = bus.subscribe<Halt>([&](const Halt&) {
      for (std::uint32_t i = 0; i < 10; ++i) {
        const auto r = bus.publish(Quote{i, 1, 1});
        std::lock_guard g(m);
        results.push_back(r);
      }
      halted.store(true);
    });
    // With a worker, the quotes may run as they come; the lane never holds more than four.
    ASSERT_EQ(bus.publish(Halt{1}), tachyon::result::ok);
    if (workers == 0) {
      EXPECT_EQ(bus.poll(), 1u + 4u);
      EXPECT_EQ(ran, (std::vector<std::uint32_t>{6, 7, 8, 9}));
    } else {
      ASSERT_TRUE(tt::eventually([&] { return halted.load(); }));
    }
    bus.stop();
    EXPECT_EQ(results, std::vector<tachyon::result>(10, tachyon::result::ok)) << workers;
    const auto met = bus.metrics();
    EXPECT_EQ(met.total.accepted, 11u);
    EXPECT_EQ(met.total.displaced + ran.size(), 10u);
    tt::expect_books_balance(met);
  }
}

TEST(DropOldest, APublishAfterStopIsRefusedNotDisplacing) {
  tachyon::bus<Events> bus{drop_oldest_manual(2)};
  int ran = 0;
  auto s = bus.subscribe<Quote>([&](const Quote&) { ++ran; });
  ASSERT_EQ(bus.publish(Quote{1, 1, 1}), tachyon::result::ok);
  ASSERT_EQ(bus.publish(Quote{2, 1, 1}), tachyon::result::ok);
  EXPECT_EQ(bus.stop(tachyon::stop_mode::drain), 0u);
  EXPECT_EQ(bus.publish(Quote{3, 1, 1}), tachyon::result::stopped);
  EXPECT_EQ(ran, 2);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.displaced, 0u);
  EXPECT_EQ(m.total.rejected_stopped, 1u);
  tt::expect_books_balance(m);
}

// Several publishers and workers under drop_oldest, with retries re-entering the same lane and
// handlers publishing into it too: every event ends in exactly one outcome, each published id
// runs at most once, what ran plus what was displaced or dropped is what was accepted, and a
// final stop (drain or discard) leaves the books exact.
struct stress_case {
  std::uint32_t capacity;
  std::uint32_t workers;
  tachyon::stop_mode stop;
  bool stop_while_publishing;  // else once every publisher is done
};

class DropOldestStress : public ::testing::TestWithParam<stress_case> {};

TEST_P(DropOldestStress, ExactBooksWithSeveralPublishersAndWorkers) {
  const auto param = GetParam();
  constexpr int publishers = 3;
  const std::uint32_t per = tt::sanitized() ? 3000 : 30000;
  tachyon::config cfg{.workers = param.workers,
                      .lane_capacity = param.capacity,
                      .batch = 8,
                      .wait = tachyon::wait_strategy::yield,
                      .overflow = tachyon::overflow::drop_oldest,
                      .producers = publishers + 1};
  tachyon::bus<Events> bus{cfg};
  const std::uint32_t total = publishers * per;
  std::vector<std::atomic<std::uint8_t>> runs(total);
  std::atomic<std::uint32_t> retried_runs{0}, echoes{0}, echo_accepted{0}, echo_dropped{0},
      echo_stopped{0};
  std::vector<std::atomic<std::uint32_t>> last_seen(publishers);  // per producer, one worker
  std::atomic<int> out_of_order{0};
  auto s = bus.subscribe<Quote>(
      [&](const Quote& q, const tachyon::meta& m) {
        if (q.instrument >= total) {  // an echo a handler published
          echoes.fetch_add(1);
          return;
        }
        if (q.instrument % 3 == 0 && m.attempt == 0) throw std::runtime_error("retry me");
        if (m.attempt != 0) retried_runs.fetch_add(1);
        runs[q.instrument].fetch_add(1);
        // One worker and no retry: a producer's events run in publish order (displacement
        // takes from the front, so it never reorders what survives).
        if (param.workers == 1 && m.attempt == 0) {
          const std::uint32_t p = q.instrument / per, seq = q.instrument % per + 1;
          if (seq <= last_seen[p].load()) out_of_order.fetch_add(1);
          last_seen[p].store(seq);
        }
        if (q.instrument % 2 == 0) {
          const auto r = bus.publish(Quote{total + q.instrument, 0, 0});
          if (r == tachyon::result::ok || r == tachyon::result::dropped) echo_accepted.fetch_add(1);
          if (r == tachyon::result::dropped) echo_dropped.fetch_add(1);
          if (r == tachyon::result::stopped) echo_stopped.fetch_add(1);
        }
      },
      {.retry = tt::retries(2, 0ns)});
  std::atomic<std::uint64_t> ok{0}, dropped{0}, stopped{0}, published{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < publishers; ++p) {
    threads.emplace_back([&, p] {
      for (std::uint32_t i = 0; i < per; ++i) {
        // Now and then room for the workers (two cores may run all five threads), so that
        // events run, retries re-enter the lane and handlers publish into it meanwhile.
        if (i % 16 == 0) std::this_thread::yield();
        const auto r = bus.publish(Quote{p * per + i, 1, 1});
        if (r == tachyon::result::ok)
          ok.fetch_add(1);
        else if (r == tachyon::result::dropped)
          dropped.fetch_add(1);
        else if (r == tachyon::result::stopped && param.stop_while_publishing)
          stopped.fetch_add(1);
        else
          ADD_FAILURE() << "publish returned " << tachyon::to_string(r);
        published.fetch_add(1);
      }
    });
  }
  std::uint64_t discarded = 0;
  if (param.stop_while_publishing) {
    // Mid-stream: displacements hold events out of the lane while the stop drains or discards.
    ASSERT_TRUE(tt::eventually([&] { return published.load() >= total / 2; }));
    discarded = bus.stop(param.stop);
  }
  for (auto& t : threads) t.join();
  if (!param.stop_while_publishing) discarded = bus.stop(param.stop);
  const auto m = bus.metrics();
  tt::expect_books_balance(m);
  std::uint64_t ran = 0;
  for (auto& r : runs) {
    EXPECT_LE(r.load(), 1u);
    ran += r.load();
  }
  EXPECT_EQ(out_of_order.load(), 0);
  EXPECT_EQ(ok.load() + dropped.load() + stopped.load(), total);
  EXPECT_EQ(m.total.rejected_stopped, stopped.load() + echo_stopped.load());
  // Accepted: the publishers' events and the echoes handlers published (ok or dropped; those
  // published once the stop began were refused). Every one of them that was not displaced,
  // dropped or discarded ran once.
  EXPECT_EQ(m.total.accepted, ok.load() + dropped.load() + echo_accepted.load());
  EXPECT_EQ(m.total.dropped, dropped.load() + echo_dropped.load());
  if (param.stop == tachyon::stop_mode::drain) {
    EXPECT_EQ(m.total.retried, retried_runs.load());
    EXPECT_EQ(m.total.discarded, 0u);
  }
  // Under drain every retried event succeeds on its second run. Under discard, a handler that
  // throws in a batch that was already running when the discard began gets no retry, and its
  // event counts failed.
  if (param.stop == tachyon::stop_mode::drain) {
    EXPECT_EQ(m.total.failed, 0u);
  }
  // stop(discard) returns the events it found that never ran; those with a retry pending are
  // discarded too, and counted, but not in its return.
  EXPECT_LE(discarded, m.total.discarded);
  EXPECT_EQ(ran + echoes.load() + m.total.displaced + m.total.dropped + m.total.discarded +
                m.total.failed,
            m.total.accepted);
  EXPECT_EQ(m.total.dispatched, ran + echoes.load());
  EXPECT_GT(m.total.displaced, 0u);
}

INSTANTIATE_TEST_SUITE_P(Lanes, DropOldestStress,
                         ::testing::Values(stress_case{16, 2, tachyon::stop_mode::drain, false},
                                           stress_case{1, 2, tachyon::stop_mode::drain, false},
                                           stress_case{16, 1, tachyon::stop_mode::drain, false},
                                           stress_case{16, 2, tachyon::stop_mode::discard, false},
                                           stress_case{4, 2, tachyon::stop_mode::drain, true},
                                           stress_case{4, 2, tachyon::stop_mode::discard, true}),
                         [](const auto& param_info) {
                           const auto& p = param_info.param;
                           return "capacity" + std::to_string(p.capacity) + "_workers" +
                                  std::to_string(p.workers) +
                                  (p.stop == tachyon::stop_mode::drain ? "_drain" : "_discard") +
                                  (p.stop_while_publishing ? "_midstream" : "");
                         });

TEST(DropOldestConfig, AnUnknownOverflowNamesDropOldestAmongTheAllowed) {
  tachyon::config cfg = tt::manual();
  cfg.overflow = static_cast<tachyon::overflow>(4);
  try {
    tachyon::bus<Events> bus{cfg};
    FAIL() << "accepted overflow = 4";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("config.overflow = 4"));
    EXPECT_THAT(e.what(), HasSubstr("drop_oldest (3)"));
  }
  cfg.overflow = tachyon::overflow::drop_oldest;  // and manual mode needs no timeout for it
  EXPECT_NO_THROW(tachyon::bus<Events>{cfg});
}

}  // namespace
