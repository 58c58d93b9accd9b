"""The process lifecycle through the installed CLI and a real daemon (issue 2, items 2-5)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from helpers import Pmd, alive, child, wait_until

PY = sys.executable


def children_of(ppid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == ppid and fields[0] != b"Z":
                found.append(int(entry))
    return found


def test_sigkilled_app_is_restarted_by_the_daemon_alone(pmd: Pmd) -> None:
    pmd.start("python3 -m http.server 0", "-n", "web")
    [web] = pmd.list()
    assert web["name"] == "web" and web["status"] == "online" and web["pid"]
    old = web["pid"]
    daemon = pmd.daemon_pid()
    assert daemon is not None
    os.kill(old, signal.SIGKILL)
    # Observe through /proc only: no CLI runs between the kill and the new child.
    keeper = pmd.keeper_pid()  # the log keeper is the daemon's child too
    new = wait_until(
        lambda: [p for p in children_of(daemon) if p not in (old, keeper)], what="a new child"
    )
    assert not alive(old)
    info = pmd.wait_online("web")
    assert info["pid"] == new[0]
    assert info["restarts"] == 1
    assert info["last_restart_reason"] == "killed by SIGKILL"
    assert info["restart_history"][-1]["reason"] == "killed by SIGKILL"
    assert info["restart_history"][-1]["pid"] == old  # the run that ended
    assert f"killed by SIGKILL (pid {old})" in pmd.run("info", "web").stdout


def test_crash_loop_ends_errored_after_max_restarts(pmd: Pmd, home: Path) -> None:
    pmd.start_waits = True  # this test checks what start reports
    result = pmd.run(
        "start",
        child("exit_code.py"),
        "--interpreter",
        PY,
        "-n",
        "crash",
        "--max-restarts",
        "3",
        "--min-uptime",
        "1s",
        "--",
        "1",
        check=False,
    )
    # The first run ended within min_uptime: not a successful start.
    assert result.returncode == 1
    assert "crash exited within 1s of starting (exit code 1)" in result.stderr
    info = wait_until(
        lambda: (p := pmd.proc("crash"))["status"] == "errored" and p, what="crash errored"
    )
    assert info["restarts"] == 3
    assert info["pid"] is None
    assert info["exit_code"] == 1
    assert "max_restarts (3)" in info["last_error"]
    assert "max_restarts (3)" in pmd.run("info", "crash").stdout
    # It stays errored: four runs in the log, and the counters do not move.
    out = (home / "logs" / "crash-out.log").read_text().splitlines()
    assert out.count("exiting with 1") == 4
    again = pmd.proc("crash")
    assert (again["status"], again["restarts"]) == ("errored", 3)


def test_exit_zero_without_autorestart_ends_stopped(pmd: Pmd) -> None:
    pmd.run(
        "start",
        child("exit_code.py"),
        "--interpreter",
        PY,
        "-n",
        "once",
        "--no-autorestart",
        "--",
        "0",
    )
    info = wait_until(
        lambda: (p := pmd.proc("once"))["status"] == "stopped" and p, what="once stopped"
    )
    assert info["restarts"] == 0 and info["exit_code"] == 0 and info["pid"] is None


def test_stop_exit_codes_are_not_restarted(pmd: Pmd) -> None:
    pmd.run(
        "start",
        child("exit_code.py"),
        "--interpreter",
        PY,
        "-n",
        "done",
        "--stop-exit-codes",
        "0,3",
        "--",
        "3",
    )
    info = wait_until(
        lambda: (p := pmd.proc("done"))["status"] == "stopped" and p, what="done stopped"
    )
    assert info["restarts"] == 0 and info["exit_code"] == 3


def test_restart_delay_holds_the_restart(pmd: Pmd) -> None:
    pmd.start_waits = True  # this test checks what start reports
    result = pmd.run(
        "start",
        child("exit_code.py"),
        "--interpreter",
        PY,
        "-n",
        "slow",
        "--restart-delay",
        "30s",
        "--",
        "1",
        check=False,
    )
    assert result.returncode == 1 and "slow exited within 1s of starting" in result.stderr
    info = wait_until(
        lambda: (p := pmd.proc("slow"))["status"] == "restarting" and p, what="slow restarting"
    )
    assert info["restarts"] == 0 and info["pid"] is None
    # A stop during the delay cancels the pending restart.
    pmd.run("stop", "slow")
    assert pmd.proc("slow")["status"] == "stopped"


def test_a_restart_during_the_delay_records_the_run_that_ended(pmd: Pmd) -> None:
    started = pmd.start(child("park.py"), "--interpreter", PY, "-n", "p", "--restart-delay", "30s")
    crashed = started["processes"][0]["pid"]
    os.kill(crashed, signal.SIGKILL)
    wait_until(lambda: pmd.proc("p")["status"] == "restarting", what="p restarting")
    pmd.run("restart", "p")
    info = pmd.proc("p")
    assert info["status"] == "online" and info["pid"] != crashed
    assert [(r["reason"], r["pid"]) for r in info["restart_history"]] == [("manual", crashed)]


def _tree(pmd: Pmd, tmp_path: Path, name: str, *extra: str) -> list[int]:
    marker = tmp_path / f"{name}.pids"
    pmd.run(
        "start",
        child("tree.py"),
        "--interpreter",
        PY,
        "-n",
        name,
        "--kill-timeout",
        "500ms",
        "--",
        str(marker),
        *extra,
    )
    pids = wait_until(
        lambda: marker.exists() and [int(p) for p in marker.read_text().split()], what="tree marker"
    )
    pmd.seen_pids.update(pids)
    return pids


def test_stop_kills_grandchildren_and_escaped_descendants(pmd: Pmd, tmp_path: Path) -> None:
    pids = _tree(pmd, tmp_path, "tree")
    assert all(alive(p) for p in pids)
    began = time.monotonic()
    pmd.run("stop", "tree")
    elapsed = time.monotonic() - began
    assert [p for p in pids if alive(p)] == []
    assert elapsed < 0.5 + 5  # kill_timeout plus a generous margin for a busy machine
    assert pmd.proc("tree")["pid"] is None


def test_stop_kills_an_app_that_ignores_sigterm(pmd: Pmd, tmp_path: Path) -> None:
    pids = _tree(pmd, tmp_path, "stubborn", "ignore")
    pmd.run("stop", "stubborn")
    assert [p for p in pids if alive(p)] == []
    info = pmd.proc("stubborn")
    assert info["status"] == "stopped"


def test_daemon_sigterm_saves_and_next_command_restores(pmd: Pmd, home: Path) -> None:
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "keep")
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "idle")
    pmd.run("stop", "idle")
    old = pmd.proc("keep")["pid"]
    os.kill(old, signal.SIGKILL)
    pmd.wait_online("keep", not_pid=old)
    before = {p["name"]: p for p in pmd.list()}
    daemon = pmd.daemon_pid()
    assert daemon is not None
    os.kill(daemon, signal.SIGTERM)
    wait_until(lambda: not alive(daemon), what="daemon exit")
    assert not alive(before["keep"]["pid"])
    after = {p["name"]: p for p in pmd.list()}  # starts a new daemon
    assert pmd.daemon_pid() != daemon
    assert after["keep"]["status"] == "online" and after["keep"]["pid"] != before["keep"]["pid"]
    assert after["idle"]["status"] == "stopped" and after["idle"]["pid"] is None
    for name in ("keep", "idle"):
        assert after[name]["id"] == before[name]["id"]
        assert after[name]["restarts"] == before[name]["restarts"]
    assert after["keep"]["restarts"] == 1


def test_kill_reports_what_will_be_restored(pmd: Pmd) -> None:
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "a")
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "b")
    pmd.run("stop", "b")
    pid = pmd.list()[0]["pid"]
    result = pmd.json("kill")
    assert result["restore_count"] == 1
    assert not alive(pid)
    assert pmd.run("ping", check=False).returncode == 3
    assert "not running" in pmd.run("kill").stdout
