"""Regression tests for defects found in review of the foundation."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import jsonschema

from helpers import PMDAEMON, Pmd, Web, alive, child, wait_until

PY = sys.executable


def refuses(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return True
    return False


def park(pmd: Pmd, name: str, *extra: str) -> dict:
    return pmd.start(child("park.py"), "--interpreter", PY, "-n", name, *extra)["processes"][0]


def test_realtime_signal_exit_is_recorded_and_restarted(pmd: Pmd) -> None:
    old = park(pmd, "rt")["pid"]
    os.kill(old, 35)
    info = pmd.wait_online("rt", not_pid=old)
    assert info["restarts"] == 1 and info["last_restart_reason"] == "killed by SIG35"


def test_delete_wins_over_a_queued_restart(pmd: Pmd, tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    pmd.start(
        child("ignore_term.py"),
        "--interpreter",
        PY,
        "-n",
        "ig",
        "--kill-timeout",
        "1500ms",
        "--",
        str(marker),
    )
    pid = wait_until(lambda: marker.exists() and int(marker.read_text()))
    pmd.seen_pids.add(pid)
    deleter = threading.Thread(target=pmd.run, args=("delete", "ig", "-f"))
    deleter.start()
    wait_until(lambda: pmd.list()[0]["status"] == "stopping", what="stopping")
    marker.unlink()
    restart = pmd.run("restart", "ig", check=False)
    deleter.join(timeout=60)
    assert restart.returncode == 1 and "deleted" in restart.stderr
    assert pmd.list() == []
    assert not alive(pid) and not marker.exists()  # no new child was spawned


def test_invalid_environment_names_are_refused_and_change_nothing(pmd: Pmd) -> None:
    info = park(pmd, "p")
    for env in ({"A=B": "x"}, {"": "x"}, {"A": "x\x00y"}):
        out = subprocess.run(
            [
                "curl",
                "-s",
                "--unix-socket",
                str(pmd.home / "daemon.sock"),
                "-X",
                "POST",
                "-H",
                "content-type: application/json",
                "-d",
                json.dumps({"env": env}),
                "http://pmdaemon/api/processes/p/restart",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        body = json.loads(out)
        assert body["code"] == "INVALID_CONFIGURATION", body
    after = pmd.proc("p")
    assert after["pid"] == info["pid"] and after["status"] == "online"


def test_commands_during_a_daemon_stop_get_answers(pmd: Pmd, tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    pmd.start(
        child("ignore_term.py"),
        "--interpreter",
        PY,
        "-n",
        "slow",
        "--kill-timeout",
        "1500ms",
        "--",
        str(marker),
    )
    pmd.seen_pids.add(wait_until(lambda: marker.exists() and int(marker.read_text())))
    old = pmd.daemon_pid()
    killer = subprocess.Popen([PMDAEMON, "kill"], env=pmd.env, stdout=subprocess.DEVNULL)
    # Every command answers, first from the stopping daemon, then from a new one; none
    # gives up or hangs while the old daemon stops its app (bounded: 100 rounds).
    statuses = []
    for _ in range(100):
        listed = json.loads(pmd.run("list", "--json").stdout)
        statuses.append(listed[0]["status"])
        if pmd.daemon_pid() not in (None, old):
            break
    killer.wait(timeout=60)
    assert "stopping" in statuses and statuses[-1] == "online", statuses
    assert pmd.daemon_pid() != old


def test_a_huge_environment_is_accepted_or_refused_clearly(pmd: Pmd) -> None:
    for i in range(12):
        pmd.env[f"BIG{i}"] = "x" * 100_000
    result = pmd.run("start", child("park.py"), "--interpreter", PY, "-n", "big", check=False)
    assert "Traceback" not in result.stderr
    if result.returncode == 0:
        assert pmd.proc("big")["status"] in ("online", "errored")
    else:
        assert result.returncode == 1 and result.stderr.startswith("error:")


def test_tail_of_a_huge_line_is_bounded_and_the_daemon_stays_responsive(
    pmd: Pmd, home: Path
) -> None:
    park(pmd, "s")
    log = home / "logs" / "s-out.log"
    with open(log, "ab") as f:
        f.write(b"x" * (60 * 1024 * 1024))
    slow = subprocess.Popen(
        [PMDAEMON, "logs", "s", "-l", "10000", "--json"],
        env=pmd.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    pmd.run("ping")  # answered while the tail is read
    out, _ = slow.communicate(timeout=60)
    assert slow.returncode == 0
    assert len(out) < 20 * 1024 * 1024


def test_stop_sends_one_sigterm(pmd: Pmd, tmp_path: Path) -> None:
    marker = tmp_path / "terms"
    pmd.start(child("count_term.py"), "--interpreter", PY, "-n", "t", "--", str(marker))
    wait_until(lambda: "ready" in (pmd.home / "logs" / "t-out.log").read_text())
    pmd.run("stop", "t")
    assert len(marker.read_text().splitlines()) == 1


def test_unicode_digits_and_empty_ids_are_clean_errors(pmd: Pmd) -> None:
    park(pmd, "p")
    for args in (
        ["info", "²"],
        ["info", "\u0660"],
        ["signal", "²", "p"],
        ["start", child("park.py"), "-n", "q", "--max-restarts", "²"],
    ):
        result = pmd.run(*args, check=False)
        assert result.returncode == 1 and "Traceback" not in result.stderr, (args, result)
    for args in (["info", ""], ["delete", "", "-f"], ["start", ""], ["stop", " "]):
        result = pmd.run(*args, check=False)
        assert result.returncode == 2 and "must not be empty" in result.stderr, (args, result)
    assert [p["name"] for p in pmd.list()] == ["p"]


def test_failed_log_opens_leak_no_descriptors(pmd: Pmd) -> None:
    park(pmd, "p")
    daemon = pmd.daemon_pid()

    def fds() -> int:
        return len(os.listdir(f"/proc/{daemon}/fd"))

    before = fds()
    for _ in range(10):
        pmd.run(
            "start",
            child("park.py"),
            "--interpreter",
            PY,
            "-n",
            "lk",
            "--error-file",
            "/proc/nope/err.log",
            check=False,
        )
        pmd.run("delete", "lk", "-f", check=False)
    assert fds() <= before + 2


def test_logs_follow_ends_cleanly_when_the_daemon_stops(pmd: Pmd) -> None:
    park(pmd, "p")
    follower = subprocess.Popen(
        [PMDAEMON, "logs", "-f"],
        env=pmd.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: pmd.json("ping")["event_subscribers"] >= 1, what="follow open")
    pmd.run("kill")
    _, err = follower.communicate(timeout=30)
    assert follower.returncode == 0 and "Traceback" not in err


def test_start_name_prefers_the_existing_process_over_a_same_named_path(
    pmd: Pmd, tmp_path: Path
) -> None:
    park(pmd, "sl")
    pmd.run("stop", "sl")
    (tmp_path / "sl").mkdir()
    result = subprocess.run(
        [PMDAEMON, "start", "sl"], env=pmd.env, cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert pmd.proc("sl")["status"] == "online"


def test_relative_interpreter_is_found_in_the_app_directory(pmd: Pmd, tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "py").symlink_to(PY)
    (tmp_path / "app.py").write_text(
        "import time\nprint('relative ok', flush=True)\ntime.sleep(3600)\n"  # sleep-ok: the app
    )
    pmd.start("app.py", "--cwd", str(tmp_path), "--interpreter", "./bin/py")
    wait_until(lambda: "relative ok" in (pmd.home / "logs" / "app-out.log").read_text())


def test_new_work_is_refused_while_the_daemon_stops(pmd: Pmd, tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    pmd.start(
        child("ignore_term.py"),
        "--interpreter",
        PY,
        "-n",
        "ig",
        "--kill-timeout",
        "1500ms",
        "--",
        str(marker),
    )
    pmd.seen_pids.add(wait_until(lambda: marker.exists() and int(marker.read_text())))
    park(pmd, "other")
    pmd.run("stop", "other")
    daemon = pmd.daemon_pid()
    assert daemon is not None
    os.kill(daemon, signal.SIGTERM)
    wait_until(lambda: pmd.json("list")[0]["status"] == "stopping", what="stopping")
    result = pmd.run("start", "other", check=False)
    assert result.returncode == 1 and "shutting down" in result.stderr
    wait_until(lambda: not alive(daemon), what="daemon exit")
    assert not any(alive(p) for p in pmd.seen_pids)


# Found by the API fuzzer (tests/fuzz/test_api_fuzz.py).


def test_method_not_allowed_names_the_allowed_methods(pmd: Pmd, web: Callable[..., Web]) -> None:
    w = web("--api-key", "k-reg")
    for method, path in (("TRACE", "/api/status"), ("POST", "/api/processes")):
        answer = httpx.request(method, w.url + path, headers={"X-API-Key": "k-reg"})
        assert answer.status_code == 405
        allowed = {m.strip() for m in answer.headers.get("allow", "").split(",")}
        assert "GET" in allowed, (method, path, answer.headers)


def test_a_null_port_in_a_restart_body_is_what_the_document_says(
    pmd: Pmd, web: Callable[..., Web]
) -> None:
    park(pmd, "a")
    w = web("--api-key", "k-reg")
    key = {"X-API-Key": "k-reg"}
    document = httpx.get(w.url + "/api/openapi.json", headers=key).json()
    port_body = document["components"]["schemas"]["PortBody"]
    documented = jsonschema.Draft202012Validator(port_body).is_valid({"port": None})
    for route in ("restart", "reload"):
        answer = httpx.post(
            f"{w.url}/api/processes/a/{route}", json={"port": None}, headers=key, timeout=60
        )
        assert answer.status_code == (200 if documented else 400), (route, answer.text)
