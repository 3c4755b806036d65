// Several producers, several workers, subscription churn: every accepted event is delivered
// exactly once, checked by count and checksum, and the books balance.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "common.hpp"

using tachyon::overflow;
using tachyon::result;

namespace {

struct stress_case {
  std::uint32_t producers;
  std::uint32_t workers;
  overflow policy;
  std::uint32_t capacity;
};

void run(const stress_case& c) {
  const std::uint64_t per_producer = tt::sanitized() ? 4000 : 40000;
  tachyon::bus<tt::Events> bus{{.workers = c.workers,
                                .lane_capacity = c.capacity,
                                .batch = 32,
                                .wait = tachyon::wait_strategy::spin_then_park,
                                .overflow = c.policy,
                                .producers = c.producers}};
  std::atomic<std::uint64_t> count{0}, sum{0}, churned{0};
  auto main_sub = bus.subscribe<tt::Order>([&](const tt::Order& o) {
    count.fetch_add(1, std::memory_order_relaxed);
    sum.fetch_add(o.id, std::memory_order_relaxed);
  });

  std::atomic<bool> done{false};
  std::thread churn([&] {  // subscribe/unsubscribe on another thread all along
    while (!done.load()) {
      auto s = bus.subscribe<tt::Order>(
          [&](const tt::Order&) { churned.fetch_add(1, std::memory_order_relaxed); });
      std::this_thread::yield();
    }
  });

  std::vector<std::thread> producers;
  std::vector<std::uint64_t> queued_sum(c.producers, 0), queued(c.producers, 0);
  for (std::uint32_t p = 0; p < c.producers; ++p) {
    producers.emplace_back([&, p] {
      for (std::uint64_t i = 0; i < per_producer; ++i) {
        const std::uint64_t id = p * per_producer + i + 1;
        const tachyon::priority lane = static_cast<tachyon::priority>(i % 4);
        result r;
        while ((r = bus.publish(tt::Order{id, 1}, lane)) == result::full) std::this_thread::yield();
        if (r == result::ok) {
          ++queued[p];
          queued_sum[p] += id;
        } else {
          ASSERT_EQ(r, result::dropped);
        }
      }
    });
  }
  for (auto& t : producers) t.join();
  bus.stop();
  done = true;
  churn.join();

  std::uint64_t expect_count = 0, expect_sum = 0;
  for (std::uint32_t p = 0; p < c.producers; ++p) {
    expect_count += queued[p];
    expect_sum += queued_sum[p];
  }
  EXPECT_EQ(count.load(), expect_count);
  EXPECT_EQ(sum.load(), expect_sum);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, c.producers * per_producer);
  EXPECT_EQ(m.total.dispatched, expect_count);
  EXPECT_EQ(m.total.accepted, m.total.dispatched + m.total.dropped);
  EXPECT_EQ(m.in_flight, 0u);
  EXPECT_EQ(m.total.failed + m.total.discarded, 0u);
  if (c.policy != overflow::drop) {
    EXPECT_EQ(m.total.dropped, 0u);
  }
}

}  // namespace

TEST(Stress, FourProducersTwoWorkersBlockPolicyDeliverEveryEventOnce) {
  run({.producers = 4, .workers = 2, .policy = overflow::block, .capacity = 256});
}

TEST(Stress, FourProducersTwoWorkersFailPolicyWithRetriesDeliverEveryEventOnce) {
  run({.producers = 4, .workers = 2, .policy = overflow::fail, .capacity = 64});
}

TEST(Stress, DropPolicyAccountsForEveryEvent) {
  run({.producers = 3, .workers = 1, .policy = overflow::drop, .capacity = 32});
}

TEST(Stress, EightProducersThreeWorkersDeliverEveryEventOnce) {
  run({.producers = 8, .workers = 3, .policy = overflow::block, .capacity = 128});
}

TEST(Stress, ProducersBeyondTheReservationGrowTheLaneAndCountIt) {
  tachyon::bus<tt::Events> bus{
      {.workers = 0, .lane_capacity = 512, .overflow = overflow::fail, .producers = 1}};
  std::atomic<std::uint64_t> count{0};
  auto s = bus.subscribe<tt::Quote>([&](const tt::Quote&) { count.fetch_add(1); });
  // Three threads alive at once each fill the lane to its bound in turn. moodycamel's explicit
  // producers keep the blocks they used, so the third needs blocks beyond the reservation
  // made for `producers + workers` = 1 thread.
  std::atomic<int> turn{0};
  std::atomic<bool> finish{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      while (turn.load() != 2 * t) std::this_thread::yield();
      for (int i = 0; i < 512; ++i) ASSERT_EQ(bus.publish(tt::Quote{}), result::ok);
      turn.fetch_add(1);
      while (!finish.load()) std::this_thread::yield();
    });
  }
  for (int t = 0; t < 3; ++t) {
    ASSERT_TRUE(tt::eventually([&] { return turn.load() == 2 * t + 1; }));
    EXPECT_EQ(bus.poll(), 512u);
    turn.fetch_add(1);
  }
  finish = true;
  for (auto& th : threads) th.join();
  EXPECT_EQ(count.load(), 3u * 512u);
  EXPECT_GT(bus.metrics().lane_allocations, 0u);
}

TEST(Stress, PublishBatchFromFourProducersIntoABoundedLaneDeliversEveryEventOnce) {
  const std::uint64_t per_producer = tt::sanitized() ? 4000 : 40000;
  tachyon::bus<tt::Events> bus{{.workers = 2,
                                .lane_capacity = 100,  // smaller than one chunk of 64 x 4
                                .batch = 16,
                                .overflow = overflow::block,
                                .producers = 4}};
  std::atomic<std::uint64_t> count{0}, sum{0};
  auto s = bus.subscribe<tt::Order>([&](const tt::Order& o) {
    count.fetch_add(1, std::memory_order_relaxed);
    sum.fetch_add(o.id, std::memory_order_relaxed);
  });
  std::vector<std::thread> producers;
  for (std::uint64_t p = 0; p < 4; ++p) {
    producers.emplace_back([&, p] {
      std::vector<tt::Order> chunk;
      for (std::uint64_t i = 0; i < per_producer; i += 37) {  // odd chunk sizes
        chunk.clear();
        for (std::uint64_t k = i; k < std::min(per_producer, i + 37); ++k)
          chunk.push_back({p * per_producer + k + 1, 1});
        const auto r = bus.publish_batch(std::span<const tt::Order>(chunk));
        ASSERT_EQ(r.status, result::ok);
        ASSERT_EQ(r.queued, chunk.size());
      }
    });
  }
  for (auto& t : producers) t.join();
  bus.stop();
  const std::uint64_t n = 4 * per_producer;
  EXPECT_EQ(count.load(), n);
  EXPECT_EQ(sum.load(), n * (n + 1) / 2);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.accepted, n);
  EXPECT_EQ(m.total.dispatched, n);
  EXPECT_EQ(m.in_flight, 0u);
}

TEST(Stress, BoxedEventsUnderConcurrencyAreFreedWhetherRunOrDiscarded) {
  ASSERT_EQ(tt::Note::live.load(), 0);
  const int per_producer = tt::sanitized() ? 2000 : 20000;
  std::atomic<std::uint64_t> ran{0};
  std::uint64_t discarded = 0;
  {
    tachyon::bus<tt::Events> bus{{.workers = 2, .lane_capacity = 64, .overflow = overflow::block}};
    auto s = bus.subscribe<tt::Note>([&](const tt::Note& note) {
      if (note.text.size() > 20) ran.fetch_add(1, std::memory_order_relaxed);
    });
    std::vector<std::thread> producers;
    for (int p = 0; p < 3; ++p) {
      producers.emplace_back([&] {
        for (int i = 0; i < per_producer; ++i) {
          const auto r = bus.publish(tt::Note{"a note long enough to live on the heap"});
          if (r == result::stopped) return;  // the discard below began
          ASSERT_EQ(r, result::ok);
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // let some run, then discard
    discarded = bus.stop(tachyon::stop_mode::discard);
    for (auto& t : producers) t.join();
    const auto m = bus.metrics();
    EXPECT_EQ(m.total.accepted, m.total.dispatched + m.total.discarded);
    EXPECT_EQ(m.total.discarded, discarded);
    EXPECT_EQ(m.total.dispatched, ran.load());
    EXPECT_EQ(m.in_flight, 0u);
  }
  EXPECT_EQ(tt::Note::live.load(), 0);  // every boxed copy destroyed, run or discarded
}

namespace {

/// One handle, shared by the thread that subscribed it and the handlers that may remove it:
/// whoever claims it first (armed -> taken) is the only thread that touches the handle.
struct handle_slot {
  std::atomic<int> state{0};  // 0: being set up by its owner, 1: armed, 2: taken
  tachyon::subscription handle;
  void arm() { state.store(1, std::memory_order_release); }
  bool claim() {
    int armed = 1;
    return state.compare_exchange_strong(armed, 2, std::memory_order_acq_rel);
  }
};

}  // namespace

// Four threads subscribe and unsubscribe (some handlers remove themselves, some remove another
// from inside, some run in the churning threads' own dispatch(), some are detached or outlive
// the bus) while two workers run and a producer publishes; a handler stops the bus from inside
// half way. Every handler's captured state must be destroyed exactly once, and nothing may hang.
TEST(Stress, SubscriptionChurnBesideWorkersFreesEveryHandlerExactlyOnce) {
  constexpr int churners = 4;
  const int rounds = tt::sanitized() ? 150 : 1000;
  const int n = churners * rounds;
  std::vector<std::atomic<int>> made(static_cast<std::size_t>(n));
  std::vector<std::atomic<int>> freed(static_cast<std::size_t>(n));
  std::atomic<int> ran{0}, stops{0}, rounds_done{0}, churning{churners};
  std::mutex outliving_m;
  std::vector<tachyon::subscription> outliving;  // inert once the bus is gone
  {
    tachyon::bus<tt::Events> bus{{.workers = 2,
                                  .lane_capacity = 256,
                                  .batch = 8,
                                  .overflow = overflow::fail,
                                  .producers = churners + 2}};
    auto halt = bus.subscribe<tt::Halt>([&](const tt::Halt&) {
      stops.fetch_add(1);
      (void)bus.stop();  // from inside: only begins the stop
    });
    std::thread producer([&] {
      bool halted = false;
      auto halt_once = [&] {
        while (!halted) {
          const result r = bus.publish(tt::Halt{});
          halted = r == result::ok || r == result::stopped;
          if (!halted) std::this_thread::yield();
        }
      };
      while (churning.load() > 0) {
        (void)bus.publish(tt::Quote{});
        (void)bus.publish(tt::Order{});
        if (rounds_done.load() >= n / 2) halt_once();
        std::this_thread::yield();
      }
      halt_once();
    });
    std::vector<std::thread> threads;
    for (int t = 0; t < churners; ++t) {
      threads.emplace_back([&, t] {
        std::vector<std::shared_ptr<handle_slot>> window;
        std::shared_ptr<handle_slot> prev;
        for (int r = 0; r < rounds; ++r) {
          const auto id = static_cast<std::size_t>(t * rounds + r);
          made[id].fetch_add(1);
          tt::destroy_probe p(&freed[id]);
          auto sl = std::make_shared<handle_slot>();
          switch (r % 4) {
            case 0:
            case 3:
              sl->handle = bus.subscribe<tt::Quote>(
                  [&ran, p = std::move(p)](const tt::Quote&) { ran.fetch_add(1); });
              break;
            case 1:  // removes itself, on whichever thread runs it first
              sl->handle =
                  bus.subscribe<tt::Quote>([&ran, self = sl, p = std::move(p)](const tt::Quote&) {
                    ran.fetch_add(1);
                    if (self->claim()) self->handle.unsubscribe();
                  });
              break;
            case 2:  // removes the previous round's handler, from inside
              sl->handle = bus.subscribe<tt::Order>(
                  [&ran, victim = prev, p = std::move(p)](const tt::Order&) {
                    ran.fetch_add(1);
                    if (victim && victim->claim()) victim->handle.unsubscribe();
                  });
              break;
          }
          sl->arm();
          if (r % 8 == 3) bus.dispatch(tt::Quote{});
          if (r % 8 == 6) bus.dispatch(tt::Order{});
          prev = sl;
          window.push_back(std::move(sl));
          if (window.size() > 4) {
            const auto old = std::move(window.front());
            window.erase(window.begin());
            if (old->claim()) {
              if (r % 16 == 5) {
                std::lock_guard g(outliving_m);
                outliving.push_back(std::move(old->handle));
              } else if (r % 16 == 9) {
                old->handle.detach();  // stays until the bus goes
              } else {
                old->handle.unsubscribe();  // from outside: waits for a grace period
              }
            }
          }
          rounds_done.fetch_add(1);
        }
        for (auto& sl : window)
          if (sl->claim()) sl->handle.unsubscribe();
        churning.fetch_sub(1);
      });
    }
    for (auto& th : threads) th.join();
    producer.join();
    (void)bus.stop();  // from outside: finishes the stop the handler began (joins)
    EXPECT_EQ(stops.load(), 1);
  }  // the bus frees what is left: detached handlers and those whose handles outlive it
  outliving.clear();
  int wrong = 0;
  for (int i = 0; i < n; ++i) {
    const auto id = static_cast<std::size_t>(i);
    if (made[id].load() != 1 || freed[id].load() != 1) {
      if (++wrong <= 5)
        ADD_FAILURE() << "handler " << i << ": made " << made[id].load() << ", freed "
                      << freed[id].load();
    }
  }
  EXPECT_EQ(wrong, 0);
  EXPECT_GT(ran.load(), 0);
}
