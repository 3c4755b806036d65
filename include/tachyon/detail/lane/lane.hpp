// tachyon/detail/lane/lane.hpp — one priority lane: the moodycamel queue tuned for tachyon
// (lane_traits), what it reserves up front (lane_reservation_bytes), and the lane itself: the
// queue, its admission (admission.hpp) and the wait point of publishers blocked on it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include <concurrentqueue/concurrentqueue.h>

#include <tachyon/config.hpp>
#include <tachyon/detail/alloc.hpp>
#include <tachyon/detail/lane/admission.hpp>
#include <tachyon/detail/lane/envelope.hpp>
#include <tachyon/detail/worker/parking.hpp>
#include <tachyon/meta.hpp>

namespace tachyon::detail {

/// moodycamel tuned for tachyon: explicit producers only (every publisher has a token),
/// 64-envelope blocks (4 KiB), and every allocation through detail::allocate (mimalloc).
struct lane_traits : moodycamel::ConcurrentQueueDefaultTraits {
  static constexpr std::size_t BLOCK_SIZE = 64;
  static constexpr std::size_t INITIAL_IMPLICIT_PRODUCER_HASH_SIZE = 0;
  static void* malloc(std::size_t n) {
    void* p = allocate_or_null(n, alignof(std::max_align_t));
    if (p == nullptr) [[unlikely]]
      allocation_failed = true;
    return p;
  }
  static void free(void* p) { deallocate(p); }
  /// Set when an allocation on this thread failed. moodycamel's constructor does not report
  /// that it could not reserve its blocks (it leaves the pool empty); the bus checks this.
  static inline thread_local bool allocation_failed = false;
};

using lane_queue = moodycamel::ConcurrentQueue<envelope, lane_traits>;
static_assert(sizeof(envelope) * lane_traits::BLOCK_SIZE == 4096,
              "tachyon: a lane's block holds 4 KiB of envelopes");

/// moodycamel's Block (concurrentqueue.h) is private: this mirrors its layout for lane_traits
/// and envelope, so that what a lane reserves is known before it is reserved.
/// Config.ReservationIsWhatMoodycamelAllocates checks it against the queue's real allocation.
struct mirrored_block {
  alignas(envelope) std::byte elements[sizeof(envelope) * lane_traits::BLOCK_SIZE];
  void* next;
  std::atomic<std::size_t> elements_completely_dequeued;
  std::atomic<bool>
      empty_flags[lane_traits::BLOCK_SIZE <= lane_traits::EXPLICIT_BLOCK_EMPTY_COUNTER_THRESHOLD
                      ? lane_traits::BLOCK_SIZE
                      : 1];
  std::atomic<std::uint32_t> free_list_refs;
  std::atomic<void*> free_list_next;
  std::atomic<bool> should_be_on_free_list;
  bool dynamically_allocated;
};

/// Bytes that one lane's queue, lane_queue(capacity, producers, 0), allocates when it is
/// constructed: one array of (ceil(capacity / BLOCK_SIZE) - 1) x (producers + 1) + 2 x
/// producers blocks, plus the padding moodycamel adds to over-align it.
constexpr std::uint64_t lane_reservation_bytes(std::uint64_t capacity,
                                               std::uint64_t producers) noexcept {
  constexpr std::uint64_t b = lane_traits::BLOCK_SIZE;
  const std::uint64_t blocks = ((capacity + b - 1) / b - 1) * (producers + 1) + 2 * producers;
  constexpr std::uint64_t pad = alignof(mirrored_block) > alignof(std::max_align_t)
                                    ? alignof(mirrored_block) - 1 + sizeof(void*)
                                    : 0;
  return blocks == 0 ? 0 : blocks * sizeof(mirrored_block) + pad;
}

/// What the four lanes of a bus with this configuration reserve (see make_lanes).
constexpr std::uint64_t reserved_bytes(const config& cfg) noexcept {
  return priority_count *
         lane_reservation_bytes(cfg.lane_capacity, std::uint64_t{cfg.producers} + cfg.workers);
}

/// One priority lane: the queue, and the admission that keeps its exact bound (moodycamel's
/// own bound is per producer and block-granular), with the publishers blocked on it.
struct alignas(cache_line) lane {
  lane(std::size_t prealloc_events, std::size_t producers, std::uint32_t capacity,
       std::uint32_t reentry_capacity, bool asymmetric)
      : queue(prealloc_events, producers, 0),
        admission(capacity, reentry_capacity, asymmetric, &room) {}

  lane_queue queue;
  lane_admission admission;
  alignas(cache_line) wait_point room;  // publishers blocked on a full lane sleep here
};
static_assert(alignof(lane) == cache_line && sizeof(lane) % cache_line == 0,
              "lanes sit side by side in an array: each must start and end on a line");

}  // namespace tachyon::detail
