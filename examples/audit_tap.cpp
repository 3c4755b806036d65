// audit_tap: a subscribe_all visitor writes every event a bus carries, with its meta, to a file as
// JSON lines, in batches a writer thread writes; a subscribe_tagged<security> visitor counts the
// security events. Two publishers, two workers; the program reads the file back and checks it.
#include <tachyon/tachyon.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace app {
struct security {};  // a tag
struct with_id {
  std::uint64_t id;  // publisher p's: p * base + round; an alert's: its PasswordChanged's
};
struct Login : with_id {};
struct Order : with_id {};
struct PasswordChanged : with_id {};
struct Alert : with_id {};
}  // namespace app
template <class T, tachyon::priority P>  // a type the security tap sees
using secured = tachyon::event<T, P, tachyon::tags<app::security>>;
using Events = tachyon::registry<secured<app::Login, tachyon::priority::normal>, app::Order,
                                 secured<app::PasswordChanged, tachyon::priority::high>,
                                 secured<app::Alert, tachyon::priority::high>>;  // types 0 .. 3
constexpr std::size_t rounds = 1000, base = 1000000, batch = 256;  // batch: lines per write
constexpr bool changes(std::uint64_t id) { return id % 10 == 0; }  // a PasswordChanged round
using ull = unsigned long long;

std::atomic<int> failures{0};  // the publishers check too
void check(bool ok, const char* what) {
  if (!ok) ++failures, std::fprintf(stderr, "audit_tap: FAILED: %s\n", what);
}
// One layout for what snprintf writes and sscanf reads back (a macro: the compiler checks both).
#define JSON_LINE(NAME, LANE)                                                                    \
  "{\"type\":\"" NAME "\",\"seq\":%llu,\"correlation\":%llu,\"causation\":%llu,\"lane\":\"" LANE \
  "\",\"ticks\":%llu,\"thread\":%llu,\"id\":%llu}"

int main(int argc, char** argv) {
  char path[] = "/tmp/tachyon_audit_XXXXXX";
  std::FILE* file = fdopen(mkstemp(path), "w");  // fdopen(-1, ...): nullptr
  if (file == nullptr) return std::perror("audit_tap: a temporary file"), 1;
  // A worker never waits on the file: it appends its line to `filling` under the mutex and, every
  // `batch` lines, moves that buffer to `ready`: it holds the mutex for a copy of about 150 bytes
  // (once a batch, a move too). Only the writer thread writes and flushes, one fwrite a batch,
  // without the mutex. (`ready` is unbounded here; a real log would bound it.)
  std::mutex mu;
  std::condition_variable cv;
  std::string filling;
  std::vector<std::string> ready;
  std::size_t lines = 0, writes = 0;
  bool closing = false;
  std::thread writer([&] {
    std::unique_lock lock(mu);  // until closing, with everything written
    while (cv.wait(lock, [&] { return closing || !ready.empty(); }), !ready.empty()) {
      auto todo = std::exchange(ready, {});
      lock.unlock();  // the workers go on appending meanwhile
      for (auto& b : todo) std::fwrite(b.data(), 1, b.size(), file);
      std::fflush(file);
      writes += todo.size();
      lock.lock();
    }
  });
  tachyon::bus<Events> bus{{.workers = 2}};
  auto audit = bus.subscribe_all([&]<class T>(const T& ev, const tachyon::meta& m) {
    char line[320];  // the names are short: it cannot truncate
    const std::string_view type = bus.type_name<T>(), lane = to_string(m.lane);
    const int n =
        std::snprintf(line, sizeof line, JSON_LINE("%.*s", "%.*s") "\n", int(type.size()),
                      type.data(), ull(m.sequence), ull(m.correlation_id), ull(m.causation_id),
                      int(lane.size()), lane.data(), ull(m.publish_ticks), ull(m.sequence & 0xffff),
                      ull(ev.id));  // the low 16 bits: the publishing thread's context
    const std::lock_guard lock(mu);
    filling.append(line, std::size_t(n));
    if (++lines % batch == 0) ready.push_back(std::exchange(filling, {})), cv.notify_one();
  });
  std::atomic<std::uint64_t> security{0};
  auto guard = bus.subscribe_tagged<app::security>([&](const auto&) { ++security; });
  auto alerts = bus.subscribe<app::PasswordChanged>([&](const app::PasswordChanged& e) {
    bus.dispatch(app::Alert{e.id});  // now, caused by e; the tap, subscribed first, logged e
  });
  const auto publisher = [&](std::uint64_t p) {  // one correlation id per round: its id
    for (std::uint64_t id = p * base; id < p * base + rounds; ++id) {
      const tachyon::publish_options o{.correlation_id = id};
      bool ok = bus.publish(app::Login{id}, o) == tachyon::result::ok;
      ok &= bus.publish(app::Order{id}, o) == tachyon::result::ok;
      if (changes(id)) ok &= bus.publish(app::PasswordChanged{id}, o) == tachyon::result::ok;
      check(ok, "publish");
    }
  };
  std::thread first(publisher, 1), second(publisher, 2);
  first.join(), second.join();
  bus.stop();  // drains every lane and joins the workers: no visitor runs after this
  {
    const std::lock_guard lock(mu);  // the last, partial batch
    if (!filling.empty()) ready.push_back(std::move(filling));
    closing = true;
  }
  cv.notify_one();
  writer.join();
  check(std::ferror(file) == 0 && std::fclose(file) == 0, "the file was written and closed");

  const auto m = bus.metrics();  // the file: one line per event, every line as written
  std::vector<std::uint64_t> lines_of(m.types.size());
  std::set<ull> seqs;
  std::map<std::pair<std::size_t, ull>, ull> events;  // (type, id) -> sequence
  std::ifstream in(path);
  std::size_t read = 0;
  for (std::string s; std::getline(in, s); ++read) {
    char type[64], lane[16];
    ull seq, corr, cause, ticks, thread, id;
    int end = 0;
    std::size_t t = 0;  // the type's index
    const bool parsed = std::sscanf(s.c_str(), JSON_LINE("%63[^\"]", "%15[^\"]") "%n", type, &seq,
                                    &corr, &cause, lane, &ticks, &thread, &id, &end) == 8;
    while (t < m.types.size() && m.types[t].name != type) ++t;
    check(parsed && std::size_t(end) == s.size() && t < m.types.size(), "a line parses");
    if (!parsed || t == m.types.size()) continue;
    ++lines_of[t];
    check(seqs.insert(seq).second && events.emplace(std::pair{t, id}, seq).second,
          "no event twice");
    check(id % base < rounds && (id / base == 1 || id / base == 2) && (t < 2 || changes(id)),
          "published");
    check(thread == (seq & 0xffff) && corr == id, "thread and correlation id");
    check(lane == std::string(t < 2 ? "normal" : "high"), "the type's lane");
    check((t == 3) == (cause != 0) && (t == 3) == (ticks == 0), "dispatch(): a cause, no ticks");
    check(t != 3 || events[{2, id}] == cause, "an alert's cause: its PasswordChanged's sequence");
  }
  const std::uint64_t published[] = {2 * rounds, 2 * rounds, 2 * rounds / 10, 2 * rounds / 10};
  for (std::size_t i = 0; i < m.types.size(); ++i)
    check(lines_of[i] == published[i] && m.types[i].counts.dispatched == published[i], "counts");
  check(read == lines && read == m.total.accepted && m.total.dispatched == read, "1 per event");
  check(writes == (read + batch - 1) / batch, "one write per batch of lines");
  check(security == lines_of[0] + lines_of[2] + lines_of[3], "security: the tagged types only");
  std::printf("%zu lines in %zu writes to %s (the security tap: %llu events)\n", read, writes, path,
              ull(security.load()));
  if (argc < 2 || std::string_view(argv[1]) != "--keep") std::remove(path);
  return failures == 0 ? 0 : 1;
}
