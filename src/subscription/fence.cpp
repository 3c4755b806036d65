// The asymmetric fence pair (detail/subscription/fence.hpp) on Linux membarrier.
#include <tachyon/detail/subscription/fence.hpp>

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace tachyon::detail {

namespace {
long membarrier(int cmd) noexcept { return syscall(__NR_membarrier, cmd, 0u, 0); }

bool register_membarrier() noexcept {
  const long supported = membarrier(MEMBARRIER_CMD_QUERY);
  if (supported < 0 || (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
  return membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}
}  // namespace

bool asymmetric_fences() noexcept {
  static const bool ok = register_membarrier();  // once per process, thread-safe
  return ok;
}

void heavy_fence(bool asymmetric) noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  // Registered once and never unregistered, so this cannot fail for a reason that would let a
  // reader's store pass its loads; if it ever did, the readers' compiler-only fences would be
  // unsound, so stop rather than go on.
  if (asymmetric && membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0) __builtin_trap();
}

}  // namespace tachyon::detail
