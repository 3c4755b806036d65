// The text of the Tachyon-Meta and Tachyon-Origin headers: format_meta writes exactly the
// documented line, parse_meta reads it back and refuses everything else with a reason that names
// the field, and format_origin writes "<name>/<16 hex digits>".
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include <tachyon/nats/wire.hpp>

namespace {

using tachyon::nats::format_meta;
using tachyon::nats::format_origin;
using tachyon::nats::parse_meta;
using tachyon::nats::wire_meta;

const wire_meta sample{.version = 3,
                       .fingerprint = 0x00ab00cd00ef0012ULL,
                       .sequence = 7,
                       .correlation = 0,
                       .causation = 18446744073709551615ULL,
                       .published_ns = 1700000000123456789ULL,
                       .export_sequence = 1};
constexpr const char* sample_text =
    "v1 3 00ab00cd00ef0012 7 0 18446744073709551615 1700000000123456789 1";

bool same(const wire_meta& a, const wire_meta& b) {
  return a.version == b.version && a.fingerprint == b.fingerprint && a.sequence == b.sequence &&
         a.correlation == b.correlation && a.causation == b.causation &&
         a.published_ns == b.published_ns && a.export_sequence == b.export_sequence;
}

/// parse_meta's reason for refusing `text`; fails the test if it accepts it.
std::string refusal(const std::string& text) {
  wire_meta m;
  std::string why;
  EXPECT_FALSE(parse_meta(text, m, why)) << text;
  return why;
}

}  // namespace

TEST(NatsWire, FormatMetaWritesTheDocumentedLine) {
  EXPECT_EQ(format_meta(sample), sample_text);
  EXPECT_EQ(format_meta(wire_meta{}), "v1 0 0000000000000000 0 0 0 0 0");
  const wire_meta max{UINT32_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX,
                      UINT64_MAX, UINT64_MAX, UINT64_MAX};
  EXPECT_EQ(format_meta(max),
            "v1 4294967295 ffffffffffffffff 18446744073709551615 18446744073709551615 "
            "18446744073709551615 18446744073709551615 18446744073709551615");
}

TEST(NatsWire, ParseMetaReadsBackWhatFormatMetaWrote) {
  wire_meta m;
  std::string why;
  ASSERT_TRUE(parse_meta(sample_text, m, why)) << why;
  EXPECT_TRUE(same(m, sample));
  EXPECT_TRUE(why.empty());
  const wire_meta max{UINT32_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX,
                      UINT64_MAX, UINT64_MAX, UINT64_MAX};
  ASSERT_TRUE(parse_meta(format_meta(max), m, why)) << why;
  EXPECT_TRUE(same(m, max));
}

TEST(NatsWire, ParseMetaRefusesAnotherFormatTag) {
  EXPECT_EQ(refusal(""), "Tachyon-Meta: format tag ''; allowed: v1");
  EXPECT_EQ(refusal("v2 3 00ab00cd00ef0012 7 0 1 2 1"),
            "Tachyon-Meta: format tag 'v2'; allowed: v1");
  EXPECT_EQ(refusal("V1 3 00ab00cd00ef0012 7 0 1 2 1"),
            "Tachyon-Meta: format tag 'V1'; allowed: v1");
}

TEST(NatsWire, ParseMetaRefusesAMissingOrExtraField) {
  EXPECT_EQ(refusal("v1"), "Tachyon-Meta: 1 fields; allowed: exactly 8");
  EXPECT_EQ(refusal("v1 3 00ab00cd00ef0012 7 0 1 2"), "Tachyon-Meta: 7 fields; allowed: exactly 8");
  EXPECT_EQ(refusal(std::string(sample_text) + " 9"),
            "Tachyon-Meta: more than 8 fields; allowed: exactly 8");
  EXPECT_EQ(refusal(std::string(sample_text) + " 9 9 9 9 9"),
            "Tachyon-Meta: more than 8 fields; allowed: exactly 8");
}

TEST(NatsWire, ParseMetaRefusesANumberThatDoesNotParseOrOverflowsNamingTheField) {
  EXPECT_EQ(refusal("v1 4294967296 00ab00cd00ef0012 7 0 1 2 1"),
            "Tachyon-Meta: version '4294967296' is not a 32-bit decimal number");
  EXPECT_EQ(refusal("v1 3 10ab00cd00ef00120 7 0 1 2 1"),
            "Tachyon-Meta: fingerprint '10ab00cd00ef00120' is not a 64-bit hex number");
  EXPECT_EQ(refusal("v1 3 00ab00cd00ef0012 -7 0 1 2 1"),
            "Tachyon-Meta: sequence '-7' is not a 64-bit decimal number");
  EXPECT_EQ(refusal("v1 3 00ab00cd00ef0012 7 +0 1 2 1"),
            "Tachyon-Meta: correlation '+0' is not a 64-bit decimal number");
  EXPECT_EQ(refusal("v1 3 00ab00cd00ef0012 7 0 18446744073709551616 2 1"),
            "Tachyon-Meta: causation '18446744073709551616' is not a 64-bit decimal number");
  EXPECT_EQ(refusal("v1 3 00ab00cd00ef0012 7 0 1 0x10 1"),
            "Tachyon-Meta: published_ns '0x10' is not a 64-bit decimal number");
  EXPECT_EQ(refusal("v1 3 00ab00cd00ef0012 7 0 1 2 1e3"),
            "Tachyon-Meta: export_sequence '1e3' is not a 64-bit decimal number");
  // A long field is quoted only in part.
  const auto why = refusal("v1 3 00ab00cd00ef0012 7 0 1 2 " + std::string(1000, 'x'));
  EXPECT_LT(why.size(), 100u) << why;
}

TEST(NatsWire, ParseMetaTakesOnlyTheSpellingFormatMetaWrites) {
  // One spelling per value: two bridges can never disagree about what a header says.
  for (const char* other : {"v1 3 00ab00cd00ef0012 7 0 1 2 1 ",    // a trailing space
                            " v1 3 00ab00cd00ef0012 7 0 1 2 1",    // a leading space
                            "v1  3 00ab00cd00ef0012 7 0 1 2 1",    // two spaces
                            "v1 03 00ab00cd00ef0012 7 0 1 2 1",    // a leading zero
                            "v1 3 ab00cd00ef0012 7 0 1 2 1",       // fewer than 16 hex digits
                            "v1 3 00AB00CD00EF0012 7 0 1 2 1"}) {  // upper-case hex
    const auto why = refusal(other);
    EXPECT_NE(why.find("as format_meta writes it"), std::string::npos) << other << ": " << why;
  }
}

TEST(NatsWire, ParseMetaLeavesItsOutputAloneWhenItRefuses) {
  wire_meta m = sample;
  std::string why;
  EXPECT_FALSE(parse_meta("v1 1 2 3", m, why));
  EXPECT_FALSE(why.empty());
  EXPECT_TRUE(same(m, sample));
}

TEST(NatsWire, FormatOriginIsTheNameASlashAndSixteenHexDigits) {
  EXPECT_EQ(format_origin("orders-eu", 0x1f), "orders-eu/000000000000001f");
  EXPECT_EQ(format_origin("", UINT64_MAX), "/ffffffffffffffff");
}
