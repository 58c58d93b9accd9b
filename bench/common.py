"""Helpers shared by the benchmark scenarios: statistics, timing, memory, polling, /proc."""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TypeVar

try:
    import psutil
except ImportError:  # pragma: no cover - depends on the machine
    raise SystemExit("the benchmarks need psutil: python3 -m pip install psutil") from None

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
CACHE_DIR = BENCH_DIR / ".cache"
IDLE_SCRIPT = BENCH_DIR / "children" / "idle.py"
MIB = 1024 * 1024
SLEEP_SECONDS = 3600  # the sleep apps' own end, should a run leave them behind

T = TypeVar("T")


# --- statistics and timing -------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    """Median, min and max of a series of samples."""

    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        if not samples:
            raise ValueError("no samples")
        return cls(statistics.median(samples), min(samples), max(samples), len(samples))

    def scaled(self, factor: float) -> Stats:
        return Stats(self.median * factor, self.min * factor, self.max * factor, self.n)

    def to_json(self) -> dict[str, float]:
        return {"median": self.median, "min": self.min, "max": self.max, "n": self.n}

    @classmethod
    def from_json(cls, data: dict[str, float]) -> Stats:
        return cls(data["median"], data["min"], data["max"], int(data["n"]))


def timed(fn: Callable[[], object]) -> float:
    """Wall time of one call, in seconds."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_runs(fn: Callable[[], object], runs: int, warmup: int = 0) -> Stats:
    """Stats (seconds) of `runs` timed calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    return Stats.of([timed(fn) for _ in range(runs)])


def wait_until(
    pred: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05
) -> T:
    """Poll `pred` until it returns a truthy value, which is returned; TimeoutError after
    `timeout` seconds (monotonic deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


# --- processes -------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """Resident set size of this one process (its children not included)."""
    return int(psutil.Process(pid).memory_info().rss)


def sample_rss(
    pids: Mapping[str, int], samples: int = 10, interval: float = 0.2
) -> dict[str, Stats]:
    """Stats (MiB) of `samples` RSS readings of each process, `interval` seconds apart,
    by the same keys, and of their sum at each reading under "total"."""
    values: dict[str, list[float]] = {key: [] for key in [*pids, "total"]}
    for i in range(samples):
        if i:
            time.sleep(interval)
        reading = {key: rss_bytes(pid) / MIB for key, pid in pids.items()}
        for key, mib in reading.items():
            values[key].append(mib)
        values["total"].append(sum(reading.values()))
    return {key: Stats.of(v) for key, v in values.items()}


def read_stat(pid: int | str) -> tuple[int, str] | None:
    """(parent pid, state letter) from /proc/PID/stat, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split(b" ", 2)
    return int(fields[1]), fields[0].decode()


def read_cmdline(pid: int | str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def is_alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie (PID 1 here reaps orphans late)."""
    stat = read_stat(pid)
    return stat is not None and stat[1] != "Z"


class ChildFinder:
    """Finds a live direct child of `parent` whose command line contains `tag`.

    Meant to be polled in a tight loop: a PID found once with another parent is never read
    again (a process does not become a child of the daemon after its birth), so each poll
    costs one listing of /proc plus reads for new PIDs only. Call `find()` once before the
    measured event to fill that cache. A child of the daemon is re-read on every poll
    because right after fork() it still shows the daemon's command line.
    """

    def __init__(self, parent: int, tag: str) -> None:
        self.parent = parent
        self.tag = tag
        self._others: set[str] = set()

    def find(self, exclude: Collection[int] = ()) -> int | None:
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or entry in self._others:
                continue
            stat = read_stat(entry)
            if stat is None:
                continue
            if stat[0] != self.parent:
                self._others.add(entry)
                continue
            pid = int(entry)
            if stat[1] != "Z" and pid not in exclude and self.tag in read_cmdline(entry):
                return pid
        return None


class ProcEvents:
    """The kernel's process events (the proc connector, netlink): when each exec and exit
    happened, stamped by the kernel on CLOCK_MONOTONIC (the clock of time.monotonic_ns),
    so nothing is lost to polling. Needs CAP_NET_ADMIN (root) and CONFIG_PROC_EVENTS;
    `open()` returns None where either is missing."""

    _NETLINK_CONNECTOR = 11
    _CN_IDX_PROC = 1
    _LISTEN = 1
    _EXEC, _EXIT = 0x2, 0x80000000
    _HEADER = 16 + 20  # nlmsghdr + cn_msg

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    def open(cls) -> ProcEvents | None:
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, cls._NETLINK_CONNECTOR)
        except OSError:
            return None
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * MIB)
            sock.bind((os.getpid(), cls._CN_IDX_PROC))
            op = struct.pack("=I", cls._LISTEN)
            cn = struct.pack("=IIIIHH", cls._CN_IDX_PROC, 1, 0, 0, len(op), 0) + op
            sock.send(struct.pack("=IHHII", 16 + len(cn), 3, 0, 0, os.getpid()) + cn)
        except OSError:
            sock.close()
            return None
        return cls(sock)

    def close(self) -> None:
        self.sock.close()

    def next(self, timeout: float) -> tuple[str, int, int]:
        """The next exec or exit: (kind, pid, kernel time in ns). TimeoutError after
        `timeout` seconds without one."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no process event")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)  # TimeoutError when nothing comes in time
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                raise RuntimeError(
                    "the kernel dropped process events (its buffer overflowed): the machine "
                    "is too busy for this observer; run with --observer poll"
                ) from None
            what, _cpu, stamp = struct.unpack_from("=IIQ", data, self._HEADER)
            pid, tgid = struct.unpack_from("=ii", data, self._HEADER + 16)
            if what == self._EXEC:
                return "exec", tgid, stamp
            if what == self._EXIT and pid == tgid:  # the process, not one of its threads
                return "exit", tgid, stamp


def kill_leftovers(procs: Sequence[psutil.Process], grace: float = 3.0) -> list[int]:
    """Give `procs` `grace` seconds to end, then SIGKILL those still running (zombies
    count as gone); returns the PIDs killed.

    psutil.Process objects remember the creation time, so a reused PID is never hit.
    """

    def left() -> list[psutil.Process]:
        return [p for p in procs if _running(p)]

    with contextlib.suppress(TimeoutError):
        wait_until(lambda: not left(), grace, "processes to end")
    stubborn = left()
    for p in stubborn:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    if stubborn:
        wait_until(lambda: not left(), 5.0, "killed processes to die")
    return [p.pid for p in stubborn]


def _running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def python_executable() -> str:
    """This interpreter's real path (a pyenv shim would add a bash hop to every start)."""
    return os.path.realpath(sys.executable)


def sleep_argv(seconds: int = SLEEP_SECONDS) -> list[str]:
    """Command of the lightest idle child: the `sleep` binary, no interpreter (about
    1 MiB resident each, so a thousand fit anywhere). It cannot carry a tag, and it does
    not notice being orphaned: it ends after `seconds` anyway."""
    found = shutil.which("sleep")
    if found is None:
        raise ToolMissing("sleep not found on PATH (coreutils)")
    return [os.path.realpath(found), str(seconds)]


def raise_fd_limit(want: int = 65536) -> int:
    """Raise this process's soft limit on open files towards `want` (at most the hard
    limit), so that the managers, which inherit it, can hold a thousand apps' pipes and
    a WebSocket client hundreds of sockets; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def idle_argv(tag: str) -> list[str]:
    """Command of an idle child; `tag` makes it recognisable in /proc/PID/cmdline."""
    return [python_executable(), str(IDLE_SCRIPT), tag]


# --- CPU time --------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuUse:
    """CPU time of one process over a window, in percent of one core.

    `own` is the process alone (user + system of all its threads, not its children);
    `reaped` is the user + system time of the children it waited for during the window
    (short-lived helpers it ran). Each comes for the whole window and for its equal,
    consecutive parts.
    """

    own: float
    own_parts: tuple[float, ...]
    reaped: float
    reaped_parts: tuple[float, ...]

    def own_stats(self) -> Stats:
        return Stats.of(self.own_parts)

    @classmethod
    def total(cls, uses: Collection[CpuUse]) -> CpuUse:
        """The CPU use of several processes measured over the same window and parts."""

        def add(parts: list[tuple[float, ...]]) -> tuple[float, ...]:
            return tuple(map(sum, zip(*parts, strict=True)))

        return cls(
            sum(u.own for u in uses),
            add([u.own_parts for u in uses]),
            sum(u.reaped for u in uses),
            add([u.reaped_parts for u in uses]),
        )

    def reaped_stats(self) -> Stats:
        return Stats.of(self.reaped_parts)


def _cpu_now(key: str, proc: psutil.Process) -> tuple[float, float]:
    """(own, reaped) CPU seconds of `proc` so far; RuntimeError if it has ended."""
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            raise psutil.NoSuchProcess(proc.pid)
        t = proc.cpu_times()
    except psutil.NoSuchProcess:
        raise RuntimeError(f"{key} (PID {proc.pid}) ended during the CPU measurement") from None
    return t.user + t.system, t.children_user + t.children_system


def measure_cpu(
    procs: Mapping[str, psutil.Process], duration: float, parts: int = 2
) -> dict[str, CpuUse]:
    """CPU use of each process over the next `duration` seconds of wall time, all read at
    the same instants: the start, the end and `parts - 1` equally spaced points between.

    Only `parts + 1` readings of /proc/PID/stat are made per process (the kernel counts
    the time; there is nothing to poll), so the measuring costs next to nothing. The
    kernel's resolution is one clock tick (10 ms): 0.02 % of one core over 60 s.
    """
    if parts < 1 or duration <= 0:
        raise ValueError("need parts >= 1 and duration > 0")
    start = time.monotonic()
    readings: list[tuple[float, dict[str, tuple[float, float]]]] = []
    for i in range(parts + 1):
        delay = start + duration * i / parts - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        readings.append((time.monotonic(), {k: _cpu_now(k, p) for k, p in procs.items()}))

    def percent(a: int, b: int, key: str, which: int) -> float:
        (t0, r0), (t1, r1) = readings[a], readings[b]
        return 100.0 * (r1[key][which] - r0[key][which]) / (t1 - t0)

    return {
        key: CpuUse(
            percent(0, parts, key, 0),
            tuple(percent(i, i + 1, key, 0) for i in range(parts)),
            percent(0, parts, key, 1),
            tuple(percent(i, i + 1, key, 1) for i in range(parts)),
        )
        for key in procs
    }


# --- tools ---------------------------------------------------------------------------

APT_TIMEOUT = 300.0


class ToolMissing(RuntimeError):
    """A command a scenario needs cannot be found or installed."""


def ensure_tool(name: str, package: str | None = None) -> str:
    """Path of the command `name`, installed with apt-get (Debian package `package`, by
    default `name`) when it is missing."""
    found = shutil.which(name)
    if found:
        return found
    package = package or name
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise ToolMissing(
            f"{name} not found on PATH and it cannot be installed here (needs apt-get as root):"
            f" install it (Debian/Ubuntu: apt-get install {package}) or skip this scenario"
        )
    print(f"installing {package} with apt-get ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", package]):
        try:
            proc = subprocess.run(
                argv, env=env, capture_output=True, timeout=APT_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            raise ToolMissing(f"{' '.join(argv)} took over {APT_TIMEOUT:g} s") from None
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).decode(errors="replace").strip()[-2000:]
            raise ToolMissing(f"{' '.join(argv)} exited {proc.returncode}: {tail}")
    found = shutil.which(name)
    if found is None:
        raise ToolMissing(f"apt-get installed {package} but {name} is still not on PATH")
    return found


def ensure_wrk() -> str:
    """Path of `wrk` (Debian package `wrk`), installed when it is missing."""
    return ensure_tool("wrk")


def ensure_tmux() -> str:
    """Path of `tmux` (Debian package `tmux`), installed when it is missing."""
    return ensure_tool("tmux")


def free_loopback_port(avoid: Collection[int] = ()) -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel's pick), not in `avoid`."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in avoid:
            return port
    raise RuntimeError("no free loopback port found")


def listening_addresses(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket `pid` listens on."""
    return [
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]


# --- cleanup ---------------------------------------------------------------------------


def temp_dir(prefix: str) -> Path:
    """A fresh temporary directory, removed when the interpreter exits."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def exit_on_signals() -> None:
    """Turn SIGTERM and SIGHUP into SystemExit so that `with` blocks stop the managers."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)
