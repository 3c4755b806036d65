// tachyon_hot_paths' journal rows (see hot_paths.cpp): what config::journal costs a publish and
// a drained event of a journaled type, beside the same bus type with the journal off.
//
//   op_publish_journaled  bus::publish of a 16-byte Logged (registered tachyon::journaled) into a
//                         manual bus whose journal is on (durability::process, the default
//                         64 MiB segments): the record reserved, filled (header, payload,
//                         CRC-32C) and committed in this thread's segment
//   op_drain_journaled    bus::poll draining those events through one handler (per event: / n):
//                         each one's outcome record (dispatched) appended at the settle point
//   op_publish_unjournaled, op_drain_unjournaled
//                         the same on a twin bus of the same type, with config::journal empty
//
// Both pairs are in this one translation unit and call the same instantiations, so that GCC's
// inlining is the same for both and a difference can only come from the journal. The records go
// to a directory next to the executable (on the build's disk), removed at the end. The journal's
// thread (tachyon-journal) prepares segments concurrently; callgrind counts only what the calls
// themselves execute. This thread's writer and its first segment are made by one publish before
// the counted calls, so the rows are the steady state.
#include <tachyon/tachyon.hpp>

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>

namespace hot_paths {
std::uint64_t journaled_rounds(int rounds, std::uint64_t per_round, std::uint64_t& sink);
}  // namespace hot_paths

namespace {

struct Logged {
  std::uint64_t seq;
  std::uint64_t check;
};
static_assert(sizeof(Logged) == 16);
using journaled_bus_t = tachyon::bus<
    tachyon::registry<tachyon::event<Logged, tachyon::priority::normal, tachyon::journaled>>>;

tachyon::config settings() {
  return {.workers = 0, .lane_capacity = 4096, .overflow = tachyon::overflow::fail, .producers = 1};
}

// The wrappers read their bus from a global of their own, so that their machine code differs
// and GCC does not fold the pairs into one function.
journaled_bus_t* with_journal = nullptr;
journaled_bus_t* without_journal = nullptr;

[[gnu::noinline]] tachyon::result op_publish_journaled(std::uint64_t i) {
  return with_journal->publish(Logged{i, ~i});
}
[[gnu::noinline]] tachyon::result op_publish_unjournaled(std::uint64_t i) {
  return without_journal->publish(Logged{i, ~i});
}
[[gnu::noinline]] std::size_t op_drain_journaled() { return with_journal->poll(); }
[[gnu::noinline]] std::size_t op_drain_unjournaled() { return without_journal->poll(); }

/// The journal's directory: next to the executable (the build's disk), one per process.
std::filesystem::path journal_dir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  const auto parent = ec ? std::filesystem::current_path() : exe.parent_path();
  return parent / ("hot-paths-journal." + std::to_string(::getpid()));
}

}  // namespace

std::uint64_t hot_paths::journaled_rounds(int rounds, std::uint64_t per_round,
                                          std::uint64_t& sink) {
  const std::filesystem::path dir = journal_dir();
  std::uint64_t failures = 0;
  {
    tachyon::config on = settings();
    on.journal.directory = dir.string();
    journaled_bus_t journaled{on}, twin{settings()};
    with_journal = &journaled;
    without_journal = &twin;
    auto s1 = journaled.subscribe<Logged>([&](const Logged& e) { sink += e.seq; });
    auto s2 = twin.subscribe<Logged>([&](const Logged& e) { sink += e.seq; });
    // Uncounted: this thread's writer, its first segment, and each bus's first publish.
    failures += journaled.publish(Logged{0, ~0ull}) != tachyon::result::ok;
    failures += twin.publish(Logged{0, ~0ull}) != tachyon::result::ok;
    failures += journaled.poll() != 1;
    failures += twin.poll() != 1;
    for (int r = 0; r < rounds; ++r) {
      for (std::uint64_t i = 0; i < per_round; ++i)
        failures += op_publish_journaled(i) != tachyon::result::ok;
      if (op_drain_journaled() != per_round) ++failures;
      for (std::uint64_t i = 0; i < per_round; ++i)
        failures += op_publish_unjournaled(i) != tachyon::result::ok;
      if (op_drain_unjournaled() != per_round) ++failures;
    }
    // Every event and its outcome went to the journal.
    const auto s = journaled.journal_stats();
    const auto n = static_cast<std::uint64_t>(rounds) * per_round + 1;
    if (s.records != n || s.outcomes != n || s.refused != 0 || !s.last_error.empty()) {
      std::fprintf(stderr, "tachyon_hot_paths: journal wrote %llu records, %llu outcomes (%s)\n",
                   static_cast<unsigned long long>(s.records),
                   static_cast<unsigned long long>(s.outcomes), s.last_error.c_str());
      ++failures;
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return failures;
}
