// The journal tests' event types and helpers: a raw type without a codec, a codec'd type with
// fields, a type that is not journaled, and a temporary directory that cleans up after itself.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include <tachyon/codec.hpp>
#include <tachyon/detail/journal/format.hpp>
#include <tachyon/journal.hpp>
#include <tachyon/tachyon.hpp>

namespace jt {

/// Trivially copyable without a codec: journaled as its bytes under the compiler's name.
struct Tick {
  std::uint64_t id;
  double px;
};

/// Journaled through its codec (version 2 reads version 1, which had no `note`).
struct Order {
  std::string sku;
  std::uint32_t qty = 0;
  std::string note;
};

/// Not journaled, and not trivially copyable: a bus with it still compiles.
struct Chat {
  std::string text;
};

using Events =
    tachyon::registry<tachyon::event<Tick, tachyon::priority::normal, tachyon::journaled>,
                      tachyon::event<Order, tachyon::priority::high, tachyon::journaled>, Chat>;

/// A directory under the build's temporary space, removed with everything in it.
struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() /
           ("tachyon-journal-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string str() const { return path.string(); }
  std::vector<std::filesystem::path> segments() const {
    std::vector<std::filesystem::path> out;
    for (const auto& e : std::filesystem::directory_iterator(path))
      if (e.path().extension() == ".tjs") out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
  }
};

inline tachyon::config journaled(const temp_dir& d, std::uint32_t workers = 1) {
  tachyon::config c;
  c.workers = workers;
  c.journal.directory = d.str();
  c.journal.segment_bytes = 1u << 20;
  return c;
}

/// Where a segment's records end (its first all-zero record header): a closed segment keeps
/// its size, its unused tail a hole.
inline std::uint64_t records_end(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::vector<char> b((std::istreambuf_iterator<char>(in)), {});
  std::size_t o = tachyon::detail::journal_format::header_room;
  while (o + sizeof(tachyon::detail::journal_format::record_header) <= b.size()) {
    std::uint32_t len;
    std::memcpy(&len, b.data() + o, sizeof len);
    if (len == 0) break;
    o += tachyon::detail::journal_format::padded(len);
  }
  return o;
}

/// The checksum seed of records a bus with run id `run` writes.
inline std::uint32_t checksum_seed(std::uint64_t run) {
  return tachyon::detail::crc32c(0, &run, sizeof run);
}

/// Every record a reader hands out.
inline std::vector<tachyon::journal_record> read_all(const std::filesystem::path& dir,
                                                     tachyon::journal_filter f = {}) {
  tachyon::journal_reader in(dir, std::move(f));
  std::vector<tachyon::journal_record> out;
  for (const auto& r : in) out.push_back(r);
  // The records' views (payload, type, file) point into the reader, gone when this returns:
  // callers compare their fields only.
  return out;
}

}  // namespace jt

template <>
struct tachyon::codec<jt::Order> {
  static constexpr std::string_view name = "test.Order";
  static constexpr std::uint32_t version = 2;
  static constexpr std::uint32_t oldest = 1;
  static void encode(const jt::Order& o, tachyon::writer& w) {
    w.put(std::string_view(o.sku));
    w.put(o.qty);
    w.put(std::string_view(o.note));
  }
  static jt::Order decode(tachyon::reader& r, std::uint32_t version) {
    jt::Order o;
    o.sku = r.get_string();
    o.qty = r.get<std::uint32_t>();
    if (version >= 2) o.note = r.get_string();
    return o;
  }
};
