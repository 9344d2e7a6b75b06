#!/usr/bin/env python3
"""Judges a live-grid sweep (`sim sweep scenarios/livegrid.yml --out DIR`) against issue 18's
targets and prints Markdown tables.

    python3 scripts/livegrid_table.py DIR/report.json [--cells]

A cell is *in reach* when its stream runs at most 0.9 × r_max, every download is at least the
stream's rate, and its buffer is at least 1.5 × the lag floor (report.json's `live_floor_s`:
⌈log₂(N+1)⌉ copy times of a chunk at the mean uplink). In reach, the targets are:
continuity ≥ 0.99; lag p99 ≤ 1.3 × the floor + one chunk time (the slack: a chunk is announced
only once whole, and a viewer's in-order delivery waits for the slowest of the chunks before
it); startup p99 of viewers arriving after the first buffer ≤ buffer + one chunk time.
Per half (tune, judge, scale): cells in reach, cells meeting each target and all three,
and the worst figures; `--cells` adds one row per cell. A sweep with several policies gets
one row per policy and half instead.
"""
import json
import re
import sys
from collections import defaultdict

NAME = re.compile(r"_n(\d+)_r(\d+)_b(\d+)_c(\d+)$")
HALVES = {"t": "tune", "j": "judge", "s": "scale"}


def judge(cell):
    variant = cell["scenario"].split("/", 1)[1]
    m = NAME.search(variant)
    n, rate, buffer, ct = int(m[1]), int(m[2]) / 100, int(m[3]), int(m[4]) / 100
    floor = cell["live_floor_s"]
    load = cell["load_vs_r_max"]
    in_reach = load <= 0.9 + 1e-6 and buffer >= 1.5 * floor
    cont = cell["continuity_index"]
    lag99 = (cell.get("live_lag_s") or {}).get("p99")
    late = (cell.get("startup_late_s") or {}).get("p99")
    ok_cont = cont is not None and cont >= 0.99
    ok_lag = lag99 is not None and lag99 <= 1.3 * floor + ct
    ok_start = late is None or late <= buffer + ct
    return {
        "half": HALVES[variant[0]],
        "variant": variant,
        "n": n,
        "rate": rate,
        "buffer": buffer,
        "ct": ct,
        "floor": floor,
        "in_reach": in_reach,
        "cont": cont,
        "lag99": lag99,
        "lag_x": lag99 / floor if lag99 is not None and floor > 0 else None,
        "late99": late,
        "copies": cell["origin_copies"],
        "ok_cont": ok_cont,
        "ok_lag": ok_lag,
        "ok_start": ok_start,
        "ok": ok_cont and ok_lag and ok_start,
    }


def f(v, d=3):
    return "–" if v is None else f"{v:.{d}f}"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cells = json.load(open(sys.argv[1]))["cells"]
    policies = list(dict.fromkeys(c["policy"] for c in cells))
    if len(policies) > 1:
        return by_policy(cells, policies)
    rows = [judge(c) for c in cells]
    by_half = defaultdict(list)
    for r in rows:
        by_half[r["half"]].append(r)
    print("| half | cells | in reach | continuity ≥ 0.99 | lag p99 ≤ 1.3 floor + τ | startup | all three "
          "| worst continuity in reach | lag p99 ÷ floor in reach (median, worst) | out of reach: continuity ≥ 0.99 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for half in ["tune", "judge", "scale"]:
        rs = by_half.get(half, [])
        if not rs:
            continue
        reach = [r for r in rs if r["in_reach"]]
        out = [r for r in rs if not r["in_reach"]]
        lagx = sorted(r["lag_x"] for r in reach if r["lag_x"] is not None)
        worst = min((r["cont"] for r in reach if r["cont"] is not None), default=None)
        print(
            f"| {half} | {len(rs)} | {len(reach)} | {sum(r['ok_cont'] for r in reach)} "
            f"| {sum(r['ok_lag'] for r in reach)} | {sum(r['ok_start'] for r in reach)} "
            f"| {sum(r['ok'] for r in reach)} | {f(worst, 4)} "
            f"| {f(lagx[len(lagx) // 2] if lagx else None, 2)}, {f(lagx[-1] if lagx else None, 2)} "
            f"| {sum(r['ok_cont'] for r in out)} of {len(out)} |"
        )
    if "--cells" in sys.argv:
        print()
        print("| cell | viewers | rate ÷ r_max | buffer s | chunk time s | floor s | in reach | continuity "
              "| lag p99 s | ÷ floor | startup p99 (late) s | origin copies | targets |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in rows:
            verdict = ("met" if r["ok"] else "missed") if r["in_reach"] else "–"
            print(
                f"| {r['variant']} | {r['n']} | {r['rate']} | {r['buffer']} | {r['ct']} | {f(r['floor'], 2)} "
                f"| {'yes' if r['in_reach'] else 'no'} | {f(r['cont'], 4)} | {f(r['lag99'], 2)} | {f(r['lag_x'], 2)} "
                f"| {f(r['late99'], 2)} | {f(r['copies'], 1)} | {verdict} |"
            )


def by_policy(cells, policies):
    """One row per policy and half: cells in reach at continuity ≥ 0.99, meeting all three
    targets, and the worst and mean continuity over the cells in reach."""
    print("| policy | half | in reach | continuity ≥ 0.99 | all three | worst / mean continuity |")
    print("| --- | --- | --- | --- | --- | --- |")
    for p in policies:
        rows = [judge(c) for c in cells if c["policy"] == p]
        for half in ["tune", "judge", "scale"]:
            reach = [r for r in rows if r["half"] == half and r["in_reach"]]
            if not reach:
                continue
            conts = [r["cont"] if r["cont"] is not None else 0.0 for r in reach]
            print(
                f"| {p} | {half} | {len(reach)} | {sum(r['ok_cont'] for r in reach)} | {sum(r['ok'] for r in reach)} "
                f"| {min(conts):.3f} / {sum(conts) / len(conts):.4f} |"
            )


if __name__ == "__main__":
    main()
