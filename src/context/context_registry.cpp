// The context registry (detail/context/context_registry.hpp): the thread-local registry of a
// thread's contexts, the late contexts of a thread whose registry is gone, and acquisition.
#include <tachyon/detail/context/context_registry.hpp>

#include <pthread.h>

#include <optional>
#include <stdexcept>
#include <vector>

namespace tachyon::detail {

// tls_last_context is defined in src/worker/drain.cpp (see there).
/// Set once this thread's registry of contexts is destroyed (at thread exit; for the main
/// thread, before static objects are): a bus used after that (a thread_local destructor that
/// publishes, a static bus stopping in its destructor) gets its context from late_context_slow().
constinit thread_local bool tls_registry_gone = false;

namespace {

std::atomic<std::uint64_t> next_registry_id{1};

/// This thread's contexts, one per bus it has used.
struct tls_registry {
  struct entry {
    std::uint64_t bus_id;
    thread_context* ctx;
    std::weak_ptr<context_anchor> anchor;
  };
  std::vector<entry> entries;

  ~tls_registry() {
    tls_registry_gone = true;
    tls_last_context = {};
    for (auto& e : entries)
      if (auto a = e.anchor.lock()) a->release(*e.ctx);
  }
};
thread_local tls_registry tls_contexts;

/// The contexts a thread acquires after its registry is gone, kept under a pthread key: glibc
/// runs a thread's pthread key destructors after its thread_local destructors (__call_tls_dtors
/// before __nptl_deallocate_tsd in start_thread), so the key's destructor hands them back once
/// the last thread_local destructor that could publish has run. The main thread's are never
/// handed back (exit() runs no key destructors); a process has one main thread.
struct late_context {
  std::uint64_t bus_id;
  thread_context* ctx;
  std::weak_ptr<context_anchor> anchor;
  late_context* next;
};

void release_late_contexts(void* head) noexcept {
  // A key destructor that runs later (another library's) may use a bus again; it then starts
  // a new list, and glibc calls this again for it (up to PTHREAD_DESTRUCTOR_ITERATIONS).
  tls_last_context = {};
  for (auto* e = static_cast<late_context*>(head); e != nullptr;) {
    if (auto a = e->anchor.lock()) a->release(*e->ctx);
    auto* next = e->next;
    delete e;
    e = next;
  }
}

/// The key, made on first use; nullopt if the process has run out of keys (then a late
/// context stays owned by its thread for good, as it would without this list).
const std::optional<pthread_key_t>& late_contexts_key() {
  static const std::optional<pthread_key_t> key = []() -> std::optional<pthread_key_t> {
    pthread_key_t k;
    if (pthread_key_create(&k, release_late_contexts) != 0) return std::nullopt;
    return k;
  }();
  return key;
}

}  // namespace

context_registry::context_registry(std::array<lane, priority_count>& lanes, std::size_t types,
                                   epoch_domain& epochs, hand_back_fn hand_back, void* owner)
    : id_(next_registry_id.fetch_add(1, std::memory_order_relaxed)),
      lanes_(&lanes),
      types_(types),
      epochs_(&epochs),
      anchor_(std::make_shared<context_anchor>()) {
  anchor_->hand_back = hand_back;
  anchor_->owner = owner;
}

context_registry::~context_registry() {
  detach();
  for (auto* c = contexts_.exchange(nullptr); c != nullptr;) {
    auto* next = c->next;
    delete c;
    c = next;
  }
}

void context_registry::detach() noexcept {
  {
    std::lock_guard g(anchor_->m);
    anchor_->hand_back = nullptr;
  }
  if (tls_last_context.bus_id == id_) tls_last_context = {};
}

thread_context* context_registry::find() noexcept {
  if (tls_last_context.bus_id == id_) return tls_last_context.ctx;
  if (!tls_registry_gone) {
    for (auto& e : tls_contexts.entries)
      if (e.bus_id == id_) return e.ctx;
    return nullptr;
  }
  const auto& key = late_contexts_key();
  if (!key) return nullptr;
  for (auto* e = static_cast<late_context*>(pthread_getspecific(*key)); e != nullptr; e = e->next)
    if (e->bus_id == id_) return e->ctx;
  return nullptr;
}

thread_context& context_registry::context_slow() {
  if (thread_context* known = find()) {
    tls_last_context = {id_, known};
    return *known;
  }
  if (tls_registry_gone) [[unlikely]]
    return late_context_slow();
  auto& entries = tls_contexts.entries;
  std::erase_if(entries, [](const auto& e) { return e.anchor.expired(); });
  thread_context* ctx = acquire_context();
  entries.push_back({id_, ctx, anchor_});
  tls_last_context = {id_, ctx};
  return *ctx;
}

thread_context& context_registry::late_context_slow() {
  const auto& key = late_contexts_key();
  if (!key) return *acquire_context();  // stays owned: nobody would hand it back
  auto* head = static_cast<late_context*>(pthread_getspecific(*key));  // find() had no match
  auto entry = std::make_unique<late_context>(late_context{id_, nullptr, anchor_, head});
  if (pthread_setspecific(*key, entry.get()) != 0) return *acquire_context();  // as above
  thread_context* ctx;
  try {
    ctx = acquire_context();
  } catch (...) {
    pthread_setspecific(*key, head);
    throw;
  }
  entry->ctx = ctx;
  entry.release();
  tls_last_context = {id_, ctx};
  return *ctx;
}

thread_context* context_registry::acquire_context() {
  for (auto* c = contexts_.load(std::memory_order_acquire); c != nullptr; c = c->next) {
    bool expected = false;
    // The relaxed load is a filter; the CAS decides. Its acquire pairs with release()'s store of
    // false: the previous owner's plain state (sequence, spare nodes, journal writer) and its
    // last counts and credits are ours before we touch them. Its release half is not needed.
    if (!c->owned.load(std::memory_order_relaxed) &&
        c->owned.compare_exchange_strong(expected, true, std::memory_order_acq_rel))
      return c;
  }
  const std::uint32_t id = next_context_id_.fetch_add(1, std::memory_order_relaxed);  // distinct
  if (id > 0xffff)
    throw std::length_error(
        "tachyon: more than 65535 threads hold a context of this bus at once; a thread's "
        "context is handed back for reuse when the thread ends");
  auto* c = new thread_context(id, *lanes_, types_);
  epochs_->add_reader(c->reader);
  // Release: the context is whole (tokens, rows, reader) for whoever finds it in the list
  // (first(), the loop above), and so are those pushed before it (the release sequence).
  c->next = contexts_.load(std::memory_order_relaxed);
  while (!contexts_.compare_exchange_weak(c->next, c, std::memory_order_release,
                                          std::memory_order_relaxed)) {
  }
  return c;
}

}  // namespace tachyon::detail
