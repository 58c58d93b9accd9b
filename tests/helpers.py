"""Test helpers: polling with a deadline, process liveness, and a CLI runner."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
CHILDREN = Path(__file__).parent / "children"
PMDAEMON = str(Path(sys.executable).parent / "pmdaemon")
NODE_MODULES = Path(__file__).parent / ".cache" / "node" / "node_modules"
# Files of other projects (PMDaemon's docs and scripts, PM2 users' ecosystem files) are not
# committed: material fetched from public repositories stays out of commits; data files
# live in the steering repository's shared/ beside the checkout, or in a local copy under
# tests/ (git-ignored). Their manifests, which are ours, are committed.
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def reference_file(local: Path, group: str, name: str) -> Path:
    """``name`` of the reference group ``group``, from the local copy ``local`` or
    shared/GROUP; the test is skipped, saying why, when neither has it."""
    for root in (local, SHARED / group):
        if (root / name).is_file():
            return root / name
    pytest.skip(
        f"{group}/{name} is not here: files of other projects are not committed; put them "
        f"in {SHARED / group} (or {local})"
    )


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "condition",
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail with the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
        except Exception as exc:  # an observation that failed is a value too
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def alive(pid: int) -> bool:
    """True when ``pid`` runs and is not a zombie (PID 1 here reaps orphans late)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def free_range(count: int) -> int:
    """The first port of ``count`` consecutive ports free on the host right now."""
    rng = random.Random()
    for _ in range(200):
        first = rng.randrange(20000, 60000 - count)
        socks = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("0.0.0.0", port))
            return first
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise AssertionError("no free port range")


def tagged_runs(home: Path) -> dict[int, list[int]]:
    """Session leaders started for ``home`` (by their environment): process id -> PIDs.
    A process that runs once has exactly one."""
    runs: dict[int, list[int]] = {}
    needle = f"PMDAEMON_HOME={home}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or not alive(int(entry)):
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat", "rb") as f:
                session = int(f.read().rsplit(b")", 1)[1].split()[3])
        except (OSError, ValueError, IndexError):
            continue
        if needle in env and session == int(entry):
            ident = next((v[12:] for v in env if v.startswith(b"PMDAEMON_ID=")), None)
            if ident is not None:
                runs.setdefault(int(ident), []).append(int(entry))
    return runs


def child(name: str) -> str:
    return str(CHILDREN / name)


class Pmd:
    """Runs the installed ``pmdaemon`` command against one home."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {**os.environ, "PMDAEMON_HOME": str(home), "NO_COLOR": "1"}
        if NODE_MODULES.is_dir():  # npm packages PM2 files require (scripts/test installs)
            self.env["NODE_PATH"] = str(NODE_MODULES)
        self.seen_pids: set[int] = set()
        # `start` watches new runs for min_uptime (about 1 s) before it answers; the tests
        # observe what they need themselves, so they start with --no-wait unless a test
        # checks that report (start_waits = True).
        self.start_waits = False

    def run(
        self, *args: str, check: bool = True, timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        if args and args[0] in ("start", "s") and not self.start_waits and "--no-wait" not in args:
            args = (args[0], "--no-wait", *args[1:])
        result = subprocess.run(
            [PMDAEMON, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"pmdaemon {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def json(self, *args: str) -> Any:
        """Run with --json (placed before any ``--``) and decode the output."""
        split = args.index("--") if "--" in args else len(args)
        return json.loads(self.run(*args[:split], "--json", *args[split:]).stdout)

    def list(self) -> list[dict[str, Any]]:
        procs: list[dict[str, Any]] = self.json("list")
        self.seen_pids.update(p["pid"] for p in procs if p["pid"])
        return procs

    def proc(self, ident: str) -> dict[str, Any]:
        info: dict[str, Any] = self.json("info", ident)
        if info.get("pid"):
            self.seen_pids.add(info["pid"])
        return info

    def start(self, *args: str) -> dict[str, Any]:
        result: dict[str, Any] = self.json("start", *args)
        self.seen_pids.update(p["pid"] for p in result["processes"] if p["pid"])
        return result

    def daemon_pid(self) -> int | None:
        try:
            return int((self.home / "daemon.pid").read_text())
        except (OSError, ValueError):
            return None

    def keeper_pid(self) -> int | None:
        try:
            return int((self.home / "logkeeper.pid").read_text())
        except (OSError, ValueError):
            return None

    def wait_online(
        self, ident: str, *, not_pid: int | None = None, timeout: float = 10
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            p = self.proc(ident)
            if p["status"] == "online" and p["pid"] and p["pid"] != not_pid:
                return p
            return None

        return wait_until(check, timeout, what=f"{ident} online")


def shut_down(runner: Pmd) -> None:
    """Kill the runner's daemon; every child PID it saw must be gone (survivors are killed,
    then this fails)."""
    keeper = runner.keeper_pid()
    if keeper is not None:
        runner.seen_pids.add(keeper)  # the log keeper ends with the daemon too
    pid = runner.daemon_pid()
    if pid is not None and alive(pid):
        with contextlib.suppress(Exception):
            runner.list()
        runner.run("kill", check=False, timeout=60)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    leftover: list[int] = []
    try:
        wait_until(
            lambda: not any(alive(p) for p in runner.seen_pids),
            timeout=10,
            what="every child gone after teardown",
        )
    except AssertionError:
        leftover = [p for p in runner.seen_pids if alive(p)]
        for p in leftover:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
    assert not leftover, f"children survived teardown: {leftover}"


class Web:
    """A running `pmdaemon web` (foreground daemon or attached to a running one)."""

    def __init__(self, pmd: Pmd, *args: str, env: dict[str, str] | None = None) -> None:
        import threading

        self.pmd = pmd
        # Tests fire requests faster than PMDaemon's 100 a minute: the limit is off unless
        # the test is about it.
        limit = () if "--rate-limit" in args else ("--rate-limit", "off")
        self.proc = subprocess.Popen(
            [PMDAEMON, "web", "-p", "0", *limit, *args],
            env=env or pmd.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._out = threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines))
        self._err = threading.Thread(target=self._pump, args=(self.proc.stderr, self.errors))
        self._out.start()
        self._err.start()
        line = wait_until(
            lambda: (
                next((x for x in self.lines if "web API on" in x), None)
                or (self.proc.poll() is not None and "exited")
            ),
            timeout=30,
            what="web API announced",
        )
        if line == "exited":
            self.join()
            raise AssertionError(f"pmdaemon web exited {self.proc.returncode}: {self.errors}")
        self.url = line.split("web API on ")[1].split()[0]
        self.ws_url = self.url.replace("http", "ws", 1) + "/ws"

    @staticmethod
    def _pump(stream: Any, sink: list[str]) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))

    def stop(self) -> int:
        import signal as _signal

        if self.proc.poll() is None:
            self.proc.send_signal(_signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        self.join()
        return code

    def join(self) -> None:
        self._out.join(timeout=10)
        self._err.join(timeout=10)

    def output(self) -> str:
        return "\n".join(self.lines + self.errors)
