#!/usr/bin/env python3
"""Plots tachyon_latency's percentile curves with gnuplot.

Usage: tools/bench_plot.py LATENCY_JSON OUT_DIR

Writes OUT_DIR/latency.png (the roundtrip group: one line per row) and, when the run has an
open_loop group, OUT_DIR/latency_open_loop.png (tachyon's rows, one line per offered rate),
with the gnuplot script beside each (.gp) so a plot can be redrawn or restyled. Axes in the
HDR Histogram style: x is the percentile p on the scale 1 / (1 - p), so 90%, 99%, 99.9%, ...
are equally spaced; y is nanoseconds, log scale. The 100th percentile (the maximum) has no
place on that axis and is left out; the tables give it.

Exit status: 0; 1 if the JSON cannot be read or gnuplot fails; 2 if gnuplot is not installed.
Standard library only (plus the gnuplot program).
"""

import os
import shutil
import subprocess
import sys

from bench_table import latency_group, load_json

# Percentile tick marks: (label, 1 / (1 - p)); gnuplot reads the labels as formats: %% is %.
X_TICKS = [("0%%", 1), ("50%%", 2), ("90%%", 10), ("99%%", 100), ("99.9%%", 1e3), ("99.99%%", 1e4),
           ("99.999%%", 1e5)]


# Distinct line colours (gnuplot's default set repeats after eight).
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#7f7f7f", "#bcbd22", "#000000", "#aec7e8"]


def curve_points(row):
    """[(x, ns)] of a row's curve, p < 100, on the 1 / (1 - p) scale."""
    points = []
    for p, ns in row.get("curve", []):
        if p < 100 and ns and ns > 0:
            points.append((1.0 / (1.0 - p / 100.0), ns))
    return points


def gnuplot_script(png, title, series):
    """A self-contained gnuplot script (inline data blocks) drawing `series`: [(name, points)]."""
    lines = [
        "set terminal pngcairo size 1100,650 noenhanced font ',10'",
        f"set output '{png}'",
        f"set title {quote(title)}",
        "set logscale xy",
        "set xrange [1:*]",
        "set xlabel 'percentile'",
        "set ylabel 'latency (ns)'",
        "set xtics (" + ", ".join(f"'{label}' {x:g}" for label, x in X_TICKS) + ")",
        "set grid xtics ytics mytics",
        "set key outside right top",
    ]
    for i, (_, points) in enumerate(series):
        lines.append(f"$d{i} << EOD")
        lines += [f"{x:.6g} {ns:.6g}" for x, ns in points]
        lines.append("EOD")
    # tachyon's rows solid and thicker, the peers' dashed.
    plots = [f"$d{i} using 1:2 with linespoints pointsize 0.6 lc rgb '{COLOURS[i % len(COLOURS)]}' "
             + ("lw 2 dt 1" if name.startswith("tachyon") else "lw 1 dt 2")
             + f" title {quote(name)}"
             for i, (name, _) in enumerate(series)]
    lines.append("plot " + ", \\\n     ".join(plots))
    return "\n".join(lines) + "\n"


def quote(text):
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def draw(out_dir, stem, title, series):
    series = [(name, points) for name, points in series if points]
    if not series:
        return None
    png = os.path.join(out_dir, stem + ".png")
    gp = os.path.join(out_dir, stem + ".gp")
    with open(gp, "w", encoding="utf-8") as f:
        f.write(gnuplot_script(os.path.basename(png), title, series))
    # Run from out_dir, so that the script names its PNG relative to where it lies.
    subprocess.run(["gnuplot", os.path.basename(gp)], cwd=out_dir, check=True)
    return png


def main(argv):
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 1
    latency_json, out_dir = argv
    if shutil.which("gnuplot") is None:
        print("bench_plot.py: gnuplot is not installed (Debian: gnuplot-nox); no plot drawn",
              file=sys.stderr)
        return 2
    data = load_json(latency_json, "latency JSON")
    if data is None:
        return 1
    quick = " (quick run)" if data.get("quick") else ""
    drawn = []
    try:
        roundtrip = latency_group(data, "roundtrip")
        if roundtrip:
            drawn.append(draw(out_dir, "latency",
                              f"{roundtrip.get('title', 'round trip')}{quick}",
                              [(r.get("name", "?"), curve_points(r))
                               for r in roundtrip.get("rows", [])]))
        open_loop = latency_group(data, "open_loop")
        if open_loop:
            drawn.append(draw(out_dir, "latency_open_loop",
                              f"tachyon: {open_loop.get('title', 'open loop')}{quick}",
                              [(r.get("name", "?"), curve_points(r))
                               for r in open_loop.get("rows", [])
                               if r.get("impl", r.get("name", "")).startswith("tachyon")]))
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"bench_plot.py: gnuplot failed: {e}", file=sys.stderr)
        return 1
    for png in filter(None, drawn):
        print(f"bench_plot.py: wrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
