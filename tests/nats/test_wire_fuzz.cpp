// tachyon::nats::parse_meta fed random texts and mutations of valid Tachyon-Meta values (digits
// swapped for letters, fields added and removed, huge numbers, a leading '+' or '-', spaces,
// control bytes, empty). Every call either accepts, and then the text is exactly what
// format_meta writes for what it read, or refuses with a non-empty reason and leaves its output
// alone. Valid texts round-trip exactly.
//
// Deterministic (fixed seeds, our own generator) and bounded: 100,000 texts.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include <tachyon/nats/wire.hpp>

namespace {

using tachyon::nats::format_meta;
using tachyon::nats::parse_meta;
using tachyon::nats::wire_meta;

/// splitmix64: the same sequence on every platform.
struct rng {
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
  bool one_in(std::size_t n) { return below(n) == 0; }
};

/// Small, large and extreme values, so that every width of every field is written.
std::uint64_t some_number(rng& r) {
  switch (r.below(5)) {
    case 0:
      return 0;
    case 1:
      return UINT64_MAX;
    case 2:
      return r.below(100);
    case 3:
      return r.next() >> r.below(64);
    default:
      return r.next();
  }
}

wire_meta random_meta(rng& r) {
  return {.version = static_cast<std::uint32_t>(some_number(r)),
          .fingerprint = some_number(r),
          .sequence = some_number(r),
          .correlation = some_number(r),
          .causation = some_number(r),
          .published_ns = some_number(r),
          .export_sequence = some_number(r)};
}

bool same(const wire_meta& a, const wire_meta& b) {
  return a.version == b.version && a.fingerprint == b.fingerprint && a.sequence == b.sequence &&
         a.correlation == b.correlation && a.causation == b.causation &&
         a.published_ns == b.published_ns && a.export_sequence == b.export_sequence;
}

/// [from, to) of the k-th space-separated field of a canonical text, or the end.
std::pair<std::size_t, std::size_t> field(const std::string& t, std::size_t k) {
  std::size_t from = 0;
  for (; k > 0; --k) {
    const auto sp = t.find(' ', from);
    if (sp == std::string::npos) return {t.size(), t.size()};
    from = sp + 1;
  }
  const auto to = t.find(' ', from);
  return {from, to == std::string::npos ? t.size() : to};
}

std::string mutate(rng& r, std::string t) {
  static constexpr std::string_view junk[] = {"+",
                                              "-",
                                              " ",
                                              "  ",
                                              "\t",
                                              "\r",
                                              "\n",
                                              std::string_view("\0", 1),
                                              "0",
                                              "x",
                                              "0x",
                                              "v1",
                                              "18446744073709551616",
                                              "99999999999999999999999999999",
                                              "4294967296",
                                              "ffffffffffffffff0",
                                              "\xff",
                                              "\xc3\xa9",
                                              "1e3",
                                              ".5",
                                              "-0"};
  const std::size_t rounds = 1 + r.below(3);
  for (std::size_t k = 0; k < rounds; ++k) {
    const auto at = t.empty() ? 0 : r.below(t.size() + 1);
    switch (r.below(9)) {
      case 0:  // a digit becomes a letter (or a hex letter becomes a digit)
        if (!t.empty()) {
          const auto i = r.below(t.size());
          t[i] = "gzGZxafAF0"[r.below(10)];
        }
        break;
      case 1:  // insert something odd
        t.insert(at, junk[r.below(std::size(junk))]);
        break;
      case 2:  // delete a run
        if (!t.empty()) t.erase(at == t.size() ? at - 1 : at, 1 + r.below(4));
        break;
      case 3: {  // remove a whole field
        const auto [from, to] = field(t, r.below(9));
        t.erase(from, to - from + (to < t.size() ? 1 : 0));
        break;
      }
      case 4: {  // add a field
        const auto [from, to] = field(t, r.below(9));
        (void)to;
        t.insert(from, std::string(junk[r.below(std::size(junk))]) + " ");
        break;
      }
      case 5: {  // replace a field with a huge or signed number
        const auto [from, to] = field(t, r.below(8));
        t.replace(from, to - from,
                  r.one_in(2) ? std::string(1 + r.below(40), static_cast<char>('1' + r.below(9)))
                              : std::string(r.one_in(2) ? "+" : "-") + t.substr(from, to - from));
        break;
      }
      case 6:  // truncate
        t.resize(r.below(t.size() + 1));
        break;
      case 7:  // empty
        if (r.one_in(8)) t.clear();
        break;
      default:  // any byte anywhere
        if (!t.empty()) t[r.below(t.size())] = static_cast<char>(r.next() & 0xFF);
        break;
    }
  }
  return t;
}

struct tally {
  std::size_t accepted = 0, refused = 0, wrong = 0;
};

void probe(const std::string& text, tally& t) {
  const wire_meta untouched{.version = 77, .fingerprint = 77, .sequence = 77};
  wire_meta m = untouched;
  std::string why;
  if (parse_meta(text, m, why)) {
    ++t.accepted;
    // Accepted means canonical: the text is exactly what format_meta writes for what was read.
    if (format_meta(m) != text && t.wrong++ < 5)
      ADD_FAILURE() << "accepted a text format_meta would not write: '" << text << "'";
  } else {
    ++t.refused;
    if ((why.empty() || !same(m, untouched)) && t.wrong++ < 5)
      ADD_FAILURE() << "refused '" << text << "' with reason '" << why << "' or touched the output";
  }
}

}  // namespace

TEST(NatsWireFuzz, ValidTextsRoundTripExactly) {
  rng r{11};
  for (int i = 0; i < 20000; ++i) {
    const wire_meta sent = random_meta(r);
    const std::string text = format_meta(sent);
    wire_meta got;
    std::string why;
    ASSERT_TRUE(parse_meta(text, got, why)) << text << ": " << why;
    ASSERT_TRUE(same(got, sent)) << text;
    ASSERT_EQ(format_meta(got), text);
  }
}

TEST(NatsWireFuzz, MutatedTextsAreAcceptedOnlyWhenCanonicalOrRefusedWithAReason) {
  rng r{12};
  tally t;
  for (int i = 0; i < 60000; ++i) probe(mutate(r, format_meta(random_meta(r))), t);
  EXPECT_EQ(t.wrong, 0u);
  // Some mutations leave a valid text (a digit changed into another number's digit).
  EXPECT_GT(t.accepted, 100u);
  EXPECT_GT(t.refused, 40000u);
  std::printf("mutated: %zu accepted, %zu refused\n", t.accepted, t.refused);
}

TEST(NatsWireFuzz, RandomTextsAreRefusedWithAReasonOrAcceptedOnlyWhenCanonical) {
  rng r{13};
  tally t;
  static constexpr char alphabet[] = "v1 0123456789abcdefx+- \t";
  for (int i = 0; i < 20000; ++i) {
    std::string text(r.below(r.one_in(16) ? 400 : 80), '\0');
    const bool bytes = r.one_in(4);
    for (auto& c : text)
      c = bytes ? static_cast<char>(r.next() & 0xFF) : alphabet[r.below(sizeof alphabet - 1)];
    if (r.one_in(2)) text.insert(0, "v1 ");
    probe(text, t);
  }
  EXPECT_EQ(t.wrong, 0u);
  std::printf("random: %zu accepted, %zu refused\n", t.accepted, t.refused);
}
