#!/usr/bin/env python3
"""Health checks under load: the REST process list while 100 HTTP apps are health-checked.

pmdaemon only: PM2 has no health checks, so there is nothing to put next to it and no
ratio. 100 tiny HTTP apps (children/health_app.py, each on its own free loopback port,
answering `GET /health` with 200) are started from one ecosystem file, each with its own
`health_check_url` checked every second; once all are `healthy`, `pmdaemon web` is
attached to the daemon and wrk loads authenticated `GET /api/processes` from 127.0.0.1
(10 connections, 10 s, after 2 s of warm-up). Requests/s and the p50 and p99 latency are
wrk's; the daemon's CPU over the same 10 s is informational.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import harness
import psutil
import rest_throughput as rest
from common import (
    BENCH_DIR,
    Stats,
    ensure_wrk,
    free_loopback_port,
    measure_cpu,
    python_executable,
    temp_dir,
    wait_until,
)
from manager import Manager

TARGET_P99_MS = 50.0
HEALTH_APP = BENCH_DIR / "children" / "health_app.py"
START_TIMEOUT = 120.0  # the `start FILE` command itself
ONLINE_TIMEOUT = 120.0
HEALTHY_TIMEOUT = 60.0
CHECKS_WINDOW = 5.0  # seconds of daemon CPU with the checks alone, before the web API
P50_LINE = re.compile(r"^\s*50(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)


def ecosystem(apps: int, interval: str, directory: Path) -> tuple[Path, list[str], list[int]]:
    """An ecosystem JSON file of `apps` health apps, each on its own free loopback port
    with its own health-check URL; returns (file, names, ports)."""
    names = [f"health-{i}" for i in range(apps)]
    ports: list[int] = []
    for _ in names:
        ports.append(free_loopback_port(set(ports)))
    entries = [
        {
            "name": name,
            "script": str(HEALTH_APP),
            "interpreter": python_executable(),
            "port": port,
            "health_check_url": f"http://127.0.0.1:{port}/health",
            "health_check_interval": interval,
        }
        for name, port in zip(names, ports, strict=True)
    ]
    path = directory / "health-apps.json"
    path.write_text(json.dumps({"apps": entries}, indent=1))
    return path, names, ports


def health_states(m: Manager) -> dict[str, str]:
    """name -> health_status of every app, from `pmdaemon list --json`."""
    procs: list[dict[str, Any]] = json.loads(m.run("list", "--json").stdout)
    return {p["name"]: str(p.get("health_status")) for p in procs}


def wait_healthy(m: Manager, names: list[str], timeout: float) -> None:
    wanted = set(names)
    last: dict[str, str] = {}

    def ready() -> bool:
        nonlocal last
        last = {k: v for k, v in health_states(m).items() if k in wanted}
        return len(last) == len(wanted) and all(v == "healthy" for v in last.values())

    try:
        wait_until(ready, timeout, f"{len(wanted)} apps healthy", 0.25)
    except TimeoutError as exc:
        bad = {k: v for k, v in sorted(last.items()) if v != "healthy"}
        missing = sorted(wanted - last.keys())
        raise RuntimeError(f"{exc}; not healthy: {bad}; not listed: {missing}") from None


def wrk_argv(
    wrk: str, ep: rest.Endpoint, threads: int, connections: int, duration: float
) -> list[str]:
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    for name, value in ep.headers.items():
        argv += ["-H", f"{name}: {value}"]
    return [*argv, ep.url]


def finish_wrk(proc: subprocess.Popen[bytes], duration: float) -> tuple[rest.WrkResult, float]:
    """wrk's result and p50 (ms) once it ends; killed if it outlasts its run by WRK_GRACE."""
    try:
        out_b, err_b = proc.communicate(timeout=duration + rest.WRK_GRACE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"wrk ran over {duration + rest.WRK_GRACE:g} s; killed") from None
    out = out_b.decode(errors="replace")
    if proc.returncode != 0:
        err = err_b.decode(errors="replace").strip()
        raise RuntimeError(f"wrk exited {proc.returncode}: {err or out}")
    result = rest.parse_wrk(out)  # also fails on any non-2xx answer
    p50 = P50_LINE.search(out)
    if not p50:
        raise RuntimeError(f"cannot read wrk's p50 latency:\n{out}")
    return result, float(p50.group(1)) * rest.UNITS_MS[p50.group(2)]


def check_endpoint(m: Manager, ep: rest.Endpoint, apps: int) -> int:
    """The endpoint lists every app, healthy, and refuses a request without the key;
    returns the response size in bytes."""
    rest.check_loopback(m, ep)
    status, body = rest.fetch(ep)
    if status != 200:
        raise RuntimeError(f"{ep.url} answered {status}: {body[:500]!r}")
    procs = json.loads(body)
    if len(procs) != apps:
        raise RuntimeError(f"{ep.url} listed {len(procs)} processes, expected {apps}")
    unhealthy = [p["name"] for p in procs if p.get("health_status") != "healthy"]
    if unhealthy:
        raise RuntimeError(f"{ep.url} shows these apps not healthy: {unhealthy}")
    status, _ = rest.fetch(ep, with_headers=False)
    if status != 401:
        raise RuntimeError(f"{ep.url} answered {status} without the API key")
    return len(body)


def run() -> None:
    p = harness.parser(__doc__ or "")
    p.add_argument("--processes", type=int, default=100)
    p.add_argument("--interval", default="1s", help="health-check interval (default 1s)")
    p.add_argument("--connections", type=int, default=10)
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of measured load (10)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of untimed load (2)")
    args = p.parse_args()
    if args.processes < 1 or args.duration <= 0 or args.connections < args.threads:
        p.error("need --processes ≥ 1, --duration > 0 and --connections ≥ --threads")

    keys = harness.manager_keys(args.managers)
    if "pmd" not in keys:  # e.g. `bench/run --managers pm2`
        print("PM2 has no health checks: this scenario measures pmdaemon only; skipped")
        harness.report([], [], {"skipped": "PM2 has no health checks"})
        return
    wrk = ensure_wrk()  # before the manager starts
    with harness.open_managers(["pmd"]) as managers, ExitStack() as stack:
        m = managers[0]
        work = temp_dir("bench-health-")
        path, names, ports = ecosystem(args.processes, args.interval, work)
        started = time.monotonic()
        m.run("start", str(path), timeout=START_TIMEOUT)
        m.wait_online(names, ONLINE_TIMEOUT)
        online_s = time.monotonic() - started
        wait_healthy(m, names, HEALTHY_TIMEOUT)
        healthy_s = time.monotonic() - started
        print(
            f"{args.processes} apps on ports {min(ports)}\N{EN DASH}{max(ports)}: online after"
            f" {online_s:.1f} s, all healthy after {healthy_s:.1f} s",
            flush=True,
        )

        daemon_pid = m.god_pid()
        if daemon_pid is None:
            raise RuntimeError("pmdaemon daemon PID unknown")
        daemon = psutil.Process(daemon_pid)
        checks_only = measure_cpu({"daemon": daemon}, CHECKS_WINDOW)["daemon"].own
        print(
            f"daemon CPU with the checks alone, over {CHECKS_WINDOW:g} s:"
            f" {checks_only:.1f} % of one core",
            flush=True,
        )

        ep = rest.start_pmd(m, stack, work)
        size = check_endpoint(m, ep, args.processes)
        print(f"pmdaemon: {ep.url} — {size} bytes, {args.processes} processes, all healthy")

        if args.warmup > 0:
            rest.run_wrk(wrk, ep, args.threads, args.connections, args.warmup)

        watched = {"daemon": daemon, "web": psutil.Process(ep.proc.pid)}
        argv = wrk_argv(wrk, ep, args.threads, args.connections, args.duration)
        wrk_proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            cpu = measure_cpu(watched, args.duration)
        except BaseException:
            wrk_proc.kill()
            wrk_proc.wait()
            raise
        result, p50 = finish_wrk(wrk_proc, args.duration)
        print(
            f"pmdaemon {result.requests_per_s:8.0f} req/s  p50 {p50:6.2f} ms"
            f"  p99 {result.p99_ms:6.2f} ms  ({result.requests} requests)"
            + (f"  {result.socket_errors}" if result.socket_errors else ""),
            flush=True,
        )
        halves = cpu["daemon"].own_stats()
        print(
            f"daemon CPU during the load: {cpu['daemon'].own:.1f} % of one core"
            f" (halves {halves.min:.1f}\N{EN DASH}{halves.max:.1f});"
            f" `pmdaemon web` process: {cpu['web'].own:.1f} %",
            flush=True,
        )

        after = health_states(m)
        not_healthy = {k: v for k, v in sorted(after.items()) if v != "healthy"}
        restarts = sum(a.restarts or 0 for a in m.jlist())
        if not_healthy or restarts:
            print(f"warning: after the load, not healthy: {not_healthy}; restarts: {restarts}")
        rest.stop_process(ep.proc)  # the API listener first, then the manager (ExitStack)

        what = (
            f"REST process list, {args.processes} HTTP apps health-checked every"
            f" {args.interval}, {args.connections} connections"
        )
        no_pm2 = "pmdaemon only (PM2 has no health checks)"
        p99_row = harness.Row(
            f"{what}: p99 latency",
            "ms",
            f"≤ {TARGET_P99_MS:g} ms",
            {"pmd": Stats.of([result.p99_ms])},
        )
        p99_row.met = result.p99_ms <= TARGET_P99_MS
        rows = [
            harness.Row(
                f"{what}: throughput", "req/s", no_pm2, {"pmd": Stats.of([result.requests_per_s])}
            ),
            harness.Row(f"{what}: p50 latency", "ms", no_pm2, {"pmd": Stats.of([p50])}),
            p99_row,
            harness.Row(
                "daemon CPU during that load, % of one core",
                "%",
                "informational",
                {"pmd": halves},
            ),
        ]
        notes = {
            "processes": args.processes,
            "interval": args.interval,
            "connections": args.connections,
            "threads": args.threads,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "online_s": round(online_s, 2),
            "healthy_s": round(healthy_s, 2),
            "response_bytes": size,
            "requests": result.requests,
            "daemon_percent": cpu["daemon"].own,
            "checks_only_window_s": CHECKS_WINDOW,
            "daemon_percent_checks_only": checks_only,
            "web_process_percent": cpu["web"].own,
            "not_healthy_after": not_healthy,
            "restarts_after": restarts,
            "socket_errors": result.socket_errors,
            "wrk": rest.wrk_version(wrk),
        }
        harness.report(rows, managers, notes)


if __name__ == "__main__":
    harness.main(run)
