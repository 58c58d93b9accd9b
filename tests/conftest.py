from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import Pmd, Web, alive, wait_until


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def web(pmd: Pmd) -> Iterator[Callable[..., Web]]:
    """Start `pmdaemon web -p 0 ARGS` for the test's home; every one is stopped after."""
    started: list[Web] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Web:
        server = Web(pmd, *args, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def pmd(home: Path) -> Iterator[Pmd]:
    """A CLI runner with its own home. On teardown the daemon is killed and every child
    PID the test saw must be gone (survivors are killed, then the test fails)."""
    runner = Pmd(home)
    yield runner
    keeper = runner.keeper_pid()
    if keeper is not None:
        runner.seen_pids.add(keeper)  # the log keeper ends with the daemon too
    pid = runner.daemon_pid()
    if pid is not None and alive(pid):
        with contextlib.suppress(Exception):
            runner.list()
        runner.run("kill", check=False, timeout=60)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    leftover: list[int] = []
    try:
        wait_until(
            lambda: not any(alive(p) for p in runner.seen_pids),
            timeout=10,
            what="every child gone after teardown",
        )
    except AssertionError:
        leftover = [p for p in runner.seen_pids if alive(p)]
        for p in leftover:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
    assert not leftover, f"children survived teardown: {leftover}"
