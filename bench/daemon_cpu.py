#!/usr/bin/env python3
"""Daemon CPU: CPU time of the daemon process alone while it manages 100 idle apps, at each
manager's default sampling interval; one manager after the other, each alone on the machine.

The helper processes a daemon runs meanwhile (PM2's God daemon runs `df -kP` every 30 s
for its host metrics) are reported on a row of their own: the CPU time of the children
it reaped during the window, plus any live descendant that is not one of the apps.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import harness
import psutil
from common import CpuUse, measure_cpu
from manager import Manager

TARGET_PERCENT = 3.0  # of one core
# Variables that change a manager's sampling interval: removed, so both run at their default.
INTERVAL_VARS = ("PMDAEMON_METRICS_INTERVAL", "PM2_WORKER_INTERVAL")
APP_TAG = "pmdbench:"  # in every benchmark app's command line (harness.idle_tag)


@dataclass(frozen=True)
class Measured:
    daemon: CpuUse
    helpers: list[str]  # command lines of live non-app descendants, at the start or the end
    helper_live_percent: float  # their CPU over the window (those alive at both ends)
    machine_percent: float  # whole machine, all cores: busy share over the window
    load: float  # 1-minute load average at the start of the window


def live_helpers(daemon: psutil.Process) -> dict[int, psutil.Process]:
    """Live descendants of the daemon that are not benchmark apps."""
    found = {}
    for p in daemon.children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and APP_TAG not in " ".join(p.cmdline()):
                found[p.pid] = p
        except psutil.NoSuchProcess:
            continue
    return found


def cpu_seconds(p: psutil.Process) -> float | None:
    try:
        t = p.cpu_times()
    except psutil.NoSuchProcess:
        return None
    return t.user + t.system


def command_line(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline()) or p.name()
    except psutil.NoSuchProcess:
        return f"PID {p.pid} (ended)"


def measure(m: Manager, processes: int, settle: float, duration: float) -> Measured:
    """Start the apps in `m` alone, wait until all are online, settle, then measure."""
    harness.start_idle([m], "cpu", processes, timeout=180)
    pid = m.god_pid()
    if pid is None:
        raise RuntimeError(f"{m.label} daemon PID unknown")
    daemon = psutil.Process(pid)
    time.sleep(settle)

    before = live_helpers(daemon)
    helper_start = {k: cpu_seconds(p) for k, p in before.items()}
    load = os.getloadavg()[0]
    machine0 = psutil.cpu_times()
    use = measure_cpu({m.key: daemon}, duration)[m.key]
    machine1 = psutil.cpu_times()
    after = live_helpers(daemon)

    helper_cpu = 0.0
    for k, start in helper_start.items():
        end = cpu_seconds(before[k]) if k in after else None
        if start is not None and end is not None:
            helper_cpu += end - start
    seen = {**before, **after}
    busy = _busy(machine1) - _busy(machine0)
    total = sum(machine1) - sum(machine0)
    return Measured(
        use,
        sorted(command_line(p) for p in seen.values()),
        100.0 * helper_cpu / duration,
        100.0 * busy / total if total > 0 else 0.0,
        load,
    )


def _busy(t: object) -> float:
    """Busy CPU seconds of all cores from psutil.cpu_times() (all but idle and iowait)."""
    fields = t._asdict()  # type: ignore[attr-defined]
    return float(sum(v for k, v in fields.items() if k not in ("idle", "iowait")))


def run() -> None:
    p = harness.parser(__doc__ or "")
    p.add_argument("--processes", type=int, default=100)
    p.add_argument("--settle", type=float, default=5.0, help="seconds after all are online (5)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds measured (60)")
    args = p.parse_args()
    if args.duration <= 0 or args.processes < 1:
        p.error("need --duration > 0 and --processes ≥ 1")

    with harness.open_managers(harness.manager_keys(args.managers)) as managers:
        for m in managers:
            for var in INTERVAL_VARS:
                m.env.pop(var, None)
        results: dict[str, Measured] = {}
        for m in managers:  # one after the other; each is killed before the next starts
            results[m.key] = r = measure(m, args.processes, args.settle, args.duration)
            m.kill()
            halves = " + ".join(f"{x:.2f}" for x in r.daemon.own_parts)
            print(
                f"{m.label:<9} daemon {r.daemon.own:5.2f} % of one core over {args.duration:g} s"
                f" (halves {halves}); reaped helpers {r.daemon.reaped:.2f} %,"
                f" live helpers {r.helper_live_percent:.2f} % {r.helpers or ''};"
                f" machine {r.machine_percent:.1f} % busy, load {r.load:.2f}",
                flush=True,
            )

        what = f"{args.processes} idle processes, % of one core"
        rows = [
            harness.Row(
                f"daemon CPU, {what}",
                "%",
                f"≤ {TARGET_PERCENT:g} % and < PM2",
                {k: r.daemon.own_stats() for k, r in results.items()},
            ).judge(lambda pmd, pm2: pmd.median <= TARGET_PERCENT and pmd.median < pm2.median),
            harness.Row(
                f"daemon's helper processes CPU, {what}",
                "%",
                "next to PM2",
                {k: r.daemon.reaped_stats() for k, r in results.items()},
            ),
        ]
        harness.report(
            rows,
            managers,
            {
                "processes": args.processes,
                "settle_s": args.settle,
                "duration_s": args.duration,
                "daemon_percent": {k: r.daemon.own for k, r in results.items()},
                "reaped_percent": {k: r.daemon.reaped for k, r in results.items()},
                "live_helpers": {k: r.helpers for k, r in results.items()},
                "live_helpers_percent": {k: r.helper_live_percent for k, r in results.items()},
                "machine_busy_percent": {k: r.machine_percent for k, r in results.items()},
                "load_at_start": {k: r.load for k, r in results.items()},
                "order": [m.key for m in managers],
            },
        )


if __name__ == "__main__":
    harness.main(run)
