// tachyon/detail/subscription/fence.hpp — an asymmetric fence pair for the reader epoch.
//
// A reader entering dispatch announces its epoch with a store and must not let its later loads
// of handler tables pass that store (a store-load order, which on x86-64 takes a locked
// instruction or mfence: about 20 cycles, paid on every batch and every dispatch()). Writers
// (unsubscribe, table swaps) are rare. So the full barrier moves to the writer:
// membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) makes every running thread of the process execute
// a full memory barrier before it returns, and a thread not running passes one when it is next
// scheduled. The reader keeps only a compiler barrier. This is the pairing of liburcu's
// urcu-memb flavour and folly's asymmetric_thread_fence_light/heavy.
//
// Where membarrier is unavailable (Linux < 4.14, a seccomp filter) both sides fall back to a
// full fence; the choice is made once per process, when its first bus is constructed, and every
// bus reads the same answer.
#pragma once

#include <atomic>

namespace tachyon::detail {

/// True when the heavy side is membarrier and the light side may be a compiler barrier.
bool asymmetric_fences() noexcept;

/// The reader's side: orders its earlier stores before its later loads, given that every
/// writer calls heavy_fence() between its stores and its loads of reader state.
inline void light_fence(bool asymmetric) noexcept {
  if (asymmetric)
    std::atomic_signal_fence(std::memory_order_seq_cst);
  else
    std::atomic_thread_fence(std::memory_order_seq_cst);
}

/// The writer's side: a full barrier on every thread of the process (membarrier), or on this
/// one when the reader side pays for its own.
void heavy_fence(bool asymmetric) noexcept;

}  // namespace tachyon::detail
