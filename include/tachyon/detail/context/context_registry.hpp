// tachyon/detail/context/context_registry.hpp — a bus's thread contexts, and how a thread finds
// its own: a one-compare cache (tls_last_context) on the fast path; a thread-local registry of
// the thread's contexts (one per bus) behind it; and, after that registry is destroyed at
// thread exit, a pthread-key list of late contexts (src/context/context_registry.cpp). A
// thread's contexts are handed back (its credits returned, the context marked unowned, for a
// new thread to reuse) when the thread ends; a context_anchor, shared weakly by the threads,
// keeps that safe after the bus is gone.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include <tachyon/detail/context/thread_context.hpp>
#include <tachyon/detail/lane/lane.hpp>
#include <tachyon/detail/subscription/epoch.hpp>

namespace tachyon::detail {

/// The bus's identity for threads' context caches; ids are never reused.
struct tls_cache_entry {
  std::uint64_t bus_id = 0;
  thread_context* ctx = nullptr;
};
extern constinit thread_local tls_cache_entry tls_last_context;

struct context_anchor;  // outlives the registry while threads still hold its contexts

class context_registry {
 public:
  /// Called for a context whose thread ends while the registry lives, before the context is
  /// marked unowned (the bus gives the thread's unspent credits back to the lanes).
  using hand_back_fn = void (*)(void* owner, thread_context& ctx) noexcept;

  /// New contexts get consumer tokens for `lanes`, counter rows for `types` types, and their
  /// reader is added to `epochs`.
  context_registry(std::array<lane, priority_count>& lanes, std::size_t types, epoch_domain& epochs,
                   hand_back_fn hand_back, void* owner);
  /// Detaches the threads (a thread that ends later no longer hands its context back) and
  /// deletes the contexts. Their tokens must go before the lanes do.
  ~context_registry();
  context_registry(const context_registry&) = delete;
  context_registry& operator=(const context_registry&) = delete;

  /// This thread's context: one compare on the fast path.
  thread_context& context() {
    if (tls_last_context.bus_id == id_) [[likely]]
      return *tls_last_context.ctx;
    return context_slow();
  }

  /// This thread's context if it has one, without making one (never allocates, never throws).
  thread_context* find() noexcept;

  /// Every context ever made (push-only; owned or not), newest first.
  thread_context* first() const noexcept { return contexts_.load(std::memory_order_acquire); }

  /// From now on, threads that end do not call hand_back (the bus is going away).
  void detach() noexcept;

 private:
  friend struct context_anchor;

  thread_context& context_slow();
  thread_context& late_context_slow();  // context_slow() after the thread's registry is gone,
                                        // when find() had no match
  thread_context* acquire_context();

  std::uint64_t id_;
  std::atomic<thread_context*> contexts_{nullptr};  // push-only list
  std::atomic<std::uint32_t> next_context_id_{1};
  std::array<lane, priority_count>* lanes_;
  std::size_t types_;
  epoch_domain* epochs_;
  std::shared_ptr<context_anchor> anchor_;
};

/// Shared by the registry and (weakly) by every thread's context cache, so that a thread that
/// ends after its bus is gone does not touch freed memory, and one that ends before hands its
/// context back for reuse.
struct context_anchor {
  std::mutex m;
  context_registry::hand_back_fn hand_back = nullptr;  // null once detached
  void* owner = nullptr;

  /// A thread that owned `ctx` ends: give it back (credits, then ownership) if still attached.
  void release(thread_context& ctx) noexcept {
    std::lock_guard g(m);
    if (hand_back == nullptr) return;
    hand_back(owner, ctx);
    ctx.owned.store(false, std::memory_order_release);  // to acquire_context()'s CAS
  }
};

}  // namespace tachyon::detail
