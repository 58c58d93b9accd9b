"""PM2's ecosystem files and fields, started by the real CLI against the real daemon: .js
files evaluated by node as PM2 loads them, the shapes PM2 reads, PM2's fields acted on, and
`apply` (PM2's startOrRestart) with its plan."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import PMDAEMON, Pmd, child, free_range, wait_until

PY = sys.executable
PARK = child("park.py")
DUMP = child("env_dump.py")
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def dump_of(path: Path) -> dict[str, object]:
    data: dict[str, object] = wait_until(
        lambda: path.exists() and json.loads(path.read_text()), what=f"{path.name} written"
    )
    return data


def env_of(path: Path) -> dict[str, str]:
    env = dump_of(path)["env"]
    assert isinstance(env, dict)
    return env


@needs_node
def test_a_config_js_file_is_evaluated_like_pm2_does(pmd: Pmd, tmp_path: Path) -> None:
    """PM2 `require`s ecosystem.config.js: process.env, __dirname, a helper module beside
    it (as dotenv would be) and a `.env` read by it all work; what the file prints goes to
    stderr; `start` with no file finds ecosystem.config.js in the current directory."""
    (tmp_path / "settings.js").write_text(
        "const fs = require('fs');\n"
        "for (const line of fs.readFileSync(__dirname + '/.env', 'utf8').split('\\n')) {\n"
        "  const [k, v] = line.split('='); if (k && !(k in process.env)) process.env[k] = v;\n"
        "}\n"
    )
    (tmp_path / ".env").write_text("GREETING=hello from .env\n")
    out = tmp_path / "dump.json"
    (tmp_path / "ecosystem.config.js").write_text(
        "require('./settings');\n"
        "const path = require('path');\n"
        "console.log('loading the config');\n"
        "module.exports = {\n"
        "  apps: [{\n"
        "    name: 'API Server',\n"
        f"    script: {json.dumps(DUMP)},\n"
        f"    interpreter: {json.dumps(PY)},\n"
        f"    args: [path.join(__dirname, 'dump.json')],\n"
        "    env: { GREETING: process.env.GREETING, FROM_SHELL: process.env.SHELL_VALUE },\n"
        "    vizion: false, pmx: true, source_map_support: true,\n"
        "  }],\n"
        "};\n"
    )
    pmd.env["SHELL_VALUE"] = "from the shell"
    result = subprocess_in(pmd, tmp_path, "start")
    assert result.returncode == 0, result.stderr
    assert "loading the config" in result.stderr and "loading the config" not in result.stdout
    assert "source_map_support" in result.stderr  # a warning says why it does nothing
    env = env_of(out)
    assert env["GREETING"] == "hello from .env" and env["FROM_SHELL"] == "from the shell"
    assert pmd.wait_online("API Server")["name"] == "API Server"  # a name with a space


def subprocess_in(pmd: Pmd, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PMDAEMON, *args], cwd=cwd, env=pmd.env, capture_output=True, text=True, timeout=60
    )


@needs_node
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("throw new Error('no database url')", "raised Error: no database url (line 1)"),
        ("module.exports = {}", "it exports nothing"),
        ("module.exports = 42", "it exports a number"),
        ("for (;;) {}", "did not finish evaluating the file within 2 s"),
        ("setInterval(() => {}, 1000); module.exports = {apps: [{script: 'x'}]}", None),
        ("module.exports = {apps: [{script: 'a.js', cron_restart: '* * *'}]}", "3 field(s)"),
    ],
)
def test_a_js_file_that_throws_loops_or_exports_nothing(
    pmd: Pmd, tmp_path: Path, text: str, expected: str | None
) -> None:
    """A .js file that throws, loops or exports nothing is one sentence and starts nothing;
    one that leaves a timer running is read all the same (node is told to exit)."""
    file = tmp_path / "ecosystem.config.js"
    file.write_text(text)
    pmd.env["PMDAEMON_CONFIG_TIMEOUT"] = "2"
    result = pmd.run("validate", str(file), check=False)
    if expected is None:
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 1
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert expected in line and "Traceback" not in result.stderr
    assert pmd.run("start", str(file), check=False).returncode == 1
    assert pmd.list() == []


def test_without_node_a_js_file_is_one_sentence(pmd: Pmd, tmp_path: Path) -> None:
    """With no node on PATH the file cannot be read: the CLI says what to do."""
    file = tmp_path / "ecosystem.config.js"
    file.write_text("module.exports = {apps: [{script: 'a.js'}]}")
    pmd.env["PATH"] = str(tmp_path / "empty")
    result = pmd.run("validate", str(file), check=False)
    assert result.returncode == 1
    assert "node is needed to read a JavaScript ecosystem file" in result.stderr


@pytest.mark.parametrize(
    "document",
    [
        {"apps": {"name": "one", "script": PARK, "interpreter": PY}},
        [{"name": "one", "script": PARK, "interpreter": PY}],
        {"name": "one", "script": PARK, "interpreter": PY},
        {"pm2": [{"name": "one", "script": PARK, "interpreter": PY}], "deploy": {}},
    ],
    ids=["apps-object", "top-level-array", "bare-app", "pm2-key"],
)
def test_the_shapes_pm2_loads(pmd: Pmd, tmp_path: Path, document: object) -> None:
    """PM2's _startJson reads `apps` (or `pm2`), one object as a list of one, a top-level
    array and one bare app."""
    file = tmp_path / "process.json"
    file.write_text(json.dumps(document))
    pmd.run("start", str(file))
    assert pmd.wait_online("one")["status"] == "online"
    pmd.run("stop", str(file))
    assert pmd.proc("one")["status"] == "stopped"
    pmd.run("delete", str(file))
    assert pmd.list() == []


@needs_node
def test_json_read_as_leniently_as_pm2(pmd: Pmd, tmp_path: Path) -> None:
    """PM2 evaluates a .json file as a JavaScript expression: comments, trailing commas,
    single quotes and bare keys load."""
    file = tmp_path / "ecosystem.json"
    file.write_text(
        "// the services\n{\n  apps: [\n"
        f"    {{ name: 'lenient', script: {json.dumps(PARK)}, interpreter: '{PY}', }},\n"
        "  ],\n}\n"
    )
    pmd.run("start", str(file))
    assert pmd.wait_online("lenient")["status"] == "online"


def test_pm2_fields_are_acted_on(pmd: Pmd, tmp_path: Path) -> None:
    """filter_env, disable_logs, log (PM2's name of log_file) true, autostart, uid/gid
    spelt as PM2 does, pid (PM2's pid_file), exec and kill_timeout in milliseconds."""
    out = tmp_path / "dump.json"
    pmd.env.update(SECRET_TOKEN="s3cret", KEEP_ME="yes")
    apps = [
        {
            "name": "filtered",
            "exec": DUMP,
            "interpreter": PY,
            "args": [str(out)],
            "filter_env": ["SECRET"],
            "log": True,
            "pid": "app.pid",
            "kill_timeout": 3000,
            "cwd": str(tmp_path),
        },
        {
            "name": "quiet",
            "script": child("spew.py"),
            "args": ["3"],  # without its line count spew.py exits 1 at once
            "interpreter": PY,
            "disable_logs": True,
        },
        {"name": "later", "script": PARK, "interpreter": PY, "autostart": False},
    ]
    file = tmp_path / "process.json"
    file.write_text(json.dumps({"apps": apps}))
    pmd.run("start", str(file))
    env = env_of(out)
    assert "SECRET_TOKEN" not in env and env["KEEP_ME"] == "yes"
    info = pmd.proc("filtered")
    assert info["config"]["kill_timeout"] == 3.0
    assert info["logs"]["log_file"] == str(pmd.home / "logs" / "filtered.log")
    assert info["pid_file"] == str(tmp_path / "app.pid")
    assert (tmp_path / "app.pid").read_text().strip() == str(info["pid"])
    quiet = pmd.wait_online("quiet")
    assert quiet["logs"]["out_file"] == os.devnull
    assert pmd.proc("later")["status"] == "stopped"


@needs_node
def test_instances_zero_and_minus_one_in_a_pm2_file(pmd: Pmd, tmp_path: Path) -> None:
    """In PM2, instances 0 (or "max") is one per CPU and -1 one per CPU but one (at least
    one); PMDaemon's JSON files keep 0 as "created, not started"."""
    cpus = len(os.sched_getaffinity(0))
    port = free_range(cpus + 1)
    apps = [
        {
            "name": "every",
            "script": PARK,
            "interpreter": PY,
            "instances": 0,
            "exec_mode": "cluster",
            "port": f"{port}-{port + cpus - 1}",
        },
        {"name": "most", "script": PARK, "interpreter": PY, "instances": -1},
    ]
    file = tmp_path / "ecosystem.config.js"
    file.write_text(f"module.exports = {json.dumps({'apps': apps})}")
    pmd.run("start", str(file))
    names = sorted(p["name"] for p in pmd.list())
    expected = [f"every-{i}" for i in range(cpus)] if cpus > 1 else ["every"]
    most = [f"most-{i}" for i in range(cpus - 1)] if cpus > 2 else ["most"]
    assert names == sorted(expected + most)


def test_append_env_to_name(pmd: Pmd, tmp_path: Path) -> None:
    """append_env_to_name with --env-name PROFILE names the app NAME-PROFILE."""
    app = {
        "name": "api",
        "script": PARK,
        "interpreter": PY,
        "append_env_to_name": True,
        "env_staging": {"STAGE": "1"},
    }
    file = tmp_path / "process.json"
    file.write_text(json.dumps({"apps": [app]}))
    pmd.run("start", str(file), "--env-name", "staging")
    assert [p["name"] for p in pmd.list()] == ["api-staging"]


def test_apply_plans_and_carries_out(pmd: Pmd, tmp_path: Path) -> None:
    """`apply FILE`: create, unchanged, update (the changed fields named; the new
    configuration takes effect, which PM2's restart does not do), remove with --prune,
    and --dry-run changes nothing."""
    out = tmp_path / "dump.json"
    file = tmp_path / "process.json"

    def write(level: str, with_worker: bool = True) -> None:
        apps = [
            {
                "name": "api",
                "script": DUMP,
                "interpreter": PY,
                "args": [str(out)],
                "env": {"LEVEL": level},
            },
        ]
        if with_worker:
            apps.append({"name": "worker", "script": PARK, "interpreter": PY})
        file.write_text(json.dumps({"apps": apps}))

    write("info")
    result = pmd.run("apply", str(file))
    assert [line.split() for line in result.stdout.splitlines()[1:]] == [
        ["create", "api"],
        ["create", "worker"],
    ]
    assert env_of(out)["LEVEL"] == "info"
    worker_pid = pmd.wait_online("worker")["pid"]

    result = pmd.run("apply", str(file))
    assert [line.split() for line in result.stdout.splitlines()[1:]] == [
        ["unchanged", "api"],
        ["unchanged", "worker"],
    ]

    write("debug")
    dry = pmd.run("apply", str(file), "--dry-run")
    assert "dry run" in dry.stdout and ["update", "api", "(env)"] in [
        line.split() for line in dry.stdout.splitlines()
    ]
    assert env_of(out)["LEVEL"] == "info"
    out.unlink()
    pmd.run("apply", str(file))
    assert env_of(out)["LEVEL"] == "debug"
    assert pmd.proc("worker")["pid"] == worker_pid  # unchanged: left running

    write("debug", with_worker=False)
    kept = pmd.run("apply", str(file))
    assert "worker" not in kept.stdout and pmd.proc("worker")["status"] == "online"
    pruned = pmd.json("apply", str(file), "--prune")
    assert {"name": "worker", "action": "remove", "changes": []} in pruned["plan"]
    assert [p["name"] for p in pmd.list()] == ["api"]


def test_start_or_restart_restarts_unchanged_apps(pmd: Pmd, tmp_path: Path) -> None:
    """PM2's startOrRestart: start what is missing, restart what runs."""
    file = tmp_path / "process.json"
    file.write_text(json.dumps({"apps": [{"name": "w", "script": PARK, "interpreter": PY}]}))
    pmd.run("startOrRestart", str(file))
    first = pmd.wait_online("w")["pid"]
    result = pmd.run("startOrRestart", str(file))
    assert "restarted" in result.stdout
    pmd.wait_online("w", not_pid=first)


def test_apply_refuses_a_bad_file_whole(pmd: Pmd, tmp_path: Path) -> None:
    """A bad app in the file: one line, and nothing of the file is applied."""
    file = tmp_path / "process.json"
    good = {"name": "good", "script": PARK, "interpreter": PY}
    file.write_text(json.dumps({"apps": [good, {"name": "bad", "script": PARK, "port": 0}]}))
    result = pmd.run("apply", str(file), check=False)
    assert result.returncode == 1 and "port 0" in result.stderr
    assert "Traceback" not in result.stderr
    assert pmd.list() == []


def test_log_type_json(pmd: Pmd, tmp_path: Path) -> None:
    """PM2's log_type json: every line written as {message, timestamp, type, process_id,
    app_name}; with log_date_format the timestamp takes that format."""
    apps = [
        {
            "name": name,
            "script": "bash",
            "args": ["-c", "echo 'hello \"world\"'; echo oops >&2; exec sleep 1000"],
            "interpreter": "none",
            "log_type": "json",
            "out_file": str(tmp_path / f"{name}-out.log"),
            "error_file": str(tmp_path / f"{name}-err.log"),
            **extra,
        }
        for name, extra in (("plain", {}), ("dated", {"log_date_format": "YYYY-MM-DD"}))
    ]
    file = tmp_path / "process.json"
    file.write_text(json.dumps({"apps": apps}))
    pmd.run("start", str(file))
    for name in ("plain", "dated"):
        pid = pmd.wait_online(name)["id"]
        out = wait_until(lambda n=name: (tmp_path / f"{n}-out.log").read_text().strip())
        err = wait_until(lambda n=name: (tmp_path / f"{n}-err.log").read_text().strip())
        line, problem = json.loads(out), json.loads(err)
        assert line["message"] == 'hello "world"' and line["type"] == "out"
        assert problem["message"] == "oops" and problem["type"] == "err"
        assert line["app_name"] == name and line["process_id"] == pid
        stamp = line["timestamp"]
        if name == "plain":
            assert stamp.endswith("Z") and "T" in stamp
        else:
            assert len(stamp) == 10 and stamp.count("-") == 2


@needs_node
def test_require_dotenv_works(pmd: Pmd, tmp_path: Path) -> None:
    """The habit of most PM2 files: `require('dotenv').config()` at the top, reading the
    `.env` of the directory the command runs in (the real npm package)."""
    from helpers import NODE_MODULES

    if not (NODE_MODULES / "dotenv").is_dir():
        pytest.skip("the npm package dotenv is not installed (scripts/test installs it)")
    (tmp_path / ".env").write_text("API_TOKEN=from-dotenv\n")
    out = tmp_path / "dump.json"
    (tmp_path / "ecosystem.config.js").write_text(
        "require('dotenv').config();\n"
        "module.exports = { apps: [{ name: 'api', "
        f"script: {json.dumps(DUMP)}, interpreter: {json.dumps(PY)}, "
        f"args: [{json.dumps(str(out))}], "
        "env: { API_TOKEN: process.env.API_TOKEN } }] };\n"
    )
    result = subprocess_in(pmd, tmp_path, "start", "ecosystem.config.js")
    assert result.returncode == 0, result.stderr
    assert env_of(out)["API_TOKEN"] == "from-dotenv"


def test_uid_without_root_is_one_sentence(throwaway_user: str, tmp_path: Path) -> None:
    """PM2's uid/gid need root ("To use UID and GID please run PM2 as root"); a daemon of
    an unprivileged user refuses such an app in one sentence and starts nothing."""
    import pwd
    import sysconfig
    import tempfile

    system_python = shutil.which("python3.11", path="/usr/bin:/usr/local/bin")
    if system_python is None:
        pytest.skip("no interpreter outside root's home that another user may run")
    account = pwd.getpwnam(throwaway_user)
    work = Path(tempfile.mkdtemp(prefix="pmdaemon-uid-"))  # reachable by the account
    os.chown(work, account.pw_uid, account.pw_gid)
    file = work / "ecosystem.json"
    file.write_text(
        json.dumps(
            {
                "apps": [
                    {
                        "name": "as-root",
                        "script": "sleep",
                        "args": "60",
                        "interpreter": "none",
                        "uid": "root",
                    }
                ]
            }
        )
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PMDAEMON_HOME": str(work / "home"),
        "PYTHONPATH": sysconfig.get_paths()["purelib"],
        "NO_COLOR": "1",
    }
    cli = [system_python, "-c", "import sys; from pmdaemon.cli.main import main; sys.exit(main())"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cli, *args],
            env=env,
            cwd=work,
            user=account.pw_uid,
            group=account.pw_gid,
            capture_output=True,
            text=True,
            timeout=60,
        )

    try:
        probe = run("-V")
        if probe.returncode != 0:
            pytest.skip(
                f"the installed package does not run under {system_python}: "
                f"{probe.stderr.strip()[-200:]}"
            )
        result = run("start", str(file))
        assert result.returncode == 1, result.stdout + result.stderr
        [line] = [x for x in result.stderr.splitlines() if x.startswith("error:")]
        assert "root" in line and "Traceback" not in result.stderr
        assert json.loads(run("list", "--json").stdout) == []
    finally:
        run("kill")
        shutil.rmtree(work, ignore_errors=True)


def test_apply_that_cannot_place_an_app_changes_nothing(pmd: Pmd, tmp_path: Path) -> None:
    """A changed app whose new port another process holds: refused before anything is
    deleted; every app stays as it was."""
    port = free_range(3)
    file = tmp_path / "process.json"

    def write(api_port: int) -> None:
        apps = [
            {"name": "api", "script": PARK, "interpreter": PY, "port": api_port},
            {"name": "cl", "script": PARK, "interpreter": PY, "instances": 2},
        ]
        file.write_text(json.dumps({"apps": apps}))

    write(port)
    pmd.run("apply", str(file))
    before = {p["name"]: p["pid"] for p in pmd.list()}
    pmd.run("start", PARK, "--interpreter", PY, "--name", "other", "--port", str(port + 2))
    write(port + 2)
    result = pmd.run("apply", str(file), check=False)
    assert result.returncode == 1 and str(port + 2) in result.stderr
    assert "Traceback" not in result.stderr
    after = {p["name"]: p["pid"] for p in pmd.list() if p["name"] != "other"}
    assert after == before
