// tachyon-journal's text: JSON, ISO 8601 times, hex, and the numbers its options take. A
// library of its own so that tachyon_journal_tests can check the edge cases in process.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace tachyon::journal_tool {

/// Appends `s` as a JSON string, quotes included: `"` and `\` escaped, control characters as
/// \u00XX, and each byte that is not part of valid UTF-8 as U+FFFD. A file name may hold any
/// bytes; JSON text must be Unicode, so the replacement keeps every line parseable.
void append_json_string(std::string& out, std::string_view s);

/// Writes JSON compactly into a string: objects and arrays nest by begin/end calls; a key is
/// given for members of an object and left empty for elements of an array.
class json {
 public:
  explicit json(std::string& out) noexcept : out_(out) {}
  json& begin_object(std::string_view key = {});
  json& end_object();
  json& begin_array(std::string_view key = {});
  json& end_array();
  json& string(std::string_view key, std::string_view value);
  json& null(std::string_view key);
  template <std::integral T>
  json& number(std::string_view key, T value) {
    item(key);
    out_ += std::to_string(value);
    return *this;
  }

 private:
  void item(std::string_view key);
  std::string& out_;
  bool first_ = true;
};

/// `ns` since the Unix epoch as ISO 8601 UTC with nine fraction digits:
/// 2024-05-01T12:00:00.000000001Z.
std::string iso_time(std::int64_t ns);

/// A time as the options take it: ns since the Unix epoch (digits only), or ISO 8601 UTC,
/// YYYY-MM-DDTHH:MM:SS, optionally .F (1 to 9 digits), then Z. Nothing else: no local times,
/// no offsets, so that a time means the same on every machine. Empty if `s` is neither.
std::optional<std::int64_t> parse_time(std::string_view s);

/// A 64-bit unsigned number: decimal, or hex after 0x. Empty if `s` is neither, or too large.
std::optional<std::uint64_t> parse_number(std::string_view s);

/// 0x and 16 hex digits: how the tool prints a run id, and what --run takes back.
std::string run_id_text(std::uint64_t id);

/// Lowercase hex, two digits a byte.
std::string hex(std::span<const std::byte> bytes);

}  // namespace tachyon::journal_tool
