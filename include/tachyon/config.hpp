// tachyon/config.hpp — everything a bus can be told at construction, in one struct.
//
// Validated up front: bus's constructor throws std::invalid_argument whose message names the
// field, the value and what is allowed, and nothing is started. Fields are read once; changing
// the struct after construction has no effect.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <tachyon/meta.hpp>

namespace tachyon {

/// What an idle worker does when every lane is empty.
enum class wait_strategy : std::uint8_t {
  busy_spin,       ///< poll without pause: lowest wake-up latency, burns a core per worker
  yield,           ///< poll with sched_yield() between scans: gives the core to others
  spin_then_park,  ///< poll for `spin_before_park`, then sleep on a futex until work arrives
};

/// What publish() does when the event's lane is at `lane_capacity`.
enum class overflow : std::uint8_t {
  block,  ///< wait for room (up to `block_timeout` if set), then `full`
  fail,   ///< return `result::full` at once; the caller keeps the event
  drop,   ///< discard the event, count it in `dropped`, return `result::dropped`
  /// Make room by discarding the oldest queued event of the lane (counted `displaced`, its
  /// payload released on the publishing thread) and queue the new one: `result::ok`. Oldest
  /// of this publishing thread's own events in the lane when it has any queued, else of the
  /// producer moodycamel picks (see the README's Backpressure). Never waits: when no queued
  /// event can be taken at that moment (the lane's events are all between another thread's
  /// admission and its enqueue, or in a worker's hands), the new event is dropped as under
  /// `drop` (`result::dropped`). Retries and delayed events that re-entered the lane are never
  /// displaced: they hold none of the lane's room.
  drop_oldest,
};

/// When a journaled event's record is on its way to the disk (config::journal).
enum class durability : std::uint8_t {
  /// In the page cache before publish() returns ok: it survives the process being killed at any
  /// instant (kill -9, a crash), not the machine losing power. No syscall per event.
  process,
  /// As `process`, and a background thread (tachyon-journal) syncs, every `sync_interval`, what
  /// each thread wrote since the last sync (a segment rolled off, whole, when it closes): a
  /// record is on the disk at most sync_interval plus one round of syncs after publish()
  /// returned.
  interval,
  /// msync() of the record's pages before publish() returns: on the disk when it returns ok
  /// (its segment's header and name were synced when the thread took the segment). Slow (a
  /// disk write per event, tens of microseconds to milliseconds): for low rates only. Outcome
  /// records are not synced one by one: they reach the disk when their segment closes.
  every_event,
};

/// The journal: every event of a journaled type (registry option tachyon::journaled) for which
/// publish() returns ok is written to a memory-mapped segment of its publishing thread before
/// publish() returns, and each one's final outcome is appended where it settles. See
/// tachyon/journal.hpp for reading and replaying it, and the README's Journal.
struct journal_config {
  /// Where the segments go; created if missing (one level). Empty (the default): no journal.
  /// One bus at a time may write to a directory (a lock file, `.lock`, held while it runs);
  /// later buses (a restart) add their own segments beside the earlier ones.
  std::string directory = {};
  /// Bytes per segment file; a thread's segment rolls over to a new file when its next record
  /// does not fit. A record (56 bytes of header and the payload) larger than a segment's room
  /// (segment_bytes - 4096) is refused. Allowed: 64 KiB .. 1 GiB, a multiple of 4096.
  std::size_t segment_bytes = std::size_t{64} << 20;
  tachyon::durability durability = tachyon::durability::process;
  /// With durability::interval: how often. Allowed: 1 ms .. 1 hour.
  std::chrono::milliseconds sync_interval{100};
  /// Retention: the most segments the directory keeps (this run's and earlier runs'); when a
  /// segment is closed beyond it, the oldest closed ones are deleted. 0: no limit. Segments
  /// being written are never deleted.
  std::uint32_t retain_segments = 0;
  /// Retention by size: the most bytes the directory's segments take on the disk (a closed
  /// segment's unused tail is a hole); the oldest closed ones are deleted beyond it. 0: no limit.
  std::uint64_t retain_bytes = 0;
};

struct config {
  /// Worker threads, named tachyon-w0, tachyon-w1, ... 0 is manual mode: nothing runs until
  /// the owner calls poll() / run_once(). Allowed: 0 .. 256.
  std::uint32_t workers = 1;

  /// CPUs to pin the workers to, worker i on cpus[i % cpus.size()]. Empty: no pinning. Each
  /// must be a CPU the machine has (0 .. sysconf(_SC_NPROCESSORS_CONF) - 1); one that a cpuset
  /// forbids makes the constructor throw std::runtime_error when the worker fails to pin.
  /// Ignored when workers is 0, and then not checked either.
  std::vector<int> cpus = {};

  /// Events each of the four lanes holds at most; exact (tachyon counts occupancy itself).
  /// Memory is reserved up front, about lane_capacity x 65 B x (producers + workers + 1) per
  /// lane, so that a publish under the bound never allocates; see max_reserved_bytes.
  /// Allowed: 1 .. 2^24.
  std::uint32_t lane_capacity = 1u << 13;

  /// Events a worker dequeues and runs at once before it looks at the more urgent lanes again:
  /// a critical event waits at most one batch. Allowed: 1 .. 4096.
  std::uint32_t batch = 64;

  /// Idle behaviour of the workers; see wait_strategy.
  wait_strategy wait = wait_strategy::spin_then_park;

  /// With spin_then_park: how long an idle worker polls before it parks. Also, whatever the
  /// wait strategy, how long a publisher blocked on a full lane (overflow::block) polls for room
  /// before it sleeps. Allowed: 0 .. 1 s.
  std::chrono::nanoseconds spin_before_park = std::chrono::microseconds(50);

  /// The policy of a full lane; see overflow.
  tachyon::overflow overflow = tachyon::overflow::block;

  /// With overflow::block: the longest a publish waits for room before it returns `full`.
  /// Zero waits without a deadline. Allowed: 0 .. 1 hour.
  std::chrono::nanoseconds block_timeout = std::chrono::nanoseconds::zero();

  /// Threads other than the workers that are expected to publish. The lanes are pre-sized so
  /// that this many threads (plus every worker) publish up to lane_capacity without allocating;
  /// more publishing threads still work, but they may allocate until the lane has grown to fit
  /// them (counted in metrics_snapshot::lane_allocations). Allowed: 1 .. 1024.
  std::uint32_t producers = 4;

  /// Deliveries per lane that may be queued through the re-entry door at once: the door through
  /// which a due retry, or a delayed event that fell due, enters its lane. They do not take the
  /// room of `lane_capacity`, so a publisher never waits behind them; a due one that finds the
  /// door full waits in the timer until a batch has made room (so a full door always means
  /// work queued in that lane: a worker never spins on it). Allowed: 1 .. 2^24.
  std::uint32_t reentry_capacity = 1024;

  /// Retries and delayed events (publish_options::not_before) that may wait in the bus's
  /// timer at once. A retry that finds it full is not scheduled: its delivery goes to the
  /// dead letters (or fails); a delayed publish that finds it full returns `full`.
  /// Allowed: 1 .. 2^24.
  std::uint32_t timer_capacity = 1u << 16;

  /// Entries the dead-letter queue holds (bus::dead_letters()); 0 (the default): no dead
  /// letters, and a delivery that fails for good is counted `failed`. When full, the oldest
  /// entry is dropped and counted (metrics_snapshot::dead_letters_evicted). Allowed: 0 .. 2^24.
  std::uint32_t dead_letter_capacity = 0;

  /// bus::health(): a worker that has been in one batch for longer than this is `stalled`.
  /// Allowed: 1 ms .. 1 hour.
  std::chrono::nanoseconds stall_threshold = std::chrono::seconds(1);

  /// bus::health(): a lane filled above this ratio of lane_capacity is reported. 0 .. 1.
  double fill_warning = 0.9;

  /// The most memory the four lanes may reserve up front, in bytes. What they reserve follows
  /// from lane_capacity, producers and workers: 4 x ((ceil(lane_capacity / 64) - 1) x
  /// (producers + workers + 1) + 2 x (producers + workers)) blocks of 64 events, 4160 B each.
  /// A configuration that needs more is refused (std::invalid_argument naming those fields,
  /// the bytes and this limit); if the memory cannot be had, the constructor throws
  /// std::bad_alloc. The default, 1 GiB, is over 80 times what the defaults reserve
  /// (12.25 MiB) and admits lane_capacity = 2^19 with 4 producers and a worker (780 MiB),
  /// while refusing values each in range that together ask for up to 5.6 TB. Allowed: any.
  std::size_t max_reserved_bytes = std::size_t{1} << 30;

  /// Stamp each published event with tachyon::clock::now() (meta::publish_ticks, from which a
  /// handler learns how long the event queued). One TSC read per publish; false leaves
  /// publish_ticks 0 and saves it. dispatch() never stamps.
  bool timestamps = true;

  /// Record latency histograms, read through metrics(): per lane the queue wait (from
  /// meta::publish_ticks to the start of the batch that runs the event; events without a stamp,
  /// see `timestamps`, record none) and per type the handler time (all of one event's
  /// handlers). Costs, when true: one clock read per drained batch and one per event, and two
  /// histogram records per event (plain loads and stores, no locked instruction); 15 KiB per
  /// histogram, allocated by each dispatching thread (workers, poll()/run_once() and stop()
  /// callers, never a thread that only publishes) on its first record into that lane or type.
  /// dispatch() is not timed. When false (the default), one predictable branch per batch.
  bool latency_histograms = false;

  /// Strands for keyed events (publish_options::key): keys are hashed onto this many FIFOs,
  /// each run by one thread at a time, so this bounds how many keys run in parallel. Keys that
  /// share a strand are serialised together (still each in its own order). 256 B each (384 on
  /// aarch64), made on the first keyed publish; a bus that never publishes a keyed event
  /// allocates none.
  /// Allowed: 1 .. 65536.
  std::uint32_t key_strands = 256;

  /// Called on the dispatching thread each time a handler throws (every attempt), before the
  /// event's other handlers run. Must not throw (what it throws is swallowed). Empty: only
  /// counted (handler_errors).
  std::function<void(const handler_error&)> on_error = {};

  /// Called on each worker thread as it starts, with its index (0 .. workers - 1): after the
  /// thread is named (tachyon-w<index>) and pinned, before it runs anything; every worker's
  /// call has returned before the bus's constructor does, so before any handler runs. For
  /// what a thread does to itself: its scheduling priority, registering with a profiler. If
  /// it throws, the constructor fails as for a pin failure: no worker runs, each worker whose
  /// on_worker_start returned gets its on_worker_stop, and the constructor throws a
  /// std::runtime_error naming the worker, with the hook's exception nested
  /// (std::rethrow_if_nested). Must not call into the bus, which is under construction.
  /// Not called in manual mode (workers = 0): a poll()/run_once() thread is the caller's.
  std::function<void(std::uint32_t worker_index)> on_worker_start = {};

  /// Called on each worker thread whose on_worker_start returned (or every worker, without
  /// one) as it stops: after its last batch, before the thread ends; stop() (and the
  /// destructor) return after every worker's call, and stop(mode, timeout) counts it in its
  /// wait. Must not throw: what it throws is swallowed (the worker still exits, and the other
  /// workers' hooks still run), as stop() may run in a destructor. Must not call into the bus,
  /// which is stopping. Not called in manual mode.
  std::function<void(std::uint32_t worker_index)> on_worker_stop = {};

  /// The journal of journaled event types; off (an empty directory) by default.
  journal_config journal = {};
};

/// Throws std::invalid_argument naming the first invalid field, its value and the allowed range.
void validate(const config& cfg);

}  // namespace tachyon
