# Finds the NATS C client (libnats) and makes the imported target tachyon::libnats for it.
#
# Debian's libnats-dev ships a CMake config (cnats) that names a static library the package does
# not contain, so find_package(cnats) fails there; this module looks for the header and the
# shared library instead. Used by tachyon's own build and, installed next to
# tachyonConfig.cmake, by consumers of the tachyon::nats component.
#
# Result variables:
#   TachyonNats_FOUND
#   TACHYON_NATS_INCLUDE_DIR  (cache) the directory that holds nats/nats.h
#   TACHYON_NATS_LIBRARY      (cache) libnats
# Imported target:
#   tachyon::libnats

find_path(TACHYON_NATS_INCLUDE_DIR
  NAMES nats/nats.h
  DOC "Directory holding nats/nats.h (Debian: libnats-dev)")
find_library(TACHYON_NATS_LIBRARY
  NAMES nats
  DOC "The NATS C client library (Debian: libnats-dev)")
mark_as_advanced(TACHYON_NATS_INCLUDE_DIR TACHYON_NATS_LIBRARY)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(TachyonNats
  REQUIRED_VARS TACHYON_NATS_LIBRARY TACHYON_NATS_INCLUDE_DIR
  REASON_FAILURE_MESSAGE
    "the NATS C client was not found (nats/nats.h and libnats). On Debian install the package \
libnats-dev (tools/setup does), or set TACHYON_NATS_INCLUDE_DIR and TACHYON_NATS_LIBRARY.")

if(TachyonNats_FOUND AND NOT TARGET tachyon::libnats)
  add_library(tachyon::libnats UNKNOWN IMPORTED)
  set_target_properties(tachyon::libnats PROPERTIES
    IMPORTED_LOCATION "${TACHYON_NATS_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${TACHYON_NATS_INCLUDE_DIR}")
endif()
