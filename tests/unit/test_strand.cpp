// detail::strand on its own: the FIFO and its `pending` hand-off as keyed publishes and their
// holders use them. Several producers push numbered nodes; a consumer that, like a worker,
// holds the strand only while it has a "token" takes what was counted, in order, and hands the
// token on or lets it go. Every node comes out exactly once, each producer's in its order, and
// a strand never has two holders.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "common.hpp"

#include <tachyon/detail/ordering/strand.hpp>

using tachyon::detail::strand;
using tachyon::detail::strand_index;
using tachyon::detail::strand_node;

namespace {
std::uint64_t value_of(const strand_node* n) {
  std::uint64_t v;
  std::memcpy(&v, n->env.payload, sizeof v);
  return v;
}
void set_value(strand_node* n, std::uint64_t v) { std::memcpy(n->env.payload, &v, sizeof v); }
}  // namespace

TEST(Strand, OneProducerComesOutInOrderAndTheLastTakeIdlesIt) {
  strand s(nullptr);
  std::vector<strand_node> nodes(5);
  for (std::uint64_t i = 0; i < nodes.size(); ++i) {
    set_value(&nodes[i], i);
    EXPECT_EQ(s.push(&nodes[i]), i == 0);  // only the first push finds it idle
  }
  EXPECT_EQ(s.pending(), 5u);
  for (std::uint64_t i = 0; i < 3; ++i) {
    ASSERT_EQ(s.front(), &nodes[i]);
    ASSERT_EQ(s.take(), &nodes[i]);
  }
  EXPECT_FALSE(s.finish(3));  // two left: the holder must hand the token on
  EXPECT_EQ(s.take(), &nodes[3]);
  EXPECT_EQ(s.take(), &nodes[4]);  // the last one: the stub takes its place
  EXPECT_EQ(s.take(), nullptr);
  EXPECT_EQ(s.front(), nullptr);
  EXPECT_TRUE(s.finish(2));  // idle
  // And it works again after being emptied through the stub.
  EXPECT_TRUE(s.push(&nodes[0]));
  EXPECT_EQ(s.take(), &nodes[0]);
  EXPECT_TRUE(s.finish(1));
}

TEST(Strand, ManyProducersOneHolderAtATimeEveryNodeOnceInEachProducersOrder) {
  // Producers push; whoever makes the strand go idle -> busy gets the token and puts it in a
  // shared "lane" (an atomic counter of tokens); consumer threads take a token, take up to a
  // budget of what is counted, and hand the token back or let it go, as run_strand does.
  constexpr int producers = 3, consumers = 2;
  const std::uint64_t per = tt::sanitized() ? 3'000 : 30'000;
  strand s(nullptr);
  std::vector<std::unique_ptr<strand_node[]>> nodes;
  for (int p = 0; p < producers; ++p) nodes.emplace_back(new strand_node[per]);
  std::atomic<int> tokens{0};  // tokens in the lane: never more than 1
  std::atomic<int> holders{0}, most_holders{0}, most_tokens{0};
  std::vector<std::uint64_t> next(producers, 0);  // the holder's view: plain, handed over
  std::atomic<std::uint64_t> taken_total{0};
  std::atomic<bool> out_of_order{false};
  auto note_max = [](std::atomic<int>& m, int v) {
    int cur = m.load();
    while (v > cur && !m.compare_exchange_weak(cur, v)) {
    }
  };
  auto put_token = [&] { note_max(most_tokens, tokens.fetch_add(1) + 1); };
  std::vector<std::thread> ts;
  for (int p = 0; p < producers; ++p)
    ts.emplace_back([&, p] {
      for (std::uint64_t i = 0; i < per; ++i) {
        strand_node* n = &nodes[static_cast<std::size_t>(p)][i];
        set_value(n, (static_cast<std::uint64_t>(p) << 32) | i);
        if (s.push(n)) put_token();
      }
    });
  const std::uint64_t total = per * producers;
  for (int c = 0; c < consumers; ++c)
    ts.emplace_back([&] {
      while (taken_total.load() < total) {
        int t = tokens.load();
        if (t == 0 || !tokens.compare_exchange_weak(t, t - 1)) {
          std::this_thread::yield();
          continue;
        }
        note_max(most_holders, holders.fetch_add(1) + 1);
        const std::uint64_t budget = std::min<std::uint64_t>(s.pending(), 7);
        std::uint64_t taken = 0;
        while (taken < budget) {
          strand_node* n = s.take();
          if (n == nullptr) break;
          const std::uint64_t v = value_of(n);
          const auto p = static_cast<std::size_t>(v >> 32);
          if ((v & 0xffffffffu) != next[p]) out_of_order.store(true);
          next[p] = (v & 0xffffffffu) + 1;
          ++taken;
        }
        taken_total.fetch_add(taken);
        holders.fetch_sub(1);
        if (!s.finish(taken)) put_token();
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_FALSE(out_of_order.load());
  EXPECT_EQ(taken_total.load(), total);
  for (int p = 0; p < producers; ++p) EXPECT_EQ(next[static_cast<std::size_t>(p)], per);
  EXPECT_EQ(most_holders.load(), 1);
  EXPECT_EQ(most_tokens.load(), 1);
  EXPECT_EQ(tokens.load(), 0);
  EXPECT_EQ(s.pending(), 0u);
}

TEST(Strand, KeysSpreadOverTheStrandsAndStayInRange) {
  for (std::uint32_t count : {1u, 3u, 256u, 65536u}) {
    std::set<std::size_t> hit;
    for (std::uint64_t k = 1; k <= 4096; ++k) {
      const std::size_t i = strand_index(k * 256, count);  // multiples of a power of two
      ASSERT_LT(i, count);
      hit.insert(i);
    }
    EXPECT_GE(hit.size(), std::min<std::size_t>(count, 4096) * 9 / 10) << count;
  }
}
