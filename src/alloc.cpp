// Every run-time allocation of tachyon: mimalloc unless built without it (the asan preset,
// where ASan must see the allocations).
#include <tachyon/detail/alloc.hpp>

#include <cstdlib>
#include <new>

#if TACHYON_USE_MIMALLOC
#include <mimalloc.h>
#endif

namespace tachyon::detail {

namespace {
thread_local std::uint64_t allocations = 0;
}

void* allocate(std::size_t size, std::size_t align) {
  void* p = allocate_or_null(size, align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void* allocate_or_null(std::size_t size, std::size_t align) noexcept {
  ++allocations;
#if TACHYON_USE_MIMALLOC
  void* p = mi_malloc_aligned(size, align);
#else
  if (align < alignof(void*)) align = alignof(void*);
  void* p = nullptr;
  if (posix_memalign(&p, align, size == 0 ? 1 : size) != 0) p = nullptr;
#endif
  return p;
}

void deallocate(void* p) noexcept {
#if TACHYON_USE_MIMALLOC
  mi_free(p);
#else
  std::free(p);
#endif
}

std::uint64_t thread_allocations() noexcept { return allocations; }

}  // namespace tachyon::detail
