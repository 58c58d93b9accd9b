#!/usr/bin/env python3
"""Log throughput: a child writes 200 MiB of numbered lines to its stdout as fast as it
can (tests/children/flood.py), to a plain file, under pmdaemon (whose log keeper writes the
log files, rotating them), under pmdaemon with --time (a timestamp per line) and under PM2;
the figure is the child's own run time while writing. Also the time until all the bytes
are in the log files, and the latency of following the logs (`logs -f`).

The runs alternate between the four ways, each with a new app name (so new log files); the
app and its log files are deleted between runs. The same Python runs the child everywhere.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import harness
import psutil
from common import (
    BENCH_DIR,
    MIB,
    REPO_DIR,
    Stats,
    kill_leftovers,
    python_executable,
    temp_dir,
    wait_until,
)
from manager import Manager

FLOOD = REPO_DIR / "tests" / "children" / "flood.py"
TICKER = BENCH_DIR / "children" / "ticker.py"
# The ways the flood runs: straight to a file, under each manager, under pmdaemon with
# per-line timestamps.
MODES = ("file", "pmd", "pm2", "pmd-time")
MODE_LABELS = {
    "file": "plain file",
    "pmd": "pmdaemon",
    "pm2": "PM2",
    "pmd-time": "pmdaemon --time",
}
MAX_LOG_SIZE = "10M"  # pmdaemon's default; 200 MiB makes 20 rotated files
# Rotated files kept: more than 200 MiB makes (20), and than 200 MiB with a timestamp on
# each of its 3.7 million lines makes (~31), so that no line is dropped.
MAX_LOG_FILES = {"plain": 25, "stamped": 40}
WRITER_TIMEOUT = 120.0  # seconds from the start until the child's report
COMPLETE_TIMEOUT = 120.0  # seconds from the start until every byte is in the log files
STALL = 15.0  # seconds without a byte added after the writer ended: the tail is lost
POLL = 0.02
TIMESTAMP_RE = re.compile(rb"(\d{9,11}\.\d{6})\s*$")
FILE_TARGET = 1.1  # pmdaemon's writer at most this many times the plain file's run time
FOLLOW_START_TIMEOUT = 20.0
MIN_LINES_PER_S = 10  # half of what the ticker prints: fewer means the follower lost lines
FOLLOW_STOP_GRACE = 5.0


@dataclass(frozen=True)
class Written:
    """What the child reported: its run time while writing, its lines and bytes, and when
    it ended (the report file's modification time, wall clock)."""

    seconds: float
    lines: int
    bytes: int
    ended: float

    @property
    def started(self) -> float:
        return self.ended - self.seconds


@dataclass
class Run:
    written: Written
    complete: float | None = None  # wall time the last byte reached the log files
    log_bytes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def to_disk(self) -> float | None:
        """Seconds from the writer's start until every byte was in the log files."""
        return None if self.complete is None else self.complete - self.written.started


def read_report(path: Path) -> Written | None:
    try:
        text = path.read_text()
        ended = path.stat().st_mtime
    except OSError:
        return None
    fields = text.split()
    if len(fields) != 3 or not text.endswith("\n"):
        return None  # not written yet, or being written
    return Written(float(fields[0]), int(fields[1]), int(fields[2]), ended)


def flood_args(megabytes: float, report: Path) -> list[str]:
    return [str(FLOOD), f"{megabytes:g}", "--report", str(report)]


def expected_line(lines: int) -> bytes:
    n = lines - 1
    return f"{n} {'x' * (n % 97)}\n".encode()


def verify(files: list[Path], written: Written, stamped: bool) -> list[str]:
    """Problems with the log's content: a line count other than the child's, or a last
    line that is not its last line."""
    count, tail = 0, b""
    for path in files:
        with path.open("rb") as f:
            while chunk := f.read(MIB):
                count += chunk.count(b"\n")
                tail = (tail + chunk)[-256:]
    problems = []
    if count != written.lines:
        problems.append(f"{count} lines in the log files, {written.lines} written")
    last = expected_line(written.lines)
    before = tail[: -len(last)][-1:]
    if not tail.endswith(last) or before not in ((b" ",) if stamped else (b"\n",)):
        problems.append(f"the last line is not line {written.lines - 1}: {tail[-60:]!r}")
    return problems


def sizes(files: list[Path]) -> tuple[int, float]:
    """Total bytes of `files` and their latest modification time (0 if none)."""
    total, latest = 0, 0.0
    for path in files:
        with contextlib.suppress(OSError):  # rotated away meanwhile: read next time
            st = path.stat()
            total += st.st_size
            latest = max(latest, st.st_mtime)
    return total, latest


def stamp_length(files: list[Path]) -> int | None:
    """Bytes a timestamp adds to each line: the first line written is "0 " (3 bytes with
    its newline), and it is the oldest file's first line."""
    if not files:
        return None
    try:
        with files[0].open("rb") as f:
            first = f.readline()
    except OSError:
        return None
    return len(first) - 3 if first.endswith(b"0 \n") else None


def run_plain(py: str, workdir: Path, megabytes: float, index: int) -> Run:
    report, out = workdir / f"report-{index}", workdir / f"flood-{index}.log"
    with out.open("wb") as f:
        subprocess.run(
            [py, *flood_args(megabytes, report)],
            stdout=f,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            timeout=WRITER_TIMEOUT,
            check=True,
        )
    written = read_report(report)
    if written is None:
        raise RuntimeError(f"the plain-file flood wrote no report ({report})")
    run = Run(written, complete=out.stat().st_mtime, log_bytes=out.stat().st_size)
    run.problems = verify([out], written, stamped=False)
    out.unlink()
    report.unlink()
    return run


def start_flood(
    m: Manager, py: str, name: str, megabytes: float, report: Path, stamped: bool
) -> None:
    if m.key == "pmd":
        files = MAX_LOG_FILES["stamped" if stamped else "plain"]
        options = ["--max-log-size", MAX_LOG_SIZE, "--max-log-files", str(files)]
        m.run(
            "start",
            str(FLOOD),
            "--interpreter",
            py,
            "-n",
            name,
            "--no-autorestart",
            *options,
            *(["--time"] if stamped else []),
            "--",
            *flood_args(megabytes, report)[1:],
        )
    elif m.key == "pm2":
        if stamped:
            raise ValueError("the --time runs are pmdaemon's only")
        m.run(
            "start",
            str(FLOOD),
            "--interpreter",
            py,
            "--name",
            name,
            "--no-autorestart",
            "--",
            *flood_args(megabytes, report)[1:],
        )
    else:
        raise ValueError(f"unknown manager {m.key}")


def run_managed(
    m: Manager, py: str, workdir: Path, megabytes: float, index: int, stamped: bool
) -> Run:
    name = f"flood-{index}"
    report = workdir / f"report-{index}"
    start = time.monotonic()
    start_flood(m, py, name, megabytes, report, stamped)
    try:
        written = wait_until(
            lambda: read_report(report),
            WRITER_TIMEOUT - (time.monotonic() - start),
            f"the {m.label} flood's report",
            POLL,
        )
        run = Run(written)
        stamp: int | None = 0 if not stamped else None
        last_size, last_change = -1, time.monotonic()
        deadline = start + COMPLETE_TIMEOUT
        while True:
            files = m.log_files(name)
            if stamp is None:
                stamp = stamp_length(files)
            size, latest = sizes(files)
            run.log_bytes = size
            expected = None if stamp is None else written.bytes + written.lines * stamp
            # A listing taken during a rotation can be off: a second one must agree.
            if expected is not None and size >= expected:
                size, latest = sizes(m.log_files(name))
                if size >= expected:
                    run.log_bytes, run.complete = size, latest
                    break
            now = time.monotonic()
            if size != last_size:
                last_size, last_change = size, now
            if now - last_change >= STALL or now >= deadline:
                run.problems.append(
                    f"not complete: {size:,} of {written.bytes:,} bytes"
                    f" {now - start:.0f} s after the start"
                )
                break
            time.sleep(POLL)
        run.problems += verify(m.log_files(name), written, stamped)
        errors = sizes(m.log_files(name, "error"))[0]
        if errors:
            run.problems.append(f"{errors} bytes in the error log")
    finally:
        m.delete(name)
        for path in [*m.log_files(name), *m.log_files(name, "error"), report]:
            path.unlink(missing_ok=True)
    return run


# --- following the logs ---------------------------------------------------------------


def follow_argv(m: Manager, name: str) -> list[str]:
    if m.key == "pmd":
        return [*m.command(), "logs", name, "-f", "--lines", "0"]
    return [*m.command(), "logs", name, "--raw", "--lines", "0"]


def follow_latency(
    managers: list[Manager], py: str, workdir: Path, duration: float
) -> dict[str, list[float]]:
    """Seconds from a ticker app's print to the line's arrival on the follower's stdout,
    for every line printed after the follower's first line arrived, over `duration`
    seconds; the managers' followers run at the same time."""
    name = "ticker"
    for m in managers:
        m.start(name, [py, str(TICKER), harness.idle_tag(m, name)])
    for m in managers:
        m.wait_online([name], timeout=30)
    followers: dict[str, subprocess.Popen[bytes]] = {}
    errors: dict[str, Path] = {}
    samples: dict[str, list[float]] = {m.key: [] for m in managers}
    try:
        for m in managers:
            errors[m.key] = workdir / f"follow-{m.key}.err"
            with errors[m.key].open("wb") as err:
                followers[m.key] = subprocess.Popen(
                    follow_argv(m, name),
                    env=m.env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    start_new_session=True,
                )
        read_followers(followers, samples, duration)
    except TimeoutError as exc:
        detail = {k: p.read_text(errors="replace")[-500:] for k, p in errors.items()}
        raise RuntimeError(f"{exc}; followers' stderr: {detail}") from None
    finally:
        stop_followers(list(followers.values()))
        for m in managers:
            m.delete(name)
    return samples


def read_followers(
    followers: dict[str, subprocess.Popen[bytes]],
    samples: dict[str, list[float]],
    duration: float,
) -> None:
    sel = selectors.DefaultSelector()
    pending: dict[str, bytes] = {}
    first: dict[str, float] = {}  # wall time of each follower's first line
    for key, proc in followers.items():
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        sel.register(proc.stdout.fileno(), selectors.EVENT_READ, key)
        pending[key] = b""
    deadline = time.monotonic() + FOLLOW_START_TIMEOUT + duration
    try:
        while True:
            now_mono = time.monotonic()
            done = [k for k, t in first.items() if time.time() - t >= duration]
            if len(done) == len(followers):
                return
            if now_mono >= deadline:
                silent = sorted(set(followers) - set(first))
                raise TimeoutError(f"follower(s) {silent or sorted(followers)} too slow")
            for key_obj, _ in sel.select(timeout=0.1):
                key = key_obj.data
                try:
                    data = os.read(key_obj.fd, 65536)
                except BlockingIOError:
                    continue
                arrived = time.time()
                if not data:
                    raise RuntimeError(f"{harness.LABELS[key]}'s follower ended early")
                *lines, pending[key] = (pending[key] + data).split(b"\n")
                for line in lines:
                    match = TIMESTAMP_RE.search(line)
                    if match is None:
                        continue
                    printed = float(match.group(1))
                    start = first.setdefault(key, arrived)
                    if start <= printed and arrived - start < duration:
                        samples[key].append(arrived - printed)
    finally:
        sel.close()


def stop_followers(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each follower (by PID), then SIGKILL it and anything it started."""
    trees: list[psutil.Process] = []
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(psutil.NoSuchProcess):
                parent = psutil.Process(proc.pid)
                trees += [parent, *parent.children(recursive=True)]
            proc.send_signal(signal.SIGTERM)
    kill_leftovers(trees, grace=FOLLOW_STOP_GRACE)
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(FOLLOW_STOP_GRACE)
        if proc.stdout is not None:
            proc.stdout.close()


def percentile(values: list[float], pct: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


# --- the scenario -----------------------------------------------------------------------


def run() -> None:
    p = harness.parser(__doc__ or "")
    p.add_argument("--runs", type=int, default=5, help="timed runs of each way (5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs of each way first (1)")
    p.add_argument("--megabytes", type=float, default=200.0, help="MiB the child writes (200)")
    p.add_argument("--follow", type=float, default=5.0, help="seconds of `logs -f` (5)")
    args = p.parse_args()
    if args.runs < 1 or args.warmup < 0 or args.megabytes <= 0 or args.follow <= 0:
        p.error("need --runs ≥ 1, --warmup ≥ 0, --megabytes > 0 and --follow > 0")

    py = python_executable()
    workdir = temp_dir("bench-logs-")
    with harness.open_managers(harness.manager_keys(args.managers)) as managers:
        by_key = {m.key: m for m in managers}
        for m in managers:
            m.ensure_daemon()
        modes = [k for k in MODES if k == "file" or k.split("-")[0] in by_key]

        def run_way(key: str, index: int) -> Run:
            if key == "file":
                return run_plain(py, workdir, args.megabytes, index)
            m, stamped = by_key[key.split("-")[0]], key.endswith("-time")
            return run_managed(m, py, workdir, args.megabytes, index, stamped)

        runs: dict[str, list[Run]] = {k: [] for k in modes}
        index = 0
        for r in range(args.warmup + args.runs):
            order = modes[r % len(modes) :] + modes[: r % len(modes)]
            for key in order:
                index += 1
                result = run_way(key, index)
                w = result.written
                to_disk = "not complete" if result.to_disk is None else f"{result.to_disk:.2f} s"
                print(
                    f"{'warm-up' if r < args.warmup else f'run {r - args.warmup + 1}'}"
                    f" {MODE_LABELS[key]:<16} writer {w.seconds:.3f} s, {w.bytes:,} bytes;"
                    f" in the log files after {to_disk}"
                    + (f"; PROBLEMS: {result.problems}" if result.problems else ""),
                    flush=True,
                )
                if r >= args.warmup:
                    runs[key].append(result)

        follow = follow_latency(managers, py, workdir, args.follow)
        for key, values in follow.items():
            if len(values) < args.follow * MIN_LINES_PER_S:
                raise RuntimeError(
                    f"only {len(values)} lines from {harness.LABELS[key]}'s follower"
                    f" in {args.follow:g} s"
                )
            print(
                f"{harness.LABELS[key]:<9} logs -f: {len(values)} lines, median"
                f" {statistics.median(values) * 1000:.1f} ms, p95"
                f" {percentile(values, 95) * 1000:.1f} ms",
                flush=True,
            )

        rows, notes = make_rows(runs, follow, args.megabytes)
        notes.update(
            runs=args.runs,
            warmup=args.warmup,
            follow_s=args.follow,
            stall_s=STALL,
            complete_timeout_s=COMPLETE_TIMEOUT,
            max_log_size=MAX_LOG_SIZE,
            max_log_files=MAX_LOG_FILES,
            commands={
                "file": f"PYTHON flood.py {args.megabytes:g} --report FILE > FILE",
                "pmd": "pmdaemon start flood.py --interpreter PYTHON -n NAME --no-autorestart"
                f" --max-log-size {MAX_LOG_SIZE} --max-log-files"
                f" {MAX_LOG_FILES['plain']} (with --time: --time --max-log-files"
                f" {MAX_LOG_FILES['stamped']})"
                f" -- {args.megabytes:g} --report FILE",
                "pm2": "pm2 start flood.py --interpreter PYTHON --name NAME --no-autorestart"
                f" -- {args.megabytes:g} --report FILE",
            },
            follow_commands={
                "pmd": "pmdaemon logs NAME -f --lines 0",
                "pm2": "pm2 logs NAME --raw --lines 0",
            },
        )
        harness.report(rows, managers, notes)


def make_rows(
    runs: dict[str, list[Run]], follow: dict[str, list[float]], megabytes: float
) -> tuple[list[harness.Row], dict[str, object]]:
    def writer(key: str) -> Stats:
        return Stats.of([r.written.seconds for r in runs[key]])

    size = f"{megabytes:g} MiB of log lines"
    file, rows = writer("file"), []
    managed = {k: writer(k) for k in ("pmd", "pm2") if runs.get(k)}
    rows.append(
        harness.Row(f"{size}: writer's run time", "s", "< PM2", managed).judge(
            lambda pmd, pm2: pmd.median < pm2.median
        )
    )
    if "pmd" in managed:
        rows.append(
            harness.Row(
                f"{size}: writer's run time, pmdaemon next to a plain file",
                "s",
                f"≤ {FILE_TARGET:g}\N{MULTIPLICATION SIGN} plain file",
                {"pmd": managed["pmd"], "file": file},
                baseline="file",
            ).judge(lambda pmd, base: pmd.median <= FILE_TARGET * base.median)
        )
    if runs.get("pmd-time"):
        rows.append(
            harness.Row(
                f"{size} with `--time` (a timestamp per line): writer's run time",
                "s",
                "informational: the cost of timestamps",
                {"pmd": writer("pmd-time"), "file": file},
                baseline="file",
            )
        )

    missed = {k: sum(r.complete is None for r in v) for k, v in runs.items()}
    to_disk = {
        k: Stats.of(done)
        for k in ("pmd", "pm2")
        if (done := [d for r in runs.get(k, []) if (d := r.to_disk) is not None])
    }
    misses = ", ".join(
        f"{harness.LABELS[k]} {missed[k]} of {len(runs[k])} runs"
        for k in ("pmd", "pm2")
        if missed.get(k)
    )
    label = f"{size}: all in the log files, from the writer's start"
    if misses:
        label += f" (never complete, tail lost: {misses})"
    if runs.get("pmd") or runs.get("pm2"):
        rows.append(harness.Row(label, "s", "next to PM2", to_disk))

    if follow:
        rows += [
            harness.Row(
                "`logs -f`: line printed → shown by the follower, median",
                "ms",
                "next to PM2",
                {k: Stats.of(v).scaled(1000) for k, v in follow.items()},
            ),
            harness.Row(
                "`logs -f`: line printed → shown by the follower, 95th percentile",
                "ms",
                "next to PM2",
                {
                    k: Stats(p95, p95, p95, len(v))
                    for k, v in follow.items()
                    for p95 in [percentile(v, 95) * 1000]
                },
            ),
        ]

    first = runs["file"][0].written
    notes: dict[str, object] = {
        "megabytes": megabytes,
        "bytes": first.bytes,
        "lines": first.lines,
        "writer_s": {
            k: Stats.of([r.written.seconds for r in v]).to_json() for k, v in runs.items()
        },
        "to_disk_s": {k: [r.to_disk for r in v] for k, v in runs.items()},
        "lag_after_writer_ms": {
            k: [None if r.complete is None else 1000 * (r.complete - r.written.ended) for r in v]
            for k, v in runs.items()
        },
        "not_complete": missed,
        "problems": {
            k: [f"run {i + 1}: {p}" for i, r in enumerate(v) for p in r.problems]
            for k, v in runs.items()
        },
        "follow_lines": {k: len(v) for k, v in follow.items()},
        "follow_ms": {
            k: {"median": 1000 * statistics.median(v), "p95": 1000 * percentile(v, 95)}
            for k, v in follow.items()
        },
        "ticker_interval": "50 ms on average (30\N{EN DASH}70 ms at random)",
    }
    return rows, notes


if __name__ == "__main__":
    harness.main(run)
