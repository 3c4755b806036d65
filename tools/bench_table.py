#!/usr/bin/env python3
"""Prints the Markdown report of one tools/bench run: tachyon beside its peers, and the targets.

Usage: tools/bench_table.py [GBENCH_JSON] [--latency LATENCY_JSON] [--callgrind CALLGRIND_TXT]
                            [--nats NATS_JSON] [--journal JOURNAL_JSON]
                            [--metric real_time|cpu_time]
       tools/bench_table.py --results DIR    (DIR/gbench.json, DIR/latency.json,
                                              DIR/callgrind.txt, DIR/nats.json and
                                              DIR/journal.json, each where present)

Inputs, each optional (a missing one is reported as not measured):
  GBENCH_JSON    Google Benchmark's --benchmark_out_format=json output (tachyon_bench).
  LATENCY_JSON   tachyon_latency --json output: {"groups": [{"group", "title", "rows": [{"name",
                 "samples", "p50_ns", ..., "max_ns", "mean_ns", "curve"}], "ratios": [...]}]}.
  CALLGRIND_TXT  perf/callgrind's output: one "<hot path>  <instructions per op>" line each.
  NATS_JSON      tachyon_nats_bench --json output: {"figures": [{"figure", "title", "unit",
                 "sides": [{"name", "median", "median_p99", "rounds"}], "ratios": [{"side",
                 "peer", "value", "min", "max", "per_round", "target", "met"}]}]}.
  JOURNAL_JSON   tachyon_journal_bench --json output: the same shape as NATS_JSON, each side
                 with "counters" ({name: {"median", "rounds"}}), each figure with "unit" (ns,
                 events/s, B/s), "higher_is_better" and "checks" ([{"side", "what", "worst",
                 "segments_ahead", "made_inline", "segments", "met"}]).

Sections: the Google Benchmark pairs, each latency group, the callgrind counts, the NATS
bridge's figures, the journal's figures, and a summary of
every target of the issue with the measured value and met / missed / not measured. Figures from
a shared machine are reported, not asserted: a missed target does not change the exit status.

Pairing: benchmarks are named <figure>/<impl>[/<args>...], for example publish/tachyon and
publish/moodycamel_tokens, or throughput/tachyon/2:2 and throughput/moodycamel/2:2. Every
benchmark whose <impl> starts with "tachyon" is paired with every benchmark that has the same
<figure> and <args> and an <impl> that does not. The value compared is the time per iteration
(real_time unless --metric says otherwise), or items_per_second for the throughput figures,
or the time per event for figures whose iteration runs several (PER_EVENT_FIGURES).
The ratio column is a speed ratio, the same way round for both: tachyon's rate / the peer's, or
the peer's time / tachyon's. Above 1.00, tachyon is faster.

Statistic: the median aggregate when the run had repetitions, else the mean aggregate, else the
median of the individual runs, else the single run.

Emulation: a benchmark program that finds itself running under emulation (qemu-user running the
aarch64 build on an x86-64 host; bench/emulation.hpp) marks its JSON "emulated". Such figures
time the emulator, not the machine: no report is printed for them.

Exit status: 0; 1 if no input could be read; 3 if a benchmark reported an error (the report is
still printed); 4 if an input was measured under emulation (nothing is printed on stdout).
Standard library only.
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
RATE_FIGURES = {"publish_batch", "throughput_1p1w", "throughput", "drain_blocked"}

# Figures whose iteration runs several events (the user counter events_per_iteration, 1 when
# absent): compared by time per event, the iteration's time divided by it.
PER_EVENT_FIGURES = {"breaker_success_path"}

# The handler work of the drain_blocked figure that carries the target (bench_main.cpp's
# drain_work); the work:0 pair is shown without one.
DRAIN_ARGS = "work:64"

# Targets on Google Benchmark pairs, shown in that section's table beside the pair:
# (figure, args, tachyon impl, peer impl) -> [(minimum speed ratio, text)]. The speed ratio is
# tachyon's rate / the peer's, or the peer's time / tachyon's, so "time <= 2x" is speed >= 0.5.
# publish/tachyon_ts's target needs the clock_now figure as well: see summarize().
GB_TARGETS = {
    ("throughput_1p1w", "", "tachyon", "moodycamel_tokens"): [(0.8, "≥ 0.8× moodycamel")],
    ("drain_blocked", DRAIN_ARGS, "tachyon", "prefilled"): [(0.9, "≥ 0.9× pre-filled")],
    ("publish", "", "tachyon", "moodycamel_tokens"): [(0.5, "time ≤ 2× moodycamel")],
    ("publish_batch", "", "tachyon", "moodycamel_bulk"): [(0.8, "≥ 0.8× moodycamel bulk")],
    ("dispatch_1", "", "tachyon", "std_function"): [(0.5, "time ≤ 2× std::function")],
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
        if figure in PER_EVENT_FIGURES and v is not None:
            v /= run.value("events_per_iteration") or 1.0
            return v, with_cv(f"{format_time(v)}/event", run.cv(self.metric))
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
        for figure, args, impl, run, peers in self.pairs:
            label = figure + (f" {args}" if args else "")
            if run.label:
                label += f" ({run.label})"
            t_value, t_text = self.figure_value(figure, run)
            for peer_impl, peer in (peers or [("(no peer)", None)]):
                p_value, p_text = (None, "—") if peer is None else self.figure_value(figure, peer)
                speed = self.speed(figure, t_value, p_value)
                targets, verdicts = [], []
                for threshold, text in GB_TARGETS.get((figure, args, impl, peer_impl), []):
                    targets.append(text)
                    verdicts.append(status(None if speed is None else speed >= threshold))
                if (figure, impl) == ("publish", "tachyon_ts") and peer_impl.startswith("moodycamel"):
                    targets.append("time ≤ 2× moodycamel + clock_now (see Targets)")
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
    meta = {k: v for k, v in data.items() if k not in ("groups", "emulated", "emulated_why")}
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
# dispatch() had one (30) before; its count is still shown, without a target.
# The targets are the plain paths' only: the rows of optional features (interceptors, keys,
# serial handlers, several types...) are shown beside them without one.
CALLGRIND_TARGETS = [("publish() of an", "publish()", 60.0),
                     ("drained event (poll", "drained event", 60.0)]
# The plain drained event, and the same with a breaker (shown without a target, though the
# drained event's prefix matches it; failure_extras() sets the two side by side).
CALLGRIND_DRAINED = "drained event (poll"
CALLGRIND_BREAKER = "drained event, 1 handler with a breaker"
CALLGRIND_NO_TARGET = {CALLGRIND_BREAKER}


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
            if label.startswith(prefix) and label not in CALLGRIND_NO_TARGET:
                target, verdict = f"≤ {limit:g}", status(value <= limit)
        out.append(f"| {cell(label)} | {value:.1f} | {target} | {verdict} |")
    out.append("")


# ---- targets summary -------------------------------------------------------------------------

def summarize(gb, latency, counts, nats=None, journal=None):
    """([target rows], [extra figure rows]): each row (what, tachyon, peer, ratio, status text).
    The ratio is written the way its target is: a speed ratio (≥), a time ratio (≤), or the
    figure over its bound (≤ 1)."""
    rows, extras = [], []

    def add(what, tachyon, peer, ratio, ok):
        rows.append((what, tachyon, peer, ratio, status(ok)))

    def extra(what, tachyon, peer, ratio):
        extras.append((what, tachyon, peer, ratio, "—"))

    def usable(run):
        return run is not None and not run.error

    def pair(figure, tachyon_impl, peer_impl, args=""):
        """(tachyon value, text, label, peer value, text, speed) of a Google Benchmark pair;
        the tachyon impl is matched exactly, the peer by prefix."""
        if gb is None:
            return None, "not run", "", None, "not run", None
        t = gb.runs.get("/".join(x for x in (figure, tachyon_impl, args) if x))
        p = gb.lookup(figure, peer_impl, args)
        t_value, t_text = gb.figure_value(figure, t) if t is not None else (None, "—")
        p_value, p_text = gb.figure_value(figure, p) if p is not None else (None, "—")
        t_value = t_value if usable(t) else None
        p_value = p_value if usable(p) else None
        return (t_value, t_text, t.label if t is not None else "", p_value, p_text,
                gb.speed(figure, t_value, p_value))

    def speed_row(what, figure, tachyon_impl, peer_impl, minimum, args=""):
        t, t_text, label, p, p_text, speed = pair(figure, tachyon_impl, peer_impl, args)
        if label:
            t_text += f" ({label})"
        add(what, t_text, p_text, "—" if speed is None else f"{speed:.2f}× (≥ {minimum:g})",
            None if speed is None else speed >= minimum)

    def time_row(what, figure, tachyon_impl, peer_impl, maximum):
        t, t_text, _, p, p_text, speed = pair(figure, tachyon_impl, peer_impl)
        ratio = None if speed is None else 1 / speed  # tachyon's time / the peer's
        add(what, t_text, p_text,
            "—" if ratio is None else f"tachyon/peer time {ratio:.2f}× (≤ {maximum:g})",
            None if ratio is None else ratio <= maximum)

    # 1. One producer to one worker, 16-byte events.
    speed_row("1 producer → 1 worker throughput, 16-byte events, vs moodycamel (token enqueue "
              "into a pre-sized queue, token bulk dequeue of 64), pinned, busy-spin: ≥ 0.8×",
              "throughput_1p1w", "tachyon", "moodycamel_tokens", 0.8)

    # 2. Draining a full lane while the producer blocks.
    speed_row(f"worker's drain rate, lane full and the producer blocked (overflow::block), vs "
              f"the same drain of a pre-filled lane, no producer; handler {DRAIN_ARGS}: ≥ 0.9×",
              "drain_blocked", "tachyon", "prefilled", 0.9, DRAIN_ARGS)

    # 3. publish() cost, timestamps off.
    time_row("publish(), manual mode, drained off the clock, timestamps = false, vs moodycamel "
             "try_enqueue with a token: time ≤ 2× peer", "publish", "tachyon",
             "moodycamel_tokens", 2.0)

    # 4. publish() cost, timestamps on: <= 2 x peer + one clock read, measured in the run.
    ts, ts_text, _, peer, peer_text, _ = pair("publish", "tachyon_ts", "moodycamel_tokens")
    clock, clock_text, _, _, _, _ = pair("clock_now", "tachyon", "steady_clock")
    bound = None if peer is None or clock is None else 2 * peer + clock
    add("publish(), same, timestamps = true: time ≤ 2× peer + one clock read (clock_now/tachyon,"
        " same run)", ts_text,
        f"{peer_text}; clock read {clock_text}; bound {format_time(bound)}",
        "—" if ts is None or bound is None else f"{ts / bound:.2f} of the bound (≤ 1)",
        None if ts is None or bound is None else ts <= bound)

    # 5. publish_batch.
    speed_row("publish_batch vs moodycamel enqueue_bulk, 64 a call: ≥ 0.8×",
              "publish_batch", "tachyon", "moodycamel_bulk", 0.8)

    # 6. Round trip, from the latency harness's paired ratios.
    roundtrip = latency_group(latency, "roundtrip")
    ratios = roundtrip.get("ratios", []) if roundtrip else []

    def ratio_with(*needles):
        for r in ratios:
            if all(n in r.get("figure", "") for n in needles) and r.get("value") is not None:
                return r
        return None

    def rt_p50(name):
        for row in (roundtrip or {}).get("rows", []):
            if row.get("name") == name and row.get("samples"):
                return f"p50 {format_time(row.get('p50_ns'))}, p99 {format_time(row.get('p99_ns'))}"
        return "—"

    r = ratio_with("tachyon_busy_spin", "moodycamel_tokens")
    add("one-hop round trip, busy_spin, vs moodycamel with tokens, paired median over rounds of "
        "per-round p50 ratios (tachyon_latency): ≤ 1.05×", rt_p50("tachyon_busy_spin"),
        rt_p50("moodycamel_tokens"),
        f"{r['value']:.3f}× (rounds {format_number(r.get('min'))}–{format_number(r.get('max'))};"
        " ≤ 1.05)" if r else "—", None if r is None else r["value"] <= 1.05)

    # 7. Priority: critical queue wait p99 within batch x handler + the hop's p99, every cell.
    priority = latency_group(latency, "priority")
    hop_source = (priority or {}).get("hop_source", "")
    hop_p99 = (priority or {}).get("hop_p99_ns")
    what = ("critical queue-wait p99 while the low lane is saturated ≤ batch × handler time + "
            "the hop's p99, in every cell (hop p99 = tachyon_busy_spin round-trip p99 / 2"
            + (f", {hop_source.split(':')[0]}" if hop_source else "") + ")")
    cells = [row for row in (priority or {}).get("rows", [])
             if row.get("samples") and row.get("bound_hop_p99_ns")
             and row.get("p99_ns") is not None]
    if cells:
        within = [row for row in cells if row["p99_ns"] <= row["bound_hop_p99_ns"]]
        worst = max(cells, key=lambda row: row["p99_ns"] / row["bound_hop_p99_ns"])
        add(what, f"{len(within)} of {len(cells)} cells within; worst {cell(worst['name'])}: "
                  f"p99 {format_time(worst['p99_ns'])}",
            f"its bound {format_time(worst['bound_hop_p99_ns'])} (hop p99 "
            f"{format_time(hop_p99)})",
            f"worst p99 / bound {worst['p99_ns'] / worst['bound_hop_p99_ns']:.2f} (≤ 1)",
            len(within) == len(cells))
    else:
        add(what, "no probe samples" if priority else "not run", "—", "—", None)

    # 8. Instructions per operation.
    peer_publish = callgrind_count(counts, "peer, moodycamel try_enqueue")
    for prefix, short, limit in CALLGRIND_TARGETS:
        v = callgrind_count(counts, prefix)
        peer_text = "—"
        if short == "publish()" and peer_publish is not None:
            peer_text = f"moodycamel try_enqueue+token {peer_publish:.1f}"
        add(f"instructions per {short} (perf/callgrind): ≤ {limit:g}",
            "not run" if v is None else f"{v:.1f}", peer_text,
            "—" if v is None else f"{v / limit:.2f} of the limit (≤ 1)",
            None if v is None else v <= limit)

    # 9. dispatch() against std::function.
    time_row("dispatch() to one handler vs a std::function call doing the same work: "
             "time ≤ 2×", "dispatch_1", "tachyon", "std_function", 2.0)

    # 10. P producers to W workers.
    target, measured, verdict = aggregate_throughput(gb)
    rows.append((target, measured, "—", "—", verdict))

    # Extra figures: earlier targets that still say something, without a verdict.
    r = ratio_with("mutex")
    extra("round trip vs mutex + condition variable (earlier target: ≥ 5× faster)",
          rt_p50("tachyon_busy_spin"), rt_p50("mutex_cv"),
          f"{r['value']:.1f}× faster" if r else "—")
    for figure, peer, what in (
            ("idle_scan", "moodycamel", "idle scan of four empty lanes (earlier target: ≤ 10 ns)"),
            ("dispatch_1", "direct_call", "dispatch(), 1 handler, vs a direct call (earlier "
                                          "target: ≤ 5 ns)"),
            ("dispatch_1", "boost_signals2", "dispatch(), 1 handler, vs Boost.Signals2 (earlier "
                                             "target: ≥ 3× faster)"),
            ("clock_now", "steady_clock", "tachyon::clock::now() vs steady_clock::now()")):
        _, t_text, _, _, p_text, speed = pair(figure, "tachyon", peer)
        extra(what, t_text, p_text, "—" if speed is None else f"{speed:.2f}× faster"
              if speed >= 1 else f"{1 / speed:.2f}× slower")
    v = callgrind_count(counts, "dispatch()")
    extra("instructions per dispatch(), 1 handler (earlier target: ≤ 30)",
          "not run" if v is None else f"{v:.1f}", "—", "—")
    failure_extras(pair, extra, latency, counts)
    nats_targets(add, nats, counts)
    journal_targets(add, extra, journal, counts)
    return rows, extras


def failure_extras(pair, extra, latency, counts):
    """The failure handling's costs (no targets): a retry scheduled vs a plain failure, the
    breaker's success path, a retry's latency beyond its backoff, the breaker in instructions."""
    figure = "failed_delivery_retry_scheduled"
    t, t_text, _, p, p_text, _ = pair(figure, "tachyon", "plain_failure")
    _, _, _, n, n_text, _ = pair(figure, "tachyon", "no_failure")
    parts = []
    if t is not None and p is not None:
        parts.append(f"the retry adds {format_time(t - p)}")
    if p is not None and n is not None:
        parts.append(f"the throw ≈ {format_time(p - n)}")
    extra("a failed delivery with its retry scheduled (retry max_attempts 2, 1-hour delay) vs "
          "a plain failure, publish + run_once, manual bus; both include one throw + catch "
          "(~1 µs)", t_text, f"plain failure {p_text}; no failure {n_text}",
          "; ".join(parts) or "—")
    for op in ("dispatch", "drain"):
        t, t_text, _, p, p_text, _ = pair("breaker_success_path", "tachyon", "no_breaker", op)
        extra(f"a breaker's success path (failure_threshold 5, never failing), {op}, per event, "
              "vs no breaker", t_text, p_text,
              "—" if t is None or p is None or p == 0 else
              f"{t / p:.2f}× the time ({'+' if t >= p else '−'}{format_time(abs(t - p))})")
    retry = latency_group(latency, "retry")
    for row in (retry or {}).get("rows", []):
        if not row.get("samples"):
            continue
        extra(f"a retry's latency beyond its backoff, {row.get('wait', '?')} worker, delay "
              f"{format_time(row.get('delay_ns'))} (tachyon_latency, {row['name']})",
              f"p50 {format_time(row.get('p50_ns'))}, p99 {format_time(row.get('p99_ns'))}",
              "—", "—")
    if retry is None:
        extra("a retry's latency beyond its backoff (tachyon_latency retry group)", "not run",
              "—", "—")
    v = callgrind_count(counts, CALLGRIND_BREAKER)
    base = callgrind_count(counts, CALLGRIND_DRAINED)
    extra("instructions per drained event, 1 handler with a breaker (perf/callgrind)",
          "not run" if v is None else f"{v:.1f}",
          "—" if base is None else f"without a breaker {base:.1f}",
          "—" if v is None or base is None else f"+{v - base:.1f}")


# ---- the NATS bridge -------------------------------------------------------------------------

# perf/callgrind rows of a bus with a bridge attached (exporting another type) and the same bus
# without one: (what, label with the bridge, label without).
CALLGRIND_BRIDGED = [
    ("publish()", "publish(), bridged bus, type not exported", "publish(), unbridged twin bus"),
    ("drained event", "drained event, bridged bus, type not exp.", "drained event, unbridged twin bus"),
]


def figure_named(report, name):
    for f in (report or {}).get("figures", []):
        if f.get("figure") == name:
            return f
    return None


def format_nats_value(figure, value):
    if value is None:
        return "—"
    if figure.get("unit") == "ns":  # round trips: µs to ms, three significant digits
        return f"{value / 1e6:.3g} ms" if value >= 999.5e3 else f"{value / 1e3:.3g} µs"
    return format_rate(value)


def side_named(figure, name):
    for side in (figure or {}).get("sides", []):
        if side.get("name") == name:
            return side
    return None


def nats_side_text(figure, side):
    if side is None:
        return "—"
    text = format_nats_value(figure, side.get("median"))
    if figure.get("unit") == "ns":
        text = f"p50 {text}, p99 {format_nats_value(figure, side.get('median_p99'))}"
    return f"{side['name']} {text}"


def nats_targets(add, nats, counts):
    """The NATS bridge's rows of the Targets table: three paired figures from
    tachyon_nats_bench, and the bridged bus's instruction counts from perf/callgrind."""
    wanted = [("roundtrip", "round trip bus A → NATS → bus B → NATS → bus A, core NATS, loopback, "
                            "vs libnats request/reply (natsConnection_Request, raw responder), "
                            "median of paired per-round p50 ratios: ≤ 1.2×"),
              ("throughput", "NATS export throughput, one type, 64-byte events, vs "
                             "natsConnection_Publish in a loop, median of paired rounds: ≥ 0.8×"),
              ("jetstream", "JetStream export throughput, 64-byte events, vs js_PublishAsync "
                            "(MaxPending 4096), median of paired rounds: ≥ 0.8×")]
    for name, what in wanted:
        f = figure_named(nats, name)
        ratio = None
        for r in (f or {}).get("ratios", []):
            if r.get("target"):
                ratio = r
        if f is None or ratio is None:
            add(what, "not run" if nats is None else "not measured", "—", "—", None)
            continue
        add(what, nats_side_text(f, side_named(f, ratio["side"])),
            nats_side_text(f, side_named(f, ratio["peer"])),
            f"{ratio['value']:.3f}× (rounds {format_number(ratio.get('min'))}–"
            f"{format_number(ratio.get('max'))}; {ratio['target']})", ratio.get("met"))
    for what, with_label, without_label in CALLGRIND_BRIDGED:
        w = callgrind_count(counts, with_label)
        wo = callgrind_count(counts, without_label)
        add(f"instructions per {what} of a type not exported, on a bus with a NATS bridge "
            "attached vs the same bus without (perf/callgrind): equal",
            "not run" if w is None else f"{w:.1f}", "—" if wo is None else f"without {wo:.1f}",
            "—" if w is None or wo is None else f"{w - wo:+.1f}",
            None if w is None or wo is None else w == wo)


def render_nats(nats, out):
    out.append("## NATS bridge (tachyon_nats_bench)")
    out.append("")
    out.append(f"Paired rounds ({nats.get('rounds', '?')}; raw and bridge alternate, the order "
               f"swapped each round); {'quick' if nats.get('quick') else 'full'} run, "
               f"{nats.get('cpus', '?')} CPUs shared with nats-server.")
    out.append("")
    for f in nats.get("figures", []):
        out.append(f"### {f.get('figure')}: {f.get('title', '')}")
        out.append("")
        for line in f.get("settings", []):
            out.append(f"- {line}")
        out.append("")
        p99 = f.get("unit") == "ns"
        out.append("| side | median" + (" p50 | median p99" if p99 else "") +
                   " | per round | what |")
        out.append("|---|--:" + ("|--:" if p99 else "") + "|---|---|")
        for side in f.get("sides", []):
            rounds = ", ".join(format_nats_value(f, r.get("value")) for r in side.get("rounds", []))
            out.append(f"| {cell(side.get('name'))} | {format_nats_value(f, side.get('median'))}" +
                       (f" | {format_nats_value(f, side.get('median_p99'))}" if p99 else "") +
                       f" | {rounds} | {cell(side.get('what', ''))} |")
        out.append("")
        out.append("| ratio | median | min | max | per round | target | met |")
        out.append("|---|--:|--:|--:|---|---|---|")
        for r in f.get("ratios", []):
            per_round = ", ".join(f"{x:.3f}" for x in r.get("per_round", []))
            target = r.get("target") or ""
            met = status(r.get("met")) if target else ""
            out.append(f"| {cell(r.get('side'))} / {cell(r.get('peer'))} | {r['value']:.3f} | "
                       f"{r['min']:.3f} | {r['max']:.3f} | {per_round} | {target} | {met} |")
        out.append("")
        for n in f.get("notes", []):
            out.append(f"Note: {n}")
        if f.get("notes"):
            out.append("")


# ---- the journal -----------------------------------------------------------------------------

# perf/callgrind rows of a journaled type with config::journal on, and the same type with it off:
# (what, label with the journal, label without, at most this many times the instructions or None).
CALLGRIND_JOURNALED = [
    ("publish()", "publish(), journaled 16 B, journal on", "publish(), same type, journal off",
     2.0),
    ("drained event", "drained event, journaled, journal on",
     "drained event, same type, journal off", None),
]


def journal_unit_value(figure, value):
    """A side's value in its figure's unit: ns per operation, or a rate."""
    if value is None:
        return "—"
    unit = figure.get("unit", "")
    if unit == "ns":
        return format_time(value)
    if unit == "B/s":
        for suffix, scale in (("GB/s", 1e9), ("MB/s", 1e6), ("kB/s", 1e3)):
            if abs(value) >= scale:
                return f"{value / scale:.3g} {suffix}"
        return f"{value:.3g} B/s"
    return format_rate(value)


def journal_ratio(figure, side, peer=None):
    """The figure's ratio entry for `side` (and `peer`, if given), or None."""
    for r in (figure or {}).get("ratios", []):
        if r.get("side") == side and (peer is None or r.get("peer") == peer):
            return r
    return None


def journal_counter(side, name):
    c = (side or {}).get("counters", {}).get(name)
    return None if c is None else c.get("median")


def journal_side_text(figure, side):
    if side is None:
        return "—"
    return f"{side['name']} {journal_unit_value(figure, side.get('median'))}"


def journal_targets(add, extra, journal, counts):
    """The journal's rows of the Targets table: the paired figures of tachyon_journal_bench, the
    instruction counts of perf/callgrind, and (without targets) preparation and reading."""
    not_run = "not run" if journal is None else "not measured"

    def ratio_row(what, figure_name, side, peer):
        f = figure_named(journal, figure_name)
        r = journal_ratio(f, side, peer)
        if f is None or r is None or not r.get("target"):
            add(what, not_run, "—", "—", None)
            return
        add(what, journal_side_text(f, side_named(f, side)), journal_side_text(f, side_named(f, peer)),
            f"{r['value']:.3f}× (rounds {format_number(r.get('min'))}–"
            f"{format_number(r.get('max'))}; {r['target']})", r.get("met"))

    ratio_row("publish() of a 16-byte journaled event, journal in process mode vs the same bus "
              "with it off, manual mode, median of paired per-round time ratios: ≤ 2×",
              "publish", "journal_process", "journal_off")
    for what, on_label, off_label, limit in CALLGRIND_JOURNALED:
        on = callgrind_count(counts, on_label)
        off = callgrind_count(counts, off_label)
        ratio = None if on is None or off is None or off == 0 else on / off
        text = (f"instructions per {what} of a journaled 16-byte event, journal on vs the same "
                "type with it off (perf/callgrind)")
        if limit is None:
            extra(text, "not run" if on is None else f"{on:.1f}",
                  "—" if off is None else f"off {off:.1f}",
                  "—" if ratio is None else f"{ratio:.2f}×")
        else:
            add(f"{text}: ≤ {limit:g}×", "not run" if on is None else f"{on:.1f}",
                "—" if off is None else f"off {off:.1f}",
                "—" if ratio is None else f"{ratio:.2f}× (≤ {limit:g})",
                None if ratio is None else ratio <= limit)
    ratio_row("1 producer → 1 worker throughput, 16-byte journaled events, journal on vs off, "
              "median of paired per-round rate ratios: ≥ 0.5×",
              "throughput_1p1w", "journal_process", "journal_off")
    ratio_row("journal write bandwidth, the writer alone (reserve, fill with CRC-32C, commit; "
              "segment rolls timed) vs memcpy of the same 72-byte records into touched mapped "
              "pages: ≥ 0.7×", "write", "journal_writer", "memcpy")
    ratio_row("journal write bandwidth through publish() (72 bytes of record per publish, "
              "manual mode) vs the same memcpy: ≥ 0.7×", "write", "publish_journal_process",
              "memcpy")

    prepare = figure_named(journal, "prepare")
    checks = (prepare or {}).get("checks", [])
    if not checks:
        add("segment preparation: the writer never faults a page it rolls onto when "
            "tachyon-journal prepared it (1 MiB segments)", not_run, "—", "—", None)
    for c in checks:
        side = side_named(prepare, c["side"])
        made = f"{c['made_inline']:.0f} of {c['segments']:.0f} segments made inline"
        add(f"segment preparation ({c['side']}, 1 MiB segments): the writer never faults a page "
            "of a segment tachyon-journal prepared ahead; preparation's rate and how often it "
            "fell behind reported",
            f"prepared at {journal_unit_value(prepare, (side or {}).get('median'))}, "
            f"{format_number(journal_counter(side, 'prepare_us_per_segment'))} µs a segment",
            made,
            f"worst {c['worst']:.3g} faults per prepared segment over "
            f"{c['segments_ahead']:.0f} segments (= 0)", c.get("met"))

    for name, side, peer, what in (
            ("publish", "journal_off", "unjournaled_type",
             "publish() of the journaled type with the journal off vs a type without the "
             "journaled option (time ratio)"),
            ("publish_no_ts", "journal_process", "journal_off",
             "publish() with the journal, timestamps off (the journal reads the clock itself), vs "
             "off (time ratio)"),
            ("write", "journal_writer_rolls_off_clock", "memcpy",
             "the journal writer alone with segment rolls off the clock vs memcpy (bandwidth "
             "ratio)")):
        f = figure_named(journal, name)
        r = journal_ratio(f, side, peer)
        extra(what, journal_side_text(f, side_named(f, side)) if f else "not run",
              journal_side_text(f, side_named(f, peer)) if f else "—",
              "—" if r is None else f"{r['value']:.3f}×")
    for name, side, what in (("read", "journal_reader", "journal_reader: construct and iterate "
                                                        "every record (events/s; bytes/s)"),
                             ("replay", "replay_into_manual_bus",
                              "replay(bus, reader) into a manual bus (events/s)")):
        f = figure_named(journal, name)
        sd = side_named(f, side)
        text = "not run" if sd is None else journal_side_text(f, sd)
        bps = journal_counter(sd, "bytes_per_second")
        if bps is not None:
            text += f"; {bps / 1e6:.3g} MB/s"
        extra(what, text, "—", "—")


def render_journal(journal, out):
    out.append("## Journal (tachyon_journal_bench)")
    out.append("")
    out.append(f"Paired rounds ({journal.get('rounds', '?')} of {journal.get('min_time', '?')} s "
               f"per side, the order reversed every other round); "
               f"{'quick' if journal.get('quick') else 'full'} run, "
               f"{journal.get('cpus', '?')} CPUs; journal directories on "
               f"{journal.get('filesystem', '?')}.")
    out.append("")
    for f in journal.get("figures", []):
        out.append(f"### {f.get('figure')}: {f.get('title', '')}")
        out.append("")
        for line in f.get("settings", []):
            out.append(f"- {line}")
        out.append("")
        out.append("| side | median | per round | counters (medians) | what |")
        out.append("|---|--:|---|---|---|")
        for side in f.get("sides", []):
            rounds = ", ".join(journal_unit_value(f, r.get("value")) for r in side.get("rounds", []))
            counters = ", ".join(f"{k} {format_number(v.get('median'))}"
                                 for k, v in side.get("counters", {}).items()
                                 if k not in ("items_per_second", "bytes_per_second"))
            what = side.get("what", "")
            if side.get("error"):
                what = f"**error: {side['error']}** {what}"
            out.append(f"| {cell(side.get('name'))} | {journal_unit_value(f, side.get('median'))} "
                       f"| {rounds} | {cell(counters)} | {cell(what)} |")
        out.append("")
        if f.get("ratios"):
            out.append("| ratio | median | min | max | per round | target | met |")
            out.append("|---|--:|--:|--:|---|---|---|")
            for r in f.get("ratios", []):
                per_round = ", ".join(f"{x:.3f}" for x in r.get("per_round", []))
                target = r.get("target") or ""
                met = status(r.get("met")) if target else ""
                out.append(f"| {cell(r.get('side'))} / {cell(r.get('peer'))} | {r['value']:.3f} "
                           f"| {r['min']:.3f} | {r['max']:.3f} | {per_round} | {target} | {met} |")
            out.append("")
        for c in f.get("checks", []):
            out.append(f"Check, {c['side']}: {c['what']}: worst round {c['worst']:.3g} over "
                       f"{c['segments_ahead']:.0f} segments prepared ahead: {status(c.get('met'))}; "
                       f"{c['made_inline']:.0f} of {c['segments']:.0f} segments made inline.")
        for n in f.get("notes", []):
            out.append(f"Note: {n}")
        if f.get("checks") or f.get("notes"):
            out.append("")


def aggregate_throughput(gb):
    """The 'aggregate throughput never falls as pairs grow' row: (target, measured, status)."""
    target = "P producers → W workers aggregate throughput never falls as pairs grow"
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
                        f"{gb.cpus or '?'} CPUs, so this machine cannot show it", status(None))
    ok = all(b >= a for a, b in zip(fitting, fitting[1:]))
    return (target, shown, status(ok))


def render_summary(summary, out):
    rows, extras = summary
    out.append("## Targets")
    out.append("")
    out.append("Figures from a shared, noisy machine: reported, not asserted. Every ratio is "
               "between figures of the same run.")
    out.append("")
    out.append("| target | tachyon | peer | ratio | status |")
    out.append("|---|---|---|---|---|")
    for row in rows:
        out.append("| " + " | ".join(cell(c) for c in row) + " |")
    out.append("")
    out.append("Extra figures (no target):")
    out.append("")
    out.append("| figure | tachyon | peer | ratio |")
    out.append("|---|---|---|---|")
    for row in extras:
        out.append("| " + " | ".join(cell(c) for c in row[:4]) + " |")
    out.append("")


# ---- main ---------------------------------------------------------------------------------

def emulated_inputs(gb_data, inputs):
    """[(what, why)] for each input whose program ran under emulation. Google Benchmark's
    context holds strings ("true"); the other programs' JSON a boolean."""
    found = []
    context = (gb_data or {}).get("context", {})
    if context.get("emulated") == "true":
        found.append(("Google Benchmark JSON", context.get("emulated_why", "no reason given")))
    for what, data in inputs:
        if isinstance(data, dict) and data.get("emulated") is True:
            found.append((what, data.get("emulated_why", "no reason given")))
    return found


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gbench", nargs="?", help="Google Benchmark JSON (gbench.json)")
    parser.add_argument("--latency", help="tachyon_latency --json output (latency.json)")
    parser.add_argument("--callgrind", help="perf/callgrind output (callgrind.txt)")
    parser.add_argument("--nats", help="tachyon_nats_bench --json output (nats.json)")
    parser.add_argument("--journal", help="tachyon_journal_bench --json output (journal.json)")
    parser.add_argument("--results", help="a results directory: reads the five files there")
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
        options.nats = options.nats or present("nats.json")
        options.journal = options.journal or present("journal.json")

    gb_data = load_json(options.gbench, "Google Benchmark JSON")
    latency = load_json(options.latency, "latency JSON")
    counts = load_callgrind(options.callgrind)
    nats = load_json(options.nats, "NATS bench JSON")
    journal = load_json(options.journal, "journal bench JSON")
    if (gb_data is None and latency is None and counts is None and nats is None
            and journal is None):
        print("bench_table.py: nothing to report (no readable input)", file=sys.stderr)
        return 1

    emulated = emulated_inputs(gb_data, [("latency JSON", latency), ("NATS bench JSON", nats),
                                         ("journal bench JSON", journal)])
    if emulated:
        for what, why in emulated:
            print(f"bench_table.py: the {what} was measured under emulation: {why}.",
                  file=sys.stderr)
        print("bench_table.py: refusing to report it: an emulator's timings measure the emulator, "
              "not the machine the code is for. Run the benchmarks on a real machine of that "
              "architecture (tools/bench there).", file=sys.stderr)
        return 4

    gb = GbReport(gb_data, options.metric) if gb_data is not None else None
    out = ["# tachyon benchmark report", ""]
    render_summary(summarize(gb, latency, counts, nats, journal), out)
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
    if nats is not None:
        render_nats(nats, out)
    else:
        out += ["## NATS bridge (tachyon_nats_bench)", "", "Not run.", ""]
    if journal is not None:
        render_journal(journal, out)
    else:
        out += ["## Journal (tachyon_journal_bench)", "", "Not run.", ""]
    print("\n".join(out).rstrip("\n"))
    return 3 if gb is not None and gb.errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
