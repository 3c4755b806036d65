// Subscriptions to several types: subscribe_all, subscribe<A, B, ...> and subscribe_tagged.
// One visitor, one state, an entry in each of its types' tables: ordered among the other
// handlers, retried and dead-lettered per delivery with the right type, removed from every
// table at once, and freed once.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "books.hpp"
#include "common.hpp"

namespace {

using tachyon::meta;

struct user {};
struct audit {};
struct error {};

struct UserCreated {
  int id;
};
struct UserDeleted {
  int id;
};
struct PaymentFailed {
  int order;
};
struct Tick {
  int n;
};
struct Text {
  std::string s;
};

using Events = tachyon::registry<
    tachyon::event<UserCreated, tachyon::priority::normal, tachyon::tags<user, audit>>,
    tachyon::event<UserDeleted, tachyon::priority::high, tachyon::tags<user, audit>>,
    tachyon::event<PaymentFailed, tachyon::priority::normal, tachyon::tags<error, audit>>, Tick,
    Text>;
using multi_bus = tachyon::bus<Events>;

/// Counts what a visitor saw, by type name.
struct tally {
  std::mutex mu;
  std::map<std::string, int> by_type;
  int total() {
    std::lock_guard lock(mu);
    int n = 0;
    for (auto& [k, v] : by_type) n += v;
    return n;
  }
  template <class T>
  void add() {
    std::lock_guard lock(mu);
    ++by_type[std::string(multi_bus::type_name<T>())];
  }
};

void publish_one_of_each(multi_bus& bus) {
  ASSERT_EQ(bus.publish(UserCreated{1}), tachyon::result::ok);
  ASSERT_EQ(bus.publish(UserDeleted{2}), tachyon::result::ok);
  ASSERT_EQ(bus.publish(PaymentFailed{3}), tachyon::result::ok);
  ASSERT_EQ(bus.publish(Tick{4}), tachyon::result::ok);
  ASSERT_EQ(bus.publish(Text{"five"}), tachyon::result::ok);
}

TEST(SubscribeAll, TheVisitorSeesEveryTypeWithItsMeta) {
  multi_bus bus{tt::manual()};
  tally t;
  std::vector<std::uint16_t> type_indexes;
  auto s = bus.subscribe_all([&]<class T>(const T&, const meta& m) {
    t.add<T>();
    type_indexes.push_back(m.type_index);
  });
  publish_one_of_each(bus);
  bus.poll();
  EXPECT_EQ(t.total(), 5);
  EXPECT_EQ(t.by_type.size(), 5u);
  // The high lane first, then the normal lane in publish order.
  EXPECT_EQ(type_indexes, (std::vector<std::uint16_t>{1, 0, 2, 3, 4}));
  const auto m = bus.metrics();
  ASSERT_EQ(m.subscriptions.size(), 1u);
  EXPECT_EQ(m.subscriptions[0].type, "*");
  EXPECT_EQ(m.subscriptions[0].name.rfind("*#", 0), 0u) << m.subscriptions[0].name;
}

TEST(SubscribeAll, AVisitorWithoutMetaAndOverloadsWorks) {
  multi_bus bus{tt::manual()};
  struct overloaded {
    int* users;
    int* others;
    void operator()(const UserCreated&) const { ++*users; }
    void operator()(const UserDeleted&) const { ++*users; }
    void operator()(const PaymentFailed&, const meta&) const { ++*others; }
    void operator()(const Tick&) const { ++*others; }
    void operator()(const Text&) const { ++*others; }
  };
  int users = 0, others = 0;
  auto s = bus.subscribe_all(overloaded{&users, &others});
  publish_one_of_each(bus);
  bus.poll();
  EXPECT_EQ(users, 2);
  EXPECT_EQ(others, 3);
}

TEST(SubscribeMany, OnlyTheListedTypesReachIt) {
  multi_bus bus{tt::manual()};
  tally t;
  auto s = bus.subscribe<Tick, Text>([&]<class T>(const T&) { t.add<T>(); }, {.name = "taps"});
  publish_one_of_each(bus);
  bus.poll();
  EXPECT_EQ(t.total(), 2);
  EXPECT_EQ(t.by_type.count(std::string(multi_bus::type_name<Tick>())), 1u);
  const auto m = bus.metrics();
  ASSERT_EQ(m.subscriptions.size(), 1u);
  EXPECT_EQ(m.subscriptions[0].name, "taps");
  EXPECT_EQ(m.subscriptions[0].type, std::string(multi_bus::type_name<Tick>()) + "|" +
                                         std::string(multi_bus::type_name<Text>()));
}

TEST(SubscribeTagged, TagsSelectTheirTypesAtCompileTime) {
  multi_bus bus{tt::manual()};
  tally users, errors, audited, either;
  auto s1 = bus.subscribe_tagged<user>([&]<class T>(const T&) { users.add<T>(); });
  auto s2 = bus.subscribe_tagged<error>([&]<class T>(const T&) { errors.add<T>(); });
  auto s3 = bus.subscribe_tagged<audit>([&]<class T>(const T&, const meta&) { audited.add<T>(); });
  auto s4 = bus.subscribe_tagged<user, error>([&]<class T>(const T&) { either.add<T>(); });
  publish_one_of_each(bus);
  bus.poll();
  EXPECT_EQ(users.total(), 2);
  EXPECT_EQ(errors.total(), 1);
  EXPECT_EQ(audited.total(), 3);
  EXPECT_EQ(either.total(), 3);
  static_assert(Events::has_tag<UserCreated, user> && !Events::has_tag<Tick, user>);
}

TEST(SubscribeMany, OrderAppliesInEachTypesList) {
  multi_bus bus{tt::manual()};
  std::vector<std::string> calls;
  auto late = bus.subscribe<Tick>([&](const Tick&) { calls.push_back("tick:late"); }, {.order = 5});
  auto all = bus.subscribe_all([&]<class T>(const T&) { calls.push_back("all"); }, {.order = 1});
  auto early = bus.subscribe<Tick>([&](const Tick&) { calls.push_back("tick:early"); });
  ASSERT_EQ(bus.publish(Tick{1}), tachyon::result::ok);
  bus.poll();
  EXPECT_EQ(calls, (std::vector<std::string>{"tick:early", "all", "tick:late"}));
}

TEST(SubscribeMany, UnsubscribeRemovesItFromEveryTableAtOnce) {
  multi_bus bus{tt::manual()};
  tally t;
  auto s = bus.subscribe_all([&]<class T>(const T&) { t.add<T>(); });
  publish_one_of_each(bus);
  bus.poll();
  EXPECT_EQ(t.total(), 5);
  EXPECT_TRUE(s.active());
  s.unsubscribe();
  EXPECT_FALSE(s.active());
  publish_one_of_each(bus);
  bus.poll();
  EXPECT_EQ(t.total(), 5);
  EXPECT_TRUE(bus.metrics().subscriptions.empty());
  tt::expect_books_balance(bus.metrics());
}

TEST(SubscribeMany, AVisitorMayRemoveItselfWhileRunning) {
  multi_bus bus{tt::manual()};
  std::atomic<int> destroyed{0};
  int seen = 0;
  tachyon::subscription s;
  s = bus.subscribe_all([&, probe = tt::destroy_probe(&destroyed)]<class T>(const T&) {
    ++seen;
    s.unsubscribe();  // the rest of the batch does not reach it
  });
  publish_one_of_each(bus);
  bus.poll();
  EXPECT_EQ(seen, 1);
  bus.poll();  // a grace period passes: the visitor is freed once
  ASSERT_TRUE(tt::eventually([&] {
    bus.dispatch(Tick{0});
    return destroyed.load() == 1;
  }));
  EXPECT_EQ(destroyed.load(), 1);
}

TEST(SubscribeMany, TheBusFreesALiveMultiSubscriptionOnce) {
  std::atomic<int> destroyed{0};
  tachyon::subscription outlives;
  {
    multi_bus bus{tt::manual()};
    outlives = bus.subscribe_all([probe = tt::destroy_probe(&destroyed)]<class T>(const T&) {});
    auto other = bus.subscribe<Tick, Text>([probe = tt::destroy_probe(&destroyed)](const auto&) {});
    other.detach();
  }
  EXPECT_EQ(destroyed.load(), 2);
  EXPECT_FALSE(outlives.active());
  outlives.unsubscribe();  // inert
}

TEST(SubscribeMany, ARetryRunsOnlyThisSubscriptionForTheFailedType) {
  using vbus = tachyon::bus<Events, tachyon::virtual_time_traits>;
  vbus bus{tt::manual_dl()};
  std::map<std::string, int> runs;
  int fail_ticks = 1;
  auto s = bus.subscribe<Tick, Text>(
      [&]<class T>(const T&, const meta& m) {
        ++runs[std::string(vbus::type_name<T>()) + "@" + std::to_string(m.attempt)];
        if constexpr (std::is_same_v<T, Tick>)
          if (fail_ticks-- > 0) throw std::runtime_error("tick failed");
      },
      {.retry = tt::retries(3)});
  int other_ticks = 0;
  auto plain = bus.subscribe<Tick>([&](const Tick&) { ++other_ticks; });
  ASSERT_EQ(bus.publish(Tick{1}), tachyon::result::ok);
  ASSERT_EQ(bus.publish(Text{"x"}), tachyon::result::ok);
  bus.poll();
  bus.time_source().advance(std::chrono::seconds(1));
  bus.poll();
  const std::string tick(vbus::type_name<Tick>()), text(vbus::type_name<Text>());
  EXPECT_EQ(runs[tick + "@0"], 1);
  EXPECT_EQ(runs[tick + "@1"], 1);
  EXPECT_EQ(runs[text + "@0"], 1);
  EXPECT_EQ(runs.size(), 3u);
  EXPECT_EQ(other_ticks, 1);  // the retry ran only the visitor
  tt::expect_books_balance(bus.metrics());
}

TEST(SubscribeMany, ADeadLetterOfAVisitorReplaysWithItsType) {
  multi_bus bus{tt::manual_dl()};
  bool fail = true;
  std::vector<std::string> seen;
  auto s = bus.subscribe_all(
      [&]<class T>(const T& ev) {
        if constexpr (std::is_same_v<T, Text>) {
          if (fail) throw std::runtime_error("no");
          seen.push_back(ev.s);
        }
      },
      {.name = "sink"});
  ASSERT_EQ(bus.publish(Text{"kept"}), tachyon::result::ok);
  bus.poll();
  ASSERT_EQ(bus.dead_letter_count(), 1u);
  std::string who;
  bus.visit_dead_letters([&](const auto& dl) { who = std::string(dl.subscription); });
  EXPECT_EQ(who, "sink");
  fail = false;
  const auto r = bus.replay_dead_letters();
  EXPECT_EQ(r.succeeded, 1u);
  EXPECT_EQ(seen, (std::vector<std::string>{"kept"}));
}

TEST(SubscribeMany, OneBreakerForAllItsTypes) {
  multi_bus bus{tt::manual()};
  int calls = 0;
  auto s = bus.subscribe<Tick, Text>(
      [&](const auto&) {
        ++calls;
        throw std::runtime_error("down");
      },
      {.breaker = {.failure_threshold = 2,
                   .open_for = std::chrono::hours(1),
                   .action = tachyon::when_open::skip}});
  ASSERT_EQ(bus.publish(Tick{1}), tachyon::result::ok);
  ASSERT_EQ(bus.publish(Text{"a"}), tachyon::result::ok);  // the second failure opens it
  ASSERT_EQ(bus.publish(Tick{2}), tachyon::result::ok);
  ASSERT_EQ(bus.publish(Text{"b"}), tachyon::result::ok);
  bus.poll();
  EXPECT_EQ(calls, 2);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.short_circuited, 2u);
  ASSERT_EQ(m.subscriptions.size(), 1u);
  EXPECT_EQ(m.subscriptions[0].breaker, tachyon::breaker_state::open);
}

TEST(SubscribeMany, BadPoliciesAreRefusedByName) {
  multi_bus bus{tt::manual()};
  EXPECT_THROW((void)bus.subscribe_all([](const auto&) {}, {.retry = {.max_attempts = 0}}),
               std::invalid_argument);
  EXPECT_TRUE(bus.metrics().subscriptions.empty());
}

TEST(SubscribeMany, SubscribingAndRemovingWhileWorkersRunKeepsExactCounts) {
  constexpr int per_type = tt::sanitized() ? 1000 : 10000;
  multi_bus bus{{.workers = 2, .lane_capacity = 1024}};
  std::atomic<int> steady{0};
  auto always = bus.subscribe_all([&](const auto&) { steady.fetch_add(1); });
  std::atomic<bool> done{false};
  std::atomic<int> churned{0};
  std::thread churn([&] {
    while (!done.load()) {
      auto s = bus.subscribe<Tick, UserCreated>([&](const auto&) { churned.fetch_add(1); });
      auto t = bus.subscribe_tagged<audit>([](const auto&) {});
      std::this_thread::yield();
    }
  });
  std::thread publisher([&] {
    for (int i = 0; i < per_type; ++i) {
      ASSERT_EQ(bus.publish(Tick{i}), tachyon::result::ok);
      ASSERT_EQ(bus.publish(UserCreated{i}), tachyon::result::ok);
      ASSERT_EQ(bus.publish(PaymentFailed{i}), tachyon::result::ok);
    }
  });
  publisher.join();
  done.store(true);
  churn.join();
  bus.stop();
  EXPECT_EQ(steady.load(), 3 * per_type);
  EXPECT_LE(churned.load(), 2 * per_type);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.dispatched, static_cast<std::uint64_t>(3 * per_type));
  EXPECT_EQ(m.subscriptions.size(), 1u);
  tt::expect_books_balance(m);
}

}  // namespace
