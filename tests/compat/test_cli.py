"""PMDaemon's command line, as its documentation writes it, against the real daemon. Each
test names the page of entrepeneur4lyf/pmdaemon (docs/docs/...) it checks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import PMDAEMON, Pmd, child, free_range, wait_until

PY = sys.executable


def dump_of(path: Path) -> dict[str, object]:
    data: dict[str, object] = wait_until(
        lambda: path.exists() and json.loads(path.read_text()), what=f"{path.name} written"
    )
    return data


def test_global_short_options(pmd: Pmd, tmp_path: Path) -> None:
    """cli/commands.md, Global Options: -V, -v and -c FILE (with start --name for one app)."""
    version = pmd.run("-V").stdout
    assert version.startswith("pmdaemon ") and version == pmd.run("--version").stdout
    assert pmd.run("-v", "ls").returncode == 0
    file = tmp_path / "ecosystem.json"
    apps = [
        {"name": n, "script": child("park.py"), "interpreter": PY} for n in ("api-server", "other")
    ]
    file.write_text(json.dumps({"apps": apps}))
    pmd.run("-c", str(file), "start", "--name", "api-server")
    assert [p["name"] for p in pmd.list()] == ["api-server"]
    pmd.run("--config", str(file), "start")
    assert sorted(p["name"] for p in pmd.list()) == ["api-server", "other"]


def test_command_aliases(pmd: Pmd) -> None:
    """cli/commands.md, Command Aliases: s, st, r, ls, del."""
    pmd.run("s", child("park.py"), "--interpreter", PY, "--name", "web")
    first = pmd.wait_online("web")["pid"]
    pmd.run("r", "web")
    pmd.wait_online("web", not_pid=first)
    pmd.run("st", "web")
    assert pmd.proc("web")["status"] == "stopped"
    assert [p["name"] for p in json.loads(pmd.run("ls", "--json").stdout)] == ["web"]
    pmd.run("del", "web")
    assert pmd.list() == []


def test_logs_lines_and_error(pmd: Pmd, tmp_path: Path) -> None:
    """cli/commands.md, logs: --lines/-n N and --error (stderr only)."""
    script = tmp_path / "talk.py"
    script.write_text(
        "import sys, time\nfor i in range(5):\n    print('out', i, flush=True)\n"
        "print('bad thing', file=sys.stderr, flush=True)\ntime.sleep(3600)\n"
    )
    pmd.start(str(script), "--interpreter", PY, "--name", "talk")
    wait_until(lambda: "out 4" in pmd.run("logs", "talk").stdout, what="the lines logged")
    entries = pmd.json("logs", "talk", "-n", "2", "--out")["logs"]
    assert [e["message"] for e in entries] == ["out 3", "out 4"]
    errors = pmd.json("logs", "talk", "--error", "--lines", "10")["logs"]
    assert [e["message"] for e in errors] == ["bad thing"]
    assert errors[0]["stream"] == "stderr" and errors[0]["process"] == "talk"


def test_signal_in_both_orders(pmd: Pmd) -> None:
    """features/process-management.md: `pmdaemon signal web-app SIGUSR1`; the older
    `signal SIGNAL ID` keeps working; two numbers are refused as ambiguous."""
    pmd.start(child("park.py"), "--interpreter", PY, "--name", "web-app")
    pmd.run("signal", "web-app", "SIGUSR1")
    pmd.run("signal", "USR1", "web-app")
    wait_until(
        lambda: pmd.run("logs", "web-app").stdout.count("got SIGUSR1") == 2,
        what="both signals received",
    )
    result = pmd.run("signal", "0", "10", check=False)
    assert result.returncode == 2 and "ambiguous" in result.stderr
    result = pmd.run("signal", "web-app", "NOPE", check=False)
    assert result.returncode == 1 and "unknown signal" in result.stderr
    assert pmd.proc("web-app")["status"] == "online"


def test_start_options_of_the_configuration_page(pmd: Pmd, tmp_path: Path) -> None:
    """cli/configuration-options.md: --env-file, --args, --log-file, --pid-file,
    --exec-mode, --max-restarts unlimited, --autorestart false."""
    env_file = tmp_path / ".env.production"
    env_file.write_text("FROM_FILE=yes\nexport QUOTED='a b'\n")
    out = tmp_path / "dump.json"
    pid_file = tmp_path / "run" / "app.pid"
    log_file = tmp_path / "app.log"
    pmd.start(
        child("env_dump.py"),
        "--interpreter",
        PY,
        "--name",
        "web-api",
        "--env-file",
        str(env_file),
        "--args",
        f"{out} --port 3000 --env 'production mode'",
        "--log-file",
        str(log_file),
        "--pid-file",
        str(pid_file),
        "--exec-mode",
        "fork",
        "--max-restarts",
        "unlimited",
        "--autorestart",
        "false",
    )
    dump = dump_of(out)
    env = dump["env"]
    assert isinstance(env, dict)
    assert env["FROM_FILE"] == "yes" and env["QUOTED"] == "a b"
    assert dump["argv"] == ["--port", "3000", "--env", "production mode"]
    info = pmd.proc("web-api")
    assert pid_file.read_text().strip() == str(info["pid"])
    assert info["config"]["max_restarts"] is None and info["config"]["autorestart"] is False
    assert info["logs"]["log_file"] == str(log_file) and info["pid_file"] == str(pid_file)
    pmd.run("stop", "web-api")
    wait_until(lambda: not pid_file.exists(), what="the pid file removed once it stopped")


def test_log_file_holds_both_streams(pmd: Pmd, tmp_path: Path) -> None:
    """cli/configuration-options.md, --log-file: a combined stdout/stderr log."""
    script = tmp_path / "both.py"
    script.write_text(
        "import sys, time\nprint('to out', flush=True)\nprint('to err', file=sys.stderr, "
        "flush=True)\ntime.sleep(3600)\n"
    )
    combined = tmp_path / "combined.log"
    pmd.start(str(script), "--interpreter", PY, "--name", "both", "--log-file", str(combined))
    text = wait_until(
        lambda: (
            (t := combined.read_text() if combined.exists() else "")
            and "to err" in t
            and "to out" in t
            and t
        ),
        what="both lines in the combined log",
    )
    assert sorted(text.splitlines()) == ["to err", "to out"]
    assert "to out" in pmd.run("logs", "both", "--out").stdout  # the usual files too


def test_instances_zero_creates_the_app_stopped(pmd: Pmd) -> None:
    """cli/configuration-options.md, --instances: "0 - Disable the process"."""
    result = pmd.start(child("park.py"), "--interpreter", PY, "--name", "off", "-i", "0")
    assert [p["status"] for p in result["processes"]] == ["stopped"]
    assert pmd.proc("off")["pid"] is None
    pmd.run("start", "off")  # started when asked by name
    pmd.wait_online("off")


def test_exec_mode_cluster_with_instances(pmd: Pmd) -> None:
    """cli/configuration-options.md, --exec-mode: `--exec-mode cluster --instances 4`."""
    first = free_range(2)
    result = pmd.start(
        child("http_app.py"),
        "--interpreter",
        PY,
        "--name",
        "web",
        "--exec-mode",
        "cluster",
        "--instances",
        "2",
        "--port",
        f"{first}-{first + 1}",
    )
    assert [p["port"] for p in result["processes"]] == [first, first + 1]
    assert pmd.proc("web-0")["config"]["exec_mode"] == "cluster"


def test_injected_variables(pmd: Pmd, tmp_path: Path) -> None:
    """cli/environment-variables.md: PMDAEMON_PROCESS_NAME, PMDAEMON_PROCESS_ID,
    PMDAEMON_NAMESPACE, PMDAEMON_VERSION, PM2_INSTANCE_ID, NODE_APP_INSTANCE, PORT."""
    out = tmp_path / "dump.json"
    port = free_range(1)
    pmd.start(
        child("env_dump.py"),
        "--interpreter",
        PY,
        "--name",
        "web-api",
        "--namespace",
        "production",
        "--port",
        str(port),
        "--",
        str(out),
    )
    env = dump_of(out)["env"]
    assert isinstance(env, dict)
    version = pmd.run("-V").stdout.split()[1]
    assert env["PMDAEMON_PROCESS_NAME"] == "web-api" and env["PMDAEMON_PROCESS_ID"] == "0"
    assert env["PMDAEMON_NAMESPACE"] == "production" and env["PMDAEMON_VERSION"] == version
    assert env["PM2_INSTANCE_ID"] == env["NODE_APP_INSTANCE"] == "0"
    assert env["PORT"] == str(port)
    assert env["PMDAEMON_NAME"] == "web-api" and env["PMDAEMON_ID"] == "0"  # still there


def test_reload_with_a_port_range(pmd: Pmd) -> None:
    """features/port-management.md and cli/commands.md: `reload web-app --port 4000-4003`."""
    first = free_range(4)
    pmd.start(
        child("http_app.py"),
        "--interpreter",
        PY,
        "--name",
        "web-app",
        "-i",
        "2",
        "--port",
        f"{first}-{first + 1}",
    )
    pmd.run("reload", "web-app", "--port", f"{first + 2}-{first + 3}")
    assert [p["port"] for p in pmd.list()] == [first + 2, first + 3]


@pytest.mark.parametrize("words", [["all"], ["stopped", "--status"]])
def test_delete_without_force_and_no_terminal_changes_nothing(pmd: Pmd, words: list[str]) -> None:
    """cli/commands.md, delete: "Interactive deletion (with confirmation)"; with no
    terminal to confirm on, nothing is deleted and --force is named."""
    pmd.start(child("park.py"), "--interpreter", PY, "--name", "keep")
    pmd.run("stop", "keep")
    result = pmd.run("delete", *words, check=False)
    assert result.returncode == 1
    assert "--force" in result.stderr and "nothing was deleted" in result.stderr
    assert [p["name"] for p in pmd.list()] == ["keep"]
    pmd.run("delete", *words, "--force")
    assert pmd.list() == []


def test_monit_interval_takes_units(pmd: Pmd) -> None:
    """cli/configuration-options.md: `monit --interval 5s`; cli/commands.md: `--interval 5`,
    `--interval 0.5` (seconds)."""
    for value in ("2s", "500ms", "5", "0.5"):
        result = pmd.run("monit", "--interval", value, check=False)
        assert result.returncode == 2 and "needs a terminal" in result.stderr, value
    result = pmd.run("monit", "--interval", "2x", check=False)
    assert result.returncode == 2 and "invalid --interval" in result.stderr


def test_reporting_commands_take_json(pmd: Pmd, tmp_path: Path) -> None:
    """README.md: every reporting command takes --json."""
    file = tmp_path / "e.json"
    file.write_text(json.dumps({"apps": [{"name": "a", "script": "sleep", "compress_logs": True}]}))
    valid = json.loads(pmd.run("validate", str(file), "--json").stdout)
    assert valid["valid"] is True and valid["apps"] == ["a"] and valid["warnings"]
    file.write_text(json.dumps({"apps": [{"name": "a"}]}))
    result = pmd.run("validate", str(file), "--json", check=False)
    assert result.returncode == 1 and json.loads(result.stdout)["valid"] is False
    made = json.loads(pmd.run("regenerate-api-key", "--json").stdout)
    shown = json.loads(pmd.run("show-api-key", "--json").stdout)
    assert made["api_key"] == shown["api_key"] and len(shown["api_key"]) == 64
    assert stat.S_IMODE(os.stat(shown["path"]).st_mode) == 0o600
    unit = json.loads(pmd.run("startup", "--print", "--json").stdout)["unit"]
    assert "[Service]" in unit
    written = json.loads(pmd.run("startup", "--unit-dir", str(tmp_path / "units"), "--json").stdout)
    assert written["success"] is True and written["messages"]
    assert "remove the unit from here" in pmd.run("unstartup", "--help").stdout


def test_interpreter_none_runs_the_file_itself(pmd: Pmd, tmp_path: Path) -> None:
    """configuration/ecosystem-files.md, interpreter: "none" runs the script directly."""
    script = tmp_path / "run.sh"
    script.write_text('#!/bin/sh\necho "shell=$0"\nexec sleep 3600\n')
    result = pmd.run("start", str(script), "--interpreter", "none", "--name", "raw", check=False)
    assert result.returncode == 1 and "not executable" in result.stderr
    pmd.run("delete", "raw")
    script.chmod(0o755)
    pmd.start(str(script), "--interpreter", "none", "--name", "raw")
    text = wait_until(lambda: "shell=" in (t := pmd.run("logs", "raw").stdout) and t)
    assert f"shell={script}" in text  # run by its #! line, not as `bash run.sh`


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--autorestart", "maybe"], "expected true or false"),
        (["--exec-mode", "swarm"], "invalid choice"),
        (["--args", "'unbalanced"], "cannot split --args"),
        (["--max-restarts", "forever"], "max_restarts"),
        (["--instances", "-2000"], "instances"),
        (["--user", "no-such-user-x"], "does not exist on this machine"),
        (["--group", "no-such-group-x"], "does not exist on this machine"),
        (["--instance-var", "A=B"], "instance_var"),
        (["--no-autorestart", "--autorestart", "true"], "contradict"),
        (["--pid-file", ""], "pid_file"),
    ],
)
def test_bad_values_of_the_new_start_flags(pmd: Pmd, flags: list[str], said: str) -> None:
    """One sentence on standard error, exit 1 or 2, and nothing created."""
    result = pmd.run("start", child("park.py"), "--interpreter", PY, "-n", "x", *flags, check=False)
    assert result.returncode in (1, 2), result.stdout
    assert said in result.stderr and "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.strip()]) <= 2
    if pmd.daemon_pid() is not None:
        assert pmd.list() == []


def test_user_runs_the_app_as_that_account(throwaway_user: str, pmd: Pmd) -> None:
    """cli/configuration-options.md: `--user app-user`; its log files stay the daemon's."""
    import pwd
    import tempfile

    entry = pwd.getpwnam(throwaway_user)
    # The account must reach the program and its directory: not under root's 0700 dirs.
    interpreter = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    if interpreter is None:
        pytest.skip("no system python3 that another account may run")
    work = Path(tempfile.mkdtemp(prefix="pmd-user-"))
    try:
        work.chmod(0o755)
        script = work / "who.py"
        script.write_text(
            "import os, time\nprint('uid', os.getuid(), os.getgid(), flush=True)\n"
            "time.sleep(3600)\n"
        )
        script.chmod(0o644)
        pmd.start(
            str(script),
            "--interpreter",
            interpreter,
            "--name",
            "as-user",
            "--cwd",
            str(work),
            "--user",
            throwaway_user,
            "--health-check-script",
            "/usr/bin/id -u",
            "--health-check-interval",
            "1s",
        )
        line = wait_until(
            lambda: next(
                (x for x in pmd.run("logs", "as-user").stdout.splitlines() if "uid" in x), None
            ),
            what="the app's uid line",
        )
        assert line.split()[-2:] == [str(entry.pw_uid), str(entry.pw_gid)]
        pid = pmd.proc("as-user")["pid"]
        assert os.stat(f"/proc/{pid}").st_uid == entry.pw_uid
        # Its health check script runs as the app's account too, never as root.
        check = wait_until(
            lambda: (h := pmd.proc("as-user")["health_check"])["output"] and h,
            what="a health check's output",
        )
        assert check["output"] == [str(entry.pw_uid)]
        pmd.run("stop", "as-user")
        assert pmd.proc("as-user")["pid"] is None and not os.path.exists(f"/proc/{pid}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_info_shows_the_documented_details(pmd: Pmd, tmp_path: Path) -> None:
    """cli/commands.md, info: the process's status, configuration and log paths."""
    pid_file = tmp_path / "web.pid"
    pmd.start(
        child("park.py"), "--interpreter", PY, "--name", "web-app", "--pid-file", str(pid_file)
    )
    text = pmd.run("info", "web-app").stdout
    assert "Process web-app (id 0)" in text and "online" in text
    assert "pid file" in text and str(pid_file) in text
    assert pmd.run("describe", "web-app").stdout.splitlines()[0] == text.splitlines()[0]


def test_the_other_documented_start_options(pmd: Pmd, tmp_path: Path) -> None:
    """cli/configuration-options.md and cli/commands.md, start: --cwd, --namespace,
    --max-memory, --min-uptime, --restart-delay, --kill-timeout, --out-file, --error-file,
    the --health-check-* options, --wait-ready and --wait-timeout."""
    port = free_range(1)
    work = tmp_path / "app"
    work.mkdir()
    pmd.run(
        "start",
        child("http_app.py"),
        "--interpreter",
        PY,
        "--name",
        "prod-api",
        "--cwd",
        str(work),
        "--namespace",
        "production",
        "--port",
        str(port),
        "--max-memory",
        "512M",
        "--min-uptime",
        "5s",
        "--restart-delay",
        "2s",
        "--kill-timeout",
        "30s",
        "--out-file",
        "web-api.out",
        "--error-file",
        "web-api.err",
        "--health-check-url",
        f"http://127.0.0.1:{port}/health",
        "--health-check-timeout",
        "2s",
        "--health-check-interval",
        "1s",
        "--health-check-retries",
        "2",
        "--wait-ready",
        "--wait-timeout",
        "60s",
    )
    info = pmd.proc("prod-api")
    assert info["health_status"] == "healthy"  # --wait-ready returned once it was
    config = info["config"]
    assert config["cwd"] == str(work) and config["namespace"] == "production"
    assert config["max_memory_restart"] == 512 * 1024**2
    assert (config["min_uptime"], config["restart_delay"], config["kill_timeout"]) == (5, 2, 30)
    check = config["health_check"]
    assert (check["timeout"], check["interval"], check["retries"]) == (2, 1, 2)
    assert info["logs"]["out_file"] == str(work / "web-api.out")
    assert info["logs"]["error_file"] == str(work / "web-api.err")


def test_web_with_the_documented_options(pmd: Pmd) -> None:
    """cli/commands.md, web: --port, --host, --api-key."""
    port = free_range(1)
    web = subprocess.Popen(
        [PMDAEMON, "web", "--port", str(port), "--host", "127.0.0.1", "--api-key", "secret123"],
        env=pmd.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert web.stdout is not None
        line = web.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line, line
        import httpx

        base = f"http://127.0.0.1:{port}"
        assert httpx.get(base + "/api/processes").status_code == 401
        answer = httpx.get(base + "/api/processes", headers={"X-API-Key": "secret123"})
        assert answer.status_code == 200 and answer.json() == []
    finally:
        web.terminate()
        web.wait(timeout=60)


def test_logs_follow(pmd: Pmd, tmp_path: Path) -> None:
    """cli/commands.md, logs: --follow prints new lines as they come."""
    pid = pmd.start(child("park.py"), "--interpreter", PY, "--name", "web-app")["processes"][0][
        "pid"
    ]
    follower = subprocess.Popen(
        [PMDAEMON, "logs", "web-app", "--follow", "--lines", "0"],
        env=pmd.env,
        stdout=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert follower.stdout is not None
        import selectors

        # The follower is ready at some point after it starts: signal until a line comes.
        sel = selectors.DefaultSelector()
        sel.register(follower.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 30
        while not sel.select(timeout=0.5):
            assert time.monotonic() < deadline, "logs --follow printed nothing in 30 s"
            os.kill(pid, signal.SIGUSR1)
        line = follower.stdout.readline()
        assert "got SIGUSR1" in line and "web-app" in line
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(timeout=30)


def test_a_pid_file_never_follows_a_planted_link(pmd: Pmd, tmp_path: Path) -> None:
    """--pid-file: a symlink found at the path is replaced, the file it points to kept."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    pid_file = tmp_path / "app.pid"
    pid_file.symlink_to(victim)
    pid = pmd.start(
        child("park.py"), "--interpreter", PY, "--name", "app", "--pid-file", str(pid_file)
    )["processes"][0]["pid"]
    assert not pid_file.is_symlink() and pid_file.read_text() == f"{pid}\n"
    assert victim.read_text() == "precious\n"
