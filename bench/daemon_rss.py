#!/usr/bin/env python3
"""Daemon memory: RSS of the daemon process alone, idle and with 100 idle apps."""

from __future__ import annotations

import time

import harness
from common import Stats, sample_rss
from manager import Manager


def daemon_rss(managers: list[Manager], settle: float, samples: int) -> dict[str, Stats]:
    time.sleep(settle)
    result = {}
    for m in managers:
        pid = m.god_pid()
        if pid is None:
            raise RuntimeError(f"{m.label} daemon PID unknown")
        result[m.key] = sample_rss(pid, samples)
    return result


def run() -> None:
    p = harness.parser(__doc__ or "")
    p.add_argument("--processes", type=int, default=100)
    p.add_argument("--settle", type=float, default=3.0, help="seconds before sampling")
    p.add_argument("--samples", type=int, default=10, help="RSS readings, 0.2 s apart")
    args = p.parse_args()

    with harness.open_managers(harness.manager_keys(args.managers)) as managers:
        for m in managers:
            m.ensure_daemon()
        idle = daemon_rss(managers, args.settle, args.samples)
        harness.start_idle(managers, "rss", args.processes, timeout=120)
        loaded = daemon_rss(managers, args.settle, args.samples)

        rows = [
            harness.Row("daemon RSS, idle (0 processes)", "MiB", "next to PM2", idle),
            harness.Row(f"daemon RSS, {args.processes} processes", "MiB", "next to PM2", loaded),
        ]
        harness.report(
            rows,
            managers,
            {"processes": args.processes, "settle_s": args.settle, "samples": args.samples},
        )


if __name__ == "__main__":
    harness.main(run)
