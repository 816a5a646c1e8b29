#!/usr/bin/env python3
"""pixeld ingest benchmark: pixeld vs rsyslog+omhiredis vs syslog-ng redis() vs a do-nothing sink.

For every system under test and every cell (transport x offered rate) and every repeat it starts a
private redis-server (loopback, a free non-default port, --save '' --appendonly no) and the system,
both pinned to core 0 with taskset, checks the pipeline end to end with a probe message, then runs
bench/loadgen pinned to core 1 for a fixed duration, waits for Redis to stop growing (drain), and
records:

  offered (local3 messages the generator tried to send), delivered (LLEN), loss %, delivered/s,
  the system's CPU seconds per million delivered (utime+stime of all its threads, /proc/PID/stat,
  measured from just before the load to the end of the drain), its peak RSS (VmHWM), Redis CPU
  seconds per million (same method), and for pixeld the receive->LPUSH-ack latency p50/p99 from
  the Prometheus histogram pixeld_ingest_ack_latency_seconds (difference of two scrapes).

A sample of every list (windows at the head, middle and tail) is compared byte-for-byte with what
the generator sent (`loadgen --print`), so a system that alters or truncates values fails loudly.

Everything runs on loopback, on ports picked at random in 20000-40000 (never 6379/514/5514), and
every load is bounded in time. Only processes this script started are stopped, by PID.

Usage (from the repository root):
  python3 bench/run.py                       # everything, 10 s per cell, 3 repeats
  python3 bench/run.py --quick               # smoke test: 2 s per cell, 1 repeat
  python3 bench/run.py --systems pixeld,sink --cells udp-10k,udp-max --duration 5 --repeats 3
  python3 bench/run.py --wait-load 1.0       # wait (up to --wait-max-minutes) for a quiet machine
Results: .build-bench/bench-results/<stamp>/results.json and results.md (printed too).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = ROOT / ".build-bench"
BIN = SCRATCH / "bench-bin"
TOOLS = SCRATCH / "tools"
SYSLOG_NG_ROOT = TOOLS / "syslog-ng"
RUNS = SCRATCH / "bench-run"
RESULTS = SCRATCH / "bench-results"
# PIXELD_BENCH_BIN: another build to measure (A/B), with its pixeld-ingest next to it; never built over.
OTHER_BUILD = os.environ.get("PIXELD_BENCH_BIN")
PIXELD = Path(OTHER_BUILD or SCRATCH / "release" / "pixeld")
# BENCH_REDIS_ARGS: extra redis-server arguments for every private Redis (experiments, e.g.
# "--hash-max-listpack-entries 0"); empty by default, so results are for a stock Redis.
REDIS_EXTRA_ARGS = os.environ.get("BENCH_REDIS_ARGS", "").split()

SYSTEM_CORE = "0"
LOAD_CORE = "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
FORBIDDEN_PORTS = {6379, 514, 5514}

SYSTEMS = ["sink", "pixeld", "rsyslog", "rsyslog-tuned", "syslog-ng", "syslog-ng-tuned"]
# name -> (transport, rate; 0 = as fast as the generator can)
CELLS = {
    "udp-1k": ("udp", 1_000),  # not in the default set: low-rate latency
    "udp-10k": ("udp", 10_000),
    "udp-50k": ("udp", 50_000),
    "udp-100k": ("udp", 100_000),
    "udp-max": ("udp", 0),
    "unix-50k": ("unix", 50_000),
}
SYSLOG_NG_DEBS = ["syslog-ng-core", "syslog-ng-mod-redis", "libivykis0", "libnet1", "libpcre3", "libwrap0"]


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------
# Setup: build the tools, install/unpack the systems under test
# ---------------------------------------------------------------------------------------------------


def setup(build_pixeld: bool) -> None:
    BIN.mkdir(parents=True, exist_ok=True)
    for name in ("loadgen", "sink"):
        source = ROOT / "bench" / f"{name}.c"
        target = BIN / name
        if not target.exists() or target.stat().st_mtime < source.stat().st_mtime:
            subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-o", str(target), str(source)], check=True)
    if build_pixeld:
        swift = shutil.which("swift") or "/opt/swift/usr/bin/swift"
        log("building pixeld and pixeld-ingest (release, --static-swift-stdlib, --scratch-path .build-bench)…")
        # `pixeld ingest` runs the pixeld-ingest program next to it: both are what a user installs.
        for product in ("pixeld", "pixeld-ingest"):
            subprocess.run([swift, "build", "-c", "release", "--static-swift-stdlib", "--scratch-path", str(SCRATCH),
                            "--product", product], cwd=ROOT, check=True)
    missing = [p for p in ("redis-server", "redis-tools", "rsyslog", "rsyslog-hiredis") if not dpkg_installed(p)]
    if missing:
        log(f"installing {' '.join(missing)} (the system rsyslog service is not started or configured)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], check=True, env=env)
    if not (SYSLOG_NG_ROOT / "usr/sbin/syslog-ng").exists():
        # syslog-ng conflicts with rsyslog in apt: unpack its packages into a private folder instead.
        debs = TOOLS / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        log("downloading syslog-ng 3.38 packages (apt-get download) and unpacking them into .build-bench/tools")
        subprocess.run(["apt-get", "download", *SYSLOG_NG_DEBS], cwd=debs, check=True)
        for deb in sorted(debs.glob("*.deb")):
            subprocess.run(["dpkg", "-x", str(deb), str(SYSLOG_NG_ROOT)], check=True)


def dpkg_installed(package: str) -> bool:
    result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return "install ok installed" in result.stdout


WAKE_PROBE = r"""
import os, sys, time
rounds, gap, core, other = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
a_r, a_w = os.pipe(); b_r, b_w = os.pipe()
pid = os.fork()
if pid == 0:
    os.sched_setaffinity(0, {core})
    for _ in range(rounds):
        os.read(a_r, 1); os.write(b_w, b"x")
    os._exit(0)
os.sched_setaffinity(0, {other})
time.sleep(0.2)
before = int(open(f"/proc/{pid}/schedstat").read().split()[0])
for _ in range(rounds):
    os.write(a_w, b"x"); os.read(b_r, 1); time.sleep(gap)
after = int(open(f"/proc/{pid}/schedstat").read().split()[0])
os.waitpid(pid, 0)
print(f"{(after - before) / rounds / 1000:.1f}")
"""


def wake_cost_us() -> str:
    """The host's price of a wake-up, which the low-rate cells mostly measure: on-CPU µs per wake of a
    process on the system core that reads one byte from a pipe and writes one back, woken from the
    generator's core once per ms. Differs several-fold between hosts of the same kind (session 10's
    PVM guest: 20–30 µs), so every results.md prints it next to the machine."""
    try:
        out = subprocess.run([sys.executable, "-c", WAKE_PROBE, "2000", "0.001", SYSTEM_CORE, LOAD_CORE],
                             capture_output=True, text=True, timeout=60)
        return out.stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def versions() -> dict[str, str]:
    def first_line(command: list[str], env: dict[str, str] | None = None) -> str:
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=10, env=env)
            text = (out.stdout or out.stderr).strip().splitlines()
            return text[0] if text else "?"
        except (OSError, subprocess.TimeoutExpired):
            return "not found"

    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "kernel": os.uname().release,
        "swift": first_line([shutil.which("swift") or "/opt/swift/usr/bin/swift", "--version"]),
        "redis": first_line(["redis-server", "--version"]),
        "rsyslog": first_line(["rsyslogd", "-v"]),
        "rsyslog-hiredis": first_line(["dpkg-query", "-W", "-f=${Version}", "rsyslog-hiredis"]),
        "syslog-ng": first_line([str(SYSLOG_NG_ROOT / "usr/sbin/syslog-ng"), "-V"], env=syslog_ng_env()),
        "commit": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True).stdout.strip()
        + (" (Sources/ modified)" if subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "Sources"],
                                                     capture_output=True, text=True).stdout.strip() else ""),
        "max_dgram_qlen": Path("/proc/sys/net/unix/max_dgram_qlen").read_text().strip(),
        "rmem_max": Path("/proc/sys/net/core/rmem_max").read_text().strip(),
        "rmem_default": Path("/proc/sys/net/core/rmem_default").read_text().strip(),
        "wake_us": wake_cost_us(),
    }


# ---------------------------------------------------------------------------------------------------
# Small helpers: ports, /proc, Redis
# ---------------------------------------------------------------------------------------------------


def free_port() -> int:
    for _ in range(200):
        port = random.randint(20000, 40000)
        if port in FORBIDDEN_PORTS:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, \
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                tcp.bind(("127.0.0.1", port))
                udp.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name: index 0 is field 3 (state)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads), in seconds."""
    fields = stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def context_switches(pid: int) -> int:
    """Voluntary + involuntary context switches of all the process's threads."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


class Redis:
    """A minimal RESP client (no dependency), enough for LLEN, LRANGE, DEL, KEYS, INFO, LPUSH pipelines."""

    def __init__(self, port: int | Path):
        """`port` on loopback, or the path of Redis's unix socket."""
        if isinstance(port, Path):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(30)
            self.sock.connect(str(port))
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.file = self.sock.makefile("rb")

    def close(self) -> None:
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass

    @staticmethod
    def encode(*args: bytes | str | int) -> bytes:
        out = [b"*%d\r\n" % len(args)]
        for arg in args:
            if isinstance(arg, int):
                arg = str(arg)
            if isinstance(arg, str):
                arg = arg.encode()
            out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
        return b"".join(out)

    def read(self):
        line = self.file.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.file.read(n + 2)
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RuntimeError(f"bad reply {line!r}")

    def call(self, *args):
        self.sock.sendall(self.encode(*args))
        return self.read()

    def pipeline(self, commands: list[bytes]) -> list:
        self.sock.sendall(b"".join(commands))
        return [self.read() for _ in commands]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"{self.name} ({self.pid}) did not stop in {timeout}s; SIGKILL")
            self.popen.kill()
            self.popen.wait(5)


def evict_from_page_cache(program: str) -> None:
    """Drops the executable's clean pages from the page cache, so that every run maps it as after a
    reboot. How a file came into the cache changes the RSS of whoever maps it: a binary just written
    with `cp` sits in large folios, and a page fault then maps a whole folio (pixeld --version: 17.6
    MiB peak RSS right after a `cp`, 15.4 once read back from disk)."""
    path = program if "/" in program else shutil.which(program)
    if not path:
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def start(name: str, command: list[str], workdir: Path, core: str, env: dict[str, str] | None = None,
          stdout=None) -> Proc:
    log_path = workdir / f"{name}.log"
    evict_from_page_cache(command[0])
    if Path(command[0]).name == "pixeld":
        # `pixeld ingest` execs the program beside it: the one whose pages are measured.
        evict_from_page_cache(str(Path(command[0]).with_name("pixeld-ingest")))
    out = stdout if stdout is not None else open(log_path, "wb")
    popen = subprocess.Popen(["taskset", "-c", core, *command], stdout=out,
                             stderr=subprocess.STDOUT if stdout is None else open(log_path, "wb"),
                             cwd=workdir, env=env, start_new_session=True)
    return Proc(name, popen, log_path)


def redis_socket(workdir: Path) -> Path:
    """Where the private Redis of `workdir` also listens: a unix stream socket."""
    return workdir / "redis.sock"


def start_redis(workdir: Path, core: str = SYSTEM_CORE, wrapper: list[str] | None = None,
                unix_socket: bool = False) -> tuple[Proc, int]:
    """A private redis-server on a free loopback port, and with `unix_socket` also on
    `redis_socket(workdir)`; `wrapper` (e.g. valgrind) runs it."""
    port = free_port()
    socket_args = ["--unixsocket", str(redis_socket(workdir)), "--unixsocketperm", "700"] if unix_socket else []
    proc = start("redis", [*(wrapper or []), "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                           *socket_args, "--appendonly", "no", "--dir", str(workdir), "--daemonize", "no",
                           "--protected-mode", "yes", *REDIS_EXTRA_ARGS], workdir, core)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            client = Redis(port)
            if client.call("PING") == "PONG":
                client.close()
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.stop()
    raise RuntimeError(f"redis-server did not start on port {port}; see {proc.log_path}")


# ---------------------------------------------------------------------------------------------------
# The systems under test
# ---------------------------------------------------------------------------------------------------


def syslog_ng_env() -> dict[str, str]:
    r = SYSLOG_NG_ROOT
    return dict(os.environ, LD_LIBRARY_PATH=":".join(
        str(p) for p in (r / "usr/lib/syslog-ng", r / "usr/lib/x86_64-linux-gnu", r / "lib/x86_64-linux-gnu")))


def rsyslog_conf(tuned: bool, transport: str, target: str, redis_port: int, workdir: Path) -> str:
    if transport == "udp":
        host, port = target.rsplit(":", 1)
        if tuned:
            source = ('module(load="imudp" threads="1" batchSize="128")\n'
                      f'input(type="imudp" address="{host}" port="{port}" rcvbufSize="8m")\n')
        else:
            source = f'module(load="imudp")\ninput(type="imudp" address="{host}" port="{port}")\n'
    else:
        # Never the system socket (/dev/log): SysSock.Use="off". nginx sends a HOSTNAME, which only the
        # regular parser chain reads (UseSpecialParser="off" + ParseHostname="on").
        source = ('module(load="imuxsock" SysSock.Use="off")\n'
                  f'input(type="imuxsock" Socket="{target}" UseSpecialParser="off" ParseHostname="on" UsePIDFromSystem="off" '
                  'RateLimit.Interval="0" CreatePath="on")\n')
    queue = ""
    if tuned:
        # Large in-memory main queue, 1024-message dequeue batches: omhiredis pipelines one batch
        # (LPUSH per message, replies read at the end of the batch).
        queue = ('main_queue(queue.type="FixedArray" queue.size="200000" queue.dequeueBatchSize="1024" '
                 'queue.workerThreads="1")\n')
    return (
        f'global(workDirectory="{workdir}")\n'
        f"{source}"
        'module(load="omhiredis")\n'
        f"{queue}"
        # nginx's "pixel: MSG": rsyslog's msg property keeps the space after the colon.
        'template(name="pixel_value" type="string" string="%msg:2:$%")\n'
        'template(name="pixel_key" type="string" string="%programname%")\n'
        'if $syslogfacility-text == "local3" then {\n'
        f'  action(type="omhiredis" server="127.0.0.1" serverport="{redis_port}" mode="queue" '
        'key="pixel_key" dynakey="on" template="pixel_value")\n'
        "}\n"
    )


def syslog_ng_conf(tuned: bool, transport: str, target: str, redis_port: int) -> str:
    if transport == "udp":
        host, port = target.rsplit(":", 1)
        extra = " so-rcvbuf(8388608) log-fetch-limit(1000) log-iw-size(100000)" if tuned else ""
        source = f'udp(ip("{host}") port({port}){extra})'
    else:
        # Local sources expect no HOSTNAME by default; nginx sends one.
        extra = " log-fetch-limit(1000) log-iw-size(100000)" if tuned else ""
        source = f'unix-dgram("{target}" perm(0666) flags(expect-hostname){extra})'
    batching = " batch-lines(1000) batch-timeout(10) log-fifo-size(100000)" if tuned else ""
    return (
        "@version: 3.38\n"
        f"source s_net {{ {source}; }};\n"
        "filter f_local3 { facility(local3); };\n"
        f'destination d_redis {{ redis(host("127.0.0.1") port({redis_port}) '
        f'command("LPUSH", "$PROGRAM", "$MSG"){batching}); }};\n'
        "log { source(s_net); filter(f_local3); destination(d_redis); };\n"
    )


# Experiments only (the published tables use pixeld's defaults): extra `pixeld ingest` flags and
# environment, from --pixeld-args / --pixeld-env.
PIXELD_EXTRA_ARGS: list[str] = []
E2E_RATE = 20.0  # latency probes per second (--e2e-rate)
PIXELD_EXTRA_ENV: dict[str, str] = {}


def start_system(system: str, transport: str, target: str, redis_port: int, workdir: Path,
                 metrics_port: int) -> Proc:
    if system == "sink":
        flag = "--udp" if transport == "udp" else "--unix"
        return start("sink", [str(BIN / "sink"), flag, target], workdir, SYSTEM_CORE,
                     stdout=open(workdir / "sink.json", "wb"))
    if system == "pixeld":
        flag = "--udp" if transport == "udp" else "--unix"
        return start("pixeld", [str(PIXELD), "ingest", flag, target, "--redis",
                                f"redis://127.0.0.1:{redis_port}/0", "--metrics", f"127.0.0.1:{metrics_port}",
                                *PIXELD_EXTRA_ARGS],
                     workdir, SYSTEM_CORE, env=dict(os.environ, **PIXELD_EXTRA_ENV))
    if system.startswith("rsyslog"):
        conf = workdir / "rsyslog.conf"
        conf.write_text(rsyslog_conf(system.endswith("tuned"), transport, target, redis_port, workdir))
        return start("rsyslog", ["rsyslogd", "-n", "-f", str(conf), "-i", str(workdir / "rsyslog.pid")],
                     workdir, SYSTEM_CORE)
    if system.startswith("syslog-ng"):
        conf = workdir / "syslog-ng.conf"
        conf.write_text(syslog_ng_conf(system.endswith("tuned"), transport, target, redis_port))
        r = SYSLOG_NG_ROOT
        return start("syslog-ng", [str(r / "usr/sbin/syslog-ng"), "-F", "-f", str(conf),
                                   f"--module-path={r / 'usr/lib/syslog-ng/3.38'}", "-R",
                                   str(workdir / "syslog-ng.persist"), "-c", str(workdir / "syslog-ng.ctl"),
                                   "-p", str(workdir / "syslog-ng.pid"), "--no-caps"],
                     workdir, SYSTEM_CORE, env=syslog_ng_env())
    raise ValueError(system)


def send_probe(transport: str, target: str) -> None:
    datagram = b"<158>Nov 22 10:00:00 web-1 probe: ready"
    if transport == "udp":
        host, port = target.rsplit(":", 1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(datagram, (host, int(port)))
    else:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            try:
                s.sendto(datagram, target)
            except (BlockingIOError, FileNotFoundError, ConnectionRefusedError):
                pass


def wait_ready(system: str, proc: Proc, transport: str, target: str, redis: Redis | None, workdir: Path) -> None:
    """Until a probe datagram has gone all the way into Redis (list `probe`), so that startup and the
    first connection are not part of the measurement."""
    deadline = time.monotonic() + 30
    if system == "sink":
        while time.monotonic() < deadline:
            if (workdir / "sink.json").read_text().strip():
                return
            time.sleep(0.02)
        raise RuntimeError("sink did not start")
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{system} exited at start; see {proc.log_path}:\n{proc.log_path.read_text()[-2000:]}")
        send_probe(transport, target)
        time.sleep(0.1)
        if redis.call("LLEN", "probe"):
            redis.call("DEL", "probe")
            time.sleep(0.3)  # a late probe still in flight
            redis.call("DEL", "probe")
            return
    raise RuntimeError(f"{system} never delivered the probe; see {proc.log_path}")


# ---------------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------------


def scrape(metrics_port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        return response.read().decode()


def sample(text: str, name: str) -> float:
    """The sum of a metric's samples (all label sets) in a Prometheus text scrape; 0 if absent."""
    pattern = re.compile(rf'^{re.escape(name)}(?:\{{[^}}]*\}})? ([0-9.eE+-]+)$')
    return sum(float(m.group(1)) for m in map(pattern.match, text.splitlines()) if m)


def histogram(text: str, name: str) -> dict[float, float]:
    buckets: dict[float, float] = {}
    pattern = re.compile(rf'^{re.escape(name)}_bucket\{{(?:.*,)?le="([^"]+)"(?:,.*)?\}} ([0-9.eE+-]+)$')
    for line in text.splitlines():
        m = pattern.match(line)
        if m:
            le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
            buckets[le] = buckets.get(le, 0.0) + float(m.group(2))
    return buckets


def quantile(before: dict[float, float], after: dict[float, float], q: float) -> float | None:
    """Linear interpolation inside the cumulative bucket that holds quantile q (Prometheus style)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    rank = q * counts[-1]
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in zip(bounds, counts):
        if count >= rank:
            if bound == float("inf"):
                return previous_bound
            span = count - previous_count
            fraction = (rank - previous_count) / span if span > 0 else 1.0
            return previous_bound + (bound - previous_bound) * fraction
        previous_bound, previous_count = bound, count
    return None


def expected_values(seqs: list[int], seed: int) -> dict[int, tuple[int, bytes]]:
    if not seqs:
        return {}
    lo, hi = min(seqs), max(seqs)
    out = subprocess.run([str(BIN / "loadgen"), "--print", str(lo), str(hi - lo + 1), "--seed", str(seed)],
                         capture_output=True, check=True).stdout
    wanted = set(seqs)
    table: dict[int, tuple[int, bytes]] = {}
    for line in out.split(b"\n"):
        if not line:
            continue
        seq, local3, value = line.split(b"\t", 2)
        if int(seq) in wanted:
            table[int(seq)] = (int(local3), value)
    return table


SEQ_RE = re.compile(rb"&seq=(\d+)")


def verify_sample(redis: Redis, length: int, seed: int, window: int = 100) -> dict:
    """Compares windows at the head, middle and tail of the list `pixel` with what loadgen sent."""
    if length == 0:
        return {"checked": 0, "mismatched": 0, "order_violations": 0}
    starts = sorted({0, max(0, length // 2 - window // 2), max(0, length - window)})
    checked = mismatched = order_violations = 0
    examples = []
    for start_index in starts:
        values = redis.call("LRANGE", "pixel", start_index, start_index + window - 1)
        seqs = []
        for value in values:
            m = SEQ_RE.search(value)
            seqs.append(int(m.group(1)) if m else -1)
        table = expected_values([s for s in seqs if s >= 0], seed)
        previous = None
        for value, seq in zip(values, seqs):
            checked += 1
            local3, expected = table.get(seq, (0, None))
            if seq < 0 or expected != value or local3 != 1:
                mismatched += 1
                if len(examples) < 3:
                    examples.append({"got": value[:400].decode(errors="replace"),
                                     "expected": (expected or b"").decode(errors="replace"), "local3": local3})
            # LPUSH: the head is the newest, so sequence numbers decrease from the head.
            if previous is not None and seq >= previous:
                order_violations += 1
            previous = seq
    return {"checked": checked, "mismatched": mismatched, "order_violations": order_violations,
            "examples": examples}


class LatencyProber:
    """End-to-end latency, the same way for every system: while the load runs, send ~20 extra local3
    datagrams a second (tag `lat`, random gaps) to the same socket and time each one until a BRPOP on
    the list `lat` returns it. (Each BRPOP wake-up costs Redis ~0.2 ms of CPU on this VM, hence the low
    rate: ~4 ms/s, i.e. ~0.4 s per million at 10k msg/s, ~0.04 at 100k.) This includes any time a datagram waits in the kernel before the system
    reads it, which a system's own receive->ack histogram cannot see. Runs on the generator's core."""

    def __init__(self, transport: str, target: str, redis_port: int, per_second: float = 20.0):
        self.transport, self.target, self.port, self.per_second = transport, target, redis_port, per_second
        self.sent: dict[int, int] = {}
        self.latencies_ns: list[tuple[int, int]] = []  # (sent at, latency)
        self.stop_event = threading.Event()
        self.sender = threading.Thread(target=self._send, daemon=True)
        self.receiver = threading.Thread(target=self._receive, daemon=True)

    def start(self) -> None:
        self.receiver.start()
        self.sender.start()

    def _send(self) -> None:
        family = socket.AF_INET if self.transport == "udp" else socket.AF_UNIX
        address = (self.target.rsplit(":", 1)[0], int(self.target.rsplit(":", 1)[1])) \
            if self.transport == "udp" else self.target
        rng = random.Random(7)
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            i = 0
            while not self.stop_event.is_set():
                datagram = b"<158>Nov 22 10:00:00 web-1 lat: %d" % i
                self.sent[i] = time.monotonic_ns()
                try:
                    sock.sendto(datagram, address)
                except OSError:
                    self.sent.pop(i, None)  # queue full (unix): not a latency sample
                i += 1
                time.sleep(rng.expovariate(self.per_second))

    def _receive(self) -> None:
        client = Redis(self.port)
        try:
            while True:
                reply = client.call("BRPOP", "lat", "0.2")
                now = time.monotonic_ns()
                if reply is None:
                    if self.stop_event.is_set() and not self.sender.is_alive():
                        return
                    continue
                sent = self.sent.get(int(reply[1]))
                if sent is not None:
                    self.latencies_ns.append((sent, now - sent))
        finally:
            client.close()

    def finish(self, window: tuple[int, int]) -> dict:
        """Stops probing; the quantiles are of the probes sent while the load ran (`window`, monotonic ns):
        after it a system sees only the prober's trickle, which is another cell (see udp-1k)."""
        self.stop_event.set()
        self.sender.join(5)
        self.receiver.join(10)
        values = sorted(latency for sent, latency in self.latencies_ns if window[0] <= sent <= window[1])
        if not values:
            return {"samples": 0, "received": len(self.latencies_ns), "sent": len(self.sent)}

        def pick(q: float) -> float:
            return values[min(len(values) - 1, int(q * len(values)))] / 1e6

        return {"samples": len(values), "received": len(self.latencies_ns), "sent": len(self.sent),
                "p50_ms": pick(0.50), "p99_ms": pick(0.99),
                "max_ms": values[-1] / 1e6}


@dataclass
class RunResult:
    system: str
    cell: str
    repeat: int
    offered: int = 0
    attempted_all: int = 0
    sender_dropped: int = 0
    delivered: int = 0
    loss_pct: float = 0.0
    delivered_per_s: float = 0.0
    offered_per_s: float = 0.0
    cpu_s_per_m: float | None = None
    rss_peak_mib: float | None = None
    redis_cpu_s_per_m: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    e2e_p50_ms: float | None = None
    e2e_p99_ms: float | None = None
    drain_s: float = 0.0
    check: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    error: str | None = None


def run_one(system: str, cell: str, repeat: int, duration: float, seed: int, perf: bool = False) -> RunResult:
    transport, rate = CELLS[cell]
    result = RunResult(system, cell, repeat)
    workdir = RUNS / f"{system}-{cell}-{repeat}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    if transport == "udp":
        target = f"127.0.0.1:{free_port()}"
    else:
        target = str(workdir / "in.sock")
    metrics_port = free_port()
    redis_proc = system_proc = None
    redis = None
    prober = None
    try:
        if system != "sink":
            redis_proc, redis_port = start_redis(workdir)
            redis = Redis(redis_port)
        else:
            redis_port = 0
        system_proc = start_system(system, transport, target, redis_port, workdir, metrics_port)
        wait_ready(system, system_proc, transport, target, redis, workdir)
        time.sleep(0.2)
        cpu0 = cpu_seconds(system_proc.pid)
        switches0 = context_switches(system_proc.pid)
        redis_cpu0 = cpu_seconds(redis_proc.pid) if redis_proc else 0.0
        before = scrape(metrics_port) if system == "pixeld" else ""

        prober = LatencyProber(transport, target, redis_port, E2E_RATE) if system != "sink" and E2E_RATE > 0 else None
        if prober:
            prober.start()
        perf_proc = None
        if perf:
            # cpu-clock sampling (no hardware counters in this VM) of the system and its Redis, with call graphs.
            pids = ",".join(str(p.pid) for p in (system_proc, redis_proc) if p)
            perf_proc = subprocess.Popen(["taskset", "-c", LOAD_CORE, "perf", "record", "-e", "cpu-clock", "-F", "1999",
                                          "-g", "-p", pids, "-o", str(workdir / "perf.data")],
                                         stdout=subprocess.DEVNULL, stderr=open(workdir / "perf.log", "wb"))
        load = subprocess.run(
            ["taskset", "-c", LOAD_CORE, str(BIN / "loadgen"), "--target", f"{transport}:{target}",
             "--rate", str(rate), "--duration", str(duration), "--seed", str(seed)],
            capture_output=True, timeout=duration + 60, check=True)
        gen = json.loads(load.stdout)
        result.extra["loadgen"] = gen
        result.offered = gen["attempted_local3"]
        result.attempted_all = gen["attempted"]
        result.sender_dropped = gen["sender_dropped_local3"]
        result.offered_per_s = gen["attempted"] / gen["elapsed_s"]

        # Drain: until Redis has everything, or has not grown for 2 s (bounded at 120 s).
        if system == "sink":
            time.sleep(1.0)
            # The sink reports on exit, so sample /proc first.
            result.extra["context_switches_per_message"] = (context_switches(system_proc.pid) - switches0) / max(
                1, gen["sent"])
            result.cpu_s_per_m = cpu_seconds(system_proc.pid) - cpu0
            result.rss_peak_mib = status_kib(system_proc.pid, "VmHWM") / 1024
            system_proc.stop()
            sink = json.loads((workdir / "sink.json").read_text().strip().splitlines()[-1])
            result.extra["sink"] = sink
            delivered, last_ns = sink["local3"], sink["last_ns"]
            result.cpu_s_per_m = result.cpu_s_per_m / delivered * 1e6 if delivered else None
        else:
            delivered = redis.call("LLEN", "pixel")
            last_ns = gen["end_ns"] if delivered >= result.offered else time.monotonic_ns()
            stable_since = time.monotonic()
            deadline = time.monotonic() + 120
            while delivered < result.offered and time.monotonic() - stable_since < 2.0 \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
                now = redis.call("LLEN", "pixel")
                if now != delivered:
                    delivered, last_ns, stable_since = now, time.monotonic_ns(), time.monotonic()
        if perf_proc:
            perf_proc.send_signal(signal.SIGINT)
            perf_proc.wait(60)
            with open(workdir / "perf.txt", "wb") as report_file:
                subprocess.run(["perf", "report", "-i", str(workdir / "perf.data"), "--stdio", "--no-children",
                                "--sort", "comm,dso,sym", "--percent-limit", "0.5", "-g", "none"],
                               stdout=report_file, stderr=subprocess.DEVNULL)
            with open(workdir / "perf-callers.txt", "wb") as report_file:
                subprocess.run(["perf", "report", "-i", str(workdir / "perf.data"), "--stdio", "--children",
                                "--sort", "comm,sym", "--percent-limit", "2", "-g", "caller,0.5,callee,function,percent"],
                               stdout=report_file, stderr=subprocess.DEVNULL)
            log(f"    perf profile: {workdir / 'perf.txt'}")
        if prober:
            e2e = prober.finish((gen["start_ns"], gen["end_ns"]))
            result.extra["e2e"] = e2e
            result.e2e_p50_ms, result.e2e_p99_ms = e2e.get("p50_ms"), e2e.get("p99_ms")
        # The prober's datagrams are work for the system and Redis too: count them in the per-million figures.
        pushed = delivered + (result.extra.get("e2e", {}).get("received", 0) if prober else 0)
        result.drain_s = max(0.0, (last_ns - gen["end_ns"]) / 1e9)
        result.delivered = delivered
        result.loss_pct = 100.0 * (result.offered - delivered) / result.offered if result.offered else 0.0
        span = max(gen["end_ns"], last_ns) - gen["start_ns"]
        result.delivered_per_s = delivered / (span / 1e9) if span > 0 else 0.0

        if system != "sink":
            cpu1 = cpu_seconds(system_proc.pid)
            result.extra["context_switches_per_message"] = (context_switches(system_proc.pid) - switches0) / max(1, pushed)
            result.rss_peak_mib = status_kib(system_proc.pid, "VmHWM") / 1024
            result.redis_cpu_s_per_m = (cpu_seconds(redis_proc.pid) - redis_cpu0) / pushed * 1e6 if pushed else None
            result.cpu_s_per_m = (cpu1 - cpu0) / pushed * 1e6 if pushed else None
            result.extra["redis_used_memory_mib"] = int(re.search(
                r"used_memory:(\d+)", redis.call("INFO", "memory").decode()).group(1)) / 2**20
        if system == "pixeld":
            after = scrape(metrics_port)
            h0 = histogram(before, "pixeld_ingest_ack_latency_seconds")
            h1 = histogram(after, "pixeld_ingest_ack_latency_seconds")
            p50, p99 = quantile(h0, h1, 0.50), quantile(h0, h1, 0.99)
            result.p50_ms = p50 * 1e3 if p50 is not None else None
            result.p99_ms = p99 * 1e3 if p99 is not None else None
            # Commits during the run, from the batch-size histogram: the messages each carried and what
            # each cost Redis (its cost is mostly per commit at low rates; see BENCHMARKS.md, session 11).
            commits = sample(after, "pixeld_redis_batch_messages_count") - sample(before, "pixeld_redis_batch_messages_count")
            if commits > 0 and result.redis_cpu_s_per_m is not None:
                result.extra["messages_per_commit"] = pushed / commits
                result.extra["redis_us_per_commit"] = result.redis_cpu_s_per_m * pushed / commits
            result.extra["metrics_tail"] = [line for line in after.splitlines()
                                            if line.startswith(("pixeld_ingest_dropped_total",
                                                                "pixeld_ingest_datagrams_total",
                                                                "pixeld_redis_pushed_total",
                                                                "pixeld_ingest_kernel_drops"))]
        if system != "sink":
            result.check = verify_sample(redis, delivered, seed)
            if result.check["mismatched"]:
                result.error = f"{result.check['mismatched']} sampled values differ from what was sent"
            if delivered > result.offered:
                result.error = f"delivered {delivered} > offered {result.offered} (duplicates or unfiltered)"
    except Exception as error:  # noqa: BLE001 — one failed run must not lose the others
        result.error = f"{type(error).__name__}: {error}"
        log(f"  ! {system} {cell} #{repeat}: {result.error}")
    finally:
        if prober:
            prober.stop_event.set()
        if redis:
            redis.close()
        if system_proc:
            system_proc.stop()
        if redis_proc:
            redis_proc.stop()
    return result


# ---------------------------------------------------------------------------------------------------
# pixeld consume: decode-only throughput
# ---------------------------------------------------------------------------------------------------


def run_consume(events: int, repeat: int, seed: int, perf: bool = False, split: bool = False) -> dict:
    """`pixeld consume pixel` on core 0 draining a list pre-filled with `events` values, stdout to /dev/null.
    Redis shares core 0 (as in the ingest cells) or, with `split`, has core 1 to itself."""
    workdir = RUNS / f"consume-{'split' if split else 'shared'}-{repeat}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    redis_proc, port = start_redis(workdir, LOAD_CORE if split else SYSTEM_CORE)
    redis = Redis(port)
    consumer = None
    try:
        out = subprocess.run([str(BIN / "loadgen"), "--print", "0", str(events), "--seed", str(seed),
                              "--other-permille", "0"], capture_output=True, check=True).stdout
        values = [line.split(b"\t", 2)[2] for line in out.split(b"\n") if line]
        for i in range(0, len(values), 5000):
            redis.call(*(["LPUSH", "pixel"] + values[i:i + 5000]))
        assert redis.call("LLEN", "pixel") == events
        cpu0 = None
        consumer = start("consume", [str(PIXELD), "consume", "pixel", "--redis", f"redis://127.0.0.1:{port}/0",
                                     "--consumer-id", "bench"], workdir, SYSTEM_CORE,
                         stdout=open(os.devnull, "wb"))
        cpu0 = cpu_seconds(consumer.pid)
        redis_cpu0 = cpu_seconds(redis_proc.pid)
        perf_proc = None
        t_start = time.monotonic()
        first = None
        deadline = t_start + 300
        while time.monotonic() < deadline:
            left = redis.call("LLEN", "pixel")
            processing = redis.call("LLEN", "pixel:processing:bench")
            if first is None and left < events:
                first = time.monotonic()
                if perf:  # now: perf -p follows only the threads that exist when it attaches
                    perf_proc = subprocess.Popen(
                        ["taskset", "-c", LOAD_CORE, "perf", "record", "-e", "cpu-clock", "-F", "1999", "-g", "-p",
                         f"{consumer.pid},{redis_proc.pid}", "-o", str(workdir / "perf.data")],
                        stdout=subprocess.DEVNULL, stderr=open(workdir / "perf.log", "wb"))
            if left == 0 and processing == 0:
                break
            time.sleep(0.005)
        t_end = time.monotonic()
        cpu1 = cpu_seconds(consumer.pid)
        redis_cpu1 = cpu_seconds(redis_proc.pid)
        if perf_proc:
            perf_proc.send_signal(signal.SIGINT)
            perf_proc.wait(60)
            with open(workdir / "perf.txt", "wb") as report_file:
                subprocess.run(["perf", "report", "-i", str(workdir / "perf.data"), "--stdio", "--no-children",
                                "--sort", "comm,dso,sym", "--percent-limit", "0.5", "-g", "none"],
                               stdout=report_file, stderr=subprocess.DEVNULL)
            log(f"    perf profile: {workdir / 'perf.txt'}")
        rss = status_kib(consumer.pid, "VmHWM") / 1024
        dead = redis.call("LLEN", "pixel:dead")
        # From the first pop to the last ack: the process's start-up (~0.1 s) is not decoding.
        elapsed = t_end - (first or t_start)
        return {"repeat": repeat, "split": split, "events": events, "elapsed_s": elapsed, "with_startup_s": t_end - t_start,
                "events_per_s": events / elapsed, "cpu_s_per_m": (cpu1 - cpu0) / events * 1e6,
                "redis_cpu_s_per_m": (redis_cpu1 - redis_cpu0) / events * 1e6,
                "rss_peak_mib": rss, "dead_lettered": dead}
    finally:
        redis.close()
        if consumer:
            consumer.stop()
        redis_proc.stop()


# ---------------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------------


def med(values: list[float]) -> str:
    return "—" if not values else fmt(statistics.median(values))


def fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def cell_text(values: list[float | None], percent: bool = False) -> str:
    vs = [v for v in values if v is not None]
    if not vs:
        return "—"
    suffix = "%" if percent else ""
    if len(vs) == 1:
        return fmt(vs[0]) + suffix
    return f"{fmt(statistics.median(vs))}{suffix} ({fmt(min(vs))}–{fmt(max(vs))})"


def report(results: list[RunResult], consume: list[dict], meta: dict) -> str:
    lines = []
    lines.append(f"Machine: {meta['versions']['nproc']} × {meta['versions']['cpu']}, kernel "
                 f"{meta['versions']['kernel']}; loadavg at start {meta['loadavg_start']}, at end "
                 f"{meta.get('loadavg_end', '?')}; a cross-core wake-up costs the woken process "
                 f"{meta['versions'].get('wake_us', '?')} µs on core {SYSTEM_CORE} (`wake_cost_us`)")
    lines.append(f"Command: `{meta['command']}`; {meta['duration']} s per cell, {meta['repeats']} repeats; "
                 "median (min–max)")
    lines.append("")
    header = ("| system | cell | offered/s | offered | delivered | loss % | delivered/s | CPU s/M | peak RSS MiB "
              "| Redis CPU s/M | ack p50 ms | ack p99 ms | e2e p50 ms | e2e p99 ms | sample check |")
    lines.append(header)
    lines.append("|" + "|".join(["---"] * 15) + "|")
    order = {s: i for i, s in enumerate(SYSTEMS)}
    keys = sorted({(r.cell, r.system) for r in results},
                  key=lambda k: (list(CELLS).index(k[0]), order.get(k[1], 99)))
    for cell, system in keys:
        rs = [r for r in results if r.cell == cell and r.system == system]
        ok = [r for r in rs if not r.error or r.delivered]
        checked = sum(r.check.get("checked", 0) for r in rs)
        bad = sum(r.check.get("mismatched", 0) for r in rs)
        errors = [r.error for r in rs if r.error]
        check = "n/a (counts only)" if system == "sink" else (f"{checked - bad}/{checked} equal" if checked else "—")
        if errors:
            check += f"; {len(errors)} error(s)"
        lines.append(
            f"| {system} | {cell} | {cell_text([r.offered_per_s for r in ok])} | {cell_text([r.offered for r in ok])} "
            f"| {cell_text([r.delivered for r in ok])} | {cell_text([r.loss_pct for r in ok])} "
            f"| {cell_text([r.delivered_per_s for r in ok])} | {cell_text([r.cpu_s_per_m for r in ok])} "
            f"| {cell_text([r.rss_peak_mib for r in ok])} | {cell_text([r.redis_cpu_s_per_m for r in ok])} "
            f"| {cell_text([r.p50_ms for r in ok])} | {cell_text([r.p99_ms for r in ok])} "
            f"| {cell_text([r.e2e_p50_ms for r in ok])} | {cell_text([r.e2e_p99_ms for r in ok])} | {check} |")
    if consume:
        lines.append("")
        lines.append("| pixeld consume (decode-only, stdout → /dev/null) | events | events/s | CPU s/M | Redis CPU s/M "
                     "| peak RSS MiB | dead-lettered |")
        lines.append("|---|---|---|---|---|---|---|")
        for split in (False, True):
            cs = [c for c in consume if c.get("split") == split]
            if not cs:
                continue
            where = "consumer core 0, Redis core 1" if split else "consumer + Redis on core 0"
            lines.append(f"| {where} | {cs[0]['events']} | {cell_text([c['events_per_s'] for c in cs])} "
                         f"| {cell_text([c['cpu_s_per_m'] for c in cs])} "
                         f"| {cell_text([c['redis_cpu_s_per_m'] for c in cs])} "
                         f"| {cell_text([c['rss_peak_mib'] for c in cs])} | {sum(c['dead_lettered'] for c in cs)} |")
    errors = [r for r in results if r.error]
    if errors:
        lines.append("")
        lines.append("Errors:")
        for r in errors:
            lines.append(f"- {r.system} {r.cell} #{r.repeat}: {r.error}")
    return "\n".join(lines) + "\n"


def wait_for_quiet(threshold: float, max_minutes: float) -> str:
    deadline = time.monotonic() + max_minutes * 60
    while True:
        load1 = float(Path("/proc/loadavg").read_text().split()[0])
        if load1 < threshold:
            return f"1-min load {load1:.2f} < {threshold}"
        if time.monotonic() >= deadline:
            return f"gave up waiting after {max_minutes:.0f} min: 1-min load still {load1:.2f}"
        log(f"1-min load {load1:.2f} ≥ {threshold}; waiting…")
        time.sleep(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--cells", default=",".join(c for c in CELLS if c != "udp-1k"))
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--consume-events", type=int, default=500_000, help="0 skips the consume benchmark")
    parser.add_argument("--quick", action="store_true", help="2 s per cell, 1 repeat, 100k consume events")
    parser.add_argument("--no-build", action="store_true",
                        help="use the existing .build-bench/release/pixeld and pixeld-ingest (or $PIXELD_BENCH_BIN)")
    parser.add_argument("--wait-load", type=float, default=0.0,
                        help="wait until the 1-minute load average is below this (0 = don't wait)")
    parser.add_argument("--wait-max-minutes", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--e2e-rate", type=float, default=20.0,
                        help="end-to-end latency probes per second during each load (0 = none)")
    parser.add_argument("--pixeld-args", default="", help="extra `pixeld ingest` flags (experiments)")
    parser.add_argument("--pixeld-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for pixeld (experiments), repeatable")
    parser.add_argument("--perf", action="store_true",
                        help="perf record (cpu-clock, call graphs) the system and its Redis during each load; "
                             "reports land in .build-bench/bench-run/<system>-<cell>-<repeat>/perf*.txt")
    args = parser.parse_args()
    global E2E_RATE
    E2E_RATE = args.e2e_rate
    PIXELD_EXTRA_ARGS.extend(args.pixeld_args.split())
    PIXELD_EXTRA_ENV.update(item.split("=", 1) for item in args.pixeld_env)
    # The harness (and its latency prober) shares the generator's core, never the system's.
    os.sched_setaffinity(0, {int(LOAD_CORE)})
    if args.quick:
        args.duration, args.repeats, args.consume_events = 2.0, 1, min(args.consume_events, 100_000)
    systems = [s for s in args.systems.split(",") if s]
    cells = [c for c in args.cells.split(",") if c]
    for s in systems:
        if s not in SYSTEMS:
            parser.error(f"unknown system {s}; known: {', '.join(SYSTEMS)}")
    for c in cells:
        if c not in CELLS:
            parser.error(f"unknown cell {c}; known: {', '.join(CELLS)}")

    # One harness at a time: two would share core 0 and each other's run folders.
    SCRATCH.mkdir(parents=True, exist_ok=True)
    lock = open(SCRATCH / "bench-run.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        parser.error("another bench/run.py is running (.build-bench/bench-run.lock)")
    uses_pixeld = "pixeld" in systems or args.consume_events > 0
    setup(build_pixeld=uses_pixeld and not OTHER_BUILD and (not args.no_build or not PIXELD.exists()))
    if uses_pixeld and not (PIXELD.exists() and PIXELD.with_name("pixeld-ingest").exists()):
        parser.error(f"{PIXELD} and pixeld-ingest beside it are needed (`pixeld ingest` runs pixeld-ingest)")
    meta = {"command": " ".join(["python3", "bench/run.py", *sys.argv[1:]]), "e2e_rate": E2E_RATE,
            "pixeld_extra": {"args": PIXELD_EXTRA_ARGS, "env": PIXELD_EXTRA_ENV}, "duration": args.duration,
            "repeats": args.repeats, "versions": versions()}
    if args.wait_load > 0:
        meta["waited"] = wait_for_quiet(args.wait_load, args.wait_max_minutes)
        log(meta["waited"])
    meta["loadavg_start"] = Path("/proc/loadavg").read_text().split()[:3]
    out_dir = args.out or RESULTS / time.strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)

    results: list[RunResult] = []
    # Repeats outermost, so that a burst of noise hits one repeat of every cell, not every repeat of one.
    for repeat in range(1, args.repeats + 1):
        for cell in cells:
            for system in systems:
                log(f"[{repeat}/{args.repeats}] {system} {cell} …")
                r = run_one(system, cell, repeat, args.duration, args.seed, args.perf)
                results.append(r)
                log(f"    offered {r.offered} delivered {r.delivered} loss {r.loss_pct:.2f}% "
                    f"{r.delivered_per_s:,.0f}/s cpu {r.cpu_s_per_m} s/M rss {r.rss_peak_mib} MiB "
                    f"redis {r.redis_cpu_s_per_m} p50 {r.p50_ms} p99 {r.p99_ms} check {r.check.get('mismatched')}"
                    + (f" messages/commit {r.extra['messages_per_commit']:.1f} redis µs/commit "
                       f"{r.extra['redis_us_per_commit']:.1f}" if "messages_per_commit" in r.extra else ""))
                (out_dir / "results.json").write_text(json.dumps(
                    {"meta": meta, "runs": [r.__dict__ for r in results]}, indent=1))
    consume = []
    if args.consume_events > 0 and (PIXELD.exists()):
        for repeat in range(1, args.repeats + 1):
            for split in (False, True):
                log(f"[{repeat}/{args.repeats}] pixeld consume, {args.consume_events} events, split={split} …")
                c = run_consume(args.consume_events, repeat, args.seed, args.perf, split)
                log(f"    {c}")
                consume.append(c)
    meta["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    (out_dir / "results.json").write_text(json.dumps(
        {"meta": meta, "runs": [r.__dict__ for r in results], "consume": consume}, indent=1))
    text = report(results, consume, meta)
    if "pixeld" in systems:
        targets = subprocess.run([sys.executable, str(ROOT / "bench" / "targets.py"), str(out_dir / "results.json")],
                                 capture_output=True, text=True)
        text += "\nIssue 4's targets:\n\n" + targets.stdout
    (out_dir / "results.md").write_text(text)
    print(text)
    log(f"results: {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
