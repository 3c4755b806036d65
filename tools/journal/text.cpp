#include "text.hpp"

#include <charconv>
#include <chrono>
#include <cstdio>

namespace tachyon::journal_tool {

namespace {

/// The length of the valid UTF-8 sequence at the start of `s` (1 to 4), or 0 if there is
/// none: RFC 3629's table, which refuses overlong forms, surrogates and values past U+10FFFF.
std::size_t utf8_sequence(std::string_view s) {
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c = b(0);
  std::size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (s.size() < n || b(1) < lo || b(1) > hi) return 0;
  for (std::size_t i = 2; i < n; ++i)
    if (b(i) < 0x80 || b(i) > 0xBF) return 0;
  return n;
}

constexpr char hex_digits[] = "0123456789abcdef";

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  while (!s.empty()) {
    const auto c = static_cast<unsigned char>(s[0]);
    std::size_t n = 1;
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7F) {
      out += "\\u00";
      out += hex_digits[c >> 4];
      out += hex_digits[c & 15];
    } else if ((n = utf8_sequence(s)) != 0) {
      out.append(s.substr(0, n));
    } else {
      out += "\\ufffd";
      n = 1;
    }
    s.remove_prefix(n);
  }
  out += '"';
}

void json::item(std::string_view key) {
  if (!first_) out_ += ',';
  first_ = false;
  if (!key.empty()) {
    append_json_string(out_, key);
    out_ += ':';
  }
}

json& json::begin_object(std::string_view key) {
  item(key);
  out_ += '{';
  first_ = true;
  return *this;
}

json& json::end_object() {
  out_ += '}';
  first_ = false;
  return *this;
}

json& json::begin_array(std::string_view key) {
  item(key);
  out_ += '[';
  first_ = true;
  return *this;
}

json& json::end_array() {
  out_ += ']';
  first_ = false;
  return *this;
}

json& json::string(std::string_view key, std::string_view value) {
  item(key);
  append_json_string(out_, value);
  return *this;
}

json& json::null(std::string_view key) {
  item(key);
  out_ += "null";
  return *this;
}

std::string iso_time(std::int64_t ns) {
  using namespace std::chrono;
  const sys_time<nanoseconds> t{nanoseconds(ns)};
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss<nanoseconds> hms{t - day};
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%09lldZ",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<int>(hms.hours().count()),
                static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()),
                static_cast<long long>(hms.subseconds().count()));
  return buf;
}

std::optional<std::int64_t> parse_time(std::string_view s) {
  using namespace std::chrono;
  if (!s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos) {
    const auto n = parse_number(s);
    if (!n || *n > static_cast<std::uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<std::int64_t>(*n);
  }
  // YYYY-MM-DDTHH:MM:SS: each field exactly its digits, at its place.
  const auto field = [&](std::size_t at, std::size_t digits) -> std::optional<int> {
    if (s.size() < at + digits) return std::nullopt;
    int v = 0;
    for (std::size_t i = at; i < at + digits; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  const auto y = field(0, 4), mo = field(5, 2), d = field(8, 2);
  const auto h = field(11, 2), mi = field(14, 2), sec = field(17, 2);
  if (!y || !mo || !d || !h || !mi || !sec || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
      s[13] != ':' || s[16] != ':' || *h > 23 || *mi > 59 || *sec > 59)
    return std::nullopt;
  const year_month_day ymd{year(*y), month(static_cast<unsigned>(*mo)),
                           day(static_cast<unsigned>(*d))};
  if (!ymd.ok()) return std::nullopt;
  std::int64_t fraction = 0;
  std::size_t at = 19;
  if (at < s.size() && s[at] == '.') {
    std::size_t digits = 0;
    for (++at; at < s.size() && s[at] >= '0' && s[at] <= '9'; ++at, ++digits)
      if (digits < 9) fraction = fraction * 10 + (s[at] - '0');
    if (digits == 0 || digits > 9) return std::nullopt;
    for (; digits < 9; ++digits) fraction *= 10;
  }
  if (at + 1 != s.size() || s[at] != 'Z') return std::nullopt;
  const std::int64_t secs =
      (sys_days(ymd) + hours(*h) + minutes(*mi) + seconds(*sec)).time_since_epoch().count();
  // ns since 1970 in 64 bits: from 1677-09-21 to 2262-04-11.
  constexpr std::int64_t limit = INT64_MAX / 1'000'000'000 - 1;
  if (secs < -limit || secs > limit) return std::nullopt;
  return secs * 1'000'000'000 + fraction;
}

std::optional<std::uint64_t> parse_number(std::string_view s) {
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s.remove_prefix(2);
    base = 16;
  }
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::string run_id_text(std::uint64_t id) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%016llx", static_cast<unsigned long long>(id));
  return buf;
}

std::string hex(std::span<const std::byte> bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const std::byte b : bytes) {
    out += hex_digits[static_cast<unsigned>(b) >> 4];
    out += hex_digits[static_cast<unsigned>(b) & 15];
  }
  return out;
}

}  // namespace tachyon::journal_tool
