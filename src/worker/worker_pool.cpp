// The worker threads (detail/worker/worker_pool.hpp): start, name, pin, join.
#include <tachyon/detail/worker/worker_pool.hpp>

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <latch>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

namespace tachyon::detail {

void worker_pool::start(const config& cfg, std::function<void(std::uint32_t)> body) {
  if (cfg.workers == 0) return;
  struct start_state {
    explicit start_state(std::ptrdiff_t n) : ready(n) {}
    std::latch ready;
    std::atomic<int> go{0};  // 1: run, 2: give up
    std::mutex m;
    std::string error;
  };
  auto st = std::make_shared<start_state>(cfg.workers);
  auto abandon = [&] {
    st->go.store(2);
    st->go.notify_all();
    join();
  };
  threads_.reserve(cfg.workers);
  try {
    for (std::uint32_t i = 0; i < cfg.workers; ++i) {
      threads_.emplace_back([&cfg, body, i, st] {
        char name[16];
        std::snprintf(name, sizeof(name), "tachyon-w%u", i);
        pthread_setname_np(pthread_self(), name);  // perf, gdb and top show it
        if (!cfg.cpus.empty()) {
          const int cpu = cfg.cpus[i % cfg.cpus.size()];
          cpu_set_t set;
          CPU_ZERO(&set);
          CPU_SET(cpu, &set);
          if (const int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set); rc != 0) {
            std::lock_guard g(st->m);
            if (st->error.empty())
              st->error = std::string("tachyon: could not pin worker ") + name + " to cpu " +
                          std::to_string(cpu) + ": " + std::strerror(rc);
          }
        }
        st->ready.count_down();
        st->go.wait(0);
        if (st->go.load() == 1) body(i);
      });
    }
  } catch (...) {  // a thread could not be created
    abandon();
    throw;
  }
  st->ready.wait();
  if (!st->error.empty()) {
    abandon();
    throw std::runtime_error(st->error);
  }
  st->go.store(1);
  st->go.notify_all();
}

void worker_pool::join() noexcept {
  for (auto& t : threads_) t.join();
  threads_.clear();
}

}  // namespace tachyon::detail
