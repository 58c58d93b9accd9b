#!/usr/bin/env python3
"""Daemon memory: RSS of the daemon, idle and with 100 idle apps.

pmdaemon's figure is the daemon plus its log keeper (the long-lived child that writes
the apps' log files; PM2's God daemon writes them itself), summed at each reading.
"""

from __future__ import annotations

import time

import harness
from common import Stats, sample_rss
from manager import Manager


def daemon_rss(
    managers: list[Manager], settle: float, samples: int
) -> tuple[dict[str, Stats], dict[str, dict[str, float]]]:
    """Per manager: Stats of the summed RSS of its daemon processes, and the median of
    each process alone (by role)."""
    time.sleep(settle)
    totals: dict[str, Stats] = {}
    parts: dict[str, dict[str, float]] = {}
    for m in managers:
        stats = sample_rss(m.daemon_pids(), samples)
        totals[m.key] = stats.pop("total")
        parts[m.key] = {role: s.median for role, s in stats.items()}
        split = ", ".join(f"{role} {mib:.1f}" for role, mib in parts[m.key].items())
        print(f"{m.label:<9} {totals[m.key].median:.1f} MiB ({split})", flush=True)
    return totals, parts


def run() -> None:
    p = harness.parser(__doc__ or "")
    p.add_argument("--processes", type=int, default=100)
    p.add_argument("--settle", type=float, default=3.0, help="seconds before sampling")
    p.add_argument("--samples", type=int, default=10, help="RSS readings, 0.2 s apart")
    args = p.parse_args()

    with harness.open_managers(harness.manager_keys(args.managers)) as managers:
        for m in managers:
            m.ensure_daemon()
        idle, idle_parts = daemon_rss(managers, args.settle, args.samples)
        harness.start_idle(managers, "rss", args.processes, timeout=120)
        loaded, loaded_parts = daemon_rss(managers, args.settle, args.samples)

        what = "daemon RSS (pmdaemon: daemon + log keeper)"
        rows = [
            harness.Row(f"{what}, idle (0 processes)", "MiB", "next to PM2", idle),
            harness.Row(f"{what}, {args.processes} processes", "MiB", "next to PM2", loaded),
        ]
        harness.report(
            rows,
            managers,
            {
                "processes": args.processes,
                "settle_s": args.settle,
                "samples": args.samples,
                "parts_idle_mib": idle_parts,
                "parts_loaded_mib": loaded_parts,
            },
        )


if __name__ == "__main__":
    harness.main(run)
