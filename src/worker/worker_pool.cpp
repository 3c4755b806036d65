// The worker threads (detail/worker/worker_pool.hpp): start, name, pin, the start and stop hooks
// (config::on_worker_start, on_worker_stop), join.
#include <tachyon/detail/worker/worker_pool.hpp>

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#include <latch>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

namespace tachyon::detail {

namespace {

std::string describe(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "an exception not derived from std::exception";
  }
}

}  // namespace

void worker_pool::start(const config& cfg, std::function<void(std::uint32_t)> body) {
  if (cfg.workers == 0) return;
  struct start_state {
    explicit start_state(std::ptrdiff_t n) : ready(n) {}
    std::latch ready;
    std::atomic<int> go{0};  // 1: run, 2: give up
    std::mutex m;
    std::string error;          // the first failure, pinning or on_worker_start
    std::exception_ptr nested;  // what on_worker_start threw, when that was the first failure
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
        auto fail = [&](std::string what, std::exception_ptr e) {
          std::lock_guard g(st->m);
          if (!st->error.empty()) return;
          st->error = std::move(what);
          st->nested = std::move(e);
        };
        bool pinned = true;
        if (!cfg.cpus.empty()) {
          const int cpu = cfg.cpus[i % cfg.cpus.size()];
          cpu_set_t set;
          CPU_ZERO(&set);
          CPU_SET(cpu, &set);
          if (const int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set); rc != 0) {
            pinned = false;
            fail(std::string("tachyon: could not pin worker ") + name + " to cpu " +
                     std::to_string(cpu) + ": " + std::strerror(rc),
                 nullptr);
          }
        }
        // Before the latch, so that the constructor hears of a throw and nothing runs. A
        // worker whose hook returned owes its on_worker_stop, whether it runs or is abandoned.
        bool started = pinned;
        if (pinned && cfg.on_worker_start) {
          try {
            cfg.on_worker_start(i);
          } catch (...) {
            started = false;
            fail(std::string("tachyon: config::on_worker_start threw on worker ") + name + ": " +
                     describe(std::current_exception()),
                 std::current_exception());
          }
        }
        st->ready.count_down();
        st->go.wait(0);
        if (st->go.load() == 1)
          body(i);  // calls worker_stopping() itself, within what a timed stop() waits for
        else if (started)
          worker_stopping(cfg, i);
      });
    }
  } catch (...) {  // a thread could not be created
    abandon();
    throw;
  }
  st->ready.wait();
  if (!st->error.empty()) {
    abandon();
    if (!st->nested) throw std::runtime_error(st->error);
    try {
      std::rethrow_exception(st->nested);
    } catch (...) {
      std::throw_with_nested(std::runtime_error(st->error));
    }
  }
  st->go.store(1);
  st->go.notify_all();
}

void worker_stopping(const config& cfg, std::uint32_t index) noexcept {
  if (!cfg.on_worker_stop) return;
  try {
    cfg.on_worker_stop(index);
  } catch (...) {  // documented as swallowed: the worker must exit, and stop() may be in a dtor
  }
}

void worker_pool::join() noexcept {
  for (auto& t : threads_) t.join();
  threads_.clear();
}

}  // namespace tachyon::detail
