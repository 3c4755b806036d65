// The journal's CRC-32C: the standard check value, and the CPU's instruction (SSE 4.2 on x86-64,
// the CRC32 extension on aarch64) giving the same values as the table and as a bit-at-a-time
// reference, for every length and alignment a record can have. A journal written on one
// architecture is read on the other only if they all agree.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <random>

#include <tachyon/detail/journal/format.hpp>

namespace {

/// The definition, one bit at a time: reflected, polynomial 0x82F63B78, all ones in and out.
std::uint32_t crc32c_by_bits(std::uint32_t crc, const unsigned char* p, std::size_t n) {
  crc = ~crc;
  for (std::size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return ~crc;
}

}  // namespace

TEST(Crc32c, GivesTheStandardCheckValue) {
  // The CRC-32C check value (RFC 3720, and every CRC catalogue): "123456789" -> 0xE3069283.
  const char digits[] = "123456789";
  EXPECT_EQ(tachyon::detail::crc32c(0, digits, 9), 0xE3069283u);
  EXPECT_EQ(tachyon::detail::crc32c_by_table(0, digits, 9), 0xE3069283u);
  EXPECT_EQ(tachyon::detail::crc32c(0, digits, 0), 0u);
}

TEST(Crc32c, TheInstructionTheTableAndTheDefinitionAgreeAtEveryLengthAndAlignment) {
  std::array<unsigned char, 4096 + 8> buffer;
  std::mt19937 random(7);
  for (auto& b : buffer) b = static_cast<unsigned char>(random());
  for (std::size_t offset = 0; offset < 8; ++offset) {
    for (std::size_t length = 0; length <= 160; ++length) {
      const unsigned char* p = buffer.data() + offset;
      const std::uint32_t want = crc32c_by_bits(0, p, length);
      ASSERT_EQ(tachyon::detail::crc32c(0, p, length), want) << offset << " + " << length;
      ASSERT_EQ(tachyon::detail::crc32c_by_table(0, p, length), want) << offset << " + " << length;
    }
  }
  const std::uint32_t whole = crc32c_by_bits(0, buffer.data(), 4096);
  EXPECT_EQ(tachyon::detail::crc32c(0, buffer.data(), 4096), whole);
  EXPECT_EQ(tachyon::detail::crc32c_by_table(0, buffer.data(), 4096), whole);
}

TEST(Crc32c, ContinuesFromAnEarlierValue) {
  // A record's checksum is its length's, continued over the rest (and seeded by the run's id).
  const char text[] = "a record, its header and its payload";
  const std::size_t n = sizeof text - 1;
  for (std::size_t cut = 0; cut <= n; ++cut) {
    const std::uint32_t first = tachyon::detail::crc32c(0, text, cut);
    EXPECT_EQ(tachyon::detail::crc32c(first, text + cut, n - cut),
              tachyon::detail::crc32c(0, text, n))
        << cut;
  }
}
