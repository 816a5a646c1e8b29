#!/usr/bin/env python3
"""Redis CPU per million pushed values, by the shape of the write: an A/B for BENCHMARKS.md.

Pushes the same N nginx-shaped values (bench/loadgen --print) into a private redis-server pinned to
core 0, from this script pinned to core 1, in batches, four ways:

  lpush    one variadic `LPUSH pixel v1 … vN` per batch (the lower bound)
  evalsha  pixeld's commit script (Sources/RespBridge/Commit/BatchCommitter.swift, read from the
           source), `EVALSHA sha 3 marker outcome pixel seq ttl 0 hold :dead N v1 … vN` per batch
  multi    `MULTI` / `LPUSH pixel v1 … vN` / `SET marker seq EX ttl` / `EXEC` per batch
  lpush1   one `LPUSH pixel v` per value, pipelined per batch (rsyslog omhiredis, syslog-ng redis())

and prints Redis's utime+stime (/proc) per million values. Usage (after bench/run.py has built the
tools): python3 bench/redis_ab.py [--values 200000] [--batches 64,1000,4000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import BIN, ROOT, Redis, cpu_seconds, setup, start_redis  # noqa: E402


def commit_script() -> str:
    source = (ROOT / "Sources/RespBridge/Commit/BatchCommitter.swift").read_text()
    body = source.split('static let script = """', 1)[1].split('"""', 1)[0]
    return "\n".join(line[8:] if line.startswith("        ") else line for line in body.splitlines()).strip("\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--values", type=int, default=200_000)
    parser.add_argument("--batches", default="64,1000,4000")
    parser.add_argument("--modes", default="lpush,evalsha,multi,lpush1")
    args = parser.parse_args()
    setup(build_pixeld=False)
    os.sched_setaffinity(0, {1})
    out = subprocess.run([str(BIN / "loadgen"), "--print", "0", str(args.values), "--other-permille", "0"],
                         capture_output=True, check=True).stdout
    values = [line.split(b"\t", 2)[2] for line in out.split(b"\n") if line]
    lua = commit_script()
    workdir = Path(tempfile.mkdtemp(prefix="redis-ab-", dir=ROOT / ".build-bench"))
    try:
        for batch in (int(b) for b in args.batches.split(",")):
            for mode in args.modes.split(","):
                proc, port = start_redis(workdir)
                client = Redis(port)
                try:
                    sha = client.call("SCRIPT", "LOAD", lua)
                    before = cpu_seconds(proc.pid)
                    for seq, start in enumerate(range(0, len(values), batch), start=1):
                        chunk = values[start:start + batch]
                        if mode == "lpush":
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
                    used = cpu_seconds(proc.pid) - before
                    pushed = client.call("LLEN", "pixel")
                    print(f"{mode:8s} batch {batch:5d}: {pushed} pushed, Redis {used / pushed * 1e6:.2f} CPU s per million")
                finally:
                    client.close()
                    proc.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
