// How a test starts one of this build's own programs (a helper binary, the test binary itself,
// a README snippet, tachyon-journal) as a child process.
//
// In a cross build (the aarch64 preset) those programs are foreign binaries that the kernel
// will not exec by itself, so the command goes through the emulator that ctest runs the tests
// with (CMAKE_CROSSCOMPILING_EMULATOR, compiled in as TACHYON_TEST_EMULATOR). Host programs
// (nats-server, python3, /bin/sh) are started as they are.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace tachyon::test {

/// True when this build's programs run under an emulator (qemu-user).
inline constexpr bool emulated =
#if defined(TACHYON_TEST_EMULATOR)
    true;
#else
    false;
#endif

/// argv for one of this build's programs: the emulator first, when there is one.
inline std::vector<std::string> own_program(std::vector<std::string> argv) {
#if defined(TACHYON_TEST_EMULATOR)
  argv.insert(argv.begin(), TACHYON_TEST_EMULATOR);
#endif
  return argv;
}

}  // namespace tachyon::test
