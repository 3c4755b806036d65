// journal_reader: maps every segment of a journal directory, checks each record once, and
// merges the records of each run's threads in publish order (tachyon/journal.hpp).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <queue>
#include <unordered_set>

#include <tachyon/detail/journal/format.hpp>
#include <tachyon/journal.hpp>

namespace tachyon {

namespace fmt = detail::journal_format;

std::string_view to_string(journal_problem::kind k) noexcept {
  switch (k) {
    case journal_problem::kind::torn_tail:
      return "torn_tail";
    case journal_problem::kind::corrupt:
      return "corrupt";
    case journal_problem::kind::bad_segment:
      return "bad_segment";
    case journal_problem::kind::gap:
      return "gap";
  }
  return "unknown";
}

namespace detail {
void throw_journal_mismatch(const journal_record& r, std::string_view wanted,
                            std::string_view why) {
  throw journal_error("tachyon::journal_record::decode: the record at " + std::string(r.file) +
                      " offset " + std::to_string(r.offset) + " is of type '" +
                      std::string(r.type_name()) + "' and cannot be read as '" +
                      std::string(wanted) + "': " + std::string(why));
}
}  // namespace detail

namespace {

/// A run id as tachyon-journal prints it: 0x and 16 hex digits.
std::string hex_id(std::uint64_t id) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%016llx", static_cast<unsigned long long>(id));
  return buf;
}

/// One mapped segment file.
struct mapped {
  const std::byte* base = nullptr;
  std::size_t size = 0;
  double ns_per_tick = 1;
  std::uint64_t created_ns = 0;
  std::uint64_t created_ticks = 0;
  std::vector<const journal_type_info*> by_index;  // registry index -> its entry in info.types
  std::vector<std::uint16_t> indexes;              // info.types[k]'s registry index
  std::uint32_t seed = 0;                          // crc32c of the run id: records' CRC start
  std::uint64_t first_number = 0;
  // Where the records found at construction end: iteration reads no further, so it hands out
  // what was committed then (a bus still writing adds more) and never reads bytes a bus may
  // have given back to the filesystem since.
  std::size_t end = 0;
};

/// A record that passed its checks, at `offset`.
struct found {
  std::size_t offset;
  fmt::record_header h;
};

bool record_ok(const std::byte* base, std::size_t size, std::size_t o, std::uint32_t seed,
               fmt::record_header& h) {
  if (o + sizeof h > size) return false;
  // The length first, with acquire (a writer in this process stores it last, with release),
  // then the rest.
  const std::uint32_t len =
      __atomic_load_n(reinterpret_cast<const std::uint32_t*>(base + o), __ATOMIC_ACQUIRE);
  if (len < sizeof h || len > size - o) return false;
  std::memcpy(&h, base + o, sizeof h);
  h.length = len;
  if (h.kind != fmt::event && h.kind != fmt::outcome && h.kind != fmt::padding) return false;
  std::uint32_t c = detail::crc32c(seed, &len, sizeof len);
  c = detail::crc32c(c, base + o + 8, h.length - 8);
  return c == h.checksum;
}

bool all_zero(const std::byte* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    if (p[i] != std::byte{0}) return false;
  return true;
}

/// The scan of one segment, up to `size`: `on(found, after_damage)` gets each good record
/// (after_damage: damage was skipped just before it); damage goes to `report`. Returns where the
/// last good record ends.
template <class On>
std::size_t scan_records(const std::string& file, const mapped& m, std::size_t size,
                         journal_scan* report, On&& on) {
  const std::byte* const base = m.base;
  std::size_t o = fmt::header_room;
  std::size_t good_end = o;
  bool damaged = false;
  // Resuming after damage, a candidate must pass its checksum (seeded with this run's id: a
  // copy of another run's record inside a payload does not) and come later in its writer's
  // numbering than the last good record.
  std::uint64_t last_number = m.first_number;
  bool have_last = false;
  auto problem = [&](journal_problem::kind k, std::size_t at, std::size_t bytes, std::string d) {
    if (report == nullptr) return;
    if (k == journal_problem::kind::torn_tail) {
      ++report->torn_tails;
      report->torn_bytes += bytes;
    } else {
      ++report->corrupt;
      report->corrupt_bytes += bytes;
    }
    report->problems.push_back({k, file, at, bytes, std::move(d)});
  };
  auto later = [&](const fmt::record_header& h) {
    return have_last ? h.number > last_number : h.number >= m.first_number;
  };
  while (o + 8 <= size) {
    const std::uint32_t len =
        __atomic_load_n(reinterpret_cast<const std::uint32_t*>(base + o), __ATOMIC_ACQUIRE);
    fmt::record_header h;
    if (len == 0 && all_zero(base + o, std::min<std::size_t>(size - o, sizeof h)))
      return good_end;  // the end
    if (record_ok(base, size, o, m.seed, h) && later(h)) {
      on(found{o, h}, std::exchange(damaged, false));
      o += fmt::padded(h.length);
      good_end = o;
      last_number = h.number;
      have_last = true;
      continue;
    }
    // Damaged: resume at the next record that passes, if any.
    damaged = true;
    std::size_t next = o + fmt::record_align;
    while (next + sizeof h <= size && !(record_ok(base, size, next, m.seed, h) && later(h)))
      next += fmt::record_align;
    if (next + sizeof h <= size) {
      if (len == 0)  // claimed, never committed: its thread died before the record was whole
        problem(journal_problem::kind::torn_tail, o, next - o,
                "a record without its length before a later one of the same thread: its "
                "process died while writing it");
      else
        problem(journal_problem::kind::corrupt, o, next - o,
                "a record that fails its checksum or frame (length " + std::to_string(len) + ")");
      o = next;
      continue;
    }
    // Nothing good after it: what a killed writer left, up to its last non-zero byte.
    std::size_t end = size;
    while (end > o && base[end - 1] == std::byte{0}) --end;
    problem(journal_problem::kind::torn_tail, o, fmt::padded(end - o),
            len == 0 ? "a record without its length: its process died while writing it"
                     : "a last record that fails its checksum or frame (length " +
                           std::to_string(len) + ")");
    return good_end;
  }
  return good_end;
}

}  // namespace

struct journal_reader::state {
  journal_filter filter;
  journal_scan scan;
  std::vector<journal_segment_info> infos;
  std::vector<mapped> maps;  // parallel to infos
  // Runs in start order; each run's writers; each writer's segments (indexes into infos).
  struct writer_stream {
    std::vector<std::size_t> segments;
    // The iteration's cursor.
    std::size_t seg = 0;
    std::vector<found> records;  // of segments[seg], filled when the cursor enters it
    std::size_t at = 0;
  };
  struct run {
    std::uint64_t id;
    std::uint64_t start_ns;
    std::vector<writer_stream> writers;
  };
  std::vector<run> runs;
  std::unordered_map<std::uint64_t, std::unordered_map<std::uint64_t, tachyon::outcome>> outcomes;

  // The iteration.
  std::size_t run_at = 0;
  using head = std::pair<std::uint64_t, std::size_t>;  // ticks, writer stream
  std::priority_queue<head, std::vector<head>, std::greater<>> heap;
  bool reached_sequence = false;

  ~state() {
    for (const mapped& m : maps)
      if (m.base != nullptr) ::munmap(const_cast<std::byte*>(m.base), m.size);
  }

  bool fill(writer_stream& w) {
    while (w.seg < w.segments.size()) {
      if (w.records.empty() || w.at >= w.records.size()) {
        if (!w.records.empty()) {
          ++w.seg;
          w.records.clear();
          w.at = 0;
          continue;
        }
        const std::size_t i = w.segments[w.seg];
        scan_records(infos[i].file, maps[i], maps[i].end, nullptr, [&](const found& f, bool) {
          if (f.h.kind != fmt::padding) w.records.push_back(f);
        });
        if (w.records.empty()) {
          ++w.seg;
          continue;
        }
      }
      return true;
    }
    return false;
  }

  void start_run() {
    heap = {};
    if (run_at >= runs.size()) return;
    run& r = runs[run_at];
    for (std::size_t k = 0; k < r.writers.size(); ++k) {
      writer_stream& w = r.writers[k];
      w.seg = 0;
      w.records.clear();
      w.at = 0;
      if (fill(w)) heap.emplace(w.records[w.at].h.ticks, k);
    }
  }
};

journal_reader::journal_reader(const std::filesystem::path& directory, journal_filter filter)
    : state_(std::make_unique<state>()) {
  state& s = *state_;
  s.filter = std::move(filter);
  std::error_code ec;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(directory, ec))
    if (e.path().extension() == fmt::file_suffix) files.push_back(e.path());
  if (ec)
    throw journal_error("tachyon::journal_reader: cannot list '" + directory.string() +
                        "': " + ec.message());
  std::sort(files.begin(), files.end());

  for (const auto& path : files) {
    const std::string file = path.string();
    auto bad = [&](const std::string& why) {
      ++s.scan.bad_segments;
      s.scan.problems.push_back({journal_problem::kind::bad_segment, file, 0, 0, why});
    };
    // O_NONBLOCK: a FIFO under the suffix must not hang the reader (it is refused below).
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
      if (errno == ENOENT) continue;  // deleted (retention) since the listing
      throw journal_error("tachyon::journal_reader: cannot open '" + file +
                          "': " + std::strerror(errno));
    }
    struct stat st {};
    const bool stated = ::fstat(fd, &st) == 0;
    if (stated && !S_ISREG(st.st_mode)) {
      ::close(fd);
      bad("not a regular file");
      continue;
    }
    // Segments appear under their name only once taken by a writer (made as .tjs.ahead): a
    // short one is not something a killed writer leaves.
    if (!stated || st.st_size < static_cast<off_t>(sizeof(fmt::segment_header))) {
      ::close(fd);
      bad("shorter than a segment header");
      continue;
    }
    const auto size = static_cast<std::size_t>(st.st_size);
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED)
      throw journal_error("tachyon::journal_reader: cannot map '" + file +
                          "': " + std::strerror(errno));
    mapped m;
    m.base = static_cast<const std::byte*>(p);
    m.size = size;
    fmt::segment_header h;
    std::memcpy(&h, m.base, sizeof h);
    auto unmap_bad = [&](const std::string& why) {
      ::munmap(p, size);
      bad(why);
    };
    if (h.magic != fmt::magic) {
      unmap_bad("not a tachyon journal segment (its magic number differs)");
      continue;
    }
    if (h.format != fmt::version) {
      unmap_bad("segment format " + std::to_string(h.format) + "; this reader reads format " +
                std::to_string(fmt::version));
      continue;
    }
    if (h.header_used < sizeof h || h.header_used > fmt::header_room || size < fmt::header_room) {
      unmap_bad("a header of " + std::to_string(h.header_used) + " bytes in a file of " +
                std::to_string(size));
      continue;
    }
    {
      std::vector<std::byte> copy(m.base, m.base + h.header_used);
      std::memset(copy.data() + offsetof(fmt::segment_header, checksum), 0, 4);
      if (detail::crc32c(0, copy.data(), copy.size()) != h.checksum) {
        // A writer rewrites a prepared segment's header when it takes it over, before its
        // first record: killed in between, it leaves a header that fails and no record.
        // Nothing was written there; the segment is skipped as one never taken.
        if (all_zero(m.base + fmt::header_room,
                     std::min(size - fmt::header_room, sizeof(fmt::record_header)))) {
          ::munmap(p, size);
          continue;
        }
        unmap_bad("its header fails its checksum");
        continue;
      }
    }
    if (h.writer_segment == UINT32_MAX) {  // made ahead and never written: holds nothing
      ::munmap(p, size);
      continue;
    }
    journal_segment_info info;
    info.file = file;
    info.run_id = h.run_id;
    info.run_start_ns = h.run_start_ns;
    info.writer = h.writer;
    info.writer_segment = h.writer_segment;
    info.pid = h.pid;
    info.first_number = h.first_number;
    info.file_bytes = size;
    std::size_t at = sizeof h;
    bool table_ok = true;
    std::vector<std::uint16_t> indexes;
    for (std::uint32_t t = 0; t < h.type_count; ++t) {
      fmt::type_entry e;
      if (at + sizeof e > h.header_used) {
        table_ok = false;
        break;
      }
      std::memcpy(&e, m.base + at, sizeof e);
      at += sizeof e;
      if (at + e.name_length > h.header_used) {
        table_ok = false;
        break;
      }
      journal_type_info ti;
      ti.name.assign(reinterpret_cast<const char*>(m.base + at), e.name_length);
      at += fmt::padded(e.name_length);
      ti.version = e.version;
      ti.oldest = e.oldest;
      ti.size = e.size;
      ti.align = e.align;
      ti.raw = e.kind == fmt::payload_kind::raw;
      ti.fingerprint = e.fingerprint;
      info.types.push_back(std::move(ti));
      indexes.push_back(e.index);
    }
    if (!table_ok) {
      unmap_bad("its type table runs past its header");
      continue;
    }
    m.ns_per_tick = h.ns_per_tick;
    m.created_ns = h.created_ns;
    m.created_ticks = h.created_ticks;
    m.seed = detail::crc32c(0, &h.run_id, sizeof h.run_id);
    m.first_number = h.first_number;
    m.indexes = std::move(indexes);
    s.infos.push_back(std::move(info));
    s.maps.push_back(std::move(m));
  }
  // by_index points into infos' type vectors, which no longer move.
  for (std::size_t i = 0; i < s.infos.size(); ++i) {
    mapped& m = s.maps[i];
    for (std::size_t k = 0; k < m.indexes.size(); ++k) {
      if (m.indexes[k] >= m.by_index.size()) m.by_index.resize(m.indexes[k] + 1u, nullptr);
      m.by_index[m.indexes[k]] = &s.infos[i].types[k];
    }
  }

  // Runs, their writers, each writer's segments in order.
  std::map<std::pair<std::uint64_t, std::uint64_t>,
           std::map<std::uint32_t, std::vector<std::size_t>>>
      grouped;  // (start, run) -> writer -> segments
  for (std::size_t i = 0; i < s.infos.size(); ++i)
    grouped[{s.infos[i].run_start_ns, s.infos[i].run_id}][s.infos[i].writer].push_back(i);
  for (auto& [key, writers] : grouped) {
    state::run r{key.second, key.first, {}};
    for (auto& [id, segs] : writers) {
      std::sort(segs.begin(), segs.end(), [&](std::size_t a, std::size_t b) {
        return s.infos[a].writer_segment < s.infos[b].writer_segment;
      });
      r.writers.push_back({segs, 0, {}, 0});
    }
    s.runs.push_back(std::move(r));
  }

  // The one full check: counts, damage, gaps, and every outcome.
  std::unordered_map<std::uint64_t, std::unordered_set<std::uint64_t>> events_seen;
  for (const state::run& r : s.runs) {
    auto& seen = events_seen[r.id];
    auto& outs = s.outcomes[r.id];
    for (const state::writer_stream& w : r.writers) {
      bool have_last = false;
      std::uint64_t last = 0;
      for (std::size_t i : w.segments) {
        journal_segment_info& info = s.infos[i];
        ++s.scan.segments;
        s.maps[i].end = scan_records(
            info.file, s.maps[i], s.maps[i].size, &s.scan, [&](const found& f, bool after_damage) {
              // A gap right after damage is that damage's records, already reported.
              if (have_last && f.h.number != last + 1 && !after_damage) {
                ++s.scan.gaps;
                const std::uint64_t missing = f.h.number > last ? f.h.number - last - 1 : 0;
                s.scan.problems.push_back({journal_problem::kind::gap, info.file, f.offset, missing,
                                           "thread " + std::to_string(info.writer) + " of run " +
                                               hex_id(r.id) + ": records " +
                                               std::to_string(last + 1) + " to " +
                                               std::to_string(f.h.number - 1) + " are missing"});
              }
              have_last = true;
              last = f.h.number;
              if (f.h.kind == fmt::padding)
                return;  // an event refused after its record was claimed
              s.scan.bytes += fmt::padded(f.h.length);
              info.bytes += fmt::padded(f.h.length);
              if (f.h.kind == fmt::event) {
                ++s.scan.records;
                ++info.records;
                seen.insert(f.h.sequence);
              } else {
                ++s.scan.outcome_records;
                ++info.outcomes;
                outs[f.h.sequence] = static_cast<tachyon::outcome>(f.h.detail);
              }
            });
      }
    }
    for (const auto& [sequence, o] : outs)
      if (!seen.count(sequence)) ++s.scan.orphan_outcomes;
  }
}

journal_reader::~journal_reader() = default;
journal_reader::journal_reader(journal_reader&&) noexcept = default;
journal_reader& journal_reader::operator=(journal_reader&&) noexcept = default;

const journal_scan& journal_reader::scan() const noexcept { return state_->scan; }
const std::vector<journal_segment_info>& journal_reader::segments() const noexcept {
  return state_->infos;
}
const journal_filter& journal_reader::filter() const noexcept { return state_->filter; }

journal_reader::iterator journal_reader::begin() {
  state& s = *state_;
  s.run_at = 0;
  s.reached_sequence = s.filter.from_sequence == 0;
  s.start_run();
  return iterator(this);
}

journal_reader::iterator& journal_reader::iterator::operator++() {
  if (reader_ != nullptr && !reader_->next(record_)) reader_ = nullptr;
  return *this;
}

bool journal_reader::next(journal_record& out) {
  state& s = *state_;
  const journal_filter& f = s.filter;
  for (;;) {
    while (s.heap.empty()) {
      if (s.run_at >= s.runs.size()) return false;
      ++s.run_at;
      s.start_run();
    }
    const std::size_t k = s.heap.top().second;
    s.heap.pop();
    state::run& r = s.runs[s.run_at];
    state::writer_stream& w = r.writers[k];
    const found rec = w.records[w.at];
    const std::size_t seg = w.segments[w.seg];
    ++w.at;
    if (s.fill(w)) s.heap.emplace(w.records[w.at].h.ticks, k);

    if (f.run_id != 0 && r.id != f.run_id) continue;
    if (rec.h.kind == fmt::outcome && !f.outcome_records) continue;
    if (!s.reached_sequence) {
      if (rec.h.kind != fmt::event || rec.h.sequence != f.from_sequence) continue;
      s.reached_sequence = true;
    }
    const mapped& m = s.maps[seg];
    const auto wall = static_cast<std::int64_t>(m.created_ns) +
                      static_cast<std::int64_t>((static_cast<double>(rec.h.ticks) -
                                                 static_cast<double>(m.created_ticks)) *
                                                m.ns_per_tick);
    const std::chrono::system_clock::time_point when{
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::nanoseconds(wall))};
    if (when < f.from_time || when >= f.to_time) continue;
    if (f.correlation_id != 0 && rec.h.correlation != f.correlation_id) continue;
    const journal_type_info* type =
        rec.h.type < m.by_index.size() ? m.by_index[rec.h.type] : nullptr;
    if (!f.types.empty() &&
        (type == nullptr || std::find(f.types.begin(), f.types.end(), type->name) == f.types.end()))
      continue;

    out.kind = static_cast<journal_record_kind>(rec.h.kind);
    out.header = meta{.sequence = rec.h.sequence,
                      .correlation_id = rec.h.correlation,
                      .causation_id = rec.h.causation,
                      .publish_ticks = rec.h.ticks,
                      .type_index = rec.h.type,
                      .lane = static_cast<priority>(rec.h.lane & 3),
                      .attempt = rec.h.kind == fmt::event ? rec.h.detail : std::uint8_t{0},
                      .flags = rec.h.flags};
    out.run_id = r.id;
    out.writer = s.infos[seg].writer;
    out.number = rec.h.number;
    out.time = when;
    out.type = type;
    out.payload = std::span<const std::byte>(m.base + rec.offset + sizeof(fmt::record_header),
                                             rec.h.length - sizeof(fmt::record_header));
    out.file = s.infos[seg].file;
    out.offset = rec.offset;
    if (rec.h.kind == fmt::outcome) {
      out.outcome = static_cast<tachyon::outcome>(rec.h.detail);
    } else {
      out.outcome.reset();
      const auto& outs = s.outcomes[r.id];
      if (auto it = outs.find(rec.h.sequence); it != outs.end()) out.outcome = it->second;
    }
    return true;
  }
}

}  // namespace tachyon
