// The waiter table (detail/subscription/waiters.hpp): the striped maps and deadline heaps of
// the calls that wait, the timeout thread, and the blocking waits.
#include <tachyon/detail/subscription/waiters.hpp>

#if defined(__linux__)
#include <pthread.h>
#include <sys/prctl.h>
#endif

#include <algorithm>
#include <limits>

namespace tachyon::detail {

namespace {

std::chrono::steady_clock::time_point time_point_of(std::uint64_t ns) noexcept {
  using tp = std::chrono::steady_clock::time_point;
  if (ns >= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return tp::max();
  return tp(std::chrono::duration_cast<tp::duration>(
      std::chrono::nanoseconds(static_cast<std::int64_t>(ns))));
}

/// Earlier deadline first; among equal deadlines, the earlier request.
bool earlier(const waiter_entry* a, const waiter_entry* b) noexcept {
  return a->deadline_ns != b->deadline_ns ? a->deadline_ns < b->deadline_ns : a->id < b->id;
}

constexpr std::size_t initial_buckets = 16;

}  // namespace

std::uint64_t deadline_ns_after(std::chrono::nanoseconds timeout) noexcept {
  const std::uint64_t now = steady_ns();
  if (timeout <= std::chrono::nanoseconds::zero()) return now;
  const auto t = static_cast<std::uint64_t>(timeout.count());
  return t >= UINT64_MAX - now ? UINT64_MAX : now + t;
}

// ---- the table -------------------------------------------------------------------------------

waiter_table::waiter_table(std::size_t types,
                           const std::function<void(const handler_error&)>* on_error)
    : hubs_(new std::atomic<subscription_state*>[types]), types_(types), on_error_(on_error) {
  for (std::size_t i = 0; i < types; ++i) hubs_[i].store(nullptr, std::memory_order_relaxed);
  for (auto& s : stripes_) s.buckets.assign(initial_buckets, nullptr);
}

waiter_table::~waiter_table() {
  shutdown();
  // The handles' references to the replies subscriptions; the handler tables hold theirs
  // until the bus frees them.
  for (std::size_t i = 0; i < types_; ++i)
    if (subscription_state* s = hubs_[i].load(std::memory_order_relaxed)) s->release();
}

bool waiter_table::insert(waiter_entry& e, bool counted) {
  stripe& s = stripe_of(e.id);
  std::lock_guard lock(s.mutex);
  if (closed_.load(std::memory_order_relaxed)) return false;  // set before close() locks
  // Room first, so that a failed allocation leaves nothing half done.
  if (e.what == waiter_entry::kind::async) s.heap.reserve(s.async_entries + 1);
  if (s.entries + 1 > s.buckets.size()) {
    std::vector<waiter_entry*> grown(s.buckets.size() * 2, nullptr);
    const std::size_t mask = grown.size() - 1;
    for (waiter_entry* head : s.buckets) {
      while (head != nullptr) {
        waiter_entry* next = head->next;
        waiter_entry*& slot = grown[(head->id / stripe_count) & mask];
        head->next = slot;
        slot = head;
        head = next;
      }
    }
    s.buckets.swap(grown);
  }
  waiter_entry*& slot = s.buckets[bucket_of(s, e.id)];
  e.next = slot;
  slot = &e;
  e.in_table = true;
  if (e.what == waiter_entry::kind::async) ++s.async_entries;
  ++s.entries;
  if (counted) {
    e.counted = true;
    // Under the stripe's mutex, so a load and a store make the add; release: see pending().
    s.count.store(s.count.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }
  return true;
}

void waiter_table::count_in(waiter_entry& e) noexcept {
  stripe& s = stripe_of(e.id);
  std::lock_guard lock(s.mutex);
  if (!e.in_table || e.counted) return;
  e.counted = true;
  s.count.store(s.count.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

void waiter_table::unlink(stripe& s, waiter_entry& e) noexcept {
  for (waiter_entry** p = &s.buckets[bucket_of(s, e.id)]; *p != nullptr; p = &(*p)->next) {
    if (*p == &e) {
      *p = e.next;
      break;
    }
  }
  e.next = nullptr;
  if (e.heap_index != UINT32_MAX) heap_erase(s, e);
  if (e.what == waiter_entry::kind::async) --s.async_entries;
  e.in_table = false;
  e.taken.store(true, std::memory_order_relaxed);
  --s.entries;
  if (e.counted)
    s.count.store(s.count.load(std::memory_order_relaxed) - 1, std::memory_order_release);
}

bool waiter_table::take(waiter_entry& e) noexcept {
  stripe& s = stripe_of(e.id);
  std::lock_guard lock(s.mutex);
  if (!e.in_table) return false;
  unlink(s, e);
  return true;
}

waiter_entry* waiter_table::take_reply(std::uint64_t id, std::uint16_t type) noexcept {
  stripe& s = stripe_of(id);
  std::lock_guard lock(s.mutex);
  for (waiter_entry* e = s.buckets[bucket_of(s, id)]; e != nullptr; e = e->next) {
    if (e->id != id) continue;
    // A wait_for() entry, or a request for another reply type that happens to carry the
    // same id (an event that inherited the request's correlation): not this reply's.
    if (e->type != type || e->what == waiter_entry::kind::wait) return nullptr;
    unlink(s, *e);
    return e;
  }
  return nullptr;
}

void waiter_table::arm(waiter_entry& e) noexcept {
  stripe& s = stripe_of(e.id);
  const std::uint64_t due = e.deadline_ns;
  bool closed;
  {
    std::lock_guard lock(s.mutex);
    if (!e.in_table) return;  // a reply already took it
    closed = closed_.load(std::memory_order_relaxed);
    if (closed) {
      unlink(s, e);
    } else {
      e.armed = true;
      heap_push(s, e);  // never allocates: insert() reserved the room
    }
  }
  if (closed) {  // close() ran while the publish was under way: nothing will answer now
    finish_none(&e);
    return;
  }
  // After the unlock the entry may already be gone (its timeout, a reply): only `due` is
  // read. The timeout thread either scans this stripe after our unlock (and sees the entry),
  // or published the deadline it sleeps until after its scan; 0 means it is scanning.
  if (due > reaper_last_due_.load(std::memory_order_relaxed))
    reaper_last_due_.store(due, std::memory_order_relaxed);
  // The stripe's mutex orders the scan against our push; seq_cst is more than this needs.
  // reaper_last_due_ is a hint (a lost maximum costs a wake-up at most): relaxed.
  const std::uint64_t sleeping_until = reaper_next_.load(std::memory_order_seq_cst);
  if (sleeping_until == 0 || due < sleeping_until) reaper_wake_.notify_one();
}

void waiter_table::finish_none(waiter_entry* list) noexcept {
  while (list != nullptr) {
    waiter_entry* e = list;
    list = e->next;                   // read first: finishing may free it
    e->complete(*this, *e, nullptr);  // with no reply it does not throw
  }
}

void waiter_table::close() noexcept {
  // Before each stripe's lock: insert() and arm() read it under that lock, which orders them
  // (seq_cst is more than that needs).
  closed_.store(true, std::memory_order_seq_cst);
  waiter_entry* taken = nullptr;
  for (auto& s : stripes_) {
    std::lock_guard lock(s.mutex);
    for (waiter_entry*& head : s.buckets) {
      waiter_entry** p = &head;
      while (*p != nullptr) {
        waiter_entry* e = *p;
        if (e->what == waiter_entry::kind::async && !e->armed) {  // its requester's, in arm()
          p = &e->next;
          continue;
        }
        unlink(s, *e);  // removes *p: p now holds the next entry
        e->next = taken;
        taken = e;
      }
    }
  }
  finish_none(taken);
}

void waiter_table::shutdown() noexcept {
  close();
  std::lock_guard lock(reaper_mutex_);
  if (!reaper_.joinable()) return;
  reaper_exit_.store(true, std::memory_order_seq_cst);  // the wait_point's condition, seq_cst
  reaper_wake_.notify_all();
  // Not from on_reply(nullptr) on the timeout thread itself (the bus must not be destroyed
  // there): the join would throw resource_deadlock_would_occur, and this is noexcept.
  reaper_.join();
}

std::size_t waiter_table::pending() const noexcept {
  std::size_t n = 0;
  // Acquire, paired with each count's release: a caller that sees a wait_for() counted sees its
  // subscription, so the events it publishes next reach it (bus::waiting()).
  for (const auto& s : stripes_) n += s.count.load(std::memory_order_acquire);
  return n;
}

void waiter_table::report(const handler_error& error, subscription_state* hub) noexcept {
  hub->errors.fetch_add(1, std::memory_order_relaxed);
  if (on_error_ != nullptr && *on_error_) {
    try {
      (*on_error_)(error);
    } catch (...) {  // the hook must not throw; nothing else may suffer for it
    }
  }
}

// ---- deadline heaps ----------------------------------------------------------------------------

void waiter_table::heap_push(stripe& s, waiter_entry& e) noexcept {
  e.heap_index = static_cast<std::uint32_t>(s.heap.size());
  s.heap.push_back(&e);  // within the reserved capacity
  sift_up(s, e.heap_index);
}

void waiter_table::heap_erase(stripe& s, waiter_entry& e) noexcept {
  const std::size_t i = e.heap_index;
  const std::size_t last = s.heap.size() - 1;
  e.heap_index = UINT32_MAX;
  if (i != last) {
    s.heap[i] = s.heap[last];
    s.heap[i]->heap_index = static_cast<std::uint32_t>(i);
  }
  s.heap.pop_back();
  if (i >= s.heap.size()) return;
  if (i > 0 && earlier(s.heap[i], s.heap[(i - 1) / 2]))
    sift_up(s, i);
  else
    sift_down(s, i);
}

void waiter_table::sift_up(stripe& s, std::size_t i) noexcept {
  auto& h = s.heap;
  while (i > 0) {
    const std::size_t parent = (i - 1) / 2;
    if (!earlier(h[i], h[parent])) return;
    std::swap(h[i], h[parent]);
    h[i]->heap_index = static_cast<std::uint32_t>(i);
    h[parent]->heap_index = static_cast<std::uint32_t>(parent);
    i = parent;
  }
}

void waiter_table::sift_down(stripe& s, std::size_t i) noexcept {
  auto& h = s.heap;
  for (;;) {
    std::size_t best = i;
    const std::size_t l = 2 * i + 1, r = l + 1;
    if (l < h.size() && earlier(h[l], h[best])) best = l;
    if (r < h.size() && earlier(h[r], h[best])) best = r;
    if (best == i) return;
    std::swap(h[i], h[best]);
    h[i]->heap_index = static_cast<std::uint32_t>(i);
    h[best]->heap_index = static_cast<std::uint32_t>(best);
    i = best;
  }
}

// ---- the timeout thread ------------------------------------------------------------------------

void waiter_table::start_reaper_slow() {
  std::lock_guard lock(reaper_mutex_);
  if (reaper_.joinable() || reaper_exit_.load(std::memory_order_relaxed)) return;
  reaper_ = std::thread([this] { reaper_main(); });
  reaper_started_.store(true, std::memory_order_release);  // see start_reaper()
}

void waiter_table::reaper_main() {
#if defined(__linux__)
  // Its sleeps end at a request's deadline: wake on time, not up to 50 us of slack later.
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  pthread_setname_np(pthread_self(), "tachyon-timeout");
#endif
  for (;;) {
    const auto key = reaper_wake_.prepare_wait();
    // 0 while scanning: an arm() that lands meanwhile wakes us (its entry may be in a stripe
    // already scanned).
    reaper_next_.store(0, std::memory_order_seq_cst);
    if (reaper_exit_.load(std::memory_order_seq_cst)) {
      reaper_wake_.cancel_wait();
      return;
    }
    const std::uint64_t now = steady_ns();
    std::uint64_t next = UINT64_MAX;
    // Each stripe's heap gives its due entries earliest first; the runs are merged so that
    // timeouts that fall due together (a late wake-up) still run in deadline order.
    std::array<waiter_entry*, stripe_count> runs{};
    bool any = false;
    for (std::size_t i = 0; i < stripe_count; ++i) {
      stripe& s = stripes_[i];
      waiter_entry** tail = &runs[i];
      std::lock_guard lock(s.mutex);
      while (!s.heap.empty() && s.heap.front()->deadline_ns <= now) {
        waiter_entry* e = s.heap.front();
        unlink(s, *e);  // leaves e->next null
        *tail = e;
        tail = &e->next;
        any = true;
      }
      if (!s.heap.empty()) next = std::min(next, s.heap.front()->deadline_ns);
    }
    if (any) {
      reaper_wake_.cancel_wait();
      waiter_entry* due = nullptr;
      waiter_entry** tail = &due;
      for (;;) {
        waiter_entry** first = nullptr;
        for (auto& run : runs)
          if (run != nullptr && (first == nullptr || earlier(run, *first))) first = &run;
        if (first == nullptr) break;
        waiter_entry* e = *first;
        *first = e->next;
        e->next = nullptr;
        *tail = e;
        tail = &e->next;
      }
      finish_none(due);
      continue;
    }
    if (next == UINT64_MAX) {
      // Nothing armed: the requests that woke us were answered meanwhile. Sleeping for good
      // would make the next arm() wake us again (a futex wake on the requester's path, about
      // once per request when replies are quick); sleeping until the latest deadline armed so
      // far lets a stream of requests with similar timeouts arm without waking us, and costs
      // one spare wake-up per timeout while it flows. Any sooner deadline still wakes us.
      const std::uint64_t last = reaper_last_due_.load(std::memory_order_relaxed);
      if (last > now) next = last;
    }
    reaper_next_.store(next, std::memory_order_seq_cst);
    reaper_wake_.wait(key, time_point_of(next));
  }
}

// ---- blocking waits ----------------------------------------------------------------------------

bool waiter_table::await(const std::atomic<std::uint32_t>& flag, std::uint64_t id,
                         std::uint64_t deadline_ns, std::chrono::nanoseconds spin) noexcept {
  if (flag.load(std::memory_order_acquire) != 0) return true;
  const std::uint64_t spin_until =
      std::min(deadline_ns, deadline_ns_after(std::max(spin, std::chrono::nanoseconds::zero())));
  for (unsigned i = 0;; ++i) {
    if (flag.load(std::memory_order_acquire) != 0) return true;
    if ((i & 63) == 0 && steady_ns() >= spin_until) break;
    cpu_relax();
  }
  wait_point& wp = wakes_[id % stripe_count].point;
  const auto until = time_point_of(deadline_ns);
  for (;;) {
    const auto key = wp.prepare_wait();
    // seq_cst: the wait_point's check of the condition, against signal()'s store.
    if (flag.load(std::memory_order_seq_cst) != 0) {
      wp.cancel_wait();
      return true;
    }
    // Others' signals on this stripe wake us too: look again.
    if (!wp.wait(key, until)) return flag.load(std::memory_order_acquire) != 0;
  }
}

// ---- the bus's holder --------------------------------------------------------------------------

waiter_home::~waiter_home() { delete table_.load(std::memory_order_acquire); }

waiter_table& waiter_home::make(std::size_t types,
                                const std::function<void(const handler_error&)>* on_error) {
  std::lock_guard lock(mutex_);
  if (waiter_table* t = table_.load(std::memory_order_acquire)) return *t;
  auto t = std::make_unique<waiter_table>(types, on_error);
  if (closed_) t->close();
  table_.store(t.get(), std::memory_order_release);
  return *t.release();
}

void waiter_home::close() noexcept {
  waiter_table* t;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    t = table_.load(std::memory_order_acquire);
  }
  if (t != nullptr) t->close();
}

void waiter_home::shutdown() noexcept {
  close();
  if (waiter_table* t = table_.load(std::memory_order_acquire)) t->shutdown();
}

}  // namespace tachyon::detail
