#!/usr/bin/env python3
"""Prints a Markdown table of tachyon's benchmarks next to their peers from one run.

Reads the JSON that Google Benchmark writes with --benchmark_out_format=json (tools/bench
keeps it as results/<date>-<host>/raw.json). Standard library only.

Pairing: benchmarks are named <figure>/<impl>[/<args>...], for example
roundtrip/tachyon_busy_spin and roundtrip/moodycamel_tokens. Every benchmark whose <impl>
starts with "tachyon" is paired with every benchmark that has the same <figure> and the same
<args> and an <impl> that does not start with "tachyon". <figure> may itself have several
parts (publish/batch/tachyon_inline pairs with publish/batch/boost_lockfree).

Each row gives ratio = tachyon / peer. For times, below 1.00 means tachyon took less time.
User counters found in both benchmarks of a pair (latency percentiles, items_per_second, ...)
get their own table with the same ratio; for rates (*_per_second) above 1.00 favours tachyon.

Statistic: the median aggregate when the run had repetitions, else the mean aggregate, else
the median of the individual runs, else the single run.

Usage: tools/bench_table.py RAW_JSON [--metric real_time|cpu_time]
"""

import argparse
import json
import statistics
import sys
from collections import OrderedDict

NS_PER_UNIT = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}

# Keys of a benchmark entry that are not user counters.
STANDARD_KEYS = {
    "name", "family_index", "per_family_instance_index", "run_name", "run_type",
    "repetitions", "repetition_index", "threads", "iterations", "real_time", "cpu_time",
    "time_unit", "aggregate_name", "aggregate_unit", "error_occurred", "error_message", "label",
}


class Run:
    """All entries of one benchmark instance (one run_name): repetitions and aggregates."""

    def __init__(self, name):
        self.name = name
        self.iterations = []  # run_type == "iteration"
        self.aggregates = {}  # aggregate_name -> entry
        self.error = None

    def add(self, entry):
        if entry.get("error_occurred"):
            self.error = entry.get("error_message") or "error"
        if entry.get("run_type") == "aggregate":
            self.aggregates[entry.get("aggregate_name", "")] = entry
        else:
            self.iterations.append(entry)

    def statistic(self):
        """Names the statistic value() reports."""
        if "median" in self.aggregates:
            return f"median of {self.aggregates['median'].get('repetitions', '?')}"
        if "mean" in self.aggregates:
            return f"mean of {self.aggregates['mean'].get('repetitions', '?')}"
        if len(self.iterations) > 1:
            return f"median of {len(self.iterations)}"
        return "single run"

    def value(self, key):
        """The run's figure for `key` (times in ns), or None where it has none."""
        for aggregate in ("median", "mean"):
            if aggregate in self.aggregates:
                return _read(self.aggregates[aggregate], key)
        values = [v for v in (_read(e, key) for e in self.iterations) if v is not None]
        if not values:
            return None
        return statistics.median(values)

    def cv(self, key):
        """Coefficient of variation over repetitions, as a fraction, or None."""
        values = [v for v in (_read(e, key) for e in self.iterations) if v is not None]
        if len(values) > 1 and statistics.mean(values) > 0:
            return statistics.stdev(values) / statistics.mean(values)
        entry = self.aggregates.get("cv")
        if entry is not None and isinstance(entry.get(key), (int, float)):
            return float(entry[key])  # Google Benchmark reports cv as a fraction
        return None

    def counters(self):
        keys = set()
        for entry in self.iterations + list(self.aggregates.values()):
            keys.update(k for k, v in entry.items()
                        if k not in STANDARD_KEYS and isinstance(v, (int, float))
                        and not isinstance(v, bool))
        return keys


def _read(entry, key):
    value = entry.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    if key in ("real_time", "cpu_time"):
        return float(value) * NS_PER_UNIT.get(entry.get("time_unit", "ns"), 1.0)
    return float(value)


def load_runs(benchmarks):
    runs = OrderedDict()
    for entry in benchmarks:
        name = entry.get("run_name") or entry.get("name", "")
        if entry.get("run_type") == "aggregate" and "run_name" not in entry:
            name = name.rsplit("_", 1)[0]  # JSON from before run_name: "<run>_median"
        runs.setdefault(name, Run(name)).add(entry)
    return runs


def split_tachyon(name):
    """(figure parts, impl, args parts) if `name` is a tachyon benchmark, else None."""
    parts = name.split("/")
    for i in range(1, len(parts)):
        if parts[i].startswith("tachyon"):
            return parts[:i], parts[i], parts[i + 1:]
    return None


def pair_runs(runs):
    """[(figure label, tachyon impl, tachyon run, [(peer impl, peer run)])] and the names of
    the benchmarks that are neither tachyon's nor paired with one."""
    pairs = []
    paired_peers = set()
    for name, run in runs.items():
        split = split_tachyon(name)
        if split is None:
            continue
        figure, impl, args = split
        peers = []
        for other_name, other in runs.items():
            parts = other_name.split("/")
            if (len(parts) == len(figure) + 1 + len(args) and parts[:len(figure)] == figure
                    and parts[len(figure) + 1:] == args
                    and not parts[len(figure)].startswith("tachyon")):
                peers.append((parts[len(figure)], other))
                paired_peers.add(other_name)
        label = "/".join(figure) + (f" ({'/'.join(args)})" if args else "")
        pairs.append((label, impl, run, peers))
    unpaired = [n for n in runs if split_tachyon(n) is None and n not in paired_peers]
    return pairs, unpaired


def format_time(ns):
    if ns is None:
        return "—"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if abs(ns) >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def format_number(value):
    if value is None:
        return "—"
    magnitude = abs(value)
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if magnitude >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def with_cv(text, cv):
    return text if cv is None else f"{text} ±{cv * 100:.1f}%"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}"


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw_json", help="Google Benchmark JSON output (raw.json)")
    parser.add_argument("--metric", choices=("real_time", "cpu_time"), default="real_time",
                        help="which time to compare (default: real_time)")
    options = parser.parse_args(argv)

    try:
        with open(options.raw_json, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        print(f"bench_table.py: cannot read {options.raw_json}: {e}", file=sys.stderr)
        return 1

    runs = load_runs(data.get("benchmarks", []))
    pairs, unpaired = pair_runs(runs)
    metric = options.metric

    context = data.get("context", {})
    print(f"## tachyon against its peers: {metric.replace('_', ' ')}")
    print()
    print(f"Run {context.get('date', '?')} on {context.get('host_name', '?')}, "
          f"{context.get('num_cpus', '?')} CPUs at {context.get('mhz_per_cpu', '?')} MHz; "
          f"statistic: {', '.join(sorted({r.statistic() for r in runs.values()})) or '—'}. "
          f"ratio = tachyon / peer: below 1.00, tachyon took less time.")
    if context.get("cpu_scaling_enabled"):
        print()
        print("Warning: CPU frequency scaling was on during this run; times are noisier.")
    if context.get("library_build_type") == "debug":
        print()
        print("Note: the Google Benchmark library reports itself as a debug build (Debian's "
              "libbenchmark does); that is the harness, not the code measured, whose build "
              "type is the bench preset's.")
    print()

    if not pairs:
        print("No tachyon benchmarks (<figure>/tachyon*) in this file.")
        return 0

    print(f"| figure | tachyon | {metric} | peer | {metric} | ratio |")
    print("|---|---|--:|---|--:|--:|")
    counter_rows = []
    for label, impl, run, peers in pairs:
        tachyon_time = run.value(metric)
        tachyon_cell = (f"error: {run.error}" if run.error
                        else with_cv(format_time(tachyon_time), run.cv(metric)))
        if not peers:
            print(f"| {label} | {impl} | {tachyon_cell} | (no peer) | — | — |")
            continue
        for peer_impl, peer in peers:
            peer_time = peer.value(metric)
            peer_cell = (f"error: {peer.error}" if peer.error
                         else with_cv(format_time(peer_time), peer.cv(metric)))
            shown_ratio = "—" if run.error or peer.error else ratio(tachyon_time, peer_time)
            print(f"| {label} | {impl} | {tachyon_cell} | {peer_impl} "
                  f"| {peer_cell} | {shown_ratio} |")
            for counter in sorted(run.counters() & peer.counters()):
                counter_rows.append((label, impl, peer_impl, counter,
                                     run.value(counter), peer.value(counter)))

    if counter_rows:
        print()
        print("Counters in both benchmarks of a pair (ratio = tachyon / peer; for *_per_second "
              "rates above 1.00 favours tachyon, for times below 1.00 does):")
        print()
        print("| figure | tachyon | peer | counter | tachyon | peer | ratio |")
        print("|---|---|---|---|--:|--:|--:|")
        for label, t_impl, p_impl, counter, t_value, p_value in counter_rows:
            print(f"| {label} | {t_impl} | {p_impl} | {counter} | {format_number(t_value)} "
                  f"| {format_number(p_value)} | {ratio(t_value, p_value)} |")

    if unpaired:
        print()
        print("Not paired with any tachyon benchmark: " + ", ".join(unpaired))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
