"""A SIGKILLed daemon loses nothing (issue 9 item 1): the apps keep serving and logging, the
next daemon re-adopts them (same PIDs, no duplicate), keeps restarting them, and settles
children that its state never recorded."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import httpx

from helpers import Pmd, alive, child, free_range, tagged_runs, wait_until

PY = sys.executable


def serves(port: int) -> int | None:
    """The PID answering on ``port``, if any."""
    try:
        return int(httpx.get(f"http://127.0.0.1:{port}/", timeout=2).json()["pid"])
    except (httpx.HTTPError, ValueError, KeyError):
        return None


def kill_daemon(pmd: Pmd) -> None:
    daemon = pmd.daemon_pid()
    assert daemon is not None
    os.kill(daemon, signal.SIGKILL)
    wait_until(lambda: not alive(daemon), what="daemon gone")


def test_apps_outlive_a_sigkilled_daemon_and_are_readopted(pmd: Pmd, home: Path) -> None:
    first = free_range(3)
    pmd.start(child("http_app.py"), "--interpreter", PY, "-n", "web", "-i", "3", "-p",
              f"{first}-{first + 2}")  # fmt: skip
    for name in ("a", "b", "c"):
        pmd.start(child("park.py"), "--interpreter", PY, "-n", name)
    pmd.start(child("ticker.py"), "--interpreter", PY, "-n", "tick", "--", "0.01")
    ports = range(first, first + 3)
    wait_until(lambda: all(serves(p) for p in ports), what="the cluster serving")
    before = {p["name"]: p["pid"] for p in pmd.list()}
    assert len(before) == 7 and all(before.values())
    out = home / "logs" / "tick-out.log"

    kill_daemon(pmd)
    # Nothing runs the show, and everything goes on.
    assert all(alive(pid) for pid in before.values())
    assert [serves(p) for p in ports] == [before[f"web-{i}"] for i in range(3)]
    lines = out.read_text().count("\n")
    wait_until(lambda: out.read_text().count("\n") >= lines + 30, what="logging without daemon")

    after = pmd.list()  # any command starts a daemon, which adopts
    assert {p["name"]: p["pid"] for p in after} == before
    assert all(p["status"] == "online" for p in after)
    runs = tagged_runs(home)
    assert sorted(len(pids) for pids in runs.values()) == [1] * 7, runs  # no duplicate

    # An adopted app is supervised like any other.
    os.kill(before["b"], signal.SIGKILL)
    restarted = pmd.wait_online("b", not_pid=before["b"])
    pmd.seen_pids.add(restarted["pid"])
    assert restarted["restarts"] == 1
    info = pmd.proc("b")
    assert info["restart_history"][-1]["reason"] == "exited (status unknown)"
    os.kill(before["web-1"], signal.SIGKILL)
    wait_until(lambda: serves(first + 1) not in (None, before["web-1"]), what="web-1 back")
    numbers = [int(line.split()[1]) for line in out.read_text().splitlines()]
    assert numbers == list(range(len(numbers)))  # every line, once, while no daemon ran


def test_children_the_state_never_recorded_are_adopted_or_killed(pmd: Pmd, home: Path) -> None:
    """The window between a spawn and the state write that records it: a SIGKILL of the
    daemon there leaves a child that the state does not know. Simulated by editing the
    state while no daemon runs."""
    for name in ("keep", "gone"):
        pmd.start(child("park.py"), "--interpreter", PY, "-n", name)
    pids = {p["name"]: p["pid"] for p in pmd.list()}
    kill_daemon(pmd)
    state_file = home / "state.json"
    state = json.loads(state_file.read_text())
    for record in state["processes"]:
        if record["spec"]["name"] == "keep":
            record["pid"] = None  # spawned, not yet recorded
    state["processes"] = [r for r in state["processes"] if r["spec"]["name"] != "gone"]
    state_file.write_text(json.dumps(state))
    (home / "state.json.prev").unlink()

    procs = pmd.list()
    assert [(p["name"], p["pid"], p["status"]) for p in procs] == [("keep", pids["keep"], "online")]
    wait_until(lambda: not alive(pids["gone"]), what="the unowned run killed")
    assert list(tagged_runs(home).values()) == [[pids["keep"]]]
