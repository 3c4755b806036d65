// tachyon/detail/journal/journal.hpp — the writing side of the journal (config::journal).
//
// Each thread that publishes a journaled event, or settles one, writes its records into a
// segment of its own (journal_writer, hung off its thread_context): a record is reserved at the
// segment's tail, filled (header, payload, CRC-32C) while the event is admitted, and committed
// by storing its length (release) once publish() knows the event is queued. No lock, no shared
// write, no syscall per record: the segment's pages were mapped and touched ahead of the writer
// by the journal's thread, tachyon-journal, which also syncs (durability::interval), closes the
// segments writers rolled off and applies retention. A writer takes a lock only when it rolls
// over to its next segment (once per segment_bytes). The file format is format.hpp's.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <tachyon/clock.hpp>
#include <tachyon/config.hpp>
#include <tachyon/detail/context/thread_context.hpp>  // bump: counters one thread writes
#include <tachyon/detail/journal/format.hpp>
#include <tachyon/meta.hpp>
#include <tachyon/settle.hpp>

namespace tachyon {

/// What the journal has done since the bus started (bus::journal_stats()).
struct journal_stats {
  bool enabled = false;             ///< config::journal.directory was set
  std::uint64_t records = 0;        ///< event records committed
  std::uint64_t outcomes = 0;       ///< outcome records committed
  std::uint64_t bytes = 0;          ///< bytes of records committed (with their padding)
  std::uint64_t refused = 0;        ///< publishes refused with result::journal_failed
  std::uint64_t outcomes_lost = 0;  ///< outcomes that could not be written (the reason: below)
  std::uint64_t segments = 0;       ///< segment files made by this bus
  std::uint64_t prepared = 0;       ///< of them, made ahead by the journal's thread
  std::uint64_t made_inline = 0;    ///< of them, made by a writer that found none ready
  std::uint64_t deleted = 0;        ///< segment files removed by retention
  std::uint64_t syncs = 0;          ///< fdatasync / msync calls that succeeded
  std::uint64_t sync_failures = 0;  ///< and that failed (the reason: below)
  std::uint64_t prepare_ns = 0;     ///< time tachyon-journal spent making segments ahead
  std::uint64_t segment_bytes = 0;  ///< config::journal.segment_bytes
  std::uint32_t writers = 0;        ///< threads with a segment of their own
  std::string last_error;           ///< the last failure, with the file and errno; empty: none
};

}  // namespace tachyon

namespace tachyon::detail {

/// What the journal knows of a registered type, from the bus (bus.hpp: journal_types()).
struct journal_type {
  bool journaled = false;
  journal_format::payload_kind kind = journal_format::payload_kind::raw;
  std::uint32_t version = 0;
  std::uint32_t oldest = 0;
  std::uint32_t size = 0;
  std::uint32_t align = 0;
  std::uint64_t fingerprint = 0;
  std::string_view name;
};

/// One mapped segment file.
struct journal_segment {
  int fd = -1;
  bool populated = false;  // its pages mapped writable ahead of the writer
  bool taken = false;      // a writer has written to it (set under the journal's mutex)
  std::byte* base = nullptr;
  std::size_t size = 0;
  std::size_t used = 0;  // the writer's tail when it rolled off (set before closing)
  std::string path;
};

class journal;

/// One thread's segment writer. reserve/fill/commit/abandon run on the owning thread only.
class journal_writer {
 public:
  journal_writer(journal& owner, std::uint32_t id, std::uint32_t seed) noexcept
      : owner_(owner), id_(id), seed_(seed) {}

  /// Claims room for a record of `length` bytes (header and payload) at the tail, or returns
  /// nullptr if the segment cannot be rolled over (the reason is the journal's last_error). The
  /// claim writes the record's kind and number at once: a record this thread claims after it
  /// while this one is being filled (the outcome of an event that this publish displaces) then
  /// follows it in the segment, and a reader never takes this one's bytes for the segment's
  /// end. Every claim ends in commit() or abandon().
  std::byte* reserve(std::size_t length, std::uint8_t kind) noexcept {
    const std::size_t bytes = journal_format::padded(length);
    if (bytes > room_) [[unlikely]] {
      if (!roll(bytes)) return nullptr;
    }
    std::byte* at = tail_;
    tail_ += bytes;
    room_ -= bytes;
    ++claims_;
    at[offsetof(journal_format::record_header, kind)] = static_cast<std::byte>(kind);
    std::memcpy(at + offsetof(journal_format::record_header, number), &number_, sizeof number_);
    ++number_;
    return at;
  }

  /// Writes the header of the record claimed at `at` from `m`, and its checksum over the header
  /// and the `length - 56` payload bytes already in place after it; not its length, so it is
  /// not yet visible to a reader. The checksum starts from the run's seed: a record copied from
  /// another run's journal never passes in this one's.
  void fill(std::byte* at, std::size_t length, std::uint8_t detail, const meta& m,
            std::uint64_t ticks) noexcept {
    journal_format::record_header h;
    h.length = 0;
    h.checksum = 0;
    h.kind = static_cast<std::uint8_t>(at[offsetof(journal_format::record_header, kind)]);
    h.lane = static_cast<std::uint8_t>(m.lane);
    h.detail = detail;
    h.flags = m.flags;
    h.type = m.type_index;
    h.reserved = 0;
    std::memcpy(&h.number, at + offsetof(journal_format::record_header, number), sizeof h.number);
    h.sequence = m.sequence;
    h.correlation = m.correlation_id;
    h.causation = m.causation_id;
    h.ticks = ticks;
    std::memcpy(at, &h, sizeof h);
    const auto len = static_cast<std::uint32_t>(length);
    std::uint32_t c = crc32c(seed_, &len, sizeof len);
    c = crc32c(c, at + 8, length - 8);
    std::memcpy(at + 4, &c, sizeof c);
  }

  /// Publishes the record: its length, stored last (release). An event record is synced
  /// first under durability::every_event.
  void commit(std::byte* at, std::size_t length, bool outcome) noexcept {
    __atomic_store_n(reinterpret_cast<std::uint32_t*>(at), static_cast<std::uint32_t>(length),
                     __ATOMIC_RELEASE);
    bump(outcome ? outcomes_ : records_);
    bump(bytes_, journal_format::padded(length));
    // Release, paired with tachyon-journal's acquire: the record's bytes are in memory before
    // it msyncs up to end_ (durability::interval).
    end_.store(tail_, std::memory_order_release);
    if (every_event_ && !outcome) [[unlikely]]
      sync_record(at, length);
    if (--claims_ == 0 && !retiring_.empty()) [[unlikely]]
      retire();
  }

  /// A claimed record whose event was refused after all (the lane was full, stop() had begun,
  /// the publish threw): the room is given back if nothing was claimed after it, so that a
  /// publisher retrying a full lane writes nothing; otherwise it becomes padding, a record
  /// readers step over.
  void abandon(std::byte* at, std::size_t length) noexcept {
    const std::size_t bytes = journal_format::padded(length);
    if (at + bytes == tail_) [[likely]] {
      std::memset(at, 0, bytes);
      tail_ = at;
      room_ += bytes;
      --number_;
    } else {
      pad(at, length);
    }
    if (--claims_ == 0 && !retiring_.empty()) [[unlikely]]
      retire();
  }

  /// Scratch for a codec's encode (a type that is not written as its bytes). The encoded bytes
  /// are copied into the claimed record at once, before anything else can run on this thread
  /// (a settle listener that publishes, inside the publish): a nested publish may reuse it.
  std::vector<std::byte> scratch;

 private:
  friend class journal;
  bool roll(std::size_t bytes) noexcept;
  void pad(std::byte* at, std::size_t length) noexcept;
  /// Hands the segments rolled off while a claim in them was open to tachyon-journal.
  void retire() noexcept;
  void sync_record(std::byte* at, std::size_t length) noexcept;

  journal& owner_;
  const std::uint32_t id_;
  const std::uint32_t seed_;  // crc32c of the run id: every record's checksum starts from it
  std::byte* tail_ = nullptr;
  std::size_t room_ = 0;
  std::uint64_t number_ = 0;
  bool every_event_ = false;
  std::uint32_t segments_taken_ = 0;
  // Changed by the owner under the journal's mutex (tachyon-journal reads it to sync).
  journal_segment* current_ = nullptr;
  // Claims not yet committed or abandoned: more than one while a publish's own claim waits for
  // its event to be queued and the publish settles another event (a displaced one) meanwhile,
  // or publishes from a settle listener. Segments rolled off with a claim still open in them
  // stay mapped (retiring_) until the last one ends.
  std::uint32_t claims_ = 0;
  std::vector<journal_segment*> retiring_;
  // Guarded by the journal's mutex: the segment tachyon-journal prepared for this writer.
  journal_segment* next_ = nullptr;
  // Read by other threads; written by the owner only. end_: the tail after the last commit,
  // how far durability::interval's sync of the current segment reaches. The counts are
  // relaxed: stats() needs only their values.
  std::atomic<std::uint64_t> records_{0};
  std::atomic<std::uint64_t> outcomes_{0};
  std::atomic<std::uint64_t> bytes_{0};
  std::atomic<std::byte*> end_{nullptr};
  std::byte* synced_ = nullptr;  // tachyon-journal's: where its last sync of current_ ended
};

/// A journaled publish's record, claimed before the event is admitted, its payload copied in
/// at once, and its header written by the publish path's payload store, once the header is
/// stamped (bus.hpp).
struct journal_slot {
  journal_writer* writer;
  std::byte* at;
  std::size_t length;

  void write(const meta& h) noexcept {
    writer->fill(at, length, h.attempt, h, h.publish_ticks != 0 ? h.publish_ticks : clock::now());
  }
};

/// A bus's journal: its directory, its writers and its thread. Made by the bus's constructor
/// when config::journal.directory is set and the registry journals a type; closed (segments'
/// unused tails given back, the thread stopped, the lock let go) by its destructor, after the
/// bus has stopped.
class journal {
 public:
  /// Opens (creates) the directory, takes its lock and starts tachyon-journal. Throws
  /// std::runtime_error naming the directory and the reason.
  journal(const journal_config& cfg, std::vector<journal_type> types);
  ~journal();
  journal(const journal&) = delete;
  journal& operator=(const journal&) = delete;

  bool journals(std::uint16_t type) const noexcept {
    return type < types_.size() && types_[type].journaled;
  }
  const journal_type& type(std::uint16_t t) const noexcept { return types_[t]; }

  /// This thread's writer, made (with its first segment) on first use; nullptr if that failed.
  journal_writer* writer_for(thread_context& ctx) noexcept;

  /// Appends the outcome of a journaled event to this thread's segment; counted in
  /// outcomes_lost if it cannot be written.
  void settled(thread_context& ctx, const meta& m, tachyon::outcome o) noexcept;

  /// A publish refused for the journal's sake (result::journal_failed).
  void refused() noexcept { refused_.fetch_add(1, std::memory_order_relaxed); }

  journal_stats stats() const;
  /// Records why the journal refused or lost something (journal_stats::last_error).
  void fail(std::string what) noexcept;
  std::uint64_t run_id() const noexcept { return run_id_; }
  const std::string& directory() const noexcept { return dir_; }

 private:
  friend class journal_writer;

  /// Makes a segment file for writer `w`: allocated (posix_fallocate, so that a full disk is
  /// found here and never as a SIGBUS on a page), mapped, its pages touched, its header written.
  journal_segment* make_segment(std::uint32_t writer, bool populate) noexcept;
  /// Maps the pages of s writable (MADV_POPULATE_WRITE, or a touch per page).
  /// `in_use`: a writer is writing it; then only MADV_POPULATE_WRITE, never a write per page.
  static void populate(journal_segment* s, bool in_use) noexcept;
  /// Hands `s` to the writer as its current segment: the header gets the writer's numbers.
  bool take_segment(journal_writer& w, journal_segment* s) noexcept;
  void close_segment(journal_segment* s) noexcept;
  /// A segment a writer rolled off, for tachyon-journal to close.
  void hand_over(journal_segment* s) noexcept;
  void remove_segment(journal_segment* s) noexcept;
  void apply_retention() noexcept;
  void run();
  /// fsync of the directory, so that a segment's name survives a power loss (durability modes
  /// other than process).
  void sync_directory() noexcept;

  const journal_config cfg_;
  const std::vector<journal_type> types_;
  const std::string dir_;
  std::uint64_t run_id_ = 0;
  std::uint64_t run_start_ns_ = 0;
  double ns_per_tick_ = 1.0;
  int lock_fd_ = -1;
  int dir_fd_ = -1;
  std::uint32_t seed_ = 0;
  std::size_t header_used_ = 0;
  std::vector<std::byte> header_template_;  // segment_header + type table, as every segment's

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::vector<std::unique_ptr<journal_writer>> writers_;  // every writer, for stats and close
  std::vector<journal_segment*> open_;                    // mapped and not yet closed
  std::deque<journal_segment*> rolled_;                   // rolled off, to be closed
  std::uint64_t next_ordinal_ = 0;                        // segments taken by writers, in order
  std::uint64_t next_made_ = 0;                           // segments made
  std::string last_error_;

  // Counts for stats(), bumped from any thread: relaxed, as a snapshot needs only the values.
  std::atomic<std::uint64_t> refused_{0};
  std::atomic<std::uint64_t> outcomes_lost_{0};
  std::atomic<std::uint64_t> segments_{0};
  std::atomic<std::uint64_t> prepared_{0};
  std::atomic<std::uint64_t> made_inline_{0};
  std::atomic<std::uint64_t> deleted_{0};
  std::atomic<std::uint64_t> syncs_{0};
  std::atomic<std::uint64_t> sync_failures_{0};
  std::atomic<std::uint64_t> prepare_ns_{0};

  std::thread thread_;  // last: started once the rest is built
};

}  // namespace tachyon::detail
