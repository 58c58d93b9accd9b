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

from helpers import PMDAEMON, Pmd, alive, child, wait_until

PY = sys.executable
ROUNDS = 5
COMMANDS = 100


def check_state(path: Path) -> dict:
    data = json.loads(path.read_bytes())
    assert data["version"] == 1
    ids = [p["id"] for p in data["processes"]]
    names = [p["spec"]["name"] for p in data["processes"]]
    assert len(set(ids)) == len(ids) and len(set(names)) == len(names)
    assert all(i < data["next_id"] for i in ids)
    return data


def test_sigkill_during_a_burst_keeps_state_readable(pmd: Pmd, home: Path,
                                                      tmp_path: Path) -> None:
    markers = tmp_path / "pids"
    rng = random.Random(1234)
    for round_ in range(ROUNDS):
        done = [0]
        stop = threading.Event()

        def burst() -> None:
            for i in range(COMMANDS):
                if stop.is_set():
                    return
                name = f"p{i % 5}"
                if i % 2 == 0:
                    args = ["start", child("park.py"), "--interpreter", PY, "-n", name, "--",
                            str(markers)]
                    if i % 10 == 0:
                        args = ["start", name]
                else:
                    args = ["stop", name]
                subprocess.run([PMDAEMON, *args], env=pmd.env, capture_output=True,
                               stdin=subprocess.DEVNULL, timeout=60)
                done[0] += 1

        worker = threading.Thread(target=burst)
        worker.start()
        kill_after = rng.randrange(5, 60)
        try:
            wait_until(lambda: done[0] >= kill_after, timeout=60, what="commands sent")
            pid = pmd.daemon_pid()
            assert pid is not None
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not alive(pid), what="daemon dead")
            check_state(home / "state.json")
            if (home / "state.json.prev").exists():
                check_state(home / "state.json.prev")
        finally:
            stop.set()
            worker.join(timeout=120)
        # The next daemon loads what was saved.
        pmd.list()
        check_state(home / "state.json")
    # Apps of killed daemons are adopted or were recorded in the marker file: end them all.
    pmd.run("delete", "all", "-f")
    if markers.exists():
        pmd.seen_pids.update(int(p) for p in markers.read_text().split())
