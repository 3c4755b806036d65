// CRC-32C for the journal's records (detail/journal/format.hpp). A record's checksum is computed
// on the publishing thread, so the hardware instruction matters: with it a 72-byte record costs
// nine crc32 instructions (x86-64's crc32, aarch64's crc32c*).
#include <array>
#include <cstring>

#include <tachyon/detail/journal/format.hpp>

#if defined(__x86_64__)
#include <cpuid.h>
#include <nmmintrin.h>
#elif defined(__aarch64__)
#include <arm_acle.h>
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace tachyon::detail {

namespace {

constexpr std::array<std::uint32_t, 256> make_table() noexcept {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr std::array<std::uint32_t, 256> table = make_table();

std::uint32_t crc_table(std::uint32_t c, const unsigned char* p, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c;
}

#if defined(__x86_64__)
[[gnu::target("sse4.2")]] std::uint32_t crc_hw(std::uint32_t c, const unsigned char* p,
                                               std::size_t n) noexcept {
  std::uint64_t c64 = c;
  while (n >= 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    c64 = _mm_crc32_u64(c64, v);
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<std::uint32_t>(c64);
  if (n >= 4) {  // a record's length, checksummed first: one instruction, not four
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    c32 = _mm_crc32_u32(c32, v);
    p += 4;
    n -= 4;
  }
  while (n-- > 0) c32 = _mm_crc32_u8(c32, *p++);
  return c32;
}

bool cpu_has_crc() noexcept {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(1, &a, &b, &c, &d) == 0) return false;
  return (c & bit_SSE4_2) != 0;
}
const bool has_crc = cpu_has_crc();
#elif defined(__aarch64__)
// The same steps as SSE 4.2's above, with the CRC32 extension's instructions: the polynomial
// and bit order are the same (the Castagnoli polynomial, reflected).
[[gnu::target("+crc")]] std::uint32_t crc_hw(std::uint32_t c, const unsigned char* p,
                                             std::size_t n) noexcept {
  while (n >= 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    c = __crc32cd(c, v);
    p += 8;
    n -= 8;
  }
  if (n >= 4) {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    c = __crc32cw(c, v);
    p += 4;
    n -= 4;
  }
  while (n-- > 0) c = __crc32cb(c, *p++);
  return c;
}

// Linux says whether the core has the extension (HWCAP_CRC32); reading ID registers would trap.
const bool has_crc = (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0;
#endif

}  // namespace

std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t n) noexcept {
  const auto* p = static_cast<const unsigned char*>(data);
#if defined(__x86_64__) || defined(__aarch64__)
  if (has_crc) [[likely]]
    return ~crc_hw(~crc, p, n);
#endif
  return ~crc_table(~crc, p, n);
}

std::uint32_t crc32c_by_table(std::uint32_t crc, const void* data, std::size_t n) noexcept {
  return ~crc_table(~crc, static_cast<const unsigned char*>(data), n);
}

}  // namespace tachyon::detail
