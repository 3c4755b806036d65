// tachyon-journal: what a journal directory holds (stats), its records as JSON lines (dump),
// and whether it is intact (verify). It reads through tachyon::journal_reader alone, so it
// sees exactly what a program reading the journal sees, and it knows no event type.
#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <tachyon/journal.hpp>

#include "text.hpp"

namespace {

using namespace tachyon;
using namespace tachyon::journal_tool;

constexpr std::string_view usage_text = R"(usage: tachyon-journal COMMAND DIR [OPTIONS]

Reads the journal a tachyon bus writes (config::journal.directory). It never changes a file,
and may run while a bus writes the directory: it sees what was written when it started.

commands:
  stats DIR     segments, runs, records and bytes; per type and per outcome; damage
      --json                one JSON object instead of text
  dump DIR      one JSON object per line for each record, in publish order
      --type NAME           only this type (its journaled name); repeatable
      --run ID              only this run (as printed: 0x and hex digits; or decimal)
      --from-sequence N     from the event whose sequence is N on (as dump prints it; in
                            the first run that holds it, unless --run names one)
      --from-time T         only events published at or after T
      --to-time T           only events published before T
                            T: ISO 8601 UTC (2024-05-01T12:00:00.5Z) or ns since the epoch
      --correlation N       only events with this correlation id (not 0)
      --outcomes            outcome records too, each where its event settled
  verify DIR    checks every segment header, every record (its checksum and frame) and each
                writer thread's record numbers (gaps); prints each problem and a summary
      --strict              a torn tail is damage too (exit status 1)
  --help        this text

Payloads are printed in hex: a codec's fields are known only to a program that has the
type. To print typed payloads, read the journal in such a program with
tachyon::journal_reader and journal_record::decode<T>().

Exit status: 0 done; 2 bad usage, or a directory or segment that cannot be read. verify
returns 1 if it found damage:
  - bytes that fail their check between good records (a corrupt stretch),
  - a segment whose header fails its check (a bad segment),
  - records missing from a writer thread's numbers (a gap: a segment deleted by hand),
  - a torn tail anywhere but at the end of its writer thread's last segment.
A torn tail at the end of a writer thread's last segment is reported and verify still
returns 0: it is the record a process was writing when it was killed (or, while a bus runs,
the one being written right now). publish() never returned ok for it, so no acknowledged
event is missing; every kill -9 may leave one, and it stays in the directory. --strict
counts it as damage. Outcome records whose event record is not there (retention deleted
the older segment that held it) are counted, not damage.
)";

/// Bad usage: what main() prints before exit status 2.
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class command { stats, dump, verify };
constexpr std::array<std::string_view, 3> command_names = {"stats", "dump", "verify"};

struct invocation {
  command what = command::stats;
  std::filesystem::path directory;
  bool json = false;
  bool strict = false;
  journal_filter filter;
};

struct option_spec {
  std::string_view name;
  std::string_view value;  // what it takes, as --help names it; empty for a switch
  command of;
};
constexpr option_spec option_specs[] = {
    {"--json", "", command::stats},        {"--type", "NAME", command::dump},
    {"--run", "ID", command::dump},        {"--from-sequence", "N", command::dump},
    {"--from-time", "T", command::dump},   {"--to-time", "T", command::dump},
    {"--correlation", "N", command::dump}, {"--outcomes", "", command::dump},
    {"--strict", "", command::verify},
};

/// "1 run", "3 runs".
std::string count_of(std::uint64_t n, std::string_view thing) {
  return std::to_string(n) + " " + std::string(thing) + (n == 1 ? "" : "s");
}

std::string options_of(command c) {
  std::string out;
  for (const option_spec& o : option_specs) {
    if (o.of != c) continue;
    if (!out.empty()) out += ", ";
    out += o.name;
    if (!o.value.empty()) out += " " + std::string(o.value);
  }
  return out;
}

std::chrono::system_clock::time_point time_point_of(std::int64_t ns) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::nanoseconds(ns)));
}

std::int64_t ns_of(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

void apply_option(invocation& inv, std::string_view name, std::string_view value) {
  const auto number = [&] {
    const auto n = parse_number(value);
    if (!n)
      throw usage_error(std::string(name) + ": '" + std::string(value) +
                        "' is not a number (allowed: decimal, or hex after 0x; 64 bits)");
    return *n;
  };
  const auto time = [&] {
    const auto ns = parse_time(value);
    if (!ns)
      throw usage_error(std::string(name) + ": '" + std::string(value) +
                        "' is not a time (allowed: ISO 8601 UTC, YYYY-MM-DDTHH:MM:SS[.F]Z, "
                        "or ns since the Unix epoch)");
    return time_point_of(*ns);
  };
  journal_filter& f = inv.filter;
  if (name == "--json") {
    inv.json = true;
  } else if (name == "--strict") {
    inv.strict = true;
  } else if (name == "--outcomes") {
    f.outcome_records = true;
  } else if (name == "--type") {
    f.types.emplace_back(value);
  } else if (name == "--run") {
    f.run_id = number();
    if (f.run_id == 0) throw usage_error("--run: a run id is never 0");
  } else if (name == "--from-sequence") {
    f.from_sequence = number();
  } else if (name == "--correlation") {
    f.correlation_id = number();
    if (f.correlation_id == 0)
      throw usage_error("--correlation: 0 is no correlation id (allowed: 1 .. 2^64-1)");
  } else if (name == "--from-time") {
    f.from_time = time();
  } else if (name == "--to-time") {
    f.to_time = time();
  }
}

invocation parse(std::span<const std::string_view> args) {
  invocation inv;
  const auto c = std::find(command_names.begin(), command_names.end(), args[0]);
  if (c == command_names.end()) {
    std::string allowed;
    for (const std::string_view n : command_names)
      allowed += (allowed.empty() ? "" : ", ") + std::string(n);
    throw usage_error("unknown command '" + std::string(args[0]) + "' (allowed: " + allowed + ")");
  }
  inv.what = static_cast<command>(c - command_names.begin());
  const std::string of = std::string(*c);
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string_view a = args[i];
    if (a.size() < 2 || a[0] != '-') {
      if (!inv.directory.empty())
        throw usage_error(of + " takes one directory; '" + std::string(a) + "' follows '" +
                          inv.directory.string() + "'");
      inv.directory = a;
      continue;
    }
    const std::size_t eq = a.find('=');
    const std::string_view name = a.substr(0, eq);
    const auto spec = std::find_if(std::begin(option_specs), std::end(option_specs),
                                   [&](const option_spec& o) { return o.name == name; });
    if (spec == std::end(option_specs) || spec->of != inv.what) {
      const std::string allowed = options_of(inv.what);
      throw usage_error("unknown option '" + std::string(name) + "' for " + of +
                        " (allowed: " + (allowed.empty() ? "none" : allowed) + ")");
    }
    std::string_view value;
    if (spec->value.empty()) {
      if (eq != std::string_view::npos) throw usage_error(std::string(name) + " takes no value");
    } else if (eq != std::string_view::npos) {
      value = a.substr(eq + 1);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      throw usage_error(std::string(name) + " needs a value (" + std::string(spec->value) + ")");
    }
    apply_option(inv, name, value);
  }
  if (inv.directory.empty())
    throw usage_error(of + " needs the journal's directory: tachyon-journal " + of + " DIR");
  if (inv.filter.to_time <= inv.filter.from_time)
    throw usage_error("--to-time " + iso_time(ns_of(inv.filter.to_time)) +
                      " is not after --from-time " + iso_time(ns_of(inv.filter.from_time)) +
                      ": no event could pass");
  return inv;
}

// ---- what the commands print ----------------------------------------------------------------

/// How many outcomes tachyon::outcome has: counted by its to_string, so that one added there
/// is counted here too.
constexpr std::size_t outcome_kinds = [] {
  std::size_t n = 0;
  while (to_string(static_cast<outcome>(n)) != "unknown") ++n;
  return n;
}();

/// Where stats counts an event: its outcome's value, then "none" (no outcome record yet), then
/// "unknown" (a value this build does not know: a newer writer's).
std::size_t outcome_slot(const std::optional<outcome>& o) {
  if (!o) return outcome_kinds;
  const auto i = static_cast<std::size_t>(*o);
  return i < outcome_kinds ? i : outcome_kinds + 1;
}
std::string_view outcome_name(std::size_t slot) {
  return slot < outcome_kinds    ? to_string(static_cast<outcome>(slot))
         : slot == outcome_kinds ? "none"
                                 : "unknown";
}

std::string_view encoding(const journal_type_info* t) {
  return t == nullptr ? "unknown" : t->raw ? "raw" : "codec";
}

/// The counts of journal_scan that stats and verify print, with their names.
struct damage_count {
  std::string_view key;  // JSON
  std::string_view label;
  std::uint64_t journal_scan::*count;
  std::string_view bytes_key;  // with `bytes`; empty where a count has no bytes (nullptr)
  std::uint64_t journal_scan::*bytes;
};
constexpr damage_count damage_counts[] = {
    {"torn_tails", "torn tails", &journal_scan::torn_tails, "torn_bytes",
     &journal_scan::torn_bytes},
    {"corrupt", "corrupt stretches", &journal_scan::corrupt, "corrupt_bytes",
     &journal_scan::corrupt_bytes},
    {"bad_segments", "bad segments", &journal_scan::bad_segments, "", nullptr},
    {"gaps", "gaps", &journal_scan::gaps, "", nullptr},
    {"orphan_outcomes", "orphan outcomes", &journal_scan::orphan_outcomes, "", nullptr},
};

/// Rows of cells, each column padded to its widest cell, each row after `indent`.
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows,
                 std::string_view indent = "  ") {
  std::vector<std::size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()));
    for (std::size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  for (const auto& row : rows) {
    std::string line(indent);
    for (std::size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line.append(width[c] - row[c].size() + 2, ' ');
    }
    out << line << '\n';
  }
}

std::vector<std::vector<std::string>> damage_rows(const journal_scan& s) {
  std::vector<std::vector<std::string>> rows;
  for (const damage_count& d : damage_counts) {
    std::string n = std::to_string(s.*d.count);
    if (d.bytes != nullptr) n += " (" + std::to_string(s.*d.bytes) + " bytes)";
    rows.push_back({std::string(d.label), n});
  }
  return rows;
}

// ---- stats ----------------------------------------------------------------------------------

struct run_row {
  std::uint64_t id = 0, start_ns = 0;
  std::uint32_t pid = 0;
  std::uint64_t segments = 0, records = 0, outcome_records = 0, bytes = 0;
};
struct type_row {
  std::uint64_t records = 0, payload_bytes = 0;
};
using type_key = std::tuple<std::string, std::uint32_t, std::string_view>;  // name, version, enc.

struct summary {
  std::vector<run_row> runs;  // in the order they started
  std::map<type_key, type_row> types;
  std::array<std::uint64_t, outcome_kinds + 2> outcomes{};  // by outcome_slot()
  /// Every outcome and "none" are printed, "unknown" only if there is one.
  bool shown(std::size_t slot) const { return slot <= outcome_kinds || outcomes[slot] != 0; }
};

summary summarize(journal_reader& in) {
  summary out;
  std::map<std::pair<std::uint64_t, std::uint64_t>, run_row> runs;  // (start, id)
  for (const journal_segment_info& seg : in.segments()) {
    run_row& r = runs[{seg.run_start_ns, seg.run_id}];
    r.id = seg.run_id;
    r.start_ns = seg.run_start_ns;
    r.pid = seg.pid;
    ++r.segments;
    r.records += seg.records;
    r.outcome_records += seg.outcomes;
    r.bytes += seg.bytes;
    for (const journal_type_info& t : seg.types)  // declared, even if none was written
      out.types.try_emplace({t.name, t.version, encoding(&t)});
  }
  for (auto& [key, r] : runs) out.runs.push_back(r);
  for (const journal_record& r : in) {  // event records: the reader's filter is the default
    type_row& t =
        out.types[{std::string(r.type_name()), r.type ? r.type->version : 0, encoding(r.type)}];
    ++t.records;
    t.payload_bytes += r.payload.size();
    ++out.outcomes[outcome_slot(r.outcome)];
  }
  return out;
}

void stats_json(std::ostream& out, const invocation& inv, const journal_scan& s,
                const summary& sum) {
  std::string text;
  json j(text);
  j.begin_object()
      .string("directory", inv.directory.string())
      .number("segments", s.segments)
      .number("records", s.records)
      .number("outcome_records", s.outcome_records)
      .number("bytes", s.bytes)
      .begin_array("runs");
  for (const run_row& r : sum.runs)
    j.begin_object()
        .string("run", run_id_text(r.id))
        .string("start", iso_time(static_cast<std::int64_t>(r.start_ns)))
        .number("start_ns", r.start_ns)
        .number("pid", r.pid)
        .number("segments", r.segments)
        .number("records", r.records)
        .number("outcome_records", r.outcome_records)
        .number("bytes", r.bytes)
        .end_object();
  j.end_array().begin_array("types");
  for (const auto& [key, t] : sum.types)
    j.begin_object()
        .string("name", std::get<0>(key))
        .number("version", std::get<1>(key))
        .string("encoding", std::get<2>(key))
        .number("records", t.records)
        .number("payload_bytes", t.payload_bytes)
        .end_object();
  j.end_array().begin_object("outcomes");
  for (std::size_t i = 0; i < sum.outcomes.size(); ++i)
    if (sum.shown(i)) j.number(outcome_name(i), sum.outcomes[i]);
  j.end_object().begin_object("damage");
  for (const damage_count& d : damage_counts) {
    j.number(d.key, s.*d.count);
    if (d.bytes != nullptr) j.number(d.bytes_key, s.*d.bytes);
  }
  j.end_object().end_object();
  out << text << '\n';
}

int stats(const invocation& inv, std::ostream& out) {
  journal_reader in(inv.directory);
  const journal_scan& s = in.scan();
  const summary sum = summarize(in);
  if (inv.json) {
    stats_json(out, inv, s, sum);
    return 0;
  }
  out << "journal " << inv.directory.string() << ": " << count_of(s.segments, "segment") << ", "
      << count_of(sum.runs.size(), "run") << ", " << count_of(s.records, "record") << ", "
      << count_of(s.outcome_records, "outcome record") << ", " << s.bytes << " bytes of records\n";
  out << "\nruns\n";
  std::vector<std::vector<std::string>> rows = {
      {"run", "started", "pid", "segments", "records", "outcome records", "bytes"}};
  for (const run_row& r : sum.runs)
    rows.push_back({run_id_text(r.id), iso_time(static_cast<std::int64_t>(r.start_ns)),
                    std::to_string(r.pid), std::to_string(r.segments), std::to_string(r.records),
                    std::to_string(r.outcome_records), std::to_string(r.bytes)});
  print_table(out, rows);
  out << "\ntypes\n";
  rows = {{"type", "version", "encoding", "records", "payload bytes"}};
  for (const auto& [key, t] : sum.types)
    rows.push_back({std::get<0>(key), std::to_string(std::get<1>(key)),
                    std::string(std::get<2>(key)), std::to_string(t.records),
                    std::to_string(t.payload_bytes)});
  print_table(out, rows);
  out << "\noutcomes of the records\n";
  rows.clear();
  for (std::size_t i = 0; i < sum.outcomes.size(); ++i)
    if (sum.shown(i))
      rows.push_back({std::string(outcome_name(i)), std::to_string(sum.outcomes[i])});
  rows[outcome_kinds].push_back("(no outcome record: in flight, or its process died first)");
  print_table(out, rows);
  out << "\ndamage\n";
  print_table(out, damage_rows(s));
  return 0;
}

// ---- dump -----------------------------------------------------------------------------------

constexpr std::pair<std::uint8_t, std::string_view> flag_names[] = {
    {meta_flags::reentered, "reentered"},
    {meta_flags::replayed, "replayed"},
    {meta_flags::external, "external"},
    {meta_flags::redelivered, "redelivered"},
};

int dump(const invocation& inv, std::ostream& out) {
  journal_reader in(inv.directory, inv.filter);
  // A --type no segment declares passes nothing: most likely a misspelt name, so say so.
  std::set<std::string_view> declared;
  for (const journal_segment_info& seg : in.segments())
    for (const journal_type_info& t : seg.types) declared.insert(t.name);
  for (const std::string& t : inv.filter.types) {
    if (declared.count(t) != 0) continue;
    std::string names;
    for (const std::string_view n : declared) names += (names.empty() ? "" : ", ") + std::string(n);
    std::cerr << "tachyon-journal: warning: --type '" << t
              << "': no segment declares it (declared: " << (names.empty() ? "none" : names)
              << ")\n";
  }
  std::string line;
  std::uint64_t printed = 0;
  for (const journal_record& r : in) {
    line.clear();
    json j(line);
    j.begin_object()
        .string("kind", r.kind == journal_record_kind::event ? "event" : "outcome")
        .string("run", run_id_text(r.run_id))
        .number("writer", r.writer)
        .number("number", r.number)
        .number("sequence", r.header.sequence)
        .number("correlation", r.header.correlation_id)
        .number("causation", r.header.causation_id)
        .string("lane", to_string(r.header.lane))
        .number("flags", r.header.flags)
        .begin_array("flag_names");
    for (const auto& [bit, name] : flag_names)
      if ((r.header.flags & bit) != 0) j.string({}, name);
    const std::int64_t ns = ns_of(r.time);
    j.end_array()
        .number("attempt", r.header.attempt)
        .string("type", r.type_name())
        .number("version", r.type != nullptr ? r.type->version : 0)
        .string("encoding", encoding(r.type))
        .string("time", iso_time(ns))
        .number("time_ns", ns)
        .number("ticks", r.header.publish_ticks);
    if (r.outcome)
      j.string("outcome", to_string(*r.outcome));
    else
      j.null("outcome");
    j.string("file", r.file)
        .number("offset", r.offset)
        .number("payload_bytes", r.payload.size())
        .string("payload", hex(r.payload))
        .end_object();
    line += '\n';
    out << line;
    ++printed;
  }
  // The reader starts at the event whose sequence is exactly this one: name it if none had it.
  if (printed == 0 && inv.filter.from_sequence != 0)
    std::cerr << "tachyon-journal: warning: nothing passed; --from-sequence "
              << inv.filter.from_sequence
              << " must be the sequence of an event that passes the other filters (dump prints "
                 "them; a sequence is the publishing thread's count << 16 | its id)\n";
  return 0;
}

// ---- verify ---------------------------------------------------------------------------------

int verify(const invocation& inv, std::ostream& out) {
  journal_reader in(inv.directory);
  const journal_scan& s = in.scan();
  // Each writer thread's last segment in its run: where a killed process leaves its torn tail.
  std::map<std::pair<std::uint64_t, std::uint32_t>, const journal_segment_info*> last;
  for (const journal_segment_info& seg : in.segments()) {
    const journal_segment_info*& l = last[{seg.run_id, seg.writer}];
    if (l == nullptr || seg.writer_segment > l->writer_segment) l = &seg;
  }
  std::set<std::string_view> last_files;
  for (const auto& [writer, seg] : last) last_files.insert(seg->file);

  std::uint64_t damaged = 0, crash_tails = 0;
  for (const journal_problem& p : s.problems) {
    const bool crash_tail =
        p.what == journal_problem::kind::torn_tail && last_files.count(p.file) != 0;
    out << to_string(p.what) << ": " << p.file;
    if (p.what == journal_problem::kind::gap)
      out << " at offset " << p.offset << ", " << count_of(p.bytes, "record") << " missing";
    else if (p.what != journal_problem::kind::bad_segment)
      out << " at offset " << p.offset << ", " << p.bytes << " bytes";
    out << ": " << p.detail;
    if (crash_tail) out << " (expected after a crash: the end of its writer's last segment)";
    out << '\n';
    if (crash_tail && !inv.strict)
      ++crash_tails;
    else
      ++damaged;
  }
  out << "checked " << count_of(s.segments, "segment") << ": " << count_of(s.records, "record")
      << ", " << count_of(s.outcome_records, "outcome record") << ", " << s.bytes << " bytes\n";
  print_table(out, damage_rows(s));
  if (damaged != 0) {
    out << "damaged: " << count_of(damaged, "problem") << '\n';
    return 1;
  }
  if (crash_tails != 0)
    out << "intact, apart from " << count_of(crash_tails, "torn tail") << " that a crash leaves\n";
  else
    out << "intact\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << usage_text;
    return 2;
  }
  if (std::find(args.begin(), args.end(), "--help") != args.end()) {
    std::cout << usage_text;
    return 0;
  }
  try {
    const invocation inv = parse(args);
    int status = 0;
    switch (inv.what) {
      case command::stats:
        status = stats(inv, std::cout);
        break;
      case command::dump:
        status = dump(inv, std::cout);
        break;
      case command::verify:
        status = verify(inv, std::cout);
        break;
    }
    if (!std::cout.flush()) {
      std::cerr << "tachyon-journal: cannot write its output\n";
      return 2;
    }
    return status;
  } catch (const usage_error& e) {
    std::cerr << "tachyon-journal: " << e.what()
              << "\n(tachyon-journal --help lists the commands and options)\n";
    return 2;
  } catch (const std::exception& e) {  // journal_error: a directory or segment unreadable
    std::cerr << "tachyon-journal: " << e.what() << '\n';
    return 2;
  }
}
