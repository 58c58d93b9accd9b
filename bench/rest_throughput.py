#!/usr/bin/env python3
"""REST throughput: the process list over HTTP with 50 idle processes, loaded by wrk.

pmdaemon: authenticated `GET /api/processes` (X-API-Key) of `pmdaemon web`, attached to
the running daemon. PM2: `GET /` of its HTTP JSON endpoint, `lib/HttpInterface.js` from
the installed package run with node (PM2 7 has no `pm2 web`), which has no
authentication. Both listen on 127.0.0.1 only; wrk runs on 127.0.0.1 with 2 threads and
50 connections for 10 s per round, rounds alternated between the managers.
"""

from __future__ import annotations

import http.client
import json
import re
import secrets
import shutil
import signal
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import harness
import pm2
from common import (
    Stats,
    ensure_wrk,
    free_loopback_port,
    listening_addresses,
    temp_dir,
    wait_until,
)
from manager import Manager, ManagerMissing

TARGET_RPS_RATIO = 2.0  # pmdaemon requests/s at least twice PM2's
TARGET_P99_RATIO = 0.5  # pmdaemon p99 latency at most half PM2's
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
WRK_GRACE = 30.0  # wrk may run this much longer than its -d before it is killed
FETCH_TIMEOUT = 10.0
PM2_PORT_ATTEMPTS = 3

PMD_READY = re.compile(r"pmdaemon web API on (https?://\S+?)[,)]?(?:\s|$)")
PM2_READY = "Web interface listening on"
LOOPBACK = ("127.0.0.1", "::1")


@dataclass
class Endpoint:
    """A running HTTP endpoint for one manager: the process serving it and how to ask."""

    key: str
    url: str
    headers: dict[str, str]
    description: str
    proc: subprocess.Popen[bytes]


@dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    p99_ms: float
    requests: int
    socket_errors: str  # wrk's "Socket errors" line, "" when there were none


# --- starting and stopping the endpoints -----------------------------------------------


def spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a server in its own session (a Ctrl-C in the terminal reaches only us, and
    we stop it), its stdout and stderr going to `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT seconds; only this one PID."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        print(f"warning: PID {proc.pid} ignored SIGTERM for {STOP_TIMEOUT:g} s; killing it")
        proc.kill()
        proc.wait(STOP_TIMEOUT)


def wait_ready(
    proc: subprocess.Popen[bytes], log: Path, ready: Callable[[str], str | None], what: str
) -> str:
    """Wait until `ready(log text)` returns a value; RuntimeError if the process exits."""

    def check() -> str | None:
        text = log.read_text(errors="replace")
        found = ready(text)
        if found:
            return found
        if proc.poll() is not None:
            raise RuntimeError(
                f"{what} exited {proc.returncode} before it was ready: {text[-2000:]}"
            )
        return None

    return wait_until(check, READY_TIMEOUT, what)


def start_pmd(m: Manager, stack: ExitStack, logs: Path) -> Endpoint:
    key = secrets.token_hex(24)
    # A load test: the per-client limit (PM2 has none) is off.
    argv = [*m.command(), "web", "--host", "127.0.0.1", "-p", "0", "--rate-limit", "off"]
    argv += ["--api-key", key]
    log = logs / "pmdaemon-web.log"
    proc = spawn(argv, m.env, log)
    stack.callback(stop_process, proc)

    def url_in(text: str) -> str | None:
        match = PMD_READY.search(text)
        return match.group(1) if match else None

    base = wait_ready(proc, log, url_in, "pmdaemon web")
    return Endpoint(
        m.key,
        base.rstrip("/") + "/api/processes",
        {"X-API-Key": key},
        "`GET /api/processes` with `X-API-Key`",
        proc,
    )


def start_pm2(m: Manager, stack: ExitStack, logs: Path, avoid: set[int]) -> Endpoint:
    node = shutil.which("node")
    if node is None:
        raise ManagerMissing("node not found on PATH: PM2's HTTP endpoint runs with node")
    script = pm2.PACKAGE_DIR / "lib" / "HttpInterface.js"
    if not script.is_file():
        raise ManagerMissing(f"{script} not found: PM2's HTTP endpoint is missing")
    last = ""
    for attempt in range(PM2_PORT_ATTEMPTS):
        # The script listens on $PM2_WEB_PORT or $PM2_API_PORT (default 9615, which is
        # also pmdaemon's default) and on $PM2_API_IPADDR, whose default is 0.0.0.0:
        # loopback and a free port are set explicitly. PM2_API_PORT also makes its
        # "listening on" message show the real port.
        port = free_loopback_port(avoid)
        env = {
            **m.env,
            "PM2_API_IPADDR": "127.0.0.1",
            "PM2_API_PORT": str(port),
            "PM2_WEB_PORT": str(port),
        }
        log = logs / f"pm2-http-{attempt}.log"
        proc = spawn([node, str(script)], env, log)
        stack.callback(stop_process, proc)
        try:
            wait_ready(proc, log, lambda text: PM2_READY if PM2_READY in text else None, "PM2 HTTP")
        except RuntimeError as exc:  # the port was taken in between: try another one
            last = str(exc)
            if "EADDRINUSE" in last:
                continue
            raise
        return Endpoint(
            m.key,
            f"http://127.0.0.1:{port}/",
            {},
            "`GET /` of `lib/HttpInterface.js`, no authentication",
            proc,
        )
    raise RuntimeError(f"PM2 HTTP could not bind a port in {PM2_PORT_ATTEMPTS} attempts: {last}")


def check_loopback(m: Manager, ep: Endpoint) -> None:
    """The endpoint's port is listened on, and on loopback addresses only."""
    port = urllib.parse.urlsplit(ep.url).port
    pids = {ep.proc.pid}
    daemon = m.god_pid()
    if daemon is not None:  # pmdaemon's API is served by its daemon
        pids.add(daemon)
    bound = [addr for pid in pids for addr in listening_addresses(pid) if addr[1] == port]
    if not bound:
        raise RuntimeError(f"{m.label}: nothing of PIDs {sorted(pids)} listens on port {port}")
    if any(ip not in LOOPBACK for ip, _ in bound):
        raise RuntimeError(f"{m.label}: port {port} is bound beyond loopback: {bound}")


def fetch(ep: Endpoint, with_headers: bool = True) -> tuple[int, bytes]:
    """(status, body) of one GET on the endpoint."""
    parts = urllib.parse.urlsplit(ep.url)
    conn = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port, timeout=FETCH_TIMEOUT
    )
    try:
        conn.request("GET", parts.path or "/", headers=ep.headers if with_headers else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def process_count(body: bytes) -> int:
    """Processes in a list response: pmdaemon sends a JSON list, PM2 {"processes": [...]}."""
    data = json.loads(body)
    return len(data if isinstance(data, list) else data["processes"])


# --- wrk -------------------------------------------------------------------------------

UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
RPS_LINE = re.compile(r"^Requests/sec:\s+([\d.]+)\s*$", re.M)
P99_LINE = re.compile(r"^\s*99(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
TOTAL_LINE = re.compile(r"^\s*(\d+) requests in ", re.M)
ERRORS_LINE = re.compile(r"^\s*Socket errors:.*$", re.M)
NON_2XX_LINE = re.compile(r"^\s*Non-2xx or 3xx responses:\s*(\d+)", re.M)


def parse_wrk(out: str) -> WrkResult:
    rps, p99, total = RPS_LINE.search(out), P99_LINE.search(out), TOTAL_LINE.search(out)
    if not (rps and p99 and total):
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    non_2xx = NON_2XX_LINE.search(out)
    if non_2xx:
        raise RuntimeError(f"{non_2xx.group(1)} responses were not 2xx:\n{out}")
    errors = ERRORS_LINE.search(out)
    return WrkResult(
        float(rps.group(1)),
        float(p99.group(1)) * UNITS_MS[p99.group(2)],
        int(total.group(1)),
        errors.group(0).strip() if errors else "",
    )


def run_wrk(wrk: str, ep: Endpoint, threads: int, connections: int, duration: float) -> WrkResult:
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    for name, value in ep.headers.items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(ep.url)
    proc = subprocess.run(argv, capture_output=True, timeout=duration + WRK_GRACE, check=False)
    out = proc.stdout.decode(errors="replace")
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"wrk exited {proc.returncode}: {err or out}")
    return parse_wrk(out)


# --- the scenario ----------------------------------------------------------------------


def run() -> None:
    p = harness.parser(__doc__ or "")
    p.add_argument("--processes", type=int, default=50)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per round (10)")
    p.add_argument("--rounds", type=int, default=2, help="rounds per manager (default 2)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of untimed load (2)")
    args = p.parse_args()
    if args.rounds < 1 or args.duration <= 0 or args.connections < args.threads:
        p.error("need --rounds ≥ 1, --duration > 0 and --connections ≥ --threads")

    keys = harness.manager_keys(args.managers)
    wrk = ensure_wrk()  # before any manager starts
    with harness.open_managers(keys) as managers, ExitStack() as stack:
        harness.start_idle(managers, "rest", args.processes, timeout=120)
        logs = temp_dir("bench-rest-")
        endpoints: dict[str, Endpoint] = {}
        for m in managers:  # pmdaemon first: PM2's port avoids the one it got
            if m.key == "pmd":
                endpoints[m.key] = start_pmd(m, stack, logs)
            else:
                avoid = {urllib.parse.urlsplit(e.url).port or 0 for e in endpoints.values()}
                endpoints[m.key] = start_pm2(m, stack, logs, avoid)

        sizes: dict[str, int] = {}
        counts: dict[str, int] = {}
        for m in managers:
            ep = endpoints[m.key]
            check_loopback(m, ep)
            status, body = fetch(ep)
            if status != 200:
                raise RuntimeError(f"{m.label} {ep.url} answered {status}: {body[:500]!r}")
            sizes[m.key], counts[m.key] = len(body), process_count(body)
            if counts[m.key] != args.processes:
                raise RuntimeError(
                    f"{m.label} listed {counts[m.key]} processes, expected {args.processes}"
                )
            if ep.headers:  # authenticated: the same request without the key is refused
                status, _ = fetch(ep, with_headers=False)
                if status != 401:
                    raise RuntimeError(f"{m.label} answered {status} without the API key")
            print(f"{m.label}: {ep.url} — {sizes[m.key]} bytes, {counts[m.key]} processes")

        if args.warmup > 0:
            for m in managers:
                run_wrk(wrk, endpoints[m.key], args.threads, args.connections, args.warmup)

        rps: dict[str, list[float]] = {m.key: [] for m in managers}
        p99: dict[str, list[float]] = {m.key: [] for m in managers}
        errors: dict[str, list[str]] = {m.key: [] for m in managers}
        for i in range(args.rounds):
            # Alternate who goes first, so neither always runs right after the other.
            for m in managers if i % 2 == 0 else managers[::-1]:
                result = run_wrk(
                    wrk, endpoints[m.key], args.threads, args.connections, args.duration
                )
                rps[m.key].append(result.requests_per_s)
                p99[m.key].append(result.p99_ms)
                if result.socket_errors:
                    errors[m.key].append(result.socket_errors)
                print(
                    f"round {i + 1} {m.label:<9} {result.requests_per_s:8.0f} req/s"
                    f"  p99 {result.p99_ms:7.1f} ms  ({result.requests} requests)"
                    + (f"  {result.socket_errors}" if result.socket_errors else ""),
                    flush=True,
                )
                time.sleep(0.5)  # let the previous server's backlog drain

        for m in managers:  # the API listener goes first, then the managers (ExitStack)
            stop_process(endpoints[m.key].proc)

        what = f"REST process list, {args.processes} processes, {args.connections} connections"
        x = "\N{MULTIPLICATION SIGN}"
        rows = [
            harness.Row(
                f"{what}: throughput",
                "req/s",
                f"≥ {TARGET_RPS_RATIO:g}{x} PM2",
                {k: Stats.of(v) for k, v in rps.items()},
            ).judge(lambda pmd, pm2: pmd.median >= TARGET_RPS_RATIO * pm2.median),
            harness.Row(
                f"{what}: p99 latency",
                "ms",
                f"≤ {TARGET_P99_RATIO:g}{x} PM2",
                {k: Stats.of(v) for k, v in p99.items()},
            ).judge(lambda pmd, pm2: pmd.median <= TARGET_P99_RATIO * pm2.median),
        ]
        notes = {
            "processes": args.processes,
            "connections": args.connections,
            "threads": args.threads,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "warmup_s": args.warmup,
            "response_bytes": sizes,
            "processes_listed": counts,
            "endpoints": {k: e.description for k, e in endpoints.items()},
            "socket_errors": {k: v for k, v in errors.items() if v},
            "wrk": wrk_version(wrk),
        }
        harness.report(rows, managers, notes)


def wrk_version(wrk: str) -> str:
    # `wrk -v` prints its version and usage, exiting non-zero.
    proc = subprocess.run([wrk, "-v"], capture_output=True, timeout=10, check=False)
    words = (proc.stdout or proc.stderr).decode(errors="replace").split()
    return words[1] if len(words) > 1 and words[0] == "wrk" else "unknown"


if __name__ == "__main__":
    harness.main(run)
