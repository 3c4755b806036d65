// The text of the Tachyon-Meta and Tachyon-Origin headers (tachyon/nats/wire.hpp).
#include <tachyon/nats/wire.hpp>

#include <charconv>
#include <cstdio>

namespace tachyon::nats {

namespace {

constexpr std::string_view format_tag = "v1";
constexpr int meta_fields = 8;  // the tag and seven numbers

/// The next space-separated field of `text` from `at`; empty at the end.
std::string_view next_field(std::string_view text, std::size_t& at) {
  while (at < text.size() && text[at] == ' ') ++at;
  const std::size_t from = at;
  while (at < text.size() && text[at] != ' ') ++at;
  return text.substr(from, at - from);
}

template <class U>
bool parse_number(std::string_view field, U& out, int base) {
  if (field.empty()) return false;
  const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), out, base);
  return ec == std::errc{} && end == field.data() + field.size();
}

}  // namespace

std::string format_meta(const wire_meta& m) {
  // std::to_chars rather than snprintf: this runs for every exported message (and every
  // imported one, in parse_meta's check of the spelling), and snprintf took about 2.5 times as
  // long. The text is snprintf's "v1 %u %016llx %llu %llu %llu %llu %llu".
  std::string out;
  out.reserve(2 + 11 + 17 + 5 * 21);
  const auto put = [&out](std::uint64_t v) {
    char digits[20];
    const auto r = std::to_chars(digits, digits + sizeof digits, v);
    out += ' ';
    out.append(digits, r.ptr);
  };
  out += "v1";
  put(m.version);
  out += ' ';
  static constexpr char hex[] = "0123456789abcdef";
  for (int shift = 60; shift >= 0; shift -= 4) out += hex[(m.fingerprint >> shift) & 0xf];
  put(m.sequence);
  put(m.correlation);
  put(m.causation);
  put(m.published_ns);
  put(m.export_sequence);
  return out;
}

bool parse_meta(std::string_view text, wire_meta& out, std::string& why) {
  std::string_view f[meta_fields + 1];
  std::size_t at = 0;
  int n = 0;
  for (; n <= meta_fields; ++n) {
    f[n] = next_field(text, at);
    if (f[n].empty()) break;
  }
  if (n == 0 || f[0] != format_tag) {
    why = "Tachyon-Meta: format tag '" + std::string(f[0].substr(0, 16)) + "'; allowed: v1";
    return false;
  }
  if (n != meta_fields) {
    // The loop stops one past the last field it wants, so n cannot count a longer line.
    why = "Tachyon-Meta: " +
          (n > meta_fields ? "more than " + std::to_string(meta_fields) : std::to_string(n)) +
          " fields; allowed: exactly " + std::to_string(meta_fields);
    return false;
  }
  wire_meta m;
  static constexpr const char* names[] = {"version",        "fingerprint", "sequence",
                                          "correlation",    "causation",   "published_ns",
                                          "export_sequence"};
  const bool ok[] = {
      parse_number(f[1], m.version, 10),        parse_number(f[2], m.fingerprint, 16),
      parse_number(f[3], m.sequence, 10),       parse_number(f[4], m.correlation, 10),
      parse_number(f[5], m.causation, 10),      parse_number(f[6], m.published_ns, 10),
      parse_number(f[7], m.export_sequence, 10)};
  for (int i = 0; i < meta_fields - 1; ++i) {
    if (!ok[i]) {
      why = std::string("Tachyon-Meta: ") + names[i] + " '" + std::string(f[i + 1].substr(0, 24)) +
            "' is not a " +
            (i == 0   ? "32-bit decimal"
             : i == 1 ? "64-bit hex"
                      : "64-bit decimal") +
            " number";
      return false;
    }
  }
  // One spelling per value (single spaces, the fingerprint in 16 lower-case hex digits, no
  // leading zeros), so that two bridges never disagree about what a header says and a header
  // can be compared as text.
  if (const auto canonical = format_meta(m); canonical != text) {
    why = "Tachyon-Meta: '" + std::string(text.substr(0, 96)) +
          "' is not as format_meta writes it; allowed: '" + canonical + "'";
    return false;
  }
  out = m;
  return true;
}

std::string format_origin(std::string_view name, std::uint64_t nonce) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(nonce));
  std::string s(name);
  s += '/';
  s += hex;
  return s;
}

}  // namespace tachyon::nats
