// tachyon_journal_bench: what the journal (config::journal) costs, every figure beside its peer
// from the same run. Google Benchmark times each side (its iteration counts and clock); this
// file's main runs the sides in paired rounds, as tachyon_nats_bench does: a round runs each
// side of a figure once, the order reversed every other round; per round the ratio of a side to
// its peer; reported is the median of the per-round ratios, with the smallest and largest, and
// each side's median. On a small shared machine one side's turn can catch a burst of
// preemption the other's did not; a ratio taken within a round, then the median over rounds,
// shrugs that off where two medians taken minutes apart would not.
//
// The event: 16 bytes, trivially copyable (J16), so a record is 72 bytes (56 of header, the
// payload); registered with tachyon::journaled. "journal off" is the same bus type, the same
// registry, with config::journal.directory empty; "unjournaled type" a registry whose type has
// no journaled option (the bus every user without a journal has).
//
// publish        one publish() on one thread, manual mode (workers 0), lane_capacity 4096,
//                overflow::fail, the lane drained every 4096 publishes with the clock paused
//                (bench_main.cpp's publish figure): journal_process (durability::process, 64 MiB
//                segments) vs journal_off, and unjournaled_type. Timestamps on (the default:
//                a record carries one either way). Target: time <= 2x journal_off.
// publish_no_ts  the same with config::timestamps false (bench_main.cpp's publish/tachyon): the
//                journal then reads the clock itself, which the side without it does not.
// throughput_1p1w  one producer (this thread) to one busy_spin worker pinned to the other CPU,
//                overflow::block, lane_capacity 8192; an iteration publishes 4096 events and
//                waits until the handler has counted them (bench_main.cpp's throughput_1p1w):
//                journal_process vs journal_off. The worker writes each event's outcome record
//                (56 bytes) into its own segment. Target: rate >= 0.5x journal_off.
// write          bytes of records written per second. journal_writer: the journal's writer
//                driven alone (detail::journal_writer reserve, fill, commit of a 72-byte record
//                through a real detail::journal, 64 MiB segments rolled and prepared by
//                tachyon-journal as in a bus); journal_writer_rolls_off_clock: the same with each
//                write that rolls to the next segment done with the clock paused (a record's
//                cost when its segment is ready); publish_journal_process: the publish figure's
//                journaled side, 72 bytes per publish; the peer, memcpy: the same 72-byte
//                records copied one after another into a 64 MiB file mapped MAP_SHARED whose
//                pages were touched beforehand, wrapping at its end. Target: >= 0.7x memcpy,
//                for the writer alone and for publish().
// prepare        segment preparation, 1 MiB segments so that they roll many times: the rate at
//                which tachyon-journal makes segments (bytes made / journal_stats().prepare_ns),
//                the publishing thread's minor page faults (getrusage(RUSAGE_THREAD)) over the
//                timed stretch per segment it rolled, and journal_stats().made_inline (segments
//                a writer had to make itself because none was ready: tachyon-journal did not
//                keep up). publish_1MiB: the publish figure's loop (its drains, which write the
//                outcome records, counted too); writer_1MiB: the writer alone. The faults are
//                split (fault_split) between stretches in which every segment the writer rolled
//                onto had been prepared ahead and those in which it made one itself; the claim
//                checked: 0 faults per segment prepared ahead (the writer never faults a page
//                tachyon-journal prepared), with how often preparation fell behind reported.
// read           journal_reader over a journal of N events and their outcomes, written once
//                before the rounds: construct (maps every segment, checks every record) and
//                iterate every record. Records/s (events) and bytes/s (of records read).
// replay         replay(bus, reader) of the same journal into a manual bus (journal off,
//                lane_capacity N, overflow::fail), timed from the reader's construction to
//                replay's return; the bus drained after each pass with the clock paused.
//
// The journal directories are made under one temporary directory on the build's disk (next to
// this executable, unless --dir says where), not /dev/shm (no disk behind it): the filesystem is
// printed, and the directory removed at the end.
//
// Threads are pinned as in bench_main.cpp (bench/pinning.hpp): this thread on the first usable
// CPU, the worker on the second. tachyon-journal is not pinned: on a 2-CPU machine it takes its
// time from whichever CPU it finds.
//
// Usage: tachyon_journal_bench [--quick] [--json FILE] [--rounds N] [--min_time S] [--dir DIR]
//                              [--only FIGURE[,FIGURE...]]
//   --quick  3 rounds of 0.05 s per side, a journal of 65536 events to read: a minute or less
// Exits 0 when every figure was measured (targets met or not), 1 when a side failed.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <tachyon/detail/context/thread_context.hpp>
#include <tachyon/detail/journal/journal.hpp>
#include <tachyon/journal.hpp>
#include <tachyon/tachyon.hpp>

#include "emulation.hpp"
#include "pinning.hpp"
#include "text.hpp"

namespace jb {

/// The journaled event: 16 bytes, written as its bytes (a 72-byte record).
struct J16 {
  std::uint64_t seq;
  std::uint64_t check;
};
/// The same, in a registry that does not journal it.
struct P16 {
  std::uint64_t seq;
  std::uint64_t check;
};
static_assert(sizeof(J16) == 16 && sizeof(P16) == 16);

using JEvents =
    tachyon::registry<tachyon::event<J16, tachyon::priority::normal, tachyon::journaled>>;
using PEvents = tachyon::registry<P16>;
using JBus = tachyon::bus<JEvents>;
using PBus = tachyon::bus<PEvents>;

}  // namespace jb

namespace {

using namespace jb;
using bench::consumer_cpu;
using bench::fmt;
using bench::json_string;
using bench::median;
using bench::pin_this_thread;
using bench::pinned_scope;
using bench::producer_cpu;
namespace jf = tachyon::detail::journal_format;

constexpr std::size_t record_bytes = sizeof(jf::record_header) + sizeof(J16);
static_assert(record_bytes == 72 && jf::padded(record_bytes) == 72);
constexpr std::size_t big_segment = std::size_t{64} << 20;   // config::journal's default
constexpr std::size_t small_segment = std::size_t{1} << 20;  // the prepare figure's
constexpr std::uint32_t drain_every = 4096;

struct settings {
  bool quick = false;
  int rounds = 7;
  double min_time = 0.5;
  std::size_t read_events = std::size_t{1} << 18;
  std::string root;        // the temporary directory every journal goes under
  std::string filesystem;  // what it is on, in words
};
settings g;

/// A journal directory of its own under g.root, removed with its segments.
struct scratch_dir {
  std::string path;
  scratch_dir() {
    static std::atomic<std::uint64_t> made{0};
    path = g.root + "/d" + std::to_string(made.fetch_add(1));
    std::filesystem::create_directories(path);
  }
  ~scratch_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
};

tachyon::journal_config journal_in(const std::string& dir, std::size_t segment) {
  tachyon::journal_config j;
  j.directory = dir;
  j.segment_bytes = segment;
  j.durability = tachyon::durability::process;
  // Closed segments go at once (a writer's current and next are never deleted): the run's
  // gigabytes of records do not pile up on the disk.
  j.retain_segments = 8;
  return j;
}

/// Minor page faults of the calling thread so far.
std::uint64_t thread_faults() {
  rusage u{};
  getrusage(RUSAGE_THREAD, &u);
  return static_cast<std::uint64_t>(u.ru_minflt);
}

/// The journal's counters over a timed stretch, as benchmark counters: segments made, of them
/// made by a writer (made_inline), faults of this thread per segment, preparation's rate.
void journal_counters(benchmark::State& state, const tachyon::journal_stats& a,
                      const tachyon::journal_stats& b, std::uint64_t faults) {
  const double segments = static_cast<double>(b.segments - a.segments);
  const double prepared = static_cast<double>(b.prepared - a.prepared);
  const double prepare_ns = static_cast<double>(b.prepare_ns - a.prepare_ns);
  state.counters["segments"] = segments;
  state.counters["made_inline"] = static_cast<double>(b.made_inline - a.made_inline);
  state.counters["faults"] = static_cast<double>(faults);
  state.counters["faults_per_segment"] = segments > 0 ? static_cast<double>(faults) / segments : 0;
  state.counters["prepare_us_per_segment"] = prepared > 0 ? prepare_ns / prepared / 1e3 : 0;
  state.counters["prepare_bytes_per_s"] =
      prepare_ns > 0 ? prepared * static_cast<double>(b.segment_bytes) * 1e9 / prepare_ns : 0;
  if (!b.last_error.empty()) state.SkipWithError(("journal: " + b.last_error).c_str());
}

/// The writing thread's page faults, split by whether tachyon-journal kept up: the timed
/// stretch is cut into chunks (at the loops' pauses, every 4096 records or publishes), and a
/// chunk in which no segment was made inline (journal_stats().made_inline unchanged) counts
/// its faults as "ahead": faults taken while every segment the writer rolled onto had been
/// prepared for it. The claim checked is that those are 0. Read off the clock.
struct fault_split {
  tachyon::journal_stats last;
  std::uint64_t faults_last = 0;
  std::uint64_t faults_ahead = 0, segments_ahead = 0, chunks_ahead = 0;
  std::uint64_t faults_behind = 0, chunks_behind = 0;

  void start(const tachyon::journal_stats& now) {
    last = now;
    faults_last = thread_faults();
  }
  void chunk(const tachyon::journal_stats& now) {
    const std::uint64_t f = thread_faults();
    if (now.made_inline == last.made_inline) {
      faults_ahead += f - faults_last;
      segments_ahead += now.segments - last.segments;
      ++chunks_ahead;
    } else {
      faults_behind += f - faults_last;
      ++chunks_behind;
    }
    last = now;
    faults_last = f;
  }
  void report(benchmark::State& state) const {
    state.counters["faults_ahead"] = static_cast<double>(faults_ahead);
    state.counters["segments_ahead"] = static_cast<double>(segments_ahead);
    state.counters["faults_ahead_per_segment"] =
        segments_ahead > 0 ? static_cast<double>(faults_ahead) / static_cast<double>(segments_ahead)
                           : 0;
    state.counters["faults_behind"] = static_cast<double>(faults_behind);
    state.counters["chunks_behind_share"] =
        chunks_ahead + chunks_behind > 0
            ? static_cast<double>(chunks_behind) / static_cast<double>(chunks_ahead + chunks_behind)
            : 0;
  }
};

// ---- publish ---------------------------------------------------------------------------------

enum class journal_mode { on, off };

/// One publish per iteration on a manual bus, drained every drain_every with the clock paused.
template <class Bus, class E>
void publish_loop(benchmark::State& state, journal_mode mode, bool timestamps, std::size_t segment,
                  bool split_faults) {
  pinned_scope pin;
  scratch_dir dir;
  tachyon::config cfg;
  cfg.workers = 0;
  cfg.lane_capacity = drain_every;
  cfg.overflow = tachyon::overflow::fail;
  cfg.producers = 1;
  cfg.timestamps = timestamps;
  if (mode == journal_mode::on) cfg.journal = journal_in(dir.path, segment);
  Bus bus{cfg};
  auto sub = bus.template subscribe<E>([](const E& e) { benchmark::DoNotOptimize(e.seq); });
  std::uint64_t seq = 0, refused = 0;
  std::uint32_t queued = 0;
  auto publish_one = [&] {
    ++seq;
    refused += bus.publish(E{seq, ~seq}) != tachyon::result::ok;
  };
  // Warm-up, untimed: this thread's writer and its first segment, and (a small segment) a few
  // rolls, so that the timed stretch starts in the steady state.
  const std::uint64_t warm = mode == journal_mode::on && segment == small_segment
                                 ? 4 * segment / (record_bytes + sizeof(jf::record_header))
                                 : drain_every;
  for (std::uint64_t i = 0; i < warm; ++i) {
    publish_one();
    if (++queued == drain_every) {
      bus.poll();
      queued = 0;
    }
  }
  bus.poll();
  queued = 0;
  const auto before = bus.journal_stats();
  fault_split split;
  if (split_faults) split.start(before);
  const std::uint64_t faults_before = thread_faults();
  for (auto _ : state) {
    publish_one();
    if (++queued == drain_every) [[unlikely]] {
      state.PauseTiming();
      bus.poll();
      queued = 0;
      if (split_faults) split.chunk(bus.journal_stats());
      state.ResumeTiming();
    }
  }
  const std::uint64_t faults = thread_faults() - faults_before;
  bus.poll();
  if (refused != 0) state.SkipWithError("a publish was refused");
  state.SetItemsProcessed(state.iterations());
  if (mode == journal_mode::on) {
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(record_bytes));
    journal_counters(state, before, bus.journal_stats(), faults);
    if (split_faults) split.report(state);
  }
}

// ---- 1 producer -> 1 worker ------------------------------------------------------------------

constexpr std::uint64_t per_iteration = 4096;

template <class Bus, class E>
void throughput_1p1w(benchmark::State& state, journal_mode mode) {
  pinned_scope pin(producer_cpu());
  scratch_dir dir;
  tachyon::config cfg;
  cfg.workers = 1;
  if (consumer_cpu() >= 0) cfg.cpus = {consumer_cpu()};
  cfg.lane_capacity = 8192;  // twice an iteration: the producer never waits for room
  cfg.batch = 64;
  cfg.wait = tachyon::wait_strategy::busy_spin;
  cfg.overflow = tachyon::overflow::block;
  cfg.producers = 1;
  if (mode == journal_mode::on) cfg.journal = journal_in(dir.path, big_segment);
  // Written by the worker only, read here: one line of its own.
  struct alignas(64) counter {
    std::atomic<std::uint64_t> n{0};
  };
  auto counted = std::make_unique<counter>();
  Bus bus{cfg};
  auto sub = bus.template subscribe<E>([c = counted.get()](const E&) {
    c->n.store(c->n.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  });
  std::uint64_t seq = 0, expected = 0, refused = 0;
  auto one_round = [&] {
    for (std::uint64_t i = 0; i < per_iteration; ++i) {
      ++seq;
      refused += bus.publish(E{seq, ~seq}) != tachyon::result::ok;
    }
    expected += per_iteration;
    while (counted->n.load(std::memory_order_acquire) < expected) {
    }
  };
  one_round();  // warm-up, untimed: both threads' writers and first segments
  const std::uint64_t warm = expected;
  const auto before = bus.journal_stats();
  const std::uint64_t faults_before = thread_faults();
  for (auto _ : state) one_round();
  const std::uint64_t faults = thread_faults() - faults_before;
  if (refused != 0) state.SkipWithError("a publish was refused");
  state.SetItemsProcessed(static_cast<std::int64_t>(expected - warm));
  if (mode == journal_mode::on) journal_counters(state, before, bus.journal_stats(), faults);
}

// ---- the writer alone, and the memcpy peer ---------------------------------------------------

/// detail::journal_writer driven directly: reserve, fill (header, payload, CRC-32C), commit of
/// one 72-byte record per iteration, through a real detail::journal whose thread prepares the
/// segments. The thread context a bus would hand the journal is made here with lanes of its
/// own (the journal reads only its id and its writer slot).
/// `rolls`: timed, or off the clock (the write that rolls over to the next segment, and makes
/// it if tachyon-journal has not, is done with the clock paused: what a record costs when its
/// segment is ready). `split_faults`: fault_split over chunks of 4096 records.
enum class rolls { timed, off_the_clock };
void write_journal_writer(benchmark::State& state, std::size_t segment, rolls how,
                          bool split_faults) {
  namespace d = tachyon::detail;
  pinned_scope pin;
  scratch_dir dir;
  using id = d::journal_identity<J16>;
  std::vector<d::journal_type> types(1);
  types[0].journaled = true;
  types[0].kind = jf::payload_kind::raw;
  types[0].version = id::version;
  types[0].oldest = id::oldest;
  types[0].size = sizeof(J16);
  types[0].align = alignof(J16);
  types[0].fingerprint = id::fingerprint_of(id::version);
  types[0].name = id::name;
  d::journal journal(journal_in(dir.path, segment), types);
  std::array<d::lane, tachyon::priority_count> lanes{
      d::lane(64, 1, 64, 64, false), d::lane(64, 1, 64, 64, false), d::lane(64, 1, 64, 64, false),
      d::lane(64, 1, 64, 64, false)};
  d::thread_context ctx(1, lanes, 1);
  d::journal_writer* w = journal.writer_for(ctx);
  if (w == nullptr) {
    state.SkipWithError(("journal: " + journal.stats().last_error).c_str());
    return;
  }
  J16 ev{};
  tachyon::meta m{};
  std::uint64_t seq = 0, failed = 0;
  auto write_one = [&] {
    ++seq;
    ev = J16{seq, ~seq};
    m.sequence = seq << 16 | 1;
    m.publish_ticks = seq;
    std::byte* at = w->reserve(record_bytes, jf::event);
    if (at == nullptr) [[unlikely]] {
      ++failed;
      return;
    }
    std::memcpy(at + sizeof(jf::record_header), &ev, sizeof ev);  // as publish_journaled does
    w->fill(at, record_bytes, 0, m, m.publish_ticks);
    w->commit(at, record_bytes, false);
  };
  // Every record is 72 bytes, so the writer rolls at a known count: a segment holds
  // per_segment records after its header.
  const std::uint64_t per_segment = (segment - jf::header_room) / record_bytes;
  // Warm-up, untimed: two segments' worth, rolled as in the steady state.
  for (std::size_t i = 0; i < 2 * segment / record_bytes; ++i) write_one();
  const auto before = journal.stats();
  fault_split split;
  if (split_faults) split.start(before);
  const std::uint64_t faults_before = thread_faults();
  std::uint32_t in_chunk = 0;
  for (auto _ : state) {
    if (how == rolls::off_the_clock && seq % per_segment == 0) [[unlikely]] {
      state.PauseTiming();  // this write rolls (seq records written so far)
      write_one();
      state.ResumeTiming();
    } else {
      write_one();
    }
    if (split_faults && ++in_chunk == drain_every) [[unlikely]] {
      state.PauseTiming();
      split.chunk(journal.stats());
      in_chunk = 0;
      state.ResumeTiming();
    }
  }
  const std::uint64_t faults = thread_faults() - faults_before;
  if (failed != 0) state.SkipWithError("a record could not be reserved");
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(record_bytes));
  journal_counters(state, before, journal.stats(), faults);
  if (split_faults) split.report(state);
}

/// The peer: the same 72-byte records, memcpy'd one after another into a file of one segment's
/// size mapped MAP_SHARED, its pages touched (and written once) before the clock starts;
/// wrapping at its end to where a segment's records start.
void write_memcpy(benchmark::State& state, std::size_t size) {
  pinned_scope pin;
  scratch_dir dir;
  const std::string path = dir.path + "/peer.bin";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0 || ::posix_fallocate(fd, 0, static_cast<off_t>(size)) != 0) {
    if (fd >= 0) ::close(fd);
    state.SkipWithError(("cannot make " + path).c_str());
    return;
  }
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    ::close(fd);
    state.SkipWithError(("cannot map " + path).c_str());
    return;
  }
  auto* base = static_cast<std::byte*>(p);
#if defined(MADV_POPULATE_WRITE)
  (void)::madvise(base, size, MADV_POPULATE_WRITE);
#endif
  std::memset(base, 0, size);
  // 64 distinct records (a header as the writer makes it, and a payload), copied in turn.
  std::vector<std::array<std::byte, record_bytes>> records(64);
  for (std::size_t i = 0; i < records.size(); ++i) {
    jf::record_header h{};
    h.length = static_cast<std::uint32_t>(record_bytes);
    h.checksum = static_cast<std::uint32_t>(i * 2654435761u);
    h.kind = jf::event;
    h.number = i;
    h.sequence = i << 16 | 1;
    h.ticks = i;
    const J16 ev{i, ~i};
    std::memcpy(records[i].data(), &h, sizeof h);
    std::memcpy(records[i].data() + sizeof h, &ev, sizeof ev);
  }
  std::size_t off = jf::header_room;
  std::uint64_t i = 0;
  auto copy_one = [&] {
    std::memcpy(base + off, records[i++ & 63].data(), record_bytes);
    off += record_bytes;
    if (off + record_bytes > size) [[unlikely]]
      off = jf::header_room;
  };
  for (std::size_t k = 0; k < size / record_bytes; ++k) copy_one();  // one pass, untimed
  const std::uint64_t faults_before = thread_faults();
  for (auto _ : state) {
    copy_one();
    benchmark::DoNotOptimize(base);
  }
  state.counters["faults"] = static_cast<double>(thread_faults() - faults_before);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(record_bytes));
  ::munmap(base, size);
  ::close(fd);
}

// ---- reading and replay ----------------------------------------------------------------------

/// The journal the read figures read: g.read_events events and their outcome records, written
/// once (manual mode, one thread) into a directory kept until the end of the run.
const std::string& read_source() {
  static std::unique_ptr<scratch_dir> dir;
  if (dir == nullptr) {
    dir = std::make_unique<scratch_dir>();
    tachyon::config cfg;
    cfg.workers = 0;
    cfg.lane_capacity = drain_every;
    cfg.overflow = tachyon::overflow::fail;
    cfg.producers = 1;
    cfg.journal = journal_in(dir->path, big_segment);
    cfg.journal.retain_segments = 0;  // every record stays
    JBus bus{cfg};
    auto sub = bus.subscribe<J16>([](const J16& e) { benchmark::DoNotOptimize(e.seq); });
    for (std::uint64_t i = 1; i <= g.read_events; ++i) {
      if (bus.publish(J16{i, ~i}) != tachyon::result::ok)
        throw std::runtime_error("tachyon_journal_bench: a publish into the read journal failed");
      if (i % drain_every == 0) bus.poll();
    }
    bus.poll();
  }
  return dir->path;
}

void read_journal(benchmark::State& state) {
  pinned_scope pin;
  const std::string& dir = read_source();
  std::uint64_t events = 0, bytes = 0, bad = 0;
  for (auto _ : state) {
    tachyon::journal_reader in(dir);
    std::uint64_t n = 0;
    for (const tachyon::journal_record& r : in) {
      if (r.kind == tachyon::journal_record_kind::event) ++n;
      benchmark::DoNotOptimize(r.payload.data());
    }
    bad += n != g.read_events || !in.scan().clean();
    events += n;
    bytes += in.scan().bytes;
  }
  if (bad != 0) state.SkipWithError("the reader did not hand out every event, or found damage");
  state.SetItemsProcessed(static_cast<std::int64_t>(events));
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
  state.counters["events_per_pass"] = static_cast<double>(g.read_events);
}

void replay_journal(benchmark::State& state) {
  pinned_scope pin;
  const std::string& dir = read_source();
  tachyon::config cfg;
  cfg.workers = 0;
  cfg.lane_capacity = static_cast<std::uint32_t>(g.read_events);
  cfg.overflow = tachyon::overflow::fail;
  cfg.producers = 1;
  cfg.max_reserved_bytes = std::size_t{1} << 34;
  JBus bus{cfg};  // journal off: the replay is not journaled again
  std::uint64_t ran = 0;
  auto sub = bus.subscribe<J16>([&ran](const J16&) { ++ran; });
  std::uint64_t published = 0, bad = 0;
  for (auto _ : state) {
    tachyon::journal_reader in(dir);
    const tachyon::journal_replay_report rep = tachyon::replay(bus, in);
    published += rep.published;
    bad += rep.published != g.read_events || rep.refused != 0;
    state.PauseTiming();
    bus.poll();
    state.ResumeTiming();
  }
  if (bad != 0 || ran != published) state.SkipWithError("replay did not publish every event");
  state.SetItemsProcessed(static_cast<std::int64_t>(published));
}

// ---- rounds and the report -------------------------------------------------------------------

/// Keeps the last run Google Benchmark reports: each call of RunSpecifiedBenchmarks runs one.
class collector : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs)
      if (r.run_type == Run::RT_Iteration) last = r;
  }
  std::optional<Run> last;
};

struct side {
  side(std::string n, std::string b, std::string w)
      : name(std::move(n)), bench(std::move(b)), what(std::move(w)) {}
  std::string name;   // as shown
  std::string bench;  // the registered benchmark it runs
  std::string what;
  std::vector<double> values;                           // per round
  std::map<std::string, std::vector<double>> counters;  // per round
  std::string error;
};

struct ratio_spec {
  std::size_t side, peer;
  std::string target_text;  // empty: shown without a target
  double target = 0;
};

struct figure {
  std::string name, title, unit;
  std::string value;  // "time" (ns per iteration, real time), or the counter shown
  bool higher_is_better = false;
  std::vector<std::string> settings, notes;
  std::vector<side> sides;
  std::vector<ratio_spec> ratios;
  std::vector<std::string> shown_counters;
  bool fault_check = false;  // the writer never faults a page: faults_per_segment 0 each round

  std::vector<double> per_round(const ratio_spec& r) const {
    std::vector<double> out;
    const auto& a = sides[r.side].values;
    const auto& b = sides[r.peer].values;
    for (std::size_t i = 0; i < a.size() && i < b.size(); ++i)
      if (b[i] > 0 && a[i] > 0) out.push_back(a[i] / b[i]);
    return out;
  }
  bool met(const ratio_spec& r, double v) const {
    return higher_is_better ? v >= r.target : v <= r.target;
  }
};

std::string show(const std::string& unit, double v) {
  if (unit == "ns") return v >= 1e4 ? fmt("%.2f us", v / 1e3) : fmt("%.1f ns", v);
  const char* suffix = unit == "B/s" ? "B/s" : "/s";
  if (v >= 1e9) return fmt("%.2f G%s", v / 1e9, suffix);
  if (v >= 1e6) return fmt("%.2f M%s", v / 1e6, suffix);
  if (v >= 1e3) return fmt("%.1f k%s", v / 1e3, suffix);
  return fmt("%.3g %s", v, suffix);
}

double run_value(const figure& f, const benchmark::BenchmarkReporter::Run& r) {
  if (f.value == "time") return r.GetAdjustedRealTime();  // ns: every benchmark here is in ns
  const auto it = r.counters.find(f.value);
  return it == r.counters.end() ? 0 : static_cast<double>(it->second);
}

bool run_side(figure& f, side& s) {
  collector c;
  // Registered names carry Google Benchmark's suffixes (/min_time:..., /real_time).
  benchmark::RunSpecifiedBenchmarks(&c, "^" + s.bench + "(/|$)");
  if (!c.last) {
    s.error = "did not run";
    return false;
  }
  if (c.last->error_occurred) {
    s.error = c.last->error_message;
    s.values.push_back(0);
    return false;
  }
  s.values.push_back(run_value(f, *c.last));
  for (const auto& [name, counter] : c.last->counters)
    s.counters[name].push_back(static_cast<double>(counter));
  return true;
}

bool run_figure(figure& f) {
  bool ok = true;
  for (int r = 0; r < g.rounds; ++r) {
    std::vector<std::size_t> order(f.sides.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    if (r % 2) std::reverse(order.begin(), order.end());
    for (std::size_t i : order) ok &= run_side(f, f.sides[i]);
    std::fprintf(stderr, "tachyon_journal_bench: %s round %d/%d:", f.name.c_str(), r + 1, g.rounds);
    for (const side& s : f.sides)
      std::fprintf(stderr, " %s %s", s.name.c_str(),
                   s.values.empty() ? "-" : show(f.unit, s.values.back()).c_str());
    std::fprintf(stderr, "\n");
  }
  return ok;
}

/// The prepare figure's claim, per side: no fault in the chunks where every segment was
/// prepared ahead (fault_split), in any round.
struct fault_check {
  std::string side;
  double worst = 0;           // faults_ahead_per_segment, the worst round
  double segments_ahead = 0;  // in all rounds
  double made_inline = 0, segments = 0;
  bool met = false;
};

std::vector<fault_check> fault_checks(const figure& f) {
  std::vector<fault_check> out;
  if (!f.fault_check) return out;
  auto total = [](const side& s, const char* name) {
    double t = 0;
    if (const auto it = s.counters.find(name); it != s.counters.end())
      for (double x : it->second) t += x;
    return t;
  };
  for (const side& s : f.sides) {
    const auto it = s.counters.find("faults_ahead_per_segment");
    if (it == s.counters.end() || it->second.empty()) continue;
    fault_check c;
    c.side = s.name;
    c.worst = *std::max_element(it->second.begin(), it->second.end());
    c.segments_ahead = total(s, "segments_ahead");
    c.made_inline = total(s, "made_inline");
    c.segments = total(s, "segments");
    c.met = c.worst == 0 && c.segments_ahead > 0;
    out.push_back(c);
  }
  return out;
}

std::string ratio_name(const figure& f, const ratio_spec& r) {
  return f.sides[r.side].name + " / " + f.sides[r.peer].name;
}

void print_figure(const figure& f) {
  std::printf("\n== %s: %s\n", f.name.c_str(), f.title.c_str());
  for (const auto& s : f.settings) std::printf("   %s\n", s.c_str());
  std::printf("   %-44s", "round");
  for (int r = 0; r < g.rounds; ++r) std::printf(" %11d", r + 1);
  std::printf(" %11s\n", "median");
  for (const side& s : f.sides) {
    std::printf("   %-44s", s.name.c_str());
    for (double v : s.values) std::printf(" %11s", show(f.unit, v).c_str());
    std::printf(" %11s\n", show(f.unit, median(s.values)).c_str());
    for (const std::string& c : f.shown_counters) {
      const auto it = s.counters.find(c);
      if (it == s.counters.end()) continue;
      std::printf("   %-44s", ("  " + c).c_str());
      for (double v : it->second) std::printf(" %11.4g", v);
      std::printf(" %11.4g\n", median(it->second));
    }
  }
  for (const ratio_spec& r : f.ratios) {
    const auto v = f.per_round(r);
    if (v.empty()) continue;
    std::printf("   %-44s", ratio_name(f, r).c_str());
    for (double x : v) std::printf(" %11.3f", x);
    const double m = median(v);
    std::printf(" %11.3f", m);
    if (!r.target_text.empty())
      std::printf("  target %s: %s", r.target_text.c_str(), f.met(r, m) ? "met" : "MISSED");
    std::printf("\n");
  }
  for (const fault_check& c : fault_checks(f))
    std::printf(
        "   %s: faults per segment prepared ahead, worst round %.3g over %.0f segments: "
        "%s; made_inline %.0f of %.0f segments\n",
        c.side.c_str(), c.worst, c.segments_ahead,
        c.met ? "the writer never faulted (met)" : "FAULTS (missed)", c.made_inline, c.segments);
  for (const side& s : f.sides) {
    std::printf("   %s: %s\n", s.name.c_str(), s.what.c_str());
    if (!s.error.empty()) std::printf("   %s: ERROR %s\n", s.name.c_str(), s.error.c_str());
  }
  for (const auto& n : f.notes) std::printf("   note: %s\n", n.c_str());
  std::fflush(stdout);
}

std::string numbers_json(const std::vector<double>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += fmt("%s%.6g", i ? "," : "", v[i]);
  return s + "]";
}

std::string figure_json(const figure& f) {
  std::string s = "{\"figure\":" + json_string(f.name) + ",\"title\":" + json_string(f.title) +
                  ",\"unit\":" + json_string(f.unit) +
                  ",\"higher_is_better\":" + (f.higher_is_better ? "true" : "false") +
                  ",\"settings\":[";
  for (std::size_t i = 0; i < f.settings.size(); ++i)
    s += (i ? "," : "") + json_string(f.settings[i]);
  s += "],\"sides\":[";
  for (std::size_t i = 0; i < f.sides.size(); ++i) {
    const side& sd = f.sides[i];
    s += fmt("%s\n  {\"name\":%s,\"benchmark\":%s,\"what\":%s,\"median\":%.6g,", i ? "," : "",
             json_string(sd.name).c_str(), json_string(sd.bench).c_str(),
             json_string(sd.what).c_str(), median(sd.values));
    s += "\"error\":" + (sd.error.empty() ? std::string("null") : json_string(sd.error));
    s += ",\"rounds\":[";
    for (std::size_t r = 0; r < sd.values.size(); ++r)
      s += fmt("%s{\"value\":%.6g}", r ? "," : "", sd.values[r]);
    s += "],\"counters\":{";
    bool first = true;
    for (const auto& [name, v] : sd.counters) {
      s += (first ? "" : ",") + json_string(name) +
           fmt(":{\"median\":%.6g,\"rounds\":", median(v)) + numbers_json(v) + "}";
      first = false;
    }
    s += "}}";
  }
  s += "],\"ratios\":[";
  bool first = true;
  for (const ratio_spec& r : f.ratios) {
    const auto v = f.per_round(r);
    if (v.empty()) continue;
    const double m = median(v);
    const bool has_target = !r.target_text.empty();
    s += fmt("%s\n  {\"side\":%s,\"peer\":%s,\"value\":%.4f,\"min\":%.4f,\"max\":%.4f,"
             "\"per_round\":",
             first ? "" : ",", json_string(f.sides[r.side].name).c_str(),
             json_string(f.sides[r.peer].name).c_str(), m, *std::min_element(v.begin(), v.end()),
             *std::max_element(v.begin(), v.end())) +
         numbers_json(v) +
         fmt(",\"target\":%s,\"met\":%s}", has_target ? json_string(r.target_text).c_str() : "null",
             has_target ? (f.met(r, m) ? "true" : "false") : "null");
    first = false;
  }
  s += "],\"checks\":[";
  first = true;
  for (const fault_check& c : fault_checks(f)) {
    s +=
        fmt("%s\n  {\"side\":%s,\"what\":\"faults per segment prepared ahead\","
            "\"worst\":%.6g,\"segments_ahead\":%.0f,\"made_inline\":%.0f,\"segments\":%.0f,"
            "\"met\":%s}",
            first ? "" : ",", json_string(c.side).c_str(), c.worst, c.segments_ahead, c.made_inline,
            c.segments, c.met ? "true" : "false");
    first = false;
  }
  s += "],\"notes\":[";
  for (std::size_t i = 0; i < f.notes.size(); ++i) s += (i ? "," : "") + json_string(f.notes[i]);
  return s + "]}";
}

// ---- set-up ----------------------------------------------------------------------------------

/// "ext4 on /dev/vda (mounted at /)": the filesystem holding `path`, from /proc/self/mounts
/// (the longest mount point that is a prefix of it) and statfs.
std::string describe_filesystem(const std::string& path) {
  std::string best_dir, best_type, best_source;
  std::ifstream mounts("/proc/self/mounts");
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream in(line);
    std::string source, dir, type;
    if (!(in >> source >> dir >> type)) continue;
    const bool prefix =
        path == dir || (path.rfind(dir, 0) == 0 && (dir == "/" || path.size() > dir.size()) &&
                        (dir == "/" || path[dir.size()] == '/'));
    if (prefix && dir.size() >= best_dir.size()) {
      best_dir = dir;
      best_type = type;
      best_source = source;
    }
  }
  struct statfs st {};
  std::string magic;
  if (::statfs(path.c_str(), &st) == 0)
    magic = fmt(", statfs f_type 0x%llx", static_cast<unsigned long long>(st.f_type));
  if (best_dir.empty()) return "unknown filesystem" + magic;
  return best_type + " on " + best_source + " (mounted at " + best_dir + magic + ")";
}

std::string default_root_parent() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) return exe.parent_path().string();
  return std::filesystem::current_path().string();
}

void register_all() {
  using benchmark::RegisterBenchmark;
  const double t = g.min_time;
  RegisterBenchmark("publish/journal_process", publish_loop<JBus, J16>, journal_mode::on, true,
                    big_segment, false)
      ->MinTime(t);
  RegisterBenchmark("publish/journal_off", publish_loop<JBus, J16>, journal_mode::off, true,
                    big_segment, false)
      ->MinTime(t);
  RegisterBenchmark("publish/unjournaled_type", publish_loop<PBus, P16>, journal_mode::off, true,
                    big_segment, false)
      ->MinTime(t);
  RegisterBenchmark("publish_no_ts/journal_process", publish_loop<JBus, J16>, journal_mode::on,
                    false, big_segment, false)
      ->MinTime(t);
  RegisterBenchmark("publish_no_ts/journal_off", publish_loop<JBus, J16>, journal_mode::off, false,
                    big_segment, false)
      ->MinTime(t);
  RegisterBenchmark("throughput_1p1w/journal_process", throughput_1p1w<JBus, J16>, journal_mode::on)
      ->MinTime(t)
      ->UseRealTime();
  RegisterBenchmark("throughput_1p1w/journal_off", throughput_1p1w<JBus, J16>, journal_mode::off)
      ->MinTime(t)
      ->UseRealTime();
  RegisterBenchmark("write/journal_writer", write_journal_writer, big_segment, rolls::timed, false)
      ->MinTime(t);
  RegisterBenchmark("write/journal_writer_rolls_off_clock", write_journal_writer, big_segment,
                    rolls::off_the_clock, false)
      ->MinTime(t);
  RegisterBenchmark("write/memcpy", write_memcpy, big_segment)->MinTime(t);
  RegisterBenchmark("prepare/publish_1MiB", publish_loop<JBus, J16>, journal_mode::on, true,
                    small_segment, true)
      ->MinTime(t);
  RegisterBenchmark("prepare/writer_1MiB", write_journal_writer, small_segment, rolls::timed, true)
      ->MinTime(t);
  RegisterBenchmark("read/journal_reader", read_journal)->MinTime(t);
  RegisterBenchmark("replay/replay_into_manual_bus", replay_journal)->MinTime(t);
}

std::vector<figure> make_figures() {
  std::vector<figure> out;
  const std::string per =
      fmt("%d paired rounds of %.2g s per side (the order reversed every "
          "other round); ratios per round, then their median",
          g.rounds, g.min_time);
  {
    figure f;
    f.name = "publish";
    f.title = "publish() of a 16-byte journaled event, journal in process mode vs off";
    f.unit = "ns";
    f.value = "time";
    f.settings = {per,
                  "manual mode, lane_capacity 4096, overflow::fail, drained every 4096 publishes "
                  "with the clock paused; timestamps on (the default); 64 MiB segments"};
    f.sides = {{"journal_process", "publish/journal_process",
                "bus<registry<event<J16, normal, journaled>>>, config::journal in a directory, "
                "durability::process"},
               {"journal_off", "publish/journal_off", "the same bus type, journal.directory empty"},
               {"unjournaled_type", "publish/unjournaled_type",
                "bus<registry<P16>>: a registry without the journaled option"}};
    f.ratios = {{0, 1, "<= 2x", 2.0}, {1, 2, "", 0}};
    f.shown_counters = {"faults_per_segment", "made_inline", "segments"};
    out.push_back(std::move(f));
  }
  {
    figure f;
    f.name = "publish_no_ts";
    f.title = "the same with config::timestamps false (the journal reads the clock itself)";
    f.unit = "ns";
    f.value = "time";
    f.settings = {per, "as publish, timestamps = false (bench_main.cpp's publish/tachyon)"};
    f.sides = {{"journal_process", "publish_no_ts/journal_process", "journal on"},
               {"journal_off", "publish_no_ts/journal_off", "journal off"}};
    f.ratios = {{0, 1, "", 0}};
    out.push_back(std::move(f));
  }
  {
    figure f;
    f.name = "throughput_1p1w";
    f.title = "1 producer -> 1 worker, 16-byte journaled events, journal in process mode vs off";
    f.unit = "events/s";
    f.value = "items_per_second";
    f.higher_is_better = true;
    f.settings = {per,
                  "one busy_spin worker pinned to the second CPU, this thread on the first, "
                  "overflow::block, lane_capacity 8192; 4096 events an iteration, waited for"};
    f.sides = {{"journal_process", "throughput_1p1w/journal_process",
                "journal on: the producer writes each event's record, the worker its outcome"},
               {"journal_off", "throughput_1p1w/journal_off", "the same bus, journal off"}};
    f.ratios = {{0, 1, ">= 0.5x", 0.5}};
    f.shown_counters = {"made_inline", "segments"};
    out.push_back(std::move(f));
  }
  {
    figure f;
    f.name = "write";
    f.title = "journal write bandwidth vs memcpy of the same 72-byte records into touched pages";
    f.unit = "B/s";
    f.value = "bytes_per_second";
    f.higher_is_better = true;
    f.settings = {per, "72-byte records (56-byte header, 16-byte payload), 64 MiB segments / file"};
    f.sides = {
        {"journal_writer", "write/journal_writer",
         "detail::journal_writer reserve + fill (header, payload, CRC-32C) + commit, alone, "
         "through a real detail::journal (segments rolled and prepared by tachyon-journal)"},
        {"memcpy", "write/memcpy",
         "memcpy of the records into a 64 MiB MAP_SHARED file mapping, pages touched beforehand, "
         "wrapping at its end"},
        {"publish_journal_process", "publish/journal_process",
         "the publish figure's journaled side: 72 bytes of record per publish()"},
        {"journal_writer_rolls_off_clock", "write/journal_writer_rolls_off_clock",
         "journal_writer, with each write that rolls to the next segment (and makes it, if "
         "tachyon-journal has not) done with the clock paused: a record's cost when its "
         "segment is ready"}};
    f.ratios = {{0, 1, ">= 0.7x", 0.7}, {2, 1, ">= 0.7x", 0.7}, {3, 1, "", 0}};
    f.shown_counters = {"faults_per_segment", "made_inline", "segments"};
    out.push_back(std::move(f));
  }
  {
    figure f;
    f.name = "prepare";
    f.title = "segment preparation by tachyon-journal, 1 MiB segments; the writer's page faults";
    f.unit = "B/s";
    f.value = "prepare_bytes_per_s";
    f.higher_is_better = true;
    f.fault_check = true;
    f.settings = {per,
                  "value: bytes of segments made ahead / journal_stats().prepare_ns; faults: "
                  "getrusage(RUSAGE_THREAD).ru_minflt of the writing thread over the timed "
                  "stretch, per segment made in it",
                  "faults_ahead: the faults of the chunks (4096 records or publishes, cut off the "
                  "clock) in which no segment was made inline, i.e. every segment the writer "
                  "rolled onto had been prepared by tachyon-journal; the claim checked is "
                  "faults_ahead_per_segment = 0. faults_behind: those of the other chunks "
                  "(chunks_behind_share of them), where the writer made a segment itself"};
    f.sides = {{"publish_1MiB", "prepare/publish_1MiB",
                "the publish figure's loop with 1 MiB segments (the drains' outcome records on "
                "the same thread)"},
               {"writer_1MiB", "prepare/writer_1MiB", "the writer alone, 1 MiB segments"}};
    f.shown_counters = {"segments",      "made_inline",         "faults_per_segment",
                        "faults_ahead",  "segments_ahead",      "faults_ahead_per_segment",
                        "faults_behind", "chunks_behind_share", "prepare_us_per_segment"};
    out.push_back(std::move(f));
  }
  {
    figure f;
    f.name = "read";
    f.title = "journal_reader: construct (map, check every record) and iterate every record";
    f.unit = "events/s";
    f.value = "items_per_second";
    f.higher_is_better = true;
    f.settings = {per, fmt("a journal of %zu events and their outcome records, one writer, "
                           "written once before the rounds",
                           g.read_events)};
    f.sides = {{"journal_reader", "read/journal_reader", "events handed out per second"}};
    f.shown_counters = {"bytes_per_second"};
    out.push_back(std::move(f));
  }
  {
    figure f;
    f.name = "replay";
    f.title = "replay(bus, reader) into a manual bus (journal off)";
    f.unit = "events/s";
    f.value = "items_per_second";
    f.higher_is_better = true;
    f.settings = {per, "the read figure's journal; the bus drained after each pass, off the clock"};
    f.sides = {{"replay_into_manual_bus", "replay/replay_into_manual_bus",
                "events published by replay() per second, the reader's construction included"}};
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  bench::warn_if_emulated("tachyon_journal_bench");
  std::string json_path, only, dir_parent;
  std::optional<int> rounds;
  std::optional<double> min_time;
  std::vector<char*> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "tachyon_journal_bench: %s needs a value\n", flag);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--quick") {
      g.quick = true;
    } else if (a == "--json") {
      json_path = value("--json");
    } else if (a == "--only") {
      only = value("--only");
    } else if (a == "--rounds") {
      rounds = std::atoi(value("--rounds").c_str());
    } else if (a == "--min_time") {
      min_time = std::atof(value("--min_time").c_str());
    } else if (a == "--dir") {
      dir_parent = value("--dir");
    } else {
      rest.push_back(argv[i]);
    }
  }
  if (g.quick) {
    g.rounds = 3;
    g.min_time = 0.05;
    g.read_events = std::size_t{1} << 16;
  }
  if (rounds) g.rounds = std::max(1, *rounds);
  if (min_time) g.min_time = *min_time;
  (void)bench::usable_cpus();  // read before any benchmark pins this thread

  int rest_argc = static_cast<int>(rest.size());
  benchmark::Initialize(&rest_argc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(rest_argc, rest.data())) return 2;

  if (dir_parent.empty()) dir_parent = default_root_parent();
  g.root =
      (std::filesystem::path(dir_parent) / ("tachyon-journal-bench." + std::to_string(::getpid())))
          .string();
  std::error_code ec;
  std::filesystem::create_directories(g.root, ec);
  if (ec) {
    std::fprintf(stderr, "tachyon_journal_bench: cannot make %s: %s\n", g.root.c_str(),
                 ec.message().c_str());
    return 1;
  }
  g.filesystem = describe_filesystem(std::filesystem::canonical(g.root).string());
  struct remove_root {
    ~remove_root() {
      std::error_code e;
      std::filesystem::remove_all(g.root, e);
    }
  } cleanup;

  register_all();
  std::vector<figure> figures = make_figures();
  std::printf("tachyon_journal_bench: %s run, %d rounds of %.2g s per side, %zu usable CPUs\n",
              g.quick ? "quick" : "full", g.rounds, g.min_time, bench::usable_cpus().size());
  std::printf("journal directories under %s: %s\n", g.root.c_str(), g.filesystem.c_str());
  std::fflush(stdout);

  bool ok = true;
  std::vector<const figure*> ran;
  for (figure& f : figures) {
    if (!only.empty() && ("," + only + ",").find("," + f.name + ",") == std::string::npos) continue;
    try {
      ok &= run_figure(f);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "tachyon_journal_bench: %s: %s\n", f.name.c_str(), e.what());
      f.notes.push_back(std::string("failed: ") + e.what());
      ok = false;
    }
    print_figure(f);
    ran.push_back(&f);
  }

  if (!json_path.empty()) {
    std::string s =
        "{" + bench::emulation_json_fields() +
        fmt("\"quick\":%s,\"rounds\":%d,\"min_time\":%.3g,\"cpus\":%zu,",
            g.quick ? "true" : "false", g.rounds, g.min_time, bench::usable_cpus().size()) +
        "\"directory\":" + json_string(g.root) + ",\"filesystem\":" + json_string(g.filesystem) +
        ",\"figures\":[";
    for (std::size_t i = 0; i < ran.size(); ++i) s += (i ? ",\n" : "\n") + figure_json(*ran[i]);
    s += "\n]}\n";
    std::FILE* out = std::fopen(json_path.c_str(), "w");
    if (out == nullptr || std::fputs(s.c_str(), out) < 0 || std::fclose(out) != 0) {
      std::fprintf(stderr, "tachyon_journal_bench: cannot write %s\n", json_path.c_str());
      return 1;
    }
  }
  benchmark::Shutdown();
  return ok ? 0 : 1;
}
