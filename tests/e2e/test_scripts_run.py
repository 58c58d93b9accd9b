"""scripts/run's start half, scripts/start-examples, run as it is against a temporary home:
the example apps on the ports the environment chooses, a busy port refused in one sentence
before anything starts, and no daemon left behind when a start fails (issue 17)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import Pmd, child, free_range, wait_until

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "start-examples"


def run_script(pmd: Pmd, **ports: int | str) -> subprocess.CompletedProcess[str]:
    env = {**pmd.env, **{name: str(value) for name, value in ports.items()}}
    return subprocess.run(
        [sys.executable, str(SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def no_daemon(pmd: Pmd) -> None:
    assert pmd.run("ping", check=False).returncode == 3
    assert not (pmd.home / "daemon.sock").exists()
    assert not (pmd.home / "daemon.pid").exists()


@pytest.fixture
def ports() -> Iterator[dict[str, int | str]]:
    first = free_range(4)
    yield {"WEB_PORTS": f"{first}-{first + 1}", "HEALTH_PORT": first + 2, "API_PORT": first + 3}


def test_the_example_apps_start_on_the_ports_asked_for_and_the_hints_name_them(
    pmd: Pmd, ports: dict[str, int | str]
) -> None:
    web_0 = int(str(ports["WEB_PORTS"]).split("-")[0])
    result = run_script(pmd, **ports)
    assert result.returncode == 0, result.stderr
    procs = {p["name"]: p for p in pmd.list()}
    assert {name: p["port"] for name, p in procs.items()} == {
        "worker": None,
        "web-0": web_0,
        "web-1": web_0 + 1,
        "health": ports["HEALTH_PORT"],
    }
    assert all(p["status"] == "online" for p in procs.values())
    out = result.stdout
    assert f"http://127.0.0.1:{ports['API_PORT']}/api/processes" in out
    assert f"curl -s 127.0.0.1:{web_0 + 1}" in out
    assert f"curl -s 127.0.0.1:{ports['HEALTH_PORT']}/health" in out
    assert f"http://127.0.0.1:{ports['API_PORT']}/ui/" in out
    assert ":8080" not in out and ":8081" not in out  # the test's ports are 20000 and up
    # The hint is true: web-1 answers there.
    answer = wait_until(
        lambda: json.load(urllib.request.urlopen(f"http://127.0.0.1:{web_0 + 1}/", timeout=5)),
        what="web-1 answers on its port",
    )
    assert answer["pid"] == procs["web-1"]["pid"]

    # Again with other ports: the apps exist, keep theirs, and the hints say which.
    again = run_script(pmd, **{**ports, "WEB_PORTS": "auto:20000-20100"})
    assert again.returncode == 0, again.stderr
    assert "existed already and kept their configuration" in again.stderr
    assert f"curl -s 127.0.0.1:{web_0 + 1}" in again.stdout
    pmd.list()  # the teardown checks that every PID seen is gone


def test_a_busy_port_is_one_sentence_and_starts_nothing(
    pmd: Pmd, ports: dict[str, int | str]
) -> None:
    web_0 = int(str(ports["WEB_PORTS"]).split("-")[0])
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", web_0 + 1))
        holder.listen()
        result = run_script(pmd, **ports)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: port {web_0 + 1} (web-1) is in use by ")
    assert "choose other ports with WEB_PORTS, e.g. `WEB_PORTS=" in lines[0]
    no_daemon(pmd)

    # The API's port too, before the apps take theirs.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(ports["API_PORT"])))
        holder.listen()
        result = run_script(pmd, **ports)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: port {ports['API_PORT']} (the web API) is in use")
    assert "API_PORT" in result.stderr.split(":", 2)[2]
    no_daemon(pmd)


def test_a_failed_start_kills_the_daemon_it_started(pmd: Pmd, ports: dict[str, int | str]) -> None:
    """The host says the port is free, but the daemon, once started, restores an app that
    holds it: the start is refused and the daemon this run started is gone again."""
    port = int(ports["HEALTH_PORT"])
    pmd.start(child("park.py"), "--interpreter", sys.executable, "-n", "other", "-p", str(port))
    pmd.list()
    pmd.run("kill")
    result = run_script(pmd, **ports)
    assert result.returncode == 1
    assert f"port {port} is held by process 'other'" in result.stderr
    assert "HEALTH_PORT" in result.stderr
    no_daemon(pmd)
    # What was saved is still there for the next start, and nothing more.
    saved = json.loads((pmd.home / "state.json").read_text())
    assert [p["spec"]["name"] for p in saved["processes"]] == ["other"]
