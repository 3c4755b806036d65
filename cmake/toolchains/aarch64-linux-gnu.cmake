# Cross-compiling tachyon for Linux on aarch64 from an x86-64 Debian host (the `aarch64` preset).
#
# Needs Debian's cross compiler and the arm64 builds of the dependencies, installed side by side
# with the host's through multiarch (tools/setup --aarch64 installs both):
#   g++-aarch64-linux-gnu qemu-user-static
#   dpkg --add-architecture arm64; libmimalloc-dev:arm64 libgtest-dev:arm64 ...
# Multiarch puts the arm64 libraries in /usr/lib/aarch64-linux-gnu, which CMake searches because
# the compiler reports that library architecture; the headers that do not depend on the
# architecture (/usr/include) are shared. So no sysroot and no CMAKE_FIND_ROOT_PATH: setting one
# would hide those shared headers.
#
# The emulator: CMake runs every test it registers through it (add_test with a target, and
# gtest_discover_tests), and tachyon's tests read it (TACHYON_TEST_EMULATOR) to start their own
# child processes through it. qemu-user finds the arm64 dynamic loader and libraries where
# multiarch installed them.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

find_program(TACHYON_QEMU_AARCH64 NAMES qemu-aarch64-static qemu-aarch64)
if(TACHYON_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${TACHYON_QEMU_AARCH64}")
endif()

# Programs (promtool, python3, nats-server) are the host's; libraries and packages the target's.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
