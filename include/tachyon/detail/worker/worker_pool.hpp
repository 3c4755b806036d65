// tachyon/detail/worker/worker_pool.hpp — the bus's worker threads: started together, named
// tachyon-w<i>, pinned (config::cpus), and released to run only once every one is pinned, so a
// failed pin leaves nothing running. What each worker runs (the drain loop, idling, parking)
// is the bus's: bus_core::worker_main, src/worker/drain.cpp.
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

  /// Starts cfg.workers threads, each running body(i) once all have started and been pinned.
  /// Throws (after joining what started) if one cannot be created (std::system_error) or
  /// pinned (std::runtime_error naming the worker and the cpu); nothing is left running then.
  void start(const config& cfg, std::function<void(std::uint32_t)> body);
  /// Joins every worker (they return once the bus is stopping). Idempotent.
  void join() noexcept;

 private:
  std::vector<std::thread> threads_;
};

}  // namespace tachyon::detail
