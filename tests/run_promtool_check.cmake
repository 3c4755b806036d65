# metrics.promtool: runs SAMPLE (tests/promtool_sample.cpp, a real bus's to_prometheus()) and
# pipes its output into `PROMTOOL check metrics`. Fails if either exits non-zero (promtool
# 2.42 exits 1 on a parse error, 3 on a lint problem) or if promtool prints anything at all,
# so that a complaint reported with status 0 by another version fails too.
#
# cmake -DSAMPLE=<program> -DPROMTOOL=<promtool> [-DEMULATOR=<program>]
#       -P run_promtool_check.cmake
# EMULATOR: what runs SAMPLE in a cross build (qemu-aarch64-static); promtool is the host's.
execute_process(
  COMMAND ${EMULATOR} "${SAMPLE}"
  COMMAND "${PROMTOOL}" check metrics
  RESULTS_VARIABLE _results
  OUTPUT_VARIABLE _out
  ERROR_VARIABLE _err)
message(STATUS "exit statuses (sample, promtool): ${_results}")
if(NOT _results STREQUAL "0;0" OR NOT _out STREQUAL "" OR NOT _err STREQUAL "")
  message(FATAL_ERROR "promtool check metrics complained:\n${_out}${_err}")
endif()
