#!/usr/bin/env python3
"""Prints the Markdown report of one tools/bench run: tachyon beside its peers, and the targets.

Usage: tools/bench_table.py [GBENCH_JSON] [--latency LATENCY_JSON] [--callgrind CALLGRIND_TXT]
                            [--metric real_time|cpu_time]
       tools/bench_table.py --results DIR    (DIR/gbench.json, DIR/latency.json and
                                              DIR/callgrind.txt, each where present)

Inputs, each optional (a missing one is reported as not measured):
  GBENCH_JSON    Google Benchmark's --benchmark_out_format=json output (tachyon_bench).
  LATENCY_JSON   tachyon_latency --json output: {"groups": [{"group", "title", "rows": [{"name",
                 "samples", "p50_ns", ..., "max_ns", "mean_ns", "curve"}], "ratios": [...]}]}.
  CALLGRIND_TXT  perf/callgrind's output: one "<hot path>  <instructions per op>" line each.

Sections: the Google Benchmark pairs, each latency group, the callgrind counts, and a summary of
every target of the issue with the measured value and met / missed / not measured. Figures from
a shared machine are reported, not asserted: a missed target does not change the exit status.

Pairing: benchmarks are named <figure>/<impl>[/<args>...], for example publish/tachyon_inline and
publish/moodycamel_tokens, or throughput/tachyon/2:2 and throughput/moodycamel/2:2. Every
benchmark whose <impl> starts with "tachyon" is paired with every benchmark that has the same
<figure> and <args> and an <impl> that does not. The value compared is the time per iteration
(real_time unless --metric says otherwise), or items_per_second for the throughput figures.
The ratio column is a speed ratio, the same way round for both: tachyon's rate / the peer's, or
the peer's time / tachyon's. Above 1.00, tachyon is faster.

Statistic: the median aggregate when the run had repetitions, else the mean aggregate, else the
median of the individual runs, else the single run.

Exit status: 0; 1 if no input could be read; 3 if a benchmark reported an error (the report is
still printed). Standard library only.
"""

import argparse
import json
import os
import re
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

# Figures compared by rate rather than by time per iteration.
RATE_FIGURES = {"publish_batch", "throughput_1p1w", "throughput"}

# Targets on Google Benchmark pairs: (figure, peer or None for tachyon's own value) -> list of
# (kind, threshold, text). kind "speed_min": speed ratio >= threshold; "time_max_ns": tachyon's
# time per operation <= threshold.
GB_TARGETS = {
    ("publish_batch", "moodycamel_bulk"): [("speed_min", 0.5, "≥ 0.5× moodycamel bulk")],
    ("throughput_1p1w", "moodycamel_tokens"): [("speed_min", 0.8, "≥ 0.8× moodycamel")],
    ("idle_scan", None): [("time_max_ns", 10.0, "≤ 10 ns")],
    ("dispatch_1", None): [("time_max_ns", 5.0, "≤ 5 ns")],
    ("dispatch_1", "boost_signals2"): [("speed_min", 3.0, "≥ 3× faster than Signals2")],
}

# Latency percentile columns: (key, heading).
PERCENTILES = [("p50_ns", "p50"), ("p90_ns", "p90"), ("p99_ns", "p99"), ("p999_ns", "p99.9"),
               ("p9999_ns", "p99.99"), ("max_ns", "max"), ("mean_ns", "mean")]
LATENCY_ROW_KEYS = {"name", "samples", "curve"} | {k for k, _ in PERCENTILES}


# ---- reading ------------------------------------------------------------------------------------

def load_json(path, what):
    """The parsed file, or None with a message on stderr when it cannot be read."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        print(f"bench_table.py: cannot read {what} {path}: {e}", file=sys.stderr)
        return None


def load_callgrind(path):
    """{hot path label: instructions per op} from perf/callgrind's output, or None."""
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        print(f"bench_table.py: cannot read callgrind output {path}: {e}", file=sys.stderr)
        return None
    counts = OrderedDict()
    for line in lines[1:]:  # the first line is the heading
        m = re.match(r"^(.*?)\s{2,}([0-9][0-9.]*)\s*$", line)
        if m:
            counts[m.group(1).strip()] = float(m.group(2))
    return counts


class Run:
    """All entries of one benchmark instance (one run_name): repetitions and aggregates."""

    def __init__(self, name):
        self.name = name
        self.iterations = []  # run_type == "iteration"
        self.aggregates = {}  # aggregate_name -> entry
        self.error = None
        self.label = ""

    def add(self, entry):
        if entry.get("error_occurred"):
            self.error = entry.get("error_message") or "error"
        if entry.get("label"):
            self.label = entry["label"]
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


def _read(entry, key):
    value = entry.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    if key in ("real_time", "cpu_time"):
        return float(value) * NS_PER_UNIT.get(entry.get("time_unit", "ns"), 1.0)
    return float(value)


# Settings Google Benchmark appends to a name (->Repetitions(5): /repeats:5, ->UseRealTime():
# /real_time, ...); they are not part of the pairing.
SETTING_PARTS = re.compile(r"/(repeats|threads|iterations|min_time|min_warmup_time)"
                           r":[^/]+|/(real_time|manual_time|process_time)(?=/|$)")


def strip_settings(name):
    return SETTING_PARTS.sub("", name)


def load_runs(benchmarks):
    runs = OrderedDict()
    for entry in benchmarks:
        name = entry.get("run_name") or entry.get("name", "")
        if entry.get("run_type") == "aggregate" and "run_name" not in entry:
            name = name.rsplit("_", 1)[0]  # JSON from before run_name: "<run>_median"
        name = strip_settings(name)
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
    """[(figure, args, tachyon impl, tachyon run, [(peer impl, peer run)])] and the names of the
    benchmarks that are neither tachyon's nor paired with one."""
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
        pairs.append(("/".join(figure), "/".join(args), impl, run, peers))
    unpaired = [n for n in runs if split_tachyon(n) is None and n not in paired_peers]
    return pairs, unpaired


# ---- formatting -----------------------------------------------------------------------------

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
    if isinstance(value, bool):
        return "yes" if value else "no"
    magnitude = abs(value)
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if magnitude >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def format_rate(per_second):
    return "—" if per_second is None else f"{format_number(per_second)}/s"


def with_cv(text, cv):
    return text if cv is None else f"{text} ±{cv * 100:.1f}%"


def cell(value):
    """A Markdown table cell: no pipes, no line breaks."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def status(ok):
    return "not measured" if ok is None else ("met" if ok else "**missed**")


# ---- Google Benchmark ---------------------------------------------------------------------------

class GbReport:
    """The pairs of one tachyon_bench run, their speed ratios and targets."""

    def __init__(self, data, metric):
        self.data = data
        self.metric = metric
        self.runs = load_runs(data.get("benchmarks", []))
        self.pairs, self.unpaired = pair_runs(self.runs)
        self.cpus = data.get("context", {}).get("num_cpus")
        self.errors = [r.name for r in self.runs.values() if r.error]

    def figure_value(self, figure, run):
        """(value, text) of a run for its figure: a rate or a time per iteration."""
        if run.error:
            return None, f"error: {run.error}"
        if figure in RATE_FIGURES:
            v = run.value("items_per_second")
            return v, with_cv(format_rate(v), run.cv("items_per_second"))
        v = run.value(self.metric)
        return v, with_cv(format_time(v), run.cv(self.metric))

    @staticmethod
    def speed(figure, tachyon_value, peer_value):
        if tachyon_value is None or peer_value is None or tachyon_value == 0 or peer_value == 0:
            return None
        if figure in RATE_FIGURES:
            return tachyon_value / peer_value
        return peer_value / tachyon_value

    def lookup(self, figure, impl_prefix, args=""):
        """The run named figure/<impl starting with impl_prefix>[/args], or None."""
        for name, run in self.runs.items():
            parts = name.split("/")
            if (len(parts) >= 2 and parts[0] == figure and parts[1].startswith(impl_prefix)
                    and "/".join(parts[2:]) == args):
                return run
        return None

    def render(self, out):
        context = self.data.get("context", {})
        out.append("## Google Benchmark (tachyon_bench)")
        out.append("")
        statistic = ", ".join(sorted({r.statistic() for r in self.runs.values()})) or "—"
        out.append(f"Run {context.get('date', '?')} on {context.get('host_name', '?')}, "
                   f"{context.get('num_cpus', '?')} CPUs at {context.get('mhz_per_cpu', '?')} MHz; "
                   f"statistic: {statistic}; times are {self.metric.replace('_', ' ')} per "
                   "operation. Ratio = tachyon's speed / the peer's (rate / rate, or the peer's "
                   "time / tachyon's): above 1.00, tachyon is faster.")
        if context.get("library_build_type") == "debug":
            out.append("")
            out.append("The Google Benchmark library reports itself as a debug build (Debian's "
                       "libbenchmark does); that is the harness, not the code measured.")
        out.append("")
        if not self.pairs:
            out.append("No tachyon benchmarks (<figure>/tachyon*) in this file.")
            return
        out.append("| figure | tachyon | value | peer | peer value | ratio | target | met |")
        out.append("|---|---|--:|---|--:|--:|---|---|")
        shown_absolute = set()
        for figure, args, impl, run, peers in self.pairs:
            label = figure + (f" {args}" if args else "")
            if run.label:
                label += f" ({run.label})"
            t_value, t_text = self.figure_value(figure, run)
            for peer_impl, peer in (peers or [("(no peer)", None)]):
                p_value, p_text = (None, "—") if peer is None else self.figure_value(figure, peer)
                speed = self.speed(figure, t_value, p_value)
                targets, verdicts = [], []
                for kind, threshold, text in GB_TARGETS.get((figure, peer_impl), []):
                    targets.append(text)
                    verdicts.append(status(None if speed is None else speed >= threshold))
                if (figure, None) in GB_TARGETS and figure not in shown_absolute:
                    shown_absolute.add(figure)
                    for kind, threshold, text in GB_TARGETS[(figure, None)]:
                        targets.append(f"tachyon {text}")
                        verdicts.append(status(None if t_value is None else t_value <= threshold))
                out.append(f"| {cell(label)} | {impl} | {cell(t_text)} | {peer_impl} "
                           f"| {cell(p_text)} | {'—' if speed is None else f'{speed:.2f}'} "
                           f"| {'; '.join(targets)} | {'; '.join(verdicts)} |")
        if self.unpaired:
            out.append("")
            out.append("Not paired with any tachyon benchmark: " + ", ".join(self.unpaired))
        if self.errors:
            out.append("")
            out.append("**Benchmarks that reported an error:** " + ", ".join(self.errors))


# ---- latency --------------------------------------------------------------------------------

def render_latency(data, out):
    out.append("## Latency (tachyon_latency)")
    out.append("")
    meta = {k: v for k, v in data.items() if k != "groups"}
    if meta:
        out.append("Run: " + ", ".join(f"{k} {format_meta(v)}" for k, v in meta.items()) + ".")
        out.append("")
    for group in data.get("groups", []):
        rows = group.get("rows", [])
        out.append(f"### {group.get('group', '?')}: {group.get('title', '')}")
        out.append("")
        details = {k: v for k, v in group.items()
                   if k not in ("group", "title", "rows", "ratios", "notes")}
        if details:
            out.append("; ".join(f"{k}: {format_meta(v)}" for k, v in details.items()) + ".")
            out.append("")
        extras = []
        for row in rows:
            extras.extend(k for k in row if k not in LATENCY_ROW_KEYS and k not in extras)
        out.append("| row | " + " | ".join(extras + ["samples"] + [h for _, h in PERCENTILES])
                   + " |")
        out.append("|---|" + "--:|" * (len(extras) + 1 + len(PERCENTILES)))
        for row in rows:
            cells = [format_extra(k, row.get(k)) for k in extras]
            cells.append(format_number(row.get("samples")))
            cells += [format_time(row.get(k)) if row.get("samples") else "—"
                      for k, _ in PERCENTILES]
            out.append(f"| {cell(row.get('name', '?'))} | " + " | ".join(map(cell, cells)) + " |")
        ratios = group.get("ratios", [])
        if ratios:
            out.append("")
            out.append("| ratio | value | rounds: min | max | target | met |")
            out.append("|---|--:|--:|--:|---|---|")
            for r in ratios:
                met = r.get("met")
                out.append(f"| {cell(r.get('figure', '?'))} | {format_number(r.get('value'))} "
                           f"| {format_number(r.get('min'))} | {format_number(r.get('max'))} "
                           f"| {cell(r.get('target') or '')} "
                           f"| {'' if met is None else status(met)} |")
        for note in group.get("notes", []):
            out.append("")
            out.append(f"_{note}_")
        out.append("")


def format_meta(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def format_extra(key, value):
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, (int, float)):
        if key.endswith("_ns"):
            return format_time(value)
        if key.endswith("_per_s"):
            return format_rate(value) if value else "—"
        return format_number(value)
    return str(value)


def latency_group(data, name):
    for group in (data or {}).get("groups", []):
        if group.get("group") == name:
            return group
    return None


# ---- callgrind ------------------------------------------------------------------------------

# perf/callgrind labels that carry a target: (label prefix, short name, instructions at most).
CALLGRIND_TARGETS = [("publish()", "publish", 100.0), ("dispatch()", "dispatch", 30.0)]


def callgrind_count(counts, prefix):
    for label, value in (counts or {}).items():
        if label.startswith(prefix):
            return value
    return None


def render_callgrind(counts, out):
    out.append("## Instructions per operation (perf/callgrind)")
    out.append("")
    out.append("| hot path | instructions | target | met |")
    out.append("|---|--:|---|---|")
    for label, value in counts.items():
        target, verdict = "", ""
        for prefix, _, limit in CALLGRIND_TARGETS:
            if label.startswith(prefix):
                target, verdict = f"≤ {limit:g}", status(value <= limit)
        out.append(f"| {cell(label)} | {value:.1f} | {target} | {verdict} |")
    out.append("")


# ---- targets summary -------------------------------------------------------------------------

def summarize(gb, latency, counts):
    """[(target, measured, status text)] for every target of the issue."""
    rows = []

    def add(target, measured, ok):
        rows.append((target, measured, status(ok)))

    # Round trip, from the latency harness's paired ratios.
    roundtrip = latency_group(latency, "roundtrip")
    ratios = roundtrip.get("ratios", []) if roundtrip else []

    def ratio_with(*needles):
        for r in ratios:
            if all(n in r.get("figure", "") for n in needles) and r.get("value") is not None:
                return r
        return None

    r = ratio_with("tachyon_busy_spin", "moodycamel_tokens")
    add("round trip p50, tachyon busy_spin / moodycamel tokens ≤ 1.1×",
        f"{r['value']:.2f}× (rounds {format_number(r.get('min'))}–{format_number(r.get('max'))})"
        if r else "—", None if r is None else r["value"] <= 1.1)
    r = ratio_with("mutex")
    add("round trip ≥ 5× faster than mutex + condition variable",
        f"{r['value']:.1f}× faster" if r else "—", None if r is None else r["value"] >= 5)

    # Priority: critical queue wait p99 within batch x handler + one hop.
    priority = latency_group(latency, "priority")
    measured_rows = [row for row in (priority or {}).get("rows", [])
                     if row.get("samples") and row.get("bound_ns")
                     and row.get("p99_ns") is not None]
    if measured_rows:
        within = [row for row in measured_rows if row["p99_ns"] <= row["bound_ns"]]
        worst = max(measured_rows, key=lambda row: row["p99_ns"] / row["bound_ns"])
        add("critical queue-wait p99 ≤ batch × handler + one hop",
            f"{len(within)} of {len(measured_rows)} rows within; worst {cell(worst['name'])}: "
            f"p99 {format_time(worst['p99_ns'])} vs bound {format_time(worst['bound_ns'])}",
            len(within) == len(measured_rows))
    else:
        add("critical queue-wait p99 ≤ batch × handler + one hop",
            "no probe samples" if priority else "—", None)

    # Google Benchmark pairs.
    def gb_speed(figure, tachyon_prefix, peer):
        if gb is None:
            return None, "—"
        t, p = gb.lookup(figure, tachyon_prefix), gb.lookup(figure, peer)
        if t is None or p is None or t.error or p.error:
            return None, "—"
        t_value, t_text = gb.figure_value(figure, t)
        p_value, p_text = gb.figure_value(figure, p)
        speed = gb.speed(figure, t_value, p_value)
        return speed, "—" if speed is None else f"{speed:.2f}× ({t_text} vs {p_text})"

    speed, text = gb_speed("throughput_1p1w", "tachyon", "moodycamel_tokens")
    add("1 producer → 1 worker throughput ≥ 0.8× moodycamel", text,
        None if speed is None else speed >= 0.8)
    speed, text = gb_speed("publish_batch", "tachyon", "moodycamel_bulk")
    add("publish_batch throughput ≥ 0.5× moodycamel enqueue_bulk", text,
        None if speed is None else speed >= 0.5)
    rows.append(aggregate_throughput(gb))

    def gb_time(figure):
        run = gb.lookup(figure, "tachyon") if gb else None
        return None if run is None or run.error else run.value(gb.metric)

    t = gb_time("idle_scan")
    add("idle scan (four empty lanes) ≤ 10 ns", format_time(t), None if t is None else t <= 10)
    t = gb_time("dispatch_1")
    add("dispatch(), 1 handler ≤ 5 ns", format_time(t), None if t is None else t <= 5)
    speed, text = gb_speed("dispatch_1", "tachyon", "boost_signals2")
    add("dispatch(), 1 handler ≥ 3× faster than Boost.Signals2", text,
        None if speed is None else speed >= 3)

    for prefix, short, limit in CALLGRIND_TARGETS:
        v = callgrind_count(counts, prefix)
        add(f"callgrind: {short} ≤ {limit:g} instructions", "—" if v is None else f"{v:.1f}",
            None if v is None else v <= limit)
    return rows


def aggregate_throughput(gb):
    """The 'aggregate throughput never falls as pairs grow' row."""
    target = "aggregate throughput never falls as producer/worker pairs grow"
    points = []
    for name, run in (gb.runs.items() if gb else []):
        m = re.fullmatch(r"throughput/tachyon[^/]*/(\d+):(\d+)", name)
        if m and not run.error:
            pairs = int(m.group(1))
            oversubscribed = bool(run.label) or (gb.cpus is not None and 2 * pairs > gb.cpus)
            points.append((pairs, run.value("items_per_second"), oversubscribed))
    points.sort()
    if not points:
        return (target, "—", status(None))
    shown = ", ".join(f"{p}:{p} {format_rate(v)}{' (oversubscribed)' if o else ''}"
                      for p, v, o in points)
    fitting = [v for _, v, o in points if not o and v is not None]
    if len(fitting) < 2:
        return (target, f"{shown}; only {len(fitting)} pair count fits on "
                        f"{gb.cpus or '?'} CPUs, so it cannot be shown here", status(None))
    ok = all(b >= a for a, b in zip(fitting, fitting[1:]))
    return (target, shown, status(ok))


def render_summary(rows, out):
    out.append("## Targets")
    out.append("")
    out.append("Figures from a shared, noisy machine: reported, not asserted.")
    out.append("")
    out.append("| target | measured | status |")
    out.append("|---|---|---|")
    for target, measured, verdict in rows:
        out.append(f"| {cell(target)} | {cell(measured)} | {verdict} |")
    out.append("")


# ---- main ---------------------------------------------------------------------------------

def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gbench", nargs="?", help="Google Benchmark JSON (gbench.json)")
    parser.add_argument("--latency", help="tachyon_latency --json output (latency.json)")
    parser.add_argument("--callgrind", help="perf/callgrind output (callgrind.txt)")
    parser.add_argument("--results", help="a results directory: reads the three files there")
    parser.add_argument("--metric", choices=("real_time", "cpu_time"), default="real_time",
                        help="which time to compare (default: real_time)")
    options = parser.parse_args(argv)

    if options.results:
        def present(name):
            path = os.path.join(options.results, name)
            return path if os.path.exists(path) else None
        options.gbench = options.gbench or present("gbench.json")
        options.latency = options.latency or present("latency.json")
        options.callgrind = options.callgrind or present("callgrind.txt")

    gb_data = load_json(options.gbench, "Google Benchmark JSON")
    latency = load_json(options.latency, "latency JSON")
    counts = load_callgrind(options.callgrind)
    if gb_data is None and latency is None and counts is None:
        print("bench_table.py: nothing to report (no readable input)", file=sys.stderr)
        return 1

    gb = GbReport(gb_data, options.metric) if gb_data is not None else None
    out = ["# tachyon benchmark report", ""]
    render_summary(summarize(gb, latency, counts), out)
    if gb is not None:
        gb.render(out)
        out.append("")
    else:
        out += ["## Google Benchmark (tachyon_bench)", "", "Not run.", ""]
    if latency is not None:
        render_latency(latency, out)
    else:
        out += ["## Latency (tachyon_latency)", "", "Not run.", ""]
    if counts:
        render_callgrind(counts, out)
    else:
        out += ["## Instructions per operation (perf/callgrind)", "", "Not run.", ""]
    print("\n".join(out).rstrip("\n"))
    return 3 if gb is not None and gb.errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
