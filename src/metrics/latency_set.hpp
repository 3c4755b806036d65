// Private to the library: one dispatching thread's latency histograms (config::
// latency_histograms). Recorded by the drain (src/worker/drain.cpp), merged by the snapshot
// (src/metrics/snapshot.cpp), freed with the thread's context (src/context/thread_context.cpp).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <memory>
#include <new>

#include <tachyon/detail/alloc.hpp>
#include <tachyon/histogram.hpp>
#include <tachyon/meta.hpp>

namespace tachyon::detail {

/// Written by the owning thread only (histogram records, the slots' first stores); metrics()
/// reads the slots with acquire and the histograms' relaxed counters while they change, which
/// tachyon::histogram allows.
struct latency_set {
  explicit latency_set(std::size_t types)
      : type_count(types), type(std::make_unique<std::atomic<histogram*>[]>(types)) {}
  ~latency_set() {
    for (auto& h : lane) drop(h);
    for (std::size_t t = 0; t < type_count; ++t) drop(type[t]);
  }
  latency_set(const latency_set&) = delete;
  latency_set& operator=(const latency_set&) = delete;

  /// The slot's histogram, made on first use (15 KiB); null if that allocation failed, and
  /// the value then goes unrecorded. Owner only.
  static histogram* get(std::atomic<histogram*>& slot) noexcept {
    histogram* h = slot.load(std::memory_order_relaxed);
    if (h == nullptr) [[unlikely]] {
      void* p = allocate_or_null(sizeof(histogram), alignof(histogram));
      if (p == nullptr) return nullptr;
      h = ::new (p) histogram();
      slot.store(h, std::memory_order_release);
    }
    return h;
  }
  static void drop(std::atomic<histogram*>& slot) noexcept {
    if (histogram* h = slot.load(std::memory_order_relaxed)) {
      h->~histogram();
      deallocate(h);
    }
  }

  std::array<std::atomic<histogram*>, priority_count> lane{};  // queue wait
  std::size_t type_count;
  std::unique_ptr<std::atomic<histogram*>[]> type;  // handler time
};

}  // namespace tachyon::detail
