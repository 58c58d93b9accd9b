"""Boot (issue 9): `startup` writes a systemd unit whose command really runs the daemon,
`unstartup` removes it, and `save` / `resurrect` as PM2 users know them."""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from helpers import Pmd, alive, child, free_range, wait_until

PY = sys.executable


def unit_values(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("["):
            values[key] = value
    return values


def test_startup_writes_a_unit_that_runs_the_daemon(pmd: Pmd, tmp_path: Path) -> None:
    units = tmp_path / "units"
    result = pmd.run("startup", "systemd", "--unit-dir", str(units))
    [unit] = list(units.iterdir())
    assert unit.name.startswith("pmdaemon-") and unit.suffix == ".service"
    assert f"wrote {unit}" in result.stdout and "systemctl enable" in result.stdout
    text = unit.read_text()
    assert text == pmd.run("startup", "--print").stdout
    values = unit_values(text)
    assert values["KillMode"] == "mixed" and values["WantedBy"] == "multi-user.target"
    assert values["Environment"] == f"PMDAEMON_HOME={pmd.home}"
    if shutil.which("systemd-analyze"):
        check = subprocess.run(
            ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
        )
        assert check.returncode == 0, check.stderr

    # What systemd would run: the daemon in the foreground, serving this home.
    argv = shlex.split(values["ExecStart"])
    daemon = subprocess.Popen(argv, env=pmd.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: pmd.json("ping")["pid"] == daemon.pid, what="the unit's daemon")
        pmd.start(child("park.py"), "--interpreter", PY, "-n", "app")
        daemon.send_signal(signal.SIGTERM)  # what `systemctl stop` sends (KillMode=mixed)
        assert daemon.wait(timeout=60) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert pmd.proc("app")["status"] == "online"  # back with the next daemon

    user = pmd.run("startup", "--user", "--print").stdout
    assert "User=" not in user and unit_values(user)["WantedBy"] == "default.target"
    assert f"removed {unit}" in pmd.run("unstartup", "--unit-dir", str(units)).stdout
    assert not unit.exists()
    again = pmd.run("unstartup", "--unit-dir", str(units), check=False)
    assert again.returncode == 1 and "no unit installed" in again.stderr


def test_startup_refuses_what_it_cannot_do(pmd: Pmd, tmp_path: Path) -> None:
    result = pmd.run("startup", "launchd", check=False)
    assert result.returncode == 2 and "only systemd is supported" in result.stderr
    blocked = tmp_path / "file"
    blocked.write_text("")
    result = pmd.run("startup", "--unit-dir", str(blocked / "sub"), check=False)
    assert result.returncode == 1 and "cannot write" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_save_and_resurrect(pmd: Pmd) -> None:
    first = free_range(2)
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "a", "-e", "SECRET_ENV=1")
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "b")
    pmd.start(child("http_app.py"), "--interpreter", PY, "-n", "web", "-i", "2", "-p",
              f"{first}-{first + 1}")  # fmt: skip
    pmd.run("stop", "b")
    before = {p["name"]: p for p in pmd.list()}
    result = pmd.json("save")
    assert result["message"].startswith("Saved 4 process(es)")
    dump = json.loads(Path(result["path"]).read_text())
    assert [p["spec"]["name"] for p in dump["processes"]] == ["a", "b", "web-0", "web-1"]

    pmd.run("delete", "all", "-f")
    assert pmd.list() == []
    restored = pmd.json("resurrect")
    assert restored["message"] == "Restored 4 process(es)"
    after = {p["name"]: p for p in pmd.list()}
    pmd.seen_pids.update(p["pid"] for p in after.values() if p["pid"])
    assert set(after) == set(before)
    assert {n: p["status"] for n, p in after.items()} == {
        "a": "online",
        "b": "stopped",
        "web-0": "online",
        "web-1": "online",
    }
    assert [after[f"web-{i}"]["port"] for i in range(2)] == [first, first + 1]
    assert "SECRET_ENV" in pmd.proc("a")["config"]["env"]

    again = pmd.json("resurrect")  # nothing twice
    assert again["processes"] == [] and sorted(again["present"]) == sorted(before)
    assert len(pmd.list()) == 4


def test_resurrect_without_a_good_dump_says_why(pmd: Pmd, home: Path) -> None:
    result = pmd.run("resurrect", check=False)
    assert result.returncode == 1 and "run `pmdaemon save` first" in result.stderr
    (home / "dump.json").write_text("{not json")
    result = pmd.run("resurrect", check=False)
    assert result.returncode == 1 and "not a process list saved by pmdaemon" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and pmd.list() == []


def test_saved_processes_keep_their_config(pmd: Pmd) -> None:
    name = "a"
    pmd.start(child("park.py"), "--interpreter", PY, "-n", name, "--max-restarts", "7",
              "--kill-timeout", "3s", "--time")  # fmt: skip
    config = pmd.proc(name)["config"]
    pmd.run("save")
    pmd.run("delete", name, "-f")
    pmd.run("resurrect")
    assert pmd.proc(name)["config"] == config
    assert alive(pmd.proc(name)["pid"])
