// tachyon::codec<T>, writer, reader, encode/decode and fingerprint: every kind of value round
// trips, the bytes on the wire are little-endian whatever the host, and every malformed payload
// (short, long, a length past the end, a bad bool, a version out of range, a raw payload of the
// wrong size) is refused with a codec_error that says what was wrong.
#include <gtest/gtest.h>

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <tachyon/codec.hpp>

#include "unit/codec_types.hpp"

namespace {

using bytes = std::vector<std::byte>;
using codec_test::basket;
using codec_test::line;
using codec_test::order;
using codec_test::side;
using codec_test::tick;

bytes of(std::initializer_list<unsigned> v) {
  bytes b;
  for (unsigned x : v) b.push_back(static_cast<std::byte>(x));
  return b;
}

template <class V>
bytes written(V v) {
  bytes out;
  tachyon::writer w(out);
  w.put(v);
  return out;
}

template <class V>
V read_back(V v) {
  const bytes b = written(v);
  tachyon::reader r(b);
  const V got = r.template get<V>();
  EXPECT_EQ(r.remaining(), 0u);
  return got;
}

/// The codec_error's message when `f` throws one; fails the test when it throws nothing.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const tachyon::codec_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no codec_error";
  return {};
}

order sample_order() {
  return {.id = 0x0102030405060708ULL,
          .qty = -42,
          .price = 101.25,
          .s = side::sell,
          .urgent = true,
          .note = std::string("rush\0order", 10)};
}

basket sample_basket() {
  return {.owner = "alice",
          .lines = {{1, "apple", 3}, {2, "", -1}, {0xFFFFFFFFu, "pear", INT64_MIN}},
          .tags = {{"a", "bb"}, {}, {""}}};
}

// Types for the concept and the fingerprint.
struct no_codec {
  int x;
};
struct named_only {  // not trivially copyable, and its codec has no encode/decode
  std::string s;
};
struct named_with_fields {
  std::string s;
};
struct raw8a {  // size 8, align 8
  std::uint64_t a;
};
struct raw8b {  // size 8, align 4
  std::uint32_t a, b;
};
struct raw12 {
  std::uint32_t a, b, c;
};
struct raw4 {
  std::uint32_t a;
};
struct raw4_v2 {
  std::uint32_t a;
};
struct raw4_same {
  std::uint32_t a;
};
struct raw4_other_name {
  std::uint32_t a;
};

}  // namespace

template <>
struct tachyon::codec<named_only> {
  static constexpr std::string_view name = "test.NamedOnly";
  static constexpr std::uint32_t version = 1;
};
template <>
struct tachyon::codec<named_with_fields> {
  static constexpr std::string_view name = "test.NamedWithFields";
  static constexpr std::uint32_t version = 1;
  static void encode(const named_with_fields& v, tachyon::writer& w) {
    w.put(std::string_view(v.s));
  }
  static named_with_fields decode(tachyon::reader& r, std::uint32_t) { return {r.get_string()}; }
};
// Two layouts of the same declared type, as two builds might have them.
template <>
struct tachyon::codec<raw8a> {
  static constexpr std::string_view name = "test.Raw";
  static constexpr std::uint32_t version = 1;
};
template <>
struct tachyon::codec<raw8b> {
  static constexpr std::string_view name = "test.Raw";
  static constexpr std::uint32_t version = 1;
};
template <>
struct tachyon::codec<raw12> {
  static constexpr std::string_view name = "test.Raw";
  static constexpr std::uint32_t version = 1;
};
template <>
struct tachyon::codec<raw4> {
  static constexpr std::string_view name = "test.Raw4";
  static constexpr std::uint32_t version = 1;
};
template <>
struct tachyon::codec<raw4_v2> {
  static constexpr std::string_view name = "test.Raw4";
  static constexpr std::uint32_t version = 2;
};
template <>
struct tachyon::codec<raw4_same> {
  static constexpr std::string_view name = "test.Raw4";
  static constexpr std::uint32_t version = 1;
};
template <>
struct tachyon::codec<raw4_other_name> {
  static constexpr std::string_view name = "test.Raw4b";
  static constexpr std::uint32_t version = 1;
};

// ---- the concept ------------------------------------------------------------------------------
static_assert(!tachyon::serializable<no_codec>, "no codec: not serializable");
static_assert(!tachyon::serializable<named_only>,
              "not trivially copyable and no encode/decode: not serializable");
static_assert(tachyon::serializable<named_with_fields>);
static_assert(tachyon::serializable<tick>, "trivially copyable: raw payload");
static_assert(tachyon::serializable<order>);
static_assert(tachyon::serializable<basket>);
static_assert(tachyon::raw_payload<tick> && !tachyon::raw_payload<order>);
static_assert(tachyon::oldest_version<order>() == 1 && tachyon::oldest_version<tick>() == 1);

// ---- the fingerprint, at compile time --------------------------------------------------------
static_assert(tachyon::fingerprint<raw4>() == tachyon::fingerprint<raw4_same>(),
              "the same declaration: the same fingerprint");
static_assert(tachyon::fingerprint<raw4>() != tachyon::fingerprint<raw4_other_name>(),
              "another name");
static_assert(tachyon::fingerprint<raw4>() != tachyon::fingerprint<raw4_v2>(), "another version");
static_assert(tachyon::fingerprint<raw4_v2>(1) == tachyon::fingerprint<raw4>(),
              "a version asked for explicitly is the version fingerprinted");
static_assert(tachyon::fingerprint<raw8a>() != tachyon::fingerprint<raw12>(), "another size");
static_assert(tachyon::fingerprint<raw8a>() != tachyon::fingerprint<raw8b>(),
              "the same size, another alignment");
static_assert(tachyon::fingerprint<order>() == tachyon::fingerprint<order>(2));
static_assert(tachyon::fingerprint<order>(1) != tachyon::fingerprint<order>(2));

TEST(CodecFingerprint, DiffersBetweenTypesAndLayoutsAtRunTimeToo) {
  EXPECT_NE(tachyon::fingerprint<order>(), tachyon::fingerprint<basket>());
  EXPECT_NE(tachyon::fingerprint<raw8a>(), tachyon::fingerprint<raw8b>());
  EXPECT_NE(tachyon::fingerprint<raw8a>(), tachyon::fingerprint<raw12>());
  EXPECT_EQ(tachyon::fingerprint<raw4>(), tachyon::fingerprint<raw4_same>());
}

// ---- writer and reader: every kind round trips ----------------------------------------------
TEST(CodecReader, IntegersOfEveryWidthRoundTripAtTheirLimits) {
  EXPECT_EQ(read_back<std::uint8_t>(0), 0);
  EXPECT_EQ(read_back<std::uint8_t>(255), 255);
  EXPECT_EQ(read_back<std::int8_t>(-128), -128);
  EXPECT_EQ(read_back<std::int8_t>(127), 127);
  EXPECT_EQ(read_back<std::uint16_t>(65535), 65535);
  EXPECT_EQ(read_back<std::int16_t>(-32768), -32768);
  EXPECT_EQ(read_back<std::uint32_t>(UINT32_MAX), UINT32_MAX);
  EXPECT_EQ(read_back<std::int32_t>(INT32_MIN), INT32_MIN);
  EXPECT_EQ(read_back<std::uint64_t>(UINT64_MAX), UINT64_MAX);
  EXPECT_EQ(read_back<std::int64_t>(INT64_MIN), INT64_MIN);
  EXPECT_EQ(read_back<std::int64_t>(INT64_MAX), INT64_MAX);
  EXPECT_EQ(read_back<char>('\0'), '\0');
  EXPECT_EQ(read_back<char>('z'), 'z');
  EXPECT_EQ(written<std::int8_t>(1).size(), 1u);
  EXPECT_EQ(written<std::int16_t>(1).size(), 2u);
  EXPECT_EQ(written<std::int32_t>(1).size(), 4u);
  EXPECT_EQ(written<std::int64_t>(1).size(), 8u);
}

TEST(CodecReader, FloatingPointKeepsEveryBitIncludingNaNPayloadsAndSignedZero) {
  const std::uint64_t dbits[] = {0x7FF8000000000123ULL,   // a quiet NaN with a payload
                                 0x7FF0000000000001ULL,   // a signalling NaN
                                 0xFFF8000000000000ULL,   // a negative NaN
                                 0x8000000000000000ULL,   // -0.0
                                 0x7FF0000000000000ULL,   // +inf
                                 0x0000000000000001ULL};  // the smallest subnormal
  for (auto bits : dbits) {
    const double got = read_back(std::bit_cast<double>(bits));
    EXPECT_EQ(std::bit_cast<std::uint64_t>(got), bits) << std::hex << bits;
  }
  const std::uint32_t fbits[] = {0x7FC00123u, 0x7F800001u, 0xFFC00000u, 0x80000000u, 0x00000001u};
  for (auto bits : fbits) {
    const float got = read_back(std::bit_cast<float>(bits));
    EXPECT_EQ(std::bit_cast<std::uint32_t>(got), bits) << std::hex << bits;
  }
  EXPECT_EQ(read_back(1.5), 1.5);
  EXPECT_EQ(read_back(-2.25f), -2.25f);
}

TEST(CodecReader, BoolsAndEnumsRoundTrip) {
  EXPECT_TRUE(read_back(true));
  EXPECT_FALSE(read_back(false));
  EXPECT_EQ(read_back(side::sell), side::sell);
  enum class wide : std::int64_t { low = INT64_MIN, high = INT64_MAX };
  EXPECT_EQ(read_back(wide::low), wide::low);
  EXPECT_EQ(read_back(wide::high), wide::high);
  enum plain { zero, one };
  EXPECT_EQ(read_back(one), one);
  EXPECT_EQ(written(wide::low).size(), 8u);
}

TEST(CodecReader, StringsRoundTripEmptyWithEmbeddedNulAndLarge) {
  const std::string samples[] = {"", std::string("\0", 1), std::string("a\0b\0", 4), "plain",
                                 std::string(100000, 'x')};
  for (const auto& s : samples) {
    bytes b;
    tachyon::writer w(b);
    w.put(std::string_view(s));
    EXPECT_EQ(b.size(), 4 + s.size());
    tachyon::reader r(b);
    EXPECT_EQ(r.get_string(), s);
    EXPECT_EQ(r.remaining(), 0u);
  }
}

TEST(CodecReader, ByteSpansRoundTripThroughGetView) {
  const bytes payload = of({0x00, 0xFF, 0x80, 0x00});
  bytes b;
  tachyon::writer w(b);
  w.put(std::span<const std::byte>(payload));
  w.put(std::span<const std::byte>());
  EXPECT_EQ(b, of({4, 0, 0, 0, 0x00, 0xFF, 0x80, 0x00, 0, 0, 0, 0}));
  tachyon::reader r(b);
  const auto v = r.get_view();
  const auto back = std::as_bytes(std::span<const char>(v.data(), v.size()));
  EXPECT_EQ(bytes(back.begin(), back.end()), payload);
  EXPECT_EQ(r.get_view().size(), 0u);
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(CodecReader, RawBytesHaveNoLengthAndOffsetCountsWhatWasRead) {
  bytes b;
  tachyon::writer w(b);
  w.raw("abc", 3);
  w.put(std::uint16_t{7});
  EXPECT_EQ(w.size(), 5u);
  tachyon::reader r(b);
  char got[3];
  r.raw(got, 3);
  EXPECT_EQ(std::string_view(got, 3), "abc");
  EXPECT_EQ(r.offset(), 3u);
  EXPECT_EQ(r.get<std::uint16_t>(), 7);
  EXPECT_EQ(r.offset(), 5u);
}

// ---- the bytes on the wire --------------------------------------------------------------------
TEST(CodecWire, IntegersAndFloatsAreLittleEndianWhateverTheHost) {
  EXPECT_EQ(written<std::uint16_t>(0x0102), of({0x02, 0x01}));
  EXPECT_EQ(written<std::uint32_t>(0x01020304u), of({0x04, 0x03, 0x02, 0x01}));
  EXPECT_EQ(written<std::uint64_t>(0x0102030405060708ULL),
            of({0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01}));
  EXPECT_EQ(written<std::int32_t>(-2), of({0xFE, 0xFF, 0xFF, 0xFF}));
  EXPECT_EQ(written<std::int16_t>(INT16_MIN), of({0x00, 0x80}));
  EXPECT_EQ(written(1.0), of({0, 0, 0, 0, 0, 0, 0xF0, 0x3F}));
  EXPECT_EQ(written(1.0f), of({0, 0, 0x80, 0x3F}));
  EXPECT_EQ(written(true), of({1}));
  EXPECT_EQ(written(false), of({0}));
  enum class e16 : std::uint16_t { v = 0x0102 };
  EXPECT_EQ(written(e16::v), of({0x02, 0x01}));
  EXPECT_EQ(written(std::string_view("ab")), of({2, 0, 0, 0, 'a', 'b'}));
}

TEST(CodecWire, AnOrderIsItsFieldsInOrderLittleEndian) {
  bytes b;
  tachyon::encode(
      order{.id = 1, .qty = -1, .price = 2.0, .s = side::buy, .urgent = false, .note = "n"}, b);
  EXPECT_EQ(b, of({1,    0,    0,    0,    0,  0, 0, 0,     // id
                   0xFF, 0xFF, 0xFF, 0xFF,                  // qty
                   0,    0,    0,    0,    0,  0, 0, 0x40,  // price
                   1,                                       // side
                   0,                                       // urgent
                   1,    0,    0,    0,    'n'}));          // note
}

TEST(CodecWire, EncodeAppendsToWhatIsAlreadyThere) {
  bytes b = of({0xAA});
  tachyon::encode(tick{1, 0.0f}, b);
  ASSERT_EQ(b.size(), 1 + sizeof(tick));
  EXPECT_EQ(b[0], std::byte{0xAA});
}

// ---- encode/decode --------------------------------------------------------------------------
TEST(CodecDecode, FieldsRoundTripAtTheCurrentVersion) {
  bytes b;
  tachyon::encode(sample_order(), b);
  EXPECT_EQ(tachyon::decode<order>(b, 2), sample_order());
  bytes c;
  tachyon::encode(sample_basket(), c);
  EXPECT_EQ(tachyon::decode<basket>(c, 1), sample_basket());
  bytes d;
  tachyon::encode(basket{}, d);
  EXPECT_EQ(d, of({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(tachyon::decode<basket>(d, 1), basket{});
}

TEST(CodecDecode, AnOlderVersionDecodesThroughTheCodecsOldest) {
  // What a version-1 sender wrote: no note.
  bytes v1;
  tachyon::writer w(v1);
  w.put(std::uint64_t{9});
  w.put(std::int32_t{3});
  w.put(4.5);
  w.put(side::buy);
  w.put(true);
  const order got = tachyon::decode<order>(v1, 1);
  EXPECT_EQ(got,
            (order{.id = 9, .qty = 3, .price = 4.5, .s = side::buy, .urgent = true, .note = {}}));
  // The same bytes read as version 2 want a note and run short.
  EXPECT_THROW(tachyon::decode<order>(v1, 2), tachyon::codec_error);
}

TEST(CodecDecode, AVersionOutsideOldestToCurrentIsRefusedNamingTheRange) {
  bytes b;
  tachyon::encode(sample_order(), b);
  EXPECT_EQ(error_of([&] { tachyon::decode<order>(b, 0); }),
            "tachyon::decode: test.Order version 0; allowed: 1 to 2");
  EXPECT_EQ(error_of([&] { tachyon::decode<order>(b, 3); }),
            "tachyon::decode: test.Order version 3; allowed: 1 to 2");
  EXPECT_EQ(error_of([&] { tachyon::decode<order>(b, UINT32_MAX); }),
            "tachyon::decode: test.Order version 4294967295; allowed: 1 to 2");
  bytes t;
  tachyon::encode(tick{}, t);
  EXPECT_EQ(error_of([&] { tachyon::decode<tick>(t, 2); }),
            "tachyon::decode: test.Tick version 2; allowed: 1 to 1");
}

TEST(CodecDecode, RawPayloadRoundTripsAsTheObjectBytes) {
  const tick t{0xDEADBEEFu, -0.5f};
  bytes b;
  tachyon::encode(t, b);
  ASSERT_EQ(b.size(), sizeof(tick));
  EXPECT_EQ(std::memcmp(b.data(), &t, sizeof(tick)), 0);
  EXPECT_EQ(tachyon::decode<tick>(b, 1), t);
  // Decoding does not need the input aligned for T.
  bytes shifted = of({0});
  shifted.insert(shifted.end(), b.begin(), b.end());
  EXPECT_EQ(tachyon::decode<tick>(std::span<const std::byte>(shifted).subspan(1), 1), t);
}

TEST(CodecDecode, RawPayloadOfTheWrongSizeIsRefusedNamingBothSizes) {
  bytes b;
  tachyon::encode(tick{}, b);
  const auto sz = std::to_string(sizeof(tick));
  bytes longer = b;
  longer.push_back(std::byte{0});
  EXPECT_EQ(error_of([&] { tachyon::decode<tick>(longer, 1); }),
            "tachyon::decode: test.Tick payload of " + std::to_string(sizeof(tick) + 1) +
                " bytes; allowed: exactly " + sz);
  EXPECT_EQ(error_of([&] { tachyon::decode<tick>(std::span(b).first(sizeof(tick) - 1), 1); }),
            "tachyon::decode: test.Tick payload of " + std::to_string(sizeof(tick) - 1) +
                " bytes; allowed: exactly " + sz);
  EXPECT_EQ(error_of([&] { tachyon::decode<tick>({}, 1); }),
            "tachyon::decode: test.Tick payload of 0 bytes; allowed: exactly " + sz);
}

TEST(CodecDecode, TrailingBytesAreRefusedSayingHowMany) {
  bytes b;
  tachyon::encode(sample_order(), b);
  const auto whole = b.size();
  b.push_back(std::byte{0});
  b.push_back(std::byte{0});
  EXPECT_EQ(
      error_of([&] { tachyon::decode<order>(b, 2); }),
      "tachyon::decode: test.Order version 2: 2 bytes left over after " + std::to_string(whole));
  // A version-2 payload read as version 1 leaves its note over.
  b.resize(whole);
  EXPECT_NE(error_of([&] { tachyon::decode<order>(b, 1); }).find("bytes left over"),
            std::string::npos);
}

TEST(CodecDecode, EveryTruncationOfAValidPayloadThrows) {
  std::vector<std::pair<bytes, std::uint32_t>> valid;
  bytes o;
  tachyon::encode(sample_order(), o);
  valid.emplace_back(o, 2);
  bytes b;
  tachyon::encode(sample_basket(), b);
  valid.emplace_back(b, 1);
  bytes n;
  tachyon::encode(named_with_fields{"hello"}, n);
  valid.emplace_back(n, 1);
  for (const auto& [payload, version] : valid) {
    for (std::size_t len = 0; len < payload.size(); ++len) {
      // A copy of exactly `len` bytes, so that ASan sees any read past the prefix.
      const bytes prefix(payload.begin(), payload.begin() + static_cast<std::ptrdiff_t>(len));
      bool threw = false;
      try {
        if (version == 2)
          (void)tachyon::decode<order>(prefix, version);
        else if (payload == b)
          (void)tachyon::decode<basket>(prefix, version);
        else
          (void)tachyon::decode<named_with_fields>(prefix, version);
      } catch (const tachyon::codec_error&) {
        threw = true;
      }
      EXPECT_TRUE(threw) << "prefix of " << len << " of " << payload.size() << " bytes";
    }
  }
}

// ---- malformed input to the reader ----------------------------------------------------------
TEST(CodecReader, ReadingPastTheEndThrowsNamingOffsetAndWant) {
  const bytes b = of({1, 2, 3});
  tachyon::reader r(b);
  EXPECT_EQ(r.get<std::uint8_t>(), 1);
  EXPECT_EQ(error_of([&] { (void)r.get<std::uint32_t>(); }),
            "tachyon::reader: truncated or malformed: raw bytes of 4 bytes at offset 1, 2 bytes "
            "left");
  // A failed read consumes nothing.
  EXPECT_EQ(r.offset(), 1u);
  EXPECT_EQ(r.get<std::uint16_t>(), 0x0302);
  tachyon::reader empty({});
  EXPECT_THROW((void)empty.get<std::uint8_t>(), tachyon::codec_error);
  EXPECT_THROW((void)empty.get_view(), tachyon::codec_error);
}

TEST(CodecReader, AHugeLengthIsRefusedBeforeAnythingIsAllocated) {
  // 0xFFFFFFFF and three bytes: get_string must not try to build a 4 GiB string.
  const bytes b = of({0xFF, 0xFF, 0xFF, 0xFF, 'a', 'b', 'c'});
  tachyon::reader r(b);
  EXPECT_EQ(error_of([&] { (void)r.get_string(); }),
            "tachyon::reader: truncated or malformed: a length-prefixed run of 4294967295 bytes "
            "at offset 4, 3 bytes left");
  tachyon::reader r2(b);
  EXPECT_THROW((void)r2.get_view(), tachyon::codec_error);
  // Through decode: a named_with_fields whose length says one byte more than there is.
  EXPECT_THROW((void)tachyon::decode<named_with_fields>(of({4, 0, 0, 0, 'a', 'b', 'c'}), 1),
               tachyon::codec_error);
}

TEST(CodecReader, ABoolThatIsNeitherZeroNorOneIsRefused) {
  for (unsigned v : {2u, 0x80u, 0xFFu}) {
    const bytes b = of({v});
    tachyon::reader r(b);
    EXPECT_EQ(error_of([&] { (void)r.get<bool>(); }),
              "tachyon::reader: a bool of " + std::to_string(v) + " at offset 0; allowed: 0 or 1");
  }
  bytes o;
  tachyon::encode(sample_order(), o);
  o[8 + 4 + 8 + 1] = std::byte{2};  // the urgent flag
  EXPECT_EQ(error_of([&] { (void)tachyon::decode<order>(o, 2); }),
            "tachyon::reader: a bool of 2 at offset 21; allowed: 0 or 1");
}

TEST(Codec, GetCountRefusesACountTheRestCannotHoldAndGetBytesReadsARun) {
  std::vector<std::byte> out;
  tachyon::writer w(out);
  const std::byte run[] = {std::byte{1}, std::byte{2}, std::byte{3}};
  w.put(std::span<const std::byte>(run));
  w.put(std::uint32_t{2});
  w.put(std::uint32_t{7});
  w.put(std::uint32_t{8});
  tachyon::reader r(out);
  const auto bytes = r.get_bytes();
  ASSERT_EQ(bytes.size(), 3u);
  EXPECT_EQ(bytes[2], std::byte{3});
  EXPECT_EQ(r.get_count(4), 2u);
  EXPECT_EQ(r.get<std::uint32_t>(), 7u);

  std::vector<std::byte> bad;
  tachyon::writer wb(bad);
  wb.put(std::uint32_t{3});  // three 4-byte elements promised, two follow
  wb.put(std::uint32_t{1});
  wb.put(std::uint32_t{2});
  tachyon::reader rb(bad);
  try {
    (void)rb.get_count(4);
    FAIL() << "a count past the end was taken";
  } catch (const tachyon::codec_error& e) {
    EXPECT_NE(std::string(e.what()).find("a count of 3 elements of at least 4 bytes at offset 0"),
              std::string::npos)
        << e.what();
  }
  tachyon::reader rz(bad);
  EXPECT_EQ(rz.get_count(0), 3u);  // 0 is taken as 1 byte each: 8 bytes hold 3
}
