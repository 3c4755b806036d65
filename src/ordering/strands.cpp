// bus_core's keyed events (detail/ordering/strand.hpp): the strands, the nodes' round trip
// between publishers and the threads that run them, the tokens, a strand's turn in a batch and
// its discard. None of it runs unless an event is published with a key.
#include <tachyon/detail/bus_core.hpp>

#include <algorithm>
#include <array>
#include <new>
#include <thread>
#include <utility>

#include "metrics/latency_set.hpp"

namespace tachyon::detail {

strand* bus_core::make_strands() {
  const std::uint32_t n = cfg_.key_strands;
  auto* all = static_cast<strand*>(allocate(sizeof(strand) * n, alignof(strand)));
  for (std::uint32_t i = 0; i < n; ++i) ::new (&all[i]) strand(this);
  strand* expected = nullptr;
  // Release publishes ours, built above, to strand_for()'s acquire; a failed CAS acquires the
  // winner's. (The success's acquire half is not needed.)
  if (strands_.compare_exchange_strong(expected, all, std::memory_order_acq_rel,
                                       std::memory_order_acquire))
    return all;
  // Another thread's first keyed publish made them first: use those.
  for (std::uint32_t i = 0; i < n; ++i) all[i].~strand();
  deallocate(all);
  return expected;
}

strand& bus_core::strand_for(std::uint64_t key) {
  strand* all = strands_.load(std::memory_order_acquire);
  if (all == nullptr) [[unlikely]]
    all = make_strands();
  return all[strand_index(key, cfg_.key_strands)];
}

strand_node* bus_core::take_node(thread_context& ctx) {
  strand_node* n = ctx.spare_nodes;
  if (n == nullptr) [[unlikely]] {
    // Acquire, paired with give_back_nodes()'s release: the runners' last use of these nodes
    // (and their next_spare links) happen before this thread reuses them.
    n = ctx.returned_nodes.exchange(nullptr, std::memory_order_acquire);
    if (n == nullptr) return new_node(ctx);
  }
  ctx.spare_nodes = n->next_spare;
  return n;
}

void bus_core::keep_node(thread_context& ctx, strand_node* n) noexcept {
  n->next_spare = ctx.spare_nodes;
  ctx.spare_nodes = n;
}

result bus_core::publish_keyed_erased(unsigned l, std::uint16_t type, std::uint64_t correlation,
                                      std::uint64_t key, void* arg,
                                      void (*fill)(void*, envelope&)) {
  thread_context& ctx = context();
  (void)producer_token(ctx, l);        // may allocate: before admitting (the token's enqueue)
  strand& s = strand_for(key);         // may allocate, once per bus
  strand_node* node = take_node(ctx);  // may allocate
  if (const result r = admit_single(ctx, l, type); r != result::ok) {
    keep_node(ctx, node);
    return r;
  }
  stamp(ctx, node->env, l, type, correlation, cfg_.timestamps ? clock::now() : 0);
  try {
    fill(arg, node->env);
  } catch (...) {  // the event's move constructor or the box's allocation threw
    undo_admission(ctx, l, 1);
    keep_node(ctx, node);
    throw;
  }
  if (s.push(node)) enqueue_token(ctx, s, l);
  commit(ctx, type, 1);
  return result::ok;
}

strand_node* bus_core::new_node(thread_context& ctx) {
  void* p = allocate(sizeof(strand_node), alignof(strand_node));
  auto* n = ::new (p) strand_node();
  n->owner = &ctx;
  return n;
}

void bus_core::give_back_nodes(thread_context& ctx, strand_node* const* nodes,
                               std::size_t n) noexcept {
  // One push per run of nodes from the same publisher (a strand's turn often holds many).
  for (std::size_t i = 0; i < n;) {
    thread_context* owner = nodes[i]->owner;
    strand_node* first = nodes[i];
    strand_node* last = first;
    for (++i; i < n && nodes[i]->owner == owner; ++i) {
      last->next_spare = nodes[i];
      last = nodes[i];
    }
    if (owner == &ctx) {  // this thread published them (manual mode, a handler's publish)
      last->next_spare = ctx.spare_nodes;
      ctx.spare_nodes = first;
      continue;
    }
    // A Treiber push; the owner takes the whole list with one exchange, so there is no ABA.
    // Release: this thread is done with the nodes (take_node() acquires); the relaxed loads
    // need none, as the pushes before ours reach the owner through the release sequence.
    strand_node* head = owner->returned_nodes.load(std::memory_order_relaxed);
    do {
      last->next_spare = head;
    } while (!owner->returned_nodes.compare_exchange_weak(head, first, std::memory_order_release,
                                                          std::memory_order_relaxed));
  }
}

void bus_core::enqueue_token(thread_context& ctx, strand& s, unsigned l) noexcept {
  lane& ln = lanes_[l];
  envelope env;
  write_fresh_header(env.header, 0, 0, event_cause{}, 0, strand_type(), static_cast<priority>(l));
  env.header.flags = meta_flags::reentered;  // what the drain's door count looks for
  strand* p = &s;
  std::memcpy(env.payload, &p, sizeof p);
  ln.admission.enter_token();
  // The events behind the token are accepted: it must get in. Within config::producers
  // threads the lane's reservation holds it (a publisher's tokens each stand for an admitted
  // event of its own still in the strand); beyond, the queue grows, as for any publish. Only
  // when even that fails (out of memory) does this wait, yielding, for memory to come back.
  for (;;) {
    try {
      moodycamel::ProducerToken& token = producer_token(ctx, l);
      if (ln.queue.try_enqueue(token, env)) break;
      if (ln.queue.enqueue(token, env)) {
        bump(ctx.misc_row().v[m_lane_allocations]);
        break;
      }
    } catch (const std::bad_alloc&) {  // the producer could not be made
    }
    std::this_thread::yield();
  }
  work_.notify_one();
}

void bus_core::dispatch_strand(void*, envelope& env, thread_context& ctx) noexcept {
  strand* s = strand_of(env);
  s->core()->run_strand(ctx, *s, static_cast<unsigned>(env.header.lane));
}

void bus_core::run_strand(thread_context& ctx, strand& s, unsigned l) noexcept {
  // The turn's budget: an even share, among the batch's tokens still to run, of what is left of
  // the batch's config::batch events (its own events and earlier turns count), but at least an
  // eighth of a batch (and one). An even share keeps every strand whose token is in the batch
  // moving and lets none take the batch from the others; a strand with more left goes round
  // again. The floor bounds what the round trips cost: with 64 strands backed up in a lane, a
  // share of 1 sent a token round the lane per event (316 instructions a drained event,
  // perf/callgrind), a share of 8 one per 8 events (145; a plain drained event is 97). What it
  // costs: a batch of k tokens runs at most batch + k x batch / 8 events before the worker
  // looks at the more urgent lanes again (9 batches' worth when a batch is all tokens); a few
  // tokens share one batch. (The batch's deliveries count as tokens: a share is never too big.)
  const std::uint64_t batch_no = ctx.misc_row().v[m_batches].load(std::memory_order_relaxed);
  if (ctx.strand_batch != batch_no) {
    ctx.strand_batch = batch_no;
    ctx.strand_ran = 0;
    ctx.strand_turns = 0;
  }
  const std::uint32_t held = ctx.batch_in_hand.load(std::memory_order_relaxed);
  const std::uint64_t used = batch_size(held) + ctx.strand_ran;
  const std::uint64_t left = used < cfg_.batch ? cfg_.batch - used : 0;
  const std::uint32_t turns_left =
      ctx.batch_reentered > ctx.strand_turns ? ctx.batch_reentered - ctx.strand_turns : 1;
  ++ctx.strand_turns;
  const std::uint64_t floor = std::max(1u, cfg_.batch / 8);
  std::uint64_t budget = std::max<std::uint64_t>(floor, left / turns_left);
  // Never more than were counted: a node pushed and not yet counted stays for the next turn.
  budget = std::min(budget, s.pending());

  constexpr std::size_t chunk = 64;
  strand_node* nodes[chunk];
  std::uint64_t taken = 0;
  while (taken < budget) {
    const std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>(chunk, budget - taken));
    std::size_t k = 0;
    while (k < want) {
      strand_node* f = s.front();
      // Events of another lane wait for the token there: each event runs from its own lane.
      if (f == nullptr || f->env.header.lane != static_cast<priority>(l)) break;
      strand_node* n = s.take();
      if (n == nullptr) break;  // a publisher is between its exchange and its link
      nodes[k++] = n;
    }
    if (k == 0) break;
    run_strand_chunk(ctx, l, held, nodes, k);
    taken += k;
    if (k < want) break;
  }
  ctx.strand_ran += taken;
  if (s.finish(taken)) return;  // idle: the strand is no longer this thread's to touch
  // More is counted: the token goes on, into the lane of the next event (or this one, when the
  // next node is not linked yet; its holder then looks again).
  const strand_node* next = s.front();
  enqueue_token(ctx, s, next != nullptr ? static_cast<unsigned>(next->env.header.lane) : l);
}

void bus_core::run_strand_chunk(thread_context& ctx, unsigned l, std::uint32_t held,
                                strand_node* const* nodes, std::size_t k) noexcept {
  // As take_batch() does for a batch: in hand before out of the lane (a snapshot in between
  // counts them twice, never not at all), then their room goes back.
  ctx.batch_in_hand.store(held + static_cast<std::uint32_t>(k << batch_lane_bits),
                          std::memory_order_release);  // as take_batch()'s
  credit_account& a = ctx.credits[l];
  a.done.store(a.done.load(std::memory_order_relaxed) + k, std::memory_order_release);
  lanes_[l].admission.release(k, 0);
  // The chunk settles apart from the batch around it: its outcomes go into the lane's row here,
  // together with taking it out of hand, as end_batch() does for the batch.
  // The batch's own tally is set aside only when it has one (its tally is all zero otherwise:
  // every entry comes with a batch_failed count).
  const std::uint32_t outer_failed = ctx.batch_failed;
  std::array<std::uint32_t, counter_kinds> outer_tally;
  if (outer_failed != 0) [[unlikely]] {
    outer_tally = std::exchange(ctx.batch_tally, {});
    ctx.batch_failed = 0;
  }
  latency_set* set =
      cfg_.latency_histograms ? ctx.latency.load(std::memory_order_relaxed) : nullptr;
  std::uint64_t start = set != nullptr ? clock::now() : 0;
  for (std::size_t i = 0; i < k; ++i) {
    envelope& env = nodes[i]->env;
    const std::uint16_t t = env.header.type_index;
    const std::uint64_t published = env.header.publish_ticks;
    enter_cause(ctx, env.header);           // what its handlers' publishes inherit, not the token's
    types_.dispatch[t](tables_, env, ctx);  // settles it (and releases or parks its payload)
    if (set != nullptr) {                   // as dispatch_timed() records a batch's events
      if (published != 0)
        if (histogram* h = latency_set::get(set->lane[l]))
          h->record(start > published ? start - published : 0);
      const std::uint64_t end = clock::now();
      if (t < types_.count)
        if (histogram* h = latency_set::get(set->type[t])) h->record(end > start ? end - start : 0);
      start = end;
    }
  }
  counter_row& row = ctx.lane_row(l);
  bump(row.v[c_dispatched], k - ctx.batch_failed);
  if (ctx.batch_failed != 0) [[unlikely]]
    end_batch_tally(ctx, row);  // and zeroes the tally
  if (outer_failed != 0) [[unlikely]] {
    ctx.batch_failed = outer_failed;
    ctx.batch_tally = outer_tally;
  }
  ctx.batch_in_hand.store(held, std::memory_order_release);  // after the outcomes, as end_batch()
  give_back_nodes(ctx, nodes, k);
}

std::size_t bus_core::discard_strand(thread_context& ctx, strand& s, unsigned l) noexcept {
  const std::uint64_t counted = s.pending();
  std::uint64_t taken = 0;
  std::size_t discarded = 0;
  while (taken < counted) {
    strand_node* n = s.take();
    if (n == nullptr) break;  // a publisher is half-way: the token goes back, found again
    ++taken;
    envelope& env = n->env;
    const auto el = static_cast<unsigned>(env.header.lane);
    credit_account& a = ctx.credits[el];
    // Release, as count_out()'s: a reader that sees it sees this thread's earlier counts.
    a.done.store(a.done.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    lanes_[el].admission.release(1, 0);
    const std::uint16_t t = env.header.type_index;
    if (t == delivery_type()) {  // a keyed event with a deadline: one event, never run
      ++discarded;
      discard_delivery(ctx, env);
    } else {
      journal_settled(ctx, env.header, tachyon::outcome::discarded);
      types_.ops[t].release(env);
      ctx.count(el, t, c_discarded);
      ++discarded;
    }
    give_back_nodes(ctx, &n, 1);
  }
  if (!s.finish(taken)) {
    const strand_node* next = s.front();
    enqueue_token(ctx, s, next != nullptr ? static_cast<unsigned>(next->env.header.lane) : l);
  }
  return discarded;
}

}  // namespace tachyon::detail
