// Crash safety of the journal: a child process (journal_child.cpp) killed with SIGKILL at a
// moment chosen by a seed, a torn tail and corrupted bytes made on purpose, a full disk (a file
// size limit, and a small tmpfs where this machine lets the test mount one), and the files a
// hostile user leaves in a journal directory. Every test reads back what it can prove the
// journal owes: the events whose publish() returned ok, each exactly once and intact.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "common.hpp"
#include "journal/crash_shared.hpp"
#include "own_program.hpp"

// Last: it defines macros (BLOCK_SIZE) that the headers above use as names.
#include <sys/mount.h>

extern char** environ;

namespace {

namespace fs = std::filesystem;
namespace fmt = tachyon::detail::journal_format;
using kind = tachyon::journal_problem::kind;
using tachyon::result;

constexpr std::size_t segment_bytes = 64u << 10;  // the smallest allowed: many rolls

/// Waits until pred() holds, polling every 100 us (the child needs the CPUs more than this
/// thread does); false only after a minute, which no healthy run comes near.
template <class Pred>
bool within_a_minute(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return true;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// The shared memory of one child: a file both map.
struct shared_memory {
  fs::path path;
  jc::shared* p = nullptr;
  explicit shared_memory(const fs::path& at) : path(at) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ::ftruncate(fd, sizeof(jc::shared)) != 0) throw std::runtime_error("shm file");
    void* m = ::mmap(nullptr, sizeof(jc::shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (m == MAP_FAILED) throw std::runtime_error("shm map");
    p = static_cast<jc::shared*>(m);  // zeros: nothing acknowledged yet
  }
  ~shared_memory() { ::munmap(p, sizeof(jc::shared)); }
  jc::shared* operator->() const { return p; }
  std::uint64_t acked(std::uint32_t t) const { return p->acked[t].load(std::memory_order_acquire); }
  std::uint64_t acked_total() const {
    std::uint64_t n = 0;
    for (std::uint32_t t = 0; t < jc::max_threads; ++t) n += acked(t);
    return n;
  }
};

/// tachyon_journal_child, started with posix_spawn (no shell), its output in `log`.
class child {
 public:
  child(const std::vector<std::string>& args, const fs::path& log) : log_(log) {
    std::vector<std::string> argv = tachyon::test::own_program({TACHYON_JOURNAL_CHILD});
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    const int e = ::posix_spawn(&pid_, argv[0].c_str(), &fa, nullptr, cargv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (e != 0) throw std::runtime_error("posix_spawn: " + std::string(std::strerror(e)));
  }
  ~child() {
    if (!reaped_) kill9();
  }
  child(const child&) = delete;
  child& operator=(const child&) = delete;

  /// Whether it has ended (reaped if so).
  bool ended() {
    if (reaped_) return true;
    if (::waitpid(pid_, &status_, WNOHANG) == pid_) reaped_ = true;
    return reaped_;
  }
  /// SIGKILL, then reaped: the kernel ends it at once, so this wait is bounded.
  void kill9() {
    if (reaped_) return;
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, &status_, 0) != pid_ && errno == EINTR) {
    }
    reaped_ = true;
  }
  /// Waits (a minute at most, then SIGKILL) for it to exit; its exit status, or -1 if it did not
  /// exit by itself.
  int exit_status() {
    if (!within_a_minute([&] { return ended(); })) kill9();
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
  }
  bool killed_by_sigkill() const {
    return reaped_ && WIFSIGNALED(status_) && WTERMSIG(status_) == SIGKILL;
  }
  std::string output() const { return slurp(log_); }

 private:
  fs::path log_;
  pid_t pid_ = -1;
  int status_ = 0;
  bool reaped_ = false;
};

/// A record as read, copied out of the reader's maps.
struct record {
  std::uint64_t run_id;
  std::uint32_t writer;
  std::uint64_t number;
  std::string file;
  std::uint64_t offset;
  tachyon::journal_record_kind kind;
  std::uint64_t sequence;
  std::vector<std::byte> payload;
  std::optional<tachyon::outcome> outcome;
  std::optional<jc::event_id> id;  // for an event: which of jc's, if whole and as published
  bool operator==(const record& o) const {
    return run_id == o.run_id && writer == o.writer && number == o.number && file == o.file &&
           offset == o.offset && kind == o.kind && sequence == o.sequence && payload == o.payload &&
           outcome == o.outcome;
  }
};

struct journal_contents {
  std::vector<record> records;  // events and outcome records, in the reader's order
  tachyon::journal_scan scan;
  std::vector<tachyon::journal_segment_info> segments;
  std::vector<record> events() const {
    std::vector<record> out;
    for (const auto& r : records)
      if (r.kind == tachyon::journal_record_kind::event) out.push_back(r);
    return out;
  }
  std::vector<tachyon::journal_problem> problems(kind k) const {
    std::vector<tachyon::journal_problem> out;
    for (const auto& p : scan.problems)
      if (p.what == k) out.push_back(p);
    return out;
  }
  std::set<std::uint64_t> runs() const {
    std::set<std::uint64_t> out;
    for (const auto& r : records) out.insert(r.run_id);
    return out;
  }
};

journal_contents read_journal(const fs::path& dir) {
  tachyon::journal_reader in(dir, {.outcome_records = true});
  journal_contents c;
  for (const auto& r : in) {
    record x{r.run_id,  r.writer,    r.number,          std::string(r.file),
             r.offset,  r.kind,      r.header.sequence, {r.payload.begin(), r.payload.end()},
             r.outcome, std::nullopt};
    if (r.kind == tachyon::journal_record_kind::event) x.id = jc::identify(r);
    c.records.push_back(std::move(x));
  }
  c.scan = in.scan();
  c.segments = in.segments();
  return c;
}

std::string describe(const tachyon::journal_scan& s) {
  std::string out;
  for (const auto& p : s.problems)
    out += std::string(tachyon::to_string(p.what)) + " " + p.file + " @" +
           std::to_string(p.offset) + " (" + std::to_string(p.bytes) + "): " + p.detail + "\n";
  return out;
}

/// Checks what a killed child owes: every acknowledged event (thread t's 0 .. acked[t] - 1)
/// exactly once, intact, at most one more per thread (its publish() had committed the record
/// but not yet returned), nothing else; no record failing its check, no gap; torn tails only at
/// the end of a segment's records, one per writer at most.
void expect_acknowledged_in_journal(const journal_contents& c, const shared_memory& shm,
                                    std::uint32_t threads) {
  EXPECT_EQ(c.scan.corrupt, 0u) << describe(c.scan);
  EXPECT_EQ(c.scan.bad_segments, 0u) << describe(c.scan);
  EXPECT_EQ(c.scan.gaps, 0u) << describe(c.scan);
  std::set<std::string> torn_files;
  for (const auto& p : c.problems(kind::torn_tail)) {
    EXPECT_TRUE(torn_files.insert(p.file).second) << "two torn tails in " << p.file;
    // A torn tail ends its segment: no good record of its file lies past it.
    for (const auto& r : c.records)
      if (r.file == p.file) {
        EXPECT_LT(r.offset, p.offset) << describe(c.scan);
      }
  }
  std::set<std::uint32_t> writers;
  for (const auto& s : c.segments) writers.insert(s.writer);
  EXPECT_LE(c.scan.torn_tails, writers.size());
  // An outcome without its event: a worker settled an event whose record its publisher had
  // filled but not yet committed (publish() commits once the event is queued) when the kill
  // came; that publish() never returned ok. One per publishing thread at most.
  EXPECT_LE(c.scan.orphan_outcomes, threads);

  std::map<std::uint32_t, std::set<std::uint64_t>> seen;
  for (const auto& r : c.events()) {
    ASSERT_TRUE(r.id.has_value()) << "a record that is not one the child published, at " << r.file
                                  << " @" << r.offset;
    ASSERT_LT(r.id->thread, threads);
    EXPECT_TRUE(seen[r.id->thread].insert(r.id->k).second)
        << "thread " << r.id->thread << " event " << r.id->k << " twice";
    if (r.outcome) {
      EXPECT_EQ(*r.outcome, tachyon::outcome::dispatched);
    }
  }
  for (std::uint32_t t = 0; t < threads; ++t) {
    const std::uint64_t acked = shm.acked(t);
    const auto& s = seen[t];
    // Ids 0 .. acked - 1, and perhaps acked: no other number, none missing.
    EXPECT_GE(s.size(), acked) << "thread " << t;
    EXPECT_LE(s.size(), acked + 1) << "thread " << t;
    if (!s.empty()) {
      EXPECT_EQ(*s.begin(), 0u);
      EXPECT_EQ(*s.rbegin(), s.size() - 1) << "thread " << t << ": not 0, 1, 2, ...";
    }
  }
}

/// A bus in this process on `dir` (after the child): `n` events of thread `t`, all dispatched.
std::uint64_t append_run(const fs::path& dir, std::uint32_t t, std::uint64_t n) {
  tachyon::config c;
  c.workers = 1;
  c.journal.directory = dir.string();
  c.journal.segment_bytes = segment_bytes;
  tachyon::bus<jt::Events> bus(c);
  std::atomic<std::uint64_t> ran{0};
  auto a = bus.subscribe<jt::Tick>([&](const jt::Tick&) { ran.fetch_add(1); });
  auto b = bus.subscribe<jt::Order>([&](const jt::Order&) { ran.fetch_add(1); });
  for (std::uint64_t k = 0; k < n; ++k) EXPECT_EQ(jc::publish(bus, t, k), result::ok);
  EXPECT_TRUE(within_a_minute([&] { return ran.load() == n; }));
  return bus.journal_run_id();
}

/// After a kill: a new bus opens the directory (the dead child's lock went with it) and appends
/// a run of its own; the old run's records are unchanged, the new run's all there.
void expect_new_run_appends(const fs::path& dir, const journal_contents& before) {
  constexpr std::uint32_t t = jc::max_threads - 1;
  const std::uint64_t run = append_run(dir, t, 300);
  const journal_contents after = read_journal(dir);
  std::vector<record> old;
  std::uint64_t fresh = 0;
  for (const auto& r : after.records) {
    if (r.run_id != run) {
      old.push_back(r);
    } else if (r.kind == tachyon::journal_record_kind::event) {
      ASSERT_TRUE(r.id.has_value());
      EXPECT_EQ(r.id->thread, t);
      EXPECT_EQ(r.id->k, fresh++);  // one thread: its order
    }
  }
  EXPECT_EQ(fresh, 300u);
  EXPECT_EQ(old.size(), before.records.size());
  EXPECT_TRUE(old == before.records) << "the earlier runs' records changed";
  EXPECT_EQ(after.runs().size(), before.runs().size() + 1);
  EXPECT_EQ(after.problems(kind::torn_tail).size(), before.problems(kind::torn_tail).size());
  EXPECT_EQ(after.scan.problems.size(), before.scan.problems.size()) << describe(after.scan);
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_NE(e.path().extension(), ".ahead") << "a segment never taken left behind: " << e.path();
}

// ---- kill -9 at a moment chosen by a seed ---------------------------------------------------

struct kill_case {
  std::uint64_t seed;
  std::uint32_t threads;
  const char* durability;
};

std::ostream& operator<<(std::ostream& o, const kill_case& k) {
  return o << "seed " << k.seed << ", " << k.threads << " thread(s), " << k.durability;
}

class KilledChild : public ::testing::TestWithParam<kill_case> {};

TEST_P(KilledChild, EveryAcknowledgedEventIsInTheJournalExactlyOnceAndANewBusAppends) {
  const kill_case kc = GetParam();
  std::mt19937_64 rng(kc.seed);
  const bool slow = std::string(kc.durability) == "every_event";  // an msync per event
  const std::uint64_t spread = slow ? 150 : tt::sanitized() ? 3000 : 12000;
  const std::uint64_t k_events = 1 + rng() % spread;  // the kill comes after this many oks
  jt::temp_dir tmp;
  const fs::path dir = tmp.path / "journal";
  shared_memory shm(tmp.path / "shm");
  {
    // A cap on what the child writes if this thread is held up (it is killed long before).
    const std::uint64_t cap = k_events + 200000;
    child c({"mode=run", "dir=" + dir.string(), "shm=" + shm.path.string(),
             "durability=" + std::string(kc.durability), "segment=" + std::to_string(segment_bytes),
             "threads=" + std::to_string(kc.threads), "count=" + std::to_string(cap), "end=park"},
            tmp.path / "log");
    ASSERT_TRUE(within_a_minute([&] { return shm.acked_total() >= k_events || c.ended(); }));
    c.kill9();
    ASSERT_TRUE(c.killed_by_sigkill()) << shm->error << "\n" << c.output();
  }
  const std::uint64_t child_run = shm->run_id.load(std::memory_order_acquire);
  ASSERT_NE(child_run, 0u);
  ASSERT_GE(shm.acked_total(), k_events);
  const journal_contents c = read_journal(dir);
  ASSERT_EQ(c.runs(), std::set<std::uint64_t>{child_run});
  expect_acknowledged_in_journal(c, shm, kc.threads);
  std::uint64_t events = 0;
  for (std::uint32_t t = 0; t < kc.threads; ++t) events += shm.acked(t);
  EXPECT_GE(c.scan.records, events);
  EXPECT_LE(c.scan.records, events + kc.threads);
  expect_new_run_appends(dir, c);
}

// CI's fixed set: each seed kills at a different count; one and two publishing threads; 64 KiB
// segments, so that kills land before, during and after rolls; each durability mode.
INSTANTIATE_TEST_SUITE_P(Seeds, KilledChild,
                         ::testing::Values(kill_case{11, 1, "process"}, kill_case{12, 2, "process"},
                                           kill_case{13, 1, "process"}, kill_case{14, 2, "process"},
                                           kill_case{15, 2, "interval"},
                                           kill_case{16, 1, "every_event"}));

TEST(KilledChild, DuringBusConstructionAndDestruction) {
  // Buses made and destroyed back to back with a few events each: most of the child's time is
  // spent opening and closing the journal (lock, segments made, cut to their ends, removed).
  for (const std::uint64_t seed : {21u, 22u, 23u}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    const std::uint64_t k_events = 1 + rng() % 150;
    jt::temp_dir tmp;
    const fs::path dir = tmp.path / "journal";
    shared_memory shm(tmp.path / "shm");
    {
      child c({"mode=cycle", "dir=" + dir.string(), "shm=" + shm.path.string(), "count=3",
               "segment=" + std::to_string(segment_bytes)},
              tmp.path / "log");
      ASSERT_TRUE(within_a_minute([&] { return shm.acked(0) >= k_events || c.ended(); }));
      c.kill9();
      ASSERT_TRUE(c.killed_by_sigkill()) << shm->error << "\n" << c.output();
    }
    const journal_contents c = read_journal(dir);
    EXPECT_LE(c.runs().size(), shm->runs.load());
    expect_acknowledged_in_journal(c, shm, 1);
    expect_new_run_appends(dir, c);
  }
}

TEST(KilledChild, ASecondBusOnTheDirectoryIsRefusedWhileTheFirstLives) {
  jt::temp_dir tmp;
  const fs::path dir = tmp.path / "journal";
  shared_memory first(tmp.path / "shm1"), second(tmp.path / "shm2"), third(tmp.path / "shm3");
  auto args = [&](const shared_memory& s, const char* end) {
    return std::vector<std::string>{"mode=run", "dir=" + dir.string(), "shm=" + s.path.string(),
                                    "count=50", std::string("end=") + end};
  };
  child a(args(first, "park"), tmp.path / "log1");
  ASSERT_TRUE(within_a_minute([&] { return first.acked(0) == 50 || a.ended(); }));
  ASSERT_FALSE(a.ended()) << first->error << a.output();
  {
    child b(args(second, "exit"), tmp.path / "log2");
    EXPECT_EQ(b.exit_status(), 3) << b.output();
    const std::string why = second->error;
    EXPECT_NE(why.find("'" + dir.string() + "' is in use by another bus"), std::string::npos)
        << why;
    EXPECT_NE(why.find("one bus at a time may write a journal directory"), std::string::npos)
        << why;
    EXPECT_EQ(second->runs.load(), 0u);
    EXPECT_EQ(second.acked(0), 0u);
  }
  a.kill9();
  child c(args(third, "exit"), tmp.path / "log3");
  EXPECT_EQ(c.exit_status(), 0) << third->error << c.output();
  EXPECT_EQ(third->done.load(), 1u);
  const journal_contents j = read_journal(dir);
  EXPECT_TRUE(j.scan.clean()) << describe(j.scan);
  EXPECT_EQ(j.runs().size(), 2u);
  EXPECT_EQ(j.scan.records, 100u);  // ids 0 .. 49 of thread 0, once per run
  // The last run's 50 outcomes (it drained); the killed run's worker may not have settled all
  // of its events when the kill came.
  EXPECT_GE(j.scan.outcome_records, 50u);
  EXPECT_LE(j.scan.outcome_records, 100u);
  EXPECT_EQ(j.scan.orphan_outcomes, 0u);
}

// ---- damage made on purpose -----------------------------------------------------------------

/// A clean journal in `dir` with thread 0's events 0 .. n - 1, all dispatched.
std::uint64_t clean_journal(const fs::path& dir, std::uint64_t n) { return append_run(dir, 0, n); }

/// The publishing thread's segments (those holding event records), in its order.
std::vector<tachyon::journal_segment_info> event_segments(const journal_contents& c) {
  std::vector<tachyon::journal_segment_info> out;
  for (const auto& s : c.segments)
    if (s.records != 0) out.push_back(s);
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.writer_segment < b.writer_segment; });
  return out;
}

std::vector<record> events_in(const journal_contents& c, const std::string& file) {
  std::vector<record> out;
  for (const auto& r : c.events())
    if (r.file == file) out.push_back(r);
  return out;
}

void write_at(const fs::path& file, std::uint64_t offset, const void* bytes, std::size_t n) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0) << file;
  ASSERT_EQ(::pwrite(fd, bytes, n, static_cast<off_t>(offset)), static_cast<ssize_t>(n));
  ::close(fd);
}

void flip_byte(const fs::path& file, std::uint64_t offset) {
  const int fd = ::open(file.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0) << file;
  unsigned char b = 0;
  ASSERT_EQ(::pread(fd, &b, 1, static_cast<off_t>(offset)), 1);
  b ^= 0x5a;
  ASSERT_EQ(::pwrite(fd, &b, 1, static_cast<off_t>(offset)), 1);
  ::close(fd);
}

/// Replays `dir` into a manual-mode bus and runs it: the ids its handlers saw (each with the
/// replayed flag), and the report.
std::pair<std::set<jc::event_id>, tachyon::journal_replay_report> replay_all(const fs::path& dir) {
  tachyon::bus<jt::Events> bus(tt::manual(1u << 14));
  std::set<jc::event_id> got;
  bool flags_ok = true;
  auto a = bus.subscribe<jt::Tick>([&](const jt::Tick& t, const tachyon::meta& m) {
    got.insert({static_cast<std::uint32_t>(t.id >> 48), t.id & ((1ull << 48) - 1)});
    flags_ok = flags_ok && (m.flags & tachyon::meta_flags::replayed) != 0;
  });
  auto b = bus.subscribe<jt::Order>([&](const jt::Order& o, const tachyon::meta& m) {
    got.insert({static_cast<std::uint32_t>(std::stoul(o.sku.substr(1))), o.qty});
    flags_ok = flags_ok && (m.flags & tachyon::meta_flags::replayed) != 0;
  });
  tachyon::journal_replay_report rep = tachyon::replay(bus, dir);
  bus.poll();
  EXPECT_TRUE(flags_ok);
  return {got, rep};
}

std::set<jc::event_id> ids(std::uint64_t n, const std::set<std::uint64_t>& without = {}) {
  std::set<jc::event_id> out;
  for (std::uint64_t k = 0; k < n; ++k)
    if (!without.count(k)) out.insert({0, k});
  return out;
}

TEST(JournalDamage, ATornTailIsReportedWhereItIsAndEveryWholeRecordIsHandedOut) {
  constexpr std::uint64_t n = 1500;  // a few segments
  jt::temp_dir tmp;
  clean_journal(tmp.path, n);
  const journal_contents before = read_journal(tmp.path);
  ASSERT_TRUE(before.scan.clean()) << describe(before.scan);
  const auto segs = event_segments(before);
  ASSERT_GE(segs.size(), 2u);
  const std::string last = segs.back().file;
  const std::uint64_t end = jt::records_end(last);  // a closed segment keeps its size
  ASSERT_EQ(end % fmt::record_align, 0u);

  // What a process killed inside fill() leaves: the header (its length still 0) and part of
  // the payload; the file ends before the rest.
  fmt::record_header h{};
  h.kind = fmt::event;
  h.number = n;
  h.sequence = n + 1;
  const jt::Tick half{7, 7.0};
  std::vector<std::byte> torn(sizeof h + 8);
  std::memcpy(torn.data(), &h, sizeof h);
  std::memcpy(torn.data() + sizeof h, &half, 8);
  write_at(last, end, torn.data(), torn.size());

  const journal_contents c = read_journal(tmp.path);
  ASSERT_EQ(c.scan.problems.size(), 1u) << describe(c.scan);
  const auto& p = c.scan.problems[0];
  EXPECT_EQ(p.what, kind::torn_tail);
  EXPECT_EQ(p.file, last);
  EXPECT_EQ(p.offset, end);
  EXPECT_EQ(p.bytes, fmt::padded(torn.size()));
  EXPECT_EQ(c.scan.torn_tails, 1u);
  EXPECT_EQ(c.scan.torn_bytes, fmt::padded(torn.size()));
  EXPECT_EQ(c.records, before.records);  // every whole record, as before
  EXPECT_EQ(c.scan.records, n);

  // A last record whose length is there but whose bytes fail their checksum (damage at the
  // very end): a torn tail too, never handed out.
  h.length = static_cast<std::uint32_t>(sizeof h + sizeof half);
  h.checksum = 0xdeadbeef;
  std::vector<std::byte> bad(sizeof h + sizeof half);
  std::memcpy(bad.data(), &h, sizeof h);
  std::memcpy(bad.data() + sizeof h, &half, sizeof half);
  write_at(last, end, bad.data(), bad.size());  // over the first one
  {
    const journal_contents d = read_journal(tmp.path);
    ASSERT_EQ(d.scan.problems.size(), 1u) << describe(d.scan);
    EXPECT_EQ(d.scan.problems[0].what, kind::torn_tail);
    EXPECT_EQ(d.scan.problems[0].offset, end);
    EXPECT_EQ(d.records, before.records);
  }

  // Replay stops at the last whole record and says what it skipped.
  const auto [got, rep] = replay_all(tmp.path);
  EXPECT_EQ(got, ids(n));
  EXPECT_EQ(rep.published, n);
  EXPECT_EQ(rep.refused + rep.skipped_types + rep.undecodable, 0u) << rep.error;
  EXPECT_EQ(rep.scan.torn_tails, 1u);
  EXPECT_EQ(rep.scan.torn_bytes, fmt::padded(bad.size()));
}

TEST(JournalDamage, CorruptedBytesInTheMiddleAreReportedAndSkippedByReplay) {
  constexpr std::uint64_t n = 3000;
  jt::temp_dir tmp;
  clean_journal(tmp.path, n);
  const journal_contents before = read_journal(tmp.path);
  ASSERT_TRUE(before.scan.clean()) << describe(before.scan);
  const auto segs = event_segments(before);
  ASSERT_GE(segs.size(), 3u);
  const std::string file = segs[1].file;  // a middle segment
  const auto in_file = events_in(before, file);
  ASSERT_GE(in_file.size(), 300u);
  const record& a = in_file[100];  // a payload byte flipped
  const record& b = in_file[200];  // a header byte (its sequence) flipped
  flip_byte(file, a.offset + sizeof(fmt::record_header) + a.payload.size() / 2);
  flip_byte(file, b.offset + offsetof(fmt::record_header, sequence) + 1);

  const journal_contents c = read_journal(tmp.path);
  const auto corrupt = c.problems(kind::corrupt);
  ASSERT_EQ(corrupt.size(), 2u) << describe(c.scan);
  EXPECT_EQ(corrupt[0].file, file);
  EXPECT_EQ(corrupt[0].offset, a.offset);
  EXPECT_EQ(corrupt[0].bytes, fmt::padded(sizeof(fmt::record_header) + a.payload.size()));
  EXPECT_EQ(corrupt[1].file, file);
  EXPECT_EQ(corrupt[1].offset, b.offset);
  EXPECT_EQ(corrupt[1].bytes, fmt::padded(sizeof(fmt::record_header) + b.payload.size()));
  EXPECT_EQ(c.scan.corrupt, 2u);
  // The records they held leave their thread's numbers one short each: not a gap of its own,
  // since the damage reported just before it explains it.
  EXPECT_EQ(c.problems(kind::gap).size(), 0u) << describe(c.scan);
  EXPECT_EQ(c.scan.problems.size(), 2u) << describe(c.scan);
  EXPECT_EQ(c.scan.orphan_outcomes, 2u);  // their outcomes are in the worker's segments
  EXPECT_EQ(c.scan.torn_tails + c.scan.bad_segments, 0u);
  // Exactly those two are missing; every other record is as it was.
  std::vector<record> expected;
  for (const auto& r : before.records)
    if (!(r.file == file && (r.offset == a.offset || r.offset == b.offset))) expected.push_back(r);
  EXPECT_EQ(c.records, expected);

  const auto [got, rep] = replay_all(tmp.path);
  EXPECT_EQ(got, ids(n, {a.id->k, b.id->k}));
  EXPECT_EQ(rep.published, n - 2);
  EXPECT_EQ(rep.refused + rep.skipped_types + rep.undecodable, 0u) << rep.error;
  EXPECT_EQ(rep.scan.corrupt, 2u);
  EXPECT_EQ(rep.scan.corrupt_bytes, corrupt[0].bytes + corrupt[1].bytes);
  EXPECT_EQ(rep.scan.gaps, 0u);  // explained by the damage reported before each
}

TEST(JournalDamage, ATruncatedSegmentAndForeignFilesAreReportedNotFatal) {
  constexpr std::uint64_t n = 4000;
  jt::temp_dir tmp;
  clean_journal(tmp.path, n);
  const journal_contents before = read_journal(tmp.path);
  ASSERT_TRUE(before.scan.clean()) << describe(before.scan);
  const auto segs = event_segments(before);
  ASSERT_GE(segs.size(), 4u);

  // A middle segment cut to half its size, inside a record.
  const std::string cut_file = segs[1].file;
  const auto in_cut = events_in(before, cut_file);
  const std::uint64_t half = jt::records_end(cut_file) / 2;
  std::size_t first_lost = 0;
  while (in_cut[first_lost].offset + sizeof(fmt::record_header) +
             in_cut[first_lost].payload.size() <=
         half)
    ++first_lost;
  const std::uint64_t cut_at = in_cut[first_lost].offset + 20;  // inside its header
  fs::resize_file(cut_file, cut_at);
  const std::uint64_t lost = in_cut.size() - first_lost;

  // A later segment whose header is damaged: skipped whole.
  const std::string bad_file = segs[2].file;
  const std::uint64_t lost_bad = events_in(before, bad_file).size();
  flip_byte(bad_file, offsetof(fmt::segment_header, run_start_ns) + 2);

  // Files that are not segments, under the segments' suffix.
  const fs::path empty = tmp.path / "empty.tjs";
  const fs::path text = tmp.path / "notes.tjs";
  const fs::path folder = tmp.path / "folder.tjs";
  const fs::path fifo = tmp.path / "fifo.tjs";  // opened plainly, it would block the reader
  std::ofstream(empty).close();
  std::ofstream(text) << std::string(300, 'x');
  fs::create_directory(folder);
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // What a writer killed while taking over a prepared segment leaves: its header half
  // rewritten (failing its check) and no record. Nothing is lost: skipped, not reported.
  const fs::path taken = tmp.path / "taken.tjs";
  {
    std::vector<char> bytes(2 * fmt::header_room, 0);
    std::ifstream(segs[0].file, std::ios::binary).read(bytes.data(), fmt::header_room);
    bytes[offsetof(fmt::segment_header, writer_segment)] ^= 1;
    std::ofstream(taken, std::ios::binary).write(bytes.data(), static_cast<long>(bytes.size()));
  }
  // What a process killed while making a segment leaves (the next bus removes it).
  const fs::path part = tmp.path / "00000000000000000001-0000000000000001-ahead-00000000.tjs.ahead";
  std::ofstream(part) << "half made";

  const journal_contents c = read_journal(tmp.path);
  const auto torn = c.problems(kind::torn_tail);
  ASSERT_EQ(torn.size(), 1u) << describe(c.scan);
  EXPECT_EQ(torn[0].file, cut_file);
  EXPECT_EQ(torn[0].offset, in_cut[first_lost].offset);
  const auto bad = c.problems(kind::bad_segment);
  ASSERT_EQ(bad.size(), 5u) << describe(c.scan);
  std::map<std::string, std::string> why;
  for (const auto& p : bad) why[p.file] = p.detail;
  EXPECT_NE(why[bad_file].find("fails its checksum"), std::string::npos) << why[bad_file];
  EXPECT_NE(why[empty.string()].find("shorter than a segment header"), std::string::npos);
  EXPECT_NE(why[text.string()].find("not a tachyon journal segment"), std::string::npos);
  EXPECT_NE(why[folder.string()].find("not a regular file"), std::string::npos);
  EXPECT_NE(why[fifo.string()].find("not a regular file"), std::string::npos);
  EXPECT_EQ(why.count(taken.string()), 0u);
  // The thread's numbers jump over what the cut and the bad segment took.
  const auto gaps = c.problems(kind::gap);
  ASSERT_EQ(gaps.size(), 1u) << describe(c.scan);
  EXPECT_EQ(gaps[0].file, segs[3].file);
  // Records, not events: the publisher's segments hold no outcome records (the worker settles).
  EXPECT_EQ(gaps[0].bytes, lost + lost_bad);
  EXPECT_EQ(c.scan.corrupt, 0u);
  EXPECT_EQ(c.scan.records, n - lost - lost_bad);
  EXPECT_EQ(c.scan.orphan_outcomes, lost + lost_bad);

  const auto [got, rep] = replay_all(tmp.path);
  EXPECT_EQ(rep.published, n - lost - lost_bad);
  EXPECT_EQ(got.size(), n - lost - lost_bad);
  EXPECT_EQ(rep.scan.bad_segments, 5u);

  // And a bus still opens the directory and appends; the half-made segment goes.
  append_run(tmp.path, 1, 10);
  EXPECT_EQ(read_journal(tmp.path).scan.records, n - lost - lost_bad + 10);
  EXPECT_FALSE(fs::exists(part));
}

// ---- a full disk ----------------------------------------------------------------------------

/// Runs the child in mode=full and checks that every publish that returned ok is in the
/// journal and none that was refused is, that refusals were counted and explained, and that
/// publishing works again once there is room.
void expect_refusals_accounted(const fs::path& dir, const shared_memory& shm,
                               const std::string& errno_text) {
  const std::uint64_t total = shm->ok + shm->refused + shm->other;
  EXPECT_EQ(shm->other, 0u);
  EXPECT_GE(shm->refused, 20u);
  EXPECT_EQ(shm->stats_refused, shm->refused);
  EXPECT_EQ(shm->metric_refused, shm->refused);
  EXPECT_EQ(shm->metric_accepted, shm->ok);  // a refused event was never accepted
  EXPECT_EQ(shm->stats_records, shm->ok);
  const std::string last_error = shm->last_error;
  EXPECT_NE(last_error.find(dir.string() + "/"), std::string::npos) << last_error;
  EXPECT_NE(last_error.find(".tjs"), std::string::npos) << last_error;
  EXPECT_NE(last_error.find(errno_text), std::string::npos) << last_error;

  std::set<jc::event_id> oks;
  for (std::uint64_t k = 0; k < total; ++k) {
    ASSERT_NE(shm->result[k], jc::not_published);
    if (shm->result[k] == static_cast<std::uint8_t>(result::ok)) oks.insert({0, k});
  }
  const journal_contents c = read_journal(dir);
  EXPECT_TRUE(c.scan.clean()) << describe(c.scan);
  std::set<jc::event_id> journaled;
  for (const auto& r : c.events()) {
    ASSERT_TRUE(r.id.has_value());
    EXPECT_TRUE(journaled.insert(*r.id).second);
  }
  EXPECT_EQ(journaled, oks);  // every ok there; no refused one
  EXPECT_EQ(c.scan.outcome_records, shm->stats_outcomes);
  EXPECT_EQ(shm->stats_outcomes + shm->stats_outcomes_lost, shm->ok);
}

TEST(JournalDiskFull, AFileSizeLimitRefusesPublishesCountedAndExplainedThenRecovers) {
  jt::temp_dir tmp;
  const fs::path dir = tmp.path / "journal";
  shared_memory shm(tmp.path / "shm");
  child c(
      {"mode=full", "dir=" + dir.string(), "shm=" + shm.path.string(), "count=300",
       "segment=" + std::to_string(segment_bytes), "limit=" + std::to_string(segment_bytes / 2)},
      tmp.path / "log");
  ASSERT_EQ(c.exit_status(), 0) << shm->error << "\n" << c.output();
  ASSERT_EQ(shm->done.load(), 1u);
  constexpr auto ok = static_cast<std::uint8_t>(result::ok);
  for (std::uint64_t k = 0; k < 300; ++k) EXPECT_EQ(shm->result[k], ok) << k;  // before the limit
  const std::uint64_t total = shm->ok + shm->refused + shm->other;
  for (std::uint64_t k = total - 300; k < total; ++k) EXPECT_EQ(shm->result[k], ok) << k;  // after
  expect_refusals_accounted(dir, shm, std::strerror(EFBIG));
}

/// A tmpfs of `bytes` mounted at `at` for the test's length, if this process may mount one.
struct small_tmpfs {
  fs::path at;
  bool mounted = false;
  std::string why_not;
  small_tmpfs(const fs::path& where, std::size_t bytes) : at(where) {
    fs::create_directories(at);
    const std::string opts = "size=" + std::to_string(bytes) + ",mode=0700";
    if (::mount("tmpfs", at.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) == 0)
      mounted = true;
    else
      why_not = std::strerror(errno);
  }
  ~small_tmpfs() {
    if (mounted) ::umount2(at.c_str(), MNT_DETACH);
  }
};

TEST(JournalDiskFull, ASmallTmpfsRefusesPublishesCountedAndExplainedThenRecovers) {
  jt::temp_dir tmp;
  small_tmpfs fs_(tmp.path / "tmpfs", 16 * segment_bytes);
  if (!fs_.mounted)
    GTEST_SKIP() << "cannot mount a tmpfs here (" << fs_.why_not
                 << "); JournalDiskFull.AFileSizeLimit... covers a full disk";
  const fs::path dir = fs_.at / "journal";
  // Ballast, so that the journal finds the disk full within a few segments; removed to make
  // room again.
  const fs::path ballast = fs_.at / "ballast";
  {
    std::ofstream out(ballast, std::ios::binary);
    out << std::string(8 * segment_bytes, 'b');
  }
  shared_memory shm(tmp.path / "shm");
  child c({"mode=full", "dir=" + dir.string(), "shm=" + shm.path.string(), "count=300",
           "segment=" + std::to_string(segment_bytes), "limit=0"},
          tmp.path / "log");
  ASSERT_TRUE(within_a_minute([&] { return shm->phase.load() == 1 || c.ended(); }));
  ASSERT_FALSE(c.ended()) << shm->error << "\n" << c.output();
  fs::remove(ballast);
  shm->go.store(1, std::memory_order_release);
  ASSERT_EQ(c.exit_status(), 0) << shm->error << "\n" << c.output();
  constexpr auto ok = static_cast<std::uint8_t>(result::ok);
  const std::uint64_t total = shm->ok + shm->refused + shm->other;
  for (std::uint64_t k = total - 300; k < total; ++k) EXPECT_EQ(shm->result[k], ok) << k;
  expect_refusals_accounted(dir, shm, std::strerror(ENOSPC));
}

}  // namespace
