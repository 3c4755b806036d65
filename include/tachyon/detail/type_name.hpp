// tachyon/detail/type_name.hpp — a type's name at compile time, without RTTI, for metrics
// labels and error reports. Namespaces are kept ("app::Quote").
#pragma once

#include <cstddef>
#include <string_view>

namespace tachyon::detail {

/// __PRETTY_FUNCTION__ of an instantiation: "... [with T = <name>; std::string_view = ...]"
/// (GCC) or "... [T = <name>]" (Clang). Only <name> differs between instantiations.
template <class T>
constexpr std::string_view pretty_function() noexcept {
#if defined(__clang__) || defined(__GNUC__)
  return __PRETTY_FUNCTION__;
#else
  return {};
#endif
}

template <class T>
constexpr std::string_view type_name() noexcept {
  // The text around the name is the same for every T: measured on a known type, it is cut
  // off by length, so a ';' or ']' inside the name (Tagged<']'>) cannot end it early.
  constexpr std::string_view probe = pretty_function<int>();
  constexpr std::size_t marker = probe.find("T = int");
  if constexpr (marker == std::string_view::npos) {
    return "unknown";
  } else {
    constexpr std::size_t prefix = marker + 4;
    constexpr std::size_t suffix = probe.size() - prefix - 3;
    constexpr std::string_view f = pretty_function<T>();
    return f.substr(prefix, f.size() - prefix - suffix);
  }
}

}  // namespace tachyon::detail
