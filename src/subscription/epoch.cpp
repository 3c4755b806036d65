// Epoch-based reclamation (detail/subscription/epoch.hpp): grace periods and the retired list.
#include <tachyon/detail/subscription/epoch.hpp>

#include <algorithm>
#include <chrono>
#include <thread>

#include <tachyon/detail/lane/admission.hpp>  // cpu_relax

namespace tachyon::detail {

void epoch_domain::add_reader(epoch_reader& r) noexcept {
  // Release: publishes the reader and r.next to the scans' acquire loads of readers_ (and,
  // through the release sequence, the readers pushed before it).
  r.next = readers_.load(std::memory_order_relaxed);
  while (!readers_.compare_exchange_weak(r.next, &r, std::memory_order_release,
                                         std::memory_order_relaxed)) {
  }
}

void epoch_domain::synchronize(const epoch_reader* self) {
  // Readers announce the epoch they saw on entry, then load tables (enter). After
  // heavy_fence, each reader's fence point lies either before ours, so its announcement is
  // visible to the scan below, or after, so its table loads see the swap our caller made
  // before the fetch_add. A reader whose epoch load already saw `target` loads tables after
  // that acquire and sees the swap too. So a reader still on the old table shows an epoch in
  // [1, target) until it leaves.
  const std::uint64_t target = epoch_.fetch_add(1, std::memory_order_seq_cst) + 1;
  heavy_fence(asymmetric_);  // every reader's announcement is now visible, or it sees the swap
  // The announcements are acquired (seq_cst, where acquire would do after the fence): a reader
  // seen at 0 or >= target has done its old-table loads (leave()'s and enter()'s release).
  for (auto* r = readers_.load(std::memory_order_seq_cst); r != nullptr; r = r->next) {
    if (r == self) continue;
    for (unsigned spins = 0;; ++spins) {
      const std::uint64_t e = r->epoch.load(std::memory_order_seq_cst);
      if (e == 0 || e >= target) break;
      if (spins < 64)
        cpu_relax();
      else if (spins < 1024)
        std::this_thread::yield();
      else
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
}

void epoch_domain::retire(void* p, void (*deleter)(void*)) noexcept {
  try {
    // The fetch_add's release: a reader that announces this epoch or a later one acquired it,
    // so its table loads see the swap made before; reclaim() frees at that epoch.
    retired_.push_back({p, deleter, epoch_.fetch_add(1, std::memory_order_seq_cst) + 1});
    // Epochs grow in push order (retire holds the mutex): the front is the oldest.
    if (retired_.size() == 1) reclaim_due_.store(retired_.front().epoch, std::memory_order_relaxed);
  } catch (...) {  // out of memory: leak p
  }
}

void epoch_domain::reclaim(garbage& out) {
  if (retired_.empty()) return;
  // The one allocation, before anything moves: the push_back below cannot throw.
  out.reserve(out.size() + retired_.size());
  heavy_fence(asymmetric_);  // as in synchronize(), and the loads below acquire as there
  std::uint64_t oldest_reader = UINT64_MAX;
  for (auto* r = readers_.load(std::memory_order_seq_cst); r != nullptr; r = r->next) {
    const std::uint64_t e = r->epoch.load(std::memory_order_seq_cst);
    if (e != 0) oldest_reader = std::min(oldest_reader, e);
  }
  std::erase_if(retired_, [&](const retired& r) {
    if (r.epoch > oldest_reader) return false;
    out.push_back(r);
    return true;
  });
  reclaim_due_.store(retired_.empty() ? 0 : retired_.front().epoch, std::memory_order_relaxed);
}

void epoch_domain::reclaim_after_leave() noexcept {
  // This thread has just left its outermost dispatch: it holds no table. First a cheap filter,
  // without the fence or the lock: an announcement older than the oldest retired epoch is a
  // reader that may still see it, and reclaim() would free nothing, so a worker that runs
  // beside a long handler does not pay a membarrier per batch. A stale value only moves the
  // attempt to a later exit; reclaim() decides with the fence.
  const std::uint64_t due = reclaim_due_.load(std::memory_order_relaxed);
  if (due == 0) return;
  for (auto* r = readers_.load(std::memory_order_acquire); r != nullptr; r = r->next) {
    const std::uint64_t e = r->epoch.load(std::memory_order_relaxed);
    if (e != 0 && e < due) return;
  }
  // Never block a dispatching thread on the lock: its holder is subscribing or unsubscribing,
  // and a later exit (or that holder's own reclaim) tries again.
  std::unique_lock lock(mutex_, std::try_to_lock);
  if (!lock.owns_lock()) return;
  garbage g;
  try {
    reclaim(g);
  } catch (...) {  // out of memory before anything moved: a later exit tries again
    return;
  }
  lock.unlock();
  free_garbage(g);  // user destructors: outside the lock, and this thread reads no table
}

}  // namespace tachyon::detail
