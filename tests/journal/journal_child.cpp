// tachyon_journal_child: the process the crash tests (test_crash.cpp) kill. It publishes
// journaled events (crash_shared.hpp) and, after each publish() that returns ok, stores in
// shared memory how many of its thread's events were acknowledged, so that whatever instant
// the parent kills it at, the parent knows exactly which events the journal owes it.
//
//   tachyon_journal_child mode=run|cycle|full dir=PATH shm=PATH [durability=process|interval|
//       every_event] [segment=BYTES] [threads=N] [count=N] [end=park|exit] [limit=BYTES]
//
//   run    one bus; each of `threads` threads publishes `count` events (0: without end), then
//          the child parks until killed (end=park) or destroys the bus and exits (end=exit).
//   cycle  buses made and destroyed one after another, `count` events each, until killed:
//          kills land in construction and destruction too.
//   full   one thread: `count` events; then a file size limit of `limit` bytes (RLIMIT_FSIZE;
//          limit=0: none, the disk is expected to fill by itself) and publishes until 20 in a
//          row are refused; then the limit is lifted (limit=0: waits for the parent's `go`)
//          and `count` more. Every result goes to shared memory, and the journal's counts.
//
// Exit status: 0 done, 2 bad arguments, 3 the bus refused to start or a publish failed (the
// reason in shared memory's `error`).
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "journal/crash_shared.hpp"

namespace {

std::map<std::string, std::string> args;

std::string arg(const std::string& k, const std::string& fallback = {}) {
  auto it = args.find(k);
  return it != args.end() ? it->second : fallback;
}
std::uint64_t num(const std::string& k, std::uint64_t fallback) {
  auto it = args.find(k);
  return it != args.end() ? std::stoull(it->second) : fallback;
}

jc::shared* shm = nullptr;

[[noreturn]] void give_up(const std::string& why) {
  std::snprintf(shm->error, sizeof shm->error, "%s", why.c_str());
  std::fprintf(stderr, "tachyon_journal_child: %s\n", why.c_str());
  std::_Exit(3);
}

[[noreturn]] void park() {
  for (;;) ::pause();
}

tachyon::config make_config() {
  tachyon::config c;
  c.workers = 1;
  c.journal.directory = arg("dir");
  c.journal.segment_bytes = num("segment", 64u << 10);
  const std::string d = arg("durability", "process");
  if (d == "interval") {
    c.journal.durability = tachyon::durability::interval;
    c.journal.sync_interval = std::chrono::milliseconds(2);
  } else if (d == "every_event") {
    c.journal.durability = tachyon::durability::every_event;
  } else if (d != "process") {
    std::fprintf(stderr, "tachyon_journal_child: durability=%s: process, interval or every_event\n",
                 d.c_str());
    std::_Exit(2);
  }
  return c;
}

/// A bus with a handler for each journaled type (so its events are dispatched and their
/// outcomes journaled by the worker), announced in shared memory.
struct journaled_bus {
  tachyon::bus<jt::Events> bus;
  tachyon::subscription a, b;
  explicit journaled_bus(const tachyon::config& c)
      : bus(c),
        a(bus.subscribe<jt::Tick>([](const jt::Tick&) {})),
        b(bus.subscribe<jt::Order>([](const jt::Order&) {})) {
    shm->run_id.store(bus.journal_run_id(), std::memory_order_release);
    shm->runs.fetch_add(1, std::memory_order_release);
  }
};

std::unique_ptr<journaled_bus> open_bus(const tachyon::config& c) {
  try {
    return std::make_unique<journaled_bus>(c);
  } catch (const std::exception& e) {
    give_up(e.what());
  }
}

/// Thread t publishes its events [from, to), each acknowledged in shared memory once ok.
void publish_range(tachyon::bus<jt::Events>& bus, std::uint32_t t, std::uint64_t from,
                   std::uint64_t to) {
  for (std::uint64_t k = from; k < to; ++k) {
    const tachyon::result r = jc::publish(bus, t, k);
    if (r != tachyon::result::ok)
      give_up("thread " + std::to_string(t) + " event " + std::to_string(k) +
              ": publish() returned " + std::string(tachyon::to_string(r)) +
              "; last_error: " + bus.journal_stats().last_error);
    shm->acked[t].store(k + 1, std::memory_order_release);
  }
}

int run_mode() {
  const auto threads = static_cast<std::uint32_t>(num("threads", 1));
  const std::uint64_t count = num("count", 0);
  if (threads == 0 || threads > jc::max_threads) return 2;
  auto b = open_bus(make_config());
  std::vector<std::thread> pubs;
  for (std::uint32_t t = 0; t < threads; ++t)
    pubs.emplace_back(publish_range, std::ref(b->bus), t, 0, count != 0 ? count : UINT64_MAX);
  for (auto& p : pubs) p.join();
  if (arg("end", "park") == "park") park();
  b.reset();
  shm->done.store(1, std::memory_order_release);
  return 0;
}

int cycle_mode() {
  const std::uint64_t count = num("count", 5);
  const tachyon::config c = make_config();
  for (std::uint64_t k = 0;; k += count) {
    auto b = open_bus(c);
    publish_range(b->bus, 0, k, k + count);
  }
}

int full_mode() {
  const std::uint64_t count = num("count", 100);
  const std::uint64_t limit = num("limit", 0);
  // Past the limit the kernel sends SIGXFSZ, whose default ends the process; ignored, the call
  // that went past it fails with EFBIG instead, which is what the journal must handle.
  ::signal(SIGXFSZ, SIG_IGN);
  std::memset(shm->result, jc::not_published, sizeof shm->result);
  auto b = open_bus(make_config());
  auto& bus = b->bus;
  std::uint64_t k = 0;
  auto publish = [&] {
    if (k >= jc::max_results) give_up("no refusal within " + std::to_string(k) + " events");
    const tachyon::result r = jc::publish(bus, 0, k);
    shm->result[k++] = static_cast<std::uint8_t>(r);
    if (r == tachyon::result::ok)
      ++shm->ok;
    else if (r == tachyon::result::journal_failed)
      ++shm->refused;
    else
      ++shm->other;
    return r;
  };
  for (std::uint64_t i = 0; i < count; ++i) (void)publish();
  rlimit before{};
  ::getrlimit(RLIMIT_FSIZE, &before);
  if (limit != 0) {
    rlimit small = before;
    small.rlim_cur = limit;
    if (::setrlimit(RLIMIT_FSIZE, &small) != 0)
      give_up("setrlimit: " + std::string(std::strerror(errno)));
  }
  for (int in_a_row = 0; in_a_row < 20;)
    in_a_row = publish() == tachyon::result::journal_failed ? in_a_row + 1 : 0;
  shm->phase.store(1, std::memory_order_release);
  if (limit != 0) {
    if (::setrlimit(RLIMIT_FSIZE, &before) != 0)
      give_up("setrlimit: " + std::string(std::strerror(errno)));
  } else {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
    while (shm->go.load(std::memory_order_acquire) == 0) {
      if (std::chrono::steady_clock::now() > deadline) give_up("no go from the parent");
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  for (std::uint64_t i = 0; i < count; ++i) (void)publish();
  bus.stop();
  const tachyon::journal_stats s = bus.journal_stats();
  const tachyon::metrics_snapshot m = bus.metrics();
  shm->stats_records = s.records;
  shm->stats_outcomes = s.outcomes;
  shm->stats_refused = s.refused;
  shm->stats_outcomes_lost = s.outcomes_lost;
  shm->metric_refused = m.total.journal_refused;
  shm->metric_accepted = m.total.accepted;
  std::snprintf(shm->last_error, sizeof shm->last_error, "%s", s.last_error.c_str());
  b.reset();
  shm->done.store(1, std::memory_order_release);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Never outlive the test that started it, whatever becomes of the test.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto eq = a.find('=');
    if (eq == std::string::npos) {
      std::fprintf(stderr, "tachyon_journal_child: '%s' is not key=value\n", argv[i]);
      return 2;
    }
    args[a.substr(0, eq)] = a.substr(eq + 1);
  }
  const int fd = ::open(arg("shm").c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0 || arg("dir").empty()) {
    std::fprintf(stderr, "tachyon_journal_child: needs dir= and shm= (an existing file)\n");
    return 2;
  }
  void* p = ::mmap(nullptr, sizeof(jc::shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) return 2;
  shm = static_cast<jc::shared*>(p);
  const std::string mode = arg("mode", "run");
  if (mode == "run") return run_mode();
  if (mode == "cycle") return cycle_mode();
  if (mode == "full") return full_mode();
  std::fprintf(stderr, "tachyon_journal_child: mode=%s: run, cycle or full\n", mode.c_str());
  return 2;
}
