// tachyon/stop_mode.hpp — what bus::stop() does with the events still queued.
#pragma once

#include <cstdint>

namespace tachyon {

/// What stop() does with the events still queued.
enum class stop_mode : std::uint8_t {
  drain,    ///< run them all, then join the workers (the default, also the destructor's)
  discard,  ///< run none of them: release them, count them in `discarded`, join
};

}  // namespace tachyon
