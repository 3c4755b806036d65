// tachyon/detail/journal/format.hpp — the bytes of a journal segment, shared by the writer
// (detail/journal/journal.hpp), the reader (src/journal/reader.cpp) and tachyon-journal.
//
// A segment is one file of config::journal.segment_bytes, written by one thread of one run:
//
//   [0, 4096)   segment_header, then the type table (type_entry + name, each 8-aligned), then
//               zeros; its checksum covers [0, header_used) with the checksum field 0.
//   [4096, ..)  records, each 8-aligned: record_header (56 bytes) and the payload. The record's
//               length (header and payload, unpadded) is stored last, with release order, by
//               the thread that owns the segment (Aeron's frame rule): a reader that sees a
//               length sees the whole record. Length 0 ends the segment's records; if the kind
//               byte after it is not 0, a record was being written when the process died (a
//               torn record: the segment's tail, or, when the thread had claimed a record
//               after it, a stretch the reader steps over to that one). The checksum (CRC-32C)
//               covers the length and the bytes after the checksum, so a corrupted byte anywhere is
//               found.
//
// All fields are the host's byte order (little-endian on every platform tachyon builds for);
// the header's magic, read in the wrong order, does not match, so such a file is refused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace tachyon::detail::journal_format {

inline constexpr std::uint64_t magic = 0x314C4E524A594854ULL;  // "THYJRNL1"
inline constexpr std::uint32_t version = 1;
inline constexpr std::size_t header_room = 4096;  // records start here
inline constexpr std::size_t record_align = 8;
inline constexpr char file_suffix[] = ".tjs";

struct segment_header {
  std::uint64_t magic;
  std::uint32_t format;
  std::uint32_t header_used;     // bytes of [0, header_room) in use: this and the type table
  std::uint64_t run_id;          // random, one per bus construction
  std::uint64_t run_start_ns;    // the run's start, ns since the Unix epoch (system clock)
  std::uint64_t created_ns;      // this segment's, ns since the Unix epoch (system clock)
  std::uint64_t created_ticks;   // tachyon::clock::now() at created_ns
  double ns_per_tick;            // tachyon::clock::ns_per_tick() of the run
  std::uint64_t segment_bytes;   // the file's size (a closed segment's unused tail is a hole)
  std::uint64_t ordinal;         // this run's segments, numbered as made (file names sort so)
  std::uint32_t writer;          // the writing thread's context id within the bus (1 .. 65535)
  std::uint32_t writer_segment;  // 0, 1, ...: this writer's segments in order
  std::uint64_t first_number;    // the number of this segment's first record in its writer
  std::uint32_t pid;
  std::uint32_t type_count;
  std::uint32_t checksum;  // CRC-32C of [0, header_used) with this field 0
  std::uint32_t reserved;
};
static_assert(sizeof(segment_header) == 104);

enum class payload_kind : std::uint8_t { raw = 0, codec = 1 };

/// One journaled type: the registry index records name it by, its declared identity (its
/// codec's name and version, or for a raw type without a codec the compiler's name and 0).
struct type_entry {
  std::uint16_t index;
  payload_kind kind;
  std::uint8_t reserved;
  std::uint32_t version;
  std::uint32_t oldest;
  std::uint32_t size;  // sizeof(T) for a raw payload, 0 for a codec's
  std::uint32_t align;
  std::uint32_t name_length;  // the name's bytes follow, then zeros to the next 8
  std::uint64_t fingerprint;  // tachyon::fingerprint's rule: name, version, raw size and align
};
static_assert(sizeof(type_entry) == 32);

/// padding: a claimed record whose event was refused after all (a full lane); it keeps its
/// place and number, and readers step over it.
enum record_kind : std::uint8_t { event = 1, outcome = 2, padding = 3 };

struct record_header {
  std::uint32_t length;    // header + payload, unpadded; stored last
  std::uint32_t checksum;  // CRC-32C of the length, then of bytes [8, length)
  std::uint8_t kind;       // record_kind
  std::uint8_t lane;
  std::uint8_t detail;  // event: meta::attempt; outcome: tachyon::outcome
  std::uint8_t flags;   // meta::flags
  std::uint16_t type;   // registry index (the segment's type table names it)
  std::uint16_t reserved;
  std::uint64_t number;  // the record's place among its writer's records: 0, 1, 2, ...
  std::uint64_t sequence;
  std::uint64_t correlation;
  std::uint64_t causation;
  std::uint64_t ticks;  // publish: meta::publish_ticks (or the journal's clock read if 0);
                        // outcome: when it settled
};
static_assert(sizeof(record_header) == 56);

constexpr std::size_t padded(std::size_t n) noexcept {
  return (n + record_align - 1) & ~(record_align - 1);
}

}  // namespace tachyon::detail::journal_format

namespace tachyon::detail {

/// CRC-32C (Castagnoli), continuing from `crc` (0 to start). The CPU's instruction where it has
/// one (checked once at start-up): SSE 4.2's crc32 on x86-64, the CRC32 extension's crc32c* on
/// aarch64 (in every ARMv8.1 core and most ARMv8.0 ones); a table otherwise. All give the same
/// values, so a journal written on one architecture reads on the other.
std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t n) noexcept;
/// The table that crc32c() falls back to, always: for the tests that hold the two to the same
/// values.
std::uint32_t crc32c_by_table(std::uint32_t crc, const void* data, std::size_t n) noexcept;

}  // namespace tachyon::detail
