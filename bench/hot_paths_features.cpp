// The optional features' rows of perf/callgrind, in a translation unit of their own: GCC's
// inlining budget is per unit, and the buses below, in hot_paths.cpp, changed what it inlined
// into the core rows (publish went from 99 to 172 instructions), which would make those rows
// measure the harness instead of the bus. Called once per round from hot_paths.cpp's main.
//
//   op_publish_screened op_publish on a bus whose one interceptor's before_publish allows all
//   op_drain_wrapped    op_drain on that bus: its interceptor's before_dispatch and
//                       after_dispatch do nothing (compare both with op_publish and op_drain)
//   op_drain_visitor    op_drain on a bus of 8 types whose one handler is a subscribe_all
//                       visitor, draining events of one of them
//   op_drain_plain8     the same bus type with a plain subscribe<T> handler instead: the
//                       visitor's baseline, compiled in this unit like it
#include <tachyon/tachyon.hpp>

#include <cstdint>
#include <exception>

namespace {

struct Screened {
  std::uint64_t seq;
};
/// An interceptor with every hook, each doing nothing.
struct noop_interceptor {
  tachyon::verdict before_publish(Screened&, tachyon::publish_options&) {
    return tachyon::verdict::allow;
  }
  void before_dispatch(const Screened&, const tachyon::meta&) {}
  void after_dispatch(const Screened&, const tachyon::meta&, std::exception_ptr) {}
};
struct noop_traits {
  using interceptors = tachyon::interceptors<noop_interceptor>;
};
using screened_bus_t = tachyon::bus<tachyon::registry<Screened>, noop_traits>;
template <int N>
struct Kind {
  std::uint64_t seq;
};
using eight_bus_t = tachyon::bus<
    tachyon::registry<Kind<0>, Kind<1>, Kind<2>, Kind<3>, Kind<4>, Kind<5>, Kind<6>, Kind<7>>>;

[[gnu::noinline]] tachyon::result op_publish_screened(screened_bus_t& b, std::uint64_t i) {
  return b.publish(Screened{i});
}
[[gnu::noinline, gnu::no_icf]] std::size_t op_drain_wrapped(screened_bus_t& b) { return b.poll(); }
[[gnu::noinline, gnu::no_icf]] std::size_t op_drain_visitor(eight_bus_t& b) { return b.poll(); }
[[gnu::noinline, gnu::no_icf]] std::size_t op_drain_plain8(eight_bus_t& b) { return b.poll(); }

tachyon::config manual() {
  return {.workers = 0, .lane_capacity = 4096, .overflow = tachyon::overflow::fail, .producers = 1};
}

}  // namespace

/// One round of the feature rows: `per_round` of each; returns how many went wrong.
std::uint64_t feature_round(std::uint64_t per_round, std::uint64_t& sink) {
  static screened_bus_t screened{manual()};
  static auto ss = screened.subscribe<Screened>([&](const Screened& p) { sink += p.seq; });
  static eight_bus_t eight{manual()};
  static auto se = eight.subscribe_all([&](const auto& p) { sink += p.seq; });
  static eight_bus_t plain{manual()};
  static auto sp = plain.subscribe<Kind<5>>([&](const Kind<5>& p) { sink += p.seq; });
  std::uint64_t failures = 0;
  for (std::uint64_t i = 0; i < per_round; ++i)
    failures += op_publish_screened(screened, i) != tachyon::result::ok;
  if (op_drain_wrapped(screened) != per_round) ++failures;
  for (std::uint64_t i = 0; i < per_round; ++i)
    failures += eight.publish(Kind<5>{i}) != tachyon::result::ok;
  if (op_drain_visitor(eight) != per_round) ++failures;
  for (std::uint64_t i = 0; i < per_round; ++i)
    failures += plain.publish(Kind<5>{i}) != tachyon::result::ok;
  if (op_drain_plain8(plain) != per_round) ++failures;
  return failures;
}
