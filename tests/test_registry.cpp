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
