from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import Pmd, Web, shut_down


def _restore_hypothesis_printer() -> None:
    """Schemathesis (tests/fuzz) swaps Hypothesis' printer of failing examples for a no-op,
    for every test of the session, as soon as its pytest plugin loads: without this, each
    property test reports `Failing test case: test_x(a=, b=)`. Run its swap now (it happens
    once) and undo it."""
    try:
        from schemathesis.generation.hypothesis import setup
    except ImportError:
        return
    import hypothesis.core
    from hypothesis.vendor import pretty

    setup()
    hypothesis.core.RepresentationPrinter = pretty.RepresentationPrinter


_restore_hypothesis_printer()


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
    shut_down(runner)


@pytest.fixture
def throwaway_user() -> Iterator[str]:
    """An account made for this test and removed after it (needs root and useradd). Ask
    for it before `pmd`, so that the daemon and its children are gone before userdel."""
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("running a process as another user needs root and useradd")
    name = f"pmdt{os.getpid() % 100000}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/false", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False)
