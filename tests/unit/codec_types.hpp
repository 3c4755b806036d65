// Event types with codecs, shared by the codec's unit tests and its fuzz test: one with fields
// and an older version, one raw (trivially copyable, no encode/decode), and one with nested
// lengths (a string, a vector of structs each with a string, a vector of vectors of strings).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <tachyon/codec.hpp>

namespace codec_test {

enum class side : std::uint8_t { buy = 1, sell = 2 };

/// Version 2 added `note`; version 1 payloads decode with an empty note.
struct order {
  std::uint64_t id = 0;
  std::int32_t qty = 0;
  double price = 0;
  side s = side::buy;
  bool urgent = false;
  std::string note;
  bool operator==(const order&) const = default;
};

/// Raw: its payload is its object bytes.
struct tick {
  std::uint32_t instrument = 0;
  float price = 0;
  bool operator==(const tick&) const = default;
};

struct line {
  std::uint32_t sku = 0;
  std::string label;
  std::int64_t qty = 0;
  bool operator==(const line&) const = default;
};

struct basket {
  std::string owner;
  std::vector<line> lines;
  std::vector<std::vector<std::string>> tags;
  bool operator==(const basket&) const = default;
};

}  // namespace codec_test

template <>
struct tachyon::codec<codec_test::order> {
  static constexpr std::string_view name = "test.Order";
  static constexpr std::uint32_t version = 2;
  static constexpr std::uint32_t oldest = 1;
  static void encode(const codec_test::order& o, tachyon::writer& w) {
    w.put(o.id);
    w.put(o.qty);
    w.put(o.price);
    w.put(o.s);
    w.put(o.urgent);
    w.put(std::string_view(o.note));
  }
  static codec_test::order decode(tachyon::reader& r, std::uint32_t version) {
    codec_test::order o;
    o.id = r.get<std::uint64_t>();
    o.qty = r.get<std::int32_t>();
    o.price = r.get<double>();
    o.s = r.get<codec_test::side>();
    o.urgent = r.get<bool>();
    if (version >= 2) o.note = r.get_string();
    return o;
  }
};

template <>
struct tachyon::codec<codec_test::tick> {
  static constexpr std::string_view name = "test.Tick";
  static constexpr std::uint32_t version = 1;
};

template <>
struct tachyon::codec<codec_test::basket> {
  static constexpr std::string_view name = "test.Basket";
  static constexpr std::uint32_t version = 1;
  static void encode(const codec_test::basket& b, tachyon::writer& w) {
    w.put(std::string_view(b.owner));
    w.put(static_cast<std::uint32_t>(b.lines.size()));
    for (const auto& l : b.lines) {
      w.put(l.sku);
      w.put(std::string_view(l.label));
      w.put(l.qty);
    }
    w.put(static_cast<std::uint32_t>(b.tags.size()));
    for (const auto& group : b.tags) {
      w.put(static_cast<std::uint32_t>(group.size()));
      for (const auto& t : group) w.put(std::string_view(t));
    }
  }
  static codec_test::basket decode(tachyon::reader& r, std::uint32_t) {
    codec_test::basket b;
    b.owner = r.get_string();
    // A line is at least 4 + 4 + 8 bytes; a tag group at least its count; a tag its length.
    b.lines.resize(r.get_count(16));
    for (auto& l : b.lines) {
      l.sku = r.get<std::uint32_t>();
      l.label = r.get_string();
      l.qty = r.get<std::int64_t>();
    }
    b.tags.resize(r.get_count(4));
    for (auto& group : b.tags) {
      group.resize(r.get_count(4));
      for (auto& t : group) t = r.get_string();
    }
    return b;
  }
};
