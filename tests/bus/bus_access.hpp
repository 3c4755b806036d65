// The tests' key to a bus's core: bus.hpp and bus_core.hpp befriend tachyon::detail::bus_access
// and the library never defines it, so the tests that reach the re-entry door or an injected
// sequence define it here, once.
#pragma once

#include <tachyon/tachyon.hpp>

namespace tachyon::detail {
struct bus_access {
  template <class R>
  static bus_core& core(bus<R>& b) {
    return b.core_;
  }
  static lane_admission& admission(bus_core& c, priority p) {
    return c.lanes_[static_cast<unsigned>(p)].admission;
  }
};
}  // namespace tachyon::detail
