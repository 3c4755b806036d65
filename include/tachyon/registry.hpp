// tachyon/registry.hpp — the compile-time list of event types a bus carries.
//
//   using Events = tachyon::registry<
//       tachyon::event<Halt, tachyon::priority::critical>,   // with a default priority
//       Quote>;                                              // `normal` unless told
//
// Each type gets a dense index (its position in the list) at compile time, so dispatch is an
// array lookup: no RTTI, no hashing. Publishing or subscribing a type that is not listed fails
// to compile with a static_assert that names the problem.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace tachyon {

/// Four lanes, most urgent first. A worker always drains the most urgent non-empty lane.
enum class priority : std::uint8_t { critical = 0, high = 1, normal = 2, low = 3 };

inline constexpr std::size_t priority_count = 4;

/// "critical", "high", "normal" or "low".
constexpr std::string_view to_string(priority p) noexcept {
  switch (p) {
    case priority::critical:
      return "critical";
    case priority::high:
      return "high";
    case priority::normal:
      return "normal";
    case priority::low:
      return "low";
  }
  return "unknown";
}

/// A registry entry with a default priority: `event<Halt, priority::critical>`.
template <class T, priority P = priority::normal>
struct event {
  using type = T;
  static constexpr priority default_priority = P;
};

namespace detail {

template <class E>
struct entry_of {  // a bare type: normal priority
  using type = E;
  static constexpr priority default_priority = priority::normal;
};
template <class T, priority P>
struct entry_of<event<T, P>> : event<T, P> {};

template <class T, class... Ts>
constexpr std::size_t count_of() noexcept {
  return (std::size_t{0} + ... + (std::is_same_v<T, Ts> ? 1u : 0u));
}

template <class T, class... Ts>
constexpr std::size_t index_of() noexcept {
  constexpr bool matches[] = {std::is_same_v<T, Ts>..., false};
  for (std::size_t i = 0; i < sizeof...(Ts); ++i)
    if (matches[i]) return i;
  return sizeof...(Ts);
}

template <class T>
inline constexpr bool valid_event_type =
    std::is_object_v<T> && !std::is_const_v<T> && !std::is_volatile_v<T> && !std::is_array_v<T> &&
    std::is_move_constructible_v<T> && std::is_nothrow_destructible_v<T>;

}  // namespace detail

template <class... Entries>
struct registry {
  static constexpr std::size_t size = sizeof...(Entries);

  static_assert(size > 0, "tachyon::registry<> must list at least one event type");
  static_assert(size <= 65535, "tachyon::registry<> holds at most 65535 event types");
  static_assert((detail::valid_event_type<typename detail::entry_of<Entries>::type> && ...),
                "tachyon::registry<>: every event type must be a non-const, non-array object type "
                "that is move-constructible and nothrow-destructible");
  static_assert(((detail::count_of<typename detail::entry_of<Entries>::type,
                                   typename detail::entry_of<Entries>::type...>() == 1) &&
                 ...),
                "tachyon::registry<>: an event type is listed twice");

  /// True if T is one of the registered event types.
  template <class T>
  static constexpr bool contains =
      detail::count_of<T, typename detail::entry_of<Entries>::type...>() == 1;

  /// T's dense index, 0 .. size-1. Names the problem when T is not registered.
  template <class T>
  static constexpr std::size_t index_of() noexcept {
    static_assert(contains<T>,
                  "tachyon: this event type is not in the bus's registry; add it to "
                  "tachyon::registry<...> (publish and subscribe take only registered types)");
    return detail::index_of<T, typename detail::entry_of<Entries>::type...>();
  }

  /// The priority T is published with unless the call says otherwise.
  template <class T>
  static constexpr priority default_priority_of() noexcept {
    constexpr priority prios[] = {detail::entry_of<Entries>::default_priority...};
    return prios[index_of<T>()];
  }

  /// The I-th registered type.
  template <std::size_t I>
  using type_at = typename detail::entry_of<std::tuple_element_t<I, std::tuple<Entries...>>>::type;

  /// Calls f.template operator()<T, I>() for each registered type, in order.
  template <class F>
  static constexpr void for_each_type(F&& f) {
    for_each_impl(f, std::make_index_sequence<size>{});
  }

 private:
  template <class F, std::size_t... I>
  static constexpr void for_each_impl(F& f, std::index_sequence<I...>) {
    (f.template operator()<typename detail::entry_of<Entries>::type, I>(), ...);
  }
};

}  // namespace tachyon
