#!/usr/bin/env python3
"""Issue 4's targets, checked against one bench/run.py results.json (medians of the same run).

usage: python3 bench/targets.py .build-bench/bench-results/<stamp>/results.json
Prints a Markdown table: figure, target, measured (median, min–max), met / not met.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def values(runs: list[dict], system: str, cell: str, key: str) -> list[float]:
    return [r[key] for r in runs if r["system"] == system and r["cell"] == cell and r.get(key) is not None
            and (not r.get("error") or r.get("delivered"))]


def med(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def span(xs: list[float], unit: str = "", digits: int = 2) -> str:
    if not xs:
        return "not measured"
    m = statistics.median(xs)
    if len(xs) == 1:
        return f"{m:.{digits}f}{unit}"
    return f"{m:.{digits}f}{unit} ({min(xs):.{digits}f}–{max(xs):.{digits}f})"


def verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("**met**" if ok else "**not met**")


def main() -> int:
    data = json.loads(Path(sys.argv[1]).read_text())
    runs, consume = data["runs"], data.get("consume", [])
    rows = []

    loss = values(runs, "pixeld", "udp-100k", "loss_pct")
    rows.append(("UDP loss at 100k msg/s", "0.00 %", span(loss, " %"), verdict(None if not loss else med(loss) == 0)))

    # Same repeat = same minute: compare pixeld with the sink repeat by repeat, then take the median ratio.
    ratios = []
    for r in runs:
        if r["system"] == "pixeld" and r["cell"] == "udp-max" and r.get("delivered_per_s"):
            sink = [s for s in runs if s["system"] == "sink" and s["cell"] == "udp-max" and s["repeat"] == r["repeat"]]
            if sink and sink[0].get("delivered_per_s"):
                ratios.append(100 * r["delivered_per_s"] / sink[0]["delivered_per_s"])
    pixeld_max = values(runs, "pixeld", "udp-max", "delivered_per_s")
    sink_max = values(runs, "sink", "udp-max", "delivered_per_s")
    rows.append(("UDP delivered/s at max offered", "≥ 95 % of the sink's",
                 f"{span(pixeld_max, '/s', 0)} vs sink {span(sink_max, '/s', 0)}: {span(ratios, ' %', 1)}",
                 verdict(None if not ratios else med(ratios) >= 95)))

    cpu50 = values(runs, "pixeld", "udp-50k", "cpu_s_per_m")
    rs50 = values(runs, "rsyslog-tuned", "udp-50k", "cpu_s_per_m")
    ok = None if not cpu50 else med(cpu50) <= 5 and (not rs50 or med(cpu50) <= med(rs50) / 2)
    rows.append(("CPU s per million at UDP 50k/s", "≤ 5 and ≤ ½ of rsyslog tuned",
                 f"{span(cpu50)} (rsyslog tuned {span(rs50)})", verdict(ok)))

    cpu10 = values(runs, "pixeld", "udp-10k", "cpu_s_per_m")
    rows.append(("CPU s per million at UDP 10k/s", "≤ 10", span(cpu10), verdict(None if not cpu10 else med(cpu10) <= 10)))

    unix = values(runs, "pixeld", "unix-50k", "loss_pct")
    sink_unix = values(runs, "sink", "unix-50k", "loss_pct")
    ok = None if not unix or not sink_unix else med(unix) <= med(sink_unix) + 1
    rows.append(("unix loss at 50k/s, non-blocking sender, qlen default", "within 1 point of the sink's",
                 f"{span(unix, ' %')} vs sink {span(sink_unix, ' %')}", verdict(ok)))

    rss = values(runs, "pixeld", "udp-max", "rss_peak_mib")
    rows.append(("peak RSS at max offered, default settings", "≤ 16 MiB", span(rss, " MiB", 1),
                 verdict(None if not rss else med(rss) <= 16)))

    redis_cells = {cell: values(runs, "pixeld", cell, "redis_cpu_s_per_m")
                   for cell in ("udp-10k", "udp-50k", "udp-100k", "udp-max")}
    best = min((med(v) for v in redis_cells.values() if v), default=None)
    rows.append(("Redis CPU s per million pushed", "≤ 1.0",
                 "; ".join(f"{cell} {span(v)}" for cell, v in redis_cells.items() if v),
                 verdict(None if best is None else max(med(v) for v in redis_cells.values() if v) <= 1.0)))

    p99 = values(runs, "pixeld", "udp-10k", "p99_ms")
    e2e = values(runs, "pixeld", "udp-10k", "e2e_p99_ms")
    rows.append(("receive→LPUSH-ack p99 at 10k msg/s", "≤ 2 ms",
                 f"histogram {span(p99, ' ms')}; end-to-end (send→BRPOP) {span(e2e, ' ms')}",
                 verdict(None if not p99 else med(p99) <= 2 and (not e2e or med(e2e) <= 2))))

    shared = [c["events_per_s"] for c in consume if not c.get("split")]
    split = [c["events_per_s"] for c in consume if c.get("split")]
    best_consume = max([med(x) for x in (shared, split) if x], default=None)
    rows.append(("`pixeld consume` decode-only throughput", "≥ 200k events/s",
                 f"with Redis on its core {span(shared, '/s', 0)}; Redis on the other core {span(split, '/s', 0)}",
                 verdict(None if best_consume is None else best_consume >= 200_000)))

    print("| figure | target | measured: median (min–max) | |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
