#!/usr/bin/env python3
"""`list` latency with 10 idle processes: pmdaemon's and PM2's CLI, alternated."""

from __future__ import annotations

import harness
from common import Stats

TARGET_RATIO = 0.3  # issue 10
TARGET_MS = 100.0


def run() -> None:
    p = harness.parser(__doc__ or "")
    p.add_argument("--processes", type=int, default=10)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    args = p.parse_args()

    with harness.open_managers(harness.manager_keys(args.managers)) as managers:
        harness.start_idle(managers, "idle", args.processes, timeout=60)
        samples: dict[str, list[float]] = {m.key: [] for m in managers}
        for i in range(args.warmup + args.runs):
            # Alternate who goes first, so neither always runs right after the other.
            for m in managers if i % 2 == 0 else managers[::-1]:
                elapsed = m.list()
                if i >= args.warmup:
                    samples[m.key].append(elapsed)

        row = harness.Row(
            f"`list`, {args.processes} processes",
            "ms",
            f"≤ {TARGET_RATIO}\N{MULTIPLICATION SIGN} PM2 and < {TARGET_MS:.0f} ms",
            {k: Stats.of(v).scaled(1000) for k, v in samples.items()},
        ).judge(lambda pmd, pm2: pmd.median <= TARGET_RATIO * pm2.median and pmd.median < TARGET_MS)
        harness.report(
            [row], managers, {"processes": args.processes, "runs": args.runs, "warmup": args.warmup}
        )


if __name__ == "__main__":
    harness.main(run)
