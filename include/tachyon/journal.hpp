// tachyon/journal.hpp — reading a journal (config::journal) back: its records in publish
// order, what became of each event, what was damaged, and replay into a bus.
//
//   tachyon::journal_reader in("/var/lib/app/journal", {.types = {"shop.Order"}});
//   for (const tachyon::journal_record& r : in)
//     if (r.is<Order>()) audit(r.decode<Order>(), r.outcome);
//   tachyon::replay(bus, in);  // or replay(bus, dir, filter)
//
// Order. Runs (one per bus that wrote the directory) come in the order they started. Within a
// run, one thread's events come in the order it published them (its records' order, which is
// its sequence order); events of different threads are merged by their publish timestamps
// (tachyon::clock ticks, comparable across the threads of one machine). Two threads' events
// published within a few nanoseconds of each other may come in either order, as they may run.
//
// Damage. Every record is checked (its CRC-32C and its frame) before it is handed out. A record
// that fails is skipped, and reading resumes at the next record that passes; a record that a
// killed process was writing (a torn tail) ends its segment. Both are counted and described in
// scan(), never handed out as an event. A segment whose header fails its check is skipped whole.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <tachyon/bus.hpp>
#include <tachyon/codec.hpp>
#include <tachyon/detail/journal/identity.hpp>
#include <tachyon/meta.hpp>
#include <tachyon/registry.hpp>
#include <tachyon/result.hpp>
#include <tachyon/settle.hpp>

namespace tachyon {

/// A journal that cannot be read as asked: a directory that cannot be listed, or a record
/// decoded as a type it is not. The message names the file or the types.
class journal_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A journaled type as a segment's table declares it.
struct journal_type_info {
  std::string name;  ///< its codec's name, or (raw, without a codec) the compiler's
  std::uint32_t version = 0;
  std::uint32_t oldest = 0;  ///< the oldest version its codec decoded when written
  std::uint32_t size = 0;    ///< raw payloads: sizeof(T); 0 for a codec's
  std::uint32_t align = 0;
  bool raw = true;  ///< written as its bytes (else by its codec's encode)
  std::uint64_t fingerprint = 0;
};

enum class journal_record_kind : std::uint8_t { event = 1, outcome = 2 };

/// One record, as the reader hands it out. Its views (payload, type) stay valid while the
/// reader lives.
struct journal_record {
  journal_record_kind kind = journal_record_kind::event;
  /// The event's header as published: sequence, correlation and causation ids, lane, flags
  /// and type index; publish_ticks is the record's timestamp (for an outcome record: when it
  /// settled).
  meta header{};
  std::uint64_t run_id = 0;  ///< the bus run that wrote it
  std::uint32_t writer = 0;  ///< the writing thread (its context id within that run)
  std::uint64_t number = 0;  ///< its place among that thread's records (0, 1, ...)
  /// header.publish_ticks on the system clock (ns since the Unix epoch).
  std::chrono::system_clock::time_point time{};
  const journal_type_info* type = nullptr;  ///< from its segment's table
  std::span<const std::byte> payload{};     ///< the event's bytes (raw, or its codec's)
  /// An event record: how it ended, if the journal holds its outcome record (empty while it
  /// is in flight, or if the process died first). An outcome record: its outcome.
  std::optional<tachyon::outcome> outcome{};
  std::string_view file{};   ///< the segment it is in
  std::uint64_t offset = 0;  ///< and where

  std::string_view type_name() const noexcept {
    return type != nullptr ? std::string_view(type->name) : std::string_view();
  }
  /// Whether the record is of T (T's codec name, or for a raw T without a codec its
  /// compiler's name).
  template <class T>
  bool is() const noexcept {
    return type_name() == detail::journal_identity<T>::name;
  }
  /// The event as a T. Throws journal_error if the record is not of T, or if the T it was
  /// written as cannot be read as this build's T (a raw type whose size, alignment or
  /// version differs; a payload written raw read by a codec, or the reverse); codec_error if
  /// T's codec refuses the bytes or their version. Never returns garbage.
  template <class T>
  T decode() const;
};

/// Which records a reader hands out (a record must pass every test set).
struct journal_filter {
  /// Type names (journal_record::type_name()); empty: every type.
  std::vector<std::string> types = {};
  /// One run only (journal_record::run_id); 0: every run.
  std::uint64_t run_id = 0;
  /// Start at the event with this sequence (meta::sequence), inclusive: what the merged
  /// stream holds before it is skipped. Sequences restart with each run: give run_id too,
  /// or the first run holding the sequence is the one meant. 0: from the start.
  std::uint64_t from_sequence = 0;
  /// Events published at or after this time, and before `to_time`.
  std::chrono::system_clock::time_point from_time = std::chrono::system_clock::time_point::min();
  std::chrono::system_clock::time_point to_time = std::chrono::system_clock::time_point::max();
  /// Only events with this correlation id; 0: any.
  std::uint64_t correlation_id = 0;
  /// Hand out outcome records too (kind outcome), merged by the time they settled; off, an
  /// event record carries its outcome (journal_record::outcome).
  bool outcome_records = false;
};

/// Something wrong in the journal, where, and how many bytes it cost.
struct journal_problem {
  enum class kind : std::uint8_t {
    torn_tail,    ///< a record being written when its process died: its segment ends there
    corrupt,      ///< bytes that fail their check between good records: skipped
    bad_segment,  ///< a file whose header fails its check (or is not a segment): skipped
    gap,          ///< records of a thread missing between two it has (a deleted segment?)
  };
  kind what = kind::corrupt;
  std::string file;
  std::uint64_t offset = 0;
  std::uint64_t bytes = 0;  ///< skipped; for a gap, how many records are missing
  std::string detail;
};

/// "torn_tail", "corrupt", "bad_segment", "gap".
std::string_view to_string(journal_problem::kind k) noexcept;

/// What one segment holds.
struct journal_segment_info {
  std::string file;
  std::uint64_t run_id = 0;
  std::uint64_t run_start_ns = 0;  ///< ns since the Unix epoch
  std::uint32_t writer = 0;
  std::uint32_t writer_segment = 0;
  std::uint32_t pid = 0;
  std::uint64_t first_number = 0;
  std::uint64_t file_bytes = 0;
  std::uint64_t records = 0;   ///< event records
  std::uint64_t outcomes = 0;  ///< outcome records
  std::uint64_t bytes = 0;     ///< of records
  std::vector<journal_type_info> types;
};

/// What reading the whole journal found (journal_reader::scan()).
struct journal_scan {
  std::uint64_t segments = 0;         ///< segments read (bad ones not counted)
  std::uint64_t records = 0;          ///< event records that passed
  std::uint64_t outcome_records = 0;  ///< outcome records that passed
  std::uint64_t bytes = 0;            ///< of records that passed
  std::uint64_t torn_tails = 0;
  std::uint64_t torn_bytes = 0;
  std::uint64_t corrupt = 0;  ///< damaged stretches skipped between good records
  std::uint64_t corrupt_bytes = 0;
  std::uint64_t bad_segments = 0;
  std::uint64_t gaps = 0;                 ///< missing stretches of a thread's records
  std::uint64_t orphan_outcomes = 0;      ///< outcome records whose event record is not there
  std::vector<journal_problem> problems;  ///< each of the above, in file order

  /// No damage at all: no torn tail, corrupt stretch, bad segment or gap.
  bool clean() const noexcept { return problems.empty(); }
};

/// Reads a journal directory: every segment in it, of every run. Construction maps every
/// segment and checks every record once (scan()); iteration then merges the records in
/// publish order (see the top of this header) and hands out those the filter passes. What it
/// hands out (records' payloads and types, segments(), scan()) lives as long as the reader:
/// `for (auto& s : journal_reader(dir).segments())` reads a destroyed reader (a temporary in
/// a range-for's initializer dies before the loop body in C++20); name the reader.
/// Read-only: it may read a directory a bus is writing (it sees what was committed when
/// it was constructed, up to the segments' ends at that moment), and never changes a file.
class journal_reader {
 public:
  /// Throws journal_error if `directory` cannot be listed or a segment cannot be opened.
  explicit journal_reader(const std::filesystem::path& directory, journal_filter filter = {});
  ~journal_reader();
  journal_reader(journal_reader&&) noexcept;
  journal_reader& operator=(journal_reader&&) noexcept;

  const journal_scan& scan() const noexcept;
  const std::vector<journal_segment_info>& segments() const noexcept;
  const journal_filter& filter() const noexcept;

  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = journal_record;
    using difference_type = std::ptrdiff_t;
    using pointer = const journal_record*;
    using reference = const journal_record&;
    iterator() = default;
    reference operator*() const noexcept { return record_; }
    pointer operator->() const noexcept { return &record_; }
    iterator& operator++();
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& a, const iterator& b) noexcept {
      return a.reader_ == b.reader_;
    }

   private:
    friend class journal_reader;
    explicit iterator(journal_reader* r) : reader_(r) { ++*this; }
    journal_reader* reader_ = nullptr;
    journal_record record_;
  };
  /// Starts over from the first record: one iteration at a time per reader.
  iterator begin();
  iterator end() noexcept { return iterator(); }

 private:
  struct state;
  bool next(journal_record& out);
  std::unique_ptr<state> state_;
};

/// What replay() did.
struct journal_replay_report {
  std::uint64_t published = 0;  ///< publish() returned ok
  /// publish() refused them (full, stopped, vetoed, dropped, journal_failed), by result.
  std::uint64_t refused = 0;
  std::uint64_t skipped_types = 0;  ///< of a type the bus does not register (or cannot decode)
  std::uint64_t undecodable = 0;    ///< decode() threw (the first reason: error)
  std::string error;
  journal_scan scan;  ///< what reading the journal found: torn tails and damage skipped
};

namespace detail {
/// One registered type's way from a record into a bus.
template <class Bus>
using journal_replay_fn = result (*)(Bus& bus, const journal_record& r);

/// publish() of a replayed event: external, with meta_flags::replayed added (a bus friend, so
/// that publish_options carries no field for it: its plain publish stays as it is).
struct journal_replay {
  template <class Bus, class E>
  static result publish(Bus& bus, E&& ev, const publish_options& o) {
    return bus.template publish_flagged<meta_flags::replayed>(std::forward<E>(ev), o);
  }
};
}  // namespace detail

/// Publishes every event `in` hands out (its filter) into `bus`, in the reader's order, each
/// with its lane and correlation id, as publish_options::external (its handlers see
/// meta_flags::external | meta_flags::replayed). Outcome records are not
/// published. A record of a type the bus does not register is skipped and counted, as is one
/// that does not decode; publish()'s refusals are counted (under overflow::block it waits for
/// room, as any publisher). If the bus journals the type, the replayed event is journaled
/// again, as a new event of this run. Returns what it did and what reading found.
template <class Bus>
journal_replay_report replay(Bus& bus, journal_reader& in);
/// replay() of the journal in `directory`, read with `filter`.
template <class Bus>
journal_replay_report replay(Bus& bus, const std::filesystem::path& directory,
                             journal_filter filter = {}) {
  journal_reader in(directory, std::move(filter));
  return replay(bus, in);
}

// ---- implementation --------------------------------------------------------------------------

namespace detail {
[[noreturn]] void throw_journal_mismatch(const journal_record& r, std::string_view wanted,
                                         std::string_view why);
}  // namespace detail

template <class T>
T journal_record::decode() const {
  static_assert(detail::journal_payload<T>,
                "tachyon::journal_record::decode<T>: T is neither trivially copyable nor has a "
                "tachyon::codec<T> with encode and decode (tachyon/codec.hpp)");
  using id = detail::journal_identity<T>;
  if (kind != journal_record_kind::event)
    detail::throw_journal_mismatch(*this, id::name, "it is an outcome record, not an event");
  if (type == nullptr || type->name != id::name)
    detail::throw_journal_mismatch(*this, id::name, "the type names differ");
  if constexpr (id::raw) {
    if (!type->raw)
      detail::throw_journal_mismatch(*this, id::name,
                                     "it was written by a codec's encode, and this build's T "
                                     "has no decode");
    if (type->version != id::version || type->size != sizeof(T) || type->align != alignof(T) ||
        type->fingerprint != id::fingerprint_of(id::version))
      detail::throw_journal_mismatch(
          *this, id::name,
          "it was written as raw bytes of version " + std::to_string(type->version) + ", " +
              std::to_string(type->size) + " bytes aligned " + std::to_string(type->align) +
              "; this build's T is version " + std::to_string(id::version) + ", " +
              std::to_string(sizeof(T)) + " bytes aligned " + std::to_string(alignof(T)) +
              " (declare encode and decode in its codec to read other layouts)");
    if (payload.size() != sizeof(T))
      detail::throw_journal_mismatch(*this, id::name,
                                     "its payload has " + std::to_string(payload.size()) +
                                         " bytes, not " + std::to_string(sizeof(T)));
    alignas(T) unsigned char storage[sizeof(T)];
    std::memcpy(storage, payload.data(), sizeof(T));
    return *std::launder(reinterpret_cast<T*>(storage));
  } else {
    if (type->raw)
      detail::throw_journal_mismatch(*this, id::name,
                                     "it was written as raw bytes, and this build's codec "
                                     "decodes fields");
    return tachyon::decode<T>(payload, type->version);
  }
}

template <class Bus>
journal_replay_report replay(Bus& bus, journal_reader& in) {
  using Registry = typename Bus::registry_type;
  struct entry {
    std::string_view name;
    detail::journal_replay_fn<Bus> publish;
  };
  std::vector<entry> table;
  Registry::for_each_type([&]<class T, std::size_t I>() {
    if constexpr (detail::journal_payload<T>) {
      table.push_back({detail::journal_identity<T>::name, [](Bus& b, const journal_record& r) {
                         publish_options o;
                         o.lane = r.header.lane;
                         o.correlation_id = r.header.correlation_id;
                         o.external = true;
                         return detail::journal_replay::publish(b, r.decode<T>(), o);
                       }});
    }
  });
  journal_replay_report out;
  std::unordered_map<const journal_type_info*, const entry*> by_type;
  for (const journal_record& r : in) {
    if (r.kind != journal_record_kind::event) continue;
    const entry* e = nullptr;
    if (auto it = by_type.find(r.type); it != by_type.end()) {
      e = it->second;
    } else {
      for (const entry& candidate : table)
        if (candidate.name == r.type_name()) e = &candidate;
      by_type.emplace(r.type, e);
    }
    if (e == nullptr) {
      ++out.skipped_types;
      continue;
    }
    try {
      if (e->publish(bus, r) == result::ok)
        ++out.published;
      else
        ++out.refused;
    } catch (const journal_error& x) {
      if (out.error.empty()) out.error = x.what();
      ++out.undecodable;
    } catch (const codec_error& x) {
      if (out.error.empty()) out.error = x.what();
      ++out.undecodable;
    }
  }
  out.scan = in.scan();
  return out;
}

}  // namespace tachyon
