#!/usr/bin/env python3
"""A fleet of processes: start 100 and 1000 apps from an ecosystem file, `restart all`
with 100, then `list` latency and daemon RSS with 1000, pmdaemon and PM2 side by side.

The app is the `sleep` binary run directly (`interpreter: none`; about 1 MiB resident
each), and both managers read the same ecosystem JSON file (`{"apps": [...]}`) with
`start FILE`. A start is timed from the command's launch to the end of the first JSON
listing (`pmdaemon list --json`, `pm2 jlist`) that shows every app online with a live PID;
the listings begin when the command returns and follow each other 50 ms apart. `restart
all` is timed the same way, until every app shows a new live PID, online. Who goes first
rotates from one round to the next; after each start round of 100 the apps are deleted and
their processes waited for, so that each start begins with no app in that manager. The
1000-app rounds leave each manager's apps running for `list` (runs alternated) and RSS
(the daemon; pmdaemon's plus its log keeper).

supervisord (from PyPI; see supd.py) is measured in the same rounds unless
--no-supervisord: its figures go into rows of their own, next to pmdaemon's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import harness
import psutil
from common import Stats, is_alive, raise_fd_limit, sleep_argv, temp_dir, wait_until
from daemon_rss import daemon_rss
from manager import App, Manager
from supd import Supd

TARGET_START_RATIO = 0.5
TARGET_LIST_RATIO = 0.3
TARGET_LIST_MS = 300.0
COMMAND_TIMEOUT = 300.0  # `start FILE`, `restart all`, `delete all` with 1000 apps
ONLINE_TIMEOUT = 300.0  # from the command's launch until all are listed online
GONE_TIMEOUT = 120.0  # deleted apps' processes to end
POLL_INTERVAL = 0.05  # seconds between two JSON listings

Ready = Callable[[dict[str, App]], bool]


@dataclass(frozen=True)
class Timing:
    """One timed start or restart."""

    total: float  # seconds from the command's launch to the listing that showed it done
    command: float  # the command alone, until it exited
    last_listing: float  # how long that last listing took (the clock's uncertainty)
    listings: int


def order(managers: list[Manager], round_: int) -> list[Manager]:
    """Who goes first changes from one round to the next (each in turn)."""
    k = round_ % len(managers)
    return managers[k:] + managers[:k]


def wait_listed(
    m: Manager, names: Sequence[str], ready: Ready, started: float
) -> tuple[float, float, int, dict[str, App]]:
    """List until all of `names` are listed and `ready`; returns (seconds since `started`
    at the end of that listing, that listing's duration, listings made, the apps)."""
    wanted = set(names)
    deadline = started + ONLINE_TIMEOUT
    listings = 0
    while True:
        before = time.perf_counter()
        apps = {a.name: a for a in m.jlist() if a.name in wanted}
        after = time.perf_counter()
        listings += 1
        if len(apps) == len(wanted) and ready(apps):
            return after - started, after - before, listings, apps
        if after >= deadline:
            online = sum(a.online for a in apps.values())
            raise TimeoutError(
                f"{m.label}: after {ONLINE_TIMEOUT:g} s, {len(apps)} of {len(wanted)} apps"
                f" listed, {online} online"
            )
        time.sleep(POLL_INTERVAL)


def all_online(apps: dict[str, App]) -> bool:
    return all(a.online for a in apps.values())


def timed(
    m: Manager, names: Sequence[str], command: Callable[[], None], ready: Ready
) -> tuple[Timing, dict[str, App]]:
    started = time.perf_counter()
    command()
    command_s = time.perf_counter() - started
    total, last, listings, apps = wait_listed(m, names, ready, started)
    return Timing(total, command_s, last, listings), apps


def start_file(m: Manager, path: Path, names: Sequence[str]) -> tuple[Timing, dict[str, App]]:
    return timed(m, names, lambda: m.start_file(path, COMMAND_TIMEOUT), all_online)


def restart_all(m: Manager, apps: dict[str, App]) -> tuple[Timing, dict[str, App]]:
    old = {name: a.pid for name, a in apps.items()}

    def renewed(now: dict[str, App]) -> bool:
        return all(a.online and a.pid != old[name] for name, a in now.items())

    return timed(m, list(apps), lambda: m.restart_all(COMMAND_TIMEOUT), renewed)


def delete_and_wait(m: Manager, apps: dict[str, App]) -> None:
    """Delete every app and wait until their processes have ended (zombies count as gone)."""
    pids = [a.pid for a in apps.values() if a.pid is not None]
    m.delete_all(COMMAND_TIMEOUT)
    wait_until(
        lambda: not any(is_alive(pid) for pid in pids),
        GONE_TIMEOUT,
        f"{m.label}'s {len(pids)} deleted processes to end",
        0.1,
    )


def show(m: Manager, what: str, t: Timing) -> None:
    print(
        f"{m.label:<11} {what}: all online after {t.total:6.2f} s (command {t.command:6.2f} s,"
        f" {t.listings} listing(s), the last took {t.last_listing * 1000:.0f} ms)",
        flush=True,
    )


def fds(m: Manager) -> dict[str, int]:
    return {role: psutil.Process(pid).num_fds() for role, pid in m.daemon_pids().items()}


def run() -> None:
    p = harness.parser(__doc__ or "")
    p.add_argument("--small", type=int, default=100, help="apps in the small fleet (100)")
    p.add_argument("--large", type=int, default=1000, help="apps in the large fleet (1000)")
    p.add_argument("--rounds", type=int, default=3, help="rounds with the small fleet (3)")
    p.add_argument("--large-rounds", type=int, default=2, help="rounds with the large (2)")
    p.add_argument("--list-runs", type=int, default=10, help="`list` runs with the large (10)")
    p.add_argument("--list-warmup", type=int, default=2)
    p.add_argument("--settle", type=float, default=3.0, help="seconds before reading RSS")
    p.add_argument("--samples", type=int, default=10, help="RSS readings, 0.2 s apart")
    p.add_argument(
        "--no-supervisord",
        dest="supervisord",
        action="store_false",
        help="leave supervisord out (by default it is measured too, next to pmdaemon)",
    )
    args = p.parse_args()
    if min(args.small, args.large, args.rounds, args.large_rounds, args.list_runs) < 1:
        p.error("counts must be at least 1")

    fd_limit = raise_fd_limit()  # inherited by the daemons started below
    argv = sleep_argv()
    work = temp_dir("bench-fleet-")
    small_names = [f"fleet-{i}" for i in range(args.small)]
    large_names = [f"many-{i}" for i in range(args.large)]

    keys = harness.manager_keys(args.managers)
    with harness.open_managers(keys) as managers, ExitStack() as stack:
        if args.supervisord:  # stopped first on the way out (the ExitStack is inner)
            managers = [*managers, stack.enter_context(Supd())]
        keys = [m.key for m in managers]
        for m in managers:
            m.ensure_daemon()
        small = {m.key: (m.write_apps(work, small_names, argv), small_names) for m in managers}
        large = {m.key: (m.write_apps(work, large_names, argv), large_names) for m in managers}
        starts_small: dict[str, list[Timing]] = {k: [] for k in keys}
        starts_large: dict[str, list[Timing]] = {k: [] for k in keys}
        restarts: dict[str, list[Timing]] = {k: [] for k in keys}
        running: dict[str, dict[str, App]] = {}

        for r in range(args.rounds):
            for m in order(managers, r):
                t, apps = start_file(m, *small[m.key])
                starts_small[m.key].append(t)
                show(m, f"start {args.small}, round {r + 1}", t)
                delete_and_wait(m, apps)

        for m in managers:  # untimed: the apps that `restart all` restarts
            running[m.key] = start_file(m, *small[m.key])[1]
        time.sleep(1.0)
        for r in range(args.rounds):
            for m in order(managers, r):
                t, running[m.key] = restart_all(m, running[m.key])
                restarts[m.key].append(t)
                show(m, f"restart all ({args.small}), round {r + 1}", t)
        for m in managers:
            delete_and_wait(m, running.pop(m.key))

        for r in range(args.large_rounds):
            if r:
                for m in managers:
                    delete_and_wait(m, running.pop(m.key))
            for m in order(managers, r):
                t, running[m.key] = start_file(m, *large[m.key])
                starts_large[m.key].append(t)
                show(m, f"start {args.large}, round {r + 1}", t)

        # Every manager now runs `large` apps.
        rss, rss_parts = daemon_rss(managers, args.settle, args.samples)
        fd_counts = {m.key: fds(m) for m in managers}
        lists: dict[str, list[float]] = {k: [] for k in keys}
        for i in range(args.list_warmup + args.list_runs):
            for m in order(managers, i):
                elapsed = m.list()
                if i >= args.list_warmup:
                    lists[m.key].append(elapsed)
        for m in managers:
            median_ms = Stats.of(lists[m.key]).median * 1000
            print(f"{m.label:<11} list, {args.large} apps: {median_ms:.0f} ms", flush=True)
        rss_after, _ = daemon_rss(managers, 0.0, args.samples)
        for m in managers:  # before `kill`, whose own timeout is short for 1000 apps
            delete_and_wait(m, running.pop(m.key))

        def stats(timings: dict[str, list[Timing]]) -> dict[str, Stats]:
            return {k: Stats.of([t.total for t in v]) for k, v in timings.items()}

        def within(limit: float) -> Callable[[Stats, Stats], bool]:
            return lambda pmd, pm2: pmd.median <= limit * pm2.median

        start_target = f"≤ {TARGET_START_RATIO}\N{MULTIPLICATION SIGN} PM2"
        list_target = (
            f"≤ {TARGET_LIST_RATIO}\N{MULTIPLICATION SIGN} PM2 and < {TARGET_LIST_MS:.0f} ms"
        )
        figures: list[
            tuple[str, str, str, dict[str, Stats], Callable[[Stats, Stats], bool] | None]
        ] = [
            (
                f"`list`, {args.large} processes",
                "ms",
                list_target,
                {k: Stats.of(v).scaled(1000) for k, v in lists.items()},
                lambda pmd, pm2: (
                    pmd.median <= TARGET_LIST_RATIO * pm2.median and pmd.median < TARGET_LIST_MS
                ),
            ),
            (
                f"`start FILE`, {args.small} processes → all listed online",
                "s",
                start_target,
                stats(starts_small),
                within(TARGET_START_RATIO),
            ),
            (
                f"`start FILE`, {args.large} processes → all listed online",
                "s",
                start_target,
                stats(starts_large),
                within(TARGET_START_RATIO),
            ),
            (
                f"`restart all`, {args.small} processes → all listed online with new PIDs",
                "s",
                "next to PM2",
                stats(restarts),
                None,
            ),
            (
                f"daemon RSS (pmdaemon: daemon + log keeper), {args.large} processes",
                "MiB",
                "< PM2",
                rss,
                lambda pmd, pm2: pmd.median < pm2.median,
            ),
        ]
        rows = []
        for label, unit, target, results, check in figures:
            row = harness.Row(
                label, unit, target, {k: v for k, v in results.items() if k != "supd"}
            )
            rows.append(row.judge(check) if check else row)
        if "supd" in keys and "pmd" in keys:  # the same figures, pmdaemon next to supervisord
            for label, unit, _, results, _ in figures:
                pair = {k: v for k, v in results.items() if k in ("pmd", "supd")}
                rows.append(
                    harness.Row(
                        f"{label}, next to supervisord",
                        unit,
                        "next to supervisord",
                        pair,
                        baseline="supd",
                    )
                )

        def medians(timings: dict[str, list[Timing]], field: str) -> dict[str, float]:
            return {
                k: round(Stats.of([getattr(t, field) for t in v]).median, 3)
                for k, v in timings.items()
            }

        notes = {
            "small": args.small,
            "large": args.large,
            "rounds": args.rounds,
            "large_rounds": args.large_rounds,
            "list_runs": args.list_runs,
            "list_warmup": args.list_warmup,
            "settle_s": args.settle,
            "samples": args.samples,
            "app": " ".join(argv),
            "poll_interval_s": POLL_INTERVAL,
            "fd_limit": fd_limit,
            "supervisord": next((m.version() for m in managers if m.key == "supd"), None),
            "command_s": {
                "start_small": medians(starts_small, "command"),
                "start_large": medians(starts_large, "command"),
                "restart": medians(restarts, "command"),
            },
            "last_listing_s": {
                "start_small": medians(starts_small, "last_listing"),
                "start_large": medians(starts_large, "last_listing"),
                "restart": medians(restarts, "last_listing"),
            },
            "rss_parts_mib": rss_parts,
            "rss_after_lists_mib": {k: round(s.median, 1) for k, s in rss_after.items()},
            "fds": fd_counts,
        }
        harness.report(rows, managers, notes)


if __name__ == "__main__":
    harness.main(run)
