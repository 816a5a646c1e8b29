#!/usr/bin/env python3
"""What writing a batch's visit states costs Redis, by key layout (a measurement for issue 5's next step).

The rollup script writes each visit state of a batch as its own key, `SET key state EX ttl` from Lua
(`RollupScript.swift`). This compares that with one hash per site day written by one `HSET` with every
state as a field (plus one `EXPIREAT`), under valgrind's callgrind, in a private redis-server: the
figure is Redis's instructions per visit state written, over 20 batches of 400 states (300 distinct
visitors, 80-byte states, as a batch of the analytics benchmark), after two warm-up batches.

    python3 bench/visit_states.py [--batches 20] [--states 400]
"""
from __future__ import annotations

import argparse
import random
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (the harness: Redis client, start_redis)

SCRIPTS = {
    "set": (b"for i = 1, #ARGV, 2 do redis.call('SET', ARGV[i], ARGV[i + 1], 'EX', 3600) end return 1", []),
    "hset": (b"redis.call('HSET', KEYS[1], unpack(ARGV)) redis.call('EXPIREAT', KEYS[1], 1900000000) return 1",
             [b"pixeld:visits:example.com:2026-11-23"]),
}


def arguments(batch: int, states: int) -> list[bytes]:
    state = bytes(range(80))
    args: list[bytes] = []
    for index in range(states):
        visitor = random.Random(batch * states + index % 300).getrandbits(128)
        args += [("pixeld:visit:example.com:%032x" % visitor).encode(), state]
    return args


def measure(layout: str, batches: int, states: int, workdir: Path) -> float:
    profile = workdir / f"{layout}.callgrind"
    proc, port = bench.start_redis(workdir, core="0", wrapper=["valgrind", "--tool=callgrind", f"--callgrind-out-file={profile}"])
    try:
        redis = bench.Redis(port)
        script, keys = SCRIPTS[layout]
        def run(batch: int) -> None:
            redis.call(b"EVAL", script, str(len(keys)).encode(), *keys, *arguments(batch, states))
        for batch in range(2):
            run(batch)
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], capture_output=True, check=True)
        for batch in range(2, 2 + batches):
            run(batch)
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], capture_output=True, check=True)
    finally:
        proc.stop()
    dump = Path(str(profile) + ".1")
    for line in dump.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1]) / (batches * states)
    raise RuntimeError(f"no totals in {dump}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--states", type=int, default=400)
    options = parser.parse_args()
    workdir = Path(__file__).resolve().parent.parent / ".build-bench" / "bench-run" / "visit-states"
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in workdir.glob("*.callgrind*"):
        stale.unlink()
    for layout, label in [("set", "one key per visit, SET … EX from Lua (today)"),
                          ("hset", "one hash per site day, one HSET")]:
        print(f"{label}: {measure(layout, options.batches, options.states, workdir):,.0f} Redis instructions per visit state")
    return 0


if __name__ == "__main__":
    sys.exit(main())
