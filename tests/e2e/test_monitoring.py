"""Metrics of process trees, memory limits, the system view and `monit` (issue 6)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import psutil
import pytest

from helpers import PMDAEMON, Pmd, Web, child, wait_until

PY = sys.executable
MiB = 1024 * 1024


def test_memory_cpu_and_grandchildren_are_measured(pmd: Pmd) -> None:
    pmd.start(child("hog.py"), "--interpreter", PY, "-n", "hog", "--", "50", "220")
    pmd.start(child("spin.py"), "--interpreter", PY, "-n", "spin")
    pmd.start(child("hog_tree.py"), "--interpreter", PY, "-n", "tree", "--", "120")
    hog = wait_until(
        lambda: (p := pmd.proc("hog"))["memory_usage"] >= 200 * MiB and p,
        timeout=30,
        what="200 MB seen",
    )
    assert hog["memory_usage"] < 400 * MiB
    wait_until(lambda: pmd.proc("spin")["cpu_usage"] >= 80, timeout=30, what="a busy core")
    tree = wait_until(
        lambda: (p := pmd.proc("tree"))["memory_usage"] >= 120 * MiB and p,
        timeout=30,
        what="the grandchild's memory counted",
    )
    root = psutil.Process(tree["pid"])
    assert root.memory_info().rss < 60 * MiB  # the parent alone is small
    assert "MiB" in pmd.run("list").stdout


def test_max_memory_restarts_within_two_seconds(pmd: Pmd, tmp_path: Path) -> None:
    marker = tmp_path / "crossed"
    pmd.start(
        child("hog.py"),
        "--interpreter",
        PY,
        "-n",
        "grow",
        "--max-memory",
        "100M",
        "--",
        "10",
        "160",
        "100",
        str(marker),
    )
    pmd.start(
        child("hog.py"),
        "--interpreter",
        PY,
        "-n",
        "small",
        "--max-memory",
        "100M",
        "--",
        "10",
        "60",
    )
    info = wait_until(
        lambda: (p := pmd.proc("grow"))["restarts"] >= 1 and p,
        timeout=30,
        what="restarted for memory",
    )
    reason = info["restart_history"][0]["reason"]
    assert reason.startswith("memory limit (used ") and "> limit 100.0 MiB)" in reason
    assert info["last_restart_reason"].startswith("memory limit")
    crossed = float(marker.read_text().split()[0])
    restarted = datetime.fromisoformat(
        info["restart_history"][0]["at"].replace("Z", "+00:00")
    ).timestamp()
    assert restarted - crossed < 2.0, restarted - crossed
    small = pmd.proc("small")
    wait_until(lambda: pmd.proc("small")["memory_usage"] >= 55 * MiB, timeout=30)
    assert pmd.proc("small")["restarts"] == 0 and small["status"] == "online"


def test_system_view_matches_the_host(pmd: Pmd, web: Callable[..., Web]) -> None:
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "p")
    w = web("--api-key", "k")
    system = httpx.get(f"{w.url}/api/system", headers={"X-API-Key": "k"}).json()
    assert system["hostname"] == socket.gethostname()
    assert system["platform"] == sys.platform.rstrip("0123456789")
    assert system["arch"] == os.uname().machine
    assert system["cpu"]["cores"] == psutil.cpu_count()
    assert 0 <= system["cpu"]["usage"] <= 100
    load = system["cpu"]["load_average"]
    assert len(load) == 3 and all(x >= 0 for x in load)
    assert [system["load"][k] for k in ("one", "five", "fifteen")] == load
    mem = psutil.virtual_memory()
    assert system["memory"]["total"] == mem.total
    assert 0 < system["memory"]["used"] < mem.total
    assert 0 <= system["memory"]["usage_percent"] <= 100
    assert system["memory"]["available"] == system["memory"]["free"]
    disk = psutil.disk_usage("/")
    assert system["disk"]["total"] == disk.total
    assert abs(system["disk"]["used"] - disk.used) < 1024**3
    assert abs(system["uptime_seconds"] - (time.time() - psutil.boot_time())) < 30
    assert system["processes"]["online"] == 1 and system["processes"]["total"] == 1


@pytest.fixture
def tmux(pmd: Pmd) -> Iterator[Callable[..., str]]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed (scripts/test installs it)")
    socket_name = f"pmd-test-{os.getpid()}-{time.monotonic_ns()}"

    def run(*args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", socket_name, *args],
            capture_output=True,
            text=True,
            timeout=30,
            env=pmd.env,
        ).stdout

    yield run
    run("kill-server")


def test_monit_under_tmux(pmd: Pmd, tmux: Callable[..., str]) -> None:
    pmd.start(child("spew.py"), "--interpreter", PY, "-n", "alpha", "--", "5")
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "beta")
    tmux(
        "new-session",
        "-d",
        "-x",
        "150",
        "-y",
        "45",
        f"{PMDAEMON} monit -i 0.5; echo MONIT-EXIT:$?; sleep 60",
    )

    def screen() -> str:
        return tmux("capture-pane", "-p")

    def drawn() -> str | None:
        text = screen()
        return text if "beta" in text and "load" in text else None

    def exited() -> str | None:
        text = screen()
        return text if "MONIT-EXIT:" in text else None

    first = wait_until(drawn, what="monit drawn")
    assert "pmdaemon monit" in first and "alpha" in first and "online" in first
    assert "logs: alpha" in first and "line 4" in first
    # Values change between redraws (uptime, CPU, load...).
    wait_until(lambda: screen() != first, what="a redraw with new values")
    tmux("send-keys", "Down")
    wait_until(lambda: "logs: beta" in screen(), what="selection moves")
    tmux("send-keys", "q")
    after = wait_until(exited, what="monit exits")
    assert "MONIT-EXIT:0" in after
    assert "pmdaemon monit" not in after  # the alternate screen is gone: terminal restored


def test_monit_refuses_without_a_terminal(pmd: Pmd) -> None:
    result = pmd.run("monit", check=False)
    assert result.returncode == 2 and "terminal" in result.stderr
