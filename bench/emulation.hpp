// Whether a benchmark program runs under emulation, where its figures are the emulator's and not
// the machine's: the aarch64 build (the aarch64-bench preset) runs on an x86-64 host only
// through qemu-user, which translates every instruction and turns each atomic into a host
// sequence of its own. Every program says so loudly at start and marks its JSON ("emulated"),
// so that tools/bench_table.py refuses to report the figures; tools/bench refuses earlier still.
//
// How it is told, from inside the process (uname(2) is no help: qemu-user answers it with the
// guest's machine):
//   1. /proc/sys/kernel/arch (added to Linux late in 2022) is the kernel's own machine;
//      qemu-user rewrites uname and a few /proc/self files, not this one. A kernel of another
//      architecture than this program's code runs it only through a user-mode emulator.
//   2. On older kernels, the layout of /proc/cpuinfo is the kernel's architecture's: an x86
//      kernel writes vendor_id lines, an arm64 kernel CPU implementer lines. QEMU 7.2 passes the
//      host's through; later versions write one of their own for an aarch64 guest, so this
//      fallback can miss them.
//   3. On aarch64, a MIDR_EL1 with implementer 0 ("reserved for software use": no silicon has
//      it) is QEMU's own CPU model (qemu-aarch64's default, -cpu max), under qemu-user or a
//      full-system qemu without KVM alike. A user who picks a real CPU model (QEMU_CPU) evades
//      this one.
// A full-system emulator given a real CPU model is not detected. (A virtual machine under KVM
// is no emulator: the real CPU runs the code.)
// tachyon_hot_paths does not check: it times nothing (perf/callgrind counts its instructions,
// which are the same whoever executes them).
#pragma once

#include <cstdio>
#include <fstream>
#include <string>
#include <utility>

#include "text.hpp"

#if defined(__aarch64__)
#include <sys/auxv.h>
#endif

namespace bench {

/// The architecture this program's code is for, as `uname -m` names it; nullptr for others.
constexpr const char* built_for() {
#if defined(__x86_64__)
  return "x86_64";
#elif defined(__aarch64__)
  return "aarch64";
#else
  return nullptr;
#endif
}

struct emulation_check {
  bool emulated = false;
  std::string why;  ///< when emulated: what showed it
};

namespace detail {

/// The kernel's architecture, read where a user-mode emulator leaves it alone (see the top of
/// this file), and where from; empty when neither source tells.
inline std::pair<std::string, const char*> kernel_machine() {
  std::string line;
  if (std::ifstream arch("/proc/sys/kernel/arch"); std::getline(arch, line) && !line.empty())
    return {line, "/proc/sys/kernel/arch"};
  std::ifstream cpuinfo("/proc/cpuinfo");
  while (std::getline(cpuinfo, line)) {
    if (line.starts_with("vendor_id")) return {"x86_64", "the layout of /proc/cpuinfo"};
    if (line.starts_with("CPU implementer")) return {"aarch64", "the layout of /proc/cpuinfo"};
  }
  return {};
}

inline emulation_check check_emulation() {
  emulation_check c;
  const auto [kernel, source] = kernel_machine();
  if (built_for() != nullptr && !kernel.empty() && kernel != built_for()) {
    c.emulated = true;
    c.why = "the kernel is " + kernel + " (" + source + ") but this program is " + built_for() +
            " code: a user-mode emulator such as qemu-user is translating it";
    return c;
  }
#if defined(__aarch64__) && defined(HWCAP_CPUID)
  // The kernel emulates EL0 reads of the ID registers when it sets HWCAP_CPUID (Linux 4.11+).
  if (getauxval(AT_HWCAP) & HWCAP_CPUID) {
    unsigned long midr = 0;
    asm volatile("mrs %0, midr_el1" : "=r"(midr));
    if (((midr >> 24) & 0xff) == 0) {
      c.emulated = true;
      char hex[32];
      std::snprintf(hex, sizeof hex, "%#lx", midr);
      c.why = std::string("MIDR_EL1 is ") + hex +
              ", implementer 0, which no silicon has: QEMU's own CPU model is executing this "
              "program";
    }
  }
#endif
  return c;
}

}  // namespace detail

/// Whether this process runs under emulation, checked once.
inline const emulation_check& emulation() {
  static const emulation_check c = detail::check_emulation();
  return c;
}

/// Prints a banner on stderr when emulated; returns whether it is. Call it first thing in main.
inline bool warn_if_emulated(const char* program) {
  const emulation_check& e = emulation();
  if (!e.emulated) return false;
  std::fprintf(stderr,
               "\n**************************************************************************\n"
               "%s: RUNNING UNDER EMULATION: %s.\n"
               "Its figures time the emulator, not an %s machine: they are no measurements, and "
               "its JSON says so (\"emulated\": true; tools/bench_table.py refuses it). Run it on "
               "a real %s machine.\n"
               "**************************************************************************\n\n",
               program, e.why.c_str(), built_for(), built_for());
  return true;
}

/// Marks a Google Benchmark run's context (its JSON's "context" object) the same way, as strings:
/// pass benchmark::AddCustomContext (this header does not include Google Benchmark's).
inline void mark_context(void (*add)(const std::string& key, const std::string& value)) {
  add("emulated", emulation().emulated ? "true" : "false");
  if (emulation().emulated) add("emulated_why", emulation().why);
}

/// The fields that mark a program's own JSON: `"emulated":false,` or
/// `"emulated":true,"emulated_why":"...",` (each with its trailing comma).
inline std::string emulation_json_fields() {
  const emulation_check& e = emulation();
  if (!e.emulated) return "\"emulated\":false,";
  return "\"emulated\":true,\"emulated_why\":" + json_string(e.why) + ",";
}

}  // namespace bench
