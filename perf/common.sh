# shellcheck shell=bash
# perf/common.sh — sourced by perf/stat, perf/record and perf/callgrind, never run on its own.
#
# After `source perf/common.sh` (from the repository root):
#   bench_build TARGET          builds TARGET of the bench preset if build/bench lacks it
#                               (its output to stderr)
#   perf_require NAME           exits with a clear message unless perf is installed and may
#                               count this process's events (perf_event_paranoid, permissions)
#   perf_hw_counters            succeeds if the CPU's hardware counters can be read (not in
#                               most virtual machines)
#   perf_command NAME ARGS...   sets the array `cmd` to what perf should run: ARGS after a
#                               leading `--` as the user's own command, else tachyon_bench with
#                               ARGS (or with the script's default arguments, $default_args)
# NAME is the calling script's name, for messages.

bench_dir=build/bench

bench_build() {
  local target=$1
  [[ -x $bench_dir/bench/$target ]] && return 0
  # Progress to stderr: stdout is the calling script's report.
  {
    bash tools/setup
    cmake --preset bench >/dev/null
    cmake --build --preset bench -j "${TACHYON_JOBS:-2}" --target "$target"
  } >&2
}

perf_require() {
  local name=$1 out
  if ! command -v perf >/dev/null 2>&1; then
    echo "$name: perf is not installed (Debian: apt-get install linux-perf; tools/setup does)" >&2
    exit 1
  fi
  # Debian's /usr/bin/perf is a wrapper that fails when no perf matches the running kernel.
  if ! out=$(perf version 2>&1); then
    echo "$name: perf does not run here: $out" >&2
    echo "$name: install the perf that matches this kernel ($(uname -r))" >&2
    exit 1
  fi
  if ! out=$(perf stat -e task-clock true 2>&1); then
    local paranoid
    paranoid=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo unknown)
    echo "$name: perf may not count events for this user (perf_event_paranoid is $paranoid):" >&2
    printf '%s\n' "$out" | sed -n '1,6p' >&2
    echo "$name: run as root, or lower it: sudo sysctl kernel.perf_event_paranoid=1" >&2
    echo "$name: (containers may also need --cap-add PERFMON or a seccomp profile allowing" \
      "perf_event_open)" >&2
    exit 1
  fi
}

perf_hw_counters() {
  local out
  out=$(perf stat -x, -e instructions true 2>&1) || return 1
  ! grep -qiE 'not supported|not counted' <<<"$out"
}

# shellcheck disable=SC2034  # cmd is the caller's
perf_command() {
  local name=$1
  shift
  if [[ ${1:-} == -- ]]; then
    shift
    if (($# == 0)); then
      echo "$name: nothing after --; give a command, e.g. $name -- ./my_app --flag" >&2
      exit 2
    fi
    cmd=("$@")
    return 0
  fi
  bench_build tachyon_bench
  if (($# == 0)); then
    # shellcheck disable=SC2154  # default_args is the caller's
    cmd=("$bench_dir/bench/tachyon_bench" "${default_args[@]}")
  else
    cmd=("$bench_dir/bench/tachyon_bench" "$@")
  fi
}
