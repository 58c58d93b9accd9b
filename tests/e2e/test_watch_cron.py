"""PM2's restarts from outside the app: ``watch`` (a file changes) and ``cron_restart`` (a
schedule), with the real daemon, real files and real children."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from helpers import Pmd, child, wait_until

PY = sys.executable


def write_file(path: Path, apps: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"apps": apps}))
    return path


def history(pmd: Pmd, name: str) -> list[str]:
    return [item["reason"] for item in pmd.proc(name)["restart_history"]]


def watched_app(tmp_path: Path, **fields: Any) -> dict[str, Any]:
    return {
        "name": "web",
        "script": child("park.py"),
        "interpreter": PY,
        "cwd": str(tmp_path),
        "watch": ["src"],
        **fields,
    }


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for sub in ("src/lib", "src/node_modules/dep", "src/.cache", "logs"):
        (tmp_path / sub).mkdir(parents=True)
    (tmp_path / "src" / "app.js").write_text("one")
    return tmp_path


def test_a_change_restarts_once_per_burst(pmd: Pmd, tree: Path) -> None:
    """PM2's watch: editing a watched file restarts the app; a burst of writes (a save
    that touches several files) is one restart, recorded with the changed path."""
    pmd.run("start", str(write_file(tree / "eco.json", [watched_app(tree)])))
    first = pmd.wait_online("web")["pid"]
    for i in range(20):
        (tree / "src" / "lib" / f"m{i}.js").write_text(str(i))
    (tree / "src" / "app.js").write_text("two")
    second = pmd.wait_online("web", not_pid=first)["pid"]
    wait_until(lambda: len(history(pmd, "web")) >= 1, what="the restart recorded")
    # Every file was written before the first restart began: nothing more comes of them.
    (tree / "src" / "app.js").write_text("three")  # a later edit: a second restart
    pmd.wait_online("web", not_pid=second)
    reasons = wait_until(lambda: len(history(pmd, "web")) == 2 and history(pmd, "web"))
    assert all(r.startswith("watch: src/") and r.endswith(" changed") for r in reasons)
    assert reasons[1] == "watch: src/app.js changed"


def test_ignored_paths_restart_nothing(pmd: Pmd, tree: Path) -> None:
    """PM2's default ignores dotfiles and node_modules; ignore_watch entries (a path, a
    glob, a regular expression) are passed over, and the app's own log files too."""
    app = watched_app(
        tree,
        watch=True,
        ignore_watch=["node_modules", "*.tmp", r"\.cache", "logs"],
        out_file="src/own-out.log",
    )
    pmd.run("start", str(write_file(tree / "eco.json", [app])))
    first = pmd.wait_online("web")["pid"]
    (tree / "src" / "node_modules" / "dep" / "index.js").write_text("x")
    (tree / "src" / "scratch.tmp").write_text("x")
    (tree / "src" / ".cache" / "c").write_text("x")
    (tree / "logs" / "x.log").write_text("x")
    (tree / "src" / "own-out.log").write_text("x")
    # The marker: a change that does count, made after all the ignored ones.
    (tree / "src" / "lib" / "real.js").write_text("x")
    pmd.wait_online("web", not_pid=first)
    assert wait_until(lambda: history(pmd, "web")) == ["watch: src/lib/real.js changed"]


def test_a_new_directory_is_watched_and_a_default_ignore_holds(pmd: Pmd, tree: Path) -> None:
    """A directory made after the start is watched too; with no ignore_watch, PM2's
    default (dotfiles, node_modules) applies."""
    pmd.run("start", str(write_file(tree / "eco.json", [watched_app(tree)])))
    first = pmd.wait_online("web")["pid"]
    (tree / "src" / "node_modules" / "dep" / "a.js").write_text("x")
    (tree / "src" / "new" / "deeper").mkdir(parents=True)
    second = pmd.wait_online("web", not_pid=first)["pid"]  # the new directory is a change
    count = len(history(pmd, "web"))
    (tree / "src" / "new" / "deeper" / "b.js").write_text("x")
    pmd.wait_online("web", not_pid=second)
    reasons = wait_until(lambda: len(history(pmd, "web")) == count + 1 and history(pmd, "web"))
    assert reasons[-1] == "watch: src/new/deeper/b.js changed"
    assert not any("node_modules" in r for r in reasons)


def test_a_stopped_app_is_not_restarted_by_a_change(pmd: Pmd, tree: Path) -> None:
    """watch restarts an app that is meant to run, never one someone stopped."""
    marker = watched_app(tree, name="marker", watch=["logs"])
    pmd.run("start", str(write_file(tree / "eco.json", [watched_app(tree), marker])))
    pmd.wait_online("web")
    first = pmd.wait_online("marker")["pid"]
    pmd.run("stop", "web")
    (tree / "src" / "app.js").write_text("changed while stopped")
    # The marker's change comes later and settles later: once it has restarted the marker,
    # the change to src has been dealt with.
    (tree / "logs" / "marker").write_text("x")
    pmd.wait_online("marker", not_pid=first)
    assert pmd.proc("web")["status"] == "stopped"
    assert history(pmd, "web") == []


def test_a_missing_watch_path_starts_nothing(pmd: Pmd, tree: Path) -> None:
    """A watch path that does not exist: `validate` warns (PM2 loads such files, and a
    file may be checked where the app's tree is not), `start` refuses in one sentence and
    starts nothing."""
    file = write_file(tree / "eco.json", [watched_app(tree, watch=["nope"])])
    checked = pmd.run("validate", str(file))
    assert "watch path 'nope'" in checked.stderr and "will not start" in checked.stderr
    result = pmd.run("start", str(file), check=False)
    assert result.returncode == 1
    lines = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "watch path 'nope'" in lines[0] and "does not exist" in lines[0]
    assert "Traceback" not in result.stderr
    assert pmd.list() == []


def test_cron_every_second_restarts(pmd: Pmd, tmp_path: Path) -> None:
    """cron_restart with six fields (seconds first) restarts a long-running app on time;
    info shows the next run."""
    app = {"name": "tick", "script": child("park.py"), "interpreter": PY}
    pmd.run(
        "start", str(write_file(tmp_path / "eco.json", [{**app, "cron_restart": "* * * * * *"}]))
    )
    first = pmd.wait_online("tick")["pid"]
    second = pmd.wait_online("tick", not_pid=first)["pid"]
    pmd.wait_online("tick", not_pid=second)
    info = pmd.proc("tick")
    assert info["next_cron_restart"] is not None
    assert all(r == "cron: * * * * * *" for r in history(pmd, "tick"))
    assert "cron" in pmd.run("info", "tick").stdout


def test_a_one_shot_job_runs_on_schedule_and_stays_stopped(pmd: Pmd, tmp_path: Path) -> None:
    """A job (autorestart false) with cron_restart runs at each fire and is stopped in
    between; `stop` holds it until it is started again; the schedule survives a daemon
    restart."""
    runs = tmp_path / "runs"
    job = {
        "name": "job",
        "script": "bash",
        "args": ["-c", f"echo run >> {runs}"],
        "interpreter": "none",
        "autorestart": False,
        "cron_restart": "*/2 * * * * *",
    }
    pmd.run("start", str(write_file(tmp_path / "eco.json", [job])))

    def count() -> int:
        return len(runs.read_text().splitlines()) if runs.exists() else 0

    wait_until(lambda: count() >= 3, timeout=20, what="three runs")
    info = pmd.proc("job")
    assert info["status"] == "stopped" and info["pid"] is None
    assert info["next_cron_restart"] is not None
    assert "cron: */2 * * * * *" in history(pmd, "job")

    pmd.run("kill")  # the daemon goes; the next command starts a new one, which boots
    assert pmd.proc("job")["status"] == "stopped"
    before = count()
    wait_until(lambda: count() >= before + 2, timeout=20, what="runs after the daemon restart")

    pmd.run("stop", "job")
    held = count()
    deadline = time.monotonic() + 4.5  # two fires' worth: neither may run it
    while time.monotonic() < deadline:
        assert pmd.proc("job")["status"] == "stopped"
    assert count() == held


def test_a_bad_cron_expression_is_one_sentence(pmd: Pmd, tmp_path: Path) -> None:
    """A bad expression says which field is wrong and what is accepted; nothing starts."""
    app = {"name": "x", "script": child("park.py"), "interpreter": PY, "cron_restart": "0 24 * * *"}
    file = write_file(tmp_path / "eco.json", [app])
    result = pmd.run("start", str(file), check=False)
    assert result.returncode == 1
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "invalid cron_restart '0 24 * * *': the hour field has '24': expected 0-23" in line
    assert pmd.list() == []


def test_an_app_that_writes_into_its_own_tree_is_not_restarted_for_ever(
    pmd: Pmd, tree: Path
) -> None:
    """An app that writes a file into its watched tree as it starts would restart itself
    without end: after 10 watch restarts within a minute the watch pauses, and `info`
    says why and which path."""
    app = {
        "name": "writer",
        "script": "bash",
        "args": ["-c", "echo $$ > src/state.txt; exec sleep 1000"],
        "interpreter": "none",
        "cwd": str(tree),
        "watch": ["src"],
    }
    pmd.run("start", str(write_file(tree / "eco.json", [app])))
    info = wait_until(
        lambda: (p := pmd.proc("writer"))["watch_problem"] and p, timeout=60, what="the pause"
    )
    assert "watching paused" in info["watch_problem"] and "src/state.txt" in info["watch_problem"]
    assert 9 <= len(history(pmd, "writer")) <= 11
    assert "watch problem" in pmd.run("info", "writer").stdout
    pmd.wait_online("writer")  # and it runs
