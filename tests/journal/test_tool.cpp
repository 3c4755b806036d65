// tachyon-journal, run as a child process on journals that real buses wrote (and that the tests
// then damage): its counts, its JSON (read back by python3's json module), its exit statuses.
// JournalToolText checks the tool's text functions (times, numbers, JSON strings) in process.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <tachyon/detail/journal/format.hpp>

#include "common.hpp"
#include "journal/journal_types.hpp"
#include "own_program.hpp"
#include "text.hpp"

extern char** environ;

/// Trivially copyable, with a codec that names it only (so it is written raw), under a name
/// that JSON must escape: quotes, a backslash, a tab, and a non-ASCII letter.
struct Odd {
  std::uint32_t n;
};
template <>
struct tachyon::codec<Odd> {
  static constexpr std::string_view name = "odd \"quoted\" back\\slash\ttab \xc3\xa9";
  static constexpr std::uint32_t version = 3;
};

namespace {

using jt::Order;
using jt::Tick;
using tachyon::result;
namespace fmt = tachyon::detail::journal_format;
namespace tool = tachyon::journal_tool;

struct process_result {
  int status = -1;  // the exit status; -1 if it was killed by a signal
  std::string out, err;
};

/// Runs argv[0] with the rest as its arguments, stdin from `input` (or /dev/null), and collects
/// what it writes. A minute is far beyond any healthy run: past it the child is killed and the
/// test fails, as a hang.
process_result run_process(const std::vector<std::string>& argv,
                           const std::string& input = "/dev/null") {
  process_result r;
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe2 failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, input.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int e = ::posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  ::close(err[1]);
  if (e != 0) {
    ::close(out[0]);
    ::close(err[0]);
    throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(e));
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open = 2;
  while (open > 0 && std::chrono::steady_clock::now() < deadline) {
    if (::poll(fds, 2, 100) < 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[65536];
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open;
      }
    }
  }
  if (open > 0) {
    ADD_FAILURE() << argv[0] << " ran past a minute: killed";
    ::kill(pid, SIGKILL);
    for (const pollfd& f : fds)
      if (f.fd >= 0) ::close(f.fd);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

process_result tool_run(std::vector<std::string> args) {
  args.insert(args.begin(), TACHYON_JOURNAL_TOOL);
  return run_process(tachyon::test::own_program(std::move(args)));
}

/// What python3 prints run with `args` and `input` on its stdin: the tests read the tool's
/// JSON with python's json module, a strict parser that is not the tool's code.
std::string run_python(std::vector<std::string> args, const std::string& input) {
  jt::temp_dir d;
  const std::string file = (d.path / "input").string();
  std::ofstream(file, std::ios::binary) << input;
  args.insert(args.begin(), TACHYON_PYTHON3);
  const process_result r = run_process(args, file);
  EXPECT_EQ(r.status, 0) << r.err;
  return r.out;
}
std::string python(const std::string& program, const std::string& input) {
  return run_python({"-c", program}, input);
}

bool have_python() { return std::string_view(TACHYON_PYTHON3).size() != 0; }

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

/// The whitespace-separated words of the first line of `text` whose first word is `first`.
std::vector<std::string> row(const std::string& text, const std::string& first) {
  for (const std::string& line : lines_of(text)) {
    std::istringstream in(line);
    std::vector<std::string> words;
    for (std::string w; in >> w;) words.push_back(w);
    if (!words.empty() && words[0] == first) return words;
  }
  return {};
}

std::string tick_name() { return std::string(tachyon::detail::journal_identity<Tick>::name); }

std::string hex_of(const Tick& t) {
  return tool::hex(std::span<const std::byte>(reinterpret_cast<const std::byte*>(&t), sizeof t));
}

/// A journal as a bus with one worker writes it: `ticks` Ticks (those whose id is 7 mod 50
/// fail their handler: outcome failed) and one Order with correlation id 1000 + k after each
/// tenth Tick.
struct written {
  std::uint64_t run = 0;
  std::uint64_t ticks = 0, orders = 0, failed = 0;
};
written write_journal(const jt::temp_dir& dir, std::uint64_t ticks = 300,
                      std::size_t segment_bytes = 1u << 20) {
  written w;
  tachyon::config c = jt::journaled(dir);
  c.journal.segment_bytes = segment_bytes;
  c.on_error = [](const tachyon::handler_error&) {};  // the failures are meant: no log
  tachyon::bus<jt::Events> bus(c);
  std::atomic<std::uint64_t> ran{0};
  auto a = bus.subscribe<Tick>([&](const Tick& t) {
    ran.fetch_add(1);
    if (t.id % 50 == 7) throw std::runtime_error("meant to fail");
  });
  auto b = bus.subscribe<Order>([&](const Order&) { ran.fetch_add(1); });
  for (std::uint64_t i = 0; i < ticks; ++i) {
    EXPECT_EQ(bus.publish(Tick{i, 1.5 * static_cast<double>(i)}), result::ok);
    ++w.ticks;
    if (i % 50 == 7) ++w.failed;
    if (i % 10 == 9) {
      EXPECT_EQ(bus.publish(Order{"sku", static_cast<std::uint32_t>(i), "n"},
                            tachyon::publish_options{.correlation_id = 1000 + w.orders}),
                result::ok);
      ++w.orders;
    }
  }
  EXPECT_TRUE(tt::eventually([&] { return ran.load() == w.ticks + w.orders; }));
  w.run = bus.journal_run_id();
  bus.stop();
  return w;
}

std::vector<tachyon::journal_segment_info> segments_of(const jt::temp_dir& dir) {
  return tachyon::journal_reader(dir.path).segments();
}

/// The segments of the thread that published (the test's), in its order: the files holding
/// the event records (the worker's hold the outcome records).
std::vector<tachyon::journal_segment_info> publisher_segments(const jt::temp_dir& dir) {
  std::vector<tachyon::journal_segment_info> out;
  for (auto& s : segments_of(dir))
    if (s.records > 0) out.push_back(s);
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.writer_segment < b.writer_segment; });
  return out;
}

/// Appends what a process killed while writing a record leaves: a whole record header and
/// payload, except its length (stored last, so still 0) and its checksum.
void append_torn_record(const std::string& file) {
  fmt::record_header h{};
  h.kind = fmt::event;
  h.lane = 2;
  h.number = 123456;
  h.sequence = 99;
  h.ticks = 1;
  const Tick t{42, 4.2};
  // Where the records end (a closed segment keeps its size: its unused tail is a hole).
  std::fstream f(file, std::ios::binary | std::ios::in | std::ios::out);
  f.seekp(static_cast<std::streamoff>(jt::records_end(file)));
  f.write(reinterpret_cast<const char*>(&h), sizeof h);
  f.write(reinterpret_cast<const char*>(&t), sizeof t);
}

TEST(JournalTool, StatsCountsWhatWasPublishedPerRunTypeAndOutcome) {
  jt::temp_dir dir;
  const written w = write_journal(dir);
  const auto r = tool_run({"stats", dir.str()});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  const std::size_t segments = segments_of(dir).size();
  EXPECT_NE(r.out.find("journal " + dir.str() + ": " + std::to_string(segments) +
                       " segments, 1 run, 330 records, 330 outcome records"),
            std::string::npos)
      << r.out;
  const auto run = row(r.out, tool::run_id_text(w.run));
  ASSERT_EQ(run.size(), 7u) << r.out;
  EXPECT_EQ(run[2], std::to_string(::getpid()));
  EXPECT_EQ(run[3], std::to_string(segments));
  EXPECT_EQ(run[4], "330");
  EXPECT_EQ(run[5], "330");
  EXPECT_EQ(row(r.out, tick_name()),
            (std::vector<std::string>{tick_name(), "0", "raw", "300", std::to_string(300 * 16)}));
  std::uint64_t order_bytes = 0;
  for (const auto& rec : jt::read_all(dir.path, {.types = {"test.Order"}}))
    order_bytes += rec.payload.size();
  EXPECT_EQ(row(r.out, "test.Order"), (std::vector<std::string>{"test.Order", "2", "codec", "30",
                                                                std::to_string(order_bytes)}));
  EXPECT_EQ(row(r.out, "dispatched"), (std::vector<std::string>{"dispatched", "324"}));
  EXPECT_EQ(row(r.out, "failed"), (std::vector<std::string>{"failed", "6"}));
  EXPECT_EQ(w.failed, 6u);
  for (const char* o : {"dead_lettered", "expired", "discarded", "displaced"})
    EXPECT_EQ(row(r.out, o), (std::vector<std::string>{o, "0"}));
  EXPECT_EQ(row(r.out, "none").at(1), "0");
  EXPECT_EQ(row(r.out, "torn"), (std::vector<std::string>{"torn", "tails", "0", "(0", "bytes)"}));
  EXPECT_EQ(row(r.out, "gaps"), (std::vector<std::string>{"gaps", "0"}));
}

TEST(JournalTool, StatsJsonIsOneJsonObjectWithTheSameCounts) {
  if (!have_python()) GTEST_SKIP() << "python3 not found at configure time";
  jt::temp_dir dir;
  const written w = write_journal(dir);
  const auto r = tool_run({"stats", dir.str(), "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(run_python({"-m", "json.tool"}, r.out), "");
  const std::string got = python(R"(
import json, sys
d = json.load(sys.stdin)
print(d["directory"], d["segments"], d["records"], d["outcome_records"])
for r in d["runs"]: print(r["run"], r["pid"], r["segments"], r["records"], r["outcome_records"])
for t in d["types"]: print(t["name"], t["version"], t["encoding"], t["records"])
print(*[f"{k}={v}" for k, v in d["outcomes"].items()])
print(*[f"{k}={v}" for k, v in d["damage"].items()])
)",
                                 r.out);
  const std::string segments = std::to_string(segments_of(dir).size());
  EXPECT_EQ(got, dir.str() + " " + segments + " 330 330\n" + tool::run_id_text(w.run) + " " +
                     std::to_string(::getpid()) + " " + segments + " 330 330\n" + tick_name() +
                     " 0 raw 300\ntest.Order 2 codec 30\n"
                     "dispatched=324 failed=6 dead_lettered=0 expired=0 discarded=0 "
                     "displaced=0 none=0\n"
                     "torn_tails=0 torn_bytes=0 corrupt=0 corrupt_bytes=0 bad_segments=0 gaps=0 "
                     "orphan_outcomes=0\n");
}

TEST(JournalTool, StatsCountsEventsNotSettledYetAsNone) {
  if (!have_python()) GTEST_SKIP() << "python3 not found at configure time";
  jt::temp_dir dir;
  tachyon::config c = jt::journaled(dir, 0);  // manual: nothing runs unless polled
  c.overflow = tachyon::overflow::fail;
  tachyon::bus<jt::Events> bus(c);
  auto sub = bus.subscribe<Tick>([](const Tick&) {});
  for (std::uint64_t i = 0; i < 10; ++i) ASSERT_EQ(bus.publish(Tick{i, 0}), result::ok);
  ASSERT_EQ(bus.poll(4), 4u);
  // Read while the bus runs: 4 events settled, 6 queued without an outcome record.
  const auto r = tool_run({"stats", dir.str(), "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(python("import json, sys\nd = json.load(sys.stdin)\n"
                   "print(d['records'], d['outcomes']['dispatched'], d['outcomes']['none'])",
                   r.out),
            "10 4 6\n");
}

TEST(JournalTool, StatsAndDumpNameAnOutcomeThisBuildDoesNotKnowUnknown) {
  jt::temp_dir dir;
  write_journal(dir);
  // A newer writer's outcome 9, in a record whose checksum holds: what this build cannot name.
  std::string file;
  std::uint64_t offset = 0, sequence = 0, run = 0;
  {
    tachyon::journal_reader in(dir.path, {.outcome_records = true});
    for (const auto& r : in)
      if (r.kind == tachyon::journal_record_kind::outcome) {
        file = r.file;
        offset = r.offset;
        sequence = r.header.sequence;
        run = r.run_id;
        break;
      }
  }
  ASSERT_FALSE(file.empty());
  {
    std::fstream f(file, std::ios::binary | std::ios::in | std::ios::out);
    fmt::record_header h;
    f.seekg(static_cast<std::streamoff>(offset));
    f.read(reinterpret_cast<char*>(&h), sizeof h);
    ASSERT_EQ(h.length, sizeof h);  // an outcome record is its header alone
    h.detail = 9;
    h.checksum = tachyon::detail::crc32c(jt::checksum_seed(run), &h.length, sizeof h.length);
    h.checksum =
        tachyon::detail::crc32c(h.checksum, reinterpret_cast<const char*>(&h) + 8, sizeof h - 8);
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(reinterpret_cast<const char*>(&h), sizeof h);
  }
  const auto stats = tool_run({"stats", dir.str()});
  EXPECT_EQ(row(stats.out, "dispatched"), (std::vector<std::string>{"dispatched", "323"}));
  EXPECT_EQ(row(stats.out, "unknown"), (std::vector<std::string>{"unknown", "1"})) << stats.out;
  const auto dump = tool_run({"dump", dir.str(), "--outcomes"});
  std::size_t unknown = 0;
  for (const std::string& line : lines_of(dump.out))
    if (line.find("\"sequence\":" + std::to_string(sequence) + ",") != std::string::npos) {
      EXPECT_NE(line.find("\"outcome\":\"unknown\""), std::string::npos) << line;
      ++unknown;
    }
  EXPECT_EQ(unknown, 2u);  // the event, and its outcome record
  // Without one, stats prints no "unknown" row.
  EXPECT_TRUE(row(tool_run({"stats", jt::temp_dir().str()}).out, "unknown").empty());
}

TEST(JournalTool, DumpPrintsEachRecordAsTheReaderHandsItOut) {
  if (!have_python()) GTEST_SKIP() << "python3 not found at configure time";
  jt::temp_dir dir;
  const written w = write_journal(dir);
  const auto r = tool_run({"dump", dir.str()});
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_EQ(lines_of(r.out).size(), 330u);
  EXPECT_NE(run_python({"-m", "json.tool", "--json-lines"}, r.out), "");
  // Every field, parsed by python; the time checked against time_ns by python's own calendar.
  const std::string got = python(R"(
import json, sys, datetime
for line in sys.stdin:
    d = json.loads(line)
    ns = d["time_ns"]
    iso = datetime.datetime.fromtimestamp(ns // 10**9, datetime.timezone.utc)
    assert d["time"] == iso.strftime("%Y-%m-%dT%H:%M:%S") + ".%09dZ" % (ns % 10**9), d["time"]
    print(d["kind"], d["run"], d["writer"], d["number"], d["sequence"], d["correlation"],
          d["causation"], d["lane"], d["flags"], ",".join(d["flag_names"]), d["attempt"],
          d["type"], d["version"], d["encoding"], ns, d["ticks"], d["outcome"], d["file"],
          d["offset"], d["payload_bytes"], d["payload"])
)",
                                 r.out);
  const std::vector<std::string> lines = lines_of(got);
  ASSERT_EQ(lines.size(), 330u);
  tachyon::journal_reader in(dir.path);
  std::size_t k = 0;
  std::uint64_t next_tick = 0;
  for (const auto& rec : in) {
    ASSERT_LT(k, lines.size());
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(rec.time.time_since_epoch()).count();
    const auto span = rec.payload;
    std::string payload = tool::hex(span);
    if (rec.is<Tick>()) {  // the bytes published, not just what the reader says
      const std::uint64_t i = next_tick++;
      payload = hex_of(Tick{i, 1.5 * static_cast<double>(i)});
    }
    std::ostringstream want;
    want << "event " << tool::run_id_text(w.run) << ' ' << rec.writer << ' ' << rec.number << ' '
         << rec.header.sequence << ' ' << rec.header.correlation_id << " 0 "
         << (rec.is<Tick>() ? "normal" : "high") << " 0  0 " << rec.type_name() << ' '
         << (rec.is<Tick>() ? "0 raw " : "2 codec ") << ns << ' ' << rec.header.publish_ticks << ' '
         << tachyon::to_string(*rec.outcome) << ' ' << rec.file << ' ' << rec.offset << ' '
         << rec.payload.size() << ' ' << payload;
    EXPECT_EQ(lines[k], want.str()) << "record " << k;
    ++k;
  }
  EXPECT_EQ(next_tick, 300u);
}

TEST(JournalTool, DumpFiltersAsTheReadersFilterDoes) {
  jt::temp_dir dir;
  const written w = write_journal(dir);
  const auto count = [&](std::vector<std::string> options) {
    options.insert(options.begin(), {"dump", dir.str()});
    const auto r = tool_run(options);
    EXPECT_EQ(r.status, 0) << r.err;
    return lines_of(r.out).size();
  };
  const auto all = jt::read_all(dir.path);
  ASSERT_EQ(all.size(), 330u);
  EXPECT_EQ(count({"--type", "test.Order"}), 30u);
  EXPECT_EQ(count({"--type", "test.Order", "--type=" + tick_name()}), 330u);
  {
    const auto r = tool_run({"dump", dir.str(), "--type", "test.Ordr"});
    EXPECT_EQ(r.status, 0);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err,
              "tachyon-journal: warning: --type 'test.Ordr': no segment declares it "
              "(declared: " +
                  tick_name() + ", test.Order)\n");
  }
  EXPECT_EQ(count({"--run", tool::run_id_text(w.run)}), 330u);
  EXPECT_EQ(count({"--run", std::to_string(w.run)}), 330u);
  EXPECT_EQ(count({"--run", "0x1"}), 0u);
  EXPECT_EQ(count({"--from-sequence", std::to_string(all[100].header.sequence)}), 230u);
  EXPECT_EQ(count({"--outcomes"}), 660u);
  {
    const auto r = tool_run({"dump", dir.str(), "--from-sequence", "5"});  // no event's
    EXPECT_EQ(r.status, 0);
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find("warning: nothing passed; --from-sequence 5 must be the sequence of an "
                         "event"),
              std::string::npos)
        << r.err;
  }
  {
    const auto r = tool_run({"dump", dir.str(), "--correlation", "1005"});
    ASSERT_EQ(lines_of(r.out).size(), 1u) << r.out;
    EXPECT_NE(r.out.find("\"correlation\":1005,"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\"type\":\"test.Order\""), std::string::npos) << r.out;
  }
  // Times: ns since the epoch and ISO 8601, each as the reader's filter takes them.
  const auto ns_of = [](const tachyon::journal_record& r) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(r.time.time_since_epoch()).count();
  };
  const std::int64_t from = ns_of(all[50]), to = ns_of(all[150]);
  const auto expected =
      jt::read_all(dir.path, {.from_time = all[50].time, .to_time = all[150].time});
  EXPECT_GE(expected.size(), 90u);  // ticks a few ns apart may convert to the same ns
  EXPECT_EQ(count({"--from-time", std::to_string(from), "--to-time", tool::iso_time(to)}),
            expected.size());
  EXPECT_EQ(count({"--from-time", tool::iso_time(from)}),
            jt::read_all(dir.path, {.from_time = all[50].time}).size());
}

TEST(JournalTool, VerifyExitsZeroOnAnIntactJournal) {
  jt::temp_dir dir;
  write_journal(dir);
  const auto r = tool_run({"verify", dir.str()});
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("checked " + std::to_string(segments_of(dir).size()) +
                       " segments: 330 records, 330 outcome records"),
            std::string::npos)
      << r.out;
  EXPECT_TRUE(r.out.ends_with("\nintact\n")) << r.out;
}

TEST(JournalTool, VerifyFindsACorruptedByteAndNamesItsFileAndOffset) {
  jt::temp_dir dir;
  write_journal(dir);
  std::string file;
  std::uint64_t offset = 0;
  {
    tachyon::journal_reader in(dir.path, {.types = {tick_name()}});
    auto it = in.begin();
    for (int k = 0; k < 100; ++k) ++it;
    file = it->file;
    offset = it->offset;
  }
  {
    std::fstream f(file, std::ios::binary | std::ios::in | std::ios::out);
    f.seekg(static_cast<std::streamoff>(offset + 60));  // in its payload
    const char c = static_cast<char>(f.get());
    f.seekp(static_cast<std::streamoff>(offset + 60));
    f.put(static_cast<char>(c ^ 0x10));
  }
  const auto r = tool_run({"verify", dir.str()});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("corrupt: " + file + " at offset " + std::to_string(offset) +
                       ", 72 bytes: a record that fails its checksum or frame (length 72)\n"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(row(r.out, "corrupt"),
            (std::vector<std::string>{"corrupt", "stretches", "1", "(72", "bytes)"}));
  // The record it held is missing from its thread's numbers (not reported again as a gap: the
  // damage just before explains it), and its outcome has no event.
  EXPECT_EQ(r.out.find("\ngap: "), std::string::npos) << r.out;
  EXPECT_EQ(row(r.out, "orphan"), (std::vector<std::string>{"orphan", "outcomes", "1"}));
  EXPECT_TRUE(r.out.ends_with("\ndamaged: 1 problem\n")) << r.out;
  // dump and stats skip it, and say so.
  EXPECT_EQ(lines_of(tool_run({"dump", dir.str()}).out).size(), 329u);
  const auto stats = tool_run({"stats", dir.str()});
  EXPECT_EQ(row(stats.out, tick_name()).at(3), "299") << stats.out;
  EXPECT_EQ(row(stats.out, "corrupt").at(2), "1") << stats.out;
}

TEST(JournalTool, VerifyCallsATornTailAtAWritersEndWhatACrashLeavesAndExitsZero) {
  jt::temp_dir dir;
  write_journal(dir);
  const auto mine = publisher_segments(dir);
  ASSERT_EQ(mine.size(), 1u);
  const std::string file = mine.back().file;
  const auto end = jt::records_end(file);
  append_torn_record(file);
  const auto r = tool_run({"verify", dir.str()});
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("torn_tail: " + file + " at offset " + std::to_string(end) +
                       ", 72 bytes: a record without its length: its process died while "
                       "writing it (expected after a crash: the end of its writer's last "
                       "segment)\n"),
            std::string::npos)
      << r.out;
  EXPECT_TRUE(r.out.ends_with("\nintact, apart from 1 torn tail that a crash leaves\n")) << r.out;
  const auto strict = tool_run({"verify", dir.str(), "--strict"});
  EXPECT_EQ(strict.status, 1) << strict.out;
  EXPECT_TRUE(strict.out.ends_with("\ndamaged: 1 problem\n")) << strict.out;
  EXPECT_EQ(lines_of(tool_run({"dump", dir.str()}).out).size(), 330u);
  EXPECT_EQ(row(tool_run({"stats", dir.str()}).out, "torn"),
            (std::vector<std::string>{"torn", "tails", "1", "(72", "bytes)"}));
}

TEST(JournalTool, VerifyCallsATornTailBeforeAWritersLastSegmentDamage) {
  jt::temp_dir dir;
  write_journal(dir, 2000, 64 * 1024);  // a Tick's record is 72 bytes: 3 segments of them
  const auto mine = publisher_segments(dir);
  ASSERT_GE(mine.size(), 3u);
  append_torn_record(mine.front().file);
  const auto r = tool_run({"verify", dir.str()});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("torn_tail: " + mine.front().file + " at offset"), std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("expected after a crash"), std::string::npos) << r.out;
}

TEST(JournalTool, VerifyReportsTheRecordsADeletedSegmentTookAsAGap) {
  jt::temp_dir dir;
  write_journal(dir, 2000, 64 * 1024);
  const auto mine = publisher_segments(dir);
  ASSERT_GE(mine.size(), 3u);
  const auto& gone = mine[1];
  std::filesystem::remove(gone.file);
  const auto r = tool_run({"verify", dir.str()});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("gap: " + mine[2].file + " at offset 4096, " +
                       std::to_string(gone.records + gone.outcomes) + " records missing: "),
            std::string::npos)
      << r.out;
  // Their outcome records, in the worker's segments, have lost their events: counted only.
  EXPECT_EQ(row(r.out, "orphan"),
            (std::vector<std::string>{"orphan", "outcomes", std::to_string(gone.records)}));
  EXPECT_TRUE(r.out.ends_with("\ndamaged: 1 problem\n")) << r.out;
}

TEST(JournalTool, VerifyReportsAFileThatIsNotASegment) {
  jt::temp_dir dir;
  write_journal(dir);
  const std::string file = (dir.path / "stray.tjs").string();
  std::ofstream(file) << std::string(200, 'x');
  const auto r = tool_run({"verify", dir.str()});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("bad_segment: " + file +
                       ": not a tachyon journal segment (its magic number differs)\n"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(lines_of(tool_run({"dump", dir.str()}).out).size(), 330u);
}

TEST(JournalTool, EmptyDirectoryHasNothingAndIsIntact) {
  jt::temp_dir dir;
  const auto stats = tool_run({"stats", dir.str()});
  EXPECT_EQ(stats.status, 0) << stats.err;
  EXPECT_NE(stats.out.find(": 0 segments, 0 runs, 0 records"), std::string::npos) << stats.out;
  const auto dump = tool_run({"dump", dir.str()});
  EXPECT_EQ(dump.status, 0);
  EXPECT_EQ(dump.out, "");
  const auto verify = tool_run({"verify", dir.str()});
  EXPECT_EQ(verify.status, 0);
  EXPECT_TRUE(verify.out.ends_with("\nintact\n")) << verify.out;
}

TEST(JournalTool, BadUsageExitsTwoNamingWhatWasWrongAndWhatIsAllowed) {
  jt::temp_dir dir;
  const std::string d = dir.str();
  const std::pair<std::vector<std::string>, std::string> cases[] = {
      {{}, "usage: tachyon-journal COMMAND DIR [OPTIONS]"},
      {{"frob", d}, "unknown command 'frob' (allowed: stats, dump, verify)"},
      {{"dump"}, "dump needs the journal's directory: tachyon-journal dump DIR"},
      {{"dump", d, "--bogus"},
       "unknown option '--bogus' for dump (allowed: --type NAME, --run ID, --from-sequence N, "
       "--from-time T, --to-time T, --correlation N, --outcomes)"},
      {{"stats", d, "--strict"}, "unknown option '--strict' for stats (allowed: --json)"},
      {{"verify", d, "-x"}, "unknown option '-x' for verify (allowed: --strict)"},
      {{"dump", d, "--run", "zz"},
       "--run: 'zz' is not a number (allowed: decimal, or hex after 0x; 64 bits)"},
      {{"dump", d, "--from-sequence", "18446744073709551616"}, "is not a number"},
      {{"dump", d, "--run", "0"}, "--run: a run id is never 0"},
      {{"dump", d, "--correlation=0"}, "--correlation: 0 is no correlation id"},
      {{"dump", d, "--from-time", "2023-02-29T00:00:00Z"},
       "--from-time: '2023-02-29T00:00:00Z' is not a time (allowed: ISO 8601 UTC, "
       "YYYY-MM-DDTHH:MM:SS[.F]Z, or ns since the Unix epoch)"},
      {{"dump", d, "--to-time", "2024-05-01T12:00:00+02:00"}, "is not a time"},
      {{"dump", d, "--from-time", "2000", "--to-time", "1000"},
       "--to-time 1970-01-01T00:00:00.000001000Z is not after --from-time "
       "1970-01-01T00:00:00.000002000Z"},
      {{"dump", d, "--type"}, "--type needs a value (NAME)"},
      {{"dump", d, "--outcomes=yes"}, "--outcomes takes no value"},
      {{"verify", d, d}, "verify takes one directory; '" + d + "' follows '" + d + "'"},
      {{"verify", d + "/no-such-dir"}, "cannot list '" + d + "/no-such-dir'"},
  };
  for (const auto& [args, message] : cases) {
    const auto r = tool_run(args);
    EXPECT_EQ(r.status, 2) << ::testing::PrintToString(args);
    EXPECT_NE(r.err.find(message), std::string::npos)
        << ::testing::PrintToString(args) << ": " << r.err;
    EXPECT_EQ(r.out, "") << ::testing::PrintToString(args);
  }
  const auto help = tool_run({"verify", d, "--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_TRUE(help.out.starts_with("usage: tachyon-journal COMMAND DIR [OPTIONS]\n"));
  EXPECT_EQ(help.err, "");
}

TEST(JournalTool, JsonEscapesTypeNamesAndFileNamesWhateverTheirBytes) {
  if (!have_python()) GTEST_SKIP() << "python3 not found at configure time";
  jt::temp_dir top;
  // A directory name with a quote, a newline and a byte that is not UTF-8.
  const std::filesystem::path dir = top.path / "we\"ird\nname\xff";
  std::filesystem::create_directory(dir);
  {
    tachyon::config c;
    c.workers = 1;
    c.journal.directory = dir.string();
    c.journal.segment_bytes = 1u << 20;
    tachyon::bus<
        tachyon::registry<tachyon::event<Odd, tachyon::priority::normal, tachyon::journaled>>>
        bus(c);
    auto sub = bus.subscribe<Odd>([](const Odd&) {});
    ASSERT_EQ(bus.publish(Odd{7}), result::ok);
    bus.stop();
  }
  const auto dump = tool_run({"dump", dir.string()});
  ASSERT_EQ(dump.status, 0) << dump.err;
  const auto stats = tool_run({"stats", dir.string(), "--json"});
  ASSERT_EQ(stats.status, 0) << stats.err;
  const std::string program = R"(
import json, sys
for line in sys.stdin:
    d = json.loads(line)
    t = d["type"] if "type" in d else d["types"][0]["name"]
    f = d["file"] if "file" in d else d["directory"]
    print(ascii(t), ascii(f.split("/")[-2 if "file" in d else -1]))
)";
  const std::string want = R"('odd "quoted" back\\slash\ttab \xe9' 'we"ird\nname\ufffd')"
                           "\n";
  EXPECT_EQ(python(program, dump.out), want) << dump.out;
  EXPECT_EQ(python(program, stats.out), want) << stats.out;
}

// ---- the tool's text, in process ------------------------------------------------------------

TEST(JournalToolText, TimesRoundTripThroughIso8601) {
  const std::pair<std::int64_t, const char*> cases[] = {
      {0, "1970-01-01T00:00:00.000000000Z"},
      {-1, "1969-12-31T23:59:59.999999999Z"},
      {1'709'164'800'000'000'001, "2024-02-29T00:00:00.000000001Z"},
      {4'102'444'799'999'999'999, "2099-12-31T23:59:59.999999999Z"},
      {951'782'400'500'000'000, "2000-02-29T00:00:00.500000000Z"},
  };
  for (const auto& [ns, iso] : cases) {
    EXPECT_EQ(tool::iso_time(ns), iso);
    EXPECT_EQ(tool::parse_time(iso), ns) << iso;
  }
  EXPECT_EQ(tool::parse_time("2024-02-29T00:00:00.5Z"), 1'709'164'800'500'000'000);
  EXPECT_EQ(tool::parse_time("2024-02-29T00:00:00Z"), 1'709'164'800'000'000'000);
  EXPECT_EQ(tool::parse_time("1709164800000000001"), 1'709'164'800'000'000'001);
  for (const char* bad :
       {"", "2023-02-29T00:00:00Z", "2024-13-01T00:00:00Z", "2024-01-01T24:00:00Z",
        "2024-01-01T00:60:00Z", "2024-01-01T00:00:60Z", "2024-01-01T00:00:00",
        "2024-01-01T00:00:00.Z", "2024-01-01T00:00:00.1234567890Z", "2024-01-01 00:00:00Z",
        "2024-01-01T00:00:00+00:00", "2024-1-01T00:00:00Z", "9999-01-01T00:00:00Z",
        "9223372036854775808", "-5", "2024-01-01T00:00:00ZZ"})
    EXPECT_FALSE(tool::parse_time(bad).has_value()) << bad;
}

TEST(JournalToolText, NumbersAreDecimalOrHexAfter0x) {
  EXPECT_EQ(tool::parse_number("0"), 0u);
  EXPECT_EQ(tool::parse_number("0x10"), 16u);
  EXPECT_EQ(tool::parse_number("0XfF"), 255u);
  EXPECT_EQ(tool::parse_number("18446744073709551615"), UINT64_MAX);
  EXPECT_EQ(tool::parse_number(tool::run_id_text(0x0123456789abcdefULL)), 0x0123456789abcdefULL);
  EXPECT_EQ(tool::run_id_text(0xabc), "0x0000000000000abc");
  for (const char* bad : {"", "0x", "-1", "+1", "1a", "ff", "18446744073709551616", "0x1g", " 1"})
    EXPECT_FALSE(tool::parse_number(bad).has_value()) << bad;
}

TEST(JournalToolText, JsonStringsEscapeAndReplaceBytesThatAreNotUtf8) {
  const auto json = [](std::string_view s) {
    std::string out;
    tool::append_json_string(out, s);
    return out;
  };
  EXPECT_EQ(json("plain"), "\"plain\"");
  EXPECT_EQ(json("q\"b\\s/"), "\"q\\\"b\\\\s/\"");
  EXPECT_EQ(json(std::string_view("\n\t\x01\x1f\x7f\0", 6)),
            "\"\\u000a\\u0009\\u0001\\u001f\\u007f\\u0000\"");
  EXPECT_EQ(json("\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "\"\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  // A stray continuation byte, a truncated sequence, an overlong form, a surrogate, past
  // U+10FFFF: each byte that is not part of valid UTF-8 becomes U+FFFD.
  EXPECT_EQ(json("a\x80z"), "\"a\\ufffdz\"");
  EXPECT_EQ(json("a\xc3"), "\"a\\ufffd\"");
  EXPECT_EQ(json("\xc0\xaf"), "\"\\ufffd\\ufffd\"");
  EXPECT_EQ(json("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"");
  EXPECT_EQ(json("\xf4\x90\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
  std::string nested;
  tool::json j(nested);
  j.begin_object().number("a", 1).begin_array("b").string({}, "x").null({}).end_array();
  j.begin_object("c").end_object().end_object();
  EXPECT_EQ(nested, R"({"a":1,"b":["x",null],"c":{}})");
}

}  // namespace
