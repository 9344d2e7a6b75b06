#!/usr/bin/env python3
"""Summarise a family sweep (`sim sweep FILE --out DIR`) as Markdown tables.

    python3 scripts/family_table.py DIR/report.json [--chunk 250kB]

For every (policy, chunk size): each variant's completion p50 and max and origin copies
(means over seeds), and the summary the built-in policy is chosen by: over the variants,
the geometric mean of p50 / (the variant's best p50 over every policy and chunk size), the
same for max, and the mean origin copies. Cells that did not finish count as missing and
are listed.
"""
import json
import math
import sys
from collections import defaultdict


def fmt_size(b):
    for unit, f in (("MB", 1e6), ("kB", 1e3)):
        if b >= f:
            v = b / f
            return f"{v:g}{unit}"
    return f"{b}B"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cells = json.load(open(sys.argv[1]))["cells"]
    runs = defaultdict(list)  # (variant, policy, chunk) -> [cell]
    unfinished = []
    for c in cells:
        key = (c["scenario"].split("/", 1)[-1], c["policy"], c["chunk_bytes"])
        if c["end_reason"] != "all_done" or c["completion_s"] is None:
            unfinished.append(key + (c["seed"], c["end_reason"]))
            continue
        runs[key].append(c)
    mean = lambda xs: sum(xs) / len(xs)
    fig = {}
    for key, cs in runs.items():
        fig[key] = (
            mean([c["completion_s"]["p50"] for c in cs]),
            mean([c["completion_s"]["max"] for c in cs]),
            mean([c["origin_copies"] for c in cs]),
        )
    variants = sorted({k[0] for k in fig})
    combos = sorted({(k[1], k[2]) for k in fig}, key=lambda pc: (pc[1], pc[0]))
    best = {v: (min(f[0] for k, f in fig.items() if k[0] == v), min(f[1] for k, f in fig.items() if k[0] == v)) for v in variants}

    print("| policy | chunk | " + " | ".join(variants) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in variants) + " |")
    for p, ch in combos:
        row = []
        for v in variants:
            f = fig.get((v, p, ch))
            row.append("-" if f is None else f"{f[0]:.1f} / {f[1]:.1f} / {f[2]:.2f}")
        print(f"| {p} | {fmt_size(ch)} | " + " | ".join(row) + " |")
    print()
    print("(each cell: completion p50 / max in s / origin copies, mean over seeds)")
    print()
    print("| policy | chunk | p50 ÷ best (geo. mean) | max ÷ best (geo. mean) | worst p50 ÷ best | origin copies (mean) | variants |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    for p, ch in combos:
        rs = [(fig[(v, p, ch)], best[v]) for v in variants if (v, p, ch) in fig]
        if not rs:
            continue
        g50 = math.exp(mean([math.log(f[0] / b[0]) for f, b in rs]))
        gmax = math.exp(mean([math.log(f[1] / b[1]) for f, b in rs]))
        worst = max(f[0] / b[0] for f, b in rs)
        rows.append((g50 * gmax, p, ch, g50, gmax, worst, mean([f[2] for f, _ in rs]), len(rs)))
    for _, p, ch, g50, gmax, worst, oc, n in sorted(rows):
        print(f"| {p} | {fmt_size(ch)} | {g50:.3f} | {gmax:.3f} | {worst:.3f} | {oc:.2f} | {n} of {len(variants)} |")
    if unfinished:
        print()
        print("Did not finish: " + ", ".join(f"{v} {p} {fmt_size(ch)} seed {s} ({r})" for v, p, ch, s, r in unfinished))


if __name__ == "__main__":
    main()
