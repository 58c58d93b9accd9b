"""Resource faults (issue 9 item 6): a full disk under the home, and a daemon out of file
descriptors in the middle of a spawn."""

from __future__ import annotations

import fcntl
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import Pmd, alive, child, tagged_runs, wait_until

PY = sys.executable
needs_root = pytest.mark.skipif(os.getuid() != 0, reason="needs root (mount, prlimit)")


@pytest.fixture
def home(request: pytest.FixtureRequest) -> Iterator[Path]:
    """For the full-disk test, the home is a 4 MiB tmpfs mounted by the test."""
    base = Path(tempfile.mkdtemp(prefix="pmd-fault-"))
    path = base / "home"
    path.mkdir()
    mounted = False
    if request.node.get_closest_marker("small_disk"):
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(path)], check=True)
        mounted = True
    yield path
    if mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)
    subprocess.run(["rm", "-rf", str(base)], check=False)


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def saved_names(home: Path) -> list[str]:
    data = json.loads((home / "state.json").read_bytes())
    return [p["spec"]["name"] for p in data["processes"]]


@needs_root
@pytest.mark.small_disk
def test_a_full_disk_keeps_apps_running_and_the_state_safe(pmd: Pmd, home: Path) -> None:
    ticker = pmd.start(child("ticker.py"), "--interpreter", PY, "-n", "tick", "--", "0.01")
    tick_pid = ticker["processes"][0]["pid"]
    pmd.start(child("flood.py"), "--interpreter", PY, "-n", "filler", "--", "8", "--park")
    wait_until(lambda: free_bytes(home) < 64 * 1024, what="the disk full")
    assert saved_names(home) == ["tick", "filler"]

    # The daemon answers, the apps run, and a change is made but cannot be saved.
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "extra")
    status = pmd.json("ping")
    assert status["state_saved"] is False
    assert "could not be saved" in pmd.run("ping").stdout
    assert saved_names(home) == ["tick", "filler"]  # the old generation, whole
    json.loads((home / "state.json.prev").read_bytes())
    assert not (home / "state.json.tmp").exists()
    procs = {p["name"]: p for p in pmd.list()}
    assert procs["tick"]["pid"] == tick_pid and procs["tick"]["status"] == "online"
    assert alive(tick_pid) and procs["filler"]["status"] == "online"

    # Space comes back: the state is saved by itself, the logs go on.
    out = home / "logs" / "tick-out.log"
    pmd.run("flush", "filler")
    wait_until(lambda: pmd.json("ping")["state_saved"], what="the state saved again")
    assert saved_names(home) == ["tick", "filler", "extra"]
    size = out.stat().st_size
    wait_until(lambda: out.stat().st_size > size + 100, what="tick's lines written again")


@needs_root
def test_out_of_descriptors_in_a_spawn_is_a_clear_error(pmd: Pmd, home: Path) -> None:
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "a")
    daemon = pmd.daemon_pid()
    assert daemon is not None

    def open_fds() -> int:
        return len(os.listdir(f"/proc/{daemon}/fd"))

    baseline = open_fds()
    soft, hard = resource.prlimit(daemon, resource.RLIMIT_NOFILE)
    try:
        resource.prlimit(daemon, resource.RLIMIT_NOFILE, (baseline + 3, hard))
        result = pmd.run(
            "start", child("park.py"), "--interpreter", PY, "-n", "web", "-i", "4", check=False
        )
        assert result.returncode == 1, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Too many open files" in lines[0], result.stderr
        assert "Traceback" not in result.stderr
    finally:
        resource.prlimit(daemon, resource.RLIMIT_NOFILE, (soft, hard))
    procs = pmd.list()
    assert [p["name"] for p in procs] == ["a"]  # nothing of the cluster
    wait_until(lambda: open_fds() <= baseline, what="no descriptor leaked")
    started = pmd.start(child("park.py"), "--interpreter", PY, "-n", "web", "-i", "4")
    assert [p["status"] for p in started["processes"]] == ["online"] * 4


@needs_root
def test_a_keeper_out_of_descriptors_hands_apps_their_files(pmd: Pmd, home: Path) -> None:
    """The keeper refuses a pipe it cannot hold (no descriptor left): the daemon lets that
    app append to its files itself, and nothing blocks."""
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "a")
    keeper = pmd.keeper_pid()
    assert keeper is not None
    used = len(os.listdir(f"/proc/{keeper}/fd"))
    soft, hard = resource.prlimit(keeper, resource.RLIMIT_NOFILE)
    try:
        resource.prlimit(keeper, resource.RLIMIT_NOFILE, (used, hard))
        pmd.start(child("spew.py"), "--interpreter", PY, "-n", "b", "--", "5000")
        out = home / "logs" / "b-out.log"
        wait_until(lambda: "line 4999" in out.read_text(), what="b's lines in its file")
        assert pmd.proc("b")["status"] == "online" and pmd.keeper_pid() == keeper
        assert "log pipes unavailable" in (home / "daemon.log").read_text()
    finally:
        resource.prlimit(keeper, resource.RLIMIT_NOFILE, (soft, hard))
    pmd.start(child("spew.py"), "--interpreter", PY, "-n", "c", "--", "3")
    wait_until(lambda: "line 2" in (home / "logs" / "c-out.log").read_text())
    keeper_fds = os.listdir(f"/proc/{keeper}/fd")
    assert len(keeper_fds) > used  # c went through the keeper again


def _first_free_fd(pid: int) -> int:
    used = {int(fd) for fd in os.listdir(f"/proc/{pid}/fd")}
    return next(n for n in range(len(used) + 1) if n not in used)


@needs_root
def test_a_keeper_that_refuses_a_restarts_pipes_gets_no_half_started_run(
    pmd: Pmd, home: Path
) -> None:
    """A restart hands its pipes to the keeper once the child runs; if the keeper cannot
    take them, that child is ended at once and started again writing its files itself."""
    first = pmd.start(
        child("ticker.py"), "--interpreter", PY, "-n", "t", "--restart-delay", "3s", "--", "0.01"
    )["processes"][0]["pid"]
    keeper = pmd.keeper_pid()
    assert keeper is not None
    out = home / "logs" / "t-out.log"
    wait_until(lambda: f"{first} 5\n" in out.read_text(), what="t's lines through the keeper")
    held = len(os.listdir(f"/proc/{keeper}/fd"))
    soft, hard = resource.prlimit(keeper, resource.RLIMIT_NOFILE)
    os.kill(first, signal.SIGKILL)
    # The keeper lets go of the dead run's pipes and files; then it gets no descriptor more.
    wait_until(lambda: len(os.listdir(f"/proc/{keeper}/fd")) <= held - 2, what="pipes closed")
    try:
        resource.prlimit(keeper, resource.RLIMIT_NOFILE, (_first_free_fd(keeper), hard))
        assert pmd.proc("t")["status"] == "restarting"  # the 3 s restart delay is not over
        second = pmd.wait_online("t", not_pid=first)["pid"]
        wait_until(lambda: f"{second} 5\n" in out.read_text(), what="the new run's lines")
        log_text = (home / "daemon.log").read_text()
        assert "the log keeper refused the pipes of t" in log_text
        assert pmd.proc("t")["restarts"] == 1
        # Exactly one run: the refused child is gone, the new one writes the file itself.
        assert tagged_runs(home) == {0: [second]}
        assert os.readlink(f"/proc/{second}/fd/1") == str(out)
    finally:
        resource.prlimit(keeper, resource.RLIMIT_NOFILE, (soft, hard))
    os.kill(second, signal.SIGKILL)
    third = pmd.wait_online("t", not_pid=second, timeout=15)["pid"]
    wait_until(lambda: os.readlink(f"/proc/{third}/fd/1").startswith("pipe:"), what="pipes again")
    wait_until(lambda: f"{third} 5\n" in out.read_text(), what="lines through the keeper again")


def test_with_no_keeper_to_be_had_a_restart_writes_its_files_without_a_false_start(
    pmd: Pmd, home: Path
) -> None:
    """No keeper can run (another process holds its lock): a restart's pipes are not left
    for after the spawn, and it does not wait for a keeper again; the one new run appends
    to its files itself. Once a keeper can run, the next retry starts one."""
    pmd.env["PMDAEMON_KEEPER_RETRY"] = "2"
    first = pmd.start(child("ticker.py"), "--interpreter", PY, "-n", "t", "--", "0.01")
    first_pid = first["processes"][0]["pid"]
    keeper = pmd.keeper_pid()
    assert keeper is not None
    lock = os.open(home / "logkeeper.lock", os.O_RDWR)
    holder = threading.Thread(target=fcntl.flock, args=(lock, fcntl.LOCK_EX))
    holder.start()  # waits in the kernel: it has the lock the moment the keeper dies
    try:
        os.kill(keeper, signal.SIGKILL)
        holder.join(timeout=10)
        assert not holder.is_alive()
        log = home / "daemon.log"
        wait_until(lambda: "cannot start the log keeper" in log.read_text(), timeout=30)
        os.kill(first_pid, signal.SIGKILL)
        second = pmd.wait_online("t", not_pid=first_pid, timeout=30)["pid"]
        assert tagged_runs(home) == {0: [second]}
        out = home / "logs" / "t-out.log"
        assert os.readlink(f"/proc/{second}/fd/1") == str(out)
        wait_until(lambda: f"{second} 5\n" in out.read_text(), what="the new run's lines")
        text = log.read_text()
        assert "the last one did not start" in text  # no second 5 s wait for a keeper
        assert "writes its files directly" in text and "refused the pipes" not in text
        assert pmd.proc("t")["restarts"] == 1
    finally:
        os.close(lock)  # a keeper can run again
    wait_until(
        lambda: "a log keeper runs again" in (home / "daemon.log").read_text(),
        timeout=30,
        what="the retry starting a keeper",
    )
    new_keeper = pmd.keeper_pid()
    assert new_keeper is not None and new_keeper != keeper and alive(new_keeper)
    os.kill(second, signal.SIGKILL)
    third = pmd.wait_online("t", not_pid=second, timeout=30)["pid"]
    wait_until(lambda: os.readlink(f"/proc/{third}/fd/1").startswith("pipe:"), what="pipes")
