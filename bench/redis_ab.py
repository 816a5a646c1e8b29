#!/usr/bin/env python3
"""Redis CPU per million pushed values, by the shape of the write: an A/B for BENCHMARKS.md.

Pushes the same N nginx-shaped values (bench/loadgen --print) into a private redis-server pinned to
core 0, from this script pinned to core 1 (or `--client-core`), in batches, in any of five ways:

  lpush    one variadic `LPUSH pixel v1 … vN` per batch (the lower bound)
  evalsha  pixeld's commit script (Sources/RespBridge/Commit/BatchCommitter.swift, read from the
           source), `EVALSHA sha 3 marker outcome pixel seq ttl 0 hold :dead N v1 … vN` per batch
  multi    `MULTI` / `LPUSH pixel v1 … vN` / `SET marker seq EX ttl` / `EXEC` per batch
  lpush1   one `LPUSH pixel v` per value, pipelined per batch (rsyslog omhiredis, syslog-ng redis())
  ping     one `PING` per batch, nothing pushed: what a round trip alone costs Redis (use with --rate)

and prints Redis's utime+stime (/proc) per million values and per commit, and its minor page faults
and context switches per commit. Usage (after bench/run.py has built the tools):

  python3 bench/redis_ab.py [--values 200000] [--batches 64,1000,4000]
  python3 bench/redis_ab.py --rate 800 --client-core 0 --batches 12 --values 24000 --modes ping,lpush,multi
  python3 bench/redis_ab.py --unix …   (the same over Redis's unix socket instead of loopback TCP)

By default the batches go as fast as Redis takes them, so Redis never sleeps and the figure is the
work of the write itself. `--rate N` paces them at N batches a second instead, as pixeld's flush timer
does at low load: Redis then sleeps between batches and every batch pays a wake-up (with
`--client-core 0`, on the same core as Redis, as in bench/run.py). `ping` at a rate is the floor
that no write shape can go under: on session 11's nested-virtualisation host, ~30 µs of the 55–60 µs
that a 12-value batch cost at 800 batches/s. `--warm` takes most of the page faults of a growing list
out of the figure (see its help). /proc counts CPU in 10 ms ticks: run enough batches.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import BIN, ROOT, Redis, context_switches, cpu_seconds, redis_socket, setup, start_redis, stat_fields  # noqa: E402


def minor_faults(pid: int) -> int:
    """Minor page faults of the whole process (field 10 of /proc/PID/stat)."""
    return int(stat_fields(pid)[7])


def commit_script() -> str:
    source = (ROOT / "Sources/RespBridge/Commit/BatchCommitter.swift").read_text()
    body = source.split('static let script = """', 1)[1].split('"""', 1)[0]
    return "\n".join(line[8:] if line.startswith("        ") else line for line in body.splitlines()).strip("\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--values", type=int, default=200_000)
    parser.add_argument("--batches", default="64,1000,4000")
    parser.add_argument("--modes", default="lpush,evalsha,multi,lpush1")
    parser.add_argument("--rate", type=float, default=0.0, help="batches per second (0: as fast as possible)")
    parser.add_argument("--warm", action="store_true",
                        help="push and delete the values first, so Redis's allocator holds the pages the list "
                             "will take (as when a consumer keeps the list short) and pushing faults few pages in")
    parser.add_argument("--unix", action="store_true", help="talk to Redis over its unix socket, not loopback TCP")
    parser.add_argument("--client-core", type=int, default=1, help="the core this script runs on (Redis: 0)")
    args = parser.parse_args()
    if args.rate < 0:
        parser.error("--rate must be ≥ 0")
    if args.values < 1:
        parser.error("--values must be ≥ 1")
    setup(build_pixeld=False)
    os.sched_setaffinity(0, {args.client_core})
    out = subprocess.run([str(BIN / "loadgen"), "--print", "0", str(args.values), "--other-permille", "0"],
                         capture_output=True, check=True).stdout
    values = [line.split(b"\t", 2)[2] for line in out.split(b"\n") if line]
    lua = commit_script()
    workdir = Path(tempfile.mkdtemp(prefix="redis-ab-", dir=ROOT / ".build-bench"))
    try:
        for batch in (int(b) for b in args.batches.split(",")):
            for mode in args.modes.split(","):
                proc, port = start_redis(workdir, unix_socket=args.unix)
                client = Redis(redis_socket(workdir) if args.unix else port)
                try:
                    sha = client.call("SCRIPT", "LOAD", lua)
                    if args.warm:
                        for start in range(0, len(values), 5000):
                            client.call("LPUSH", "warm", *values[start:start + 5000])
                        client.call("DEL", "warm")
                    before = cpu_seconds(proc.pid), minor_faults(proc.pid), context_switches(proc.pid)
                    started = time.monotonic()
                    commits = 0
                    for seq, start in enumerate(range(0, len(values), batch), start=1):
                        if args.rate:
                            time.sleep(max(0.0, started + seq / args.rate - time.monotonic()))
                        commits += 1
                        chunk = values[start:start + batch]
                        if mode == "ping":
                            client.call("PING")
                        elif mode == "lpush":
                            client.call("LPUSH", "pixel", *chunk)
                        elif mode == "lpush1":
                            client.pipeline([Redis.encode("LPUSH", "pixel", v) for v in chunk])
                        elif mode == "multi":
                            client.pipeline([Redis.encode("MULTI"), Redis.encode("LPUSH", "pixel", *chunk),
                                             Redis.encode("SET", "pixeld:writer:ab", seq, "EX", 604800),
                                             Redis.encode("EXEC")])
                        elif mode == "evalsha":
                            # KEYS: marker, saved outcome, list; ARGV: seq, ttl, maxlen, policy, dead suffix, n, values
                            client.call("EVALSHA", sha, 3, "pixeld:writer:ab", "pixeld:writer:ab:outcome", "pixel",
                                        seq, 604800, 0, "hold", ":dead", len(chunk), *chunk)
                        else:
                            raise SystemExit(f"unknown mode {mode}")
                    elapsed = time.monotonic() - started
                    used = cpu_seconds(proc.pid) - before[0]
                    faults = minor_faults(proc.pid) - before[1]
                    switches = context_switches(proc.pid) - before[2]
                    pushed = client.call("LLEN", "pixel")
                    per_million = f"{used / pushed * 1e6:.2f} CPU s per million" if pushed else "nothing pushed"
                    print(f"{mode:8s} batch {batch:5d}: {pushed} pushed, {commits / elapsed:,.0f} batches/s, Redis "
                          f"{per_million}, {used / commits * 1e6:.1f} µs, {faults / commits:.2f} minor faults and "
                          f"{switches / commits:.2f} context switches per batch", flush=True)
                finally:
                    client.close()
                    proc.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
