// tachyon::decode<T> fed random bytes and mutations of valid payloads (bit flips, truncations,
// extensions, insertions, deletions, corrupted length and count fields) for a type with fields
// and an older version, one with nested lengths, and a raw one. Every call either returns a value
// or throws codec_error, nothing else; and a value it returns encodes back to exactly the bytes
// it came from (the encodings here have one spelling per value), so nothing was misread.
//
// Deterministic (fixed seeds, our own generator, no std distributions whose output differs
// between standard libraries) and bounded: 200,000 inputs, a few seconds under ASan.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
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

/// splitmix64: the same sequence on every platform.
struct rng {
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// In [0, n); n > 0.
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
  bool one_in(std::size_t n) { return below(n) == 0; }
  std::byte byte() { return static_cast<std::byte>(next() & 0xFF); }
};

std::string random_string(rng& r, std::size_t max) {
  std::string s(r.below(max + 1), '\0');
  for (auto& c : s) c = static_cast<char>(r.next() & 0xFF);
  return s;
}

order random_order(rng& r) {
  order o;
  o.id = r.next();
  o.qty = static_cast<std::int32_t>(r.next());
  o.price = static_cast<double>(r.next() % 1000000) / 100.0;
  o.s = r.one_in(2) ? side::buy : side::sell;
  o.urgent = r.one_in(2);
  o.note = random_string(r, 12);
  return o;
}

basket random_basket(rng& r) {
  basket b;
  b.owner = random_string(r, 8);
  b.lines.resize(r.below(4));
  for (auto& l : b.lines) {
    l.sku = static_cast<std::uint32_t>(r.next());
    l.label = random_string(r, 6);
    l.qty = static_cast<std::int64_t>(r.next());
  }
  b.tags.resize(r.below(3));
  for (auto& g : b.tags) {
    g.resize(r.below(3));
    for (auto& t : g) t = random_string(r, 4);
  }
  return b;
}

/// One to three mutations of `in`.
bytes mutate(rng& r, bytes in) {
  static constexpr std::uint32_t interesting[] = {
      0, 1, 2, 3, 4, 0x7F, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF};
  const std::size_t rounds = 1 + r.below(3);
  for (std::size_t k = 0; k < rounds; ++k) {
    switch (r.below(8)) {
      case 0:  // flip one bit
        if (!in.empty()) in[r.below(in.size())] ^= static_cast<std::byte>(1u << r.below(8));
        break;
      case 1:  // set one byte
        if (!in.empty()) in[r.below(in.size())] = r.byte();
        break;
      case 2:  // truncate
        in.resize(r.below(in.size() + 1));
        break;
      case 3:  // extend
        for (std::size_t n = 1 + r.below(8); n > 0; --n) in.push_back(r.byte());
        break;
      case 4: {  // insert in the middle
        const auto at = static_cast<std::ptrdiff_t>(r.below(in.size() + 1));
        bytes extra(1 + r.below(6));
        for (auto& b : extra) b = r.byte();
        in.insert(in.begin() + at, extra.begin(), extra.end());
        break;
      }
      case 5: {  // delete a run
        if (in.empty()) break;
        const auto at = r.below(in.size());
        const auto n = 1 + r.below(in.size() - at);
        in.erase(in.begin() + static_cast<std::ptrdiff_t>(at),
                 in.begin() + static_cast<std::ptrdiff_t>(at + n));
        break;
      }
      default: {  // overwrite four bytes with a length-like value: where the lengths live
        if (in.size() < 4) break;
        const auto at = r.below(in.size() - 3);
        std::uint32_t v = interesting[r.below(std::size(interesting))];
        if (r.one_in(4)) v = static_cast<std::uint32_t>(in.size() - at + r.below(3) - 1);
        for (int i = 0; i < 4; ++i)
          in[at + static_cast<std::size_t>(i)] = static_cast<std::byte>(v >> (8 * i));
        break;
      }
    }
  }
  return in;
}

std::string hex(const bytes& b) {
  std::string s;
  char buf[4];
  for (auto x : b) {
    std::snprintf(buf, sizeof buf, "%02x", static_cast<unsigned>(x));
    s += buf;
  }
  return s;
}

struct tally {
  std::size_t decoded = 0, refused = 0, wrong = 0;
};

/// Decodes `in` at `version`; a value must re-encode to `in` (plus `appended`, what the current
/// version writes that `version` did not), a refusal must be a codec_error.
template <class T>
void probe(const bytes& in, std::uint32_t version, tally& t, const bytes& appended = {}) {
  try {
    const T v = tachyon::decode<T>(in, version);
    bytes again;
    tachyon::encode(v, again);
    bytes expected = in;
    expected.insert(expected.end(), appended.begin(), appended.end());
    if (again != expected && t.wrong++ < 5)
      ADD_FAILURE() << "decoded, but re-encodes differently: version " << version << " in "
                    << hex(in) << " out " << hex(again);
    ++t.decoded;
  } catch (const tachyon::codec_error& e) {
    if (std::string_view(e.what()).empty() && t.wrong++ < 5) ADD_FAILURE() << "empty message";
    ++t.refused;
  } catch (const std::exception& e) {
    if (t.wrong++ < 5)
      ADD_FAILURE() << "not a codec_error: " << e.what() << " for version " << version << " in "
                    << hex(in);
  }
}

std::uint32_t some_version(rng& r, std::uint32_t current) {
  switch (r.below(8)) {
    case 0:
      return 0;
    case 1:
      return current + 1;
    case 2:
      return static_cast<std::uint32_t>(r.next());
    case 3:
      return current > 1 ? current - 1 : current;
    default:
      return current;
  }
}

}  // namespace

TEST(CodecFuzz, MutatedOrdersDecodeWholeOrThrowCodecError) {
  rng r{1};
  tally t;
  const bytes no_note(4, std::byte{0});  // version 1 has no note; version 2 writes an empty one
  for (int i = 0; i < 60000; ++i) {
    bytes valid;
    tachyon::encode(random_order(r), valid);
    const bytes in = r.one_in(16) ? valid : mutate(r, valid);
    const auto version = some_version(r, 2);
    probe<order>(in, version, t, version == 1 ? no_note : bytes{});
  }
  EXPECT_EQ(t.wrong, 0u);
  // Both outcomes were exercised, many times.
  EXPECT_GT(t.decoded, 5000u);
  EXPECT_GT(t.refused, 20000u);
  std::printf("orders: %zu decoded, %zu refused\n", t.decoded, t.refused);
}

TEST(CodecFuzz, MutatedBasketsWithNestedLengthsDecodeWholeOrThrowCodecError) {
  rng r{2};
  tally t;
  for (int i = 0; i < 80000; ++i) {
    bytes valid;
    tachyon::encode(random_basket(r), valid);
    const bytes in = r.one_in(16) ? valid : mutate(r, valid);
    probe<basket>(in, some_version(r, 1), t);
  }
  EXPECT_EQ(t.wrong, 0u);
  EXPECT_GT(t.decoded, 5000u);
  EXPECT_GT(t.refused, 20000u);
  std::printf("baskets: %zu decoded, %zu refused\n", t.decoded, t.refused);
}

TEST(CodecFuzz, RandomBytesDecodeWholeOrThrowCodecError) {
  rng r{3};
  tally orders, baskets, ticks;
  for (int i = 0; i < 60000; ++i) {
    bytes in(r.below(r.one_in(8) ? 256 : 40));
    for (auto& b : in) b = r.byte();
    // Small lengths and counts now and then, so that some random inputs get past the first field.
    if (in.size() >= 4 && r.one_in(2)) in[1] = in[2] = in[3] = std::byte{0};
    switch (i % 3) {
      case 0: {
        const auto version = some_version(r, 2);
        probe<order>(in, version, orders, bytes(version == 1 ? 4 : 0, std::byte{0}));
        break;
      }
      case 1:
        probe<basket>(in, some_version(r, 1), baskets);
        break;
      default: {
        if (r.one_in(2)) in.resize(sizeof(tick));
        probe<tick>(in, some_version(r, 1), ticks);
        break;
      }
    }
  }
  EXPECT_EQ(orders.wrong + baskets.wrong + ticks.wrong, 0u);
  // Random bytes rarely make a whole order or basket; a tick is any 8 bytes.
  EXPECT_GT(ticks.decoded, 1000u);
  std::printf("random: orders %zu/%zu, baskets %zu/%zu, ticks %zu/%zu decoded/refused\n",
              orders.decoded, orders.refused, baskets.decoded, baskets.refused, ticks.decoded,
              ticks.refused);
}
