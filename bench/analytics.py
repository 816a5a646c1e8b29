#!/usr/bin/env python3
"""Full analytics throughput of `pixeld consume pixel --site … --archive DIR` (issue 5's target:
decode → validate → bots → anonymise → enrich → rollups in Redis + archive ≥ 50k events/s on one core).

A private redis-server is pre-filled with N nginx `pixel_json` lines (realistic mix: 6 browsers, ~5 %
bots, 2 sites, 2,000 visitors, referrers and UTM tags, 10 % custom events with props, all within the
last hour), then the consumer drains it. The consumer AND its Redis are pinned to core 0 — one core
does all the work, Redis included — and the figure is events / (first pop → last ack). Also printed:
the consumer's and Redis's CPU seconds per million events, the consumer's peak RSS and the archive
size. Repeated (default 3): median and min–max.

    python3 bench/analytics.py [--events 300000] [--repeats 3] [--pixeld PATH] [--batch-size N] [--commandstats]
                               [--redis-core N] [--callgrind] [--against OTHER_PIXELD]

With --against OTHER_PIXELD, that build ("before") and --pixeld ("after") take turns in every
repeat, and the table adds each figure's after/before ratio per pair (median, min–max): on this VM,
whose speed changes within minutes, pairs run in the same minute compare where medians do not.

With --callgrind, the consumer and Redis run under valgrind's callgrind, and the figures are the
instructions each executed per event while the consumer drained the list (Redis's counting starts
after the fill). Instruction counts do not depend on how busy the host is, so two builds compare on
this noisy VM where their CPU seconds cannot; the run is ~50x slower, so use --events 20000 or so.
The profiles stay in .build-bench/bench-run/analytics-[before-|after-]N/{consumer,redis}.callgrind for
callgrind_annotate (the consumer runs as a copy of PATH without debug information, which valgrind
3.19 cannot read; function names come from the symbol table).

Uses the release binary that bench/run.py builds (.build-bench/release/pixeld) unless --pixeld is given.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (the harness: Redis client, start/start_redis, /proc readers)

BROWSERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67",
]
BOTS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "curl/7.88.1",
]
REFERRERS = ["", "https://www.google.com/", "https://news.ycombinator.com/item?id=1", "https://github.com/x/y",
             "https://t.co/abc", "https://{site}/blog/"]
SITES = ["example.com", "blog.example.org"]


def quote(text: str) -> str:
    from urllib.parse import quote as q
    return q(text, safe="")


def lines(count: int, seed: int) -> list[bytes]:
    """`count` pixel_json lines as nginx writes them (escape=json), spread over the last hour."""
    rng = random.Random(seed)
    now = time.time()
    visitors = [(f"203.0.{rng.randrange(256)}.{rng.randrange(1, 255)}", rng.choice(BROWSERS)) for _ in range(2000)]
    out = []
    for index in range(count):
        ts = now - 3600 + 3500 * index / count
        if rng.random() < 0.05:
            ip, ua = f"66.249.{rng.randrange(256)}.{rng.randrange(256)}", rng.choice(BOTS)
        else:
            ip, ua = rng.choice(visitors)
        site = rng.choice(SITES)
        url = f"https://{site}/blog/post-{rng.randrange(400)}"
        if rng.random() < 0.1:
            url += "?utm_source=newsletter&utm_medium=email&utm_campaign=nov"
        args = f"u={quote(url)}&r={quote(rng.choice(REFERRERS).format(site=site))}&w={rng.choice([390, 1280, 1440, 1920])}"
        if rng.random() < 0.1:
            args = "e=signup&p=" + quote('{"plan":"pro"}') + "&" + args
        else:
            args = "e=pageview&" + args
        record = {"ts": f"{ts:.3f}", "rid": f"{index:032x}", "args": args, "ip": ip, "ua": ua,
                  "ref": rng.choice(REFERRERS).format(site=site), "dnt": "", "gpc": "", "country": rng.choice(["DE", "US", "FR", ""])}
        text = json.dumps(record, separators=(",", ":"))
        # nginx writes $msec as a bare number
        text = text.replace(f'"ts":"{record["ts"]}"', f'"ts":{record["ts"]}')
        out.append(text.encode())
    return out


def callgrind(workdir: Path, name: str) -> list[str]:
    """The valgrind command line that profiles `name` into workdir/NAME.callgrind."""
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={workdir / name}.callgrind"]


def wait_until_idle(pid: int, timeout: float = 120) -> None:
    """Waits until the process used less than 2 % of a CPU over a second (start-up done)."""
    deadline = time.monotonic() + timeout
    before = bench.cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(1)
        now = bench.cpu_seconds(pid)
        if now - before < 0.02:
            return
        before = now
    raise RuntimeError(f"process {pid} did not become idle in {timeout} s")


def instructions(profile: Path) -> int:
    """The total instruction count (Ir) of a callgrind profile."""
    for row in profile.read_text(errors="replace").splitlines():
        if row.startswith(("summary:", "totals:")):
            return int(row.split()[1])
    raise RuntimeError(f"{profile} has no totals")


def one(pixeld: Path, values: list[bytes], repeat: int, batch_size: int | None, commandstats: bool, redis_core: int,
        profile: bool = False, label: str = "") -> dict:
    workdir = bench.SCRATCH / "bench-run" / f"analytics-{label + '-' if label else ''}{repeat}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    archive = workdir / "archive"
    redis_proc, port = bench.start_redis(workdir, redis_core, callgrind(workdir, "redis") if profile else None)
    redis = bench.Redis(port)
    consumer = None
    try:
        # Profiled, the list is filled under another name and renamed once the consumer waits on an
        # empty one, so that neither the fill nor the consumer's start-up is counted.
        filled = "pixel:fill" if profile else "pixel"
        for i in range(0, len(values), 5000):
            redis.call(*(["LPUSH", filled] + values[i:i + 5000]))
        events = len(values)
        command = (callgrind(workdir, "consumer") if profile else []) + [str(pixeld), "consume", "pixel", "--redis", f"redis://127.0.0.1:{port}/0", "--consumer-id", "bench",
                   "--archive", str(archive)] + [arg for site in SITES for arg in ("--site", site)]
        if batch_size:
            command += ["--batch-size", str(batch_size)]
        consumer = bench.start("consume", command, workdir, bench.SYSTEM_CORE)
        if profile:
            wait_until_idle(consumer.pid)
            for proc in (consumer, redis_proc):
                subprocess.run(["callgrind_control", "--zero", str(proc.pid)], check=True, capture_output=True, timeout=60)
            redis.call("RENAME", filled, "pixel")
        cpu0, redis_cpu0 = bench.cpu_seconds(consumer.pid), bench.cpu_seconds(redis_proc.pid)
        t_start = time.monotonic()
        first = None
        deadline = t_start + 600
        while time.monotonic() < deadline and consumer.alive():
            left = redis.call("LLEN", "pixel")
            processing = redis.call("LLEN", "pixel:processing:bench")
            if first is None and left < events:
                first = time.monotonic()
            if left == 0 and processing == 0:
                break
            # Profiled, poll less: Redis's instruction count includes these LLENs.
            time.sleep(0.1 if profile else 0.005)
        t_end = time.monotonic()
        if redis.call("LLEN", "pixel") != 0:
            raise RuntimeError(f"the consumer did not drain the list; see {consumer.log_path}")
        cpu1, redis_cpu1 = bench.cpu_seconds(consumer.pid), bench.cpu_seconds(redis_proc.pid)
        rss = bench.status_kib(consumer.pid, "VmHWM") / 1024
        dead = redis.call("LLEN", "pixel:dead")
        if commandstats:
            # Where Redis's time went: microseconds per event by command (scripts include their calls).
            stats = []
            for row in redis.call("INFO", "commandstats").decode().splitlines():
                if row.startswith("cmdstat_"):
                    name, fields = row[len("cmdstat_"):].split(":", 1)
                    parts = dict(item.split("=") for item in fields.split(","))
                    stats.append((float(parts["usec"]) / events, int(parts["calls"]) / events, name))
            for usec, calls, name in sorted(stats, reverse=True)[:10]:
                bench.log(f"  redis {name:<12} {usec:6.2f} µs/event  {calls:7.3f} calls/event")
        if profile:
            consumer.stop(timeout=120)
            redis_proc.stop(timeout=120)
        archived = sum(f.stat().st_size for f in archive.glob("*.jsonl"))
        archived_lines = sum(f.read_bytes().count(b"\n") for f in archive.glob("*.jsonl"))
        elapsed = t_end - (first or t_start)
        return {"repeat": repeat, "events": events, "elapsed_s": elapsed, "events_per_s": events / elapsed,
                "cpu_s_per_m": (cpu1 - cpu0) / events * 1e6, "redis_cpu_s_per_m": (redis_cpu1 - redis_cpu0) / events * 1e6,
                "rss_peak_mib": rss, "archive_bytes": archived, "archive_lines": archived_lines,
                "dead": dead,
                **({"consumer_instructions": instructions(workdir / "consumer.callgrind") / events,
                    "redis_instructions": instructions(workdir / "redis.callgrind") / events} if profile else {})}
    finally:
        redis.close()
        if consumer:
            consumer.stop()
        redis_proc.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--pixeld", type=Path, default=bench.PIXELD)
    parser.add_argument("--commandstats", action="store_true", help="print Redis's time per command and event")
    parser.add_argument("--redis-core", default=bench.SYSTEM_CORE,
                        help="core for Redis (default: the consumer's, so one core does all the work)")
    parser.add_argument("--against", type=Path, default=None,
                        help="another pixeld build: the two take turns in every repeat, and the per-pair ratios are printed")
    parser.add_argument("--callgrind", action="store_true",
                        help="run the consumer and Redis under callgrind and print instructions per event")
    args = parser.parse_args()
    if not args.pixeld.exists():
        print(f"{args.pixeld} not found: build it (python3 bench/run.py builds .build-bench/release/pixeld) or pass --pixeld",
              file=sys.stderr)
        return 1
    if args.against is not None and not args.against.exists():
        print(f"{args.against} not found", file=sys.stderr)
        return 1
    given = args.pixeld, args.against
    if args.callgrind:
        if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
            print("--callgrind needs valgrind: apt-get install valgrind", file=sys.stderr)
            return 1
        # Debian 12's valgrind (3.19) cannot read the DWARF 5 that Swift 6.3 writes and gives up on
        # the whole binary; without it, callgrind still names every function from the symbol table.
        def stripped(pixeld: Path, name: str) -> Path:
            copy = bench.SCRATCH / "callgrind" / name / "pixeld"
            copy.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["strip", "--strip-debug", "-o", str(copy), str(pixeld)], check=True)
            return copy
        args.pixeld = stripped(args.pixeld, "after")
        if args.against is not None:
            args.against = stripped(args.against, "before")
    values = lines(args.events, args.seed)
    load = os.getloadavg()
    builds = [("", args.pixeld)] if args.against is None else [("before", args.against), ("after", args.pixeld)]
    results: dict[str, list[dict]] = {label: [] for label, _ in builds}
    for repeat in range(1, args.repeats + 1):
        # With --against, the two builds take turns, so that each pair ran in the same minute; which
        # goes first alternates too.
        for label, pixeld in (builds if repeat % 2 else builds[::-1]):
            result = one(pixeld, values, repeat, args.batch_size, args.commandstats, args.redis_core, args.callgrind, label)
            results[label].append(result)
            bench.log(f"[{repeat}/{args.repeats}]{' ' + label if label else ''} {result['events_per_s']:,.0f} events/s, "
                      f"consumer {result['cpu_s_per_m']:.2f} CPU s/M, Redis {result['redis_cpu_s_per_m']:.2f} CPU s/M, "
                      f"RSS {result['rss_peak_mib']:.1f} MiB, archive {result['archive_lines']} lines")
            if result["archive_lines"] != args.events:
                print(f"archive has {result['archive_lines']} lines for {args.events} events", file=sys.stderr)
                return 1

    def cell(runs: list[dict], key: str) -> str:
        values = [r[key] for r in runs]
        return f"{bench.fmt(statistics.median(values))} ({bench.fmt(min(values))}–{bench.fmt(max(values))})"

    figures = [("events/s, full processing (rollups + archive)", "events_per_s"), ("consumer CPU s per million", "cpu_s_per_m"),
               ("Redis CPU s per million", "redis_cpu_s_per_m"), ("consumer peak RSS MiB", "rss_peak_mib")]
    if args.callgrind:
        figures += [("consumer instructions per event (callgrind)", "consumer_instructions"),
                    ("Redis instructions per event (callgrind)", "redis_instructions")]
    where = (f"consumer + Redis on core {bench.SYSTEM_CORE}" if args.redis_core == bench.SYSTEM_CORE
             else f"consumer on core {bench.SYSTEM_CORE}, Redis on core {args.redis_core}")
    print(f"\nmachine: {os.cpu_count()} CPUs, load average before the run {load[0]:.2f}; {where}; "
          f"{args.events:,} pixel_json events; batch size {args.batch_size or 'default'}; pixeld {given[0]}"
          + (f"; before: {given[1]}" if given[1] else "")
          + ("; under callgrind, so events/s, CPU and RSS are valgrind's, not pixeld's" if args.callgrind else ""))
    if args.against is None:
        print("| figure | median (min–max) |\n|---|---|")
        for name, key in figures:
            print(f"| {name} | {cell(results[''], key)} |")
        return 0
    # The VM's speed drifts within minutes, so the pairs' ratios say more than the two medians.
    print("| figure | before: median (min–max) | after: median (min–max) | after / before per pair: median (min–max) |")
    print("|---|---|---|---|")
    for name, key in figures:
        ratios = [a[key] / b[key] for a, b in zip(results["after"], results["before"]) if b[key]]
        ratio = f"{statistics.median(ratios):.3f} ({min(ratios):.3f}–{max(ratios):.3f})" if ratios else "—"
        print(f"| {name} | {cell(results['before'], key)} | {cell(results['after'], key)} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
