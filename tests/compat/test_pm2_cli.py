"""PM2's command-line habits (issue 17), against the real daemon and CLI. Each test names
the PM2 behaviour it follows: Unitech/pm2's lib/binaries/CLI.js (flags and commands),
lib/API.js and lib/API/Extra.js (what they do)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from helpers import PMDAEMON, Pmd, Web, child, wait_until

PY = sys.executable
KEY = "pm2-habits-key-0123456789abcdef"


def one_line_error(stderr: str) -> str:
    """The whole of standard error: one `error:` line, no traceback."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def run_in(pmd: Pmd, cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``pmdaemon ARGS`` in the directory ``cwd``, for the runner's home."""
    result = subprocess.run(
        [PMDAEMON, *args], cwd=cwd, env=pmd.env, capture_output=True, text=True, timeout=60
    )
    assert not check or result.returncode == 0, result.stderr
    return result


def cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [part.decode() for part in f.read().split(b"\0")[:-1]]


def test_max_memory_restart_flag(pmd: Pmd) -> None:
    """CLI.js `--max-memory-restart <memory>`: restart the app when it uses more memory
    (the field max_memory_restart; `--max-memory` is PMDaemon's name for the same)."""
    pmd.start(
        child("hog.py"),
        "--interpreter",
        PY,
        "-n",
        "grow",
        "--max-memory-restart",
        "60M",
        "--",
        "10",
        "120",
    )
    info = wait_until(
        lambda: (p := pmd.proc("grow"))["restarts"] >= 1 and p,
        timeout=30,
        what="restarted for memory",
    )
    assert info["config"]["max_memory_restart"] == 60 * 1024 * 1024
    assert info["restart_history"][0]["reason"].startswith("memory limit")


def test_cron_restart_and_its_cron_alias(pmd: Pmd) -> None:
    """CLI.js `--cron-restart <cron_pattern>` and its alias `--cron`: restart on a cron
    schedule (the field cron_restart, PM2's syntax; 6 fields: every second here)."""
    first = pmd.start(
        child("park.py"), "--interpreter", PY, "-n", "tick", "--cron-restart", "* * * * * *"
    )["processes"][0]["pid"]
    assert pmd.proc("tick")["config"]["cron_restart"] == "* * * * * *"
    pmd.wait_online("tick", not_pid=first, timeout=10)  # the schedule restarted it
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "nightly", "--cron", "0 3 * * *")
    assert pmd.proc("nightly")["config"]["cron_restart"] == "0 3 * * *"


def test_watch_flags(pmd: Pmd, tmp_path: Path) -> None:
    """CLI.js `--watch [paths]` (alone: the app's folder; repeated: these paths),
    `--ignore-watch <folders|files>` (split on spaces, as Config.js splits a string given
    for a list) and `--watch-delay <delay>` (a bare number is seconds, API.js)."""
    src = tmp_path / "src"
    src.mkdir()
    (tmp_path / "lib").mkdir()
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "whole", "--watch", "--cwd", str(src))
    assert pmd.proc("whole")["config"]["watch"] == ["."]  # the app's folder
    first = pmd.start(
        child("park.py"),
        "--interpreter",
        PY,
        "-n",
        "parts",
        "--cwd",
        str(tmp_path),
        "--watch",
        "src",
        "--watch",
        "lib",
        "--ignore-watch",
        "node_modules 'with space'",
        "--watch-delay",
        "0.2",
    )["processes"][0]["pid"]
    config = pmd.proc("parts")["config"]
    assert config["watch"] == ["src", "lib"]
    assert config["ignore_watch"] == ["node_modules", "with space"]
    assert config["watch_delay"] == 0.2
    (src / "app.txt").write_text("changed\n")
    pmd.wait_online("parts", not_pid=first, timeout=10)  # a change under src restarted it


def test_watch_taking_the_script_is_explained(pmd: Pmd) -> None:
    """`pm2 start --watch app.js` has the same trap: --watch's optional path takes the
    script. One sentence that says so and how to write it; nothing is created."""
    result = pmd.run("start", "--watch", child("park.py"), check=False)
    assert result.returncode == 2
    line = one_line_error(result.stderr)
    assert "--watch took" in line and "put the script first" in line
    assert pmd.list() == []


def test_time_flag_stamps_log_lines(pmd: Pmd) -> None:
    """CLI.js `--time`: prefix each log line with the time (the field time)."""
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "stamped", "--time")
    assert pmd.proc("stamped")["config"]["time"] is True
    entry = wait_until(
        lambda: next(iter(pmd.json("logs", "stamped", "--out")["logs"]), None), what="a line"
    )
    assert entry["message"].startswith("ready pid=") and entry["timestamp"]


def test_no_autorestart_leaves_a_crash_stopped(pmd: Pmd) -> None:
    """CLI.js `--no-autorestart`: an app that exits is not started again (autorestart
    false)."""
    pid = pmd.start(child("park.py"), "--interpreter", PY, "-n", "once", "--no-autorestart")[
        "processes"
    ][0]["pid"]
    assert pmd.proc("once")["config"]["autorestart"] is False
    os.kill(pid, signal.SIGKILL)
    info = wait_until(
        lambda: (p := pmd.proc("once"))["status"] == "stopped" and p, what="once stopped"
    )
    assert info["restarts"] == 0 and info["pid"] is None and info["exit_signal"] == "SIGKILL"


def test_merge_logs_and_instances_max(pmd: Pmd, home: Path) -> None:
    """CLI.js `-i max` (one instance per CPU) and `--merge-logs` (the instances share one
    set of log files instead of one each)."""
    result = pmd.start(
        child("park.py"), "--interpreter", PY, "-n", "web", "-i", "max", "--merge-logs"
    )
    count = os.cpu_count() or 1
    pids = sorted(p["pid"] for p in result["processes"])
    names = [f"web-{i}" for i in range(count)] if count > 1 else ["web"]
    assert [p["name"] for p in pmd.list()] == names
    log = home / "logs" / "web-out.log"
    wait_until(
        lambda: sorted(int(line.split("=")[1]) for line in log.read_text().splitlines()) == pids,
        what="every instance's line in the one shared file",
    )
    assert not (home / "logs" / "web-0-out.log").exists()


def test_env_flag_with_a_profile_explains_env_name(pmd: Pmd, tmp_path: Path) -> None:
    """CLI.js `--env <environment_name>` picks a file's env_<name> block; here -e/--env
    sets one variable and --env-name picks the block: one sentence says so, exit 2,
    nothing started. --env-name then does what PM2's --env did."""
    out = tmp_path / "env.json"
    file = tmp_path / "ecosystem.json"
    app = {
        "name": "api",
        "script": child("env_dump.py"),
        "interpreter": PY,
        "args": [str(out)],
        "env": {"STAGE": "dev"},
        "env_production": {"STAGE": "prod"},
    }
    file.write_text(json.dumps({"apps": [app]}))
    for target in (child("park.py"), str(file)):
        result = pmd.run("start", target, "--env", "production", check=False)
        assert result.returncode == 2
        line = one_line_error(result.stderr)
        assert "use --env-name production" in line and "env_production" in line
    assert pmd.list() == []
    pmd.run("start", str(file), "--env-name", "production")
    dump = wait_until(lambda: out.exists() and json.loads(out.read_text()), what="env dump")
    assert dump["env"]["STAGE"] == "prod"


def test_mistyped_command_or_flag_suggests_the_nearest(pmd: Pmd) -> None:
    """PM2 (commander) answers an unknown command with the nearest one; so does pmdaemon,
    for commands and options, in one line with where --help is; nothing is started."""
    result = pmd.run("strat", "x", check=False)
    assert result.returncode == 2
    assert one_line_error(result.stderr) == (
        "error: unknown command 'strat' (did you mean 'start'?) (see pmdaemon --help)"
    )
    result = pmd.run("start", child("park.py"), "--max-memroy-restart", "200M", check=False)
    assert result.returncode == 2
    assert one_line_error(result.stderr) == (
        "error: unknown option '--max-memroy-restart' (did you mean '--max-memory-restart'?) "
        "(see pmdaemon start --help)"
    )
    # PM2's own names for pmdaemon's commands are named, not guessed from the spelling.
    result = pmd.run("status", check=False)
    assert "did you mean 'list'?" in one_line_error(result.stderr)
    result = pmd.run("start", child("park.py"), "--exec-mode", "forkk", check=False)
    assert "did you mean 'fork'?" in one_line_error(result.stderr)
    result = pmd.run("list", "--zzz", check=False)
    assert one_line_error(result.stderr) == (
        "error: unknown option '--zzz' (see pmdaemon list --help)"
    )
    assert pmd.list() == []


def test_reset_sets_restart_counts_back_to_zero(pmd: Pmd) -> None:
    """CLI.js `reset <name|id|all>` (God.resetMetaProcessId: restart_time and
    unstable_restarts to 0); the count stays 0 after the daemon restarts."""
    for name in ("a", "b"):
        pid = pmd.start(child("park.py"), "--interpreter", PY, "-n", name)["processes"][0]["pid"]
        os.kill(pid, signal.SIGKILL)
        wait_until(
            lambda n=name, old=pid: (p := pmd.proc(n))["restarts"] == 1 and p["pid"] != old,
            what=f"{name} restarted",
        )
    reset = pmd.json("reset", "a")
    assert reset["success"] and [p["restarts"] for p in reset["processes"]] == [0]
    assert [(p["name"], p["restarts"]) for p in pmd.list()] == [("a", 0), ("b", 1)]
    assert "killed by SIGKILL" in pmd.proc("a")["restart_history"][-1]["reason"]  # kept
    pmd.run("reset", "all")
    pmd.run("kill")
    assert [(p["name"], p["restarts"]) for p in pmd.list()] == [("a", 0), ("b", 0)]
    result = pmd.run("reset", "nope", check=False)
    assert result.returncode == 1 and "no process with id or name 'nope'" in result.stderr


def test_env_prints_the_environment_with_values(
    pmd: Pmd, tmp_path: Path, web: Callable[..., Web]
) -> None:
    """CLI.js `env <id>` (Extra.js: every variable of the process with its value): over
    the owner-only Unix socket; `info` and the TCP API show names only."""
    out = tmp_path / "env.json"
    pmd.start(
        child("env_dump.py"),
        "--interpreter",
        PY,
        "-n",
        "envy",
        "-e",
        "SECRET=s3cr3t",
        "--",
        str(out),
    )
    dump = wait_until(lambda: out.exists() and json.loads(out.read_text()), what="env dump")
    lines = pmd.run("env", "envy").stdout.splitlines()
    assert "SECRET=s3cr3t" in lines and "PMDAEMON_NAME=envy" in lines
    shown = pmd.json("env", "envy")
    # What the process has (Python may coerce LC_CTYPE in its own copy).
    own = {k: v for k, v in dump["env"].items() if k != "LC_CTYPE"}
    assert shown["name"] == "envy" and {k: shown["env"].get(k) for k in own} == own
    assert pmd.json("env", str(shown["id"])) == shown
    assert pmd.proc("envy")["config"]["env"]["SECRET"] == "<hidden>"
    w = web("--api-key", KEY)
    headers = {"X-API-Key": KEY}
    assert httpx.get(f"{w.url}/api/processes/envy/env", headers=headers).status_code == 404
    detail = httpx.get(f"{w.url}/api/processes/envy", headers=headers).json()
    assert detail["config"]["env"]["SECRET"] == "<hidden>"
    result = pmd.run("env", "nope", check=False)
    assert result.returncode == 1 and one_line_error(result.stderr)


def test_jlist_and_prettylist(pmd: Pmd) -> None:
    """CLI.js `jlist` (the list as JSON on one line) and `prettylist` (indented)."""
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "p")
    jlist = pmd.run("jlist").stdout
    assert len(jlist.strip().splitlines()) == 1
    pretty = pmd.run("prettylist").stdout
    assert len(pretty.splitlines()) > 10
    for text in (jlist, pretty):
        procs = json.loads(text)
        assert [(p["name"], p["status"], p["pid"]) for p in procs] == [
            (p["name"], p["status"], p["pid"]) for p in pmd.list()
        ]


def test_init_writes_a_sample_that_validates_and_starts(pmd: Pmd, tmp_path: Path) -> None:
    """CLI.js `init` / `ecosystem` (Extra.js generateSample: ecosystem.config.js in the
    current folder, which `start` alone then starts). Here an existing file is never
    overwritten without --force; the sample validates in every format and starts."""
    work = tmp_path / "project"
    work.mkdir()
    run_in(pmd, work, "init")
    sample = work / "ecosystem.config.js"
    assert "module.exports" in sample.read_text()
    sample.write_text("// mine\n")
    refused = run_in(pmd, work, "init", check=False)
    assert refused.returncode == 1 and "--force" in one_line_error(refused.stderr)
    assert sample.read_text() == "// mine\n"
    run_in(pmd, work, "init", "simple", "--force")  # PM2's `init simple`
    assert "module.exports" in sample.read_text()
    for form in ("yaml", "json", "toml"):
        run_in(pmd, work, "init", "--format", form)
        checked = json.loads(run_in(pmd, work, "validate", f"ecosystem.{form}", "--json").stdout)
        assert checked["valid"] and checked["apps"] == ["app"]
    (work / "app.js").write_text("console.log(process.env.NODE_ENV); setInterval(() => {}, 9e5);\n")
    run_in(pmd, work, "start", "ecosystem.yaml", "--env-name", "production")
    pmd.wait_online("app")
    wait_until(lambda: "production" in pmd.run("logs", "app").stdout, what="the app's line")
    run_in(pmd, work, "validate", "ecosystem.config.js")
    # As `pm2 init && pm2 start`: start with no file takes ecosystem.config.js.
    run_in(pmd, work, "delete", "app")
    run_in(pmd, work, "start")
    pmd.wait_online("app")
    wait_until(lambda: "development" in pmd.run("logs", "app").stdout, what="the js app's line")


def test_a_namespace_names_its_apps(pmd: Pmd, web: Callable[..., Web]) -> None:
    """CLI.js `stop|restart|reload|delete <id|name|namespace|all>`: a namespace stands for
    its apps; an app of that name wins. The daemon resolves it, so the API does the same."""
    for name, namespace in (("a", "api"), ("b", "api"), ("jobs", "default"), ("c", "jobs")):
        pmd.start(child("park.py"), "--interpreter", PY, "-n", name, "--namespace", namespace)
    status = lambda: {p["name"]: p["status"] for p in pmd.list()}  # noqa: E731
    pmd.run("stop", "api")
    assert status() == {"a": "stopped", "b": "stopped", "jobs": "online", "c": "online"}
    pmd.run("restart", "api")
    assert status() == {"a": "online", "b": "online", "jobs": "online", "c": "online"}
    before = {p["name"]: p["pid"] for p in pmd.list()}
    pmd.run("reload", "api")
    after = {p["name"]: p["pid"] for p in pmd.list()}
    assert after["a"] != before["a"] and after["b"] != before["b"] and after["c"] == before["c"]
    pmd.run("stop", "jobs")  # the app named jobs, not the namespace jobs
    assert status() == {"a": "online", "b": "online", "jobs": "stopped", "c": "online"}
    w = web("--api-key", KEY)
    answer = httpx.post(f"{w.url}/api/processes/api/stop", headers={"X-API-Key": KEY}).json()
    assert sorted(p["name"] for p in answer["processes"]) == ["a", "b"]
    pmd.run("delete", "api")
    assert sorted(status()) == ["c", "jobs"]


def test_shell_operators_get_a_bash_hint(pmd: Pmd, tmp_path: Path) -> None:
    """PM2 runs a script with a space in it through `bash -c`; pmdaemon splits it and runs
    no shell, so `&&` reaches the program as an argument. One warning line says so and
    gives the exact command that runs it through bash; what runs is unchanged."""
    pmd.start_waits = True  # the hint repeats the command line as typed: nothing added
    marker = tmp_path / "ran"
    command = f"{PY} {child('park.py')} && touch {marker}"
    cwd = str(tmp_path)  # park.py writes its pid to a file named by its first argument
    result = pmd.run("start", command, "-n", "chain", "--cwd", cwd, "--json")
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "shell operators (&&)" in warnings[0]
    suggested = warnings[0].split("delete it and run: ", 1)[1]
    assert shlex.split(suggested) == [
        "pmdaemon",
        "start",
        "bash",
        "-n",
        "chain",
        "--cwd",
        cwd,
        "--json",
        "--",
        "-c",
        command,
    ]
    pid = json.loads(result.stdout)["processes"][0]["pid"]
    assert cmdline(pid)[-3:] == ["&&", "touch", str(marker)]  # split, not run by a shell
    pmd.run("delete", "chain")
    pmd.run(*shlex.split(suggested)[1:])
    info = pmd.wait_online("chain")
    shell, flag, *_ = cmdline(info["pid"])
    assert (os.path.basename(shell), flag) == ("bash", "-c")
    # Quoted, an operator is part of an argument: no warning.
    quoted = f"{PY} {child('park.py')} 'a;b' \"c && d\""
    quiet = pmd.run("start", quoted, "-n", "quoted", "--cwd", cwd)
    assert "warning" not in quiet.stderr


def test_an_app_that_dies_at_once_is_not_started_successfully(pmd: Pmd) -> None:
    """PM2 prints its table with the app `online` and exits 0 even when the app crashed at
    once. Here start watches the new runs for min_uptime: a crash is one line naming the
    exit and where the logs are, exit 1, never "started successfully"; an exit 0 is a
    warning (it did what it was asked); an app that stays up started successfully."""
    pmd.start_waits = True  # this test checks what start reports
    result = pmd.run(
        "start", child("exit_code.py"), "--interpreter", PY, "-n", "x", "--", "1", check=False
    )
    assert result.returncode == 1
    assert one_line_error(result.stderr) == (
        "error: x exited within 1s of starting (exit code 1): see pmdaemon logs x"
    )
    assert "successfully" not in result.stdout
    result = pmd.run(
        "start",
        child("exit_code.py"),
        "--interpreter",
        PY,
        "-n",
        "y",
        "--min-uptime",
        "300ms",
        "-i",
        "2",
        "--json",
        "--",
        "2",
        check=False,
    )
    assert result.returncode == 1
    answer = json.loads(result.stdout)
    assert answer["success"] is False
    assert sorted(e["message"] for e in answer["errors"]) == [
        f"y-{i} exited within 300ms of starting (exit code 2): see pmdaemon logs y-{i}"
        for i in (0, 1)
    ]
    result = pmd.run(
        "start", f"{PY} -c 'import os; os.kill(os.getpid(), 9)'", "-n", "z", check=False
    )
    assert result.returncode == 1 and "(killed by SIGKILL)" in one_line_error(result.stderr)
    clean = pmd.run("start", child("exit_code.py"), "--interpreter", PY, "-n", "ok0", "--", "0")
    assert "warning: ok0 exited within 1s of starting (exit code 0)" in clean.stderr
    up = pmd.run("start", child("park.py"), "--interpreter", PY, "-n", "up")
    assert up.stdout.startswith("Process started successfully") and not up.stderr
    # --no-wait returns once spawned, as PM2 does: the crash is not watched for.
    fast = pmd.run(
        "start", child("exit_code.py"), "--interpreter", PY, "-n", "w", "--no-wait", "--", "1"
    )
    assert fast.stdout.startswith("Process started successfully")


def test_help_names_the_pm2_habits() -> None:
    """--help stays true: the new flags and commands are listed."""
    top = subprocess.run([PMDAEMON, "--help"], capture_output=True, text=True, check=True)
    for command in ("reset", "env", "jlist", "prettylist", "init (ecosystem)"):
        assert f"\n    {command} " in top.stdout, command
    start = subprocess.run(
        [PMDAEMON, "start", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in (
        "--max-memory-restart",
        "--cron-restart",
        "--cron",
        "--watch",
        "--ignore-watch",
        "--watch-delay",
        "--time",
        "--no-autorestart",
        "--merge-logs",
        "--no-wait",
    ):
        assert flag in start, flag
