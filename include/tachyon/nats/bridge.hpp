// tachyon/nats/bridge.hpp — chosen event types between buses in different processes and
// machines, over NATS (library tachyon::nats; the core library does not depend on it).
//
//   tachyon::nats::bridge link{bus, {.url = "nats://127.0.0.1:4222", .name = "orders"}};
//   link.export_type<Order>("orders.created");          // bus -> NATS
//   link.import_type<Payment>("payments.>");            // NATS -> bus
//
// Exports are subscriptions. Their handler never touches the network: it encodes the event
// (tachyon::codec<T>) into a slot of a bounded queue and returns; one sender thread per bridge
// publishes from that queue. A full queue makes the handler throw export_queue_full: the bus
// counts that event `failed` (or retries it, with export_options::retry), never blocks a worker.
// Imports are publishers: the event is published into the bus with the bus's backpressure
// (under overflow::block, the importing thread waits, and stops taking from NATS meanwhile; a
// JetStream import whose lane is full under overflow::fail waits in the bridge the same way).
// An imported event carries meta_flags::external and is never exported back by any bridge.
//
// Delivery, per type:
// - core NATS (the default): at most once. What the exporter could not hand to NATS is counted
//   (`export_errors`); what NATS lost in between shows at the importer as `gaps` (each message
//   carries its exporter's per-subject count).
// - JetStream (export_options::jetstream, import_options::jetstream): the server acknowledges
//   each export (deduplicated by a message id made of the bridge's name, a per-run nonce, the
//   type and the count, so a restarted exporter is not taken for a duplicate; a missing
//   acknowledgement is resent with the same id, backing off, for at least 27 s). The import is a
//   durable pull consumer that acknowledges each message once its event has settled in the
//   bus, whatever the outcome (publish_options::on_settle), so a crash of the importing process
//   redelivers it: at least once. meta_flags::redelivered marks a message the server delivered
//   before; consumer_options::max_deliver bounds how often (a poison message that crashes the
//   importer is not tried forever).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <tachyon/bus.hpp>
#include <tachyon/codec.hpp>
#include <tachyon/nats/wire.hpp>
#include <tachyon/settle.hpp>

namespace tachyon::nats {

/// A connection or JetStream set-up failed; the message has libnats's (or the server's) text.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// An export's queue (options::export_queue) was full: thrown by the export subscription's
/// handler, so the bus counts the event failed (or retries it).
class export_queue_full : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct tls_options {
  bool enabled = false;     ///< also implied by a tls:// URL
  std::string ca_file{};    ///< trusted CAs (PEM); empty: the system's
  std::string cert_file{};  ///< client certificate (PEM), with key_file
  std::string key_file{};
  std::string expected_hostname{};  ///< empty: the URL's host
  bool skip_verify = false;         ///< never in production
};

struct reconnect_options {
  /// Attempts per lost connection before giving up; -1: forever.
  int max_attempts = 60;
  std::chrono::milliseconds wait{250};  ///< between attempts on one server
  /// Server not there when the bridge is made: false (the default) throws nats::error at
  /// once; true keeps trying in the background under this policy (exports queue meanwhile).
  bool retry_initial_connect = false;
  /// What libnats buffers while disconnected; core NATS exports beyond it are lost, counted.
  int buffer_bytes = 8 * 1024 * 1024;
};

struct options {
  /// One URL, or several separated by commas (a cluster's servers; the client fails over).
  std::string url = "nats://127.0.0.1:4222";
  /// This bridge's origin, in every message it exports; empty: "<hostname>:<pid>".
  std::string name{};
  std::string credentials_file{};  ///< a .creds file (user JWT and NKey seed)
  std::string nkey_public{};       ///< with nkey_seed_file: NKey authentication
  std::string nkey_seed_file{};
  std::string token{};
  std::string user{}, password{};
  tls_options tls{};
  reconnect_options reconnect{};
  std::chrono::milliseconds connect_timeout{2000};
  /// Exported events waiting for the sender thread, all exports together.
  std::size_t export_queue = 16384;
  /// Refused messages kept for quarantine(): the oldest leaves first.
  std::size_t quarantine_capacity = 256;
  /// Largest message accepted from the network (headers and payload); larger: quarantined.
  std::size_t max_message_bytes = 1 << 20;
  /// A core NATS import's buffer in libnats before it drops (counted `slow_consumer_dropped`),
  /// in messages and in bytes.
  int import_pending_messages = 65536;
  int import_pending_bytes = 64 * 1024 * 1024;
  /// How long close() waits for queued exports to be sent and imported events to settle.
  std::chrono::milliseconds close_timeout{5000};
};

enum class retention : std::uint8_t { limits, interest, work_queue };
enum class storage : std::uint8_t { file, memory };

/// A JetStream export: the stream its subject is stored in, made if missing.
struct stream_options {
  std::string name{};  ///< the stream (letters, digits, '-' and '_')
  retention retain = retention::limits;
  storage store = storage::file;
  std::int64_t max_messages = -1;  ///< -1: no limit
  std::int64_t max_bytes = -1;
  std::chrono::seconds max_age{0};  ///< 0: no limit
  int replicas = 1;
  /// How long the server remembers message ids to drop resent duplicates.
  std::chrono::seconds duplicate_window{120};
};

struct export_options {
  std::optional<stream_options> jetstream{};  ///< empty: core NATS
  /// The export subscription's retries (a full export queue throws: with retries, the event is
  /// tried again after the backoff rather than counted failed at once).
  retry_policy retry = {};
};

/// Where a JetStream consumer starts when it is first made.
enum class start_at : std::uint8_t { all, new_only, sequence, time };

struct consumer_options {
  std::string stream{};   ///< the stream to read
  std::string durable{};  ///< the consumer's name: it remembers what was acknowledged
  start_at start = start_at::all;
  std::uint64_t start_sequence = 0;                    ///< with start_at::sequence
  std::chrono::system_clock::time_point start_time{};  ///< with start_at::time
  /// Unacknowledged this long: the server redelivers.
  std::chrono::milliseconds ack_wait{30000};
  /// Deliveries of one message before the server gives up on it (-1: no limit).
  int max_deliver = 5;
  int batch = 64;  ///< messages per fetch
};

struct import_options {
  std::optional<priority> lane{};               ///< empty: the type's default
  std::optional<consumer_options> jetstream{};  ///< empty: core NATS
};

/// Where replay() starts.
struct replay_from {
  std::uint64_t sequence = 0;                    ///< a stream sequence (1 = the first), or
  std::chrono::system_clock::time_point time{};  ///< a time (when sequence is 0)
};

/// A message refused on the way in, kept as it came with the reason.
struct quarantined {
  std::string subject;
  std::string reason;
  std::string type;                ///< its Tachyon-Type header, if any
  std::string origin;              ///< its Tachyon-Origin header, if any
  std::vector<std::byte> payload;  ///< as it came, its first 64 KiB
  std::size_t size = 0;            ///< the payload's whole size
  std::chrono::system_clock::time_point at;
};

struct bridge_metrics {
  // Exports.
  std::uint64_t exported = 0;           ///< handed to NATS (JetStream: and acknowledged)
  std::uint64_t export_duplicates = 0;  ///< JetStream: acknowledged as a duplicate (a resend)
  std::uint64_t export_resent = 0;      ///< JetStream: sent again after a failed acknowledgement
  std::uint64_t export_errors = 0;      ///< refused by NATS or never acknowledged: lost
  std::uint64_t export_queue_full = 0;  ///< refused by the export queue (the bus counts them)
  std::uint64_t export_skipped = 0;     ///< imported events, not exported back
  std::uint64_t export_queued = 0;      ///< waiting in the export queue now
  std::uint64_t export_unacknowledged = 0;  ///< JetStream: sent, acknowledgement pending
  // Imports.
  std::uint64_t received = 0;        ///< messages taken from NATS
  std::uint64_t imported = 0;        ///< published into the bus and accepted
  std::uint64_t import_refused = 0;  ///< the bus refused them (full, stopped, vetoed)
  /// JetStream: messages that found their lane full and waited in the bridge for room (the
  /// fetcher paused meanwhile) instead of going back to the server.
  std::uint64_t import_waits = 0;
  /// JetStream, started at a time: messages stored before it, skipped (libnats 3.4 sends the
  /// start time rounded down, up to 0.1 s early; each message's timestamp decides).
  std::uint64_t before_start = 0;
  std::uint64_t quarantined = 0;            ///< refused as not decodable (quarantine())
  std::uint64_t own_skipped = 0;            ///< this bridge's own exports, seen again
  std::uint64_t gaps = 0;                   ///< core NATS: messages lost between exporter and here
  std::uint64_t redelivered = 0;            ///< JetStream: messages delivered before
  std::uint64_t acknowledged = 0;           ///< JetStream: acknowledged after settling
  std::uint64_t negative_acknowledged = 0;  ///< JetStream: handed back (refused, discarded)
  std::uint64_t terminated = 0;             ///< JetStream: quarantined or vetoed: never redelivered
  std::uint64_t awaiting_settle = 0;        ///< JetStream: in the bus, not settled yet
  std::uint64_t slow_consumer_dropped = 0;  ///< dropped by libnats: an import fell behind
  // The connection.
  std::uint64_t disconnects = 0;
  std::uint64_t reconnects = 0;
  bool connected = false;
};

struct bridge_health {
  /// Connected, nothing dropped as a slow consumer, no export lost, nothing quarantined
  /// since the bridge was made.
  bool healthy = true;
  bool connected = false;
  std::vector<std::string> problems;  ///< one line each, e.g. "slow consumer: 12 dropped"
};

namespace detail {

/// A type's declared identity, as the untyped core checks it.
struct type_identity {
  std::string_view name;
  std::uint32_t version = 0;
  std::uint32_t oldest = 0;
  std::uint64_t (*fingerprint)(std::uint32_t version) = nullptr;
};

template <class T>
type_identity identity_of() {
  return {std::string_view(codec<T>::name), static_cast<std::uint32_t>(codec<T>::version),
          oldest_version<T>(), [](std::uint32_t v) { return fingerprint<T>(v); }};
}

/// What became of one message handed to an import's publish function.
enum class import_status : std::uint8_t {
  accepted,     ///< in the bus (with a settle listener: it will be told)
  dropped,      ///< taken and dropped by the bus's overflow::drop (counted there)
  full,         ///< the lane was full (overflow::fail, or block's timeout): may be offered again
  stopped,      ///< the bus is stopping: nothing more goes in
  vetoed,       ///< an interceptor refused it: it will not be taken later either
  undecodable,  ///< the payload did not decode: quarantine, `why` says why
};

/// What an import hands its typed publish function.
struct incoming {
  const wire_meta& meta;
  std::span<const std::byte> payload;
  bool redelivered = false;
  settle_listener* listener = nullptr;  ///< JetStream: told when the event settles
};

using publish_fn = import_status (*)(void* bus, const incoming& in, std::optional<priority> lane,
                                     std::string& why);

/// A slot of the export queue, filled by an export handler (on a worker) and sent by the
/// bridge's sender thread.
struct outbound {
  std::uint32_t export_id = 0;
  wire_meta meta;
  std::vector<std::byte> payload;
};

/// The untyped part (src/nats/bridge.cpp): the connection, the sender thread, JetStream
/// consumers, counters and the quarantine. libnats stays out of the public headers.
class bridge_core {
 public:
  explicit bridge_core(options o);
  ~bridge_core();
  bridge_core(const bridge_core&) = delete;
  bridge_core& operator=(const bridge_core&) = delete;

  std::uint32_t add_export(std::string_view subject, const type_identity& type,
                           const export_options& o);
  void add_import(std::string_view subject, const type_identity& type, publish_fn publish,
                  void* bus, const import_options& o);
  std::size_t replay(std::string_view stream, std::string_view subject, const type_identity& type,
                     publish_fn publish, void* bus, const replay_from& from,
                     std::optional<priority> lane, std::chrono::milliseconds timeout);

  /// A free slot of the export queue, or nullptr when it is full (counted).
  outbound* acquire() noexcept;
  /// Hands a filled slot to the sender thread.
  void submit(outbound* o) noexcept;
  /// Gives an unsent slot back.
  void release(outbound* o) noexcept;
  void count_skipped() noexcept;

  bool flush(std::chrono::milliseconds timeout);
  /// close()'s first half: imports stop and what they brought in settles (options::
  /// close_timeout at most). False if already closed.
  bool stop_imports();
  /// The second half (or all of it): queued exports go out, the connection closes. Idempotent.
  void close();
  std::chrono::milliseconds close_timeout() const noexcept;
  bridge_metrics metrics() const;
  bridge_health health() const;
  std::vector<quarantined> quarantine() const;
  const std::string& origin() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace detail

/// Bridges `Bus` (a tachyon::bus<Registry, Traits>) to NATS. Make it after the bus is running
/// and destroy (or close()) it before the bus stops. export_type and import_type may be called
/// at any time; each starts at once.
template <class Bus>
class bridge {
 public:
  bridge(Bus& bus, options o) : bus_(&bus), core_(std::move(o)) {}
  ~bridge() { close(); }
  bridge(const bridge&) = delete;
  bridge& operator=(const bridge&) = delete;

  /// Every event of T published into the bus (not those imported from NATS) goes to
  /// `subject` (a plain subject, no wildcards).
  template <class T>
  void export_type(std::string_view subject, export_options o = {}) {
    static_assert(serializable<T>,
                  "tachyon::nats::bridge::export_type<T>: T has no tachyon::codec<T>. Declare "
                  "one (tachyon/codec.hpp): a name and a version, and encode/decode unless T "
                  "is trivially copyable");
    static_assert(Bus::registry_type::template contains<T>,
                  "tachyon::nats::bridge::export_type<T>: T is not in the bus's registry");
    const std::uint32_t id = core_.add_export(subject, detail::identity_of<T>(), o);
    subscribe_options<T> so;
    so.name = "nats-export:" + std::string(subject);
    so.retry = o.retry;
    so.dead_letters = false;
    detail::bridge_core* core = &core_;
    exports_.push_back(bus_->template subscribe<T>(
        [core, id](const T& ev, const meta& m) { export_one(*core, id, ev, m); }, std::move(so)));
  }

  /// Messages on `subject` (wildcards allowed) are decoded as T and published into the bus.
  /// A message of another type, version or layout, or that does not decode, is quarantined.
  template <class T>
  void import_type(std::string_view subject, import_options o = {}) {
    static_assert(serializable<T>,
                  "tachyon::nats::bridge::import_type<T>: T has no tachyon::codec<T>. Declare "
                  "one (tachyon/codec.hpp): a name and a version, and encode/decode unless T "
                  "is trivially copyable");
    static_assert(Bus::registry_type::template contains<T>,
                  "tachyon::nats::bridge::import_type<T>: T is not in the bus's registry");
    core_.add_import(subject, detail::identity_of<T>(), &publish_one<T>, bus_, o);
  }

  /// Publishes into the bus, once each, the messages of `stream` on `subject` (wildcards
  /// allowed; empty: all) from `from` up to the stream's last message when the call began,
  /// with meta_flags::external. Nothing is acknowledged (an ephemeral consumer). Returns how
  /// many were accepted; throws nats::error if the stream cannot be read within `timeout`.
  template <class T>
  std::size_t replay(std::string_view stream, std::string_view subject, replay_from from,
                     std::optional<priority> lane = std::nullopt,
                     std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    static_assert(serializable<T>, "tachyon::nats::bridge::replay<T>: T has no tachyon::codec<T>");
    return core_.replay(stream, subject, detail::identity_of<T>(), &publish_one<T>, bus_, from,
                        lane, timeout);
  }

  /// Waits until every export queued so far was handed to NATS and, for JetStream,
  /// acknowledged. False on timeout. An event still waiting in the bus is not queued yet: to
  /// flush what was published, wait for the bus to run it first (metrics().in_flight == 0).
  bool flush(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    return core_.flush(timeout);
  }
  /// Stops importing and lets what was imported settle; then, while its export subscriptions
  /// still stand, waits for the bus to run what is queued in it (so that events the imported
  /// ones caused still go out); then removes them, sends what is queued and disconnects. All
  /// within options::close_timeout (a bus in manual mode that nobody polls waits it out).
  /// Idempotent.
  void close() {
    const auto until = std::chrono::steady_clock::now() + core_.close_timeout();
    if (core_.stop_imports() && !exports_.empty())
      while (bus_->metrics().in_flight != 0 && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    exports_.clear();
    core_.close();
  }

  bridge_metrics metrics() const { return core_.metrics(); }
  bridge_health health() const { return core_.health(); }
  /// The refused messages kept, oldest first.
  std::vector<quarantined> quarantine() const { return core_.quarantine(); }
  /// "<name>/<run nonce>": what this bridge writes in Tachyon-Origin.
  const std::string& origin() const noexcept { return core_.origin(); }

 private:
  template <class T>
  static void export_one(detail::bridge_core& core, std::uint32_t id, const T& ev, const meta& m) {
    if (m.flags & meta_flags::external) {  // it came from NATS (or a replay): not sent back
      core.count_skipped();
      return;
    }
    detail::outbound* o = core.acquire();
    if (o == nullptr)
      throw export_queue_full("tachyon::nats: the export queue is full (options::export_queue)");
    o->export_id = id;
    o->meta.version = static_cast<std::uint32_t>(codec<T>::version);
    o->meta.fingerprint = fingerprint<T>();
    o->meta.sequence = m.sequence;
    o->meta.correlation = m.correlation_id;
    o->meta.causation = m.causation_id;
    o->payload.clear();
    try {
      tachyon::encode(ev, o->payload);
    } catch (...) {
      core.release(o);
      throw;
    }
    core.submit(o);
  }

  template <class T>
  static detail::import_status publish_one(void* bus, const detail::incoming& in,
                                           std::optional<priority> lane, std::string& why) {
    std::optional<T> ev;
    try {
      ev.emplace(tachyon::decode<T>(in.payload, in.meta.version));
    } catch (const std::exception& e) {
      why = e.what();
      return detail::import_status::undecodable;
    }
    publish_options po;
    po.lane = lane;
    po.correlation_id = in.meta.correlation;
    po.external = true;
    po.redelivered = in.redelivered;
    po.on_settle = in.listener;
    switch (static_cast<Bus*>(bus)->publish(std::move(*ev), po)) {
      case result::ok:
        return detail::import_status::accepted;
      case result::dropped:  // taken, and counted dropped by the bus (no listener call)
        return detail::import_status::dropped;
      case result::vetoed:
        return detail::import_status::vetoed;
      case result::stopped:
        return detail::import_status::stopped;
      case result::full:
      case result::journal_failed:  // the journal cannot write now: held back and retried as a
        break;                      // full lane's import is
    }
    return detail::import_status::full;
  }

  Bus* bus_;
  detail::bridge_core core_;
  std::vector<subscription> exports_;
};

}  // namespace tachyon::nats
