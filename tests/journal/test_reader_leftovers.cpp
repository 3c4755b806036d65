// What a process killed while it makes or takes a segment leaves behind, beside a journal: a
// segment being made is a .tjs.ahead (empty, or zeros), which readers do not read; one whose
// header a writer was rewriting to take it holds no record. Neither is damage. A segment with
// records and a bad header is still a bad segment.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include <tachyon/detail/journal/format.hpp>

#include "common.hpp"
#include "journal/journal_types.hpp"

namespace {

namespace fmt = tachyon::detail::journal_format;

std::vector<char> bytes_of(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::filesystem::path& p, const std::vector<char>& b) {
  std::ofstream(p, std::ios::binary).write(b.data(), static_cast<std::streamsize>(b.size()));
}

/// A journal of 100 Ticks; returns its publishing thread's segment (its records' file).
std::filesystem::path write_ticks(const jt::temp_dir& dir) {
  tachyon::bus<jt::Events> bus(jt::journaled(dir));
  auto sub = bus.subscribe<jt::Tick>([](const jt::Tick&) {});
  for (std::uint64_t i = 0; i < 100; ++i)
    EXPECT_EQ(bus.publish(jt::Tick{i, 0}), tachyon::result::ok);
  bus.stop();
  const tachyon::journal_reader in(dir.path);
  for (const auto& s : in.segments())
    if (s.records > 0) return s.file;
  return {};
}

TEST(JournalReaderLeftovers, SegmentsAKilledProcessWasMakingHoldNothingAndAreNotDamage) {
  jt::temp_dir dir;
  const auto segment = write_ticks(dir);
  ASSERT_FALSE(segment.empty());
  const std::size_t segments = tachyon::journal_reader(dir.path).segments().size();
  const std::vector<char> real = bytes_of(segment);
  // Killed right after creating the file; while allocating or touching its pages; while a
  // writer rewrote the header of one it was taking (the checksum no longer matches).
  write_file(dir.path / "zz-0-created.tjs.ahead", {});
  write_file(dir.path / "zz-1-allocated.tjs.ahead", std::vector<char>(64 * 1024, 0));
  std::vector<char> taken(real.begin(), real.begin() + fmt::header_room);
  taken[offsetof(fmt::segment_header, writer_segment)] ^= 1;
  taken.resize(64 * 1024, 0);
  write_file(dir.path / "zz-2-taken.tjs", taken);

  tachyon::journal_reader in(dir.path);
  EXPECT_TRUE(in.scan().clean()) << in.scan().problems.front().file << ": "
                                 << in.scan().problems.front().detail;
  EXPECT_EQ(in.segments().size(), segments);
  EXPECT_EQ(in.scan().records, 100u);
}

TEST(JournalReaderLeftovers, ASegmentWithRecordsAndABadHeaderIsStillABadSegment) {
  jt::temp_dir dir;
  const auto segment = write_ticks(dir);
  ASSERT_FALSE(segment.empty());
  std::vector<char> b = bytes_of(segment);
  b[offsetof(fmt::segment_header, writer_segment)] ^= 1;
  write_file(segment, b);
  write_file(dir.path / "zz-short.tjs", std::vector<char>(50, 0));

  tachyon::journal_reader in(dir.path);
  EXPECT_EQ(in.scan().bad_segments, 2u);
  ASSERT_EQ(in.scan().problems.size(), 2u);
  EXPECT_EQ(in.scan().problems[0].file, segment.string());
  EXPECT_EQ(in.scan().problems[0].detail, "its header fails its checksum");
  EXPECT_EQ(in.scan().problems[1].detail, "shorter than a segment header");
  EXPECT_EQ(in.scan().records, 0u);
}

}  // namespace
