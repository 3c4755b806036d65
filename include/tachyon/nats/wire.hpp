// tachyon/nats/wire.hpp — what one exported event looks like on NATS, without libnats: the
// bridge writes and reads these headers, and the decoder's fuzz test drives them with random
// bytes. Three headers, all text (NATS headers are text lines):
//
//   Tachyon-Type:   <codec<T>::name>                            e.g. "shop.Order"
//   Tachyon-Meta:   v1 <version> <fingerprint> <sequence> <correlation> <causation>
//                   <published_ns> <export_sequence>            (one line, space-separated;
//                   fingerprint in 16 hex digits, the rest decimal)
//   Tachyon-Origin: <bridge name>/<run nonce, 16 hex digits>
//
// and, for JetStream, Nats-Msg-Id: <origin>/<subject>/<type>/<export_sequence> (the server's
// deduplication key: the nonce changes with every run, so a restarted exporter whose sequences
// start again is not taken for a duplicate, and each type sent to one subject counts its own
// sequence). The payload is the event's codec bytes (tachyon/codec.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tachyon::nats {

inline constexpr std::string_view type_header = "Tachyon-Type";
inline constexpr std::string_view meta_header = "Tachyon-Meta";
inline constexpr std::string_view origin_header = "Tachyon-Origin";
inline constexpr std::string_view msg_id_header = "Nats-Msg-Id";

/// The sender's view of an exported event, carried in Tachyon-Meta.
struct wire_meta {
  std::uint32_t version = 0;       ///< codec<T>::version the payload was written at
  std::uint64_t fingerprint = 0;   ///< tachyon::fingerprint<T>(version) on the sender
  std::uint64_t sequence = 0;      ///< meta::sequence in the sender's bus
  std::uint64_t correlation = 0;   ///< meta::correlation_id (kept by the importer)
  std::uint64_t causation = 0;     ///< meta::causation_id in the sender's bus
  std::uint64_t published_ns = 0;  ///< the sender's wall clock (ns since 1970) at export
  /// The exporting bridge's count of messages on this subject, from 1: an importer that sees it
  /// jump knows how many core NATS lost on the way (counted as `gaps`).
  std::uint64_t export_sequence = 0;
};

/// Tachyon-Meta's value for `m`.
std::string format_meta(const wire_meta& m);

/// Parses Tachyon-Meta's value. False, with `why` saying what was wrong, for anything that is
/// not exactly the format above (an unknown format tag, a missing or extra field, a number that
/// does not parse or overflows).
bool parse_meta(std::string_view text, wire_meta& out, std::string& why);

/// Tachyon-Origin's value: "<name>/<nonce in 16 hex digits>".
std::string format_origin(std::string_view name, std::uint64_t nonce);

}  // namespace tachyon::nats
