// Interceptors (intercept.hpp): before_publish screens and changes events on the publishing
// thread, before_dispatch and after_dispatch wrap every run of an event's handlers, in order
// and in reverse; a veto is counted and leaves the event to the caller.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "books.hpp"
#include "common.hpp"

namespace {

using tachyon::meta;
using tachyon::publish_options;
using tachyon::verdict;

struct Order {
  std::uint64_t id;
  double qty;
};
struct Note {
  std::string text;
};
struct Tick {
  int n;
};
using Events = tachyon::registry<Order, Note, Tick>;

/// The order of every hook call, shared by the interceptors of one test.
struct journal {
  std::mutex mu;
  std::vector<std::string> calls;
  void add(std::string s) {
    std::lock_guard lock(mu);
    calls.push_back(std::move(s));
  }
};
journal* log_ = nullptr;

/// Rejects orders without quantity and notes that say "spam"; counts what it saw.
struct Validate {
  std::atomic<int> screened{0};
  verdict before_publish(Order& o, publish_options&) {
    screened.fetch_add(1);
    if (log_) log_->add("validate");
    return o.qty > 0 ? verdict::allow : verdict::reject;
  }
  bool before_publish(Note& n, publish_options&) {
    screened.fetch_add(1);
    return n.text != "spam";
  }
};

/// Sets a correlation id from the order id and sends big orders to the high lane.
struct Enrich {
  verdict before_publish(Order& o, publish_options& opts) {
    if (log_) log_->add("enrich");
    if (opts.correlation_id == 0) opts.correlation_id = 1000 + o.id;
    if (o.qty >= 100) opts.lane = tachyon::priority::high;
    o.qty *= 2;  // changes the event itself
    return verdict::allow;
  }
};

/// Wraps every type's runs.
struct Trace {
  std::atomic<int> before{0}, after{0}, errors{0};
  template <class T>
  void before_dispatch(const T&, const meta& m) {
    before.fetch_add(1);
    if (log_) log_->add("trace.before:" + std::to_string(m.attempt));
  }
  template <class T>
  void after_dispatch(const T&, const meta&, std::exception_ptr e) {
    after.fetch_add(1);
    if (e) errors.fetch_add(1);
    if (log_) {
      std::string what = "none";
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& x) {
          what = x.what();
        }
      }
      log_->add("trace.after:" + what);
    }
  }
};

/// Only Tick events: before and after.
struct Audit {
  void before_dispatch(const Tick& t, const meta&) {
    if (log_) log_->add("audit.before:" + std::to_string(t.n));
  }
  void after_dispatch(const Tick&, const meta&, std::exception_ptr) {
    if (log_) log_->add("audit.after");
  }
};

struct traits {
  using interceptors = tachyon::interceptors<Validate, Enrich, Trace, Audit>;
};
using hooked_bus = tachyon::bus<Events, traits>;

struct Interceptors : ::testing::Test {
  journal j;
  void SetUp() override { log_ = &j; }
  void TearDown() override { log_ = nullptr; }
};

TEST_F(Interceptors, AVetoRefusesTheEventCountsItAndLeavesItToTheCaller) {
  hooked_bus bus{tt::manual()};
  int ran = 0;
  auto s = bus.subscribe<Note>([&](const Note&) { ++ran; });
  Note spam{"spam"};
  EXPECT_EQ(bus.publish(std::move(spam)), tachyon::result::vetoed);
  EXPECT_EQ(spam.text, "spam");  // not moved from
  EXPECT_EQ(bus.publish(Note{"hello"}), tachyon::result::ok);
  bus.poll();
  EXPECT_EQ(ran, 1);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.vetoed, 1u);
  EXPECT_EQ(m.total.accepted, 1u);
  EXPECT_EQ(m.lanes[2].counts.vetoed, 1u);
  EXPECT_EQ(m.types[1].counts.vetoed, 1u);
  tt::expect_books_balance(m);
  EXPECT_EQ(tachyon::to_string(tachyon::result::vetoed), "vetoed");
}

TEST_F(Interceptors, TheFirstRejectStopsTheRestInListOrder) {
  hooked_bus bus{tt::manual()};
  EXPECT_EQ(bus.publish(Order{1, 0}), tachyon::result::vetoed);
  EXPECT_EQ(j.calls, (std::vector<std::string>{"validate"}));  // Enrich never saw it
  j.calls.clear();
  EXPECT_EQ(bus.publish(Order{2, 1}), tachyon::result::ok);
  EXPECT_EQ(j.calls, (std::vector<std::string>{"validate", "enrich"}));
  EXPECT_EQ(bus.interceptor<Validate>().screened.load(), 2);
}

TEST_F(Interceptors, BeforePublishChangesTheEventAndItsOptionsNeverTheCallersLvalue) {
  hooked_bus bus{tt::manual()};
  std::vector<std::pair<Order, meta>> seen;
  auto s = bus.subscribe<Order>([&](const Order& o, const meta& m) { seen.emplace_back(o, m); });
  const Order small{7, 3};
  ASSERT_EQ(bus.publish(small), tachyon::result::ok);
  EXPECT_EQ(small.qty, 3);  // a const lvalue: the interceptors changed a copy
  Order big{8, 200};
  ASSERT_EQ(bus.publish(big, publish_options{.correlation_id = 5}), tachyon::result::ok);
  EXPECT_EQ(big.qty, 200);  // a mutable lvalue too
  bus.poll();
  ASSERT_EQ(seen.size(), 2u);
  // The high lane first: Enrich moved the big order there.
  EXPECT_EQ(seen[0].first.id, 8u);
  EXPECT_EQ(seen[0].first.qty, 400);
  EXPECT_EQ(seen[0].second.lane, tachyon::priority::high);
  EXPECT_EQ(seen[0].second.correlation_id, 5u);  // the caller's id stays
  EXPECT_EQ(seen[1].first.qty, 6);
  EXPECT_EQ(seen[1].second.correlation_id, 1007u);
  EXPECT_EQ(seen[1].second.lane, tachyon::priority::normal);
}

TEST_F(Interceptors, DispatchHooksWrapEachRunInOrderAndInReverse) {
  hooked_bus bus{tt::manual()};
  auto s = bus.subscribe<Tick>([&](const Tick& t) { j.add("handler:" + std::to_string(t.n)); });
  ASSERT_EQ(bus.publish(Tick{1}), tachyon::result::ok);
  bus.poll();
  EXPECT_EQ(j.calls, (std::vector<std::string>{"trace.before:0", "audit.before:1", "handler:1",
                                               "audit.after", "trace.after:none"}));
  // dispatch() runs through the same hooks (it has no before_publish).
  j.calls.clear();
  bus.dispatch(Tick{2});
  EXPECT_EQ(j.calls, (std::vector<std::string>{"trace.before:0", "audit.before:2", "handler:2",
                                               "audit.after", "trace.after:none"}));
  // A type the Audit interceptor has no hooks for: Trace only.
  j.calls.clear();
  auto s2 = bus.subscribe<Order>([&](const Order&) { j.add("order"); });
  ASSERT_EQ(bus.publish(Order{1, 1}), tachyon::result::ok);
  j.calls.clear();
  bus.poll();
  EXPECT_EQ(j.calls, (std::vector<std::string>{"trace.before:0", "order", "trace.after:none"}));
}

TEST_F(Interceptors, AfterDispatchSeesTheRunsErrorEveryRetryAndNotANestedRunsError) {
  hooked_bus bus{tt::manual()};
  int runs = 0;
  auto s = bus.subscribe<Tick>(
      [&](const Tick& t) {
        ++runs;
        if (t.n == 1) {
          // Throws after a nested dispatch whose own run succeeds: that run's after_dispatch
          // sees no error; this run's sees this one.
          bus.dispatch(Tick{2});
          throw std::runtime_error("boom");
        }
      },
      {.retry = tt::retries(2, std::chrono::nanoseconds(1))});
  ASSERT_EQ(bus.publish(Tick{1}), tachyon::result::ok);
  bus.poll();
  ASSERT_TRUE(tt::eventually([&] {
    bus.poll();
    return bus.metrics().in_flight == 0;
  }));
  EXPECT_EQ(runs, 4);  // two runs of Tick 1, each with its nested Tick 2
  const std::vector<std::string> one_run = {"trace.before:X", "audit.before:1",  "trace.before:0",
                                            "audit.before:2", "audit.after",     "trace.after:none",
                                            "audit.after",    "trace.after:boom"};
  ASSERT_EQ(j.calls.size(), 16u);
  for (std::size_t i = 0; i < 16; ++i) {
    std::string want = one_run[i % 8];
    if (want == "trace.before:X") want = i < 8 ? "trace.before:0" : "trace.before:1";
    EXPECT_EQ(j.calls[i], want) << i;
  }
  EXPECT_EQ(bus.interceptor<Trace>().errors.load(), 2);
}

TEST_F(Interceptors, AShortCircuitReadsAsCircuitOpen) {
  hooked_bus bus{tt::manual()};
  auto s = bus.subscribe<Tick>([&](const Tick&) { throw std::runtime_error("down"); },
                               {.name = "flaky",
                                .breaker = {.failure_threshold = 1,
                                            .open_for = std::chrono::hours(1),
                                            .action = tachyon::when_open::skip}});
  ASSERT_EQ(bus.publish(Tick{1}), tachyon::result::ok);
  ASSERT_EQ(bus.publish(Tick{2}), tachyon::result::ok);
  bus.poll();
  ASSERT_EQ(j.calls.size(), 8u);  // per run: trace, audit, audit, trace
  EXPECT_EQ(j.calls[3], "trace.after:down");
  EXPECT_NE(
      j.calls[7].find("trace.after:tachyon: the circuit breaker of subscription 'flaky' is open"),
      std::string::npos)
      << j.calls[7];
}

TEST_F(Interceptors, AThrowingDispatchHookIsReportedAndTheHandlersStillRun) {
  struct Throws {
    void before_dispatch(const Tick&, const meta&) { throw std::logic_error("hook"); }
  };
  struct throwing_traits {
    using interceptors = tachyon::interceptors<Throws>;
  };
  std::vector<std::string> reported;
  auto cfg = tt::manual();
  cfg.on_error = [&](const tachyon::handler_error& e) { reported.emplace_back(e.subscription); };
  tachyon::bus<Events, throwing_traits> bus{cfg};
  int ran = 0;
  auto s = bus.subscribe<Tick>([&](const Tick&) { ++ran; });
  ASSERT_EQ(bus.publish(Tick{1}), tachyon::result::ok);
  bus.poll();
  EXPECT_EQ(ran, 1);
  ASSERT_EQ(reported.size(), 1u);
  EXPECT_NE(reported[0].find("interceptor:"), std::string::npos) << reported[0];
  EXPECT_NE(reported[0].find("Throws"), std::string::npos) << reported[0];
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.handler_errors, 1u);
  EXPECT_EQ(m.total.dispatched, 1u);  // the event's handlers did not fail
  tt::expect_books_balance(m);
}

TEST_F(Interceptors, PublishBatchScreensEachEventAndGoesOnPastAVeto) {
  hooked_bus bus{tt::manual()};
  std::vector<double> qty;
  auto s = bus.subscribe<Order>([&](const Order& o) { qty.push_back(o.qty); });
  const Order orders[] = {{1, 1}, {2, 0}, {3, 2}, {4, 0}, {5, 3}};
  const auto r = bus.publish_batch(std::span<const Order>(orders));
  EXPECT_EQ(r.queued, 3u);
  EXPECT_EQ(r.vetoed, 2u);
  EXPECT_EQ(r.status, tachyon::result::ok);
  bus.poll();
  EXPECT_EQ(qty, (std::vector<double>{2, 4, 6}));  // enriched, in order
  EXPECT_EQ(orders[0].qty, 1);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.vetoed, 2u);
  tt::expect_books_balance(m);
}

TEST_F(Interceptors, HooksRunOnEveryThreadWithExactCounts) {
  log_ = nullptr;  // no journal: the hooks only count
  constexpr int per_thread = tt::sanitized() ? 2000 : 20000;
  hooked_bus bus{{.workers = 2, .lane_capacity = 1024}};
  std::atomic<int> handled{0};
  auto s = bus.subscribe<Order>([&](const Order&) { handled.fetch_add(1); });
  std::atomic<int> vetoed{0};
  std::vector<std::thread> publishers;
  for (int t = 0; t < 2; ++t)
    publishers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        const double q = (i % 10 == 0) ? 0 : 1;  // every tenth is vetoed
        const auto r = bus.publish(Order{static_cast<std::uint64_t>(t * per_thread + i), q});
        if (r == tachyon::result::vetoed) vetoed.fetch_add(1);
      }
    });
  for (auto& p : publishers) p.join();
  bus.stop();
  const int allowed = 2 * per_thread - 2 * per_thread / 10;
  EXPECT_EQ(vetoed.load(), 2 * per_thread / 10);
  EXPECT_EQ(handled.load(), allowed);
  EXPECT_EQ(bus.interceptor<Validate>().screened.load(), 2 * per_thread);
  EXPECT_EQ(bus.interceptor<Trace>().before.load(), allowed);
  EXPECT_EQ(bus.interceptor<Trace>().after.load(), allowed);
  const auto m = bus.metrics();
  EXPECT_EQ(m.total.vetoed, static_cast<std::uint64_t>(2 * per_thread / 10));
  tt::expect_books_balance(m);
}

TEST(InterceptorTraits, ABusWithoutInterceptorsOrATimeSourceMemberStillBuilds) {
  struct empty_traits {};
  tachyon::bus<Events, empty_traits> bus{tt::manual()};
  int ran = 0;
  auto s = bus.subscribe<Tick>([&](const Tick&) { ++ran; });
  ASSERT_EQ(bus.publish(Tick{1}), tachyon::result::ok);
  bus.poll();
  EXPECT_EQ(ran, 1);
  static_assert(std::is_same_v<decltype(bus)::time_source_type, tachyon::steady_time>);
}

TEST(InterceptorErrors, ANestedRunOfAnUnhookedTypeDoesNotLendItsErrorToTheOuterRun) {
  struct OnlyTicks {
    int errors = 0, runs = 0;
    void after_dispatch(const Tick&, const meta&, std::exception_ptr e) {
      ++runs;
      if (e) ++errors;
    }
  };
  struct only_ticks {
    using interceptors = tachyon::interceptors<OnlyTicks>;
  };
  tachyon::bus<Events, only_ticks> bus{tt::manual()};
  auto ticks = bus.subscribe<Tick>([&](const Tick&) { bus.dispatch(Order{1, 1}); });
  auto orders = bus.subscribe<Order>([](const Order&) { throw std::runtime_error("order"); });
  ASSERT_EQ(bus.publish(Tick{1}), tachyon::result::ok);
  bus.poll();
  EXPECT_EQ(bus.interceptor<OnlyTicks>().runs, 1);
  EXPECT_EQ(bus.interceptor<OnlyTicks>().errors, 0);  // the Order's throw was not the Tick's
  const auto m = bus.metrics();
  EXPECT_EQ(m.types[0].counts.failed, 1u);      // the dispatched Order
  EXPECT_EQ(m.types[2].counts.dispatched, 1u);  // the Tick
  tt::expect_books_balance(m);
}

TEST(InterceptorErrors, AThrowInAScreenedBatchSaysWhatWasQueued) {
  struct Picky {
    verdict before_publish(Order& o, publish_options&) {
      if (o.id == 3) throw std::runtime_error("picky");
      return verdict::allow;
    }
  };
  struct picky_traits {
    using interceptors = tachyon::interceptors<Picky>;
  };
  tachyon::bus<Events, picky_traits> bus{tt::manual()};
  int ran = 0;
  auto s = bus.subscribe<Order>([&](const Order&) { ++ran; });
  const Order orders[] = {{1, 1}, {2, 1}, {3, 1}, {4, 1}};
  try {
    (void)bus.publish_batch(std::span<const Order>(orders));
    FAIL() << "the interceptor's throw was swallowed";
  } catch (const tachyon::publish_batch_error& e) {
    EXPECT_EQ(e.queued, 2u);
    EXPECT_EQ(e.dropped, 0u);
    try {
      std::rethrow_if_nested(e);
      FAIL() << "nothing nested";
    } catch (const std::runtime_error& inner) {
      EXPECT_STREQ(inner.what(), "picky");
    }
  }
  bus.poll();
  EXPECT_EQ(ran, 2);
  tt::expect_books_balance(bus.metrics());
}

TEST(InterceptorErrors, AVetoAfterAnInterceptorSetABadLaneIsStillAVeto) {
  struct Bad {
    verdict before_publish(Order&, publish_options& o) {
      o.lane = static_cast<tachyon::priority>(7);
      return verdict::reject;
    }
  };
  struct bad_traits {
    using interceptors = tachyon::interceptors<Bad>;
  };
  tachyon::bus<Events, bad_traits> bus{tt::manual()};
  EXPECT_EQ(bus.publish(Order{1, 1}), tachyon::result::vetoed);
  EXPECT_EQ(bus.metrics().lanes[2].counts.vetoed, 1u);  // the type's own lane
}

}  // namespace
