#!/usr/bin/env python3
"""Crash → restart: SIGKILL an idle app's process, time until its new process is alive.

The new process counts as alive once it has exec'd the app's command line (a child of the
manager's daemon whose command line carries the app's tag). Where the kernel's process
events can be read (root), the clock stops at the exec as the kernel stamps it, and the
old process's exit is stamped the same way: the time splits into the kernel's (the kill
until the process is gone) and the manager's (gone until the new one runs), and nothing
is lost to polling. Elsewhere /proc is polled every --poll-ms, the same cheap observer
for both managers.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

import harness
from common import ChildFinder, ProcEvents, Stats, read_cmdline, read_stat
from manager import Manager

APP = "crash"


@dataclass(frozen=True)
class Sample:
    total: float  # seconds from the kill to the new process alive
    exit: float | None  # seconds from the kill to the old process gone (kernel events only)
    pid: int


def kill_and_poll(finder: ChildFinder, poll: float, timeout: float) -> Sample:
    """SIGKILL the app's current process; poll /proc until a new one shows."""
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
            return Sample(now - start, None, new)
        if now >= deadline:
            raise TimeoutError(f"no new process for {finder.tag!r} {timeout:g} s after SIGKILL")
        time.sleep(poll)


def kill_and_watch(finder: ChildFinder, timeout: float) -> Sample:
    """SIGKILL the app's current process; wait for the kernel to report the exec of a new
    one (a child of the daemon with the app's tag). The events are listened to for this
    kill only, so that the kernel's buffer for them never fills."""
    old = finder.find()
    if old is None:
        raise RuntimeError(f"no process tagged {finder.tag!r} under PID {finder.parent}")
    events = ProcEvents.open()
    if events is None:
        raise RuntimeError("the kernel's process events cannot be read any more")
    try:
        return _watch(finder, events, old, timeout)
    finally:
        events.close()


def _watch(finder: ChildFinder, events: ProcEvents, old: int, timeout: float) -> Sample:
    start = time.monotonic_ns()
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    gone: int | None = None
    while True:
        left = deadline - time.monotonic()
        try:
            kind, pid, stamp = events.next(left)
        except TimeoutError:
            raise TimeoutError(
                f"no new process for {finder.tag!r} {timeout:g} s after SIGKILL"
            ) from None
        if kind == "exit" and pid == old:
            gone = stamp
        elif kind == "exec" and pid != old:
            stat = read_stat(pid)
            if stat is not None and stat[0] == finder.parent and finder.tag in read_cmdline(pid):
                exit_s = (gone - start) / 1e9 if gone is not None else None
                return Sample((stamp - start) / 1e9, exit_s, pid)


def finder_for(m: Manager) -> ChildFinder:
    daemon = m.god_pid()
    if daemon is None:
        raise RuntimeError(f"{m.label} daemon PID unknown")
    return ChildFinder(daemon, harness.idle_tag(m, APP))


def run() -> None:
    p = harness.parser(__doc__ or "")
    p.add_argument("--kills", type=int, default=20)
    p.add_argument(
        "--observer",
        choices=["auto", "events", "poll"],
        default="auto",
        help="kernel process events (root) or /proc polling (default: events where available)",
    )
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

    probe = ProcEvents.open() if args.observer != "poll" else None
    if args.observer == "events" and probe is None:
        raise SystemExit("--observer events: the kernel's process events cannot be read here")
    use_events = probe is not None
    if probe is not None:
        probe.close()

    with harness.open_managers(harness.manager_keys(args.managers)) as managers:
        names = harness.start_idle(managers, APP, 1, timeout=30)
        app = names[0]
        finders = {m.key: finder_for(m) for m in managers}
        born = {m.key: time.monotonic() for m in managers}
        samples: dict[str, list[Sample]] = {m.key: [] for m in managers}
        last_pid: dict[str, int] = {}
        for i in range(args.kills):
            for m in managers if i % 2 == 0 else managers[::-1]:
                time.sleep(max(0.0, born[m.key] + args.settle - time.monotonic()))
                if use_events:
                    sample = kill_and_watch(finders[m.key], args.timeout)
                else:
                    sample = kill_and_poll(finders[m.key], args.poll_ms / 1000, args.timeout)
                born[m.key] = time.monotonic()
                samples[m.key].append(sample)
                last_pid[m.key] = sample.pid

        restarts: dict[str, int | None] = {}
        for m in managers:  # cross-check the observer against the manager's own view
            (seen,) = m.wait_online([app], timeout=10)
            if seen.pid != last_pid[m.key]:
                raise RuntimeError(
                    f"{m.label} reports PID {seen.pid}, /proc showed {last_pid[m.key]}"
                )
            restarts[m.key] = seen.restarts

        rows = [
            harness.Row(
                "SIGKILL → new process alive",
                "ms",
                "≤ 0.5\N{MULTIPLICATION SIGN} PM2",
                {k: Stats.of([s.total for s in v]).scaled(1000) for k, v in samples.items()},
            ).judge(lambda pmd, pm2: pmd.median <= 0.5 * pm2.median)
        ]
        if use_events and all(s.exit is not None for v in samples.values() for s in v):
            rows += [
                harness.Row(
                    "  of which the old process's exit (kernel)",
                    "ms",
                    "—",
                    {
                        k: Stats.of([s.exit or 0.0 for s in v]).scaled(1000)
                        for k, v in samples.items()
                    },
                ),
                harness.Row(
                    "  of which exit → new process (the manager)",
                    "ms",
                    "—",
                    {
                        k: Stats.of([s.total - (s.exit or 0.0) for s in v]).scaled(1000)
                        for k, v in samples.items()
                    },
                ),
            ]
        notes = {
            "kills": args.kills,
            "observer": "events" if use_events else "poll",
            "poll_ms": args.poll_ms,
            "settle_s": args.settle,
            "restarts_reported": restarts,
        }
        harness.report(rows, managers, notes)


if __name__ == "__main__":
    harness.main(run)
