// audit_log: the audit log users of event buses keep — what was published, when, by which
// thread, and what became of it — read from the journal instead of written by a handler.
//
// The bus journals two types: payments (a codec, since they hold a string) and refunds (raw
// bytes). Three threads publish; the payment handler declines some payments (they throw, and go
// to the dead letters), and the bus is stopped with events still queued, which it discards. Then
// the program reads the journal back and writes the audit log as JSON lines to stdout (or to the
// file named by its first argument): one line per event, with the time it was published, the
// publishing thread, its type, sequence and correlation id, its fields, and its outcome.
//
// It checks itself: every event whose publish returned ok is in the log exactly once, each with
// an outcome, and the outcomes add up to the bus's own counters (metrics()).
#include <unistd.h>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <tachyon/journal.hpp>
#include <tachyon/tachyon.hpp>

namespace shop {

struct Payment {
  std::uint64_t order;
  std::int64_t cents;
  std::string card;
};
struct Refund {  // trivially copyable: journaled as its bytes
  std::uint64_t order;
  std::int64_t cents;
};

}  // namespace shop

template <>
struct tachyon::codec<shop::Payment> {
  static constexpr std::string_view name = "shop.Payment";
  static constexpr std::uint32_t version = 1;
  static void encode(const shop::Payment& p, tachyon::writer& w) {
    w.put(p.order);
    w.put(p.cents);
    w.put(std::string_view(p.card));
  }
  static shop::Payment decode(tachyon::reader& r, std::uint32_t) {
    shop::Payment p;
    p.order = r.get<std::uint64_t>();
    p.cents = r.get<std::int64_t>();
    p.card = r.get_string();
    return p;
  }
};
template <>
struct tachyon::codec<shop::Refund> {  // a name of its own, the same in every build
  static constexpr std::string_view name = "shop.Refund";
  static constexpr std::uint32_t version = 1;
};

using Events =
    tachyon::registry<tachyon::event<shop::Payment, tachyon::priority::high, tachyon::journaled>,
                      tachyon::event<shop::Refund, tachyon::priority::normal, tachyon::journaled>>;

namespace {

int fail(const std::string& why) {
  std::fprintf(stderr, "audit_log: %s\n", why.c_str());
  return 1;
}

std::string iso8601(std::chrono::system_clock::time_point t) {
  const auto ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ns / 1'000'000'000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[80];
  std::snprintf(out, sizeof out, "%s.%09lldZ", buf, static_cast<long long>(ns % 1'000'000'000));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("tachyon-audit-log-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::FILE* out = argc > 1 ? std::fopen(argv[1], "w") : stdout;
  if (out == nullptr) return fail(std::string("cannot open ") + argv[1]);

  constexpr int threads = 3;
  constexpr std::uint64_t each = 200;
  tachyon::metrics_snapshot counted;
  {
    tachyon::config cfg;
    cfg.workers = 1;
    cfg.dead_letter_capacity = 1024;
    cfg.journal.directory = dir.string();
    cfg.journal.segment_bytes = 1 << 20;
    tachyon::bus<Events> bus(cfg);
    auto payments = bus.subscribe<shop::Payment>([](const shop::Payment& p) {
      if (p.card == "declined") throw std::runtime_error("card declined");
      std::this_thread::sleep_for(std::chrono::microseconds(20));  // the bank's call
    });
    auto refunds = bus.subscribe<shop::Refund>([](const shop::Refund&) {});
    std::vector<std::thread> publishers;
    for (int t = 0; t < threads; ++t)
      publishers.emplace_back([&bus, t] {
        for (std::uint64_t i = 0; i < each; ++i) {
          const std::uint64_t order = static_cast<std::uint64_t>(t) * 1000 + i;
          const tachyon::publish_options o{.correlation_id = order};
          if (i % 4 == 3) {
            if (bus.publish(shop::Refund{order, 500}, o) != tachyon::result::ok) std::abort();
          } else if (bus.publish(shop::Payment{order, 1999, i % 10 == 0 ? "declined" : "visa"},
                                 o) != tachyon::result::ok) {
            std::abort();
          }
        }
      });
    for (auto& p : publishers) p.join();
    bus.stop(tachyon::stop_mode::discard);  // what is still queued is discarded, and journaled so
    counted = bus.metrics();
  }

  // The audit log, from the journal alone.
  tachyon::journal_reader journal(dir);
  std::map<std::string, std::uint64_t> by_outcome;
  std::uint64_t lines = 0, without_outcome = 0;
  for (const tachyon::journal_record& r : journal) {
    std::string fields;
    if (r.is<shop::Payment>()) {
      const auto p = r.decode<shop::Payment>();
      fields = "\"order\":" + std::to_string(p.order) + ",\"cents\":" + std::to_string(p.cents) +
               ",\"card\":\"" + p.card + "\"";
    } else {
      const auto f = r.decode<shop::Refund>();
      fields = "\"order\":" + std::to_string(f.order) + ",\"cents\":" + std::to_string(f.cents);
    }
    const std::string outcome = r.outcome ? std::string(tachyon::to_string(*r.outcome)) : "none";
    std::fprintf(out,
                 "{\"time\":\"%s\",\"thread\":%" PRIu32 ",\"type\":\"%s\",\"sequence\":%" PRIu64
                 ",\"correlation\":%" PRIu64 ",%s,\"outcome\":\"%s\"}\n",
                 iso8601(r.time).c_str(), r.writer, std::string(r.type_name()).c_str(),
                 r.header.sequence, r.header.correlation_id, fields.c_str(), outcome.c_str());
    ++by_outcome[outcome];
    ++lines;
    if (!r.outcome) ++without_outcome;
  }
  if (out != stdout) std::fclose(out);
  std::filesystem::remove_all(dir);

  // Checks: the log holds every accepted event once, and agrees with the bus's counters.
  const auto& c = counted.total;
  if (!journal.scan().clean()) return fail("the journal reports damage");
  if (lines != threads * each) return fail("log lines: " + std::to_string(lines));
  if (c.accepted != lines) return fail("accepted " + std::to_string(c.accepted));
  if (without_outcome != 0) return fail(std::to_string(without_outcome) + " without an outcome");
  if (by_outcome["dispatched"] != c.dispatched || by_outcome["dead_lettered"] != c.dead_lettered ||
      by_outcome["discarded"] != c.discarded)
    return fail("outcomes differ from metrics()");
  if (c.dead_lettered == 0) return fail("no payment was declined");
  std::fprintf(stderr,
               "audit_log: %" PRIu64 " events: %" PRIu64 " dispatched, %" PRIu64
               " dead-lettered, %" PRIu64 " discarded at stop\n",
               lines, c.dispatched, c.dead_lettered, c.discarded);
  return 0;
}
