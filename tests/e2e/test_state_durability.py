"""SIGKILL of the daemon in the middle of a burst of commands never leaves an unreadable
state file (issue 2, item 7)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from helpers import PMDAEMON, Pmd, alive, child, wait_until

PY = sys.executable
ROUNDS = 5
COMMANDS = 100


def check_state(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_bytes())
    assert data["version"] == 1
    ids = [p["id"] for p in data["processes"]]
    names = [p["spec"]["name"] for p in data["processes"]]
    assert len(set(ids)) == len(ids) and len(set(names)) == len(names)
    assert all(i < data["next_id"] for i in ids)
    return data


class Burst(threading.Thread):
    """Up to COMMANDS start/stop commands on five names, as fast as the CLI goes."""

    def __init__(self, pmd: Pmd, marker: Path) -> None:
        super().__init__()
        self.pmd, self.marker = pmd, marker
        self.sent = 0
        self.halt = threading.Event()

    def run(self) -> None:
        for i in range(COMMANDS):
            if self.halt.is_set():
                return
            name = f"p{i % 5}"
            if i % 10 == 0:
                args = ["start", name]
            elif i % 2 == 0:
                park = child("park.py")
                args = ["start", park, "--interpreter", PY, "-n", name, "--", str(self.marker)]
            else:
                args = ["stop", name]
            subprocess.run(
                [PMDAEMON, *args],
                env=self.pmd.env,
                capture_output=True,
                stdin=subprocess.DEVNULL,
                timeout=60,
            )
            self.sent += 1


def kill_daemon_mid_burst(pmd: Pmd, home: Path, marker: Path, after: int) -> None:
    burst = Burst(pmd, marker)
    burst.start()
    try:
        wait_until(lambda: burst.sent >= after, timeout=60, what="commands sent")
        pid = pmd.daemon_pid()
        assert pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not alive(pid), what="daemon dead")
        check_state(home / "state.json")
        if (home / "state.json.prev").exists():
            check_state(home / "state.json.prev")
    finally:
        burst.halt.set()
        burst.join(timeout=120)


def test_sigkill_during_a_burst_keeps_state_readable(pmd: Pmd, home: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pids"
    rng = random.Random(1234)
    for _ in range(ROUNDS):
        kill_daemon_mid_burst(pmd, home, marker, after=rng.randrange(5, 60))
        pmd.list()  # the next daemon loads what was saved
        check_state(home / "state.json")
    # Apps of killed daemons were adopted or recorded in the marker file: end them all.
    pmd.run("delete", "all", "-f")
    if marker.exists():
        pmd.seen_pids.update(int(p) for p in marker.read_text().split())
