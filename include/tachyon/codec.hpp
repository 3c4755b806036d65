// tachyon/codec.hpp — how an event type leaves the process and comes back: its declared
// identity (a name and a version, never the compiler's spelling of the type, which differs
// between compilers) and its bytes. The NATS bridge (tachyon/nats/bridge.hpp) uses it on the
// wire; nothing in the bus itself does, so a type without a codec costs nothing.
//
// A type opts in by specializing tachyon::codec:
//
//   template <>
//   struct tachyon::codec<shop::Order> {
//     static constexpr std::string_view name = "shop.Order";  // the same in every process
//     static constexpr std::uint32_t version = 2;
//     static constexpr std::uint32_t oldest = 1;  // optional: the oldest version decode takes
//     static void encode(const shop::Order& o, tachyon::writer& w) { ... }
//     static shop::Order decode(tachyon::reader& r, std::uint32_t version) { ... }
//   };
//
// A trivially copyable type may leave out encode and decode: its payload is then its object
// representation (host byte order and layout, checked on arrival by its size in the type's
// fingerprint), and only its current version decodes.
#pragma once

#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace tachyon {

/// Declared by specialization; see the top of this header. The primary template is left
/// undefined: a type without a codec has none.
template <class T>
struct codec;

/// Bytes that do not decode: too few, too many, a length past the end, a version out of range.
/// The message says which and where.
class codec_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Appends a type's fields to a byte buffer. Integers and floating-point values are written
/// little-endian whatever the host; strings and byte runs with a 32-bit length in front.
class writer {
 public:
  explicit writer(std::vector<std::byte>& out) noexcept : out_(&out) {}

  template <class V>
  requires std::is_arithmetic_v<V> || std::is_enum_v<V>
  void put(V v) {
    if constexpr (std::is_enum_v<V>) {
      put(static_cast<std::underlying_type_t<V>>(v));
    } else if constexpr (std::is_same_v<V, bool>) {
      put(static_cast<std::uint8_t>(v ? 1 : 0));
    } else {
      unsigned char b[sizeof(V)];
      std::memcpy(b, &v, sizeof(V));
      if constexpr (std::endian::native == std::endian::big)
        for (std::size_t i = 0; i < sizeof(V) / 2; ++i) std::swap(b[i], b[sizeof(V) - 1 - i]);
      raw(b, sizeof(V));
    }
  }
  /// A length (32 bits) and the bytes.
  void put(std::string_view s) {
    put(length_of(s.size()));
    raw(s.data(), s.size());
  }
  void put(std::span<const std::byte> s) {
    put(length_of(s.size()));
    raw(s.data(), s.size());
  }
  /// Bytes as they are, without a length: the reader must know how many to take.
  void raw(const void* p, std::size_t n) {
    const auto* b = static_cast<const std::byte*>(p);
    out_->insert(out_->end(), b, b + n);
  }
  std::size_t size() const noexcept { return out_->size(); }

 private:
  static std::uint32_t length_of(std::size_t n) {
    if (n > UINT32_MAX)
      throw codec_error("tachyon::writer: a run of " + std::to_string(n) +
                        " bytes; allowed: up to 4294967295");
    return static_cast<std::uint32_t>(n);
  }
  std::vector<std::byte>* out_;
};

/// Reads what a writer wrote, in the same order. Every read is bounds-checked: past the end it
/// throws codec_error naming the offset and what was wanted, and a length field is checked
/// against what is left before anything is allocated for it.
class reader {
 public:
  explicit reader(std::span<const std::byte> in) noexcept : in_(in) {}

  template <class V>
  requires std::is_arithmetic_v<V> || std::is_enum_v<V> V get() {
    if constexpr (std::is_enum_v<V>) {
      return static_cast<V>(get<std::underlying_type_t<V>>());
    } else if constexpr (std::is_same_v<V, bool>) {
      const auto b = get<std::uint8_t>();
      if (b > 1)
        throw codec_error("tachyon::reader: a bool of " + std::to_string(b) + " at offset " +
                          std::to_string(at_ - 1) + "; allowed: 0 or 1");
      return b == 1;
    } else {
      unsigned char b[sizeof(V)];
      raw(b, sizeof(V));
      if constexpr (std::endian::native == std::endian::big)
        for (std::size_t i = 0; i < sizeof(V) / 2; ++i) std::swap(b[i], b[sizeof(V) - 1 - i]);
      V v;
      std::memcpy(&v, b, sizeof(V));
      return v;
    }
  }
  /// A length-prefixed run, as a view into the input (valid while the input is).
  std::string_view get_view() {
    const auto n = get<std::uint32_t>();
    need(n, "a length-prefixed run");
    const auto* p = reinterpret_cast<const char*>(in_.data() + at_);
    at_ += n;
    return {p, n};
  }
  std::string get_string() { return std::string(get_view()); }
  /// A length-prefixed run of bytes (writer::put(std::span<const std::byte>)), as a view into
  /// the input.
  std::span<const std::byte> get_bytes() {
    const std::string_view v = get_view();
    return {reinterpret_cast<const std::byte*>(v.data()), v.size()};
  }
  /// An element count (a std::uint32_t) that the rest of the input can hold, each element
  /// taking at least `min_bytes_each` (at least 1): checked before anything is allocated for it,
  /// so that a corrupt count is refused instead of reserving gigabytes.
  std::size_t get_count(std::size_t min_bytes_each) {
    const auto n = get<std::uint32_t>();
    const std::size_t each = min_bytes_each == 0 ? 1 : min_bytes_each;
    if (n > remaining() / each)
      throw codec_error("tachyon::reader: a count of " + std::to_string(n) +
                        " elements of at least " + std::to_string(each) + " bytes at offset " +
                        std::to_string(at_ - 4) + ", with " + std::to_string(remaining()) +
                        " bytes left");
    return n;
  }
  void raw(void* p, std::size_t n) {
    need(n, "raw bytes");
    std::memcpy(p, in_.data() + at_, n);
    at_ += n;
  }
  std::size_t remaining() const noexcept { return in_.size() - at_; }
  std::size_t offset() const noexcept { return at_; }

 private:
  void need(std::size_t n, const char* what) const {
    if (n > remaining()) fail(what, n);
  }
  [[noreturn]] void fail(const char* what, std::size_t n) const {
    throw codec_error("tachyon::reader: truncated or malformed: " + std::string(what) + " of " +
                      std::to_string(n) + " bytes at offset " + std::to_string(at_) + ", " +
                      std::to_string(remaining()) + " bytes left");
  }
  std::span<const std::byte> in_;
  std::size_t at_ = 0;
};

/// codec<T> declares a name and a version.
template <class T>
concept declares_codec = requires {
  { codec<T>::name } -> std::convertible_to<std::string_view>;
  { codec<T>::version } -> std::convertible_to<std::uint32_t>;
};

/// codec<T> writes and reads T's fields itself.
template <class T>
concept codec_has_fields = declares_codec<T> && requires(const T& v, writer& w, reader& r) {
  codec<T>::encode(v, w);
  { codec<T>::decode(r, std::uint32_t{}) } -> std::same_as<T>;
};

/// T can cross a process boundary: it has a codec, with encode and decode unless it is
/// trivially copyable.
template <class T>
concept serializable = declares_codec<T> &&(codec_has_fields<T> || std::is_trivially_copyable_v<T>);

namespace detail {

constexpr std::uint64_t fnv1a(std::uint64_t h, std::string_view s) noexcept {
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}
constexpr std::uint64_t fnv1a(std::uint64_t h, std::uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i) {
    h ^= (v >> (8 * i)) & 0xffU;
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace detail

/// codec<T> names an encode or a decode (whatever its signature).
template <class T>
concept codec_names_fields = requires {
  &codec<T>::encode;
}
|| requires { &codec<T>::decode; };

/// What a payload of T is made of: fields a codec wrote, or T's object bytes.
template <serializable T>
inline constexpr bool raw_payload = !codec_has_fields<T>;

/// The oldest version decode accepts: codec<T>::oldest if declared, else the current version.
template <serializable T>
constexpr std::uint32_t oldest_version() noexcept {
  if constexpr (requires { codec<T>::oldest; })
    return static_cast<std::uint32_t>(codec<T>::oldest);
  else
    return static_cast<std::uint32_t>(codec<T>::version);
}

/// Mistakes in a codec's declaration that would otherwise compile: checked wherever a payload of
/// T is fingerprinted, written or read.
template <serializable T>
constexpr bool codec_declaration_checked() noexcept {
  static_assert(oldest_version<T>() <= static_cast<std::uint32_t>(codec<T>::version),
                "tachyon::codec: oldest is newer than version, so no version would decode; "
                "allowed: oldest <= version");
  // Without this, a trivially copyable T whose encode or decode is misspelt (decode without its
  // version, say) would quietly travel as its raw bytes instead.
  static_assert(codec_has_fields<T> || !codec_names_fields<T>,
                "tachyon::codec: encode or decode is declared, but not as static void "
                "encode(const T&, tachyon::writer&) and static T decode(tachyon::reader&, "
                "std::uint32_t version); declare both so, or neither for a raw payload");
  return true;
}

/// A 64-bit check that sender and receiver mean the same thing by (name, version): FNV-1a of
/// the name, the version and, for a raw payload, T's size and alignment, so that two builds
/// whose layouts of a raw type differ refuse each other's bytes instead of misreading them.
template <serializable T>
constexpr std::uint64_t fingerprint(std::uint32_t version = codec<T>::version) noexcept {
  static_assert(codec_declaration_checked<T>());
  std::uint64_t h = detail::fnv1a(0xcbf29ce484222325ULL, std::string_view(codec<T>::name));
  h = detail::fnv1a(h, version);
  if constexpr (raw_payload<T>) {
    h = detail::fnv1a(h, "raw");
    h = detail::fnv1a(h, static_cast<std::uint32_t>(sizeof(T)));
    h = detail::fnv1a(h, static_cast<std::uint32_t>(alignof(T)));
  }
  return h;
}

/// Appends T's payload (its codec's fields, or its bytes) to `out`.
template <serializable T>
void encode(const T& v, std::vector<std::byte>& out) {
  static_assert(codec_declaration_checked<T>());
  if constexpr (raw_payload<T>) {
    const auto* b = reinterpret_cast<const std::byte*>(&v);
    out.insert(out.end(), b, b + sizeof(T));
  } else {
    writer w(out);
    codec<T>::encode(v, w);
  }
}

/// Decodes a payload of T written at `version`. Throws codec_error if the version is outside
/// [oldest_version<T>(), codec<T>::version], if the bytes run short, or if bytes are left over:
/// a payload either decodes whole or is refused, never read as garbage.
template <serializable T>
T decode(std::span<const std::byte> payload, std::uint32_t version) {
  static_assert(codec_declaration_checked<T>());
  constexpr auto current = static_cast<std::uint32_t>(codec<T>::version);
  if (version < oldest_version<T>() || version > current)
    throw codec_error(
        "tachyon::decode: " + std::string(codec<T>::name) + " version " + std::to_string(version) +
        "; allowed: " + std::to_string(oldest_version<T>()) + " to " + std::to_string(current));
  if constexpr (raw_payload<T>) {
    static_assert(oldest_version<T>() == current,
                  "tachyon::codec: a raw payload (no encode/decode) can only be read at its "
                  "current version; declare encode and decode to read older ones");
    if (payload.size() != sizeof(T))
      throw codec_error("tachyon::decode: " + std::string(codec<T>::name) + " payload of " +
                        std::to_string(payload.size()) + " bytes; allowed: exactly " +
                        std::to_string(sizeof(T)));
    alignas(T) unsigned char storage[sizeof(T)];
    std::memcpy(storage, payload.data(), sizeof(T));
    return *std::launder(reinterpret_cast<T*>(storage));
  } else {
    reader r(payload);
    T v = codec<T>::decode(r, version);
    if (r.remaining() != 0)
      throw codec_error("tachyon::decode: " + std::string(codec<T>::name) + " version " +
                        std::to_string(version) + ": " + std::to_string(r.remaining()) +
                        " bytes left over after " + std::to_string(r.offset()));
    return v;
  }
}

}  // namespace tachyon
