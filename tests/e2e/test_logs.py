"""Logs through the log keeper: rotation at line boundaries without losing a line, per-line
timestamps, following across rotation and restarts, and apps that keep logging while the
daemon or the keeper is killed."""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import PMDAEMON, Pmd, alive, child, wait_until

PY = sys.executable
MiB = 1024 * 1024
KiB = 1024


def log_set(path: Path) -> list[Path]:
    """The rotated generations oldest first, then the current file."""
    rotated = sorted(
        (p for p in path.parent.glob(path.name + ".*") if p.suffix[1:].isdigit()),
        key=lambda p: -int(p.suffix[1:]),
    )
    return [*rotated, path]


def set_size(path: Path) -> int:
    total = 0
    for p in log_set(path):
        with contextlib.suppress(FileNotFoundError):  # renamed since the listing
            total += p.stat().st_size
    return total


def flood_numbers(files: list[Path]) -> list[int]:
    """The line numbers of flood.py's output in ``files``, each line checked whole, and
    each file checked to end at a line boundary."""
    numbers: list[int] = []
    for path in files:
        data = path.read_bytes()
        assert not data or data.endswith(b"\n"), f"{path.name} ends inside a line"
        for line in data.splitlines():
            number, _, xs = line.partition(b" ")
            n = int(number)
            assert xs == b"x" * (n % 97), f"line {n} in {path.name} is cut or glued: {line[:80]!r}"
            numbers.append(n)
    return numbers


def start_flood(pmd: Pmd, tmp_path: Path, megabytes: int, size: str, files: int) -> Path:
    report = tmp_path / "report"
    pmd.start(
        child("flood.py"),
        "--interpreter",
        PY,
        "-n",
        "flood",
        "--no-autorestart",
        "--max-log-size",
        size,
        "--max-log-files",
        str(files),
        "--",
        str(megabytes),
        "--report",
        str(report),
    )
    return report


def watch_bound(path: Path, report: Path, bound: int) -> int:
    """Sample the log set's size until the writer reports it is done; the largest seen."""
    largest = 0
    deadline = time.monotonic() + 300
    while not report.exists() and time.monotonic() < deadline:
        largest = max(largest, set_size(path))
        assert largest <= bound, f"log set grew to {largest} bytes (bound {bound})"
        time.sleep(0.005)  # sleep-ok: sampling while the writer runs
    assert report.exists(), "the writer did not finish"
    return largest


def test_200_mb_rotated_at_line_boundaries_and_nothing_lost(
    pmd: Pmd, home: Path, tmp_path: Path
) -> None:
    report = start_flood(pmd, tmp_path, 200, "10M", 25)
    out = home / "logs" / "flood-out.log"
    watch_bound(out, report, 10 * MiB * 26 + 200)
    _, lines, written = map(float, report.read_text().split())
    # The app has exited; the keeper writes what the pipe still held.
    wait_until(lambda: set_size(out) == written, timeout=60, what="every byte written")
    files = log_set(out)
    assert len(files) == 21  # 200 MiB in 10 MiB files: 20 rotated and the current one
    assert all(p.stat().st_size <= 10 * MiB for p in files)
    assert flood_numbers(files) == list(range(int(lines)))


def test_rotation_keeps_max_log_files_and_the_newest_lines(
    pmd: Pmd, home: Path, tmp_path: Path
) -> None:
    report = start_flood(pmd, tmp_path, 20, "1M", 5)
    out = home / "logs" / "flood-out.log"
    longest_line = 200
    watch_bound(out, report, MiB * 6 + longest_line)
    lines = int(report.read_text().split()[1])
    wait_until(
        lambda: out.read_bytes().endswith(f"{lines - 1} {'x' * ((lines - 1) % 97)}\n".encode()),
        timeout=60,
        what="the last line written",
    )
    files = log_set(out)
    assert [p.name for p in files] == [f"flood-out.log.{i}" for i in range(5, 0, -1)] + [
        "flood-out.log"
    ]
    numbers = flood_numbers(files)
    assert numbers == list(range(lines - len(numbers), lines))  # a contiguous newest run
    assert set_size(out) <= 6 * MiB
    # `logs` reaches into the last rotated file when the current one holds fewer lines.
    shown = pmd.json("logs", "flood", "--out", "--lines", "3000")["logs"]
    assert [int(x["message"].split()[0]) for x in shown] == list(range(lines - 3000, lines))


def follower(pmd: Pmd, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PMDAEMON, "logs", *args, "--follow", "--lines", "0"],
        env=pmd.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As in a terminal: a runner started in the background may have SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def ticker(pmd: Pmd, interval: str, *flags: str) -> None:
    """Start ticker.py as "tick", a line every ``interval`` seconds."""
    pmd.start(child("ticker.py"), "--interpreter", PY, "-n", "tick", *flags, "--", interval)


def ticker_runs(lines: list[str]) -> dict[int, list[int]]:
    """ticker.py's numbers per PID, from `logs` output lines ("name out | PID N")."""
    runs: dict[int, list[int]] = {}
    for line in lines:
        pid, n = line.split("| ", 1)[1].split()
        runs.setdefault(int(pid), []).append(int(n))
    return runs


def test_follow_goes_on_across_rotations_and_a_restart(pmd: Pmd, home: Path) -> None:
    # --no-wait: the follower must start before the first rotation (about 1 s of lines).
    ticker(pmd, "0.005", "--max-log-size", "2K", "--max-log-files", "2", "--no-wait")
    first = pmd.wait_online("tick")["pid"]
    proc = follower(pmd, "tick", "--out")
    assert proc.stdout is not None
    seen: list[str] = []

    def read_until(predicate: object) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 1)
            if ready:
                seen.append(proc.stdout.readline().rstrip("\n"))  # type: ignore[union-attr]
                if predicate(seen):  # type: ignore[operator]
                    return
        raise AssertionError(f"follow stalled; last lines: {seen[-5:]}")

    out = home / "logs" / "tick-out.log"
    try:
        assert not Path(f"{out}.1").exists()
        # At 2K per file and ~8 bytes per line, 800 lines cross several rotations.
        read_until(lambda s: len(s) >= 800)
        assert Path(f"{out}.2").exists(), "no rotation happened while following"
        pmd.run("restart", "tick")
        second = pmd.wait_online("tick", not_pid=first)["pid"]
        read_until(lambda s: ticker_runs(s).get(second, []).__len__() >= 50)
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=10)
    assert code == 0 and "Traceback" not in proc.stderr.read()  # type: ignore[union-attr]
    runs = ticker_runs(seen)
    for pid in (first, second):
        numbers = runs[pid]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), (
            f"lines of {pid} missing or repeated across rotation"
        )
    assert runs[second][0] == 0  # the new run is followed from its first line


STAMP_DEFAULT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d: ")


def test_time_stamps_every_line_in_the_configured_format(pmd: Pmd, home: Path) -> None:
    cases = {
        "default": (["--time"], STAMP_DEFAULT),
        "moment": (
            ["--log-date-format", "YYYY-MM-DD HH:mm Z"],
            re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d [+-]\d\d:\d\d: "),
        ),
        "strftime": (
            ["--time", "--log-date-format", "%d/%m/%Y %H:%M:%S"],
            re.compile(r"^\d\d/\d\d/\d{4} \d\d:\d\d:\d\d: "),
        ),
    }
    for name, (flags, _) in cases.items():
        pmd.start(child("spew.py"), "--interpreter", PY, "-n", name, *flags, "--", "20")
    pmd.start(child("spew.py"), "--interpreter", PY, "-n", "plain", "--", "3")
    for name, (_, pattern) in cases.items():
        out, err = home / "logs" / f"{name}-out.log", home / "logs" / f"{name}-error.log"
        wait_until(lambda o=out: "line 19" in o.read_text(), what=f"{name} written")
        wait_until(lambda e=err: "an error line" in e.read_text(), what=f"{name} stderr")
        lines = out.read_text().splitlines() + err.read_text().splitlines()
        assert all(pattern.match(line) for line in lines), (name, lines[:3])
        assert [pattern.sub("", x) for x in lines] == [f"line {i}" for i in range(20)] + [
            "an error line"
        ]
        assert time.strftime("%Y") in lines[0]
        # The API splits the stamp off; `logs` prints the lines as they are in the file.
        entries = pmd.json("logs", name, "--lines", "30")["logs"]
        assert [e["message"] for e in entries if e["type"] == "out"] == [
            f"line {i}" for i in range(20)
        ]
        assert all(pattern.match(f"{e['timestamp']}: ") for e in entries), entries[:2]
        shown = pmd.run("logs", name, "--out", "--lines", "3").stdout.splitlines()
        assert shown[-3:] == out.read_text().splitlines()[-3:]
    plain = home / "logs" / "plain-out.log"
    wait_until(lambda: "line 2" in plain.read_text())
    assert plain.read_text() == "line 0\nline 1\nline 2\n"  # no stamp unless asked for
    assert {e["timestamp"] for e in pmd.json("logs", "plain")["logs"]} == {None}


def test_apps_keep_logging_while_the_daemon_and_the_keeper_are_killed(pmd: Pmd, home: Path) -> None:
    ticker(pmd, "0.01")
    pid = pmd.wait_online("tick")["pid"]
    out = home / "logs" / "tick-out.log"

    def count() -> int:
        return out.read_text().count("\n")

    wait_until(lambda: count() >= 10, what="first lines")
    daemon = pmd.daemon_pid()
    assert daemon is not None
    os.kill(daemon, signal.SIGKILL)
    wait_until(lambda: not alive(daemon), what="daemon gone")
    at_kill = count()
    wait_until(lambda: count() >= at_kill + 50, what="lines written while no daemon runs")
    info = pmd.proc("tick")  # a new daemon adopts the app
    assert info["pid"] == pid and info["status"] == "online"
    keeper = pmd.keeper_pid()
    assert keeper is not None
    os.kill(keeper, signal.SIGKILL)
    wait_until(
        lambda: pmd.keeper_pid() not in (None, keeper) and not alive(keeper),
        what="a new keeper",
    )
    at_keeper_kill = count()
    wait_until(lambda: count() >= at_keeper_kill + 50, what="lines through the new keeper")
    assert alive(pid) and pmd.proc("tick")["pid"] == pid
    numbers = [int(line.split()[1]) for line in out.read_text().splitlines()]
    assert numbers == list(range(len(numbers))), "a line was lost or repeated"


def test_flush_removes_rotated_files_and_writing_goes_on(pmd: Pmd, home: Path) -> None:
    ticker(pmd, "0.002", "--max-log-size", "1K")
    out = home / "logs" / "tick-out.log"
    wait_until(lambda: len(log_set(out)) >= 3, what="rotated files")
    result = pmd.json("flush", "tick")
    assert result["message"] == "Flushed 2 log file(s)"
    assert len(log_set(out)) <= 2  # at most one rotation since the flush
    wait_until(lambda: out.stat().st_size > 0, what="lines after the flush")
    first = out.read_text().splitlines()[0].split()
    assert first[0] == str(pmd.proc("tick")["pid"])


def test_bad_log_options_are_refused_in_one_sentence(pmd: Pmd) -> None:
    cases = [
        (["--log-date-format", "yyyy-mm-dd"], "'y' is not a date token"),
        (["--log-date-format", "[only text]"], "no date or time token"),
        (["--log-date-format", "%Q"], "strftime"),
        (["--max-log-size", "100"], "1K at the least"),
        (["--max-log-size", "ten"], "max_log_size"),
        (["--max-log-files", "0"], "max_log_files"),
    ]
    for flags, message in cases:
        result = pmd.run(
            "start", child("park.py"), "--interpreter", PY, "-n", "bad", *flags, check=False
        )
        assert result.returncode == 1, (flags, result)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, (
            flags,
            result.stderr,
        )
        assert "Traceback" not in result.stderr
    assert pmd.list() == []


def test_a_line_without_newline_is_written_after_a_pause(pmd: Pmd, home: Path) -> None:
    script = "import sys,time; sys.stdout.write('prompt> '); sys.stdout.flush(); time.sleep(60)"
    pmd.start(PY, "-n", "prompt", "--", "-c", script)
    out = home / "logs" / "prompt-out.log"
    wait_until(lambda: out.read_text() == "prompt> ", what="the partial line")


def test_keeper_leaves_with_the_daemon(pmd: Pmd) -> None:
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "p")
    keeper = pmd.keeper_pid()
    assert keeper is not None and alive(keeper)
    pmd.run("kill")
    wait_until(lambda: not alive(keeper), what="the keeper gone")
