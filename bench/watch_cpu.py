#!/usr/bin/env python3
"""Watch: one app whose directory holds a tree of 50,000 files (2,500 directories of 20),
watched by each manager with its default ignore rules (`watch: ["tree"]` in the same JSON
file for both). Measured, one manager after the other, each alone on the machine:

- idle CPU of the daemon while it watches and nothing changes;
- the daemon's RSS growth: its RSS with the watched app less its RSS with the same app
  unwatched (pmdaemon: the daemon itself; its log keeper does not watch);
- edit → new process latency: a file deep in the tree is rewritten; the app writes the
  time it started to a file outside the tree, so the latency is that time less the
  edit's, with no polling by the benchmark.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import harness
import psutil
from common import Stats, measure_cpu
from manager import Manager

DIRS, FILES_PER_DIR = 2500, 20
TARGET_CPU = 1.0  # % of one core
TARGET_RSS_RATIO = 0.2
APP = "import sys, time\nopen(sys.argv[1], 'a').write(f'{time.time()}\\n')\ntime.sleep(1e6)\n"


@dataclass(frozen=True)
class Measured:
    cpu: float  # % of one core, daemon (and companions) while watching
    rss_growth_mib: float
    latencies_ms: list[float]


def make_tree(root: Path) -> int:
    count = 0
    for d in range(DIRS):
        directory = root / "tree" / f"pkg{d // 50}" / f"mod{d}"
        directory.mkdir(parents=True, exist_ok=True)
        for f in range(FILES_PER_DIR):
            (directory / f"f{f}.js").write_text("// x\n")
            count += 1
    return count


def app_file(work: Path, m: Manager, watch: bool) -> Path:
    stamps = work / f"stamps-{m.key}"
    app: dict[str, object] = {
        "name": "watched",
        "script": sys.executable,
        "args": [str(work / "app.py"), str(stamps)],
        "interpreter": "none",
        "cwd": str(work),
        "autorestart": True,
    }
    if watch:
        app["watch"] = ["tree"]
    path = work / f"eco-{m.key}-{'watch' if watch else 'plain'}.json"
    path.write_text(json.dumps({"apps": [app]}))
    return path


def stamps(work: Path, m: Manager) -> list[float]:
    path = work / f"stamps-{m.key}"
    return [float(x) for x in path.read_text().split()] if path.exists() else []


def daemon_rss(m: Manager) -> int:
    return psutil.Process(m.daemon_pids()["daemon"]).memory_info().rss


def measure(m: Manager, work: Path, settle: float, duration: float, edits: int) -> Measured:
    m.start_file(app_file(work, m, watch=False))
    m.wait_online(["watched"], 60)
    time.sleep(settle)
    plain = daemon_rss(m)
    m.delete("watched")
    m.start_file(app_file(work, m, watch=True))
    m.wait_online(["watched"], 60)
    time.sleep(settle)  # the initial scan of the tree (both scan in the background)
    grown = daemon_rss(m) - plain
    procs = {role: psutil.Process(pid) for role, pid in m.daemon_pids().items()}
    use = measure_cpu(procs, duration)
    cpu = sum(u.own for u in use.values())
    latencies = []
    for i in range(edits):
        seen = len(stamps(work, m))
        d = (i * 131 + 17) % DIRS
        target = work / "tree" / f"pkg{d // 50}" / f"mod{d}" / "f3.js"
        edited = time.time()
        target.write_text(f"// edit {i}\n")
        deadline = time.monotonic() + 30
        while len(stamps(work, m)) <= seen and time.monotonic() < deadline:
            time.sleep(0.01)
        new = stamps(work, m)[seen:]
        if new:
            latencies.append((new[0] - edited) * 1000)
        time.sleep(2.0)  # let the restart settle before the next edit
    return Measured(cpu, grown / 2**20, latencies)


def run() -> None:
    p = harness.parser(__doc__ or "")
    p.add_argument("--settle", type=float, default=10.0, help="seconds before measuring (10)")
    p.add_argument("--duration", type=float, default=30.0, help="idle seconds measured (30)")
    p.add_argument("--edits", type=int, default=5, help="edits timed (5)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="pmdbench-watch-") as tmp:
        work = Path(tmp)
        (work / "app.py").write_text(APP)
        files = make_tree(work)
        results: dict[str, Measured] = {}
        with harness.open_managers(harness.manager_keys(args.managers)) as managers:
            for m in managers:
                m.ensure_daemon()
                results[m.key] = r = measure(m, work, args.settle, args.duration, args.edits)
                m.kill()
                shown = ", ".join(f"{x:.0f}" for x in r.latencies_ms)
                print(
                    f"{m.label:<9} idle CPU {r.cpu:.2f} % of one core; RSS growth "
                    f"{r.rss_growth_mib:.1f} MiB; edit → new process {shown} ms",
                    flush=True,
                )
            what = f"a tree of {files} files in {DIRS} directories"
            rows = [
                harness.Row(
                    f"watch: daemon idle CPU watching {what}, % of one core",
                    "%",
                    f"< {TARGET_CPU:g} % and < PM2",
                    {k: Stats.of([r.cpu]) for k, r in results.items()},
                ).judge(lambda pmd, pm2: pmd.median < TARGET_CPU and pmd.median < pm2.median),
                harness.Row(
                    f"watch: daemon RSS growth while watching {what}",
                    "MiB",
                    f"≤ {TARGET_RSS_RATIO:g} x PM2",
                    {k: Stats.of([r.rss_growth_mib]) for k, r in results.items()},
                ).judge(lambda pmd, pm2: pmd.median <= TARGET_RSS_RATIO * pm2.median),
                harness.Row(
                    "watch: edit → new process latency",
                    "ms",
                    "< PM2",
                    {k: Stats.of(r.latencies_ms) for k, r in results.items() if r.latencies_ms},
                ).judge(lambda pmd, pm2: pmd.median < pm2.median),
            ]
            harness.report(
                rows,
                managers,
                {
                    "files": files,
                    "directories": DIRS,
                    "settle_s": args.settle,
                    "duration_s": args.duration,
                    "cpu_percent": {k: r.cpu for k, r in results.items()},
                    "rss_growth_mib": {k: r.rss_growth_mib for k, r in results.items()},
                    "latencies_ms": {k: r.latencies_ms for k, r in results.items()},
                    "order": [m.key for m in managers],
                },
            )


if __name__ == "__main__":
    harness.main(run)
