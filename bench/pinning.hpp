// Where the benchmarks put their threads: the publisher on the first CPU this process may use,
// the consumer (tachyon's worker, or the peer's consumer thread) on the second.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <vector>

namespace bench {

/// The CPUs this process may run on, read once (before anything pins the calling thread).
inline const std::vector<int>& usable_cpus() {
  static const std::vector<int> cpus = [] {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<int> v;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
      for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set)) v.push_back(c);
    return v;
  }();
  return cpus;
}

inline int producer_cpu() { return usable_cpus().empty() ? -1 : usable_cpus()[0]; }
inline int consumer_cpu() { return usable_cpus().size() < 2 ? -1 : usable_cpus()[1]; }

/// Pins the calling thread to `cpu`; -1 leaves it where it is.
inline void pin_this_thread(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/// Pins the calling thread to `cpu` for one benchmark, then puts its affinity back.
struct pinned_scope {
  cpu_set_t saved;
  explicit pinned_scope(int cpu = producer_cpu()) {
    sched_getaffinity(0, sizeof(saved), &saved);
    pin_this_thread(cpu);
  }
  ~pinned_scope() { pthread_setaffinity_np(pthread_self(), sizeof(saved), &saved); }
  pinned_scope(const pinned_scope&) = delete;
  pinned_scope& operator=(const pinned_scope&) = delete;
};

}  // namespace bench
