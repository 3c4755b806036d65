// tachyon/detail/journal/identity.hpp — how a journaled type names itself in a segment's type
// table, and how a reader checks that a record is of the type it is asked to decode as.
#pragma once

#include <cstdint>
#include <string_view>
#include <type_traits>

#include <tachyon/codec.hpp>
#include <tachyon/detail/journal/format.hpp>
#include <tachyon/detail/type_name.hpp>

namespace tachyon::detail {

/// T can be journaled: it has a codec (encode and decode, or none for a trivially copyable
/// T), or it is trivially copyable without one, and is then written as its bytes under the
/// compiler's name for it at version 0.
template <class T>
concept journal_payload = serializable<T> ||(std::is_trivially_copyable_v<T> && !declares_codec<T>);

template <class T>
struct journal_identity {
  static constexpr bool has_codec = declares_codec<T>;
  static constexpr bool raw = [] {
    if constexpr (serializable<T>)
      return raw_payload<T>;
    else
      return true;
  }();
  static constexpr std::string_view name = [] {
    if constexpr (has_codec)
      return std::string_view(codec<T>::name);
    else
      return type_name<T>();
  }();
  static constexpr std::uint32_t version = [] {
    if constexpr (has_codec)
      return static_cast<std::uint32_t>(codec<T>::version);
    else
      return std::uint32_t{0};
  }();
  static constexpr std::uint32_t oldest = [] {
    if constexpr (serializable<T>)
      return oldest_version<T>();
    else
      return std::uint32_t{0};
  }();
  /// tachyon::fingerprint's rule (name, version, and for raw bytes T's size and alignment).
  static constexpr std::uint64_t fingerprint_of(std::uint32_t v) noexcept {
    if constexpr (serializable<T>) {
      return tachyon::fingerprint<T>(v);
    } else {
      std::uint64_t h = fnv1a(0xcbf29ce484222325ULL, name);
      h = fnv1a(h, v);
      h = fnv1a(h, "raw");
      h = fnv1a(h, static_cast<std::uint32_t>(sizeof(T)));
      return fnv1a(h, static_cast<std::uint32_t>(alignof(T)));
    }
  }
};

}  // namespace tachyon::detail
