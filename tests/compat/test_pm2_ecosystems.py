"""PM2 users' own ecosystem files, as found in public repositories (tests/data/pm2-ecosystems;
MANIFEST.json names each one's repository, path, commit and licence, and what PM2 7 makes of
it): every file PM2 loads passes `pmdaemon validate` unchanged, every file PM2 refuses is
refused with one line per problem, and ten of them start, their programs replaced by a node
stand-in, with the environment, ports and instances PM2 would give them.

"PM2 loads it" is what `pm2 start FILE` does before it starts anything (lib/API.js
`_startJson`): Common.parseConfig, then `apps` / `pm2` / the whole document wrapped in a list,
then Common.verifyConfs, and no app left without a script; pm2_loads.js beside the manifest
asks PM2 itself, and test_the_manifest_says_what_pm2_says checks it still agrees.

An entry: dir, file, repo, path, commit, license (null where the repository shows none) and
license_from (the file it was read from), pm2_loads, pm2_error, notes,
validate ("ok" or "error": what `pmdaemon validate` must say; PM2's verdict except for .mjs,
which PM2 cannot load and pmdaemon must), pm2_apps (name, script, instances and exec_mode as
PM2 resolves them), and where needed npm (packages the file requires from its project),
project_paths (paths of its project it names, created empty before it is used: watched
folders and files) and also (other files of its project stored beside it).

The third-party files are read from tests/data/pm2-ecosystems/NNN-owner-repo/, else from the
steering repository's shared/pm2-ecosystems/ beside the checkout; an entry found in neither
is skipped with that reason."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from helpers import NODE_MODULES, PMDAEMON, Pmd, wait_until

DATA = Path(__file__).parents[1] / "data" / "pm2-ecosystems"
SHARED = Path(__file__).parents[3] / "shared" / "pm2-ecosystems"
MANIFEST: list[dict[str, Any]] = json.loads((DATA / "MANIFEST.json").read_text())
BY_DIR = {e["dir"]: e for e in MANIFEST}
NODE = shutil.which("node")
PM2 = Path(__file__).parents[2] / "bench" / ".cache" / "pm2" / "node_modules" / "pm2"
JS = (".js", ".cjs", ".mjs")
# Files PM2 loads that pmdaemon refuses on purpose (docs/compat.md has a row for each):
# the problem the refusal must name.
DELIBERATE = {
    # two apps named echo-python (4 instances: echo-python-0 ... -3) and echo-python-3:
    # instances here are processes with names of their own, and a name is one process
    "004-priyanjali-mtalkz-pm2": "is also the name of an instance of apps[0]",
    # `instance` (a typo of instances) in a .json file: unknown fields are refused with a
    # suggestion outside PM2's own .js format
    "046-7odri9o-pm2-two-process": "unknown field 'instance' (did you mean 'instances'?)",
}
VALID = [e["dir"] for e in MANIFEST if e["validate"] == "ok" and e["dir"] not in DELIBERATE]
REFUSED = [e["dir"] for e in MANIFEST if e["validate"] == "error"]


def suffix(entry: dict[str, Any]) -> str:
    return Path(entry["file"]).suffix


def corpus_dir(entry: dict[str, Any]) -> Path | None:
    for root in (DATA, SHARED):
        if (root / entry["dir"] / entry["file"]).is_file():
            return root / entry["dir"]
    return None


def strict_json(path: Path) -> bool:
    try:
        json.loads(path.read_text())
    except ValueError:
        return False
    return True


def node_resolves(module: str, env: dict[str, str]) -> bool:
    assert NODE is not None
    probe = subprocess.run(
        [NODE, "-e", f"require.resolve({json.dumps(module)})"],
        env=env,
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


def checked_out(entry: dict[str, Any], tmp_path: Path, env: dict[str, str]) -> Path:
    """A copy of the entry's directory under tmp_path (a file's own `.env` or log files land
    there, never in the corpus), with the paths of its project that it names (project_paths:
    watched folders and files) created empty; the file's path in it. Skips when what the
    file needs is missing here: the file itself, node, or an npm package its project installs."""
    source = corpus_dir(entry)
    if source is None:
        pytest.skip(
            f"{entry['dir']} is not in this checkout (the third-party files are not "
            f"committed; MANIFEST.json names where each comes from)"
        )
    target = tmp_path / entry["dir"]
    shutil.copytree(source, target)
    for needed in entry.get("project_paths", []):  # in the file's project, not in the corpus
        if needed.endswith("/"):
            (target / needed).mkdir(parents=True, exist_ok=True)
        else:
            (target / needed).parent.mkdir(parents=True, exist_ok=True)
            (target / needed).touch()
    file = target / entry["file"]
    needs_node = suffix(entry) in JS or (suffix(entry) == ".json" and not strict_json(file))
    if needs_node and NODE is None:
        pytest.skip("node is not installed: PM2's JavaScript files are evaluated by node")
    for module in entry.get("npm", []):
        if not node_resolves(module, env):
            pytest.skip(
                f"needs the npm package {module}, which the file's own project installs: "
                f"put a node_modules holding it on NODE_PATH"
            )
    return file


def cli(
    pmd: Pmd, *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The installed `pmdaemon`, run where a PM2 user runs `pm2`: in the file's directory."""
    return subprocess.run(
        [PMDAEMON, *args],
        env={**pmd.env, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_the_corpus_is_what_the_manifest_names() -> None:
    """At least 45 real files, of every kind PM2 reads: JavaScript (.js, .cjs, .mjs), JSON
    (PM2 evaluates .json as a JavaScript expression) and YAML."""
    assert len(MANIFEST) >= 45
    kinds = [suffix(e) for e in MANIFEST]
    assert sum(k in JS for k in kinds) >= 25
    assert kinds.count(".json") >= 8
    assert sum(k in (".yml", ".yaml") for k in kinds) >= 3
    assert len(BY_DIR) == len(MANIFEST)
    for entry in MANIFEST:
        assert re.fullmatch(r"[0-9]{3}-.+", entry["dir"]), entry["dir"]
        assert re.fullmatch(r"[0-9a-f]{40}", entry["commit"]), entry["dir"]
        assert Path(entry["path"]).name == entry["file"], entry["dir"]
        assert entry["validate"] in ("ok", "error"), entry["dir"]
    on_disk = {p.name for p in DATA.iterdir() if p.is_dir()}
    assert on_disk <= set(BY_DIR), on_disk - set(BY_DIR)
    assert sum(e["pm2_loads"] for e in MANIFEST) >= len(MANIFEST) * 0.8


@pytest.mark.parametrize("name", sorted(BY_DIR))
def test_the_manifest_says_what_pm2_says(tmp_path: Path, name: str) -> None:
    """PM2 7 (bench/.cache/pm2): parseConfig + verifyConfs on the file, in its directory,
    with a PM2_HOME of its own."""
    entry = BY_DIR[name]
    if NODE is None or not (PM2 / "lib" / "Common.js").is_file():
        pytest.skip("PM2 is not installed in bench/.cache/pm2 (bench/pm2.py installs it)")
    env = {k: v for k, v in os.environ.items() if k != "PM2_HOME"}
    env["PM2_HOME"] = str(tmp_path / "pm2-home")
    if NODE_MODULES.is_dir():
        env["NODE_PATH"] = str(NODE_MODULES)
    file = checked_out(entry, tmp_path, env)
    result = subprocess.run(
        [NODE, str(DATA / "pm2_loads.js"), str(file)],
        cwd=file.parent,
        env={**env, "PM2_PACKAGE": str(PM2)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    verdict = json.loads(result.stdout.strip().splitlines()[-1])
    assert verdict["loads"] == entry["pm2_loads"], verdict["error"]


@pytest.mark.parametrize("name", VALID)
def test_a_file_pm2_loads_validates_unchanged(pmd: Pmd, tmp_path: Path, name: str) -> None:
    """PM2's loading (lib/Common.js parseConfig, lib/API.js _startJson): every shape it
    accepts ({apps: [...]}, a bare app, a top-level array), .json read as JavaScript, fields
    it accepts without effect here (warnings on stderr are fine)."""
    entry = BY_DIR[name]
    file = checked_out(entry, tmp_path, pmd.env)
    result = cli(pmd, "validate", str(file), cwd=file.parent)
    assert result.returncode == 0, f"{entry['repo']} {entry['path']}: {result.stderr}"
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", sorted(DELIBERATE))
def test_a_deliberate_difference_is_one_sentence(pmd: Pmd, tmp_path: Path, name: str) -> None:
    """A file PM2 loads and pmdaemon refuses on purpose (docs/compat.md): one sentence
    naming the problem, nothing else wrong with the file."""
    entry = BY_DIR[name]
    file = checked_out(entry, tmp_path, pmd.env)
    result = cli(pmd, "validate", str(file), cwd=file.parent)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    problems = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert problems and all(DELIBERATE[name] in line for line in problems), problems


@pytest.mark.parametrize("name", REFUSED)
def test_a_file_pm2_refuses_gets_one_line_per_problem(pmd: Pmd, tmp_path: Path, name: str) -> None:
    """What PM2 refuses (a syntax error, ESM in a .cjs file, an app without a script), we
    refuse too: each problem one `error:` line naming the file, no traceback."""
    entry = BY_DIR[name]
    file = checked_out(entry, tmp_path, pmd.env)
    result = cli(pmd, "validate", str(file), cwd=file.parent)
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    problems = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert problems, result.stderr
    assert all(entry["file"] in line for line in problems), problems


# ---------------------------------------------------------------------------------------
# Ten files start. Each app's script becomes a node stand-in that reports its pid, argv,
# working directory and environment to a JSON file outside the app's tree (a watched tree
# must not see it) and listens on 127.0.0.1:$PORT when PORT is set.

STAND_IN = """\
'use strict';
const fs = require('fs');
const net = require('net');
const path = require('path');
const reports = %(reports)s;
function report(extra) {
  const file = path.join(reports, process.pid + '.json');
  const body = JSON.stringify({pid: process.pid, script: __filename, argv: process.argv.slice(2),
    cwd: process.cwd(), env: process.env, ...extra});
  fs.writeFileSync(file + '.tmp', body);
  fs.renameSync(file + '.tmp', file);
  if (process.send) process.send('ready');
}
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
setInterval(() => {}, 1 << 30);
if (process.env.PORT) {
  const server = net.createServer((socket) => socket.end('stand-in\\n'));
  server.on('error', (error) => report({port: Number(process.env.PORT), error: error.code}));
  server.listen(Number(process.env.PORT), '127.0.0.1',
    () => report({port: server.address().port, error: null}));
} else {
  report({port: null, error: null});
}
"""


@dataclass(frozen=True)
class App:
    instances: int | str = 1  # "cpus": PM2's 'max' / 0 (os.cpus().length)
    env: dict[str, str] = field(default_factory=dict)
    port: int | str | None = None  # "{port}": the free port the test passed in the CLI's env
    argv: list[str] | None = None


@dataclass(frozen=True)
class Start:
    apps: dict[str, App]
    doc: str
    env_name: str | None = None
    environ: dict[str, str] = field(default_factory=dict)  # the CLI's env; "{port}" replaced


STARTS: dict[str, Start] = {
    "002-GymnastiarR-attendance-backend": Start(
        {
            "main app": App(
                env={"NODE_ENV": "production", "KEY": "a4Sly75HWX"}, port=3000, argv=["limit"]
            )
        },
        "an app name with a space; --env production merges env_production over env; args",
        env_name="production",
    ),
    "013-changejang-express-mongodb": Start(
        {"app": App(env={"PORT": "24921"}, port=24921)},
        "exec_mode cluster with one instance; env PORT",
    ),
    "022-zhengpq-docker-test": Start(
        {
            "docker-test": App(
                env={"NODE_ENV": "production", "node_args": "--inspect=0.0.0.0:9229"}, port="{port}"
            )
        },
        "the file is evaluated with the CLI's process.env (PORT: process.env.APP_PORT), its "
        "console.log does not break loading, env_production applies",
        env_name="production",
        environ={"APP_PORT": "{port}"},
    ),
    "044-0xseven7-pm2-demo": Start(
        {"pm2-demo": App(env={"NODE_ENV": "production"}, port=9000)},
        "a JSON file with a deploy section before apps; watch: true; env_production",
        env_name="production",
    ),
    "040-git-dash-capstone-node": Start(
        {"order-service": App(env={"NODE_ENV": "development"}, port=3001)},
        "pm2.config.js exporting a top-level array; cluster of one; watch: true",
    ),
    "021-sameer-ranjan-singh-Sell-My-Course": Start(
        {"node-pm2": App(port=3000)},
        "PM2's port field becomes the app's PORT (lib/Common.js prepareAppConf)",
    ),
    "019-navanitvish-EcoBackend": Start(
        {"ecobackend": App(instances=2, env={"NODE_ENV": "production"})},
        "a cluster of 2; error_file/out_file in ./logs, which PM2 creates",
    ),
    "061-matiasilva-atriposaday": Start(
        {
            "atriposaday": App(
                instances=2,
                env={"ATAD_SOCKET": "web.sock", "ATAD_FQDN": "https://atriposaday.soc.srcf.net"},
            )
        },
        "a YAML file; a cluster of 2 with env",
    ),
    "039-ariellsantos-airbag-api": Start(
        {
            "API airbag": App(),
            "Job.latest.currencies-rates": App(),
            "Job.latest.vehicles-prices": App(),
        },
        "module.exports a top-level array (trailing comma); names with a space and dots",
    ),
    "045-17koa-koa2-startkit": Start(
        {"koa2-startkit": App(instances="cpus", env={"NODE_ENV": "production"})},
        "a // comment in JSON; cluster with instances 0: one per CPU (os.cpus().length)",
    ),
}


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def owns(app: str, process_name: str) -> bool:
    """PM2 gives every instance the app's name; pmdaemon names them app-0, app-1, ..."""
    return (
        process_name == app or re.fullmatch(re.escape(app) + r"-[0-9]+", process_name) is not None
    )


def test_the_ten_started_files_are_in_the_manifest() -> None:
    assert len(STARTS) == 10
    for name, start in STARTS.items():
        assert BY_DIR[name]["validate"] == "ok", name
        assert set(start.apps) == {a["name"] for a in BY_DIR[name]["pm2_apps"]}, name


@pytest.mark.parametrize("name", sorted(STARTS))
def test_a_pm2_file_starts_with_stand_ins(pmd: Pmd, tmp_path: Path, name: str) -> None:
    """PM2's start of the file (lib/API.js _startJson, lib/Common.js prepareAppConf): every
    app online with the instances PM2 starts, the file's env (and env_NAME with --env), and
    PORT, which the stand-in listens on. The case: see STARTS[name].doc."""
    entry, start = BY_DIR[name], STARTS[name]
    if NODE is None:
        pytest.skip("node is not installed: the stand-ins are node scripts")
    port = free_port()
    environ = {k: v.replace("{port}", str(port)) for k, v in start.environ.items()}
    file = checked_out(entry, tmp_path, {**pmd.env, **environ})
    reports = tmp_path / "reports"
    reports.mkdir()
    for app in entry["pm2_apps"]:
        script = file.parent / app["script"]
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(STAND_IN % {"reports": json.dumps(str(reports))})
    wanted: dict[str, tuple[App, int, int | None]] = {}
    for app_name, app in start.apps.items():
        count = (os.cpu_count() or 1) if app.instances == "cpus" else int(app.instances)
        listen = port if app.port == "{port}" else app.port
        assert listen is None or isinstance(listen, int)
        if listen is not None and not port_is_free(listen):
            pytest.skip(f"port {listen}, which the file names, is in use on this machine")
        wanted[app_name] = (app, count, listen)

    args = ["start", str(file)] + (["--env-name", start.env_name] if start.env_name else [])
    result = cli(pmd, *args, cwd=file.parent, env=environ, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout

    def online() -> dict[str, list[dict[str, Any]]] | None:
        procs = pmd.list()
        mine = {a: [p for p in procs if owns(a, p["name"])] for a in wanted}
        for app_name, (_, count, _) in wanted.items():
            running = [p for p in mine[app_name] if p["status"] == "online" and p["pid"]]
            if len(running) != count or len(mine[app_name]) != count:
                return None
            if not all((reports / f"{p['pid']}.json").is_file() for p in running):
                return None
        return mine

    mine = wait_until(online, timeout=60, what=f"every app of {name} online and reporting")
    for app_name, (app, count, listen) in wanted.items():
        assert len(mine[app_name]) == count, app_name
        for proc in mine[app_name]:
            seen = json.loads((reports / f"{proc['pid']}.json").read_text())
            for key, value in app.env.items():
                assert seen["env"].get(key) == value, (app_name, key)
            if app.argv is not None:
                assert seen["argv"] == app.argv, app_name
            if listen is None:
                continue
            assert seen["env"].get("PORT") == str(listen), app_name
            assert seen["error"] is None, (app_name, seen["error"])
            assert seen["port"] == listen, app_name
            with socket.create_connection(("127.0.0.1", listen), timeout=5) as sock:
                assert sock.recv(64) == b"stand-in\n"
    if name == "019-navanitvish-EcoBackend":
        assert (file.parent / "logs").is_dir(), "PM2 creates the folder of error_file/out_file"
