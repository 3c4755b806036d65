// The untyped part of the NATS bridge (tachyon/nats/bridge.hpp): the libnats connection, the
// sender thread that does all of the bridge's network writes, core NATS subscriptions and
// JetStream pull consumers for imports, counters and the quarantine.
#include <tachyon/nats/bridge.hpp>

#include <nats/nats.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include <concurrentqueue/concurrentqueue.h>

namespace tachyon::nats::detail {

namespace {

using clock = std::chrono::steady_clock;

std::string status_text(natsStatus s) {
  std::string t = natsStatus_GetText(s);
  // libnats's last error of this thread says more at times ("(conn.c:2088): <text>"): kept
  // when its text, without the source location, is not the status's own.
  const char* last = nats_GetLastError(nullptr);
  if (last != nullptr && *last != '\0') {
    std::string_view l(last);
    if (l.front() == '(') {
      if (const auto close = l.find("): "); close != std::string_view::npos)
        l.remove_prefix(close + 3);
    }
    if (!l.empty() && l != t) t += std::string(": ") + std::string(l);
  }
  return t;
}

std::uint64_t wall_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

std::string default_name() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "host");
  return std::string(host) + ":" + std::to_string(getpid());
}

std::uint64_t run_nonce() {
  std::random_device rd;
  std::uint64_t n = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  n ^= static_cast<std::uint64_t>(clock::now().time_since_epoch().count());
  return n ^ (static_cast<std::uint64_t>(getpid()) << 17);
}

std::vector<std::string> split_urls(const std::string& url) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at <= url.size()) {
    std::size_t comma = url.find(',', at);
    if (comma == std::string::npos) comma = url.size();
    std::string u = url.substr(at, comma - at);
    u.erase(0, u.find_first_not_of(' '));
    u.erase(u.find_last_not_of(' ') + 1);
    if (!u.empty()) out.push_back(std::move(u));
    at = comma + 1;
  }
  return out;
}

std::string header(natsMsg* m, std::string_view key) {
  const char* v = nullptr;
  if (natsMsgHeader_Get(m, std::string(key).c_str(), &v) != NATS_OK || v == nullptr) return {};
  return v;
}

/// A start time libnats 3.4 sends as it is: it writes the nanoseconds of a second without
/// their leading zeros (".5" for 5 ms past the second, read back as 500 ms), which starts a
/// consumer up to a second late. A fraction of nine digits, or none, is written right: the time
/// is rounded down to one (at most 0.1 s earlier), and the bridge skips what came before the
/// time asked for by each message's timestamp.
std::int64_t start_time_for_libnats(std::int64_t ns) {
  const std::int64_t second = 1000000000, fraction = ns % second;
  return fraction >= 100000000 ? ns : ns - fraction;
}

void check(natsStatus s, const std::string& what) {
  if (s != NATS_OK) throw error("tachyon::nats: " + what + ": " + status_text(s));
}

/// Subjects: tokens separated by '.', no spaces; an export's may not hold wildcards.
void check_subject(std::string_view subject, bool wildcards, const char* call) {
  auto bad = [&](const std::string& why) {
    throw std::invalid_argument(std::string("tachyon::nats::bridge::") + call + ": subject '" +
                                std::string(subject) + "' " + why);
  };
  if (subject.empty()) bad("is empty; allowed: tokens separated by '.', e.g. orders.created");
  for (char c : subject)
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
      bad("holds white space; allowed: tokens separated by '.'");
  if (subject.front() == '.' || subject.back() == '.' ||
      subject.find("..") != std::string_view::npos)
    bad("has an empty token; allowed: tokens separated by '.'");
  if (!wildcards && subject.find_first_of("*>") != std::string_view::npos)
    bad("holds a wildcard ('*' or '>'); an export publishes to one subject");
}

}  // namespace

/// Where the settle listeners of JetStream imports leave their acknowledgements for the sender
/// thread. Shared with every listener still in a bus, so that a bus that settles an imported
/// event after the bridge closed finds it here (closed: the message is let go unacknowledged,
/// and the server redelivers it).
struct ack_sink {
  enum action : std::uint8_t { ack, nak };
  struct item {
    natsMsg* msg;
    action what;
  };
  moodycamel::ConcurrentQueue<item> queue;
  // Held across a listener's look at `open`, its enqueue and its wake, and by close() to shut
  // it: once close() has shut it, no listener can reach into the bridge (wake) any more.
  std::mutex mutex;
  bool open = true;
  std::atomic<std::uint64_t> awaiting{0};
  std::function<void()> wake;  // set once before the first listener exists

  void shut() {
    std::lock_guard lock(mutex);
    open = false;
  }
  ~ack_sink() {
    item it;
    while (queue.try_dequeue(it)) natsMsg_Destroy(it.msg);
  }
};

namespace {

struct pending_ack : settle_listener {
  natsMsg* msg = nullptr;
  std::shared_ptr<ack_sink> sink;

  static void on_settled(settle_listener& self, const meta&, outcome o) noexcept {
    auto* p = static_cast<pending_ack*>(&self);
    std::shared_ptr<ack_sink> sink = std::move(p->sink);
    natsMsg* msg = p->msg;
    delete p;
    // Discarded: the bus stopped before running it; another run of the importer should.
    const auto what = o == outcome::discarded ? ack_sink::nak : ack_sink::ack;
    {
      std::lock_guard lock(sink->mutex);
      if (sink->open && sink->queue.enqueue({msg, what})) {
        sink->wake();
        msg = nullptr;
      }
    }
    // Closed: let go unacknowledged; the server redelivers it after its ack wait.
    if (msg != nullptr) natsMsg_Destroy(msg);
    // Release: the acknowledgement is queued before stop_imports() sees the count fall.
    sink->awaiting.fetch_sub(1, std::memory_order_acq_rel);
  }
};

}  // namespace

struct bridge_core::impl {
  struct export_entry {
    std::string subject;
    type_identity type;
    std::optional<stream_options> jetstream;
    std::uint64_t count = 0;  // sender thread only
    // Made once, read per message: the Tachyon-Type value (NUL-terminated for libnats) and,
    // for JetStream, the message id's prefix "<origin>/<subject>/<type>/". The type tells
    // apart two types sent to one subject, each counting its own sequence.
    std::string type_name;
    std::string id_prefix;
  };
  struct import_entry {
    impl* owner = nullptr;
    std::string subject;
    type_identity type;
    publish_fn publish = nullptr;
    void* bus = nullptr;
    std::optional<priority> lane;
    std::optional<consumer_options> jetstream;
    natsSubscription* sub = nullptr;
    std::thread fetcher;
    // Publish said stopped: this import takes no more. Read only by the JetStream fetcher, which
    // sets it itself: the release and acquire are not needed.
    std::atomic<bool> bus_stopped{false};
    std::atomic<int> failing{0};     // JetStream: the last fetch's failure (a natsStatus), or 0
    std::int64_t not_before_ns = 0;  // start_at::time: messages stored earlier are skipped
    // Core NATS: the last export sequence seen per "<origin> <subject>" (the callback thread's).
    std::unordered_map<std::string, std::uint64_t> last_seen;
  };

  options opts;
  std::string origin;
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;

  std::vector<outbound> slots;
  moodycamel::ConcurrentQueue<outbound*> free_slots;
  moodycamel::ConcurrentQueue<outbound*> ready;
  std::shared_ptr<ack_sink> acks = std::make_shared<ack_sink>();
  moodycamel::ConcurrentQueue<natsMsg*> resends;                // JetStream exports to send again
  std::vector<std::pair<clock::time_point, natsMsg*>> delayed;  // the sender's: waiting to

  std::mutex setup;  // exports_, imports_, close
  // Stable addresses, but the deque's map moves when it grows: the sender looks an entry up
  // under exports_mutex and then uses it unlocked.
  std::deque<export_entry> exports;
  std::mutex exports_mutex;
  std::deque<import_entry> imports;

  std::thread sender;
  std::mutex sleep_mutex;
  std::condition_variable sleep_cv;
  std::atomic<bool> sleeping{false};
  std::atomic<bool> running{true};
  std::atomic<bool> closed{false};    // imports stopped: no add_export/add_import either
  std::atomic<bool> finished{false};  // the connection closed
  // running, fetching: stop signals that carry no data (the joins in stop_imports() and finish()
  // order what follows); their release and acquire are not needed.
  std::atomic<bool> fetching{true};
  bool connection_closed = false;  // under sleep_mutex: the closed callback ran

  mutable std::mutex quarantine_mutex;
  std::deque<quarantined> kept;

  // Counters, relaxed: metrics() reads them, and any value it sees will do. flush() decides from
  // three of them (export_queued, in_send, export_unacked): their orders are at send_loop().
  std::atomic<std::uint64_t> exported{0}, export_duplicates{0}, export_resent{0}, export_errors{0},
      export_queue_full{0}, export_skipped{0}, export_queued{0}, export_unacked{0}, received{0},
      imported{0}, import_refused{0}, quarantined_count{0}, own_skipped{0}, gaps{0}, redelivered{0},
      acknowledged{0}, negative_acknowledged{0}, terminated{0}, disconnects{0}, reconnects{0};
  std::atomic<std::uint64_t> import_waits{0};
  std::atomic<std::uint64_t> before_start{0};
  std::atomic<std::uint32_t> in_take{0};  // core NATS callbacks inside take()
  std::atomic<std::uint64_t> in_send{0};  // slots the sender took and has not finished

  explicit impl(options o) : opts(std::move(o)) {
    if (opts.name.empty()) opts.name = default_name();
    origin = format_origin(opts.name, run_nonce());
    if (opts.export_queue == 0)
      throw std::invalid_argument("tachyon::nats::options::export_queue is 0; allowed: 1 or more");
    slots.resize(opts.export_queue);
    for (auto& s : slots) free_slots.enqueue(&s);
    acks->wake = [this] { wake(); };
    connect();
    sender = std::thread([this] { send_loop(); });
  }

  ~impl() { shut(); }

  // ---- the connection ------------------------------------------------------------------------

  void connect() {
    natsOptions* no = nullptr;
    check(natsOptions_Create(&no), "natsOptions_Create");
    struct guard {
      natsOptions* o;
      ~guard() { natsOptions_Destroy(o); }
    } g{no};
    const auto urls = split_urls(opts.url);
    if (urls.empty())
      throw std::invalid_argument(
          "tachyon::nats::options::url is empty; allowed: one URL or "
          "several separated by commas, e.g. nats://127.0.0.1:4222");
    std::vector<const char*> ptrs;
    for (const auto& u : urls) ptrs.push_back(u.c_str());
    check(natsOptions_SetServers(no, ptrs.data(), static_cast<int>(ptrs.size())), "server URLs");
    check(natsOptions_SetName(no, opts.name.c_str()), "name");
    check(natsOptions_SetTimeout(no, opts.connect_timeout.count()), "connect timeout");
    check(natsOptions_SetNoEcho(no, true), "no echo");
    check(natsOptions_SetMaxReconnect(no, opts.reconnect.max_attempts), "max reconnect");
    check(natsOptions_SetReconnectWait(no, opts.reconnect.wait.count()), "reconnect wait");
    check(natsOptions_SetReconnectBufSize(no, opts.reconnect.buffer_bytes), "reconnect buffer");
    check(natsOptions_SetMaxPendingMsgs(no, opts.import_pending_messages), "pending messages");
    // With a callback, natsConnection_Connect returns at once and keeps trying in the
    // background; without one it would block here through every attempt.
    if (opts.reconnect.retry_initial_connect)
      check(natsOptions_SetRetryOnFailedConnect(
                no, true, [](natsConnection*, void*) {}, this),
            "retry on connect");
    if (!opts.credentials_file.empty())
      check(natsOptions_SetUserCredentialsFromFiles(no, opts.credentials_file.c_str(), nullptr),
            "credentials file " + opts.credentials_file);
    if (!opts.nkey_seed_file.empty())
      check(natsOptions_SetNKeyFromSeed(no, opts.nkey_public.c_str(), opts.nkey_seed_file.c_str()),
            "NKey seed file " + opts.nkey_seed_file);
    if (!opts.token.empty()) check(natsOptions_SetToken(no, opts.token.c_str()), "token");
    if (!opts.user.empty())
      check(natsOptions_SetUserInfo(no, opts.user.c_str(), opts.password.c_str()), "user");
    const auto& tls = opts.tls;
    if (tls.enabled) check(natsOptions_SetSecure(no, true), "TLS");
    if (!tls.ca_file.empty())
      check(natsOptions_LoadCATrustedCertificates(no, tls.ca_file.c_str()), "CA " + tls.ca_file);
    if (!tls.cert_file.empty())
      check(natsOptions_LoadCertificatesChain(no, tls.cert_file.c_str(), tls.key_file.c_str()),
            "certificate " + tls.cert_file);
    if (!tls.expected_hostname.empty())
      check(natsOptions_SetExpectedHostname(no, tls.expected_hostname.c_str()), "TLS hostname");
    if (tls.skip_verify) check(natsOptions_SkipServerVerification(no, true), "TLS verification");
    natsOptions_SetDisconnectedCB(
        no, [](natsConnection*, void* c) { static_cast<impl*>(c)->disconnects.fetch_add(1); },
        this);
    natsOptions_SetReconnectedCB(
        no, [](natsConnection*, void* c) { static_cast<impl*>(c)->reconnects.fetch_add(1); }, this);
    // The last callback libnats makes for a connection: close() waits for it, so that no
    // callback can run on a freed bridge.
    natsOptions_SetClosedCB(
        no,
        [](natsConnection*, void* c) {
          auto* self = static_cast<impl*>(c);
          std::lock_guard lock(self->sleep_mutex);
          self->connection_closed = true;
          self->sleep_cv.notify_all();
        },
        this);
    // Slow consumers are read per subscription (natsSubscription_GetDropped, in metrics()): an
    // error handler would see only that one began, so none is set.

    const natsStatus s = natsConnection_Connect(&nc, no);
    if (s == NATS_NOT_YET_CONNECTED && opts.reconnect.retry_initial_connect) {
      // Connecting in the background, under the reconnect policy.
    } else if (s != NATS_OK) {
      nc = nullptr;
      throw error("tachyon::nats: cannot connect to " + opts.url + ": " + status_text(s) +
                  " (is nats-server running there? options::reconnect.retry_initial_connect "
                  "keeps trying instead of failing)");
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = 4096;
    jo.PublishAsync.AckHandler = &on_pub_ack;
    jo.PublishAsync.AckHandlerClosure = this;
    if (const natsStatus js_status = natsConnection_JetStream(&js, nc, &jo); js_status != NATS_OK) {
      close_connection();
      check(js_status, "JetStream context");
    }
  }

  /// Closes the connection and waits (10 s at most) for libnats's last callback.
  void wait_closed() noexcept {
    if (nc == nullptr) return;
    natsConnection_Close(nc);
    std::unique_lock lock(sleep_mutex);
    sleep_cv.wait_for(lock, std::chrono::seconds(10), [&] { return connection_closed; });
  }
  /// Closes and frees the connection once libnats has made its last callback.
  void close_connection() noexcept {
    if (nc == nullptr) return;
    wait_closed();
    natsConnection_Destroy(nc);
    nc = nullptr;
  }

  bool is_connected() const {
    return nc != nullptr && natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED;
  }

  // ---- exports -------------------------------------------------------------------------------

  std::uint32_t add_export(std::string_view subject, const type_identity& type,
                           const export_options& o) {
    check_subject(subject, false, "export_type");
    if (o.jetstream) ensure_stream(*o.jetstream, subject);
    std::lock_guard lock(setup);
    if (closed) throw std::logic_error("tachyon::nats::bridge::export_type: the bridge is closed");
    for (const auto& e : exports)
      if (e.subject == subject && e.type.name == type.name)
        throw std::invalid_argument(
            "tachyon::nats::bridge::export_type: " + std::string(type.name) + " is exported to '" +
            std::string(subject) +
            "' already; allowed: each type once per subject (twice would "
            "send every event twice)");
    {
      std::lock_guard grow(exports_mutex);
      const std::string name(type.name);
      exports.push_back({std::string(subject), type, o.jetstream, 0, name,
                         origin + "/" + std::string(subject) + "/" + name + "/"});
    }
    return static_cast<std::uint32_t>(exports.size() - 1);
  }

  void ensure_stream(const stream_options& so, std::string_view subject) {
    if (so.name.empty() || so.name.find_first_of(" .*>\t") != std::string::npos)
      throw std::invalid_argument("tachyon::nats::stream_options::name '" + so.name +
                                  "'; allowed: letters, digits, '-' and '_', not empty");
    jsStreamInfo* si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_GetStreamInfo(&si, js, so.name.c_str(), nullptr, &jerr);
    if (s == NATS_OK) {
      jsStreamInfo_Destroy(si);
      return;  // made before, by this program or another: used as it is
    }
    if (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr) check(s, "JetStream stream " + so.name);
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const std::string subj(subject);
    const char* subjects[] = {subj.c_str()};
    cfg.Name = so.name.c_str();
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Retention = so.retain == retention::limits     ? js_LimitsPolicy
                    : so.retain == retention::interest ? js_InterestPolicy
                                                       : js_WorkQueuePolicy;
    cfg.Storage = so.store == storage::file ? js_FileStorage : js_MemoryStorage;
    cfg.MaxMsgs = so.max_messages;
    cfg.MaxBytes = so.max_bytes;
    cfg.MaxAge = std::chrono::duration_cast<std::chrono::nanoseconds>(so.max_age).count();
    cfg.Replicas = so.replicas;
    cfg.Duplicates =
        std::chrono::duration_cast<std::chrono::nanoseconds>(so.duplicate_window).count();
    s = js_AddStream(&si, js, &cfg, nullptr, &jerr);
    if (s != NATS_OK)
      throw error("tachyon::nats: cannot make JetStream stream " + so.name + " for " + subj + ": " +
                  status_text(s) +
                  (jerr != 0 ? " (JetStream error " + std::to_string(jerr) + ")" : ""));
    jsStreamInfo_Destroy(si);
  }

  outbound* acquire() noexcept {
    outbound* o = nullptr;
    if (!free_slots.try_dequeue(o)) {
      export_queue_full.fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
    return o;
  }
  void submit(outbound* o) noexcept {
    o->meta.published_ns = wall_ns();
    export_queued.fetch_add(1, std::memory_order_relaxed);
    // A slot's queue had room for it when it was made: this enqueue only allocates a block
    // on a thread's first export.
    if (!ready.enqueue(o)) {
      export_queued.fetch_sub(1, std::memory_order_relaxed);
      export_errors.fetch_add(1, std::memory_order_relaxed);
      release(o);
      return;
    }
    wake();
  }
  void release(outbound* o) noexcept {
    o->payload.clear();
    free_slots.enqueue(o);
  }
  void wake() noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // the item before the flag (see sleep)
    if (sleeping.load(std::memory_order_relaxed)) {
      std::lock_guard lock(sleep_mutex);
      sleep_cv.notify_one();
    }
  }

  void send_loop() {
    outbound* batch[64];
    ack_sink::item items[64];
    bool unflushed = false;
    while (true) {
      bool did = false;
      std::size_t n = ready.try_dequeue_bulk(batch, 64);
      if (n != 0) {
        // flush() is done when it reads export_queued, then in_send, then export_unacked, all 0.
        // The release makes the in_send add visible to a flush() that sees the subtraction: with
        // both relaxed, a weakly ordered CPU (aarch64) may show the subtraction first, and
        // flush() would return while these n are neither queued nor sending nor unacknowledged.
        in_send.fetch_add(n, std::memory_order_relaxed);
        export_queued.fetch_sub(n, std::memory_order_release);
        for (std::size_t i = 0; i < n; ++i) {
          send(*batch[i]);
          release(batch[i]);
        }
        // Release: send() counted each in export_unacked before this, and flush() reads that
        // after seeing in_send fall.
        in_send.fetch_sub(n, std::memory_order_release);
        did = true;
      }
      const std::size_t k = acks->queue.try_dequeue_bulk(items, 64);
      for (std::size_t i = 0; i < k; ++i) finish_ack(items[i].msg, items[i].what);
      did = did || k != 0;
      const clock::duration next = resend_due();
      if (did) {
        unflushed = unflushed || n != 0 || k != 0;
        continue;
      }
      // Out of work: push what libnats buffered to the server now. Left to libnats, a buffer
      // goes out when its flusher thread next wakes, about 1 ms after a publish: a round trip
      // through two bridges waited for that twice. Flushing only when the queue runs dry costs
      // one PING/PONG per idle spell, not per message; under load the sender never idles, and
      // while this waits, exports queue up and go out together.
      if (unflushed) {
        unflushed = false;
        if (is_connected()) natsConnection_FlushTimeout(nc, 100);
        continue;
      }
      if (!running.load(std::memory_order_acquire)) break;
      std::unique_lock lock(sleep_mutex);
      sleeping.store(true, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_seq_cst);  // the flag before the look (wake)
      if (ready.size_approx() == 0 && acks->queue.size_approx() == 0 &&
          resends.size_approx() == 0 && running.load(std::memory_order_acquire))
        sleep_cv.wait_for(lock, next);
      sleeping.store(false, std::memory_order_relaxed);
    }
    // Closing: what still waits for a resend is given up (counted with the unacknowledged).
    natsMsg* m = nullptr;
    while (resends.try_dequeue(m)) natsMsg_Destroy(m);
    for (auto& [due, d] : delayed) natsMsg_Destroy(d);
    delayed.clear();
  }

  void finish_ack(natsMsg* m, ack_sink::action what) {
    if (what == ack_sink::ack) {
      if (natsMsg_Ack(m, nullptr) == NATS_OK) acknowledged.fetch_add(1, std::memory_order_relaxed);
    } else {
      if (natsMsg_Nak(m, nullptr) == NATS_OK)
        negative_acknowledged.fetch_add(1, std::memory_order_relaxed);
    }
    natsMsg_Destroy(m);
  }

  void send(outbound& o) {
    export_entry& e = [&]() -> export_entry& {
      std::lock_guard look(exports_mutex);
      return exports[o.export_id];
    }();
    o.meta.export_sequence = ++e.count;
    // Nothing went out: the number is given back, so that the importer does not count this
    // loss again as a gap (export_errors counts it).
    auto unsent = [&] {
      --e.count;
      export_errors.fetch_add(1, std::memory_order_relaxed);
    };
    natsMsg* m = nullptr;
    if (natsMsg_Create(&m, e.subject.c_str(), nullptr,
                       reinterpret_cast<const char*>(o.payload.data()),
                       static_cast<int>(o.payload.size())) != NATS_OK)
      return unsent();
    const std::string meta_text = format_meta(o.meta);
    bool ok = natsMsgHeader_Set(m, type_header.data(), e.type_name.c_str()) == NATS_OK &&
              natsMsgHeader_Set(m, meta_header.data(), meta_text.c_str()) == NATS_OK &&
              natsMsgHeader_Set(m, origin_header.data(), origin.c_str()) == NATS_OK;
    if (!ok) {
      natsMsg_Destroy(m);
      return unsent();
    }
    if (!e.jetstream) {
      if (natsConnection_PublishMsg(nc, m) == NATS_OK)
        exported.fetch_add(1, std::memory_order_relaxed);
      else
        unsent();  // lost: at most once
      natsMsg_Destroy(m);
      return;
    }
    const std::string id = e.id_prefix + std::to_string(o.meta.export_sequence);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = id.c_str();
    po.MaxWait = 5000;
    export_unacked.fetch_add(1, std::memory_order_relaxed);
    // The library stalls here while 4096 acknowledgements are outstanding: the sender thread
    // waits, the export queue fills, and exports are refused (counted) rather than buffered.
    // The stall (NATS_TIMEOUT) is retried here; any other refusal (the connection down, the
    // server restarting) goes the way of a missing acknowledgement: sent again after a pause.
    natsStatus s = NATS_TIMEOUT;
    while (s == NATS_TIMEOUT && running.load(std::memory_order_acquire)) {
      s = js_PublishMsgAsync(js, &m, &po);
      if (s == NATS_OK) return;  // the library owns m now; on_pub_ack finishes it
    }
    on_pub_ack(js, m, nullptr, nullptr, this);
  }

  /// A JetStream export without an acknowledgement is sent again, with its id, after pauses of
  /// 50 ms doubling to 1 s, 30 times (26.55 s of pauses, plus each try's wait for an answer),
  /// which outlasts a stream leader's election; then it counts as lost.
  static constexpr int max_resends = 30;

  /// JetStream's answer to one export (on libnats's thread).
  static void on_pub_ack(jsCtx*, natsMsg* m, jsPubAck* pa, jsPubAckErr*, void* c) {
    auto* self = static_cast<impl*>(c);
    if (pa != nullptr) {
      (pa->Duplicate ? self->export_duplicates : self->exported).fetch_add(1);
      self->export_unacked.fetch_sub(1);
      natsMsg_Destroy(m);
      return;
    }
    // No acknowledgement (a timeout while the server restarts, no responders while a leader is
    // elected): the sender thread sends it again after a pause, so that a copy the server did
    // store is dropped as a duplicate and an election has time to end.
    if (self->running.load(std::memory_order_acquire) && self->resends.enqueue(m)) {
      self->wake();
      return;
    }
    self->export_errors.fetch_add(1);
    self->export_unacked.fetch_sub(1);
    natsMsg_Destroy(m);
  }

  /// On the sender thread: takes failed exports in and sends those whose pause is over.
  /// Returns the time until the next is due (or 50 ms).
  clock::duration resend_due() {
    natsMsg* m = nullptr;
    while (resends.try_dequeue(m)) {
      const std::string n = header(m, "Tachyon-Resend");
      const int count = n.empty() ? 0 : std::atoi(n.c_str());
      if (count >= max_resends) {
        export_errors.fetch_add(1);
        export_unacked.fetch_sub(1);
        natsMsg_Destroy(m);
        continue;
      }
      natsMsgHeader_Set(m, "Tachyon-Resend", std::to_string(count + 1).c_str());
      const auto pause = std::chrono::milliseconds(std::min(1000, 50 << std::min(count, 5)));
      delayed.emplace_back(clock::now() + pause, m);
    }
    clock::duration next = std::chrono::milliseconds(50);
    const auto now = clock::now();
    for (std::size_t i = 0; i < delayed.size();) {
      if (delayed[i].first > now) {
        next = std::min<clock::duration>(next, delayed[i].first - now);
        ++i;
        continue;
      }
      natsMsg* d = delayed[i].second;
      delayed[i] = delayed.back();
      delayed.pop_back();
      export_resent.fetch_add(1);
      const std::string id = header(d, msg_id_header);
      jsPubOptions po;
      jsPubOptions_Init(&po);
      po.MsgId = id.c_str();
      po.MaxWait = 5000;
      if (js_PublishMsgAsync(js, &d, &po) != NATS_OK) on_pub_ack(js, d, nullptr, nullptr, this);
    }
    return next;
  }

  // ---- imports -------------------------------------------------------------------------------

  void add_import(std::string_view subject, const type_identity& type, publish_fn publish,
                  void* bus, const import_options& o) {
    check_subject(subject, true, "import_type");
    std::lock_guard lock(setup);
    if (closed) throw std::logic_error("tachyon::nats::bridge::import_type: the bridge is closed");
    import_entry& e = imports.emplace_back();
    e.owner = this;
    e.subject = subject;
    e.type = type;
    e.publish = publish;
    e.bus = bus;
    e.lane = o.lane;
    e.jetstream = o.jetstream;
    try {
      if (!o.jetstream) {
        check(natsConnection_Subscribe(&e.sub, nc, e.subject.c_str(), &on_core_msg, &e),
              "subscribe to " + e.subject);
        natsSubscription_SetPendingLimits(e.sub, opts.import_pending_messages,
                                          opts.import_pending_bytes);
      } else {
        subscribe_pull(e);
        e.fetcher = std::thread([this, &e] { fetch_loop(e); });
      }
    } catch (...) {
      if (e.sub != nullptr) natsSubscription_Destroy(e.sub);
      imports.pop_back();
      throw;
    }
  }

  void subscribe_pull(import_entry& e) {
    const consumer_options& c = *e.jetstream;
    if (c.stream.empty() || c.durable.empty())
      throw std::invalid_argument("tachyon::nats::consumer_options: stream '" + c.stream +
                                  "' and durable '" + c.durable +
                                  "'; allowed: both named (letters, digits, '-' and '_')");
    if (c.batch < 1) throw std::invalid_argument("tachyon::nats::consumer_options::batch < 1");
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = c.stream.c_str();
    so.ManualAck = true;
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.AckWait = std::chrono::duration_cast<std::chrono::nanoseconds>(c.ack_wait).count();
    so.Config.MaxDeliver = c.max_deliver;
    switch (c.start) {
      case start_at::all:
        so.Config.DeliverPolicy = js_DeliverAll;
        break;
      case start_at::new_only:
        so.Config.DeliverPolicy = js_DeliverNew;
        break;
      case start_at::sequence:
        so.Config.DeliverPolicy = js_DeliverByStartSequence;
        so.Config.OptStartSeq = c.start_sequence;
        break;
      case start_at::time:
        so.Config.DeliverPolicy = js_DeliverByStartTime;
        e.not_before_ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(c.start_time.time_since_epoch())
                .count();
        so.Config.OptStartTime = start_time_for_libnats(e.not_before_ns);
        break;
    }
    jsErrCode jerr = static_cast<jsErrCode>(0);
    const natsStatus s =
        js_PullSubscribe(&e.sub, js, e.subject.c_str(), c.durable.c_str(), nullptr, &so, &jerr);
    if (s != NATS_OK)
      throw error("tachyon::nats: cannot make JetStream consumer " + c.durable + " on stream " +
                  c.stream + " for " + e.subject + ": " + status_text(s) +
                  (jerr != 0 ? " (JetStream error " + std::to_string(jerr) + ")" : ""));
  }

  static void on_core_msg(natsConnection*, natsSubscription*, natsMsg* m, void* c) {
    auto& e = *static_cast<import_entry*>(c);
    impl* self = e.owner;
    // The decrement's release: this take() is done with the bridge before stop_imports(), which
    // waits for 0 (acquire), lets it go.
    self->in_take.fetch_add(1, std::memory_order_acq_rel);
    self->take(e, m, false);
    self->in_take.fetch_sub(1, std::memory_order_acq_rel);
  }

  void fetch_loop(import_entry& e) {
    const int batch = e.jetstream->batch;
    unsigned idle = 0;  // fetches in a row that found nothing
    // A stopped bus takes nothing more: the rest stays in the stream for the next run.
    while (fetching.load(std::memory_order_acquire) &&
           !e.bus_stopped.load(std::memory_order_acquire)) {
      natsMsgList list{};
      const natsStatus s = natsSubscription_Fetch(&list, e.sub, batch, 200, nullptr);
      // A fetch that fails (not one that finds nothing) marks the import failing in health()
      // until one succeeds: a consumer deleted, or lost with a server's memory store.
      // A consumer deleted under a pending fetch can also look like fetches that find nothing:
      // after 2 s of those, the consumer is looked up.
      int failure = s != NATS_OK && s != NATS_TIMEOUT ? static_cast<int>(s) : 0;
      idle = s == NATS_TIMEOUT ? idle + 1 : 0;
      if (idle % 10 == 9) {
        jsConsumerInfo* ci = nullptr;
        jsErrCode jerr{};
        const natsStatus look = natsSubscription_GetConsumerInfo(&ci, e.sub, nullptr, &jerr);
        if (look == NATS_OK)
          jsConsumerInfo_Destroy(ci);
        else
          failure = static_cast<int>(look);
      }
      if (failure != 0 || s != NATS_TIMEOUT || idle % 10 == 9)
        e.failing.store(failure, std::memory_order_relaxed);  // for health(): the value only
      if (s == NATS_OK) {
        for (int i = 0; i < list.Count; ++i) {
          natsMsg* m = list.Msgs[i];
          list.Msgs[i] = nullptr;
          take(e, m, true);
        }
        natsMsgList_Destroy(&list);
        continue;
      }
      natsMsgList_Destroy(&list);
      if (s == NATS_TIMEOUT) continue;
      if (s == NATS_CONNECTION_CLOSED || s == NATS_INVALID_SUBSCRIPTION) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));  // disconnected: reconnecting
    }
  }

  /// One message from NATS for import `e`: checked, decoded and published, or quarantined.
  /// Takes `m`. JetStream messages are acknowledged by what becomes of them.
  void take(import_entry& e, natsMsg* m, bool jetstream) {
    received.fetch_add(1, std::memory_order_relaxed);
    auto refuse = [&](std::string why) {
      keep(m, std::move(why));
      if (jetstream && natsMsg_Term(m, nullptr) == NATS_OK)
        terminated.fetch_add(1, std::memory_order_relaxed);
      natsMsg_Destroy(m);
    };
    const int size = natsMsg_GetDataLength(m);
    if (static_cast<std::size_t>(size) > opts.max_message_bytes)
      return refuse("payload of " + std::to_string(size) + " bytes; allowed: up to " +
                    std::to_string(opts.max_message_bytes) + " (options::max_message_bytes)");
    const std::string type = header(m, type_header);
    if (type.empty())
      return refuse("no Tachyon-Type header: not a message a tachyon bridge exported");
    if (header(m, origin_header) == origin) {  // this bridge's own export, back from a stream
      own_skipped.fetch_add(1, std::memory_order_relaxed);
      if (jetstream && natsMsg_Ack(m, nullptr) == NATS_OK)
        acknowledged.fetch_add(1, std::memory_order_relaxed);
      natsMsg_Destroy(m);
      return;
    }
    if (type != e.type.name)
      return refuse("type '" + type.substr(0, 128) + "'; this import takes '" +
                    std::string(e.type.name) + "'");
    wire_meta wm;
    std::string why;
    if (!parse_meta(header(m, meta_header), wm, why)) return refuse(why);
    if (wm.version < e.type.oldest || wm.version > e.type.version)
      return refuse("version " + std::to_string(wm.version) + " of " + type + "; allowed: " +
                    std::to_string(e.type.oldest) + " to " + std::to_string(e.type.version));
    if (wm.fingerprint != e.type.fingerprint(wm.version))
      return refuse("fingerprint of " + type + " version " + std::to_string(wm.version) +
                    " does not match this build's: the two sides declare or lay out the type "
                    "differently");
    if (!jetstream) {
      // Bounded: a new origin per exporter run (and any a hostile sender makes up). Past the
      // bound it starts afresh; a gap spanning the reset is not counted.
      if (e.last_seen.size() >= 4096) e.last_seen.clear();
      std::uint64_t& last = e.last_seen[header(m, origin_header) + " " + natsMsg_GetSubject(m)];
      if (last != 0 && wm.export_sequence > last + 1)
        gaps.fetch_add(wm.export_sequence - last - 1, std::memory_order_relaxed);
      if (wm.export_sequence > last) last = wm.export_sequence;
    }
    bool again = false;
    if (jetstream) {
      jsMsgMetaData* md = nullptr;
      std::int64_t stored = 0;
      if (natsMsg_GetMetaData(&md, m) == NATS_OK) {
        again = md->NumDelivered > 1;
        stored = md->Timestamp;
        jsMsgMetaData_Destroy(md);
      }
      if (stored < e.not_before_ns) {  // before the start time (see start_time_for_libnats)
        before_start.fetch_add(1, std::memory_order_relaxed);
        if (natsMsg_Ack(m, nullptr) == NATS_OK)
          acknowledged.fetch_add(1, std::memory_order_relaxed);
        natsMsg_Destroy(m);
        return;
      }
      if (again) redelivered.fetch_add(1, std::memory_order_relaxed);
    }
    pending_ack* listener = nullptr;
    if (jetstream) {
      listener = new pending_ack;
      listener->settled = &pending_ack::on_settled;
      listener->msg = m;
      listener->sink = acks;
      // JetStream only: the fetcher that runs this is joined before stop_imports() reads the
      // count, so the add's order is not needed (nor the undo's below).
      acks->awaiting.fetch_add(1, std::memory_order_acq_rel);
    }
    const auto* data = reinterpret_cast<const std::byte*>(natsMsg_GetData(m));
    const incoming in{wm, std::span<const std::byte>(data, static_cast<std::size_t>(size)), again,
                      listener};
    import_status st;
    try {
      st = e.publish(e.bus, in, e.lane, why);
      // JetStream, a full lane: the message waits here, and the fetcher with it, rather than go
      // back to the server, where each return would use up one of its max_deliver deliveries.
      // The server is told it is still being worked on, so its ack wait does not run out.
      auto pause = std::chrono::milliseconds(1);
      auto told = clock::now();
      if (jetstream && st == import_status::full)
        import_waits.fetch_add(1, std::memory_order_relaxed);
      while (jetstream && st == import_status::full && fetching.load(std::memory_order_acquire)) {
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::milliseconds(50));
        if (clock::now() - told > e.jetstream->ack_wait / 3) {
          natsMsg_InProgress(m, nullptr);
          told = clock::now();
        }
        st = e.publish(e.bus, in, e.lane, why);
      }
    } catch (const std::exception& x) {  // the event's copy or a publish option threw
      st = import_status::undecodable;
      why = std::string("publish threw: ") + x.what();
    }
    if (st == import_status::accepted) {
      imported.fetch_add(1, std::memory_order_relaxed);
      if (!jetstream) natsMsg_Destroy(m);
      return;  // JetStream: the listener has m now
    }
    if (listener != nullptr) {  // not told: the bus did not keep the event
      listener->sink.reset();
      delete listener;
      acks->awaiting.fetch_sub(1, std::memory_order_acq_rel);
    }
    switch (st) {
      case import_status::accepted:
        break;
      case import_status::dropped:  // the bus's overflow::drop took it: settled, counted there
        imported.fetch_add(1, std::memory_order_relaxed);
        if (jetstream && natsMsg_Ack(m, nullptr) == NATS_OK)
          acknowledged.fetch_add(1, std::memory_order_relaxed);
        natsMsg_Destroy(m);
        return;
      case import_status::full:     // core NATS: lost, counted; JetStream: the bridge closes
      case import_status::stopped:  // the bus stops: JetStream keeps it for the next run
        import_refused.fetch_add(1, std::memory_order_relaxed);
        if (st == import_status::stopped) e.bus_stopped.store(true, std::memory_order_release);
        if (jetstream && natsMsg_Nak(m, nullptr) == NATS_OK)
          negative_acknowledged.fetch_add(1, std::memory_order_relaxed);
        natsMsg_Destroy(m);
        return;
      case import_status::vetoed:  // refused for what it is: never again
        import_refused.fetch_add(1, std::memory_order_relaxed);
        if (jetstream && natsMsg_Term(m, nullptr) == NATS_OK)
          terminated.fetch_add(1, std::memory_order_relaxed);
        natsMsg_Destroy(m);
        return;
      case import_status::undecodable:
        return refuse(why);
    }
  }

  void keep(natsMsg* m, std::string why) {
    quarantined_count.fetch_add(1, std::memory_order_relaxed);
    quarantined q;
    q.subject = natsMsg_GetSubject(m) != nullptr ? natsMsg_GetSubject(m) : "";
    q.reason = std::move(why);
    q.type = header(m, type_header).substr(0, 256);
    q.origin = header(m, origin_header).substr(0, 256);
    // The first 64 KiB: 256 kept messages of 1 MiB would hold a quarter of a gigabyte.
    q.size = static_cast<std::size_t>(std::max(natsMsg_GetDataLength(m), 0));
    const int n = std::min<int>(natsMsg_GetDataLength(m), 64 * 1024);
    const auto* d = reinterpret_cast<const std::byte*>(natsMsg_GetData(m));
    if (d != nullptr && n > 0) q.payload.assign(d, d + n);
    q.at = std::chrono::system_clock::now();
    std::lock_guard lock(quarantine_mutex);
    if (opts.quarantine_capacity == 0) return;
    while (kept.size() >= opts.quarantine_capacity) kept.pop_front();
    kept.push_back(std::move(q));
  }

  // ---- replay --------------------------------------------------------------------------------

  std::size_t replay(std::string_view stream, std::string_view subject, const type_identity& type,
                     publish_fn publish, void* bus, const replay_from& from,
                     std::optional<priority> lane, std::chrono::milliseconds timeout) {
    const std::string st(stream);
    import_entry e;
    e.owner = this;
    e.subject = subject.empty() ? std::string(">") : std::string(subject);
    check_subject(e.subject, true, "replay");
    e.type = type;
    e.publish = publish;
    e.bus = bus;
    e.lane = lane;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = st.c_str();
    so.Config.AckPolicy = js_AckNone;
    if (from.sequence != 0) {
      so.Config.DeliverPolicy = js_DeliverByStartSequence;
      so.Config.OptStartSeq = from.sequence;
    } else {
      so.Config.DeliverPolicy = js_DeliverByStartTime;
      e.not_before_ns =
          std::chrono::duration_cast<std::chrono::nanoseconds>(from.time.time_since_epoch())
              .count();
      so.Config.OptStartTime = start_time_for_libnats(e.not_before_ns);
    }
    jsErrCode jerr = static_cast<jsErrCode>(0);
    check(js_PullSubscribe(&e.sub, js, e.subject.c_str(), nullptr, nullptr, &so, &jerr),
          "replay consumer on stream " + st);
    struct sub_guard {
      natsSubscription* s;
      ~sub_guard() {
        natsSubscription_Unsubscribe(s);
        natsSubscription_Destroy(s);
      }
    } g{e.sub};
    // Up to the stream's last message now: a message at or past it, or one after which the
    // server counts nothing more pending, ends the replay; so does a fetch that finds nothing
    // when the consumer, asked, has nothing pending either (nothing matched).
    jsStreamInfo* si = nullptr;
    check(js_GetStreamInfo(&si, js, st.c_str(), nullptr, &jerr), "JetStream stream " + st);
    const std::uint64_t last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    std::size_t accepted = 0;
    const auto until = clock::now() + timeout;
    bool done = last == 0;
    while (!done) {
      if (clock::now() > until)
        throw error("tachyon::nats::bridge::replay: stream " + st + " not read to sequence " +
                    std::to_string(last) + " within the timeout");
      natsMsgList list{};
      const natsStatus s = natsSubscription_Fetch(&list, e.sub, 256, 500, nullptr);
      if (s == NATS_TIMEOUT) {
        jsConsumerInfo* ci = nullptr;
        if (natsSubscription_GetConsumerInfo(&ci, e.sub, nullptr, &jerr) == NATS_OK) {
          done = ci->NumPending == 0 && ci->NumAckPending == 0;
          jsConsumerInfo_Destroy(ci);
        }
        continue;
      }
      if (s != NATS_OK) {
        natsMsgList_Destroy(&list);
        check(s, "replay of stream " + st);
      }
      for (int i = 0; i < list.Count && !done; ++i) {
        jsMsgMetaData* md = nullptr;
        std::uint64_t seq = 0, pending = 1;
        std::int64_t stored = 0;
        if (natsMsg_GetMetaData(&md, list.Msgs[i]) == NATS_OK) {
          seq = md->Sequence.Stream;
          pending = md->NumPending;
          stored = md->Timestamp;
          jsMsgMetaData_Destroy(md);
        }
        if (seq > last) {
          done = true;
          break;
        }
        if (stored < e.not_before_ns)
          before_start.fetch_add(1, std::memory_order_relaxed);
        else if (replay_one(e, list.Msgs[i]))
          ++accepted;
        done = seq >= last || pending == 0;
      }
      natsMsgList_Destroy(&list);
    }
    return accepted;
  }

  /// One replayed message: as an import, without acknowledgement; messages of this bridge's
  /// own origin are replayed too (a replay is asked for).
  /// True if the bus took it.
  bool replay_one(import_entry& e, natsMsg* m) {
    wire_meta wm;
    std::string why;
    const int size = natsMsg_GetDataLength(m);
    const std::string type = header(m, type_header);
    if (type != e.type.name)
      why = "replay: type '" + type.substr(0, 128) + "'; takes '" + std::string(e.type.name) + "'";
    else if (!parse_meta(header(m, meta_header), wm, why))
      ;
    else if (wm.version < e.type.oldest || wm.version > e.type.version ||
             wm.fingerprint != e.type.fingerprint(wm.version))
      why = "replay: version or fingerprint of " + type + " does not match this build's";
    if (!why.empty()) {
      keep(m, std::move(why));
      return false;
    }
    const auto* data = reinterpret_cast<const std::byte*>(natsMsg_GetData(m));
    const incoming in{wm, std::span<const std::byte>(data, static_cast<std::size_t>(size)), false,
                      nullptr};
    switch (e.publish(e.bus, in, e.lane, why)) {
      case import_status::accepted:
      case import_status::dropped:
        imported.fetch_add(1, std::memory_order_relaxed);
        return true;
      case import_status::full:
      case import_status::stopped:
      case import_status::vetoed:
        import_refused.fetch_add(1, std::memory_order_relaxed);
        return false;
      case import_status::undecodable:
        keep(m, why);
        return false;
    }
    return false;
  }

  // ---- flush and close -----------------------------------------------------------------------

  bool flush(std::chrono::milliseconds timeout) {
    const auto until = clock::now() + timeout;
    while (export_queued.load() != 0 || in_send.load() != 0 || export_unacked.load() != 0) {
      if (clock::now() > until) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (nc == nullptr) return true;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock::now());
    return natsConnection_FlushTimeout(nc, std::max<std::int64_t>(left.count(), 1)) == NATS_OK;
  }

  /// No more imports; the imported events in the bus get until `until` to settle (their
  /// acknowledgements queued). False if the bridge was closed already.
  bool stop_imports(clock::time_point until) {
    {
      std::lock_guard lock(setup);
      if (closed.exchange(true)) return false;
    }
    fetching.store(false, std::memory_order_release);
    // A core subscription is drained: what libnats holds for it is delivered, and its
    // callback has returned for good before the bridge goes on closing.
    for (auto& e : imports)
      if (e.sub != nullptr && !e.jetstream) natsSubscription_Drain(e.sub);
    for (auto& e : imports) {
      if (e.fetcher.joinable()) e.fetcher.join();
      if (e.sub != nullptr && !e.jetstream) natsSubscription_WaitForDrainCompletion(e.sub, 5000);
    }
    // A callback still inside take() (its publish waits for room under overflow::block) must
    // return before the bridge can go: it waits for the bus, however long, rather than return
    // into a freed bridge. A stopping bus releases it (publish returns `stopped`).
    while (in_take.load(std::memory_order_acquire) != 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    while (acks->awaiting.load() != 0 && clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return true;
  }

  void close() {
    const auto until = clock::now() + opts.close_timeout;
    stop_imports(until);
    finish(until);
  }

  /// What is queued goes out (until `until`), then the connection closes. Once.
  void finish(clock::time_point until) {
    if (finished.exchange(true)) return;
    // Disconnected, there is no one to flush to: what is unsent is counted below, not waited on.
    if (is_connected())
      flush(std::chrono::duration_cast<std::chrono::milliseconds>(
          std::max(until - clock::now(), clock::duration(std::chrono::milliseconds(100)))));
    acks->shut();
    running.store(false, std::memory_order_release);
    wake();
    {
      std::lock_guard lock(sleep_mutex);
      sleep_cv.notify_one();
    }
    if (sender.joinable()) sender.join();
    // Outstanding JetStream acknowledgements of exports are given up here: counted lost.
    if (js != nullptr) {
      jsPubOptions po;
      jsPubOptions_Init(&po);
      po.MaxWait = 100;
      js_PublishAsyncComplete(js, &po);
    }
    if (nc != nullptr) natsConnection_Close(nc);
    {
      std::lock_guard lock(setup);  // metrics() reads the subscriptions under it
      for (auto& e : imports) {
        if (e.sub != nullptr) natsSubscription_Destroy(e.sub);
        e.sub = nullptr;
      }
    }
    wait_closed();  // after libnats's last callback: no acknowledgement can come any more
    export_errors.fetch_add(export_unacked.exchange(0));
    if (js != nullptr) jsCtx_Destroy(js);
    js = nullptr;
    close_connection();
  }

  void shut() noexcept {
    try {
      close();
    } catch (...) {
    }
  }

  bridge_metrics metrics() const {
    bridge_metrics m;
    auto r = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    m.exported = r(exported);
    m.export_duplicates = r(export_duplicates);
    m.export_resent = r(export_resent);
    m.export_errors = r(export_errors);
    m.export_queue_full = r(export_queue_full);
    m.export_skipped = r(export_skipped);
    m.export_queued = r(export_queued) + r(in_send);
    m.export_unacknowledged = r(export_unacked);
    m.received = r(received);
    m.imported = r(imported);
    m.import_refused = r(import_refused);
    m.import_waits = r(import_waits);
    m.before_start = r(before_start);
    m.quarantined = r(quarantined_count);
    m.own_skipped = r(own_skipped);
    m.gaps = r(gaps);
    m.redelivered = r(redelivered);
    m.acknowledged = r(acknowledged);
    m.negative_acknowledged = r(negative_acknowledged);
    m.terminated = r(terminated);
    m.awaiting_settle = acks->awaiting.load(std::memory_order_relaxed);
    m.slow_consumer_dropped = 0;
    {
      std::lock_guard lock(const_cast<std::mutex&>(setup));
      for (const auto& e : imports) {
        std::int64_t dropped = 0;
        if (e.sub != nullptr && !e.jetstream &&
            natsSubscription_GetDropped(e.sub, &dropped) == NATS_OK)
          m.slow_consumer_dropped += static_cast<std::uint64_t>(dropped);
      }
    }
    m.disconnects = r(disconnects);
    m.reconnects = r(reconnects);
    m.connected = !closed.load() && is_connected();
    return m;
  }
};

bridge_core::bridge_core(options o) : impl_(std::make_unique<impl>(std::move(o))) {}
bridge_core::~bridge_core() = default;

std::uint32_t bridge_core::add_export(std::string_view subject, const type_identity& type,
                                      const export_options& o) {
  return impl_->add_export(subject, type, o);
}
void bridge_core::add_import(std::string_view subject, const type_identity& type,
                             publish_fn publish, void* bus, const import_options& o) {
  impl_->add_import(subject, type, publish, bus, o);
}
std::size_t bridge_core::replay(std::string_view stream, std::string_view subject,
                                const type_identity& type, publish_fn publish, void* bus,
                                const replay_from& from, std::optional<priority> lane,
                                std::chrono::milliseconds timeout) {
  return impl_->replay(stream, subject, type, publish, bus, from, lane, timeout);
}
outbound* bridge_core::acquire() noexcept { return impl_->acquire(); }
void bridge_core::submit(outbound* o) noexcept { impl_->submit(o); }
void bridge_core::release(outbound* o) noexcept { impl_->release(o); }
void bridge_core::count_skipped() noexcept {
  impl_->export_skipped.fetch_add(1, std::memory_order_relaxed);
}
bool bridge_core::flush(std::chrono::milliseconds timeout) { return impl_->flush(timeout); }
void bridge_core::close() { impl_->close(); }
bool bridge_core::stop_imports() {
  return impl_->stop_imports(clock::now() + impl_->opts.close_timeout);
}
std::chrono::milliseconds bridge_core::close_timeout() const noexcept {
  return impl_->opts.close_timeout;
}
bridge_metrics bridge_core::metrics() const { return impl_->metrics(); }
std::vector<quarantined> bridge_core::quarantine() const {
  std::lock_guard lock(impl_->quarantine_mutex);
  return {impl_->kept.begin(), impl_->kept.end()};
}
const std::string& bridge_core::origin() const noexcept { return impl_->origin; }

bridge_health bridge_core::health() const {
  const bridge_metrics m = metrics();
  bridge_health h;
  h.connected = m.connected;
  if (!m.connected) h.problems.push_back("not connected to NATS");
  if (m.slow_consumer_dropped != 0)
    h.problems.push_back("slow consumer: " + std::to_string(m.slow_consumer_dropped) +
                         " messages dropped by an import that fell behind");
  if (m.export_errors != 0)
    h.problems.push_back("exports lost: " + std::to_string(m.export_errors));
  if (m.export_queue_full != 0)
    h.problems.push_back("export queue full: " + std::to_string(m.export_queue_full) +
                         " events refused");
  if (m.gaps != 0)
    h.problems.push_back("gaps: " + std::to_string(m.gaps) + " messages lost in transit");
  if (m.quarantined != 0)
    h.problems.push_back("quarantined: " + std::to_string(m.quarantined) + " messages");
  {
    std::lock_guard lock(impl_->setup);
    for (const auto& e : impl_->imports)
      if (const int s = e.failing.load(std::memory_order_relaxed); s != 0)
        h.problems.push_back("import of " + e.subject + " (stream " + e.jetstream->stream +
                             ", consumer " + e.jetstream->durable +
                             "): fetch failing: " + natsStatus_GetText(static_cast<natsStatus>(s)));
  }
  h.healthy = h.problems.empty();
  return h;
}

}  // namespace tachyon::nats::detail
