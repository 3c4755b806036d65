// tachyon/detail/worker/worker_pool.hpp — the bus's worker threads: started together, named
// tachyon-w<i>, pinned (config::cpus), their config::on_worker_start called, and released to
// run only once every one is pinned and started, so a failed pin or a throwing start hook
// leaves nothing running. What each worker runs (the drain loop, idling, parking) is the bus's:
// bus_core::worker_main, src/worker/drain.cpp, which calls config::on_worker_stop when its loop
// ends (worker_stopping below).
#pragma once

#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include <tachyon/config.hpp>

namespace tachyon::detail {

class worker_pool {
 public:
  worker_pool() = default;
  ~worker_pool() { join(); }
  worker_pool(const worker_pool&) = delete;
  worker_pool& operator=(const worker_pool&) = delete;

  /// Starts cfg.workers threads, each running body(i) once all have started, been pinned and
  /// returned from cfg.on_worker_start(i) (called on the worker, after naming and pinning; not
  /// for a worker whose pin failed). Throws (after joining what started) if one cannot be
  /// created (std::system_error), pinned (std::runtime_error naming the worker and the cpu) or
  /// started (std::runtime_error naming the worker, with on_worker_start's exception nested);
  /// nothing is left running then, and each worker whose on_worker_start returned has had its
  /// on_worker_stop. body(i) must call worker_stopping(cfg, i) when it ends.
  void start(const config& cfg, std::function<void(std::uint32_t)> body);
  /// Joins every worker (they return once the bus is stopping). Idempotent.
  void join() noexcept;

 private:
  std::vector<std::thread> threads_;
};

/// A worker whose on_worker_start returned is ending: calls cfg.on_worker_stop(index) on it, if
/// set, swallowing what it throws (a stop may run in a destructor; the worker must still exit).
void worker_stopping(const config& cfg, std::uint32_t index) noexcept;

}  // namespace tachyon::detail
