// Validation of tachyon::config: every refusal names the field, the value and what is allowed.
#include <unistd.h>

#include <stdexcept>
#include <string>

#include <tachyon/config.hpp>
#include <tachyon/detail/lane/lane.hpp>  // reserved_bytes
#include <tachyon/resilience.hpp>

namespace tachyon {

namespace {

[[noreturn]] void refuse(const char* field, const std::string& value, const std::string& allowed) {
  throw std::invalid_argument(std::string("tachyon::config.") + field + " = " + value +
                              " is invalid: " + allowed);
}

template <class Int>
void check_range(const char* field, Int v, Int lo, Int hi) {
  if (v < lo || v > hi)
    refuse(field, std::to_string(v), "allowed " + std::to_string(lo) + " .. " + std::to_string(hi));
}

std::string ns_string(std::chrono::nanoseconds d) { return std::to_string(d.count()) + " ns"; }

}  // namespace

void validate(const config& cfg) {
  check_range<std::uint32_t>("workers", cfg.workers, 0, 256);
  check_range<std::uint32_t>("lane_capacity", cfg.lane_capacity, 1, 1u << 24);
  check_range<std::uint32_t>("batch", cfg.batch, 1, 4096);
  check_range<std::uint32_t>("producers", cfg.producers, 1, 1024);
  check_range<std::uint32_t>("reentry_capacity", cfg.reentry_capacity, 1, 1u << 24);
  check_range<std::uint32_t>("timer_capacity", cfg.timer_capacity, 1, 1u << 24);
  check_range<std::uint32_t>("dead_letter_capacity", cfg.dead_letter_capacity, 0, 1u << 24);
  check_range<std::uint32_t>("key_strands", cfg.key_strands, 1, 1u << 16);
  if (cfg.stall_threshold < std::chrono::milliseconds(1) ||
      cfg.stall_threshold > std::chrono::hours(1))
    refuse("stall_threshold", ns_string(cfg.stall_threshold), "allowed 1 ms .. 1 hour");
  if (!(cfg.fill_warning >= 0.0 && cfg.fill_warning <= 1.0))
    refuse("fill_warning", std::to_string(cfg.fill_warning), "allowed 0 .. 1");

  if (static_cast<unsigned>(cfg.wait) > static_cast<unsigned>(wait_strategy::spin_then_park))
    refuse("wait", std::to_string(static_cast<unsigned>(cfg.wait)),
           "allowed busy_spin (0), yield (1), spin_then_park (2)");
  if (static_cast<unsigned>(cfg.overflow) > static_cast<unsigned>(overflow::drop_oldest))
    refuse("overflow", std::to_string(static_cast<unsigned>(cfg.overflow)),
           "allowed block (0), fail (1), drop (2), drop_oldest (3)");

  if (cfg.spin_before_park < std::chrono::nanoseconds::zero() ||
      cfg.spin_before_park > std::chrono::seconds(1))
    refuse("spin_before_park", ns_string(cfg.spin_before_park), "allowed 0 .. 1 s");
  if (cfg.block_timeout < std::chrono::nanoseconds::zero() ||
      cfg.block_timeout > std::chrono::hours(1))
    refuse("block_timeout", ns_string(cfg.block_timeout), "allowed 0 (no deadline) .. 1 hour");

  if (cfg.workers == 0 && cfg.overflow == overflow::block &&
      cfg.block_timeout == std::chrono::nanoseconds::zero())
    refuse("overflow", "block",
           "with workers = 0 (manual mode) and no block_timeout nothing would make room for a "
           "publisher waiting on a full lane; set a block_timeout, or use fail or drop");

  // After the ranges above, which keep this product far from overflowing.
  if (const std::uint64_t bytes = detail::reserved_bytes(cfg); bytes > cfg.max_reserved_bytes)
    refuse("lane_capacity x (producers + workers)",
           std::to_string(cfg.lane_capacity) + " x (" + std::to_string(cfg.producers) + " + " +
               std::to_string(cfg.workers) + ")",
           "the four lanes would reserve " + std::to_string(bytes) +
               " bytes up front, above max_reserved_bytes = " +
               std::to_string(cfg.max_reserved_bytes) +
               "; lower lane_capacity, producers or workers, or raise max_reserved_bytes");

  if (!cfg.journal.directory.empty()) {
    const std::size_t seg = cfg.journal.segment_bytes;
    if (seg < (std::size_t{64} << 10) || seg > (std::size_t{1} << 30) || seg % 4096 != 0)
      refuse("journal.segment_bytes", std::to_string(seg),
             "allowed 65536 (64 KiB) .. 1073741824 (1 GiB), a multiple of 4096");
    if (static_cast<unsigned>(cfg.journal.durability) >
        static_cast<unsigned>(durability::every_event))
      refuse("journal.durability", std::to_string(static_cast<unsigned>(cfg.journal.durability)),
             "allowed process (0), interval (1), every_event (2)");
    if (cfg.journal.sync_interval < std::chrono::milliseconds(1) ||
        cfg.journal.sync_interval > std::chrono::hours(1))
      refuse("journal.sync_interval", std::to_string(cfg.journal.sync_interval.count()) + " ms",
             "allowed 1 ms .. 1 hour");
  }

  if (cfg.workers != 0 && !cfg.cpus.empty()) {  // manual mode pins nothing: cpus is ignored
    // The machine's CPUs, not the calling thread's affinity: a bus may be built on a thread
    // pinned elsewhere. A CPU the machine has but a cpuset forbids is refused when the worker
    // pins itself (bus construction then throws std::runtime_error with the OS's reason).
    const long configured = sysconf(_SC_NPROCESSORS_CONF);
    const int cpu_count = configured > 0 ? static_cast<int>(configured) : 1;
    for (std::size_t i = 0; i < cfg.cpus.size(); ++i) {
      const int c = cfg.cpus[i];
      if (c < 0 || c >= cpu_count)
        refuse(("cpus[" + std::to_string(i) + "]").c_str(), std::to_string(c),
               "this machine has CPUs 0 .. " + std::to_string(cpu_count - 1));
    }
  }
}

namespace detail {

void validate_policies(const retry_policy& r, const breaker_policy& b) {
  auto no = [](const char* field, const std::string& value, const std::string& allowed) {
    throw std::invalid_argument(std::string("tachyon::subscribe_options.") + field + " = " + value +
                                " is invalid: " + allowed);
  };
  if (r.max_attempts < 1 || r.max_attempts > 255)
    no("retry.max_attempts", std::to_string(r.max_attempts), "allowed 1 (no retry) .. 255");
  if (r.initial_delay < std::chrono::nanoseconds::zero() || r.initial_delay > std::chrono::hours(1))
    no("retry.initial_delay", ns_string(r.initial_delay), "allowed 0 .. 1 hour");
  if (r.max_delay < r.initial_delay || r.max_delay > std::chrono::hours(1))
    no("retry.max_delay", ns_string(r.max_delay), "allowed retry.initial_delay .. 1 hour");
  if (!(r.multiplier >= 1.0 && r.multiplier <= 1000.0))
    no("retry.multiplier", std::to_string(r.multiplier), "allowed 1 .. 1000");
  if (!(r.jitter >= 0.0 && r.jitter <= 1.0))
    no("retry.jitter", std::to_string(r.jitter), "allowed 0 (none) .. 1");
  if (b.failure_threshold > 1023)
    no("breaker.failure_threshold", std::to_string(b.failure_threshold),
       "allowed 0 (no breaker) .. 1023");
  if (b.failure_threshold != 0 &&
      (b.open_for < std::chrono::microseconds(1) || b.open_for > std::chrono::hours(1)))
    no("breaker.open_for", ns_string(b.open_for), "allowed 1 us .. 1 hour");
  if (static_cast<unsigned>(b.action) > static_cast<unsigned>(when_open::skip))
    no("breaker.action", std::to_string(static_cast<unsigned>(b.action)),
       "allowed dead_letter (0), skip (1)");
}

}  // namespace detail

}  // namespace tachyon
