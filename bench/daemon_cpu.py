#!/usr/bin/env python3
"""Daemon CPU: CPU time of the daemon while it manages 100 idle apps, at each manager's
default sampling interval; one manager after the other, each alone on the machine.

pmdaemon's figure is the daemon plus its log keeper (the long-lived child, in a session of
its own, that writes the apps' log files; PM2's God daemon writes them itself), read at
the same instants and added. The short-lived helper processes a daemon runs meanwhile
(PM2's God daemon runs `df -kP` every 30 s for its host metrics) are reported on a row of
their own: the CPU time of the children the daemon (or keeper) reaped during the window,
plus any other live descendant that is not one of the apps.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection
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
    daemon: CpuUse  # the daemon and its companions (pmdaemon's log keeper), added
    by_role: dict[str, float]  # each of those alone, percent over the window
    helpers: list[str]  # command lines of live non-app descendants, at the start or the end
    helper_live_percent: float  # their CPU over the window (those alive at both ends)
    machine_percent: float  # whole machine, all cores: busy share over the window
    load: float  # 1-minute load average at the start of the window


def live_helpers(daemon: psutil.Process, counted: Collection[int]) -> dict[int, psutil.Process]:
    """Live descendants of the daemon that are not benchmark apps, nor in `counted` (the
    companions measured with the daemon). psutil finds children by parent PID, so a child
    in a session of its own (pmdaemon's log keeper) is found too."""
    found = {}
    for p in daemon.children(recursive=True):
        try:
            if p.pid in counted:
                continue
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
    time.sleep(settle)
    pids = m.daemon_pids()
    procs = {role: psutil.Process(pid) for role, pid in pids.items()}
    daemon = procs["daemon"]
    for role, proc in procs.items():
        if role != "daemon" and proc.ppid() != daemon.pid:
            raise RuntimeError(f"{m.label}'s {role} (PID {proc.pid}) is not the daemon's child")

    counted = set(pids.values())
    before = live_helpers(daemon, counted)
    helper_start = {k: cpu_seconds(p) for k, p in before.items()}
    load = os.getloadavg()[0]
    machine0 = psutil.cpu_times()
    uses = measure_cpu(procs, duration)
    machine1 = psutil.cpu_times()
    after = live_helpers(daemon, counted)

    helper_cpu = 0.0
    for k, start in helper_start.items():
        end = cpu_seconds(before[k]) if k in after else None
        if start is not None and end is not None:
            helper_cpu += end - start
    seen = {**before, **after}
    busy = _busy(machine1) - _busy(machine0)
    total = sum(machine1) - sum(machine0)
    return Measured(
        CpuUse.total(uses.values()),
        {role: u.own for role, u in uses.items()},
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
            roles = " + ".join(f"{role} {x:.2f}" for role, x in r.by_role.items())
            print(
                f"{m.label:<9} daemon {r.daemon.own:5.2f} % of one core over {args.duration:g} s"
                f" ({roles}; halves {halves}); reaped helpers {r.daemon.reaped:.2f} %,"
                f" live helpers {r.helper_live_percent:.2f} % {r.helpers or ''};"
                f" machine {r.machine_percent:.1f} % busy, load {r.load:.2f}",
                flush=True,
            )

        what = f"{args.processes} idle processes, % of one core"
        rows = [
            harness.Row(
                f"daemon CPU (pmdaemon: daemon + log keeper), {what}",
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
                "daemon_percent_by_role": {k: r.by_role for k, r in results.items()},
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
