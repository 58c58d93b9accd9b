"""Clusters on port ranges, automatic ports, conflicts, scale and rolling reload (issue 5)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import Pmd, alive, child, free_range, wait_until

PY = sys.executable


def answer(port: int) -> dict[str, Any] | None:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def cluster_args(name: str, count: int, port: str, script: str | None = None) -> list[str]:
    script = script or child("http_app.py")
    return [script, "--interpreter", PY, "-n", name, "-i", str(count), "-p", port]


def refused_start(pmd: Pmd, name: str, count: int, port: str) -> Any:
    """`start http_app.py -n NAME -i COUNT -p PORT` expected to fail: its result."""
    return pmd.run("start", *cluster_args(name, count, port), check=False)


def cluster(
    pmd: Pmd, name: str, count: int, port: str, *extra: str, script: str | None = None
) -> list[dict[str, Any]]:
    result = pmd.start(*cluster_args(name, count, port, script), *extra)
    return result["processes"]  # type: ignore[no-any-return]


def test_instances_on_a_range_each_answer_on_their_port(pmd: Pmd) -> None:
    first = free_range(4)
    procs = cluster(pmd, "web", 4, f"{first}-{first + 3}")
    assert [p["name"] for p in procs] == ["web-0", "web-1", "web-2", "web-3"]
    assert [p["port"] for p in procs] == [first + i for i in range(4)]
    for i, proc in enumerate(procs):
        seen = wait_until(lambda port=first + i: answer(port), what=f"instance {i}")
        assert seen["pid"] == proc["pid"]
        assert seen["PORT"] == str(first + i)
        assert seen["PM2_INSTANCE_ID"] == seen["NODE_APP_INSTANCE"] == str(i)
        assert seen["PMDAEMON_INSTANCE"] == str(i) and seen["PMDAEMON_NAME"] == f"web-{i}"
    table = pmd.run("list").stdout
    assert all(f"web-{i}" in table and str(first + i) in table for i in range(4))


def test_auto_ports_skip_managed_and_foreign_listeners_and_persist(pmd: Pmd) -> None:
    first = free_range(8)
    pmd.start(child("http_app.py"), "--interpreter", PY, "-n", "holder", "-p", str(first))
    foreign = socket.socket()
    foreign.bind(("127.0.0.1", first + 1))
    foreign.listen()
    try:
        a = cluster(pmd, "a", 2, f"auto:{first}-{first + 7}")
        b = cluster(pmd, "b", 1, f"auto:{first}-{first + 7}")
    finally:
        foreign.close()
    ports = [p["port"] for p in a + b]
    assert ports == [first + 2, first + 3, first + 4]
    before = {p["name"]: p["port"] for p in pmd.list()}
    daemon = pmd.daemon_pid()
    assert daemon is not None
    os.kill(daemon, signal.SIGTERM)
    wait_until(lambda: not alive(daemon), what="daemon exit")
    assert {p["name"]: p["port"] for p in pmd.list()} == before  # a new daemon, same ports
    assert wait_until(lambda: answer(first + 4))["PORT"] == str(first + 4)


def test_conflicts_are_refused_and_nothing_starts(pmd: Pmd) -> None:
    first = free_range(4)
    pmd.start(child("http_app.py"), "--interpreter", PY, "-n", "holder", "-p", str(first))
    result = refused_start(pmd, "web", 2, f"{first}-{first + 1}")
    assert result.returncode == 1 and "held by process 'holder'" in result.stderr
    foreign = socket.socket()
    foreign.bind(("127.0.0.1", first + 2))
    foreign.listen()
    try:
        result = refused_start(pmd, "web", 2, f"{first + 1}-{first + 2}")
        assert result.returncode == 1 and "in use by" in result.stderr
        assert "pid" in result.stderr or "another program" in result.stderr
    finally:
        foreign.close()
    result = refused_start(pmd, "web", 4, f"{first + 1}-{first + 2}")
    assert result.returncode == 1 and "2 port(s) for 4 instances" in result.stderr
    result = refused_start(pmd, "web", 3, str(first + 1))
    assert result.returncode == 1 and "give a range" in result.stderr
    assert [p["name"] for p in pmd.list()] == ["holder"]


def test_a_cluster_that_cannot_fully_start_leaves_nothing(pmd: Pmd, tmp_path: Path) -> None:
    first = free_range(3)
    result = pmd.run(
        "start",
        child("http_app.py"),
        "--interpreter",
        PY,
        "-n",
        "web",
        "-i",
        "3",
        "-p",
        f"{first}-{first + 2}",
        "--cwd",
        str(tmp_path / "gone"),
        check=False,
    )
    assert result.returncode == 1 and "does not exist" in result.stderr
    assert pmd.list() == []


def test_group_commands_act_on_every_instance(pmd: Pmd) -> None:
    first = free_range(3)
    procs = cluster(pmd, "web", 3, f"{first}-{first + 2}")
    pids = [p["pid"] for p in procs]
    info = pmd.json("info", "web")
    assert [p["name"] for p in info] == ["web-0", "web-1", "web-2"]
    pmd.run("restart", "web")
    assert not any(p["pid"] in pids for p in pmd.list())
    pmd.run("stop", "web")
    assert {p["status"] for p in pmd.list()} == {"stopped"}
    pmd.run("start", "web")
    assert {p["status"] for p in pmd.list()} == {"online"}
    assert [p["port"] for p in pmd.list()] == [first, first + 1, first + 2]  # kept
    pmd.run("delete", "web")
    assert pmd.list() == []
    # Deleting freed the ports.
    assert [p["port"] for p in cluster(pmd, "again", 3, f"{first}-{first + 2}")] == [
        first,
        first + 1,
        first + 2,
    ]


def test_runtime_port_override_is_for_one_run(pmd: Pmd) -> None:
    first = free_range(4)
    cluster(pmd, "web", 2, f"{first}-{first + 1}")
    pmd.run("restart", "web", "--port", f"{first + 2}-{first + 3}")
    assert [p["port"] for p in pmd.list()] == [first + 2, first + 3]
    assert wait_until(lambda: answer(first + 3))["PORT"] == str(first + 3)
    info = pmd.json("info", "web")
    assert [p["configured_port"] for p in info] == [first, first + 1]
    assert {p["config"]["port"] for p in info} == {f"{first}-{first + 1}"}
    pmd.run("restart", "web")
    assert [p["port"] for p in pmd.list()] == [first, first + 1]
    result = pmd.run("restart", "web", "--port", str(first + 2), check=False)
    assert result.returncode == 1 and "cannot share one port" in result.stderr


def test_scale_up_and_down_following_the_port_spec(pmd: Pmd) -> None:
    first = free_range(6)
    cluster(pmd, "web", 4, f"{first}-{first + 5}")
    pmd.run("scale", "web", "6")
    procs = pmd.list()
    assert [p["name"] for p in procs] == [f"web-{i}" for i in range(6)]
    assert [p["port"] for p in procs] == [first + i for i in range(6)]
    assert wait_until(lambda: answer(first + 5))["PMDAEMON_INSTANCE"] == "5"
    gone = [p["pid"] for p in procs[2:]]
    pmd.run("scale", "web", "2")
    assert [p["name"] for p in pmd.list()] == ["web-0", "web-1"]
    assert not any(alive(pid) for pid in gone)
    result = pmd.run("scale", "web", "7", check=False)
    assert result.returncode == 1 and "no room" in result.stderr
    assert [p["name"] for p in pmd.list()] == ["web-0", "web-1"]
    assert all(p["config"]["instances"] == 2 for p in pmd.json("info", "web"))


class Prober(threading.Thread):
    """Hit every port in a bounded loop; remember how many answered and which pids."""

    def __init__(self, ports: list[int], limit: float = 60.0) -> None:
        super().__init__()
        self.ports = ports
        self.halt = threading.Event()
        self.rounds: list[dict[int, int | None]] = []
        self.deadline = time.monotonic() + limit

    def run(self) -> None:
        with httpx.Client(timeout=1) as client:
            while not self.halt.is_set() and time.monotonic() < self.deadline:
                seen: dict[int, int | None] = {}
                for port in self.ports:
                    try:
                        seen[port] = client.get(f"http://127.0.0.1:{port}/").json()["pid"]
                    except (httpx.HTTPError, ValueError):
                        seen[port] = None
                self.rounds.append(seen)


def test_rolling_reload_keeps_three_of_four_serving(pmd: Pmd, tmp_path: Path) -> None:
    first = free_range(4)
    ports = [first + i for i in range(4)]
    script = tmp_path / "app.py"
    shutil.copy(child("http_app.py"), script)
    procs = cluster(
        pmd, "web", 4, f"{first}-{first + 3}", "--min-uptime", "700ms", script=str(script)
    )
    old = [p["pid"] for p in procs]
    for port in ports:
        wait_until(lambda port=port: answer(port), what=f"port {port}")
    prober = Prober(ports)
    prober.start()
    try:
        wait_until(lambda: len(prober.rounds) > 3, what="probing")
        pmd.run("reload", "web", timeout=120)
    finally:
        prober.halt.set()
        prober.join(timeout=30)
    new = [p["pid"] for p in pmd.list()]
    assert not set(old) & set(new)
    answered = [sum(pid is not None for pid in r.values()) for r in prober.rounds]
    assert min(answered) >= 3, answered
    # Order: an instance is replaced only once every earlier one already answers as new.
    for round_ in prober.rounds:
        replaced = [round_[port] in new for port in ports]
        if True in replaced:
            last = max(i for i, r in enumerate(replaced) if r)
            assert all(replaced[i] or round_[ports[i]] is None for i in range(last)), round_
    assert {p["last_restart_reason"] for p in pmd.list()} == {"reload"}


def test_reload_stops_at_the_first_broken_instance(pmd: Pmd, tmp_path: Path) -> None:
    first = free_range(4)
    script = tmp_path / "app.py"
    shutil.copy(child("http_app.py"), script)
    procs = cluster(
        pmd, "web", 4, f"{first}-{first + 3}", "--min-uptime", "700ms", script=str(script)
    )
    for i in range(4):
        wait_until(lambda port=first + i: answer(port), what="serving")
    script.write_text("import sys\nsys.exit(3)\n")  # the next start of the app fails
    result = pmd.run("reload", "web", check=False, timeout=120)
    assert result.returncode == 1
    assert "web-0" in result.stderr and "exited with code 3" in result.stderr
    assert "web-1, web-2, web-3" in result.stderr
    for i in range(1, 4):
        seen = answer(first + i)
        assert seen is not None and seen["pid"] == procs[i]["pid"]


@pytest.mark.parametrize("body", ['{"port": "abc"}', '{"port": "1-2-3"}'])
def test_cluster_bad_ports_over_the_control_socket(pmd: Pmd, body: str) -> None:
    first = free_range(2)
    cluster(pmd, "web", 2, f"{first}-{first + 1}")
    import subprocess

    out = subprocess.run(
        [
            "curl",
            "-s",
            "--unix-socket",
            str(pmd.home / "daemon.sock"),
            "-X",
            "POST",
            "-d",
            body,
            "http://x/api/processes/web/restart",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out)["code"] == "INVALID_CONFIGURATION"


# -- regressions from review -------------------------------------------------------------


def test_start_file_never_removes_an_existing_cluster(pmd: Pmd, tmp_path: Path) -> None:
    first = free_range(2)
    script = tmp_path / "app.py"
    shutil.copy(child("http_app.py"), script)
    path = tmp_path / "eco.json"
    path.write_text(
        json.dumps(
            {
                "apps": [
                    {
                        "name": "web",
                        "script": str(script),
                        "interpreter": PY,
                        "instances": 2,
                        "port": f"{first}-{first + 1}",
                    }
                ]
            }
        )
    )
    pmd.run("start", str(path))
    pmd.run("stop", "web-1")
    script.unlink()  # web-1 cannot start again
    result = pmd.run("start", str(path), check=False)
    assert result.returncode == 1
    assert [p["name"] for p in pmd.list()] == ["web-0", "web-1"]
    assert pmd.proc("web-0")["status"] == "online"


def test_override_ports_are_reserved_for_the_whole_reload(pmd: Pmd) -> None:
    first = free_range(4)
    cluster(pmd, "web", 2, f"{first}-{first + 1}", "--min-uptime", "1500ms")
    reload = threading.Thread(
        target=pmd.run, args=("reload", "web", "-p", f"{first + 2}-{first + 3}")
    )
    reload.start()
    try:
        wait_until(lambda: pmd.proc("web-0")["port"] == first + 2, what="reload underway")
        result = pmd.run(
            "start",
            child("http_app.py"),
            "--interpreter",
            PY,
            "-n",
            "other",
            "-p",
            str(first + 3),
            check=False,
        )
    finally:
        reload.join(timeout=60)
    assert result.returncode == 1 and "held by process 'web-1'" in result.stderr
    assert [p["port"] for p in pmd.list()] == [first + 2, first + 3]


def test_override_host_checks(pmd: Pmd) -> None:
    first = free_range(6)
    cluster(pmd, "web", 2, f"{first}-{first + 1}")
    foreign = socket.socket()
    foreign.bind(("127.0.0.1", first + 3))
    foreign.listen()
    try:
        result = pmd.run("restart", "web", "-p", f"{first + 2}-{first + 3}", check=False)
        assert result.returncode == 1 and "in use by" in result.stderr
    finally:
        foreign.close()
    pmd.start(child("http_app.py"), "--interpreter", PY, "-n", "solo", "-p", str(first + 4))
    wait_until(lambda: answer(first + 4), what="solo serving")
    pmd.run("restart", "solo", "-p", str(first + 4))  # its own port is not "in use"
    pmd.run("reload", "web", "-p", f"auto:{first}-{first + 1}")
    assert [p["port"] for p in pmd.list()][:2] == [first, first + 1]


def test_scale_by_group_fills_gaps_and_refuses_instance_names(pmd: Pmd) -> None:
    first = free_range(4)
    cluster(pmd, "s", 4, f"{first}-{first + 3}")
    result = pmd.run("scale", "s-0", "1", check=False)
    assert result.returncode == 1 and "not a cluster's name" in result.stderr
    pmd.run("delete", "s-1")
    pmd.run("scale", "s", "4")
    procs = pmd.list()
    assert sorted(p["name"] for p in procs) == ["s-0", "s-1", "s-2", "s-3"]
    assert {p["name"]: p["port"] for p in procs}["s-1"] == first + 1


def test_cluster_log_files_are_per_instance(pmd: Pmd, tmp_path: Path) -> None:
    first = free_range(2)
    cluster(pmd, "web", 2, f"{first}-{first + 1}", "--out-file", str(tmp_path / "lg.log"))
    info = pmd.json("info", "web")
    assert [p["logs"]["out_file"] for p in info] == [
        str(tmp_path / "lg-0.log"),
        str(tmp_path / "lg-1.log"),
    ]
    wait_until(
        lambda: (
            (tmp_path / "lg-1.log").exists() and "listening" in (tmp_path / "lg-1.log").read_text()
        )
    )


def test_start_usage_errors_change_nothing(pmd: Pmd, tmp_path: Path) -> None:
    path = tmp_path / "eco.json"
    path.write_text(
        json.dumps({"apps": [{"name": "a", "script": child("park.py"), "interpreter": PY}]})
    )
    for args in (
        ["--config", str(path), "start", "./other.py"],
        ["start", child("park.py"), "--env-name", "prod"],
        ["start", str(tmp_path / "ecosystm.json")],
    ):
        result = pmd.run(*args, check=False)
        assert result.returncode == 2, (args, result)
        assert "Traceback" not in result.stderr
    assert pmd.daemon_pid() is None or pmd.list() == []
    pmd.env["PMDAEMON_ENV"] = "production"  # stop and delete do not need the profile
    pmd.env.pop("PMDAEMON_ENV")
    pmd.run("start", str(path))
    pmd.env["PMDAEMON_ENV"] = "production"
    pmd.run("stop", str(path))
    pmd.run("delete", str(path))
    assert pmd.list() == []


def test_file_message_counts_apps(pmd: Pmd, tmp_path: Path) -> None:
    first = free_range(5)
    path = tmp_path / "eco.json"
    path.write_text(
        json.dumps(
            {
                "apps": [
                    {
                        "name": "bad",
                        "script": child("http_app.py"),
                        "interpreter": PY,
                        "instances": 2,
                        "port": f"{first}-{first + 1}",
                        "cwd": str(tmp_path / "missing"),
                    },
                    {
                        "name": "good",
                        "script": child("http_app.py"),
                        "interpreter": PY,
                        "instances": 3,
                        "port": f"{first + 2}-{first + 4}",
                    },
                ]
            }
        )
    )
    result = (
        pmd.json("start", str(path))
        if False
        else pmd.run("start", str(path), "--json", check=False)
    )
    body = json.loads(result.stdout)
    assert result.returncode == 1 and body["message"] == "1 of 2 apps started"
    assert [p["name"] for p in pmd.list()] == ["good-0", "good-1", "good-2"]
