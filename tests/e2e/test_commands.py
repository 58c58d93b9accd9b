"""Every command of the foundation through the installed CLI (issue 2)."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from helpers import PMDAEMON, Pmd, alive, child, wait_until

PY = sys.executable


def park(pmd: Pmd, name: str, *extra: str) -> dict:
    return pmd.start(child("park.py"), "--interpreter", PY, "-n", name, *extra)["processes"][0]


def test_home_socket_and_state_are_owner_only(pmd: Pmd, home: Path) -> None:
    park(pmd, "p", "-e", "SECRET=hunter2")
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "daemon.sock").stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "state.json").stat().st_mode) == 0o600
    state = json.loads((home / "state.json").read_text())
    assert state["version"] == 1 and state["processes"][0]["spec"]["name"] == "p"
    pmd.run("stop", "p")
    assert (home / "state.json.prev").exists()
    assert stat.S_IMODE((home / "state.json.prev").stat().st_mode) == 0o600


def test_concurrent_first_commands_start_one_daemon(pmd: Pmd) -> None:
    procs = [
        subprocess.Popen(
            [PMDAEMON, "list", "--json"],
            env=pmd.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert json.loads(out) == []
    pid = pmd.daemon_pid()
    assert pid is not None and alive(pid)
    status = pmd.json("ping")
    assert status["running"] and status["pid"] == pid


def test_environment_arguments_and_cwd(pmd: Pmd, tmp_path: Path) -> None:
    out = tmp_path / "env.json"
    pmd.env["FROM_SHELL"] = "one"
    pmd.env["PORT_LIKE"] = "shell"
    workdir = tmp_path / "work"
    workdir.mkdir()
    pmd.start(
        child("env_dump.py"),
        "--interpreter",
        PY,
        "-n",
        "envy",
        "--cwd",
        str(workdir),
        "-e",
        "EXTRA=x=y",
        "-e",
        "PORT_LIKE=flag",
        "--namespace",
        "team",
        "--",
        str(out),
        "a b",
        "--flag",
    )
    dump = wait_until(lambda: out.exists() and json.loads(out.read_text()), what="env dump")
    env = dump["env"]
    assert env["FROM_SHELL"] == "one" and env["EXTRA"] == "x=y" and env["PORT_LIKE"] == "flag"
    assert env["PMDAEMON_NAME"] == "envy" and env["PMDAEMON_ID"] == "0"
    assert env["PMDAEMON_NAMESPACE"] == "team" and env["PMDAEMON_INSTANCE"] == "0"
    assert env["PM2_INSTANCE_ID"] == "0" and env["NODE_APP_INSTANCE"] == "0"
    assert dump["argv"] == ["a b", "--flag"]
    assert dump["cwd"] == str(workdir)
    info = pmd.proc("envy")
    assert info["namespace"] == "team"
    # names only, never values
    assert info["config"]["env"] == {"EXTRA": "<hidden>", "PORT_LIKE": "<hidden>"}
    assert "x=y" not in json.dumps(info)


def test_start_port_is_given_as_port_and_wins_over_env(pmd: Pmd, tmp_path: Path) -> None:
    out = tmp_path / "env.json"
    pmd.env["PORT"] = "1111"
    info = pmd.start(
        child("env_dump.py"),
        "--interpreter",
        PY,
        "-n",
        "web",
        "-p",
        "4321",
        "-e",
        "PORT=2222",
        "--",
        str(out),
    )["processes"][0]
    assert info["port"] == 4321
    assert wait_until(lambda: out.exists() and json.loads(out.read_text()))["env"]["PORT"] == "4321"
    assert pmd.proc("web")["config"]["port"] == 4321
    for bad in ("0", "65536", "abc", "3001-3000", "auto:9-3"):
        result = pmd.run("start", "sleep 1", "-n", "x", "-p", bad, check=False)
        assert result.returncode == 1 and "port" in result.stderr, bad


def test_restart_update_env_refreshes_the_captured_environment(pmd: Pmd, tmp_path: Path) -> None:
    out = tmp_path / "env.json"
    pmd.env["STAGE"] = "first"
    pmd.start(child("env_dump.py"), "--interpreter", PY, "-n", "envy", "--", str(out))
    wait_until(lambda: out.exists(), what="first dump")
    out.unlink()
    pmd.env["STAGE"] = "second"
    pmd.run("restart", "envy")
    assert (
        wait_until(lambda: out.exists() and json.loads(out.read_text()))["env"]["STAGE"] == "first"
    )
    out.unlink()
    pmd.run("restart", "envy", "--update-env")
    assert (
        wait_until(lambda: out.exists() and json.loads(out.read_text()))["env"]["STAGE"] == "second"
    )
    assert pmd.proc("envy")["restarts"] == 2


def test_command_string_is_split_without_a_shell(pmd: Pmd, tmp_path: Path) -> None:
    out = tmp_path / "env.json"
    pmd.start(f"{PY} {child('env_dump.py')} {out} '$HOME;echo' \"two words\"", "-n", "split")
    dump = wait_until(lambda: out.exists() and json.loads(out.read_text()), what="dump")
    assert dump["argv"] == ["$HOME;echo", "two words"]


def test_interpreter_is_chosen_by_extension(pmd: Pmd, tmp_path: Path, home: Path) -> None:
    script = tmp_path / "hello.sh"
    script.write_text('echo "hello from $0"\nexec sleep 3600\n')
    park_info = pmd.start(str(script))["processes"][0]
    assert park_info["name"] == "hello"
    wait_until(
        lambda: "hello from" in (home / "logs" / "hello-out.log").read_text(), what="bash output"
    )
    executable = tmp_path / "run-me"
    executable.write_text("#!/bin/sh\necho direct\nexec sleep 3600\n")
    executable.chmod(0o755)
    pmd.start(str(executable))
    wait_until(lambda: "direct" in (home / "logs" / "run-me-out.log").read_text(), what="direct")
    plain = tmp_path / "data.txt"
    plain.write_text("not a program")
    result = pmd.run("start", str(plain), check=False)
    assert result.returncode == 1 and "not executable" in result.stderr


def test_start_stop_restart_by_name_id_and_all(pmd: Pmd) -> None:
    a = park(pmd, "a")
    b = park(pmd, "b")
    assert (a["id"], b["id"]) == (0, 1)
    pmd.run("stop", "all")
    assert {p["status"] for p in pmd.list()} == {"stopped"}
    assert all(p["pid"] is None for p in pmd.list())
    assert not alive(a["pid"]) and not alive(b["pid"])
    pmd.run("start", "a")
    assert pmd.proc("a")["status"] == "online"
    pmd.run("start", "1")
    assert pmd.proc("b")["status"] == "online"
    old = pmd.proc("b")["pid"]
    result = pmd.json("restart", "b")
    assert result["success"] and result["processes"][0]["pid"] != old
    assert not alive(old)
    info = pmd.proc("b")
    assert info["last_restart_reason"] == "manual"
    assert [(r["reason"], r["pid"]) for r in info["restart_history"]] == [("manual", old)]
    result = pmd.json("start", "a")  # already online: nothing changes
    assert result["success"]
    pmd.run("restart", "all")
    assert [p["restarts"] for p in pmd.list()] == [1, 2]


def test_ids_are_never_reused(pmd: Pmd) -> None:
    park(pmd, "a")
    park(pmd, "b")
    pmd.run("delete", "b")
    assert park(pmd, "c")["id"] == 2
    pmd.run("delete", "all", "-f")
    assert park(pmd, "d")["id"] == 3


def test_delete_by_status_and_confirmation_on_a_tty(pmd: Pmd, tmp_path: Path) -> None:
    park(pmd, "keep")
    pmd.run("start", str(tmp_path / "missing.py"), "-n", "broken", check=False)
    assert pmd.proc("broken")["status"] == "errored"
    # On a terminal, bulk deletes ask; answering no deletes nothing.
    assert run_on_tty(pmd, ["delete", "all"], "n\n") == 1
    assert len(pmd.list()) == 2
    pmd.run("delete", "errored", "--status", "-f")
    assert [p["name"] for p in pmd.list()] == ["keep"]
    assert run_on_tty(pmd, ["delete", "all"], "y\n") == 0
    assert pmd.list() == []


def run_on_tty(pmd: Pmd, args: list[str], answer: str) -> int:
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [PMDAEMON, *args],
        env=pmd.env,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        close_fds=True,
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 30
    while b"[y/N]" not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1)
        if ready:
            try:
                seen += os.read(leader, 4096)
            except OSError:
                break
    assert b"[y/N]" in seen, seen
    os.write(leader, answer.encode())
    code = proc.wait(timeout=30)
    os.close(leader)
    return code


def test_logs_show_the_last_lines_by_stream(pmd: Pmd) -> None:
    pmd.start(child("spew.py"), "--interpreter", PY, "-n", "spew", "--", "100")
    wait_until(
        lambda: (
            pmd.json("logs", "spew", "--lines", "1", "--out")["logs"][-1:]
            and pmd.json("logs", "spew", "--lines", "1", "--out")["logs"][-1]["message"]
            == "line 99"
        ),
        what="all lines logged",
    )
    data = pmd.json("logs", "spew", "--lines", "5", "--out")
    assert [e["message"] for e in data["logs"]] == [f"line {i}" for i in range(95, 100)]
    assert data["total_lines"] == 5
    err = pmd.json("logs", "spew", "--err")["logs"]
    assert [e["message"] for e in err] == ["an error line"] and err[0]["type"] == "error"
    text = pmd.run("logs", "spew", "-l", "3").stdout
    assert "==> spew (out) <==" in text and "line 99" in text and "an error line" in text
    park(pmd, "quiet")
    everything = pmd.json("logs", "--lines", "2")["logs"]
    assert {e["name"] for e in everything} == {"spew", "quiet"}


def test_logs_follow_streams_new_lines_and_stops_on_ctrl_c(pmd: Pmd, tmp_path: Path) -> None:
    park(pmd, "p")
    follower = subprocess.Popen(
        [PMDAEMON, "logs", "p", "--follow", "--lines", "0"],
        env=pmd.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As in a terminal: a runner started in the background may have SIGINT ignored,
        # and children would inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        pid = pmd.proc("p")["pid"]

        # Each SIGUSR1 makes the child print a line; repeat until the follower shows one.
        def shows_line() -> bool:
            os.kill(pid, signal.SIGUSR1)
            ready, _, _ = select.select([follower.stdout], [], [], 0.5)
            return bool(ready) and "got SIGUSR1" in follower.stdout.readline()  # type: ignore[union-attr]

        wait_until(shows_line, what="followed line")
    finally:
        follower.send_signal(signal.SIGINT)
        code = follower.wait(timeout=10)
    assert code == 0
    assert "Traceback" not in follower.stderr.read()  # type: ignore[union-attr]


def test_signal_reaches_the_process(pmd: Pmd, home: Path) -> None:
    park(pmd, "p")
    wait_until(lambda: "ready" in (home / "logs" / "p-out.log").read_text())
    pmd.run("signal", "SIGUSR1", "p")
    wait_until(
        lambda: "got SIGUSR1" in (home / "logs" / "p-out.log").read_text(), what="signal handled"
    )
    result = pmd.run("signal", "NOPE", "p", check=False)
    assert result.returncode == 1 and "unknown signal" in result.stderr
    pmd.run("stop", "p")
    result = pmd.run("signal", "USR1", "p", check=False)
    assert result.returncode == 1 and "not running" in result.stderr


def test_list_filters_and_json_shape(pmd: Pmd) -> None:
    park(pmd, "a", "--namespace", "one")
    park(pmd, "b")
    pmd.run("stop", "b")
    assert [p["name"] for p in pmd.json("list", "--namespace", "one")] == ["a"]
    assert [p["name"] for p in pmd.json("list", "--status", "stopped")] == ["b"]
    view = pmd.list()[0]
    assert set(view) >= {
        "id",
        "name",
        "namespace",
        "status",
        "pid",
        "port",
        "instance",
        "cpu_usage",
        "memory_usage",
        "uptime",
        "uptime_seconds",
        "restarts",
        "health_status",
        "exit_code",
        "last_restart_reason",
        "created_at",
        "started_at",
    }
    table = pmd.run("list").stdout
    assert "│ a " in table and "online" in table and "stopped" in table


def test_metrics_are_sampled(pmd: Pmd) -> None:
    park(pmd, "p")
    info = wait_until(
        lambda: (p := pmd.proc("p"))["memory_usage"] > 1024 * 1024 and p, what="memory sampled"
    )
    assert info["cpu_usage"] >= 0


def test_help_and_version() -> None:
    out = subprocess.run([PMDAEMON, "--help"], capture_output=True, text=True, check=True).stdout
    for command in (
        "start",
        "stop",
        "restart",
        "delete",
        "list",
        "info",
        "logs",
        "signal",
        "ping",
        "kill",
    ):
        assert command in out
    assert subprocess.run(
        [PMDAEMON, "--version"], capture_output=True, text=True, check=True
    ).stdout.startswith("pmdaemon ")
    for command in ("start", "logs", "delete"):
        subprocess.run([PMDAEMON, command, "--help"], capture_output=True, check=True)


def test_flush_empties_log_files(pmd: Pmd, home: Path) -> None:
    pmd.start(child("spew.py"), "--interpreter", PY, "-n", "spew", "--", "50")
    log = home / "logs" / "spew-out.log"
    wait_until(lambda: "line 49" in log.read_text(), what="lines written")
    park(pmd, "p")
    result = pmd.json("flush", "spew")
    assert result["message"] == "Flushed 2 log file(s)"
    assert log.read_text() == "" and (home / "logs" / "spew-error.log").read_text() == ""
    assert "ready" in (home / "logs" / "p-out.log").read_text()  # others untouched
    pmd.run("flush")
    assert (home / "logs" / "p-out.log").read_text() == ""
    pid = pmd.proc("p")["pid"]
    os.kill(pid, signal.SIGUSR1)  # the app goes on writing at the new end
    wait_until(lambda: (home / "logs" / "p-out.log").read_text() == "got SIGUSR1\n")


def test_logs_follow_picks_up_new_processes_and_restarts(pmd: Pmd) -> None:
    park(pmd, "first")
    follower = subprocess.Popen(
        [PMDAEMON, "logs", "--follow", "--lines", "0"],
        env=pmd.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert follower.stdout is not None
    try:
        # Once the stream is open, a new app's very first line comes through.
        wait_until(lambda: pmd.json("ping")["event_subscribers"] >= 1, what="follow open")
        park(pmd, "second")
        assert follower.stdout.readline().startswith("second out | ready")
        pmd.run("restart", "second")
        assert follower.stdout.readline().startswith("second out | ready")
    finally:
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=10) == 0
