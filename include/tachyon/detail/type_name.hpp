// tachyon/detail/type_name.hpp — a type's name at compile time, without RTTI, for metrics
// labels and error reports. Namespaces are kept ("app::Quote").
#pragma once

#include <string_view>

namespace tachyon::detail {

template <class T>
constexpr std::string_view type_name() noexcept {
#if defined(__clang__) || defined(__GNUC__)
  std::string_view f = __PRETTY_FUNCTION__;
  const auto start = f.find("T = ");
  if (start == std::string_view::npos) return "unknown";
  f.remove_prefix(start + 4);
  const auto end = f.find_first_of(";]");
  return f.substr(0, end);
#else
  return "unknown";
#endif
}

}  // namespace tachyon::detail
