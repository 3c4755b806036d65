// tachyon/detail/ordering/strand.hpp — how keyed events (publish_options::key) keep their order:
// each key hashes onto one of config::key_strands strands, a FIFO of the strand's events that
// one thread at a time runs.
//
// A keyed publish is admitted into its lane like any event, but its envelope goes into a node
// pushed onto its strand rather than into the lane's queue. The strand's `pending` counts the
// nodes pushed and not yet taken out. The publish that moves it from 0 to 1 puts a token (an
// envelope of type index types + 1 that carries the strand) into the lane; the thread that
// dequeues the token holds the strand: it alone takes nodes out, in FIFO order, runs them as
// part of its batch, subtracts what it took, and if anything is left, puts the token back into
// the lane of the next event. So a strand has at most one token, and one holder, at a time.
//
// The FIFO is Vyukov's intrusive multi-producer single-consumer queue: a push is one exchange
// on the tail and one store; the order of the exchanges is the strand's order. A push between
// its exchange and its store hides the nodes behind it from the consumer for that moment; the
// holder then stops early, and the count it subtracts is only what it took (it never takes more
// than `pending` said, so it never subtracts a node whose publisher has not counted it yet).
//
// Memory ordering: a node's envelope is written before its push (the exchange is acq_rel, the
// link a release store, read with acquire by the consumer). The holder's own state (the head)
// passes to the next holder through the token's enqueue and dequeue (moodycamel releases and
// acquires), or, when the strand went idle, through `pending`: the holder's fetch_sub releases,
// the next publisher's fetch_add that finds 0 acquires, and that publisher enqueues the token.
//
// Nodes come from the publishing thread's context and go back to it (thread_context::
// spare_nodes, returned_nodes): a thread allocates a node only when it has more keyed events
// in flight than ever before.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include <tachyon/detail/lane/admission.hpp>  // cache_line
#include <tachyon/detail/lane/envelope.hpp>

namespace tachyon::detail {

struct thread_context;
class bus_core;

/// One keyed event on its way through a strand: 128 bytes (two 64-byte lines, or one of 128).
struct alignas(cache_line) strand_node {
  envelope env;                             // the event, stamped and filled as a lane would hold it
  std::atomic<strand_node*> next{nullptr};  // the FIFO's link
  thread_context* owner = nullptr;          // whose spare nodes it goes back to
  strand_node* next_spare = nullptr;        // the owner's lists of spare nodes
};
static_assert(sizeof(strand_node) == 128, "tachyon: a strand node is 128 bytes");

class strand {
 public:
  explicit strand(bus_core* core) noexcept : core_(core) {
    tail_.store(&stub_, std::memory_order_relaxed);
    head_ = &stub_;
  }
  strand(const strand&) = delete;
  strand& operator=(const strand&) = delete;

  bus_core* core() const noexcept { return core_; }

  // ---- publishers ------------------------------------------------------------------------------

  /// Appends `n` and counts it; returns true when the strand was idle (pending went 0 -> 1):
  /// the caller then owns its token and must put it into a lane.
  bool push(strand_node* n) noexcept {
    link(n);
    return pending_.fetch_add(1, std::memory_order_acq_rel) == 0;
  }

  // ---- the holder (the thread that dequeued the token) ------------------------------------------

  /// Nodes counted and not yet taken: at least 1 while a token exists.
  /// Acquire, paired with push()'s add: the nodes it counts are linked before it.
  std::uint64_t pending() const noexcept { return pending_.load(std::memory_order_acquire); }

  /// The node take() would return next, left in place; null when none is reachable now (the
  /// strand is empty, or the next node's publisher is between its exchange and its link).
  strand_node* front() const noexcept {
    return head_ != &stub_ ? head_ : stub_.next.load(std::memory_order_acquire);
  }

  /// Takes out the oldest node; null when none can be taken now (see front(); also when the
  /// front node is the last and another publisher is half-way through appending after it).
  strand_node* take() noexcept {
    strand_node* head = head_;
    strand_node* next = head->next.load(std::memory_order_acquire);
    if (head == &stub_) {
      if (next == nullptr) return nullptr;
      head_ = next;
      head = next;
      next = next->next.load(std::memory_order_acquire);
    }
    if (next != nullptr) {
      head_ = next;
      return head;
    }
    // Only compared: link()'s exchange below orders what follows, so relaxed would do.
    if (tail_.load(std::memory_order_acquire) != head) return nullptr;  // a push is half done
    link(&stub_);  // the last node: the stub takes its place as the head
    next = head->next.load(std::memory_order_acquire);
    if (next != nullptr) {
      head_ = next;
      return head;
    }
    return nullptr;
  }

  /// The holder took `n` nodes (0 is allowed) and is done for now. Returns true when the
  /// strand went idle (nothing counted is left): the token is gone. Otherwise the holder must
  /// put the token back into a lane.
  bool finish(std::uint64_t n) noexcept {
    return pending_.fetch_sub(n, std::memory_order_acq_rel) == n;
  }

 private:
  void link(strand_node* n) noexcept {
    // The null goes out with the exchange's release. Its acquire makes the previous pusher's
    // null to prev->next come before our store of n there; the store's release publishes n to
    // the consumer's acquire loads.
    n->next.store(nullptr, std::memory_order_relaxed);
    strand_node* prev = tail_.exchange(n, std::memory_order_acq_rel);
    prev->next.store(n, std::memory_order_release);
  }

  // Written by every publisher of the strand: the tail's exchange and the count.
  alignas(cache_line) std::atomic<strand_node*> tail_;
  std::atomic<std::uint64_t> pending_{0};
  bus_core* core_;
  // The holder's: where the FIFO is read. The stub's link is written by a publisher that finds
  // the FIFO empty.
  alignas(cache_line) strand_node* head_;
  strand_node stub_;
};

/// The strand of `key` among `count` (at most 2^16): a 64-bit mix (splitmix64's finaliser, so
/// that keys that differ only in high bits, or are multiples of `count`, still spread), then
/// its high 32 bits scaled into [0, count) by a multiply and a shift rather than a division.
constexpr std::size_t strand_index(std::uint64_t key, std::uint32_t count) noexcept {
  key ^= key >> 30;
  key *= 0xbf58476d1ce4e5b9ULL;
  key ^= key >> 27;
  key *= 0x94d049bb133111ebULL;
  key ^= key >> 31;
  return static_cast<std::size_t>(((key >> 32) * count) >> 32);
}

}  // namespace tachyon::detail
