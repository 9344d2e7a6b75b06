#!/usr/bin/env python3
"""Writes scenarios/livegrid.yml: the live grid issue 18 judges live policies on.

    python3 scripts/livegrid.py > scenarios/livegrid.yml
    python3 scripts/livegrid.py tune-policies > scenarios/livegrid_tune_policies.yml
    python3 scripts/livegrid.py judge-policies > scenarios/livegrid_judge_policies.yml

Every cell is a live stream whose rate is a share of the swarm's r_max, whose chunks last a
set chunk time at that rate, and whose viewers play with a set buffer. Two halves, so a
policy can be tuned on one and judged on the other, which it never saw:

- tune (`t_…`): 200 viewers with uplinks near one another (all near or above the stream's
  rate), no churn: rate 0.5 / 0.7 / 0.9 × r_max, buffer 2 / 4 / 8 / 15 / 30 s, chunk time
  0.25 / 0.5 / 1 / 2 s;
- judge (`j_…`): 500 viewers, half of them with uplinks at 0.3-0.5 × the stream's rate, a
  fifth leaving and half of those coming back: the same rates, buffers and chunk times;
- scale (`s_…`): 2000 and 5000 viewers of the tune mix at 0.7 and 0.9 × r_max, 8 s buffer,
  0.5 s chunks.

The scenario has no `policy:` section, so `sim sweep` runs the built-in policy. With
`tune-policies` the file holds the tune half only and a `policies:` axis of the candidates
docs/results.md compares; with `judge-policies` the judge and scale halves and the policies
taken to them.
"""
import sys

ORIGIN_UP = 20e6  # bit/s
RATES = [0.5, 0.7, 0.9]
BUFFERS = [2, 4, 8, 15, 30]
CHUNK_TIMES = [0.25, 0.5, 1, 2]

# (name, share of viewers, uplink bit/s, download bit/s, one-way latency)
EVEN = [("low", 0.5, 4e6, 40e6, "30ms"), ("high", 0.5, 5e6, 50e6, "20ms")]
SKEWED = [
    ("slow", 0.5, 1.6e6, 25e6, "30ms"),
    ("mid", 0.3, 6e6, 50e6, "20ms"),
    ("fast", 0.2, 14e6, 100e6, "10ms"),
]
CHURN = "{ leave: 0.2, stay: 60s, rejoin: 0.5, away: 15s }"


def classes(mix, n):
    counts = [round(share * n) for _, share, _, _, _ in mix]
    counts[-1] = n - sum(counts[:-1])
    return [(name, c, up, down, lat) for (name, _, up, down, lat), c in zip(mix, counts)]


def r_max(cls):
    n = sum(c for _, c, _, _, _ in cls)
    ups = sum(c * up for _, c, up, _, _ in cls)
    return min(ORIGIN_UP, (ORIGIN_UP + ups) / n)


def peers_yaml(cls):
    rows = ", ".join(
        f"{{ name: {name}, count: {c}, upload: {up / 1e6:g}Mbit/s, download: {down / 1e6:g}Mbit/s, latency: {lat} }}"
        for name, c, up, down, lat in cls
    )
    return f"[{rows}]"


def cell(prefix, mix, n, rate, buffer, chunk_time, churn):
    cls = classes(mix, n)
    bitrate = round(rate * r_max(cls))
    chunk = round(chunk_time * bitrate / 8)
    name = f"{prefix}_n{n}_r{round(rate * 100):03d}_b{buffer:02d}_c{round(chunk_time * 100):03d}"
    keys = [
        f"name: {name}",
        f"peers: {peers_yaml(cls)}",
        f"content.live.bitrate: {bitrate}bit/s",
        f"content.live.buffer: {buffer}s",
        f"content.chunk_size: {chunk}B",
    ]
    if churn:
        keys.append(f"churn: {CHURN}")
    return "    - { " + ", ".join(keys) + " }"


# Each candidate spells out the live keys it runs with, so the list keeps its meaning when the
# built-in changes; `builtin` is whatever the built-in is now.
OLD = "urgent_chunks: 0, live_copy_time: null"
TUNE_POLICIES = [
    "{ name: builtin }",
    f"{{ name: previous, {OLD} }}",
    f"{{ name: ct05, {OLD}, copy_time: 0.5s }}",
    f"{{ name: ct025, {OLD}, copy_time: 0.25s }}",
    f"{{ name: in_order, {OLD}, chunk: in_order }}",
    f"{{ name: md4, {OLD}, max_downloads: 4 }}",
    f"{{ name: stall2, {OLD}, stall_timeout: 2s }}",
    "{ name: u4, urgent_chunks: 4, live_copy_time: null }",
    "{ name: u4_ct05, urgent_chunks: 4, live_copy_time: null, copy_time: 0.5s }",
    "{ name: u2_ct05, urgent_chunks: 2, live_copy_time: null, copy_time: 0.5s }",
    "{ name: u8_ct05, urgent_chunks: 8, live_copy_time: null, copy_time: 0.5s }",
    "{ name: u4_ct035, urgent_chunks: 4, live_copy_time: null, copy_time: 0.35s }",
    "{ name: u4_ct075, urgent_chunks: 4, live_copy_time: null, copy_time: 0.75s }",
]
JUDGE_POLICIES = [
    "{ name: builtin }",
    f"{{ name: previous, {OLD} }}",
    f"{{ name: ct05, {OLD}, copy_time: 0.5s }}",
    "{ name: u4_ct05, urgent_chunks: 4, live_copy_time: null, copy_time: 0.5s }",
]


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else "grid"
    if what not in ("grid", "tune-policies", "judge-policies"):
        sys.exit(__doc__)
    cells = []
    if what != "judge-policies":
        for rate in RATES:
            for buffer in BUFFERS:
                for ct in CHUNK_TIMES:
                    cells.append(cell("t", EVEN, 200, rate, buffer, ct, False))
    if what != "tune-policies":
        for rate in RATES:
            for buffer in BUFFERS:
                for ct in CHUNK_TIMES:
                    cells.append(cell("j", SKEWED, 500, rate, buffer, ct, True))
        for n in [2000, 5000]:
            for rate in [0.7, 0.9]:
                cells.append(cell("s", EVEN, n, rate, 8, 0.5, False))
    out = sys.stdout
    out.write(
        "# Generated by scripts/livegrid.py (its docstring says what the halves are); do not edit.\n"
        "# sim sweep scenarios/livegrid.yml --out DIR; python3 scripts/livegrid_table.py DIR/report.json\n"
        "# No policy: section: the built-in policy runs.\n"
        f"name: {'livegrid' if what == 'grid' else 'livegrid_' + what.replace('-', '_')}\n"
        "seed: 1\n"
        "time_limit: 6min\n"
        "content:\n"
        "  chunk_size: 125kB\n"
        "  live:\n"
        "    bitrate: 4Mbit/s\n"
        "    buffer: 4s\n"
        "    duration: 2min\n"
        "seeds:\n"
        f"  upload: {ORIGIN_UP / 1e6:g}Mbit/s\n"
        "  latency: 5ms\n"
        "peers:\n"
        "  - { name: placeholder, count: 1, download: 40Mbit/s, upload: 4Mbit/s }\n"
        "arrivals:\n"
        "  uniform: { window: 20s }\n"
        "sweep:\n"
        "  variants:\n"
    )
    out.write("\n".join(cells) + "\n")
    policies = {"tune-policies": TUNE_POLICIES, "judge-policies": JUDGE_POLICIES}.get(what)
    if policies:
        out.write("  policies:\n" + "".join(f"    - {p}\n" for p in policies))


if __name__ == "__main__":
    main()
