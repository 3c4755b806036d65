// tachyon/detail/conflation/conflation.hpp — conflation by key (tachyon::conflate_by<&T::m, Keys>):
// while an event for a key waits in its lane, a newer one with the same key replaces it.
//
// Per conflated type the bus owns a conflation_table: a fixed array of slots, one per (key,
// lane) it has seen, at most Keys of them. A slot holds `latest`, the boxed event its key will
// deliver next, and a lane holds for it at most one envelope, its *token*, which names the slot
// instead of carrying an event. The protocol, for one slot:
//
//   latest   null: no token of the slot is admitted; else the box the slot's one token will
//            deliver. Only a token's drain (or its discard) sets it back to null.
//   publish  latest non-null: CAS it from the box seen to the new one. On success the old box
//            was never seen by a drain (a drain reads only what its exchange takes out): it is
//            freed and counted `conflated`, and the new event is accepted without room in the
//            lane (the queued token will carry it). latest null: take room for a token as any
//            publish does (admission, overflow policy), then exchange(new). Null back: this
//            publish owns the slot's token and enqueues it. Non-null back: another publisher
//            got in first and its token is (or is about to be) queued: the box it installed
//            is conflated, replaced by ours, and our room goes back to the lane.
//   drain    a token: exchange(nullptr) takes the latest box, and the handlers run on it with
//            its meta (the latest event's sequence, correlation id and stamp).
//
// Invariant: latest != null exactly while one token of the slot is admitted and not yet
// opened. So a box left in a slot always has a token on its way to deliver it (no lost
// update); stop(drain), which waits for every admitted envelope, leaves every slot empty; and
// a drain's exchange never finds null.
//
// Memory ordering: a box is written before the release half of the CAS or exchange that puts it
// in the slot; whoever takes it out (a replacing CAS, a drain's or a discard's exchange)
// acquires. All of them are read-modify-writes of `latest`, so every later taker sees the box
// through the release sequence. ABA is harmless: a CAS that succeeds replaces whatever box is in
// the slot at that instant, and the replacer then touches only what it took out.
//
// Keys: a slot's key and lane are written once, under the table's mutex, before its `used` flag
// is released, and never change; lookups are lock-free (acquire on `used`). The mutex is taken
// only the first time a (key, lane) is seen. Once Keys slots are claimed, an event whose key
// has none is not conflated: it is queued as an event of any other type would be, and counted
// in its type's `unconflated` (metrics). Keys are never forgotten.
#pragma once

#include <atomic>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

#include <tachyon/clock.hpp>
#include <tachyon/detail/alloc.hpp>
#include <tachyon/detail/bus_core.hpp>
#include <tachyon/detail/context/thread_context.hpp>
#include <tachyon/detail/lane/admission.hpp>  // cache_line
#include <tachyon/detail/lane/envelope.hpp>
#include <tachyon/detail/metrics/outcomes.hpp>
#include <tachyon/meta.hpp>
#include <tachyon/result.hpp>

namespace tachyon::detail {

/// Bit 7 of meta::flags, tachyon's own: the envelope is a conflation token (its payload names a
/// slot). Never seen by a handler: the drain replaces the token's header by its box's.
inline constexpr std::uint8_t token_flag = 0x80;
static_assert((token_flag & (meta_flags::reentered | meta_flags::replayed | meta_flags::external |
                             meta_flags::redelivered)) == 0,
              "tachyon: the token flag is a bit of meta::flags of its own");

/// The type of a data member pointer's member.
template <class P>
struct member_of {  // not a data member pointer: conflation_table's static_assert says so
  using owner = void;
  using type = void;
};
template <class C, class M>
struct member_of<M C::*> {
  using owner = C;
  using type = M;
};

/// A key conflate_by can use: std::hash<Key> and operator== (and copyable: the table keeps one).
template <class Key>
concept conflation_key = std::equality_comparable<Key> && std::copy_constructible<Key> &&
    requires(const Key& k) {
  { std::hash<Key>{}(k) } -> std::convertible_to<std::size_t>;
};

/// A conflated event and its header, in one allocation. `value` comes first, so that the box's
/// address is the value's: a box opened into an envelope is a boxed payload like any other
/// (payload_of<T>, release_payload<T>: ~T, then deallocate of that address).
template <class T>
struct conflation_box {
  T value;
  meta header;

  template <class E>
  static conflation_box* make(E&& ev) {
    void* mem = allocate(sizeof(conflation_box), alignof(conflation_box));
    try {
      return ::new (mem) conflation_box{T(std::forward<E>(ev)), meta{}};
    } catch (...) {
      deallocate(mem);
      throw;
    }
  }
  static void destroy(conflation_box* b) noexcept {
    b->~conflation_box();
    deallocate(b);
  }
};

/// One (key, lane) of a conflated type. One cache line each (more for a key wider than 48
/// bytes): publishers of different keys CAS different lines.
template <class T, class Key>
struct alignas(cache_line) conflation_slot {
  std::atomic<conflation_box<T>*> latest{nullptr};
  std::atomic<bool> used{false};  // released once key and lane are written; never cleared
  std::uint8_t lane = 0;
  std::optional<Key> key;
};

template <class T, class Option>
class conflation_table {
 public:
  using member_type = typename member_of<std::remove_cv_t<decltype(Option::member)>>::type;
  using key_type = std::remove_cv_t<member_type>;
  using slot = conflation_slot<T, key_type>;
  using box = conflation_box<T>;

  static_assert(std::is_member_object_pointer_v<std::remove_cv_t<decltype(Option::member)>> &&
                    std::is_base_of_v<
                        typename member_of<std::remove_cv_t<decltype(Option::member)>>::owner, T>,
                "tachyon::conflate_by<&T::member, Keys>: the key must be a data member of the "
                "event type T (or of a base of T)");
  static_assert(conflation_key<key_type>,
                "tachyon::conflate_by<&T::member, Keys>: the key member's type must be hashable "
                "by std::hash (specialise std::hash for it), equality comparable (operator==) "
                "and copy-constructible");
  static_assert(Option::keys >= 1 && Option::keys <= (std::size_t{1} << 20),
                "tachyon::conflate_by<&T::member, Keys>: Keys (the most distinct keys tracked) "
                "must be between 1 and 2^20 (the table takes 2 x Keys cache lines, rounded up to "
                "a power of two)");

  /// At most half the slots are claimed, so that a probe for a key not in the table ends
  /// within a few slots.
  static constexpr std::size_t capacity = std::bit_ceil(2 * Option::keys);

  conflation_table() : slots_(new slot[capacity]) {}
  ~conflation_table() {
    // Empty once the bus has stopped (stop() drains or discards every token); freed here all
    // the same, so that a slot never outlives its box. Acquire, as any taker of a box (its
    // installer's release); the bus's teardown orders this after every publish anyway.
    for (std::size_t i = 0; i < capacity; ++i)
      if (box* b = slots_[i].latest.load(std::memory_order_acquire)) box::destroy(b);
  }
  conflation_table(const conflation_table&) = delete;
  conflation_table& operator=(const conflation_table&) = delete;

  static const key_type& key_of(const T& ev) noexcept { return ev.*Option::member; }

  /// The slot of (k, lane), claimed on its first sight; null when Keys slots are claimed and
  /// none is k's. Lock-free but for a first sight (one mutex, once per key and lane).
  slot* find(const key_type& k, unsigned lane) {
    constexpr std::size_t mask = capacity - 1;
    std::size_t i = home(k, lane);
    for (std::size_t n = 0; n < capacity; ++n, i = (i + 1) & mask) {
      slot& s = slots_[i];
      // Acquire, paired with claim()'s release of `used`: the key and lane read below are whole.
      // full_'s acquire, paired with its release in claim(), makes every claim visible to
      // find_claimed().
      if (!s.used.load(std::memory_order_acquire))
        return full_.load(std::memory_order_acquire) ? find_claimed(k, lane, i) : claim(k, lane, i);
      if (s.lane == lane && *s.key == k) return &s;
    }
    return nullptr;  // not reached: at most half the slots are used
  }

  /// Slots claimed so far (exact under no concurrent first sight).
  std::size_t claimed() const {
    std::lock_guard lock(claim_mutex_);
    return claimed_;
  }

 private:
  static std::size_t home(const key_type& k, unsigned lane) noexcept {
    // Fibonacci hashing: std::hash of an integer is the identity in libstdc++, and keys that
    // share their low bits (multiples of a power of two) would otherwise share a home.
    constexpr std::uint64_t phi = 0x9E3779B97F4A7C15ull;
    const std::uint64_t h =
        (static_cast<std::uint64_t>(std::hash<key_type>{}(k)) ^ (std::uint64_t{lane} << 59)) * phi;
    return static_cast<std::size_t>(h >> (64 - std::countr_zero(capacity)));
  }

  /// find() once the table is full, from the unused slot it met at `from`: that slot may have
  /// been claimed (for k, even) after find() looked; full_ is released after the last claim, so
  /// every claim is visible here. Without this second look, an event of k could be queued
  /// unconflated while k's slot holds an older event of the same publisher, and be delivered
  /// after a later one.
  slot* find_claimed(const key_type& k, unsigned lane, std::size_t from) const {
    constexpr std::size_t mask = capacity - 1;
    for (std::size_t i = from;; i = (i + 1) & mask) {
      slot& s = slots_[i];
      if (!s.used.load(std::memory_order_acquire)) return nullptr;  // as in find()
      if (s.lane == lane && *s.key == k) return &s;
    }
  }

  [[gnu::cold, gnu::noinline]] slot* claim(const key_type& k, unsigned lane, std::size_t from) {
    constexpr std::size_t mask = capacity - 1;
    std::lock_guard lock(claim_mutex_);
    // The slots before `from` on k's probe were claimed for other keys and stay so; another
    // thread may have claimed `from` onwards meanwhile (perhaps for k).
    for (std::size_t i = from;; i = (i + 1) & mask) {
      slot& s = slots_[i];
      // Relaxed: every claim is made under claim_mutex_, which orders it before this look.
      if (s.used.load(std::memory_order_relaxed)) {
        if (s.lane == lane && *s.key == k) return &s;
        continue;
      }
      if (claimed_ == Option::keys) return nullptr;
      s.key.emplace(k);
      s.lane = static_cast<std::uint8_t>(lane);
      s.used.store(true, std::memory_order_release);  // publishes key and lane to find()
      // Release: this claim and, through the mutex, every earlier one, to find()'s acquire.
      if (++claimed_ == Option::keys) full_.store(true, std::memory_order_release);
      return &s;
    }
  }

  std::unique_ptr<slot[]> slots_;
  std::atomic<bool> full_{false};  // Keys slots claimed (released after the last claim)
  mutable std::mutex claim_mutex_;
  std::size_t claimed_ = 0;  // guarded by claim_mutex_
};

/// The slot an envelope carrying a token names.
template <class Slot>
Slot* token_slot(const envelope& env) noexcept {
  Slot* s;
  std::memcpy(&s, env.payload, sizeof s);
  return s;
}

/// A drained token becomes the envelope of the slot's latest event: its header, and its value
/// (copied inline, or the box itself as the boxed payload). From here on it is an ordinary
/// envelope of T: its handlers, a retry or a dead letter treat it as any other.
template <class Slot, class T>
void open_token(envelope& env) noexcept {
  using box = conflation_box<T>;
  // Acquire takes the box (its installer's release). The release half publishes nothing: the
  // null left behind is all a later installer reads of ours.
  box* b = token_slot<Slot>(env)->latest.exchange(nullptr, std::memory_order_acq_rel);
  env.header = b->header;
  if constexpr (stored_inline<T>) {
    ::new (static_cast<void*>(env.payload)) T(b->value);
    box::destroy(b);
  } else {
    T* value = &b->value;
    ::new (static_cast<void*>(env.payload)) T*(value);
  }
}

/// stop(discard) took a token: its slot's latest event goes with it (counted discarded, once,
/// by the caller, as any envelope).
template <class Slot, class T>
void discard_token(envelope& env) noexcept {
  // As open_token()'s: the acquire is what freeing the box needs.
  conflation_box<T>::destroy(
      token_slot<Slot>(env)->latest.exchange(nullptr, std::memory_order_acq_rel));
}

/// publish() of an event whose key has a slot. See the header comment for the protocol.
/// Allocates its box (one allocation per conflated publish). Returns what publish() returns;
/// an rvalue `ev` is untouched on full and stopped, but for one race: the slot emptied between
/// the box's construction and its CAS, and then the lane refused the token; `ev` is then given
/// its value back by move assignment if T has one, and is left moved-from if not.
template <class T, class Slot, class E>
result conflate(bus_core& core, Slot& s, E&& ev, unsigned l, std::uint16_t type,
                std::uint64_t correlation) {
  using box = conflation_box<T>;
  thread_context& ctx = core.context();
  const bool timestamps = core.cfg().timestamps;
  box* b = nullptr;
  auto make = [&] {
    b = box::make(std::forward<E>(ev));
    write_fresh_header(b->header, ctx.take_sequence(), correlation, ctx.cause,
                       timestamps ? clock::now() : 0, type, static_cast<priority>(l));
  };
  // Relaxed: cur is only a guess for the CAS below, never read through.
  box* cur = s.latest.load(std::memory_order_relaxed);
  if (cur != nullptr) {
    if (core.stopping()) [[unlikely]] {
      ctx.count(l, type, c_rejected_stopped);
      return result::stopped;
    }
    make();
    do {
      // On success: acquire, as the box taken out is destroyed here; release, as ours is left for
      // a drain or a later replacer to take. On failure relaxed: cur is only compared again.
      if (s.latest.compare_exchange_weak(cur, b, std::memory_order_acq_rel,
                                         std::memory_order_relaxed)) {
        ctx.count(l, type, c_accepted);
        ctx.count(l, type, c_conflated);
        box::destroy(cur);
        return result::ok;
      }
    } while (cur != nullptr);
    // A drain took the slot's box meanwhile: the slot needs a new token.
  }
  bool installed = false;
  const result r = core.publish_token(
      l, type,
      [&](envelope& env) -> bool {
        if (b == nullptr) make();
        env.header = b->header;  // before b is visible: from then on another thread may free it
        env.header.flags = static_cast<std::uint8_t>(env.header.flags | token_flag);
        // Release publishes b (value and header) to its taker; acquire, for a non-null prev,
        // which is freed here.
        box* prev = s.latest.exchange(b, std::memory_order_acq_rel);
        installed = true;
        if (prev == nullptr) {
          Slot* named = &s;
          std::memcpy(env.payload, &named, sizeof named);
          return true;
        }
        ctx.count(l, type, c_accepted);
        ctx.count(l, type, c_conflated);
        box::destroy(prev);
        return false;
      },
      [&]() noexcept {
        // Our token could not be enqueued (out of memory) and no other token names the slot:
        // what it holds (ours, or a newer box that replaced ours and counted ours conflated) is
        // taken out and dropped; ours is accepted either way.
        ctx.count(l, type, c_accepted);
        ctx.count(l, type, c_dropped);
        // Acquire: the box taken out may be another publisher's (its release); freed here.
        box::destroy(s.latest.exchange(nullptr, std::memory_order_acq_rel));
      });
  if (!installed && b != nullptr) [[unlikely]] {
    if constexpr (!std::is_const_v<std::remove_reference_t<E>> && std::is_rvalue_reference_v<E&&> &&
                  std::is_move_assignable_v<T>) {
      if (r != result::dropped) ev = std::move(b->value);
    }
    box::destroy(b);
  }
  return r;
}

/// The conflation tables of a registry's types: a table for each type registered with
/// conflate_by, nothing for the others. Built with the bus.
template <class Registry, class Seq = std::make_index_sequence<Registry::size>>
class conflation_tables;

template <class Registry, std::size_t... I>
class conflation_tables<Registry, std::index_sequence<I...>> {
  template <std::size_t J>
  using type_at = typename Registry::template type_at<J>;
  template <std::size_t J>
  using option_at = typename Registry::template conflation_of<type_at<J>>;
  template <std::size_t J>
  struct none {};  // one type per index: a tuple of them is empty
  template <std::size_t J>
  using holder = std::conditional_t<std::is_void_v<option_at<J>>, none<J>,
                                    std::unique_ptr<conflation_table<type_at<J>, option_at<J>>>>;

 public:
  template <class T>
  using table_of = conflation_table<T, typename Registry::template conflation_of<T>>;

  conflation_tables() { (make<I>(), ...); }

  template <class T>
  table_of<T>& of() noexcept {
    return *std::get<Registry::template index_of<T>()>(tables_);
  }

 private:
  template <std::size_t J>
  void make() {
    if constexpr (!std::is_void_v<option_at<J>>)
      std::get<J>(tables_) = std::make_unique<conflation_table<type_at<J>, option_at<J>>>();
  }

  std::tuple<holder<I>...> tables_;
};

}  // namespace tachyon::detail
