// tachyon/detail/alloc.hpp — every allocation tachyon makes at run time goes through here:
// moodycamel's blocks (via lane_traits), boxed events, drain buffers. With
// TACHYON_USE_MIMALLOC it is mimalloc; without (the asan preset), the C allocator.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tachyon::detail {

/// Allocates `size` bytes aligned to `align` (a power of two). Throws std::bad_alloc.
void* allocate(std::size_t size, std::size_t align);

/// allocate() that returns null instead of throwing: moodycamel's Traits::malloc contract
/// (it treats null as "could not allocate" and fails the enqueue cleanly).
void* allocate_or_null(std::size_t size, std::size_t align) noexcept;

/// Frees what allocate() returned; null is a no-op.
void deallocate(void* p) noexcept;

/// How many times this thread has called allocate(): the tests use it to prove that a
/// publish does not allocate. Thread-local, so counting costs no shared write.
std::uint64_t thread_allocations() noexcept;

}  // namespace tachyon::detail
