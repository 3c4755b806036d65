// tachyon/detail/lane/envelope.hpp — the fixed slot an event travels in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

#include <tachyon/detail/alloc.hpp>
#include <tachyon/meta.hpp>

namespace tachyon::detail {

/// Bytes of payload an envelope carries inline: 24, so that a 24-byte event (an instrument id
/// and two prices) travels without allocating beside a 40-byte header.
inline constexpr std::size_t inline_payload_size = 24;

/// One cache line: a 40-byte header and 24 bytes of payload. One line, not two, because the
/// line is the unit a consumer pulls across cores: a 128-byte envelope would double the
/// transfers per event of a one-producer, one-worker stream. The header has 3 bytes to spare
/// (after `flags`); a per-event deadline does not fit there and travels in the payload's box.
/// Aligned so that no envelope straddles two lines in moodycamel's blocks. Trivially copyable, so
/// moodycamel's moves are plain copies; the payload's ownership (a boxed event) is tracked by
/// tachyon, not by C++. The header is the tachyon::meta that handlers receive, so dispatch hands it
/// over in place instead of copying it out. Whether the payload is boxed is a property of the type
/// (stored_inline<T>), known wherever the payload is touched, so it is not stored.
struct alignas(64) envelope {
  meta header;  // sequence, correlation, causation, publish_ticks, type, lane, attempt, flags
  alignas(8) std::byte payload[inline_payload_size];
};
static_assert(sizeof(meta) == 40, "meta is the envelope's 40-byte header");
static_assert(offsetof(envelope, payload) == sizeof(meta), "the payload follows the header");
static_assert(sizeof(envelope) == 64);
static_assert(std::is_trivially_copyable_v<envelope>);

/// Stack room for envelopes that are about to be stamped and filled: leaves them uninitialised,
/// where `envelope x;` would zero the header's fields (meta's default member initialisers)
/// only for stamp() to overwrite them.
template <std::size_t N>
struct unstamped {
  unstamped() noexcept {}
  union {
    envelope at[N];
  };
};
template <>
struct unstamped<0> {  // none: the caller builds its envelope elsewhere
  envelope* at = nullptr;
};

/// Events that fit stay inline (no allocation); the rest are boxed.
template <class T>
inline constexpr bool stored_inline = std::is_trivially_copyable_v<T> &&
                                      sizeof(T) <= inline_payload_size && alignof(T) <= 8;

/// Moves or copies `ev` into the envelope; boxes it when it does not fit (allocates).
template <class T, class U>
void store_payload(envelope& env, U&& ev) {
  if constexpr (stored_inline<T>) {
    ::new (static_cast<void*>(env.payload)) T(std::forward<U>(ev));
  } else {
    void* mem = allocate(sizeof(T), alignof(T));
    T* boxed;
    try {
      boxed = ::new (mem) T(std::forward<U>(ev));
    } catch (...) {
      deallocate(mem);
      throw;
    }
    ::new (static_cast<void*>(env.payload)) T*(boxed);
  }
}

template <class T>
const T& payload_of(const envelope& env) noexcept {
  if constexpr (stored_inline<T>) {
    return *std::launder(reinterpret_cast<const T*>(env.payload));
  } else {
    return **std::launder(reinterpret_cast<T* const*>(env.payload));
  }
}

/// Destroys a boxed payload; inline ones are trivially destructible.
template <class T>
void release_payload(envelope& env) noexcept {
  if constexpr (!stored_inline<T>) {
    T* boxed = *std::launder(reinterpret_cast<T**>(env.payload));
    boxed->~T();
    deallocate(boxed);
  }
}

}  // namespace tachyon::detail
