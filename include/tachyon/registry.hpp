// tachyon/registry.hpp — the compile-time list of event types a bus carries.
//
//   using Events = tachyon::registry<
//       tachyon::event<Halt, tachyon::priority::critical>,   // with a default priority
//       tachyon::event<UserCreated, tachyon::priority::normal,
//                      tachyon::tags<user, audit>>,          // with tags (subscribe_tagged)
//       tachyon::event<Quote, tachyon::priority::normal,
//                      tachyon::conflate_by<&Quote::instrument>>,  // latest per key only
//       tachyon::event<Order, tachyon::priority::high,
//                      tachyon::journaled>,                  // written to the journal
//       Fill>;                                               // `normal` unless told
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

/// An event option: the tags of a type, any types (usually empty structs) that name a group
/// of events: `subscribe_tagged<audit>(visitor)` subscribes to every registered type tagged
/// `audit`. Resolved at compile time.
template <class... Tags>
struct tags {};

/// An event option: conflation. While an event of this type waits in its lane, a newer one
/// with the same key (`ev.*Member`) replaces it instead of queueing behind it; its handlers see
/// the latest. `Keys`: the most distinct keys the bus tracks for the type (see the README's
/// Conflation for what happens beyond).
template <auto Member, std::size_t Keys = 1024>
struct conflate_by {
  static constexpr auto member = Member;
  static constexpr std::size_t keys = Keys;
};

/// An event option: the type is written to the bus's journal (config::journal), each event as
/// publish() accepts it and its outcome as it settles (tachyon/journal.hpp). A trivially
/// copyable type is written as its bytes; any other needs a tachyon::codec<T> with encode and
/// decode (tachyon/codec.hpp), or the bus does not compile. Not with conflate_by: a journaled
/// event is settled one by one, and conflation replaces events in place.
struct journaled {};

/// A registry entry with a default priority and options (tags<...>, conflate_by<...>):
/// `event<Halt, priority::critical>`.
template <class T, priority P = priority::normal, class... Options>
struct event {
  using type = T;
  static constexpr priority default_priority = P;
  using options = std::tuple<Options...>;
};

namespace detail {

template <class E>
struct entry_of {  // a bare type: normal priority, no options
  using type = E;
  static constexpr priority default_priority = priority::normal;
  using options = std::tuple<>;
};
template <class T, priority P, class... Options>
struct entry_of<event<T, P, Options...>> : event<T, P, Options...> {};

template <class O>
struct is_tags : std::false_type {};
template <class... Tags>
struct is_tags<tags<Tags...>> : std::true_type {};

template <class O>
struct is_journaled_option : std::is_same<O, journaled> {};

template <class O>
struct is_conflate_by : std::false_type {};
template <auto M, std::size_t K>
struct is_conflate_by<conflate_by<M, K>> : std::true_type {};

/// The options of a tuple that satisfy Pred, as a tuple.
template <template <class> class Pred, class Tuple>
struct options_where;
template <template <class> class Pred, class... Os>
struct options_where<Pred, std::tuple<Os...>> {
  using type = decltype(std::tuple_cat(
      std::declval<std::conditional_t<Pred<Os>::value, std::tuple<Os>, std::tuple<>>>()...));
};

template <class Tuple>
struct tags_in {  // no tags<...> option: none
  using type = tags<>;
};
template <class... Tags>
struct tags_in<std::tuple<tags<Tags...>>> {
  using type = tags<Tags...>;
};

template <class Tag, class Tags>
struct has_tag;
template <class Tag, class... Tags>
struct has_tag<Tag, tags<Tags...>> : std::bool_constant<(std::is_same_v<Tag, Tags> || ...)> {};

/// A type's conflate_by option, or void.
template <class Tuple>
struct conflation_in {
  using type = void;
};
template <class C>
struct conflation_in<std::tuple<C>> {
  using type = C;
};

/// Checks an entry's options: known kinds, each at most once.
template <class Options>
struct options_valid;
template <class... Os>
struct options_valid<std::tuple<Os...>> {
  static constexpr bool known =
      ((is_tags<Os>::value || is_conflate_by<Os>::value || is_journaled_option<Os>::value) && ...);
  static constexpr bool once =
      (std::size_t{0} + ... + (is_tags<Os>::value ? 1u : 0u)) <= 1 &&
      (std::size_t{0} + ... + (is_conflate_by<Os>::value ? 1u : 0u)) <= 1 &&
      (std::size_t{0} + ... + (is_journaled_option<Os>::value ? 1u : 0u)) <= 1;
  static constexpr bool journaled_alone =
      !((is_journaled_option<Os>::value || ...) && (is_conflate_by<Os>::value || ...));
};

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

  static_assert((detail::options_valid<typename detail::entry_of<Entries>::options>::known && ...),
                "tachyon::event<T, P, Options...>: an option is none of tachyon::tags<...>, "
                "tachyon::conflate_by<...> and tachyon::journaled");
  static_assert((detail::options_valid<typename detail::entry_of<Entries>::options>::once && ...),
                "tachyon::event<T, P, Options...>: tags<...>, conflate_by<...> and journaled may "
                "each be given once per type");
  static_assert(
      (detail::options_valid<typename detail::entry_of<Entries>::options>::journaled_alone && ...),
      "tachyon::event<T, P, Options...>: journaled and conflate_by<...> cannot be combined: the "
      "journal settles each event it wrote, and conflation replaces waiting events in place");

  /// The priority T is published with unless the call says otherwise.
  template <class T>
  static constexpr priority default_priority_of() noexcept {
    constexpr priority prios[] = {detail::entry_of<Entries>::default_priority...};
    return prios[index_of<T>()];
  }

  /// The I-th entry: its type, default priority and options.
  template <std::size_t I>
  using entry_at = detail::entry_of<std::tuple_element_t<I, std::tuple<Entries...>>>;

  /// T's tags (tags<...>; empty without the option).
  template <class T>
  using tags_of = typename detail::tags_in<typename detail::options_where<
      detail::is_tags, typename entry_at<index_of<T>()>::options>::type>::type;

  /// True if T is registered with Tag among its tags.
  template <class T, class Tag>
  static constexpr bool has_tag = detail::has_tag<Tag, tags_of<T>>::value;

  /// T's conflate_by<...> option, or void.
  template <class T>
  using conflation_of = typename detail::conflation_in<typename detail::options_where<
      detail::is_conflate_by, typename entry_at<index_of<T>()>::options>::type>::type;

  /// True if T is registered with the journaled option.
  template <class T>
  static constexpr bool is_journaled =
      std::tuple_size_v<typename detail::options_where<
          detail::is_journaled_option, typename entry_at<index_of<T>()>::options>::type> != 0;

  /// True if any registered type is journaled.
  static constexpr bool any_journaled =
      ((std::tuple_size_v<typename detail::options_where<
            detail::is_journaled_option, typename detail::entry_of<Entries>::options>::type> !=
        0) ||
       ...);

  /// The I-th registered type.
  template <std::size_t I>
  using type_at = typename entry_at<I>::type;

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
