#include <gtest/gtest.h>

#include "common.hpp"

using tachyon::priority;

TEST(Registry, AssignsDenseIndicesInDeclarationOrder) {
  static_assert(tt::Events::size == 4);
  static_assert(tt::Events::index_of<tt::Halt>() == 0);
  static_assert(tt::Events::index_of<tt::Order>() == 1);
  static_assert(tt::Events::index_of<tt::Quote>() == 2);
  static_assert(tt::Events::index_of<tt::Note>() == 3);
  SUCCEED();
}

TEST(Registry, BareTypesDefaultToNormalPriority) {
  static_assert(tt::Events::default_priority_of<tt::Halt>() == priority::critical);
  static_assert(tt::Events::default_priority_of<tt::Order>() == priority::high);
  static_assert(tt::Events::default_priority_of<tt::Quote>() == priority::normal);
  SUCCEED();
}

TEST(Registry, ContainsOnlyListedTypes) {
  static_assert(tt::Events::contains<tt::Quote>);
  static_assert(!tt::Events::contains<int>);
  static_assert(!tt::Events::contains<const tt::Quote>);
  static_assert(std::is_same_v<tt::Events::type_at<1>, tt::Order>);
  SUCCEED();
}

TEST(Registry, TypeNamesComeFromTheCompilerWithoutRtti) {
  EXPECT_EQ(tachyon::bus<tt::Events>::type_name<tt::Quote>(), "tt::Quote");
  EXPECT_EQ(tachyon::bus<tt::Events>::type_name<tt::Halt>(), "tt::Halt");
}

TEST(Registry, PriorityAndResultNamesAreStable) {
  EXPECT_EQ(tachyon::to_string(priority::critical), "critical");
  EXPECT_EQ(tachyon::to_string(priority::low), "low");
  EXPECT_EQ(tachyon::to_string(tachyon::result::full), "full");
  EXPECT_EQ(tachyon::to_string(tachyon::result::stopped), "stopped");
}

namespace names {
template <char C>
struct Tagged {
  int v;
};
namespace inner {
struct Deep {
  int v;
};
}  // namespace inner
using Events = tachyon::registry<Tagged<']'>, Tagged<';'>, inner::Deep>;
}  // namespace names

TEST(Registry, TypeNamesKeepBracketsSemicolonsAndNamespaces) {
  // The name is cut out of __PRETTY_FUNCTION__, whose own punctuation (GCC's
  // "[with T = ...; ...]", Clang's "[T = ...]") must not end it early.
  using bus_t = tachyon::bus<names::Events>;
  EXPECT_EQ(bus_t::type_name<names::Tagged<']'>>(), "names::Tagged<']'>");
  EXPECT_EQ(bus_t::type_name<names::Tagged<';'>>(), "names::Tagged<';'>");
  EXPECT_EQ(bus_t::type_name<names::inner::Deep>(), "names::inner::Deep");
  bus_t bus{tt::manual()};
  const auto m = bus.metrics();
  ASSERT_EQ(m.types.size(), 3u);
  EXPECT_EQ(m.types[0].name, "names::Tagged<']'>");
  EXPECT_EQ(m.types[1].name, "names::Tagged<';'>");
  EXPECT_EQ(m.types[2].name, "names::inner::Deep");
}
