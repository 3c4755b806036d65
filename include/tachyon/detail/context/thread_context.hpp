// tachyon/detail/context/thread_context.hpp — everything one thread keeps per bus: moodycamel
// tokens, counter rows, credit accounts, its reader epoch and the batch it holds. Created on
// the thread's first use of a bus by the context registry (context_registry.hpp), handed back
// for reuse when the thread ends. Almost all of it is written by its owner only, so the hot
// paths write no line another thread writes.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <vector>

#include <concurrentqueue/concurrentqueue.h>

#include <tachyon/detail/lane/admission.hpp>
#include <tachyon/detail/lane/envelope.hpp>
#include <tachyon/detail/lane/lane.hpp>
#include <tachyon/detail/metrics/outcomes.hpp>
#include <tachyon/detail/subscription/epoch.hpp>
#include <tachyon/meta.hpp>
#include <tachyon/subscription.hpp>

namespace tachyon::detail {

/// One row of counters, indexed by counter kind (metrics/outcomes.hpp): 256 bytes, four 64-byte
/// lines. The hot paths' counters (accepted, dispatched) are in the first.
struct alignas(cache_line) counter_row {
  std::atomic<std::uint64_t> v[row_slots];
};
static_assert(sizeof(counter_row) == row_slots * 8, "tachyon: a counter row is row_slots words");

/// Written by one thread only: a relaxed load and store, no locked instruction.
inline void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
/// bump() whose store also publishes this thread's earlier counts, to a metrics() snapshot that
/// loads this counter (acquire) before those (see bus_core::metrics()).
inline void bump_release(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_release);
}

/// One dispatching thread's latency histograms (config::latency_histograms), per lane and per
/// type, each made on its first record; defined in src/metrics/latency_set.hpp.
struct latency_set;

/// A keyed event's node on its way through a strand (detail/ordering/strand.hpp).
struct strand_node;

/// This thread's writer into the bus's journal (detail/journal/journal.hpp).
class journal_writer;

/// What `batch_in_hand` holds: events dequeued and not yet finished, << 2, | their lane (a
/// batch comes from one lane).
inline constexpr std::uint32_t batch_lane_bits = 2;
static_assert(priority_count <= (1u << batch_lane_bits), "tachyon: a lane fits in the low bits");
/// thread_context::batch_in_hand's word: the batch's size above its lane.
constexpr std::uint32_t batch_word(std::size_t n, unsigned lane) noexcept {
  return static_cast<std::uint32_t>(n << batch_lane_bits | lane);
}
constexpr unsigned batch_lane(std::uint32_t word) noexcept {
  return word & ((1u << batch_lane_bits) - 1);
}
constexpr std::size_t batch_size(std::uint32_t word) noexcept { return word >> batch_lane_bits; }

/// One handler failure of the event being run, kept until the event's run ends (bus_core's
/// failure handling decides then: a retry, the dead letters, or failed). Holds a reference.
struct failure_record {
  subscription_state* sub;
  std::exception_ptr error;  // null for a short circuit
  bool short_circuit;
};

/// The event whose handlers a thread is running: what a publish from inside them inherits
/// (meta::causation_id is its sequence; meta::correlation_id its correlation id, unless the
/// publish sets one). Laid out as meta's first 16 bytes, so that the drain copies it from an
/// envelope's header with one 16-byte load and store.
struct event_cause {
  std::uint64_t sequence;
  std::uint64_t correlation;
};
static_assert(offsetof(meta, sequence) == offsetof(event_cause, sequence) &&
                  offsetof(meta, correlation_id) == offsetof(event_cause, correlation),
              "tachyon: event_cause mirrors the head of meta");

struct thread_context {
  thread_context(std::uint32_t id, std::array<lane, priority_count>& lanes, std::size_t types);
  ~thread_context();
  thread_context(const thread_context&) = delete;
  thread_context& operator=(const thread_context&) = delete;

  counter_row& lane_row(unsigned l) noexcept { return rows[l]; }
  counter_row& type_row(std::size_t t) noexcept { return rows[priority_count + t]; }
  counter_row& misc_row() noexcept { return rows[priority_count + types]; }
  /// dispatch() calls that ran every handler without a throw, per type, row_slots types to a row.
  /// Counted once here instead of accepted + dispatched in both the lane and the type row
  /// (dispatch() always uses the type's default lane); metrics() adds them back to all four.
  std::atomic<std::uint64_t>& sync_ok(std::size_t t) noexcept {
    return rows[priority_count + types + 1 + t / row_slots].v[t % row_slots];
  }
  static std::size_t row_count(std::size_t types) noexcept {
    return priority_count + types + 1 + (types + row_slots - 1) / row_slots;
  }

  /// Every event count goes to its lane's row and its type's row.
  void count(unsigned l, std::size_t t, counter k, std::uint64_t n = 1) noexcept {
    bump(lane_row(l).v[k], n);
    bump(type_row(t).v[k], n);
  }

  /// The next event's sequence (see meta::sequence): the context id in the low 16 bits, a
  /// count above that wraps by itself after 2^48 events without touching the id.
  std::uint64_t take_sequence() noexcept {
    const std::uint64_t s = next_sequence;
    next_sequence += sequence_step;
    return s;
  }
  static constexpr std::uint64_t sequence_step = std::uint64_t{1} << 16;

  // Owner-only state.
  std::uint64_t next_sequence;  // see take_sequence()
  // The running event (zero outside handlers): set by the drain before each event's handlers,
  // by dispatch() and replays around theirs, cleared at the end of each batch.
  alignas(16) event_cause cause{};
  std::uint32_t dispatch_nesting = 0;  // dispatches running on this thread, nested
  std::size_t types;
  counter_row* rows;  // [lanes][types][misc][sync_ok], see lane_row .. sync_ok
  envelope* drain_buffer = nullptr;
  std::uint32_t drain_buffer_size = 0;
  // Events of the running batch (front-door ones) that did not settle as dispatched; what
  // they settled as instead, or that they went to wait in the timer, is in batch_tally.
  // end_batch counts both with the batch (bus_core::end_batch).
  std::uint32_t batch_failed = 0;
  std::array<std::uint32_t, counter_kinds> batch_tally{};
  std::vector<failure_record> failures;  // the running event's (see failure_record)
  bool failed_plain = false;             // the running event had a failure that was only counted
  // With an after_dispatch interceptor (hooks_ref::records_run_errors): the last exception a
  // handler of the running run threw, handed to it.
  std::exception_ptr run_error;
  std::uint32_t empty_drains = 0;  // run_once()/poll() calls in a row that ran nothing
  // Hot lane (consumers): the lane last drained, polled without its hint for a while; see
  // bus_core::drain_batch. hot_lane == priority_count: none.
  unsigned hot_lane = priority_count;
  std::uint32_t hot_misses = 0;
  std::array<std::optional<moodycamel::ProducerToken>, priority_count> producer;
  std::array<std::optional<moodycamel::ConsumerToken>, priority_count> consumer;

  envelope scratch;  // publish() builds trivially copyable events here; see bus_core::publish

  // Written by the owner, read by others (the park check, stop, metrics); a revoker also
  // writes an account's limit, revoking and revoked_from (detail/lane/admission.hpp).
  alignas(cache_line) std::array<credit_account, priority_count> credits;  // per lane

  // Written by the owner, read by others: its own line.
  alignas(cache_line) epoch_reader reader;  // 0: not dispatching; see epoch_domain
  // The batch this thread holds: events dequeued and not yet finished, << batch_lane_bits,
  // | their lane. metrics() counts them in the lane's in_flight.
  std::atomic<std::uint32_t> batch_in_hand{0};
  // bus::health() and a timed stop(): the subscription whose handler this thread called last
  // (one plain store per handler call, on this line, which the owner writes anyway), and
  // whether it sleeps (a worker's idle path).
  std::atomic<const subscription_state*> calling{nullptr};
  std::atomic<bool> parked{false};

  // config::latency_histograms: made by the owner on its first timed batch (release), read by
  // metrics() (acquire). Null with the option off.
  std::atomic<latency_set*> latency{nullptr};

  // Keyed events (detail/ordering/strand.hpp), cold unless keys are used. The nodes this thread
  // publishes keyed events in: spare ones (owner only), and those the threads that ran them gave
  // back (pushed by them, taken whole by the owner with one exchange when the spares run out).
  strand_node* spare_nodes = nullptr;
  // config::journal: this thread's segment writer, made on its first journaled publish or
  // outcome, owned by the journal (it outlives the thread; a context reused by a later thread
  // keeps writing it, as it keeps its sequence).
  journal_writer* journal = nullptr;
  // A strand's turn shares what is left of the running batch with the batch's other tokens
  // (bus_core::run_strand): the batch's envelopes that came through the re-entry door (written
  // only when the door was in use, which it is whenever the batch holds a token), and the
  // strand events and turns this thread has run in its current batch (a batch is told by the
  // misc row's batch count, which the drain bumps anyway).
  std::uint32_t batch_reentered = 0;
  std::uint32_t strand_turns = 0;
  std::uint64_t strand_batch = 0;
  std::uint64_t strand_ran = 0;
  alignas(cache_line) std::atomic<strand_node*> returned_nodes{nullptr};

  // Registry bookkeeping (cold).
  alignas(cache_line) std::atomic<bool> owned{true};
  thread_context* next = nullptr;
};
static_assert(alignof(thread_context) == cache_line,
              "tachyon: a context's shared lines (credits, reader) start lines of their own");

}  // namespace tachyon::detail
