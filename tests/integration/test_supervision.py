"""The supervision core in-process, with real children and a real event loop (no HTTP)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop

from helpers import alive, child
from pmdaemon import proctree
from pmdaemon.events import EventBus
from pmdaemon.model import Desired, ProcessState
from pmdaemon.paths import Home
from pmdaemon.store import Store
from pmdaemon.supervisor import Supervisor

T = TypeVar("T")
PY = sys.executable


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    return uvloop.run(coro_fn())  # type: ignore[no-any-return]


async def until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last {value!r}")
        await asyncio.sleep(0.01)  # sleep-ok: the poll interval of a deadline loop


def make_supervisor(tmp_path: Path) -> Supervisor:
    home = Home(tmp_path / "home")
    home.logs_dir.mkdir(parents=True, exist_ok=True)
    store = Store(home.state_file, home.previous_state_file)
    return Supervisor(home, store, EventBus(), metrics_interval=0.05)


def park(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "script": child("park.py"), "interpreter": PY, **extra}


def test_crash_restart_is_event_driven_and_publishes_states(tmp_path: Path) -> None:
    async def main() -> None:
        sup = make_supervisor(tmp_path)
        events = sup.bus.subscribe()
        [proc] = await sup.create(park("p"), dict(os.environ), str(tmp_path))
        old = proc.pid
        assert old is not None and proc.state == ProcessState.ONLINE
        os.kill(old, signal.SIGKILL)
        await until(lambda: proc.pid not in (None, old), what="new pid")
        assert proc.restarts == 1 and proc.last_restart_reason == "killed by SIGKILL"
        seen, lifecycle = [], []
        while not events.queue.empty():
            event = events.queue.get_nowait()
            assert event is not None
            if event.type == "process_status":
                seen.append(event.data["status"])
            else:  # PMDaemon's process_event, with what its details name
                assert event.type == "process_event" and event.data["process"] == "p"
                lifecycle.append((event.data["event"], sorted(event.data["details"])))
        assert seen == ["starting", "online", "restarting", "starting", "online"]
        assert lifecycle == [
            ("started", ["pid", "port", "startup_time"]),
            ("crashed", ["exit_code", "signal"]),
            ("restarted", ["pid", "port", "startup_time"]),
        ]
        await sup.restart("p")  # a manual restart says why on its transitions too
        reasons = []
        while not events.queue.empty():
            event = events.queue.get_nowait()
            assert event is not None
            if event.type == "process_status":
                reasons.append((event.data["status"], event.data["reason"]))
        assert ("stopping", "manual") in reasons and ("starting", "manual") in reasons
        await sup.shutdown()
        assert not alive(proc.pid or old)

    run(main)


def test_backoff_crash_loop_reaches_errored(tmp_path: Path) -> None:
    async def main() -> None:
        sup = make_supervisor(tmp_path)
        config = {
            "name": "c",
            "script": child("exit_code.py"),
            "interpreter": PY,
            "args": ["2"],
            "exp_backoff_restart_delay": "20ms",
            "max_restarts": 3,
        }
        [proc] = await sup.create(config, dict(os.environ), str(tmp_path))
        await until(lambda: proc.state == ProcessState.ERRORED, what="errored")
        assert proc.restarts == 3 and proc.exit_code == 2
        assert [r.reason for r in proc.history] == ["exited with code 2"] * 3

    run(main)


def test_kill_tree_reaches_escaped_descendants(tmp_path: Path) -> None:
    marker = tmp_path / "pids"

    async def main() -> None:
        popen = subprocess.Popen(
            [PY, child("tree.py"), str(marker), "ignore"], start_new_session=True
        )
        await until(marker.exists, what="marker")
        pids = [int(p) for p in marker.read_text().split()]
        exited = asyncio.Event()
        loop = asyncio.get_running_loop()
        fd = os.pidfd_open(popen.pid)

        def on_exit() -> None:
            loop.remove_reader(fd)
            popen.wait()
            exited.set()

        loop.add_reader(fd, on_exit)
        await proctree.kill_tree(popen.pid, exited, signal.SIGTERM, 0.2)
        os.close(fd)
        assert [p for p in pids if alive(p)] == []

    run(main)


def test_boot_adopts_live_children_and_rejects_reused_pids(tmp_path: Path) -> None:
    async def first() -> tuple[int, int]:
        sup = make_supervisor(tmp_path)
        [a] = await sup.create(park("a"), dict(os.environ), str(tmp_path))
        [b] = await sup.create(park("b"), dict(os.environ), str(tmp_path))
        sup.save()
        assert a.pid and b.pid
        return a.pid, b.pid

    a_pid, real_b = run(first)
    # b died with the daemon, and its PID now belongs to another program: recorded as b's
    # PID, with a start time that does not match (and none of b's environment).
    os.kill(real_b, signal.SIGKILL)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMDAEMON_")}
    foreign = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    b_pid = foreign.pid
    state = Store(tmp_path / "home" / "state.json", tmp_path / "home" / "x").load()
    state.processes[1].pid = b_pid
    state.processes[1].pid_start_ticks = (proctree.start_ticks(b_pid) or 0) - 1
    Store(tmp_path / "home" / "state.json", tmp_path / "home" / "state.json.prev").save(state)

    async def second() -> None:
        sup = make_supervisor(tmp_path)
        sup.load()
        await sup.boot()
        a, b = sup.sorted()
        assert a.pid == a_pid and a.state == ProcessState.ONLINE  # adopted, not restarted
        assert b.pid not in (None, b_pid)  # started anew; the "foreign" b_pid left alone
        assert alive(b_pid)
        os.kill(a_pid, signal.SIGKILL)  # an adopted child that dies is restarted
        await until(lambda: a.pid not in (None, a_pid), what="adopted child restarted")
        assert a.restarts == 1 and a.last_restart_reason == "killed by SIGKILL"
        await sup.shutdown()
        assert a.desired == Desired.RUNNING  # shutdown keeps desired states

    try:
        run(second)
    finally:
        for pid in (a_pid, real_b):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        foreign.kill()
        foreign.wait()


@pytest.mark.parametrize("count", [20])
def test_bulk_operations_run_in_parallel_and_save_once_per_step(tmp_path: Path, count: int) -> None:
    async def main() -> None:
        sup = make_supervisor(tmp_path)
        for i in range(count):
            await sup.create(park(f"p{i}", kill_timeout="3s"), dict(os.environ), str(tmp_path))
        pids = [p.pid for p in sup.sorted()]
        await sup.restart("all")
        assert all(p.state == ProcessState.ONLINE for p in sup.sorted())
        assert not any(pid in [p.pid for p in sup.sorted()] for pid in pids)
        await sup.stop("all")
        assert all(p.pid is None for p in sup.sorted())
        assert not any(alive(pid) for pid in pids if pid)

    run(main)


def test_metrics_sum_the_tree(tmp_path: Path) -> None:
    marker = tmp_path / "pids"

    async def main() -> None:
        sup = make_supervisor(tmp_path)
        [proc] = await sup.create(
            {"name": "t", "script": child("tree.py"), "interpreter": PY, "args": [str(marker)]},
            dict(os.environ),
            str(tmp_path),
        )
        await until(marker.exists, what="tree")
        sup.sample()
        single = await until(lambda: proc.memory_usage, what="rss")
        own = proctree.read_stat(proc.pid or 0)
        assert own is not None and single > own.rss_pages * os.sysconf("SC_PAGE_SIZE")
        await sup.shutdown()

    run(main)


def test_a_stop_right_after_another_finds_the_whole_new_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stops share one reading of /proc for a moment; a tree that started after that
    reading (or grew since) must still be found whole."""
    monkeypatch.setattr(proctree, "SHARED_FOR", 3600.0)  # the shared reading never expires
    marker = tmp_path / "pids"

    async def main() -> None:
        sup = make_supervisor(tmp_path)
        proctree.shared_table(fresh=True)  # taken before the tree exists
        [proc] = await sup.create(
            {"name": "t", "script": child("tree.py"), "interpreter": PY, "args": [str(marker)]},
            dict(os.environ),
            str(tmp_path),
        )
        await until(marker.exists, what="tree")
        pids = [int(p) for p in marker.read_text().split()]
        await proc.stop()
        await until(lambda: not any(alive(p) for p in pids), what="the whole tree gone")
        await sup.shutdown()

    run(main)
