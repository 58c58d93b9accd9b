"""Chaos (issue 9 item 2): random SIGKILLs of apps and of the daemon, interleaved with CLI
and API commands, some of them cut off by the daemon's death. Throughout, after each step
settles:

- `state.json` (and its previous generation) always parse, and the next daemon loads them;
- ids and names never change;
- every process shown `online` has exactly one live run (a session leader carrying its
  id), and its PID is that run; a stopped one has none;
- nothing runs that the daemon does not show (no run of an unknown id);
- what a command that completed asked for holds (stopped stays stopped, started runs).

Bounded by CHAOS_SECONDS (default 45) of steps; CHAOS_SEED replays a run (the seed is in
the failure message)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from typing import Any

import httpx

from helpers import PMDAEMON, Pmd, Web, alive, child, free_range, tagged_runs, wait_until

PY = sys.executable
KEY = "chaos-key-0123456789abcdef"
SECONDS = float(os.environ.get("CHAOS_SECONDS", "45"))
SETTLED = {"online", "stopped", "errored"}


class Chaos:
    def __init__(self, pmd: Pmd, seed: int) -> None:
        self.pmd = pmd
        self.rng = random.Random(seed)
        self.seed = seed
        self.ids: dict[str, int] = {}  # name -> id, fixed once seen
        self.want: dict[str, str | None] = {}  # name -> "online" | "stopped" | None (either)
        self.web: Web | None = None
        self.log: list[str] = []

    # -- observation ----------------------------------------------------------------------

    def check_state_files(self) -> None:
        for name in ("state.json", "state.json.prev"):
            path = self.pmd.home / name
            if path.exists():
                data = json.loads(path.read_bytes())
                assert {p["spec"]["name"]: p["id"] for p in data["processes"]}.items() <= (
                    self.ids.items()
                ), f"{name} renamed or renumbered a process"

    def settled(self) -> list[dict[str, Any]] | None:
        procs = self.pmd.list()
        if any(p["status"] not in SETTLED for p in procs):
            return None
        runs = tagged_runs(self.pmd.home)
        for p in procs:
            expected = [p["pid"]] if p["status"] == "online" else []
            if sorted(runs.pop(p["id"], [])) != expected:
                return None
            wanted = self.want.get(p["name"])
            if wanted is not None and p["status"] != wanted:
                return None
        if runs:  # runs of ids the daemon does not show
            return None
        return procs

    def check(self) -> None:
        self.check_state_files()
        try:
            procs = wait_until(self.settled, timeout=30, what="a consistent fleet")
        except AssertionError:
            detail = {
                "list": [(p["id"], p["name"], p["status"], p["pid"]) for p in self.pmd.list()],
                "runs": tagged_runs(self.pmd.home),
                "want": self.want,
            }
            raise AssertionError(
                f"seed {self.seed}: inconsistent after {self.log[-6:]}: {detail}"
            ) from None
        seen = {p["name"]: p["id"] for p in procs}
        assert set(seen) == set(self.ids), f"seed {self.seed}: names changed: {seen}"
        assert seen == self.ids, f"seed {self.seed}: ids changed: {seen} != {self.ids}"
        self.pmd.seen_pids.update(p["pid"] for p in procs if p["pid"])
        for p in procs:  # a command cut off by a daemon kill: now we know what it did
            if self.want[p["name"]] is None:
                self.want[p["name"]] = p["status"]

    # -- actions --------------------------------------------------------------------------

    def kill_app(self) -> None:
        online = [p for p in self.pmd.list() if p["status"] == "online"]
        if online:
            victim = self.rng.choice(online)
            self.log.append(f"SIGKILL {victim['name']}")
            os.kill(victim["pid"], signal.SIGKILL)

    def kill_daemon(self, during: list[str] | None = None) -> None:
        daemon = self.pmd.daemon_pid()
        if daemon is None or not alive(daemon):
            return
        command = None
        if during:
            command = subprocess.Popen(
                [PMDAEMON, *during],
                env=self.pmd.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
            )
            time.sleep(self.rng.uniform(0, 0.08))  # sleep-ok: a random moment in the command
        self.log.append(f"SIGKILL daemon{' during ' + ' '.join(during) if during else ''}")
        os.kill(daemon, signal.SIGKILL)
        wait_until(lambda: not alive(daemon), what="daemon gone")
        if command is not None:
            command.wait(timeout=120)
            self.want[during[-1]] = None  # it may or may not have happened
        if self.web is not None:
            self.web.stop()  # it ends with its daemon
            self.web = None

    def cli(self, action: str, name: str) -> None:
        self.log.append(f"cli {action} {name}")
        self.pmd.run(action, name)
        self.want[name] = "stopped" if action == "stop" else "online"

    def api(self, action: str, name: str) -> None:
        if self.web is None:
            self.web = Web(self.pmd, "--api-key", KEY)
        self.log.append(f"api {action} {name}")
        response = httpx.post(
            f"{self.web.url}/api/processes/{name}/{action}",
            headers={"X-API-Key": KEY},
            timeout=120,
        )
        assert response.status_code == 200, (action, name, response.text)
        self.want[name] = "stopped" if action == "stop" else "online"

    def step(self) -> None:
        names = sorted(self.ids)
        roll = self.rng.random()
        if roll < 0.3:
            self.kill_app()
        elif roll < 0.45:
            self.kill_daemon()
        elif roll < 0.6:
            action = self.rng.choice(["stop", "start", "restart"])
            self.kill_daemon(during=[action, self.rng.choice(names)])
        elif roll < 0.8:
            self.cli(self.rng.choice(["stop", "start", "restart"]), self.rng.choice(names))
        else:
            self.api(self.rng.choice(["stop", "start", "restart"]), self.rng.choice(names))


def test_chaos(pmd: Pmd) -> None:
    seed = int(os.environ.get("CHAOS_SEED", str(time.time_ns() % 1_000_000)))
    chaos = Chaos(pmd, seed)
    first = free_range(2)
    common = ["--interpreter", PY, "--max-restarts", "1000", "--kill-timeout", "500ms"]
    for name in ("a", "b", "c"):
        pmd.start(child("park.py"), *common, "-n", name)
    pmd.start(child("http_app.py"), *common, "-n", "web", "-i", "2", "-p",
              f"{first}-{first + 1}")  # fmt: skip
    for p in pmd.list():
        chaos.ids[p["name"]] = p["id"]
        chaos.want[p["name"]] = "online"
    chaos.check()
    deadline = time.monotonic() + SECONDS
    steps = 0
    try:
        while time.monotonic() < deadline:
            chaos.step()
            chaos.check()
            steps += 1
    finally:
        if chaos.web is not None:
            chaos.web.stop()
    print(f"chaos seed {seed}: {steps} steps, {sum('daemon' in x for x in chaos.log)} daemon kills")
    assert steps >= 5
