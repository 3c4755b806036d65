// thread_context (detail/context/thread_context.hpp): its counter rows and tokens.
#include <tachyon/detail/context/thread_context.hpp>

#include <tachyon/detail/ordering/strand.hpp>

#include "metrics/latency_set.hpp"

namespace tachyon::detail {

thread_context::thread_context(std::uint32_t id_, std::array<lane, priority_count>& lanes,
                               std::size_t types_)
    : next_sequence(id_), types(types_) {
  const std::size_t n = row_count(types);
  rows = static_cast<counter_row*>(allocate(n * sizeof(counter_row), alignof(counter_row)));
  for (std::size_t i = 0; i < n; ++i) ::new (&rows[i]) counter_row{};
  for (unsigned l = 0; l < priority_count; ++l) consumer[l].emplace(lanes[l].queue);
}

thread_context::~thread_context() {
  const std::size_t n = row_count(types);
  for (std::size_t i = 0; i < n; ++i) rows[i].~counter_row();
  deallocate(rows);
  deallocate(drain_buffer);
  delete latency.load(std::memory_order_relaxed);  // teardown: after every thread's last use
  // Every keyed event has run or been discarded by now (the bus stopped), so every node of this
  // thread is in one of its two lists. Acquire, as take_node()'s: the runners' last use of
  // the returned nodes and their links.
  for (strand_node* list : {spare_nodes, returned_nodes.load(std::memory_order_acquire)}) {
    while (list != nullptr) {
      strand_node* node = list;
      list = node->next_spare;
      node->~strand_node();
      deallocate(node);
    }
  }
}

}  // namespace tachyon::detail
