# Finds moodycamel ConcurrentQueue, which is header-only and ships no CMake config, and makes
# the imported target tachyon::concurrentqueue for it.
#
# Used by tachyon's own build and, installed next to tachyonConfig.cmake, by its consumers, so
# both see the same target. Debian installs the headers as
# /usr/include/concurrentqueue/{concurrentqueue,blockingconcurrentqueue,lightweightsemaphore}.h
# (package libconcurrentqueue-dev); tachyon includes them as <concurrentqueue/concurrentqueue.h>.
#
# Result variables:
#   TachyonConcurrentQueue_FOUND
#   TACHYON_CONCURRENTQUEUE_INCLUDE_DIR  (cache) the directory that holds concurrentqueue/
# Imported target:
#   tachyon::concurrentqueue             INTERFACE, carries the include directory

find_path(TACHYON_CONCURRENTQUEUE_INCLUDE_DIR
  NAMES concurrentqueue/concurrentqueue.h
  DOC "Directory holding concurrentqueue/concurrentqueue.h (Debian: libconcurrentqueue-dev)")
mark_as_advanced(TACHYON_CONCURRENTQUEUE_INCLUDE_DIR)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(TachyonConcurrentQueue
  REQUIRED_VARS TACHYON_CONCURRENTQUEUE_INCLUDE_DIR
  REASON_FAILURE_MESSAGE
    "moodycamel ConcurrentQueue was not found (no concurrentqueue/concurrentqueue.h). On Debian \
install the package libconcurrentqueue-dev (tools/setup does), or set \
TACHYON_CONCURRENTQUEUE_INCLUDE_DIR to the directory that contains concurrentqueue/.")

if(TachyonConcurrentQueue_FOUND AND NOT TARGET tachyon::concurrentqueue)
  add_library(tachyon::concurrentqueue INTERFACE IMPORTED)
  set_target_properties(tachyon::concurrentqueue PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${TACHYON_CONCURRENTQUEUE_INCLUDE_DIR}")
endif()
