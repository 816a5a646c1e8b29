#!/usr/bin/env python3
"""Kernel drops around a Redis stall and a connection reset, with `--spool` (BENCHMARKS.md, session 25).

Starts a private redis-server (loopback, a free non-default port), `pixeld-ingest --udp … --redis …
--metrics … [--spool DIR]` and bench/loadgen at --rate for --duration s, every one of them at nice
--nice (the receive threads at --receive-nice). --pause-at s in: `CLIENT PAUSE --pause-ms --mode`;
--reset-at s in: every TCP connection to Redis is killed with `ss -K` (the writer sees "Software caused
connection abort"). Every --interval s it samples the UDP socket's receive queue and drop count
(/proc/net/udp) and the receive thread's wchan: `futex_do_wait` is the receiver waiting for room in
pixeld's queue (`PushQueue.enqueue`), the only place where the writer can hold it up.

Prints one JSON object: sent, delivered (LLEN), kernel drops, the receiver's longest wait for room, the
largest receive queue, and when the first drop came. Only processes this script started are stopped,
by PID; the load is bounded by --duration.

Usage (from the repository root, after `swift build -c release --static-swift-stdlib --scratch-path
.build-bench --product pixeld-ingest`):
  python3 bench/stall.py --spool --rate 50000 --mode ALL
  python3 bench/stall.py --spool --rate 50000 --pause-at 100 --reset-at -1    # no stall: the baseline
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (Redis client, free_port, scrape, BIN)


def udp_socket(port: int) -> tuple[int | None, int | None]:
    """(receive queue bytes, drops) of the UDP socket bound to 127.0.0.1:port."""
    wanted = "0100007F:%04X" % port
    with open("/proc/net/udp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[1] == wanted:
                return int(fields[4].split(":")[1], 16), int(fields[-1])
    return None, None


def thread_id(pid: int, name: str) -> str:
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            if open(f"/proc/{pid}/task/{tid}/comm").read().strip() == name:
                return tid
        except OSError:
            continue
    raise RuntimeError(f"no thread {name} in {pid}")


def wchan(pid: int, tid: str) -> str:
    try:
        return open(f"/proc/{pid}/task/{tid}/wchan").read().strip() or "-"
    except OSError:
        return "gone"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=str(bench.SCRATCH / "release" / "pixeld-ingest"))
    parser.add_argument("--rate", type=int, default=50_000)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--pause-at", type=float, default=1.5)
    parser.add_argument("--pause-ms", type=int, default=2000)
    parser.add_argument("--mode", default="ALL", choices=["ALL", "WRITE"])
    parser.add_argument("--reset-at", type=float, default=2.0, help="negative: no reset")
    parser.add_argument("--spool", action="store_true")
    parser.add_argument("--nice", type=int, default=-10)
    parser.add_argument("--receive-nice", type=int, default=-20)
    parser.add_argument("--interval", type=float, default=0.003)
    parser.add_argument("--extra", default="", help="more pixeld-ingest flags")
    args = parser.parse_args()

    loadgen = bench.BIN / "loadgen"
    if not loadgen.exists():
        loadgen.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-o", str(loadgen), str(bench.ROOT / "bench" / "loadgen.c")], check=True)
    bench.SCRATCH.mkdir(exist_ok=True)
    work = tempfile.mkdtemp(prefix="stall-", dir=bench.SCRATCH)
    nice = ["nice", "-n", str(args.nice)]
    procs: list[subprocess.Popen] = []

    def start(command: list[str], log: str, stdout=None) -> subprocess.Popen:
        proc = subprocess.Popen(nice + command, stdout=stdout or open(f"{work}/{log}", "wb"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        procs.append(proc)
        return proc

    try:
        redis_port = bench.free_port()
        start(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", work, "--protected-mode", "yes"], "redis.log")
        deadline = time.monotonic() + 10
        while True:
            try:
                if bench.Redis(redis_port).call("PING") == "PONG":
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        udp_port, metrics_port = bench.free_port(), bench.free_port()
        command = [args.bin, "--udp", f"127.0.0.1:{udp_port}", "--redis", f"redis://127.0.0.1:{redis_port}/0",
                   "--metrics", f"127.0.0.1:{metrics_port}", "--receive-nice", str(args.receive_nice)]
        command += ["--spool", f"{work}/spool"] if args.spool else []
        ingest = start(command + args.extra.split(), "ingest.log")
        deadline = time.monotonic() + 10
        while True:
            try:
                bench.scrape(metrics_port)
                break
            except OSError:
                if time.monotonic() > deadline or ingest.poll() is not None:
                    raise RuntimeError(f"pixeld-ingest did not start; see {work}/ingest.log")
                time.sleep(0.05)
        receiver = thread_id(ingest.pid, "pixeld-recv")
        load = start([str(loadgen), "--target", f"udp:127.0.0.1:{udp_port}", "--rate", str(args.rate),
                      "--duration", str(args.duration)], "", stdout=subprocess.PIPE)
        started = time.monotonic()
        samples = []  # (s since the load started, receive queue bytes, drops, receiver waits for room)
        paused = reset = False
        pauser = bench.Redis(redis_port)
        while load.poll() is None:
            now = time.monotonic() - started
            if not paused and now >= args.pause_at:
                paused = True
                pauser.call("CLIENT", "PAUSE", str(args.pause_ms), args.mode)
            if not reset and 0 <= args.reset_at <= now:
                reset = True
                subprocess.run(["ss", "-K", "-t", "dst", "127.0.0.1", "dport", "=", f":{redis_port}"], capture_output=True)
            queued, drops = udp_socket(udp_port)
            samples.append((now, queued or 0, drops or 0, "futex" in wchan(ingest.pid, receiver)))
            time.sleep(args.interval)
        sent = json.loads(load.stdout.read())
        time.sleep(1.0)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = bench.scrape(metrics_port)
            if bench.sample(text, "pixeld_queue_messages") == 0 and bench.sample(text, "pixeld_spool_messages") == 0:
                break
            time.sleep(0.1)
        waits, since = [], None
        for now, _, _, waiting in samples:
            if waiting and since is None:
                since = now
            elif not waiting and since is not None:
                waits.append(now - since)
                since = None
        drops = samples[-1][2] if samples else 0
        print(json.dumps({
            "rate": args.rate, "mode": args.mode, "pause_ms": args.pause_ms, "spool": args.spool,
            "sent_local3": sent.get("sent_local3"), "delivered": bench.Redis(redis_port).call("LLEN", "pixel"),
            "kernel_drops": drops,
            "first_drop_s": next((round(s[0], 2) for s in samples if s[2] > 0), None),
            "longest_receiver_wait_ms": round(1000 * max(waits, default=0)),
            "max_receive_queue_bytes": max((s[1] for s in samples), default=0),
            "samples": len(samples), "work": work,
        }))
        return 0
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


if __name__ == "__main__":
    sys.exit(main())
