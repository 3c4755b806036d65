# Packaging test, run by ctest as install.find_package_consumer (see tests/CMakeLists.txt):
#
#   1. configure, build and install this source tree into <work>/prefix, library and
#      tachyon-journal (run once from there);
#   2. configure and build tests/install/consumer against it with find_package(tachyon CONFIG),
#      and run the consumer;
#   3. compile the same consumer with the flags `pkg-config --cflags --libs tachyon` gives,
#      and run it.
#
# Usage: cmake -DTACHYON_SOURCE_DIR=... -DTACHYON_WORK_DIR=... [-DTACHYON_BUILD_TYPE=Debug]
#              [-DTACHYON_USE_MIMALLOC=ON] [-DTACHYON_GENERATOR=...] [-DTACHYON_CXX_COMPILER=...]
#              [-DTACHYON_TOOLCHAIN_FILE=... -DTACHYON_EMULATOR=...] -P run_install_test.cmake
#
# A cross build (the aarch64 preset) passes its toolchain file, which every inner build uses,
# and its emulator, which runs what they built.
#
# The inner builds get explicit, empty CMAKE_CXX_FLAGS and linker flags, so neither the outer
# build's flags nor CXXFLAGS/LDFLAGS from the environment reach them.
cmake_minimum_required(VERSION 3.25)

foreach(_required TACHYON_SOURCE_DIR TACHYON_WORK_DIR)
  if(NOT DEFINED ${_required} OR "${${_required}}" STREQUAL "")
    message(FATAL_ERROR "run_install_test.cmake: pass -D${_required}=...")
  endif()
endforeach()
if(NOT DEFINED TACHYON_USE_MIMALLOC)
  set(TACHYON_USE_MIMALLOC ON)
endif()
if(NOT DEFINED TACHYON_BUILD_NATS OR TACHYON_BUILD_NATS STREQUAL "")
  set(TACHYON_BUILD_NATS OFF)
endif()

set(_work "${TACHYON_WORK_DIR}")
set(_build "${_work}/tachyon-build")
set(_prefix "${_work}/prefix")
set(_consumer_src "${TACHYON_SOURCE_DIR}/tests/install/consumer")
set(_consumer_build "${_work}/consumer-build")
file(REMOVE_RECURSE "${_work}")
file(MAKE_DIRECTORY "${_work}")

set(_common_args
  -DCMAKE_CXX_FLAGS=
  -DCMAKE_EXE_LINKER_FLAGS=
  -DCMAKE_SHARED_LINKER_FLAGS=
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
if(TACHYON_BUILD_TYPE)
  list(APPEND _common_args "-DCMAKE_BUILD_TYPE=${TACHYON_BUILD_TYPE}")
endif()
if(TACHYON_GENERATOR)
  list(APPEND _common_args -G "${TACHYON_GENERATOR}")
endif()
if(TACHYON_CXX_COMPILER)
  list(APPEND _common_args "-DCMAKE_CXX_COMPILER=${TACHYON_CXX_COMPILER}")
endif()
if(TACHYON_TOOLCHAIN_FILE)
  list(APPEND _common_args "-DCMAKE_TOOLCHAIN_FILE=${TACHYON_TOOLCHAIN_FILE}")
endif()
set(_run ${TACHYON_EMULATOR})  # in front of every program this test built
set(_config_args)
if(TACHYON_BUILD_TYPE)
  set(_config_args --config "${TACHYON_BUILD_TYPE}")
endif()

# Runs one step, with its output going to ctest's log, and stops at the first failure.
function(_tachyon_step what)
  message(STATUS "install test: ${what}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE _rc COMMAND_ECHO STDOUT)
  if(NOT _rc STREQUAL "0")
    message(FATAL_ERROR "install test: '${what}' failed (${_rc})")
  endif()
endfunction()

# 1. Install the library. Configured for one prefix and installed into another with --prefix,
# as a packager or a user relocating an install would: both routes below must still work.
_tachyon_step("configure tachyon"
  "${CMAKE_COMMAND}" -S "${TACHYON_SOURCE_DIR}" -B "${_build}" ${_common_args}
    "-DCMAKE_INSTALL_PREFIX=${_work}/configured-prefix-never-used"
    -DTACHYON_BUILD_TESTS=OFF -DTACHYON_BUILD_BENCH=OFF -DTACHYON_BUILD_EXAMPLES=OFF
    "-DTACHYON_USE_MIMALLOC=${TACHYON_USE_MIMALLOC}"
    "-DTACHYON_BUILD_NATS=${TACHYON_BUILD_NATS}")
_tachyon_step("build tachyon" "${CMAKE_COMMAND}" --build "${_build}" ${_config_args} --parallel 2)
_tachyon_step("install tachyon"
  "${CMAKE_COMMAND}" --install "${_build}" ${_config_args} --prefix "${_prefix}")

# The tool installed with the library runs from the prefix, and reads a journal directory.
file(GLOB_RECURSE _tool LIST_DIRECTORIES false
  "${_prefix}/*/tachyon-journal" "${_prefix}/*/tachyon-journal.exe")
list(LENGTH _tool _n)
if(NOT _n EQUAL 1)
  message(FATAL_ERROR "install test: expected one installed tachyon-journal, found: '${_tool}'")
endif()
_tachyon_step("run tachyon-journal --help" ${_run} "${_tool}" --help)
file(MAKE_DIRECTORY "${_work}/empty-journal")
_tachyon_step("run tachyon-journal stats (an empty journal)"
  ${_run} "${_tool}" stats "${_work}/empty-journal")

# 2. The find_package route.
_tachyon_step("configure consumer"
  "${CMAKE_COMMAND}" -S "${_consumer_src}" -B "${_consumer_build}" ${_common_args}
    "-DCMAKE_PREFIX_PATH=${_prefix}")
# It must have found the package just installed, not another tachyon on the machine.
file(STRINGS "${_consumer_build}/CMakeCache.txt" _tachyon_dir REGEX "^tachyon_DIR:")
string(REGEX REPLACE "^tachyon_DIR:[A-Z]+=" "" _tachyon_dir "${_tachyon_dir}")
cmake_path(IS_PREFIX _prefix "${_tachyon_dir}" NORMALIZE _from_prefix)
if(NOT _from_prefix)
  message(FATAL_ERROR "install test: the consumer found tachyon in '${_tachyon_dir}', "
                      "not under the test prefix '${_prefix}'")
endif()
_tachyon_step("build consumer"
  "${CMAKE_COMMAND}" --build "${_consumer_build}" ${_config_args} --parallel 2)
# GLOB_RECURSE: a multi-config generator puts it one directory down (<config>/consumer).
file(GLOB_RECURSE _consumer_exe LIST_DIRECTORIES false
  "${_consumer_build}/consumer" "${_consumer_build}/consumer.exe")
list(LENGTH _consumer_exe _n)
if(NOT _n EQUAL 1)
  message(FATAL_ERROR "install test: expected one consumer binary, found: '${_consumer_exe}'")
endif()
_tachyon_step("run consumer (find_package)" ${_run} "${_consumer_exe}")

# 3. The pkg-config route, with the same compiler.
find_program(_pkg_config NAMES pkg-config pkgconf)
if(NOT _pkg_config)
  message(FATAL_ERROR "install test: pkg-config not found (Debian: pkg-config; tools/setup)")
endif()
file(GLOB_RECURSE _pc_file "${_prefix}/*/tachyon.pc")
list(LENGTH _pc_file _n)
if(NOT _n EQUAL 1)
  message(FATAL_ERROR "install test: expected one installed tachyon.pc, found: '${_pc_file}'")
endif()
cmake_path(GET _pc_file PARENT_PATH _pc_dir)
set(ENV{PKG_CONFIG_PATH} "${_pc_dir}")
execute_process(COMMAND "${_pkg_config}" --cflags --libs tachyon
  OUTPUT_VARIABLE _pc_flags OUTPUT_STRIP_TRAILING_WHITESPACE
  RESULT_VARIABLE _rc)
if(NOT _rc STREQUAL "0")
  message(FATAL_ERROR "install test: `pkg-config --cflags --libs tachyon` failed (${_rc})")
endif()
message(STATUS "install test: pkg-config --cflags --libs tachyon: ${_pc_flags}")
separate_arguments(_pc_flags UNIX_COMMAND "${_pc_flags}")
set(_cxx "${TACHYON_CXX_COMPILER}")
if(NOT _cxx)
  set(_cxx c++)
endif()
set(_pc_exe "${_work}/consumer-pkgconfig")
_tachyon_step("build consumer (pkg-config)"
  "${_cxx}" "${_consumer_src}/main.cpp" -o "${_pc_exe}" ${_pc_flags})
_tachyon_step("run consumer (pkg-config)" ${_run} "${_pc_exe}")

# 4. The NATS bridge as a component, when this tachyon was built with it.
if(TACHYON_BUILD_NATS)
  set(_nats_src "${TACHYON_SOURCE_DIR}/tests/install/nats_consumer")
  set(_nats_build "${_work}/nats-consumer-build")
  _tachyon_step("configure NATS consumer (COMPONENTS nats)"
    "${CMAKE_COMMAND}" -S "${_nats_src}" -B "${_nats_build}" ${_common_args}
      "-DCMAKE_PREFIX_PATH=${_prefix}")
  _tachyon_step("build NATS consumer"
    "${CMAKE_COMMAND}" --build "${_nats_build}" ${_config_args} --parallel 2)
  file(GLOB_RECURSE _nats_exe LIST_DIRECTORIES false "${_nats_build}/nats_consumer")
  _tachyon_step("run NATS consumer" ${_run} "${_nats_exe}")
endif()

message(STATUS "install test: find_package and pkg-config consumers both passed")
