"""Every ecosystem file of PMDaemon's documentation and examples/ (tests/compat/data/
pmdaemon-docs, listed with its page in MANIFEST.json) passes `pmdaemon validate` unchanged,
and starts once what only exists on the doc writer's machine (the program, its directory,
log paths, ports, accounts) is replaced by stand-ins. Code blocks that are not whole files
(fragments, other tools' configs, doc typos) are refused with one sentence per problem."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import Pmd, child, free_range, reference_file, wait_until

DATA = Path(__file__).parent / "data" / "pmdaemon-docs"
MANIFEST = json.loads((DATA / "MANIFEST.json").read_text())["files"]
FILES = sorted(f for f, e in MANIFEST.items() if e["kind"] == "file")
OTHERS = sorted(f for f, e in MANIFEST.items() if e["kind"] != "file")
PY = sys.executable
PATH_FIELDS = ("out_file", "error_file", "log_file", "pid_file")
BATCH = 12  # files started together, in one daemon


def doc_file(name: str) -> Path:
    return reference_file(DATA, "pmdaemon-docs", name)


def env_of(name: str) -> dict[str, str]:
    return dict(MANIFEST[name].get("env", {}))


def test_the_corpus_is_every_block_the_manifest_names() -> None:
    on_disk = {p.name for p in doc_file(FILES[0]).parent.iterdir() if p.name != "MANIFEST.json"}
    assert on_disk - {".gitignore"} == set(MANIFEST)
    assert len(FILES) >= 90, "PMDaemon's docs hold over 90 whole ecosystem files"


@pytest.mark.parametrize("name", FILES)
def test_a_documented_file_validates_unchanged(pmd: Pmd, name: str) -> None:
    """PMDaemon docs, the page named in MANIFEST.json: the file as printed there."""
    pmd.env.update(env_of(name))
    result = pmd.run("validate", str(doc_file(name)), check=False)
    assert result.returncode == 0, f"{MANIFEST[name]['page']}: {result.stderr}"
    assert "app(s) valid" in result.stdout


@pytest.mark.parametrize("name", OTHERS)
def test_a_block_that_is_not_a_file_gets_one_sentence_per_problem(pmd: Pmd, name: str) -> None:
    result = pmd.run("validate", str(doc_file(name)), check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    problems = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert problems and all(name in line for line in problems)


def stand_in(raw: dict[str, Any], prefix: str, work: Path, ports: list[int]) -> dict[str, Any]:
    """The app with what only the doc writer's machine has replaced: the program (a
    parked Python child), its directory, its files, its ports and its account. Every
    other field is kept as the doc wrote it."""
    app = dict(raw)
    app["name"] = f"{prefix}{raw.get('name', 'app')}"[:64]
    app["script"] = child("park.py")
    app["interpreter"] = PY
    app.pop("args", None)
    app.pop("interpreter_args", None)
    app.pop("node_args", None)
    app["cwd"] = str(work)
    for key in PATH_FIELDS:
        if app.get(key):
            app[key] = str(work / f"{app['name']}.{key}")
    if app.get("env_file"):
        path = work / f"{app['name']}.env"
        path.write_text("FROM_ENV_FILE=1\n")
        app["env_file"] = str(path)
    app.pop("user", None)
    app.pop("group", None)
    app.pop("wait_ready", None)  # not waited for here: the test waits for online itself
    count = raw.get("instances", 1)
    count = 2 if count in ("max", -1) else int(count)
    app["instances"] = min(count, 4) if count else 0
    port = raw.get("port")
    if port is not None or raw.get("increment_var") == "PORT":
        n = max(app["instances"], 1)
        first = ports.pop()
        if isinstance(port, str) and port.startswith("auto:"):
            app["port"] = f"auto:{first}-{first + 3}"
        else:
            app["port"] = str(first) if n == 1 else f"{first}-{first + n - 1}"
        if raw.get("increment_var") == "PORT":
            app["env"] = {**raw.get("env", {}), "PORT": str(first)}
    check = raw.get("health_check")
    if isinstance(check, dict):  # the doc's timing, a check this machine can pass
        app["health_check"] = {
            **{k: v for k, v in check.items() if k not in ("url", "script", "type", "check_type")},
            "type": "script",
            "script": "true",
        }
    for key in ("env_production", "env_development", "env_staging"):
        app.pop(key, None)
    return app


def batches() -> list[list[str]]:
    return [FILES[i : i + BATCH] for i in range(0, len(FILES), BATCH)]


@pytest.mark.parametrize("batch", range(len(batches())))
def test_documented_files_start_with_stand_ins(pmd: Pmd, tmp_path: Path, batch: int) -> None:
    """PMDaemon docs, every page with an ecosystem file: the file's apps start and run."""
    from pmdaemon import config

    apps: list[dict[str, Any]] = []
    disabled: set[str] = set()
    base = free_range(4 * 40)  # one free block, four ports per app
    ports = [base + 4 * k for k in range(40)]
    for i, name in enumerate(batches()[batch]):
        work = tmp_path / f"f{i}"
        work.mkdir()
        loaded = config.load(doc_file(name), environ={**os.environ, **env_of(name)})
        for app in loaded:
            shown = stand_in(app.raw, f"f{i}-", work, ports)
            if shown["instances"] == 0 or shown.get("enabled") is False:
                disabled.add(shown["name"])
            apps.append(shown)
    file = tmp_path / "stand-ins.json"
    file.write_text(json.dumps({"apps": apps}))
    result = pmd.run("start", str(file), "--json", check=False, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout

    def all_online() -> list[dict[str, Any]] | None:
        procs = pmd.list()
        running = [p for p in procs if not any(p["name"].startswith(d) for d in disabled)]
        return procs if running and all(p["status"] == "online" for p in running) else None

    procs = wait_until(all_online, timeout=60, what="every documented app online")
    names = {p["name"] for p in procs}
    for app in apps:
        wanted = app["name"]
        assert wanted in names or any(n.startswith(f"{wanted}-") for n in names), wanted
    for name in disabled:  # instances 0: created, not started (PMDaemon's meaning)
        assert {p["status"] for p in procs if p["name"].startswith(name)} == {"stopped"}
