// tachyon_nats_bench: what the NATS bridge (tachyon::nats) costs beside plain libnats doing the
// same work against the same nats-server, started here on 127.0.0.1 (bench/nats_launcher.hpp;
// JetStream stored in a temporary directory, the server stopped at the end).
//
// On a small machine the server, the bridge and the peer share the CPUs, and one side's turn
// can catch a burst of preemption the other's did not. So each figure runs in paired rounds: a
// round is one trial of the raw libnats peer and one of the bridge, the order alternated round
// by round; per round the ratio of the two; reported is the median of the per-round ratios,
// with the smallest and largest, and each side's median. Connections, buses and bridges are made
// once per figure, before its rounds, and every trial starts with a warm-up.
//
// roundtrip   bus A -> NATS -> bus B -> NATS -> bus A, core NATS: the main thread publishes
//   Ping{id} into bus A (exported on bench.rt.ping); bus B imports it, its handler publishes
//   Pong{id} (exported on bench.rt.pong), bus A imports that and its handler stores the id in an
//   atomic the main thread spins on. Each round trip timed on its own; p50 and p99. Threads: two
//   buses of one worker each, two bridges (each one connection: a sender thread, libnats's
//   reader, flusher and one delivery thread per import). The peer, raw_request: two libnats
//   connections, a responder subscribed on bench.raw.ping whose callback publishes the reply to
//   the reply subject, and a requester calling natsConnection_Request, payloads of 64 bytes both
//   ways as the events are. Target: bridge p50 / raw_request p50 <= 1.2. Shown beside it,
//   raw_request_asap: the responder's connection with natsOptions_SetSendAsap (libnats's advice
//   for a connection that only replies: by default a reply waits up to 1 ms for libnats's
//   flusher thread, which is most of raw_request's time on loopback).
//
// throughput  M events of 64 bytes published into bus A (one worker, overflow::block), exported
//   on core NATS, timed from the first publish until bridge::flush() returns (every event handed
//   to NATS and the connection flushed). The peer, raw_publish: M natsConnection_Publish of
//   64 bytes in a loop on one connection, then natsConnection_Flush. raw_publish_headers, shown
//   beside it: the same with the three headers the bridge writes (natsMsg_Create, three
//   natsMsgHeader_Set of the same lengths, natsConnection_PublishMsg): what the headers cost on
//   their own. Nothing subscribes: the server drops the messages, for every side alike. The
//   bridge's export queue holds M, so that no event is refused (checked: exported == M).
//   Target: bridge rate / raw_publish rate >= 0.8.
//
// jetstream   The same into a JetStream stream (file storage, in the temporary directory, purged
//   before each trial): the bridge exports with a message id (deduplication) and is timed until
//   flush() returns (every message acknowledged). The peer, raw_js_publish_async:
//   js_PublishAsync of 64 bytes, MaxPending 4096 as the bridge's context has, then
//   js_PublishAsyncComplete. raw_js_publish_async_headers, shown beside it: js_PublishMsgAsync
//   with the bridge's three headers and a message id of the same length.
//   Target: bridge rate / raw_js_publish_async rate >= 0.8.
//
// Usage: tachyon_nats_bench [--quick] [--json FILE] [--only roundtrip|throughput|jetstream]
// Exits 0 when every figure was measured (targets missed or not), 1 on a failure, 2 when
// nats-server cannot be found (the message says so).
#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <tachyon/nats/bridge.hpp>
#include <tachyon/tachyon.hpp>

#include "emulation.hpp"
#include "nats_launcher.hpp"
#include "text.hpp"

namespace bn {

/// 64 bytes, trivially copyable: its payload is its bytes.
struct Ping {
  std::uint64_t id;
  std::uint64_t pad[7];
};
struct Pong {
  std::uint64_t id;
  std::uint64_t pad[7];
};
struct Tick {
  std::uint64_t seq;
  std::uint64_t pad[7];
};
static_assert(sizeof(Ping) == 64 && sizeof(Pong) == 64 && sizeof(Tick) == 64);

using Events = tachyon::registry<Ping, Pong, Tick>;
using Bus = tachyon::bus<Events>;
using Bridge = tachyon::nats::bridge<Bus>;

}  // namespace bn

template <>
struct tachyon::codec<bn::Ping> {
  static constexpr std::string_view name = "bench.Ping";
  static constexpr std::uint32_t version = 1;
};
template <>
struct tachyon::codec<bn::Pong> {
  static constexpr std::string_view name = "bench.Pong";
  static constexpr std::uint32_t version = 1;
};
template <>
struct tachyon::codec<bn::Tick> {
  static constexpr std::string_view name = "bench.Tick";
  static constexpr std::uint32_t version = 1;
};

namespace {

using namespace bn;
using steady = std::chrono::steady_clock;

using bench::fmt;
using bench::json_string;
using bench::median;

void check(natsStatus s, const char* what) {
  if (s != NATS_OK)
    throw std::runtime_error(std::string("tachyon_nats_bench: ") + what + ": " +
                             natsStatus_GetText(s) + " (" + nats_GetLastError(nullptr) + ")");
}

double seconds_since(steady::time_point t0) {
  return std::chrono::duration<double>(steady::now() - t0).count();
}

double percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const std::size_t i = std::min(
      sorted.size() - 1, static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[i];
}

/// A plain libnats connection with the bridge's connection settings that matter here (no echo).
struct raw_connection {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  explicit raw_connection(const std::string& url, bool jetstream = false, bool send_asap = false) {
    natsOptions* no = nullptr;
    check(natsOptions_Create(&no), "natsOptions_Create");
    natsOptions_SetURL(no, url.c_str());
    natsOptions_SetNoEcho(no, true);
    natsOptions_SetSendAsap(no, send_asap);
    const natsStatus s = natsConnection_Connect(&nc, no);
    natsOptions_Destroy(no);
    check(s, "connect");
    if (jetstream) {
      jsOptions jo;
      jsOptions_Init(&jo);
      jo.PublishAsync.MaxPending = 4096;  // as the bridge's JetStream context
      check(natsConnection_JetStream(&js, nc, &jo), "JetStream context");
    }
  }
  ~raw_connection() {
    if (js != nullptr) jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
  }
};

// ---- reporting --------------------------------------------------------------------------------

/// One side's trial in one round: the figure it is compared by, and what else it measured.
struct trial {
  double value = 0;          // p50 ns (round trip), events per second (throughput)
  double p99 = 0;            // round trip only
  std::uint64_t errors = 0;  // events not delivered / exported as asked
};

struct side {
  std::string name, what;
  std::vector<trial> rounds;
};

struct figure {
  std::string name, title, unit, target_text;
  bool higher_is_better = false;  // rates: bridge / raw >= target; times: bridge / raw <= target
  double target = 0;
  std::vector<side> sides;  // [0]: the raw peer the target is against; [1]: the bridge; extras
  std::vector<std::string> settings, notes;
  /// Ratios shown beside the target's (side, peer); empty: every extra side over sides[0].
  std::vector<std::pair<std::size_t, std::size_t>> extra_ratios;

  std::vector<std::pair<std::size_t, std::size_t>> ratio_pairs() const {
    std::vector<std::pair<std::size_t, std::size_t>> p = {{1, 0}};
    if (!extra_ratios.empty()) {
      p.insert(p.end(), extra_ratios.begin(), extra_ratios.end());
    } else {
      for (std::size_t i = 2; i < sides.size(); ++i) p.push_back({i, 0});
    }
    return p;
  }

  /// Per round: bridge / raw (time ratio for round trip, rate ratio for throughput).
  std::vector<double> ratios(std::size_t a = 1, std::size_t b = 0) const {
    std::vector<double> r;
    for (std::size_t i = 0; i < sides[a].rounds.size() && i < sides[b].rounds.size(); ++i)
      if (sides[b].rounds[i].value > 0)
        r.push_back(sides[a].rounds[i].value / sides[b].rounds[i].value);
    return r;
  }
};

std::string figure_json(const figure& f) {
  std::string s = "{\"figure\":" + json_string(f.name) + ",\"title\":" + json_string(f.title) +
                  ",\"unit\":" + json_string(f.unit) + ",\"settings\":[";
  for (std::size_t i = 0; i < f.settings.size(); ++i)
    s += (i ? "," : "") + json_string(f.settings[i]);
  s += "],\"sides\":[";
  for (std::size_t i = 0; i < f.sides.size(); ++i) {
    const auto& sd = f.sides[i];
    std::vector<double> v, p99;
    std::uint64_t errors = 0;
    for (const auto& t : sd.rounds) {
      v.push_back(t.value);
      p99.push_back(t.p99);
      errors += t.errors;
    }
    s +=
        fmt("%s\n  {\"name\":%s,\"what\":%s,\"median\":%.1f,\"median_p99\":%.1f,\"errors\":%llu,"
            "\"rounds\":[",
            i ? "," : "", json_string(sd.name).c_str(), json_string(sd.what).c_str(), median(v),
            median(p99), static_cast<unsigned long long>(errors));
    for (std::size_t r = 0; r < v.size(); ++r)
      s += fmt("%s{\"value\":%.1f,\"p99\":%.1f}", r ? "," : "", v[r], p99[r]);
    s += "]}";
  }
  s += "],\"ratios\":[";
  bool first = true;
  for (const auto& [i, j] : f.ratio_pairs()) {
    const auto r = f.ratios(i, j);
    if (r.empty()) continue;
    const double m = median(r);
    const bool has_target = i == 1 && j == 0;
    const bool met = f.higher_is_better ? m >= f.target : m <= f.target;
    s +=
        fmt("%s\n  {\"side\":%s,\"peer\":%s,\"value\":%.4f,\"min\":%.4f,\"max\":%.4f,"
            "\"per_round\":[",
            first ? "" : ",", json_string(f.sides[i].name).c_str(),
            json_string(f.sides[j].name).c_str(), m, *std::min_element(r.begin(), r.end()),
            *std::max_element(r.begin(), r.end()));
    for (std::size_t k = 0; k < r.size(); ++k) s += fmt("%s%.4f", k ? "," : "", r[k]);
    s +=
        fmt("],\"target\":%s,\"met\":%s}", has_target ? json_string(f.target_text).c_str() : "null",
            has_target ? (met ? "true" : "false") : "null");
    first = false;
  }
  s += "],\"notes\":[";
  for (std::size_t i = 0; i < f.notes.size(); ++i) s += (i ? "," : "") + json_string(f.notes[i]);
  return s + "]}";
}

std::string show(const figure& f, double v) {
  if (f.unit == "ns") return v >= 1e6 ? fmt("%.2f ms", v / 1e6) : fmt("%.1f us", v / 1e3);
  return v >= 1e6 ? fmt("%.2f M/s", v / 1e6) : fmt("%.1f k/s", v / 1e3);
}

void print_figure(const figure& f) {
  std::printf("\n== %s: %s\n", f.name.c_str(), f.title.c_str());
  for (const auto& s : f.settings) std::printf("   %s\n", s.c_str());
  std::printf("   %-40s", "round");
  for (std::size_t r = 0; r < f.sides[0].rounds.size(); ++r) std::printf(" %11zu", r + 1);
  std::printf(" %11s\n", "median");
  for (const auto& sd : f.sides) {
    std::vector<double> v;
    std::printf("   %-40s", sd.name.c_str());
    for (const auto& t : sd.rounds) {
      std::printf(" %11s", show(f, t.value).c_str());
      v.push_back(t.value);
    }
    std::printf(" %11s\n", show(f, median(v)).c_str());
    if (f.unit == "ns") {
      std::vector<double> p;
      std::printf("   %-40s", ("  p99 " + sd.name).c_str());
      for (const auto& t : sd.rounds) {
        std::printf(" %11s", show(f, t.p99).c_str());
        p.push_back(t.p99);
      }
      std::printf(" %11s\n", show(f, median(p)).c_str());
    }
  }
  for (const auto& [i, j] : f.ratio_pairs()) {
    const auto r = f.ratios(i, j);
    if (r.empty()) continue;
    std::printf("   %-40s", (f.sides[i].name + " / " + f.sides[j].name).c_str());
    for (double x : r) std::printf(" %11.3f", x);
    const double m = median(r);
    std::printf(" %11.3f", m);
    if (i == 1 && j == 0)
      std::printf("  target %s: %s", f.target_text.c_str(),
                  (f.higher_is_better ? m >= f.target : m <= f.target) ? "met" : "MISSED");
    std::printf("\n");
  }
  for (const auto& sd : f.sides) std::printf("   %s: %s\n", sd.name.c_str(), sd.what.c_str());
  for (const auto& n : f.notes) std::printf("   note: %s\n", n.c_str());
  std::fflush(stdout);
}

struct settings {
  bool quick = false;
  int rounds = 7;
  std::string url;
};

tachyon::config bus_config() {
  // Workers that park when idle: a busy-spinning worker would take a CPU from the server.
  tachyon::config c;
  c.workers = 1;
  c.lane_capacity = 8192;
  c.overflow = tachyon::overflow::block;
  c.wait = tachyon::wait_strategy::spin_then_park;
  return c;
}

tachyon::nats::options bridge_options(const settings& s, const char* name,
                                      std::size_t export_queue = 16384) {
  tachyon::nats::options o;
  o.url = s.url;
  o.name = name;
  o.export_queue = export_queue;
  return o;
}

/// Runs the two (or more) sides in `order` for each round, alternating which goes first.
void paired_rounds(figure& f, int rounds, const std::vector<std::function<trial()>>& run) {
  for (int r = 0; r < rounds; ++r) {
    std::vector<std::size_t> order(run.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    if (r % 2) std::reverse(order.begin(), order.end());
    for (std::size_t i : order) f.sides[i].rounds.push_back(run[i]());
    std::fprintf(stderr, "tachyon_nats_bench: %s round %d/%d\n", f.name.c_str(), r + 1, rounds);
  }
}

// ---- round trip ------------------------------------------------------------------------------

template <class Once>
trial time_round_trips(int warmup, int n, Once once) {
  for (int i = 0; i < warmup; ++i) once();
  std::vector<double> ns;
  ns.reserve(static_cast<std::size_t>(n));
  std::uint64_t errors = 0;
  for (int i = 0; i < n; ++i) {
    const auto t0 = steady::now();
    if (!once()) ++errors;
    ns.push_back(std::chrono::duration<double, std::nano>(steady::now() - t0).count());
  }
  std::sort(ns.begin(), ns.end());
  return {percentile(ns, 50), percentile(ns, 99), errors};
}

figure roundtrip(const settings& s) {
  const int n = s.quick ? 300 : 2000;
  const int warmup = n / 10;
  figure f;
  f.name = "roundtrip";
  f.title =
      "bus A -> NATS -> bus B -> NATS -> bus A (core NATS, loopback) vs libnats request/reply";
  f.unit = "ns";
  f.target_text = "<= 1.2x";
  f.target = 1.2;
  f.settings = {fmt("%d paired rounds, %d timed round trips per trial after %d of warm-up",
                    s.rounds, n, warmup),
                "payload 64 bytes both ways; figure per trial: p50 (and p99) of its round trips"};

  // The peers: a responder connection and a requester connection; and the same with the
  // responder's connection set to send at once (natsOptions_SetSendAsap, libnats's advice for a
  // connection that only replies), without which each reply waits for libnats's flusher thread.
  auto on_request = [](natsConnection* nc, natsSubscription*, natsMsg* m, void*) {
    natsConnection_Publish(nc, natsMsg_GetReply(m), natsMsg_GetData(m), natsMsg_GetDataLength(m));
    natsMsg_Destroy(m);
  };
  raw_connection responder(s.url), asap_responder(s.url, false, true), requester(s.url);
  natsSubscription* rsub = nullptr;
  natsSubscription* asub = nullptr;
  check(natsConnection_Subscribe(&rsub, responder.nc, "bench.raw.ping", on_request, nullptr),
        "responder subscription");
  check(natsConnection_Subscribe(&asub, asap_responder.nc, "bench.raw.asap", on_request, nullptr),
        "responder subscription");
  check(natsConnection_Flush(responder.nc), "responder flush");
  check(natsConnection_Flush(asap_responder.nc), "responder flush");
  std::uint64_t raw_id = 0;
  auto raw_once = [&](const char* subject) {
    Ping p{++raw_id, {}};
    natsMsg* reply = nullptr;
    const natsStatus st = natsConnection_Request(&reply, requester.nc, subject, &p, sizeof p, 5000);
    bool ok = st == NATS_OK && natsMsg_GetDataLength(reply) == sizeof p &&
              std::memcmp(natsMsg_GetData(reply), &p, 8) == 0;
    natsMsg_Destroy(reply);
    return ok;
  };

  // The bridge: two buses, a bridge each.
  Bus a{bus_config()}, b{bus_config()};
  std::atomic<std::uint64_t> answered{0};
  auto on_ping = b.subscribe<Ping>([&](const Ping& p) { (void)b.publish(Pong{p.id, {}}); });
  auto on_pong =
      a.subscribe<Pong>([&](const Pong& p) { answered.store(p.id, std::memory_order_release); });
  Bridge ba{a, bridge_options(s, "bench-a")}, bb{b, bridge_options(s, "bench-b")};
  ba.export_type<Ping>("bench.rt.ping");
  ba.import_type<Pong>("bench.rt.pong");
  bb.import_type<Ping>("bench.rt.ping");
  bb.export_type<Pong>("bench.rt.pong");
  std::uint64_t id = 0;
  auto bridge_once = [&] {
    const std::uint64_t want = ++id;
    if (a.publish(Ping{want, {}}) != tachyon::result::ok) return false;
    const auto until = steady::now() + std::chrono::seconds(5);
    std::uint32_t spins = 0;
    while (answered.load(std::memory_order_acquire) != want) {
      // A round trip lost on core NATS (at most once) must not hang the run: counted.
      if ((++spins & 1023) == 0 && steady::now() > until) return false;
    }
    return true;
  };
  // The subscriptions must reach the server before the first Ping (core NATS has no backlog).
  {
    const auto until = steady::now() + std::chrono::seconds(10);
    while (true) {
      const std::uint64_t want = ++id;
      (void)a.publish(Ping{want, {}});
      const auto wait = steady::now() + std::chrono::milliseconds(200);
      while (answered.load() != want && steady::now() < wait) std::this_thread::yield();
      if (answered.load() == want) break;
      if (steady::now() > until) throw std::runtime_error("roundtrip: the bridges never answered");
    }
  }

  f.sides = {{"raw_request",
              "natsConnection_Request on one connection, a responder connection "
              "whose subscription callback publishes the reply",
              {}},
             {"bridge", "tachyon::nats::bridge both ways: 2 buses x 1 worker, 2 bridges", {}},
             {"raw_request_asap",
              "the same as raw_request, the responder's connection with "
              "natsOptions_SetSendAsap",
              {}}};
  paired_rounds(
      f, s.rounds,
      {[&] { return time_round_trips(warmup, n, [&] { return raw_once("bench.raw.ping"); }); },
       [&] { return time_round_trips(warmup, n, bridge_once); },
       [&] { return time_round_trips(warmup, n, [&] { return raw_once("bench.raw.asap"); }); }});
  f.extra_ratios = {{1, 2}};
  for (natsSubscription* sub : {rsub, asub}) {
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
  }
  const auto ma = ba.metrics(), mb = bb.metrics();
  f.notes.push_back(fmt(
      "bridge A exported %llu, imported %llu; bridge B exported %llu, imported "
      "%llu; gaps %llu",
      static_cast<unsigned long long>(ma.exported), static_cast<unsigned long long>(ma.imported),
      static_cast<unsigned long long>(mb.exported), static_cast<unsigned long long>(mb.imported),
      static_cast<unsigned long long>(ma.gaps + mb.gaps)));
  return f;
}

/// A throughput figure's runs, its sides set: raw, the bridge, raw with the bridge's headers,
/// each warmed up with a tenth of `m`, then paired rounds of `m`.
template <class Raw, class Bridged>
void throughput_rounds(figure& f, const settings& s, std::uint64_t m, Raw& raw_run,
                       Bridged& bridge_run) {
  (void)raw_run(m / 10, false);
  (void)raw_run(m / 10, true);
  (void)bridge_run(m / 10);
  paired_rounds(f, s.rounds,
                {[&] { return raw_run(m, false); }, [&] { return bridge_run(m); },
                 [&] { return raw_run(m, true); }});
  f.extra_ratios = {{2, 0}, {1, 2}};  // what the headers cost; what the bridge adds beyond them
}

// ---- throughput ------------------------------------------------------------------------------

/// Headers of the lengths the bridge writes for `subject` (Tachyon-Meta with values of typical
/// widths): the raw side's "with headers" variant.
void set_bridge_like_headers(natsMsg* m, const std::string& origin, std::uint64_t seq) {
  natsMsgHeader_Set(m, "Tachyon-Type", "bench.Tick");
  const std::string meta = tachyon::nats::format_meta(
      {1, 0x0123456789abcdefULL, seq, 0, 0, 1764500000000000000ULL, seq});
  natsMsgHeader_Set(m, "Tachyon-Meta", meta.c_str());
  natsMsgHeader_Set(m, "Tachyon-Origin", origin.c_str());
}

/// Waits until the bus has handed `total` events to the bridge in all (exported, or counted
/// lost) and the bridge's flush() returns: its queue sent, JetStream acknowledged, the
/// connection flushed. bridge::flush() alone could return while the bus still dispatches.
bool wait_exported(Bridge& br, std::uint64_t total) {
  const auto until = steady::now() + std::chrono::seconds(60);
  while (steady::now() < until) {
    const bool flushed = br.flush(std::chrono::seconds(30));
    const auto mt = br.metrics();
    if (mt.exported + mt.export_errors + mt.export_queue_full >= total) return flushed;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  return false;
}

figure throughput(const settings& s) {
  const std::uint64_t m = s.quick ? 50000 : 200000;
  figure f;
  f.name = "throughput";
  f.title = "export throughput, one type, 64-byte events, core NATS, vs natsConnection_Publish";
  f.unit = "events/s";
  f.higher_is_better = true;
  f.target_text = ">= 0.8x";
  f.target = 0.8;
  f.settings = {fmt("%d paired rounds of %llu events per trial (after %llu of warm-up)", s.rounds,
                    static_cast<unsigned long long>(m), static_cast<unsigned long long>(m / 10)),
                "timed from the first publish until the connection is flushed (bridge::flush())",
                "no subscriber: the server drops every message, for each side alike"};
  raw_connection raw(s.url);
  const std::string origin = "bench-tp/0123456789abcdef";
  auto raw_run = [&](std::uint64_t count, bool headers) {
    Tick t{};
    std::uint64_t errors = 0;
    const auto t0 = steady::now();
    for (std::uint64_t i = 0; i < count; ++i) {
      t.seq = i;
      if (!headers) {
        errors += natsConnection_Publish(raw.nc, "bench.raw.tp", &t, sizeof t) != NATS_OK;
        continue;
      }
      natsMsg* msg = nullptr;
      natsMsg_Create(&msg, "bench.raw.tp", nullptr, reinterpret_cast<const char*>(&t), sizeof t);
      set_bridge_like_headers(msg, origin, i + 1);
      errors += natsConnection_PublishMsg(raw.nc, msg) != NATS_OK;
      natsMsg_Destroy(msg);
    }
    errors += natsConnection_FlushTimeout(raw.nc, 30000) != NATS_OK;
    return trial{static_cast<double>(count) / seconds_since(t0), 0, errors};
  };

  Bus a{bus_config()};
  // The export queue holds a whole trial: the figure is the sender's rate, not refusals.
  Bridge br{a, bridge_options(s, "bench-tp", static_cast<std::size_t>(m))};
  br.export_type<Tick>("bench.tp");
  auto bridge_run = [&](std::uint64_t count) {
    const auto m0 = br.metrics();
    const std::uint64_t before = m0.exported;
    const auto t0 = steady::now();
    Tick t{};
    for (std::uint64_t i = 0; i < count; ++i) {
      t.seq = i;
      (void)a.publish(t);
    }
    const bool flushed =
        wait_exported(br, m0.exported + m0.export_errors + m0.export_queue_full + count);
    const double secs = seconds_since(t0);
    const std::uint64_t done = br.metrics().exported - before;
    return trial{static_cast<double>(count) / secs, 0,
                 (done == count && flushed) ? 0 : count - done};
  };
  f.sides = {{"raw_publish", "natsConnection_Publish of 64 bytes in a loop, one connection", {}},
             {"bridge", "bus::publish of a 64-byte event, exported by one bridge", {}},
             {"raw_publish_headers",
              "natsConnection_PublishMsg of 64 bytes with the bridge's three headers",
              {}}};
  throughput_rounds(f, s, m, raw_run, bridge_run);
  const auto mt = br.metrics();
  f.notes.push_back(fmt("bridge: exported %llu, export errors %llu, queue full %llu",
                        static_cast<unsigned long long>(mt.exported),
                        static_cast<unsigned long long>(mt.export_errors),
                        static_cast<unsigned long long>(mt.export_queue_full)));
  return f;
}

// ---- JetStream -------------------------------------------------------------------------------

figure jetstream(const settings& s) {
  const std::uint64_t m = s.quick ? 10000 : 30000;
  figure f;
  f.name = "jetstream";
  f.title = "JetStream export throughput, 64-byte events, vs js_PublishAsync (MaxPending 4096)";
  f.unit = "events/s";
  f.higher_is_better = true;
  f.target_text = ">= 0.8x";
  f.target = 0.8;
  f.settings = {fmt("%d paired rounds of %llu events per trial (after %llu of warm-up)", s.rounds,
                    static_cast<unsigned long long>(m), static_cast<unsigned long long>(m / 10)),
                "stream BENCH_JS, file storage, one replica; purged before each trial",
                "timed from the first publish until every message is acknowledged"};

  raw_connection raw(s.url, true);
  {
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char* subjects[] = {"bench.js.>"};
    cfg.Name = "BENCH_JS";
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    jsStreamInfo* si = nullptr;
    natsStatus st = NATS_ERR;
    // JetStream may take a moment after the port opens.
    for (int i = 0; i < 100 && st != NATS_OK; ++i) {
      st = js_AddStream(&si, raw.js, &cfg, nullptr, nullptr);
      if (st != NATS_OK) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    check(st, "js_AddStream BENCH_JS");
    jsStreamInfo_Destroy(si);
  }
  auto purge = [&] { check(js_PurgeStream(raw.js, "BENCH_JS", nullptr, nullptr), "purge"); };
  const std::string origin = "bench-js/0123456789abcdef";
  std::uint64_t trial_no = 0;
  auto raw_run = [&](std::uint64_t count, bool headers) {
    purge();
    ++trial_no;
    Tick t{};
    std::uint64_t errors = 0;
    const auto t0 = steady::now();
    for (std::uint64_t i = 0; i < count; ++i) {
      t.seq = i;
      if (!headers) {
        errors += js_PublishAsync(raw.js, "bench.js.raw", &t, sizeof t, nullptr) != NATS_OK;
        continue;
      }
      natsMsg* msg = nullptr;
      natsMsg_Create(&msg, "bench.js.raw", nullptr, reinterpret_cast<const char*>(&t), sizeof t);
      set_bridge_like_headers(msg, origin, i + 1);
      // Unique in every trial: a repeated id is acknowledged as a duplicate and not stored.
      const std::string id =
          origin + "/bench.js.tick/" + std::to_string(trial_no) + "-" + std::to_string(i + 1);
      jsPubOptions po;
      jsPubOptions_Init(&po);
      po.MsgId = id.c_str();
      if (js_PublishMsgAsync(raw.js, &msg, &po) != NATS_OK) {
        natsMsg_Destroy(msg);
        ++errors;
      }
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 30000;
    errors += js_PublishAsyncComplete(raw.js, &po) != NATS_OK;
    return trial{static_cast<double>(count) / seconds_since(t0), 0, errors};
  };

  Bus a{bus_config()};
  Bridge br{a, bridge_options(s, "bench-js", static_cast<std::size_t>(m))};
  tachyon::nats::export_options eo;
  eo.jetstream = tachyon::nats::stream_options{.name = "BENCH_JS"};  // made above: used as it is
  br.export_type<Tick>("bench.js.tick", eo);
  auto bridge_run = [&](std::uint64_t count) {
    purge();
    const auto m0 = br.metrics();
    const std::uint64_t before = m0.exported;
    const auto t0 = steady::now();
    Tick t{};
    for (std::uint64_t i = 0; i < count; ++i) {
      t.seq = i;
      (void)a.publish(t);
    }
    const bool flushed =
        wait_exported(br, m0.exported + m0.export_errors + m0.export_queue_full + count);
    const double secs = seconds_since(t0);
    const std::uint64_t done = br.metrics().exported - before;
    return trial{static_cast<double>(count) / secs, 0,
                 (done == count && flushed) ? 0 : count - done};
  };
  f.sides = {{"raw_js_publish_async",
              "js_PublishAsync of 64 bytes, MaxPending 4096, then "
              "js_PublishAsyncComplete",
              {}},
             {"bridge", "bus::publish of a 64-byte event, exported to JetStream by one bridge", {}},
             {"raw_js_publish_async_headers",
              "js_PublishMsgAsync with the bridge's three headers and a message id",
              {}}};
  throughput_rounds(f, s, m, raw_run, bridge_run);
  const auto mt = br.metrics();
  f.notes.push_back(fmt("bridge: exported %llu, duplicates %llu, resent %llu, errors %llu",
                        static_cast<unsigned long long>(mt.exported),
                        static_cast<unsigned long long>(mt.export_duplicates),
                        static_cast<unsigned long long>(mt.export_resent),
                        static_cast<unsigned long long>(mt.export_errors)));
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  bench::warn_if_emulated("tachyon_nats_bench");
  settings s;
  const char* json = nullptr;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      s.quick = true;
    } else if (std::strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
      json = argv[++i];
    } else if (std::strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
      only = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: tachyon_nats_bench [--quick] [--json FILE] "
                   "[--only roundtrip|throughput|jetstream]\n");
      return 1;
    }
  }
  s.rounds = s.quick ? 3 : 7;
  const std::string server = tachyon::bench::find_nats_server();
  if (server.empty()) {
    std::fprintf(stderr,
                 "tachyon_nats_bench: nats-server not found ($TACHYON_NATS_SERVER or PATH); "
                 "install Debian's nats-server (tools/setup does)\n");
    return 2;
  }
  const auto t0 = steady::now();
  std::vector<figure> figures;
  try {
    tachyon::bench::nats_launcher launcher(server);
    s.url = launcher.url();
    std::printf("tachyon_nats_bench%s: nats-server %s on %s, %u CPUs\n", s.quick ? " --quick" : "",
                server.c_str(), s.url.c_str(), std::thread::hardware_concurrency());
    if (only.empty() || only == "roundtrip") print_figure(figures.emplace_back(roundtrip(s)));
    if (only.empty() || only == "throughput") print_figure(figures.emplace_back(throughput(s)));
    if (only.empty() || only == "jetstream") print_figure(figures.emplace_back(jetstream(s)));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tachyon_nats_bench: %s\n", e.what());
    return 1;
  }
  const double wall = seconds_since(t0);
  std::printf("\ntachyon_nats_bench: %.1f s\n", wall);
  if (json != nullptr) {
    std::string out =
        "{" + bench::emulation_json_fields() +
        fmt("\"program\":\"tachyon_nats_bench\",\"quick\":%s,\"rounds\":%d,"
            "\"cpus\":%u,\"wall_s\":%.1f,\"figures\":[",
            s.quick ? "true" : "false", s.rounds, std::thread::hardware_concurrency(), wall);
    for (std::size_t i = 0; i < figures.size(); ++i)
      out += (i ? ",\n" : "\n") + figure_json(figures[i]);
    out += "]}\n";
    FILE* f = std::fopen(json, "w");
    if (f == nullptr || std::fwrite(out.data(), 1, out.size(), f) != out.size()) {
      std::fprintf(stderr, "tachyon_nats_bench: cannot write %s\n", json);
      return 1;
    }
    std::fclose(f);
  }
  for (const auto& f : figures)
    for (const auto& sd : f.sides)
      for (const auto& t : sd.rounds)
        if (t.errors != 0) {
          std::fprintf(stderr, "tachyon_nats_bench: %s/%s: %llu events not delivered\n",
                       f.name.c_str(), sd.name.c_str(), static_cast<unsigned long long>(t.errors));
          return 1;
        }
  return 0;
}
