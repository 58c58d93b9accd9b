#!/usr/bin/env python3
"""Crash → restart: SIGKILL an idle app's process, time until its new process is alive.

The new process is observed by polling /proc for a live child of the manager's daemon
whose command line carries the app's tag: the same cheap observer for both managers, no
CLI call in the loop.
"""

from __future__ import annotations

import os
import signal
import time

import harness
from common import ChildFinder, Stats
from manager import Manager

APP = "crash"


def kill_and_wait(finder: ChildFinder, poll: float, timeout: float) -> tuple[float, int]:
    """SIGKILL the app's current process; (seconds until a new one was seen, its PID)."""
    old = finder.find()  # also fills the finder's cache before the clock starts
    if old is None:
        raise RuntimeError(f"no process tagged {finder.tag!r} under PID {finder.parent}")
    start = time.perf_counter()
    os.kill(old, signal.SIGKILL)
    deadline = start + timeout
    while True:
        new = finder.find(exclude=(old,))
        now = time.perf_counter()
        if new is not None:
            return now - start, new
        if now >= deadline:
            raise TimeoutError(f"no new process for {finder.tag!r} {timeout:g} s after SIGKILL")
        time.sleep(poll)


def finder_for(m: Manager) -> ChildFinder:
    daemon = m.god_pid()
    if daemon is None:
        raise RuntimeError(f"{m.label} daemon PID unknown")
    return ChildFinder(daemon, harness.idle_tag(m, APP))


def run() -> None:
    p = harness.parser(__doc__ or "")
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--poll-ms", type=float, default=1.0, help="poll interval (default 1 ms)")
    p.add_argument(
        "--settle",
        type=float,
        default=1.2,
        help="seconds a new process lives before the next kill; PM2 counts a restart "
        "within 1 s (min_uptime) as unstable and gives up after 16 (default 1.2)",
    )
    p.add_argument("--timeout", type=float, default=10.0, help="per kill (default 10 s)")
    args = p.parse_args()

    with harness.open_managers(harness.manager_keys(args.managers)) as managers:
        names = harness.start_idle(managers, APP, 1, timeout=30)
        app = names[0]
        finders = {m.key: finder_for(m) for m in managers}
        born = {m.key: time.monotonic() for m in managers}
        samples: dict[str, list[float]] = {m.key: [] for m in managers}
        last_pid: dict[str, int] = {}
        for i in range(args.kills):
            for m in managers if i % 2 == 0 else managers[::-1]:
                time.sleep(max(0.0, born[m.key] + args.settle - time.monotonic()))
                elapsed, last_pid[m.key] = kill_and_wait(
                    finders[m.key], args.poll_ms / 1000, args.timeout
                )
                born[m.key] = time.monotonic()
                samples[m.key].append(elapsed)

        restarts: dict[str, int | None] = {}
        for m in managers:  # cross-check the observer against the manager's own view
            (seen,) = m.wait_online([app], timeout=10)
            if seen.pid != last_pid[m.key]:
                raise RuntimeError(
                    f"{m.label} reports PID {seen.pid}, /proc showed {last_pid[m.key]}"
                )
            restarts[m.key] = seen.restarts

        row = harness.Row(
            "SIGKILL → new process alive",
            "ms",
            "≤ 0.5\N{MULTIPLICATION SIGN} PM2",
            {k: Stats.of(v).scaled(1000) for k, v in samples.items()},
        ).judge(lambda pmd, pm2: pmd.median <= 0.5 * pm2.median)
        notes = {
            "kills": args.kills,
            "poll_ms": args.poll_ms,
            "settle_s": args.settle,
            "restarts_reported": restarts,
        }
        harness.report([row], managers, notes)


if __name__ == "__main__":
    harness.main(run)
